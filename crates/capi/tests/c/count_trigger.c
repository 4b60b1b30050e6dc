/*
 * count_trigger: a connection whose count trigger is 3 hands its messages
 * over three at a time. After two puts the non-blocking channel has nothing
 * (asyncmsg_get: NULL, EAGAIN); after the third, one asyncmsg_get returns
 * all three, in the order they were put.
 *
 * Includes only what a QNX program would: <process.h> and <sys/asyncmsg.h>
 * bring in the rest.
 */
#include <process.h>
#include <stdio.h>
#include <sys/asyncmsg.h>
#include <unistd.h>

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

/* Polls `cond` every millisecond, about 5 seconds at most. */
#define WAIT_FOR(cond)                                                              \
    do {                                                                            \
        int wait_ms;                                                                \
        for (wait_ms = 0; wait_ms < 5000 && !(cond); wait_ms++)                     \
            usleep(1000);                                                           \
    } while (0)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int called;
static int failed;
static unsigned handles[8];

static int callback(int err, void *buf, unsigned handle)
{
    (void)buf;
    pthread_mutex_lock(&lock);
    if (err != EOK)
        failed++;
    if (called < 8)
        handles[called] = handle;
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

static char messages[3][16] = {"first", "second", "third"};

int main(void)
{
    struct _asyncmsg_connection_attr attr;
    struct _asyncmsg_get_header *h, *p;
    int chid, coid, i, n;

    chid = asyncmsg_channel_create(_NTO_CHF_ASYNC_NONBLOCK, 0666, 256, 8, NULL, NULL);
    CHECK(chid != -1);
    memset(&attr, 0, sizeof(attr));
    attr.call_back = callback;
    attr.max_num_buffer = 8;
    attr.trigger_num_msg = 3;
    coid = asyncmsg_connect_attach(0, 0, chid, 0, 0, &attr);
    CHECK(coid != -1);

    /* Nothing yet. */
    errno = 0;
    CHECK(asyncmsg_get(chid) == NULL && errno == EAGAIN);

    for (i = 0; i < 2; i++)
        CHECK(asyncmsg_put(coid, messages[i], strlen(messages[i]) + 1, 100 + i, NULL) == EOK);

    /* Two waiting, the trigger is three: still nothing. */
    errno = 0;
    h = asyncmsg_get(chid);
    CHECK(h == NULL);
    CHECK(errno == EAGAIN);
    printf("after 2 puts: EAGAIN\n");
    CHECK(calls() == 0);

    CHECK(asyncmsg_put(coid, messages[2], strlen(messages[2]) + 1, 102, NULL) == EOK);

    /* The third put hands the three over. */
    h = NULL;
    WAIT_FOR((h = asyncmsg_get(chid)) != NULL || errno != EAGAIN);
    CHECK(h != NULL);
    for (p = h, n = 0; p != NULL; p = p->next, n++) {
        CHECK(n < 3);
        printf("got %d: %s\n", n, (char *)p->iov->iov_base);
        CHECK(p->err == EOK);
        CHECK(p->parts == 1);
        CHECK(p->info.msglen == (int)strlen(messages[n]) + 1);
        CHECK(strcmp(p->iov->iov_base, messages[n]) == 0);
    }
    printf("got %d in one get\n", n);
    CHECK(n == 3);
    while (h != NULL) {
        p = h->next;
        asyncmsg_free(h);
        h = p;
    }

    WAIT_FOR(calls() == 3);
    CHECK(calls() == 3);
    CHECK(failed == 0);
    /* Each put called back once, with its own handle. */
    CHECK(handles[0] + handles[1] + handles[2] == 100u + 101u + 102u);
    for (i = 0; i < 3; i++)
        CHECK(handles[i] >= 100u && handles[i] <= 102u && handles[i] != handles[(i + 1) % 3]);

    errno = 0;
    CHECK(asyncmsg_get(chid) == NULL && errno == EAGAIN);

    /* A new count trigger through asyncmsg_connect_attr: 2. */
    {
        struct _asyncmsg_connection_attr old;
        memset(&old, 0, sizeof(old));
        attr.trigger_num_msg = 2;
        CHECK(asyncmsg_connect_attr(coid, &old, &attr) == EOK);
        CHECK(old.trigger_num_msg == 3);
        CHECK(old.call_back == callback);
        memset(&old, 0, sizeof(old));
        CHECK(asyncmsg_connect_attr(coid, &old, NULL) == EOK);
        CHECK(old.trigger_num_msg == 2);
    }
    CHECK(asyncmsg_put(coid, messages[0], strlen(messages[0]) + 1, 103, NULL) == EOK);
    errno = 0;
    CHECK(asyncmsg_get(chid) == NULL && errno == EAGAIN);
    CHECK(asyncmsg_put(coid, messages[1], strlen(messages[1]) + 1, 104, NULL) == EOK);
    h = NULL;
    WAIT_FOR((h = asyncmsg_get(chid)) != NULL || errno != EAGAIN);
    CHECK(h != NULL);
    CHECK(h->next != NULL && h->next->next == NULL);
    CHECK(strcmp(h->iov->iov_base, messages[0]) == 0);
    CHECK(strcmp(h->next->iov->iov_base, messages[1]) == 0);
    asyncmsg_free(h->next);
    asyncmsg_free(h);
    printf("trigger 2 through asyncmsg_connect_attr: got 2\n");
    WAIT_FOR(calls() == 5);
    CHECK(calls() == 5);

    CHECK(asyncmsg_connect_detach(coid) == EOK);
    CHECK(asyncmsg_channel_destroy(chid) == EOK);

    /* One get returns at most the channel's max_num_buffer messages (0: 16):
     * 20 handed over at once come in a get of 16, then one of 4. */
    chid = asyncmsg_channel_create(_NTO_CHF_ASYNC_NONBLOCK, 0666, 256, 0, NULL, NULL);
    CHECK(chid != -1);
    attr.trigger_num_msg = 20;
    attr.max_num_buffer = 32;
    coid = asyncmsg_connect_attach(0, 0, chid, 0, 0, &attr);
    CHECK(coid != -1);
    for (i = 0; i < 20; i++)
        CHECK(asyncmsg_put(coid, messages[i % 3], strlen(messages[i % 3]) + 1, 200 + i, NULL) ==
              EOK);
    {
        int sizes[2] = {0, 0};
        for (i = 0; i < 2; i++) {
            h = NULL;
            WAIT_FOR((h = asyncmsg_get(chid)) != NULL || errno != EAGAIN);
            CHECK(h != NULL);
            while (h != NULL) {
                CHECK(strcmp(h->iov->iov_base, messages[(sizes[0] + sizes[1]) % 3]) == 0);
                sizes[i]++;
                p = h->next;
                asyncmsg_free(h);
                h = p;
            }
        }
        printf("20 ready: gets of %d and %d\n", sizes[0], sizes[1]);
        CHECK(sizes[0] == 16);
        CHECK(sizes[1] == 4);
    }
    WAIT_FOR(calls() == 25);
    CHECK(calls() == 25);
    CHECK(failed == 0);
    CHECK(asyncmsg_connect_detach(coid) == EOK);
    CHECK(asyncmsg_channel_destroy(chid) == EOK);
    printf("delivered %d\n", calls());
    return 0;
}
