/* D1_PRECISION_BF16: the BF16 GEMM's kernels against its definition
   (d1__gemm_bf16_ref) bit for bit on odd shapes, the BF16 forward and log-probs
   against FP32 within a stated error, the sampler's tokens on the shipped
   Sudoku model, the refresh of the packed copy after every call that writes
   the weights, the API's contract, and d1_model_load_bf16 (its packed copy
   bit for bit the one of a load + D1_PRECISION_BF16; what it refuses). The first lines say which kernels ran
   and which were skipped (the AVX512-BF16 and NEON ones need the CPU and the build).
   The AMX kernel sums in its own order: on an AMX CPU it is held to the
   definition within a rounding bound; built with -DD1_AMX_EMULATE
   (build/test_bf16_amx) it runs on tests/amx_emu.h's model of the tile
   instructions, on any CPU with AVX512-BF16, and is checked bit for bit
   against that order. */
#if defined(D1_AMX_EMULATE)
#include "amx_emu.h"
#endif
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "ckpt_common.h"

static d1_rng rng;
static int have_fast; /* the vector BF16 kernel (AVX512-BF16 or NEON) can run here */
static int have_amx;  /* the AMX kernel can run here (or is emulated) */
static int top_kernel; /* the last kernel (bw.simd) to test: 2 with AMX, else have_fast */
#if defined(D1__BF16_NEON)
#define FAST_NAME "neon-bf16"
#else
#define FAST_NAME "avx512bf16"
#endif
#if defined(D1_AMX_EMULATE)
#define AMX_NAME "amx-bf16 (emulated)"
#else
#define AMX_NAME "amx-bf16"
#endif
static const char *kernel_name(int simd) { return simd == 2 ? AMX_NAME : simd ? FAST_NAME : "scalar"; }
#if (defined(D1__AVX512) || defined(D1__AVX2) || defined(D1__NEON)) && defined(__OPTIMIZE__) && \
    !defined(__SANITIZE_ADDRESS__)
static const int fast_f32 = 1; /* the FP32 GEMM has SIMD: the sampler test can afford 48 rows */
#else
static const int fast_f32 = 0;
#endif

static float *randv(size_t n, float scale) {
    float *x = (float *)malloc((n ? n : 1) * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) x[i] = scale * (2.0f * d1_rng_uniform(&rng) - 1.0f);
    return x;
}

/* a == b as floats (NaN == NaN), element by element; returns the first index that differs, or -1 */
static long first_diff(const float *a, const float *b, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i])))) return (long)i;
    return -1;
}

static void test_bf16_round(void) {
    static const struct { uint32_t in; uint16_t out; } cases[] = {
        {0x3f800000u, 0x3f80}, /* 1 */
        {0x3f808000u, 0x3f80}, /* 1 + 2^-8: a tie, to even (down) */
        {0x3f818000u, 0x3f82}, /* a tie, to even (up) */
        {0x3f808001u, 0x3f81}, /* just above the tie */
        {0x00400000u, 0x0000}, /* a subnormal float: zero */
        {0x80400000u, 0x8000}, /* with its sign */
        {0x007fffffu, 0x0000}, /* the largest subnormal, too */
        {0x00800000u, 0x0080}, /* FLT_MIN stays */
        {0x7f7fffffu, 0x7f80}, /* FLT_MAX rounds to infinity */
        {0xff800000u, 0xff80}, /* -inf */
        {0x7fc00001u, 0x7fc0}, /* a quiet NaN */
        {0x7f800001u, 0x7fc0}, /* a signalling NaN comes out quiet */
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float f;
        memcpy(&f, &cases[i].in, 4);
        CHECK(d1__bf16_round(f) == cases[i].out, "round(%08x) = %04x, want %04x", (unsigned)cases[i].in,
              d1__bf16_round(f), cases[i].out);
    }
    CHECK(d1__bf16_value(0x0040) == 0.0f && d1__bf16_value(0x3f80) == 1.0f, "subnormal bfloat16 reads as zero");
#if defined(D1__BF16_SIMD)
    /* the AVX512-BF16 packer (vcvtne2ps2bf16) or the NEON one against the
       scalar one, on random floats of every exponent and on the cases above */
    if (have_fast) {
        enum { MC = 29, KC = 77 };
        float *A = (float *)malloc(MC * KC * sizeof(float));
        uint32_t *p0 = (uint32_t *)d1__alloc(D1__BF_WS * 4), *p1 = (uint32_t *)d1__alloc(D1__BF_WS * 4);
        size_t n = (size_t)((MC + D1__BF_MR - 1) / D1__BF_MR) * D1__BF_MR * ((KC + 1) / 2);
        int k;
        for (k = 0; k < MC * KC; k++) {
            uint32_t u = (uint32_t)d1_rng_u64(&rng);
            if (k < (int)(sizeof cases / sizeof cases[0])) u = cases[k].in;
            memcpy(&A[k], &u, 4);
        }
        d1__bf16_pack_a_scalar(MC, KC, A, KC, p0);
#if defined(D1__BF16_NEON)
        d1__bf16_pack_a_neon(MC, KC, A, KC, p1);
#else
        d1__bf16_pack_a_avx512(MC, KC, A, KC, p1);
#endif
        CHECK(memcmp(p0, p1, n * 4) == 0, "packed A: the %s packer differs from the scalar one", FAST_NAME);
        free(A); d1__free(p0); d1__free(p1);
    }
#endif
}

/* The order tests/amx_emu.h gives TDPBF16PS: the definition's sums with the
   even element of each pair first. */
static D1__MAYBE_UNUSED void gemm_bf16_even_first(int M, int N, int K, const float *A, const float *W, float *C,
                                                  ptrdiff_t ldc, int acc) {
    int i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            const float *a = A + (size_t)i * K, *w = W + (size_t)j * K;
            float s = acc ? C[i * ldc + j] : 0.0f;
            for (k = 0; k < K; k += 2) {
                s = d1__bf16_fma(s, d1__bf16_round(a[k]), d1__bf16_round(w[k]));
                if (k + 1 < K) s = d1__bf16_fma(s, d1__bf16_round(a[k + 1]), d1__bf16_round(w[k + 1]));
            }
            C[i * ldc + j] = s;
        }
}
/* The AMX kernel's result C1 [M, ldc] from C start (acc) against the
   definition's C0. Emulated: the even-first order, bit for bit (every
   element, the columns past N unchanged). On an AMX CPU, whose order Intel
   leaves open: |C1 - C0| <= 2 (K + 2) 2^-23 (sum |a_k w_k| + |start|) +
   K FLT_MIN, twice the error bound of a K-term FP32 sum under either
   rounding (plus the flushes), for each element whose terms stay below
   1e37 (overflow to infinity depends on the order). Returns the first
   index out, or -1. */
static long amx_diff(int M, int N, int K, const float *A, const float *W, const float *start, const float *C0,
                     const float *C1, ptrdiff_t ldc, int acc) {
    size_t n = (size_t)M * ldc;
#if defined(D1_AMX_EMULATE)
    float *E = (float *)malloc((n + 1) * sizeof(float));
    long d;
    (void)C0;
    if (start) memcpy(E, start, n * sizeof(float));
    else memset(E, 0, n * sizeof(float));
    gemm_bf16_even_first(M, N, K, A, W, E, ldc, acc);
    d = first_diff(C1, E, n);
    free(E);
    return d;
#else
    int i, j, k;
    (void)n;
    for (i = 0; i < M; i++)
        for (j = 0; j < ldc; j++) {
            double t = acc ? fabs((double)start[i * ldc + j]) : 0.0, bound, x = C1[i * ldc + j], y = C0[i * ldc + j];
            if (j >= N) { /* past N: untouched */
                if (first_diff(&C1[i * ldc + j], &C0[i * ldc + j], 1) >= 0) return (long)(i * ldc + j);
                continue;
            }
            for (k = 0; k < K; k++)
                t += fabs((double)d1__bf16_value(d1__bf16_round(A[(size_t)i * K + k])) *
                          d1__bf16_value(d1__bf16_round(W[(size_t)j * K + k])));
            if (t > 1e37) continue;
            bound = 2.0 * (K + 2) * ldexp(1.0, -23) * t + K * (double)FLT_MIN;
            if (!(fabs(x - y) <= bound)) return (long)(i * ldc + j);
        }
    return -1;
#endif
}

/* One shape: the blocked GEMM with the scalar micro-kernel, and with the
   AVX512-BF16 or NEON one where it runs, against the definition, bit for bit;
   the AMX one where it runs, by amx_diff. */
static void bf16_gemm_case(int M, int N, int K, float scale, uint32_t *ws) {
    float *A = randv((size_t)M * K, scale), *W = randv((size_t)N * K, scale);
    float *C0 = (float *)malloc((size_t)M * (N + 5) * sizeof(float));
    float *C1 = (float *)malloc((size_t)M * (N + 5) * sizeof(float));
    uint32_t *Wp = (uint32_t *)d1__alloc(d1__bf16_packed_size(N, K) * sizeof(uint32_t) + 64);
    size_t n = (size_t)M * (N + 5);
    int simd;
    long d;
    d1__bf16_pack_w(N, K, W, K, Wp);
    memset(C0, 0, n * sizeof(float));
    d1__gemm_bf16_ref(M, N, K, A, K, W, K, C0, N + 5, 0);
    for (simd = 0; simd <= top_kernel; simd++) {
        if (simd == 1 && !have_fast) continue;
        memset(C1, 0, n * sizeof(float)); /* the 5 columns past N must stay 0 */
        d1__gemm_bf16(M, N, K, A, K, Wp, C1, N + 5, ws, simd);
        d = simd == 2 ? amx_diff(M, N, K, A, W, NULL, C0, C1, N + 5, 0) : first_diff(C1, C0, n);
        CHECK(d < 0, "%s kernel, M %d N %d K %d scale %g: C[%ld] = %a, the definition %a", kernel_name(simd), M, N, K,
              scale, d, d < 0 ? 0.0 : C1[d], d < 0 ? 0.0 : C0[d]);
    }
    free(A); free(W); free(C0); free(C1); d1__free(Wp);
}

static void test_bf16_gemm_vs_definition(void) {
    static const int sizes[] = {1, 2, 3, 7, 12, 13, 31, 32, 33, 64, 97};
    uint32_t *ws = (uint32_t *)d1__alloc(D1__BF_WS * sizeof(uint32_t));
    int i, j, k;
    for (i = 0; i < 11; i++)
        for (j = 0; j < 11; j += 2)
            for (k = 0; k < 11; k += 3) bf16_gemm_case(sizes[i], sizes[j], sizes[k], 1.0f, ws);
    bf16_gemm_case(251, 70, 1101, 1.0f, ws); /* several MC blocks and three K slices, K odd */
    bf16_gemm_case(13, 45, 1024, 1.0f, ws);  /* K slices exactly */
    bf16_gemm_case(7, 45, 1101, 1.0f, ws);   /* M <= 8: K in one slice, odd */
    bf16_gemm_case(1, 70, 2048, 1.0f, ws);   /* M <= 8, K past the default slice */
    bf16_gemm_case(17, 35, 33, 3e-20f, ws);  /* products and sums below FLT_MIN: flushed */
    bf16_gemm_case(9, 40, 15, 1e19f, ws);    /* overflow to infinity */
    bf16_gemm_case(5, 7, 0, 1.0f, ws);       /* K = 0: zeros */
    d1__free(ws);
}

/* The threaded BF16 GEMMs (inference's, and the general-stride one) give the
   one-thread bits. */
static void test_bf16_gemm_threads_bitwise(void) {
    static const int shapes[3][3] = {{301, 17, 129}, {7, 500, 33}, {96, 704, 128}};
    d1__pool pool;
    d1__ctx cx;
    int s, nth, simd, t;
    memset(&cx, 0, sizeof cx);
    cx.pool = &pool;
    for (s = 0; s < 3; s++)
        for (simd = 0; simd <= top_kernel; simd++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            float *A = randv((size_t)M * K, 1.0f), *W = randv((size_t)N * K, 1.0f);
            float *C1 = (float *)calloc((size_t)M * N, sizeof(float)), *Cn = (float *)calloc((size_t)M * N, sizeof(float));
            float *G1 = (float *)malloc((size_t)M * N * sizeof(float)), *Gn = (float *)malloc((size_t)M * N * sizeof(float));
            uint32_t *Wp = (uint32_t *)d1__alloc(d1__bf16_packed_size(N, K) * sizeof(uint32_t));
            d1__bf16_pack_w(N, K, W, K, Wp);
#ifdef D1_NO_THREADS
            for (nth = 1; nth <= 1; nth++) {
#else
            for (nth = 1; nth <= 3; nth++) {
#endif
                CHECK(d1__pool_start(&pool, nth) == D1_OK, "pool of %d", nth);
                for (t = 0; t < nth; t++) cx.ws[t] = d1__alloc_floats(D1__GEMM_WS);
                d1__gemm_bf16_mt(&cx, M, N, K, A, K, Wp, nth == 1 ? C1 : Cn, N, simd);
                if (nth > 1)
                    CHECK(memcmp(C1, Cn, (size_t)M * N * sizeof(float)) == 0,
                          "%s, %d x %d, K %d, %d threads: bit-identical to 1 thread", kernel_name(simd), M, N,
                          K, nth);
                /* the general-stride GEMM as the weight gradient calls it: A's buffer read
                   transposed (column stride M), W's as a row-major [K,N], accumulated */
                memset(nth == 1 ? G1 : Gn, 0, (size_t)M * N * sizeof(float));
                d1__gemm_bf16_gs_mt(&cx, M, N, K, A, 1, M, W, N, 1, nth == 1 ? G1 : Gn, N, 1, simd);
                if (nth > 1)
                    CHECK(memcmp(G1, Gn, (size_t)M * N * sizeof(float)) == 0,
                          "%s general strides, %d x %d, K %d, %d threads: bit-identical to 1 thread",
                          kernel_name(simd), M, N, K, nth);
                for (t = 0; t < nth; t++) d1__free(cx.ws[t]);
                d1__pool_stop(&pool);
            }
            free(A); free(W); free(C1); free(Cn); free(G1); free(Gn); d1__free(Wp);
        }
}

/* The general-stride BF16 GEMM of mixed-precision training (C (+)= A . B,
   each operand at its own strides) against the definition on the operands
   materialised row-major, bit for bit: A row-major or transposed (the
   weight gradient's dout^T) or at two odd strides, B row-major (the
   backward's weights and activations) or transposed or odd; acc 0 and 1 from
   a random C; K past one KC slice and N past one NC block. */
enum { GS_ROW, GS_TRANS, GS_ODD };
static const char *const gs_names[] = {"row-major", "transposed", "odd strides"};
/* the strides of an R x S operand in the layout; its buffer holds gs_size floats */
static void gs_strides(int layout, int R, int S, ptrdiff_t *rs, ptrdiff_t *cs) {
    if (layout == GS_ROW) { *rs = S; *cs = 1; }
    else if (layout == GS_TRANS) { *rs = 1; *cs = R; }
    else { *rs = 2; *cs = 2 * (ptrdiff_t)R + 3; }
}
static size_t gs_size(int layout, int R, int S) {
    ptrdiff_t rs, cs;
    gs_strides(layout, R, S, &rs, &cs);
    return R && S ? (size_t)((R - 1) * rs + (S - 1) * cs + 1) : 1;
}
static void bf16_gemm_gs_case(int M, int N, int K, int la, int lb, int acc, float scale, uint32_t *ws) {
    ptrdiff_t rsa, csa, rsb, csb;
    float *A = randv(gs_size(la, M, K), scale), *B = randv(gs_size(lb, K, N), scale);
    float *Am = (float *)malloc(((size_t)M * K + 1) * sizeof(float)), *Wm = (float *)malloc(((size_t)N * K + 1) * sizeof(float));
    float *Cs = randv((size_t)M * (N + 3), 1.0f), *C0 = (float *)malloc(((size_t)M * (N + 3) + 1) * sizeof(float));
    float *C1 = (float *)malloc(((size_t)M * (N + 3) + 1) * sizeof(float));
    size_t n = (size_t)M * (N + 3);
    int i, j, k, simd;
    long d;
    gs_strides(la, M, K, &rsa, &csa);
    gs_strides(lb, K, N, &rsb, &csb);
    for (i = 0; i < M; i++)
        for (k = 0; k < K; k++) Am[(size_t)i * K + k] = A[i * rsa + k * csa];
    for (j = 0; j < N; j++)
        for (k = 0; k < K; k++) Wm[(size_t)j * K + k] = B[k * rsb + j * csb];
    memcpy(C0, Cs, n * sizeof(float));
    d1__gemm_bf16_ref(M, N, K, Am, K, Wm, K, C0, N + 3, acc);
    for (simd = 0; simd <= top_kernel; simd++) {
        if (simd == 1 && !have_fast) continue;
        memcpy(C1, Cs, n * sizeof(float)); /* the 3 columns past N must keep their values */
        d1__gemm_bf16_gs(M, N, K, A, rsa, csa, B, rsb, csb, C1, N + 3, acc, ws, simd);
        d = simd == 2 ? amx_diff(M, N, K, Am, Wm, Cs, C0, C1, N + 3, acc) : first_diff(C1, C0, n);
        CHECK(d < 0, "%s, A %s, B %s, acc %d, M %d N %d K %d scale %g: C[%ld] = %a, the definition %a",
              kernel_name(simd), gs_names[la], gs_names[lb], acc, M, N, K, scale, d, d < 0 ? 0.0 : C1[d],
              d < 0 ? 0.0 : C0[d]);
    }
    free(A); free(B); free(Am); free(Wm); free(Cs); free(C0); free(C1);
}

static void test_bf16_gemm_gs_vs_definition(void) {
    static const int shapes[][3] = {{1, 1, 1}, {2, 3, 2}, {7, 33, 5}, {12, 32, 64}, {13, 45, 97}, {5, 7, 0}};
    /* past one KC slice, several MC blocks, past one NC block: in the backward's two layouts, attention's
       Q K^T (B transposed) and the odd one */
    static const int big[][3] = {{37, 70, 1101}, {251, 19, 600}, {3, 3100, 40}};
    static const int big_layouts[][2] = {{GS_ROW, GS_ROW}, {GS_TRANS, GS_ROW}, {GS_ROW, GS_TRANS}, {GS_ODD, GS_ODD}};
    uint32_t *ws = (uint32_t *)d1__alloc(D1__BF_GS_WS * sizeof(uint32_t));
    int s, la, lb, acc;
    for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (la = 0; la < 3; la++)
            for (lb = 0; lb < 3; lb++)
                for (acc = 0; acc < 2; acc++)
                    bf16_gemm_gs_case(shapes[s][0], shapes[s][1], shapes[s][2], la, lb, acc, 1.0f, ws);
    for (s = 0; s < 3; s++)
        for (la = 0; la < 4; la++)
            bf16_gemm_gs_case(big[s][0], big[s][1], big[s][2], big_layouts[la][0], big_layouts[la][1], la == 1, 1.0f,
                              ws);
    bf16_gemm_gs_case(17, 35, 33, GS_TRANS, GS_ROW, 1, 3e-20f, ws); /* below FLT_MIN: flushed */
    bf16_gemm_gs_case(9, 40, 15, GS_ROW, GS_ROW, 0, 1e19f, ws);     /* overflow to infinity */
    d1__free(ws);
}

/* a small model: GQA, untied or tied head, odd sizes */
static void small_config(d1_config *c, int tied) {
    memset(c, 0, sizeof *c);
    c->vocab_size = 37; c->dim = 64; c->n_layers = 2; c->n_heads = 4; c->n_kv_heads = 2; c->ffn_dim = 99;
    c->max_seq_len = 24; c->mask_id = 36; c->eos_id = 35; c->tied_embeddings = tied;
}
static void rand_tokens(int *tok, size_t n, int V) {
    size_t i;
    for (i = 0; i < n; i++) tok[i] = (int)(d1_rng_u64(&rng) % (uint64_t)V);
}

/* logits [B,T,V] of one FP32 forward and one BF16 forward (the nograd pass) */
static void forward_pair(d1_model *m, const int *tok, int B, int T, float *f32, float *bf16) {
    size_t n = (size_t)B * T * m->config.vocab_size;
    CHECK(d1_model_forward(m, tok, B, T, NULL) == D1_OK, "forward");
    memcpy(f32, m->logits, n * sizeof(float));
    d1__forward_nograd(m, tok, B, T, NULL);
    memcpy(bf16, m->logits, n * sizeof(float));
}

/* The BF16 forward of a small random model against its FP32 forward: the
   logits agree to 3e-2 of their scale (BF16 keeps 8 significant bits: each
   rounding is within 2^-9 relative); and with LoRA adapters (FP32, on the
   BF16 base) too. */
static void test_bf16_forward_vs_f32(void) {
    int tied, B = 3, T = 19, i;
    for (tied = 0; tied < 2; tied++) {
        d1_config c;
        d1_model m;
        int tok[3 * 19];
        float *lf = (float *)malloc(sizeof(float) * B * T * 37), *lb = (float *)malloc(sizeof(float) * B * T * 37);
        double *ref = (double *)malloc(sizeof(double) * B * T * 37), err;
        small_config(&c, tied);
        CHECK(d1_model_init(&m, &c, 11 + tied) == D1_OK, "init");
        rand_tokens(tok, (size_t)B * T, 37);
        CHECK(d1_model_set_precision(&m, D1_PRECISION_BF16) == D1_OK, "set BF16");
        forward_pair(&m, tok, B, T, lf, lb);
        for (i = 0; i < B * T * 37; i++) ref[i] = lf[i];
        err = th_rel_err(lb, ref, (size_t)B * T * 37, 1e-3);
        printf("  BF16 vs FP32 logits (%s head): relative error %.2e\n", tied ? "tied" : "untied", err);
        CHECK(err < 3e-2 && err > 0.0, "BF16 logits vs FP32: %g", err);
        if (!tied) { /* LoRA on the BF16 base: adapters with B != 0 change the logits the same way */
            float *lf2 = (float *)malloc(sizeof(float) * B * T * 37), *lb2 = (float *)malloc(sizeof(float) * B * T * 37);
            size_t k;
            CHECK(d1_lora_attach(&m, 4, 8.0f, 3) == D1_OK, "lora");
            for (k = 0; k < m.lora->num_params; k++) m.lora->param_memory[k] += 0.05f * d1_rng_normal(&rng);
            forward_pair(&m, tok, B, T, lf2, lb2);
            for (i = 0; i < B * T * 37; i++) ref[i] = lf2[i];
            err = th_rel_err(lb2, ref, (size_t)B * T * 37, 1e-3);
            CHECK(err < 3e-2, "LoRA: BF16 logits vs FP32: %g", err);
            CHECK(first_diff(lf, lf2, (size_t)B * T * 37) >= 0, "the adapters change the logits");
            free(lf2); free(lb2);
        }
        d1_model_free(&m);
        free(lf); free(lb); free(ref);
    }
}

/* D1_PRECISION_BF16_MIXED on a small model (GQA; untied and tied head, so
   the tied embedding's two gradients meet): the forward that back-propagates
   has BF16 linear layers and FP32 attention; every parameter gradient from a fixed
   dlogits agrees with FP32's to 3e-2 of its scale (each product's operands
   carry BF16's 2^-9 relative rounding) and is not FP32's; 1 and 2 threads
   give the same bits; LoRA adapters get their (FP32) gradients on the BF16
   base; and after an AdamW step the next forward uses the new weights. */
static void mixed_grads(d1_model *m, const int *tok, int B, int T, const float *dl, float *g) {
    CHECK(d1_model_zero_grad(m) == D1_OK && d1_model_forward(m, tok, B, T, NULL) == D1_OK, "forward");
    CHECK(d1_model_backward(m, dl) == D1_OK, "backward");
    memcpy(g, m->grad_memory, m->num_params * sizeof(float));
}
static void test_bf16_mixed_training(void) {
    enum { B = 3, T = 19, V = 37 };
    int tied, i, tok[B * T];
    float *dl = randv((size_t)B * T * V, 0.1f), *lb = (float *)malloc(sizeof(float) * B * T * V);
    float *l32 = (float *)malloc(sizeof(float) * B * T * V);
    for (tied = 0; tied < 2; tied++) {
        d1_config c;
        d1_model m;
        d1_adamw opt;
        d1_adamw_desc od = d1_adamw_default_desc();
        float *g32, *gmx, *g2, loss;
        double *ref, err;
        size_t n;
        small_config(&c, tied);
        CHECK(d1_model_init(&m, &c, 31 + tied) == D1_OK, "init");
        n = m.num_params;
        g32 = (float *)malloc(n * sizeof(float)); gmx = (float *)malloc(n * sizeof(float));
        g2 = (float *)malloc(n * sizeof(float)); ref = (double *)malloc(n * sizeof(double));
        rand_tokens(tok, B * T, 35);
        mixed_grads(&m, tok, B, T, dl, g32);
        CHECK(d1_model_forward(&m, tok, B, T, NULL) == D1_OK, "FP32 forward");
        memcpy(l32, m.logits, sizeof(float) * B * T * V);
        CHECK(d1_model_set_precision(&m, D1_PRECISION_BF16_MIXED) == D1_OK &&
                  d1_model_precision(&m) == D1_PRECISION_BF16_MIXED, "set BF16_MIXED");
        mixed_grads(&m, tok, B, T, dl, gmx);
        d1__forward_nograd(&m, tok, B, T, NULL);
        memcpy(lb, m.logits, sizeof(float) * B * T * V);
        /* the forward that back-propagates: BF16 linear layers (not the FP32 logits), FP32 attention
           (not the no-gradient pass's, whose attention products are BF16 too) */
        CHECK(d1_model_forward(&m, tok, B, T, NULL) == D1_OK &&
                  memcmp(l32, m.logits, sizeof(float) * B * T * V) != 0 &&
                  memcmp(lb, m.logits, sizeof(float) * B * T * V) != 0,
              "the training forward of BF16_MIXED: BF16 linear layers, FP32 attention");
        for (i = 0; i < (int)n; i++) ref[i] = g32[i];
        err = th_rel_err(gmx, ref, n, 1e-3);
        printf("  BF16_MIXED vs FP32 gradients (%s head): relative error %.2e\n", tied ? "tied" : "untied", err);
        CHECK(err < 3e-2 && err > 0.0, "mixed-precision gradients vs FP32: %g", err);
#ifndef D1_NO_THREADS
        CHECK(d1_model_set_threads(&m, 2) == D1_OK, "2 threads");
        mixed_grads(&m, tok, B, T, dl, g2);
        CHECK(memcmp(g2, gmx, n * sizeof(float)) == 0, "the same gradient bits with 1 and 2 threads");
        CHECK(d1_model_set_threads(&m, 1) == D1_OK, "1 thread");
#endif
        /* a step moves the weights; the next mixed forward sees them */
        CHECK(d1_adamw_init(&opt, &m, &od) == D1_OK && d1_adamw_step(&opt, &m, &loss) == D1_OK, "AdamW");
        {
            d1_model f;
            CHECK(d1_model_init(&f, &c, 99) == D1_OK, "init copy");
            memcpy(f.param_memory, m.param_memory, n * sizeof(float));
            CHECK(d1_model_set_precision(&f, D1_PRECISION_BF16_MIXED) == D1_OK, "copy mixed");
            CHECK(d1_model_forward(&m, tok, B, T, NULL) == D1_OK && d1_model_forward(&f, tok, B, T, NULL) == D1_OK &&
                      memcmp(m.logits, f.logits, sizeof(float) * B * T * V) == 0,
                  "after an AdamW step the mixed forward uses the new weights");
            d1_model_free(&f);
        }
        d1_adamw_free(&opt);
        if (!tied) { /* LoRA: adapter gradients on the BF16 base, FP32's within the same bound */
            float *a32, *amx;
            size_t k, nl;
            double *ra;
            CHECK(d1_model_set_precision(&m, D1_PRECISION_F32) == D1_OK, "F32");
            CHECK(d1_lora_attach(&m, 4, 8.0f, 3) == D1_OK, "lora");
            nl = m.lora->num_params;
            for (k = 0; k < nl; k++) m.lora->param_memory[k] += 0.05f * d1_rng_normal(&rng);
            a32 = (float *)malloc(nl * sizeof(float)); amx = (float *)malloc(nl * sizeof(float));
            ra = (double *)malloc(nl * sizeof(double));
            CHECK(d1_model_zero_grad(&m) == D1_OK && d1_model_forward(&m, tok, B, T, NULL) == D1_OK &&
                      d1_model_backward(&m, dl) == D1_OK, "LoRA F32");
            memcpy(a32, m.lora->grad_memory, nl * sizeof(float));
            CHECK(d1_model_set_precision(&m, D1_PRECISION_BF16_MIXED) == D1_OK && d1_model_zero_grad(&m) == D1_OK &&
                      d1_model_forward(&m, tok, B, T, NULL) == D1_OK && d1_model_backward(&m, dl) == D1_OK,
                  "LoRA mixed");
            memcpy(amx, m.lora->grad_memory, nl * sizeof(float));
            for (k = 0; k < nl; k++) ra[k] = a32[k];
            err = th_rel_err(amx, ra, nl, 1e-3);
            CHECK(err < 3e-2 && err > 0.0, "LoRA gradients, mixed vs FP32: %g", err);
            free(a32); free(amx); free(ra);
        }
        d1_model_free(&m);
        free(g32); free(gmx); free(g2); free(ref);
    }
    free(dl); free(lb); free(l32);
}

/* d1_grpo_logprobs (a public BF16 pass) against FP32 on the same model:
   |logp_bf16 - logp_f32| small; d1_model_forward stays FP32, bit for bit. */
static void test_bf16_logprobs_and_forward_api(void) {
    enum { B = 4, T = 20, P = 6, Lc = T - P };
    d1_config c;
    d1_model m, f;
    d1_grpo_batch gb;
    int tok[B * T], i;
    uint8_t im[B * T];
    float lp32[B * Lc], lp16[B * Lc], *l0 = (float *)malloc(sizeof(float) * B * T * 37);
    double mx = 0.0, mean = 0.0;
    small_config(&c, 0);
    CHECK(d1_model_init(&m, &c, 5) == D1_OK && d1_model_init(&f, &c, 5) == D1_OK, "init");
    rand_tokens(tok, B * T, 35);
    for (i = 0; i < B * T; i++) im[i] = (uint8_t)(i % T >= P || d1_rng_uniform(&rng) < 0.15f);
    memset(&gb, 0, sizeof gb);
    gb.tokens = tok; gb.B = B; gb.T = T; gb.P = P; gb.input_mask = im;
    CHECK(d1_grpo_logprobs(&m, &gb, lp32) == D1_OK, "F32 logprobs");
    CHECK(d1_model_set_precision(&m, D1_PRECISION_BF16) == D1_OK, "set BF16");
    CHECK(d1_grpo_logprobs(&m, &gb, lp16) == D1_OK, "BF16 logprobs");
    for (i = 0; i < B * Lc; i++) {
        double d = fabs((double)lp16[i] - lp32[i]);
        mean += d / (B * Lc);
        if (d > mx) mx = d;
    }
    printf("  d1_grpo_logprobs BF16 vs FP32: mean |dlogp| %.2e, max %.2e\n", mean, mx);
    CHECK(mx < 5e-2 && mx > 0.0, "logprobs differ by %g", mx);
    CHECK(d1_model_backward(&m, m.logits) == D1_ERR_STATE, "no backward from a BF16 pass");
    /* d1_model_forward ignores the precision: the FP32 bits of a model never set */
    CHECK(d1_model_forward(&m, tok, B, T, NULL) == D1_OK && d1_model_forward(&f, tok, B, T, NULL) == D1_OK, "fwd");
    CHECK(memcmp(m.logits, f.logits, sizeof(float) * B * T * 37) == 0, "d1_model_forward is FP32 under BF16");
    memcpy(l0, m.logits, sizeof(float) * B * T * 37);
    /* back to F32: the log-probs are the FP32 ones again, bit for bit */
    CHECK(d1_model_set_precision(&m, D1_PRECISION_F32) == D1_OK && m.state->bw.mem == NULL, "set F32 frees");
    CHECK(d1_grpo_logprobs(&m, &gb, lp16) == D1_OK && memcmp(lp16, lp32, sizeof lp32) == 0, "F32 again");
    d1_model_free(&m); d1_model_free(&f);
    free(l0);
}

/* Sudoku prompts as the demo's tasks.h writes them (16 cells, 0 = empty,
   token id = digit): a solution grid with its digits, rows within bands and
   bands permuted, then 8..11 cells blanked. */
static void sudoku_prompt(int *p) {
    static const int base[16] = {1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 1};
    int perm[5] = {0, 1, 2, 3, 4}, rows[4] = {0, 1, 2, 3}, i, r, holes;
    for (i = 4; i > 1; i--) { int j = 1 + (int)(d1_rng_u64(&rng) % (uint64_t)i), t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
    if (d1_rng_u64(&rng) & 1) { rows[0] = 1; rows[1] = 0; }
    if (d1_rng_u64(&rng) & 1) { rows[2] = 3; rows[3] = 2; }
    if (d1_rng_u64(&rng) & 1) { int t0 = rows[0], t1 = rows[1]; rows[0] = rows[2]; rows[1] = rows[3]; rows[2] = t0; rows[3] = t1; }
    for (r = 0; r < 4; r++)
        for (i = 0; i < 4; i++) p[r * 4 + i] = perm[base[rows[r] * 4 + i]];
    holes = 8 + (int)(d1_rng_u64(&rng) % 4);
    for (i = 0; i < holes;) {
        int cell = (int)(d1_rng_u64(&rng) % 16);
        if (p[cell]) { p[cell] = 0; i++; }
    }
}

/* The shipped Sudoku model (BF16 weights, trained): the BF16 sampler at
   temperature 0 gives the FP32 sampler's tokens at >= 99% of the generated
   positions, without and with the dual KV cache (whose passes are BF16 too).
   The demo's evaluation setting: 16-token prompts, 56 generated in blocks of
   8, 28 steps, low_confidence. */
static int sampler_rows(void) { /* short (qemu, sanitizers): one row, as on the scalar kernel */
    return have_fast && fast_f32 && !th_short() ? 48 : 1;
}
static D1__MAYBE_UNUSED void test_bf16_sampler_tokens(void) {
    static const char *paths[2] = {"examples/checkpoints/sudoku/base", "../examples/checkpoints/sudoku/base"};
    d1_model m;
    d1_sampler_desc d;
    int rows = sampler_rows(), kv, i, rc = -1, P = 16, G = 56;
    int *prompts, *o32, *o16;
    for (i = 0; i < 2 && rc != D1_OK; i++) rc = d1_model_load(&m, paths[i]);
    if (rc != D1_OK) {
        printf("  skipped: examples/checkpoints/sudoku/base not found (%s)\n", d1_strerror(rc));
        return;
    }
    prompts = (int *)malloc(sizeof(int) * rows * P);
    o32 = (int *)malloc(sizeof(int) * rows * (P + G));
    o16 = (int *)malloc(sizeof(int) * rows * (P + G));
    for (i = 0; i < rows; i++) sudoku_prompt(prompts + i * P);
    memset(&d, 0, sizeof d);
    d.gen_len = G; d.block_len = 8; d.steps = 28; d.temperature = 0.0f; d.remasking = D1_REMASK_LOW_CONFIDENCE;
    for (kv = 0; kv < (rows == 1 && th_short() ? 1 : 2); kv++) { /* the slow scalar paths, short: no cache only */
        d1_rng r1, r2;
        long same = 0, n = (long)rows * G;
        d.kv_cache = kv ? D1_KV_DUAL : D1_KV_NONE;
        d1_rng_seed(&r1, 9); d1_rng_seed(&r2, 9);
        CHECK(d1_model_set_precision(&m, D1_PRECISION_F32) == D1_OK, "F32");
        CHECK(d1_sampler_generate(&m, &d, prompts, rows, P, NULL, &r1, o32, NULL) == D1_OK, "F32 sampler");
        CHECK(d1_model_set_precision(&m, D1_PRECISION_BF16) == D1_OK, "BF16");
        CHECK(d1_sampler_generate(&m, &d, prompts, rows, P, NULL, &r2, o16, NULL) == D1_OK, "BF16 sampler");
        for (i = 0; i < rows * (P + G); i++) same += i % (P + G) >= P && o32[i] == o16[i];
        printf("  sampler %s, %d rows: BF16 = FP32 at %ld of %ld generated positions (%.2f%%)\n",
               kv ? "dual cache" : "no cache", rows, same, n, 100.0 * same / n);
        CHECK(same >= 0.99 * n, "BF16 tokens match FP32 at %ld of %ld", same, n);
    }
    { /* d1's log-prob pass on these completions (prompt masked at 0.15): how far
         a BF16 old-policy log-prob lies from the FP32 one of the update */
        d1_grpo_batch gb;
        uint8_t *im = (uint8_t *)malloc((size_t)rows * (P + G));
        float *l32 = (float *)malloc(sizeof(float) * rows * G), *l16 = (float *)malloc(sizeof(float) * rows * G);
        double mx = 0.0, mean = 0.0;
        for (i = 0; i < rows * (P + G); i++) im[i] = (uint8_t)(i % (P + G) >= P || d1_rng_uniform(&rng) < 0.15f);
        memset(&gb, 0, sizeof gb);
        gb.tokens = o32; gb.B = rows; gb.T = P + G; gb.P = P; gb.input_mask = im;
        CHECK(d1_model_set_precision(&m, D1_PRECISION_F32) == D1_OK && d1_grpo_logprobs(&m, &gb, l32) == D1_OK, "F32");
        CHECK(d1_model_set_precision(&m, D1_PRECISION_BF16) == D1_OK && d1_grpo_logprobs(&m, &gb, l16) == D1_OK, "BF16");
        for (i = 0; i < rows * G; i++) {
            double dl = fabs((double)l16[i] - l32[i]);
            mean += dl / (rows * G);
            if (dl > mx) mx = dl;
        }
        printf("  d1_grpo_logprobs on these completions: BF16 vs FP32 mean |dlogp| %.2e, max %.2e\n", mean, mx);
        CHECK(mean < 0.05, "mean |dlogp| %g", mean);
        free(im); free(l32); free(l16);
    }
    free(prompts); free(o32); free(o16);
    d1_model_free(&m);
}

/* BF16 logits of model a, after a BF16 forward over tok */
static void bf16_logits(d1_model *a, const int *tok, int B, int T, float *out) {
    CHECK(d1__ensure(a, B, T) == D1_OK, "ensure");
    d1__forward_nograd(a, tok, B, T, NULL);
    memcpy(out, a->logits, sizeof(float) * B * T * a->config.vocab_size);
}
/* a fresh model with m's weights, set to BF16 (packed at the set) */
static void fresh_copy(d1_model *f, const d1_model *m) {
    CHECK(d1_model_init(f, &m->config, 99) == D1_OK, "init");
    memcpy(f->param_memory, m->param_memory, m->num_params * sizeof(float));
    CHECK(d1_model_set_precision(f, D1_PRECISION_BF16) == D1_OK, "BF16");
}

/* Every call that writes the weights refreshes the packed copy: after an
   AdamW step, d1_model_copy_weights, d1_lora_merge and d1_model_push, a BF16
   forward equals (bit for bit) that of a fresh model set to BF16 with the new
   weights. Writing param_memory without d1_model_push leaves the copy stale
   (the documented contract). */
/* d1_model_set_bf16_kernel: the reference (scalar) kernel and the vector one
   (AVX512-BF16, NEON) give the same bits on a whole model, not only per
   GEMM: the BF16 logits, the BF16_MIXED gradients, and the sampler's tokens
   with the dual KV cache. The fast kernel (the default) is the vector one,
   or AMX where it runs: AMX's logits and gradients within 1% (relative L2)
   of the reference's (its sums round in another order, and a BF16
   re-rounding of an activation can turn that into 2^-9 of one element);
   its tokens are not compared (the small random model's logits are near
   ties). A bad value is refused and changes nothing. */
static double rel_l2(const float *x, const float *ref, size_t n) {
    double d = 0.0, r = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        d += ((double)x[i] - ref[i]) * ((double)x[i] - ref[i]);
        r += (double)ref[i] * ref[i];
    }
    return sqrt(d / (r > 0.0 ? r : 1.0));
}
static void test_bf16_kernel_choice(void) {
    enum { B = 3, T = 19, V = 37, P = 8, G = 8 };
    static const int kernels[3] = {D1_BF16_KERNEL_REFERENCE, D1_BF16_KERNEL_VECTOR, D1_BF16_KERNEL_FAST};
    int tok[B * T], prompts[2 * P], out[3][2 * (P + G)], want[3], k;
    float *dl = randv((size_t)B * T * V, 0.1f), *lg[3], *gr[3];
    size_t n = (size_t)B * T * V;
    d1_config c;
    d1_model m;
    small_config(&c, 0);
    CHECK(d1_model_init(&m, &c, 41) == D1_OK, "init");
    rand_tokens(tok, (size_t)B * T, 35);
    rand_tokens(prompts, 2 * P, 35);
    want[0] = 0; want[1] = have_fast; want[2] = have_amx ? 2 : have_fast;
    CHECK(d1_model_set_bf16_kernel(NULL, D1_BF16_KERNEL_REFERENCE) == D1_ERR_ARG, "NULL model");
    CHECK(m.state->bf16_kernel == D1_BF16_KERNEL_FAST, "the fast kernel is the default");
    for (k = 0; k < 3; k++) {
        d1_sampler_desc d = d1_sampler_default_desc(G);
        d1_rng r;
        lg[k] = (float *)malloc(n * sizeof(float)); gr[k] = (float *)malloc(m.num_params * sizeof(float));
        CHECK(d1_model_set_bf16_kernel(&m, kernels[k]) == D1_OK, "kernel %d", kernels[k]);
        CHECK(d1_model_set_precision(&m, D1_PRECISION_BF16) == D1_OK, "BF16");
        CHECK(m.state->bw.simd == want[k], "kernel %d: the model runs %s, want %s", kernels[k],
              kernel_name(m.state->bw.simd), kernel_name(want[k]));
        CHECK(d1__ensure(&m, B, T) == D1_OK, "buffers"); /* the internal pass below does not size them */
        d1__forward_nograd(&m, tok, B, T, NULL);
        memcpy(lg[k], m.logits, n * sizeof(float));
        d.block_len = 4; d.steps = 4; d.kv_cache = D1_KV_DUAL;
        d1_rng_seed(&r, 5);
        CHECK(d1_sampler_generate(&m, &d, prompts, 2, P, NULL, &r, out[k], NULL) == D1_OK, "sampler");
        CHECK(d1_model_set_precision(&m, D1_PRECISION_BF16_MIXED) == D1_OK, "BF16_MIXED");
        mixed_grads(&m, tok, B, T, dl, gr[k]);
    }
    for (k = 1; k < 3; k++) {
        if (want[k] == 2) {
            double el = rel_l2(lg[k], lg[0], n), eg = rel_l2(gr[k], gr[0], m.num_params);
            printf("  %s against the reference: logits %.1e, BF16_MIXED gradients %.1e (relative L2)\n",
                   kernel_name(2), el, eg);
            CHECK(el < 1e-2 && eg < 1e-2, "%s: logits %g, gradients %g from the reference", kernel_name(2), el, eg);
            continue;
        }
        CHECK(memcmp(lg[k], lg[0], n * sizeof(float)) == 0, "BF16 logits: %s and reference kernels",
              kernel_name(want[k]));
        CHECK(memcmp(gr[k], gr[0], m.num_params * sizeof(float)) == 0, "BF16_MIXED gradients: %s and reference",
              kernel_name(want[k]));
        CHECK(memcmp(out[k], out[0], sizeof out[0]) == 0, "sampler tokens (dual cache): %s and reference",
              kernel_name(want[k]));
    }
    CHECK(d1_model_set_bf16_kernel(&m, D1_BF16_KERNEL_REFERENCE) == D1_OK, "reference");
    CHECK(d1_model_set_bf16_kernel(&m, 3) == D1_ERR_ARG && d1_model_set_bf16_kernel(&m, -1) == D1_ERR_ARG &&
              m.state->bf16_kernel == D1_BF16_KERNEL_REFERENCE && m.state->bw.simd == 0,
          "a bad kernel value is refused, the choice unchanged");
    CHECK(d1_model_set_bf16_kernel(&m, D1_BF16_KERNEL_FAST) == D1_OK && m.state->bw.simd == want[2],
          "back to the fast kernel");
    printf("  the %s and reference kernels: the same logits, gradients and tokens%s\n", FAST_NAME,
           have_fast ? "" : " (no vector kernel here: both scalar)");
    d1_model_free(&m);
    for (k = 0; k < 3; k++) { free(lg[k]); free(gr[k]); }
    free(dl);
}

static void test_bf16_refresh(void) {
    enum { B = 2, T = 17, V = 37 };
    d1_config c;
    d1_model m, f, other;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    int tok[B * T], step;
    float before[B * T * V], after[B * T * V], want[B * T * V], loss;
    small_config(&c, 0);
    CHECK(d1_model_init(&m, &c, 21) == D1_OK && d1_adamw_init(&opt, &m, &od) == D1_OK, "init");
    rand_tokens(tok, B * T, 35);
    CHECK(d1_model_set_precision(&m, D1_PRECISION_BF16) == D1_OK, "BF16");
    bf16_logits(&m, tok, B, T, before);
    for (step = 0; step < 2; step++) {
        d1_model_zero_grad(&m);
        CHECK(d1_pretrain_loss(&m, tok, B, T, NULL, NULL, &rng, &loss) == D1_OK, "loss");
        CHECK(d1_adamw_step(&opt, &m, NULL) == D1_OK, "adamw");
    }
    bf16_logits(&m, tok, B, T, after);
    fresh_copy(&f, &m);
    bf16_logits(&f, tok, B, T, want);
    CHECK(first_diff(after, before, B * T * V) >= 0, "the update changed the BF16 logits");
    CHECK(memcmp(after, want, sizeof after) == 0, "after d1_adamw_step: the fresh model's BF16 logits");
    d1_model_free(&f);

    /* d1_model_copy_weights into a BF16 model */
    CHECK(d1_model_init(&other, &c, 77) == D1_OK, "init");
    CHECK(d1_model_copy_weights(&m, &other) == D1_OK, "copy");
    bf16_logits(&m, tok, B, T, after);
    fresh_copy(&f, &other);
    bf16_logits(&f, tok, B, T, want);
    CHECK(memcmp(after, want, sizeof after) == 0, "after d1_model_copy_weights");
    d1_model_free(&f);

    /* d1_lora_merge */
    {
        size_t k;
        CHECK(d1_lora_attach(&m, 2, 4.0f, 5) == D1_OK, "attach");
        for (k = 0; k < m.lora->num_params; k++) m.lora->param_memory[k] = 0.1f * d1_rng_normal(&rng);
        CHECK(d1_lora_merge(&m) == D1_OK, "merge");
        bf16_logits(&m, tok, B, T, after);
        fresh_copy(&f, &m);
        bf16_logits(&f, tok, B, T, want);
        CHECK(memcmp(after, want, sizeof after) == 0, "after d1_lora_merge");
        d1_model_free(&f);
    }

    /* writing param_memory: stale until d1_model_push */
    memcpy(before, after, sizeof after);
    m.params.head[3] += 0.5f;
    m.params.qkv[100] -= 0.25f;
    bf16_logits(&m, tok, B, T, after);
    CHECK(memcmp(after, before, sizeof after) == 0, "without d1_model_push the copy is the old one");
    CHECK(d1_model_push(&m) == D1_OK, "push");
    bf16_logits(&m, tok, B, T, after);
    fresh_copy(&f, &m);
    bf16_logits(&f, tok, B, T, want);
    CHECK(memcmp(after, want, sizeof after) == 0, "after d1_model_push");
    CHECK(first_diff(after, before, B * T * V) >= 0, "the edit shows");
    d1_model_free(&f);
    d1_model_free(&other);
    d1_adamw_free(&opt);
    d1_model_free(&m);
}

/* The setter's contract, and the sampler's results do not depend on the
   thread count in BF16 either. */
static void test_bf16_contract(void) {
    d1_config c;
    d1_model m;
    d1_sampler_desc d;
    int prompts[3 * 5], o1[3 * 17], o2[3 * 17];
    d1_rng r1, r2;
    small_config(&c, 1);
    CHECK(d1_model_init(&m, &c, 8) == D1_OK, "init");
    CHECK(d1_model_precision(&m) == D1_PRECISION_F32, "F32 by default");
    CHECK(d1_model_set_precision(NULL, D1_PRECISION_BF16) == D1_ERR_ARG, "NULL model");
    CHECK(d1_model_set_precision(&m, 3) == D1_ERR_ARG && d1_model_set_precision(&m, -1) == D1_ERR_ARG, "bad value");
    CHECK(d1_model_precision(&m) == D1_PRECISION_F32 && m.state->bw.mem == NULL, "a refused call changes nothing");
    CHECK(d1_model_precision(NULL) == D1_ERR_ARG, "precision of NULL");
    CHECK(d1_model_set_precision(&m, D1_PRECISION_BF16) == D1_OK && d1_model_precision(&m) == D1_PRECISION_BF16,
          "BF16");
    CHECK(d1_model_set_precision(&m, D1_PRECISION_BF16) == D1_OK, "BF16 again (repacks)");
#ifndef D1_CUDA
    CHECK(d1_model_set_device(&m, D1_DEVICE_CUDA) == D1_ERR_UNSUPPORTED, "no GPU in this build");
#endif
    rand_tokens(prompts, 15, 35);
    memset(&d, 0, sizeof d);
    d.gen_len = 12; d.block_len = 4; d.steps = 6; d.temperature = 0.7f;
    d1_rng_seed(&r1, 4); d1_rng_seed(&r2, 4);
    CHECK(d1_sampler_generate(&m, &d, prompts, 3, 5, NULL, &r1, o1, NULL) == D1_OK, "BF16 sampler, 1 thread");
#ifndef D1_NO_THREADS
    CHECK(d1_model_set_threads(&m, 2) == D1_OK, "2 threads");
#endif
    CHECK(d1_sampler_generate(&m, &d, prompts, 3, 5, NULL, &r2, o2, NULL) == D1_OK, "BF16 sampler, 2 threads");
    CHECK(memcmp(o1, o2, sizeof o1) == 0, "the same tokens with 1 and 2 threads");
    d1_model_free(&m);
}

/* d1_model_load_bf16 against d1_model_load + D1_PRECISION_BF16, from files in
   F32 and in BF16, tied and untied (GQA, ffn 99: the odd K of the down
   projection; vocabulary 37: a partial panel): the same packed words, wte and
   norms, so the same sampler tokens (no cache and the dual cache) and
   log-probs, bit for bit; d1_model_forward gives the BF16 pass's logits; every
   call that needs the FP32 matrices answers D1_ERR_UNSUPPORTED and changes
   nothing; a failed load leaves *m as it was. */
static void test_bf16_resident_load(void) {
    enum { B = 3, P = 5, G = 12, T = P + G };
    int tied, dt, kv;
    for (tied = 0; tied < 2; tied++)
        for (dt = 0; dt < 2; dt++) {
            int dtype = dt ? D1_DTYPE_BF16 : D1_DTYPE_F32, prompts[B * P], o1[B * T], o2[B * T], tok[B * T], i;
            char dir[600];
            d1_config c;
            d1_model m, a, r;
            d1_grpo_batch gb;
            uint8_t im[B * T];
            float lp1[B * G], lp2[B * G], *lg = (float *)malloc(sizeof(float) * B * T * 37);
            d1_adamw opt;
            d1_adamw_desc od = d1_adamw_default_desc();
            d1_tensor tt;
            small_config(&c, tied);
            snprintf(dir, sizeof dir, "%s/resident_%d_%d", tmpdir(), tied, dtype);
            CHECK(d1_model_init(&m, &c, 11 + tied) == D1_OK && d1_model_save(&m, dir, dtype) == D1_OK, "save");
            CHECK(d1_model_load(&a, dir) == D1_OK && d1_model_set_precision(&a, D1_PRECISION_BF16) == D1_OK, "load");
            CHECK(d1_model_load_bf16(&r, dir) == D1_OK, "load_bf16: %s", d1_last_error());
            CHECK(d1_model_precision(&r) == D1_PRECISION_BF16, "computes in BF16");
            CHECK(r.state->bw.total == a.state->bw.total &&
                      memcmp(r.state->bw.mem, a.state->bw.mem, a.state->bw.total * sizeof(uint32_t)) == 0,
                  "the packed copy, word for word (tied %d, %s)", tied, dt ? "BF16" : "F32");
            CHECK(r.num_params == (size_t)(37 + 2 * 2 + 1) * 64, "FP32 floats held: %zu", r.num_params);
            CHECK(memcmp(r.params.wte, a.params.wte, sizeof(float) * 37 * 64) == 0 &&
                      memcmp(r.params.attn_norm, a.params.attn_norm, sizeof(float) * 2 * 64) == 0 &&
                      memcmp(r.params.ff_norm, a.params.ff_norm, sizeof(float) * 2 * 64) == 0 &&
                      memcmp(r.params.ln_f, a.params.ln_f, sizeof(float) * 64) == 0,
                  "wte and the norms");
            rand_tokens(prompts, B * P, 35);
            for (kv = 0; kv <= D1_KV_DUAL; kv += D1_KV_DUAL) {
                d1_sampler_desc d = d1_sampler_default_desc(G);
                d1_rng r1, r2;
                d.block_len = 4; d.steps = 6; d.temperature = 0.7f; d.kv_cache = kv;
                d1_rng_seed(&r1, 9); d1_rng_seed(&r2, 9);
                CHECK(d1_sampler_generate(&a, &d, prompts, B, P, NULL, &r1, o1, NULL) == D1_OK &&
                          d1_sampler_generate(&r, &d, prompts, B, P, NULL, &r2, o2, NULL) == D1_OK,
                      "sample");
                CHECK(memcmp(o1, o2, sizeof o1) == 0, "the same tokens (kv_cache %d)", kv);
            }
            rand_tokens(tok, B * T, 35);
            for (i = 0; i < B * T; i++) im[i] = (uint8_t)(i % T >= P);
            memset(&gb, 0, sizeof gb);
            gb.tokens = tok; gb.B = B; gb.T = T; gb.P = P; gb.input_mask = im;
            CHECK(d1_grpo_logprobs(&a, &gb, lp1) == D1_OK && d1_grpo_logprobs(&r, &gb, lp2) == D1_OK &&
                      memcmp(lp1, lp2, sizeof lp1) == 0,
                  "the same log-probs");
            d1__forward_nograd(&a, tok, B, T, NULL);
            memcpy(lg, a.logits, sizeof(float) * B * T * 37);
            CHECK(d1_model_forward(&r, tok, B, T, NULL) == D1_OK &&
                      memcmp(r.logits, lg, sizeof(float) * B * T * 37) == 0,
                  "d1_model_forward: the BF16 pass");
            /* what it refuses */
            CHECK(d1_model_backward(&r, r.logits) == D1_ERR_UNSUPPORTED, "backward");
            CHECK(d1_model_zero_grad(&r) == D1_ERR_UNSUPPORTED && r.grad_memory == NULL, "zero_grad");
            CHECK(d1_model_copy_weights(&r, &m) == D1_ERR_UNSUPPORTED &&
                      d1_model_copy_weights(&m, &r) == D1_ERR_UNSUPPORTED,
                  "copy_weights either way");
            CHECK(d1_model_tensor(&r, 0, &tt) == D1_ERR_UNSUPPORTED, "tensor views");
            CHECK(d1_model_set_precision(&r, D1_PRECISION_F32) == D1_ERR_UNSUPPORTED &&
                      d1_model_set_precision(&r, D1_PRECISION_BF16_MIXED) == D1_ERR_UNSUPPORTED &&
                      d1_model_set_precision(&r, D1_PRECISION_BF16) == D1_OK && d1_model_precision(&r) == D1_PRECISION_BF16,
                  "precision stays BF16");
            CHECK(d1_lora_attach(&r, 2, 4.0f, 1) == D1_ERR_UNSUPPORTED && r.lora == NULL, "LoRA");
            CHECK(d1_adamw_init(&opt, &r, &od) == D1_ERR_UNSUPPORTED, "AdamW");
            CHECK(d1_pretrain_loss(&r, tok, B, T, NULL, NULL, &rng, lp1) == D1_ERR_UNSUPPORTED, "pretrain loss");
            {
                int pl[B] = {P, P, P};
                CHECK(d1_sft_loss(&r, tok, B, T, pl, NULL, NULL, &rng, lp1) == D1_ERR_UNSUPPORTED, "SFT loss");
            }
            snprintf(dir, sizeof dir, "%s/resident_saved", tmpdir());
            CHECK(d1_model_save(&r, dir, D1_DTYPE_BF16) == D1_ERR_UNSUPPORTED && d1_model_save_size(&r, 0) == 0,
                  "save");
            CHECK(d1_model_set_device(&r, D1_DEVICE_CUDA) == D1_ERR_UNSUPPORTED, "GPU");
            d1_model_free(&m); d1_model_free(&a); d1_model_free(&r);
            free(lg);
        }
    { /* a failed load changes nothing */
        d1_model r;
        char dir[600];
        memset(&r, 0x5a, sizeof r);
        snprintf(dir, sizeof dir, "%s/resident_absent", tmpdir());
        CHECK(d1_model_load_bf16(&r, dir) != D1_OK && ((unsigned char *)&r)[0] == 0x5a, "absent dir");
        CHECK(d1_model_load_bf16(NULL, dir) == D1_ERR_ARG && d1_model_load_bf16(&r, NULL) == D1_ERR_ARG, "NULLs");
    }
}

/* d1_bf16_simd_available says what d1_build_info's bf16 entry says: 1 when
   that entry names a SIMD kernel, 0 when it is "scalar ..." */
static void test_bf16_simd_available(void) {
    const char *b = strstr(d1_build_info(), ", bf16 ");
    int scalar = b && !strncmp(b + 7, "scalar", 6);
    CHECK(b != NULL, "no bf16 entry in \"%s\"", d1_build_info());
    CHECK(d1_bf16_simd_available() == !scalar, "d1_bf16_simd_available %d, build line \"%s\"",
          d1_bf16_simd_available(), d1_build_info());
}

#if defined(D1__AMX) && D1__AMX == 1
/* The emulated runs above used the tiles as a CPU allows (no fault: every
   tile configured, shapes that match, the configuration's reserved bytes
   zero) and did use them. */
static void test_bf16_amx_emulation(void) {
    CHECK(amx_emu_faults == 0, "%ld tile faults, the first: %s", amx_emu_faults, amx_emu_first_fault);
    CHECK(!have_amx || amx_emu_dps > 0, "the AMX kernel never ran (%ld TDPBF16PS)", amx_emu_dps);
    printf("  %ld emulated TDPBF16PS, %ld faults\n", amx_emu_dps, amx_emu_faults);
}
#endif

int main(void) {
    TH_BANNER();
    d1_rng_seed(&rng, 1);
    have_fast = d1__cpu_bf16();
#if defined(D1__BF16_AVX) && D1__BF16_AVX == 1
    printf("bf16 kernels: scalar ran; avx512bf16 ran (compiled in: -mavx512bf16)\n");
#elif defined(D1__BF16_AVX)
    if (have_fast)
        printf("bf16 kernels: scalar ran; avx512bf16 ran (target attribute, chosen by CPUID)\n");
    else
        printf("bf16 kernels: scalar ran; avx512bf16 SKIPPED (CPUID: this CPU or OS lacks AVX512-BF16)\n");
#elif defined(D1__BF16_NEON) && D1__BF16_NEON == 1
    printf("bf16 kernels: scalar ran; neon-bf16 ran (compiled in: +bf16)\n");
#elif defined(D1__BF16_NEON)
    if (have_fast)
        printf("bf16 kernels: scalar ran; neon-bf16 ran (target attribute, chosen by HWCAP2_BF16)\n");
    else
        printf("bf16 kernels: scalar ran; neon-bf16 SKIPPED (HWCAP2: this CPU lacks BF16)\n");
#else
    printf("bf16 kernels: scalar ran; avx512bf16 and neon-bf16 SKIPPED (not in this build: %s)\n",
#if defined(D1_NO_SIMD)
           "D1_NO_SIMD"
#else
           "neither x86-64 with gcc >= 10 or clang >= 9 nor arm64 Linux with gcc >= 10 or +bf16"
#endif
    );
#endif
    have_amx = d1__cpu_amx();
    top_kernel = have_amx ? 2 : have_fast;
#if defined(D1_AMX_EMULATE) && !(defined(D1__AMX) && D1__AMX == 1)
    printf("amx-bf16 (emulated) SKIPPED: not in this build (x86-64 with the AVX512-BF16 kernel only); "
           "build/test_bf16 runs the other kernels\n");
    return th_summary();
#elif defined(D1_AMX_EMULATE)
    if (!have_amx) {
        printf("amx-bf16 (emulated) SKIPPED: the emulation feeds the tiles with the AVX512-BF16 packers, "
               "which this CPU lacks; build/test_bf16 runs the other kernels\n");
        return th_summary();
    }
#endif
#if defined(D1__AMX) && D1__AMX == 1
    printf("amx-bf16: ran on tests/amx_emu.h's model of the tile instructions (D1_AMX_EMULATE)\n");
#elif defined(D1__AMX)
    if (have_amx)
        printf("amx-bf16: ran (CPUID: AMX-TILE, AMX-BF16; XCR0 tile state; Linux granted XTILEDATA)\n");
    else
        printf("amx-bf16 SKIPPED (CPUID, XCR0 or Linux: no AMX tiles for this process); "
               "build/test_bf16_amx runs it emulated\n");
#else
    printf("amx-bf16 SKIPPED (not in this build: x86-64 Linux with the AVX512-BF16 kernel, gcc >= 11 or "
           "clang >= 12)\n");
#endif
    printf("model passes: %s; the sampler test runs %d rows\n", have_fast ? kernel_name(top_kernel) : "scalar (slow)",
           sampler_rows());
    RUN(test_bf16_round);
    RUN(test_bf16_simd_available);
    RUN(test_bf16_gemm_vs_definition);
    RUN(test_bf16_gemm_gs_vs_definition);
    RUN(test_bf16_gemm_threads_bitwise);
    RUN(test_bf16_forward_vs_f32);
    RUN(test_bf16_logprobs_and_forward_api);
    RUN(test_bf16_mixed_training);
    RUN(test_bf16_kernel_choice);
    RUN(test_bf16_refresh);
    RUN(test_bf16_contract);
    RUN(test_bf16_resident_load);
#if defined(D1__AMX) && D1__AMX == 1
    /* the emulated build: the sampler's BF16 passes ran in test_bf16_kernel_choice already;
       the shipped model's 56-token rollouts on the scalar tile model would only add minutes
       under the sanitizers */
    printf("test_bf16_sampler_tokens: in build/test_bf16 (its kernels), not on the emulated tiles\n");
    RUN(test_bf16_amx_emulation);
#else
    RUN(test_bf16_sampler_tokens);
#endif
    rm_tree(tmpdir());
    return th_summary();
}
