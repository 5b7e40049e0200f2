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

/* Each task's tokenizer (d1_tokenizer_init_chars of its vocabulary) against
   the rule it stands for, written out here on its own: a tag is its id (after
   the characters), any other character its index in the task's characters.
   500 examples of each task and split, prompt + trace and prompt + answer:
   the same ids, and decode gives the text back. */
static int rule_encode(const task *tk, const char *s, int *ids, int cap) {
    int n = 0, t, n_chars = (int)strlen(tk->chars);
    while (*s) {
        int id = -1;
        size_t len = 1;
        for (t = 0; t < tk->n_tags; t++)
            if (!strncmp(s, tk->tags[t], strlen(tk->tags[t]))) { id = n_chars + t; len = strlen(tk->tags[t]); break; }
        if (id < 0 && strchr(tk->chars, *s)) id = (int)(strchr(tk->chars, *s) - tk->chars);
        if (id < 0 || n >= cap) return -1;
        ids[n++] = id;
        s += len;
    }
    return n;
}
static void test_task_tokenizer(void) {
    int k, split, i, part, bad = 0, count = 0;
    CHECK(task_tokenizers_init(), "the tokenizers: %s", d1_last_error());
    for (k = 0; k < N_TASKS; k++) {
        const task *tk = &tasks[k];
        CHECK(task_token(tk, "<eos>") >= 0 && task_token(tk, "<mask>") >= 0, "%s: <eos> and <mask>", tk->name);
        for (split = SPLIT_TRAIN; split <= SPLIT_TEST; split++) {
            d1_rng rng;
            d1_rng_seed(&rng, 7 + (uint64_t)split);
            for (i = 0; i < 500; i++) {
                example ex;
                tk->example(&rng, split, &ex);
                for (part = 0; part < 2; part++) {
                    char text[256], back[256];
                    int want[256], got[256], nw, ng;
                    snprintf(text, sizeof text, "%s%s<eos>", ex.prompt, part ? ex.answer : ex.trace);
                    nw = rule_encode(tk, text, want, 256);
                    ng = tok_encode(tk, text, got, 256);
                    tok_decode(tk, got, ng > 0 ? ng : 0, back, sizeof back);
                    if (nw <= 0 || ng != nw || memcmp(want, got, (size_t)nw * sizeof(int)) || strcmp(back, text)) {
                        if (!bad++) CHECK(0, "%s: '%s': %d ids by the rule, %d by the tokenizer, back '%s'", tk->name,
                                          text, nw, ng, back);
                    }
                    count++;
                }
            }
        }
    }
    CHECK(bad == 0, "%d of %d texts differ", bad, count);
    {   /* what is not in the vocabulary */
        int ids[8];
        CHECK(tok_encode(&tasks[0], "1 2", ids, 8) == -1, "a space is no token");
        CHECK(tok_encode(&tasks[0], "12345", ids, 4) == -1, "five tokens into four");
    }
}

/* Each shipped checkpoint carries its task's tokenizer as files
   (tokenizer.json, tokenizer_config.json, special_tokens_map.json): the same
   token at every id, the same special tokens, and its config's mask and EOS
   ids are <mask> and <eos>. */
static void test_shipped_tokenizers(void) {
    static const struct { const char *dir, *task; } ck[] = {
        {"examples/checkpoints/sudoku/base", "sudoku"}, {"examples/checkpoints/sudoku/sft", "sudoku"},
        {"examples/checkpoints/countdown/base", "countdown"}, {"examples/checkpoints/countdown/sft", "countdown"},
        {"examples/checkpoints/gpu-seed1/sudoku/base/final", "sudoku"},
        {"examples/checkpoints/gpu-seed1/sudoku/rl-base/final", "sudoku"}};
    int d, id;
    for (d = 0; d < (int)(sizeof ck / sizeof ck[0]); d++) {
        const char *dir = ck[d].dir;
        const d1_tokenizer *want = task_tokenizer(task_find(ck[d].task));
        d1_tokenizer tok;
        d1_model m;
        char path[256];
        FILE *f;
        int same = 1, rc = d1_tokenizer_load(&tok, dir);
        CHECK(rc == D1_OK, "%s: %s", dir, d1_last_error());
        if (rc != D1_OK) continue;
        CHECK(tok.n_vocab == want->n_vocab, "%s: %d tokens, the task has %d", dir, tok.n_vocab, want->n_vocab);
        for (id = 0; id < tok.n_vocab && id < want->n_vocab; id++)
            same &= !strcmp(d1_tokenizer_token(&tok, id), d1_tokenizer_token(want, id)) &&
                    d1_tokenizer_token_type(&tok, id) == d1_tokenizer_token_type(want, id);
        CHECK(same, "%s: its tokens differ from the task's", dir);
        rc = d1_model_load(&m, dir);
        CHECK(rc == D1_OK, "%s: %s", dir, d1_last_error());
        if (rc == D1_OK) {
            CHECK(m.config.mask_id == d1_tokenizer_token_id(&tok, "<mask>") &&
                  m.config.eos_id == d1_tokenizer_token_id(&tok, "<eos>"), "%s: the config's mask / EOS ids", dir);
            d1_model_free(&m);
        }
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        CHECK((f = fopen(path, "r")) != NULL, "%s", path);
        if (f) fclose(f);
        snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
        CHECK((f = fopen(path, "r")) != NULL, "%s", path);
        if (f) fclose(f);
        d1_tokenizer_free(&tok);
    }
}

int main(void) {
    TH_BANNER();
    RUN(test_unrolled_is_grpo_step);
    RUN(test_task_tokenizer);
    RUN(test_shipped_tokenizers);
    return th_summary();
}
