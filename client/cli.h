/*
 * cli.h - the commands of the dkimkeep command line.
 *
 * client/dkimkeep.c parses the global options and calls one of these with
 * argv starting at the command word ("token", "key", ...).  Each returns a
 * sysexits(3) code; on failure it has written one line on stderr that says
 * what went wrong and what to do, and nothing on stdout.
 */
#ifndef CLI_H
#define CLI_H

struct cli_ctx {
	const char *conf_path; /* -c, $DKIMKEEP_CONF, or the default */
	int conf_given;        /* -c was on the command line */
};

int cli_token_main(int argc, char **argv, const struct cli_ctx *ctx);  /* token list|init */
int cli_key_main(int argc, char **argv, const struct cli_ctx *ctx);    /* key ... */
int cli_sign_main(int argc, char **argv, const struct cli_ctx *ctx);   /* sign */
int cli_status_main(int argc, char **argv, const struct cli_ctx *ctx); /* status */
int cli_audit_main(int argc, char **argv, const struct cli_ctx *ctx);  /* audit ... */

/* Print "dkimkeep: <msg>" on stderr; returns the exit code for err. */
int cli_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* CLI_H */
