/* The d1 recipe: masked SFT and diffu-GRPO against the PyTorch reference dump
   (tools/ref_recipe_dump.py), the invariants of the GRPO loss, learning on a
   bandit task (diffu-GRPO and wd1, 3 seeds each), and bad input. */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "harness.h"
#include "refdata.h"

#ifndef D1_TEST_DATA
#define D1_TEST_DATA "tests/data"
#endif

static ref_file core, rec;

static int load_model(d1_model *m) {
    return ref_model_init(m, &core, 0, 46) && d1_model_zero_grad(m) == D1_OK;
}

/* every gradient against "<prefix>.grad.<name>" */
static double check_grads(const d1_model *m, const char *prefix) {
    int i, nt = d1_model_num_tensors(m);
    double worst = 0;
    for (i = 0; i < nt; i++) {
        d1_tensor t;
        char name[128];
        const ref_record *r;
        double e;
        d1_model_tensor(m, i, &t);
        snprintf(name, sizeof name, "%s.grad.%s", prefix, t.name);
        r = ref_get(&rec, name);
        CHECK(r && r->n == t.size, "%s present", name);
        if (!r) continue;
        e = ref_rel_err(m->grad_memory + t.offset, (const float *)r->data, t.size);
        CHECK(e <= 1e-3, "%s rel err %.3g", name, e);
        if (e > worst) worst = e;
    }
    return worst;
}

static void test_reference_sft(void) {
    d1_model m;
    const ref_record *tk = ref_get(&rec, "sft.tokens");
    int B = tk->dims[0], T = tk->dims[1], i, rc;
    uint8_t mask[64];
    float loss, ref_loss = *(const float *)ref_get(&rec, "sft.loss")->data;
    double worst;
    CHECK(load_model(&m), "model");
    for (i = 0; i < B * T; i++) mask[i] = (uint8_t)((const int *)ref_get(&rec, "sft.mask")->data)[i];
    rc = d1_sft_loss(&m, (const int *)tk->data, B, T, (const int *)ref_get(&rec, "sft.prompt_lens")->data, mask,
                     (const float *)ref_get(&rec, "sft.p")->data, NULL, &loss);
    CHECK(rc == D1_OK, "%s", d1_strerror(rc));
    CHECK(fabs(loss - ref_loss) <= 1e-4 * fabs(ref_loss), "SFT loss %.7f vs %.7f", loss, ref_loss);
    worst = check_grads(&m, "sft");
    printf("  SFT: loss %.7f vs %.7f, worst gradient rel err %.2g\n", loss, ref_loss, worst);
    d1_model_free(&m);
}

typedef struct grpo_case {
    d1_grpo_batch b;
    uint8_t input[64], score[64];
    float adv[4];
} grpo_case;

static void grpo_case_load(grpo_case *g) {
    const ref_record *tk = ref_get(&rec, "grpo.tokens");
    const int *pm = (const int *)ref_get(&rec, "grpo.prompt_mask")->data;
    const int *cm = (const int *)ref_get(&rec, "grpo.completion_mask")->data;
    int B = tk->dims[0], T = tk->dims[1], P = *(const int *)ref_get(&rec, "grpo.P")->data, r, i;
    memset(g, 0, sizeof *g);
    for (r = 0; r < B; r++)
        for (i = 0; i < T; i++) g->input[r * T + i] = (uint8_t)(i < P ? pm[r * P + i] : 1);
    for (i = 0; i < B * (T - P); i++) {
        g->score[i] = (uint8_t)cm[i];
        g->b.denom += (float)cm[i];
    }
    memcpy(g->adv, ref_get(&rec, "grpo.adv")->data, sizeof g->adv);
    g->b.tokens = (const int *)tk->data; g->b.B = B; g->b.T = T; g->b.P = P;
    g->b.input_mask = g->input; g->b.score_mask = g->score; g->b.adv = g->adv;
    g->b.old_logp = (const float *)ref_get(&rec, "grpo.old")->data;
    g->b.ref_logp = (const float *)ref_get(&rec, "grpo.ref")->data;
}

static void test_reference_grpo(void) {
    d1_model m;
    grpo_case g;
    const float *eb = (const float *)ref_get(&rec, "grpo.eps_beta")->data;
    float logp[64], loss, ref_loss = *(const float *)ref_get(&rec, "grpo.loss")->data;
    double kl = 0, clip = 0, e, worst;
    const ref_record *lr = ref_get(&rec, "grpo.logp");
    CHECK(load_model(&m), "model");
    grpo_case_load(&g);
    CHECK(d1_grpo_logprobs(&m, &g.b, logp) == D1_OK, "logprobs");
    e = ref_rel_err(logp, (const float *)lr->data, lr->n);
    CHECK(e <= 1e-4, "per-token log-probs rel err %.3g", e);
    CHECK(d1_grpo_loss(&m, &g.b, eb[0], eb[1], D1_GRPO_CLIPPED, &loss, &kl, &clip) == D1_OK, "loss");
    CHECK(fabs(loss - ref_loss) <= 1e-4 * fabs(ref_loss), "GRPO loss %.7f vs %.7f", loss, ref_loss);
    CHECK(fabs(clip / g.b.denom - *(const float *)ref_get(&rec, "grpo.clip_frac")->data) < 1e-6, "clip fraction %g",
          clip / g.b.denom);
    CHECK(fabs(kl / g.b.denom - *(const float *)ref_get(&rec, "grpo.kl")->data) < 1e-5, "KL %g", kl / g.b.denom);
    worst = check_grads(&m, "grpo");
    printf("  diffu-GRPO: logp rel err %.2g, loss %.7f vs %.7f, clip %.4f, worst gradient rel err %.2g\n", e, loss,
           ref_loss, clip / g.b.denom, worst);
    d1_model_free(&m);
}

/* The clipped objective with the k1 and k2 KL estimators, against the dump
   (tools/ref_recipe_dump.py: the same inputs, its own finite-difference check). */
static void test_reference_grpo_kl(void) {
    static const char *const kinds[2] = {"k1", "k2"};
    static const int codes[2] = {D1_KL_K1, D1_KL_K2};
    const float *eb = (const float *)ref_get(&rec, "grpo.eps_beta")->data;
    int k;
    for (k = 0; k < 2; k++) {
        d1_model m;
        grpo_case g;
        char name[64];
        const ref_record *rl, *rk;
        float loss;
        double kl = 0, clip = 0, worst;
        snprintf(name, sizeof name, "grpo_%s.loss", kinds[k]);
        rl = ref_get(&rec, name);
        snprintf(name, sizeof name, "grpo_%s.kl", kinds[k]);
        rk = ref_get(&rec, name);
        CHECK(rl && rk, "grpo_%s records in the dump", kinds[k]);
        if (!rl || !rk) return;
        CHECK(load_model(&m), "model");
        grpo_case_load(&g);
        g.b.kl = codes[k];
        CHECK(d1_grpo_loss(&m, &g.b, eb[0], eb[1], D1_GRPO_CLIPPED, &loss, &kl, &clip) == D1_OK, "loss %s", kinds[k]);
        CHECK(fabs(loss - *(const float *)rl->data) <= 1e-4 * fabs(*(const float *)rl->data), "%s loss %.7f vs %.7f",
              kinds[k], loss, *(const float *)rl->data);
        CHECK(fabs(kl / g.b.denom - *(const float *)rk->data) < 1e-5, "%s KL %g vs %g", kinds[k], kl / g.b.denom,
              *(const float *)rk->data);
        snprintf(name, sizeof name, "grpo_%s", kinds[k]);
        worst = check_grads(&m, name);
        printf("  diffu-GRPO, KL %s: loss %.7f vs %.7f, KL %.6f, worst gradient rel err %.2g\n", kinds[k], loss,
               *(const float *)rl->data, kl / g.b.denom, worst);
        d1_model_free(&m);
    }
}

/* The clipped objective with dual-clip against the dump (tools/ref_recipe_dump.py,
   part 7: part 2's inputs, c 2; one token with A < 0 has rho = e > c, so its
   gradient drops out, and one has rho between 1 + eps and c, so it keeps
   the ratio branch). The cap changes the loss; a c no ratio reaches
   changes nothing; a c <= 1, or one with another objective, is refused. */
static void test_reference_grpo_dual(void) {
    const float *eb = (const float *)ref_get(&rec, "grpo.eps_beta")->data;
    const ref_record *rc_ = ref_get(&rec, "dual.c"), *rl = ref_get(&rec, "grpo_dual.loss");
    d1_model m;
    grpo_case g;
    float loss, want, base;
    double clip = 0, clip0 = 0, worst;
    CHECK(rc_ && rl, "grpo_dual records in the dump");
    if (!rc_ || !rl) return;
    want = *(const float *)rl->data;
    CHECK(load_model(&m), "model");
    grpo_case_load(&g);
    g.b.dual_clip = *(const float *)rc_->data;
    CHECK(d1_grpo_loss(&m, &g.b, eb[0], eb[1], D1_GRPO_CLIPPED, &loss, NULL, &clip) == D1_OK, "loss");
    CHECK(fabs(loss - want) <= 1e-4 * fabs(want), "dual-clip loss %.7f vs %.7f", loss, want);
    CHECK(fabs(clip / g.b.denom - *(const float *)ref_get(&rec, "grpo_dual.clip_frac")->data) < 1e-6,
          "clip fraction %g", clip / g.b.denom);
    worst = check_grads(&m, "grpo_dual");
    printf("  diffu-GRPO, dual-clip c %g: loss %.7f vs %.7f, clip %.4f, worst gradient rel err %.2g\n",
           (double)g.b.dual_clip, loss, want, clip / g.b.denom, worst);
    g.b.dual_clip = 1e6f; /* no ratio reaches it: the plain clipped loss */
    CHECK(d1_grpo_loss(&m, &g.b, eb[0], eb[1], D1_GRPO_CLIPPED, &base, NULL, &clip0) == D1_OK, "loss, c 1e6");
    CHECK(fabs(base - *(const float *)ref_get(&rec, "grpo.loss")->data) <= 1e-4 * fabs(base) && base != loss,
          "c 1e6: %.7f, the plain clipped loss", base);
    g.b.dual_clip = 1.0f;
    CHECK(d1_grpo_loss(&m, &g.b, eb[0], eb[1], D1_GRPO_CLIPPED, &base, NULL, NULL) == D1_ERR_ARG, "c 1 refused");
    g.b.dual_clip = 3.0f;
    CHECK(d1_grpo_loss(&m, &g.b, eb[0], eb[1], D1_GRPO_WD1, &base, NULL, NULL) == D1_ERR_ARG, "c with wd1 refused");
    d1_model_free(&m);
}

/* ESPO's sequence-level objective against the dump (tools/ref_recipe_dump.py,
   part 4): the batch holds, per Monte Carlo draw, the pass-1 copies of the 4
   sequences (the dump's masks) and their complements; each scored token
   weighs (Lc+1)/(2 MC x) in pass 1 and (Lc+1)/(2 MC (Lc-x)) in pass 2, x the
   row's masked count. Checked: d1_grpo_logprobs + d1_grpo_elbo against the
   ELBOs, d1_grpo_loss (k2, clipped ratio per sequence) against loss, KL,
   clip share and every gradient; the on-policy case (old = NULL); and
   dual-clip (part 7: its own old, one A < 0 sequence's ratio past c). */
static void test_reference_espo(void) {
    const ref_record *tk = ref_get(&rec, "grpo.tokens"), *mk = ref_get(&rec, "espo.mask");
    const float *eb = (const float *)ref_get(&rec, "espo.eps_beta")->data;
    const float *elbo_ref = (const float *)ref_get(&rec, "espo.elbo")->data;
    int B, T, P, Lc, MC, d, pass, r, i, on;
    int tokens[16 * 11];
    uint8_t input[16 * 11], score[16 * 6];
    float wts[16 * 6], logp[16 * 6], elbo[4], loss;
    d1_grpo_batch b;
    CHECK(tk && mk, "espo records in the dump");
    if (!tk || !mk) return;
    B = tk->dims[0]; T = tk->dims[1]; P = *(const int *)ref_get(&rec, "grpo.P")->data; Lc = T - P; MC = mk->dims[0];
    CHECK(B == 4 && T == 11 && MC == 2, "shapes");
    for (d = 0; d < MC; d++)
        for (pass = 0; pass < 2; pass++)
            for (r = 0; r < B; r++) {
                int row = (d * 2 + pass) * B + r, x = 0;
                const int *m1 = (const int *)mk->data + ((size_t)d * B + r) * Lc;
                for (i = 0; i < Lc; i++) x += m1[i];
                for (i = 0; i < T; i++) {
                    tokens[row * T + i] = ((const int *)tk->data)[r * T + i];
                    input[row * T + i] = (uint8_t)(i >= P && (pass == 0 ? m1[i - P] : !m1[i - P]));
                }
                for (i = 0; i < Lc; i++) {
                    score[row * Lc + i] = input[row * T + P + i];
                    wts[row * Lc + i] =
                        !score[row * Lc + i] ? 0.0f
                                             : (float)((Lc + 1.0) / (2.0 * MC * (pass == 0 ? x : Lc - x)));
                }
            }
    memset(&b, 0, sizeof b);
    b.tokens = tokens; b.B = 2 * MC * B; b.T = T; b.P = P;
    b.input_mask = input; b.score_mask = score; b.elbo_w = wts; b.n_seq = B; b.denom = (float)B;
    b.adv = (const float *)ref_get(&rec, "espo.adv")->data;
    b.ref_logp = (const float *)ref_get(&rec, "espo.ref")->data;
    b.kl = D1_KL_K2;
    for (on = 0; on < 3; on++) { /* 0: off-policy, 1: on-policy, 2: off-policy with dual-clip */
        d1_model m;
        const char *prefix = on == 2 ? "espo_dual" : on ? "espo_onpolicy" : "espo";
        char name[64];
        double kl = 0, clip = 0, worst, e = 0;
        float want;
        snprintf(name, sizeof name, "%s.loss", prefix);
        want = *(const float *)ref_get(&rec, name)->data;
        CHECK(load_model(&m), "model");
        CHECK(d1_grpo_logprobs(&m, &b, logp) == D1_OK && d1_grpo_elbo(&b, logp, elbo) == D1_OK, "ELBO");
        for (r = 0; r < B; r++) e = D1__MAX(e, fabs(elbo[r] - elbo_ref[r]) / fabs(elbo_ref[r]));
        CHECK(e <= 1e-5, "ELBO rel err %.3g", e);
        b.old_logp = on == 1 ? NULL : (const float *)ref_get(&rec, on ? "espo_dual.old" : "espo.old")->data;
        b.dual_clip = on == 2 ? *(const float *)ref_get(&rec, "dual.c")->data : 0.0f;
        CHECK(d1_grpo_loss(&m, &b, eb[0], eb[1], D1_GRPO_CLIPPED, &loss, &kl, &clip) == D1_OK, "%s loss", prefix);
        CHECK(fabs(loss - want) <= 1e-4 * fabs(want) + 1e-6, "%s loss %.7f vs %.7f", prefix, loss, want);
        if (on != 1) {
            snprintf(name, sizeof name, "%s.clip_frac", prefix);
            CHECK(fabs(clip / B - *(const float *)ref_get(&rec, name)->data) < 1e-6, "clip %g", clip / B);
            CHECK(fabs(kl / B - *(const float *)ref_get(&rec, "espo.kl")->data) < 1e-5 * (1 + kl / B), "KL %g", kl / B);
        }
        worst = check_grads(&m, prefix);
        printf("  ESPO%s: ELBO rel err %.2g, loss %.7f vs %.7f, clip %.2f, KL %.5f, worst gradient rel err %.2g\n",
               on == 2 ? " (dual-clip)" : on ? " (on-policy)" : "", e, loss, want, clip / B, kl / B, worst);
        d1_model_free(&m);
    }
}

/* d2 StepMerge against the dump (tools/ref_recipe_dump.py, part 5): the
   reveal steps of a trajectory go through d1__grpo_masks_trajectory (the
   completion's input and scored masks of inner iteration it; the prompt
   mask then set to the dump's), and d1_grpo_loss with the estimator's
   denominator reproduces d2's loss and every gradient. */
static void test_reference_d2(void) {
    const ref_record *tk = ref_get(&rec, "grpo.tokens"), *rv = ref_get(&rec, "d2.rev");
    const int *meta, *pm, *cmi;
    d1_grpo_desc d = d1_grpo_default_desc(6);
    d1__grpo_work w;
    d1_grpo_batch b;
    d1_model m;
    d1_rng rng;
    uint8_t input[4 * 11], score[4 * 6], cm[4 * 6];
    int rl[4], r, i, P, T, Lc;
    float loss, want;
    double den, worst;
    CHECK(tk && rv, "d2 records in the dump");
    if (!tk || !rv) return;
    meta = (const int *)ref_get(&rec, "d2.meta")->data;
    pm = (const int *)ref_get(&rec, "grpo.prompt_mask")->data;
    cmi = (const int *)ref_get(&rec, "grpo.completion_mask")->data;
    T = tk->dims[1]; P = *(const int *)ref_get(&rec, "grpo.P")->data; Lc = T - P;
    for (i = 0; i < 4 * Lc; i++) cm[i] = (uint8_t)cmi[i];
    for (r = 0; r < 4; r++) rl[r] = P;
    memset(&w, 0, sizeof w);
    w.d = &d; w.G = 2; w.R = 4; w.P = P; w.Lc = Lc; w.T = T; w.passes = 1;
    w.RT = (size_t)4 * T; w.RL = (size_t)4 * Lc; w.rl = rl; w.cm = cm;
    w.rev = (int *)rv->data; w.n_steps = meta[0]; w.n_seg = meta[1];
    d1_rng_seed(&rng, 3);
    den = d1__grpo_masks_trajectory(&w, meta[2], &rng, input, score, NULL);
    for (r = 0; r < 4; r++) /* the dump's prompt mask in place of the drawn one */
        for (i = 0; i < P; i++) input[r * T + i] = (uint8_t)pm[r * P + i];
    memset(&b, 0, sizeof b);
    b.tokens = (const int *)tk->data; b.B = 4; b.T = T; b.P = P;
    b.input_mask = input; b.score_mask = score; b.denom = (float)den;
    b.adv = (const float *)ref_get(&rec, "grpo.adv")->data;
    b.old_logp = (const float *)ref_get(&rec, "d2.old")->data;
    b.ref_logp = (const float *)ref_get(&rec, "d2.ref")->data;
    want = *(const float *)ref_get(&rec, "d2.loss")->data;
    CHECK(load_model(&m), "model");
    CHECK(d1_grpo_loss(&m, &b, 0.2f, 0.04f, D1_GRPO_CLIPPED, &loss, NULL, NULL) == D1_OK, "d2 loss");
    CHECK(fabs(loss - want) <= 1e-4 * fabs(want) + 1e-6, "d2 loss %.7f vs %.7f", loss, want);
    worst = check_grads(&m, "d2");
    printf("  d2 StepMerge (S %d, N %d, it %d): loss %.7f vs %.7f, worst gradient rel err %.2g\n", meta[0], meta[1],
           meta[2], loss, want, worst);
    d1_model_free(&m);
}

/* The trajectory estimator's record of a real rollout: for every segment k,
   the masks of d1__grpo_masks_trajectory show exactly the canvas the sampler
   held at the start of segment k (snapshots taken by a caller's callback,
   which the recorder chains), and every token is scored in exactly one
   segment. */
static d1_config bandit_config(void);
typedef struct snapshots { int n, T, B; int canvas[16][3 * 24]; } snapshots;
static void take_snapshot(const d1_sample_event *ev, void *user) {
    snapshots *s = (snapshots *)user;
    if (s->n < 16) memcpy(s->canvas[s->n++], ev->canvas, sizeof(int) * (size_t)ev->B * ev->T);
}
static void test_trajectory_canvas(void) {
    enum { B = 3, P = 4, L = 16, T = P + L, STEPS = 8, N = 3 };
    d1_config c = bandit_config();
    d1_model m;
    d1_grpo_desc d = d1_grpo_default_desc(L);
    d1_sampler_desc sd;
    d1__grpo_work w;
    d1_rng rng;
    snapshots snap;
    int prompts[B * P] = {1, 2, 4, 1, 2, 2, 4, 1, 1, 1, 2, 4}, out[B * T], rev[B * L], rl[B] = {P, P, P}, r, i, it;
    uint8_t cm[B * L], in[B * T], sc[B * L];
    int times_scored[B * L];
    c.max_seq_len = T;
    d1_model_init(&m, &c, 5);
    memset(&snap, 0, sizeof snap);
    d.sampler.block_len = 8; d.sampler.steps = STEPS; d.sampler.temperature = 1.0f;
    d.sampler.callback = take_snapshot; d.sampler.user = &snap;
    d.p_mask_prompt = 0.0f; d.segments = N;
    memset(&w, 0, sizeof w);
    memset(cm, 1, sizeof cm);
    w.d = &d; w.G = 3; w.R = B; w.P = P; w.Lc = L; w.T = T; w.passes = 1;
    w.RT = (size_t)B * T; w.RL = (size_t)B * L; w.rl = rl; w.cm = cm; w.rev = rev; w.n_seg = N; w.n_steps = STEPS;
    for (i = 0; i < B * L; i++) rev[i] = INT_MAX;
    sd = d.sampler; sd.callback = d1__grpo_record_reveals; sd.user = &w;
    d1_rng_seed(&rng, 11);
    CHECK(d1_sampler_generate(&m, &sd, prompts, B, P, NULL, &rng, out, NULL) == D1_OK, "rollout");
    CHECK(snap.n == STEPS, "the caller's callback saw %d of %d steps", snap.n, STEPS);
    memset(times_scored, 0, sizeof times_scored);
    for (it = 0; it < N; it++) {
        d1__grpo_masks_trajectory(&w, it, &rng, in, sc, NULL);
        for (r = 0; r < B; r++) {
            int seg = (r + it) % N, b0 = (int)((int64_t)seg * STEPS / N); /* d2: int(j * (S / N)) */
            for (i = 0; i < L; i++) {
                int shown = b0 == 0 ? 0 : snap.canvas[b0 - 1][r * T + P + i] != c.mask_id;
                CHECK(in[r * T + P + i] == !shown, "row %d segment %d position %d: input %d, canvas shows %d", r, seg,
                      i, in[r * T + P + i], shown);
                times_scored[r * L + i] += sc[r * L + i];
            }
        }
    }
    for (i = 0; i < B * L; i++) CHECK(times_scored[i] == 1, "token %d scored in %d segments", i, times_scored[i]);
    d1_model_free(&m);
}

/* SPG's objective against the dump (tools/ref_recipe_dump.py, part 6): the
   dump's block-wise masks (2 draws) as rows [draw][sequence], each masked
   completion token within the completion weighing 1/(draws x the row's
   count), the completion lengths as the loss weights; the EUBO / ELBO mix
   (0.5, beta 1) and the pure EUBO (beta 2): loss and every gradient. */
static void test_reference_spg(void) {
    static const char *const kinds[2] = {"mix", "eubo"};
    const ref_record *tk = ref_get(&rec, "grpo.tokens"), *mk = ref_get(&rec, "spg.mask");
    const int *cmi = (const int *)ref_get(&rec, "grpo.completion_mask")->data;
    int B, T, P, Lc, NT, k, j, r, i, toks[2 * 4 * 11];
    uint8_t input[2 * 4 * 11], score[2 * 4 * 6];
    float wts[2 * 4 * 6], len[4], den = 0.0f;
    d1_grpo_batch b;
    CHECK(tk && mk, "spg records in the dump");
    if (!tk || !mk) return;
    B = tk->dims[0]; T = tk->dims[1]; P = *(const int *)ref_get(&rec, "grpo.P")->data; Lc = T - P; NT = mk->dims[0];
    CHECK(B == 4 && NT == 2 && T == 11, "shapes");
    for (r = 0; r < B; r++) {
        len[r] = 0.0f;
        for (i = 0; i < Lc; i++) len[r] += (float)cmi[r * Lc + i];
        den += len[r];
    }
    for (j = 0; j < NT; j++)
        for (r = 0; r < B; r++) {
            int row = j * B + r, count = 0;
            for (i = 0; i < T; i++) {
                toks[row * T + i] = ((const int *)tk->data)[r * T + i];
                input[row * T + i] = (uint8_t)((const int *)mk->data)[row * T + i];
            }
            for (i = 0; i < Lc; i++) count += score[row * Lc + i] = (uint8_t)(input[row * T + P + i] && cmi[r * Lc + i]);
            for (i = 0; i < Lc; i++) wts[row * Lc + i] = score[row * Lc + i] ? (float)(1.0 / (NT * count)) : 0.0f;
        }
    memset(&b, 0, sizeof b);
    b.tokens = toks; b.B = NT * B; b.T = T; b.P = P;
    b.input_mask = input; b.score_mask = score; b.elbo_w = wts; b.n_seq = B; b.seq_len = len; b.denom = den;
    b.adv = (const float *)ref_get(&rec, "grpo.adv")->data;
    for (k = 0; k < 2; k++) {
        d1_model m;
        char name[64];
        const float *meta;
        float loss, want;
        double worst;
        snprintf(name, sizeof name, "spg_%s.meta", kinds[k]);
        meta = (const float *)ref_get(&rec, name)->data;
        snprintf(name, sizeof name, "spg_%s.loss", kinds[k]);
        want = *(const float *)ref_get(&rec, name)->data;
        b.eubo_beta = meta[0]; b.eubo_mix = meta[1];
        CHECK(load_model(&m), "model");
        CHECK(d1_grpo_loss(&m, &b, 0.2f, 0.0f, D1_GRPO_SPG, &loss, NULL, NULL) == D1_OK, "SPG %s loss", kinds[k]);
        CHECK(fabs(loss - want) <= 1e-4 * fabs(want) + 1e-6, "SPG %s loss %.7f vs %.7f", kinds[k], loss, want);
        snprintf(name, sizeof name, "spg_%s", kinds[k]);
        worst = check_grads(&m, name);
        printf("  SPG %s (beta %.1f, mix %.1f): loss %.7f vs %.7f, worst gradient rel err %.2g\n", kinds[k], meta[0],
               meta[1], loss, want, worst);
        d1_model_free(&m);
    }
}

/* SPG's block-wise masks (d1__grpo_masks_block), p_mask_prompt 0 so that
   only the block rule masks: per row and draw one block c (distinct draws
   while the completion spans every block), 1..m of its first m completion
   positions masked (all bl when c is the last block and full), the rest of
   the block, every later position and everything past the completion
   masked, nothing before c; scored = masked within the completion, each
   weighing 1/(draws x count); the denominator is the sum of the lengths. */
static void test_block_masks(void) {
    enum { R = 6, P = 2, L = 12, BL = 4, NB = L / BL, T = P + L, NT = 2 };
    d1_grpo_desc d = d1_grpo_default_desc(L);
    d1__grpo_work w;
    uint8_t in[NT * R * T], sc[NT * R * L], cm[R * L];
    float wt[NT * R * L];
    int rl[R], lens[R] = {12, 12, 7, 4, 1, 9}, r, i, j, rep, bad = 0;
    double den = 0.0;
    d1_rng rng;
    memset(&w, 0, sizeof w);
    for (r = 0; r < R; r++) {
        rl[r] = P;
        for (i = 0; i < L; i++) cm[r * L + i] = (uint8_t)(i < lens[r]);
    }
    d.sampler.block_len = BL; d.p_mask_prompt = 0.0f;
    w.d = &d; w.G = 3; w.R = R; w.P = P; w.Lc = L; w.T = T; w.passes = NT; w.seq = 1;
    w.RT = (size_t)R * T; w.RL = (size_t)R * L; w.rl = rl; w.cm = cm;
    d1_rng_seed(&rng, 5);
    for (rep = 0; rep < 500; rep++) {
        int blocks[NT][R];
        den = d1__grpo_masks_block(&w, 0, &rng, in, sc, wt);
        for (j = 0; j < NT; j++)
            for (r = 0; r < R; r++) {
                const uint8_t *x = in + (j * R + r) * T;
                int n = lens[r], c = -1, count = 0, hits = 0, m, pick;
                for (i = 0; i < P; i++) bad += x[i];
                for (i = 0; i < L && c < 0; i++) /* the first masked completion position is in block c */
                    if (x[P + i]) c = i / BL;
                blocks[j][r] = c;
                bad += c < 0 || c > (n - 1) / BL;
                if (c < 0) continue;
                m = D1__MIN(BL, n - c * BL);
                pick = c == NB - 1 && m == BL ? BL : m;
                for (i = 0; i < L; i++) {
                    int want_masked = i >= n || i >= (c + 1) * BL || (i >= c * BL && i - c * BL >= pick);
                    if (i < c * BL) bad += x[P + i] && i < n;
                    else if (i >= c * BL && i - c * BL < pick) hits += x[P + i];
                    else bad += x[P + i] != want_masked;
                    bad += sc[(j * R + r) * L + i] != (x[P + i] && i < n);
                    count += sc[(j * R + r) * L + i];
                }
                bad += hits < 1 || hits > m;
                for (i = 0; i < L; i++)
                    bad += wt[(j * R + r) * L + i] != (sc[(j * R + r) * L + i] ? (float)(1.0 / (NT * count)) : 0.0f);
            }
        for (r = 0; r < 2; r++) bad += blocks[0][r] == blocks[1][r]; /* full rows: distinct blocks */
    }
    CHECK(bad == 0, "%d mask / score / weight entries or blocks wrong", bad);
    CHECK(den == 12 + 12 + 7 + 4 + 1 + 9, "denominator %g", den);
}

/* ESPO's masks (d1__grpo_masks_elbo): per draw the stratified counts x_r =
   round(k + r (Lc+1)/R) mod (Lc+1) (half to even), exactly x_r masked in pass
   1, the complement in pass 2, the prompt never, the weights (Lc+1)/(2 MC x)
   and (Lc+1)/(2 MC (Lc-x)); and over many draws every position masked about
   equally often (the subset is uniform). */
static void test_elbo_masks(void) {
    enum { R = 12, P = 3, L = 7, T = P + L, MC = 2 };
    d1_grpo_desc d = d1_grpo_default_desc(L);
    d1__grpo_work w;
    uint8_t in[2 * MC * R * T], sc[2 * MC * R * L], cm[R * L];
    float wt[2 * MC * R * L];
    long hits[L] = {0}, total = 0;
    int rl[R], r, i, dr, rep, bad = 0, strat_ok = 1;
    d1_rng rng;
    memset(&w, 0, sizeof w);
    memset(cm, 1, sizeof cm);
    for (r = 0; r < R; r++) rl[r] = P;
    w.d = &d; w.G = 6; w.R = R; w.P = P; w.Lc = L; w.T = T; w.passes = 2 * MC;
    w.RT = (size_t)R * T; w.RL = (size_t)R * L; w.rl = rl; w.cm = cm; w.seq = 1;
    d1_rng_seed(&rng, 7);
    for (rep = 0; rep < 2000; rep++) {
        d1__grpo_masks_elbo(&w, 0, &rng, in, sc, wt);
        for (dr = 0; dr < MC; dr++) {
            int x0 = -1;
            for (r = 0; r < R; r++) {
                const uint8_t *i1 = in + (2 * dr * R + r) * T, *i2 = i1 + R * T;
                const float *w1 = wt + (2 * dr * R + r) * L, *w2 = w1 + R * L;
                int x = 0, want;
                for (i = 0; i < P; i++) bad += i1[i] || i2[i];
                for (i = 0; i < L; i++) {
                    x += i1[P + i];
                    bad += i1[P + i] == i2[P + i];
                    bad += sc[(2 * dr * R + r) * L + i] != i1[P + i] || sc[((2 * dr + 1) * R + r) * L + i] != i2[P + i];
                    hits[i] += i1[P + i];
                }
                for (i = 0; i < L; i++) {
                    float e1 = i1[P + i] ? (float)((L + 1.0) / (2.0 * MC * x)) : 0.0f;
                    float e2 = i2[P + i] ? (float)((L + 1.0) / (2.0 * MC * (L - x))) : 0.0f;
                    bad += w1[i] != e1 || w2[i] != e2;
                }
                total += L;
                if (r == 0) x0 = x; /* x_0 = k */
                { /* x_r = round half to even of k + r (L+1)/R, mod L+1 (in double: exact here) */
                    double v = x0 + (double)r * (L + 1) / R, f = floor(v);
                    long q = (long)f;
                    if (v - f > 0.5 || (v - f == 0.5 && (q & 1))) q++;
                    want = (int)(q % (L + 1));
                }
                strat_ok &= x == want;
            }
        }
    }
    CHECK(bad == 0, "%d mask / score / weight entries wrong", bad);
    CHECK(strat_ok, "stratified counts differ from round(k + r (L+1)/R) mod (L+1)");
    for (i = 0; i < L; i++) /* each position masked with the same probability (1/2 on average over k) */
        CHECK(fabs((double)hits[i] / (total / L) - (double)hits[0] / (total / L)) < 0.03, "position %d masked %.3f vs %.3f",
              i, (double)hits[i] / (total / L), (double)hits[0] / (total / L));
}

/* d1's prompt mask with left-padded prompts of different lengths: row r's
   padding (its first P - rl[r] positions) is never masked, its prompt is
   (p_mask_prompt near 1). The masks once read row r's length at r / G. */
static void test_prompt_mask_padding(void) {
    d1_grpo_desc d = d1_grpo_default_desc(4);
    d1__grpo_work w;
    int rl[4] = {2, 2, 5, 5}, r, i;
    uint8_t cm[4 * 4], in[2 * 4 * 9], sc[2 * 4 * 4];
    d1_rng rng;
    memset(&w, 0, sizeof w);
    memset(cm, 1, sizeof cm);
    d.group_size = 2;
    d.p_mask_prompt = 0.999999f;
    w.d = &d; w.G = 2; w.R = 4; w.P = 5; w.Lc = 4; w.T = 9;
    w.RT = 36; w.RL = 16; w.rl = rl; w.cm = cm;
    d1_rng_seed(&rng, 1);
    w.passes = 1;
    d1__grpo_estimators[D1_LOGP_ONE_STEP].masks(&w, 0, &rng, in, sc, NULL);
    for (r = 0; r < 4; r++)
        for (i = 0; i < 5; i++)
            CHECK(in[r * 9 + i] == (i >= 5 - rl[r]), "row %d (prompt of %d) position %d: mask %d", r, rl[r], i,
                  in[r * 9 + i]);
}

static void test_reference_wd1(void) {
    d1_model m;
    grpo_case g;
    float omega[4], loss, ref_loss = *(const float *)ref_get(&rec, "wd1.loss")->data;
    double worst;
    CHECK(load_model(&m), "model");
    grpo_case_load(&g);
    d1_wd1_weights(g.adv, 4, 2, omega);
    CHECK(fabsf(omega[0] - 0.6044f) < 1e-4f && fabsf(omega[2] - 0.2449f) < 1e-4f, "omega %g %g", omega[0], omega[2]);
    g.b.adv = omega;
    CHECK(d1_grpo_loss(&m, &g.b, 0.2f, 0.04f, D1_GRPO_WD1, &loss, NULL, NULL) == D1_OK, "loss");
    CHECK(fabs(loss - ref_loss) <= 1e-4 * fabs(ref_loss), "wd1 loss %.7f vs %.7f", loss, ref_loss);
    worst = check_grads(&m, "wd1");
    printf("  wd1: loss %.7f vs %.7f, worst gradient rel err %.2g\n", loss, ref_loss, worst);
    d1_model_free(&m);
}

static int all_zero(const float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (x[i] != 0.0f) return 0;
    return 1;
}

static void test_invariants(void) {
    d1_model m;
    grpo_case g;
    float logp[64], loss, old[64];
    double kl = 0, clip = 0, expect = 0;
    int i, Lc;
    CHECK(load_model(&m), "model");
    grpo_case_load(&g);
    Lc = g.b.T - g.b.P;
    d1_grpo_logprobs(&m, &g.b, logp);
    /* policy = reference, A = 0: loss, KL and every gradient exactly 0 */
    memset(g.adv, 0, sizeof g.adv);
    g.b.ref_logp = logp; g.b.old_logp = logp;
    CHECK(d1_grpo_loss(&m, &g.b, 0.2f, 0.04f, D1_GRPO_CLIPPED, &loss, &kl, &clip) == D1_OK, "loss");
    CHECK(loss == 0.0f && kl == 0.0, "loss %g kl %g", loss, kl);
    CHECK(all_zero(m.grad_memory, m.num_params), "KL gradient at policy = reference is not 0");
    /* the first of the mu updates: old = current, so rho = 1, nothing clipped, loss = -mean(A) */
    memcpy(g.adv, ref_get(&rec, "grpo.adv")->data, sizeof g.adv);
    clip = 0;
    CHECK(d1_grpo_loss(&m, &g.b, 0.2f, 0.0f, D1_GRPO_CLIPPED, &loss, NULL, &clip) == D1_OK, "loss");
    for (i = 0; i < g.b.B * Lc; i++) expect -= g.score[i] * g.adv[i / Lc];
    CHECK(clip == 0.0 && fabs(loss - expect / g.b.denom) < 1e-6, "rho = 1: loss %g vs %g, clipped %g", loss,
          expect / g.b.denom, clip);
    /* clipped tokens give no surrogate gradient: rho > 1+eps with A > 0 on every token */
    d1_model_zero_grad(&m);
    for (i = 0; i < g.b.B * Lc; i++) old[i] = logp[i] - 1.0f; /* rho = e */
    for (i = 0; i < 4; i++) g.adv[i] = 1.0f;
    g.b.old_logp = old;
    clip = 0;
    CHECK(d1_grpo_loss(&m, &g.b, 0.2f, 0.0f, D1_GRPO_CLIPPED, &loss, NULL, &clip) == D1_OK, "loss");
    CHECK(clip == g.b.denom, "all %g tokens clipped: %g", g.b.denom, clip);
    CHECK(all_zero(m.grad_memory, m.num_params), "a clipped token moved the gradient");
    /* ... and with A < 0 and rho < 1-eps */
    for (i = 0; i < g.b.B * Lc; i++) old[i] = logp[i] + 1.0f;
    for (i = 0; i < 4; i++) g.adv[i] = -1.0f;
    CHECK(d1_grpo_loss(&m, &g.b, 0.2f, 0.0f, D1_GRPO_CLIPPED, &loss, NULL, NULL) == D1_OK, "loss");
    CHECK(all_zero(m.grad_memory, m.num_params), "a clipped token (A < 0) moved the gradient");
    d1_model_free(&m);
}

/* ---- a bandit: reward 1 when the completion holds "3 3" somewhere ----------
   (a pattern the one-step estimator can express: it scores each completion
   token given the prompt alone, so it learns marginals, not adjacency) */
static float pattern_reward(const d1_rollout *ro, void *user) {
    const int *o = ro->completion;
    int i, n = ro->completion_len;
    (void)user;
    for (i = 0; i + 1 < n; i++)
        if (o[i] == 3 && o[i + 1] == 3) return 1.0f;
    return 0.0f;
}
static float nan_reward(const d1_rollout *ro, void *user) {
    (void)ro; (void)user;
    return NAN;
}
static float zero_reward(const d1_rollout *ro, void *user) {
    (void)ro; (void)user;
    return 0.5f;
}

static d1_config bandit_config(void) {
    d1_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 10; c.dim = 32; c.n_layers = 2; c.n_heads = 4; c.ffn_dim = 64; c.max_seq_len = 16;
    c.mask_id = 9; c.eos_id = 8; c.pad_id = 8;
    return c;
}

/* Runs diffu-GRPO on the bandit; returns the step at which the mean reward
   of the last 3 iterations first exceeds 0.8, or -1. bandit_steps_ok counts
   the iterations that returned D1_OK with a finite mean reward. */
static int bandit_steps_ok;
static int bandit_run(uint64_t seed, int objective, int estimator, float *first_reward, int max_steps) {
    d1_config c = bandit_config();
    d1_model m, ref;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_grpo_desc d = d1_grpo_default_desc(8);
    d1_reward rw;
    d1_grpo_stats st;
    d1_rng rng;
    int prompts[4 * 3] = {1, 2, 4, 1, 2, 4, 1, 2, 4, 1, 2, 4}, step, hit = -1;
    float hist[3] = {0, 0, 0};
    d1_model_init(&m, &c, seed);
    /* a zero output head: the untrained policy samples uniformly (a random
       transformer prefers a few tokens, so the task's start would vary) */
    memset(m.params.head, 0, sizeof(float) * c.vocab_size * c.dim);
    d1_model_init(&ref, &c, seed);
    d1_model_copy_weights(&ref, &m);
    od.lr = 3e-3f; od.weight_decay = 0.0f;
    d1_adamw_init(&opt, &m, &od);
    rw.name = "pattern"; rw.fn = pattern_reward; rw.weight = 1.0f; rw.user = NULL;
    d.rewards = &rw; d.n_rewards = 1;
    d.group_size = 6; d.inner_steps = 4; d.objective = objective; d.estimator = estimator;
    d.sampler.gen_len = 8; d.sampler.block_len = 8; d.sampler.steps = 8; d.sampler.temperature = 1.0f;
    if (estimator == D1_LOGP_ELBO) { /* ESPO's recipe: k2 on the sequence, 2 draws, leave-one-out, eps 0.2 */
        d.kl = D1_KL_K2; d.mc_draws = 2; d.leave_one_out = 1; d.beta = 0.01f; d.clip_eps = 0.2f;
    }
    if (estimator == D1_LOGP_TRAJECTORY) d.segments = 4; /* of the 8 steps */
    if (estimator == D1_LOGP_BLOCK) { /* SPG: its objective, no KL, the EUBO / ELBO mix */
        d.objective = D1_GRPO_SPG; d.beta = 0.0f; d.eubo_beta = 1.0f; d.eubo_mix = 0.5f;
    }
    d1_rng_seed(&rng, seed * 7 + 1);
    bandit_steps_ok = 0;
    for (step = 0; step < max_steps; step++) {
        if (d1_grpo_step(&m, &ref, &opt, &d, prompts, 4, 3, NULL, &rng, &st) != D1_OK) break;
        if (!isfinite(st.reward_mean)) break;
        bandit_steps_ok++;
        if (step == 0) *first_reward = st.reward_mean;
        hist[step % 3] = st.reward_mean;
        if (step >= 2 && (hist[0] + hist[1] + hist[2]) / 3 > 0.8f) { hit = step + 1; break; }
    }
    d1_adamw_free(&opt);
    d1_model_free(&m);
    d1_model_free(&ref);
    return hit;
}

/* ---- the reward is told its prompt and group member; the rollouts come back ----
   The reward records what it was shown and returns a value that encodes the
   prompt index and member, so the returned rewards show their order too. */
typedef struct seen_rollouts {
    const int *prompts, *lens;
    int P, G, calls[2][3], bad_prompt, comp[6][8], comp_len[6];
} seen_rollouts;
static float told_reward(const d1_rollout *ro, void *user) {
    seen_rollouts *s = (seen_rollouts *)user;
    int r = ro->prompt_index * s->G + ro->member, i, threes = 0;
    const int *want = s->prompts + (size_t)ro->prompt_index * s->P + s->P - s->lens[ro->prompt_index];
    if (ro->prompt_index < 0 || ro->prompt_index > 1 || ro->member < 0 || ro->member > 2) { s->bad_prompt++; return 0; }
    s->calls[ro->prompt_index][ro->member]++;
    if (ro->prompt_len != s->lens[ro->prompt_index] || memcmp(ro->prompt, want, sizeof(int) * ro->prompt_len))
        s->bad_prompt++;
    for (i = 0; i < ro->completion_len; i++) threes += ro->completion[i] == 3;
    memcpy(s->comp[r], ro->completion, sizeof(int) * ro->completion_len);
    s->comp_len[r] = ro->completion_len;
    return (float)threes + 100.0f * ro->prompt_index + 10.0f * ro->member;
}

static void test_rollouts_told_and_returned(void) {
    d1_config c = bandit_config();
    d1_model m;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_grpo_desc d = d1_grpo_default_desc(8);
    d1_grpo_stats st;
    d1_reward rw;
    d1_rng rng;
    seen_rollouts s;
    int prompts[2 * 3] = {1, 2, 4, 8, 5, 6}, lens[2] = {3, 2}, rollouts[6 * 11], i, j, g;
    float rewards[6 * 2], adv[6];
    memset(&s, 0, sizeof s);
    s.prompts = prompts; s.lens = lens; s.P = 3; s.G = 3;
    d1_model_init(&m, &c, 11);
    od.lr = 1e-4f;
    d1_adamw_init(&opt, &m, &od);
    rw.name = "told"; rw.fn = told_reward; rw.weight = 1.0f; rw.user = &s;
    d.rewards = &rw; d.n_rewards = 1; d.group_size = 3; d.inner_steps = 1; d.beta = 0.0f;
    d.sampler.temperature = 1.0f;
    d.out_rollouts = rollouts; d.out_rewards = rewards; d.out_advantages = adv;
    for (i = 0; i < 6 * 11; i++) rollouts[i] = -7;
    d1_rng_seed(&rng, 3);
    CHECK(d1_grpo_step(&m, NULL, &opt, &d, prompts, 2, 3, lens, &rng, &st) == D1_OK, "step: %s", d1_last_error());
    for (i = 0; i < 2; i++)
        for (g = 0; g < 3; g++) CHECK(s.calls[i][g] == 1, "prompt %d member %d scored %d times", i, g, s.calls[i][g]);
    CHECK(s.bad_prompt == 0, "%d rollouts shown another prompt than their index's", s.bad_prompt);
    for (i = 0; i < 6; i++) {
        const int *row = rollouts + i * 11;
        float want = rewards[i * 2 + 1];
        CHECK(row[0] == (i < 3 ? 1 : c.pad_id) && row[1] == prompts[(i / 3) * 3 + 1] && row[2] == prompts[(i / 3) * 3 + 2],
              "rollout %d: the prompt, left-padded with pad_id", i);
        CHECK(!memcmp(row + 3, s.comp[i], sizeof(int) * s.comp_len[i]) &&
                  (s.comp_len[i] == 8 || row[3 + s.comp_len[i]] == c.eos_id),
              "rollout %d: the completion the reward saw, then EOS", i);
        CHECK(want >= 100.0f * (i / 3) + 10.0f * (i % 3) && want < 100.0f * (i / 3) + 10.0f * (i % 3) + 9.0f,
              "reward %d = %g: not prompt %d member %d's", i, want, i / 3, i % 3);
        CHECK(rewards[i * 2] == want, "weighted reward %g vs %g", rewards[i * 2], want);
    }
    for (g = 0; g < 2; g++) { /* d1: A = r - group mean */
        float mean = (rewards[g * 6] + rewards[g * 6 + 2] + rewards[g * 6 + 4]) / 3.0f;
        for (j = 0; j < 3; j++)
            CHECK(fabsf(adv[g * 3 + j] - (rewards[(g * 3 + j) * 2] - mean)) < 1e-4f, "advantage %d", g * 3 + j);
    }
    /* a failing step writes none of them */
    for (i = 0; i < 6 * 11; i++) rollouts[i] = -7;
    d.sampler.block_len = 3;
    CHECK(d1_grpo_step(&m, NULL, &opt, &d, prompts, 2, 3, lens, &rng, &st) == D1_ERR_SETTING, "block 3 of 8");
    for (i = 0; i < 6 * 11; i++)
        if (rollouts[i] != -7) break;
    CHECK(i == 6 * 11, "a failed step wrote the rollouts");
    d1_adamw_free(&opt);
    d1_model_free(&m);

    /* no EOS in the vocabulary: every completion is scored whole; no pad
       token: a padded prompt is refused, an unpadded one runs */
    c.eos_id = D1_TOKEN_NONE; c.pad_id = D1_TOKEN_NONE;
    d1_model_init(&m, &c, 11);
    d1_adamw_init(&opt, &m, &od);
    d.sampler.block_len = 8;
    memset(&s, 0, sizeof s);
    s.prompts = prompts; s.lens = lens; s.P = 3; s.G = 3;
    CHECK(d1_grpo_step(&m, NULL, &opt, &d, prompts, 2, 3, lens, &rng, &st) == D1_ERR_CONFIG, "padded, no pad id");
    lens[1] = 3;
    CHECK(d1_grpo_step(&m, NULL, &opt, &d, prompts, 2, 3, lens, &rng, &st) == D1_OK, "no EOS: %s", d1_last_error());
    CHECK(st.completion_len == 8.0f, "no EOS: completions of %g tokens, not all 8", st.completion_len);
    for (i = 0; i < 6; i++) CHECK(s.comp_len[i] == 8, "rollout %d: the reward saw %d tokens", i, s.comp_len[i]);
    d1_adamw_free(&opt);
    d1_model_free(&m);
}

/* Left padding is context, not content: a GRPO step over prompts padded with
   two pad tokens (prompt_lens = 3 of P = 5) scores its rollouts as the
   sampler made them, with the padding hidden from every query, so its
   rollouts, KL, loss and gradient norm match the unpadded step's to float rounding (RoPE
   sees other absolute positions). The log-prob passes used to attend to the
   padding: KL and loss then moved by the padding's influence. */
static void test_grpo_padding_is_hidden(void) {
    d1_config c = bandit_config();
    d1_model m[2], ref;
    d1_adamw opt[2];
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_grpo_desc d = d1_grpo_default_desc(8);
    d1_grpo_stats st[2];
    d1_reward rw;
    d1_rng rng[2];
    int plain[2 * 3] = {1, 2, 4, 5, 6, 7}, padded[2 * 5] = {8, 8, 1, 2, 4, 8, 8, 5, 6, 7}, lens[2] = {3, 3};
    int out[2][4 * 13], k, i, same = 1;
    double dw = 0.0;
    rw.name = "pattern"; rw.fn = pattern_reward; rw.weight = 1.0f; rw.user = NULL;
    d.rewards = &rw; d.n_rewards = 1; d.group_size = 2; d.inner_steps = 1; d.p_mask_prompt = 0.0f;
    d.sampler.temperature = 0.0f; d.beta = 0.5f;
    d1_model_init(&ref, &c, 21);
    for (k = 0; k < 2; k++) {
        d1_model_init(&m[k], &c, 20);
        d1_adamw_init(&opt[k], &m[k], &od);
        d1_rng_seed(&rng[k], 4);
        d.out_rollouts = out[k];
        CHECK(d1_grpo_step(&m[k], &ref, &opt[k], &d, k ? padded : plain, 2, k ? 5 : 3, k ? lens : NULL, &rng[k],
                           &st[k]) == D1_OK, "step %d: %s", k, d1_last_error());
    }
    for (i = 0; i < 4; i++) same &= !memcmp(out[0] + i * 11 + 3, out[1] + i * 13 + 5, sizeof(int) * 8);
    CHECK(same, "the padded prompts sampled other completions");
    for (i = 0; i < (int)m[0].num_params; i++) dw = fmax(dw, fabs((double)m[0].param_memory[i] - m[1].param_memory[i]));
    printf("  padded vs unpadded GRPO step: kl %.7f vs %.7f, loss %.7f vs %.7f, |g| %.6f vs %.6f, max |dw| %.2g\n",
           st[1].kl, st[0].kl, st[1].loss, st[0].loss, st[1].grad_norm, st[0].grad_norm, dw);
    CHECK(fabsf(st[0].kl - st[1].kl) <= 1e-4f * fabsf(st[0].kl) + 1e-7f, "KL %g vs %g", st[1].kl, st[0].kl);
    CHECK(fabsf(st[0].loss - st[1].loss) <= 1e-4f * fabsf(st[0].loss) + 1e-7f, "loss %g vs %g", st[1].loss,
          st[0].loss);
    CHECK(fabsf(st[0].grad_norm - st[1].grad_norm) <= 1e-4f * st[0].grad_norm, "|g| %g vs %g", st[1].grad_norm,
          st[0].grad_norm);
    for (k = 0; k < 2; k++) { d1_adamw_free(&opt[k]); d1_model_free(&m[k]); }
    d1_model_free(&ref);
}

/* d1_grpo_default_desc: d1's block of 32 where 32 divides gen_len, else one
   block; steps gen_len / 2 where that is whole per block; the result is
   always a schedule the sampler takes */
static void test_default_descs(void) {
    static const int gens[][3] = {{64, 32, 32}, {256, 32, 128}, {96, 32, 48}, {20, 20, 10}, {56, 56, 28}, {1, 1, 1}};
    int i;
    for (i = 0; i < (int)(sizeof gens / sizeof gens[0]); i++) {
        d1_grpo_desc d = d1_grpo_default_desc(gens[i][0]);
        CHECK(d.sampler.block_len == gens[i][1] && d.sampler.steps == gens[i][2], "gen %d: block %d steps %d",
              gens[i][0], d.sampler.block_len, d.sampler.steps);
        CHECK(d.group_size == 6 && d.inner_steps == 8 && d.beta == 0.04f && d.clip_eps == 0.5f &&
                  d.sampler.temperature == 0.9f && d.p_mask_prompt == 0.15f && !d.out_rollouts,
              "d1's settings");
    }
}

/* Short (th_short): seed 1 of each objective; the other seeds run natively. */
static void test_bandit_learning(void) {
    int obj, seed;
    for (obj = 0; obj < 2; obj++)
        for (seed = 1; seed <= (th_short() ? 1 : 3); seed++) {
            float first = 1;
            int hit = bandit_run((uint64_t)seed, obj, D1_LOGP_ONE_STEP, &first, 30);
            printf("  bandit %s seed %d: reward %.2f at step 1, > 0.8 (mean of 3) at step %d\n",
                   obj ? "wd1" : "diffu-GRPO", seed, first, hit);
            CHECK(first < 0.2f, "%s seed %d starts at %.2f", obj ? "wd1" : "diffu-GRPO", seed, first);
            CHECK(hit > 0, "%s seed %d never reached 0.8 in 30 steps", obj ? "wd1" : "diffu-GRPO", seed);
        }
}

/* The estimators beyond d1 (DiffuCoder's coupled masks, UniGRPO's partial
   masking, ESPO's sequence ELBO, d2's trajectory segments, SPG) learn the bandit too.
   Short (th_short): three iterations of each, every one D1_OK with a finite
   reward (the paths under the sanitizer or the emulated kernels); learning is
   checked natively. */
static void test_other_estimators(void) {
    static const char *const names[6] = {"one-step", "coupled", "partial", "ESPO's ELBO", "d2's trajectory",
                                         "SPG's block"};
    int est;
    for (est = D1_LOGP_COUPLED; est <= D1_LOGP_BLOCK; est++) {
        float first = 1;
        int hit;
        if (th_short()) {
            bandit_run(1, D1_GRPO_CLIPPED, est, &first, 3);
            printf("  bandit, %s estimator (short run): %d of 3 iterations ok\n", names[est], bandit_steps_ok);
            CHECK(bandit_steps_ok == 3, "%s estimator: %d of 3 iterations ok", names[est], bandit_steps_ok);
            continue;
        }
        hit = bandit_run(1, D1_GRPO_CLIPPED, est, &first, 40);
        printf("  bandit, %s estimator: reward %.2f at step 1, > 0.8 (mean of 3) at step %d\n", names[est], first, hit);
        CHECK(hit > 0, "%s estimator never reached 0.8 in 40 steps", names[est]);
    }
}

/* ---- group_masks: a group's rows share their masks ------------------------
   Every estimator's masks with group_masks 1: each row's input, scored and
   weight masks equal its group's first row's, the groups differ from each
   other, ESPO's counts are stratified over the groups (x_g = round(k + g
   (Lc+1)/S) mod (Lc+1), S groups) and the trajectory's segment is the
   group's; with group_masks 0 the rows of a group differ (so the check can
   fail). */
static void test_group_masks(void) {
    enum { R = 12, G = 3, P = 4, L = 8, T = P + L, PASSES = 4 };
    static const char *const names[6] = {"one-step", "coupled", "partial", "elbo", "trajectory", "block"};
    d1_grpo_desc d = d1_grpo_default_desc(L);
    d1__grpo_work w;
    uint8_t in[PASSES * R * T], sc[PASSES * R * L], cm[R * L];
    float wt[PASSES * R * L];
    int rl[R], rev[R * L], r, i, e, gm, rep, pass;
    d1_rng rng;
    memset(cm, 1, sizeof cm);
    for (r = 0; r < R; r++) {
        rl[r] = P - (r / G) % 2; /* a group's prompt, some left-padded */
        for (i = 0; i < L; i++) rev[r * L + i] = (i * 3 + r / G) % 8; /* a group's rollouts: one trajectory */
    }
    for (e = D1_LOGP_ONE_STEP; e <= D1_LOGP_BLOCK; e++)
        for (gm = 0; gm < 2; gm++) {
            long rows_differ = 0, groups_differ = 0, strat_bad = 0;
            const d1__grpo_estimator *est = &d1__grpo_estimators[e];
            memset(&w, 0, sizeof w);
            d.group_size = G; d.group_masks = gm; d.p_mask_prompt = 0.5f; d.mc_draws = 2;
            d.sampler.block_len = 4; d.sampler.steps = 8;
            w.d = &d; w.G = G; w.R = R; w.P = P; w.Lc = L; w.T = T; w.rl = rl; w.cm = cm; w.rev = rev;
            w.n_seg = 4; w.n_steps = 8; w.seq = est->seq;
            w.passes = est->passes * (est->seq ? d.mc_draws : 1); /* as d1_grpo_step: <= PASSES */
            w.RT = (size_t)R * T; w.RL = (size_t)R * L;
            d1_rng_seed(&rng, 40 + e);
            for (rep = 0; rep < 200; rep++) {
                memset(wt, 0, sizeof wt);
                est->masks(&w, rep, &rng, in, sc, wt);
                for (pass = 0; pass < w.passes; pass++)
                    for (r = 0; r < R; r++) {
                        int a = r % G ? r - r % G : (r + G) % R; /* the group's first row; for a first, the next group's */
                        const uint8_t *x = in + ((size_t)pass * R + r) * T, *y = in + ((size_t)pass * R + a) * T;
                        int same = !memcmp(x, y, T) &&
                                   !memcmp(sc + ((size_t)pass * R + r) * L, sc + ((size_t)pass * R + a) * L, L) &&
                                   !memcmp(wt + ((size_t)pass * R + r) * L, wt + ((size_t)pass * R + a) * L,
                                           sizeof(float) * L);
                        if (r % G) rows_differ += !same;
                        else groups_differ += !same;
                        if (e == D1_LOGP_ELBO && gm && pass % 2 == 0) { /* x_g from x_0 (= k) */
                            int cnt = 0, x0 = 0, want;
                            double v, fl;
                            long q;
                            for (i = 0; i < L; i++) {
                                cnt += x[P + i];
                                x0 += in[(size_t)pass * R * T + P + i];
                            }
                            v = x0 + (double)(r / G) * (L + 1) / (R / G); fl = floor(v); q = (long)fl;
                            if (v - fl > 0.5 || (v - fl == 0.5 && (q & 1))) q++;
                            want = (int)(q % (L + 1));
                            strat_bad += cnt != want;
                        }
                    }
            }
            if (gm) {
                CHECK(rows_differ == 0, "%s, group_masks 1: %ld rows differ from their group's first", names[e],
                      rows_differ);
                CHECK(groups_differ > 0, "%s, group_masks 1: every group has the same masks", names[e]);
                CHECK(strat_bad == 0, "%s: %ld counts not stratified over the groups", names[e], strat_bad);
            } else
                CHECK(rows_differ > 0, "%s, group_masks 0: the rows of a group share their masks", names[e]);
        }
}

/* The point of group_masks, end to end: rollouts at temperature 0 are equal
   within a group, the reward tells the members apart (advantages -10, 0, 10,
   summing to 0), so with shared masks every row's log-probs are equal and
   the first update's gradient cancels (its norm ~ rounding); with each row's
   own masks it does not. */
static float member_reward(const d1_rollout *ro, void *user) {
    (void)user;
    return 10.0f * (float)ro->member;
}
/* One d1_grpo_step of the bandit model (seed 21) on 2 prompts x G 3 with
   member_reward, gen 8 in one block of 8 steps, no KL, rng seed 9, AdamW
   at lr; d's other settings are the caller's. */
static void member_step(d1_grpo_desc *d, float lr, d1_grpo_stats *st) {
    d1_config c = bandit_config();
    d1_model m;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_reward rw;
    d1_rng rng;
    int prompts[2 * 3] = {1, 2, 4, 5, 6, 7};
    d1_model_init(&m, &c, 21);
    od.lr = lr;
    d1_adamw_init(&opt, &m, &od);
    rw.name = "member"; rw.fn = member_reward; rw.weight = 1.0f; rw.user = NULL;
    d->rewards = &rw; d->n_rewards = 1; d->group_size = 3; d->beta = 0.0f;
    d->sampler.gen_len = 8; d->sampler.block_len = 8; d->sampler.steps = 8;
    d1_rng_seed(&rng, 9);
    CHECK(d1_grpo_step(&m, NULL, &opt, d, prompts, 2, 3, NULL, &rng, st) == D1_OK, "step: %s", d1_last_error());
    d->rewards = NULL;
    d1_adamw_free(&opt);
    d1_model_free(&m);
}

static void test_group_masks_cancel(void) {
    static const int ests[5] = {D1_LOGP_ONE_STEP, D1_LOGP_COUPLED, D1_LOGP_PARTIAL, D1_LOGP_ELBO, D1_LOGP_TRAJECTORY};
    int k, gm;
    for (k = 0; k < 5; k++) {
        float gn[2];
        for (gm = 0; gm < 2; gm++) {
            d1_grpo_desc d = d1_grpo_default_desc(8);
            d1_grpo_stats st;
            d.inner_steps = 1; d.estimator = ests[k]; d.group_masks = gm; d.mc_draws = 2; d.segments = 4;
            d.sampler.temperature = 0.0f;
            member_step(&d, d1_adamw_default_desc().lr, &st);
            gn[gm] = st.grad_norm;
        }
        printf("  estimator %d: first update's grad norm %.3g with each row's masks, %.3g with the group's\n",
               ests[k], gn[0], gn[1]);
        CHECK(gn[0] > 1e-3f && gn[1] < 1e-5f * gn[0], "estimator %d: grad norm %g (own masks) vs %g (group's)",
              ests[k], gn[0], gn[1]);
    }
}

/* Dual-clip through d1_grpo_step: desc.dual_clip reaches the loss of every
   inner update. A large lr moves the ratios of the later updates far from 1,
   so with c 1.05 more tokens lose their gradient (clip share up) than with
   c 0, and with a c no ratio reaches the step is the plain one, bit for bit. */
static void test_dual_clip_step(void) {
    static const float cs[3] = {0.0f, 1.05f, 1e6f};
    d1_grpo_stats st[3];
    int k;
    for (k = 0; k < 3; k++) {
        d1_grpo_desc d = d1_grpo_default_desc(8);
        d.inner_steps = 4; d.clip_eps = 0.2f; d.dual_clip = cs[k];
        member_step(&d, 3e-2f, &st[k]);
    }
    printf("  clip share %.4f (c 0), %.4f (c 1.05), %.4f (c 1e6); loss %.5f / %.5f / %.5f\n", st[0].clip_frac,
           st[1].clip_frac, st[2].clip_frac, st[0].loss, st[1].loss, st[2].loss);
    CHECK(st[1].clip_frac > st[0].clip_frac, "c 1.05: clip share %g not above c 0's %g", st[1].clip_frac,
          st[0].clip_frac);
    CHECK(st[2].clip_frac == st[0].clip_frac && st[2].loss == st[0].loss && st[2].grad_norm == st[0].grad_norm,
          "c 1e6 differs from c 0");
}

static void test_bad_input(void) {
    d1_config c = bandit_config();
    d1_model m, ref;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_grpo_desc d = d1_grpo_default_desc(8);
    d1_reward rw;
    d1_rng rng;
    int prompts[2 * 12] = {1, 2, 3}, lens[2] = {3, 3}, tok[2 * 16] = {0};
    float *w0, loss;
    d1_grpo_stats st;
    d1_model_init(&m, &c, 1);
    d1_model_init(&ref, &c, 1);
    od.weight_decay = 0.0f;
    d1_adamw_init(&opt, &m, &od);
    d1_rng_seed(&rng, 1);
    w0 = (float *)malloc(m.num_params * sizeof(float));
    memcpy(w0, m.param_memory, m.num_params * sizeof(float));
    rw.name = "nan"; rw.fn = nan_reward; rw.weight = 1.0f; rw.user = NULL;
    d.rewards = &rw; d.n_rewards = 1; d.group_size = 2; d.inner_steps = 2;
    d.sampler.block_len = 8; d.sampler.steps = 8;
    CHECK(d1_grpo_step(&m, &ref, &opt, &d, prompts, 2, 3, NULL, &rng, &st) == D1_ERR_NONFINITE, "NaN reward");
    CHECK(!memcmp(w0, m.param_memory, m.num_params * sizeof(float)) && opt.step == 0, "NaN reward moved weights");
    rw.fn = pattern_reward;
    CHECK(d1_grpo_step(&m, &ref, &opt, &d, prompts, 2, 12, NULL, &rng, &st) == D1_ERR_SHAPE, "12 + 8 > 16");
    lens[1] = 13;
    CHECK(d1_grpo_step(&m, &ref, &opt, &d, prompts, 2, 3, lens, &rng, &st) == D1_ERR_SHAPE, "prompt_len > P");
    /* each mistake: its code, and a message that names it */
#define GRPO_BAD(setup, code, msg)                                                                             \
    do {                                                                                                       \
        setup;                                                                                                 \
        CHECK(d1_grpo_step(&m, &ref, &opt, &d, prompts, 2, 3, NULL, &rng, &st) == (code), #setup);             \
        CHECK(strstr(d1_last_error(), msg) != NULL, "%s: message \"%s\" lacks \"%s\"", #setup, d1_last_error(), \
              msg);                                                                                            \
    } while (0)
    GRPO_BAD(d.group_size = 1, D1_ERR_SETTING, "group_size 1: a group needs >= 2");
    GRPO_BAD((d.group_size = 2, d.inner_steps = 0), D1_ERR_SETTING, "inner_steps (mu) 0");
    d.inner_steps = 1;
    CHECK(d1_grpo_step(&m, NULL, &opt, &d, prompts, 2, 3, NULL, &rng, &st) == D1_ERR_ARG, "beta > 0 without reference");
    CHECK(strstr(d1_last_error(), "needs a reference model") != NULL, "message: %s", d1_last_error());
    GRPO_BAD(d.n_rewards = 0, D1_ERR_ARG, "n_rewards 0: need 1..8");
    GRPO_BAD((d.n_rewards = 1, d.sampler.block_len = 3), D1_ERR_SETTING, "block_len 3 does not divide gen_len 8");
    GRPO_BAD((d.sampler.block_len = 8, d.clip_eps = -1.0f), D1_ERR_SETTING, "clip_eps -1");
    GRPO_BAD((d.clip_eps = 0.5f, d.estimator = D1_LOGP_ELBO, d.objective = D1_GRPO_WD1), D1_ERR_SETTING,
             "D1_LOGP_ELBO goes with objective D1_GRPO_CLIPPED");
    GRPO_BAD((d.estimator = D1_LOGP_ONE_STEP, d.objective = D1_GRPO_CLIPPED, d.beta = NAN), D1_ERR_SETTING,
             "beta nan");
    GRPO_BAD((d.beta = 0.04f, d.group_masks = 2), D1_ERR_SETTING, "group_masks 2: must be 0");
    d.group_masks = 0;
    GRPO_BAD(d.dual_clip = 1.0f, D1_ERR_SETTING, "dual_clip 1 with objective 0: 0 (off), or c > 1");
    GRPO_BAD(d.dual_clip = NAN, D1_ERR_SETTING, "dual_clip nan");
    GRPO_BAD((d.dual_clip = 3.0f, d.objective = D1_GRPO_WD1), D1_ERR_SETTING, "dual_clip 3 with objective 1");
    d.dual_clip = 0.0f; d.objective = D1_GRPO_CLIPPED;
#undef GRPO_BAD
    d.n_rewards = 1;
    CHECK(!memcmp(w0, m.param_memory, m.num_params * sizeof(float)), "a refused call moved weights");
    /* every advantage 0 and beta 0 (and no weight decay): no weight moves */
    rw.fn = zero_reward; d.beta = 0.0f; d.inner_steps = 2;
    CHECK(d1_grpo_step(&m, NULL, &opt, &d, prompts, 2, 3, NULL, &rng, &st) == D1_OK, "constant reward");
    CHECK(st.zero_std_frac == 1.0f, "all groups equal: %g", st.zero_std_frac);
    CHECK(!memcmp(w0, m.param_memory, m.num_params * sizeof(float)), "A = 0, beta = 0 moved the weights");
    /* SFT: the prompt is never masked, an empty answer is refused */
    {
        uint8_t mask[2 * 16];
        float p[2] = {0.5f, 0.5f};
        int pl[2] = {4, 16};
        memset(mask, 0, sizeof mask);
        CHECK(d1_sft_loss(&m, tok, 2, 16, pl, NULL, NULL, &rng, &loss) == D1_ERR_SHAPE, "empty answer");
        pl[1] = 4; mask[2] = 1;
        CHECK(d1_sft_loss(&m, tok, 2, 16, pl, mask, p, NULL, &loss) == D1_ERR_ARG, "a masked prompt position");
        CHECK(d1_sft_loss(&m, tok, 2, 16, NULL, NULL, NULL, &rng, &loss) == D1_ERR_ARG, "no prompt lengths");
    }
    free(w0);
    d1_adamw_free(&opt);
    d1_model_free(&m);
    d1_model_free(&ref);
}

static void test_sft_masks_answer_only(void) {
    d1_rng r;
    uint8_t keep[4 * 10], mask[4 * 10];
    float p[4];
    int b, i, masked_answer = 0;
    d1_rng_seed(&r, 3);
    for (b = 0; b < 4; b++)
        for (i = 0; i < 10; i++) keep[b * 10 + i] = (uint8_t)(i < 3 + b);
    for (i = 0; i < 200; i++) {
        int k;
        d1_noise_draw(&r, 4, 10, 1e-3f, keep, p, mask);
        for (k = 0; k < 40; k++) {
            CHECK(!(keep[k] && mask[k]), "a prompt position masked");
            masked_answer += mask[k];
        }
    }
    CHECK(masked_answer > 0, "no answer position ever masked");
}

int main(void) {
    TH_BANNER();
    if (!ref_load(&core, D1_TEST_DATA "/ref_core.bin") || !ref_load(&rec, D1_TEST_DATA "/ref_recipe.bin")) {
        printf("FAIL cannot read the reference dumps in %s\n0 passed, 1 failed\n", D1_TEST_DATA);
        return 1;
    }
    RUN(test_reference_sft);
    RUN(test_reference_grpo);
    RUN(test_reference_grpo_kl);
    RUN(test_reference_grpo_dual);
    RUN(test_prompt_mask_padding);
    RUN(test_reference_wd1);
    RUN(test_reference_espo);
    RUN(test_elbo_masks);
    RUN(test_reference_d2);
    RUN(test_trajectory_canvas);
    RUN(test_reference_spg);
    RUN(test_block_masks);
    RUN(test_group_masks);
    RUN(test_group_masks_cancel);
    RUN(test_dual_clip_step);
    RUN(test_invariants);
    RUN(test_sft_masks_answer_only);
    RUN(test_bad_input);
    RUN(test_rollouts_told_and_returned);
    RUN(test_default_descs);
    RUN(test_grpo_padding_is_hidden);
    RUN(test_bandit_learning);
    RUN(test_other_estimators);
    ref_free(&core);
    ref_free(&rec);
    return th_summary();
}
