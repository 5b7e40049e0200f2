/* Checkpoints: safetensors round trips (F32 bit-exact, BF16/F16 within
   rounding; tied, untied, GQA, MQA), in memory and through files, and the
   PyTorch fixtures of tools/ckpt_roundtrip.py. The rest of the checkpoint
   tests: test_config.c (config.json, the JSON reader), test_malformed.c (the
   malformed corpus, shard index and training-state errors), test_resume.c
   (atomic saves, exact resume); their helpers are in ckpt_common.h.

   Environment:
     D1_CKPT_EXPORT=DIR        also write DIR/f32 and DIR/bf16 (a d1.h checkpoint
                               plus d1_logits.bin) for `ckpt_roundtrip.py load` */
#define D1_IMPLEMENTATION
#include "../d1.h"
#include "ckpt_common.h"

/* fixed tokens for logits comparisons: (7b + 3t + 1) % (V - 1) */
static void fixed_tokens(int *tok, int B, int T, int V) {
    int b, t;
    for (b = 0; b < B; b++)
        for (t = 0; t < T; t++) tok[b * T + t] = (7 * b + 3 * t + 1) % (V - 1);
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

/* A tied model saved as PyTorch's tie_weights() leaves it: ff_out beside wte,
   the same values. It loads (memory, a directory, a sharded directory whose
   index names the alias), in F32 and BF16, to the tied model's bits; an
   ff_out that differs in one value is D1_ERR_CONFIG, naming both tensors;
   with an untied config.json the same file loads as it always did. */
static void alias_model(d1_model *u, const d1_model *t, float bump) {
    d1_config cu = t->config;
    d1_tensor wte, head;
    cu.tied_embeddings = 0;
    CHECK(d1_model_init(u, &cu, 1) == D1_OK, "untied twin");
    d1_model_tensor(t, 0, &wte);
    d1_model_tensor(u, d1_model_num_tensors(u) - 1, &head);
    memcpy(u->param_memory, t->param_memory, t->num_params * sizeof(float)); /* the tied layout is a prefix */
    memcpy(u->param_memory + head.offset, t->param_memory + wte.offset, wte.size * sizeof(float));
    u->param_memory[head.offset + 7] += bump;
}
static void test_tied_alias(void) {
    d1_config c = make_cfg(40, 32, 2, 4, 2, 48, 16, 1);
    d1_model t, u, b, ref;
    char cfg_tied[D1_CONFIG_JSON_MAX], cfg_u[D1_CONFIG_JSON_MAX], dir[600], path[700];
    size_t len, lt;
    unsigned char *blob, *tblob;
    int dtype, rc;
    make_model(&t, &c, 5);
    tblob = save_blob(&t, D1_DTYPE_F32, &lt, cfg_tied);
    CHECK(tblob != NULL, "tied save");
    for (dtype = D1_DTYPE_F32; dtype <= D1_DTYPE_BF16; dtype++) {
        alias_model(&u, &t, 0.0f);
        blob = save_blob(&u, dtype, &len, cfg_u);
        rc = d1_model_load_memory(&b, cfg_tied, strlen(cfg_tied), blob, len);
        CHECK(rc == D1_OK, "tied config + ff_out alias (dtype %d): %s", dtype, d1_last_error());
        if (rc == D1_OK) {
            free(tblob);
            tblob = save_blob(&t, dtype, &lt, NULL);
            CHECK(d1_model_load_memory(&ref, cfg_tied, strlen(cfg_tied), tblob, lt) == D1_OK, "tied load");
            CHECK(same_params(&b, &ref), "the alias changes nothing (dtype %d)", dtype);
            d1_model_free(&b);
            d1_model_free(&ref);
        }
        CHECK(d1_model_load_memory(&b, cfg_u, strlen(cfg_u), blob, len) == D1_OK, "untied loads it as ever");
        d1_model_free(&b);
        free(blob);
        d1_model_free(&u);
        alias_model(&u, &t, 1.0f); /* one value off */
        blob = save_blob(&u, dtype, &len, NULL);
        memset(&b, 0x5a, sizeof b);
        CHECK(d1_model_load_memory(&b, cfg_tied, strlen(cfg_tied), blob, len) == D1_ERR_CONFIG &&
                  strstr(d1_last_error(), "ff_out.weight differs from model.transformer.wte.weight") != NULL,
              "a different ff_out is refused: %s", d1_last_error());
        free(blob);
        d1_model_free(&u);
    }
    /* a directory, and the same split into a sharded checkpoint whose index names the alias */
    alias_model(&u, &t, 0.0f);
    snprintf(dir, sizeof dir, "%s/alias", tmpdir());
    rc = d1_model_save(&u, dir, D1_DTYPE_F32);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (rc == D1_OK) rc = write_all(path, cfg_tied, strlen(cfg_tied)) ? D1_OK : D1_ERR_IO;
    CHECK(rc == D1_OK && d1_model_load(&b, dir) == D1_OK && same_params(&b, &t), "directory: %s", d1_last_error());
    if (rc == D1_OK) d1_model_free(&b);
    {
        char from[700], to[700], idx[8192];
        int i, n = d1_model_num_tensors(&u), k;
        snprintf(from, sizeof from, "%s/model.safetensors", dir);
        snprintf(to, sizeof to, "%s/model-00001-of-00001.safetensors", dir);
        CHECK(rename(from, to) == 0, "rename to a shard");
        k = snprintf(idx, sizeof idx, "{\"metadata\": {}, \"weight_map\": {");
        for (i = 0; i < n; i++) {
            d1_tensor ti;
            d1_model_tensor(&u, i, &ti);
            k += snprintf(idx + k, sizeof idx - (size_t)k, "%s\"%s\": \"model-00001-of-00001.safetensors\"",
                          i ? ", " : "", ti.name);
        }
        snprintf(idx + k, sizeof idx - (size_t)k, "}}");
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        CHECK(write_all(path, idx, strlen(idx)), "index");
        rc = d1_model_load(&b, dir);
        CHECK(rc == D1_OK && same_params(&b, &t), "sharded, the alias in the index: %s", d1_last_error());
        if (rc == D1_OK) d1_model_free(&b);
    }
    d1_model_free(&u);
    free(tblob);
    d1_model_free(&t);
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
    RUN(test_roundtrip_f32_untied_gqa);
    RUN(test_roundtrip_f32_tied);
    RUN(test_roundtrip_f32_mqa);
    RUN(test_roundtrip_bf16_f16);
    RUN(test_file_roundtrip);
    RUN(test_tied_alias);
    RUN(test_torch_f32);
    RUN(test_torch_bf16);
    RUN(test_torch_sharded);
    RUN(test_export_for_torch);
    rm_tree(tmpdir());
    return th_summary();
}
