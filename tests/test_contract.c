/* The error contract, call by call: every misuse below must return its error
   code and change nothing observable. "Nothing" is checked by hashing, before
   and after the call, everything a caller can see: the weights, gradients and
   adapters, the optimizer's moments and step, the caller's RNG, the output
   buffer, and (where the call promises it) the model's logits and B, T.
   CI runs it under ASan + UBSan with the rest of `make test`.

   Kinds of call, by section (each CASE line is one):
     sampler      NULLs, shapes and their overflow, every setting out of range,
                  bad prompt tokens and lengths, non-finite weights, a
                  vocabulary with nothing to reveal; `out` aliasing `prompts`
     losses       pretraining, SFT, the GRPO log-probs and loss: NULLs,
                  shapes, tokens, p, prompt lengths, non-finite weights,
                  advantages and log-probs
     AdamW        every field of the settings, a NaN gradient, a spent step count
     GRPO step    NULLs, shapes and their overflow, settings, rewards, NaN weights;
                  what `updates` reports when an update fails late
     files        a FIFO where a checkpoint file should be; train states with
                  an RNG xoshiro cannot leave and a step AdamW cannot take;
                  directories whose claims (max_sequence_length, tensor
                  counts, shards) exceed their bytes: each load measured
                  against twice its files (test_load_memory) */
#include "count_alloc.h" /* live_bytes, peak_bytes */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "harness.h"
#include <signal.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int n_cases;

/* ---- what a caller can observe --------------------------------------------- */
typedef struct snap {
    uint64_t params, grads, lora, opt, rng, out, logits;
    int B, T;
} snap;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    if (!p) return h ^ 0x9e3779b97f4a7c15ull;
    for (i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

typedef struct world { /* one test's objects; any may be NULL */
    d1_model *m;
    d1_adamw *o;
    d1_rng   *rng;
    void     *out;
    size_t    out_bytes;
} world;

static snap take(const world *w) {
    snap s;
    const uint64_t h0 = 14695981039346656037ull;
    memset(&s, 0, sizeof s);
    if (w->m) {
        const d1_model *m = w->m;
        s.params = fnv(h0, m->param_memory, m->num_params * sizeof(float));
        s.grads = fnv(h0, m->grad_memory, m->num_params * sizeof(float));
        if (m->lora) {
            s.lora = fnv(h0, m->lora->param_memory, m->lora->num_params * sizeof(float));
            if (m->lora->grad_memory) s.lora = fnv(s.lora, m->lora->grad_memory, m->lora->num_params * sizeof(float));
        }
        s.B = m->B;
        s.T = m->T;
        s.logits = m->logits ? fnv(h0, m->logits, (size_t)m->B * m->T * m->config.vocab_size * sizeof(float)) : 0;
    }
    if (w->o) {
        s.opt = fnv(h0, w->o->m, 2 * w->o->n * sizeof(float));
        s.opt = fnv(s.opt, &w->o->step, sizeof w->o->step);
        s.opt = fnv(s.opt, &w->o->desc, sizeof w->o->desc);
    }
    if (w->rng) s.rng = fnv(h0, w->rng, sizeof *w->rng);
    if (w->out) s.out = fnv(h0, w->out, w->out_bytes);
    return s;
}

/* what changed between two snapshots, as words ("" when nothing did);
   logits = 0: the call documents its logits as scratch */
static const char *changed(const snap *a, const snap *b, int logits) {
    static char msg[128];
    msg[0] = 0;
    if (a->params != b->params) strcat(msg, " weights");
    if (a->grads != b->grads) strcat(msg, " gradients");
    if (a->lora != b->lora) strcat(msg, " adapters");
    if (a->opt != b->opt) strcat(msg, " optimizer");
    if (a->rng != b->rng) strcat(msg, " rng");
    if (a->out != b->out) strcat(msg, " output");
    if (logits && (a->logits != b->logits || a->B != b->B || a->T != b->T)) strcat(msg, " logits/B/T");
    return msg;
}

/* CASE(world, logits_kept, expected_code, call): the call must return the
   code and change nothing (the logits too when logits_kept) */
#define CASE(w, keep_logits, code, call)                                                                      \
    do {                                                                                                      \
        snap before_ = take(&(w)), after_;                                                                    \
        int rc_ = (call);                                                                                     \
        after_ = take(&(w));                                                                                  \
        n_cases++;                                                                                            \
        CHECK(rc_ == (code), "%s: returned %d (%s), expected %d (%s)", #call, rc_, d1_strerror(rc_), (code), \
              d1_strerror(code));                                                                             \
        CHECK(!*changed(&before_, &after_, keep_logits), "%s: changed%s", #call,                              \
              changed(&before_, &after_, keep_logits));                                                       \
    } while (0)

/* the message of the call just made (d1_last_error) holds msg: it names what
   was wrong (the field and its value, usually) */
#define LASTMSG(msg) CHECK(strstr(d1_last_error(), (msg)) != NULL, "message \"%s\" lacks \"%s\"", d1_last_error(), (msg))
/* CASE, and LASTMSG */
#define CASEM(w, keep_logits, code, msg, call) \
    do {                                       \
        CASE(w, keep_logits, code, call);      \
        LASTMSG(msg);                          \
    } while (0)

static d1_config tiny(void) {
    d1_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 20; c.dim = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.ffn_dim = 48;
    c.max_seq_len = 48; c.mask_id = 19; c.eos_id = 18; c.pad_id = 17;
    return c;
}

/* a model that has run one pretraining step: weights, gradients, logits and
   moments are all set, so a call that touches any of them shows */
static void trained(d1_model *m, d1_adamw *o, const d1_config *c) {
    d1_adamw_desc od = d1_adamw_default_desc();
    int tok[2 * 12], i;
    float loss;
    d1_rng r;
    d1_model_init(m, c, 7);
    d1_adamw_init(o, m, &od);
    d1_rng_seed(&r, 3);
    for (i = 0; i < 24; i++) tok[i] = i % 17;
    d1_pretrain_loss(m, tok, 2, 12, NULL, NULL, &r, &loss);
    d1_adamw_step(o, m, NULL);
    d1_pretrain_loss(m, tok, 2, 12, NULL, NULL, &r, &loss); /* gradients and logits of the last pass */
}

static d1_sampler_desc sdesc(void) {
    d1_sampler_desc d;
    memset(&d, 0, sizeof d);
    d.gen_len = 16; d.block_len = 8; d.steps = 8; d.temperature = 0.7f;
    return d;
}

/* ---- the sampler ----------------------------------------------------------- */
static void test_sampler_contract(void) {
    d1_config c = tiny();
    d1_model m;
    d1_adamw o;
    d1_sampler_desc d;
    d1_rng r;
    int prompt[2 * 5] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, lens[2] = {5, 5}, out[2 * 48];
    world w;
    trained(&m, &o, &c);
    d1_rng_seed(&r, 11);
    for (int i = 0; i < 2 * 48; i++) out[i] = -7;
    w.m = &m; w.o = &o; w.rng = &r; w.out = out; w.out_bytes = sizeof out;
    d = sdesc();
    CASE(w, 1, D1_ERR_ARG, d1_sampler_generate(NULL, &d, prompt, 2, 5, NULL, &r, out, NULL));
    CASE(w, 1, D1_ERR_ARG, d1_sampler_generate(&m, NULL, prompt, 2, 5, NULL, &r, out, NULL));
    CASE(w, 1, D1_ERR_ARG, d1_sampler_generate(&m, &d, NULL, 2, 5, NULL, &r, out, NULL));
    CASE(w, 1, D1_ERR_ARG, d1_sampler_generate(&m, &d, prompt, 2, 5, NULL, NULL, out, NULL));
    CASE(w, 1, D1_ERR_ARG, d1_sampler_generate(&m, &d, prompt, 2, 5, NULL, &r, NULL, NULL));
    CASE(w, 1, D1_ERR_SHAPE, d1_sampler_generate(&m, &d, prompt, 0, 5, NULL, &r, out, NULL));
    CASE(w, 1, D1_ERR_SHAPE, d1_sampler_generate(&m, &d, prompt, -3, 5, NULL, &r, out, NULL));
    CASE(w, 1, D1_ERR_SHAPE, d1_sampler_generate(&m, &d, prompt, 2, -1, NULL, &r, out, NULL));
    CASE(w, 1, D1_ERR_SHAPE, d1_sampler_generate(&m, &d, prompt, 2, INT_MAX, NULL, &r, out, NULL)); /* P + gen */
    CASE(w, 1, D1_ERR_SHAPE, d1_sampler_generate(&m, &d, prompt, 2, INT_MAX - 8, NULL, &r, out, NULL));
    d.cfg_scale = 1.0f; /* 2B rows would overflow int */
    CASE(w, 1, D1_ERR_SHAPE, d1_sampler_generate(&m, &d, prompt, INT_MAX / 2 + 1, 5, NULL, &r, out, NULL));
#define BADSET(field, value, code, msg)                                                              \
    do {                                                                                             \
        d = sdesc();                                                                                 \
        d.field = value;                                                                             \
        CASEM(w, 1, code, msg, d1_sampler_generate(&m, &d, prompt, 2, 5, NULL, &r, out, NULL));      \
    } while (0)
    BADSET(gen_len, 0, D1_ERR_SHAPE, "gen_len 0");
    BADSET(gen_len, -16, D1_ERR_SHAPE, "gen_len -16");
    BADSET(gen_len, 44, D1_ERR_SHAPE, "P 5 + gen_len 44 = 49 tokens, past max_seq_len 48"); /* 5 + 44 > 48 */
    BADSET(gen_len, INT_MAX, D1_ERR_SHAPE, "gen_len 2147483647");
    BADSET(block_len, 5, D1_ERR_SETTING, "block_len 5 does not divide gen_len");
    BADSET(block_len, -8, D1_ERR_SHAPE, "block_len -8");
    BADSET(steps, 3, D1_ERR_SETTING, "steps 3 is not a multiple");
    BADSET(steps, -2, D1_ERR_SHAPE, "steps -2");
    BADSET(temperature, NAN, D1_ERR_SETTING, "temperature nan");
    BADSET(temperature, -1.0f, D1_ERR_SETTING, "temperature -1");
    BADSET(temperature, INFINITY, D1_ERR_SETTING, "temperature inf");
    BADSET(cfg_scale, NAN, D1_ERR_SETTING, "cfg_scale nan");
    BADSET(cfg_scale, -0.5f, D1_ERR_SETTING, "cfg_scale -0.5");
    BADSET(cfg_scale, INFINITY, D1_ERR_SETTING, "cfg_scale inf");
    BADSET(threshold, NAN, D1_ERR_SETTING, "threshold nan");
    BADSET(threshold, -0.1f, D1_ERR_SETTING, "threshold -0.1");
    BADSET(threshold, 1.5f, D1_ERR_SETTING, "threshold 1.5");
    BADSET(remasking, -1, D1_ERR_SETTING, "remasking -1");
    BADSET(remasking, 9, D1_ERR_SETTING, "remasking 9");
    BADSET(kv_cache, -1, D1_ERR_SETTING, "kv_cache -1");
    BADSET(kv_cache, 3, D1_ERR_SETTING, "kv_cache 3");
#undef BADSET
    d = sdesc();
    prompt[3] = -1;
    CASE(w, 1, D1_ERR_TOKEN, d1_sampler_generate(&m, &d, prompt, 2, 5, NULL, &r, out, NULL));
    LASTMSG("prompts[0][3] = -1, outside [0, vocab_size 20)");
    prompt[3] = 20;
    CASE(w, 1, D1_ERR_TOKEN, d1_sampler_generate(&m, &d, prompt, 2, 5, NULL, &r, out, NULL));
    LASTMSG("prompts[0][3] = 20, outside [0, vocab_size 20)");
    prompt[3] = c.mask_id;
    CASE(w, 1, D1_ERR_TOKEN, d1_sampler_generate(&m, &d, prompt, 2, 5, NULL, &r, out, NULL));
    LASTMSG("prompts[0][3] = 19 is the mask id");
    prompt[3] = 4;
    lens[1] = -1;
    CASE(w, 1, D1_ERR_SHAPE, d1_sampler_generate(&m, &d, prompt, 2, 5, lens, &r, out, NULL));
    LASTMSG("prompt_lens[1] = -1, outside [0, P 5]");
    lens[1] = 6;
    CASE(w, 1, D1_ERR_SHAPE, d1_sampler_generate(&m, &d, prompt, 2, 5, lens, &r, out, NULL));
    LASTMSG("prompt_lens[1] = 6, outside [0, P 5]");
    lens[1] = 5;

    /* non-finite weights: the sampler used to pick token -1 and read wte[-C] */
    {
        float keep = m.param_memory[40];
        int cache;
        /* (the last weight is the head's row of the mask token, which is never proposed) */
        m.param_memory[m.num_params - 1] = NAN;
        d = sdesc();
        CHECK(d1_sampler_generate(&m, &d, prompt, 2, 5, NULL, &r, out, NULL) == D1_ERR_NONFINITE,
              "a NaN anywhere in the weights is refused");
        m.param_memory[m.num_params - 1] = 0.0f;
        m.param_memory[40] = NAN; /* an embedding weight: every logit NaN */
        for (cache = D1_KV_NONE; cache <= D1_KV_DUAL; cache++) {
            d = sdesc();
            d.kv_cache = cache;
            CASE(w, 1, D1_ERR_NONFINITE, d1_sampler_generate(&m, &d, prompt, 2, 5, NULL, &r, out, NULL));
            d.threshold = 0.9f;
            CASE(w, 1, D1_ERR_NONFINITE, d1_sampler_generate(&m, &d, prompt, 2, 5, NULL, &r, out, NULL));
        }
        m.param_memory[40] = INFINITY;
        d = sdesc();
        CASE(w, 1, D1_ERR_NONFINITE, d1_sampler_generate(&m, &d, prompt, 2, 5, NULL, &r, out, NULL));
        m.param_memory[40] = keep;
    }
    /* finite weights that overflow the activations: NaN logits at the first
       step, found by the step itself; the canvas and RNG stay, the logits are
       that pass's (documented as scratch) */
    {
        float *save = (float *)malloc(m.num_params * sizeof(float));
        size_t i;
        memcpy(save, m.param_memory, m.num_params * sizeof(float));
        for (i = m.num_params - (size_t)c.vocab_size * c.dim; i < m.num_params; i++) m.param_memory[i] = FLT_MAX;
        d = sdesc();
        CASE(w, 0, D1_ERR_NONFINITE, d1_sampler_generate(&m, &d, prompt, 2, 5, NULL, &r, out, NULL));
        memcpy(m.param_memory, save, m.num_params * sizeof(float));
        free(save);
    }
    /* a vocabulary whose only tokens are the mask and a suppressed EOS */
    {
        d1_config c2 = tiny();
        d1_model m2;
        world w2 = w;
        int p2[2] = {0, 0};
        c2.vocab_size = 2; c2.mask_id = 1; c2.eos_id = 0; c2.pad_id = D1_TOKEN_NONE;
        CHECK(d1_model_init(&m2, &c2, 1) == D1_OK, "a two-token model");
        w2.m = &m2; w2.o = NULL;
        d = sdesc();
        d.suppress_eos = 1;
        CASE(w2, 1, D1_ERR_CONFIG, d1_sampler_generate(&m2, &d, p2, 2, 1, NULL, &r, out, NULL));
        LASTMSG("vocab_size 2 holds no token to reveal besides the mask and the suppressed EOS");
        d.suppress_eos = 0; /* EOS allowed: fine */
        CHECK(d1_sampler_generate(&m2, &d, p2, 2, 1, NULL, &r, out, NULL) == D1_OK, "EOS may be revealed");
        d1_model_free(&m2);
    }
    /* out aliasing prompts: the same sample as into a separate buffer */
    {
        int sep[2 * 21], alias[2 * 21];
        d1_rng r1, r2;
        d1_rng_seed(&r1, 5);
        r2 = r1;
        d = sdesc();
        CHECK(d1_sampler_generate(&m, &d, prompt, 2, 5, NULL, &r1, sep, NULL) == D1_OK, "separate");
        memcpy(alias, prompt, sizeof prompt);
        CHECK(d1_sampler_generate(&m, &d, alias, 2, 5, NULL, &r2, alias, NULL) == D1_OK, "aliased");
        CHECK(!memcmp(sep, alias, sizeof sep) && !memcmp(&r1, &r2, sizeof r1), "out == prompts gives another sample");
    }
    d1_adamw_free(&o);
    d1_model_free(&m);
}

/* ---- the losses ------------------------------------------------------------ */
static void test_loss_contract(void) {
    d1_config c = tiny();
    d1_model m;
    d1_adamw o;
    d1_rng r;
    int tok[2 * 12], pl[2] = {4, 4}, i;
    uint8_t mask[2 * 12], in[2 * 12], sc[2 * 8];
    float p[2] = {0.5f, 0.5f}, loss = 123.0f, adv[2] = {0.5f, -0.5f}, old[2 * 8], ref[2 * 8], lp[2 * 8];
    d1_grpo_batch gb;
    world w;
    trained(&m, &o, &c);
    d1_rng_seed(&r, 2);
    for (i = 0; i < 24; i++) tok[i] = (i * 5) % 17;
    memset(mask, 0, sizeof mask);
    for (i = 6; i < 24; i += 3) mask[i] = 1;
    w.m = &m; w.o = &o; w.rng = &r; w.out = &loss; w.out_bytes = sizeof loss;

    CASE(w, 1, D1_ERR_ARG, d1_pretrain_loss(NULL, tok, 2, 12, NULL, NULL, &r, &loss));
    CASE(w, 1, D1_ERR_ARG, d1_pretrain_loss(&m, NULL, 2, 12, NULL, NULL, &r, &loss));
    CASE(w, 1, D1_ERR_ARG, d1_pretrain_loss(&m, tok, 2, 12, NULL, NULL, &r, NULL));
    CASE(w, 1, D1_ERR_ARG, d1_pretrain_loss(&m, tok, 2, 12, NULL, NULL, NULL, &loss));
    CASE(w, 1, D1_ERR_ARG, d1_pretrain_loss(&m, tok, 2, 12, mask, NULL, &r, &loss));
    CASE(w, 1, D1_ERR_ARG, d1_pretrain_loss(&m, tok, 2, 12, NULL, p, &r, &loss));
    CASE(w, 1, D1_ERR_SHAPE, d1_pretrain_loss(&m, tok, 0, 12, NULL, NULL, &r, &loss));
    LASTMSG("B 0, T 12: both must be > 0 and T <= max_seq_len 48");
    CASE(w, 1, D1_ERR_SHAPE, d1_pretrain_loss(&m, tok, 2, -1, NULL, NULL, &r, &loss));
    CASE(w, 1, D1_ERR_SHAPE, d1_pretrain_loss(&m, tok, 1, 49, NULL, NULL, &r, &loss));
    LASTMSG("B 1, T 49");
    CASE(w, 1, D1_ERR_SHAPE, d1_pretrain_loss(&m, tok, INT_MAX, INT_MAX, NULL, NULL, &r, &loss));
    tok[5] = -1;
    CASE(w, 1, D1_ERR_TOKEN, d1_pretrain_loss(&m, tok, 2, 12, NULL, NULL, &r, &loss));
    LASTMSG("= -1, outside [0, vocab_size 20)");
    tok[5] = 20;
    CASE(w, 1, D1_ERR_TOKEN, d1_pretrain_loss(&m, tok, 2, 12, NULL, NULL, &r, &loss));
    tok[5] = 5;
    p[1] = 0.0f;
    CASE(w, 1, D1_ERR_ARG, d1_pretrain_loss(&m, tok, 2, 12, mask, p, &r, &loss));
    LASTMSG("p[1] = 0, outside (0, 1]");
    p[1] = 1.5f;
    CASE(w, 1, D1_ERR_ARG, d1_pretrain_loss(&m, tok, 2, 12, mask, p, &r, &loss));
    p[1] = NAN;
    CASE(w, 1, D1_ERR_ARG, d1_pretrain_loss(&m, tok, 2, 12, mask, p, &r, &loss));
    LASTMSG("p[1] = nan, outside (0, 1]");
    p[1] = 0.5f;

    CASEM(w, 1, D1_ERR_ARG, "prompt_lens is NULL", d1_sft_loss(&m, tok, 2, 12, NULL, NULL, NULL, &r, &loss));
    CASEM(w, 1, D1_ERR_SHAPE, "B 0, T 12", d1_sft_loss(&m, tok, 0, 12, pl, NULL, NULL, &r, &loss));
    pl[1] = -1;
    CASE(w, 1, D1_ERR_SHAPE, d1_sft_loss(&m, tok, 2, 12, pl, NULL, NULL, &r, &loss));
    pl[1] = 12; /* no answer */
    CASE(w, 1, D1_ERR_SHAPE, d1_sft_loss(&m, tok, 2, 12, pl, NULL, NULL, &r, &loss));
    pl[1] = 4;
    mask[1] = 1; /* inside the prompt */
    CASE(w, 1, D1_ERR_ARG, d1_sft_loss(&m, tok, 2, 12, pl, mask, p, &r, &loss));
    LASTMSG("mask[0][1] = 1 inside the prompt");
    mask[1] = 0;

    /* the GRPO building blocks */
    memset(&gb, 0, sizeof gb);
    memset(in, 0, sizeof in);
    for (i = 0; i < 24; i++) in[i] = (uint8_t)(i % 12 >= 4);
    memset(sc, 1, sizeof sc);
    for (i = 0; i < 16; i++) old[i] = ref[i] = -2.0f;
    gb.tokens = tok; gb.B = 2; gb.T = 12; gb.P = 4; gb.input_mask = in; gb.score_mask = sc;
    gb.denom = 16.0f; gb.adv = adv; gb.old_logp = old; gb.ref_logp = ref;
    w.out = lp; w.out_bytes = sizeof lp;
    memset(lp, 0, sizeof lp);
    CASE(w, 1, D1_ERR_ARG, d1_grpo_logprobs(&m, &gb, NULL));
    CASE(w, 1, D1_ERR_ARG, d1_grpo_logprobs(&m, NULL, lp));
    gb.P = -1;
    CASE(w, 1, D1_ERR_SHAPE, d1_grpo_logprobs(&m, &gb, lp));
    gb.P = 12;
    CASE(w, 1, D1_ERR_SHAPE, d1_grpo_logprobs(&m, &gb, lp));
    gb.P = 4;
    gb.input_mask = NULL;
    CASE(w, 1, D1_ERR_ARG, d1_grpo_logprobs(&m, &gb, lp));
    gb.input_mask = in;
    w.out = &loss; w.out_bytes = sizeof loss;
#define GLOSS(code, clip, beta, obj) CASE(w, 1, code, d1_grpo_loss(&m, &gb, clip, beta, obj, &loss, NULL, NULL))
    adv[1] = NAN;
    GLOSS(D1_ERR_NONFINITE, 0.2f, 0.04f, D1_GRPO_CLIPPED);
    adv[1] = INFINITY;
    GLOSS(D1_ERR_NONFINITE, 0.2f, 0.04f, D1_GRPO_WD1);
    adv[1] = -0.5f;
    old[3] = NAN; /* was taken for "clipped" */
    GLOSS(D1_ERR_NONFINITE, 0.2f, 0.04f, D1_GRPO_CLIPPED);
    old[3] = 0.5f; /* a probability above 1 */
    GLOSS(D1_ERR_NONFINITE, 0.2f, 0.04f, D1_GRPO_CLIPPED);
    old[3] = -2.0f;
    ref[9] = -INFINITY;
    GLOSS(D1_ERR_NONFINITE, 0.2f, 0.04f, D1_GRPO_CLIPPED);
    ref[9] = NAN;
    GLOSS(D1_ERR_NONFINITE, 0.2f, 0.04f, D1_GRPO_WD1);
    CHECK(d1_grpo_loss(&m, &gb, 0.2f, 0.0f, D1_GRPO_CLIPPED, &loss, NULL, NULL) == D1_OK,
          "beta 0: the reference log-probs are not read");
    d1_model_zero_grad(&m);
    ref[9] = -2.0f;
    GLOSS(D1_ERR_ARG, NAN, 0.04f, D1_GRPO_CLIPPED);
    GLOSS(D1_ERR_ARG, -0.1f, 0.04f, D1_GRPO_CLIPPED);
    GLOSS(D1_ERR_ARG, 0.2f, NAN, D1_GRPO_CLIPPED);
    GLOSS(D1_ERR_ARG, 0.2f, INFINITY, D1_GRPO_CLIPPED);
    GLOSS(D1_ERR_ARG, 0.2f, 0.04f, 7);
    gb.kl = 3; /* no such KL estimator */
    GLOSS(D1_ERR_ARG, 0.2f, 0.04f, D1_GRPO_CLIPPED);
    gb.kl = D1_KL_K3;
    gb.denom = 0.0f;
    GLOSS(D1_ERR_ARG, 0.2f, 0.04f, D1_GRPO_CLIPPED);
    gb.denom = NAN;
    GLOSS(D1_ERR_ARG, 0.2f, 0.04f, D1_GRPO_CLIPPED);
    gb.denom = 16.0f;
    gb.ref_logp = NULL;
    GLOSS(D1_ERR_ARG, 0.2f, 0.04f, D1_GRPO_CLIPPED);
    gb.ref_logp = ref;
    gb.score_mask = NULL;
    GLOSS(D1_ERR_ARG, 0.2f, 0.04f, D1_GRPO_CLIPPED);
    gb.score_mask = sc;

    /* the sequence level (ESPO): 2 rows of 1 sequence; adv, old, ref are [n_seq] */
    {
        float ew[2 * 8], elbo[2] = {123.0f, 123.0f}, sold[1] = {-30.0f}, sref[1] = {-31.0f};
        for (i = 0; i < 16; i++) ew[i] = 1.5f;
        gb.elbo_w = ew; gb.n_seq = 1; gb.old_logp = sold; gb.ref_logp = sref; gb.kl = D1_KL_K2; gb.denom = 1.0f;
        GLOSS(D1_ERR_ARG, 0.2f, 0.04f, D1_GRPO_WD1); /* ESPO's ratio only */
        gb.n_seq = 0;
        GLOSS(D1_ERR_ARG, 0.2f, 0.04f, D1_GRPO_CLIPPED);
        gb.n_seq = 3; /* B = 2 is not a multiple */
        GLOSS(D1_ERR_ARG, 0.2f, 0.04f, D1_GRPO_CLIPPED);
        gb.n_seq = 1;
        ew[5] = NAN;
        GLOSS(D1_ERR_ARG, 0.2f, 0.04f, D1_GRPO_CLIPPED);
        ew[5] = -1.0f;
        GLOSS(D1_ERR_ARG, 0.2f, 0.04f, D1_GRPO_CLIPPED);
        ew[5] = 1.5f;
        sold[0] = NAN;
        GLOSS(D1_ERR_NONFINITE, 0.2f, 0.04f, D1_GRPO_CLIPPED);
        sold[0] = 2.0f; /* an ELBO above 0 */
        GLOSS(D1_ERR_NONFINITE, 0.2f, 0.04f, D1_GRPO_CLIPPED);
        sold[0] = -30.0f;
        sref[0] = -INFINITY;
        GLOSS(D1_ERR_NONFINITE, 0.2f, 0.04f, D1_GRPO_CLIPPED);
        sref[0] = -31.0f;
        adv[0] = NAN;
        GLOSS(D1_ERR_NONFINITE, 0.2f, 0.04f, D1_GRPO_CLIPPED);
        adv[0] = 0.5f;
        { /* SPG: the lengths, no KL, the EUBO's settings */
            float len[1] = {8.0f};
            gb.eubo_beta = 1.0f; gb.eubo_mix = 0.5f;
            GLOSS(D1_ERR_ARG, 0.2f, 0.0f, D1_GRPO_SPG); /* no seq_len */
            gb.seq_len = len;
            GLOSS(D1_ERR_ARG, 0.2f, 0.04f, D1_GRPO_SPG); /* SPG has no KL term */
            len[0] = 0.0f;
            GLOSS(D1_ERR_ARG, 0.2f, 0.0f, D1_GRPO_SPG);
            len[0] = NAN;
            GLOSS(D1_ERR_ARG, 0.2f, 0.0f, D1_GRPO_SPG);
            len[0] = 8.0f;
            gb.eubo_mix = 1.5f;
            GLOSS(D1_ERR_ARG, 0.2f, 0.0f, D1_GRPO_SPG);
            gb.eubo_mix = 0.5f; gb.eubo_beta = 0.0f;
            GLOSS(D1_ERR_ARG, 0.2f, 0.0f, D1_GRPO_SPG);
            gb.eubo_beta = NAN;
            GLOSS(D1_ERR_ARG, 0.2f, 0.0f, D1_GRPO_SPG);
            gb.eubo_beta = 1.0f;
            CHECK(d1_grpo_loss(&m, &gb, 0.2f, 0.0f, D1_GRPO_SPG, &loss, NULL, NULL) == D1_OK && isfinite(loss),
                  "SPG takes these inputs");
            d1_model_zero_grad(&m);
            gb.seq_len = NULL;
        }
        CHECK(d1_grpo_loss(&m, &gb, 0.2f, 0.04f, D1_GRPO_CLIPPED, &loss, NULL, NULL) == D1_OK && isfinite(loss),
              "the sequence level takes these inputs");
        d1_model_zero_grad(&m);
        w.out = elbo; w.out_bytes = sizeof elbo;
        CASE(w, 1, D1_ERR_ARG, d1_grpo_elbo(NULL, lp, elbo));
        CASE(w, 1, D1_ERR_ARG, d1_grpo_elbo(&gb, NULL, elbo));
        gb.n_seq = 3;
        CASE(w, 1, D1_ERR_ARG, d1_grpo_elbo(&gb, lp, elbo));
        gb.n_seq = 1; gb.elbo_w = NULL;
        CASE(w, 1, D1_ERR_ARG, d1_grpo_elbo(&gb, lp, elbo));
        w.out = &loss; w.out_bytes = sizeof loss;
        gb.n_seq = 0; gb.old_logp = old; gb.ref_logp = ref; gb.kl = D1_KL_K3; gb.denom = 16.0f;
    }

    /* a NaN weight: every loss refuses before its pass (the RNG, the
       gradients and the logits as they were) */
    {
        float keep = m.param_memory[40];
        m.param_memory[40] = NAN;
        w.out = &loss; w.out_bytes = sizeof loss;
        CASE(w, 1, D1_ERR_NONFINITE, d1_pretrain_loss(&m, tok, 2, 12, NULL, NULL, &r, &loss));
        CASE(w, 1, D1_ERR_NONFINITE, d1_pretrain_loss(&m, tok, 2, 12, mask, p, &r, &loss));
        CASE(w, 1, D1_ERR_NONFINITE, d1_sft_loss(&m, tok, 2, 12, pl, NULL, NULL, &r, &loss));
        GLOSS(D1_ERR_NONFINITE, 0.2f, 0.04f, D1_GRPO_CLIPPED);
        w.out = lp; w.out_bytes = sizeof lp;
        CASE(w, 1, D1_ERR_NONFINITE, d1_grpo_logprobs(&m, &gb, lp));
        m.param_memory[40] = keep;
    }
#undef GLOSS
    d1_adamw_free(&o);
    d1_model_free(&m);
}

/* ---- AdamW ------------------------------------------------------------------ */
static void test_adamw_contract(void) {
    d1_config c = tiny();
    d1_model m;
    d1_adamw o, fresh;
    d1_adamw_desc od;
    float gn = -1.0f;
    char want[64];
    world w;
    trained(&m, &o, &c);
    memset(&fresh, 0x5a, sizeof fresh);
    w.m = &m; w.o = &o; w.rng = NULL; w.out = &fresh; w.out_bytes = sizeof fresh;
#define BADDESC(field, value)                                                     \
    do {                                                                          \
        od = d1_adamw_default_desc();                                             \
        od.field = value;                                                         \
        snprintf(want, sizeof want, "%s %g", #field, (double)(value));            \
        CASEM(w, 1, D1_ERR_SETTING, want, d1_adamw_init(&fresh, &m, &od));       \
    } while (0)
    BADDESC(lr, NAN);
    BADDESC(lr, -1e-3f);
    BADDESC(lr, INFINITY);
    BADDESC(beta1, 1.0f);
    BADDESC(beta1, NAN);
    BADDESC(beta2, -0.1f);
    BADDESC(beta2, 1.0f);
    BADDESC(eps, 0.0f);
    BADDESC(eps, INFINITY);
    BADDESC(eps, NAN);
    BADDESC(weight_decay, NAN);
    BADDESC(weight_decay, -0.01f);
    BADDESC(grad_clip, NAN);
    BADDESC(grad_clip, INFINITY);
#undef BADDESC
    od = d1_adamw_default_desc();
    CASE(w, 1, D1_ERR_ARG, d1_adamw_init(NULL, &m, &od));
    CASE(w, 1, D1_ERR_ARG, d1_adamw_init(&fresh, NULL, &od));
    CASE(w, 1, D1_ERR_ARG, d1_adamw_init(&fresh, &m, NULL));
    w.out = &gn; w.out_bytes = sizeof gn;
    CASE(w, 1, D1_ERR_ARG, d1_adamw_step(NULL, &m, &gn));
    CASE(w, 1, D1_ERR_ARG, d1_adamw_step(&o, NULL, &gn));
    {
        d1_adamw_desc keep = o.desc;
        int64_t step = o.step;
        float g = m.grad_memory[3];
        o.desc.eps = INFINITY; /* changed between steps, as a schedule may */
        CASEM(w, 1, D1_ERR_SETTING, "eps inf", d1_adamw_step(&o, &m, &gn));
        o.desc = keep;
        o.step = INT64_MAX; /* the next step would overflow */
        CASEM(w, 1, D1_ERR_ARG, "opt->step 9223372036854775807", d1_adamw_step(&o, &m, &gn));
        o.step = -1;
        CASE(w, 1, D1_ERR_ARG, d1_adamw_step(&o, &m, &gn));
        o.step = step;
        m.grad_memory[3] = NAN;
        CASE(w, 1, D1_ERR_NONFINITE, d1_adamw_step(&o, &m, &gn));
        m.grad_memory[3] = INFINITY;
        CASE(w, 1, D1_ERR_NONFINITE, d1_adamw_step(&o, &m, &gn));
        m.grad_memory[3] = g;
    }
    d1_adamw_free(&o);
    d1_model_free(&m);
}

/* ---- the diffu-GRPO step ----------------------------------------------------- */
static float count_reward(const d1_rollout *ro, void *user) {
    const int *o = ro->completion;
    int i, k = 0, n = ro->completion_len;
    (void)user;
    for (i = 0; i < n; i++) k += o[i] == 3;
    return (float)k;
}
static float nan_after(const d1_rollout *ro, void *user) {
    (void)ro;
    return *(const float *)user;
}

static void test_grpo_step_contract(void) {
    d1_config c = tiny();
    d1_model m, ref;
    d1_adamw o;
    d1_grpo_desc d;
    d1_reward rw[2];
    d1_rng r;
    d1_grpo_stats st;
    int prompts[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8};
    float bad = NAN;
    world w;
    trained(&m, &o, &c);
    d1_model_init(&ref, &c, 7);
    d1_rng_seed(&r, 9);
    memset(&st, 0, sizeof st);
    w.m = &m; w.o = &o; w.rng = &r; w.out = NULL; w.out_bytes = 0;
#define FRESH()                                                                                     \
    do {                                                                                            \
        d = d1_grpo_default_desc(8);                                                                \
        d.group_size = 2; d.inner_steps = 2; d.sampler.block_len = 8; d.sampler.steps = 4;          \
        rw[0].name = "count"; rw[0].fn = count_reward; rw[0].weight = 1.0f; rw[0].user = NULL;      \
        rw[1] = rw[0];                                                                              \
        d.rewards = rw; d.n_rewards = 1;                                                            \
    } while (0)
#define STEP(code, np, P) CASE(w, 0, code, d1_grpo_step(&m, &ref, &o, &d, prompts, np, P, NULL, &r, &st))
    FRESH();
    CASE(w, 0, D1_ERR_ARG, d1_grpo_step(NULL, &ref, &o, &d, prompts, 2, 4, NULL, &r, &st));
    CASE(w, 0, D1_ERR_ARG, d1_grpo_step(&m, &ref, NULL, &d, prompts, 2, 4, NULL, &r, &st));
    CASE(w, 0, D1_ERR_ARG, d1_grpo_step(&m, &ref, &o, NULL, prompts, 2, 4, NULL, &r, &st));
    CASE(w, 0, D1_ERR_ARG, d1_grpo_step(&m, &ref, &o, &d, NULL, 2, 4, NULL, &r, &st)); /* used to sample garbage */
    CASE(w, 0, D1_ERR_ARG, d1_grpo_step(&m, &ref, &o, &d, prompts, 2, 4, NULL, NULL, &st));
    CASEM(w, 0, D1_ERR_ARG, "beta 0.04 > 0 needs a reference model",
          d1_grpo_step(&m, NULL, &o, &d, prompts, 2, 4, NULL, &r, &st));
    CASEM(w, 0, D1_ERR_ARG, "ref == policy with beta 0.04 > 0",
          d1_grpo_step(&m, &m, &o, &d, prompts, 2, 4, NULL, &r, &st)); /* no adapters: no reference */
    {
        d1_config c2 = c;
        d1_model other;
        c2.rope_theta = 1000.0f;
        d1_model_init(&other, &c2, 7);
        CASEM(w, 0, D1_ERR_CONFIG, "the reference model's config differs",
              d1_grpo_step(&m, &other, &o, &d, prompts, 2, 4, NULL, &r, &st));
        d1_model_free(&other);
    }
    STEP(D1_ERR_SHAPE, 0, 4);
    STEP(D1_ERR_SHAPE, -2, 4);
    STEP(D1_ERR_SHAPE, INT_MAX / 2 + 1, 4); /* n_prompts * G overflows */
    STEP(D1_ERR_SHAPE, 2, -4);
    STEP(D1_ERR_SHAPE, 2, INT_MAX - 4); /* P + gen_len overflows */
    STEP(D1_ERR_SHAPE, 2, 41);          /* 41 + 8 > 48 */
    d.sampler.gen_len = 0;
    STEP(D1_ERR_SHAPE, 2, 4);
#define BADG(field, value, code) do { FRESH(); d.field = value; STEP(code, 2, 4); } while (0)
/* and the message names the field and its value */
#define BADGM(field, value, code, msg) \
    do {                               \
        BADG(field, value, code);      \
        LASTMSG(msg);                  \
    } while (0)
    BADGM(group_size, 1, D1_ERR_SETTING, "group_size 1");
    BADGM(group_size, -2, D1_ERR_SETTING, "group_size -2");
    BADGM(inner_steps, 0, D1_ERR_SETTING, "inner_steps (mu) 0");
    BADGM(p_mask_prompt, 1.0f, D1_ERR_SETTING, "p_mask_prompt 1:");
    BADGM(p_mask_prompt, NAN, D1_ERR_SETTING, "p_mask_prompt nan");
    BADGM(clip_eps, NAN, D1_ERR_SETTING, "clip_eps nan");
    BADGM(clip_eps, -1.0f, D1_ERR_SETTING, "clip_eps -1");
    BADGM(beta, NAN, D1_ERR_SETTING, "beta nan");
    BADGM(beta, INFINITY, D1_ERR_SETTING, "beta inf");
    BADGM(beta, -0.1f, D1_ERR_SETTING, "beta -0.1");
    BADGM(objective, 9, D1_ERR_SETTING, "objective 9");
    BADGM(estimator, 9, D1_ERR_SETTING, "estimator 9");
    BADGM(estimator, -1, D1_ERR_SETTING, "estimator -1");
    BADGM(kl, 3, D1_ERR_SETTING, "kl 3");
    BADGM(kl, -1, D1_ERR_SETTING, "kl -1");
    BADGM(mc_draws, -1, D1_ERR_SETTING, "mc_draws -1");
    BADGM(mc_draws, 65, D1_ERR_SETTING, "mc_draws 65");
    BADGM(segments, -1, D1_ERR_SETTING, "segments -1");
    /* d2's trajectory needs a fixed schedule of at least N steps (FRESH: 4 steps) */
    FRESH(); d.estimator = D1_LOGP_TRAJECTORY; d.segments = 5; STEP(D1_ERR_SETTING, 2, 4);
    LASTMSG("segments (5) steps");
    FRESH(); d.estimator = D1_LOGP_TRAJECTORY; d.segments = 2; d.sampler.threshold = 0.9f; STEP(D1_ERR_SETTING, 2, 4);
    FRESH(); d.estimator = D1_LOGP_TRAJECTORY; d.segments = 2; d.sampler.stop_at_eos = 1; STEP(D1_ERR_SETTING, 2, 4);
    /* SPG: its estimator and objective together, no KL, draws <= blocks, the EUBO's settings */
    FRESH(); d.objective = D1_GRPO_SPG; d.beta = 0.0f; STEP(D1_ERR_SETTING, 2, 4);
    LASTMSG("estimator D1_LOGP_BLOCK and objective D1_GRPO_SPG go together");
    FRESH(); d.estimator = D1_LOGP_BLOCK; d.beta = 0.0f; STEP(D1_ERR_SETTING, 2, 4);
    FRESH(); d.estimator = D1_LOGP_BLOCK; d.objective = D1_GRPO_SPG; STEP(D1_ERR_SETTING, 2, 4); /* beta 0.04 */
    LASTMSG("SPG has no KL term: beta 0.04 must be 0");
    FRESH(); d.estimator = D1_LOGP_BLOCK; d.objective = D1_GRPO_SPG; d.beta = 0.0f; d.mc_draws = 2;
    STEP(D1_ERR_SETTING, 2, 4); /* one block of 8 */
    LASTMSG("SPG: mc_draws 2 needs as many blocks (gen_len 8 / block_len 8)");
    FRESH(); d.estimator = D1_LOGP_BLOCK; d.objective = D1_GRPO_SPG; d.beta = 0.0f; d.eubo_mix = -0.5f;
    STEP(D1_ERR_SETTING, 2, 4);
    LASTMSG("eubo_mix -0.5");
    FRESH(); d.estimator = D1_LOGP_BLOCK; d.objective = D1_GRPO_SPG; d.beta = 0.0f; d.eubo_beta = NAN;
    STEP(D1_ERR_SETTING, 2, 4);
    LASTMSG("eubo_beta nan");
    FRESH(); d.estimator = D1_LOGP_ELBO; d.objective = D1_GRPO_WD1; STEP(D1_ERR_SETTING, 2, 4); /* ESPO: its ratio only */
    LASTMSG("estimator D1_LOGP_ELBO goes with objective D1_GRPO_CLIPPED, not 1");
    BADGM(n_rewards, 0, D1_ERR_ARG, "n_rewards 0");
    BADGM(n_rewards, D1_MAX_REWARDS + 1, D1_ERR_ARG, "n_rewards 9");
    BADGM(rewards, NULL, D1_ERR_ARG, "rewards NULL");
    BADGM(sampler.temperature, NAN, D1_ERR_SETTING, "temperature nan");
    BADGM(sampler.block_len, 3, D1_ERR_SETTING, "block_len 3 does not divide gen_len 8");
    FRESH(); rw[0].fn = NULL; STEP(D1_ERR_ARG, 2, 4);
    LASTMSG("rewards[0]: fn NULL");
    FRESH(); rw[0].weight = NAN; STEP(D1_ERR_ARG, 2, 4);
    FRESH(); d.n_rewards = 2; rw[1].weight = INFINITY; STEP(D1_ERR_ARG, 2, 4);
    /* a reward that answers NaN or infinity: found after the rollouts, before any update */
    FRESH(); rw[0].fn = nan_after; rw[0].user = &bad; STEP(D1_ERR_NONFINITE, 2, 4);
    LASTMSG("rewards[0] (count) returned nan for prompt 0, member 0");
    CHECK(st.updates == 0, "NaN reward: %d updates reported", st.updates);
    bad = -INFINITY;
    FRESH(); rw[0].fn = nan_after; rw[0].user = &bad; STEP(D1_ERR_NONFINITE, 2, 4);
    prompts[2] = 20;
    FRESH(); STEP(D1_ERR_TOKEN, 2, 4);
    prompts[2] = c.mask_id;
    FRESH(); STEP(D1_ERR_TOKEN, 2, 4);
    LASTMSG("is the mask id");
    prompts[2] = 3;
    {
        float keep = m.param_memory[100];
        m.param_memory[100] = NAN; /* weights gone NaN in training: refused before the rollouts */
        FRESH(); STEP(D1_ERR_NONFINITE, 2, 4);
        LASTMSG("NaN");
        m.param_memory[100] = keep;
    }
    /* an update that blows up late: whatever happens, `updates` says how many
       reached the weights, the optimizer's step agrees, and no weight is NaN */
    {
        int64_t step0 = o.step;
        int rc, bad_w = 0;
        size_t i;
        snap s0 = take(&w), s1;
        FRESH();
        d.inner_steps = 4;
        o.desc.lr = 1e30f;
        o.desc.grad_clip = 0.0f;
        rc = d1_grpo_step(&m, &ref, &o, &d, prompts, 2, 4, NULL, &r, &st);
        s1 = take(&w);
        for (i = 0; i < m.num_params; i++) bad_w += isnan(m.param_memory[i]) != 0;
        CHECK(o.step - step0 == st.updates, "rc %d: %d updates reported, %lld taken", rc, st.updates,
              (long long)(o.step - step0));
        CHECK(bad_w == 0, "%d NaN weights after lr 1e30", bad_w);
        if (st.updates == 0)
            CHECK(s0.params == s1.params && s0.opt == s1.opt && s0.rng == s1.rng, "no update, yet%s changed",
                  changed(&s0, &s1, 0));
        else
            CHECK(s0.rng != s1.rng, "updates applied and the RNG did not advance");
        o.desc = d1_adamw_default_desc();
    }
#undef BADG
#undef STEP
#undef FRESH
    d1_adamw_free(&o);
    d1_model_free(&ref);
    d1_model_free(&m);
}

/* ---- files --------------------------------------------------------------------- */
static char root[256];

static void on_alarm(int sig) {
    (void)sig;
    printf("FAIL a load blocked for 20 s (a FIFO?)\n0 passed, 1 failed\n");
    fflush(stdout);
    _exit(1);
}

/* rewrites the safetensors file `path` with `from` replaced by `to` in its
   JSON header (the header length updated, the data untouched) */
static int patch_header(const char *path, const char *from, const char *to) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf, *out;
    long n;
    uint64_t hn = 0, nn;
    char *h, *at;
    size_t lf = strlen(from), lt = strlen(to), k;
    int i;
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (unsigned char *)malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(buf); return 0; }
    fclose(f);
    for (i = 7; i >= 0; i--) hn = hn << 8 | buf[i];
    h = (char *)malloc(hn + 1);
    memcpy(h, buf + 8, hn);
    h[hn] = 0;
    at = strstr(h, from);
    if (!at) { free(h); free(buf); return 0; }
    nn = hn - lf + lt;
    out = (unsigned char *)malloc((size_t)n + lt + 8);
    for (i = 0; i < 8; i++) out[i] = (unsigned char)(nn >> (8 * i));
    k = (size_t)(at - h);
    memcpy(out + 8, h, k);
    memcpy(out + 8 + k, to, lt);
    memcpy(out + 8 + k + lt, at + lf, hn - k - lf);
    memcpy(out + 8 + nn, buf + 8 + hn, (size_t)n - 8 - hn);
    f = fopen(path, "wb");
    fwrite(out, 1, (size_t)(8 + nn + ((size_t)n - 8 - hn)), f);
    fclose(f);
    free(out); free(h); free(buf);
    return 1;
}

static void test_file_contract(void) {
    d1_config c = tiny();
    d1_model m, loaded;
    d1_adamw o;
    d1_rng rg[2];
    char dir[512], path[600], meta[256];
    world w;
    const char *t = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/d1_contract_%d", t && *t ? t : "/tmp", (int)getpid());
    mkdir(root, 0777);
    signal(SIGALRM, on_alarm);
    trained(&m, &o, &c);
    d1_rng_seed(&rg[0], 1);
    d1_rng_seed(&rg[1], 2);

    /* a FIFO named config.json, then model.safetensors: refused at once */
    snprintf(dir, sizeof dir, "%s/fifo", root);
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(mkfifo(path, 0666) == 0, "mkfifo");
    memset(&loaded, 0x3c, sizeof loaded);
    w.m = NULL; w.o = NULL; w.rng = NULL; w.out = &loaded; w.out_bytes = sizeof loaded;
    alarm(20);
    CASEM(w, 0, D1_ERR_IO, "config.json': not a regular file", d1_model_load(&loaded, dir));
    unlink(path);
    CHECK(d1_model_save(&m, dir, D1_DTYPE_F32) == D1_OK, "save");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    CHECK(mkfifo(path, 0666) == 0, "mkfifo");
    CASEM(w, 0, D1_ERR_IO, "model.safetensors': not a regular file", d1_model_load(&loaded, dir));
    unlink(path);
    CHECK(d1_model_save(&m, dir, D1_DTYPE_F32) == D1_OK, "save again");
    CHECK(d1_train_state_save(dir, &m, &o, rg, 2, NULL) == D1_OK, "train state");
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    {
        char fifo[600];
        snprintf(fifo, sizeof fifo, "%s/optimizer.safetensors.keep", dir);
        rename(path, fifo);
        CHECK(mkfifo(path, 0666) == 0, "mkfifo");
        w.m = &m; w.o = &o; w.rng = &rg[0]; w.out = NULL;
        CASEM(w, 1, D1_ERR_IO, "optimizer.safetensors': not a regular file", d1_train_state_load(dir, &m, &o, rg, 2, NULL, 0));
        unlink(path);
        rename(fifo, path);
    }
    alarm(0);
    CHECK(d1_train_state_load(dir, &m, &o, rg, 2, NULL, 0) == D1_OK, "the real train state loads");

    /* an RNG state of all zeros (xoshiro returns 0 from it forever) and a step count AdamW cannot continue */
    {
        char copy[600];
        FILE *f;
        snprintf(copy, sizeof copy, "%s/orig.bin", root);
        { /* keep the original */
            FILE *in = fopen(path, "rb");
            int ch;
            f = fopen(copy, "wb");
            while (in && (ch = fgetc(in)) != EOF) fputc(ch, f);
            if (in) fclose(in);
            fclose(f);
        }
        snprintf(meta, sizeof meta, "\"d1.rng.1\":\"%llu %llu %llu %llu\"", (unsigned long long)rg[1].s[0],
                 (unsigned long long)rg[1].s[1], (unsigned long long)rg[1].s[2], (unsigned long long)rg[1].s[3]);
        CHECK(patch_header(path, meta, "\"d1.rng.1\":\"0 0 0 0\""), "patch the RNG (%s)", meta);
        w.m = &m; w.o = &o; w.rng = &rg[1]; w.out = NULL;
        CASE(w, 1, D1_ERR_CONFIG, d1_train_state_load(dir, &m, &o, rg, 2, NULL, 0));
        rename(copy, path);
        snprintf(meta, sizeof meta, "\"d1.step\":\"%lld\"", (long long)o.step);
        CHECK(patch_header(path, meta, "\"d1.step\":\"9223372036854775807\""), "patch the step (%s)", meta);
        CASE(w, 1, D1_ERR_CONFIG, d1_train_state_load(dir, &m, &o, rg, 2, NULL, 0));
    }
    /* files that claim more than they hold: refused before the claim is allocated */
    {
        char cfgp[700], stp[700];
        FILE *f;
        size_t before;
        uint64_t hn = 1u << 20, k;
        d1_model untouched;
        snprintf(dir, sizeof dir, "%s/claims", root);
        mkdir(dir, 0777);
        snprintf(cfgp, sizeof cfgp, "%s/adapter_config.json", dir);
        f = fopen(cfgp, "w");
        fprintf(f, "{\"r\": 32, \"lora_alpha\": 16, \"target_modules\": [\"q_proj\", \"k_proj\", \"v_proj\", "
                   "\"attn_out\", \"ff_proj\", \"up_proj\", \"ff_out\"]}"); /* r = dim, no weights file */
        fclose(f);
        w.m = &m; w.o = NULL; w.rng = NULL; w.out = NULL;
        before = live_bytes; peak_bytes = live_bytes;
        CASEM(w, 1, D1_ERR_NOT_FOUND, "adapter_model.safetensors': No such file", d1_lora_load(&m, dir));
        CHECK(m.lora == NULL && peak_bytes - before < 65536, "LoRA without weights: %zu bytes allocated, lora %p",
              peak_bytes - before, (void *)m.lora);
        snprintf(stp, sizeof stp, "%s/adapter_model.safetensors", dir);
        f = fopen(stp, "wb");
        fwrite("\x02\0\0\0\0\0\0\0{}", 1, 10, f); /* a valid empty safetensors file */
        fclose(f);
        before = live_bytes; peak_bytes = live_bytes;
        CASE(w, 1, D1_ERR_TRUNCATED, d1_lora_load(&m, dir));
        CHECK(m.lora == NULL && peak_bytes - before < 65536, "LoRA of 10 bytes: %zu bytes allocated",
              peak_bytes - before);
        /* a config of 3000 layers beside a 1 MB header of {} and spaces */
        snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
        {
            d1_config big = tiny(), rc_;
            char text[2048];
            big.n_layers = 3000; /* 27,003 tensors: the old bound (32 bytes each) let the table be built */
            CHECK(d1_config_resolve(&big, &rc_) == D1_OK && d1_config_to_json(&rc_, text, sizeof text) == D1_OK,
                  "a config of 3000 layers");
            f = fopen(cfgp, "w");
            fputs(text, f);
            fclose(f);
        }
        snprintf(stp, sizeof stp, "%s/model.safetensors", dir);
        f = fopen(stp, "wb");
        for (k = 0; k < 8; k++) fputc((int)((hn >> (8 * k)) & 255), f);
        fputs("{}", f);
        for (k = 2; k < hn; k++) fputc(' ', f);
        fclose(f);
        memset(&untouched, 0x6b, sizeof untouched);
        w.m = NULL; w.out = &untouched; w.out_bytes = sizeof untouched;
        before = live_bytes; peak_bytes = live_bytes;
        {
            int rc = d1_model_load(&untouched, dir);
            CHECK(rc == D1_ERR_TRUNCATED || rc == D1_ERR_MISSING, "claims: %s", d1_strerror(rc));
        }
        CHECK(peak_bytes - before <= 2 * (hn + 8), "a 1 MB file made the loader allocate %zu bytes",
              peak_bytes - before);
    }
    d1_adamw_free(&o);
    d1_model_free(&m);
}

/* ---- what a load allocates: at most twice the bytes of the files it reads -------
   (#15: no load takes more than 2x its files in memory). Each load below is
   measured with the counting allocator (tests/count_alloc.h); failing loads
   are CASEs (their code, nothing changed). Before this bound held, a
   config.json alone could make a load build RoPE tables of max_seq_len x
   head_dim floats, a small header a tensor table of 196 bytes per tensor the
   config claims, an index a fixed 1 MiB of shard names, and an adapter load
   four times its weights, or its adapters before their header. */
static size_t file_bytes(const char *dir, const char *name) {
    char p[700];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 ? (size_t)st.st_size : 0;
}

/* a file of its own: the 8-byte length hn, then head padded with spaces to hn
   bytes (head must leave its last byte to the closing brace), then `data`
   zero bytes */
static void write_st(const char *dir, const char *name, const char *head, uint64_t hn, size_t data) {
    char p[700];
    FILE *f;
    uint64_t k, hl = strlen(head);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    f = fopen(p, "wb");
    for (k = 0; k < 8; k++) fputc((int)((hn >> (8 * k)) & 255), f);
    fputs(head, f);
    for (k = hl; k + 1 < hn; k++) fputc(' ', f);
    fputc('}', f);
    for (k = 0; k < data; k++) fputc(0, f);
    fclose(f);
}

static void write_config(const char *dir, const d1_config *c) {
    char p[700], text[2048];
    FILE *f;
    d1_config r;
    CHECK(d1_config_resolve(c, &r) == D1_OK && d1_config_to_json(&r, text, sizeof text) == D1_OK, "config");
    snprintf(p, sizeof p, "%s/config.json", dir);
    f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

/* d1_model_load(dir): its code (a failure changes nothing), and its peak
   allocation against twice the bytes of the files it reads */
static void load_within(const char *what, const char *dir, int code, size_t files, const d1_model *want) {
    d1_model got;
    world w;
    size_t before = live_bytes;
    memset(&got, 0x5a, sizeof got);
    memset(&w, 0, sizeof w);
    w.out = &got;
    w.out_bytes = sizeof got;
    peak_bytes = live_bytes;
    if (code != D1_OK) {
        CASE(w, 0, code, d1_model_load(&got, dir));
    } else {
        int rc = d1_model_load(&got, dir);
        CHECK(rc == D1_OK, "%s: %s", what, d1_strerror(rc));
        if (rc == D1_OK && want)
            CHECK(got.num_params == want->num_params &&
                      !memcmp(got.param_memory, want->param_memory, want->num_params * sizeof(float)),
                  "%s: other weights", what);
    }
    printf("  %s: %zu bytes of files, %zu allocated (%.2fx)\n", what, files, peak_bytes - before,
           (double)(peak_bytes - before) / (double)files);
    CHECK(peak_bytes - before <= 2 * files, "%s: %zu bytes of files, %zu allocated", what, files,
          peak_bytes - before);
    if (code == D1_OK) d1_model_free(&got);
}

/* a config of L layers of dim 2 (the smallest tensors: most of them per byte) */
static d1_config thin(int L) {
    d1_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 4; c.dim = 2; c.n_layers = L; c.n_heads = 1; c.n_kv_heads = 1; c.ffn_dim = 1;
    c.max_seq_len = 8; c.mask_id = 3; c.eos_id = 2; c.pad_id = 1; c.tied_embeddings = 1;
    return c;
}

static void test_load_memory(void) {
    char dir[600];
    d1_config c;
    d1_model m;
    int tok[4] = {1, 2, 3, 4};
    mkdir(root, 0777);

    /* 1. max_sequence_length 46340 (the largest accepted) beside weights of
       70 KB: the RoPE tables (46340 x 64 x 2 floats, 11.9 MB) came with the
       load; now with the first pass, for the positions it uses */
    memset(&c, 0, sizeof c);
    c.vocab_size = 8; c.dim = 64; c.n_layers = 1; c.n_heads = 1; c.n_kv_heads = 1; c.ffn_dim = 2;
    c.max_seq_len = 46340; c.mask_id = 7; c.eos_id = 6; c.pad_id = 5;
    snprintf(dir, sizeof dir, "%s/long_rope", root);
    CHECK(d1_model_init(&m, &c, 3) == D1_OK && d1_model_save(&m, dir, D1_DTYPE_F32) == D1_OK, "save");
    load_within("max_sequence_length 46340, F32", dir, D1_OK,
                file_bytes(dir, "config.json") + file_bytes(dir, "model.safetensors"), &m);
    CHECK(d1_model_forward(&m, tok, 1, 4, NULL) == D1_OK && m.state->rope_len < 46340, "a pass of 4 positions: %d rows",
          m.state->rope_len);
    d1_model_free(&m);

    /* 2. a real checkpoint of 4502 tiny tensors (500 layers of dim 2, BF16):
       the table (196 bytes a tensor) outgrew the header that names them */
    c = thin(500);
    snprintf(dir, sizeof dir, "%s/many", root);
    CHECK(d1_model_init(&m, &c, 4) == D1_OK && d1_model_save(&m, dir, D1_DTYPE_BF16) == D1_OK, "save");
    {
        d1_model bf; /* the weights as BF16 holds them */
        CHECK(d1_model_load(&bf, dir) == D1_OK, "load");
        load_within("4502 tensors of 500 layers, BF16", dir, D1_OK,
                    file_bytes(dir, "config.json") + file_bytes(dir, "model.safetensors"), &bf);
        d1_model_free(&bf);
    }
    d1_model_free(&m);

    /* 3. a config of 4088 tensors beside a header "{}" and the bytes its
       parameters need: the table was built (below 4096 tensors, always) */
    c = thin(454);
    snprintf(dir, sizeof dir, "%s/small_header", root);
    mkdir(dir, 0777);
    write_config(dir, &c);
    write_st(dir, "model.safetensors", "{", 2, 2 * d1_config_num_params(&c));
    load_within("4088 tensors claimed, header {}", dir, D1_ERR_MISSING,
                file_bytes(dir, "config.json") + file_bytes(dir, "model.safetensors"), NULL);

    /* 4. a config of 9002 tensors beside a header of 64 bytes each (what the
       old bound let through) whose first key is no tensor */
    c = thin(1000);
    snprintf(dir, sizeof dir, "%s/bound_header", root);
    mkdir(dir, 0777);
    write_config(dir, &c);
    write_st(dir, "model.safetensors", "{\"x\":0", 64 * (uint64_t)(2 + 9 * 1000), 2 * d1_config_num_params(&c));
    load_within("9002 tensors claimed, 64 header bytes each", dir, D1_ERR_UNKNOWN_TENSOR,
                file_bytes(dir, "config.json") + file_bytes(dir, "model.safetensors"), NULL);

    /* 5. an index that puts each of 3602 tensors in a file of its own, and no
       such files: 1 MiB of shard names and the table came first */
    c = thin(400);
    snprintf(dir, sizeof dir, "%s/index", root);
    mkdir(dir, 0777);
    write_config(dir, &c);
    {
        d1_model cm;
        char p[700];
        FILE *f;
        int i, n;
        CHECK(d1_model_init(&cm, &c, 1) == D1_OK, "init");
        n = d1_model_num_tensors(&cm);
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
        f = fopen(p, "w");
        fputs("{\"weight_map\": {", f);
        for (i = 0; i < n; i++) {
            d1_tensor t;
            d1_model_tensor(&cm, i, &t);
            fprintf(f, "%s\"%s\": \"s%05d.safetensors\"", i ? ", " : "", t.name, i);
        }
        fputs("}}", f);
        fclose(f);
        d1_model_free(&cm);
    }
    load_within("3602 tensors in 3602 missing shards", dir, D1_ERR_NOT_FOUND,
                file_bytes(dir, "config.json") + file_bytes(dir, "model.safetensors.index.json"), NULL);

    /* 6. adapters: loaded onto a model without them (their values alone: the
       gradients come at the first backward) and onto attached ones (staged
       in a second copy, committed when all went well) */
    memset(&c, 0, sizeof c);
    c.vocab_size = 8; c.dim = 64; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.ffn_dim = 96;
    c.max_seq_len = 16; c.mask_id = 7; c.eos_id = 6; c.pad_id = 5;
    snprintf(dir, sizeof dir, "%s/adapters", root);
    CHECK(d1_model_init(&m, &c, 5) == D1_OK && d1_lora_attach(&m, 8, 16.0f, 6) == D1_OK, "attach");
    CHECK(d1_lora_save(&m, dir) == D1_OK, "save adapters");
    {
        d1_model fresh;
        size_t files = file_bytes(dir, "adapter_config.json") + file_bytes(dir, "adapter_model.safetensors"), before;
        int pass;
        CHECK(d1_model_init(&fresh, &c, 5) == D1_OK, "init");
        for (pass = 0; pass < 2; pass++) {
            before = live_bytes;
            peak_bytes = live_bytes;
            CHECK(d1_lora_load(&fresh, dir) == D1_OK, "load adapters");
            printf("  adapters onto %s: %zu bytes of files, %zu allocated (%.2fx)\n",
                   pass ? "attached ones" : "a model without", files, peak_bytes - before,
                   (double)(peak_bytes - before) / (double)files);
            CHECK(peak_bytes - before <= 2 * files, "adapters (%d): %zu bytes of files, %zu allocated", pass, files,
                  peak_bytes - before);
            CHECK(fresh.lora && !memcmp(fresh.lora->param_memory, m.lora->param_memory,
                                         m.lora->num_params * sizeof(float)), "other adapters");
        }
        /* BF16 adapters (d1's PEFT adapters are): F32 values (twice the file; the gradients come at the first backward) */
        {
            static const char *const names[1] = {"adapter_model.safetensors"};
            d1__st_table tab;
            d1__save_ctx st;
            d1__emit_fn emit[1];
            const void *ctx[1];
            d1_lora_detach(&fresh);
            d1__table_lora(&tab, &m.config, m.lora->rank, m.lora->targets, m.lora->param_memory);
            memset(&st, 0, sizeof st);
            st.tab = &tab; st.dtype = D1_DTYPE_BF16;
            emit[0] = d1__emit_safetensors; ctx[0] = &st;
            CHECK(d1__save_files(dir, 1, names, emit, ctx) == D1_OK, "BF16 adapters");
            files = file_bytes(dir, "adapter_config.json") + file_bytes(dir, "adapter_model.safetensors");
            before = live_bytes;
            peak_bytes = live_bytes;
            CHECK(d1_lora_load(&fresh, dir) == D1_OK, "load BF16 adapters: %s", d1_last_error());
            printf("  BF16 adapters onto a model without: %zu bytes of files, %zu allocated (%.2fx)\n", files,
                   peak_bytes - before, (double)(peak_bytes - before) / (double)files);
            CHECK(peak_bytes - before <= 2 * files, "BF16 adapters: %zu bytes of files, %zu allocated", files,
                  peak_bytes - before);
            CHECK(d1_lora_save(&m, dir) == D1_OK, "the F32 adapters back");
        }
        d1_model_free(&fresh);
    }
    /* 7. an adapter file as long as the adapters' weights, all of it header:
       refused before the adapters are attached */
    {
        d1_model fresh;
        world w;
        size_t files, before;
        write_st(dir, "adapter_model.safetensors", "{", (uint64_t)(4 * m.lora->num_params), 0);
        files = file_bytes(dir, "adapter_config.json") + file_bytes(dir, "adapter_model.safetensors");
        CHECK(d1_model_init(&fresh, &c, 5) == D1_OK, "init");
        memset(&w, 0, sizeof w);
        w.m = &fresh;
        before = live_bytes;
        peak_bytes = live_bytes;
        CASE(w, 1, D1_ERR_MISSING, d1_lora_load(&fresh, dir));
        printf("  adapters of a header only: %zu bytes of files, %zu allocated (%.2fx)\n", files, peak_bytes - before,
               (double)(peak_bytes - before) / (double)files);
        CHECK(fresh.lora == NULL && peak_bytes - before <= 2 * files, "a header only: %zu bytes of files, %zu allocated",
              files, peak_bytes - before);
        d1_model_free(&fresh);
    }
    d1_model_free(&m);
}

/* ---- a model and its training state as one unit ------------------------------------ */
static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void test_pair_mismatch(void) {
    d1_config c = tiny();
    d1_model m, back;
    d1_adamw o;
    d1_rng rg[1];
    char dir[600], sub[700];
    world w;
    trained(&m, &o, &c);
    d1_rng_seed(&rg[0], 4);
    snprintf(dir, sizeof dir, "%s/pair", root);
    /* the demo's old order, cut off after the model: the state is of other weights */
    CHECK(d1_model_save(&m, dir, D1_DTYPE_F32) == D1_OK, "model");
    CHECK(d1_train_state_save(dir, &m, &o, rg, 1, NULL) == D1_OK, "state");
    CHECK(d1_train_state_load(dir, &m, &o, rg, 1, NULL, 0) == D1_OK, "a matched pair loads");
    m.param_memory[5] += 1.0f;
    CHECK(d1_model_save(&m, dir, D1_DTYPE_F32) == D1_OK, "the model of the next step");
    w.m = &m; w.o = &o; w.rng = rg; w.out = NULL; w.out_bytes = 0;
    CASE(w, 1, D1_ERR_MISMATCH, d1_train_state_load(dir, &m, &o, rg, 1, NULL, 0));
    snprintf(sub, sizeof sub, "%s/model.safetensors", dir);
    remove(sub);
    CASE(w, 1, D1_ERR_MISMATCH, d1_train_state_load(dir, &m, &o, rg, 1, NULL, 0));

    /* d1_checkpoint_save: the pair in one step; a directory with other files is refused */
    snprintf(dir, sizeof dir, "%s/unit", root);
    CHECK(d1_checkpoint_save(dir, &m, D1_DTYPE_F32, &o, rg, 1, "{\"k\": 1}") == D1_OK, "checkpoint");
    CHECK(d1_checkpoint_save(dir, &m, D1_DTYPE_BF16, &o, rg, 1, NULL) == D1_OK, "over it");
    CHECK(d1_model_load(&back, dir) == D1_OK, "loads");
    CHECK(d1_train_state_load(dir, &back, &o, rg, 1, NULL, 0) == D1_OK, "its state loads");
    d1_model_free(&back);
    snprintf(sub, sizeof sub, "%s.new", dir);
    CHECK(!file_exists(sub), "no DIR.new left");
    snprintf(sub, sizeof sub, "%s.old", dir);
    CHECK(!file_exists(sub), "no DIR.old left");
    snprintf(sub, sizeof sub, "%s/notes.txt", dir);
    {
        FILE *f = fopen(sub, "w");
        if (f) { fputs("mine", f); fclose(f); }
    }
    w.out = NULL;
    CASE(w, 1, D1_ERR_ARG, d1_checkpoint_save(dir, &m, D1_DTYPE_F32, &o, rg, 1, NULL));
    CHECK(file_exists(sub), "the user's file is still there");
    remove(sub);
    /* a kill between the two renames: DIR missing, DIR.old and DIR.new there */
    {
        char nw[700], old[700];
        snprintf(nw, sizeof nw, "%s.new", dir);
        snprintf(old, sizeof old, "%s.old", dir);
        CHECK(d1_checkpoint_save(nw, &m, D1_DTYPE_F32, &o, rg, 1, NULL) == D1_OK, "DIR.new");
        CHECK(rename(dir, old) == 0, "DIR -> DIR.old");
        CHECK(d1_model_load(&back, dir) == D1_OK, "the load finds DIR.new");
        d1_model_free(&back);
        {
            char withslash[700];
            snprintf(withslash, sizeof withslash, "%s/", dir);
            CHECK(d1_model_load(&back, withslash) == D1_OK, "and finds it from \"DIR/\" too");
        }
        CHECK(d1_train_state_load(dir, &back, &o, rg, 1, NULL, 0) == D1_OK, "and its state");
        CHECK(back.param_memory[5] == m.param_memory[5], "the new pair");
        d1_model_free(&back);
        CHECK(d1_checkpoint_save(dir, &m, D1_DTYPE_F32, &o, rg, 1, NULL) == D1_OK, "the next save settles");
        CHECK(file_exists(dir) && !file_exists(nw) && !file_exists(old), "one directory left");
    }
    d1_adamw_free(&o);
    d1_model_free(&m);
}

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    int ch;
    if (!in || !out) {
        if (in) fclose(in);
        return 0;
    }
    while ((ch = fgetc(in)) != EOF) fputc(ch, out);
    fclose(in);
    fclose(out);
    return 1;
}

/* a kill between d1_model_save's two renames when the config changed: the
   new weights, the old config.json, the new one as config.json.tmp */
static void test_model_save_between_renames(void) {
    d1_config c = tiny(), c3 = tiny();
    d1_model a, b, back;
    char da[600], db[600], from[700], to[700];
    c3.n_layers = 3;
    d1_model_init(&a, &c, 1);
    d1_model_init(&b, &c3, 2);
    snprintf(da, sizeof da, "%s/renames_a", root);
    snprintf(db, sizeof db, "%s/renames_b", root);
    CHECK(d1_model_save(&a, da, D1_DTYPE_F32) == D1_OK && d1_model_save(&b, db, D1_DTYPE_F32) == D1_OK, "saves");
    snprintf(from, sizeof from, "%s/model.safetensors", db);
    snprintf(to, sizeof to, "%s/model.safetensors", da);
    CHECK(copy_file(from, to), "the new weights in place");
    snprintf(from, sizeof from, "%s/config.json", db);
    snprintf(to, sizeof to, "%s/config.json.tmp", da);
    CHECK(copy_file(from, to), "the new config not yet renamed");
    CHECK(d1_model_load(&back, da) == D1_OK, "the save rolls forward on load");
    CHECK(back.config.n_layers == 3 && !memcmp(back.param_memory, b.param_memory, b.num_params * sizeof(float)),
          "the new model");
    d1_model_free(&back);
    { /* a config.json.tmp that does not fit either: the first error, nothing changed */
        FILE *f = fopen(to, "w");
        d1_model untouched;
        int rc;
        fputs("{}", f);
        fclose(f);
        memset(&untouched, 0x5c, sizeof untouched);
        back = untouched;
        rc = d1_model_load(&back, da);
        CHECK(rc == D1_ERR_TENSOR_SHAPE || rc == D1_ERR_MISSING || rc == D1_ERR_UNKNOWN_TENSOR ||
                  rc == D1_ERR_TRUNCATED,
              "a stale config.json.tmp: %s", d1_strerror(rc));
        CHECK(!memcmp(&back, &untouched, sizeof back), "a failed load touched the model");
    }
    d1_model_free(&a);
    d1_model_free(&b);
}

/* kill -9 a process that saves checkpoints in a loop, at random instants;
   every directory left behind must load as a matched pair of one save
   (weight 0 and the optimizer's step both carry the save's number) */
static void test_kill_during_save(void) {
    d1_config c = tiny();
    char dir[600];
    int kills = 0, bad = 0, loaded_pairs = 0, last_step = 0;
    double t0 = d1__now();
    d1_rng pick;
    c.dim = 64; c.ffn_dim = 160; c.n_layers = 3; /* a few hundred KB a save */
    snprintf(dir, sizeof dir, "%s/kill", root);
    d1_rng_seed(&pick, 77);
    { /* a first pair (save 0), so that every kill has a directory to leave behind */
        d1_model m;
        d1_adamw o;
        d1_adamw_desc od = d1_adamw_default_desc();
        d1_rng r;
        d1_model_init(&m, &c, 1);
        d1_adamw_init(&o, &m, &od);
        d1_rng_seed(&r, 1);
        m.param_memory[0] = 0.0f;
        CHECK(d1_checkpoint_save(dir, &m, D1_DTYPE_F32, &o, &r, 1, NULL) == D1_OK, "save 0");
        d1_adamw_free(&o);
        d1_model_free(&m);
    }
    while (kills < 200 && d1__now() - t0 < 40.0) {
        pid_t pid = fork();
        if (pid == 0) {
            d1_model m;
            d1_adamw o;
            d1_adamw_desc od = d1_adamw_default_desc();
            d1_rng r;
            int64_t k;
            d1_model_init(&m, &c, 1);
            d1_adamw_init(&o, &m, &od);
            d1_rng_seed(&r, 1);
            for (k = 1;; k++) {
                m.param_memory[0] = (float)k;
                o.step = k;
                if (d1_checkpoint_save(dir, &m, D1_DTYPE_F32, &o, &r, 1, NULL) != D1_OK) _exit(3);
            }
        }
        {
            struct timespec ts;
            ts.tv_sec = 0;
            ts.tv_nsec = (long)(2000 + d1_rng_u64(&pick) % 30000) * 1000L;
            nanosleep(&ts, NULL);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        kills++;
        {
            d1_model m;
            d1_adamw o;
            d1_adamw_desc od = d1_adamw_default_desc();
            d1_rng r;
            int rc = d1_model_load(&m, dir);
            if (rc != D1_OK) {
                bad++;
                printf("  kill %d: the model does not load: %s\n", kills, d1_strerror(rc));
                continue;
            }
            d1_adamw_init(&o, &m, &od);
            rc = d1_train_state_load(dir, &m, &o, &r, 1, NULL, 0);
            if (rc != D1_OK || (float)o.step != m.param_memory[0]) {
                bad++;
                printf("  kill %d: %s, step %lld, weight 0 = %g\n", kills, d1_strerror(rc), (long long)o.step,
                       m.param_memory[0]);
            } else {
                loaded_pairs++;
                if (o.step > last_step) last_step = (int)o.step;
            }
            d1_adamw_free(&o);
            d1_model_free(&m);
        }
    }
    printf("  %d kills during saves, %d directories loaded as matched pairs (saves up to %d), %d bad\n", kills,
           loaded_pairs, last_step, bad);
    CHECK(bad == 0 && loaded_pairs == kills && kills >= 50, "%d bad, %d pairs, of %d kills", bad, loaded_pairs, kills);
}

int main(void) {
    TH_BANNER();
    RUN(test_sampler_contract);
    RUN(test_loss_contract);
    RUN(test_adamw_contract);
    RUN(test_grpo_step_contract);
    RUN(test_file_contract);
    RUN(test_load_memory);
    RUN(test_pair_mismatch);
    RUN(test_model_save_between_renames);
    RUN(test_kill_during_save);
    printf("  %d misuse calls, each checked for its code and for nothing changed\n", n_cases);
    {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (root[0] && system(cmd) != 0) printf("  (could not remove %s)\n", root);
    }
    return th_summary();
}
