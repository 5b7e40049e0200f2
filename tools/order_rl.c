/* order_rl.c - an experiment beside the d1 demo: diffu-GRPO whose policy
   includes the ORDER in which the sampler reveals tokens, scored with that
   order's exact likelihood. Not a d1.h estimator (yet): it is built on d1.h's
   public API (d1_model_forward / d1_model_backward, AdamW) and the demo's
   Sudoku task, to find out whether crediting the order teaches.

   Why. Greedy decoding (the table's protocol: temperature 0, the most
   confident masked positions first) depends on the order of reveals as much
   as on the tokens (examples/DEMO.md: the decoding block moves the score more
   than any RL setting). Every estimator in d1.h scores the tokens only; the
   rollouts' order is either fixed by the model's confidences (little spread
   in a group) or random (unlike the decoding it is evaluated with).

   The policy. The canvas is prompt ⊕ L masks, one block, S steps revealing
   k_s tokens each (LLaDA's schedule). At step s, for every masked position i
   of the canvas x_s, the model's distribution p_i = softmax(logits_i) (the
   mask token excluded) gives the confidence key
       a_i = log max_v p_i(v)                  (the greedy decoder's confidence)
   k_s positions are drawn without replacement with probability
   proportional to exp(a_i / tau) (Plackett-Luce; sampled by Gumbel-top-k),
   and the token of each is drawn from softmax(logits_i / temp). At tau -> 0
   and temp -> 0 this is exactly d1.h's greedy low_confidence decoding
   (`--selftest` checks it), so what RL teaches this policy reaches the
   evaluation's decoding. The log-likelihood of step s, with the chosen
   positions c_1..c_k in their Gumbel order and R_j = M_s minus c_1..c_{j-1}:
       l_s = sum_j [ a_{c_j} / tau - log sum_{i in R_j} exp(a_i / tau) ]
           + sum_j log softmax(logits_{c_j} / temp)[x_{c_j}]
   and its gradient w.r.t. the logits (v* = argmax_v p_i(v), q = the
   temperature-temp softmax; the mask token gets none):
       dl_s/dlogits_i(v) = (dl_s/da_i) (1{v = v*_i} - p_i(v))
                         + sum_j 1{i = c_j} (1{v = x_i} - q_i(v)) / temp
       dl_s/da_i = (1/tau) (sum_j 1{i = c_j} - sum_j 1{i in R_j} exp(a_i/tau) / Z_j)
   The trajectory's log-likelihood is sum_s l_s, each l_s scored on the
   canvas x_s the sampler really saw.

   The update. G rollouts per prompt, advantages A = r - mean of the group.
   The rollout's forward passes give l_s under the old policy for free. Each
   of mu inner iterations scores `msteps` steps of every row (a random
   permutation of the S steps per row, consumed in order, so an iteration
   scores different steps), with PPO's clipped ratio rho = exp(l_s - l_s,old)
   per (row, step) and dual-clip c for A < 0:
       loss = -1/(R msteps) sum_{r,s} max(min(rho A, clip(rho, 1-eps, 1+eps) A), c A if A < 0)
   No KL term. AdamW (0.9, 0.99), clip 0.2, weight decay 0, constant lr.

     build/order_rl --selftest
     build/order_rl --from examples/checkpoints/sudoku/base --out build/order-base --iters 200
     build/order_rl --from DIR --eval-only --out DIR2      (greedy + sampled scores)

   Build: make build/order_rl */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic ignored "-Wunused-function" /* the pipeline's stages, not run here */
#endif
#define D1_DEMO_NO_MAIN
#include <limits.h>
#include "../examples/d1_demo.c"

enum { OR_MAXL = 128, OR_MAXV = 64 };

typedef struct orl {
    const char *from, *out;
    int iters, inner, msteps, prompts, group, eval_n, eval_only, selftest, monitor_every;
    float tau, temp, lr, eps, dual;
    uint64_t seed;
} orl;

/* log softmax(l * inv_t) over the tokens other than `mask` into lp[V] (lp[mask]
   = -inf); returns the argmax (the first of equal maxima). */
static int or_log_softmax(const float *l, int V, int mask, double inv_t, double *lp) {
    int v, best = -1;
    double mx = -INFINITY, s = 0.0;
    for (v = 0; v < V; v++)
        if (v != mask && l[v] * inv_t > mx) { mx = l[v] * inv_t; best = v; }
    for (v = 0; v < V; v++)
        if (v != mask) s += exp(l[v] * inv_t - mx);
    s = mx + log(s);
    for (v = 0; v < V; v++) lp[v] = v == mask ? -INFINITY : l[v] * inv_t - s;
    return best;
}

static double or_gumbel(d1_rng *rng) {
    double u = d1_rng_uniform_double(rng);
    if (u < 1e-300) u = 1e-300;
    return -log(-log(u));
}

/* l_s of one row (formula above) from its logits [T, V] at canvas x_s; rev[L]
   the step at which each completion position was revealed (INT_MAX: not
   yet), pos[k] the positions step s revealed, in order; x the row's canvas
   (its completion tokens at P..). With g != 0 adds g dl_s/dlogits into dl
   [T, V]. */
static double or_step_loglik(const float *logits, const int *x, const int *rev, const int *pos, int k, int s, int P,
                             int L, int V, int mask, double tau, double temp, double g, float *dl) {
    static double lp[OR_MAXL][OR_MAXV];
    double a[OR_MAXL], coef[OR_MAXL], ll = 0.0, q[OR_MAXV];
    int vstar[OR_MAXL], M[OR_MAXL], nM = 0, i, j, v, n;
    unsigned char gone[OR_MAXL];
    for (i = 0; i < L; i++) {
        gone[i] = 0; coef[i] = 0.0;
        if (rev[i] < s) continue;
        M[nM++] = i;
        vstar[i] = or_log_softmax(logits + (size_t)(P + i) * V, V, mask, 1.0, lp[i]);
        a[i] = lp[i][vstar[i]];
    }
    for (j = 0; j < k; j++) { /* Plackett-Luce over the positions still masked */
        double mx = -INFINITY, z = 0.0, lse;
        int c = pos[j];
        for (n = 0; n < nM; n++)
            if (!gone[M[n]] && a[M[n]] / tau > mx) mx = a[M[n]] / tau;
        for (n = 0; n < nM; n++)
            if (!gone[M[n]]) z += exp(a[M[n]] / tau - mx);
        lse = mx + log(z);
        ll += a[c] / tau - lse;
        coef[c] += 1.0 / tau;
        for (n = 0; n < nM; n++)
            if (!gone[M[n]]) coef[M[n]] -= exp(a[M[n]] / tau - lse) / tau;
        gone[c] = 1;
    }
    for (j = 0; j < k; j++) { /* the tokens, at the sampling temperature */
        int c = pos[j], xt = x[P + c];
        or_log_softmax(logits + (size_t)(P + c) * V, V, mask, 1.0 / temp, q);
        ll += q[xt];
        if (g != 0.0)
            for (v = 0; v < V; v++)
                if (v != mask) dl[(size_t)(P + c) * V + v] += (float)(g / temp * ((v == xt) - exp(q[v])));
    }
    if (g != 0.0)
        for (n = 0; n < nM; n++) {
            i = M[n];
            for (v = 0; v < V; v++)
                if (v != mask) dl[(size_t)(P + i) * V + v] += (float)(g * coef[i] * ((v == vstar[i]) - exp(lp[i][v])));
        }
    return ll;
}

/* R rows of prompts [R, P] -> canvas [R, P + L]; rev [R, L] the step of each
   reveal; pos [R, L] the positions in the order revealed (step s: entries
   ks..ks+k_s); lold [R, S] (may be NULL) each step's l_s under this model.
   tau 0: the k most confident; temp 0: argmax tokens. */
static int or_rollout(d1_model *m, const orl *o, const int *prompts, int R, int P, int L, int S, d1_rng *rng,
                      int *canvas, int *rev, int *pos, double *lold) {
    int T = P + L, V = m->config.vocab_size, mask = m->config.mask_id, r, s, i, j, ks = 0, rc;
    double lp[OR_MAXV], key[OR_MAXL];
    for (r = 0; r < R; r++) {
        memcpy(canvas + (size_t)r * T, prompts + (size_t)r * P, sizeof(int) * P);
        for (i = 0; i < L; i++) { canvas[(size_t)r * T + P + i] = mask; rev[(size_t)r * L + i] = INT_MAX; }
    }
    for (s = 0; s < S; s++) {
        int k = d1_sampler_transfer_count(L, S, s);
        if ((rc = d1_model_forward(m, canvas, R, T, NULL)) != D1_OK) return rc;
        for (r = 0; r < R; r++) {
            const float *lg = m->logits + (size_t)r * T * V;
            int *x = canvas + (size_t)r * T, *rv = rev + (size_t)r * L, *ps = pos + (size_t)r * L + ks;
            for (i = 0; i < L; i++) {
                if (rv[i] != INT_MAX) { key[i] = -INFINITY; continue; }
                key[i] = lp[or_log_softmax(lg + (size_t)(P + i) * V, V, mask, 1.0, lp)];
                if (o->tau > 0.0f) key[i] = key[i] / o->tau + or_gumbel(rng);
            }
            for (j = 0; j < k; j++) { /* the k largest keys, largest first (the Gumbel-top-k order) */
                int best = -1, c, v, xt = -1;
                double bx = -INFINITY;
                for (i = 0; i < L; i++)
                    if (rv[i] == INT_MAX && (best < 0 || key[i] > key[best])) best = i;
                c = best;
                if (o->temp > 0.0f) {
                    const float *li = lg + (size_t)(P + c) * V;
                    for (v = 0; v < V; v++)
                        if (v != mask) {
                            double y = li[v] / o->temp + or_gumbel(rng);
                            if (y > bx) { bx = y; xt = v; }
                        }
                } else
                    xt = or_log_softmax(lg + (size_t)(P + c) * V, V, mask, 1.0, lp); /* its argmax */
                x[P + c] = xt; rv[c] = s; ps[j] = c;
            }
            if (lold) lold[(size_t)r * S + s] = or_step_loglik(lg, x, rv, ps, k, s, P, L, V, mask, o->tau, o->temp,
                                                               0.0, NULL);
        }
        ks += k;
    }
    return D1_OK;
}

static float or_reward(const task *t, const int *row, int P, int L) {
    int len, eos = task_token(t, "<eos>");
    char p[64], c[512];
    for (len = 0; len < L && row[P + len] != eos; len++) {}
    tok_decode(t, row, P, p, sizeof p);
    tok_decode(t, row + P, len, c, sizeof c);
    return t->reward_text(p, c);
}

/* Sampled as the policy samples: G per held-out prompt; mean ± se (a
   prompt's group mean one draw), best-of-G. */
static int or_sampled_score(d1_model *m, const orl *o, const task *t, const int *prompts, int n, double *mean,
                            double *se, double *best) {
    enum { CH = 16 };
    int P = t->prompt_len, L = t->gen_lens[0], S = L / 2, G = o->group, R = CH * G, i, b, g, rc = D1_OK;
    int *rp = (int *)malloc(sizeof(int) * R * P), *cv = (int *)malloc(sizeof(int) * R * (P + L));
    int *rev = (int *)malloc(sizeof(int) * R * L), *pos = (int *)malloc(sizeof(int) * R * L);
    double s = 0, s2 = 0, bs = 0;
    d1_rng rng;
    d1_rng_seed(&rng, 4242);
    for (i = 0; i < n && rc == D1_OK; i += CH) {
        int B = n - i < CH ? n - i : CH;
        for (b = 0; b < B * G; b++) memcpy(rp + (size_t)b * P, prompts + (size_t)(i + b / G) * P, sizeof(int) * P);
        rc = or_rollout(m, o, rp, B * G, P, L, S, &rng, cv, rev, pos, NULL);
        for (b = 0; b < B && rc == D1_OK; b++) {
            double gm = 0, gb = 0;
            for (g = 0; g < G; g++) {
                double r = or_reward(t, cv + (size_t)(b * G + g) * (P + L), P, L);
                gm += r / G; if (r > gb) gb = r;
            }
            s += gm; s2 += gm * gm; bs += gb;
        }
    }
    *mean = s / n; *se = std_error(s, s2, n); *best = bs / n;
    free(rp); free(cv); free(rev); free(pos);
    return rc;
}

/* --selftest: (1) tau 0, temp 0 decodes as d1.h's greedy sampler; (2) the
   gradient of l_s against central differences of the logits. */
static int or_selftest(const settings *S, const orl *o0) {
    const task *t = S->t;
    int P = t->prompt_len, L = t->gen_lens[0], T = P + L, n = 48, i, bad = 0, rc;
    int *pr = (int *)malloc(sizeof(int) * n * P), *a = (int *)malloc(sizeof(int) * n * T);
    int *b = (int *)malloc(sizeof(int) * n * T), *rev = (int *)malloc(sizeof(int) * n * L);
    int *pos = (int *)malloc(sizeof(int) * n * L);
    d1_model m;
    d1_sampler_desc sd = d1_sampler_default_desc(L);
    d1_rng rng;
    orl o = *o0;
    char src[512];
    snprintf(src, sizeof src, "%s", o.from);
    if (check(d1_model_load(&m, src), src) != D1_OK) return 1;
    heldout_prompts(t, n, 777, SPLIT_TEST, pr);
    sd.steps = L / 2;
    d1_rng_seed(&rng, 0);
    o.tau = 0.0f; o.temp = 0.0f;
    rc = d1_sampler_generate(&m, &sd, pr, n, P, NULL, &rng, a, NULL);
    if (rc == D1_OK) rc = or_rollout(&m, &o, pr, n, P, L, L / 2, &rng, b, rev, pos, NULL);
    for (i = 0; i < n * T; i++) bad += a[i] != b[i];
    printf("selftest: greedy, %d rows: %d tokens differ from d1_sampler_generate (rc %d)\n", n, bad, rc);
    { /* gradient check on row 0 of a sampled rollout at tau 0.5, temp 0.9, step 5 */
        int V = m.config.vocab_size, mask = m.config.mask_id, s = 5, k = 2, ks = 10, v, j, worst_i = 0;
        double worst = 0.0, h = 1e-3;
        float *lg = (float *)malloc(sizeof(float) * T * V), *dl = (float *)calloc((size_t)T * V, sizeof(float));
        int *xm = (int *)malloc(sizeof(int) * T);
        o.tau = 0.5f; o.temp = 0.9f;
        rc = or_rollout(&m, &o, pr, 1, P, L, L / 2, &rng, b, rev, pos, NULL);
        for (j = 0; j < T; j++) xm[j] = j >= P && rev[j - P] >= s ? mask : b[j];
        d1_model_forward(&m, xm, 1, T, NULL);
        memcpy(lg, m.logits, sizeof(float) * T * V);
        or_step_loglik(lg, b, rev, pos + ks, k, s, P, L, V, mask, o.tau, o.temp, 1.0, dl);
        for (j = P; j < T; j++)
            for (v = 0; v < V; v++) {
                float keep = lg[(size_t)j * V + v];
                double up, dn, fd, e;
                if (v == mask) continue;
                lg[(size_t)j * V + v] = keep + (float)h;
                up = or_step_loglik(lg, b, rev, pos + ks, k, s, P, L, V, mask, o.tau, o.temp, 0.0, NULL);
                lg[(size_t)j * V + v] = keep - (float)h;
                dn = or_step_loglik(lg, b, rev, pos + ks, k, s, P, L, V, mask, o.tau, o.temp, 0.0, NULL);
                lg[(size_t)j * V + v] = keep;
                fd = (up - dn) / (2 * h);
                e = fabs(fd - dl[(size_t)j * V + v]);
                if (e > worst) { worst = e; worst_i = j * V + v; }
            }
        printf("selftest: dl_s/dlogits vs central differences: max abs error %.2e (at %d; analytic %.4f)\n", worst,
               worst_i, dl[worst_i]);
        bad += worst > 1e-3;
        free(lg); free(dl); free(xm);
    }
    free(pr); free(a); free(b); free(rev); free(pos);
    d1_model_free(&m);
    return bad != 0 || rc != D1_OK;
}

static int or_eval(const settings *S, const orl *o, d1_model *m, FILE *f, const char *label) {
    const task *t = S->t;
    int P = t->prompt_len, n = o->eval_n, *pr = (int *)malloc(sizeof(int) * n * P), rc;
    score sc;
    double mean, se, best, t0 = now_s();
    n = heldout_prompts(t, n, 2024, SPLIT_TEST, pr);
    rc = evaluate(m, S, t->gen_lens[0], pr, n, 0, &sc);
    if (rc == D1_OK) rc = or_sampled_score(m, o, t, pr, n, &mean, &se, &best);
    if (rc == D1_OK)
        fprintf(f, "%s: held-out %d, greedy (table protocol) %.1f ± %.1f cells / %.1f solved; sampled tau %.2f temp "
                   "%.2f G %d: mean %.3f ± %.3f, best-of-G %.3f (%.0f s)\n",
                label, n, 100 * sc.mean, 100 * sc.se, 100 * sc.exact, o->tau, o->temp, o->group, mean, se, best,
                now_s() - t0);
    fflush(f);
    free(pr);
    return rc;
}

static int or_train(const settings *S, const orl *o) {
    const task *t = S->t;
    int P = t->prompt_len, L = t->gen_lens[0], T = P + L, Sn = L / 2, G = o->group, R = o->prompts * G;
    int V, mask, it, i, r, j, q, rc = D1_OK, U = R * o->msteps;
    int *prompts = (int *)malloc(sizeof(int) * o->prompts * P), *rp = (int *)malloc(sizeof(int) * R * P);
    int *cv = (int *)malloc(sizeof(int) * R * T), *rev = (int *)malloc(sizeof(int) * R * L);
    int *pos = (int *)malloc(sizeof(int) * R * L), *perm = (int *)malloc(sizeof(int) * R * Sn);
    int *in = (int *)malloc(sizeof(int) * U * T), *ur = (int *)malloc(sizeof(int) * U), *us = (int *)malloc(sizeof(int) * U);
    int *ks = (int *)malloc(sizeof(int) * (Sn + 1)), *heldout = (int *)malloc(sizeof(int) * S->monitor_n * P);
    double *lold = (double *)malloc(sizeof(double) * R * Sn);
    float *rew = (float *)malloc(sizeof(float) * R), *adv = (float *)malloc(sizeof(float) * R), *dl;
    char ckpt[480], fin[480], csvp[480], resp[480];
    d1_model policy;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_rng rngs[2];
    FILE *csv, *res;
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", o->out); snprintf(fin, sizeof fin, "%s/final", o->out);
    snprintf(csvp, sizeof csvp, "%s/order_rl.csv", o->out); snprintf(resp, sizeof resp, "%s/results.txt", o->out);
    mkdirs(o->out);
    od.lr = o->lr; od.beta1 = 0.9f; od.beta2 = 0.99f; od.weight_decay = 0.0f; od.grad_clip = 0.2f;
    if (resume_from(ckpt, &policy, &opt, &od, rngs)) {
        fprintf(stderr, "order_rl: resuming at iteration %d\n", (int)(opt.step / o->inner));
    } else {
        if (check(d1_model_load(&policy, o->from), o->from) != D1_OK) return 1;
        d1_adamw_init(&opt, &policy, &od);
        d1_rng_seed(&rngs[0], o->seed * 1000 + 30);
        d1_rng_seed(&rngs[1], o->seed * 1000 + 40);
    }
    if (place_in(S, &policy, D1_PRECISION_BF16_MIXED) != D1_OK) return 1;
    V = policy.config.vocab_size; mask = policy.config.mask_id;
    dl = (float *)malloc(sizeof(float) * (size_t)U * T * V);
    for (ks[0] = 0, j = 0; j < Sn; j++) ks[j + 1] = ks[j] + d1_sampler_transfer_count(L, Sn, j);
    heldout_prompts(t, S->monitor_n, 777, SPLIT_TEST, heldout);
    it = (int)(opt.step / o->inner);
    csv = csv_open(csvp, "step,reward,spread_frac,ratio_dev,clip_frac,grad_norm,t_generate,t_update,heldout", it);
    res = fopen(resp, "a");
    if (it == 0) {
        score sc;
        evaluate(&policy, S, L, heldout, S->monitor_n, 0, &sc);
        fprintf(csv, "0,,,,,,,,%.4f\n", sc.mean);
    }
    while (it < o->iters && rc == D1_OK) {
        double t0 = now_s(), t1, rm = 0, dev = 0, clipped = 0, gn_max = 0;
        int spread = 0, n_units;
        for (i = 0; i < o->prompts; i++) {
            example ex;
            t->example(&rngs[0], SPLIT_TRAIN, &ex);
            encode_prompt(t, ex.prompt, prompts + (size_t)i * P);
        }
        for (r = 0; r < R; r++) memcpy(rp + (size_t)r * P, prompts + (size_t)(r / G) * P, sizeof(int) * P);
        if ((rc = or_rollout(&policy, o, rp, R, P, L, Sn, &rngs[1], cv, rev, pos, lold)) != D1_OK) break;
        t1 = now_s();
        for (r = 0; r < R; r++) { rew[r] = or_reward(t, cv + (size_t)r * T, P, L); rm += rew[r] / R; }
        for (r = 0; r < R; r += G) { /* A = r - the group's mean */
            double gm = 0;
            int any = 0;
            for (j = 0; j < G; j++) gm += rew[r + j] / G;
            for (j = 0; j < G; j++) { adv[r + j] = (float)(rew[r + j] - gm); any |= fabsf(adv[r + j]) > 1e-6f; }
            spread += any;
        }
        for (r = 0; r < R; r++) { /* each row's steps in a random order, consumed msteps per inner iteration */
            int *pm = perm + (size_t)r * Sn;
            for (j = 0; j < Sn; j++) pm[j] = j;
            for (j = Sn - 1; j > 0; j--) {
                int u = (int)(d1_rng_u64(&rngs[1]) % (uint64_t)(j + 1)), tmp = pm[j];
                pm[j] = pm[u]; pm[u] = tmp;
            }
        }
        for (q = 0; q < o->inner && rc == D1_OK; q++) {
            float gn;
            n_units = 0;
            for (r = 0; r < R; r++) {
                if (fabsf(adv[r]) <= 1e-6f) continue; /* no gradient: skip the pass */
                for (j = 0; j < o->msteps; j++) {
                    int s = perm[(size_t)r * Sn + (q * o->msteps + j) % Sn], *row = in + (size_t)n_units * T;
                    memcpy(row, cv + (size_t)r * T, sizeof(int) * T);
                    for (i = 0; i < L; i++)
                        if (rev[(size_t)r * L + i] >= s) row[P + i] = mask;
                    ur[n_units] = r; us[n_units] = s; n_units++;
                }
            }
            if (n_units == 0) break;
            if ((rc = d1_model_forward(&policy, in, n_units, T, NULL)) != D1_OK) break;
            memset(dl, 0, sizeof(float) * (size_t)n_units * T * V);
            for (j = 0; j < n_units; j++) {
                int rr = ur[j], s = us[j];
                const float *lg = policy.logits + (size_t)j * T * V;
                double ll = or_step_loglik(lg, cv + (size_t)rr * T, rev + (size_t)rr * L, pos + (size_t)rr * L + ks[s],
                                           ks[s + 1] - ks[s], s, P, L, V, mask, o->tau, o->temp, 0.0, NULL);
                double rho = exp(ll - lold[(size_t)rr * Sn + s]), A = adv[rr], g = 0.0;
                int flows = A > 0 ? rho < 1.0 + o->eps : rho > 1.0 - o->eps && !(o->dual > 0 && rho > o->dual);
                dev += fabs(ll - lold[(size_t)rr * Sn + s]);
                clipped += !flows;
                if (flows) g = A * rho / U; /* d(-loss)/dl_s */
                /* the loss is minimised: dlogits = -g dl_s/dlogits */
                if (g != 0.0)
                    or_step_loglik(lg, cv + (size_t)rr * T, rev + (size_t)rr * L, pos + (size_t)rr * L + ks[s],
                                   ks[s + 1] - ks[s], s, P, L, V, mask, o->tau, o->temp, -g, dl + (size_t)j * T * V);
            }
            d1_model_zero_grad(&policy);
            if ((rc = d1_model_backward(&policy, dl)) != D1_OK) break;
            if ((rc = check(d1_adamw_step(&opt, &policy, &gn), "adamw")) != D1_OK) break;
            if (gn > gn_max) gn_max = gn;
        }
        if (rc != D1_OK) break;
        it++;
        n_units = 0;
        for (r = 0; r < R; r++) n_units += fabsf(adv[r]) > 1e-6f;
        n_units *= o->msteps * o->inner;
        fprintf(csv, "%d,%.4f,%.3f,%.4f,%.4f,%.4f,%.2f,%.2f,", it, rm, (double)spread / o->prompts,
                n_units ? dev / n_units : 0.0, n_units ? clipped / n_units : 0.0, gn_max, t1 - t0, now_s() - t1);
        if (it % o->monitor_every == 0 || it == o->iters) {
            score sc;
            evaluate(&policy, S, L, heldout, S->monitor_n, 0, &sc);
            fprintf(csv, "%.4f", sc.mean);
        }
        fprintf(csv, "\n");
        fflush(csv);
        if (it % 10 == 0 && (rc = check(d1_checkpoint_save(ckpt, &policy, D1_DTYPE_F32, &opt, rngs, 2, NULL), ckpt)) !=
                               D1_OK)
            break;
        fprintf(stderr, "\rorder_rl: iteration %d/%d reward %.3f (%.1f s)   ", it, o->iters, rm, now_s() - t0);
    }
    fclose(csv);
    if (rc == D1_OK) {
        char label[64];
        fprintf(stderr, "\n");
        rc = save_model(t, &policy, fin, D1_DTYPE_F32);
        snprintf(label, sizeof label, "after %d iterations", it);
        if (rc == D1_OK) rc = or_eval(S, o, &policy, res, label);
    }
    fclose(res);
    d1_adamw_free(&opt);
    d1_model_free(&policy);
    free(prompts); free(rp); free(cv); free(rev); free(pos); free(perm); free(in); free(ur); free(us); free(ks);
    free(heldout); free(lold); free(rew); free(adv); free(dl);
    return rc != D1_OK;
}

int main(int argc, char **argv) {
    orl o;
    settings S;
    int i;
    memset(&o, 0, sizeof o);
    o.from = "examples/checkpoints/sudoku/base"; o.out = "build/order-rl";
    o.iters = 200; o.inner = 4; o.msteps = 2; o.prompts = 16; o.group = 6; o.eval_n = 500; o.monitor_every = 10;
    o.tau = 0.3f; o.temp = 0.9f; o.lr = 3e-4f; o.eps = 0.2f; o.dual = 3.0f; o.seed = 1;
    demo_prog = "order_rl";
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--selftest")) { o.selftest = 1; continue; }
        if (!strcmp(a, "--eval-only")) { o.eval_only = 1; continue; }
        if (!v) { fprintf(stderr, "order_rl: %s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "--from")) o.from = v;
        else if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--iters")) o.iters = atoi(v);
        else if (!strcmp(a, "--inner")) o.inner = atoi(v);
        else if (!strcmp(a, "--msteps")) o.msteps = atoi(v);
        else if (!strcmp(a, "--prompts")) o.prompts = atoi(v);
        else if (!strcmp(a, "--group")) o.group = atoi(v);
        else if (!strcmp(a, "--eval-n")) o.eval_n = atoi(v);
        else if (!strcmp(a, "--tau")) o.tau = (float)atof(v);
        else if (!strcmp(a, "--temp")) o.temp = (float)atof(v);
        else if (!strcmp(a, "--lr")) o.lr = (float)atof(v);
        else if (!strcmp(a, "--eps")) o.eps = (float)atof(v);
        else if (!strcmp(a, "--dual")) o.dual = (float)atof(v);
        else if (!strcmp(a, "--seed")) o.seed = (uint64_t)atoll(v);
        else { fprintf(stderr, "order_rl: unknown option %s\n", a); return 2; }
    }
    if (!task_tokenizers_init()) { fprintf(stderr, "order_rl: the tasks' tokenizers: %s\n", d1_last_error()); return 1; }
    S = settings_default(task_find("sudoku"), 0);
    S.bf16 = d1_bf16_simd_available();
    if (o.selftest) return or_selftest(&S, &o);
    if (!(o.tau > 0.0f) || !(o.temp > 0.0f) || o.msteps < 1 || o.inner < 1 || o.group < 2) {
        fprintf(stderr, "order_rl: tau and temp must be > 0, msteps, inner >= 1, group >= 2\n");
        return 2;
    }
    if (o.eval_only) {
        d1_model m;
        FILE *f;
        char path[600];
        mkdirs(o.out);
        snprintf(path, sizeof path, "%s/results.txt", o.out);
        f = fopen(path, "a");
        if (check(d1_model_load(&m, o.from), o.from) != D1_OK || place_in(&S, &m, D1_PRECISION_BF16) != D1_OK) return 1;
        i = or_eval(&S, &o, &m, f, o.from);
        fclose(f);
        d1_model_free(&m);
        return i != D1_OK;
    }
    return or_train(&S, &o);
}
