/* libFuzzer target for whole checkpoint directories: config.json, the single
   or sharded weights with their index, the training state and the LoRA
   adapters, read by d1_model_load, d1_train_state_load and d1_lora_load.

   Input: records [u8 file][u16 little-endian n][n bytes] (n clamped to what
   is there); the file byte picks one of the names below. The records are
   written into a fresh directory (under $TMPDIR, /dev/shm when there is one),
   then loaded. Properties, beyond "no crash, no leak, no UB, no hang":
     - every status is one the loaders document;
     - a failed load changes nothing: the model struct (d1_model_load), the
       optimizer and RNGs (d1_train_state_load), the model and its weights
       (d1_lora_load) byte for byte as they were;
     - no load (model, training state, adapters) allocates more than 2x the
       bytes of its directory's files, plus FZ_FIXED: what no file can change
       (the model's fixed-size state, path strings, allocation headers);
     - a model that loads runs a forward pass.
   The training state and the adapters are tried against the directory's own
   model when it loads, and against a fixed tiny model always, so that their
   parsers are reached whatever the weights hold.

   Build and run:
     make fuzz-dir FUZZ_SECONDS=60          (clang, libFuzzer)
   Seeds: `build/fuzz_dir_replay --seed DIR` writes real directories (a
   saved checkpoint with its state and adapters, a sharded one) as inputs;
   `make test` replays the committed seeds in tests/data/fuzz_dir_corpus. */
#include <string.h>
#include "count_alloc.h" /* live_bytes, peak_bytes */
#define D1_IMPLEMENTATION
#include "../d1.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const fz_names[8] = {"config.json",
                                        "model.safetensors",
                                        "model.safetensors.index.json",
                                        "model-00001-of-00002.safetensors",
                                        "model-00002-of-00002.safetensors",
                                        "optimizer.safetensors",
                                        "adapter_config.json",
                                        "adapter_model.safetensors"};
/* What a load may allocate beyond twice its files, whatever they say: the
   model's state (one size for every config: the thread pool, per-thread
   scratch pointers), the directory's path twice (once with a file name of up
   to 255 bytes), the smallest set of names (16 slots) and d1.h's 72 bytes of
   alignment on each of the at most 12 buffers alive at once. */
#define FZ_FIXED (sizeof(struct d1__state) + 2 * (strlen(fz_dir) + 262) + 64 + 12 * 72)

static int fz_known(int rc) {
    return rc == D1_OK || rc == D1_ERR_NOMEM || rc == D1_ERR_CONFIG || rc == D1_ERR_NONFINITE ||
           rc == D1_ERR_ARG || rc == D1_ERR_MISMATCH || rc == D1_ERR_NOT_FOUND || (rc <= D1_ERR_IO && rc >= D1_ERR_TRUNCATED);
}

static char fz_dir[512];
static size_t fz_total; /* bytes of this input's files */

/* The bound on what a load allocated: abort beyond it. */
static void fz_check_peak(const char *what, size_t base, size_t times) {
    if (peak_bytes - base > times * fz_total + FZ_FIXED) {
        fprintf(stderr, "%s of %zu bytes of files allocated %zu bytes\n", what, fz_total, peak_bytes - base);
        abort();
    }
}

static void fz_clear(void) {
    int i;
    char p[700];
    for (i = 0; i < 8; i++) {
        snprintf(p, sizeof p, "%s/%s", fz_dir, fz_names[i]);
        unlink(p);
    }
}

static int fz_loaded[3]; /* models, training states, adapters that loaded */
static d1_model fz_fixed; /* the tiny model the state and adapters are tried on */
static d1_adamw fz_fixed_opt;

static void fz_init(void) {
    const char *t = getenv("TMPDIR");
    struct stat st;
    d1_config c;
    d1_adamw_desc od = d1_adamw_default_desc();
    if (fz_dir[0]) return;
    if (!(t && *t)) t = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fz_dir, sizeof fz_dir, "%s/d1_fuzz_dir_%d", t, (int)getpid());
    mkdir(fz_dir, 0777);
    memset(&c, 0, sizeof c);
    c.vocab_size = 8; c.dim = 8; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.ffn_dim = 8;
    c.max_seq_len = 8; c.mask_id = 7; c.eos_id = 6; c.pad_id = 5;
    if (d1_model_init(&fz_fixed, &c, 1) != D1_OK || d1_adamw_init(&fz_fixed_opt, &fz_fixed, &od) != D1_OK) abort();
}

static uint64_t fz_hash(const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    uint64_t h = 14695981039346656037ull;
    size_t i;
    for (i = 0; p && i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* the training state and adapters of this directory, against model m */
static void fz_state_and_adapters(d1_model *m, d1_adamw *o) {
    d1_rng rng[2], rb[2];
    d1_adamw keep = *o;
    uint64_t hm = fz_hash(o->m, 2 * o->n * sizeof(float)), hw;
    d1_model mb;
    char settings[64];
    int rc, n;
    d1_rng_seed(&rng[0], 1);
    d1_rng_seed(&rng[1], 2);
    for (n = 1; n <= 2; n++) {
        size_t base = live_bytes;
        memcpy(rb, rng, sizeof rng);
        peak_bytes = live_bytes;
        rc = d1_train_state_load(fz_dir, m, o, rb, n, settings, sizeof settings);
        if (!fz_known(rc)) abort();
        fz_check_peak("a training state load", base, 2);
        if (rc != D1_OK && (memcmp(&keep, o, sizeof keep) || memcmp(rb, rng, sizeof rng) ||
                            fz_hash(o->m, 2 * o->n * sizeof(float)) != hm))
            abort(); /* a failed state load changed the optimizer or the RNGs */
        if (rc == D1_OK) {
            fz_loaded[1]++;
            keep = *o;
            hm = fz_hash(o->m, 2 * o->n * sizeof(float));
        }
    }
    mb = *m;
    hw = fz_hash(m->param_memory, m->num_params * sizeof(float));
    {
        size_t base = live_bytes;
        peak_bytes = live_bytes;
        rc = d1_lora_load(m, fz_dir);
        fz_check_peak("an adapter load", base, 2);
    }
    if (!fz_known(rc)) abort();
    if (rc != D1_OK && (memcmp(&mb, m, sizeof mb) || fz_hash(m->param_memory, m->num_params * sizeof(float)) != hw))
        abort(); /* a failed adapter load changed the model */
    if (rc == D1_OK) {
        fz_loaded[2]++;
        d1_lora_detach(m);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t at = 0, total = 0, base;
    d1_model m, before;
    int rc;
    fz_init();
    fz_clear();
    while (at + 3 <= size) { /* the records, as files */
        int file = data[at] % 8;
        size_t n = (size_t)data[at + 1] | (size_t)data[at + 2] << 8;
        char p[700];
        FILE *f;
        at += 3;
        if (n > size - at) n = size - at;
        snprintf(p, sizeof p, "%s/%s", fz_dir, fz_names[file]);
        f = fopen(p, "ab");
        if (!f) abort();
        if (n && fwrite(data + at, 1, n, f) != n) abort();
        fclose(f);
        at += n;
        total += n;
    }
    fz_total = total;
    memset(&m, 0xA5, sizeof m);
    before = m;
    base = live_bytes;
    peak_bytes = live_bytes;
    rc = d1_model_load(&m, fz_dir);
    if (!fz_known(rc)) abort();
    fz_check_peak("a model load", base, 2);
    if (rc == D1_OK) {
        d1_adamw o;
        d1_adamw_desc od = d1_adamw_default_desc();
        int tok = 0;
        fz_loaded[0]++;
        if (d1_model_forward(&m, &tok, 1, 1, NULL) != D1_OK) abort();
        if (d1_adamw_init(&o, &m, &od) == D1_OK) {
            fz_state_and_adapters(&m, &o);
            d1_adamw_free(&o);
        }
        d1_model_free(&m);
    } else if (memcmp(&m, &before, sizeof m)) {
        abort(); /* a failed load touched the model */
    }
    fz_state_and_adapters(&fz_fixed, &fz_fixed_opt);
    fz_clear();
    return 0;
}

#ifdef D1_FUZZ_REPLAY_MAIN
#include <dirent.h>

/* One directory's files as an input of the format above. */
static size_t fz_pack(const char *dir, unsigned char *out, size_t cap) {
    size_t n = 0;
    int i;
    for (i = 0; i < 8; i++) {
        char p[700];
        FILE *f;
        long len, k;
        snprintf(p, sizeof p, "%s/%s", dir, fz_names[i]);
        if (!(f = fopen(p, "rb"))) continue;
        fseek(f, 0, SEEK_END);
        len = ftell(f);
        fseek(f, 0, SEEK_SET);
        for (k = 0; k == 0 || k < len; k += 65535) { /* records of up to 65535 bytes, appended */
            size_t part = (size_t)(len - k < 65535 ? len - k : 65535);
            if (n + 3 + part > cap) break;
            out[n++] = (unsigned char)i;
            out[n++] = (unsigned char)(part & 255);
            out[n++] = (unsigned char)(part >> 8);
            if (fread(out + n, 1, part, f) != part) break;
            n += part;
            if (len == 0) break;
        }
        fclose(f);
    }
    return n;
}

static void fz_write_seed(const char *out_dir, const char *name, const char *dir) {
    static unsigned char buf[1 << 21];
    size_t n = fz_pack(dir, buf, sizeof buf);
    char p[700];
    FILE *f;
    snprintf(p, sizeof p, "%s/%s", out_dir, name);
    f = fopen(p, "wb");
    if (!f || fwrite(buf, 1, n, f) != n) abort();
    fclose(f);
}

/* Seeds: a checkpoint with its training state and adapters (F32 and BF16). */
static int fz_seed(const char *out_dir) {
    d1_config c;
    d1_model m;
    d1_adamw o;
    d1_adamw_desc od = d1_adamw_default_desc();
    d1_rng r;
    char dir[600];
    int dt;
    memset(&c, 0, sizeof c);
    c.vocab_size = 8; c.dim = 8; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.ffn_dim = 8;
    c.max_seq_len = 8; c.mask_id = 7; c.eos_id = 6; c.pad_id = 5;
    mkdir(out_dir, 0777);
    for (dt = 0; dt < 2; dt++) {
        snprintf(dir, sizeof dir, "/tmp/d1_fuzz_seed_%d_%d", (int)getpid(), dt);
        d1_model_init(&m, &c, 3);
        d1_adamw_init(&o, &m, &od);
        d1_rng_seed(&r, 4);
        if (d1_checkpoint_save(dir, &m, dt ? D1_DTYPE_BF16 : D1_DTYPE_F32, &o, &r, 1, "{\"a\": [1, 2]}") != D1_OK)
            return 1;
        fz_write_seed(out_dir, dt ? "ckpt_state_bf16" : "ckpt_state_f32", dir);
        d1_lora_attach(&m, 2, 4.0f, 5);
        if (d1_lora_save(&m, dir) != D1_OK) return 1;
        fz_write_seed(out_dir, dt ? "ckpt_state_lora_bf16" : "ckpt_state_lora_f32", dir);
        d1_adamw_free(&o);
        d1_model_free(&m);
        {
            static const char *const left[] = {"config.json", "model.safetensors", "optimizer.safetensors",
                                               "adapter_config.json", "adapter_model.safetensors"};
            size_t k;
            char p[700];
            for (k = 0; k < sizeof left / sizeof left[0]; k++) {
                snprintf(p, sizeof p, "%s/%s", dir, left[k]);
                unlink(p);
            }
            rmdir(dir);
        }
    }
    return 0;
}

#define D1_FUZZ_OWN_MAIN
#include "fuzz_replay.h" /* replay_file, D1_TEST_DATA */

/* Replays every input in the directories named (default: the committed
   seeds), or writes the seeds (--seed DIR); ends with the suite's summary. */
int main(int argc, char **argv) {
    const char *dirs[16];
    int i, nd = 0, n = 0;
    if (argc == 3 && !strcmp(argv[1], "--seed")) return fz_seed(argv[2]);
    for (i = 1; i < argc && nd < 16; i++) dirs[nd++] = argv[i];
    if (nd == 0) dirs[nd++] = D1_TEST_DATA "/fuzz_dir_corpus";
    for (i = 0; i < nd; i++) {
        DIR *d = opendir(dirs[i]);
        struct dirent *e;
        char path[4096];
        if (!d) {
            printf("FAIL fuzz_dir: no directory %s\n0 passed, 1 failed\n", dirs[i]);
            return 1;
        }
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            snprintf(path, sizeof path, "%s/%s", dirs[i], e->d_name);
            n += replay_file(path);
        }
        closedir(d);
    }
    rmdir(fz_dir);
    printf("ok   fuzz_dir: replayed %d directories (loaded: %d models, %d training states, %d adapters)\n"
           "%d passed, 0 failed\n", n, fz_loaded[0], fz_loaded[1], fz_loaded[2], n > 0);
    return n > 0 ? 0 : 1;
}
#endif
