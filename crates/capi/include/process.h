/* <process.h> — on QNX it brings in the kernel calls and threads; so here. */
#ifndef _ASYNCMSG_PROCESS_H
#define _ASYNCMSG_PROCESS_H

/* Strict ISO C (-std=c11) hides POSIX: these headers need it. */
#if defined(__STRICT_ANSI__) && !defined(_POSIX_C_SOURCE) && !defined(_XOPEN_SOURCE) && \
    !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <sys/neutrino.h>
#endif
