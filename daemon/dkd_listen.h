/*
 * dkd_listen.h - the daemon's Unix socket: created with the configured mode
 * and group; a stale socket is replaced, a live daemon on it is refused.
 */
#ifndef DKD_LISTEN_H
#define DKD_LISTEN_H

#include <sys/types.h>

struct evconnlistener;

/* Bind and listen on path; *fd_out is non-blocking and close-on-exec. */
int dkd_listen_unix(const char *path, mode_t mode, const char *group, int *fd_out);

/*
 * Raise the soft RLIMIT_NOFILE to max_connections + 64 (up to the hard
 * limit); returns how many connections fit: max_connections, or fewer (with
 * a warning) when the hard limit is lower.
 */
int dkd_listen_fd_limit(int max_connections);

/*
 * The listener's error path: on EMFILE/ENFILE (or any accept() error) it
 * pauses accepting for 100 ms and logs at most once a minute, instead of
 * libevent's default of a warning per failed accept() in a busy loop.  A
 * pause never re-enables a listener once *stopping is set.  Call on the loop
 * thread right after evconnlistener_new().
 */
void dkd_listen_guard(struct evconnlistener *l, const volatile int *stopping);

#endif /* DKD_LISTEN_H */
