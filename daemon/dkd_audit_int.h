/*
 * dkd_audit_int.h - what dkd_audit.c (the thread and its batches) and
 * dkd_audit_rec.c (records and the audit token) share.
 */
#ifndef DKD_AUDIT_INT_H
#define DKD_AUDIT_INT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit/dka_file.h"
#include "audit/dka_rec.h"
#include "daemon/dkd_audit.h"
#include "dkim/dkim.h"
#include "hsm/hsm.h"

#define AUDIT_TEXT_MAX 256

/* A record that is not a job's: a loop refusal or a daemon event. */
struct audit_ev {
	struct audit_ev *next;
	char event[32];
	char outcome[12];
	const char *reason; /* status name of a refusal, static */
	char client[65];
	int has_peer;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int has_req;
	uint64_t req;
	char domain[DKIM_DOMAIN_MAX + 1];
	char token[65];
	char label[HSM_LABEL_MAX + 1];
	int has_key; /* a rotation move: */
	char selector[HSM_SELECTOR_MAX + 1];
	char alg[24], slot[8], state[12];
	const char *text_key; /* "error", "config", ...: what text is */
	char text[AUDIT_TEXT_MAX];
	int daemon; /* daemon.start / daemon.stop: version, pid, workers */
};

struct dkd_audit {
	char *conf_path;
	int fail_closed;
	uint64_t every; /* audit_checkpoint */
	int workers;
	struct dkd_token *tok;
	struct dkd_outbox *outbox;
	struct dka_file file;    /* audit thread only, after start */
	const char *open_reason; /* why the next new file opens: "start", "reopen" */

	pthread_t thread;
	int started;
	pthread_mutex_t
	    lock; /* protects the queue: jobs, njobs, evs, nevs, dropped, stopping, reopen */
	pthread_cond_t cond; /* something was queued, or stop / reopen asked */
	struct dkd_job *jobs, *jobs_tail;
	size_t njobs;
	int64_t jobs_since_us; /* when the oldest queued job came */
	struct audit_ev *evs, *evs_tail;
	size_t nevs;
	uint64_t dropped; /* events not queued: the queue was full */
	int stopping;
	int reopen;

	/*
	 * The syncer thread (dkd-audit-sync): batches the writer has written
	 * wait here for one fdatasync that covers them all; their jobs go to
	 * the outbox only after it.  The writer formats and writes the next
	 * records meanwhile.
	 */
	pthread_t syncer;
	int syncer_started;
	pthread_mutex_t sync_lock; /* protects everything down to sync_stop */
	pthread_cond_t sync_cond;  /* written records to sync, or stop */
	pthread_cond_t sync_idle;  /* nothing left to sync and no fdatasync running */
	struct dkd_job *sync_jobs, *sync_tail;
	size_t sync_njobs;
	int sync_want;         /* records written and not yet synced */
	int64_t sync_since_us; /* when the oldest of them was written */
	int sync_busy;         /* an fdatasync runs */
	int sync_fd;           /* the log's descriptor for it (fixed while anything waits) */
	int sync_regular;
	const char *sync_path;
	int sync_stop;
	int64_t sync_logged_us; /* last fdatasync failure logged */

	/* audit thread only */
	struct hsm_session *sess;
	unsigned sess_gen;
	struct hsm_audit_keys keys;
	int have_keys;
	int64_t token_retry_us;        /* no new session before this after a failure */
	uint8_t hour_key[DKA_MAC_LEN]; /* K_hour of hour (mlock'ed, wiped when replaced) */
	char hour[DKA_HOUR_LEN + 1];   /* "" when there is none */
	struct dka_mac hour_mac;       /* HMAC-SHA256 set up with hour_key */
	size_t last_batch_jobs;        /* jobs in the batch before: is there company to wait for? */
	int64_t unsealed_since_us;     /* first record after the last checkpoint, 0: none */
	uint64_t lost;                 /* records not written (audit_fail = open) */
	char lost_why[AUDIT_TEXT_MAX];
	int64_t logged_us; /* last error logged (rate limit) */
};

/* ---- dkd_audit_rec.c ---- */

/* The protocol status name a client got for err ("OK", "NOT_AUTHORIZED", ...). */
const char *audit_status_name(int err);
/* Append the record of a finished job. */
int audit_rec_job(struct dkd_audit *a, struct dka_batch *b, const struct dkd_job *job);
/* Append the record of an event. */
int audit_rec_event(struct dkd_audit *a, struct dka_batch *b, const struct audit_ev *ev);
/* Append a checkpoint (its signing failure is logged, not returned: records still go out). */
void audit_checkpoint(struct dkd_audit *a, struct dka_batch *b, const char *reason);
/* The token's anchor into *h, or NULL when it cannot be read. */
const struct dka_head *audit_anchor_load(struct dkd_audit *a, struct dka_head *h);
/* Tell the token about the newest checkpoint of a written batch. */
void audit_anchor_store(struct dkd_audit *a, const struct dka_batch *b);
/* Close the audit thread's session. */
void audit_token_close(struct dkd_audit *a);
/* Wipe the hour key (at exit). */
void audit_hour_key_wipe(struct dkd_audit *a);

#endif /* DKD_AUDIT_INT_H */
