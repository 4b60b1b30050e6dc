/*
 * <sys/neutrino.h> — the QNX Neutrino kernel calls that asynchronous
 * messaging programs use around <sys/asyncmsg.h>, for Linux (libasyncmsg).
 *
 * Errors, as QNX documents them: ChannelDestroy, ConnectDetach and
 * ConnectServerInfo: EINVAL (no such id). ConnectAttach: ESRCH (no such
 * channel), EACCES (its mode refuses us). MsgReceive, MsgReceivePulse:
 * ESRCH (no such channel, or destroyed). MsgSend, MsgSendPulse: EBADF (no
 * such connection), ESRCH (the server went away), the server's errno after
 * MsgError. MsgReply, MsgError: ESRCH (no such rcvid, or answered already).
 * EFAULT: a NULL buffer with a non-zero size. EMSGSIZE: over 16 MiB.
 *
 * Channels and connections here are asyncmsg's synchronous companion:
 * ChannelCreate/MsgReceive/MsgReply in one process, ConnectAttach/name_open/
 * MsgSend in the same or another process of the host. Every call returns -1
 * and sets errno on failure, as QNX documents.
 *
 * As on QNX, this header brings in what QNX programs take for granted from
 * it: <pthread.h> (pthread_create also accepts a NULL thread-id pointer, as
 * QNX does), <signal.h> (struct sigevent, with QNX's pulse fields), <errno.h>
 * (and EOK), <stdint.h>, <sys/types.h>, <sys/uio.h> (iov_t), <unistd.h>,
 * <string.h> and <stdlib.h>.
 */
#ifndef _ASYNCMSG_SYS_NEUTRINO_H
#define _ASYNCMSG_SYS_NEUTRINO_H

/* Strict ISO C (-std=c11) hides POSIX: these headers need it. */
#if defined(__STRICT_ANSI__) && !defined(_POSIX_C_SOURCE) && !defined(_XOPEN_SOURCE) && \
    !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sys/siginfo.h>
#include <sys/iomsg.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef EOK
/** Success (QNX). */
#define EOK 0
#endif

/* QNX source-version stamps: accepted and ignored. */
#ifndef __SRCVERSION
#define __SRCVERSION(id) extern int __asyncmsg_srcversion_unused
#endif

/* ---- I/O vectors ---------------------------------------------------- */
typedef struct iovec iov_t;
#define SETIOV(_iov, _addr, _len) \
    ((_iov)->iov_base = (void *)(_addr), (_iov)->iov_len = (size_t)(_len))
#define GETIOVBASE(_iov) ((_iov)->iov_base)
#define GETIOVLEN(_iov) ((_iov)->iov_len)

/* ---- timers --------------------------------------------------------- */
struct _itimer {
    uint64_t nsec;          /* first expiry, in nanoseconds */
    uint64_t interval_nsec; /* then every this many nanoseconds (0: once) */
};

/* ---- pulses --------------------------------------------------------- */
/** A pulse, as MsgReceive (returning 0) and MsgReceivePulse store it. */
struct _pulse {
    uint16_t type;       /* 0 */
    uint16_t subtype;    /* 0 */
    int8_t code;         /* the pulse code */
    uint8_t zero[3];
    union sigval value;  /* value.sival_int: the pulse value */
    int32_t scoid;       /* the server connection it came from */
};

#define _PULSE_TYPE 0
#define _PULSE_SUBTYPE 0
#define _PULSE_CODE_UNBLOCK (-32)
#define _PULSE_CODE_DISCONNECT (-33)
#define _PULSE_CODE_THREADDEATH (-34)
#define _PULSE_CODE_COIDDEATH (-35)
#define _PULSE_CODE_MINAVAIL 0
#define _PULSE_CODE_MAXAVAIL 127

/* ---- message information -------------------------------------------- */
/** What MsgReceive tells about a message (and asyncmsg_get, per message). */
struct _msg_info {
    uint32_t nd;        /* node of the sender (0: this node) */
    uint32_t srcnd;
    pid_t pid;          /* sender's process */
    int32_t tid;        /* sender's thread (0 where not carried) */
    int32_t chid;       /* the channel it arrived on */
    int32_t scoid;      /* the server's id for the sender's connection */
    int32_t coid;       /* the sender's connection id */
    int32_t msglen;     /* bytes stored */
    int32_t srcmsglen;  /* bytes the sender sent */
    int32_t dstmsglen;  /* room the receiver offered */
    int16_t priority;
    int16_t flags;
    uint32_t reserved;
};

/** What ConnectServerInfo tells about a connection's server. */
struct _server_info {
    uint32_t nd;
    uint32_t srcnd;
    pid_t pid;          /* the server's process */
    int32_t tid;
    int32_t chid;       /* the server's channel */
    int32_t scoid;
    int32_t coid;
    int16_t priority;
    int16_t flags;
    uint32_t reserved;
};

/* ---- flags ---------------------------------------------------------- */
/* ChannelCreate / asyncmsg_channel_create */
#define _NTO_CHF_FIXED_PRIORITY 0x0001u
#define _NTO_CHF_UNBLOCK 0x0002u
#define _NTO_CHF_THREAD_DEATH 0x0004u
#define _NTO_CHF_DISCONNECT 0x0008u
#define _NTO_CHF_NET_MSG 0x0010u
#define _NTO_CHF_SENDER_LEN 0x0020u
#define _NTO_CHF_COID_DISCONNECT 0x0040u
#define _NTO_CHF_REPLY_LEN 0x0080u
#define _NTO_CHF_ASYNC_NONBLOCK 0x0200u
#define _NTO_CHF_ASYNC 0x0400u
#define _NTO_CHF_GLOBAL 0x0800u

/* ConnectAttach / asyncmsg_connect_attach */
#define _NTO_COF_CLOEXEC 0x0001u
#define _NTO_COF_DEAD 0x0002u
#define _NTO_COF_NOSHARE 0x0040u
#define _NTO_COF_NETCON 0x0080u
#define _NTO_COF_NONBLOCK 0x0100u
#define _NTO_COF_ASYNC 0x0200u
#define _NTO_COF_GLOBAL 0x0400u

/** ConnectAttach's `index` flag: a connection id apart from file descriptors. */
#define _NTO_SIDE_CHANNEL 0x40000000
/** ConnectAttach's `nd` for this node. */
#ifndef ND_LOCAL_NODE
#define ND_LOCAL_NODE 0
#endif

/* ---- kernel calls --------------------------------------------------- */
/** Creates a channel to MsgReceive on; returns its chid. */
int ChannelCreate(unsigned flags);
/** Destroys a channel: senders blocked on it fail with ESRCH. */
int ChannelDestroy(int chid);
/** Connects to channel (nd, pid, chid); pid 0 is this process. Returns a coid
 *  (from _NTO_SIDE_CHANNEL up when `index` has that bit). No connect message. */
int ConnectAttach(uint32_t nd, pid_t pid, int chid, unsigned index, int flags);
/** Closes a connection (the server gets a _PULSE_CODE_DISCONNECT pulse). */
int ConnectDetach(int coid);
/** Fills `info` (pid, chid) about the server of `coid`; returns `coid`. */
int ConnectServerInfo(pid_t pid, int coid, struct _server_info *info);
/** Waits for a message or a pulse. A message returns its rcvid (> 0) with up
 *  to `bytes` of it in `msg`; a pulse returns 0 with a struct _pulse in `msg`. */
int MsgReceive(int chid, void *msg, size_t bytes, struct _msg_info *info);
/** Waits for a pulse only (messages stay queued); returns 0. */
int MsgReceivePulse(int chid, void *pulse, size_t bytes, struct _msg_info *info);
/** Sends `smsg` and waits for the reply, stored (up to `rbytes`) in `rmsg`.
 *  Returns the status the server passed to MsgReply; -1 with the server's
 *  errno after MsgError. */
int MsgSend(int coid, const void *smsg, size_t sbytes, void *rmsg, size_t rbytes);
/** Like MsgSend, from and into I/O vectors (gathered and scattered). */
int MsgSendv(int coid, const iov_t *siov, int sparts, const iov_t *riov, int rparts);
/** Sends a pulse (does not wait). */
int MsgSendPulse(int coid, int priority, int code, int value);
/** Answers message `rcvid`: the sender's MsgSend returns `status`. */
int MsgReply(int rcvid, long status, const void *msg, size_t bytes);
/** Answers message `rcvid` with an error: the sender's MsgSend fails with it. */
int MsgError(int rcvid, int error);

/** Sleeps `duration` milliseconds (QNX delay()). Returns 0. */
unsigned int delay(unsigned int duration);

/* QNX's pthread_create accepts a NULL thread-id pointer: so does this one
 * (the thread is then detached, since nobody can join it). */
static inline int __asyncmsg_pthread_create(pthread_t *__am_tid, const pthread_attr_t *__am_attr,
                                            void *(*__am_start)(void *), void *__am_arg) {
    pthread_t __am_unused;
    int __am_rc = (pthread_create)(__am_tid ? __am_tid : &__am_unused, __am_attr, __am_start, __am_arg);
    if (__am_rc == 0 && __am_tid == NULL) {
        int __am_state = PTHREAD_CREATE_JOINABLE;
        if (__am_attr == NULL || pthread_attr_getdetachstate(__am_attr, &__am_state) != 0 ||
            __am_state == PTHREAD_CREATE_JOINABLE) {
            pthread_detach(__am_unused);
        }
    }
    return __am_rc;
}
#define pthread_create __asyncmsg_pthread_create

#ifdef __cplusplus
}
#endif

#endif /* _ASYNCMSG_SYS_NEUTRINO_H */
