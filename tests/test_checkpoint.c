/* Checkpoints: config.json and safetensors round trips (F32 bit-exact,
   BF16/F16 within rounding; tied, untied, GQA), files and shards, exact resume
   of training at 1 and 2 threads, atomic saves under failure, a corpus of
   malformed inputs that must each give their specific error and leave the
   model untouched, and the PyTorch fixtures of tools/ckpt_roundtrip.py.

   Environment:
     D1_CKPT_EXPORT=DIR        also write DIR/f32 and DIR/bf16 (a d1.h checkpoint
                               plus d1_logits.bin) for `ckpt_roundtrip.py load`
     D1_FUZZ_CORPUS_OUT=DIR    also write the malformed corpus there as fuzzer
                               seeds (tests/data/fuzz_corpus holds a copy) */
#define D1_IMPLEMENTATION
static long d1_test_fail_after = -1; /* the atomic-save test's failure hook */
#define D1__TEST_FAIL_AFTER_BYTES d1_test_fail_after
#include "../d1.h"
#include "harness.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef D1_TEST_DATA
#define D1_TEST_DATA "tests/data"
#endif

/* ---- helpers ------------------------------------------------------------------ */


static d1_config make_cfg(int V, int C, int L, int H, int KV, int F, int T, int tied) {
    d1_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = V; c.dim = C; c.n_layers = L; c.n_heads = H; c.n_kv_heads = KV;
    c.ffn_dim = F; c.max_seq_len = T; c.mask_id = V - 1; c.eos_id = V - 2; c.pad_id = V - 3;
    c.tied_embeddings = tied; c.rope_theta = 10000.0f; c.norm_eps = 1e-6f;
    return c;
}

/* A model with random weights, norms included (init sets them to 1). */
static int make_model(d1_model *m, const d1_config *c, uint64_t seed) {
    d1_rng r;
    int i, n, rc = d1_model_init(m, c, seed);
    if (rc != D1_OK) return rc;
    d1_rng_seed(&r, seed ^ 0x55);
    n = d1_model_num_tensors(m);
    for (i = 0; i < n; i++) {
        d1_tensor t;
        size_t j;
        d1_model_tensor(m, i, &t);
        if (!t.decay)
            for (j = 0; j < t.size; j++) m->param_memory[t.offset + j] = 1.0f + 0.1f * d1_rng_normal(&r);
    }
    return D1_OK;
}

static unsigned char *save_blob(const d1_model *m, int dtype, size_t *len, char *cfg) {
    size_t n = d1_model_save_size(m, dtype);
    unsigned char *b = (unsigned char *)malloc(n ? n : 1);
    int rc = d1_model_save_memory(m, dtype, b, n, cfg, D1_CONFIG_JSON_MAX);
    *len = n;
    if (rc != D1_OK) { free(b); return NULL; }
    return b;
}

static int same_params(const d1_model *a, const d1_model *b) {
    return a->num_params == b->num_params && !memcmp(&a->config, &b->config, sizeof a->config) &&
           !memcmp(a->param_memory, b->param_memory, a->num_params * sizeof(float));
}

/* a scratch directory under $TMPDIR (or /tmp) */
static char tmp_root[512];
static const char *tmpdir(void) {
    if (!tmp_root[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(tmp_root, sizeof tmp_root, "%s/d1_test_ckpt_%d", t && *t ? t : "/tmp", (int)getpid());
        mkdir(tmp_root, 0777);
    }
    return tmp_root;
}
static void rm_tree(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char sub[1024];
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_tree(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}
static int file_exists(const char *dir, const char *name) {
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}
static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".tmp")) n++;
    }
    if (d) closedir(d);
    return n;
}
static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = (unsigned char *)malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    fclose(f);
    *len = (size_t)n;
    return b;
}
static int write_all(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* fixed tokens for logits comparisons: (7b + 3t + 1) % (V - 1) */
static void fixed_tokens(int *tok, int B, int T, int V) {
    int b, t;
    for (b = 0; b < B; b++)
        for (t = 0; t < T; t++) tok[b * T + t] = (7 * b + 3 * t + 1) % (V - 1);
}

/* ---- config.json --------------------------------------------------------------- */

static const char llada_8b_config[] =
    "{\n  \"activation_type\": \"silu\",\n  \"alibi\": false,\n  \"alibi_bias_max\": 8.0,\n"
    "  \"architectures\": [\n    \"LLaDAModelLM\"\n  ],\n  \"attention_dropout\": 0.0,\n"
    "  \"attention_layer_norm\": false,\n  \"attention_layer_norm_with_affine\": true,\n"
    "  \"auto_map\": {\n    \"AutoConfig\": \"configuration_llada.LLaDAConfig\",\n"
    "    \"AutoModelForCausalLM\": \"modeling_llada.LLaDAModelLM\",\n"
    "    \"AutoModel\": \"modeling_llada.LLaDAModelLM\"\n  },\n  \"bias_for_layer_norm\": false,\n"
    "  \"block_group_size\": 1,\n  \"block_type\": \"llama\",\n  \"d_model\": 4096,\n"
    "  \"embedding_dropout\": 0.0,\n  \"embedding_size\": 126464,\n  \"eos_token_id\": 126081,\n"
    "  \"flash_attention\": false,\n  \"include_bias\": false,\n  \"include_qkv_bias\": false,\n"
    "  \"init_cutoff_factor\": null,\n  \"init_device\": \"meta\",\n  \"init_fn\": \"mitchell\",\n"
    "  \"init_std\": 0.02,\n  \"input_emb_norm\": false,\n  \"layer_norm_type\": \"rms\",\n"
    "  \"layer_norm_with_affine\": true,\n  \"mask_token_id\": 126336,\n"
    "  \"max_sequence_length\": 4096,\n  \"mlp_hidden_size\": 12288,\n  \"mlp_ratio\": 4,\n"
    "  \"model_type\": \"llada\",\n  \"multi_query_attention\": null,\n  \"n_heads\": 32,\n"
    "  \"n_kv_heads\": 32,\n  \"n_layers\": 32,\n  \"pad_token_id\": 126081,\n"
    "  \"precision\": \"amp_bf16\",\n  \"residual_dropout\": 0.0,\n  \"rms_norm_eps\": 1e-05,\n"
    "  \"rope\": true,\n  \"rope_full_precision\": true,\n  \"rope_theta\": 500000.0,\n"
    "  \"scale_logits\": false,\n  \"transformers_version\": \"4.46.3\",\n  \"use_cache\": false,\n"
    "  \"vocab_size\": 126464,\n  \"weight_tying\": false\n}\n";

static void test_config_json(void) {
    d1_config c, back;
    char buf[D1_CONFIG_JSON_MAX];
    float thetas[4] = {10000.0f, 500000.0f, 1234.5678f, 3.3e7f}, epss[4] = {1e-5f, 1e-6f, 3.14159e-7f, 0.1f};
    int k, rc;
    for (k = 0; k < 4; k++) {
        d1_config r;
        c = make_cfg(50 + k, 32, 2 + k, 4, k % 2 ? 2 : 4, 64, 16, k % 2);
        c.rope_theta = thetas[k];
        c.norm_eps = epss[k];
        d1_config_resolve(&c, &r);
        rc = d1_config_to_json(&c, buf, sizeof buf);
        CHECK(rc == D1_OK, "to_json: %s", d1_strerror(rc));
        rc = d1_config_from_json(&back, buf, strlen(buf));
        CHECK(rc == D1_OK, "from_json: %s\n%s", d1_strerror(rc), buf);
        CHECK(!memcmp(&r, &back, sizeof r), "config %d does not round-trip exactly:\n%s", k, buf);
    }
    c = make_cfg(64, 32, 2, 4, 4, 64, 16, 0);
    c.rope_theta = 500000.0f;
    c.norm_eps = 1e-5f;
    d1_config_to_json(&c, buf, sizeof buf);
    CHECK(strstr(buf, "\"rope_theta\": 500000.0,") && strstr(buf, "\"rms_norm_eps\": 1e-05,"),
          "floats written the short way:\n%s", buf);
    CHECK(strstr(buf, "\"architectures\": [\"LLaDAModelLM\"]") && strstr(buf, "\"model_type\": \"llada\""),
          "LLaDA's descriptive keys:\n%s", buf);
    CHECK(d1_config_to_json(&c, buf, 100) == D1_ERR_ARG, "a buffer too small is refused");
    rc = d1_config_from_json(&back, llada_8b_config, strlen(llada_8b_config));
    CHECK(rc == D1_OK, "LLaDA-8B-Instruct's config.json: %s", d1_strerror(rc));
    CHECK(back.dim == 4096 && back.n_layers == 32 && back.n_heads == 32 && back.n_kv_heads == 32 &&
              back.ffn_dim == 12288 && back.vocab_size == 126464 && back.max_seq_len == 4096 &&
              back.mask_id == 126336 && back.eos_id == 126081 && back.pad_id == 126081 &&
              back.tied_embeddings == 0 && back.rope_theta == 500000.0f && back.norm_eps == 1e-5f,
          "LLaDA-8B values");
    CHECK(d1_config_num_params(&back) == 8015581184u, "LLaDA-8B has %zu parameters",
          d1_config_num_params(&back));
}

/* config.json as a real LLaDA checkpoint carries it: d1.h writes every key of
   LLaDA-8B's file; and each switch of LLaDA's config class that asks for
   other arithmetic is refused with the key named (one case per key, each a
   change of LLaDA-8B's own file). */
static void test_config_keys(void) {
    static const struct { const char *from, *to, *key; } bad[] = {
        {"\"rope\": true", "\"rope\": false", "\"rope\""},
        {"\"alibi\": false", "\"alibi\": true", "\"alibi\""},
        {"\"scale_logits\": false", "\"scale_logits\": true", "\"scale_logits\""},
        {"\"input_emb_norm\": false", "\"input_emb_norm\": true", "\"input_emb_norm\""},
        {"\"attention_layer_norm\": false", "\"attention_layer_norm\": true", "\"attention_layer_norm\""},
        {"\"layer_norm_with_affine\": true", "\"layer_norm_with_affine\": false", "\"layer_norm_with_affine\""},
        {"\"bias_for_layer_norm\": false", "\"bias_for_layer_norm\": true", "\"bias_for_layer_norm\""},
        {"\"include_bias\": false", "\"include_bias\": true", "\"include_bias\""},
        {"\"include_qkv_bias\": false", "\"include_qkv_bias\": true", "\"include_qkv_bias\""},
        {"\"multi_query_attention\": null", "\"multi_query_attention\": true", "\"multi_query_attention\""},
        {"\"activation_type\": \"silu\"", "\"activation_type\": \"gelu\"", "\"activation_type\" is \"gelu\""},
        {"\"block_type\": \"llama\"", "\"block_type\": \"sequential\"", "\"block_type\""},
        {"\"layer_norm_type\": \"rms\"", "\"layer_norm_type\": \"default\"", "\"layer_norm_type\""},
        {"\"model_type\": \"llada\"", "\"model_type\": \"llama\"", "\"model_type\""},
        {"\"embedding_size\": 126464", "\"embedding_size\": 126976", "\"embedding_size\" 126976"},
        {"{\n", "{\n  \"clip_qkv\": 8.0,\n", "\"clip_qkv\""},
        {"{\n", "{\n  \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0},\n", "\"rope_scaling\""},
        {"\"rope_theta\": 500000.0", "\"rope_theta\": -1", "\"rope_theta\" is -1"},
        {"\"n_heads\": 32", "\"n_heads\": \"32\"", "\"n_heads\" is \"32\""},
        {"\"mask_token_id\": 126336,\n", "", "\"mask_token_id\" is missing"},
    };
    static char text[sizeof llada_8b_config + 256];
    char ours[D1_CONFIG_JSON_MAX];
    d1_config c, back;
    const char *k;
    int i, n_keys = 0;
    for (i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
        const char *at = strstr(llada_8b_config, bad[i].from);
        CHECK(at != NULL, "case %d: \"%s\" not in LLaDA-8B's file", i, bad[i].from);
        if (!at) continue;
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - llada_8b_config), llada_8b_config, bad[i].to,
                 at + strlen(bad[i].from));
        CHECK(d1_config_from_json(&back, text, strlen(text)) == D1_ERR_CONFIG, "%s accepted", bad[i].to);
        CHECK(strstr(d1_last_error(), bad[i].key) != NULL, "message \"%s\" lacks %s", d1_last_error(), bad[i].key);
    }
    /* the same switches at LLaDA's values, or null, load */
    snprintf(text, sizeof text, "{\n  \"clip_qkv\": null,\n  \"rope_scaling\": null,%s", llada_8b_config + 1);
    CHECK(d1_config_from_json(&back, text, strlen(text)) == D1_OK, "nulls: %s", d1_last_error());
    /* every key of LLaDA-8B's file is in ours, and ours reads back */
    c = make_cfg(64, 32, 2, 4, 2, 64, 16, 0);
    CHECK(d1_config_to_json(&c, ours, sizeof ours) == D1_OK, "to_json: %s", d1_last_error());
    for (k = llada_8b_config; (k = strstr(k, "\n  \"")) != NULL; k += 4) {
        char key[64];
        size_t n = strcspn(k + 3, ":");
        snprintf(key, sizeof key, "\n  %.*s:", (int)n, k + 3);
        CHECK(strstr(ours, key) != NULL, "LLaDA-8B's key %s is not in ours:\n%s", key, ours);
        n_keys++;
    }
    CHECK(n_keys == 46, "%d top-level keys in LLaDA-8B's config.json", n_keys);
    CHECK(strstr(ours, "\"rope\": true") && strstr(ours, "\"attention_dropout\": 0.0") &&
              strstr(ours, "\"residual_dropout\": 0.0") && strstr(ours, "\"embedding_dropout\": 0.0") &&
              strstr(ours, "\"AutoModel\": \"modeling_llada.LLaDAModelLM\""),
          "our values:\n%s", ours);
    CHECK(d1_config_from_json(&back, ours, strlen(ours)) == D1_OK, "ours reads back: %s", d1_last_error());
}

/* The JSON reader on its own: what it accepts and what it refuses. */
static void test_json_reader(void) {
    static const char *const good[] = {
        "{}", "[]", " {\"a\" : [1, -0, 2.5e-3, 1E+2, true, false, null, \"\"]} ", "\"x\"", "0",
        "{\"\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\/\":{}}", "[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"};
    static const char *const bad[] = {
        "", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[,1]", "{a:1}", "{'a':1}", "01",
        "1.", ".5", "-", "+1", "1e", "1e+", "tru", "nul", "NaN", "Infinity", "\"abc", "\"\\x\"",
        "\"\\u12G4\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"a\tb\"", "\"\xc0\xaf\"",
        "\"\xed\xa0\x80\"", "\"\xf5\x80\x80\x80\"", "\"\xe2\x82\"", "{} {}", "[1] x", "{\"a\":1 \"b\":2}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"};
    size_t i;
    for (i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK(d1__json_check(good[i], strlen(good[i])), "accepts %s", good[i]);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!d1__json_check(bad[i], strlen(bad[i])), "refuses %s", bad[i]);
    CHECK(!d1__json_check("[1]\0", 4), "refuses a NUL after the value");
    { /* nesting: 64 levels are fine, 65 are not */
        char deep[2 * 65 + 1];
        int d;
        for (d = 64; d <= 65; d++) {
            memset(deep, '[', (size_t)d);
            memset(deep + d, ']', (size_t)d);
            deep[2 * d] = 0;
            CHECK(d1__json_check(deep, strlen(deep)) == (d <= D1__JSON_MAX_DEPTH), "depth %d", d);
        }
    }
    { /* decoding */
        d1__json j;
        char out[32];
        size_t n;
        j.s = "\"a\\u00e9\\ud83d\\ude00\\n\""; j.n = strlen(j.s);
        n = d1__json_str(&j, 0, out, sizeof out);
        CHECK(n == 8 && !memcmp(out, "a\xc3\xa9\xf0\x9f\x98\x80\n", 9), "decoded %zu bytes", n);
        CHECK(d1__json_str(&j, 0, out, 8) == (size_t)-1, "too long for its buffer");
    }
}

/* ---- round trips ------------------------------------------------------------------ */

static void roundtrip_f32(const d1_config *c) {
    d1_model a, b;
    char cfg[D1_CONFIG_JSON_MAX];
    size_t len;
    unsigned char *blob;
    int rc, tok[2 * 8];
    make_model(&a, c, 7);
    blob = save_blob(&a, D1_DTYPE_F32, &len, cfg);
    CHECK(blob != NULL, "save_memory");
    if (!blob) { d1_model_free(&a); return; }
    CHECK(len % 8 == 0 && d1__get_u64le(blob) % 8 == 0, "header padded to 8 bytes");
    rc = d1_model_load_memory(&b, cfg, strlen(cfg), blob, len);
    CHECK(rc == D1_OK, "load_memory: %s", d1_strerror(rc));
    if (rc == D1_OK) {
        CHECK(same_params(&a, &b), "F32 round trip is bit-exact");
        fixed_tokens(tok, 2, 8, c->vocab_size);
        d1_model_forward(&a, tok, 2, 8, NULL);
        d1_model_forward(&b, tok, 2, 8, NULL);
        CHECK(!memcmp(a.logits, b.logits, (size_t)16 * c->vocab_size * sizeof(float)), "same logits");
        d1_model_free(&b);
    }
    free(blob);
    d1_model_free(&a);
}
static void test_roundtrip_f32_untied_gqa(void) {
    d1_config c = make_cfg(40, 32, 2, 4, 2, 48, 16, 0);
    roundtrip_f32(&c);
}
static void test_roundtrip_f32_tied(void) {
    d1_config c = make_cfg(40, 32, 3, 4, 4, 48, 16, 1);
    roundtrip_f32(&c);
}
static void test_roundtrip_f32_mqa(void) {
    d1_config c = make_cfg(33, 24, 1, 6, 1, 20, 8, 0);
    roundtrip_f32(&c);
}

/* nearest bfloat16 (ties to even), found by comparing the two candidates */
static float ref_bf16(float x) {
    uint32_t u, lo, hi;
    float a, b;
    double da, db;
    memcpy(&u, &x, 4);
    lo = u & 0xffff0000u;
    hi = lo + 0x10000u;
    memcpy(&a, &lo, 4);
    memcpy(&b, &hi, 4);
    da = fabs((double)x - a);
    db = fabs((double)x - b);
    if (da < db || (da == db && !(lo & 0x10000u))) return a;
    return b;
}

static void test_roundtrip_bf16_f16(void) {
    d1_config c = make_cfg(40, 32, 2, 4, 2, 48, 16, 0);
    d1_model a, b;
    char cfg[D1_CONFIG_JSON_MAX];
    size_t len, i, bad = 0;
    unsigned char *blob;
    int rc;
    make_model(&a, &c, 11);
    a.param_memory[3] = 1e-7f;  /* a subnormal in F16 */
    a.param_memory[4] = -3e-9f; /* below F16's range: 0 */
    blob = save_blob(&a, D1_DTYPE_BF16, &len, cfg);
    CHECK(blob && len < d1_model_save_size(&a, D1_DTYPE_F32), "BF16 blob, half size");
    rc = blob ? d1_model_load_memory(&b, cfg, strlen(cfg), blob, len) : -99;
    CHECK(rc == D1_OK, "load BF16: %s", d1_strerror(rc));
    if (rc == D1_OK) {
        for (i = 0; i < a.num_params; i++)
            if (b.param_memory[i] != ref_bf16(a.param_memory[i])) bad++;
        CHECK(bad == 0, "%zu weights differ from their bf16 rounding", bad);
        d1_model_free(&b);
    }
    free(blob);
    blob = save_blob(&a, D1_DTYPE_F16, &len, cfg);
    rc = blob ? d1_model_load_memory(&b, cfg, strlen(cfg), blob, len) : -99;
    CHECK(rc == D1_OK, "load F16: %s", d1_strerror(rc));
    if (rc == D1_OK) {
        for (i = 0, bad = 0; i < a.num_params; i++) {
            double x = a.param_memory[i], y = b.param_memory[i];
            if (!(fabs(x - y) <= fmax(fabs(x) * (1.0 / 2048), 1.0 / (1 << 25)))) bad++;
        }
        CHECK(bad == 0, "%zu weights beyond f16 rounding", bad);
        CHECK(b.param_memory[3] != 0.0f && b.param_memory[4] == 0.0f, "subnormal kept, tiny flushed");
        d1_model_free(&b);
    }
    free(blob);
    { /* what does not fit the dtype is refused at save time */
        float keep = a.param_memory[5];
        unsigned char small[16];
        a.param_memory[5] = 70000.0f;
        CHECK(d1_model_save_memory(&a, D1_DTYPE_F16, small, 0, NULL, 0) == D1_ERR_ARG, "buffer too small");
        blob = (unsigned char *)malloc(d1_model_save_size(&a, D1_DTYPE_BF16)); /* BF16 > F16: a longer name */
        CHECK(d1_model_save_memory(&a, D1_DTYPE_F16, blob, d1_model_save_size(&a, D1_DTYPE_F16), NULL, 0) ==
                  D1_ERR_NONFINITE, "70000 overflows F16");
        CHECK(d1_model_save_memory(&a, D1_DTYPE_BF16, blob, d1_model_save_size(&a, D1_DTYPE_BF16), NULL, 0) ==
                  D1_OK, "but fits BF16");
        a.param_memory[5] = NAN;
        CHECK(d1_model_save_memory(&a, D1_DTYPE_BF16, blob, d1_model_save_size(&a, D1_DTYPE_BF16), NULL, 0) ==
                  D1_ERR_NONFINITE, "NaN refused");
        CHECK(d1_model_save_memory(&a, 3, blob, 1 << 20, NULL, 0) == D1_ERR_ARG, "bad dtype");
        a.param_memory[5] = keep;
        free(blob);
    }
    d1_model_free(&a);
}

/* ---- files -------------------------------------------------------------------------- */

static void test_file_roundtrip(void) {
    d1_config c = make_cfg(40, 32, 2, 4, 2, 48, 16, 0);
    d1_model a, b;
    char dir[600];
    int rc, dts[64], i, n;
    make_model(&a, &c, 3);
    snprintf(dir, sizeof dir, "%s/files/new/nested", tmpdir()); /* created with its parents */
    rc = d1_model_save(&a, dir, D1_DTYPE_F32);
    CHECK(rc == D1_OK, "save: %s", d1_strerror(rc));
    CHECK(file_exists(dir, "config.json") && file_exists(dir, "model.safetensors") && !count_tmp_files(dir),
          "config.json + model.safetensors, no .tmp left");
    rc = d1_model_load(&b, dir);
    CHECK(rc == D1_OK, "load: %s", d1_strerror(rc));
    if (rc == D1_OK) {
        CHECK(same_params(&a, &b), "bit-exact through files");
        n = d1_model_num_tensors(&b);
        rc = d1_model_stored_dtypes(&b, dir, dts);
        CHECK(rc == D1_OK, "stored dtypes: %s", d1_strerror(rc));
        for (i = 0; i < n; i++) CHECK(dts[i] == D1_DTYPE_F32, "tensor %d stored as %d", i, dts[i]);
        d1_model_free(&b);
    }
    rc = d1_model_save(&a, dir, D1_DTYPE_BF16); /* over the old one */
    CHECK(rc == D1_OK, "save BF16 over it: %s", d1_strerror(rc));
    rc = d1_model_load(&b, dir);
    CHECK(rc == D1_OK, "load BF16: %s", d1_strerror(rc));
    if (rc == D1_OK) {
        CHECK(b.param_memory[10] == ref_bf16(a.param_memory[10]), "BF16 values");
        CHECK(d1_model_stored_dtypes(&b, dir, dts) == D1_OK && dts[0] == D1_DTYPE_BF16, "stored as BF16");
        d1_model_free(&b);
    }
    snprintf(dir, sizeof dir, "%s/files/absent", tmpdir());
    memset(&b, 0x5a, sizeof b);
    CHECK(d1_model_load(&b, dir) == D1_ERR_NOT_FOUND, "no such checkpoint");
    CHECK(strstr(d1_last_error(), "/files/absent/config.json': No such file") != NULL, "message: %s", d1_last_error());
    d1_model_free(&a);
}

/* The failure hook stops the file at N bytes, as a full disk would. */
static void test_atomic_save(void) {
    d1_config c = make_cfg(40, 32, 2, 4, 2, 48, 16, 0);
    d1_model a, a2, b;
    char dir[600], path[700];
    long limits[5] = {0, 7, 100, 0, 0};
    size_t full = 0;
    int rc, k;
    make_model(&a, &c, 1);
    make_model(&a2, &c, 2);
    limits[3] = (long)d1_model_save_size(&a, D1_DTYPE_F32) / 2;
    limits[4] = (long)d1_model_save_size(&a, D1_DTYPE_F32) - 1;
    /* 1. the first save fails: nothing under the final names, no .tmp */
    snprintf(dir, sizeof dir, "%s/atomic", tmpdir());
    d1_test_fail_after = 100;
    rc = d1_model_save(&a, dir, D1_DTYPE_F32);
    d1_test_fail_after = -1;
    CHECK(rc == D1_ERR_IO, "a failing write is D1_ERR_IO: %s", d1_strerror(rc));
    CHECK(!file_exists(dir, "model.safetensors") && !file_exists(dir, "config.json") && !count_tmp_files(dir),
          "nothing left behind");
    /* 2. a good checkpoint, then failing saves over it at several points */
    CHECK(d1_model_save(&a, dir, D1_DTYPE_F32) == D1_OK, "good save");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    free(read_all(path, &full));
    for (k = 0; k < 5; k++) {
        d1_test_fail_after = limits[k];
        rc = d1_model_save(&a2, dir, D1_DTYPE_F32);
        d1_test_fail_after = -1;
        CHECK(rc == D1_ERR_IO, "fails at %ld bytes", limits[k]);
        CHECK(!count_tmp_files(dir), "no .tmp after failing at %ld bytes", limits[k]);
        rc = d1_model_load(&b, dir);
        CHECK(rc == D1_OK, "the previous checkpoint still loads: %s", d1_strerror(rc));
        if (rc == D1_OK) {
            CHECK(same_params(&a, &b), "and is the previous one (limit %ld)", limits[k]);
            d1_model_free(&b);
        }
    }
    /* 3. a rename that must fail: a directory sits under the final name */
    snprintf(dir, sizeof dir, "%s/atomic_rename", tmpdir());
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    mkdir(dir, 0777);
    mkdir(path, 0777);
    rc = d1_model_save(&a, dir, D1_DTYPE_F32);
    CHECK(rc == D1_ERR_IO, "rename over a directory fails: %s", d1_strerror(rc));
    CHECK(!count_tmp_files(dir) && !file_exists(dir, "config.json"), "and leaves no .tmp, no config");
    /* 4. a directory that cannot be created (a file is in the way) */
    snprintf(dir, sizeof dir, "%s/atomic/config.json/sub", tmpdir());
    CHECK(d1_model_save(&a, dir, D1_DTYPE_F32) == D1_ERR_IO, "mkdir through a file fails");
    (void)full;
    d1_model_free(&a);
    d1_model_free(&a2);
}

/* ---- exact resume ----------------------------------------------------------------------- */

#define RB 4
#define RT 16
static void train(d1_model *m, d1_adamw *opt, d1_rng *rngs, int steps) {
    int tok[RB * RT], s, i, rc;
    float loss;
    for (s = 0; s < steps; s++) {
        for (i = 0; i < RB * RT; i++) tok[i] = (int)(d1_rng_u64(&rngs[0]) % (uint64_t)(m->config.vocab_size - 1));
        d1_model_zero_grad(m);
        rc = d1_pretrain_loss(m, tok, RB, RT, NULL, NULL, &rngs[1], &loss);
        if (rc == D1_OK) rc = d1_adamw_step(opt, m, NULL);
        CHECK(rc == D1_OK, "training step: %s", d1_strerror(rc));
    }
}

static void resume(int threads, float *final_params, size_t *n_final) {
    d1_config c = make_cfg(32, 32, 2, 4, 2, 64, RT, 0);
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_model ref, m, r;
    d1_adamw oref, o, orr;
    d1_rng rref[2], rg[2], rr[2];
    char dir[600], settings[64];
    int rc, N = 3, M = 4;
    od.lr = 3e-3f;
    od.weight_decay = 0.1f;
    od.grad_clip = 0.5f;
    snprintf(dir, sizeof dir, "%s/resume%d", tmpdir(), threads);
    /* uninterrupted N + M steps */
    make_model(&ref, &c, 5);
    if (d1_model_set_threads(&ref, threads) != D1_OK) {
        printf("  (%d threads unavailable in this build: skipped)\n", threads);
        d1_model_free(&ref);
        return;
    }
    d1_adamw_init(&oref, &ref, &od);
    d1_rng_seed(&rref[0], 100);
    d1_rng_seed(&rref[1], 200);
    train(&ref, &oref, rref, N + M);
    /* N steps, save, free everything */
    make_model(&m, &c, 5);
    d1_model_set_threads(&m, threads);
    d1_adamw_init(&o, &m, &od);
    d1_rng_seed(&rg[0], 100);
    d1_rng_seed(&rg[1], 200);
    train(&m, &o, rg, N);
    rc = d1_model_save(&m, dir, D1_DTYPE_F32);
    CHECK(rc == D1_OK, "save model: %s", d1_strerror(rc));
    rc = d1_train_state_save(dir, &m, &o, rg, 2, "{\"steps_done\": 3, \"note\": \"r\\u00e9sum\\u00e9\"}");
    CHECK(rc == D1_OK, "save train state: %s", d1_strerror(rc));
    d1_adamw_free(&o);
    d1_model_free(&m);
    /* fresh structs: load, restore, continue M steps */
    rc = d1_model_load(&r, dir);
    CHECK(rc == D1_OK, "load model: %s", d1_strerror(rc));
    if (rc != D1_OK) goto done;
    d1_model_set_threads(&r, threads);
    {
        d1_adamw_desc other = d1_adamw_default_desc(); /* replaced by the saved desc */
        d1_adamw_init(&orr, &r, &other);
    }
    d1_rng_seed(&rr[0], 1);
    d1_rng_seed(&rr[1], 2);
    rc = d1_train_state_load(dir, &r, &orr, rr, 2, settings, sizeof settings);
    CHECK(rc == D1_OK, "load train state: %s", d1_strerror(rc));
    CHECK(orr.step == N && !memcmp(&orr.desc, &od, sizeof od), "step %lld and desc restored", (long long)orr.step);
    CHECK(!strcmp(settings, "{\"steps_done\": 3, \"note\": \"r\\u00e9sum\\u00e9\"}"), "settings: %s", settings);
    train(&r, &orr, rr, M);
    CHECK(same_params(&ref, &r), "resumed weights are bit-identical to the uninterrupted run (%d threads)", threads);
    CHECK(!memcmp(oref.m, orr.m, 2 * oref.n * sizeof(float)) && oref.step == orr.step, "and the moments");
    CHECK(!memcmp(rref, rr, sizeof rref), "and the RNG states");
    if (final_params) {
        memcpy(final_params, r.param_memory, r.num_params * sizeof(float));
        *n_final = r.num_params;
    }
    d1_adamw_free(&orr);
    d1_model_free(&r);
done:
    d1_adamw_free(&oref);
    d1_model_free(&ref);
}
static float resume_params[2][40000];
static size_t resume_n[2];
static void test_resume_1_thread(void) { resume(1, resume_params[0], &resume_n[0]); }
static void test_resume_2_threads(void) {
    resume(2, resume_params[1], &resume_n[1]);
    if (resume_n[0] && resume_n[1])
        CHECK(!memcmp(resume_params[0], resume_params[1], resume_n[0] * sizeof(float)),
              "1 and 2 threads train to the same bits (a promise of every build, BLIS too; here %s on %s)",
              d1_build_info(), th_cpu());
}

static void test_train_state_errors(void) {
    d1_config c = make_cfg(32, 32, 2, 4, 2, 64, RT, 0), c2 = make_cfg(32, 32, 1, 4, 2, 64, RT, 0);
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_model m, m2;
    d1_adamw o, keep, o2;
    d1_rng rg[2], rb[3], before[3];
    char dir[600], path[700], settings[9];
    float *mcopy;
    unsigned char *f;
    size_t len;
    make_model(&m, &c, 9);
    make_model(&m2, &c2, 9);
    d1_adamw_init(&o, &m, &od);
    d1_adamw_init(&o2, &m2, &od);
    d1_rng_seed(&rg[0], 1);
    d1_rng_seed(&rg[1], 2);
    train(&m, &o, rg, 2);
    snprintf(dir, sizeof dir, "%s/trainstate", tmpdir());
    CHECK(d1_train_state_save(dir, &m, &o, rg, 2, "not json") == D1_ERR_JSON, "settings must be JSON");
    CHECK(d1_train_state_save(dir, &m, &o, rg, 2, NULL) == D1_OK, "save");
    keep = o;
    mcopy = (float *)malloc(2 * o.n * sizeof(float));
    memcpy(mcopy, o.m, 2 * o.n * sizeof(float));
    memcpy(before, rg, sizeof rg);
    memcpy(rb, rg, sizeof rg);
    CHECK(d1_train_state_load(dir, &m, &o, rb, 3, NULL, 0) == D1_ERR_ARG, "n_rngs differs");
    CHECK(d1_train_state_load(dir, &m, &o, rb, 2, settings, 0) == D1_ERR_ARG, "no room for settings");
    CHECK(d1_train_state_load(dir, &m2, &o2, rb, 2, NULL, 0) == D1_ERR_UNKNOWN_TENSOR,
          "another model's optimizer (layer 1 unknown to a 1-layer model)");
    snprintf(path, sizeof path, "%s/nothing", tmpdir());
    CHECK(d1_train_state_load(path, &m, &o, rb, 2, NULL, 0) == D1_ERR_NOT_FOUND, "no file");
    /* a NaN in a moment, a negative second moment */
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    f = read_all(path, &len);
    if (f) {
        uint64_t hn = d1__get_u64le(f);
        float nan_ = NAN, neg = -1.0f;
        memcpy(f + 8 + hn + 4, &nan_, 4);
        write_all(path, f, len);
        CHECK(d1_train_state_load(dir, &m, &o, rb, 2, NULL, 0) == D1_ERR_NONFINITE, "NaN moment");
        memcpy(f + 8 + hn + 4, mcopy + 1, 4);
        memcpy(f + len - 4, &neg, 4); /* the last exp_avg_sq value */
        write_all(path, f, len);
        CHECK(d1_train_state_load(dir, &m, &o, rb, 2, NULL, 0) == D1_ERR_NONFINITE, "negative second moment");
        free(f);
    }
    CHECK(o.m == keep.m && o.step == keep.step && !memcmp(o.m, mcopy, 2 * o.n * sizeof(float)) &&
              !memcmp(&o.desc, &keep.desc, sizeof o.desc) && !memcmp(rb, before, 2 * sizeof(d1_rng)),
          "nothing changed by the failures");
    CHECK(d1_train_state_save(dir, &m, &o, rg, 2, "{\"k\": 1}") == D1_OK, "save with settings");
    CHECK(d1_train_state_load(dir, &m, &o, rb, 2, settings, sizeof settings) == D1_OK && !strcmp(settings, "{\"k\": 1}"),
          "settings that just fit");
    free(mcopy);
    d1_adamw_free(&o);
    d1_adamw_free(&o2);
    d1_model_free(&m);
    d1_model_free(&m2);
}

/* ---- the malformed corpus ------------------------------------------------------------------
   Each case is a mutation of a valid tiny checkpoint (config.json text + F32
   safetensors blob); each must fail with its own code and leave the model
   struct as it was. */

typedef struct blob_t {
    unsigned char *p;
    size_t n;
} blob_t;

static const char *corpus_out;
static int corpus_count;
static d1_model tiny;
static char tiny_cfg[D1_CONFIG_JSON_MAX];
static blob_t tiny_blob;
static char tiny_header[8192]; /* the header text, trailing spaces trimmed */
static size_t tiny_data_at;

static blob_t assemble(const char *header, const unsigned char *data, size_t data_len) {
    blob_t b;
    size_t hn = strlen(header);
    b.n = 8 + hn + data_len;
    b.p = (unsigned char *)malloc(b.n + 1);
    d1__put_u64le(b.p, (uint64_t)hn);
    memcpy(b.p + 8, header, hn);
    if (data_len) memcpy(b.p + 8 + hn, data, data_len);
    return b;
}
/* header with the first `from` replaced by `to` (CHECKs that from occurs) */
static blob_t mutate_header(const char *from, const char *to) {
    char h[16384];
    const char *at = strstr(tiny_header, from);
    CHECK(at != NULL, "mutation target %s", from);
    if (!at) return assemble(tiny_header, tiny_blob.p + tiny_data_at, tiny_blob.n - tiny_data_at);
    snprintf(h, sizeof h, "%.*s%s%s", (int)(at - tiny_header), tiny_header, to, at + strlen(from));
    return assemble(h, tiny_blob.p + tiny_data_at, tiny_blob.n - tiny_data_at);
}
static blob_t copy_blob(size_t n) {
    blob_t b;
    b.n = n;
    b.p = (unsigned char *)malloc(n + 1);
    memcpy(b.p, tiny_blob.p, D1__MIN(n, tiny_blob.n));
    if (n > tiny_blob.n) memset(b.p + tiny_blob.n, 0, n - tiny_blob.n);
    return b;
}
/* the byte range of tensor `name` in the tiny F32 blob's data */
static void range_of(const char *name, size_t *b, size_t *e) {
    int i, n = d1_model_num_tensors(&tiny);
    size_t at = 0;
    for (i = 0; i < n; i++) {
        d1_tensor t;
        d1_model_tensor(&tiny, i, &t);
        if (!strcmp(t.name, name)) { *b = at; *e = at + 4 * t.size; return; }
        at += 4 * t.size;
    }
    *b = *e = 0;
}
static void offsets_str(char *s, size_t cap, size_t b, size_t e) {
    snprintf(s, cap, "\"data_offsets\":[%zu,%zu]", b, e);
}

/* Runs one case: it must fail with `want`, and m must be untouched. */
static void expect_case(const char *name, const char *cfg, size_t cfg_len, blob_t b, int want) {
    d1_model m, before;
    int rc;
    memset(&m, 0xA5, sizeof m);
    before = m;
    rc = d1_model_load_memory(&m, cfg, cfg_len, b.p, b.n);
    CHECK(rc == want, "%s: got %d (%s), want %d (%s)", name, rc, d1_strerror(rc), want, d1_strerror(want));
    if (want != D1_OK) CHECK(!memcmp(&m, &before, sizeof m), "%s: the model struct changed", name);
    if (rc == D1_OK) d1_model_free(&m);
    corpus_count++;
    if (corpus_out) { /* fuzzer seed: [u16 LE config length][config][safetensors] */
        char path[1024];
        FILE *f;
        unsigned char len2[2];
        snprintf(path, sizeof path, "%s/%s", corpus_out, name);
        f = fopen(path, "wb");
        len2[0] = (unsigned char)(cfg_len & 255);
        len2[1] = (unsigned char)(cfg_len >> 8);
        if (f) {
            fwrite(len2, 1, 2, f);
            fwrite(cfg, 1, cfg_len, f);
            if (b.n) fwrite(b.p, 1, b.n, f);
            fclose(f);
        }
    }
    free(b.p);
}
static void expect_st(const char *name, blob_t b, int want) { expect_case(name, tiny_cfg, strlen(tiny_cfg), b, want); }
static void expect_cfg_mut(const char *name, const char *from, const char *to, int want) {
    char cfg[2048];
    const char *at = strstr(tiny_cfg, from);
    CHECK(at != NULL, "config mutation target %s", from);
    if (!at) return;
    snprintf(cfg, sizeof cfg, "%.*s%s%s", (int)(at - tiny_cfg), tiny_cfg, to, at + strlen(from));
    expect_case(name, cfg, strlen(cfg), copy_blob(tiny_blob.n), want);
}

/* The malformed corpus as data: each case is the valid tiny checkpoint with
   the first `from` of its safetensors header (header_cases) or its config.json
   (config_cases) replaced by `to`; it must fail with `want` (or load, D1_OK)
   and leave the model untouched. The cases that compute their bytes
   (truncations, length words, offsets, values) follow as code. */
typedef struct corpus_case { const char *name, *from, *to; int want; } corpus_case;
static const corpus_case header_cases[] = {
    {"header_not_object", "{\"__metadata__\"", "[{\"__metadata__\"", D1_ERR_JSON},
    {"json_unterminated_string", "\"format\":\"pt\"", "\"format\":\"pt", D1_ERR_JSON},
    {"json_trailing_comma", "\"format\":\"pt\"", "\"format\":\"pt\",", D1_ERR_JSON},
    {"json_bad_escape", "\"format\":\"pt\"", "\"format\":\"p\\x\"", D1_ERR_JSON},
    {"json_bad_unicode", "\"format\":\"pt\"", "\"format\":\"\\u12G4\"", D1_ERR_JSON},
    {"json_lone_surrogate", "\"format\":\"pt\"", "\"format\":\"\\ud800\"", D1_ERR_JSON},
    {"json_control_char", "\"format\":\"pt\"", "\"format\":\"p\tt\"", D1_ERR_JSON},
    {"json_bad_utf8", "\"format\":\"pt\"", "\"format\":\"\xc0\xaf\"", D1_ERR_JSON},
    {"json_garbage_after", "\"format\":\"pt\"}", "\"format\":\"pt\"}}", D1_ERR_JSON},
    {"dup_tensor_escaped", "\"model.transformer.ln_f.weight\"",
     "\"model.transformer.ln_f.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
     "\"model.transformer.ln_\\u0066.weight\"",
     D1_ERR_DUPLICATE},
    {"dup_field", "\"dtype\":\"F32\"", "\"dtype\":\"F32\",\"dtype\":\"F32\"", D1_ERR_DUPLICATE},
    {"dup_metadata", "{\"__metadata__\"", "{\"__metadata__\":{},\"__metadata__\"", D1_ERR_DUPLICATE},
    {"shape_mismatch", "\"shape\":[8,4]", "\"shape\":[4,8]", D1_ERR_TENSOR_SHAPE},
    {"shape_extra_dim", "\"shape\":[4]", "\"shape\":[4,1]", D1_ERR_TENSOR_SHAPE},
    {"shape_scalar", "\"shape\":[4]", "\"shape\":[]", D1_ERR_TENSOR_SHAPE},
    {"shape_negative", "\"shape\":[4]", "\"shape\":[-4]", D1_ERR_JSON},
    {"shape_fraction", "\"shape\":[4]", "\"shape\":[4.5]", D1_ERR_JSON},
    {"shape_not_array", "\"shape\":[4]", "\"shape\":4", D1_ERR_JSON},
    {"dtype_f64", "\"dtype\":\"F32\"", "\"dtype\":\"F64\"", D1_ERR_DTYPE},
    {"dtype_lowercase", "\"dtype\":\"F32\"", "\"dtype\":\"f32\"", D1_ERR_DTYPE},
    {"dtype_long", "\"dtype\":\"F32\"", "\"dtype\":\"FLOAT32_WITH_A_LONG_NAME\"", D1_ERR_DTYPE},
    {"dtype_number", "\"dtype\":\"F32\"", "\"dtype\":32", D1_ERR_JSON},
    {"entry_not_object", "{\"dtype\":\"F32\",\"shape\":[8,4]", "[{\"dtype\":\"F32\",\"shape\":[8,4]", D1_ERR_JSON},
    {"entry_missing_shape", "\"shape\":[8,4],", "", D1_ERR_JSON},
    {"entry_extra_field", "\"dtype\":\"F32\"", "\"dtype\":\"F32\",\"name\":\"x\"", D1_ERR_JSON},
    {"metadata_not_string", "\"format\":\"pt\"", "\"format\":1", D1_ERR_JSON},
    {"metadata_not_object", "{\"format\":\"pt\"}", "[\"pt\"]", D1_ERR_JSON},
    {"unknown_tensor", "model.transformer.ln_f.weight", "model.transformer.ln_g.weight", D1_ERR_UNKNOWN_TENSOR},
    {"unknown_layer", "blocks.0.ff_norm", "blocks.1.ff_norm", D1_ERR_UNKNOWN_TENSOR},
};
static const corpus_case config_cases[] = {
    {"cfg_bad_json", "\"d_model\": 4,", "\"d_model\": 4,,", D1_ERR_JSON},
    {"cfg_missing_key", "\"d_model\": 4,", "", D1_ERR_CONFIG},
    {"cfg_string_value", "\"d_model\": 4,", "\"d_model\": \"4\",", D1_ERR_CONFIG},
    {"cfg_fraction", "\"d_model\": 4,", "\"d_model\": 4.5,", D1_ERR_CONFIG},
    {"cfg_negative", "\"vocab_size\": 8,", "\"vocab_size\": -8,", D1_ERR_CONFIG},
    {"cfg_huge_int", "\"vocab_size\": 8,", "\"vocab_size\": 99999999999,", D1_ERR_CONFIG},
    {"cfg_heads_indivisible", "\"n_heads\": 2,", "\"n_heads\": 3,", D1_ERR_CONFIG},
    {"cfg_kv_zero", "\"n_kv_heads\": 1,", "\"n_kv_heads\": 0,", D1_ERR_CONFIG},
    {"cfg_embedding_size", "\"embedding_size\": 8,", "\"embedding_size\": 16,", D1_ERR_CONFIG},
    {"cfg_activation", "\"silu\"", "\"gelu\"", D1_ERR_CONFIG},
    {"cfg_bias", "\"include_bias\": false", "\"include_bias\": true", D1_ERR_CONFIG},
    {"cfg_theta_zero", "\"rope_theta\": 10000.0,", "\"rope_theta\": 0,", D1_ERR_CONFIG},
    {"cfg_theta_inf", "\"rope_theta\": 10000.0,", "\"rope_theta\": 1e999,", D1_ERR_CONFIG},
    {"cfg_mask_id_range", "\"mask_token_id\": 7,", "\"mask_token_id\": 8,", D1_ERR_CONFIG},
    {"cfg_tying_type", "\"weight_tying\": false", "\"weight_tying\": 0", D1_ERR_CONFIG},
    {"cfg_dup_key", "\"d_model\": 4,", "\"d_model\": 4, \"d_model\": 4,", D1_ERR_DUPLICATE},
    {"cfg_dup_key_escaped", "\"d_model\": 4,", "\"d_model\": 4, \"d_mod\\u0065l\": 4,", D1_ERR_DUPLICATE},
    {"cfg_shape_mismatch", "\"mlp_hidden_size\": 8,", "\"mlp_hidden_size\": 6,", D1_ERR_TENSOR_SHAPE},
};

static void test_malformed_corpus(void) {
    d1_config c = make_cfg(8, 4, 1, 2, 1, 8, 8, 0), ct = c;
    size_t hn, b0, e0, b1, e1;
    char from[128], to[512], deep[160];
    blob_t b;
    int i;
    make_model(&tiny, &c, 21);
    tiny_blob.p = save_blob(&tiny, D1_DTYPE_F32, &tiny_blob.n, tiny_cfg);
    hn = (size_t)d1__get_u64le(tiny_blob.p);
    CHECK(hn < sizeof tiny_header, "tiny header %zu bytes", hn);
    memcpy(tiny_header, tiny_blob.p + 8, hn);
    while (hn && tiny_header[hn - 1] == ' ') hn--;
    tiny_header[hn] = 0;
    tiny_data_at = 8 + (size_t)d1__get_u64le(tiny_blob.p);
    { /* the valid one loads (and seeds the fuzzer too) */
        d1_model m;
        CHECK(d1_model_load_memory(&m, tiny_cfg, strlen(tiny_cfg), tiny_blob.p, tiny_blob.n) == D1_OK, "valid");
        d1_model_free(&m);
        expect_st("valid_f32", copy_blob(tiny_blob.n), D1_OK);
        {
            char cfg[D1_CONFIG_JSON_MAX];
            blob_t bb;
            bb.p = save_blob(&tiny, D1_DTYPE_BF16, &bb.n, cfg);
            expect_case("valid_bf16", cfg, strlen(cfg), bb, D1_OK);
        }
    }
    /* truncation and the length word */
    expect_st("empty", copy_blob(0), D1_ERR_TRUNCATED);
    expect_st("trunc_7", copy_blob(7), D1_ERR_TRUNCATED);
    expect_st("trunc_in_header", copy_blob(8 + hn / 2), D1_ERR_HEADER);
    expect_st("trunc_at_data", copy_blob(tiny_data_at), D1_ERR_TRUNCATED);
    expect_st("trunc_mid_data", copy_blob(tiny_data_at + (tiny_blob.n - tiny_data_at) / 2), D1_ERR_TRUNCATED);
    expect_st("trunc_last_byte", copy_blob(tiny_blob.n - 1), D1_ERR_TRUNCATED);
    expect_st("trailing_byte", copy_blob(tiny_blob.n + 1), D1_ERR_OFFSETS);
    b = copy_blob(tiny_blob.n); d1__put_u64le(b.p, 0);
    expect_st("header_len_0", b, D1_ERR_HEADER);
    b = copy_blob(tiny_blob.n); d1__put_u64le(b.p, 100000001);
    expect_st("header_len_over_100MB", b, D1_ERR_HEADER);
    b = copy_blob(tiny_blob.n); d1__put_u64le(b.p, (uint64_t)tiny_blob.n - 7);
    expect_st("header_len_past_eof", b, D1_ERR_HEADER);
    b = copy_blob(tiny_blob.n); d1__put_u64le(b.p, UINT64_MAX);
    expect_st("header_len_u64_max", b, D1_ERR_HEADER);
    /* the header cases of the table, then bad JSON made byte by byte */
    for (i = 0; i < (int)(sizeof header_cases / sizeof header_cases[0]); i++)
        expect_st(header_cases[i].name, mutate_header(header_cases[i].from, header_cases[i].to), header_cases[i].want);
    b = assemble("[1,2,3]", tiny_blob.p + tiny_data_at, tiny_blob.n - tiny_data_at);
    expect_st("header_array", b, D1_ERR_JSON);
    b = copy_blob(tiny_blob.n); /* a NUL inside a string */
    b.p[8 + (size_t)(strstr(tiny_header, "\"pt\"") - tiny_header) + 1] = 0;
    expect_st("json_nul_in_string", b, D1_ERR_JSON);
    b = assemble(tiny_header, NULL, 0); /* a NUL after the object, inside the header */
    b.p = (unsigned char *)realloc(b.p, b.n + 1 + tiny_blob.n - tiny_data_at);
    b.p[b.n] = 0;
    memcpy(b.p + b.n + 1, tiny_blob.p + tiny_data_at, tiny_blob.n - tiny_data_at);
    d1__put_u64le(b.p, (uint64_t)(b.n - 8 + 1));
    b.n += 1 + tiny_blob.n - tiny_data_at;
    expect_st("json_nul_after", b, D1_ERR_JSON);
    for (i = 0; i < 70; i++) deep[i] = '[';
    for (i = 0; i < 70; i++) deep[70 + i] = ']';
    deep[140] = 0;
    snprintf(to, sizeof to, "\"__metadata__\":{\"deep\":\"x\"},\"x\":%s,\"y\"", deep);
    expect_st("json_too_deep", mutate_header("\"__metadata__\"", to), D1_ERR_JSON);
    /* duplicates */
    range_of("model.transformer.ln_f.weight", &b0, &e0);
    offsets_str(from, sizeof from, b0, e0);
    snprintf(to, sizeof to, "{\"model.transformer.ln_f.weight\":{\"dtype\":\"F32\",\"shape\":[4],%s},", from);
    expect_st("dup_tensor", mutate_header("{", to), D1_ERR_DUPLICATE);
    /* offsets */
    range_of("model.transformer.ln_f.weight", &b0, &e0);
    offsets_str(from, sizeof from, b0, e0);
    offsets_str(to, sizeof to, b0 - 4, e0 - 4);
    expect_st("offsets_overlap", mutate_header(from, to), D1_ERR_OFFSETS);
    offsets_str(to, sizeof to, b0 + 4, e0 + 4);
    expect_st("offsets_gap", mutate_header(from, to), D1_ERR_OFFSETS);
    offsets_str(to, sizeof to, e0, b0);
    expect_st("offsets_end_before_begin", mutate_header(from, to), D1_ERR_OFFSETS);
    offsets_str(to, sizeof to, b0, e0 + 4);
    expect_st("offsets_wrong_size", mutate_header(from, to), D1_ERR_OFFSETS);
    range_of("model.transformer.ff_out.weight", &b1, &e1); /* the last tensor */
    offsets_str(from, sizeof from, b1, e1);
    offsets_str(to, sizeof to, b1 + 1000, e1 + 1000);
    expect_st("offsets_past_end", mutate_header(from, to), D1_ERR_OFFSETS);
    snprintf(to, sizeof to, "\"data_offsets\":[%zu,18446744073709551616]", b1);
    expect_st("offsets_over_u64", mutate_header(from, to), D1_ERR_JSON);
    snprintf(to, sizeof to, "\"data_offsets\":[%zu,%zu,%zu]", b1, e1, e1);
    expect_st("offsets_three", mutate_header(from, to), D1_ERR_JSON);
    snprintf(to, sizeof to, "\"data_offsets\":[%zu.0,%zu]", b1, e1);
    expect_st("offsets_float", mutate_header(from, to), D1_ERR_JSON);
    expect_st("offsets_string", mutate_header(from, "\"data_offsets\":\"0\""), D1_ERR_JSON);
    /* which tensors */
    range_of("model.transformer.ln_f.weight", &b0, &e0);
    offsets_str(from, sizeof from, b0, e0);
    snprintf(to, sizeof to, ",\"model.transformer.ln_f.weight\":{\"dtype\":\"F32\",\"shape\":[4],%s}", from);
    expect_st("missing_tensor", mutate_header(to, ""), D1_ERR_MISSING);
    ct.tied_embeddings = 1;
    { /* a tied config with an untied blob, and the other way round */
        char cfg[D1_CONFIG_JSON_MAX], cfgu[D1_CONFIG_JSON_MAX];
        d1_model t;
        blob_t bt;
        d1_config_to_json(&ct, cfg, sizeof cfg);
        expect_case("tied_config_untied_data", cfg, strlen(cfg), copy_blob(tiny_blob.n), D1_ERR_UNKNOWN_TENSOR);
        make_model(&t, &ct, 4);
        bt.p = save_blob(&t, D1_DTYPE_F32, &bt.n, cfg);
        strcpy(cfgu, tiny_cfg);
        expect_case("untied_config_tied_data", cfgu, strlen(cfgu), bt, D1_ERR_MISSING);
        d1_model_free(&t);
    }
    { /* long strings: names, keys and values past every fixed buffer of the reader */
        char longs[400], big[1024];
        memset(longs, 'x', 300);
        longs[300] = 0;
        snprintf(big, sizeof big, "model.transformer.%s", longs);
        expect_st("unknown_tensor_long_name", mutate_header("model.transformer.ln_f.weight", big),
                  D1_ERR_UNKNOWN_TENSOR);
        snprintf(big, sizeof big, "\"format\":\"pt\",\"%s\":\"%s\"", longs, longs);
        expect_st("metadata_long", mutate_header("\"format\":\"pt\"", big), D1_OK);
        snprintf(big, sizeof big, "\"dtype\":\"%s\"", longs);
        expect_st("dtype_300_chars", mutate_header("\"dtype\":\"F32\"", big), D1_ERR_DTYPE);
        snprintf(big, sizeof big, "\"%s\": 1, \"d_model\": 4,", longs);
        expect_cfg_mut("cfg_long_key", "\"d_model\": 4,", big, D1_OK);
        snprintf(big, sizeof big, "\"model_type\": \"%s\",", longs);
        expect_cfg_mut("cfg_long_value", "\"model_type\": \"llada\",", big, D1_ERR_CONFIG);
    }
    /* values */
    b = copy_blob(tiny_blob.n);
    { float nan_ = NAN; memcpy(b.p + tiny_data_at + 8, &nan_, 4); }
    expect_st("nan_weight_f32", b, D1_ERR_NONFINITE);
    b = copy_blob(tiny_blob.n);
    { float inf_ = -INFINITY; memcpy(b.p + b.n - 4, &inf_, 4); }
    expect_st("inf_weight_f32", b, D1_ERR_NONFINITE);
    {
        char cfg[D1_CONFIG_JSON_MAX];
        blob_t bb;
        bb.p = save_blob(&tiny, D1_DTYPE_BF16, &bb.n, cfg);
        bb.p[bb.n - 2] = 0x80; bb.p[bb.n - 1] = 0x7f; /* +inf in BF16 */
        expect_case("inf_weight_bf16", cfg, strlen(cfg), bb, D1_ERR_NONFINITE);
    }
    /* config.json: the table's cases */
    for (i = 0; i < (int)(sizeof config_cases / sizeof config_cases[0]); i++)
        expect_cfg_mut(config_cases[i].name, config_cases[i].from, config_cases[i].to, config_cases[i].want);
    expect_case("cfg_not_object", "[1]", 3, copy_blob(tiny_blob.n), D1_ERR_JSON);
    expect_case("cfg_empty", "", 0, copy_blob(tiny_blob.n), D1_ERR_JSON);
    printf("  %d malformed and valid inputs checked%s%s\n", corpus_count, corpus_out ? ", written to " : "",
           corpus_out ? corpus_out : "");
    CHECK(corpus_count >= 30, "corpus of %d", corpus_count);
    free(tiny_blob.p);
    d1_model_free(&tiny);
}

/* Sharded checkpoints and index errors (from the committed PyTorch fixture). */
static void copy_file(const char *from_dir, const char *to_dir, const char *name) {
    char a[1024], b[1024];
    size_t n;
    unsigned char *p;
    snprintf(a, sizeof a, "%s/%s", from_dir, name);
    snprintf(b, sizeof b, "%s/%s", to_dir, name);
    p = read_all(a, &n);
    CHECK(p && write_all(b, p, n), "copy %s", a);
    free(p);
}
static void test_sharded_errors(void) {
    const char *src = D1_TEST_DATA "/ckpt_torch_sharded";
    char dir[600], path[700];
    d1_model m, before, ref;
    int rc;
    static const char *const files[] = {"config.json", "model-00001-of-00003.safetensors",
                                        "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"};
    size_t i;
    rc = d1_model_load(&ref, src);
    CHECK(rc == D1_OK, "the sharded fixture loads: %s", d1_strerror(rc));
    if (rc != D1_OK) return;
    snprintf(dir, sizeof dir, "%s/sharded", tmpdir());
    mkdir(dir, 0777);
    for (i = 0; i < 4; i++) copy_file(src, dir, files[i]);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
#define INDEX_CASE(text, want)                                                                  \
    do {                                                                                        \
        write_all(path, text, strlen(text));                                                    \
        memset(&m, 0x3c, sizeof m);                                                             \
        before = m;                                                                             \
        rc = d1_model_load(&m, dir);                                                            \
        CHECK(rc == (want), "%s: got %s", #want, d1_strerror(rc));                                   \
        if ((int)(want) != 0) CHECK(!memcmp(&m, &before, sizeof m), "model untouched");         \
        if (rc == D1_OK) d1_model_free(&m);                                                     \
    } while (0)
    {
        size_t n;
        char *idx;
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", src);
        idx = (char *)read_all(path, &n);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (idx) {
            char *t, *at;
            idx[n] = 0;
            INDEX_CASE(idx, D1_OK);
            if (corpus_out) { /* fuzzer seeds for the index parser: [u16 n][config][index.json] */
                size_t cl;
                char *cfgt, seed[1024];
                FILE *sf;
                snprintf(seed, sizeof seed, "%s/config.json", src);
                cfgt = (char *)read_all(seed, &cl);
                snprintf(seed, sizeof seed, "%s/index_fixture", corpus_out);
                sf = fopen(seed, "wb");
                if (sf && cfgt) {
                    fputc((int)(cl & 255), sf);
                    fputc((int)(cl >> 8), sf);
                    fwrite(cfgt, 1, cl, sf);
                    fwrite(idx, 1, n, sf);
                }
                if (sf) fclose(sf);
                free(cfgt);
            }
            rc = d1_model_load(&m, dir);
            if (rc == D1_OK) {
                CHECK(same_params(&m, &ref), "same model");
                d1_model_free(&m);
            }
            t = (char *)malloc(n + 64);
            /* a tensor mapped to a shard that does not hold it: missing there */
            strcpy(t, idx);
            at = strstr(t, "\"model.transformer.wte.weight\": \"model-00001-of-00003.safetensors\"");
            CHECK(at != NULL, "fixture index layout");
            if (at) {
                memcpy(strstr(at, "00001-of"), "00002", 5);
                INDEX_CASE(t, D1_ERR_MISSING);
            }
            /* a path outside the directory */
            strcpy(t, idx);
            at = strstr(t, "\"model-00003-of-00003.safetensors\"");
            if (at) {
                memcpy(at + 1, "../00003", 8);
                INDEX_CASE(t, D1_ERR_JSON);
            }
            free(t);
            free(idx);
        }
    }
    INDEX_CASE("{\"metadata\": {}}", D1_ERR_JSON);
    INDEX_CASE("{\"weight_map\": []}", D1_ERR_JSON);
    INDEX_CASE("{\"weight_map\": {\"model.transformer.wte.weight\": \"model-00001-of-00003.safetensors\"}}",
               D1_ERR_MISSING);
    INDEX_CASE("{\"weight_map\": {\"model.transformer.nope\": \"model-00001-of-00003.safetensors\"}}",
               D1_ERR_UNKNOWN_TENSOR);
    INDEX_CASE("{\"weight_map\": {\"model.transformer.wte.weight\": \"a\", \"model.transformer.wte.weight\": \"a\"}}",
               D1_ERR_DUPLICATE);
    INDEX_CASE("{\"weight_map\": {", D1_ERR_JSON);
#undef INDEX_CASE
    d1_model_free(&ref);
}

/* ---- PyTorch fixtures (tools/ckpt_roundtrip.py write) ----------------------------------------- */

/* ref_logits.bin: "D1RL", int32 B, T, V, tokens int32 [B*T], logits float32 [B*T*V] */
static void check_torch_fixture(const char *name, double tol) {
    char dir[512], path[600];
    unsigned char *f;
    size_t len;
    int32_t hdr[3];
    d1_model m;
    int rc;
    snprintf(dir, sizeof dir, "%s/%s", D1_TEST_DATA, name);
    snprintf(path, sizeof path, "%s/ref_logits.bin", dir);
    f = read_all(path, &len);
    CHECK(f != NULL, "%s missing (tools/ckpt_roundtrip.py write)", path);
    if (!f) return;
    memcpy(hdr, f + 4, 12);
    CHECK(!memcmp(f, "D1RL", 4) && len == 16 + 4 * (size_t)hdr[0] * hdr[1] * (1 + (size_t)hdr[2]), "format");
    rc = d1_model_load(&m, dir);
    CHECK(rc == D1_OK, "load %s: %s", dir, d1_strerror(rc));
    if (rc == D1_OK) {
        int B = hdr[0], T = hdr[1], V = hdr[2], i;
        int *tok = (int *)malloc((size_t)B * T * sizeof(int));
        float *ref = (float *)malloc((size_t)B * T * V * sizeof(float));
        double *refd = (double *)malloc((size_t)B * T * V * sizeof(double)), e;
        memcpy(tok, f + 16, (size_t)B * T * 4);
        memcpy(ref, f + 16 + (size_t)B * T * 4, (size_t)B * T * V * 4);
        for (i = 0; i < B * T * V; i++) refd[i] = ref[i];
        CHECK(V == m.config.vocab_size, "V");
        rc = d1_model_forward(&m, tok, B, T, NULL);
        CHECK(rc == D1_OK, "forward: %s", d1_strerror(rc));
        e = th_rel_err(m.logits, refd, (size_t)B * T * V, 1e-6);
        CHECK(e <= tol, "%s: logits rel err %.3g > %.1g", name, e, tol);
        printf("  %s: logits vs PyTorch rel err %.2g\n", name, e);
        free(tok); free(ref); free(refd);
        d1_model_free(&m);
    }
    free(f);
}
static void test_torch_f32(void) { check_torch_fixture("ckpt_torch_f32", 1e-5); }
static void test_torch_bf16(void) { check_torch_fixture("ckpt_torch_bf16", 1e-5); }
static void test_torch_sharded(void) { check_torch_fixture("ckpt_torch_sharded", 1e-5); }

/* D1_CKPT_EXPORT=DIR: a d1.h checkpoint for PyTorch to load and check. */
static void export_one(const char *root, const char *sub, int dtype) {
    d1_config c = make_cfg(48, 32, 2, 4, 2, 64, 16, 0);
    d1_model a, b;
    char dir[600], path[700];
    int tok[2 * 12], rc;
    int32_t hdr[3] = {2, 12, 48};
    FILE *f;
    make_model(&a, &c, 77);
    snprintf(dir, sizeof dir, "%s/%s", root, sub);
    rc = d1_model_save(&a, dir, dtype);
    CHECK(rc == D1_OK, "export save: %s", d1_strerror(rc));
    rc = d1_model_load(&b, dir); /* logits of what was stored (bf16-rounded for BF16) */
    CHECK(rc == D1_OK, "export reload: %s", d1_strerror(rc));
    if (rc != D1_OK) { d1_model_free(&a); return; }
    fixed_tokens(tok, 2, 12, 48);
    d1_model_forward(&b, tok, 2, 12, NULL);
    snprintf(path, sizeof path, "%s/d1_logits.bin", dir);
    f = fopen(path, "wb");
    CHECK(f != NULL, "open %s", path);
    if (f) {
        fwrite("D1RL", 1, 4, f);
        fwrite(hdr, 4, 3, f);
        fwrite(tok, 4, 24, f);
        fwrite(b.logits, 4, (size_t)24 * 48, f);
        fclose(f);
    }
    printf("  exported %s\n", dir);
    d1_model_free(&a);
    d1_model_free(&b);
}
static void test_export_for_torch(void) {
    const char *root = getenv("D1_CKPT_EXPORT");
    if (!root || !*root) return;
    export_one(root, "f32", D1_DTYPE_F32);
    export_one(root, "bf16", D1_DTYPE_BF16);
}

int main(void) {
    TH_BANNER();
    corpus_out = getenv("D1_FUZZ_CORPUS_OUT");
    RUN(test_config_json);
    RUN(test_config_keys);
    RUN(test_json_reader);
    RUN(test_roundtrip_f32_untied_gqa);
    RUN(test_roundtrip_f32_tied);
    RUN(test_roundtrip_f32_mqa);
    RUN(test_roundtrip_bf16_f16);
    RUN(test_file_roundtrip);
    RUN(test_atomic_save);
    RUN(test_resume_1_thread);
    RUN(test_resume_2_threads);
    RUN(test_train_state_errors);
    RUN(test_malformed_corpus);
    RUN(test_sharded_errors);
    RUN(test_torch_f32);
    RUN(test_torch_bf16);
    RUN(test_torch_sharded);
    RUN(test_export_for_torch);
    rm_tree(tmpdir());
    return th_summary();
}
