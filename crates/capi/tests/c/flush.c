/*
 * flush: a connection without triggers keeps its messages until a flush.
 *
 * 1. Three puts are not visible (non-blocking asyncmsg_get: EAGAIN) until
 *    asyncmsg_flush(coid, ASYNCMSG_FLUSH_NONBLOCK), which returns at once;
 *    then all three are.
 * 2. asyncmsg_flush(coid, 0) from a second thread returns only once the
 *    receiver (this thread) took the messages.
 */
#include <pthread.h>
#include <stdatomic.h>

#include <sys/asyncmsg.h>

#include "check.h"

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

static char messages[5][16] = {"one", "two", "three", "four", "five"};

/* Takes messages until `want` arrived, checking their order from `first`;
 * returns how many. */
static int take(int chid, int first, int want, atomic_int *flushed_early, atomic_int *flushed)
{
    struct _asyncmsg_get_header *h, *next;
    long long until = now_ms() + 5000;
    int n = 0;

    while (n < want && now_ms() < until) {
        /* A waiting flush must not return before its messages are taken. */
        if (flushed != NULL && atomic_load(flushed) && n == 0)
            atomic_store(flushed_early, 1);
        errno = 0;
        h = asyncmsg_get(chid);
        if (h == NULL) {
            CHECK(errno == EAGAIN);
            usleep(1000);
            continue;
        }
        for (; h != NULL; h = next) {
            next = h->next;
            CHECK(first + n < 5);
            printf("got %s\n", (char *)h->iov->iov_base);
            CHECK(h->err == EOK);
            CHECK(strcmp(h->iov->iov_base, messages[first + n]) == 0);
            n++;
            asyncmsg_free(h);
        }
    }
    return n;
}

struct flusher {
    int coid;
    atomic_int started;
    atomic_int flushed;
    int rc;
    int err;
};

static void *flush_thread(void *arg)
{
    struct flusher *f = arg;
    atomic_store(&f->started, 1);
    errno = 0;
    f->rc = asyncmsg_flush(f->coid, 0);
    f->err = errno;
    atomic_store(&f->flushed, 1);
    return NULL;
}

/* Takes the three messages of part 3 once the third put started, noting
 * whether that put returned before anything was taken. */
struct taker {
    int chid;
    atomic_int third_started;
    atomic_int third_done;
    atomic_int early;
    atomic_int taken;
};

static void *take_thread(void *arg)
{
    struct taker *t = arg;
    struct _asyncmsg_get_header *h, *next;
    long long until = now_ms() + 5000;

    while (!atomic_load(&t->third_started) && now_ms() < until)
        usleep(1000);
    while (atomic_load(&t->taken) < 3 && now_ms() < until) {
        if (atomic_load(&t->third_done) && atomic_load(&t->taken) == 0)
            atomic_store(&t->early, 1);
        h = asyncmsg_get(t->chid);
        if (h == NULL) {
            usleep(1000);
            continue;
        }
        for (; h != NULL; h = next) {
            next = h->next;
            if (strcmp(h->iov->iov_base, messages[atomic_load(&t->taken)]) != 0)
                atomic_store(&t->early, 1);
            atomic_fetch_add(&t->taken, 1);
            asyncmsg_free(h);
        }
    }
    return NULL;
}

int main(void)
{
    struct _asyncmsg_connection_attr attr;
    struct flusher f;
    atomic_int early;
    pthread_t tid;
    int chid, coid, i;

    chid = asyncmsg_channel_create(_NTO_CHF_ASYNC_NONBLOCK, 0666, 256, 16, NULL, NULL);
    CHECK(chid != -1);
    memset(&attr, 0, sizeof(attr));
    attr.call_back = callback;
    attr.max_num_buffer = 16;
    attr.trigger_num_msg = 0;
    attr.trigger_time.nsec = 0;
    coid = asyncmsg_connect_attach(0, 0, chid, 0, 0, &attr);
    CHECK(coid != -1);

    /* 1. Not visible until the non-blocking flush. */
    for (i = 0; i < 3; i++)
        CHECK(asyncmsg_put(coid, messages[i], strlen(messages[i]) + 1, i, NULL) == EOK);
    errno = 0;
    CHECK(asyncmsg_get(chid) == NULL);
    CHECK(errno == EAGAIN);
    printf("before flush: EAGAIN\n");
    CHECK(atomic_load(&called) == 0);

    CHECK(asyncmsg_flush(coid, ASYNCMSG_FLUSH_NONBLOCK) == EOK);
    i = take(chid, 0, 3, NULL, NULL);
    printf("after nonblocking flush: %d\n", i);
    CHECK(i == 3);
    WAIT_FOR(atomic_load(&called) == 3);
    CHECK(atomic_load(&called) == 3);

    /* 2. A waiting flush from another thread. */
    for (i = 3; i < 5; i++)
        CHECK(asyncmsg_put(coid, messages[i], strlen(messages[i]) + 1, i, NULL) == EOK);
    errno = 0;
    CHECK(asyncmsg_get(chid) == NULL && errno == EAGAIN);

    memset(&f, 0, sizeof(f));
    f.coid = coid;
    atomic_init(&f.started, 0);
    atomic_init(&f.flushed, 0);
    atomic_init(&early, 0);
    CHECK(pthread_create(&tid, NULL, flush_thread, &f) == 0);
    WAIT_FOR(atomic_load(&f.started));
    CHECK(atomic_load(&f.started));

    i = take(chid, 3, 2, &early, &f.flushed);
    printf("after waiting flush: %d\n", i);
    CHECK(i == 2);
    CHECK(pthread_join(tid, NULL) == 0);
    printf("waiting flush returned %d (errno %d), early %d\n", f.rc, f.err, atomic_load(&early));
    CHECK(f.rc == EOK);
    CHECK(atomic_load(&early) == 0);

    WAIT_FOR(atomic_load(&called) == 5);
    CHECK(atomic_load(&called) == 5);
    CHECK(atomic_load(&failed) == 0);

    /* Flushing with nothing waiting returns at once, either way. */
    CHECK(asyncmsg_flush(coid, 0) == EOK);
    CHECK(asyncmsg_flush(coid, ASYNCMSG_FLUSH_NONBLOCK) == EOK);

    /* 3. A put beyond the connection's max_num_buffer (2) waits until one
     *    of the earlier messages was taken and called back. */
    {
        struct taker t;
        int coid2;

        attr.max_num_buffer = 2;
        attr.trigger_num_msg = 1;
        coid2 = asyncmsg_connect_attach(0, 0, chid, 0, 0, &attr);
        CHECK(coid2 != -1);
        CHECK(asyncmsg_put(coid2, messages[0], strlen(messages[0]) + 1, 10, NULL) == EOK);
        CHECK(asyncmsg_put(coid2, messages[1], strlen(messages[1]) + 1, 11, NULL) == EOK);

        memset(&t, 0, sizeof(t));
        t.chid = chid;
        atomic_init(&t.third_started, 0);
        atomic_init(&t.third_done, 0);
        atomic_init(&t.early, 0);
        atomic_init(&t.taken, 0);
        CHECK(pthread_create(&tid, NULL, take_thread, &t) == 0);
        atomic_store(&t.third_started, 1);
        CHECK(asyncmsg_put(coid2, messages[2], strlen(messages[2]) + 1, 12, NULL) == EOK);
        atomic_store(&t.third_done, 1);
        CHECK(pthread_join(tid, NULL) == 0);
        printf("third put over the limit: taken %d, early %d\n", atomic_load(&t.taken),
               atomic_load(&t.early));
        CHECK(atomic_load(&t.taken) == 3);
        CHECK(atomic_load(&t.early) == 0);
        WAIT_FOR(atomic_load(&called) == 8);
        CHECK(atomic_load(&called) == 8);
        CHECK(asyncmsg_connect_detach(coid2) == EOK);
    }

    CHECK(asyncmsg_connect_detach(coid) == EOK);
    CHECK(asyncmsg_channel_destroy(chid) == EOK);
    CHECK(atomic_load(&failed) == 0);
    printf("delivered %d\n", atomic_load(&called));
    return 0;
}
