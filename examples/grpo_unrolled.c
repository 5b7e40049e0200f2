/* grpo_unrolled.c - one diffu-GRPO iteration written out with d1.h's public
   building blocks, in the order d1_grpo_step runs them, for d1's recipe (the
   one-step log-prob estimator, the clipped objective, the KL to a frozen
   reference):

     a. rollouts    d1_sampler_generate: G completions of each prompt
     b. rewards     each rollout's weighted reward; the tokens it is scored on
                    run up to and including its first EOS
     c. advantages  A_i = r_i - mean of its group (d1: no std scaling)
     d. masks       for each of the mu inner updates, one mask shared by the
                    old, reference and current policy: the prompt's tokens
                    masked at p_mask_prompt, the whole completion masked
     e. log-probs   d1_grpo_logprobs, no gradient: the old policy's for
                    updates 1..mu-1 (at update 0 it is the policy itself),
                    and the reference's when beta > 0
     f. updates     mu times: d1_model_zero_grad, d1_grpo_loss (its
                    gradient into the model's), d1_adamw_step

   grpo_iteration() below leaves the weights, the optimizer and the RNG
   exactly as d1_grpo_step does (tests/test_examples.c checks it bit for
   bit); main() runs both on one model and says so. make grpo-unrolled. */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One iteration for prompts [n_prompts, P] (no padding). D1_OK or the first error. */
static int grpo_iteration(d1_model *policy, d1_model *ref, d1_adamw *opt, const d1_grpo_desc *d,
                          const int *prompts, int n_prompts, int P, d1_rng *rng) {
    int G = d->group_size, R = n_prompts * G, Lc = d->sampler.gen_len, T = P + Lc, mu = d->inner_steps;
    size_t RT = (size_t)R * T, RL = (size_t)R * Lc;
    int *rp = (int *)malloc(sizeof(int) * ((size_t)R * P + RT)), *canvas = rp + (size_t)R * P;
    float *reward = (float *)malloc(sizeof(float) * (2 * R + 2 * mu * RL)), *adv = reward + R;
    float *old_lp = adv + R, *ref_lp = old_lp + mu * RL;
    uint8_t *done = (uint8_t *)malloc(RL + mu * (RT + RL)), *input = done + RL, *score = input + mu * RT;
    double scored = 0.0;
    int r, i, j, it, rc = rp && reward && done ? D1_OK : D1_ERR_NOMEM;

    /* a. rollouts: prompt g is rows g*G .. g*G + G-1 */
    for (r = 0; r < R && rc == D1_OK; r++) memcpy(rp + (size_t)r * P, prompts + (size_t)(r / G) * P, sizeof(int) * P);
    if (rc == D1_OK) rc = d1_sampler_generate(policy, &d->sampler, rp, R, P, NULL, rng, canvas, NULL);

    /* b. rewards, and the completion mask: tokens up to and including the first EOS */
    for (r = 0; r < R && rc == D1_OK; r++) {
        d1_rollout ro;
        ro.prompt = canvas + (size_t)r * T; ro.prompt_len = P;
        ro.completion = ro.prompt + P; ro.prompt_index = r / G; ro.member = r % G;
        for (ro.completion_len = 0; ro.completion_len < Lc; ro.completion_len++)
            if (ro.completion[ro.completion_len] == policy->config.eos_id) break;
        for (i = 0; i < Lc; i++) done[(size_t)r * Lc + i] = (uint8_t)(i <= ro.completion_len);
        reward[r] = 0.0f;
        for (j = 0; j < d->n_rewards; j++) reward[r] += d->rewards[j].weight * d->rewards[j].fn(&ro, d->rewards[j].user);
    }

    /* c. group advantages */
    for (r = 0; r < R && rc == D1_OK; r += G) {
        double mean = 0.0;
        for (i = r; i < r + G; i++) mean += reward[i] / G;
        for (i = r; i < r + G; i++) adv[i] = (float)(reward[i] - mean);
    }

    /* d. the mu masks, drawn in order from the same generator; every
       completion token up to its EOS is scored */
    for (it = 0; it < mu && rc == D1_OK; it++) {
        scored = 0.0;
        for (r = 0; r < R; r++) {
            uint8_t *in = input + it * RT + (size_t)r * T, *sc = score + it * RL + (size_t)r * Lc;
            for (i = 0; i < P; i++) in[i] = (uint8_t)(d1_rng_uniform(rng) < d->p_mask_prompt);
            for (i = 0; i < Lc; i++) {
                in[P + i] = 1;
                scored += sc[i] = done[(size_t)r * Lc + i];
            }
        }
    }

    /* e. and f.: the batch of update `it`, its no-gradient log-probs, then the updates */
    for (it = 0; it < 2 * mu && rc == D1_OK; it++) {
        int k = it % mu;
        float loss;
        d1_grpo_batch gb;
        memset(&gb, 0, sizeof gb);
        gb.tokens = canvas; gb.B = R; gb.T = T; gb.P = P;
        gb.input_mask = input + k * RT; gb.score_mask = score + k * RL; gb.kl = d->kl;
        if (it < mu) { /* e. */
            if (k > 0) rc = d1_grpo_logprobs(policy, &gb, old_lp + k * RL);
            if (rc == D1_OK && d->beta > 0.0f) rc = d1_grpo_logprobs(ref, &gb, ref_lp + k * RL);
            continue;
        }
        gb.adv = adv; gb.denom = (float)scored; /* f. */
        gb.old_logp = k > 0 ? old_lp + k * RL : NULL;
        gb.ref_logp = d->beta > 0.0f ? ref_lp + k * RL : NULL;
        if ((rc = d1_model_zero_grad(policy)) == D1_OK && scored > 0.0)
            rc = d1_grpo_loss(policy, &gb, d->clip_eps, d->beta, D1_GRPO_CLIPPED, &loss, NULL, NULL);
        if (rc == D1_OK) rc = d1_adamw_step(opt, policy, NULL);
    }
    free(rp); free(reward); free(done);
    return rc;
}

#ifndef GRPO_UNROLLED_NO_MAIN
static float count_threes(const d1_rollout *ro, void *user) {
    int i, n = 0;
    (void)user;
    for (i = 0; i < ro->completion_len; i++) n += ro->completion[i] == 3;
    return (float)n;
}

int main(void) {
    d1_config c = {0};
    d1_model a, b, ref;
    d1_adamw oa, ob;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_grpo_desc d = d1_grpo_default_desc(8);
    d1_reward rw = {"threes", count_threes, 1.0f, NULL};
    d1_rng ra, rb;
    int prompts[2 * 3] = {1, 2, 4, 5, 6, 7}, same;
    c.vocab_size = 10; c.dim = 32; c.n_layers = 2; c.n_heads = 4; c.ffn_dim = 64;
    c.max_seq_len = 11; c.mask_id = 9; c.eos_id = 8; c.pad_id = 8;
    d1_model_init(&a, &c, 1); d1_model_init(&b, &c, 1); d1_model_init(&ref, &c, 1);
    od.lr = 1e-3f;
    d1_adamw_init(&oa, &a, &od); d1_adamw_init(&ob, &b, &od);
    d.rewards = &rw; d.n_rewards = 1; d.inner_steps = 4; d.sampler.temperature = 1.0f;
    d1_rng_seed(&ra, 5); d1_rng_seed(&rb, 5);
    if (d1_grpo_step(&a, &ref, &oa, &d, prompts, 2, 3, NULL, &ra, NULL) != D1_OK ||
        grpo_iteration(&b, &ref, &ob, &d, prompts, 2, 3, &rb) != D1_OK) {
        fprintf(stderr, "grpo: %s\n", d1_last_error());
        return 1;
    }
    same = !memcmp(a.param_memory, b.param_memory, sizeof(float) * a.num_params) && !memcmp(&ra, &rb, sizeof ra) &&
           !memcmp(oa.m, ob.m, sizeof(float) * oa.n) && !memcmp(oa.v, ob.v, sizeof(float) * oa.n);
    printf("one iteration written out vs d1_grpo_step: weights, moments and RNG %s\n",
           same ? "identical, bit for bit" : "DIFFER");
    d1_adamw_free(&oa); d1_adamw_free(&ob);
    d1_model_free(&a); d1_model_free(&b); d1_model_free(&ref);
    return same ? 0 : 1;
}
#endif
