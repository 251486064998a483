#ifndef C_PORTICO_SYSTEM_H
#define C_PORTICO_SYSTEM_H

/// Sets glibc malloc's trim threshold and top pad (mallopt), which Swift's Glibc module does not
/// expose. Returns 0 where that is not available.
int cportico_malloc_keep_freed(int trim_threshold, int top_pad);

/// Sets the calling thread's own nice value (Linux: setpriority on its thread id, which Swift's
/// Glibc module cannot name). Returns 0 on success.
int cportico_set_thread_nice(int nice);

#endif
