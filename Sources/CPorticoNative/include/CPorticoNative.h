// The Linux system interfaces the native engine uses that Glibc's Swift module leaves out:
// epoll, eventfd and accept4.
#ifndef C_PORTICO_NATIVE_H
#define C_PORTICO_NATIVE_H
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

int c_portico_accept4(int fd, int flags);
#endif
#endif
