/*
 * recvbuf: a channel with a recvbuf_callback takes each received message's
 * body buffer from it (ASYNCMSG_RECVBUF_ALLOC, buffer_size bytes) and gives
 * it back on asyncmsg_free (ASYNCMSG_RECVBUF_FREE).
 */
#include <stdatomic.h>

#include <sys/asyncmsg.h>

#include "check.h"

#define BUFFER_SIZE 512
#define MAX_BUFS 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int allocs, frees, bad_calls;
static void *allocated[MAX_BUFS];
static void *freed[MAX_BUFS];

static int recvbuf(size_t bufsize, unsigned num_bufs, void *bufs[], int flags)
{
    unsigned i;
    int n = 0;

    pthread_mutex_lock(&lock);
    if (flags == ASYNCMSG_RECVBUF_ALLOC) {
        if (bufsize != BUFFER_SIZE)
            bad_calls++;
        for (i = 0; i < num_bufs && allocs < MAX_BUFS; i++) {
            bufs[i] = malloc(bufsize);
            if (bufs[i] == NULL)
                break;
            allocated[allocs++] = bufs[i];
            n++;
        }
    } else if (flags == ASYNCMSG_RECVBUF_FREE) {
        for (i = 0; i < num_bufs; i++) {
            if (frees < MAX_BUFS)
                freed[frees++] = bufs[i];
            free(bufs[i]);
            n++;
        }
    } else {
        bad_calls++;
    }
    pthread_mutex_unlock(&lock);
    return n;
}

static int was(void *const list[], int count, const void *p)
{
    int i;
    for (i = 0; i < count; i++)
        if (list[i] == p)
            return 1;
    return 0;
}

static atomic_int called;

static int callback(int err, void *buf, unsigned handle)
{
    (void)buf;
    (void)handle;
    if (err == EOK)
        atomic_fetch_add(&called, 1);
    return 0;
}

static char messages[2][32] = {"into my own buffer", "and another one"};

int main(void)
{
    struct _asyncmsg_connection_attr attr;
    struct _asyncmsg_get_header *h, *p, *next;
    void *bodies[2];
    int chid, coid, i, n, a, f;

    chid = asyncmsg_channel_create(0, 0666, BUFFER_SIZE, 8, NULL, recvbuf);
    CHECK(chid != -1);
    memset(&attr, 0, sizeof(attr));
    attr.call_back = callback;
    attr.max_num_buffer = 8;
    attr.trigger_num_msg = 2;
    coid = asyncmsg_connect_attach(0, 0, chid, 0, 0, &attr);
    CHECK(coid != -1);

    for (i = 0; i < 2; i++)
        CHECK(asyncmsg_put(coid, messages[i], strlen(messages[i]) + 1, i, NULL) == EOK);

    h = asyncmsg_get(chid);
    CHECK(h != NULL);
    pthread_mutex_lock(&lock);
    a = allocs;
    f = frees;
    pthread_mutex_unlock(&lock);
    printf("after get: %d allocated, %d freed\n", a, f);
    CHECK(a >= 1);
    CHECK(f == 0);

    for (p = h, n = 0; p != NULL; p = p->next, n++) {
        CHECK(n < 2);
        CHECK(strcmp(p->iov->iov_base, messages[n]) == 0);
        pthread_mutex_lock(&lock);
        CHECK(was(allocated, allocs, p->iov->iov_base));
        pthread_mutex_unlock(&lock);
        bodies[n] = p->iov->iov_base;
        printf("got %s (in a recvbuf_callback buffer)\n", (char *)p->iov->iov_base);
    }
    CHECK(n == 2);
    CHECK(bodies[0] != bodies[1]);

    for (p = h, i = 0; p != NULL; p = next, i++) {
        next = p->next;
        asyncmsg_free(p);
        pthread_mutex_lock(&lock);
        CHECK(was(freed, frees, bodies[i]));
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    a = allocs;
    f = frees;
    pthread_mutex_unlock(&lock);
    printf("after free: %d allocated, %d freed\n", a, f);
    CHECK(f >= 2);
    CHECK(bad_calls == 0);

    WAIT_FOR(atomic_load(&called) == 2);
    CHECK(atomic_load(&called) == 2);

    CHECK(asyncmsg_connect_detach(coid) == EOK);
    CHECK(asyncmsg_channel_destroy(chid) == EOK);
    pthread_mutex_lock(&lock);
    printf("recvbuf: %d allocated, %d freed\n", allocs, frees);
    CHECK(allocs == frees);
    pthread_mutex_unlock(&lock);
    printf("delivered %d\n", atomic_load(&called));
    return 0;
}
