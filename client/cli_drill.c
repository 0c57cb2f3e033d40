/*
 * cli_drill.c - "dkimkeep key drill": sign a test message with each
 * standby key in the backup token and verify the signature with the key
 * that its DNS record publishes, so that a failover is known to sign mail
 * that verifies before the day it is needed.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "client/cli_drill.h"
#include "client/cli_tokens.h"
#include "common/dk_b64.h"
#include "common/dk_buf.h"
#include "common/dk_config.h"
#include "common/dk_err.h"
#include "common/dk_json.h"
#include "dkim/dkim.h"
#include "rotate/dns_query.h"
#include "rotate/rot_record.h"

#define DRILL_FAILED 1 /* exit code: a standby key cannot take over */
#define MSG_MAX      8192
#define OUT_MAX      (4 * 1024 * 1024)
#define DETAIL_MAX   768
#define TAGS_MAX     32 /* tags in one key record */
#define TAG_NAME_MAX 32
#define PUB_MAX      2048 /* bytes of a decoded p= (the SPKI of RSA-4096 is 550) */

static const char drill_usage[] =
    "usage: dkimkeep [-c FILE] key drill --domain D [--offline] [--json]\n"
    "\n"
    "Proves that the domain's standby keys can take over when the primary token\n"
    "fails.  For each standby key in the backup token (backup= of the domain), it\n"
    "signs a test message in the token and verifies the signature with the public\n"
    "key of the record that DNS serves at SELECTOR._domainkey.DOMAIN, asked of\n"
    "resolver= in [dns] (or the system resolver).  With --offline, the record is the\n"
    "one \"dkimkeep key dns\" prints, so the drill proves the key signs and matches\n"
    "what is to be published, without DNS.  No daemon is needed; nothing is changed.\n"
    "\n"
    "Each key is reported ok or FAILED with the reason: signing failed (the token),\n"
    "record missing, DNS lookup failed, bad record, record revoked, wrong key (DNS\n"
    "publishes another key for the selector), signature mismatch.  An algorithm of\n"
    "algorithms= with no standby key fails the drill too.  Run it on a schedule.\n"
    "\n"
    "Options:\n"
    "  --domain D   the domain whose standby keys are drilled\n"
    "  --offline    check against the records of \"dkimkeep key dns\", not DNS\n"
    "  --json       one JSON object: domain, source (dns | offline), resolver, ok,\n"
    "               missing (algorithms without a standby key) and keys, a list of\n"
    "               {selector, alg, token, token_label, key_id, name, ok, problem,\n"
    "               detail, record, message (the signed test message)}\n"
    "  -c FILE      configuration file\n"
    "  -h, --help   this text\n"
    "\n"
    "Exit codes: 0 every standby key can take over; 1 one cannot, or there is none;\n"
    "64 usage; 69 token unavailable; 77 PIN refused; 78 bad config.\n";

enum problem {
	P_NONE,
	P_SIGN,           /* the token did not sign */
	P_RECORD_MISSING, /* no TXT record at the selector's name */
	P_DNS,            /* the lookup itself failed */
	P_BAD_RECORD,     /* not a usable DKIM key record */
	P_REVOKED,        /* p= is empty */
	P_WRONG_KEY,      /* the record's key is not the standby key */
	P_SIG_MISMATCH,   /* the signature does not verify with the record's key */
};

static const char *const problem_names[] = {"", "sign_failed", "record_missing", "dns_error",
    "bad_record", "revoked", "wrong_key", "signature_mismatch"};
static const char *const problem_text[] = {"ok", "signing failed", "record missing",
    "DNS lookup failed", "bad record", "record revoked", "wrong key", "signature mismatch"};

struct drill_args {
	const char *conf_path, *domain;
	int json, offline;
};

/* What the drill found for one standby key. */
struct drill_key {
	const struct cli_key *ck;
	enum problem problem;
	char detail[DETAIL_MAX];
	struct dk_buf name;    /* SELECTOR._domainkey.DOMAIN */
	struct dk_buf record;  /* the TXT value checked */
	struct dk_buf message; /* the signed test message */
	uint8_t digest[DKIM_DIGEST_LEN];
	uint8_t sig[HSM_SIG_MAX];
	size_t sig_len;
};

static void set_problem(struct drill_key *dk, enum problem p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_problem(struct drill_key *dk, enum problem p, const char *fmt, ...)
{
	va_list ap;

	dk->problem = p;
	va_start(ap, fmt);
	vsnprintf(dk->detail, sizeof(dk->detail), fmt, ap);
	va_end(ap);
}

static enum hsm_key_type
key_type(const struct hsm_key *k)
{
	return strcmp(k->meta.alg, "rsa-sha256") == 0 ? HSM_KEY_RSA : HSM_KEY_ED25519;
}

/* ---- signing the test message ---- */

static int
test_message(const struct hsm_key *k, time_t now, struct dk_buf *out)
{
	const char *d = k->meta.domain;
	char date[64];
	struct tm tm;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		return DK_ERR_INTERNAL;
	return dk_buf_printf(out,
	    "From: dkimkeep drill <dkimkeep-drill@%s>\r\n"
	    "To: dkimkeep-drill@%s\r\n"
	    "Subject: dkimkeep key drill of standby key %s\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <drill.%lld.%s@%s>\r\n"
	    "\r\n"
	    "This test message was signed by \"dkimkeep key drill\" with the standby key\r\n"
	    "%s._domainkey.%s, to show that it can sign when the primary token fails.\r\n",
	    d, d, k->meta.selector, date, (long long)now, k->id_hex, d, k->meta.selector, d);
}

/*
 * Sign the test message with the standby key (RFC 6376 §5, relaxed/relaxed,
 * the domain's headers=): dk->digest, dk->sig and the signed dk->message.
 * A token that does not sign is the key's problem, not an error.
 */
static int
drill_sign(const struct dk_conf_domain *ds, struct drill_key *dk, time_t now)
{
	const struct hsm_key *k = &dk->ck->k;
	struct dkim_sig_params p;
	struct dkim_headers h;
	struct dkim_body body;
	struct dk_buf msg, val;
	size_t hdr_len = 0, body_off = 0;
	int r;

	memset(&h, 0, sizeof(h));
	memset(&p, 0, sizeof(p));
	dk_buf_init(&msg, MSG_MAX);
	dk_buf_init(&val, DKIM_SIG_VALUE_MAX);
	p.alg = key_type(k) == HSM_KEY_RSA ? DKIM_ALG_RSA_SHA256 : DKIM_ALG_ED25519_SHA256;
	p.hcanon = DKIM_CANON_RELAXED;
	p.bcanon = DKIM_CANON_RELAXED;
	p.domain = k->meta.domain;
	p.selector = k->meta.selector;
	p.timestamp = (int64_t)now;
	p.headers = ds->headers != NULL ? ds->headers : DK_CONF_DEFAULT_HEADERS;
	p.oversign = ds->oversign != NULL ? ds->oversign : DK_CONF_DEFAULT_OVERSIGN;
	if ((r = test_message(k, now, &msg)) != 0 ||
	    (r = dkim_header_end(msg.data, msg.len, &hdr_len, &body_off)) != 0 ||
	    (r = dkim_headers_parse(msg.data, hdr_len, &h)) != 0)
		goto out;
	if ((r = dkim_body_init(&body, p.bcanon)) != 0)
		goto out;
	if ((r = dkim_body_update(&body, msg.data + body_off, msg.len - body_off)) != 0 ||
	    (r = dkim_body_final(&body, p.bh)) != 0) {
		dkim_body_free(&body);
		goto out;
	}
	if ((r = dkim_sig_build(&h, &p, &val)) != 0 ||
	    (r = dkim_sig_digest(&h, &p, &val, dk->digest)) != 0)
		goto out;
	dk->sig_len = sizeof(dk->sig);
	if ((r = hsm_sign_digest(dk->ck->tok->s, k, dk->digest, dk->sig, &dk->sig_len)) != 0) {
		set_problem(dk, P_SIGN, "the token did not sign with it: %s",
		    dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
		r = 0;
		goto out;
	}
	if ((r = dkim_sig_finish(&val, dk->sig, dk->sig_len)) != 0 ||
	    (r = dk_buf_puts(&dk->message, DKIM_SIG_FIELD_NAME ":")) != 0 ||
	    (r = dk_buf_put(&dk->message, val.data, val.len)) != 0 ||
	    (r = dk_buf_puts(&dk->message, "\r\n")) != 0)
		goto out;
	r = dk_buf_put(&dk->message, msg.data, msg.len);
out:
	dkim_headers_free(&h);
	dk_buf_free(&msg);
	dk_buf_free(&val);
	return r;
}

/* ---- the record ---- */

/* The record to check: from DNS, or (offline) as "key dns" prints it. */
static int
drill_record(const struct drill_args *a, const struct dk_conf *c, struct drill_key *dk)
{
	const char *server = c->dns.resolver;
	const char *shown = server != NULL ? server : "the system resolver";
	struct rot_txt txt;
	int r;

	if (a->offline)
		return cli_dns_value(dk->ck->tok, &dk->ck->k, &dk->record);
	rot_txt_init(&txt);
	if ((r = rot_dns_txt(server, dk_buf_str(&dk->name), &txt)) != 0) {
		set_problem(dk, P_DNS, "%s", dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
		r = 0;
	} else if (txt.status != ROT_DNS_FOUND) {
		set_problem(dk, P_RECORD_MISSING,
		    "%s %s (asked %s); publish the record that \"dkimkeep key dns --domain %s\" "
		    "prints",
		    dk_buf_str(&dk->name),
		    txt.status == ROT_DNS_NXDOMAIN ? "does not exist (NXDOMAIN)"
		                                   : "has no TXT record",
		    shown, dk->ck->k.meta.domain);
	} else if (txt.n > 1) {
		set_problem(dk, P_BAD_RECORD,
		    "%s has %zu TXT records (asked %s); publish exactly one (RFC 6376 §3.6.2.2)",
		    dk_buf_str(&dk->name), txt.n, shown);
	} else {
		r = dk_buf_put(&dk->record, txt.v[0].data, txt.v[0].len);
	}
	rot_txt_free(&txt);
	return r;
}

struct tag {
	const char *name, *value;
	size_t nlen, vlen;
};

static int
is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
tag_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > TAG_NAME_MAX ||
	    !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return 0;
	for (i = 1; i < n; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		        (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	}
	return 1;
}

/* Split a tag-list (RFC 6376 §3.2) into tags; a reason in dk->detail when it is not one. */
static int
tag_list(struct drill_key *dk, struct tag *tags, size_t *n)
{
	const char *rec = dk_buf_str(&dk->record);
	size_t len = dk->record.len, i = 0, a, b, eq, j;

	*n = 0;
	while (i <= len) {
		for (a = i; i < len && rec[i] != ';'; i++)
			;
		b = i++;
		while (a < b && is_fws(rec[a]))
			a++;
		while (b > a && is_fws(rec[b - 1]))
			b--;
		if (a == b)
			continue; /* an empty tag-spec, as after a final ';' */
		for (eq = a; eq < b && rec[eq] != '='; eq++)
			;
		if (eq == b || *n == TAGS_MAX)
			goto bad;
		tags[*n].name = rec + a;
		for (tags[*n].nlen = eq - a;
		     tags[*n].nlen > 0 && is_fws(rec[a + tags[*n].nlen - 1]);)
			tags[*n].nlen--;
		for (eq++; eq < b && is_fws(rec[eq]); eq++)
			;
		tags[*n].value = rec + eq;
		tags[*n].vlen = b - eq;
		if (!tag_name_ok(tags[*n].name, tags[*n].nlen))
			goto bad;
		for (j = 0; j < *n; j++) {
			/* RFC 6376 §3.2: a duplicate tag makes the whole list invalid. */
			if (tags[j].nlen == tags[*n].nlen &&
			    memcmp(tags[j].name, tags[*n].name, tags[*n].nlen) == 0)
				goto bad;
		}
		(*n)++;
	}
	return 0;
bad:
	set_problem(dk, P_BAD_RECORD,
	    "the record of %s is not a DKIM tag list (tag=value; ..., each tag once): \"%.200s\"",
	    dk_buf_str(&dk->name), rec);
	return -1;
}

static const struct tag *
tag_find(const struct tag *tags, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (tags[i].nlen == strlen(name) && memcmp(tags[i].name, name, tags[i].nlen) == 0)
			return &tags[i];
	}
	return NULL;
}

/* Is word one of the colon-separated items of t (white space around items allowed)? */
static int
tag_has(const struct tag *t, const char *word)
{
	size_t i = 0, a, b, wl = strlen(word);

	while (i <= t->vlen) {
		for (a = i; i < t->vlen && t->value[i] != ':'; i++)
			;
		b = i++;
		while (a < b && is_fws(t->value[a]))
			a++;
		while (b > a && is_fws(t->value[b - 1]))
			b--;
		if (b - a == wl && strncasecmp(t->value + a, word, wl) == 0)
			return 1;
	}
	return 0;
}

/* A public key as DKIM publishes it: RSA SPKI (or PKCS#1), Ed25519 raw (RFC 8463 §4). */
static EVP_PKEY *
pkey_decode(enum hsm_key_type type, const uint8_t *p, size_t len)
{
	const unsigned char *q = p;
	EVP_PKEY *k;

	if (type == HSM_KEY_ED25519)
		return len == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, p, len)
		                 : NULL;
	if ((k = d2i_PUBKEY(NULL, &q, (long)len)) != NULL &&
	    (q != p + len || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA)) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	if (k == NULL) {
		q = p;
		if ((k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, (long)len)) != NULL &&
		    q != p + len) {
			EVP_PKEY_free(k);
			k = NULL;
		}
	}
	ERR_clear_error();
	return k;
}

/* The record's public key (RFC 6376 §3.6.1); NULL with dk->problem set when it has none. */
static EVP_PKEY *
record_key(struct drill_key *dk)
{
	enum hsm_key_type want = key_type(&dk->ck->k);
	const char *want_k = want == HSM_KEY_RSA ? "rsa" : "ed25519";
	struct tag tags[TAGS_MAX];
	const struct tag *t;
	struct dk_buf pub;
	EVP_PKEY *k = NULL;
	size_t n, i;
	const char *name = dk_buf_str(&dk->name);

	dk_buf_init(&pub, PUB_MAX);
	if (tag_list(dk, tags, &n) != 0)
		goto out;
	if ((t = tag_find(tags, n, "v")) != NULL &&
	    (t != &tags[0] || t->vlen != 5 || memcmp(t->value, "DKIM1", 5) != 0)) {
		set_problem(
		    dk, P_BAD_RECORD, "the record of %s has v= other than DKIM1 first", name);
		goto out;
	}
	t = tag_find(tags, n, "k");
	if (t != NULL ? !(t->vlen == strlen(want_k) && memcmp(t->value, want_k, t->vlen) == 0)
	              : want != HSM_KEY_RSA) {
		set_problem(dk, P_WRONG_KEY, "the record of %s has k=%.*s, the standby key is %s",
		    name, t != NULL ? (int)t->vlen : 3, t != NULL ? t->value : "rsa", want_k);
		goto out;
	}
	if ((t = tag_find(tags, n, "h")) != NULL && !tag_has(t, "sha256")) {
		set_problem(dk, P_BAD_RECORD, "h= of the record of %s does not allow sha256", name);
		goto out;
	}
	if ((t = tag_find(tags, n, "s")) != NULL && !tag_has(t, "*") && !tag_has(t, "email")) {
		set_problem(dk, P_BAD_RECORD, "s= of the record of %s excludes email", name);
		goto out;
	}
	if ((t = tag_find(tags, n, "p")) == NULL) {
		set_problem(dk, P_BAD_RECORD, "the record of %s has no p= tag", name);
		goto out;
	}
	for (i = 0; i < t->vlen && is_fws(t->value[i]); i++)
		;
	if (i == t->vlen) {
		set_problem(dk, P_REVOKED,
		    "the record of %s has an empty p=: the key is revoked (RFC 6376 §3.6.1)", name);
		goto out;
	}
	if (dk_b64_decode(&pub, t->value, t->vlen) != 0 ||
	    (k = pkey_decode(want, pub.data, pub.len)) == NULL)
		set_problem(dk, P_BAD_RECORD, "p= of the record of %s is not a %s public key", name,
		    want == HSM_KEY_RSA ? "base64 RSA" : "base64 32-byte Ed25519");
out:
	dk_buf_free(&pub);
	return k;
}

/* RSASSA-PKCS1-v1_5 over the SHA-256 DigestInfo, or Ed25519 over the 32 bytes (RFC 8463 §3). */
static int
sig_verifies(EVP_PKEY *pkey, enum hsm_key_type type, const struct drill_key *dk)
{
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *mctx = NULL;
	int ok;

	if (type == HSM_KEY_RSA)
		ok = (pctx = EVP_PKEY_CTX_new(pkey, NULL)) != NULL &&
		     EVP_PKEY_verify_init(pctx) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()) == 1 &&
		     EVP_PKEY_verify(pctx, dk->sig, dk->sig_len, dk->digest, sizeof(dk->digest)) ==
		         1;
	else
		ok = (mctx = EVP_MD_CTX_new()) != NULL &&
		     EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, pkey) == 1 &&
		     EVP_DigestVerify(mctx, dk->sig, dk->sig_len, dk->digest, sizeof(dk->digest)) ==
		         1;
	EVP_PKEY_CTX_free(pctx);
	EVP_MD_CTX_free(mctx);
	ERR_clear_error();
	return ok;
}

/* The record's key must be the token's, and the signature must verify with it. */
static int
drill_verify(struct drill_key *dk)
{
	enum hsm_key_type type = key_type(&dk->ck->k);
	EVP_PKEY *rec = NULL, *tok = NULL;
	struct dk_buf pub;
	int r = 0;

	dk_buf_init(&pub, PUB_MAX);
	if ((rec = record_key(dk)) == NULL)
		goto out;
	if ((r = hsm_key_public(dk->ck->tok->s, &dk->ck->k, &pub)) != 0)
		goto out;
	if ((tok = pkey_decode(type, pub.data, pub.len)) == NULL) {
		r = dk_err_set(DK_ERR_INTERNAL, "the token's public key of %s cannot be decoded",
		    dk_buf_str(&dk->name));
		goto out;
	}
	if (EVP_PKEY_eq(rec, tok) != 1)
		set_problem(dk, P_WRONG_KEY,
		    "the record of %s publishes another public key than the standby key %s in the "
		    "token; publish the record that \"dkimkeep key dns --domain %s\" prints",
		    dk_buf_str(&dk->name), dk->ck->k.id_hex, dk->ck->k.meta.domain);
	else if (!sig_verifies(rec, type, dk))
		set_problem(dk, P_SIG_MISMATCH,
		    "the token's signature with key %s does not verify with the published key; "
		    "the key pair in the token is damaged: generate a new standby key",
		    dk->ck->k.id_hex);
out:
	ERR_clear_error();
	EVP_PKEY_free(rec);
	EVP_PKEY_free(tok);
	dk_buf_free(&pub);
	return r;
}

/* ---- the report ---- */

static void
report_json(const struct drill_args *a, const struct dk_conf *c, const struct drill_key *dks,
    size_t n, const char *const *missing, size_t nmissing, int ok, struct dk_json *j)
{
	const struct drill_key *dk;
	size_t i;

	dk_json_obj_open(j, NULL);
	dk_json_str(j, "domain", a->domain);
	dk_json_str(j, "source", a->offline ? "offline" : "dns");
	if (!a->offline)
		dk_json_str(j, "resolver", c->dns.resolver != NULL ? c->dns.resolver : "system");
	dk_json_bool(j, "ok", ok);
	dk_json_arr_open(j, "missing");
	for (i = 0; i < nmissing; i++)
		dk_json_str(j, NULL, missing[i]);
	dk_json_arr_close(j);
	dk_json_arr_open(j, "keys");
	for (i = 0; i < n; i++) {
		dk = &dks[i];
		dk_json_obj_open(j, NULL);
		dk_json_str(j, "selector", dk->ck->k.meta.selector);
		dk_json_str(j, "alg", dk->ck->k.meta.alg);
		dk_json_str(j, "token", dk->ck->tok->conf->name);
		dk_json_str(j, "token_label", hsm_token_label(dk->ck->tok->t));
		dk_json_str(j, "key_id", dk->ck->k.id_hex);
		dk_json_str(j, "name", dk_buf_str(&dk->name));
		dk_json_bool(j, "ok", dk->problem == P_NONE);
		if (dk->problem != P_NONE) {
			dk_json_str(j, "problem", problem_names[dk->problem]);
			dk_json_str(j, "detail", dk->detail);
		}
		if (dk->record.len > 0)
			dk_json_str(j, "record", dk_buf_str(&dk->record));
		if (dk->message.len > 0)
			dk_json_str(j, "message", dk_buf_str(&dk->message));
		dk_json_obj_close(j);
	}
	dk_json_arr_close(j);
	dk_json_obj_close(j);
}

static int
report_text(const struct drill_args *a, const struct dk_conf *c, const struct drill_key *dks,
    size_t n, const char *const *missing, size_t nmissing, const char *backup, struct dk_buf *out)
{
	const struct drill_key *dk;
	size_t i, passed = 0;
	int r = 0;

	for (i = 0; i < n && r == 0; i++) {
		dk = &dks[i];
		passed += dk->problem == P_NONE;
		r = dk_buf_printf(out,
		    "standby key %s (%s, token %s \"%s\", key id %s): %s%s%s%s\n",
		    dk_buf_str(&dk->name), dk->ck->k.meta.alg, dk->ck->tok->conf->name,
		    hsm_token_label(dk->ck->tok->t), dk->ck->k.id_hex,
		    dk->problem == P_NONE ? "ok" : "FAILED: ",
		    dk->problem == P_NONE ? "" : problem_text[dk->problem],
		    dk->problem == P_NONE ? "" : ": ", dk->detail);
	}
	for (i = 0; i < nmissing && r == 0; i++)
		r = dk_buf_printf(out,
		    "no standby %s key for %s on token %s: FAILED: a failing primary token stops "
		    "this algorithm's signatures; run \"dkimkeep key generate --domain %s --alg %s "
		    "--slot backup\"\n",
		    missing[i], a->domain, backup, a->domain, missing[i]);
	if (r == 0)
		r = dk_buf_printf(out,
		    "drill of %s: %zu of %zu standby keys can take over (records %s%s)\n",
		    a->domain, passed, n,
		    a->offline ? "as \"dkimkeep key dns\" prints them" : "from DNS at ",
		    a->offline                ? ""
		    : c->dns.resolver != NULL ? c->dns.resolver
		                              : "the system resolver");
	return r;
}

/* ---- the command ---- */

static int
drill_parse(int argc, char **argv, struct drill_args *a)
{
	enum { O_DOMAIN = 1000, O_JSON, O_OFFLINE };
	static const struct option longopts[] = {{"domain", required_argument, NULL, O_DOMAIN},
	    {"json", no_argument, NULL, O_JSON}, {"offline", no_argument, NULL, O_OFFLINE},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			a->conf_path = optarg;
			break;
		case 'h':
			fputs(drill_usage, stdout);
			return EX_OK;
		case O_DOMAIN:
			a->domain = optarg;
			break;
		case O_JSON:
			a->json = 1;
			break;
		case O_OFFLINE:
			a->offline = 1;
			break;
		default:
			return cli_fail(DK_ERR_USAGE,
			    "key drill: bad option \"%s\"; see \"dkimkeep key drill --help\"",
			    argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cli_fail(DK_ERR_USAGE,
		    "key drill takes no argument \"%s\"; see \"dkimkeep key drill --help\"",
		    argv[optind]);
	if (a->domain == NULL)
		return cli_fail(
		    DK_ERR_USAGE, "key drill needs --domain D; see \"dkimkeep key drill --help\"");
	return -1;
}

/* The standby keys of domain on the backup token, and the algorithms that have none. */
static int
drill_keys(const struct dk_conf_domain *ds, const char *domain, struct cli_keys *ks,
    const char **missing, size_t *nmissing)
{
	static const char *const algs[] = {"rsa-sha256", "ed25519-sha256"};
	static const unsigned bits[] = {DK_CONF_ALG_RSA_SHA256, DK_CONF_ALG_ED25519_SHA256};
	size_t i, j, kept = 0;
	int have;

	for (i = 0; i < ks->n; i++) {
		if (strcasecmp(ks->v[i].k.meta.domain, domain) == 0 &&
		    strcmp(ks->v[i].k.meta.slot, "backup") == 0 &&
		    strcmp(ks->v[i].k.meta.state, "standby") == 0)
			ks->v[kept++] = ks->v[i];
	}
	ks->n = kept;
	cli_keys_sort(ks);
	*nmissing = 0;
	for (j = 0; j < 2; j++) {
		if (!(ds->algs & bits[j]))
			continue;
		for (i = 0, have = 0; i < ks->n && !have; i++)
			have = strcmp(ks->v[i].k.meta.alg, algs[j]) == 0;
		if (!have)
			missing[(*nmissing)++] = algs[j];
	}
	return 0;
}

static int
drill_run(const struct drill_args *a, const struct dk_conf *c, const struct dk_conf_domain *ds,
    struct drill_key *dks, size_t n)
{
	time_t now = time(NULL);
	size_t i;
	int r = 0;

	for (i = 0; i < n && r == 0; i++) {
		if ((r = rot_rec_name(&dks[i].ck->k.meta, &dks[i].name)) != 0 ||
		    (r = drill_sign(ds, &dks[i], now)) != 0 || dks[i].problem != P_NONE)
			continue;
		if ((r = drill_record(a, c, &dks[i])) != 0 || dks[i].problem != P_NONE)
			continue;
		r = drill_verify(&dks[i]);
	}
	return r;
}

int
cli_drill_main(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct drill_args a = {.conf_path = ctx->conf_path};
	char domain[HSM_DOMAIN_MAX + 1];
	const char *missing[2];
	const struct dk_conf_domain *ds;
	struct dk_conf *c = NULL;
	struct cli_toks ts;
	struct cli_keys ks = {NULL, 0};
	struct cli_tok *tok;
	struct drill_key *dks = NULL;
	struct dk_buf out;
	struct dk_json j;
	size_t i, nmissing = 0, failed = 0, nkeys = 0;
	int code, r;

	if ((code = drill_parse(argc, argv, &a)) >= 0)
		return code;
	dk_buf_init(&out, OUT_MAX);
	cli_toks_init(&ts, NULL);
	if ((r = cli_conf_load(a.conf_path, &c)) != 0 ||
	    (r = cli_domain_norm(a.domain, domain, sizeof(domain))) != 0)
		goto out;
	a.domain = domain;
	cli_toks_init(&ts, c);
	if ((ds = dk_conf_domain(c, domain)) == NULL || strcmp(ds->name, domain) != 0) {
		r = dk_err_set(DK_ERR_CONFIG,
		    "domain %s is not configured in %s: add a [domain %s] section", domain, c->path,
		    domain);
		goto out;
	}
	if (ds->backup == NULL) {
		r = dk_err_set(DK_ERR_CONFIG,
		    "%s:%d: [domain %s] has no backup= token, so it has no standby keys to drill; "
		    "add one and run \"dkimkeep key generate --domain %s --alg A --slot backup\"",
		    c->path, ds->line, domain, domain);
		goto out;
	}
	if ((r = cli_toks_get(&ts, ds->backup, &tok)) != 0 || (r = cli_keys_load(&ks, tok)) != 0 ||
	    (r = drill_keys(ds, domain, &ks, missing, &nmissing)) != 0)
		goto out;
	if ((dks = calloc(ks.n + 1, sizeof(*dks))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < ks.n; i++) {
		dks[i].ck = &ks.v[i];
		dk_buf_init(&dks[i].name, 512);
		dk_buf_init(&dks[i].record, ROT_REC_VALUE_MAX);
		dk_buf_init(&dks[i].message, MSG_MAX + DKIM_SIG_VALUE_MAX);
	}
	if ((r = drill_run(&a, c, ds, dks, ks.n)) != 0)
		goto out;
	nkeys = ks.n;
	for (i = 0; i < ks.n; i++)
		failed += dks[i].problem != P_NONE;
	if (a.json) {
		dk_json_init(&j, &out);
		report_json(&a, c, dks, ks.n, missing, nmissing,
		    ks.n > 0 && failed == 0 && nmissing == 0, &j);
		if ((r = dk_json_finish(&j)) != 0 || (r = dk_buf_putc(&out, '\n')) != 0)
			goto out;
	} else if ((r = report_text(&a, c, dks, ks.n, missing, nmissing, ds->backup, &out)) != 0) {
		goto out;
	}
	fputs(dk_buf_str(&out), stdout);
out:
	for (i = 0; dks != NULL && i < ks.n; i++) {
		dk_buf_free(&dks[i].name);
		dk_buf_free(&dks[i].record);
		dk_buf_free(&dks[i].message);
	}
	free(dks);
	dk_buf_free(&out);
	cli_keys_free(&ks);
	cli_toks_close(&ts);
	dk_conf_free(c);
	if (r != 0)
		return cli_fail(r, "%s", dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
	if (nkeys == 0 || failed > 0 || nmissing > 0) {
		fprintf(stderr,
		    "dkimkeep: drill of %s failed: %zu of %zu standby keys cannot take over%s; see "
		    "the report on stdout\n",
		    domain, failed, nkeys, nmissing > 0 ? " and an algorithm has none" : "");
		return DRILL_FAILED;
	}
	return EX_OK;
}
