/* Reader of the reference dumps written by tools/ref_dump.py:
   "D1REF001", u32 count, then records: u32 name_len, name, u32 dtype (0 f32,
   1 i32), u32 ndim, u32 dims[ndim], data (4-byte little-endian elements). */
#ifndef D1_TEST_REFDATA_H
#define D1_TEST_REFDATA_H
#include <stdint.h>
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

static void ref_free(ref_file *rf) {
    int i;
    for (i = 0; i < rf->count; i++) free(rf->rec[i].data);
    free(rf->rec);
    memset(rf, 0, sizeof *rf);
}
#endif
