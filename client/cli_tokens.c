/*
 * cli_tokens.c - configured tokens, their keys and DNS records, for the
 * token and key commands.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/cli_tokens.h"
#include "common/dk_b64.h"
#include "common/dk_err.h"
#include "common/dk_json.h"
#include "common/dk_time.h"
#include "rotate/rot_record.h"

#define DETAIL_MAX  1024
#define DNS_TXT_MAX 4096 /* bytes of one TXT value; an RSA-4096 p= is about 740 */
#define DNS_CHUNK   255  /* RFC 1035 §3.3: one character-string */

void
cli_warn(const char *fmt, ...)
{
	va_list ap;

	fputs("dkimkeep: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
cli_err_prefix(int r, const char *fmt, ...)
{
	char prefix[DETAIL_MAX], detail[DETAIL_MAX];
	va_list ap;

	/* Copy first: the detail is the buffer dk_err_set writes into. */
	snprintf(detail, sizeof(detail), "%s", dk_err_detail());
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	return dk_err_set(r, "%s: %s", prefix, detail);
}

int
cli_conf_load(const char *path, struct dk_conf **out)
{
	char detail[DETAIL_MAX];
	int r;

	*out = NULL;
	if ((r = dk_conf_load(path, out)) == 0 || r == DK_ERR_NOMEM)
		return r;
	snprintf(detail, sizeof(detail), "%s", dk_err_detail());
	if (detail[0] == '\0')
		return dk_err_set(DK_ERR_CONFIG, "cannot load %s: %s; give the file with -c FILE",
		    path, dk_strerror(r));
	return dk_err_set(DK_ERR_CONFIG, "%s", detail);
}

void
cli_toks_init(struct cli_toks *ts, const struct dk_conf *conf)
{
	memset(ts, 0, sizeof(*ts));
	ts->conf = conf;
}

/* Prefix the current detail with where the token is configured, and add a hint. */
static int
tok_fail(const struct cli_toks *ts, const struct dk_conf_token *ct, int r, const char *hint)
{
	char detail[DETAIL_MAX];

	snprintf(detail, sizeof(detail), "%s", dk_err_detail());
	return dk_err_set(
	    r, "%s:%d: [token %s]: %s%s", ts->conf->path, ct->line, ct->name, detail, hint);
}

static int
tok_open(struct cli_toks *ts, const struct dk_conf_token *ct, struct cli_tok *tok)
{
	int r;

	memset(tok, 0, sizeof(*tok));
	tok->conf = ct;
	if ((r = dk_conf_token_setenv(ct)) != 0 || (r = hsm_module_open(ct->module, &tok->m)) != 0)
		return tok_fail(ts, ct, r, "");
	if ((r = hsm_token_open(tok->m, ct->uri, &tok->t)) != 0)
		return tok_fail(ts, ct, r,
		    r == DK_ERR_TOKEN_NOT_FOUND
		        ? "; check uri= there, or run \"dkimkeep token list\" (\"dkimkeep token "
		          "init\" makes a new token)"
		        : "");
	if ((r = hsm_token_login(tok->t, ct->pin_file)) != 0) {
		/* The PIN file itself is wrong (missing, unsafe mode): a config problem. */
		if (r == DK_ERR_PERM || r == DK_ERR_IO || r == DK_ERR_PIN_INVALID)
			r = DK_ERR_CONFIG;
		return tok_fail(ts, ct, r, "");
	}
	if ((r = hsm_session_open(tok->t, &tok->s)) != 0)
		return tok_fail(ts, ct, r, "");
	return 0;
}

static void
tok_close(struct cli_tok *tok)
{
	hsm_session_close(tok->s);
	hsm_token_close(tok->t);
	hsm_module_close(tok->m);
	memset(tok, 0, sizeof(*tok));
}

int
cli_toks_get(struct cli_toks *ts, const char *name, struct cli_tok **out)
{
	const struct dk_conf_token *ct;
	size_t i;
	int r;

	*out = NULL;
	for (i = 0; i < ts->n; i++) {
		if (strcmp(ts->v[i].conf->name, name) == 0) {
			*out = &ts->v[i];
			return 0;
		}
	}
	if ((ct = dk_conf_token(ts->conf, name)) == NULL)
		return dk_err_set(DK_ERR_CONFIG,
		    "%s has no [token %s] section; add one with module=, "
		    "uri= and pin_file=",
		    ts->conf->path, name);
	if (ts->n >= DK_CONF_MAX_TOKENS)
		return DK_ERR_TOO_LARGE;
	if ((r = tok_open(ts, ct, &ts->v[ts->n])) != 0) {
		tok_close(&ts->v[ts->n]);
		return r;
	}
	*out = &ts->v[ts->n++];
	return 0;
}

void
cli_toks_close(struct cli_toks *ts)
{
	size_t i;

	for (i = 0; i < ts->n; i++)
		tok_close(&ts->v[i]);
	ts->n = 0;
}

/* Is key k of token tok already in ks (the same token under another name)? */
static int
keys_have(const struct cli_keys *ks, const struct cli_tok *tok, const struct hsm_key *k)
{
	size_t i;

	for (i = 0; i < ks->n; i++) {
		if (memcmp(ks->v[i].k.id, k->id, HSM_KEY_ID_LEN) == 0 &&
		    strcmp(hsm_token_serial(ks->v[i].tok->t), hsm_token_serial(tok->t)) == 0 &&
		    strcmp(hsm_token_label(ks->v[i].tok->t), hsm_token_label(tok->t)) == 0)
			return 1;
	}
	return 0;
}

static int
keys_load(struct cli_keys *ks, struct cli_tok *tok, int gone)
{
	struct hsm_key *keys = NULL;
	struct cli_key *nv;
	size_t n = 0, i;
	int r;

	r = gone ? hsm_key_list_all(tok->s, &keys, &n) : hsm_key_list(tok->s, &keys, &n);
	if (r != 0)
		return r;
	if ((nv = reallocarray(ks->v, ks->n + n + 1, sizeof(*nv))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	ks->v = nv;
	for (i = 0; i < n; i++) {
		if (keys_have(ks, tok, &keys[i]))
			continue;
		ks->v[ks->n].k = keys[i];
		ks->v[ks->n].tok = tok;
		ks->n++;
	}
	r = 0;
out:
	free(keys);
	return r;
}

int
cli_key_vanished(struct cli_tok *tok, const struct hsm_key *k)
{
	struct hsm_key *keys = NULL;
	size_t n = 0, i;
	int gone = 0;

	if (hsm_key_list(tok->s, &keys, &n) == 0) {
		gone = 1;
		for (i = 0; i < n && gone; i++)
			gone = memcmp(keys[i].id, k->id, HSM_KEY_ID_LEN) != 0;
	}
	free(keys);
	return gone;
}

int
cli_keys_load(struct cli_keys *ks, struct cli_tok *tok)
{
	return keys_load(ks, tok, 0);
}

static int
key_cmp(const void *a, const void *b)
{
	const struct hsm_key_meta *x = &((const struct cli_key *)a)->k.meta;
	const struct hsm_key_meta *y = &((const struct cli_key *)b)->k.meta;
	int c;

	if ((c = strcmp(x->domain, y->domain)) != 0 || (c = strcmp(x->alg, y->alg)) != 0 ||
	    (c = strcmp(x->slot, y->slot)) != 0)
		return c;
	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->selector, y->selector);
}

void
cli_keys_sort(struct cli_keys *ks)
{
	if (ks->n > 1)
		qsort(ks->v, ks->n, sizeof(ks->v[0]), key_cmp);
}

void
cli_keys_free(struct cli_keys *ks)
{
	free(ks->v);
	ks->v = NULL;
	ks->n = 0;
}

/* Keep only the keys of domain. */
static void
keys_filter(struct cli_keys *ks, const char *domain)
{
	size_t i, kept = 0;

	for (i = 0; i < ks->n; i++) {
		if (strcasecmp(ks->v[i].k.meta.domain, domain) == 0)
			ks->v[kept++] = ks->v[i];
	}
	ks->n = kept;
}

static int
keys_gather(struct cli_toks *ts, const char *domain, struct cli_keys *ks, int gone)
{
	const struct dk_conf_domain *ds;
	struct cli_tok *tok;
	const char *names[2];
	size_t i;
	int r;

	if (domain == NULL) {
		for (i = 0; i < ts->conf->ntokens; i++) {
			if ((r = cli_toks_get(ts, ts->conf->tokens[i].name, &tok)) != 0 ||
			    (r = keys_load(ks, tok, gone)) != 0)
				return r;
		}
		return 0;
	}
	if ((ds = dk_conf_domain(ts->conf, domain)) == NULL)
		return dk_err_set(DK_ERR_CONFIG,
		    "domain %s is not configured in %s: add a [domain %s] section", domain,
		    ts->conf->path, domain);
	names[0] = ds->primary;
	names[1] = ds->backup;
	for (i = 0; i < 2; i++) {
		if (names[i] == NULL)
			continue;
		if ((r = cli_toks_get(ts, names[i], &tok)) != 0 ||
		    (r = keys_load(ks, tok, gone)) != 0)
			return r;
	}
	keys_filter(ks, domain);
	return 0;
}

int
cli_keys_gather(struct cli_toks *ts, const char *domain, struct cli_keys *ks)
{
	return keys_gather(ts, domain, ks, 0);
}

int
cli_keys_gather_all(struct cli_toks *ts, const char *domain, struct cli_keys *ks)
{
	return keys_gather(ts, domain, ks, 1);
}

int
cli_dns_value(struct cli_tok *tok, const struct hsm_key *k, struct dk_buf *out)
{
	return rot_rec_value(tok->s, k, strcmp(k->meta.state, "revoked") == 0, out);
}

int
cli_dns_quoted(const char *value, struct dk_buf *out)
{
	size_t len = strlen(value), off = 0, n;
	int r = 0;

	if (len == 0)
		return dk_buf_puts(out, "\"\"");
	while (off < len && r == 0) {
		n = len - off > DNS_CHUNK ? DNS_CHUNK : len - off;
		if ((r = dk_buf_puts(out, off > 0 ? " \"" : "\"")) == 0 &&
		    (r = dk_buf_put(out, value + off, n)) == 0)
			r = dk_buf_putc(out, '"');
		off += n;
	}
	return r;
}

int
cli_dns_line(struct cli_tok *tok, const struct hsm_key *k, struct dk_buf *out)
{
	struct dk_buf value;
	int r;

	dk_buf_init(&value, DNS_TXT_MAX);
	if ((r = cli_dns_value(tok, k, &value)) == 0 && (r = rot_rec_name(&k->meta, out)) == 0 &&
	    (r = dk_buf_puts(out, " IN TXT ")) == 0)
		r = cli_dns_quoted(dk_buf_str(&value), out);
	dk_buf_free(&value);
	return r;
}

int
cli_domain_norm(const char *in, char *out, size_t outlen)
{
	size_t n = strlen(in), i;

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n >= outlen || n > HSM_DOMAIN_MAX)
		return dk_err_set(DK_ERR_USAGE, "\"%s\" is not a domain name", in);
	for (i = 0; i < n; i++) {
		char c = (char)tolower((unsigned char)in[i]);

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		        c == '.') ||
		    (c == '.' && (i == 0 || out[i - 1] == '.')))
			return dk_err_set(DK_ERR_USAGE, "\"%s\" is not a domain name", in);
		out[i] = c;
	}
	out[n] = '\0';
	return 0;
}

/* ---- JSON ---- */

void
cli_key_json(struct dk_json *j, const char *key, const struct cli_key *ck, int checked, int usable,
    int weak, const char *why)
{
	const struct hsm_key *k = &ck->k;
	struct dk_buf uri;
	char t[32];

	dk_buf_init(&uri, 1024);
	dk_json_obj_open(j, key);
	dk_json_str(j, "domain", k->meta.domain);
	dk_json_str(j, "alg", k->meta.alg);
	dk_json_str(j, "selector", k->meta.selector);
	dk_json_str(j, "slot", k->meta.slot);
	dk_json_str(j, "state", k->meta.state);
	dk_json_str(j, "token", ck->tok->conf->name);
	dk_json_str(j, "token_label", hsm_token_label(ck->tok->t));
	dk_time_rfc3339((time_t)k->meta.created, t, sizeof(t));
	dk_json_str(j, "created", t);
	dk_time_rfc3339((time_t)k->meta.changed, t, sizeof(t));
	dk_json_str(j, "changed", t);
	if (k->type == HSM_KEY_RSA)
		dk_json_uint(j, "bits", k->bits);
	dk_json_str(j, "key_id", k->id_hex);
	if (hsm_key_uri(ck->tok->t, k, &uri) == 0)
		dk_json_str(j, "uri", dk_buf_str(&uri));
	if (checked) {
		dk_json_bool(j, "usable", usable);
		dk_json_bool(j, "weak", weak);
		if (!usable)
			dk_json_str(j, "problem", why);
	}
	dk_json_obj_close(j);
	dk_buf_free(&uri);
}

/* The DNS record of a key as a JSON object. */
int
cli_dns_json(struct dk_json *j, const char *key, const struct cli_key *ck)
{
	struct dk_buf name, value;
	int r;

	dk_buf_init(&name, 512);
	dk_buf_init(&value, 4096);
	if ((r = rot_rec_name(&ck->k.meta, &name)) == 0 &&
	    (r = cli_dns_value(ck->tok, &ck->k, &value)) == 0) {
		dk_json_obj_open(j, key);
		dk_json_str(j, "name", dk_buf_str(&name));
		dk_json_str(j, "type", "TXT");
		dk_json_str(j, "value", dk_buf_str(&value));
		dk_json_str(j, "state", ck->k.meta.state);
		dk_json_str(j, "domain", ck->k.meta.domain);
		dk_json_str(j, "selector", ck->k.meta.selector);
		dk_json_str(j, "alg", ck->k.meta.alg);
		dk_json_obj_close(j);
	}
	dk_buf_free(&name);
	dk_buf_free(&value);
	return r;
}
