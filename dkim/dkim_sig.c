/*
 * dkim_sig.c - algorithm names (RFC 8301, RFC 8463), the DKIM-Signature
 * field (RFC 6376 §3.5) and the header hash that the key signs (§3.7).
 *
 * The value starts with a single SP: the field is "DKIM-Signature:" and the
 * value with nothing in between, exactly as it is hashed.  Lines are at most
 * DKIM_SIG_COLS columns with the TAB of a fold taken to the next tab stop,
 * so also at most DKIM_SIG_COLS characters (RFC 5322 §2.1.1) however a
 * reader counts.  Folds are CRLF + TAB and fall only between tags, after a
 * colon of h= and inside base64.  A d=, s= or i= longer than a line is left
 * whole.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "common/dk_b64.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "dkim/dkim.h"
#include "dkim/dkim_int.h"

#define SIG_NAME_LEN (sizeof(DKIM_SIG_FIELD_NAME ":") - 1)
#define SIG_MAX      1024 /* signature bytes: RSA up to 8192 bits */
#define IDENTITY_MAX 512
#define FOLD_COLS    8 /* the TAB that starts a continuation line, as displayed */

static const struct {
	enum dkim_alg alg;
	const char *name;
	const char *keytype;
} alg_table[] = {
    {DKIM_ALG_RSA_SHA256, "rsa-sha256", "rsa"},
    {DKIM_ALG_ED25519_SHA256, "ed25519-sha256", "ed25519"},
};

#define ALG_COUNT (sizeof(alg_table) / sizeof(alg_table[0]))

const char *
dkim_alg_name(enum dkim_alg alg)
{
	size_t i;

	for (i = 0; i < ALG_COUNT; i++) {
		if (alg_table[i].alg == alg)
			return alg_table[i].name;
	}
	return NULL;
}

const char *
dkim_alg_keytype(enum dkim_alg alg)
{
	size_t i;

	for (i = 0; i < ALG_COUNT; i++) {
		if (alg_table[i].alg == alg)
			return alg_table[i].keytype;
	}
	return NULL;
}

int
dkim_alg_parse(const char *name, enum dkim_alg *alg)
{
	size_t i;
	int r = DK_ERR_INVALID;

	if (name == NULL)
		goto out;
	for (i = 0; i < ALG_COUNT; i++) {
		if (strcasecmp(name, alg_table[i].name) == 0) {
			*alg = alg_table[i].alg;
			r = 0;
			goto out;
		}
	}
out:
	if (r != 0 && name != NULL && strcasecmp(name, "rsa-sha1") == 0)
		dk_err_set(r, "algorithm rsa-sha1 is not allowed (RFC 8301): use rsa-sha256");
	else if (r != 0)
		dk_err_set(r, "unknown algorithm \"%.64s\": use rsa-sha256 or ed25519-sha256",
		    name != NULL ? name : "");
	return r;
}

/* --- colon lists (h=, headers =, oversign =) --- */

struct list_it {
	const char *s;
	size_t len;
	size_t pos;
};

static int
is_fws(int c)
{
	return dkim_is_wsp(c) || c == '\r' || c == '\n';
}

static void
trim_fws(const char *s, size_t *a, size_t *b)
{
	while (*a < *b && is_fws((unsigned char)s[*a]))
		(*a)++;
	while (*b > *a && is_fws((unsigned char)s[*b - 1]))
		(*b)--;
}

/* A list of nothing but white space has no elements. */
static void
list_init(struct list_it *it, const char *s)
{
	size_t a = 0, b;

	it->s = s != NULL ? s : "";
	it->len = strlen(it->s);
	b = it->len;
	trim_fws(it->s, &a, &b);
	it->pos = a == b ? it->len + 1 : 0;
}

/* The next element, white space trimmed (possibly empty); 0 at the end. */
static int
list_next(struct list_it *it, const char **e, size_t *elen)
{
	const char *colon;
	size_t a, b;

	if (it->pos > it->len)
		return 0;
	a = it->pos;
	colon = memchr(it->s + a, ':', it->len - a);
	b = colon != NULL ? (size_t)(colon - it->s) : it->len;
	it->pos = b + 1;
	trim_fws(it->s, &a, &b);
	*e = it->s + a;
	*elen = b - a;
	return 1;
}

/* A header name for h=: ftext, and no ';' that would end the tag. */
static int
hname_check(const char *e, size_t n)
{
	size_t i;
	int r = 0;

	if (n == 0 || n > DKIM_HEADER_NAME_MAX)
		r = DK_ERR_INVALID;
	for (i = 0; i < n && r == 0; i++) {
		if (!dkim_is_ftext((unsigned char)e[i]) || e[i] == ';')
			r = DK_ERR_INVALID;
	}
	if (r != 0)
		dk_err_set(r, "bad header field name \"%.*s\" in a header list",
		    (int)(n > 64 ? 64 : n), e);
	return r;
}

/* Did an element before it->pos's current one name the same field? */
static int
list_seen(const struct list_it *it, const char *e, size_t n)
{
	struct list_it p;
	const char *x;
	size_t xn;

	list_init(&p, it->s);
	while (list_next(&p, &x, &xn) && x < e) {
		if (dkim_name_eq(x, xn, e, n))
			return 1;
	}
	return 0;
}

static size_t
field_count(const struct dkim_headers *h, const char *name, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < h->n; i++)
		c += (size_t)dkim_name_eq(h->fields[i].name, h->fields[i].name_len, name, n);
	return c;
}

/* Append name (lower-cased) times times to the h= list in hl. */
static int
hl_add(struct dk_buf *hl, size_t *count, const char *name, size_t n, size_t times)
{
	size_t k, i;
	int r = 0;

	for (k = 0; k < times && r == 0; k++) {
		if (*count == DKIM_HLIST_MAX) {
			r = dk_err_set(DK_ERR_MSG_TOO_MANY_HEADERS,
			    "more than %d header fields to sign", DKIM_HLIST_MAX);
			break;
		}
		if (hl->len > 0)
			r = dk_buf_putc(hl, ':');
		for (i = 0; i < n && r == 0; i++)
			r = dk_buf_putc(hl, (uint8_t)dkim_lower((unsigned char)name[i]));
		(*count)++;
	}
	return r;
}

/* Does the colon list s name From? */
static int
list_has_from(const char *s)
{
	struct list_it it;
	const char *e;
	size_t n;

	list_init(&it, s);
	while (list_next(&it, &e, &n)) {
		if (dkim_name_eq(e, n, "from", 4))
			return 1;
	}
	return 0;
}

/* The names of one config list: each present one as often as it occurs (extra: once more). */
static int
hl_add_list(
    const struct dkim_headers *h, const char *list, int extra, struct dk_buf *hl, size_t *count)
{
	struct list_it it;
	const char *e;
	size_t n, times;
	int r = 0;

	list_init(&it, list);
	while (r == 0 && list_next(&it, &e, &n)) {
		if ((r = hname_check(e, n)) != 0)
			break;
		if (list_seen(&it, e, n))
			continue;
		times = extra ? 1 : field_count(h, e, n);
		if (!extra && times == 0 && dkim_name_eq(e, n, "from", 4))
			times = 1;
		r = hl_add(hl, count, e, n, times);
	}
	return r;
}

/* RFC 6376 §5.4, §5.4.2: the h= list, From always in it. */
static int
hlist_build(const struct dkim_headers *h, const struct dkim_sig_params *p, struct dk_buf *hl)
{
	size_t count = 0, nfrom;
	int r = 0;

	if (!list_has_from(p->headers)) {
		nfrom = field_count(h, "from", 4);
		r = hl_add(hl, &count, "from", 4, nfrom > 0 ? nfrom : 1);
	}
	if (r == 0)
		r = hl_add_list(h, p->headers, 0, hl, &count);
	if (r == 0)
		r = hl_add_list(h, p->oversign, 1, hl, &count);
	return r;
}

/* --- folded output --- */

struct sig_out {
	struct dk_buf *b;
	size_t col; /* characters on the current line */
};

static int
out_put(struct sig_out *o, const char *s, size_t n)
{
	o->col += n;
	return dk_buf_put(o->b, s, n);
}

static int
out_fold(struct sig_out *o)
{
	o->col = FOLD_COLS;
	return dk_buf_put(o->b, "\r\n\t", 3);
}

/* A word that may follow the previous one directly, or after a fold. */
static int
out_word(struct sig_out *o, const char *s, size_t n)
{
	int r = 0;

	if (o->col + n > DKIM_SIG_COLS)
		r = out_fold(o);
	if (r == 0)
		r = out_put(o, s, n);
	return r;
}

/* A tag: after a space on this line if it fits, else at the start of the next. */
static int
out_tag(struct sig_out *o, const char *s, size_t n)
{
	int r;

	if (o->col + 1 + n > DKIM_SIG_COLS)
		r = out_fold(o);
	else
		r = out_put(o, " ", 1);
	if (r == 0)
		r = out_put(o, s, n);
	return r;
}

/* Base64 text, folded anywhere; tail bytes that follow must fit on its last line. */
static int
out_b64(struct sig_out *o, const char *s, size_t n, size_t tail)
{
	size_t i, need;
	int r = 0;

	for (i = 0; i < n && r == 0; i++) {
		need = 1 + (i + 1 == n ? tail : 0);
		if (o->col + need > DKIM_SIG_COLS)
			r = out_fold(o);
		if (r == 0)
			r = out_put(o, s + i, 1);
	}
	return r;
}

/* h=a:b:c; with folds after colons. */
static int
out_hlist(struct sig_out *o, const struct dk_buf *hl, struct dk_buf *tmp)
{
	const char *s = dk_buf_str(hl), *colon;
	size_t a = 0, b;
	int r = 0;

	while (a < hl->len && r == 0) {
		colon = memchr(s + a, ':', hl->len - a);
		b = colon != NULL ? (size_t)(colon - s) + 1 : hl->len;
		dk_buf_reset(tmp);
		if (a == 0)
			r = dk_buf_put(tmp, "h=", 2);
		if (r == 0)
			r = dk_buf_put(tmp, s + a, b - a);
		if (r == 0 && colon == NULL)
			r = dk_buf_putc(tmp, ';');
		if (r == 0 && a == 0)
			r = out_tag(o, dk_buf_str(tmp), tmp->len);
		else if (r == 0)
			r = out_word(o, dk_buf_str(tmp), tmp->len);
		a = b;
	}
	return r;
}

/* bh=...; whole if it fits on a line, else folded inside the base64. */
static int
out_bh(struct sig_out *o, const uint8_t bh[DKIM_DIGEST_LEN], struct dk_buf *tmp)
{
	size_t n;
	int r;

	dk_buf_reset(tmp);
	if ((r = dk_buf_put(tmp, "bh=", 3)) != 0 ||
	    (r = dk_b64_encode(tmp, bh, DKIM_DIGEST_LEN)) != 0 || (r = dk_buf_putc(tmp, ';')) != 0)
		goto out;
	n = tmp->len;
	if (FOLD_COLS + n <= DKIM_SIG_COLS) {
		r = out_tag(o, dk_buf_str(tmp), n);
		goto out;
	}
	if ((r = out_tag(o, "bh=", 3)) != 0)
		goto out;
	if ((r = out_b64(o, dk_buf_str(tmp) + 3, n - 4, 1)) != 0)
		goto out;
	r = out_put(o, ";", 1);
out:
	return r;
}

/* --- parameters --- */

/* i=: local-part in dkim-quoted-printable, domain d= or below it (RFC 6376 §3.5). */
static int
identity_put(struct dk_buf *t, const char *id, const char *domain)
{
	const char *at;
	size_t i, ll, dl, nd = strlen(domain);
	int c, r = 0;

	if (strlen(id) > IDENTITY_MAX || (at = strrchr(id, '@')) == NULL)
		goto bad;
	ll = (size_t)(at - id);
	dl = strlen(at + 1);
	if (!dkim_domain_ok(at + 1, dl, 0))
		goto bad;
	if (!(dl == nd || (dl > nd && at[dl - nd] == '.')) ||
	    !dkim_name_eq(at + 1 + dl - nd, nd, domain, nd))
		goto bad;
	if ((r = dk_buf_put(t, "i=", 2)) != 0)
		goto out;
	for (i = 0; i < ll && r == 0; i++) {
		c = (unsigned char)id[i];
		if (c < 0x21 || c > 0x7e)
			goto bad;
		if (c == ';' || c == '=')
			r = dk_buf_printf(t, "=%02X", (unsigned int)c);
		else
			r = dk_buf_putc(t, (uint8_t)c);
	}
	if (r == 0)
		r = dk_buf_printf(t, "%s;", at);
	goto out;
bad:
	r = dk_err_set(DK_ERR_INVALID,
	    "identity \"%.128s\" is not user@domain with the domain %s or a subdomain of it", id,
	    domain);
out:
	return r;
}

static int
params_check(const struct dkim_sig_params *p)
{
	int r = DK_ERR_INVALID;

	if (dkim_alg_name(p->alg) == NULL)
		dk_err_set(r, "unknown algorithm %d", (int)p->alg);
	else if ((p->hcanon != DKIM_CANON_SIMPLE && p->hcanon != DKIM_CANON_RELAXED) ||
	         (p->bcanon != DKIM_CANON_SIMPLE && p->bcanon != DKIM_CANON_RELAXED))
		dk_err_set(r, "unknown canonicalization");
	else if (p->domain == NULL || !dkim_domain_ok(p->domain, strlen(p->domain), 0))
		dk_err_set(r, "bad signing domain \"%.256s\"", p->domain ? p->domain : "");
	else if (p->selector == NULL || !dkim_domain_ok(p->selector, strlen(p->selector), 1))
		dk_err_set(r, "bad selector \"%.256s\"", p->selector ? p->selector : "");
	else if (p->timestamp < -1 || p->expire < 0)
		dk_err_set(r, "negative timestamp or expiry");
	else if (p->expire > 0 && p->timestamp < 0)
		dk_err_set(r, "an expiry (x=) needs a timestamp (t=)");
	else if (p->expire > INT64_MAX - (p->timestamp > 0 ? p->timestamp : 0))
		dk_err_set(r, "expiry out of range");
	else
		r = 0;
	return r;
}

static const char *
canon_name(enum dkim_canon c)
{
	return c == DKIM_CANON_RELAXED ? "relaxed" : "simple";
}

/* v= a= c= d= s= [i=] [t=] [x=] into t, one per line ('\n' is in none of them). */
static int
simple_tags(const struct dkim_sig_params *p, struct dk_buf *t)
{
	int r;

	r = dk_buf_printf(t, "v=1;\na=%s;\nc=%s/%s;\nd=%s;\ns=%s;\n", dkim_alg_name(p->alg),
	    canon_name(p->hcanon), canon_name(p->bcanon), p->domain, p->selector);
	if (r == 0 && p->identity != NULL && (r = identity_put(t, p->identity, p->domain)) == 0)
		r = dk_buf_putc(t, '\n');
	if (r == 0 && p->timestamp >= 0)
		r = dk_buf_printf(t, "t=%" PRId64 ";\n", p->timestamp);
	if (r == 0 && p->expire > 0)
		r = dk_buf_printf(t, "x=%" PRId64 ";\n", p->timestamp + p->expire);
	return r;
}

static int
out_simple_tags(struct sig_out *o, const struct dkim_sig_params *p, struct dk_buf *t)
{
	const char *s, *nl;
	size_t a = 0;
	int r;

	dk_buf_reset(t);
	if ((r = simple_tags(p, t)) != 0)
		goto out;
	s = dk_buf_str(t);
	while (a < t->len && r == 0) {
		if ((nl = memchr(s + a, '\n', t->len - a)) == NULL) {
			r = DK_ERR_INTERNAL;
			break;
		}
		r = out_tag(o, s + a, (size_t)(nl - s) - a);
		a = (size_t)(nl - s) + 1;
	}
out:
	return r;
}

int
dkim_sig_build(
    const struct dkim_headers *h, const struct dkim_sig_params *params, struct dk_buf *value_out)
{
	struct dk_buf hl, tmp;
	struct sig_out o = {value_out, SIG_NAME_LEN};
	int r;

	dk_buf_reset(value_out);
	dk_buf_init(&hl, DKIM_SIG_VALUE_MAX);
	dk_buf_init(&tmp, DKIM_SIG_VALUE_MAX);
	if ((r = params_check(params)) != 0)
		goto out;
	if ((r = hlist_build(h, params, &hl)) != 0)
		goto out;
	if ((r = out_simple_tags(&o, params, &tmp)) != 0)
		goto out;
	if ((r = out_hlist(&o, &hl, &tmp)) != 0)
		goto out;
	if ((r = out_bh(&o, params->bh, &tmp)) != 0)
		goto out;
	r = out_tag(&o, "b=", 2);
out:
	dk_buf_free(&hl);
	dk_buf_free(&tmp);
	if (r != 0)
		dk_buf_reset(value_out);
	return r;
}

/* --- hashing --- */

struct hsel {
	const char *name;
	size_t len;
	size_t floor; /* instances at or below this index are left for this name */
};

static int
hlist_parse(const char *hlist, struct hsel *sel, size_t *n)
{
	struct list_it it;
	const char *e;
	size_t en;
	int r = 0;

	*n = 0;
	list_init(&it, hlist);
	while (r == 0 && list_next(&it, &e, &en)) {
		if (en == 0 || en > DKIM_HEADER_NAME_MAX || *n == DKIM_HLIST_MAX) {
			r = dk_err_set(DK_ERR_INVALID,
			    "bad h= list: an empty or too long name, or more than %d names",
			    DKIM_HLIST_MAX);
			break;
		}
		sel[*n].name = e;
		sel[*n].len = en;
		(*n)++;
	}
	return r;
}

static int
md_put(EVP_MD_CTX *md, const void *p, size_t n)
{
	return EVP_DigestUpdate(md, p, n) == 1 ? 0 : dk_err_set(DK_ERR_INTERNAL, "SHA-256 failed");
}

/* RFC 6376 §5.4.2: the k-th name takes the lowest instance not yet taken above it. */
static int
hash_selected(EVP_MD_CTX *md, const struct dkim_headers *h, struct hsel *sel, size_t k,
    enum dkim_canon c, struct dk_buf *cb)
{
	const struct dkim_field *f;
	size_t j, i = h->n;
	int r = 0;

	for (j = k; j-- > 0;) {
		if (dkim_name_eq(sel[j].name, sel[j].len, sel[k].name, sel[k].len)) {
			i = sel[j].floor;
			break;
		}
	}
	sel[k].floor = 0;
	while (i-- > 0) {
		f = &h->fields[i];
		if (!dkim_name_eq(f->name, f->name_len, sel[k].name, sel[k].len))
			continue;
		sel[k].floor = i;
		dk_buf_reset(cb);
		if ((r = dkim_canon_header(c, f->raw, f->raw_len, cb)) == 0)
			r = md_put(md, cb->data, cb->len);
		break;
	}
	return r;
}

/* The signature field itself, without a final CRLF (RFC 6376 §3.7). */
static int
hash_sig_field(EVP_MD_CTX *md, const char *sig, size_t len, enum dkim_canon c, struct dk_buf *cb)
{
	int r;

	if (len >= 2 && sig[len - 2] == '\r' && sig[len - 1] == '\n')
		len -= 2;
	dk_buf_reset(cb);
	if ((r = dkim_canon_header(c, sig, len, cb)) != 0)
		goto out;
	r = md_put(md, cb->data, cb->len - 2);
out:
	return r;
}

int
dkim_hash_headers(const struct dkim_headers *h, const char *hlist, enum dkim_canon c,
    const char *sig_field, size_t sig_len, uint8_t digest[DKIM_DIGEST_LEN])
{
	struct hsel sel[DKIM_HLIST_MAX];
	struct dk_buf cb;
	EVP_MD_CTX *md = NULL;
	size_t n, k;
	unsigned int dl = 0;
	int r;

	dk_buf_init(&cb, DKIM_HEADER_SECTION_MAX + 2);
	if (sig_field == NULL || sig_len > DKIM_SIG_VALUE_MAX + SIG_NAME_LEN ||
	    (c != DKIM_CANON_SIMPLE && c != DKIM_CANON_RELAXED)) {
		r = dk_err_set(DK_ERR_INVALID, "bad signature field or canonicalization");
		goto out;
	}
	if ((r = hlist_parse(hlist, sel, &n)) != 0)
		goto out;
	if ((md = EVP_MD_CTX_new()) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	if (EVP_DigestInit_ex(md, dkim_sha256(), NULL) != 1) {
		r = dk_err_set(DK_ERR_INTERNAL, "SHA-256 init failed");
		goto out;
	}
	for (k = 0; k < n && r == 0; k++)
		r = hash_selected(md, h, sel, k, c, &cb);
	if (r == 0)
		r = hash_sig_field(md, sig_field, sig_len, c, &cb);
	if (r == 0 && (EVP_DigestFinal_ex(md, digest, &dl) != 1 || dl != DKIM_DIGEST_LEN))
		r = dk_err_set(DK_ERR_INTERNAL, "SHA-256 final failed");
out:
	EVP_MD_CTX_free(md);
	dk_buf_free(&cb);
	return r;
}

/* The value of tag name in the tag-list v[0..n) (RFC 6376 §3.2), FWS trimmed. */
static int
tag_find(const char *v, size_t n, const char *name, const char **val, size_t *vlen)
{
	const char *semi, *eq;
	size_t a = 0, b, ta, tb, va;
	int r = DK_ERR_NOT_FOUND;

	while (a < n) {
		semi = memchr(v + a, ';', n - a);
		b = semi != NULL ? (size_t)(semi - v) : n;
		if ((eq = memchr(v + a, '=', b - a)) != NULL) {
			ta = a;
			tb = (size_t)(eq - v);
			trim_fws(v, &ta, &tb);
			if (tb - ta == strlen(name) && memcmp(v + ta, name, tb - ta) == 0) {
				va = (size_t)(eq - v) + 1;
				trim_fws(v, &va, &b);
				*val = v + va;
				*vlen = b - va;
				r = 0;
				break;
			}
		}
		a = b + 1;
	}
	return r;
}

int
dkim_sig_digest(const struct dkim_headers *h, const struct dkim_sig_params *params,
    const struct dk_buf *value, uint8_t digest[DKIM_DIGEST_LEN])
{
	struct dk_buf field, hl;
	const char *hv;
	size_t hn;
	int r;

	dk_buf_init(&field, DKIM_SIG_VALUE_MAX + SIG_NAME_LEN);
	dk_buf_init(&hl, DKIM_SIG_VALUE_MAX);
	if ((r = tag_find(dk_buf_str(value), value->len, "h", &hv, &hn)) != 0) {
		r = dk_err_set(DK_ERR_INVALID, "signature value has no h= tag");
		goto out;
	}
	if ((r = dk_buf_put(&hl, hv, hn)) != 0)
		goto out;
	if ((r = dk_buf_puts(&field, DKIM_SIG_FIELD_NAME ":")) != 0 ||
	    (r = dk_buf_put(&field, value->data, value->len)) != 0)
		goto out;
	r = dkim_hash_headers(
	    h, dk_buf_str(&hl), params->hcanon, dk_buf_str(&field), field.len, digest);
out:
	dk_buf_free(&field);
	dk_buf_free(&hl);
	return r;
}

/* Columns taken on the last line of the field "DKIM-Signature:" + value. */
static size_t
last_line_cols(const struct dk_buf *v)
{
	size_t i = v->len, cols = SIG_NAME_LEN + v->len;

	for (; i >= 2; i--) {
		if (v->data[i - 2] == '\r' && v->data[i - 1] == '\n') {
			cols = v->len - i;
			if (cols > 0 && v->data[i] == '\t')
				cols += FOLD_COLS - 1;
			break;
		}
	}
	return cols;
}

int
dkim_sig_finish(struct dk_buf *value, const uint8_t *sig, size_t sig_len)
{
	struct dk_buf b64;
	struct sig_out o = {value, 0};
	int r;

	dk_buf_init(&b64, 2 * SIG_MAX);
	if (sig == NULL || sig_len == 0 || sig_len > SIG_MAX || value->len < 2 ||
	    memcmp(value->data + value->len - 2, "b=", 2) != 0) {
		r = dk_err_set(
		    DK_ERR_INVALID, "signature of %zu bytes or a value not ending in b=", sig_len);
		goto out;
	}
	o.col = last_line_cols(value);
	if ((r = dk_b64_encode(&b64, sig, sig_len)) != 0)
		goto out;
	r = out_b64(&o, dk_buf_str(&b64), b64.len, 0);
out:
	dk_buf_free(&b64);
	return r;
}
