/*
 * dkimkeepd.c - the signing daemon: options, start-up, daemonizing.
 */
#include <sys/prctl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "common/dk_config.h"
#include "common/dk_err.h"
#include "common/dk_log.h"
#include "daemon/dkd_audit.h"
#include "daemon/dkd_keyset.h"
#include "daemon/dkd_listen.h"
#include "daemon/dkd_notify.h"
#include "daemon/dkd_privs.h"
#include "daemon/dkd_server.h"
#include "daemon/dkd_tokens.h"

static const char usage_text[] =
    "usage: dkimkeepd [-c FILE] [-f] [-d]\n"
    "       dkimkeepd [-c FILE] --check\n"
    "\n"
    "The dkimkeep signing daemon: opens the PKCS#11 tokens of the configuration, logs in\n"
    "with their PIN files, loads every domain's key ring and signs DKIM for the [client]s\n"
    "that call it on its Unix socket.\n"
    "\n"
    "Options:\n"
    "  -c FILE     configuration file (default: $DKIMKEEP_CONF or " DK_CONF_DEFAULT_PATH ")\n"
    "  -f          stay in the foreground and log to stderr (for systemd and tests)\n"
    "  -d          log debug lines too\n"
    "  --check     parse the configuration, open the tokens, log in, check every key,\n"
    "              then exit: 0 all good, 78 bad configuration, 69 a token is unusable\n"
    "  -h, --help  this text\n"
    "  --version   print the version\n"
    "\n"
    "Signals: SIGHUP reloads the [client] and [domain] sections and the key rings, and\n"
    "reopens the audit log (logrotate); SIGTERM stops accepting, answers what is queued,\n"
    "and exits 0.\n";

static int ready_fd = -1;

/* Report the start-up result to the waiting parent (see daemonize). */
static void
ready_report(int code, const char *msg)
{
	char line[1100];
	int n;

	if (ready_fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%d %s", code, msg);
	if (n > 0 &&
	    write(ready_fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0)
		dk_log_debug("start-up report lost: %s", strerror(errno));
	close(ready_fd);
	ready_fd = -1;
}

static void
on_ready(void *arg)
{
	int fd;

	(void)arg;
	if (ready_fd < 0)
		return;
	ready_report(0, "ready");
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

/*
 * Fork into the background before any thread or token exists; the parent
 * waits for the child's start-up result so that the shell sees errors.
 */
static int
daemonize(void)
{
	char buf[1100];
	int p[2], code;
	ssize_t n;
	pid_t pid;

	if (pipe(p) != 0)
		return EX_OSERR;
	if ((pid = fork()) < 0)
		return EX_OSERR;
	if (pid > 0) {
		close(p[1]);
		n = read(p[0], buf, sizeof(buf) - 1);
		if (n <= 0) {
			fprintf(stderr, "dkimkeepd: failed to start; see the system log\n");
			_exit(EX_SOFTWARE);
		}
		buf[n] = '\0';
		code = atoi(buf);
		if (code != 0)
			fprintf(stderr, "dkimkeepd: %s\n",
			    strchr(buf, ' ') ? strchr(buf, ' ') + 1 : buf);
		_exit(code);
	}
	close(p[0]);
	ready_fd = p[1];
	setsid();
	return 0;
}

static int
fail(int err, const char *what)
{
	const char *d = dk_err_detail();
	char msg[1024];

	snprintf(msg, sizeof(msg), "%s: %s", what, d[0] ? d : dk_strerror(err));
	dk_log_err("%s", msg);
	ready_report(dk_err_exit(err), msg);
	return dk_err_exit(err);
}

static int
check_keys(struct dkd_keyset *ks)
{
	size_t i, missing = 0;

	for (i = 0; i < ks->nrings; i++) {
		if (ks->rings[i].active == NULL && ks->rings[i].standby == NULL)
			missing++;
	}
	printf("dkimkeepd: configuration OK; %zu usable keys, %zu rings, %zu without any key\n",
	    ks->nkeys, ks->nrings, missing);
	return missing ? EX_UNAVAILABLE : EX_OK;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"check", no_argument, NULL, 'C'},
	    {NULL, 0, NULL, 0},
	};
	struct dkd_server_params sp = {.socket_path = NULL};
	struct dkd_tokens tokens = {NULL, 0, 0};
	struct dkd_keyset *ks = NULL;
	struct dk_conf *conf = NULL;
	const char *conf_path = dk_conf_default_path();
	int c, foreground = 0, debug = 0, check = 0, fd = -1, r, code;

	while ((c = getopt_long(argc, argv, "c:fdh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf_path = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'd':
			debug = 1;
			break;
		case 'C':
			check = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EX_OK;
		case 'V':
			printf("dkimkeepd %s\n", DKIMKEEP_VERSION);
			return EX_OK;
		default:
			fputs(usage_text, stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "dkimkeepd: unexpected argument \"%s\"; see dkimkeepd --help\n",
		    argv[optind]);
		return EX_USAGE;
	}
	dk_log_init("dkimkeepd", !(foreground || check), debug);
	/*
	 * The socket listens before the event loop handles signals: a SIGHUP
	 * (logrotate) in between would kill the daemon.  The loop's handler
	 * replaces this; the configuration is read fresh at start anyway.
	 */
	signal(SIGHUP, SIG_IGN);
	prctl(PR_SET_DUMPABLE, 0); /* no core dumps holding session state or PINs */
	if ((r = dk_conf_load(conf_path, &conf)) != 0) {
		fprintf(stderr, "dkimkeepd: %s\n",
		    dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
		return r == DK_ERR_IO ? EX_CONFIG : dk_err_exit(r);
	}
	if (!foreground && !check && (code = daemonize()) != 0) {
		dk_conf_free(conf);
		return code;
	}
	dkd_notify_init(conf->dns.notify_command);
	if ((r = dkd_tokens_open(conf, !check, &tokens)) != 0) {
		code = fail(r, "cannot open the tokens");
		dk_conf_free(conf);
		return code;
	}
	sp.workers = conf->daemon.workers;
	sp.queue = conf->daemon.queue;
	/* Descriptors for every connection (raised while still root, if root). */
	sp.max_connections = check ? conf->daemon.max_connections
	                           : dkd_listen_fd_limit(conf->daemon.max_connections);
	sp.health_interval = conf->daemon.health_interval;
	sp.sign_timeout_ms = conf->daemon.sign_timeout_ms;
	if (!check && (r = dkd_listen_unix(conf->daemon.socket, conf->daemon.socket_mode,
	                   conf->daemon.socket_group, &fd)) != 0) {
		code = fail(r, "cannot listen");
		dk_conf_free(conf);
		goto out;
	}
	sp.socket_path = check ? NULL : strdup(conf->daemon.socket);
	/* Socket bound, tokens logged in: root is not needed any more. */
	if (!check && (r = dkd_privs_drop(conf->daemon.user, conf_path, &tokens)) != 0) {
		code = fail(r, "cannot drop privileges");
		dk_conf_free(conf);
		goto out;
	}
	/* As the user that will write it: the audit log can be appended to. */
	if ((r = dkd_audit_check(conf)) != 0) {
		code = fail(r, "the audit log");
		dk_conf_free(conf);
		goto out;
	}
	/* The keyset owns conf from here on. */
	if ((r = dkd_keyset_load(conf, &tokens, &ks)) != 0) {
		code = fail(r, "cannot load the key rings");
		goto out;
	}
	if (check) {
		code = check_keys(ks);
		dkd_keyset_release(ks);
		goto out;
	}
	dkd_keyset_publish(ks);
	sp.conf_path = conf_path;
	sp.tokens = &tokens;
	sp.listen_fd = fd;
	fd = -1;
	sp.ready = on_ready;
	sp.ready_arg = NULL;
	r = dkd_server_run(&sp);
	code = r == 0 ? EX_OK : fail(r, "the event loop failed");
	dkd_keyset_publish(NULL);
out:
	/* Every exit, the failed starts too (found by the sanitizer build). */
	free((char *)(uintptr_t)sp.socket_path);
	if (fd >= 0)
		close(fd);
	if (atomic_load(&tokens.abandoned)) {
		/* A thread is still inside a module: no C_Finalize, no library destructors. */
		fflush(NULL);
		_exit(code);
	}
	dkd_tokens_close(&tokens);
	return code;
}
