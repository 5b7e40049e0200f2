/* tokenizer_bench - d1.h's tokenizer at a real vocabulary's size: load a
   tokenizer.json, encode a text file as one string, decode it back.

     tokenizer_bench TOKENIZER TEXT     (TOKENIZER: a tokenizer.json or its directory)

   Prints the load time, the encode and decode throughput (best of 5) and
   whether the text came back byte for byte. `make bench-tokenizer` runs it
   on a 128,000-token byte-level BPE that tools/make_big_tokenizer.py writes
   (LLaDA-8B's vocabulary size), beside the npm package @huggingface/tokenizers
   on the same files (tools/tokenizer_check/bench.mjs). */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    d1_tokenizer tok;
    char *text = NULL, *back;
    size_t len = 0, blen = 0;
    int *ids, n = 0, rep, rc;
    double t0, load, enc = 1e9, dec = 1e9;
    if (argc != 3) {
        fprintf(stderr, "usage: tokenizer_bench TOKENIZER TEXT\n");
        return 2;
    }
    t0 = now_s();
    if ((rc = d1_tokenizer_load(&tok, argv[1])) != D1_OK) {
        fprintf(stderr, "%s: %s\n", d1_strerror(rc), d1_last_error());
        return 1;
    }
    load = now_s() - t0;
    if (d1__read_file(argv[2], (uint64_t)1 << 30, &text, &len) != D1_OK ||
        d1_tokenizer_encode(&tok, text, len, NULL, 0, &n) != D1_OK) {
        fprintf(stderr, "%s\n", d1_last_error());
        return 1;
    }
    ids = (int *)malloc(sizeof(int) * (size_t)(n + 1));
    back = (char *)malloc(len + 1);
    for (rep = 0; rep < 5; rep++) {
        t0 = now_s();
        rc = d1_tokenizer_encode(&tok, text, len, ids, n + 1, &n);
        if (now_s() - t0 < enc) enc = now_s() - t0;
        t0 = now_s();
        rc = rc ? rc : d1_tokenizer_decode(&tok, ids, n, 0, back, len + 1, &blen);
        if (now_s() - t0 < dec) dec = now_s() - t0;
        if (rc != D1_OK) { fprintf(stderr, "%s\n", d1_last_error()); return 1; }
    }
    printf("d1.h:      load %.3f s (%d tokens, %d merges); encode %.2f MB/s (%d ids from %zu bytes); "
           "decode %.2f MB/s; round trip %s\n", load, tok.n_vocab, tok.n_merges, (double)len / 1e6 / enc, n, len,
           (double)len / 1e6 / dec, blen == len && !memcmp(back, text, len) ? "equal" : "DIFFERENT");
    d1_tokenizer_free(&tok);
    d1__free(text);
    free(ids);
    free(back);
    return 0;
}
