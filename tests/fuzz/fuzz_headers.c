/*
 * fuzz_headers.c - a message's header section through everything the
 * worker does with it: dkim_header_end, dkim_headers_parse,
 * dkim_from_domain, dkim_canon_header (both canonicalizations, checked
 * against RFC 6376 §3.4.1/§3.4.2 properties), dkim_sig_build,
 * dkim_sig_digest, dkim_hash_headers and dkim_sig_finish.
 *
 * Input: an optional h= list, a NUL byte, then the message; without a NUL
 * the whole input is the message and the default list is used.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "dkim/dkim.h"
#include "tests/fuzz/fuzz_common.h"

#define DEFAULT_HLIST "from:to:subject:date:message-id:from"

static void
check_canon(const struct dkim_field *f)
{
	struct dk_buf a, b;
	int r;

	dk_buf_init(&a, 2 * DKIM_HEADER_SECTION_MAX);
	dk_buf_init(&b, 2 * DKIM_HEADER_SECTION_MAX);
	/* simple: the field unchanged, plus CRLF */
	r = dkim_canon_header(DKIM_CANON_SIMPLE, f->raw, f->raw_len, &a);
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(a.len == f->raw_len + 2 && memcmp(a.data, f->raw, f->raw_len) == 0);
	dk_buf_reset(&a);
	/* relaxed: idempotent, no WSP around the colon, no CR/LF inside */
	r = dkim_canon_header(DKIM_CANON_RELAXED, f->raw, f->raw_len, &a);
	if (r == 0) {
		FUZZ_CHECK(a.len >= 3 && memcmp(a.data + a.len - 2, "\r\n", 2) == 0);
		FUZZ_CHECK(memchr(a.data, '\n', a.len - 1) == NULL);
		FUZZ_CHECK(memchr(a.data, '\r', a.len - 2) == NULL);
		r = dkim_canon_header(DKIM_CANON_RELAXED, (const char *)a.data, a.len - 2, &b);
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
	}
	dk_buf_free(&a);
	dk_buf_free(&b);
}

/* Every line end in a folded value is CRLF followed by TAB (RFC 6376 §3.5 FWS). */
static void
check_folding(const struct dk_buf *v)
{
	size_t i;

	for (i = 0; i < v->len; i++) {
		if (v->data[i] == '\n')
			FUZZ_CHECK(i > 0 && v->data[i - 1] == '\r' && i + 1 < v->len &&
			           v->data[i + 1] == '\t');
		if (v->data[i] == '\r')
			FUZZ_CHECK(i + 1 < v->len && v->data[i + 1] == '\n');
	}
}

static void
check_sign(const struct dkim_headers *h, const char *dom, const char *hlist)
{
	static const uint8_t fake_sig[64] = {1, 2, 3};
	struct dkim_sig_params p;
	struct dk_buf v;
	uint8_t d[DKIM_DIGEST_LEN];
	enum dkim_canon c;
	int r;

	for (c = DKIM_CANON_SIMPLE; c <= DKIM_CANON_RELAXED; c++) {
		memset(&p, 0, sizeof(p));
		p.alg = c == DKIM_CANON_SIMPLE ? DKIM_ALG_RSA_SHA256 : DKIM_ALG_ED25519_SHA256;
		p.hcanon = p.bcanon = c;
		p.domain = dom[0] != '\0' ? dom : "example.com";
		p.selector = "s2026";
		p.timestamp = 1700000000;
		p.expire = 3600;
		p.headers = hlist;
		p.oversign = "from:subject";
		dk_buf_init(&v, DKIM_SIG_VALUE_MAX);
		r = dkim_sig_build(h, &p, &v);
		if (r == 0) {
			FUZZ_CHECK(v.len > 2 && v.data[0] == ' ');
			FUZZ_CHECK(memcmp(v.data + v.len - 2, "b=", 2) == 0);
			check_folding(&v);
			/* what the worker hashes: the h= it just wrote must parse */
			FUZZ_CHECK(dkim_sig_digest(h, &p, &v, d) == 0);
			r = dkim_sig_finish(&v, fake_sig, sizeof(fake_sig));
			FUZZ_CHECK(r == 0 || r == DK_ERR_TOO_LARGE);
			if (r == 0)
				check_folding(&v);
		}
		dk_buf_free(&v);
	}
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size < 1024 ? size : 1024);
	char hlist[1025], dom[DKIM_DOMAIN_MAX + 1];
	const uint8_t *msg = data;
	size_t mlen = size, hlen, boff, i;
	struct dkim_headers h;
	uint8_t digest[DKIM_DIGEST_LEN];
	static const char sig[] = "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; b=";
	int r;

	if (nul != NULL) {
		memcpy(hlist, data, (size_t)(nul - data) + 1);
		msg = nul + 1;
		mlen = size - (size_t)(nul - data) - 1;
	} else {
		memcpy(hlist, DEFAULT_HLIST, sizeof(DEFAULT_HLIST));
	}
	r = dkim_header_end(msg, mlen, &hlen, &boff);
	if (r == 0) {
		FUZZ_CHECK(hlen <= boff && boff <= mlen);
		mlen = hlen;
	}
	memset(&h, 0, sizeof(h));
	if (dkim_headers_parse(msg, mlen, &h) != 0) {
		FUZZ_CHECK(h.n == 0 && h.fields == NULL);
		return 0;
	}
	FUZZ_CHECK(h.n >= 1 && h.n <= DKIM_HEADER_COUNT_MAX);
	for (i = 0; i < h.n; i++) {
		FUZZ_CHECK(
		    h.fields[i].name_len >= 1 && h.fields[i].name_len <= DKIM_HEADER_NAME_MAX);
		FUZZ_CHECK(h.fields[i].raw >= h.storage &&
		           h.fields[i].raw + h.fields[i].raw_len <= h.storage + h.storage_len);
		check_canon(&h.fields[i]);
	}
	memset(dom, 'X', sizeof(dom));
	r = dkim_from_domain(&h, dom, sizeof(dom));
	if (r == 0) {
		FUZZ_CHECK(memchr(dom, '\0', sizeof(dom)) != NULL);
		FUZZ_CHECK(dom[0] != '\0');
		for (i = 0; dom[i] != '\0'; i++)
			FUZZ_CHECK(!isupper((unsigned char)dom[i]));
	} else {
		dom[0] = '\0';
	}
	for (i = 0; i < 2; i++) {
		r = dkim_hash_headers(&h, hlist, (enum dkim_canon)i, sig, sizeof(sig) - 1, digest);
		FUZZ_CHECK(r == 0 || r == DK_ERR_INVALID || r == DK_ERR_PARSE);
	}
	check_sign(&h, dom, hlist[0] != '\0' ? hlist : NULL);
	dkim_headers_free(&h);
	return 0;
}
