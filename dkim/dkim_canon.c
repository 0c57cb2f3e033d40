/*
 * dkim_canon.c - header and body canonicalization (RFC 6376 §3.4) and the
 * streaming body hash.
 *
 * The body is never buffered: bytes go to SHA-256 as soon as it is known
 * that they belong to the canonical form.  What is held back is counted,
 * not stored: trailing empty lines (a number), trailing white space of the
 * current line (a flag, relaxed only) and a CR that may start a CRLF.
 *
 * A CR not followed by LF is body data (kept as is, RFC 6376 §3.4.3/§3.4.4
 * only speak of CRLF); a bare LF is a line end, as if it were CRLF.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "dkim/dkim.h"
#include "dkim/dkim_int.h"

static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
}

const EVP_MD *
dkim_sha256(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md;
}

/* RFC 6376 §3.4.1: the field exactly as it is, with its CRLF. */
static int
canon_header_simple(const char *raw, size_t raw_len, struct dk_buf *out)
{
	int r;

	if ((r = dk_buf_put(out, raw, raw_len)) != 0)
		goto out;
	r = dk_buf_put(out, "\r\n", 2);
out:
	return r;
}

/*
 * RFC 6376 §3.4.2: name lower-cased, no WSP around the colon, value
 * unfolded, WSP runs as one SP, no WSP at the start or end of the value.
 */
static int
canon_header_relaxed(const char *raw, size_t raw_len, struct dk_buf *out)
{
	const char *colon;
	size_t i, nl;
	int wsp = 0, started = 0, c, r;

	if ((colon = memchr(raw, ':', raw_len)) == NULL) {
		r = dk_err_set(DK_ERR_PARSE, "header field without a colon");
		goto out;
	}
	if ((r = dk_buf_reserve(out, raw_len + 2)) != 0)
		goto out;
	nl = (size_t)(colon - raw);
	while (nl > 0 && dkim_is_wsp((unsigned char)raw[nl - 1]))
		nl--;
	for (i = 0; i < nl && r == 0; i++)
		r = dk_buf_putc(out, (uint8_t)dkim_lower((unsigned char)raw[i]));
	if (r == 0)
		r = dk_buf_putc(out, ':');
	for (i = (size_t)(colon - raw) + 1; i < raw_len && r == 0; i++) {
		c = (unsigned char)raw[i];
		if (c == '\r' || c == '\n')
			continue; /* unfold */
		if (dkim_is_wsp(c)) {
			wsp = 1;
			continue;
		}
		if (wsp && started)
			r = dk_buf_putc(out, ' ');
		if (r == 0)
			r = dk_buf_putc(out, (uint8_t)c);
		wsp = 0;
		started = 1;
	}
	if (r == 0)
		r = dk_buf_put(out, "\r\n", 2);
out:
	return r;
}

int
dkim_canon_header(enum dkim_canon c, const char *raw, size_t raw_len, struct dk_buf *out)
{
	int r;

	switch (c) {
	case DKIM_CANON_SIMPLE:
		r = canon_header_simple(raw, raw_len, out);
		break;
	case DKIM_CANON_RELAXED:
		r = canon_header_relaxed(raw, raw_len, out);
		break;
	default:
		r = dk_err_set(DK_ERR_INVALID, "unknown canonicalization %d", (int)c);
		break;
	}
	return r;
}

/* --- body --- */

static int
body_hash(struct dkim_body *b, const void *p, size_t n)
{
	return EVP_DigestUpdate(b->md, p, n) == 1 ? 0 : DK_ERR_INTERNAL;
}

/* Emit the empty lines held back: they turned out not to be trailing. */
static int
body_flush_lines(struct dkim_body *b)
{
	static const char crlfs[] = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
	                            "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";
	size_t k;
	int r = 0;

	while (b->crlf_pending > 0 && r == 0) {
		k = b->crlf_pending < 16 ? (size_t)b->crlf_pending : 16;
		r = body_hash(b, crlfs, 2 * k);
		b->crlf_pending -= k;
	}
	return r;
}

/* Line content: first what was held back before it, then the bytes. */
static int
body_data(struct dkim_body *b, const void *p, size_t n)
{
	int r = 0;

	if (!b->line_has_data)
		r = body_flush_lines(b);
	if (r == 0 && b->wsp_pending)
		r = body_hash(b, " ", 1);
	b->wsp_pending = 0;
	if (r == 0)
		r = body_hash(b, p, n);
	b->line_has_data = 1;
	b->any_data = 1;
	return r;
}

/* A line end: WSP before it is dropped (relaxed); an empty line is held back. */
static int
body_eol(struct dkim_body *b)
{
	int r = 0;

	b->wsp_pending = 0;
	if (b->line_has_data) {
		r = body_hash(b, "\r\n", 2);
		b->line_has_data = 0;
	} else if (b->crlf_pending == UINT64_MAX) {
		r = DK_ERR_TOO_LARGE;
	} else {
		b->crlf_pending++;
	}
	return r;
}

static int
body_special(const struct dkim_body *b, int c)
{
	return c == '\r' || c == '\n' || (b->canon == DKIM_CANON_RELAXED && dkim_is_wsp(c));
}

int
dkim_body_init(struct dkim_body *b, enum dkim_canon c)
{
	int r = 0;

	memset(b, 0, sizeof(*b));
	if (c != DKIM_CANON_SIMPLE && c != DKIM_CANON_RELAXED) {
		r = dk_err_set(DK_ERR_INVALID, "unknown canonicalization %d", (int)c);
		goto out;
	}
	b->canon = c;
	if ((b->md = EVP_MD_CTX_new()) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	if (EVP_DigestInit_ex(b->md, dkim_sha256(), NULL) != 1) {
		r = dk_err_set(DK_ERR_INTERNAL, "SHA-256 init failed");
		goto out;
	}
out:
	if (r != 0)
		dkim_body_free(b);
	return r;
}

/* One byte that is not plain line content, or a run of plain content. */
static int
body_step(struct dkim_body *b, const uint8_t *data, size_t len, size_t *i)
{
	size_t j;
	int c = data[*i], r = 0;

	if (b->cr_pending) {
		b->cr_pending = 0;
		if (c == '\n') {
			(*i)++;
			r = body_eol(b);
			goto out;
		}
		if ((r = body_data(b, "\r", 1)) != 0)
			goto out;
	}
	if (c == '\r') {
		b->cr_pending = 1;
		(*i)++;
	} else if (c == '\n') {
		r = body_eol(b);
		(*i)++;
	} else if (body_special(b, c)) {
		b->wsp_pending = 1; /* relaxed WSP */
		(*i)++;
	} else {
		for (j = *i + 1; j < len && !body_special(b, data[j]); j++)
			;
		r = body_data(b, data + *i, j - *i);
		*i = j;
	}
out:
	return r;
}

int
dkim_body_update(struct dkim_body *b, const uint8_t *data, size_t len)
{
	size_t i = 0;
	int r = 0;

	if (b->md == NULL) {
		r = dk_err_set(DK_ERR_INVALID, "body hash not initialized");
		goto out;
	}
	while (i < len && r == 0)
		r = body_step(b, data, len, &i);
out:
	return r;
}

int
dkim_body_final(struct dkim_body *b, uint8_t digest[DKIM_DIGEST_LEN])
{
	unsigned int dl = 0;
	int r = 0;

	if (b->md == NULL) {
		r = dk_err_set(DK_ERR_INVALID, "body hash not initialized");
		goto out;
	}
	/* A CR at the very end is data; the unterminated last line gets its CRLF. */
	if (b->cr_pending)
		r = body_data(b, "\r", 1);
	b->cr_pending = 0;
	b->wsp_pending = 0; /* relaxed: WSP at the end of the last line */
	if (r == 0 && b->line_has_data)
		r = body_hash(b, "\r\n", 2);
	/* RFC 6376 §3.4.3: an empty body is one CRLF under simple (§3.4.4: none under relaxed). */
	if (r == 0 && !b->any_data && b->canon == DKIM_CANON_SIMPLE)
		r = body_hash(b, "\r\n", 2);
	if (r == 0 && (EVP_DigestFinal_ex(b->md, digest, &dl) != 1 || dl != DKIM_DIGEST_LEN))
		r = dk_err_set(DK_ERR_INTERNAL, "SHA-256 final failed");
out:
	dkim_body_free(b);
	return r;
}

void
dkim_body_free(struct dkim_body *b)
{
	EVP_MD_CTX_free(b->md);
	b->md = NULL;
}
