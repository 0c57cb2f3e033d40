/*
 * rot_record.c - DKIM key records: our value, the bounded parser of what
 * DNS serves, their comparison, and selector names.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "common/dk_b64.h"
#include "common/dk_err.h"
#include "rotate/rot_record.h"

#define TEMPLATE_MAX 256
#define TAG_NAME_MAX 16

int
rot_rec_name(const struct hsm_key_meta *meta, struct dk_buf *out)
{
	return dk_buf_printf(out, "%s._domainkey.%s", meta->selector, meta->domain);
}

int
rot_rec_value(struct hsm_session *s, const struct hsm_key *k, int revoked, struct dk_buf *out)
{
	struct dk_buf pub;
	int r;

	dk_buf_init(&pub, ROT_REC_VALUE_MAX);
	r = dk_buf_printf(out, "v=DKIM1; k=%s; p=", k->type == HSM_KEY_RSA ? "rsa" : "ed25519");
	if (r != 0 || revoked)
		goto out;
	if ((r = hsm_key_public(s, k, &pub)) != 0)
		goto out;
	r = dk_b64_encode(out, pub.data, pub.len);
out:
	dk_buf_free(&pub);
	return r;
}

void
rot_rec_init(struct rot_rec *r)
{
	memset(r, 0, sizeof(*r));
	dk_buf_init(&r->p, ROT_REC_VALUE_MAX);
}

void
rot_rec_free(struct rot_rec *r)
{
	dk_buf_free(&r->p);
}

/* RFC 6376 §3.2: FWS and the WSP of a TXT value. */
static int
is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Copy value into a small field, whitespace removed; DK_ERR_PARSE when it does not fit. */
static int
tag_small(char *dst, size_t dstlen, const char *v, size_t vlen)
{
	size_t i, o = 0;

	for (i = 0; i < vlen; i++) {
		if (is_wsp(v[i]))
			continue;
		if (o + 1 >= dstlen)
			return DK_ERR_PARSE;
		dst[o++] = (char)tolower((unsigned char)v[i]);
	}
	dst[o] = '\0';
	return 0;
}

/* t= is a colon list of flags (RFC 6376 §3.6.1); y means testing. */
static int
tag_testing(const char *v, size_t vlen)
{
	size_t i = 0, start;

	while (i < vlen) {
		while (i < vlen && (is_wsp(v[i]) || v[i] == ':'))
			i++;
		start = i;
		while (i < vlen && !is_wsp(v[i]) && v[i] != ':')
			i++;
		if (i - start == 1 && (v[start] == 'y' || v[start] == 'Y'))
			return 1;
	}
	return 0;
}

/* One "tag=value"; seen is a bit set of tags met, each allowed once. */
static int
rec_tag(
    const char *name, size_t nlen, const char *v, size_t vlen, struct rot_rec *out, unsigned *seen)
{
	static const char *const known[] = {"v", "k", "t", "p", "h", "s", "n", NULL};
	size_t i;

	for (i = 0; known[i] != NULL; i++) {
		if (strlen(known[i]) == nlen && memcmp(known[i], name, nlen) == 0)
			break;
	}
	if (known[i] == NULL)
		return 0; /* unknown tags are ignored (RFC 6376 §3.2) */
	if (*seen & (1u << i))
		return DK_ERR_PARSE;
	*seen |= 1u << i;
	switch (name[0]) {
	case 'v':
		return tag_small(out->v, sizeof(out->v), v, vlen);
	case 'k':
		return tag_small(out->k, sizeof(out->k), v, vlen);
	case 't':
		out->testing = tag_testing(v, vlen);
		return 0;
	case 'p':
		for (i = 0; i < vlen; i++) {
			if (is_wsp(v[i]))
				continue;
			if (dk_buf_putc(&out->p, (uint8_t)v[i]) != 0)
				return DK_ERR_TOO_LARGE;
		}
		return 0;
	default:
		return 0;
	}
}

int
rot_rec_parse(const char *value, size_t len, struct rot_rec *out)
{
	const char *p = value, *end = value + len, *semi, *eq, *ns, *ne;
	unsigned seen = 0;
	int r;

	dk_buf_reset(&out->p);
	out->v[0] = out->k[0] = '\0';
	out->testing = 0;
	if (len > ROT_REC_VALUE_MAX)
		return DK_ERR_TOO_LARGE;
	while (p < end) {
		if ((semi = memchr(p, ';', (size_t)(end - p))) == NULL)
			semi = end;
		for (ns = p; ns < semi && is_wsp(*ns); ns++)
			;
		if (ns == semi) { /* an empty element: only after the last ';' is it allowed */
			if (semi != end)
				return DK_ERR_PARSE;
			break;
		}
		if ((eq = memchr(ns, '=', (size_t)(semi - ns))) == NULL)
			return DK_ERR_PARSE;
		for (ne = eq; ne > ns && is_wsp(ne[-1]); ne--)
			;
		if (ne == ns || (size_t)(ne - ns) > TAG_NAME_MAX)
			return DK_ERR_PARSE;
		if ((r = rec_tag(
		         ns, (size_t)(ne - ns), eq + 1, (size_t)(semi - eq - 1), out, &seen)) != 0)
			return r;
		p = semi < end ? semi + 1 : end;
	}
	if (out->v[0] != '\0' && strcmp(out->v, "dkim1") != 0)
		return DK_ERR_PARSE;
	if ((seen & (1u << 3)) == 0)
		return DK_ERR_PARSE; /* p= is required (RFC 6376 §3.6.1) */
	if (out->k[0] == '\0')
		snprintf(out->k, sizeof(out->k), "rsa");
	return 0;
}

enum rot_match
rot_rec_compare(const struct rot_rec *expected, const struct rot_rec *served)
{
	if (served->p.len == 0)
		return ROT_REVOKED;
	if (served->p.len != expected->p.len ||
	    memcmp(served->p.data, expected->p.data, served->p.len) != 0)
		return ROT_WRONG_KEY;
	if (strcmp(served->k, expected->k) != 0)
		return ROT_WRONG_K;
	return ROT_MATCH;
}

/* One strftime conversion; only literal formats, so the config cannot inject any. */
static size_t
date_conv(char c, const struct tm *tm, char *buf, size_t len)
{
	switch (c) {
	case 'Y':
		return strftime(buf, len, "%Y", tm);
	case 'm':
		return strftime(buf, len, "%m", tm);
	case 'd':
		return strftime(buf, len, "%d", tm);
	case 'H':
		return strftime(buf, len, "%H", tm);
	case 'M':
		return strftime(buf, len, "%M", tm);
	case 'S':
		return strftime(buf, len, "%S", tm);
	case 'j':
		return strftime(buf, len, "%j", tm);
	case 'G':
		return strftime(buf, len, "%G", tm);
	case 'V':
		return strftime(buf, len, "%V", tm);
	case 'U':
		return strftime(buf, len, "%U", tm);
	case 'W':
		return strftime(buf, len, "%W", tm);
	case 'u':
		return strftime(buf, len, "%u", tm);
	case '%':
		return strftime(buf, len, "%%", tm);
	default:
		return 0;
	}
}

/* Append the date of now (UTC) formatted by fmt (text and the conversions above). */
static int
expand_date(const char *fmt, size_t fmtlen, time_t now, struct dk_buf *out)
{
	char buf[16];
	struct tm tm;
	size_t i, n;
	int r = 0;

	if (gmtime_r(&now, &tm) == NULL)
		return DK_ERR_INVALID;
	for (i = 0; i < fmtlen && r == 0; i++) {
		if (fmt[i] != '%') {
			r = dk_buf_putc(out, (uint8_t)tolower((unsigned char)fmt[i]));
			continue;
		}
		if (++i >= fmtlen || (n = date_conv(fmt[i], &tm, buf, sizeof(buf))) == 0)
			return DK_ERR_INVALID;
		r = dk_buf_put(out, buf, n);
	}
	return r;
}

/* Insert suffix at offset at of b. */
static int
insert_at(struct dk_buf *b, size_t at, const char *suffix)
{
	size_t n = strlen(suffix);
	int r;

	if ((r = dk_buf_reserve(b, n)) != 0)
		return r;
	memmove(b->data + at + n, b->data + at, b->len - at);
	memcpy(b->data + at, suffix, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
rot_selector_expand(const char *tmpl, const char *alg_word, time_t now, const char *suffix,
    char *out, size_t outlen)
{
	const char *p = tmpl, *close;
	size_t after_date = (size_t)-1;
	struct dk_buf b;
	int r = 0;

	dk_buf_init(&b, TEMPLATE_MAX);
	while (*p != '\0' && r == 0) {
		if (*p != '{') {
			r = dk_buf_putc(&b, (uint8_t)tolower((unsigned char)*p++));
			continue;
		}
		if ((close = strchr(p, '}')) == NULL) {
			r = DK_ERR_INVALID;
			break;
		}
		if (strncmp(p, "{alg}", 5) == 0) {
			r = dk_buf_puts(&b, alg_word);
		} else if (strncmp(p, "{date:", 6) == 0) {
			r = expand_date(p + 6, (size_t)(close - p - 6), now, &b);
			after_date = b.len;
		} else {
			r = DK_ERR_INVALID;
		}
		p = close + 1;
	}
	if (r == 0)
		r = insert_at(&b, after_date == (size_t)-1 ? b.len : after_date, suffix);
	if (r == 0 && (b.len == 0 || b.len >= outlen))
		r = DK_ERR_TOO_LARGE;
	if (r != 0)
		r = dk_err_set(DK_ERR_CONFIG,
		    "selector_template \"%s\" cannot be expanded (use text, {alg} and {date:FMT} "
		    "with %%Y %%m %%d %%H %%M %%S %%j %%G %%V %%U %%W %%u; at most %zu "
		    "characters in all)",
		    tmpl, outlen - 1);
	else
		memcpy(out, b.data, b.len + 1);
	dk_buf_free(&b);
	return r;
}
