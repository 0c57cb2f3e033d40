/*
 * dkd_listen.c - creating the listening Unix socket, the descriptor limit
 * its connections need, and the listener's way out of EMFILE.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "daemon/dkd_listen.h"

/*
 * Descriptors kept for everything that is not a connection: stdio, the
 * listener, the event loop, the token's files, the audit log, DNS sockets.
 */
#define LISTEN_FD_RESERVE 64
#define LISTEN_PAUSE_MS   100 /* accepting pauses this long on EMFILE/ENFILE */
#define LISTEN_LOG_EVERY  60  /* seconds between two logs of the same trouble */

/* 1 when a process accepts connections on path. */
static int
listen_live(const struct sockaddr_un *sun)
{
	int fd, live;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	live = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return live;
}

int
dkd_listen_unix(const char *path, mode_t mode, const char *group, int *fd_out)
{
	struct sockaddr_un sun;
	struct stat st;
	struct group *gr;
	mode_t old_umask;
	int fd = -1, r;

	*fd_out = -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		r = dk_err_set(DK_ERR_CONFIG,
		    "socket path %s is longer than %zu bytes; choose a "
		    "shorter socket= in [daemon]",
		    path, sizeof(sun.sun_path) - 1);
		goto out;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			r = dk_err_set(DK_ERR_EXISTS,
			    "%s exists and is not a socket; remove it or choose another socket=",
			    path);
			goto out;
		}
		if (listen_live(&sun)) {
			r = dk_err_set(DK_ERR_EXISTS,
			    "socket %s is in use by a running dkimkeepd; stop it first, or "
			    "choose another socket=",
			    path);
			goto out;
		}
		unlink(path); /* stale: left by a daemon that died */
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		r = dk_err_set(DK_ERR_IO, "socket(): %s", strerror(errno));
		goto out;
	}
	/* Bind under a strict umask so the socket is never briefly open to all. */
	old_umask = umask(0177);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old_umask);
	if (r != 0) {
		r = dk_err_set(DK_ERR_IO,
		    "cannot bind %s: %s; check the directory exists and is "
		    "writable by the daemon",
		    path, strerror(errno));
		goto out;
	}
	if (group != NULL) {
		if ((gr = getgrnam(group)) == NULL) {
			r = dk_err_set(DK_ERR_CONFIG, "socket_group %s does not exist", group);
			goto out;
		}
		if (chown(path, (uid_t)-1, gr->gr_gid) != 0) {
			r = dk_err_set(DK_ERR_IO, "cannot give %s to group %s: %s", path, group,
			    strerror(errno));
			goto out;
		}
	}
	if (chmod(path, mode) != 0) {
		r = dk_err_set(DK_ERR_IO, "cannot chmod %s: %s", path, strerror(errno));
		goto out;
	}
	if (listen(fd, 512) != 0) {
		r = dk_err_set(DK_ERR_IO, "listen on %s: %s", path, strerror(errno));
		goto out;
	}
	*fd_out = fd;
	fd = -1;
	r = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	return r;
}

int
dkd_listen_fd_limit(int max_connections)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_connections + LISTEN_FD_RESERVE, soft;
	int fit;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		dk_log_warn("getrlimit(RLIMIT_NOFILE): %s; max_connections %d unchecked",
		    strerror(errno), max_connections);
		return max_connections;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		soft = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
		if (soft > rl.rlim_cur) {
			rlim_t old = rl.rlim_cur;

			rl.rlim_cur = soft;
			if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
				dk_log_warn("cannot raise the descriptor limit to %ju: %s",
				    (uintmax_t)soft, strerror(errno));
				rl.rlim_cur = old;
			} else {
				dk_log_info("descriptor limit raised from %ju to %ju for "
				            "max_connections %d",
				    (uintmax_t)old, (uintmax_t)soft, max_connections);
			}
		}
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return max_connections;
	/* Too few descriptors: fewer connections rather than EMFILE on accept(). */
	fit = rl.rlim_cur > 2 * LISTEN_FD_RESERVE ? (int)(rl.rlim_cur - LISTEN_FD_RESERVE)
	                                          : (int)(rl.rlim_cur / 2);
	if (fit < 1)
		fit = 1;
	dk_log_warn("the descriptor limit (RLIMIT_NOFILE %ju, hard %ju) is below max_connections "
	            "%d + %d; serving at most %d connections; raise the hard limit "
	            "(LimitNOFILE= in the unit, ulimit -Hn) or lower max_connections in [daemon]",
	    (uintmax_t)rl.rlim_cur, (uintmax_t)rl.rlim_max, max_connections, LISTEN_FD_RESERVE,
	    fit);
	return fit;
}

/* The listener's state for its error path: one listener per daemon. */
static struct {
	struct evconnlistener *l;
	const volatile int *stopping;
	time_t last_log;
	unsigned long since_log;
} guard;

static void
listen_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (guard.l != NULL && !(guard.stopping != NULL && *guard.stopping))
		evconnlistener_enable(guard.l);
}

static void
listen_error_cb(struct evconnlistener *l, void *arg)
{
	struct timeval tv = {0, LISTEN_PAUSE_MS * 1000};
	int err = errno;
	time_t now = time(NULL);

	(void)arg;
	guard.since_log++;
	if (guard.last_log == 0 || now - guard.last_log >= LISTEN_LOG_EVERY) {
		dk_log_err("accept(): %s (%lu times since the last log); %s", strerror(err),
		    guard.since_log,
		    err == EMFILE || err == ENFILE
		        ? "out of descriptors: accepting pauses; lower max_connections or raise "
		          "the descriptor limit"
		        : "accepting pauses");
		guard.last_log = now;
		guard.since_log = 0;
	}
	/* Never a busy loop: the pending connection waits in the backlog meanwhile. */
	evconnlistener_disable(l);
	if (event_base_once(
	        evconnlistener_get_base(l), -1, EV_TIMEOUT, listen_resume_cb, NULL, &tv) != 0)
		evconnlistener_enable(l);
}

void
dkd_listen_guard(struct evconnlistener *l, const volatile int *stopping)
{
	guard.l = l;
	guard.stopping = stopping;
	evconnlistener_set_error_cb(l, listen_error_cb);
}
