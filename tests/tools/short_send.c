/*
 * short_send.c - a test tool, loaded with LD_PRELOAD into dkimkeepd: every
 * send() with MSG_DONTWAIT writes at most SHORT_SEND_MAX bytes, and the
 * same thread's next send() on that socket fails with EAGAIN, as on a
 * socket that has room for only part of an answer.  Linux's Unix sockets do that
 * only when nearly full, and never for a frame as small as an answer, so
 * without this the daemon's path for a partly sent answer (the rest queued in
 * the bufferevent, later answers behind it) would be tested only by chance
 * (test_load_crash.py, SlowAndVanishing).
 *
 * Each call it cuts short appends the calling thread's name and a newline
 * to SHORT_SEND_LOG (O_APPEND: one write per line), so a test can see that
 * it cut and which thread sent.  Without SHORT_SEND_MAX it changes nothing.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef ssize_t (*send_fn)(int, const void *, size_t, int);

ssize_t send(int fd, const void *buf, size_t len, int flags);

static void
note_cut(void)
{
	const char *path = getenv("SHORT_SEND_LOG");
	char line[32];
	size_t n;
	int lfd;

	if (path == NULL || pthread_getname_np(pthread_self(), line, 16) != 0)
		return;
	n = strlen(line);
	line[n++] = '\n';
	if ((lfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return;
	(void)!write(lfd, line, n);
	close(lfd);
}

ssize_t
send(int fd, const void *buf, size_t len, int flags)
{
	static send_fn real;
	static __thread int full_fd = -1; /* this thread's last send() here was cut short */
	const char *max;
	size_t cap;

	if (real == NULL)
		real = (send_fn)dlsym(RTLD_NEXT, "send");
	if (!(flags & MSG_DONTWAIT) || (max = getenv("SHORT_SEND_MAX")) == NULL ||
	    (cap = strtoul(max, NULL, 10)) == 0)
		return real(fd, buf, len, flags);
	if (full_fd == fd) {
		full_fd = -1;
		errno = EAGAIN;
		return -1;
	}
	if (len > cap) {
		note_cut();
		full_fd = fd;
		len = cap;
	}
	return real(fd, buf, len, flags);
}
