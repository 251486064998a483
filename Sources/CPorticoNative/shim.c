#ifdef __linux__
#define _GNU_SOURCE
#include <sys/socket.h>
#include "CPorticoNative.h"

int c_portico_accept4(int fd, int flags) { return accept4(fd, 0, 0, flags); }
#endif
