/* d1_checkpoint_wip.h - checkpoints for d1.h: Hugging Face layout (config.json +
   model.safetensors, or an index.json and shards), BF16/F16 on load and save,
   AdamW + RNG state for exact resume, memory variants for D1_NO_STDIO.

   WORK IN PROGRESS, to be pasted into d1.h: part 1 into the public API section,
   part 2 at the end of the implementation (the checkpoints section). Until then
   include it right after d1.h:

       #define D1_IMPLEMENTATION
       #include "../d1.h"
       #include "../tools/d1_checkpoint_wip.h"

   NOTES FOR THE MERGE
   - d1__strerror_ckpt(code) gives the messages of the new codes: call it from
     d1_strerror's default branch (or move its cases there).
   - d1__model_alloc (below) is d1_model_init without the weight draw; make
     d1_model_init call it and delete the duplicated lines there.
   - d1__cfg_tensor builds a view model to use d1_model_tensor on a config alone;
     splitting d1_model_tensor into a d1__config_tensor(cfg, i, t) would be
     cleaner.
   - D1_NO_STDIO: the file functions (and the stdio/POSIX includes) are left out.
   - A configuration macro for the doc table: D1_NO_STDIO (no file I/O). */

/* ==== API (goes into the public API section of d1.h) ==== */
#ifndef D1_CHECKPOINT_WIP_H
#define D1_CHECKPOINT_WIP_H

#ifdef __cplusplus
extern "C" {
#endif

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

   Loading is strict: every tensor the config implies must be present with its
   exact shape, and a tensor it does not imply (e.g. model.transformer.ff_out
   in a tied model) is an error, so a checkpoint never loads half-used.
   config.json: the integer and boolean keys d_model, n_layers, n_heads,
   mlp_hidden_size, vocab_size, max_sequence_length, mask_token_id,
   eos_token_id, pad_token_id, weight_tying and the numbers rope_theta,
   rms_norm_eps are required; n_kv_heads and embedding_size may be absent or
   null (then n_heads, vocab_size); embedding_size must equal vocab_size (d1.h
   keeps no padded embedding rows); model_type, activation_type, block_type,
   layer_norm_type and include_bias, when present, must be "llada", "silu",
   "llama", "rms" and false. Other keys are ignored. Duplicate keys are an
   error wherever d1.h reads the key (keys it ignores are not compared). */
enum {
    D1_ERR_IO = -9,             /* a file could not be opened, read, written, synced or renamed */
    D1_ERR_JSON = -10,          /* malformed JSON, or a value of the wrong type or form          */
    D1_ERR_HEADER = -11,        /* safetensors header length 0, > 100 MB, or past the end        */
    D1_ERR_DTYPE = -12,         /* a tensor dtype other than F32, BF16, F16 (F32 for moments)    */
    D1_ERR_OFFSETS = -13,       /* data_offsets: wrong size, overlap, gap, or uncovered bytes    */
    D1_ERR_DUPLICATE = -14,     /* a key that appears twice                                      */
    D1_ERR_MISSING = -15,       /* a tensor the configuration needs is absent                    */
    D1_ERR_UNKNOWN_TENSOR = -16, /* a tensor the configuration does not have                      */
    D1_ERR_TENSOR_SHAPE = -17,  /* a tensor's shape differs from the configuration's             */
    D1_ERR_TRUNCATED = -18      /* the data ends before the last tensor does                     */
};

/* Tensor element types of a checkpoint (all converted to float on load). */
enum { D1_DTYPE_F32 = 0, D1_DTYPE_BF16 = 1, D1_DTYPE_F16 = 2 };

#define D1_CONFIG_JSON_MAX 1024                /* bytes that any config.json d1.h writes fits in */
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
   not one atomic step: for that, save into a fresh directory and rename it.
   One writer per directory. */
D1_API int d1_model_save(const d1_model *m, const char *dir, int dtype);
/* Loads the checkpoint directory `path` (see above) into *m, with the same
   contract as d1_model_load_memory. Tensors are read straight into the
   parameter buffer (BF16/F16 through a small fixed conversion buffer). */
D1_API int d1_model_load(d1_model *m, const char *path);
/* The dtype each tensor of m is stored with in the checkpoint at path:
   dtypes[d1_model_num_tensors(m)], in d1_model_tensor order. Reads headers
   only; D1_ERR_CONFIG when the checkpoint's config differs from m's. */
D1_API int d1_model_stored_dtypes(const d1_model *m, const char *path, int *dtypes);

/* Training state for an exact resume: writes dir/optimizer.safetensors
   (atomically, as d1_model_save) with opt's moments by tensor name, its step
   and desc, the n_rngs RNG states (u64 words as decimal strings, exact) and
   settings_json (any valid JSON text, may be NULL) for the caller's own
   settings. m names the tensors (opt must be d1_adamw_init'ed for it). */
D1_API int d1_train_state_save(const char *dir, const d1_model *m, const d1_adamw *opt,
                               const d1_rng *rngs, int n_rngs, const char *settings_json);
/* Restores what d1_train_state_save wrote into opt (already initialised for
   m by d1_adamw_init) and rngs[n_rngs] (n_rngs must equal the saved count,
   else D1_ERR_ARG), and the settings text into settings_json[settings_cap]
   ("" if none was saved; may be NULL to skip; too small: D1_ERR_ARG). On
   failure nothing changes. */
D1_API int d1_train_state_load(const char *dir, const d1_model *m, d1_adamw *opt, d1_rng *rngs,
                               int n_rngs, char *settings_json, size_t settings_cap);
#endif

#ifdef __cplusplus
}
#endif
#endif /* D1_CHECKPOINT_WIP_H */

/* ==== IMPLEMENTATION ==== */
#ifdef D1_IMPLEMENTATION
#ifndef D1__CKPT_IMPLEMENTED
#define D1__CKPT_IMPLEMENTED

// >>checkpoints ---------------------------------------------------------------
/* Checkpoints, in reading order: messages of the status codes; number
   conversions (little-endian words, BF16/F16, decimal text <-> float); a
   hardened JSON reader (a validator, then a cursor over checked text) and a
   small writer; config.json; the safetensors writer and reader shared by the
   memory and the file functions; the memory API; then files (atomic writes,
   single and sharded loads, training state). */

#include <limits.h>
#ifndef D1_NO_STDIO
#include <stdio.h>
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

/* The message of a checkpoint status code, NULL for any other code. */
static D1__MAYBE_UNUSED const char *d1__strerror_ckpt(int code) {
    switch (code) {
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
    default: return NULL;
    }
}

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
/* Length of the valid UTF-8 sequence of 2-4 bytes at s[i], or 0. */
static size_t d1__utf8_len(const char *s, size_t n, size_t i) {
    const unsigned char *u = (const unsigned char *)s + i;
    size_t len, k;
    unsigned lo = 0x80, hi = 0xBF;
    if (u[0] >= 0xC2 && u[0] <= 0xDF) len = 2;
    else if (u[0] >= 0xE0 && u[0] <= 0xEF) len = 3;
    else if (u[0] >= 0xF0 && u[0] <= 0xF4) len = 4;
    else return 0;
    if (i + len > n) return 0;
    if (u[0] == 0xE0) lo = 0xA0; /* overlong */
    if (u[0] == 0xED) hi = 0x9F; /* surrogates */
    if (u[0] == 0xF0) lo = 0x90; /* overlong */
    if (u[0] == 0xF4) hi = 0x8F; /* > U+10FFFF */
    if (u[1] < lo || u[1] > hi) return 0;
    for (k = 2; k < len; k++)
        if (u[k] < 0x80 || u[k] > 0xBF) return 0;
    return len;
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
            if (!(len = d1__utf8_len(s, n, i))) return 0;
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
            if (found) return D1_ERR_DUPLICATE;
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
    if (!cfg || !buf) return D1_ERR_ARG;
    if ((rc = d1_config_resolve(cfg, &c)) != D1_OK) return rc;
    t.p = buf; t.cap = cap; t.len = 0;
#define D1__KEY_INT(k, v) d1__puts(&t, "  \"" k "\": "), d1__put_u64(&t, (uint64_t)(v)), d1__puts(&t, ",\n")
    d1__puts(&t, "{\n");
    D1__KEY_INT("d_model", c.dim);
    D1__KEY_INT("n_layers", c.n_layers);
    D1__KEY_INT("n_heads", c.n_heads);
    D1__KEY_INT("n_kv_heads", c.n_kv_heads);
    D1__KEY_INT("mlp_hidden_size", c.ffn_dim);
    D1__KEY_INT("vocab_size", c.vocab_size);
    D1__KEY_INT("embedding_size", c.vocab_size);
    d1__puts(&t, "  \"rope_theta\": "); d1__put_float(&t, c.rope_theta); d1__puts(&t, ",\n");
    d1__puts(&t, "  \"rms_norm_eps\": "); d1__put_float(&t, c.norm_eps); d1__puts(&t, ",\n");
    D1__KEY_INT("max_sequence_length", c.max_seq_len);
    d1__puts(&t, c.tied_embeddings ? "  \"weight_tying\": true,\n" : "  \"weight_tying\": false,\n");
    D1__KEY_INT("mask_token_id", c.mask_id);
    D1__KEY_INT("eos_token_id", c.eos_id);
    D1__KEY_INT("pad_token_id", c.pad_id);
#undef D1__KEY_INT
    d1__puts(&t, "  \"model_type\": \"llada\",\n"
                 "  \"architectures\": [\"LLaDAModelLM\"],\n"
                 "  \"activation_type\": \"silu\",\n"
                 "  \"block_type\": \"llama\",\n"
                 "  \"layer_norm_type\": \"rms\",\n"
                 "  \"include_bias\": false\n"
                 "}\n");
    if (t.len >= cap) return D1_ERR_ARG;
    buf[t.len] = 0;
    return D1_OK;
}

/* Member `key` of the config object as an int >= 0 into *out. Returns D1_OK
   (found), 1 (absent or null, allowed when !required), or an error. */
static int d1__cfg_int(const d1__json *j, size_t obj, const char *key, int required, int *out) {
    size_t v;
    uint64_t u;
    int rc = d1__json_find(j, obj, key, &v);
    if (rc < 0) return rc;
    if (rc == 0 || j->s[v] == 'n') return required ? D1_ERR_CONFIG : 1;
    if (!d1__json_u64(j, v, &u) || u > INT_MAX) return D1_ERR_CONFIG;
    *out = (int)u;
    return D1_OK;
}
/* Member `key` (required) as a finite float > 0. */
static int d1__cfg_float(const d1__json *j, size_t obj, const char *key, float *out) {
    size_t v;
    double d;
    int rc = d1__json_find(j, obj, key, &v);
    if (rc < 0) return rc;
    if (rc == 0 || !d1__parse_number(j->s + v, d1__json_skip(j, v) - v, &d)) return D1_ERR_CONFIG;
    *out = (float)d;
    return isfinite(*out) && *out > 0.0f ? D1_OK : D1_ERR_CONFIG;
}
/* Member `key` as a bool; absent gives `dflt` when dflt >= 0, else an error. */
static int d1__cfg_bool(const d1__json *j, size_t obj, const char *key, int dflt, int *out) {
    size_t v;
    int rc = d1__json_find(j, obj, key, &v);
    if (rc < 0) return rc;
    if (rc == 0) {
        *out = dflt;
        return dflt >= 0 ? D1_OK : D1_ERR_CONFIG;
    }
    if (j->s[v] != 't' && j->s[v] != 'f') return D1_ERR_CONFIG;
    *out = j->s[v] == 't';
    return D1_OK;
}
/* Optional member `key`: absent is fine, present must be the string `want`. */
static int d1__cfg_expect(const d1__json *j, size_t obj, const char *key, const char *want) {
    size_t v;
    int rc = d1__json_find(j, obj, key, &v);
    if (rc <= 0) return rc;
    return j->s[v] == '"' && d1__json_str_is(j, v, want) ? D1_OK : D1_ERR_CONFIG;
}

/* config.json text -> a resolved config (the keys: see the API comment). */
D1_API int d1_config_from_json(d1_config *out, const char *json, size_t len) {
    d1__json j;
    d1_config c;
    size_t obj, v, it, el;
    int rc, emb = 0, bias = 0, r;
    if (!out || (!json && len)) return D1_ERR_ARG;
    if (!d1__json_check(json, len)) return D1_ERR_JSON;
    j.s = json; j.n = len;
    obj = d1__json_start(&j);
    if (j.s[obj] != '{') return D1_ERR_JSON;
    memset(&c, 0, sizeof c);
    if ((rc = d1__cfg_int(&j, obj, "d_model", 1, &c.dim)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "n_layers", 1, &c.n_layers)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "n_heads", 1, &c.n_heads)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "n_kv_heads", 0, &c.n_kv_heads)) < 0) return rc;
    if (rc == 1) c.n_kv_heads = c.n_heads;
    if ((rc = d1__cfg_int(&j, obj, "mlp_hidden_size", 1, &c.ffn_dim)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "vocab_size", 1, &c.vocab_size)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "embedding_size", 0, &emb)) < 0) return rc;
    if (rc == D1_OK && emb != c.vocab_size) return D1_ERR_CONFIG; /* no padded wte rows */
    if ((rc = d1__cfg_float(&j, obj, "rope_theta", &c.rope_theta)) != D1_OK) return rc;
    if ((rc = d1__cfg_float(&j, obj, "rms_norm_eps", &c.norm_eps)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "max_sequence_length", 1, &c.max_seq_len)) != D1_OK) return rc;
    if ((rc = d1__cfg_bool(&j, obj, "weight_tying", -1, &c.tied_embeddings)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "mask_token_id", 1, &c.mask_id)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "eos_token_id", 1, &c.eos_id)) != D1_OK) return rc;
    if ((rc = d1__cfg_int(&j, obj, "pad_token_id", 1, &c.pad_id)) != D1_OK) return rc;
    if ((rc = d1__cfg_expect(&j, obj, "model_type", "llada")) != D1_OK) return rc;
    if ((rc = d1__cfg_expect(&j, obj, "activation_type", "silu")) != D1_OK) return rc;
    if ((rc = d1__cfg_expect(&j, obj, "block_type", "llama")) != D1_OK) return rc;
    if ((rc = d1__cfg_expect(&j, obj, "layer_norm_type", "rms")) != D1_OK) return rc;
    if ((rc = d1__cfg_bool(&j, obj, "include_bias", 0, &bias)) != D1_OK) return rc;
    if (bias) return D1_ERR_CONFIG;
    r = d1__json_find(&j, obj, "architectures", &v); /* optional: a list of names */
    if (r < 0) return r;
    if (r == 1) {
        if (j.s[v] != '[') return D1_ERR_CONFIG;
        it = v + 1;
        while (d1__json_element(&j, &it, &el))
            if (j.s[el] != '"') return D1_ERR_CONFIG;
    }
    if (c.n_kv_heads == 0 || c.n_layers > (1 << 20)) return D1_ERR_CONFIG; /* 0 is not "default" here */
    if ((rc = d1_config_resolve(&c, out)) != D1_OK) return rc;
    return D1_OK;
}

/* ---- the tensor table --------------------------------------------------------
   What a safetensors file should hold: one entry per tensor, with its name,
   shape and place in the destination buffer, and what its header says (dtype,
   offsets), looked up by name through a small open-addressing hash. */
typedef struct d1__st_entry {
    char        name[96];   /* HF name, or exp_avg[_sq].<HF name>            */
    int         ndim;
    uint64_t    shape[2];
    size_t      numel;
    size_t      dst;        /* offset in floats into the destination buffer  */
    const float *src;       /* what a save writes                            */
    int         nonneg;     /* values must be >= 0 (second moments)          */
    int         shard;      /* file index in a sharded checkpoint (else 0)   */
    int         seen, dtype;
    uint64_t    begin, end; /* data_offsets, from the header                 */
} d1__st_entry;

typedef struct d1__st_table {
    d1__st_entry *e;
    int           n;
    int          *slot;     /* [n_slots] entry index or -1                   */
    size_t        n_slots;  /* a power of two >= 2n                          */
    int          *order;    /* [n] scratch: a shard's entries by offset      */
} d1__st_table;

/* FNV-1a hash of s[0..n), for the name lookup. */
static uint32_t d1__fnv1a(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}
/* Frees a table (a zeroed one too). */
static void d1__table_free(d1__st_table *t) {
    d1__free(t->e);
    d1__free(t->slot);
    d1__free(t->order);
    memset(t, 0, sizeof *t);
}
/* Room for n entries (zeroed, shard 0). */
static int d1__table_alloc(d1__st_table *t, int n) {
    size_t i;
    memset(t, 0, sizeof *t);
    t->n = n;
    t->n_slots = 16;
    while (t->n_slots < 2 * (size_t)n) t->n_slots *= 2;
    t->e = (d1__st_entry *)d1__alloc((size_t)n * sizeof(d1__st_entry));
    t->slot = (int *)d1__alloc(t->n_slots * sizeof(int));
    t->order = (int *)d1__alloc((size_t)n * sizeof(int));
    if (!t->e || !t->slot || !t->order) {
        d1__table_free(t);
        return D1_ERR_NOMEM;
    }
    memset(t->e, 0, (size_t)n * sizeof(d1__st_entry));
    for (i = 0; i < t->n_slots; i++) t->slot[i] = -1;
    return D1_OK;
}
/* The entry named s[0..n), or -1. */
static int d1__table_find(const d1__st_table *t, const char *s, size_t n) {
    size_t h = d1__fnv1a(s, n) & (t->n_slots - 1);
    for (; t->slot[h] >= 0; h = (h + 1) & (t->n_slots - 1)) {
        const d1__st_entry *e = t->e + t->slot[h];
        if (strlen(e->name) == n && !memcmp(e->name, s, n)) return t->slot[h];
    }
    return -1;
}
/* Sets entry i from a model tensor, under the name prefix + t->name. */
static void d1__table_set(d1__st_table *t, int i, const char *prefix, const d1_tensor *ti, size_t dst) {
    d1__st_entry *e = t->e + i;
    size_t lp = strlen(prefix), ln = strlen(ti->name), h;
    memcpy(e->name, prefix, lp);
    memcpy(e->name + lp, ti->name, ln + 1);
    e->ndim = ti->ndim;
    e->shape[0] = (uint64_t)ti->shape[0];
    e->shape[1] = (uint64_t)ti->shape[1];
    e->numel = ti->size;
    e->dst = dst;
    h = d1__fnv1a(e->name, lp + ln) & (t->n_slots - 1);
    while (t->slot[h] >= 0) h = (h + 1) & (t->n_slots - 1);
    t->slot[h] = i;
}

/* d1_model_tensor for a configuration alone: it reads only m->config (and
   m->state to tell an initialised model), so a view with a placeholder state
   serves. (Merge note: a d1__config_tensor(cfg, ...) would replace this.) */
static int d1__cfg_num_tensors(const d1_config *c) { /* d1_model_num_tensors of a config */
    d1_model view;
    struct d1__state placeholder;
    memset(&view, 0, sizeof view);
    view.config = *c;
    view.state = &placeholder;
    return d1_model_num_tensors(&view);
}
static int d1__cfg_tensor(const d1_config *c, int index, d1_tensor *t) { /* d1_model_tensor of a config */
    d1_model view;
    struct d1__state placeholder;
    memset(&view, 0, sizeof view);
    view.config = *c;
    view.state = &placeholder;
    return d1_model_tensor(&view, index, t);
}

/* The table of a model's tensors (config c, resolved), at their offsets in the
   parameter buffer. `budget` is the size of the JSON that must name them all:
   each name takes at least 32 bytes there, so a config that needs more tensors
   than fit is D1_ERR_MISSING before a large table is allocated for it (small
   tables are built anyway, so that the header's own error is the one seen). */
#define D1__SMALL_TABLE 4096
static int d1__table_model(d1__st_table *t, const d1_config *c, const float *params, uint64_t budget) {
    int n = d1__cfg_num_tensors(c), i, rc;
    d1_tensor ti;
    if (n > D1__SMALL_TABLE && (uint64_t)n * 32 > budget) return D1_ERR_MISSING;
    if ((rc = d1__table_alloc(t, n)) != D1_OK) return rc;
    for (i = 0; i < n; i++) {
        d1__cfg_tensor(c, i, &ti);
        d1__table_set(t, i, "", &ti, ti.offset);
        t->e[i].src = params ? params + ti.offset : NULL;
    }
    return D1_OK;
}

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
    if (n > s->cap - s->written) return D1_ERR_ARG;
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
        const d1__st_entry *e = tab->e + i;
        uint64_t bytes = (uint64_t)e->numel * d1__dtype_size(dtype);
        d1__puts(t, ",");
        d1__put_json_string(t, e->name, strlen(e->name));
        d1__puts(t, ":{\"dtype\":\"");
        d1__puts(t, d1__dtype_name(dtype));
        d1__puts(t, "\",\"shape\":[");
        for (k = 0; k < e->ndim; k++) {
            if (k) d1__puts(t, ",");
            d1__put_u64(t, e->shape[k]);
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
    for (i = 0; i < tab->n; i++) data += (uint64_t)tab->e[i].numel * d1__dtype_size(dtype);
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
    if (!t.p) return D1_ERR_NOMEM;
    d1__st_header(&t, tab, dtype, meta, n_meta);
    d1__put_u64le(len8, (uint64_t)t.len);
    rc = sk->write(sk, len8, 8);
    if (rc == D1_OK) rc = sk->write(sk, t.p, t.len);
    d1__free(t.p);
    for (i = 0; i < tab->n && rc == D1_OK; i++) rc = d1__st_write_data(sk, tab->e[i].src, tab->e[i].numel, dtype);
    return rc;
}

/* ---- safetensors: reading ----------------------------------------------------
   d1__st_prefix checks the length word, d1__st_parse the header against the
   table, d1__st_cover the offsets as a whole; only then is anything allocated
   for the data, which d1__st_read converts into place. */
#define D1__DTYPES_ALL ((1u << D1_DTYPE_F32) | (1u << D1_DTYPE_BF16) | (1u << D1_DTYPE_F16))

/* The first 8 bytes of a file of `total` bytes: header length *hn. */
static int d1__st_prefix(const unsigned char *b8, uint64_t total, uint64_t *hn) {
    if (total < 8) return D1_ERR_TRUNCATED;
    *hn = d1__get_u64le(b8);
    if (*hn == 0 || *hn > D1_SAFETENSORS_MAX_HEADER || *hn > total - 8) return D1_ERR_HEADER;
    return D1_OK;
}

/* One tensor's entry object {"dtype", "shape", "data_offsets"} at i, checked
   against e; fills e->dtype, begin, end. */
static int d1__st_parse_entry(const d1__json *j, size_t i, d1__st_entry *e, unsigned dtypes) {
    size_t it = i + 1, k, v, it2, el;
    int have_dt = 0, have_sh = 0, have_of = 0, shape_ok = 1, nd, d;
    uint64_t u, off[2];
    if (j->s[i] != '{') return D1_ERR_JSON;
    while (d1__json_member(j, &it, &k, &v)) {
        if (d1__json_str_is(j, k, "dtype")) {
            char name[8];
            if (have_dt++) return D1_ERR_DUPLICATE;
            if (j->s[v] != '"') return D1_ERR_JSON;
            if (d1__json_str(j, v, name, sizeof name) == (size_t)-1) return D1_ERR_DTYPE;
            for (d = 0; d < 3 && strcmp(name, d1__dtype_name(d)); d++) {}
            if (d == 3 || !(dtypes & (1u << d))) return D1_ERR_DTYPE;
            e->dtype = d;
        } else if (d1__json_str_is(j, k, "shape")) {
            if (have_sh++) return D1_ERR_DUPLICATE;
            if (j->s[v] != '[') return D1_ERR_JSON;
            for (it2 = v + 1, nd = 0; d1__json_element(j, &it2, &el); nd++) {
                if (!d1__json_u64(j, el, &u)) return D1_ERR_JSON;
                if (nd >= e->ndim || u != e->shape[nd]) shape_ok = 0;
            }
            if (nd != e->ndim) shape_ok = 0;
        } else if (d1__json_str_is(j, k, "data_offsets")) {
            if (have_of++) return D1_ERR_DUPLICATE;
            if (j->s[v] != '[') return D1_ERR_JSON;
            for (it2 = v + 1, nd = 0; d1__json_element(j, &it2, &el); nd++)
                if (nd >= 2 || !d1__json_u64(j, el, &off[nd])) return D1_ERR_JSON;
            if (nd != 2) return D1_ERR_JSON;
        } else {
            return D1_ERR_JSON; /* safetensors defines these three fields only */
        }
    }
    if (!have_dt || !have_sh || !have_of) return D1_ERR_JSON;
    if (!shape_ok) return D1_ERR_TENSOR_SHAPE;
    if (off[1] < off[0] || off[1] - off[0] != (uint64_t)e->numel * d1__dtype_size(e->dtype))
        return D1_ERR_OFFSETS;
    e->begin = off[0];
    e->end = off[1];
    return D1_OK;
}

/* The header h[0..hn) is one JSON object (checked before the table is built,
   so that a malformed header is reported as such). */
static int d1__st_check_header(const char *h, size_t hn) {
    if (!d1__json_check(h, hn)) return D1_ERR_JSON;
    if (h[d1__json_ws(h, hn, 0)] != '{') return D1_ERR_JSON;
    return D1_OK;
}

/* Checks the header h[0..hn) (already through d1__st_check_header) of the
   file holding shard `shard` of the table: an object whose keys are this
   shard's tensors (each once, all of them) and an optional "__metadata__"
   object of strings (*meta gets its index, or (size_t)-1). dtypes: the
   allowed dtypes as a bit mask. */
static int d1__st_parse(const char *h, size_t hn, d1__st_table *tab, int shard, unsigned dtypes, size_t *meta) {
    d1__json j;
    size_t obj, it, k, v, it2, mk, mv;
    int i, rc, have_meta = 0;
    char name[sizeof tab->e[0].name];
    if (meta) *meta = (size_t)-1;
    j.s = h; j.n = hn;
    obj = d1__json_start(&j);
    for (i = 0; i < tab->n; i++)
        if (tab->e[i].shard == shard) tab->e[i].seen = 0;
    it = obj + 1;
    while (d1__json_member(&j, &it, &k, &v)) {
        size_t len = d1__json_str(&j, k, name, sizeof name);
        if (len != (size_t)-1 && !strcmp(name, "__metadata__") && len == 12) {
            if (have_meta++) return D1_ERR_DUPLICATE;
            if (j.s[v] != '{') return D1_ERR_JSON;
            for (it2 = v + 1; d1__json_member(&j, &it2, &mk, &mv);)
                if (j.s[mv] != '"') return D1_ERR_JSON;
            if (meta) *meta = v;
            continue;
        }
        i = len == (size_t)-1 ? -1 : d1__table_find(tab, name, len);
        if (i < 0 || tab->e[i].shard != shard) return D1_ERR_UNKNOWN_TENSOR;
        if (tab->e[i].seen++) return D1_ERR_DUPLICATE;
        if ((rc = d1__st_parse_entry(&j, v, tab->e + i, dtypes)) != D1_OK) return rc;
    }
    for (i = 0; i < tab->n; i++)
        if (tab->e[i].shard == shard && !tab->e[i].seen) return D1_ERR_MISSING;
    return D1_OK;
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
    for (i = 0; i < tab->n; i++)
        if (tab->e[i].shard == shard) tab->order[n++] = i;
    d1__sort_by_begin(tab->e, tab->order, n);
    for (i = 0; i < n; i++) {
        const d1__st_entry *e = tab->e + tab->order[i];
        if (e->begin != at) return D1_ERR_OFFSETS;
        at = e->end;
    }
    *count = n;
    if (at > data_len) return D1_ERR_TRUNCATED;
    if (at < data_len) return D1_ERR_OFFSETS; /* bytes no tensor covers */
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
        if (off > s->len || n > s->len - off) return D1_ERR_TRUNCATED;
        memcpy(dst, s->mem + off, n);
        return D1_OK;
    }
#ifndef D1_NO_STDIO
    return d1__file_read_at(s, off, dst, n);
#else
    return D1_ERR_IO;
#endif
}

/* Reads the tensors of one shard, in file order (tab->order[0..count) from
   d1__st_cover), from the data section at data_start of src into base + dst:
   F32 straight into place, BF16/F16 through a fixed 8 KB buffer. Each tensor
   must be finite (and >= 0 where nonneg). */
static int d1__st_read(d1__src *src, uint64_t data_start, const d1__st_table *tab, int count, float *base) {
    unsigned char buf[8192];
    int i, rc;
    size_t k, j, chunk;
    for (i = 0; i < count; i++) {
        const d1__st_entry *e = tab->e + tab->order[i];
        float *x = base + e->dst;
        if (e->dtype == D1_DTYPE_F32) {
            if ((rc = d1__src_read(src, data_start + e->begin, x, e->numel * 4)) != D1_OK) return rc;
            if (!d1__little_endian()) d1__bswap32(x, e->numel);
        } else {
            for (k = 0; k < e->numel; k += chunk) {
                chunk = D1__MIN(e->numel - k, sizeof buf / 2);
                if ((rc = d1__src_read(src, data_start + e->begin + 2 * k, buf, 2 * chunk)) != D1_OK) return rc;
                for (j = 0; j < chunk; j++) {
                    uint16_t h = (uint16_t)(buf[2 * j] | (buf[2 * j + 1] << 8));
                    x[k + j] = e->dtype == D1_DTYPE_BF16 ? d1__bf16_to_f32(h) : d1__f16_to_f32(h);
                }
            }
        }
        for (k = 0; k < e->numel; k++)
            if (!isfinite(x[k]) || (e->nonneg && x[k] < 0.0f)) return D1_ERR_NONFINITE;
    }
    return D1_OK;
}

/* d1_model_init without the weight draw: the config (resolved), the parameter
   buffer (contents undefined), the state and the RoPE tables. (Merge note:
   d1_model_init = resolve + this + the draw.) */
static int d1__model_alloc(d1_model *m, const d1_config *c) {
    d1_model tmp;
    int i, t, half = c->dim / c->n_heads / 2;
    memset(&tmp, 0, sizeof tmp);
    tmp.config = *c;
    tmp.num_params = d1__layout_of(c).total;
    tmp.param_memory = d1__alloc_floats(tmp.num_params);
    tmp.state = (struct d1__state *)d1__alloc(sizeof(struct d1__state));
    if (tmp.state) memset(tmp.state, 0, sizeof *tmp.state);
    if (tmp.state) tmp.state->rope_cos = d1__alloc_floats(2 * (size_t)c->max_seq_len * half);
    if (!tmp.param_memory || !tmp.state || !tmp.state->rope_cos) {
        d1_model_free(&tmp);
        return D1_ERR_NOMEM;
    }
    tmp.state->pool.n = 1;
    tmp.state->cx.pool = &tmp.state->pool;
    d1__carve_params(c, tmp.param_memory, &tmp.params);
    tmp.state->rope_sin = tmp.state->rope_cos + (size_t)c->max_seq_len * half;
    for (t = 0; t < c->max_seq_len; t++)
        for (i = 0; i < half; i++) {
            double ang = (double)t * pow((double)c->rope_theta, -2.0 * i / (2.0 * half));
            tmp.state->rope_cos[(size_t)t * half + i] = (float)cos(ang);
            tmp.state->rope_sin[(size_t)t * half + i] = (float)sin(ang);
        }
    *m = tmp;
    return D1_OK;
}

/* ---- the memory API ----------------------------------------------------------- */

static int d1__model_ok(const d1_model *m) { return m && m->param_memory && m->state; }

/* The size of the blob d1_model_save_memory writes: header + data. */
D1_API size_t d1_model_save_size(const d1_model *m, int dtype) {
    d1__st_table tab;
    uint64_t size;
    if (!d1__model_ok(m) || dtype < D1_DTYPE_F32 || dtype > D1_DTYPE_F16) return 0;
    if (d1__table_model(&tab, &m->config, m->param_memory, UINT64_MAX) != D1_OK) return 0;
    size = d1__st_size(&tab, dtype, NULL, 0);
    d1__table_free(&tab);
    return size > (uint64_t)SIZE_MAX ? 0 : (size_t)size;
}

/* The model as a safetensors blob (and config.json text) in memory. */
D1_API int d1_model_save_memory(const d1_model *m, int dtype, void *buf, size_t cap, char *config_json,
                                size_t config_cap) {
    d1__st_table tab;
    d1__sink sk;
    int rc;
    if (!d1__model_ok(m) || !buf || dtype < D1_DTYPE_F32 || dtype > D1_DTYPE_F16) return D1_ERR_ARG;
    if (cap < d1_model_save_size(m, dtype)) return D1_ERR_ARG;
    if (!d1__encodable(m->param_memory, m->num_params, dtype)) return D1_ERR_NONFINITE;
    if (config_json && (rc = d1_config_to_json(&m->config, config_json, config_cap)) != D1_OK) return rc;
    if ((rc = d1__table_model(&tab, &m->config, m->param_memory, UINT64_MAX)) != D1_OK) return rc;
    memset(&sk, 0, sizeof sk);
    sk.write = d1__mem_write;
    sk.mem = (unsigned char *)buf;
    sk.cap = cap;
    rc = d1__st_write(&sk, &tab, dtype, NULL, 0);
    d1__table_free(&tab);
    return rc;
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
    uint64_t hn;
    int rc, count = 0;
    if (!m || !config_json || (!safetensors && len)) return D1_ERR_ARG;
    if ((rc = d1_config_from_json(&c, config_json, config_len)) != D1_OK) return rc;
    if ((rc = d1__st_prefix(b, len, &hn)) != D1_OK) return rc;
    if ((rc = d1__st_check_header((const char *)b + 8, (size_t)hn)) != D1_OK) return rc;
    if ((rc = d1__table_model(&tab, &c, NULL, hn)) != D1_OK) return rc;
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
        if (_fseeki64(f, (long long)off, SEEK_SET)) return D1_ERR_IO;
#else
        if (off > (uint64_t)LONG_MAX || fseek(f, (long)off, SEEK_SET)) return D1_ERR_IO;
#endif
        s->pos = off;
    }
    while (got < n) {
        r = fread((unsigned char *)dst + got, 1, n - got, f);
        if (r == 0) return ferror(f) ? D1_ERR_IO : D1_ERR_TRUNCATED;
        got += r;
    }
    s->pos += n;
    return D1_OK;
}

/* The size of an open file (leaves the position at 0). */
static int d1__file_size(FILE *f, uint64_t *size) {
#if defined(D1__WINDOWS)
    long long end;
    if (_fseeki64(f, 0, SEEK_END) || (end = _ftelli64(f)) < 0 || _fseeki64(f, 0, SEEK_SET)) return D1_ERR_IO;
#else
    long end;
    if (fseek(f, 0, SEEK_END) || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) return D1_ERR_IO;
#endif
    *size = (uint64_t)end;
    return D1_OK;
}

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

/* A whole (small) file into an allocated buffer *buf[*len]; D1_ERR_JSON if it
   is over `max` bytes. */
static int d1__read_file(const char *path, uint64_t max, char **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    d1__src src;
    uint64_t size = 0;
    int rc;
    *buf = NULL;
    if (!f) return D1_ERR_IO;
    rc = d1__file_size(f, &size);
    if (rc == D1_OK && size > max) rc = D1_ERR_JSON;
    if (rc == D1_OK && !(*buf = (char *)d1__alloc((size_t)size + 1))) rc = D1_ERR_NOMEM;
    if (rc == D1_OK) {
        memset(&src, 0, sizeof src);
        src.fp = f;
        rc = d1__file_read_at(&src, 0, *buf, (size_t)size);
        if (rc == D1_ERR_TRUNCATED) rc = D1_ERR_IO; /* it changed under us */
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
    if (n == 0) return D1_ERR_ARG;
    if (!(p = (char *)d1__alloc(n + 1))) return D1_ERR_NOMEM;
    memcpy(p, dir, n + 1);
    for (i = 1; i <= n && rc == D1_OK; i++) {
        if (p[i] != 0 && !D1__IS_SEP(p[i])) continue;
        p[i] = 0;
        {
#if defined(D1__POSIX)
            struct stat st;
            if (mkdir(p, 0777) != 0 && !(errno == EEXIST && stat(p, &st) == 0 && S_ISDIR(st.st_mode)))
                rc = D1_ERR_IO;
#else
            DWORD a;
            if (_mkdir(p) != 0 && !((a = GetFileAttributesA(p)) != INVALID_FILE_ATTRIBUTES &&
                                    (a & FILE_ATTRIBUTE_DIRECTORY)))
                rc = D1_ERR_IO;
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
        if (w <= 0) return D1_ERR_IO;
        b += w;
        n -= (size_t)w;
        s->written += (uint64_t)w;
    }
#else
    if (n && fwrite(b, 1, n, (FILE *)s->fp) != n) return D1_ERR_IO;
    s->written += n;
#endif
    if (fail) return D1_ERR_IO;
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
    if (sk.fd < 0) return D1_ERR_IO;
    rc = emit(&sk, ctx);
    if (rc == D1_OK && fsync(sk.fd) != 0) rc = D1_ERR_IO;
    if (close(sk.fd) != 0) rc2 = D1_ERR_IO;
#else
    sk.fp = fopen(path, "wb");
    if (!sk.fp) return D1_ERR_IO;
    rc = emit(&sk, ctx);
    if (rc == D1_OK && fflush((FILE *)sk.fp) != 0) rc = D1_ERR_IO;
#if defined(D1__WINDOWS)
    if (rc == D1_OK && _commit(_fileno((FILE *)sk.fp)) != 0) rc = D1_ERR_IO;
#endif
    if (fclose((FILE *)sk.fp) != 0) rc2 = D1_ERR_IO;
#endif
    if (rc == D1_OK) rc = rc2;
    if (rc != D1_OK) remove(path);
    return rc;
}

/* Renames from over to (replacing it atomically). */
static int d1__rename(const char *from, const char *to) {
#if defined(D1__WINDOWS)
    if (!MoveFileExA(from, to, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) return D1_ERR_IO;
#else
    if (rename(from, to) != 0) return D1_ERR_IO;
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
    char *final_[2] = {NULL, NULL}, *tmp[2] = {NULL, NULL}, name[64];
    int i, rc;
    if ((rc = d1__mkdirs(dir)) != D1_OK) return rc;
    for (i = 0; i < n && rc == D1_OK; i++) {
        size_t l = strlen(names[i]);
        memcpy(name, names[i], l);
        memcpy(name + l, ".tmp", 5);
        final_[i] = d1__path(dir, names[i]);
        tmp[i] = d1__path(dir, name);
        if (!final_[i] || !tmp[i]) rc = D1_ERR_NOMEM;
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

/* Saves config.json and model.safetensors into dir, atomically. */
D1_API int d1_model_save(const d1_model *m, const char *dir, int dtype) {
    static const char *const names[2] = {"model.safetensors", "config.json"};
    d1__emit_fn emit[2];
    const void *ctx[2];
    d1__save_ctx st, cj;
    d1__st_table tab;
    char config[D1_CONFIG_JSON_MAX];
    int rc;
    if (!d1__model_ok(m) || !dir || dtype < D1_DTYPE_F32 || dtype > D1_DTYPE_F16) return D1_ERR_ARG;
    if (!d1__encodable(m->param_memory, m->num_params, dtype)) return D1_ERR_NONFINITE;
    if ((rc = d1_config_to_json(&m->config, config, sizeof config)) != D1_OK) return rc;
    if ((rc = d1__table_model(&tab, &m->config, m->param_memory, UINT64_MAX)) != D1_OK) return rc;
    memset(&st, 0, sizeof st);
    st.tab = &tab;
    st.dtype = dtype;
    cj = st;
    cj.text = config;
    emit[0] = d1__emit_safetensors; ctx[0] = &st;
    emit[1] = d1__emit_text;        ctx[1] = &cj;
    rc = d1__save_files(dir, 2, names, emit, ctx);
    d1__table_free(&tab);
    return rc;
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
   the table (made by make_table(t, ctx, hn) once the header size is known,
   when make_table is not NULL). Leaves the file open for d1__st_read. */
static int d1__st_open(d1__st_file *sf, const char *path, d1__st_table *tab, int shard, unsigned dtypes,
                       int (*make_table)(d1__st_table *, const void *, uint64_t), const void *ctx) {
    unsigned char b8[8];
    d1__src src;
    uint64_t hn = 0;
    int rc;
    memset(b8, 0, sizeof b8);
    memset(sf, 0, sizeof *sf);
    if (!(sf->f = fopen(path, "rb"))) return D1_ERR_IO;
    memset(&src, 0, sizeof src);
    src.fp = sf->f;
    rc = d1__file_size(sf->f, &sf->size);
    if (rc == D1_OK && sf->size >= 8) rc = d1__file_read_at(&src, 0, b8, 8);
    if (rc == D1_OK) rc = d1__st_prefix(b8, sf->size, &hn);
    if (rc == D1_OK && !(sf->header = (char *)d1__alloc((size_t)hn + 1))) rc = D1_ERR_NOMEM;
    if (rc == D1_OK) rc = d1__file_read_at(&src, 8, sf->header, (size_t)hn);
    if (rc == D1_OK) rc = d1__st_check_header(sf->header, (size_t)hn);
    if (rc == D1_OK && make_table) rc = make_table(tab, ctx, hn);
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

/* A checkpoint directory whose config and headers are checked: the table says
   where each tensor is (shard and offsets). */
typedef struct d1__ckpt {
    d1_config    cfg;
    d1__st_table tab;
    int          n_shards;
    char        *shards;   /* [n_shards][D1__SHARD_NAME] file names */
    const char  *dir;
} d1__ckpt;
#define D1__SHARD_NAME 256
#define D1__MAX_SHARDS 4096

/* Frees what d1__ckpt_open allocated; the table maker for d1__st_open. */
static void d1__ckpt_free(d1__ckpt *ck) {
    d1__table_free(&ck->tab);
    d1__free(ck->shards);
    ck->shards = NULL;
}
static int d1__make_model_table(d1__st_table *t, const void *cfg, uint64_t budget) {
    return d1__table_model(t, (const d1_config *)cfg, NULL, budget);
}

/* A shard's file name from weight_map: a plain name in this directory. */
static int d1__shard_name_ok(const char *s, size_t n) {
    size_t i;
    if (n == 0 || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (i = 0; i < n; i++)
        if (s[i] == '/' || s[i] == '\\' || s[i] == ':' || s[i] == 0) return 0;
    return 1;
}

/* model.safetensors.index.json: {"weight_map": {name: file}, ...}. Assigns
   each table entry its shard and collects the distinct file names. */
static int d1__parse_index(d1__ckpt *ck, const char *text, size_t len) {
    d1__json j;
    size_t obj, wm, it, k, v;
    int rc, i, s, last = -1;
    char name[sizeof ck->tab.e[0].name], file[D1__SHARD_NAME];
    if (!d1__json_check(text, len)) return D1_ERR_JSON;
    j.s = text; j.n = len;
    obj = d1__json_start(&j);
    if (j.s[obj] != '{') return D1_ERR_JSON;
    if ((rc = d1__json_find(&j, obj, "weight_map", &wm)) < 0) return rc;
    if (rc == 0 || j.s[wm] != '{') return D1_ERR_JSON;
    if ((rc = d1__table_model(&ck->tab, &ck->cfg, NULL, len)) != D1_OK) return rc;
    for (i = 0; i < ck->tab.n; i++) ck->tab.e[i].shard = -1;
    ck->shards = (char *)d1__alloc((size_t)D1__MAX_SHARDS * D1__SHARD_NAME);
    if (!ck->shards) return D1_ERR_NOMEM;
    for (it = wm + 1; d1__json_member(&j, &it, &k, &v);) {
        size_t ln = d1__json_str(&j, k, name, sizeof name), lf;
        i = ln == (size_t)-1 ? -1 : d1__table_find(&ck->tab, name, ln);
        if (i < 0) return D1_ERR_UNKNOWN_TENSOR;
        if (ck->tab.e[i].shard >= 0) return D1_ERR_DUPLICATE;
        if (j.s[v] != '"' || (lf = d1__json_str(&j, v, file, sizeof file)) == (size_t)-1 ||
            !d1__shard_name_ok(file, lf))
            return D1_ERR_JSON;
        if (last >= 0 && !strcmp(ck->shards + (size_t)last * D1__SHARD_NAME, file)) {
            s = last; /* the usual case: runs of one shard */
        } else {
            for (s = 0; s < ck->n_shards && strcmp(ck->shards + (size_t)s * D1__SHARD_NAME, file); s++) {}
            if (s == ck->n_shards) {
                if (s == D1__MAX_SHARDS) return D1_ERR_JSON;
                memcpy(ck->shards + (size_t)s * D1__SHARD_NAME, file, lf + 1);
                ck->n_shards++;
            }
        }
        ck->tab.e[i].shard = last = s;
    }
    for (i = 0; i < ck->tab.n; i++)
        if (ck->tab.e[i].shard < 0) return D1_ERR_MISSING;
    return D1_OK;
}

/* Opens the checkpoint directory `path`: reads config.json, then checks the
   header of model.safetensors, or of every shard of the index. */
static int d1__ckpt_open(d1__ckpt *ck, const char *path) {
    char *p = NULL, *text = NULL;
    size_t len = 0;
    d1__st_file sf;
    int rc, s;
    FILE *probe;
    memset(ck, 0, sizeof *ck);
    ck->dir = path;
    if (!(p = d1__path(path, "config.json"))) return D1_ERR_NOMEM;
    rc = d1__read_file(p, D1_SAFETENSORS_MAX_HEADER, &text, &len);
    d1__free(p);
    if (rc == D1_OK) rc = d1_config_from_json(&ck->cfg, text, len);
    d1__free(text);
    text = NULL;
    if (rc != D1_OK) return rc;
    if (!(p = d1__path(path, "model.safetensors"))) return D1_ERR_NOMEM;
    probe = fopen(p, "rb");
    if (probe) { /* one file */
        fclose(probe);
        ck->n_shards = 1;
        rc = d1__st_open(&sf, p, &ck->tab, 0, D1__DTYPES_ALL, d1__make_model_table, &ck->cfg);
        d1__st_close(&sf);
        d1__free(p);
        return rc;
    }
    d1__free(p);
    if (!(p = d1__path(path, "model.safetensors.index.json"))) return D1_ERR_NOMEM;
    rc = d1__read_file(p, D1_SAFETENSORS_MAX_HEADER, &text, &len);
    d1__free(p);
    if (rc == D1_OK) rc = d1__parse_index(ck, text, len);
    d1__free(text);
    for (s = 0; s < ck->n_shards && rc == D1_OK; s++) {
        if (!(p = d1__path(path, ck->shards + (size_t)s * D1__SHARD_NAME))) return D1_ERR_NOMEM;
        rc = d1__st_open(&sf, p, &ck->tab, s, D1__DTYPES_ALL, NULL, NULL);
        d1__st_close(&sf);
        d1__free(p);
    }
    return rc;
}

/* Reads every shard's tensors into base (the checked headers say where). */
static int d1__ckpt_read(d1__ckpt *ck, float *base) {
    d1__st_file sf;
    char *p;
    int rc = D1_OK, s;
    for (s = 0; s < ck->n_shards && rc == D1_OK; s++) {
        const char *name = ck->shards ? ck->shards + (size_t)s * D1__SHARD_NAME : "model.safetensors";
        if (!(p = d1__path(ck->dir, name))) return D1_ERR_NOMEM;
        /* re-checked: the file may have changed since d1__ckpt_open */
        rc = d1__st_open(&sf, p, &ck->tab, s, D1__DTYPES_ALL, NULL, NULL);
        if (rc == D1_OK) rc = d1__st_load(&sf, &ck->tab, s, base);
        d1__st_close(&sf);
        d1__free(p);
    }
    return rc;
}

/* Loads a checkpoint directory: headers first, then the model, then the data. */
D1_API int d1_model_load(d1_model *m, const char *path) {
    d1__ckpt ck;
    d1_model tmp;
    int rc;
    if (!m || !path) return D1_ERR_ARG;
    rc = d1__ckpt_open(&ck, path);
    if (rc == D1_OK && (rc = d1__model_alloc(&tmp, &ck.cfg)) == D1_OK) {
        rc = d1__ckpt_read(&ck, tmp.param_memory);
        if (rc != D1_OK) d1_model_free(&tmp);
    }
    d1__ckpt_free(&ck);
    if (rc == D1_OK) *m = tmp;
    return rc;
}

/* The stored dtype of each tensor, from the headers alone. */
D1_API int d1_model_stored_dtypes(const d1_model *m, const char *path, int *dtypes) {
    d1__ckpt ck;
    int rc, i;
    if (!d1__model_ok(m) || !path || !dtypes) return D1_ERR_ARG;
    rc = d1__ckpt_open(&ck, path);
    if (rc == D1_OK && memcmp(&ck.cfg, &m->config, sizeof ck.cfg)) rc = D1_ERR_CONFIG;
    for (i = 0; rc == D1_OK && i < ck.tab.n; i++) dtypes[i] = ck.tab.e[i].dtype;
    d1__ckpt_free(&ck);
    return rc;
}

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

/* The table of the moments: exp_avg.<name> at m's offsets in [0, n), then
   exp_avg_sq.<name> at n + offset (the layout of one [2n] buffer). */
static int d1__table_adamw(d1__st_table *t, const d1_model *m, const d1_adamw *opt, uint64_t budget) {
    int nt = d1_model_num_tensors(m), i, rc;
    d1_tensor ti;
    if (nt > D1__SMALL_TABLE && (uint64_t)nt * 64 > budget) return D1_ERR_MISSING;
    if ((rc = d1__table_alloc(t, 2 * nt)) != D1_OK) return rc;
    for (i = 0; i < nt; i++) {
        d1_model_tensor(m, i, &ti);
        d1__table_set(t, i, "exp_avg.", &ti, ti.offset);
        d1__table_set(t, nt + i, "exp_avg_sq.", &ti, m->num_params + ti.offset);
        t->e[nt + i].nonneg = 1;
        if (opt) {
            t->e[i].src = opt->m + ti.offset;
            t->e[nt + i].src = opt->v + ti.offset;
        }
    }
    return D1_OK;
}
typedef struct d1__adamw_ctx { /* what d1__make_adamw_table needs */
    const d1_model *m;
} d1__adamw_ctx;
/* The table maker for d1__st_open: the moments of ctx's model. */
static int d1__make_adamw_table(d1__st_table *t, const void *ctx, uint64_t budget) {
    return d1__table_adamw(t, ((const d1__adamw_ctx *)ctx)->m, NULL, budget);
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
    int i, k, n_meta, rc;
    size_t at = 0;
    if (!dir || !d1__model_ok(m) || !opt || !opt->m || opt->n != m->num_params || opt->step < 0 ||
        n_rngs < 0 || n_rngs > 1000000 || (n_rngs && !rngs))
        return D1_ERR_ARG;
    d1__desc_get(&opt->desc, dv);
    for (i = 0; i < D1__N_DESC; i++)
        if (!isfinite(dv[i])) return D1_ERR_ARG;
    if (settings_json && !d1__json_check(settings_json, strlen(settings_json))) return D1_ERR_JSON;
    if (!d1__encodable(opt->m, 2 * opt->n, D1_DTYPE_F32)) return D1_ERR_NONFINITE;
    /* metadata: step, desc, n_rngs, rngs, settings; keys and values in strs */
    n_meta = 2 + D1__N_DESC + n_rngs + (settings_json ? 1 : 0);
    meta = (d1__meta *)d1__alloc((size_t)n_meta * sizeof(d1__meta));
    strs = (char *)d1__alloc(64 * (size_t)(D1__N_DESC + 2) + 128 * (size_t)n_rngs);
    if (!meta || !strs) {
        d1__free(meta);
        d1__free(strs);
        return D1_ERR_NOMEM;
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
    rc = d1__table_adamw(&tab, m, opt, UINT64_MAX);
    if (rc == D1_OK) {
        memset(&sc, 0, sizeof sc);
        sc.tab = &tab;
        sc.dtype = D1_DTYPE_F32;
        sc.meta = meta;
        sc.n_meta = k;
        emit[0] = d1__emit_safetensors;
        ctx[0] = &sc;
        rc = d1__save_files(dir, 1, names, emit, ctx);
        d1__table_free(&tab);
    }
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
    if (rc == 0 || (*len = d1__json_str(j, v, buf, cap)) == (size_t)-1) return D1_ERR_CONFIG;
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
    return i == n + 1;
}

/* Restores what d1_train_state_save wrote; every check comes before any change. */
D1_API int d1_train_state_load(const char *dir, const d1_model *m, d1_adamw *opt, d1_rng *rngs, int n_rngs,
                               char *settings_json, size_t settings_cap) {
    d1__st_table tab;
    d1__st_file sf;
    d1__adamw_ctx actx;
    d1__json j;
    d1_adamw_desc desc;
    d1_rng *rs = NULL;
    float dv[D1__N_DESC], *mem = NULL;
    char buf[128], *p;
    size_t len, sv = 0, slen = 0;
    uint64_t step = 0, nr = 0;
    double d = 0.0;
    int rc, i, has_settings = 0;
    if (!dir || !d1__model_ok(m) || !opt || !opt->m || opt->n != m->num_params || n_rngs < 0 ||
        (n_rngs && !rngs))
        return D1_ERR_ARG;
    memset(&tab, 0, sizeof tab);
    if (!(p = d1__path(dir, "optimizer.safetensors"))) return D1_ERR_NOMEM;
    actx.m = m;
    rc = d1__st_open(&sf, p, &tab, 0, 1u << D1_DTYPE_F32, d1__make_adamw_table, &actx);
    d1__free(p);
    if (rc == D1_OK && sf.meta == (size_t)-1) rc = D1_ERR_CONFIG;
    j.s = sf.header; j.n = sf.hn;
    /* the metadata, checked in full before anything changes */
    if (rc == D1_OK) rc = d1__meta_str(&j, sf.meta, "d1.step", buf, sizeof buf, &len);
    if (rc == D1_OK && (!d1__parse_u64(buf, len, &step) || step > (uint64_t)INT64_MAX)) rc = D1_ERR_CONFIG;
    for (i = 0; i < D1__N_DESC && rc == D1_OK; i++) {
        rc = d1__meta_str(&j, sf.meta, d1__desc_keys[i], buf, sizeof buf, &len);
        if (rc == D1_OK && !d1__parse_number(buf, len, &d)) rc = D1_ERR_CONFIG;
        dv[i] = (float)d;
    }
    if (rc == D1_OK) {
        d1__desc_set(&desc, dv);
        if (!d1__adamw_desc_ok(&desc) || !isfinite(desc.eps)) rc = D1_ERR_CONFIG;
    }
    if (rc == D1_OK) rc = d1__meta_str(&j, sf.meta, "d1.n_rngs", buf, sizeof buf, &len);
    if (rc == D1_OK && !d1__parse_u64(buf, len, &nr)) rc = D1_ERR_CONFIG;
    if (rc == D1_OK && nr != (uint64_t)n_rngs) rc = D1_ERR_ARG;
    if (rc == D1_OK && n_rngs && !(rs = (d1_rng *)d1__alloc((size_t)n_rngs * sizeof(d1_rng)))) rc = D1_ERR_NOMEM;
    for (i = 0; i < n_rngs && rc == D1_OK; i++) {
        char key[32];
        size_t kl = d1__u64_digits((uint64_t)i, key + 7);
        memcpy(key, "d1.rng.", 7);
        key[7 + kl] = 0;
        rc = d1__meta_str(&j, sf.meta, key, buf, sizeof buf, &len);
        if (rc == D1_OK && !d1__parse_rng(buf, len, rs + i)) rc = D1_ERR_CONFIG;
    }
    if (rc == D1_OK) {
        int r = d1__json_find(&j, sf.meta, "d1.settings", &sv);
        if (r < 0) rc = r;
        has_settings = r == 1;
        if (has_settings) slen = d1__json_str(&j, sv, NULL, 0);
        if (settings_json && (settings_cap == 0 || (has_settings && slen >= settings_cap))) rc = D1_ERR_ARG;
    }
    /* the moments into a new buffer, swapped in only when all went well */
    if (rc == D1_OK && !(mem = d1__alloc_floats(2 * opt->n))) rc = D1_ERR_NOMEM;
    if (rc == D1_OK) rc = d1__st_load(&sf, &tab, 0, mem);
    if (rc == D1_OK) {
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
    return rc;
}

#endif /* !D1_NO_STDIO */

#endif /* D1__CKPT_IMPLEMENTED */
#endif /* D1_IMPLEMENTATION */
