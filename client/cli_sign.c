/*
 * cli_sign.c - "dkimkeep sign": sign one message from stdin through dkimkeepd.
 *
 * The header section is read into memory (at most 1 MiB); the body is
 * hashed in chunks and spooled to an unlinked temporary file, so a large
 * message is neither held in memory nor sent over the socket.  Output is
 * written only once the daemon has signed: on failure stdout stays empty.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/dkimkeep_client.h"
#include "common/dk_buf.h"
#include "common/dk_config.h"
#include "common/dk_err.h"
#include "common/dk_time.h"
#include "dkim/dkim.h"

#define SIGN_TIMEOUT_MS 30000
#define SIGN_CHUNK      65536

static const char sign_usage[] =
    "usage: dkimkeep sign [--socket PATH] [--domain D] [--selector S] [--alg A[,A]]\n"
    "                     [--identity I] [--headers h1:h2:...] [--timestamp UNIX]\n"
    "                     [--expire SECONDS] [--simple] < message > signed\n"
    "\n"
    "Reads one RFC 5322 message on stdin (CRLF or bare LF line ends) and writes it on\n"
    "stdout with one DKIM-Signature header per algorithm prepended, nothing else changed.\n"
    "The signing is done by dkimkeepd with keys that never leave its token.\n"
    "\n"
    "  --socket PATH     the daemon's socket (default: socket= in [daemon] of the config;\n"
    "                    with --socket no config file is needed)\n"
    "  --domain D        d= domain (default: the From address's domain, or its nearest\n"
    "                    configured parent)\n"
    "  --selector S      sign with this selector only (default: the active keys)\n"
    "  --alg A           rsa-sha256 or ed25519-sha256, or both comma-separated\n"
    "                    (default: every algorithm configured for the domain)\n"
    "  --identity I      i= (an address in the domain or a subdomain)\n"
    "  --headers LIST    header names to sign, colon-separated (default: the domain's)\n"
    "  --timestamp UNIX  t= (default: now); for known-answer tests\n"
    "  --expire SECONDS  x= is t= plus this\n"
    "  --simple          c=simple/simple instead of relaxed/relaxed\n"
    "  -c FILE           configuration file\n"
    "\n"
    "Exit codes: 0 signed; 64 usage; 65 the message cannot be signed (no From, two From,\n"
    "not a message, header section over 1 MiB); 69 daemon or token unavailable;\n"
    "75 temporary (busy, rate limited: retry); 77 not authorized for this domain;\n"
    "78 bad config.  On failure nothing is written on stdout.\n";

struct sign_opts {
	const char *socket;
	const char *domain, *selector, *identity;
	int algs[2];
	size_t nalgs;
	char *headers; /* strdup'd colon list, split in place */
	const char *hnames[DKIM_HLIST_MAX];
	size_t nhnames;
	int64_t timestamp, expire;
	int simple;
};

static int
sign_parse_algs(const char *s, struct sign_opts *o)
{
	char buf[64], *tok, *save = NULL;
	enum dkim_alg a;

	if (strlen(s) >= sizeof(buf))
		return DK_ERR_USAGE;
	memcpy(buf, s, strlen(s) + 1);
	for (tok = strtok_r(buf, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
		if (dkim_alg_parse(tok, &a) != 0 || o->nalgs >= 2)
			return DK_ERR_USAGE;
		o->algs[o->nalgs++] =
		    a == DKIM_ALG_RSA_SHA256 ? DKC_ALG_RSA_SHA256 : DKC_ALG_ED25519_SHA256;
	}
	return o->nalgs > 0 ? 0 : DK_ERR_USAGE;
}

static int
sign_parse_headers(const char *s, struct sign_opts *o)
{
	char *tok, *save = NULL;

	if ((o->headers = strdup(s)) == NULL)
		return DK_ERR_NOMEM;
	for (tok = strtok_r(o->headers, ":", &save); tok != NULL;
	     tok = strtok_r(NULL, ":", &save)) {
		if (o->nhnames >= DKIM_HLIST_MAX)
			return DK_ERR_USAGE;
		o->hnames[o->nhnames++] = tok;
	}
	return o->nhnames > 0 ? 0 : DK_ERR_USAGE;
}

static int
sign_parse_int(const char *s, int64_t *v)
{
	char *end;
	long long x;

	errno = 0;
	x = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || x < 0)
		return DK_ERR_USAGE;
	*v = x;
	return 0;
}

static int
sign_parse(int argc, char **argv, const struct cli_ctx *ctx, struct sign_opts *o,
    const char **conf_path, int *conf_given)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 'S'},
	    {"domain", required_argument, NULL, 'D'},
	    {"selector", required_argument, NULL, 's'},
	    {"alg", required_argument, NULL, 'a'},
	    {"identity", required_argument, NULL, 'i'},
	    {"headers", required_argument, NULL, 'H'},
	    {"timestamp", required_argument, NULL, 't'},
	    {"expire", required_argument, NULL, 'x'},
	    {"simple", no_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	*conf_path = ctx->conf_path;
	*conf_given = ctx->conf_given;
	optind = 1;
	opterr = 0; /* one line of our own instead of getopt's */
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			*conf_path = optarg;
			*conf_given = 1;
			break;
		case 'S':
			o->socket = optarg;
			break;
		case 'D':
			o->domain = optarg;
			break;
		case 's':
			o->selector = optarg;
			break;
		case 'a':
			if (sign_parse_algs(optarg, o) != 0)
				return cli_fail(DK_ERR_USAGE,
				    "--alg takes rsa-sha256 and/or "
				    "ed25519-sha256, not \"%s\"",
				    optarg);
			break;
		case 'i':
			o->identity = optarg;
			break;
		case 'H':
			if (sign_parse_headers(optarg, o) != 0)
				return cli_fail(DK_ERR_USAGE,
				    "--headers takes 1 to %d header names "
				    "separated by ':'",
				    DKIM_HLIST_MAX);
			break;
		case 't':
			if (sign_parse_int(optarg, &o->timestamp) != 0)
				return cli_fail(DK_ERR_USAGE, "--timestamp takes a UNIX time");
			break;
		case 'x':
			if (sign_parse_int(optarg, &o->expire) != 0)
				return cli_fail(DK_ERR_USAGE, "--expire takes a number of seconds");
			break;
		case 'm':
			o->simple = 1;
			break;
		case 'h':
			fputs(sign_usage, stdout);
			return -1;
		default:
			return cli_fail(DK_ERR_USAGE,
			    "sign: bad option \"%s\"; see \"dkimkeep sign --help\"",
			    argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cli_fail(
		    DK_ERR_USAGE, "sign takes the message on stdin, not \"%s\"", argv[optind]);
	return 0;
}

/* Read the header section: *hdr_len bytes of buf; buf keeps what was read past it. */
static int
sign_read_headers(struct dk_buf *buf, size_t *hdr_len, size_t *body_off, int *eof)
{
	uint8_t chunk[SIGN_CHUNK];
	ssize_t n;
	int r;

	*eof = 0;
	for (;;) {
		r = dkim_header_end(buf->data, buf->len, hdr_len, body_off);
		if (r != DK_ERR_NOT_FOUND)
			return r;
		if (buf->len > DKIM_HEADER_SECTION_MAX)
			return DK_ERR_MSG_HEADER_TOO_LARGE;
		n = read(0, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dk_err_set(
			    DK_ERR_IO, "cannot read the message: %s", strerror(errno));
		if (n == 0) {
			/* A message without a body: all of it is the header section. */
			*eof = 1;
			if (buf->len == 0)
				return DK_ERR_MSG_EMPTY;
			*hdr_len = buf->len;
			*body_off = buf->len;
			return 0;
		}
		if ((r = dk_buf_put(buf, chunk, (size_t)n)) != 0)
			return r == DK_ERR_TOO_LARGE ? DK_ERR_MSG_HEADER_TOO_LARGE : r;
	}
}

/* Hash the body (already-read part first, then stdin) and spool it to *spool. */
static int
sign_read_body(
    const uint8_t *pre, size_t prelen, int eof, int simple, FILE **spool, uint8_t bh[DKC_HASH_LEN])
{
	uint8_t chunk[SIGN_CHUNK];
	struct dkim_body body;
	ssize_t n;
	int r;

	*spool = NULL;
	if ((r = dkim_body_init(&body, simple ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED)) != 0)
		return r;
	if ((*spool = tmpfile()) == NULL) {
		r = dk_err_set(DK_ERR_IO,
		    "cannot create a temporary file for the body: %s; check "
		    "TMPDIR",
		    strerror(errno));
		goto out;
	}
	if ((r = dkim_body_update(&body, pre, prelen)) != 0)
		goto out;
	if (prelen > 0 && fwrite(pre, 1, prelen, *spool) != prelen)
		goto io;
	while (!eof) {
		n = read(0, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = dk_err_set(DK_ERR_IO, "cannot read the message: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if ((r = dkim_body_update(&body, chunk, (size_t)n)) != 0)
			goto out;
		if (fwrite(chunk, 1, (size_t)n, *spool) != (size_t)n)
			goto io;
	}
	if (fflush(*spool) != 0)
		goto io;
	r = dkim_body_final(&body, bh);
	goto done;
io:
	r = dk_err_set(DK_ERR_IO,
	    "cannot spool the body to a temporary file: %s; check space in "
	    "TMPDIR",
	    strerror(errno));
out:
	dkim_body_free(&body);
done:
	return r;
}

/* Write one signature header with the message's own line ends. */
static int
sign_write_sig(const char *h, int lf_only)
{
	const char *p;

	for (p = h; *p != '\0'; p++) {
		if (lf_only && p[0] == '\r' && p[1] == '\n')
			continue;
		if (putchar(*p) == EOF)
			return DK_ERR_IO;
	}
	if (!lf_only && putchar('\r') == EOF)
		return DK_ERR_IO;
	return putchar('\n') == EOF ? DK_ERR_IO : 0;
}

static int
sign_write(const struct dkc_result *res, const struct dk_buf *in, FILE *spool)
{
	const uint8_t *nl = memchr(in->data, '\n', in->len);
	int lf_only = nl != NULL && (nl == in->data || nl[-1] != '\r');
	uint8_t chunk[SIGN_CHUNK];
	size_t i, n;

	for (i = 0; i < res->nsigs; i++) {
		if (sign_write_sig(res->sigs[i].header, lf_only) != 0)
			return DK_ERR_IO;
	}
	if (fwrite(in->data, 1, in->len, stdout) != in->len)
		return DK_ERR_IO;
	if (spool != NULL) {
		rewind(spool);
		while ((n = fread(chunk, 1, sizeof(chunk), spool)) > 0) {
			if (fwrite(chunk, 1, n, stdout) != n)
				return DK_ERR_IO;
		}
		if (ferror(spool))
			return DK_ERR_IO;
	}
	return fflush(stdout) != 0 ? DK_ERR_IO : 0;
}

static int
sign_socket(const char *conf_path, char **sock)
{
	struct dk_conf *conf = NULL;
	int r;

	/* An MTA's user needs the socket, not the PIN files (it may not reach them). */
	if ((r = dk_conf_load_flags(conf_path, DK_CONF_NO_SECRET_CHECK, &conf)) != 0)
		return cli_fail(DK_ERR_CONFIG, "%s; or give the daemon's socket with --socket",
		    dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
	*sock = strdup(conf->daemon.socket);
	dk_conf_free(conf);
	return *sock == NULL ? cli_fail(DK_ERR_NOMEM, "out of memory") : 0;
}

static int
sign_msg_fail(int r)
{
	switch (r) {
	case DK_ERR_MSG_EMPTY:
		return cli_fail(r, "the input is empty: give one RFC 5322 message on stdin");
	case DK_ERR_MSG_NOT_MESSAGE:
		return cli_fail(r, "the input is not a message: it must start with header "
		                   "fields, then an empty line, then the body");
	case DK_ERR_MSG_HEADER_TOO_LARGE:
		return cli_fail(r, "the header section is over 1 MiB; such a message cannot be "
		                   "signed");
	default:
		return cli_fail(r, "%s", dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
	}
}

static int
sign_run(const struct sign_opts *o, const char *sock, struct dk_buf *in)
{
	struct dkc_sign_req req;
	struct dkc_result res;
	struct dkc_conn *conn = NULL;
	FILE *spool = NULL;
	uint8_t bh[DKC_HASH_LEN];
	size_t hdr_len, body_off;
	int eof, r, code;

	memset(&res, 0, sizeof(res));
	if ((r = sign_read_headers(in, &hdr_len, &body_off, &eof)) != 0) {
		code = sign_msg_fail(r);
		goto out;
	}
	if ((r = sign_read_body(
	         in->data + body_off, in->len - body_off, eof, o->simple, &spool, bh)) != 0) {
		code = sign_msg_fail(r);
		goto out;
	}
	in->len = body_off; /* what the spool does not hold */
	memset(&req, 0, sizeof(req));
	req.domain = o->domain;
	req.selector = o->selector;
	req.identity = o->identity;
	req.algs = o->algs;
	req.nalgs = o->nalgs;
	req.timestamp = o->timestamp;
	req.expire = o->expire;
	req.headers = o->nhnames ? o->hnames : NULL;
	req.nheaders = o->nhnames;
	req.header_section = in->data;
	req.header_len = hdr_len;
	req.body_hash = bh;
	req.simple_headers = o->simple;
	req.simple_body = o->simple;
	if ((r = dkc_connect(sock, SIGN_TIMEOUT_MS, &conn)) != 0 ||
	    (r = dkc_sign(conn, &req, &res)) != 0) {
		code = cli_fail(
		    r == DK_ERR_TIMEOUT ? DK_ERR_BUSY : DK_ERR_UNAVAILABLE, "%s", dkc_strerror(r));
		goto out;
	}
	if (res.status != DKC_OK) {
		code = dkc_status_exit(res.status);
		fprintf(stderr, "dkimkeep: %s: %s\n", dkc_status_name(res.status), res.error);
		goto out;
	}
	if (sign_write(&res, in, spool) != 0) {
		code = cli_fail(DK_ERR_IO, "cannot write the signed message: %s", strerror(errno));
		goto out;
	}
	code = EX_OK;
out:
	dkc_result_free(&res);
	dkc_close(conn);
	if (spool != NULL)
		fclose(spool);
	return code;
}

int
cli_sign_main(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct sign_opts o;
	struct dk_buf in;
	const char *conf_path;
	char *sock = NULL;
	int conf_given, code;

	memset(&o, 0, sizeof(o));
	dk_buf_init(&in, DKIM_HEADER_SECTION_MAX + 2 * SIGN_CHUNK);
	if ((code = sign_parse(argc, argv, ctx, &o, &conf_path, &conf_given)) != 0) {
		code = code < 0 ? EX_OK : code;
		goto out;
	}
	if (o.socket == NULL && (code = sign_socket(conf_path, &sock)) != 0)
		goto out;
	code = sign_run(&o, o.socket != NULL ? o.socket : sock, &in);
out:
	free(sock);
	free(o.headers);
	dk_buf_free(&in);
	return code;
}
