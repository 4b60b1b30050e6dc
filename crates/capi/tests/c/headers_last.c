/*
 * headers_last: <signal.h> first, then every header of libasyncmsg; compiled,
 * never run. struct sigevent and QNX's pulse fields must work this way too.
 */
#include <signal.h>
#include <stddef.h>

#include <sys/trace.h>
#include <sys/siginfo.h>
#include <sys/netmgr.h>
#include <sys/iomsg.h>
#include <sys/dispatch.h>
#include <sys/asyncmsg.h>
#include <sys/neutrino.h>
#include <process.h>

#include "headers_checks.h"
