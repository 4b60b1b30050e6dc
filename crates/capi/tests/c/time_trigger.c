/*
 * time_trigger: a connection with only a time trigger (100 ms after the
 * first waiting message) hands its four messages over together when the
 * time is up; the channel's pulse says so, and one asyncmsg_get returns
 * all four.
 */
#include <stdatomic.h>

#include <sys/asyncmsg.h>
#include <sys/neutrino.h>
#include <sys/siginfo.h>

#include "check.h"

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#define TIMER_PULSE_CODE (_PULSE_CODE_MINAVAIL + 1)

static atomic_int called;
static atomic_int failed;

static int callback(int err, void *buf, unsigned handle)
{
    (void)buf;
    (void)handle;
    if (err != EOK)
        atomic_fetch_add(&failed, 1);
    atomic_fetch_add(&called, 1);
    return 0;
}

static char messages[4][16] = {"tick 0", "tick 1", "tick 2", "tick 3"};

int main(void)
{
    struct _asyncmsg_connection_attr attr;
    struct _asyncmsg_get_header *h, *next;
    struct sigevent ev;
    struct _pulse pulse;
    long long start, elapsed_ms;
    int pchid, pcoid, chid, coid, i, n;

    pchid = ChannelCreate(0);
    CHECK(pchid != -1);
    pcoid = ConnectAttach(ND_LOCAL_NODE, 0, pchid, _NTO_SIDE_CHANNEL, 0);
    CHECK(pcoid != -1);
    SIGEV_PULSE_INIT(&ev, pcoid, SIGEV_PULSE_PRIO_INHERIT, TIMER_PULSE_CODE, 0);

    chid = asyncmsg_channel_create(0, 0666, 256, 8, &ev, NULL);
    CHECK(chid != -1);
    memset(&attr, 0, sizeof(attr));
    attr.call_back = callback;
    attr.max_num_buffer = 8;
    attr.trigger_num_msg = 0;
    attr.trigger_time.nsec = 100000000; /* 100 ms */
    attr.trigger_time.interval_nsec = 0;
    coid = asyncmsg_connect_attach(0, 0, chid, 0, 0, &attr);
    CHECK(coid != -1);

    start = now_ns();
    for (i = 0; i < 4; i++)
        CHECK(asyncmsg_put(coid, messages[i], strlen(messages[i]) + 1, i, NULL) == EOK);

    memset(&pulse, 0, sizeof(pulse));
    CHECK(MsgReceivePulse(pchid, &pulse, sizeof(pulse), NULL) == 0);
    elapsed_ms = (now_ns() - start) / 1000000;
    printf("pulse code %d after %lld ms\n", pulse.code, elapsed_ms);
    CHECK(pulse.code == TIMER_PULSE_CODE);
    CHECK(elapsed_ms >= 90);
    CHECK(elapsed_ms < 5000);

    h = asyncmsg_get(chid);
    CHECK(h != NULL);
    for (n = 0; h != NULL; h = next, n++) {
        next = h->next;
        CHECK(n < 4);
        printf("got %s\n", (char *)h->iov->iov_base);
        CHECK(h->err == EOK);
        CHECK(strcmp(h->iov->iov_base, messages[n]) == 0);
        asyncmsg_free(h);
    }
    printf("got %d in one get\n", n);
    CHECK(n == 4);

    WAIT_FOR(atomic_load(&called) == 4);
    CHECK(atomic_load(&called) == 4);
    CHECK(atomic_load(&failed) == 0);

    /* QNX's delay(): milliseconds. */
    start = now_ns();
    CHECK(delay(20) == 0);
    elapsed_ms = (now_ns() - start) / 1000000;
    printf("delay(20) took %lld ms\n", elapsed_ms);
    CHECK(elapsed_ms >= 19 && elapsed_ms < 5000);

    CHECK(asyncmsg_connect_detach(coid) == EOK);
    CHECK(asyncmsg_channel_destroy(chid) == EOK);
    CHECK(ConnectDetach(pcoid) != -1);
    CHECK(ChannelDestroy(pchid) != -1);
    printf("delivered %d\n", atomic_load(&called));
    return 0;
}
