/* <sys/trace.h> — QNX kernel tracing: nothing is traced on Linux; the header
 * exists so that programs including it build. */
#ifndef _ASYNCMSG_SYS_TRACE_H
#define _ASYNCMSG_SYS_TRACE_H
#endif
