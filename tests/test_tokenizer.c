/* test_tokenizer.c - d1_tokenizer: tokenizer.json read as the Rust tokenizers
   crate reads it. Cases worked out by hand from the crate's rules (BPE merge
   order, the split expressions' alternations, byte-level decoding with
   U+FFFD), the malformed files as one table, and round trips through
   d1_tokenizer_save. The independent check against @huggingface/tokenizers
   on a corpus is tests/tokenizer_check.sh. */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "harness.h"

/* A tokenizer from JSON text; its status. */
static int load(d1_tokenizer *t, const char *json) { return d1_tokenizer_load_memory(t, json, strlen(json)); }

/* encode text and compare with want[n] (n = -1: expect failure code `fail`). */
static int encodes_to(const d1_tokenizer *t, const char *text, const int *want, int n) {
    int ids[64], got = -1, rc = d1_tokenizer_encode(t, text, strlen(text), ids, 64, &got);
    if (rc != D1_OK || got != n) {
        printf("  '%s': rc %d (%s), %d ids, want %d\n", text, rc, d1_last_error(), got, n);
        return 0;
    }
    if (memcmp(ids, want, (size_t)n * sizeof(int))) {
        int i;
        printf("  '%s' ->", text);
        for (i = 0; i < n; i++) printf(" %d", ids[i]);
        printf("\n");
        return 0;
    }
    return 1;
}

/* ---- the malformed and the unsupported: one table, each a clear code, the
   tokenizer left zeroed */
#define WL(v) "{\"model\": {\"type\": \"WordLevel\", \"vocab\": " v "}}"
#define BPE_(extra) "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}" extra "}}"
static void test_malformed(void) {
    static const struct { const char *json; int code; } cases[] = {
        {"", D1_ERR_JSON},
        {"{\"model\": ", D1_ERR_JSON},
        {"[]", D1_ERR_JSON},
        {"{}", D1_ERR_JSON},
        {"{\"model\": {\"vocab\": {\"a\": 0}}}", D1_ERR_JSON},
        {"{\"model\": {\"type\": 5, \"vocab\": {\"a\": 0}}}", D1_ERR_JSON},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", D1_ERR_UNSUPPORTED},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", D1_ERR_UNSUPPORTED},
        {"{\"model\": {\"type\": \"WordLevel\"}}", D1_ERR_JSON},
        {WL("[]"), D1_ERR_JSON},
        {WL("{}"), D1_ERR_CONFIG},
        {WL("{\"a\": -1}"), D1_ERR_JSON},
        {WL("{\"a\": 1.5}"), D1_ERR_JSON},
        {WL("{\"a\": \"0\"}"), D1_ERR_JSON},
        {WL("{\"a\": 99999999999}"), D1_ERR_JSON},
        {WL("{\"a\": 0, \"b\": 0}"), D1_ERR_CONFIG},
        {WL("{\"a\": 0, \"a\": 1}"), D1_ERR_DUPLICATE},
        {"{\"normalizer\": {\"type\": \"NFC\"}, \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", D1_ERR_UNSUPPORTED},
        {"{\"normalizer\": 3, \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", D1_ERR_JSON},
        {"{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}",
         D1_ERR_UNSUPPORTED},
        {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"}, \"behavior\": \"Isolated\"}, "
         "\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", D1_ERR_UNSUPPORTED},
        {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \"x\"}, \"behavior\": \"MergedWithPrevious\"}, "
         "\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", D1_ERR_UNSUPPORTED},
        {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \"x\"}, \"invert\": true}, "
         "\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", D1_ERR_UNSUPPORTED},
        {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \"\"}}, "
         "\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", D1_ERR_UNSUPPORTED},
        {"{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": \"x\"}, "
         "\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", D1_ERR_JSON},
        {"{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"ByteLevel\"}, "
         "{\"type\": \"Split\", \"pattern\": {\"String\": \"x\"}}]}, \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}",
         D1_ERR_UNSUPPORTED},
        {"{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": \"yes\"}, "
         "\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", D1_ERR_JSON},
        {"{\"decoder\": {\"type\": \"WordPiece\"}, \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}",
         D1_ERR_UNSUPPORTED},
        {"{\"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Fuse\"}, {\"type\": \"Fuse\"}]}, "
         "\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", D1_ERR_UNSUPPORTED},
        {"{\"added_tokens\": {}, \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", D1_ERR_JSON},
        {"{\"added_tokens\": [{\"content\": \"x\"}], \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", D1_ERR_JSON},
        {"{\"added_tokens\": [{\"id\": 1, \"content\": \"\"}], \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}",
         D1_ERR_JSON},
        {"{\"added_tokens\": [{\"id\": 0, \"content\": \"b\"}], \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}",
         D1_ERR_CONFIG},
        {"{\"added_tokens\": [{\"id\": 1, \"content\": \"a\"}], \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}",
         D1_ERR_CONFIG},
        {"{\"added_tokens\": [{\"id\": 1, \"content\": \"x\", \"single_word\": true}], "
         "\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", D1_ERR_UNSUPPORTED},
        {"{\"added_tokens\": [{\"id\": 1, \"content\": \"x\", \"special\": 1}], "
         "\"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}}}", D1_ERR_JSON},
        {BPE_(", \"merges\": {}"), D1_ERR_JSON},
        {BPE_(", \"merges\": [\"a c\"]"), D1_ERR_CONFIG},
        {BPE_(", \"merges\": [\"b a\"]"), D1_ERR_CONFIG},
        {BPE_(", \"merges\": [\"ab\"]"), D1_ERR_JSON},
        {BPE_(", \"merges\": [\"a b c\"]"), D1_ERR_JSON},
        {BPE_(", \"merges\": [[\"a\"]]"), D1_ERR_JSON},
        {BPE_(", \"merges\": [[\"a\", \"b\", \"c\"]]"), D1_ERR_JSON},
        {BPE_(", \"merges\": [[\"a\", 1]]"), D1_ERR_JSON},
        {BPE_(", \"byte_fallback\": true"), D1_ERR_UNSUPPORTED},
        {BPE_(", \"continuing_subword_prefix\": \"##\""), D1_ERR_UNSUPPORTED},
        {BPE_(", \"end_of_word_suffix\": \"</w>\""), D1_ERR_UNSUPPORTED},
        {BPE_(", \"dropout\": 0.1"), D1_ERR_UNSUPPORTED},
        {BPE_(", \"unk_token\": 3"), D1_ERR_JSON},
    };
    int i;
    for (i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        d1_tokenizer t;
        int rc;
        memset(&t, 0x5a, sizeof t);
        rc = load(&t, cases[i].json);
        CHECK(rc == cases[i].code, "case %d (%s): %d (%s), want %d", i, cases[i].json, rc, d1_last_error(), cases[i].code);
        CHECK(rc == D1_OK || (!t.impl && !t.n_vocab), "case %d: a failed load leaves the tokenizer zeroed", i);
        CHECK(rc == D1_OK || *d1_last_error(), "case %d: no message", i);
        if (rc == D1_OK) d1_tokenizer_free(&t);
    }
    CHECK(d1_tokenizer_load_memory(NULL, "{}", 2) == D1_ERR_ARG, "NULL tokenizer");
}

/* ---- BPE: the merges in rank order, leftmost on ties; unk and fuse_unk */
static void test_bpe_merges(void) {
    static const char json[] =
        "{\"added_tokens\": [{\"id\": 9, \"content\": \"<s>\", \"special\": true}],"
        " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": %s,"
        " \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"bc\": 4, \"abc\": 5, \"aa\": 7, \"<unk>\": 8},"
        " \"merges\": [\"a b\", [\"ab\", \"c\"], \"b c\", \"a a\"]}}";
    char text[1024];
    d1_tokenizer t;
    int fuse;
    for (fuse = 0; fuse < 2; fuse++) {
        snprintf(text, sizeof text, json, fuse ? "true" : "false");
        if (load(&t, text) != D1_OK) { CHECK(0, "load: %s", d1_last_error()); return; }
        CHECK(t.model == D1_TOKENIZER_BPE && t.n_vocab == 10 && t.unk_id == 8 && t.n_merges == 4, "fields");
        {   /* a b (rank 0) before b c (rank 2), then ab c (rank 1) */
            const int abc[] = {5}, abab[] = {3, 3}, bca[] = {4, 0}, aaa[] = {7, 0}, cab[] = {2, 3};
            CHECK(encodes_to(&t, "abc", abc, 1), "abc");
            CHECK(encodes_to(&t, "abab", abab, 2), "abab");
            CHECK(encodes_to(&t, "bca", bca, 2), "bca");
            CHECK(encodes_to(&t, "aaa", aaa, 2), "aaa: leftmost of the tied pairs");
            CHECK(encodes_to(&t, "cab", cab, 2), "cab");
        }
        {   /* the added token cuts the text; unknown characters are unk, fused when fuse_unk */
            const int a1[] = {0, 9, 5}, u0[] = {8, 8, 0, 8}, u1[] = {8, 0, 8};
            CHECK(encodes_to(&t, "a<s>abc", a1, 3), "added token");
            CHECK(fuse ? encodes_to(&t, "xya\xc3\xa9", u1, 3) : encodes_to(&t, "xya\xc3\xa9", u0, 4), "unk, fuse %d", fuse);
        }
        {
            int l = -1, r = -1;
            CHECK(d1_tokenizer_merge(&t, 1, &l, &r) == D1_OK && l == 3 && r == 2, "merge 1 is ab c");
            CHECK(d1_tokenizer_merge(&t, 4, &l, &r) == D1_ERR_ARG, "merge 4 is out of range");
        }
        d1_tokenizer_free(&t);
    }
}

/* ---- the split expressions, worked out from their alternations */
static int splits_to(int re, const char *text, const char *const *want, int n) {
    size_t i = 0, j, len = strlen(text);
    int k = 0;
    for (; i < len; i = j, k++) {
        j = d1__re_match(re, (const unsigned char *)text, len, i);
        if (k >= n || j - i != strlen(want[k]) || memcmp(text + i, want[k], j - i)) {
            printf("  piece %d: '%.*s', want '%s'\n", k, (int)(j - i), text + i, k < n ? want[k] : "(none)");
            return 0;
        }
    }
    return k == n;
}
static void test_split_expressions(void) {
    const char *text = "Hello  world's 123456\n\nok  ";
    static const char *const gpt2[] = {"Hello", " ", " world", "'s", " 123456", "\n", "\n", "ok", "  "};
    static const char *const llama3[] = {"Hello", " ", " world", "'s", " ", "123", "456", "\n\n", "ok", "  "};
    static const char *const qwen2[] = {"Hello", " ", " world", "'s", " ", "1", "2", "3", "4", "5", "6", "\n\n", "ok", "  "};
    static const char *const gpt2b[] = {"I", "'", "M", " don", "'t", " --!!", "\t", "x", " caf\xc3\xa9", " \xc2\xbd"};
    static const char *const llama3b[] = {"I", "'M", " don", "'t", " --!!", "\tx", " caf\xc3\xa9", " ", "\xc2\xbd"};
    static const char *const llama3c[] = {"a", ".\n", " \n\n", "b", " )\r\n", "c"};
    static const char *const chars[] = {"a", "\xc3\xa9", "\n\n", "b"};
    CHECK(splits_to(D1__RE_GPT2, text, gpt2, 9), "GPT-2");
    CHECK(splits_to(D1__RE_LLAMA3, text, llama3, 10), "Llama 3");
    CHECK(splits_to(D1__RE_QWEN2, text, qwen2, 14), "Qwen 2");
    /* contractions are case-sensitive in GPT-2's, not in Llama 3's; Latin-1 letters and numbers */
    CHECK(splits_to(D1__RE_GPT2, "I'M don't --!!\tx caf\xc3\xa9 \xc2\xbd", gpt2b, 10), "GPT-2's 'M is no contraction");
    CHECK(splits_to(D1__RE_LLAMA3, "I'M don't --!!\tx caf\xc3\xa9 \xc2\xbd", llama3b, 9), "Llama 3 contractions, Latin-1");
    CHECK(splits_to(D1__RE_LLAMA3, "a.\n \n\nb )\r\nc", llama3c, 6), "Llama 3 newlines");
    CHECK(splits_to(D1__RE_CHAR, "a\xc3\xa9\n\nb", chars, 4), "\".\": one character, newline runs between");
    {   /* the classes: General_Category L* and N*, Oniguruma's \s, other */
        static const struct { unsigned cp; int cl; } c[] = {
            {'a', D1__CL_L}, {'7', D1__CL_N}, {'\t', D1__CL_S}, {'_', D1__CL_P}, {0x85, D1__CL_S}, {0xE9, D1__CL_L},
            {0xBD, D1__CL_N}, {0xD7, D1__CL_P}, {0x2122, D1__CL_P}, {0x94D, D1__CL_P}, {0x9E7, D1__CL_N},
            {0xE51, D1__CL_N}, {0x60C, D1__CL_P}, {0x3000, D1__CL_S}, {0x2003, D1__CL_S}, {0xFEFF, D1__CL_P},
            {0x4E2D, D1__CL_L}, {0x1F600, D1__CL_P}, {0x16EE, D1__CL_N}, {0x20000, D1__CL_L}, {0xE000, D1__CL_P},
            {0x10FFFF, D1__CL_P}};
        int k, ok = 1;
        for (k = 0; k < (int)(sizeof c / sizeof c[0]); k++)
            if (d1__cp_class(c[k].cp) != c[k].cl) {
                printf("  U+%04X: class %d, want %d\n", c[k].cp, d1__cp_class(c[k].cp), c[k].cl);
                ok = 0;
            }
        CHECK(ok, "character classes");
    }
    {   /* lstrip / rstrip take any White_Space: U+00A0 before, U+3000 after */
        d1_tokenizer t;
        const int want[] = {0, 2, 1};
        CHECK(load(&t, "{\"added_tokens\": [{\"id\": 2, \"content\": \"<m>\", \"lstrip\": true, \"rstrip\": true}],"
                       " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \".\"}},"
                       " \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0, \"b\": 1}}}") == D1_OK, "load");
        CHECK(encodes_to(&t, "a\xc2\xa0<m>\xe3\x80\x80 b", want, 3), "Unicode spaces beside <m>");
        d1_tokenizer_free(&t);
    }
}

/* A byte-level BPE of the 256 stand-ins and a few merges, as JSON. */
static char *byte_level_json(const char *pre, const char *extra) {
    char *s = (char *)malloc(16384);
    size_t n = 0;
    int b;
    n += (size_t)snprintf(s + n, 16384 - n, "{\"added_tokens\": [{\"id\": 260, \"content\": \"<|eot|>\", \"special\": true},"
                                            " {\"id\": 261, \"content\": \"<x>\", \"lstrip\": true, \"rstrip\": true}],"
                                            " \"pre_tokenizer\": %s, \"decoder\": {\"type\": \"ByteLevel\"},"
                                            " \"model\": {\"type\": \"BPE\"%s, \"vocab\": {", pre, extra);
    for (b = 0; b < 256; b++) {
        char u[4];
        size_t l = d1__utf8_put(d1__byte_cp((unsigned)b), u);
        n += (size_t)snprintf(s + n, 16384 - n, "%s\"%s%.*s\": %d", b ? ", " : "", (b == '"' || b == '\\') ? "\\" : "",
                              (int)l, u, b);
    }
    /* 256: "Ġt" (space t), 257: "he", 258: "Ġthe", 259: "é" as bytes (Ã©) */
    n += (size_t)snprintf(s + n, 16384 - n, ", \"\xc4\xa0t\": 256, \"he\": 257, \"\xc4\xa0the\": 258, \"\xc3\x83\xc2\xa9\": 259},"
                                            " \"merges\": [\"\xc4\xa0 t\", \"h e\", \"\xc4\xa0t he\", \"\xc3\x83 \xc2\xa9\"]}}");
    return s;
}
static void test_byte_level(void) {
    char *json = byte_level_json("{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}", "");
    d1_tokenizer t;
    char out[64];
    size_t len;
    int ids[8], n;
    if (load(&t, json) != D1_OK) { CHECK(0, "load: %s", d1_last_error()); free(json); return; }
    free(json);
    CHECK(t.byte_level == 1 && t.n_vocab == 262, "fields");
    {
        const int the[] = {'t', 257, 258, 258}, cafe[] = {'c', 'a', 'f', 259}, nl[] = {'a', 10, 10, 'b'};
        const int x[] = {'a', 261, 'b'}, eot[] = {'a', 260, 258};
        CHECK(encodes_to(&t, "the the the", the, 4), "the");
        CHECK(encodes_to(&t, "caf\xc3\xa9", cafe, 4), "café");
        CHECK(encodes_to(&t, "a\n\nb", nl, 4), "newlines");
        CHECK(encodes_to(&t, "a <x>  b", x, 3), "lstrip / rstrip take the spaces beside <x>");
        CHECK(encodes_to(&t, "a<|eot|> the", eot, 3), "special token");
    }
    {   /* decode: bytes back, an invalid sequence as U+FFFD, special tokens skipped on request */
        const int bad[] = {'a', 0xC3, 'b'}, good[] = {0xC3, 0xA9}, sp[] = {'a', 260, 258};
        CHECK(d1_tokenizer_decode(&t, bad, 3, 0, out, sizeof out, &len) == D1_OK && !strcmp(out, "a\xef\xbf\xbd" "b") && len == 5,
              "lone 0xC3: '%s'", out);
        CHECK(d1_tokenizer_decode(&t, good, 2, 0, out, sizeof out, &len) == D1_OK && !strcmp(out, "\xc3\xa9"), "é from two bytes");
        CHECK(d1_tokenizer_decode(&t, sp, 3, 0, out, sizeof out, &len) == D1_OK && !strcmp(out, "a<|eot|> the"), "'%s'", out);
        CHECK(d1_tokenizer_decode(&t, sp, 3, 1, out, sizeof out, &len) == D1_OK && !strcmp(out, "a the"), "skip: '%s'", out);
        CHECK(d1_tokenizer_decode(&t, sp, 3, 0, NULL, 0, &len) == D1_OK && len == 12, "measure: %d", (int)len);
        /* too small: whole characters that fit, then D1_ERR_ARG with the length needed */
        CHECK(d1_tokenizer_decode(&t, good, 2, 0, out, 2, &len) == D1_ERR_ARG && out[0] == 0 && len == 2, "é in 2 bytes");
        CHECK(d1_tokenizer_decode(&t, sp, 3, 0, out, 5, &len) == D1_ERR_ARG && !strcmp(out, "a<|e") && len == 12, "cut");
        ids[0] = 262;
        CHECK(d1_tokenizer_decode(&t, ids, 1, 0, out, sizeof out, &len) == D1_ERR_TOKEN, "id 262 is none");
        ids[0] = -1;
        CHECK(d1_tokenizer_decode(&t, ids, 1, 0, out, sizeof out, &len) == D1_ERR_TOKEN, "id -1 is none");
    }
    {   /* encode: invalid UTF-8 in, a buffer too small, measuring */
        CHECK(d1_tokenizer_encode(&t, "a\xc3(", 3, ids, 8, &n) == D1_ERR_ARG, "invalid UTF-8");
        CHECK(d1_tokenizer_encode(&t, "\xed\xa0\x80", 3, ids, 8, &n) == D1_ERR_ARG, "a surrogate");
        CHECK(d1_tokenizer_encode(&t, "abcdef", 6, ids, 2, &n) == D1_ERR_ARG && n == 6, "too small: %d", n);
        CHECK(d1_tokenizer_encode(&t, "abcdef", 6, NULL, 0, &n) == D1_OK && n == 6, "measure");
        CHECK(d1_tokenizer_encode(&t, "", 0, ids, 8, &n) == D1_OK && n == 0, "empty");
    }
    {   /* every byte string that is valid UTF-8 comes back as it went in */
        d1_rng rng;
        int k, i, ok = 1;
        d1_rng_seed(&rng, 5);
        for (k = 0; k < 300 && ok; k++) {
            static const char *const parts[] = {"the", " ", "  ", "\n", "\t", "'s", "123", "caf\xc3\xa9", "\xe4\xb8\xad",
                                                "\xf0\x9f\x98\x80", "<x>", "<|eot|>", "!?", "\xc2\xbd", "A"};
            char text[256], back[512];
            int tid[256], m;
            size_t tl = 0;
            for (i = 0; i < 12; i++) {
                const char *p = parts[d1_rng_u64(&rng) % 15];
                memcpy(text + tl, p, strlen(p));
                tl += strlen(p);
            }
            text[tl] = 0;
            ok = d1_tokenizer_encode(&t, text, tl, tid, 256, &m) == D1_OK &&
                 d1_tokenizer_decode(&t, tid, m, 0, back, sizeof back, &len) == D1_OK;
            /* <x> takes the spaces beside it, so compare with them out of the text */
            if (ok && !strstr(text, "<x>")) ok = !strcmp(back, text);
            if (!ok) printf("  '%s' -> '%s'\n", text, back);
        }
        CHECK(ok, "round trip");
    }
    d1_tokenizer_free(&t);
    /* the Llama 3 form: a Split of its expression, then ByteLevel without its own, ignore_merges */
    json = byte_level_json("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
                           "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}"
                           "\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": \"Isolated\", "
                           "\"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]}",
                           ", \"ignore_merges\": true");
    if (load(&t, json) != D1_OK) { CHECK(0, "load Llama 3 form: %s", d1_last_error()); free(json); return; }
    free(json);
    {
        const int digits[] = {'1', '2', '3', '4', 258};
        CHECK(encodes_to(&t, "1234 the", digits, 5), "Llama 3 form: 123 | 4 | the");
    }
    d1_tokenizer_free(&t);
    /* add_prefix_space: a space before each stretch that lacks one */
    json = byte_level_json("{\"type\": \"ByteLevel\", \"add_prefix_space\": true}", "");
    if (load(&t, json) == D1_OK) {
        const int the[] = {258, 260, 258};
        CHECK(encodes_to(&t, "the<|eot|>the", the, 3), "prefix space");
        d1_tokenizer_free(&t);
    }
    free(json);
}

/* ---- WordLevel, the demo's kind: init_chars, unk, decoders, save and load */
static void test_wordlevel_and_files(void) {
    static const char *const tags[] = {"<answer>", "</answer>", "<eos>", "<mask>"};
    const char *dir = "build/test_tokenizer.tmp";
    d1_tokenizer t, u;
    d1_config cfg;
    char out[64];
    size_t len;
    int ids[16], n, id, same = 1;
    CHECK(d1_tokenizer_init_chars(&t, "0123456789+=\xc3\xa9", tags, 4) == D1_OK, "init_chars: %s", d1_last_error());
    CHECK(t.model == D1_TOKENIZER_WORDLEVEL && t.n_vocab == 17 && t.unk_id == D1_TOKEN_NONE, "fields");
    {
        const int want[] = {1, 10, 2, 13, 12, 14, 12, 15};
        CHECK(encodes_to(&t, "1+2<answer>\xc3\xa9</answer>\xc3\xa9<eos>", want, 8), "chars and tags");
        CHECK(d1_tokenizer_encode(&t, "1 2", 3, ids, 16, &n) == D1_ERR_TOKEN, "a space is no token");
        CHECK(d1_tokenizer_decode(&t, want, 8, 0, out, sizeof out, &len) == D1_OK &&
              !strcmp(out, "1+2<answer>\xc3\xa9</answer>\xc3\xa9<eos>"), "Fuse: '%s'", out);
        CHECK(d1_tokenizer_decode(&t, want, 8, 1, out, sizeof out, &len) == D1_OK && !strcmp(out, "1+2\xc3\xa9\xc3\xa9"),
              "skip: '%s'", out);
    }
    CHECK(d1_tokenizer_token_id(&t, "<mask>") == 16 && d1_tokenizer_token_id(&t, "<nope>") == D1_ERR_TOKEN, "token_id");
    CHECK(d1_tokenizer_token_type(&t, 16) == D1_TOKEN_SPECIAL && d1_tokenizer_token_type(&t, 3) == D1_TOKEN_MODEL &&
          d1_tokenizer_token_type(&t, 17) == D1_ERR_TOKEN, "token_type");
    CHECK(d1_tokenizer_init_chars(&u, "0\xff", tags, 4) == D1_ERR_ARG, "chars not UTF-8");
    CHECK(d1_tokenizer_init_chars(&u, "00", tags, 4) == D1_ERR_DUPLICATE, "a character twice");
    /* save with a config: its special ids named; then load the directory back */
    memset(&cfg, 0, sizeof cfg);
    cfg.vocab_size = 17; cfg.dim = 32; cfg.n_layers = 1; cfg.n_heads = 2; cfg.ffn_dim = 64; cfg.max_seq_len = 16;
    cfg.mask_id = 16; cfg.eos_id = 15; cfg.pad_id = 15;
    CHECK(d1_tokenizer_save(&t, &cfg, dir) == D1_OK, "save: %s", d1_last_error());
    CHECK(d1_tokenizer_load(&u, dir) == D1_OK, "load: %s", d1_last_error());
    CHECK(u.n_vocab == t.n_vocab, "n_vocab");
    for (id = 0; id < t.n_vocab && u.n_vocab == t.n_vocab; id++)
        same &= !strcmp(d1_tokenizer_token(&t, id), d1_tokenizer_token(&u, id)) &&
                d1_tokenizer_token_type(&t, id) == d1_tokenizer_token_type(&u, id);
    CHECK(same, "the tokens came back");
    {
        char *text = NULL;
        size_t tl = 0;
        char path[256];
        snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
        CHECK(d1__read_file(path, 1 << 20, &text, &tl) == D1_OK && strstr(text, "\"mask_token\": \"<mask>\"") &&
              strstr(text, "\"eos_token\": \"<eos>\"") && d1__json_check(text, tl), "special_tokens_map.json");
        d1__free(text);
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        CHECK(d1__read_file(path, 1 << 20, &text, &tl) == D1_OK && strstr(text, "\"PreTrainedTokenizerFast\"") &&
              strstr(text, "\"16\": {\"content\": \"<mask>\"") && d1__json_check(text, tl), "tokenizer_config.json");
        d1__free(text);
    }
    cfg.mask_id = 17; cfg.vocab_size = 18; /* an id the tokenizer lacks */
    CHECK(d1_tokenizer_save(&t, &cfg, dir) == D1_ERR_CONFIG, "save names a missing special id");
    d1_tokenizer_free(&u);
    CHECK(d1_tokenizer_load(&u, "build") == D1_ERR_NOT_FOUND, "a directory without one: %s", d1_last_error());
    CHECK(d1_tokenizer_load(&u, "build/no/such/dir") == D1_ERR_NOT_FOUND, "no such path: %s", d1_last_error());
    d1_tokenizer_free(&t);
    /* WordLevel with an unk token in the vocab, and no decoder: joined with spaces */
    CHECK(load(&t, "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Removed\"},"
                   " \"model\": {\"type\": \"WordLevel\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"hi\": 1, \"there\": 2}}}") == D1_OK,
          "load: %s", d1_last_error());
    {
        const int want[] = {1, 0, 2};
        CHECK(encodes_to(&t, "hi you  there", want, 3), "unk, spaces removed");
        CHECK(d1_tokenizer_decode(&t, want, 3, 0, out, sizeof out, &len) == D1_OK && !strcmp(out, "hi [UNK] there"), "'%s'", out);
    }
    d1_tokenizer_free(&t);
    d1_tokenizer_free(&t); /* twice is harmless */
}

int main(void) {
    TH_BANNER();
    RUN(test_malformed);
    RUN(test_bpe_merges);
    RUN(test_split_expressions);
    RUN(test_byte_level);
    RUN(test_wordlevel_and_files);
    return th_summary();
}
