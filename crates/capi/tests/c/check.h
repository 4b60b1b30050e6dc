/*
 * check.h: what the C test programs share.
 *
 *   CHECK(cond)     if `cond` is false, prints
 *                   "file:line: CHECK(cond) failed (errno N: text)" and
 *                   exits with status 1.
 *   now_ms()        CLOCK_MONOTONIC in milliseconds.
 *   WAIT_FOR(cond)  polls `cond` every millisecond for at most 5 seconds;
 *                   the caller checks `cond` afterwards.
 *
 * With CHECK_RECORD_CALLBACK defined before the include, also a connection
 * callback, `callback`, that records its last call: `cb_err` (-1 before
 * any), `cb_buf`, `cb_handle`, and counts the calls in `called`.
 *
 * Brings in <errno.h>, <stdio.h>, <stdlib.h>, <string.h>, <time.h> and
 * <unistd.h> (and <stdatomic.h> with CHECK_RECORD_CALLBACK).
 */
#ifndef ASYNCMSG_TESTS_CHECK_H
#define ASYNCMSG_TESTS_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

static inline long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

#define WAIT_FOR(cond)                                                              \
    do {                                                                            \
        long long wait_until = now_ms() + 5000;                                     \
        while (!(cond) && now_ms() < wait_until)                                    \
            usleep(1000);                                                           \
    } while (0)

#ifdef CHECK_RECORD_CALLBACK
#include <stdatomic.h>

static atomic_int called;
static int cb_err = -1;
static void *cb_buf;
static unsigned cb_handle;

static int callback(int err, void *buf, unsigned handle)
{
    cb_err = err;
    cb_buf = buf;
    cb_handle = handle;
    atomic_fetch_add(&called, 1);
    return 0;
}
#endif /* CHECK_RECORD_CALLBACK */

#endif /* ASYNCMSG_TESTS_CHECK_H */
