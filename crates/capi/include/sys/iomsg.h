/*
 * <sys/iomsg.h> — the message types a QNX server loop tests for.
 *
 * name_open sends a connect message: MsgReceive stores a struct _io_connect
 * whose `type` is _IO_CONNECT. Reply to it (MsgReply with EOK) to accept the
 * client, or MsgError to refuse it.
 */
#ifndef _ASYNCMSG_SYS_IOMSG_H
#define _ASYNCMSG_SYS_IOMSG_H

#include <stdint.h>

#define _IO_BASE 0x100
#define _IO_CONNECT 0x100
#define _IO_MAX 0x1FF

#define _IO_CONNECT_OPEN 0
#define _IO_CONNECT_COMBINE 1

struct _io_connect {
    uint16_t type;      /* _IO_CONNECT */
    uint16_t subtype;   /* _IO_CONNECT_OPEN */
    uint32_t file_type;
    uint16_t reply_max;
    uint16_t entry_max;
    uint32_t key;
};

#endif /* _ASYNCMSG_SYS_IOMSG_H */
