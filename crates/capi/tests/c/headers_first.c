/*
 * headers_first: every header of libasyncmsg, then <signal.h>; compiled,
 * never run (as C11 and GNU C11 with -Wall -Wextra -Werror -pedantic, and
 * as C++). Checks that the documented names exist with the documented types.
 */
#include <process.h>
#include <sys/asyncmsg.h>
#include <sys/dispatch.h>
#include <sys/iomsg.h>
#include <sys/netmgr.h>
#include <sys/neutrino.h>
#include <sys/siginfo.h>
#include <sys/trace.h>

#include <signal.h>
#include <stddef.h>

#include "headers_checks.h"
