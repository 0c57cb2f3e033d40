/*
 * dk_secret.c - reading PIN files into locked memory.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dk_err.h"
#include "common/dk_secret.h"

#define SECRET_ALLOC 4096 /* one page, locked whole */

static int
secret_open(const char *path, char *used, size_t usedlen)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	int fd;

	if (path[0] != '/' && creds != NULL && creds[0] != '\0') {
		snprintf(used, usedlen, "%s/%s", creds, path);
		fd = open(used, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 || errno != ENOENT)
			return fd;
	}
	snprintf(used, usedlen, "%s", path);
	return open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

int
dk_secret_read_pin(const char *path, struct dk_secret *out)
{
	char used[PATH_MAX];
	struct stat st;
	char *p = NULL;
	ssize_t n;
	size_t len = 0;
	int fd = -1, r;

	out->data = NULL;
	out->len = 0;
	if ((fd = secret_open(path, used, sizeof(used))) < 0) {
		r = dk_err_set(DK_ERR_IO,
		    "PIN file %s cannot be opened: %s; check pin_file= and that the file exists",
		    used, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		r = dk_err_set(DK_ERR_IO, "PIN file %s is not a regular file", used);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		r = dk_err_set(DK_ERR_PERM,
		    "PIN file %s has mode %04o: it must not be readable by group or others; "
		    "run \"chmod 0400 %s\"",
		    used, (unsigned)(st.st_mode & 07777), used);
		goto out;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		r = dk_err_set(DK_ERR_PERM,
		    "PIN file %s is owned by uid %u: it must be owned by root or by uid %u", used,
		    (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if ((p = malloc(SECRET_ALLOC)) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	/* Best effort: mlock can fail under RLIMIT_MEMLOCK; the PIN is wiped anyway. */
	(void)mlock(p, SECRET_ALLOC);
	for (;;) {
		n = read(fd, p + len, SECRET_ALLOC - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = dk_err_set(
			    DK_ERR_IO, "PIN file %s cannot be read: %s", used, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > DK_PIN_MAX + 2)
			break;
	}
	if (len > 0 && p[len - 1] == '\n')
		len--;
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (len == 0 || len > DK_PIN_MAX || memchr(p, '\0', len) != NULL ||
	    memchr(p, '\n', len) != NULL) {
		r = dk_err_set(DK_ERR_PIN_INVALID,
		    "PIN file %s must hold one PIN of 1 to %d characters on one line", used,
		    DK_PIN_MAX);
		goto out;
	}
	p[len] = '\0';
	out->data = p;
	out->len = len;
	p = NULL;
	r = 0;
out:
	if (p != NULL) {
		explicit_bzero(p, SECRET_ALLOC);
		munlock(p, SECRET_ALLOC);
		free(p);
	}
	if (fd >= 0)
		close(fd);
	return r;
}

void
dk_secret_wipe(struct dk_secret *s)
{
	if (s->data != NULL) {
		explicit_bzero(s->data, SECRET_ALLOC);
		munlock(s->data, SECRET_ALLOC);
		free(s->data);
	}
	s->data = NULL;
	s->len = 0;
}
