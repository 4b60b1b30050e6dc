/*
 * pulse_event: an asynchronous channel's event is a pulse to a channel of
 * the synchronous companion, the way QNX programs wait for messages.
 *
 * 1. SIGEV_PULSE_INIT: the put makes MsgReceivePulse return the pulse
 *    (code and value as given), then asyncmsg_get finds the message.
 * 2. The event's fields set by hand; MsgReceive returns 0 for the pulse.
 * 3. A thread started QNX-style (pthread_create with a NULL thread id and
 *    the chid as its argument) receives the pulse of the next message on
 *    the drained first channel: the event comes again.
 *
 * Includes only <sys/asyncmsg.h> and <stdio.h>, as QNX programs do.
 */
#include <stdio.h>
#include <sys/asyncmsg.h>

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            int check_errno = errno;                                                \
            printf("%s:%d: CHECK(%s) failed (errno %d: %s)\n", __FILE__, __LINE__,  \
                   #cond, check_errno, strerror(check_errno));                      \
            fflush(stdout);                                                         \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

#define WAIT_FOR(cond)                                                              \
    do {                                                                            \
        int wait_ms;                                                                \
        for (wait_ms = 0; wait_ms < 5000 && !(cond); wait_ms++)                     \
            usleep(1000);                                                           \
    } while (0)

#define MY_PULSE_CODE (_PULSE_CODE_MINAVAIL + 5)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int called;
static int failed;

static int callback(int err, void *buf, unsigned handle)
{
    (void)buf;
    (void)handle;
    pthread_mutex_lock(&lock);
    if (err != EOK)
        failed++;
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

/* What the pulse thread received. */
static int thread_done;
static int thread_rc;
static int thread_code;
static int thread_value;

static void *pulse_thread(void *arg)
{
    int chid = (int)(intptr_t)arg;
    struct _pulse pulse;
    int rc;

    memset(&pulse, 0, sizeof(pulse));
    rc = MsgReceivePulse(chid, &pulse, sizeof(pulse), NULL);
    pthread_mutex_lock(&lock);
    thread_rc = rc;
    thread_code = pulse.code;
    thread_value = pulse.value.sival_int;
    thread_done = 1;
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int thread_finished(void)
{
    int done;
    pthread_mutex_lock(&lock);
    done = thread_done;
    pthread_mutex_unlock(&lock);
    return done;
}

static char first[] = "pulse me";
static char second[] = "pulse me by hand";
static char third[] = "pulse me again";

/* Takes the one message on `chid` and checks it is `text`. */
static void get_one(int chid, const char *text)
{
    struct _asyncmsg_get_header *h = asyncmsg_get(chid);
    CHECK(h != NULL);
    printf("got: %s\n", (char *)h->iov->iov_base);
    CHECK(h->err == EOK);
    CHECK(strcmp(h->iov->iov_base, text) == 0);
    CHECK(h->next == NULL);
    asyncmsg_free(h);
}

int main(void)
{
    struct _asyncmsg_connection_attr attr;
    struct sigevent gev, gev2;
    struct _pulse pulse;
    struct _msg_info info;
    int pchid, coid, chid, chid2, acoid, acoid2, rc;

    pchid = ChannelCreate(0);
    CHECK(pchid != -1);
    coid = ConnectAttach(0, 0, pchid, _NTO_SIDE_CHANNEL, 0);
    CHECK(coid != -1);
    CHECK(coid >= _NTO_SIDE_CHANNEL);

    /* 1. SIGEV_PULSE_INIT */
    memset(&gev, 0, sizeof(gev));
    gev.sigev_coid = coid;
    SIGEV_PULSE_INIT(&gev, coid, SIGEV_PULSE_PRIO_INHERIT, MY_PULSE_CODE, 42);
    chid = asyncmsg_channel_create(_NTO_CHF_SENDER_LEN, 0666, 2048, 5, &gev, NULL);
    CHECK(chid != -1);

    memset(&attr, 0, sizeof(attr));
    attr.call_back = callback;
    attr.max_num_buffer = 8;
    attr.trigger_num_msg = 1;
    acoid = asyncmsg_connect_attach(0, 0, chid, 0, 0, &attr);
    CHECK(acoid != -1);
    CHECK(asyncmsg_put(acoid, first, strlen(first) + 1, 1, NULL) == EOK);

    memset(&pulse, 0, sizeof(pulse));
    rc = MsgReceivePulse(pchid, &pulse, sizeof(pulse), NULL);
    printf("pulse: rc %d type %d code %d value %d\n", rc, pulse.type, pulse.code,
           pulse.value.sival_int);
    CHECK(rc == EOK);
    CHECK(pulse.type == _PULSE_TYPE);
    CHECK(pulse.subtype == _PULSE_SUBTYPE);
    CHECK(pulse.code == MY_PULSE_CODE);
    CHECK(pulse.value.sival_int == 42);
    get_one(chid, first);

    /* 2. The fields by hand; MsgReceive returns 0 for a pulse. */
    memset(&gev2, 0, sizeof(gev2));
    gev2.sigev_notify = SIGEV_PULSE;
    gev2.sigev_coid = coid;
    gev2.sigev_priority = 10;
    gev2.sigev_code = _PULSE_CODE_MINAVAIL + 7;
    gev2.sigev_value.sival_int = 77;
    chid2 = asyncmsg_channel_create(0, 0666, 2048, 0, &gev2, NULL);
    CHECK(chid2 != -1);
    CHECK(chid2 != chid);
    acoid2 = asyncmsg_connect_attach(0, 0, chid2, 0, 0, &attr);
    CHECK(acoid2 != -1);
    CHECK(acoid2 != acoid);
    CHECK(asyncmsg_put(acoid2, second, strlen(second) + 1, 2, NULL) == EOK);

    memset(&pulse, 0, sizeof(pulse));
    rc = MsgReceive(pchid, &pulse, sizeof(pulse), &info);
    printf("MsgReceive: rc %d code %d value %d\n", rc, pulse.code, pulse.value.sival_int);
    CHECK(rc == 0);
    CHECK(pulse.code == _PULSE_CODE_MINAVAIL + 7);
    CHECK(pulse.value.sival_int == 77);
    get_one(chid2, second);

    /* 3. The drained first channel sends its event again, to a thread. */
    CHECK(pthread_create(NULL, NULL, pulse_thread, (void *)pchid) == EOK);
    CHECK(asyncmsg_put(acoid, third, strlen(third) + 1, 3, NULL) == EOK);
    WAIT_FOR(thread_finished());
    CHECK(thread_finished());
    printf("thread pulse: rc %d code %d value %d\n", thread_rc, thread_code, thread_value);
    CHECK(thread_rc == 0);
    CHECK(thread_code == MY_PULSE_CODE);
    CHECK(thread_value == 42);
    get_one(chid, third);

    /* 4. MsgSendPulse through the same connection. */
    CHECK(MsgSendPulse(coid, SIGEV_PULSE_PRIO_INHERIT, _PULSE_CODE_MINAVAIL + 9, 99) != -1);
    memset(&pulse, 0, sizeof(pulse));
    CHECK(MsgReceivePulse(pchid, &pulse, sizeof(pulse), NULL) == EOK);
    printf("MsgSendPulse: code %d value %d\n", pulse.code, pulse.value.sival_int);
    CHECK(pulse.code == _PULSE_CODE_MINAVAIL + 9);
    CHECK(pulse.value.sival_int == 99);

    WAIT_FOR(calls() == 3);
    CHECK(calls() == 3);
    CHECK(failed == 0);

    CHECK(asyncmsg_connect_detach(acoid) == EOK);
    CHECK(asyncmsg_connect_detach(acoid2) == EOK);
    CHECK(asyncmsg_channel_destroy(chid) == EOK);
    CHECK(asyncmsg_channel_destroy(chid2) == EOK);
    CHECK(ConnectDetach(coid) != -1);
    CHECK(ChannelDestroy(pchid) != -1);
    printf("delivered %d\n", calls());
    return 0;
}
