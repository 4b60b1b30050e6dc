/*
 * <sys/asyncmsg.h> — QNX Neutrino asynchronous messaging, for Linux
 * (libasyncmsg: link with -lasyncmsg -lpthread).
 *
 * A sender puts messages without waiting for the receiver; they are handed
 * over in batches (count trigger, time trigger or flush); a receiver gets
 * every ready message in one call; each put message comes back to its
 * sender through the delivery callback; a channel's event (a pulse) tells
 * the receiver that messages are ready. The connection may be in this
 * process or in another process of the host (shared memory).
 *
 * Buffers: asyncmsg_put lends the caller's buffer, which must stay valid and
 * unchanged until its callback runs (no copy is made in this process).
 * asyncmsg_putv gathers its parts into one message (one copy). Each message
 * that asyncmsg_get returns is the receiver's own copy, writable, freed with
 * asyncmsg_free.
 *
 * Errors: -1 (or NULL) and errno: EBADF (no such chid/coid, or not an
 * asynchronous one; a detached connection), EINVAL (bad argument, NULL
 * buffer with a size, bad event), EAGAIN (would block), ESRCH (no such
 * channel to attach to; channel or peer gone), EMSGSIZE (larger than the
 * channel's buffer_size), ENOMEM (out of memory), EACCES (the channel's
 * mode refuses us).
 */
#ifndef _ASYNCMSG_SYS_ASYNCMSG_H
#define _ASYNCMSG_SYS_ASYNCMSG_H

#include <sys/neutrino.h>

#ifdef __cplusplus
extern "C" {
#endif

/** asyncmsg_flush: return at once instead of waiting for the receiver to
 *  take every message put so far. */
#define ASYNCMSG_FLUSH_NONBLOCK 1

/** recvbuf_callback flags: allocate `num_bufs` buffers of `bufsize` bytes
 *  into bufs[] (return how many), or free the ones in bufs[]. */
#define ASYNCMSG_RECVBUF_ALLOC 1
#define ASYNCMSG_RECVBUF_FREE 2

/** A connection's attributes (asyncmsg_connect_attach, asyncmsg_connect_attr). */
struct _asyncmsg_connection_attr {
    /** Called once per message put without a callback of its own: err is EOK
     *  when the receiver has it, else why it never will (EBADF: detached,
     *  ESRCH: channel or peer gone); buf and handle are the put's. */
    int (*call_back)(int err, void *buf, unsigned handle);
    /** Accepted (QNX's send-buffer size); the channel's buffer_size bounds
     *  each message. */
    size_t buffer_size;
    /** Most messages put and not yet called back (0: 64); puts beyond wait,
     *  or fail with EAGAIN on a _NTO_COF_NONBLOCK connection. */
    unsigned max_num_buffer;
    /** Hand over once this many messages are waiting (0: no count trigger). */
    unsigned trigger_num_msg;
    /** Hand over this long after the first waiting message (nsec 0: none);
     *  interval_nsec: and then periodically. */
    struct _itimer trigger_time;
    unsigned reserve;
};

/** One received message, as asyncmsg_get returns it (a list through next). */
struct _asyncmsg_get_header {
    struct _msg_info info;  /* pid, coid, chid, scoid, msglen, srcmsglen ... */
    int err;                /* EOK */
    iov_t *iov;             /* the message body (iov[0]) */
    int parts;              /* 1 */
    struct _asyncmsg_get_header *next;
    unsigned reserve[2];
};

/** Creates an asynchronous channel; returns its chid.
 *  flags: _NTO_CHF_ASYNC_NONBLOCK (asyncmsg_get returns NULL/EAGAIN instead
 *  of waiting), _NTO_CHF_SENDER_LEN (accepted: srcmsglen is always set).
 *  mode: who may connect from other processes (like a file's write bits).
 *  buffer_size: the largest message. max_num_buffer: most messages one
 *  asyncmsg_get returns (0: 16). ev: NULL, or an event sent when messages
 *  become ready on an empty channel (SIGEV_PULSE, SIGEV_SIGNAL, SIGEV_NONE).
 *  recvbuf_callback: NULL, or where asyncmsg_get takes each message's body
 *  buffer (ASYNCMSG_RECVBUF_ALLOC, one buffer of buffer_size bytes) and where
 *  asyncmsg_free gives it back (ASYNCMSG_RECVBUF_FREE). */
int asyncmsg_channel_create(unsigned flags, mode_t mode, size_t buffer_size,
                            unsigned max_num_buffer, const struct sigevent *ev,
                            int (*recvbuf_callback)(size_t bufsize, unsigned num_bufs,
                                                    void *bufs[], int flags));
/** Destroys a channel: its connections' messages are called back with ESRCH. */
int asyncmsg_channel_destroy(int chid);
/** Connects to channel (nd, pid, chid): pid 0 (or getpid()) is this process,
 *  any other pid a process of this host. Returns a coid >= index.
 *  flags: _NTO_COF_NONBLOCK (puts fail with EAGAIN instead of waiting).
 *  attr: NULL for the defaults. */
int asyncmsg_connect_attach(uint32_t nd, pid_t pid, int chid, unsigned index, unsigned flags,
                            const struct _asyncmsg_connection_attr *attr);
/** Detaches: messages not yet taken are called back with EBADF first. */
int asyncmsg_connect_detach(int coid);
/** Stores the attributes in *old_attr (if not NULL), then applies *new_attr
 *  (if not NULL). */
int asyncmsg_connect_attr(int coid, struct _asyncmsg_connection_attr *old_attr,
                          const struct _asyncmsg_connection_attr *new_attr);
/** Puts a message; `buff` is lent until the callback (call_back, or the
 *  connection's if NULL) is called with it and `handle`. */
int asyncmsg_put(int coid, const void *buff, size_t size, unsigned handle,
                 int (*call_back)(int err, void *buf, unsigned handle));
/** Puts the `parts` buffers of `iov` as one message (gathered: one copy); the
 *  callback gets `iov` as its buf. */
int asyncmsg_putv(int coid, const iov_t *iov, int parts, unsigned handle,
                  int (*call_back)(int err, void *buf, unsigned handle));
/** Hands over every message put so far; mode 0 waits until the receiver took
 *  them, ASYNCMSG_FLUSH_NONBLOCK returns at once. */
int asyncmsg_flush(int coid, int mode);
/** Takes the ready messages (at most max_num_buffer): a NULL-terminated list,
 *  each node freed with asyncmsg_free. Waits for one unless the channel is
 *  _NTO_CHF_ASYNC_NONBLOCK, which returns NULL with EAGAIN when empty. */
struct _asyncmsg_get_header *asyncmsg_get(int chid);
/** Frees a node of asyncmsg_get's list, or a buffer of asyncmsg_malloc. */
void asyncmsg_free(void *buf);
/** Allocates a buffer to put; free it with asyncmsg_free once called back. */
void *asyncmsg_malloc(size_t size);

#ifdef __cplusplus
}
#endif

#endif /* _ASYNCMSG_SYS_ASYNCMSG_H */
