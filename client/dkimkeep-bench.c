/*
 * dkimkeep-bench.c - load generator: the signing rate and latency of
 * dkimkeepd through its socket, beside the raw PKCS#11 rate of the same key
 * in the same run (INTERFACE.md "Benchmark").
 *
 * The message is read once, its body hashed once here (requests carry the
 * body hash, as a real client's would), and one header section is prepared
 * per domain with its From: rewritten.  bench_load.c drives the socket,
 * bench_raw.c the token, bench_stats.c times both, bench_report.c writes
 * the results.
 */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "client/bench_load.h"
#include "client/bench_proc.h"
#include "client/bench_raw.h"
#include "client/bench_report.h"
#include "client/dkimkeep_client.h"
#include "common/dk_buf.h"
#include "common/dk_config.h"
#include "common/dk_err.h"
#include "common/dk_log.h"
#include "dkim/dkim.h"

#define BENCH_MESSAGE_MAX (64 * 1024 * 1024)
#define BENCH_SECONDS_MAX 86400.0
#define BENCH_STATUS_WAIT 10000 /* ms for the first status request */
#define BENCH_FROM_LOCAL  "bench"

static const char usage_text[] =
    "NAME\n"
    "    dkimkeep-bench - signing rate and latency of dkimkeepd beside the raw token rate\n"
    "\n"
    "SYNOPSIS\n"
    "    dkimkeep-bench [-c FILE] --message FILE --alg A [--clients N] [--inflight W]\n"
    "                   [--seconds S] [--warmup S] [--domains N] [--connections N]\n"
    "                   [--rounds R] [--socket PATH] [--raw-threads N | --no-raw]\n"
    "                   [--json] [-q]\n"
    "\n"
    "DESCRIPTION\n"
    "    Runs N client threads against a running dkimkeepd, each on its own connection\n"
    "    with W sign requests in flight, for S seconds after a warm-up that is not\n"
    "    counted.  Then, in the same run, signs with the same key straight through\n"
    "    PKCS#11 (the digest a request would give, one session per thread) with as many\n"
    "    threads as the daemon has workers, for S seconds.  The daemon's rate divided by\n"
    "    the raw rate is ratio=: what the daemon costs on top of the token.\n"
    "\n"
    "    The body of the message is hashed once here and requests carry the body hash,\n"
    "    as libdkimkeep clients do.  The From: field of the message is replaced by\n"
    "    \"From: dkimkeep-bench <" BENCH_FROM_LOCAL "@DOMAIN>\", DOMAIN going round the first\n"
    "    --domains configured domains (in name order) that sign with A, so the daemon\n"
    "    finds the domain from From: as it does for real mail.  The raw half signs with\n"
    "    the active key of the first of them, on its primary token, and so needs to\n"
    "    read that token's pin_file.\n"
    "\n"
    "    On a busy machine the two halves may see different background load.  --rounds R\n"
    "    alternates them R times (S/R seconds each, each after its own warm-up) and adds\n"
    "    the rounds up, so that both halves see the same conditions on average.\n"
    "\n"
    "    Progress goes to stderr; the results to stdout.\n"
    "\n"
    "OPTIONS\n"
    "    -c FILE            configuration file (default: $DKIMKEEP_CONF or\n"
    "                       " DK_CONF_DEFAULT_PATH "): the socket, domains, tokens\n"
    "    --message FILE     the RFC 5322 message to sign (required)\n"
    "    --alg A            rsa-sha256 or ed25519-sha256 (required; rsa, ed25519 also work)\n"
    "    --clients N        concurrent client threads and connections (default 8)\n"
    "    --inflight W       requests each client keeps in flight (default 4, at most 256)\n"
    "    --seconds S        measured time of each half (default 10; decimals allowed)\n"
    "    --warmup S         time before measuring, not counted (default 2)\n"
    "    --domains N        spread requests over N domains (default 1)\n"
    "    --connections N    idle connections held open during the run (default 0)\n"
    "    --rounds R         alternate the socket and raw halves R times (default 1)\n"
    "    --socket PATH      the daemon's socket (default: socket= in [daemon])\n"
    "    --raw-threads N    threads (sessions) of the raw half (default: the daemon's\n"
    "                       workers, from its status)\n"
    "    --no-raw           skip the raw half (no token access; ratio is null)\n"
    "    --json             one JSON document on stdout instead of text\n"
    "    -q, --quiet        no progress lines on stderr\n"
    "    -h, --help         this text\n"
    "    --version          print the version\n"
    "\n"
    "OUTPUT\n"
    "    msgs/s: OK answers in the measured window per second.  Latency (p50, p90, p99,\n"
    "    max, in microseconds) runs from writing a request to reading its answer, queue\n"
    "    time in the daemon included; with W > 1 it grows with W.  errors= counts answers\n"
    "    other than OK, by status (BUSY, ...); IO counts connections that broke.  The\n"
    "    daemon line, when its /proc entry is readable (same user), gives its CPU time and\n"
    "    context switches per message and its resident memory with every connection\n"
    "    open.  raw: signatures per second and the p50 of one hsm_sign_digest call.\n"
    "    ratio= is msgs/s divided by raw sigs/s.  cpu_ratio= is the ratio the CPU times\n"
    "    predict when every core is busy: raw CPU per signature divided by the daemon's\n"
    "    plus this client's CPU per message.  It depends much less than ratio= on other\n"
    "    load on the machine (under load, more threads get more CPU: the socket half,\n"
    "    with N clients, can even beat the raw half).\n"
    "\n"
    "    --json gives: version, alg, message_bytes, clients, inflight, workers,\n"
    "    seconds, warmup, rounds, domains, connections, msgs, msgs_per_s, p50_us,\n"
    "    p90_us, p99_us, max_us, mean_us, errors, errors_by_status, raw_threads,\n"
    "    raw_sigs, raw_sigs_per_s, raw_p50_us, raw_p99_us, raw_max_us, raw_errors,\n"
    "    ratio, cpu_ratio, client_cpu_us_per_msg, raw_cpu_us_per_sig, daemon {pid,\n"
    "    threads, connections, rss_kib, hwm_kib, cpu_us_per_msg, ctxsw_per_msg} and\n"
    "    key {token, selector, key_id, bits}.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 the run took place (errors are in the output); 64 usage; 65 the message cannot\n"
    "    be used; 69 the daemon or the token is unavailable, or no request succeeded;\n"
    "    74 the message cannot be read; 77 the token's PIN was refused; 78 bad config.\n"
    "\n"
    "EXAMPLES\n"
    "    dkimkeep-bench -c /etc/dkimkeep/dkimkeep.conf --message 4k.eml --alg rsa-sha256\n"
    "    dkimkeep-bench --message 4k.eml --alg ed25519 --clients 1 --inflight 1 --json\n"
    "    dkimkeep-bench --message 4k.eml --alg rsa --domains 1000 --connections 1000\n";

static int bench_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
bench_fail(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("dkimkeep-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return dk_err_exit(err);
}

static const char *
bench_detail(int r)
{
	return dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r);
}

static int
opt_uint(const char *name, const char *s, unsigned min, unsigned max, unsigned *v)
{
	unsigned long x;
	char *end;

	errno = 0;
	x = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || s[0] == '-' || x < min || x > max)
		return bench_fail(DK_ERR_USAGE,
		    "--%s takes a whole number from %u to %u, not \"%s\"", name, min, max, s);
	*v = (unsigned)x;
	return 0;
}

static int
opt_seconds(const char *name, const char *s, double min, double *v)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(s, &end);
	if (errno != 0 || *end != '\0' || end == s || !isfinite(x) || x < min ||
	    x > BENCH_SECONDS_MAX)
		return bench_fail(DK_ERR_USAGE,
		    "--%s takes a number of seconds from %g to %g, not \"%s\"", name, min,
		    BENCH_SECONDS_MAX, s);
	*v = x;
	return 0;
}

static int
opt_alg(const char *s, enum dkim_alg *alg)
{
	if (strcmp(s, "rsa") == 0)
		s = "rsa-sha256";
	else if (strcmp(s, "ed25519") == 0)
		s = "ed25519-sha256";
	if (dkim_alg_parse(s, alg) != 0)
		return bench_fail(
		    DK_ERR_USAGE, "--alg takes rsa-sha256 or ed25519-sha256, not \"%s\"", s);
	return 0;
}

/* Parse argv into o; -1 when --help or --version was answered. */
static int
bench_parse(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
	    {"message", required_argument, NULL, 'm'},
	    {"alg", required_argument, NULL, 'a'},
	    {"clients", required_argument, NULL, 'n'},
	    {"inflight", required_argument, NULL, 'w'},
	    {"seconds", required_argument, NULL, 's'},
	    {"warmup", required_argument, NULL, 'W'},
	    {"domains", required_argument, NULL, 'd'},
	    {"connections", required_argument, NULL, 'i'},
	    {"rounds", required_argument, NULL, 'o'},
	    {"socket", required_argument, NULL, 'S'},
	    {"raw-threads", required_argument, NULL, 'r'},
	    {"no-raw", no_argument, NULL, 'R'},
	    {"json", no_argument, NULL, 'j'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c, r = 0, have_alg = 0;

	while (r == 0 && (c = getopt_long(argc, argv, "c:hq", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->conf_path = optarg;
			break;
		case 'm':
			o->message = optarg;
			break;
		case 'a':
			r = opt_alg(optarg, &o->alg);
			have_alg = 1;
			break;
		case 'n':
			r = opt_uint("clients", optarg, 1, BENCH_CLIENTS_MAX, &o->clients);
			break;
		case 'w':
			r = opt_uint("inflight", optarg, 1, BENCH_INFLIGHT_MAX, &o->inflight);
			break;
		case 's':
			r = opt_seconds("seconds", optarg, 0.1, &o->seconds);
			break;
		case 'W':
			r = opt_seconds("warmup", optarg, 0.0, &o->warmup);
			break;
		case 'd':
			r = opt_uint("domains", optarg, 1, DK_CONF_MAX_DOMAINS, &o->domains);
			break;
		case 'i':
			r = opt_uint("connections", optarg, 0, BENCH_IDLE_MAX, &o->idle);
			break;
		case 'o':
			r = opt_uint("rounds", optarg, 1, 1000, &o->rounds);
			break;
		case 'S':
			o->socket = optarg;
			break;
		case 'r':
			r = opt_uint(
			    "raw-threads", optarg, 1, BENCH_RAW_THREADS_MAX, &o->raw_threads);
			break;
		case 'R':
			o->no_raw = 1;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return -1;
		case 'V':
			printf("dkimkeep-bench %s\n", DKIMKEEP_VERSION);
			return -1;
		default:
			return bench_fail(DK_ERR_USAGE, "see \"dkimkeep-bench --help\"");
		}
	}
	if (r != 0)
		return r;
	if (optind != argc)
		return bench_fail(
		    DK_ERR_USAGE, "unexpected argument \"%s\"; see --help", argv[optind]);
	if (o->message == NULL || !have_alg)
		return bench_fail(DK_ERR_USAGE, "--message FILE and --alg A are required; see "
		                                "\"dkimkeep-bench --help\"");
	return 0;
}

/* Read the whole message file into b. */
static int
msg_read(const char *path, struct dk_buf *b)
{
	uint8_t chunk[65536];
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return dk_err_set(
		    DK_ERR_IO, "cannot open the message %s: %s", path, strerror(errno));
	if (fstat(fd, &st) == 0 && st.st_size > BENCH_MESSAGE_MAX) {
		r = dk_err_set(DK_ERR_TOO_LARGE, "the message %s is over %d MiB", path,
		    BENCH_MESSAGE_MAX / (1024 * 1024));
		goto out;
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = dk_err_set(
			    DK_ERR_IO, "cannot read the message %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if ((r = dk_buf_put(b, chunk, (size_t)n)) != 0) {
			r = dk_err_set(r, "the message %s is over %d MiB", path,
			    BENCH_MESSAGE_MAX / (1024 * 1024));
			goto out;
		}
	}
out:
	close(fd);
	return r;
}

/* 1 when the line at p (of n bytes) starts a "From:" field (RFC 5322 §3.6.2). */
static int
msg_is_from(const uint8_t *p, size_t n)
{
	size_t i = 4;

	if (n < 5 || strncasecmp((const char *)p, "from", 4) != 0)
		return 0;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < n && p[i] == ':';
}

/*
 * Where the From: field of hdr is: [*start, *end), its folded lines
 * included; *crlf when its first line ends in CRLF.  Both 0 when there is
 * none (a From: is then added at the top).
 */
static void
msg_find_from(const uint8_t *hdr, size_t len, size_t *start, size_t *end, int *crlf)
{
	const uint8_t *nl;
	size_t pos = 0, next;
	int in_from = 0;

	*start = *end = 0;
	*crlf = 0;
	nl = memchr(hdr, '\n', len);
	*crlf = nl != NULL && nl > hdr && nl[-1] == '\r';
	while (pos < len) {
		nl = memchr(hdr + pos, '\n', len - pos);
		next = nl != NULL ? (size_t)(nl - hdr) + 1 : len;
		if (in_from && hdr[pos] != ' ' && hdr[pos] != '\t') {
			*end = pos;
			return;
		}
		if (!in_from && msg_is_from(hdr + pos, next - pos)) {
			in_from = 1;
			*start = pos;
			*crlf = next >= 2 && hdr[next - 2] == '\r';
		}
		pos = next;
	}
	if (in_from)
		*end = len;
}

/* The header section with its From: replaced by one at domain. */
static int
msg_for_domain(const uint8_t *hdr, size_t len, const char *domain, struct bench_msg *out)
{
	struct dk_buf b;
	size_t start, end;
	int crlf, r;

	msg_find_from(hdr, len, &start, &end, &crlf);
	dk_buf_init(&b, DKIM_HEADER_SECTION_MAX + 512);
	if ((r = dk_buf_put(&b, hdr, start)) != 0 ||
	    (r = dk_buf_printf(&b, "From: dkimkeep-bench <%s@%s>%s", BENCH_FROM_LOCAL, domain,
	         crlf ? "\r\n" : "\n")) != 0 ||
	    (r = dk_buf_put(&b, hdr + end, len - end)) != 0) {
		dk_buf_free(&b);
		return r;
	}
	out->domain = domain;
	out->hdr = (uint8_t *)dk_buf_steal(&b, &out->hdr_len);
	return out->hdr == NULL ? DK_ERR_NOMEM : 0;
}

/*
 * Split the message, hash its body (relaxed, RFC 6376 §3.4.4), and make
 * one header section per chosen domain: the first o->domains configured
 * domains that sign with o->alg.
 */
static int
msg_prepare(const struct bench_opts *o, const struct dk_conf *conf, const struct dk_buf *m,
    struct bench_msg *msgs, uint8_t bh[DKC_HASH_LEN])
{
	struct dkc_body *body = NULL;
	size_t hdr_len, body_off, i, n = 0;
	int r;

	r = dkc_header_end(m->data, m->len, &hdr_len, &body_off);
	if (r < 0)
		return dk_err_set(DK_ERR_MSG_NOT_MESSAGE,
		    "%s is not a message: it must start with header fields, then an empty "
		    "line, then the body",
		    o->message);
	if (r == 0)
		hdr_len = body_off = m->len; /* no body */
	if (hdr_len == 0 || hdr_len > DKIM_HEADER_SECTION_MAX)
		return dk_err_set(DK_ERR_MSG_HEADER_TOO_LARGE,
		    "the header section of %s is empty or over 1 MiB", o->message);
	if ((r = dkc_body_new(0, &body)) != 0 ||
	    (r = dkc_body_update(body, m->data + body_off, m->len - body_off)) != 0)
		goto out;
	r = dkc_body_final(body, bh);
	body = NULL;
	if (r != 0)
		goto out;
	for (i = 0; i < conf->ndomains && n < o->domains; i++) {
		if (!(conf->domains[i].algs & (1u << o->alg)))
			continue;
		if ((r = msg_for_domain(m->data, hdr_len, conf->domains[i].name, &msgs[n])) != 0)
			goto out;
		n++;
	}
	if (n < o->domains) {
		r = dk_err_set(DK_ERR_CONFIG,
		    "%s has %zu [domain] section%s signing with %s, fewer than --domains %u",
		    conf->path, n, n == 1 ? "" : "s", dkim_alg_name(o->alg), o->domains);
		goto out;
	}
	r = 0;
out:
	dkc_body_free(body);
	return r;
}

/* The daemon's worker count (from its status) and pid. */
static int
bench_daemon_info(const char *sock, const struct dk_conf *conf, unsigned *workers, pid_t *pid)
{
	struct dkc_conn *c = NULL;
	struct dkc_status_info *st = NULL;
	char why[512];
	int r;

	*workers = conf->daemon.workers > 0 ? (unsigned)conf->daemon.workers : 1;
	if ((r = dkc_connect(sock, BENCH_STATUS_WAIT, &c)) != 0 || (r = dkc_status(c, &st)) != 0) {
		snprintf(why, sizeof(why), "%s", dkc_strerror(r));
		r = dk_err_set(DK_ERR_UNAVAILABLE, "%s", why);
		goto out;
	}
	if (st->workers > 0)
		*workers = st->workers;
	if (bench_proc_daemon_pid(sock, pid) != 0)
		*pid = 0;
	r = 0;
out:
	dkc_status_free(st);
	dkc_close(c);
	return r;
}

static void
bench_load_opts_fill(const struct bench_opts *o, const char *sock, const struct bench_msg *msgs,
    const uint8_t *bh, pid_t daemon_pid, struct bench_load_opts *lo)
{
	memset(lo, 0, sizeof(*lo));
	lo->socket = sock;
	lo->alg = o->alg == DKIM_ALG_RSA_SHA256 ? DKC_ALG_RSA_SHA256 : DKC_ALG_ED25519_SHA256;
	lo->msgs = msgs;
	lo->nmsgs = o->domains;
	lo->body_hash = bh;
	lo->clients = o->clients;
	lo->inflight = o->inflight;
	lo->idle = o->idle;
	lo->warmup = o->warmup;
	lo->seconds = o->seconds / o->rounds;
	lo->progress = !o->quiet;
	lo->daemon_pid = daemon_pid;
}

static void
bench_raw_opts_fill(const struct bench_opts *o, const struct dk_conf *conf, const char *domain,
    struct bench_raw_opts *ro)
{
	memset(ro, 0, sizeof(*ro));
	ro->conf = conf;
	ro->domain = domain;
	ro->alg = dkim_alg_name(o->alg);
	ro->threads = o->raw_threads;
	ro->warmup = o->warmup;
	ro->seconds = o->seconds / o->rounds;
	ro->progress = !o->quiet;
}

/*
 * Alternate the socket and raw halves o->rounds times, adding them up in
 * rp.  An error code only when the socket half cannot run; a raw half that
 * fails is reported in *raw_err and dropped.
 */
static int
bench_rounds(const struct bench_opts *o, const struct bench_load_opts *lo, struct bench_raw *R,
    struct bench_report *rp, struct bench_raw_result *raw, int *raw_err)
{
	struct bench_load_result *one;
	unsigned i, want;
	int r;

	if ((one = calloc(1, sizeof(*one))) == NULL)
		return bench_fail(DK_ERR_NOMEM, "out of memory");
	for (i = 0; i < o->rounds; i++) {
		if (o->rounds > 1 && !o->quiet)
			fprintf(stderr, "dkimkeep-bench: round %u of %u\n", i + 1, o->rounds);
		if ((r = bench_load_run(lo, one)) != 0) {
			free(one);
			return bench_fail(r, "%s", bench_detail(r));
		}
		if (one->error[0])
			fprintf(stderr, "dkimkeep-bench: %s\n", one->error);
		bench_load_merge(rp->load, one);
		if (R != NULL && *raw_err == 0 && (*raw_err = bench_raw_measure(R, raw)) != 0)
			fprintf(stderr, "dkimkeep-bench: raw: %s\n", bench_detail(*raw_err));
	}
	free(one);
	if (R != NULL && *raw_err == 0) {
		rp->raw = raw;
		if (raw->error[0])
			fprintf(stderr, "dkimkeep-bench: raw: %s\n", raw->error);
	}
	/* The clients, the idle ones, and the one that asked for the status. */
	want = o->idle + o->clients + 1;
	if (o->idle > 0 && rp->load->daemon_connections < want)
		fprintf(stderr,
		    "dkimkeep-bench: warning: the daemon counted %u connections, fewer than the "
		    "%u opened; is max_connections in [daemon] too low?\n",
		    rp->load->daemon_connections, want);
	return 0;
}

static int
bench_main(struct bench_opts *o)
{
	struct bench_load_result *load = NULL;
	struct bench_raw_result *raw = NULL;
	struct bench_raw *R = NULL;
	struct bench_msg *msgs = NULL;
	struct bench_load_opts lo;
	struct bench_raw_opts ro;
	struct bench_report rp;
	struct dk_conf *conf = NULL;
	struct dk_buf m;
	uint8_t bh[DKC_HASH_LEN];
	const char *sock;
	unsigned i;
	int r, code, raw_err = 0;

	memset(&rp, 0, sizeof(rp));
	rp.o = o;
	dk_buf_init(&m, BENCH_MESSAGE_MAX);
	if ((r = dk_conf_load(o->conf_path, &conf)) != 0) {
		code = bench_fail(DK_ERR_CONFIG, "%s", bench_detail(r));
		goto out;
	}
	sock = o->socket != NULL ? o->socket : conf->daemon.socket;
	if ((r = msg_read(o->message, &m)) != 0) {
		code = bench_fail(r, "%s", bench_detail(r));
		goto out;
	}
	rp.message_bytes = m.len;
	msgs = calloc(o->domains, sizeof(*msgs));
	load = calloc(1, sizeof(*load));
	raw = calloc(1, sizeof(*raw));
	if (msgs == NULL || load == NULL || raw == NULL) {
		code = bench_fail(DK_ERR_NOMEM, "out of memory");
		goto out;
	}
	rp.load = load;
	bench_hist_init(&load->hist);
	if ((r = msg_prepare(o, conf, &m, msgs, bh)) != 0) {
		code = bench_fail(r, "%s", bench_detail(r));
		goto out;
	}
	if ((r = bench_daemon_info(sock, conf, &rp.workers, &rp.daemon_pid)) != 0) {
		code = bench_fail(r, "%s", bench_detail(r));
		goto out;
	}
	if (o->raw_threads == 0)
		o->raw_threads = rp.workers;
	bench_load_opts_fill(o, sock, msgs, bh, rp.daemon_pid, &lo);
	bench_raw_opts_fill(o, conf, msgs[0].domain, &ro);
	/* The token first: a PIN or key problem is known before minutes of load. */
	if (!o->no_raw && (raw_err = bench_raw_open(&ro, &R, raw)) != 0)
		fprintf(stderr, "dkimkeep-bench: raw: %s\n", bench_detail(raw_err));
	if ((code = bench_rounds(o, &lo, R, &rp, raw, &raw_err)) != 0)
		goto out;
	if (o->json ? bench_report_json(&rp) != 0 : (bench_report_text(&rp), 0)) {
		code = bench_fail(DK_ERR_NOMEM, "cannot format the results");
		goto out;
	}
	fflush(stdout);
	if (raw_err != 0)
		code = dk_err_exit(raw_err);
	else if (load->ok == 0)
		code = bench_fail(DK_ERR_UNAVAILABLE,
		    "no request succeeded; see the errors above and the daemon's log");
	else
		code = EX_OK;
out:
	bench_raw_close(R);
	for (i = 0; msgs != NULL && i < o->domains; i++)
		free(msgs[i].hdr);
	free(msgs);
	free(load);
	free(raw);
	dk_buf_free(&m);
	dk_conf_free(conf);
	return code;
}

int
main(int argc, char **argv)
{
	struct bench_opts o;
	int r;

	dk_log_init("dkimkeep-bench", 0, getenv("DKIMKEEP_DEBUG") != NULL);
	memset(&o, 0, sizeof(o));
	o.conf_path = dk_conf_default_path();
	o.clients = 8;
	o.inflight = 4;
	o.seconds = 10;
	o.warmup = 2;
	o.domains = 1;
	o.rounds = 1;
	if ((r = bench_parse(argc, argv, &o)) != 0)
		return r < 0 ? EX_OK : r;
	return bench_main(&o);
}
