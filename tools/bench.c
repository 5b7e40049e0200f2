/* bench.c - d1.h throughput: matmul GFLOP/s at transformer shapes, the
   sampler, and training-step and forward tokens/s (with peak RSS) for configs
   A, B, C at 1 and 2 threads. Each (config, threads) pair runs in a forked child so its
   peak RSS is its own. Same work and columns as tools/bench_torch.py.

     build/bench [--configs A,B,C] [--threads 1,2] [--csv FILE] [--no-matmul] [--no-sampler]

   A training step: t ~ U(0,1) per sequence, mask with p = (1-1e-3)t + 1e-3,
   forward, masked-diffusion loss, backward, AdamW. Timed after 2 warm-up
   steps over at least 3 s and the config's minimum step count. */
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
static const bconfig CONFIGS[3] = {
    {'A', 64, 128, 4, 4, 4, 384, 128, 16, 5},
    {'B', 64, 256, 6, 8, 8, 768, 128, 16, 5},
    {'C', 256, 512, 8, 8, 8, 1536, 256, 8, 3},
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs `step` after 2 warm-ups until both 3 s and min_steps have passed; tokens/s. */
typedef int (*step_fn)(void *ctx);
static double throughput(step_fn step, void *ctx, int tokens, int min_steps) {
    double t0, t;
    int n = 0;
    step(ctx); step(ctx);
    t0 = now();
    do { if (step(ctx) != D1_OK) return 0.0; n++; t = now(); } while (t - t0 < 3.0 || n < min_steps);
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

/* In the child: train and forward tokens/s of one config at one thread count. */
static int bench_config(const bconfig *bc, int threads, double out[2]) {
    d1_config c;
    d1_adamw_desc od = d1_adamw_default_desc();
    run r;
    int i, rc;
    memset(&c, 0, sizeof c);
    c.vocab_size = bc->V; c.dim = bc->C; c.n_layers = bc->L; c.n_heads = bc->H; c.n_kv_heads = bc->KV;
    c.ffn_dim = bc->F; c.max_seq_len = bc->T; c.mask_id = bc->V - 1;
    if ((rc = d1_model_init(&r.m, &c, 1)) != D1_OK || (rc = d1_model_set_threads(&r.m, threads)) != D1_OK ||
        (rc = d1_adamw_init(&r.opt, &r.m, &od)) != D1_OK)
        return rc;
    r.B = bc->B; r.T = bc->T;
    r.tok = (int *)malloc(sizeof(int) * r.B * r.T);
    d1_rng_seed(&r.rng, 7);
    for (i = 0; i < r.B * r.T; i++) r.tok[i] = (int)(d1_rng_u64(&r.rng) % (uint64_t)(bc->V - 1));
    out[0] = throughput(train_step, &r, r.B * r.T, bc->min_steps);
    out[1] = throughput(forward_step, &r, r.B * r.T, bc->min_steps);
    free(r.tok);
    d1_adamw_free(&r.opt);
    d1_model_free(&r.m);
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

/* The sampler (the setting): config A untrained, 8 prompts of 32
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
    memset(&c, 0, sizeof c);
    c.vocab_size = bc->V; c.dim = bc->C; c.n_layers = bc->L; c.n_heads = bc->H; c.n_kv_heads = bc->KV;
    c.ffn_dim = bc->F; c.max_seq_len = 96; c.mask_id = bc->V - 1;
    d1_model_init(&m, &c, 1);
    d1_model_set_threads(&m, threads);
    d1_rng_seed(&rng, 5);
    for (i = 0; i < 8 * 32; i++) prompts[i] = (int)(d1_rng_u64(&rng) % (uint64_t)(bc->V - 1));
    for (mode = 0; mode < 4; mode++) {
        d1_sampler_desc d;
        d1_sample_stats st;
        double t0, t;
        int reps = 0;
        memset(&d, 0, sizeof d);
        d.gen_len = 64; d.block_len = 32; d.steps = 32;
        d.kv_cache = mode == 1 ? D1_KV_PREFIX : mode >= 2 ? D1_KV_DUAL : D1_KV_NONE;
        d.threshold = mode == 3 ? 0.9f : 0.0f;
        d1_sampler_generate(&m, &d, prompts, 8, 32, NULL, &rng, out, &st); /* warm-up */
        t0 = now();
        do { d1_sampler_generate(&m, &d, prompts, 8, 32, NULL, &rng, out, &st); reps++; t = now(); } while (t - t0 < 2.0);
        printf("sampler %-16s %d thr  %8.2f ms/sequence  %9.0f generated tok/s  %3d passes\n", names[mode], threads,
               1e3 * (t - t0) / reps / 8, 64.0 * 8 * reps / (t - t0), st.forward_passes);
        if (csv) fprintf(csv, "d1,sampler_%s,%d,%.3f,%.1f,%d\n", names[mode], threads, 1e3 * (t - t0) / reps / 8,
                         64.0 * 8 * reps / (t - t0), st.forward_passes);
    }
    free(out);
    d1_model_free(&m);
}

int main(int argc, char **argv) {
    const char *configs = "ABC", *threads = "12", *csv_path = NULL;
    int matmul = 1, sampler = 1, i;
    FILE *csv = NULL;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--configs") && i + 1 < argc) configs = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = argv[++i];
        else if (!strcmp(argv[i], "--csv") && i + 1 < argc) csv_path = argv[++i];
        else if (!strcmp(argv[i], "--no-matmul")) matmul = 0;
        else if (!strcmp(argv[i], "--no-sampler")) sampler = 0;
        else { fprintf(stderr, "usage: %s [--configs A,B,C] [--threads 1,2] [--csv FILE] [--no-matmul] [--no-sampler]\n", argv[0]); return 2; }
    }
    if (csv_path && !(csv = fopen(csv_path, "a"))) { perror(csv_path); return 1; }
    if (matmul) bench_matmul(csv);
    if (sampler) { bench_sampler(csv, 1); bench_sampler(csv, 2); }
    printf("%-5s %-7s %-7s %12s %12s %13s\n", "impl", "config", "threads", "train_tok_s", "fwd_tok_s", "peak_rss_mib");
    for (i = 0; i < 3; i++) {
        const char *t;
        if (!strchr(configs, CONFIGS[i].name)) continue;
        for (t = threads; *t; t++) {
            int nth = *t - '0', fd[2], status;
            double res[2] = {0, 0};
            struct rusage ru;
            pid_t pid;
            if (nth < 1 || nth > 9) continue;
            fflush(stdout);
            if (pipe(fd)) return 1;
            pid = fork();
            if (pid == 0) {
                close(fd[0]);
                if (bench_config(&CONFIGS[i], nth, res) != D1_OK) _exit(1);
                if (write(fd[1], res, sizeof res) != (ssize_t)sizeof res) _exit(1);
                _exit(0);
            }
            close(fd[1]);
            if (read(fd[0], res, sizeof res) != (ssize_t)sizeof res) res[0] = res[1] = 0;
            close(fd[0]);
            wait4(pid, &status, 0, &ru);
            printf("%-5s %-7c %-7d %12.1f %12.1f %13.1f\n", "d1", CONFIGS[i].name, nth, res[0], res[1],
                   ru.ru_maxrss / 1024.0);
            if (csv) fprintf(csv, "d1,%c,%d,%.1f,%.1f,%.1f\n", CONFIGS[i].name, nth, res[0], res[1], ru.ru_maxrss / 1024.0);
        }
    }
    if (csv) fclose(csv);
    return 0;
}
