/*
 * dkimkeep-milter.c - sign outgoing mail in Postfix and Sendmail through dkimkeepd.
 *
 * libmilter calls us once per SMTP event.  We decide at connect / MAIL FROM
 * whether the message is ours to sign ([milter] sign and internal_hosts),
 * rebuild the header section as the fields come, hash the body chunk by
 * chunk (it is never kept), and at the end of the message ask dkimkeepd for
 * the signatures with the body hash and insert them at the top.  The keys
 * stay in the daemon's token; this process holds no secret.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "client/dkimkeep_client.h"
#include "client/milter_hosts.h"
#include "client/milter_msg.h"
#include "client/milter_pool.h"
#include "common/dk_buf.h"
#include "common/dk_config.h"
#include "common/dk_err.h"
#include "common/dk_log.h"

/* Bounds every call to the daemon; well below Postfix's milter_content_timeout (300 s). */
#define MILTER_DAEMON_TIMEOUT_MS 10000
/* Socket mode through the umask: the MTA's user must share the milter's group. */
#define MILTER_UMASK  0007
#define ADDR_TEXT_MAX (256 + INET6_ADDRSTRLEN) /* "hostname[address]", hostname cut at 200 */

static const char usage_text[] =
    "NAME\n"
    "  dkimkeep-milter - DKIM-sign outgoing mail in Postfix and Sendmail through dkimkeepd\n"
    "\n"
    "SYNOPSIS\n"
    "  dkimkeep-milter [-c FILE] [-f] [-d] [-p SOCKET]\n"
    "  dkimkeep-milter -h | --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "  A mail filter (milter) for Postfix and Sendmail.  For each message it is to\n"
    "  sign, it rebuilds the header section, hashes the body as it streams by (the\n"
    "  body is never held in memory nor sent anywhere), asks dkimkeepd for one\n"
    "  DKIM-Signature per configured algorithm, and inserts them at the top of the\n"
    "  message.  The private keys stay in dkimkeepd's PKCS#11 token.  The signing\n"
    "  domain is the From address's domain (or its nearest configured parent).\n"
    "\n"
    "  Which mail is signed ([milter] sign):\n"
    "    local          mail from clients in internal_hosts (the default), and mail\n"
    "                   that did not come over the network (Postfix non_smtpd_milters)\n"
    "    authenticated  local mail, and mail from SMTP AUTH'd senders ({auth_authen})\n"
    "    all            every message\n"
    "\n"
    "  Mail that cannot be signed passes unsigned, with a log line: no From or two\n"
    "  From fields, a header section over 1 MiB, a domain the daemon does not know\n"
    "  or this milter may not sign for.  When signing fails (daemon down or busy,\n"
    "  token down, timeout after 10 s) the message is tempfailed (4xx, the client\n"
    "  retries), or passed on unsigned with [milter] on_error = accept.\n"
    "\n"
    "OPTIONS\n"
    "  -c FILE     configuration file (default: $DKIMKEEP_CONF or " DK_CONF_DEFAULT_PATH ")\n"
    "  -p SOCKET   where the MTA connects, in libmilter form: unix:/path (also\n"
    "              local:/path or a bare path), inet:PORT@HOST, inet6:PORT@HOST\n"
    "              (default: socket= in [milter], else unix:/run/dkimkeep/milter.sock)\n"
    "  -f          stay in the foreground and log to stderr (else: background, syslog\n"
    "              facility mail)\n"
    "  -d          also log debug lines (why each message is or is not signed)\n"
    "  -h, --help  this text\n"
    "  --version   print the version\n"
    "\n"
    "CONFIGURATION\n"
    "  [milter] socket, sign, internal_hosts (CIDRs, default 127.0.0.0/8, ::1/128),\n"
    "  on_error (tempfail | accept), client_socket (the daemon's socket, default\n"
    "  socket= of [daemon]).  The daemon needs a [client] section for the user this\n"
    "  milter runs as, with domains= listing what it may sign.  A unix socket is\n"
    "  created with mode 0770 (umask 007): put the MTA's user in the milter's group.\n"
    "\n"
    "SIGNALS\n"
    "  SIGTERM, SIGINT: finish the messages in progress and exit 0.\n"
    "\n"
    "EXIT STATUS\n"
    "  0 stopped cleanly; 64 usage; 69 the milter socket cannot be opened or is in\n"
    "  use by a running milter; 70 libmilter failed; 78 bad configuration.\n"
    "\n"
    "EXAMPLES\n"
    "  dkimkeep-milter -f -p inet:8891@127.0.0.1\n"
    "  Postfix main.cf:  smtpd_milters = unix:/run/dkimkeep/milter.sock\n"
    "                    non_smtpd_milters = $smtpd_milters\n"
    "                    milter_default_action = tempfail\n"
    "  Test:             swaks --server 127.0.0.1 --from you@example.com --to x@example.net\n"
    "\n"
    "SEE ALSO\n"
    "  dkimkeepd(8), dkimkeep(1); docs/postfix.md, docs/sendmail.md, docs/operator.md\n";

/* Set once in main() before smfi_main(); read-only in the callbacks' threads. */
static struct {
	enum dk_milter_sign sign;
	int on_error_accept;
	struct milter_nets nets;
	struct milter_pool *pool;
} cfg;

/* Per SMTP connection (smfi_setpriv); one libmilter thread at a time uses it. */
struct mconn {
	int leadspc;  /* SMFIP_HDR_LEADSPC: header values keep the space after ':' */
	int internal; /* client in internal_hosts, or not a network client */
	int signing;  /* the current message is to be signed */
	char client[ADDR_TEXT_MAX];
	struct milter_msg msg;
};

/* libmilter takes char *, not const char *: names it is handed live here. */
static char filter_name[] = "dkimkeep-milter";
static char hdr_dkim[] = "DKIM-Signature";
static char sym_qid[] = "i";
static char sym_auth[] = "{auth_authen}";
static char reply_code[] = "451";
static char reply_xcode[] = "4.7.1";
static char reply_text[] = "DKIM signing is temporarily unavailable; try again later";

static struct mconn *
conn_get(SMFICTX *ctx)
{
	struct mconn *c = smfi_getpriv(ctx);

	if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL) {
		milter_msg_init(&c->msg);
		snprintf(c->client, sizeof(c->client), "unknown");
		if (smfi_setpriv(ctx, c) != MI_SUCCESS) {
			free(c);
			c = NULL;
		}
	}
	return c;
}

static const char *
qid(SMFICTX *ctx)
{
	const char *q = smfi_getsymval(ctx, sym_qid);

	return q != NULL && q[0] != '\0' ? q : "NOQUEUE";
}

/* What to answer when signing failed for a reason that may pass: [milter] on_error. */
static sfsistat
fail_action(SMFICTX *ctx, const char *why)
{
	if (cfg.on_error_accept) {
		dk_log_warn(
		    "%s: passing the message on unsigned (on_error = accept): %s", qid(ctx), why);
		return SMFIS_ACCEPT;
	}
	dk_log_err(
	    "%s: answering 451 so the client retries (on_error = tempfail): %s", qid(ctx), why);
	(void)smfi_setreply(ctx, reply_code, reply_xcode, reply_text);
	return SMFIS_TEMPFAIL;
}

/* The message cannot be signed and never will be: let it go unsigned. */
static sfsistat
pass_unsigned(SMFICTX *ctx, struct mconn *c, const char *why)
{
	dk_log_notice("%s: not signed, passed on unsigned: %s", qid(ctx), why);
	if (c != NULL) {
		c->signing = 0;
		milter_msg_reset(&c->msg);
	}
	return SMFIS_ACCEPT;
}

static sfsistat
mlfi_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
    unsigned long *pf0, unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	struct mconn *c;

	(void)f2;
	(void)f3;
	if ((f0 & SMFIF_ADDHDRS) == 0) {
		dk_log_err("the MTA does not let milters add header fields; nothing can be signed");
		return SMFIS_REJECT;
	}
	*pf0 = SMFIF_ADDHDRS;
	*pf2 = 0;
	*pf3 = 0;
	/*
	 * Ask for header values exactly as they are, with the space after the
	 * colon, so that the section we sign is the one that is sent.
	 */
	if ((f1 & SMFIP_HDR_LEADSPC) != 0 && (c = conn_get(ctx)) != NULL) {
		*pf1 |= SMFIP_HDR_LEADSPC;
		c->leadspc = 1;
	}
	return SMFIS_CONTINUE;
}

static void
addr_text(const struct sockaddr *sa, const char *hostname, char *out, size_t outlen)
{
	char a[INET6_ADDRSTRLEN];
	const void *p = NULL;

	if (sa != NULL && sa->sa_family == AF_INET)
		p = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa != NULL && sa->sa_family == AF_INET6)
		p = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (p == NULL || inet_ntop(sa->sa_family, p, a, sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "%s", sa == NULL ? "no address" : "local socket");
	snprintf(out, outlen, "%.200s[%s]", hostname != NULL ? hostname : "unknown", a);
}

static sfsistat
mlfi_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	struct mconn *c = conn_get(ctx);

	if (c == NULL)
		return fail_action(ctx, "out of memory");
	/* No address, or a unix socket: the mail did not come over the network. */
	c->internal = hostaddr == NULL || hostaddr->sa_family == AF_UNIX ||
	              milter_nets_match(&cfg.nets, hostaddr);
	addr_text(hostaddr, hostname, c->client, sizeof(c->client));
	if (cfg.sign == DK_MILTER_SIGN_LOCAL && !c->internal) {
		dk_log_debug(
		    "%s: not in internal_hosts; its mail is not signed (sign = local)", c->client);
		return SMFIS_ACCEPT;
	}
	return SMFIS_CONTINUE;
}

static int
sign_wanted(SMFICTX *ctx, const struct mconn *c)
{
	const char *auth;

	switch (cfg.sign) {
	case DK_MILTER_SIGN_ALL:
		return 1;
	case DK_MILTER_SIGN_AUTHENTICATED:
		if (c->internal)
			return 1;
		auth = smfi_getsymval(ctx, sym_auth);
		return auth != NULL && auth[0] != '\0';
	case DK_MILTER_SIGN_LOCAL:
	default:
		return c->internal;
	}
}

static sfsistat
mlfi_envfrom(SMFICTX *ctx, char **argv)
{
	struct mconn *c = conn_get(ctx);

	(void)argv;
	if (c == NULL)
		return fail_action(ctx, "out of memory");
	milter_msg_reset(&c->msg);
	c->signing = sign_wanted(ctx, c);
	if (!c->signing) {
		dk_log_debug("%s: mail from %s is not signed: not in internal_hosts and not "
		             "authenticated",
		    qid(ctx), c->client);
		return SMFIS_ACCEPT;
	}
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_header(SMFICTX *ctx, char *name, char *value)
{
	struct mconn *c = smfi_getpriv(ctx);
	int r;

	if (c == NULL || !c->signing)
		return SMFIS_CONTINUE;
	if ((r = milter_msg_header(&c->msg, name, value, c->leadspc)) == 0)
		return SMFIS_CONTINUE;
	if (r == DK_ERR_NOMEM)
		return fail_action(ctx, "out of memory");
	if (r == DK_ERR_MSG_HEADER_TOO_LARGE)
		return pass_unsigned(ctx, c, "the header section is over 1 MiB");
	return pass_unsigned(
	    ctx, c, "a header field name is empty, too long or not printable ASCII");
}

static sfsistat
mlfi_eoh(SMFICTX *ctx)
{
	struct mconn *c = smfi_getpriv(ctx);
	int r;

	if (c == NULL || !c->signing)
		return SMFIS_CONTINUE;
	if ((r = milter_msg_eoh(&c->msg)) == 0)
		return SMFIS_CONTINUE;
	if (r == DK_ERR_MSG_NO_FROM)
		return pass_unsigned(ctx, c, "it has no From field (RFC 6376 §5.4 needs one)");
	if (r == DK_ERR_MSG_MULTI_FROM)
		return pass_unsigned(ctx, c, "it has more than one From field");
	return fail_action(ctx, dk_strerror(r));
}

static sfsistat
mlfi_body(SMFICTX *ctx, unsigned char *data, size_t len)
{
	struct mconn *c = smfi_getpriv(ctx);
	int r;

	if (c == NULL || !c->signing)
		return SMFIS_CONTINUE;
	if ((r = milter_msg_body(&c->msg, data, len)) != 0)
		return fail_action(ctx, dk_strerror(r));
	return SMFIS_CONTINUE;
}

/*
 * The field value to hand to smfi_insheader: what follows "DKIM-Signature:".
 * Folds become LF + TAB: the MTA stores lines with its own line ends and
 * writes CRLF on the wire itself (a CR kept here would be sent as "\r\r\n").
 * Without SMFIP_HDR_LEADSPC the MTA adds the space after the colon itself.
 */
static int
sig_value(const char *header, int leadspc, struct dk_buf *out)
{
	const char *p = strchr(header, ':');
	int r = 0;

	if (p == NULL)
		return DK_ERR_PROTO;
	p++;
	if (!leadspc)
		p += strspn(p, " \t");
	for (; *p != '\0' && r == 0; p++) {
		if (p[0] == '\r' && p[1] == '\n')
			continue;
		r = dk_buf_putc(out, (uint8_t)*p);
	}
	return r;
}

static int
insert_sigs(SMFICTX *ctx, const struct mconn *c, const struct dkc_result *res)
{
	struct dk_buf v;
	size_t i;
	int r = 0;

	dk_buf_init(&v, 64 * 1024);
	/* Insert the last first, each at the top: they end up in the daemon's order. */
	for (i = res->nsigs; i-- > 0 && r == 0;) {
		dk_buf_reset(&v);
		if ((r = sig_value(res->sigs[i].header, c->leadspc, &v)) != 0)
			break;
		if (smfi_insheader(ctx, 0, hdr_dkim, (char *)v.data) != MI_SUCCESS)
			r = dk_err_set(DK_ERR_INTERNAL, "the MTA refused to insert DKIM-Signature");
	}
	dk_buf_free(&v);
	return r;
}

static void
log_signed(SMFICTX *ctx, const struct dkc_result *res)
{
	char sels[256];
	size_t i, n = 0;
	int w;

	sels[0] = '\0';
	for (i = 0; i < res->nsigs && n < sizeof(sels); i++) {
		w = snprintf(sels + n, sizeof(sels) - n, "%s%s (%s)", i ? ", " : "",
		    res->sigs[i].selector, res->sigs[i].slot);
		if (w < 0)
			break;
		n += (size_t)w;
	}
	dk_log_info("%s: signed for %s with %s", qid(ctx), res->domain, sels);
}

/* A daemon answer other than OK: pass unsigned, or the on_error action. */
static sfsistat
answer_not_ok(SMFICTX *ctx, struct mconn *c, const struct dkc_result *res)
{
	char why[1024];

	snprintf(why, sizeof(why), "dkimkeepd answered %s: %s", dkc_status_name(res->status),
	    res->error);
	switch (res->status) {
	case DKC_BAD_MESSAGE:
	case DKC_BAD_REQUEST:
	case DKC_NOT_AUTHORIZED:
	case DKC_UNKNOWN_DOMAIN:
		return pass_unsigned(ctx, c, why);
	default: /* NO_KEY, BUSY, RATE_LIMITED, TOKEN_/AUDIT_UNAVAILABLE, INTERNAL */
		return fail_action(ctx, why);
	}
}

static sfsistat
mlfi_eom(SMFICTX *ctx)
{
	struct mconn *c = smfi_getpriv(ctx);
	struct dkc_sign_req req;
	struct dkc_result res;
	uint8_t bh[DKC_HASH_LEN];
	sfsistat st;
	int r;

	memset(&res, 0, sizeof(res));
	if (c == NULL || !c->signing)
		return SMFIS_CONTINUE;
	if ((r = milter_msg_final(&c->msg, bh)) != 0) {
		st = fail_action(ctx, dk_strerror(r));
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.header_section = c->msg.hdr.data;
	req.header_len = c->msg.hdr.len;
	req.body_hash = bh;
	r = milter_pool_sign(cfg.pool, &req, &res);
	if (r == DK_ERR_TOO_LARGE) {
		st = pass_unsigned(ctx, c, "the header section does not fit in a request");
		goto out;
	}
	if (r != 0) {
		st = fail_action(ctx, dkc_strerror(r));
		goto out;
	}
	if (res.status != DKC_OK) {
		st = answer_not_ok(ctx, c, &res);
		goto out;
	}
	if ((r = insert_sigs(ctx, c, &res)) != 0) {
		st = fail_action(ctx, dkc_strerror(r));
		goto out;
	}
	log_signed(ctx, &res);
	st = SMFIS_CONTINUE;
out:
	dkc_result_free(&res);
	c->signing = 0;
	milter_msg_reset(&c->msg);
	return st;
}

static sfsistat
mlfi_abort(SMFICTX *ctx)
{
	struct mconn *c = smfi_getpriv(ctx);

	if (c != NULL) {
		c->signing = 0;
		milter_msg_reset(&c->msg);
	}
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_close(SMFICTX *ctx)
{
	struct mconn *c = smfi_getpriv(ctx);

	if (c != NULL) {
		milter_msg_reset(&c->msg);
		free(c);
		smfi_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

static struct smfiDesc filter = {
    .xxfi_name = filter_name,
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS,
    .xxfi_connect = mlfi_connect,
    .xxfi_envfrom = mlfi_envfrom,
    .xxfi_header = mlfi_header,
    .xxfi_eoh = mlfi_eoh,
    .xxfi_body = mlfi_body,
    .xxfi_eom = mlfi_eom,
    .xxfi_abort = mlfi_abort,
    .xxfi_close = mlfi_close,
    .xxfi_negotiate = mlfi_negotiate,
};

/* ---- start-up ---- */

struct opts {
	const char *conf_path;
	const char *socket; /* -p */
	int foreground;
	int debug;
};

static int usage_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("dkimkeep-milter: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("; see \"dkimkeep-milter --help\"\n", stderr);
	return EX_USAGE;
}

/* 0: go on; -1: done, exit 0 (help, version); else an exit code. */
static int
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	o->conf_path = dk_conf_default_path();
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:p:fdh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->conf_path = optarg;
			break;
		case 'p':
			o->socket = optarg;
			break;
		case 'f':
			o->foreground = 1;
			break;
		case 'd':
			o->debug = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return -1;
		case 'V':
			printf("dkimkeep-milter %s\n", DKIMKEEP_VERSION);
			return -1;
		case ':':
			return usage_fail("option \"%s\" needs a value", argv[optind - 1]);
		default:
			return usage_fail("unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return usage_fail("unexpected argument \"%s\"", argv[optind]);
	return 0;
}

/*
 * The milter socket in libmilter's form.  A bare or relative unix path is
 * made absolute against the current directory (we chdir("/") later).
 */
static int
socket_spec(const char *given, char **out)
{
	struct dk_buf b;
	const char *path = given;
	char cwd[PATH_MAX];
	int r;

	*out = NULL;
	dk_buf_init(&b, PATH_MAX + 16);
	if (strncmp(given, "inet:", 5) == 0 || strncmp(given, "inet6:", 6) == 0) {
		r = strchr(given, '@') != NULL && given[strlen(given) - 1] != '@'
		        ? dk_buf_puts(&b, given)
		        : DK_ERR_USAGE;
		goto out;
	}
	if (strncmp(given, "unix:", 5) == 0 || strncmp(given, "local:", 6) == 0)
		path = strchr(given, ':') + 1;
	else if (strchr(given, ':') != NULL) {
		r = DK_ERR_USAGE;
		goto out;
	}
	if (path[0] == '\0') {
		r = DK_ERR_USAGE;
		goto out;
	}
	if ((r = dk_buf_puts(&b, "unix:")) != 0)
		goto out;
	if (path[0] != '/') {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			r = DK_ERR_IO;
			goto out;
		}
		if ((r = dk_buf_puts(&b, cwd)) != 0 || (r = dk_buf_puts(&b, "/")) != 0)
			goto out;
	}
	r = dk_buf_puts(&b, path);
out:
	if (r == 0)
		*out = dk_buf_steal(&b, NULL);
	dk_buf_free(&b);
	return r == 0 && *out == NULL ? DK_ERR_NOMEM : r;
}

/*
 * A unix socket path that is in use by a live milter, or that is not a
 * socket at all, is refused: libmilter would unlink whatever is there.
 */
static int
socket_path_free(const char *spec)
{
	struct sockaddr_un sun;
	struct stat st;
	const char *path;
	int fd, live;

	if (strncmp(spec, "unix:", 5) != 0)
		return 0;
	path = spec + 5;
	if (lstat(path, &st) != 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return dk_err_set(DK_ERR_EXISTS,
		    "%s exists and is not a socket; remove it or choose another socket", path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return dk_err_set(DK_ERR_INVALID, "socket path %s is too long", path);
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	live = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	close(fd);
	if (live)
		return dk_err_set(DK_ERR_EXISTS,
		    "%s is in use by a running milter; stop it first or choose another socket",
		    path);
	return 0;
}

static int
setup_config(const struct opts *o, char **spec)
{
	struct dk_conf *conf = NULL;
	int r;

	if ((r = dk_conf_load(o->conf_path, &conf)) != 0) {
		dk_log_err("%s", dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
		r = r == DK_ERR_NOMEM ? EX_OSERR : EX_CONFIG;
		goto out;
	}
	cfg.sign = conf->milter.sign;
	cfg.on_error_accept = conf->milter.on_error_accept;
	if ((r = milter_nets_parse(
	         conf->milter.internal_hosts, conf->milter.ninternal_hosts, &cfg.nets)) != 0) {
		dk_log_err("%s: %s", o->conf_path, dk_err_detail());
		r = r == DK_ERR_NOMEM ? EX_OSERR : EX_CONFIG;
		goto out;
	}
	if (milter_pool_new(conf->milter.client_socket, MILTER_DAEMON_TIMEOUT_MS, &cfg.pool) != 0) {
		r = EX_OSERR;
		goto out;
	}
	r = socket_spec(o->socket != NULL ? o->socket : conf->milter.socket, spec);
	if (r != 0) {
		dk_log_err("\"%s\" is not a milter socket; write unix:/path, inet:PORT@HOST or "
		           "inet6:PORT@HOST",
		    o->socket != NULL ? o->socket : conf->milter.socket);
		r = o->socket != NULL ? EX_USAGE : EX_CONFIG;
		goto out;
	}
	dk_log_info("signing through dkimkeepd at %s; sign = %s, on_error = %s",
	    conf->milter.client_socket,
	    cfg.sign == DK_MILTER_SIGN_ALL             ? "all"
	    : cfg.sign == DK_MILTER_SIGN_AUTHENTICATED ? "authenticated"
	                                               : "local",
	    cfg.on_error_accept ? "accept" : "tempfail");
out:
	dk_conf_free(conf);
	return r;
}

static int
open_socket(char *spec, int foreground)
{
	if (socket_path_free(spec) != 0) {
		dk_log_err("%s", dk_err_detail());
		return EX_UNAVAILABLE;
	}
	umask(MILTER_UMASK);
	if (smfi_setconn(spec) != MI_SUCCESS || smfi_register(filter) != MI_SUCCESS) {
		dk_log_err("libmilter refused the socket %s or the filter", spec);
		return EX_SOFTWARE;
	}
	if (smfi_opensocket(true) != MI_SUCCESS) {
		dk_log_err("cannot listen on %s: %s; check the path's directory and permissions, "
		           "or that no other program uses the port",
		    spec, strerror(errno));
		return EX_UNAVAILABLE;
	}
	if (!foreground && daemon(0, 0) != 0) {
		dk_log_err("cannot go to the background: %s", strerror(errno));
		return EX_OSERR;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct opts o;
	char *spec = NULL;
	int code, debug;

	memset(&o, 0, sizeof(o));
	if ((code = parse_opts(argc, argv, &o)) != 0) {
		code = code < 0 ? EX_OK : code;
		goto out;
	}
	debug = o.debug || getenv("DKIMKEEP_DEBUG") != NULL;
	/* Start-up problems go to stderr, where whoever started us sees them. */
	dk_log_init("dkimkeep-milter", 0, debug);
	signal(SIGPIPE, SIG_IGN);
	if ((code = setup_config(&o, &spec)) != 0 || (code = open_socket(spec, o.foreground)) != 0)
		goto out;
	if (!o.foreground)
		dk_log_init("dkimkeep-milter", 1, debug);
	dk_log_info("listening on %s", spec);
	if (smfi_main() != MI_SUCCESS) {
		dk_log_err("libmilter stopped with an error; see the lines above");
		code = EX_SOFTWARE;
		goto out;
	}
	dk_log_info("stopped");
	code = EX_OK;
out:
	milter_pool_free(cfg.pool);
	milter_nets_free(&cfg.nets);
	free(spec);
	return code;
}
