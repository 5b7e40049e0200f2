/* The examples as the library's spec: examples/grpo_unrolled.c writes one
   diffu-GRPO iteration out with the public building blocks; after one and
   after several iterations it must leave the weights, the AdamW moments and
   step, and the RNG exactly as d1_grpo_step leaves them, for d1's settings
   and for the ones the unrolled loop reads (beta 0: no reference passes; mu;
   G; prompt masking; weighted rewards). */
#define GRPO_UNROLLED_NO_MAIN
#include "../examples/grpo_unrolled.c"
#include "../examples/tasks.h"
#include "harness.h"

static float threes(const d1_rollout *ro, void *user) {
    int i, n = 0;
    (void)user;
    for (i = 0; i < ro->completion_len; i++) n += ro->completion[i] == 3;
    return (float)n;
}
static float short_answer(const d1_rollout *ro, void *user) {
    (void)user;
    return ro->completion_len < 5 ? 1.0f : 0.0f;
}

typedef struct variant { const char *name; float beta, p_mask; int mu, G, iters, n_rewards; } variant;

/* 1 when d1_grpo_step and grpo_iteration agree bit for bit after v->iters iterations */
static int agree(const variant *v) {
    d1_config c;
    d1_model a, b, ref;
    d1_adamw oa, ob;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_grpo_desc d = d1_grpo_default_desc(8);
    d1_reward rw[2] = {{"threes", threes, 1.0f, NULL}, {"short", short_answer, 0.5f, NULL}};
    d1_rng ra, rb;
    int prompts[3 * 3] = {1, 2, 4, 5, 6, 7, 3, 3, 1}, i, same, ok = 1;
    memset(&c, 0, sizeof c);
    c.vocab_size = 10; c.dim = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.ffn_dim = 48;
    c.max_seq_len = 11; c.mask_id = 9; c.eos_id = 8; c.pad_id = 8;
    d1_model_init(&a, &c, 3); d1_model_init(&b, &c, 3); d1_model_init(&ref, &c, 4);
    od.lr = 3e-3f;
    d1_adamw_init(&oa, &a, &od); d1_adamw_init(&ob, &b, &od);
    d.rewards = rw; d.n_rewards = v->n_rewards; d.beta = v->beta; d.p_mask_prompt = v->p_mask;
    d.inner_steps = v->mu; d.group_size = v->G; d.sampler.temperature = 1.0f;
    d1_rng_seed(&ra, 11); d1_rng_seed(&rb, 11);
    for (i = 0; i < v->iters && ok; i++)
        ok = d1_grpo_step(&a, &ref, &oa, &d, prompts, 3, 3, NULL, &ra, NULL) == D1_OK &&
             grpo_iteration(&b, &ref, &ob, &d, prompts, 3, 3, &rb) == D1_OK;
    CHECK(ok, "%s: %s", v->name, d1_last_error());
    same = ok && !memcmp(a.param_memory, b.param_memory, sizeof(float) * a.num_params) &&
           !memcmp(oa.m, ob.m, sizeof(float) * oa.n) && !memcmp(oa.v, ob.v, sizeof(float) * oa.n) &&
           oa.step == ob.step && !memcmp(&ra, &rb, sizeof ra);
    d1_adamw_free(&oa); d1_adamw_free(&ob);
    d1_model_free(&a); d1_model_free(&b); d1_model_free(&ref);
    return same;
}

static void test_unrolled_is_grpo_step(void) {
    static const variant vs[] = {
        {"d1's settings, one iteration", 0.04f, 0.15f, 8, 6, 1, 1},
        {"three iterations", 0.04f, 0.15f, 2, 6, 3, 1},
        {"beta 0 (no reference passes)", 0.0f, 0.15f, 3, 4, 2, 1},
        {"prompt masked at 0.5, G 2, two weighted rewards", 0.1f, 0.5f, 2, 2, 2, 2},
    };
    int i;
    for (i = 0; i < (int)(sizeof vs / sizeof vs[0]); i++)
        CHECK(agree(&vs[i]), "%s: the unrolled iteration and d1_grpo_step differ", vs[i].name);
}

/* examples/checkpoints/vocab.txt (what d1 sample --vocab and d1 export-gguf
   --vocab read for the shipped models) is the demo's vocabulary: line i is
   the text tasks.h decodes id i to, one line per id. */
static void test_vocab_file(void) {
    FILE *f = fopen("examples/checkpoints/vocab.txt", "r");
    char line[64], want[64];
    int id = 0;
    CHECK(f != NULL, "examples/checkpoints/vocab.txt (run from the repository root)");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        int got[2], n = tok_encode(line, got, 2);
        tok_decode(&id, 1, want, sizeof want);
        CHECK(id < TOK_VOCAB && !strcmp(line, want) && n == 1 && got[0] == id, "line %d: '%s', tasks.h says '%s'",
              id + 1, line, want);
        id++;
    }
    fclose(f);
    CHECK(id == TOK_VOCAB, "%d lines, the vocabulary has %d tokens", id, TOK_VOCAB);
    (void)task_find;
}

int main(void) {
    TH_BANNER();
    RUN(test_unrolled_is_grpo_step);
    RUN(test_vocab_file);
    return th_summary();
}
