/*
 * dkc_client.c - libdkimkeep: connecting, framing, requests and answers.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/dkimkeep_client.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "common/dk_frame.h"
#include "proto/dkimkeep.pb-c.h"

struct dkc_conn {
	int fd;
	int timeout_ms;
	uint64_t next_id;
	struct dk_buf in;  /* bytes read and not yet a whole frame */
	struct dk_buf out; /* frames queued and not sent yet (kept: no allocation per request) */
	int drained;       /* the last recv() left nothing in the socket */
	int rcvtimeo;      /* SO_RCVTIMEO is timeout_ms: a blocking recv() waits, no poll() */
};

int
dkc_connect(const char *socket_path, int timeout_ms, struct dkc_conn **out)
{
	struct sockaddr_un sun;
	struct timeval tv;
	struct dkc_conn *c = NULL;
	int fd = -1, r;

	*out = NULL;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(socket_path) >= sizeof(sun.sun_path)) {
		r = dk_err_set(DK_ERR_INVALID, "socket path %s is too long", socket_path);
		goto out;
	}
	memcpy(sun.sun_path, socket_path, strlen(socket_path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		r = dk_err_set(DK_ERR_UNAVAILABLE,
		    "cannot connect to dkimkeepd at %s: %s; is the daemon running "
		    "(systemctl status dkimkeepd) and may this user open the socket?",
		    socket_path, strerror(errno));
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	c->fd = fd;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
	c->next_id = 1;
	c->drained = 1;
	tv.tv_sec = c->timeout_ms / 1000;
	tv.tv_usec = (suseconds_t)(c->timeout_ms % 1000) * 1000;
	c->rcvtimeo = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0;
	dk_buf_init(&c->in, DK_FRAME_MAX + DK_FRAME_HEADER_LEN + 65536);
	dk_buf_init(&c->out, DKC_QUEUE_MAX);
	fd = -1;
	*out = c;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

void
dkc_close(struct dkc_conn *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	dk_buf_free(&c->in);
	dk_buf_free(&c->out);
	free(c);
}

static int
conn_timeout(const struct dkc_conn *c)
{
	return dk_err_set(DK_ERR_TIMEOUT,
	    "dkimkeepd did not answer within %d ms; it may be overloaded or its token hung",
	    c->timeout_ms);
}

static int
conn_wait(struct dkc_conn *c, short events)
{
	struct pollfd p = {c->fd, events, 0};
	int n;

	do {
		n = poll(&p, 1, c->timeout_ms);
	} while (n < 0 && errno == EINTR);
	if (n == 0)
		return conn_timeout(c);
	return n < 0 ? DK_ERR_IO : 0;
}

static int
conn_write_all(struct dkc_conn *c, const uint8_t *p, size_t n)
{
	ssize_t w;
	int r;

	while (n > 0) {
		w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = conn_wait(c, POLLOUT)) != 0)
				return r;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return dk_err_set(DK_ERR_UNAVAILABLE,
			    "the connection to dkimkeepd broke: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Frame req behind the frames already queued; dkc_flush() sends them. */
static int
conn_queue_request(struct dkc_conn *c, Dkimkeep__V1__Request *req)
{
	size_t n = dkimkeep__v1__request__get_packed_size(req);
	uint8_t *p;
	int r;

	if (n > DK_FRAME_MAX)
		return dk_err_set(DK_ERR_TOO_LARGE,
		    "the request is %zu bytes, over the 1 MiB frame limit; send the body hash, "
		    "not the body",
		    n);
	if ((r = dk_buf_reserve(&c->out, n + DK_FRAME_HEADER_LEN)) != 0)
		return r == DK_ERR_TOO_LARGE
		           ? dk_err_set(r, "%zu bytes of requests are queued; call dkc_flush()",
		                 c->out.len)
		           : r;
	p = c->out.data + c->out.len;
	dk_frame_put_len(p, (uint32_t)n);
	dkimkeep__v1__request__pack(req, p + DK_FRAME_HEADER_LEN);
	c->out.len += n + DK_FRAME_HEADER_LEN;
	return 0;
}

int
dkc_flush(struct dkc_conn *c)
{
	int r = 0;

	if (c->out.len > 0)
		r = conn_write_all(c, c->out.data, c->out.len);
	dk_buf_reset(&c->out);
	/* A request with a whole body does not pin its size for the connection's life. */
	if (c->out.cap > 65536)
		dk_buf_free(&c->out);
	return r;
}

static int
conn_send_request(struct dkc_conn *c, Dkimkeep__V1__Request *req)
{
	int r;

	if ((r = conn_queue_request(c, req)) != 0)
		return r;
	return dkc_flush(c);
}

int
dkc_result_ready(const struct dkc_conn *c)
{
	return c->in.len >= DK_FRAME_HEADER_LEN &&
	       c->in.len - DK_FRAME_HEADER_LEN >= dk_frame_get_len(c->in.data);
}

/* Read until one whole frame is buffered; unpack it. */
static int
conn_recv_response(struct dkc_conn *c, Dkimkeep__V1__Response **out)
{
	uint8_t tmp[65536];
	uint32_t flen;
	ssize_t n;
	int r;

	*out = NULL;
	for (;;) {
		if (c->in.len >= DK_FRAME_HEADER_LEN) {
			flen = dk_frame_get_len(c->in.data);
			if (flen > DK_FRAME_MAX)
				return dk_err_set(DK_ERR_PROTO,
				    "dkimkeepd sent a frame of %u bytes; is the socket really "
				    "dkimkeepd's?",
				    flen);
			if (c->in.len >= DK_FRAME_HEADER_LEN + (size_t)flen)
				break;
		}
		/*
		 * Wait only when the last recv() emptied the socket: after one that
		 * filled tmp more is waiting.  The wait is the recv() itself, bounded
		 * by SO_RCVTIMEO: one system call, not poll() and then recv().
		 */
		if (c->drained && !c->rcvtimeo && (r = conn_wait(c, POLLIN)) != 0)
			return r;
		n = recv(c->fd, tmp, sizeof(tmp), c->drained && c->rcvtimeo ? 0 : MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && c->drained && c->rcvtimeo)
			return conn_timeout(c);
		c->drained = n < (ssize_t)sizeof(tmp);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			continue;
		if (n <= 0)
			return dk_err_set(DK_ERR_UNAVAILABLE,
			    "dkimkeepd closed the connection; see its log (it may be stopping)");
		if ((r = dk_buf_put(&c->in, tmp, (size_t)n)) != 0)
			return r;
	}
	*out = dkimkeep__v1__response__unpack(NULL, flen, c->in.data + DK_FRAME_HEADER_LEN);
	dk_buf_consume(&c->in, DK_FRAME_HEADER_LEN + (size_t)flen);
	if (*out == NULL)
		return dk_err_set(DK_ERR_PROTO, "dkimkeepd sent an answer that cannot be decoded");
	return 0;
}

/* Build the sign request for req (pointing into req) and queue it; flush: send now. */
static int
conn_sign_request(struct dkc_conn *c, const struct dkc_sign_req *req, uint64_t *id, int flush)
{
	Dkimkeep__V1__Request rq;
	Dkimkeep__V1__SignRequest sr;
	Dkimkeep__V1__Algorithm algs[2];
	size_t i;

	dkimkeep__v1__request__init(&rq);
	dkimkeep__v1__sign_request__init(&sr);
	if (req->nalgs > 2 || req->header_section == NULL)
		return DK_ERR_INVALID;
	for (i = 0; i < req->nalgs; i++)
		algs[i] = (Dkimkeep__V1__Algorithm)req->algs[i];
	rq.id = c->next_id++;
	rq.kind_case = DKIMKEEP__V1__REQUEST__KIND_SIGN;
	rq.sign = &sr;
	if (req->domain != NULL)
		sr.domain = (char *)(uintptr_t)req->domain;
	if (req->selector != NULL)
		sr.selector = (char *)(uintptr_t)req->selector;
	if (req->identity != NULL)
		sr.identity = (char *)(uintptr_t)req->identity;
	sr.n_algorithms = req->nalgs;
	sr.algorithms = algs;
	sr.timestamp = req->timestamp;
	sr.expire = req->expire;
	sr.n_headers = req->headers != NULL ? req->nheaders : 0;
	sr.headers = (char **)(uintptr_t)req->headers;
	sr.header_section.data = (uint8_t *)(uintptr_t)req->header_section;
	sr.header_section.len = req->header_len;
	sr.header_canon = req->simple_headers ? DKIMKEEP__V1__CANONICALIZATION__SIMPLE
	                                      : DKIMKEEP__V1__CANONICALIZATION__RELAXED;
	sr.body_canon = req->simple_body ? DKIMKEEP__V1__CANONICALIZATION__SIMPLE
	                                 : DKIMKEEP__V1__CANONICALIZATION__RELAXED;
	if (req->body_hash != NULL) {
		sr.content_case = DKIMKEEP__V1__SIGN_REQUEST__CONTENT_BODY_HASH;
		sr.body_hash.data = (uint8_t *)(uintptr_t)req->body_hash;
		sr.body_hash.len = DKC_HASH_LEN;
	} else {
		sr.content_case = DKIMKEEP__V1__SIGN_REQUEST__CONTENT_BODY;
		sr.body.data = (uint8_t *)(uintptr_t)req->body;
		sr.body.len = req->body_len;
	}
	if (id != NULL)
		*id = rq.id;
	return flush ? conn_send_request(c, &rq) : conn_queue_request(c, &rq);
}

int
dkc_sign_send(struct dkc_conn *c, const struct dkc_sign_req *req, uint64_t *id)
{
	return conn_sign_request(c, req, id, 1);
}

int
dkc_sign_queue(struct dkc_conn *c, const struct dkc_sign_req *req, uint64_t *id)
{
	return conn_sign_request(c, req, id, 0);
}

static char *
dup_or_empty(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static int
result_fill(const Dkimkeep__V1__Response *resp, struct dkc_result *res)
{
	const Dkimkeep__V1__Signature *s;
	size_t i;

	memset(res, 0, sizeof(*res));
	res->id = resp->id;
	res->status = (int)resp->status;
	if ((res->error = dup_or_empty(resp->error)) == NULL)
		return DK_ERR_NOMEM;
	if (resp->kind_case != DKIMKEEP__V1__RESPONSE__KIND_SIGN || resp->sign == NULL) {
		if ((res->domain = dup_or_empty(NULL)) == NULL)
			return DK_ERR_NOMEM;
		/* OK without a SignResponse is no signature (found by fuzz_response). */
		if (res->status == DKC_OK)
			return dk_err_set(
			    DK_ERR_PROTO, "dkimkeepd answered OK without a signature");
		return 0;
	}
	if ((res->domain = dup_or_empty(resp->sign->domain)) == NULL)
		return DK_ERR_NOMEM;
	for (i = 0; i < resp->sign->n_signatures && i < 2; i++) {
		s = resp->sign->signatures[i];
		res->sigs[i].alg = (int)s->algorithm;
		res->sigs[i].header = dup_or_empty(s->header);
		res->sigs[i].selector = dup_or_empty(s->selector);
		res->sigs[i].slot = dup_or_empty(s->slot);
		res->sigs[i].key_id = dup_or_empty(s->key_id);
		res->sigs[i].token = dup_or_empty(s->token);
		res->nsigs++;
		if (res->sigs[i].header == NULL || res->sigs[i].selector == NULL ||
		    res->sigs[i].slot == NULL || res->sigs[i].key_id == NULL ||
		    res->sigs[i].token == NULL)
			return DK_ERR_NOMEM;
	}
	if (res->status == DKC_OK && res->nsigs == 0)
		return dk_err_set(DK_ERR_PROTO, "dkimkeepd answered OK without a signature");
	return 0;
}

int
dkc_result_recv(struct dkc_conn *c, struct dkc_result *res)
{
	Dkimkeep__V1__Response *resp = NULL;
	int r;

	memset(res, 0, sizeof(*res));
	/* Queued requests go first: their answers may be the ones awaited. */
	if (c->out.len > 0 && (r = dkc_flush(c)) != 0)
		return r;
	if ((r = conn_recv_response(c, &resp)) != 0)
		return r;
	r = result_fill(resp, res);
	dkimkeep__v1__response__free_unpacked(resp, NULL);
	if (r != 0)
		dkc_result_free(res);
	return r;
}

void
dkc_result_free(struct dkc_result *res)
{
	size_t i;

	for (i = 0; i < res->nsigs; i++) {
		free(res->sigs[i].header);
		free(res->sigs[i].selector);
		free(res->sigs[i].slot);
		free(res->sigs[i].key_id);
		free(res->sigs[i].token);
	}
	free(res->error);
	free(res->domain);
	memset(res, 0, sizeof(*res));
}

int
dkc_sign(struct dkc_conn *c, const struct dkc_sign_req *req, struct dkc_result *res)
{
	uint64_t id;
	int r;

	memset(res, 0, sizeof(*res));
	if ((r = dkc_sign_send(c, req, &id)) != 0)
		return r;
	for (;;) {
		if ((r = dkc_result_recv(c, res)) != 0)
			return r;
		if (res->id == id || res->id == 0)
			return 0;
		dkc_result_free(res); /* an answer to an earlier pipelined request */
	}
}

static int
status_tokens(const Dkimkeep__V1__StatusResponse *sr, struct dkc_status_info *st)
{
	const Dkimkeep__V1__TokenStatus *t;
	size_t i;

	if ((st->tokens = calloc(sr->n_tokens + 1, sizeof(*st->tokens))) == NULL)
		return DK_ERR_NOMEM;
	for (i = 0; i < sr->n_tokens; i++, st->ntokens++) {
		t = sr->tokens[i];
		st->tokens[i].up = t->up;
		st->tokens[i].since = t->since;
		st->tokens[i].errors = t->errors;
		if ((st->tokens[i].name = dup_or_empty(t->name)) == NULL ||
		    (st->tokens[i].label = dup_or_empty(t->label)) == NULL ||
		    (st->tokens[i].last_error = dup_or_empty(t->last_error)) == NULL)
			return DK_ERR_NOMEM;
	}
	return 0;
}

static int
status_rings(const Dkimkeep__V1__StatusResponse *sr, struct dkc_status_info *st)
{
	const Dkimkeep__V1__RingStatus *g;
	size_t i;

	if ((st->rings = calloc(sr->n_rings + 1, sizeof(*st->rings))) == NULL)
		return DK_ERR_NOMEM;
	for (i = 0; i < sr->n_rings; i++, st->nrings++) {
		g = sr->rings[i];
		st->rings[i].alg = (int)g->algorithm;
		if ((st->rings[i].domain = dup_or_empty(g->domain)) == NULL ||
		    (st->rings[i].slot = dup_or_empty(g->slot)) == NULL ||
		    (st->rings[i].selector = dup_or_empty(g->selector)) == NULL ||
		    (st->rings[i].key_id = dup_or_empty(g->key_id)) == NULL)
			return DK_ERR_NOMEM;
	}
	return 0;
}

static int
status_fill(const Dkimkeep__V1__StatusResponse *sr, struct dkc_status_info *st)
{
	size_t i;
	int r;

	st->started = sr->started;
	st->workers = sr->workers;
	st->queue_depth = sr->queue_depth;
	st->queue_max = sr->queue_max;
	st->connections = sr->connections;
	if ((st->version = dup_or_empty(sr->version)) == NULL)
		return DK_ERR_NOMEM;
	if ((r = status_tokens(sr, st)) != 0 || (r = status_rings(sr, st)) != 0)
		return r;
	if ((st->counters = calloc(sr->n_requests + 1, sizeof(*st->counters))) == NULL)
		return DK_ERR_NOMEM;
	for (i = 0; i < sr->n_requests; i++, st->ncounters++) {
		st->counters[i].value = sr->requests[i]->value;
		if ((st->counters[i].name = dup_or_empty(sr->requests[i]->key)) == NULL)
			return DK_ERR_NOMEM;
	}
	return 0;
}

int
dkc_status(struct dkc_conn *c, struct dkc_status_info **out)
{
	Dkimkeep__V1__Request rq;
	Dkimkeep__V1__StatusRequest sq;
	Dkimkeep__V1__Response *resp = NULL;
	struct dkc_status_info *st = NULL;
	int r;

	dkimkeep__v1__request__init(&rq);
	dkimkeep__v1__status_request__init(&sq);
	*out = NULL;
	rq.id = c->next_id++;
	rq.kind_case = DKIMKEEP__V1__REQUEST__KIND_STATUS;
	rq.status = &sq;
	if ((r = conn_send_request(c, &rq)) != 0)
		goto out;
	do {
		if (resp != NULL)
			dkimkeep__v1__response__free_unpacked(resp, NULL);
		if ((r = conn_recv_response(c, &resp)) != 0)
			goto out;
	} while (resp->id != rq.id && resp->id != 0);
	if (resp->status != DKIMKEEP__V1__STATUS__OK ||
	    resp->kind_case != DKIMKEEP__V1__RESPONSE__KIND_STATUS_INFO) {
		r = dk_err_set(DK_ERR_PROTO, "status refused: %s", resp->error);
		goto out;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	if ((r = status_fill(resp->status_info, st)) != 0)
		goto out;
	*out = st;
	st = NULL;
out:
	dkc_status_free(st);
	if (resp != NULL)
		dkimkeep__v1__response__free_unpacked(resp, NULL);
	return r;
}

void
dkc_status_free(struct dkc_status_info *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < st->ntokens; i++) {
		free(st->tokens[i].name);
		free(st->tokens[i].label);
		free(st->tokens[i].last_error);
	}
	for (i = 0; i < st->nrings; i++) {
		free(st->rings[i].domain);
		free(st->rings[i].slot);
		free(st->rings[i].selector);
		free(st->rings[i].key_id);
	}
	for (i = 0; i < st->ncounters; i++)
		free(st->counters[i].name);
	free(st->tokens);
	free(st->rings);
	free(st->counters);
	free(st->version);
	free(st);
}
