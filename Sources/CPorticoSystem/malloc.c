#include "CPorticoSystem.h"

// Any libc header defines __GLIBC__ on glibc; without one before the test below, it was never
// defined, and every function here compiled to its no-op.
#include <stdlib.h>

#if defined(__linux__) && defined(__GLIBC__)
#include <malloc.h>

int cportico_malloc_keep_freed(int trim_threshold, int top_pad, int mmap_threshold) {
    return mallopt(M_TRIM_THRESHOLD, trim_threshold) && mallopt(M_TOP_PAD, top_pad) && mallopt(M_MMAP_THRESHOLD, mmap_threshold);
}

int cportico_malloc_release_free(void) {
    return malloc_trim(0);
}

unsigned long long cportico_malloc_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return (unsigned long long)info.uordblks + (unsigned long long)info.hblkhd;
}
#else
int cportico_malloc_keep_freed(int trim_threshold, int top_pad, int mmap_threshold) {
    (void)trim_threshold;
    (void)top_pad;
    (void)mmap_threshold;
    return 0;
}

int cportico_malloc_release_free(void) {
    return 0;
}

unsigned long long cportico_malloc_in_use(void) {
    return 0;
}
#endif
