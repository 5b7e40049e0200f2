/* bench_rl.c - the RL loop's speed at the demo's size, per estimator.

   One d1_grpo_step is the demo's RL iteration: 16 Sudoku training prompts x
   G 6 = 96 rollouts of gen 56 in one block (28 steps, temperature 0.9, no KV
   cache), then the estimator's no-gradient passes and mu AdamW updates, from
   the shipped base checkpoint (examples/checkpoints/sudoku/base). Per phase
   it reports seconds, rollouts/s and updates/s, and the model's arithmetic
   rate (GFLOP/s of the transformer's matmuls and attention, forward = 1,
   forward + backward = 3 units) against the FP32 GEMM peak measured in the
   same run on the same thread (d1__gemm at 960 x 1024 x 512). The last rows
   repeat two estimators with D1_PRECISION_BF16 on the policy and the
   reference (the sampler's and the log-prob passes in BF16; the updates stay
   FP32); their GFLOP/s count the same arithmetic, so they can exceed the FP32
   peak. The two "BF16 mixed" rows run the updates too with BF16 operands
   (D1_PRECISION_BF16_MIXED). --only TEXT runs the rows whose name holds TEXT.
   The sampler computes each distinct canvas of a step once (the G rollouts
   of a prompt agree until their last steps); the last column is the share
   of the rollout's rows it computed, and the rollout's GFLOP/s count those.

     build/bench_rl [--iters N] [--threads N] [--mu N] [--csv FILE] [--only TEXT]

   Each estimator runs N timed iterations (default 2) after one warm-up;
   times are medians. Run it on an otherwise idle core (taskset -c 1) and
   compare only rows measured in one run. */
#define _DEFAULT_SOURCE
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "../examples/tasks.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* FLOPs of one forward pass over B rows of T tokens: every matmul (2 per
   multiply-add) and the attention's scores and weighted sum. */
static double forward_flops(const d1_config *c, int B, int T) {
    double C = c->dim, F = c->ffn_dim, V = c->vocab_size, D = (double)c->dim / c->n_heads;
    double KVD = c->n_kv_heads * D, per_tok_layer = 2 * C * (C + 2 * KVD) + 2 * C * C + 2 * C * 2 * F + 2 * F * C;
    double attn = 4.0 * T * C; /* q.k and p.v per token and layer */
    return (double)B * T * (c->n_layers * (per_tok_layer + attn) + 2 * C * V);
}

/* FP32 GEMM peak on this thread: d1__gemm at a shape that fills the tiles. */
static double gemm_peak(void) {
    enum { M = 960, N = 1024, K = 512 };
    float *A = (float *)malloc(sizeof(float) * M * K), *B = (float *)malloc(sizeof(float) * K * N);
    float *C = (float *)malloc(sizeof(float) * M * N), *ws = d1__alloc_floats(D1__GEMM_WS);
    double best = 0.0;
    int i, rep;
    for (i = 0; i < M * K; i++) A[i] = (float)(i % 7) * 0.1f;
    for (i = 0; i < K * N; i++) B[i] = (float)(i % 5) * 0.1f;
    for (rep = 0; rep < 5; rep++) {
        double t0 = now();
        d1__gemm(M, N, K, A, K, 1, B, N, 1, C, N, 0, ws);
        t0 = now() - t0;
        if (2.0 * M * N * K / t0 > best) best = 2.0 * M * N * K / t0;
    }
    free(A); free(B); free(C); d1__free(ws);
    return best / 1e9;
}

/* the demo's reward, on the decoded text (user: the task) */
static float reward_cells(const d1_rollout *ro, void *user) {
    const task *t = (const task *)user;
    char p[64], c[256];
    tok_decode(t, ro->prompt, ro->prompt_len, p, sizeof p);
    tok_decode(t, ro->completion, ro->completion_len, c, sizeof c);
    return t->reward_text(p, c);
}

typedef struct est { const char *name; int estimator, objective, mc, passes_per_update, precision; } est;

int main(int argc, char **argv) {
    static const est ests[] = {
        {"one-step (d1)", D1_LOGP_ONE_STEP, D1_GRPO_CLIPPED, 0, 1, D1_PRECISION_F32},
        {"coupled", D1_LOGP_COUPLED, D1_GRPO_CLIPPED, 0, 2, D1_PRECISION_F32},
        {"ELBO (ESPO, 1 draw)", D1_LOGP_ELBO, D1_GRPO_CLIPPED, 1, 2, D1_PRECISION_F32},
        {"ELBO (ESPO, 2 draws)", D1_LOGP_ELBO, D1_GRPO_CLIPPED, 2, 4, D1_PRECISION_F32},
        {"trajectory (d2, N 8)", D1_LOGP_TRAJECTORY, D1_GRPO_CLIPPED, 0, 1, D1_PRECISION_F32},
        {"block (SPG)", D1_LOGP_BLOCK, D1_GRPO_SPG, 0, 1, D1_PRECISION_F32},
        /* the same steps with the no-gradient passes in BF16 (d1_model_set_precision
           on the policy and the reference): rollouts and old / reference log-probs */
        {"one-step (d1), BF16 inference", D1_LOGP_ONE_STEP, D1_GRPO_CLIPPED, 0, 1, D1_PRECISION_BF16},
        {"ELBO (ESPO, 1 draw), BF16 inference", D1_LOGP_ELBO, D1_GRPO_CLIPPED, 1, 2, D1_PRECISION_BF16},
        /* and the updates too in mixed precision (D1_PRECISION_BF16_MIXED on the
           policy: BF16 operands in the forward and backward matmuls, FP32 weights,
           gradients and moments; the reference, which never back-propagates, BF16) */
        {"one-step (d1), BF16 mixed", D1_LOGP_ONE_STEP, D1_GRPO_CLIPPED, 0, 1, D1_PRECISION_BF16_MIXED},
        {"ELBO (ESPO, 1 draw), BF16 mixed", D1_LOGP_ELBO, D1_GRPO_CLIPPED, 1, 2, D1_PRECISION_BF16_MIXED},
    };
    enum { NP = 16, G = 6, P = 16, GEN = 56 };
    const task *sudoku = task_find("sudoku");
    const char *csv_path = NULL, *only = NULL;
    int iters = 2, threads = 1, mu = 4, e, i, it;
    d1_model ref;
    double peak;
    FILE *csv = NULL;
    if (!task_tokenizers_init()) return 1; /* built here, before any thread decodes */
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mu") && i + 1 < argc) mu = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--csv") && i + 1 < argc) csv_path = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_rl [--iters N] [--threads N] [--mu N] [--csv FILE] [--only TEXT]\n");
            return 2;
        }
    }
    if (iters < 1 || iters > 50) iters = 2;
    if (d1_model_load(&ref, "examples/checkpoints/sudoku/base") != D1_OK) {
        fprintf(stderr, "bench_rl: run from the repository root (needs examples/checkpoints/sudoku/base)\n");
        return 1;
    }
    if (ref.config.mask_id != task_token(sudoku, "<mask>") || ref.config.eos_id != task_token(sudoku, "<eos>")) {
        fprintf(stderr, "bench_rl: the checkpoint's mask / EOS ids are not the Sudoku task's\n");
        return 1;
    }
    printf("build: %s\n", d1_build_info());
    peak = gemm_peak();
    printf("FP32 GEMM peak on this thread: %.1f GFLOP/s (960 x 1024 x 512)\n", peak);
    printf("one d1_grpo_step: %d prompts x G %d, gen %d (one block, %d steps, T 0.9), mu %d, %d thread(s), "
           "medians of %d\n\n", NP, G, GEN, GEN / 2, mu, threads, iters);
    printf("| estimator | rollout s | logp s | update s | total s | rollouts/s | updates/s | GFLOP/s rollout | "
           "GFLOP/s logp | GFLOP/s update | %% of peak | rollout rows computed |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    if (csv_path && (csv = fopen(csv_path, "w")) != NULL)
        fprintf(csv, "estimator,t_generate,t_logp,t_update,total,rollouts_s,updates_s,gflops_generate,gflops_logp,"
                     "gflops_update,peak,rollout_rows_share\n");
    for (e = 0; e < (int)(sizeof ests / sizeof ests[0]); e++) {
        d1_model pol;
        d1_adamw opt;
        d1_adamw_desc od = d1_adamw_default_desc();
        d1_grpo_desc d = d1_grpo_default_desc(GEN);
        d1_reward rw;
        d1_rng rng, prng;
        int prompts[NP * P], rc = D1_OK;
        double tg[50], tl[50], tu[50], tt[50], fg = 0, fl = 0, fu = 0, one = forward_flops(&ref.config, NP * G, P + GEN);
        double shared = 1.0; /* the rollout rows computed over those of an unshared sampler */
        if (only && !strstr(ests[e].name, only)) continue;
        d1_model_load(&pol, "examples/checkpoints/sudoku/base");
        d1_model_set_threads(&pol, threads);
        d1_model_set_threads(&ref, threads);
        d1_model_set_precision(&pol, ests[e].precision);
        d1_model_set_precision(&ref, ests[e].precision == D1_PRECISION_BF16_MIXED ? D1_PRECISION_BF16 : ests[e].precision);
        od.lr = 3e-4f; od.beta2 = 0.99f; od.weight_decay = 0.0f; od.grad_clip = 0.2f;
        d1_adamw_init(&opt, &pol, &od);
        rw.name = "cells"; rw.fn = reward_cells; rw.weight = 1.0f; rw.user = (void *)sudoku;
        d.rewards = &rw; d.n_rewards = 1; d.inner_steps = mu;
        d.sampler.block_len = GEN; d.sampler.steps = GEN / 2;
        d.estimator = ests[e].estimator; d.objective = ests[e].objective; d.mc_draws = ests[e].mc;
        if (d.estimator == D1_LOGP_ELBO) { d.kl = D1_KL_K2; d.beta = 0.01f; d.leave_one_out = 1; d.clip_eps = 0.2f; }
        if (d.objective == D1_GRPO_SPG) { d.beta = 0.0f; d.eubo_beta = 1.0f; d.eubo_mix = 0.5f; }
        d1_rng_seed(&rng, 7);
        d1_rng_seed(&prng, 11);
        for (it = 0; it <= iters && rc == D1_OK; it++) {
            d1_grpo_stats st;
            double t0;
            int logp_passes;
            for (i = 0; i < NP; i++) {
                example ex;
                sudoku->example(&prng, SPLIT_TRAIN, &ex);
                tok_encode(sudoku, ex.prompt, prompts + i * P, P);
            }
            t0 = now();
            rc = d1_grpo_step(&pol, &ref, &opt, &d, prompts, NP, P, NULL, &rng, &st);
            if (rc != D1_OK || it == 0) continue; /* the first is a warm-up */
            tt[it - 1] = now() - t0;
            tg[it - 1] = st.t_generate; tl[it - 1] = st.t_logp; tu[it - 1] = st.t_update;
            logp_passes = st.forward_passes - GEN / 2 - mu * ests[e].passes_per_update;
            shared = (double)st.rollout_rows / ((double)NP * G * (GEN / 2));
            fg = GEN / 2 * one * shared; /* the sampler's passes: one per step, over the distinct canvases */
            fl = logp_passes * one;
            fu = 3.0 * mu * ests[e].passes_per_update * one;
        }
        if (rc != D1_OK) {
            printf("| %s | failed: %s |\n", ests[e].name, d1_strerror(rc));
        } else {
            double g = median(tg, iters), l = median(tl, iters), u = median(tu, iters), t = median(tt, iters);
            double pct = 100.0 * (fg + fl + fu) / (g + l + u) / 1e9 / peak;
            printf("| %s | %.2f | %.2f | %.2f | %.2f | %.1f | %.2f | %.1f | %.1f | %.1f | %.0f%% | %.0f%% |\n", ests[e].name,
                   g, l, u, t, NP * G / t, mu / t, fg / g / 1e9, l > 0 ? fl / l / 1e9 : 0.0, fu / u / 1e9, pct,
                   100.0 * shared);
            if (csv)
                fprintf(csv, "%s,%.4f,%.4f,%.4f,%.4f,%.2f,%.3f,%.2f,%.2f,%.2f,%.2f,%.4f\n", ests[e].name, g, l, u, t,
                        NP * G / t, mu / t, fg / g / 1e9, l > 0 ? fl / l / 1e9 : 0.0, fu / u / 1e9, peak, shared);
        }
        fflush(stdout);
        d1_adamw_free(&opt);
        d1_model_free(&pol);
    }
    if (csv) fclose(csv);
    d1_model_free(&ref);
    return 0;
}
