/* The CUDA backend against the CPU (make test-cuda): every kernel of
   tools/d1_cuda.cu against its CPU twin in d1.h on random inputs, then whole
   models: logits, loss and gradients, training steps, the sampler against the
   generate.py reference, a diffu-GRPO loss and a whole d1_grpo_step, the host
   mirror, and bad input. fp32 paths: relative error <= 1e-5 per kernel (the
   ones without reductions are checked for bit equality); whole-model gradients
   after 2-4 layers of reordered float sums: <= 1e-4. Without a GPU it says so
   and reports nothing run. */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "harness.h"
#include "refdata.h"

#ifndef D1_TEST_DATA
#define D1_TEST_DATA "tests/data"
#endif

static d1_cuda *cu;
static d1_rng rng;

/* ---- helpers: random host arrays, device copies, comparisons ---------------- */
static float *rnd(size_t n, float scale) {
    float *x = (float *)malloc(n * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) x[i] = scale * d1_rng_normal(&rng);
    return x;
}
static void *up(const void *h, size_t bytes) {
    void *d = d1_cuda_alloc(cu, bytes);
    d1_cuda_upload(cu, d, h, bytes);
    return d;
}
static float *down(const float *d, size_t n) {
    float *h = (float *)malloc(n * sizeof(float));
    d1_cuda_download(cu, h, d, n * sizeof(float));
    return h;
}
/* max |a - b| / max |b| */
static double rel(const float *a, const float *b, size_t n) {
    double e = 0.0, s = 1e-30;
    size_t i;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= e)) e = d;
        if (fabs(b[i]) > s) s = fabs(b[i]);
    }
    return e / s;
}
/* compares the device array d [n] with the host array h; frees the download */
static double rel_dev(const float *d, const float *h, size_t n) {
    float *g = down(d, n);
    double e = rel(g, h, n);
    free(g);
    return e;
}
static int same_dev(const float *d, const float *h, size_t n) {
    float *g = down(d, n);
    int eq = memcmp(g, h, n * sizeof(float)) == 0;
    free(g);
    return eq;
}

/* a CPU context for the CPU kernels (one thread) */
static d1_model cpu_holder;
static d1__ctx *cpu_cx(void) { return &cpu_holder.state->cx; }

/* ---- kernels ------------------------------------------------------------------ */
static void test_matmul(void) {
    static const int shapes[][3] = {{1, 7, 5}, {33, 64, 96}, {257, 128, 384}, {128, 515, 129}};
    size_t k;
    for (k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int N = shapes[k][0], I = shapes[k][1], O = shapes[k][2];
        float *x = rnd((size_t)N * I, 1), *w = rnd((size_t)O * I, 1), *dy = rnd((size_t)N * O, 1);
        float *y = (float *)malloc(sizeof(float) * N * O), *dx = (float *)malloc(sizeof(float) * N * I);
        float *dw = rnd((size_t)O * I, 1);
        float *gx = (float *)up(x, sizeof(float) * N * I), *gw = (float *)up(w, sizeof(float) * O * I);
        float *gdy = (float *)up(dy, sizeof(float) * N * O), *gdw = (float *)up(dw, sizeof(float) * O * I);
        float *gy = (float *)d1_cuda_alloc(cu, sizeof(float) * N * O), *gdx = (float *)d1_cuda_alloc(cu, sizeof(float) * N * I);
        double e1, e2, e3;
        d1__matmul_forward(cpu_cx(), y, x, w, N, I, O);
        d1__matmul_backward(cpu_cx(), dx, dw, dy, x, w, N, I, O);
        d1_cuda_matmul_forward(cu, gy, gx, gw, N, I, O);
        d1_cuda_matmul_backward(cu, gdx, gdw, gdy, gx, gw, N, I, O);
        e1 = rel_dev(gy, y, (size_t)N * O); e2 = rel_dev(gdx, dx, (size_t)N * I); e3 = rel_dev(gdw, dw, (size_t)O * I);
        CHECK(e1 <= 1e-5 && e2 <= 1e-5 && e3 <= 1e-5, "matmul %dx%dx%d: out %.2g dinp %.2g dw %.2g", N, I, O, e1, e2, e3);
        free(x); free(w); free(dy); free(y); free(dx); free(dw);
        d1_cuda_free(cu, gx); d1_cuda_free(cu, gw); d1_cuda_free(cu, gdy); d1_cuda_free(cu, gdw);
        d1_cuda_free(cu, gy); d1_cuda_free(cu, gdx);
    }
    CHECK(d1_cuda_status(cu) == 0, "%s", d1_cuda_message(cu));
}

static void test_embedding(void) {
    int N = 300, C = 96, V = 37, n, U = 0;
    int *tok = (int *)malloc(sizeof(int) * N), *emb = (int *)malloc(sizeof(int) * (3 * N + 1 + V + 1));
    int *ids = emb, *start = emb + N, *pos = start + N + 1, *cnt = pos + N;
    float *wte = rnd((size_t)V * C, 1), *dout = rnd((size_t)N * C, 1), *dwte = rnd((size_t)V * C, 1);
    float *out = (float *)malloc(sizeof(float) * N * C);
    float *gw, *gout, *gdo, *gdw;
    int *gtok, *gemb;
    for (n = 0; n < N; n++) tok[n] = (int)(d1_rng_u64(&rng) % 30); /* some ids unused */
    memset(cnt, 0, sizeof(int) * (V + 1));
    for (n = 0; n < N; n++) cnt[tok[n] + 1]++;
    for (n = 0; n < V; n++) cnt[n + 1] += cnt[n];
    for (n = 0; n < V; n++)
        if (cnt[n + 1] > cnt[n]) { ids[U] = n; start[U++] = cnt[n]; }
    start[U] = N;
    for (n = 0; n < N; n++) pos[cnt[tok[n]]++] = n;
    gw = (float *)up(wte, sizeof(float) * V * C); gtok = (int *)up(tok, sizeof(int) * N);
    gdo = (float *)up(dout, sizeof(float) * N * C); gdw = (float *)up(dwte, sizeof(float) * V * C);
    gemb = (int *)up(emb, sizeof(int) * (3 * N + 1));
    gout = (float *)d1_cuda_alloc(cu, sizeof(float) * N * C);
    d1__embed_forward(out, tok, wte, N, C);
    d1__embed_backward(dwte, dout, tok, N, C);
    d1_cuda_embed_forward(cu, gout, gtok, gw, N, C);
    d1_cuda_embed_backward(cu, gdw, gdo, gemb, gemb + N, gemb + 2 * N + 1, U, C);
    CHECK(same_dev(gout, out, (size_t)N * C), "embedding forward differs");
    CHECK(same_dev(gdw, dwte, (size_t)V * C), "embedding backward differs from the CPU's bits");
    free(tok); free(emb); free(wte); free(dout); free(dwte); free(out);
    d1_cuda_free(cu, gw); d1_cuda_free(cu, gtok); d1_cuda_free(cu, gdo); d1_cuda_free(cu, gdw);
    d1_cuda_free(cu, gemb); d1_cuda_free(cu, gout);
}

static void test_rmsnorm(void) {
    int N = 300, C = 200;
    float *x = rnd((size_t)N * C, 2), *w = rnd(C, 1), *dout = rnd((size_t)N * C, 1), *dw = rnd(C, 1);
    float *out = (float *)malloc(sizeof(float) * N * C), *r = (float *)malloc(sizeof(float) * N);
    float *dx = (float *)malloc(sizeof(float) * N * C);
    float *gx = (float *)up(x, sizeof(float) * N * C), *gw = (float *)up(w, sizeof(float) * C);
    float *gdo = (float *)up(dout, sizeof(float) * N * C), *gdw = (float *)up(dw, sizeof(float) * C);
    float *go = (float *)d1_cuda_alloc(cu, sizeof(float) * N * C), *gr = (float *)d1_cuda_alloc(cu, sizeof(float) * N);
    float *gdx = (float *)d1_cuda_alloc(cu, sizeof(float) * N * C);
    double e1, e2, e3, e4;
    d1__rmsnorm_forward(out, r, x, w, N, C, 1e-5f);
    d1__rmsnorm_backward(dx, dw, dout, x, w, r, N, C);
    d1_cuda_rmsnorm_forward(cu, go, gr, gx, gw, N, C, 1e-5f);
    d1_cuda_rmsnorm_backward(cu, gdx, gdw, gdo, gx, gw, gr, N, C);
    e1 = rel_dev(go, out, (size_t)N * C); e2 = rel_dev(gr, r, N); e3 = rel_dev(gdx, dx, (size_t)N * C);
    e4 = rel_dev(gdw, dw, C);
    CHECK(e1 <= 1e-5 && e2 <= 1e-5 && e3 <= 1e-5 && e4 <= 1e-5, "rmsnorm out %.2g rstd %.2g dx %.2g dw %.2g", e1,
          e2, e3, e4);
    free(x); free(w); free(dout); free(dw); free(out); free(r); free(dx);
    d1_cuda_free(cu, gx); d1_cuda_free(cu, gw); d1_cuda_free(cu, gdo); d1_cuda_free(cu, gdw);
    d1_cuda_free(cu, go); d1_cuda_free(cu, gr); d1_cuda_free(cu, gdx);
}

static void test_rope(void) {
    int T = 20, B = 3, N = B * T, D = 16, heads = 6, ld = heads * D + 8, half = D / 2, t, i;
    float *x = rnd((size_t)N * ld, 1), *cs = (float *)malloc(sizeof(float) * 64 * half);
    float *sn = (float *)malloc(sizeof(float) * 64 * half), *gx, *gc, *gs;
    for (t = 0; t < 64; t++)
        for (i = 0; i < half; i++) {
            double a = t * pow(10000.0, -2.0 * i / D);
            cs[t * half + i] = (float)cos(a); sn[t * half + i] = (float)sin(a);
        }
    gx = (float *)up(x, sizeof(float) * N * ld); gc = (float *)up(cs, sizeof(float) * 64 * half);
    gs = (float *)up(sn, sizeof(float) * 64 * half);
    d1__rope(x, ld, N, T, 5, heads, D, cs, sn, 1.0f);
    d1_cuda_rope(cu, gx, ld, N, T, 5, heads, D, gc, gs, 1.0f);
    CHECK(same_dev(gx, x, (size_t)N * ld), "rope forward differs");
    d1__rope(x, ld, N, T, 5, heads, D, cs, sn, -1.0f);
    d1_cuda_rope(cu, gx, ld, N, T, 5, heads, D, gc, gs, -1.0f);
    CHECK(same_dev(gx, x, (size_t)N * ld), "rope backward differs");
    free(x); free(cs); free(sn);
    d1_cuda_free(cu, gx); d1_cuda_free(cu, gc); d1_cuda_free(cu, gs);
}

static void test_attention(void) {
    int B = 3, T = 37, H = 4, KV = 2, D = 16, C = H * D, QW = C + 2 * KV * D, N = B * T, i;
    float *qkv = rnd((size_t)N * QW, 1), *dy = rnd((size_t)N * C, 1);
    float *att = (float *)malloc(sizeof(float) * B * H * T * T), *y = (float *)malloc(sizeof(float) * N * C);
    float *dqkv = (float *)malloc(sizeof(float) * N * QW);
    uint8_t *km = (uint8_t *)malloc((size_t)N), *gkm;
    float *gq, *gdy, *gatt, *gy, *gdq, *gsc;
    d1__attn_args at;
    double e1, e2, e3;
    for (i = 0; i < N; i++) km[i] = (uint8_t)(i % T >= (i / T) * 3); /* left padding of 0, 3, 6 */
    d1_model_set_threads(&cpu_holder, 1);
    d1__ensure(&cpu_holder, 1, T); /* per-thread scratch of T*T floats */
    d1__attn_setup(&at, qkv, QW, &cpu_holder.config, B, T, cpu_cx());
    at.H = H; at.KV = KV; at.D = D; at.q = qkv; at.k = qkv + C; at.v = qkv + C + KV * D; at.ldq = at.ldk = QW;
    at.att_w = att; at.y = y; at.key_mask = km;
    d1__attention_forward_task(&at, 0, 1);
    at.att = att; at.dy = dy; at.dqkv = dqkv;
    d1__attention_backward_task(&at, 0, 1);
    gq = (float *)up(qkv, sizeof(float) * N * QW); gdy = (float *)up(dy, sizeof(float) * N * C);
    gkm = (uint8_t *)up(km, (size_t)N);
    gatt = (float *)d1_cuda_alloc(cu, sizeof(float) * B * H * T * T); gy = (float *)d1_cuda_alloc(cu, sizeof(float) * N * C);
    gdq = (float *)d1_cuda_alloc(cu, sizeof(float) * N * QW); gsc = (float *)d1_cuda_alloc(cu, sizeof(float) * B * T * T);
    d1_cuda_attention_forward(cu, gatt, gy, gq, gkm, B, T, H, KV, D);
    d1_cuda_attention_backward(cu, gdq, gsc, gatt, gdy, gq, B, T, H, KV, D);
    e1 = rel_dev(gatt, att, (size_t)B * H * T * T); e2 = rel_dev(gy, y, (size_t)N * C); e3 = rel_dev(gdq, dqkv, (size_t)N * QW);
    CHECK(e1 <= 1e-5 && e2 <= 1e-5 && e3 <= 1e-5, "attention (GQA 4/2, key mask) P %.2g y %.2g dqkv %.2g", e1, e2, e3);
    free(qkv); free(dy); free(att); free(y); free(dqkv); free(km);
    d1_cuda_free(cu, gq); d1_cuda_free(cu, gdy); d1_cuda_free(cu, gkm); d1_cuda_free(cu, gatt);
    d1_cuda_free(cu, gy); d1_cuda_free(cu, gdq); d1_cuda_free(cu, gsc);
}

static void test_swiglu_residual(void) {
    int N = 77, F = 130;
    float *gu = rnd((size_t)N * 2 * F, 2), *dh = rnd((size_t)N * F, 1);
    float *h = (float *)malloc(sizeof(float) * N * F), *dgu = (float *)malloc(sizeof(float) * N * 2 * F);
    float *ggu = (float *)up(gu, sizeof(float) * N * 2 * F), *gdh = (float *)up(dh, sizeof(float) * N * F);
    float *gh = (float *)d1_cuda_alloc(cu, sizeof(float) * N * F), *gdgu = (float *)d1_cuda_alloc(cu, sizeof(float) * N * 2 * F);
    d1__swiglu_args sw;
    double e1, e2;
    d1__ensure(&cpu_holder, 1, 8);
    sw.out = h; sw.gu = gu; sw.dh = NULL; sw.N = N; sw.F = F; sw.cx = cpu_cx();
    d1__swiglu_forward_task(&sw, 0, 1);
    sw.out = dgu; sw.dh = dh;
    d1__swiglu_backward_task(&sw, 0, 1);
    d1_cuda_swiglu_forward(cu, gh, ggu, N, F);
    d1_cuda_swiglu_backward(cu, gdgu, ggu, gdh, N, F);
    e1 = rel_dev(gh, h, (size_t)N * F); e2 = rel_dev(gdgu, dgu, (size_t)N * 2 * F);
    CHECK(e1 <= 1e-5 && e2 <= 1e-5, "swiglu h %.2g dgu %.2g", e1, e2);
    d1__residual_add(h, dh, (size_t)N * F);
    d1_cuda_residual_add(cu, gh, gdh, (size_t)N * F);
    CHECK(rel_dev(gh, h, (size_t)N * F) <= 1e-5, "residual add");
    free(gu); free(dh); free(h); free(dgu);
    d1_cuda_free(cu, ggu); d1_cuda_free(cu, gdh); d1_cuda_free(cu, gh); d1_cuda_free(cu, gdgu);
}

static void test_losses(void) {
    int R = 5, T = 23, P = 7, V = 61, N = R * T, Lc = T - P, n, t;
    float *l = rnd((size_t)N * V, 3), *w = (float *)malloc(sizeof(float) * N), *dl = (float *)malloc(sizeof(float) * N * V);
    int *y = (int *)malloc(sizeof(int) * N), *gy;
    double loss = 0.0, gl = 0.0, *grow = (double *)malloc(sizeof(double) * N), *drow;
    float *gl_, *gw, *gdl, *lp = (float *)malloc(sizeof(float) * R * Lc), *glp, w2[64]; /* w2: softmax scratch */
    for (n = 0; n < N; n++) { y[n] = (int)(d1_rng_u64(&rng) % V); w[n] = n % 3 ? 0.5f / N : 0.0f; }
    gl_ = (float *)up(l, sizeof(float) * N * V); gw = (float *)up(w, sizeof(float) * N); gy = (int *)up(y, sizeof(int) * N);
    gdl = (float *)d1_cuda_alloc(cu, sizeof(float) * N * V); drow = (double *)d1_cuda_alloc(cu, sizeof(double) * N);
    glp = (float *)d1_cuda_alloc(cu, sizeof(float) * R * Lc);
    loss = d1__cross_entropy(dl, l, y, w, N, V);
    d1_cuda_cross_entropy(cu, gdl, drow, gl_, gy, gw, N, V);
    d1_cuda_download(cu, grow, drow, sizeof(double) * N);
    for (n = 0; n < N; n++) gl += grow[n];
    CHECK(fabs(gl - loss) <= 1e-6 * fabs(loss), "cross-entropy loss %.9g vs %.9g", gl, loss);
    CHECK(rel_dev(gdl, dl, (size_t)N * V) <= 1e-5, "cross-entropy gradient");
    d1_cuda_token_logp(cu, glp, gl_, gy, R, T, P, V);
    for (t = 0; t < R * Lc; t++) {
        size_t row = (size_t)(t / Lc) * T + P + t % Lc;
        lp[t] = (float)d1__token_logp(l + row * V, V, y[row], w2);
    }
    CHECK(rel_dev(glp, lp, (size_t)R * Lc) <= 1e-5, "token log-probs");
    d1_cuda_cross_entropy(cu, gl_, drow, gl_, gy, gw, N, V); /* in place, as d1.h may */
    CHECK(rel_dev(gl_, dl, (size_t)N * V) <= 1e-5, "cross-entropy gradient in place");
    free(l); free(w); free(dl); free(y); free(grow); free(lp);
    d1_cuda_free(cu, gl_); d1_cuda_free(cu, gw); d1_cuda_free(cu, gy); d1_cuda_free(cu, gdl);
    d1_cuda_free(cu, drow); d1_cuda_free(cu, glp);
}

static void test_adamw_norm(void) {
    size_t n = 100003, i;
    float *w = rnd(n, 1), *g = rnd(n, 1), *m = rnd(n, 0.1f), *v = (float *)malloc(sizeof(float) * n);
    float *gw_, *gg, *gm, *gv;
    double sq = 0.0, gsq, *dsq = (double *)d1_cuda_alloc(cu, sizeof(double));
    d1__adamw_k k;
    d1_adamw_desc ds = d1_adamw_default_desc();
    for (i = 0; i < n; i++) v[i] = fabsf(g[i]) * 0.01f;
    gw_ = (float *)up(w, sizeof(float) * n); gg = (float *)up(g, sizeof(float) * n);
    gm = (float *)up(m, sizeof(float) * n); gv = (float *)up(v, sizeof(float) * n);
    for (i = 0; i < n; i++) sq += (double)g[i] * g[i];
    d1_cuda_sum_squares(cu, dsq, gg, n);
    d1_cuda_download(cu, &gsq, dsq, sizeof gsq);
    CHECK(fabs(gsq - sq) <= 1e-12 * sq, "sum of squares %.17g vs %.17g", gsq, sq);
    k = d1__adamw_konst(&ds, 1, 0.7f, 1.0 - pow(0.9, 3), 1.0 - pow(0.999, 3));
    d1__adamw_scalar(&k, w, g, m, v, n);
    d1_cuda_adamw(cu, gw_, gg, gm, gv, n, k.b1, k.b2, k.wd, k.step, k.inv_c2, k.eps, k.scale);
    CHECK(same_dev(gw_, w, n) && same_dev(gm, m, n) && same_dev(gv, v, n), "AdamW differs from the CPU's bits");
    free(w); free(g); free(m); free(v);
    d1_cuda_free(cu, gw_); d1_cuda_free(cu, gg); d1_cuda_free(cu, gm); d1_cuda_free(cu, gv); d1_cuda_free(cu, dsq);
}

/* propose + select against d1__propose and the CPU's sort, on logits with clear gaps */
static void test_sampler_kernels(void) {
    int B = 4, T = 30, b0 = 10, b1 = 26, bl = b1 - b0, V = 50, mask_id = 49, eos = 3, mode, cfg, b, i;
    float *l = rnd((size_t)2 * B * T * V, 2);
    int *canvas = (int *)malloc(sizeof(int) * B * T), *k = (int *)malloc(sizeof(int) * B);
    int *gtok = (int *)d1_cuda_alloc(cu, sizeof(int) * B * bl), *gcan, *gk, *tok = (int *)malloc(sizeof(int) * B * bl);
    double *gconf = (double *)d1_cuda_alloc(cu, sizeof(double) * B * bl), *conf = (double *)malloc(sizeof(double) * B * bl);
    float *gl_ = (float *)up(l, sizeof(float) * 2 * B * T * V);
    uint8_t *grev = (uint8_t *)d1_cuda_alloc(cu, (size_t)B * T), *rev = (uint8_t *)malloc((size_t)B * T);
    for (i = 0; i < B * T; i++) canvas[i] = (i % T >= b0 && (i * 7) % 3) ? mask_id : (int)(i % 40);
    for (b = 0; b < B; b++) k[b] = b + 1;
    gcan = (int *)up(canvas, sizeof(int) * B * T);
    gk = (int *)up(k, sizeof(int) * B);
    for (cfg = 0; cfg < 2; cfg++)
        for (mode = 0; mode <= D1_REMASK_ENTROPY; mode++) {
            int bad = 0;
            if (mode == D1_REMASK_RANDOM) continue;
            d1_cuda_sampler_propose(cu, gtok, gconf, gl_, cfg ? gl_ + (size_t)B * T * V : NULL, 1.5f, gcan, B, T, b0,
                                    b1, 0, T, V, mask_id, mask_id, eos, mode);
            d1_cuda_download(cu, tok, gtok, sizeof(int) * B * bl);
            d1_cuda_download(cu, conf, gconf, sizeof(double) * B * bl);
            for (b = 0; b < B; b++)
                for (i = b0; i < b1; i++) {
                    float row[64];
                    int x0, v, c = b * bl + i - b0;
                    double cf;
                    const float *lr = l + ((size_t)b * T + i) * V, *ur = lr + (size_t)B * T * V;
                    if (canvas[b * T + i] != mask_id) { bad += tok[c] != -1; continue; }
                    for (v = 0; v < V; v++) row[v] = cfg ? ur[v] + (1.5f + 1.0f) * (lr[v] - ur[v]) : lr[v];
                    d1__propose(row, V, mask_id, eos, 0.0f, mode, NULL, &x0, &cf);
                    bad += x0 != tok[c] || fabs(cf - conf[c]) > 1e-12 * (fabs(cf) + 1e-300);
                }
            CHECK(bad == 0, "propose (remasking %d, cfg %d): %d candidates differ", mode, cfg, bad);
        }
    /* select: the k[b] most confident (ties to the earlier position), and the threshold rule */
    {
        float thr;
        for (thr = 0.0f; thr <= 0.5f; thr += 0.5f) {
            int want = 0, got = 0, bad = 0;
            d1_cuda_upload(cu, gcan, canvas, sizeof(int) * B * T);
            d1_cuda_sampler_select(cu, gcan, grev, gtok, gconf, gk, thr, B, T, b0, b1);
            d1_cuda_download(cu, rev, grev, (size_t)B * T);
            for (b = 0; b < B; b++) {
                d1__cand cb[64];
                int n = 0, j, kk;
                for (i = 0; i < bl; i++)
                    if (tok[b * bl + i] >= 0) { cb[n].conf = conf[b * bl + i]; cb[n].pos = b0 + i; cb[n].tok = tok[b * bl + i]; n++; }
                qsort(cb, (size_t)n, sizeof *cb, d1__cand_cmp);
                if (thr > 0.0f) for (kk = 1; kk < n && cb[kk].conf >= thr; kk++) {}
                else kk = D1__MIN(n, k[b]);
                for (j = 0; j < kk; j++) bad += !rev[b * T + cb[j].pos];
                want += kk;
            }
            for (i = 0; i < B * T; i++) got += rev[i];
            CHECK(bad == 0 && got == want, "select (threshold %g): %d of %d reveals differ, %d revealed", thr, bad,
                  want, got);
        }
    }
    free(l); free(canvas); free(k); free(tok); free(conf); free(rev);
    d1_cuda_free(cu, gtok); d1_cuda_free(cu, gcan); d1_cuda_free(cu, gk); d1_cuda_free(cu, gconf);
    d1_cuda_free(cu, gl_); d1_cuda_free(cu, grev);
    CHECK(d1_cuda_status(cu) == 0, "%s", d1_cuda_message(cu));
}

/* ---- whole models ------------------------------------------------------------- */
static d1_config small_config(int tied) {
    d1_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 67; c.dim = 64; c.n_layers = 3; c.n_heads = 4; c.n_kv_heads = 2; c.ffn_dim = 160;
    c.max_seq_len = 64; c.mask_id = 66; c.eos_id = 1; c.pad_id = 1; c.tied_embeddings = tied;
    return c;
}

static double grads_rel(d1_model *g, d1_model *c) {
    int i, nt = d1_model_num_tensors(c);
    double worst = 0.0;
    d1_model_pull(g);
    for (i = 0; i < nt; i++) {
        d1_tensor t;
        double e;
        d1_model_tensor(c, i, &t);
        e = rel(g->grad_memory + t.offset, c->grad_memory + t.offset, t.size);
        if (e > worst) worst = e;
    }
    return worst;
}

static void test_model_forward_backward(void) {
    int tied;
    for (tied = 0; tied < 2; tied++) {
        d1_config c = small_config(tied);
        d1_model mc, mg;
        int B = 3, T = 40, N = B * T, i, rc;
        int *tok = (int *)malloc(sizeof(int) * N);
        uint8_t *km = (uint8_t *)malloc((size_t)N), *mask = (uint8_t *)malloc((size_t)N);
        float p[3] = {0.3f, 0.6f, 0.9f}, lc, lg;
        double e, eg;
        for (i = 0; i < N; i++) {
            tok[i] = (int)(d1_rng_u64(&rng) % 66);
            km[i] = (uint8_t)(i % T >= 2 * (i / T));
            mask[i] = (uint8_t)(d1_rng_uniform(&rng) < p[i / T]);
        }
        d1_model_init(&mc, &c, 7);
        d1_model_init(&mg, &c, 7);
        rc = d1_model_set_device(&mg, D1_DEVICE_CUDA);
        CHECK(rc == D1_OK && d1_model_device(&mg) == D1_DEVICE_CUDA, "set_device: %s", d1_strerror(rc));
        CHECK(d1_model_forward(&mc, tok, B, T, km) == D1_OK && d1_model_forward(&mg, tok, B, T, km) == D1_OK, "forward");
        e = rel(mg.logits, mc.logits, (size_t)N * c.vocab_size);
        CHECK(e <= 1e-5, "tied %d: logits rel err %.2g", tied, e);
        /* the pretraining loss and every gradient */
        CHECK(d1_pretrain_loss(&mc, tok, B, T, mask, p, NULL, &lc) == D1_OK, "cpu loss");
        rc = d1_pretrain_loss(&mg, tok, B, T, mask, p, NULL, &lg);
        CHECK(rc == D1_OK, "gpu loss: %s", d1_strerror(rc));
        eg = grads_rel(&mg, &mc);
        CHECK(fabs(lg - lc) <= 1e-5 * fabs(lc), "tied %d: loss %.7f vs %.7f", tied, lg, lc);
        CHECK(eg <= 1e-4, "tied %d: worst gradient rel err %.2g", tied, eg);
        printf("  tied %d: logits rel err %.2g, loss %.7f vs %.7f, worst gradient rel err %.2g\n", tied, e, lg, lc, eg);
        /* d1_model_backward from the caller's dlogits, accumulated on top */
        {
            float *dl = rnd((size_t)N * c.vocab_size, 0.01f);
            CHECK(d1_model_forward(&mc, tok, B, T, NULL) == D1_OK && d1_model_forward(&mg, tok, B, T, NULL) == D1_OK, "fwd");
            CHECK(d1_model_backward(&mc, dl) == D1_OK && d1_model_backward(&mg, dl) == D1_OK, "backward");
            eg = grads_rel(&mg, &mc);
            CHECK(eg <= 1e-4, "tied %d: accumulated gradients rel err %.2g", tied, eg);
            free(dl);
        }
        d1_model_free(&mc);
        d1_model_free(&mg);
        free(tok); free(km); free(mask);
    }
}

/* 6 AdamW steps of the pretraining loss on both: the weights stay together */
static void test_training_steps(void) {
    d1_config c = small_config(0);
    d1_model mc, mg;
    d1_adamw oc, og;
    d1_adamw_desc ds = d1_adamw_default_desc();
    d1_rng rc_, rg_;
    int B = 4, T = 32, N = B * T, i, s, rc = D1_OK;
    int *tok = (int *)malloc(sizeof(int) * N);
    float lc = 0, lg = 0, nc = 0, ng = 0;
    double e;
    for (i = 0; i < N; i++) tok[i] = (int)(d1_rng_u64(&rng) % 60);
    d1_model_init(&mc, &c, 3);
    d1_model_init(&mg, &c, 3);
    d1_adamw_init(&oc, &mc, &ds);
    d1_adamw_init(&og, &mg, &ds);
    d1_model_set_device(&mg, D1_DEVICE_CUDA);
    d1_rng_seed(&rc_, 11);
    d1_rng_seed(&rg_, 11);
    for (s = 0; s < 6 && rc == D1_OK; s++) {
        d1_model_zero_grad(&mc);
        d1_model_zero_grad(&mg);
        d1_pretrain_loss(&mc, tok, B, T, NULL, NULL, &rc_, &lc);
        rc = d1_pretrain_loss(&mg, tok, B, T, NULL, NULL, &rg_, &lg);
        d1_adamw_step(&oc, &mc, &nc);
        if (rc == D1_OK) rc = d1_adamw_step(&og, &mg, &ng);
    }
    CHECK(rc == D1_OK, "%s", d1_strerror(rc));
    d1_model_pull(&mg);
    e = rel(mg.param_memory, mc.param_memory, mc.num_params);
    CHECK(e <= 1e-5, "weights after 6 steps rel err %.2g", e);
    CHECK(fabs(lg - lc) <= 1e-4 * lc && fabs(ng - nc) <= 1e-4 * nc, "last loss %.6f vs %.6f, norm %.6f vs %.6f", lg,
          lc, ng, nc);
    printf("  6 steps: weights rel err %.2g, loss %.6f vs %.6f\n", e, lg, lc);
    /* the optimizer's moments come home for a train state, and equal the CPU's */
    CHECK(d1__gpu_opt_home(&og, 2) == D1_OK && rel(og.m, oc.m, 2 * oc.n) <= 1e-4, "moments");
    /* moving home: everything on the host, training goes on on the CPU */
    CHECK(d1_model_set_device(&mg, D1_DEVICE_CPU) == D1_OK && d1_model_device(&mg) == D1_DEVICE_CPU, "home");
    d1_model_zero_grad(&mg);
    CHECK(d1_pretrain_loss(&mg, tok, B, T, NULL, NULL, &rg_, &lg) == D1_OK && d1_adamw_step(&og, &mg, &ng) == D1_OK &&
              og.dev == NULL,
          "a CPU step after the GPU ones");
    d1_adamw_free(&oc); d1_adamw_free(&og);
    d1_model_free(&mc); d1_model_free(&mg);
    free(tok);
}

static void test_sft(void) {
    d1_config c = small_config(1);
    d1_model mc, mg;
    int B = 3, T = 30, N = B * T, i, pl[3] = {5, 9, 12};
    int *tok = (int *)malloc(sizeof(int) * N);
    float lc, lg;
    for (i = 0; i < N; i++) tok[i] = (int)(d1_rng_u64(&rng) % 60);
    d1_model_init(&mc, &c, 5);
    d1_model_init(&mg, &c, 5);
    d1_model_set_device(&mg, D1_DEVICE_CUDA);
    {
        d1_rng r1, r2;
        d1_rng_seed(&r1, 4); d1_rng_seed(&r2, 4);
        CHECK(d1_sft_loss(&mc, tok, B, T, pl, NULL, NULL, &r1, &lc) == D1_OK, "cpu");
        CHECK(d1_sft_loss(&mg, tok, B, T, pl, NULL, NULL, &r2, &lg) == D1_OK, "gpu");
    }
    CHECK(fabs(lg - lc) <= 1e-5 * lc && grads_rel(&mg, &mc) <= 1e-4, "SFT loss %.7f vs %.7f", lg, lc);
    d1_model_free(&mc); d1_model_free(&mg);
    free(tok);
}

/* the sampler on the GPU against the generate.py reference (ref_sampler.bin) */
static void test_reference_generate(void) {
    ref_file core, rs;
    d1_model m;
    const ref_record *pr;
    int B, P, cases, bad;
    if (!ref_load(&core, D1_TEST_DATA "/ref_core.bin") || !ref_load(&rs, D1_TEST_DATA "/ref_sampler.bin")) {
        CHECK(0, "cannot read the reference dumps in %s", D1_TEST_DATA);
        return;
    }
    CHECK(ref_model_init(&m, &core, *(const int *)ref_get(&rs, "max_seq_len")->data,
                         *(const int *)ref_get(&rs, "eos_id")->data),
          "reference model");
    CHECK(d1_model_set_device(&m, D1_DEVICE_CUDA) == D1_OK, "to the GPU");
    pr = ref_get(&rs, "prompt");
    B = pr->dims[0]; P = pr->dims[1];
    cases = ref_generate_cases(&m, &rs, &bad);
    printf("  generate.py agreement on the GPU: %d cases\n", cases - bad);
    CHECK(bad == 0, "%d of %d cases differ", bad, cases);
    CHECK(cases >= 8, "only %d cases", cases);
    /* temperature > 0 and random remasking: the CPU's draws, so the CPU's tokens */
    {
        d1_model mc;
        d1_sampler_desc d;
        d1_rng r1, r2;
        int *o1 = (int *)malloc(sizeof(int) * B * (P + 16)), *o2 = (int *)malloc(sizeof(int) * B * (P + 16)), mode;
        CHECK(ref_model_init(&mc, &core, *(const int *)ref_get(&rs, "max_seq_len")->data,
                             *(const int *)ref_get(&rs, "eos_id")->data), "cpu model");
        for (mode = 0; mode < 2; mode++) {
            memset(&d, 0, sizeof d);
            d.gen_len = 16; d.block_len = 8; d.steps = 8;
            d.temperature = mode ? 0.0f : 0.8f; d.remasking = mode ? D1_REMASK_RANDOM : D1_REMASK_LOW_CONFIDENCE;
            d1_rng_seed(&r1, 9); d1_rng_seed(&r2, 9);
            CHECK(d1_sampler_generate(&mc, &d, (const int *)pr->data, B, P, NULL, &r1, o1, NULL) == D1_OK &&
                      d1_sampler_generate(&m, &d, (const int *)pr->data, B, P, NULL, &r2, o2, NULL) == D1_OK,
                  "generate");
            CHECK(!memcmp(o1, o2, sizeof(int) * B * (P + 16)) && !memcmp(&r1, &r2, sizeof r1),
                  "mode %d: GPU and CPU samples differ", mode);
        }
        d.kv_cache = D1_KV_PREFIX;
        CHECK(d1_sampler_generate(&m, &d, (const int *)pr->data, B, P, NULL, &r2, o2, NULL) == D1_ERR_UNSUPPORTED,
              "KV cache on the GPU is D1_ERR_UNSUPPORTED");
        free(o1); free(o2);
        d1_model_free(&mc);
    }
    d1_model_free(&m);
    ref_free(&core);
    ref_free(&rs);
}

/* d1_grpo_logprobs and d1_grpo_loss (clipped and wd1), then a whole d1_grpo_step */
static float reward_threes(const d1_rollout *ro, void *user) {
    const int *c = ro->completion;
    int i, k = 0, n = ro->completion_len;
    (void)user;
    for (i = 0; i < n; i++) k += c[i] == 3;
    return (float)k / (float)(n > 0 ? n : 1);
}

static void test_grpo(void) {
    d1_config c = small_config(0);
    d1_model pc, pg, rc_, rg;
    int R = 6, P = 8, T = 24, Lc = T - P, i, obj, rc;
    int *tok = (int *)malloc(sizeof(int) * R * T);
    uint8_t *in = (uint8_t *)malloc((size_t)R * T), *sc = (uint8_t *)malloc((size_t)R * Lc);
    float adv[6] = {0.5f, -0.5f, 1.2f, -1.2f, 0.1f, -0.1f}, *old = (float *)malloc(sizeof(float) * R * Lc);
    float *ref = (float *)malloc(sizeof(float) * R * Lc), *lg = (float *)malloc(sizeof(float) * R * Lc);
    d1_grpo_batch b;
    for (i = 0; i < R * T; i++) { tok[i] = (int)(d1_rng_u64(&rng) % 60); in[i] = (uint8_t)(i % T >= P || i % 5 == 0); }
    for (i = 0; i < R * Lc; i++) sc[i] = (uint8_t)(i % 4 != 0);
    d1_model_init(&pc, &c, 21); d1_model_init(&pg, &c, 21);
    d1_model_init(&rc_, &c, 22); d1_model_init(&rg, &c, 22);
    d1_model_set_device(&pg, D1_DEVICE_CUDA);
    d1_model_set_device(&rg, D1_DEVICE_CUDA);
    memset(&b, 0, sizeof b);
    b.tokens = tok; b.B = R; b.T = T; b.P = P; b.input_mask = in;
    CHECK(d1_grpo_logprobs(&rc_, &b, ref) == D1_OK && d1_grpo_logprobs(&rg, &b, lg) == D1_OK, "ref logprobs");
    CHECK(rel(lg, ref, (size_t)R * Lc) <= 1e-5, "reference log-probs rel err %.2g", rel(lg, ref, (size_t)R * Lc));
    for (i = 0; i < R * Lc; i++) old[i] = ref[i] + 0.3f * d1_rng_normal(&rng);
    b.score_mask = sc; b.adv = adv; b.denom = 50.0f; b.old_logp = old; b.ref_logp = ref;
    for (obj = 0; obj < 2; obj++) {
        float l1 = 0, l2 = 0;
        double k1 = 0, k2 = 0, c1 = 0, c2 = 0;
        int o = obj ? D1_GRPO_WD1 : D1_GRPO_CLIPPED;
        d1_model_zero_grad(&pc); d1_model_zero_grad(&pg);
        CHECK(d1_grpo_loss(&pc, &b, 0.2f, 0.04f, o, &l1, &k1, &c1) == D1_OK, "cpu loss");
        rc = d1_grpo_loss(&pg, &b, 0.2f, 0.04f, o, &l2, &k2, &c2);
        CHECK(rc == D1_OK, "gpu loss: %s", d1_strerror(rc));
        CHECK(fabs(l2 - l1) <= 1e-5 * fabs(l1) + 1e-7 && fabs(k2 - k1) <= 1e-5 * k1 + 1e-9 && c1 == c2,
              "objective %d: loss %.7g vs %.7g, kl %.7g vs %.7g, clipped %g vs %g", o, l2, l1, k2, k1, c2, c1);
        CHECK(grads_rel(&pg, &pc) <= 1e-4, "objective %d: gradients rel err %.2g", o, grads_rel(&pg, &pc));
    }
    /* a whole step: G = 6 rollouts of 2 prompts at temperature 0.9 (the CPU's
       Gumbel draws, so the same completions), rewards, mu = 2 updates */
    {
        d1_grpo_desc d = d1_grpo_default_desc(16);
        d1_adamw oc, og;
        d1_adamw_desc ad = d1_adamw_default_desc();
        d1_reward rw;
        d1_grpo_stats s1, s2;
        d1_rng r1, r2;
        int prompts[2 * 8];
        double e;
        for (i = 0; i < 16; i++) prompts[i] = 4 + i % 7;
        rw.fn = reward_threes; rw.weight = 1.0f; rw.user = NULL;
        d.rewards = &rw; d.n_rewards = 1; d.inner_steps = 2; d.sampler.block_len = 8; d.sampler.steps = 8;
        ad.lr = 1e-3f;
        d1_adamw_init(&oc, &pc, &ad); d1_adamw_init(&og, &pg, &ad);
        d1_rng_seed(&r1, 5); d1_rng_seed(&r2, 5);
        CHECK(d1_grpo_step(&pc, &rc_, &oc, &d, prompts, 2, 8, NULL, &r1, &s1) == D1_OK, "cpu step");
        rc = d1_grpo_step(&pg, &rg, &og, &d, prompts, 2, 8, NULL, &r2, &s2);
        CHECK(rc == D1_OK, "gpu step: %s", d1_strerror(rc));
        d1_model_pull(&pg);
        e = rel(pg.param_memory, pc.param_memory, pc.num_params);
        CHECK(s1.reward_mean == s2.reward_mean && s1.forward_passes == s2.forward_passes,
              "rollouts differ: reward %g vs %g", s2.reward_mean, s1.reward_mean);
        CHECK(fabs(s2.loss - s1.loss) <= 1e-4 * fabs(s1.loss) + 1e-6 && e <= 1e-4,
              "diffu-GRPO step: loss %.7g vs %.7g, weights rel err %.2g", s2.loss, s1.loss, e);
        printf("  diffu-GRPO step: reward %.4f vs %.4f, loss %.7g vs %.7g, kl %.3g vs %.3g, weights rel err %.2g\n",
               s2.reward_mean, s1.reward_mean, s2.loss, s1.loss, s2.kl, s1.kl, e);
        d1_adamw_free(&oc); d1_adamw_free(&og);
    }
    d1_model_free(&pc); d1_model_free(&pg); d1_model_free(&rc_); d1_model_free(&rg);
    free(tok); free(in); free(sc); free(old); free(ref); free(lg);
}

/* bad input on the device: errors, and nothing changes */
static void test_bad_input(void) {
    d1_config c = small_config(0);
    d1_model m;
    int tok[8] = {1, 2, 3, 4, 5, 6, 7, 99};
    float loss, *before;
    d1_model_init(&m, &c, 1);
    CHECK(d1_model_set_device(&m, 7) == D1_ERR_ARG, "unknown device");
    d1_model_set_device(&m, D1_DEVICE_CUDA);
    before = (float *)malloc(sizeof(float) * m.num_params);
    memcpy(before, m.param_memory, sizeof(float) * m.num_params);
    CHECK(d1_model_forward(&m, tok, 1, 8, NULL) == D1_ERR_TOKEN, "token out of range");
    CHECK(d1_pretrain_loss(&m, tok, 2, 4, NULL, NULL, NULL, &loss) == D1_ERR_ARG, "no mask, no rng");
    CHECK(d1_model_forward(&m, tok, 1, 100, NULL) == D1_ERR_SHAPE, "T > max_seq_len");
    CHECK(d1_lora_attach(&m, 4, 8.0f, 1) == D1_ERR_UNSUPPORTED, "LoRA on the GPU");
    {
        float *dl = (float *)calloc((size_t)7 * c.vocab_size, sizeof(float));
        tok[7] = 9;
        CHECK(d1_model_forward(&m, tok, 1, 7, NULL) == D1_OK, "forward");
        dl[3] = NAN;
        CHECK(d1_model_backward(&m, dl) == D1_ERR_NONFINITE, "NaN dlogits");
        free(dl);
    }
    { /* a NaN weight on the device is refused before any pass (d1__gpu_params_finite) */
        d1_rng r, r0;
        d1_sampler_desc sd;
        int out[16];
        float keep = m.param_memory[10];
        d1_rng_seed(&r, 5);
        r0 = r;
        m.param_memory[10] = NAN;
        d1_model_push(&m);
        CHECK(d1_pretrain_loss(&m, tok, 1, 7, NULL, NULL, &r, &loss) == D1_ERR_NONFINITE, "NaN weight: pretrain loss");
        memset(&sd, 0, sizeof sd);
        sd.gen_len = 8; sd.block_len = 8; sd.steps = 4;
        CHECK(d1_sampler_generate(&m, &sd, tok, 1, 4, NULL, &r, out, NULL) == D1_ERR_NONFINITE, "NaN weight: sampler");
        CHECK(!memcmp(&r, &r0, sizeof r), "NaN weight: the RNG advanced");
        m.param_memory[10] = keep;
        d1_model_push(&m);
    }
    d1_model_pull(&m);
    CHECK(!memcmp(before, m.param_memory, sizeof(float) * m.num_params), "weights changed");
    free(before);
    d1_model_free(&m);
}

/* the mirror: a model trained on the GPU saves, and a CPU load of it computes the GPU's logits */
static void test_mirror_checkpoint(void) {
    d1_config c = small_config(0);
    d1_model mg, mc;
    d1_adamw og;
    d1_adamw_desc ds = d1_adamw_default_desc();
    int tok[32], i;
    float loss;
    size_t cap;
    void *buf;
    char cfg[4096];
    for (i = 0; i < 32; i++) tok[i] = i % 60;
    d1_model_init(&mg, &c, 2);
    d1_model_set_device(&mg, D1_DEVICE_CUDA);
    d1_adamw_init(&og, &mg, &ds);
    {
        d1_rng r;
        d1_rng_seed(&r, 3);
        d1_model_zero_grad(&mg);
        d1_pretrain_loss(&mg, tok, 2, 16, NULL, NULL, &r, &loss);
        d1_adamw_step(&og, &mg, NULL);
    }
    cap = d1_model_save_size(&mg, D1_DTYPE_F32);
    buf = malloc(cap);
    CHECK(d1_model_save_memory(&mg, D1_DTYPE_F32, buf, cap, cfg, sizeof cfg) == D1_OK, "save");
    CHECK(d1_model_load_memory(&mc, cfg, strlen(cfg), buf, cap) == D1_OK, "load");
    CHECK(d1_model_forward(&mg, tok, 2, 16, NULL) == D1_OK && d1_model_forward(&mc, tok, 2, 16, NULL) == D1_OK, "fwd");
    CHECK(rel(mg.logits, mc.logits, (size_t)32 * c.vocab_size) <= 1e-5, "logits after save/load");
    d1_adamw_free(&og); /* freed before the model: the context outlives neither */
    d1_model_free(&mg);
    d1_model_free(&mc);
    free(buf);
}

int main(void) {
    d1_config hc = small_config(0);
    int rc;
    TH_BANNER();
    d1_rng_seed(&rng, 2026);
    if (d1_cuda_create(&cu, 0) != 0) {
        printf("no CUDA device: the GPU parity tests are skipped\n");
        printf("0 passed, 0 failed\n");
        return 0;
    }
    printf("device: %s\n", d1_cuda_device_name(cu));
    rc = d1_model_init(&cpu_holder, &hc, 1);
    if (rc != D1_OK || d1__ensure(&cpu_holder, 1, 64) != D1_OK) return 1;
    RUN(test_matmul);
    RUN(test_embedding);
    RUN(test_rmsnorm);
    RUN(test_rope);
    RUN(test_attention);
    RUN(test_swiglu_residual);
    RUN(test_losses);
    RUN(test_adamw_norm);
    RUN(test_sampler_kernels);
    RUN(test_model_forward_backward);
    RUN(test_training_steps);
    RUN(test_sft);
    RUN(test_reference_generate);
    RUN(test_grpo);
    RUN(test_bad_input);
    RUN(test_mirror_checkpoint);
    d1_model_free(&cpu_holder);
    d1_cuda_destroy(cu);
    return th_summary();
}
