/* hello.c - the d1.h story end to end: define, initialise, pretrain a tiny
   masked diffusion model for a few hundred steps, watch the loss fall, and
   let the sampler (LLaDA's low-confidence remasking) continue a prompt.

   The corpus: sequences "abcd..." counting upward from a random letter with a
   random stride, wrapping around the alphabet. A masked token can be inferred
   from its visible neighbours, which is what the masked-diffusion loss teaches. */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include <stdio.h>

enum { V = 27, MASK = 26, B = 16, T = 16, STEPS = 1200 };

static void make_batch(d1_rng *r, int *tok) {
    int b, i;
    for (b = 0; b < B; b++) {
        int start = (int)(d1_rng_u64(r) % 26), stride = 1 + (int)(d1_rng_u64(r) % 3);
        for (i = 0; i < T; i++) tok[b * T + i] = (start + i * stride) % 26;
    }
}

static void print_seq(const char *label, const int *tok, int n) {
    int i;
    printf("%s", label);
    for (i = 0; i < n; i++) putchar(tok[i] == MASK ? '_' : 'a' + tok[i]);
    putchar('\n');
}

int main(void) {
    d1_config cfg = {0}; /* zero fields take their defaults (RoPE theta, eps, kv heads) */
    d1_model model;
    d1_adamw opt;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_sampler_desc sd = d1_sampler_default_desc(T - 4);
    d1_rng data, noise;
    int tok[B * T], prompt[4] = {2, 4, 6, 8}, seq[T], step, rc; /* "cegi": the rest steps by 2 */
    float loss = 0.0f;

    cfg.vocab_size = V; cfg.dim = 64; cfg.n_layers = 2; cfg.n_heads = 4;
    cfg.ffn_dim = 172; cfg.max_seq_len = T;
    cfg.mask_id = MASK;              /* the special ids are stated, never defaulted: */
    cfg.eos_id = D1_TOKEN_NONE;      /* every sequence is T letters, no EOS, */
    cfg.pad_id = D1_TOKEN_NONE;      /* and no prompt is padded */
    if ((rc = d1_model_init(&model, &cfg, 1234)) != D1_OK) {
        fprintf(stderr, "init: %s\n", d1_last_error());
        return 1;
    }
    od.lr = 1e-3f;
    d1_adamw_init(&opt, &model, &od);
    d1_rng_seed(&data, 1);
    d1_rng_seed(&noise, 2);
    printf("model: %zu parameters\n", model.num_params);

    for (step = 1; step <= STEPS; step++) {
        make_batch(&data, tok);
        d1_model_zero_grad(&model);
        rc = d1_pretrain_loss(&model, tok, B, T, NULL, NULL, &noise, &loss); /* forward + backward */
        if (rc == D1_OK) rc = d1_adamw_step(&opt, &model, NULL);
        if (rc != D1_OK) { fprintf(stderr, "step %d: %s\n", step, d1_last_error()); return 1; }
        if (step == 1 || step % 100 == 0) printf("step %4d  loss %.4f\n", step, loss);
    }

    /* Continue a prompt the diffusion way: the canvas is the prompt and 12
       masks; each step predicts every masked position and keeps the one it is
       most sure of (one block, one token per step: d1_sampler_default_desc). */
    print_seq("prompt:  ", prompt, 4);
    rc = d1_sampler_generate(&model, &sd, prompt, 1, 4, NULL, &noise, seq, NULL);
    if (rc != D1_OK) { fprintf(stderr, "sample: %s\n", d1_last_error()); return 1; }
    print_seq("sampled: ", seq, T);
    d1_adamw_free(&opt);
    d1_model_free(&model);
    return 0;
}
