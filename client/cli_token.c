/*
 * cli_token.c - "dkimkeep token list" and "dkimkeep token init".
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "client/cli.h"
#include "client/cli_audit_log.h"
#include "client/cli_tokens.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "common/dk_json.h"

static const char token_usage[] =
    "usage: dkimkeep token list [--json] [--module PATH]\n"
    "       dkimkeep token init --token NAME --label LABEL --so-pin-file FILE\n"
    "                           [--pin-file FILE] [--wipe]\n"
    "\n"
    "Token administration for the security officer.  These commands talk to the\n"
    "PKCS#11 modules directly; no daemon is needed.  \"dkimkeep token COMMAND --help\"\n"
    "explains one command.\n";

static const char list_usage[] =
    "usage: dkimkeep [-c FILE] token list [--json] [--module PATH]\n"
    "\n"
    "Lists every token that the PKCS#11 modules named in the [token] sections of the\n"
    "config can see: slot, label, serial, manufacturer and model, whether it is\n"
    "initialized and has a user PIN, its RFC 7512 URI, and which [token NAME] section\n"
    "selects it.  Slot numbers are for display only: they change when tokens are\n"
    "added, so the config names tokens by URI (label or serial).  No login is made.\n"
    "\n"
    "Options:\n"
    "  --json         one JSON document on stdout: a list of objects with module, slot,\n"
    "                 label, manufacturer, model, serial, initialized,\n"
    "                 user_pin_initialized, uri and config (the section names)\n"
    "  --module PATH  list the tokens of this module instead (no config needed)\n"
    "  -c FILE        configuration file (default: $DKIMKEEP_CONF or\n"
    "                 /etc/dkimkeep/dkimkeep.conf)\n"
    "  -h, --help     this text\n"
    "\n"
    "Exit codes: 0 listed; 64 usage; 69 a module cannot be loaded; 78 bad config.\n";

static const char init_usage[] =
    "usage: dkimkeep [-c FILE] token init --token NAME --label LABEL\n"
    "                                     --so-pin-file FILE [--pin-file FILE] [--wipe]\n"
    "\n"
    "Initializes a token for dkimkeep: gives it LABEL, sets the security officer PIN\n"
    "from --so-pin-file and the user PIN (the one dkimkeep logs in with) from\n"
    "--pin-file.  The module is module= of the [token NAME] section of the config;\n"
    "afterwards its uri= should select the new token (e.g. uri = pkcs11:token=LABEL),\n"
    "and a warning says so when it does not.\n"
    "\n"
    "The token used is the one already labelled LABEL, or else the first token of the\n"
    "module that is not initialized.  A token that is initialized and holds objects\n"
    "(keys) is refused unless --wipe is given: initializing erases everything in it.\n"
    "\n"
    "PIN files hold one PIN on one line and must be readable by their owner only\n"
    "(mode 0400 or 0600); a PIN is never given on the command line or in the\n"
    "environment.\n"
    "\n"
    "Options:\n"
    "  --token NAME         the [token NAME] section (module=, and pin_file= as the\n"
    "                       default of --pin-file)\n"
    "  --label LABEL        token label, 1 to 32 characters\n"
    "  --so-pin-file FILE   security officer PIN\n"
    "  --pin-file FILE      user PIN (default: pin_file= of [token NAME])\n"
    "  --wipe               erase a token that already holds objects\n"
    "  -c FILE              configuration file\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit codes: 0 initialized; 64 usage; 65 the token holds objects (see --wipe);\n"
    "69 module or token unavailable; 77 SO PIN refused; 78 bad config or PIN file.\n";

/* ---- token list ---- */

/* The [token] sections of this module whose uri selects this token. */
static void
config_names(const struct dk_conf *c, struct hsm_module *m, const char *module,
    const struct hsm_token_info *ti, const char **names, size_t *n)
{
	struct hsm_token *t;
	size_t i;

	*n = 0;
	for (i = 0; c != NULL && i < c->ntokens; i++) {
		if (strcmp(c->tokens[i].module, module) != 0 ||
		    hsm_token_open(m, c->tokens[i].uri, &t) != 0)
			continue;
		if (strcmp(hsm_token_serial(t), ti->serial) == 0 &&
		    strcmp(hsm_token_label(t), ti->label) == 0)
			names[(*n)++] = c->tokens[i].name;
		hsm_token_close(t);
	}
}

static void
list_text(struct dk_buf *out, const char *module, const struct hsm_token_info *ti,
    const char **names, size_t n)
{
	size_t i;

	if (!ti->initialized) {
		(void)dk_buf_printf(
		    out, "%s  slot %lu  (token not initialized)\n", module, ti->slot_id);
		return;
	}
	(void)dk_buf_printf(out, "%s  slot %lu  token \"%s\"  serial %s  %s / %s  %s", module,
	    ti->slot_id, ti->label, ti->serial, ti->manufacturer, ti->model,
	    ti->user_pin_initialized ? "initialized" : "initialized, no user PIN");
	for (i = 0; i < n; i++)
		(void)dk_buf_printf(out, "%s[token %s]", i == 0 ? "  " : ", ", names[i]);
	(void)dk_buf_putc(out, '\n');
}

static void
list_json(struct dk_json *j, const char *module, const struct hsm_token_info *ti,
    const char **names, size_t n)
{
	size_t i;

	dk_json_obj_open(j, NULL);
	dk_json_str(j, "module", module);
	dk_json_uint(j, "slot", ti->slot_id);
	dk_json_str(j, "label", ti->label);
	dk_json_str(j, "manufacturer", ti->manufacturer);
	dk_json_str(j, "model", ti->model);
	dk_json_str(j, "serial", ti->serial);
	dk_json_bool(j, "initialized", ti->initialized);
	dk_json_bool(j, "user_pin_initialized", ti->user_pin_initialized);
	dk_json_str(j, "uri", ti->uri);
	dk_json_arr_open(j, "config");
	for (i = 0; i < n; i++)
		dk_json_str(j, NULL, names[i]);
	dk_json_arr_close(j);
	dk_json_obj_close(j);
}

/* List the tokens of one module into text, or into the JSON document j. */
static int
list_module(const struct dk_conf *c, const char *module, struct dk_buf *text, struct dk_json *j)
{
	const char *names[DK_CONF_MAX_TOKENS];
	struct hsm_token_info *ti = NULL;
	struct hsm_module *m = NULL;
	size_t n = 0, i, nn;
	int r;

	/* Tokens on one module share its env (dk_conf_load checked): the first one's will do. */
	for (i = 0; i < c->ntokens; i++)
		if (strcmp(c->tokens[i].module, module) == 0) {
			if ((r = dk_conf_token_setenv(&c->tokens[i])) != 0)
				goto out;
			break;
		}
	if ((r = hsm_module_open(module, &m)) != 0)
		goto out;
	if ((r = hsm_module_tokens(m, &ti, &n)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		nn = 0;
		if (ti[i].initialized)
			config_names(c, m, module, &ti[i], names, &nn);
		if (j != NULL)
			list_json(j, module, &ti[i], names, nn);
		else
			list_text(text, module, &ti[i], names, nn);
	}
	r = 0;
out:
	free(ti);
	hsm_module_close(m);
	return r;
}

/* Was this module path already listed (several sections share one module)? */
static int
module_seen(const struct dk_conf *c, size_t upto)
{
	size_t i;

	for (i = 0; i < upto; i++) {
		if (strcmp(c->tokens[i].module, c->tokens[upto].module) == 0)
			return 1;
	}
	return 0;
}

static int
token_list(int argc, char **argv, const struct cli_ctx *ctx)
{
	static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
	    {"module", required_argument, NULL, 'm'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *conf_path = ctx->conf_path, *module = NULL;
	struct dk_conf *c = NULL;
	struct dk_buf out;
	struct dk_json j;
	size_t i;
	int opt, json = 0, r, code;

	dk_buf_init(&out, 16 * 1024 * 1024);
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			conf_path = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'm':
			module = optarg;
			break;
		case 'h':
			fputs(list_usage, stdout);
			return EX_OK;
		default:
			return cli_fail(DK_ERR_USAGE,
			    "token list: bad option \"%s\"; see \"dkimkeep "
			    "token list --help\"",
			    argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cli_fail(DK_ERR_USAGE, "token list takes no argument \"%s\"", argv[optind]);
	if (module == NULL && (r = cli_conf_load(conf_path, &c)) != 0)
		return cli_fail(r, "%s", dk_err_detail());
	dk_json_init(&j, &out);
	if (json)
		dk_json_arr_open(&j, NULL);
	r = 0;
	if (module != NULL)
		r = list_module(NULL, module, &out, json ? &j : NULL);
	for (i = 0; c != NULL && i < c->ntokens && r == 0; i++) {
		if (!module_seen(c, i))
			r = list_module(c, c->tokens[i].module, &out, json ? &j : NULL);
	}
	if (r != 0) {
		code = cli_fail(r, "%s", dk_err_detail());
		goto out;
	}
	if (json) {
		dk_json_arr_close(&j);
		if ((r = dk_json_finish(&j)) != 0) {
			code = cli_fail(r, "cannot format the token list");
			goto out;
		}
		(void)dk_buf_putc(&out, '\n');
	}
	fputs(dk_buf_str(&out), stdout);
	code = EX_OK;
out:
	dk_buf_free(&out);
	dk_conf_free(c);
	return code;
}

/* ---- token init ---- */

/* Warn when uri= of the section does not select the token just initialized. */
static void
init_check_uri(const struct dk_conf *c, const struct dk_conf_token *ct, struct hsm_module *m,
    const char *label)
{
	struct hsm_token *t = NULL;

	if (hsm_token_open(m, ct->uri, &t) != 0 || strcmp(hsm_token_label(t), label) != 0)
		cli_warn("%s:%d: uri = %s in [token %s] does not select the new token; set "
		         "uri = pkcs11:token=%s",
		    c->path, ct->line, ct->uri, ct->name, label);
	hsm_token_close(t);
}

/* The serial of the initialized token labelled label, for the report. */
static void
init_serial(struct hsm_module *m, const char *label, char *serial, size_t len)
{
	struct hsm_token_info *ti = NULL;
	size_t n = 0, i;

	snprintf(serial, len, "?");
	if (hsm_module_tokens(m, &ti, &n) != 0)
		return;
	for (i = 0; i < n; i++) {
		if (ti[i].initialized && strcmp(ti[i].label, label) == 0)
			snprintf(serial, len, "%s", ti[i].serial);
	}
	free(ti);
}

struct init_args {
	const char *conf_path, *token, *label, *so_pin_file, *pin_file;
	int wipe;
};

static int
init_parse(int argc, char **argv, struct init_args *a)
{
	static const struct option longopts[] = {{"token", required_argument, NULL, 't'},
	    {"label", required_argument, NULL, 'l'}, {"so-pin-file", required_argument, NULL, 's'},
	    {"pin-file", required_argument, NULL, 'p'}, {"wipe", no_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			a->conf_path = optarg;
			break;
		case 't':
			a->token = optarg;
			break;
		case 'l':
			a->label = optarg;
			break;
		case 's':
			a->so_pin_file = optarg;
			break;
		case 'p':
			a->pin_file = optarg;
			break;
		case 'w':
			a->wipe = 1;
			break;
		case 'h':
			fputs(init_usage, stdout);
			return EX_OK;
		default:
			return cli_fail(DK_ERR_USAGE,
			    "token init: bad option \"%s\"; see \"dkimkeep "
			    "token init --help\"",
			    argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cli_fail(DK_ERR_USAGE, "token init takes no argument \"%s\"", argv[optind]);
	if (a->token == NULL || a->label == NULL || a->so_pin_file == NULL)
		return cli_fail(DK_ERR_USAGE,
		    "token init needs --token NAME, --label LABEL and "
		    "--so-pin-file FILE; see \"dkimkeep token init --help\"");
	return -1;
}

static int
token_init(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct init_args a = {.conf_path = ctx->conf_path};
	const struct dk_conf_token *ct;
	struct hsm_module *m = NULL;
	struct dk_conf *c = NULL;
	char serial[32];
	int r, code;

	if ((code = init_parse(argc, argv, &a)) >= 0)
		return code;
	if ((r = cli_conf_load(a.conf_path, &c)) != 0)
		return cli_fail(r, "%s", dk_err_detail());
	if ((ct = dk_conf_token(c, a.token)) == NULL) {
		code = cli_fail(DK_ERR_CONFIG,
		    "%s has no [token %s] section; add one with module=, uri= and pin_file=",
		    c->path, a.token);
		goto out;
	}
	if (a.pin_file == NULL)
		a.pin_file = ct->pin_file;
	if ((r = dk_conf_token_setenv(ct)) != 0 || (r = hsm_module_open(ct->module, &m)) != 0) {
		code = cli_fail(
		    r, "%s:%d: [token %s]: %s", c->path, ct->line, ct->name, dk_err_detail());
		goto out;
	}
	if ((r = hsm_token_init(m, a.label, a.so_pin_file, a.pin_file, a.wipe)) != 0) {
		/* An unreadable or unsafe PIN file is a configuration problem (exit 78). */
		if (r == DK_ERR_PERM || r == DK_ERR_IO || r == DK_ERR_PIN_INVALID)
			r = DK_ERR_CONFIG;
		code = cli_fail(r, "token init: %s", dk_err_detail());
		goto out;
	}
	init_serial(m, a.label, serial, sizeof(serial));
	printf("token \"%s\" (serial %s) initialized in %s for [token %s]\n", a.label, serial,
	    ct->module, ct->name);
	init_check_uri(c, ct, m, a.label);
	code = EX_OK;
out:
	cli_audit_act(
	    c, "token.init", code, &(struct cli_audit_what){.token = a.token, .label = a.label});
	hsm_module_close(m);
	dk_conf_free(c);
	return code;
}

int
cli_token_main(int argc, char **argv, const struct cli_ctx *ctx)
{
	if (argc < 2) {
		fputs(token_usage, stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fputs(token_usage, stdout);
		return EX_OK;
	}
	if (strcmp(argv[1], "list") == 0)
		return token_list(argc - 1, argv + 1, ctx);
	if (strcmp(argv[1], "init") == 0)
		return token_init(argc - 1, argv + 1, ctx);
	return cli_fail(
	    DK_ERR_USAGE, "unknown command \"token %s\"; see \"dkimkeep token --help\"", argv[1]);
}
