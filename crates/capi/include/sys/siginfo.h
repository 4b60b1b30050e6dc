/*
 * <sys/siginfo.h> — QNX's pulse events on glibc's struct sigevent.
 *
 * struct sigevent is glibc's own (so <signal.h> may be included before or
 * after this header); QNX's fields are names for its spare room:
 *   sigev_notify    SIGEV_PULSE, SIGEV_SIGNAL or SIGEV_NONE
 *   sigev_coid      the connection a pulse goes through (ConnectAttach)
 *   sigev_priority  the pulse priority (SIGEV_PULSE_PRIO_INHERIT: ignored)
 *   sigev_code      the pulse code (_PULSE_CODE_MINAVAIL.._PULSE_CODE_MAXAVAIL)
 *   sigev_value     the pulse value (sigev_value.sival_int)
 */
#ifndef _ASYNCMSG_SYS_SIGINFO_H
#define _ASYNCMSG_SYS_SIGINFO_H

/* Strict ISO C (-std=c11) hides POSIX: these headers need it. */
#if defined(__STRICT_ANSI__) && !defined(_POSIX_C_SOURCE) && !defined(_XOPEN_SOURCE) && \
    !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <signal.h>

#define sigev_coid sigev_signo
#define sigev_priority _sigev_un._pad[0]
#define sigev_code _sigev_un._pad[1]

/** Deliver a pulse (glibc's SIGEV_* values are 0..4; this one is apart). */
#define SIGEV_PULSE 0x50
#define SIGEV_PULSE_PRIO_INHERIT (-1)

#define SIGEV_NONE_INIT(__e) ((__e)->sigev_notify = SIGEV_NONE)
#define SIGEV_SIGNAL_INIT(__e, __s) \
    ((__e)->sigev_notify = SIGEV_SIGNAL, (__e)->sigev_signo = (__s))
#define SIGEV_PULSE_INIT(__e, __coid, __prio, __code, __val)              \
    ((__e)->sigev_notify = SIGEV_PULSE, (__e)->sigev_coid = (__coid),    \
     (__e)->sigev_priority = (__prio), (__e)->sigev_code = (__code),     \
     (__e)->sigev_value.sival_int = (int)(__val))

#endif /* _ASYNCMSG_SYS_SIGINFO_H */
