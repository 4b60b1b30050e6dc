/*
 * <sys/dispatch.h> — names for channels: name_attach publishes a channel
 * under a name for every process of the host, name_open finds it.
 *
 * A name is non-empty and has no '/'. Names live in asyncmsg's runtime
 * directory ($ASYNCMSG_RUNTIME_DIR, else $XDG_RUNTIME_DIR/asyncmsg, else
 * /tmp/asyncmsg-<uid>), so processes sharing it see each other's names.
 */
#ifndef _ASYNCMSG_SYS_DISPATCH_H
#define _ASYNCMSG_SYS_DISPATCH_H

#include <sys/neutrino.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A dispatch context: accepted and kept, not used (name_attach makes its
 *  own channel). */
typedef struct _dispatch dispatch_t;

typedef struct _name_attach {
    dispatch_t *dpp;
    int chid;   /* the channel to MsgReceive on */
    int mntid;
    int zero[2];
} name_attach_t;

#define NAME_FLAG_ATTACH_GLOBAL 0x00000002
#define NAME_FLAG_DETACH_SAVEDPP 0x00000001

/** Creates a channel and publishes it as `path`. The channel receives a
 *  connect message (_IO_CONNECT) from each name_open and a
 *  _PULSE_CODE_DISCONNECT pulse when a client goes. NULL and errno
 *  (EEXIST: name taken, EINVAL: bad name) on failure. */
name_attach_t *name_attach(dispatch_t *dpp, const char *path, unsigned flags);
/** Withdraws the name and destroys the channel; frees `attach`. */
int name_detach(name_attach_t *attach, unsigned flags);
/** Connects to the channel published as `name` (this process's names first,
 *  then the host's); returns once the server replied to the connect message.
 *  -1 and ENOENT if no such name. */
int name_open(const char *name, int flags);
/** Closes a connection from name_open. */
int name_close(int coid);

#ifdef __cplusplus
}
#endif

#endif /* _ASYNCMSG_SYS_DISPATCH_H */
