/* bench.c - d1.h throughput: matmul GFLOP/s at transformer shapes, the
   sampler, and training-step and forward tokens/s (with peak RSS) for configs
   A, B, C at 1 and 2 threads, in FP32 (rows "d1") and in BF16 (rows "d1-bf16"). Each
   (config, threads, precision) triple runs in a forked child so its peak RSS is its own.
   Same work and columns as tools/bench_torch.py.

     build/bench [--configs A,B,C] [--threads 1,2] [--device cpu|cuda] [--csv FILE]
                 [--no-matmul] [--no-sampler] [--no-bf16]
     build/bench --bf16 [--reps N] [--csv FILE]

   The BF16 rows (default on the CPU; --no-bf16 drops them): the training step
   under D1_PRECISION_BF16_MIXED (BF16 operands in the forward and backward
   matmuls, FP32 master weights, gradients, AdamW moments, norms, attention and
   loss; the BF16 weight copy repacked after each AdamW step, inside the timed
   step) and the forward under D1_PRECISION_BF16 (d1__forward_nograd over the
   whole [B, T]: the sampler's pass, the same work as d1_model_forward with the
   linear layers and attention's two products as BF16 GEMMs). The child's peak RSS includes the packed BF16
   weight copy beside the FP32 ones. Where the build has no fast BF16 kernel
   for this CPU (d1_build_info: "scalar"), the BF16 rows are skipped with a
   note: the scalar kernel is the reference, not a fast path.

   --bf16 times D1_PRECISION_F32 against D1_PRECISION_BF16 side by side in one
   run, on one thread, at the demo's model shape (V 26, dim 128, 4 layers, 4
   heads, ffn 352; random weights): the GEMMs of a forward pass over [96, 72]
   tokens, one no-gradient forward pass over them (the sampler's pass), and
   d1_sampler_generate for 96 rows (prompt 16, gen 56, block 56, 28 steps,
   temperature 0.9, low_confidence). The two precisions alternate, N times
   each (default 5); the medians of the thread's CPU time are reported with
   their ratio (on a shared machine wall time also counts the waits for the
   core), and the ratio of the wall-time medians beside it. The last row is
   a training step over the same tokens (masked-diffusion loss, backward,
   AdamW) in FP32 against D1_PRECISION_BF16_MIXED.

   A training step: t ~ U(0,1) per sequence, mask with p = (1-1e-3)t + 1e-3,
   forward, masked-diffusion loss, backward, AdamW. Timed after 2 warm-up
   steps over at least MIN_SECONDS (3 s on the CPU, 1 s on the GPU) and the
   config's minimum step count.

   --device cuda (a build with -DD1_CUDA; otherwise every config reports
   D1_ERR_UNSUPPORTED and is skipped): each child moves its models to the GPU
   with d1_model_set_device right after d1_model_init and runs one host
   thread. The timed calls are synchronous (d1_pretrain_loss and
   d1_adamw_step return the loss and the gradient norm to the host,
   d1_model_forward copies its logits home, the sampler its tokens), so the
   wall clock covers the device work. The default configs become B,C,D (D:
   dim 1024, 16 layers, too slow for the CPU defaults); the matmul section and
   the CPU sampler section (config A, four cache modes) are skipped, and each
   config instead times the plain sampler (8 prompts of 32, 64 generated,
   blocks of 32, 32 steps, temperature 0, low_confidence, no KV cache) on the
   GPU. CSV rows then carry impl "d1-cuda" (PyTorch's: "torch-cuda") and the
   sampler rows the config after a slash: d1-cuda,sampler_plain/B,1,... */
#define _DEFAULT_SOURCE
#define D1_IMPLEMENTATION
#include "../d1.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct bconfig { char name; int V, C, L, H, KV, F, T, B, min_steps; } bconfig;
#define N_CONFIGS 4
static const bconfig CONFIGS[N_CONFIGS] = {
    {'A', 64, 128, 4, 4, 4, 384, 128, 16, 5},
    {'B', 64, 256, 6, 8, 8, 768, 128, 16, 5},
    {'C', 256, 512, 8, 8, 8, 1536, 256, 8, 3},
    {'D', 256, 1024, 16, 16, 16, 2816, 512, 8, 3}, /* default on --device cuda only */
};

/* Timing windows: the GPU's steps are short and its budget is too. */
#define MIN_SECONDS_CPU 3.0
#define MIN_SECONDS_CUDA 1.0
#define SAMPLER_SECONDS_CPU 2.0
#define SAMPLER_SECONDS_CUDA 1.0
static int g_device = D1_DEVICE_CPU, g_sampler = 1, g_bf16 = 1;
static double g_min_seconds = MIN_SECONDS_CPU, g_sampler_seconds = SAMPLER_SECONDS_CPU;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs `step` after 2 warm-ups until both g_min_seconds and min_steps have
   passed; tokens/s, or the failing step's status (< 0). */
typedef int (*step_fn)(void *ctx);
static double throughput(step_fn step, void *ctx, int tokens, int min_steps) {
    double t0, t;
    int n = 0, rc;
    if ((rc = step(ctx)) != D1_OK || (rc = step(ctx)) != D1_OK) return rc;
    t0 = now();
    do {
        if ((rc = step(ctx)) != D1_OK) return rc;
        n++;
        t = now();
    } while (t - t0 < g_min_seconds || n < min_steps);
    return (double)tokens * n / (t - t0);
}

typedef struct run { d1_model m; d1_adamw opt; d1_rng rng; int *tok; int B, T; } run;

static int train_step(void *p) {
    run *r = (run *)p;
    float loss;
    int rc;
    d1_model_zero_grad(&r->m);
    rc = d1_pretrain_loss(&r->m, r->tok, r->B, r->T, NULL, NULL, &r->rng, &loss);
    return rc == D1_OK ? d1_adamw_step(&r->opt, &r->m, NULL) : rc;
}
static int forward_step(void *p) {
    run *r = (run *)p;
    return d1_model_forward(&r->m, r->tok, r->B, r->T, NULL);
}
/* The BF16 forward: d1_model_forward's checks, then the no-gradient pass in
   the model's precision (D1_PRECISION_BF16: the linear layers and attention's
   products as BF16 GEMMs). */
static int forward_step_bf16(void *p) {
    run *r = (run *)p;
    int rc = d1__check_batch(&r->m, r->tok, r->B, r->T, NULL);
    if (rc == D1_OK) rc = d1__ensure(&r->m, r->B, r->T);
    if (rc == D1_OK) d1__forward_nograd(&r->m, r->tok, r->B, r->T, NULL);
    return rc;
}

static void bench_model_config(d1_config *c, const bconfig *bc, int max_seq_len) {
    memset(c, 0, sizeof *c);
    c->vocab_size = bc->V; c->dim = bc->C; c->n_layers = bc->L; c->n_heads = bc->H; c->n_kv_heads = bc->KV;
    c->ffn_dim = bc->F; c->max_seq_len = max_seq_len; c->mask_id = bc->V - 1; c->eos_id = c->pad_id = bc->V - 2;
}

/* d1_model_init, then (on --device cuda) d1_model_set_device, then the thread count. */
static int bench_model_init(d1_model *m, const d1_config *c, int threads, char name) {
    int rc = d1_model_init(m, c, 1);
    if (rc != D1_OK) {
        fprintf(stderr, "bench: config %c: d1_model_init: %s\n", name, d1_strerror(rc));
        return rc;
    }
    if (g_device != D1_DEVICE_CPU && (rc = d1_model_set_device(m, g_device)) != D1_OK) {
        fprintf(stderr, "bench: config %c: d1_model_set_device: %s\n", name, d1_strerror(rc));
        d1_model_free(m);
        return rc;
    }
    if ((rc = d1_model_set_threads(m, threads)) != D1_OK) {
        fprintf(stderr, "bench: config %c: d1_model_set_threads: %s\n", name, d1_strerror(rc));
        d1_model_free(m);
    }
    return rc;
}

/* The sampler setting: 8 prompts of 32 tokens, 64 generated in blocks of 32
   with 32 steps, temperature 0, low_confidence; kv_cache / threshold as
   given. Fills ms per sequence, generated tokens/s and forward passes. */
typedef struct sampler_result { int rc; double ms_per_seq, gen_tok_s; int passes; } sampler_result;
static sampler_result time_sampler(d1_model *m, const int *prompts, int *out, d1_rng *rng, int kv_cache,
                                   float threshold) {
    sampler_result res;
    d1_sampler_desc d;
    d1_sample_stats st;
    double t0, t;
    int reps = 0;
    memset(&res, 0, sizeof res);
    memset(&d, 0, sizeof d);
    memset(&st, 0, sizeof st);
    d.gen_len = 64; d.block_len = 32; d.steps = 32;
    d.kv_cache = kv_cache;
    d.threshold = threshold;
    if ((res.rc = d1_sampler_generate(m, &d, prompts, 8, 32, NULL, rng, out, &st)) != D1_OK) /* warm-up */
        return res;
    t0 = now();
    do {
        if ((res.rc = d1_sampler_generate(m, &d, prompts, 8, 32, NULL, rng, out, &st)) != D1_OK) return res;
        reps++;
        t = now();
    } while (t - t0 < g_sampler_seconds);
    res.ms_per_seq = 1e3 * (t - t0) / reps / 8;
    res.gen_tok_s = 64.0 * 8 * reps / (t - t0);
    res.passes = st.forward_passes;
    return res;
}

/* What a child sends back through its pipe. */
typedef struct bresult { int rc; double train, fwd; sampler_result samp; } bresult;

/* In the child: train and forward tokens/s of one config at one thread count,
   in FP32 or (bf16) the training step in D1_PRECISION_BF16_MIXED and the
   forward in D1_PRECISION_BF16; on the GPU also the plain sampler on this
   config's shape. */
static int bench_config(const bconfig *bc, int threads, int bf16, bresult *out) {
    d1_config c;
    d1_adamw_desc od = d1_adamw_default_desc();
    run r;
    int i, rc;
    bench_model_config(&c, bc, bc->T);
    if ((rc = bench_model_init(&r.m, &c, threads, bc->name)) != D1_OK) return rc;
    if ((rc = d1_adamw_init(&r.opt, &r.m, &od)) != D1_OK) {
        fprintf(stderr, "bench: config %c: d1_adamw_init: %s\n", bc->name, d1_strerror(rc));
        d1_model_free(&r.m);
        return rc;
    }
    r.B = bc->B; r.T = bc->T;
    r.tok = (int *)malloc(sizeof(int) * r.B * r.T);
    d1_rng_seed(&r.rng, 7);
    for (i = 0; i < r.B * r.T; i++) r.tok[i] = (int)(d1_rng_u64(&r.rng) % (uint64_t)(bc->V - 1));
    if (bf16 && (rc = d1_model_set_precision(&r.m, D1_PRECISION_BF16_MIXED)) != D1_OK) out->train = rc;
    else out->train = throughput(train_step, &r, r.B * r.T, bc->min_steps);
    if (out->train < 0) fprintf(stderr, "bench: config %c: training step: %s\n", bc->name, d1_strerror((int)out->train));
    if (bf16 && (rc = d1_model_set_precision(&r.m, D1_PRECISION_BF16)) != D1_OK) out->fwd = rc;
    else out->fwd = throughput(bf16 ? forward_step_bf16 : forward_step, &r, r.B * r.T, bc->min_steps);
    if (out->fwd < 0)
        fprintf(stderr, "bench: config %c: %s: %s\n", bc->name, bf16 ? "BF16 forward" : "d1_model_forward",
                d1_strerror((int)out->fwd));
    free(r.tok);
    d1_adamw_free(&r.opt);
    d1_model_free(&r.m);
    if (out->train < 0) return (int)out->train;
    if (out->fwd < 0) return (int)out->fwd;
    if (g_device != D1_DEVICE_CPU && g_sampler) { /* the sampler on this config, a fresh model of 96 positions */
        d1_model m;
        d1_rng rng;
        int prompts[8 * 32], *gen = (int *)malloc(sizeof(int) * 8 * 96);
        bench_model_config(&c, bc, 96);
        if ((rc = bench_model_init(&m, &c, threads, bc->name)) != D1_OK) { free(gen); return rc; }
        d1_rng_seed(&rng, 5);
        for (i = 0; i < 8 * 32; i++) prompts[i] = (int)(d1_rng_u64(&rng) % (uint64_t)(bc->V - 1));
        out->samp = time_sampler(&m, prompts, gen, &rng, D1_KV_NONE, 0.0f);
        if (out->samp.rc != D1_OK)
            fprintf(stderr, "bench: config %c: d1_sampler_generate: %s\n", bc->name, d1_strerror(out->samp.rc));
        free(gen);
        d1_model_free(&m);
    }
    return D1_OK;
}

/* out = x W^T at a transformer shape, one thread: GFLOP/s of the blocked GEMM */
static void bench_matmul(FILE *csv) {
    static const int shapes[][3] = {{2048, 128, 384}, {2048, 256, 768}, {2048, 256, 1536},
                                    {2048, 512, 1536}, {2048, 1536, 512}, {4096, 512, 512}};
    d1__pool pool;
    d1__ctx cx;
    d1_rng rng;
    int s;
    pool.n = 1;
    memset(&cx, 0, sizeof cx);
    cx.pool = &pool;
    cx.ws[0] = d1__alloc_floats(D1__GEMM_WS);
    d1_rng_seed(&rng, 3);
    printf("%-24s %10s\n", "matmul (M,K,N) 1 thread", "GFLOP/s");
    for (s = 0; s < 6; s++) {
        int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2], reps = 0;
        size_t i;
        float *x = d1__alloc_floats((size_t)M * K), *w = d1__alloc_floats((size_t)N * K);
        float *o = d1__alloc_floats((size_t)M * N);
        double t0, t;
        for (i = 0; i < (size_t)M * K; i++) x[i] = d1_rng_uniform(&rng) - 0.5f;
        for (i = 0; i < (size_t)N * K; i++) w[i] = d1_rng_uniform(&rng) - 0.5f;
        d1__matmul_forward(&cx, o, x, w, M, K, N);
        t0 = now();
        do { d1__matmul_forward(&cx, o, x, w, M, K, N); reps++; t = now(); } while (t - t0 < 1.0);
        printf("(%4d,%4d,%4d)           %10.1f\n", M, K, N, 2.0 * M * K * N * reps / (t - t0) * 1e-9);
        if (csv) fprintf(csv, "d1,matmul_%dx%dx%d,1,%.1f\n", M, K, N, 2.0 * M * K * N * reps / (t - t0) * 1e-9);
        d1__free(x); d1__free(w); d1__free(o);
    }
    d1__free(cx.ws[0]);
}

/* The CPU sampler (the setting): config A untrained, 8 prompts of 32
   tokens, 64 generated in blocks of 32 with 32 steps, temperature 0,
   low_confidence; plain, with the prefix and the dual KV cache, and
   threshold 0.9 with the dual cache. */
static void bench_sampler(FILE *csv, int threads) {
    const bconfig *bc = &CONFIGS[0];
    static const char *names[4] = {"plain", "prefix_cache", "dual_cache", "threshold0.9+dual"};
    d1_config c;
    d1_model m;
    d1_rng rng;
    int prompts[8 * 32], *out = (int *)malloc(sizeof(int) * 8 * 96), i, mode;
    bench_model_config(&c, bc, 96);
    d1_model_init(&m, &c, 1);
    d1_model_set_threads(&m, threads);
    d1_rng_seed(&rng, 5);
    for (i = 0; i < 8 * 32; i++) prompts[i] = (int)(d1_rng_u64(&rng) % (uint64_t)(bc->V - 1));
    for (mode = 0; mode < 4; mode++) {
        sampler_result s = time_sampler(&m, prompts, out, &rng,
                                        mode == 1 ? D1_KV_PREFIX : mode >= 2 ? D1_KV_DUAL : D1_KV_NONE,
                                        mode == 3 ? 0.9f : 0.0f);
        if (s.rc != D1_OK) { fprintf(stderr, "bench: sampler %s: %s\n", names[mode], d1_strerror(s.rc)); continue; }
        printf("sampler %-16s %d thr  %8.2f ms/sequence  %9.0f generated tok/s  %3d passes\n", names[mode], threads,
               s.ms_per_seq, s.gen_tok_s, s.passes);
        if (csv) fprintf(csv, "d1,sampler_%s,%d,%.3f,%.1f,%d\n", names[mode], threads, s.ms_per_seq, s.gen_tok_s,
                         s.passes);
    }
    free(out);
    d1_model_free(&m);
}

/* ---- --bf16: FP32 vs BF16, alternating, medians -------------------------- */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
#define BF16_MAX_REPS 64

/* CPU seconds of the calling thread */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
/* one timing: CPU and wall seconds */
typedef struct btime { double cpu, wall; } btime;
static btime tick(void) { btime t; t.cpu = cpu_now(); t.wall = now(); return t; }
static void tock(btime t0, double *cpu, double *wall) { *cpu = cpu_now() - t0.cpu; *wall = now() - t0.wall; }

/* one row: the medians of each precision over reps alternating runs */
static void bf16_row(FILE *csv, const char *name, double *c32, double *c16, double *w32, double *w16, int reps,
                     double flop) {
    double m32 = median(c32, reps), m16 = median(c16, reps), v32 = median(w32, reps), v16 = median(w16, reps);
    printf("%-30s %9.2f %9.2f %6.2fx %7.2fx", name, 1e3 * m32, 1e3 * m16, m32 / m16, v32 / v16);
    if (flop > 0) printf("  %6.1f / %6.1f", flop / m32 * 1e-9, flop / m16 * 1e-9);
    printf("\n");
    if (csv) fprintf(csv, "d1,bf16_%s,1,%.3f,%.3f,%.3f,%.3f\n", name, 1e3 * m32, 1e3 * m16, m32 / m16, v32 / v16);
}

static int bench_bf16(FILE *csv, int reps) {
    enum { B = 96, P = 16, G = 56, T = P + G };
    static const bconfig demo = {'S', 26, 128, 4, 4, 4, 352, T, B, 1};
    d1_config c;
    d1_model m;
    d1_rng rng;
    d1_sampler_desc d;
    int *tok = (int *)malloc(sizeof(int) * B * T), *out = (int *)malloc(sizeof(int) * B * T), i, r, s, rc;
    double c32[BF16_MAX_REPS], c16[BF16_MAX_REPS], w32[BF16_MAX_REPS], w16[BF16_MAX_REPS];
    btime t0;
    /* the forward's five GEMM shapes (M = B*T tokens, K, N) and how often a pass runs each */
    const int N_tok = B * T, shapes[5][3] = {{N_tok, 128, 384}, {N_tok, 128, 128}, {N_tok, 128, 704},
                                             {N_tok, 352, 128}, {N_tok, 128, 26}};
    bench_model_config(&c, &demo, 80);
    if ((rc = d1_model_init(&m, &c, 1)) != D1_OK) {
        fprintf(stderr, "bench: d1_model_init: %s\n", d1_strerror(rc));
        return 1;
    }
    d1_rng_seed(&rng, 5);
    for (i = 0; i < B * T; i++) tok[i] = (int)(d1_rng_u64(&rng) % (uint64_t)(c.vocab_size - 1));
    printf("bf16: %s; 1 thread; medians of %d alternating runs each (CPU time; wall: the ratio only)\n",
           d1_build_info(), reps);
    printf("%-30s %9s %9s %7s %8s  %s\n", "", "FP32 ms", "BF16 ms", "ratio", "wall", "GFLOP/s FP32 / BF16");

    /* (0) the GEMMs alone, at each shape of the pass */
    for (s = 0; s < 5; s++) {
        int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        float *x = d1__alloc_floats((size_t)M * K), *w = d1__alloc_floats((size_t)N * K);
        float *o = d1__alloc_floats((size_t)M * N);
        uint32_t *wp = (uint32_t *)d1__alloc(d1__bf16_packed_size(N, K) * sizeof(uint32_t));
        char name[64];
        size_t j;
        for (j = 0; j < (size_t)M * K; j++) x[j] = d1_rng_uniform(&rng) - 0.5f;
        for (j = 0; j < (size_t)N * K; j++) w[j] = d1_rng_uniform(&rng) - 0.5f;
        d1__bf16_pack_w(N, K, w, K, wp);
        if ((rc = d1__ensure(&m, B, T)) != D1_OK) break;
        for (r = 0; r < reps; r++) {
            int k;
            t0 = tick();
            for (k = 0; k < 5; k++) d1__matmul_forward(&m.state->cx, o, x, w, M, K, N);
            tock(t0, &c32[r], &w32[r]);
            t0 = tick();
            for (k = 0; k < 5; k++) d1__gemm_bf16_mt(&m.state->cx, M, N, K, x, K, wp, o, N, d1__cpu_bf16());
            tock(t0, &c16[r], &w16[r]);
            c32[r] /= 5; c16[r] /= 5;
        }
        snprintf(name, sizeof name, "gemm %dx%dx%d (M,K,N)", M, K, N);
        bf16_row(csv, name, c32, c16, w32, w16, reps, 2.0 * M * K * N);
        d1__free(x); d1__free(w); d1__free(o); d1__free(wp);
    }

    /* (a) one no-gradient forward pass over [96, 72] (what each sampler step runs) */
    if (rc == D1_OK) rc = d1__ensure(&m, B, T);
    for (r = 0; rc == D1_OK && r < reps; r++) {
        int k;
        for (k = 0; k < 2; k++) {
            if ((rc = d1_model_set_precision(&m, k ? D1_PRECISION_BF16 : D1_PRECISION_F32)) != D1_OK) break;
            d1__forward_nograd(&m, tok, B, T, NULL); /* the first after a set packs; not timed */
            t0 = tick();
            d1__forward_nograd(&m, tok, B, T, NULL);
            tock(t0, k ? &c16[r] : &c32[r], k ? &w16[r] : &w32[r]);
        }
    }
    if (rc == D1_OK) {
        double flop = 0;
        for (s = 0; s < 5; s++) flop += 2.0 * shapes[s][0] * shapes[s][1] * shapes[s][2] * (s < 4 ? c.n_layers : 1);
        bf16_row(csv, "forward [96,72] (no grad)", c32, c16, w32, w16, reps, flop);
    }

    /* (b) the sampler: 96 rows, prompt 16, gen 56, one block, 28 steps, temperature 0.9 */
    memset(&d, 0, sizeof d);
    d.gen_len = G; d.block_len = G; d.steps = 28; d.temperature = 0.9f; d.remasking = D1_REMASK_LOW_CONFIDENCE;
    for (r = 0; rc == D1_OK && r < reps; r++) {
        int k;
        for (k = 0; k < 2; k++) {
            if ((rc = d1_model_set_precision(&m, k ? D1_PRECISION_BF16 : D1_PRECISION_F32)) != D1_OK) break;
            t0 = tick();
            if ((rc = d1_sampler_generate(&m, &d, tok, B, P, NULL, &rng, out, NULL)) != D1_OK) break;
            tock(t0, k ? &c16[r] : &c32[r], k ? &w16[r] : &w32[r]);
        }
    }
    if (rc == D1_OK) bf16_row(csv, "sampler 96 rows, 28 steps", c32, c16, w32, w16, reps, 0);

    /* (c) a training step over [96, 72]: masked-diffusion loss (forward and
       backward) and AdamW, FP32 against D1_PRECISION_BF16_MIXED (the BF16
       column: BF16 operands in the forward and backward matmuls) */
    if (rc == D1_OK) {
        d1_adamw opt;
        d1_adamw_desc od = d1_adamw_default_desc();
        float loss, gn;
        rc = d1_adamw_init(&opt, &m, &od);
        for (r = 0; rc == D1_OK && r < reps; r++) {
            int k;
            for (k = 0; k < 2 && rc == D1_OK; k++) {
                if ((rc = d1_model_set_precision(&m, k ? D1_PRECISION_BF16_MIXED : D1_PRECISION_F32)) != D1_OK) break;
                t0 = tick();
                if ((rc = d1_model_zero_grad(&m)) == D1_OK &&
                    (rc = d1_pretrain_loss(&m, tok, B, T, NULL, NULL, &rng, &loss)) == D1_OK)
                    rc = d1_adamw_step(&opt, &m, &gn);
                tock(t0, k ? &c16[r] : &c32[r], k ? &w16[r] : &w32[r]);
            }
        }
        if (rc == D1_OK) bf16_row(csv, "train step [96,72] (mixed)", c32, c16, w32, w16, reps, 0);
        d1_adamw_free(&opt);
    }
    if (rc != D1_OK) fprintf(stderr, "bench: --bf16: %s\n", d1_strerror(rc));
    free(tok); free(out);
    d1_model_free(&m);
    return rc != D1_OK;
}

static const char *USAGE =
    "usage: %s [--configs A,B,C] [--threads 1,2] [--device cpu|cuda] [--csv FILE] [--no-matmul] [--no-sampler]\n"
    "          [--no-bf16]\n"
    "  configs A, B, C (default on cpu), D (dim 1024, 16 layers, T 512; default B,C,D on cuda)\n"
    "  each config in FP32 (impl d1) and, on cpu unless --no-bf16, in BF16 (impl d1-bf16)\n"
    "       %s --bf16 [--reps N] [--csv FILE]   FP32 vs BF16 at the demo's shape, one thread\n";

int main(int argc, char **argv) {
    const char *configs = NULL, *threads = "12", *csv_path = NULL, *impl = "d1";
    int matmul = 1, failed = 0, iw = 5, i, have_samp[N_CONFIGS] = {0}, bf16 = 0, reps = 5;
    sampler_result samp[N_CONFIGS];
    FILE *csv = NULL;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--configs") && i + 1 < argc) configs = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = argv[++i];
        else if (!strcmp(argv[i], "--csv") && i + 1 < argc) csv_path = argv[++i];
        else if (!strcmp(argv[i], "--device") && i + 1 < argc && !strcmp(argv[i + 1], "cpu")) { g_device = D1_DEVICE_CPU; i++; }
        else if (!strcmp(argv[i], "--device") && i + 1 < argc && !strcmp(argv[i + 1], "cuda")) { g_device = D1_DEVICE_CUDA; i++; }
        else if (!strcmp(argv[i], "--no-matmul")) matmul = 0;
        else if (!strcmp(argv[i], "--no-sampler")) g_sampler = 0;
        else if (!strcmp(argv[i], "--no-bf16")) g_bf16 = 0;
        else if (!strcmp(argv[i], "--bf16")) bf16 = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc && atoi(argv[i + 1]) >= 1 && atoi(argv[i + 1]) <= BF16_MAX_REPS)
            reps = atoi(argv[++i]);
        else { fprintf(stderr, USAGE, argv[0], argv[0]); return 2; }
    }
    if (g_device == D1_DEVICE_CUDA) {
        /* one host thread, short windows; the CPU-only sections are skipped */
        if (strcmp(threads, "1") && strcmp(threads, "12"))
            fprintf(stderr, "bench: --device cuda runs 1 host thread; --threads %s ignored\n", threads);
        threads = "1";
        impl = "d1-cuda";
        iw = 7;
        g_min_seconds = MIN_SECONDS_CUDA;
        g_sampler_seconds = SAMPLER_SECONDS_CUDA;
        matmul = 0;
        g_bf16 = 0; /* BF16 is CPU-only (d1_model_set_precision: D1_ERR_UNSUPPORTED on a GPU) */
        if (!configs) configs = "BCD";
    }
    if (g_bf16 && !bf16 && !d1_bf16_simd_available()) { /* the scalar BF16 kernel is the reference, not a fast path */
        fprintf(stderr, "bench: no fast BF16 kernel in this build on this CPU (%s): no d1-bf16 rows\n",
                d1_build_info());
        g_bf16 = 0;
    }
    if (g_bf16) iw = 7; /* "d1-bf16" */
    if (!configs) configs = "ABC";
    if (csv_path && !(csv = fopen(csv_path, "a"))) { perror(csv_path); return 1; }
    if (bf16) {
        failed = bench_bf16(csv, reps);
        if (csv) fclose(csv);
        return failed;
    }
    if (matmul) bench_matmul(csv);
    if (g_sampler && g_device == D1_DEVICE_CPU) { bench_sampler(csv, 1); bench_sampler(csv, 2); }
    printf("%-*s %-7s %-7s %12s %12s %13s\n", iw, "impl", "config", "threads", "train_tok_s", "fwd_tok_s",
           "peak_rss_mib");
    for (i = 0; i < N_CONFIGS; i++) {
        const char *t;
        if (!strchr(configs, CONFIGS[i].name)) continue;
        for (t = threads; *t; t++) {
            int nth = *t - '0', prec;
            if (nth < 1 || nth > 9) continue;
            for (prec = 0; prec <= g_bf16; prec++) { /* FP32, then BF16: a child each */
                const char *name = prec ? "d1-bf16" : impl;
                int fd[2], status, answered;
                bresult res;
                struct rusage ru;
                pid_t pid;
                fflush(stdout);
                if (csv) fflush(csv);
                if (pipe(fd)) return 1;
                pid = fork();
                if (pid == 0) {
                    close(fd[0]);
                    memset(&res, 0, sizeof res);
                    res.rc = bench_config(&CONFIGS[i], nth, prec, &res);
                    if (write(fd[1], &res, sizeof res) != (ssize_t)sizeof res) _exit(1);
                    _exit(0);
                }
                close(fd[1]);
                memset(&res, 0, sizeof res);
                answered = read(fd[0], &res, sizeof res) == (ssize_t)sizeof res;
                close(fd[0]);
                wait4(pid, &status, 0, &ru);
                if (!answered || res.rc != D1_OK) {
                    failed = 1;
                    printf("%-*s %-7c %-7d skipped: %s\n", iw, name, CONFIGS[i].name, nth,
                           answered ? d1_strerror(res.rc) : "the benchmark process died");
                    continue;
                }
                printf("%-*s %-7c %-7d %12.1f %12.1f %13.1f\n", iw, name, CONFIGS[i].name, nth, res.train, res.fwd,
                       ru.ru_maxrss / 1024.0);
                if (csv) fprintf(csv, "%s,%c,%d,%.1f,%.1f,%.1f\n", name, CONFIGS[i].name, nth, res.train, res.fwd,
                                 ru.ru_maxrss / 1024.0);
                if (g_device != D1_DEVICE_CPU && g_sampler) samp[i] = res.samp, have_samp[i] = 1;
            }
        }
    }
    /* the GPU's sampler rows, one per config (measured in the config's child) */
    for (i = 0; i < N_CONFIGS; i++) {
        sampler_result *s = &samp[i];
        if (!have_samp[i]) continue;
        if (s->rc != D1_OK) {
            failed = 1;
            printf("sampler plain/%c 1 thr  skipped: %s\n", CONFIGS[i].name, d1_strerror(s->rc));
            continue;
        }
        printf("sampler plain/%c 1 thr  %8.2f ms/sequence  %9.0f generated tok/s  %3d passes\n", CONFIGS[i].name,
               s->ms_per_seq, s->gen_tok_s, s->passes);
        if (csv) fprintf(csv, "%s,sampler_plain/%c,1,%.3f,%.1f,%d\n", impl, CONFIGS[i].name, s->ms_per_seq,
                         s->gen_tok_s, s->passes);
    }
    if (csv) fclose(csv);
    return failed;
}
