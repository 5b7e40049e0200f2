// llama_common.h - what tools/llama_logits_check.cpp and tools/llama_sampler_check.cpp share:
// the id list of the command line, a clock, and llama.cpp set up as d1.h computes (one
// sequence of T tokens in one batch, non-causal attention, flash attention off, one thread).
#ifndef D1_LLAMA_COMMON_H
#define D1_LLAMA_COMMON_H
#include "llama.h"
#include <chrono>
#include <cstdlib>
#include <vector>

static double ms_now() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// "1,2,3" -> {1, 2, 3}; false on anything that is not a comma-separated list of integers
static bool parse_ids(const char *s, std::vector<int> &out) {
    out.clear();
    while (*s) {
        char *end;
        long v = std::strtol(s, &end, 10);
        if (end == s || (*end && *end != ',')) return false;
        out.push_back((int)v);
        s = *end == ',' ? end + 1 : end;
    }
    return !out.empty();
}

// a context for one non-causal pass over T positions, one thread; NULL on failure
static llama_context *noncausal_context(llama_model *lm, int T) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)T; cp.n_batch = (uint32_t)T; cp.n_ubatch = (uint32_t)T; cp.n_threads = 1; cp.n_threads_batch = 1;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context *ctx = llama_init_from_model(lm, cp);
    if (ctx) llama_set_causal_attn(ctx, false);
    return ctx;
}

// a batch of positions 0..T-1 of sequence 0, every position's logits kept; tokens (may be
// NULL: the caller fills b.token before each decode)
static llama_batch positions_batch(int T, const int *tokens) {
    llama_batch b = llama_batch_init(T, 0, 1);
    for (int i = 0; i < T; i++) {
        b.token[i] = tokens ? tokens[i] : 0; b.pos[i] = i; b.n_seq_id[i] = 1; b.seq_id[i][0] = 0; b.logits[i] = 1;
    }
    b.n_tokens = T;
    return b;
}
#endif
