/*
 * dkd_audit.c - the audit writer thread: a queue of finished jobs and
 * events in; batches written with one write and one fdatasync (group
 * commit); jobs handed to the loop's outbox only once their record is on
 * disk.  The records themselves are made in dkd_audit_rec.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "daemon/dkd_audit_int.h"
#include "daemon/dkd_keyset.h"

#define EV_QUEUE_MAX    65536            /* events waiting; more are counted as dropped */
#define LOCK_TIMEOUT_MS 5000             /* longest wait for another writer (the CLI) to unlock */
#define CHECKPOINT_US   (60 * 1000000LL) /* a checkpoint at least every minute */
#define IDLE_WAIT_SEC   3600
/*
 * Group commit in two threads.  The writer formats and writes records; the
 * syncer makes them durable with one fdatasync for everything written
 * since the last one, and only then hands the jobs to the loop, so records
 * keep being written while an fdatasync runs.  Under load (the batch before
 * had company) the writer takes the next batch once BATCH_GOAL jobs are
 * queued or BATCH_WAIT_US after the oldest came (at once with
 * BATCH_TARGET); a lone request does not wait.  An fdatasync costs ~300 us
 * of CPU (and 1-10 ms) on this project's test VM whatever it covers, and
 * each batch a flock, an fstat and a write: jobs per batch is what
 * auditing costs (docs/audit.md "Cost").
 */
#define BATCH_GOAL         16
#define BATCH_WAIT_US      8000
#define BATCH_TARGET       128
#define ERROR_LOG_EVERY_US (10 * 1000000LL)

/* The process's audit writer, for the hooks; current_lock protects it and its use by a hook. */
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct dkd_audit *) current;

/* ---- queueing (any thread) ---- */

static void
push_ev(struct audit_ev *ev)
{
	struct dkd_audit *a;

	pthread_mutex_lock(&current_lock);
	if ((a = atomic_load(&current)) == NULL) {
		pthread_mutex_unlock(&current_lock);
		free(ev);
		return;
	}
	pthread_mutex_lock(&a->lock);
	if (a->nevs >= EV_QUEUE_MAX) {
		a->dropped++;
		free(ev);
	} else {
		ev->next = NULL;
		if (a->evs_tail != NULL)
			a->evs_tail->next = ev;
		else
			a->evs = ev;
		a->evs_tail = ev;
		a->nevs++;
		pthread_cond_signal(&a->cond);
	}
	pthread_mutex_unlock(&a->lock);
	pthread_mutex_unlock(&current_lock);
}

static struct audit_ev *
ev_new(const char *event)
{
	struct audit_ev *ev = calloc(1, sizeof(*ev));

	if (ev != NULL)
		snprintf(ev->event, sizeof(ev->event), "%s", event);
	return ev;
}

void
dkd_audit_event(const char *event, const char *outcome, const char *token, const char *text)
{
	struct audit_ev *ev;

	if (atomic_load(&current) == NULL || (ev = ev_new(event)) == NULL)
		return;
	if (outcome != NULL)
		snprintf(ev->outcome, sizeof(ev->outcome), "%s", outcome);
	if (token != NULL)
		snprintf(ev->token, sizeof(ev->token), "%s", token);
	if (text != NULL && text[0]) {
		ev->text_key = "error";
		snprintf(ev->text, sizeof(ev->text), "%s", text);
	}
	push_ev(ev);
}

void
dkd_audit_rotation(const struct rot_event *ev)
{
	struct audit_ev *a;
	char name[32];

	if (ev->level == ROT_INFO || atomic_load(&current) == NULL)
		return;
	snprintf(name, sizeof(name), "key.%s", ev->event);
	if ((a = ev_new(name)) == NULL)
		return;
	snprintf(a->outcome, sizeof(a->outcome), "%s", ev->level >= ROT_WARN ? "failed" : "ok");
	snprintf(a->domain, sizeof(a->domain), "%s", ev->domain != NULL ? ev->domain : "");
	a->has_key = 1;
	snprintf(a->selector, sizeof(a->selector), "%s", ev->selector != NULL ? ev->selector : "");
	snprintf(a->alg, sizeof(a->alg), "%s", ev->alg != NULL ? ev->alg : "");
	snprintf(a->slot, sizeof(a->slot), "%s", ev->slot != NULL ? ev->slot : "");
	snprintf(a->state, sizeof(a->state), "%s", ev->state != NULL ? ev->state : "");
	snprintf(a->token, sizeof(a->token), "%s", ev->token != NULL ? ev->token : "");
	if (ev->text != NULL && ev->text[0]) {
		a->text_key = ev->level >= ROT_WARN ? "error" : "detail";
		snprintf(a->text, sizeof(a->text), "%s", ev->text);
	}
	push_ev(a);
}

/* A requested domain goes in only when it is a plausible name: it comes from the caller. */
static void
copy_domain(char *dst, size_t len, const char *src)
{
	size_t i, n;

	if (src == NULL)
		return;
	n = strlen(src);
	if (n == 0 || n >= len)
		return;
	for (i = 0; i < n; i++) {
		char c = src[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		        c == '-' || c == '.' || c == '_'))
			return;
	}
	for (i = 0; i <= n; i++)
		dst[i] = (char)((src[i] >= 'A' && src[i] <= 'Z') ? src[i] + 32 : src[i]);
}

void
dkd_audit_refusal(pid_t pid, uid_t uid, gid_t gid, uint64_t req, int err, const char *domain)
{
	const struct dk_conf_client *cl;
	struct dkd_keyset *ks;
	struct audit_ev *ev;

	/* Outside a sign request (a frame that is no Request at all) it is a "request". */
	if (atomic_load(&current) == NULL ||
	    (ev = ev_new(domain != NULL ? "sign" : "request")) == NULL)
		return;
	snprintf(ev->outcome, sizeof(ev->outcome), "refused");
	ev->reason = audit_status_name(err);
	ev->has_peer = 1;
	ev->pid = pid;
	ev->uid = uid;
	ev->gid = gid;
	ev->has_req = 1;
	ev->req = req;
	copy_domain(ev->domain, sizeof(ev->domain), domain);
	if ((ks = dkd_keyset_acquire()) != NULL) {
		if ((cl = dk_conf_client_for(ks->conf, uid, gid)) != NULL)
			snprintf(ev->client, sizeof(ev->client), "%s", cl->name);
		dkd_keyset_release(ks);
	}
	push_ev(ev);
}

void
dkd_audit_job(struct dkd_job *job, void *arg)
{
	struct dkd_audit *a = arg;
	struct dkd_job *last = job;
	size_t n = 1, before;

	while (last->next != NULL) {
		last = last->next;
		n++;
	}
	pthread_mutex_lock(&a->lock);
	if (a->jobs_tail != NULL) {
		a->jobs_tail->next = job;
	} else {
		a->jobs = job;
		a->jobs_since_us = dka_now_us();
	}
	a->jobs_tail = last;
	before = a->njobs;
	a->njobs += n;
	/* Wake the writer for the first jobs of a batch and for a full one, not for each. */
	if (before == 0 || (before < BATCH_GOAL && a->njobs >= BATCH_GOAL) ||
	    (before < BATCH_TARGET && a->njobs >= BATCH_TARGET))
		pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

/* ---- batches (audit thread) ---- */

static int
cp_due(const struct dkd_audit *a, int64_t now)
{
	return a->file.since_cp > 0 && a->unsealed_since_us > 0 &&
	       now - a->unsealed_since_us >= CHECKPOINT_US;
}

static void log_failure(struct dkd_audit *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Errors are logged at most every ERROR_LOG_EVERY_US: a full disk must not flood syslog. */
static void
log_failure(struct dkd_audit *a, const char *fmt, ...)
{
	int64_t now = dka_now_us();
	char msg[768];
	va_list ap;

	if (now - a->logged_us < ERROR_LOG_EVERY_US)
		return;
	a->logged_us = now;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dk_log_err("%s", msg);
}

/* audit_fail = closed: the signatures of jobs whose record is not on disk do not go out. */
static size_t
refuse_jobs(struct dkd_job *jobs, const char *why)
{
	struct dkd_job *job;
	size_t i, refused = 0;

	for (job = jobs; job != NULL; job = job->next) {
		if (job->result != 0)
			continue;
		for (i = 0; i < job->nsigs; i++) {
			free(job->sigs[i].header);
			job->sigs[i].header = NULL;
		}
		job->nsigs = 0;
		job->result = DK_ERR_AUDIT;
		snprintf(job->error, sizeof(job->error),
		    "the audit record cannot be written: %s; fix the audit log (disk full? "
		    "permissions?)",
		    why);
		refused++;
	}
	return refused;
}

/* ---- the syncer ---- */

/* Written jobs (and records without a job: jobs may be NULL) wait for the next fdatasync. */
static void
sync_hand(struct dkd_audit *a, struct dkd_job *jobs)
{
	struct dkd_job *last = NULL, *job;
	size_t n = 0;

	for (job = jobs; job != NULL; job = job->next) {
		last = job;
		n++;
	}
	pthread_mutex_lock(&a->sync_lock);
	if (jobs != NULL) {
		if (a->sync_tail != NULL)
			a->sync_tail->next = jobs;
		else
			a->sync_jobs = jobs;
		a->sync_tail = last;
		a->sync_njobs += n;
	}
	if (!a->sync_want)
		a->sync_since_us = dka_now_us();
	a->sync_want = 1;
	a->sync_fd = a->file.fd;
	a->sync_regular = a->file.regular;
	a->sync_path = a->file.path;
	pthread_cond_signal(&a->sync_cond);
	pthread_mutex_unlock(&a->sync_lock);
}

/* Wait until everything handed to the syncer is durable (and answered). */
static void
sync_drain(struct dkd_audit *a)
{
	pthread_mutex_lock(&a->sync_lock);
	while (a->sync_want || a->sync_busy)
		pthread_cond_wait(&a->sync_idle, &a->sync_lock);
	pthread_mutex_unlock(&a->sync_lock);
}

/*
 * The fdatasync failed: the records were written but may not be on disk.
 * closed: their signatures do not go out.  open: they go; the records are
 * probably there, so none is counted as lost.
 */
static void
sync_failed(struct dkd_audit *a, struct dkd_job *jobs, int r)
{
	char why[AUDIT_TEXT_MAX];
	size_t refused = 0;
	int64_t now = dka_now_us();

	snprintf(why, sizeof(why), "%s", dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
	if (a->fail_closed)
		refused = refuse_jobs(jobs, why);
	if (now - a->sync_logged_us < ERROR_LOG_EVERY_US)
		return;
	a->sync_logged_us = now;
	if (a->fail_closed)
		dk_log_err("audit: %s; signing is refused until the audit log can be written "
		           "(audit_fail = closed; %zu requests refused)",
		    why, refused);
	else
		dk_log_err("audit: %s; signing goes on (audit_fail = open)", why);
}

static void *
sync_main(void *arg)
{
	struct dkd_audit *a = arg;
	struct dkd_job *jobs;
	const char *path;
	int fd, regular, r;

	(void)pthread_setname_np(pthread_self(), "dkd-audit-sync");
	pthread_mutex_lock(&a->sync_lock);
	for (;;) {
		while (!a->sync_want && !a->sync_stop)
			pthread_cond_wait(&a->sync_cond, &a->sync_lock);
		if (!a->sync_want)
			break;
		jobs = a->sync_jobs;
		a->sync_jobs = a->sync_tail = NULL;
		a->sync_njobs = 0;
		a->sync_want = 0;
		fd = a->sync_fd;
		regular = a->sync_regular;
		path = a->sync_path;
		a->sync_busy = 1;
		pthread_mutex_unlock(&a->sync_lock);
		if ((r = dka_file_sync(fd, regular, path)) != 0)
			sync_failed(a, jobs, r);
		dkd_outbox_put(a->outbox, jobs);
		pthread_mutex_lock(&a->sync_lock);
		a->sync_busy = 0;
		if (!a->sync_want)
			pthread_cond_broadcast(&a->sync_idle);
	}
	pthread_mutex_unlock(&a->sync_lock);
	return NULL;
}

/*
 * The batch could not be written.  closed: nothing it signed may leave
 * (the record of the signature is not on disk).  open: the signatures go,
 * and the next written batch says how many records were lost.
 */
static void
batch_failed(struct dkd_audit *a, struct dkd_job *jobs, size_t nrec, int r)
{
	char why[AUDIT_TEXT_MAX];
	size_t refused = 0;

	snprintf(why, sizeof(why), "%s", dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
	if (a->fail_closed)
		refused = refuse_jobs(jobs, why);
	if (a->fail_closed) {
		log_failure(a,
		    "audit: %s; signing is refused until the audit log can be written "
		    "(audit_fail = closed; %zu requests refused in this batch)",
		    why, refused);
		return;
	}
	a->lost += nrec;
	snprintf(a->lost_why, sizeof(a->lost_why), "%s", why);
	log_failure(a,
	    "audit: %s; %llu audit records lost so far, signing goes on (audit_fail = "
	    "open)",
	    why, (unsigned long long)a->lost);
}

/* Records that say what the log is missing: lost in failed writes, or dropped from the queue. */
static int
rec_gaps(struct dkd_audit *a, struct dka_batch *b, uint64_t dropped)
{
	struct dk_json *j;
	int r;

	if (a->lost > 0) {
		j = dka_rec_begin(b, "audit.gap", dka_now_us());
		dk_json_uint(j, "lost", a->lost);
		dk_json_str(j, "error", a->lost_why);
		if ((r = dka_rec_end(b)) != 0)
			return r;
	}
	if (dropped > 0) {
		j = dka_rec_begin(b, "audit.gap", dka_now_us());
		dk_json_uint(j, "dropped", dropped);
		dk_json_str(j, "error", "the audit queue was full (refusal flood)");
		if ((r = dka_rec_end(b)) != 0)
			return r;
	}
	return 0;
}

static int
batch_records(struct dkd_audit *a, struct dka_batch *b, struct dkd_job *jobs, struct audit_ev *evs,
    uint64_t dropped)
{
	struct dkd_job *job;
	struct audit_ev *ev;
	int r;

	if ((r = rec_gaps(a, b, dropped)) != 0)
		return r;
	for (ev = evs; ev != NULL; ev = ev->next) {
		if ((r = audit_rec_event(a, b, ev)) != 0)
			return r;
		if (b->since_cp >= a->every)
			audit_checkpoint(a, b, "count");
	}
	for (job = jobs; job != NULL; job = job->next) {
		if ((r = audit_rec_job(a, b, job)) != 0)
			return r;
		if (b->since_cp >= a->every)
			audit_checkpoint(a, b, "count");
	}
	return 0;
}

/* A second witness of each checkpoint, kept elsewhere than the log: syslog. */
static void
log_checkpoint(const struct dka_batch *b)
{
	char hex[DKA_HASH_HEX + 1];

	dka_hex(b->cp.hash, DKA_HASH_LEN, hex);
	dk_log_info("audit: checkpoint seq %llu, line hash %s", (unsigned long long)b->cp.seq, hex);
}

/* Write one batch: records of evs and jobs, then a checkpoint when one is due or asked. */
static void
run_batch(struct dkd_audit *a, struct dkd_job *jobs, struct audit_ev *evs, uint64_t dropped,
    const char *cp_reason)
{
	const struct dka_head *anchor = NULL;
	struct dka_head anchor_buf;
	struct dka_batch b;
	int64_t now;
	size_t nrec = dropped > 0 ? 1 : 0;
	struct dkd_job *job;
	struct audit_ev *ev;
	int r;

	memset(&b, 0, sizeof(b));
	for (job = jobs; job != NULL; job = job->next)
		nrec++;
	for (ev = evs; ev != NULL; ev = ev->next)
		nrec++;
	if (a->file.fd < 0 && (r = dka_file_open(a->file.path, &a->file)) != 0)
		goto out;
	if ((r = dka_file_lock(&a->file, LOCK_TIMEOUT_MS)) != 0)
		goto out;
	if (a->file.empty && !a->file.head_known)
		anchor = audit_anchor_load(a, &anchor_buf);
	if ((r = dka_file_batch(&a->file, &b, anchor, a->open_reason, "dkimkeepd")) != 0 ||
	    (r = batch_records(a, &b, jobs, evs, dropped)) != 0)
		goto out;
	now = dka_now_us();
	/* A batch that already ends in a checkpoint is sealed: no second one right after. */
	if (cp_reason != NULL && !(b.has_cp && b.since_cp == 0))
		audit_checkpoint(a, &b, cp_reason);
	else if (b.since_cp > 0 && a->unsealed_since_us > 0 &&
	         now - a->unsealed_since_us >= CHECKPOINT_US)
		audit_checkpoint(a, &b, "minute");
	if ((r = dka_file_append(&a->file, &b, 0)) != 0)
		goto out;
	/* Durable from here on the syncer's side; a checkpoint waits for it (the token's anchor).
	 */
	sync_hand(a, jobs);
	jobs = NULL;
	if (b.has_cp || cp_reason != NULL) {
		sync_drain(a);
		audit_anchor_store(a, &b);
	}
	if (b.has_cp)
		log_checkpoint(&b);
	if (a->file.since_cp == 0)
		a->unsealed_since_us = 0;
	else if (a->unsealed_since_us == 0 || b.has_cp)
		a->unsealed_since_us = now;
	a->lost = 0;
out:
	dka_file_unlock(&a->file);
	if (r != 0)
		batch_failed(a, jobs, nrec, r);
	dka_batch_free(&b);
	dkd_outbox_put(a->outbox, jobs); /* not written: refused (closed) or sent (open) */
	while (evs != NULL) {
		ev = evs->next;
		free(evs);
		evs = ev;
	}
}

/* SIGHUP: seal the old file, then open the path again (logrotate moved the old one). */
static void
reopen_file(struct dkd_audit *a)
{
	int r;

	run_batch(a, NULL, NULL, 0, "reopen");
	sync_drain(a); /* the syncer holds the old descriptor while anything waits */
	dka_file_close(&a->file);
	a->open_reason = "reopen";
	if ((r = dka_file_open(a->file.path, &a->file)) != 0)
		dk_log_err("audit: %s; retrying with each request", dk_err_detail());
	else
		dk_log_notice("audit: %s reopened", a->file.path);
}

static void
wait_work(struct dkd_audit *a)
{
	struct timespec ts;
	int64_t until;

	while (a->jobs == NULL && a->evs == NULL && !a->stopping && !a->reopen &&
	       !cp_due(a, dka_now_us())) {
		until = a->file.since_cp > 0 && a->unsealed_since_us > 0
		            ? a->unsealed_since_us + CHECKPOINT_US
		            : dka_now_us() + IDLE_WAIT_SEC * 1000000LL;
		ts.tv_sec = (time_t)(until / 1000000);
		ts.tv_nsec = (long)(until % 1000000) * 1000;
		if (pthread_cond_timedwait(&a->cond, &a->lock, &ts) == ETIMEDOUT)
			break;
	}
	/* Jobs wait for company (see BATCH_GOAL); events and stop/reopen do not wait. */
	while (a->jobs != NULL && a->last_batch_jobs > 1 && a->njobs < BATCH_GOAL &&
	       a->evs == NULL && !a->stopping && !a->reopen) {
		until = a->jobs_since_us + BATCH_WAIT_US;
		if (dka_now_us() >= until)
			break;
		ts.tv_sec = (time_t)(until / 1000000);
		ts.tv_nsec = (long)(until % 1000000) * 1000;
		if (pthread_cond_timedwait(&a->cond, &a->lock, &ts) == ETIMEDOUT)
			break;
	}
}

static void *
audit_main(void *arg)
{
	struct dkd_audit *a = arg;
	struct dkd_job *jobs;
	struct audit_ev *evs;
	uint64_t dropped;
	int reopen, stopping;

	(void)pthread_setname_np(pthread_self(), "dkd-audit"); /* top -H, /proc/PID/task */

	for (;;) {
		pthread_mutex_lock(&a->lock);
		wait_work(a);
		jobs = a->jobs;
		evs = a->evs;
		a->jobs = a->jobs_tail = NULL;
		a->last_batch_jobs = a->njobs;
		a->njobs = 0;
		a->evs = a->evs_tail = NULL;
		a->nevs = 0;
		dropped = a->dropped;
		a->dropped = 0;
		reopen = a->reopen;
		a->reopen = 0;
		stopping = a->stopping;
		pthread_mutex_unlock(&a->lock);
		if (stopping) {
			/* The pool has stopped: these are the last jobs; daemon.stop is among evs.
			 */
			run_batch(a, jobs, evs, dropped, "exit");
			break;
		}
		if (jobs != NULL || evs != NULL || dropped > 0 || cp_due(a, dka_now_us()))
			run_batch(a, jobs, evs, dropped, NULL);
		if (reopen)
			reopen_file(a);
	}
	sync_drain(a);
	audit_token_close(a);
	audit_hour_key_wipe(a);
	return NULL;
}

/* ---- start and stop ---- */

static void
audit_free(struct dkd_audit *a)
{
	struct audit_ev *ev;

	if (a == NULL)
		return;
	while ((ev = a->evs) != NULL) {
		a->evs = ev->next;
		free(ev);
	}
	if (a->syncer_started) {
		pthread_mutex_lock(&a->sync_lock);
		a->sync_stop = 1;
		pthread_cond_signal(&a->sync_cond);
		pthread_mutex_unlock(&a->sync_lock);
		pthread_join(a->syncer, NULL); /* syncs and hands on what is left first */
	}
	dkd_outbox_put(a->outbox, a->jobs);
	dka_file_free(&a->file);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->sync_cond);
	pthread_cond_destroy(&a->sync_idle);
	pthread_mutex_destroy(&a->sync_lock);
	free(a->conf_path);
	free(a);
}

static struct audit_ev *
daemon_ev(struct dkd_audit *a, const char *event)
{
	struct audit_ev *ev = ev_new(event);

	if (ev == NULL)
		return NULL;
	ev->daemon = 1;
	if (strcmp(event, "daemon.start") == 0 && a->conf_path != NULL) {
		ev->text_key = "config";
		snprintf(ev->text, sizeof(ev->text), "%s", a->conf_path);
	}
	return ev;
}

int
dkd_audit_start(const struct dkd_audit_params *p, struct dkd_audit **out)
{
	struct dkd_audit *a;
	int r;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return DK_ERR_NOMEM;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	pthread_mutex_init(&a->sync_lock, NULL);
	pthread_cond_init(&a->sync_cond, NULL);
	pthread_cond_init(&a->sync_idle, NULL);
	a->file.fd = -1;
	a->fail_closed = p->fail_closed;
	a->every = p->checkpoint_every > 0 ? (uint64_t)p->checkpoint_every : 1000;
	a->workers = p->workers;
	a->tok = p->token;
	a->outbox = p->outbox;
	a->open_reason = "start";
	/* The hour key must not reach swap (best effort: a daemon without the right still runs). */
	(void)mlock(a->hour_key, sizeof(a->hour_key));
	if (p->conf_path != NULL && (a->conf_path = strdup(p->conf_path)) == NULL) {
		r = DK_ERR_NOMEM;
		goto fail;
	}
	if ((r = dka_file_open(p->path, &a->file)) != 0)
		goto fail;
	if ((a->evs = a->evs_tail = daemon_ev(a, "daemon.start")) != NULL)
		a->nevs = 1;
	if (pthread_create(&a->syncer, NULL, sync_main, a) != 0) {
		r = dk_err_set(DK_ERR_INTERNAL, "cannot start the audit syncer thread");
		goto fail;
	}
	a->syncer_started = 1;
	if (pthread_create(&a->thread, NULL, audit_main, a) != 0) {
		r = dk_err_set(DK_ERR_INTERNAL, "cannot start the audit thread");
		goto fail;
	}
	a->started = 1;
	pthread_mutex_lock(&current_lock);
	atomic_store(&current, a);
	pthread_mutex_unlock(&current_lock);
	dk_log_info("audit: writing %s (audit_fail = %s, a checkpoint every %llu records)", p->path,
	    a->fail_closed ? "closed" : "open", (unsigned long long)a->every);
	*out = a;
	return 0;
fail:
	audit_free(a);
	return r;
}

int
dkd_audit_check(const struct dk_conf *conf)
{
	const char *path = conf->daemon.audit_log;
	char *dir = NULL, *slash;
	int fd, r = 0;

	if (path == NULL)
		return 0;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY)) >= 0) {
		close(fd);
		return 0;
	}
	if (errno != ENOENT) {
		r = dk_err_set(DK_ERR_CONFIG,
		    "[daemon] audit_log = %s cannot be written: %s; give the daemon's user write "
		    "access, or fix the path",
		    path, strerror(errno));
		goto out;
	}
	if ((dir = strdup(path)) == NULL)
		return DK_ERR_NOMEM;
	if ((slash = strrchr(dir, '/')) != NULL)
		*(slash == dir ? slash + 1 : slash) = '\0';
	if (access(slash != NULL ? dir : ".", W_OK | X_OK) != 0)
		r = dk_err_set(DK_ERR_CONFIG,
		    "[daemon] audit_log = %s cannot be created: %s: %s; create the directory and "
		    "give the daemon's user write access",
		    path, slash != NULL ? dir : ".", strerror(errno));
out:
	free(dir);
	return r;
}

int
dkd_audit_start_conf(const struct dk_conf *conf, const char *conf_path, struct dkd_tokens *tokens,
    struct dkd_outbox *outbox, struct dkd_audit **out)
{
	struct dkd_audit_params p;

	*out = NULL;
	if (conf->daemon.audit_log == NULL)
		return 0;
	memset(&p, 0, sizeof(p));
	p.path = conf->daemon.audit_log;
	p.fail_closed = conf->daemon.audit_fail_closed;
	p.checkpoint_every = conf->daemon.audit_checkpoint;
	p.outbox = outbox;
	p.conf_path = conf_path;
	p.workers = conf->daemon.workers;
	if (conf->daemon.audit_token != NULL)
		p.token = dkd_tokens_find(tokens, conf->daemon.audit_token);
	else if (tokens->n > 0)
		p.token = &tokens->v[0];
	if (p.token == NULL)
		dk_log_warn("audit: no audit token: records carry no Message-ID hashes and no "
		            "checkpoint seals them; add a [token] section");
	return dkd_audit_start(&p, out);
}

void
dkd_audit_reopen(void)
{
	struct dkd_audit *a;

	pthread_mutex_lock(&current_lock);
	if ((a = atomic_load(&current)) != NULL) {
		pthread_mutex_lock(&a->lock);
		a->reopen = 1;
		pthread_cond_signal(&a->cond);
		pthread_mutex_unlock(&a->lock);
	}
	pthread_mutex_unlock(&current_lock);
}

void
dkd_audit_stop(struct dkd_audit *a)
{
	struct audit_ev *ev;

	if (a == NULL)
		return;
	pthread_mutex_lock(&current_lock);
	atomic_store(&current, NULL); /* hooks called from now on do nothing */
	pthread_mutex_unlock(&current_lock);
	ev = daemon_ev(a, "daemon.stop");
	pthread_mutex_lock(&a->lock);
	if (ev != NULL) {
		if (a->evs_tail != NULL)
			a->evs_tail->next = ev;
		else
			a->evs = ev;
		a->evs_tail = ev;
	}
	a->stopping = 1;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	if (a->started)
		pthread_join(a->thread, NULL);
	audit_free(a);
}
