// llama_sampler_check.cpp - d1.h's sampler against llama.cpp on the same model (a GGUF that
// `d1 export-gguf` wrote from DIR), one sequence, one thread, three ways:
//
//   d1.h     d1_sampler_generate: temperature 0 (argmax), low-confidence remasking, LLaDA's
//            semi-autoregressive blocks, no KV cache (every step one full non-causal pass over
//            prompt + completion), in the precision asked (f32, or bf16: D1_PRECISION_BF16)
//   llama    the same schedule, step for step, with llama_decode as the pass (the code below:
//            d1.h's d1__propose / d1_sampler_transfer_count rules: argmax without the mask id,
//            confidence softmax(l)[x0] in double, the most confident first, ties to the earlier
//            position): the tokens must agree with d1.h's where the logits do
//   llama.cpp's diffusion_generate (examples/diffusion, what llama-diffusion-cli runs) with
//            the CLI's --temp 0 --top-k 0 --top-p 1 --diffusion-block-length B: block schedule,
//            confidence-based (algorithm 4), no KV cache; its --temp 0 does NOT take the argmax:
//            the chain's last sampler (dist) draws x0 from softmax(l) and the confidence is
//            p(x0), so it is compared with d1.h at temperature 1 (Gumbel-max: the same
//            distribution, the same confidence), different random streams. Its block count is
//            (P + G) / B starting at the prompt's end, so the blocks past the completion are cut
//            by the step callback (they would cost one pass each and reveal nothing).
//
// Not part of the build (it links llama.cpp); `make bench-compare LLAMA_CPP=BUILD_DIR` builds
// and runs it; by hand (LLAMA: a llama.cpp checkout built in LLAMA/build; one command):
//
//   c++ -O3 -march=native -std=c++17 -I. -ILLAMA/include -ILLAMA/ggml/include -ILLAMA/examples/diffusion
//       -ILLAMA/common tools/llama_sampler_check.cpp -o build/llama_sampler_check
//       LLAMA/build/examples/diffusion/libllama-diffusion.a -LLLAMA/build/bin -lllama-common
//       LLAMA/build/common/libllama-common-base.a -LLLAMA/build/bin -lllama -lggml -lggml-base -lm -lpthread
//   LD_LIBRARY_PATH=LLAMA/build/bin build/llama_sampler_check DIR model.gguf PROMPT GEN BLOCK STEPS f32|bf16 [N]
//
// PROMPT: comma-separated ids. Prints the tokens of each, their agreement, and the median over
// N runs (default 11) of each way's wall time for the whole generation, and the passes.
#define D1_IMPLEMENTATION
#include "d1.h"
#include "llama.h"
#include "llama_common.h"
#include "diffusion.h"
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

struct cand { double conf; int pos, tok; };

// d1.h's schedule with llama_decode as the pass; returns the passes, -1 on failure
static int llama_generate(llama_context *ctx, llama_batch &b, std::vector<int> &x, int P, int G, int blk, int steps,
                          int V, int mask_id) {
    int T = P + G, nb = G / blk, spb = steps / nb, passes = 0;
    std::vector<cand> c;
    for (int k = 0; k < nb; k++) {
        int b0 = P + k * blk, b1 = b0 + blk, at_start = 0;
        for (int i = b0; i < b1; i++) at_start += x[i] == mask_id;
        for (int s = 0; s < spb; s++) {
            for (int i = 0; i < T; i++) b.token[i] = x[i];
            if (llama_decode(ctx, b) != 0) return -1;
            passes++;
            c.clear();
            for (int i = b0; i < b1; i++) {
                if (x[i] != mask_id) continue;
                const float *l = llama_get_logits_ith(ctx, i);
                double mx = -HUGE_VAL, sum = 0;
                int arg = -1;
                for (int v = 0; v < V; v++)
                    if (v != mask_id && l[v] > mx) { mx = l[v]; arg = v; }
                for (int v = 0; v < V; v++)
                    if (v != mask_id) sum += std::exp((double)l[v] - mx);
                c.push_back({1.0 / sum, i, arg}); // exp(l[arg] - mx) / sum
            }
            std::sort(c.begin(), c.end(), [](const cand &a, const cand &q) {
                return a.conf != q.conf ? a.conf > q.conf : a.pos < q.pos;
            });
            int n = std::min((int)c.size(), d1_sampler_transfer_count(at_start, spb, s));
            for (int j = 0; j < n; j++) x[c[j].pos] = c[j].tok;
        }
    }
    return passes;
}

struct cut { int last_step; int passes; };
static bool cut_cb(int32_t step, int32_t, const llama_token *, int32_t, void *u) {
    cut *c = (cut *)u;
    if (step >= c->last_step) return false; // a block past the completion: no pass
    c->passes++;
    return true;
}

static void print_tokens(const char *what, const std::vector<int> &x, int P) {
    std::printf("%-28s", what);
    for (size_t i = (size_t)P; i < x.size(); i++) std::printf("%s%d", i > (size_t)P ? "," : "", x[i]);
    std::printf("\n");
}
static int agree(const std::vector<int> &a, const std::vector<int> &b, int P) {
    int n = 0;
    for (size_t i = (size_t)P; i < a.size(); i++) n += a[i] == b[i];
    return n;
}

int main(int argc, char **argv) {
    if (argc != 8 && argc != 9) {
        std::fprintf(stderr, "usage: llama_sampler_check DIR model.gguf PROMPT GEN BLOCK STEPS f32|bf16 [N]\n");
        return 2;
    }
    std::vector<int> prompt;
    if (!parse_ids(argv[3], prompt)) {
        std::fprintf(stderr, "llama_sampler_check: PROMPT: comma-separated ids\n");
        return 2;
    }
    int P = (int)prompt.size(), G = std::atoi(argv[4]), blk = std::atoi(argv[5]), steps = std::atoi(argv[6]);
    int bf16 = !std::strcmp(argv[7], "bf16"), N = argc == 9 ? std::atoi(argv[8]) : 11, T = P + G, rc;
    if (G <= 0 || blk <= 0 || G % blk || steps % (G / blk) || N < 1 || (!bf16 && std::strcmp(argv[7], "f32"))) {
        std::fprintf(stderr, "llama_sampler_check: GEN a multiple of BLOCK, STEPS of GEN/BLOCK, f32 or bf16\n");
        return 2;
    }
    d1_model m;
    if ((rc = d1_model_load(&m, argv[1])) != D1_OK ||
        (bf16 && (rc = d1_model_set_precision(&m, D1_PRECISION_BF16)) != D1_OK)) {
        std::fprintf(stderr, "d1.h: %s: %s\n", d1_strerror(rc), d1_last_error());
        return 1;
    }
    d1_model_set_threads(&m, 1);
    int V = m.config.vocab_size, mask_id = m.config.mask_id;

    llama_backend_init();
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_model *lm = llama_model_load_from_file(argv[2], llama_model_default_params());
    if (!lm) return 1;
    llama_context *ctx = noncausal_context(lm, T);
    if (!ctx) return 1;
    llama_batch b = positions_batch(T, NULL);

    // 1. d1.h, temperature 0
    d1_sampler_desc d = d1_sampler_default_desc(G);
    d.block_len = blk; d.steps = steps;
    d1_sample_stats st;
    d1_rng rng;
    d1_rng_seed(&rng, 1);
    std::vector<int> xd(T), xl(T), xc(T), xd1(T);
    std::vector<double> td, tl, tc, td1;
    int lpasses = 0;
    cut cb = {0, 0};
    diffusion_params dp;
    dp.steps = steps / (G / blk) * (T / std::max(blk, 1)); dp.temperature = 0.0f; dp.top_k = 0; dp.top_p = 1.0f;
    dp.mask_token_id = mask_id; dp.seed = 1; dp.shift_logits = false;
    dp.algorithm = DIFFUSION_ALGORITHM_CONFIDENCE_BASED; dp.schedule = DIFFUSION_TRANSFER_SCHEDULE_BLOCK_BASED;
    dp.block_length = blk; dp.max_length = T; dp.step_callback = cut_cb; dp.step_callback_user_data = &cb;
    bool run_dg = T % blk == 0;
    d1_sampler_desc d1t = d;
    d1t.temperature = 1.0f;
    d1_sample_stats st1;
    for (int r = 0; r <= N; r++) { // run 0 warms up, untimed; the four alternate
        double t0 = ms_now();
        if ((rc = d1_sampler_generate(&m, &d, prompt.data(), 1, P, NULL, &rng, xd.data(), &st)) != D1_OK) {
            std::fprintf(stderr, "d1_sampler_generate: %s: %s\n", d1_strerror(rc), d1_last_error());
            return 1;
        }
        double t1 = ms_now();
        std::copy(prompt.begin(), prompt.end(), xl.begin());
        std::fill(xl.begin() + P, xl.end(), mask_id);
        if ((lpasses = llama_generate(ctx, b, xl, P, G, blk, steps, V, mask_id)) < 0) return 1;
        double t2 = ms_now();
        if (run_dg) {
            int ng = 0;
            cb.last_step = steps; cb.passes = 0;
            dp.seed = (uint32_t)r + 1;
            diffusion_generate(ctx, prompt.data(), xc.data(), P, dp, ng);
            if (ng != T) return 1;
        }
        double t3 = ms_now();
        if ((rc = d1_sampler_generate(&m, &d1t, prompt.data(), 1, P, NULL, &rng, xd1.data(), &st1)) != D1_OK) return 1;
        double t4 = ms_now();
        if (r) { td.push_back(t1 - t0); tl.push_back(t2 - t1); tc.push_back(t3 - t2); td1.push_back(t4 - t3); }
    }
    std::printf("model %s, %s, prompt %d + gen %d tokens, block %d, steps %d, 1 thread, median of %d\n", argv[2],
                bf16 ? "BF16 (d1.h D1_PRECISION_BF16)" : "F32", P, G, blk, steps, N);
    print_tokens("d1.h (temperature 0):", xd, P);
    print_tokens("llama, d1.h's schedule:", xl, P);
    std::printf("tokens agree at %d of %d positions\n", agree(xd, xl, P), G);
    std::printf("RESULT d1 %s %.3f ms %d passes\n", argv[7], median(td), st.forward_passes);
    std::printf("RESULT llama_same_schedule %s %.3f ms %d passes\n", argv[7], median(tl), lpasses);
    if (run_dg) {
        print_tokens("llama diffusion_generate:", xc, P);
        std::printf("RESULT llama_diffusion_generate %s %.3f ms %d passes\n", argv[7], median(tc), cb.passes);
    } else {
        std::printf("llama diffusion_generate: skipped (its blocks need (prompt + gen) %% block == 0)\n");
    }
    std::printf("RESULT d1_temperature1 %s %.3f ms %d passes\n", argv[7], median(td1), st1.forward_passes);
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(lm);
    d1_model_free(&m);
    return 0;
}
