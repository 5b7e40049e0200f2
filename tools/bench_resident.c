/* bench_resident.c - a checkpoint held in BF16 (d1_model_load_bf16): load
   time, resident memory, seconds per forward pass and per generated token,
   against the memory-bandwidth bound measured on the same machine.

     build/bench_resident DIR [--threads N] [--prompt P] [--gen G] [--block B] [--short S]
                          [--skip-nocache] [--forward-only]

   Defaults: 2 threads, prompt 64 + gen 64, LLaDA's semi-autoregressive block
   32, steps = gen (one token a step). It reports
     - load: seconds, VmRSS after it and the peak (VmHWM), from /proc/self;
     - the full forward over P + G tokens, and over S tokens (default 8:
       few enough that streaming the weights, not arithmetic, bounds it),
       each the median of 3;
     - d1_sampler_generate of G tokens without a cache and with the dual
       cache: seconds, seconds per generated token and per pass (with the
       cache most passes run one block's queries against cached keys);
     - the read bandwidth of the packed weights themselves (the threads
       summing disjoint slices, best of 3) and what it implies: one pass
       must read every weight once, so weights / bandwidth is its floor.
   The prompt is token ids 1..P (a random model: only the time matters).

   Make the model with tools/make_random_model.c (--llada-8b: 16 GB of BF16
   shards). Build: cc -O3 -march=native tools/bench_resident.c -o build/bench_resident -lm -lpthread */
#define _DEFAULT_SOURCE
#define D1_IMPLEMENTATION
#include "../d1.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* VmRSS or VmHWM of this process in GB (decimal), from /proc/self/status. */
static double proc_gb(const char *key) {
    char line[256];
    double kb = -1.0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1.0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key))) kb = atof(line + strlen(key) + 1);
    fclose(f);
    return kb * 1024.0 / 1e9;
}

typedef struct slice { const uint64_t *p; size_t n; uint64_t sum; } slice;
static void *sum_slice(void *arg) {
    slice *s = (slice *)arg;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i;
    for (i = 0; i + 4 <= s->n; i += 4) { a += s->p[i]; b += s->p[i + 1]; c += s->p[i + 2]; d += s->p[i + 3]; }
    for (; i < s->n; i++) a += s->p[i];
    s->sum = a + b + c + d;
    return NULL;
}
/* GB/s reading n bytes at p with nt threads (disjoint slices). */
static double read_gbs(const void *p, size_t bytes, int nt) {
    pthread_t th[64];
    slice sl[64];
    size_t words = bytes / 8, per = words / (size_t)nt;
    double t0 = now();
    int i;
    uint64_t total = 0;
    for (i = 0; i < nt; i++) {
        sl[i].p = (const uint64_t *)p + (size_t)i * per;
        sl[i].n = i == nt - 1 ? words - (size_t)i * per : per;
        pthread_create(&th[i], NULL, sum_slice, &sl[i]);
    }
    for (i = 0; i < nt; i++) { pthread_join(th[i], NULL); total += sl[i].sum; }
    if (total == 42) printf(" "); /* keep the sums */
    return (double)bytes / 1e9 / (now() - t0);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    d1_model m;
    int threads = 2, P = 64, G = 64, block = 32, S = 8, skip_nocache = 0, forward_only = 0, i, k, rc, *prompt, *out;
    double t0, tl, t[3], bw_best = 0.0, bytes;
    const char *dir;
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bench_resident DIR [--threads N] [--prompt P] [--gen G] [--block B] [--short S]\n"
                        "                      [--skip-nocache] [--forward-only]\n");
        return 2;
    }
    dir = argv[1];
    for (i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) P = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gen") && i + 1 < argc) G = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--block") && i + 1 < argc) block = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--short") && i + 1 < argc) S = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--skip-nocache")) skip_nocache = 1;
        else if (!strcmp(argv[i], "--forward-only")) forward_only = 1;
        else { fprintf(stderr, "bench_resident: unknown flag %s\n", argv[i]); return 2; }
    }
    if (threads < 1 || threads > 64 || P < 1 || G < 1 || S < 1) {
        fprintf(stderr, "bench_resident: --threads 1..64, --prompt, --gen and --short >= 1\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line as it comes: the runs are long */
    printf("build: %s\n", d1_build_info());
    t0 = now();
    if ((rc = d1_model_load_bf16(&m, dir)) != D1_OK) {
        fprintf(stderr, "bench_resident: %s: %s\n", dir, d1_last_error());
        return 1;
    }
    tl = now() - t0;
    if ((rc = d1_model_set_threads(&m, threads)) != D1_OK) { fprintf(stderr, "threads: %s\n", d1_last_error()); return 1; }
    bytes = (double)m.state->bw.total * 4.0; /* the packed matrices: what every pass reads */
    printf("model: V %d, C %d, L %d, H %d, KV %d, F %d: %.3f B parameters; BF16 matrices %.2f GB, FP32 wte + norms %.2f GB\n",
           m.config.vocab_size, m.config.dim, m.config.n_layers, m.config.n_heads, m.config.n_kv_heads,
           m.config.ffn_dim, (double)d1_config_num_params(&m.config) / 1e9, bytes / 1e9,
           (double)m.num_params * 4.0 / 1e9);
    printf("load: %.1f s; VmRSS %.2f GB, peak VmHWM %.2f GB\n", tl, proc_gb("VmRSS:"), proc_gb("VmHWM:"));
    for (i = 0; i < 3; i++) {
        double g = read_gbs(m.state->bw.mem, (size_t)bytes, threads);
        if (g > bw_best) bw_best = g;
    }
    printf("read bandwidth of the packed weights, %d threads: %.1f GB/s -> a pass's floor %.3f s\n", threads, bw_best,
           bytes / 1e9 / bw_best);
    prompt = (int *)malloc(sizeof(int) * (size_t)(P + G));
    out = (int *)malloc(sizeof(int) * (size_t)(P + G));
    for (i = 0; i < P + G; i++) prompt[i] = 1 + i % 1000;
    for (k = 0; k < 2; k++) { /* the full forward over P + G tokens, then over S */
        int n = k ? S : P + G;
        double flops = 2.0 * (double)d1_config_num_params(&m.config) * n;
        for (i = 0; i < 3; i++) {
            t0 = now();
            if ((rc = d1_model_forward(&m, prompt, 1, n, NULL)) != D1_OK) { fprintf(stderr, "%s\n", d1_last_error()); return 1; }
            t[i] = now() - t0;
        }
        qsort(t, 3, sizeof t[0], cmp_d);
        printf("forward, 1 x %d tokens: %.3f s (median of 3; %.1f GFLOP/s of matmuls; %.1fx the bandwidth floor)\n", n,
               t[1], flops / t[1] / 1e9, t[1] / (bytes / 1e9 / bw_best));
        fflush(stdout);
    }
    if (!forward_only) {
        int cache;
        for (cache = skip_nocache ? 1 : 0; cache < 2; cache++) {
            d1_sampler_desc d = d1_sampler_default_desc(G);
            d1_sample_stats st = {0};
            d1_rng rng;
            d.block_len = block; d.steps = G; d.kv_cache = cache ? D1_KV_DUAL : D1_KV_NONE;
            d1_rng_seed(&rng, 1);
            t0 = now();
            if ((rc = d1_sampler_generate(&m, &d, prompt, 1, P, NULL, &rng, out, &st)) != D1_OK) {
                fprintf(stderr, "generate: %s\n", d1_last_error());
                return 1;
            }
            t[0] = now() - t0;
            printf("generate %d tokens (prompt %d, block %d, %d steps), %s: %.1f s, %d passes, %.3f s per token, "
                   "%.3f s per pass\n", G, P, block, st.steps, cache ? "dual cache" : "no cache", t[0],
                   st.forward_passes, t[0] / G, t[0] / st.forward_passes);
        }
    }
    printf("after: VmRSS %.2f GB, peak VmHWM %.2f GB\n", proc_gb("VmRSS:"), proc_gb("VmHWM:"));
    free(prompt);
    free(out);
    d1_model_free(&m);
    return 0;
}
