/*
 * dkd_audit.h - the audit writer thread (docs/audit.md).
 *
 * It sits between the worker pool and the loop's outbox: a finished job
 * is queued here, its record is written with the others of its batch, one
 * fdatasync covers the batch (group commit), and only then is the job
 * handed to the outbox and answered.  When the write fails and audit_fail
 * is closed, the jobs of the batch lose their signatures and answer
 * AUDIT_UNAVAILABLE.  Refusals made by the loop and daemon events (start,
 * stop, reload, failover, recovery) are queued as records too; they do not
 * wait for the disk.
 *
 * The thread opens its own PKCS#11 session on the audit token for the
 * Message-ID HMACs and the checkpoint signatures.  One audit writer per
 * process; the hooks below do nothing when there is none.
 */
#ifndef DKD_AUDIT_H
#define DKD_AUDIT_H

#include <stdint.h>
#include <sys/types.h>

#include "daemon/dkd_job.h"
#include "daemon/dkd_outbox.h"
#include "daemon/dkd_tokens.h"
#include "rotate/rotate.h"

struct dkd_audit;

struct dkd_audit_params {
	const char *path;          /* [daemon] audit_log */
	int fail_closed;           /* audit_fail = closed */
	int checkpoint_every;      /* audit_checkpoint */
	struct dkd_token *token;   /* the audit token, or NULL: no HMACs, no checkpoints */
	struct dkd_outbox *outbox; /* jobs go there once their record is on disk */
	const char *conf_path;     /* for the daemon.start record */
	int workers;
};

/*
 * Open the audit log (DK_ERR_IO with detail when it cannot be opened: the
 * daemon does not start), start the thread and queue the daemon.start
 * record.  Becomes the process's audit writer.
 */
int dkd_audit_start(const struct dkd_audit_params *p, struct dkd_audit **out);

/*
 * Can the configured audit log be appended to (or created)?  Touches
 * nothing.  DK_ERR_CONFIG with detail when not; 0 without an audit_log.
 */
int dkd_audit_check(const struct dk_conf *conf);

/*
 * Start the audit writer the config asks for: [daemon] audit_log,
 * audit_fail, audit_checkpoint, and audit_token (default: the first
 * [token]).  0 with *out NULL when there is no audit_log.
 */
int dkd_audit_start_conf(const struct dk_conf *conf, const char *conf_path,
    struct dkd_tokens *tokens, struct dkd_outbox *outbox, struct dkd_audit **out);

/*
 * The pool's sink (dkd_pool_start's finish): takes the finished jobs (a
 * list linked by next) over; thread-safe.  arg is the struct dkd_audit.
 */
void dkd_audit_job(struct dkd_job *job, void *arg);

/*
 * Write daemon.stop and the exit checkpoint after every job queued so far
 * (call after dkd_pool_stop), stop the thread and free a.
 */
void dkd_audit_stop(struct dkd_audit *a);

/* SIGHUP: seal the file with a checkpoint, reopen the path, link the new file to the old. */
void dkd_audit_reopen(void);

/*
 * A sign request refused by the loop before it became a job (no [client],
 * rate limited, busy, bad request): err is the dk_err code answered,
 * domain the requested one or NULL.  Loop thread only.
 */
void dkd_audit_refusal(pid_t pid, uid_t uid, gid_t gid, uint64_t req, int err, const char *domain);

/*
 * A daemon event from any thread: "daemon.reload", "token.down" (failover),
 * "token.up" (recovery), rotation steps.  outcome "ok" or "failed"; token
 * (a [token] name) and text may be NULL.  Never logs secrets or addresses.
 */
void dkd_audit_event(const char *event, const char *outcome, const char *token, const char *text);

/*
 * A move of the daemon's rotation step (rotate/): "key.activated",
 * "key.retired", ..., or a step that could not proceed (outcome failed).
 * Waits (ROT_INFO) are not recorded: nothing moved.
 */
void dkd_audit_rotation(const struct rot_event *ev);

#endif /* DKD_AUDIT_H */
