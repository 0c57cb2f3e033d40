/*
 * test_common.c - unit tests for common/: buffers, base64, JSON, durations, errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <sysexits.h>
#include <cmocka.h>

#include "common/dk_b64.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "common/dk_json.h"
#include "common/dk_time.h"

static void
test_buf_limit(void **state)
{
	struct dk_buf b;

	(void)state;
	dk_buf_init(&b, 8);
	assert_int_equal(dk_buf_puts(&b, "12345678"), 0);
	assert_int_equal(dk_buf_putc(&b, '9'), DK_ERR_TOO_LARGE);
	assert_int_equal(b.len, 8);
	assert_string_equal(dk_buf_str(&b), "12345678");
	dk_buf_consume(&b, 3);
	assert_string_equal(dk_buf_str(&b), "45678");
	assert_int_equal(dk_buf_printf(&b, "%d", 12), 0);
	assert_string_equal(dk_buf_str(&b), "4567812");
	assert_int_equal(dk_buf_printf(&b, "%d", 123), DK_ERR_TOO_LARGE);
	dk_buf_free(&b);
	assert_null(b.data);
}

static void
b64_roundtrip(const char *plain, const char *enc)
{
	struct dk_buf b, d;

	dk_buf_init(&b, 1024);
	dk_buf_init(&d, 1024);
	assert_int_equal(dk_b64_encode(&b, (const uint8_t *)plain, strlen(plain)), 0);
	assert_string_equal(dk_buf_str(&b), enc);
	assert_int_equal(dk_b64_decode(&d, enc, strlen(enc)), 0);
	assert_int_equal(d.len, strlen(plain));
	assert_memory_equal(d.data, plain, d.len);
	dk_buf_free(&b);
	dk_buf_free(&d);
}

static void
test_b64_vectors(void **state)
{
	(void)state;
	/* RFC 4648 §10 test vectors */
	b64_roundtrip("", "");
	b64_roundtrip("f", "Zg==");
	b64_roundtrip("fo", "Zm8=");
	b64_roundtrip("foo", "Zm9v");
	b64_roundtrip("foob", "Zm9vYg==");
	b64_roundtrip("fooba", "Zm9vYmE=");
	b64_roundtrip("foobar", "Zm9vYmFy");
}

static void
test_b64_bad(void **state)
{
	struct dk_buf d;
	const char *bad[] = {"Zg=", "Z===", "Zg==Zg==", "Zm9v!", "Z", "Zm9vYmFy="};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dk_buf_init(&d, 64);
		assert_int_equal(dk_b64_decode(&d, bad[i], strlen(bad[i])), DK_ERR_PARSE);
		dk_buf_free(&d);
	}
	/* White space is allowed inside DKIM base64 values (RFC 6376 §3.5). */
	dk_buf_init(&d, 64);
	assert_int_equal(dk_b64_decode(&d, "Zm9v\r\n\tYmFy", 11), 0);
	assert_int_equal(d.len, 6);
	dk_buf_free(&d);
}

static void
test_json(void **state)
{
	struct dk_buf b;
	struct dk_json j;

	(void)state;
	dk_buf_init(&b, 4096);
	dk_json_init(&j, &b);
	dk_json_obj_open(&j, NULL);
	dk_json_str(&j, "s", "a\"b\\c\n\x01\xc3\xa9");
	dk_json_int(&j, "n", -5);
	dk_json_arr_open(&j, "l");
	dk_json_bool(&j, NULL, 1);
	dk_json_null(&j, NULL);
	dk_json_arr_close(&j);
	dk_json_obj_close(&j);
	assert_int_equal(dk_json_finish(&j), 0);
	assert_string_equal(dk_buf_str(&b),
	    "{\"s\":\"a\\\"b\\\\c\\n\\u0001\\u00c3\\u00a9\",\"n\":-5,\"l\":[true,null]}");
	dk_buf_free(&b);

	dk_buf_init(&b, 4096);
	dk_json_init(&j, &b);
	dk_json_obj_open(&j, NULL);
	assert_int_equal(dk_json_finish(&j), DK_ERR_INVALID);
	dk_buf_free(&b);
}

static void
test_duration(void **state)
{
	int64_t s;

	(void)state;
	assert_int_equal(dk_duration_parse("90d", &s), 0);
	assert_int_equal(s, 90 * 86400);
	assert_int_equal(dk_duration_parse("1h", &s), 0);
	assert_int_equal(s, 3600);
	assert_int_equal(dk_duration_parse("30", &s), 0);
	assert_int_equal(s, 30);
	assert_int_equal(dk_duration_parse("5m", &s), 0);
	assert_int_equal(s, 300);
	assert_int_equal(dk_duration_parse("", &s), DK_ERR_INVALID);
	assert_int_equal(dk_duration_parse("-1d", &s), DK_ERR_INVALID);
	assert_int_equal(dk_duration_parse("1w", &s), DK_ERR_INVALID);
	assert_int_equal(dk_duration_parse("1dd", &s), DK_ERR_INVALID);
	assert_int_equal(dk_duration_parse("99999999999d", &s), DK_ERR_INVALID);
}

static void
test_time(void **state)
{
	char buf[32];
	time_t t;

	(void)state;
	dk_time_rfc3339(1528637909, buf, sizeof(buf));
	assert_string_equal(buf, "2018-06-10T13:38:29Z");
	assert_int_equal(dk_time_parse(buf, &t), 0);
	assert_int_equal(t, 1528637909);
	assert_int_equal(dk_time_parse("2018-06-10", &t), 0);
	assert_int_equal(t, 1528588800);
	assert_int_equal(dk_time_parse("yesterday", &t), DK_ERR_INVALID);
}

static void
test_errors(void **state)
{
	(void)state;
	assert_int_equal(dk_err_exit(DK_OK), 0);
	assert_int_equal(dk_err_exit(DK_ERR_MSG_NO_FROM), EX_DATAERR);
	assert_int_equal(dk_err_exit(DK_ERR_NOT_AUTHORIZED), EX_NOPERM);
	assert_int_equal(dk_err_exit(DK_ERR_BUSY), EX_TEMPFAIL);
	assert_int_equal(dk_err_exit(DK_ERR_UNAVAILABLE), EX_UNAVAILABLE);
	assert_int_equal(dk_err_exit(DK_ERR_CONFIG), EX_CONFIG);
	assert_int_equal(dk_err_exit(DK_ERR_USAGE), EX_USAGE);
	assert_string_equal(
	    dk_strerror(DK_ERR_MSG_MULTI_FROM), "message has more than one From header");
	assert_string_equal(dk_strerror(-9999), "unknown error");
	assert_int_equal(dk_err_set(DK_ERR_IO, "x %d", 1), DK_ERR_IO);
	assert_string_equal(dk_err_detail(), "x 1");
	/* Prefixing context to the detail itself must not garble it. */
	dk_err_set(DK_ERR_IO, "[token %s]: %s", "primary", dk_err_detail());
	assert_string_equal(dk_err_detail(), "[token primary]: x 1");
	dk_err_clear();
	assert_string_equal(dk_err_detail(), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buf_limit),
	    cmocka_unit_test(test_b64_vectors),
	    cmocka_unit_test(test_b64_bad),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_duration),
	    cmocka_unit_test(test_time),
	    cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
