/* The library's allocations, counted (include before d1.h): live_bytes and
   peak_bytes let a test or fuzz target check that a call allocated no more
   than it may (a hostile file must fail before its claims are allocated). */
#ifndef D1_TEST_COUNT_ALLOC_H
#define D1_TEST_COUNT_ALLOC_H
#include <stdlib.h>
static size_t live_bytes, peak_bytes;
static void *counted_malloc(size_t n) {
    size_t *p = (size_t *)malloc(n + 16);
    if (!p) return NULL;
    p[0] = n;
    live_bytes += n;
    if (live_bytes > peak_bytes) peak_bytes = live_bytes;
    return (char *)p + 16;
}
static void counted_free(void *q) {
    if (!q) return;
    q = (char *)q - 16;
    live_bytes -= *(size_t *)q;
    free(q);
}
#define D1_MALLOC(n) counted_malloc(n)
#define D1_FREE(p) counted_free(p)
#endif
