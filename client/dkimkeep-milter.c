/*
 * dkimkeep-milter.c - sign outgoing mail in Postfix and Sendmail through dkimkeepd.
 *
 * The program: options, configuration, the milter socket, libmilter's main
 * loop.  The callbacks are in milter_filter.c.  The keys stay in the
 * daemon's token; this process holds no secret.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

#include "client/milter_filter.h"
#include "common/dk_buf.h"
#include "common/dk_config.h"
#include "common/dk_err.h"
#include "common/dk_log.h"

/* Bounds every call to the daemon; well below Postfix's milter_content_timeout (300 s). */
#define MILTER_DAEMON_TIMEOUT_MS 10000
/* Socket mode through the umask: the MTA's user must share the milter's group. */
#define MILTER_UMASK 0007

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
    "              (default: socket= in [milter], else unix:/run/dkimkeep-milter/milter.sock)\n"
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
    "  The daemon's own config will do: its pin_file and tsig_key_file are not\n"
    "  checked here (the milter never opens them).\n"
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
    "  Postfix main.cf:  smtpd_milters = unix:/run/dkimkeep-milter/milter.sock\n"
    "                    non_smtpd_milters = $smtpd_milters\n"
    "                    milter_default_action = tempfail\n"
    "  Test:             swaks --server 127.0.0.1 --from you@example.com --to x@example.net\n"
    "\n"
    "SEE ALSO\n"
    "  dkimkeepd(8), dkimkeep(1); docs/postfix.md, docs/sendmail.md, docs/operator.md\n";

/* Set up in main(), handed to the filter; freed when smfi_main() returns. */
static struct milter_policy cfg;

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

	/* The daemon's config may be loaded: its PIN files are not the milter's to see. */
	if ((r = dk_conf_load_flags(o->conf_path, DK_CONF_NO_SECRET_CHECK, &conf)) != 0) {
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
	if (smfi_setconn(spec) != MI_SUCCESS ||
	    smfi_register(*milter_filter_desc()) != MI_SUCCESS) {
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
	milter_filter_init(&cfg);
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
