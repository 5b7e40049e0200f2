/* What the checkpoint tests share (test_checkpoint.c, test_config.c,
   test_malformed.c, test_resume.c): a config and a model with random weights,
   an in-memory save, a bit-for-bit comparison, a scratch directory and file
   helpers, and a few training steps. Included after d1.h (with
   D1_IMPLEMENTATION); every helper is static, and may go unused in a file. */
#ifndef D1_TEST_CKPT_COMMON_H
#define D1_TEST_CKPT_COMMON_H
#include "harness.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef D1_TEST_DATA
#define D1_TEST_DATA "tests/data"
#endif

static D1__MAYBE_UNUSED d1_config make_cfg(int V, int C, int L, int H, int KV, int F, int T, int tied) {
    d1_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = V; c.dim = C; c.n_layers = L; c.n_heads = H; c.n_kv_heads = KV;
    c.ffn_dim = F; c.max_seq_len = T; c.mask_id = V - 1; c.eos_id = V - 2; c.pad_id = V - 3;
    c.tied_embeddings = tied; c.rope_theta = 10000.0f; c.norm_eps = 1e-6f;
    return c;
}

/* A model with random weights, norms included (init sets them to 1). */
static D1__MAYBE_UNUSED int make_model(d1_model *m, const d1_config *c, uint64_t seed) {
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

static D1__MAYBE_UNUSED unsigned char *save_blob(const d1_model *m, int dtype, size_t *len, char *cfg) {
    size_t n = d1_model_save_size(m, dtype);
    unsigned char *b = (unsigned char *)malloc(n ? n : 1);
    int rc = d1_model_save_memory(m, dtype, b, n, cfg, D1_CONFIG_JSON_MAX);
    *len = n;
    if (rc != D1_OK) { free(b); return NULL; }
    return b;
}

static D1__MAYBE_UNUSED int same_params(const d1_model *a, const d1_model *b) {
    return a->num_params == b->num_params && !memcmp(&a->config, &b->config, sizeof a->config) &&
           !memcmp(a->param_memory, b->param_memory, a->num_params * sizeof(float));
}

/* a scratch directory under $TMPDIR (or /tmp) */
static D1__MAYBE_UNUSED const char *tmpdir(void) {
    static char tmp_root[512];
    if (!tmp_root[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(tmp_root, sizeof tmp_root, "%s/d1_test_ckpt_%d", t && *t ? t : "/tmp", (int)getpid());
        mkdir(tmp_root, 0777);
    }
    return tmp_root;
}
static D1__MAYBE_UNUSED void rm_tree(const char *path) {
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
static D1__MAYBE_UNUSED int file_exists(const char *dir, const char *name) {
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}
static D1__MAYBE_UNUSED int count_tmp_files(const char *dir) {
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
static D1__MAYBE_UNUSED unsigned char *read_all(const char *path, size_t *len) {
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
static D1__MAYBE_UNUSED int write_all(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* a few pretraining steps on random tokens (RB x RT), drawn from rngs[0] */
#define RB 4
#define RT 16
static D1__MAYBE_UNUSED void train(d1_model *m, d1_adamw *opt, d1_rng *rngs, int steps) {
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
#endif
