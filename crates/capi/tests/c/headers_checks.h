/*
 * headers_checks.h: what headers_first.c and headers_last.c check once the
 * headers are in; compile-time only.
 */
#ifdef __cplusplus
#define STATIC_ASSERT(cond, what) static_assert(cond, what)
#else
#define STATIC_ASSERT(cond, what) _Static_assert(cond, what)
#endif

#define HAS_FIELD(type, field) STATIC_ASSERT(offsetof(type, field) < sizeof(type), #type " has " #field)

/* struct _msg_info */
HAS_FIELD(struct _msg_info, nd);
HAS_FIELD(struct _msg_info, pid);
HAS_FIELD(struct _msg_info, tid);
HAS_FIELD(struct _msg_info, chid);
HAS_FIELD(struct _msg_info, scoid);
HAS_FIELD(struct _msg_info, coid);
HAS_FIELD(struct _msg_info, msglen);
HAS_FIELD(struct _msg_info, srcmsglen);
HAS_FIELD(struct _msg_info, dstmsglen);

/* struct _asyncmsg_get_header */
HAS_FIELD(struct _asyncmsg_get_header, info);
HAS_FIELD(struct _asyncmsg_get_header, info.pid);
HAS_FIELD(struct _asyncmsg_get_header, info.msglen);
HAS_FIELD(struct _asyncmsg_get_header, err);
HAS_FIELD(struct _asyncmsg_get_header, iov);
HAS_FIELD(struct _asyncmsg_get_header, parts);
HAS_FIELD(struct _asyncmsg_get_header, next);

/* struct _asyncmsg_connection_attr */
HAS_FIELD(struct _asyncmsg_connection_attr, call_back);
HAS_FIELD(struct _asyncmsg_connection_attr, buffer_size);
HAS_FIELD(struct _asyncmsg_connection_attr, max_num_buffer);
HAS_FIELD(struct _asyncmsg_connection_attr, trigger_num_msg);
HAS_FIELD(struct _asyncmsg_connection_attr, trigger_time);
HAS_FIELD(struct _asyncmsg_connection_attr, trigger_time.nsec);
HAS_FIELD(struct _asyncmsg_connection_attr, trigger_time.interval_nsec);

/* struct sigevent, with QNX's pulse fields */
HAS_FIELD(struct sigevent, sigev_notify);
HAS_FIELD(struct sigevent, sigev_coid);
HAS_FIELD(struct sigevent, sigev_code);
HAS_FIELD(struct sigevent, sigev_priority);
HAS_FIELD(struct sigevent, sigev_value);
HAS_FIELD(struct sigevent, sigev_value.sival_int);
/* The pulse fields are distinct from each other and from sigev_value. */
STATIC_ASSERT(offsetof(struct sigevent, sigev_code) != offsetof(struct sigevent, sigev_priority),
              "sigev_code and sigev_priority apart");
STATIC_ASSERT(offsetof(struct sigevent, sigev_code) != offsetof(struct sigevent, sigev_coid),
              "sigev_code and sigev_coid apart");
STATIC_ASSERT(offsetof(struct sigevent, sigev_code) != offsetof(struct sigevent, sigev_value),
              "sigev_code and sigev_value apart");
STATIC_ASSERT(offsetof(struct sigevent, sigev_coid) != offsetof(struct sigevent, sigev_notify),
              "sigev_coid and sigev_notify apart");
STATIC_ASSERT(SIGEV_PULSE != SIGEV_SIGNAL && SIGEV_PULSE != SIGEV_NONE, "SIGEV_PULSE apart");

/* struct _pulse */
HAS_FIELD(struct _pulse, type);
HAS_FIELD(struct _pulse, subtype);
HAS_FIELD(struct _pulse, code);
HAS_FIELD(struct _pulse, scoid);
HAS_FIELD(struct _pulse, value);
HAS_FIELD(struct _pulse, value.sival_int);

/* name_attach_t, struct _server_info, struct _io_connect */
HAS_FIELD(name_attach_t, dpp);
HAS_FIELD(name_attach_t, chid);
HAS_FIELD(struct _server_info, pid);
HAS_FIELD(struct _server_info, chid);
HAS_FIELD(struct _io_connect, type);
HAS_FIELD(struct _io_connect, subtype);
STATIC_ASSERT(offsetof(struct _io_connect, type) == offsetof(struct _pulse, type),
              "a connect message's type is where a header's type is");

/* iov_t and its macros */
HAS_FIELD(iov_t, iov_base);
HAS_FIELD(iov_t, iov_len);

/* Constants */
STATIC_ASSERT(EOK == 0, "EOK");
STATIC_ASSERT(ND_LOCAL_NODE == 0, "ND_LOCAL_NODE");
STATIC_ASSERT(_NTO_SIDE_CHANNEL > 0, "_NTO_SIDE_CHANNEL");
STATIC_ASSERT(_PULSE_CODE_MINAVAIL == 0 && _PULSE_CODE_MAXAVAIL == 127, "pulse codes");
STATIC_ASSERT(_PULSE_CODE_DISCONNECT < 0 && _PULSE_CODE_UNBLOCK < 0, "kernel pulse codes");
STATIC_ASSERT(_IO_CONNECT >= _IO_BASE && _IO_CONNECT <= _IO_MAX, "_IO_CONNECT");
STATIC_ASSERT(ASYNCMSG_FLUSH_NONBLOCK != 0, "ASYNCMSG_FLUSH_NONBLOCK");
STATIC_ASSERT(ASYNCMSG_RECVBUF_ALLOC != ASYNCMSG_RECVBUF_FREE, "recvbuf flags");
STATIC_ASSERT((_NTO_CHF_ASYNC_NONBLOCK & _NTO_CHF_SENDER_LEN) == 0, "channel flags");
STATIC_ASSERT((_NTO_COF_NONBLOCK & _NTO_COF_CLOEXEC) == 0, "connection flags");

__SRCVERSION("headers_checks.h $Rev$");

/* Every function has the documented type. */
int (*const check_channel_create)(unsigned, mode_t, size_t, unsigned, const struct sigevent *,
                                  int (*)(size_t, unsigned, void *[], int)) =
    asyncmsg_channel_create;
int (*const check_channel_destroy)(int) = asyncmsg_channel_destroy;
int (*const check_connect_attach)(uint32_t, pid_t, int, unsigned, unsigned,
                                  const struct _asyncmsg_connection_attr *) =
    asyncmsg_connect_attach;
int (*const check_connect_detach)(int) = asyncmsg_connect_detach;
int (*const check_connect_attr)(int, struct _asyncmsg_connection_attr *,
                                const struct _asyncmsg_connection_attr *) = asyncmsg_connect_attr;
int (*const check_put)(int, const void *, size_t, unsigned, int (*)(int, void *, unsigned)) =
    asyncmsg_put;
int (*const check_putv)(int, const iov_t *, int, unsigned, int (*)(int, void *, unsigned)) =
    asyncmsg_putv;
int (*const check_flush)(int, int) = asyncmsg_flush;
struct _asyncmsg_get_header *(*const check_get)(int) = asyncmsg_get;
void (*const check_free)(void *) = asyncmsg_free;
void *(*const check_malloc)(size_t) = asyncmsg_malloc;

int (*const check_ChannelCreate)(unsigned) = ChannelCreate;
int (*const check_ChannelDestroy)(int) = ChannelDestroy;
int (*const check_ConnectAttach)(uint32_t, pid_t, int, unsigned, int) = ConnectAttach;
int (*const check_ConnectDetach)(int) = ConnectDetach;
int (*const check_ConnectServerInfo)(pid_t, int, struct _server_info *) = ConnectServerInfo;
int (*const check_MsgReceive)(int, void *, size_t, struct _msg_info *) = MsgReceive;
int (*const check_MsgReceivePulse)(int, void *, size_t, struct _msg_info *) = MsgReceivePulse;
int (*const check_MsgSend)(int, const void *, size_t, void *, size_t) = MsgSend;
int (*const check_MsgSendv)(int, const iov_t *, int, const iov_t *, int) = MsgSendv;
int (*const check_MsgSendPulse)(int, int, int, int) = MsgSendPulse;
int (*const check_MsgReply)(int, long, const void *, size_t) = MsgReply;
int (*const check_MsgError)(int, int) = MsgError;
unsigned int (*const check_delay)(unsigned int) = delay;

name_attach_t *(*const check_name_attach)(dispatch_t *, const char *, unsigned) = name_attach;
int (*const check_name_detach)(name_attach_t *, unsigned) = name_detach;
int (*const check_name_open)(const char *, int) = name_open;
int (*const check_name_close)(int) = name_close;

/* The macros, used the way QNX programs use them. */
int check_macros(struct sigevent *ev, iov_t *iov, char *buf, size_t len, int coid);
int check_macros(struct sigevent *ev, iov_t *iov, char *buf, size_t len, int coid)
{
    SIGEV_PULSE_INIT(ev, coid, SIGEV_PULSE_PRIO_INHERIT, _PULSE_CODE_MINAVAIL + 1, 7);
    ev->sigev_notify = SIGEV_PULSE;
    ev->sigev_coid = coid;
    ev->sigev_priority = 10;
    ev->sigev_code = _PULSE_CODE_MAXAVAIL;
    ev->sigev_value.sival_int = 42;
    SIGEV_SIGNAL_INIT(ev, SIGUSR1);
    SIGEV_NONE_INIT(ev);
    SETIOV(iov, buf, len);
    return GETIOVBASE(iov) == buf && GETIOVLEN(iov) == len ? EOK : -1;
}
