/* d1_cuda.h - the CUDA backend of d1.h: the kernels, callable from C.

   d1.h includes this header when it is compiled with -DD1_CUDA, and
   tools/d1_cuda.cu implements it (nvcc; cuBLAS for the matrix products).
   Each kernel carries the name of the CPU kernel in d1.h that it mirrors
   (d1__rmsnorm_forward -> d1_cuda_rmsnorm_forward) and computes the same
   formula on device pointers, in the same layouts: read the CPU one for the
   maths, this file for the calling convention.

   Errors are sticky, as in OpenGL: a launch or copy that fails records the
   first error in the context; d1_cuda_status returns it (and clears it), so
   d1.h checks once per operation instead of after every kernel. Every call
   runs on the context's one stream, in order; the download functions wait
   for it. Nothing here prints or exits.

   Number formats: fp32 everywhere, FP32 cuBLAS math (no TF32), so a kernel
   agrees with its CPU twin to float rounding (the parity tests: 1e-5
   relative). Reductions that d1.h sums on the CPU in double (losses, the
   gradient norm) are done in double here too. */
#ifndef D1_CUDA_H
#define D1_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct d1_cuda d1_cuda; /* a device, its stream, cuBLAS handle, scratch */

/* 0 on success; D1_ERR_DEVICE's value (-19) when no device is usable. */
int  d1_cuda_create(d1_cuda **out, int device);
void d1_cuda_destroy(d1_cuda *cu);
/* The first error since the last call (0 or -19), cleared; message() says
   what CUDA or cuBLAS reported ("" when nothing failed). */
int         d1_cuda_status(d1_cuda *cu);
const char *d1_cuda_message(const d1_cuda *cu);
/* The device's name, e.g. "NVIDIA H100 80GB HBM3". */
const char *d1_cuda_device_name(const d1_cuda *cu);

/* ---- memory -------------------------------------------------------------- */
void *d1_cuda_alloc(d1_cuda *cu, size_t bytes);           /* NULL on failure */
void  d1_cuda_free(d1_cuda *cu, void *p);
void  d1_cuda_upload(d1_cuda *cu, void *dst, const void *src, size_t bytes);
void  d1_cuda_download(d1_cuda *cu, void *dst, const void *src, size_t bytes); /* waits */
void  d1_cuda_copy(d1_cuda *cu, void *dst, const void *src, size_t bytes);     /* device to device */
void  d1_cuda_zero(d1_cuda *cu, void *dst, size_t bytes);
int   d1_cuda_sync(d1_cuda *cu);                           /* waits; returns the status */

/* ---- layers (d1.h >>layers) ------------------------------------------------ */
/* out[N,O] = inp[N,I] w[O,I]^T */
void d1_cuda_matmul_forward(d1_cuda *cu, float *out, const float *inp, const float *w, int N, int I, int O);
/* dinp[N,I] = dout w (written); dw[O,I] += dout^T inp (skipped when NULL) */
void d1_cuda_matmul_backward(d1_cuda *cu, float *dinp, float *dw, const float *dout, const float *inp,
                             const float *w, int N, int I, int O);
/* out[n] = wte[tok[n]] */
void d1_cuda_embed_forward(d1_cuda *cu, float *out, const int *tok, const float *wte, int N, int C);
/* dwte[id] += dout[n] over the positions n of each id, in position order (the
   CPU's order, so the sums agree to the bit). The host sorts: ids [U] are the
   distinct ids, pos [N] the positions grouped by id (ascending within a
   group), start [U+1] each group's first index into pos. */
void d1_cuda_embed_backward(d1_cuda *cu, float *dwte, const float *dout, const int *ids, const int *start,
                            const int *pos, int U, int C);
/* rstd[n] = 1/sqrt(mean x[n]^2 + eps), out = x rstd w */
void d1_cuda_rmsnorm_forward(d1_cuda *cu, float *out, float *rstd, const float *x, const float *w, int N, int C,
                             float eps);
/* dx (written), dw += (when not NULL) */
void d1_cuda_rmsnorm_backward(d1_cuda *cu, float *dx, float *dw, const float *dout, const float *x,
                              const float *w, const float *rstd, int N, int C);
/* rotate-half RoPE in place on n_heads heads of each row (stride ld); row n
   at position pos0 + n % T; sign -1 rotates back (the backward pass) */
void d1_cuda_rope(d1_cuda *cu, float *x, int ld, int N, int T, int pos0, int n_heads, int D, const float *cos_t,
                  const float *sin_t, float sign);
/* bidirectional GQA attention, training layout (q, k, v column blocks of the
   rows of qkv [B*T, QW]); att [B,H,T,T] keeps the probabilities, y [B*T, C];
   key_mask [B,T] (NULL: every key) */
void d1_cuda_attention_forward(d1_cuda *cu, float *att, float *y, const float *qkv, const uint8_t *key_mask,
                               int B, int T, int H, int KV, int D);
/* dqkv [B*T, QW] written from dy [B*T, C]; scratch: B*T*T floats */
void d1_cuda_attention_backward(d1_cuda *cu, float *dqkv, float *scratch, const float *att, const float *dy,
                                const float *qkv, int B, int T, int H, int KV, int D);
/* h[n,f] = silu(g) u over rows gu = [g | u] of width 2F */
void d1_cuda_swiglu_forward(d1_cuda *cu, float *h, const float *gu, int N, int F);
void d1_cuda_swiglu_backward(d1_cuda *cu, float *dgu, const float *gu, const float *dh, int N, int F);
/* x += r */
void d1_cuda_residual_add(d1_cuda *cu, float *x, const float *r, size_t n);

/* ---- losses, optimizer ------------------------------------------------------ */
/* weighted cross-entropy: row_loss[n] = w[n] (logsumexp - logit[y]) in double
   (0 where w[n] = 0), dlogits[n] = w[n] (softmax - onehot) (may alias logits) */
void d1_cuda_cross_entropy(d1_cuda *cu, float *dlogits, double *row_loss, const float *logits, const int *y,
                           const float *w, int N, int V);
/* logp[r, k] = log softmax(logits[r, P + k])[tokens[r, P + k]] for k < T - P */
void d1_cuda_token_logp(d1_cuda *cu, float *logp, const float *logits, const int *tokens, int R, int T, int P,
                        int V);
/* diffu-GRPO / wd1 per scored completion token t = (r, k) (d1_grpo_loss):
   writes dlogits (zero on every other row) and per token L[t], kl[t], clip[t]
   in double (0 where not scored). old / ref may be NULL (then rho = 1 /
   beta unused). */
void d1_cuda_grpo_dlogits(d1_cuda *cu, float *dlogits, double *tok_out, const float *logits, const int *tokens,
                          const uint8_t *score, const float *adv, const float *old_logp, const float *ref_logp,
                          int R, int T, int P, int V, float clip_eps, float beta, int wd1, float denom);
/* out[0] = sum x[i]^2 (double, a fixed order) */
void d1_cuda_sum_squares(d1_cuda *cu, double *out, const float *x, size_t n);
/* AdamW (d1__adamw_scalar's formula) on n elements */
void d1_cuda_adamw(d1_cuda *cu, float *w, const float *g, float *m, float *v, size_t n, float b1, float b2,
                   float wd, float step, float inv_c2, float eps, float scale);

/* ---- sampler -------------------------------------------------------------- */
/* For each masked position i in [b0, b1) of each row b of canvas [B, T]:
   candidate tok and confidence conf at [b, i - b0] (d1__propose at
   temperature 0 for low_confidence, margin, entropy; -inf and tok -1 where
   not masked). logits rows: (b * rs + i - off); uncond (NULL: no CFG) holds
   the unconditional twin's rows at the same offsets, guided logits are
   un + (cfg + 1)(cond - un). ban1 / ban2: ids never proposed (-1: none). */
void d1_cuda_sampler_propose(d1_cuda *cu, int *tok, double *conf, const float *logits, const float *uncond,
                             float cfg, const int *canvas, int B, int T, int b0, int b1, int off, int rs, int V,
                             int mask_id, int ban1, int ban2, int remasking);
/* top-k reveal of each row: the k[b] most confident candidates of row b
   (ties to the earlier position), or with threshold > 0 the first and every
   other one with conf >= threshold, are written into canvas and flagged in
   revealed [B, T] (which is cleared first). */
void d1_cuda_sampler_select(d1_cuda *cu, int *canvas, uint8_t *revealed, const int *tok, const double *conf,
                            const int *k, float threshold, int B, int T, int b0, int b1);

#ifdef __cplusplus
}
#endif
#endif /* D1_CUDA_H */
