/*
 * test_dkim_msg.c - unit tests for dkim/ header section parsing, its limits,
 * and the From domain.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "dkim/dkim.h"

static int
parse(const char *s, struct dkim_headers *h)
{
	return dkim_headers_parse((const uint8_t *)s, strlen(s), h);
}

static int
parse_err(const char *s)
{
	struct dkim_headers h;
	int r;

	r = parse(s, &h);
	assert_null(h.fields);
	assert_null(h.storage);
	assert_int_equal(h.n, 0);
	dkim_headers_free(&h);
	return r;
}

static void
check_field(const struct dkim_field *f, const char *name, const char *raw)
{
	assert_int_equal(f->name_len, strlen(name));
	assert_memory_equal(f->name, name, f->name_len);
	assert_int_equal(f->raw_len, strlen(raw));
	assert_memory_equal(f->raw, raw, f->raw_len);
}

static void
test_header_end(void **state)
{
	size_t hl = 99, bo = 99;
	const char *m;

	(void)state;
	m = "A: b\r\nC: d\r\n\r\nbody\r\n";
	assert_int_equal(dkim_header_end((const uint8_t *)m, strlen(m), &hl, &bo), 0);
	assert_int_equal(hl, 12);
	assert_int_equal(bo, 14);
	m = "A: b\nC: d\n\nbody\n";
	assert_int_equal(dkim_header_end((const uint8_t *)m, strlen(m), &hl, &bo), 0);
	assert_int_equal(hl, 10);
	assert_int_equal(bo, 11);
	/* a line holding only CR is not the end; CR LF LF is (the LF line) */
	m = "A: b\r\n\rC: d\r\n\n";
	assert_int_equal(dkim_header_end((const uint8_t *)m, strlen(m), &hl, &bo), 0);
	assert_int_equal(hl, 13);
	assert_int_equal(bo, 14);
	/* no empty line (yet) */
	m = "A: b\r\nC: d\r\n";
	assert_int_equal(
	    dkim_header_end((const uint8_t *)m, strlen(m), &hl, &bo), DK_ERR_NOT_FOUND);
	m = "A: b\r\n\r";
	assert_int_equal(
	    dkim_header_end((const uint8_t *)m, strlen(m), &hl, &bo), DK_ERR_NOT_FOUND);
	assert_int_equal(dkim_header_end((const uint8_t *)"", 0, &hl, &bo), DK_ERR_NOT_FOUND);
	/* starts with an empty line */
	assert_int_equal(
	    dkim_header_end((const uint8_t *)"\r\nbody", 6, &hl, &bo), DK_ERR_MSG_NOT_MESSAGE);
	assert_int_equal(
	    dkim_header_end((const uint8_t *)"\nbody", 5, &hl, &bo), DK_ERR_MSG_NOT_MESSAGE);
}

static void
test_parse_basic(void **state)
{
	struct dkim_headers h;

	(void)state;
	assert_int_equal(
	    parse("From: a@b.example\r\nSubject: hi\r\n\tthere\r\nTo:x\r\n\r\n", &h), 0);
	assert_int_equal(h.n, 3);
	check_field(&h.fields[0], "From", "From: a@b.example");
	check_field(&h.fields[1], "Subject", "Subject: hi\r\n\tthere");
	check_field(&h.fields[2], "To", "To:x");
	assert_int_equal(
	    h.storage_len, strlen("From: a@b.example\r\nSubject: hi\r\n\tthere\r\nTo:x\r\n"));
	dkim_headers_free(&h);
	assert_null(h.fields);
	dkim_headers_free(&h); /* twice is safe */
}

static void
test_parse_bare_lf(void **state)
{
	struct dkim_headers h;

	(void)state;
	/* LF, CRLF mixed; no trailing empty line; last line unterminated */
	assert_int_equal(parse("A: 1\nB: 2\r\n 2b\n\t2c\nC: 3", &h), 0);
	assert_int_equal(h.n, 3);
	check_field(&h.fields[0], "A", "A: 1");
	check_field(&h.fields[1], "B", "B: 2\r\n 2b\r\n\t2c");
	check_field(&h.fields[2], "C", "C: 3");
	assert_int_equal(h.storage_len, 28);
	dkim_headers_free(&h);
}

static void
test_parse_names(void **state)
{
	struct dkim_headers h;

	(void)state;
	/* WSP before the colon is not part of the name (RFC 5322 §4.5.8 obs-optional) */
	assert_int_equal(
	    parse("Subject \t: x\r\nX-Odd!#$%&'*+-/=?^_`{|}~: y\r\nEmpty:\r\n", &h), 0);
	assert_int_equal(h.n, 3);
	check_field(&h.fields[0], "Subject", "Subject \t: x");
	check_field(&h.fields[1], "X-Odd!#$%&'*+-/=?^_`{|}~", "X-Odd!#$%&'*+-/=?^_`{|}~: y");
	check_field(&h.fields[2], "Empty", "Empty:");
	dkim_headers_free(&h);
	/* a continuation line of white space only belongs to the field */
	assert_int_equal(parse("A: 1\r\n \r\nB: 2\r\n", &h), 0);
	assert_int_equal(h.n, 2);
	check_field(&h.fields[0], "A", "A: 1\r\n ");
	dkim_headers_free(&h);
}

static void
test_parse_errors(void **state)
{
	(void)state;
	assert_int_equal(parse_err(""), DK_ERR_MSG_EMPTY);
	/* not a message: blank first line, white space first, no colon on the first line */
	assert_int_equal(parse_err("\r\nA: b\r\n"), DK_ERR_MSG_NOT_MESSAGE);
	assert_int_equal(parse_err("\n"), DK_ERR_MSG_NOT_MESSAGE);
	assert_int_equal(parse_err(" A: b\r\n"), DK_ERR_MSG_NOT_MESSAGE);
	assert_int_equal(parse_err("\tA: b\r\n"), DK_ERR_MSG_NOT_MESSAGE);
	assert_int_equal(parse_err("Hello world\r\n"), DK_ERR_MSG_NOT_MESSAGE);
	assert_int_equal(
	    parse_err("From someone Mon Jan  1 00:00:00 2024\r\nA: b\r\n"), DK_ERR_MSG_NOT_MESSAGE);
	/* bad header: no colon, empty name, bad name bytes */
	assert_int_equal(parse_err("A: b\r\nno colon here\r\n"), DK_ERR_MSG_BAD_HEADER);
	assert_int_equal(parse_err("A: b\r\n: empty name\r\n"), DK_ERR_MSG_BAD_HEADER);
	assert_int_equal(parse_err("A: b\r\nX\x80Y: z\r\n"), DK_ERR_MSG_BAD_HEADER);
	assert_int_equal(parse_err("A: b\r\nX Y: z\r\n"), DK_ERR_MSG_BAD_HEADER);
	/* bare CR inside a line */
	assert_int_equal(parse_err("A: b\rc\r\n"), DK_ERR_MSG_BAD_HEADER);
	assert_int_equal(parse_err("A: b\r"), DK_ERR_MSG_BAD_HEADER);
	/* something after the empty line */
	assert_int_equal(parse_err("A: b\r\n\r\nbody\r\n"), DK_ERR_MSG_BAD_HEADER);
}

static void
test_parse_nul(void **state)
{
	static const char m1[] = "A: b\0c\r\nB: d\r\n";
	static const char m2[] = "A: b\r\n \0\r\n";
	struct dkim_headers h;

	(void)state;
	assert_int_equal(
	    dkim_headers_parse((const uint8_t *)m1, sizeof(m1) - 1, &h), DK_ERR_MSG_BAD_HEADER);
	assert_int_equal(
	    dkim_headers_parse((const uint8_t *)m2, sizeof(m2) - 1, &h), DK_ERR_MSG_BAD_HEADER);
	assert_null(h.storage);
}

/* n fields "X-N: v" with LF or CRLF line ends. */
static char *
many_fields(size_t n, int lf)
{
	struct dk_buf b;
	size_t i;

	dk_buf_init(&b, 64 * 1024 * 1024);
	for (i = 0; i < n; i++)
		assert_int_equal(dk_buf_printf(&b, "X-%zu: v%s", i, lf ? "\n" : "\r\n"), 0);
	return dk_buf_steal(&b, NULL);
}

static void
test_too_many_headers(void **state)
{
	struct dkim_headers h;
	char *m;

	(void)state;
	m = many_fields(DKIM_HEADER_COUNT_MAX, 0);
	assert_int_equal(parse(m, &h), 0);
	assert_int_equal(h.n, DKIM_HEADER_COUNT_MAX);
	dkim_headers_free(&h);
	free(m);
	m = many_fields(DKIM_HEADER_COUNT_MAX + 1, 1);
	assert_int_equal(parse_err(m), DK_ERR_MSG_TOO_MANY_HEADERS);
	free(m);
}

/* One field "X: vvv...v" of exactly total bytes with its line end (lf: LF). */
static char *
one_field(size_t total, int lf)
{
	size_t eol = lf ? 1 : 2;
	char *m = malloc(total + 1);

	assert_non_null(m);
	memcpy(m, "X: ", 3);
	memset(m + 3, 'v', total - 3 - eol);
	memcpy(m + total - eol, lf ? "\n" : "\r\n", eol);
	m[total] = '\0';
	return m;
}

static void
test_too_large(void **state)
{
	struct dkim_headers h;
	char *m;

	(void)state;
	m = one_field(DKIM_HEADER_SECTION_MAX, 0);
	assert_int_equal(parse(m, &h), 0);
	assert_int_equal(h.storage_len, DKIM_HEADER_SECTION_MAX);
	dkim_headers_free(&h);
	free(m);
	m = one_field(DKIM_HEADER_SECTION_MAX + 1, 0);
	assert_int_equal(parse_err(m), DK_ERR_MSG_HEADER_TOO_LARGE);
	free(m);
	/* the limit is on the CRLF form: one byte under with LF is one over */
	m = one_field(DKIM_HEADER_SECTION_MAX, 1);
	assert_int_equal(parse_err(m), DK_ERR_MSG_HEADER_TOO_LARGE);
	free(m);
	m = one_field(DKIM_HEADER_SECTION_MAX - 1, 1);
	assert_int_equal(parse(m, &h), 0);
	dkim_headers_free(&h);
	free(m);
}

static void
test_name_length(void **state)
{
	char m[2 * DKIM_HEADER_NAME_MAX];
	struct dkim_headers h;

	(void)state;
	memset(m, 'N', DKIM_HEADER_NAME_MAX);
	memcpy(m + DKIM_HEADER_NAME_MAX, ": v\r\n", 6);
	assert_int_equal(parse(m, &h), 0);
	assert_int_equal(h.fields[0].name_len, DKIM_HEADER_NAME_MAX);
	dkim_headers_free(&h);
	memset(m, 'N', DKIM_HEADER_NAME_MAX + 1);
	memcpy(m + DKIM_HEADER_NAME_MAX + 1, ": v\r\n", 6);
	assert_int_equal(parse_err(m), DK_ERR_MSG_BAD_HEADER);
}

/* The From domain of a section holding "From: value". */
static int
from_of(const char *value, char *dom, size_t domlen)
{
	struct dkim_headers h;
	struct dk_buf b;
	int r;

	dk_buf_init(&b, 8192);
	assert_int_equal(
	    dk_buf_printf(&b, "To: x@y.example\r\nFrom:%s\r\nSubject: s\r\n", value), 0);
	assert_int_equal(parse(dk_buf_str(&b), &h), 0);
	r = dkim_from_domain(&h, dom, domlen);
	dkim_headers_free(&h);
	dk_buf_free(&b);
	return r;
}

static void
from_ok(const char *value, const char *want)
{
	char dom[DKIM_DOMAIN_MAX + 1];

	memset(dom, 'Z', sizeof(dom));
	if (from_of(value, dom, sizeof(dom)) != 0)
		fail_msg("From:%s: %s (%s)", value, dk_strerror(from_of(value, dom, sizeof(dom))),
		    dk_err_detail());
	assert_string_equal(dom, want);
}

static void
from_bad(const char *value, int err)
{
	char dom[DKIM_DOMAIN_MAX + 1];
	int r = from_of(value, dom, sizeof(dom));

	if (r != err)
		fail_msg("From:%s: got %d, want %d", value, r, err);
}

static void
test_from_forms(void **state)
{
	(void)state;
	from_ok(" Joe <joe@Example.COM>", "example.com");
	from_ok(" joe@example.com", "example.com");
	from_ok("joe@example.com", "example.com");
	from_ok(" <joe@example.com>", "example.com");
	from_ok(" \"Joe Q. Public\" <john.q.public@example.com>", "example.com");
	/* display names holding '@' and '<' */
	from_ok(" \"a@evil.example\" <joe@good.example>", "good.example");
	from_ok(" \"x <y@evil.example>\" <joe@good.example>", "good.example");
	from_ok(" \"quote \\\" <q@evil.example>\" <joe@good.example>", "good.example");
	from_ok(" a@evil.example <joe@good.example>", "good.example");
	/* comments */
	from_ok(" joe@good.example (Joe <joe@evil.example>)", "good.example");
	from_ok(" (c (nested @evil.example) c) joe@good.example", "good.example");
	from_ok(" joe@(comment)good.example(another)", "good.example");
	from_ok(" Joe <joe@good.example> (tail @evil.example)", "good.example");
	/* quoted local part with '@' */
	from_ok(" \"joe@evil.example\"@good.example", "good.example");
	/* folded */
	from_ok(" Joe Example\r\n <joe@sub.Good.Example>", "sub.good.example");
	/* 8-bit display name */
	from_ok(" J\xc3\xb6rg <j@xn--jrg-sna.example>", "xn--jrg-sna.example");
	/* several mailboxes in one domain */
	from_ok(" a@good.example, \"B, b\" <b@GOOD.example>", "good.example");
	/* a route */
	from_ok(" <@relay.example,@other.example:joe@good.example>", "good.example");
}

static void
test_from_bad(void **state)
{
	(void)state;
	from_bad("", DK_ERR_MSG_BAD_HEADER);
	from_bad("   ", DK_ERR_MSG_BAD_HEADER);
	from_bad(" Joe", DK_ERR_MSG_BAD_HEADER);
	from_bad(" joe@", DK_ERR_MSG_BAD_HEADER);
	from_bad(" <joe@>", DK_ERR_MSG_BAD_HEADER);
	from_bad(" Joe <joe@example.com", DK_ERR_MSG_BAD_HEADER);
	from_bad(" \"unterminated <joe@example.com>", DK_ERR_MSG_BAD_HEADER);
	from_bad(" joe@example.com (unterminated", DK_ERR_MSG_BAD_HEADER);
	from_bad(" joe@exa mple.com", DK_ERR_MSG_BAD_HEADER);
	from_bad(" joe@example..com", DK_ERR_MSG_BAD_HEADER);
	from_bad(" joe@.example.com", DK_ERR_MSG_BAD_HEADER);
	from_bad(" joe@example.com.", DK_ERR_MSG_BAD_HEADER);
	from_bad(" joe@-example.com", DK_ERR_MSG_BAD_HEADER);
	from_bad(" joe@ex_ample.com", DK_ERR_MSG_BAD_HEADER);
	from_bad(" joe@[192.0.2.1]", DK_ERR_MSG_BAD_HEADER);
	from_bad(" joe@ex;ample.com", DK_ERR_MSG_BAD_HEADER);
	from_bad(" joe@b\xc3\xbc"
	         "cher.example",
	    DK_ERR_MSG_BAD_HEADER);
	from_bad(" joe@example.com>", DK_ERR_MSG_BAD_HEADER);
	from_bad(" undisclosed-recipients:;", DK_ERR_MSG_BAD_HEADER);
	/* mailboxes in two domains */
	from_bad(" a@one.example, b@two.example", DK_ERR_MSG_MULTI_FROM);
}

static void
test_from_long_domain(void **state)
{
	char v[512], dom[DKIM_DOMAIN_MAX + 1];
	size_t i, n = 0;

	(void)state;
	/* 4 labels of 63 + 3 dots = 255 > 253 */
	n += (size_t)snprintf(v, sizeof(v), " j@");
	for (i = 0; i < 4; i++) {
		memset(v + n, 'a', 63);
		n += 63;
		v[n++] = i < 3 ? '.' : '\0';
	}
	from_bad(v, DK_ERR_MSG_BAD_HEADER);
	/* 253 is fine: 3 x 63 + 61 + 3 dots */
	v[3 + 63 * 3 + 3 + 61] = '\0';
	from_ok(v, v + 3);
	/* a label of 64 is not */
	memset(v + 3, 'b', 64);
	memcpy(v + 3 + 64, ".example", 9);
	from_bad(v, DK_ERR_MSG_BAD_HEADER);
	/* the caller's buffer too small */
	assert_int_equal(from_of(" j@example.com", dom, 5), DK_ERR_INVALID);
}

static void
test_from_count(void **state)
{
	char dom[DKIM_DOMAIN_MAX + 1];
	struct dkim_headers h;

	(void)state;
	assert_int_equal(parse("To: a@b.example\r\nSubject: x\r\n", &h), 0);
	assert_int_equal(dkim_from_domain(&h, dom, sizeof(dom)), DK_ERR_MSG_NO_FROM);
	dkim_headers_free(&h);
	/* a field merely ending in "from" is not From */
	assert_int_equal(parse("X-From: a@b.example\r\nFromage: a@b.example\r\n", &h), 0);
	assert_int_equal(dkim_from_domain(&h, dom, sizeof(dom)), DK_ERR_MSG_NO_FROM);
	dkim_headers_free(&h);
	assert_int_equal(
	    parse("From: a@b.example\r\nTo: c@d.example\r\nfROM: e@f.example\r\n", &h), 0);
	assert_int_equal(dkim_from_domain(&h, dom, sizeof(dom)), DK_ERR_MSG_MULTI_FROM);
	dkim_headers_free(&h);
	/* case-insensitive name, WSP before the colon */
	assert_int_equal(parse("FROM : a@B.example\r\n", &h), 0);
	assert_int_equal(dkim_from_domain(&h, dom, sizeof(dom)), 0);
	assert_string_equal(dom, "b.example");
	dkim_headers_free(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_end),
	    cmocka_unit_test(test_parse_basic),
	    cmocka_unit_test(test_parse_bare_lf),
	    cmocka_unit_test(test_parse_names),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_parse_nul),
	    cmocka_unit_test(test_too_many_headers),
	    cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_name_length),
	    cmocka_unit_test(test_from_forms),
	    cmocka_unit_test(test_from_bad),
	    cmocka_unit_test(test_from_long_domain),
	    cmocka_unit_test(test_from_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
