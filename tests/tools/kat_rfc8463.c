/*
 * kat_rfc8463.c - known-answer test of signing in the token: RFC 8463
 * Appendix A.
 *
 *   kat_rfc8463 MODULE TOKEN_URI PIN_FILE MESSAGE
 *
 * MESSAGE is the signed message of RFC 8463 §A.3.  For each of its
 * DKIM-Signature fields, the key whose domain and selector are its d= and
 * s= (imported into the token with "dkimkeep key import" from the keys of
 * §A.1) signs the field again: the body hash and the header hash are
 * computed by dkim/ (dkim_body_*, dkim_hash_headers with the field's own
 * text, b= emptied) and the digest is signed by hsm_sign_digest().  Both
 * algorithms are deterministic (Ed25519, RSASSA-PKCS1-v1_5), so bh= and b=
 * must equal the RFC's byte for byte.
 *
 * Prints one line per signature ("a=... s=... bh=match b=match", or the
 * expected and computed values).  Exit codes: 0 every value matches, 1 a
 * mismatch, 64 usage, others from dk_err_exit().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "common/dk_b64.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "common/dk_log.h"
#include "dkim/dkim.h"
#include "hsm/hsm.h"

#define MSG_MAX   (1024 * 1024)
#define VALUE_MAX 1024

struct tag {
	size_t off, len; /* value within the field's raw text */
};

static int
is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Find tag name in the tag list of a header field (RFC 6376 §3.2: tag=value
 * separated by ';', folding white space around both).  The value runs to the
 * next ';' or the end, trailing white space excluded.
 */
static int
tag_find(const char *raw, size_t len, const char *name, struct tag *t)
{
	const char *colon = memchr(raw, ':', len);
	size_t i, n, start, end;

	if (colon == NULL)
		return DK_ERR_PARSE;
	i = (size_t)(colon - raw) + 1;
	while (i < len) {
		while (i < len && is_fws(raw[i]))
			i++;
		start = i;
		while (i < len && raw[i] != '=' && raw[i] != ';' && !is_fws(raw[i]))
			i++;
		n = i - start;
		while (i < len && is_fws(raw[i]))
			i++;
		if (i >= len || raw[i] != '=')
			return DK_ERR_PARSE;
		i++;
		while (i < len && is_fws(raw[i]))
			i++;
		t->off = i;
		while (i < len && raw[i] != ';')
			i++;
		end = i;
		while (end > t->off && is_fws(raw[end - 1]))
			end--;
		t->len = end - t->off;
		if (n == strlen(name) && memcmp(raw + start, name, n) == 0)
			return 0;
		i++; /* past ';' */
	}
	return DK_ERR_NOT_FOUND;
}

/* A tag's value without white space, as a C string. */
static int
tag_text(const char *raw, size_t len, const char *name, char *out, size_t outlen)
{
	struct tag t;
	size_t i, n = 0;
	int r;

	if ((r = tag_find(raw, len, name, &t)) != 0)
		return r;
	for (i = 0; i < t.len; i++) {
		if (is_fws(raw[t.off + i]))
			continue;
		if (n + 1 >= outlen)
			return DK_ERR_TOO_LARGE;
		out[n++] = raw[t.off + i];
	}
	out[n] = '\0';
	return 0;
}

static int
read_file(const char *path, struct dk_buf *b)
{
	char chunk[65536];
	FILE *f;
	size_t n;
	int r = 0;

	if ((f = fopen(path, "rb")) == NULL)
		return dk_err_set(DK_ERR_IO, "cannot open %s", path);
	while (r == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		r = dk_buf_put(b, chunk, n);
	if (r == 0 && ferror(f))
		r = dk_err_set(DK_ERR_IO, "cannot read %s", path);
	fclose(f);
	return r;
}

/* bh= of the body with canonicalization c, in base64. */
static int
body_hash(const struct dk_buf *msg, size_t body_off, enum dkim_canon c, struct dk_buf *b64)
{
	uint8_t digest[DKIM_DIGEST_LEN];
	struct dkim_body body;
	int r;

	if ((r = dkim_body_init(&body, c)) != 0)
		return r;
	if ((r = dkim_body_update(&body, msg->data + body_off, msg->len - body_off)) != 0) {
		dkim_body_free(&body);
		return r;
	}
	if ((r = dkim_body_final(&body, digest)) != 0)
		return r;
	return dk_b64_encode(b64, digest, sizeof(digest));
}

struct kat {
	struct hsm_session *s;
	struct hsm_key *keys;
	size_t nkeys;
	const struct dk_buf *msg;
	size_t body_off;
	struct dkim_headers h;
	int mismatches;
};

static const struct hsm_key *
key_for(const struct kat *k, const char *domain, const char *selector, const char *alg)
{
	size_t i;

	for (i = 0; i < k->nkeys; i++) {
		if (strcasecmp(k->keys[i].meta.domain, domain) == 0 &&
		    strcmp(k->keys[i].meta.selector, selector) == 0 &&
		    strcmp(k->keys[i].meta.alg, alg) == 0)
			return &k->keys[i];
	}
	return NULL;
}

static void
compare(struct kat *k, const char *what, const char *want, const char *got)
{
	if (strcmp(want, got) == 0) {
		printf(" %s=match", what);
		return;
	}
	printf(" %s=MISMATCH\n  rfc:  %s\n  ours: %s\n", what, want, got);
	k->mismatches++;
}

/* Sign the field f again in the token and compare bh= and b= with its own. */
static int
kat_field(struct kat *k, const struct dkim_field *f)
{
	char a[32], d[HSM_DOMAIN_MAX + 1], s[HSM_SELECTOR_MAX + 1], c[32];
	char bh_want[VALUE_MAX], b_want[VALUE_MAX];
	uint8_t digest[DKIM_DIGEST_LEN], sig[HSM_SIG_MAX];
	size_t sig_len = sizeof(sig);
	struct dk_buf bh, b64, field, hlist;
	const struct hsm_key *key;
	struct tag bt, ht;
	int r;

	dk_buf_init(&bh, VALUE_MAX);
	dk_buf_init(&b64, VALUE_MAX);
	dk_buf_init(&field, DKIM_HEADER_SECTION_MAX);
	dk_buf_init(&hlist, VALUE_MAX);
	if ((r = tag_text(f->raw, f->raw_len, "a", a, sizeof(a))) != 0 ||
	    (r = tag_text(f->raw, f->raw_len, "d", d, sizeof(d))) != 0 ||
	    (r = tag_text(f->raw, f->raw_len, "s", s, sizeof(s))) != 0 ||
	    (r = tag_text(f->raw, f->raw_len, "c", c, sizeof(c))) != 0 ||
	    (r = tag_text(f->raw, f->raw_len, "bh", bh_want, sizeof(bh_want))) != 0 ||
	    (r = tag_text(f->raw, f->raw_len, "b", b_want, sizeof(b_want))) != 0 ||
	    (r = tag_find(f->raw, f->raw_len, "b", &bt)) != 0 ||
	    (r = tag_find(f->raw, f->raw_len, "h", &ht)) != 0) {
		r = dk_err_set(r, "a DKIM-Signature field lacks a=, d=, s=, c=, h=, bh= or b=");
		goto out;
	}
	if (strcmp(c, "relaxed/relaxed") != 0) {
		r = dk_err_set(DK_ERR_INVALID, "this tool knows c=relaxed/relaxed only, not %s", c);
		goto out;
	}
	if ((key = key_for(k, d, s, a)) == NULL) {
		r = dk_err_set(DK_ERR_KEY_NOT_FOUND,
		    "no %s key for selector %s of %s in the token; import it with dkimkeep key "
		    "import",
		    a, s, d);
		goto out;
	}
	printf("a=%s s=%s d=%s key_id=%s", a, s, d, key->id_hex);
	if ((r = body_hash(k->msg, k->body_off, DKIM_CANON_RELAXED, &bh)) != 0)
		goto out;
	compare(k, "bh", bh_want, dk_buf_str(&bh));
	/* RFC 6376 §3.7: the field itself, with the b= value deleted, is hashed last. */
	if ((r = dk_buf_put(&field, f->raw, bt.off)) != 0 ||
	    (r = dk_buf_put(&field, f->raw + bt.off + bt.len, f->raw_len - bt.off - bt.len)) != 0 ||
	    (r = dk_buf_put(&hlist, f->raw + ht.off, ht.len)) != 0)
		goto out;
	if ((r = dkim_hash_headers(&k->h, dk_buf_str(&hlist), DKIM_CANON_RELAXED,
	         dk_buf_str(&field), field.len, digest)) != 0)
		goto out;
	if ((r = hsm_sign_digest(k->s, key, digest, sig, &sig_len)) != 0)
		goto out;
	if ((r = dk_b64_encode(&b64, sig, sig_len)) != 0)
		goto out;
	compare(k, "b", b_want, dk_buf_str(&b64));
	printf("\n");
	r = 0;
out:
	dk_buf_free(&bh);
	dk_buf_free(&b64);
	dk_buf_free(&field);
	dk_buf_free(&hlist);
	return r;
}

static int
kat_run(struct kat *k)
{
	size_t i, n = 0;
	int r;

	for (i = 0; i < k->h.n; i++) {
		const struct dkim_field *f = &k->h.fields[i];

		if (f->name_len != 14 || strncasecmp(f->name, "DKIM-Signature", 14) != 0)
			continue;
		if ((r = kat_field(k, f)) != 0)
			return r;
		n++;
	}
	if (n == 0)
		return dk_err_set(DK_ERR_NOT_FOUND, "the message has no DKIM-Signature field");
	return 0;
}

static int
token_open(const char *module, const char *uri, const char *pin_file, struct hsm_module **m,
    struct hsm_token **t, struct kat *k)
{
	int r;

	if ((r = hsm_module_open(module, m)) != 0 || (r = hsm_token_open(*m, uri, t)) != 0 ||
	    (r = hsm_token_login(*t, pin_file)) != 0 || (r = hsm_session_open(*t, &k->s)) != 0)
		return r;
	return hsm_key_list(k->s, &k->keys, &k->nkeys);
}

int
main(int argc, char **argv)
{
	struct hsm_module *m = NULL;
	struct hsm_token *t = NULL;
	struct dk_buf msg;
	struct kat k;
	size_t hdr_len = 0;
	int r, code;

	dk_log_init("kat_rfc8463", 0, 0);
	if (argc != 5) {
		fprintf(stderr, "usage: kat_rfc8463 MODULE TOKEN_URI PIN_FILE MESSAGE\n");
		return EX_USAGE;
	}
	memset(&k, 0, sizeof(k));
	dk_buf_init(&msg, MSG_MAX);
	k.msg = &msg;
	if ((r = read_file(argv[4], &msg)) != 0 ||
	    (r = dkim_header_end(msg.data, msg.len, &hdr_len, &k.body_off)) != 0 ||
	    (r = dkim_headers_parse(msg.data, hdr_len, &k.h)) != 0)
		goto out;
	if ((r = token_open(argv[1], argv[2], argv[3], &m, &t, &k)) != 0)
		goto out;
	r = kat_run(&k);
out:
	if (r != 0)
		fprintf(stderr, "kat_rfc8463: %s: %s\n", dk_strerror(r), dk_err_detail());
	code = r != 0 ? dk_err_exit(r) : k.mismatches > 0 ? 1 : 0;
	free(k.keys);
	dkim_headers_free(&k.h);
	hsm_session_close(k.s);
	hsm_token_close(t);
	hsm_module_close(m);
	dk_buf_free(&msg);
	return code;
}
