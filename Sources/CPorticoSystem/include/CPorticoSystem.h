#ifndef C_PORTICO_SYSTEM_H
#define C_PORTICO_SYSTEM_H

/// Sets glibc malloc's trim threshold, top pad and mmap threshold (mallopt), which Swift's Glibc
/// module does not expose. Returns 0 where that is not available.
int cportico_malloc_keep_freed(int trim_threshold, int top_pad, int mmap_threshold);

/// Hands every whole free page in malloc's arenas back to the kernel (malloc_trim(0)), which the
/// trim threshold above otherwise keeps. Returns 1 when memory was released.
int cportico_malloc_release_free(void);

/// Bytes malloc has handed out and not yet had back (mallinfo2: arena chunks in use plus mmapped
/// blocks), for benchmarks that weigh a data structure. 0 where that is not available.
unsigned long long cportico_malloc_in_use(void);

/// Sets the calling thread's own nice value (Linux: setpriority on its thread id, which Swift's
/// Glibc module cannot name). Returns 0 on success.
int cportico_set_thread_nice(int nice);

#endif
