/*
 * putv: asyncmsg_putv gathers three parts into one message (a copy made by
 * the put: the parts may change afterwards); its callback gets the iov
 * array as its buf and the put's handle.
 */
#include <sys/asyncmsg.h>

#define CHECK_RECORD_CALLBACK
#include "check.h"

static char part1[] = "Hello, ";
static char part2[] = "asynchronous ";
static char part3[] = "world";
static iov_t iov[3];

int main(void)
{
    struct _asyncmsg_connection_attr attr;
    struct _asyncmsg_get_header *h;
    const char *expected = "Hello, asynchronous world";
    size_t total;
    int chid, coid;

    chid = asyncmsg_channel_create(_NTO_CHF_SENDER_LEN, 0666, 1024, 0, NULL, NULL);
    CHECK(chid != -1);
    memset(&attr, 0, sizeof(attr));
    attr.max_num_buffer = 8;
    attr.trigger_num_msg = 1;
    coid = asyncmsg_connect_attach(0, 0, chid, 0, 0, &attr);
    CHECK(coid != -1);

    SETIOV(&iov[0], part1, strlen(part1));
    SETIOV(&iov[1], part2, strlen(part2));
    SETIOV(&iov[2], part3, sizeof(part3)); /* with the NUL */
    CHECK(GETIOVBASE(&iov[1]) == part2);
    CHECK(GETIOVLEN(&iov[1]) == strlen(part2));
    total = GETIOVLEN(&iov[0]) + GETIOVLEN(&iov[1]) + GETIOVLEN(&iov[2]);
    CHECK(total == strlen(expected) + 1);

    CHECK(asyncmsg_putv(coid, iov, 3, 4321, callback) == EOK);
    /* The parts were gathered by the put: changing them now changes nothing. */
    memset(part1, 'x', strlen(part1));
    memset(part2, 'y', strlen(part2));

    h = asyncmsg_get(chid);
    CHECK(h != NULL);
    printf("got \"%s\": msglen %d parts %d\n", (char *)h->iov->iov_base, (int)h->info.msglen,
           h->parts);
    CHECK(h->err == EOK);
    CHECK(h->parts == 1);
    CHECK(h->info.msglen == (int32_t)total);
    CHECK(h->info.srcmsglen == (int32_t)total);
    CHECK(memcmp(h->iov->iov_base, expected, total) == 0);
    CHECK(h->next == NULL);
    asyncmsg_free(h);

    WAIT_FOR(atomic_load(&called) == 1);
    CHECK(atomic_load(&called) == 1);
    printf("callback: err %d buf %s handle %u\n", cb_err, cb_buf == (void *)iov ? "iov" : "other",
           cb_handle);
    CHECK(cb_err == EOK);
    CHECK(cb_buf == (void *)iov);
    CHECK(cb_handle == 4321);

    CHECK(asyncmsg_connect_detach(coid) == EOK);
    CHECK(asyncmsg_channel_destroy(chid) == EOK);
    printf("delivered %d\n", atomic_load(&called));
    return 0;
}
