/*
 * dkd_conn.c - one caller's connection: frames in, requests checked and
 * queued, answers out.  Runs on the loop thread only.
 */
#include <sys/socket.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/dk_err.h"
#include "common/dk_frame.h"
#include "common/dk_log.h"
#include "common/dk_time.h"
#include "daemon/dkd_audit.h"
#include "daemon/dkd_keyset.h"
#include "daemon/dkd_loop.h"
#include "daemon/dkd_req.h"

#define CONN_INFLIGHT_MAX 256 /* requests queued per connection before reading pauses */
#define CONN_OUT_HIGH     (4 * 1024 * 1024) /* unread answers before reading pauses */
#define CONN_TIMEOUT_SEC  30   /* a stalled frame or unread answers are dropped after */
#define CONN_FRAME_STACK  8192 /* answers up to this size are framed on the stack */

struct dkd_conn {
	struct dkd_loop *lp;
	struct bufferevent *bev;
	struct dkd_conn *prev, *next;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	unsigned inflight;
	int refs; /* 1 while open, plus one per job in flight */
	int closed;
	int throttled;
	const char *audit_domain; /* the requested domain while conn_sign runs (audit record) */
	struct dkd_job *pend, *pend_tail; /* answers of one dkd_conn_deliver() batch */
	struct dkd_conn *touched;         /* next connection with answers in that batch */
};

/*
 * The answers of one connection in one batch from the workers, framed
 * back to back and sent with one send(): fewer system calls, and fewer
 * wake-ups of a caller with several requests in flight.  Loop thread only.
 */
static struct {
	struct dkd_conn *c; /* gathering for c, or NULL */
	size_t len;
	uint8_t buf[65536];
} gather;

struct dkd_rate {
	struct dkd_rate *next;
	char *name;
	double tokens;
	uint64_t last_us;
};

static void conn_read_cb(struct bufferevent *bev, void *arg);

/* Not inlined: GCC -O3 cannot follow the count and warns of a use after free. */
static __attribute__((noinline)) void
conn_unref(struct dkd_conn *c)
{
	if (--c->refs == 0)
		free(c);
}

static void
conn_close(struct dkd_conn *c)
{
	struct dkd_loop *lp = c->lp;

	if (c->closed)
		return;
	c->closed = 1;
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		lp->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	lp->connections--;
	conn_unref(c);
}

static void
conn_update_throttle(struct dkd_conn *c)
{
	size_t out = evbuffer_get_length(bufferevent_get_output(c->bev));
	int want = c->inflight >= CONN_INFLIGHT_MAX || out >= CONN_OUT_HIGH;

	if (c->lp->stopping)
		want = 1;
	if (want && !c->throttled) {
		bufferevent_disable(c->bev, EV_READ);
		c->throttled = 1;
	} else if (!want && c->throttled) {
		c->throttled = 0;
		bufferevent_enable(c->bev, EV_READ);
		/* Frames already buffered get no new read event. */
		conn_read_cb(c->bev, c);
	}
}

static Dkimkeep__V1__Status
conn_status_of(int err)
{
	switch (err) {
	case 0:
		return DKIMKEEP__V1__STATUS__OK;
	case DK_ERR_MSG_EMPTY:
	case DK_ERR_MSG_NOT_MESSAGE:
	case DK_ERR_MSG_NO_FROM:
	case DK_ERR_MSG_MULTI_FROM:
	case DK_ERR_MSG_HEADER_TOO_LARGE:
	case DK_ERR_MSG_TOO_MANY_HEADERS:
	case DK_ERR_MSG_BAD_HEADER:
		return DKIMKEEP__V1__STATUS__BAD_MESSAGE;
	case DK_ERR_INVALID:
	case DK_ERR_TOO_LARGE:
	case DK_ERR_PARSE:
	case DK_ERR_PROTO:
		return DKIMKEEP__V1__STATUS__BAD_REQUEST;
	case DK_ERR_NOT_AUTHORIZED:
		return DKIMKEEP__V1__STATUS__NOT_AUTHORIZED;
	case DK_ERR_UNKNOWN_DOMAIN:
		return DKIMKEEP__V1__STATUS__UNKNOWN_DOMAIN;
	case DK_ERR_NO_KEY:
	case DK_ERR_KEY_NOT_FOUND:
		return DKIMKEEP__V1__STATUS__NO_KEY;
	case DK_ERR_BUSY:
		return DKIMKEEP__V1__STATUS__BUSY;
	case DK_ERR_RATE_LIMITED:
		return DKIMKEEP__V1__STATUS__RATE_LIMITED;
	case DK_ERR_UNAVAILABLE:
	case DK_ERR_TOKEN_FAILING:
	case DK_ERR_TIMEOUT:
		return DKIMKEEP__V1__STATUS__TOKEN_UNAVAILABLE;
	case DK_ERR_AUDIT:
		return DKIMKEEP__V1__STATUS__AUDIT_UNAVAILABLE;
	default:
		return DKIMKEEP__V1__STATUS__INTERNAL;
	}
}

static void
conn_count(struct dkd_loop *lp, Dkimkeep__V1__Status st)
{
	static const enum dkd_counter map[] = {
	    [DKIMKEEP__V1__STATUS__OK] = DKD_CNT_OK,
	    [DKIMKEEP__V1__STATUS__BAD_REQUEST] = DKD_CNT_BAD_REQUEST,
	    [DKIMKEEP__V1__STATUS__BAD_MESSAGE] = DKD_CNT_BAD_MESSAGE,
	    [DKIMKEEP__V1__STATUS__NOT_AUTHORIZED] = DKD_CNT_NOT_AUTHORIZED,
	    [DKIMKEEP__V1__STATUS__UNKNOWN_DOMAIN] = DKD_CNT_UNKNOWN_DOMAIN,
	    [DKIMKEEP__V1__STATUS__NO_KEY] = DKD_CNT_NO_KEY,
	    [DKIMKEEP__V1__STATUS__BUSY] = DKD_CNT_BUSY,
	    [DKIMKEEP__V1__STATUS__RATE_LIMITED] = DKD_CNT_RATE_LIMITED,
	    [DKIMKEEP__V1__STATUS__TOKEN_UNAVAILABLE] = DKD_CNT_TOKEN_UNAVAILABLE,
	    [DKIMKEEP__V1__STATUS__AUDIT_UNAVAILABLE] = DKD_CNT_AUDIT_UNAVAILABLE,
	    [DKIMKEEP__V1__STATUS__INTERNAL] = DKD_CNT_INTERNAL,
	};

	if ((size_t)st < sizeof(map) / sizeof(map[0]) && st != 0)
		lp->counters[map[st]]++;
}

/*
 * Send n bytes now when nothing is queued before them; queue only what does
 * not fit on the bufferevent.  Queuing everything would cost an EPOLLOUT
 * round per answer: two epoll_ctl and one more loop turn
 * (docs/performance.md).
 */
static void
conn_write(struct dkd_conn *c, const uint8_t *p, size_t n)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t done = 0;
	ssize_t w;

	if (evbuffer_get_length(out) == 0) {
		do {
			w = send(bufferevent_getfd(c->bev), p + done, n - done,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
		} while ((w > 0 && (done += (size_t)w) < n) || (w < 0 && errno == EINTR));
	}
	/* The rest (a full socket buffer, or an error the bufferevent reports) is queued. */
	if (done < n && evbuffer_add(out, p + done, n - done) != 0) {
		dk_log_err("out of memory answering pid %d; connection closed", (int)c->pid);
		conn_close(c);
	}
}

/* Frame one response and send it (or gather it with the batch's others). */
static void
conn_send(struct dkd_conn *c, Dkimkeep__V1__Response *resp)
{
	struct evbuffer *out;
	struct evbuffer_iovec v;
	uint8_t frame[CONN_FRAME_STACK];
	size_t n;

	if (c->closed)
		return;
	n = dkimkeep__v1__response__get_packed_size(resp);
	if (n > DK_FRAME_MAX) {
		dk_log_err("response %llu is %zu bytes, over the frame limit; dropped",
		    (unsigned long long)resp->id, n);
		return;
	}
	conn_count(c->lp, resp->status);
	if (gather.c == c && gather.len + n + DK_FRAME_HEADER_LEN > sizeof(gather.buf)) {
		conn_write(c, gather.buf, gather.len);
		gather.len = 0;
		if (c->closed)
			return;
	}
	if (gather.c == c && n + DK_FRAME_HEADER_LEN <= sizeof(gather.buf)) {
		dk_frame_put_len(gather.buf + gather.len, (uint32_t)n);
		dkimkeep__v1__response__pack(resp, gather.buf + gather.len + DK_FRAME_HEADER_LEN);
		gather.len += n + DK_FRAME_HEADER_LEN;
		return;
	}
	if (n + DK_FRAME_HEADER_LEN <= sizeof(frame)) {
		dk_frame_put_len(frame, (uint32_t)n);
		dkimkeep__v1__response__pack(resp, frame + DK_FRAME_HEADER_LEN);
		conn_write(c, frame, n + DK_FRAME_HEADER_LEN);
		return;
	}
	out = bufferevent_get_output(c->bev);
	if (evbuffer_reserve_space(out, n + DK_FRAME_HEADER_LEN, &v, 1) < 1) {
		dk_log_err("out of memory answering pid %d; connection closed", (int)c->pid);
		conn_close(c);
		return;
	}
	dk_frame_put_len(v.iov_base, (uint32_t)n);
	dkimkeep__v1__response__pack(resp, (uint8_t *)v.iov_base + DK_FRAME_HEADER_LEN);
	v.iov_len = n + DK_FRAME_HEADER_LEN;
	evbuffer_commit_space(out, &v, 1);
}

static void conn_error(struct dkd_conn *c, uint64_t id, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
conn_error(struct dkd_conn *c, uint64_t id, int err, const char *fmt, ...)
{
	Dkimkeep__V1__Response resp;
	char text[512];
	va_list ap;

	dkimkeep__v1__response__init(&resp);
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	resp.id = id;
	resp.status = conn_status_of(err);
	resp.error = text;
	conn_send(c, &resp);
	dkd_audit_refusal(c->pid, c->uid, c->gid, id, err, c->audit_domain);
}

/* Token bucket per [client] name; 1 when the request may go on. */
static int
conn_rate_ok(struct dkd_loop *lp, const struct dk_conf_client *cl)
{
	struct dkd_rate *r;
	uint64_t now = dk_now_us();

	if (cl->rate <= 0)
		return 1;
	for (r = lp->rates; r != NULL; r = r->next) {
		if (strcmp(r->name, cl->name) == 0)
			break;
	}
	if (r == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL || (r->name = strdup(cl->name)) == NULL) {
			free(r);
			return 1; /* no memory for the limiter is no reason to refuse mail */
		}
		r->tokens = cl->rate;
		r->last_us = now;
		r->next = lp->rates;
		lp->rates = r;
	}
	r->tokens += (double)(now - r->last_us) / 1e6 * cl->rate;
	r->last_us = now;
	if (r->tokens > cl->rate)
		r->tokens = cl->rate; /* burst of one second's worth */
	if (r->tokens < 1.0)
		return 0;
	r->tokens -= 1.0;
	return 1;
}

static void
conn_sign(struct dkd_conn *c, uint64_t id, const Dkimkeep__V1__SignRequest *sr)
{
	struct dkd_loop *lp = c->lp;
	struct dkd_job *job = NULL;
	struct dkd_keyset *ks;
	const struct dk_conf_client *cl;
	char text[256];
	int r;

	c->audit_domain = sr->domain;
	if ((ks = dkd_keyset_acquire()) == NULL) {
		conn_error(c, id, DK_ERR_UNAVAILABLE, "the daemon has no keys loaded yet; retry");
		c->audit_domain = NULL;
		return;
	}
	if ((cl = dk_conf_client_for(ks->conf, c->uid, c->gid)) == NULL) {
		dk_log_notice("refused pid %d uid %u gid %u: no [client] section matches",
		    (int)c->pid, (unsigned)c->uid, (unsigned)c->gid);
		conn_error(c, id, DK_ERR_NOT_AUTHORIZED,
		    "uid %u is no [client] of %s; ask the administrator to add a [client] "
		    "section with uid = %u",
		    (unsigned)c->uid, ks->conf->path, (unsigned)c->uid);
		goto out;
	}
	if (!conn_rate_ok(lp, cl)) {
		conn_error(c, id, DK_ERR_RATE_LIMITED,
		    "client \"%s\" is over its rate limit; retry later", cl->name);
		goto out;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		conn_error(c, id, DK_ERR_NOMEM, "out of memory; retry");
		goto out;
	}
	text[0] = '\0';
	if ((r = dkd_req_fill(sr, job, text, sizeof(text))) != 0) {
		conn_error(c, id, r, "bad request: %s", text[0] ? text : dk_strerror(r));
		goto out;
	}
	if (strlen(sr->message_id) > DKD_MESSAGE_ID_MAX) {
		conn_error(c, id, DK_ERR_INVALID, "bad request: message_id is over %d bytes",
		    DKD_MESSAGE_ID_MAX);
		goto out;
	}
	memcpy(job->message_id, sr->message_id, strlen(sr->message_id) + 1);
	job->req_id = id;
	job->conn = c;
	job->client = cl;
	job->pid = c->pid;
	job->uid = c->uid;
	job->gid = c->gid;
	job->ks = ks;
	if ((r = dkd_pool_submit(lp->pool, job)) != 0) {
		job->ks = NULL;
		conn_error(c, id, DK_ERR_BUSY,
		    "the daemon is busy (%d requests queued); retry shortly", lp->queue_max);
		goto out;
	}
	ks = NULL;
	job = NULL;
	c->refs++;
	c->inflight++;
	lp->jobs_out++;
	lp->last_out_us = dk_now_us();
	conn_update_throttle(c);
out:
	c->audit_domain = NULL;
	dkd_job_free(job);
	dkd_keyset_release(ks);
}

static void
conn_status(struct dkd_conn *c, uint64_t id)
{
	Dkimkeep__V1__Response resp;

	dkimkeep__v1__response__init(&resp);
	resp.id = id;
	if (dkd_status_fill(c->lp, &resp) != 0) {
		conn_error(c, id, DK_ERR_NOMEM, "out of memory; retry");
		return;
	}
	resp.status = DKIMKEEP__V1__STATUS__OK;
	conn_send(c, &resp);
	dkd_status_clear(&resp);
}

static void
conn_request(struct dkd_conn *c, const uint8_t *data, size_t len)
{
	Dkimkeep__V1__Request *req;

	req = dkimkeep__v1__request__unpack(NULL, len, data);
	if (req == NULL) {
		conn_error(c, 0, DK_ERR_PROTO,
		    "the frame is not a dkimkeep.v1.Request; check the client's protocol version");
		return;
	}
	switch (req->kind_case) {
	case DKIMKEEP__V1__REQUEST__KIND_SIGN:
		conn_sign(c, req->id, req->sign);
		break;
	case DKIMKEEP__V1__REQUEST__KIND_STATUS:
		conn_status(c, req->id);
		break;
	default:
		conn_error(c, req->id, DK_ERR_PROTO, "request has neither sign nor status");
		break;
	}
	dkimkeep__v1__request__free_unpacked(req, NULL);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct dkd_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t hdr[DK_FRAME_HEADER_LEN];
	uint32_t flen;
	uint8_t *data;

	c->refs++; /* c may be closed below; it is freed only by the last unref */
	while (!c->closed && !c->throttled) {
		if (evbuffer_get_length(in) < DK_FRAME_HEADER_LEN)
			break;
		evbuffer_copyout(in, hdr, DK_FRAME_HEADER_LEN);
		flen = dk_frame_get_len(hdr);
		if (flen > DK_FRAME_MAX) {
			dk_log_warn("pid %d uid %u sent a frame of %u bytes, over the 1 MiB limit; "
			            "connection closed",
			    (int)c->pid, (unsigned)c->uid, flen);
			conn_close(c);
			break;
		}
		if (evbuffer_get_length(in) < DK_FRAME_HEADER_LEN + (size_t)flen)
			break;
		evbuffer_drain(in, DK_FRAME_HEADER_LEN);
		data = evbuffer_pullup(in, flen);
		if (data == NULL && flen > 0) {
			conn_close(c);
			break;
		}
		conn_request(c, data, flen);
		if (!c->closed)
			evbuffer_drain(in, flen);
	}
	conn_unref(c);
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct dkd_conn *c = arg;

	(void)bev;
	conn_update_throttle(c);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct dkd_conn *c = arg;

	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    evbuffer_get_length(bufferevent_get_input(bev)) == 0) {
		/* Idle between requests is fine: only a stalled frame is dropped. */
		bufferevent_enable(bev, EV_READ);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		dk_log_warn("pid %d uid %u %s for %d s; connection dropped", (int)c->pid,
		    (unsigned)c->uid,
		    (what & BEV_EVENT_READING) ? "stalled in the middle of a frame"
		                               : "did not read its answers",
		    CONN_TIMEOUT_SEC);
	conn_close(c);
}

void
dkd_conn_accept(struct dkd_loop *lp, int fd)
{
	struct timeval tv = {CONN_TIMEOUT_SEC, 0};
	struct dkd_conn *c;
	struct ucred cred;
	socklen_t cl = sizeof(cred);

	if (lp->stopping || lp->connections >= lp->max_connections) {
		if (!lp->stopping)
			dk_log_warn("max_connections (%d) reached; a new connection is refused; "
			            "raise max_connections in [daemon] if this is normal load",
			    lp->max_connections);
		close(fd);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
		dk_log_err("SO_PEERCRED failed; connection refused");
		close(fd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->lp = lp;
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->refs = 1;
	c->bev = bufferevent_socket_new(lp->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		free(c);
		return;
	}
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, CONN_OUT_HIGH / 2, 0);
	/* Input never holds more than two whole frames: reading pauses beyond that. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, 2 * (DK_FRAME_MAX + DK_FRAME_HEADER_LEN));
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = lp->conns;
	if (lp->conns != NULL)
		lp->conns->prev = c;
	lp->conns = c;
	lp->connections++;
}

static void
conn_answer(struct dkd_conn *c, struct dkd_job *job)
{
	Dkimkeep__V1__Response resp;
	Dkimkeep__V1__SignResponse sr;
	Dkimkeep__V1__Signature sigs[DKD_MAX_ALGS], *sigp[DKD_MAX_ALGS];
	size_t i;

	dkimkeep__v1__response__init(&resp);
	dkimkeep__v1__sign_response__init(&sr);
	resp.id = job->req_id;
	resp.status = conn_status_of(job->result);
	if (job->result != 0) {
		resp.error = job->error;
		conn_send(c, &resp);
		return;
	}
	for (i = 0; i < job->nsigs; i++) {
		dkimkeep__v1__signature__init(&sigs[i]);
		sigs[i].header = job->sigs[i].header;
		sigs[i].algorithm = job->sigs[i].alg == DKIM_ALG_RSA_SHA256
		                        ? DKIMKEEP__V1__ALGORITHM__RSA_SHA256
		                        : DKIMKEEP__V1__ALGORITHM__ED25519_SHA256;
		sigs[i].selector = job->sigs[i].selector;
		sigs[i].slot = job->sigs[i].slot;
		sigs[i].key_id = job->sigs[i].key_id;
		sigs[i].token = job->sigs[i].token;
		sigp[i] = &sigs[i];
	}
	sr.n_signatures = job->nsigs;
	sr.signatures = sigp;
	sr.domain = job->signed_domain;
	resp.kind_case = DKIMKEEP__V1__RESPONSE__KIND_SIGN;
	resp.sign = &sr;
	conn_send(c, &resp);
}

void
dkd_conn_deliver(struct dkd_loop *lp, struct dkd_job *list)
{
	struct dkd_job *job, *next, *jobs;
	struct dkd_conn *c, *cn, *touched = NULL;

	if (list != NULL)
		lp->last_answer_us = dk_now_us();
	/* Sort the batch by connection (order kept within one), then answer each at once. */
	for (job = list; job != NULL; job = next) {
		next = job->next;
		job->next = NULL;
		c = job->conn;
		c->inflight--;
		lp->jobs_out--;
		if (c->pend == NULL) {
			c->pend = job;
			c->touched = touched;
			touched = c;
		} else {
			c->pend_tail->next = job;
		}
		c->pend_tail = job;
	}
	for (c = touched; c != NULL; c = cn) {
		cn = c->touched;
		jobs = c->pend;
		c->pend = c->pend_tail = NULL;
		c->touched = NULL;
		if (!c->closed) {
			gather.c = c;
			gather.len = 0;
			for (job = jobs; job != NULL && !c->closed; job = job->next)
				conn_answer(c, job);
			if (!c->closed && gather.len > 0)
				conn_write(c, gather.buf, gather.len);
			gather.c = NULL;
			gather.len = 0;
			if (!c->closed)
				conn_update_throttle(c);
		}
		for (job = jobs; job != NULL; job = next) {
			next = job->next;
			dkd_job_free(job);
			conn_unref(c); /* the last may free c: nothing touches it after */
		}
	}
}

int
dkd_conn_all_idle(struct dkd_loop *lp)
{
	struct dkd_conn *c;

	for (c = lp->conns; c != NULL; c = c->next) {
		if (c->inflight > 0 || evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
			return 0;
	}
	return 1;
}

void
dkd_conn_stop_reading(struct dkd_loop *lp)
{
	struct dkd_conn *c;

	for (c = lp->conns; c != NULL; c = c->next) {
		bufferevent_disable(c->bev, EV_READ);
		c->throttled = 1;
	}
}

void
dkd_conn_close_all(struct dkd_loop *lp)
{
	struct dkd_rate *r, *rn;

	while (lp->conns != NULL)
		conn_close(lp->conns);
	for (r = lp->rates; r != NULL; r = rn) {
		rn = r->next;
		free(r->name);
		free(r);
	}
	lp->rates = NULL;
}
