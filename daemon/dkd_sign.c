/*
 * dkd_sign.c - signing one request on a worker thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "common/dk_log.h"
#include "common/dk_time.h"
#include "daemon/dkd_sign.h"

#define SIG_VALUE_MAX (64 * 1024)

int
dkd_sessions_init(struct dkd_sessions *ss, struct dkd_tokens *tokens)
{
	size_t n = tokens->n ? tokens->n : 1;

	ss->tokens = tokens;
	ss->s = calloc(n, sizeof(*ss->s));
	ss->gen = calloc(n, sizeof(*ss->gen));
	if (ss->s == NULL || ss->gen == NULL) {
		free(ss->s);
		free(ss->gen);
		ss->s = NULL;
		ss->gen = NULL;
		return DK_ERR_NOMEM;
	}
	return 0;
}

void
dkd_sessions_close(struct dkd_sessions *ss)
{
	size_t i;

	if (ss->s == NULL)
		return;
	for (i = 0; i < ss->tokens->n; i++) {
		if (ss->s[i] != NULL)
			hsm_session_close(ss->s[i]);
	}
	free(ss->s);
	free(ss->gen);
	ss->s = NULL;
	ss->gen = NULL;
}

/* This worker's session on tok, reopened after the token was marked down. */
static int
sessions_get(struct dkd_sessions *ss, struct dkd_token *tok, struct hsm_session **out)
{
	unsigned gen = atomic_load(&tok->generation);
	size_t i = tok->index;
	int r;

	if (ss->s[i] != NULL && ss->gen[i] == gen) {
		*out = ss->s[i];
		return 0;
	}
	if (ss->s[i] != NULL) {
		hsm_session_close(ss->s[i]);
		ss->s[i] = NULL;
	}
	if ((r = hsm_session_open(tok->token, &ss->s[i])) != 0)
		return r;
	ss->gen[i] = gen;
	*out = ss->s[i];
	return 0;
}

static void
job_fail(struct dkd_job *job, int err, const char *fmt, ...)
{
	va_list ap;

	job->result = err;
	va_start(ap, fmt);
	vsnprintf(job->error, sizeof(job->error), fmt, ap);
	va_end(ap);
}

/* RFC 6376 §3.5: i= must be in d= or one of its subdomains. */
static int
identity_ok(const char *identity, const char *domain)
{
	const char *at = strrchr(identity, '@');
	size_t dl = strlen(domain), il;

	if (at == NULL)
		return 0;
	at++;
	il = strlen(at);
	if (strcasecmp(at, domain) == 0)
		return 1;
	return il > dl + 1 && at[il - dl - 1] == '.' && strcasecmp(at + il - dl, domain) == 0;
}

/*
 * What a worker works out for one job.  The job's "in" part stays
 * read-only while a worker has it: the watchdog may copy it to retry
 * elsewhere (dkd_pool.c).
 */
struct sign_ctx {
	struct dkim_headers hdrs;
	const struct dk_conf_domain *dom;
	enum dkim_canon hcanon, bcanon;
	uint8_t bh[DKIM_DIGEST_LEN];
	int64_t timestamp;
};

/* Parse, find the domain, authorize; fills ctx. */
static int
sign_prepare(struct dkd_job *job, struct sign_ctx *ctx)
{
	struct dkim_headers *hdrs = &ctx->hdrs;
	const struct dk_conf_domain **dom = &ctx->dom;
	char from[DKIM_DOMAIN_MAX + 1];
	const char *want;
	struct dkim_body body;
	int r;

	if ((r = dkim_headers_parse(job->header_section, job->header_len, hdrs)) != 0) {
		job_fail(job, r, "the header section cannot be signed: %s", dk_strerror(r));
		return r;
	}
	/* RFC 6376 §5.4: From must be signed, so there must be exactly one. */
	if ((r = dkim_from_domain(hdrs, from, sizeof(from))) != 0) {
		job_fail(job, r, "the message cannot be signed: %s", dk_strerror(r));
		return r;
	}
	want = job->domain[0] ? job->domain : from;
	if ((*dom = dk_conf_domain(job->ks->conf, want)) == NULL) {
		job_fail(job, DK_ERR_UNKNOWN_DOMAIN,
		    "no [domain] section for %s or a parent domain in %s; add one if this "
		    "mail should be signed, or ask for a configured domain",
		    want, job->ks->conf->path);
		return DK_ERR_UNKNOWN_DOMAIN;
	}
	if (!dkd_keyset_allows(job->ks, job->client, *dom)) {
		job_fail(job, DK_ERR_NOT_AUTHORIZED,
		    "client \"%s\" (uid %u) may not sign for %s; add it to domains= of "
		    "[client %s] if it should",
		    job->client->name, (unsigned)job->uid, (*dom)->name, job->client->name);
		return DK_ERR_NOT_AUTHORIZED;
	}
	snprintf(job->signed_domain, sizeof(job->signed_domain), "%s", (*dom)->name);
	ctx->hcanon = job->hcanon_default ? (enum dkim_canon)(*dom)->canon_header : job->hcanon;
	ctx->bcanon = job->bcanon_default ? (enum dkim_canon)(*dom)->canon_body : job->bcanon;
	ctx->timestamp = job->timestamp > 0 ? job->timestamp : (int64_t)time(NULL);
	if (job->identity[0] && !identity_ok(job->identity, (*dom)->name)) {
		job_fail(job, DK_ERR_INVALID,
		    "identity %s is not in %s or a subdomain (RFC 6376 §3.5 i=)", job->identity,
		    (*dom)->name);
		return DK_ERR_INVALID;
	}
	if (job->have_bh) {
		memcpy(ctx->bh, job->bh, sizeof(ctx->bh));
	} else if ((r = dkim_body_init(&body, ctx->bcanon)) != 0 ||
	           (r = dkim_body_update(&body, job->body, job->body_len)) != 0 ||
	           (r = dkim_body_final(&body, ctx->bh)) != 0) {
		dkim_body_free(&body);
		job_fail(job, r, "body hash failed: %s", dk_strerror(r));
		return r;
	}
	return 0;
}

/* Build, hash and sign one DKIM-Signature with key k into out. */
static int
sign_with_key(struct dkd_sessions *ss, struct dkd_job *job, const struct sign_ctx *ctx,
    enum dkim_alg alg, const struct dkd_key *k, struct dkd_sig_out *out)
{
	const struct dkim_headers *hdrs = &ctx->hdrs;
	const struct dk_conf_domain *dom = ctx->dom;
	struct dkim_sig_params p;
	struct hsm_session *sess;
	struct dk_buf val;
	uint8_t digest[DKIM_DIGEST_LEN], sig[HSM_SIG_MAX];
	size_t sig_len = sizeof(sig);
	int r;

	dk_buf_init(&val, SIG_VALUE_MAX);
	memset(&p, 0, sizeof(p));
	p.alg = alg;
	p.hcanon = ctx->hcanon;
	p.bcanon = ctx->bcanon;
	p.domain = dom->name;
	p.selector = k->hk.meta.selector;
	p.identity = job->identity[0] ? job->identity : NULL;
	p.timestamp = ctx->timestamp;
	p.expire = job->expire;
	p.headers = job->headers != NULL ? job->headers : dom->headers;
	p.oversign = dom->oversign;
	memcpy(p.bh, ctx->bh, sizeof(p.bh));
	if ((r = dkim_sig_build(hdrs, &p, &val)) != 0 ||
	    (r = dkim_sig_digest(hdrs, &p, &val, digest)) != 0)
		goto out;
	/* The watchdog sees how long this worker has been inside the token. */
	atomic_store(&ss->busy_tok, k->tok);
	atomic_store(&ss->busy_since_us, dk_now_us());
	if ((r = sessions_get(ss, k->tok, &sess)) == 0)
		r = hsm_sign_digest(sess, &k->hk, digest, sig, &sig_len);
	atomic_store(&ss->busy_since_us, 0);
	atomic_store(&ss->busy_tok, NULL);
	if (r != 0)
		goto out;
	if ((r = dkim_sig_finish(&val, sig, sig_len)) != 0)
		goto out;
	out->alg = alg;
	snprintf(out->selector, sizeof(out->selector), "%s", k->hk.meta.selector);
	snprintf(out->slot, sizeof(out->slot), "%s", k->hk.meta.slot);
	snprintf(out->key_id, sizeof(out->key_id), "%s", k->hk.id_hex);
	snprintf(out->token, sizeof(out->token), "%s", k->tok->label);
	if ((out->header = malloc(val.len + sizeof("DKIM-Signature:"))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	memcpy(out->header, "DKIM-Signature:", sizeof("DKIM-Signature:") - 1);
	memcpy(out->header + sizeof("DKIM-Signature:") - 1, val.data, val.len);
	out->header[sizeof("DKIM-Signature:") - 1 + val.len] = '\0';
	r = 0;
out:
	explicit_bzero(digest, sizeof(digest));
	dk_buf_free(&val);
	return r;
}

/* One algorithm: the active key, or the standby when the primary fails. */
static int
sign_alg(struct dkd_sessions *ss, struct dkd_job *job, const struct sign_ctx *ctx,
    enum dkim_alg alg, struct dkd_sig_out *out)
{
	const struct dk_conf_domain *dom = ctx->dom;
	const struct dkd_key *cand[2] = {NULL, NULL};
	const struct dkd_ring *ring;
	size_t i;
	int r, tried = 0, last = DK_ERR_NO_KEY;

	if (job->selector[0]) {
		cand[0] = dkd_keyset_selector(job->ks, dom->name, job->selector);
		if (cand[0] != NULL && strcmp(cand[0]->hk.meta.alg, dkim_alg_name(alg)) != 0)
			cand[0] = NULL;
	} else if ((ring = dkd_keyset_ring(job->ks, dom, alg)) != NULL) {
		cand[0] = ring->active;
		cand[1] = ring->standby;
	}
	for (i = 0; i < 2; i++) {
		if (cand[i] == NULL || !atomic_load(&cand[i]->tok->up))
			continue;
		tried++;
		if ((r = sign_with_key(ss, job, ctx, alg, cand[i], out)) == 0)
			return 0;
		last = r;
		if (r == DK_ERR_TOKEN_FAILING || r == DK_ERR_TIMEOUT)
			dkd_token_down(cand[i]->tok, r, dk_err_detail());
		else
			dk_log_err("signing for %s with key %s (selector %s) failed: %s%s%s",
			    dom->name, cand[i]->hk.id_hex, cand[i]->hk.meta.selector,
			    dk_strerror(r), dk_err_detail()[0] ? ": " : "", dk_err_detail());
	}
	if (cand[0] == NULL && cand[1] == NULL) {
		job_fail(job, DK_ERR_NO_KEY,
		    "no usable %s key%s%s for %s; run \"dkimkeep key list --domain %s\" and "
		    "\"dkimkeep key generate --domain %s --alg %s --activate\"",
		    dkim_alg_name(alg), job->selector[0] ? " with selector " : "", job->selector,
		    dom->name, dom->name, dom->name, dkim_alg_name(alg));
		return DK_ERR_NO_KEY;
	}
	if (tried == 0 || last == DK_ERR_TOKEN_FAILING || last == DK_ERR_TIMEOUT) {
		job_fail(job, DK_ERR_UNAVAILABLE,
		    "every token holding a %s key for %s is down; see \"dkimkeep status\" and "
		    "the daemon's log",
		    dkim_alg_name(alg), dom->name);
		return DK_ERR_UNAVAILABLE;
	}
	job_fail(job, last, "signing for %s failed: %s", dom->name, dk_strerror(last));
	return last;
}

void
dkd_sign_run(struct dkd_sessions *ss, struct dkd_job *job)
{
	struct sign_ctx ctx;
	const struct dk_conf_domain *dom;
	enum dkim_alg algs[DKD_MAX_ALGS];
	size_t i, nalgs = 0;
	int a;

	memset(&ctx, 0, sizeof(ctx));
	job->result = 0;
	job->nsigs = 0;
	if (sign_prepare(job, &ctx) != 0)
		goto out;
	dom = ctx.dom;
	if (job->nalgs > 0) {
		for (i = 0; i < job->nalgs; i++) {
			if (!(dom->algs & (1u << job->algs[i]))) {
				job_fail(job, DK_ERR_NO_KEY,
				    "%s is not configured for %s; see algorithms= in [domain %s]",
				    dkim_alg_name(job->algs[i]), dom->name, dom->name);
				goto out;
			}
			algs[nalgs++] = job->algs[i];
		}
	} else {
		for (a = DKIM_ALG_RSA_SHA256; a <= DKIM_ALG_ED25519_SHA256; a++) {
			if (dom->algs & (1u << a))
				algs[nalgs++] = (enum dkim_alg)a;
		}
	}
	for (i = 0; i < nalgs; i++) {
		if (sign_alg(ss, job, &ctx, algs[i], &job->sigs[job->nsigs]) != 0)
			goto out;
		job->nsigs++;
	}
out:
	if (job->result != 0) {
		for (i = 0; i < job->nsigs; i++) {
			free(job->sigs[i].header);
			job->sigs[i].header = NULL;
		}
		job->nsigs = 0;
	}
	explicit_bzero(ctx.bh, sizeof(ctx.bh));
	dkim_headers_free(&ctx.hdrs);
}

void
dkd_job_free(struct dkd_job *job)
{
	size_t i;

	if (job == NULL)
		return;
	for (i = 0; i < job->nsigs; i++)
		free(job->sigs[i].header);
	dkd_keyset_release(job->ks);
	free(job->headers);
	free(job->header_section);
	free(job->body);
	free(job);
}

static int
memdup_to(const void *src, size_t len, uint8_t **dst)
{
	*dst = NULL;
	if (src == NULL || len == 0)
		return 0;
	if ((*dst = malloc(len)) == NULL)
		return DK_ERR_NOMEM;
	memcpy(*dst, src, len);
	return 0;
}

int
dkd_job_clone(const struct dkd_job *job, struct dkd_job **out)
{
	struct dkd_job *c;

	*out = NULL;
	if ((c = malloc(sizeof(*c))) == NULL)
		return DK_ERR_NOMEM;
	*c = *job; /* the "in" part; the rest is reset below */
	c->headers = NULL;
	c->header_section = NULL;
	c->body = NULL;
	c->ks = NULL;
	c->result = 0;
	c->error[0] = '\0';
	c->signed_domain[0] = '\0';
	memset(c->sigs, 0, sizeof(c->sigs));
	c->nsigs = 0;
	c->abandoned = 0;
	c->next = NULL;
	if ((job->headers != NULL && (c->headers = strdup(job->headers)) == NULL) ||
	    memdup_to(job->header_section, job->header_len, &c->header_section) != 0 ||
	    memdup_to(job->body, job->body_len, &c->body) != 0) {
		dkd_job_free(c);
		return DK_ERR_NOMEM;
	}
	atomic_fetch_add(&job->ks->refs, 1);
	c->ks = job->ks;
	*out = c;
	return 0;
}
