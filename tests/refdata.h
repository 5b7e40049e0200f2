/* Reader of the reference dumps written by tools/ref_dump.py:
   "D1REF001", u32 count, then records: u32 name_len, name, u32 dtype (0 f32,
   1 i32), u32 ndim, u32 dims[ndim], data (4-byte little-endian elements). */
#ifndef D1_TEST_REFDATA_H
#define D1_TEST_REFDATA_H
#include <math.h>
#include <stdint.h>
#ifndef D1__MAYBE_UNUSED
#define D1__MAYBE_UNUSED
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ref_record {
    char name[96];
    int dtype, ndim, dims[4];
    size_t n;
    void *data;
} ref_record;

typedef struct ref_file {
    int count;
    ref_record *rec;
} ref_file;

static int ref_u32(FILE *f, uint32_t *v) { return fread(v, 4, 1, f) == 1; }

static int ref_load(ref_file *rf, const char *path) {
    FILE *f = fopen(path, "rb");
    char magic[8];
    uint32_t count, i;
    memset(rf, 0, sizeof *rf);
    if (!f) return 0;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "D1REF001", 8) || !ref_u32(f, &count) || count > 10000) {
        fclose(f);
        return 0;
    }
    rf->rec = (ref_record *)calloc(count, sizeof(ref_record));
    for (i = 0; i < count; i++) {
        ref_record *r = &rf->rec[i];
        uint32_t len, dt, nd, d, k;
        if (!ref_u32(f, &len) || len >= sizeof r->name || fread(r->name, 1, len, f) != len) break;
        if (!ref_u32(f, &dt) || !ref_u32(f, &nd) || nd > 4) break;
        r->dtype = (int)dt; r->ndim = (int)nd; r->n = 1;
        for (k = 0; k < nd; k++) {
            if (!ref_u32(f, &d)) break;
            r->dims[k] = (int)d;
            r->n *= d;
        }
        r->data = malloc(r->n * 4 + 4);
        if (fread(r->data, 4, r->n, f) != r->n) break;
        rf->count++;
    }
    fclose(f);
    return rf->count == (int)count;
}

static const ref_record *ref_get(const ref_file *rf, const char *name) {
    int i;
    for (i = 0; i < rf->count; i++)
        if (!strcmp(rf->rec[i].name, name)) return &rf->rec[i];
    return NULL;
}

/* max |a - b| / max |b| over one tensor (llm.c's measure) */
static D1__MAYBE_UNUSED double ref_rel_err(const float *a, const float *b, size_t n) {
    double e = 0, s = 1e-12;
    size_t i;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= e)) e = d; /* NaN sticks */
        if (fabs(b[i]) > s) s = fabs(b[i]);
    }
    return e / s;
}

#ifdef D1_H
/* The model of ref_core.bin, with its weights copied in by Hugging Face name
   (max_seq_len 0 keeps the file's); eos_id (or D1_TOKEN_NONE) also as pad_id. 0 on failure. */
static int ref_model_init(d1_model *m, const ref_file *rf, int max_seq_len, int eos_id) {
    const ref_record *cr = ref_get(rf, "config");
    const int *ci;
    d1_config c;
    int i, nt;
    if (!cr || cr->n != 9) return 0;
    ci = (const int *)cr->data;
    memset(&c, 0, sizeof c);
    c.vocab_size = ci[0]; c.dim = ci[1]; c.n_layers = ci[2]; c.n_heads = ci[3]; c.n_kv_heads = ci[4];
    c.ffn_dim = ci[5]; c.max_seq_len = max_seq_len ? max_seq_len : ci[6]; c.mask_id = ci[7];
    c.tied_embeddings = ci[8];
    c.rope_theta = *(const float *)ref_get(rf, "rope_theta")->data;
    c.norm_eps = *(const float *)ref_get(rf, "norm_eps")->data;
    c.eos_id = eos_id; c.pad_id = eos_id;
    if (d1_model_init(m, &c, 0) != D1_OK) return 0;
    nt = d1_model_num_tensors(m);
    for (i = 0; i < nt; i++) {
        d1_tensor t;
        const ref_record *r;
        d1_model_tensor(m, i, &t);
        r = ref_get(rf, t.name);
        if (!r || r->n != t.size) { d1_model_free(m); return 0; }
        memcpy(m->param_memory + t.offset, r->data, t.size * sizeof(float));
    }
    return 1;
}

/* Runs every "caseK" of ref_sampler.bin (tools/ref_sampler_dump.py) on m, the
   rng seeded with 1, against the reference tokens and forward-pass counts.
   Returns the cases run; *bad counts those that differ (each printed). */
static D1__MAYBE_UNUSED int ref_generate_cases(d1_model *m, const ref_file *rs, int *bad) {
    const ref_record *pr = ref_get(rs, "prompt");
    int k, B = pr->dims[0], P = pr->dims[1];
    *bad = 0;
    for (k = 0;; k++) {
        char name[64];
        const ref_record *ip, *fp, *ro;
        d1_sampler_desc d;
        d1_sample_stats st;
        d1_rng rng;
        int *out, rc, T, ok;
        snprintf(name, sizeof name, "case%d.params", k);
        if (!(ip = ref_get(rs, name))) break;
        snprintf(name, sizeof name, "case%d.fparams", k); fp = ref_get(rs, name);
        snprintf(name, sizeof name, "case%d.out", k); ro = ref_get(rs, name);
        memset(&d, 0, sizeof d);
        d.gen_len = ((const int *)ip->data)[0]; d.block_len = ((const int *)ip->data)[1];
        d.steps = ((const int *)ip->data)[2]; d.remasking = ((const int *)ip->data)[3];
        d.suppress_eos = ((const int *)ip->data)[4];
        d.threshold = ((const float *)fp->data)[0]; d.cfg_scale = ((const float *)fp->data)[1];
        T = P + d.gen_len;
        out = (int *)malloc(sizeof(int) * B * T);
        d1_rng_seed(&rng, 1);
        rc = d1_sampler_generate(m, &d, (const int *)pr->data, B, P, NULL, &rng, out, &st);
        ok = rc == D1_OK && ro->n == (size_t)B * T && memcmp(out, ro->data, ro->n * sizeof(int)) == 0 &&
             st.forward_passes == ((const int *)ip->data)[5];
        if (!ok) {
            printf("  case %d (gen %d block %d steps %d remask %d thr %g cfg %g eos %d): %s, %d passes (reference %d)%s\n",
                   k, d.gen_len, d.block_len, d.steps, d.remasking, d.threshold, d.cfg_scale, d.suppress_eos,
                   d1_strerror(rc), st.forward_passes, ((const int *)ip->data)[5],
                   rc == D1_OK && memcmp(out, ro->data, ro->n * sizeof(int)) ? ", tokens differ" : "");
            ++*bad;
        }
        free(out);
    }
    return k;
}
#endif

static void ref_free(ref_file *rf) {
    int i;
    for (i = 0; i < rf->count; i++) free(rf->rec[i].data);
    free(rf->rec);
    memset(rf, 0, sizeof *rf);
}
#endif
