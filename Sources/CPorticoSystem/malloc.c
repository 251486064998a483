#include "CPorticoSystem.h"

#if defined(__linux__) && defined(__GLIBC__)
#include <malloc.h>

int cportico_malloc_keep_freed(int trim_threshold, int top_pad) {
    return mallopt(M_TRIM_THRESHOLD, trim_threshold) && mallopt(M_TOP_PAD, top_pad);
}
#else
int cportico_malloc_keep_freed(int trim_threshold, int top_pad) {
    (void)trim_threshold;
    (void)top_pad;
    return 0;
}
#endif
