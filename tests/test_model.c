/* The model as a whole: the PyTorch reference dump (logits, loss, every
   gradient), determinism, learning on a synthetic corpus, and bad input. */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "harness.h"
#include "refdata.h"

#ifndef D1_TEST_DATA
#define D1_TEST_DATA "tests/data"
#endif

static void test_reference_dump(void) {
    ref_file rf;
    const ref_record *r;
    d1_config c;
    d1_model m;
    int B, T, i, nt, rc;
    uint8_t mask[64], key_mask[64];
    float loss, p[8];
    double worst_grad = 0;
    if (!ref_load(&rf, D1_TEST_DATA "/ref_core.bin")) {
        CHECK(0, "cannot read %s/ref_core.bin", D1_TEST_DATA);
        return;
    }
    CHECK(ref_model_init(&m, &rf, 0, D1_TOKEN_NONE), "the reference model, weights by Hugging Face name");
    c = m.config;
    nt = d1_model_num_tensors(&m);
    CHECK(nt == 2 + 9 * c.n_layers + !c.tied_embeddings, "tensor count %d", nt);
    r = ref_get(&rf, "tokens");
    B = r->dims[0]; T = r->dims[1];
    for (i = 0; i < B * T; i++) {
        mask[i] = (uint8_t)((const int *)ref_get(&rf, "mask")->data)[i];
        key_mask[i] = (uint8_t)((const int *)ref_get(&rf, "key_mask")->data)[i];
    }
    memcpy(p, ref_get(&rf, "p")->data, (size_t)B * sizeof(float));
    d1_model_zero_grad(&m);
    rc = d1_pretrain_loss(&m, (const int *)r->data, B, T, mask, p, NULL, &loss);
    CHECK(rc == D1_OK, "pretrain loss: %s", d1_strerror(rc));
    {
        float ref_loss = *(const float *)ref_get(&rf, "loss")->data;
        const ref_record *lr = ref_get(&rf, "logits");
        double el = ref_rel_err(m.logits, (const float *)lr->data, lr->n);
        CHECK(fabs(loss - ref_loss) <= 1e-4 * fabs(ref_loss), "loss %.7f vs reference %.7f", loss, ref_loss);
        CHECK(el <= 1e-4, "logits rel err %.3g", el);
        printf("  reference: loss %.7f vs %.7f, logits rel err %.2g\n", loss, ref_loss, el);
    }
    for (i = 0; i < nt; i++) {
        d1_tensor t;
        char gname[96];
        double e;
        d1_model_tensor(&m, i, &t);
        snprintf(gname, sizeof gname, "grad.%s", t.name);
        r = ref_get(&rf, gname);
        CHECK(r && r->n == t.size, "gradient %s present", gname);
        if (!r) continue;
        e = ref_rel_err(m.grad_memory + t.offset, (const float *)r->data, t.size);
        if (e > worst_grad) worst_grad = e;
        CHECK(e <= 1e-3, "%s rel err %.3g", gname, e);
    }
    printf("  reference: worst gradient rel err %.2g over %d tensors\n", worst_grad, nt);
    /* key-padding mask: sequence 1 attends keys 0..5 only */
    rc = d1_model_forward(&m, (const int *)ref_get(&rf, "noisy")->data, B, T, key_mask);
    CHECK(rc == D1_OK, "forward with key mask");
    r = ref_get(&rf, "logits_keymask");
    CHECK(ref_rel_err(m.logits, (const float *)r->data, r->n) <= 1e-4, "key-masked logits rel err %.3g",
          ref_rel_err(m.logits, (const float *)r->data, r->n));
    d1_model_free(&m);
    ref_free(&rf);
}

/* ---- a small synthetic corpus: arithmetic progressions mod 12 ------------ */
static void make_batch(d1_rng *r, int *tok, int B, int T) {
    int b, i;
    for (b = 0; b < B; b++) {
        int s = (int)(d1_rng_u64(r) % 12), d = 1 + (int)(d1_rng_u64(r) % 3);
        for (i = 0; i < T; i++) tok[b * T + i] = (s + i * d) % 12;
    }
}

static d1_config small_config(void) {
    d1_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 16; c.dim = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2;
    c.ffn_dim = 72; c.max_seq_len = 16; c.mask_id = 15; c.eos_id = 14; c.pad_id = 14;
    return c;
}

/* 20 training steps from fixed seeds; returns a copy of the weights. */
static float *train20(int threads, float *losses) {
    d1_config c = small_config();
    d1_model m;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_rng data, noise;
    int tok[8 * 16], s;
    float *w;
    d1_model_init(&m, &c, 5);
    CHECK(d1_model_set_threads(&m, threads) == D1_OK, "threads %d", threads);
    d1_adamw_init(&opt, &m, &od);
    d1_rng_seed(&data, 11);
    d1_rng_seed(&noise, 12);
    for (s = 0; s < 20; s++) {
        make_batch(&data, tok, 8, 16);
        d1_model_zero_grad(&m);
        CHECK(d1_pretrain_loss(&m, tok, 8, 16, NULL, NULL, &noise, &losses[s]) == D1_OK, "step %d", s);
        CHECK(d1_adamw_step(&opt, &m, NULL) == D1_OK, "adamw %d", s);
    }
    w = (float *)malloc(m.num_params * sizeof(float));
    memcpy(w, m.param_memory, m.num_params * sizeof(float));
    d1_adamw_free(&opt);
    d1_model_free(&m);
    return w;
}

static void test_determinism(void) {
    d1_config c = small_config();
    size_t n = d1_config_num_params(&c);
    float l[4][20];
#ifdef D1_NO_THREADS
    int two = 1; /* no threads in this build: set_threads(2) must refuse, 1 thread twice more */
    d1_model m;
    d1_model_init(&m, &c, 1);
    CHECK(d1_model_set_threads(&m, 2) == D1_ERR_ARG, "2 threads without threads");
    d1_model_free(&m);
#else
    int two = 2;
#endif
    float *a1 = train20(1, l[0]), *b1 = train20(1, l[1]), *a2 = train20(two, l[2]), *b2 = train20(two, l[3]);
    CHECK(memcmp(a1, b1, n * sizeof(float)) == 0, "1 thread: two runs differ");
    CHECK(memcmp(a2, b2, n * sizeof(float)) == 0, "2 threads: two runs differ");
#ifndef D1_USE_BLIS /* BLIS blocks each thread's share differently, so only our GEMM promises this */
    CHECK(memcmp(a1, a2, n * sizeof(float)) == 0, "1 and 2 threads differ (%s on %s)", d1_build_info(), th_cpu());
    CHECK(memcmp(l[0], l[2], sizeof l[0]) == 0, "losses differ across thread counts (%s on %s)", d1_build_info(), th_cpu());
#endif
    free(a1); free(b1); free(a2); free(b2);
}

/* Pretraining lowers the loss: the mean of the last 20 of 600 steps is below
   a third of the first step's loss (stated factor 3). Short (th_short): 60
   steps, and the last 20 below the first step's loss. */
static void test_learning(void) {
    d1_config c = small_config();
    d1_model m;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_rng data, noise;
    int tok[16 * 16], s, steps = th_short() ? 60 : 600;
    float loss = 0, first = 0, last = 0, factor = th_short() ? 1.0f : 3.0f;
    od.lr = 3e-3f;
    d1_model_init(&m, &c, 1);
    d1_adamw_init(&opt, &m, &od);
    d1_rng_seed(&data, 2);
    d1_rng_seed(&noise, 3);
    for (s = 0; s < steps; s++) {
        make_batch(&data, tok, 16, 16);
        d1_model_zero_grad(&m);
        if (d1_pretrain_loss(&m, tok, 16, 16, NULL, NULL, &noise, &loss) != D1_OK) break;
        d1_adamw_step(&opt, &m, NULL);
        if (s == 0) first = loss;
        if (s >= steps - 20) last += loss / 20;
    }
    printf("  learning: loss %.3f at step 1, %.3f over the last 20 of %d\n", first, last, steps);
    CHECK(s == steps, "training stopped at step %d", s);
    CHECK(last < first / factor, "loss fell from %.3f to only %.3f", first, last);
    d1_adamw_free(&opt);
    d1_model_free(&m);
}

/* ---- bad input: an error code, and nothing changes -------------------------- */
typedef struct snapshot { float *w, *g, *om; d1_rng rng; int64_t step; } snapshot;

static snapshot snap(const d1_model *m, const d1_adamw *o, const d1_rng *r) {
    snapshot s;
    s.w = (float *)malloc(m->num_params * sizeof(float));
    s.g = (float *)malloc(m->num_params * sizeof(float));
    s.om = (float *)malloc(2 * m->num_params * sizeof(float));
    memcpy(s.w, m->param_memory, m->num_params * sizeof(float));
    memcpy(s.g, m->grad_memory, m->num_params * sizeof(float));
    memcpy(s.om, o->m, 2 * m->num_params * sizeof(float));
    s.rng = *r;
    s.step = o->step;
    return s;
}
static int same(const snapshot *s, const d1_model *m, const d1_adamw *o, const d1_rng *r) {
    int ok = !memcmp(s->w, m->param_memory, m->num_params * sizeof(float)) &&
             !memcmp(s->g, m->grad_memory, m->num_params * sizeof(float)) &&
             !memcmp(s->om, o->m, 2 * m->num_params * sizeof(float)) && !memcmp(&s->rng, r, sizeof *r) &&
             s->step == o->step;
    free(s->w); free(s->g); free(s->om);
    return ok;
}

static void test_bad_input(void) {
    d1_config c = small_config(), bad;
    d1_model m, untouched;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_rng r;
    int tok[2 * 16], i, rc;
    float loss = 123.0f, p[2] = {0.5f, 0.5f};
    uint8_t mask[32], km[32];
    snapshot s;
    d1_model_init(&m, &c, 1);
    d1_adamw_init(&opt, &m, &od);
    d1_rng_seed(&r, 4);
    make_batch(&r, tok, 2, 16);
    d1_model_zero_grad(&m);
    d1_pretrain_loss(&m, tok, 2, 16, NULL, NULL, &r, &loss); /* some state to protect */
    d1_adamw_step(&opt, &m, NULL);
    memset(mask, 1, sizeof mask);

#define EXPECT(call, code)                                                         \
    do {                                                                           \
        s = snap(&m, &opt, &r);                                                    \
        rc = (call);                                                               \
        CHECK(rc == (code), "%s gave %d (%s), expected %s", #call, rc, d1_strerror(rc), #code); \
        CHECK(same(&s, &m, &opt, &r), "%s changed the model, optimizer or rng", #call); \
    } while (0)

    tok[5] = c.vocab_size;
    EXPECT(d1_pretrain_loss(&m, tok, 2, 16, NULL, NULL, &r, &loss), D1_ERR_TOKEN);
    EXPECT(d1_model_forward(&m, tok, 2, 16, NULL), D1_ERR_TOKEN);
    tok[5] = -1;
    EXPECT(d1_pretrain_loss(&m, tok, 2, 16, NULL, NULL, &r, &loss), D1_ERR_TOKEN);
    tok[5] = 3;
    EXPECT(d1_pretrain_loss(&m, tok, 1, 32, NULL, NULL, &r, &loss), D1_ERR_SHAPE); /* T > max_seq_len */
    EXPECT(d1_pretrain_loss(&m, tok, 0, 16, NULL, NULL, &r, &loss), D1_ERR_SHAPE);
    EXPECT(d1_pretrain_loss(&m, tok, 2, 0, NULL, NULL, &r, &loss), D1_ERR_SHAPE);
    EXPECT(d1_pretrain_loss(&m, tok, -1, 16, NULL, NULL, &r, &loss), D1_ERR_SHAPE);
    EXPECT(d1_model_forward(&m, tok, 2, -3, NULL), D1_ERR_SHAPE);
    EXPECT(d1_pretrain_loss(&m, NULL, 2, 16, NULL, NULL, &r, &loss), D1_ERR_ARG);
    EXPECT(d1_pretrain_loss(NULL, tok, 2, 16, NULL, NULL, &r, &loss), D1_ERR_ARG);
    EXPECT(d1_pretrain_loss(&m, tok, 2, 16, NULL, NULL, NULL, &loss), D1_ERR_ARG);
    EXPECT(d1_pretrain_loss(&m, tok, 2, 16, NULL, NULL, &r, NULL), D1_ERR_ARG);
    EXPECT(d1_pretrain_loss(&m, tok, 2, 16, mask, NULL, &r, &loss), D1_ERR_ARG); /* mask without p */
    p[1] = 0.0f;
    EXPECT(d1_pretrain_loss(&m, tok, 2, 16, mask, p, NULL, &loss), D1_ERR_ARG);
    p[1] = NAN;
    EXPECT(d1_pretrain_loss(&m, tok, 2, 16, mask, p, NULL, &loss), D1_ERR_ARG);
    memset(km, 1, sizeof km);
    memset(km + 16, 0, 16); /* sequence 1 may attend nothing */
    EXPECT(d1_model_forward(&m, tok, 2, 16, km), D1_ERR_ARG);
    EXPECT(d1_model_forward(&m, NULL, 2, 16, NULL), D1_ERR_ARG);
    EXPECT(d1_model_backward(&m, NULL), D1_ERR_ARG);
    EXPECT(d1_adamw_step(NULL, &m, NULL), D1_ERR_ARG);
    CHECK(loss != 123.0f, "the good call set the loss");

    /* a NaN in the upstream gradient: refused, gradients unchanged */
    CHECK(d1_model_forward(&m, tok, 2, 16, NULL) == D1_OK, "forward");
    {
        float *dl = (float *)calloc((size_t)32 * c.vocab_size, sizeof(float));
        dl[7] = NAN;
        EXPECT(d1_model_backward(&m, dl), D1_ERR_NONFINITE);
        free(dl);
    }
    /* a NaN gradient: AdamW refuses, nothing moves */
    m.grad_memory[3] = NAN;
    EXPECT(d1_adamw_step(&opt, &m, NULL), D1_ERR_NONFINITE);
    m.grad_memory[3] = 0.0f;
    /* a NaN weight: the loss is NaN, refused before the backward pass */
    {
        float keep = m.params.head[0];
        m.params.head[0] = NAN;
        EXPECT(d1_pretrain_loss(&m, tok, 2, 16, mask, (p[1] = 0.5f, p), NULL, &loss), D1_ERR_NONFINITE);
        m.params.head[0] = keep;
    }
    /* an optimizer setting out of range */
    opt.desc.beta1 = 1.0f;
    EXPECT(d1_adamw_step(&opt, &m, NULL), D1_ERR_SETTING);
    CHECK(strstr(d1_last_error(), "beta1 1,") != NULL, "message: %s", d1_last_error());
    opt.desc = od;

    /* inconsistent configurations: an error, and the model struct untouched */
    memset(&untouched, 0xAB, sizeof untouched);
    bad = c; bad.n_heads = 3; /* 32 % 3 != 0 */
    CHECK(d1_model_init(&untouched, &bad, 1) == D1_ERR_CONFIG, "dim %% heads");
    bad = c; bad.n_kv_heads = 3; /* 4 % 3 != 0 */
    CHECK(d1_model_init(&untouched, &bad, 1) == D1_ERR_CONFIG, "heads %% kv heads");
    bad = c; bad.mask_id = 16;
    CHECK(d1_model_init(&untouched, &bad, 1) == D1_ERR_CONFIG, "mask id outside V");
    bad = c; bad.vocab_size = 0;
    CHECK(d1_model_init(&untouched, &bad, 1) == D1_ERR_CONFIG, "V = 0");
    bad = c; bad.n_layers = -1;
    CHECK(d1_model_init(&untouched, &bad, 1) == D1_ERR_CONFIG, "L < 0");
    bad = c; bad.dim = 36; bad.n_heads = 4; /* head dim 9 is odd: no rotate-half */
    CHECK(d1_model_init(&untouched, &bad, 1) == D1_ERR_CONFIG, "odd head dim");
    CHECK(d1_model_init(&untouched, NULL, 1) == D1_ERR_ARG, "NULL config");
    for (i = 0; i < (int)sizeof untouched; i++)
        if (((unsigned char *)&untouched)[i] != 0xAB) break;
    CHECK(i == (int)sizeof untouched, "a failed init wrote into the model struct");
    CHECK(d1_model_set_threads(&m, 0) == D1_ERR_ARG, "0 threads");
    CHECK(strcmp(d1_strerror(D1_ERR_TOKEN), d1_strerror(D1_ERR_SHAPE)) != 0, "distinct messages");
    {
        d1_model fresh;
        d1_model_init(&fresh, &c, 1);
        CHECK(d1_model_backward(&fresh, m.logits) == D1_ERR_STATE, "backward before forward");
        d1_model_free(&fresh);
    }
    d1_adamw_free(&opt);
    d1_model_free(&m);
#undef EXPECT
}

/* The RoPE tables are built by the first pass, for the positions it uses, and
   grow with T: the order in which T grows must not change a bit. A model run
   at T = 3, 9, 16 and one run at T = 16 first, then 3 and 9, give the same
   logits at each T and the same tables; a new model holds no tables. */
/* The special ids are stated: a zeroed pair, an id that is the mask or
   outside the vocabulary, each refused with its message; D1_TOKEN_NONE
   accepted, written to config.json as null and read back; a pad_id of NONE
   refuses left-padded prompts (a padded position needs a token). */
static void test_special_ids(void) {
    static const struct { int eos, pad; const char *msg; } bad[] = {
        {0, 0, "eos_id and pad_id are both 0"},
        {15, 14, "eos_id 15 is the mask id"},
        {14, 15, "pad_id 15 is the mask id"},
        {16, 14, "eos_id 16: neither D1_TOKEN_NONE nor in [0, vocab_size 16)"},
        {14, -2, "pad_id -2: neither D1_TOKEN_NONE"},
        {14, 14, "tied_embeddings 2: 0 or 1"},
    };
    d1_config c = small_config(), r;
    d1_model m;
    d1_sampler_desc sd = d1_sampler_default_desc(4);
    d1_rng rng;
    char json[4096];
    int i, prompts[2 * 3] = {1, 2, 3, 4, 5, 6}, lens[2] = {3, 2}, out[2 * 7];
    for (i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
        c.eos_id = bad[i].eos; c.pad_id = bad[i].pad; c.tied_embeddings = strstr(bad[i].msg, "tied") ? 2 : 0;
        CHECK(d1_config_resolve(&c, &r) == D1_ERR_CONFIG, "eos %d pad %d accepted", bad[i].eos, bad[i].pad);
        CHECK(strstr(d1_last_error(), bad[i].msg) != NULL, "message \"%s\" lacks \"%s\"", d1_last_error(), bad[i].msg);
    }
    c.tied_embeddings = 0;
    c.eos_id = 0; c.pad_id = D1_TOKEN_NONE; /* token 0 as EOS is fine once pad_id says what it is */
    CHECK(d1_config_resolve(&c, &r) == D1_OK, "EOS 0, no pad: %s", d1_last_error());
    c.eos_id = D1_TOKEN_NONE;
    CHECK(d1_config_resolve(&c, &r) == D1_OK, "neither: %s", d1_last_error());
    CHECK(d1_config_to_json(&c, json, sizeof json) == D1_OK, "to json");
    CHECK(strstr(json, "\"eos_token_id\": null") && strstr(json, "\"pad_token_id\": null"), "null in %s", json);
    memset(&r, 0, sizeof r);
    CHECK(d1_config_from_json(&r, json, strlen(json)) == D1_OK && r.eos_id == D1_TOKEN_NONE &&
              r.pad_id == D1_TOKEN_NONE, "read back: eos %d pad %d", r.eos_id, r.pad_id);
    CHECK(d1_model_init(&m, &c, 3) == D1_OK, "init");
    d1_rng_seed(&rng, 5);
    sd.suppress_eos = 1; sd.stop_at_eos = 1; /* no EOS: nothing to suppress or stop at */
    CHECK(d1_sampler_generate(&m, &sd, prompts, 2, 3, NULL, &rng, out, NULL) == D1_OK, "unpadded prompts");
    CHECK(d1_sampler_generate(&m, &sd, prompts, 2, 3, lens, &rng, out, NULL) == D1_ERR_CONFIG, "padded");
    CHECK(strstr(d1_last_error(), "prompt_lens[1] = 2 < P 3 needs left padding, and pad_id is D1_TOKEN_NONE"),
          "message: %s", d1_last_error());
    d1_model_free(&m);
}

/* d1_lr_warmup_cosine: the warmup's line, the cosine's ends and middle, the clamps */
static void test_lr_schedule(void) {
    const float peak = 3e-3f;
    int64_t s;
    float prev = peak;
    CHECK(d1_lr_warmup_cosine(peak, 0, 100, 5, 0.1) == peak / 5, "first warmup step");
    CHECK(d1_lr_warmup_cosine(peak, 4, 100, 5, 0.1) == peak, "last warmup step reaches the peak");
    CHECK(d1_lr_warmup_cosine(peak, 5, 100, 5, 0.1) == peak, "cosine starts at the peak");
    CHECK(fabsf(d1_lr_warmup_cosine(peak, 100, 100, 5, 0.1) - 0.1f * peak) < 1e-9f, "ends at final_frac x peak");
    CHECK(fabsf(d1_lr_warmup_cosine(peak, 55, 105, 5, 0.0) - 0.5f * peak) < 1e-9f, "halfway: half the peak");
    for (s = 5; s <= 100; s++) {
        float lr = d1_lr_warmup_cosine(peak, s, 100, 5, 0.1);
        CHECK(lr <= prev && lr >= 0.1f * peak * 0.9999f, "step %d: %g after %g", (int)s, lr, prev);
        prev = lr;
    }
    CHECK(d1_lr_warmup_cosine(peak, -3, 100, 5, 0.1) == peak / 5, "step < 0 clamps to 0");
    CHECK(d1_lr_warmup_cosine(peak, 500, 100, 5, 0.1) == d1_lr_warmup_cosine(peak, 100, 100, 5, 0.1), "past total");
    CHECK(d1_lr_warmup_cosine(peak, 3, 0, 5, 0.1) == peak, "total 0: the peak");
    CHECK(d1_lr_warmup_cosine(peak, 0, 100, 0, 0.1) == peak, "no warmup: the peak at step 0");
}

static void test_rope_lazy(void) {
    d1_config c = small_config();
    d1_model a, b;
    int tok[2 * 16], i, k;
    static const int Ts[3] = {3, 9, 16};
    float *la[3], *lb[3];
    for (i = 0; i < 2 * 16; i++) tok[i] = (i * 5 + 1) % 14;
    CHECK(d1_model_init(&a, &c, 7) == D1_OK && d1_model_init(&b, &c, 7) == D1_OK, "init");
    CHECK(a.state->rope_len == 0 && a.state->rope_cos == NULL, "a new model holds %d rows", a.state->rope_len);
    for (k = 0; k < 3; k++) { /* a: growing */
        CHECK(d1_model_forward(&a, tok, 2, Ts[k], NULL) == D1_OK, "forward T=%d", Ts[k]);
        CHECK(a.state->rope_len >= Ts[k] && a.state->rope_len <= c.max_seq_len, "T=%d: %d rows", Ts[k],
              a.state->rope_len);
        la[k] = (float *)malloc((size_t)2 * Ts[k] * c.vocab_size * sizeof(float));
        memcpy(la[k], a.logits, (size_t)2 * Ts[k] * c.vocab_size * sizeof(float));
    }
    for (k = 2; k >= 0; k--) { /* b: the longest first */
        CHECK(d1_model_forward(&b, tok, 2, Ts[k], NULL) == D1_OK, "forward T=%d", Ts[k]);
        lb[k] = (float *)malloc((size_t)2 * Ts[k] * c.vocab_size * sizeof(float));
        memcpy(lb[k], b.logits, (size_t)2 * Ts[k] * c.vocab_size * sizeof(float));
    }
    for (k = 0; k < 3; k++) {
        CHECK(!memcmp(la[k], lb[k], (size_t)2 * Ts[k] * c.vocab_size * sizeof(float)),
              "T=%d: logits differ with the order of growth", Ts[k]);
        free(la[k]);
        free(lb[k]);
    }
    CHECK(a.state->rope_len == 16 && b.state->rope_len == 16 &&
              !memcmp(a.state->rope_cos, b.state->rope_cos, 16 * 4 * sizeof(float)) &&
              !memcmp(a.state->rope_sin, b.state->rope_sin, 16 * 4 * sizeof(float)),
          "the tables differ with the order of growth");
    d1_model_free(&a);
    d1_model_free(&b);
}

int main(void) {
    TH_BANNER();
    RUN(test_reference_dump);
    RUN(test_determinism);
    RUN(test_learning);
    RUN(test_bad_input);
    RUN(test_rope_lazy);
    RUN(test_special_ids);
    RUN(test_lr_schedule);
    return th_summary();
}
