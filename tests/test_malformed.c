/* Inputs that must be refused: the malformed corpus (each a mutation of a
   valid tiny checkpoint, header_cases and config_cases as data, the computed
   ones as code) must each give their specific error and leave the model
   untouched; a sharded checkpoint's index errors; a training state that does
   not fit, or holds a NaN or a negative second moment.

   Environment:
     D1_FUZZ_CORPUS_OUT=DIR    also write the malformed corpus there as fuzzer
                               seeds (tests/data/fuzz_corpus holds a copy) */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "ckpt_common.h"

/* ---- training state ------------------------------------------------------------------------ */

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
    { /* a tied config with an untied blob (its ff_out is read as the tied head's
         alias, and differs from wte), and the other way round */
        char cfg[D1_CONFIG_JSON_MAX], cfgu[D1_CONFIG_JSON_MAX];
        d1_model t;
        blob_t bt;
        d1_config_to_json(&ct, cfg, sizeof cfg);
        expect_case("tied_config_untied_data", cfg, strlen(cfg), copy_blob(tiny_blob.n), D1_ERR_CONFIG);
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

int main(void) {
    TH_BANNER();
    corpus_out = getenv("D1_FUZZ_CORPUS_OUT");
    RUN(test_train_state_errors);
    RUN(test_malformed_corpus);
    RUN(test_sharded_errors);
    rm_tree(tmpdir());
    return th_summary();
}
