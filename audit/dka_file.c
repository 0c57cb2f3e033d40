/*
 * dka_file.c - the audit log's writer side: locking, catching up with
 * other writers, group commit.
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/dka_file.h"
#include "audit/dka_read.h"
#include "common/dk_err.h"

int
dka_file_open(const char *path, struct dka_file *f)
{
	struct stat st;
	char *p = NULL;
	int fd;

	if (f->path == NULL || strcmp(f->path, path) != 0) {
		if ((p = strdup(path)) == NULL)
			return DK_ERR_NOMEM;
		free(f->path);
		f->path = p;
	}
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return dk_err_set(DK_ERR_IO,
		    "cannot open the audit log %s: %s; create its directory and let the daemon's "
		    "user write there, or fix audit_log in [daemon]",
		    path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		close(fd);
		return dk_err_set(
		    DK_ERR_IO, "cannot stat the audit log %s: %s", path, strerror(errno));
	}
	f->fd = fd;
	f->regular = S_ISREG(st.st_mode);
	f->size = -1; /* read the tail at the first lock */
	f->empty = 0;
	f->repaired = 0;
	f->locked = 0;
	return 0;
}

void
dka_file_close(struct dka_file *f)
{
	if (f->fd >= 0) {
		if (f->locked)
			dka_file_unlock(f);
		close(f->fd);
	}
	f->fd = -1;
}

void
dka_file_free(struct dka_file *f)
{
	dka_file_close(f);
	free(f->path);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

/* Read the tail of a regular file of size bytes: the last line's seq and hash. */
static int
file_tail(struct dka_file *f, off_t size)
{
	struct dka_jdoc *doc = NULL;
	uint8_t *buf = NULL, *end, *start;
	const char *ev;
	size_t want, got = 0;
	uint64_t seq;
	ssize_t n;
	off_t cut;
	int r;

	if (size <= 0) {
		f->size = 0;
		f->empty = 1;
		return 0;
	}
	want = size > DKA_LINE_MAX + 1 ? DKA_LINE_MAX + 1 : (size_t)size;
	if ((buf = malloc(want + 1)) == NULL || (doc = calloc(1, sizeof(*doc))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	while (got < want) {
		n = pread(f->fd, buf + got, want - got, size - (off_t)want + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = dk_err_set(DK_ERR_IO, "cannot read the end of the audit log %s: %s",
			    f->path, n < 0 ? strerror(errno) : "it shrank");
			goto out;
		}
		got += (size_t)n;
	}
	end = buf + want;
	if (end[-1] != '\n') {
		/* A torn last line: its fdatasync never returned, so nobody was answered. */
		for (start = end; start > buf && start[-1] != '\n'; start--)
			;
		if (start == buf && (size_t)size > want) {
			r = dk_err_set(DK_ERR_PARSE,
			    "the last line of the audit log %s is longer than %d bytes: it is not "
			    "an audit record; move the file aside (keep it for review)",
			    f->path, DKA_LINE_MAX);
			goto out;
		}
		cut = size - (off_t)(end - start);
		if (ftruncate(f->fd, cut) != 0) {
			r = dk_err_set(DK_ERR_IO,
			    "cannot cut the torn last line of the audit log %s: %s", f->path,
			    strerror(errno));
			goto out;
		}
		f->repaired += (size_t)(end - start);
		/* Read again from the new end: the line before may reach out of this window. */
		r = cut > 0 ? file_tail(f, cut) : 0;
		if (cut == 0) {
			f->size = 0;
			f->empty = 1;
		}
		goto out;
	}
	f->size = size;
	if (size == 0) {
		f->empty = 1;
		r = 0;
		goto out;
	}
	for (start = end - 1; start > buf && start[-1] != '\n'; start--)
		;
	if (start == buf && (size_t)size > (size_t)(end - buf)) {
		r = dk_err_set(
		    DK_ERR_PARSE, "the last line of the audit log %s is too long", f->path);
		goto out;
	}
	r = dka_json_parse((const char *)start, (size_t)(end - 1 - start), doc);
	if (r == 0 && (dka_json_u64(doc, 0, "seq", &seq) != 0 ||
	                  (ev = dka_json_str(doc, 0, "event", NULL)) == NULL || seq == 0))
		r = DK_ERR_PARSE;
	if (r != 0) {
		r = dk_err_set(DK_ERR_PARSE,
		    "the last line of the audit log %s is not an audit record (%s): something "
		    "else wrote there; run \"dkimkeep audit verify %s\", move the file aside "
		    "and send SIGHUP to dkimkeepd",
		    f->path, doc->err[0] ? doc->err : "no seq or event", f->path);
		goto out;
	}
	dka_line_hash(start, (size_t)(end - 1 - start), f->head.hash);
	/* Count at least one record past a checkpoint so that the next seals it. */
	if (strcmp(ev, "checkpoint") == 0)
		f->since_cp = 0;
	else if (!f->head_known || seq <= f->head.seq)
		f->since_cp = f->since_cp > 0 ? f->since_cp : 1;
	else
		f->since_cp += seq - f->head.seq;
	f->head.seq = seq;
	f->head_known = 1;
	f->empty = 0;
	r = 0;
out:
	if (doc != NULL)
		dka_json_free(doc);
	free(doc);
	free(buf);
	return r;
}

/* flock with a deadline: poll LOCK_NB so that a stuck writer cannot hold us forever. */
static int
file_flock(struct dka_file *f, int timeout_ms)
{
	struct timespec nap = {0, 1000000};
	int waited = 0;

	for (;;) {
		if (flock(f->fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return dk_err_set(DK_ERR_IO, "cannot lock the audit log %s: %s", f->path,
			    strerror(errno));
		if (waited >= timeout_ms)
			return dk_err_set(DK_ERR_TIMEOUT,
			    "the audit log %s stayed locked by another writer for %d ms; see "
			    "which process holds it (fuser %s)",
			    f->path, timeout_ms, f->path);
		nanosleep(&nap, NULL);
		waited++;
	}
}

int
dka_file_lock(struct dka_file *f, int timeout_ms)
{
	struct stat st;
	int r;

	if (f->fd < 0)
		return dk_err_set(DK_ERR_IO, "the audit log %s is not open", f->path);
	if ((r = file_flock(f, timeout_ms)) != 0)
		return r;
	f->locked = 1;
	if (!f->regular) {
		/* A device or pipe cannot be read back: we are its only writer. */
		if (f->size < 0) {
			f->size = 0;
			f->empty = 1;
		}
		return 0;
	}
	if (fstat(f->fd, &st) != 0) {
		r = dk_err_set(
		    DK_ERR_IO, "cannot stat the audit log %s: %s", f->path, strerror(errno));
		goto fail;
	}
	if (st.st_size == f->size && f->head_known)
		return 0;
	if (st.st_size == 0) {
		f->size = 0;
		f->empty = 1;
		return 0;
	}
	if ((r = file_tail(f, st.st_size)) != 0)
		goto fail;
	return 0;
fail:
	dka_file_unlock(f);
	return r;
}

void
dka_file_unlock(struct dka_file *f)
{
	if (f->locked && f->fd >= 0)
		(void)flock(f->fd, LOCK_UN);
	f->locked = 0;
}

int
dka_file_batch(struct dka_file *f, struct dka_batch *b, const struct dka_head *anchor,
    const char *reason, const char *writer)
{
	static const struct dka_head genesis = {0, {0}};
	const struct dka_head *from = &f->head;
	const char *link = "previous";
	struct dk_json *j;
	int64_t now = dka_now_us();
	int r;

	if (f->empty && !f->head_known) {
		from = anchor != NULL ? anchor : &genesis;
		link = anchor != NULL ? "anchor" : "genesis";
	}
	dka_batch_init(b, from, f->since_cp);
	if (f->empty) {
		j = dka_rec_begin(b, "log.open", now);
		dk_json_str(j, "link", link);
		dk_json_str(j, "reason", reason);
		dk_json_str(j, "writer", writer);
		dk_json_int(j, "pid", (int64_t)getpid());
		if ((r = dka_rec_end(b)) != 0)
			return r;
	}
	if (f->repaired > 0) {
		j = dka_rec_begin(b, "log.repair", now);
		dk_json_uint(j, "cut_bytes", f->repaired);
		dk_json_str(j, "writer", writer);
		if ((r = dka_rec_end(b)) != 0)
			return r;
	}
	return 0;
}

int
dka_file_sync(int fd, int regular, const char *path)
{
	/* A device or pipe (/dev/null, a FIFO) cannot be synced: that is no failure. */
	if (fdatasync(fd) != 0 && (regular || (errno != EINVAL && errno != EROFS)))
		return dk_err_set(
		    DK_ERR_IO, "writing the audit log %s (fdatasync): %s", path, strerror(errno));
	return 0;
}

int
dka_file_commit(struct dka_file *f, struct dka_batch *b)
{
	return dka_file_append(f, b, 1);
}

int
dka_file_append(struct dka_file *f, struct dka_batch *b, int sync)
{
	const uint8_t *p = b->buf.data;
	size_t left = b->buf.len;
	ssize_t n;
	int r;

	while (left > 0) {
		n = write(f->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = dk_err_set(DK_ERR_IO, "writing the audit log %s: %s", f->path,
			    n < 0 ? strerror(errno) : "nothing written");
			goto fail;
		}
		p += n;
		left -= (size_t)n;
	}
	/* Group commit: one fdatasync for the whole batch, before anyone is answered. */
	if (sync && (r = dka_file_sync(f->fd, f->regular, f->path)) != 0)
		goto fail;
	if (f->size >= 0)
		f->size += (off_t)b->buf.len;
	f->head = b->head;
	f->head_known = 1;
	f->since_cp = b->since_cp;
	f->empty = 0;
	f->repaired = 0;
	return 0;
fail:
	/* Nothing of a failed batch may stay: its requests are refused (audit_fail = closed). */
	if (f->regular && f->size >= 0 && ftruncate(f->fd, f->size) != 0)
		f->size = -1; /* read the tail again at the next lock */
	return r;
}
