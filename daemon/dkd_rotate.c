/*
 * dkd_rotate.c - the daemon's rotation step, on a helper thread.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "common/dk_time.h"
#include "daemon/dkd_audit.h"
#include "daemon/dkd_keyset.h"
#include "daemon/dkd_notify.h"
#include "daemon/dkd_rotate.h"
#include "rotate/rot_lease.h"
#include "rotate/rotate.h"

#define ALERT_REPEAT_S 3600 /* the same alert about the same key is sent again after this */
#define ALERTS_MAX     64
#define NOTIFY_TEXT    1200

struct rot_job {
	struct dkd_tokens *tokens;
	struct dkd_keyset *ks; /* a reference: its conf stays valid for the step */
	void (*reload)(void *);
	void *arg;
};

static atomic_int rot_busy;
/* Bit i: the running step holds a session on token i (DK_CONF_MAX_TOKENS is 64). */
static atomic_ullong rot_sessions;
static time_t rot_next;            /* loop thread only */
static int rot_steps;              /* step thread only (one at a time) */
static uint64_t rot_digest;        /* step thread only */
static struct rot_lease rot_lease; /* step thread only; made at the first step */
static int rot_lease_ok;           /* step thread only */

/* Alerts already sent, so that a ring stuck for days does not page every minute. */
static struct {
	char key[96];
	time_t at;
} rot_alerts[ALERTS_MAX]; /* step thread only */

static int
alert_due(const struct rot_event *ev)
{
	char key[96];
	size_t i, oldest = 0;

	snprintf(key, sizeof(key), "%s %s %s", ev->event, ev->domain, ev->selector);
	for (i = 0; i < ALERTS_MAX; i++) {
		if (strcmp(rot_alerts[i].key, key) == 0) {
			if (ev->time - rot_alerts[i].at < ALERT_REPEAT_S)
				return 0;
			rot_alerts[i].at = ev->time;
			return 1;
		}
		if (rot_alerts[i].at < rot_alerts[oldest].at)
			oldest = i;
	}
	snprintf(rot_alerts[oldest].key, sizeof(rot_alerts[oldest].key), "%s", key);
	rot_alerts[oldest].at = ev->time;
	return 1;
}

static void
report_cb(const struct rot_event *ev, void *arg)
{
	char event[64], text[NOTIFY_TEXT], t[32];

	(void)arg;
	dk_time_rfc3339(ev->time, t, sizeof(t));
	snprintf(text, sizeof(text), "selector=%s alg=%s slot=%s state=%s time=%s token=%s: %s",
	    ev->selector[0] ? ev->selector : "-", ev->alg, ev->slot, ev->state[0] ? ev->state : "-",
	    t, ev->token, ev->text);
	snprintf(event, sizeof(event), "rotation.%s", ev->event);
	switch (ev->level) {
	case ROT_INFO:
		dk_log_info("%s %s %s", event, ev->domain, text);
		return;
	case ROT_NOTICE:
		dk_log_notice("%s %s %s", event, ev->domain, text);
		break;
	case ROT_WARN:
		dk_log_warn("%s %s %s", event, ev->domain, text);
		break;
	default:
		dk_log_err("%s %s %s", event, ev->domain, text);
		break;
	}
	dkd_audit_rotation(ev);
	/* A token that is down was announced by its failover already. */
	if (strcmp(ev->event, "token-unavailable") == 0)
		return;
	if (ev->level < ROT_WARN || alert_due(ev))
		dkd_notify(event, ev->domain, text);
}

/* One session per up token, for this thread; a token down gets none. */
static void
step_open(struct dkd_tokens *tokens, struct rot_tok *toks)
{
	size_t i;

	for (i = 0; i < tokens->n; i++) {
		toks[i].name = tokens->v[i].name;
		toks[i].s = NULL;
		/*
		 * Marked before "up" is read: a health check that re-initializes the
		 * module either saw the mark, or did so while the token was down.
		 */
		atomic_fetch_or(&rot_sessions, 1ull << (i % 64));
		if (tokens->v[i].token == NULL || !atomic_load(&tokens->v[i].up)) {
			atomic_fetch_and(&rot_sessions, ~(1ull << (i % 64)));
			continue;
		}
		if (hsm_session_open(tokens->v[i].token, &toks[i].s) != 0) {
			dk_log_warn(
			    "rotation: token \"%s\": %s", tokens->v[i].name, dk_err_detail());
			toks[i].s = NULL;
		}
	}
}

/*
 * One driver per token among every daemon and operator on it
 * (rotate/rot_lease.h): on a token whose lease another holds, this step
 * only reads the keys, and reloads the rings when the driver moved them.
 */
static void
step_lease(const struct dk_conf *conf, struct dkd_tokens *tokens, struct rot_tok *toks)
{
	int64_t iv = conf->daemon.step_interval;
	size_t i;
	int held;

	if (!rot_lease_ok) {
		/* Lasts three steps unrenewed; a clock difference of one step is allowed. */
		if (rot_lease_init(&rot_lease, "dkimkeepd", iv * 3 > 10 ? iv * 3 : 10,
		        iv < 30 ? iv : 30) != 0) {
			dk_log_err(
			    "rotation: %s; this daemon only reads the rings", dk_err_detail());
			for (i = 0; i < tokens->n; i++)
				toks[i].observe = 1;
			return;
		}
		rot_lease_ok = 1;
	}
	for (i = 0; i < tokens->n; i++) {
		if (toks[i].s == NULL)
			continue;
		if (rot_lease_take(&rot_lease, toks[i].s, &held) != 0) {
			dk_log_warn(
			    "rotation: token \"%s\": the lease cannot be taken: %s; its rings "
			    "are not moved by this step",
			    tokens->v[i].name, dk_err_detail());
			held = 0;
		} else if (rot_lease.yielded) {
			dk_log_notice(
			    "rotation lease of token \"%s\" handed over to %s; this daemon "
			    "takes it back when the operator is done",
			    tokens->v[i].name, rot_lease.other);
		} else if (rot_lease.taken) {
			dk_log_info("rotation lease of token \"%s\" taken by %s", tokens->v[i].name,
			    rot_lease.holder);
		} else if (!held) {
			dk_log_debug("rotation: token \"%s\" is driven by %s", tokens->v[i].name,
			    rot_lease.other[0] ? rot_lease.other : "another process");
		}
		toks[i].observe = !held;
	}
}

static void *
step_main(void *arg)
{
	struct rot_job *job = arg;
	struct rot_tok *toks;
	struct rot_ctx c;
	size_t i;

	if ((toks = calloc(job->tokens->n + 1, sizeof(*toks))) == NULL)
		goto out;
	step_open(job->tokens, toks);
	step_lease(job->ks->conf, job->tokens, toks);
	memset(&c, 0, sizeof(c));
	c.conf = job->ks->conf;
	c.toks = toks;
	c.ntoks = job->tokens->n;
	c.now = time(NULL);
	c.report = report_cb;
	c.signing_moved = job->reload;
	c.moved_arg = job->arg;
	if (rot_step(&c, NULL) != 0)
		dk_log_err("rotation step failed: %s", dk_err_detail());
	for (i = 0; i < job->tokens->n; i++) {
		if (toks[i].s != NULL)
			hsm_session_close(toks[i].s);
	}
	atomic_store(&rot_sessions, 0);
	/* Keys moved here or elsewhere (another daemon, an operator): read the rings again. */
	if (c.moves > 0 || c.digest != rot_digest || rot_steps == 0)
		job->reload(job->arg);
	rot_digest = c.digest;
	rot_steps++;
out:
	free(toks);
	dkd_keyset_release(job->ks);
	free(job);
	atomic_store(&rot_busy, 0);
	return NULL;
}

void
dkd_rotate_tick(struct dkd_tokens *tokens, void (*reload)(void *), void *arg)
{
	struct rot_job *job = NULL;
	struct dkd_keyset *ks;
	pthread_attr_t attr;
	pthread_t th;
	time_t now = time(NULL);

	if (atomic_load(&rot_busy) || (ks = dkd_keyset_acquire()) == NULL)
		return;
	if (rot_next == 0)
		rot_next =
		    now + ks->conf->daemon.step_interval; /* the first step: one interval in */
	if (now < rot_next || (job = calloc(1, sizeof(*job))) == NULL) {
		dkd_keyset_release(ks);
		return;
	}
	rot_next = now + ks->conf->daemon.step_interval;
	job->tokens = tokens;
	job->ks = ks;
	job->reload = reload;
	job->arg = arg;
	atomic_store(&rot_busy, 1);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, step_main, job) != 0) {
		dk_log_err("cannot start the rotation thread; retried at the next step");
		dkd_keyset_release(ks);
		free(job);
		atomic_store(&rot_busy, 0);
	}
	pthread_attr_destroy(&attr);
}

int
dkd_rotate_uses(size_t token_index)
{
	return (atomic_load(&rot_sessions) >> (token_index % 64)) & 1;
}

int
dkd_rotate_busy(void)
{
	return atomic_load(&rot_busy);
}
