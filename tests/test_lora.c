/* LoRA adapters: a fresh adapter changes nothing, the adapted forward equals
   the merged model's, the adapter gradients follow from the merged model's
   weight gradient (dB = s dW A^T, dA = s B^T dW), the base stays frozen while
   the adapters learn, diffu-GRPO trains them against the base as reference,
   and bad calls are refused. */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "harness.h"

static d1_config cfg(void) {
    d1_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 13; c.dim = 16; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.ffn_dim = 24;
    c.max_seq_len = 12; c.mask_id = 12; c.eos_id = 11; c.pad_id = 11;
    return c;
}

static void randomize_b(d1_model *m, uint64_t seed) {
    d1_rng r;
    size_t i;
    d1_rng_seed(&r, seed);
    for (i = 0; i < m->lora->num_params; i++)
        if (m->lora->param_memory[i] == 0.0f) m->lora->param_memory[i] = 0.3f * d1_rng_normal(&r);
}

/* A frozen base with init-sized weights has a head too small for confident
   outputs (the logits span ~0.3), which no adapter can change: give it a
   head of a trained model's size. */
static void scale_head(d1_model *m, float k) {
    size_t i, n = (size_t)m->config.vocab_size * m->config.dim;
    for (i = 0; i < n; i++) m->params.head[i] *= k;
}

static double max_rel(const float *a, const float *b, size_t n) {
    double e = 0, s = 1e-12;
    size_t i;
    for (i = 0; i < n; i++) {
        if (fabs((double)a[i] - b[i]) > e) e = fabs((double)a[i] - b[i]);
        if (fabs(b[i]) > s) s = fabs(b[i]);
    }
    return e / s;
}

static void test_fresh_adapter_changes_nothing(void) {
    d1_config c = cfg();
    d1_model m;
    int tok[2 * 12], i;
    float *base;
    for (i = 0; i < 24; i++) tok[i] = (i * 5) % 12;
    d1_model_init(&m, &c, 1);
    d1_model_forward(&m, tok, 2, 12, NULL);
    base = (float *)malloc(sizeof(float) * 24 * 13);
    memcpy(base, m.logits, sizeof(float) * 24 * 13);
    CHECK(d1_lora_attach(&m, 4, 8.0f, 7) == D1_OK, "attach");
    CHECK(d1_lora_num_tensors(&m) == 14 * 2, "14 tensors a layer");
    d1_model_forward(&m, tok, 2, 12, NULL);
    CHECK(!memcmp(base, m.logits, sizeof(float) * 24 * 13), "B = 0 must leave the logits unchanged");
    {
        d1_tensor t;
        d1_lora_tensor(&m, 2, &t); /* layer 0, k_proj lora_A */
        CHECK(!strcmp(t.name, "base_model.model.model.transformer.blocks.0.k_proj.lora_A.weight") &&
                  t.shape[0] == 4 && t.shape[1] == 16, "%s [%d, %d]", t.name, t.shape[0], t.shape[1]);
        d1_lora_tensor(&m, 27, &t); /* layer 1, ff_out lora_B */
        CHECK(!strcmp(t.name, "base_model.model.model.transformer.blocks.1.ff_out.lora_B.weight") &&
                  t.shape[0] == 16 && t.shape[1] == 4, "%s [%d, %d]", t.name, t.shape[0], t.shape[1]);
    }
    free(base);
    d1_model_free(&m);
}

static void test_adapted_equals_merged(void) {
    d1_config c = cfg();
    d1_model m;
    int tok[2 * 12], i;
    float *adapted;
    double e;
    for (i = 0; i < 24; i++) tok[i] = (i * 7 + 1) % 13;
    d1_model_init(&m, &c, 2);
    d1_lora_attach(&m, 3, 6.0f, 8);
    randomize_b(&m, 9);
    d1_model_forward(&m, tok, 2, 12, NULL);
    adapted = (float *)malloc(sizeof(float) * 24 * 13);
    memcpy(adapted, m.logits, sizeof(float) * 24 * 13);
    CHECK(d1_lora_merge(&m) == D1_OK && m.lora == NULL, "merge detaches");
    d1_model_forward(&m, tok, 2, 12, NULL);
    e = max_rel(adapted, m.logits, 24 * 13);
    CHECK(e < 1e-5, "adapted vs merged logits: %g", e);
    free(adapted);
    d1_model_free(&m);
}

/* out = x (W + s B A)^T:  dL/dB = s dW A^T,  dL/dA = s B^T dW  (dW: the merged weight's gradient) */
static void test_adapter_gradients(void) {
    d1_config c = cfg();
    d1_model m, merged;
    int tok[2 * 12], i, nt, k;
    uint8_t mask[24];
    float p[2] = {0.5f, 0.8f}, l1, l2;
    double worst = 0;
    for (i = 0; i < 24; i++) { tok[i] = (i * 3 + 2) % 12; mask[i] = (uint8_t)(i % 3 != 0); }
    d1_model_init(&m, &c, 3);
    for (i = 0; i < (int)m.num_params; i++) m.param_memory[i] *= 8.0f;
    d1_lora_attach(&m, 2, 4.0f, 10);
    randomize_b(&m, 11);
    d1_model_init(&merged, &c, 3);
    d1_model_copy_weights(&merged, &m);
    d1_model_zero_grad(&m);
    CHECK(d1_pretrain_loss(&m, tok, 2, 12, mask, p, NULL, &l1) == D1_OK, "adapted loss");
    CHECK(m.grad_memory == NULL, "a frozen base allocates no gradients");
    { /* merge a copy of the adapters into `merged` by hand, through the API */
        d1_lora *keep = m.lora;
        merged.lora = NULL;
        d1_lora_attach(&merged, 2, 4.0f, 10);
        memcpy(merged.lora->param_memory, keep->param_memory, keep->num_params * sizeof(float));
        d1_lora_merge(&merged);
    }
    d1_model_zero_grad(&merged);
    CHECK(d1_pretrain_loss(&merged, tok, 2, 12, mask, p, NULL, &l2) == D1_OK, "merged loss");
    CHECK(fabs(l1 - l2) < 1e-5 * fabs(l2), "loss %g vs %g", l1, l2);
    nt = d1_lora_num_tensors(&m);
    for (k = 0; k < nt; k += 2) { /* each (A, B) pair against its base matrix */
        d1_tensor ta, tb, tw;
        int o, q, in, r, widx;
        const float *A, *Bm, *dA, *dB, *dW;
        double *expA, *expB, s = m.lora->scale, e;
        float *gotA, *gotB;
        d1_lora_tensor(&m, k, &ta);
        d1_lora_tensor(&m, k + 1, &tb);
        widx = 1 + 9 * (k / 14) + 1 + (k % 14) / 2 + ((k % 14) / 2 >= 4); /* q,k,v,o | (norm) gate,up,down */
        d1_model_tensor(&merged, widx, &tw);
        r = ta.shape[0]; in = ta.shape[1];
        CHECK(tw.shape[0] == tb.shape[0] && tw.shape[1] == in, "%s vs %s", ta.name, tw.name);
        A = m.lora->param_memory + ta.offset; Bm = m.lora->param_memory + tb.offset;
        dA = m.lora->grad_memory + ta.offset; dB = m.lora->grad_memory + tb.offset;
        dW = merged.grad_memory + tw.offset;
        expA = (double *)calloc((size_t)r * in, sizeof(double));
        expB = (double *)calloc((size_t)tb.shape[0] * r, sizeof(double));
        for (o = 0; o < tb.shape[0]; o++)
            for (q = 0; q < r; q++)
                for (i = 0; i < in; i++) {
                    expB[o * r + q] += s * dW[o * in + i] * A[q * in + i];
                    expA[q * in + i] += s * Bm[o * r + q] * dW[o * in + i];
                }
        gotA = (float *)dA; gotB = (float *)dB;
        e = th_rel_err(gotA, expA, (size_t)r * in, 1e-9);
        if (e > worst) worst = e;
        CHECK(e < 1e-4, "%s: %g", ta.name, e);
        e = th_rel_err(gotB, expB, (size_t)tb.shape[0] * r, 1e-9);
        if (e > worst) worst = e;
        CHECK(e < 1e-4, "%s: %g", tb.name, e);
        free(expA); free(expB);
    }
    printf("  adapter gradients vs s dW A^T, s B^T dW: worst rel err %.2g\n", worst);
    d1_model_free(&m);
    d1_model_free(&merged);
}

static void test_base_frozen_adapters_learn(void) {
    d1_config c = cfg();
    d1_model m;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_rng r;
    int tok[8 * 12], s, i;
    float loss = 0, first = 0, last = 0, *base;
    d1_model_init(&m, &c, 4);
    scale_head(&m, 30.0f);
    base = (float *)malloc(m.num_params * sizeof(float));
    memcpy(base, m.param_memory, m.num_params * sizeof(float));
    d1_lora_attach(&m, 4, 8.0f, 12);
    od.lr = 1e-2f;
    d1_adamw_init(&opt, &m, &od);
    CHECK(opt.n == m.lora->num_params, "the optimizer trains the adapters");
    d1_rng_seed(&r, 5);
    for (s = 0; s < 150; s++) {
        for (i = 0; i < 8 * 12; i++) tok[i] = ((i / 12) + (i % 12) * 2) % 11;
        d1_model_zero_grad(&m);
        CHECK(d1_pretrain_loss(&m, tok, 8, 12, NULL, NULL, &r, &loss) == D1_OK, "step %d", s);
        CHECK(d1_adamw_step(&opt, &m, NULL) == D1_OK, "adamw %d", s);
        if (s < 10) first += loss / 10;
        if (s >= 140) last += loss / 10;
    }
    printf("  LoRA pretraining: loss %.3f (first 10) -> %.3f (last 10)\n", first, last);
    CHECK(last < first * 0.67f, "adapters did not learn: %.3f -> %.3f", first, last);
    CHECK(!memcmp(base, m.param_memory, m.num_params * sizeof(float)), "the base moved");
    free(base);
    d1_adamw_free(&opt);
    d1_model_free(&m);
}

/* a dense reward: the share of 2s in the completion (a token this base
   proposes now and then, so that groups differ from the start) */
static float share_of_twos(const d1_rollout *ro, void *user) {
    const int *o = ro->completion;
    int i, k = 0, n = ro->completion_len;
    (void)user;
    for (i = 0; i < n; i++) k += o[i] == 2;
    return n ? (float)k / (float)n : 0.0f;
}

static void test_grpo_with_adapters(void) {
    d1_config c = cfg();
    d1_model m;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_grpo_desc d = d1_grpo_default_desc(8);
    d1_reward rw;
    d1_grpo_stats st;
    d1_rng r;
    int prompts[4 * 3] = {1, 2, 4, 1, 2, 4, 1, 2, 4, 1, 2, 4}, step;
    float first = -1, last = 0, *base;
    d1_model_init(&m, &c, 6);
    scale_head(&m, 30.0f);
    base = (float *)malloc(m.num_params * sizeof(float));
    memcpy(base, m.param_memory, m.num_params * sizeof(float));
    d1_lora_attach(&m, 4, 8.0f, 13);
    od.lr = 1e-2f; od.weight_decay = 0.0f;
    d1_adamw_init(&opt, &m, &od);
    rw.name = "twos"; rw.fn = share_of_twos; rw.weight = 1.0f; rw.user = NULL;
    d.rewards = &rw; d.n_rewards = 1; d.group_size = 6; d.inner_steps = 4;
    d.sampler.block_len = 8; d.sampler.steps = 8; d.sampler.temperature = 1.0f;
    d.sampler.suppress_eos = 1; /* this base's favourite token is EOS: keep completions whole */
    d1_rng_seed(&r, 14);
    for (step = 0; step < (th_short() ? 3 : 30); step++) { /* D1_TEST_SHORT: the steps run, the claim is not made */
        int rc = d1_grpo_step(&m, &m, &opt, &d, prompts, 4, 3, NULL, &r, &st); /* reference: the base */
        CHECK(rc == D1_OK, "step %d: %s", step, d1_strerror(rc));
        if (rc != D1_OK) break;
        if (first < 0) first = st.reward_mean;
        if (step >= 27) last += st.reward_mean / 3;
    }
    if (!th_short()) {
        printf("  diffu-GRPO on adapters: reward %.2f at step 1, %.2f over steps 28-30\n", first, last);
        CHECK(last > first + 0.3f, "reward only went from %.2f to %.2f", first, last);
    }
    CHECK(!memcmp(base, m.param_memory, m.num_params * sizeof(float)), "the base moved");
    free(base);
    d1_adamw_free(&opt);
    d1_model_free(&m);
}

static void test_bad_calls(void) {
    d1_config c = cfg();
    d1_model m;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_model_init(&m, &c, 1);
    d1_adamw_init(&opt, &m, &od); /* for the base: no longer valid once adapters are attached */
    CHECK(d1_lora_attach(&m, 0, 8.0f, 1) == D1_ERR_ARG, "rank 0");
    CHECK(d1_lora_attach(&m, 4, 0.0f, 1) == D1_ERR_ARG, "alpha 0");
    CHECK(d1_lora_attach(&m, 4, NAN, 1) == D1_ERR_ARG, "alpha NaN");
    CHECK(d1_lora_attach(&m, 17, 8.0f, 1) == D1_ERR_ARG, "rank > dim");
    CHECK(d1_lora_attach(NULL, 4, 8.0f, 1) == D1_ERR_ARG, "no model");
    CHECK(d1_lora_merge(&m) == D1_ERR_ARG, "merge without adapters");
    CHECK(d1_lora_attach(&m, 4, 8.0f, 1) == D1_OK, "attach");
    CHECK(d1_lora_attach(&m, 4, 8.0f, 1) == D1_ERR_ARG, "attach twice");
    d1_model_zero_grad(&m);
    CHECK(d1_adamw_step(&opt, &m, NULL) == D1_ERR_ARG, "an optimizer made for the base");
    d1_adamw_free(&opt);
    d1_model_free(&m);
}

/* Adapters on a subset of the modules (d1's own: q, k, v, up): the subset
   holds only those tensors; its logits and its gradients are those of all
   seven adapters with the same values on those modules and zeros (B = 0,
   A = 0) on the others, bit for bit; merging gives the same logits; a
   bad targets mask is refused. */
static void copy_subset_into_full(const d1_model *sub, d1_model *full) {
    int i, k, n = d1_lora_num_tensors(sub), nf = d1_lora_num_tensors(full);
    memset(full->lora->param_memory, 0, full->lora->num_params * sizeof(float));
    for (i = 0; i < n; i++) {
        d1_tensor ts, tf;
        d1_lora_tensor(sub, i, &ts);
        for (k = 0; k < nf; k++) {
            d1_lora_tensor(full, k, &tf);
            if (!strcmp(tf.name, ts.name)) {
                CHECK(tf.size == ts.size, "%s: the same shape", ts.name);
                memcpy(full->lora->param_memory + tf.offset, sub->lora->param_memory + ts.offset,
                       ts.size * sizeof(float));
            }
        }
    }
}
static void test_subset_targets(void) {
    d1_config c = cfg();
    d1_model s, f;
    const unsigned d1_targets = D1_LORA_Q | D1_LORA_K | D1_LORA_V | D1_LORA_UP;
    int tok[2 * 12], i, n;
    size_t V = (size_t)c.vocab_size, k;
    float *ls, *gf;
    uint8_t *mask = (uint8_t *)malloc(24);
    float p[2] = {0.5f, 0.7f}, loss_s, loss_f;
    for (i = 0; i < 24; i++) { tok[i] = (i * 5) % 12; mask[i] = (uint8_t)(i % 3 == 0); }
    d1_model_init(&s, &c, 31);
    d1_model_init(&f, &c, 31);
    CHECK(d1_lora_attach_targets(&s, 3, 5.0f, 32, 0) == D1_ERR_ARG && s.lora == NULL, "no targets");
    CHECK(d1_lora_attach_targets(&s, 3, 5.0f, 32, 128) == D1_ERR_ARG && s.lora == NULL, "an unknown bit");
    CHECK(d1_lora_attach_targets(&s, 3, 5.0f, 32, d1_targets) == D1_OK, "attach q, k, v, up");
    CHECK(d1_lora_attach(&f, 3, 5.0f, 33) == D1_OK, "attach all seven");
    n = d1_lora_num_tensors(&s);
    CHECK(n == 8 * c.n_layers && d1_lora_num_tensors(&f) == 14 * c.n_layers, "tensors: %d", n);
    CHECK(s.lora->num_params < f.lora->num_params, "fewer parameters: %zu of %zu", s.lora->num_params,
          f.lora->num_params);
    for (i = 0; i < n; i++) { /* only the targeted names, A then B */
        d1_tensor t;
        d1_lora_tensor(&s, i, &t);
        CHECK((strstr(t.name, "q_proj") || strstr(t.name, "k_proj") || strstr(t.name, "v_proj") ||
               strstr(t.name, "up_proj")) && strstr(t.name, i % 2 ? "lora_B" : "lora_A"),
              "tensor %d is %s", i, t.name);
    }
    randomize_b(&s, 34);
    copy_subset_into_full(&s, &f);
    CHECK(d1_model_zero_grad(&s) == D1_OK && d1_model_zero_grad(&f) == D1_OK, "zero grads");
    CHECK(d1_pretrain_loss(&s, tok, 2, 12, mask, p, NULL, &loss_s) == D1_OK &&
              d1_pretrain_loss(&f, tok, 2, 12, mask, p, NULL, &loss_f) == D1_OK,
          "losses");
    ls = (float *)malloc(sizeof(float) * 24 * V);
    memcpy(ls, s.logits, sizeof(float) * 24 * V);
    CHECK(!memcmp(ls, f.logits, sizeof(float) * 24 * V) && loss_s == loss_f, "the same logits as all seven with zeros");
    gf = (float *)calloc(s.lora->num_params, sizeof(float));
    { /* the full adapters' gradients, gathered into the subset's layout by name */
        for (i = 0; i < n; i++) {
            d1_tensor ts, tf;
            int j, nf = d1_lora_num_tensors(&f);
            d1_lora_tensor(&s, i, &ts);
            for (j = 0; j < nf; j++) {
                d1_lora_tensor(&f, j, &tf);
                if (!strcmp(tf.name, ts.name)) memcpy(gf + ts.offset, f.lora->grad_memory + tf.offset, ts.size * 4);
            }
        }
    }
    for (k = 0; k < s.lora->num_params && gf[k] == s.lora->grad_memory[k]; k++) {}
    CHECK(k == s.lora->num_params, "the same adapter gradients, bit for bit (first difference at %zu)", k);
    CHECK(d1_model_forward(&s, tok, 2, 12, NULL) == D1_OK, "forward");
    memcpy(ls, s.logits, sizeof(float) * 24 * V);
    CHECK(d1_lora_merge(&s) == D1_OK && s.lora == NULL, "merge");
    CHECK(d1_model_forward(&s, tok, 2, 12, NULL) == D1_OK && max_rel(s.logits, ls, 24 * V) < 1e-4,
          "merged: the adapted logits (%g)", max_rel(s.logits, ls, 24 * V));
    free(ls); free(gf); free(mask);
    d1_model_free(&s);
    d1_model_free(&f);
}

#ifndef D1_NO_STDIO
/* adapters saved on their own load back bit for bit, into a fresh base (attach
   from the file) and into attached adapters; a mismatch is refused */
static void test_save_load(void) {
    d1_config c = cfg();
    d1_model m, fresh;
    const char *dir = "build/test_lora_adapters";
    int tok[12], i;
    float *l1;
    for (i = 0; i < 12; i++) tok[i] = i % 12;
    d1_model_init(&m, &c, 21);
    d1_lora_attach(&m, 3, 5.0f, 22);
    randomize_b(&m, 23);
    CHECK(d1_lora_save(&m, dir) == D1_OK, "save");
    d1_model_forward(&m, tok, 1, 12, NULL);
    l1 = (float *)malloc(sizeof(float) * 12 * 13);
    memcpy(l1, m.logits, sizeof(float) * 12 * 13);
    d1_model_init(&fresh, &c, 21); /* the same base */
    CHECK(d1_lora_load(&fresh, dir) == D1_OK, "load into a base without adapters");
    CHECK(fresh.lora && fresh.lora->rank == 3 && fresh.lora->alpha == 5.0f, "rank and alpha from the file");
    CHECK(fresh.lora && !memcmp(fresh.lora->param_memory, m.lora->param_memory, m.lora->num_params * sizeof(float)),
          "adapters bit for bit");
    d1_model_forward(&fresh, tok, 1, 12, NULL);
    CHECK(!memcmp(l1, fresh.logits, sizeof(float) * 12 * 13), "same logits");
    CHECK(d1_lora_load(&fresh, dir) == D1_OK, "load into matching attached adapters");
    d1_lora_detach(&fresh);
    d1_lora_attach(&fresh, 2, 5.0f, 1);
    CHECK(d1_lora_load(&fresh, dir) == D1_ERR_CONFIG, "rank mismatch");
    d1_lora_detach(&fresh);
    CHECK(d1_lora_load(&fresh, "build/no_such_dir") == D1_ERR_NOT_FOUND && fresh.lora == NULL, "missing files");
    CHECK(d1_lora_save(&fresh, dir) == D1_ERR_ARG, "no adapters to save");
    { /* adapters stored as BF16 (as d1's PEFT adapters are): read, each value the BF16 nearest the F32 one */
        static const char *const names[1] = {"adapter_model.safetensors"};
        d1__st_table tab;
        d1__save_ctx st;
        d1__emit_fn emit[1];
        const void *ctx[1];
        size_t k, bad = 0;
        d1__table_lora(&tab, &m.config, m.lora->rank, m.lora->targets, m.lora->param_memory);
        memset(&st, 0, sizeof st);
        st.tab = &tab; st.dtype = D1_DTYPE_BF16;
        emit[0] = d1__emit_safetensors; ctx[0] = &st;
        CHECK(d1__save_files(dir, 1, names, emit, ctx) == D1_OK, "write BF16 adapters");
        CHECK(d1_lora_load(&fresh, dir) == D1_OK && fresh.lora, "load BF16 adapters: %s", d1_last_error());
        for (k = 0; fresh.lora && k < m.lora->num_params; k++) {
            float a = m.lora->param_memory[k], b = fresh.lora->param_memory[k];
            uint32_t u;
            memcpy(&u, &b, 4);
            bad += (u & 0xffffu) != 0 || fabsf(a - b) > fabsf(a) / 256.0f;
        }
        CHECK(bad == 0, "%zu of %zu adapter values are not their BF16 rounding", bad, m.lora->num_params);
        d1_lora_detach(&fresh);
    }
    {
        char path[256], *txt;
        size_t n;
        FILE *f;
        CHECK(d1_lora_save(&m, dir) == D1_OK, "save again");
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        f = fopen(path, "rb");
        txt = (char *)calloc(4096, 1);
        n = f ? fread(txt, 1, 4095, f) : 0;
        if (f) fclose(f);
        CHECK(n > 0 && strstr(txt, "\"task_type\": \"CAUSAL_LM\"") && strstr(txt, "\"base_model_name_or_path\"") &&
                  strstr(txt, "\"peft_type\": \"LORA\"") && strstr(txt, "\"target_modules\""),
              "PEFT's keys:\n%s", txt);
        free(txt);
    }
    free(l1);
    d1_model_free(&m);
    d1_model_free(&fresh);
}
/* Subset adapters through files: adapter_config.json lists only their
   modules; they load back into a fresh base with the same targets, bit for
   bit, and are refused by adapters of other targets; d1's own config (its
   target_modules, dllm-reasoning/d1 diffu-grpo/diffu_grpo_train.py line 95,
   name o_proj, gate_proj and down_proj too, which LLaDA lacks: PEFT adapts
   q, k, v and up) loads BF16 adapters of those four; a list naming no
   LLaDA module, or a regular expression, is refused. */
static void write_text(const char *dir, const char *name, const char *text) {
    char path[256];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    CHECK(f != NULL, "open %s", path);
    if (f) { fputs(text, f); fclose(f); }
}
static void test_subset_save_load(void) {
    d1_config c = cfg();
    d1_model m, fresh;
    const char *dir = "build/test_lora_subset";
    const unsigned d1_targets = D1_LORA_Q | D1_LORA_K | D1_LORA_V | D1_LORA_UP;
    char path[256], txt[4096];
    size_t n = 0;
    FILE *f;
    d1_model_init(&m, &c, 41);
    d1_lora_attach_targets(&m, 3, 6.0f, 42, d1_targets);
    randomize_b(&m, 43);
    CHECK(d1_lora_save(&m, dir) == D1_OK, "save");
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    if ((f = fopen(path, "rb")) != NULL) { n = fread(txt, 1, sizeof txt - 1, f); fclose(f); }
    txt[n] = 0;
    CHECK(strstr(txt, "\"target_modules\": [\"q_proj\", \"k_proj\", \"v_proj\", \"up_proj\"]") != NULL,
          "the four modules listed:\n%s", txt);
    d1_model_init(&fresh, &c, 41);
    CHECK(d1_lora_load(&fresh, dir) == D1_OK && fresh.lora && fresh.lora->targets == d1_targets, "load: %s",
          d1_last_error());
    CHECK(fresh.lora && fresh.lora->num_params == m.lora->num_params &&
              !memcmp(fresh.lora->param_memory, m.lora->param_memory, m.lora->num_params * sizeof(float)),
          "bit for bit");
    d1_lora_detach(&fresh);
    d1_lora_attach(&fresh, 3, 6.0f, 1);
    CHECK(d1_lora_load(&fresh, dir) == D1_ERR_CONFIG && strstr(d1_last_error(), "targets"), "other targets: %s",
          d1_last_error());
    d1_lora_detach(&fresh);
    { /* d1's config and BF16 adapters */
        static const char *const names[1] = {"adapter_model.safetensors"};
        d1__st_table tab;
        d1__save_ctx st;
        d1__emit_fn emit[1];
        const void *ctx[1];
        d1__table_lora(&tab, &m.config, 3, d1_targets, m.lora->param_memory);
        memset(&st, 0, sizeof st);
        st.tab = &tab; st.dtype = D1_DTYPE_BF16;
        emit[0] = d1__emit_safetensors; ctx[0] = &st;
        CHECK(d1__save_files(dir, 1, names, emit, ctx) == D1_OK, "write BF16 adapters");
        write_text(dir, "adapter_config.json",
                   "{\"peft_type\": \"LORA\", \"r\": 3, \"lora_alpha\": 6, \"target_modules\": [\"q_proj\", \"k_proj\", "
                   "\"v_proj\", \"o_proj\", \"up_proj\", \"down_proj\", \"gate_proj\"], \"task_type\": \"CAUSAL_LM\"}");
        CHECK(d1_lora_load(&fresh, dir) == D1_OK && fresh.lora && fresh.lora->targets == d1_targets,
              "d1's adapter_config.json: %s", d1_last_error());
        d1_lora_detach(&fresh);
        write_text(dir, "adapter_config.json",
                   "{\"r\": 3, \"lora_alpha\": 6, \"target_modules\": [\"gate_proj\", \"down_proj\"]}");
        CHECK(d1_lora_load(&fresh, dir) == D1_ERR_CONFIG && fresh.lora == NULL &&
                  strstr(d1_last_error(), "names none of LLaDA's modules"),
              "no LLaDA module: %s", d1_last_error());
        write_text(dir, "adapter_config.json", "{\"r\": 3, \"lora_alpha\": 6, \"target_modules\": \".*proj\"}");
        CHECK(d1_lora_load(&fresh, dir) == D1_ERR_CONFIG && fresh.lora == NULL &&
                  strstr(d1_last_error(), "is not a list"),
              "a regular expression: %s", d1_last_error());
        write_text(dir, "adapter_config.json",
                   "{\"r\": 3, \"lora_alpha\": 6, \"target_modules\": [\"q_proj\", \"k_proj\", \"v_proj\"]}");
        CHECK(d1_lora_load(&fresh, dir) == D1_ERR_UNKNOWN_TENSOR && fresh.lora == NULL,
              "the file holds up_proj, the config does not name it: %s", d1_last_error());
    }
    d1_model_free(&m);
    d1_model_free(&fresh);
}
#endif

int main(void) {
    TH_BANNER();
    RUN(test_fresh_adapter_changes_nothing);
    RUN(test_adapted_equals_merged);
    RUN(test_adapter_gradients);
    RUN(test_base_frozen_adapters_learn);
    RUN(test_grpo_with_adapters);
    RUN(test_bad_calls);
    RUN(test_subset_targets);
#ifndef D1_NO_STDIO
    RUN(test_save_load);
    RUN(test_subset_save_load);
#endif
    return th_summary();
}
