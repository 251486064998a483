#define _GNU_SOURCE
#include "CPorticoSystem.h"

#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

int cportico_set_thread_nice(int nice) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}
#else
int cportico_set_thread_nice(int nice) {
    (void)nice;
    return 0;
}
#endif
