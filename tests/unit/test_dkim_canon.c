/*
 * test_dkim_canon.c - unit tests for dkim/ canonicalization (RFC 6376 §3.4)
 * and the streaming body hash.
 *
 * Body results are checked against SHA-256 of the expected canonical bytes,
 * written out by hand from the RFC's rules, and against fixed known hashes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "common/dk_b64.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "dkim/dkim.h"

#define SIMPLE  DKIM_CANON_SIMPLE
#define RELAXED DKIM_CANON_RELAXED

/* Hash body[0..len) fed in chunks of chunk bytes (0: one call). */
static void
body_hash(
    enum dkim_canon c, const void *body, size_t len, size_t chunk, uint8_t out[DKIM_DIGEST_LEN])
{
	const uint8_t *p = body;
	struct dkim_body b;
	size_t off = 0, n;

	assert_int_equal(dkim_body_init(&b, c), 0);
	if (chunk == 0)
		chunk = len > 0 ? len : 1;
	while (off < len) {
		n = len - off < chunk ? len - off : chunk;
		assert_int_equal(dkim_body_update(&b, p + off, n), 0);
		off += n;
	}
	assert_int_equal(dkim_body_final(&b, out), 0);
	dkim_body_free(&b);
}

static void
sha256(const void *p, size_t n, uint8_t out[DKIM_DIGEST_LEN])
{
	unsigned int dl = 0;

	assert_int_equal(EVP_Digest(p, n, out, &dl, EVP_sha256(), NULL), 1);
	assert_int_equal(dl, DKIM_DIGEST_LEN);
}

/* The body's canonical form under c must be exactly want. */
static void
check_body(enum dkim_canon c, const char *body, size_t len, const char *want)
{
	uint8_t got[DKIM_DIGEST_LEN], exp[DKIM_DIGEST_LEN];
	size_t chunk;

	sha256(want, strlen(want), exp);
	body_hash(c, body, len, 0, got);
	assert_memory_equal(got, exp, DKIM_DIGEST_LEN);
	/* the same in every chunking from byte-at-a-time up */
	for (chunk = 1; chunk <= 7 && chunk < len; chunk++) {
		body_hash(c, body, len, chunk, got);
		assert_memory_equal(got, exp, DKIM_DIGEST_LEN);
	}
}

#define BODY(c, lit, want) check_body(c, lit, sizeof(lit) - 1, want)

static void
check_b64(const uint8_t d[DKIM_DIGEST_LEN], const char *want)
{
	struct dk_buf b;

	dk_buf_init(&b, 64);
	assert_int_equal(dk_b64_encode(&b, d, DKIM_DIGEST_LEN), 0);
	assert_string_equal(dk_buf_str(&b), want);
	dk_buf_free(&b);
}

/* RFC 6376 §3.4.6 example, body part. */
#define RFC_BODY " C \r\nD \t E\r\n\r\n\r\n"

static void
test_rfc6376_example_body(void **state)
{
	(void)state;
	BODY(RELAXED, RFC_BODY, " C\r\nD E\r\n");
	BODY(SIMPLE, RFC_BODY, " C \r\nD \t E\r\n");
}

/* RFC 6376 §3.4.6 example, header part. */
static void
test_rfc6376_example_headers(void **state)
{
	static const char hdr[] = "A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n";
	struct dkim_headers h;
	struct dk_buf out;
	size_t i;

	(void)state;
	assert_int_equal(dkim_headers_parse((const uint8_t *)hdr, strlen(hdr), &h), 0);
	assert_int_equal(h.n, 2);
	dk_buf_init(&out, 4096);
	for (i = 0; i < h.n; i++)
		assert_int_equal(
		    dkim_canon_header(RELAXED, h.fields[i].raw, h.fields[i].raw_len, &out), 0);
	assert_string_equal(dk_buf_str(&out), "a:X\r\nb:Y Z\r\n");
	dk_buf_reset(&out);
	for (i = 0; i < h.n; i++)
		assert_int_equal(
		    dkim_canon_header(SIMPLE, h.fields[i].raw, h.fields[i].raw_len, &out), 0);
	assert_string_equal(dk_buf_str(&out), "A: X\r\nB : Y\t\r\n\tZ  \r\n");
	dk_buf_free(&out);
	dkim_headers_free(&h);
}

static void
canon_hdr(enum dkim_canon c, const char *raw, const char *want)
{
	struct dk_buf out;

	dk_buf_init(&out, 4096);
	assert_int_equal(dkim_canon_header(c, raw, strlen(raw), &out), 0);
	assert_string_equal(dk_buf_str(&out), want);
	dk_buf_free(&out);
}

static void
test_header_relaxed_cases(void **state)
{
	(void)state;
	canon_hdr(RELAXED, "SUBJECT:hello", "subject:hello\r\n");
	canon_hdr(RELAXED, "Subject:", "subject:\r\n");
	canon_hdr(RELAXED, "Subject:   \t ", "subject:\r\n");
	canon_hdr(RELAXED, "Subject: \t a \t\t b \t", "subject:a b\r\n");
	canon_hdr(RELAXED, "Subject \t: x", "subject:x\r\n");
	/* unfolding: WSP on both sides of the line break is one SP */
	canon_hdr(RELAXED, "To: a,\r\n\tb,\r\n    c", "to:a, b, c\r\n");
	canon_hdr(RELAXED, "To: a,\r\n b", "to:a, b\r\n");
	/* a fold with no WSP before it still separates (the WSP after it) */
	canon_hdr(RELAXED, "To: a,\r\n\tb", "to:a, b\r\n");
	/* 8-bit bytes and case of the value are left alone */
	canon_hdr(RELAXED, "X-8bit: Gr\xc3\xbc\xc3\x9f Gott", "x-8bit:Gr\xc3\xbc\xc3\x9f Gott\r\n");
	/* only the first colon separates */
	canon_hdr(RELAXED, "X-A:b : c", "x-a:b : c\r\n");
}

static void
test_header_simple_cases(void **state)
{
	(void)state;
	canon_hdr(SIMPLE, "SUBJECT:  hello  ", "SUBJECT:  hello  \r\n");
	canon_hdr(SIMPLE, "To: a,\r\n\tb", "To: a,\r\n\tb\r\n");
}

static void
test_header_no_colon(void **state)
{
	struct dk_buf out;

	(void)state;
	dk_buf_init(&out, 4096);
	assert_int_equal(dkim_canon_header(RELAXED, "nocolon", 7, &out), DK_ERR_PARSE);
	assert_int_equal(dkim_canon_header((enum dkim_canon)7, "a:b", 3, &out), DK_ERR_INVALID);
	dk_buf_free(&out);
}

static void
test_empty_body(void **state)
{
	uint8_t d[DKIM_DIGEST_LEN];

	(void)state;
	/* RFC 6376 §3.4.3: simple empty body is CRLF; §3.4.4 (errata 3192): relaxed is empty */
	body_hash(SIMPLE, "", 0, 0, d);
	check_b64(d, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	body_hash(RELAXED, "", 0, 0, d);
	check_b64(d, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	/* only empty lines: the same */
	body_hash(SIMPLE, "\r\n\r\n\n", 5, 0, d);
	check_b64(d, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	body_hash(RELAXED, "\r\n\r\n\n", 5, 1, d);
	check_b64(d, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	/* relaxed: lines of white space only are empty lines */
	body_hash(RELAXED, " \t\r\n\t\r\n  ", 9, 0, d);
	check_b64(d, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

static void
test_whitespace_only_body_simple(void **state)
{
	(void)state;
	/* under simple white space is data */
	BODY(SIMPLE, " \t\r\n\r\n", " \t\r\n");
	BODY(SIMPLE, "  ", "  \r\n");
}

static void
test_trailing_whitespace(void **state)
{
	(void)state;
	BODY(RELAXED, "abc  \r\ndef\t\r\n", "abc\r\ndef\r\n");
	BODY(SIMPLE, "abc  \r\ndef\t\r\n", "abc  \r\ndef\t\r\n");
	BODY(RELAXED, "  lead\t \tmid  \r\n", " lead mid\r\n");
	/* an unterminated last line: WSP dropped, CRLF added */
	BODY(RELAXED, "abc \t", "abc\r\n");
	BODY(SIMPLE, "abc \t", "abc \t\r\n");
}

static void
test_trailing_empty_lines(void **state)
{
	(void)state;
	BODY(SIMPLE, "a\r\n\r\n\r\n\r\n", "a\r\n");
	BODY(RELAXED, "a\r\n\r\n  \r\n\t\r\n", "a\r\n");
	/* empty lines in the middle and at the start stay */
	BODY(SIMPLE, "\r\n\r\na\r\n\r\nb\r\n\r\n", "\r\n\r\na\r\n\r\nb\r\n");
	BODY(RELAXED, "\r\n \r\na\r\n\t\r\nb\r\n\r\n", "\r\n\r\na\r\n\r\nb\r\n");
	/* no line end at all */
	BODY(SIMPLE, "a", "a\r\n");
	BODY(RELAXED, "a", "a\r\n");
}

/* x CRLF, n empty lines, then tail; the canonical form is want. */
static void
check_many_lines(size_t n, const char *tail, const char *want_tail)
{
	uint8_t got[DKIM_DIGEST_LEN], exp[DKIM_DIGEST_LEN];
	size_t blen = 3 + 2 * n + strlen(tail), wlen;
	char *body, *want;
	size_t i;

	body = malloc(blen + 1);
	want = malloc(blen + 3);
	assert_non_null(body);
	assert_non_null(want);
	memcpy(body, "x\r\n", 3);
	for (i = 0; i < n; i++)
		memcpy(body + 3 + 2 * i, "\r\n", 2);
	memcpy(body + 3 + 2 * n, tail, strlen(tail) + 1);
	if (want_tail != NULL) {
		memcpy(want, body, blen);
		memcpy(want + blen, want_tail, strlen(want_tail) + 1);
	} else {
		memcpy(want, "x\r\n", 4);
	}
	wlen = strlen(want);
	sha256(want, wlen, exp);
	body_hash(SIMPLE, body, blen, 0, got);
	assert_memory_equal(got, exp, DKIM_DIGEST_LEN);
	body_hash(RELAXED, body, blen, 4093, got);
	assert_memory_equal(got, exp, DKIM_DIGEST_LEN);
	free(body);
	free(want);
}

static void
test_many_trailing_empty_lines(void **state)
{
	(void)state;
	/* held back as a count, not as bytes: the middle ones must all come out */
	check_many_lines(200000, "y", "\r\n");
	/* and all dropped when they are trailing */
	check_many_lines(200000, "", NULL);
}

static void
test_bare_lf(void **state)
{
	(void)state;
	BODY(SIMPLE, "a\nb \n\n\n", "a\r\nb \r\n");
	BODY(RELAXED, "a  x\nb \n\n\n", "a x\r\nb\r\n");
	BODY(SIMPLE, "a\r\nb\nc\r\n", "a\r\nb\r\nc\r\n");
	BODY(SIMPLE, "\n\nx\n", "\r\n\r\nx\r\n");
}

static void
test_lone_cr(void **state)
{
	(void)state;
	/* a CR not followed by LF is data */
	BODY(SIMPLE, "a\rb\r\n", "a\rb\r\n");
	BODY(RELAXED, "a \r b\r\n", "a \r b\r\n");
	BODY(SIMPLE, "a\r\r\n", "a\r\r\n");
	BODY(SIMPLE, "a\r\r\r\n\r\n", "a\r\r\r\n");
	/* a line holding only a CR is not empty */
	BODY(SIMPLE, "a\r\n\r\r\n\r\n", "a\r\n\r\r\n");
	/* white space before a lone CR is not at the end of the line */
	BODY(RELAXED, "a \t\r\r\n", "a \r\r\n");
	/* a CR at the very end */
	BODY(SIMPLE, "a\r", "a\r\r\n");
	BODY(RELAXED, "a\r", "a\r\r\n");
	BODY(SIMPLE, "\r", "\r\r\n");
}

static void
test_tabs_and_8bit(void **state)
{
	(void)state;
	BODY(RELAXED, "\tcol1\t\tcol2\t\r\n\xff\xfe \xe9\r\n", " col1 col2\r\n\xff\xfe \xe9\r\n");
	BODY(SIMPLE, "\tcol1\t\tcol2\t\r\n\xff\r\n", "\tcol1\t\tcol2\t\r\n\xff\r\n");
}

/* Every split into two and three chunks gives the one-call hash. */
static void
check_all_splits(enum dkim_canon c, const char *body)
{
	uint8_t whole[DKIM_DIGEST_LEN], got[DKIM_DIGEST_LEN];
	size_t len = strlen(body), i, j;
	struct dkim_body b;

	body_hash(c, body, len, 0, whole);
	for (i = 0; i <= len; i++) {
		for (j = i; j <= len; j++) {
			assert_int_equal(dkim_body_init(&b, c), 0);
			assert_int_equal(dkim_body_update(&b, (const uint8_t *)body, i), 0);
			assert_int_equal(dkim_body_update(&b, (const uint8_t *)body + i, j - i), 0);
			assert_int_equal(
			    dkim_body_update(&b, (const uint8_t *)body + j, len - j), 0);
			assert_int_equal(dkim_body_final(&b, got), 0);
			assert_memory_equal(got, whole, DKIM_DIGEST_LEN);
		}
	}
}

static void
test_chunking_independence(void **state)
{
	static const char *bodies[] = {
	    RFC_BODY,
	    "a\r\nb\r\n",
	    "x \t \r\n\r\n \r\ny\r\r\n\r",
	    "\r\n\r\n\r",
	    "line one\nline  two \t\n\n\n",
	    "\r\r\r\n\n\r \r\n",
	    "tail \t ",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		check_all_splits(SIMPLE, bodies[i]);
		check_all_splits(RELAXED, bodies[i]);
	}
}

static void
test_cr_at_chunk_end(void **state)
{
	uint8_t a[DKIM_DIGEST_LEN], b2[DKIM_DIGEST_LEN];
	struct dkim_body b;

	(void)state;
	/* "a\r" | "\nb\r\n" must be "a" CRLF "b" CRLF, not "a\r" + an empty line */
	assert_int_equal(dkim_body_init(&b, SIMPLE), 0);
	assert_int_equal(dkim_body_update(&b, (const uint8_t *)"a\r", 2), 0);
	assert_int_equal(dkim_body_update(&b, (const uint8_t *)"\nb\r\n", 4), 0);
	assert_int_equal(dkim_body_final(&b, a), 0);
	sha256("a\r\nb\r\n", 6, b2);
	assert_memory_equal(a, b2, DKIM_DIGEST_LEN);
	/* empty updates change nothing */
	assert_int_equal(dkim_body_init(&b, RELAXED), 0);
	assert_int_equal(dkim_body_update(&b, (const uint8_t *)"a \r", 3), 0);
	assert_int_equal(dkim_body_update(&b, (const uint8_t *)"", 0), 0);
	assert_int_equal(dkim_body_update(&b, (const uint8_t *)"\n", 1), 0);
	assert_int_equal(dkim_body_final(&b, a), 0);
	sha256("a\r\n", 3, b2);
	assert_memory_equal(a, b2, DKIM_DIGEST_LEN);
}

static void
test_body_misuse(void **state)
{
	uint8_t d[DKIM_DIGEST_LEN];
	struct dkim_body b;

	(void)state;
	assert_int_equal(dkim_body_init(&b, (enum dkim_canon)5), DK_ERR_INVALID);
	assert_null(b.md);
	dkim_body_free(&b);
	assert_int_equal(dkim_body_init(&b, SIMPLE), 0);
	assert_int_equal(dkim_body_final(&b, d), 0);
	assert_null(b.md);
	/* after final: further use is refused, free is safe */
	assert_int_equal(dkim_body_update(&b, (const uint8_t *)"x", 1), DK_ERR_INVALID);
	assert_int_equal(dkim_body_final(&b, d), DK_ERR_INVALID);
	dkim_body_free(&b);
	dkim_body_free(&b);
	/* free without final */
	assert_int_equal(dkim_body_init(&b, RELAXED), 0);
	assert_int_equal(dkim_body_update(&b, (const uint8_t *)"x", 1), 0);
	dkim_body_free(&b);
	assert_null(b.md);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc6376_example_body),
	    cmocka_unit_test(test_rfc6376_example_headers),
	    cmocka_unit_test(test_header_relaxed_cases),
	    cmocka_unit_test(test_header_simple_cases),
	    cmocka_unit_test(test_header_no_colon),
	    cmocka_unit_test(test_empty_body),
	    cmocka_unit_test(test_whitespace_only_body_simple),
	    cmocka_unit_test(test_trailing_whitespace),
	    cmocka_unit_test(test_trailing_empty_lines),
	    cmocka_unit_test(test_many_trailing_empty_lines),
	    cmocka_unit_test(test_bare_lf),
	    cmocka_unit_test(test_lone_cr),
	    cmocka_unit_test(test_tabs_and_8bit),
	    cmocka_unit_test(test_chunking_independence),
	    cmocka_unit_test(test_cr_at_chunk_end),
	    cmocka_unit_test(test_body_misuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
