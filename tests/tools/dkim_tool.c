/*
 * dkim_tool.c - drive dkim/ from the command line so that independent
 * implementations (dkimpy) can judge its results.  A test tool, not a
 * product: "sign" signs with a PEM key through OpenSSL, never a token.
 *
 *   dkim_tool hash [-c CANON] [-k CHUNK] [-h HLIST -s SIGFIELD] FILE
 *	prints "bh=<base64 body hash>" and, with -h and -s, "hh=<base64
 *	SHA-256 of the canonical header fields and SIGFIELD>" (the digest the
 *	key signs).  CANON is simple, relaxed or header/body (default
 *	simple/simple).  CHUNK feeds the body in pieces of that many bytes.
 *   dkim_tool sign -c CANON -a ALG -d DOMAIN -s SELECTOR -K KEY.pem
 *	[-H HEADERS] [-O OVERSIGN] [-i IDENTITY] [-t TIME] [-x SECONDS] FILE
 *	prints the message with a DKIM-Signature field prepended.
 *   dkim_tool from FILE
 *	prints the From domain.
 *
 * Exit codes: 0, 64 usage, 65 bad message, others from dk_err_exit().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "common/dk_b64.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "dkim/dkim.h"

#define FILE_MAX (64 * 1024 * 1024)

struct msg {
	struct dk_buf raw;
	size_t hdr_len;
	size_t body_off;
	struct dkim_headers h;
};

struct opts {
	enum dkim_canon hcanon, bcanon;
	size_t chunk;
	const char *hlist, *sigfield, *keyfile;
	struct dkim_sig_params sp;
};

static int
read_file(const char *path, struct dk_buf *b)
{
	char chunk[65536];
	FILE *f;
	size_t n;
	int r = 0;

	if ((f = fopen(path, "rb")) == NULL) {
		r = dk_err_set(DK_ERR_IO, "cannot open %s", path);
		goto out;
	}
	while (r == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		r = dk_buf_put(b, chunk, n);
	if (r == 0 && ferror(f))
		r = dk_err_set(DK_ERR_IO, "cannot read %s", path);
out:
	if (f != NULL)
		fclose(f);
	return r;
}

/* Read and split a message: a header section only is a message with no body. */
static int
msg_load(const char *path, struct msg *m)
{
	int r;

	dk_buf_init(&m->raw, FILE_MAX);
	memset(&m->h, 0, sizeof(m->h));
	if ((r = read_file(path, &m->raw)) != 0)
		goto out;
	r = dkim_header_end(m->raw.data, m->raw.len, &m->hdr_len, &m->body_off);
	if (r == DK_ERR_NOT_FOUND) {
		m->hdr_len = m->body_off = m->raw.len;
		r = 0;
	}
	if (r != 0)
		goto out;
	r = dkim_headers_parse(m->raw.data, m->hdr_len, &m->h);
out:
	return r;
}

static void
msg_free(struct msg *m)
{
	dkim_headers_free(&m->h);
	dk_buf_free(&m->raw);
}

static int
canon_parse(const char *s, enum dkim_canon *hc, enum dkim_canon *bc)
{
	static const struct {
		const char *name;
		enum dkim_canon h, b;
	} t[] = {
	    {"simple", DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE},
	    {"relaxed", DKIM_CANON_RELAXED, DKIM_CANON_RELAXED},
	    {"simple/simple", DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE},
	    {"simple/relaxed", DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED},
	    {"relaxed/simple", DKIM_CANON_RELAXED, DKIM_CANON_SIMPLE},
	    {"relaxed/relaxed", DKIM_CANON_RELAXED, DKIM_CANON_RELAXED},
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (strcmp(s, t[i].name) == 0) {
			*hc = t[i].h;
			*bc = t[i].b;
			return 0;
		}
	}
	return dk_err_set(DK_ERR_USAGE, "bad canonicalization %s", s);
}

static int
body_digest(const struct msg *m, enum dkim_canon c, size_t chunk, uint8_t d[DKIM_DIGEST_LEN])
{
	const uint8_t *p = m->raw.data + m->body_off;
	size_t len = m->raw.len - m->body_off, off = 0, n;
	struct dkim_body b;
	int r;

	if ((r = dkim_body_init(&b, c)) != 0)
		goto out;
	if (chunk == 0)
		chunk = len > 0 ? len : 1;
	for (; off < len && r == 0; off += n) {
		n = len - off < chunk ? len - off : chunk;
		r = dkim_body_update(&b, p + off, n);
	}
	if (r == 0)
		r = dkim_body_final(&b, d);
out:
	dkim_body_free(&b);
	return r;
}

static int
print_b64(const char *label, const uint8_t *d, size_t n)
{
	struct dk_buf b;
	int r;

	dk_buf_init(&b, 4096);
	if ((r = dk_b64_encode(&b, d, n)) == 0)
		printf("%s=%s\n", label, dk_buf_str(&b));
	dk_buf_free(&b);
	return r;
}

static int
cmd_hash(const struct opts *o, const char *path)
{
	uint8_t d[DKIM_DIGEST_LEN];
	struct msg m;
	int r;

	if ((r = msg_load(path, &m)) != 0)
		goto out;
	if ((r = body_digest(&m, o->bcanon, o->chunk, d)) != 0 ||
	    (r = print_b64("bh", d, sizeof(d))) != 0)
		goto out;
	if (o->hlist == NULL || o->sigfield == NULL)
		goto out;
	if ((r = dkim_hash_headers(
	         &m.h, o->hlist, o->hcanon, o->sigfield, strlen(o->sigfield), d)) != 0 ||
	    (r = print_b64("hh", d, sizeof(d))) != 0)
		goto out;
out:
	msg_free(&m);
	return r;
}

static EVP_PKEY *
load_key(const char *path)
{
	EVP_PKEY *pk = NULL;
	FILE *f;

	if ((f = fopen(path, "r")) != NULL) {
		pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	return pk;
}

/* RSA: PKCS#1 v1.5 over the SHA-256 digest; Ed25519: the digest is the message (RFC 8463). */
static int
sign_digest(
    EVP_PKEY *pk, enum dkim_alg alg, const uint8_t d[DKIM_DIGEST_LEN], uint8_t *sig, size_t *siglen)
{
	EVP_PKEY_CTX *pc = NULL;
	EVP_MD_CTX *mc = NULL;
	int ok = 0;

	if (alg == DKIM_ALG_RSA_SHA256) {
		ok = (pc = EVP_PKEY_CTX_new(pk, NULL)) != NULL && EVP_PKEY_sign_init(pc) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
		     EVP_PKEY_sign(pc, sig, siglen, d, DKIM_DIGEST_LEN) == 1;
	} else {
		ok = (mc = EVP_MD_CTX_new()) != NULL &&
		     EVP_DigestSignInit(mc, NULL, NULL, NULL, pk) == 1 &&
		     EVP_DigestSign(mc, sig, siglen, d, DKIM_DIGEST_LEN) == 1;
	}
	EVP_PKEY_CTX_free(pc);
	EVP_MD_CTX_free(mc);
	return ok ? 0 : dk_err_set(DK_ERR_INTERNAL, "OpenSSL signing failed");
}

static int
cmd_sign(struct opts *o, const char *path)
{
	uint8_t d[DKIM_DIGEST_LEN], sig[1024];
	size_t siglen = sizeof(sig);
	struct dk_buf v;
	struct msg m;
	EVP_PKEY *pk = NULL;
	int r;

	dk_buf_init(&v, DKIM_SIG_VALUE_MAX);
	if ((r = msg_load(path, &m)) != 0)
		goto out;
	if ((pk = load_key(o->keyfile)) == NULL) {
		r = dk_err_set(DK_ERR_IO, "cannot load key %s", o->keyfile);
		goto out;
	}
	o->sp.hcanon = o->hcanon;
	o->sp.bcanon = o->bcanon;
	if ((r = body_digest(&m, o->bcanon, o->chunk, o->sp.bh)) != 0 ||
	    (r = dkim_sig_build(&m.h, &o->sp, &v)) != 0 ||
	    (r = dkim_sig_digest(&m.h, &o->sp, &v, d)) != 0 ||
	    (r = sign_digest(pk, o->sp.alg, d, sig, &siglen)) != 0 ||
	    (r = dkim_sig_finish(&v, sig, siglen)) != 0)
		goto out;
	printf("%s:%s\r\n", DKIM_SIG_FIELD_NAME, dk_buf_str(&v));
	fwrite(m.raw.data, 1, m.raw.len, stdout);
out:
	EVP_PKEY_free(pk);
	dk_buf_free(&v);
	msg_free(&m);
	return r;
}

static int
cmd_from(const char *path)
{
	char dom[DKIM_DOMAIN_MAX + 1];
	struct msg m;
	int r;

	if ((r = msg_load(path, &m)) == 0 && (r = dkim_from_domain(&m.h, dom, sizeof(dom))) == 0)
		printf("%s\n", dom);
	msg_free(&m);
	return r;
}

static void
usage(void)
{
	fprintf(stderr, "usage: dkim_tool hash [-c CANON] [-k CHUNK] [-h HLIST -s SIGFIELD] FILE\n"
	                "       dkim_tool sign -c CANON -a ALG -d DOMAIN -s SELECTOR -K KEY.pem\n"
	                "                 [-H HEADERS] [-O OVERSIGN] [-i ID] [-t TIME] [-x SECS] "
	                "FILE\n"
	                "       dkim_tool from FILE\n");
}

static int
parse_opt(struct opts *o, int sign, int c, const char *arg)
{
	int r = 0;

	switch (c) {
	case 'c':
		r = canon_parse(arg, &o->hcanon, &o->bcanon);
		break;
	case 'k':
		o->chunk = strtoul(arg, NULL, 10);
		break;
	case 'h':
		o->hlist = arg;
		break;
	case 's':
		if (sign)
			o->sp.selector = arg;
		else
			o->sigfield = arg;
		break;
	case 'a':
		r = dkim_alg_parse(arg, &o->sp.alg);
		break;
	case 'd':
		o->sp.domain = arg;
		break;
	case 'K':
		o->keyfile = arg;
		break;
	case 'H':
		o->sp.headers = arg;
		break;
	case 'O':
		o->sp.oversign = arg;
		break;
	case 'i':
		o->sp.identity = arg;
		break;
	case 't':
		o->sp.timestamp = strtoll(arg, NULL, 10);
		break;
	case 'x':
		o->sp.expire = strtoll(arg, NULL, 10);
		break;
	default:
		r = DK_ERR_USAGE;
		break;
	}
	return r;
}

int
main(int argc, char **argv)
{
	struct opts o;
	const char *cmd;
	int c, r = 0, sign, ex = EX_USAGE;

	memset(&o, 0, sizeof(o));
	o.sp.timestamp = -1;
	o.sp.alg = DKIM_ALG_RSA_SHA256;
	o.sp.headers = "from:to:subject:date:message-id";
	if (argc < 2)
		goto out;
	cmd = argv[1];
	sign = strcmp(cmd, "sign") == 0;
	optind = 2;
	while (r == 0 && (c = getopt(argc, argv, "c:k:h:s:a:d:K:H:O:i:t:x:")) != -1)
		r = parse_opt(&o, sign, c, optarg);
	if (r == DK_ERR_USAGE || optind + 1 != argc)
		goto out;
	if (r == 0 && strcmp(cmd, "hash") == 0)
		r = cmd_hash(&o, argv[optind]);
	else if (r == 0 && sign && o.keyfile != NULL)
		r = cmd_sign(&o, argv[optind]);
	else if (r == 0 && strcmp(cmd, "from") == 0)
		r = cmd_from(argv[optind]);
	else if (r == 0)
		goto out;
	if (r != 0)
		fprintf(stderr, "dkim_tool: %s: %s\n", dk_strerror(r), dk_err_detail());
	ex = dk_err_exit(r);
out:
	if (ex == EX_USAGE)
		usage();
	return ex;
}
