/*
 * opendkim_bench.c - the yardstick dkimkeep is measured against: the same
 * message signed in process by libopendkim (what the opendkim milter does
 * for every message), with an RSA PEM key in memory, in P forked processes.
 *
 * Each message is a full libopendkim signing: dkim_sign() (which parses the
 * PEM key), every header field, the body, dkim_eom() (the RSA signature
 * with OpenSSL) and dkim_getsighdr_d().  The body is hashed per message, as
 * opendkim does; the cost is small next to RSA for a 4 KB message.
 */
#include <sys/types.h>
#include <sys/wait.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <dkim.h>

#define MSG_MAX     (16 * 1024 * 1024)
#define HEADERS_MAX 1000
#define PROCS_MAX   256
/* dkimkeep's default h= list (common/dk_config.h), so both sign the same fields. */
#define SIGN_HEADERS                                                                               \
	"from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to",            \
	    "references", "mime-version", "content-type"

static const char usage_text[] =
    "NAME\n"
    "    opendkim_bench - libopendkim's in-process signing rate, for comparison\n"
    "\n"
    "SYNOPSIS\n"
    "    opendkim_bench --message FILE [--key PEM] [--bits N] [--procs P]\n"
    "                   [--seconds S] [--warmup S] [--json]\n"
    "\n"
    "DESCRIPTION\n"
    "    Signs FILE (rsa-sha256, relaxed/relaxed, d=example.com s=bench) with\n"
    "    libopendkim in P forked processes for S seconds after a warm-up that is not\n"
    "    counted, and prints the messages signed per second.  Without --key an RSA key\n"
    "    of --bits bits (default 2048) is generated with OpenSSL at start.\n"
    "\n"
    "OPTIONS\n"
    "    --message FILE  the RFC 5322 message (CRLF or LF line ends)\n"
    "    --key PEM       RSA private key in PEM (default: generated)\n"
    "    --bits N        size of the generated key (default 2048)\n"
    "    --procs P       processes (default 2)\n"
    "    --seconds S     measured time (default 10)\n"
    "    --warmup S      time before measuring (default 2)\n"
    "    --json          one JSON document: procs, seconds, msgs, msgs_per_s, bits\n"
    "    -h, --help      this text\n"
    "\n"
    "EXIT STATUS\n"
    "    0 done; 64 usage; 65 the message cannot be signed; 69 a process failed;\n"
    "    74 a file cannot be read.\n";

struct field {
	size_t off, len; /* one header field, folds included, without its final line end */
};

struct bench {
	unsigned char *msg;
	size_t len;
	struct field f[HEADERS_MAX];
	size_t nf;
	size_t body_off;
	unsigned char *key; /* PEM */
	size_t key_len;
	unsigned bits;
	unsigned procs;
	double seconds, warmup;
	int json;
};

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int
read_file(const char *path, unsigned char **out, size_t *len)
{
	unsigned char *buf = NULL, *nb;
	size_t cap = 0, n = 0, got;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "opendkim_bench: cannot open %s: %s\n", path, strerror(errno));
		return EX_IOERR;
	}
	for (;;) {
		if (n + 65536 + 1 > cap) {
			cap = cap ? cap * 2 : 131072;
			if (cap > MSG_MAX || (nb = realloc(buf, cap)) == NULL) {
				fprintf(stderr, "opendkim_bench: %s is too large\n", path);
				free(buf);
				fclose(f);
				return EX_DATAERR;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, 65536, f);
		n += got;
		if (got < 65536)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* Split the header section into fields (RFC 5322 §2.2: a line starting with WSP continues one). */
static int
split_headers(struct bench *b)
{
	size_t pos = 0, eol, next;
	unsigned char *nl;

	while (pos < b->len) {
		nl = memchr(b->msg + pos, '\n', b->len - pos);
		next = nl != NULL ? (size_t)(nl - b->msg) + 1 : b->len;
		eol = nl != NULL ? (size_t)(nl - b->msg) : b->len;
		if (eol > pos && b->msg[eol - 1] == '\r')
			eol--;
		if (eol == pos) { /* the empty line */
			b->body_off = next;
			return 0;
		}
		if (b->msg[pos] == ' ' || b->msg[pos] == '\t') {
			if (b->nf == 0)
				return -1;
			b->f[b->nf - 1].len = eol - b->f[b->nf - 1].off;
		} else {
			if (b->nf == HEADERS_MAX)
				return -1;
			b->f[b->nf].off = pos;
			b->f[b->nf].len = eol - pos;
			b->nf++;
		}
		pos = next;
	}
	b->body_off = b->len;
	return b->nf > 0 ? 0 : -1;
}

static int
gen_key(struct bench *b)
{
	EVP_PKEY *pk = NULL;
	BIO *mem = NULL;
	char *p;
	long n;
	int r = EX_SOFTWARE;

	if ((pk = EVP_RSA_gen(b->bits)) == NULL || (mem = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PrivateKey(mem, pk, NULL, NULL, 0, NULL, NULL))
		goto out;
	n = BIO_get_mem_data(mem, &p);
	if (n <= 0 || (b->key = malloc((size_t)n + 1)) == NULL)
		goto out;
	memcpy(b->key, p, (size_t)n);
	b->key[n] = '\0';
	b->key_len = (size_t)n;
	r = 0;
out:
	if (r != 0)
		fprintf(stderr, "opendkim_bench: cannot generate an RSA-%u key\n", b->bits);
	BIO_free(mem);
	EVP_PKEY_free(pk);
	return r;
}

/* One whole libopendkim signing of the message. */
static int
sign_one(DKIM_LIB *lib, const struct bench *b, unsigned long n)
{
	char id[32];
	DKIM_STAT st;
	DKIM *d;
	unsigned char *sig;
	size_t i, siglen;
	int r = -1;

	snprintf(id, sizeof(id), "bench-%lu", n);
	d = dkim_sign(lib, (unsigned char *)id, NULL, b->key, (const unsigned char *)"bench",
	    (const unsigned char *)"example.com", DKIM_CANON_RELAXED, DKIM_CANON_RELAXED,
	    DKIM_SIGN_RSASHA256, -1, &st);
	if (d == NULL)
		return -1;
	for (i = 0; i < b->nf; i++) {
		if (dkim_header(d, b->msg + b->f[i].off, b->f[i].len) != DKIM_STAT_OK)
			goto out;
	}
	if (dkim_eoh(d) != DKIM_STAT_OK ||
	    dkim_body(d, b->msg + b->body_off, b->len - b->body_off) != DKIM_STAT_OK ||
	    dkim_eom(d, NULL) != DKIM_STAT_OK ||
	    dkim_getsighdr_d(d, strlen("DKIM-Signature: "), &sig, &siglen) != DKIM_STAT_OK)
		goto out;
	r = siglen > 0 ? 0 : -1;
out:
	dkim_free(d);
	return r;
}

/* A child: sign until t_stop, count what finishes in [t_measure, t_stop). */
static int
child_main(const struct bench *b, uint64_t t_measure, uint64_t t_stop, int fd)
{
	static const char *hdrs[] = {SIGN_HEADERS, NULL};
	DKIM_LIB *lib;
	uint64_t count = 0, t;
	unsigned long n = 0;
	unsigned flags = DKIM_LIBFLAGS_FIXCRLF;

	if ((lib = dkim_init(NULL, NULL)) == NULL)
		return EX_SOFTWARE;
	(void)dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags));
	(void)dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, hdrs, sizeof(hdrs));
	while ((t = now_us()) < t_stop) {
		if (sign_one(lib, b, n++) != 0) {
			fprintf(stderr, "opendkim_bench: libopendkim failed to sign: %s\n",
			    dkim_getresultstr(DKIM_STAT_INTERNAL));
			dkim_close(lib);
			return EX_DATAERR;
		}
		t = now_us();
		if (t >= t_measure && t < t_stop)
			count++;
	}
	dkim_close(lib);
	if (write(fd, &count, sizeof(count)) != (ssize_t)sizeof(count))
		return EX_IOERR;
	return 0;
}

static int
run(struct bench *b, uint64_t *total)
{
	pid_t pids[PROCS_MAX];
	uint64_t t_measure, t_stop, c;
	int fds[2], st, r = 0;
	unsigned i;

	*total = 0;
	if (pipe(fds) != 0)
		return EX_OSERR;
	t_measure = now_us() + (uint64_t)(b->warmup * 1e6);
	t_stop = t_measure + (uint64_t)(b->seconds * 1e6);
	for (i = 0; i < b->procs; i++) {
		if ((pids[i] = fork()) < 0) {
			r = EX_OSERR;
			b->procs = i;
			break;
		}
		if (pids[i] == 0) {
			close(fds[0]);
			_exit(child_main(b, t_measure, t_stop, fds[1]));
		}
	}
	close(fds[1]);
	for (i = 0; i < b->procs; i++) {
		if (read(fds[0], &c, sizeof(c)) == (ssize_t)sizeof(c))
			*total += c;
	}
	close(fds[0]);
	for (i = 0; i < b->procs; i++) {
		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			r = r ? r : EX_UNAVAILABLE;
	}
	return r;
}

static int
parse_num(const char *name, const char *s, double min, double max, double *v)
{
	char *end;

	errno = 0;
	*v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || end == s || !isfinite(*v) || *v < min || *v > max) {
		fprintf(stderr, "opendkim_bench: --%s takes a number from %g to %g, not \"%s\"\n",
		    name, min, max, s);
		return EX_USAGE;
	}
	return 0;
}

static int
parse(int argc, char **argv, struct bench *b, const char **msg, const char **key)
{
	static const struct option longopts[] = {
	    {"message", required_argument, NULL, 'm'},
	    {"key", required_argument, NULL, 'k'},
	    {"bits", required_argument, NULL, 'b'},
	    {"procs", required_argument, NULL, 'p'},
	    {"seconds", required_argument, NULL, 's'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	double v;
	int c, r = 0;

	while (r == 0 && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			*msg = optarg;
			break;
		case 'k':
			*key = optarg;
			break;
		case 'b':
			if ((r = parse_num("bits", optarg, 1024, 8192, &v)) == 0)
				b->bits = (unsigned)v;
			break;
		case 'p':
			if ((r = parse_num("procs", optarg, 1, PROCS_MAX, &v)) == 0)
				b->procs = (unsigned)v;
			break;
		case 's':
			r = parse_num("seconds", optarg, 0.1, 86400, &b->seconds);
			break;
		case 'w':
			r = parse_num("warmup", optarg, 0, 86400, &b->warmup);
			break;
		case 'j':
			b->json = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return -1;
		default:
			fputs(usage_text, stderr);
			return EX_USAGE;
		}
	}
	if (r == 0 && (*msg == NULL || optind != argc)) {
		fputs(usage_text, stderr);
		r = EX_USAGE;
	}
	return r;
}

int
main(int argc, char **argv)
{
	static struct bench b;
	const char *msg = NULL, *key = NULL;
	uint64_t total;
	double rate;
	int r;

	b.bits = 2048;
	b.procs = 2;
	b.seconds = 10;
	b.warmup = 2;
	if ((r = parse(argc, argv, &b, &msg, &key)) != 0)
		return r < 0 ? 0 : r;
	if ((r = read_file(msg, &b.msg, &b.len)) != 0)
		return r;
	if (split_headers(&b) != 0) {
		fprintf(stderr, "opendkim_bench: %s is not a message\n", msg);
		return EX_DATAERR;
	}
	if ((r = key != NULL ? read_file(key, &b.key, &b.key_len) : gen_key(&b)) != 0)
		return r;
	if (!b.json)
		fprintf(stderr, "opendkim_bench: %u processes, %.1f s (%.1f s warm-up)\n", b.procs,
		    b.seconds, b.warmup);
	r = run(&b, &total);
	rate = (double)total / b.seconds;
	if (b.json)
		printf("{\"procs\":%u,\"seconds\":%.3f,\"bits\":%u,\"message_bytes\":%zu,"
		       "\"msgs\":%llu,\"msgs_per_s\":%.3f}\n",
		    b.procs, b.seconds, b.bits, b.len, (unsigned long long)total, rate);
	else
		printf("libopendkim %u procs: %.1f msgs/s (%llu messages in %.1f s)\n", b.procs,
		    rate, (unsigned long long)total, b.seconds);
	free(b.msg);
	free(b.key);
	return r;
}
