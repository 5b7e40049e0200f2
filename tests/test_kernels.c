/* Every fast kernel against its scalar reference, on random shapes with odd
   sizes (1, primes, not multiples of the SIMD width), and the threaded GEMM
   against the single-threaded one (bit for bit). */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "harness.h"

static d1_rng rng;

static float *randv(size_t n, float scale) {
    float *x = (float *)malloc((n ? n : 1) * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) x[i] = scale * (2.0f * d1_rng_uniform(&rng) - 1.0f);
    return x;
}

/* one GEMM case: all four stride layouts of A and B, with and without += */
static void gemm_case(int M, int N, int K, float *ws) {
    int ta, tb, acc;
    for (ta = 0; ta < 2; ta++)
        for (tb = 0; tb < 2; tb++)
            for (acc = 0; acc < 2; acc++) {
                float *A = randv((size_t)M * K, 1.0f), *B = randv((size_t)K * N, 1.0f);
                float *C0 = randv((size_t)M * (N + 3), 1.0f);
                float *C1 = (float *)malloc((size_t)M * (N + 3) * sizeof(float));
                ptrdiff_t rsa = ta ? 1 : K, csa = ta ? M : 1, rsb = tb ? 1 : N, csb = tb ? K : 1;
                double *ref = (double *)malloc((size_t)M * (N + 3) * sizeof(double));
                size_t i;
                memcpy(C1, C0, (size_t)M * (N + 3) * sizeof(float));
                d1__gemm_ref(M, N, K, A, rsa, csa, B, rsb, csb, C0, N + 3, acc);
                d1__gemm(M, N, K, A, rsa, csa, B, rsb, csb, C1, N + 3, acc, ws);
                for (i = 0; i < (size_t)M * (N + 3); i++) ref[i] = C0[i];
                CHECK(th_rel_err(C1, ref, (size_t)M * (N + 3), 1.0) < 1e-5 * (1 + K / 64),
                      "M %d N %d K %d ta %d tb %d acc %d: err %g", M, N, K, ta, tb, acc,
                      th_rel_err(C1, ref, (size_t)M * (N + 3), 1.0));
                free(A); free(B); free(C0); free(C1); free(ref);
            }
}

static void test_gemm_vs_reference(void) {
    static const int sizes[] = {1, 2, 3, 7, 13, 16, 17, 31, 33, 64, 100, 257};
    float *ws = d1__alloc_floats(D1__GEMM_WS);
    int i, j, k;
    for (i = 0; i < 12; i += 1)
        for (j = 0; j < 12; j += 2)
            for (k = 0; k < 12; k += 3) gemm_case(sizes[i], sizes[j], sizes[k], ws);
    gemm_case(300, 70, 600, ws); /* several KC and MC blocks */
    gemm_case(5, 3100, 9, ws);   /* several NC blocks */
    d1__free(ws);
}

static void test_ukernel_vs_scalar(void) {
    int kc;
    for (kc = 1; kc <= 40; kc += 13) {
        float *a = randv((size_t)kc * D1__MR, 1.0f), *b = randv((size_t)kc * D1__NR, 1.0f);
        float c0[D1__MR * D1__NR], c1[D1__MR * D1__NR];
        float *bb = d1__alloc_floats((size_t)kc * D1__NR); /* the SIMD kernels load aligned B */
        double ref[D1__MR * D1__NR];
        int i, acc;
        memcpy(bb, b, (size_t)kc * D1__NR * sizeof(float));
        for (acc = 0; acc < 2; acc++) {
            for (i = 0; i < D1__MR * D1__NR; i++) c0[i] = c1[i] = (float)i * 0.01f;
            d1__ukernel_scalar(kc, a, bb, c0, D1__NR, acc);
            d1__ukernel(kc, a, bb, c1, D1__NR, acc);
            for (i = 0; i < D1__MR * D1__NR; i++) ref[i] = c0[i];
            CHECK(th_rel_err(c1, ref, D1__MR * D1__NR, 1.0) < 1e-6, "kc %d acc %d", kc, acc);
        }
        free(a); free(b); d1__free(bb);
    }
}

static void test_gemm_threads_bitwise(void) {
    d1__pool pool;
    d1__ctx cx;
    int shapes[4][3] = {{128, 96, 64}, {7, 500, 33}, {301, 17, 129}, {64, 64, 600}};
    int s, nth;
    memset(&cx, 0, sizeof cx);
    cx.pool = &pool;
    for (s = 0; s < 4; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = randv((size_t)M * K, 1.0f), *B = randv((size_t)K * N, 1.0f);
        float *C1 = (float *)calloc((size_t)M * N, sizeof(float));
        float *Cn = (float *)calloc((size_t)M * N, sizeof(float));
#ifdef D1_NO_THREADS
        for (nth = 1; nth <= 1; nth++) {
#else
        for (nth = 1; nth <= 3; nth++) {
#endif
            int t;
            CHECK(d1__pool_start(&pool, nth) == D1_OK, "pool of %d", nth);
            for (t = 0; t < nth; t++) cx.ws[t] = d1__alloc_floats(D1__GEMM_WS);
            d1__gemm_mt(&cx, M, N, K, A, K, 1, B, 1, K, nth == 1 ? C1 : Cn, N, 0);
            if (nth > 1) /* with D1_USE_BLIS too: BLIS is called on tiles of fixed shape */
                CHECK(memcmp(C1, Cn, (size_t)M * N * sizeof(float)) == 0, "shape %d (%d x %d, K %d), %d threads: "
                      "bit-identical to 1 thread (a promise of every build; here %s on %s)", s, M, N, K, nth,
                      d1_build_info(), th_cpu());
            for (t = 0; t < nth; t++) d1__free(cx.ws[t]);
            d1__pool_stop(&pool);
        }
        free(A); free(B); free(C1); free(Cn);
    }
}

static void test_exp_vs_scalar(void) {
    int n;
    for (n = 1; n <= 70; n += 3) {
        float *x = randv((size_t)n, 90.0f), y0[70], y1[70]; /* exp's float range, and below */
        double ref[70];
        float s0, s1;
        int i;
        for (i = 0; i < n; i++) x[i] = x[i] < 80.0f ? x[i] : 80.0f; /* keep the sum finite */
        x[0] = -INFINITY;
        if (n > 2) x[2] = 88.0f;
        s0 = d1__vexp_scalar(y0, x, n, 1.0f, 0.0f);
        s1 = d1__vexp(y1, x, n, 1.0f, 0.0f);
        for (i = 0; i < n; i++) {
            ref[i] = y0[i];
            CHECK(fabs((double)y1[i] - y0[i]) <= 3e-7 * y0[i] + 1e-37, "exp(%g) %g vs %g", x[i], y1[i], y0[i]);
        }
        CHECK(fabs((double)s1 - s0) <= 1e-6 * s0, "sum %g vs %g", s1, s0);
        /* scaled and shifted, as softmax calls it */
        s0 = d1__vexp_scalar(y0, x, n, 0.125f, 3.0f);
        s1 = d1__vexp(y1, x, n, 0.125f, 3.0f);
        for (i = 0; i < n; i++) ref[i] = y0[i];
        CHECK(th_rel_err(y1, ref, (size_t)n, 1e-30) < 1e-6, "scaled exp, n %d", n);
        CHECK(y1[0] == 0.0f, "exp(-inf) must be exactly 0, got %g", y1[0]);
        free(x);
    }
}

static void test_dot_vs_scalar(void) {
    int n;
    for (n = 1; n <= 200; n += 7) {
        float *a = randv((size_t)n, 1.0f), *b = randv((size_t)n, 1.0f);
        double ref = 0;
        int i;
        for (i = 0; i < n; i++) ref += (double)a[i] * b[i];
        CHECK(fabs(d1__dot(a, b, n) - ref) < 1e-5 * n, "n %d: %g vs %g", n, d1__dot(a, b, n), ref);
        CHECK(fabs(d1__dot_scalar(a, b, n) - ref) < 1e-5 * n, "scalar n %d", n);
        free(a); free(b);
    }
}

static void test_adamw_vs_scalar(void) {
    int n;
    for (n = 1; n <= 100; n += 9) {
        float *w0 = randv((size_t)n, 1.0f), *g = randv((size_t)n, 0.1f), *m0 = randv((size_t)n, 0.01f);
        float *v0 = randv((size_t)n, 0.001f), w1[100], m1[100], v1[100];
        double rw[100], rm[100], rv[100];
        d1__adamw_k k;
        int i;
        for (i = 0; i < n; i++) v0[i] = fabsf(v0[i]);
        memcpy(w1, w0, n * sizeof(float)); memcpy(m1, m0, n * sizeof(float)); memcpy(v1, v0, n * sizeof(float));
        k.b1 = 0.9f; k.b2 = 0.99f; k.wd = 1e-4f; k.step = 1e-3f; k.inv_c2 = 3.0f; k.eps = 1e-8f; k.scale = 0.5f;
        d1__adamw_scalar(&k, w0, g, m0, v0, (size_t)n);
        d1__adamw_update(&k, w1, g, m1, v1, (size_t)n);
        for (i = 0; i < n; i++) { rw[i] = w0[i]; rm[i] = m0[i]; rv[i] = v0[i]; }
        CHECK(th_rel_err(w1, rw, (size_t)n, 1e-6) < 1e-6 && th_rel_err(m1, rm, (size_t)n, 1e-9) < 1e-6 &&
                  th_rel_err(v1, rv, (size_t)n, 1e-12) < 1e-6, "n %d", n);
        free(w0); free(g); free(m0); free(v0);
    }
}

static void test_max_propagates_nan(void) {
    float x[5] = {1, 2, 3, 4, 5};
    CHECK(d1__max(x, 5) == 5.0f, "max");
    x[0] = NAN;
    CHECK(isnan(d1__max(x, 5)), "NaN first");
    x[0] = 1; x[3] = NAN;
    CHECK(isnan(d1__max(x, 5)), "NaN inside");
}

/* The SIMD max against the scalar one on every length 1..70 (full vectors
   and tails), with -inf (masked keys), all -inf, equal maxima, and a NaN at
   each place: the same value, NaN wherever one is. */
static void test_max_vs_scalar(void) {
    float x[70];
    int n, i, bad = 0;
    for (n = 1; n <= 70; n++) {
        for (i = 0; i < n; i++) x[i] = d1_rng_normal(&rng) * 4.0f;
        for (i = 0; i < n; i += 3) x[i] = -INFINITY;
        bad += d1__max(x, n) != d1__max_scalar(x, n);
        x[n - 1] = 50.0f; x[n / 2] = 50.0f; /* the maximum twice, one in the tail */
        bad += d1__max(x, n) != 50.0f;
        for (i = 0; i < n; i++) x[i] = -INFINITY;
        bad += d1__max(x, n) != -INFINITY;
        for (i = 0; i < n; i++) {
            float keep = x[i];
            x[i] = NAN;
            bad += !isnan(d1__max(x, n));
            x[i] = keep;
        }
    }
    CHECK(bad == 0, "%d lengths or cases differ", bad);
}

static void test_rng(void) {
    d1_rng a, b;
    double sum = 0, sq = 0;
    int i;
    d1_rng_seed(&a, 7);
    d1_rng_seed(&b, 7);
    for (i = 0; i < 1000; i++) CHECK(d1_rng_u64(&a) == d1_rng_u64(&b), "same seed, same stream");
    for (i = 0; i < 100000; i++) {
        float u = d1_rng_uniform(&a), z = d1_rng_normal(&b);
        CHECK(u >= 0.0f && u < 1.0f, "uniform in [0,1): %g", u);
        sum += z; sq += (double)z * z;
    }
    CHECK(fabs(sum / 1e5) < 0.02 && fabs(sq / 1e5 - 1) < 0.03, "normal moments %g %g", sum / 1e5, sq / 1e5);
}

int main(void) {
    TH_BANNER();
    d1_rng_seed(&rng, 1);
#if defined(D1__AVX512)
    printf("kernels: AVX-512\n");
#elif defined(D1__AVX2)
    printf("kernels: AVX2\n");
#elif defined(D1__NEON)
    printf("kernels: NEON\n");
#else
    printf("kernels: scalar\n");
#endif
    RUN(test_ukernel_vs_scalar);
    RUN(test_gemm_vs_reference);
    RUN(test_gemm_threads_bitwise);
    RUN(test_exp_vs_scalar);
    RUN(test_dot_vs_scalar);
    RUN(test_adamw_vs_scalar);
    RUN(test_max_propagates_nan);
    RUN(test_max_vs_scalar);
    RUN(test_rng);
    return th_summary();
}
