/* make_random_model.c - a LLaDA-shaped checkpoint with random weights,
   written as BF16 safetensors shards without ever holding the model in
   memory (one tensor row block at a time), for the BF16-resident load
   (d1_model_load_bf16) at sizes that do not fit as FP32.

     build/make_random_model OUT [--llada-8b] [--vocab V] [--dim C] [--layers L]
                             [--heads H] [--kv-heads KV] [--ffn F] [--max-seq N]
                             [--tied] [--shard-mb N] [--seed N]

   --llada-8b is LLaDA-8B's shape: vocabulary 126464, dim 4096, 32 layers of
   32 heads, ffn 12288, untied head, mask 126336, EOS = pad 126081 (about
   8.0 B parameters, 16.0 GB as BF16). Without it the sizes are the flags'
   (defaults: a 4-layer model of dim 256). The matrices are uniform in
   +-sqrt(3) * 0.02 (standard deviation 0.02), the norms 1; config.json is
   d1_config_to_json's, the index lists every tensor's shard.

   Build: cc -O2 tools/make_random_model.c -o build/make_random_model -lm -lpthread */
#define D1_IMPLEMENTATION
#include "../d1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t xs_state;
static uint32_t next_u32(void) { /* xorshift64*: fast enough for 8 B values */
    xs_state ^= xs_state >> 12;
    xs_state ^= xs_state << 25;
    xs_state ^= xs_state >> 27;
    return (uint32_t)((xs_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static int fail(const char *what, const char *path) {
    fprintf(stderr, "make_random_model: %s %s\n", what, path);
    return 1;
}

/* Tensors [first, last) of the config into one shard file. */
static int write_shard(const char *path, const d1_config *c, int first, int last) {
    char *header = NULL;
    size_t cap = 256 + (size_t)(last - first) * 192, n = 0, at = 0, pad;
    uint16_t *row = NULL;
    FILE *f;
    int i, rc = 0;
    uint64_t hl;
    header = (char *)malloc(cap);
    row = (uint16_t *)malloc(sizeof(uint16_t) * (size_t)c->dim * 4);
    if (!header || !row) { free(header); free(row); return fail("out of memory for", path); }
    n += (size_t)snprintf(header + n, cap - n, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (i = first; i < last; i++) {
        d1_tensor t;
        size_t bytes;
        d1__config_tensor(c, i, &t);
        bytes = 2 * t.size;
        if (t.ndim == 2)
            n += (size_t)snprintf(header + n, cap - n, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                                  t.name, t.shape[0], t.shape[1], at, at + bytes);
        else
            n += (size_t)snprintf(header + n, cap - n, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                                  t.name, t.shape[0], at, at + bytes);
        at += bytes;
    }
    n += (size_t)snprintf(header + n, cap - n, "}");
    for (pad = (8 - n % 8) % 8; pad > 0; pad--) header[n++] = ' '; /* data 8-aligned */
    if (!(f = fopen(path, "wb"))) { free(header); free(row); return fail("cannot write", path); }
    hl = (uint64_t)n;
    { /* the header's length, little-endian */
        unsigned char b8[8];
        int k;
        for (k = 0; k < 8; k++) b8[k] = (unsigned char)(hl >> (8 * k));
        rc |= fwrite(b8, 1, 8, f) != 8;
    }
    rc |= fwrite(header, 1, n, f) != n;
    for (i = first; i < last && !rc; i++) {
        d1_tensor t;
        size_t done, k;
        d1__config_tensor(c, i, &t);
        for (done = 0; done < t.size && !rc; done += k) {
            size_t chunk = t.size - done < (size_t)c->dim * 4 ? t.size - done : (size_t)c->dim * 4;
            for (k = 0; k < chunk; k++) {
                float v = t.ndim == 1 ? 1.0f : (float)((int32_t)next_u32() * (0.0346410162 / 2147483648.0));
                uint32_t u;
                memcpy(&u, &v, 4);
                row[k] = (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16); /* round to nearest even */
            }
            rc |= fwrite(row, 2, chunk, f) != chunk; /* little-endian hosts (x86-64, arm64) */
        }
    }
    rc |= fclose(f) != 0;
    free(header);
    free(row);
    return rc ? fail("write failed:", path) : 0;
}

static int int_flag(int argc, char **argv, int *i, const char *name, int *v) {
    if (strcmp(argv[*i], name) || *i + 1 >= argc) return 0;
    *v = atoi(argv[++*i]);
    return 1;
}

int main(int argc, char **argv) {
    d1_config c;
    int i, first, n, shards = 0, shard_mb = 2000, seed = 1;
    char path[1024], json[D1_CONFIG_JSON_MAX];
    size_t budget;
    FILE *f;
    const char *out;
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: make_random_model OUT [--llada-8b] [--vocab V] [--dim C] [--layers L] [--heads H]\n"
                        "       [--kv-heads KV] [--ffn F] [--max-seq N] [--tied] [--shard-mb N] [--seed N]\n");
        return 2;
    }
    out = argv[1];
    memset(&c, 0, sizeof c);
    c.vocab_size = 512; c.dim = 256; c.n_layers = 4; c.n_heads = 8; c.n_kv_heads = 8; c.ffn_dim = 704;
    c.max_seq_len = 1024; c.mask_id = 511; c.eos_id = 510; c.pad_id = 510;
    for (i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--llada-8b")) {
            c.vocab_size = 126464; c.dim = 4096; c.n_layers = 32; c.n_heads = 32; c.n_kv_heads = 32;
            c.ffn_dim = 12288; c.max_seq_len = 4096; c.mask_id = 126336; c.eos_id = 126081; c.pad_id = 126081;
        } else if (!strcmp(argv[i], "--tied")) c.tied_embeddings = 1;
        else if (int_flag(argc, argv, &i, "--vocab", &c.vocab_size)) { c.mask_id = c.vocab_size - 1; c.eos_id = c.pad_id = c.vocab_size - 2; }
        else if (!int_flag(argc, argv, &i, "--dim", &c.dim) && !int_flag(argc, argv, &i, "--layers", &c.n_layers) &&
                 !int_flag(argc, argv, &i, "--heads", &c.n_heads) && !int_flag(argc, argv, &i, "--kv-heads", &c.n_kv_heads) &&
                 !int_flag(argc, argv, &i, "--ffn", &c.ffn_dim) && !int_flag(argc, argv, &i, "--max-seq", &c.max_seq_len) &&
                 !int_flag(argc, argv, &i, "--shard-mb", &shard_mb) && !int_flag(argc, argv, &i, "--seed", &seed)) {
            fprintf(stderr, "make_random_model: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (d1_config_resolve(&c, &c) != D1_OK || shard_mb < 1) {
        fprintf(stderr, "make_random_model: %s\n", shard_mb < 1 ? "--shard-mb must be >= 1" : d1_last_error());
        return 2;
    }
    xs_state = 0x9E3779B97F4A7C15ULL * (uint64_t)(seed + 1);
    if (d1__mkdirs(out) != D1_OK) return fail("cannot create", out);
    n = d1__config_num_tensors(&c);
    budget = (size_t)shard_mb << 20;
    for (first = 0; first < n; shards++) { /* count the shards first: their names hold the total */
        size_t bytes = 0;
        int last = first;
        do {
            d1_tensor t;
            d1__config_tensor(&c, last++, &t);
            bytes += 2 * t.size;
        } while (last < n && bytes < budget);
        first = last;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", out);
    if (!(f = fopen(path, "wb"))) return fail("cannot write", path);
    fprintf(f, "{\n  \"metadata\": {\"total_size\": %.0f},\n  \"weight_map\": {", 2.0 * (double)d1_config_num_params(&c));
    for (i = 0, first = 0; first < n; i++) {
        size_t bytes = 0;
        int last = first, k;
        do {
            d1_tensor t;
            d1__config_tensor(&c, last++, &t);
            bytes += 2 * t.size;
        } while (last < n && bytes < budget);
        for (k = first; k < last; k++) {
            d1_tensor t;
            d1__config_tensor(&c, k, &t);
            fprintf(f, "%s\n    \"%s\": \"model-%05d-of-%05d.safetensors\"", k ? "," : "", t.name, i + 1, shards);
        }
        snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", out, i + 1, shards);
        if (write_shard(path, &c, first, last)) { fclose(f); return 1; }
        fprintf(stderr, "make_random_model: %s (%.0f MB)\n", path, (double)bytes / 1e6);
        first = last;
    }
    fprintf(f, "\n  }\n}\n");
    if (fclose(f) != 0) return fail("write failed:", "the index");
    if (d1_config_to_json(&c, json, sizeof json) != D1_OK) return fail("config:", d1_last_error());
    snprintf(path, sizeof path, "%s/config.json", out);
    if (!(f = fopen(path, "wb")) || fputs(json, f) < 0 || fclose(f) != 0) return fail("cannot write", path);
    printf("%s: %zu parameters in %d BF16 shards\n", out, d1_config_num_params(&c), shards);
    return 0;
}
