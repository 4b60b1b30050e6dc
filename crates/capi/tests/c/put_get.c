/*
 * put_get: one message through an asynchronous channel of this process.
 *
 * The connection's count trigger is 1, so the put is handed over at once;
 * asyncmsg_get returns it with the sender's information; once taken, the
 * connection's callback gets the very buffer that was put (no copy) and the
 * put's handle. A second message, from asyncmsg_malloc, makes the same trip
 * and is freed in the end with asyncmsg_free.
 */
#include <sys/asyncmsg.h>
#include <sys/neutrino.h>

#define CHECK_RECORD_CALLBACK
#include "check.h"

static char message[] = "hello, asyncmsg";

int main(void)
{
    struct _asyncmsg_connection_attr attr, old;
    struct _asyncmsg_get_header *h;
    int chid, coid;
    size_t len = strlen(message) + 1;

    chid = asyncmsg_channel_create(_NTO_CHF_SENDER_LEN, 0666, 2048, 5, NULL, NULL);
    CHECK(chid != -1);

    memset(&attr, 0, sizeof(attr));
    attr.call_back = callback;
    attr.max_num_buffer = 8;
    attr.trigger_num_msg = 1;
    coid = asyncmsg_connect_attach(0, 0, chid, 0, 0, &attr);
    CHECK(coid != -1);
    printf("chid %d coid %d\n", chid, coid);

    memset(&old, 0xff, sizeof(old));
    CHECK(asyncmsg_connect_attr(coid, &old, NULL) == EOK);
    CHECK(old.call_back == callback);
    CHECK(old.trigger_num_msg == 1);
    CHECK(old.trigger_time.nsec == 0);

    CHECK(asyncmsg_put(coid, message, len, 1234, NULL) == EOK);

    h = asyncmsg_get(chid);
    CHECK(h != NULL);
    printf("got \"%s\" from pid %d: msglen %d srcmsglen %d parts %d err %d\n",
           (char *)h->iov->iov_base, (int)h->info.pid, (int)h->info.msglen,
           (int)h->info.srcmsglen, h->parts, h->err);
    CHECK(h->info.pid == getpid());
    CHECK(h->info.chid == chid);
    CHECK(h->info.coid == coid);
    CHECK(h->info.msglen == (int32_t)len);
    CHECK(h->info.srcmsglen == (int32_t)len);
    CHECK(h->err == EOK);
    CHECK(h->parts == 1);
    CHECK(h->iov != NULL);
    CHECK(h->iov->iov_len >= len);
    CHECK(memcmp(h->iov->iov_base, message, len) == 0);
    CHECK(h->next == NULL);
    asyncmsg_free(h);

    WAIT_FOR(atomic_load(&called) == 1);
    CHECK(atomic_load(&called) == 1);
    printf("callback: err %d buf %s handle %u\n", cb_err,
           cb_buf == message ? "same" : "other", cb_handle);
    CHECK(cb_err == EOK);
    CHECK(cb_buf == message);
    CHECK(cb_handle == 1234);

    /* A buffer from asyncmsg_malloc, freed once called back. */
    {
        char *buf = asyncmsg_malloc(64);
        CHECK(buf != NULL);
        strcpy(buf, "from asyncmsg_malloc");
        CHECK(asyncmsg_put(coid, buf, strlen(buf) + 1, 5678, callback) == EOK);
        h = asyncmsg_get(chid);
        CHECK(h != NULL);
        CHECK(strcmp(h->iov->iov_base, "from asyncmsg_malloc") == 0);
        CHECK(h->next == NULL);
        asyncmsg_free(h);
        WAIT_FOR(atomic_load(&called) == 2);
        CHECK(atomic_load(&called) == 2);
        CHECK(cb_err == EOK);
        CHECK(cb_buf == buf);
        CHECK(cb_handle == 5678);
        asyncmsg_free(buf);
    }

    /* pid getpid() is this process too; the coid is >= the index asked. */
    {
        int coid2 = asyncmsg_connect_attach(0, getpid(), chid, 100, 0, &attr);
        CHECK(coid2 != -1);
        CHECK(coid2 >= 100);
        CHECK(coid2 != coid);
        printf("second connection: coid %d\n", coid2);
        CHECK(asyncmsg_put(coid2, message, len, 9, NULL) == EOK);
        h = asyncmsg_get(chid);
        CHECK(h != NULL);
        printf("second connection's message: pid %d coid %d\n", (int)h->info.pid,
               (int)h->info.coid);
        CHECK(h->info.pid == getpid());
        CHECK(h->info.coid == coid2);
        CHECK(strcmp(h->iov->iov_base, message) == 0);
        asyncmsg_free(h);
        WAIT_FOR(atomic_load(&called) == 3);
        CHECK(atomic_load(&called) == 3);
        CHECK(cb_err == EOK && cb_buf == message && cb_handle == 9);
        CHECK(asyncmsg_connect_detach(coid2) == EOK);
    }

    CHECK(asyncmsg_connect_detach(coid) == EOK);
    CHECK(asyncmsg_channel_destroy(chid) == EOK);
    CHECK(atomic_load(&called) == 3);
    printf("delivered %d\n", atomic_load(&called));
    return 0;
}
