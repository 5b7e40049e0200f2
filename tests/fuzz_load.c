/* libFuzzer target for the checkpoint loader (d1_model_load_memory).

   Input: [u16 little-endian n][n bytes of config.json][the safetensors blob]
   (n is clamped to what is there). The two parts are copied into buffers of
   their exact size, so AddressSanitizer sees any read past either.

   The second part also goes through the sharded loader's index.json parser.
   Properties checked, beyond "no crash, no leak, no UB":
     - a failed load leaves the model struct byte for byte as it was;
     - every status is one the loader documents;
     - a successful load runs a forward pass, saves back (F32) and reloads to
       the same bits.

   Build and run (clang with libFuzzer):
     clang -g -O1 -fsanitize=fuzzer,address,undefined tests/fuzz_load.c -o build/fuzz_load -lm
     ./build/fuzz_load -max_total_time=60 build/fuzz_corpus tests/data/fuzz_corpus
   Without libFuzzer, a replay driver runs the target over files and directories:
     cc -DD1_FUZZ_REPLAY_MAIN -g -fsanitize=address,undefined tests/fuzz_load.c -o build/fuzz_replay -lm
     ./build/fuzz_replay [files or directories; default tests/data/fuzz_corpus]
   It ends with the test suite's "N passed, N failed" line. The replay driver also builds with -DD1_NO_STDIO (the library's memory API
   only; the driver itself still reads files). */
#define D1_IMPLEMENTATION
#include "../d1.h"

#include <stdio.h>
#include <stdlib.h>

static int known_status(int rc) {
    return rc == D1_OK || rc == D1_ERR_NOMEM || rc == D1_ERR_CONFIG || rc == D1_ERR_NONFINITE || rc == D1_ERR_NOT_FOUND ||
           (rc <= D1_ERR_IO && rc >= D1_ERR_TRUNCATED); /* the checkpoint codes */
}

#ifndef D1_NO_STDIO
/* The second part read as a model.safetensors.index.json for config c (the
   sharded loader's parser, otherwise reachable through files only). */
static void fuzz_index(const d1_config *c, const unsigned char *text, size_t len) {
    d1__ckpt ck;
    int rc;
    memset(&ck, 0, sizeof ck);
    ck.cfg = *c;
    rc = d1__parse_index(&ck, (const char *)text, len);
    if (!known_status(rc)) abort();
    d1__ckpt_free(&ck);
}
#endif

/* A loaded model must work and save back to the same bits. */
static void check_loaded(d1_model *m) {
    size_t n = d1_model_save_size(m, D1_DTYPE_F32);
    unsigned char *blob = (unsigned char *)malloc(n);
    char cfg[D1_CONFIG_JSON_MAX];
    d1_model back;
    int tok = 0;
    if (d1_model_forward(m, &tok, 1, 1, NULL) != D1_OK) abort();
    if (!blob || d1_model_save_memory(m, D1_DTYPE_F32, blob, n, cfg, sizeof cfg) != D1_OK) abort();
    if (d1_model_load_memory(&back, cfg, strlen(cfg), blob, n) != D1_OK) abort();
    if (memcmp(&back.config, &m->config, sizeof back.config) ||
        memcmp(back.param_memory, m->param_memory, m->num_params * sizeof(float)))
        abort();
    d1_model_free(&back);
    free(blob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t cl, sl;
    char *cfg;
    unsigned char *st;
    d1_model m, before;
    d1_config c;
    int rc;
    if (size < 2) return 0;
    cl = (size_t)data[0] | (size_t)data[1] << 8;
    if (cl > size - 2) cl = size - 2;
    sl = size - 2 - cl;
    cfg = (char *)malloc(cl ? cl : 1);
    st = (unsigned char *)malloc(sl ? sl : 1);
    if (!cfg || !st) abort();
    memcpy(cfg, data + 2, cl);
    memcpy(st, data + 2 + cl, sl);
    /* (the RoPE tables are built at the first pass, for the positions it
       uses: a config.json of any max_sequence_length costs nothing here) */
#ifndef D1_NO_STDIO
    if (d1_config_from_json(&c, cfg, cl) == D1_OK) fuzz_index(&c, st, sl);
#else
    (void)c;
#endif
    memset(&m, 0xA5, sizeof m);
    before = m;
    rc = d1_model_load_memory(&m, cfg, cl, sl ? st : NULL, sl);
    if (!known_status(rc)) abort();
    if (rc == D1_OK) {
        check_loaded(&m);
        d1_model_free(&m);
    } else if (memcmp(&m, &before, sizeof m)) {
        abort(); /* a failed load touched the model */
    }
    free(cfg);
    free(st);
    return 0;
}

#ifdef D1_FUZZ_REPLAY_MAIN
#define D1_FUZZ_NAME "fuzz_load"
#define D1_FUZZ_SEEDS "/fuzz_corpus"
#include "fuzz_replay.h"
#endif
