/* Finite-difference checks of every backward pass. Each layer has a double-
   precision reference forward written here from the formulas; central
   differences of sum(r ⊙ f(x)) in double give the true gradient, which the
   float backward of d1.h must match to a relative error (max |err| / max |g|)
   of 1e-4. The whole model's pretraining loss is checked the same way. */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "harness.h"

#define TOL 1e-4
static d1_rng rng;
static d1__pool pool1;
static d1__ctx cx;

static void rnd(float *f, double *d, size_t n, float scale) {
    size_t i;
    for (i = 0; i < n; i++) {
        f[i] = scale * (2.0f * d1_rng_uniform(&rng) - 1.0f);
        if (d) d[i] = f[i];
    }
}
static double dot_d(const double *a, const double *b, size_t n) {
    double s = 0;
    size_t i;
    for (i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- double-precision reference layers ------------------------------------- */
static void ref_matmul(double *out, const double *inp, const double *w, int N, int I, int O) {
    int n, o, i;
    for (n = 0; n < N; n++)
        for (o = 0; o < O; o++) {
            double s = 0;
            for (i = 0; i < I; i++) s += inp[n * I + i] * w[o * I + i];
            out[n * O + o] = s;
        }
}
static void ref_rmsnorm(double *out, const double *x, const double *w, int N, int C, double eps) {
    int n, c;
    for (n = 0; n < N; n++) {
        double ss = 0;
        for (c = 0; c < C; c++) ss += x[n * C + c] * x[n * C + c];
        ss = 1.0 / sqrt(ss / C + eps);
        for (c = 0; c < C; c++) out[n * C + c] = x[n * C + c] * ss * w[c];
    }
}
static void ref_rope(double *x, int ld, int N, int T, int nh, int D, double theta) {
    int n, h, i, half = D / 2;
    for (n = 0; n < N; n++)
        for (h = 0; h < nh; h++)
            for (i = 0; i < half; i++) {
                double ang = (n % T) * pow(theta, -2.0 * i / D), *a = x + n * ld + h * D;
                double x1 = a[i], x2 = a[i + half];
                a[i] = x1 * cos(ang) - x2 * sin(ang);
                a[i + half] = x2 * cos(ang) + x1 * sin(ang);
            }
}
static void ref_attention(double *y, const double *qkv, const uint8_t *km, int B, int T, int H, int KV, int D) {
    int C = H * D, QW = (H + 2 * KV) * D, b, h, i, j, d;
    double *s = (double *)malloc((size_t)T * sizeof(double));
    for (b = 0; b < B; b++)
        for (h = 0; h < H; h++) {
            int g = h / (H / KV);
            for (i = 0; i < T; i++) {
                double mx = -1e300, sum = 0;
                for (j = 0; j < T; j++) {
                    double dt = 0;
                    for (d = 0; d < D; d++) dt += qkv[(b * T + i) * QW + h * D + d] * qkv[(b * T + j) * QW + C + g * D + d];
                    s[j] = (km && !km[b * T + j]) ? -INFINITY : dt / sqrt((double)D);
                    if (s[j] > mx) mx = s[j];
                }
                for (j = 0; j < T; j++) { s[j] = exp(s[j] - mx); sum += s[j]; }
                for (d = 0; d < D; d++) {
                    double acc = 0;
                    for (j = 0; j < T; j++) acc += s[j] / sum * qkv[(b * T + j) * QW + C + KV * D + g * D + d];
                    y[(b * T + i) * C + h * D + d] = acc;
                }
            }
        }
    free(s);
}
static void ref_swiglu(double *h, const double *gu, int N, int F) {
    int n, f;
    for (n = 0; n < N; n++)
        for (f = 0; f < F; f++) {
            double g = gu[n * 2 * F + f];
            h[n * F + f] = g / (1.0 + exp(-g)) * gu[n * 2 * F + F + f];
        }
}
static double ref_ce(const double *logits, const int *y, const double *w, int N, int V) {
    double loss = 0;
    int n, v;
    for (n = 0; n < N; n++) {
        double mx = -1e300, s = 0;
        if (w[n] == 0) continue;
        for (v = 0; v < V; v++) if (logits[n * V + v] > mx) mx = logits[n * V + v];
        for (v = 0; v < V; v++) s += exp(logits[n * V + v] - mx);
        loss += w[n] * (mx + log(s) - logits[n * V + y[n]]);
    }
    return loss;
}

/* ---- the finite-difference driver ------------------------------------------- */
typedef double (*objective)(void *ctx);

/* Central differences of f with respect to x[0..n), compared with g (float). */
static double fd_err(objective f, void *ctx, double *x, size_t n, const float *g) {
    double h = 1e-5, worst = 0, scale = 1e-12;
    size_t i;
    double *num = (double *)malloc(n * sizeof(double));
    for (i = 0; i < n; i++) {
        double keep = x[i], fp, fm;
        x[i] = keep + h; fp = f(ctx);
        x[i] = keep - h; fm = f(ctx);
        x[i] = keep;
        num[i] = (fp - fm) / (2 * h);
        if (fabs(num[i]) > scale) scale = fabs(num[i]);
    }
    for (i = 0; i < n; i++) {
        double e = fabs(num[i] - g[i]);
        if (!(e <= worst)) worst = e;
    }
    free(num);
    return worst / scale;
}

/* ---- layers ---------------------------------------------------------------- */
enum { MN = 5, MI = 7, MO = 3 };
typedef struct { double x[MN * MI], w[MO * MI], r[MN * MO]; } mm_ctx;
static double mm_obj(void *p) {
    mm_ctx *c = (mm_ctx *)p;
    double out[MN * MO];
    ref_matmul(out, c->x, c->w, MN, MI, MO);
    return dot_d(out, c->r, MN * MO);
}
static void test_matmul_backward(void) {
    mm_ctx c;
    float x[MN * MI], w[MO * MI], r[MN * MO], dx[MN * MI], dw[MO * MI] = {0}, out[MN * MO];
    double e1, e2, ref[MN * MO];
    rnd(x, c.x, MN * MI, 1); rnd(w, c.w, MO * MI, 1); rnd(r, c.r, MN * MO, 1);
    d1__matmul_forward(&cx, out, x, w, MN, MI, MO);
    ref_matmul(ref, c.x, c.w, MN, MI, MO);
    CHECK(th_rel_err(out, ref, MN * MO, 1e-12) < 1e-6, "forward");
    d1__matmul_backward(&cx, dx, dw, r, x, w, MN, MI, MO);
    e1 = fd_err(mm_obj, &c, c.x, MN * MI, dx);
    e2 = fd_err(mm_obj, &c, c.w, MO * MI, dw);
    CHECK(e1 < TOL && e2 < TOL, "dinp %.2g dw %.2g", e1, e2);
}

enum { RN = 4, RC = 9 };
typedef struct { double x[RN * RC], w[RC], r[RN * RC]; } rms_ctx;
static double rms_obj(void *p) {
    rms_ctx *c = (rms_ctx *)p;
    double out[RN * RC];
    ref_rmsnorm(out, c->x, c->w, RN, RC, 1e-5);
    return dot_d(out, c->r, RN * RC);
}
static void test_rmsnorm_backward(void) {
    rms_ctx c;
    float x[RN * RC], w[RC], r[RN * RC], out[RN * RC], rstd[RN], dx[RN * RC], dw[RC] = {0};
    double ref[RN * RC], e1, e2;
    rnd(x, c.x, RN * RC, 2); rnd(w, c.w, RC, 1); rnd(r, c.r, RN * RC, 1);
    d1__rmsnorm_forward(out, rstd, x, w, RN, RC, 1e-5f);
    ref_rmsnorm(ref, c.x, c.w, RN, RC, 1e-5);
    CHECK(th_rel_err(out, ref, RN * RC, 1e-12) < 1e-6, "forward");
    d1__rmsnorm_backward(dx, dw, r, x, w, rstd, RN, RC);
    e1 = fd_err(rms_obj, &c, c.x, RN * RC, dx);
    e2 = fd_err(rms_obj, &c, c.w, RC, dw);
    CHECK(e1 < TOL && e2 < TOL, "dx %.2g dw %.2g", e1, e2);
}

enum { PB = 2, PT = 5, PH = 3, PD = 6, PLD = PH * PD + 2 };
typedef struct { double x[PB * PT * PLD], r[PB * PT * PLD]; } rope_ctx;
static double rope_obj(void *p) {
    rope_ctx *c = (rope_ctx *)p;
    double y[PB * PT * PLD];
    memcpy(y, c->x, sizeof y);
    ref_rope(y, PLD, PB * PT, PT, PH, PD, 100.0);
    return dot_d(y, c->r, PB * PT * PLD);
}
static void test_rope_backward(void) {
    rope_ctx c;
    float x[PB * PT * PLD], r[PB * PT * PLD], cs[PT * PD / 2], sn[PT * PD / 2];
    double ref[PB * PT * PLD], e;
    int t, i;
    for (t = 0; t < PT; t++)
        for (i = 0; i < PD / 2; i++) {
            double ang = t * pow(100.0, -2.0 * i / PD);
            cs[t * PD / 2 + i] = (float)cos(ang);
            sn[t * PD / 2 + i] = (float)sin(ang);
        }
    rnd(x, c.x, PB * PT * PLD, 1); rnd(r, c.r, PB * PT * PLD, 1);
    memcpy(ref, c.x, sizeof ref);
    ref_rope(ref, PLD, PB * PT, PT, PH, PD, 100.0);
    d1__rope(x, PLD, PB * PT, PT, 0, PH, PD, cs, sn, 1.0f);
    CHECK(th_rel_err(x, ref, PB * PT * PLD, 1e-12) < 1e-6, "forward");
    d1__rope(r, PLD, PB * PT, PT, 0, PH, PD, cs, sn, -1.0f); /* backward of sum(r ⊙ rope(x)) is rope^-1(r) */
    e = fd_err(rope_obj, &c, c.x, PB * PT * PLD, r);
    CHECK(e < TOL, "dx %.2g", e);
}

enum { AB = 2, AT = 5, AH = 4, AKV = 2, AD = 4, AC = AH * AD, AQW = (AH + 2 * AKV) * AD };
typedef struct { double qkv[AB * AT * AQW], r[AB * AT * AC]; const uint8_t *km; } att_ctx;
static double att_obj(void *p) {
    att_ctx *c = (att_ctx *)p;
    double y[AB * AT * AC];
    ref_attention(y, c->qkv, c->km, AB, AT, AH, AKV, AD);
    return dot_d(y, c->r, AB * AT * AC);
}
static void test_attention_backward(void) {
    static const uint8_t km[AB * AT] = {1, 1, 1, 1, 1, 1, 1, 0, 1, 0};
    int masked;
    for (masked = 0; masked < 2; masked++) {
        att_ctx c;
        float qkv[AB * AT * AQW], r[AB * AT * AC], y[AB * AT * AC], att[AB * AH * AT * AT], dqkv[AB * AT * AQW];
        double ref[AB * AT * AC], e;
        d1__attn_args a;
        rnd(qkv, c.qkv, AB * AT * AQW, 1.5f); rnd(r, c.r, AB * AT * AC, 1);
        c.km = masked ? km : NULL;
        memset(&a, 0, sizeof a);
        a.q = qkv; a.k = qkv + AC; a.v = qkv + AC + AKV * AD; a.ldq = a.ldk = AQW;
        a.att_w = att; a.y = y; a.key_mask = c.km;
        a.B = AB; a.Tq = a.Tk = AT; a.H = AH; a.KV = AKV; a.D = AD; a.cx = &cx;
        d1__attention_forward_task(&a, 0, 1);
        ref_attention(ref, c.qkv, c.km, AB, AT, AH, AKV, AD);
        CHECK(th_rel_err(y, ref, AB * AT * AC, 1e-12) < 1e-6, "forward (key mask %d)", masked);
        a.att = att; a.dy = r; a.dqkv = dqkv;
        d1__attention_backward_task(&a, 0, 1);
        e = fd_err(att_obj, &c, c.qkv, AB * AT * AQW, dqkv);
        CHECK(e < TOL, "dqkv %.2g (key mask %d)", e, masked);
    }
}

enum { SN = 3, SF = 7 };
typedef struct { double gu[SN * 2 * SF], r[SN * SF]; } sw_ctx;
static double sw_obj(void *p) {
    sw_ctx *c = (sw_ctx *)p;
    double h[SN * SF];
    ref_swiglu(h, c->gu, SN, SF);
    return dot_d(h, c->r, SN * SF);
}
static void test_swiglu_backward(void) {
    sw_ctx c;
    float gu[SN * 2 * SF], r[SN * SF], h[SN * SF], dgu[SN * 2 * SF];
    double ref[SN * SF], e;
    d1__swiglu_args a;
    rnd(gu, c.gu, SN * 2 * SF, 4); rnd(r, c.r, SN * SF, 1);
    a.out = h; a.gu = gu; a.dh = NULL; a.N = SN; a.F = SF; a.cx = &cx;
    d1__swiglu_forward_task(&a, 0, 1);
    ref_swiglu(ref, c.gu, SN, SF);
    CHECK(th_rel_err(h, ref, SN * SF, 1e-12) < 1e-6, "forward");
    a.out = dgu; a.dh = r;
    d1__swiglu_backward_task(&a, 0, 1);
    e = fd_err(sw_obj, &c, c.gu, SN * 2 * SF, dgu);
    CHECK(e < TOL, "dgu %.2g", e);
}

enum { CN = 4, CV = 6 };
typedef struct { double lg[CN * CV], w[CN]; int y[CN]; } ce_ctx;
static double ce_obj(void *p) {
    ce_ctx *c = (ce_ctx *)p;
    return ref_ce(c->lg, c->y, c->w, CN, CV);
}
static void test_cross_entropy_backward(void) {
    ce_ctx c;
    float lg[CN * CV], w[CN] = {0.5f, 0.0f, 2.0f, 1.0f}, d[CN * CV];
    double loss, e;
    int n;
    rnd(lg, c.lg, CN * CV, 3);
    for (n = 0; n < CN; n++) { c.w[n] = w[n]; c.y[n] = (n * 5) % CV; }
    loss = d1__cross_entropy(d, lg, c.y, w, CN, CV);
    CHECK(fabs(loss - ref_ce(c.lg, c.y, c.w, CN, CV)) < 1e-6, "loss %g", loss);
    e = fd_err(ce_obj, &c, c.lg, CN * CV, d);
    CHECK(e < TOL, "dlogits %.2g", e);
    for (n = 0; n < CV; n++) CHECK(d[CV + n] == 0.0f, "a row of weight 0 has no gradient");
}

static void test_embedding_backward(void) {
    int tok[5] = {2, 0, 2, 3, 2}, n, c;
    float wte[4 * 3], out[5 * 3], dout[5 * 3], dwte[4 * 3] = {0};
    rnd(wte, NULL, 12, 1); rnd(dout, NULL, 15, 1);
    d1__embed_forward(out, tok, wte, 5, 3);
    for (n = 0; n < 5; n++)
        for (c = 0; c < 3; c++) CHECK(out[n * 3 + c] == wte[tok[n] * 3 + c], "gather");
    d1__embed_backward(dwte, dout, tok, 5, 3);
    for (c = 0; c < 3; c++) {
        CHECK(fabsf(dwte[2 * 3 + c] - (dout[c] + dout[2 * 3 + c] + dout[4 * 3 + c])) < 1e-6f, "scatter-add");
        CHECK(dwte[1 * 3 + c] == 0.0f, "an unused row has no gradient");
    }
}

/* ---- the whole model, in double --------------------------------------------- */
typedef struct {
    const d1_model *m;
    double *w;            /* all parameters, d1.h's layout */
    const int *noisy, *x0;
    double wts[64];
    int B, T;
} model_ctx;

static double model_obj(void *p) {
    model_ctx *mc = (model_ctx *)p;
    const d1_config *c = &mc->m->config;
    const d1_params *fp = &mc->m->params;
    int B = mc->B, T = mc->T, N = B * T, C = c->dim, F = c->ffn_dim, V = c->vocab_size, L = c->n_layers;
    int H = c->n_heads, KV = c->n_kv_heads, D = C / H, QW = (H + 2 * KV) * D, l, n, i;
    /* pointers to each tensor in the double copy, at the same offsets as in d1.h */
#define OFF(t) (mc->w + (fp->t - mc->m->param_memory))
    double *x = (double *)malloc(sizeof(double) * N * C), *nn = (double *)malloc(sizeof(double) * N * C);
    double *qkv = (double *)malloc(sizeof(double) * N * QW), *y = (double *)malloc(sizeof(double) * N * C);
    double *t = (double *)malloc(sizeof(double) * N * C), *gu = (double *)malloc(sizeof(double) * N * 2 * F);
    double *h = (double *)malloc(sizeof(double) * N * F), *lg = (double *)malloc(sizeof(double) * N * V), loss;
    for (n = 0; n < N; n++)
        for (i = 0; i < C; i++) x[n * C + i] = OFF(wte)[mc->noisy[n] * C + i];
    for (l = 0; l < L; l++) {
        ref_rmsnorm(nn, x, OFF(attn_norm) + l * C, N, C, c->norm_eps);
        ref_matmul(qkv, nn, OFF(qkv) + (size_t)l * QW * C, N, C, QW);
        ref_rope(qkv, QW, N, T, H + KV, D, c->rope_theta);
        ref_attention(y, qkv, NULL, B, T, H, KV, D);
        ref_matmul(t, y, OFF(attn_out) + (size_t)l * C * C, N, C, C);
        for (i = 0; i < N * C; i++) x[i] += t[i];
        ref_rmsnorm(nn, x, OFF(ff_norm) + l * C, N, C, c->norm_eps);
        ref_matmul(gu, nn, OFF(gate_up) + (size_t)l * 2 * F * C, N, C, 2 * F);
        ref_swiglu(h, gu, N, F);
        ref_matmul(t, h, OFF(ff_out) + (size_t)l * C * F, N, F, C);
        for (i = 0; i < N * C; i++) x[i] += t[i];
    }
    ref_rmsnorm(nn, x, OFF(ln_f), N, C, c->norm_eps);
    ref_matmul(lg, nn, OFF(head), N, C, V);
    loss = ref_ce(lg, mc->x0, mc->wts, N, V);
#undef OFF
    free(x); free(nn); free(qkv); free(y); free(t); free(gu); free(h); free(lg);
    return loss;
}

static void model_case(int tied) {
    d1_config c;
    d1_model m;
    model_ctx mc;
    int tok[2 * 6], noisy[2 * 6], i, nt;
    uint8_t mask[2 * 6];
    float p[2] = {0.4f, 0.8f}, loss;
    memset(&c, 0, sizeof c);
    c.vocab_size = 11; c.dim = 16; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.ffn_dim = 12;
    c.max_seq_len = 8; c.rope_theta = 50.0f; c.mask_id = 10; c.eos_id = 9; c.pad_id = 9; c.tied_embeddings = tied;
    CHECK(d1_model_init(&m, &c, 77) == D1_OK, "init");
    for (i = 0; i < (int)m.num_params; i++) m.param_memory[i] *= 10.0f; /* larger weights: larger gradients */
    for (i = 0; i < 12; i++) {
        tok[i] = (i * 7 + 3) % 10;
        mask[i] = (uint8_t)(i % 3 != 1);
        noisy[i] = mask[i] ? c.mask_id : tok[i];
    }
    d1_model_zero_grad(&m);
    CHECK(d1_pretrain_loss(&m, tok, 2, 6, mask, p, NULL, &loss) == D1_OK, "loss");
    mc.m = &m; mc.B = 2; mc.T = 6; mc.noisy = noisy; mc.x0 = tok;
    mc.w = (double *)malloc(m.num_params * sizeof(double));
    for (i = 0; i < (int)m.num_params; i++) mc.w[i] = m.param_memory[i];
    for (i = 0; i < 12; i++) mc.wts[i] = mask[i] ? 1.0 / ((double)p[i / 6] * 12.0) : 0.0;
    CHECK(fabs(loss - model_obj(&mc)) < 1e-5 * fabs(loss), "loss %.7f vs double %.7f", loss, model_obj(&mc));
    nt = d1_model_num_tensors(&m);
    for (i = 0; i < nt; i++) {
        d1_tensor t;
        double e;
        d1_model_tensor(&m, i, &t);
        e = fd_err(model_obj, &mc, mc.w + t.offset, t.size, m.grad_memory + t.offset);
        CHECK(e < TOL, "tied %d: %s rel err %.2g", tied, t.name, e);
    }
    free(mc.w);
    d1_model_free(&m);
}
static void test_model_backward_untied(void) { model_case(0); }
static void test_model_backward_tied(void) { model_case(1); }

int main(void) {
    TH_BANNER();
    d1_rng_seed(&rng, 3);
    pool1.n = 1;
    cx.pool = &pool1;
    cx.ws[0] = d1__alloc_floats(D1__GEMM_WS + 4096);
    RUN(test_matmul_backward);
    RUN(test_rmsnorm_backward);
    RUN(test_rope_backward);
    RUN(test_attention_backward);
    RUN(test_swiglu_backward);
    RUN(test_cross_entropy_backward);
    RUN(test_embedding_backward);
    RUN(test_model_backward_untied);
    RUN(test_model_backward_tied);
    d1__free(cx.ws[0]);
    return th_summary();
}
