/*
 * dkd_audit_rec.c - the daemon's audit records, and the audit token: the
 * Message-ID HMACs, checkpoint signatures and the anchor (docs/audit.md).
 * Runs on the audit thread only, with its own session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dk_b64.h"
#include "common/dk_err.h"
#include "common/dk_log.h"
#include "daemon/dkd_audit_int.h"

#define TOKEN_RETRY_US (5 * 1000000LL) /* after a token failure, wait this long to retry */

const char *
audit_status_name(int err)
{
	switch (err) {
	case 0:
		return "OK";
	case DK_ERR_MSG_EMPTY:
	case DK_ERR_MSG_NOT_MESSAGE:
	case DK_ERR_MSG_NO_FROM:
	case DK_ERR_MSG_MULTI_FROM:
	case DK_ERR_MSG_HEADER_TOO_LARGE:
	case DK_ERR_MSG_TOO_MANY_HEADERS:
	case DK_ERR_MSG_BAD_HEADER:
		return "BAD_MESSAGE";
	case DK_ERR_INVALID:
	case DK_ERR_TOO_LARGE:
	case DK_ERR_PARSE:
	case DK_ERR_PROTO:
		return "BAD_REQUEST";
	case DK_ERR_NOT_AUTHORIZED:
		return "NOT_AUTHORIZED";
	case DK_ERR_UNKNOWN_DOMAIN:
		return "UNKNOWN_DOMAIN";
	case DK_ERR_NO_KEY:
	case DK_ERR_KEY_NOT_FOUND:
		return "NO_KEY";
	case DK_ERR_BUSY:
		return "BUSY";
	case DK_ERR_RATE_LIMITED:
		return "RATE_LIMITED";
	case DK_ERR_UNAVAILABLE:
	case DK_ERR_TOKEN_FAILING:
	case DK_ERR_TIMEOUT:
		return "TOKEN_UNAVAILABLE";
	case DK_ERR_AUDIT:
		return "AUDIT_UNAVAILABLE";
	default:
		return "INTERNAL";
	}
}

/* ---- the audit token ---- */

void
audit_token_close(struct dkd_audit *a)
{
	if (a->sess != NULL)
		hsm_session_close(a->sess);
	a->sess = NULL;
	a->have_keys = 0;
}

/* Our session and the audit keys, made when missing (called under the log's lock). */
static int
token_ready(struct dkd_audit *a)
{
	unsigned gen;
	int r;

	if (a->tok == NULL || a->tok->token == NULL)
		return dk_err_set(DK_ERR_UNAVAILABLE, "no audit token is open");
	gen = atomic_load(&a->tok->generation);
	if (a->sess != NULL && a->sess_gen != gen)
		audit_token_close(a); /* the token went down since: a new session */
	if (a->sess != NULL && a->have_keys)
		return 0;
	if (dka_now_us() < a->token_retry_us)
		return dk_err_set(DK_ERR_UNAVAILABLE, "the audit token failed a moment ago");
	if (a->sess == NULL && (r = hsm_session_open(a->tok->token, &a->sess)) != 0)
		goto fail;
	a->sess_gen = gen;
	if ((r = hsm_audit_keys(a->sess, 1, &a->keys)) != 0)
		goto fail;
	a->have_keys = 1;
	return 0;
fail:
	a->token_retry_us = dka_now_us() + TOKEN_RETRY_US;
	dk_log_err("audit: token \"%s\": %s; records are written without Message-ID hashes and "
	           "checkpoints until it works again",
	    a->tok->name, dk_err_detail());
	audit_token_close(a);
	return r;
}

static void
token_failed(struct dkd_audit *a, const char *what)
{
	dk_log_err("audit: %s failed: %s; retrying in %lld s", what, dk_err_detail(),
	    TOKEN_RETRY_US / 1000000);
	a->token_retry_us = dka_now_us() + TOKEN_RETRY_US;
	audit_token_close(a);
}

void
audit_hour_key_wipe(struct dkd_audit *a)
{
	explicit_bzero(a->hour_key, sizeof(a->hour_key));
	dka_mac_free(&a->hour_mac);
	a->hour[0] = '\0';
}

/*
 * The key of the hour of a record, derived in the token once an hour
 * (docs/audit.md "Privacy"): a token call per message would cost a quarter
 * of an Ed25519 signature in SoftHSM.
 */
static int
hour_key(struct dkd_audit *a, int64_t us)
{
	char hour[DKA_HOUR_LEN + 1];
	struct dk_buf in;
	int r;

	dka_mac_hour(us, hour);
	if (strcmp(hour, a->hour) == 0)
		return 0;
	audit_hour_key_wipe(a);
	dk_buf_init(&in, 128);
	if ((r = dka_hour_key_input(hour, &in)) != 0 || (r = token_ready(a)) != 0)
		goto out;
	if ((r = hsm_audit_hmac(a->sess, &a->keys, in.data, in.len, a->hour_key)) != 0) {
		token_failed(a, "deriving the Message-ID key of the hour");
		audit_hour_key_wipe(a);
		goto out;
	}
	if ((r = dka_mac_key(&a->hour_mac, a->hour_key, sizeof(a->hour_key))) != 0) {
		audit_hour_key_wipe(a);
		goto out;
	}
	memcpy(a->hour, hour, sizeof(hour));
out:
	dk_buf_free(&in);
	return r;
}

/* "mid" or "ident": the hex HMAC of value, or null when the token cannot make the key. */
static void
mac_field(struct dkd_audit *a, struct dk_json *j, const char *key, const char *label,
    const char *value, int64_t us)
{
	uint8_t mac[DKA_MAC_LEN];
	char hex[2 * DKA_MAC_LEN + 1];
	struct dk_buf in;

	dk_buf_init(&in, DKA_MID_MAX + 64);
	if (dka_mac_input(label, value, strlen(value), &in) != 0 || hour_key(a, us) != 0 ||
	    dka_mac(&a->hour_mac, in.data, in.len, mac) != 0) {
		dk_json_null(j, key);
		goto out;
	}
	dka_hex(mac, sizeof(mac), hex);
	dk_json_str(j, key, hex);
out:
	explicit_bzero(mac, sizeof(mac));
	dk_buf_free(&in);
}

static int
checkpoint_sign(
    void *arg, const uint8_t *msg, size_t len, uint8_t sig[DKA_SIG_LEN], uint8_t pub[DKA_PUB_LEN])
{
	struct dkd_audit *a = arg;
	int r;

	if ((r = token_ready(a)) != 0)
		return r;
	if ((r = hsm_audit_sign(a->sess, &a->keys, msg, len, sig)) != 0) {
		token_failed(a, "signing a checkpoint");
		return r;
	}
	memcpy(pub, a->keys.pubkey, DKA_PUB_LEN);
	return 0;
}

void
audit_checkpoint(struct dkd_audit *a, struct dka_batch *b, const char *reason)
{
	if (dka_batch_checkpoint(b, reason, dka_now_us(), checkpoint_sign, a) != 0)
		dk_log_warn("audit: no checkpoint (%s): %s; the records stay unsealed until the "
		            "next one",
		    reason, dk_err_detail());
}

const struct dka_head *
audit_anchor_load(struct dkd_audit *a, struct dka_head *h)
{
	struct hsm_audit_anchor an;

	if (token_ready(a) != 0 || hsm_audit_anchor_get(a->sess, &an) != 0)
		return NULL;
	h->seq = an.seq;
	memcpy(h->hash, an.hash, sizeof(h->hash));
	return h;
}

void
audit_anchor_store(struct dkd_audit *a, const struct dka_batch *b)
{
	struct hsm_audit_anchor an;

	if (!b->has_cp || token_ready(a) != 0)
		return;
	an.seq = b->cp.seq;
	memcpy(an.hash, b->cp.hash, sizeof(an.hash));
	an.time = b->cp_us / 1000000;
	if (hsm_audit_anchor_set(a->sess, &an) != 0)
		dk_log_warn(
		    "audit: the token's anchor stays at an older checkpoint: %s", dk_err_detail());
}

/* ---- records ---- */

static void
rec_peer(struct dk_json *j, const char *client, uid_t uid, gid_t gid, pid_t pid)
{
	if (client != NULL && client[0])
		dk_json_str(j, "client", client);
	dk_json_uint(j, "uid", (uint64_t)uid);
	dk_json_uint(j, "gid", (uint64_t)gid);
	dk_json_int(j, "pid", (int64_t)pid);
}

static void
rec_sigs(struct dk_json *j, const struct dkd_job *job)
{
	size_t i;

	dk_json_arr_open(j, "sigs");
	for (i = 0; i < job->nsigs; i++) {
		dk_json_obj_open(j, NULL);
		dk_json_str(j, "alg", dkim_alg_name(job->sigs[i].alg));
		dk_json_str(j, "selector", job->sigs[i].selector);
		dk_json_str(j, "slot", job->sigs[i].slot);
		dk_json_str(j, "key_id", job->sigs[i].key_id);
		dk_json_str(j, "token", job->sigs[i].token);
		dk_json_obj_close(j);
	}
	dk_json_arr_close(j);
}

/*
 * The bh= tag (RFC 6376 §3.5) of a DKIM-Signature we made, white space of
 * folding removed: the body hash that was signed.  0, or DK_ERR_NOT_FOUND.
 */
static int
sig_bh(const char *header, char *out, size_t outlen)
{
	const char *p = header;
	size_t n = 0;

	while ((p = strstr(p, "bh=")) != NULL) {
		if (p == header || p[-1] == ';' || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n')
			break;
		p += 3;
	}
	if (p == NULL)
		return DK_ERR_NOT_FOUND;
	for (p += 3; *p && *p != ';'; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			continue;
		if (n + 1 >= outlen)
			return DK_ERR_NOT_FOUND;
		out[n++] = *p;
	}
	out[n] = '\0';
	return n > 0 ? 0 : DK_ERR_NOT_FOUND;
}

/* The job's Message-ID: the request's message_id, else the header section's. */
static int
job_message_id(const struct dkd_job *job, char *out, size_t outlen)
{
	if (job->message_id[0]) {
		snprintf(out, outlen, "%s", job->message_id);
		return 0;
	}
	if (job->header_section == NULL)
		return DK_ERR_NOT_FOUND;
	return dka_header_message_id(job->header_section, job->header_len, out, outlen);
}

int
audit_rec_job(struct dkd_audit *a, struct dka_batch *b, const struct dkd_job *job)
{
	char mid[DKA_MID_MAX + 1], sbh[64];
	struct dk_buf bh;
	struct dk_json *j;
	const char *domain;
	int64_t us = dka_now_us();
	int r;

	dk_buf_init(&bh, 64);
	j = dka_rec_begin(b, "sign", us);
	dk_json_str(j, "outcome", job->result == 0 ? "ok" : "refused");
	if (job->result != 0)
		dk_json_str(j, "reason", audit_status_name(job->result));
	rec_peer(j, job->client != NULL ? job->client->name : NULL, job->uid, job->gid, job->pid);
	dk_json_uint(j, "req", job->req_id);
	domain = job->signed_domain[0] ? job->signed_domain : job->domain;
	if (domain[0])
		dk_json_str(j, "domain", domain);
	if (job->nsigs > 0)
		rec_sigs(j, job);
	if (job->nsigs > 0 && job->sigs[0].header != NULL &&
	    sig_bh(job->sigs[0].header, sbh, sizeof(sbh)) == 0)
		dk_json_str(j, "bh", sbh);
	else if (job->have_bh && dk_b64_encode(&bh, job->bh, sizeof(job->bh)) == 0)
		dk_json_str(j, "bh", dk_buf_str(&bh));
	r = job_message_id(job, mid, sizeof(mid));
	if (r == 0)
		mac_field(a, j, "mid", DKA_MAC_MID, mid, us);
	else if (r == DK_ERR_TOO_LARGE)
		dk_json_str(j, "mid", "too-long");
	if (job->identity[0])
		mac_field(a, j, "ident", DKA_MAC_IDENTITY, job->identity, us);
	explicit_bzero(mid, sizeof(mid));
	r = dka_rec_end(b);
	dk_buf_free(&bh);
	return r;
}

int
audit_rec_event(struct dkd_audit *a, struct dka_batch *b, const struct audit_ev *ev)
{
	struct dk_json *j;

	j = dka_rec_begin(b, ev->event, dka_now_us());
	if (ev->outcome[0])
		dk_json_str(j, "outcome", ev->outcome);
	if (ev->reason != NULL)
		dk_json_str(j, "reason", ev->reason);
	if (ev->has_peer)
		rec_peer(j, ev->client, ev->uid, ev->gid, ev->pid);
	if (ev->has_req)
		dk_json_uint(j, "req", ev->req);
	if (ev->domain[0])
		dk_json_str(j, "domain", ev->domain);
	if (ev->has_key) {
		dk_json_str(j, "selector", ev->selector);
		dk_json_str(j, "alg", ev->alg);
		dk_json_str(j, "slot", ev->slot);
		dk_json_str(j, "state", ev->state);
	}
	if (ev->token[0])
		dk_json_str(j, "token", ev->token);
	if (ev->label[0])
		dk_json_str(j, "label", ev->label);
	if (ev->daemon) {
		dk_json_str(j, "version", DKIMKEEP_VERSION);
		dk_json_int(j, "pid", (int64_t)getpid());
		dk_json_int(j, "workers", a->workers);
		dk_json_bool(j, "fail_closed", a->fail_closed);
	}
	if (ev->text[0])
		dk_json_str(j, ev->text_key != NULL ? ev->text_key : "detail", ev->text);
	return dka_rec_end(b);
}
