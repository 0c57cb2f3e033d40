/*
 * dka_file.h - appending to the audit log: the daemon and the command line
 * both write one file, one writer at a time under flock(2).
 *
 * A writer keeps the chain head in memory.  When it takes the lock and the
 * file is not the size it left it at (another writer appended, logrotate
 * truncated it), it reads the last line again.  A last line without its
 * newline (a crash in the middle of a write, which was never acknowledged)
 * is cut off and the next batch says so in a log.repair record.  A new or
 * empty file starts with a log.open record that links it to the head the
 * writer knows (the previous file), to the token's anchor, or to nothing
 * (the first file of a log).
 */
#ifndef DKA_FILE_H
#define DKA_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit/dka_rec.h"

struct dka_file {
	char *path;
	int fd;
	int regular;          /* a regular file: its tail can be read back and cut */
	off_t size;           /* after our last write or read; -1: not read yet */
	struct dka_head head; /* chain head after the file's last line */
	int head_known;       /* head is real (this file, or the file before it) */
	uint64_t since_cp;    /* records after the last checkpoint */
	int empty;            /* the file holds no line: the next batch opens it */
	size_t repaired;      /* bytes of a torn last line cut by the last lock */
	int locked;
};

/*
 * Open (creating, mode 0640) path for appending.  DK_ERR_IO with detail
 * naming the file and what to do.
 */
int dka_file_open(const char *path, struct dka_file *f);
/* Close the file; the head stays (a reopen continues the chain). */
void dka_file_close(struct dka_file *f);
/* Close and forget everything. */
void dka_file_free(struct dka_file *f);

/*
 * Take the exclusive lock, waiting at most timeout_ms (DK_ERR_TIMEOUT), and
 * catch up with what others wrote: DK_ERR_PARSE when the last line is not
 * an audit record (someone else wrote there).
 */
int dka_file_lock(struct dka_file *f, int timeout_ms);
void dka_file_unlock(struct dka_file *f);

/*
 * Start a batch at the file's head (under the lock).  When the file is
 * empty it gets its log.open record first: linked to the head known in
 * memory, else to anchor (may be NULL), else to nothing (seq 1).  reason
 * says why it opens ("start", "reopen", "admin"); writer names the
 * program.  A torn line cut by dka_file_lock is reported in log.repair.
 */
int dka_file_batch(struct dka_file *f, struct dka_batch *b, const struct dka_head *anchor,
    const char *reason, const char *writer);

/*
 * Append the batch with one write and fdatasync it.  On failure the file is
 * cut back to where it was (a regular file) and the head does not move:
 * DK_ERR_IO with detail "writing FILE: <errno text>".
 */
int dka_file_commit(struct dka_file *f, struct dka_batch *b);
/*
 * The same with sync 0: written, not yet durable.  The caller makes it
 * durable with dka_file_sync() before anyone relies on it (the daemon's
 * syncer thread does, for many batches at once).
 */
int dka_file_append(struct dka_file *f, struct dka_batch *b, int sync);
/* fdatasync(fd) of the log at path; DK_ERR_IO with detail.  Safe from any thread. */
int dka_file_sync(int fd, int regular, const char *path);

#endif /* DKA_FILE_H */
