/* <process.h> — on QNX it brings in the kernel calls and threads; so here. */
#ifndef _ASYNCMSG_PROCESS_H
#define _ASYNCMSG_PROCESS_H
#include <sys/neutrino.h>
#endif
