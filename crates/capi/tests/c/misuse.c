/*
 * misuse: every misuse fails with -1 (or NULL) and the documented errno,
 * and nothing crashes. Each check prints the call and what it returned.
 */
#include <stdatomic.h>
#include <sys/wait.h>

#include <sys/asyncmsg.h>
#include <sys/dispatch.h>
#include <sys/neutrino.h>

#include "check.h"

static const char *errname(int e)
{
    switch (e) {
    case EOK: return "EOK";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    case ESRCH: return "ESRCH";
    case EMSGSIZE: return "EMSGSIZE";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case ENOSYS: return "ENOSYS";
    case ENOMEM: return "ENOMEM";
    case EFAULT: return "EFAULT";
    case EACCES: return "EACCES";
    default: return "other";
    }
}

static int failures;

/* `expr` (an int call) must return -1 with errno `e`. */
#define FAILS_WITH(expr, e)                                                         \
    do {                                                                            \
        int fw_rc, fw_err;                                                          \
        errno = 0;                                                                  \
        fw_rc = (expr);                                                             \
        fw_err = errno;                                                             \
        printf("%-64s -> %d %s\n", #expr, fw_rc, fw_rc == -1 ? errname(fw_err) : ""); \
        if (fw_rc != -1 || fw_err != (e)) {                                         \
            printf("%s:%d: expected -1 %s\n", __FILE__, __LINE__, errname(e));     \
            failures++;                                                             \
        }                                                                           \
    } while (0)

/* `expr` (a call returning a pointer) must return NULL with errno `e`. */
#define NULL_WITH(expr, e)                                                          \
    do {                                                                            \
        void *nw_p;                                                                 \
        int nw_err;                                                                 \
        errno = 0;                                                                  \
        nw_p = (void *)(expr);                                                      \
        nw_err = errno;                                                             \
        printf("%-64s -> %s %s\n", #expr, nw_p == NULL ? "NULL" : "non-NULL",       \
               nw_p == NULL ? errname(nw_err) : "");                                \
        if (nw_p != NULL || nw_err != (e)) {                                        \
            printf("%s:%d: expected NULL %s\n", __FILE__, __LINE__, errname(e));   \
            failures++;                                                             \
        }                                                                           \
    } while (0)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int called;
static int errs[16];
static int n_ebadf;

static int callback(int err, void *buf, unsigned handle)
{
    (void)buf;
    (void)handle;
    pthread_mutex_lock(&lock);
    if (called < 16)
        errs[called] = err;
    if (err == EBADF)
        n_ebadf++;
    called++;
    pthread_mutex_unlock(&lock);
    return 0;
}

static int calls(void)
{
    int n;
    pthread_mutex_lock(&lock);
    n = called;
    pthread_mutex_unlock(&lock);
    return n;
}

static void reset_calls(void)
{
    pthread_mutex_lock(&lock);
    called = 0;
    n_ebadf = 0;
    memset(errs, 0, sizeof(errs));
    pthread_mutex_unlock(&lock);
}

/* A thread sending one message (41) on `coid`. */
struct sender {
    int coid;
    int rc;
    int reply;
};

static void *send_thread(void *arg)
{
    struct sender *s = arg;
    int value = 41;
    s->rc = MsgSend(s->coid, &value, sizeof(value), &s->reply, sizeof(s->reply));
    return NULL;
}

static char small[] = "small";
static char big[200];

int main(void)
{
    struct _asyncmsg_connection_attr attr, old;
    struct _pulse pulse;
    struct _msg_info info;
    struct _server_info sinfo;
    struct sigevent ev;
    char reply[16];
    iov_t iov[2];
    int chid, coid, coid2, nbchid, nbcoid, schid, scoid, i;
    pid_t dead;

    memset(&attr, 0, sizeof(attr));
    attr.call_back = callback;
    attr.max_num_buffer = 8;
    attr.trigger_num_msg = 1;

    chid = asyncmsg_channel_create(_NTO_CHF_ASYNC_NONBLOCK, 0666, 100, 0, NULL, NULL);
    CHECK(chid != -1);
    coid = asyncmsg_connect_attach(0, 0, chid, 0, 0, &attr);
    CHECK(coid != -1);

    /* Connections that do not exist. */
    FAILS_WITH(asyncmsg_put(9999, small, sizeof(small), 0, NULL), EBADF);
    FAILS_WITH(asyncmsg_put(-1, small, sizeof(small), 0, NULL), EBADF);
    SETIOV(&iov[0], small, sizeof(small));
    FAILS_WITH(asyncmsg_putv(9999, iov, 1, 0, NULL), EBADF);
    FAILS_WITH(asyncmsg_flush(9999, 0), EBADF);
    FAILS_WITH(asyncmsg_flush(-1, ASYNCMSG_FLUSH_NONBLOCK), EBADF);
    FAILS_WITH(asyncmsg_connect_detach(9999), EBADF);
    FAILS_WITH(asyncmsg_connect_detach(-1), EBADF);
    FAILS_WITH(asyncmsg_connect_attr(9999, &old, NULL), EBADF);
    FAILS_WITH(asyncmsg_connect_attr(-1, &old, &attr), EBADF);

    /* Channels that do not exist. */
    NULL_WITH(asyncmsg_get(9999), EBADF);
    NULL_WITH(asyncmsg_get(-1), EBADF);
    FAILS_WITH(asyncmsg_channel_destroy(9999), EBADF);
    FAILS_WITH(asyncmsg_channel_destroy(-1), EBADF);
    /* No such channel to attach to: ESRCH. */
    FAILS_WITH(asyncmsg_connect_attach(0, 0, 9999, 0, 0, &attr), ESRCH);
    FAILS_WITH(asyncmsg_connect_attach(0, 0, -1, 0, 0, &attr), ESRCH);
    /* A process that is gone: no such channel either. */
    dead = fork();
    CHECK(dead != -1);
    if (dead == 0)
        _exit(0);
    CHECK(waitpid(dead, NULL, 0) == dead);
    FAILS_WITH(asyncmsg_connect_attach(0, dead, chid, 0, 0, &attr), ESRCH);

    /* Ids of the synchronous companion are not asynchronous ones: EBADF. */
    schid = ChannelCreate(0);
    CHECK(schid != -1);
    scoid = ConnectAttach(0, 0, schid, _NTO_SIDE_CHANNEL, 0);
    CHECK(scoid != -1);
    NULL_WITH(asyncmsg_get(schid), EBADF);
    FAILS_WITH(asyncmsg_channel_destroy(schid), EBADF);
    FAILS_WITH(asyncmsg_put(scoid, small, sizeof(small), 0, NULL), EBADF);
    FAILS_WITH(asyncmsg_flush(scoid, 0), EBADF);
    FAILS_WITH(asyncmsg_connect_detach(scoid), EBADF);
    CHECK(ConnectDetach(scoid) != -1);
    CHECK(ChannelDestroy(schid) != -1);

    /* A bad event. */
    memset(&ev, 0, sizeof(ev));
    ev.sigev_notify = 0x7777;
    FAILS_WITH(asyncmsg_channel_create(0, 0666, 100, 0, &ev, NULL), EINVAL);

    /* Bad arguments. */
    FAILS_WITH(asyncmsg_put(coid, NULL, 10, 0, NULL), EINVAL);
    FAILS_WITH(asyncmsg_putv(coid, iov, -1, 0, NULL), EINVAL);
    FAILS_WITH(asyncmsg_putv(coid, NULL, 1, 0, NULL), EINVAL);

    /* Larger than the channel's buffer_size (100). */
    memset(big, 'b', sizeof(big));
    FAILS_WITH(asyncmsg_put(coid, big, 101, 0, NULL), EMSGSIZE);
    FAILS_WITH(asyncmsg_put(coid, big, sizeof(big), 0, NULL), EMSGSIZE);
    SETIOV(&iov[0], big, 60);
    SETIOV(&iov[1], big + 60, 60);
    FAILS_WITH(asyncmsg_putv(coid, iov, 2, 0, NULL), EMSGSIZE);
    /* None of these was taken: nothing to get, nothing called back. */
    NULL_WITH(asyncmsg_get(chid), EAGAIN);
    CHECK(calls() == 0);
    /* Exactly buffer_size fits. */
    CHECK(asyncmsg_put(coid, big, 100, 7, NULL) == EOK);
    {
        struct _asyncmsg_get_header *h = NULL;
        WAIT_FOR((h = asyncmsg_get(chid)) != NULL);
        CHECK(h != NULL);
        CHECK(h->info.msglen == 100);
        CHECK(memcmp(h->iov->iov_base, big, 100) == 0);
        asyncmsg_free(h);
        printf("a message of exactly buffer_size: taken\n");
    }
    WAIT_FOR(calls() == 1);
    CHECK(calls() == 1);
    CHECK(errs[0] == EOK);
    reset_calls();

    /* asyncmsg_free(NULL) does nothing. */
    asyncmsg_free(NULL);
    printf("asyncmsg_free(NULL): no-op\n");

    /* A full non-blocking connection: the third put would wait. */
    nbchid = asyncmsg_channel_create(_NTO_CHF_ASYNC_NONBLOCK, 0666, 100, 0, NULL, NULL);
    CHECK(nbchid != -1);
    memset(&attr, 0, sizeof(attr));
    attr.call_back = callback;
    attr.max_num_buffer = 2;
    attr.trigger_num_msg = 0;
    nbcoid = asyncmsg_connect_attach(0, 0, nbchid, 0, _NTO_COF_NONBLOCK, &attr);
    CHECK(nbcoid != -1);
    CHECK(asyncmsg_put(nbcoid, small, sizeof(small), 1, NULL) == EOK);
    CHECK(asyncmsg_put(nbcoid, small, sizeof(small), 2, NULL) == EOK);
    FAILS_WITH(asyncmsg_put(nbcoid, small, sizeof(small), 3, NULL), EAGAIN);
    CHECK(calls() == 0);

    /* Detaching with two messages not taken: both called back with EBADF
     * before the detach returns; the second detach finds nothing. */
    CHECK(asyncmsg_connect_detach(nbcoid) == EOK);
    pthread_mutex_lock(&lock);
    printf("detach with 2 untaken: %d callbacks (%s, %s)\n", called, errname(errs[0]),
           errname(errs[1]));
    pthread_mutex_unlock(&lock);
    CHECK(calls() == 2);
    CHECK(errs[0] == EBADF && errs[1] == EBADF);
    FAILS_WITH(asyncmsg_connect_detach(nbcoid), EBADF);
    FAILS_WITH(asyncmsg_put(nbcoid, small, sizeof(small), 4, NULL), EBADF);
    NULL_WITH(asyncmsg_get(nbchid), EAGAIN);
    reset_calls();

    /* The default limit (max_num_buffer 0): 64 messages not called back. */
    memset(&attr, 0, sizeof(attr));
    attr.call_back = callback;
    attr.max_num_buffer = 0;
    attr.trigger_num_msg = 0;
    coid2 = asyncmsg_connect_attach(0, 0, nbchid, 0, _NTO_COF_NONBLOCK, &attr);
    CHECK(coid2 != -1);
    for (i = 0; i < 64; i++)
        CHECK(asyncmsg_put(coid2, small, sizeof(small), i, NULL) == EOK);
    FAILS_WITH(asyncmsg_put(coid2, small, sizeof(small), 64, NULL), EAGAIN);
    CHECK(asyncmsg_connect_detach(coid2) == EOK);
    printf("default limit: 64 put, detach called back %d\n", calls());
    CHECK(calls() == 64);
    CHECK(n_ebadf == 64);
    reset_calls();

    /* Destroying a channel calls its connections' messages back with ESRCH;
     * the connection then finds the channel gone. */
    memset(&attr, 0, sizeof(attr));
    attr.call_back = callback;
    attr.max_num_buffer = 8;
    attr.trigger_num_msg = 0;
    coid2 = asyncmsg_connect_attach(0, 0, nbchid, 0, 0, &attr);
    CHECK(coid2 != -1);
    CHECK(asyncmsg_put(coid2, small, sizeof(small), 5, NULL) == EOK);
    CHECK(asyncmsg_channel_destroy(nbchid) == EOK);
    WAIT_FOR(calls() == 1);
    printf("channel destroyed with 1 untaken: %d callbacks (%s)\n", calls(), errname(errs[0]));
    CHECK(calls() == 1);
    CHECK(errs[0] == ESRCH);
    FAILS_WITH(asyncmsg_put(coid2, small, sizeof(small), 6, NULL), ESRCH);
    FAILS_WITH(asyncmsg_channel_destroy(nbchid), EBADF);
    NULL_WITH(asyncmsg_get(nbchid), EBADF);
    CHECK(asyncmsg_connect_detach(coid2) == EOK);
    FAILS_WITH(asyncmsg_connect_detach(coid2), EBADF);

    /* The synchronous companion. */
    FAILS_WITH(MsgReply(9999, EOK, NULL, 0), ESRCH);
    FAILS_WITH(MsgError(9999, EINVAL), ESRCH);
    FAILS_WITH(MsgSend(9999, small, sizeof(small), reply, sizeof(reply)), EBADF);
    FAILS_WITH(MsgSend(-1, small, sizeof(small), reply, sizeof(reply)), EBADF);
    FAILS_WITH(MsgSendPulse(9999, -1, 1, 1), EBADF);
    FAILS_WITH(MsgReceive(9999, &pulse, sizeof(pulse), &info), ESRCH);
    FAILS_WITH(MsgReceivePulse(9999, &pulse, sizeof(pulse), NULL), ESRCH);
    FAILS_WITH(ChannelDestroy(9999), EINVAL);
    FAILS_WITH(ConnectDetach(9999), EINVAL);
    FAILS_WITH(ConnectServerInfo(0, 9999, &sinfo), EINVAL);
    FAILS_WITH(ConnectAttach(0, 0, 9999, _NTO_SIDE_CHANNEL, 0), ESRCH);
    schid = ChannelCreate(0);
    CHECK(schid != -1);
    scoid = ConnectAttach(0, 0, schid, _NTO_SIDE_CHANNEL, 0);
    CHECK(scoid != -1);
    FAILS_WITH(MsgSend(scoid, NULL, 10, reply, sizeof(reply)), EFAULT);

    /* A message answered twice: the second answer finds no such rcvid. */
    {
        struct sender s;
        pthread_t tid;
        int rcvid, value = 0;

        memset(&s, 0, sizeof(s));
        s.coid = scoid;
        CHECK(pthread_create(&tid, NULL, send_thread, &s) == 0);
        rcvid = MsgReceive(schid, &value, sizeof(value), &info);
        CHECK(rcvid > 0);
        CHECK(value == 41);
        value = 42;
        CHECK(MsgReply(rcvid, 7, &value, sizeof(value)) != -1);
        FAILS_WITH(MsgReply(rcvid, 8, &value, sizeof(value)), ESRCH);
        FAILS_WITH(MsgError(rcvid, EINVAL), ESRCH);
        CHECK(pthread_join(tid, NULL) == 0);
        printf("MsgSend answered: %d, reply %d\n", s.rc, s.reply);
        CHECK(s.rc == 7 && s.reply == 42);
    }

    CHECK(ConnectDetach(scoid) != -1);
    FAILS_WITH(MsgSend(scoid, small, sizeof(small), reply, sizeof(reply)), EBADF);
    FAILS_WITH(ConnectDetach(scoid), EINVAL);
    CHECK(ChannelDestroy(schid) != -1);
    FAILS_WITH(ChannelDestroy(schid), EINVAL);
    FAILS_WITH(MsgReceive(schid, &pulse, sizeof(pulse), &info), ESRCH);

    /* Names. */
    FAILS_WITH(name_open("asyncmsg_capi_no_such_name", 0), ENOENT);
    NULL_WITH(name_attach(NULL, "", 0), EINVAL);
    NULL_WITH(name_attach(NULL, "a/b", 0), EINVAL);
    {
        name_attach_t *a = name_attach(NULL, "asyncmsg_capi_misuse", 0);
        CHECK(a != NULL);
        NULL_WITH(name_attach(NULL, "asyncmsg_capi_misuse", 0), EEXIST);
        CHECK(name_detach(a, 0) != -1);
        FAILS_WITH(name_open("asyncmsg_capi_misuse", 0), ENOENT);
    }

    CHECK(asyncmsg_connect_detach(coid) == EOK);
    CHECK(asyncmsg_channel_destroy(chid) == EOK);

    if (failures != 0) {
        printf("misuse: %d checks failed\n", failures);
        return 1;
    }
    printf("misuse: all checks passed\n");
    return 0;
}
