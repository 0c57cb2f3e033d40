/*
 * dkimkeep.c - the dkimkeep command line: global options and dispatch.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "client/cli.h"
#include "client/cli_dns.h"
#include "common/dk_config.h"
#include "common/dk_err.h"
#include "common/dk_log.h"

static const char usage_text[] =
    "usage: dkimkeep [-c FILE] COMMAND [ARGS...]\n"
    "\n"
    "DKIM keys kept in a PKCS#11 token: administration, signing and audit.\n"
    "\n"
    "Token and keys (security officer; talks to the token directly):\n"
    "  token list [--json]                     tokens the configured modules see\n"
    "  token init --token NAME --label LABEL --so-pin-file F --pin-file F [--wipe]\n"
    "  key generate --domain D --alg A [--bits N] [--selector S] [--slot primary|backup]\n"
    "               [--activate]\n"
    "  key import --domain D --selector S --pem FILE [--slot primary|backup] [--activate]\n"
    "  key list [--domain D] [--json]\n"
    "  key dns [--domain D] [--json]           DNS TXT records to publish\n"
    "  key drill --domain D [--offline] [--json]  prove the standby keys can take over\n"
    "  key rotate --domain D [--alg A] [--slot primary|backup]  start a key rotation\n"
    "  key step [--domain D] [--json]          advance every rotation as time and DNS allow\n"
    "  key activate|retire|revoke|destroy --domain D --selector S   move one key by hand\n"
    "  dns check [--domain D] [--server ADDR[:PORT]] [--json]  compare DNS with the tokens\n"
    "\n"
    "Signing (operator, MTA pipe; talks to dkimkeepd):\n"
    "  sign [--socket PATH] [--domain D] [--selector S] [--alg A] [--identity I]\n"
    "       [--headers h1:h2] [--timestamp UNIX] [--expire SECONDS]  < message\n"
    "  status [--socket PATH] [--json]\n"
    "\n"
    "Audit (reviewer; reads the audit log, the token checks its checkpoints):\n"
    "  audit verify FILE... [--pubkey F] [--json]   chain, sequence and checkpoints intact?\n"
    "  audit show FILE... [--since T] [--domain D] [--client C] [--json]\n"
    "  audit pubkey [--json]                   the key that verifies the checkpoints\n"
    "\n"
    "Options:\n"
    "  -c FILE     configuration file (default: $DKIMKEEP_CONF or " DK_CONF_DEFAULT_PATH ")\n"
    "  -h, --help  this text; \"dkimkeep COMMAND --help\" explains one command\n"
    "  --version   print the version\n"
    "\n"
    "Exit codes (sysexits): 0 ok, 64 usage, 65 bad message or data, 69 daemon or token\n"
    "unavailable, 75 temporary failure (busy, rate limited), 77 not authorized or PIN\n"
    "refused, 78 bad configuration.\n";

int
cli_fail(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("dkimkeep: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return dk_err_exit(err);
}

struct command {
	const char *name;
	int (*main)(int, char **, const struct cli_ctx *);
};

static const struct command commands[] = {
    {"token", cli_token_main},
    {"key", cli_key_main},
    {"dns", cli_dns_main},
    {"sign", cli_sign_main},
    {"status", cli_status_main},
    {"audit", cli_audit_main},
};

int
main(int argc, char **argv)
{
	struct cli_ctx ctx;
	size_t i;
	int a = 1;

	dk_log_init("dkimkeep", 0, getenv("DKIMKEEP_DEBUG") != NULL);
	memset(&ctx, 0, sizeof(ctx));
	ctx.conf_path = dk_conf_default_path();
	while (a < argc && argv[a][0] == '-') {
		if (strcmp(argv[a], "-h") == 0 || strcmp(argv[a], "--help") == 0) {
			fputs(usage_text, stdout);
			return EX_OK;
		}
		if (strcmp(argv[a], "--version") == 0) {
			printf("dkimkeep %s\n", DKIMKEEP_VERSION);
			return EX_OK;
		}
		if (strcmp(argv[a], "-c") == 0 && a + 1 < argc) {
			ctx.conf_path = argv[a + 1];
			ctx.conf_given = 1;
			a += 2;
			continue;
		}
		return cli_fail(
		    DK_ERR_USAGE, "unknown option \"%s\"; see \"dkimkeep --help\"", argv[a]);
	}
	if (a >= argc) {
		fputs(usage_text, stderr);
		return EX_USAGE;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[a], commands[i].name) == 0)
			return commands[i].main(argc - a, argv + a, &ctx);
	}
	return cli_fail(DK_ERR_USAGE, "unknown command \"%s\"; see \"dkimkeep --help\"", argv[a]);
}
