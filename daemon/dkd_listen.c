/*
 * dkd_listen.c - creating the listening Unix socket.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/dk_err.h"
#include "daemon/dkd_listen.h"

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
