/* libFuzzer target for the tokenizer (d1_tokenizer_load_memory, encode,
   decode).

   Input: tokenizer.json text, then a NUL byte, then a text to encode (no NUL:
   the whole input is the JSON and the text is fixed). Both parts are copied
   into buffers of their exact size, so AddressSanitizer sees any read past
   either. Properties checked, beyond "no crash, no leak, no UB":
     - every status is one the tokenizer documents, and a failed load leaves
       the tokenizer zeroed;
     - after a successful load: every id's text maps back to that id
       (d1_tokenizer_token_id), every id decodes; encoding measures and then
       writes the same count, and decoding what it wrote succeeds.

   Build and run (clang with libFuzzer):
     clang -g -O1 -fsanitize=fuzzer,address,undefined tests/fuzz_tokenizer.c -o build/fuzz_tokenizer -lm
     ./build/fuzz_tokenizer -max_total_time=60 build/fuzz_tok_corpus tests/data/fuzz_tokenizer_corpus
   Without libFuzzer, -DD1_FUZZ_REPLAY_MAIN builds a driver that replays
   files and directories (default the committed seeds) and ends with the
   test suite's "N passed, N failed" line. */
#define D1_IMPLEMENTATION
#include "../d1.h"

#include <stdio.h>
#include <stdlib.h>

static int known_status(int rc) {
    return rc == D1_OK || rc == D1_ERR_NOMEM || rc == D1_ERR_JSON || rc == D1_ERR_UNSUPPORTED ||
           rc == D1_ERR_CONFIG || rc == D1_ERR_DUPLICATE;
}

/* What a loaded tokenizer must do. */
static void check_loaded(const d1_tokenizer *t, const char *text, size_t tl) {
    int id, n = 0, n2 = 0, *ids, rc;
    size_t len, bad, i, l;
    char out[64];
    for (id = 0; id < t->n_vocab; id++) {
        const char *s = d1_tokenizer_token(t, id);
        if (!s) continue;
        /* a text with a NUL inside (JSON's \u0000) cannot be named by a C string */
        if ((size_t)t->impl->len[id] == strlen(s) && d1_tokenizer_token_id(t, s) != id) abort();
        rc = d1_tokenizer_decode(t, &id, 1, 0, out, sizeof out, &len);
        if (rc != D1_OK && rc != D1_ERR_ARG) abort();
    }
    for (i = 0; i < tl; i += l)
        if (!(l = d1__utf8_len((const unsigned char *)text, tl, i, &bad))) {
            if (d1_tokenizer_encode(t, text, tl, NULL, 0, &n) != D1_ERR_ARG) abort(); /* invalid UTF-8 is refused */
            return;
        }
    rc = d1_tokenizer_encode(t, text, tl, NULL, 0, &n);
    if (rc == D1_ERR_TOKEN) return; /* a piece with no token and no unk */
    if (rc != D1_OK) abort();
    if (!(ids = (int *)malloc(sizeof(int) * (size_t)(n + 1)))) abort();
    if (d1_tokenizer_encode(t, text, tl, ids, n + 1, &n2) != D1_OK || n2 != n) abort();
    if (d1_tokenizer_decode(t, ids, n, 0, NULL, 0, &len) != D1_OK) abort();
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = (const uint8_t *)memchr(data, 0, size);
    static const char dflt[] = "12+3=15<answer>ab c</answer> the caf\xc3\xa9 'll 1234\n\n";
    size_t jl = nul ? (size_t)(nul - data) : size, tl = nul ? size - jl - 1 : sizeof dflt - 1;
    char *json = (char *)malloc(jl ? jl : 1), *text = (char *)malloc(tl ? tl : 1);
    d1_tokenizer t;
    int rc;
    if (!json || !text) abort();
    memcpy(json, data, jl);
    memcpy(text, nul ? (const char *)nul + 1 : dflt, tl);
    memset(&t, 0xA5, sizeof t);
    rc = d1_tokenizer_load_memory(&t, json, jl);
    if (!known_status(rc)) abort();
    if (rc == D1_OK) {
        check_loaded(&t, text, tl);
        d1_tokenizer_free(&t);
    } else if (t.impl || t.n_vocab) {
        abort(); /* a failed load leaves the tokenizer zeroed */
    }
    free(json);
    free(text);
    return 0;
}

#ifdef D1_FUZZ_REPLAY_MAIN
#define D1_FUZZ_NAME "fuzz_tokenizer"
#define D1_FUZZ_SEEDS "/fuzz_tokenizer_corpus"
#include "fuzz_replay.h"
#endif
