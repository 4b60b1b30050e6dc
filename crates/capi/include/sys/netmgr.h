/* <sys/netmgr.h> — node descriptors: asyncmsg's C API knows this node only. */
#ifndef _ASYNCMSG_SYS_NETMGR_H
#define _ASYNCMSG_SYS_NETMGR_H
#ifndef ND_LOCAL_NODE
#define ND_LOCAL_NODE 0
#endif
#endif
