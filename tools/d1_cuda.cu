/* d1_cuda.cu - the CUDA backend of d1.h (see d1_cuda.h for the contract).

   Build: nvcc -O3 -fmad=false -c tools/d1_cuda.cu; link with -lcublas -lcudart.
   -fmad=false keeps every elementwise formula rounding as its CPU twin does
   (no fused multiply-adds the CPU code does not have), so RMSNorm, RoPE,
   SwiGLU, AdamW and the embedding agree with the CPU to the bit or nearly;
   the matrix products go through cuBLAS in FP32 (TF32 off).

   Layout of this file, in d1.h's order: the context and memory; the layer
   kernels (matmul, embedding, RMSNorm, RoPE, attention, SwiGLU); the losses
   and AdamW; the sampler's propose and select. Rows are reduced by one warp
   each (32 lanes striding over the row) unless a comment says otherwise. */
#include "d1_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define D1CU_ERR (-19) /* D1_ERR_DEVICE */
#define D1CU_WARPS 8   /* rows per block of the warp-per-row kernels */
#define D1CU_RED 256   /* blocks of the first stage of sum_squares */

struct d1_cuda {
    int            device;
    cudaStream_t   stream;
    cublasHandle_t blas;
    int            status;
    char           message[256];
    char           name[256];
    double        *red;     /* [D1CU_RED] partial sums */
    float         *scratch; /* grows: RMSNorm's partial dw sums */
    size_t         scratch_n;
};

// ---- context and memory ------------------------------------------------------

static void d1cu_fail(d1_cuda *cu, const char *what, const char *detail) {
    if (cu->status) return; /* keep the first */
    cu->status = D1CU_ERR;
    snprintf(cu->message, sizeof cu->message, "%s: %s", what, detail);
}
static void d1cu_check(d1_cuda *cu, cudaError_t e, const char *what) {
    if (e != cudaSuccess) d1cu_fail(cu, what, cudaGetErrorString(e));
}
static void d1cu_blas(d1_cuda *cu, cublasStatus_t s, const char *what) {
    if (s != CUBLAS_STATUS_SUCCESS) d1cu_fail(cu, what, cublasGetStatusString(s));
}
#define D1CU_LAUNCHED(cu, what) d1cu_check((cu), cudaGetLastError(), (what))

extern "C" int d1_cuda_create(d1_cuda **out, int device) {
    d1_cuda *cu;
    cudaDeviceProp prop;
    int n = 0;
    if (!out) return D1CU_ERR;
    *out = NULL;
    if (cudaGetDeviceCount(&n) != cudaSuccess || device < 0 || device >= n) {
        cudaGetLastError(); /* clear "no device" so a later runtime call does not see it */
        return D1CU_ERR;
    }
    cu = (d1_cuda *)calloc(1, sizeof *cu);
    if (!cu) return D1CU_ERR;
    cu->device = device;
    if (cudaSetDevice(device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess ||
        cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking) != cudaSuccess) {
        cudaGetLastError();
        free(cu);
        return D1CU_ERR;
    }
    if (cublasCreate(&cu->blas) != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(cu->stream);
        free(cu);
        return D1CU_ERR;
    }
    cublasSetStream(cu->blas, cu->stream);
    cublasSetMathMode(cu->blas, CUBLAS_DEFAULT_MATH); /* FP32: no TF32 */
    snprintf(cu->name, sizeof cu->name, "%s", prop.name);
    if (cudaMalloc((void **)&cu->red, D1CU_RED * sizeof(double)) != cudaSuccess) {
        cudaGetLastError();
        d1_cuda_destroy(cu);
        return D1CU_ERR;
    }
    *out = cu;
    return 0;
}

extern "C" void d1_cuda_destroy(d1_cuda *cu) {
    if (!cu) return;
    cudaStreamSynchronize(cu->stream);
    cudaFree(cu->red);
    cudaFree(cu->scratch);
    cublasDestroy(cu->blas);
    cudaStreamDestroy(cu->stream);
    free(cu);
}

extern "C" int d1_cuda_status(d1_cuda *cu) {
    int s = cu->status;
    cu->status = 0;
    return s;
}
extern "C" const char *d1_cuda_message(const d1_cuda *cu) { return cu->message; }
extern "C" const char *d1_cuda_device_name(const d1_cuda *cu) { return cu->name; }

extern "C" void *d1_cuda_alloc(d1_cuda *cu, size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* an out-of-memory is reported by the caller, not sticky */
        return NULL;
    }
    (void)cu;
    return p;
}
extern "C" void d1_cuda_free(d1_cuda *cu, void *p) {
    if (!p) return;
    cudaStreamSynchronize(cu->stream);
    cudaFree(p);
}
extern "C" void d1_cuda_upload(d1_cuda *cu, void *dst, const void *src, size_t bytes) {
    if (bytes) d1cu_check(cu, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cu->stream), "upload");
    /* pageable source: the call returns once src has been staged, so the
       caller may reuse it; pinned memory would need a sync here */
}
extern "C" void d1_cuda_download(d1_cuda *cu, void *dst, const void *src, size_t bytes) {
    if (bytes) d1cu_check(cu, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cu->stream), "download");
    d1cu_check(cu, cudaStreamSynchronize(cu->stream), "download");
}
extern "C" void d1_cuda_copy(d1_cuda *cu, void *dst, const void *src, size_t bytes) {
    if (bytes) d1cu_check(cu, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cu->stream), "copy");
}
extern "C" void d1_cuda_zero(d1_cuda *cu, void *dst, size_t bytes) {
    if (bytes) d1cu_check(cu, cudaMemsetAsync(dst, 0, bytes, cu->stream), "zero");
}
extern "C" int d1_cuda_sync(d1_cuda *cu) {
    d1cu_check(cu, cudaStreamSynchronize(cu->stream), "sync");
    return cu->status;
}

static float *d1cu_scratch(d1_cuda *cu, size_t n) {
    if (n > cu->scratch_n) {
        float *p = NULL;
        cudaStreamSynchronize(cu->stream);
        cudaFree(cu->scratch);
        cu->scratch = NULL;
        cu->scratch_n = 0;
        if (cudaMalloc((void **)&p, n * sizeof(float)) != cudaSuccess) {
            d1cu_check(cu, cudaGetLastError(), "scratch");
            return NULL;
        }
        cu->scratch = p;
        cu->scratch_n = n;
    }
    return cu->scratch;
}

static unsigned d1cu_blocks(size_t n, unsigned per) { return (unsigned)((n + per - 1) / per); }

// ---- warp reductions ---------------------------------------------------------

__device__ static float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
__device__ static float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ static double warp_sum_d(double x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// ---- matmul (cuBLAS) ---------------------------------------------------------

/* Row-major C[M,N] (ldc) = op(A)[M,K] op(B)[K,N] + beta C, batched with element
   strides sA, sB, sC. cuBLAS is column-major, where a row-major X is X^T, so
   this computes C^T = op(B)^T op(A)^T. */
static void gemm_rm(d1_cuda *cu, int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc, int batch, long long sA, long long sB, long long sC) {
    const float one = 1.0f;
    cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (batch == 1)
        d1cu_blas(cu, cublasSgemm(cu->blas, ob, oa, N, M, K, &one, B, ldb, A, lda, &beta, C, ldc), "sgemm");
    else
        d1cu_blas(cu,
                  cublasSgemmStridedBatched(cu->blas, ob, oa, N, M, K, &one, B, ldb, sB, A, lda, sA, &beta, C, ldc,
                                            sC, batch),
                  "sgemm batched");
}

extern "C" void d1_cuda_matmul_forward(d1_cuda *cu, float *out, const float *inp, const float *w, int N, int I,
                                       int O) {
    gemm_rm(cu, 0, 1, N, O, I, inp, I, w, I, 0.0f, out, O, 1, 0, 0, 0);
}
extern "C" void d1_cuda_matmul_backward(d1_cuda *cu, float *dinp, float *dw, const float *dout, const float *inp,
                                        const float *w, int N, int I, int O) {
    gemm_rm(cu, 0, 0, N, I, O, dout, O, w, I, 0.0f, dinp, I, 1, 0, 0, 0);
    if (dw) gemm_rm(cu, 1, 0, O, I, N, dout, O, inp, I, 1.0f, dw, I, 1, 0, 0, 0);
}

// ---- embedding -----------------------------------------------------------------

__global__ static void embed_forward_k(float *out, const int *tok, const float *wte, int N, int C) {
    int n = blockIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x;
    if (n < N && c < C) out[(size_t)n * C + c] = wte[(size_t)tok[n] * C + c];
}
extern "C" void d1_cuda_embed_forward(d1_cuda *cu, float *out, const int *tok, const float *wte, int N, int C) {
    embed_forward_k<<<dim3(d1cu_blocks(C, 128), N), 128, 0, cu->stream>>>(out, tok, wte, N, C);
    D1CU_LAUNCHED(cu, "embed_forward");
}

/* one block row per distinct id: the same additions, in the same order, as the CPU */
__global__ static void embed_backward_k(float *dwte, const float *dout, const int *ids, const int *start,
                                        const int *pos, int C) {
    int u = blockIdx.y, c = blockIdx.x * blockDim.x + threadIdx.x, j;
    if (c >= C) return;
    float *d = dwte + (size_t)ids[u] * C + c, acc = *d;
    for (j = start[u]; j < start[u + 1]; j++) acc += dout[(size_t)pos[j] * C + c];
    *d = acc;
}
extern "C" void d1_cuda_embed_backward(d1_cuda *cu, float *dwte, const float *dout, const int *ids, const int *start,
                                       const int *pos, int U, int C) {
    if (U <= 0) return;
    embed_backward_k<<<dim3(d1cu_blocks(C, 128), U), 128, 0, cu->stream>>>(dwte, dout, ids, start, pos, C);
    D1CU_LAUNCHED(cu, "embed_backward");
}

// ---- RMSNorm -------------------------------------------------------------------

__global__ static void rmsnorm_forward_k(float *out, float *rstd, const float *x, const float *w, int N, int C,
                                         float eps) {
    int n = blockIdx.x * D1CU_WARPS + threadIdx.y, lane = threadIdx.x, c;
    if (n >= N) return;
    const float *xn = x + (size_t)n * C;
    float *on = out + (size_t)n * C, ss = 0.0f, r;
    for (c = lane; c < C; c += 32) ss += xn[c] * xn[c];
    r = 1.0f / sqrtf(warp_sum(ss) / (float)C + eps);
    for (c = lane; c < C; c += 32) on[c] = xn[c] * r * w[c];
    if (lane == 0) rstd[n] = r;
}
extern "C" void d1_cuda_rmsnorm_forward(d1_cuda *cu, float *out, float *rstd, const float *x, const float *w, int N,
                                        int C, float eps) {
    rmsnorm_forward_k<<<d1cu_blocks(N, D1CU_WARPS), dim3(32, D1CU_WARPS), 0, cu->stream>>>(out, rstd, x, w, N, C,
                                                                                          eps);
    D1CU_LAUNCHED(cu, "rmsnorm_forward");
}

/* dx[n] = r g - x[n] r^3 (g . x[n]) / C with g = dout ⊙ w */
__global__ static void rmsnorm_dx_k(float *dx, const float *dout, const float *x, const float *w, const float *rstd,
                                    int N, int C) {
    int n = blockIdx.x * D1CU_WARPS + threadIdx.y, lane = threadIdx.x, c;
    if (n >= N) return;
    const float *xn = x + (size_t)n * C, *dn = dout + (size_t)n * C;
    float *dxn = dx + (size_t)n * C, r = rstd[n], gx = 0.0f, k;
    for (c = lane; c < C; c += 32) gx += dn[c] * w[c] * xn[c];
    k = r * r * r * warp_sum(gx) / (float)C;
    for (c = lane; c < C; c += 32) dxn[c] = r * dn[c] * w[c] - k * xn[c];
}
/* dw: partial sums over chunks of 128 rows (part [chunks, C]), then their sum in chunk order */
#define D1CU_DW_ROWS 128
__global__ static void rmsnorm_dw_part_k(float *part, const float *dout, const float *x, const float *rstd, int N,
                                         int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, ch = blockIdx.y, n, n1 = min(N, (ch + 1) * D1CU_DW_ROWS);
    if (c >= C) return;
    float acc = 0.0f;
    for (n = ch * D1CU_DW_ROWS; n < n1; n++) acc += dout[(size_t)n * C + c] * x[(size_t)n * C + c] * rstd[n];
    part[(size_t)ch * C + c] = acc;
}
__global__ static void rmsnorm_dw_sum_k(float *dw, const float *part, int chunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, ch;
    if (c >= C) return;
    float acc = 0.0f;
    for (ch = 0; ch < chunks; ch++) acc += part[(size_t)ch * C + c];
    dw[c] += acc;
}
extern "C" void d1_cuda_rmsnorm_backward(d1_cuda *cu, float *dx, float *dw, const float *dout, const float *x,
                                         const float *w, const float *rstd, int N, int C) {
    rmsnorm_dx_k<<<d1cu_blocks(N, D1CU_WARPS), dim3(32, D1CU_WARPS), 0, cu->stream>>>(dx, dout, x, w, rstd, N, C);
    D1CU_LAUNCHED(cu, "rmsnorm_backward");
    if (dw) {
        int chunks = (N + D1CU_DW_ROWS - 1) / D1CU_DW_ROWS;
        float *part = d1cu_scratch(cu, (size_t)chunks * C);
        if (!part) return;
        rmsnorm_dw_part_k<<<dim3(d1cu_blocks(C, 128), chunks), 128, 0, cu->stream>>>(part, dout, x, rstd, N, C);
        rmsnorm_dw_sum_k<<<d1cu_blocks(C, 128), 128, 0, cu->stream>>>(dw, part, chunks, C);
        D1CU_LAUNCHED(cu, "rmsnorm_backward dw");
    }
}

// ---- RoPE ----------------------------------------------------------------------

__global__ static void rope_k(float *x, int ld, int N, int T, int pos0, int n_heads, int D, const float *cos_t,
                              const float *sin_t, float sign) {
    int half = D / 2, n = blockIdx.y, j = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N || j >= n_heads * half) return;
    int h = j / half, i = j % half;
    size_t t = (size_t)(pos0 + n % T);
    float *a = x + (size_t)n * ld + h * D, *b = a + half;
    float cs = cos_t[t * half + i], s = sign * sin_t[t * half + i], x1 = a[i], x2 = b[i];
    a[i] = x1 * cs - x2 * s;
    b[i] = x2 * cs + x1 * s;
}
extern "C" void d1_cuda_rope(d1_cuda *cu, float *x, int ld, int N, int T, int pos0, int n_heads, int D,
                             const float *cos_t, const float *sin_t, float sign) {
    rope_k<<<dim3(d1cu_blocks((size_t)n_heads * (D / 2), 128), N), 128, 0, cu->stream>>>(x, ld, N, T, pos0, n_heads,
                                                                                        D, cos_t, sin_t, sign);
    D1CU_LAUNCHED(cu, "rope");
}

// ---- attention -----------------------------------------------------------------

/* rows of att [B,H,T,T]: P = softmax(scale S + M_b), masked keys -inf */
__global__ static void softmax_rows_k(float *att, const uint8_t *key_mask, int rows, int H, int T, float scale) {
    int r = blockIdx.x * D1CU_WARPS + threadIdx.y, lane = threadIdx.x, j;
    if (r >= rows) return;
    int b = r / (H * T);
    float *row = att + (size_t)r * T, mx = -INFINITY, sum = 0.0f;
    const uint8_t *km = key_mask ? key_mask + (size_t)b * T : NULL;
    for (j = lane; j < T; j += 32) {
        if (km && !km[j]) row[j] = -INFINITY;
        mx = fmaxf(mx, row[j]);
    }
    mx = warp_max(mx);
    for (j = lane; j < T; j += 32) {
        float e = expf(scale * row[j] - scale * mx);
        row[j] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    for (j = lane; j < T; j += 32) row[j] /= sum;
}

extern "C" void d1_cuda_attention_forward(d1_cuda *cu, float *att, float *y, const float *qkv,
                                          const uint8_t *key_mask, int B, int T, int H, int KV, int D) {
    int C = H * D, QW = C + 2 * KV * D, per = H / KV, h;
    long long sq = (long long)T * QW, sa = (long long)H * T * T, sy = (long long)T * C;
    const float *k = qkv + C, *v = qkv + C + KV * D;
    for (h = 0; h < H; h++) /* S[b,h] = Q_h K_g^T, batched over b */
        gemm_rm(cu, 0, 1, T, T, D, qkv + h * D, QW, k + (h / per) * D, QW, 0.0f, att + (size_t)h * T * T, T, B, sq,
                sq, sa);
    softmax_rows_k<<<d1cu_blocks((size_t)B * H * T, D1CU_WARPS), dim3(32, D1CU_WARPS), 0, cu->stream>>>(
        att, key_mask, B * H * T, H, T, 1.0f / sqrtf((float)D));
    D1CU_LAUNCHED(cu, "attention softmax");
    for (h = 0; h < H; h++) /* y[b, :, h] = P[b,h] V_g */
        gemm_rm(cu, 0, 0, T, D, T, att + (size_t)h * T * T, T, v + (h / per) * D, QW, 0.0f, y + h * D, C, B, sa, sq,
                sy);
}

/* dS = P ⊙ (dP - rowsum(dP ⊙ P)) scale, in place on dP [B,T,T]; P rows of head h */
__global__ static void softmax_backward_k(float *dS, const float *att, int B, int H, int h, int T, float scale) {
    int r = blockIdx.x * D1CU_WARPS + threadIdx.y, lane = threadIdx.x, j;
    if (r >= B * T) return;
    int b = r / T, i = r % T;
    const float *P = att + (((size_t)b * H + h) * T + i) * T;
    float *d = dS + (size_t)r * T, s = 0.0f;
    for (j = lane; j < T; j += 32) s += d[j] * P[j];
    s = warp_sum(s);
    for (j = lane; j < T; j += 32) d[j] = P[j] * (d[j] - s) * scale;
}

extern "C" void d1_cuda_attention_backward(d1_cuda *cu, float *dqkv, float *scratch, const float *att,
                                           const float *dy, const float *qkv, int B, int T, int H, int KV, int D) {
    int C = H * D, QW = C + 2 * KV * D, per = H / KV, h;
    long long sq = (long long)T * QW, sa = (long long)H * T * T, sy = (long long)T * C, ss = (long long)T * T;
    float scale = 1.0f / sqrtf((float)D);
    for (h = 0; h < H; h++) {
        int g = h / per, acc = h % per > 0;
        const float *q = qkv + h * D, *k = qkv + C + g * D, *v = k + KV * D, *P = att + (size_t)h * T * T;
        float *dk = dqkv + C + g * D, *dv = dk + KV * D;
        gemm_rm(cu, 0, 1, T, T, D, dy + h * D, C, v, QW, 0.0f, scratch, T, B, sy, sq, ss); /* dP = dY V^T */
        softmax_backward_k<<<d1cu_blocks((size_t)B * T, D1CU_WARPS), dim3(32, D1CU_WARPS), 0, cu->stream>>>(
            scratch, att, B, H, h, T, scale);
        D1CU_LAUNCHED(cu, "attention softmax backward");
        gemm_rm(cu, 0, 0, T, D, T, scratch, T, k, QW, 0.0f, dqkv + h * D, QW, B, ss, sq, sq);  /* dQ = dS K */
        gemm_rm(cu, 1, 0, T, D, T, scratch, T, q, QW, (float)acc, dk, QW, B, ss, sq, sq);      /* dK += dS^T Q */
        gemm_rm(cu, 1, 0, T, D, T, P, T, dy + h * D, C, (float)acc, dv, QW, B, sa, sy, sq);    /* dV += P^T dY */
    }
}

// ---- SwiGLU, residual ----------------------------------------------------------

__global__ static void swiglu_forward_k(float *h, const float *gu, int N, int F) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * F) return;
    size_t n = i / F, f = i % F;
    float g = gu[n * 2 * F + f], u = gu[n * 2 * F + F + f];
    h[i] = g / (1.0f + expf(-g)) * u;
}
__global__ static void swiglu_backward_k(float *dgu, const float *gu, const float *dh, int N, int F) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * F) return;
    size_t n = i / F, f = i % F;
    float g = gu[n * 2 * F + f], u = gu[n * 2 * F + F + f], d = dh[i], s = 1.0f / (1.0f + expf(-g));
    dgu[n * 2 * F + f] = d * u * s * (1.0f + g * (1.0f - s));
    dgu[n * 2 * F + F + f] = d * g * s;
}
extern "C" void d1_cuda_swiglu_forward(d1_cuda *cu, float *h, const float *gu, int N, int F) {
    swiglu_forward_k<<<d1cu_blocks((size_t)N * F, 256), 256, 0, cu->stream>>>(h, gu, N, F);
    D1CU_LAUNCHED(cu, "swiglu_forward");
}
extern "C" void d1_cuda_swiglu_backward(d1_cuda *cu, float *dgu, const float *gu, const float *dh, int N, int F) {
    swiglu_backward_k<<<d1cu_blocks((size_t)N * F, 256), 256, 0, cu->stream>>>(dgu, gu, dh, N, F);
    D1CU_LAUNCHED(cu, "swiglu_backward");
}

__global__ static void residual_add_k(float *x, const float *r, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += r[i];
}
extern "C" void d1_cuda_residual_add(d1_cuda *cu, float *x, const float *r, size_t n) {
    residual_add_k<<<d1cu_blocks(n, 256), 256, 0, cu->stream>>>(x, r, n);
    D1CU_LAUNCHED(cu, "residual_add");
}

// ---- losses ----------------------------------------------------------------------

/* One warp per row; the row's max and sum of exp(l - max) in float, as the CPU. */
__device__ static void row_softmax_stats(const float *l, int V, float *mx, float *sum) {
    int lane = threadIdx.x, v;
    float m = -INFINITY, s = 0.0f;
    for (v = lane; v < V; v += 32) m = fmaxf(m, l[v]);
    m = warp_max(m);
    for (v = lane; v < V; v += 32) s += expf(l[v] - m);
    *mx = m;
    *sum = warp_sum(s);
}

__global__ static void cross_entropy_k(float *dl, double *row_loss, const float *logits, const int *y,
                                       const float *w, int N, int V) {
    int n = blockIdx.x * D1CU_WARPS + threadIdx.y, lane = threadIdx.x, v;
    if (n >= N) return;
    const float *row = logits + (size_t)n * V;
    float *d = dl + (size_t)n * V, wn = w[n], target, mx, sum, k;
    if (wn == 0.0f) {
        for (v = lane; v < V; v += 32) d[v] = 0.0f;
        if (lane == 0) row_loss[n] = 0.0;
        return;
    }
    target = row[y[n]];
    row_softmax_stats(row, V, &mx, &sum);
    __syncwarp(); /* every lane has read the row before d (which may alias it) is written */
    k = wn / sum;
    for (v = lane; v < V; v += 32) d[v] = expf(row[v] - mx) * k;
    __syncwarp();
    if (lane == 0) {
        d[y[n]] -= wn;
        row_loss[n] = (double)wn * ((double)mx + log((double)sum) - (double)target);
    }
}
extern "C" void d1_cuda_cross_entropy(d1_cuda *cu, float *dlogits, double *row_loss, const float *logits,
                                      const int *y, const float *w, int N, int V) {
    cross_entropy_k<<<d1cu_blocks(N, D1CU_WARPS), dim3(32, D1CU_WARPS), 0, cu->stream>>>(dlogits, row_loss, logits, y,
                                                                                        w, N, V);
    D1CU_LAUNCHED(cu, "cross_entropy");
}

__global__ static void token_logp_k(float *logp, const float *logits, const int *tokens, int R, int T, int P, int V) {
    int Lc = T - P, t = blockIdx.x * D1CU_WARPS + threadIdx.y;
    if (t >= R * Lc) return;
    size_t row = (size_t)(t / Lc) * T + P + t % Lc;
    const float *l = logits + row * V;
    float mx, sum;
    row_softmax_stats(l, V, &mx, &sum);
    if (threadIdx.x == 0) logp[t] = (float)((double)l[tokens[row]] - mx - log((double)sum));
}
extern "C" void d1_cuda_token_logp(d1_cuda *cu, float *logp, const float *logits, const int *tokens, int R, int T,
                                   int P, int V) {
    token_logp_k<<<d1cu_blocks((size_t)R * (T - P), D1CU_WARPS), dim3(32, D1CU_WARPS), 0, cu->stream>>>(
        logp, logits, tokens, R, T, P, V);
    D1CU_LAUNCHED(cu, "token_logp");
}

/* d1_grpo_loss per row of logits [R*T, V]; tok_out [R*Lc, 3] = (L, kl, clipped) */
__global__ static void grpo_dlogits_k(float *dl, double *tok_out, const float *logits, const int *tokens,
                                      const uint8_t *score, const float *adv, const float *old_logp,
                                      const float *ref_logp, int R, int T, int P, int V, float clip_eps, float beta,
                                      int wd1, float denom) {
    int row = blockIdx.x * D1CU_WARPS + threadIdx.y, lane = threadIdx.x, Lc = T - P, v;
    if (row >= R * T) return;
    int r = row / T, k = row % T - P;
    size_t t = (size_t)r * Lc + k;
    const float *l = logits + (size_t)row * V;
    float *d = dl + (size_t)row * V, mx, sum;
    if (k < 0 || !score[t]) {
        for (v = lane; v < V; v += 32) d[v] = 0.0f;
        if (k >= 0 && lane == 0) tok_out[3 * t] = tok_out[3 * t + 1] = tok_out[3 * t + 2] = 0.0;
        return;
    }
    int target = tokens[row];
    row_softmax_stats(l, V, &mx, &sum);
    double logp = (float)((double)l[target] - mx - log((double)sum)); /* float, as stored */
    double A = adv[r], L, g, kl = 0.0, dkl = 0.0, clip = 0.0;
    if (beta != 0.0f) {
        double diff = (double)ref_logp[t] - logp;
        kl = exp(diff) - diff - 1.0;
        dkl = 1.0 - exp(diff);
    }
    if (wd1) {
        L = -A * logp;
        g = -A;
    } else {
        double old = old_logp ? (double)old_logp[t] : logp, rho = exp(logp - old), l1 = rho * A;
        double l2 = fmin(fmax(rho, 1.0 - clip_eps), 1.0 + clip_eps) * A;
        L = -fmin(l1, l2);
        g = l1 <= l2 ? -rho * A : 0.0;
        clip = l1 > l2;
    }
    L += beta * kl;
    g += beta * dkl;
    g /= denom;
    __syncwarp(); /* l may alias d */
    for (v = lane; v < V; v += 32) {
        float p = expf(l[v] - mx) / sum;
        d[v] = (float)(-g * p);
    }
    __syncwarp();
    if (lane == 0) {
        d[target] += (float)g;
        tok_out[3 * t] = L;
        tok_out[3 * t + 1] = kl;
        tok_out[3 * t + 2] = clip;
    }
}
extern "C" void d1_cuda_grpo_dlogits(d1_cuda *cu, float *dlogits, double *tok_out, const float *logits,
                                     const int *tokens, const uint8_t *score, const float *adv, const float *old_logp,
                                     const float *ref_logp, int R, int T, int P, int V, float clip_eps, float beta,
                                     int wd1, float denom) {
    grpo_dlogits_k<<<d1cu_blocks((size_t)R * T, D1CU_WARPS), dim3(32, D1CU_WARPS), 0, cu->stream>>>(
        dlogits, tok_out, logits, tokens, score, adv, old_logp, ref_logp, R, T, P, V, clip_eps, beta, wd1, denom);
    D1CU_LAUNCHED(cu, "grpo_dlogits");
}

// ---- AdamW and the gradient norm ---------------------------------------------------

/* block b sums x[i] ^ 2 over i = b*256 + thread + k*(D1CU_RED*256); then one block adds the partials in order */
__global__ static void sum_squares_part_k(double *part, const float *x, size_t n) {
    __shared__ double sh[256];
    double acc = 0.0;
    size_t i;
    for (i = (size_t)blockIdx.x * 256 + threadIdx.x; i < n; i += (size_t)D1CU_RED * 256) acc += (double)x[i] * x[i];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}
__global__ static void sum_parts_k(double *out, const double *part, int n) {
    double acc = 0.0;
    for (int i = 0; i < n; i++) acc += part[i];
    *out = acc;
}
extern "C" void d1_cuda_sum_squares(d1_cuda *cu, double *out, const float *x, size_t n) {
    sum_squares_part_k<<<D1CU_RED, 256, 0, cu->stream>>>(cu->red, x, n);
    sum_parts_k<<<1, 1, 0, cu->stream>>>(out, cu->red, D1CU_RED);
    D1CU_LAUNCHED(cu, "sum_squares");
}

__global__ static void adamw_k(float *w, const float *g, float *m, float *v, size_t n, float b1, float b2, float wd,
                               float step, float inv_c2, float eps, float scale) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i] * scale, wi = w[i];
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = wi - wd * wi - step * mi / (sqrtf(vi) * inv_c2 + eps);
}
extern "C" void d1_cuda_adamw(d1_cuda *cu, float *w, const float *g, float *m, float *v, size_t n, float b1, float b2,
                              float wd, float step, float inv_c2, float eps, float scale) {
    if (!n) return;
    adamw_k<<<d1cu_blocks(n, 256), 256, 0, cu->stream>>>(w, g, m, v, n, b1, b2, wd, step, inv_c2, eps, scale);
    D1CU_LAUNCHED(cu, "adamw");
}

// ---- sampler -------------------------------------------------------------------

enum { REMASK_LOW_CONFIDENCE = 0, REMASK_RANDOM = 1, REMASK_MARGIN = 2, REMASK_ENTROPY = 3 }; /* d1.h's order */

/* d1__propose at temperature 0, one warp per (b, i): argmax (first of equals),
   and the confidence under p = softmax(guided logits) in double */
__global__ static void sampler_propose_k(int *tok, double *conf, const float *logits, const float *uncond, float cfg,
                                         const int *canvas, int B, int T, int b0, int b1, int off, int rs, int V,
                                         int mask_id, int ban1, int ban2, int remasking) {
    int bl = b1 - b0, c = blockIdx.x * D1CU_WARPS + threadIdx.y, lane = threadIdx.x, v;
    if (c >= B * bl) return;
    int b = c / bl, i = b0 + c % bl;
    if (canvas[(size_t)b * T + i] != mask_id) {
        if (lane == 0) { tok[c] = -1; conf[c] = -INFINITY; }
        return;
    }
    size_t ro = ((size_t)b * rs + (size_t)(i - off)) * V;
    const float *l = logits + ro, *u = uncond ? uncond + ro : NULL;
#define D1CU_GUIDED(v) (u ? u[v] + (cfg + 1.0f) * (l[v] - u[v]) : l[v])
    double mx = -HUGE_VAL, sum = 0.0, p1 = 0.0, p2 = 0.0, plogp = 0.0;
    int arg = V;
    for (v = lane; v < V; v += 32) {
        double x;
        if (v == ban1 || v == ban2) continue;
        x = D1CU_GUIDED(v);
        if (x > mx) { mx = x; arg = v; } /* lanes visit ascending v: the first of equals */
    }
    for (int o = 16; o > 0; o >>= 1) { /* the larger, or of equals the earlier id */
        double mo = __shfl_xor_sync(0xffffffffu, mx, o);
        int ao = __shfl_xor_sync(0xffffffffu, arg, o);
        if (mo > mx || (mo == mx && ao < arg)) { mx = mo; arg = ao; }
    }
    for (v = lane; v < V; v += 32)
        if (v != ban1 && v != ban2) sum += exp((double)D1CU_GUIDED(v) - mx);
    sum = warp_sum_d(sum);
    if (remasking == REMASK_MARGIN) { /* the two largest probabilities, equal values counted twice */
        for (v = lane; v < V; v += 32) {
            double p = (v == ban1 || v == ban2) ? 0.0 : exp((double)D1CU_GUIDED(v) - mx) / sum;
            if (p > p1) { p2 = p1; p1 = p; } else if (p > p2) p2 = p;
        }
        for (int o = 16; o > 0; o >>= 1) {
            double q1 = __shfl_xor_sync(0xffffffffu, p1, o), q2 = __shfl_xor_sync(0xffffffffu, p2, o);
            double hi = fmax(p1, q1), lo = fmax(fmin(p1, q1), fmax(p2, q2));
            p1 = hi;
            p2 = lo;
        }
    } else if (remasking == REMASK_ENTROPY) {
        for (v = lane; v < V; v += 32) {
            double p = (v == ban1 || v == ban2) ? 0.0 : exp((double)D1CU_GUIDED(v) - mx) / sum;
            if (p > 0.0) plogp += p * log(p);
        }
        plogp = warp_sum_d(plogp);
    }
    if (lane == 0) {
        tok[c] = arg < V ? arg : -1;
        conf[c] = remasking == REMASK_MARGIN ? p1 - p2 : remasking == REMASK_ENTROPY ? plogp
                                                                                      : exp((double)D1CU_GUIDED(arg) - mx) / sum;
    }
#undef D1CU_GUIDED
}
extern "C" void d1_cuda_sampler_propose(d1_cuda *cu, int *tok, double *conf, const float *logits,
                                        const float *uncond, float cfg, const int *canvas, int B, int T, int b0,
                                        int b1, int off, int rs, int V, int mask_id, int ban1, int ban2,
                                        int remasking) {
    sampler_propose_k<<<d1cu_blocks((size_t)B * (b1 - b0), D1CU_WARPS), dim3(32, D1CU_WARPS), 0, cu->stream>>>(
        tok, conf, logits, uncond, cfg, canvas, B, T, b0, b1, off, rs, V, mask_id, ban1, ban2, remasking);
    D1CU_LAUNCHED(cu, "sampler_propose");
}

/* one block per row: a candidate's rank = how many beat it (higher conf, or
   equal conf at an earlier position); the first k (or the first and those
   at or above the threshold) are revealed */
__global__ static void sampler_select_k(int *canvas, uint8_t *revealed, const int *tok, const double *conf,
                                        const int *k, float threshold, int T, int b0, int b1) {
    int b = blockIdx.x, bl = b1 - b0, i, j;
    const int *tb = tok + (size_t)b * bl;
    const double *cb = conf + (size_t)b * bl;
    for (i = threadIdx.x; i < bl; i += blockDim.x) {
        int rank = 0;
        if (tb[i] < 0) continue;
        for (j = 0; j < bl; j++)
            if (tb[j] >= 0 && (cb[j] > cb[i] || (cb[j] == cb[i] && j < i))) rank++;
        if (threshold > 0.0f ? (rank == 0 || cb[i] >= (double)threshold) : rank < k[b]) {
            canvas[(size_t)b * T + b0 + i] = tb[i];
            revealed[(size_t)b * T + b0 + i] = 1;
        }
    }
}
extern "C" void d1_cuda_sampler_select(d1_cuda *cu, int *canvas, uint8_t *revealed, const int *tok,
                                       const double *conf, const int *k, float threshold, int B, int T, int b0,
                                       int b1) {
    d1_cuda_zero(cu, revealed, (size_t)B * T);
    sampler_select_k<<<B, 256, 0, cu->stream>>>(canvas, revealed, tok, conf, k, threshold, T, b0, b1);
    D1CU_LAUNCHED(cu, "sampler_select");
}
