/*
 * test_audit_rec.c - unit tests for audit/: record format, the strict JSON
 * reader, the chain, and the file writer (locking, catching up, torn lines,
 * failed writes).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "audit/dka_file.h"
#include "audit/dka_read.h"
#include "audit/dka_rec.h"
#include "common/dk_err.h"

static char tmpdir[] = "/tmp/dka-test-XXXXXX";

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	if (len != NULL)
		*len = n;
	return buf;
}

static void
test_time(void **state)
{
	char t[DKA_TIME_LEN + 1];
	int64_t us = 0;

	(void)state;
	dka_time_format(1795562944123456LL, t);
	assert_string_equal(t, "2026-11-24T23:29:04.123456Z");
	assert_int_equal(dka_time_parse(t, strlen(t), &us), 0);
	assert_int_equal(us, 1795562944123456LL);
	assert_int_equal(dka_time_parse("2026-11-24", 10, &us), 0);
	assert_int_equal(us, 1795478400LL * 1000000);
	assert_int_equal(dka_time_parse("2026-11-24T23:29:04Z", 20, &us), 0);
	assert_int_equal(us, 1795562944LL * 1000000);
	assert_int_equal(dka_time_parse("2026-13-24", 10, &us), DK_ERR_PARSE);
	assert_int_equal(dka_time_parse("2026-11-24T23:29:04", 19, &us), DK_ERR_PARSE);
	assert_int_equal(dka_time_parse("2026-11-24T23:29:04.12345xZ", 27, &us), DK_ERR_PARSE);
}

static void
test_json_accepts_own_format(void **state)
{
	static const char line[] =
	    "{\"v\":1,\"seq\":42,\"neg\":-7,\"ok\":true,\"no\":false,"
	    "\"nil\":null,\"s\":\"a\\\"b\\\\c\\n\\u00ff\\u0001\","
	    "\"sigs\":[{\"alg\":\"rsa-sha256\"},{\"alg\":\"ed25519-sha256\"}],"
	    "\"e\":{},\"a\":[]}";
	struct dka_jdoc *d = calloc(1, sizeof(*d));
	uint64_t v = 0;
	size_t len = 0;
	const char *s;
	int i;

	(void)state;
	assert_non_null(d);
	assert_int_equal(dka_json_parse(line, strlen(line), d), 0);
	assert_int_equal(dka_json_u64(d, 0, "seq", &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(dka_json_u64(d, 0, "neg", &v), DK_ERR_PARSE);
	assert_int_equal(dka_json_u64(d, 0, "missing", &v), DK_ERR_NOT_FOUND);
	s = dka_json_str(d, 0, "s", &len);
	assert_non_null(s);
	assert_int_equal(len, 8);
	assert_memory_equal(s, "a\"b\\c\n\xff\x01", 8);
	assert_null(dka_json_str(d, 0, "seq", NULL));
	i = dka_json_get(d, 0, "sigs");
	assert_true(i > 0);
	assert_int_equal(d->n[i].type, DKA_J_ARR);
	i = d->n[i].first;
	assert_string_equal(dka_json_str(d, i, "alg", NULL), "rsa-sha256");
	i = d->n[i].next;
	assert_string_equal(dka_json_str(d, i, "alg", NULL), "ed25519-sha256");
	assert_int_equal(d->n[i].next, -1);
	dka_json_free(d);
	free(d);
}

static void
test_json_rejects(void **state)
{
	static const char *const bad[] = {
	    "",
	    "[]",
	    "{\"a\":1",
	    "{\"a\":1}x",
	    "{ \"a\":1}",
	    "{\"a\": 1}",
	    "{\"a\":1,\"a\":2}",
	    "{\"A\":1}",
	    "{\"a\":1.5}",
	    "{\"a\":1e3}",
	    "{\"a\":01}",
	    "{\"a\":-}",
	    "{\"a\":99999999999999999999}",
	    "{\"a\":\"\\x\"}",
	    "{\"a\":\"\\u0100\"}",
	    "{\"a\":\"\xc3\xa9\"}",
	    "{\"a\":\"tab\there\"}",
	    "{\"a\":\"open}",
	    "{\"a\":tru}",
	    "{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}",
	    "{\"a\":[1,]}",
	    "{,}",
	};
	struct dka_jdoc *d = calloc(1, sizeof(*d));
	size_t i;

	(void)state;
	assert_non_null(d);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (dka_json_parse(bad[i], strlen(bad[i]), d) != DK_ERR_PARSE)
			fail_msg("accepted: %s", bad[i]);
		assert_true(d->err[0] != '\0');
	}
	dka_json_free(d);
	free(d);
}

static void
test_json_node_limit(void **state)
{
	struct dka_jdoc *d = calloc(1, sizeof(*d));
	char *line = malloc(16 * DKA_JSON_NODES + 16);
	size_t n = 0;
	int i;

	(void)state;
	assert_non_null(d);
	assert_non_null(line);
	n += (size_t)sprintf(line, "{\"a\":[");
	for (i = 0; i < DKA_JSON_NODES; i++)
		n += (size_t)sprintf(line + n, "%s1", i ? "," : "");
	n += (size_t)sprintf(line + n, "]}");
	assert_int_equal(dka_json_parse(line, n, d), DK_ERR_PARSE);
	assert_non_null(strstr(d->err, "more than"));
	dka_json_free(d);
	free(d);
	free(line);
}

static void
test_chain(void **state)
{
	static const struct dka_head zero = {0, {0}};
	struct dka_jdoc *d = calloc(1, sizeof(*d));
	struct dka_batch b;
	struct dk_json *j;
	uint8_t h1[DKA_HASH_LEN], prev[DKA_HASH_LEN];
	const char *nl, *p;
	size_t plen = 0;
	uint64_t seq = 0;

	(void)state;
	dka_batch_init(&b, &zero, 0);
	j = dka_rec_begin(&b, "sign", 1795562944123456LL);
	dk_json_str(j, "domain", "example.com");
	assert_int_equal(dka_rec_end(&b), 0);
	j = dka_rec_begin(&b, "sign", 1795562944123457LL);
	dk_json_str(j, "domain", "example.org");
	assert_int_equal(dka_rec_end(&b), 0);
	assert_int_equal(b.nlines, 2);
	assert_int_equal(b.head.seq, 2);
	assert_int_equal(b.since_cp, 2);
	p = (const char *)b.buf.data;
	nl = strchr(p, '\n');
	assert_non_null(nl);
	assert_int_equal(
	    strncmp(p,
	        "{\"v\":1,\"seq\":1,\"time\":\"2026-11-24T23:29:04.123456Z\","
	        "\"event\":\"sign\",\"domain\":\"example.com\",\"prev\":\""
	        "0000000000000000000000000000000000000000000000000000000000000000\"}\n",
	        (size_t)(nl - p) + 1),
	    0);
	dka_line_hash((const uint8_t *)p, (size_t)(nl - p), h1);
	assert_int_equal(dka_json_parse(nl + 1, strlen(nl + 1) - 1, d), 0);
	assert_int_equal(dka_json_u64(d, 0, "seq", &seq), 0);
	assert_int_equal(seq, 2);
	p = dka_json_str(d, 0, "prev", &plen);
	assert_int_equal(dka_unhex(p, plen, prev, DKA_HASH_LEN), 0);
	assert_memory_equal(prev, h1, DKA_HASH_LEN);
	dka_batch_free(&b);
	dka_json_free(d);
	free(d);
}

/* A fake checkpoint signer: all-0x11 signature, key of all 0x22. */
static int
fake_sign(
    void *arg, const uint8_t *msg, size_t len, uint8_t sig[DKA_SIG_LEN], uint8_t pub[DKA_PUB_LEN])
{
	(void)arg;
	(void)msg;
	(void)len;
	memset(sig, 0x11, DKA_SIG_LEN);
	memset(pub, 0x22, DKA_PUB_LEN);
	return 0;
}

static int
fail_sign(
    void *arg, const uint8_t *msg, size_t len, uint8_t sig[DKA_SIG_LEN], uint8_t pub[DKA_PUB_LEN])
{
	(void)arg;
	(void)msg;
	(void)len;
	(void)sig;
	(void)pub;
	return dk_err_set(DK_ERR_TOKEN_FAILING, "no token");
}

static void
test_checkpoint_record(void **state)
{
	static const struct dka_head zero = {0, {0}};
	struct dka_batch b;
	struct dk_buf msg;
	size_t before;

	(void)state;
	dka_batch_init(&b, &zero, 0);
	dka_rec_begin(&b, "sign", 1000000);
	assert_int_equal(dka_rec_end(&b), 0);
	before = b.buf.len;
	assert_int_equal(
	    dka_batch_checkpoint(&b, "exit", 2000000, fail_sign, NULL), DK_ERR_TOKEN_FAILING);
	assert_int_equal(b.buf.len, before);
	assert_int_equal(b.since_cp, 1);
	assert_int_equal(dka_batch_checkpoint(&b, "exit", 2000000, fake_sign, NULL), 0);
	assert_int_equal(b.since_cp, 0);
	assert_true(b.has_cp);
	assert_int_equal(b.cp.seq, 2);
	assert_non_null(strstr((const char *)b.buf.data + before,
	    "\"event\":\"checkpoint\",\"reason\":\"exit\",\"records\":1,\"key\":\""));
	dk_buf_init(&msg, 512);
	assert_int_equal(dka_checkpoint_msg(7, "T", "H", &msg), 0);
	assert_string_equal(
	    dk_buf_str(&msg), "dkimkeep-audit-checkpoint-v1\nseq=7\ntime=T\nhead=H\n");
	dk_buf_free(&msg);
	dka_batch_free(&b);
}

/* Write n "sign" records through writer f (locking, opening the file if empty). */
static void
append(struct dka_file *f, int n, const char *reason)
{
	struct dka_batch b;
	struct dk_json *j;
	int i;

	assert_int_equal(dka_file_lock(f, 1000), 0);
	assert_int_equal(dka_file_batch(f, &b, NULL, reason, "test"), 0);
	for (i = 0; i < n; i++) {
		j = dka_rec_begin(&b, "sign", dka_now_us());
		dk_json_int(j, "i", i);
		assert_int_equal(dka_rec_end(&b), 0);
	}
	assert_int_equal(dka_file_commit(f, &b), 0);
	dka_file_unlock(f);
	dka_batch_free(&b);
}

static void
test_file_writers_share(void **state)
{
	struct dka_file a = {.fd = -1}, c = {.fd = -1};
	char path[256], *text;

	(void)state;
	snprintf(path, sizeof(path), "%s/share.jsonl", tmpdir);
	assert_int_equal(dka_file_open(path, &a), 0);
	append(&a, 3, "start");
	assert_int_equal(a.head.seq, 4); /* log.open + 3 */
	/* A second writer (the CLI) catches up from the file's last line. */
	assert_int_equal(dka_file_open(path, &c), 0);
	append(&c, 2, "admin");
	assert_int_equal(c.head.seq, 6);
	/* The first writer notices the file grew and continues after seq 6. */
	append(&a, 1, "start");
	assert_int_equal(a.head.seq, 7);
	text = slurp(path, NULL);
	assert_non_null(strstr(text, "\"seq\":1,"));
	assert_non_null(strstr(text, "\"event\":\"log.open\",\"link\":\"genesis\""));
	assert_non_null(strstr(text, "\"seq\":7,"));
	assert_null(strstr(text, "\"seq\":8,"));
	free(text);
	dka_file_free(&a);
	dka_file_free(&c);
}

static void
test_file_torn_line_and_foreign_line(void **state)
{
	struct dka_file a = {.fd = -1};
	char path[256], *text;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/torn.jsonl", tmpdir);
	assert_int_equal(dka_file_open(path, &a), 0);
	append(&a, 2, "start");
	dka_file_close(&a);
	f = fopen(path, "ab");
	fputs("{\"v\":1,\"seq\":4,\"ti", f);
	fclose(f);
	/* A restarted writer cuts the torn line and says so. */
	assert_int_equal(dka_file_open(path, &a), 0);
	append(&a, 1, "start");
	assert_int_equal(a.head.seq, 5);
	text = slurp(path, NULL);
	assert_null(strstr(text, "\"ti{"));
	assert_non_null(strstr(text, "\"event\":\"log.repair\",\"cut_bytes\":18"));
	free(text);
	dka_file_close(&a);
	/* Something that is not an audit record at the end stops the writer. */
	f = fopen(path, "ab");
	fputs("hello\n", f);
	fclose(f);
	assert_int_equal(dka_file_open(path, &a), 0);
	assert_int_equal(dka_file_lock(&a, 1000), DK_ERR_PARSE);
	assert_non_null(strstr(dk_err_detail(), "not an audit record"));
	dka_file_free(&a);
}

static void
test_file_reopen_links_previous(void **state)
{
	struct dka_file a = {.fd = -1};
	char path[256], path2[256], *text;
	struct dka_head before;

	(void)state;
	snprintf(path, sizeof(path), "%s/rot.jsonl", tmpdir);
	snprintf(path2, sizeof(path2), "%s/rot.jsonl.1", tmpdir);
	assert_int_equal(dka_file_open(path, &a), 0);
	append(&a, 2, "start");
	before = a.head;
	assert_int_equal(rename(path, path2), 0);
	dka_file_close(&a);
	assert_int_equal(dka_file_open(path, &a), 0);
	append(&a, 1, "reopen");
	assert_int_equal(a.head.seq, before.seq + 2);
	text = slurp(path, NULL);
	assert_non_null(strstr(text, "\"seq\":4,"));
	assert_non_null(strstr(text, "\"link\":\"previous\",\"reason\":\"reopen\""));
	free(text);
	dka_file_free(&a);
}

static void
test_file_write_fails(void **state)
{
	struct dka_file a = {.fd = -1};
	struct dka_batch b;
	struct dk_json *j;

	(void)state;
	if (access("/dev/full", W_OK) != 0)
		skip();
	assert_int_equal(dka_file_open("/dev/full", &a), 0);
	assert_int_equal(dka_file_lock(&a, 1000), 0);
	assert_int_equal(dka_file_batch(&a, &b, NULL, "start", "test"), 0);
	j = dka_rec_begin(&b, "sign", dka_now_us());
	dk_json_str(j, "x", "y");
	assert_int_equal(dka_rec_end(&b), 0);
	assert_int_equal(dka_file_commit(&a, &b), DK_ERR_IO);
	assert_non_null(strstr(dk_err_detail(), "/dev/full"));
	assert_int_equal(a.head.seq, 0);
	assert_false(a.head_known);
	dka_file_unlock(&a);
	dka_batch_free(&b);
	dka_file_free(&a);
}

static void
test_lines(void **state)
{
	struct dka_lines it;
	const uint8_t *line;
	size_t len;
	int complete;
	char path[256];
	FILE *f;
	char *big;

	(void)state;
	snprintf(path, sizeof(path), "%s/lines.txt", tmpdir);
	f = fopen(path, "wb");
	fputs("one\n\ntwo", f);
	fclose(f);
	assert_int_equal(dka_lines_open(path, &it), 0);
	assert_int_equal(dka_lines_next(&it, &line, &len, &complete), 1);
	assert_int_equal(len, 3);
	assert_true(complete);
	assert_int_equal(dka_lines_next(&it, &line, &len, &complete), 1);
	assert_int_equal(len, 0);
	assert_int_equal(dka_lines_next(&it, &line, &len, &complete), 1);
	assert_int_equal(len, 3);
	assert_false(complete);
	assert_int_equal(it.lineno, 3);
	assert_int_equal(dka_lines_next(&it, &line, &len, &complete), 0);
	dka_lines_close(&it);
	/* A line over the limit is refused, not buffered without end. */
	big = malloc(DKA_LINE_MAX + 10);
	memset(big, 'x', DKA_LINE_MAX + 9);
	big[DKA_LINE_MAX + 9] = '\0';
	f = fopen(path, "wb");
	fputs(big, f);
	fputs("\n", f);
	fclose(f);
	free(big);
	assert_int_equal(dka_lines_open(path, &it), 0);
	assert_int_equal(dka_lines_next(&it, &line, &len, &complete), DK_ERR_TOO_LARGE);
	dka_lines_close(&it);
	assert_int_equal(dka_lines_open("/nonexistent/x", &it), DK_ERR_IO);
}

static void
test_message_id(void **state)
{
	static const char hs[] = "From: a@example.com\r\nX-Message-ID: <no@x>\r\nmessage-ID: \r\n"
	                         "\t<folded.id@\r\n host.example>\r\nMessage-ID: <second@x>\r\n";
	char out[DKA_MID_MAX + 1];
	char *big;
	struct dk_buf in;

	(void)state;
	assert_int_equal(
	    dka_header_message_id((const uint8_t *)hs, strlen(hs), out, sizeof(out)), 0);
	/* The first Message-ID field, unfolded (RFC 5322 §2.2.3), not X-Message-ID. */
	assert_string_equal(out, " \t<folded.id@ host.example>");
	assert_int_equal(dka_header_message_id((const uint8_t *)"From: a\n", 8, out, sizeof(out)),
	    DK_ERR_NOT_FOUND);
	/* Bare LF line ends work too. */
	assert_int_equal(dka_header_message_id(
	                     (const uint8_t *)"Message-Id: <a@b>\nTo: x\n", 24, out, sizeof(out)),
	    0);
	assert_string_equal(out, " <a@b>");
	big = malloc(DKA_MID_MAX + 100);
	memcpy(big, "Message-ID: ", 12);
	memset(big + 12, 'x', DKA_MID_MAX + 10);
	assert_int_equal(
	    dka_header_message_id((const uint8_t *)big, DKA_MID_MAX + 22, out, sizeof(out)),
	    DK_ERR_TOO_LARGE);
	free(big);
	/* What is hashed: label, NUL, the id without white space and one pair of <>. */
	dk_buf_init(&in, 2048);
	assert_int_equal(dka_mac_input(DKA_MAC_MID, " \t<a@b> ", 8, &in), 0);
	assert_int_equal(in.len, sizeof(DKA_MAC_MID) + 3);
	assert_memory_equal(in.data, DKA_MAC_MID "\0a@b", in.len);
	dk_buf_reset(&in);
	assert_int_equal(dka_mac_input(DKA_MAC_MID, "a@b", 3, &in), 0);
	assert_memory_equal(in.data, DKA_MAC_MID "\0a@b", in.len);
	dk_buf_reset(&in);
	/* An identity keeps its brackets and has its own label. */
	assert_int_equal(dka_mac_input(DKA_MAC_IDENTITY, "<a@b>", 5, &in), 0);
	assert_memory_equal(in.data, DKA_MAC_IDENTITY "\0<a@b>", in.len);
	dk_buf_free(&in);
}

static void
test_hour_key_and_hmac(void **state)
{
	static const char data[] = "what do ya want for nothing?";
	uint8_t mac[DKA_MAC_LEN];
	char hex[2 * DKA_MAC_LEN + 1], hour[DKA_HOUR_LEN + 1];
	struct dk_buf in;

	(void)state;
	/* RFC 4231 §4.3, test case 2 */
	assert_int_equal(
	    dka_hmac((const uint8_t *)"Jefe", 4, (const uint8_t *)data, strlen(data), mac), 0);
	dka_hex(mac, sizeof(mac), hex);
	assert_string_equal(
	    hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	dka_mac_hour(1795562944123456LL, hour);
	assert_string_equal(hour, "2026-11-24T23");
	dk_buf_init(&in, 128);
	assert_int_equal(dka_hour_key_input(hour, &in), 0);
	assert_int_equal(in.len, sizeof(DKA_MAC_HOUR) + DKA_HOUR_LEN);
	assert_memory_equal(in.data,
	    DKA_MAC_HOUR "\0"
	                 "2026-11-24T23",
	    in.len);
	dk_buf_free(&in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_time),
	    cmocka_unit_test(test_json_accepts_own_format),
	    cmocka_unit_test(test_json_rejects),
	    cmocka_unit_test(test_json_node_limit),
	    cmocka_unit_test(test_chain),
	    cmocka_unit_test(test_checkpoint_record),
	    cmocka_unit_test(test_file_writers_share),
	    cmocka_unit_test(test_file_torn_line_and_foreign_line),
	    cmocka_unit_test(test_file_reopen_links_previous),
	    cmocka_unit_test(test_file_write_fails),
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test(test_message_id),
	    cmocka_unit_test(test_hour_key_and_hmac),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
