/* A tiny test harness: TEST functions made of CHECKs, each file ends with one
   line "N passed, N failed" (N counts tests, not checks). */
#ifndef D1_TEST_HARNESS_H
#define D1_TEST_HARNESS_H
#include <math.h>
#ifndef D1__MAYBE_UNUSED
#define D1__MAYBE_UNUSED
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int th_passed, th_failed, th_cur_failed;
static const char *th_cur_name = "";

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            if (!th_cur_failed) printf("FAIL %s\n", th_cur_name);                 \
            th_cur_failed = 1;                                                    \
            printf("  %s:%d: %s: ", __FILE__, __LINE__, #cond);                   \
            printf(__VA_ARGS__);                                                  \
            printf("\n");                                                         \
        }                                                                         \
    } while (0)

/* Each test's line carries the processor time it took (clock(): every thread
   of the process), so a slow suite shows where its minutes go; no claim is
   made of it. */
#define RUN(fn)                                                                   \
    do {                                                                          \
        clock_t th_c0 = clock();                                                  \
        th_cur_name = #fn;                                                        \
        th_cur_failed = 0;                                                        \
        fn();                                                                     \
        if (th_cur_failed) th_failed++;                                           \
        else { th_passed++; printf("ok   %s (%.1f s cpu)\n", #fn,                \
                                   (double)(clock() - th_c0) / CLOCKS_PER_SEC); } \
        fflush(stdout);                                                           \
    } while (0)

/* The CPU this runs on (the first "model name" of /proc/cpuinfo, where there
   is one): printed once per binary, and named by every check whose claim
   holds within one build on one CPU type (bit-identical results). */
static D1__MAYBE_UNUSED const char *th_cpu(void) {
    static char name[128];
    if (!name[0]) {
        FILE *f = fopen("/proc/cpuinfo", "r");
        char line[512];
        snprintf(name, sizeof name, "unknown CPU");
        while (f && fgets(line, sizeof line, f)) {
            char *c = strchr(line, ':');
            if ((!strncmp(line, "model name", 10) || !strncmp(line, "Model", 5)) && c) {
                size_t n;
                c++;
                while (*c == ' ' || *c == '\t') c++;
                n = strcspn(c, "\n");
                snprintf(name, sizeof name, "%.*s", (int)(n < 120 ? n : 120), c);
                break;
            }
        }
        if (f) fclose(f);
    }
    return name;
}
/* "build: simd avx512, gemm d1, ... on AMD EPYC", first line of each binary */
#define TH_BANNER() printf("build: %s; cpu: %s\n", d1_build_info(), th_cpu())

/* D1_TEST_SHORT=1 (set by .ci/run for the ASan and qemu suites, where the
   long training loops take minutes): the learning tests run a few steps of
   every path, for the sanitizer and the emulated kernels, and check what a
   short run can show; the full learning claims run in every native suite. */
static D1__MAYBE_UNUSED int th_short(void) {
    const char *s = getenv("D1_TEST_SHORT");
    return s && s[0] && strcmp(s, "0") != 0;
}

static int th_summary(void) {
    printf("%d passed, %d failed\n", th_passed, th_failed);
    return th_failed ? 1 : 0;
}

/* max |a - b| / (max |b| + floor): a relative error against the scale of b */
static D1__MAYBE_UNUSED double th_rel_err(const float *a, const double *b, size_t n, double floor_) {
    double mx = 0.0, scale = floor_;
    size_t i;
    for (i = 0; i < n; i++) if (fabs(b[i]) > scale) scale = fabs(b[i]);
    for (i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= mx)) mx = e; /* NaN sticks */
    }
    return mx / scale;
}
#endif
