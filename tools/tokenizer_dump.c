/* tokenizer_dump - d1.h's tokenizer on a corpus, as JSON lines, for
   tests/tokenizer_check.sh (which compares them with @huggingface/tokenizers):

     tokenizer_dump TOKENIZER CORPUS
     tokenizer_dump --init-chars DIR CHARS [SPECIAL...]

   TOKENIZER: a tokenizer.json, or a directory holding one (d1_tokenizer_load).
   CORPUS: one case per line, UTF-8. A line's bytes are the case's text, but
   for these escapes: \n \r \t \\ and \xHH (one byte; write \x20 for a space
   at the end of a line, which editors strip). Empty lines and lines that
   start with '#' are skipped (write \x23 for a case that starts with '#');
   a CR before the line's LF is dropped (a file saved with CRLF endings).
   A line "\ids N,N,..." (comma-separated ids; "\ids" alone: none) is a
   decode case instead: the ids are decoded as given (byte tokens that cut a
   character in two, say).

   Prints one line per case, in order:
     {"line": N, "text": "...", "ids": [..], "decoded": "..."}
   text is the case after unescaping, ids d1_tokenizer_encode's output,
   decoded d1_tokenizer_decode(ids, skip_special 0); a decode case has
   "text": null and its own ids. Strings are JSON with \" \\ \n \r \t and
   \u00XX for the other control characters, other characters as UTF-8.
   Exits 1 with d1_last_error() on stderr when loading, encoding or decoding
   fails, 2 on a usage or corpus error.

   --init-chars writes DIR/tokenizer.json (and the tokenizer_config.json and
   special_tokens_map.json of d1_tokenizer_save, no config) of
   d1_tokenizer_init_chars(CHARS, SPECIAL...): a character-level tokenizer
   such as the demo's, for the check to read back.

     cc -O1 -std=c99 -Wall -Wextra -Werror -o build/tokenizer_dump tools/tokenizer_dump.c -lm -lpthread */
#define D1_IMPLEMENTATION
#include "../d1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_json(const char *s, size_t n) {
    size_t i;
    putchar('"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { putchar('\\'); putchar(c); }
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int hex(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Unescapes line[n] in place; returns the new length, or (size_t)-1 on a bad escape. */
static size_t unescape(char *line, size_t n) {
    size_t r = 0, w = 0;
    while (r < n) {
        char c = line[r++];
        if (c != '\\') { line[w++] = c; continue; }
        if (r == n) return (size_t)-1;
        c = line[r++];
        if (c == 'n') line[w++] = '\n';
        else if (c == 'r') line[w++] = '\r';
        else if (c == 't') line[w++] = '\t';
        else if (c == '\\') line[w++] = '\\';
        else if (c == 'x' && r + 2 <= n && hex(line[r]) >= 0 && hex(line[r + 1]) >= 0) {
            line[w++] = (char)(hex(line[r]) * 16 + hex(line[r + 1]));
            r += 2;
        } else return (size_t)-1;
    }
    return w;
}

/* ids[*cap] grown to hold n. */
static int grow(int **ids, int *cap, int n) {
    int *p;
    if (n <= *cap) return 1;
    if (!(p = (int *)realloc(*ids, (size_t)n * sizeof(int)))) return 0;
    *ids = p;
    *cap = n;
    return 1;
}

/* "N,N,..." (line[n]) into *ids; the count, or -1 when it is not that. */
static int parse_ids(const char *line, size_t n, int **ids, int *cap) {
    size_t i = 0;
    int k = 0;
    while (i < n) {
        long v = 0;
        size_t d = 0;
        for (; i < n && line[i] >= '0' && line[i] <= '9' && v < 100000000; i++, d++) v = v * 10 + (line[i] - '0');
        if (!d || (i < n && line[i] != ',') || (i < n && i + 1 == n)) return -1;
        if (i < n) i++;
        if (!grow(ids, cap, k + 1)) return -1;
        (*ids)[k++] = (int)v;
    }
    return k;
}

int main(int argc, char **argv) {
    d1_tokenizer tok;
    char *buf = NULL, *out = NULL, *p, *end;
    int *ids = NULL, cap_ids = 0, lineno = 0, rc = 0, k;
    size_t cap_out = 0, len = 0, size = 0;
    if (argc >= 4 && !strcmp(argv[1], "--init-chars")) {
        if (d1_tokenizer_init_chars(&tok, argv[3], (const char *const *)argv + 4, argc - 4) != D1_OK ||
            d1_tokenizer_save(&tok, NULL, argv[2]) != D1_OK) {
            fprintf(stderr, "tokenizer_dump: %s\n", d1_last_error());
            d1_tokenizer_free(&tok);
            return 1;
        }
        d1_tokenizer_free(&tok);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: tokenizer_dump TOKENIZER CORPUS\n"
                        "       tokenizer_dump --init-chars DIR CHARS [SPECIAL...]\n");
        return 2;
    }
    if (d1_tokenizer_load(&tok, argv[1]) != D1_OK) {
        fprintf(stderr, "tokenizer_dump: %s\n", d1_last_error());
        return 1;
    }
    if (d1__read_file(argv[2], (uint64_t)1 << 30, &buf, &size) != D1_OK) {
        fprintf(stderr, "tokenizer_dump: %s\n", d1_last_error());
        d1_tokenizer_free(&tok);
        return 2;
    }
    for (p = buf, end = buf + size; p < end && rc == 0;) {
        char *nl = (char *)memchr(p, '\n', (size_t)(end - p)), *line = p;
        size_t n = (size_t)((nl ? nl : end) - p), need;
        int n_ids, decode_only = 0;
        p = nl ? nl + 1 : end;
        lineno++;
        if (n && line[n - 1] == '\r') n--;
        if (n == 0 || line[0] == '#') continue;
        if ((n == 4 && !memcmp(line, "\\ids", 4)) || (n >= 5 && !memcmp(line, "\\ids ", 5))) { /* a decode case */
            decode_only = 1;
            if ((n_ids = n == 4 ? 0 : parse_ids(line + 5, n - 5, &ids, &cap_ids)) < 0) {
                fprintf(stderr, "tokenizer_dump: %s:%d: not \\ids N,N,... (or out of memory)\n", argv[2], lineno);
                rc = 2;
                break;
            }
        } else {
            if ((len = unescape(line, n)) == (size_t)-1) {
                fprintf(stderr, "tokenizer_dump: %s:%d: a bad escape (\\n \\r \\t \\\\ \\xHH)\n", argv[2], lineno);
                rc = 2;
                break;
            }
            if (d1_tokenizer_encode(&tok, line, len, NULL, 0, &n_ids) != D1_OK) { rc = 1; break; }
            if (!grow(&ids, &cap_ids, n_ids)) { fprintf(stderr, "tokenizer_dump: out of memory\n"); rc = 2; break; }
            if (d1_tokenizer_encode(&tok, line, len, ids, cap_ids, &n_ids) != D1_OK) { rc = 1; break; }
        }
        if (d1_tokenizer_decode(&tok, ids, n_ids, 0, NULL, 0, &need) != D1_OK) { rc = 1; break; }
        if (need + 1 > cap_out) {
            free(out);
            cap_out = need + 1;
            if (!(out = (char *)malloc(cap_out))) { fprintf(stderr, "tokenizer_dump: out of memory\n"); rc = 2; break; }
        }
        if (d1_tokenizer_decode(&tok, ids, n_ids, 0, out, cap_out, &need) != D1_OK) { rc = 1; break; }
        printf("{\"line\": %d, \"text\": ", lineno);
        if (decode_only) fputs("null", stdout);
        else put_json(line, len);
        fputs(", \"ids\": [", stdout);
        for (k = 0; k < n_ids; k++) printf(k ? ", %d" : "%d", ids[k]);
        fputs("], \"decoded\": ", stdout);
        put_json(out, need);
        fputs("}\n", stdout);
    }
    if (rc == 1) fprintf(stderr, "tokenizer_dump: %s:%d: %s\n", argv[2], lineno, d1_last_error());
    d1__free(buf);
    free(ids);
    free(out);
    d1_tokenizer_free(&tok);
    if (fflush(stdout) != 0 && rc == 0) rc = 2;
    return rc;
}
