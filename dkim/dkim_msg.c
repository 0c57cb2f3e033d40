/*
 * dkim_msg.c - the header section of a message (RFC 5322 §2.2): where it
 * ends, its fields, and the domain of its From address (RFC 5322 §3.4).
 *
 * Line ends may be CRLF or bare LF; the parsed copy always has CRLF.  A
 * bare CR inside a header line is refused: receivers disagree on whether it
 * ends a line, and a signature over an ambiguous header is worth nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "dkim/dkim.h"
#include "dkim/dkim_int.h"

int
dkim_name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i;

	if (alen != blen)
		return 0;
	for (i = 0; i < alen; i++) {
		if (dkim_lower((unsigned char)a[i]) != dkim_lower((unsigned char)b[i]))
			return 0;
	}
	return 1;
}

static int
label_ok(const char *s, size_t n, int allow_us)
{
	size_t i;
	int c;

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || (allow_us && c == '_'))
			continue;
		return 0;
	}
	return 1;
}

int
dkim_domain_ok(const char *s, size_t n, int allow_us)
{
	const char *dot;
	size_t start = 0, l;

	if (n == 0 || n > DKIM_DOMAIN_MAX)
		return 0;
	for (;;) {
		dot = memchr(s + start, '.', n - start);
		l = dot != NULL ? (size_t)(dot - (s + start)) : n - start;
		if (!label_ok(s + start, l, allow_us))
			return 0;
		if (dot == NULL)
			return 1;
		start += l + 1;
	}
}

/* Length of an empty line at msg[i] (CRLF or LF), 0 if the line is not empty. */
static size_t
empty_line_len(const uint8_t *msg, size_t len, size_t i)
{
	if (i < len && msg[i] == '\n')
		return 1;
	if (i + 1 < len && msg[i] == '\r' && msg[i + 1] == '\n')
		return 2;
	return 0;
}

int
dkim_header_end(const uint8_t *msg, size_t len, size_t *hdr_len, size_t *body_off)
{
	const uint8_t *lf;
	size_t i = 0, e;
	int r = DK_ERR_NOT_FOUND;

	while (i < len) {
		/* i is at the start of a line */
		if ((e = empty_line_len(msg, len, i)) != 0) {
			if (i == 0) {
				r = dk_err_set(DK_ERR_MSG_NOT_MESSAGE,
				    "message starts with an empty line: it has no header section");
				goto out;
			}
			*hdr_len = i;
			*body_off = i + e;
			r = 0;
			goto out;
		}
		if ((lf = memchr(msg + i, '\n', len - i)) == NULL)
			break;
		i = (size_t)(lf - msg) + 1;
	}
out:
	return r;
}

/*
 * Copy the header section into st with every line ending in CRLF, up to
 * (not including) the empty line that ends it.  Refuses NUL and bare CR
 * bytes, and anything after the empty line.
 */
static int
hdr_normalize(const uint8_t *data, size_t len, struct dk_buf *st)
{
	const uint8_t *lf;
	size_t i = 0, e, ce;
	int r = 0;

	while (i < len) {
		lf = memchr(data + i, '\n', len - i);
		e = lf != NULL ? (size_t)(lf - data) : len;
		ce = e > i && data[e - 1] == '\r' && lf != NULL ? e - 1 : e;
		if (ce == i) {
			if (i == 0) {
				r = dk_err_set(DK_ERR_MSG_NOT_MESSAGE,
				    "header section starts with an empty line");
				goto out;
			}
			if (e + 1 < len) {
				r = dk_err_set(DK_ERR_MSG_BAD_HEADER,
				    "data after the empty line that ends the header section "
				    "(pass the header section only)");
				goto out;
			}
			break;
		}
		if (memchr(data + i, '\0', ce - i) != NULL) {
			r = dk_err_set(
			    DK_ERR_MSG_BAD_HEADER, "NUL byte in header line at offset %zu", i);
			goto out;
		}
		if (memchr(data + i, '\r', ce - i) != NULL) {
			r = dk_err_set(
			    DK_ERR_MSG_BAD_HEADER, "bare CR in header line at offset %zu", i);
			goto out;
		}
		if ((r = dk_buf_put(st, data + i, ce - i)) != 0 ||
		    (r = dk_buf_put(st, "\r\n", 2)) != 0) {
			if (r == DK_ERR_TOO_LARGE)
				r = dk_err_set(DK_ERR_MSG_HEADER_TOO_LARGE,
				    "header section over %d bytes", DKIM_HEADER_SECTION_MAX);
			goto out;
		}
		i = e + 1;
	}
out:
	return r;
}

/*
 * Length of the field name at the start of line[0..n) (ftext up to optional
 * WSP and a colon, RFC 5322 §3.6.8 and obs-optional §4.5.8), 0 if the line
 * is not the start of a field.
 */
static size_t
field_name_len(const char *line, size_t n)
{
	size_t i = 0, name_len;

	while (i < n && dkim_is_ftext((unsigned char)line[i]))
		i++;
	name_len = i;
	while (i < n && dkim_is_wsp((unsigned char)line[i]))
		i++;
	if (name_len == 0 || i >= n || line[i] != ':')
		return 0;
	return name_len;
}

/*
 * Walk the normalized section s[0..len) (lines end in CRLF) and check it;
 * fill fields[] when not NULL.  *np gets the number of fields.
 */
static int
hdr_scan(const char *s, size_t len, struct dkim_field *fields, size_t *np)
{
	const char *crlf;
	size_t i = 0, n = 0, e, nl;
	int r = 0;

	while (i < len) {
		/* after hdr_normalize() the only CRs are those of line ends */
		if ((crlf = memchr(s + i, '\r', len - i)) == NULL) {
			r = DK_ERR_INTERNAL;
			goto out;
		}
		e = (size_t)(crlf - s);
		if (dkim_is_wsp((unsigned char)s[i])) {
			if (n == 0) {
				r = dk_err_set(DK_ERR_MSG_NOT_MESSAGE,
				    "first line starts with white space: not a header field");
				goto out;
			}
			if (fields != NULL)
				fields[n - 1].raw_len = e - (size_t)(fields[n - 1].raw - s);
			i = e + 2;
			continue;
		}
		if ((nl = field_name_len(s + i, e - i)) == 0) {
			r = dk_err_set(n == 0 ? DK_ERR_MSG_NOT_MESSAGE : DK_ERR_MSG_BAD_HEADER,
			    "line %zu of the header section is not a header field (no colon "
			    "after a name of printable characters)",
			    n + 1);
			goto out;
		}
		if (nl > DKIM_HEADER_NAME_MAX) {
			r = dk_err_set(DK_ERR_MSG_BAD_HEADER, "header field name over %d bytes",
			    DKIM_HEADER_NAME_MAX);
			goto out;
		}
		if (n == DKIM_HEADER_COUNT_MAX) {
			r = dk_err_set(DK_ERR_MSG_TOO_MANY_HEADERS, "more than %d header fields",
			    DKIM_HEADER_COUNT_MAX);
			goto out;
		}
		if (fields != NULL) {
			fields[n].name = s + i;
			fields[n].name_len = nl;
			fields[n].raw = s + i;
			fields[n].raw_len = e - i;
		}
		n++;
		i = e + 2;
	}
	*np = n;
out:
	return r;
}

int
dkim_headers_parse(const uint8_t *data, size_t len, struct dkim_headers *out)
{
	struct dk_buf st;
	size_t n = 0;
	int r;

	memset(out, 0, sizeof(*out));
	dk_buf_init(&st, DKIM_HEADER_SECTION_MAX);
	if (len == 0) {
		r = dk_err_set(DK_ERR_MSG_EMPTY, "empty message");
		goto out;
	}
	if ((r = hdr_normalize(data, len, &st)) != 0)
		goto out;
	if ((r = hdr_scan((const char *)st.data, st.len, NULL, &n)) != 0)
		goto out;
	if ((out->fields = calloc(n, sizeof(*out->fields))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	out->storage = dk_buf_steal(&st, &out->storage_len);
	if (out->storage == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	if ((r = hdr_scan(out->storage, out->storage_len, out->fields, &out->n)) != 0)
		goto out;
out:
	dk_buf_free(&st);
	if (r != 0)
		dkim_headers_free(out);
	return r;
}

void
dkim_headers_free(struct dkim_headers *h)
{
	free(h->fields);
	free(h->storage);
	memset(h, 0, sizeof(*h));
}

/* --- From: address (RFC 5322 §3.4, §3.6.2) --- */

/* Skip a quoted-string or a (nested) comment starting at v[*i]; *i ends past it. */
static int
skip_delimited(const char *v, size_t n, size_t *i)
{
	size_t j = *i;
	int depth = 0, quoted = v[j] == '"', r = DK_ERR_MSG_BAD_HEADER;

	for (; j < n; j++) {
		if (v[j] == '\\') {
			j++; /* quoted-pair */
		} else if (quoted && v[j] == '"' && j > *i) {
			r = 0;
			break;
		} else if (!quoted && v[j] == '(') {
			depth++;
		} else if (!quoted && v[j] == ')' && --depth == 0) {
			r = 0;
			break;
		}
	}
	if (r == 0)
		*i = j + 1;
	else
		dk_err_set(r, "From has an unterminated quoted string or comment");
	return r;
}

static int
is_cfws_byte(int c)
{
	return dkim_is_wsp(c) || c == '\r' || c == '\n';
}

/* Skip white space, line ends and comments. */
static int
skip_cfws(const char *v, size_t n, size_t *i)
{
	int r = 0;

	while (*i < n && r == 0) {
		if (is_cfws_byte((unsigned char)v[*i]))
			(*i)++;
		else if (v[*i] == '(')
			r = skip_delimited(v, n, i);
		else
			break;
	}
	return r;
}

/*
 * Find the first byte c in v[*i..n) outside quoted strings and comments
 * (and, when angle, outside <...>).  *i is n when there is none.
 */
static int
find_top(const char *v, size_t n, size_t *i, char c, int angle)
{
	int in_angle = 0, r = 0;

	while (*i < n && r == 0) {
		if (v[*i] == c && !in_angle)
			break;
		if (v[*i] == '"' || v[*i] == '(') {
			r = skip_delimited(v, n, i);
			continue;
		}
		if (angle && v[*i] == '<')
			in_angle = 1;
		else if (angle && v[*i] == '>')
			in_angle = 0;
		(*i)++;
	}
	return r;
}

/* The addr-spec of a mailbox v[0..n): inside <...> if there is an angle-addr. */
static int
mailbox_addr(const char *v, size_t n, size_t *a, size_t *b)
{
	size_t i = 0, j;
	int r;

	if ((r = find_top(v, n, &i, '<', 0)) != 0)
		goto out;
	if (i == n) {
		*a = 0;
		*b = n;
		goto out;
	}
	j = i + 1;
	if ((r = find_top(v, n, &j, '>', 0)) != 0)
		goto out;
	if (j == n) {
		r = dk_err_set(DK_ERR_MSG_BAD_HEADER, "From address has '<' without '>'");
		goto out;
	}
	*a = i + 1;
	*b = j;
out:
	return r;
}

/* The domain of the addr-spec v[0..n): after its last '@', without CFWS. */
static int
addr_domain(const char *v, size_t n, const char **d, size_t *dlen)
{
	size_t i = 0, at = n, start;
	int r;

	while (i < n) {
		if ((r = find_top(v, n, &i, '@', 0)) != 0)
			goto out;
		if (i < n)
			at = i++;
	}
	if (at == n) {
		r = dk_err_set(DK_ERR_MSG_BAD_HEADER, "From address has no '@'");
		goto out;
	}
	i = at + 1;
	if ((r = skip_cfws(v, n, &i)) != 0)
		goto out;
	start = i;
	while (i < n && !is_cfws_byte((unsigned char)v[i]) && v[i] != '(')
		i++;
	*d = v + start;
	*dlen = i - start;
	if ((r = skip_cfws(v, n, &i)) != 0)
		goto out;
	if (i != n || !dkim_domain_ok(*d, *dlen, 0)) {
		r = dk_err_set(DK_ERR_MSG_BAD_HEADER,
		    "From address has a domain that is empty or not a host name");
		goto out;
	}
out:
	return r;
}

/* Is v[0..n) nothing but white space and comments (an empty list element)? */
static int
only_cfws(const char *v, size_t n)
{
	size_t i = 0;

	return skip_cfws(v, n, &i) == 0 && i == n;
}

/* Store the domain d[0..dlen) lower-cased, or check it matches the one stored. */
static int
keep_domain(const char *d, size_t dlen, char *dom, size_t domlen, int first)
{
	size_t i;
	int r = 0;

	if (dlen >= domlen) {
		r = dk_err_set(DK_ERR_INVALID, "domain buffer too small");
		goto out;
	}
	if (!first) {
		if (strlen(dom) != dlen || !dkim_name_eq(dom, dlen, d, dlen))
			r = dk_err_set(
			    DK_ERR_MSG_MULTI_FROM, "From holds addresses in more than one domain");
		goto out;
	}
	for (i = 0; i < dlen; i++)
		dom[i] = (char)dkim_lower((unsigned char)d[i]);
	dom[dlen] = '\0';
out:
	return r;
}

/* Parse the From value v[0..n): a mailbox-list whose mailboxes share one domain. */
static int
from_value_domain(const char *v, size_t n, char *dom, size_t domlen)
{
	const char *d = NULL;
	size_t i = 0, start, a = 0, b = 0, dlen = 0, found = 0;
	int r = 0;

	while (i <= n) {
		start = i;
		if ((r = find_top(v, n, &i, ',', 1)) != 0)
			goto out;
		if (!only_cfws(v + start, i - start)) {
			if ((r = mailbox_addr(v + start, i - start, &a, &b)) != 0 ||
			    (r = addr_domain(v + start + a, b - a, &d, &dlen)) != 0 ||
			    (r = keep_domain(d, dlen, dom, domlen, found == 0)) != 0)
				goto out;
			found++;
		}
		i++;
	}
	if (found == 0)
		r = dk_err_set(DK_ERR_MSG_BAD_HEADER, "From holds no address");
out:
	return r;
}

int
dkim_from_domain(const struct dkim_headers *h, char *dom, size_t domlen)
{
	const struct dkim_field *from = NULL;
	const char *colon;
	size_t i;
	int r;

	for (i = 0; i < h->n; i++) {
		if (!dkim_name_eq(h->fields[i].name, h->fields[i].name_len, "from", 4))
			continue;
		if (from != NULL) {
			r = dk_err_set(
			    DK_ERR_MSG_MULTI_FROM, "message has more than one From field");
			goto out;
		}
		from = &h->fields[i];
	}
	if (from == NULL) {
		r = dk_err_set(DK_ERR_MSG_NO_FROM, "message has no From field");
		goto out;
	}
	if (domlen == 0) {
		r = DK_ERR_INVALID;
		goto out;
	}
	dom[0] = '\0';
	colon = memchr(from->raw, ':', from->raw_len);
	i = (size_t)(colon + 1 - from->raw);
	r = from_value_domain(colon + 1, from->raw_len - i, dom, domlen);
out:
	return r;
}
