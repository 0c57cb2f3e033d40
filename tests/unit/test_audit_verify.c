/*
 * test_audit_verify.c - unit tests for audit/dka_verify: an intact log is
 * accepted, and each kind of tampering is caught on the right line: an
 * edited, deleted, inserted or reordered record, a rewrite with the chain
 * recomputed, truncation back past a checkpoint, a forged or replayed
 * checkpoint, a torn last line, a file that does not continue the one
 * before.  Checkpoints are signed with a real Ed25519 key (OpenSSL).
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

#include <openssl/evp.h>

#include "audit/dka_file.h"
#include "audit/dka_rec.h"
#include "audit/dka_verify.h"
#include "common/dk_err.h"

#define NREC     40 /* sign records in the test log */
#define CP_EVERY 10 /* a checkpoint after every 10 */
#define MAXLINES 256

static char tmpdir[] = "/tmp/dka-verify-XXXXXX";
static EVP_PKEY *key, *other_key;
static uint8_t pub[DKA_PUB_LEN], other_pub[DKA_PUB_LEN];

static int
sign_with(void *arg, const uint8_t *msg, size_t len, uint8_t sig[DKA_SIG_LEN],
    uint8_t pubout[DKA_PUB_LEN])
{
	EVP_PKEY *k = arg;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t siglen = DKA_SIG_LEN, publen = DKA_PUB_LEN;
	int ok;

	ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) == 1 &&
	     EVP_DigestSign(ctx, sig, &siglen, msg, len) == 1 &&
	     EVP_PKEY_get_raw_public_key(k, pubout, &publen) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : DK_ERR_INTERNAL;
}

static EVP_PKEY *
new_key(uint8_t raw[DKA_PUB_LEN])
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	size_t len = DKA_PUB_LEN;

	assert_non_null(k);
	assert_int_equal(EVP_PKEY_get_raw_public_key(k, raw, &len), 1);
	return k;
}

static int
setup(void **state)
{
	(void)state;
	key = new_key(pub);
	other_key = new_key(other_pub);
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	EVP_PKEY_free(key);
	EVP_PKEY_free(other_key);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The test log: log.open, then NREC sign records with a checkpoint after every CP_EVERY. */
static void
write_log(const char *path, struct dka_head *last_cp)
{
	struct dka_file f = {.fd = -1};
	struct dka_batch b;
	struct dk_json *j;
	int i;

	unlink(path);
	assert_int_equal(dka_file_open(path, &f), 0);
	assert_int_equal(dka_file_lock(&f, 1000), 0);
	assert_int_equal(dka_file_batch(&f, &b, NULL, "start", "test"), 0);
	for (i = 1; i <= NREC; i++) {
		j = dka_rec_begin(&b, "sign", dka_now_us());
		dk_json_str(j, "outcome", "ok");
		dk_json_str(j, "domain", i % 2 ? "example.com" : "example.org");
		dk_json_int(j, "req", i);
		assert_int_equal(dka_rec_end(&b), 0);
		if (i % CP_EVERY == 0)
			assert_int_equal(
			    dka_batch_checkpoint(&b, "count", dka_now_us(), sign_with, key), 0);
	}
	*last_cp = b.cp;
	assert_int_equal(dka_file_commit(&f, &b), 0);
	dka_batch_free(&b);
	dka_file_free(&f);
}

struct lines {
	char *v[MAXLINES];
	size_t n;
};

static void
read_lines(const char *path, struct lines *l)
{
	FILE *f = fopen(path, "rb");
	char buf[8192];

	assert_non_null(f);
	l->n = 0;
	while (fgets(buf, sizeof(buf), f) != NULL) {
		assert_true(l->n < MAXLINES);
		buf[strcspn(buf, "\n")] = '\0';
		l->v[l->n++] = strdup(buf);
	}
	fclose(f);
}

static void
write_lines(const char *path, const struct lines *l, int last_newline)
{
	FILE *f = fopen(path, "wb");
	size_t i;

	assert_non_null(f);
	for (i = 0; i < l->n; i++)
		fprintf(f, "%s%s", l->v[i], i + 1 < l->n || last_newline ? "\n" : "");
	fclose(f);
}

static void
free_lines(struct lines *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

/* Replace the first occurrence of from by to in line i. */
static void
edit(struct lines *l, size_t i, const char *from, const char *to)
{
	char *p = strstr(l->v[i], from), *n;

	assert_non_null(p);
	n = malloc(strlen(l->v[i]) - strlen(from) + strlen(to) + 1);
	sprintf(n, "%.*s%s%s", (int)(p - l->v[i]), l->v[i], to, p + strlen(from));
	free(l->v[i]);
	l->v[i] = n;
}

/* Set the "prev" (last 64 hex digits before "}) of line i. */
static void
set_prev(struct lines *l, size_t i, const uint8_t hash[DKA_HASH_LEN])
{
	size_t len = strlen(l->v[i]);

	assert_true(len > 66);
	dka_hex(hash, DKA_HASH_LEN, l->v[i] + len - 66);
	l->v[i][len - 2] = '"';
}

/* What an attacker with the disk can do: recompute every prev after line from. */
static void
rechain(struct lines *l, size_t from)
{
	uint8_t h[DKA_HASH_LEN];
	size_t i;

	for (i = from + 1; i < l->n; i++) {
		dka_line_hash((const uint8_t *)l->v[i - 1], strlen(l->v[i - 1]), h);
		set_prev(l, i, h);
	}
}

/* Renumber seq from line from on (after a deletion or insertion). */
static void
renumber(struct lines *l, size_t from, int delta)
{
	char old[32], new[32];
	unsigned long long s;
	size_t i;

	for (i = from; i < l->n; i++) {
		assert_int_equal(sscanf(strstr(l->v[i], "\"seq\":") + 6, "%llu", &s), 1);
		snprintf(old, sizeof(old), "\"seq\":%llu,", s);
		snprintf(
		    new, sizeof(new), "\"seq\":%llu,", (unsigned long long)((long long)s + delta));
		edit(l, i, old, new);
	}
}

static void
run(const char *path, const struct dka_head *anchor, struct dka_verify_report *rep)
{
	const char *paths[1] = {path};
	struct dka_verify_opts o;

	memset(&o, 0, sizeof(o));
	o.keys = (const uint8_t(*)[DKA_PUB_LEN]) & pub;
	o.nkeys = 1;
	if (anchor != NULL) {
		o.have_anchor = 1;
		o.anchor = *anchor;
	}
	assert_int_equal(dka_verify(paths, 1, &o, rep), 0);
}

static void
expect_bad(const struct dka_verify_report *rep, enum dka_problem p, uint64_t line)
{
	if (rep->intact || rep->problem != p || rep->line != line)
		fail_msg("wanted %s on line %llu, got %s on line %llu: %s", dka_problem_name(p),
		    (unsigned long long)line,
		    rep->intact ? "intact" : dka_problem_name(rep->problem),
		    (unsigned long long)rep->line, rep->what);
}

/* Line index (0-based) of the record with seq s. */
#define LINE_OF(s) ((s)-1)

static void
test_intact(void **state)
{
	struct dka_verify_report rep;
	struct dka_head cp;
	char path[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/intact.jsonl", tmpdir);
	write_log(path, &cp);
	run(path, &cp, &rep);
	if (!rep.intact)
		fail_msg("%s line %llu: %s", rep.file, (unsigned long long)rep.line, rep.what);
	assert_int_equal(rep.lines, 1 + NREC + NREC / CP_EVERY);
	assert_int_equal(rep.checkpoints, NREC / CP_EVERY);
	assert_true(rep.anchor_checked);
	assert_int_equal(rep.unsealed, 0);
	assert_int_equal(rep.first_seq, 1);
	assert_int_equal(rep.last_seq, rep.lines);
	/* Without the anchor it is still intact, with a note that truncation was not checked. */
	run(path, NULL, &rep);
	assert_true(rep.intact);
	assert_true(rep.nnotes >= 1);
	assert_non_null(strstr(rep.notes[0], "anchor was not read"));
}

static void
test_edited(void **state)
{
	struct dka_verify_report rep;
	struct dka_head cp;
	struct lines l;
	char path[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/edited.jsonl", tmpdir);
	write_log(path, &cp);
	read_lines(path, &l);
	edit(&l, 5, "example.", "evil.");
	write_lines(path, &l, 1);
	run(path, &cp, &rep);
	expect_bad(&rep, DKA_EDITED, 6);
	assert_int_equal(rep.seq, 6);
	/* An attacker who recomputes the chain is caught by the next checkpoint. */
	rechain(&l, 5);
	write_lines(path, &l, 1);
	run(path, &cp, &rep);
	expect_bad(&rep, DKA_CHECKPOINT, 12); /* seq 12 is the first checkpoint */
	/* A line edited into something unreadable. */
	free_lines(&l);
	write_log(path, &cp);
	read_lines(path, &l);
	edit(&l, 3, "\"req\":", "\"req\": ");
	write_lines(path, &l, 1);
	run(path, &cp, &rep);
	expect_bad(&rep, DKA_BAD_LINE, 4);
	free_lines(&l);
}

static void
test_deleted(void **state)
{
	struct dka_verify_report rep;
	struct dka_head cp;
	struct lines l;
	char path[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/deleted.jsonl", tmpdir);
	write_log(path, &cp);
	read_lines(path, &l);
	free(l.v[7]);
	memmove(&l.v[7], &l.v[8], (l.n - 8) * sizeof(l.v[0]));
	l.n--;
	write_lines(path, &l, 1);
	run(path, &cp, &rep);
	expect_bad(&rep, DKA_DELETED, 8);
	assert_non_null(strstr(rep.what, "seq 8 is missing"));
	/* Renumbered and rechained: the checkpoint after it fails. */
	renumber(&l, 7, -1);
	rechain(&l, 6);
	write_lines(path, &l, 1);
	run(path, &cp, &rep);
	expect_bad(&rep, DKA_CHECKPOINT, 11);
	free_lines(&l);
}

static void
test_inserted_and_reordered(void **state)
{
	struct dka_verify_report rep;
	struct dka_head cp;
	struct lines l;
	char path[256], *tmp;

	(void)state;
	snprintf(path, sizeof(path), "%s/inserted.jsonl", tmpdir);
	write_log(path, &cp);
	read_lines(path, &l);
	/* A copy of record seq 4 inserted after it. */
	memmove(&l.v[5], &l.v[4], (l.n - 4) * sizeof(l.v[0]));
	l.v[4] = strdup(l.v[3]);
	l.n++;
	write_lines(path, &l, 1);
	run(path, &cp, &rep);
	expect_bad(&rep, DKA_INSERTED, 5);
	free_lines(&l);
	/* Two records swapped. */
	write_log(path, &cp);
	read_lines(path, &l);
	tmp = l.v[14];
	l.v[14] = l.v[15];
	l.v[15] = tmp;
	write_lines(path, &l, 1);
	run(path, &cp, &rep);
	expect_bad(&rep, DKA_DELETED, 15);
	assert_non_null(strstr(rep.what, "reordered"));
	free_lines(&l);
}

static void
test_truncated(void **state)
{
	struct dka_verify_report rep;
	struct dka_head cp;
	struct lines l;
	char path[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/trunc.jsonl", tmpdir);
	write_log(path, &cp);
	read_lines(path, &l);
	/* Cut back to just after the third checkpoint (seq 34): looks clean, but the token knows.
	 */
	while (l.n > LINE_OF(34) + 1)
		free(l.v[--l.n]);
	write_lines(path, &l, 1);
	run(path, &cp, &rep);
	expect_bad(&rep, DKA_TRUNCATED, 34);
	assert_non_null(strstr(rep.what, "truncated"));
	/* Cut in the middle of a line. */
	l.v[l.n - 1][20] = '\0';
	write_lines(path, &l, 0);
	run(path, &cp, &rep);
	expect_bad(&rep, DKA_INCOMPLETE, 34);
	free_lines(&l);
	/* The anchor's seq is there but the line is another: rewritten. */
	write_log(path, &cp);
	cp.hash[0] ^= 1;
	run(path, &cp, &rep);
	expect_bad(&rep, DKA_REWRITTEN, cp.seq);
}

static void
test_forged_and_replayed_checkpoint(void **state)
{
	struct dka_verify_report rep;
	struct dka_head cp, head;
	struct dka_batch b;
	struct lines l;
	char path[256], *fake;
	uint8_t h[DKA_HASH_LEN];

	(void)state;
	snprintf(path, sizeof(path), "%s/forged.jsonl", tmpdir);
	write_log(path, &cp);
	read_lines(path, &l);
	/* A checkpoint signed by a key the reviewer does not trust. */
	head.seq = l.n; /* the last line's seq */
	dka_line_hash((const uint8_t *)l.v[l.n - 1], strlen(l.v[l.n - 1]), head.hash);
	dka_batch_init(&b, &head, 0);
	assert_int_equal(dka_batch_checkpoint(&b, "exit", dka_now_us(), sign_with, other_key), 0);
	fake = strndup((const char *)b.buf.data, b.buf.len - 1);
	dka_batch_free(&b);
	l.v[l.n++] = fake;
	write_lines(path, &l, 1);
	run(path, NULL, &rep);
	expect_bad(&rep, DKA_UNKNOWN_KEY, l.n);
	/* The right key's name with another signature: forged. */
	free(l.v[--l.n]);
	l.v[l.n++] = strdup(l.v[LINE_OF(12)]);
	renumber(&l, l.n - 1, (int)l.n - 12);
	rechain(&l, l.n - 2);
	write_lines(path, &l, 1);
	run(path, NULL, &rep);
	expect_bad(&rep, DKA_CHECKPOINT, l.n);
	assert_non_null(strstr(rep.what, "replayed"));
	/* The old checkpoint copied verbatim: its seq and prev give it away. */
	free(l.v[--l.n]);
	l.v[l.n++] = strdup(l.v[LINE_OF(12)]);
	write_lines(path, &l, 1);
	run(path, NULL, &rep);
	expect_bad(&rep, DKA_INSERTED, l.n);
	/* A checkpoint with a broken signature field. */
	free(l.v[--l.n]);
	edit(&l, LINE_OF(23), "\"sig\":\"", "\"sig\":\"AAAA");
	dka_line_hash((const uint8_t *)l.v[LINE_OF(23)], strlen(l.v[LINE_OF(23)]), h);
	set_prev(&l, LINE_OF(24), h);
	write_lines(path, &l, 1);
	run(path, NULL, &rep);
	expect_bad(&rep, DKA_CHECKPOINT, 23);
	free_lines(&l);
}

static void
test_files_linked(void **state)
{
	struct dka_file f = {.fd = -1};
	struct dka_verify_report rep;
	struct dka_verify_opts o;
	struct dka_batch b;
	struct lines l;
	char p1[256], p2[256];
	const char *paths[2] = {p1, p2};
	struct dk_json *j;

	(void)state;
	snprintf(p1, sizeof(p1), "%s/a.jsonl", tmpdir);
	snprintf(p2, sizeof(p2), "%s/a.jsonl.new", tmpdir);
	unlink(p1);
	unlink(p2);
	assert_int_equal(dka_file_open(p1, &f), 0);
	assert_int_equal(dka_file_lock(&f, 1000), 0);
	assert_int_equal(dka_file_batch(&f, &b, NULL, "start", "test"), 0);
	j = dka_rec_begin(&b, "sign", dka_now_us());
	dk_json_int(j, "req", 1);
	assert_int_equal(dka_rec_end(&b), 0);
	assert_int_equal(dka_batch_checkpoint(&b, "reopen", dka_now_us(), sign_with, key), 0);
	assert_int_equal(dka_file_commit(&f, &b), 0);
	dka_batch_free(&b);
	dka_file_close(&f);
	/* "Rotated": the writer goes on in a new file, linked to the old head. */
	assert_int_equal(dka_file_open(p2, &f), 0);
	assert_int_equal(dka_file_lock(&f, 1000), 0);
	assert_int_equal(dka_file_batch(&f, &b, NULL, "reopen", "test"), 0);
	j = dka_rec_begin(&b, "sign", dka_now_us());
	dk_json_int(j, "req", 2);
	assert_int_equal(dka_rec_end(&b), 0);
	assert_int_equal(dka_batch_checkpoint(&b, "exit", dka_now_us(), sign_with, key), 0);
	assert_int_equal(dka_file_commit(&f, &b), 0);
	dka_batch_free(&b);
	dka_file_free(&f);
	memset(&o, 0, sizeof(o));
	o.keys = (const uint8_t(*)[DKA_PUB_LEN]) & pub;
	o.nkeys = 1;
	assert_int_equal(dka_verify(paths, 2, &o, &rep), 0);
	if (!rep.intact)
		fail_msg("%s line %llu: %s", rep.file, (unsigned long long)rep.line, rep.what);
	assert_int_equal(rep.last_seq, 6);
	/* The second file alone: fine, with a note that earlier files are missing. */
	assert_int_equal(dka_verify(paths + 1, 1, &o, &rep), 0);
	assert_true(rep.intact);
	assert_non_null(strstr(rep.notes[0], "earlier files"));
	/* Given in the wrong order. */
	paths[0] = p2;
	paths[1] = p1;
	assert_int_equal(dka_verify(paths, 2, &o, &rep), 0);
	assert_false(rep.intact);
	assert_int_equal(rep.problem, DKA_LINK);
	paths[0] = p1;
	paths[1] = p2;
	/* The old file's checkpoint cut off: the new file no longer continues it. */
	read_lines(p1, &l);
	free(l.v[--l.n]);
	write_lines(p1, &l, 1);
	assert_int_equal(dka_verify(paths, 2, &o, &rep), 0);
	assert_false(rep.intact);
	assert_int_equal(rep.problem, DKA_LINK);
	assert_string_equal(rep.file, p2);
	assert_int_equal(rep.line, 1);
	free_lines(&l);
	/* The first lines of the log removed. */
	read_lines(p2, &l);
	free(l.v[0]);
	memmove(&l.v[0], &l.v[1], (l.n - 1) * sizeof(l.v[0]));
	l.n--;
	write_lines(p2, &l, 1);
	assert_int_equal(dka_verify(paths + 1, 1, &o, &rep), 0);
	assert_false(rep.intact);
	assert_int_equal(rep.problem, DKA_START);
	free_lines(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_intact),
	    cmocka_unit_test(test_edited),
	    cmocka_unit_test(test_deleted),
	    cmocka_unit_test(test_inserted_and_reordered),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_forged_and_replayed_checkpoint),
	    cmocka_unit_test(test_files_linked),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
