/*
 * cli_status.c - "dkimkeep status": what the daemon is doing.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "client/cli.h"
#include "client/dkimkeep_client.h"
#include "common/dk_buf.h"
#include "common/dk_config.h"
#include "common/dk_err.h"
#include "common/dk_json.h"
#include "common/dk_time.h"

static const char status_usage[] =
    "usage: dkimkeep status [--socket PATH] [--json]\n"
    "\n"
    "Asks dkimkeepd how it is: each token up or down (since when, last error, error\n"
    "count), which slot (primary or backup) signs for each domain and algorithm now,\n"
    "the queue depth and the requests answered by status.\n"
    "\n"
    "  --socket PATH  the daemon's socket (default: socket= in [daemon] of the config)\n"
    "  --json         one JSON document on stdout\n"
    "  -c FILE        configuration file\n"
    "\n"
    "Exit codes: 0 the daemon answered; 69 it is not running or not reachable; 78 bad\n"
    "config.\n";

static const char *
status_alg(int alg)
{
	return alg == DKC_ALG_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256";
}

static int
status_json(const struct dkc_status_info *st)
{
	struct dk_buf b;
	struct dk_json j;
	char t[32];
	size_t i;
	int r;

	dk_buf_init(&b, 64 * 1024 * 1024);
	dk_json_init(&j, &b);
	dk_json_obj_open(&j, NULL);
	dk_json_str(&j, "version", st->version);
	dk_time_rfc3339((time_t)st->started, t, sizeof(t));
	dk_json_str(&j, "started", t);
	dk_json_uint(&j, "workers", st->workers);
	dk_json_uint(&j, "queue_depth", st->queue_depth);
	dk_json_uint(&j, "queue_max", st->queue_max);
	dk_json_uint(&j, "connections", st->connections);
	dk_json_arr_open(&j, "tokens");
	for (i = 0; i < st->ntokens; i++) {
		dk_json_obj_open(&j, NULL);
		dk_json_str(&j, "name", st->tokens[i].name);
		dk_json_str(&j, "label", st->tokens[i].label);
		dk_json_str(&j, "state", st->tokens[i].up ? "up" : "down");
		dk_json_bool(&j, "up", st->tokens[i].up);
		dk_time_rfc3339((time_t)st->tokens[i].since, t, sizeof(t));
		dk_json_str(&j, "since", t);
		dk_json_str(&j, "last_error", st->tokens[i].last_error);
		dk_json_uint(&j, "errors", st->tokens[i].errors);
		dk_json_obj_close(&j);
	}
	dk_json_arr_close(&j);
	dk_json_arr_open(&j, "rings");
	for (i = 0; i < st->nrings; i++) {
		dk_json_obj_open(&j, NULL);
		dk_json_str(&j, "domain", st->rings[i].domain);
		dk_json_str(&j, "alg", status_alg(st->rings[i].alg));
		dk_json_str(&j, "slot", st->rings[i].slot);
		dk_json_str(&j, "selector", st->rings[i].selector);
		dk_json_str(&j, "key_id", st->rings[i].key_id);
		dk_json_obj_close(&j);
	}
	dk_json_arr_close(&j);
	dk_json_obj_open(&j, "requests");
	for (i = 0; i < st->ncounters; i++)
		dk_json_uint(&j, st->counters[i].name, st->counters[i].value);
	dk_json_obj_close(&j);
	dk_json_obj_close(&j);
	if ((r = dk_json_finish(&j)) == 0)
		printf("%s\n", dk_buf_str(&b));
	dk_buf_free(&b);
	return r;
}

static void
status_text(const struct dkc_status_info *st)
{
	char t[32];
	size_t i;

	dk_time_rfc3339((time_t)st->started, t, sizeof(t));
	printf("dkimkeepd %s, up since %s\n", st->version, t);
	printf("workers %u, queue %u/%u, connections %u\n", st->workers, st->queue_depth,
	    st->queue_max, st->connections);
	printf("\ntokens:\n");
	for (i = 0; i < st->ntokens; i++) {
		dk_time_rfc3339((time_t)st->tokens[i].since, t, sizeof(t));
		printf("  %-12s %-20s %-4s since %s, %llu errors%s%s\n", st->tokens[i].name,
		    st->tokens[i].label, st->tokens[i].up ? "up" : "DOWN", t,
		    (unsigned long long)st->tokens[i].errors,
		    st->tokens[i].last_error[0] ? "; last: " : "", st->tokens[i].last_error);
	}
	printf("\nsigning now:\n");
	for (i = 0; i < st->nrings; i++)
		printf("  %-30s %-15s %-8s %s\n", st->rings[i].domain, status_alg(st->rings[i].alg),
		    st->rings[i].slot, st->rings[i].selector);
	printf("\nrequests:");
	for (i = 0; i < st->ncounters; i++) {
		if (st->counters[i].value > 0 || strcmp(st->counters[i].name, "OK") == 0)
			printf(" %s=%llu", st->counters[i].name,
			    (unsigned long long)st->counters[i].value);
	}
	printf("\n");
}

int
cli_status_main(int argc, char **argv, const struct cli_ctx *ctx)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 'S'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct dkc_status_info *st = NULL;
	struct dkc_conn *conn = NULL;
	struct dk_conf *conf = NULL;
	const char *conf_path = ctx->conf_path, *sock = NULL;
	int c, json = 0, r, code;

	optind = 1;
	opterr = 0; /* one line of our own instead of getopt's */
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf_path = optarg;
			break;
		case 'S':
			sock = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(status_usage, stdout);
			return EX_OK;
		default:
			return cli_fail(DK_ERR_USAGE,
			    "status: bad option \"%s\"; see \"dkimkeep status --help\"",
			    argv[optind - 1]);
		}
	}
	if (sock == NULL) {
		/* Only the socket is needed: the PIN files are not examined. */
		if ((r = dk_conf_load_flags(conf_path, DK_CONF_NO_SECRET_CHECK, &conf)) != 0)
			return cli_fail(DK_ERR_CONFIG, "%s; or give the socket with --socket",
			    dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
		sock = conf->daemon.socket;
	}
	if ((r = dkc_connect(sock, 10000, &conn)) != 0 || (r = dkc_status(conn, &st)) != 0) {
		code = cli_fail(DK_ERR_UNAVAILABLE, "%s", dkc_strerror(r));
		goto out;
	}
	if (json) {
		if (status_json(st) != 0) {
			code = cli_fail(DK_ERR_NOMEM, "cannot format the status");
			goto out;
		}
	} else {
		status_text(st);
	}
	code = EX_OK;
out:
	dkc_status_free(st);
	dkc_close(conn);
	dk_conf_free(conf);
	return code;
}
