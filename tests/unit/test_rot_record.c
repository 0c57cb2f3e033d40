/*
 * test_rot_record.c - rotate/rot_record.c: the bounded parser of key
 * records as DNS serves them (RFC 6376 §3.6.1, RFC 8463 §4), their
 * comparison, selector templates; and the optional rotation fields of the
 * key metadata record (pushed=, seen=, replaces=) written and read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "hsm/hsm_int.h"
#include "rotate/rot_record.h"

static int
parse(const char *s, struct rot_rec *r)
{
	return rot_rec_parse(s, strlen(s), r);
}

static void
test_parse_good(void **state)
{
	struct rot_rec r;

	(void)state;
	rot_rec_init(&r);
	assert_int_equal(parse("v=DKIM1; k=ed25519; p=AAAA BBBB\t==", &r), 0);
	assert_string_equal(r.k, "ed25519");
	assert_string_equal(dk_buf_str(&r.p), "AAAABBBB==");
	assert_int_equal(r.testing, 0);
	/* k= defaults to rsa; v= is optional; unknown tags and a final ';' are fine. */
	assert_int_equal(parse(" p=QUJD ; x-new=1;", &r), 0);
	assert_string_equal(r.k, "rsa");
	assert_int_equal(parse("v=DKIM1; t=s:y; p=QUJD", &r), 0);
	assert_int_equal(r.testing, 1);
	assert_int_equal(parse("v=DKIM1; t=s; p=QUJD", &r), 0);
	assert_int_equal(r.testing, 0);
	/* Revoked: an empty p=. */
	assert_int_equal(parse("v=DKIM1; k=rsa; p=", &r), 0);
	assert_int_equal(r.p.len, 0);
	rot_rec_free(&r);
}

static void
test_parse_bad(void **state)
{
	static const char *const bad[] = {
	    "",                /* no p= */
	    "v=DKIM1; k=rsa",  /* no p= */
	    "v=spf1 -all",     /* not DKIM1, no p= */
	    "v=DKIM2; p=QUJD", /* another version */
	    "p=QUJD; p=QUJD",  /* a tag twice */
	    "p=QUJD;; k=rsa",  /* an empty element in the middle */
	    "p",               /* no '=' */
	    "=x; p=QUJD",      /* no tag name */
	    "k=waytoolongalgorithmname; p=QUJD",
	};
	struct rot_rec r;
	char big[ROT_REC_VALUE_MAX + 8];
	size_t i;

	(void)state;
	rot_rec_init(&r);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_not_equal(parse(bad[i], &r), 0);
	memset(big, 'A', sizeof(big));
	memcpy(big, "p=", 2);
	assert_int_equal(rot_rec_parse(big, sizeof(big), &r), DK_ERR_TOO_LARGE);
	rot_rec_free(&r);
}

static void
test_compare(void **state)
{
	struct rot_rec want, got;

	(void)state;
	rot_rec_init(&want);
	rot_rec_init(&got);
	assert_int_equal(parse("v=DKIM1; k=rsa; p=QUJD", &want), 0);
	assert_int_equal(parse("p=Q U J D", &got), 0);
	assert_int_equal(rot_rec_compare(&want, &got), ROT_MATCH);
	assert_int_equal(parse("v=DKIM1; k=ed25519; p=QUJD", &got), 0);
	assert_int_equal(rot_rec_compare(&want, &got), ROT_WRONG_K);
	assert_int_equal(parse("v=DKIM1; k=rsa; p=QUJE", &got), 0);
	assert_int_equal(rot_rec_compare(&want, &got), ROT_WRONG_KEY);
	assert_int_equal(parse("v=DKIM1; k=rsa; p=", &got), 0);
	assert_int_equal(rot_rec_compare(&want, &got), ROT_REVOKED);
	rot_rec_free(&want);
	rot_rec_free(&got);
}

static void
test_selector_expand(void **state)
{
	char out[HSM_SELECTOR_MAX + 1];
	time_t t = 1795564258; /* 2026-11-24T23:50:58Z */

	(void)state;
	assert_int_equal(
	    rot_selector_expand("s{date:%Y%m}-{alg}", "rsa", t, "", out, sizeof(out)), 0);
	assert_string_equal(out, "s202611-rsa");
	assert_int_equal(
	    rot_selector_expand("s{date:%Y%m}-{alg}", "ed25519", t, "b", out, sizeof(out)), 0);
	assert_string_equal(out, "s202611b-ed25519");
	assert_int_equal(
	    rot_selector_expand("DKIM{date:%Y%m%d%H%M}", "rsa", t, "c", out, sizeof(out)), 0);
	assert_string_equal(out, "dkim202611242350c");
	assert_int_equal(
	    rot_selector_expand("s{date:%s}", "rsa", t, "", out, sizeof(out)), DK_ERR_CONFIG);
	assert_int_equal(
	    rot_selector_expand("s{nope}", "rsa", t, "", out, sizeof(out)), DK_ERR_CONFIG);
	assert_int_equal(
	    rot_selector_expand("s{alg", "rsa", t, "", out, sizeof(out)), DK_ERR_CONFIG);
	assert_int_equal(rot_selector_expand("{alg}", "rsa", t, "", out, 3), DK_ERR_CONFIG);
}

/* The rotation fields are optional, written only when set, and read back. */
static void
test_meta_rotation_fields(void **state)
{
	struct hsm_key_meta m, back;
	struct dk_buf b;
	unsigned long rev;

	(void)state;
	memset(&m, 0, sizeof(m));
	strcpy(m.domain, "example.com");
	strcpy(m.selector, "s202611b-rsa");
	strcpy(m.alg, "rsa-sha256");
	strcpy(m.slot, "primary");
	strcpy(m.state, "pending");
	m.created = m.changed = 1795564258;
	dk_buf_init(&b, HSM_META_MAX);
	assert_int_equal(hsm_meta_format(&m, 1, &b), 0);
	assert_null(strstr(dk_buf_str(&b), "pushed="));
	assert_null(strstr(dk_buf_str(&b), "replaces="));
	m.pushed = 1795564260;
	m.seen = 1795564261;
	strcpy(m.replaces, "s202611-rsa");
	dk_buf_reset(&b);
	assert_int_equal(hsm_meta_format(&m, 2, &b), 0);
	assert_non_null(strstr(dk_buf_str(&b), "replaces=s202611-rsa\n"));
	assert_int_equal(hsm_meta_parse(b.data, b.len, &back, &rev), 0);
	assert_int_equal(back.pushed, m.pushed);
	assert_int_equal(back.seen, m.seen);
	assert_string_equal(back.replaces, "s202611-rsa");
	/* A bad replaced selector is refused on both sides. */
	strcpy(m.replaces, "bad selector");
	dk_buf_reset(&b);
	assert_int_not_equal(hsm_meta_format(&m, 3, &b), 0);
	dk_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_good),
	    cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test(test_compare),
	    cmocka_unit_test(test_selector_expand),
	    cmocka_unit_test(test_meta_rotation_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
