/* config.json and its JSON reader: d1.h's config written and read back
   exactly, LLaDA-8B's own file loaded unchanged, every key of it written,
   each switch that asks for other arithmetic refused with the key named, and
   the JSON reader's accepts and refusals on its own. */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "ckpt_common.h"

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

int main(void) {
    TH_BANNER();
    RUN(test_config_json);
    RUN(test_config_keys);
    RUN(test_json_reader);
    return th_summary();
}
