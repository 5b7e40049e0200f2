/* d1.h - masked diffusion language models and the d1 recipe, in one C header.
   v0.1 - MIT or public domain, see the end of the file.

   d1.h implements, on a CPU with SIMD and threads, the recipe of "d1: Scaling
   Reasoning in Diffusion Large Language Models via Reinforcement Learning"
   (Zhao, Gupta, Zheng, Grover, 2025, arXiv 2504.12216): a LLaDA-architecture
   bidirectional transformer with its backward pass, the masked-diffusion loss,
   AdamW, the remasking sampler, masked SFT and diffu-GRPO (with the
   estimators that came after d1: ESPO, d2, SPG).
   It needs libc, libm and pthreads, nothing else.

   DO THIS in exactly one C or C++ file of your program:

       #define D1_IMPLEMENTATION
       #include "d1.h"

   and include "d1.h" without the define anywhere else. A training loop:

       d1_config cfg = {0};                       // zero fields take defaults
       cfg.vocab_size = 64; cfg.dim = 128; cfg.n_layers = 4; cfg.n_heads = 4;
       cfg.ffn_dim = 384; cfg.max_seq_len = 128;
       cfg.mask_id = 63; cfg.eos_id = 62;         // stated: never defaulted
       cfg.pad_id = D1_TOKEN_NONE;                // (no padding token here)
       d1_model m;  d1_model_init(&m, &cfg, 1234);
       d1_adamw_desc od = d1_adamw_default_desc();
       d1_adamw opt; d1_adamw_init(&opt, &m, &od);
       d1_rng rng;  d1_rng_seed(&rng, 42);
       for (step...) {
           float loss;
           d1_model_zero_grad(&m);
           int rc = d1_pretrain_loss(&m, tokens, B, T, NULL, NULL, &rng, &loss);
           if (rc == D1_OK) rc = d1_adamw_step(&opt, &m, NULL);
           if (rc != D1_OK) fprintf(stderr, "%s\n", d1_last_error());
       }
       d1_adamw_free(&opt); d1_model_free(&m);

   Every function returns an int status: D1_OK (0) or a negative D1_ERR_*,
   named by d1_strerror(). On an error nothing observable changes: not the
   weights, not the gradients, not the optimizer, not the caller's RNG. The
   library never prints, never exits and never aborts.

   CONFIGURATION MACROS (define before the #include that has D1_IMPLEMENTATION)

     D1_IMPLEMENTATION    compile the implementation into this file
     D1_STATIC            make every public function static (private copy)
     D1_MALLOC, D1_FREE   your allocator (define both or neither)
     D1_ASSERT(x)         internal invariant check (default: assert.h assert)
     D1_NO_SIMD           use the scalar reference kernels only (BF16 too)
     D1_NO_THREADS        build without pthreads (d1_model_set_threads(m, 1) only)
     D1_NO_STDIO          no file I/O: checkpoints load from / save to memory only
     D1_MAX_THREADS       upper bound for d1_model_set_threads (default 64)
     D1_USE_BLIS          matmuls through BLIS (bli_sgemm; link -lblis)
     D1_CUDA              the CUDA backend (tools/d1_cuda.h, d1_cuda.cu; link
                          the .cu object, -lcublas -lcudart): d1_model_set_device
     D1_AMX_EMULATE       tests only: the AMX kernel on tests/amx_emu.h's scalar
                          model of the tile instructions (include it first)

   SIMD paths are chosen from the compiler's macros: __AVX512F__ (AVX-512),
   __AVX2__ with __FMA__ (AVX2), __ARM_NEON with __aarch64__ (NEON); build
   with -march=native (or the flags of your target) to enable them. The BF16
   GEMM of D1_PRECISION_BF16 uses AVX512-BF16 when __AVX512BF16__ is defined,
   and on other x86-64 gcc / clang builds after a CPUID check at run time;
   on arm64, NEON's BF16 instructions when __ARM_FEATURE_BF16_VECTOR_ARITHMETIC
   is defined, and on other arm64 Linux gcc builds after a HWCAP2 check; on
   x86-64 Linux (gcc >= 11, clang >= 12), AMX-BF16 tiles where CPUID reports
   them and Linux grants the process their state (checked at run time).

   LEGEND (the names used in shapes and formulas throughout)

     B  batch (sequences)          T  sequence length (tokens)
     N  = B*T tokens in a batch    C  model width (dim, d_model)
     V  vocabulary size            L  layers
     H  query heads                KV key/value heads (GQA), H % KV == 0
     D  head dim = C/H             F  MLP hidden width (ffn_dim)
     QW = C + 2*KV*D, the rows of a layer's stacked q|k|v projection
     KVD = KV*D, the width of the keys (and of the values)
     P  prompt length (positions; a row's prompt is its last prompt_lens[b])
     Lc completion length = gen_len = T - P
     G  group size (completions per prompt in diffu-GRPO)
     R  = n_prompts*G rollouts of one diffu-GRPO iteration
     mu inner updates per generation batch (diffu-GRPO)
     p  masking ratio of a sequence in the forward process
     eps: RMSNorm's norm_eps, AdamW's eps, and GRPO's clip_eps (clip to
        [1-eps, 1+eps]) are three settings, each named so where it is set

   THE PAPER, STEP BY STEP (grep for the names)

     LLaDA transformer (modeling_llada.py)         d1_model_forward / _backward
       one block, full and KV-cache forward        d1__block_forward (d1__forward_w, d1__forward_cached)
       RMSNorm                                     d1__rmsnorm_forward / _backward
       RoPE, rotate-half layout                    d1__rope (sign -1: backward)
       bidirectional GQA attention                 d1__attention_{forward,backward}_task
       SiLU-gated MLP                              d1__swiglu_{forward,backward}_task
     forward process q(x_t|x_0), t ~ U(0,1)        d1_noise_draw
     masked-diffusion loss (LLaDA; d1 background)  d1_pretrain_loss
     AdamW with global-norm clipping               d1_adamw_step
     reverse process: LLaDA's semi-AR remasking    d1_sampler_generate
       transfer schedule (generate.py)             d1_sampler_transfer_count
       low-confidence / random remasking           d1__propose
       reveal the step's k most confident tokens   d1__sampler_reveal_row
       Fast-dLLM threshold + KV cache              d1_sampler_desc.threshold, .kv_cache;
                                                   d1__forward_cached
     masked SFT (d1 stage 1)                       d1_sft_loss
     diffu-GRPO (d1 stage 2)                       d1_grpo_step (phases a-f);
                                                   written out: examples/grpo_unrolled.c
       group advantages A_i = r_i - mean(r)        d1__grpo_advantages (phase c)
       one-step log-prob estimator, prompt masked  d1__grpo_masks_one_step (phase d), d1_grpo_logprobs
         (d1: "mean-field approximation" of the
         sequence log-prob, "one-step per-token
         estimation with prompt masking")
         at p_mask_prompt, one mask per inner
         update shared by old, ref and new passes  phase e (the mu masks), phase f (update it uses mask it)
       clipped surrogate + beta KL (k3)            d1_grpo_loss
       wd1's ratio-free objective                  d1_wd1_weights, D1_GRPO_WD1
     after d1 (DESIGN §7b; each cites its reference code's file and lines)
       KL as a choice k1 / k2 / k3                 d1__kl_of, d1_grpo_desc.kl
       ESPO: sequence ELBO, sequence ratio, k2     d1__grpo_masks_elbo, d1__grpo_loss_seq
       d2 StepMerge: trajectory segments           d1__grpo_masks_trajectory, d1__grpo_record_reveals
       SPG: block masks, ELBO / EUBO               d1__grpo_masks_block, d1__grpo_loss_spg
       dual-clip PPO: rho's pull capped for A < 0  d1__surrogate, d1_grpo_desc.dual_clip
     d1.h's own: a group's rows share their masks  d1_grpo_desc.group_masks, d1__grpo_row_stream
       (common random numbers: shared tokens cancel)
     LoRA adapters                                 d1_lora_attach / _merge
     BF16 inference (sampler, log-prob passes)     d1_model_set_precision; d1__gemm_bf16;
                                                   d1_model_set_bf16_kernel (the reference kernel),
                                                   d1_bf16_simd_available (a SIMD kernel here?)
     a model held in BF16 only (8B-class)          d1_model_load_bf16; d1__resident_put
     mixed-precision training (BF16 operands)      D1_PRECISION_BF16_MIXED; d1__linear_backward,
                                                   d1__gemm_bf16_gs
     text <-> ids (Hugging Face tokenizer.json)    d1_tokenizer_encode / _decode; >>tokenizer
     the same on a GPU (-DD1_CUDA, optional)       d1_model_set_device; >>cuda, tools/d1_cuda.cu

   GRADIENT CONVENTION: parameter gradients accumulate (+=), activation
   gradients are written (=). d1_model_zero_grad clears the former.
*/
#ifndef D1_H
#define D1_H

#include <stddef.h>
#include <stdint.h>

#ifdef D1_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define D1_API static __attribute__((unused)) /* a private copy may use only part of it */
#else
#define D1_API static
#endif
#else
#define D1_API extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ------------------------------------------------------ */
enum {
    D1_OK = 0,
    D1_ERR_ARG = -1,        /* a NULL pointer or an argument out of range     */
    D1_ERR_NOMEM = -2,      /* an allocation failed                           */
    D1_ERR_SHAPE = -3,      /* B, T or a size is <= 0 or exceeds the model    */
    D1_ERR_TOKEN = -4,      /* a token id outside [0, V)                      */
    D1_ERR_CONFIG = -5,     /* an inconsistent model configuration            */
    D1_ERR_NONFINITE = -6,  /* a NaN or infinity in a loss or gradient        */
    D1_ERR_THREAD = -7,     /* a thread could not be created                  */
    D1_ERR_STATE = -8,      /* called out of order (backward before forward)  */
    /* checkpoints (see d1_model_load) */
    D1_ERR_IO = -9,             /* a file could not be opened, read, written, synced or renamed */
    D1_ERR_JSON = -10,          /* malformed JSON, or a value of the wrong type or form          */
    D1_ERR_HEADER = -11,        /* safetensors header length 0, > 100 MB, or past the end        */
    D1_ERR_DTYPE = -12,         /* a tensor dtype other than F32, BF16, F16 (F32 for moments)    */
    D1_ERR_OFFSETS = -13,       /* data_offsets: wrong size, overlap, gap, or uncovered bytes    */
    D1_ERR_DUPLICATE = -14,     /* a key that appears twice                                      */
    D1_ERR_MISSING = -15,       /* a tensor the configuration needs is absent                    */
    D1_ERR_UNKNOWN_TENSOR = -16, /* a tensor the configuration does not have                      */
    D1_ERR_TENSOR_SHAPE = -17,  /* a tensor's shape differs from the configuration's             */
    D1_ERR_TRUNCATED = -18,     /* the data ends before the last tensor does                     */
    /* devices */
    D1_ERR_DEVICE = -19,        /* no usable GPU, or a CUDA / cuBLAS call failed                 */
    D1_ERR_UNSUPPORTED = -20,   /* not in this build, or not on this model's device              */
    D1_ERR_MISMATCH = -21,      /* a training state saved with other weights than the directory's */
    /* split from D1_ERR_ARG and D1_ERR_IO: mistakes a program tells apart */
    D1_ERR_SETTING = -22,       /* a field of a desc (sampler, GRPO, AdamW) out of range, or two that
                                   do not fit together (block_len not dividing gen_len, ...)     */
    D1_ERR_NOT_FOUND = -23      /* a file or directory that does not exist (nothing saved there yet) */
};
D1_API const char *d1_strerror(int status);
/* The last failure on the calling thread, in words, in the manner of stb's
   stbi_failure_reason: the function, the argument or field, the values
   involved and, for a file, its path and the system's reason, e.g.
   "d1__sampler_check: block_len 7 does not divide gen_len 32". Every call
   that returns an error sets it (the library never prints it); a call that
   succeeds may leave an earlier message in place, so read it only right
   after a call returned an error. "" before the first failure. Each thread
   has its own (thread-local storage where the compiler has it). */
D1_API const char *d1_last_error(void);
/* What this build computes with, chosen at compile time: one line such as
   "simd avx512, gemm d1, threads pthreads (max 64), bf16 avx512bf16, cuda no"
   (simd: avx512 | avx2 | neon | scalar; gemm: d1 | blis; bf16, the kernel of
   D1_PRECISION_BF16: avx512bf16 | neon-bf16 | scalar, or on x86-64 builds
   without -mavx512bf16 "avx512bf16 (cpuid)" | "scalar (cpuid: no
   avx512bf16)", on arm64 Linux builds without +bf16 "neon-bf16 (hwcap)" |
   "scalar (hwcap: no bf16)", and on x86-64 Linux "amx-bf16 (cpuid)" where
   the CPU and the OS have AMX, as this CPU answers). Results that hold
   "bit for bit" hold within one such build on one CPU type: the SIMD path sets
   the order of every sum, so builds with different lines round differently. */
D1_API const char *d1_build_info(void);
/* 1 when this build on this CPU runs the BF16 GEMMs of D1_PRECISION_BF16 and
   _BF16_MIXED with a SIMD kernel (AMX-BF16, AVX512-BF16, NEON BF16: the bf16 entry of
   d1_build_info that is not "scalar"), 0 when only the scalar reference
   kernel is there (same bits, but slower than FP32: keep FP32 there). */
D1_API int d1_bf16_simd_available(void);

/* ---- random numbers: xoshiro256**, seeded by splitmix64 ------------------ */
typedef struct d1_rng { uint64_t s[4]; } d1_rng;
D1_API void     d1_rng_seed(d1_rng *rng, uint64_t seed);
D1_API uint64_t d1_rng_u64(d1_rng *rng);
D1_API float    d1_rng_uniform(d1_rng *rng);        /* [0, 1), 24 bits  */
D1_API double   d1_rng_uniform_double(d1_rng *rng); /* [0, 1), 53 bits  */
D1_API float    d1_rng_normal(d1_rng *rng);         /* N(0, 1)          */

/* ---- the model's configuration (LLaDA's config.json) --------------------- */
typedef struct d1_config {
    int   vocab_size;   /* V                                                   */
    int   dim;          /* C = d_model                                         */
    int   n_layers;     /* L                                                   */
    int   n_heads;      /* H                                                   */
    int   n_kv_heads;   /* KV; 0 means H (no grouping)                         */
    int   ffn_dim;      /* F = mlp_hidden_size                                 */
    int   max_seq_len;  /* largest T                                           */
    float rope_theta;   /* 0 means 500000 (LLaDA)                              */
    float norm_eps;     /* RMSNorm epsilon; 0 means 1e-5                       */
    int   mask_id;      /* the [MASK] token of the forward process             */
    int   eos_id;       /* end of sequence (also the answer padding), or D1_TOKEN_NONE */
    int   pad_id;       /* the sampler's left padding, or D1_TOKEN_NONE         */
    int   tied_embeddings; /* 1: logits use wte; 0: a separate head [V,C]      */
} d1_config;

/* The special ids are stated, never guessed: set eos_id and pad_id to your
   vocabulary's tokens (LLaDA: mask 126336, EOS = pad 126081), or to
   D1_TOKEN_NONE for "this vocabulary has none". With eos_id NONE completions
   are never cut (d1_grpo_step scores all gen_len tokens) and suppress_eos /
   stop_at_eos do nothing; with pad_id NONE the sampler refuses prompts
   shorter than P (left padding needs a token). config.json writes NONE as
   null and reads null as NONE. */
#define D1_TOKEN_NONE (-1)

/* Fills the defaults (the "0 means" above) into *out and checks it:
   D1_ERR_CONFIG when a size is <= 0, C % H, H % KV or D odd (RoPE) fail, the
   mask id lies outside [0, V), EOS or pad is neither NONE nor in [0, V), or
   either is the mask id; and when eos_id and pad_id are both 0 -- what a
   zeroed d1_config holds when nobody set them (token 0 is a digit or a
   letter in most small vocabularies, and d1_grpo_step cuts every completion
   at its first EOS): a vocabulary whose EOS is token 0 sets pad_id to
   another token or to D1_TOKEN_NONE. d1_last_error names the field. */
D1_API int    d1_config_resolve(const d1_config *cfg, d1_config *out);
D1_API size_t d1_config_num_params(const d1_config *cfg); /* 0 if invalid */

/* ---- parameters ------------------------------------------------------------
   All parameters live in ONE float buffer, carved into these tensors (llm.c
   style); the gradients and the AdamW moments use the same layout. Matrices
   are [out, in] row-major (y = x W^T). The q/k/v projections of a layer are
   stacked into one [C + 2*KV*D, C] matrix and gate/up into one [2F, C], so a
   layer does one matmul for each; the Hugging Face names (d1_model_tensor)
   address their row blocks. */
typedef struct d1_params {
    float *wte;        /* [V, C]               model.transformer.wte          */
    float *attn_norm;  /* [L, C]               blocks.N.attn_norm             */
    float *qkv;        /* [L, C + 2*KV*D, C]   blocks.N.{q,k,v}_proj          */
    float *attn_out;   /* [L, C, C]            blocks.N.attn_out              */
    float *ff_norm;    /* [L, C]               blocks.N.ff_norm               */
    float *gate_up;    /* [L, 2F, C]           blocks.N.{ff_proj,up_proj}     */
    float *ff_out;     /* [L, C, F]            blocks.N.ff_out (down)         */
    float *ln_f;       /* [C]                  model.transformer.ln_f         */
    float *head;       /* [V, C]  model.transformer.ff_out; == wte when tied  */
} d1_params;

/* One named tensor in Hugging Face naming, a view into the buffers. */
typedef struct d1_tensor {
    char   name[80];   /* e.g. "model.transformer.blocks.0.q_proj.weight"     */
    int    ndim;       /* 1 or 2                                              */
    int    shape[2];
    size_t offset;     /* in floats from the start of the parameter buffer    */
    size_t size;       /* elements                                            */
    int    decay;      /* 1 for matrices (AdamW decays them), 0 for norms     */
} d1_tensor;

struct d1__state;      /* activations, RoPE tables, threads (private)        */

/* LoRA adapters (Hu et al. 2021) on every layer's q/k/v/o and gate/up/down,
   or a subset of those modules (d1's own: q, k, v and up):
   W_eff = W + (alpha / r) B A with A [r, in], B [out, r]. One buffer holds
   them all (d1_lora_tensor names and locates each). The bits of `targets`,
   by LLaDA's module names: */
enum {
    D1_LORA_Q = 1, D1_LORA_K = 2, D1_LORA_V = 4, /* q_proj, k_proj, v_proj              */
    D1_LORA_O = 8,                                /* attn_out                            */
    D1_LORA_GATE = 16, D1_LORA_UP = 32,           /* ff_proj (SiLU's input), up_proj     */
    D1_LORA_DOWN = 64,                            /* ff_out of a block (down projection) */
    D1_LORA_ALL = 127
};
typedef struct d1_lora {
    int    rank;             /* r                                                  */
    unsigned targets;        /* the adapted modules: D1_LORA_* bits (ALL: seven)   */
    float  alpha, scale;     /* scale = alpha / r                                  */
    int    enabled;          /* 0: the forward ignores them (the frozen base)      */
    size_t num_params;
    float *param_memory;     /* [num_params]                                       */
    float *grad_memory;      /* [num_params], allocated at the first backward or
                                d1_model_zero_grad (NULL before: loading
                                adapters to sample with costs their values only) */
} d1_lora;

typedef struct d1_model {
    d1_config config;       /* resolved: no zero defaults left                 */
    size_t    num_params;
    float    *param_memory; /* [num_params]                                    */
    float    *grad_memory;  /* [num_params], allocated at the first backward   */
    d1_params params;       /* views into param_memory                         */
    d1_params grads;        /* views into grad_memory (NULLs until allocated)  */
    int       B, T;         /* shape of the last forward, 0 before any         */
    float    *logits;       /* [B, T, V] of the last forward                   */
    d1_lora  *lora;         /* adapters, NULL when none are attached           */
    struct d1__state *state;
} d1_model;

/* Allocates the model, draws the weights from `seed`: matrices N(0, 0.02^2),
   the residual outputs (attn_out, ff_out) scaled by 1/sqrt(2L), norms 1.
   *m is treated as uninitialised: free a model already set up with
   d1_model_free before you init it again (the library cannot tell: that
   would read memory a correct program has never written, which valgrind and
   MSan rightly report). */
D1_API int  d1_model_init(d1_model *m, const d1_config *cfg, uint64_t seed);
D1_API void d1_model_free(d1_model *m);
/* Threads used by the model's kernels (default 1). Results do not depend on
   the count: every reduction has a fixed order (with D1_USE_BLIS too: each
   BLIS call covers a tile whose shape does not depend on the count). */
D1_API int  d1_model_set_threads(d1_model *m, int n_threads);
D1_API int  d1_model_num_tensors(const d1_model *m);
D1_API int  d1_model_tensor(const d1_model *m, int index, d1_tensor *out);
/* Copies the weights of src into dst (same config): a frozen reference. */
D1_API int  d1_model_copy_weights(d1_model *dst, const d1_model *src);

/* tokens [B,T] -> m->logits [B,T,V]. key_mask [B,T] (may be NULL): nonzero =
   this key may be attended; every sequence needs at least one such key.
   Keeps what the backward pass needs. */
D1_API int d1_model_forward(d1_model *m, const int *tokens, int B, int T,
                            const uint8_t *key_mask);
/* dlogits [B,T,V] (the gradient of a scalar loss w.r.t. m->logits of the
   last forward) -> parameter gradients, accumulated (+=). dlogits may alias
   m->logits. */
D1_API int d1_model_backward(d1_model *m, const float *dlogits);
D1_API int d1_model_zero_grad(d1_model *m);

/* ---- devices ------------------------------------------------------------------
   A model computes on the CPU until it is moved. In a build with -DD1_CUDA,
   d1_model_set_device(m, D1_DEVICE_CUDA) moves it to the GPU: from then on
   its parameters, gradients, AdamW moments and activations live there, and
   forward, backward, the losses, d1_adamw_step, the sampler and
   d1_grpo_step run there; only inputs, per-token results and scalars cross
   to the host. Without D1_CUDA it returns D1_ERR_UNSUPPORTED, so one program
   serves both builds (fall back to the CPU on that code, or on
   D1_ERR_DEVICE when no GPU is present). Moving back to D1_DEVICE_CPU
   copies everything home and frees the device.
   On the device, param_memory and grad_memory are a host mirror: the library
   refreshes it where it reads it (saving, d1_model_copy_weights,
   d1_train_state_save) and d1_model_pull does so on request; after editing
   param_memory yourself, d1_model_push sends it. d1_model_forward copies its
   logits to m->logits; the losses leave m->logits NULL. Not on the device:
   LoRA and the sampler's KV cache (D1_ERR_UNSUPPORTED). Results agree with
   the CPU to float rounding, not to the bit (other summation orders). */
enum { D1_DEVICE_CPU = 0, D1_DEVICE_CUDA = 1 };
D1_API int d1_model_set_device(d1_model *m, int device);
D1_API int d1_model_device(const d1_model *m);   /* D1_DEVICE_*, or D1_ERR_ARG */
D1_API int d1_model_pull(d1_model *m);  /* device parameters (and gradients) -> the host mirror */
D1_API int d1_model_push(d1_model *m);  /* the host mirror's parameters -> the device */

/* ---- precision ----------------------------------------------------------------
   D1_PRECISION_F32 (the default of every initialised or loaded model): every
   matmul in FP32, bit for bit as before this setting existed.
   D1_PRECISION_BF16: the forward passes that no backward pass follows run
   their linear layers (q/k/v, attn_out, gate/up, down and the head) as BF16
   GEMMs: the weights rounded to bfloat16 (to nearest, ties to even) and kept
   packed beside the FP32 ones, the activations rounded as they are packed,
   the sums in FP32. Those passes are exactly:
     - every step of d1_sampler_generate (with CFG and the KV caches too), so
       the rollouts of d1_grpo_step;
     - d1_grpo_logprobs, so d1_grpo_step's old-policy and reference log-probs
       (the reference model's own precision decides for it).
   In those passes attention's two products, S = Q K^T and y = P V, are
   BF16 GEMMs too (d1__gemm_bf16_gs: Q, K, P and V rounded as they are
   packed; as PyTorch's CPU autocast does them), the scale, mask and
   softmax between them FP32. Everything else stays FP32: the embedding,
   norms, RoPE, LoRA adapters (added in FP32 to the BF16 base), and every
   pass that back-propagates: d1_model_forward, the losses
   (d1_pretrain_loss, d1_sft_loss, d1_grpo_loss). In d1_grpo_step the ratio
   rho = exp(logp - logp_old) and the KL then compare an FP32 log-prob with
   a BF16 one, so they carry BF16's rounding (rho != 1 at identical
   weights: on the demo's Sudoku model, on 48 sampled completions,
   |logp_bf16 - logp_f32| is 7e-3 on average, 1.4 at worst,
   tests/test_bf16.c); keep F32 where that matters. d1_model_backward after
   a BF16 pass answers D1_ERR_STATE.
   The kernel: AVX512-BF16 (vdpbf16ps) where the build targets it, or, on
   other x86-64 builds by gcc or clang, where CPUID finds it at run time;
   on arm64 NEON's BFMLALB/BFMLALT (FEAT_BF16), compiled in or, on Linux
   gcc builds, found at run time (HWCAP2_BF16); elsewhere (and with
   D1_NO_SIMD) a scalar kernel that computes the same bits, slowly: it is
   the reference, not a fast path. On x86-64 Linux, where CPUID reports
   AMX-BF16 and the OS grants the tile state, the tile kernel (TDPBF16PS)
   runs instead: its sums round in the instruction's own order, close to
   but not the definition's bits (d1_model_set_bf16_kernel).
   d1_build_info names the kernel.
   The BF16 copy costs 2 bytes per matrix weight, allocated here (setting
   F32 frees it). It is refreshed at the next BF16 pass after a library call
   that changes the weights (d1_adamw_step, d1_model_copy_weights into the
   model, d1_lora_merge, d1_model_push, d1_model_set_device); after writing
   param_memory yourself, call d1_model_push (on the CPU it only marks the
   copy stale). D1_ERR_UNSUPPORTED for BF16 on a GPU; a BF16 model moved to
   the GPU computes there in FP32 (the setting returns with it).
   d1_model_load_bf16 makes a model that has the BF16 copy only (no FP32
   matrices: half the memory; see there), always in D1_PRECISION_BF16.
   D1_PRECISION_BF16_MIXED (mixed-precision training): everything BF16 does,
   and the passes that back-propagate too: their forward's linear layers as
   above, and in the backward pass both products of each linear layer,
   dinp = dout . W and dW += dout^T . inp, with BF16 operands (rounded as
   they are packed) and FP32 sums. Attention stays FP32 in the passes that
   back-propagate (BF16 scores there double the error of the q and k
   gradients: tools/bf16_grad_check.c, 22% -> 40% in L2). The master
   weights, their gradients, the AdamW moments, the norms, the softmax and
   the losses stay FP32;
   nothing is kept in BF16 but the packed weight copy. Each product then
   carries BF16's rounding of its operands (2^-9 relative each): a small
   random model's gradients stay within 3e-2 of FP32's (tests/test_bf16.c,
   2.5e-3 measured), but a trained model whose gradient is sensitive moves
   further (tools/bf16_grad_check.c on the shipped Sudoku base and random
   tokens: 22% in L2, 2026-12-07; an earlier base gave 59%, 19% of it from
   rounding the weights alone, where the shipped one's weights are BF16
   numbers already); the loss the step sees is that of the BF16 forward.
   d1_model_backward is allowed after any forward of this mode; on a GPU
   the model computes in FP32. */
enum { D1_PRECISION_F32 = 0, D1_PRECISION_BF16 = 1, D1_PRECISION_BF16_MIXED = 2 };
D1_API int d1_model_set_precision(d1_model *m, int precision);
D1_API int d1_model_precision(const d1_model *m);  /* D1_PRECISION_*, or D1_ERR_ARG */
/* Which kernel the BF16 GEMMs of this model run: D1_BF16_KERNEL_FAST (the
   default: the fastest the build and the CPU have: AMX-BF16, else
   AVX512-BF16 or NEON, else the scalar one), D1_BF16_KERNEL_VECTOR
   (AVX512-BF16 or NEON even where AMX is, else the scalar one) or
   D1_BF16_KERNEL_REFERENCE (the scalar kernel, the definition, everywhere:
   slow). The vector kernels compute the definition's bits, so between them
   and the reference this changes speed only: the way to check a fast kernel
   against the reference on a whole model (tests/test_bf16.c). AMX sums in
   its own order (see d1__bf16_tiles_amx): its results differ from the
   definition's by rounding, within a K-term sum's error bound. Any
   precision, a d1_model_load_bf16 model too; D1_ERR_ARG for another value. */
enum { D1_BF16_KERNEL_FAST = 0, D1_BF16_KERNEL_REFERENCE = 1, D1_BF16_KERNEL_VECTOR = 2 };
D1_API int d1_model_set_bf16_kernel(d1_model *m, int kernel);

/* ---- LoRA ------------------------------------------------------------------
   d1_lora_attach allocates adapters (A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0,
   so the model is unchanged) and freezes the base: from then on the backward
   pass computes adapter gradients only, d1_model_zero_grad clears those, and
   an optimizer initialised after the attach (d1_adamw_init) trains them.
   d1_lora_merge folds W += (alpha/r) B A into the base and detaches. Names
   follow PEFT: "base_model.model.<hf name without .weight>.lora_A.weight".
   d1_lora_attach adapts all seven modules of every block; _targets only
   those in `targets` (D1_LORA_* bits, e.g. d1's Q | K | V | UP): the others
   keep no adapter, no parameter and no cost. */
D1_API int  d1_lora_attach(d1_model *m, int rank, float alpha, uint64_t seed);
D1_API int  d1_lora_attach_targets(d1_model *m, int rank, float alpha, uint64_t seed, unsigned targets);
D1_API void d1_lora_detach(d1_model *m);
D1_API int  d1_lora_merge(d1_model *m);
D1_API int  d1_lora_num_tensors(const d1_model *m);
D1_API int  d1_lora_tensor(const d1_model *m, int index, d1_tensor *out); /* offsets into lora->param_memory */

/* ---- the forward process and the pretraining loss ------------------------
   Forward process (LLaDA): for each sequence t ~ U(0,1),
   p = (1 - eps) t + eps, then each token is replaced by [MASK] with
   probability p. d1_noise_draw draws p[B] and mask[B,T] (1 = masked) from
   rng; positions with keep[b*T+i] != 0 (the prompt in SFT) are never masked
   (keep may be NULL). */
D1_API int d1_noise_draw(d1_rng *rng, int B, int T, float eps, const uint8_t *keep,
                         float *p, uint8_t *mask);

/* Masked-diffusion pretraining loss (LLaDA's estimator, as d1 states it):
       loss = 1/(B*T) * sum_b sum_{i masked} -log p_theta(x0_i | x_t) / p_b
   (divided by ALL B*T tokens). mask [B,T] and p [B] given explicitly, or both
   NULL to draw them from rng with eps = 1e-3. Runs forward and backward:
   gradients accumulate into m->grads. */
D1_API int d1_pretrain_loss(d1_model *m, const int *tokens, int B, int T,
                            const uint8_t *mask, const float *p, d1_rng *rng,
                            float *loss);

/* ---- AdamW ------------------------------------------------------------------
   Per step t, with g the gradient after global-norm clipping
   (g *= clip / (||g|| + 1e-6) when ||g|| > clip > 0):
       w -= lr * wd * w             (matrices only, as HF excludes norms)
       m  = b1 m + (1-b1) g;   v = b2 v + (1-b2) g^2
       w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)          */
typedef struct d1_adamw_desc {
    float lr, beta1, beta2, eps, weight_decay;
    float grad_clip;            /* max global grad norm; 0 = no clipping */
} d1_adamw_desc;

typedef struct d1_adamw {
    d1_adamw_desc desc;         /* may be changed between steps (lr schedule) */
    int64_t step;               /* steps taken                                */
    size_t  n;                  /* == model num_params                        */
    float  *m, *v;              /* [n] moments, parameter layout              */
    void   *dev;                /* the moments on a GPU (D1_CUDA), else NULL  */
} d1_adamw;

/* lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01, clip 1.0 */
D1_API d1_adamw_desc d1_adamw_default_desc(void);
D1_API int  d1_adamw_init(d1_adamw *opt, const d1_model *m, const d1_adamw_desc *desc);
D1_API void d1_adamw_free(d1_adamw *opt);
/* One update from m->grads. grad_norm (may be NULL) receives ||g|| before
   clipping. A non-finite gradient gives D1_ERR_NONFINITE and no update. */
D1_API int  d1_adamw_step(d1_adamw *opt, d1_model *m, float *grad_norm);
/* The learning rate at step (0-based) of a run of `total` steps: a linear
   warmup over the first `warmup` steps, peak (step+1)/warmup, then a cosine
   from peak at step `warmup` down to final_frac x peak at step total:
       lr = peak (final_frac + (1 - final_frac) (1 + cos(pi f)) / 2),
       f  = (step - warmup) / (total - warmup).
   The demo's schedule is warmup = total / 20, final_frac 0.1. Set it into
   opt->desc.lr before each d1_adamw_step. step is clamped to [0, total],
   warmup to [0, total]; total <= 0 gives peak. */
D1_API float d1_lr_warmup_cosine(float peak, int64_t step, int64_t total, int64_t warmup, double final_frac);

/* ---- the sampler (LLaDA generate.py, with Fast-dLLM's options) --------------
   The canvas is prompt ⊕ gen_len [MASK]s. gen_len is cut into blocks of
   block_len, decoded left to right (semi-autoregressive); the steps are shared
   evenly by the blocks. At each step one forward pass predicts every position;
   for each masked position of the current block a candidate x0 is drawn
   (argmax, or Gumbel-max at temperature > 0) and scored by a confidence; the
   k most confident are revealed, k following LLaDA's schedule (the block's
   masks // steps per block, the first (masks % steps) steps one more).
   Differences from generate.py, on purpose: the mask token is never a
   candidate (its logit is -inf before the argmax and the softmax), so no
   output holds a mask; options beyond it are off when zero. */
enum {
    D1_REMASK_LOW_CONFIDENCE = 0, /* confidence = softmax(logits)[x0]            (LLaDA) */
    D1_REMASK_RANDOM = 1,         /* confidence ~ U(0,1)                           (LLaDA) */
    D1_REMASK_MARGIN = 2,         /* p(top1) - p(top2)                                      */
    D1_REMASK_ENTROPY = 3         /* sum_v p log p (negative entropy)                       */
};

enum { D1_KV_NONE = 0, D1_KV_PREFIX = 1, D1_KV_DUAL = 2 };

typedef struct d1_sample_event {   /* what a per-step callback sees */
    int step, block;               /* global step number (from 0), current block          */
    int B, T, prompt_len;          /* canvas shape; the prompt is canvas[:, :prompt_len]   */
    const int *canvas;             /* [B, T] after this step's reveals                     */
    const uint8_t *revealed;       /* [B, T] 1 where a token was revealed at this step     */
    int n_masked;                  /* masks left in the whole batch                         */
} d1_sample_event;
typedef void (*d1_sample_callback)(const d1_sample_event *ev, void *user);

typedef struct d1_sampler_desc {
    int   gen_len;       /* tokens to generate (required)                               */
    int   block_len;     /* 0 means gen_len (one block); must divide gen_len             */
    int   steps;         /* 0 means gen_len; must be a multiple of the block count       */
    float temperature;   /* 0 = argmax; > 0 = Gumbel-max in double precision             */
    int   remasking;     /* D1_REMASK_*                                                  */
    float cfg_scale;     /* classifier-free guidance s: un + (s+1)(cond - un); 0 = off   */
    float threshold;     /* Fast-dLLM: > 0 reveals the most confident masked token of
                            the block and every other one with confidence >= threshold;
                            the step count then adapts and `steps` is ignored            */
    int   kv_cache;      /* Fast-dLLM's approximate KV cache, refreshed at each block's
                            first step (a full pass): D1_KV_PREFIX recomputes the block
                            and everything after it, D1_KV_DUAL only the block           */
    int   suppress_eos;  /* never propose eos_id                                         */
    int   stop_at_eos;   /* once a finished block of a row is all EOS, fill the rest of
                            that row with EOS; stop when every row is done               */
    d1_sample_callback callback; /* called after every step (may be NULL)                */
    void *user;
} d1_sampler_desc;

/* LLaDA generate.py's defaults for a length: one block of gen_len tokens,
   gen_len steps (one token revealed per step), temperature 0 (argmax),
   low-confidence remasking, no CFG, no threshold, no KV cache, EOS allowed,
   no callback. Set block_len (e.g. 32, d1's) and steps from there. */
D1_API d1_sampler_desc d1_sampler_default_desc(int gen_len);

typedef struct d1_sample_stats {
    int forward_passes;  /* model evaluations (a CFG step counts one, over 2B rows)     */
    int steps;           /* denoising steps taken                                        */
    int revealed;        /* tokens revealed                                              */
    long forward_rows;   /* canvases the passes computed: rows whose canvases are equal
                            share one (G rollouts of a prompt agree until they differ)   */
} d1_sample_stats;

/* prompts [B, P] -> out [B, P + gen_len] (prompt copied, completion generated).
   prompt_lens [B] (may be NULL = all P): row b's prompt is its LAST
   prompt_lens[b] tokens; the positions before are left padding that no query
   attends to. Prompts may not contain mask_id. stats may be NULL. `out` may
   alias `prompts` (the canvas is built in scratch). On any error `out`,
   *rng and *stats are as they were; D1_ERR_NONFINITE when a step's logits
   hold a NaN or +inf (a model whose weights went non-finite), D1_ERR_CONFIG
   when the vocabulary has no token to reveal (only mask and suppressed EOS).
   The model's activations (the logits) are scratch and may change. Rows
   whose canvases are equal at a step (a prompt repeated G times, until its
   samples part) share one row of that step's pass: the same tokens, bit for
   bit, in less time (stats->forward_rows counts the rows computed). */
D1_API int d1_sampler_generate(d1_model *m, const d1_sampler_desc *desc, const int *prompts, int B,
                               int P, const int *prompt_lens, d1_rng *rng, int *out,
                               d1_sample_stats *stats);
/* LLaDA's schedule: how many tokens step s of a block with n masks reveals. */
D1_API int d1_sampler_transfer_count(int n_masked, int steps, int step);

/* ---- masked SFT (d1 stage 1; LLaDA's SFT) ---------------------------------
   tokens [B,T] = prompt ⊕ response, the response padded with EOS to T (the
   padding is part of the answer, so the model learns to stop); row b's prompt
   is its first prompt_lens[b] tokens and is never masked. With the forward
   process on the response only (p_b per sequence, mask drawn from rng with
   eps = 1e-3, or both given):
       loss = 1/B sum_b [ sum_{i masked} CE(logits[b,i], x0[b,i]) / p_b ] / (T - prompt_lens[b])
   the per-sequence mean of LLaDA's SFT guideline. (d1's trainer divides the
   batch sum by the total answer tokens instead; the two agree at B = 1.)
   Gradients accumulate into m->grads. */
D1_API int d1_sft_loss(d1_model *m, const int *tokens, int B, int T, const int *prompt_lens,
                       const uint8_t *mask, const float *p, d1_rng *rng, float *loss);

/* ---- diffu-GRPO (d1 stage 2; d1's trainer is the authority) ---------------
   For each prompt q: G completions o_i from the sampler; rewards r_i from the
   reward functions (weighted sum); advantages A_i = r_i - mean(r) (optionally
   / (std(r) + 1e-4)). Per-token log-probs by the one-step estimator: ONE
   forward pass over [q with each token masked at p_mask_prompt] ⊕ [o fully
   masked], logp_k = log softmax(logits_k)[o_k]. A fresh prompt mask for each
   of the mu inner updates, shared by the old, reference and current policy.
   Per token, with rho = exp(logp - logp_old):
       L_k = -min(rho A, clip(rho, 1-eps, 1+eps) A) + beta KL_k,
       KL_k = exp(ref - logp) - (ref - logp) - 1                          (k3)
   loss = sum over completion tokens up to and including the first EOS / their count.
   That is d1 (the defaults). The estimators that came after it are options
   of d1_grpo_desc (DESIGN 7b): ESPO's sequence-level ELBO with one clipped
   ratio per sequence (D1_LOGP_ELBO), d2's trajectory segments scored from the
   sampler's own intermediate canvases (D1_LOGP_TRAJECTORY), SPG's block-wise
   masks with its ELBO / EUBO objective (D1_LOGP_BLOCK with D1_GRPO_SPG), and
   the KL estimator (kl: k1, k2, k3). */
#define D1_MAX_REWARDS 8
/* What a reward function scores: one rollout of d1_grpo_step, told which
   prompt it answers (so an answer that cannot be recomputed from the prompt's
   tokens is a lookup: answers[ro->prompt_index]) and which member of its group
   it is. */
typedef struct d1_rollout {
    const int *prompt;          /* [prompt_len] the prompt, without its left padding   */
    int        prompt_len;
    const int *completion;      /* [completion_len] up to (not including) its first EOS */
    int        completion_len;
    int        prompt_index;    /* 0 .. n_prompts-1: the row of d1_grpo_step's prompts  */
    int        member;          /* 0 .. group_size-1 within that prompt's group         */
} d1_rollout;
/* A reward function returns a finite float for the rollout. */
typedef float (*d1_reward_fn)(const d1_rollout *ro, void *user);
typedef struct d1_reward {
    const char  *name;   /* for logs                */
    d1_reward_fn fn;
    float        weight; /* r = sum_j weight_j r_j  */
    void        *user;
} d1_reward;

enum {                      /* the objective */
    D1_GRPO_CLIPPED = 0,    /* d1: the clipped surrogate above                                   */
    D1_GRPO_WD1 = 1,        /* wd1 (Tang et al. 2025): ratio-free weighted likelihood, per group
                               omega_i = softmax(A)_i - softmax(-A)_i, L_k = -omega logp_k + beta KL_k */
    D1_GRPO_SPG = 2         /* SPG (Wang et al. 2025): per sequence L_i = -A_i |o_i| S_i / sum |o|,
                               S_i a lower bound of log p(o_i) (ELBO: the mean log-prob of masked
                               tokens) when A_i > 0, for A_i <= 0 eubo_mix x an upper bound (EUBO,
                               from p^eubo_beta) + (1 - eubo_mix) x the ELBO; no ratio, no KL
                               (beta 0). With the D1_LOGP_BLOCK estimator only.            */
};
enum {                      /* the log-prob estimator */
    D1_LOGP_ONE_STEP = 0,   /* d1: prompt masked at p_mask_prompt, completion fully masked       */
    D1_LOGP_COUPLED = 1,    /* DiffuCoder's coupled-GRPO: completion tokens masked at t ~ U(0.2,
                               0.8) in one pass and the complement in a second; each token is
                               scored in the pass that masks it (prompt kept)                    */
    D1_LOGP_PARTIAL = 2,    /* UniGRPO (MMaDA): completion masked at p ~ U(0,1), only the masked
                               tokens scored (prompt kept)                                       */
    D1_LOGP_ELBO = 3,       /* ESPO: a sequence-level ELBO (stratified mask counts over the batch,
                               each mask and its complement, mc_draws draws; prompt kept, every
                               completion position scored, EOS padding too); the objective then
                               works per SEQUENCE: rho_i = exp((ELBO_i - ELBO_old,i) / Lc),
                               clipped, and the KL estimator on d = ELBO_i - ELBO_ref,i      */
    D1_LOGP_TRAJECTORY = 4, /* d2 StepMerge: the sampler's steps merged into `segments` runs; a
                               token revealed in segment k is scored from the canvas at the start
                               of segment k (the tokens revealed before it visible, prompt masked
                               at p_mask_prompt); one segment per row and update, the loss sum
                               scaled by segments / (completion tokens). Needs a fixed schedule
                               (no threshold, no stop_at_eos).                                 */
    D1_LOGP_BLOCK = 5       /* SPG's block-wise masks (forward_type block_random): per draw one
                               block of the completion partly masked (1..all of its tokens), the
                               blocks after it masked, every other token (prompt and earlier
                               blocks) masked at p_mask_prompt; mc_draws draws (SPG: num_t) of
                               distinct blocks; for D1_GRPO_SPG                               */
};
enum {                      /* the per-token KL estimator KL_k, with d = logp - ref (Schulman's k1-k3) */
    D1_KL_K3 = 0,           /* d1: exp(-d) + d - 1           dKL/dlogp = 1 - exp(-d)               */
    D1_KL_K1 = 1,           /* d                              dKL/dlogp = 1                         */
    D1_KL_K2 = 2            /* d^2 / 2 (ESPO's choice, on its sequence ELBO) dKL/dlogp = d           */
};

typedef struct d1_grpo_desc {
    int   group_size;       /* G >= 2 (d1: 6)                                      */
    int   inner_steps;      /* mu >= 1 (d1: 8 Countdown/Sudoku, 12 GSM8K/MATH)     */
    float p_mask_prompt;    /* d1: 0.15                                            */
    float clip_eps;         /* eps (d1: 0.5)                                       */
    float beta;             /* KL weight (d1: 0.04); 0 skips the reference model   */
    int   scale_rewards;    /* 1: advantages / (group std + 1e-4)                  */
    int   objective;        /* D1_GRPO_*                                           */
    int   estimator;        /* D1_LOGP_*                                           */
    int   kl;               /* D1_KL_* (0: d1's k3)                                */
    int   mc_draws;         /* Monte Carlo draws of the ELBO (D1_LOGP_ELBO; ESPO's
                               num_mc, 2 in its Sudoku recipe); 0 means 1           */
    int   leave_one_out;    /* 1: A_i = r_i - mean of the OTHER G-1 rewards (ESPO's
                               baseline, = G/(G-1) (r_i - mean)); 0: r_i - mean (d1) */
    int   segments;         /* N of D1_LOGP_TRAJECTORY (d2: 8 Sudoku, 16 Countdown);
                               0 means 8; at most the sampler's steps              */
    float eubo_beta;        /* D1_GRPO_SPG: the EUBO's power beta (SPG: 1.0 Sudoku,
                               1.5 GSM8K/MATH, 2.0 Countdown); 0 means 1            */
    float eubo_mix;         /* D1_GRPO_SPG: weight of the EUBO for A <= 0, in [0,1]
                               (SPG "eubo": 1, "mix": 0.5; 0: the ELBO, "elbo")     */
    float dual_clip;        /* dual-clip PPO's c (Ye et al. 2020, arXiv 1912.09729;
                               verl's clip_ratio_c, 3 there by default), > 1, for
                               D1_GRPO_CLIPPED: for A < 0 the surrogate is floored
                               at c A, so a token (ESPO: a sequence) whose ratio
                               passed c gives no gradient. d1's min() alone leaves
                               rho unbounded when A < 0, and a token the one-step
                               estimator scores low can rise several nats in one
                               update. 0: off (d1, ESPO, d2)                       */
    int   group_masks;      /* 1: the G rows of a group draw the same masks (common
                               random numbers; d1.h's own option, no reference has
                               it): a token the rows share, seen in the same context,
                               gets the same log-prob in every row, so with advantages
                               that sum to zero over the group its gradient cancels and
                               the update learns from the tokens where rollouts differ.
                               ELBO: counts stratified over groups; trajectory: one
                               segment per group. 0: each row its own (the references) */
    d1_sampler_desc sampler;/* rollouts (d1: temperature 0.9, low_confidence,
                               block 32, steps gen_len / 2; see the default below) */
    const d1_reward *rewards;
    int   n_rewards;        /* 1 .. D1_MAX_REWARDS                                 */
    /* optional outputs (NULL: not wanted), written when d1_grpo_step returns
       D1_OK; R = n_prompts x group_size rows, row r = prompt r / G's member r % G */
    int   *out_rollouts;    /* [R, P + gen_len] each prompt (left-padded as given,
                               padding as pad_id) and its completion            */
    float *out_rewards;     /* [R, 1 + n_rewards] the weighted reward, then each
                               function's value                                 */
    float *out_advantages;  /* [R] the advantage of each rollout (wd1: omega)    */
} d1_grpo_desc;

/* d1's settings for a completion length (rewards left for the caller):
   G 6, mu 8, prompt masking 0.15, eps 0.5, beta 0.04, k3, the one-step
   estimator; rollouts at temperature 0.9, low-confidence remasking, block_len
   32 when 32 divides gen_len (d1's block) and gen_len (one block) otherwise,
   steps gen_len / 2 when that is a whole number per block, else gen_len.
   The learning rate is AdamW's, and RL wants far less than pretraining:
   d1 trains LLaDA-8B's LoRA adapters at 3e-6; the demo trains its 0.8M
   full-parameter models at 3e-4 with AdamW (0.9, 0.99), clip 0.2
   (examples/DEMO.md: at 1e-3, AdamW's default, ESPO's held-out Sudoku score
   fell from 0.659 to 0.581 in 40 iterations and d1's prototype lost its
   held-out reward). Start at 1e-4 to 3e-4 for a model of this size. */
D1_API d1_grpo_desc d1_grpo_default_desc(int gen_len);

typedef struct d1_grpo_stats {
    float  reward_mean, reward_std;            /* of the weighted reward            */
    float  reward_fn_mean[D1_MAX_REWARDS], reward_fn_std[D1_MAX_REWARDS];
    float  zero_std_frac;   /* share of groups whose rewards are all equal (no signal) */
    float  loss, kl, clip_frac, grad_norm;     /* means over the mu updates        */
    float  completion_len;  /* mean tokens up to and including the first EOS        */
    int    forward_passes;  /* sampler + log-prob passes + updates                  */
    long   rollout_rows;    /* canvases the sampler's passes computed (rows with
                               equal canvases share one: d1_sample_stats)          */
    double t_generate, t_logp, t_update;       /* wall seconds per phase            */
    int    updates;         /* AdamW updates applied: mu on success; on an error,
                               how many reached the weights before it               */
} d1_grpo_stats;

/* One diffu-GRPO iteration over n_prompts prompts [n_prompts, P] (optionally
   left-padded, prompt_lens as in d1_sampler_generate; the log-prob passes
   hide the padding from every query as the sampler does): generate, score,
   advantages, old/reference log-probs, then mu AdamW updates of `policy`.
   `ref` is the frozen reference policy (required when beta > 0; same config);
   a policy that trains LoRA adapters may pass itself: the reference is then
   its base, with the adapters switched off.
   On an error: *stats (when given) is written as far as measured, and
   stats->updates says how many of the mu updates were applied. With 0
   (every argument error, non-finite weights, a non-finite reward, a failed
   rollout or log-prob pass) the weights, gradients, moments and *rng are as
   they were; only the model's scratch (logits, B, T) changed. With k > 0
   (a later update's loss or gradient went non-finite: it is checked before
   each AdamW step, so it never reaches the weights) the weights and moments
   hold k updates, the gradients the failed one's, and *rng has advanced as
   on success. */
D1_API int d1_grpo_step(d1_model *policy, d1_model *ref, d1_adamw *opt, const d1_grpo_desc *desc,
                        const int *prompts, int n_prompts, int P, const int *prompt_lens, d1_rng *rng,
                        d1_grpo_stats *stats);

/* The building blocks of d1_grpo_step, for tests and custom trainers.
   A batch of rollouts: tokens [B,T] = prompt (P positions) ⊕ completion (Lc = T-P). */
typedef struct d1_grpo_batch {
    const int     *tokens;     /* [B, T]                                                  */
    int            B, T, P;
    const uint8_t *input_mask; /* [B, T] 1 = replaced by [MASK] in the model's input       */
    const uint8_t *key_mask;   /* [B, T] or NULL (left padding)                            */
    const uint8_t *score_mask; /* [B, Lc] completion tokens this pass puts into the loss    */
    float          denom;      /* the loss divides by this (the tokens scored, all passes)  */
    const float   *adv;        /* [B] advantages (or, for wd1, the weights omega)           */
    const float   *old_logp;   /* [B, Lc] or NULL (= the current logp: rho = 1); with elbo_w:
                                  [n_seq] the old policy's ELBOs (d1_grpo_elbo)                */
    const float   *ref_logp;   /* [B, Lc] or NULL (only with beta = 0)                      */
    int            kl;         /* D1_KL_* (0: d1's k3); a GPU model takes k3 only            */
    /* sequence level (D1_LOGP_ELBO): rows are masked copies of n_seq sequences,
       row r of sequence r % n_seq; adv and ref_logp are then [n_seq], and
       ELBO_s = sum over its rows' scored tokens of elbo_w * logp.               */
    const float   *elbo_w;     /* [B, Lc] each scored token's weight in its ELBO, or NULL   */
    int            n_seq;      /* sequences (B a multiple of it); used with elbo_w          */
    /* D1_GRPO_SPG (sequence level): each sequence's completion length |o| (the
       loss weight; denom = their sum) and the EUBO's settings */
    const float   *seq_len;    /* [n_seq]                                                  */
    float          eubo_beta, eubo_mix;
    /* D1_GRPO_CLIPPED: dual-clip's c (> 1), or 0 for none (d1). For A < 0 the
       surrogate is floored at c A: L = -max(min(rho A, clip(rho) A), c A), so a
       token (ESPO: a sequence) with rho > c gives no gradient. A GPU model
       takes 0 only. */
    float          dual_clip;
} d1_grpo_batch;
/* logp [B, Lc] = log softmax(logits)[o] at every completion position, from one
   forward pass over the masked input. */
D1_API int d1_grpo_logprobs(d1_model *m, const d1_grpo_batch *batch, float *logp);
/* The objective's loss over the scored tokens of one pass (sum / denom), its
   gradient accumulated into m->grads; kl_sum and clipped (may be NULL)
   receive the sums of KL_k and of the clipped indicator over scored tokens
   (a token counts when a clip, either side or dual-clip, removes its
   gradient). Sequence level (elbo_w set; objective D1_GRPO_CLIPPED only: ESPO): one
   pass over all the rows gives each sequence's ELBO_s, then
       L = 1/denom sum_s [ -min(rho_s A_s, clip(rho_s, 1-eps, 1+eps) A_s) + beta KL_s / Lc ],
       rho_s = exp((ELBO_s - old_s) / Lc),  KL_s on d = ELBO_s - ref_s
   (ESPO: denom = n_seq); kl_sum receives sum_s KL_s / Lc, clipped the
   number of clipped sequences. D1_GRPO_SPG (elbo_w and seq_len set, beta
   0): L = -1/denom sum_s A_s |o_s| S_s with S_s the ELBO sum_k elbo_w logp
   for A_s > 0, else mix EUBO_s + (1 - mix) ELBO_s, where
       EUBO_s = 1/(beta_e |K|) sum_{k in K} log sum_rows u_rk p_rk^beta_e,
       u_rk = elbo_w_rk |o_s|, K the positions some row scores. */
D1_API int d1_grpo_loss(d1_model *m, const d1_grpo_batch *batch, float clip_eps, float beta, int objective,
                        float *loss, double *kl_sum, double *clipped);
/* elbo [n_seq] from per-token log-probs logp [B, Lc] of a sequence-level
   batch: ELBO_s = sum over rows r = s, s + n_seq, ... and their scored
   tokens k of elbo_w[r,k] logp[r,k] (in double, in that order, as
   d1_grpo_loss sums it), stored as float. */
D1_API int d1_grpo_elbo(const d1_grpo_batch *batch, const float *logp, float *elbo);
/* wd1's weights: omega_i = softmax(A)_i - softmax(-A)_i within each group of G. */
D1_API void d1_wd1_weights(const float *adv, int n, int G, float *omega);


/* ---- checkpoints -------------------------------------------------------------
   A checkpoint is a directory in Hugging Face layout:
     config.json               LLaDA's keys (d_model, n_layers, n_heads, ...)
     model.safetensors         tensors by HF name (d1_model_tensor), F32/BF16/F16
   or, instead of model.safetensors (which wins when both exist),
     model.safetensors.index.json  {"weight_map": {name: shard file}} + the shards.
   Training state for an exact resume sits beside it:
     optimizer.safetensors     exp_avg.<name>, exp_avg_sq.<name> (F32) and, in
                               __metadata__ (strings), the step, the AdamW desc,
                               the RNG states and the caller's settings JSON.
   Safetensors: u64 little-endian header length N (0 < N <= 100,000,000), N bytes
   of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
   {str: str}}, then the data; offsets count from the data's start, and the
   tensors must cover the data exactly: contiguous, no overlap, no gap, no
   trailing bytes. The loader checks every size and offset and returns one of
   the codes below on a malformed input, never crashing; on ANY failure the
   model (or optimizer and RNGs) passed in is left byte for byte as it was.
   What a load allocates is bounded by the bytes it reads, whatever the files
   claim: at most twice the files (BF16 weights take twice their bytes as
   float), plus a fixed amount no file changes (the model's state, about
   2.5 KB, and the path strings). Nothing is allocated for a tensor before a
   header or index has named it; the RoPE tables (max_sequence_length x
   head_dim) are built by the first forward pass, for the positions it uses.

   Loading is strict: every tensor the config implies must be present with its
   exact shape, and a tensor it does not imply is an error, so a checkpoint
   never loads half-used. One exception: a tied model (weight_tying true) may
   also hold model.transformer.ff_out.weight, as PyTorch saves one after
   tie_weights(); it must equal wte value for value (after conversion), else
   D1_ERR_CONFIG naming both, and it is compared, never kept.
   config.json: the integer and boolean keys d_model, n_layers, n_heads,
   mlp_hidden_size, vocab_size, max_sequence_length, mask_token_id,
   eos_token_id, pad_token_id, weight_tying and the numbers rope_theta,
   rms_norm_eps are required; n_kv_heads and embedding_size may be absent or
   null (then n_heads, vocab_size); embedding_size must equal vocab_size (d1.h
   keeps no padded embedding rows); model_type, activation_type, block_type,
   layer_norm_type and include_bias, when present, must be "llada", "silu",
   "llama", "rms" and false; every switch of LLaDA's config class that asks
   for other arithmetic must be absent, null or LLaDA's value (rope true;
   alibi, scale_logits, input_emb_norm, attention_layer_norm,
   bias_for_layer_norm, include_qkv_bias, multi_query_attention false;
   layer_norm_with_affine true; clip_qkv and rope_scaling unset), else
   D1_ERR_CONFIG naming the key. Other keys (dropouts, init_*, precision,
   ...) are ignored. Duplicate keys are an error wherever d1.h reads the key
   (keys it ignores are not compared). d1_config_to_json writes every key of
   LLaDA-8B's config.json, auto_map to LLaDA's remote code included, so
   AutoModel.from_pretrained(dir, trust_remote_code=True) builds the same
   function (rope true, the dropouts 0). */

/* Tensor element types of a checkpoint (all converted to float on load). */
enum { D1_DTYPE_F32 = 0, D1_DTYPE_BF16 = 1, D1_DTYPE_F16 = 2 };

#define D1_CONFIG_JSON_MAX 4096                /* bytes that any config.json d1.h writes fits in */
#define D1_SAFETENSORS_MAX_HEADER 100000000u  /* largest accepted safetensors header            */

/* The config as LLaDA's config.json text, NUL-terminated, into buf[cap]
   (D1_CONFIG_JSON_MAX always suffices). Floats are written with the fewest
   digits (at most 9) that read back to the same float. D1_ERR_ARG if cap is
   too small, D1_ERR_CONFIG if cfg does not resolve. */
D1_API int d1_config_to_json(const d1_config *cfg, char *buf, size_t cap);
/* Parses config.json text (len bytes, no NUL needed) into a resolved config.
   D1_ERR_JSON for malformed JSON or a non-object; D1_ERR_CONFIG for a missing
   key, a wrong type or a value d1.h cannot run; D1_ERR_DUPLICATE. */
D1_API int d1_config_from_json(d1_config *out, const char *json, size_t len);

/* Bytes of the safetensors blob d1_model_save_memory writes (0 on bad args). */
D1_API size_t d1_model_save_size(const d1_model *m, int dtype);
/* The weights as a safetensors blob into buf[cap] (cap >= d1_model_save_size)
   and, when config_json is not NULL, the config.json text into
   config_json[config_cap]. D1_ERR_ARG: a bad argument or a buffer too small;
   D1_ERR_NONFINITE: a weight is NaN or infinite, or overflows the dtype. */
D1_API int d1_model_save_memory(const d1_model *m, int dtype, void *buf, size_t cap,
                                char *config_json, size_t config_cap);
/* Loads a model from config.json text and a safetensors blob held in memory.
   *m is treated as uninitialised (d1_model_init's output); on success it owns
   a new model (free it with d1_model_free), on failure it is untouched. */
D1_API int d1_model_load_memory(d1_model *m, const char *config_json, size_t config_len,
                                const void *safetensors, size_t len);

#ifndef D1_NO_STDIO
/* Saves config.json and model.safetensors into dir (created, with its
   parents, if missing). Each file is written as NAME.tmp, flushed to disk
   (fsync), then renamed over NAME, and the directory is synced, so a crash
   leaves the old file or the new one, never a torn one. The two renames are
   not one atomic step: the weights go first, and a kill between them leaves
   the new weights beside the old config.json and the new one as
   config.json.tmp, which d1_model_load then uses when the weights do not fit
   the old one (d1_checkpoint_save makes the whole directory one unit).
   One writer per directory. */
D1_API int d1_model_save(const d1_model *m, const char *dir, int dtype);
/* Loads the checkpoint directory `path` (see above) into *m, with the same
   contract as d1_model_load_memory. Tensors are read straight into the
   parameter buffer (BF16/F16 through a small fixed conversion buffer). */
D1_API int d1_model_load(d1_model *m, const char *path);
/* Loads `path` for inference with its matrices held in BF16 only: q/k/v,
   attn_out, gate/up, down and the head go from the files (any dtype; BF16
   files keep their bits) straight into the packed BF16 copy of
   D1_PRECISION_BF16, one tensor chunk at a time, and no FP32 copy of them
   exists; the embedding and the norms stay FP32 in param_memory (num_params
   counts those floats). About 2 bytes per parameter, 4 for the embedding:
   LLaDA-8B in ~17 GB instead of 32. The model computes in D1_PRECISION_BF16
   and serves the passes without a gradient: d1_sampler_generate,
   d1_grpo_logprobs (e.g. a frozen reference of d1_grpo_step) and
   d1_model_forward (its logits; the backward then answers D1_ERR_STATE).
   Everything that reads or changes the FP32 matrices answers
   D1_ERR_UNSUPPORTED: training, the losses, LoRA, saving, d1_model_tensor,
   d1_model_copy_weights, another precision, the GPU. */
D1_API int d1_model_load_bf16(d1_model *m, const char *path);
/* The dtype each tensor of m is stored with in the checkpoint at path:
   dtypes[d1_model_num_tensors(m)], in d1_model_tensor order. Reads headers
   only; D1_ERR_CONFIG when the checkpoint's config differs from m's. */
D1_API int d1_model_stored_dtypes(const d1_model *m, const char *path, int *dtypes);

/* Training state for an exact resume: writes dir/optimizer.safetensors
   (atomically, as d1_model_save) with opt's moments by tensor name, its step
   and desc, the n_rngs RNG states (u64 words as decimal strings, exact) and
   settings_json (any valid JSON text, may be NULL) for the caller's own
   settings. m names the tensors (opt must be d1_adamw_init'ed for it). An
   optimizer of LoRA adapters is not covered yet (D1_ERR_ARG): save the
   adapters with d1_lora_save. */
D1_API int d1_train_state_save(const char *dir, const d1_model *m, const d1_adamw *opt,
                               const d1_rng *rngs, int n_rngs, const char *settings_json);
/* Restores what d1_train_state_save wrote into opt (already initialised for
   m by d1_adamw_init) and rngs[n_rngs] (n_rngs must equal the saved count,
   else D1_ERR_ARG), and the settings text into settings_json[settings_cap]
   ("" if none was saved; may be NULL to skip; too small: D1_ERR_ARG). On
   failure nothing changes.
   The pair: when dir held a model (d1_model_save) at the time of
   d1_train_state_save, the state records a hash (FNV-1a 64) of its
   config.json and model.safetensors, and d1_train_state_load refuses, with
   D1_ERR_MISMATCH, a directory whose model is not the one it was saved with
   (a save of the model that a crash cut off before the optimizer's). */
D1_API int d1_train_state_load(const char *dir, const d1_model *m, d1_adamw *opt, d1_rng *rngs,
                               int n_rngs, char *settings_json, size_t settings_cap);
/* A model and its training state as one unit, for resumable training:
   writes config.json, model.safetensors and optimizer.safetensors into the
   fresh directory DIR.tmp, renames it DIR.new once complete, then swaps it
   in (DIR -> DIR.old, DIR.new -> DIR, DIR.old removed). A kill at any
   instant leaves the old pair or the new one: when DIR is missing,
   d1_model_load, d1_train_state_load and the next d1_checkpoint_save take
   DIR.new (complete by construction), else DIR.old. DIR must hold nothing but the checkpoint's files (D1_ERR_ARG
   otherwise, nothing written). POSIX only (elsewhere D1_ERR_UNSUPPORTED).
   One writer per directory. */
D1_API int d1_checkpoint_save(const char *dir, const d1_model *m, int dtype, const d1_adamw *opt,
                              const d1_rng *rngs, int n_rngs, const char *settings_json);
/* LoRA adapters on their own: dir/adapter_model.safetensors (F32, PEFT's
   names) and dir/adapter_config.json (PEFT's keys: r, lora_alpha,
   target_modules (the adapted modules), task_type, base_model_name_or_path,
   ...). d1_lora_load reads F32, BF16 or F16 adapters of any subset of the
   seven modules: target_modules must be a list of names (PEFT's regular-
   expression form is refused), names of no LLaDA module are skipped as PEFT
   skips them (d1's own config lists o_proj, gate_proj and down_proj too, so
   its adapters are q, k, v and up), and the file must hold exactly the named
   modules' tensors. It attaches adapters of the saved rank, alpha and targets when m
   has none, or fills the attached ones (rank, alpha and targets must match:
   D1_ERR_CONFIG); on failure m is unchanged. */
D1_API int d1_lora_save(const d1_model *m, const char *dir);
D1_API int d1_lora_load(d1_model *m, const char *dir);
#endif

/* ---- tokenizer: text <-> ids, from a Hugging Face tokenizer.json -----------
   The tokenizers pipeline (the Rust crate that transformers uses), the parts
   d1.h runs, in order:
     1. added tokens ("added_tokens"): their contents cut the text (leftmost,
        then longest match; lstrip / rstrip take the whitespace beside them);
     2. the pre-tokenizer cuts each stretch between them into pieces:
        "Split" (a String pattern, or the regular expression of GPT-2, of
        Llama 3, of Qwen 2, or "." (each character); behavior "Isolated" or
        "Removed"), "ByteLevel" (add_prefix_space; use_regex: GPT-2's
        expression; then each byte as its printable stand-in), or a
        "Sequence" of them with ByteLevel last;
     3. the model turns each piece into ids: "WordLevel" (the piece is a
        token) or "BPE" (its characters, then the merges, lowest rank first,
        leftmost on ties; ignore_merges, fuse_unk).
   Decoding maps ids back to token texts and joins them through the decoder:
   "ByteLevel" (stand-ins back to bytes, invalid UTF-8 as U+FFFD, as the
   Rust crate does), "Fuse" (concatenation) or none (joined with spaces, the
   Rust crate's default). encode adds no special tokens: it is
   add_special_tokens=False, and the post_processor is not run.
   A normalizer, another model or pre-tokenizer, another regular expression,
   byte_fallback, a subword prefix / suffix or dropout: D1_ERR_UNSUPPORTED
   naming it, never a silent difference. The character classes of the
   split expressions (\p{L}, \p{N}, \s) follow Unicode 14.0's
   General_Category. Known differences from the Rust crate, both rare: it
   matches non-normalized added tokens in a first pass and normalized ones
   in a second (d1.h: one pass, leftmost-longest over all), and its (?i:'s)
   also matches U+017F. Checked against @huggingface/tokenizers in CI
   (tests/tokenizer_check.sh). */
enum { D1_TOKENIZER_WORDLEVEL = 1, D1_TOKENIZER_BPE = 2 };

typedef struct d1_tokenizer {
    int n_vocab;     /* 1 + the largest id (ids no token has are refused)         */
    int model;       /* D1_TOKENIZER_WORDLEVEL or D1_TOKENIZER_BPE                */
    int unk_id;      /* what an unknown piece becomes, or D1_TOKEN_NONE (an error) */
    int n_merges;    /* BPE: the merges, rank 0 first (d1_tokenizer_merge)        */
    int byte_level;  /* 1: the model's token texts are GPT-2 byte stand-ins (ByteLevel) */
    struct d1__tok *impl;
} d1_tokenizer;

/* Parses tokenizer.json text (len bytes). *tok is treated as uninitialised;
   on success it owns the tokenizer (d1_tokenizer_free), on failure it is
   zeroed. D1_ERR_JSON: malformed, or a field of the wrong type;
   D1_ERR_UNSUPPORTED: a component d1.h does not run (named);
   D1_ERR_CONFIG: inconsistent (two tokens with one id, a merge whose parts
   or result are not tokens, an added token whose id differs from its vocab
   entry); D1_ERR_DUPLICATE: a token listed twice. */
D1_API int  d1_tokenizer_load_memory(d1_tokenizer *tok, const char *json, size_t len);
/* A character-level tokenizer: each code point of the UTF-8 string chars is a
   token (ids 0, 1, ... in order), then the n_special special tokens (ids
   after them). Written as tokenizer.json it is a WordLevel model with a
   Split "." pre-tokenizer and the Fuse decoder. */
D1_API int  d1_tokenizer_init_chars(d1_tokenizer *tok, const char *chars, const char *const *special,
                                    int n_special);
D1_API void d1_tokenizer_free(d1_tokenizer *tok);
/* text[len] (UTF-8) -> ids. *n_ids gets the count; ids[cap] receives them.
   ids == NULL (cap 0) measures. D1_ERR_ARG: text is not valid UTF-8, or cap
   is too small (*n_ids says how many are needed); D1_ERR_TOKEN: a piece
   with no token when there is no unk token. */
D1_API int  d1_tokenizer_encode(const d1_tokenizer *tok, const char *text, size_t len, int *ids, int cap,
                                int *n_ids);
/* ids[n] -> UTF-8 text into out[cap], NUL-terminated, leaving out the
   special added tokens when skip_special. *len gets the text's length
   (without the NUL). When cap is too small, what fits is written (cut to a
   whole character) and D1_ERR_ARG returned; out == NULL (cap 0) measures.
   D1_ERR_TOKEN: an id that no token has. */
D1_API int  d1_tokenizer_decode(const d1_tokenizer *tok, const int *ids, int n, int skip_special, char *out,
                                size_t cap, size_t *len);
/* The id of the token whose text is the NUL-terminated `text` (an added
   token's content, or a model token as the vocab writes it), or D1_ERR_TOKEN. */
D1_API int  d1_tokenizer_token_id(const d1_tokenizer *tok, const char *text);
/* The text of token id as tokenizer.json writes it (NUL-terminated; byte-
   level tokens in their stand-in form), or NULL for an id no token has. */
D1_API const char *d1_tokenizer_token(const d1_tokenizer *tok, int id);
/* BPE merge `rank` (0 <= rank < n_merges): the ids of its left and right
   parts, whose texts joined are the merged token. D1_ERR_ARG outside. */
D1_API int  d1_tokenizer_merge(const d1_tokenizer *tok, int rank, int *left, int *right);
/* What token id is: D1_TOKEN_MODEL (the model's vocab), D1_TOKEN_ADDED (an
   added token), D1_TOKEN_SPECIAL (a special added token, which decode's
   skip_special leaves out), or D1_ERR_TOKEN for an id no token has. */
enum { D1_TOKEN_MODEL = 0, D1_TOKEN_ADDED = 1, D1_TOKEN_SPECIAL = 2 };
D1_API int  d1_tokenizer_token_type(const d1_tokenizer *tok, int id);
#ifndef D1_NO_STDIO
/* Loads PATH/tokenizer.json when path is a directory, else the file path.
   D1_ERR_NOT_FOUND when there is none. */
D1_API int  d1_tokenizer_load(d1_tokenizer *tok, const char *path);
/* Writes dir/tokenizer.json (the text the tokenizer was loaded from),
   dir/tokenizer_config.json and dir/special_tokens_map.json (the names of
   cfg's EOS, pad and mask tokens when cfg is not NULL; PreTrainedTokenizerFast),
   each atomically as d1_model_save. D1_ERR_CONFIG: one of cfg's special ids
   has no token here. */
D1_API int  d1_tokenizer_save(const d1_tokenizer *tok, const d1_config *cfg, const char *dir);
#endif

#ifdef __cplusplus
}
#endif
#endif /* D1_H */

/* ========================================================================== */
/*                              IMPLEMENTATION                                 */
/* ========================================================================== */
#ifdef D1_IMPLEMENTATION
#ifndef D1__IMPLEMENTED
#define D1__IMPLEMENTED

// >>platform ------------------------------------------------------------------
#include <math.h>
#include <string.h>
#include <float.h>
#include <limits.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h> /* vsnprintf for d1_last_error's messages (D1_NO_STDIO too: no file is touched) */

#if defined(D1_MALLOC) != defined(D1_FREE)
#error "define both D1_MALLOC and D1_FREE, or neither"
#endif
#ifndef D1_MALLOC
#include <stdlib.h>
#define D1_MALLOC(sz) malloc(sz)
#define D1_FREE(p) free(p)
#endif
#ifndef D1_ASSERT
#include <assert.h>
#define D1_ASSERT(x) assert(x)
#endif
#ifndef D1_MAX_THREADS
#define D1_MAX_THREADS 64
#endif
#ifndef D1_NO_THREADS
#include <pthread.h>
#endif
#ifdef D1_USE_BLIS
#include <blis.h>
#endif

#if !defined(D1_NO_SIMD) && defined(__AVX512F__)
#define D1__AVX512 1
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
/* g++ 12 warns about _mm512_undefined_ps() inside its own intrinsics (GCC bug
   105593); the warning's location is in the header, so silence it there. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
#elif !defined(D1_NO_SIMD) && defined(__AVX2__) && defined(__FMA__)
#define D1__AVX2 1
#include <immintrin.h>
#elif !defined(D1_NO_SIMD) && defined(__ARM_NEON) && defined(__aarch64__)
#define D1__NEON 1
#include <arm_neon.h>
#endif

/* The BF16 GEMM's AVX512-BF16 kernel (vdpbf16ps, >>tensor): D1__BF16_AVX 1
   when the target has it (-march=native on Zen 4, Sapphire Rapids, Cooper
   Lake); D1__BF16_AVX 2 on any other x86-64 build by gcc >= 10 or clang >= 9,
   compiled for it with a target attribute and used only where CPUID says the
   CPU and the OS have it (d1__cpu_bf16); elsewhere the scalar BF16 kernel. */
#if !defined(D1_NO_SIMD) && defined(__AVX512BF16__) && defined(__AVX512F__)
#define D1__BF16_AVX 1
#define D1__BF16_TARGET
#elif !defined(D1_NO_SIMD) && defined(__x86_64__) && \
    ((defined(__clang__) && __clang_major__ >= 9) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10))
#define D1__BF16_AVX 2
#define D1__BF16_TARGET __attribute__((target("avx512f,avx512bf16")))
#include <cpuid.h>
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
#endif

/* The NEON BF16 kernel (BFMLALB / BFMLALT, Armv8.6's FEAT_BF16: Neoverse V1
   and N2, Cortex-A510 and later, Apple M2): D1__BF16_NEON 1 when the target
   has it (-march=armv8.6-a, -mcpu=native on such a core); D1__BF16_NEON 2 on
   any other arm64 Linux build by gcc >= 10, compiled for it with a target
   attribute and used only where the kernel reports it (HWCAP2_BF16). */
#if !defined(D1_NO_SIMD) && defined(D1__NEON) && defined(__ARM_FEATURE_BF16_VECTOR_ARITHMETIC)
#define D1__BF16_NEON 1
#define D1__BF16_NEON_TARGET
#elif !defined(D1_NO_SIMD) && defined(D1__NEON) && defined(__linux__) && !defined(__clang__) && \
    defined(__GNUC__) && __GNUC__ >= 10
#define D1__BF16_NEON 2
#define D1__BF16_NEON_TARGET __attribute__((target("arch=armv8.2-a+bf16")))
#include <sys/auxv.h>
#endif
/* one name for "this build has a fast BF16 kernel" */
#if defined(D1__BF16_AVX) || defined(D1__BF16_NEON)
#define D1__BF16_SIMD 1
#endif

/* The AMX-BF16 kernel (TDPBF16PS on 16 x 16 tiles: Sapphire Rapids and later
   Xeons): D1__AMX on x86-64 Linux builds that have the AVX512-BF16 kernel
   (its packers feed the tiles), by gcc >= 11 or clang >= 12, compiled with a
   target attribute and used only where CPUID reports AMX-TILE and AMX-BF16,
   the OS enables the tile state (XCR0 bits 17, 18) and grants this process
   the tile data (arch_prctl ARCH_REQ_XCOMP_PERM, Linux >= 5.16): d1__cpu_amx.
   D1_AMX_EMULATE (tests only, tests/amx_emu.h): the same kernel runs on a
   scalar model of the six tile instructions it uses, on any CPU that has
   the AVX512-BF16 kernel, so its tiling is tested where no AMX is. */
#if defined(D1__BF16_AVX) && defined(D1_AMX_EMULATE)
#define D1__AMX 1
#define D1__AMX_TARGET D1__BF16_TARGET
#define D1__TILE_CONFIG(cfg) d1_emu_tile_config(cfg)
#define D1__TILE_LOADD(t, p, stride) d1_emu_tile_loadd(t, p, stride)
#define D1__TILE_STORED(t, p, stride) d1_emu_tile_stored(t, p, stride)
#define D1__TILE_ZERO(t) d1_emu_tile_zero(t)
#define D1__TILE_DP(c, a, b) d1_emu_tile_dpbf16ps(c, a, b)
#define D1__TILE_RELEASE() d1_emu_tile_release()
#elif defined(D1__BF16_AVX) && defined(__linux__) && \
    ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define D1__AMX 2
#define D1__AMX_TARGET __attribute__((target("avx512f,avx512bf16,amx-tile,amx-bf16")))
#include <cpuid.h>
/* The tile instructions as gcc and clang spell them. gcc's are asm statements
   that name only the pointer, not the memory behind it: the empty asm with a
   "memory" clobber keeps the compiler from moving or dropping the stores a
   tile load reads and the loads after a tile store. */
#define D1__MEMBAR() __asm__ volatile("" ::: "memory")
#define D1__TILE_CONFIG(cfg) do { D1__MEMBAR(); _tile_loadconfig(cfg); } while (0)
#define D1__TILE_LOADD(t, p, stride) do { D1__MEMBAR(); _tile_loadd(t, p, stride); } while (0)
#define D1__TILE_STORED(t, p, stride) do { _tile_stored(t, p, stride); D1__MEMBAR(); } while (0)
#define D1__TILE_ZERO(t) _tile_zero(t)
#define D1__TILE_DP(c, a, b) _tile_dpbf16ps(c, a, b)
#define D1__TILE_RELEASE() _tile_release()
#endif

/* 1 when this build can run its fast BF16 kernel on this CPU: always with
   D1__BF16_AVX 1 or D1__BF16_NEON 1; with D1__BF16_AVX 2, when CPUID reports
   AVX512F and AVX512_BF16 and the OS saves the ZMM state (XCR0 bits 1, 2, 5,
   6, 7); with D1__BF16_NEON 2, when the kernel's HWCAP2 has BF16 (bit 14). */
static int d1__cpu_bf16(void) {
#if (defined(D1__BF16_AVX) && D1__BF16_AVX == 1) || (defined(D1__BF16_NEON) && D1__BF16_NEON == 1)
    return 1;
#elif defined(D1__BF16_NEON)
    return (int)((getauxval(AT_HWCAP2) >> 14) & 1); /* HWCAP2_BF16 */
#elif defined(D1__BF16_AVX)
    unsigned a, b, c, d, lo, hi;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0; /* OSXSAVE */
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & 0xe6u) != 0xe6u) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 16)) || a < 1) return 0; /* AVX512F */
    __get_cpuid_count(7, 1, &a, &b, &c, &d);
    return (a >> 5) & 1; /* AVX512_BF16 */
#else
    return 0;
#endif
}

/* 1 when the AMX kernel can run here (see D1__AMX): the AVX512-BF16 kernel
   can, CPUID leaf 7 reports AMX-BF16 (EDX bit 22) and AMX-TILE (bit 24),
   XCR0 has the tile configuration and data (bits 17, 18), and Linux grants
   this process the tile data (the request is idempotent; asked at each call,
   which is rare: when a model picks its kernel). Under D1_AMX_EMULATE: when
   the AVX512-BF16 kernel can run. */
static int d1__cpu_amx(void) {
#if defined(D1__AMX) && D1__AMX == 1
    return d1__cpu_bf16();
#elif defined(D1__AMX)
    unsigned a, b, c, d, lo, hi;
    if (!d1__cpu_bf16() || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(d & (1u << 22)) || !(d & (1u << 24))) return 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & 0x60000u) != 0x60000u) return 0;
    { /* arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), as the raw system call (158 on x86-64):
         libc's syscall() is not declared under strict C99 */
        long rc;
        __asm__ volatile("syscall" : "=a"(rc) : "0"(158L), "D"(0x1023L), "S"(18L) : "rcx", "r11", "memory");
        return rc == 0;
    }
#else
    return 0;
#endif
}

#define D1__MIN(a, b) ((a) < (b) ? (a) : (b))
#define D1__MAX(a, b) ((a) > (b) ? (a) : (b))

#define D1__STR2(x) #x
#define D1__STR(x) D1__STR2(x)
/* The build line, from its pieces; the BF16 kernel of a D1__BF16_AVX 2 build
   is named after the CPUID check (the line then holds for this CPU). */
#if defined(D1__AVX512)
#define D1__BUILD_SIMD "simd avx512"
#elif defined(D1__AVX2)
#define D1__BUILD_SIMD "simd avx2"
#elif defined(D1__NEON)
#define D1__BUILD_SIMD "simd neon"
#else
#define D1__BUILD_SIMD "simd scalar"
#endif
#ifdef D1_USE_BLIS
#define D1__BUILD_GEMM ", gemm blis"
#else
#define D1__BUILD_GEMM ", gemm d1"
#endif
#ifdef D1_NO_THREADS
#define D1__BUILD_THREADS ", threads none"
#else
#define D1__BUILD_THREADS ", threads pthreads (max " D1__STR(D1_MAX_THREADS) ")"
#endif
#ifdef D1_CUDA
#define D1__BUILD_CUDA ", cuda yes"
#else
#define D1__BUILD_CUDA ", cuda no"
#endif
#define D1__BUILD_LINE(bf16) D1__BUILD_SIMD D1__BUILD_GEMM D1__BUILD_THREADS ", bf16 " bf16 D1__BUILD_CUDA
D1_API const char *d1_build_info(void) {
#if defined(D1__AMX) && D1__AMX == 1
    if (d1__cpu_amx()) return D1__BUILD_LINE("amx-bf16 (emulated)");
#elif defined(D1__AMX)
    if (d1__cpu_amx()) return D1__BUILD_LINE("amx-bf16 (cpuid)");
#endif
#if defined(D1__BF16_AVX) && D1__BF16_AVX == 1
    return D1__BUILD_LINE("avx512bf16");
#elif defined(D1__BF16_AVX)
    return d1__cpu_bf16() ? D1__BUILD_LINE("avx512bf16 (cpuid)") : D1__BUILD_LINE("scalar (cpuid: no avx512bf16)");
#elif defined(D1__BF16_NEON) && D1__BF16_NEON == 1
    return D1__BUILD_LINE("neon-bf16");
#elif defined(D1__BF16_NEON)
    return d1__cpu_bf16() ? D1__BUILD_LINE("neon-bf16 (hwcap)") : D1__BUILD_LINE("scalar (hwcap: no bf16)");
#else
    return D1__BUILD_LINE("scalar");
#endif
}

D1_API int d1_bf16_simd_available(void) { return d1__cpu_bf16(); }

D1_API const char *d1_strerror(int status) {
    switch (status) {
    case D1_OK: return "ok";
    case D1_ERR_ARG: return "invalid argument (a NULL pointer, a count out of range, or aliasing)";
    case D1_ERR_NOMEM: return "out of memory";
    case D1_ERR_SHAPE: return "bad shape (a size <= 0 or past max_seq_len, a product that overflows, or a prompt length outside its range)";
    case D1_ERR_TOKEN: return "bad token id (outside [0, vocab_size), or the mask id where a real token is needed)";
    case D1_ERR_CONFIG: return "inconsistent model configuration";
    case D1_ERR_NONFINITE: return "non-finite value (NaN or infinity) in a loss or gradient";
    case D1_ERR_THREAD: return "could not create a thread";
    case D1_ERR_STATE: return "called out of order (e.g. backward without a forward)";
    case D1_ERR_IO: return "file I/O failed (open, read, write, sync, rename or mkdir)";
    case D1_ERR_JSON: return "malformed JSON, or a JSON value of the wrong type or form";
    case D1_ERR_HEADER: return "bad safetensors header length (0, over 100 MB, or past the end of the file)";
    case D1_ERR_DTYPE: return "unsupported tensor dtype";
    case D1_ERR_OFFSETS: return "bad safetensors data offsets (wrong size, overlap, gap or uncovered bytes)";
    case D1_ERR_DUPLICATE: return "a key appears twice";
    case D1_ERR_MISSING: return "a tensor the configuration needs is missing";
    case D1_ERR_UNKNOWN_TENSOR: return "a tensor the configuration does not have";
    case D1_ERR_TENSOR_SHAPE: return "a tensor's shape differs from the configuration";
    case D1_ERR_TRUNCATED: return "truncated file (the data ends before its last tensor)";
    case D1_ERR_DEVICE: return "no usable GPU, or a CUDA call failed";
    case D1_ERR_UNSUPPORTED: return "not supported by this build or on this model's device";
    case D1_ERR_MISMATCH: return "the training state was saved with other weights than the checkpoint's model";
    case D1_ERR_SETTING: return "a setting out of range, or two settings that do not fit together";
    case D1_ERR_NOT_FOUND: return "no such file or directory";
    default: return "unknown d1 status";
    }
}

/* The message behind d1_last_error: D1__FAIL(code) names the function and
   d1_strerror(code); D1__FAILF(code, fmt, ...) names the function and says
   what was wrong. Both return code, so `return D1__FAILF(...)` reads as the
   error it is. */
#if defined(__cplusplus) && __cplusplus >= 201103L
#define D1__TLS thread_local
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define D1__TLS _Thread_local
#elif defined(__GNUC__) || defined(__clang__)
#define D1__TLS __thread
#elif defined(_MSC_VER)
#define D1__TLS __declspec(thread)
#else
#define D1__TLS /* no thread-local storage: one message for the process */
#endif
static D1__TLS char d1__err_msg[512];

D1_API const char *d1_last_error(void) { return d1__err_msg; }

static int d1__fail(int code, const char *where, const char *fmt, ...) {
    va_list ap;
    int n = snprintf(d1__err_msg, sizeof d1__err_msg, "%s: ", where);
    if (n < 0 || (size_t)n >= sizeof d1__err_msg) return code;
    if (!fmt) {
        snprintf(d1__err_msg + n, sizeof d1__err_msg - (size_t)n, "%s", d1_strerror(code));
        return code;
    }
    va_start(ap, fmt);
    vsnprintf(d1__err_msg + n, sizeof d1__err_msg - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}
#define D1__FAIL(code) d1__fail((code), __func__, NULL)
#define D1__FAILF(code, ...) d1__fail((code), __func__, __VA_ARGS__)

/* Every buffer the library allocates is 64-byte aligned (one cache line, one
   AVX-512 vector). The offset to the malloc'd block is kept just below it. */
static void *d1__alloc(size_t bytes) {
    unsigned char *raw = (unsigned char *)D1_MALLOC(bytes + 64 + sizeof(void *));
    uintptr_t a;
    if (!raw) return NULL;
    a = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    ((void **)a)[-1] = raw;
    return (void *)a;
}
static void d1__free(void *p) {
    if (p) D1_FREE(((void **)p)[-1]);
}
static float *d1__alloc_floats(size_t n) { return (float *)d1__alloc(n * sizeof(float)); }

/* Wall-clock seconds for the trainers' per-phase timings. POSIX's monotonic
   clock when <time.h> offers it (compile with _POSIX_C_SOURCE >= 199309L or
   gnu99); otherwise processor time, which counts every thread. */
static double d1__now(void) {
#if defined(CLOCK_MONOTONIC)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

/* xoshiro256** (Blackman & Vigna); the state is seeded by splitmix64. */
static uint64_t d1__splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
D1_API void d1_rng_seed(d1_rng *rng, uint64_t seed) {
    int i;
    if (!rng) return;
    for (i = 0; i < 4; i++) rng->s[i] = d1__splitmix64(&seed);
}
static uint64_t d1__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
D1_API uint64_t d1_rng_u64(d1_rng *rng) {
    uint64_t *s = rng->s, r = d1__rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = d1__rotl(s[3], 45);
    return r;
}
D1_API float d1_rng_uniform(d1_rng *rng) {
    return (float)(d1_rng_u64(rng) >> 40) * (1.0f / 16777216.0f);
}
D1_API double d1_rng_uniform_double(d1_rng *rng) {
    return (double)(d1_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
}
D1_API float d1_rng_normal(d1_rng *rng) { /* Box-Muller, one value per call */
    double u1 = 1.0 - d1_rng_uniform_double(rng), u2 = d1_rng_uniform_double(rng);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* A fork-join thread pool, ggml style: d1__parallel(pool, fn, arg) runs
   fn(arg, ith, nth) on every thread ith in [0, nth) (the caller is thread 0)
   and returns when all are done. Work is split by ith, never by timing, so
   results are the same from run to run. */
typedef void (*d1__task_fn)(void *arg, int ith, int nth);

struct d1__pool;
struct d1__worker { struct d1__pool *pool; int ith; };

typedef struct d1__pool {
    int n;
#ifndef D1_NO_THREADS
    pthread_t threads[D1_MAX_THREADS];
    struct d1__worker workers[D1_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    d1__task_fn fn;
    void *arg;
    unsigned generation;
    int busy, quit;
#endif
} d1__pool;

#ifndef D1_NO_THREADS
static void *d1__worker_main(void *p) {
    struct d1__worker *w = (struct d1__worker *)p;
    d1__pool *pool = w->pool;
    unsigned seen = 0;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        d1__task_fn fn;
        void *arg;
        while (pool->generation == seen && !pool->quit) pthread_cond_wait(&pool->wake, &pool->mu);
        if (pool->quit) break;
        seen = pool->generation;
        fn = pool->fn;
        arg = pool->arg;
        pthread_mutex_unlock(&pool->mu);
        fn(arg, w->ith, pool->n);
        pthread_mutex_lock(&pool->mu);
        if (--pool->busy == 0) pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}
#endif

static void d1__pool_stop(d1__pool *pool) {
#ifndef D1_NO_THREADS
    int i;
    if (pool->n > 1) {
        pthread_mutex_lock(&pool->mu);
        pool->quit = 1;
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mu);
        for (i = 1; i < pool->n; i++) pthread_join(pool->threads[i], NULL);
        pthread_mutex_destroy(&pool->mu);
        pthread_cond_destroy(&pool->wake);
        pthread_cond_destroy(&pool->done);
    }
#endif
    pool->n = 1;
}

static int d1__pool_start(d1__pool *pool, int n) {
    pool->n = 1;
    if (n == 1) return D1_OK;
#ifdef D1_NO_THREADS
    return D1__FAIL(D1_ERR_ARG);
#else
    {
        int i;
        pool->generation = 0; pool->busy = 0; pool->quit = 0;
        if (pthread_mutex_init(&pool->mu, NULL)) return D1__FAIL(D1_ERR_THREAD);
        pthread_cond_init(&pool->wake, NULL);
        pthread_cond_init(&pool->done, NULL);
        for (i = 1; i < n; i++) {
            pool->workers[i].pool = pool;
            pool->workers[i].ith = i;
            if (pthread_create(&pool->threads[i], NULL, d1__worker_main, &pool->workers[i])) {
                pool->n = i;         /* stop the ones that did start */
                d1__pool_stop(pool);
                return D1__FAIL(D1_ERR_THREAD);
            }
            pool->n = i + 1;
        }
        return D1_OK;
    }
#endif
}

static void d1__parallel(d1__pool *pool, d1__task_fn fn, void *arg) {
#ifdef D1_NO_THREADS
    (void)pool;
#else
    if (pool->n > 1) {
        pthread_mutex_lock(&pool->mu);
        pool->fn = fn; pool->arg = arg;
        pool->busy = pool->n - 1;
        pool->generation++;
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mu);
        fn(arg, 0, pool->n);
        pthread_mutex_lock(&pool->mu);
        while (pool->busy > 0) pthread_cond_wait(&pool->done, &pool->mu);
        pthread_mutex_unlock(&pool->mu);
        return;
    }
#endif
    fn(arg, 0, 1);
}

/* The share [*lo, *hi) of n items that thread ith of nth takes, in multiples
   of `align` items (the last share takes the remainder). */
static void d1__split(int n, int align, int ith, int nth, int *lo, int *hi) {
    int units = (n + align - 1) / align, per = units / nth, extra = units % nth;
    int u0 = ith * per + D1__MIN(ith, extra), u1 = u0 + per + (ith < extra);
    *lo = D1__MIN(n, u0 * align);
    *hi = D1__MIN(n, u1 * align);
}

// >>tensor --------------------------------------------------------------------
/* Tensor kernels. Each layer is a plain function foo_forward / foo_backward
   that opens with its shapes and formula (llm.c style). Hot inner loops (the
   GEMM micro-kernel, exp, dot) have a scalar reference and SIMD variants; the
   scalar code is the spec, and tests/test_kernels.c holds every variant to it. */

#if defined(__GNUC__) || defined(__clang__)
#define D1__MAYBE_UNUSED __attribute__((unused))
#else
#define D1__MAYBE_UNUSED
#endif

/* Per-call kernel context: the thread pool and one scratch area per thread. */
typedef struct d1__ctx {
    d1__pool *pool;
    float *ws[D1_MAX_THREADS];
} d1__ctx;

/* ---- GEMM ------------------------------------------------------------------
   C[M,N] (= or +=) A[M,K] . B[K,N]. A's element (i,k) sits at A[i*rsa + k*csa]
   and B's (k,j) at B[k*rsb + j*csb], so one routine serves x W^T, dY W and
   dY^T X, and the strided head slices of attention. C is row-major, row
   stride ldc. This triple loop is the definition; d1__gemm computes the same
   sums blocked for the caches (Goto / BLIS): B is packed into panels of NR
   columns, A into panels of MR rows, and a register-blocked micro-kernel does
   an MR x NR tile per pass over a KC-long slice of K. */
static D1__MAYBE_UNUSED void d1__gemm_ref(int M, int N, int K, const float *A, ptrdiff_t rsa,
                                          ptrdiff_t csa, const float *B, ptrdiff_t rsb,
                                          ptrdiff_t csb, float *C, ptrdiff_t ldc, int acc) {
    int i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            float s = 0.0f;
            for (k = 0; k < K; k++) s += A[i * rsa + k * csa] * B[k * rsb + j * csb];
            C[i * ldc + j] = acc ? C[i * ldc + j] + s : s;
        }
}

#if defined(D1__AVX512)
#define D1__MR 12
#define D1__NR 32
#elif defined(D1__AVX2)
#define D1__MR 6
#define D1__NR 16
#elif defined(D1__NEON)
#define D1__MR 8
#define D1__NR 12
#else
#define D1__MR 4
#define D1__NR 8
#endif
#ifndef D1__KC /* cache blocking, tuned on Zen 4 with tools/bench.c: MC x KC of A in L2 */
#define D1__KC 512
#endif
#ifndef D1__MC
#define D1__MC (D1__MR * (240 / D1__MR))
#endif
#ifndef D1__NC
#define D1__NC (D1__NR * (3072 / D1__NR))
#endif
#define D1__GEMM_WS ((size_t)D1__MC * D1__KC + (size_t)D1__KC * D1__NC)

/* Micro-kernel: the tile c[MR,NR] (row stride ldc) (= or +=)
   sum_k a[k*MR + i] * b[k*NR + j], from packed panels a [kc,MR], b [kc,NR]. */
static D1__MAYBE_UNUSED void d1__ukernel_scalar(int kc, const float *a, const float *b, float *c,
                                                ptrdiff_t ldc, int acc) {
    float t[D1__MR][D1__NR] = {{0}};
    int i, j, k;
    for (k = 0; k < kc; k++, a += D1__MR, b += D1__NR)
        for (i = 0; i < D1__MR; i++)
            for (j = 0; j < D1__NR; j++) t[i][j] += a[i] * b[j];
    for (i = 0; i < D1__MR; i++)
        for (j = 0; j < D1__NR; j++) c[i * ldc + j] = acc ? c[i * ldc + j] + t[i][j] : t[i][j];
}

#if defined(D1__AVX512)
/* 12 x 32: 24 zmm accumulators, 2 for the B row, 1 broadcast of A. Stores only
   the first mr rows and nr columns (masked), so edge tiles need no copy. */
#define D1__ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
static void d1__ukernel_edge(int kc, const float *a, const float *b, float *c, ptrdiff_t ldc, int acc,
                               int mr, int nr) {
    __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
    __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (1u << (nr - 16)) - 1);
    int k;
#define D1__DECL(i) __m512 c##i##a = _mm512_setzero_ps(), c##i##b = _mm512_setzero_ps();
    D1__ROWS(D1__DECL)
    for (k = 0; k < kc; k++, a += 12, b += 32) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#define D1__STEP(i)                                                                \
    {                                                                              \
        __m512 ai = _mm512_set1_ps(a[i]);                                          \
        c##i##a = _mm512_fmadd_ps(ai, b0, c##i##a);                                \
        c##i##b = _mm512_fmadd_ps(ai, b1, c##i##b);                                \
    }
        D1__ROWS(D1__STEP)
    }
#define D1__SAVE(i)                                                                \
    if (i < mr) {                                                                  \
        float *ci = c + i * ldc;                                                   \
        if (acc) {                                                                 \
            c##i##a = _mm512_add_ps(c##i##a, _mm512_maskz_loadu_ps(m0, ci));       \
            c##i##b = _mm512_add_ps(c##i##b, _mm512_maskz_loadu_ps(m1, ci + 16));  \
        }                                                                          \
        _mm512_mask_storeu_ps(ci, m0, c##i##a);                                    \
        _mm512_mask_storeu_ps(ci + 16, m1, c##i##b);                               \
    }
    D1__ROWS(D1__SAVE)
#undef D1__DECL
#undef D1__STEP
#undef D1__SAVE
#undef D1__ROWS
}
static void d1__ukernel(int kc, const float *a, const float *b, float *c, ptrdiff_t ldc, int acc) {
    d1__ukernel_edge(kc, a, b, c, ldc, acc, D1__MR, D1__NR);
}
#elif defined(D1__AVX2)
/* 6 x 16: 12 ymm accumulators, 2 for the B row, 1 broadcast of A. */
#define D1__ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
static void d1__ukernel(int kc, const float *a, const float *b, float *c, ptrdiff_t ldc, int acc) {
    int k;
#define D1__DECL(i) __m256 c##i##a = _mm256_setzero_ps(), c##i##b = _mm256_setzero_ps();
    D1__ROWS(D1__DECL)
    for (k = 0; k < kc; k++, a += 6, b += 16) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#define D1__STEP(i)                                                                \
    {                                                                              \
        __m256 ai = _mm256_broadcast_ss(a + i);                                    \
        c##i##a = _mm256_fmadd_ps(ai, b0, c##i##a);                                \
        c##i##b = _mm256_fmadd_ps(ai, b1, c##i##b);                                \
    }
        D1__ROWS(D1__STEP)
    }
#define D1__SAVE(i)                                                                \
    {                                                                              \
        float *ci = c + i * ldc;                                                   \
        if (acc) {                                                                 \
            c##i##a = _mm256_add_ps(c##i##a, _mm256_loadu_ps(ci));                 \
            c##i##b = _mm256_add_ps(c##i##b, _mm256_loadu_ps(ci + 8));             \
        }                                                                          \
        _mm256_storeu_ps(ci, c##i##a);                                             \
        _mm256_storeu_ps(ci + 8, c##i##b);                                         \
    }
    D1__ROWS(D1__SAVE)
#undef D1__DECL
#undef D1__STEP
#undef D1__SAVE
#undef D1__ROWS
}
#elif defined(D1__NEON)
/* 8 x 12: 24 q-register accumulators, 3 for the B row, 2 holding 8 A values. */
static void d1__ukernel(int kc, const float *a, const float *b, float *c, ptrdiff_t ldc, int acc) {
    float32x4_t t[8][3];
    int i, j, k;
    for (i = 0; i < 8; i++)
        for (j = 0; j < 3; j++) t[i][j] = vdupq_n_f32(0.0f);
    for (k = 0; k < kc; k++, a += 8, b += 12) {
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
#define D1__STEP(i, av, lane)                                                      \
    t[i][0] = vfmaq_laneq_f32(t[i][0], b0, av, lane);                              \
    t[i][1] = vfmaq_laneq_f32(t[i][1], b1, av, lane);                              \
    t[i][2] = vfmaq_laneq_f32(t[i][2], b2, av, lane);
        D1__STEP(0, a0, 0) D1__STEP(1, a0, 1) D1__STEP(2, a0, 2) D1__STEP(3, a0, 3)
        D1__STEP(4, a1, 0) D1__STEP(5, a1, 1) D1__STEP(6, a1, 2) D1__STEP(7, a1, 3)
#undef D1__STEP
    }
    for (i = 0; i < 8; i++)
        for (j = 0; j < 3; j++) {
            float *ci = c + i * ldc + 4 * j;
            vst1q_f32(ci, acc ? vaddq_f32(t[i][j], vld1q_f32(ci)) : t[i][j]);
        }
}
#else
#define d1__ukernel d1__ukernel_scalar
#endif

#if !defined(D1__AVX512)
/* An edge tile (mr < MR or nr < NR): the full tile into a buffer, then the
   valid part into c. (The AVX-512 kernel stores edges itself, with masks.) */
static void d1__ukernel_edge(int kc, const float *a, const float *b, float *c, ptrdiff_t ldc, int acc, int mr,
                             int nr) {
    float t[D1__MR * D1__NR];
    int i, j;
    d1__ukernel(kc, a, b, t, D1__NR, 0);
    for (i = 0; i < mr; i++)
        for (j = 0; j < nr; j++) c[i * ldc + j] = acc ? c[i * ldc + j] + t[i * D1__NR + j] : t[i * D1__NR + j];
}
#endif

/* Pack A[i0.., k0..] (mc x kc) into MR-row panels: Ap[p*MR*kc + k*MR + i],
   zero-padded to a multiple of MR rows. Reads along whichever stride is 1. */
static void d1__pack_a(int mc, int kc, const float *A, ptrdiff_t rsa, ptrdiff_t csa, float *Ap) {
    int p, i, k;
    for (p = 0; p < mc; p += D1__MR) {
        int mr = D1__MIN(D1__MR, mc - p);
        float *dst = Ap + (size_t)p * kc;
        if (csa == 1) {
            for (i = 0; i < mr; i++) {
                const float *row = A + (ptrdiff_t)(p + i) * rsa;
                for (k = 0; k < kc; k++) dst[k * D1__MR + i] = row[k];
            }
        } else {
            for (k = 0; k < kc; k++)
                for (i = 0; i < mr; i++) dst[k * D1__MR + i] = A[(ptrdiff_t)(p + i) * rsa + k * csa];
        }
        for (; mr < D1__MR; mr++)
            for (k = 0; k < kc; k++) dst[k * D1__MR + mr] = 0.0f;
    }
}

/* Pack B[k0.., j0..] (kc x nc) into NR-column panels: Bp[p*NR*kc + k*NR + j]. */
static void d1__pack_b(int kc, int nc, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *Bp) {
    int p, j, k;
    for (p = 0; p < nc; p += D1__NR) {
        int nr = D1__MIN(D1__NR, nc - p);
        float *dst = Bp + (size_t)p * kc;
        if (csb == 1) {
            for (k = 0; k < kc; k++) {
                const float *row = B + k * rsb + p;
                for (j = 0; j < nr; j++) dst[k * D1__NR + j] = row[j];
                for (; j < D1__NR; j++) dst[k * D1__NR + j] = 0.0f;
            }
        } else {
            for (j = 0; j < nr; j++) {
                const float *col = B + (ptrdiff_t)(p + j) * csb;
                for (k = 0; k < kc; k++) dst[k * D1__NR + j] = col[k * rsb];
            }
            for (; j < D1__NR; j++)
                for (k = 0; k < kc; k++) dst[k * D1__NR + j] = 0.0f;
        }
    }
}

/* The blocked GEMM on one thread; ws holds D1__GEMM_WS floats (64-aligned). */
static D1__MAYBE_UNUSED void d1__gemm_blocked(int M, int N, int K, const float *A, ptrdiff_t rsa,
                                              ptrdiff_t csa, const float *B, ptrdiff_t rsb, ptrdiff_t csb,
                                              float *C, ptrdiff_t ldc, int acc, float *ws) {
    float *Ap = ws, *Bp = ws + (size_t)D1__MC * D1__KC;
    int jc, pc, ic, jr, ir, i;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!acc)
            for (i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    for (jc = 0; jc < N; jc += D1__NC) {
        int nc = D1__MIN(D1__NC, N - jc);
        for (pc = 0; pc < K; pc += D1__KC) {
            int kc = D1__MIN(D1__KC, K - pc), add = acc || pc > 0;
            d1__pack_b(kc, nc, B + pc * rsb + jc * csb, rsb, csb, Bp);
            for (ic = 0; ic < M; ic += D1__MC) {
                int mc = D1__MIN(D1__MC, M - ic);
                d1__pack_a(mc, kc, A + ic * rsa + pc * csa, rsa, csa, Ap);
                for (jr = 0; jr < nc; jr += D1__NR)
                    for (ir = 0; ir < mc; ir += D1__MR) {
                        int mr = D1__MIN(D1__MR, mc - ir), nr = D1__MIN(D1__NR, nc - jr);
                        float *c = C + (ptrdiff_t)(ic + ir) * ldc + jc + jr;
                        const float *a = Ap + (size_t)ir * kc, *b = Bp + (size_t)jr * kc;
                        if (mr == D1__MR && nr == D1__NR)
                            d1__ukernel(kc, a, b, c, ldc, add);
                        else
                            d1__ukernel_edge(kc, a, b, c, ldc, add, mr, nr);
                    }
            }
        }
    }
}

/* The GEMM of one thread: ours, or BLIS's (D1_USE_BLIS), whose general-stride
   interface takes the same (row stride, column stride) pairs. */
static void d1__gemm(int M, int N, int K, const float *A, ptrdiff_t rsa, ptrdiff_t csa, const float *B,
                     ptrdiff_t rsb, ptrdiff_t csb, float *C, ptrdiff_t ldc, int acc, float *ws) {
#ifdef D1_USE_BLIS
    float one = 1.0f, beta = acc ? 1.0f : 0.0f;
    rntm_t rntm; /* one BLIS thread per call: the threads are ours (d1__gemm_mt) */
    (void)ws;
    if (M <= 0 || N <= 0) return;
    bli_rntm_init(&rntm);
    bli_rntm_set_num_threads(1, &rntm);
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &one, (float *)A, rsa, csa, (float *)B, rsb, csb,
                 &beta, C, ldc, 1, NULL, &rntm);
#else
    d1__gemm_blocked(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, acc, ws);
#endif
}

/* The GEMM across the pool: the rows of C (or, for a wide C, its columns) are
   cut into one share per thread. Every element of C is summed in the same
   order whatever the thread count, so results do not depend on it.
   Our GEMM sums each element the same way whatever share it lies in. BLIS
   does not: it chooses its blocking and, for small shapes, its unpacked "sup"
   kernels from the shape of each call (measured on a Zen 4: C of 301 x 17,
   K 129, cut in 2 shares, differs from one call in 6 of 5117 elements). So
   under D1_USE_BLIS C is cut into tiles of D1__BLIS_TILE rows (or columns)
   that depend on the shape alone, each thread takes whole tiles, and every
   element comes from a call of the same shape whatever the thread count. */
#ifndef D1__BLIS_TILE
#define D1__BLIS_TILE 128
#endif
typedef struct d1__gemm_args {
    int M, N, K, acc;
    int simd; /* d1__gemm_bf16_gs_task: 0 the scalar BF16 kernels, 1 AVX512-BF16 or NEON, 2 AMX */
    const float *A, *B;
    float *C;
    ptrdiff_t rsa, csa, rsb, csb, ldc;
    d1__ctx *cx;
} d1__gemm_args;

static void d1__gemm_task(void *p, int ith, int nth) {
    d1__gemm_args *g = (d1__gemm_args *)p;
    int lo, hi;
#ifdef D1_USE_BLIS
    int rows = g->M >= g->N, n = rows ? g->M : g->N, t0, t1, t;
    d1__split((n + D1__BLIS_TILE - 1) / D1__BLIS_TILE, 1, ith, nth, &t0, &t1);
    for (t = t0; t < t1; t++) {
        lo = t * D1__BLIS_TILE;
        hi = D1__MIN(n, lo + D1__BLIS_TILE);
        if (rows)
            d1__gemm(hi - lo, g->N, g->K, g->A + lo * g->rsa, g->rsa, g->csa, g->B, g->rsb, g->csb,
                     g->C + lo * g->ldc, g->ldc, g->acc, g->cx->ws[ith]);
        else
            d1__gemm(g->M, hi - lo, g->K, g->A, g->rsa, g->csa, g->B + lo * g->csb, g->rsb, g->csb, g->C + lo,
                     g->ldc, g->acc, g->cx->ws[ith]);
    }
#else
    if (g->M >= g->N || g->N < nth * D1__NR) {
        d1__split(g->M, D1__MR, ith, nth, &lo, &hi);
        d1__gemm(hi - lo, g->N, g->K, g->A + lo * g->rsa, g->rsa, g->csa, g->B, g->rsb, g->csb,
                 g->C + lo * g->ldc, g->ldc, g->acc, g->cx->ws[ith]);
    } else {
        d1__split(g->N, D1__NR, ith, nth, &lo, &hi);
        d1__gemm(g->M, hi - lo, g->K, g->A, g->rsa, g->csa, g->B + lo * g->csb, g->rsb, g->csb,
                 g->C + lo, g->ldc, g->acc, g->cx->ws[ith]);
    }
#endif
}

static void d1__gemm_mt(d1__ctx *cx, int M, int N, int K, const float *A, ptrdiff_t rsa,
                        ptrdiff_t csa, const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *C,
                        ptrdiff_t ldc, int acc) {
    d1__gemm_args g;
    g.M = M; g.N = N; g.K = K; g.acc = acc; g.simd = 0; g.A = A; g.B = B; g.C = C;
    g.rsa = rsa; g.csa = csa; g.rsb = rsb; g.csb = csb; g.ldc = ldc; g.cx = cx;
    if (cx->pool->n == 1 || (double)M * N * K < 65536.0)
        d1__gemm_task(&g, 0, 1);
    else
        d1__parallel(cx->pool, d1__gemm_task, &g);
}

/* ---- exp and dot --------------------------------------------------------------
   d1__vexp: y[i] = exp(a*x[i] - s) for i < n; returns sum_i y[i]. The SIMD
   variants use Cephes' range reduction (x = k ln2 + r, |r| <= ln2/2) and its
   degree-7 polynomial: relative error below 2e-7. Arguments below -87.3 give 0
   exactly (a masked score of -inf becomes a weight of 0). */
static D1__MAYBE_UNUSED float d1__vexp_scalar(float *y, const float *x, int n, float a, float s) {
    float sum = 0.0f;
    int i;
    for (i = 0; i < n; i++) {
        y[i] = expf(a * x[i] - s);
        sum += y[i];
    }
    return sum;
}
#define D1__EXP_LO -87.33654f
#define D1__EXP_HI 88.37626f
#define D1__EXP_C1 0.693359375f
#define D1__EXP_C2 -2.12194440e-4f
#define D1__EXP_P0 1.9875691500e-4f
#define D1__EXP_P1 1.3981999507e-3f
#define D1__EXP_P2 8.3334519073e-3f
#define D1__EXP_P3 4.1665795894e-2f
#define D1__EXP_P4 1.6666665459e-1f
#define D1__EXP_P5 5.0000001201e-1f

#if defined(D1__AVX512)
/* horizontal sum in a fixed order (a store, not _mm512_reduce_add_ps, which
   trips g++ 12's -Wuninitialized) */
static float d1__hsum16(__m512 v) {
    float t[16];
    int i;
    _mm512_storeu_ps(t, v);
    for (i = 0; i < 8; i++) t[i] += t[i + 8];
    for (i = 0; i < 4; i++) t[i] += t[i + 4];
    return (t[0] + t[2]) + (t[1] + t[3]);
}
static __m512 d1__exp16(__m512 x) {
    __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(D1__EXP_LO), _CMP_LT_OQ);
    __m512 k, r, p;
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(D1__EXP_LO)), _mm512_set1_ps(D1__EXP_HI));
    k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(D1__EXP_C1), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(D1__EXP_C2), r);
    p = _mm512_set1_ps(D1__EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(D1__EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(D1__EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(D1__EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(D1__EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(D1__EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps((__mmask16)~under, _mm512_scalef_ps(p, k));
}
static float d1__vexp(float *y, const float *x, int n, float a, float s) {
    __m512 va = _mm512_set1_ps(a), vs = _mm512_set1_ps(s), acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = d1__exp16(_mm512_fmsub_ps(va, _mm512_loadu_ps(x + i), vs));
        _mm512_storeu_ps(y + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = d1__exp16(_mm512_fmsub_ps(va, _mm512_maskz_loadu_ps(m, x + i), vs));
        e = _mm512_maskz_mov_ps(m, e);
        _mm512_mask_storeu_ps(y + i, m, e);
        acc = _mm512_add_ps(acc, e);
    }
    return d1__hsum16(acc);
}
#elif defined(D1__AVX2)
static __m256 d1__exp8(__m256 x) {
    __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(D1__EXP_LO), _CMP_LT_OQ);
    __m256 k, r, p, two_k;
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(D1__EXP_LO)), _mm256_set1_ps(D1__EXP_HI));
    k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(D1__EXP_C1), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(D1__EXP_C2), r);
    p = _mm256_set1_ps(D1__EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(D1__EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(D1__EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(D1__EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(D1__EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(D1__EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    two_k = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23));
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, two_k));
}
static float d1__vexp(float *y, const float *x, int n, float a, float s) {
    __m256 va = _mm256_set1_ps(a), vs = _mm256_set1_ps(s), acc = _mm256_setzero_ps();
    float lanes[8], sum = 0.0f;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = d1__exp8(_mm256_fmsub_ps(va, _mm256_loadu_ps(x + i), vs));
        _mm256_storeu_ps(y + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    _mm256_storeu_ps(lanes, acc);
    for (; i < n; i++) { y[i] = expf(a * x[i] - s); sum += y[i]; }
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7] + sum;
}
#elif defined(D1__NEON)
static float32x4_t d1__exp4(float32x4_t x) {
    uint32x4_t under = vcltq_f32(x, vdupq_n_f32(D1__EXP_LO));
    float32x4_t k, r, p, two_k;
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(D1__EXP_LO)), vdupq_n_f32(D1__EXP_HI));
    k = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    r = vfmsq_f32(x, k, vdupq_n_f32(D1__EXP_C1));
    r = vfmsq_f32(r, k, vdupq_n_f32(D1__EXP_C2));
    p = vdupq_n_f32(D1__EXP_P0);
    p = vfmaq_f32(vdupq_n_f32(D1__EXP_P1), p, r);
    p = vfmaq_f32(vdupq_n_f32(D1__EXP_P2), p, r);
    p = vfmaq_f32(vdupq_n_f32(D1__EXP_P3), p, r);
    p = vfmaq_f32(vdupq_n_f32(D1__EXP_P4), p, r);
    p = vfmaq_f32(vdupq_n_f32(D1__EXP_P5), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    two_k = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(k), vdupq_n_s32(127)), 23));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(vmulq_f32(p, two_k)), under));
}
static float d1__vexp(float *y, const float *x, int n, float a, float s) {
    float32x4_t va = vdupq_n_f32(a), vs = vdupq_n_f32(s), acc = vdupq_n_f32(0.0f);
    float sum = 0.0f;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t e = d1__exp4(vsubq_f32(vmulq_f32(va, vld1q_f32(x + i)), vs));
        vst1q_f32(y + i, e);
        acc = vaddq_f32(acc, e);
    }
    for (; i < n; i++) { y[i] = expf(a * x[i] - s); sum += y[i]; }
    return vaddvq_f32(acc) + sum;
}
#else
#define d1__vexp d1__vexp_scalar
#endif

/* d1__dot: sum_i a[i] * b[i]. */
static D1__MAYBE_UNUSED float d1__dot_scalar(const float *a, const float *b, int n) {
    float s = 0.0f;
    int i;
    for (i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
#if defined(D1__AVX512)
static float d1__dot(const float *a, const float *b, int n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = (__mmask16)(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return d1__hsum16(_mm512_add_ps(s0, s1));
}
#elif defined(D1__AVX2)
static float d1__dot(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    float lanes[8], s = 0.0f;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    _mm256_storeu_ps(lanes, _mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7] + s;
}
#elif defined(D1__NEON)
static float d1__dot(const float *a, const float *b, int n) {
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f);
    float s = 0.0f;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    }
    for (; i < n; i++) s += a[i] * b[i];
    return vaddvq_f32(vaddq_f32(s0, s1)) + s;
}
#else
#define d1__dot d1__dot_scalar
#endif

/* Largest element of x[0..n), n >= 1; a NaN anywhere makes the result NaN,
   so it surfaces. The SIMD versions take the same maximum (of equal zeros
   either may come back: the softmax and log-sum-exp that subtract it give
   the same bits) and hand a row holding a NaN to the scalar loop. */
static float d1__max_scalar(const float *x, int n) {
    float m = x[0];
    int i;
    for (i = 0; i < n; i++) {
        if (x[i] != x[i]) return x[i];
        if (x[i] > m) m = x[i];
    }
    return m;
}
/* r combined with the max of the tail x[0..n): NaN if the tail holds one */
static D1__MAYBE_UNUSED float d1__max_tail(float r, const float *x, int n) {
    float t = d1__max_scalar(x, n);
    return t != t || t > r ? t : r;
}
#if defined(D1__AVX512)
static float d1__max(const float *x, int n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    __mmask16 nan = 0;
    int i = 0;
    for (; i < n; i += 16) {
        __mmask16 k = (__mmask16)(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1);
        __m512 v = _mm512_mask_loadu_ps(m, k, x + i); /* lanes past n: m, which changes nothing */
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m = _mm512_max_ps(m, v);
    }
    return nan ? d1__max_scalar(x, n) : _mm512_reduce_max_ps(m);
}
#elif defined(D1__AVX2)
static float d1__max(const float *x, int n) {
    __m256 m = _mm256_set1_ps(-INFINITY), nan = _mm256_setzero_ps();
    float lanes[8], r = -INFINITY;
    int i = 0, j;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        m = _mm256_max_ps(m, v);
    }
    if (_mm256_movemask_ps(nan)) return d1__max_scalar(x, n);
    _mm256_storeu_ps(lanes, m);
    for (j = 0; j < 8; j++) r = lanes[j] > r ? lanes[j] : r;
    return i < n ? d1__max_tail(r, x + i, n - i) : r;
}
#elif defined(D1__NEON)
static float d1__max(const float *x, int n) {
    float32x4_t m = vdupq_n_f32(-INFINITY); /* vmaxq_f32 keeps a NaN: the result shows it */
    float r;
    int i = 0;
    for (; i + 4 <= n; i += 4) m = vmaxq_f32(m, vld1q_f32(x + i));
    r = vmaxvq_f32(m);
    if (r != r) return d1__max_scalar(x, n);
    return i < n ? d1__max_tail(r, x + i, n - i) : r;
}
#else
#define d1__max d1__max_scalar
#endif

/* ---- BF16 GEMM (inference) -------------------------------------------------
   C[M,N] = A[M,K] . W[N,K]^T with A and W rounded to bfloat16 and the sums
   in FP32, as AVX512-BF16's vdpbf16ps computes them. W is packed once (by
   the model, D1_PRECISION_BF16), A while the GEMM runs. Per element:
       s = 0;  for each pair p of k (2p, 2p+1), K odd padded with a zero:
           s = fma(a[2p+1], w[2p+1], s);  s = fma(a[2p], w[2p], s)
   each fma exact then rounded to nearest even, a subnormal result flushed to
   zero (vdpbf16ps: the odd element first, DAZ in, FTZ out, MXCSR ignored).
   A product of two bfloat16 numbers is exact in FP32 (8-bit significands),
   so only the sums round: fma(a, b, s) and a * b + s give the same bits, and
   the scalar kernels use the latter (fmaf is a library call on some targets).
   BF16 rounding (vcvtne2ps2bf16): to nearest, ties to even; a subnormal float
   becomes a zero of its sign; a NaN stays a quiet NaN. d1__gemm_bf16_ref is
   that definition; d1__gemm_bf16 computes the same bits blocked, with the
   scalar micro-kernel, the AVX512-BF16 one or the NEON one (tests/test_bf16.c;
   the NEON kernel under qemu-user in CI). */

static uint16_t d1__bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN: quiet */
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000);         /* zero, subnormal */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
/* a bfloat16 as a float; a subnormal one reads as zero (DAZ) */
static float d1__bf16_value(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
    memcpy(&f, &u, 4);
    return f;
}
/* a subnormal result becomes a zero of its sign (FTZ) */
static float d1__ftz(float r) {
    uint32_t u;
    memcpy(&u, &r, 4);
    u &= (u & 0x7f800000u) ? 0xffffffffu : 0x80000000u; /* branch-free: the loops vectorise */
    memcpy(&r, &u, 4);
    return r;
}
/* one multiply-add of vdpbf16ps: fma(a, b, s) rounded once, subnormals flushed */
static float d1__bf16_fma(float s, uint16_t a, uint16_t b) {
    return d1__ftz(d1__bf16_value(a) * d1__bf16_value(b) + s); /* the product is exact */
}

/* The definition: C[i,j] (row stride ldc) from A [M,K] (row stride lda) and
   W [N,K] (row stride ldw), both FP32, rounded here; acc: the sum starts
   from C[i,j] instead of 0. */
static D1__MAYBE_UNUSED void d1__gemm_bf16_ref(int M, int N, int K, const float *A, ptrdiff_t lda, const float *W,
                                               ptrdiff_t ldw, float *C, ptrdiff_t ldc, int acc) {
    int i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            const float *a = A + i * lda, *w = W + j * ldw;
            float s = acc ? C[i * ldc + j] : 0.0f;
            for (k = 0; k < K; k += 2) {
                uint16_t a1 = k + 1 < K ? d1__bf16_round(a[k + 1]) : 0, w1 = k + 1 < K ? d1__bf16_round(w[k + 1]) : 0;
                s = d1__bf16_fma(s, a1, w1);
                s = d1__bf16_fma(s, d1__bf16_round(a[k]), d1__bf16_round(w[k]));
            }
            C[i * ldc + j] = s;
        }
}

/* Packed operands hold pairs: one uint32 = bf16(x[2p]) | bf16(x[2p+1]) << 16
   (the dword vdpbf16ps reads, on a little-endian CPU). W is packed in panels
   of D1__BF_NR columns, pair-major (each pair of k a row of NR dwords: one
   vector load per 16 columns); an MC-row block of A is converted row-major
   (its rows D1__BF_MR apart in a tile: the kernel broadcasts a pair of each).
   Tiles are D1__BF_MR x D1__BF_NR whatever the kernel, so one packing serves
   both; K is cut into slices of D1__BF_KC (even: a pair never straddles two),
   each slice continuing the sums of the last one from C, so the blocking
   changes nothing. */
#define D1__BF_MR 12
#define D1__BF_NR 32
#ifndef D1__BF_KC
#define D1__BF_KC 512
#endif
#ifndef D1__BF_MC
#define D1__BF_MC 240
#endif
#if D1__BF_KC % 2 || D1__BF_KC <= 0 || D1__BF_MC % D1__BF_MR || D1__BF_MC <= 0
#error "D1__BF_KC must be even and D1__BF_MC a multiple of 12"
#endif
/* the A block a thread converts (uint32 pairs; d1__ensure sizes the scratch for it) */
#define D1__BF_WS ((size_t)D1__BF_MC * (D1__BF_KC / 2))

/* uint32s of W [N,K] packed: ceil(N/NR) panels of NR columns x ceil(K/2) pairs */
static size_t d1__bf16_packed_size(int N, int K) {
    return (size_t)((N + D1__BF_NR - 1) / D1__BF_NR) * D1__BF_NR * (size_t)((K + 1) / 2);
}
static uint32_t d1__bf16_pair(const float *x, int k, int K) {
    return (uint32_t)d1__bf16_round(x[k]) | (k + 1 < K ? (uint32_t)d1__bf16_round(x[k + 1]) << 16 : 0u);
}
/* Pack W [N,K] (row stride ldw): Wp[p*NR*Kp + q*NR + j] = pair q of row
   p*NR + j, Kp = ceil(K/2); rows past N are zero. */
static void d1__bf16_pack_w(int N, int K, const float *W, ptrdiff_t ldw, uint32_t *Wp) {
    int Kp = (K + 1) / 2, p, j, q;
    for (p = 0; p < N; p += D1__BF_NR)
        for (j = 0; j < D1__BF_NR; j++) {
            uint32_t *dst = Wp + (size_t)p * Kp + j;
            const float *row = W + (ptrdiff_t)(p + j) * ldw;
            for (q = 0; q < Kp; q++) dst[(size_t)q * D1__BF_NR] = p + j < N ? d1__bf16_pair(row, 2 * q, K) : 0u;
        }
}
/* Convert A[.., k0..k0+kc) (mc rows, row stride lda) row-major into pairs:
   Ap[i*kcp + q] = pair q of row i, kcp = ceil(kc/2); the rows up to the next
   multiple of MR are zero. */
static void d1__bf16_pack_a_scalar(int mc, int kc, const float *A, ptrdiff_t lda, uint32_t *Ap) {
    int kcp = (kc + 1) / 2, i, q;
    for (i = 0; i < mc; i++)
        for (q = 0; q < kcp; q++) Ap[(size_t)i * kcp + q] = d1__bf16_pair(A + (ptrdiff_t)i * lda, 2 * q, kc);
    for (; i % D1__BF_MR; i++) memset(Ap + (size_t)i * kcp, 0, (size_t)kcp * sizeof(uint32_t));
}

/* Micro-kernel: the tile c[mr,nr] (row stride ldc) = (acc: c +) the pairs
   a [MR, kcp] (row stride lda) . b [kcp, NR], in the order of the definition.
   The whole MR x NR tile is computed (the packed rows and columns past mr and
   nr are zeros), so the loops have constant bounds the compiler vectorises;
   only mr x nr is stored. */
static void d1__ukernel_bf16_scalar(int kcp, const uint32_t *a, ptrdiff_t lda, const uint32_t *b, float *c,
                                    ptrdiff_t ldc, int acc, int mr, int nr) {
    float t[D1__BF_MR][D1__BF_NR], b0[D1__BF_NR], b1[D1__BF_NR];
    int i, j, q;
    for (i = 0; i < D1__BF_MR; i++)
        for (j = 0; j < D1__BF_NR; j++) t[i][j] = acc && i < mr && j < nr ? c[i * ldc + j] : 0.0f;
    for (q = 0; q < kcp; q++, a++, b += D1__BF_NR) {
        for (j = 0; j < D1__BF_NR; j++) {
            b0[j] = d1__bf16_value((uint16_t)b[j]);
            b1[j] = d1__bf16_value((uint16_t)(b[j] >> 16));
        }
        for (i = 0; i < D1__BF_MR; i++) {
            float a0 = d1__bf16_value((uint16_t)a[i * lda]), a1 = d1__bf16_value((uint16_t)(a[i * lda] >> 16));
            for (j = 0; j < D1__BF_NR; j++) { /* the odd k first, as vdpbf16ps */
                float s = d1__ftz(a1 * b1[j] + t[i][j]);
                t[i][j] = d1__ftz(a0 * b0[j] + s);
            }
        }
    }
    for (i = 0; i < mr; i++)
        for (j = 0; j < nr; j++) c[i * ldc + j] = t[i][j];
}

#if defined(D1__BF16_AVX)
/* 12 x 32 with vdpbf16ps: 24 zmm accumulators (16 sums of 2 pairs each), 2 for
   the W pairs, 1 broadcast A pair. Loads and stores only mr rows and nr
   columns (masked), so edge tiles need no copy. Row i of a is at
   r[i / 3] + (i % 3) lda: four pointers and one stride reach all twelve.
   d1__ukernel_bf16_avx512_rows computes the first `rows` rows only (a
   constant where it is inlined: 12, 8 or 4); the kernel picks the smallest
   that holds mr, so a tile of a few rows (a short prompt, the 8-token pass of
   an 8B model, whose time is reading W) does not multiply the 12. Each sum is
   the same chain of vdpbf16ps whatever `rows` is: the same bits. */
#define D1__ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
D1__BF16_TARGET static inline __attribute__((always_inline)) void
d1__ukernel_bf16_avx512_rows(int rows, int kcp, const uint32_t *a, ptrdiff_t lda, const uint32_t *b, float *c,
                             ptrdiff_t ldc, int acc, int mr, int nr) {
    const uint32_t *r0 = a, *r1 = a + 3 * lda, *r2 = a + 6 * lda, *r3 = a + 9 * lda;
    __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
    __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (1u << (nr - 16)) - 1);
    int q;
#define D1__DECL(i)                                                                \
    __m512 c##i##a = _mm512_setzero_ps(), c##i##b = _mm512_setzero_ps();          \
    if (acc && i < mr) {                                                           \
        c##i##a = _mm512_maskz_loadu_ps(m0, c + i * ldc);                          \
        c##i##b = _mm512_maskz_loadu_ps(m1, c + i * ldc + 16);                     \
    }
    D1__ROWS(D1__DECL)
    for (q = 0; q < kcp; q++, b += D1__BF_NR) {
        __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)b);
        __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(b + 16));
#define D1__STEP(i)                                                                \
    if ((i) < rows) {                                                              \
        const uint32_t *ri = (i) < 3 ? r0 : (i) < 6 ? r1 : (i) < 9 ? r2 : r3;      \
        __m512bh ai = (__m512bh)_mm512_set1_epi32((int)ri[q + (i) % 3 * lda]);     \
        c##i##a = _mm512_dpbf16_ps(c##i##a, ai, b0);                               \
        c##i##b = _mm512_dpbf16_ps(c##i##b, ai, b1);                               \
    }
        D1__ROWS(D1__STEP)
    }
#define D1__SAVE(i)                                                                \
    if (i < mr) {                                                                  \
        _mm512_mask_storeu_ps(c + i * ldc, m0, c##i##a);                           \
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, c##i##b);                      \
    }
    D1__ROWS(D1__SAVE)
#undef D1__DECL
#undef D1__STEP
#undef D1__SAVE
#undef D1__ROWS
}
D1__BF16_TARGET static void d1__ukernel_bf16_avx512(int kcp, const uint32_t *a, ptrdiff_t lda, const uint32_t *b,
                                                    float *c, ptrdiff_t ldc, int acc, int mr, int nr) {
    if (mr > 8) d1__ukernel_bf16_avx512_rows(12, kcp, a, lda, b, c, ldc, acc, mr, nr);
    else if (mr > 4) d1__ukernel_bf16_avx512_rows(8, kcp, a, lda, b, c, ldc, acc, mr, nr);
    else d1__ukernel_bf16_avx512_rows(4, kcp, a, lda, b, c, ldc, acc, mr, nr);
}

/* d1__bf16_pack_a_scalar with vcvtne2ps2bf16: 32 floats of a row become 16
   pairs, one store (masked at the row's end). */
D1__BF16_TARGET static void d1__bf16_pack_a_avx512(int mc, int kc, const float *A, ptrdiff_t lda, uint32_t *Ap) {
    int kcp = (kc + 1) / 2, i, q;
    for (i = 0; i < mc; i++) {
        const float *row = A + (ptrdiff_t)i * lda;
        uint32_t *dst = Ap + (size_t)i * kcp;
        for (q = 0; q + 16 <= kcp && 2 * q + 32 <= kc; q += 16) /* whole vectors */
            _mm512_storeu_si512((void *)(dst + q), (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + 2 * q + 16),
                                                                               _mm512_loadu_ps(row + 2 * q)));
        if (q < kcp) { /* the row's end, masked */
            int left = kc - 2 * q, n = kcp - q;
            __mmask16 l0 = (__mmask16)(left >= 16 ? 0xFFFF : (1u << left) - 1);
            __mmask16 l1 = (__mmask16)(left >= 32 ? 0xFFFF : left <= 16 ? 0 : (1u << (left - 16)) - 1);
            __m512 x0 = _mm512_maskz_loadu_ps(l0, row + 2 * q), x1 = _mm512_maskz_loadu_ps(l1, row + 2 * q + 16);
            _mm512_mask_storeu_epi32(dst + q, (__mmask16)((1u << n) - 1), (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
        }
    }
    for (; i % D1__BF_MR; i++) memset(Ap + (size_t)i * kcp, 0, (size_t)kcp * sizeof(uint32_t));
}
#endif

#if defined(D1__AMX)
/* AMX-BF16. Eight tile registers of 16 rows x 64 bytes: C as 2 x 2 tiles of
   16 x 16 floats (tmm0-3), two A tiles of 16 rows x 16 pairs (tmm4, 5), two
   B tiles of 16 pairs x 16 columns (tmm6, 7): a 32 x 32 block of C per
   micro-kernel, 16 pairs of k per step. The packed operands are already
   the tiles' layouts: a row of the converted A block holds its pairs
   contiguous (a tile row of A, row stride kcp), and a row of a W panel holds
   one pair for each of its 32 columns (two tile rows of B, row stride NR).
   TDPBF16PS (Intel's intrinsics guide):
       for m, for k < 16, for n:  C[m][n] += a[m][2k] b[k][2n];  C[m][n] += a[m][2k+1] b[k][2n+1]
   with DAZ, FTZ and round to nearest even: the even element first, where
   vdpbf16ps takes the odd one first, so its sums round differently from
   the definition's (and Intel's manual describes another order: separate
   sums of the even and the odd products, added to C at the end). The AMX
   kernel's bits are its own: tests/test_bf16.c bounds its distance from the
   definition by the rounding of a K-term sum (and, under D1_AMX_EMULATE,
   checks the guide's order bit for bit). D1_BF16_KERNEL_VECTOR keeps the
   definition's bits on an AMX CPU, with the AVX512-BF16 kernel. Each sum is
   one chain whatever the blocking or the threads, so AMX results are
   deterministic too. */
#define D1__AMX_MC (D1__BF_MC / 32 * 32) /* rows per converted A block: a multiple of 32 the scratch holds */
#if D1__BF_MC < 32
#error "the AMX kernel needs D1__BF_MC >= 32"
#endif
typedef struct d1__tilecfg { /* LDTILECFG's 64 bytes, palette 1 */
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} d1__tilecfg;

/* One 16 x 16 C tile (rows r0.., columns j0..) of the mr x nr block at c:
   loaded from c (acc) or zeroed, and stored back, through a buffer where
   the tile crosses mr or nr. */
#define D1__AMX_C_LOAD(t, r0, j0)                                                                   \
    do {                                                                                           \
        if (!acc) D1__TILE_ZERO(t);                                                                \
        else if (mr >= (r0) + 16 && nr >= (j0) + 16) D1__TILE_LOADD(t, c + (r0) * ldc + (j0), ldc * 4); \
        else {                                                                                     \
            memset(buf, 0, sizeof buf);                                                            \
            for (i = (r0); i < D1__MIN(mr, (r0) + 16); i++)                                       \
                for (j = (j0); j < D1__MIN(nr, (j0) + 16); j++) buf[(i - (r0)) * 16 + j - (j0)] = c[i * ldc + j]; \
            D1__TILE_LOADD(t, buf, 64);                                                            \
        }                                                                                          \
    } while (0)
#define D1__AMX_C_STORE(t, r0, j0)                                                                  \
    do {                                                                                           \
        if (mr >= (r0) + 16 && nr >= (j0) + 16) D1__TILE_STORED(t, c + (r0) * ldc + (j0), ldc * 4); \
        else if (mr > (r0) && nr > (j0)) {                                                         \
            D1__TILE_STORED(t, buf, 64);                                                           \
            for (i = (r0); i < D1__MIN(mr, (r0) + 16); i++)                                       \
                for (j = (j0); j < D1__MIN(nr, (j0) + 16); j++) c[i * ldc + j] = buf[(i - (r0)) * 16 + j - (j0)]; \
        }                                                                                          \
    } while (0)

/* c[mr,nr] (acc: c +) = a [32, kcp] (row stride lda) . b [kcp, 32] (row
   stride NR), for mr <= 32 (two A tiles when `two`, else rows 0-15 only),
   nr <= 32. The k steps of 16 pairs read a and b in place; the last, partial
   step (kcp % 16 pairs) reads brem (that step's rows of b, zero-padded to
   16 by the caller) and a copy of a's pairs zero-padded here, so no tile
   reads past the operands and the padding multiplies zeros only. Rows of a
   past mr are read (the caller's block has them: D1__AMX_MC) but never
   stored. */
D1__AMX_TARGET static inline __attribute__((always_inline)) void
d1__ukernel_bf16_amx_rows(int two, int kcp, const uint32_t *a, ptrdiff_t lda, const uint32_t *b,
                          const uint32_t *brem, float *c, ptrdiff_t ldc, int acc, int mr, int nr) {
    float buf[16 * 16] __attribute__((aligned(64)));
    uint32_t arem[32 * 16] __attribute__((aligned(64)));
    int kf = kcp - kcp % 16, q, i, j;
    D1__AMX_C_LOAD(0, 0, 0);
    D1__AMX_C_LOAD(1, 0, 16);
    if (two) {
        D1__AMX_C_LOAD(2, 16, 0);
        D1__AMX_C_LOAD(3, 16, 16);
    }
    for (q = 0; q < kcp; q += 16) {
        const uint32_t *ap = a + q, *bp = b + (size_t)q * D1__BF_NR;
        ptrdiff_t ast = lda * 4;
        if (q == kf) { /* the partial step */
            memset(arem, 0, sizeof arem);
            for (i = 0; i < (two ? 32 : 16); i++)
                for (j = 0; j < kcp - kf; j++) arem[i * 16 + j] = a[i * lda + q + j];
            ap = arem; ast = 64; bp = brem;
        }
        D1__TILE_LOADD(6, bp, D1__BF_NR * 4);
        D1__TILE_LOADD(7, bp + 16, D1__BF_NR * 4);
        D1__TILE_LOADD(4, ap, ast);
        D1__TILE_DP(0, 4, 6);
        D1__TILE_DP(1, 4, 7);
        if (two) {
            D1__TILE_LOADD(5, (const char *)ap + 16 * ast, ast);
            D1__TILE_DP(2, 5, 6);
            D1__TILE_DP(3, 5, 7);
        }
    }
    D1__AMX_C_STORE(0, 0, 0);
    D1__AMX_C_STORE(1, 0, 16);
    if (two) {
        D1__AMX_C_STORE(2, 16, 0);
        D1__AMX_C_STORE(3, 16, 16);
    }
}
#undef D1__AMX_C_LOAD
#undef D1__AMX_C_STORE

/* The rows of a converted A block from the packer's padding (to a multiple
   of MR) up to a multiple of 32 set to zero: the AMX kernel reads them. */
static void d1__amx_pad_rows(int mc, int kcp, uint32_t *Ap) {
    int i = (mc + D1__BF_MR - 1) / D1__BF_MR * D1__BF_MR, end = (mc + 31) / 32 * 32;
    for (; i < end; i++) memset(Ap + (size_t)i * kcp, 0, (size_t)kcp * sizeof(uint32_t));
}

/* d1__bf16_tiles with AMX: the tile configuration loaded once for the
   block (all eight tiles 16 rows x 64 bytes) and released at the end; per
   panel of W, its last partial step of k copied zero-padded (brem). The
   block a has its rows up to the next multiple of 32 (D1__AMX_MC). */
D1__AMX_TARGET static void d1__bf16_tiles_amx(int mc, int nc, int kcp, const uint32_t *a, const uint32_t *b,
                                              size_t panel, float *c, ptrdiff_t ldc, int acc) {
    uint32_t brem[16 * D1__BF_NR] __attribute__((aligned(64)));
    d1__tilecfg cfg;
    int kf = kcp - kcp % 16, t, jr, ir;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    D1__TILE_CONFIG(&cfg);
    for (jr = 0; jr < nc; jr += D1__BF_NR) {
        const uint32_t *bj = b + (size_t)(jr / D1__BF_NR) * panel;
        int nr = D1__MIN(D1__BF_NR, nc - jr);
        if (kf < kcp) {
            memset(brem, 0, sizeof brem);
            memcpy(brem, bj + (size_t)kf * D1__BF_NR, (size_t)(kcp - kf) * D1__BF_NR * sizeof(uint32_t));
        }
        for (ir = 0; ir < mc; ir += 32) {
            int mr = D1__MIN(32, mc - ir);
            const uint32_t *ai = a + (size_t)ir * kcp;
            float *cij = c + (ptrdiff_t)ir * ldc + jr;
            if (mr > 16) d1__ukernel_bf16_amx_rows(1, kcp, ai, kcp, bj, brem, cij, ldc, acc, mr, nr);
            else d1__ukernel_bf16_amx_rows(0, kcp, ai, kcp, bj, brem, cij, ldc, acc, mr, nr);
        }
    }
    D1__TILE_RELEASE();
}
#endif

#if defined(D1__BF16_NEON)
/* The same sums on Armv8.6 (FEAT_BF16). BFMLALT multiplies the odd (top)
   bfloat16 of each dword pair and adds it to the FP32 lane, BFMLALB the even
   (bottom) one: each one fused multiply-add rounded to nearest even, so
   "T then B" is the definition's order. Subnormals: FPCR.FZ, which
   d1__bf16_tiles sets while the kernel runs (d1__fz_on), flushes them in and
   out as vdpbf16ps does.
   (BFDOT and BFMMLA would do twice the work per instruction but round their
   two products' sum their own way, so they would not give the definition's
   bits.) The 12 x 32 tile runs as 2 x 2 sub-tiles of 6 rows x 16 columns:
   24 accumulators, 4 registers of W pairs, 1 broadcast A pair. A sub-tile
   wholly past mr or nr is skipped; a partial one goes through a buffer. */
#define D1__R6(X) X(0) X(1) X(2) X(3) X(4) X(5)
D1__BF16_NEON_TARGET static void d1__ukernel_bf16_neon_6x16(int kcp, const uint32_t *a, ptrdiff_t lda,
                                                            const uint32_t *b, float *c, ptrdiff_t ldc, int acc,
                                                            int mr, int nr) {
    float buf[6 * 16];
    int full = mr == 6 && nr == 16, i, j, q;
    float *t = full ? c : buf;
    ptrdiff_t ldt = full ? ldc : 16;
    if (!full) {
        memset(buf, 0, sizeof buf);
        if (acc)
            for (i = 0; i < mr; i++)
                for (j = 0; j < nr; j++) buf[i * 16 + j] = c[i * ldc + j];
    }
#define D1__DECL(i)                                                                                        \
    float32x4_t c##i##0 = vdupq_n_f32(0.0f), c##i##1 = c##i##0, c##i##2 = c##i##0, c##i##3 = c##i##0;     \
    if (acc) {                                                                                             \
        c##i##0 = vld1q_f32(t + i * ldt); c##i##1 = vld1q_f32(t + i * ldt + 4);                           \
        c##i##2 = vld1q_f32(t + i * ldt + 8); c##i##3 = vld1q_f32(t + i * ldt + 12);                      \
    }
    D1__R6(D1__DECL)
    for (q = 0; q < kcp; q++, b += D1__BF_NR) {
        bfloat16x8_t b0 = vreinterpretq_bf16_u32(vld1q_u32(b)), b1 = vreinterpretq_bf16_u32(vld1q_u32(b + 4));
        bfloat16x8_t b2 = vreinterpretq_bf16_u32(vld1q_u32(b + 8)), b3 = vreinterpretq_bf16_u32(vld1q_u32(b + 12));
#define D1__STEP(i)                                                                                        \
    {                                                                                                      \
        bfloat16x8_t ai = vreinterpretq_bf16_u32(vld1q_dup_u32(a + (i) * lda + q));                        \
        c##i##0 = vbfmlalbq_f32(vbfmlaltq_f32(c##i##0, ai, b0), ai, b0);                                   \
        c##i##1 = vbfmlalbq_f32(vbfmlaltq_f32(c##i##1, ai, b1), ai, b1);                                   \
        c##i##2 = vbfmlalbq_f32(vbfmlaltq_f32(c##i##2, ai, b2), ai, b2);                                   \
        c##i##3 = vbfmlalbq_f32(vbfmlaltq_f32(c##i##3, ai, b3), ai, b3);                                   \
    }
        D1__R6(D1__STEP)
    }
#define D1__SAVE(i)                                                                                        \
    vst1q_f32(t + i * ldt, c##i##0); vst1q_f32(t + i * ldt + 4, c##i##1);                                 \
    vst1q_f32(t + i * ldt + 8, c##i##2); vst1q_f32(t + i * ldt + 12, c##i##3);
    D1__R6(D1__SAVE)
#undef D1__DECL
#undef D1__STEP
#undef D1__SAVE
    if (!full)
        for (i = 0; i < mr; i++)
            for (j = 0; j < nr; j++) c[i * ldc + j] = buf[i * 16 + j];
}
#undef D1__R6

/* The 12 x 32 tile (d1__ukernel_bf16_scalar's contract) as its sub-tiles. */
static void d1__ukernel_bf16_neon(int kcp, const uint32_t *a, ptrdiff_t lda, const uint32_t *b, float *c,
                                  ptrdiff_t ldc, int acc, int mr, int nr) {
    int r, j;
    for (r = 0; r < mr; r += 6)
        for (j = 0; j < nr; j += 16)
            d1__ukernel_bf16_neon_6x16(kcp, a + r * lda, lda, b + j, c + r * ldc + j, ldc, acc, D1__MIN(6, mr - r),
                                       D1__MIN(16, nr - j));
}

/* d1__bf16_round on four floats (their bits), in the low half of each lane */
static uint32x4_t d1__bf16_round4(uint32x4_t u) {
    uint32x4_t hi = vshrq_n_u32(u, 16);
    uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffffu)), vdupq_n_u32(0x7f800000u));
    uint32x4_t sub = vceqq_u32(vandq_u32(u, vdupq_n_u32(0x7f800000u)), vdupq_n_u32(0));
    uint32x4_t r = vshrq_n_u32(vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fffu), vandq_u32(hi, vdupq_n_u32(1)))), 16);
    r = vbslq_u32(nan, vorrq_u32(hi, vdupq_n_u32(0x40)), r);
    return vbslq_u32(sub, vandq_u32(hi, vdupq_n_u32(0x8000u)), r);
}
/* d1__bf16_pack_a_scalar, 8 floats (4 pairs) of a row per step: the rounded
   halves narrowed in order are the pairs (little-endian). */
static void d1__bf16_pack_a_neon(int mc, int kc, const float *A, ptrdiff_t lda, uint32_t *Ap) {
    int kcp = (kc + 1) / 2, i, q;
    for (i = 0; i < mc; i++) {
        const float *row = A + (ptrdiff_t)i * lda;
        uint32_t *dst = Ap + (size_t)i * kcp;
        for (q = 0; 2 * q + 8 <= kc; q += 4) {
            uint16x4_t lo = vmovn_u32(d1__bf16_round4(vreinterpretq_u32_f32(vld1q_f32(row + 2 * q))));
            uint16x4_t up = vmovn_u32(d1__bf16_round4(vreinterpretq_u32_f32(vld1q_f32(row + 2 * q + 4))));
            vst1q_u32(dst + q, vreinterpretq_u32_u16(vcombine_u16(lo, up)));
        }
        for (; q < kcp; q++) dst[q] = d1__bf16_pair(row, 2 * q, kc);
    }
    for (; i % D1__BF_MR; i++) memset(Ap + (size_t)i * kcp, 0, (size_t)kcp * sizeof(uint32_t));
}

/* FPCR.FZ (bit 24) on for the BF16 kernels' flush-to-zero; returns the old
   FPCR for d1__fz_restore. */
static uint64_t d1__fz_on(void) {
    uint64_t old;
    __asm__ volatile("mrs %0, fpcr" : "=r"(old));
    __asm__ volatile("msr fpcr, %0" : : "r"(old | (1ull << 24)));
    return old;
}
static void d1__fz_restore(uint64_t old) { __asm__ volatile("msr fpcr, %0" : : "r"(old)); }
#define D1__UKERNEL_BF16_SIMD d1__ukernel_bf16_neon
#elif defined(D1__BF16_AVX)
#define D1__UKERNEL_BF16_SIMD d1__ukernel_bf16_avx512
#endif

/* The tiles of one block: c[mc,nc] (acc: c +) = the converted A block a
   (mc rows of kcp pairs, row-major) . the packed panels b (panel p, the
   columns p*NR.., at b + p*panel), by the micro-kernel simd chooses. Both
   BF16 GEMMs end here; they differ only in where their panels come from. */
static void d1__bf16_tiles(int mc, int nc, int kcp, const uint32_t *a, const uint32_t *b, size_t panel, float *c,
                           ptrdiff_t ldc, int acc, int simd) {
    int jr, ir;
#if !defined(D1__BF16_SIMD)
    (void)simd;
#endif
#if defined(D1__AMX)
    if (simd == 2) {
        d1__bf16_tiles_amx(mc, nc, kcp, a, b, panel, c, ldc, acc);
        return;
    }
#endif
#if defined(D1__BF16_NEON)
    uint64_t fpcr = simd ? d1__fz_on() : 0; /* the NEON kernel's flush-to-zero, for these tiles */
#endif
    for (jr = 0; jr < nc; jr += D1__BF_NR)
        for (ir = 0; ir < mc; ir += D1__BF_MR) {
            int mr = D1__MIN(D1__BF_MR, mc - ir), nr = D1__MIN(D1__BF_NR, nc - jr);
            const uint32_t *ai = a + (size_t)ir * kcp, *bj = b + (size_t)(jr / D1__BF_NR) * panel;
            float *cij = c + (ptrdiff_t)ir * ldc + jr;
#if defined(D1__BF16_SIMD)
            if (simd) D1__UKERNEL_BF16_SIMD(kcp, ai, kcp, bj, cij, ldc, acc, mr, nr);
            else
#endif
                d1__ukernel_bf16_scalar(kcp, ai, kcp, bj, cij, ldc, acc, mr, nr);
        }
#if defined(D1__BF16_NEON)
    if (simd) d1__fz_restore(fpcr);
#endif
}

/* The blocked BF16 GEMM on one thread: C[M,N] = A[M,K] . W^T from W packed by
   d1__bf16_pack_w (all N columns, K = the width it was packed with); ws holds
   D1__BF_WS uint32s (64-aligned); simd: 1 runs the vector kernels, AVX512-BF16 or NEON, 2 AMX (the
   caller checked d1__cpu_bf16), 0 the scalar ones. */
static void d1__gemm_bf16(int M, int N, int K, const float *A, ptrdiff_t lda, const uint32_t *Wp, float *C,
                          ptrdiff_t ldc, uint32_t *ws, int simd) {
    int Kp = (K + 1) / 2, pc, ic, i, mcb = D1__BF_MC, kcb = D1__BF_KC;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
#if !defined(D1__BF16_SIMD)
    (void)simd;
#endif
#if defined(D1__AMX)
    if (simd == 2) mcb = D1__AMX_MC;
#endif
    /* A pass over a few tokens (M <= 8: the kernel's 4- and 8-row bodies, bound by reading W)
       takes K in one slice, or as much of it as the scratch holds, so that each W panel is read
       end to end instead of in KC-pair pieces a panel apart: 1.35-1.5x on a 100 MB W at M 1
       and 8 (Zen 4, one core). The sums are the same: a slice continues them from C, and the
       vector kernels' chain is one vdpbf16ps after another whatever the slices (AMX's grouping
       of 16 pairs could round differently, so it keeps KC). */
    if (M <= 8 && simd != 2) {
        long rows = (M + D1__BF_MR - 1) / D1__BF_MR * D1__BF_MR, fit = (long)(D1__BF_WS / (size_t)rows) * 2;
        kcb = fit >= K ? K : (int)D1__MAX(D1__BF_KC, fit & ~1L);
    }
    for (pc = 0; pc < K; pc += kcb) {
        int kc = D1__MIN(kcb, K - pc), kcp = (kc + 1) / 2;
        for (ic = 0; ic < M; ic += mcb) {
            int mc = D1__MIN(mcb, M - ic);
#if defined(D1__BF16_AVX)
            if (simd) d1__bf16_pack_a_avx512(mc, kc, A + ic * lda + pc, lda, ws);
            else
#elif defined(D1__BF16_NEON)
            if (simd) d1__bf16_pack_a_neon(mc, kc, A + ic * lda + pc, lda, ws);
            else
#endif
                d1__bf16_pack_a_scalar(mc, kc, A + ic * lda + pc, lda, ws);
#if defined(D1__AMX)
            if (simd == 2) d1__amx_pad_rows(mc, kcp, ws);
#endif
            d1__bf16_tiles(mc, N, kcp, ws, Wp + (size_t)(pc / 2) * D1__BF_NR, (size_t)D1__BF_NR * Kp,
                           C + (ptrdiff_t)ic * ldc, ldc, pc > 0, simd);
        }
    }
}

/* The BF16 GEMM across the pool, cut like d1__gemm_task: by rows of C (in
   MR multiples), or for a wide C by NR-column panels of W. Each element is
   one chain of sums, so results do not depend on the thread count. */
typedef struct d1__gemm_bf16_args {
    int M, N, K, simd;
    const float *A;
    const uint32_t *Wp;
    float *C;
    ptrdiff_t lda, ldc;
    d1__ctx *cx;
} d1__gemm_bf16_args;

static void d1__gemm_bf16_task(void *p, int ith, int nth) {
    d1__gemm_bf16_args *g = (d1__gemm_bf16_args *)p;
    uint32_t *ws = (uint32_t *)g->cx->ws[ith];
    int lo, hi;
    if (g->M >= g->N || g->N < nth * D1__BF_NR) {
        d1__split(g->M, D1__BF_MR, ith, nth, &lo, &hi);
        d1__gemm_bf16(hi - lo, g->N, g->K, g->A + lo * g->lda, g->lda, g->Wp, g->C + lo * g->ldc, g->ldc, ws, g->simd);
    } else {
        d1__split(g->N, D1__BF_NR, ith, nth, &lo, &hi);
        d1__gemm_bf16(g->M, hi - lo, g->K, g->A, g->lda, g->Wp + (size_t)lo * ((g->K + 1) / 2), g->C + lo, g->ldc, ws,
                      g->simd);
    }
}

static void d1__gemm_bf16_mt(d1__ctx *cx, int M, int N, int K, const float *A, ptrdiff_t lda, const uint32_t *Wp,
                             float *C, ptrdiff_t ldc, int simd) {
    d1__gemm_bf16_args g;
    g.M = M; g.N = N; g.K = K; g.simd = simd; g.A = A; g.Wp = Wp; g.C = C; g.lda = lda; g.ldc = ldc; g.cx = cx;
    if (cx->pool->n == 1 || (double)M * N * K < 65536.0)
        d1__gemm_bf16_task(&g, 0, 1);
    else
        d1__parallel(cx->pool, d1__gemm_bf16_task, &g);
}

/* ---- BF16 GEMM (mixed-precision training) --------------------------------------
   C[M,N] (acc: C +) = A[M,K] . B[K,N], each operand given by its (row stride,
   column stride) as d1__gemm takes them, both rounded to BF16 while packed,
   the sums as d1__gemm_bf16's (with acc the chain starts from C's value).
   This is the GEMM of D1_PRECISION_BF16_MIXED's backward pass, whose
   operands are activations and gradients that change every call: B is
   packed per KC x NC block (as the FP32 GEMM packs it), not once per model.
   The same bits as d1__gemm_bf16_ref on the materialised matrices, whatever
   the strides, the kernel and the thread count (tests/test_bf16.c). */
#ifndef D1__BF_NC
#define D1__BF_NC 3072
#endif
#if D1__BF_NC % D1__BF_NR || D1__BF_NC <= 0
#error "D1__BF_NC must be a multiple of 32"
#endif
/* the scratch of one thread: an A block, then a B block (uint32 pairs) */
#define D1__BF_GS_WS (D1__BF_WS + (size_t)(D1__BF_KC / 2) * D1__BF_NC)

/* A[.., k0..k0+kc) of mc rows at any strides, converted as
   d1__bf16_pack_a_scalar converts a row-major one. */
static void d1__bf16_pack_a_gs(int mc, int kc, const float *A, ptrdiff_t rsa, ptrdiff_t csa, uint32_t *Ap) {
    int kcp = (kc + 1) / 2, i, q;
    for (i = 0; i < mc; i++)
        for (q = 0; q < kcp; q++) {
            const float *a = A + (ptrdiff_t)i * rsa + (ptrdiff_t)(2 * q) * csa;
            Ap[(size_t)i * kcp + q] =
                (uint32_t)d1__bf16_round(a[0]) | (2 * q + 1 < kc ? (uint32_t)d1__bf16_round(a[csa]) << 16 : 0u);
        }
    for (; i % D1__BF_MR; i++) memset(Ap + (size_t)i * kcp, 0, (size_t)kcp * sizeof(uint32_t));
}
/* B[k0..k0+kc, j0..j0+nc) at any strides into panels of NR columns, pairs of
   k (d1__bf16_pack_w's layout for this block: panel p at Bp + p*NR*kcp);
   columns past nc are zero. */
static void d1__bf16_pack_b_gs(int kc, int nc, const float *B, ptrdiff_t rsb, ptrdiff_t csb, uint32_t *Bp) {
    int kcp = (kc + 1) / 2, p, q, j;
    for (p = 0; p < nc; p += D1__BF_NR)
        for (q = 0; q < kcp; q++) {
            uint32_t *dst = Bp + (size_t)p * kcp + (size_t)q * D1__BF_NR;
            const float *b0 = B + (ptrdiff_t)(2 * q) * rsb, *b1 = b0 + rsb;
            for (j = 0; j < D1__BF_NR; j++) {
                ptrdiff_t o = (ptrdiff_t)(p + j) * csb;
                dst[j] = p + j >= nc ? 0u
                                     : (uint32_t)d1__bf16_round(b0[o]) |
                                           (2 * q + 1 < kc ? (uint32_t)d1__bf16_round(b1[o]) << 16 : 0u);
            }
        }
}

#if defined(D1__BF16_AVX)
/* 16 pairs (x0[j], x1[j]) of two rows of floats as one vector of dwords:
   bf16(x0) in the low half of each, bf16(x1) in the high half. */
D1__BF16_TARGET static __m512i d1__bf16_pairs16(__m512 x0, __m512 x1) {
    __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x0));
    __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x1));
    return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}
/* d1__bf16_pack_b_gs for columns one float apart (csb 1: B row-major, the
   backward's weights and activations): 16 columns per conversion. */
D1__BF16_TARGET static void d1__bf16_pack_b_rows_avx512(int kc, int nc, const float *B, ptrdiff_t rsb,
                                                       uint32_t *Bp) {
    int kcp = (kc + 1) / 2, p, q, j;
    for (p = 0; p < nc; p += D1__BF_NR)
        for (q = 0; q < kcp; q++) {
            uint32_t *dst = Bp + (size_t)p * kcp + (size_t)q * D1__BF_NR;
            const float *b0 = B + (ptrdiff_t)(2 * q) * rsb + p, *b1 = b0 + rsb;
            int odd = 2 * q + 1 < kc;
            for (j = 0; j < D1__BF_NR; j += 16) {
                int left = nc - p - j;
                __mmask16 l = (__mmask16)(left >= 16 ? 0xFFFF : left <= 0 ? 0 : (1u << left) - 1);
                __m512 x0 = _mm512_maskz_loadu_ps(l, b0 + j);
                __m512 x1 = odd ? _mm512_maskz_loadu_ps(l, b1 + j) : _mm512_setzero_ps();
                _mm512_store_si512((void *)(dst + j), _mm512_maskz_mov_epi32(l, d1__bf16_pairs16(x0, x1)));
            }
        }
}
/* d1__bf16_pack_b_gs for rows one float apart (rsb 1: B is a transposed
   row-major matrix, K^T of attention's scores): each column's pairs are
   adjacent floats, converted 16 pairs at a time as d1__bf16_pack_a_avx512
   converts a row, then scattered NR apart into the panel. */
D1__BF16_TARGET static void d1__bf16_pack_b_cols_avx512(int kc, int nc, const float *B, ptrdiff_t csb,
                                                       uint32_t *Bp) {
    int kcp = (kc + 1) / 2, p, j, q;
    __m512i at = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                    _mm512_set1_epi32(D1__BF_NR));
    for (p = 0; p < nc; p += D1__BF_NR)
        for (j = 0; j < D1__BF_NR; j++) {
            uint32_t *dst = Bp + (size_t)p * kcp + j;
            const float *col = B + (ptrdiff_t)(p + j) * csb;
            if (p + j >= nc) {
                for (q = 0; q < kcp; q++) dst[(size_t)q * D1__BF_NR] = 0u;
                continue;
            }
            for (q = 0; q < kcp; q += 16) {
                int left = kc - 2 * q, n = D1__MIN(16, kcp - q);
                __mmask16 l0 = (__mmask16)(left >= 16 ? 0xFFFF : (1u << left) - 1);
                __mmask16 l1 = (__mmask16)(left >= 32 ? 0xFFFF : left <= 16 ? 0 : (1u << (left - 16)) - 1);
                __m512 x0 = _mm512_maskz_loadu_ps(l0, col + 2 * q), x1 = _mm512_maskz_loadu_ps(l1, col + 2 * q + 16);
                _mm512_mask_i32scatter_epi32((void *)(dst + (size_t)q * D1__BF_NR), (__mmask16)((1u << n) - 1), at,
                                             (__m512i)_mm512_cvtne2ps_pbh(x1, x0), 4);
            }
        }
}
/* d1__bf16_pack_a_gs for rows one float apart (rsa 1: A is a transposed
   row-major matrix, dout^T of the weight gradient): 16 rows per conversion,
   scattered to their rows of the block. */
D1__BF16_TARGET static void d1__bf16_pack_a_cols_avx512(int mc, int kc, const float *A, ptrdiff_t csa,
                                                       uint32_t *Ap) {
    int kcp = (kc + 1) / 2, i, q;
    __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                      _mm512_set1_epi32(kcp));
    for (i = 0; i < mc; i += 16) {
        __mmask16 l = (__mmask16)(mc - i >= 16 ? 0xFFFF : (1u << (mc - i)) - 1);
        for (q = 0; q < kcp; q++) {
            const float *a0 = A + i + (ptrdiff_t)(2 * q) * csa;
            __m512 x0 = _mm512_maskz_loadu_ps(l, a0);
            __m512 x1 = 2 * q + 1 < kc ? _mm512_maskz_loadu_ps(l, a0 + csa) : _mm512_setzero_ps();
            _mm512_mask_i32scatter_epi32((void *)(Ap + (size_t)i * kcp + q), l, rows, d1__bf16_pairs16(x0, x1), 4);
        }
    }
    for (i = mc; i % D1__BF_MR; i++) memset(Ap + (size_t)i * kcp, 0, (size_t)kcp * sizeof(uint32_t));
}
#endif

/* The general-stride BF16 GEMM on one thread; ws holds D1__BF_GS_WS uint32s
   (64-aligned). */
static void d1__gemm_bf16_gs(int M, int N, int K, const float *A, ptrdiff_t rsa, ptrdiff_t csa, const float *B,
                             ptrdiff_t rsb, ptrdiff_t csb, float *C, ptrdiff_t ldc, int acc, uint32_t *ws,
                             int simd) {
    uint32_t *wa = ws, *wb = ws + D1__BF_WS;
    int jc, pc, ic, i, mcb = D1__BF_MC;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!acc)
            for (i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
#if !defined(D1__BF16_SIMD)
    (void)simd;
#endif
#if defined(D1__AMX)
    if (simd == 2) mcb = D1__AMX_MC;
#endif
    for (jc = 0; jc < N; jc += D1__BF_NC) {
        int nc = D1__MIN(D1__BF_NC, N - jc);
        for (pc = 0; pc < K; pc += D1__BF_KC) {
            int kc = D1__MIN(D1__BF_KC, K - pc), kcp = (kc + 1) / 2;
            const float *Bb = B + pc * rsb + jc * csb;
#if defined(D1__BF16_AVX)
            if (simd && csb == 1) d1__bf16_pack_b_rows_avx512(kc, nc, Bb, rsb, wb);
            else if (simd && rsb == 1) d1__bf16_pack_b_cols_avx512(kc, nc, Bb, csb, wb);
            else
#endif
                d1__bf16_pack_b_gs(kc, nc, Bb, rsb, csb, wb);
            for (ic = 0; ic < M; ic += mcb) {
                int mc = D1__MIN(mcb, M - ic);
                const float *Ab = A + ic * rsa + pc * csa;
#if defined(D1__BF16_AVX)
                if (simd && csa == 1) d1__bf16_pack_a_avx512(mc, kc, Ab, rsa, wa);
                else if (simd && rsa == 1) d1__bf16_pack_a_cols_avx512(mc, kc, Ab, csa, wa);
                else
#elif defined(D1__BF16_NEON)
                if (simd && csa == 1) d1__bf16_pack_a_neon(mc, kc, Ab, rsa, wa);
                else
#endif
                    d1__bf16_pack_a_gs(mc, kc, Ab, rsa, csa, wa);
#if defined(D1__AMX)
                if (simd == 2) d1__amx_pad_rows(mc, kcp, wa);
#endif
                d1__bf16_tiles(mc, nc, kcp, wa, wb, (size_t)D1__BF_NR * kcp, C + (ptrdiff_t)ic * ldc + jc, ldc,
                               acc || pc > 0, simd);
            }
        }
    }
}

/* d1__gemm_bf16_gs across the pool, cut as d1__gemm_task cuts d1__gemm. */
static void d1__gemm_bf16_gs_task(void *p, int ith, int nth) {
    d1__gemm_args *g = (d1__gemm_args *)p;
    uint32_t *ws = (uint32_t *)g->cx->ws[ith];
    int lo, hi;
    if (g->M >= g->N || g->N < nth * D1__BF_NR) {
        d1__split(g->M, D1__BF_MR, ith, nth, &lo, &hi);
        d1__gemm_bf16_gs(hi - lo, g->N, g->K, g->A + lo * g->rsa, g->rsa, g->csa, g->B, g->rsb, g->csb,
                         g->C + lo * g->ldc, g->ldc, g->acc, ws, g->simd);
    } else {
        d1__split(g->N, D1__BF_NR, ith, nth, &lo, &hi);
        d1__gemm_bf16_gs(g->M, hi - lo, g->K, g->A, g->rsa, g->csa, g->B + lo * g->csb, g->rsb, g->csb, g->C + lo,
                         g->ldc, g->acc, ws, g->simd);
    }
}

static void d1__gemm_bf16_gs_mt(d1__ctx *cx, int M, int N, int K, const float *A, ptrdiff_t rsa, ptrdiff_t csa,
                                const float *B, ptrdiff_t rsb, ptrdiff_t csb, float *C, ptrdiff_t ldc, int acc,
                                int simd) {
    d1__gemm_args g;
    g.M = M; g.N = N; g.K = K; g.acc = acc; g.simd = simd; g.A = A; g.B = B; g.C = C;
    g.rsa = rsa; g.csa = csa; g.rsb = rsb; g.csb = csb; g.ldc = ldc; g.cx = cx;
    if (cx->pool->n == 1 || (double)M * N * K < 65536.0)
        d1__gemm_bf16_gs_task(&g, 0, 1);
    else
        d1__parallel(cx->pool, d1__gemm_bf16_gs_task, &g);
}

// >>layers --------------------------------------------------------------------

/* matmul (a linear layer without bias):  out[N,O] = inp[N,I] . w[O,I]^T */
static void d1__matmul_forward(d1__ctx *cx, float *out, const float *inp, const float *w, int N,
                               int I, int O) {
    d1__gemm_mt(cx, N, O, I, inp, I, 1, w, 1, I, out, O, 0);
}
/* dinp[N,I] = dout[N,O] . w[O,I]   (written)
   dw[O,I]  += dout^T . inp         (accumulated; skipped when dw is NULL: frozen) */
static void d1__matmul_backward(d1__ctx *cx, float *dinp, float *dw, const float *dout,
                                const float *inp, const float *w, int N, int I, int O) {
    d1__gemm_mt(cx, N, I, O, dout, O, 1, w, I, 1, dinp, I, 0);
    if (dw) d1__gemm_mt(cx, O, I, N, dout, 1, O, inp, I, 1, dw, I, 1);
}

/* embedding:  out[n,:] = wte[tok[n],:]      (no scaling, no positions) */
static void d1__embed_forward(float *out, const int *tok, const float *wte, int N, int C) {
    int n;
    for (n = 0; n < N; n++) memcpy(out + (size_t)n * C, wte + (size_t)tok[n] * C, (size_t)C * sizeof(float));
}
/* dwte[tok[n],:] += dout[n,:], in token order (a fixed summation order) */
static void d1__embed_backward(float *dwte, const float *dout, const int *tok, int N, int C) {
    int n, c;
    for (n = 0; n < N; n++) {
        float *d = dwte + (size_t)tok[n] * C;
        const float *g = dout + (size_t)n * C;
        for (c = 0; c < C; c++) d[c] += g[c];
    }
}

/* RMSNorm:  rstd[n] = 1 / sqrt(mean_c x[n,c]^2 + eps),  out[n,c] = x[n,c] rstd[n] w[c] */
static void d1__rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N,
                                int C, float eps) {
    int n, c;
    for (n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C;
        float *on = out + (size_t)n * C;
        float r = 1.0f / sqrtf(d1__dot(xn, xn, C) / (float)C + eps);
        for (c = 0; c < C; c++) on[c] = xn[c] * r * w[c];
        rstd[n] = r;
    }
}
/* With g = dout ⊙ w and r = rstd[n]:
     dx[n]  = r g - x[n] r^3 (g . x[n]) / C         (written)
     dw    += sum_n dout[n] ⊙ x[n] r                (accumulated; dw NULL: frozen) */
static void d1__rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x,
                                 const float *w, const float *rstd, int N, int C) {
    int n, c;
    for (n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C, *dn = dout + (size_t)n * C;
        float *dxn = dx + (size_t)n * C, r = rstd[n], gx = 0.0f, k;
        for (c = 0; c < C; c++) gx += dn[c] * w[c] * xn[c];
        k = r * r * r * gx / (float)C;
        for (c = 0; c < C; c++) {
            dxn[c] = r * dn[c] * w[c] - k * xn[c];
            if (dw) dw[c] += dn[c] * xn[c] * r;
        }
    }
}

/* RoPE, rotate-half layout (Hugging Face / NeoX), in place on n_heads heads of
   width D in each row of x (row stride ld); row n holds position t = pos0 + n % T:
     x'[i]       = x[i] cos(t f_i) - x[i+D/2] sin(t f_i)
     x'[i+D/2]   = x[i+D/2] cos(t f_i) + x[i] sin(t f_i),    f_i = theta^(-2i/D)
   cos_t, sin_t: [>= pos0 + T, D/2]. sign = +1 rotates (forward); sign = -1
   rotates back, which is the backward pass (the rotation is orthogonal). */
static void d1__rope(float *x, int ld, int N, int T, int pos0, int n_heads, int D, const float *cos_t,
                     const float *sin_t, float sign) {
    int n, h, i, half = D / 2;
    for (n = 0; n < N; n++) {
        size_t t = (size_t)(pos0 + n % T);
        const float *cs = cos_t + t * half, *sn = sin_t + t * half;
        for (h = 0; h < n_heads; h++) {
            float *a = x + (size_t)n * ld + h * D, *b = a + half;
            for (i = 0; i < half; i++) {
                float x1 = a[i], x2 = b[i], s = sign * sn[i];
                a[i] = x1 * cs[i] - x2 * s;
                b[i] = x2 * cs[i] + x1 * s;
            }
        }
    }
}

/* Attention, bidirectional (no causal mask), GQA. For each sequence b and
   query head h, with kv head g = h / (H/KV):
     att[b,h] = softmax(Q_h K_g^T / sqrt(D) + M_b)     [Tq,Tk], M_b = -inf at masked keys
     y[b,:,h*D:(h+1)*D] = att[b,h] V_g                  y: [B*Tq, C]
   Query row (b,i) of head h is at q + (b*Tq + i)*ldq + h*D; key / value row
   (b,j) of head g at k / v + (b*Tk + j)*ldk + g*D. In training q, k and v are
   the three column blocks of one qkv row (Tq = Tk = T); the sampler's KV
   cache passes suffix queries against cached keys (Tq < Tk). */
typedef struct d1__attn_args {
    const float *q, *k, *v, *att, *dy;
    float *att_w, *y, *dqkv;
    const uint8_t *key_mask;   /* [B, Tk] or NULL */
    int B, Tq, Tk, ldq, ldk, H, KV, D;
    int bf16, simd;            /* forward: both products as BF16 GEMMs (d1__gemm_bf16_gs), by kernel simd */
    d1__ctx *cx;
} d1__attn_args;

static void d1__attention_forward_task(void *p, int ith, int nth) {
    d1__attn_args *a = (d1__attn_args *)p;
    int Tq = a->Tq, Tk = a->Tk, D = a->D, C = a->H * D, bh, i, j;
    float scale = 1.0f / sqrtf((float)D);
    for (bh = ith; bh < a->B * a->H; bh += nth) {
        int b = bh / a->H, h = bh % a->H, g = h / (a->H / a->KV);
        const float *q = a->q + (size_t)b * Tq * a->ldq + h * D;
        const float *k = a->k + (size_t)b * Tk * a->ldk + g * D;
        const float *v = a->v + (size_t)b * Tk * a->ldk + g * D;
        float *S = a->att_w + (size_t)bh * Tq * Tk;
        if (a->bf16) /* S = Q K^T */
            d1__gemm_bf16_gs(Tq, Tk, D, q, a->ldq, 1, k, 1, a->ldk, S, Tk, 0, (uint32_t *)a->cx->ws[ith], a->simd);
        else
            d1__gemm(Tq, Tk, D, q, a->ldq, 1, k, 1, a->ldk, S, Tk, 0, a->cx->ws[ith]);
        for (i = 0; i < Tq; i++) {
            float *row = S + (size_t)i * Tk, mx, sum;
            if (a->key_mask)
                for (j = 0; j < Tk; j++)
                    if (!a->key_mask[(size_t)b * Tk + j]) row[j] = -INFINITY;
            mx = d1__max(row, Tk);
            sum = d1__vexp(row, row, Tk, scale, scale * mx);
            for (j = 0; j < Tk; j++) row[j] /= sum;
        }
        if (a->bf16) /* y_h = P V */
            d1__gemm_bf16_gs(Tq, D, Tk, S, Tk, 1, v, a->ldk, 1, a->y + (size_t)b * Tq * C + h * D, C, 0,
                             (uint32_t *)a->cx->ws[ith], a->simd);
        else
            d1__gemm(Tq, D, Tk, S, Tk, 1, v, a->ldk, 1, a->y + (size_t)b * Tq * C + h * D, C, 0, a->cx->ws[ith]);
    }
}

/* Backward (training layout: Tq = Tk = T, q/k/v in one qkv row of width
   ldq = ldk = QW), for each (b, g) and the heads h of group g in order:
     dP = dY_h V_g^T;  dS = P ⊙ (dP - rowsum(dP ⊙ P)) / sqrt(D)
     dQ_h = dS K_g  (written);  dK_g = sum_h dS^T Q_h;  dV_g = sum_h P^T dY_h
   dqkv [N, QW] is written. Scratch: T*T floats after the GEMM workspace. */
static void d1__attention_backward_task(void *p, int ith, int nth) {
    d1__attn_args *a = (d1__attn_args *)p;
    int T = a->Tq, D = a->D, C = a->H * D, QW = a->ldq, per = a->H / a->KV;
    int bg, hh, i;
    float scale = 1.0f / sqrtf((float)D), *ws = a->cx->ws[ith], *dS = ws + D1__GEMM_WS;
    for (bg = ith; bg < a->B * a->KV; bg += nth) {
        int b = bg / a->KV, g = bg % a->KV;
        const float *base = a->q + (size_t)b * T * QW;
        const float *k = base + C + g * D, *v = k + a->KV * D;
        float *dbase = a->dqkv + (size_t)b * T * QW, *dk = dbase + C + g * D, *dv = dk + a->KV * D;
        for (hh = 0; hh < per; hh++) {
            int h = g * per + hh;
            const float *q = base + h * D, *P = a->att + ((size_t)b * a->H + h) * T * T;
            const float *dy = a->dy + (size_t)b * T * C + h * D;
            d1__gemm(T, T, D, dy, C, 1, v, 1, QW, dS, T, 0, ws); /* dP = dY V^T */
            for (i = 0; i < T; i++) {
                const float *Pi = P + (size_t)i * T;
                float *di = dS + (size_t)i * T, s = d1__dot(di, Pi, T);
                int j;
                for (j = 0; j < T; j++) di[j] = Pi[j] * (di[j] - s) * scale;
            }
            d1__gemm(T, D, T, dS, T, 1, k, QW, 1, dbase + h * D, QW, 0, ws);  /* dQ = dS K   */
            d1__gemm(T, D, T, dS, 1, T, q, QW, 1, dk, QW, hh > 0, ws);        /* dK += dS^T Q */
            d1__gemm(T, D, T, P, 1, T, dy, C, 1, dv, QW, hh > 0, ws);         /* dV += P^T dY */
        }
    }
}

/* SiLU-gated MLP activation. Rows of gu [N, 2F] hold [g (ff_proj) | u (up_proj)]:
     h[n,f] = silu(g) u,   silu(g) = g σ(g),   σ(g) = 1 / (1 + exp(-g))      */
typedef struct d1__swiglu_args {
    float *out;
    const float *gu, *dh;
    int N, F;
    d1__ctx *cx;
} d1__swiglu_args;

static void d1__swiglu_forward_task(void *p, int ith, int nth) {
    d1__swiglu_args *a = (d1__swiglu_args *)p;
    int F = a->F, lo, hi, n, f;
    float *e = a->cx->ws[ith];
    d1__split(a->N, 1, ith, nth, &lo, &hi);
    for (n = lo; n < hi; n++) {
        const float *g = a->gu + (size_t)n * 2 * F, *u = g + F;
        float *h = a->out + (size_t)n * F;
        d1__vexp(e, g, F, -1.0f, 0.0f); /* e = exp(-g) */
        for (f = 0; f < F; f++) h[f] = g[f] / (1.0f + e[f]) * u[f];
    }
}
/* dg = dh u σ(g) (1 + g (1 - σ(g))),   du = dh silu(g)     (dgu [N,2F] written) */
static void d1__swiglu_backward_task(void *p, int ith, int nth) {
    d1__swiglu_args *a = (d1__swiglu_args *)p;
    int F = a->F, lo, hi, n, f;
    float *e = a->cx->ws[ith];
    d1__split(a->N, 1, ith, nth, &lo, &hi);
    for (n = lo; n < hi; n++) {
        const float *g = a->gu + (size_t)n * 2 * F, *u = g + F, *dh = a->dh + (size_t)n * F;
        float *dg = a->out + (size_t)n * 2 * F, *du = dg + F;
        d1__vexp(e, g, F, -1.0f, 0.0f);
        for (f = 0; f < F; f++) {
            float s = 1.0f / (1.0f + e[f]);
            dg[f] = dh[f] * u[f] * s * (1.0f + g[f] * (1.0f - s));
            du[f] = dh[f] * g[f] * s;
        }
    }
}

/* Weighted cross-entropy over rows of logits [N,V] with targets y[N]:
     loss    = sum_n w[n] (logsumexp(logits[n]) - logits[n, y[n]])
     dlogits[n] = w[n] (softmax(logits[n]) - onehot(y[n]))
   Rows with w[n] == 0 cost nothing and get a zero gradient. dlogits may alias
   logits. The loss is summed in double, in row order. */
static double d1__cross_entropy(float *dlogits, const float *logits, const int *y, const float *w,
                                int N, int V) {
    double loss = 0.0;
    int n, v;
    for (n = 0; n < N; n++) {
        const float *row = logits + (size_t)n * V;
        float *d = dlogits + (size_t)n * V, target, mx, sum;
        if (w[n] == 0.0f) {
            memset(d, 0, (size_t)V * sizeof(float));
            continue;
        }
        target = row[y[n]];
        mx = d1__max(row, V);
        sum = d1__vexp(d, row, V, 1.0f, mx);
        loss += (double)w[n] * ((double)mx + log((double)sum) - (double)target);
        for (v = 0; v < V; v++) d[v] *= w[n] / sum;
        d[y[n]] -= w[n];
    }
    return loss;
}

// >>model ---------------------------------------------------------------------

/* What a forward pass keeps for the backward pass, for N = B*T tokens, and the
   backward pass's scratch; carved from one buffer sized for the largest (B,T)
   seen, so steady-state training allocates nothing. */
typedef struct d1__acts {
    float *x;       /* [L+1, N, C] residual stream entering each layer; x[L] leaves the last */
    float *n1;      /* [L, N, C]   RMSNorm(x) attn_norm                                   */
    float *r1;      /* [L, N]      its 1/rms                                               */
    float *qkv;     /* [L, N, QW]  [q | k | v], q and k rotated by RoPE                    */
    float *att;     /* [L, B, H, T, T] attention probabilities                             */
    float *y;       /* [L, N, C]   attention output, heads concatenated                    */
    float *xa;      /* [L, N, C]   x + attn_out(y)                                         */
    float *n2;      /* [L, N, C]   RMSNorm(xa) ff_norm                                    */
    float *r2;      /* [L, N]                                                              */
    float *gu;      /* [L, N, 2F]  [gate | up] pre-activations                             */
    float *hm;      /* [L, N, F]   silu(gate) * up                                         */
    float *nf;      /* [N, C]      RMSNorm(x[L]) ln_f                                      */
    float *rf;      /* [N]                                                                 */
    float *logits;  /* [N, V]                                                              */
    float *dlogits; /* [N, V]      the losses write their gradient here                    */
    float *dres;    /* [N, C]      gradient of the residual stream                        */
    float *dA, *dB; /* [N, C]      scratch                                                 */
    float *dh;      /* [N, F]                                                              */
    float *dgu;     /* [N, 2F]                                                             */
    float *dqkv;    /* [N, QW]                                                             */
    float *lu;      /* [L, N, 7r]  LoRA's s x A^T of the four sites (when attached)        */
    float *dlu;     /* [N, 3r]     its gradient, one site at a time                        */
} d1__acts;

/* The BF16 copy of the matrices for D1_PRECISION_BF16, each packed by
   d1__bf16_pack_w (the layout of d1__gemm_bf16) into one buffer, in
   d1_params' order: qkv [L][QW,C], attn_out [L][C,C], gate_up [L][2F,C],
   ff_out [L][C,F], then head [V,C] (packed apart from wte even when tied). */
typedef struct d1__bf16w {
    uint32_t *mem;
    uint32_t *qkv, *attn_out, *gate_up, *ff_out, *head; /* layer 0's (and the head)   */
    size_t    n_qkv, n_attn_out, n_gate_up, n_ff_out;   /* uint32s per layer          */
    size_t    total;                                    /* uint32s in mem             */
    int       simd;      /* 1: the fast BF16 kernels (d1__cpu_bf16), 0: scalar        */
} d1__bf16w;

struct d1__state {
    d1__pool pool;
    d1__ctx  cx;
    float   *ws_memory;      /* n_threads * ws_floats                       */
    size_t   ws_floats;      /* per-thread scratch                          */
    int      ws_threads;
    float   *rope_cos, *rope_sin; /* [rope_len, D/2] each, one allocation  */
    int      rope_len;       /* positions they hold: built by the first pass
                                that needs them (d1__rope_ensure), not at load */
    float   *act_memory;
    size_t   act_cap;        /* floats                                      */
    int      tok_cap;        /* capacity of the token buffers, N            */
    int     *tokens;         /* [N] input of the last forward               */
    int     *noisy;          /* [N] x_t of the losses                       */
    float   *wts;            /* [N] per-token loss weights                  */
    float   *p;              /* [N] per-sequence masking ratios (B used)    */
    uint8_t *mask;           /* [N] 1 = masked by the forward process       */
    d1__acts a;
    int      precision;      /* D1_PRECISION_* (d1_model_set_precision)     */
    int      bf16_stale;     /* the weights changed since bw was packed     */
    int      bf16_last;      /* the last forward ran in BF16: no backward   */
    d1__bf16w bw;            /* the BF16 copy (mem NULL when F32)           */
    int      bf16_resident;  /* d1_model_load_bf16: the matrices live in bw only,
                                param_memory holds wte and the norms           */
    int      bf16_kernel;    /* D1_BF16_KERNEL_* (d1_model_set_bf16_kernel) */
    int      no_share;       /* 1: the sampler computes every row, equal or not
                                (tests compare the shared passes against it)   */
#if defined(D1_CUDA)
    struct d1__dev *dev;     /* the model's GPU side (>>cuda); NULL: on the CPU */
#endif
};

/* Every call that writes the FP32 weights marks their BF16 copy stale; the
   next forward pass that uses it repacks it first (d1__bf16_weights). */
static void d1__weights_changed(d1_model *m) {
    if (m && m->state) m->state->bf16_stale = 1;
}

/* A model of d1_model_load_bf16 holds its matrices in BF16 only: the calls
   that read or change the FP32 matrices refuse it (D1__REFUSE_RESIDENT). */
static int d1__resident(const d1_model *m) { return m && m->state && m->state->bf16_resident; }
/* the kernel a model's BF16 GEMMs run (bw.simd): 0 the scalar reference, 1 the vector kernel
   (AVX512-BF16, NEON), 2 AMX; the fastest this CPU has, unless another is asked for */
static int d1__bf16_simd(const struct d1__state *s) {
    if (s->bf16_kernel == D1_BF16_KERNEL_REFERENCE || !d1__cpu_bf16()) return 0;
    return s->bf16_kernel == D1_BF16_KERNEL_FAST && d1__cpu_amx() ? 2 : 1;
}
#define D1__REFUSE_RESIDENT(m)                                                                              \
    do {                                                                                                    \
        if (d1__resident(m))                                                                                \
            return D1__FAILF(D1_ERR_UNSUPPORTED, "the model holds its matrices in BF16 only "                 \
                             "(d1_model_load_bf16): passes without a gradient only");                       \
    } while (0)

/* The GPU's side of each operation lives in >>cuda at the end of the file;
   D1__GPU_RETURN / D1__GPU_DO hand an operation to it when the model is on
   a GPU, and vanish from a build without D1_CUDA. */
typedef struct d1__sampler d1__sampler; /* >>sampler */
#if defined(D1_CUDA)
#define d1__on_gpu(m) ((m)->state->dev != NULL)
#define D1__GPU_RETURN(m, call) do { if (d1__on_gpu(m)) return (call); } while (0)
#define D1__GPU_DO(m, call) do { if (d1__on_gpu(m)) { call; return; } } while (0)
static int  d1__gpu_attach(d1_model *m);
static int  d1__gpu_detach(d1_model *m);
static void d1__gpu_free_model(d1_model *m);
static int  d1__gpu_pull(d1_model *m);
static int  d1__gpu_push(d1_model *m);
static int  d1__gpu_ensure(d1_model *m, int B, int T);
static int  d1__gpu_ensure_grads(d1_model *m);
static void d1__gpu_forward(d1_model *m, const int *tokens, int B, int T, const uint8_t *key_mask);
static int  d1__gpu_model_forward(d1_model *m, const int *tokens, int B, int T, const uint8_t *key_mask);
static int  d1__gpu_model_backward(d1_model *m, const float *dlogits);
static int  d1__gpu_zero_grad(d1_model *m);
static int  d1__gpu_masked_ce(d1_model *m, const int *x0, int B, int T, float *loss);
static int  d1__gpu_adamw_step(d1_adamw *opt, d1_model *m, float *grad_norm);
static int  d1__gpu_opt_home(d1_adamw *opt, int keep);
static int  d1__gpu_sampler_reveal(d1__sampler *s, int b0, int b1, int step);
static int  d1__gpu_token_logp(d1_model *m, const d1_grpo_batch *b, float *logp);
static int  d1__gpu_params_finite(const d1_model *m);
static int  d1__gpu_grpo_loss(d1_model *m, const d1_grpo_batch *b, float clip_eps, float beta, int objective,
                              float *loss, double *kl_sum, double *clipped);
#define d1__mirror_in(m) (d1__on_gpu(m) ? d1__gpu_pull((d1_model *)(m)) : D1_OK)
#define d1__mirror_out(m) (d1__on_gpu(m) ? d1__gpu_push(m) : D1_OK)
#else
#define d1__on_gpu(m) 0
#define D1__GPU_RETURN(m, call) ((void)0)
#define D1__GPU_DO(m, call) ((void)0)
#define d1__mirror_in(m) D1_OK
#define d1__mirror_out(m) D1_OK
#endif

static int d1__qw(const d1_config *c) { return c->dim + 2 * c->n_kv_heads * (c->dim / c->n_heads); }

D1_API int d1_config_resolve(const d1_config *cfg, d1_config *out) {
    d1_config c;
    if (!cfg || !out) return D1__FAIL(D1_ERR_ARG);
    c = *cfg;
    if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
    if (c.rope_theta == 0.0f) c.rope_theta = 500000.0f;
    if (c.norm_eps == 0.0f) c.norm_eps = 1e-5f;
    if (c.vocab_size <= 0 || c.dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
        c.ffn_dim <= 0 || c.max_seq_len <= 0)
        return D1__FAIL(D1_ERR_CONFIG);
    if (c.dim % c.n_heads || c.n_heads % c.n_kv_heads || (c.dim / c.n_heads) % 2) return D1__FAIL(D1_ERR_CONFIG);
    if (!(c.rope_theta > 0.0f) || !(c.norm_eps > 0.0f) || !isfinite(c.rope_theta) || !isfinite(c.norm_eps))
        return D1__FAIL(D1_ERR_CONFIG);
    if (c.mask_id < 0 || c.mask_id >= c.vocab_size)
        return D1__FAILF(D1_ERR_CONFIG, "mask_id %d outside [0, vocab_size %d)", c.mask_id, c.vocab_size);
    if (c.eos_id == 0 && c.pad_id == 0)
        return D1__FAILF(D1_ERR_CONFIG, "eos_id and pad_id are both 0, as in a d1_config nobody set them in: "
                         "give each its token, or D1_TOKEN_NONE");
    if (c.eos_id != D1_TOKEN_NONE && (c.eos_id < 0 || c.eos_id >= c.vocab_size))
        return D1__FAILF(D1_ERR_CONFIG, "eos_id %d: neither D1_TOKEN_NONE nor in [0, vocab_size %d)", c.eos_id,
                         c.vocab_size);
    if (c.pad_id != D1_TOKEN_NONE && (c.pad_id < 0 || c.pad_id >= c.vocab_size))
        return D1__FAILF(D1_ERR_CONFIG, "pad_id %d: neither D1_TOKEN_NONE nor in [0, vocab_size %d)", c.pad_id,
                         c.vocab_size);
    if (c.eos_id == c.mask_id || c.pad_id == c.mask_id)
        return D1__FAILF(D1_ERR_CONFIG, "%s %d is the mask id", c.eos_id == c.mask_id ? "eos_id" : "pad_id",
                         c.mask_id);
    if (c.tied_embeddings != 0 && c.tied_embeddings != 1)
        return D1__FAILF(D1_ERR_CONFIG, "tied_embeddings %d: 0 or 1", c.tied_embeddings);
    /* sizes must stay well inside int for T and size_t for the buffers */
    if ((double)c.max_seq_len * c.max_seq_len > 2147483647.0 || (double)c.vocab_size * c.dim > 1e12 ||
        (double)c.n_layers * c.ffn_dim * c.dim > 1e12 || c.n_layers > (1 << 20) ||
        (double)c.max_seq_len * c.dim > 1e10) /* the RoPE tables */
        return D1__FAIL(D1_ERR_CONFIG);
    *out = c;
    return D1_OK;
}

/* The parameter layout: offsets (in floats) of each d1_params tensor. */
typedef struct d1__layout {
    size_t wte, attn_norm, qkv, attn_out, ff_norm, gate_up, ff_out, ln_f, head, total;
} d1__layout;

static d1__layout d1__layout_of(const d1_config *c) {
    d1__layout o;
    size_t V = (size_t)c->vocab_size, C = (size_t)c->dim, L = (size_t)c->n_layers, F = (size_t)c->ffn_dim;
    size_t QW = (size_t)d1__qw(c);
    o.wte = 0;
    o.attn_norm = o.wte + V * C;
    o.qkv = o.attn_norm + L * C;
    o.attn_out = o.qkv + L * QW * C;
    o.ff_norm = o.attn_out + L * C * C;
    o.gate_up = o.ff_norm + L * C;
    o.ff_out = o.gate_up + L * 2 * F * C;
    o.ln_f = o.ff_out + L * C * F;
    o.head = c->tied_embeddings ? o.wte : o.ln_f + C;
    o.total = o.ln_f + C + (c->tied_embeddings ? 0 : V * C);
    return o;
}

D1_API size_t d1_config_num_params(const d1_config *cfg) {
    d1_config c;
    memset(&c, 0, sizeof c);
    if (d1_config_resolve(cfg, &c) != D1_OK) return 0;
    return d1__layout_of(&c).total;
}

static void d1__carve_params(const d1_config *c, float *base, d1_params *p) {
    d1__layout o = d1__layout_of(c);
    p->wte = base + o.wte; p->attn_norm = base + o.attn_norm; p->qkv = base + o.qkv;
    p->attn_out = base + o.attn_out; p->ff_norm = base + o.ff_norm; p->gate_up = base + o.gate_up;
    p->ff_out = base + o.ff_out; p->ln_f = base + o.ln_f; p->head = base + o.head;
}

/* Tensors in Hugging Face naming: wte; per block attn_norm, q_proj, k_proj,
   v_proj, attn_out, ff_norm, ff_proj, up_proj, ff_out; ln_f; the untied head. */
static int d1__config_num_tensors(const d1_config *c) {
    return 2 + 9 * c->n_layers + (c->tied_embeddings ? 0 : 1);
}
D1_API int d1_model_num_tensors(const d1_model *m) {
    return m && m->state ? d1__config_num_tensors(&m->config) : 0;
}

/* Appends text, or a non-negative number, to name[*len] (capacity cap, NUL kept). */
static void d1__cat(char *name, size_t cap, size_t *len, const char *txt) {
    while (*txt && *len + 1 < cap) name[(*len)++] = *txt++;
    name[*len] = 0;
}
static void d1__cat_int(char *name, size_t cap, size_t *len, int v) {
    char digits[12];
    int n = 0;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v > 0 && n < 11);
    while (n && *len + 1 < cap) name[(*len)++] = digits[--n];
    name[*len] = 0;
}

static void d1__tensor_set(d1_tensor *t, const char *name, int rows, int cols, size_t offset, int decay) {
    size_t i = 0;
    while (name[i] && i + 1 < sizeof t->name) { t->name[i] = name[i]; i++; }
    t->name[i] = 0;
    t->ndim = rows ? 2 : 1;
    t->shape[0] = rows ? rows : cols;
    t->shape[1] = rows ? cols : 0;
    t->offset = offset;
    t->size = (size_t)(rows ? rows : 1) * (size_t)cols;
    t->decay = decay;
}

/* The nine tensors of a block, in table order (model.transformer.blocks.<l>.<name>.weight). */
static const char *const d1__block_names[9] = {"attn_norm", "q_proj",  "k_proj",  "v_proj", "attn_out",
                                               "ff_norm",   "ff_proj", "up_proj", "ff_out"};

/* Tensor `index` of a (resolved) configuration: the table needs no model. */
static int d1__config_tensor(const d1_config *c, int index, d1_tensor *t) {
    d1__layout o;
    int n = d1__config_num_tensors(c), C, F, KVD, QW;
    if (!t || index < 0 || index >= n) return D1__FAIL(D1_ERR_ARG);
    o = d1__layout_of(c);
    C = c->dim; F = c->ffn_dim; KVD = c->n_kv_heads * (C / c->n_heads); QW = d1__qw(c);
    if (index == 0) {
        d1__tensor_set(t, "model.transformer.wte.weight", c->vocab_size, C, o.wte, 1);
    } else if (index == n - 1 && !c->tied_embeddings) {
        d1__tensor_set(t, "model.transformer.ff_out.weight", c->vocab_size, C, o.head, 1);
    } else if (index == 1 + 9 * c->n_layers) {
        d1__tensor_set(t, "model.transformer.ln_f.weight", 0, C, o.ln_f, 0);
    } else {
        int l = (index - 1) / 9, k = (index - 1) % 9;
        size_t L = (size_t)l, len = 0;
        char name[80];
        d1__cat(name, sizeof name, &len, "model.transformer.blocks.");
        d1__cat_int(name, sizeof name, &len, l);
        d1__cat(name, sizeof name, &len, ".");
        d1__cat(name, sizeof name, &len, d1__block_names[k]);
        d1__cat(name, sizeof name, &len, ".weight");
        switch (k) {
        case 0: d1__tensor_set(t, name, 0, C, o.attn_norm + L * C, 0); break;
        case 1: d1__tensor_set(t, name, C, C, o.qkv + L * QW * C, 1); break;
        case 2: d1__tensor_set(t, name, KVD, C, o.qkv + L * QW * C + (size_t)C * C, 1); break;
        case 3: d1__tensor_set(t, name, KVD, C, o.qkv + L * QW * C + (size_t)(C + KVD) * C, 1); break;
        case 4: d1__tensor_set(t, name, C, C, o.attn_out + L * C * C, 1); break;
        case 5: d1__tensor_set(t, name, 0, C, o.ff_norm + L * C, 0); break;
        case 6: d1__tensor_set(t, name, F, C, o.gate_up + L * 2 * F * C, 1); break;
        case 7: d1__tensor_set(t, name, F, C, o.gate_up + L * 2 * F * C + (size_t)F * C, 1); break;
        default: d1__tensor_set(t, name, C, F, o.ff_out + L * C * F, 1); break;
        }
    }
    return D1_OK;
}

D1_API int d1_model_tensor(const d1_model *m, int index, d1_tensor *t) {
    D1__REFUSE_RESIDENT(m);
    return m && m->state ? d1__config_tensor(&m->config, index, t) : D1__FAIL(D1_ERR_ARG);
}

D1_API void d1_model_free(d1_model *m) {
    if (!m) return;
    d1_lora_detach(m);
#if defined(D1_CUDA)
    if (m->state && m->state->dev) d1__gpu_free_model(m);
#endif
    if (m->state) {
        d1__pool_stop(&m->state->pool);
        d1__free(m->state->ws_memory);
        d1__free(m->state->rope_cos);
        d1__free(m->state->act_memory);
        d1__free(m->state->tokens);
        d1__free(m->state->bw.mem);
        d1__free(m->state);
    }
    d1__free(m->param_memory);
    d1__free(m->grad_memory);
    memset(m, 0, sizeof *m);
}

/* d1_model_init without the weight draw: the config (resolved), n_floats of
   parameter buffer (contents undefined) and the state; d1__model_alloc sizes
   it for every weight and carves the views (d1_model_load_bf16 holds fewer).
   The RoPE tables come later, at the first pass (d1__rope_ensure): what a
   load allocates is the weights the files hold, whatever max_seq_len
   config.json claims. */
static int d1__model_new(d1_model *m, const d1_config *c, size_t n_floats) {
    d1_model tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.config = *c;
    tmp.num_params = n_floats;
    tmp.param_memory = d1__alloc_floats(tmp.num_params);
    tmp.state = (struct d1__state *)d1__alloc(sizeof(struct d1__state));
    if (tmp.state) memset(tmp.state, 0, sizeof *tmp.state);
    if (!tmp.param_memory || !tmp.state) {
        d1_model_free(&tmp);
        return D1__FAIL(D1_ERR_NOMEM);
    }
    tmp.state->pool.n = 1;
    tmp.state->cx.pool = &tmp.state->pool;
    *m = tmp;
    return D1_OK;
}
static int d1__model_alloc(d1_model *m, const d1_config *c) {
    int rc = d1__model_new(m, c, d1__layout_of(c).total);
    if (rc == D1_OK) d1__carve_params(c, m->param_memory, &m->params);
    return rc;
}

/* The RoPE tables for positions [0, T) at least:
     rope_cos[t, i] = cos(t f_i), rope_sin[t, i] = sin(t f_i),  f_i = theta^(-2i/D),
   the angle in double, stored as float. Grows only, to max(T, twice the rows
   it had) capped at max_seq_len, so a run of growing T rebuilds O(log T)
   times; rows already built are copied, new ones computed as above, so every
   entry has the same bits whatever the order of growth. On failure the old
   tables stay. */
static int d1__rope_ensure(d1_model *m, int T) {
    struct d1__state *s = m->state;
    const d1_config *c = &m->config;
    int half = c->dim / c->n_heads / 2, rows, t, i;
    size_t old = (size_t)s->rope_len * half, n;
    float *mem;
    if (T <= s->rope_len) return D1_OK;
    rows = D1__MIN(c->max_seq_len, D1__MAX(T, 2 * s->rope_len));
    n = (size_t)rows * half;
    if (!(mem = d1__alloc_floats(2 * n))) return D1__FAIL(D1_ERR_NOMEM);
    if (old) {
        memcpy(mem, s->rope_cos, old * sizeof(float));
        memcpy(mem + n, s->rope_sin, old * sizeof(float));
    }
    for (t = s->rope_len; t < rows; t++)
        for (i = 0; i < half; i++) {
            double ang = (double)t * pow((double)c->rope_theta, -2.0 * i / (2.0 * half));
            mem[(size_t)t * half + i] = (float)cos(ang);
            mem[n + (size_t)t * half + i] = (float)sin(ang);
        }
    d1__free(s->rope_cos);
    s->rope_cos = mem;
    s->rope_sin = mem + n;
    s->rope_len = rows;
    return D1_OK;
}

D1_API int d1_model_init(d1_model *m, const d1_config *cfg, uint64_t seed) {
    d1_config c;
    d1_model tmp;
    d1_rng rng;
    int rc, i, n;
    if (!m || !cfg) return D1__FAIL(D1_ERR_ARG);
    if ((rc = d1_config_resolve(cfg, &c)) != D1_OK) return rc;
    if ((rc = d1__model_alloc(&tmp, &c)) != D1_OK) return rc;

    /* weights, tensor by tensor in table order */
    d1_rng_seed(&rng, seed);
    n = d1_model_num_tensors(&tmp);
    for (i = 0; i < n; i++) {
        d1_tensor ti;
        float *w, std = 0.02f;
        size_t j;
        d1_model_tensor(&tmp, i, &ti);
        w = tmp.param_memory + ti.offset;
        if (i >= 1 && i <= 9 * c.n_layers && ((i - 1) % 9 == 4 || (i - 1) % 9 == 8))
            std /= sqrtf(2.0f * c.n_layers); /* attn_out and ff_out feed the residual stream */
        for (j = 0; j < ti.size; j++) w[j] = ti.decay ? std * d1_rng_normal(&rng) : 1.0f;
    }
    *m = tmp;
    return D1_OK;
}

D1_API int d1_model_set_threads(d1_model *m, int n_threads) {
    int rc;
    if (!m || !m->state || n_threads < 1 || n_threads > D1_MAX_THREADS) return D1__FAIL(D1_ERR_ARG);
#ifdef D1_NO_THREADS
    if (n_threads != 1) return D1__FAIL(D1_ERR_ARG);
#endif
    d1__pool_stop(&m->state->pool);
    rc = d1__pool_start(&m->state->pool, n_threads);
    return rc; /* on failure the pool runs on one thread */
}

D1_API int d1_model_copy_weights(d1_model *dst, const d1_model *src) {
    int rc;
    if (!dst || !src || !dst->param_memory || !src->param_memory) return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(dst);
    D1__REFUSE_RESIDENT(src);
    if (memcmp(&dst->config, &src->config, sizeof dst->config)) return D1__FAIL(D1_ERR_CONFIG);
    if ((rc = d1__mirror_in(src)) != D1_OK) return rc;
    memcpy(dst->param_memory, src->param_memory, src->num_params * sizeof(float));
    d1__weights_changed(dst);
    return d1__mirror_out(dst);
}

/* Floats needed by the activations of a (B,T) batch, and the carving itself
   (when a is not NULL). Every piece starts on a 64-byte boundary. */
static size_t d1__carve_acts(const d1_config *c, int B, int T, int lora_rank, float *base, d1__acts *a) {
    size_t N = (size_t)B * T, C = (size_t)c->dim, L = (size_t)c->n_layers, F = (size_t)c->ffn_dim;
    size_t V = (size_t)c->vocab_size, QW = (size_t)d1__qw(c), H = (size_t)c->n_heads, off = 0;
#define D1__PIECE(field, count)                                                    \
    do {                                                                           \
        if (a) a->field = base + off;                                              \
        off += ((count) + 15) & ~(size_t)15;                                       \
    } while (0)
    D1__PIECE(x, (L + 1) * N * C);
    D1__PIECE(n1, L * N * C);
    D1__PIECE(r1, L * N);
    D1__PIECE(qkv, L * N * QW);
    D1__PIECE(att, L * (size_t)B * H * (size_t)T * T);
    D1__PIECE(y, L * N * C);
    D1__PIECE(xa, L * N * C);
    D1__PIECE(n2, L * N * C);
    D1__PIECE(r2, L * N);
    D1__PIECE(gu, L * N * 2 * F);
    D1__PIECE(hm, L * N * F);
    D1__PIECE(nf, N * C);
    D1__PIECE(rf, N);
    D1__PIECE(logits, N * V);
    D1__PIECE(dlogits, N * V);
    D1__PIECE(dres, N * C);
    D1__PIECE(dA, N * C);
    D1__PIECE(dB, N * C);
    D1__PIECE(dh, N * F);
    D1__PIECE(dgu, N * 2 * F);
    D1__PIECE(dqkv, N * QW);
    D1__PIECE(lu, L * N * 7 * (size_t)lora_rank);
    D1__PIECE(dlu, N * 3 * (size_t)lora_rank);
#undef D1__PIECE
    return off;
}

/* The host's per-token buffers (tokens, x_t, loss weights, masking ratios,
   mask) for a (B,T) batch, on the CPU and the GPU alike. Grows only. */
static int d1__ensure_tokens(d1_model *m, int B, int T) {
    struct d1__state *s = m->state;
    if (B * T > s->tok_cap) {
        int N = B * T;
        int *mem = (int *)d1__alloc((size_t)N * (2 * sizeof(int) + 2 * sizeof(float) + 1));
        if (!mem) return D1__FAIL(D1_ERR_NOMEM);
        d1__free(s->tokens);
        s->tokens = mem;
        s->noisy = mem + N;
        s->wts = (float *)(mem + 2 * (size_t)N);
        s->p = s->wts + N;
        s->mask = (uint8_t *)(s->p + N);
        s->tok_cap = N;
        m->logits = NULL;
        m->B = m->T = 0;
    }
    return D1_OK;
}

/* Makes room for a (B,T) batch: activations, token buffers, per-thread
   scratch and the RoPE tables for T positions (on a GPU: d1__gpu_ensure; its
   tables went up at d1__gpu_attach). Grows only; on failure the model keeps
   what it had. */
static int d1__ensure(d1_model *m, int B, int T) {
    struct d1__state *s = m->state;
    const d1_config *c = &m->config;
    int rank = m->lora ? m->lora->rank : 0;
    size_t need = d1__carve_acts(c, B, T, rank, NULL, NULL);
    size_t ws = D1__MAX(D1__GEMM_WS, D1__BF_GS_WS) + (size_t)D1__MAX(T * T, D1__MAX(c->ffn_dim, c->vocab_size));
    int nth = s->pool.n, i, rc;
    ws = (ws + 15) & ~(size_t)15;
    if ((rc = d1__ensure_tokens(m, B, T)) != D1_OK) return rc;
    D1__GPU_RETURN(m, d1__gpu_ensure(m, B, T));
    if ((rc = d1__rope_ensure(m, T)) != D1_OK) return rc;
    if (need > s->act_cap) {
        float *mem = d1__alloc_floats(need);
        if (!mem) return D1__FAIL(D1_ERR_NOMEM);
        d1__free(s->act_memory);
        s->act_memory = mem;
        s->act_cap = need;
        m->logits = NULL;
        m->B = m->T = 0;
    }
    if (ws > s->ws_floats || nth > s->ws_threads) {
        size_t per = D1__MAX(ws, s->ws_floats);
        float *mem = d1__alloc_floats(per * nth);
        if (!mem) return D1__FAIL(D1_ERR_NOMEM);
        d1__free(s->ws_memory);
        s->ws_memory = mem;
        s->ws_floats = per;
        s->ws_threads = nth;
    }
    for (i = 0; i < nth; i++) s->cx.ws[i] = s->ws_memory + (size_t)i * s->ws_floats;
    d1__carve_acts(c, B, T, rank, s->act_memory, &s->a);
    return D1_OK;
}

static int d1__ensure_grads(d1_model *m) {
    D1__GPU_RETURN(m, d1__gpu_ensure_grads(m));
    if (m->lora) { /* LoRA: the base is frozen; the adapters' gradients at their first need */
        d1_lora *lo = m->lora;
        if (!lo->grad_memory) {
            if (!(lo->grad_memory = d1__alloc_floats(lo->num_params))) return D1__FAIL(D1_ERR_NOMEM);
            memset(lo->grad_memory, 0, lo->num_params * sizeof(float));
        }
        return D1_OK;
    }
    if (m->grad_memory) return D1_OK;
    m->grad_memory = d1__alloc_floats(m->num_params);
    if (!m->grad_memory) return D1__FAIL(D1_ERR_NOMEM);
    memset(m->grad_memory, 0, m->num_params * sizeof(float));
    d1__carve_params(&m->config, m->grad_memory, &m->grads);
    return D1_OK;
}

/* Checks of a batch of tokens: shape, ids, key mask. Touches nothing. */
/* Whether every weight (and adapter) is finite: checked before a pass that
   would otherwise find out only at its loss, after changing the logits and
   the caller's RNG. One read of the parameters, against the 2 N per token of
   the forward pass. (Weights on a GPU are checked there by the loss.) */
static int d1__params_finite(const d1_model *m) {
    size_t i;
#if defined(D1_CUDA)
    if (d1__on_gpu(m)) return d1__gpu_params_finite(m);
#endif
    for (i = 0; i < m->num_params; i++)
        if (!isfinite(m->param_memory[i])) return 0;
    if (m->lora)
        for (i = 0; i < m->lora->num_params; i++)
            if (!isfinite(m->lora->param_memory[i])) return 0;
    return 1;
}

static int d1__check_batch(const d1_model *m, const int *tokens, int B, int T, const uint8_t *key_mask) {
    size_t i, N;
    int b, j;
    if (!m || !m->state || !tokens) return D1__FAILF(D1_ERR_ARG, "%s is NULL", !m || !m->state ? "the model" : "tokens");
    if (B <= 0 || T <= 0 || T > m->config.max_seq_len)
        return D1__FAILF(D1_ERR_SHAPE, "B %d, T %d: both must be > 0 and T <= max_seq_len %d", B, T,
                         m->config.max_seq_len);
    if ((double)B * T * D1__MAX(m->config.dim, m->config.vocab_size) > 4e12)
        return D1__FAILF(D1_ERR_SHAPE, "B %d x T %d rows of %d floats: too large", B, T,
                         D1__MAX(m->config.dim, m->config.vocab_size));
    N = (size_t)B * T;
    for (i = 0; i < N; i++)
        if (tokens[i] < 0 || tokens[i] >= m->config.vocab_size)
            return D1__FAILF(D1_ERR_TOKEN, "tokens[%zu] (row %zu, position %zu) = %d, outside [0, vocab_size %d)", i,
                             i / (size_t)T, i % (size_t)T, tokens[i], m->config.vocab_size);
    if (key_mask)
        for (b = 0; b < B; b++) {
            int any = 0;
            for (j = 0; j < T; j++) any |= key_mask[(size_t)b * T + j] != 0;
            if (!any) return D1__FAILF(D1_ERR_ARG, "key_mask row %d has no key to attend to", b);
        }
    return D1_OK;
}

static void d1__residual_add(float *x, const float *r, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) x[i] += r[i];
}

// >>lora ----------------------------------------------------------------------
/* LoRA on the four matmul sites of a layer. A site is one fused matrix
   W [O, I] of d1_params (qkv, attn_out, gate_up, ff_out) and its nb row
   blocks (q|k|v, o, gate|up, down); each block j has its own B_j [o1-o0, r],
   and the site's A matrices are stacked into one A [nb*r, I], so that
   u = s x A^T [N, nb*r] is one matmul. Per layer the adapter buffer holds, in
   order: A_qkv, B_q, B_k, B_v, A_o, B_o, A_gu, B_gate, B_up, A_down, B_down
   (those of the targeted modules; A_qkv then stacks only theirs). */
typedef struct d1__lora_site {
    int    I, O, nb;          /* input width, fused output width, row blocks        */
    size_t a, b[3];           /* offsets of A [nb*r, I] and of each B_j [o1-o0, r]    */
    int    o0[3], o1[3];      /* each block's rows in the fused output               */
    int    u0;                /* first column of this site's u in a layer's [N, 7r] */
} d1__lora_site;

/* Module k (d1__lora_names order: q, k, v, o, gate, up, down) of a block:
   its input width and its rows in its site's fused output [o0, o0 + rows). */
static void d1__lora_module(const d1_config *c, int k, int *in, int *o0, int *rows) {
    int C = c->dim, F = c->ffn_dim, KVD = c->n_kv_heads * (C / c->n_heads);
    static const int site[7] = {0, 0, 0, 1, 2, 2, 3};
    const int I[4] = {C, C, C, F}, first[7] = {0, C, C + KVD, 0, 0, F, 0}, n[7] = {C, KVD, KVD, C, F, F, C};
    *in = I[site[k]];
    *o0 = first[k];
    *rows = n[k];
}
/* Floats of one layer's adapters on the modules in `targets`. */
static size_t d1__lora_layer_size(const d1_config *c, int r, unsigned targets) {
    size_t n = 0;
    int k, in, o0, rows;
    for (k = 0; k < 7; k++)
        if (targets >> k & 1u) {
            d1__lora_module(c, k, &in, &o0, &rows);
            n += (size_t)r * ((size_t)in + (size_t)rows);
        }
    return n;
}
/* The sites of layer l's adapters on the modules in `targets`: each site
   keeps only its targeted blocks (nb may be 0: no adapter there), in the
   order q, k, v | o | gate, up | down, each at its own rows of the fused
   output; the buffer holds only those. */
static void d1__lora_sites(const d1_config *c, int r, unsigned targets, int l, d1__lora_site st[4]) {
    int C = c->dim, F = c->ffn_dim, KVD = c->n_kv_heads * (C / c->n_heads), s, k, in, o0, rows;
    size_t off = (size_t)l * d1__lora_layer_size(c, r, targets);
    static const int site[7] = {0, 0, 0, 1, 2, 2, 3}, u0[4] = {0, 3, 4, 6};
    const int I[4] = {C, C, C, F}, O[4] = {C + 2 * KVD, C, 2 * F, C};
    for (s = 0; s < 4; s++) {
        st[s].I = I[s]; st[s].O = O[s]; st[s].u0 = u0[s] * r; st[s].nb = 0;
        for (k = 0; k < 7; k++) /* the site's targeted blocks, in order */
            if (site[k] == s && (targets >> k & 1u)) {
                d1__lora_module(c, k, &in, &o0, &rows);
                st[s].o0[st[s].nb] = o0;
                st[s].o1[st[s].nb++] = o0 + rows;
            }
        st[s].a = off; /* A [nb*r, I], then each B_j */
        off += (size_t)st[s].nb * r * I[s];
        for (k = 0; k < st[s].nb; k++) {
            st[s].b[k] = off;
            off += (size_t)(st[s].o1[k] - st[s].o0[k]) * r;
        }
    }
}

/* out [N, O] += u_j B_j^T for each block j, with u = s x A^T [N, nb*r] kept in
   u (row stride ldu) for the backward pass. */
static void d1__lora_forward(d1__ctx *cx, const d1_lora *lo, const d1__lora_site *st, const float *x, float *out,
                             float *u, int ldu, int N) {
    int r = lo->rank, j, n, k;
    const float *A = lo->param_memory + st->a;
    if (st->nb == 0) return; /* no adapter at this site */
    d1__gemm_mt(cx, N, st->nb * r, st->I, x, st->I, 1, A, 1, st->I, u, ldu, 0);
    for (n = 0; n < N; n++)
        for (k = 0; k < st->nb * r; k++) u[(size_t)n * ldu + k] *= lo->scale;
    for (j = 0; j < st->nb; j++)
        d1__gemm_mt(cx, N, st->o1[j] - st->o0[j], r, u + j * r, ldu, 1, lo->param_memory + st->b[j], 1, r,
                    out + st->o0[j], st->O, 1);
}

/* From dout [N, O]:  dB_j += dout_j^T u_j;  du_j = s dout_j B_j;
   dA += du^T x;  dx += du A   (du: scratch [N, nb*r]). */
static void d1__lora_backward(d1__ctx *cx, d1_lora *lo, const d1__lora_site *st, const float *dout, const float *x,
                              const float *u, int ldu, float *du, float *dx, int N) {
    int r = lo->rank, nr = st->nb * r, j;
    size_t i;
    if (st->nb == 0) return;
    for (j = 0; j < st->nb; j++) {
        int rows = st->o1[j] - st->o0[j];
        d1__gemm_mt(cx, rows, r, N, dout + st->o0[j], 1, st->O, u + j * r, ldu, 1, lo->grad_memory + st->b[j], r, 1);
        d1__gemm_mt(cx, N, r, rows, dout + st->o0[j], st->O, 1, lo->param_memory + st->b[j], r, 1, du + j * r, nr, 0);
    }
    for (i = 0; i < (size_t)N * nr; i++) du[i] *= lo->scale;
    d1__gemm_mt(cx, nr, st->I, N, du, 1, nr, x, st->I, 1, lo->grad_memory + st->a, st->I, 1);
    d1__gemm_mt(cx, N, st->I, nr, du, nr, 1, lo->param_memory + st->a, st->I, 1, dx, st->I, 1);
}

/* the number of modules in a targets mask */
static int d1__lora_count(unsigned targets) {
    int n = 0, k;
    for (k = 0; k < 7; k++) n += (int)(targets >> k & 1u);
    return n;
}
D1_API int d1_lora_num_tensors(const d1_model *m) {
    return m && m->lora ? 2 * d1__lora_count(m->lora->targets) * m->config.n_layers : 0;
}

/* The seven adapted matrices of a block, in table order (two tensors each, A then B). */
static const char *const d1__lora_names[7] = {"q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"};

/* Tensor `index` (< 2 x modules x n_layers) of rank-r adapters on the
   modules `targets` of a model of config c: per layer, A then B of each
   targeted module in the order of d1__lora_names. The table needs no adapters. */
static void d1__lora_tensor(const d1_config *c, int r, unsigned targets, int index, d1_tensor *t) {
    static const int site_of[7] = {0, 0, 0, 1, 2, 2, 3}, first_of[4] = {0, 3, 4, 6};
    d1__lora_site st[4];
    const d1__lora_site *ss;
    int l, k, isB, nm = d1__lora_count(targets), want, j, blk = 0;
    size_t len = 0;
    char name[80];
    l = index / (2 * nm); want = (index % (2 * nm)) / 2; isB = index % 2;
    for (k = 0; k < 7; k++) /* the want-th targeted module */
        if ((targets >> k & 1u) && want-- == 0) break;
    for (j = first_of[site_of[k]]; j < k; j++) blk += (int)(targets >> j & 1u); /* its block in the site */
    d1__lora_sites(c, r, targets, l, st);
    ss = &st[site_of[k]];
    d1__cat(name, sizeof name, &len, "base_model.model.model.transformer.blocks.");
    d1__cat_int(name, sizeof name, &len, l);
    d1__cat(name, sizeof name, &len, ".");
    d1__cat(name, sizeof name, &len, d1__lora_names[k]);
    d1__cat(name, sizeof name, &len, isB ? ".lora_B.weight" : ".lora_A.weight");
    if (isB)
        d1__tensor_set(t, name, ss->o1[blk] - ss->o0[blk], r, ss->b[blk], 1);
    else
        d1__tensor_set(t, name, r, ss->I, ss->a + (size_t)blk * r * ss->I, 1);
}

D1_API int d1_lora_tensor(const d1_model *m, int index, d1_tensor *t) {
    if (!t || index < 0 || index >= d1_lora_num_tensors(m)) return D1__FAIL(D1_ERR_ARG);
    d1__lora_tensor(&m->config, m->lora->rank, m->lora->targets, index, t);
    return D1_OK;
}

D1_API void d1_lora_detach(d1_model *m) {
    if (!m || !m->lora) return;
    d1__free(m->lora->param_memory);
    d1__free(m->lora->grad_memory);
    d1__free(m->lora);
    m->lora = NULL;
}

D1_API int d1_lora_attach(d1_model *m, int rank, float alpha, uint64_t seed) {
    return d1_lora_attach_targets(m, rank, alpha, seed, D1_LORA_ALL);
}

D1_API int d1_lora_attach_targets(d1_model *m, int rank, float alpha, uint64_t seed, unsigned targets) {
    d1_lora *lo;
    d1_rng rng;
    int i, n;
    if (!m || !m->state || m->lora || rank <= 0 || !(alpha > 0.0f) || !isfinite(alpha)) return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(m);
    if (targets == 0 || targets > D1_LORA_ALL)
        return D1__FAILF(D1_ERR_ARG, "targets 0x%x: a non-empty subset of D1_LORA_ALL (0x7f)", targets);
    if (d1__on_gpu(m)) return D1__FAIL(D1_ERR_UNSUPPORTED);
    if (rank > m->config.dim) return D1__FAIL(D1_ERR_ARG);
    lo = (d1_lora *)d1__alloc(sizeof *lo);
    if (!lo) return D1__FAIL(D1_ERR_NOMEM);
    memset(lo, 0, sizeof *lo);
    lo->rank = rank; lo->alpha = alpha; lo->scale = alpha / (float)rank; lo->enabled = 1; lo->targets = targets;
    lo->num_params = (size_t)m->config.n_layers * d1__lora_layer_size(&m->config, rank, targets);
    lo->param_memory = d1__alloc_floats(lo->num_params); /* the gradients: at their first need */
    if (!lo->param_memory) { d1__free(lo); return D1__FAIL(D1_ERR_NOMEM); }
    memset(lo->param_memory, 0, lo->num_params * sizeof(float)); /* B = 0 */
    m->lora = lo;
    d1_rng_seed(&rng, seed);
    n = d1_lora_num_tensors(m);
    for (i = 0; i < n; i += 2) { /* A ~ U(-1/sqrt(in), 1/sqrt(in)), PEFT's default */
        d1_tensor t;
        size_t j;
        d1_lora_tensor(m, i, &t);
        for (j = 0; j < t.size; j++)
            lo->param_memory[t.offset + j] = (2.0f * d1_rng_uniform(&rng) - 1.0f) / sqrtf((float)t.shape[1]);
    }
    m->B = m->T = 0; /* the activations of an earlier forward lack the adapters */
    return D1_OK;
}

D1_API int d1_lora_merge(d1_model *m) {
    const d1_config *c;
    int l, k, j, r;
    if (!m || !m->lora) return D1__FAIL(D1_ERR_ARG);
    c = &m->config;
    r = m->lora->rank;
    for (l = 0; l < c->n_layers; l++) {
        d1__lora_site st[4];
        float *W[4];
        d1__lora_sites(c, r, m->lora->targets, l, st);
        W[0] = m->params.qkv + (size_t)l * d1__qw(c) * c->dim;
        W[1] = m->params.attn_out + (size_t)l * c->dim * c->dim;
        W[2] = m->params.gate_up + (size_t)l * 2 * c->ffn_dim * c->dim;
        W[3] = m->params.ff_out + (size_t)l * c->dim * c->ffn_dim;
        for (k = 0; k < 4; k++)
            for (j = 0; j < st[k].nb; j++) { /* W[o0:o1] += s B_j A_j */
                const float *A = m->lora->param_memory + st[k].a + (size_t)j * r * st[k].I;
                const float *Bm = m->lora->param_memory + st[k].b[j];
                int o, i, q;
                for (o = st[k].o0[j]; o < st[k].o1[j]; o++)
                    for (i = 0; i < st[k].I; i++) {
                        double acc = 0.0;
                        for (q = 0; q < r; q++) acc += (double)Bm[(size_t)(o - st[k].o0[j]) * r + q] * A[(size_t)q * st[k].I + i];
                        W[k][(size_t)o * st[k].I + i] += (float)(m->lora->scale * acc);
                    }
            }
    }
    d1_lora_detach(m);
    m->B = m->T = 0;
    d1__weights_changed(m);
    return D1_OK;
}

/* Attention arguments for the training layout: q, k, v are the column blocks
   of the qkv rows [B*T, QW]. */
static void d1__attn_setup(d1__attn_args *at, const float *qkv, int QW, const d1_config *c, int B, int T,
                           d1__ctx *cx) {
    int D = c->dim / c->n_heads;
    memset(at, 0, sizeof *at);
    at->q = qkv; at->k = qkv + c->dim; at->v = qkv + c->dim + c->n_kv_heads * D;
    at->ldq = at->ldk = QW;
    at->B = B; at->Tq = at->Tk = T; at->H = c->n_heads; at->KV = c->n_kv_heads; at->D = D; at->cx = cx;
}

/* out[N,O] = inp[N,I] . w[O,I]^T (d1__matmul_forward), or, when bw (the
   model's BF16 copy) is given, with w's packed copy wp (d1__gemm_bf16: inp
   rounded to BF16 as it is packed, sums in FP32). */
static void d1__linear_forward(d1__ctx *cx, const d1__bf16w *bw, float *out, const float *inp, const float *w,
                               const uint32_t *wp, int N, int I, int O) {
    if (bw)
        d1__gemm_bf16_mt(cx, N, O, I, inp, I, wp, out, O, bw->simd);
    else
        d1__matmul_forward(cx, out, inp, w, N, I, O);
}
/* Its backward (d1__matmul_backward), or, when bw is given (the model is in
   D1_PRECISION_BF16_MIXED), both products with BF16 operands and FP32 sums
   (d1__gemm_bf16_gs): dinp = dout . w, dw += dout^T . inp. */
static void d1__linear_backward(d1__ctx *cx, const d1__bf16w *bw, float *dinp, float *dw, const float *dout,
                                const float *inp, const float *w, int N, int I, int O) {
    if (!bw) {
        d1__matmul_backward(cx, dinp, dw, dout, inp, w, N, I, O);
        return;
    }
    d1__gemm_bf16_gs_mt(cx, N, I, O, dout, O, 1, w, I, 1, dinp, I, 0, bw->simd);
    if (dw) d1__gemm_bf16_gs_mt(cx, O, I, N, dout, 1, O, inp, I, 1, dw, I, 1, bw->simd);
}
/* layer L's packed copy of matrix t, or NULL in FP32; the FP32 matrix (at
   offset off) when no packed copy is used (a d1_model_load_bf16 model has none) */
#define D1__BW(t) (bw ? bw->t + L * bw->n_##t : NULL)
#define D1__W32(t, off) (bw ? NULL : w->t + (off))

/* One LLaDA block over N = B*Tq query rows: the one body that the full
   forward (Tq = Tk = T; the keys are the rows' own) and the KV-cache forward
   (Tq < Tk; the rows are positions [pos0, pos0 + Tq) of each sequence, the
   other keys and values come from the cache) both run:
     xa = x  + attn_out(Attn(RoPE(q_proj n1), RoPE(k_proj n1), v_proj n1)),  n1 = RMSNorm(x)  attn_norm
     xo = xa + ff_out(silu(ff_proj n2) ⊙ up_proj n2),                       n2 = RMSNorm(xa) ff_norm
   The LoRA adapters, when attached, add s B A n to the projections they
   target. Shapes as in d1__acts for one layer; xo may be x (x is read for the
   last time before xo is written), and the cached forward passes one set of
   buffers that every layer reuses. */
typedef struct d1__block {
    const float   *x;          /* [N, C]  the residual stream entering            */
    float         *xa, *xo;    /* [N, C]  after the attention and the MLP         */
    float         *n1, *r1;    /* [N, C], [N]  RMSNorm(x) and its 1/rms           */
    float         *qkv;        /* [N, QW] [q | k | v], q and k rotated            */
    float         *att;        /* [B, H, Tq, Tk] attention probabilities          */
    float         *y;          /* [N, C]  attention output                        */
    float         *n2, *r2;    /* [N, C], [N]  RMSNorm(xa)                        */
    float         *gu, *hm;    /* [N, 2F], [N, F]  [gate | up], silu(gate) * up   */
    float         *lu;         /* [N, 7r] LoRA's s x A^T (when attached)          */
    float         *kv;         /* NULL, or this layer's cache [B, Tk, 2 KVD]      */
    const uint8_t *key_mask;   /* [B, Tk] or NULL                                 */
    int            B, Tq, Tk, pos0;
    int            nograd;     /* 1: no backward follows (with BF16 weights, attention's products BF16 too) */
} d1__block;

/* The block's first part, over all N rows: n1 = RMSNorm(x), qkv = [q|k|v]
   n1 (+ LoRA), q and k rotated. */
static void d1__block_qkv(d1_model *m, const d1__bf16w *bw, int l, const d1__block *k, d1_lora *lora,
                          const d1__lora_site *ls, int ldu) {
    const d1_config *c = &m->config;
    struct d1__state *s = m->state;
    const d1_params *w = &m->params;
    int N = k->B * k->Tq, C = c->dim, QW = d1__qw(c);
    size_t L = (size_t)l;
    d1__rmsnorm_forward(k->n1, k->r1, k->x, w->attn_norm + L * C, N, C, c->norm_eps);
    d1__linear_forward(&s->cx, bw, k->qkv, k->n1, D1__W32(qkv, L * QW * C), D1__BW(qkv), N, C, QW);
    if (lora) d1__lora_forward(&s->cx, lora, &ls[0], k->n1, k->qkv, k->lu + ls[0].u0, ldu, N);
    d1__rope(k->qkv, QW, N, k->Tq, k->pos0, c->n_heads + c->n_kv_heads, C / c->n_heads, s->rope_cos,
             s->rope_sin, 1.0f); /* q and k heads */
}
/* Attention over the prepared arguments (at.q, k, v, shapes), its
   probabilities into k->att and output into k->y, in the pass's precision. */
static void d1__block_attend(d1_model *m, const d1__bf16w *bw, const d1__block *k, d1__attn_args *at) {
    at->att_w = k->att; at->y = k->y; at->key_mask = k->key_mask;
    at->bf16 = bw != NULL && k->nograd; at->simd = bw ? bw->simd : 0; /* BF16 and no gradient to follow */
    d1__parallel(m->state->cx.pool, d1__attention_forward_task, at);
}
/* The rest, over Nq rows: xa = res + attn_out y (+ LoRA), then the MLP
   sub-block into xo. res [Nq, C]: the residual stream those rows entered with
   (k->x itself, or its rows gathered). */
static void d1__block_out(d1_model *m, const d1__bf16w *bw, int l, const d1__block *k, const float *res, int Nq,
                          d1_lora *lora, const d1__lora_site *ls, int ldu) {
    const d1_config *c = &m->config;
    d1__ctx *cx = &m->state->cx;
    const d1_params *w = &m->params;
    int C = c->dim, F = c->ffn_dim;
    size_t L = (size_t)l, NC = (size_t)Nq * C;
    d1__swiglu_args sw;
    d1__linear_forward(cx, bw, k->xa, k->y, D1__W32(attn_out, L * C * C), D1__BW(attn_out), Nq, C, C);
    if (lora) d1__lora_forward(cx, lora, &ls[1], k->y, k->xa, k->lu + ls[1].u0, ldu, Nq);
    d1__residual_add(k->xa, res, NC);
    /* MLP sub-block */
    d1__rmsnorm_forward(k->n2, k->r2, k->xa, w->ff_norm + L * C, Nq, C, c->norm_eps);
    d1__linear_forward(cx, bw, k->gu, k->n2, D1__W32(gate_up, L * 2 * F * C), D1__BW(gate_up), Nq, C, 2 * F);
    if (lora) d1__lora_forward(cx, lora, &ls[2], k->n2, k->gu, k->lu + ls[2].u0, ldu, Nq);
    sw.out = k->hm; sw.gu = k->gu; sw.dh = NULL; sw.N = Nq; sw.F = F; sw.cx = cx;
    d1__parallel(cx->pool, d1__swiglu_forward_task, &sw);
    d1__linear_forward(cx, bw, k->xo, k->hm, D1__W32(ff_out, L * C * F), D1__BW(ff_out), Nq, F, C);
    if (lora) d1__lora_forward(cx, lora, &ls[3], k->hm, k->xo, k->lu + ls[3].u0, ldu, Nq);
    d1__residual_add(k->xo, k->xa, NC);
}

static void d1__block_forward(d1_model *m, const d1__bf16w *bw, int l, const d1__block *k) {
    const d1_config *c = &m->config;
    int C = c->dim, KVD = c->n_kv_heads * (C / c->n_heads), QW = d1__qw(c), b, i;
    d1_lora *lora = m->lora && m->lora->enabled ? m->lora : NULL;
    int ldu = lora ? 7 * lora->rank : 0;
    d1__lora_site ls[4];
    d1__attn_args at;
    if (lora) d1__lora_sites(c, lora->rank, lora->targets, l, ls);
    d1__block_qkv(m, bw, l, k, lora, ls, ldu);
    d1__attn_setup(&at, k->qkv, QW, c, k->B, k->Tq, &m->state->cx);
    if (k->kv) { /* refresh these positions' keys and values in the cache; attend over all Tk */
        for (b = 0; b < k->B; b++)
            for (i = 0; i < k->Tq; i++)
                memcpy(k->kv + ((size_t)b * k->Tk + k->pos0 + i) * 2 * KVD, k->qkv + ((size_t)b * k->Tq + i) * QW + C,
                       (size_t)2 * KVD * sizeof(float));
        at.k = k->kv; at.v = k->kv + KVD; at.ldk = 2 * KVD; at.Tk = k->Tk;
    }
    d1__block_attend(m, bw, k, &at);
    d1__block_out(m, bw, l, k, k->x, k->B * k->Tq, lora, ls, ldu);
}

/* The last block for the rows whose logits are read only (the sampler's
   masked positions): keys and values come from all T positions of each
   sequence, as in d1__block_forward, but the queries, the attention output,
   attn_out, the MLP (and then the head) run for S positions per sequence,
   idx [B, S] (strictly increasing within a row). The output xo holds those
   B*S rows, row-major [B, S, C]. Each row's sums are the ones the full block
   computes (tests/test_sampler.c: the sampler's tokens are unchanged).
   n1 and n2 serve as scratch for the gathered residual and queries (both
   are free at those times; their per-layer slices hold N >= B*S rows). */
static void d1__block_forward_rows(d1_model *m, const d1__bf16w *bw, int l, const d1__block *k, const int *idx,
                                   int S) {
    const d1_config *c = &m->config;
    int C = c->dim, QW = d1__qw(c), b, j;
    d1_lora *lora = m->lora && m->lora->enabled ? m->lora : NULL;
    int ldu = lora ? 7 * lora->rank : 0;
    d1__lora_site ls[4];
    d1__attn_args at;
    float *xs = k->n1, *qs = k->n2;
    if (lora) d1__lora_sites(c, lora->rank, lora->targets, l, ls);
    d1__block_qkv(m, bw, l, k, lora, ls, ldu);
    for (b = 0; b < k->B; b++)
        for (j = 0; j < S; j++) {
            size_t r = (size_t)b * k->Tq + idx[b * S + j], o = ((size_t)b * S + j) * C;
            memcpy(qs + o, k->qkv + r * QW, (size_t)C * sizeof(float));
            memcpy(xs + o, k->x + r * C, (size_t)C * sizeof(float));
        }
    d1__attn_setup(&at, k->qkv, QW, c, k->B, k->Tq, &m->state->cx);
    at.q = qs; at.ldq = C; at.Tq = S; /* S queries per sequence against its Tq keys */
    d1__block_attend(m, bw, k, &at);
    d1__block_out(m, bw, l, k, xs, k->B * S, lora, ls, ldu);
}

/* logits [N, V] = RMSNorm(x) ln_f . head^T, x [N, C] leaving the last block. */
static void d1__head_forward(d1_model *m, const d1__bf16w *bw, const float *x, int N) {
    const d1_config *c = &m->config;
    d1__acts *a = &m->state->a;
    d1__rmsnorm_forward(a->nf, a->rf, x, m->params.ln_f, N, c->dim, c->norm_eps);
    d1__linear_forward(&m->state->cx, bw, a->logits, a->nf, m->params.head, bw ? bw->head : NULL, N, c->dim,
                       c->vocab_size);
}
#undef D1__BW
#undef D1__W32

static const d1__bf16w *d1__bf16_weights(d1_model *m);
/* Layer l's block in the training layout: its slices of the activations
   that d1__forward_w keeps and d1__backward reads (d1__acts, N = B*T; lora_rank
   0 without adapters). */
static d1__block d1__block_at(const d1__acts *a, const d1_config *c, int l, int B, int T, int lora_rank) {
    size_t L = (size_t)l, N = (size_t)B * T, NC = N * (size_t)c->dim, F = (size_t)c->ffn_dim;
    d1__block k;
    k.x = a->x + L * NC; k.xa = a->xa + L * NC; k.xo = a->x + (L + 1) * NC;
    k.n1 = a->n1 + L * NC; k.r1 = a->r1 + L * N; k.qkv = a->qkv + L * N * (size_t)d1__qw(c);
    k.att = a->att + L * (size_t)B * c->n_heads * T * T; k.y = a->y + L * NC;
    k.n2 = a->n2 + L * NC; k.r2 = a->r2 + L * N; k.gu = a->gu + L * N * 2 * F; k.hm = a->hm + L * N * F;
    k.lu = lora_rank ? a->lu + L * N * 7 * (size_t)lora_rank : NULL;
    k.kv = NULL; k.key_mask = NULL;
    k.B = B; k.Tq = k.Tk = T; k.pos0 = 0; k.nograd = 0;
    return k;
}

/* The LLaDA forward pass on checked input (tokens [B,T] -> a.logits [B,T,V]):
     h = wte[tokens];  h = block_l(h) for each layer (d1__block_forward);
     logits = RMSNorm(h) ln_f . head^T
   bw NULL: FP32, keeping what d1__backward needs (d1__forward); bw given: the
   linear layers in BF16 (D1_PRECISION_BF16_MIXED's training forward), and
   with nograd, for passes no backward follows (d1__forward_nograd),
   attention's two products too. */
static void d1__forward_w(d1_model *m, const int *tokens, int B, int T, const uint8_t *key_mask,
                          const d1__bf16w *bw, int nograd, const int *idx, int S) {
    const d1_config *c = &m->config;
    struct d1__state *s = m->state;
    d1__acts *a = &s->a;
    int N = B * T, C = c->dim, V = c->vocab_size, l, r;
    d1_lora *lora = m->lora && m->lora->enabled ? m->lora : NULL;
    s->bf16_last = bw != NULL && s->precision == D1_PRECISION_BF16;
    D1__GPU_DO(m, d1__gpu_forward(m, tokens, B, T, key_mask));
    if (tokens != s->tokens) memcpy(s->tokens, tokens, (size_t)N * sizeof(int));
    d1__embed_forward(a->x, s->tokens, m->params.wte, N, C);
    for (l = 0; l < c->n_layers; l++) { /* every layer keeps its activations for the backward */
        d1__block k = d1__block_at(a, c, l, B, T, lora ? lora->rank : 0);
        k.key_mask = key_mask; k.nograd = nograd;
        if (idx && l == c->n_layers - 1) d1__block_forward_rows(m, bw, l, &k, idx, S);
        else d1__block_forward(m, bw, l, &k);
    }
    if (idx) { /* the head for the B*S rows, then each logits row to its place: row b*S + j to b*T + idx;
                  the destinations rise with the source (idx rises, T >= S), so from the last row down no
                  row is overwritten before it moves */
        d1__head_forward(m, bw, a->x + (size_t)c->n_layers * N * C, B * S);
        for (r = B * S - 1; r >= 0; r--) {
            size_t to = (size_t)(r / S) * T + idx[r];
            if (to != (size_t)r) memcpy(a->logits + to * V, a->logits + (size_t)r * V, (size_t)V * sizeof(float));
        }
    } else {
        d1__head_forward(m, bw, a->x + (size_t)c->n_layers * N * C, N);
    }
    m->B = idx ? 0 : B; /* a pass of some rows only cannot be back-propagated */
    m->T = T;
    m->logits = a->logits;
}

/* The inference-only forward of Fast-dLLM's KV cache. kv [L, B, T, 2*KVD]
   holds every layer's rotated keys and values from the last full forward;
   this pass runs the same blocks over positions [start, end) of each row only
   (Tq = end - start queries against Tk = T keys), refreshes their keys and
   values in kv, and leaves logits for those B*(end-start) rows in a.logits.
   One set of activation buffers serves every layer. In the model's precision
   (the linear layers in BF16 with D1_PRECISION_BF16). */
static void d1__forward_cached(d1_model *m, const int *canvas, int B, int T, int start, int end,
                               const uint8_t *key_mask, float *kv) {
    const d1_config *c = &m->config;
    struct d1__state *s = m->state;
    d1__acts *a = &s->a;
    int Ts = end - start, N = B * Ts, KVD = c->n_kv_heads * (c->dim / c->n_heads), l, b, i;
    const d1__bf16w *bw = d1__bf16_weights(m);
    for (b = 0; b < B; b++)
        for (i = 0; i < Ts; i++) s->tokens[b * Ts + i] = canvas[(size_t)b * T + start + i];
    d1__embed_forward(a->x, s->tokens, m->params.wte, N, c->dim);
    for (l = 0; l < c->n_layers; l++) {
        d1__block k;
        k.x = a->x; k.xa = a->xa; k.xo = a->x;
        k.n1 = k.n2 = a->n1; k.r1 = k.r2 = a->r1; k.qkv = a->qkv; k.att = a->att; k.y = a->y;
        k.gu = a->gu; k.hm = a->hm; k.lu = a->lu;
        k.kv = kv + (size_t)l * B * T * 2 * KVD; k.key_mask = key_mask; k.nograd = 1;
        k.B = B; k.Tq = Ts; k.Tk = T; k.pos0 = start;
        d1__block_forward(m, bw, l, &k);
    }
    d1__head_forward(m, bw, a->x, N);
    m->B = 0; /* these activations cannot be back-propagated */
    m->logits = NULL;
}

/* The LLaDA forward pass that back-propagates: in FP32, or with BF16
   operands in D1_PRECISION_BF16_MIXED (a model of d1_model_load_bf16: in
   BF16, and the backward refuses it). */
static void d1__forward(d1_model *m, const int *tokens, int B, int T, const uint8_t *key_mask) {
    int resident = m->state->bf16_resident; /* its backward refuses: a no-gradient pass */
    d1__forward_w(m, tokens, B, T, key_mask,
                  m->state->precision == D1_PRECISION_BF16_MIXED || resident ? d1__bf16_weights(m) : NULL, resident,
                  NULL, 0);
}

/* Carves the BF16 copy's buffer (base may be NULL: sizes only); returns its
   uint32s. */
static size_t d1__bf16w_carve(const d1_config *c, uint32_t *base, d1__bf16w *bw) {
    size_t L = (size_t)c->n_layers;
    int C = c->dim, F = c->ffn_dim;
    bw->n_qkv = d1__bf16_packed_size(d1__qw(c), C);
    bw->n_attn_out = d1__bf16_packed_size(C, C);
    bw->n_gate_up = d1__bf16_packed_size(2 * F, C);
    bw->n_ff_out = d1__bf16_packed_size(C, F);
    bw->total = L * (bw->n_qkv + bw->n_attn_out + bw->n_gate_up + bw->n_ff_out) +
                d1__bf16_packed_size(c->vocab_size, C);
    bw->mem = base;
    bw->qkv = base;
    bw->attn_out = base ? bw->qkv + L * bw->n_qkv : NULL;
    bw->gate_up = base ? bw->attn_out + L * bw->n_attn_out : NULL;
    bw->ff_out = base ? bw->gate_up + L * bw->n_gate_up : NULL;
    bw->head = base ? bw->ff_out + L * bw->n_ff_out : NULL;
    return bw->total;
}

/* Rounds and packs every matrix of the FP32 weights into bw (allocated). */
static void d1__bf16w_pack(const d1_model *m, d1__bf16w *bw) {
    const d1_config *c = &m->config;
    const d1_params *w = &m->params;
    int C = c->dim, F = c->ffn_dim, QW = d1__qw(c), l;
    for (l = 0; l < c->n_layers; l++) {
        size_t L = (size_t)l;
        d1__bf16_pack_w(QW, C, w->qkv + L * QW * C, C, bw->qkv + L * bw->n_qkv);
        d1__bf16_pack_w(C, C, w->attn_out + L * C * C, C, bw->attn_out + L * bw->n_attn_out);
        d1__bf16_pack_w(2 * F, C, w->gate_up + L * 2 * F * C, C, bw->gate_up + L * bw->n_gate_up);
        d1__bf16_pack_w(C, F, w->ff_out + L * C * F, F, bw->ff_out + L * bw->n_ff_out);
    }
    d1__bf16_pack_w(c->vocab_size, C, w->head, C, bw->head);
}

/* The BF16 copy for a BF16 forward pass, repacked first when the weights
   changed since; NULL when the model computes in FP32 (its precision, or a
   model on a GPU). */
static const d1__bf16w *d1__bf16_weights(d1_model *m) {
    struct d1__state *s = m->state;
    if (s->precision == D1_PRECISION_F32 || !s->bw.mem || d1__on_gpu(m)) return NULL;
    if (s->bf16_stale) {
        d1__bf16w_pack(m, &s->bw);
        s->bf16_stale = 0;
    }
    return &s->bw;
}

/* A forward pass that no backward pass follows (the sampler, the log-prob
   passes of diffu-GRPO): in the model's precision. */
static void d1__forward_nograd(d1_model *m, const int *tokens, int B, int T, const uint8_t *key_mask) {
    d1__forward_w(m, tokens, B, T, key_mask, d1__bf16_weights(m), 1, NULL, 0);
}
/* The same, when only some rows' logits are read: idx [B, S], S < T
   positions per sequence, strictly increasing in each row. The logits of
   those rows land where the full pass puts them (row b*T + idx); the other
   rows of m->logits hold nothing meaningful. Every layer but the last runs
   in full (each position's keys and values feed every query); the last runs
   its queries, attention output, MLP and the head for the S rows only
   (d1__block_forward_rows). In FP32 under D1_USE_BLIS: the full pass. */
static void d1__forward_nograd_rows(d1_model *m, const int *tokens, int B, int T, const uint8_t *key_mask,
                                    const int *idx, int S) {
    const d1__bf16w *bw = d1__bf16_weights(m);
#if defined(D1_USE_BLIS)
    if (!bw) { /* BLIS's FP32 sums for a row depend on how many rows the matrix has: the full pass keeps
                  the read rows' bits (the BF16 GEMMs are ours, so BF16 takes the rows) */
        d1__forward_w(m, tokens, B, T, key_mask, NULL, 1, NULL, 0);
        return;
    }
#endif
    d1__forward_w(m, tokens, B, T, key_mask, bw, 1, idx, S);
}

/* 1 when a no-gradient pass gives each row's logits the same bits whatever
   else the batch holds: our kernels sum each output in an order fixed by
   its own row (the tile bodies, the K slices and the threads' shares do not
   change it; test_batch_invariant checks FP32, BF16 and both thread
   counts). Not BLIS's FP32 GEMM, whose sums depend on the row count, and
   not the GPU's libraries. */
static int d1__batch_invariant(d1_model *m) {
    (void)m;
    if (d1__on_gpu(m)) return 0;
#if defined(D1_USE_BLIS)
    if (!d1__bf16_weights(m)) return 0;
#endif
    return 1;
}

D1_API int d1_model_set_precision(d1_model *m, int precision) {
    struct d1__state *s;
    if (!m || !m->state || !m->param_memory) return D1__FAIL(D1_ERR_ARG);
    if (precision < D1_PRECISION_F32 || precision > D1_PRECISION_BF16_MIXED) return D1__FAIL(D1_ERR_ARG);
    s = m->state;
    if (s->bf16_resident && precision == D1_PRECISION_BF16) return D1_OK;
    D1__REFUSE_RESIDENT(m);
    if (precision == D1_PRECISION_F32) {
        d1__free(s->bw.mem);
        memset(&s->bw, 0, sizeof s->bw);
    } else {
        d1__bf16w bw;
        uint32_t *mem;
        if (d1__on_gpu(m)) return D1__FAIL(D1_ERR_UNSUPPORTED);
        mem = s->bw.mem ? s->bw.mem : (uint32_t *)d1__alloc(d1__bf16w_carve(&m->config, NULL, &bw) * sizeof(uint32_t));
        if (!mem) return D1__FAIL(D1_ERR_NOMEM);
        d1__bf16w_carve(&m->config, mem, &bw);
        bw.simd = d1__bf16_simd(s);
        d1__bf16w_pack(m, &bw);
        s->bw = bw;
        s->bf16_stale = 0;
    }
    s->precision = precision;
    return D1_OK;
}

D1_API int d1_model_precision(const d1_model *m) {
    return m && m->state ? m->state->precision : D1__FAIL(D1_ERR_ARG);
}

D1_API int d1_model_set_bf16_kernel(d1_model *m, int kernel) {
    if (!m || !m->state) return D1__FAIL(D1_ERR_ARG);
    if (kernel != D1_BF16_KERNEL_FAST && kernel != D1_BF16_KERNEL_REFERENCE && kernel != D1_BF16_KERNEL_VECTOR)
        return D1__FAIL(D1_ERR_ARG);
    m->state->bf16_kernel = kernel;
    m->state->bw.simd = d1__bf16_simd(m->state); /* a packed copy's, if any; the next one's */
    return D1_OK;
}

/* The backward pass of d1__forward, from dlogits [B,T,V]; every parameter
   gradient accumulates into m->grads. The linear layers' two products take
   BF16 operands in D1_PRECISION_BF16_MIXED (d1__linear_backward). */
static void d1__backward(d1_model *m, const float *dlogits) {
    const d1_config *c = &m->config;
    struct d1__state *s = m->state;
    d1__acts *a = &s->a;
    d1__ctx *cx = &s->cx;
    const d1_params *w = &m->params;
    d1_params none, *g = &m->grads;
    d1_lora *lora = m->lora && m->lora->enabled ? m->lora : NULL;
    const d1__bf16w *mb = s->precision == D1_PRECISION_BF16_MIXED ? &s->bw : NULL; /* mixed precision */
    int B = m->B, T = m->T, N = B * T, C = c->dim, F = c->ffn_dim, V = c->vocab_size;
    int H = c->n_heads, KV = c->n_kv_heads, D = C / H, QW = d1__qw(c), l;
    size_t NC = (size_t)N * C;
    if (m->lora) { /* LoRA: the base is frozen, its gradients are neither needed nor kept */
        memset(&none, 0, sizeof none);
        g = &none;
    }
#define D1__G(t, off) (g->t ? g->t + (off) : NULL)
    d1__linear_backward(cx, mb, a->dA, g->head, dlogits, a->nf, w->head, N, C, V);
    d1__rmsnorm_backward(a->dres, g->ln_f, a->dA, a->x + (size_t)c->n_layers * NC, w->ln_f, a->rf, N, C);
    for (l = c->n_layers - 1; l >= 0; l--) {
        size_t L = (size_t)l;
        d1__block k = d1__block_at(a, c, l, B, T, lora ? lora->rank : 0); /* what the forward kept */
        d1__attn_args at;
        d1__swiglu_args sw;
        int ldu = lora ? 7 * lora->rank : 0;
        d1__lora_site ls[4];
        if (lora) d1__lora_sites(c, lora->rank, lora->targets, l, ls);
        /* MLP sub-block: dres is d(out) = d(xa) through the residual */
        d1__linear_backward(cx, mb, a->dh, D1__G(ff_out, L * C * F), a->dres, k.hm, w->ff_out + L * C * F, N, F, C);
        if (lora) d1__lora_backward(cx, lora, &ls[3], a->dres, k.hm, k.lu + ls[3].u0, ldu, a->dlu, a->dh, N);
        sw.out = a->dgu; sw.gu = k.gu; sw.dh = a->dh; sw.N = N; sw.F = F; sw.cx = cx;
        d1__parallel(cx->pool, d1__swiglu_backward_task, &sw);
        d1__linear_backward(cx, mb, a->dA, D1__G(gate_up, L * 2 * F * C), a->dgu, k.n2, w->gate_up + L * 2 * F * C,
                            N, C, 2 * F);
        if (lora) d1__lora_backward(cx, lora, &ls[2], a->dgu, k.n2, k.lu + ls[2].u0, ldu, a->dlu, a->dA, N);
        d1__rmsnorm_backward(a->dB, D1__G(ff_norm, L * C), a->dA, k.xa, w->ff_norm + L * C, k.r2, N, C);
        d1__residual_add(a->dres, a->dB, NC);
        /* attention sub-block */
        d1__linear_backward(cx, mb, a->dA, D1__G(attn_out, L * C * C), a->dres, k.y, w->attn_out + L * C * C, N, C, C);
        if (lora) d1__lora_backward(cx, lora, &ls[1], a->dres, k.y, k.lu + ls[1].u0, ldu, a->dlu, a->dA, N);
        d1__attn_setup(&at, k.qkv, QW, c, B, T, cx);
        at.att = k.att; at.dy = a->dA; at.dqkv = a->dqkv;
        d1__parallel(cx->pool, d1__attention_backward_task, &at);
        d1__rope(a->dqkv, QW, N, T, 0, H + KV, D, s->rope_cos, s->rope_sin, -1.0f);
        d1__linear_backward(cx, mb, a->dB, D1__G(qkv, L * QW * C), a->dqkv, k.n1, w->qkv + L * QW * C, N, C, QW);
        if (lora) d1__lora_backward(cx, lora, &ls[0], a->dqkv, k.n1, k.lu + ls[0].u0, ldu, a->dlu, a->dB, N);
        d1__rmsnorm_backward(a->dA, D1__G(attn_norm, L * C), a->dB, k.x, w->attn_norm + L * C, k.r1, N, C);
        d1__residual_add(a->dres, a->dA, NC);
    }
    if (g->wte) d1__embed_backward(g->wte, a->dres, s->tokens, N, C);
#undef D1__G
}

D1_API int d1_model_forward(d1_model *m, const int *tokens, int B, int T, const uint8_t *key_mask) {
    int rc = d1__check_batch(m, tokens, B, T, key_mask);
    if (rc == D1_OK) rc = d1__ensure(m, B, T);
    if (rc != D1_OK) return rc;
    D1__GPU_RETURN(m, d1__gpu_model_forward(m, tokens, B, T, key_mask));
    d1__forward(m, tokens, B, T, key_mask);
    return D1_OK;
}

static int d1__all_finite(const float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

D1_API int d1_model_backward(d1_model *m, const float *dlogits) {
    int rc;
    if (!m || !m->state || !dlogits) return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(m);
    if (m->B <= 0 || m->state->bf16_last) return D1__FAIL(D1_ERR_STATE); /* no forward, or a BF16 one */
    if (!d1__all_finite(dlogits, (size_t)m->B * m->T * m->config.vocab_size)) return D1__FAIL(D1_ERR_NONFINITE);
    if ((rc = d1__ensure_grads(m)) != D1_OK) return rc;
    D1__GPU_RETURN(m, d1__gpu_model_backward(m, dlogits));
    d1__backward(m, dlogits);
    return D1_OK;
}

D1_API int d1_model_zero_grad(d1_model *m) {
    int rc;
    if (!m || !m->param_memory) return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(m);
    if (m->lora) { /* the adapters are what trains */
        if ((rc = d1__ensure_grads(m)) != D1_OK) return rc;
        memset(m->lora->grad_memory, 0, m->lora->num_params * sizeof(float));
        return D1_OK;
    }
    if ((rc = d1__ensure_grads(m)) != D1_OK) return rc;
    D1__GPU_RETURN(m, d1__gpu_zero_grad(m));
    memset(m->grad_memory, 0, m->num_params * sizeof(float));
    return D1_OK;
}

/* Devices: the generic half (the GPU's half is in >>cuda). */
D1_API int d1_model_set_device(d1_model *m, int device) {
    if (!m || !m->state || (device != D1_DEVICE_CPU && device != D1_DEVICE_CUDA)) return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(m);
    d1__weights_changed(m); /* the weights may come home changed */
#if defined(D1_CUDA)
    if (device == D1_DEVICE_CUDA) return d1__on_gpu(m) ? D1_OK : d1__gpu_attach(m);
    return d1__on_gpu(m) ? d1__gpu_detach(m) : D1_OK;
#else
    return device == D1_DEVICE_CPU ? D1_OK : D1__FAIL(D1_ERR_UNSUPPORTED);
#endif
}
D1_API int d1_model_device(const d1_model *m) {
    if (!m || !m->state) return D1__FAIL(D1_ERR_ARG);
    return d1__on_gpu(m) ? D1_DEVICE_CUDA : D1_DEVICE_CPU;
}
D1_API int d1_model_pull(d1_model *m) { return !m || !m->state ? D1__FAIL(D1_ERR_ARG) : d1__mirror_in(m); }
D1_API int d1_model_push(d1_model *m) {
    if (!m || !m->state) return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(m);
    d1__weights_changed(m); /* the caller wrote param_memory: the BF16 copy is stale */
    return d1__mirror_out(m);
}

// >>losses --------------------------------------------------------------------

D1_API int d1_noise_draw(d1_rng *rng, int B, int T, float eps, const uint8_t *keep, float *p,
                         uint8_t *mask) {
    int b, i;
    if (!rng || !p || !mask) return D1__FAIL(D1_ERR_ARG);
    if (B <= 0 || T <= 0) return D1__FAIL(D1_ERR_SHAPE);
    if (!(eps >= 0.0f && eps <= 1.0f)) return D1__FAIL(D1_ERR_ARG);
    for (b = 0; b < B; b++) {
        float t = d1_rng_uniform(rng);
        p[b] = (1.0f - eps) * t + eps;
        for (i = 0; i < T; i++) {
            size_t k = (size_t)b * T + i;
            float u = d1_rng_uniform(rng); /* drawn for every position: the stream does not depend on keep */
            mask[k] = (uint8_t)((!keep || !keep[k]) && u < p[b]);
        }
    }
    return D1_OK;
}

/* The shared core of the pretraining and SFT losses: x_t = x0 with the
   masked positions (s->mask) replaced by [MASK]; one forward pass;
       loss = sum_i wts[i] CE(logits_i, x0_i)
   and its gradient into m->grads. A non-finite loss leaves the gradients alone. */
static int d1__masked_ce(d1_model *m, const int *x0, int B, int T, float *loss) {
    struct d1__state *s = m->state;
    d1__acts *a = &s->a;
    size_t N = (size_t)B * T, i;
    double total;
    for (i = 0; i < N; i++) s->noisy[i] = s->mask[i] ? m->config.mask_id : x0[i];
    D1__GPU_RETURN(m, d1__gpu_masked_ce(m, x0, B, T, loss));
    d1__forward(m, s->noisy, B, T, NULL);
    total = d1__cross_entropy(a->dlogits, a->logits, x0, s->wts, (int)N, m->config.vocab_size);
    if (!isfinite(total)) return D1__FAIL(D1_ERR_NONFINITE);
    d1__backward(m, a->dlogits);
    *loss = (float)total;
    return D1_OK;
}

/* Checks shared by the losses, then room for the batch. Touches nothing else. */
static int d1__loss_prepare(d1_model *m, const int *tokens, int B, int T, const uint8_t *mask, const float *p,
                            const d1_rng *rng, const float *loss) {
    int rc, b;
    if (!loss || (!mask && !rng) || (!mask != !p))
        return D1__FAILF(D1_ERR_ARG, "%s", !loss ? "loss is NULL" : !mask && !rng ? "rng is NULL (needed without a mask)"
                                            : "give mask and p together, or neither");
    D1__REFUSE_RESIDENT(m);
    if ((rc = d1__check_batch(m, tokens, B, T, NULL)) != D1_OK) return rc;
    if (p)
        for (b = 0; b < B; b++)
            if (!(p[b] > 0.0f && p[b] <= 1.0f)) return D1__FAILF(D1_ERR_ARG, "p[%d] = %g, outside (0, 1]", b, p[b]);
    if (!d1__params_finite(m)) return D1__FAIL(D1_ERR_NONFINITE);
    if ((rc = d1__ensure_grads(m)) != D1_OK) return rc;
    return d1__ensure(m, B, T);
}

/* Masked-diffusion pretraining loss (LLaDA's pretraining estimator):
     L(theta) = -E_{t, x0, x_t} [ 1/t sum_i 1[x_t^i = M] log p_theta(x0^i | x_t) ]
   estimated on the batch as
     loss = 1/(B*T) sum_b sum_{i: mask[b,i]} CE(logits[b,i], x0[b,i]) / p_b      */
D1_API int d1_pretrain_loss(d1_model *m, const int *tokens, int B, int T, const uint8_t *mask,
                            const float *p, d1_rng *rng, float *loss) {
    struct d1__state *s;
    size_t N, i;
    d1_rng r; /* the draw advances a copy, committed on success */
    int rc = d1__loss_prepare(m, tokens, B, T, mask, p, rng, loss);
    if (rc != D1_OK) return rc;
    s = m->state;
    N = (size_t)B * T;
    if (mask) {
        memcpy(s->mask, mask, N);
        memcpy(s->p, p, (size_t)B * sizeof(float));
    } else {
        r = *rng;
        d1_noise_draw(&r, B, T, 1e-3f, NULL, s->p, s->mask);
    }
    for (i = 0; i < N; i++) s->wts[i] = s->mask[i] ? 1.0f / (s->p[i / T] * (float)N) : 0.0f;
    if ((rc = d1__masked_ce(m, tokens, B, T, loss)) == D1_OK && !mask) *rng = r;
    return rc;
}

// >>optimizer -----------------------------------------------------------------

D1_API d1_adamw_desc d1_adamw_default_desc(void) {
    d1_adamw_desc d;
    d.lr = 1e-3f; d.beta1 = 0.9f; d.beta2 = 0.999f; d.eps = 1e-8f;
    d.weight_decay = 0.01f; d.grad_clip = 1.0f;
    return d;
}

static int d1__adamw_desc_ok(const d1_adamw_desc *d) {
    return d->lr >= 0.0f && isfinite(d->lr) && d->beta1 >= 0.0f && d->beta1 < 1.0f &&
           d->beta2 >= 0.0f && d->beta2 < 1.0f && d->eps > 0.0f && isfinite(d->eps) && d->weight_decay >= 0.0f &&
           isfinite(d->weight_decay) && d->grad_clip >= 0.0f && isfinite(d->grad_clip);
}

D1_API int d1_adamw_init(d1_adamw *opt, const d1_model *m, const d1_adamw_desc *desc) {
    if (!opt || !m || !m->param_memory || !desc) return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(m);
    if (!d1__adamw_desc_ok(desc))
        return D1__FAILF(D1_ERR_SETTING, "lr %g, beta1 %g, beta2 %g, eps %g, weight_decay %g, grad_clip %g: lr, "
                         "weight_decay, grad_clip finite and >= 0, betas in [0, 1), eps finite and > 0", desc->lr,
                         desc->beta1, desc->beta2, desc->eps, desc->weight_decay, desc->grad_clip);
    memset(opt, 0, sizeof *opt);
    opt->desc = *desc;
    opt->n = m->lora ? m->lora->num_params : m->num_params; /* what trains */
    opt->m = d1__alloc_floats(2 * opt->n);
    if (!opt->m) return D1__FAIL(D1_ERR_NOMEM);
    opt->v = opt->m + opt->n;
    memset(opt->m, 0, 2 * opt->n * sizeof(float));
    return D1_OK;
}

D1_API void d1_adamw_free(d1_adamw *opt) {
    if (!opt) return;
#if defined(D1_CUDA)
    d1__gpu_opt_home(opt, 0);
#endif
    d1__free(opt->m);
    memset(opt, 0, sizeof *opt);
}

/* The AdamW update of w[lo, hi) from gradient g (times the clip scale), in
   PyTorch's arrangement: with step = lr / (1 - b1^t) and c2 = sqrt(1 - b2^t),
       m = b1 m + (1-b1) g,  v = b2 v + (1-b2) g^2,
       w = w - lr wd w - step m / (sqrt(v) / c2 + eps).
   The scalar loop is the spec; the SIMD ones compute the same per element. */
typedef struct d1__adamw_k {
    float b1, b2, wd, step, inv_c2, eps, scale;
} d1__adamw_k;

static D1__MAYBE_UNUSED void d1__adamw_scalar(const d1__adamw_k *k, float *w, const float *g, float *m, float *v,
                                              size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        float gi = g[i] * k->scale;
        m[i] = k->b1 * m[i] + (1.0f - k->b1) * gi;
        v[i] = k->b2 * v[i] + (1.0f - k->b2) * gi * gi;
        w[i] = w[i] - k->wd * w[i] - k->step * m[i] / (sqrtf(v[i]) * k->inv_c2 + k->eps);
    }
}
#if defined(D1__AVX512)
static void d1__adamw_update(const d1__adamw_k *k, float *w, const float *g, float *m, float *v, size_t n) {
    __m512 b1 = _mm512_set1_ps(k->b1), b2 = _mm512_set1_ps(k->b2), c1 = _mm512_set1_ps(1.0f - k->b1);
    __m512 c2 = _mm512_set1_ps(1.0f - k->b2), wd = _mm512_set1_ps(k->wd), st = _mm512_set1_ps(k->step);
    __m512 ic = _mm512_set1_ps(k->inv_c2), eps = _mm512_set1_ps(k->eps), sc = _mm512_set1_ps(k->scale);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) { /* the scalar loop's operations, in its order, without FMA contraction */
        __m512 gi = _mm512_mul_ps(_mm512_loadu_ps(g + i), sc), wi = _mm512_loadu_ps(w + i);
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(c1, gi));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)), _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
        __m512 den = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), ic), eps);
        wi = _mm512_sub_ps(_mm512_sub_ps(wi, _mm512_mul_ps(wd, wi)), _mm512_div_ps(_mm512_mul_ps(st, mi), den));
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        _mm512_storeu_ps(w + i, wi);
    }
    d1__adamw_scalar(k, w + i, g + i, m + i, v + i, n - i);
}
#elif defined(D1__AVX2)
static void d1__adamw_update(const d1__adamw_k *k, float *w, const float *g, float *m, float *v, size_t n) {
    __m256 b1 = _mm256_set1_ps(k->b1), b2 = _mm256_set1_ps(k->b2), c1 = _mm256_set1_ps(1.0f - k->b1);
    __m256 c2 = _mm256_set1_ps(1.0f - k->b2), wd = _mm256_set1_ps(k->wd), st = _mm256_set1_ps(k->step);
    __m256 ic = _mm256_set1_ps(k->inv_c2), eps = _mm256_set1_ps(k->eps), sc = _mm256_set1_ps(k->scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), sc), wi = _mm256_loadu_ps(w + i);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(c1, gi));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(c2, gi), gi));
        __m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), ic), eps);
        wi = _mm256_sub_ps(_mm256_sub_ps(wi, _mm256_mul_ps(wd, wi)), _mm256_div_ps(_mm256_mul_ps(st, mi), den));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        _mm256_storeu_ps(w + i, wi);
    }
    d1__adamw_scalar(k, w + i, g + i, m + i, v + i, n - i);
}
#else
#define d1__adamw_update d1__adamw_scalar
#endif

/* the constants of step t: bc1 = 1 - b1^t, bc2 = 1 - b2^t */
static d1__adamw_k d1__adamw_konst(const d1_adamw_desc *d, int decay, float scale, double bc1, double bc2) {
    d1__adamw_k k;
    k.b1 = d->beta1; k.b2 = d->beta2; k.eps = d->eps; k.scale = scale;
    k.wd = decay ? d->lr * d->weight_decay : 0.0f;
    k.step = (float)(d->lr / bc1);
    k.inv_c2 = (float)(1.0 / sqrt(bc2));
    return k;
}
static void d1__adamw_range(d1_adamw *opt, float *w, const float *g, size_t lo, size_t hi, int decay, float scale,
                            double bc1, double bc2) {
    d1__adamw_k k = d1__adamw_konst(&opt->desc, decay, scale, bc1, bc2);
    d1__adamw_update(&k, w + lo, g + lo, opt->m + lo, opt->v + lo, hi - lo);
}

D1_API float d1_lr_warmup_cosine(float peak, int64_t step, int64_t total, int64_t warmup, double final_frac) {
    double f;
    if (total <= 0) return peak;
    step = D1__MAX(0, D1__MIN(step, total));
    warmup = D1__MAX(0, D1__MIN(warmup, total));
    if (step < warmup) return peak * (float)(step + 1) / (float)warmup;
    f = (double)(step - warmup) / (double)(total - warmup > 0 ? total - warmup : 1);
    return (float)(peak * (final_frac + (1.0 - final_frac) * 0.5 * (1.0 + cos(3.14159265358979323846 * f))));
}

D1_API int d1_adamw_step(d1_adamw *opt, d1_model *m, float *grad_norm) {
    const d1_adamw_desc *d;
    double sq = 0.0, norm, bc1, bc2;
    float scale = 1.0f, *w, *g;
    size_t i, n;
    int ti;
    if (!opt || !opt->m || !m || !m->param_memory) return D1__FAIL(D1_ERR_ARG);
    w = m->lora ? m->lora->param_memory : m->param_memory; /* LoRA: the adapters train */
    g = m->lora ? m->lora->grad_memory : m->grad_memory;
    n = m->lora ? m->lora->num_params : m->num_params;
    if (!g || opt->n != n) return D1__FAIL(D1_ERR_ARG);
    d = &opt->desc;
    if (!d1__adamw_desc_ok(d))
        return D1__FAILF(D1_ERR_SETTING, "opt->desc: lr %g, beta1 %g, beta2 %g, eps %g, weight_decay %g, grad_clip %g",
                         d->lr, d->beta1, d->beta2, d->eps, d->weight_decay, d->grad_clip);
    if (opt->step < 0 || opt->step >= ((int64_t)1 << 53))
        return D1__FAILF(D1_ERR_ARG, "opt->step %lld outside [0, 2^53)", (long long)opt->step);
#if defined(D1_CUDA)
    D1__GPU_RETURN(m, d1__gpu_adamw_step(opt, m, grad_norm));
    if (opt->dev) { /* the moments come home from a GPU */
        int rc = d1__gpu_opt_home(opt, 1);
        if (rc != D1_OK) return rc;
    }
#endif
    for (i = 0; i < n; i++) sq += (double)g[i] * g[i];
    norm = sqrt(sq);
    if (!isfinite(norm)) return D1__FAIL(D1_ERR_NONFINITE);
    if (grad_norm) *grad_norm = (float)norm;
    if (d->grad_clip > 0.0f && norm > d->grad_clip) scale = (float)(d->grad_clip / (norm + 1e-6));
    opt->step++;
    bc1 = 1.0 - pow((double)d->beta1, (double)opt->step);
    bc2 = 1.0 - pow((double)d->beta2, (double)opt->step);
    if (m->lora) {
        d1__adamw_range(opt, w, g, 0, n, 1, scale, bc1, bc2);
    } else {
        for (ti = 0; ti < d1_model_num_tensors(m); ti++) {
            d1_tensor t;
            d1__config_tensor(&m->config, ti, &t);
            d1__adamw_range(opt, w, g, t.offset, t.offset + t.size, t.decay, scale, bc1, bc2);
        }
        d1__weights_changed(m);
    }
    return D1_OK;
}

// >>sampler -------------------------------------------------------------------

D1_API int d1_sampler_transfer_count(int n_masked, int steps, int step) {
    if (steps <= 0 || step < 0 || step >= steps || n_masked < 0) return 0;
    return n_masked / steps + (step < n_masked % steps);
}


/* Candidate and confidence of one masked position from its logits [V]:
     x0 = argmax_v l_v                                   (temperature 0)
     x0 = argmax_v l_v - tau log(-log u_v), u ~ U(0,1)   (Gumbel-max; the same
          argmax as generate.py's exp(l) / (-log u)^tau, without overflow)
   and the confidence of x0 under p = softmax(l) (in double). Banned ids
   (mask, and EOS when suppressed) are out of both. A logit that is NaN or
   +inf (weights gone non-finite) leaves no token to choose: D1_ERR_NONFINITE,
   before the RNG is drawn. */
static int d1__propose(const float *l, int V, int ban1, int ban2, float tau, int remasking, d1_rng *rng,
                       int *x0, double *conf) {
    double mx = -HUGE_VAL, sum = 0.0, best = -HUGE_VAL, p1 = 0.0, p2 = 0.0, plogp = 0.0;
    int v, arg = -1;
    for (v = 0; v < V; v++) {
        if (v == ban1 || v == ban2) continue;
        if (!(l[v] < HUGE_VAL)) return D1__FAIL(D1_ERR_NONFINITE); /* NaN or +inf */
        if (l[v] > mx) mx = l[v];
    }
    if (!(mx > -HUGE_VAL)) return D1__FAIL(D1_ERR_NONFINITE); /* every allowed logit -inf */
    for (v = 0; v < V; v++) {
        double score;
        if (v == ban1 || v == ban2) continue;
        sum += exp((double)l[v] - mx);
        score = l[v];
        if (tau > 0.0f) score -= tau * log(-log(1.0 - d1_rng_uniform_double(rng)));
        if (score > best) { best = score; arg = v; }
    }
    *x0 = arg;
    switch (remasking) {
    case D1_REMASK_RANDOM: *conf = d1_rng_uniform_double(rng); break;
    case D1_REMASK_MARGIN:
        for (v = 0; v < V; v++) {
            double p = (v == ban1 || v == ban2) ? 0.0 : exp((double)l[v] - mx) / sum;
            if (p > p1) { p2 = p1; p1 = p; } else if (p > p2) p2 = p;
        }
        *conf = p1 - p2;
        break;
    case D1_REMASK_ENTROPY:
        for (v = 0; v < V; v++) {
            double p = (v == ban1 || v == ban2) ? 0.0 : exp((double)l[v] - mx) / sum;
            if (p > 0.0) plogp += p * log(p);
        }
        *conf = plogp;
        break;
    default: *conf = exp((double)l[arg] - mx) / sum; break;
    }
    return arg >= 0 ? D1_OK : D1__FAIL(D1_ERR_NONFINITE);
}

/* A candidate of the current step: position, proposed token, confidence. */
typedef struct d1__cand { double conf; int pos, tok; } d1__cand;

/* Most confident first; ties go to the earlier position (a fixed order). */
static int d1__cand_cmp(const void *x, const void *y) {
    const d1__cand *a = (const d1__cand *)x, *b = (const d1__cand *)y;
    if (a->conf != b->conf) return a->conf > b->conf ? -1 : 1;
    return a->pos - b->pos;
}

static int d1__sampler_check(const d1_model *m, const d1_sampler_desc *d, const int *prompts, int B, int P,
                             const int *prompt_lens, const d1_rng *rng, const int *out) {
    int gen, bl, steps, nb, b, i;
    if (!m || !m->state || !d || !rng || !out || (!prompts && P > 0))
        return D1__FAILF(D1_ERR_ARG, "%s is NULL", !m || !m->state ? "the model" : !d ? "desc" : !rng ? "rng" :
                         !out ? "out" : "prompts (with P > 0)");
    gen = d->gen_len;
    bl = d->block_len ? d->block_len : gen;
    steps = d->steps ? d->steps : gen;
    if (B <= 0 || P < 0 || gen <= 0 || bl <= 0 || steps <= 0)
        return D1__FAILF(D1_ERR_SHAPE, "B %d, P %d, gen_len %d, block_len %d, steps %d: B, gen_len, block_len "
                         "and steps must be > 0, P >= 0", B, P, gen, bl, steps);
    if (gen > m->config.max_seq_len - P) /* P + gen > max_seq_len, without overflow */
        return D1__FAILF(D1_ERR_SHAPE, "P %d + gen_len %d = %.0f tokens, past max_seq_len %d", P, gen,
                         (double)P + gen, m->config.max_seq_len);
    if (d->cfg_scale > 0.0f && B > INT_MAX / 2) return D1__FAILF(D1_ERR_SHAPE, "B %d: CFG runs 2B rows", B);
    /* a token to reveal must exist: not the mask, not a suppressed EOS */
    if (m->config.vocab_size - 1 - (d->suppress_eos && m->config.eos_id != m->config.mask_id &&
                                    m->config.eos_id >= 0 && m->config.eos_id < m->config.vocab_size) < 1)
        return D1__FAILF(D1_ERR_CONFIG, "vocab_size %d holds no token to reveal besides the mask%s",
                         m->config.vocab_size, d->suppress_eos ? " and the suppressed EOS" : "");
    if (gen % bl) /* generate.py asserts it too */
        return D1__FAILF(D1_ERR_SETTING, "block_len %d does not divide gen_len %d", bl, gen);
    nb = gen / bl;
    if (d->threshold <= 0.0f && steps % nb)
        return D1__FAILF(D1_ERR_SETTING, "steps %d is not a multiple of the %d blocks (gen_len %d / block_len %d)",
                         steps, nb, gen, bl);
    if (!(d->temperature >= 0.0f) || !isfinite(d->temperature))
        return D1__FAILF(D1_ERR_SETTING, "temperature %g: must be finite and >= 0", d->temperature);
    if (!(d->cfg_scale >= 0.0f) || !isfinite(d->cfg_scale))
        return D1__FAILF(D1_ERR_SETTING, "cfg_scale %g: must be finite and >= 0", d->cfg_scale);
    if (!(d->threshold >= 0.0f && d->threshold <= 1.0f))
        return D1__FAILF(D1_ERR_SETTING, "threshold %g: must be in [0, 1]", d->threshold);
    if (d->remasking < 0 || d->remasking > D1_REMASK_ENTROPY)
        return D1__FAILF(D1_ERR_SETTING, "remasking %d: not a D1_REMASK_* (0..%d)", d->remasking, D1_REMASK_ENTROPY);
    if (d->kv_cache < D1_KV_NONE || d->kv_cache > D1_KV_DUAL)
        return D1__FAILF(D1_ERR_SETTING, "kv_cache %d: not a D1_KV_* (0..%d)", d->kv_cache, D1_KV_DUAL);
    if (d->kv_cache != D1_KV_NONE && d1__on_gpu(m))
        return D1__FAILF(D1_ERR_UNSUPPORTED, "kv_cache %d on a GPU model (the cache is CPU only)", d->kv_cache);
    if (!d1__params_finite(m)) return D1__FAILF(D1_ERR_NONFINITE, "the model's weights hold a NaN or infinity");
    for (b = 0; b < B; b++) {
        int len = prompt_lens ? prompt_lens[b] : P;
        if (len < 0 || len > P) return D1__FAILF(D1_ERR_SHAPE, "prompt_lens[%d] = %d, outside [0, P %d]", b, len, P);
        if (len < P && m->config.pad_id == D1_TOKEN_NONE)
            return D1__FAILF(D1_ERR_CONFIG, "prompt_lens[%d] = %d < P %d needs left padding, and pad_id is "
                             "D1_TOKEN_NONE", b, len, P);
        for (i = P - len; i < P; i++) {
            int t = prompts[(size_t)b * P + i];
            if (t < 0 || t >= m->config.vocab_size)
                return D1__FAILF(D1_ERR_TOKEN, "prompts[%d][%d] = %d, outside [0, vocab_size %d)", b, i, t,
                                 m->config.vocab_size);
            if (t == m->config.mask_id)
                return D1__FAILF(D1_ERR_TOKEN, "prompts[%d][%d] = %d is the mask id (a prompt holds real tokens)", b,
                                 i, t);
        }
    }
    return D1_OK;
}

/* Copies the k|v columns of every layer's qkv rows (the last full forward)
   into the prefix cache kv [L, B*T, 2*KVD]. */
static void d1__kv_cache_fill(const d1_model *m, float *kv, size_t BT) {
    const d1_config *c = &m->config;
    int QW = d1__qw(c), KVD2 = 2 * c->n_kv_heads * (c->dim / c->n_heads), l;
    size_t r;
    for (l = 0; l < c->n_layers; l++)
        for (r = 0; r < BT; r++)
            memcpy(kv + ((size_t)l * BT + r) * KVD2, m->state->a.qkv + ((size_t)l * BT + r) * QW + c->dim,
                   (size_t)KVD2 * sizeof(float));
}

/* One sampler call's state: settings, the canvas and its scratch. */
struct d1__sampler {
    d1_model              *m;
    const d1_sampler_desc *d;
    d1_rng                *rng;
    const int             *prompt_lens;
    int       B, P, T, V, bl, spb, eos_ban, cfg;
    size_t    BT;
    int      *out;        /* [B, T] the canvas                                      */
    int      *twin;       /* [2B, T] the canvas and its unconditional twin (CFG)     */
    int      *rows;       /* [B, S] the positions whose logits a step reads          */
    int      *src;        /* [B] the logits row that row b reads (equal canvases share) */
    int      *ucanvas;    /* [B, T] a step's distinct canvases                       */
    uint8_t  *ukey;       /* [B, T] and their key masks                              */
    uint64_t *uhash;      /* [B] and their hashes                                    */
    int       share;      /* 1: rows with equal canvases share one row of the pass   */
    int      *at_start;   /* [B] masks of the current block when it started          */
    uint8_t  *key_mask;   /* [2B, T] 0 at left padding                               */
    uint8_t  *revealed;   /* [B, T] revealed at this step                            */
    uint8_t  *done;       /* [B] rows finished early (stop_at_eos)                   */
    d1__cand *cand;       /* [B, bl] candidates of a step                            */
    float    *kv;         /* [L, B*T, 2 KVD] the KV cache, or NULL                   */
};

/* The positions a step reads logits at: each row's masks in the block
   [b0, b1), topped up to S (the most any row has) with the row's first
   other positions, in order, into s->rows [B, S]. Returns S. */
static int d1__sampler_rows(d1__sampler *s, const int *canvas, int B, int b0, int b1) {
    int mask_id = s->m->config.mask_id, S = 0, b, i;
    for (b = 0; b < B; b++) {
        int n = 0;
        for (i = b0; i < b1; i++) n += canvas[(size_t)b * s->T + i] == mask_id;
        S = D1__MAX(S, n);
    }
    for (b = 0; b < B; b++) {
        int n = 0, fill = S, *r = s->rows + (size_t)b * S;
        for (i = b0; i < b1; i++) fill -= canvas[(size_t)b * s->T + i] == mask_id;
        for (i = 0; i < s->T && n < S; i++) {
            int need = i >= b0 && i < b1 && canvas[(size_t)b * s->T + i] == mask_id;
            if (need || fill > 0) {
                fill -= !need;
                r[n++] = i;
            }
        }
    }
    return S;
}

/* Rows with equal canvases (and key masks) share one row of the pass: the
   G rollouts of a prompt start equal and, under low-confidence remasking,
   mostly reveal the same confident tokens until their last steps. Every
   row's logits are the same bits in any batch (d1__batch_invariant), so
   sharing changes no result. Fills s->src [B] (row b reads the logits of
   distinct canvas src[b]) and the distinct canvases and key masks in
   s->ucanvas / s->ukey; returns their count U. A row is compared in full
   only with the distinct canvases of its hash (FNV-1a over tokens and key
   mask), so the search costs O(B T) reads and O(B U) integer compares. */
static int d1__sampler_distinct(d1__sampler *s) {
    int T = s->T, U = 0, b, u, i;
    for (b = 0; b < s->B; b++) {
        const int *row = s->out + (size_t)b * T;
        const uint8_t *km = s->key_mask + (size_t)b * T;
        uint64_t h = 14695981039346656037ULL;
        for (i = 0; i < T; i++) h = (h ^ ((uint64_t)(uint32_t)row[i] << 1 | km[i])) * 1099511628211ULL;
        for (u = 0; u < U; u++)
            if (s->uhash[u] == h && !memcmp(row, s->ucanvas + (size_t)u * T, (size_t)T * sizeof(int)) &&
                !memcmp(km, s->ukey + (size_t)u * T, (size_t)T))
                break;
        if (u == U) {
            memcpy(s->ucanvas + (size_t)U * T, row, (size_t)T * sizeof(int));
            memcpy(s->ukey + (size_t)U * T, km, (size_t)T);
            s->uhash[U++] = h;
        }
        s->src[b] = u;
    }
    return U;
}

/* One forward pass for a step of the block [b0, b1): over the canvas and its
   unconditional twin (CFG), over the block (and what follows) against the
   cache, or over the whole canvas (refreshing the cache at a block's first
   step), its last layer for the masked positions of the block only
   (d1__forward_nograd_rows: the logits of the others are never read), and
   over each distinct canvas once (d1__sampler_distinct). Returns the
   logits; position i of row b is at row (s->src[b]*rs + i - off); the
   canvases the pass computed are added to *rows_run. */
static const float *d1__sampler_forward(d1__sampler *s, int b0, int b1, int first_step, int *off, int *rs,
                                        long *rows_run) {
    d1_model *m = s->m;
    size_t BT = s->BT;
    int b, i;
    *off = 0;
    *rs = s->T;
    if (s->cfg) {
        memcpy(s->twin, s->out, BT * sizeof(int));
        memcpy(s->twin + BT, s->out, BT * sizeof(int));
        for (b = 0; b < s->B; b++) /* the twin's prompt is masked */
            for (i = s->P - (s->prompt_lens ? s->prompt_lens[b] : s->P); i < s->P; i++)
                s->twin[BT + (size_t)b * s->T + i] = m->config.mask_id;
        d1__forward_nograd(m, s->twin, 2 * s->B, s->T, s->key_mask);
        *rows_run += 2 * s->B;
    } else if (s->kv && !first_step) {
        int end = s->d->kv_cache == D1_KV_DUAL ? b1 : s->T;
        d1__forward_cached(m, s->out, s->B, s->T, b0, end, s->key_mask, s->kv);
        *off = b0;
        *rs = end - b0;
        *rows_run += s->B;
    } else { /* share: src[b] = the distinct canvas of row b; else src[b] = b throughout */
        int U = s->share ? d1__sampler_distinct(s) : s->B, S;
        const int *canvas = s->share ? s->ucanvas : s->out;
        const uint8_t *km = s->share ? s->ukey : s->key_mask;
        S = d1__sampler_rows(s, canvas, U, b0, b1);
        if (S < s->T) d1__forward_nograd_rows(m, canvas, U, s->T, km, s->rows, S);
        else d1__forward_nograd(m, canvas, U, s->T, km);
        if (s->kv) d1__kv_cache_fill(m, s->kv, BT); /* every layer's keys and values ran in full */
        *rows_run += U;
    }
    return m->state->a.logits;
}

/* Row b at step `step` of the block [b0, b1): a candidate for each masked
   position, then the k most confident revealed (k from LLaDA's schedule, or
   with a threshold: the first and every other one at or above it). */
static int d1__sampler_reveal_row(d1__sampler *s, int b, int b0, int b1, const float *logits, int off, int rs,
                                  int step) {
    const d1_sampler_desc *d = s->d;
    d1__cand *cb = s->cand + (size_t)b * s->bl;
    int V = s->V, mask_id = s->m->config.mask_id, n = 0, k, j, i, rc;
    for (i = b0; i < b1; i++) {
        float *l = (float *)logits + ((size_t)s->src[b] * rs + (size_t)(i - off)) * V;
        if (s->out[(size_t)b * s->T + i] != mask_id) continue;
        if (s->cfg) { /* guided logits: un + (s+1)(cond - un) */
            const float *ul = logits + (s->BT + (size_t)b * s->T + i) * V;
            int v;
            for (v = 0; v < V; v++) l[v] = ul[v] + (d->cfg_scale + 1.0f) * (l[v] - ul[v]);
        }
        cb[n].pos = i;
        if ((rc = d1__propose(l, V, mask_id, s->eos_ban, d->temperature, d->remasking, s->rng, &cb[n].tok,
                              &cb[n].conf)) != D1_OK)
            return rc;
        n++;
    }
    if (n == 0) return 0;
    qsort(cb, (size_t)n, sizeof *cb, d1__cand_cmp);
    if (d->threshold > 0.0f)
        for (k = 1; k < n && cb[k].conf >= d->threshold; k++) {}
    else
        k = D1__MIN(n, d1_sampler_transfer_count(s->at_start[b], s->spb, step));
    for (j = 0; j < k; j++) {
        s->out[(size_t)b * s->T + cb[j].pos] = cb[j].tok;
        s->revealed[(size_t)b * s->T + cb[j].pos] = 1;
    }
    return k;
}

/* One step's reveals over all rows (on a GPU: d1__gpu_sampler_reveal);
   returns how many, or a negative D1_ERR_*. */
static int d1__sampler_reveal(d1__sampler *s, int b0, int b1, const float *logits, int off, int rs, int step) {
    int b, n = 0, k;
    D1__GPU_RETURN(s->m, d1__gpu_sampler_reveal(s, b0, b1, step));
    for (b = 0; b < s->B; b++) {
        if ((k = d1__sampler_reveal_row(s, b, b0, b1, logits, off, rs, step)) < 0) return k;
        n += k;
    }
    return n;
}

/* stop_at_eos: a row whose finished block [b0, b1) is all EOS is filled with
   EOS to the end and done. Returns 1 when every row is done. */
static int d1__sampler_stop_rows(d1__sampler *s, int b0, int b1) {
    int eos = s->m->config.eos_id, all = 1, b, i;
    for (b = 0; b < s->B; b++) {
        int eos_only = !s->done[b];
        for (i = b0; i < b1 && eos_only; i++) eos_only = s->out[(size_t)b * s->T + i] == eos;
        if (eos_only) {
            s->done[b] = 1;
            for (i = b1; i < s->T; i++) s->out[(size_t)b * s->T + i] = eos;
        }
        all &= s->done[b];
    }
    return all;
}

D1_API d1_sampler_desc d1_sampler_default_desc(int gen_len) {
    d1_sampler_desc d;
    memset(&d, 0, sizeof d);
    d.gen_len = gen_len;
    d.block_len = gen_len;
    d.steps = gen_len;
    d.temperature = 0.0f;
    d.remasking = D1_REMASK_LOW_CONFIDENCE;
    d.kv_cache = D1_KV_NONE;
    return d;
}

D1_API int d1_sampler_generate(d1_model *m, const d1_sampler_desc *desc, const int *prompts, int B, int P,
                               const int *prompt_lens, d1_rng *rng, int *out, d1_sample_stats *stats) {
    const d1_config *c;
    d1__sampler s;
    d1_sample_stats st;
    int gen, steps, nb, blk, b, i, rc;
    size_t kv_floats;
    void *scratch;
    d1_rng rcopy;         /* the caller's generator, advanced here and committed on success */
    if ((rc = d1__sampler_check(m, desc, prompts, B, P, prompt_lens, rng, out)) != D1_OK) return rc;
    c = &m->config;
    memset(&s, 0, sizeof s);
    rcopy = *rng;
    s.m = m; s.d = desc; s.rng = &rcopy; s.prompt_lens = prompt_lens;
    gen = desc->gen_len;
    s.bl = desc->block_len ? desc->block_len : gen;
    steps = desc->steps ? desc->steps : gen;
    nb = gen / s.bl;
    s.spb = steps / nb;
    s.B = B; s.P = P; s.T = P + gen; s.V = c->vocab_size;
    s.eos_ban = desc->suppress_eos ? c->eos_id : -1;
    s.cfg = desc->cfg_scale > 0.0f;
    s.BT = (size_t)B * s.T;
    kv_floats = desc->kv_cache && !s.cfg ? (size_t)c->n_layers * s.BT * 2 * c->n_kv_heads * (c->dim / c->n_heads) : 0;

    /* one allocation for the call: the KV cache, candidates, the distinct
       canvases' hashes, masks per row at block start, each row's distinct
       canvas, the canvas, the CFG twin canvas, the rows read, the distinct
       canvases, key mask, revealed flags, the distinct key masks and done
       flags. The canvas is ours until the end: `out` (which may alias
       `prompts`) and *rng are written only on success. */
    if ((rc = d1__ensure(m, s.cfg ? 2 * B : B, s.T)) != D1_OK) return rc;
    scratch = d1__alloc(kv_floats * sizeof(float) + (size_t)B * s.bl * sizeof(d1__cand) + (size_t)B * sizeof(uint64_t) +
                        2 * (size_t)B * sizeof(int) + 5 * s.BT * sizeof(int) + 2 * s.BT + s.BT + s.BT + (size_t)B);
    if (!scratch) return D1__FAIL(D1_ERR_NOMEM);
    s.kv = kv_floats ? (float *)scratch : NULL;
    s.cand = (d1__cand *)((float *)scratch + kv_floats);
    s.uhash = (uint64_t *)(s.cand + (size_t)B * s.bl);
    s.at_start = (int *)(s.uhash + B);
    s.src = s.at_start + B;
    s.out = s.src + B;
    s.twin = s.out + s.BT;
    s.rows = s.twin + 2 * s.BT;
    s.ucanvas = s.rows + s.BT;
    s.key_mask = (uint8_t *)(s.ucanvas + s.BT);
    s.revealed = s.key_mask + 2 * s.BT;
    s.ukey = s.revealed + s.BT;
    s.done = s.ukey + s.BT;
    /* sharing a pass among equal canvases needs each row's logits to be the
       same bits in any batch, and no per-row state (the prefix cache, CFG) */
    s.share = !s.cfg && !s.kv && !m->state->no_share && d1__batch_invariant(m);
    for (b = 0; b < B; b++) s.src[b] = b;

    /* the canvas: prompt ⊕ gen_len masks; left padding is no query's key */
    for (b = 0; b < B; b++) {
        int pad = P - (prompt_lens ? prompt_lens[b] : P);
        for (i = 0; i < s.T; i++) {
            s.out[(size_t)b * s.T + i] = i < P ? (i < pad ? c->pad_id : prompts[(size_t)b * P + i]) : c->mask_id;
            s.key_mask[(size_t)b * s.T + i] = (uint8_t)(i >= pad);
        }
        s.done[b] = 0;
    }
    memcpy(s.key_mask + s.BT, s.key_mask, s.BT);
    memset(&st, 0, sizeof st);

    /* blocks left to right; in each, steps until its schedule (or its masks) run out */
    for (blk = 0; blk < nb; blk++) {
        int b0 = P + blk * s.bl, b1 = b0 + s.bl, step;
        for (b = 0; b < B; b++)
            for (i = b0, s.at_start[b] = 0; i < b1; i++) s.at_start[b] += s.out[(size_t)b * s.T + i] == c->mask_id;
        for (step = 0; desc->threshold > 0.0f || step < s.spb; step++) {
            const float *logits;
            int any = 0, off, rs, n;
            for (b = 0; b < B && !any; b++)
                for (i = b0; i < b1 && !any; i++) any = s.out[(size_t)b * s.T + i] == c->mask_id;
            if (!any) break; /* the block is complete (threshold mode ends here) */
            logits = d1__sampler_forward(&s, b0, b1, step == 0, &off, &rs, &st.forward_rows);
            st.forward_passes++;
            memset(s.revealed, 0, s.BT);
            if ((n = d1__sampler_reveal(&s, b0, b1, logits, off, rs, step)) < 0) {
                rc = n;
                break;
            }
            st.revealed += n;
            if (desc->callback) {
                d1_sample_event ev;
                size_t r;
                ev.step = st.steps; ev.block = blk; ev.B = B; ev.T = s.T; ev.prompt_len = P;
                ev.canvas = s.out; ev.revealed = s.revealed; ev.n_masked = 0;
                for (r = 0; r < s.BT; r++) ev.n_masked += s.out[r] == c->mask_id;
                desc->callback(&ev, desc->user);
            }
            st.steps++;
        }
        if (rc != D1_OK || (desc->stop_at_eos && d1__sampler_stop_rows(&s, b0, b1))) break;
    }
    if (rc == D1_OK) {
        memcpy(out, s.out, s.BT * sizeof(int));
        *rng = rcopy;
        if (stats) *stats = st;
    }
    d1__free(scratch);
    return rc;
}

// >>sft -----------------------------------------------------------------------
/* Masked SFT (d1 stage 1): the forward process on the response only, then
       loss = 1/B sum_b [ sum_{i masked} CE(logits[b,i], x0[b,i]) / p_b ] / (T - prompt_lens[b]),
   the masked-diffusion loss of d1_pretrain_loss with the prompt kept and each
   row divided by its answer length (LLaDA's SFT guideline; see the API
   comment for how d1's trainer differs). */
D1_API int d1_sft_loss(d1_model *m, const int *tokens, int B, int T, const int *prompt_lens,
                       const uint8_t *mask, const float *p, d1_rng *rng, float *loss) {
    struct d1__state *s;
    int rc, b, i;
    d1_rng r; /* the draw advances a copy, committed on success */
    if (!prompt_lens || !m || !m->state || !tokens)
        return D1__FAILF(D1_ERR_ARG, "%s is NULL", !prompt_lens ? "prompt_lens" : !tokens ? "tokens" : "the model");
    D1__REFUSE_RESIDENT(m);
    if (B <= 0 || T <= 0) return D1__FAILF(D1_ERR_SHAPE, "B %d, T %d: both must be > 0", B, T);
    for (b = 0; b < B; b++) /* checked before anything is allocated or drawn */
        if (prompt_lens[b] < 0 || prompt_lens[b] >= T) /* no answer to learn */
            return D1__FAILF(D1_ERR_SHAPE, "prompt_lens[%d] = %d, outside [0, T %d): the answer needs >= 1 token", b,
                             prompt_lens[b], T);
    if (mask)
        for (b = 0; b < B; b++) /* the prompt is never masked: a mask there is the caller's mistake */
            for (i = 0; i < prompt_lens[b]; i++)
                if (mask[(size_t)b * T + i])
                    return D1__FAILF(D1_ERR_ARG, "mask[%d][%d] = 1 inside the prompt (prompt_lens[%d] = %d)", b, i, b,
                                     prompt_lens[b]);
    if ((rc = d1__loss_prepare(m, tokens, B, T, mask, p, rng, loss)) != D1_OK) return rc;
    s = m->state;
    if (mask) {
        memcpy(s->mask, mask, (size_t)B * T);
        memcpy(s->p, p, (size_t)B * sizeof(float));
    } else {
        uint8_t *keep = s->mask; /* the prompt positions; the draw overwrites them in place */
        for (b = 0; b < B; b++)
            for (i = 0; i < T; i++) keep[(size_t)b * T + i] = (uint8_t)(i < prompt_lens[b]);
        r = *rng;
        d1_noise_draw(&r, B, T, 1e-3f, keep, s->p, s->mask);
    }
    for (b = 0; b < B; b++)
        for (i = 0; i < T; i++) {
            size_t k = (size_t)b * T + i;
            s->wts[k] = s->mask[k] ? 1.0f / (s->p[b] * (float)B * (float)(T - prompt_lens[b])) : 0.0f;
        }
    if ((rc = d1__masked_ce(m, tokens, B, T, loss)) == D1_OK && !mask) *rng = r;
    return rc;
}

// >>grpo ----------------------------------------------------------------------

D1_API d1_grpo_desc d1_grpo_default_desc(int gen_len) {
    d1_grpo_desc d;
    memset(&d, 0, sizeof d);
    d.group_size = 6;
    d.inner_steps = 8;
    d.p_mask_prompt = 0.15f;
    d.clip_eps = 0.5f;
    d.beta = 0.04f;
    d.sampler.gen_len = gen_len;
    d.sampler.block_len = gen_len % 32 == 0 ? 32 : gen_len;
    d.sampler.steps = gen_len / 2 > 0 && (gen_len / 2) % (gen_len / d.sampler.block_len) == 0 ? gen_len / 2 : gen_len;
    d.sampler.temperature = 0.9f;
    d.sampler.remasking = D1_REMASK_LOW_CONFIDENCE;
    return d;
}

D1_API void d1_wd1_weights(const float *adv, int n, int G, float *omega) {
    int g, i;
    for (g = 0; g + G <= n; g += G) {
        double mx = -HUGE_VAL, mn = HUGE_VAL, sp = 0.0, sm = 0.0;
        for (i = g; i < g + G; i++) {
            if (adv[i] > mx) mx = adv[i];
            if (adv[i] < mn) mn = adv[i];
        }
        for (i = g; i < g + G; i++) {
            sp += exp((double)adv[i] - mx);
            sm += exp((double)mn - adv[i]);
        }
        for (i = g; i < g + G; i++)
            omega[i] = (float)(exp((double)adv[i] - mx) / sp - exp((double)mn - adv[i]) / sm);
    }
}

static int d1__grpo_batch_check(const d1_model *m, const d1_grpo_batch *b) {
    int rc;
    if (!b || !b->input_mask) return D1__FAIL(D1_ERR_ARG);
    if ((rc = d1__check_batch(m, b->tokens, b->B, b->T, b->key_mask)) != D1_OK) return rc;
    if (b->P < 0 || b->P >= b->T) return D1__FAIL(D1_ERR_SHAPE);
    return D1_OK;
}

/* One forward pass over the masked input: x_t = tokens with input_mask set to
   [MASK]; nograd: no backward follows (in the model's precision), and its
   last layer runs for the completion's rows [P, T) only, the rows the
   log-probs read (d1__forward_nograd_rows; all rows if the index does not
   fit in memory). */
static void d1__grpo_forward(d1_model *m, const d1_grpo_batch *b, int nograd) {
    struct d1__state *s = m->state;
    size_t N = (size_t)b->B * b->T, i;
    int Lc = b->T - b->P, *idx = NULL, r, k;
    for (i = 0; i < N; i++) s->noisy[i] = b->input_mask[i] ? m->config.mask_id : b->tokens[i];
    if (!nograd) {
        d1__forward(m, s->noisy, b->B, b->T, b->key_mask);
        return;
    }
    if (b->P > 0) idx = (int *)d1__alloc(sizeof(int) * (size_t)b->B * Lc);
    if (idx) {
        for (r = 0; r < b->B; r++)
            for (k = 0; k < Lc; k++) idx[(size_t)r * Lc + k] = b->P + k;
        d1__forward_nograd_rows(m, s->noisy, b->B, b->T, b->key_mask, idx, Lc);
        d1__free(idx);
    } else {
        d1__forward_nograd(m, s->noisy, b->B, b->T, b->key_mask);
    }
}

/* log softmax(l)[target] for one row of logits [V]; p [V] receives the
   softmax. The one routine for every log-prob, so that the old, reference and
   current log-probs of identical inputs agree to the bit. */
static double d1__token_logp(const float *l, int V, int target, float *p) {
    float mx = d1__max(l, V), sum = d1__vexp(p, l, V, 1.0f, mx);
    int v;
    for (v = 0; v < V; v++) p[v] /= sum;
    return (double)l[target] - mx - log((double)sum);
}

D1_API int d1_grpo_logprobs(d1_model *m, const d1_grpo_batch *b, float *logp) {
    int rc, r, k, Lc, V;
    if (!logp) return D1__FAIL(D1_ERR_ARG);
    if ((rc = d1__grpo_batch_check(m, b)) != D1_OK) return rc;
    if (!d1__params_finite(m)) return D1__FAIL(D1_ERR_NONFINITE);
    if ((rc = d1__ensure(m, b->B, b->T)) != D1_OK) return rc;
    d1__grpo_forward(m, b, 1);
    D1__GPU_RETURN(m, d1__gpu_token_logp(m, b, logp));
    Lc = b->T - b->P;
    V = m->config.vocab_size;
    for (r = 0; r < b->B; r++)
        for (k = 0; k < Lc; k++) {
            size_t row = (size_t)r * b->T + b->P + k;
            logp[(size_t)r * Lc + k] = (float)d1__token_logp(m->logits + row * V, V, b->tokens[row], m->state->a.dlogits);
        }
    return D1_OK;
}

/* Per scored completion token, from logp (and old, ref, A):
     clipped (d1):  L = -min(rho A, clip(rho, 1-eps, 1+eps) A) + beta KL,  rho = exp(logp - old)
                    dL/dlogp = -rho A [unclipped branch selected] + beta dKL/dlogp
                    (dual-clip c: for A < 0, L = -max(min(...), c A) + beta KL)
     wd1:           L = -omega logp + beta KL,   dL/dlogp = -omega + beta dKL/dlogp
   with KL one of (d = logp - ref)
     k3 (d1):       exp(-d) + d - 1,   dKL/dlogp = 1 - exp(-d)
     k1:            d,                 dKL/dlogp = 1
     k2:            d^2 / 2,           dKL/dlogp = d
   then dlogits = dL/dlogp (onehot(o) - softmax(logits)) / denom, and one backward pass. */
/* The KL estimator k1 / k2 / k3 of d = logp - ref (per token) or d = ELBO -
   ref (per sequence): its value, and its derivative in logp into *dkl. */
static double d1__kl_of(int kind, double d, double *dkl) {
    switch (kind) {
    case D1_KL_K1: *dkl = 1.0; return d;
    case D1_KL_K2: *dkl = d; return 0.5 * d * d;
    default: *dkl = 1.0 - exp(-d); return exp(-d) + d - 1.0;
    }
}

/* The clipped surrogate of one ratio rho = exp(x - old) with advantage A:
       S = -min(rho A, clip(rho, 1-eps, 1+eps) A)
   and, with dual-clip c > 0 (verl/trainer/ppo/core_algos.py at b178a3c,
   compute_policy_loss_vanilla, lines 1229-1235), for A < 0
       S = min(-c A, -min(rho A, clip(rho) A)),
   the ceiling that ends rho's pull once rho > c. Returns S; *g = dS/dx
   (-rho A on the unclipped branch, 0 on a clipped one); *cut = 1 when a
   clip removed the gradient. */
static double d1__surrogate(double rho, double A, double eps, double c, double *g, int *cut) {
    double l1 = rho * A, l2 = D1__MIN(D1__MAX(rho, 1.0 - eps), 1.0 + eps) * A, S = -D1__MIN(l1, l2);
    *g = l1 <= l2 ? -rho * A : 0.0; /* the clipped branch is constant in theta */
    *cut = l1 > l2;
    if (c > 0.0 && A < 0.0 && -c * A < S) { /* dual-clip: the floor c A, constant */
        S = -c * A;
        *g = 0.0;
        *cut = 1;
    }
    return S;
}

D1_API int d1_grpo_elbo(const d1_grpo_batch *b, const float *logp, float *elbo) {
    int s, r, k, Lc;
    if (!b || !logp || !elbo || !b->elbo_w || !b->score_mask || b->n_seq <= 0 || b->B <= 0 || b->B % b->n_seq ||
        b->P < 0 || b->P >= b->T)
        return D1__FAIL(D1_ERR_ARG);
    Lc = b->T - b->P;
    for (s = 0; s < b->n_seq; s++) {
        double acc = 0.0;
        for (r = s; r < b->B; r += b->n_seq)
            for (k = 0; k < Lc; k++) {
                size_t t = (size_t)r * Lc + k;
                if (b->score_mask[t]) acc += (double)b->elbo_w[t] * (double)logp[t];
            }
        elbo[s] = (float)acc;
    }
    return D1_OK;
}

/* The sequence-level losses' first sweep (ESPO, SPG): dlogits zeroed, then
   for every scored token t of row r lp[t] = log p(o_t) and the softmax of its
   logits left in its dlogits row (d1__softmax_grad turns it into a gradient). */
static void d1__seq_sweep(d1_model *m, const d1_grpo_batch *b, float *lp) {
    float *dl = m->state->a.dlogits;
    int Lc = b->T - b->P, V = m->config.vocab_size, r, k;
    memset(dl, 0, (size_t)b->B * b->T * V * sizeof(float));
    for (r = 0; r < b->B; r++)
        for (k = 0; k < Lc; k++) {
            size_t row = (size_t)r * b->T + b->P + k;
            if (b->score_mask[(size_t)r * Lc + k])
                lp[(size_t)r * Lc + k] = (float)d1__token_logp(m->logits + row * V, V, b->tokens[row], dl + row * V);
        }
}
/* ELBO_s = sum over the rows j of sequence s (r = s, s + n_seq, ...) and
   their scored tokens k of w_jk logp_jk */
static double d1__seq_elbo(const d1_grpo_batch *b, const float *lp, int s) {
    int Lc = b->T - b->P, r, k;
    double acc = 0.0;
    for (r = s; r < b->B; r += b->n_seq)
        for (k = 0; k < Lc; k++) {
            size_t t = (size_t)r * Lc + k;
            if (b->score_mask[t]) acc += (double)b->elbo_w[t] * (double)lp[t];
        }
    return acc;
}
/* d holds softmax(l) [V]; with g = dL/dlogp(target) it becomes dL/dl =
   g (onehot(target) - softmax(l)) */
static void d1__softmax_grad(float *d, int V, int target, double g) {
    int i;
    for (i = 0; i < V; i++) d[i] = (float)(-g * d[i]);
    d[target] += (float)g;
}

/* The sequence level of d1_grpo_loss (ESPO, ML-GSAI/ESPO at b5f2dac,
   espo/espo_trainer.py: compute_loss, lines 161-232; _get_elbo, 376-438):
   after the forward pass, per scored token the softmax into dlogits and
   logp into s->wts (free in a GRPO loss); ELBO_s summed as d1_grpo_elbo
   does; then, with c_s = dL/dELBO_s,
       dL/dl[r,k] = c_{r % n_seq} elbo_w[r,k] (onehot(o) - softmax)
       c_s = ( -A_s rho_s / Lc [unclipped branch] + beta dKL/dd / Lc ) / denom
   (the surrogate and its dual-clip as per token: d1__surrogate) */
static int d1__grpo_loss_seq(d1_model *m, const d1_grpo_batch *b, float clip_eps, float beta, float *loss,
                             double *kl_sum, double *clipped) {
    d1__acts *a = &m->state->a;
    float *lp = m->state->wts;
    int Lc = b->T - b->P, V = m->config.vocab_size, r, k, s;
    double total = 0.0, kls = 0.0, clips = 0.0;
    d1__seq_sweep(m, b, lp);
    for (s = 0; s < b->n_seq; s++) {
        double A = b->adv[s], rho, S, c, kl = 0.0, dkl = 0.0, elbo;
        int cut;
        elbo = (float)d1__seq_elbo(b, lp, s); /* as stored for the old and reference policies */
        rho = exp((elbo - (b->old_logp ? (double)b->old_logp[s] : elbo)) / Lc);
        S = d1__surrogate(rho, A, clip_eps, b->dual_clip, &c, &cut); /* c = dS/d(ELBO / Lc) */
        clips += cut;
        if (beta != 0.0f) kl = d1__kl_of(b->kl, elbo - (double)b->ref_logp[s], &dkl);
        total += S + beta * kl / Lc;
        kls += kl / Lc;
        c = (c / Lc + beta * dkl / Lc) / b->denom;
        for (r = s; r < b->B; r += b->n_seq)
            for (k = 0; k < Lc; k++) {
                size_t row = (size_t)r * b->T + b->P + k, t = (size_t)r * Lc + k;
                float *d = a->dlogits + row * V;
                double g = c * b->elbo_w[t];
                if (!b->score_mask[t]) continue;
                d1__softmax_grad(d, V, b->tokens[row], g);
            }
    }
    if (!isfinite(total)) return D1__FAIL(D1_ERR_NONFINITE);
    d1__backward(m, a->dlogits);
    *loss = (float)(total / b->denom);
    if (kl_sum) *kl_sum += kls;
    if (clipped) *clipped += clips;
    return D1_OK;
}

/* SPG's objective (facebookresearch/SPG at a1c7120, spg/spg_trainer.py: compute_loss,
   lines 87-126; _get_per_seq_logps, lines 433-558): per sequence s with
   completion length n_s and rows j (its masked copies), p_jk = exp(logp_jk),
       ELBO_s = sum_jk w_jk logp_jk                (w = 1/(draws x masked in row j))
       EUBO_s = 1/(beta_e |K|) sum_{k in K} log a_k,  a_k = sum_j u_jk p_jk^beta_e,
                u_jk = w_jk n_s (SPG: masked / t_j, t_j the share of o masked; mean over draws)
       S_s = ELBO_s if A_s > 0, else mix EUBO_s + (1 - mix) ELBO_s
       L = -1/denom sum_s A_s n_s S_s                  (SPG: denom = sum_s n_s)
   dS/dlogp_jk = (1 - mix) w_jk + mix u_jk p_jk^beta_e / (|K| a_k) for A <= 0.
   lp (s->wts) and the softmax (dlogits) from one sweep, as in the ESPO path. */
static double d1__spg_a(const d1_grpo_batch *b, const float *lp, int s, int k, double beta_e) {
    int Lc = b->T - b->P, r;
    double a = 0.0;
    for (r = s; r < b->B; r += b->n_seq) {
        size_t t = (size_t)r * Lc + k;
        if (b->score_mask[t]) a += (double)b->elbo_w[t] * b->seq_len[s] * exp(beta_e * lp[t]);
    }
    return a;
}
static int d1__grpo_loss_spg(d1_model *m, const d1_grpo_batch *b, float *loss) {
    d1__acts *a = &m->state->a;
    float *lp = m->state->wts;
    int Lc = b->T - b->P, V = m->config.vocab_size, r, k, s;
    double total = 0.0, be = b->eubo_beta, mix = b->eubo_mix;
    d1__seq_sweep(m, b, lp);
    for (s = 0; s < b->n_seq; s++) {
        double A = b->adv[s], elbo = 0.0, eubo = 0.0, S, c, nK = 0.0;
        elbo = d1__seq_elbo(b, lp, s);
        if (A <= 0.0 && mix > 0.0) {
            for (k = 0; k < Lc; k++) {
                double ak = d1__spg_a(b, lp, s, k, be);
                if (ak > 0.0) { eubo += log(ak); nK += 1.0; }
            }
            eubo = nK > 0.0 ? eubo / (nK * be) : 0.0;
        }
        S = A > 0.0 ? elbo : mix * eubo + (1.0 - mix) * elbo;
        total += -A * b->seq_len[s] * S;
        c = -A * b->seq_len[s] / b->denom; /* dL/dS_s */
        for (k = 0; k < Lc; k++) {
            double ak = A <= 0.0 && mix > 0.0 ? d1__spg_a(b, lp, s, k, be) : 0.0;
            for (r = s; r < b->B; r += b->n_seq) {
                size_t row = (size_t)r * b->T + b->P + k, t = (size_t)r * Lc + k;
                float *d = a->dlogits + row * V;
                double dS, g;
                if (!b->score_mask[t]) continue;
                dS = A > 0.0 ? b->elbo_w[t]
                             : (1.0 - mix) * b->elbo_w[t] +
                                   (ak > 0.0 ? mix * b->elbo_w[t] * b->seq_len[s] * exp(be * lp[t]) / (nK * ak) : 0.0);
                g = c * dS;
                d1__softmax_grad(d, V, b->tokens[row], g);
            }
        }
    }
    if (!isfinite(total)) return D1__FAIL(D1_ERR_NONFINITE);
    d1__backward(m, a->dlogits);
    *loss = (float)(total / b->denom);
    return D1_OK;
}

D1_API int d1_grpo_loss(d1_model *m, const d1_grpo_batch *b, float clip_eps, float beta, int objective,
                        float *loss, double *kl_sum, double *clipped) {
    d1__acts *a;
    double total = 0.0, kls = 0.0, clips = 0.0;
    int rc, r, k, Lc, V, n_adv;
    size_t i;
    if (!loss || !b || !b->score_mask || !b->adv || !(b->denom > 0.0f) || (beta != 0.0f && !b->ref_logp) ||
        !(clip_eps >= 0.0f) || !isfinite(beta) || objective < D1_GRPO_CLIPPED || objective > D1_GRPO_SPG ||
        b->kl < D1_KL_K3 || b->kl > D1_KL_K2 ||
        !(b->dual_clip == 0.0f || (b->dual_clip > 1.0f && isfinite(b->dual_clip) && objective == D1_GRPO_CLIPPED)))
        return D1__FAIL(D1_ERR_ARG); /* dual-clip: c > 1, on the clipped ratio only */
    if (b->elbo_w && (objective == D1_GRPO_WD1 || b->n_seq <= 0 || b->B <= 0 || b->B % b->n_seq))
        return D1__FAIL(D1_ERR_ARG); /* the sequence level is ESPO's clipped ratio or SPG */
    if (objective == D1_GRPO_SPG && (!b->elbo_w || !b->seq_len || beta != 0.0f || !(b->eubo_beta > 0.0f) ||
                                     !isfinite(b->eubo_beta) || !(b->eubo_mix >= 0.0f && b->eubo_mix <= 1.0f)))
        return D1__FAIL(D1_ERR_ARG); /* SPG: sequences, their lengths, no KL */
    D1__REFUSE_RESIDENT(m);
    if ((rc = d1__grpo_batch_check(m, b)) != D1_OK) return rc;
    if ((b->kl != D1_KL_K3 || b->elbo_w || b->dual_clip != 0.0f) && d1__on_gpu(m)) return D1__FAIL(D1_ERR_UNSUPPORTED);
    /* every number that enters the loss, before the pass: a non-finite
       advantage, or old / reference log-prob of a scored token (a log-prob
       is <= 0), is the caller's error */
    Lc = b->T - b->P;
    n_adv = b->elbo_w ? b->n_seq : b->B;
    for (r = 0; r < n_adv; r++) {
        if (!isfinite(b->adv[r])) return D1__FAIL(D1_ERR_NONFINITE);
        if (b->elbo_w && ((b->old_logp && !(b->old_logp[r] <= 0.0f && isfinite(b->old_logp[r]))) ||
                          (beta != 0.0f && !(b->ref_logp[r] <= 0.0f && isfinite(b->ref_logp[r])))))
            return D1__FAIL(D1_ERR_NONFINITE); /* an ELBO is a sum of log-probs: <= 0 */
        for (k = 0; k < Lc && !b->elbo_w; k++) {
            size_t t = (size_t)r * Lc + k;
            if (b->score_mask[t] && ((b->old_logp && !(b->old_logp[t] <= 0.0f && isfinite(b->old_logp[t]))) ||
                                     (beta != 0.0f && !(b->ref_logp[t] <= 0.0f && isfinite(b->ref_logp[t])))))
                return D1__FAIL(D1_ERR_NONFINITE);
        }
    }
    if (b->elbo_w)
        for (i = 0; i < (size_t)b->B * Lc; i++)
            if (b->score_mask[i] && !(b->elbo_w[i] >= 0.0f && isfinite(b->elbo_w[i]))) return D1__FAIL(D1_ERR_ARG);
    if (objective == D1_GRPO_SPG)
        for (r = 0; r < b->n_seq; r++)
            if (!(b->seq_len[r] > 0.0f) || !isfinite(b->seq_len[r])) return D1__FAIL(D1_ERR_ARG);
    if (!d1__params_finite(m)) return D1__FAIL(D1_ERR_NONFINITE);
    if ((rc = d1__ensure_grads(m)) != D1_OK) return rc;
    if ((rc = d1__ensure(m, b->B, b->T)) != D1_OK) return rc;
    d1__grpo_forward(m, b, 0);
    if (objective == D1_GRPO_SPG) return d1__grpo_loss_spg(m, b, loss);
    if (b->elbo_w) return d1__grpo_loss_seq(m, b, clip_eps, beta, loss, kl_sum, clipped);
    D1__GPU_RETURN(m, d1__gpu_grpo_loss(m, b, clip_eps, beta, objective, loss, kl_sum, clipped));
    a = &m->state->a;
    Lc = b->T - b->P;
    V = m->config.vocab_size;
    memset(a->dlogits, 0, (size_t)b->B * b->T * V * sizeof(float));
    for (r = 0; r < b->B; r++)
        for (k = 0; k < Lc; k++) {
            size_t row = (size_t)r * b->T + b->P + k, t = (size_t)r * Lc + k;
            float *d = a->dlogits + row * V;
            double logp, old, A = b->adv[r], L, g, kl = 0.0, dkl = 0.0;
            if (!b->score_mask[t]) continue;
            logp = (float)d1__token_logp(m->logits + row * V, V, b->tokens[row], d); /* d = softmax; float, as stored */
            if (beta != 0.0f) kl = d1__kl_of(b->kl, logp - (double)b->ref_logp[t], &dkl);
            if (objective == D1_GRPO_WD1) {
                L = -A * logp;
                g = -A;
            } else {
                int cut;
                old = b->old_logp ? (double)b->old_logp[t] : logp;
                L = d1__surrogate(exp(logp - old), A, clip_eps, b->dual_clip, &g, &cut);
                clips += cut;
            }
            L += beta * kl;
            g += beta * dkl;
            total += L;
            kls += kl;
            g /= b->denom;
            for (i = 0; i < (size_t)V; i++) d[i] = (float)(-g * d[i]); /* dL/dl = g (onehot - p) */
            d[b->tokens[row]] += (float)g;
        }
    if (!isfinite(total)) return D1__FAIL(D1_ERR_NONFINITE);
    d1__backward(m, a->dlogits);
    *loss = (float)(total / b->denom);
    if (kl_sum) *kl_sum += kls;
    if (clipped) *clipped += clips;
    return D1_OK;
}

/* ---- d1_grpo_step, phase by phase ------------------------------------------
   One iteration's state lives in d1__grpo_work; its phases run in order:
     a. rollout      G completions per prompt, in one sampler batch
     b. rewards      each reward function and their weighted sum; the
                     completion mask (up to and including the first EOS)
     c. advantages   A = r - group mean (ESPO: leave-one-out mean; / (std +
                     1e-4) when scaled; wd1: omega)
     d. masks        mu inner iterations' input and scored masks (and ELBO
                     weights), from the estimator (d1__grpo_estimators: one
                     masks function each, and how many passes it needs)
     e. logp passes  old (inner iterations 1..mu-1: at 0 the policy IS the
                     old one, rho = 1) and reference (beta > 0) log-probs or
                     ELBOs, no gradient
     f. updates      mu AdamW steps on the objective (d1_grpo_loss): token
                     level pass by pass; sequence level (ELBO) all passes of
                     an iteration in one batch of passes*R rows
   A new estimator is one masks function and one row of the table; a new
   objective is one case in d1_grpo_loss. */
typedef struct d1__grpo_work {
    d1_model *policy, *ref;
    d1_adamw *opt;
    const d1_grpo_desc *d;
    d1_rng   *rng;          /* a copy of the caller's, committed once the weights move */
    int       n_prompts, G, R, P, T, Lc, mu;
    int       passes;       /* forward passes per inner iteration (the estimator's)      */
    int       seq;          /* 1: sequence level (ELBO weights, one ratio per sequence)   */
    size_t    RT, RL;
    int      *rp, *rl;      /* [R, P] prompts repeated G times, [R] their lengths       */
    int      *canvas;       /* [R, T] prompt + completion; sequence level: [passes][R, T],
                               the copies that one update's batch holds                 */
    float    *rew;          /* [R, n_rewards + 1]: the weighted sum, then each function  */
    float    *adv;          /* [R] advantages (wd1: omega)                              */
    float    *old_lp, *ref_lp; /* [mu][R, Lc] per token, or [mu][R] ELBOs                */
    float    *tmp_lp;       /* [passes][R, Lc] one inner iteration's log-probs          */
    float    *wt;           /* [mu][passes][R, Lc] ELBO weights (sequence level), or NULL */
    double   *den;          /* [mu] each inner iteration's loss denominator (its masks')  */
    int      *rev;          /* [R, Lc] the sampler step that revealed each token (d2)     */
    float    *slen;         /* [R] completion lengths (SPG's loss weights), or NULL       */
    int       n_seg, n_steps; /* trajectory: segments N, the sampler's steps              */
    uint8_t  *cm;           /* [R, Lc] completion mask                                  */
    uint8_t  *in, *sc;      /* [mu][passes][R, T] input masks, [mu][passes][R, Lc] scored */
    uint8_t  *km;           /* [R, T] (sequence level: [passes][R, T]) 0 at left padding,
                               the sampler's key mask, so that the log-prob passes score
                               a rollout in the context it was sampled in; NULL unpadded */
    double    kl, clip, scored_total;
    d1_grpo_stats st;
} d1__grpo_work;

/* d. The estimators' masks of inner iteration `it`: input[passes][R,T] (1 =
   the model sees [MASK]), score[passes][R,Lc] (the completion tokens a pass
   puts into the loss) and, at sequence level, weight[passes][R,Lc] (each
   scored token's weight in its ELBO; NULL otherwise); each returns the
   loss's denominator for the iteration. Row r's prompt is its last rl[r] of P positions. Every
   estimator draws P uniforms per row for the prompt first (d1's prompt mask,
   applied by the one-step estimator only), so the streams line up. */
static void d1__grpo_prompt_draws(const d1_grpo_desc *d, int P, int pad, int apply, d1_rng *rng, uint8_t *in) {
    int i;
    for (i = 0; i < P; i++) in[i] = (uint8_t)(d1_rng_uniform(rng) < d->p_mask_prompt && i >= pad && apply);
}
/* group_masks: row r replays the random numbers its group's first row drew
   (saved in *first), so all G rows of a group build the same masks; a no-op
   otherwise. Call at the start of each row's draws. */
static void d1__grpo_row_stream(const d1__grpo_work *w, int r, d1_rng *rng, d1_rng *first) {
    if (!w->d->group_masks) return;
    if (r % w->G == 0) *first = *rng;
    else *rng = *first;
}
/* d1 (the one-step estimator): the prompt at p_mask_prompt, the whole
   completion masked, every completion token scored. One pass. */
static double d1__grpo_masks_one_step(const d1__grpo_work *w, int it, d1_rng *rng, uint8_t *input,
                                      uint8_t *score, float *weight) {
    int r, i, P = w->P, T = w->T, Lc = w->Lc;
    double n = 0.0;
    d1_rng first;
    (void)it; (void)weight;
    for (r = 0; r < w->R; r++) {
        uint8_t *in = input + (size_t)r * T, *sc = score + (size_t)r * Lc;
        d1__grpo_row_stream(w, r, rng, &first);
        d1__grpo_prompt_draws(w->d, P, P - w->rl[r], 1, rng, in);
        for (i = 0; i < Lc; i++) {
            in[P + i] = 1;
            n += sc[i] = w->cm[(size_t)r * Lc + i];
        }
    }
    return n;
}
/* DiffuCoder's coupled masks: completion tokens masked at t ~ U(0.2, 0.8);
   pass 1 scores the masked ones, pass 2 (the complement: input[1]) the rest.
   The prompt is kept. Two passes. */
static double d1__grpo_masks_coupled(const d1__grpo_work *w, int it, d1_rng *rng, uint8_t *input,
                                     uint8_t *score, float *weight) {
    int r, i, P = w->P, T = w->T, Lc = w->Lc;
    double n = 0.0;
    d1_rng first;
    (void)it; (void)weight;
    for (r = 0; r < w->R; r++) {
        uint8_t *in = input + (size_t)r * T, *in2 = in + w->RT;
        uint8_t *sc = score + (size_t)r * Lc, *sc2 = sc + w->RL;
        const uint8_t *c = w->cm + (size_t)r * Lc;
        float t;
        d1__grpo_row_stream(w, r, rng, &first);
        d1__grpo_prompt_draws(w->d, P, P - w->rl[r], 0, rng, in);
        t = 0.2f + 0.6f * d1_rng_uniform(rng);
        for (i = 0; i < Lc; i++) {
            int masked = d1_rng_uniform(rng) < t;
            in[P + i] = (uint8_t)masked;
            sc[i] = (uint8_t)(c[i] && masked);
            sc2[i] = (uint8_t)(c[i] && !masked);
            n += c[i]; /* scored in one of the two passes */
        }
        for (i = 0; i < T; i++) in2[i] = i < P ? in[i] : !in[i];
    }
    return n;
}
/* UniGRPO (MMaDA): completion tokens masked at p ~ U(0, 1), the masked ones
   scored; the prompt kept. One pass. */
static double d1__grpo_masks_partial(const d1__grpo_work *w, int it, d1_rng *rng, uint8_t *input,
                                     uint8_t *score, float *weight) {
    int r, i, P = w->P, T = w->T, Lc = w->Lc;
    double n = 0.0;
    d1_rng first;
    (void)it; (void)weight;
    for (r = 0; r < w->R; r++) {
        uint8_t *in = input + (size_t)r * T, *sc = score + (size_t)r * Lc;
        const uint8_t *c = w->cm + (size_t)r * Lc;
        float t;
        d1__grpo_row_stream(w, r, rng, &first);
        d1__grpo_prompt_draws(w->d, P, P - w->rl[r], 0, rng, in);
        t = d1_rng_uniform(rng);
        for (i = 0; i < Lc; i++) {
            int masked = d1_rng_uniform(rng) < t;
            in[P + i] = (uint8_t)masked;
            n += sc[i] = (uint8_t)(c[i] && masked);
        }
    }
    return n;
}
/* ESPO's sequence ELBO (ML-GSAI/ESPO at b5f2dac, espo/espo_trainer.py: forward_process,
   lines 55-75; _get_elbo, lines 376-438; _get_elbo_mc, lines 440-476). Per
   Monte Carlo draw: one count k ~ U{0..Lc} for the batch, stratified counts
       x_r = round(k + r (Lc+1)/R) mod (Lc+1),   r = 0..R-1
   (torch.linspace then round half to even; here in exact integers), x_r of
   row r's Lc completion positions masked uniformly at random (selection
   sampling), p_r = x_r / (Lc+1). Pass 1 scores the masked positions with
   weight 1/p_r, pass 2 (the complement masked) the others with
   1/(Lc/(Lc+1) - p_r); both halved (ESPO's loss /= 2) and divided by the
   draws (their mean). The prompt is never masked and every completion
   position is scored: no completion mask, the EOS padding is part of the
   ELBO. Two passes per draw. ESPO stratifies over each micro-batch of a
   device (3 rows in its Sudoku recipe); d1.h over the whole batch of R
   (group_masks: over the R / G groups, s = r / G, S = R / G). */
static double d1__grpo_masks_elbo(const d1__grpo_work *w, int it, d1_rng *rng, uint8_t *input, uint8_t *score,
                                  float *weight) {
    int L = w->Lc, R = w->R, P = w->P, T = w->T, mc = w->passes / 2, dr, r, i;
    uint64_t S = (uint64_t)(w->d->group_masks ? R / w->G : R);
    d1_rng first;
    (void)it;
    for (dr = 0; dr < mc; dr++) {
        uint64_t k = d1_rng_u64(rng) % (uint64_t)(L + 1);
        for (r = 0; r < R; r++) {
            size_t o1 = 2 * (size_t)dr * w->RT + (size_t)r * T, o2 = o1 + w->RT;
            size_t s1 = 2 * (size_t)dr * w->RL + (size_t)r * L, s2 = s1 + w->RL;
            uint64_t s = (uint64_t)(w->d->group_masks ? r / w->G : r);
            uint64_t num = k * S + s * (uint64_t)(L + 1), q = num / S, rem = num % S;
            int x, left;
            float w1, w2;
            d1__grpo_row_stream(w, r, rng, &first);
            if (2 * rem > S || (2 * rem == S && (q & 1))) q++; /* half to even */
            x = (int)(q % (uint64_t)(L + 1));
            w1 = x > 0 ? (float)((L + 1.0) / (2.0 * mc * x)) : 0.0f;      /* 1/p / 2 / mc          */
            w2 = x < L ? (float)((L + 1.0) / (2.0 * mc * (L - x))) : 0.0f; /* 1/(L/(L+1)-p) / 2 / mc */
            memset(input + o1, 0, (size_t)P);
            memset(input + o2, 0, (size_t)P);
            for (i = 0, left = x; i < L; i++) { /* exactly x of the L, each subset equally likely */
                int masked = d1_rng_uniform_double(rng) * (L - i) < left;
                left -= masked;
                input[o1 + P + i] = score[s1 + i] = (uint8_t)masked;
                input[o2 + P + i] = score[s2 + i] = (uint8_t)!masked;
                weight[s1 + i] = masked ? w1 : 0.0f;
                weight[s2 + i] = masked ? 0.0f : w2;
            }
        }
    }
    return (double)R; /* ESPO's loss is a mean over sequences */
}

/* d2 StepMerge (kuleshov-group/d2 at 381b9f1, diffu-grpo/diffu_grpo_trainer.py: generate,
   lines 803-880, records the canvas at each segment's start and which
   tokens each segment revealed; _get_per_token_logps, lines 947-979, scores
   a segment from its canvas; compute_loss, lines 688-735). The sampler's S
   steps are cut at b_j = floor(j S / N), j = 1..N-1 (d2: int(j * (S / N)));
   a token revealed at step s belongs to segment k = #{j : b_j <= s}, and
   the canvas at the start of segment k shows exactly the tokens revealed
   before step b_k (b_0 = 0). Row r at inner iteration it scores segment
   k = (r + it) mod N (group_masks: (r / G + it) mod N, one segment per
   group): the input is d1's prompt mask ⊕ that canvas, the
   scored tokens those of segment k up to the first EOS, and the loss
   divides by (completion tokens) / N. (d2's trainer gives the j-th
   micro-batch of an optimizer step segment j mod N; d1.h has no
   micro-batches, so the rows rotate instead: each of a row's segments is
   scored once in N iterations.) One pass. */
static int d1__grpo_segment_start(const d1__grpo_work *w, int k) {
    return (int)((int64_t)k * w->n_steps / w->n_seg);
}
static double d1__grpo_masks_trajectory(const d1__grpo_work *w, int it, d1_rng *rng, uint8_t *input,
                                        uint8_t *score, float *weight) {
    int r, i, P = w->P, T = w->T, Lc = w->Lc, N = w->n_seg;
    double n = 0.0;
    d1_rng first;
    (void)weight;
    for (r = 0; r < w->R; r++) {
        uint8_t *in = input + (size_t)r * T, *sc = score + (size_t)r * Lc;
        const int *rev = w->rev + (size_t)r * Lc;
        int k = ((w->d->group_masks ? r / w->G : r) + it) % N;
        int b0 = d1__grpo_segment_start(w, k), b1 = d1__grpo_segment_start(w, k + 1);
        d1__grpo_row_stream(w, r, rng, &first);
        d1__grpo_prompt_draws(w->d, P, P - w->rl[r], 1, rng, in);
        for (i = 0; i < Lc; i++) {
            in[P + i] = (uint8_t)(rev[i] >= b0);                     /* not yet revealed at b0 */
            sc[i] = (uint8_t)(rev[i] >= b0 && rev[i] < b1 && w->cm[(size_t)r * Lc + i]);
            n += w->cm[(size_t)r * Lc + i];
        }
    }
    return n / N; /* d2: sum over segment k x N / (completion tokens) */
}
/* SPG's block-wise masks (facebookresearch/SPG at a1c7120, spg/spg_trainer.py:
   forward_process, forward_type "block_random", lines 334-380; with SPG's
   min_t 0, max_t 1). Row r with completion length n (up to and including
   the first EOS) in blocks of the sampler's block_len (nb of them, the
   completion's cnb = (n-1)/bl + 1): mc_draws distinct blocks drawn without
   replacement (randperm[:num_t]), each taken mod cnb; for draw j with
   block c starting at bs = c bl and m = min(bl, n - bs) completion tokens:
   k ~ U{1..m} of those m positions masked (of all bl when c is the last
   block and full), the block's positions past m and every position after
   the block masked; positions past n masked; every other position (the
   prompt and the earlier blocks) masked at p_mask_prompt. Scored: the
   masked completion tokens within n, each weighing 1/(draws x their
   count) (the mean over tokens, then over draws). The loss divides by
   the sum of the lengths. */
static double d1__grpo_masks_block(const d1__grpo_work *w, int it, d1_rng *rng, uint8_t *input, uint8_t *score,
                                   float *weight) {
    int R = w->R, P = w->P, T = w->T, L = w->Lc, nt = w->passes, r, j, i, q;
    int bl = w->d->sampler.block_len ? w->d->sampler.block_len : L, nb = L / bl;
    int chosen[64]; /* nt <= 64 (mc_draws) */
    double den = 0.0;
    d1_rng first;
    (void)it;
    for (r = 0; r < R; r++) {
        const uint8_t *cm = w->cm + (size_t)r * L;
        int n = 0, cnb;
        d1__grpo_row_stream(w, r, rng, &first);
        for (i = 0; i < L; i++) n += cm[i];
        cnb = (n - 1) / bl + 1;
        den += n;
        for (j = 0; j < nt; j++) { /* the j-th of a random permutation of the nb blocks */
            int u = (int)(d1_rng_u64(rng) % (uint64_t)(nb - j)), c = -1;
            while (u >= 0) {
                int taken = 0;
                c++;
                for (q = 0; q < j; q++) taken |= chosen[q] == c;
                u -= !taken;
            }
            chosen[j] = c;
        }
        for (j = 0; j < nt; j++) {
            uint8_t *in = input + (size_t)j * w->RT + (size_t)r * T, *sc = score + (size_t)j * w->RL + (size_t)r * L;
            float *wt = weight + (size_t)j * w->RL + (size_t)r * L;
            int c = chosen[j] % cnb, bs = c * bl, m = D1__MIN(bl, n - bs), pick_of = c == nb - 1 && m == bl ? bl : m;
            int left = 1 + (int)(d1_rng_u64(rng) % (uint64_t)m), count = 0;
            for (i = 0; i < L; i++) {
                int masked = i >= n || i >= bs + bl;
                if (i >= bs && i < bs + bl) {
                    if (i - bs < pick_of) { /* selection sampling: exactly `left` of the pick_of */
                        int hit = d1_rng_uniform_double(rng) * (pick_of - (i - bs)) < left;
                        left -= hit;
                        masked = hit;
                    } else masked = 1;
                }
                in[P + i] = (uint8_t)masked;
            }
            for (i = 0; i < T; i++) { /* every position left visible, at p_mask_prompt (not the padding) */
                if (i < P) in[i] = (uint8_t)(i >= P - w->rl[r] && d1_rng_uniform(rng) < w->d->p_mask_prompt);
                else if (!in[i]) in[i] = (uint8_t)(d1_rng_uniform(rng) < w->d->p_mask_prompt);
            }
            for (i = 0; i < L; i++) count += sc[i] = (uint8_t)(in[P + i] && i < n);
            for (i = 0; i < L; i++) wt[i] = sc[i] ? (float)(1.0 / ((double)nt * count)) : 0.0f;
        }
    }
    return den;
}

typedef struct d1__grpo_estimator {
    double (*masks)(const d1__grpo_work *w, int it, d1_rng *rng, uint8_t *input, uint8_t *score, float *weight);
    int passes;  /* per inner iteration (sequence level: per Monte Carlo draw)   */
    int seq;     /* 1: sequence level (weights; one ratio per sequence)         */
} d1__grpo_estimator;
static const d1__grpo_estimator d1__grpo_estimators[6] = { /* by D1_LOGP_* */
    {d1__grpo_masks_one_step, 1, 0}, {d1__grpo_masks_coupled, 2, 0}, {d1__grpo_masks_partial, 1, 0},
    {d1__grpo_masks_elbo, 2, 1}, {d1__grpo_masks_trajectory, 1, 0}, {d1__grpo_masks_block, 1, 1}};

static int d1__grpo_check(const d1_model *policy, const d1_model *ref, const d1_adamw *opt, const d1_grpo_desc *d) {
    int j;
    if (!policy || !policy->state || !opt || !d)
        return D1__FAILF(D1_ERR_ARG, "%s is NULL", !policy || !policy->state ? "the policy" : !opt ? "opt" : "desc");
    D1__REFUSE_RESIDENT(policy);
    if (d->group_size < 2) /* one completion has advantage 0 by construction */
        return D1__FAILF(D1_ERR_SETTING, "group_size %d: a group needs >= 2 completions (one has advantage 0)",
                         d->group_size);
    if (d->inner_steps < 1) return D1__FAILF(D1_ERR_SETTING, "inner_steps (mu) %d: must be >= 1", d->inner_steps);
    if (!(d->p_mask_prompt >= 0.0f && d->p_mask_prompt < 1.0f))
        return D1__FAILF(D1_ERR_SETTING, "p_mask_prompt %g: must be in [0, 1)", d->p_mask_prompt);
    if (!(d->clip_eps >= 0.0f)) return D1__FAILF(D1_ERR_SETTING, "clip_eps %g: must be >= 0", d->clip_eps);
    if (!(d->beta >= 0.0f) || !isfinite(d->beta))
        return D1__FAILF(D1_ERR_SETTING, "beta %g: must be finite and >= 0", d->beta);
    if (d->objective < D1_GRPO_CLIPPED || d->objective > D1_GRPO_SPG)
        return D1__FAILF(D1_ERR_SETTING, "objective %d: not a D1_GRPO_* (0..%d)", d->objective, D1_GRPO_SPG);
    if (d->estimator < D1_LOGP_ONE_STEP || d->estimator > D1_LOGP_BLOCK)
        return D1__FAILF(D1_ERR_SETTING, "estimator %d: not a D1_LOGP_* (0..%d)", d->estimator, D1_LOGP_BLOCK);
    if (d->kl < D1_KL_K3 || d->kl > D1_KL_K2) return D1__FAILF(D1_ERR_SETTING, "kl %d: not a D1_KL_*", d->kl);
    if (d->mc_draws < 0 || d->mc_draws > 64)
        return D1__FAILF(D1_ERR_SETTING, "mc_draws %d: must be in [0, 64]", d->mc_draws);
    if (d->segments < 0) return D1__FAILF(D1_ERR_SETTING, "segments %d: must be >= 0", d->segments);
    if (d->estimator == D1_LOGP_TRAJECTORY && /* a fixed schedule of at least N steps */
        (d->sampler.threshold > 0.0f || d->sampler.stop_at_eos ||
         (d->segments ? d->segments : 8) > (d->sampler.steps ? d->sampler.steps : d->sampler.gen_len)))
        return D1__FAILF(D1_ERR_SETTING, "the trajectory estimator needs a fixed schedule of >= segments (%d) steps: "
                         "threshold %g, stop_at_eos %d, steps %d", d->segments ? d->segments : 8,
                         d->sampler.threshold, d->sampler.stop_at_eos, d->sampler.steps ? d->sampler.steps :
                         d->sampler.gen_len);
    if (d->estimator == D1_LOGP_ELBO && d->objective != D1_GRPO_CLIPPED) /* ESPO's ratio only */
        return D1__FAILF(D1_ERR_SETTING, "estimator D1_LOGP_ELBO goes with objective D1_GRPO_CLIPPED, not %d",
                         d->objective);
    if ((d->estimator == D1_LOGP_BLOCK) != (d->objective == D1_GRPO_SPG)) /* SPG's pair */
        return D1__FAILF(D1_ERR_SETTING, "estimator D1_LOGP_BLOCK and objective D1_GRPO_SPG go together "
                         "(estimator %d, objective %d)", d->estimator, d->objective);
    if (d->objective == D1_GRPO_SPG) { /* no KL; distinct blocks for the draws; the EUBO's settings */
        int bl = d->sampler.block_len > 0 ? d->sampler.block_len : d->sampler.gen_len;
        if (d->beta != 0.0f) return D1__FAILF(D1_ERR_SETTING, "SPG has no KL term: beta %g must be 0", d->beta);
        if (bl <= 0 || D1__MAX(d->mc_draws, 1) > d->sampler.gen_len / bl)
            return D1__FAILF(D1_ERR_SETTING, "SPG: mc_draws %d needs as many blocks (gen_len %d / block_len %d)",
                             d->mc_draws, d->sampler.gen_len, bl);
        if (!(d->eubo_beta >= 0.0f) || !isfinite(d->eubo_beta) || !(d->eubo_mix >= 0.0f && d->eubo_mix <= 1.0f))
            return D1__FAILF(D1_ERR_SETTING, "SPG: eubo_beta %g (finite, >= 0), eubo_mix %g (in [0, 1])",
                             d->eubo_beta, d->eubo_mix);
    }
    if (d->group_masks != 0 && d->group_masks != 1)
        return D1__FAILF(D1_ERR_SETTING, "group_masks %d: must be 0 (each row its own masks) or 1 (per group)",
                         d->group_masks);
    if (!(d->dual_clip == 0.0f || (d->dual_clip > 1.0f && isfinite(d->dual_clip))) ||
        (d->dual_clip != 0.0f && d->objective != D1_GRPO_CLIPPED))
        return D1__FAILF(D1_ERR_SETTING, "dual_clip %g with objective %d: 0 (off), or c > 1 with D1_GRPO_CLIPPED "
                         "(the others take no ratio)", d->dual_clip, d->objective);
    if ((d->estimator >= D1_LOGP_ELBO || d->kl != D1_KL_K3 || d->group_masks || d->dual_clip != 0.0f) &&
        d1__on_gpu(policy))
        return D1__FAILF(D1_ERR_UNSUPPORTED,
                         "estimator %d / kl %d / group_masks %d / dual_clip %g on a GPU model (not yet checked on "
                         "a GPU)", d->estimator, d->kl, d->group_masks, d->dual_clip);
    if (!d->rewards || d->n_rewards < 1 || d->n_rewards > D1_MAX_REWARDS)
        return D1__FAILF(D1_ERR_ARG, "rewards %s, n_rewards %d: need 1..%d reward functions",
                         d->rewards ? "given" : "NULL", d->n_rewards, D1_MAX_REWARDS);
    for (j = 0; j < d->n_rewards; j++)
        if (!d->rewards[j].fn || !isfinite(d->rewards[j].weight))
            return D1__FAILF(D1_ERR_ARG, "rewards[%d]: fn %s, weight %g (a function and a finite weight)", j,
                             d->rewards[j].fn ? "set" : "NULL", d->rewards[j].weight);
    if (d->beta > 0.0f && (!ref || !ref->param_memory))
        return D1__FAILF(D1_ERR_ARG, "beta %g > 0 needs a reference model (ref is NULL or not set up)", d->beta);
    if (d->beta > 0.0f && memcmp(&ref->config, &policy->config, sizeof ref->config))
        return D1__FAILF(D1_ERR_CONFIG, "the reference model's config differs from the policy's");
    if (ref == policy && d->beta > 0.0f && !policy->lora) /* it would be no reference */
        return D1__FAILF(D1_ERR_ARG, "ref == policy with beta %g > 0: only a LoRA policy is its own reference (its "
                         "base)", d->beta);
    return D1_OK;
}

/* The trajectory estimator's record of the rollout: the step at which each
   completion token was revealed (then the caller's own callback, if any). */
static void d1__grpo_record_reveals(const d1_sample_event *ev, void *user) {
    d1__grpo_work *w = (d1__grpo_work *)user;
    int r, i;
    for (r = 0; r < ev->B; r++)
        for (i = 0; i < w->Lc; i++)
            if (ev->revealed[(size_t)r * ev->T + w->P + i]) w->rev[(size_t)r * w->Lc + i] = ev->step;
    if (w->d->sampler.callback) w->d->sampler.callback(ev, w->d->sampler.user);
}

/* a. G completions per prompt, in one batch */
static int d1__grpo_rollout(d1__grpo_work *w, const int *prompts, const int *prompt_lens) {
    d1_sampler_desc sd = w->d->sampler;
    d1_sample_stats ss;
    double t0;
    int r, rc;
    for (r = 0; r < w->R; r++) {
        int i;
        if (w->P > 0)
            memcpy(w->rp + (size_t)r * w->P, prompts + (size_t)(r / w->G) * w->P, (size_t)w->P * sizeof(int));
        w->rl[r] = prompt_lens ? prompt_lens[r / w->G] : w->P;
        for (i = 0; w->km && i < w->T; i++) w->km[(size_t)r * w->T + i] = (uint8_t)(i >= w->P - w->rl[r]);
    }
    if (w->rev) { sd.callback = d1__grpo_record_reveals; sd.user = w; }
    t0 = d1__now();
    rc = d1_sampler_generate(w->policy, &sd, w->rp, w->R, w->P, w->rl, w->rng, w->canvas, &ss);
    w->st.t_generate = d1__now() - t0;
    if (rc == D1_OK) {
        w->st.forward_passes += ss.forward_passes;
        w->st.rollout_rows = ss.forward_rows;
    }
    return rc;
}

/* b. rewards (each function's value and their weighted sum) and the
   completion mask up to and including the first EOS */
static int d1__grpo_rewards(d1__grpo_work *w) {
    const d1_grpo_desc *d = w->d;
    d1_rollout ro;
    int r, i, j, nr1 = d->n_rewards + 1;
    for (r = 0; r < w->R; r++) {
        const int *o = w->canvas + (size_t)r * w->T + w->P;
        int eos_at = w->Lc;
        for (i = 0; i < w->Lc; i++)
            if (o[i] == w->policy->config.eos_id) { eos_at = i; break; }
        for (i = 0; i < w->Lc; i++) w->cm[(size_t)r * w->Lc + i] = (uint8_t)(i <= eos_at);
        w->slen[r] = (float)D1__MIN(eos_at + 1, w->Lc);
        w->st.completion_len += w->slen[r] / (float)w->R;
        w->rew[(size_t)r * nr1] = 0.0f;
        ro.prompt = w->canvas + (size_t)r * w->T + w->P - w->rl[r];
        ro.prompt_len = w->rl[r];
        ro.completion = o;
        ro.completion_len = eos_at;
        ro.prompt_index = r / w->G;
        ro.member = r % w->G;
        for (j = 0; j < d->n_rewards; j++) {
            float v = d->rewards[j].fn(&ro, d->rewards[j].user);
            if (!isfinite(v))
                return D1__FAILF(D1_ERR_NONFINITE, "rewards[%d] (%s) returned %g for prompt %d, member %d", j,
                                 d->rewards[j].name ? d->rewards[j].name : "unnamed", v, ro.prompt_index, ro.member);
            w->rew[(size_t)r * nr1 + 1 + j] = v;
            w->rew[(size_t)r * nr1] += d->rewards[j].weight * v;
        }
    }
    /* the batch's reward statistics, for the log: mean and unbiased std of each column */
    for (j = 0; j < nr1; j++) {
        double s1 = 0.0, s2 = 0.0, sd;
        for (r = 0; r < w->R; r++) s1 += w->rew[(size_t)r * nr1 + j];
        for (r = 0; r < w->R; r++) {
            double e = w->rew[(size_t)r * nr1 + j] - s1 / w->R;
            s2 += e * e;
        }
        sd = sqrt(s2 / (w->R > 1 ? w->R - 1 : 1));
        if (j == 0) { w->st.reward_mean = (float)(s1 / w->R); w->st.reward_std = (float)sd; }
        else { w->st.reward_fn_mean[j - 1] = (float)(s1 / w->R); w->st.reward_fn_std[j - 1] = (float)sd; }
    }
    return D1_OK;
}

/* c. group advantages: A = r - mean (/ (std + 1e-4) when scaled; std
   unbiased); with leave_one_out the baseline is the mean of the group's
   other G-1 rewards (ESPO, espo_trainer.py lines 693-702); wd1 turns them
   into its weights omega */
static void d1__grpo_advantages(d1__grpo_work *w) {
    const d1_grpo_desc *d = w->d;
    int r, i, G = w->G, nr1 = d->n_rewards + 1;
    for (r = 0; r < w->R; r += G) {
        double mean = 0.0, var = 0.0;
        int all_equal = 1;
        for (i = r; i < r + G; i++) {
            mean += w->rew[(size_t)i * nr1] / G;
            all_equal &= w->rew[(size_t)i * nr1] == w->rew[(size_t)r * nr1];
        }
        for (i = r; i < r + G; i++) {
            double e = w->rew[(size_t)i * nr1] - mean;
            var += e * e / (G - 1);
        }
        for (i = r; i < r + G; i++) {
            double A = w->rew[(size_t)i * nr1] - mean;
            if (d->leave_one_out) A *= (double)G / (G - 1); /* r - (G mean - r)/(G-1) */
            w->adv[i] = (float)(d->scale_rewards ? A / (sqrt(var) + 1e-4) : A);
        }
        w->st.zero_std_frac += (float)all_equal / (float)w->n_prompts;
    }
    if (d->objective == D1_GRPO_WD1) d1_wd1_weights(w->adv, w->R, G, w->adv);
}

/* A batch over inner iteration it's masks: pass `pass` alone (R rows), or
   at sequence level with pass < 0 every pass at once (passes*R rows, row
   p*R + r a copy of sequence r). */
static d1_grpo_batch d1__grpo_batch_of(const d1__grpo_work *w, int it, int pass) {
    d1_grpo_batch gb;
    size_t first = (size_t)it * w->passes + (pass < 0 ? 0 : (size_t)pass);
    memset(&gb, 0, sizeof gb);
    gb.tokens = w->canvas;
    gb.B = pass < 0 ? w->passes * w->R : w->R;
    gb.T = w->T; gb.P = w->P;
    gb.input_mask = w->in + first * w->RT;
    gb.score_mask = w->sc + first * w->RL;
    gb.key_mask = w->km; /* pass < 0: its passes copies */
    gb.kl = w->d->kl;
    if (w->seq) {
        gb.elbo_w = w->wt + first * w->RL;
        gb.n_seq = w->R;
    }
    gb.seq_len = w->slen;
    gb.eubo_beta = w->d->eubo_beta > 0.0f ? w->d->eubo_beta : 1.0f;
    gb.eubo_mix = w->d->eubo_mix;
    return gb;
}

/* e. the mu masks (d), then the log-probs that need no gradient: the old
   policy's (= the policy now; for inner iterations 1..mu-1, and only for
   the clipped ratio: wd1 and SPG take none) and the reference's (beta > 0). Token level: each token from the pass that
   scores it. Sequence level: every pass's log-probs, then the ELBO of each
   sequence (d1_grpo_elbo). */
static int d1__grpo_logp_passes(d1__grpo_work *w) {
    const d1__grpo_estimator *e = &d1__grpo_estimators[w->d->estimator];
    size_t stride = w->seq ? (size_t)w->R : w->RL; /* one iteration's old / ref values */
    double t0 = d1__now();
    int it, j, pass, rc, ratio = w->d->objective == D1_GRPO_CLIPPED; /* wd1 and SPG take no ratio */
    for (it = 0; it < w->mu; it++)
        w->den[it] = e->masks(w, it, w->rng, w->in + (size_t)it * w->passes * w->RT,
                              w->sc + (size_t)it * w->passes * w->RL,
                              w->wt ? w->wt + (size_t)it * w->passes * w->RL : NULL);
    for (it = 0; it < w->mu; it++)
        for (j = 0; j < 2; j++) { /* j = 0: the old policy, j = 1: the reference */
            float *dst = (j == 0 ? w->old_lp : w->ref_lp) + (size_t)it * stride;
            d1_model *who = j == 0 ? w->policy : w->ref;
            d1_grpo_batch all = d1__grpo_batch_of(w, it, -1);
            if ((j == 0 && (it == 0 || !ratio)) || (j == 1 && w->d->beta == 0.0f)) continue;
            for (pass = 0; pass < w->passes; pass++) {
                d1_grpo_batch gb = d1__grpo_batch_of(w, it, pass);
                float *lp = w->seq ? w->tmp_lp + (size_t)pass * w->RL : w->tmp_lp;
                size_t t;
                if (j == 1 && w->ref == w->policy) w->policy->lora->enabled = 0; /* the base, adapters off */
                rc = d1_grpo_logprobs(who, &gb, lp);
                if (j == 1 && w->ref == w->policy) w->policy->lora->enabled = 1;
                if (rc != D1_OK) return rc;
                w->st.forward_passes++;
                if (!w->seq)
                    for (t = 0; t < w->RL; t++)
                        if (pass == 0 || gb.score_mask[t]) dst[t] = lp[t];
            }
            if (w->seq && (rc = d1_grpo_elbo(&all, w->tmp_lp, dst)) != D1_OK) return rc;
        }
    w->st.t_logp = d1__now() - t0;
    return D1_OK;
}

/* f. mu gradient updates; update `it` uses mask `it`, as the old and
   reference log-probs did. A non-finite loss or gradient stops before its
   AdamW step (d1_grpo_loss, d1_adamw_step), so it never reaches the weights. */
static int d1__grpo_updates(d1__grpo_work *w) {
    const d1_grpo_desc *d = w->d;
    size_t stride = w->seq ? (size_t)w->R : w->RL;
    double t0 = d1__now();
    int it, pass, rc;
    for (it = 0; it < w->mu; it++) {
        float loss_it = 0.0f, gn = 0.0f;
        double scored = w->den[it]; /* the estimator's: tokens scored, sequences, ... */
        int n_calls = w->seq ? 1 : w->passes;
        if ((rc = d1_model_zero_grad(w->policy)) != D1_OK) return rc;
        for (pass = 0; pass < n_calls && scored > 0.0; pass++) {
            d1_grpo_batch gb = d1__grpo_batch_of(w, it, w->seq ? -1 : pass);
            float l = 0.0f;
            gb.adv = w->adv;
            gb.denom = (float)scored;
            gb.old_logp = it > 0 && d->objective == D1_GRPO_CLIPPED ? w->old_lp + (size_t)it * stride
                                                                     : NULL; /* at it = 0 old = the policy */
            gb.ref_logp = d->beta > 0.0f ? w->ref_lp + (size_t)it * stride : NULL;
            gb.dual_clip = d->dual_clip;
            if ((rc = d1_grpo_loss(w->policy, &gb, d->clip_eps, d->beta, d->objective, &l, &w->kl, &w->clip)) !=
                D1_OK)
                return rc;
            loss_it += l;
            w->st.forward_passes += w->seq ? w->passes : 1;
        }
        if ((rc = d1_adamw_step(w->opt, w->policy, &gn)) != D1_OK) return rc;
        w->st.updates++;
        w->st.loss += loss_it / w->mu;
        w->st.grad_norm += gn / w->mu;
        w->scored_total += scored;
    }
    w->st.t_update = d1__now() - t0;
    w->st.kl = (float)(w->kl / D1__MAX(w->scored_total, 1.0));
    w->st.clip_frac = (float)(w->clip / D1__MAX(w->scored_total, 1.0));
    return D1_OK;
}

/* g. the optional outputs of a successful step: rollouts, rewards, advantages */
static void d1__grpo_outputs(const d1__grpo_work *w) {
    const d1_grpo_desc *d = w->d;
    if (d->out_rollouts) memcpy(d->out_rollouts, w->canvas, w->RT * sizeof(int));
    if (d->out_rewards) memcpy(d->out_rewards, w->rew, (size_t)w->R * (d->n_rewards + 1) * sizeof(float));
    if (d->out_advantages) memcpy(d->out_advantages, w->adv, (size_t)w->R * sizeof(float));
}

D1_API int d1_grpo_step(d1_model *policy, d1_model *ref, d1_adamw *opt, const d1_grpo_desc *d,
                        const int *prompts, int n_prompts, int P, const int *prompt_lens, d1_rng *rng,
                        d1_grpo_stats *stats) {
    const d1__grpo_estimator *e;
    d1__grpo_work w;
    d1_rng rcopy;
    void *scratch;
    size_t n_lp, n_f, n_i, n_b, p;
    int rc, traj = d && d->estimator == D1_LOGP_TRAJECTORY;
    if ((rc = d1__grpo_check(policy, ref, opt, d)) != D1_OK) return rc;
    if (!rng || (!prompts && P > 0)) return D1__FAILF(D1_ERR_ARG, "%s is NULL", !rng ? "rng" : "prompts (with P > 0)");
    if (n_prompts <= 0 || P < 0 || n_prompts > INT_MAX / d->group_size)
        return D1__FAILF(D1_ERR_SHAPE, "n_prompts %d, P %d, group_size %d: n_prompts > 0, P >= 0, and "
                         "n_prompts x group_size must fit an int", n_prompts, P, d->group_size);
    if (d->sampler.gen_len <= 0 || d->sampler.gen_len > policy->config.max_seq_len - P)
        return D1__FAILF(D1_ERR_SHAPE, "P %d + sampler.gen_len %d = %.0f tokens, outside (P, max_seq_len %d]", P,
                         d->sampler.gen_len, (double)P + d->sampler.gen_len, policy->config.max_seq_len);
    e = &d1__grpo_estimators[d->estimator];
    memset(&w, 0, sizeof w);
    w.passes = e->passes * (e->seq ? D1__MAX(d->mc_draws, 1) : 1);
    if (n_prompts * d->group_size > INT_MAX / w.passes) return D1__FAIL(D1_ERR_SHAPE); /* passes*R rows in one batch */
    if (!d1__params_finite(policy)) return D1__FAIL(D1_ERR_NONFINITE);
    rcopy = *rng;
    w.policy = policy; w.ref = ref; w.opt = opt; w.d = d; w.rng = &rcopy; w.seq = e->seq;
    w.n_prompts = n_prompts; w.G = d->group_size; w.R = n_prompts * w.G; w.mu = d->inner_steps;
    w.P = P; w.Lc = d->sampler.gen_len; w.T = P + w.Lc;
    w.RT = (size_t)w.R * w.T; w.RL = (size_t)w.R * w.Lc;
    /* one allocation for the iteration: see d1__grpo_work for each buffer's shape */
    p = (size_t)w.passes;
    n_lp = w.seq ? (size_t)w.R : w.RL;                                   /* old / ref values per iteration */
    n_f = (size_t)w.R * (d->n_rewards + 3) + 2 * (size_t)w.mu * n_lp + p * w.RL + (w.seq ? w.mu * p * w.RL : 0);
    n_i = (size_t)w.R * P + (size_t)w.R + (w.seq ? p : 1) * w.RT + (traj ? w.RL : 0);
    n_b = w.RL + (size_t)w.mu * p * (w.RT + w.RL) + (prompt_lens ? (w.seq ? p : 1) * w.RT : 0);
    scratch = d1__alloc(sizeof(double) * w.mu + sizeof(float) * n_f + sizeof(int) * n_i + n_b);
    if (!scratch) return D1__FAIL(D1_ERR_NOMEM);
    w.den = (double *)scratch;
    w.rew = (float *)(w.den + w.mu); w.adv = w.rew + (size_t)w.R * (d->n_rewards + 1);
    w.slen = w.adv + w.R;
    w.old_lp = w.slen + w.R; w.ref_lp = w.old_lp + (size_t)w.mu * n_lp; w.tmp_lp = w.ref_lp + (size_t)w.mu * n_lp;
    w.wt = w.seq ? w.tmp_lp + p * w.RL : NULL;
    w.rp = (int *)(w.tmp_lp + p * w.RL + (w.seq ? w.mu * p * w.RL : 0));
    w.rl = w.rp + (size_t)w.R * P; w.canvas = w.rl + w.R;
    w.rev = traj ? w.canvas + (w.seq ? p : 1) * w.RT : NULL;
    w.cm = (uint8_t *)(w.canvas + (w.seq ? p : 1) * w.RT + (traj ? w.RL : 0));
    w.in = w.cm + w.RL; w.sc = w.in + (size_t)w.mu * p * w.RT;
    w.km = prompt_lens ? w.sc + (size_t)w.mu * p * w.RL : NULL;
    if (traj) { /* d2's segments over the sampler's steps; every token gets one (fixed schedule) */
        w.n_seg = d->segments ? d->segments : 8;
        w.n_steps = d->sampler.steps ? d->sampler.steps : d->sampler.gen_len;
        for (p = 0; p < w.RL; p++) w.rev[p] = INT_MAX;
    }

    rc = d1__grpo_rollout(&w, prompts, prompt_lens);         /* a */
    if (rc == D1_OK && w.seq)                                 /*   the copies of one update's batch */
        for (p = 1; p < (size_t)w.passes; p++) {
            memcpy(w.canvas + p * w.RT, w.canvas, w.RT * sizeof(int));
            if (w.km) memcpy(w.km + p * w.RT, w.km, w.RT);
        }
    if (rc == D1_OK) rc = d1__grpo_rewards(&w);              /* b */
    if (rc == D1_OK) d1__grpo_advantages(&w);                /* c */
    if (rc == D1_OK) rc = d1__grpo_logp_passes(&w);          /* d, e */
    if (rc == D1_OK) rc = d1__grpo_updates(&w);              /* f */
    if (rc == D1_OK) d1__grpo_outputs(&w);
    d1__free(scratch);
    if (w.st.updates > 0) *rng = rcopy;
    if (stats) *stats = w.st;
    return rc;
}

// >>checkpoints ---------------------------------------------------------------
/* Checkpoints, in reading order: messages of the status codes; number
   conversions (little-endian words, BF16/F16, decimal text <-> float);
   >>json a hardened JSON reader (a validator, then a cursor over checked
   text), a small writer and config.json; >>safetensors the tensor table, the
   writer and reader shared by the memory and the file functions, and the
   memory API; >>files atomic writes, single and sharded loads; >>train_state
   the training state, a model and its state as one unit, LoRA adapters on
   their own. */

#include <limits.h>
#ifndef D1_NO_STDIO
#include <stdio.h>
#include <errno.h>
#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#include <direct.h>
#include <io.h>
#define D1__WINDOWS 1
#elif defined(__unix__) || defined(__APPLE__)
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#define D1__POSIX 1
#endif
#endif


/* ---- numbers: byte order, BF16 / F16, decimal text ------------------------- */

/* 1 on a little-endian host. */
static int d1__little_endian(void) {
    uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}
/* The u64 stored little-endian at b, and the reverse. */
static uint64_t d1__get_u64le(const unsigned char *b) {
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}
static void d1__put_u64le(unsigned char *b, uint64_t v) {
    int i;
    for (i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}
/* Reverses the bytes of n 32-bit words in place (F32 on a big-endian host). */
static void d1__bswap32(void *p, size_t n) {
    unsigned char *b = (unsigned char *)p, t;
    size_t i;
    for (i = 0; i < n; i++, b += 4) {
        t = b[0]; b[0] = b[3]; b[3] = t;
        t = b[1]; b[1] = b[2]; b[2] = t;
    }
}

/* bfloat16 is the top half of a float. Rounding is to nearest, ties to even;
   a NaN stays a (quiet) NaN. */
static float d1__bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint16_t d1__f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
static float d1__f16_to_f32(uint16_t h) {
    uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, mant = h & 0x3ffu, u;
    float f;
    if (e == 0 && mant == 0) {
        u = s;
    } else if (e == 0) { /* subnormal: mant * 2^-24, normalised for the float */
        e = 113;
        while (!(mant & 0x400)) { mant <<= 1; e--; }
        u = s | (e << 23) | ((mant & 0x3ffu) << 13);
    } else if (e == 31) {
        u = s | 0x7f800000u | (mant << 13);
    } else {
        u = s | ((e + 112) << 23) | (mant << 13);
    }
    memcpy(&f, &u, 4);
    return f;
}
static uint16_t d1__f32_to_f16(float f) {
    uint32_t u, s, mant, h, rem, half;
    int e;
    memcpy(&u, &f, 4);
    s = (u >> 16) & 0x8000u;
    e = (int)((u >> 23) & 0xff) - 127 + 15;
    mant = u & 0x7fffffu;
    if (((u >> 23) & 0xff) == 0xff) return (uint16_t)(s | 0x7c00u | (mant ? 0x200u : 0)); /* inf, NaN */
    if (e >= 31) return (uint16_t)(s | 0x7c00u); /* overflow: infinity */
    if (e <= 0) {                                /* a half subnormal, or zero */
        int shift = 14 - e;
        if (e < -10) return (uint16_t)s;
        mant |= 0x800000u;
        h = mant >> shift;
        rem = mant & ((1u << shift) - 1);
        half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(s | h);
    }
    h = s | ((uint32_t)e << 10) | (mant >> 13);
    rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* a carry may reach infinity: right */
    return (uint16_t)h;
}

/* Bytes per element of a dtype, and its safetensors name. */
static size_t d1__dtype_size(int dtype) { return dtype == D1_DTYPE_F32 ? 4 : 2; }
static const char *d1__dtype_name(int dtype) {
    return dtype == D1_DTYPE_F32 ? "F32" : dtype == D1_DTYPE_BF16 ? "BF16" : "F16";
}

/* m * 10^e in double. Exact (one correctly rounded operation) for |e| <= 22
   and m < 2^53; a few ulps otherwise, which is all the float round trip needs. */
static double d1__scale10(double m, int e) {
    static const double p10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    if (m == 0.0) return 0.0;
    if (e > 400) return m * 1e300 * 1e300; /* +inf */
    if (e < -400) return 0.0;
    while (e > 22) { m *= 1e22; e -= 22; }
    while (e < -22) { m /= 1e22; e += 22; }
    return e >= 0 ? m * p10[e] : m / p10[-e];
}

/* Parses s[0..n) as exactly one JSON number (-?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?)
   into *out. Returns 1, or 0 if s is not such a number. Locale independent. */
static int d1__parse_number(const char *s, size_t n, double *out) {
    size_t i = 0;
    uint64_t mant = 0;
    int digits = 0, e10 = 0, exp = 0, eneg = 0, neg = 0;
    if (i < n && s[i] == '-') { neg = 1; i++; }
    if (i >= n || s[i] < '0' || s[i] > '9') return 0;
    if (s[i] == '0') {
        i++;
    } else {
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (digits < 19) { mant = mant * 10 + (uint64_t)(s[i] - '0'); digits++; }
            else e10++; /* digits past 19 only scale */
        }
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (mant == 0 && s[i] == '0') { e10--; continue; } /* the zeros of 0.000x */
            if (digits < 19) { mant = mant * 10 + (uint64_t)(s[i] - '0'); digits++; e10--; }
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        if (i >= n || s[i] < '0' || s[i] > '9') return 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (exp < 100000) exp = exp * 10 + (s[i] - '0');
    }
    if (i != n) return 0;
    *out = d1__scale10((double)mant, e10 + (eneg ? -exp : exp));
    if (neg) *out = -*out;
    return 1;
}

/* Parses s[0..n) as a decimal integer in [0, 2^64) (digits only, no sign, no
   leading zero unless "0"). Returns 1, or 0. */
static int d1__parse_u64(const char *s, size_t n, uint64_t *out) {
    uint64_t v = 0;
    size_t i;
    if (n == 0 || (s[0] == '0' && n > 1)) return 0;
    for (i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

/* Decimal digits of v into buf (no NUL); returns their count (<= 20). */
static size_t d1__u64_digits(uint64_t v, char *buf) {
    char t[20];
    size_t n = 0, i;
    do { t[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    for (i = 0; i < n; i++) buf[i] = t[n - 1 - i];
    return n;
}

/* |v| (finite, > 0) with p significant digits: *digits (an integer of exactly
   p digits) times 10^(*e10 - p + 1). */
static void d1__decimal(double v, int p, uint64_t *digits, int *e10) {
    double lo = d1__scale10(1.0, p - 1), hi = d1__scale10(1.0, p), scaled;
    int e = (int)floor(log10(v));
    uint64_t r;
    scaled = d1__scale10(v, p - 1 - e);
    if (scaled < lo) { e--; scaled = d1__scale10(v, p - 1 - e); }
    else if (scaled >= hi) { e++; scaled = d1__scale10(v, p - 1 - e); }
    r = (uint64_t)(scaled + 0.5);
    if ((double)r >= hi) { r /= 10; e++; }
    *digits = r;
    *e10 = e;
}

/* |v| (finite, > 0) with p significant digits in Python's repr style into
   buf (NUL-terminated, at most 24 bytes): positional for 1e-4 <= v < 1e16
   ("500000.0", "0.001"), else "1.5e-05". Returns the length. */
static size_t d1__format_digits(double v, int p, int neg, char *buf) {
    uint64_t d;
    char dig[24];
    size_t n = 0, nd, i;
    int e;
    d1__decimal(v, p, &d, &e);
    nd = d1__u64_digits(d, dig);
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    if (neg) buf[n++] = '-';
    if (e >= -4 && e < 16) {
        if (e >= 0) {
            for (i = 0; i <= (size_t)e; i++) buf[n++] = i < nd ? dig[i] : '0';
            buf[n++] = '.';
            if ((size_t)e + 1 >= nd) buf[n++] = '0';
            for (i = (size_t)e + 1; i < nd; i++) buf[n++] = dig[i];
        } else {
            buf[n++] = '0';
            buf[n++] = '.';
            for (i = 0; i < (size_t)(-e - 1); i++) buf[n++] = '0';
            for (i = 0; i < nd; i++) buf[n++] = dig[i];
        }
    } else {
        int ae = e < 0 ? -e : e;
        buf[n++] = dig[0];
        if (nd > 1) buf[n++] = '.';
        for (i = 1; i < nd; i++) buf[n++] = dig[i];
        buf[n++] = 'e';
        buf[n++] = e < 0 ? '-' : '+';
        if (ae < 10) buf[n++] = '0';
        n += d1__u64_digits((uint64_t)ae, buf + n);
    }
    buf[n] = 0;
    return n;
}

/* A finite float as the shortest decimal (at most 9 significant digits, which
   always suffice) that reads back to the same float, into buf[32]. Returns
   the length. Independent of the C locale. */
static size_t d1__format_float(float f, char *buf) {
    double v = fabs((double)f), back;
    size_t n = 0;
    int p;
    if (v == 0.0) {
        memcpy(buf, signbit(f) ? "-0.0" : "0.0", 5);
        return strlen(buf);
    }
    for (p = 1; p <= 9; p++) {
        n = d1__format_digits(v, p, signbit(f) != 0, buf);
        if (d1__parse_number(buf, n, &back) && (float)back == f) break;
    }
    return n;
}

/* FNV-1a hash (32 bits) of s[0..n): shard names, the tokenizer's tables. */
static uint32_t d1__fnv1a(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

// >>json ---------------------------------------------------------------------
/* ---- JSON reader ------------------------------------------------------------
   Two stages. d1__json_check validates a whole document (RFC 8259: strings
   with every escape incl. \uXXXX and surrogate pairs, UTF-8, numbers,
   literals, nesting at most D1__JSON_MAX_DEPTH deep, nothing after the value)
   without allocating. The cursor functions after it walk CHECKED text only,
   by index: they may trust the syntax, so they stay short. */
#define D1__JSON_MAX_DEPTH 64

typedef struct d1__json {
    const char *s;
    size_t n;
} d1__json;

/* The index of the first non-whitespace byte of s[i..n) (n if none). */
static size_t d1__json_ws(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}
/* The 4 hex digits at s[i] as *cp; 0 if they are not 4 hex digits. */
static int d1__hex4(const char *s, size_t n, size_t i, unsigned *cp) {
    unsigned v = 0;
    size_t k;
    if (i + 4 > n) return 0;
    for (k = i; k < i + 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *cp = v;
    return 1;
}
/* The length of the valid UTF-8 character at s[i..n), or 0 when the bytes
   there are not one (the count of bytes of its maximal valid prefix, at least
   1, goes to *bad: what one U+FFFD replaces, as Rust's from_utf8_lossy). */
static size_t d1__utf8_len(const unsigned char *s, size_t n, size_t i, size_t *bad) {
    unsigned c = s[i];
    size_t need, k;
    unsigned lo = 0x80, hi = 0xBF;
    *bad = 1;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    for (k = 1; k < need; k++) {
        unsigned b = i + k < n ? s[i + k] : 0;
        if (b < lo || b > hi) { *bad = k; return 0; }
        lo = 0x80; hi = 0xBF;
    }
    return need;
}

/* Checks the string whose '"' is at s[i]; *end = the index after its closing
   quote. */
static int d1__jv_string(const char *s, size_t n, size_t i, size_t *end) {
    for (i++; i < n;) {
        unsigned char c = (unsigned char)s[i];
        unsigned cp, lo;
        size_t len;
        if (c == '"') { *end = i + 1; return 1; }
        if (c < 0x20) return 0;
        if (c < 0x80 && c != '\\') { i++; continue; }
        if (c >= 0x80) {
            size_t bad;
            if (!(len = d1__utf8_len((const unsigned char *)s, n, i, &bad))) return 0;
            i += len;
            continue;
        }
        if (++i >= n) return 0; /* the escape */
        switch (s[i]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': i++; break;
        case 'u':
            if (!d1__hex4(s, n, i + 1, &cp)) return 0;
            i += 5;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return 0; /* a lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {         /* must pair with a low one */
                if (i + 2 > n || s[i] != '\\' || s[i + 1] != 'u' || !d1__hex4(s, n, i + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return 0;
                i += 6;
            }
            break;
        default: return 0;
        }
    }
    return 0;
}
/* Checks the number at s[i]; *end = the index after it. */
static int d1__jv_number(const char *s, size_t n, size_t i, size_t *end) {
    size_t j = i;
    double unused;
    if (j < n && s[j] == '-') j++;
    while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '.' || s[j] == 'e' || s[j] == 'E' ||
                     s[j] == '+' || s[j] == '-'))
        j++;
    if (!d1__parse_number(s + i, j - i, &unused)) return 0;
    *end = j;
    return 1;
}
/* Checks one value (after optional whitespace) at s[i], `depth` containers
   deep; *end = the index after it. */
static int d1__jv_value(const char *s, size_t n, size_t i, int depth, size_t *end) {
    i = d1__json_ws(s, n, i);
    if (i >= n) return 0;
    if (s[i] == '{' || s[i] == '[') {
        char close = s[i] == '{' ? '}' : ']';
        if (depth >= D1__JSON_MAX_DEPTH) return 0;
        i = d1__json_ws(s, n, i + 1);
        if (i < n && s[i] == close) { *end = i + 1; return 1; }
        for (;;) {
            if (close == '}') { /* "key" : */
                if (i >= n || s[i] != '"' || !d1__jv_string(s, n, i, &i)) return 0;
                i = d1__json_ws(s, n, i);
                if (i >= n || s[i] != ':') return 0;
                i++;
            }
            if (!d1__jv_value(s, n, i, depth + 1, &i)) return 0;
            i = d1__json_ws(s, n, i);
            if (i < n && s[i] == ',') { i = d1__json_ws(s, n, i + 1); continue; }
            if (i < n && s[i] == close) { *end = i + 1; return 1; }
            return 0;
        }
    }
    if (s[i] == '"') return d1__jv_string(s, n, i, end);
    if (n - i >= 4 && !memcmp(s + i, "true", 4)) { *end = i + 4; return 1; }
    if (n - i >= 5 && !memcmp(s + i, "false", 5)) { *end = i + 5; return 1; }
    if (n - i >= 4 && !memcmp(s + i, "null", 4)) { *end = i + 4; return 1; }
    return d1__jv_number(s, n, i, end);
}
/* 1 if s[0..n) is one valid JSON value, with optional surrounding whitespace. */
static int d1__json_check(const char *s, size_t n) {
    size_t end;
    if (!s || !d1__jv_value(s, n, 0, 0, &end)) return 0;
    return d1__json_ws(s, n, end) == n;
}

/* -- the cursor, over checked text. A value is named by the index of its
   first character; d1__json_start gives the top-level one. */
static size_t d1__json_start(const d1__json *j) { return d1__json_ws(j->s, j->n, 0); }

/* The index just after the value at i. */
static size_t d1__json_skip(const d1__json *j, size_t i) {
    const char *s = j->s;
    size_t n = j->n;
    int depth = 0;
    if (i >= n) return n;
    if (s[i] != '{' && s[i] != '[' && s[i] != '"') { /* number or literal */
        while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' &&
               s[i] != '\n' && s[i] != '\r')
            i++;
        return i;
    }
    for (; i < n; i++) {
        if (s[i] == '"') { /* a string: to its closing quote */
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\') i++;
        } else if (s[i] == '{' || s[i] == '[') {
            depth++;
        } else if (s[i] == '}' || s[i] == ']') {
            depth--;
        }
        if (depth == 0) return i + 1;
    }
    return n;
}

/* Steps through the members of an object: start with *it = the index of its
   '{' + 1. Returns 1 with *key (the key's '"') and *val (the value) set, or 0
   after the last member. */
static int d1__json_member(const d1__json *j, size_t *it, size_t *key, size_t *val) {
    size_t i = d1__json_ws(j->s, j->n, *it);
    if (i < j->n && j->s[i] == ',') i = d1__json_ws(j->s, j->n, i + 1);
    if (i >= j->n || j->s[i] != '"') return 0;
    *key = i;
    i = d1__json_ws(j->s, j->n, d1__json_skip(j, i)); /* at ':' */
    *val = d1__json_ws(j->s, j->n, i + 1);
    *it = d1__json_skip(j, *val);
    return 1;
}
/* Steps through the elements of an array, as d1__json_member. */
static int d1__json_element(const d1__json *j, size_t *it, size_t *val) {
    size_t i = d1__json_ws(j->s, j->n, *it);
    if (i < j->n && j->s[i] == ',') i = d1__json_ws(j->s, j->n, i + 1);
    if (i >= j->n || j->s[i] == ']') return 0;
    *val = i;
    *it = d1__json_skip(j, i);
    return 1;
}

/* Decodes the string at i (its '"') into out[cap] as UTF-8 with a NUL after
   it. Returns the decoded length, or (size_t)-1 when it needs cap bytes or
   more. out may be NULL (cap 0) to measure: then the length is returned. */
static size_t d1__json_str(const d1__json *j, size_t i, char *out, size_t cap) {
    const char *s = j->s;
    size_t n = 0;
    for (i++; i < j->n && s[i] != '"';) {
        unsigned cp = 0;
        char u[4];
        size_t k, len = 1;
        if (s[i] != '\\') {
            u[0] = s[i++];
        } else if (s[i + 1] != 'u') {
            char c = s[i + 1];
            u[0] = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
            i += 2;
        } else {
            d1__hex4(s, j->n, i + 2, &cp);
            i += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* checked: a low surrogate follows */
                unsigned lo = 0xDC00;
                d1__hex4(s, j->n, i + 2, &lo);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            if (cp < 0x80) { u[0] = (char)cp; }
            else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 63)); len = 2; }
            else if (cp < 0x10000) {
                u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 63));
                u[2] = (char)(0x80 | (cp & 63)); len = 3;
            } else {
                u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 63));
                u[2] = (char)(0x80 | ((cp >> 6) & 63)); u[3] = (char)(0x80 | (cp & 63)); len = 4;
            }
        }
        for (k = 0; k < len; k++, n++)
            if (out) {
                if (n + 1 >= cap) return (size_t)-1;
                out[n] = u[k];
            }
    }
    if (out) out[n] = 0;
    return n;
}
/* 1 if the string at i decodes to exactly the NUL-terminated lit. */
static int d1__json_str_is(const d1__json *j, size_t i, const char *lit) {
    char buf[128];
    size_t n = d1__json_str(j, i, buf, sizeof buf);
    return n != (size_t)-1 && n == strlen(lit) && !memcmp(buf, lit, n);
}
/* The value of member `key` of the object at obj: returns 1 with *val set, 0
   when absent, D1_ERR_DUPLICATE when the key occurs twice. */
static int d1__json_find(const d1__json *j, size_t obj, const char *key, size_t *val) {
    size_t it = obj + 1, k, v;
    int found = 0;
    while (d1__json_member(j, &it, &k, &v))
        if (d1__json_str_is(j, k, key)) {
            if (found) return D1__FAIL(D1_ERR_DUPLICATE);
            found = 1;
            *val = v;
        }
    return found;
}
/* The number at i as a non-negative integer (no sign, fraction or exponent,
   below 2^64). Returns 1, or 0 when it is not one. */
static int d1__json_u64(const d1__json *j, size_t i, uint64_t *out) {
    if (i >= j->n || j->s[i] < '0' || j->s[i] > '9') return 0;
    return d1__parse_u64(j->s + i, d1__json_skip(j, i) - i, out);
}

/* ---- JSON writer: a text buffer that counts what does not fit ---------------
   Writing with p == NULL (cap 0) measures; len > cap afterwards means the
   buffer was too small. */
typedef struct d1__text {
    char  *p;
    size_t cap, len;
} d1__text;

/* Appends s[0..n) (what fits; len counts it all). The helpers after it append
   a C string, a decimal integer, a float (d1__format_float). */
static void d1__put(d1__text *t, const char *s, size_t n) {
    if (t->len < t->cap) memcpy(t->p + t->len, s, D1__MIN(n, t->cap - t->len));
    t->len += n;
}
static void d1__puts(d1__text *t, const char *z) { d1__put(t, z, strlen(z)); }
static void d1__put_u64(d1__text *t, uint64_t v) {
    char b[20];
    d1__put(t, b, d1__u64_digits(v, b));
}
static void d1__put_float(d1__text *t, float f) {
    char b[32];
    d1__put(t, b, d1__format_float(f, b));
}
/* s[0..n) as a JSON string: quotes, \" \\ and control characters escaped;
   other bytes as they are (the input is UTF-8). */
static void d1__put_json_string(d1__text *t, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t i;
    d1__put(t, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2];
            e[0] = '\\'; e[1] = (char)c;
            d1__put(t, e, 2);
        } else if (c < 0x20) {
            char e[6];
            e[0] = '\\'; e[1] = 'u'; e[2] = '0'; e[3] = '0'; e[4] = hex[c >> 4]; e[5] = hex[c & 15];
            d1__put(t, e, 6);
        } else {
            d1__put(t, s + i, 1);
        }
    }
    d1__put(t, "\"", 1);
}

/* ---- config.json ------------------------------------------------------------- */

/* A config -> LLaDA's config.json text, in DESIGN.md's key order. */
D1_API int d1_config_to_json(const d1_config *cfg, char *buf, size_t cap) {
    d1_config c;
    d1__text t;
    int rc;
    if (!cfg || !buf) return D1__FAIL(D1_ERR_ARG);
    if ((rc = d1_config_resolve(cfg, &c)) != D1_OK) return rc;
    t.p = buf; t.cap = cap; t.len = 0;
#define D1__KEY_INT(k, v) d1__puts(&t, "  \"" k "\": "), d1__put_u64(&t, (uint64_t)(v)), d1__puts(&t, ",\n")
#define D1__KEY_ID(k, v) /* a special id: null for D1_TOKEN_NONE */ \
    do { if ((v) == D1_TOKEN_NONE) d1__puts(&t, "  \"" k "\": null,\n"); else { D1__KEY_INT(k, v); } } while (0)
    /* every key of LLaDA-8B's config.json, in its (alphabetical) order, with
       this model's values: the real configuration and modeling classes
       (auto_map) build the same function from it */
    d1__puts(&t, "{\n"
                 "  \"activation_type\": \"silu\",\n"
                 "  \"alibi\": false,\n"
                 "  \"alibi_bias_max\": 8.0,\n"
                 "  \"architectures\": [\"LLaDAModelLM\"],\n"
                 "  \"attention_dropout\": 0.0,\n"
                 "  \"attention_layer_norm\": false,\n"
                 "  \"attention_layer_norm_with_affine\": true,\n"
                 "  \"auto_map\": {\n"
                 "    \"AutoConfig\": \"configuration_llada.LLaDAConfig\",\n"
                 "    \"AutoModelForCausalLM\": \"modeling_llada.LLaDAModelLM\",\n"
                 "    \"AutoModel\": \"modeling_llada.LLaDAModelLM\"\n"
                 "  },\n"
                 "  \"bias_for_layer_norm\": false,\n"
                 "  \"block_group_size\": 1,\n"
                 "  \"block_type\": \"llama\",\n");
    D1__KEY_INT("d_model", c.dim);
    d1__puts(&t, "  \"embedding_dropout\": 0.0,\n");
    D1__KEY_INT("embedding_size", c.vocab_size);
    D1__KEY_ID("eos_token_id", c.eos_id);
    d1__puts(&t, "  \"flash_attention\": false,\n"
                 "  \"include_bias\": false,\n"
                 "  \"include_qkv_bias\": false,\n"
                 "  \"init_cutoff_factor\": null,\n"
                 "  \"init_device\": \"meta\",\n"
                 "  \"init_fn\": \"mitchell\",\n"
                 "  \"init_std\": 0.02,\n"
                 "  \"input_emb_norm\": false,\n"
                 "  \"layer_norm_type\": \"rms\",\n"
                 "  \"layer_norm_with_affine\": true,\n");
    D1__KEY_INT("mask_token_id", c.mask_id);
    D1__KEY_INT("max_sequence_length", c.max_seq_len);
    D1__KEY_INT("mlp_hidden_size", c.ffn_dim);
    d1__puts(&t, "  \"mlp_ratio\": 4,\n"
                 "  \"model_type\": \"llada\",\n"
                 "  \"multi_query_attention\": null,\n");
    D1__KEY_INT("n_heads", c.n_heads);
    D1__KEY_INT("n_kv_heads", c.n_kv_heads);
    D1__KEY_INT("n_layers", c.n_layers);
    D1__KEY_ID("pad_token_id", c.pad_id);
    d1__puts(&t, "  \"precision\": \"amp_bf16\",\n"
                 "  \"residual_dropout\": 0.0,\n");
    d1__puts(&t, "  \"rms_norm_eps\": "); d1__put_float(&t, c.norm_eps); d1__puts(&t, ",\n");
    d1__puts(&t, "  \"rope\": true,\n"
                 "  \"rope_full_precision\": true,\n");
    d1__puts(&t, "  \"rope_theta\": "); d1__put_float(&t, c.rope_theta); d1__puts(&t, ",\n");
    d1__puts(&t, "  \"scale_logits\": false,\n"
                 "  \"transformers_version\": \"4.46.3\",\n"
                 "  \"use_cache\": false,\n");
    D1__KEY_INT("vocab_size", c.vocab_size);
    d1__puts(&t, c.tied_embeddings ? "  \"weight_tying\": true\n}\n" : "  \"weight_tying\": false\n}\n");
#undef D1__KEY_INT
#undef D1__KEY_ID
    if (t.len >= cap) return D1__FAIL(D1_ERR_ARG);
    buf[t.len] = 0;
    return D1_OK;
}

/* The JSON value at v as text for a message (at most 40 characters). */
static const char *d1__json_excerpt(const d1__json *j, size_t v) {
    static D1__TLS char buf[48];
    size_t n = d1__json_skip(j, v) - v;
    snprintf(buf, sizeof buf, "%.*s%s", (int)(n > 40 ? 40 : n), j->s + v, n > 40 ? "..." : "");
    return buf;
}

/* Member `key` of the config object as an int >= 0 into *out. Returns D1_OK
   (found), 1 (absent or null, allowed when !required), or an error. */
static int d1__cfg_int(const d1__json *j, size_t obj, const char *key, int required, int *out) {
    size_t v;
    uint64_t u;
    int rc = d1__json_find(j, obj, key, &v);
    if (rc < 0) return rc;
    if (rc == 0 || j->s[v] == 'n')
        return required ? D1__FAILF(D1_ERR_CONFIG, "config.json: \"%s\" is %s", key, rc ? "null" : "missing") : 1;
    if (!d1__json_u64(j, v, &u) || u > INT_MAX)
        return D1__FAILF(D1_ERR_CONFIG, "config.json: \"%s\" is %s, not an integer in [0, %d]", key,
                         d1__json_excerpt(j, v), INT_MAX);
    *out = (int)u;
    return D1_OK;
}
/* Member `key` (required) as a special token id: null is D1_TOKEN_NONE. */
static int d1__cfg_id(const d1__json *j, size_t obj, const char *key, int *out) {
    size_t v;
    int rc = d1__json_find(j, obj, key, &v);
    if (rc < 0) return rc;
    if (rc == 1 && j->s[v] == 'n') {
        *out = D1_TOKEN_NONE;
        return D1_OK;
    }
    return d1__cfg_int(j, obj, key, 1, out);
}
/* Member `key` (required) as a finite float > 0. */
static int d1__cfg_float(const d1__json *j, size_t obj, const char *key, float *out) {
    size_t v;
    double d;
    int rc = d1__json_find(j, obj, key, &v);
    if (rc < 0) return rc;
    if (rc == 0) return D1__FAILF(D1_ERR_CONFIG, "config.json: \"%s\" is missing", key);
    if (!d1__parse_number(j->s + v, d1__json_skip(j, v) - v, &d) || !isfinite((float)d) || !((float)d > 0.0f))
        return D1__FAILF(D1_ERR_CONFIG, "config.json: \"%s\" is %s, not a finite number > 0", key,
                         d1__json_excerpt(j, v));
    *out = (float)d;
    return D1_OK;
}
/* Member `key` as a bool; absent gives `dflt` when dflt >= 0, else an error. */
static int d1__cfg_bool(const d1__json *j, size_t obj, const char *key, int dflt, int *out) {
    size_t v;
    int rc = d1__json_find(j, obj, key, &v);
    if (rc < 0) return rc;
    if (rc == 0) {
        *out = dflt;
        return dflt >= 0 ? D1_OK : D1__FAILF(D1_ERR_CONFIG, "config.json: \"%s\" is missing", key);
    }
    if (j->s[v] != 't' && j->s[v] != 'f')
        return D1__FAILF(D1_ERR_CONFIG, "config.json: \"%s\" is %s, not true or false", key, d1__json_excerpt(j, v));
    *out = j->s[v] == 't';
    return D1_OK;
}
/* Optional member `key`: absent is fine, present must be the string `want`. */
static int d1__cfg_expect(const d1__json *j, size_t obj, const char *key, const char *want) {
    size_t v;
    int rc = d1__json_find(j, obj, key, &v);
    if (rc <= 0) return rc;
    if (j->s[v] == '"' && d1__json_str_is(j, v, want)) return D1_OK;
    return D1__FAILF(D1_ERR_CONFIG, "config.json: \"%s\" is %s; d1.h computes \"%s\"", key, d1__json_excerpt(j, v),
                     want);
}
/* Optional member `key`, a switch of LLaDA's config class: absent or null is
   its default, present it must be `want` (the arithmetic d1.h computes). */
static int d1__cfg_switch(const d1__json *j, size_t obj, const char *key, int want) {
    size_t v;
    int rc = d1__json_find(j, obj, key, &v);
    if (rc <= 0 || j->s[v] == 'n') return rc < 0 ? rc : D1_OK;
    if (j->s[v] == (want ? 't' : 'f')) return D1_OK;
    return D1__FAILF(D1_ERR_CONFIG, "config.json: \"%s\" is %s; d1.h computes LLaDA with %s", key,
                     d1__json_excerpt(j, v), want ? "true" : "false");
}
/* Optional member `key` that asks for arithmetic d1.h does not do when set:
   absent or null only. */
static int d1__cfg_unset(const d1__json *j, size_t obj, const char *key, const char *what) {
    size_t v;
    int rc = d1__json_find(j, obj, key, &v);
    if (rc <= 0 || j->s[v] == 'n') return rc < 0 ? rc : D1_OK;
    return D1__FAILF(D1_ERR_CONFIG, "config.json: \"%s\" is %s; d1.h does not compute %s", key,
                     d1__json_excerpt(j, v), what);
}

/* The switches of LLaDA's configuration class (configuration_llada.py) whose
   other value asks for other arithmetic: each must be absent, null or the
   value d1.h computes. (Dropouts, flash_attention, rope_full_precision,
   block_group_size, init_* and precision change training noise, speed or
   initialisation, not the function: they are not read.) */
static const struct { const char *key; int want; } d1__cfg_switches[] = {
    {"rope", 1},                  /* false: learned absolute positions           */
    {"alibi", 0},                 /* ALiBi attention biases                      */
    {"scale_logits", 0},          /* logits * 1/sqrt(d_model)                    */
    {"input_emb_norm", 0},        /* embeddings * sqrt(d_model)                  */
    {"attention_layer_norm", 0},  /* norms on q and k                            */
    {"layer_norm_with_affine", 1},/* false: RMSNorm without its weight           */
    {"include_bias", 0},          /* biases on every projection                  */
    {"bias_for_layer_norm", 0},   /* a bias in every norm                        */
    {"include_qkv_bias", 0},      /* biases on q, k, v                           */
    {"multi_query_attention", 0}, /* one key/value head (n_kv_heads says it)     */
};
static const struct { const char *key, *what; } d1__cfg_unsets[] = {
    {"clip_qkv", "clipped q, k, v"},
    {"rope_scaling", "scaled RoPE (YaRN, linear, dynamic NTK)"},
};

/* config.json text -> a resolved config (the keys: see the API comment). */
D1_API int d1_config_from_json(d1_config *out, const char *json, size_t len) {
    d1__json j;
    d1_config c;
    size_t obj, v, it, el;
    int rc, emb = 0, r, k;
    if (!out || (!json && len)) return D1__FAIL(D1_ERR_ARG);
    if (!d1__json_check(json, len)) return D1__FAIL(D1_ERR_JSON);
    j.s = json; j.n = len;
    obj = d1__json_start(&j);
    if (j.s[obj] != '{') return D1__FAIL(D1_ERR_JSON);
    memset(&c, 0, sizeof c);
    if ((rc = d1__cfg_int(&j, obj, "d_model", 1, &c.dim)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "n_layers", 1, &c.n_layers)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "n_heads", 1, &c.n_heads)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "n_kv_heads", 0, &c.n_kv_heads)) < 0) return rc;
    if (rc == 1) c.n_kv_heads = c.n_heads;
    if ((rc = d1__cfg_int(&j, obj, "mlp_hidden_size", 1, &c.ffn_dim)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "vocab_size", 1, &c.vocab_size)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "embedding_size", 0, &emb)) < 0) return rc;
    if (rc == D1_OK && emb != c.vocab_size) /* no padded wte rows */
        return D1__FAILF(D1_ERR_CONFIG, "config.json: \"embedding_size\" %d differs from \"vocab_size\" %d (d1.h keeps "
                         "no padded embedding rows)", emb, c.vocab_size);
    if ((rc = d1__cfg_float(&j, obj, "rope_theta", &c.rope_theta)) != D1_OK) return rc;
    if ((rc = d1__cfg_float(&j, obj, "rms_norm_eps", &c.norm_eps)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "max_sequence_length", 1, &c.max_seq_len)) != D1_OK) return rc;
    if ((rc = d1__cfg_bool(&j, obj, "weight_tying", -1, &c.tied_embeddings)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "mask_token_id", 1, &c.mask_id)) != D1_OK) return rc;
    if ((rc = d1__cfg_id(&j, obj, "eos_token_id", &c.eos_id)) != D1_OK) return rc;
    if ((rc = d1__cfg_id(&j, obj, "pad_token_id", &c.pad_id)) != D1_OK) return rc;
    if ((rc = d1__cfg_expect(&j, obj, "model_type", "llada")) != D1_OK) return rc;
    if ((rc = d1__cfg_expect(&j, obj, "activation_type", "silu")) != D1_OK) return rc;
    if ((rc = d1__cfg_expect(&j, obj, "block_type", "llama")) != D1_OK) return rc;
    if ((rc = d1__cfg_expect(&j, obj, "layer_norm_type", "rms")) != D1_OK) return rc;
    /* every switch of LLaDA's config class that changes the arithmetic */
    for (k = 0; k < (int)(sizeof d1__cfg_switches / sizeof d1__cfg_switches[0]); k++)
        if ((rc = d1__cfg_switch(&j, obj, d1__cfg_switches[k].key, d1__cfg_switches[k].want)) != D1_OK) return rc;
    for (k = 0; k < (int)(sizeof d1__cfg_unsets / sizeof d1__cfg_unsets[0]); k++)
        if ((rc = d1__cfg_unset(&j, obj, d1__cfg_unsets[k].key, d1__cfg_unsets[k].what)) != D1_OK) return rc;
    r = d1__json_find(&j, obj, "architectures", &v); /* optional: a list of names */
    if (r < 0) return r;
    if (r == 1) {
        if (j.s[v] != '[') return D1__FAIL(D1_ERR_CONFIG);
        it = v + 1;
        while (d1__json_element(&j, &it, &el))
            if (j.s[el] != '"') return D1__FAIL(D1_ERR_CONFIG);
    }
    if (c.n_kv_heads == 0 || c.n_layers > (1 << 20)) return D1__FAIL(D1_ERR_CONFIG); /* 0 is not "default" here */
    if ((rc = d1_config_resolve(&c, out)) != D1_OK) return rc;
    return D1_OK;
}

// >>safetensors --------------------------------------------------------------
/* ---- the tensor table --------------------------------------------------------
   What a safetensors file should hold: the n tensors of one kind (a model's
   weights, the AdamW moments of a model, a model's LoRA adapters), each
   named, shaped and placed in the destination buffer by d1__st_tensor, and
   what the headers say of each (dtype, shard, offsets) in e[]. A name read
   from a header is mapped to its tensor by d1__st_find (from the name's
   structure, then checked against the name d1__st_tensor gives), so the table
   holds no names; and e[] (20 bytes a tensor with order[]) is allocated only
   once a header or index has named every tensor, each in 80 or more of its
   bytes (34 in an index). Before that, what a parse allocates is bounded by
   the text it reads, whatever number of tensors config.json claims. */
enum { D1__ST_MODEL, D1__ST_ADAMW, D1__ST_LORA };

typedef struct d1__st_entry {
    uint64_t begin;     /* data_offsets[0], from the header               */
    int      shard;     /* file index in a sharded checkpoint (else 0)    */
    int      dtype;
} d1__st_entry;

typedef struct d1__st_table {
    int              kind, n;
    int              alias;    /* MODEL of a tied config: a header may also hold
                                  ff_out, tensor n, which must equal wte (read)  */
    int              sharded;  /* the shards of e[] come from an index            */
    unsigned         alias_read; /* bits: 1 wte read, 2 the ff_out alias read     */
    const d1_config *c;        /* the model's (resolved) configuration       */
    const d1_model  *m;        /* ADAMW: its num_params                      */
    int              rank;     /* LORA: the adapters' r                      */
    unsigned         targets;  /* LORA: their modules (D1_LORA_* bits)         */
    const float     *src[2];   /* what a save writes (exp_avg, exp_avg_sq)   */
    d1__st_entry    *e;        /* [n], NULL until d1__table_alloc            */
    int             *order;    /* [n] scratch: a shard's entries by offset   */
    struct d1__st_sink *sink;  /* loads: where values at and past sink->from go
                                  instead of the buffer (NULL: all to it)      */
} d1__st_table;

/* A load's other destination (d1_model_load_bf16): destination offsets from
   `from` on are handed to put, n <= 2048 values at a time, in order within a
   tensor. */
typedef struct d1__st_sink {
    size_t from;
    void (*put)(struct d1__st_sink *k, size_t dst, const float *x, size_t n);
} d1__st_sink;

/* One tensor of a table, as its kind defines it. */
typedef struct d1__st_info {
    char         name[96];  /* HF name, or exp_avg[_sq].<HF name>            */
    int          ndim;
    uint64_t     shape[2];
    size_t       numel;
    size_t       dst;       /* offset in floats into the destination buffer  */
    const float *src;       /* what a save writes (NULL when loading)        */
    int          nonneg;    /* values must be >= 0 (second moments)          */
} d1__st_info;

/* The three kinds: a model's tensors from its configuration alone (params:
   what a save writes, or NULL), the moments of m's tensors (exp_avg.<name> at
   m's offsets in [0, n), exp_avg_sq.<name> at n + offset: one [2n] buffer),
   rank-r adapters on a model of config c (in their buffer's layout, src: what
   a save writes). Nothing is allocated. (The last two serve the file
   functions only.) */
static void d1__table_model(d1__st_table *t, const d1_config *c, const float *params) {
    memset(t, 0, sizeof *t);
    t->kind = D1__ST_MODEL;
    t->c = c;
    t->n = d1__config_num_tensors(c);
    t->alias = c->tied_embeddings && !params; /* loads only: a save writes no alias */
    t->src[0] = params;
}
static D1__MAYBE_UNUSED void d1__table_adamw(d1__st_table *t, const d1_model *m, const d1_adamw *opt) {
    memset(t, 0, sizeof *t);
    t->kind = D1__ST_ADAMW;
    t->c = &m->config;
    t->m = m;
    t->n = 2 * d1__config_num_tensors(&m->config);
    if (opt) {
        t->src[0] = opt->m;
        t->src[1] = opt->v;
    }
}
static D1__MAYBE_UNUSED void d1__table_lora(d1__st_table *t, const d1_config *c, int r, unsigned targets,
                                            const float *src) {
    memset(t, 0, sizeof *t);
    t->kind = D1__ST_LORA;
    t->c = c;
    t->rank = r;
    t->targets = targets;
    t->n = 2 * d1__lora_count(targets) * c->n_layers;
    t->src[0] = src;
}
/* Frees what d1__table_alloc allocated (a table without it too). */
static void d1__table_free(d1__st_table *t) {
    d1__free(t->e);
    t->e = NULL;
    t->order = NULL;
}
/* e[n] (shard 0) and order[n], once the tensors are named. */
static int d1__table_alloc(d1__st_table *t) {
    size_t n = (size_t)t->n + (size_t)t->alias;
    t->e = (d1__st_entry *)d1__alloc(n * sizeof(d1__st_entry) + n * sizeof(int));
    if (!t->e) return D1__FAIL(D1_ERR_NOMEM);
    memset(t->e, 0, n * sizeof(d1__st_entry));
    t->order = (int *)(t->e + n);
    if (t->alias) { /* absent until a header names it (and an index places it) */
        t->e[t->n].dtype = -1;
        t->e[t->n].shard = -1;
    }
    return D1_OK;
}
/* The shard tensor i is in. */
static int d1__st_shard(const d1__st_table *t, int i) { return t->e ? t->e[i].shard : 0; }
/* May shard `shard`'s header hold tensor i? The tied head's alias: where an
   index placed it, or in the one file of an unsharded checkpoint. */
static int d1__st_in_shard(const d1__st_table *t, int i, int shard) {
    if (t->alias && i == t->n) {
        int s = t->e ? t->e[i].shard : -1;
        return s == shard || (s == -1 && !t->sharded);
    }
    return d1__st_shard(t, i) == shard;
}

/* Tensor i of the table (its name too when with_name). */
static void d1__st_tensor(const d1__st_table *t, int i, int with_name, d1__st_info *o) {
    int part = 0;
    size_t lp = 0;
    const char *prefix = "";
    d1_tensor ti;
    if (t->kind == D1__ST_LORA) {
        d1__lora_tensor(t->c, t->rank, t->targets, i, &ti);
    } else if (t->alias && i == t->n) { /* the tied head's alias: wte's place and shape */
        d1__config_tensor(t->c, 0, &ti);
        memcpy(ti.name, "model.transformer.ff_out.weight", sizeof "model.transformer.ff_out.weight");
    } else {
        int nt = d1__config_num_tensors(t->c);
        if (t->kind == D1__ST_ADAMW) {
            part = i >= nt;
            prefix = part ? "exp_avg_sq." : "exp_avg.";
            i -= part ? nt : 0;
        }
        d1__config_tensor(t->c, i, &ti);
    }
    if (with_name) {
        size_t ln = strlen(ti.name);
        lp = strlen(prefix);
        memcpy(o->name, prefix, lp);
        memcpy(o->name + lp, ti.name, ln + 1);
    }
    o->ndim = ti.ndim;
    o->shape[0] = (uint64_t)ti.shape[0];
    o->shape[1] = (uint64_t)ti.shape[1];
    o->numel = ti.size;
    o->dst = (part ? t->m->num_params : 0) + ti.offset;
    o->src = t->src[part] ? t->src[part] + ti.offset : NULL;
    o->nonneg = part;
}

/* s[0..len) is a then b. */
static int d1__is2(const char *s, size_t len, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    return len == la + lb && !memcmp(s, a, la) && !memcmp(s + la, b, lb);
}
/* "<l>.<rest>" at *s: l (< L, at most 8 digits) with *s, *len moved to rest, or -1. */
static int d1__st_layer(const char **s, size_t *len, int L) {
    size_t k = 0;
    int l = 0;
    while (k < *len && k < 8 && (*s)[k] >= '0' && (*s)[k] <= '9') l = l * 10 + ((*s)[k++] - '0');
    if (k == 0 || k >= *len || (*s)[k] != '.' || l >= L) return -1;
    *s += k + 1;
    *len -= k + 1;
    return l;
}
/* The tensor named s[0..len) (o receives it), or -1: the index read from the
   name's structure, then the name that index has compared in full (so
   "blocks.01." or a name of another kind is no tensor). */
static int d1__st_find(const d1__st_table *t, const char *s, size_t len, d1__st_info *o) {
    static const char mt[] = "model.transformer.", lo[] = "base_model.model.model.transformer.blocks.";
    const char *s0 = s;
    size_t len0 = len;
    int nt = d1__config_num_tensors(t->c), L = t->c->n_layers, i = -1, l, k;
    if (t->kind == D1__ST_LORA) {
        if (len < sizeof lo - 1 || memcmp(s, lo, sizeof lo - 1)) return -1;
        s += sizeof lo - 1;
        len -= sizeof lo - 1;
        if ((l = d1__st_layer(&s, &len, L)) < 0) return -1;
        for (k = 0; k < 14 && !d1__is2(s, len, d1__lora_names[k / 2], k % 2 ? ".lora_B.weight" : ".lora_A.weight");
             k++) {}
        if (k < 14 && (t->targets >> (k / 2) & 1u)) /* per layer: A, B of each targeted module, in order */
            i = 2 * d1__lora_count(t->targets) * l + 2 * d1__lora_count(t->targets & ((1u << (k / 2)) - 1u)) + k % 2;
    } else {
        int base = 0;
        if (t->kind == D1__ST_ADAMW) {
            if (len >= 11 && !memcmp(s, "exp_avg_sq.", 11)) {
                base = nt; s += 11; len -= 11;
            } else if (len >= 8 && !memcmp(s, "exp_avg.", 8)) {
                s += 8; len -= 8;
            } else {
                return -1;
            }
        }
        if (len < sizeof mt - 1 || memcmp(s, mt, sizeof mt - 1)) return -1;
        s += sizeof mt - 1;
        len -= sizeof mt - 1;
        if (d1__is2(s, len, "wte", ".weight")) {
            i = 0;
        } else if (d1__is2(s, len, "ln_f", ".weight")) {
            i = 1 + 9 * L;
        } else if (d1__is2(s, len, "ff_out", ".weight")) {
            i = !t->c->tied_embeddings ? nt - 1 : t->alias ? nt : -1;
        } else if (len >= 7 && !memcmp(s, "blocks.", 7)) {
            s += 7;
            len -= 7;
            if ((l = d1__st_layer(&s, &len, L)) < 0) return -1;
            for (k = 0; k < 9 && !d1__is2(s, len, d1__block_names[k], ".weight"); k++) {}
            if (k < 9) i = 1 + 9 * l + k;
        }
        if (i >= 0) i += base;
    }
    if (i < 0) return -1;
    d1__st_tensor(t, i, 1, o);
    return strlen(o->name) == len0 && !memcmp(o->name, s0, len0) ? i : -1;
}

/* A set of tensor indices (open addressing) for finding a name given twice
   while the table is not allocated: room for k, in fewer than 4k + 16 ints. */
typedef struct d1__idx_set {
    int   *slot;
    size_t mask, count;
} d1__idx_set;
static int d1__set_init(d1__idx_set *s, size_t k) {
    size_t cap = 16, i;
    while (cap < 2 * k) cap *= 2;
    s->mask = 0;
    s->count = 0;
    s->slot = (int *)d1__alloc(cap * sizeof(int));
    if (!s->slot) return D1__FAIL(D1_ERR_NOMEM);
    for (i = 0; i < cap; i++) s->slot[i] = -1;
    s->mask = cap - 1;
    s->count = 0;
    return D1_OK;
}
/* Adds i: 0, or 1 when it was there already. */
static int d1__set_add(d1__idx_set *s, int i) {
    size_t h = ((uint32_t)i * 2654435761u) & s->mask;
    for (; s->slot[h] >= 0; h = (h + 1) & s->mask)
        if (s->slot[h] == i) return 1;
    s->slot[h] = i;
    s->count++;
    return 0;
}
/* The most tensors a JSON text of len bytes can name: each takes its name
   (28 bytes or more: "model.transformer.wte.weight"), two quotes, a colon and
   a value. */
static size_t d1__names_max(size_t len, int n) { return D1__MIN((size_t)n, len / 32 + 1); }

/* ---- safetensors: writing -------------------------------------------------- */

/* Where bytes go: a memory buffer, or (file functions) a file. */
typedef struct d1__sink d1__sink;
struct d1__sink {
    int (*write)(d1__sink *s, const void *p, size_t n);
    unsigned char *mem;     /* memory sink */
    size_t         cap;
    int            fd;      /* file sink (POSIX) */
    void          *fp;      /* file sink (other platforms: FILE *) */
    uint64_t       written;
};
/* The memory sink's write: D1_ERR_ARG past the buffer's end. */
static int d1__mem_write(d1__sink *s, const void *p, size_t n) {
    if (n > s->cap - s->written) return D1__FAIL(D1_ERR_ARG);
    memcpy(s->mem + s->written, p, n);
    s->written += n;
    return D1_OK;
}

/* A key-value pair of __metadata__. */
typedef struct d1__meta {
    const char *key, *value;
} d1__meta;

/* The header JSON for the entries in order (contiguous offsets from 0), all of
   one dtype, with __metadata__ {"format": "pt", meta...}, padded with spaces
   to a multiple of 8 bytes. */
static void d1__st_header(d1__text *t, const d1__st_table *tab, int dtype, const d1__meta *meta, int n_meta) {
    uint64_t off = 0;
    int i, k;
    d1__puts(t, "{\"__metadata__\":{\"format\":\"pt\"");
    for (i = 0; i < n_meta; i++) {
        d1__puts(t, ",");
        d1__put_json_string(t, meta[i].key, strlen(meta[i].key));
        d1__puts(t, ":");
        d1__put_json_string(t, meta[i].value, strlen(meta[i].value));
    }
    d1__puts(t, "}");
    for (i = 0; i < tab->n; i++) {
        d1__st_info e;
        uint64_t bytes;
        d1__st_tensor(tab, i, 1, &e);
        bytes = (uint64_t)e.numel * d1__dtype_size(dtype);
        d1__puts(t, ",");
        d1__put_json_string(t, e.name, strlen(e.name));
        d1__puts(t, ":{\"dtype\":\"");
        d1__puts(t, d1__dtype_name(dtype));
        d1__puts(t, "\",\"shape\":[");
        for (k = 0; k < e.ndim; k++) {
            if (k) d1__puts(t, ",");
            d1__put_u64(t, e.shape[k]);
        }
        d1__puts(t, "],\"data_offsets\":[");
        d1__put_u64(t, off);
        d1__puts(t, ",");
        d1__put_u64(t, off + bytes);
        d1__puts(t, "]}");
        off += bytes;
    }
    d1__puts(t, "}");
    while (t->len % 8) d1__puts(t, " ");
}

/* Bytes of the whole file: 8 + header + data. */
static uint64_t d1__st_size(const d1__st_table *tab, int dtype, const d1__meta *meta, int n_meta) {
    d1__text t;
    uint64_t data = 0;
    int i;
    memset(&t, 0, sizeof t);
    d1__st_header(&t, tab, dtype, meta, n_meta);
    for (i = 0; i < tab->n; i++) {
        d1__st_info e;
        d1__st_tensor(tab, i, 0, &e);
        data += (uint64_t)e.numel * d1__dtype_size(dtype);
    }
    return 8 + t.len + data;
}

/* Every value finite and representable in dtype (no overflow to infinity). */
static int d1__encodable(const float *x, size_t n, int dtype) {
    size_t i;
    for (i = 0; i < n; i++) {
        if (!isfinite(x[i])) return 0;
        if (dtype == D1_DTYPE_BF16 && (d1__f32_to_bf16(x[i]) & 0x7fff) == 0x7f80) return 0;
        if (dtype == D1_DTYPE_F16 && (d1__f32_to_f16(x[i]) & 0x7fff) == 0x7c00) return 0;
    }
    return 1;
}

/* x[n] encoded as little-endian dtype, through a fixed 8 KB buffer. */
static int d1__st_write_data(d1__sink *sk, const float *x, size_t n, int dtype) {
    unsigned char buf[8192];
    size_t i, k, chunk;
    int rc;
    if (dtype == D1_DTYPE_F32 && d1__little_endian()) return sk->write(sk, x, n * 4);
    for (i = 0; i < n; i += chunk) {
        chunk = D1__MIN(n - i, sizeof buf / 4);
        for (k = 0; k < chunk; k++) {
            if (dtype == D1_DTYPE_F32) {
                uint32_t u;
                memcpy(&u, x + i + k, 4);
                buf[4 * k] = (unsigned char)u; buf[4 * k + 1] = (unsigned char)(u >> 8);
                buf[4 * k + 2] = (unsigned char)(u >> 16); buf[4 * k + 3] = (unsigned char)(u >> 24);
            } else {
                uint16_t h = dtype == D1_DTYPE_BF16 ? d1__f32_to_bf16(x[i + k]) : d1__f32_to_f16(x[i + k]);
                buf[2 * k] = (unsigned char)h;
                buf[2 * k + 1] = (unsigned char)(h >> 8);
            }
        }
        if ((rc = sk->write(sk, buf, chunk * d1__dtype_size(dtype))) != D1_OK) return rc;
    }
    return D1_OK;
}

/* A whole safetensors file into the sink: length, header, tensors in order. */
static int d1__st_write(d1__sink *sk, const d1__st_table *tab, int dtype, const d1__meta *meta, int n_meta) {
    d1__text t;
    unsigned char len8[8];
    int i, rc;
    memset(&t, 0, sizeof t);
    d1__st_header(&t, tab, dtype, meta, n_meta); /* measure */
    t.cap = t.len;
    t.len = 0;
    t.p = (char *)d1__alloc(t.cap);
    if (!t.p) return D1__FAIL(D1_ERR_NOMEM);
    d1__st_header(&t, tab, dtype, meta, n_meta);
    d1__put_u64le(len8, (uint64_t)t.len);
    rc = sk->write(sk, len8, 8);
    if (rc == D1_OK) rc = sk->write(sk, t.p, t.len);
    d1__free(t.p);
    for (i = 0; i < tab->n && rc == D1_OK; i++) {
        d1__st_info e;
        d1__st_tensor(tab, i, 0, &e);
        rc = d1__st_write_data(sk, e.src, e.numel, dtype);
    }
    return rc;
}

/* ---- safetensors: reading ----------------------------------------------------
   d1__st_prefix checks the length word, d1__st_parse the header against the
   table, d1__st_cover the offsets as a whole; only then is anything allocated
   for the data, which d1__st_read converts into place. */
#define D1__DTYPES_ALL ((1u << D1_DTYPE_F32) | (1u << D1_DTYPE_BF16) | (1u << D1_DTYPE_F16))

/* The first 8 bytes of a file of `total` bytes: header length *hn. */
static int d1__st_prefix(const unsigned char *b8, uint64_t total, uint64_t *hn) {
    if (total < 8) return D1__FAIL(D1_ERR_TRUNCATED);
    *hn = d1__get_u64le(b8);
    if (*hn == 0 || *hn > D1_SAFETENSORS_MAX_HEADER || *hn > total - 8) return D1__FAIL(D1_ERR_HEADER);
    return D1_OK;
}

/* One tensor's entry object {"dtype", "shape", "data_offsets"} at i, checked
   against the tensor t; fills e->dtype and e->begin. */
static int d1__st_parse_entry(const d1__json *j, size_t i, const d1__st_info *t, d1__st_entry *e, unsigned dtypes) {
    size_t it = i + 1, k, v, it2, el;
    int have_dt = 0, have_sh = 0, have_of = 0, shape_ok = 1, nd, d;
    uint64_t u, off[2];
    if (j->s[i] != '{') return D1__FAIL(D1_ERR_JSON);
    while (d1__json_member(j, &it, &k, &v)) {
        if (d1__json_str_is(j, k, "dtype")) {
            char name[8];
            if (have_dt++) return D1__FAIL(D1_ERR_DUPLICATE);
            if (j->s[v] != '"') return D1__FAIL(D1_ERR_JSON);
            if (d1__json_str(j, v, name, sizeof name) == (size_t)-1) return D1__FAIL(D1_ERR_DTYPE);
            for (d = 0; d < 3 && strcmp(name, d1__dtype_name(d)); d++) {}
            if (d == 3 || !(dtypes & (1u << d))) return D1__FAIL(D1_ERR_DTYPE);
            e->dtype = d;
        } else if (d1__json_str_is(j, k, "shape")) {
            if (have_sh++) return D1__FAIL(D1_ERR_DUPLICATE);
            if (j->s[v] != '[') return D1__FAIL(D1_ERR_JSON);
            for (it2 = v + 1, nd = 0; d1__json_element(j, &it2, &el); nd++) {
                if (!d1__json_u64(j, el, &u)) return D1__FAIL(D1_ERR_JSON);
                if (nd >= t->ndim || u != t->shape[nd]) shape_ok = 0;
            }
            if (nd != t->ndim) shape_ok = 0;
        } else if (d1__json_str_is(j, k, "data_offsets")) {
            if (have_of++) return D1__FAIL(D1_ERR_DUPLICATE);
            if (j->s[v] != '[') return D1__FAIL(D1_ERR_JSON);
            for (it2 = v + 1, nd = 0; d1__json_element(j, &it2, &el); nd++)
                if (nd >= 2 || !d1__json_u64(j, el, &off[nd])) return D1__FAIL(D1_ERR_JSON);
            if (nd != 2) return D1__FAIL(D1_ERR_JSON);
        } else {
            return D1__FAIL(D1_ERR_JSON); /* safetensors defines these three fields only */
        }
    }
    if (!have_dt || !have_sh || !have_of) return D1__FAIL(D1_ERR_JSON);
    if (!shape_ok) return D1__FAIL(D1_ERR_TENSOR_SHAPE);
    if (off[1] < off[0] || off[1] - off[0] != (uint64_t)t->numel * d1__dtype_size(e->dtype))
        return D1__FAIL(D1_ERR_OFFSETS);
    e->begin = off[0];
    return D1_OK;
}

/* The header h[0..hn) is one JSON object (checked before the table is built,
   so that a malformed header is reported as such). */
static int d1__st_check_header(const char *h, size_t hn) {
    if (!d1__json_check(h, hn)) return D1__FAIL(D1_ERR_JSON);
    if (h[d1__json_ws(h, hn, 0)] != '{') return D1__FAIL(D1_ERR_JSON);
    return D1_OK;
}

/* Checks the header h[0..hn) (already through d1__st_check_header) of the
   file holding shard `shard` of the table: an object whose keys are this
   shard's tensors (each once, all of them) and an optional "__metadata__"
   object of strings (*meta gets its index, or (size_t)-1). dtypes: the
   allowed dtypes as a bit mask. The first pass checks every member in order
   (its first error is the answer) with a set of the names seen, bounded by
   hn; once all are there, the table is allocated (if it was not) and the
   second pass records each tensor's dtype and offsets. */
static int d1__st_parse(const char *h, size_t hn, d1__st_table *tab, int shard, unsigned dtypes, size_t *meta) {
    d1__json j;
    d1__idx_set seen;
    d1__st_info t;
    d1__st_entry ent;
    size_t obj, it, k, v, it2, mk, mv;
    int i, rc, have_meta = 0, want = 0, pass, extra = 0;
    char name[96];
    if (meta) *meta = (size_t)-1;
    j.s = h; j.n = hn;
    obj = d1__json_start(&j);
    for (i = 0; i < tab->n; i++) want += d1__st_shard(tab, i) == shard;
    want += tab->alias && tab->sharded && tab->e[tab->n].shard == shard; /* the index placed ff_out here */
    if ((rc = d1__set_init(&seen, d1__names_max(hn, want + tab->alias))) != D1_OK) return rc;
    for (pass = 0; pass < 2 && rc == D1_OK; pass++) {
        for (it = obj + 1; rc == D1_OK && d1__json_member(&j, &it, &k, &v);) {
            size_t len = d1__json_str(&j, k, name, sizeof name);
            if (len != (size_t)-1 && !strcmp(name, "__metadata__") && len == 12) {
                if (pass) continue;
                if (have_meta++) rc = D1__FAIL(D1_ERR_DUPLICATE);
                else if (j.s[v] != '{') rc = D1__FAIL(D1_ERR_JSON);
                for (it2 = v + 1; rc == D1_OK && d1__json_member(&j, &it2, &mk, &mv);)
                    if (j.s[mv] != '"') rc = D1__FAIL(D1_ERR_JSON);
                if (rc == D1_OK && meta) *meta = v;
                continue;
            }
            i = len == (size_t)-1 ? -1 : d1__st_find(tab, name, len, &t);
            if (i < 0 || !d1__st_in_shard(tab, i, shard)) rc = D1__FAIL(D1_ERR_UNKNOWN_TENSOR);
            else if (pass == 0 && d1__set_add(&seen, i)) rc = D1__FAIL(D1_ERR_DUPLICATE);
            else rc = d1__st_parse_entry(&j, v, &t, pass ? tab->e + i : &ent, dtypes);
            if (rc == D1_OK && i == tab->n) { /* the optional alias: not counted as a needed tensor */
                if (pass) tab->e[i].shard = shard;
                else extra = !tab->sharded;
            }
        }
        if (pass == 0) {
            if (rc == D1_OK && seen.count - (size_t)extra < (size_t)want) rc = D1__FAIL(D1_ERR_MISSING);
            d1__free(seen.slot);
            if (rc == D1_OK && !tab->e) rc = d1__table_alloc(tab); /* every tensor is named */
        }
    }
    return rc;
}

/* Sorts idx[0..n) by the entries' begin offsets (heapsort: no allocation, n log n). */
static void d1__sort_by_begin(const d1__st_entry *e, int *idx, int n) {
    int start, end, root, child, t;
    for (start = n / 2 - 1, end = n;;) {
        if (start >= 0) {
            root = start--;
        } else {
            if (--end <= 0) return;
            t = idx[0]; idx[0] = idx[end]; idx[end] = t;
            root = 0;
        }
        for (; (child = 2 * root + 1) < end; root = child) { /* sift down */
            if (child + 1 < end && e[idx[child + 1]].begin > e[idx[child]].begin) child++;
            if (e[idx[root]].begin >= e[idx[child]].begin) break;
            t = idx[root]; idx[root] = idx[child]; idx[child] = t;
        }
    }
}

/* The offsets of shard `shard` as a whole: sorted, they must start at 0 and
   abut (no gap, no overlap), and end exactly at data_len. Leaves the shard's
   entries in file order in tab->order[0..*count). */
static int d1__st_cover(d1__st_table *tab, int shard, uint64_t data_len, int *count) {
    uint64_t at = 0;
    int i, n = 0;
    for (i = 0; i < tab->n + tab->alias; i++)
        if (tab->e[i].shard == shard && tab->e[i].dtype >= 0) tab->order[n++] = i;
    d1__sort_by_begin(tab->e, tab->order, n);
    for (i = 0; i < n; i++) {
        const d1__st_entry *e = tab->e + tab->order[i];
        d1__st_info t;
        if (e->begin != at) return D1__FAIL(D1_ERR_OFFSETS);
        d1__st_tensor(tab, tab->order[i], 0, &t);
        at = e->begin + (uint64_t)t.numel * d1__dtype_size(e->dtype); /* no overflow: the header's end */
    }
    *count = n;
    if (at > data_len) return D1__FAIL(D1_ERR_TRUNCATED);
    if (at < data_len) return D1__FAIL(D1_ERR_OFFSETS); /* bytes no tensor covers */
    return D1_OK;
}

/* Where a load reads from: a memory blob, or (file functions) a FILE *. */
typedef struct d1__src {
    const unsigned char *mem;
    uint64_t             len;
    void                *fp;
    uint64_t             pos;  /* the file's position */
} d1__src;

#ifndef D1_NO_STDIO
/* (the file reader, with the file functions below) */
static int d1__file_read_at(d1__src *s, uint64_t off, void *dst, size_t n);
#endif

/* n bytes at offset off of the source into dst. */
static int d1__src_read(d1__src *s, uint64_t off, void *dst, size_t n) {
    if (s->mem) {
        if (off > s->len || n > s->len - off) return D1__FAIL(D1_ERR_TRUNCATED);
        memcpy(dst, s->mem + off, n);
        return D1_OK;
    }
#ifndef D1_NO_STDIO
    return d1__file_read_at(s, off, dst, n);
#else
    return D1__FAIL(D1_ERR_IO);
#endif
}

/* Reads the tensors of one shard, in file order (tab->order[0..count) from
   d1__st_cover), from the data section at data_start of src into base + dst:
   F32 straight into place, BF16/F16 through a fixed 8 KB buffer. Each tensor
   must be finite (and >= 0 where nonneg). */
/* Elements [k, k + n) of a tensor at byte offset `at` (dtype) as floats into
   y; n <= 2048 (buf: 8192 bytes). */
static int d1__st_floats(d1__src *src, uint64_t at, int dtype, size_t k, size_t n, unsigned char *buf, float *y) {
    size_t j;
    int rc;
    if (dtype == D1_DTYPE_F32) {
        if ((rc = d1__src_read(src, at + 4 * k, y, 4 * n)) != D1_OK) return rc;
        if (!d1__little_endian()) d1__bswap32(y, n);
        return D1_OK;
    }
    if ((rc = d1__src_read(src, at + 2 * k, buf, 2 * n)) != D1_OK) return rc;
    for (j = 0; j < n; j++) {
        uint16_t h = (uint16_t)(buf[2 * j] | (buf[2 * j + 1] << 8));
        y[j] = dtype == D1_DTYPE_BF16 ? d1__bf16_to_f32(h) : d1__f16_to_f32(h);
    }
    return D1_OK;
}

/* Values read from a file: all finite (and >= 0 where nonneg). */
static int d1__st_values_ok(const float *x, size_t n, int nonneg) {
    size_t k;
    for (k = 0; k < n; k++)
        if (!isfinite(x[k]) || (nonneg && x[k] < 0.0f)) return 0;
    return 1;
}

/* Reads the count tensors of tab->order into base (values at and past
   tab->sink->from to the sink instead), checking each value. The
   tied head's alias (tab->alias) and wte share their place: whichever of the
   two comes second is compared with the first, value for value, not stored
   (a tied model saved after PyTorch's tie_weights() holds both). */
static int d1__st_read(d1__src *src, uint64_t data_start, d1__st_table *tab, int count, float *base) {
    unsigned char buf[8192];
    float y[2048];
    int i, rc;
    size_t k, chunk;
    for (i = 0; i < count; i++) {
        int id = tab->order[i];
        const d1__st_entry *e = tab->e + id;
        uint64_t at = data_start + e->begin;
        d1__st_info t;
        float *x;
        d1__st_tensor(tab, id, 0, &t);
        x = tab->sink && t.dst >= tab->sink->from ? NULL : base + t.dst;
        if (tab->alias && (id == 0 || id == tab->n)) {
            unsigned bit = id == 0 ? 1u : 2u, other = tab->alias_read & (3u ^ bit);
            tab->alias_read |= bit;
            for (k = 0; other && k < t.numel; k += chunk) {
                chunk = D1__MIN(t.numel - k, sizeof y / sizeof y[0]);
                if ((rc = d1__st_floats(src, at, e->dtype, k, chunk, buf, y)) != D1_OK) return rc;
                if (memcmp(y, x + k, chunk * sizeof(float)) != 0)
                    return D1__FAILF(D1_ERR_CONFIG,
                                     "model.transformer.ff_out.weight differs from model.transformer.wte.weight "
                                     "(near element %lu), but config.json ties them (weight_tying true)",
                                     (unsigned long)k);
            }
            if (other) continue;
        }
        if (tab->sink && t.dst >= tab->sink->from) { /* through y to the sink, each chunk checked */
            for (k = 0; k < t.numel; k += chunk) {
                chunk = D1__MIN(t.numel - k, sizeof y / sizeof y[0]);
                if ((rc = d1__st_floats(src, at, e->dtype, k, chunk, buf, y)) != D1_OK) return rc;
                if (!d1__st_values_ok(y, chunk, t.nonneg)) return D1__FAIL(D1_ERR_NONFINITE);
                tab->sink->put(tab->sink, t.dst + k, y, chunk);
            }
            continue;
        }
        if (e->dtype == D1_DTYPE_F32) {
            if ((rc = d1__src_read(src, at, x, t.numel * 4)) != D1_OK) return rc;
            if (!d1__little_endian()) d1__bswap32(x, t.numel);
        } else {
            for (k = 0; k < t.numel; k += chunk) {
                chunk = D1__MIN(t.numel - k, sizeof y / sizeof y[0]);
                if ((rc = d1__st_floats(src, at, e->dtype, k, chunk, buf, x + k)) != D1_OK) return rc;
            }
        }
        if (!d1__st_values_ok(x, t.numel, t.nonneg)) return D1__FAIL(D1_ERR_NONFINITE);
    }
    return D1_OK;
}


/* ---- the memory API ----------------------------------------------------------- */

static int d1__model_ok(const d1_model *m) { return m && m->param_memory && m->state; }

/* The size of the blob d1_model_save_memory writes: header + data. */
D1_API size_t d1_model_save_size(const d1_model *m, int dtype) {
    d1__st_table tab;
    uint64_t size;
    if (!d1__model_ok(m) || d1__resident(m) || dtype < D1_DTYPE_F32 || dtype > D1_DTYPE_F16) return 0;
    d1__table_model(&tab, &m->config, m->param_memory);
    size = d1__st_size(&tab, dtype, NULL, 0);
    return size > (uint64_t)SIZE_MAX ? 0 : (size_t)size;
}

/* The model as a safetensors blob (and config.json text) in memory. */
D1_API int d1_model_save_memory(const d1_model *m, int dtype, void *buf, size_t cap, char *config_json,
                                size_t config_cap) {
    d1__st_table tab;
    d1__sink sk;
    int rc;
    if (!d1__model_ok(m) || !buf || dtype < D1_DTYPE_F32 || dtype > D1_DTYPE_F16) return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(m);
    if (cap < d1_model_save_size(m, dtype)) return D1__FAIL(D1_ERR_ARG);
    if ((rc = d1__mirror_in(m)) != D1_OK) return rc;
    if (!d1__encodable(m->param_memory, m->num_params, dtype)) return D1__FAIL(D1_ERR_NONFINITE);
    if (config_json && (rc = d1_config_to_json(&m->config, config_json, config_cap)) != D1_OK) return rc;
    d1__table_model(&tab, &m->config, m->param_memory);
    memset(&sk, 0, sizeof sk);
    sk.write = d1__mem_write;
    sk.mem = (unsigned char *)buf;
    sk.cap = cap;
    return d1__st_write(&sk, &tab, dtype, NULL, 0);
}

/* Loads a model from memory: config, length word, header and offsets are
   all checked before the model is allocated and the data converted into it. */
D1_API int d1_model_load_memory(d1_model *m, const char *config_json, size_t config_len,
                                const void *safetensors, size_t len) {
    const unsigned char *b = (const unsigned char *)safetensors;
    d1_config c;
    d1__st_table tab;
    d1_model tmp;
    d1__src src;
    uint64_t hn = 0;
    int rc, count = 0;
    if (!m || !config_json || (!safetensors && len)) return D1__FAIL(D1_ERR_ARG);
    if ((rc = d1_config_from_json(&c, config_json, config_len)) != D1_OK) return rc;
    if ((rc = d1__st_prefix(b, len, &hn)) != D1_OK) return rc;
    if ((rc = d1__st_check_header((const char *)b + 8, (size_t)hn)) != D1_OK) return rc;
    d1__table_model(&tab, &c, NULL);
    rc = d1__st_parse((const char *)b + 8, (size_t)hn, &tab, 0, D1__DTYPES_ALL, NULL);
    if (rc == D1_OK) rc = d1__st_cover(&tab, 0, len - 8 - hn, &count);
    if (rc == D1_OK && (rc = d1__model_alloc(&tmp, &c)) == D1_OK) {
        memset(&src, 0, sizeof src);
        src.mem = b;
        src.len = len;
        rc = d1__st_read(&src, 8 + hn, &tab, count, tmp.param_memory);
        if (rc != D1_OK) d1_model_free(&tmp);
    }
    d1__table_free(&tab);
    if (rc == D1_OK) *m = tmp;
    return rc;
}

// >>files --------------------------------------------------------------------
/* ---- files ---------------------------------------------------------------------
   POSIX: open/write/fsync/rename and an fsync of the directory; Windows:
   stdio + _commit and MoveFileEx (untested here); elsewhere plain stdio
   (flush and rename, no sync, no mkdir). Reads use stdio everywhere. */
#ifndef D1_NO_STDIO

/* n bytes at offset off of the file into dst (seeking only when needed). A
   short read is D1_ERR_TRUNCATED (the file shrank since its size was taken). */
static int d1__file_read_at(d1__src *s, uint64_t off, void *dst, size_t n) {
    FILE *f = (FILE *)s->fp;
    size_t got = 0, r;
    if (off != s->pos) {
#if defined(D1__WINDOWS)
        if (_fseeki64(f, (long long)off, SEEK_SET)) return D1__FAIL(D1_ERR_IO);
#else
        if (off > (uint64_t)LONG_MAX || fseek(f, (long)off, SEEK_SET)) return D1__FAIL(D1_ERR_IO);
#endif
        s->pos = off;
    }
    while (got < n) {
        r = fread((unsigned char *)dst + got, 1, n - got, f);
        if (r == 0) return ferror(f) ? D1__FAIL(D1_ERR_IO) : D1__FAIL(D1_ERR_TRUNCATED);
        got += r;
    }
    s->pos += n;
    return D1_OK;
}

/* The size of an open file (leaves the position at 0). */
static int d1__file_size(FILE *f, uint64_t *size) {
#if defined(D1__WINDOWS)
    long long end;
    if (_fseeki64(f, 0, SEEK_END) || (end = _ftelli64(f)) < 0 || _fseeki64(f, 0, SEEK_SET)) return D1__FAIL(D1_ERR_IO);
#else
    long end;
    if (fseek(f, 0, SEEK_END) || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) return D1__FAIL(D1_ERR_IO);
#endif
    *size = (uint64_t)end;
    return D1_OK;
}

/* A failed file operation on path, for d1_last_error: "open 'dir/config.json':
   No such file or directory". Reading a path that (or whose directory) does
   not exist is D1_ERR_NOT_FOUND, so that "nothing saved there yet" reads
   apart from a failure; everything else is D1_ERR_IO. errno 0: the path is
   not a regular file (a FIFO, a device). */
static int d1__io_fail(const char *where, int reading, const char *what, const char *path) {
    int e = errno;
    int code = reading && (e == ENOENT || e == ENOTDIR) ? D1_ERR_NOT_FOUND : D1_ERR_IO;
    return d1__fail(code, where, "%s '%s': %s", what, path, e ? strerror(e) : "not a regular file");
}
#define D1__IO_FAIL(reading, what, path) d1__io_fail(__func__, (reading), (what), (path))

/* dir + "/" + name, allocated (d1__free it). */
static char *d1__path(const char *dir, const char *name) {
    size_t ld = strlen(dir), ln = strlen(name);
    char *p = (char *)d1__alloc(ld + ln + 2);
    if (!p) return NULL;
    memcpy(p, dir, ld);
    p[ld] = '/';
    memcpy(p + ld + 1, name, ln + 1);
    return p;
}

/* fopen(path, "rb") for regular files only: a FIFO, a device or a directory
   of that name gives NULL at once (opened without blocking and checked
   first), so that no load waits forever on a pipe nobody writes. (A file
   swapped for a FIFO between the check and the fopen could still block: the
   check is against mistakes and stale paths, not against a racing writer.) */
static FILE *d1__fopen_regular(const char *path) {
#if defined(D1__POSIX)
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK), reg, e;
    if (fd < 0) return NULL;
    reg = fstat(fd, &st) == 0; /* a failed fstat leaves its errno */
    e = !reg ? errno : S_ISREG(st.st_mode) ? 0 : S_ISDIR(st.st_mode) ? EISDIR : 0;
    reg = reg && S_ISREG(st.st_mode);
    close(fd);
    if (!reg) errno = e; /* for d1__io_fail: 0 is "not a regular file" */
    return reg ? fopen(path, "rb") : NULL;
#elif defined(D1__WINDOWS)
    struct _stat64 st;
    if (_stat64(path, &st) != 0 || !(st.st_mode & _S_IFREG)) return NULL;
    return fopen(path, "rb");
#else
    return fopen(path, "rb");
#endif
}

/* The size of the regular file at path: D1_OK, or D1_ERR_IO when there is
   none (or it is not a regular file). */
static int d1__path_size(const char *path, uint64_t *size) {
    FILE *f = d1__fopen_regular(path);
    int rc;
    if (!f) return D1__IO_FAIL(1, "open", path);
    rc = d1__file_size(f, size);
    fclose(f);
    return rc;
}

/* A whole (small) file into an allocated buffer *buf[*len]; D1_ERR_JSON if it
   is over `max` bytes. */
static int d1__read_file(const char *path, uint64_t max, char **buf, size_t *len) {
    FILE *f = d1__fopen_regular(path);
    d1__src src;
    uint64_t size = 0;
    int rc;
    *buf = NULL;
    if (!f) return D1__IO_FAIL(1, "open", path);
    rc = d1__file_size(f, &size);
    if (rc == D1_OK && size > max)
        rc = D1__FAILF(D1_ERR_JSON, "'%s' is %llu bytes, over the %llu this file may have", path,
                       (unsigned long long)size, (unsigned long long)max);
    if (rc == D1_OK && !(*buf = (char *)d1__alloc((size_t)size + 1))) rc = D1__FAIL(D1_ERR_NOMEM);
    if (rc == D1_OK) {
        memset(&src, 0, sizeof src);
        src.fp = f;
        rc = d1__file_read_at(&src, 0, *buf, (size_t)size);
        if (rc == D1_ERR_TRUNCATED) rc = D1__FAILF(D1_ERR_IO, "'%s' shrank while it was read", path);
    }
    fclose(f);
    if (rc != D1_OK) {
        d1__free(*buf);
        *buf = NULL;
        return rc;
    }
    (*buf)[size] = 0;
    *len = (size_t)size;
    return D1_OK;
}

#if defined(D1__WINDOWS)
#define D1__IS_SEP(c) ((c) == '/' || (c) == '\\')
#else
#define D1__IS_SEP(c) ((c) == '/')
#endif
/* Creates dir and any missing parents (mkdir -p). */
static int d1__mkdirs(const char *dir) {
#if defined(D1__POSIX) || defined(D1__WINDOWS)
    size_t n = strlen(dir), i;
    char *p;
    int rc = D1_OK;
    if (n == 0) return D1__FAIL(D1_ERR_ARG);
    if (!(p = (char *)d1__alloc(n + 1))) return D1__FAIL(D1_ERR_NOMEM);
    memcpy(p, dir, n + 1);
    for (i = 1; i <= n && rc == D1_OK; i++) {
        if (p[i] != 0 && !D1__IS_SEP(p[i])) continue;
        p[i] = 0;
        {
#if defined(D1__POSIX)
            struct stat st;
            if (mkdir(p, 0777) != 0 && !(errno == EEXIST && stat(p, &st) == 0 && S_ISDIR(st.st_mode)))
                rc = D1__IO_FAIL(0, "mkdir", p);
#else
            DWORD a;
            if (_mkdir(p) != 0 && !((a = GetFileAttributesA(p)) != INVALID_FILE_ATTRIBUTES &&
                                    (a & FILE_ATTRIBUTE_DIRECTORY)))
                rc = D1__FAIL(D1_ERR_IO);
#endif
        }
        p[i] = dir[i];
    }
    d1__free(p);
    return rc;
#else
    (void)dir;
    return D1_OK; /* no portable mkdir: the directory must exist */
#endif
}

/* The file sink's write. The test hook D1__TEST_FAIL_AFTER_BYTES (an
   expression, < 0 = off) makes a file stop at that size with D1_ERR_IO, as a
   full disk would. */
static int d1__file_write(d1__sink *s, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    int fail = 0;
#ifdef D1__TEST_FAIL_AFTER_BYTES
    if ((D1__TEST_FAIL_AFTER_BYTES) >= 0 && s->written + n > (uint64_t)(D1__TEST_FAIL_AFTER_BYTES)) {
        n = (size_t)((uint64_t)(D1__TEST_FAIL_AFTER_BYTES) - s->written); /* the part that fits */
        fail = 1;
    }
#endif
#if defined(D1__POSIX)
    while (n > 0) {
        ssize_t w = write(s->fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return D1__FAILF(D1_ERR_IO, "write after %llu bytes: %s", (unsigned long long)s->written,
                                     w < 0 ? strerror(errno) : "nothing written");
        b += w;
        n -= (size_t)w;
        s->written += (uint64_t)w;
    }
#else
    if (n && fwrite(b, 1, n, (FILE *)s->fp) != n) return D1__FAIL(D1_ERR_IO);
    s->written += n;
#endif
    if (fail) return D1__FAILF(D1_ERR_IO, "write after %llu bytes: the test's size limit", (unsigned long long)s->written);
    return D1_OK;
}

typedef int (*d1__emit_fn)(d1__sink *sk, const void *ctx);

/* Writes the file `path` through emit, flushes it to disk and closes it. On
   failure the file is removed. */
static int d1__write_file(const char *path, d1__emit_fn emit, const void *ctx) {
    d1__sink sk;
    int rc, rc2 = D1_OK;
    memset(&sk, 0, sizeof sk);
    sk.write = d1__file_write;
#if defined(D1__POSIX)
    sk.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (sk.fd < 0) return D1__IO_FAIL(0, "create", path);
    rc = emit(&sk, ctx);
    if (rc == D1_ERR_IO) { /* name the file (the sink knows only its bytes) */
        char why[sizeof d1__err_msg];
        snprintf(why, sizeof why, "%s", d1__err_msg);
        rc = D1__FAILF(D1_ERR_IO, "writing '%s': %s", path, why);
    }
    if (rc == D1_OK && fsync(sk.fd) != 0) rc = D1__IO_FAIL(0, "fsync", path);
    if (close(sk.fd) != 0) rc2 = D1__IO_FAIL(0, "close", path);
#else
    sk.fp = fopen(path, "wb");
    if (!sk.fp) return D1__IO_FAIL(0, "create", path);
    rc = emit(&sk, ctx);
    if (rc == D1_OK && fflush((FILE *)sk.fp) != 0) rc = D1__FAIL(D1_ERR_IO);
#if defined(D1__WINDOWS)
    if (rc == D1_OK && _commit(_fileno((FILE *)sk.fp)) != 0) rc = D1__FAIL(D1_ERR_IO);
#endif
    if (fclose((FILE *)sk.fp) != 0) rc2 = D1__FAIL(D1_ERR_IO);
#endif
    if (rc == D1_OK) rc = rc2;
    if (rc != D1_OK) remove(path);
    return rc;
}

/* Renames from over to (replacing it atomically). */
static int d1__rename(const char *from, const char *to) {
#if defined(D1__WINDOWS)
    if (!MoveFileExA(from, to, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) return D1__FAIL(D1_ERR_IO);
#else
    if (rename(from, to) != 0) return D1__FAILF(D1_ERR_IO, "rename '%s' to '%s': %s", from, to, strerror(errno));
#endif
    return D1_OK;
}

/* Makes the directory's entries (the renames) durable, where possible. */
static void d1__sync_dir(const char *dir) {
#if defined(D1__POSIX)
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd); /* best effort: some file systems refuse it */
        close(fd);
    }
#else
    (void)dir;
#endif
}

/* Saves files atomically: each names[i] of dir is written as names[i].tmp by
   emit[i], then all are renamed into place in order and the directory is
   synced. On failure every .tmp is removed and the old files stay. */
static int d1__save_files(const char *dir, int n, const char *const *names, const d1__emit_fn *emit,
                          const void *const *ctx) {
    char *final_[4] = {NULL, NULL, NULL, NULL}, *tmp[4] = {NULL, NULL, NULL, NULL}, name[64];
    int i, rc;
    if (n > 4) return D1__FAIL(D1_ERR_ARG);
    if ((rc = d1__mkdirs(dir)) != D1_OK) return rc;
    for (i = 0; i < n && rc == D1_OK; i++) {
        size_t l = strlen(names[i]);
        memcpy(name, names[i], l);
        memcpy(name + l, ".tmp", 5);
        final_[i] = d1__path(dir, names[i]);
        tmp[i] = d1__path(dir, name);
        if (!final_[i] || !tmp[i]) rc = D1__FAIL(D1_ERR_NOMEM);
    }
    for (i = 0; i < n && rc == D1_OK; i++) rc = d1__write_file(tmp[i], emit[i], ctx[i]);
    for (i = 0; i < n && rc == D1_OK; i++) rc = d1__rename(tmp[i], final_[i]);
    for (i = 0; i < n; i++) {
        if (rc != D1_OK && tmp[i]) remove(tmp[i]);
        d1__free(final_[i]);
        d1__free(tmp[i]);
    }
    d1__sync_dir(dir);
    return rc;
}

/* What the emitters of a save need. */
typedef struct d1__save_ctx {
    const d1__st_table *tab;
    int                 dtype;
    const d1__meta     *meta;
    int                 n_meta;
    const char         *text;  /* config.json */
} d1__save_ctx;

/* The emitters of d1__save_files: a safetensors file, a text file. */
static int d1__emit_safetensors(d1__sink *sk, const void *ctx) {
    const d1__save_ctx *c = (const d1__save_ctx *)ctx;
    return d1__st_write(sk, c->tab, c->dtype, c->meta, c->n_meta);
}
static int d1__emit_text(d1__sink *sk, const void *ctx) {
    const d1__save_ctx *c = (const d1__save_ctx *)ctx;
    return sk->write(sk, c->text, strlen(c->text));
}

/* FNV-1a 64 over the bytes of dir/config.json then dir/model.safetensors:
   1 with *h set, 0 when the directory lacks either, or a negative D1_ERR_*
   when a file cannot be read. */
static int d1__model_files_fnv(const char *dir, uint64_t *h) {
    static const char *const names[2] = {"config.json", "model.safetensors"};
    unsigned char buf[8192];
    int i;
    *h = 14695981039346656037ull;
    for (i = 0; i < 2; i++) {
        char *p = d1__path(dir, names[i]);
        FILE *f;
        size_t n, k;
        if (!p) return D1__FAIL(D1_ERR_NOMEM);
        f = d1__fopen_regular(p);
        d1__free(p);
        if (!f) return 0; /* no model here (or none that loads) */
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            for (k = 0; k < n; k++) *h = (*h ^ buf[k]) * 1099511628211ull;
        n = (size_t)ferror(f);
        fclose(f);
        if (n) return D1__FAIL(D1_ERR_IO);
    }
    return 1;
}

/* The directory a load of `dir` reads: dir itself, or, while a
   d1_checkpoint_save that a kill interrupted left dir renamed away, dir.new
   (complete by then) or else dir.old. Allocated (d1__free it). */
static char *d1__ckpt_dir(const char *dir) {
    size_t n = strlen(dir);
    char *p = (char *)d1__alloc(n + 5);
#if defined(D1__POSIX)
    struct stat st;
#endif
    if (!p) return NULL;
    memcpy(p, dir, n + 1);
#if defined(D1__POSIX)
    if (stat(dir, &st) == 0) return p;
    while (n > 1 && p[n - 1] == '/') n--; /* "out/": its .new is "out.new", as d1_checkpoint_save names it */
    memcpy(p + n, ".new", 5);
    if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) return p;
    memcpy(p + n, ".old", 5);
    if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) return p;
    p[n] = 0;
#endif
    return p;
}

/* Saves config.json and model.safetensors into dir, atomically. */
D1_API int d1_model_save(const d1_model *m, const char *dir, int dtype) {
    static const char *const names[2] = {"model.safetensors", "config.json"};
    d1__emit_fn emit[2];
    const void *ctx[2];
    d1__save_ctx st, cj;
    d1__st_table tab;
    char config[D1_CONFIG_JSON_MAX];
    int rc;
    if (!d1__model_ok(m) || !dir || dtype < D1_DTYPE_F32 || dtype > D1_DTYPE_F16) return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(m);
    if ((rc = d1__mirror_in(m)) != D1_OK) return rc;
    if (!d1__encodable(m->param_memory, m->num_params, dtype)) return D1__FAIL(D1_ERR_NONFINITE);
    if ((rc = d1_config_to_json(&m->config, config, sizeof config)) != D1_OK) return rc;
    d1__table_model(&tab, &m->config, m->param_memory);
    memset(&st, 0, sizeof st);
    st.tab = &tab;
    st.dtype = dtype;
    cj = st;
    cj.text = config;
    emit[0] = d1__emit_safetensors; ctx[0] = &st;
    emit[1] = d1__emit_text;        ctx[1] = &cj;
    return d1__save_files(dir, 2, names, emit, ctx);
}

/* An open safetensors file whose header has been read and checked. */
typedef struct d1__st_file {
    FILE    *f;
    uint64_t size, data_start;
    char    *header;  /* [hn + 1], kept for its __metadata__ */
    size_t   hn, meta;
} d1__st_file;

/* Closes the file and frees the header. */
static void d1__st_close(d1__st_file *sf) {
    if (sf->f) fclose(sf->f);
    d1__free(sf->header);
    memset(sf, 0, sizeof *sf);
}

/* Opens path and checks its length word and header against shard `shard` of
   the table. Leaves the file open for d1__st_read. */
static int d1__st_open(d1__st_file *sf, const char *path, d1__st_table *tab, int shard, unsigned dtypes) {
    unsigned char b8[8];
    d1__src src;
    uint64_t hn = 0;
    int rc;
    memset(b8, 0, sizeof b8);
    memset(sf, 0, sizeof *sf);
    if (!(sf->f = d1__fopen_regular(path))) return D1__IO_FAIL(1, "open", path);
    memset(&src, 0, sizeof src);
    src.fp = sf->f;
    rc = d1__file_size(sf->f, &sf->size);
    if (rc == D1_OK && sf->size >= 8) rc = d1__file_read_at(&src, 0, b8, 8);
    if (rc == D1_OK) rc = d1__st_prefix(b8, sf->size, &hn);
    if (rc == D1_OK && !(sf->header = (char *)d1__alloc((size_t)hn + 1))) rc = D1__FAIL(D1_ERR_NOMEM);
    if (rc == D1_OK) rc = d1__file_read_at(&src, 8, sf->header, (size_t)hn);
    if (rc == D1_OK) rc = d1__st_check_header(sf->header, (size_t)hn);
    if (rc == D1_OK) {
        int count;
        sf->header[hn] = 0;
        sf->hn = (size_t)hn;
        sf->data_start = 8 + hn;
        rc = d1__st_parse(sf->header, sf->hn, tab, shard, dtypes, &sf->meta);
        if (rc == D1_OK) rc = d1__st_cover(tab, shard, sf->size - sf->data_start, &count);
    }
    if (rc != D1_OK) d1__st_close(sf);
    return rc;
}

/* Reads shard `shard`'s data from an open file into base. */
static int d1__st_load(d1__st_file *sf, d1__st_table *tab, int shard, float *base) {
    d1__src src;
    int count = 0, rc = d1__st_cover(tab, shard, sf->size - sf->data_start, &count);
    memset(&src, 0, sizeof src);
    src.fp = sf->f;
    src.pos = (uint64_t)-1; /* unknown: seek first */
    return rc == D1_OK ? d1__st_read(&src, sf->data_start, tab, count, base) : rc;
}

/* A file of a sharded checkpoint: where its name stands in the index text
   (a JSON string) and the FNV-1a of the name. */
typedef struct d1__shard {
    uint32_t at, hash;
} d1__shard;

/* A checkpoint directory whose config and headers are checked: the table says
   where each tensor is (shard and offsets). */
typedef struct d1__ckpt {
    d1_config    cfg;
    d1__st_table tab;
    int          n_shards;
    const char  *index;     /* model.safetensors.index.json: the shard names */
    size_t       index_len;
    char        *index_mem; /* the index as read (freed with ck) */
    d1__shard   *shards;    /* [n_shards] (NULL: one file, model.safetensors) */
    const char  *dir;
} d1__ckpt;
#define D1__SHARD_NAME 256
#define D1__MAX_SHARDS 4096

/* Frees what d1__ckpt_open allocated. */
static void d1__ckpt_free(d1__ckpt *ck) {
    d1__table_free(&ck->tab);
    d1__free(ck->index_mem);
    d1__free(ck->shards);
    ck->index = ck->index_mem = NULL;
    ck->shards = NULL;
}

/* The file name of shard s into name[D1__SHARD_NAME]. */
static void d1__ckpt_shard_name(const d1__ckpt *ck, int s, char *name) {
    d1__json j;
    if (!ck->shards) {
        memcpy(name, "model.safetensors", 18);
        return;
    }
    j.s = ck->index; j.n = ck->index_len;
    d1__json_str(&j, ck->shards[s].at, name, D1__SHARD_NAME);
}

/* A shard's file name from weight_map: a plain name in this directory. */
static int d1__shard_name_ok(const char *s, size_t n) {
    size_t i;
    if (n == 0 || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (i = 0; i < n; i++)
        if (s[i] == '/' || s[i] == '\\' || s[i] == ':' || s[i] == 0) return 0;
    return 1;
}

/* Whether shard s is the file named file (hash h). */
static int d1__shard_is(const d1__ckpt *ck, int s, const char *file, uint32_t h) {
    char other[D1__SHARD_NAME];
    if (ck->shards[s].hash != h) return 0;
    d1__ckpt_shard_name(ck, s, other);
    return !strcmp(other, file);
}
/* The number of the shard file[0..lf) (the string at `at` of the index):
   found among those so far (*last first: the usual runs of one shard), or
   appended when add; -1 when it is new and !add or `cap` are there already. */
static int d1__shard_of(d1__ckpt *ck, const char *file, size_t lf, size_t at, int *last, int add, int cap) {
    uint32_t h = d1__fnv1a(file, lf);
    int s;
    if (*last >= 0 && d1__shard_is(ck, *last, file, h)) return *last;
    for (s = 0; s < ck->n_shards; s++)
        if (s != *last && d1__shard_is(ck, s, file, h)) return *last = s;
    if (!add || ck->n_shards >= cap) return -1;
    ck->shards[s].at = (uint32_t)at;
    ck->shards[s].hash = h;
    return *last = ck->n_shards++;
}

/* model.safetensors.index.json, text[0..len) (ck->index points to it, for
   the shard names: it must outlive ck): {"weight_map": {name: file}, ...}. Gives each tensor its shard and
   lists the distinct files. The first pass checks each member in order (a
   tensor of the config, named once, a plain file name, at most
   D1__MAX_SHARDS files) and that every tensor is named, with memory bounded
   by the text; then the table is allocated and the second pass records the
   shards. */
static int d1__parse_index(d1__ckpt *ck, const char *text, size_t len) {
    d1__json j;
    d1__idx_set seen;
    d1__st_info t;
    size_t obj, wm, it, k, v;
    int rc, i, s, last, pass, cap, extra = 0;
    char name[96], file[D1__SHARD_NAME];
    ck->index = text;
    ck->index_len = len;
    if (!d1__json_check(text, len)) return D1__FAIL(D1_ERR_JSON);
    j.s = text; j.n = len;
    obj = d1__json_start(&j);
    if (j.s[obj] != '{') return D1__FAIL(D1_ERR_JSON);
    if ((rc = d1__json_find(&j, obj, "weight_map", &wm)) < 0) return rc;
    if (rc == 0 || j.s[wm] != '{') return D1__FAIL(D1_ERR_JSON);
    d1__table_model(&ck->tab, &ck->cfg, NULL);
    ck->tab.sharded = 1;
    /* each file is named in a member of 34 bytes or more */
    cap = (int)D1__MIN((size_t)D1__MAX_SHARDS, len / 32 + 1);
    if (!(ck->shards = (d1__shard *)d1__alloc((size_t)cap * sizeof(d1__shard)))) return D1__FAIL(D1_ERR_NOMEM);
    if ((rc = d1__set_init(&seen, d1__names_max(len, ck->tab.n + ck->tab.alias))) != D1_OK) return rc;
    for (pass = 0; pass < 2 && rc == D1_OK; pass++) {
        last = -1;
        for (it = wm + 1; rc == D1_OK && d1__json_member(&j, &it, &k, &v);) {
            size_t ln = d1__json_str(&j, k, name, sizeof name), lf = 0;
            i = ln == (size_t)-1 ? -1 : d1__st_find(&ck->tab, name, ln, &t);
            if (i < 0) rc = D1__FAIL(D1_ERR_UNKNOWN_TENSOR);
            else if (pass == 0 && d1__set_add(&seen, i)) rc = D1__FAIL(D1_ERR_DUPLICATE);
            else if (j.s[v] != '"' || (lf = d1__json_str(&j, v, file, sizeof file)) == (size_t)-1 ||
                     !d1__shard_name_ok(file, lf))
                rc = D1__FAIL(D1_ERR_JSON);
            else if ((s = d1__shard_of(ck, file, lf, v, &last, pass == 0, cap)) < 0) rc = D1__FAIL(D1_ERR_JSON);
            else if (pass) ck->tab.e[i].shard = s;
            else extra += i == ck->tab.n; /* the tied head's alias, optional */
        }
        if (pass == 0) {
            if (rc == D1_OK && seen.count - (size_t)extra < (size_t)ck->tab.n) rc = D1__FAIL(D1_ERR_MISSING);
            d1__free(seen.slot);
            if (rc == D1_OK) rc = d1__table_alloc(&ck->tab); /* every tensor is named */
        }
    }
    return rc;
}

/* Opens the checkpoint directory `path`: reads config.json, then checks the
   header of model.safetensors, or of every shard of the index. */
static int d1__ckpt_open_with(d1__ckpt *ck, const char *path, const char *config_name) {
    char *p = NULL, *text = NULL;
    size_t len = 0;
    d1__st_file sf;
    int rc, s;
    FILE *probe;
    memset(ck, 0, sizeof *ck);
    ck->dir = path;
    if (!(p = d1__path(path, config_name))) return D1__FAIL(D1_ERR_NOMEM);
    rc = d1__read_file(p, D1_SAFETENSORS_MAX_HEADER, &text, &len);
    d1__free(p);
    if (rc == D1_OK) rc = d1_config_from_json(&ck->cfg, text, len);
    d1__free(text);
    text = NULL;
    if (rc != D1_OK) return rc;
    if (!(p = d1__path(path, "model.safetensors"))) return D1__FAIL(D1_ERR_NOMEM);
    probe = d1__fopen_regular(p);
    if (!probe && errno != ENOENT) { /* there, but not a readable regular file */
        rc = D1__IO_FAIL(1, "open", p);
        d1__free(p);
        return rc;
    }
    if (probe) { /* one file */
        uint64_t size = 0;
        rc = d1__file_size(probe, &size);
        fclose(probe);
        /* every parameter takes >= 2 bytes (BF16, F16): a config that claims
           more than the file can hold fails before its tables are built */
        if (rc == D1_OK && (double)size < 2.0 * (double)d1_config_num_params(&ck->cfg)) rc = D1__FAIL(D1_ERR_TRUNCATED);
        if (rc != D1_OK) {
            d1__free(p);
            return rc;
        }
        ck->n_shards = 1;
        d1__table_model(&ck->tab, &ck->cfg, NULL);
        rc = d1__st_open(&sf, p, &ck->tab, 0, D1__DTYPES_ALL);
        d1__st_close(&sf);
        d1__free(p);
        return rc;
    }
    d1__free(p);
    if (!(p = d1__path(path, "model.safetensors.index.json"))) return D1__FAIL(D1_ERR_NOMEM);
    rc = d1__read_file(p, D1_SAFETENSORS_MAX_HEADER, &text, &len);
    d1__free(p);
    ck->index_mem = text; /* kept for the shard names */
    if (rc == D1_OK) rc = d1__parse_index(ck, text, len);
    for (s = 0; s < ck->n_shards && rc == D1_OK; s++) {
        char name[D1__SHARD_NAME];
        d1__ckpt_shard_name(ck, s, name);
        if (!(p = d1__path(path, name))) return D1__FAIL(D1_ERR_NOMEM);
        rc = d1__st_open(&sf, p, &ck->tab, s, D1__DTYPES_ALL);
        d1__st_close(&sf);
        d1__free(p);
    }
    return rc;
}

/* d1_model_save renames model.safetensors into place before config.json: a
   kill between the two leaves the new weights, the old config.json and the
   new one, complete, as config.json.tmp. When the weights do not fit
   config.json and config.json.tmp is there, the checkpoint is read with it
   (the save rolled forward); otherwise the first error stands. */
static int d1__ckpt_open(d1__ckpt *ck, const char *path) {
    int rc = d1__ckpt_open_with(ck, path, "config.json"), rc2;
    char *tmp;
    FILE *f;
    if (rc != D1_ERR_TENSOR_SHAPE && rc != D1_ERR_MISSING && rc != D1_ERR_UNKNOWN_TENSOR && rc != D1_ERR_TRUNCATED)
        return rc;
    if (!(tmp = d1__path(path, "config.json.tmp"))) return rc;
    f = d1__fopen_regular(tmp);
    d1__free(tmp);
    if (!f) return rc;
    fclose(f);
    d1__ckpt_free(ck);
    if ((rc2 = d1__ckpt_open_with(ck, path, "config.json.tmp")) == D1_OK) return D1_OK;
    d1__ckpt_free(ck);
    return d1__ckpt_open_with(ck, path, "config.json"); /* the first error, and its state */
}

/* Reads every shard's tensors into base (the checked headers say where). */
static int d1__ckpt_read(d1__ckpt *ck, float *base) {
    d1__st_file sf;
    char *p;
    int rc = D1_OK, s;
    for (s = 0; s < ck->n_shards && rc == D1_OK; s++) {
        char name[D1__SHARD_NAME];
        d1__ckpt_shard_name(ck, s, name);
        if (!(p = d1__path(ck->dir, name))) return D1__FAIL(D1_ERR_NOMEM);
        /* re-checked: the file may have changed since d1__ckpt_open */
        rc = d1__st_open(&sf, p, &ck->tab, s, D1__DTYPES_ALL);
        if (rc == D1_OK) rc = d1__st_load(&sf, &ck->tab, s, base);
        d1__st_close(&sf);
        d1__free(p);
    }
    return rc;
}

/* ---- d1_model_load_bf16: the matrices straight into BF16 ------------------------
   The flat FP32 layout's offsets (d1__layout_of) that a checkpoint's tensors
   map to, sent where this model keeps them: wte and attn_norm (adjacent in
   both layouts) and ff_norm and ln_f into the FP32 param_memory
   [wte V*C | attn_norm L*C | ff_norm L*C | ln_f C]; every matrix element
   rounded to BF16 into its place in the packed copy (d1__bf16_pack_w's
   layout: pair col/2 of row r at panel r - r%NR, lane r%NR). */
typedef struct d1__resident_sink {
    d1__st_sink      k;       /* first: the loader hands back a d1__st_sink * */
    d1__layout       o;
    const d1_config *c;
    float           *fp32;    /* param_memory */
    d1__bf16w       *bw;
} d1__resident_sink;

/* Elements [off, off+n) of a stack of [rows, K] matrices (per floats each in
   the flat layout, n_per words each in Wp0) into their BF16 places. */
static void d1__pack_put(uint32_t *Wp0, size_t n_per, size_t per, int K, size_t off, const float *x, size_t n) {
    size_t Kp = (size_t)(K + 1) / 2;
    while (n > 0) {
        size_t r = off % per, row = r / (size_t)K, col = r % (size_t)K, take = D1__MIN(n, (size_t)K - col), i;
        uint32_t *Wp = Wp0 + off / per * n_per + (row - row % D1__BF_NR) * Kp + row % D1__BF_NR;
        for (i = 0; i < take; i++, col++) {
            uint32_t *w = Wp + col / 2 * D1__BF_NR, h = d1__bf16_round(x[i]);
            *w = col & 1 ? (*w & 0xFFFFu) | h << 16 : (*w & 0xFFFF0000u) | h;
        }
        off += take; x += take; n -= take;
    }
}

static void d1__resident_put(d1__st_sink *k, size_t dst, const float *x, size_t n) {
    d1__resident_sink *r = (d1__resident_sink *)k;
    const d1__layout *o = &r->o;
    d1__bf16w *bw = r->bw;
    size_t C = (size_t)r->c->dim, F = (size_t)r->c->ffn_dim, L = (size_t)r->c->n_layers, QW = (size_t)d1__qw(r->c);
    size_t VC = (size_t)r->c->vocab_size * C;
    if (dst < o->qkv) memcpy(r->fp32 + dst, x, n * sizeof(float)); /* attn_norm */
    else if (dst < o->attn_out) d1__pack_put(bw->qkv, bw->n_qkv, QW * C, (int)C, dst - o->qkv, x, n);
    else if (dst < o->ff_norm) d1__pack_put(bw->attn_out, bw->n_attn_out, C * C, (int)C, dst - o->attn_out, x, n);
    else if (dst < o->gate_up) memcpy(r->fp32 + VC + L * C + (dst - o->ff_norm), x, n * sizeof(float));
    else if (dst < o->ff_out) d1__pack_put(bw->gate_up, bw->n_gate_up, 2 * F * C, (int)C, dst - o->gate_up, x, n);
    else if (dst < o->ln_f) d1__pack_put(bw->ff_out, bw->n_ff_out, C * F, (int)F, dst - o->ff_out, x, n);
    else if (dst < o->ln_f + C) memcpy(r->fp32 + VC + 2 * L * C + (dst - o->ln_f), x, n * sizeof(float));
    else d1__pack_put(bw->head, 0, VC, (int)C, dst - o->head, x, n); /* the untied head */
}

/* The model of d1_model_load_bf16 without its values: param_memory for wte
   and the norms, the packed BF16 copy (zeroed: its padding stays 0), the
   state, in D1_PRECISION_BF16 for good. */
static int d1__model_alloc_resident(d1_model *m, const d1_config *c) {
    d1_model tmp;
    size_t VC = (size_t)c->vocab_size * c->dim, LC = (size_t)c->n_layers * c->dim, words;
    d1__bf16w bw;
    int rc = d1__model_new(&tmp, c, VC + 2 * LC + (size_t)c->dim);
    if (rc != D1_OK) return rc;
    words = d1__bf16w_carve(c, NULL, &bw);
    if (!(tmp.state->bw.mem = (uint32_t *)d1__alloc(words * sizeof(uint32_t)))) {
        d1_model_free(&tmp);
        return D1__FAIL(D1_ERR_NOMEM);
    }
    memset(tmp.state->bw.mem, 0, words * sizeof(uint32_t));
    d1__bf16w_carve(c, tmp.state->bw.mem, &tmp.state->bw);
    tmp.state->bw.simd = d1__bf16_simd(tmp.state);
    tmp.state->precision = D1_PRECISION_BF16;
    tmp.state->bf16_resident = 1;
    tmp.params.wte = tmp.param_memory;
    tmp.params.attn_norm = tmp.param_memory + VC;
    tmp.params.ff_norm = tmp.param_memory + VC + LC;
    tmp.params.ln_f = tmp.param_memory + VC + 2 * LC;
    *m = tmp;
    return D1_OK;
}

/* Loads a checkpoint directory: headers first, then the model, then the data;
   resident: the matrices into the packed BF16 copy only (d1_model_load_bf16). */
static int d1__model_load_dir(d1_model *m, const char *path, int resident) {
    d1__ckpt ck;
    d1_model tmp;
    d1__resident_sink rs;
    int rc;
    char *dir;
    if (!m || !path) return D1__FAIL(D1_ERR_ARG);
    if (!(dir = d1__ckpt_dir(path))) return D1__FAIL(D1_ERR_NOMEM);
    rc = d1__ckpt_open(&ck, dir); /* ck keeps dir until d1__ckpt_free */
    if (rc == D1_OK)
        rc = resident ? d1__model_alloc_resident(&tmp, &ck.cfg) : d1__model_alloc(&tmp, &ck.cfg);
    if (rc == D1_OK) {
        if (resident) {
            memset(&rs, 0, sizeof rs);
            rs.o = d1__layout_of(&ck.cfg);
            rs.k.from = rs.o.attn_norm; /* wte straight into place, the rest through the sink */
            rs.k.put = d1__resident_put;
            rs.c = &ck.cfg;
            rs.fp32 = tmp.param_memory;
            rs.bw = &tmp.state->bw;
            ck.tab.sink = &rs.k;
        }
        rc = d1__ckpt_read(&ck, tmp.param_memory);
        if (rc == D1_OK && resident && ck.cfg.tied_embeddings) /* the head is wte */
            d1__bf16_pack_w(ck.cfg.vocab_size, ck.cfg.dim, tmp.params.wte, ck.cfg.dim, tmp.state->bw.head);
        if (rc != D1_OK) d1_model_free(&tmp);
    }
    d1__ckpt_free(&ck);
    d1__free(dir);
    if (rc == D1_OK) *m = tmp;
    return rc;
}
D1_API int d1_model_load(d1_model *m, const char *path) { return d1__model_load_dir(m, path, 0); }
D1_API int d1_model_load_bf16(d1_model *m, const char *path) { return d1__model_load_dir(m, path, 1); }

/* The stored dtype of each tensor, from the headers alone. */
D1_API int d1_model_stored_dtypes(const d1_model *m, const char *path, int *dtypes) {
    d1__ckpt ck;
    int rc, i;
    if (!d1__model_ok(m) || !path || !dtypes) return D1__FAIL(D1_ERR_ARG);
    rc = d1__ckpt_open(&ck, path);
    if (rc == D1_OK && memcmp(&ck.cfg, &m->config, sizeof ck.cfg)) rc = D1__FAIL(D1_ERR_CONFIG);
    for (i = 0; rc == D1_OK && i < ck.tab.n; i++) dtypes[i] = ck.tab.e[i].dtype;
    d1__ckpt_free(&ck);
    return rc;
}

// >>train_state --------------------------------------------------------------
/* ---- training state ------------------------------------------------------------
   optimizer.safetensors: exp_avg.<name> and exp_avg_sq.<name> (F32) for each
   tensor of the model, and in __metadata__ the strings d1.step, d1.lr,
   d1.beta1, d1.beta2, d1.eps, d1.weight_decay, d1.grad_clip, d1.n_rngs,
   d1.rng.<i> ("s0 s1 s2 s3", decimal) and d1.settings (optional). */
#define D1__N_DESC 6
static const char *const d1__desc_keys[D1__N_DESC] = {"d1.lr", "d1.beta1", "d1.beta2", "d1.eps",
                                                      "d1.weight_decay", "d1.grad_clip"};
/* The AdamW desc as 6 floats (in d1__desc_keys order), and back. */
static void d1__desc_get(const d1_adamw_desc *d, float *v) {
    v[0] = d->lr; v[1] = d->beta1; v[2] = d->beta2; v[3] = d->eps; v[4] = d->weight_decay; v[5] = d->grad_clip;
}
static void d1__desc_set(d1_adamw_desc *d, const float *v) {
    d->lr = v[0]; d->beta1 = v[1]; d->beta2 = v[2]; d->eps = v[3]; d->weight_decay = v[4]; d->grad_clip = v[5];
}

/* Saves the moments, step, desc, RNG states and settings: optimizer.safetensors. */
D1_API int d1_train_state_save(const char *dir, const d1_model *m, const d1_adamw *opt, const d1_rng *rngs,
                               int n_rngs, const char *settings_json) {
    static const char *const names[1] = {"optimizer.safetensors"};
    d1__emit_fn emit[1];
    const void *ctx[1];
    d1__save_ctx sc;
    d1__st_table tab;
    d1__meta *meta;
    char *strs;
    float dv[D1__N_DESC];
    int i, k, n_meta, rc, has_model;
    size_t at = 0;
    uint64_t model_fnv = 0;
    if (!dir || !d1__model_ok(m) || !opt || !opt->m || opt->n != m->num_params || opt->step < 0 ||
        n_rngs < 0 || n_rngs > 1000000 || (n_rngs && !rngs))
        return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(m);
    d1__desc_get(&opt->desc, dv);
    for (i = 0; i < D1__N_DESC; i++)
        if (!isfinite(dv[i])) return D1__FAIL(D1_ERR_ARG);
    if (settings_json && !d1__json_check(settings_json, strlen(settings_json))) return D1__FAIL(D1_ERR_JSON);
#if defined(D1_CUDA)
    if (opt->dev && (rc = d1__gpu_opt_home((d1_adamw *)opt, 2)) != D1_OK) return rc; /* refresh, stay */
#endif
    if (!d1__encodable(opt->m, 2 * opt->n, D1_DTYPE_F32)) return D1__FAIL(D1_ERR_NONFINITE);
    /* metadata: step, desc, n_rngs, rngs, settings; keys and values in strs */
    /* the model beside it, by hash (see d1_train_state_load) */
    if ((has_model = d1__model_files_fnv(dir, &model_fnv)) < 0) return has_model;
    n_meta = 2 + D1__N_DESC + n_rngs + (settings_json ? 1 : 0) + has_model;
    meta = (d1__meta *)d1__alloc((size_t)n_meta * sizeof(d1__meta));
    strs = (char *)d1__alloc(64 * (size_t)(D1__N_DESC + 3) + 128 * (size_t)n_rngs);
    if (!meta || !strs) {
        d1__free(meta);
        d1__free(strs);
        return D1__FAIL(D1_ERR_NOMEM);
    }
    k = 0;
    meta[k].key = "d1.step";
    meta[k++].value = strs + at;
    at += d1__u64_digits((uint64_t)opt->step, strs + at);
    strs[at++] = 0;
    for (i = 0; i < D1__N_DESC; i++) {
        meta[k].key = d1__desc_keys[i];
        meta[k++].value = strs + at;
        at += d1__format_float(dv[i], strs + at) + 1;
    }
    meta[k].key = "d1.n_rngs";
    meta[k++].value = strs + at;
    at += d1__u64_digits((uint64_t)n_rngs, strs + at);
    strs[at++] = 0;
    for (i = 0; i < n_rngs; i++) {
        int w;
        meta[k].key = strs + at; /* "d1.rng.<i>" */
        memcpy(strs + at, "d1.rng.", 7);
        at += 7 + d1__u64_digits((uint64_t)i, strs + at + 7);
        strs[at++] = 0;
        meta[k++].value = strs + at;
        for (w = 0; w < 4; w++) {
            at += d1__u64_digits(rngs[i].s[w], strs + at);
            strs[at++] = w < 3 ? ' ' : 0;
        }
    }
    if (settings_json) {
        meta[k].key = "d1.settings";
        meta[k++].value = settings_json;
    }
    if (has_model) {
        meta[k].key = "d1.model_fnv";
        meta[k++].value = strs + at;
        for (i = 0; i < 16; i++) strs[at++] = "0123456789abcdef"[(model_fnv >> (60 - 4 * i)) & 15];
        strs[at++] = 0;
    }
    d1__table_adamw(&tab, m, opt);
    memset(&sc, 0, sizeof sc);
    sc.tab = &tab;
    sc.dtype = D1_DTYPE_F32;
    sc.meta = meta;
    sc.n_meta = k;
    emit[0] = d1__emit_safetensors;
    ctx[0] = &sc;
    rc = d1__save_files(dir, 1, names, emit, ctx);
    d1__free(meta);
    d1__free(strs);
    return rc;
}

/* Metadata string `key` of the object at meta, decoded into buf[cap]: D1_OK,
   or D1_ERR_CONFIG when absent or too long, or D1_ERR_DUPLICATE. */
static int d1__meta_str(const d1__json *j, size_t meta, const char *key, char *buf, size_t cap, size_t *len) {
    size_t v;
    int rc = d1__json_find(j, meta, key, &v);
    if (rc < 0) return rc;
    if (rc == 0 || (*len = d1__json_str(j, v, buf, cap)) == (size_t)-1) return D1__FAIL(D1_ERR_CONFIG);
    return D1_OK;
}

/* The "s0 s1 s2 s3" words of an RNG state. */
static int d1__parse_rng(const char *s, size_t n, d1_rng *r) {
    size_t i = 0, k;
    int w;
    for (w = 0; w < 4; w++) {
        for (k = i; k < n && s[k] != ' '; k++) {}
        if (!d1__parse_u64(s + i, k - i, &r->s[w])) return 0;
        if (w < 3 && k == n) return 0;
        i = k + 1;
    }
    /* all-zero is xoshiro's fixed point: it would return 0 forever */
    return i == n + 1 && (r->s[0] | r->s[1] | r->s[2] | r->s[3]) != 0;
}

/* Restores what d1_train_state_save wrote; every check comes before any change. */
D1_API int d1_train_state_load(const char *dir, const d1_model *m, d1_adamw *opt, d1_rng *rngs, int n_rngs,
                               char *settings_json, size_t settings_cap) {
    d1__st_table tab;
    d1__st_file sf;
    d1__json j;
    d1_adamw_desc desc;
    d1_rng *rs = NULL;
    float dv[D1__N_DESC], *mem = NULL;
    char buf[128], *p;
    size_t len, sv = 0, slen = 0;
    uint64_t step = 0, nr = 0;
    double d = 0.0;
    int rc, i, has_settings = 0;
    char *at;
    if (!dir || !d1__model_ok(m) || !opt || !opt->m || opt->n != m->num_params || n_rngs < 0 ||
        (n_rngs && !rngs))
        return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(m);
    d1__table_adamw(&tab, m, NULL);
    if (!(at = d1__ckpt_dir(dir))) return D1__FAIL(D1_ERR_NOMEM); /* dir, or where an interrupted swap left it */
    p = d1__path(at, "optimizer.safetensors");
    if (!p) {
        d1__free(at);
        return D1__FAIL(D1_ERR_NOMEM);
    }
    rc = d1__st_open(&sf, p, &tab, 0, 1u << D1_DTYPE_F32);
    d1__free(p);
    if (rc == D1_OK && sf.meta == (size_t)-1) rc = D1__FAIL(D1_ERR_CONFIG);
    j.s = sf.header; j.n = sf.hn;
    /* the metadata, checked in full before anything changes */
    if (rc == D1_OK) rc = d1__meta_str(&j, sf.meta, "d1.step", buf, sizeof buf, &len);
    /* a step count AdamW can go on from: 1 - b^t is exact in double for t <= 2^53 */
    if (rc == D1_OK && (!d1__parse_u64(buf, len, &step) || step >= ((uint64_t)1 << 53))) rc = D1__FAIL(D1_ERR_CONFIG);
    for (i = 0; i < D1__N_DESC && rc == D1_OK; i++) {
        rc = d1__meta_str(&j, sf.meta, d1__desc_keys[i], buf, sizeof buf, &len);
        if (rc == D1_OK && !d1__parse_number(buf, len, &d)) rc = D1__FAIL(D1_ERR_CONFIG);
        dv[i] = (float)d;
    }
    if (rc == D1_OK) {
        d1__desc_set(&desc, dv);
        if (!d1__adamw_desc_ok(&desc) || !isfinite(desc.eps)) rc = D1__FAIL(D1_ERR_CONFIG);
    }
    if (rc == D1_OK) rc = d1__meta_str(&j, sf.meta, "d1.n_rngs", buf, sizeof buf, &len);
    if (rc == D1_OK && !d1__parse_u64(buf, len, &nr)) rc = D1__FAIL(D1_ERR_CONFIG);
    if (rc == D1_OK && nr != (uint64_t)n_rngs) rc = D1__FAIL(D1_ERR_ARG);
    if (rc == D1_OK && n_rngs && !(rs = (d1_rng *)d1__alloc((size_t)n_rngs * sizeof(d1_rng)))) rc = D1__FAIL(D1_ERR_NOMEM);
    for (i = 0; i < n_rngs && rc == D1_OK; i++) {
        char key[32];
        size_t kl = d1__u64_digits((uint64_t)i, key + 7);
        memcpy(key, "d1.rng.", 7);
        key[7 + kl] = 0;
        rc = d1__meta_str(&j, sf.meta, key, buf, sizeof buf, &len);
        if (rc == D1_OK && !d1__parse_rng(buf, len, rs + i)) rc = D1__FAIL(D1_ERR_CONFIG);
    }
    if (rc == D1_OK) {
        int r = d1__json_find(&j, sf.meta, "d1.settings", &sv);
        if (r < 0) rc = r;
        has_settings = r == 1;
        if (has_settings) slen = d1__json_str(&j, sv, NULL, 0);
        if (settings_json && (settings_cap == 0 || (has_settings && slen >= settings_cap))) rc = D1__FAIL(D1_ERR_ARG);
    }
    if (rc == D1_OK) { /* the model it was saved with, when it was saved beside one */
        size_t hv;
        int r = d1__json_find(&j, sf.meta, "d1.model_fnv", &hv);
        if (r < 0) rc = r;
        if (r == 1) {
            uint64_t want = 0, have = 0;
            int k, got;
            len = d1__json_str(&j, hv, buf, sizeof buf);
            if (len != 16) rc = D1__FAIL(D1_ERR_CONFIG);
            for (k = 0; k < 16 && rc == D1_OK; k++) {
                char ch = buf[k];
                int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
                if (v < 0) rc = D1__FAIL(D1_ERR_CONFIG);
                want = want << 4 | (uint64_t)(v & 15);
            }
            if (rc == D1_OK && (got = d1__model_files_fnv(at, &have)) < 0) rc = got;
            else if (rc == D1_OK && (got == 0 || have != want)) rc = D1__FAIL(D1_ERR_MISMATCH);
        }
    }
    /* the moments into a new buffer, swapped in only when all went well */
    if (rc == D1_OK && !(mem = d1__alloc_floats(2 * opt->n))) rc = D1__FAIL(D1_ERR_NOMEM);
    if (rc == D1_OK) rc = d1__st_load(&sf, &tab, 0, mem);
    if (rc == D1_OK) {
#if defined(D1_CUDA)
        d1__gpu_opt_home(opt, 0); /* the device's moments are superseded */
#endif
        d1__free(opt->m);
        opt->m = mem;
        opt->v = mem + opt->n;
        opt->step = (int64_t)step;
        opt->desc = desc;
        if (n_rngs) memcpy(rngs, rs, (size_t)n_rngs * sizeof(d1_rng));
        if (settings_json) {
            settings_json[0] = 0;
            if (has_settings) d1__json_str(&j, sv, settings_json, settings_cap);
        }
    } else {
        d1__free(mem);
    }
    d1__free(rs);
    d1__st_close(&sf);
    d1__table_free(&tab);
    d1__free(at);
    return rc;
}

/* ---- a model and its training state as one unit --------------------------------
   DIR.tmp is written in full (each file synced) and renamed DIR.new, then
   DIR -> DIR.old, DIR.new -> DIR, DIR.old removed; d1__ckpt_dir finds the
   pair wherever a kill between two of these steps left it. */
#if defined(D1__POSIX)
#include <dirent.h>
static const char *const d1__ckpt_names[] = {"config.json", "model.safetensors", "optimizer.safetensors",
                                            "config.json.tmp", "model.safetensors.tmp",
                                            "optimizer.safetensors.tmp"};
/* Whether `name` is one of the files a checkpoint directory may hold. */
static int d1__ckpt_own(const char *name) {
    size_t i;
    if (!strcmp(name, ".") || !strcmp(name, "..")) return 1;
    for (i = 0; i < sizeof d1__ckpt_names / sizeof d1__ckpt_names[0]; i++)
        if (!strcmp(name, d1__ckpt_names[i])) return 1;
    return 0;
}
/* 1 when dir is missing or holds only checkpoint files, 0 when it holds
   anything else (or is not a directory) */
static int d1__ckpt_only(const char *dir) {
    struct stat st;
    DIR *d;
    struct dirent *e;
    int ok = 1;
    if (stat(dir, &st) != 0) return 1;
    if (!S_ISDIR(st.st_mode) || !(d = opendir(dir))) return 0;
    while (ok && (e = readdir(d))) ok = d1__ckpt_own(e->d_name);
    closedir(d);
    return ok;
}
/* Removes a checkpoint directory's own files, then the directory (if it was
   left with others, it stays). A missing directory is fine. */
static void d1__ckpt_remove(const char *dir) {
    size_t i;
    for (i = 0; i < sizeof d1__ckpt_names / sizeof d1__ckpt_names[0]; i++) {
        char *p = d1__path(dir, d1__ckpt_names[i]);
        if (p) remove(p);
        d1__free(p);
    }
    rmdir(dir);
}
#endif

D1_API int d1_checkpoint_save(const char *dir, const d1_model *m, int dtype, const d1_adamw *opt,
                              const d1_rng *rngs, int n_rngs, const char *settings_json) {
#if defined(D1__POSIX)
    struct stat st;
    size_t n;
    char *d, *tmp, *nw, *old, *parent, *slash;
    int rc = D1_OK;
    if (!dir || !*dir || !d1__model_ok(m) || !opt) return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(m);
    n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--; /* "out/" names the same directory as "out" */
    if (!(d = (char *)d1__alloc(5 * (n + 5)))) return D1__FAIL(D1_ERR_NOMEM);
    tmp = d + (n + 5); nw = tmp + (n + 5); old = nw + (n + 5); parent = old + (n + 5);
    memcpy(d, dir, n); d[n] = 0;
    memcpy(tmp, dir, n); memcpy(tmp + n, ".tmp", 5); /* being written: never read */
    memcpy(nw, dir, n); memcpy(nw + n, ".new", 5);   /* complete, not yet in place */
    memcpy(old, dir, n); memcpy(old + n, ".old", 5); /* the pair being replaced */
    memcpy(parent, dir, n + 1); parent[n] = 0;
    slash = strrchr(parent, '/');
    if (slash == parent) parent[1] = 0;
    else if (slash) *slash = 0;
    else memcpy(parent, ".", 2);

    /* 1. settle what an interrupted save left (as d1__ckpt_dir reads it) */
    if (stat(d, &st) != 0) {
        if (stat(nw, &st) == 0) { if (rename(nw, d) != 0) rc = D1__FAIL(D1_ERR_IO); }
        else if (stat(old, &st) == 0 && rename(old, d) != 0) rc = D1__FAIL(D1_ERR_IO);
    }
    if (rc == D1_OK && (!d1__ckpt_only(d) || !d1__ckpt_only(tmp) || !d1__ckpt_only(nw) || !d1__ckpt_only(old)))
        rc = D1__FAIL(D1_ERR_ARG); /* a directory that holds other files is not ours to swap */
    if (rc == D1_OK) {
        d1__ckpt_remove(tmp);
        d1__ckpt_remove(nw); /* complete, but DIR is there: the older pair stays the one */
        d1__ckpt_remove(old);
    }
    /* 2. the new pair, in full, then one rename makes it DIR.new */
    if (rc == D1_OK) rc = d1_model_save(m, tmp, dtype);
    if (rc == D1_OK) rc = d1_train_state_save(tmp, m, opt, rngs, n_rngs, settings_json);
    if (rc == D1_OK && rename(tmp, nw) != 0) rc = D1__FAIL(D1_ERR_IO);
    if (rc != D1_OK) d1__ckpt_remove(tmp);
    /* 3. the swap */
    if (rc == D1_OK) {
        d1__sync_dir(parent);
        if (stat(d, &st) == 0 && rename(d, old) != 0) rc = D1__FAIL(D1_ERR_IO);
        if (rc == D1_OK && rename(nw, d) != 0) {
            rename(old, d); /* put the old pair back */
            rc = D1__FAIL(D1_ERR_IO);
        }
        if (rc == D1_OK) {
            d1__sync_dir(parent);
            d1__ckpt_remove(old);
        } else {
            d1__ckpt_remove(nw);
        }
    }
    d1__free(d);
    return rc;
#else
    (void)dir; (void)m; (void)dtype; (void)opt; (void)rngs; (void)n_rngs; (void)settings_json;
    return D1__FAIL(D1_ERR_UNSUPPORTED);
#endif
}


/* ---- LoRA adapters on their own ------------------------------------------------ */

/* Saves the adapters alone, atomically: dir/adapter_model.safetensors (F32,
   PEFT's tensor names) and dir/adapter_config.json (PEFT's keys: r,
   lora_alpha, target_modules, peft_type). */
D1_API int d1_lora_save(const d1_model *m, const char *dir) {
    static const char *const names[2] = {"adapter_model.safetensors", "adapter_config.json"};
    d1__emit_fn emit[2];
    const void *ctx[2];
    d1__save_ctx st, cj;
    d1__st_table tab;
    d1__text t;
    char text[1024];
    int k, first;
    if (!d1__model_ok(m) || !m->lora || !dir) return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(m);
    if (!d1__encodable(m->lora->param_memory, m->lora->num_params, D1_DTYPE_F32)) return D1__FAIL(D1_ERR_NONFINITE);
    t.p = text; t.cap = sizeof text; t.len = 0;
    d1__puts(&t, "{\n  \"peft_type\": \"LORA\",\n  \"r\": ");
    d1__put_u64(&t, (uint64_t)m->lora->rank);
    d1__puts(&t, ",\n  \"lora_alpha\": ");
    d1__put_float(&t, m->lora->alpha);
    d1__puts(&t, ",\n  \"lora_dropout\": 0.0,\n  \"bias\": \"none\",\n  \"target_modules\": [");
    for (k = 0, first = 1; k < 7; k++)
        if (m->lora->targets >> k & 1u) {
            d1__puts(&t, first ? "\"" : ", \"");
            d1__puts(&t, d1__lora_names[k]);
            d1__puts(&t, "\"");
            first = 0;
        }
    d1__puts(&t, "],\n"
                 "  \"task_type\": \"CAUSAL_LM\",\n  \"base_model_name_or_path\": null,\n"
                 "  \"inference_mode\": false,\n  \"fan_in_fan_out\": false,\n  \"modules_to_save\": null\n}\n");
    d1__put(&t, "", 1);
    if (t.len > t.cap) return D1__FAIL(D1_ERR_ARG);
    d1__table_lora(&tab, &m->config, m->lora->rank, m->lora->targets, m->lora->param_memory);
    memset(&st, 0, sizeof st);
    st.tab = &tab;
    st.dtype = D1_DTYPE_F32;
    cj = st;
    cj.text = text;
    emit[0] = d1__emit_safetensors; ctx[0] = &st;
    emit[1] = d1__emit_text;        ctx[1] = &cj;
    return d1__save_files(dir, 2, names, emit, ctx);
}

/* The modules of adapter_config.json's target_modules (a list of names, as
   PEFT writes it): the bits of LLaDA's module names in it; names of no LLaDA
   module (d1's own config, diffu-grpo/diffu_grpo_train.py line 95, lists
   o_proj, gate_proj and down_proj too, which LLaDA lacks)
   are skipped, as PEFT skips them. D1_ERR_CONFIG when absent, not a list
   of strings (PEFT's regular-expression form included), or naming none. */
static int d1__lora_targets_of(const d1__json *j, size_t obj, unsigned *targets) {
    size_t v, it, e;
    int f = d1__json_find(j, obj, "target_modules", &v), k;
    *targets = 0;
    if (f < 0) return f;
    if (f == 0 || j->s[v] != '[')
        return D1__FAILF(D1_ERR_CONFIG, "adapter_config.json: target_modules %s, want a list of module names",
                         f == 0 ? "is absent" : "is not a list");
    for (it = v + 1; d1__json_element(j, &it, &e);) {
        if (j->s[e] != '"') return D1__FAILF(D1_ERR_CONFIG, "adapter_config.json: target_modules holds a non-string");
        for (k = 0; k < 7; k++)
            if (d1__json_str_is(j, e, d1__lora_names[k])) *targets |= 1u << k;
    }
    if (*targets == 0)
        return D1__FAILF(D1_ERR_CONFIG, "adapter_config.json: target_modules names none of LLaDA's modules (q_proj, "
                                        "k_proj, v_proj, attn_out, ff_proj, up_proj, ff_out)");
    return D1_OK;
}

/* Loads what d1_lora_save wrote: attaches adapters of the saved rank and
   alpha when m has none (the saved values replace the fresh ones), or fills
   the attached ones, whose rank and alpha must match. On failure m is as it
   was (a fresh attachment is undone). */
D1_API int d1_lora_load(d1_model *m, const char *dir) {
    d1__st_table tab;
    d1__st_file sf;
    d1__json j;
    char *text = NULL, *p;
    size_t len = 0, v;
    uint64_t r = 0;
    double alpha = 0.0;
    float *mem = NULL;
    unsigned targets = 0;
    int rc, attached_here = 0, B0, T0;
    if (!d1__model_ok(m) || !dir) return D1__FAIL(D1_ERR_ARG);
    D1__REFUSE_RESIDENT(m);
    B0 = m->B; T0 = m->T; /* an attach forgets the last forward; a failed load must not */
    if (!(p = d1__path(dir, "adapter_config.json"))) return D1__FAIL(D1_ERR_NOMEM);
    rc = d1__read_file(p, 1u << 20, &text, &len);
    d1__free(p);
    if (rc != D1_OK) return rc;
    j.s = text; j.n = len;
    if (!d1__json_check(text, len) || text[d1__json_start(&j)] != '{') rc = D1__FAIL(D1_ERR_JSON);
    if (rc == D1_OK) {
        size_t obj = d1__json_start(&j);
        int f = d1__json_find(&j, obj, "r", &v);
        if (f < 0) rc = f;
        else if (f == 0 || !d1__json_u64(&j, v, &r) || r == 0 || r > (uint64_t)m->config.dim) rc = D1__FAIL(D1_ERR_CONFIG);
        if (rc == D1_OK) {
            f = d1__json_find(&j, obj, "lora_alpha", &v);
            if (f < 0) rc = f;
            else if (f == 0 || !d1__parse_number(text + v, d1__json_skip(&j, v) - v, &alpha) || !(alpha > 0.0) ||
                     !isfinite(alpha))
                rc = D1__FAIL(D1_ERR_CONFIG);
        }
        if (rc == D1_OK) rc = d1__lora_targets_of(&j, obj, &targets);
    }
    d1__free(text);
    if (rc != D1_OK) return rc;
    if (m->lora && (m->lora->rank != (int)r || m->lora->alpha != (float)alpha || m->lora->targets != targets))
        return D1__FAILF(D1_ERR_CONFIG, "the attached adapters (r %d, alpha %g, targets 0x%x) are not the saved ones "
                                        "(r %d, alpha %g, targets 0x%x)",
                         m->lora->rank, (double)m->lora->alpha, m->lora->targets, (int)r, alpha, targets);
    { /* what the adapters take (F32) is bounded by what the file holds (>= 2 bytes a value: BF16, F16),
         before anything is allocated */
        uint64_t size = 0;
        double need = 2.0 * (double)m->config.n_layers * (double)d1__lora_layer_size(&m->config, (int)r, targets);
        if (!(p = d1__path(dir, "adapter_model.safetensors"))) return D1__FAIL(D1_ERR_NOMEM);
        rc = d1__path_size(p, &size);
        d1__free(p);
        if (rc != D1_OK) return rc;
        if ((double)size < need) return D1__FAIL(D1_ERR_TRUNCATED);
    }
    if (!m->lora && d1__on_gpu(m)) return D1__FAIL(D1_ERR_UNSUPPORTED); /* as d1_lora_attach would say */
    /* the header, checked in full before the adapters are attached (it is
       freed before: the data alone is left to read) */
    d1__table_lora(&tab, &m->config, (int)r, targets, NULL);
    if (!(p = d1__path(dir, "adapter_model.safetensors"))) return D1__FAIL(D1_ERR_NOMEM);
    rc = d1__st_open(&sf, p, &tab, 0, 1u << D1_DTYPE_F32 | 1u << D1_DTYPE_BF16 | 1u << D1_DTYPE_F16);
    d1__free(p);
    if (rc != D1_OK) {
        d1__table_free(&tab);
        return rc;
    }
    d1__free(sf.header);
    sf.header = NULL;
    if (!m->lora) {
        rc = d1_lora_attach_targets(m, (int)r, (float)alpha, 0, targets);
        attached_here = rc == D1_OK;
    }
    /* adapters attached here: straight into them (a failure detaches them);
       the caller's: into a new buffer, copied over only when all went well */
    if (rc == D1_OK && !attached_here && !(mem = d1__alloc_floats(m->lora->num_params))) rc = D1__FAIL(D1_ERR_NOMEM);
    if (rc == D1_OK) rc = d1__st_load(&sf, &tab, 0, attached_here ? m->lora->param_memory : mem);
    d1__st_close(&sf);
    d1__table_free(&tab);
    if (rc == D1_OK) {
        if (mem) memcpy(m->lora->param_memory, mem, m->lora->num_params * sizeof(float));
    } else if (attached_here) {
        d1_lora_detach(m);
        m->B = B0;
        m->T = T0;
    }
    d1__free(mem);
    return rc;
}

#endif /* !D1_NO_STDIO */

// >>tokenizer -----------------------------------------------------------------
/* ---- tokenizer.json: the parts of the Hugging Face pipeline d1.h runs ------
   (the header's tokenizer block lists them). State: every token's text by id,
   a hash table text -> id, the merges as a hash table (left id, right id) ->
   (rank, merged id), the added tokens, the pre-tokenizer steps, the decoder. */
enum { D1__PRE_LITERAL = 1, D1__PRE_REGEX, D1__PRE_BYTELEVEL };
enum { D1__RE_CHAR = 1, D1__RE_GPT2, D1__RE_LLAMA3, D1__RE_QWEN2 };
enum { D1__DEC_NONE = 0, D1__DEC_FUSE, D1__DEC_BYTELEVEL };
#define D1__TOK_MAX_PRE 8
#define D1__TOK_MAX_ID  (1 << 26) /* ids above this are refused (a corrupt file) */

typedef struct d1__tok_pre {
    int    kind;     /* D1__PRE_*                                                  */
    int    regex;    /* D1__RE_* (D1__PRE_REGEX)                                   */
    int    removed;  /* behavior "Removed" (matches dropped) rather than "Isolated" */
    int    prefix;   /* ByteLevel add_prefix_space                                  */
    int    use_re;   /* ByteLevel use_regex                                         */
    char  *lit;      /* the String pattern (D1__PRE_LITERAL)                        */
    size_t lit_len;
} d1__tok_pre;

struct d1__tok {
    char     *json;          /* the tokenizer.json text, for d1_tokenizer_save     */
    size_t    json_len;
    char     *text;          /* every token's text, each NUL-terminated            */
    int      *off, *len;     /* [n_vocab]: token id's text; off -1 for no token    */
    unsigned char *flags;    /* [n_vocab]: 1 added, 2 special, 4 lstrip, 8 rstrip  */
    int      *table;         /* text -> id, open addressing, -1 empty; mask + 1 slots */
    uint32_t  mask;
    uint64_t *mkey;          /* merges: (left + 1) << 32 | (right + 1), 0 empty     */
    int      *mrank, *mid;
    uint32_t  mmask;
    int      *mpair;         /* [2 n_merges]: each merge's left and right ids, by rank */
    int      *added;         /* ids of the added tokens, n_added                    */
    int       n_added;
    unsigned char first[32]; /* bit set: the first bytes of added tokens            */
    d1__tok_pre pre[D1__TOK_MAX_PRE];
    int       n_pre;
    int       byte_level;    /* a ByteLevel step: pieces reach the model as stand-ins */
    int       byte_id[256];  /* the token of each byte's stand-in, -1 none (BPE)    */
    int       decoder;       /* D1__DEC_*                                           */
    int       ignore_merges, fuse_unk;
};

/* -- GPT-2's byte <-> stand-in map: the printable bytes 33-126, 161-172 and
   174-255 stand for themselves, the other 68 for U+0100.. in byte order. */
static unsigned d1__byte_cp(unsigned b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
    return b <= 32 ? 256 + b : b <= 160 ? 289 + (b - 127) : 323; /* 0-32, 127-160, 173 */
}
static int d1__cp_byte(unsigned cp) { /* the byte a stand-in stands for, -1 if none */
    if (cp < 256) return d1__byte_cp(cp) == cp ? (int)cp : -1;
    return cp <= 288 ? (int)cp - 256 : cp <= 322 ? (int)cp - 289 + 127 : cp == 323 ? 173 : -1;
}

/* -- UTF-8 */
static size_t d1__utf8_put(unsigned cp, char *u) {
    if (cp < 0x80) { u[0] = (char)cp; return 1; }
    if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 63)); u[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 63));
    u[2] = (char)(0x80 | ((cp >> 6) & 63)); u[3] = (char)(0x80 | (cp & 63));
    return 4;
}
static unsigned d1__utf8_cp(const unsigned char *s, size_t l) { /* a valid character of l bytes */
    if (l == 1) return s[0];
    if (l == 2) return (unsigned)(s[0] & 31) << 6 | (s[1] & 63);
    if (l == 3) return (unsigned)(s[0] & 15) << 12 | (unsigned)(s[1] & 63) << 6 | (s[2] & 63);
    return (unsigned)(s[0] & 7) << 18 | (unsigned)(s[1] & 63) << 12 | (unsigned)(s[2] & 63) << 6 | (s[3] & 63);
}

/* -- character classes of the split expressions: letter \p{L}, number \p{N},
   space \s (Oniguruma's: 9-13, 32, U+0085, U+00A0, U+1680, U+2000-200A,
   U+2028, U+2029, U+202F, U+205F, U+3000), or other. Above ASCII, from the
   table after this function: every range of code points of one of the
   first three classes (General_Category L*, N*; Unicode 14.0.0, generated
   with Python's unicodedata); everything else (marks, punctuation,
   symbols, unassigned) is other (787 ranges, in order). */
enum { D1__CL_L, D1__CL_N, D1__CL_S, D1__CL_P };
static const struct { unsigned lo, hi; char cl; } d1__ucd[] = {
    {0x85,0x85,'S'}, {0xA0,0xA0,'S'}, {0xAA,0xAA,'L'}, {0xB2,0xB3,'N'}, {0xB5,0xB5,'L'}, {0xB9,0xB9,'N'}, {0xBA,0xBA,'L'},
    {0xBC,0xBE,'N'}, {0xC0,0xD6,'L'}, {0xD8,0xF6,'L'}, {0xF8,0x2C1,'L'}, {0x2C6,0x2D1,'L'}, {0x2E0,0x2E4,'L'}, {0x2EC,0x2EC,'L'},
    {0x2EE,0x2EE,'L'}, {0x370,0x374,'L'}, {0x376,0x377,'L'}, {0x37A,0x37D,'L'}, {0x37F,0x37F,'L'}, {0x386,0x386,'L'},
    {0x388,0x38A,'L'}, {0x38C,0x38C,'L'}, {0x38E,0x3A1,'L'}, {0x3A3,0x3F5,'L'}, {0x3F7,0x481,'L'}, {0x48A,0x52F,'L'},
    {0x531,0x556,'L'}, {0x559,0x559,'L'}, {0x560,0x588,'L'}, {0x5D0,0x5EA,'L'}, {0x5EF,0x5F2,'L'}, {0x620,0x64A,'L'},
    {0x660,0x669,'N'}, {0x66E,0x66F,'L'}, {0x671,0x6D3,'L'}, {0x6D5,0x6D5,'L'}, {0x6E5,0x6E6,'L'}, {0x6EE,0x6EF,'L'},
    {0x6F0,0x6F9,'N'}, {0x6FA,0x6FC,'L'}, {0x6FF,0x6FF,'L'}, {0x710,0x710,'L'}, {0x712,0x72F,'L'}, {0x74D,0x7A5,'L'},
    {0x7B1,0x7B1,'L'}, {0x7C0,0x7C9,'N'}, {0x7CA,0x7EA,'L'}, {0x7F4,0x7F5,'L'}, {0x7FA,0x7FA,'L'}, {0x800,0x815,'L'},
    {0x81A,0x81A,'L'}, {0x824,0x824,'L'}, {0x828,0x828,'L'}, {0x840,0x858,'L'}, {0x860,0x86A,'L'}, {0x870,0x887,'L'},
    {0x889,0x88E,'L'}, {0x8A0,0x8C9,'L'}, {0x904,0x939,'L'}, {0x93D,0x93D,'L'}, {0x950,0x950,'L'}, {0x958,0x961,'L'},
    {0x966,0x96F,'N'}, {0x971,0x980,'L'}, {0x985,0x98C,'L'}, {0x98F,0x990,'L'}, {0x993,0x9A8,'L'}, {0x9AA,0x9B0,'L'},
    {0x9B2,0x9B2,'L'}, {0x9B6,0x9B9,'L'}, {0x9BD,0x9BD,'L'}, {0x9CE,0x9CE,'L'}, {0x9DC,0x9DD,'L'}, {0x9DF,0x9E1,'L'},
    {0x9E6,0x9EF,'N'}, {0x9F0,0x9F1,'L'}, {0x9F4,0x9F9,'N'}, {0x9FC,0x9FC,'L'}, {0xA05,0xA0A,'L'}, {0xA0F,0xA10,'L'},
    {0xA13,0xA28,'L'}, {0xA2A,0xA30,'L'}, {0xA32,0xA33,'L'}, {0xA35,0xA36,'L'}, {0xA38,0xA39,'L'}, {0xA59,0xA5C,'L'},
    {0xA5E,0xA5E,'L'}, {0xA66,0xA6F,'N'}, {0xA72,0xA74,'L'}, {0xA85,0xA8D,'L'}, {0xA8F,0xA91,'L'}, {0xA93,0xAA8,'L'},
    {0xAAA,0xAB0,'L'}, {0xAB2,0xAB3,'L'}, {0xAB5,0xAB9,'L'}, {0xABD,0xABD,'L'}, {0xAD0,0xAD0,'L'}, {0xAE0,0xAE1,'L'},
    {0xAE6,0xAEF,'N'}, {0xAF9,0xAF9,'L'}, {0xB05,0xB0C,'L'}, {0xB0F,0xB10,'L'}, {0xB13,0xB28,'L'}, {0xB2A,0xB30,'L'},
    {0xB32,0xB33,'L'}, {0xB35,0xB39,'L'}, {0xB3D,0xB3D,'L'}, {0xB5C,0xB5D,'L'}, {0xB5F,0xB61,'L'}, {0xB66,0xB6F,'N'},
    {0xB71,0xB71,'L'}, {0xB72,0xB77,'N'}, {0xB83,0xB83,'L'}, {0xB85,0xB8A,'L'}, {0xB8E,0xB90,'L'}, {0xB92,0xB95,'L'},
    {0xB99,0xB9A,'L'}, {0xB9C,0xB9C,'L'}, {0xB9E,0xB9F,'L'}, {0xBA3,0xBA4,'L'}, {0xBA8,0xBAA,'L'}, {0xBAE,0xBB9,'L'},
    {0xBD0,0xBD0,'L'}, {0xBE6,0xBF2,'N'}, {0xC05,0xC0C,'L'}, {0xC0E,0xC10,'L'}, {0xC12,0xC28,'L'}, {0xC2A,0xC39,'L'},
    {0xC3D,0xC3D,'L'}, {0xC58,0xC5A,'L'}, {0xC5D,0xC5D,'L'}, {0xC60,0xC61,'L'}, {0xC66,0xC6F,'N'}, {0xC78,0xC7E,'N'},
    {0xC80,0xC80,'L'}, {0xC85,0xC8C,'L'}, {0xC8E,0xC90,'L'}, {0xC92,0xCA8,'L'}, {0xCAA,0xCB3,'L'}, {0xCB5,0xCB9,'L'},
    {0xCBD,0xCBD,'L'}, {0xCDD,0xCDE,'L'}, {0xCE0,0xCE1,'L'}, {0xCE6,0xCEF,'N'}, {0xCF1,0xCF2,'L'}, {0xD04,0xD0C,'L'},
    {0xD0E,0xD10,'L'}, {0xD12,0xD3A,'L'}, {0xD3D,0xD3D,'L'}, {0xD4E,0xD4E,'L'}, {0xD54,0xD56,'L'}, {0xD58,0xD5E,'N'},
    {0xD5F,0xD61,'L'}, {0xD66,0xD78,'N'}, {0xD7A,0xD7F,'L'}, {0xD85,0xD96,'L'}, {0xD9A,0xDB1,'L'}, {0xDB3,0xDBB,'L'},
    {0xDBD,0xDBD,'L'}, {0xDC0,0xDC6,'L'}, {0xDE6,0xDEF,'N'}, {0xE01,0xE30,'L'}, {0xE32,0xE33,'L'}, {0xE40,0xE46,'L'},
    {0xE50,0xE59,'N'}, {0xE81,0xE82,'L'}, {0xE84,0xE84,'L'}, {0xE86,0xE8A,'L'}, {0xE8C,0xEA3,'L'}, {0xEA5,0xEA5,'L'},
    {0xEA7,0xEB0,'L'}, {0xEB2,0xEB3,'L'}, {0xEBD,0xEBD,'L'}, {0xEC0,0xEC4,'L'}, {0xEC6,0xEC6,'L'}, {0xED0,0xED9,'N'},
    {0xEDC,0xEDF,'L'}, {0xF00,0xF00,'L'}, {0xF20,0xF33,'N'}, {0xF40,0xF47,'L'}, {0xF49,0xF6C,'L'}, {0xF88,0xF8C,'L'},
    {0x1000,0x102A,'L'}, {0x103F,0x103F,'L'}, {0x1040,0x1049,'N'}, {0x1050,0x1055,'L'}, {0x105A,0x105D,'L'}, {0x1061,0x1061,'L'},
    {0x1065,0x1066,'L'}, {0x106E,0x1070,'L'}, {0x1075,0x1081,'L'}, {0x108E,0x108E,'L'}, {0x1090,0x1099,'N'}, {0x10A0,0x10C5,'L'},
    {0x10C7,0x10C7,'L'}, {0x10CD,0x10CD,'L'}, {0x10D0,0x10FA,'L'}, {0x10FC,0x1248,'L'}, {0x124A,0x124D,'L'}, {0x1250,0x1256,'L'},
    {0x1258,0x1258,'L'}, {0x125A,0x125D,'L'}, {0x1260,0x1288,'L'}, {0x128A,0x128D,'L'}, {0x1290,0x12B0,'L'}, {0x12B2,0x12B5,'L'},
    {0x12B8,0x12BE,'L'}, {0x12C0,0x12C0,'L'}, {0x12C2,0x12C5,'L'}, {0x12C8,0x12D6,'L'}, {0x12D8,0x1310,'L'}, {0x1312,0x1315,'L'},
    {0x1318,0x135A,'L'}, {0x1369,0x137C,'N'}, {0x1380,0x138F,'L'}, {0x13A0,0x13F5,'L'}, {0x13F8,0x13FD,'L'}, {0x1401,0x166C,'L'},
    {0x166F,0x167F,'L'}, {0x1680,0x1680,'S'}, {0x1681,0x169A,'L'}, {0x16A0,0x16EA,'L'}, {0x16EE,0x16F0,'N'}, {0x16F1,0x16F8,'L'},
    {0x1700,0x1711,'L'}, {0x171F,0x1731,'L'}, {0x1740,0x1751,'L'}, {0x1760,0x176C,'L'}, {0x176E,0x1770,'L'}, {0x1780,0x17B3,'L'},
    {0x17D7,0x17D7,'L'}, {0x17DC,0x17DC,'L'}, {0x17E0,0x17E9,'N'}, {0x17F0,0x17F9,'N'}, {0x1810,0x1819,'N'}, {0x1820,0x1878,'L'},
    {0x1880,0x1884,'L'}, {0x1887,0x18A8,'L'}, {0x18AA,0x18AA,'L'}, {0x18B0,0x18F5,'L'}, {0x1900,0x191E,'L'}, {0x1946,0x194F,'N'},
    {0x1950,0x196D,'L'}, {0x1970,0x1974,'L'}, {0x1980,0x19AB,'L'}, {0x19B0,0x19C9,'L'}, {0x19D0,0x19DA,'N'}, {0x1A00,0x1A16,'L'},
    {0x1A20,0x1A54,'L'}, {0x1A80,0x1A89,'N'}, {0x1A90,0x1A99,'N'}, {0x1AA7,0x1AA7,'L'}, {0x1B05,0x1B33,'L'}, {0x1B45,0x1B4C,'L'},
    {0x1B50,0x1B59,'N'}, {0x1B83,0x1BA0,'L'}, {0x1BAE,0x1BAF,'L'}, {0x1BB0,0x1BB9,'N'}, {0x1BBA,0x1BE5,'L'}, {0x1C00,0x1C23,'L'},
    {0x1C40,0x1C49,'N'}, {0x1C4D,0x1C4F,'L'}, {0x1C50,0x1C59,'N'}, {0x1C5A,0x1C7D,'L'}, {0x1C80,0x1C88,'L'}, {0x1C90,0x1CBA,'L'},
    {0x1CBD,0x1CBF,'L'}, {0x1CE9,0x1CEC,'L'}, {0x1CEE,0x1CF3,'L'}, {0x1CF5,0x1CF6,'L'}, {0x1CFA,0x1CFA,'L'}, {0x1D00,0x1DBF,'L'},
    {0x1E00,0x1F15,'L'}, {0x1F18,0x1F1D,'L'}, {0x1F20,0x1F45,'L'}, {0x1F48,0x1F4D,'L'}, {0x1F50,0x1F57,'L'}, {0x1F59,0x1F59,'L'},
    {0x1F5B,0x1F5B,'L'}, {0x1F5D,0x1F5D,'L'}, {0x1F5F,0x1F7D,'L'}, {0x1F80,0x1FB4,'L'}, {0x1FB6,0x1FBC,'L'}, {0x1FBE,0x1FBE,'L'},
    {0x1FC2,0x1FC4,'L'}, {0x1FC6,0x1FCC,'L'}, {0x1FD0,0x1FD3,'L'}, {0x1FD6,0x1FDB,'L'}, {0x1FE0,0x1FEC,'L'}, {0x1FF2,0x1FF4,'L'},
    {0x1FF6,0x1FFC,'L'}, {0x2000,0x200A,'S'}, {0x2028,0x2029,'S'}, {0x202F,0x202F,'S'}, {0x205F,0x205F,'S'}, {0x2070,0x2070,'N'},
    {0x2071,0x2071,'L'}, {0x2074,0x2079,'N'}, {0x207F,0x207F,'L'}, {0x2080,0x2089,'N'}, {0x2090,0x209C,'L'}, {0x2102,0x2102,'L'},
    {0x2107,0x2107,'L'}, {0x210A,0x2113,'L'}, {0x2115,0x2115,'L'}, {0x2119,0x211D,'L'}, {0x2124,0x2124,'L'}, {0x2126,0x2126,'L'},
    {0x2128,0x2128,'L'}, {0x212A,0x212D,'L'}, {0x212F,0x2139,'L'}, {0x213C,0x213F,'L'}, {0x2145,0x2149,'L'}, {0x214E,0x214E,'L'},
    {0x2150,0x2182,'N'}, {0x2183,0x2184,'L'}, {0x2185,0x2189,'N'}, {0x2460,0x249B,'N'}, {0x24EA,0x24FF,'N'}, {0x2776,0x2793,'N'},
    {0x2C00,0x2CE4,'L'}, {0x2CEB,0x2CEE,'L'}, {0x2CF2,0x2CF3,'L'}, {0x2CFD,0x2CFD,'N'}, {0x2D00,0x2D25,'L'}, {0x2D27,0x2D27,'L'},
    {0x2D2D,0x2D2D,'L'}, {0x2D30,0x2D67,'L'}, {0x2D6F,0x2D6F,'L'}, {0x2D80,0x2D96,'L'}, {0x2DA0,0x2DA6,'L'}, {0x2DA8,0x2DAE,'L'},
    {0x2DB0,0x2DB6,'L'}, {0x2DB8,0x2DBE,'L'}, {0x2DC0,0x2DC6,'L'}, {0x2DC8,0x2DCE,'L'}, {0x2DD0,0x2DD6,'L'}, {0x2DD8,0x2DDE,'L'},
    {0x2E2F,0x2E2F,'L'}, {0x3000,0x3000,'S'}, {0x3005,0x3006,'L'}, {0x3007,0x3007,'N'}, {0x3021,0x3029,'N'}, {0x3031,0x3035,'L'},
    {0x3038,0x303A,'N'}, {0x303B,0x303C,'L'}, {0x3041,0x3096,'L'}, {0x309D,0x309F,'L'}, {0x30A1,0x30FA,'L'}, {0x30FC,0x30FF,'L'},
    {0x3105,0x312F,'L'}, {0x3131,0x318E,'L'}, {0x3192,0x3195,'N'}, {0x31A0,0x31BF,'L'}, {0x31F0,0x31FF,'L'}, {0x3220,0x3229,'N'},
    {0x3248,0x324F,'N'}, {0x3251,0x325F,'N'}, {0x3280,0x3289,'N'}, {0x32B1,0x32BF,'N'}, {0x3400,0x4DBF,'L'}, {0x4E00,0xA48C,'L'},
    {0xA4D0,0xA4FD,'L'}, {0xA500,0xA60C,'L'}, {0xA610,0xA61F,'L'}, {0xA620,0xA629,'N'}, {0xA62A,0xA62B,'L'}, {0xA640,0xA66E,'L'},
    {0xA67F,0xA69D,'L'}, {0xA6A0,0xA6E5,'L'}, {0xA6E6,0xA6EF,'N'}, {0xA717,0xA71F,'L'}, {0xA722,0xA788,'L'}, {0xA78B,0xA7CA,'L'},
    {0xA7D0,0xA7D1,'L'}, {0xA7D3,0xA7D3,'L'}, {0xA7D5,0xA7D9,'L'}, {0xA7F2,0xA801,'L'}, {0xA803,0xA805,'L'}, {0xA807,0xA80A,'L'},
    {0xA80C,0xA822,'L'}, {0xA830,0xA835,'N'}, {0xA840,0xA873,'L'}, {0xA882,0xA8B3,'L'}, {0xA8D0,0xA8D9,'N'}, {0xA8F2,0xA8F7,'L'},
    {0xA8FB,0xA8FB,'L'}, {0xA8FD,0xA8FE,'L'}, {0xA900,0xA909,'N'}, {0xA90A,0xA925,'L'}, {0xA930,0xA946,'L'}, {0xA960,0xA97C,'L'},
    {0xA984,0xA9B2,'L'}, {0xA9CF,0xA9CF,'L'}, {0xA9D0,0xA9D9,'N'}, {0xA9E0,0xA9E4,'L'}, {0xA9E6,0xA9EF,'L'}, {0xA9F0,0xA9F9,'N'},
    {0xA9FA,0xA9FE,'L'}, {0xAA00,0xAA28,'L'}, {0xAA40,0xAA42,'L'}, {0xAA44,0xAA4B,'L'}, {0xAA50,0xAA59,'N'}, {0xAA60,0xAA76,'L'},
    {0xAA7A,0xAA7A,'L'}, {0xAA7E,0xAAAF,'L'}, {0xAAB1,0xAAB1,'L'}, {0xAAB5,0xAAB6,'L'}, {0xAAB9,0xAABD,'L'}, {0xAAC0,0xAAC0,'L'},
    {0xAAC2,0xAAC2,'L'}, {0xAADB,0xAADD,'L'}, {0xAAE0,0xAAEA,'L'}, {0xAAF2,0xAAF4,'L'}, {0xAB01,0xAB06,'L'}, {0xAB09,0xAB0E,'L'},
    {0xAB11,0xAB16,'L'}, {0xAB20,0xAB26,'L'}, {0xAB28,0xAB2E,'L'}, {0xAB30,0xAB5A,'L'}, {0xAB5C,0xAB69,'L'}, {0xAB70,0xABE2,'L'},
    {0xABF0,0xABF9,'N'}, {0xAC00,0xD7A3,'L'}, {0xD7B0,0xD7C6,'L'}, {0xD7CB,0xD7FB,'L'}, {0xF900,0xFA6D,'L'}, {0xFA70,0xFAD9,'L'},
    {0xFB00,0xFB06,'L'}, {0xFB13,0xFB17,'L'}, {0xFB1D,0xFB1D,'L'}, {0xFB1F,0xFB28,'L'}, {0xFB2A,0xFB36,'L'}, {0xFB38,0xFB3C,'L'},
    {0xFB3E,0xFB3E,'L'}, {0xFB40,0xFB41,'L'}, {0xFB43,0xFB44,'L'}, {0xFB46,0xFBB1,'L'}, {0xFBD3,0xFD3D,'L'}, {0xFD50,0xFD8F,'L'},
    {0xFD92,0xFDC7,'L'}, {0xFDF0,0xFDFB,'L'}, {0xFE70,0xFE74,'L'}, {0xFE76,0xFEFC,'L'}, {0xFF10,0xFF19,'N'}, {0xFF21,0xFF3A,'L'},
    {0xFF41,0xFF5A,'L'}, {0xFF66,0xFFBE,'L'}, {0xFFC2,0xFFC7,'L'}, {0xFFCA,0xFFCF,'L'}, {0xFFD2,0xFFD7,'L'}, {0xFFDA,0xFFDC,'L'},
    {0x10000,0x1000B,'L'}, {0x1000D,0x10026,'L'}, {0x10028,0x1003A,'L'}, {0x1003C,0x1003D,'L'}, {0x1003F,0x1004D,'L'},
    {0x10050,0x1005D,'L'}, {0x10080,0x100FA,'L'}, {0x10107,0x10133,'N'}, {0x10140,0x10178,'N'}, {0x1018A,0x1018B,'N'},
    {0x10280,0x1029C,'L'}, {0x102A0,0x102D0,'L'}, {0x102E1,0x102FB,'N'}, {0x10300,0x1031F,'L'}, {0x10320,0x10323,'N'},
    {0x1032D,0x10340,'L'}, {0x10341,0x10341,'N'}, {0x10342,0x10349,'L'}, {0x1034A,0x1034A,'N'}, {0x10350,0x10375,'L'},
    {0x10380,0x1039D,'L'}, {0x103A0,0x103C3,'L'}, {0x103C8,0x103CF,'L'}, {0x103D1,0x103D5,'N'}, {0x10400,0x1049D,'L'},
    {0x104A0,0x104A9,'N'}, {0x104B0,0x104D3,'L'}, {0x104D8,0x104FB,'L'}, {0x10500,0x10527,'L'}, {0x10530,0x10563,'L'},
    {0x10570,0x1057A,'L'}, {0x1057C,0x1058A,'L'}, {0x1058C,0x10592,'L'}, {0x10594,0x10595,'L'}, {0x10597,0x105A1,'L'},
    {0x105A3,0x105B1,'L'}, {0x105B3,0x105B9,'L'}, {0x105BB,0x105BC,'L'}, {0x10600,0x10736,'L'}, {0x10740,0x10755,'L'},
    {0x10760,0x10767,'L'}, {0x10780,0x10785,'L'}, {0x10787,0x107B0,'L'}, {0x107B2,0x107BA,'L'}, {0x10800,0x10805,'L'},
    {0x10808,0x10808,'L'}, {0x1080A,0x10835,'L'}, {0x10837,0x10838,'L'}, {0x1083C,0x1083C,'L'}, {0x1083F,0x10855,'L'},
    {0x10858,0x1085F,'N'}, {0x10860,0x10876,'L'}, {0x10879,0x1087F,'N'}, {0x10880,0x1089E,'L'}, {0x108A7,0x108AF,'N'},
    {0x108E0,0x108F2,'L'}, {0x108F4,0x108F5,'L'}, {0x108FB,0x108FF,'N'}, {0x10900,0x10915,'L'}, {0x10916,0x1091B,'N'},
    {0x10920,0x10939,'L'}, {0x10980,0x109B7,'L'}, {0x109BC,0x109BD,'N'}, {0x109BE,0x109BF,'L'}, {0x109C0,0x109CF,'N'},
    {0x109D2,0x109FF,'N'}, {0x10A00,0x10A00,'L'}, {0x10A10,0x10A13,'L'}, {0x10A15,0x10A17,'L'}, {0x10A19,0x10A35,'L'},
    {0x10A40,0x10A48,'N'}, {0x10A60,0x10A7C,'L'}, {0x10A7D,0x10A7E,'N'}, {0x10A80,0x10A9C,'L'}, {0x10A9D,0x10A9F,'N'},
    {0x10AC0,0x10AC7,'L'}, {0x10AC9,0x10AE4,'L'}, {0x10AEB,0x10AEF,'N'}, {0x10B00,0x10B35,'L'}, {0x10B40,0x10B55,'L'},
    {0x10B58,0x10B5F,'N'}, {0x10B60,0x10B72,'L'}, {0x10B78,0x10B7F,'N'}, {0x10B80,0x10B91,'L'}, {0x10BA9,0x10BAF,'N'},
    {0x10C00,0x10C48,'L'}, {0x10C80,0x10CB2,'L'}, {0x10CC0,0x10CF2,'L'}, {0x10CFA,0x10CFF,'N'}, {0x10D00,0x10D23,'L'},
    {0x10D30,0x10D39,'N'}, {0x10E60,0x10E7E,'N'}, {0x10E80,0x10EA9,'L'}, {0x10EB0,0x10EB1,'L'}, {0x10F00,0x10F1C,'L'},
    {0x10F1D,0x10F26,'N'}, {0x10F27,0x10F27,'L'}, {0x10F30,0x10F45,'L'}, {0x10F51,0x10F54,'N'}, {0x10F70,0x10F81,'L'},
    {0x10FB0,0x10FC4,'L'}, {0x10FC5,0x10FCB,'N'}, {0x10FE0,0x10FF6,'L'}, {0x11003,0x11037,'L'}, {0x11052,0x1106F,'N'},
    {0x11071,0x11072,'L'}, {0x11075,0x11075,'L'}, {0x11083,0x110AF,'L'}, {0x110D0,0x110E8,'L'}, {0x110F0,0x110F9,'N'},
    {0x11103,0x11126,'L'}, {0x11136,0x1113F,'N'}, {0x11144,0x11144,'L'}, {0x11147,0x11147,'L'}, {0x11150,0x11172,'L'},
    {0x11176,0x11176,'L'}, {0x11183,0x111B2,'L'}, {0x111C1,0x111C4,'L'}, {0x111D0,0x111D9,'N'}, {0x111DA,0x111DA,'L'},
    {0x111DC,0x111DC,'L'}, {0x111E1,0x111F4,'N'}, {0x11200,0x11211,'L'}, {0x11213,0x1122B,'L'}, {0x11280,0x11286,'L'},
    {0x11288,0x11288,'L'}, {0x1128A,0x1128D,'L'}, {0x1128F,0x1129D,'L'}, {0x1129F,0x112A8,'L'}, {0x112B0,0x112DE,'L'},
    {0x112F0,0x112F9,'N'}, {0x11305,0x1130C,'L'}, {0x1130F,0x11310,'L'}, {0x11313,0x11328,'L'}, {0x1132A,0x11330,'L'},
    {0x11332,0x11333,'L'}, {0x11335,0x11339,'L'}, {0x1133D,0x1133D,'L'}, {0x11350,0x11350,'L'}, {0x1135D,0x11361,'L'},
    {0x11400,0x11434,'L'}, {0x11447,0x1144A,'L'}, {0x11450,0x11459,'N'}, {0x1145F,0x11461,'L'}, {0x11480,0x114AF,'L'},
    {0x114C4,0x114C5,'L'}, {0x114C7,0x114C7,'L'}, {0x114D0,0x114D9,'N'}, {0x11580,0x115AE,'L'}, {0x115D8,0x115DB,'L'},
    {0x11600,0x1162F,'L'}, {0x11644,0x11644,'L'}, {0x11650,0x11659,'N'}, {0x11680,0x116AA,'L'}, {0x116B8,0x116B8,'L'},
    {0x116C0,0x116C9,'N'}, {0x11700,0x1171A,'L'}, {0x11730,0x1173B,'N'}, {0x11740,0x11746,'L'}, {0x11800,0x1182B,'L'},
    {0x118A0,0x118DF,'L'}, {0x118E0,0x118F2,'N'}, {0x118FF,0x11906,'L'}, {0x11909,0x11909,'L'}, {0x1190C,0x11913,'L'},
    {0x11915,0x11916,'L'}, {0x11918,0x1192F,'L'}, {0x1193F,0x1193F,'L'}, {0x11941,0x11941,'L'}, {0x11950,0x11959,'N'},
    {0x119A0,0x119A7,'L'}, {0x119AA,0x119D0,'L'}, {0x119E1,0x119E1,'L'}, {0x119E3,0x119E3,'L'}, {0x11A00,0x11A00,'L'},
    {0x11A0B,0x11A32,'L'}, {0x11A3A,0x11A3A,'L'}, {0x11A50,0x11A50,'L'}, {0x11A5C,0x11A89,'L'}, {0x11A9D,0x11A9D,'L'},
    {0x11AB0,0x11AF8,'L'}, {0x11C00,0x11C08,'L'}, {0x11C0A,0x11C2E,'L'}, {0x11C40,0x11C40,'L'}, {0x11C50,0x11C6C,'N'},
    {0x11C72,0x11C8F,'L'}, {0x11D00,0x11D06,'L'}, {0x11D08,0x11D09,'L'}, {0x11D0B,0x11D30,'L'}, {0x11D46,0x11D46,'L'},
    {0x11D50,0x11D59,'N'}, {0x11D60,0x11D65,'L'}, {0x11D67,0x11D68,'L'}, {0x11D6A,0x11D89,'L'}, {0x11D98,0x11D98,'L'},
    {0x11DA0,0x11DA9,'N'}, {0x11EE0,0x11EF2,'L'}, {0x11FB0,0x11FB0,'L'}, {0x11FC0,0x11FD4,'N'}, {0x12000,0x12399,'L'},
    {0x12400,0x1246E,'N'}, {0x12480,0x12543,'L'}, {0x12F90,0x12FF0,'L'}, {0x13000,0x1342E,'L'}, {0x14400,0x14646,'L'},
    {0x16800,0x16A38,'L'}, {0x16A40,0x16A5E,'L'}, {0x16A60,0x16A69,'N'}, {0x16A70,0x16ABE,'L'}, {0x16AC0,0x16AC9,'N'},
    {0x16AD0,0x16AED,'L'}, {0x16B00,0x16B2F,'L'}, {0x16B40,0x16B43,'L'}, {0x16B50,0x16B59,'N'}, {0x16B5B,0x16B61,'N'},
    {0x16B63,0x16B77,'L'}, {0x16B7D,0x16B8F,'L'}, {0x16E40,0x16E7F,'L'}, {0x16E80,0x16E96,'N'}, {0x16F00,0x16F4A,'L'},
    {0x16F50,0x16F50,'L'}, {0x16F93,0x16F9F,'L'}, {0x16FE0,0x16FE1,'L'}, {0x16FE3,0x16FE3,'L'}, {0x17000,0x187F7,'L'},
    {0x18800,0x18CD5,'L'}, {0x18D00,0x18D08,'L'}, {0x1AFF0,0x1AFF3,'L'}, {0x1AFF5,0x1AFFB,'L'}, {0x1AFFD,0x1AFFE,'L'},
    {0x1B000,0x1B122,'L'}, {0x1B150,0x1B152,'L'}, {0x1B164,0x1B167,'L'}, {0x1B170,0x1B2FB,'L'}, {0x1BC00,0x1BC6A,'L'},
    {0x1BC70,0x1BC7C,'L'}, {0x1BC80,0x1BC88,'L'}, {0x1BC90,0x1BC99,'L'}, {0x1D2E0,0x1D2F3,'N'}, {0x1D360,0x1D378,'N'},
    {0x1D400,0x1D454,'L'}, {0x1D456,0x1D49C,'L'}, {0x1D49E,0x1D49F,'L'}, {0x1D4A2,0x1D4A2,'L'}, {0x1D4A5,0x1D4A6,'L'},
    {0x1D4A9,0x1D4AC,'L'}, {0x1D4AE,0x1D4B9,'L'}, {0x1D4BB,0x1D4BB,'L'}, {0x1D4BD,0x1D4C3,'L'}, {0x1D4C5,0x1D505,'L'},
    {0x1D507,0x1D50A,'L'}, {0x1D50D,0x1D514,'L'}, {0x1D516,0x1D51C,'L'}, {0x1D51E,0x1D539,'L'}, {0x1D53B,0x1D53E,'L'},
    {0x1D540,0x1D544,'L'}, {0x1D546,0x1D546,'L'}, {0x1D54A,0x1D550,'L'}, {0x1D552,0x1D6A5,'L'}, {0x1D6A8,0x1D6C0,'L'},
    {0x1D6C2,0x1D6DA,'L'}, {0x1D6DC,0x1D6FA,'L'}, {0x1D6FC,0x1D714,'L'}, {0x1D716,0x1D734,'L'}, {0x1D736,0x1D74E,'L'},
    {0x1D750,0x1D76E,'L'}, {0x1D770,0x1D788,'L'}, {0x1D78A,0x1D7A8,'L'}, {0x1D7AA,0x1D7C2,'L'}, {0x1D7C4,0x1D7CB,'L'},
    {0x1D7CE,0x1D7FF,'N'}, {0x1DF00,0x1DF1E,'L'}, {0x1E100,0x1E12C,'L'}, {0x1E137,0x1E13D,'L'}, {0x1E140,0x1E149,'N'},
    {0x1E14E,0x1E14E,'L'}, {0x1E290,0x1E2AD,'L'}, {0x1E2C0,0x1E2EB,'L'}, {0x1E2F0,0x1E2F9,'N'}, {0x1E7E0,0x1E7E6,'L'},
    {0x1E7E8,0x1E7EB,'L'}, {0x1E7ED,0x1E7EE,'L'}, {0x1E7F0,0x1E7FE,'L'}, {0x1E800,0x1E8C4,'L'}, {0x1E8C7,0x1E8CF,'N'},
    {0x1E900,0x1E943,'L'}, {0x1E94B,0x1E94B,'L'}, {0x1E950,0x1E959,'N'}, {0x1EC71,0x1ECAB,'N'}, {0x1ECAD,0x1ECAF,'N'},
    {0x1ECB1,0x1ECB4,'N'}, {0x1ED01,0x1ED2D,'N'}, {0x1ED2F,0x1ED3D,'N'}, {0x1EE00,0x1EE03,'L'}, {0x1EE05,0x1EE1F,'L'},
    {0x1EE21,0x1EE22,'L'}, {0x1EE24,0x1EE24,'L'}, {0x1EE27,0x1EE27,'L'}, {0x1EE29,0x1EE32,'L'}, {0x1EE34,0x1EE37,'L'},
    {0x1EE39,0x1EE39,'L'}, {0x1EE3B,0x1EE3B,'L'}, {0x1EE42,0x1EE42,'L'}, {0x1EE47,0x1EE47,'L'}, {0x1EE49,0x1EE49,'L'},
    {0x1EE4B,0x1EE4B,'L'}, {0x1EE4D,0x1EE4F,'L'}, {0x1EE51,0x1EE52,'L'}, {0x1EE54,0x1EE54,'L'}, {0x1EE57,0x1EE57,'L'},
    {0x1EE59,0x1EE59,'L'}, {0x1EE5B,0x1EE5B,'L'}, {0x1EE5D,0x1EE5D,'L'}, {0x1EE5F,0x1EE5F,'L'}, {0x1EE61,0x1EE62,'L'},
    {0x1EE64,0x1EE64,'L'}, {0x1EE67,0x1EE6A,'L'}, {0x1EE6C,0x1EE72,'L'}, {0x1EE74,0x1EE77,'L'}, {0x1EE79,0x1EE7C,'L'},
    {0x1EE7E,0x1EE7E,'L'}, {0x1EE80,0x1EE89,'L'}, {0x1EE8B,0x1EE9B,'L'}, {0x1EEA1,0x1EEA3,'L'}, {0x1EEA5,0x1EEA9,'L'},
    {0x1EEAB,0x1EEBB,'L'}, {0x1F100,0x1F10C,'N'}, {0x1FBF0,0x1FBF9,'N'}, {0x20000,0x2A6DF,'L'}, {0x2A700,0x2B738,'L'},
    {0x2B740,0x2B81D,'L'}, {0x2B820,0x2CEA1,'L'}, {0x2CEB0,0x2EBE0,'L'}, {0x2F800,0x2FA1D,'L'}, {0x30000,0x3134A,'L'}
};
static int d1__cp_class(unsigned c) {
    size_t lo = 0, hi = sizeof d1__ucd / sizeof d1__ucd[0];
    if (c < 0x80) {
        if ((c | 32) >= 'a' && (c | 32) <= 'z') return D1__CL_L;
        if (c >= '0' && c <= '9') return D1__CL_N;
        return (c == ' ' || (c >= 9 && c <= 13)) ? D1__CL_S : D1__CL_P;
    }
    while (lo < hi) { /* the last range starting at or below c */
        size_t mid = (lo + hi) / 2;
        if (d1__ucd[mid].lo <= c) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0 || c > d1__ucd[lo - 1].hi) return D1__CL_P;
    return d1__ucd[lo - 1].cl == 'L' ? D1__CL_L : d1__ucd[lo - 1].cl == 'N' ? D1__CL_N : D1__CL_S;
}
/* The class and byte length of the (valid) character at s[i]. */
static int d1__cl_at(const unsigned char *s, size_t n, size_t i, size_t *l) {
    size_t bad;
    *l = d1__utf8_len(s, n, i, &bad);
    return d1__cp_class(d1__utf8_cp(s + i, *l));
}
/* The end of the run of class-cl characters from i (at most max of them). */
static size_t d1__cl_run(const unsigned char *s, size_t n, size_t i, int cl, int max) {
    size_t l;
    while (i < n && max-- > 0 && d1__cl_at(s, n, i, &l) == cl) i += l;
    return i;
}

/* -- the split expressions, as the alternations they are (first alternative
   that matches at i, each greedy with its backtracking worked out), from the
   tokenizer.json files of GPT-2 (and ByteLevel's use_regex), Llama 3, Qwen 2:
     GPT-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
     Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
              ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
     Qwen 2: Llama 3's with \p{N} for \p{N}{1,3}
   Every character is in one alternative's reach, so a match starts at every
   i: returns its end (> i). */
static const char *const d1__re_text[] = {
    NULL, ".",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
static size_t d1__re_match(int re, const unsigned char *s, size_t n, size_t i) {
    size_t l, l2 = 0, j, last = i, nl = 0;
    int cl = d1__cl_at(s, n, i, &l), cl2 = i + l < n ? d1__cl_at(s, n, i + l, &l2) : -1;
    if (re == D1__RE_CHAR) { /* ".": one character; a run of \n between matches is one piece */
        if (s[i] != '\n') return i + l;
        for (j = i; j < n && s[j] == '\n'; j++) {}
        return j;
    }
    if (s[i] == '\'' && i + 1 < n) { /* the contractions (any case but GPT-2's) */
        int a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
        if (re != D1__RE_GPT2) { a = a >= 'A' && a <= 'Z' ? a + 32 : a; b = b >= 'A' && b <= 'Z' ? b + 32 : b; }
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
    if (re == D1__RE_GPT2) {
        if (s[i] == ' ' && cl2 >= 0 && cl2 != D1__CL_S) return d1__cl_run(s, n, i + 1, cl2, INT_MAX);
        if (cl != D1__CL_S) return d1__cl_run(s, n, i, cl, INT_MAX);
    } else {
        if (cl == D1__CL_L) return d1__cl_run(s, n, i, D1__CL_L, INT_MAX);
        if (s[i] != '\r' && s[i] != '\n' && cl != D1__CL_N && cl2 == D1__CL_L)
            return d1__cl_run(s, n, i + l, D1__CL_L, INT_MAX);
        if (cl == D1__CL_N) return d1__cl_run(s, n, i, D1__CL_N, re == D1__RE_LLAMA3 ? 3 : 1);
        if ((s[i] == ' ' && cl2 == D1__CL_P) || cl == D1__CL_P) {
            j = d1__cl_run(s, n, cl == D1__CL_P ? i : i + 1, D1__CL_P, INT_MAX);
            while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
            return j;
        }
        j = d1__cl_run(s, n, i, D1__CL_S, INT_MAX); /* \s*[\r\n]+: up to the run's last newline */
        for (; last < j; last++)
            if (s[last] == '\r' || s[last] == '\n') nl = last + 1;
        if (nl > i) return nl;
    }
    /* \s+(?!\S)|\s+: a run of spaces gives all but its last to the word after it */
    j = d1__cl_run(s, n, i, D1__CL_S, INT_MAX);
    if (j == n) return j;
    for (last = i; ; last += l2) { /* the start of the run's last character */
        d1__cl_at(s, n, last, &l2);
        if (last + l2 >= j) break;
    }
    return last > i ? last : j;
}

/* -- the token table */
/* The id of the token whose text is s[n], or -1. */
static int d1__tok_find(const struct d1__tok *t, const char *s, size_t n) {
    uint32_t h = d1__fnv1a(s, n) & t->mask;
    for (;; h = (h + 1) & t->mask) {
        int id = t->table[h];
        if (id < 0) return -1;
        if ((size_t)t->len[id] == n && !memcmp(t->text + t->off[id], s, n)) return id;
    }
}
/* Gives id the text at t->text + off (len bytes) and enters it in the table. */
static int d1__tok_add(struct d1__tok *t, int id, size_t off, size_t len) {
    uint32_t h = d1__fnv1a(t->text + off, len) & t->mask;
    if (d1__tok_find(t, t->text + off, len) >= 0)
        return D1__FAILF(D1_ERR_DUPLICATE, "tokenizer.json: the token \"%.40s\" is listed twice", t->text + off);
    if (t->off[id] >= 0)
        return D1__FAILF(D1_ERR_CONFIG, "tokenizer.json: id %d is given to \"%.40s\" and to \"%.40s\"", id,
                         t->text + t->off[id], t->text + off);
    while (t->table[h] >= 0) h = (h + 1) & t->mask;
    t->table[h] = id;
    t->off[id] = (int)off;
    t->len[id] = (int)len;
    return D1_OK;
}
/* The merge of the pair (a, b): its rank with *id set, or -1. */
static int d1__tok_merge(const struct d1__tok *t, int a, int b, int *id) {
    uint64_t key = (uint64_t)(a + 1) << 32 | (uint64_t)(b + 1);
    uint32_t h;
    if (!t->mkey) return -1;
    for (h = d1__fnv1a((const char *)&key, 8) & t->mmask; t->mkey[h]; h = (h + 1) & t->mmask)
        if (t->mkey[h] == key) { *id = t->mid[h]; return t->mrank[h]; }
    return -1;
}

/* -- reading tokenizer.json */
/* The JSON string at v into an allocation (*out, *len), D1_ERR_JSON when v is
   not a string. */
static int d1__tok_strdup(const d1__json *j, size_t v, const char *what, char **out, size_t *len) {
    if (j->s[v] != '"') return D1__FAILF(D1_ERR_JSON, "tokenizer.json: %s is %s, not a string", what, d1__json_excerpt(j, v));
    *len = d1__json_str(j, v, NULL, 0);
    if (!(*out = (char *)d1__alloc(*len + 1))) return D1__FAIL(D1_ERR_NOMEM);
    d1__json_str(j, v, *out, *len + 1);
    return D1_OK;
}
/* Member key of obj: 1 with *v set, 0 when absent or null, < 0 on a duplicate. */
static int d1__tok_get(const d1__json *j, size_t obj, const char *key, size_t *v) {
    int rc = d1__json_find(j, obj, key, v);
    if (rc == 1 && !strncmp(j->s + *v, "null", 4)) return 0;
    return rc;
}
static int d1__tok_bool(const d1__json *j, size_t obj, const char *key, int dflt, int *out) {
    size_t v;
    int rc = d1__tok_get(j, obj, key, &v);
    *out = dflt;
    if (rc <= 0) return rc;
    if (!strncmp(j->s + v, "true", 4)) *out = 1;
    else if (!strncmp(j->s + v, "false", 5)) *out = 0;
    else return D1__FAILF(D1_ERR_JSON, "tokenizer.json: \"%s\" is %s, not true or false", key, d1__json_excerpt(j, v));
    return D1_OK;
}
/* The "type" of the object at v into name[64]; D1_ERR_JSON when v is not an
   object with a string type. */
static int d1__tok_type(const d1__json *j, size_t v, const char *what, char *name) {
    size_t ty;
    if (j->s[v] != '{' || d1__json_find(j, v, "type", &ty) != 1 || j->s[ty] != '"' ||
        d1__json_str(j, ty, name, 64) == (size_t)-1)
        return D1__FAILF(D1_ERR_JSON, "tokenizer.json: %s is %s, not an object with a \"type\"", what,
                         d1__json_excerpt(j, v));
    return D1_OK;
}
#define D1__TOK_UNSUPPORTED(what, name) \
    D1__FAILF(D1_ERR_UNSUPPORTED, "tokenizer.json: the %s \"%s\" is not one d1.h runs", what, name)

static int d1__tok_parse_pre(const d1__json *j, size_t v, struct d1__tok *t) {
    char name[64];
    size_t it, el, pat, pv;
    d1__tok_pre *p;
    int rc, invert;
    if ((rc = d1__tok_type(j, v, "the pre_tokenizer", name)) != D1_OK) return rc;
    if (!strcmp(name, "Sequence")) {
        if (d1__json_find(j, v, "pretokenizers", &pv) != 1 || j->s[pv] != '[')
            return D1__FAIL(D1_ERR_JSON);
        for (it = pv + 1; d1__json_element(j, &it, &el);)
            if ((rc = d1__tok_parse_pre(j, el, t)) != D1_OK) return rc;
        return D1_OK;
    }
    if (t->n_pre == D1__TOK_MAX_PRE) return D1__FAILF(D1_ERR_UNSUPPORTED, "tokenizer.json: over %d pre-tokenizers", D1__TOK_MAX_PRE);
    if (t->byte_level) return D1__FAILF(D1_ERR_UNSUPPORTED, "tokenizer.json: a pre-tokenizer (%s) after ByteLevel", name);
    p = &t->pre[t->n_pre++];
    if (!strcmp(name, "ByteLevel")) {
        p->kind = D1__PRE_BYTELEVEL;
        t->byte_level = 1;
        if ((rc = d1__tok_bool(j, v, "add_prefix_space", 1, &p->prefix)) != D1_OK) return rc;
        return d1__tok_bool(j, v, "use_regex", 1, &p->use_re);
    }
    if (strcmp(name, "Split")) return D1__TOK_UNSUPPORTED("pre_tokenizer", name);
    if ((rc = d1__tok_bool(j, v, "invert", 0, &invert)) != D1_OK) return rc;
    if (invert) return D1__FAILF(D1_ERR_UNSUPPORTED, "tokenizer.json: a Split with invert true");
    if (d1__json_find(j, v, "behavior", &pv) == 1 && !d1__json_str_is(j, pv, "Isolated")) {
        if (!d1__json_str_is(j, pv, "Removed")) return D1__TOK_UNSUPPORTED("Split behavior", d1__json_excerpt(j, pv));
        p->removed = 1;
    }
    if (d1__json_find(j, v, "pattern", &pat) != 1 || j->s[pat] != '{') return D1__FAIL(D1_ERR_JSON);
    if (d1__json_find(j, pat, "String", &pv) == 1) {
        p->kind = D1__PRE_LITERAL;
        if ((rc = d1__tok_strdup(j, pv, "a Split pattern", &p->lit, &p->lit_len)) != D1_OK) return rc;
        return p->lit_len ? D1_OK : D1__FAILF(D1_ERR_UNSUPPORTED, "tokenizer.json: an empty Split pattern");
    }
    if (d1__json_find(j, pat, "Regex", &pv) == 1) {
        char *re;
        size_t n;
        int k;
        p->kind = D1__PRE_REGEX;
        if ((rc = d1__tok_strdup(j, pv, "a Split pattern", &re, &n)) != D1_OK) return rc;
        for (k = D1__RE_CHAR; k <= D1__RE_QWEN2; k++)
            if (!strcmp(re, d1__re_text[k])) p->regex = k;
        if (!p->regex) rc = D1__FAILF(D1_ERR_UNSUPPORTED, "tokenizer.json: the Split expression \"%.60s\" is not one d1.h "
                                                         "runs (GPT-2's, Llama 3's, Qwen 2's, \".\")", re);
        d1__free(re);
        return rc;
    }
    return D1__FAIL(D1_ERR_JSON); /* a pattern neither String nor Regex */
}

static int d1__tok_parse_decoder(const d1__json *j, size_t v, struct d1__tok *t) {
    char name[64];
    size_t pv, it, el;
    int rc, n = 0;
    if ((rc = d1__tok_type(j, v, "the decoder", name)) != D1_OK) return rc;
    if (!strcmp(name, "Fuse")) t->decoder = D1__DEC_FUSE;
    else if (!strcmp(name, "ByteLevel")) t->decoder = D1__DEC_BYTELEVEL;
    else if (!strcmp(name, "Sequence") && d1__json_find(j, v, "decoders", &pv) == 1 && j->s[pv] == '[') {
        for (it = pv + 1; d1__json_element(j, &it, &el); n++)
            if (n || (rc = d1__tok_parse_decoder(j, el, t)) != D1_OK) /* one decoder in the sequence */
                return n ? D1__FAILF(D1_ERR_UNSUPPORTED, "tokenizer.json: a decoder Sequence of more than one") : rc;
    } else return D1__TOK_UNSUPPORTED("decoder", name);
    return D1_OK;
}

/* Power of two >= 2 n + 16: the size of a table of n entries. */
static uint32_t d1__tok_slots(size_t n) {
    uint32_t s = 16;
    while (s < 2 * n + 16) s <<= 1;
    return s;
}

/* "merges": [["a", "b"], ...] or ["a b", ...] (one space); rank = index.
   The pair and its concatenation must be tokens. A pair listed twice keeps
   its last rank, as the Rust crate's map does. */
static int d1__tok_parse_merges(const d1__json *j, size_t v, d1_tokenizer *tok, struct d1__tok *t) {
    char buf[1024], *sp;
    size_t it, el, n = 0, la, lb, ia, ib;
    int rank = 0;
    if (j->s[v] != '[') return D1__FAILF(D1_ERR_JSON, "tokenizer.json: \"merges\" is not a list");
    for (it = v + 1; d1__json_element(j, &it, &el);) n++;
    if (!n) return D1_OK;
    if (n >= INT_MAX / 2) return D1__FAILF(D1_ERR_JSON, "tokenizer.json: %llu merges", (unsigned long long)n);
    tok->n_merges = (int)n;
    t->mmask = d1__tok_slots(n) - 1;
    t->mkey = (uint64_t *)d1__alloc(((size_t)t->mmask + 1) * (sizeof(uint64_t) + 2 * sizeof(int)) + 2 * n * sizeof(int));
    if (!t->mkey) return D1__FAIL(D1_ERR_NOMEM);
    t->mrank = (int *)(t->mkey + t->mmask + 1);
    t->mid = t->mrank + t->mmask + 1;
    t->mpair = t->mid + t->mmask + 1;
    memset(t->mkey, 0, ((size_t)t->mmask + 1) * sizeof(uint64_t));
    for (it = v + 1; d1__json_element(j, &it, &el); rank++) {
        int a, b, m;
        uint64_t key;
        uint32_t h;
        if (j->s[el] == '"') { /* "a b" */
            if (d1__json_str(j, el, buf, sizeof buf) == (size_t)-1 || !(sp = strchr(buf, ' ')) || strchr(sp + 1, ' '))
                return D1__FAILF(D1_ERR_JSON, "tokenizer.json: merge %d is %s, not two tokens and one space", rank,
                                 d1__json_excerpt(j, el));
            la = (size_t)(sp - buf);
            lb = strlen(sp + 1);
            memmove(sp, sp + 1, lb + 1); /* buf = a b, concatenated */
        } else { /* ["a", "b"] */
            size_t it2 = el + 1;
            if (j->s[el] != '[' || !d1__json_element(j, &it2, &ia) || !d1__json_element(j, &it2, &ib) ||
                d1__json_element(j, &it2, &ia) || j->s[ia] != '"' || j->s[ib] != '"' ||
                (la = d1__json_str(j, ia, buf, sizeof buf)) == (size_t)-1 ||
                (lb = d1__json_str(j, ib, buf + la, sizeof buf - la)) == (size_t)-1)
                return D1__FAILF(D1_ERR_JSON, "tokenizer.json: merge %d is %s, not a pair of tokens", rank,
                                 d1__json_excerpt(j, el));
        }
        a = d1__tok_find(t, buf, la);
        b = d1__tok_find(t, buf + la, lb);
        m = d1__tok_find(t, buf, la + lb);
        if (a < 0 || b < 0 || m < 0)
            return D1__FAILF(D1_ERR_CONFIG, "tokenizer.json: merge %d (%s) names a token the vocab lacks", rank,
                             d1__json_excerpt(j, el));
        key = (uint64_t)(a + 1) << 32 | (uint64_t)(b + 1);
        for (h = d1__fnv1a((const char *)&key, 8) & t->mmask; t->mkey[h] && t->mkey[h] != key; h = (h + 1) & t->mmask) {}
        t->mkey[h] = key;
        t->mrank[h] = rank;
        t->mid[h] = m;
        t->mpair[2 * rank] = a;
        t->mpair[2 * rank + 1] = b;
    }
    return D1_OK;
}

/* The whole file: components, then the vocab and added tokens (two passes:
   count, then fill), then the merges. */
static int d1__tok_parse(d1_tokenizer *tok, struct d1__tok *t, const d1__json *j) {
    size_t root = d1__json_start(j), model, vocab, added = 0, v, it, k, el, text_bytes = 0, used = 0, n_tok = 0;
    char name[64];
    int rc, has_added, max_id = -1, i;
    uint64_t id;
    if (j->s[root] != '{') return D1__FAILF(D1_ERR_JSON, "tokenizer.json is not an object");
    if ((rc = d1__tok_get(j, root, "normalizer", &v)) < 0) return rc;
    if (rc == 1) { /* d1.h runs no normalizer */
        if ((rc = d1__tok_type(j, v, "the normalizer", name)) != D1_OK) return rc;
        return D1__TOK_UNSUPPORTED("normalizer", name);
    }
    if ((rc = d1__tok_get(j, root, "pre_tokenizer", &v)) < 0 || (rc == 1 && (rc = d1__tok_parse_pre(j, v, t)) != D1_OK))
        return rc;
    if ((rc = d1__tok_get(j, root, "decoder", &v)) < 0 || (rc == 1 && (rc = d1__tok_parse_decoder(j, v, t)) != D1_OK))
        return rc;
    if ((rc = d1__json_find(j, root, "model", &model)) != 1) return rc < 0 ? rc : D1__FAILF(D1_ERR_JSON, "tokenizer.json: no \"model\"");
    if ((rc = d1__tok_type(j, model, "the model", name)) != D1_OK) return rc;
    if (!strcmp(name, "WordLevel")) tok->model = D1_TOKENIZER_WORDLEVEL;
    else if (!strcmp(name, "BPE")) tok->model = D1_TOKENIZER_BPE;
    else return D1__TOK_UNSUPPORTED("model", name);
    if ((rc = d1__json_find(j, model, "vocab", &vocab)) != 1 || j->s[vocab] != '{')
        return rc < 0 ? rc : D1__FAILF(D1_ERR_JSON, "tokenizer.json: the model has no \"vocab\" object");
    for (it = vocab + 1; d1__json_member(j, &it, &k, &v); n_tok++) {
        if (!d1__json_u64(j, v, &id) || id >= D1__TOK_MAX_ID)
            return D1__FAILF(D1_ERR_JSON, "tokenizer.json: the vocab's id %s is not an integer in [0, %d)",
                             d1__json_excerpt(j, v), D1__TOK_MAX_ID);
        max_id = D1__MAX(max_id, (int)id);
        text_bytes += d1__json_str(j, k, NULL, 0) + 1;
    }
    if ((has_added = d1__tok_get(j, root, "added_tokens", &added)) < 0) return has_added;
    if (has_added && j->s[added] != '[') return D1__FAILF(D1_ERR_JSON, "tokenizer.json: \"added_tokens\" is not a list");
    for (it = added + 1; has_added && d1__json_element(j, &it, &el); t->n_added++) {
        if (j->s[el] != '{' || d1__json_find(j, el, "id", &v) != 1 || !d1__json_u64(j, v, &id) || id >= D1__TOK_MAX_ID ||
            d1__json_find(j, el, "content", &k) != 1 || j->s[k] != '"' || d1__json_str(j, k, NULL, 0) == 0)
            return D1__FAILF(D1_ERR_JSON, "tokenizer.json: added token %d is %s, not {\"id\": N, \"content\": \"...\"}",
                             t->n_added, d1__json_excerpt(j, el));
        max_id = D1__MAX(max_id, (int)id);
        text_bytes += d1__json_str(j, k, NULL, 0) + 1;
    }
    if (max_id < 0) return D1__FAILF(D1_ERR_CONFIG, "tokenizer.json: no tokens");
    tok->n_vocab = max_id + 1;
    t->mask = d1__tok_slots(n_tok + (size_t)t->n_added) - 1;
    t->text = (char *)d1__alloc(text_bytes);
    t->off = (int *)d1__alloc(((size_t)tok->n_vocab * 2 + t->mask + 1 + (size_t)t->n_added) * sizeof(int));
    t->flags = (unsigned char *)d1__alloc((size_t)tok->n_vocab);
    if (!t->text || !t->off || !t->flags) return D1__FAIL(D1_ERR_NOMEM);
    t->len = t->off + tok->n_vocab;
    t->table = t->len + tok->n_vocab;
    t->added = t->table + t->mask + 1;
    for (i = 0; i < tok->n_vocab; i++) t->off[i] = -1;
    memset(t->table, 0xff, ((size_t)t->mask + 1) * sizeof(int));
    memset(t->flags, 0, (size_t)tok->n_vocab);
    for (it = vocab + 1; d1__json_member(j, &it, &k, &v);) {
        size_t l = d1__json_str(j, k, t->text + used, text_bytes - used);
        d1__json_u64(j, v, &id);
        if ((rc = d1__tok_add(t, (int)id, used, l)) != D1_OK) return rc;
        used += l + 1;
    }
    for (i = 0, it = added + 1; has_added && d1__json_element(j, &it, &el); i++) {
        int f[4], other;
        size_t l;
        d1__json_find(j, el, "id", &v);
        d1__json_u64(j, v, &id);
        d1__json_find(j, el, "content", &k);
        l = d1__json_str(j, k, t->text + used, text_bytes - used);
        if ((rc = d1__tok_bool(j, el, "special", 0, &f[0])) != D1_OK || (rc = d1__tok_bool(j, el, "lstrip", 0, &f[1])) != D1_OK ||
            (rc = d1__tok_bool(j, el, "rstrip", 0, &f[2])) != D1_OK || (rc = d1__tok_bool(j, el, "single_word", 0, &f[3])) != D1_OK)
            return rc;
        if (f[3]) return D1__FAILF(D1_ERR_UNSUPPORTED, "tokenizer.json: added token \"%.40s\" is single_word", t->text + used);
        other = d1__tok_find(t, t->text + used, l);
        if (other >= 0 && other != (int)id)
            return D1__FAILF(D1_ERR_CONFIG, "tokenizer.json: added token \"%.40s\" has id %d, the vocab says %d",
                             t->text + used, (int)id, other);
        if (other < 0) {
            if ((rc = d1__tok_add(t, (int)id, used, l)) != D1_OK) return rc;
            used += l + 1;
        }
        t->flags[id] = (unsigned char)(1 | f[0] << 1 | f[1] << 2 | f[2] << 3);
        t->added[i] = (int)id;
        t->first[(unsigned char)t->text[t->off[id]] >> 3] |= (unsigned char)(1u << (t->text[t->off[id]] & 7));
    }
    tok->unk_id = D1_TOKEN_NONE;
    if ((rc = d1__tok_get(j, model, "unk_token", &v)) < 0) return rc;
    if (rc == 1) { /* an unk token that is not in the vocab is none (the Rust crate errors when it is needed) */
        char *u;
        size_t l;
        if ((rc = d1__tok_strdup(j, v, "\"unk_token\"", &u, &l)) != D1_OK) return rc;
        i = d1__tok_find(t, u, l);
        tok->unk_id = i >= 0 ? i : D1_TOKEN_NONE;
        d1__free(u);
    }
    if (tok->model == D1_TOKENIZER_BPE) {
        int byte_fallback;
        if ((rc = d1__tok_bool(j, model, "fuse_unk", 0, &t->fuse_unk)) != D1_OK ||
            (rc = d1__tok_bool(j, model, "ignore_merges", 0, &t->ignore_merges)) != D1_OK ||
            (rc = d1__tok_bool(j, model, "byte_fallback", 0, &byte_fallback)) != D1_OK)
            return rc;
        if (byte_fallback) return D1__FAILF(D1_ERR_UNSUPPORTED, "tokenizer.json: BPE byte_fallback");
        if (d1__tok_get(j, model, "dropout", &v) == 1) {
            double p;
            if (!d1__parse_number(j->s + v, d1__json_skip(j, v) - v, &p))
                return D1__FAILF(D1_ERR_JSON, "tokenizer.json: BPE dropout %s", d1__json_excerpt(j, v));
            if (p != 0.0) return D1__FAILF(D1_ERR_UNSUPPORTED, "tokenizer.json: BPE dropout %s", d1__json_excerpt(j, v));
        }
        if ((d1__tok_get(j, model, "continuing_subword_prefix", &v) == 1 && !d1__json_str_is(j, v, "")) ||
            (d1__tok_get(j, model, "end_of_word_suffix", &v) == 1 && !d1__json_str_is(j, v, "")))
            return D1__FAILF(D1_ERR_UNSUPPORTED, "tokenizer.json: a BPE subword prefix or suffix (%s)", d1__json_excerpt(j, v));
        if ((rc = d1__json_find(j, model, "merges", &v)) < 0) return rc;
        if (rc == 1 && (rc = d1__tok_parse_merges(j, v, tok, t)) != D1_OK) return rc;
    }
    tok->byte_level = t->byte_level;
    for (i = 0; i < 256; i++) { /* each byte's stand-in token */
        char u[4];
        t->byte_id[i] = d1__tok_find(t, u, d1__utf8_put(d1__byte_cp((unsigned)i), u));
    }
    return D1_OK;
}

D1_API void d1_tokenizer_free(d1_tokenizer *tok) {
    struct d1__tok *t;
    int k;
    if (!tok) return;
    if ((t = tok->impl) != NULL) {
        for (k = 0; k < D1__TOK_MAX_PRE; k++) d1__free(t->pre[k].lit);
        d1__free(t->json);
        d1__free(t->text);
        d1__free(t->off);
        d1__free(t->flags);
        d1__free(t->mkey);
        d1__free(t);
    }
    memset(tok, 0, sizeof *tok);
}

D1_API int d1_tokenizer_load_memory(d1_tokenizer *tok, const char *json, size_t len) {
    d1_tokenizer tmp;
    struct d1__tok *t;
    d1__json j;
    int rc;
    if (!tok || (!json && len)) return D1__FAIL(D1_ERR_ARG);
    memset(tok, 0, sizeof *tok);
    if (!json || !d1__json_check(json, len)) return D1__FAILF(D1_ERR_JSON, "tokenizer.json is not valid JSON");
    memset(&tmp, 0, sizeof tmp);
    if (!(t = (struct d1__tok *)d1__alloc(sizeof *t))) return D1__FAIL(D1_ERR_NOMEM);
    memset(t, 0, sizeof *t);
    tmp.impl = t;
    if (!(t->json = (char *)d1__alloc(len + 1))) {
        d1_tokenizer_free(&tmp);
        return D1__FAIL(D1_ERR_NOMEM);
    }
    memcpy(t->json, json, len);
    t->json[len] = 0;
    t->json_len = len;
    j.s = t->json;
    j.n = len;
    if ((rc = d1__tok_parse(&tmp, t, &j)) != D1_OK) {
        d1_tokenizer_free(&tmp);
        return rc;
    }
    *tok = tmp;
    return D1_OK;
}

/* -- encoding: added tokens, then the pre-tokenizer steps (recursively, one
   level per step), then the model on each piece */
typedef struct d1__enc {
    const d1_tokenizer   *tok;
    const struct d1__tok *t;
    int  *ids, cap, n;  /* the output: n counts past cap                      */
    int  *sym;          /* BPE: a piece's symbols                               */
    char *sb;           /* a piece as byte-level stand-ins (2 bytes per byte)   */
    char *pb;           /* a piece with ByteLevel's prefix space                */
} d1__enc;

static void d1__enc_push(d1__enc *e, int id) {
    if (e->ids && e->n < e->cap) e->ids[e->n] = id;
    e->n++;
}
/* The model on one piece s[n] (raw bytes; stand-ins after a ByteLevel step). */
static int d1__enc_model(d1__enc *e, const char *s, size_t n) {
    const struct d1__tok *t = e->t;
    size_t i, l, bad, m = 0, k;
    int id;
    if (t->byte_level) {
        for (i = 0, l = 0; i < n; i++) l += d1__utf8_put(d1__byte_cp((unsigned char)s[i]), e->sb + l);
        s = e->sb;
        n = l;
    }
    if (e->tok->model == D1_TOKENIZER_WORDLEVEL || t->ignore_merges) {
        if ((id = d1__tok_find(t, s, n)) >= 0) { d1__enc_push(e, id); return D1_OK; }
        if (e->tok->model == D1_TOKENIZER_WORDLEVEL) {
            if (e->tok->unk_id < 0)
                return D1__FAILF(D1_ERR_TOKEN, "no token for \"%.*s\" and no unk token", (int)D1__MIN(n, 40), s);
            d1__enc_push(e, e->tok->unk_id);
            return D1_OK;
        }
    }
    for (i = 0; i < n; i += l) { /* BPE: the characters, unknown ones as unk (fused when fuse_unk) */
        l = d1__utf8_len((const unsigned char *)s, n, i, &bad);
        id = d1__tok_find(t, s + i, l);
        if (id < 0) {
            if (e->tok->unk_id < 0)
                return D1__FAILF(D1_ERR_TOKEN, "no token for the character \"%.*s\" and no unk token", (int)l, s + i);
            id = e->tok->unk_id;
            if (t->fuse_unk && m && e->sym[m - 1] == id) continue;
        }
        e->sym[m++] = id;
    }
    for (;;) { /* the merges: the pair of lowest rank, leftmost on ties */
        int best = INT_MAX, at = -1, mid = 0, r, mm;
        for (k = 0; k + 1 < m; k++)
            if ((r = d1__tok_merge(t, e->sym[k], e->sym[k + 1], &mm)) >= 0 && r < best) {
                best = r; at = (int)k; mid = mm;
            }
        if (at < 0) break;
        e->sym[at] = mid;
        memmove(e->sym + at + 1, e->sym + at + 2, (m - (size_t)at - 2) * sizeof(int));
        m--;
    }
    for (k = 0; k < m; k++) d1__enc_push(e, e->sym[k]);
    return D1_OK;
}
/* Pre-tokenizer step `step` on s[n], each piece on to the next step. */
static int d1__enc_pre(d1__enc *e, int step, const char *s, size_t n) {
    const d1__tok_pre *p = &e->t->pre[step];
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, j;
    int rc = D1_OK;
    if (n == 0) return D1_OK;
    if (step == e->t->n_pre) return d1__enc_model(e, s, n);
    if (p->kind == D1__PRE_BYTELEVEL) { /* the last step (checked at load) */
        if (p->prefix && s[0] != ' ') {
            e->pb[0] = ' ';
            memcpy(e->pb + 1, s, n);
            s = e->pb;
            u = (const unsigned char *)s;
            n++;
        }
        if (!p->use_re) return d1__enc_pre(e, step + 1, s, n);
        for (; i < n && rc == D1_OK; i = j) rc = d1__enc_pre(e, step + 1, s + i, (j = d1__re_match(D1__RE_GPT2, u, n, i)) - i);
        return rc;
    }
    if (p->kind == D1__PRE_LITERAL) { /* the stretches between matches, and the matches unless Removed */
        for (j = 0; rc == D1_OK && j + p->lit_len <= n;) {
            if (memcmp(s + j, p->lit, p->lit_len)) { j++; continue; }
            rc = d1__enc_pre(e, step + 1, s + i, j - i);
            if (rc == D1_OK && !p->removed) rc = d1__enc_pre(e, step + 1, s + j, p->lit_len);
            i = j += p->lit_len;
        }
        return rc == D1_OK ? d1__enc_pre(e, step + 1, s + i, n - i) : rc;
    }
    for (; i < n && rc == D1_OK; i = j) { /* a split expression: every piece is a match but "."'s newlines */
        j = d1__re_match(p->regex, u, n, i);
        if (!p->removed || (p->regex == D1__RE_CHAR && s[i] == '\n')) rc = d1__enc_pre(e, step + 1, s + i, j - i);
    }
    return rc;
}
/* The length of the White_Space character that ends at s[at] (none before
   lo), or 0: what an added token's lstrip takes (the Rust crate's \s). */
static size_t d1__space_before(const char *s, size_t lo, size_t at) {
    size_t i = at, l;
    if (at <= lo) return 0;
    do i--; while (i > lo && ((unsigned char)s[i] & 0xC0) == 0x80);
    return d1__cl_at((const unsigned char *)s, at, i, &l) == D1__CL_S && i + l == at ? l : 0;
}

D1_API int d1_tokenizer_encode(const d1_tokenizer *tok, const char *text, size_t len, int *ids, int cap, int *n_ids) {
    const struct d1__tok *t;
    d1__enc e;
    size_t p = 0, q, bad, l;
    int rc = D1_OK, k;
    if (!tok || !tok->impl || (!text && len) || !n_ids || cap < 0 || (!ids && cap)) return D1__FAIL(D1_ERR_ARG);
    t = tok->impl;
    for (q = 0; q < len; q += l)
        if (!(l = d1__utf8_len((const unsigned char *)text, len, q, &bad)))
            return D1__FAILF(D1_ERR_ARG, "the text is not valid UTF-8 at byte %llu", (unsigned long long)q);
    memset(&e, 0, sizeof e);
    e.tok = tok;
    e.t = t;
    e.ids = ids;
    e.cap = cap;
    e.sym = (int *)d1__alloc((len + 2) * (sizeof(int) + 3));
    if (!e.sym) return D1__FAIL(D1_ERR_NOMEM);
    e.sb = (char *)(e.sym + len + 2);
    e.pb = e.sb + 2 * (len + 2);
    while (p < len && rc == D1_OK) { /* the next added token: leftmost, then longest */
        int id = -1;
        size_t at = len, end = len, best = 0;
        for (q = p; q < len && id < 0; q++) {
            if (!(t->first[(unsigned char)text[q] >> 3] >> (text[q] & 7) & 1)) continue;
            for (k = 0; k < t->n_added; k++) {
                size_t al = (size_t)t->len[t->added[k]];
                if (al > best && al <= len - q && !memcmp(text + q, t->text + t->off[t->added[k]], al)) {
                    best = al; id = t->added[k];
                }
            }
            if (id >= 0) at = q;
        }
        if (id >= 0) {
            end = at + best;
            if (t->flags[id] & 4) while ((l = d1__space_before(text, p, at)) > 0) at -= l;
            if (t->flags[id] & 8)
                while (end < len && d1__cl_at((const unsigned char *)text, len, end, &l) == D1__CL_S) end += l;
        }
        rc = d1__enc_pre(&e, 0, text + p, at - p);
        if (rc == D1_OK && id >= 0) d1__enc_push(&e, id);
        p = end;
    }
    d1__free(e.sym);
    if (rc != D1_OK) return rc;
    *n_ids = e.n;
    if (ids && e.n > cap) return D1__FAILF(D1_ERR_ARG, "the text is %d tokens, the buffer holds %d", e.n, cap);
    return D1_OK;
}

/* -- decoding: the tokens' texts joined by the decoder, into out[cap] */
D1_API int d1_tokenizer_decode(const d1_tokenizer *tok, const int *ids, int n, int skip_special, char *out,
                               size_t cap, size_t *len) {
    const struct d1__tok *t;
    unsigned char *raw;
    size_t need = 0, r = 0, w = 0, i, l, bad;
    int k, any = 0, full = 0;
    if (!tok || !tok->impl || n < 0 || (!ids && n) || !len || (!out && cap)) return D1__FAIL(D1_ERR_ARG);
    t = tok->impl;
    for (k = 0; k < n; k++) {
        if (ids[k] < 0 || ids[k] >= tok->n_vocab || t->off[ids[k]] < 0)
            return D1__FAILF(D1_ERR_TOKEN, "id %d (position %d) is no token of this tokenizer", ids[k], k);
        need += (size_t)t->len[ids[k]] + 1;
    }
    if (!(raw = (unsigned char *)d1__alloc(need + 1))) return D1__FAIL(D1_ERR_NOMEM);
    for (k = 0; k < n; k++) { /* the joined bytes */
        const char *s = t->text + t->off[ids[k]];
        size_t sl = (size_t)t->len[ids[k]], r0;
        if (skip_special && (t->flags[ids[k]] & 2)) continue;
        if (t->decoder == D1__DEC_NONE && any) raw[r++] = ' ';
        any = 1;
        r0 = r;
        if (t->decoder == D1__DEC_BYTELEVEL) { /* stand-ins -> bytes; a token with another character stays as it is */
            for (i = 0; i < sl; i += l) {
                int b;
                l = d1__utf8_len((const unsigned char *)s, sl, i, &bad);
                if ((b = d1__cp_byte(d1__utf8_cp((const unsigned char *)s + i, l))) < 0) break;
                raw[r++] = (unsigned char)b;
            }
            if (i < sl) r = r0; else continue;
        }
        memcpy(raw + r, s, sl);
        r += sl;
    }
    /* -> UTF-8, each maximal invalid part as U+FFFD (EF BF BD); out takes the
       characters that fit whole */
    for (i = 0; i < r; i += l ? l : bad) {
        const unsigned char *c = raw + i;
        size_t cl;
        l = d1__utf8_len(raw, r, i, &bad);
        if (!l) c = (const unsigned char *)"\xEF\xBF\xBD";
        cl = l ? l : 3;
        if (out && !full && w + cl < cap) memcpy(out + w, c, cl);
        else if (out && !full) { full = 1; out[w] = 0; }
        w += cl;
    }
    if (out && !full) out[w] = 0;
    d1__free(raw);
    *len = w;
    if (full) return D1__FAILF(D1_ERR_ARG, "the text is %llu bytes, the buffer holds %llu", (unsigned long long)w,
                               (unsigned long long)(cap - 1));
    return D1_OK;
}

D1_API int d1_tokenizer_token_id(const d1_tokenizer *tok, const char *text) {
    int id;
    if (!tok || !tok->impl || !text) return D1__FAIL(D1_ERR_ARG);
    id = d1__tok_find(tok->impl, text, strlen(text));
    return id >= 0 ? id : D1__FAILF(D1_ERR_TOKEN, "no token \"%.40s\"", text);
}
D1_API const char *d1_tokenizer_token(const d1_tokenizer *tok, int id) {
    if (!tok || !tok->impl || id < 0 || id >= tok->n_vocab || tok->impl->off[id] < 0) return NULL;
    return tok->impl->text + tok->impl->off[id];
}
D1_API int d1_tokenizer_merge(const d1_tokenizer *tok, int rank, int *left, int *right) {
    if (!tok || !tok->impl || rank < 0 || rank >= tok->n_merges || !left || !right) return D1__FAIL(D1_ERR_ARG);
    *left = tok->impl->mpair[2 * rank];
    *right = tok->impl->mpair[2 * rank + 1];
    return D1_OK;
}
D1_API int d1_tokenizer_token_type(const d1_tokenizer *tok, int id) {
    unsigned f;
    if (!d1_tokenizer_token(tok, id)) return D1__FAIL(D1_ERR_TOKEN);
    f = tok->impl->flags[id];
    return (f & 2) ? D1_TOKEN_SPECIAL : (f & 1) ? D1_TOKEN_ADDED : D1_TOKEN_MODEL;
}

/* A character vocabulary as tokenizer.json text: WordLevel, Split ".",
   Fuse; the special tokens as special added tokens. */
D1_API int d1_tokenizer_init_chars(d1_tokenizer *tok, const char *chars, const char *const *special, int n_special) {
    d1__text w;
    size_t n = chars ? strlen(chars) : 0, i, l = 0, bad;
    int pass, id, k, rc;
    if (!tok || !chars || n_special < 0 || (n_special && !special)) return D1__FAIL(D1_ERR_ARG);
    memset(tok, 0, sizeof *tok);
    for (k = 0; k < n_special; k++)
        if (!special[k] || !special[k][0]) return D1__FAIL(D1_ERR_ARG);
    memset(&w, 0, sizeof w);
    for (pass = 0; pass < 2; pass++) { /* measure, then write */
        if (pass) {
            if (!(w.p = (char *)d1__alloc(w.len + 1))) return D1__FAIL(D1_ERR_NOMEM);
            w.cap = w.len + 1;
            w.len = 0;
        }
        d1__puts(&w, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [");
        for (id = 0, i = 0; i < n; i += l, id++)
            if (!(l = d1__utf8_len((const unsigned char *)chars, n, i, &bad))) {
                d1__free(w.p);
                return D1__FAILF(D1_ERR_ARG, "chars is not valid UTF-8 at byte %llu", (unsigned long long)i);
            }
        for (k = 0; k < n_special; k++) {
            d1__puts(&w, k ? ",\n    {\"id\": " : "\n    {\"id\": ");
            d1__put_u64(&w, (uint64_t)(id + k));
            d1__puts(&w, ", \"content\": ");
            d1__put_json_string(&w, special[k], strlen(special[k]));
            d1__puts(&w, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
                         "\"special\": true}");
        }
        d1__puts(&w, "\n  ],\n  \"normalizer\": null,\n"
                     "  \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \".\"}, "
                     "\"behavior\": \"Isolated\", \"invert\": false},\n"
                     "  \"post_processor\": null,\n  \"decoder\": {\"type\": \"Fuse\"},\n"
                     "  \"model\": {\n    \"type\": \"WordLevel\",\n    \"vocab\": {");
        for (id = 0, i = 0; i < n; i += l, id++) {
            l = d1__utf8_len((const unsigned char *)chars, n, i, &bad);
            d1__puts(&w, id ? ", " : "");
            d1__put_json_string(&w, chars + i, l);
            d1__puts(&w, ": ");
            d1__put_u64(&w, (uint64_t)id);
        }
        for (k = 0; k < n_special; k++) {
            d1__puts(&w, ", ");
            d1__put_json_string(&w, special[k], strlen(special[k]));
            d1__puts(&w, ": ");
            d1__put_u64(&w, (uint64_t)(id + k));
        }
        d1__puts(&w, "},\n    \"unk_token\": \"<unk>\"\n  }\n}\n");
    }
    rc = d1_tokenizer_load_memory(tok, w.p, w.len);
    d1__free(w.p);
    return rc;
}

#ifndef D1_NO_STDIO
D1_API int d1_tokenizer_load(d1_tokenizer *tok, const char *path) {
    char *p, *buf = NULL;
    size_t len = 0;
    FILE *f;
    int rc;
    if (!tok || !path) return D1__FAIL(D1_ERR_ARG);
    memset(tok, 0, sizeof *tok);
    if (!(p = d1__path(path, "tokenizer.json"))) return D1__FAIL(D1_ERR_NOMEM);
    rc = d1__read_file(p, (uint64_t)1 << 31, &buf, &len); /* path is a directory that holds one */
    if (rc == D1_ERR_NOT_FOUND) { /* else path is the file */
        if ((f = d1__fopen_regular(path)) != NULL) fclose(f);
        rc = !f && errno == EISDIR ? D1__FAILF(D1_ERR_NOT_FOUND, "no tokenizer.json in '%s'", path)
                                   : d1__read_file(path, (uint64_t)1 << 31, &buf, &len);
    }
    if (rc == D1_OK) rc = d1_tokenizer_load_memory(tok, buf, len);
    d1__free(buf);
    d1__free(p);
    return rc;
}

/* The name of special id `id` as a JSON string, or null. */
static int d1__tok_put_name(d1__text *w, const d1_tokenizer *tok, const char *key, int id) {
    const char *s = id == D1_TOKEN_NONE ? NULL : d1_tokenizer_token(tok, id);
    if (id != D1_TOKEN_NONE && !s)
        return D1__FAILF(D1_ERR_CONFIG, "the config's %s %d is no token of this tokenizer", key, id);
    d1__puts(w, "  \"");
    d1__puts(w, key);
    d1__puts(w, "\": ");
    if (s) d1__put_json_string(w, s, strlen(s));
    else d1__puts(w, "null");
    return D1_OK;
}
D1_API int d1_tokenizer_save(const d1_tokenizer *tok, const d1_config *cfg, const char *dir) {
    static const char *const names[3] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    static const char *const keys[3] = {"eos_token", "pad_token", "mask_token"};
    const d1__emit_fn emit[3] = {d1__emit_text, d1__emit_text, d1__emit_text};
    d1__save_ctx c[3];
    const void *ctx[3];
    d1__text w[2];
    d1_config rc_cfg;
    int ids[3], pass, f, k, wrote, rc = D1_OK;
    if (!tok || !tok->impl || !dir) return D1__FAIL(D1_ERR_ARG);
    if (cfg && (rc = d1_config_resolve(cfg, &rc_cfg)) != D1_OK) return rc;
    ids[0] = cfg ? rc_cfg.eos_id : D1_TOKEN_NONE;
    ids[1] = cfg ? rc_cfg.pad_id : D1_TOKEN_NONE;
    ids[2] = cfg ? rc_cfg.mask_id : D1_TOKEN_NONE;
    memset(w, 0, sizeof w);
    memset(c, 0, sizeof c);
    for (pass = 0; pass < 2 && rc == D1_OK; pass++) /* measure, then write */
        for (f = 0; f < 2 && rc == D1_OK; f++) {
            d1__text *o = &w[f];
            if (pass) {
                if (!(o->p = (char *)d1__alloc(o->len + 1))) { rc = D1__FAIL(D1_ERR_NOMEM); break; }
                o->cap = o->len + 1;
                o->len = 0;
            }
            d1__puts(o, "{\n");
            if (f == 0) { /* tokenizer_config.json: what transformers' AutoTokenizer reads */
                int first = 1, id;
                d1__puts(o, "  \"added_tokens_decoder\": {");
                for (id = 0; id < tok->n_vocab; id++) {
                    unsigned fl = tok->impl->flags[id];
                    if (!(fl & 1)) continue;
                    d1__puts(o, first ? "\n    \"" : ",\n    \"");
                    first = 0;
                    d1__put_u64(o, (uint64_t)id);
                    d1__puts(o, "\": {\"content\": ");
                    d1__put_json_string(o, d1_tokenizer_token(tok, id), strlen(d1_tokenizer_token(tok, id)));
                    d1__puts(o, fl & 4 ? ", \"lstrip\": true" : ", \"lstrip\": false");
                    d1__puts(o, ", \"normalized\": false");
                    d1__puts(o, fl & 8 ? ", \"rstrip\": true" : ", \"rstrip\": false");
                    d1__puts(o, ", \"single_word\": false");
                    d1__puts(o, fl & 2 ? ", \"special\": true}" : ", \"special\": false}");
                }
                d1__puts(o, "\n  },\n  \"bos_token\": null,\n  \"clean_up_tokenization_spaces\": false,\n");
            }
            for (k = 0, wrote = 0; k < 3 && rc == D1_OK; k++) {
                if (f == 1 && ids[k] == D1_TOKEN_NONE) continue;
                if (f == 1 && wrote++) d1__puts(o, ",\n");
                rc = d1__tok_put_name(o, tok, keys[k], ids[k]);
                if (f == 0) d1__puts(o, ",\n");
            }
            if (f == 0) {
                d1__puts(o, "  \"model_max_length\": ");
                d1__put_u64(o, cfg ? (uint64_t)rc_cfg.max_seq_len : (uint64_t)1000000000000000ull);
                d1__puts(o, ",\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"unk_token\": ");
                if (tok->unk_id >= 0) d1__put_json_string(o, d1_tokenizer_token(tok, tok->unk_id), (size_t)tok->impl->len[tok->unk_id]);
                else d1__puts(o, "null");
                d1__puts(o, "\n}\n");
            } else {
                d1__puts(o, "\n}\n");
            }
            if (pass && o->p) o->p[D1__MIN(o->len, o->cap - 1)] = 0;
        }
    if (rc == D1_OK) {
        c[0].text = tok->impl->json;
        c[1].text = w[0].p;
        c[2].text = w[1].p;
        for (k = 0; k < 3; k++) ctx[k] = &c[k];
        rc = d1__save_files(dir, 3, names, emit, ctx);
    }
    d1__free(w[0].p);
    d1__free(w[1].p);
    return rc;
}
#endif /* !D1_NO_STDIO */

// >>cuda ----------------------------------------------------------------------
/* The GPU half of d1.h, after sokol's "generic backend" pattern: each
   operation above starts with D1__GPU_RETURN / D1__GPU_DO, which hands it to
   its d1__gpu_* twin here when the model lives on a GPU. Each twin repeats the
   CPU function line by line with the kernels of tools/d1_cuda.cu, which carry
   the CPU kernels' names (d1__rmsnorm_forward -> d1_cuda_rmsnorm_forward)
   and layouts: the activations are carved by the same d1__carve_acts. What
   lives on the device: parameters, gradients, activations, RoPE tables, and
   the AdamW moments (in d1_adamw.dev). What crosses to the host per
   operation: its inputs (tokens, masks, loss weights), per-token results
   (row losses, log-probs, the sampler's canvas) and scalars; never a layer's
   activations. Errors are d1_cuda's sticky status, read once per operation
   (D1_ERR_DEVICE). The host's param_memory / grad_memory are a mirror,
   marked stale when the device moves ahead (d1__gpu_pull refreshes it). */
#if defined(D1_CUDA)
#include "tools/d1_cuda.h"

/* One CUDA context, shared by a model and the optimizers that step it (the
   last one out destroys it, so they may be freed in any order). */
typedef struct d1__gpu {
    d1_cuda *cu;
    int      refs;
} d1__gpu;

static void d1__gpu_release(d1__gpu *g) {
    if (g && --g->refs == 0) {
        d1_cuda_destroy(g->cu);
        d1__free(g);
    }
}

typedef struct d1__dev {
    d1__gpu  *gpu;
    d1_cuda  *cu;
    float    *params, *grads;   /* [num_params] each; grads NULL until needed      */
    d1_params p, g;             /* views into them                                  */
    float    *rope_cos, *rope_sin; /* [max_seq_len, D/2]                            */
    float    *acts;             /* activations, carved by d1__carve_acts, then dS   */
    size_t    act_cap;          /* floats                                           */
    d1__acts  a;
    float    *dS;               /* [B, T, T] attention backward's scratch           */
    void     *io;               /* per-token buffers for up to io_cap tokens:       */
    int       io_cap;
    int      *tok, *x0, *emb, *cand_tok, *k; /* [N] ... emb [3N + 1]                */
    float    *wts, *logp_old, *logp_ref, *adv, *logp; /* [N] each                    */
    double   *out, *cand_conf, *norm;  /* [3N], [N], [1]                            */
    uint8_t  *key_mask, *score, *revealed; /* [N] each                              */
    void     *host;             /* host staging: out [3N] | logits [N,V] | emb      */
    float    *h_logits;
    double   *h_out;
    int      *h_emb;            /* [3N + 1] then counts [V + 1]                     */
    int       host_stale;       /* the device's params / grads are ahead of the mirror */
} d1__dev;

/* The optimizer's moments on the device ([2n]: m then v, as opt->m). */
typedef struct d1__opt_dev {
    d1__gpu *gpu;
    float   *mv;
    int      host_stale;
} d1__opt_dev;

static int d1__gpu_status(d1_cuda *cu) { return d1_cuda_status(cu) ? D1__FAIL(D1_ERR_DEVICE) : D1_OK; }

static void d1__dev_free(d1__dev *d) {
    if (!d) return;
    d1_cuda_free(d->cu, d->params);
    d1_cuda_free(d->cu, d->grads);
    d1_cuda_free(d->cu, d->rope_cos);
    d1_cuda_free(d->cu, d->acts);
    d1_cuda_free(d->cu, d->io);
    d1__free(d->host);
    d1__gpu_release(d->gpu);
    d1__free(d);
}

static void d1__gpu_free_model(d1_model *m) {
    d1__dev_free(m->state->dev);
    m->state->dev = NULL;
}

/* Moves m to device 0: parameters (and gradients, if any) and the RoPE tables
   up; the host's activations are freed. On failure m stays on the CPU. */
static int d1__gpu_attach(d1_model *m) {
    const d1_config *c = &m->config;
    struct d1__state *s = m->state;
    size_t np = m->num_params, nr = (size_t)c->max_seq_len * (c->dim / c->n_heads / 2);
    d1__dev *d;
    int rc;
    if (m->lora) return D1__FAIL(D1_ERR_UNSUPPORTED);
    if ((rc = d1__rope_ensure(m, c->max_seq_len)) != D1_OK) return rc; /* all of them, built on the host */
    d = (d1__dev *)d1__alloc(sizeof *d);
    if (!d) return D1__FAIL(D1_ERR_NOMEM);
    memset(d, 0, sizeof *d);
    d->gpu = (d1__gpu *)d1__alloc(sizeof *d->gpu);
    if (!d->gpu) {
        d1__free(d);
        return D1__FAIL(D1_ERR_NOMEM);
    }
    if (d1_cuda_create(&d->gpu->cu, 0) != 0) {
        d1__free(d->gpu);
        d1__free(d);
        return D1__FAIL(D1_ERR_DEVICE);
    }
    d->gpu->refs = 1;
    d->cu = d->gpu->cu;
    d->params = (float *)d1_cuda_alloc(d->cu, np * sizeof(float));
    d->rope_cos = (float *)d1_cuda_alloc(d->cu, 2 * nr * sizeof(float));
    if (m->grad_memory) d->grads = (float *)d1_cuda_alloc(d->cu, np * sizeof(float));
    if (!d->params || !d->rope_cos || (m->grad_memory && !d->grads)) {
        d1__dev_free(d);
        return D1__FAIL(D1_ERR_NOMEM);
    }
    d->rope_sin = d->rope_cos + nr;
    d1_cuda_upload(d->cu, d->params, m->param_memory, np * sizeof(float));
    d1_cuda_upload(d->cu, d->rope_cos, s->rope_cos, nr * sizeof(float));
    d1_cuda_upload(d->cu, d->rope_sin, s->rope_sin, nr * sizeof(float));
    if (d->grads) d1_cuda_upload(d->cu, d->grads, m->grad_memory, np * sizeof(float));
    if (d1_cuda_sync(d->cu) != 0) {
        d1__dev_free(d);
        return D1__FAIL(D1_ERR_DEVICE);
    }
    d1__carve_params(c, d->params, &d->p);
    if (d->grads) d1__carve_params(c, d->grads, &d->g);
    s->dev = d;
    d1__free(s->act_memory); /* the activations will live on the device */
    s->act_memory = NULL;
    s->act_cap = 0;
    m->logits = NULL;
    m->B = m->T = 0;
    return D1_OK;
}

/* The mirror: device parameters (and gradients) -> param_memory (grad_memory). */
static int d1__gpu_pull(d1_model *m) {
    d1__dev *d = m->state->dev;
    if (!d->host_stale) return D1_OK;
    d1_cuda_download(d->cu, m->param_memory, d->params, m->num_params * sizeof(float));
    if (d->grads && m->grad_memory) d1_cuda_download(d->cu, m->grad_memory, d->grads, m->num_params * sizeof(float));
    if (d1__gpu_status(d->cu) != D1_OK) return D1__FAIL(D1_ERR_DEVICE);
    d->host_stale = 0;
    return D1_OK;
}

static int d1__gpu_push(d1_model *m) {
    d1__dev *d = m->state->dev;
    d1_cuda_upload(d->cu, d->params, m->param_memory, m->num_params * sizeof(float));
    return d1__gpu_status(d->cu);
}

static int d1__gpu_detach(d1_model *m) {
    int rc = d1__gpu_pull(m);
    if (rc != D1_OK) return rc;
    d1__gpu_free_model(m);
    m->logits = NULL;
    m->B = m->T = 0;
    return D1_OK;
}

/* Room for a (B,T) batch on the device (activations, per-token buffers) and
   the host staging. Grows only. */
static int d1__gpu_ensure(d1_model *m, int B, int T) {
    const d1_config *c = &m->config;
    d1__dev *d = m->state->dev;
    size_t N = (size_t)B * T, V = (size_t)c->vocab_size;
    size_t need = d1__carve_acts(c, B, T, 0, NULL, NULL) + N * T;
    if (need > d->act_cap) {
        float *mem = (float *)d1_cuda_alloc(d->cu, need * sizeof(float));
        if (!mem) return D1__FAIL(D1_ERR_NOMEM);
        d1_cuda_free(d->cu, d->acts);
        d->acts = mem;
        d->act_cap = need;
        m->logits = NULL;
        m->B = m->T = 0;
    }
    if ((int)N > d->io_cap) {
        /* device: 5 int, 5 float, 5 double and 3 byte buffers of N, emb's 2N + 1 more ints */
        size_t io = N * (5 * sizeof(int) + 5 * sizeof(float) + 5 * sizeof(double) + 3) + (2 * N + 1) * sizeof(int) + 64;
        size_t host = N * V * sizeof(float) + 3 * N * sizeof(double) + (3 * N + V + 2) * sizeof(int);
        unsigned char *dm = (unsigned char *)d1_cuda_alloc(d->cu, io), *hm = (unsigned char *)d1__alloc(host);
        if (!dm || !hm) {
            d1_cuda_free(d->cu, dm);
            d1__free(hm);
            return D1__FAIL(D1_ERR_NOMEM);
        }
        d1_cuda_free(d->cu, d->io);
        d1__free(d->host);
        d->io = dm;
        d->io_cap = (int)N;
        /* doubles first (alignment), then floats and ints, then bytes */
        d->out = (double *)dm; d->cand_conf = d->out + 3 * N; d->norm = d->cand_conf + N;
        d->wts = (float *)(d->norm + 1); d->logp_old = d->wts + N; d->logp_ref = d->logp_old + N;
        d->adv = d->logp_ref + N; d->logp = d->adv + N;
        d->tok = (int *)(d->logp + N); d->x0 = d->tok + N; d->cand_tok = d->x0 + N; d->k = d->cand_tok + N;
        d->emb = d->k + N;
        d->key_mask = (uint8_t *)(d->emb + 3 * N + 1); d->score = d->key_mask + N; d->revealed = d->score + N;
        d->host = hm;
        d->h_out = (double *)hm;
        d->h_logits = (float *)(d->h_out + 3 * N);
        d->h_emb = (int *)(d->h_logits + N * V);
    }
    d1__carve_acts(c, B, T, 0, d->acts, &d->a);
    d->dS = d->acts + (need - N * T);
    return D1_OK;
}

static int d1__gpu_ensure_grads(d1_model *m) {
    d1__dev *d = m->state->dev;
    if (!m->grad_memory) { /* the host mirror, so that m->grads can be read after a pull */
        m->grad_memory = d1__alloc_floats(m->num_params);
        if (!m->grad_memory) return D1__FAIL(D1_ERR_NOMEM);
        memset(m->grad_memory, 0, m->num_params * sizeof(float));
        d1__carve_params(&m->config, m->grad_memory, &m->grads);
    }
    if (!d->grads) {
        d->grads = (float *)d1_cuda_alloc(d->cu, m->num_params * sizeof(float));
        if (!d->grads) return D1__FAIL(D1_ERR_NOMEM);
        d1_cuda_zero(d->cu, d->grads, m->num_params * sizeof(float));
        d1__carve_params(&m->config, d->grads, &d->g);
    }
    return D1_OK;
}

/* d1__forward on the device: tokens (host) up, logits in d->a.logits. */
static void d1__gpu_forward(d1_model *m, const int *tokens, int B, int T, const uint8_t *key_mask) {
    const d1_config *c = &m->config;
    struct d1__state *s = m->state;
    d1__dev *d = s->dev;
    d1_cuda *cu = d->cu;
    d1__acts *a = &d->a;
    const d1_params *w = &d->p;
    int N = B * T, C = c->dim, F = c->ffn_dim, V = c->vocab_size, H = c->n_heads, KV = c->n_kv_heads;
    int D = C / H, QW = d1__qw(c), l;
    size_t NC = (size_t)N * C;
    if (tokens != s->tokens) memcpy(s->tokens, tokens, (size_t)N * sizeof(int)); /* for the backward's embedding */
    d1_cuda_upload(cu, d->tok, s->tokens, (size_t)N * sizeof(int));
    if (key_mask) d1_cuda_upload(cu, d->key_mask, key_mask, (size_t)N);
    d1_cuda_embed_forward(cu, a->x, d->tok, w->wte, N, C);
    for (l = 0; l < c->n_layers; l++) {
        size_t L = (size_t)l;
        float *x = a->x + L * NC, *xo = x + NC, *n1 = a->n1 + L * NC, *qkv = a->qkv + L * N * QW;
        float *y = a->y + L * NC, *xa = a->xa + L * NC, *n2 = a->n2 + L * NC;
        float *gu = a->gu + L * N * 2 * F, *hm = a->hm + L * N * F;
        d1_cuda_rmsnorm_forward(cu, n1, a->r1 + L * N, x, w->attn_norm + L * C, N, C, c->norm_eps);
        d1_cuda_matmul_forward(cu, qkv, n1, w->qkv + L * QW * C, N, C, QW);
        d1_cuda_rope(cu, qkv, QW, N, T, 0, H + KV, D, d->rope_cos, d->rope_sin, 1.0f);
        d1_cuda_attention_forward(cu, a->att + L * B * H * (size_t)T * T, y, qkv, key_mask ? d->key_mask : NULL, B,
                                  T, H, KV, D);
        d1_cuda_matmul_forward(cu, xa, y, w->attn_out + L * C * C, N, C, C);
        d1_cuda_residual_add(cu, xa, x, NC);
        d1_cuda_rmsnorm_forward(cu, n2, a->r2 + L * N, xa, w->ff_norm + L * C, N, C, c->norm_eps);
        d1_cuda_matmul_forward(cu, gu, n2, w->gate_up + L * 2 * F * C, N, C, 2 * F);
        d1_cuda_swiglu_forward(cu, hm, gu, N, F);
        d1_cuda_matmul_forward(cu, xo, hm, w->ff_out + L * C * F, N, F, C);
        d1_cuda_residual_add(cu, xo, xa, NC);
    }
    d1_cuda_rmsnorm_forward(cu, a->nf, a->rf, a->x + (size_t)c->n_layers * NC, w->ln_f, N, C, c->norm_eps);
    d1_cuda_matmul_forward(cu, a->logits, a->nf, w->head, N, C, V);
    m->B = B;
    m->T = T;
    m->logits = NULL; /* on the device; d1_model_forward brings them home */
}

/* d1__backward on the device, from dlogits (a device pointer). */
static void d1__gpu_backward(d1_model *m, const float *dlogits) {
    const d1_config *c = &m->config;
    struct d1__state *s = m->state;
    d1__dev *d = s->dev;
    d1_cuda *cu = d->cu;
    d1__acts *a = &d->a;
    const d1_params *w = &d->p, *g = &d->g;
    int B = m->B, T = m->T, N = B * T, C = c->dim, F = c->ffn_dim, V = c->vocab_size;
    int H = c->n_heads, KV = c->n_kv_heads, D = C / H, QW = d1__qw(c), l, n, U = 0;
    size_t NC = (size_t)N * C;
    int *ids = d->h_emb, *start = ids + N, *pos = start + N + 1, *cnt = pos + N;
    d1_cuda_matmul_backward(cu, a->dA, g->head, dlogits, a->nf, w->head, N, C, V);
    d1_cuda_rmsnorm_backward(cu, a->dres, g->ln_f, a->dA, a->x + (size_t)c->n_layers * NC, w->ln_f, a->rf, N, C);
    for (l = c->n_layers - 1; l >= 0; l--) {
        size_t L = (size_t)l;
        float *x = a->x + L * NC, *n1 = a->n1 + L * NC, *qkv = a->qkv + L * N * QW;
        float *y = a->y + L * NC, *xa = a->xa + L * NC, *n2 = a->n2 + L * NC;
        float *gu = a->gu + L * N * 2 * F, *hm = a->hm + L * N * F;
        /* MLP sub-block */
        d1_cuda_matmul_backward(cu, a->dh, g->ff_out + L * C * F, a->dres, hm, w->ff_out + L * C * F, N, F, C);
        d1_cuda_swiglu_backward(cu, a->dgu, gu, a->dh, N, F);
        d1_cuda_matmul_backward(cu, a->dA, g->gate_up + L * 2 * F * C, a->dgu, n2, w->gate_up + L * 2 * F * C, N, C,
                                2 * F);
        d1_cuda_rmsnorm_backward(cu, a->dB, g->ff_norm + L * C, a->dA, xa, w->ff_norm + L * C, a->r2 + L * N, N, C);
        d1_cuda_residual_add(cu, a->dres, a->dB, NC);
        /* attention sub-block */
        d1_cuda_matmul_backward(cu, a->dA, g->attn_out + L * C * C, a->dres, y, w->attn_out + L * C * C, N, C, C);
        d1_cuda_attention_backward(cu, a->dqkv, d->dS, a->att + L * B * H * (size_t)T * T, a->dA, qkv, B, T, H, KV,
                                   D);
        d1_cuda_rope(cu, a->dqkv, QW, N, T, 0, H + KV, D, d->rope_cos, d->rope_sin, -1.0f);
        d1_cuda_matmul_backward(cu, a->dB, g->qkv + L * QW * C, a->dqkv, n1, w->qkv + L * QW * C, N, C, QW);
        d1_cuda_rmsnorm_backward(cu, a->dA, g->attn_norm + L * C, a->dB, x, w->attn_norm + L * C, a->r1 + L * N, N,
                                 C);
        d1_cuda_residual_add(cu, a->dres, a->dA, NC);
    }
    /* the embedding: positions grouped by token id (a counting sort, stable),
       so each row of dwte adds its positions in order, as the CPU does */
    memset(cnt, 0, (size_t)(V + 1) * sizeof(int));
    for (n = 0; n < N; n++) cnt[s->tokens[n] + 1]++;
    for (n = 0; n < V; n++) cnt[n + 1] += cnt[n];
    for (n = 0; n < V; n++)
        if (cnt[n + 1] > cnt[n]) { ids[U] = n; start[U++] = cnt[n]; }
    start[U] = N;
    for (n = 0; n < N; n++) pos[cnt[s->tokens[n]]++] = n;
    d1_cuda_upload(cu, d->emb, d->h_emb, (size_t)(3 * N + 1) * sizeof(int));
    d1_cuda_embed_backward(cu, g->wte, a->dres, d->emb, d->emb + N, d->emb + 2 * N + 1, U, C);
    d->host_stale = 1;
}

static int d1__gpu_model_forward(d1_model *m, const int *tokens, int B, int T, const uint8_t *key_mask) {
    d1__dev *d = m->state->dev;
    d1__gpu_forward(m, tokens, B, T, key_mask);
    d1_cuda_download(d->cu, d->h_logits, d->a.logits, (size_t)B * T * m->config.vocab_size * sizeof(float));
    if (d1__gpu_status(d->cu) != D1_OK) {
        m->B = m->T = 0;
        return D1__FAIL(D1_ERR_DEVICE);
    }
    m->logits = d->h_logits;
    return D1_OK;
}

static int d1__gpu_model_backward(d1_model *m, const float *dlogits) {
    d1__dev *d = m->state->dev;
    d1_cuda_upload(d->cu, d->a.dlogits, dlogits, (size_t)m->B * m->T * m->config.vocab_size * sizeof(float));
    d1__gpu_backward(m, d->a.dlogits);
    return d1__gpu_status(d->cu);
}

static int d1__gpu_zero_grad(d1_model *m) {
    d1__dev *d = m->state->dev;
    d1_cuda_zero(d->cu, d->grads, m->num_params * sizeof(float));
    d->host_stale = 1;
    return d1__gpu_status(d->cu);
}

/* d1__masked_ce on the device; the row losses come home and are summed in
   row order in double, as the CPU sums them. */
static int d1__gpu_masked_ce(d1_model *m, const int *x0, int B, int T, float *loss) {
    struct d1__state *s = m->state;
    d1__dev *d = s->dev;
    d1__acts *a = &d->a;
    size_t N = (size_t)B * T, i;
    double total = 0.0;
    d1__gpu_forward(m, s->noisy, B, T, NULL);
    d1_cuda_upload(d->cu, d->x0, x0, N * sizeof(int));
    d1_cuda_upload(d->cu, d->wts, s->wts, N * sizeof(float));
    d1_cuda_cross_entropy(d->cu, a->dlogits, d->out, a->logits, d->x0, d->wts, (int)N, m->config.vocab_size);
    d1_cuda_download(d->cu, d->h_out, d->out, N * sizeof(double));
    if (d1__gpu_status(d->cu) != D1_OK) return D1__FAIL(D1_ERR_DEVICE);
    for (i = 0; i < N; i++) total += d->h_out[i];
    if (!isfinite(total)) return D1__FAIL(D1_ERR_NONFINITE);
    d1__gpu_backward(m, a->dlogits);
    if (d1__gpu_status(d->cu) != D1_OK) return D1__FAIL(D1_ERR_DEVICE);
    *loss = (float)total;
    return D1_OK;
}

/* The optimizer's moments follow the model to its GPU at its first step there.
   d1__gpu_opt_home: keep 0 drops them (the host's are authoritative), 1 brings
   them home and drops them, 2 refreshes the host's copy and keeps them. */
static int d1__gpu_opt_home(d1_adamw *opt, int keep) {
    d1__opt_dev *od = (d1__opt_dev *)opt->dev;
    int rc = D1_OK;
    if (!od) return D1_OK;
    if (keep && od->host_stale) {
        d1_cuda_download(od->gpu->cu, opt->m, od->mv, 2 * opt->n * sizeof(float));
        rc = d1__gpu_status(od->gpu->cu);
        if (rc == D1_OK) od->host_stale = 0;
    }
    if (keep == 2 || rc != D1_OK) return rc;
    d1_cuda_free(od->gpu->cu, od->mv);
    d1__gpu_release(od->gpu);
    d1__free(od);
    opt->dev = NULL;
    return D1_OK;
}

static int d1__gpu_opt_bind(d1_adamw *opt, d1__dev *d) {
    d1__opt_dev *od = (d1__opt_dev *)opt->dev;
    int rc;
    if (od && od->gpu == d->gpu) return D1_OK;
    if (od && (rc = d1__gpu_opt_home(opt, 1)) != D1_OK) return rc; /* it was stepping another model */
    od = (d1__opt_dev *)d1__alloc(sizeof *od);
    if (!od) return D1__FAIL(D1_ERR_NOMEM);
    od->mv = (float *)d1_cuda_alloc(d->cu, 2 * opt->n * sizeof(float));
    if (!od->mv) {
        d1__free(od);
        return D1__FAIL(D1_ERR_NOMEM);
    }
    d1_cuda_upload(d->cu, od->mv, opt->m, 2 * opt->n * sizeof(float));
    od->gpu = d->gpu;
    od->gpu->refs++;
    od->host_stale = 0;
    opt->dev = od;
    return d1__gpu_status(d->cu);
}

/* d1__params_finite on the device: sum w^2 over the device's weights in
   double (a float squared is below 1.2e77, so the sum is finite exactly when
   every weight is); one double comes home. A device failure answers 1 here:
   the operation that follows meets the same failure and returns
   D1_ERR_DEVICE rather than a misleading D1_ERR_NONFINITE. */
static int d1__gpu_params_finite(const d1_model *m) {
    d1__dev *d = m->state->dev;
    double sq = 0.0, *out = d->norm, *tmp = NULL;
    if (!out) { /* no pass has sized the I/O buffers yet: a scratch double */
        if (!(tmp = (double *)d1_cuda_alloc(d->cu, sizeof(double)))) return 1;
        out = tmp;
    }
    d1_cuda_sum_squares(d->cu, out, d->params, m->num_params);
    d1_cuda_download(d->cu, &sq, out, sizeof sq);
    d1_cuda_free(d->cu, tmp);
    return d1__gpu_status(d->cu) != D1_OK || isfinite(sq);
}

/* d1_adamw_step on the device: the norm is reduced there (one double comes
   home: it decides the clip and is returned), then the update per tensor. */
static int d1__gpu_adamw_step(d1_adamw *opt, d1_model *m, float *grad_norm) {
    d1__dev *d = m->state->dev;
    const d1_adamw_desc *ds = &opt->desc;
    double sq = 0.0, norm, bc1, bc2;
    float scale = 1.0f;
    d1__opt_dev *od;
    int rc, ti;
    if (!d->grads || opt->n != m->num_params) return D1__FAIL(D1_ERR_ARG);
    if ((rc = d1__gpu_opt_bind(opt, d)) != D1_OK) return rc;
    od = (d1__opt_dev *)opt->dev;
    d1_cuda_sum_squares(d->cu, d->norm, d->grads, m->num_params);
    d1_cuda_download(d->cu, &sq, d->norm, sizeof sq);
    if (d1__gpu_status(d->cu) != D1_OK) return D1__FAIL(D1_ERR_DEVICE);
    norm = sqrt(sq);
    if (!isfinite(norm)) return D1__FAIL(D1_ERR_NONFINITE);
    if (grad_norm) *grad_norm = (float)norm;
    if (ds->grad_clip > 0.0f && norm > ds->grad_clip) scale = (float)(ds->grad_clip / (norm + 1e-6));
    opt->step++;
    bc1 = 1.0 - pow((double)ds->beta1, (double)opt->step);
    bc2 = 1.0 - pow((double)ds->beta2, (double)opt->step);
    for (ti = 0; ti < d1_model_num_tensors(m); ti++) {
        d1_tensor t;
        d1__adamw_k k;
        d1_model_tensor(m, ti, &t);
        k = d1__adamw_konst(ds, t.decay, scale, bc1, bc2);
        d1_cuda_adamw(d->cu, d->params + t.offset, d->grads + t.offset, od->mv + t.offset, od->mv + opt->n + t.offset,
                      t.size, k.b1, k.b2, k.wd, k.step, k.inv_c2, k.eps, k.scale);
    }
    d->host_stale = 1;
    od->host_stale = 1;
    return d1__gpu_status(d->cu);
}

/* d1_grpo_logprobs after its forward: the per-token log-probs come home. */
static int d1__gpu_token_logp(d1_model *m, const d1_grpo_batch *b, float *logp) {
    d1__dev *d = m->state->dev;
    size_t RL = (size_t)b->B * (b->T - b->P);
    d1_cuda_upload(d->cu, d->x0, b->tokens, (size_t)b->B * b->T * sizeof(int));
    d1_cuda_token_logp(d->cu, d->logp, d->a.logits, d->x0, b->B, b->T, b->P, m->config.vocab_size);
    d1_cuda_download(d->cu, logp, d->logp, RL * sizeof(float));
    return d1__gpu_status(d->cu);
}

/* d1_grpo_loss after its forward: per-token loss terms come home and are
   summed in the CPU's order; the gradient goes back from the device. */
static int d1__gpu_grpo_loss(d1_model *m, const d1_grpo_batch *b, float clip_eps, float beta, int objective,
                             float *loss, double *kl_sum, double *clipped) {
    d1__dev *d = m->state->dev;
    size_t RL = (size_t)b->B * (b->T - b->P), t;
    double total = 0.0, kls = 0.0, clips = 0.0;
    d1_cuda_upload(d->cu, d->x0, b->tokens, (size_t)b->B * b->T * sizeof(int));
    d1_cuda_upload(d->cu, d->score, b->score_mask, RL);
    d1_cuda_upload(d->cu, d->adv, b->adv, (size_t)b->B * sizeof(float));
    if (b->old_logp) d1_cuda_upload(d->cu, d->logp_old, b->old_logp, RL * sizeof(float));
    if (beta != 0.0f) d1_cuda_upload(d->cu, d->logp_ref, b->ref_logp, RL * sizeof(float));
    d1_cuda_grpo_dlogits(d->cu, d->a.dlogits, d->out, d->a.logits, d->x0, d->score, d->adv,
                         b->old_logp ? d->logp_old : NULL, beta != 0.0f ? d->logp_ref : NULL, b->B, b->T, b->P,
                         m->config.vocab_size, clip_eps, beta, objective == D1_GRPO_WD1, b->denom);
    d1_cuda_download(d->cu, d->h_out, d->out, 3 * RL * sizeof(double));
    if (d1__gpu_status(d->cu) != D1_OK) return D1__FAIL(D1_ERR_DEVICE);
    for (t = 0; t < RL; t++) {
        total += d->h_out[3 * t];
        kls += d->h_out[3 * t + 1];
        clips += d->h_out[3 * t + 2];
    }
    if (!isfinite(total)) return D1__FAIL(D1_ERR_NONFINITE);
    d1__gpu_backward(m, d->a.dlogits);
    if (d1__gpu_status(d->cu) != D1_OK) return D1__FAIL(D1_ERR_DEVICE);
    *loss = (float)(total / b->denom);
    if (kl_sum) *kl_sum += kls;
    if (clipped) *clipped += clips;
    return D1_OK;
}

/* One sampler step's reveals after the device forward. At temperature 0
   (low_confidence, margin, entropy) the candidates and the top-k are chosen
   on the device and the canvas comes home; with Gumbel noise or random
   remasking the draws must come from the caller's RNG in the CPU's order, so
   the logits come home and d1__sampler_reveal_row does the step. */
static int d1__gpu_sampler_reveal(d1__sampler *s, int b0, int b1, int step) {
    d1_model *m = s->m;
    d1__dev *d = m->state->dev;
    const d1_sampler_desc *ds = s->d;
    int V = s->V, mask_id = m->config.mask_id, b, i, n = 0;
    if (ds->temperature > 0.0f || ds->remasking == D1_REMASK_RANDOM) {
        d1_cuda_download(d->cu, d->h_logits, d->a.logits, (s->cfg ? 2 : 1) * s->BT * (size_t)V * sizeof(float));
        if (d1__gpu_status(d->cu) != D1_OK) return D1__FAIL(D1_ERR_DEVICE);
        for (b = 0; b < s->B; b++) n += d1__sampler_reveal_row(s, b, b0, b1, d->h_logits, 0, s->T, step);
        return n;
    }
    for (b = 0; b < s->B; b++) { /* k per row: LLaDA's schedule, capped by the masks left
                                    (staged in h_emb, free while sampling: no backward) */
        int left = 0;
        for (i = b0; i < b1; i++) left += s->out[(size_t)b * s->T + i] == mask_id;
        d->h_emb[b] = D1__MIN(left, d1_sampler_transfer_count(s->at_start[b], s->spb, step));
    }
    d1_cuda_upload(d->cu, d->k, d->h_emb, (size_t)s->B * sizeof(int));
    /* d->tok holds the canvas (and, with CFG, its unconditional twin after it) */
    d1_cuda_sampler_propose(d->cu, d->cand_tok, d->cand_conf, d->a.logits, s->cfg ? d->a.logits + s->BT * V : NULL,
                            ds->cfg_scale, d->tok, s->B, s->T, b0, b1, 0, s->T, V, mask_id, mask_id, s->eos_ban,
                            ds->remasking);
    d1_cuda_sampler_select(d->cu, d->tok, d->revealed, d->cand_tok, d->cand_conf, d->k, ds->threshold, s->B, s->T, b0,
                           b1);
    d1_cuda_download(d->cu, s->out, d->tok, s->BT * sizeof(int));
    d1_cuda_download(d->cu, s->revealed, d->revealed, s->BT);
    if (d1__gpu_status(d->cu) != D1_OK) return D1__FAIL(D1_ERR_DEVICE);
    for (b = 0; b < s->B; b++)
        for (i = b0; i < b1; i++) {
            /* no token had a finite logit (the kernel's -1): d1__propose's D1_ERR_NONFINITE */
            if (s->out[(size_t)b * s->T + i] < 0) return D1__FAIL(D1_ERR_NONFINITE);
            n += s->revealed[(size_t)b * s->T + i];
        }
    return n;
}
#endif /* D1_CUDA */

#endif /* D1__IMPLEMENTED */
#endif /* D1_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 the d1.h authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
In jurisdictions that recognize copyright laws, the author or authors of this
software dedicate any and all copyright interest in the software to the public
domain. We make this dedication in the hope that it will encourage release of
the software to the public domain.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN
ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
------------------------------------------------------------------------------
*/
