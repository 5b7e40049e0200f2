/* A scalar model of the six AMX instructions d1.h's AMX-BF16 kernel uses
   (LDTILECFG, TILELOADD, TILESTORED, TILEZERO, TDPBF16PS, TILERELEASE), for
   tests built with -DD1_AMX_EMULATE: d1.h then calls these instead of the
   intrinsics, so its tiling (the packed layouts read as tiles, the partial
   k step, the edges of C, the per-thread configuration) runs and is checked
   on a CPU without AMX. Include it before d1.h.

   Semantics, from Intel's intrinsics guide and the SDM's faults: palette 1,
   eight tiles of at most 16 rows x 64 bytes; a tile load copies `rows` rows
   of `colsb` bytes, `stride` bytes apart, and zeroes the rest of the tile;
   TDPBF16PS needs A.rows == C.rows, A.colsb / 4 == B.rows and B.colsb ==
   C.colsb and three distinct tiles, and computes, per row m and column n,
       for k:  c += a[m][2k] b[k][2n];  c += a[m][2k+1] b[k][2n+1]
   each step one FP32 rounding to nearest even, BF16 inputs below FLT_MIN
   read as zero and a result below FLT_MIN flushed to zero. Anything else a
   real CPU would fault on (an unconfigured tile, a bad shape, a reserved
   byte set) is counted in amx_emu_faults with its first message; the
   test fails on any. Real hardware may order its sums otherwise (the SDM
   describes separate even and odd sums): tests compare real AMX runs to
   the definition within a rounding bound, emulated ones to this order bit
   for bit. */
#ifndef D1_AMX_EMU_H
#define D1_AMX_EMU_H
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* unused where d1.h has no AMX kernel to call them (arm64, D1_NO_SIMD) */
#define AMX_EMU_FN static __attribute__((unused))

typedef struct {
    int configured;
    int rows[8], colsb[8];
    unsigned char data[8][1024];
} amx_emu_tiles;
static __thread amx_emu_tiles amx_emu; /* tile state is per thread, as on the CPU */
static long amx_emu_faults, amx_emu_dps;  /* counted across threads (atomics) */
static char amx_emu_first_fault[160];

static void amx_emu_fault(const char *what, int t) {
    if (__atomic_fetch_add(&amx_emu_faults, 1, __ATOMIC_RELAXED) == 0)
        snprintf(amx_emu_first_fault, sizeof amx_emu_first_fault, "%s (tile %d)", what, t);
}
static int amx_emu_tile_ok(int t) {
    if (!amx_emu.configured) { amx_emu_fault("tile instruction without LDTILECFG", t); return 0; }
    if (t < 0 || t > 7 || amx_emu.rows[t] == 0) { amx_emu_fault("tile not configured", t); return 0; }
    return 1;
}
/* BF16 in (DAZ) and FP32 out (FTZ): d1__bf16_value and d1__ftz again, written
   apart on purpose (the model of the instruction shares no code with what
   it checks) */
static float amx_emu_bf16(uint16_t h) { /* DAZ */
    uint32_t u = (uint32_t)h << 16;
    float f;
    if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
    memcpy(&f, &u, 4);
    return f;
}
static float amx_emu_ftz(float r) {
    uint32_t u;
    memcpy(&u, &r, 4);
    if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
    memcpy(&r, &u, 4);
    return r;
}

AMX_EMU_FN void d1_emu_tile_config(const void *cfg) {
    const unsigned char *p = (const unsigned char *)cfg;
    int t, i;
    memset(&amx_emu, 0, sizeof amx_emu);
    if (p[0] != 1) { amx_emu_fault("palette is not 1", -1); return; }
    for (i = 1; i < 16; i++)
        if (p[i]) { amx_emu_fault("start_row or a reserved byte is set", -1); return; }
    for (t = 0; t < 16; t++) {
        int colsb = p[16 + 2 * t] | p[17 + 2 * t] << 8, rows = p[48 + t];
        if (t >= 8 && (colsb || rows)) { amx_emu_fault("palette 1 has 8 tiles", t); return; }
        if (t < 8 && (colsb > 64 || rows > 16 || (colsb == 0) != (rows == 0))) { amx_emu_fault("bad tile shape", t); return; }
        if (t < 8) { amx_emu.colsb[t] = colsb; amx_emu.rows[t] = rows; }
    }
    amx_emu.configured = 1;
}
AMX_EMU_FN void d1_emu_tile_loadd(int t, const void *base, long stride) {
    int r;
    if (!amx_emu_tile_ok(t)) return;
    memset(amx_emu.data[t], 0, 1024);
    for (r = 0; r < amx_emu.rows[t]; r++)
        memcpy(amx_emu.data[t] + r * 64, (const char *)base + (long)r * stride, (size_t)amx_emu.colsb[t]);
}
AMX_EMU_FN void d1_emu_tile_stored(int t, void *base, long stride) {
    int r;
    if (!amx_emu_tile_ok(t)) return;
    for (r = 0; r < amx_emu.rows[t]; r++)
        memcpy((char *)base + (long)r * stride, amx_emu.data[t] + r * 64, (size_t)amx_emu.colsb[t]);
}
AMX_EMU_FN void d1_emu_tile_zero(int t) {
    if (amx_emu_tile_ok(t)) memset(amx_emu.data[t], 0, 1024);
}
AMX_EMU_FN void d1_emu_tile_dpbf16ps(int c, int a, int b) {
    int m, n, k;
    if (!amx_emu_tile_ok(c) || !amx_emu_tile_ok(a) || !amx_emu_tile_ok(b)) return;
    if (c == a || c == b || a == b) { amx_emu_fault("TDPBF16PS with a tile twice", c); return; }
    if (amx_emu.rows[a] != amx_emu.rows[c] || amx_emu.colsb[a] / 4 != amx_emu.rows[b] ||
        amx_emu.colsb[b] != amx_emu.colsb[c] || amx_emu.colsb[c] % 4 || amx_emu.colsb[a] % 4) {
        amx_emu_fault("TDPBF16PS shapes do not match", c);
        return;
    }
    __atomic_fetch_add(&amx_emu_dps, 1, __ATOMIC_RELAXED);
    for (m = 0; m < amx_emu.rows[c]; m++)
        for (n = 0; n < amx_emu.colsb[c] / 4; n++) {
            float s;
            memcpy(&s, amx_emu.data[c] + m * 64 + 4 * n, 4);
            for (k = 0; k < amx_emu.colsb[a] / 4; k++) {
                uint16_t a0, a1, b0, b1;
                memcpy(&a0, amx_emu.data[a] + m * 64 + 4 * k, 2);
                memcpy(&a1, amx_emu.data[a] + m * 64 + 4 * k + 2, 2);
                memcpy(&b0, amx_emu.data[b] + k * 64 + 4 * n, 2);
                memcpy(&b1, amx_emu.data[b] + k * 64 + 4 * n + 2, 2);
                s = amx_emu_ftz(amx_emu_bf16(a0) * amx_emu_bf16(b0) + s); /* exact product, one rounding */
                s = amx_emu_ftz(amx_emu_bf16(a1) * amx_emu_bf16(b1) + s);
            }
            memcpy(amx_emu.data[c] + m * 64 + 4 * n, &s, 4);
        }
}
AMX_EMU_FN void d1_emu_tile_release(void) { memset(&amx_emu, 0, sizeof amx_emu); }
#endif
