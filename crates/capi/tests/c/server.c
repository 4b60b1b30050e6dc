/*
 * server: QNX's name_attach server with an asynchronous channel.
 *
 * Usage: server [name [count]]
 *
 * Publishes `name`, creates a non-blocking asynchronous channel whose event
 * is a pulse to its own receive channel, prints "ready", and serves one
 * MsgReceive loop:
 *   - the asynchronous channel's pulse: takes every ready message and
 *     prints "got: <text>";
 *   - _PULSE_CODE_DISCONNECT: prints "client left"; done once `count`
 *     (default 5) messages arrived;
 *   - _IO_CONNECT (from name_open): accepted;
 *   - request type 2: answered with the asynchronous channel's chid;
 *   - request type 3: answered with the chid of a second asynchronous
 *     channel, whose mode (0444) lets no other process connect;
 *   - request type 4: answered, then the server leaves at once, with its
 *     channels and everything put to them (its clients find it gone);
 *   - anything else: ENOSYS.
 */
#include <sys/asyncmsg.h>
#include <sys/dispatch.h>
#include <sys/iomsg.h>
#include <sys/neutrino.h>

#include "check.h"

#define ATTACH_POINT "asyncmsg_capi_test"
#define ASYNC_PULSE_CODE (_PULSE_CODE_MINAVAIL + 3)
#define GET_CHID 2
#define GET_CLOSED_CHID 3
#define QUIT 4

typedef struct _pulse msg_header_t;

typedef struct _my_data {
    msg_header_t hdr;
    int data;
} my_data_t;

typedef union {
    msg_header_t hdr;
    struct _pulse pulse;
    struct _io_connect connect;
    my_data_t data;
} my_msg_t;

/* Takes every ready message; returns how many. */
static int drain(int chid)
{
    struct _asyncmsg_get_header *h, *next;
    int n = 0;

    for (;;) {
        h = asyncmsg_get(chid);
        if (h == NULL) {
            CHECK(errno == EAGAIN);
            return n;
        }
        for (; h != NULL; h = next) {
            next = h->next;
            CHECK(h->err == EOK);
            if (h->info.msglen <= 64)
                printf("got: %.*s (from pid %d)\n", (int)h->info.msglen,
                       (char *)h->iov->iov_base, (int)h->info.pid);
            else
                printf("got %d bytes (from pid %d)\n", (int)h->info.msglen, (int)h->info.pid);
            n++;
            asyncmsg_free(h);
        }
    }
}

int main(int argc, char *argv[])
{
    const char *name = argc > 1 ? argv[1] : ATTACH_POINT;
    int expected = argc > 2 ? atoi(argv[2]) : 5;
    name_attach_t *attach;
    struct sigevent event;
    struct _msg_info info;
    my_msg_t msg;
    int rcvid, coid, achid, closed_chid, received = 0;

    attach = name_attach(NULL, name, 0);
    CHECK(attach != NULL);

    /* The asynchronous channel tells us through a pulse on our own channel. */
    coid = ConnectAttach(0, 0, attach->chid, _NTO_SIDE_CHANNEL, 0);
    CHECK(coid != -1);
    SIGEV_PULSE_INIT(&event, coid, SIGEV_PULSE_PRIO_INHERIT, ASYNC_PULSE_CODE, 0);
    achid = asyncmsg_channel_create(_NTO_CHF_ASYNC_NONBLOCK | _NTO_CHF_SENDER_LEN, 0666, 2048,
                                    0, &event, NULL);
    CHECK(achid != -1);
    closed_chid = asyncmsg_channel_create(_NTO_CHF_ASYNC_NONBLOCK, 0444, 2048, 0, NULL, NULL);
    CHECK(closed_chid != -1);

    printf("ready\n");
    fflush(stdout);

    for (;;) {
        rcvid = MsgReceive(attach->chid, &msg, sizeof(msg), &info);
        CHECK(rcvid != -1);

        if (rcvid == 0) { /* a pulse */
            switch (msg.hdr.code) {
            case ASYNC_PULSE_CODE:
                received += drain(achid);
                fflush(stdout);
                break;
            case _PULSE_CODE_DISCONNECT:
                printf("client left (%d messages)\n", received);
                fflush(stdout);
                if (received >= expected) {
                    CHECK(asyncmsg_channel_destroy(achid) == EOK);
                    CHECK(asyncmsg_channel_destroy(closed_chid) == EOK);
                    CHECK(ConnectDetach(coid) != -1);
                    CHECK(name_detach(attach, 0) != -1);
                    return received == expected ? 0 : 1;
                }
                break;
            default:
                printf("unexpected pulse %d\n", msg.hdr.code);
                return 1;
            }
            continue;
        }

        /* name_open() sends a connect message: accept it. */
        if (msg.hdr.type == _IO_CONNECT) {
            printf("client connected (pid %d)\n", (int)info.pid);
            fflush(stdout);
            CHECK(MsgReply(rcvid, EOK, NULL, 0) != -1);
            continue;
        }

        if (msg.hdr.type == GET_CHID) {
            CHECK(MsgReply(rcvid, EOK, &achid, sizeof(achid)) != -1);
            continue;
        }

        if (msg.hdr.type == GET_CLOSED_CHID) {
            CHECK(MsgReply(rcvid, EOK, &closed_chid, sizeof(closed_chid)) != -1);
            continue;
        }

        if (msg.hdr.type == QUIT) {
            CHECK(MsgReply(rcvid, EOK, NULL, 0) != -1);
            printf("quitting (%d messages)\n", received);
            fflush(stdout);
            return 0;
        }

        printf("unknown request type %d: ENOSYS\n", msg.hdr.type);
        fflush(stdout);
        CHECK(MsgError(rcvid, ENOSYS) != -1);
    }
}
