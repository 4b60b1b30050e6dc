/*
 * signal_event: the other two kinds of channel event.
 *
 * 1. SIGEV_SIGNAL_INIT(&ev, SIGUSR1): a put on the empty channel raises
 *    SIGUSR1 in this process; asyncmsg_get then finds the message.
 * 2. SIGEV_NONE_INIT(&ev): nothing is sent; the message is there to get.
 */
#include <signal.h>

#include <sys/asyncmsg.h>
#include <sys/siginfo.h>

#include "check.h"

static volatile sig_atomic_t signals;

static void on_signal(int signo)
{
    if (signo == SIGUSR1)
        signals++;
}

static char first[] = "signalled";
static char second[] = "silent";

/* Takes the one message on `chid` (waiting at most 5 s) and checks it. */
static void get_one(int chid, const char *text)
{
    struct _asyncmsg_get_header *h = NULL;
    WAIT_FOR((h = asyncmsg_get(chid)) != NULL || errno != EAGAIN);
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
    struct sigaction sa;
    struct sigevent ev;
    int chid, chid2, coid, coid2;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);

    memset(&attr, 0, sizeof(attr));
    attr.max_num_buffer = 8;
    attr.trigger_num_msg = 1;

    /* 1. SIGEV_SIGNAL */
    memset(&ev, 0, sizeof(ev));
    SIGEV_SIGNAL_INIT(&ev, SIGUSR1);
    chid = asyncmsg_channel_create(_NTO_CHF_ASYNC_NONBLOCK, 0666, 256, 0, &ev, NULL);
    CHECK(chid != -1);
    coid = asyncmsg_connect_attach(0, 0, chid, 0, 0, &attr);
    CHECK(coid != -1);
    CHECK(signals == 0);
    CHECK(asyncmsg_put(coid, first, sizeof(first), 1, NULL) == EOK);
    WAIT_FOR(signals > 0);
    printf("SIGUSR1 raised %d time(s)\n", (int)signals);
    CHECK(signals == 1);
    get_one(chid, first);

    /* 2. SIGEV_NONE */
    memset(&ev, 0, sizeof(ev));
    SIGEV_NONE_INIT(&ev);
    chid2 = asyncmsg_channel_create(_NTO_CHF_ASYNC_NONBLOCK, 0666, 256, 0, &ev, NULL);
    CHECK(chid2 != -1);
    coid2 = asyncmsg_connect_attach(0, 0, chid2, 0, 0, &attr);
    CHECK(coid2 != -1);
    CHECK(asyncmsg_put(coid2, second, sizeof(second), 2, NULL) == EOK);
    get_one(chid2, second);
    CHECK(signals == 1);
    printf("SIGEV_NONE: no signal\n");

    CHECK(asyncmsg_connect_detach(coid) == EOK);
    CHECK(asyncmsg_connect_detach(coid2) == EOK);
    CHECK(asyncmsg_channel_destroy(chid) == EOK);
    CHECK(asyncmsg_channel_destroy(chid2) == EOK);
    printf("signal_event: done\n");
    return 0;
}
