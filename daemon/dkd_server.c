/*
 * dkd_server.c - the event loop: listener, signals, the wake-up from the
 * workers, and the background threads for reload and token health.
 */
#include <sys/eventfd.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "common/dk_time.h"
#include "daemon/dkd_audit.h"
#include "daemon/dkd_keyset.h"
#include "daemon/dkd_listen.h"
#include "daemon/dkd_loop.h"
#include "daemon/dkd_notify.h"
#include "daemon/dkd_outbox.h"
#include "daemon/dkd_rotate.h"
#include "daemon/dkd_server.h"

#define SHUTDOWN_GRACE_SEC 30 /* answers still unread after this are dropped at exit */
/*
 * With at most one request out and a worker idle (so, on a machine with as
 * many cores as workers, a core is too) the loop polls instead of
 * sleeping: while the request is signed, at most LOOP_SPIN_OUT_US, and
 * LOOP_SPIN_US after its answer (the caller's next request comes within a
 * round trip).  A sleeping loop is woken through the scheduler,
 * and on a VM whose idle vCPU halts that costs 50-150 us per wake-up:
 * most of the 1-client latency over the raw token (docs/performance.md).
 * With every worker busy (the daemon at its rate) the loop sleeps as usual.
 */
#define LOOP_SPIN_US     200
#define LOOP_SPIN_OUT_US 5000

static void
server_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dkd_loop *lp = arg;
	uint64_t n;

	(void)what;
	/* Reset the eventfd first: a job put after the take below writes it again. */
	while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	dkd_conn_deliver(lp, dkd_outbox_take(lp->outbox));
}

/*
 * Called by a worker (or the audit writer): wake the loop.  An eventfd of
 * our own, not event_active(): that takes libevent's base lock, which the
 * loop holds while it runs, and the contention was most of the loop's
 * futex calls (docs/performance.md).  No thread but the loop calls into
 * libevent, so libevent runs without locks at all.
 */
static void
server_wake(void *arg)
{
	struct dkd_loop *lp = arg;
	uint64_t one = 1;

	while (write(lp->done_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* The pool's sink: finished jobs (a list) go to the loop's outbox. */
static void
server_finish(struct dkd_job *job, void *arg)
{
	struct dkd_loop *lp = arg;

	dkd_outbox_put(lp->outbox, job);
}

static void
server_accept_cb(
    struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	(void)l;
	(void)sa;
	(void)len;
	dkd_conn_accept(arg, fd);
}

/* Reloads run on one helper thread at a time; a reload asked meanwhile runs after it. */
static atomic_int bg_busy;
static atomic_int bg_pending;

/* Reload the config and the key rings; the old snapshot stays until this one is ready. */
static void
bg_reload(struct dkd_loop *lp)
{
	struct dk_conf *conf = NULL;
	struct dkd_keyset *ks = NULL;
	int r;

	if ((r = dk_conf_load(lp->conf_path, &conf)) != 0) {
		dk_log_err("reload refused, the running configuration stays: %s",
		    dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
		dkd_audit_event("daemon.reload", "failed", NULL,
		    dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
		return;
	}
	dkd_notify_init(conf->dns.notify_command);
	if ((r = dkd_keyset_load(conf, lp->tokens, &ks)) != 0) {
		dk_log_err(
		    "reload of the key rings failed, the running rings stay: %s", dk_strerror(r));
		dkd_audit_event("daemon.reload", "failed", NULL, dk_strerror(r));
		return;
	}
	dkd_keyset_publish(ks);
	dkd_audit_event("daemon.reload", "ok", NULL, NULL);
	dk_log_notice("configuration and key rings reloaded from %s", lp->conf_path);
}

static void *
bg_main(void *arg)
{
	struct dkd_loop *lp = arg;

	do {
		while (atomic_exchange(&bg_pending, 0))
			bg_reload(lp);
		atomic_store(&bg_busy, 0);
		/* A request that came after the last check but before busy was cleared. */
	} while (atomic_load(&bg_pending) && !atomic_exchange(&bg_busy, 1));
	return NULL;
}

static void
bg_start_thread(void *(*fn)(void *), void *arg, atomic_int *busy)
{
	pthread_t th;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, fn, arg) != 0) {
		dk_log_err("cannot start a background thread; retried later");
		atomic_store(busy, 0);
	}
	pthread_attr_destroy(&attr);
}

/* Ask for a reload of the config and the rings, on a helper thread. */
static void
bg_reload_start(struct dkd_loop *lp)
{
	atomic_store(&bg_pending, 1);
	if (!atomic_exchange(&bg_busy, 1))
		bg_start_thread(bg_main, lp, &bg_busy);
}

struct health_args {
	struct dkd_loop *lp;
	struct dkd_token *t;
};

/*
 * 0 when a down token works again: a session, its keys, and a signature
 * with one of its signing keys (a token that lists keys but hangs in
 * C_Sign is still down).
 */
static int
health_probe(struct dkd_token *t)
{
	struct hsm_session *s = NULL;
	struct hsm_key *keys = NULL;
	uint8_t digest[32], sig[HSM_SIG_MAX];
	size_t i, n = 0, sig_len = sizeof(sig);
	int r;

	memset(digest, 0x5a, sizeof(digest));
	if ((r = hsm_session_open(t->token, &s)) != 0 || (r = hsm_session_ping(s)) != 0 ||
	    (r = hsm_key_list(s, &keys, &n)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (strcmp(keys[i].meta.state, "active") == 0 ||
		    strcmp(keys[i].meta.state, "standby") == 0) {
			r = hsm_sign_digest(s, &keys[i], digest, sig, &sig_len);
			break;
		}
	}
out:
	free(keys);
	if (s != NULL)
		hsm_session_close(s);
	return r;
}

/*
 * The probe failed: where the token's module is its own (p11-kit-client.so,
 * which reaches its server only in C_Initialize), initialize it again and
 * log in.  Not while a rotation step may hold a session on it (a step
 * opens sessions only on tokens that are up); workers' sessions are of an
 * older generation and are reopened, never used.
 */
static int
health_reconnect(struct dkd_token *t)
{
	struct dkd_keyset *ks;
	const struct dk_conf_token *ct;
	int r;

	if (dkd_rotate_uses(t->index) || (ks = dkd_keyset_acquire()) == NULL)
		return DK_ERR_BUSY;
	ct = dk_conf_token(ks->conf, t->name);
	/* Before and after: a session of the old initialization is never used. */
	atomic_fetch_add(&t->generation, 1);
	r = ct != NULL ? hsm_token_reconnect(t->token, ct->pin_file) : DK_ERR_NOT_FOUND;
	dkd_keyset_release(ks);
	atomic_fetch_add(&t->generation, 1);
	if (r == 0)
		dk_log_info(
		    "token \"%s\" (%s): module initialized again and logged in", t->name, t->label);
	else
		dk_log_debug("token \"%s\": no new connection: %s", t->name, dk_err_detail());
	return r;
}

/*
 * A token down since start may never have been found, or never logged in:
 * do that first (once per check; a refused PIN is never tried again).
 */
static int
health_reopen(struct dkd_token *t)
{
	struct dkd_keyset *ks;
	const struct dk_conf_token *ct;
	int r;

	if ((ks = dkd_keyset_acquire()) == NULL)
		return DK_ERR_BUSY;
	ct = dk_conf_token(ks->conf, t->name);
	r = ct != NULL ? dkd_token_reopen(t, ct) : DK_ERR_NOT_FOUND;
	dkd_keyset_release(ks);
	if (r == 0)
		return 0;
	dkd_token_note(t, r, dk_err_detail());
	/* E.g. a PIN refused, or a PIN file this process cannot read now (after the privilege
	 * drop). */
	if (dkd_token_err_needs_operator(r) && !atomic_exchange(&t->op_told, 1))
		dk_log_err("token \"%s\" stays down: %s", t->name, dk_err_detail());
	else
		dk_log_debug("token \"%s\": still not usable: %s", t->name, dk_err_detail());
	return r;
}

/* One thread per down token, so that a hung token cannot stop the others' checks. */
static void *
health_main(void *arg)
{
	struct health_args *a = arg;

	/*
	 * Where the module itself lost its token (p11-kit-client.so and its
	 * server), the login of reopen fails too: initializing again is the cure.
	 */
	if ((health_reopen(a->t) == 0 && health_probe(a->t) == 0) ||
	    (a->t->token != NULL && health_reconnect(a->t) == 0 && health_probe(a->t) == 0)) {
		dkd_token_up(a->t);
		/* Handles may have changed while the token was away: list the keys again. */
		bg_reload_start(a->lp);
	}
	atomic_store(&a->t->checking, 0);
	free(a);
	return NULL;
}

static void
health_start(struct dkd_loop *lp, struct dkd_token *t)
{
	struct health_args *a;

	if (atomic_exchange(&t->checking, 1))
		return; /* the last check has not come back (a hung token) */
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		atomic_store(&t->checking, 0);
		return;
	}
	a->lp = lp;
	a->t = t;
	bg_start_thread(health_main, a, &t->checking);
}

static void
server_health_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dkd_loop *lp = arg;
	size_t i;

	(void)fd;
	(void)what;
	dkd_notify_reap();
	for (i = 0; i < lp->tokens->n; i++) {
		if (!atomic_load(&lp->tokens->v[i].up))
			health_start(lp, &lp->tokens->v[i]);
	}
}

/* The rotation timer: dkd_rotate starts a step every step_interval on its own thread. */
static void
server_reload(void *arg)
{
	bg_reload_start(arg);
}

static void
server_rotate_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dkd_loop *lp = arg;

	(void)fd;
	(void)what;
	if (!lp->stopping)
		dkd_rotate_tick(lp->tokens, server_reload, lp);
}

static void
server_hup_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dk_log_notice("SIGHUP: reloading the configuration and key rings");
	dkd_audit_reopen();
	bg_reload_start(arg);
}

static void
server_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dkd_loop *lp = arg;
	static time_t deadline;

	(void)fd;
	(void)what;
	if (deadline == 0)
		deadline = time(NULL) + SHUTDOWN_GRACE_SEC;
	if (dkd_conn_all_idle(lp) || time(NULL) >= deadline)
		event_base_loopbreak(lp->base);
}

/* The timer that waits for queued answers after SIGTERM (loop thread only). */
static struct event *drain_ev;

static void
server_term_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dkd_loop *lp = arg;
	struct timeval tv = {0, 20000};

	(void)fd;
	(void)what;
	if (lp->stopping)
		return;
	dk_log_notice("stopping: no new connections; answering the %zu queued requests",
	    dkd_pool_depth(lp->pool));
	lp->stopping = 1;
	evconnlistener_disable(lp->listener);
	dkd_conn_stop_reading(lp);
	drain_ev = event_new(lp->base, -1, EV_PERSIST, server_drain_cb, lp);
	if (drain_ev == NULL || event_add(drain_ev, &tv) != 0)
		event_base_loopbreak(lp->base);
}

/*
 * A thread is still inside a token call at exit: finalizing the module under
 * it would crash it (SoftHSM frees what the call uses), so the modules are
 * left alone and dkimkeepd ends with _exit() (see struct dkd_tokens).
 */
static void
server_abandon_tokens(struct dkd_tokens *tokens, const char *who)
{
	atomic_store(&tokens->abandoned, 1);
	dk_log_warn("%s is still inside a token call at exit: the token modules are left as they "
	            "are (not finalized)",
	    who);
}

/* Wait (bounded) for helper threads; a check stuck in a hung token is left behind. */
static void
server_wait_background(struct dkd_loop *lp)
{
	size_t i;
	int n, busy;

	for (n = 0; n < 500; n++) {
		busy = atomic_load(&bg_busy) | dkd_rotate_busy();
		for (i = 0; i < lp->tokens->n; i++)
			busy |= atomic_load(&lp->tokens->v[i].checking);
		if (!busy)
			return;
		usleep(10000);
	}
	server_abandon_tokens(lp->tokens, "a rotation step, health check or reload");
}

static int
server_should_spin(struct dkd_loop *lp)
{
	uint64_t now;

	/* One request at a time, and a worker idle: nobody else wants the core. */
	if (lp->stopping || lp->jobs_out > 1 ||
	    dkd_pool_busy(lp->pool) >= dkd_pool_workers(lp->pool))
		return 0;
	now = dk_now_us();
	return (lp->jobs_out == 1 && now - lp->last_out_us < LOOP_SPIN_OUT_US) ||
	       (lp->jobs_out == 0 && now - lp->last_answer_us < LOOP_SPIN_US);
}

/* event_base_dispatch(), polling instead of sleeping while server_should_spin(). */
static void
server_loop(struct dkd_loop *lp)
{
	int r;

	do {
		if (server_should_spin(lp)) {
			/* Polite polling: a thread woken on this core (the caller) runs at once. */
			sched_yield();
			r = event_base_loop(lp->base, EVLOOP_NONBLOCK);
		} else {
			r = event_base_loop(lp->base, EVLOOP_ONCE);
		}
	} while (r == 0 && !event_base_got_break(lp->base) && !event_base_got_exit(lp->base));
}

/* The audit writer between the pool and the outbox, when the config has an audit_log. */
static int
server_audit_start(const struct dkd_server_params *p, struct dkd_loop *lp, struct dkd_audit **out)
{
	struct dkd_keyset *ks = dkd_keyset_acquire();
	int r;

	r = ks != NULL ? dkd_audit_start_conf(ks->conf, p->conf_path, p->tokens, lp->outbox, out)
	               : 0;
	dkd_keyset_release(ks);
	return r;
}

int
dkd_server_run(const struct dkd_server_params *p)
{
	struct dkd_loop lp;
	struct dkd_audit *audit = NULL;
	struct event *ev_term = NULL, *ev_int = NULL, *ev_hup = NULL, *ev_health = NULL;
	struct event *ev_rotate = NULL;
	struct timeval rotate_tv = {1, 0};
	struct timeval health_tv = {p->health_interval > 0 ? p->health_interval : 5, 0};
	int r;

	memset(&lp, 0, sizeof(lp));
	lp.tokens = p->tokens;
	lp.conf_path = p->conf_path;
	lp.max_connections = p->max_connections;
	lp.queue_max = p->queue;
	lp.started = (int64_t)time(NULL);
	signal(SIGPIPE, SIG_IGN);
	lp.done_fd = -1;
	if ((lp.base = event_base_new()) == NULL) {
		r = dk_err_set(DK_ERR_INTERNAL, "cannot create the event loop");
		goto out;
	}
	if ((lp.done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		r = dk_err_set(DK_ERR_INTERNAL, "cannot create an eventfd: %s", strerror(errno));
		goto out;
	}
	lp.done_ev = event_new(lp.base, lp.done_fd, EV_READ | EV_PERSIST, server_done_cb, &lp);
	if (lp.done_ev == NULL || event_add(lp.done_ev, NULL) != 0) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	if ((r = dkd_outbox_new(server_wake, &lp, &lp.outbox)) != 0 ||
	    (r = server_audit_start(p, &lp, &audit)) != 0 ||
	    (r = dkd_pool_start(p->workers, p->queue, p->sign_timeout_ms, p->tokens,
	         audit != NULL ? dkd_audit_job : server_finish,
	         audit != NULL ? (void *)audit : (void *)&lp, &lp.pool)) != 0)
		goto out;
	lp.listener = evconnlistener_new(lp.base, server_accept_cb, &lp,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, p->listen_fd);
	if (lp.listener != NULL) /* EMFILE and the like: pause accepting, never a busy loop */
		dkd_listen_guard(lp.listener, &lp.stopping);
	ev_term = evsignal_new(lp.base, SIGTERM, server_term_cb, &lp);
	ev_int = evsignal_new(lp.base, SIGINT, server_term_cb, &lp);
	ev_hup = evsignal_new(lp.base, SIGHUP, server_hup_cb, &lp);
	ev_health = event_new(lp.base, -1, EV_PERSIST, server_health_cb, &lp);
	ev_rotate = event_new(lp.base, -1, EV_PERSIST, server_rotate_cb, &lp);
	if (lp.listener == NULL || ev_term == NULL || ev_int == NULL || ev_hup == NULL ||
	    ev_health == NULL || event_add(ev_term, NULL) != 0 || event_add(ev_int, NULL) != 0 ||
	    event_add(ev_hup, NULL) != 0 || event_add(ev_health, &health_tv) != 0 ||
	    ev_rotate == NULL || event_add(ev_rotate, &rotate_tv) != 0) {
		r = dk_err_set(DK_ERR_INTERNAL, "cannot set up the event loop");
		goto out;
	}
	dk_log_notice("dkimkeepd %s ready on %s with %d workers", DKIMKEEP_VERSION, p->socket_path,
	    p->workers);
	if (p->ready != NULL)
		p->ready(p->ready_arg);
	server_loop(&lp);
	r = 0;
out:
	if (lp.pool != NULL) {
		/* Joins the workers: nothing more is finished after. */
		if (dkd_pool_stop(lp.pool))
			server_abandon_tokens(p->tokens, "a worker stuck in a hung token");
		lp.pool = NULL;
	}
	dkd_audit_stop(audit); /* writes the last records, hands their jobs to the outbox */
	/* Jobs finished while stopping go back to their connections, which are closed next. */
	if (lp.outbox != NULL)
		dkd_conn_deliver(&lp, dkd_outbox_take(lp.outbox));
	dkd_conn_close_all(&lp);
	dkd_outbox_free(lp.outbox);
	/* A reload or health check still running uses the tokens the caller closes next. */
	server_wait_background(&lp);
	if (lp.listener != NULL)
		evconnlistener_free(lp.listener);
	else if (p->listen_fd >= 0)
		close(p->listen_fd);
	if (p->socket_path != NULL)
		unlink(p->socket_path);
	if (ev_term != NULL)
		event_free(ev_term);
	if (ev_int != NULL)
		event_free(ev_int);
	if (ev_hup != NULL)
		event_free(ev_hup);
	if (ev_health != NULL)
		event_free(ev_health);
	if (ev_rotate != NULL)
		event_free(ev_rotate);
	if (lp.done_ev != NULL)
		event_free(lp.done_ev);
	if (lp.done_fd >= 0)
		close(lp.done_fd);
	if (drain_ev != NULL)
		event_free(drain_ev); /* freed before its base (found by the sanitizer build) */
	drain_ev = NULL;
	if (lp.base != NULL)
		event_base_free(lp.base);
	dk_log_notice("dkimkeepd stopped");
	return r;
}
