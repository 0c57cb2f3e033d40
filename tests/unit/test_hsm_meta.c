/*
 * test_hsm_meta.c - the metadata record kept beside each key in the token
 * (hsm/hsm_meta.c): strict parsing, and that every record it accepts can
 * be written back (regression cases found by tests/fuzz/fuzz_meta).
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

#define REC(created, changed)                                                                      \
	"v=1\ndomain=example.com\nselector=s202611-rsa\nalg=rsa-sha256\nslot=primary\n"            \
	"state=pending\ncreated=" created "\nchanged=" changed "\nrev=3\n"

static int
parse(const char *text, struct hsm_key_meta *m, unsigned long *rev)
{
	return hsm_meta_parse((const uint8_t *)text, strlen(text), m, rev);
}

static void
test_parse_good(void **state)
{
	struct hsm_key_meta m;
	unsigned long rev;

	(void)state;
	assert_int_equal(parse(REC("2026-11-24T23:50:58Z", "1795564258"), &m, &rev), 0);
	assert_string_equal(m.domain, "example.com");
	assert_string_equal(m.state, "pending");
	assert_int_equal(m.created, 1795564258);
	assert_int_equal(m.changed, 1795564258);
	assert_int_equal(rev, 3);
}

/* Accepted records are written back unchanged (a state change rewrites the record). */
static void
test_round_trip(void **state)
{
	static const char *const recs[] = {
	    REC("2026-11-24T23:50:58Z", "2026-11-24T23:50:58Z"),
	    REC("0", "1"),
	    REC("9999-12-31T23:59:59Z", "253402300799"),
	};
	struct hsm_key_meta m, m2;
	unsigned long rev, rev2;
	struct dk_buf text;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
		dk_buf_init(&text, 4096);
		assert_int_equal(parse(recs[i], &m, &rev), 0);
		assert_int_equal(hsm_meta_format(&m, rev, &text), 0);
		assert_int_equal(hsm_meta_parse(text.data, text.len, &m2, &rev2), 0);
		assert_int_equal(m.created, m2.created);
		assert_int_equal(m.changed, m2.changed);
		assert_int_equal(rev, rev2);
		dk_buf_free(&text);
	}
}

/*
 * fuzz_meta: "created=179551795564258" (UNIX seconds in the year 5.7
 * million) was accepted, but hsm_meta_format() cannot write it as RFC 3339,
 * so the next state change wrote a record with "created=" that no listing
 * could read: the key vanished from its ring.  Such times are refused now.
 */
static void
test_time_beyond_rfc3339(void **state)
{
	struct hsm_key_meta m;
	unsigned long rev;

	(void)state;
	assert_int_equal(parse(REC("179551795564258", "1795564258"), &m, &rev), DK_ERR_PARSE);
	assert_int_equal(parse(REC("1795564258", "253402300800"), &m, &rev), DK_ERR_PARSE);
	assert_int_equal(parse(REC("9223372036854775807", "0"), &m, &rev), DK_ERR_PARSE);
}

/* A tombstone (state "destroyed", hsm_key_destroy) is a record like the others. */
static void
test_tombstone(void **state)
{
	static const char rec[] = "v=1\ndomain=example.com\nselector=lone\nalg=ed25519-sha256\n"
	                          "slot=backup\nstate=destroyed\ncreated=0\nchanged=1\nrev=7\n";
	struct hsm_key_meta m, m2;
	unsigned long rev, rev2;
	struct dk_buf text;

	(void)state;
	dk_buf_init(&text, 4096);
	assert_int_equal(parse(rec, &m, &rev), 0);
	assert_string_equal(m.state, "destroyed");
	assert_int_equal(hsm_meta_format(&m, rev + 1, &text), 0);
	assert_int_equal(hsm_meta_parse(text.data, text.len, &m2, &rev2), 0);
	assert_string_equal(m2.state, "destroyed");
	assert_int_equal(rev2, 8);
	dk_buf_free(&text);
	assert_int_equal(parse("v=1\ndomain=example.com\nselector=s\nalg=rsa-sha256\nslot=primary\n"
	                       "state=gone\ncreated=0\nchanged=0\nrev=1\n",
	                     &m, &rev),
	    DK_ERR_PARSE);
}

static void
test_parse_bad(void **state)
{
	static const char *const bad[] = {
	    "",
	    "v=2\n",
	    REC("2026-11-24T23:50:58Z", "2026-11-24T23:50:58Z") "domain=twice.example\n",
	    "v=1\ndomain=example.com\n",
	    "v=1\ndomain=example.com\nselector=s\nalg=rsa-sha1\nslot=primary\nstate=active\n"
	    "created=0\nchanged=0\n",
	    "v=1\ndomain=example.com\nselector=s\nalg=rsa-sha256\nslot=primary\nstate=active\n"
	    "created=0\nchanged=0",
	    "v=1\ndomain=exa mple.com\nselector=s\nalg=rsa-sha256\nslot=primary\nstate=active\n"
	    "created=0\nchanged=0\n",
	};
	struct hsm_key_meta m;
	unsigned long rev;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i], &m, &rev), DK_ERR_PARSE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_good),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_time_beyond_rfc3339),
	    cmocka_unit_test(test_tombstone),
	    cmocka_unit_test(test_parse_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
