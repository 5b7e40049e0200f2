// llama_logits_check.cpp - the logits llama.cpp computes for a GGUF that `d1 export-gguf`
// wrote, against the logits d1.h computes for the same checkpoint: the check that the export
// (names, shapes, the q/k row order for llama.cpp's pairwise RoPE) is the same function.
// Not part of the build (it links llama.cpp); build it against a llama.cpp checkout (one command):
//
//   c++ -O3 -march=native -std=c++17 -I. -ILLAMA/include -ILLAMA/ggml/include tools/llama_logits_check.cpp
//       -o build/llama_logits_check -LLLAMA/build/bin -lllama -lggml -lggml-base -lm -lpthread
//   LD_LIBRARY_PATH=LLAMA/build/bin build/llama_logits_check DIR model.gguf 1,2,3,... [N] [bf16]
//
// bf16 (for a GGUF of `d1 export-gguf --type bf16`): d1.h's logits are its D1_PRECISION_BF16
// pass's (the sampler's no-gradient pass) instead of d1_model_forward's FP32 ones.
// It runs one non-causal pass over the tokens (flash attention off) in both and prints the
// largest |difference| relative to the largest |logit|, and the argmax agreement; with N, it
// then times N passes of each, alternating, one thread (the median of each, in ms; then d1.h's
// pass again with D1_PRECISION_BF16): a sampler's cost is its passes.
#define D1_IMPLEMENTATION
#include "d1.h"
#include "llama.h"
#include "llama_common.h"
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>


int main(int argc, char **argv) {
    bool bf16 = argc >= 5 && !std::strcmp(argv[argc - 1], "bf16");
    if (bf16) argc--;
    if (argc != 4 && argc != 5) {
        std::fprintf(stderr, "usage: llama_logits_check DIR model.gguf TOKENS (comma-separated ids) [N] [bf16]\n");
        return 2;
    }
    std::vector<int> tok;
    if (!parse_ids(argv[3], tok)) {
        std::fprintf(stderr, "llama_logits_check: TOKENS: comma-separated ids\n");
        return 2;
    }
    int T = (int)tok.size(), rc;
    d1_model m;
    if ((rc = d1_model_load(&m, argv[1])) != D1_OK ||
        (rc = bf16 ? d1_model_set_precision(&m, D1_PRECISION_BF16) : d1_model_forward(&m, tok.data(), 1, T, NULL)) !=
            D1_OK) {
        std::fprintf(stderr, "d1.h: %s: %s\n", d1_strerror(rc), d1_last_error());
        return 1;
    }
    if (bf16) { /* the logits of D1_PRECISION_BF16: the sampler's pass, its buffers sized first */
        if ((rc = d1__ensure(&m, 1, T)) != D1_OK) return 1;
        d1__forward_nograd(&m, tok.data(), 1, T, NULL);
    }
    int V = m.config.vocab_size;
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model *lm = llama_model_load_from_file(argv[2], mp);
    if (!lm) return 1;
    llama_context *ctx = noncausal_context(lm, T);
    if (!ctx) return 1;
    llama_batch b = positions_batch(T, tok.data());
    if (llama_decode(ctx, b) != 0) return 1;
    double maxdiff = 0, maxabs = 0;
    int agree = 0;
    for (int i = 0; i < T; i++) {
        const float *l = llama_get_logits_ith(ctx, i), *d = m.logits + (size_t)i * V;
        int al = 0, ad = 0;
        for (int v = 0; v < V; v++) {
            maxdiff = std::fmax(maxdiff, std::fabs((double)l[v] - d[v]));
            maxabs = std::fmax(maxabs, std::fabs((double)d[v]));
            if (l[v] > l[al]) al = v;
            if (d[v] > d[ad]) ad = v;
        }
        agree += al == ad;
    }
    std::printf("%d positions x %d logits: max |llama.cpp - d1.h| / max |d1.h| = %.2e; argmax agrees at %d of %d\n",
                T, V, maxdiff / maxabs, agree, T);
    if (argc == 5) { /* N passes of each, alternating: d1.h's no-gradient pass (the sampler's) and llama_decode */
        int n = std::atoi(argv[4]);
        std::vector<double> td, tl;
        d1_model_set_threads(&m, 1);
        d1_model_set_precision(&m, D1_PRECISION_F32); /* the FP32 pass first (after a bf16 check too) */
        for (int r = 0; r < n; r++) {
            double t0 = ms_now();
            d1__forward_nograd(&m, tok.data(), 1, T, NULL);
            td.push_back(ms_now() - t0);
            t0 = ms_now();
            if (llama_decode(ctx, b) != 0) return 1;
            tl.push_back(ms_now() - t0);
        }
        std::vector<double> tb; /* and d1.h's pass with D1_PRECISION_BF16 (llama.cpp's in the GGUF's types) */
        d1_model_set_precision(&m, D1_PRECISION_BF16);
        for (int r = 0; r < n; r++) {
            double t0 = ms_now();
            d1__forward_nograd(&m, tok.data(), 1, T, NULL);
            tb.push_back(ms_now() - t0);
        }
        std::sort(td.begin(), td.end());
        std::sort(tl.begin(), tl.end());
        std::sort(tb.begin(), tb.end());
        std::printf("one pass over %d tokens, 1 thread, median of %d: d1.h %.3f ms (BF16: %.3f), llama.cpp %.3f ms\n",
                    T, n, td[td.size() / 2], tb[tb.size() / 2], tl[tl.size() / 2]);
    }
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(lm);
    d1_model_free(&m);
    return 0;
}
