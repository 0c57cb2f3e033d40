/*
 * dkd_listen.h - the daemon's Unix socket: created with the configured mode
 * and group; a stale socket is replaced, a live daemon on it is refused.
 */
#ifndef DKD_LISTEN_H
#define DKD_LISTEN_H

#include <sys/types.h>

/* Bind and listen on path; *fd_out is non-blocking and close-on-exec. */
int dkd_listen_unix(const char *path, mode_t mode, const char *group, int *fd_out);

#endif /* DKD_LISTEN_H */
