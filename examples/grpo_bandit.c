/* grpo_bandit.c - the smallest whole RL story: diffu-GRPO (d1_grpo_step)
   teaches an untrained masked diffusion model to write "3 3" somewhere in its
   8-token answer, from a reward alone. No data, no SFT: the model starts
   uniform over its 8 ordinary tokens (about 0.15 of its answers hold the pair
   by chance) and learns from the groups in which some answers scored and
   others did not (A = r - mean of the group).

   Each iteration: 4 prompts x G 6 rollouts sampled (LLaDA's remasking,
   temperature 1), scored, turned into advantages; then mu = 4 AdamW updates
   of the clipped objective with d1's one-step log-probs (prompt masked at
   15%, the whole completion masked) and a k3 KL to the frozen start.
   make bandit: the mean reward per iteration, and one rollout per prompt. */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include <stdio.h>
#include <string.h>

enum { V = 10, MASK = 9, EOS = 8, P = 3, GEN = 8, N_PROMPTS = 4, G = 6, ITERS = 30 };

/* 1 when the completion (up to its first EOS) holds a 3 followed by a 3 */
static float pair_of_threes(const d1_rollout *ro, void *user) {
    int i;
    (void)user;
    for (i = 0; i + 1 < ro->completion_len; i++)
        if (ro->completion[i] == 3 && ro->completion[i + 1] == 3) return 1.0f;
    return 0.0f;
}

int main(void) {
    d1_config cfg = {0};
    d1_model policy, ref;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_grpo_desc gd = d1_grpo_default_desc(GEN);
    d1_grpo_stats st;
    d1_reward reward = {"pair of threes", pair_of_threes, 1.0f, NULL};
    d1_rng rng;
    int prompts[N_PROMPTS * P] = {1, 2, 4, 1, 2, 4, 5, 6, 7, 5, 6, 7};
    int rollouts[N_PROMPTS * G * (P + GEN)], it, i, rc;
    float rewards[N_PROMPTS * G * 2];

    cfg.vocab_size = V; cfg.dim = 32; cfg.n_layers = 2; cfg.n_heads = 4; cfg.ffn_dim = 64;
    cfg.max_seq_len = P + GEN; cfg.mask_id = MASK; cfg.eos_id = EOS; cfg.pad_id = EOS;
    if ((rc = d1_model_init(&policy, &cfg, 1)) != D1_OK || (rc = d1_model_init(&ref, &cfg, 1)) != D1_OK) {
        fprintf(stderr, "init: %s\n", d1_last_error());
        return 1;
    }
    /* a zero output head: the untrained policy proposes every token alike */
    memset(policy.params.head, 0, sizeof(float) * V * cfg.dim);
    d1_model_copy_weights(&ref, &policy); /* the KL's frozen reference */
    /* lr: at 3e-3 this run reaches 1.00 at iteration 6, then falls to 0.00 for
       18 iterations: once every group is all-correct the advantages are 0,
       the KL's small gradient is all that is left, and Adam rescales it to
       lr-sized steps. At 1e-3 it reaches 1.00 at iteration 9 and stays
       between 0.67 and 1.00 to iteration 30. */
    od.lr = 1e-3f; od.weight_decay = 0.0f;
    d1_adamw_init(&opt, &policy, &od);

    gd.rewards = &reward; gd.n_rewards = 1;
    gd.group_size = G; gd.inner_steps = 4;
    gd.sampler.block_len = GEN; gd.sampler.steps = GEN; gd.sampler.temperature = 1.0f;
    gd.out_rollouts = rollouts; gd.out_rewards = rewards;
    d1_rng_seed(&rng, 8);

    for (it = 1; it <= ITERS; it++) {
        if ((rc = d1_grpo_step(&policy, &ref, &opt, &gd, prompts, N_PROMPTS, P, NULL, &rng, &st)) != D1_OK) {
            fprintf(stderr, "iteration %d: %s\n", it, d1_last_error());
            return 1;
        }
        printf("iteration %2d  reward %.2f  groups without signal %.2f  kl %.4f\n", it, st.reward_mean,
               st.zero_std_frac, st.kl);
    }
    for (i = 0; i < N_PROMPTS * G; i += G) { /* the first rollout of each prompt, and its reward */
        int k;
        printf("prompt");
        for (k = 0; k < P; k++) printf(" %d", rollouts[i * (P + GEN) + k]);
        printf("  ->");
        for (k = P; k < P + GEN; k++) printf(" %d", rollouts[i * (P + GEN) + k]);
        printf("  reward %.0f\n", rewards[i * 2]);
    }
    d1_adamw_free(&opt);
    d1_model_free(&ref);
    d1_model_free(&policy);
    return 0;
}
