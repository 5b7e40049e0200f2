/* bf16_grad_check.c - how far D1_PRECISION_BF16_MIXED's gradients are from
   FP32's on a checkpoint, against how far FP32's own gradients move when the
   weights are merely rounded to BF16 (the model's sensitivity).

     make build/bf16_grad_check && build/bf16_grad_check DIR [REPS]

   Each of REPS (default 20) batches is 32 rows of 72 random tokens with a
   masking drawn by d1_noise_draw; for each, the masked-diffusion loss and
   its gradients in FP32, in BF16_MIXED, and in FP32 on a copy whose matrices
   are rounded to BF16. Prints the mean losses, the relative L2 error of all
   gradients over all batches, and the first batch's per tensor. */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void grads(d1_model *m, int precision, const int *tok, int B, int T, const uint8_t *mask, const float *p,
                  float *loss, float *g) {
    d1_model_set_precision(m, precision);
    d1_model_zero_grad(m);
    d1_pretrain_loss(m, tok, B, T, mask, p, NULL, loss);
    memcpy(g, m->grad_memory, m->num_params * sizeof(float));
}

int main(int argc, char **argv) {
    enum { B = 32, T = 72 };
    d1_model m, q;
    d1_rng r;
    int reps = argc > 2 ? atoi(argv[2]) : 20, rep, i, n;
    int *tok = (int *)malloc(sizeof(int) * B * T);
    uint8_t *mask = (uint8_t *)malloc(B * T);
    float p[B], l32, lmx, lq;
    double s32 = 0, smx = 0, sq = 0, emx = 0, eq = 0, norm = 0;
    float *g32, *gmx, *gq;
    size_t k;
    if (argc < 2 || d1_model_load(&m, argv[1]) != D1_OK || d1_model_load(&q, argv[1]) != D1_OK) {
        fprintf(stderr, "usage: bf16_grad_check DIR [REPS] (%s)\n", d1_last_error());
        return 1;
    }
    n = d1_model_num_tensors(&q);
    for (i = 0; i < n; i++) { /* the matrices rounded to BF16 (the norms stay) */
        d1_tensor t;
        d1_model_tensor(&q, i, &t);
        if (t.decay)
            for (k = 0; k < t.size; k++)
                q.param_memory[t.offset + k] = d1__bf16_value(d1__bf16_round(q.param_memory[t.offset + k]));
    }
    g32 = (float *)malloc(m.num_params * sizeof(float));
    gmx = (float *)malloc(m.num_params * sizeof(float));
    gq = (float *)malloc(m.num_params * sizeof(float));
    d1_rng_seed(&r, 3);
    for (rep = 0; rep < reps; rep++) {
        for (i = 0; i < B * T; i++) tok[i] = (int)(d1_rng_u64(&r) % (uint64_t)(m.config.vocab_size - 2));
        d1_noise_draw(&r, B, T, 1e-3f, NULL, p, mask);
        grads(&m, D1_PRECISION_F32, tok, B, T, mask, p, &l32, g32);
        grads(&m, D1_PRECISION_BF16_MIXED, tok, B, T, mask, p, &lmx, gmx);
        grads(&q, D1_PRECISION_F32, tok, B, T, mask, p, &lq, gq);
        s32 += l32; smx += lmx; sq += lq;
        for (k = 0; k < m.num_params; k++) {
            emx += (double)(gmx[k] - g32[k]) * (gmx[k] - g32[k]);
            eq += (double)(gq[k] - g32[k]) * (gq[k] - g32[k]);
            norm += (double)g32[k] * g32[k];
        }
        for (i = 0; rep == 0 && i < n; i++) {
            d1_tensor t;
            double a = 0, b = 0, c = 0;
            d1_model_tensor(&m, i, &t);
            for (k = t.offset; k < t.offset + t.size; k++) {
                a += (double)(gmx[k] - g32[k]) * (gmx[k] - g32[k]);
                b += (double)(gq[k] - g32[k]) * (gq[k] - g32[k]);
                c += (double)g32[k] * g32[k];
            }
            printf("%-45s mixed %.2e  rounded weights %.2e\n", t.name, sqrt(a / c), sqrt(b / c));
        }
    }
    printf("%d batches of %d x %d: mean loss FP32 %.6f, mixed %.6f, FP32 on BF16-rounded weights %.6f\n", reps, B, T,
           s32 / reps, smx / reps, sq / reps);
    printf("gradients, relative L2 error against FP32: mixed %.3e, FP32 on BF16-rounded weights %.3e\n",
           sqrt(emx / norm), sqrt(eq / norm));
    d1_model_free(&m);
    d1_model_free(&q);
    free(tok); free(mask); free(g32); free(gmx); free(gq);
    return 0;
}
