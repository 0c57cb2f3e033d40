/*
 * cli_rotate.c - "dkimkeep key rotate|step|activate|retire|revoke|destroy".
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "client/cli_audit_log.h"
#include "client/cli_rotate.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "common/dk_json.h"
#include "common/dk_time.h"
#include "rotate/rot_lease.h"

#define OUT_MAX            (4 * 1024 * 1024)
#define CONFIRM_MAX        128
#define LEASE_POLL_NS      250000000L /* between looks at a lease held by another */
#define LEASE_WAIT_EXTRA_S 10         /* beyond two step intervals (lease_wait_s) */
#define LEASE_WAIT_MAX_S   300

static const char rotate_usage[] =
    "usage: dkimkeep [-c FILE] key rotate --domain D [--alg A] [--slot primary|backup]\n"
    "                [--selector S] [--json]\n"
    "\n"
    "Starts a key rotation now, whatever rotate_every= says: a new key is generated in\n"
    "the token as \"pending\" (named from selector_template=, or --selector) and its\n"
    "record published as dns_publish= of the domain says (an RFC 2136 update, the\n"
    "publish_command, or printed here for you to publish).  The current key keeps\n"
    "signing.  \"dkimkeep key step\" (and dkimkeepd, every step_interval) then makes\n"
    "the new key sign once DNS has served its exact record for publish_wait=, retires\n"
    "the old key, revokes it after retire_after= and destroys it after destroy_after=.\n"
    "To change algorithms= or rsa_bits=, change the config and rotate: keys are never\n"
    "swapped in place.\n"
    "\n"
    "Options:\n"
    "  --domain D        the domain (a [domain] section)\n"
    "  --alg A           rsa-sha256 or ed25519-sha256 (default: each of algorithms=)\n"
    "  --slot SLOT       primary (default: the active key) or backup (the standby key)\n"
    "  --selector S      the new key's selector (default: from selector_template=)\n"
    "  --json            the events as one JSON list\n"
    "  -c FILE           configuration file\n"
    "  -h, --help        this text\n"
    "\n"
    "Exit codes: 0 started; 64 usage; 65 a rotation is under way already, or the\n"
    "selector is taken; 69 token or DNS unavailable, publishing failed; 75 the\n"
    "rotation lease did not come (see \"key step --help\"); 77 PIN refused or update\n"
    "refused; 78 bad config.\n";

static const char step_usage[] =
    "usage: dkimkeep [-c FILE] key step [--domain D] [--resolver HOST:PORT] [--json]\n"
    "\n"
    "Advances every key ring (of one domain with --domain) as far as time and DNS\n"
    "allow, exactly as dkimkeepd does every step_interval:\n"
    "  pending  -> active (standby on the backup slot) once DNS has served its exact\n"
    "              record for publish_wait; the old key is retired at the same step\n"
    "  retiring -> revoked after retire_after (the record becomes \"p=\")\n"
    "  revoked  -> destroyed after destroy_after (record deleted, key destroyed)\n"
    "and starts the rotations that are due (a key older than rotate_every, an RSA key\n"
    "smaller than rsa_bits, a ring without a key).  A ring that cannot go on (token\n"
    "down, DNS not showing the record, an update refused) keeps its signing key and is\n"
    "retried at the next step.  Safe to run at any time, also beside running daemons:\n"
    "one process at a time advances the rings of a token (a lease kept in the\n"
    "token).  Like every command that moves keys, \"key step\" waits for another\n"
    "command's turn, and a daemon that drives the token hands the lease over at its\n"
    "next step; when it has not come within two step_interval + 10 s (at most 300 s)\n"
    "nothing is moved and the command exits 75, naming the holder.\n"
    "\n"
    "Options:\n"
    "  --domain D              only this domain\n"
    "  --resolver HOST:PORT    look records up here instead of [dns] resolver=\n"
    "  --json                  the events as one JSON list\n"
    "  -c FILE                 configuration file\n"
    "  -h, --help              this text\n"
    "\n"
    "Each event is one line: time, level, event, domain, selector, algorithm, slot,\n"
    "state and what happened or what to do.\n"
    "\n"
    "Exit codes: 0 every ring is where it should be or waiting for its time; 75 a\n"
    "ring could not proceed (see the warnings; try again later), or the rotation\n"
    "lease did not come; 64 usage; 77 PIN refused; 78 bad config.\n";

static const char move_usage[] =
    "usage: dkimkeep [-c FILE] key activate|retire|revoke|destroy --domain D --selector S\n"
    "                [--force] [--yes] [--json]\n"
    "\n"
    "Moves one key by hand, whatever the times of the config:\n"
    "  activate  a pending or retiring key signs (on the backup slot: becomes the\n"
    "            standby key); the key signing before is retired.  Refused while DNS\n"
    "            does not serve the key's exact record (--force overrides).  Activating\n"
    "            a retiring key undoes a rotation.\n"
    "  retire    the key stops signing; its record stays published.  Refused for the\n"
    "            only signing key of its ring (rotate first; --force overrides).\n"
    "  revoke    a retiring or pending key's record becomes \"p=\" (RFC 6376\n"
    "            §3.6.1): mail it signed no longer verifies.  Asks for confirmation.\n"
    "  destroy   a revoked key's record is deleted and the key destroyed in the token.\n"
    "            Cannot be undone.  Asks for confirmation.\n"
    "\n"
    "Options:\n"
    "  --domain D      the domain\n"
    "  --selector S    the key's selector\n"
    "  --force         activate without DNS showing the record; retire the last key;\n"
    "                  revoke a key that stopped signing less than two step_interval\n"
    "                  ago (a daemon that has not reloaded may still sign with it)\n"
    "  --yes           do not ask for confirmation (revoke, destroy); needed when\n"
    "                  standard input is not a terminal\n"
    "  --json          the events as one JSON list\n"
    "  -c FILE         configuration file\n"
    "  -h, --help      this text\n"
    "\n"
    "The move takes the token's rotation lease first, as \"key step\" does (a\n"
    "daemon hands it over at its next step).\n"
    "\n"
    "Exit codes: 0 done (or the key was there already); 64 usage or not confirmed;\n"
    "65 refused (the reason says what to do); 69 token or DNS unavailable; 75 the\n"
    "rotation lease did not come (another process moves the keys; try again later);\n"
    "77 PIN or update refused; 78 bad config.\n";

struct rot_args {
	const char *cmd, *conf_path, *domain, *alg, *slot, *selector, *resolver;
	int json, yes, force;
};

/* What the report callback collects. */
struct rot_out {
	int json;
	struct dk_json j;
	struct dk_buf buf;
	const struct dk_conf *conf; /* the audit log's, for a record of each move */
};

int
cli_rotate_is(const char *word)
{
	static const char *const cmds[] = {
	    "rotate", "step", "activate", "retire", "revoke", "destroy", NULL};
	size_t i;

	for (i = 0; cmds[i] != NULL; i++) {
		if (strcmp(word, cmds[i]) == 0)
			return 1;
	}
	return 0;
}

static const char *const levels[] = {"info", "notice", "warning", "alert"};

static void
report_cb(const struct rot_event *ev, void *arg)
{
	struct rot_out *o = arg;
	char t[32];

	cli_audit_rot(o->conf, ev);
	dk_time_rfc3339(ev->time, t, sizeof(t));
	if (!o->json) {
		printf("%s %-7s %-16s %s %s (%s, %s) %s: %s\n", t, levels[ev->level], ev->event,
		    ev->domain, ev->selector[0] ? ev->selector : "-", ev->alg, ev->slot,
		    ev->state[0] ? ev->state : "-", ev->text);
		fflush(stdout);
		return;
	}
	dk_json_obj_open(&o->j, NULL);
	dk_json_str(&o->j, "time", t);
	dk_json_str(&o->j, "level", levels[ev->level]);
	dk_json_str(&o->j, "event", ev->event);
	dk_json_str(&o->j, "domain", ev->domain);
	dk_json_str(&o->j, "selector", ev->selector);
	dk_json_str(&o->j, "alg", ev->alg);
	dk_json_str(&o->j, "slot", ev->slot);
	dk_json_str(&o->j, "state", ev->state);
	dk_json_str(&o->j, "token", ev->token);
	if (ev->name[0])
		dk_json_str(&o->j, "name", ev->name);
	if (ev->value != NULL)
		dk_json_str(&o->j, "value", ev->value);
	dk_json_str(&o->j, "text", ev->text);
	dk_json_obj_close(&o->j);
}

int
cli_rot_tokens(struct cli_toks *ts, struct rot_tok *toks, size_t *ntoks)
{
	struct cli_tok *tok;
	size_t i;
	int r;

	*ntoks = 0;
	for (i = 0; i < ts->conf->ntokens && i < DK_CONF_MAX_TOKENS; i++) {
		toks[i].name = ts->conf->tokens[i].name;
		toks[i].s = NULL;
		r = cli_toks_get(ts, ts->conf->tokens[i].name, &tok);
		if (r == DK_ERR_CONFIG || r == DK_ERR_NOMEM || dk_err_exit(r) == EX_NOPERM)
			return r;
		if (r != 0)
			cli_warn("%s; its keys are not rotated now", dk_err_detail());
		else
			toks[i].s = tok->s;
		(*ntoks)++;
	}
	return 0;
}

enum { O_DOMAIN = 1000, O_ALG, O_SLOT, O_SELECTOR, O_RESOLVER, O_JSON, O_YES, O_FORCE };

static int
rot_parse(int argc, char **argv, const char *usage, struct rot_args *a)
{
	static const struct option longopts[] = {{"domain", required_argument, NULL, O_DOMAIN},
	    {"alg", required_argument, NULL, O_ALG}, {"slot", required_argument, NULL, O_SLOT},
	    {"selector", required_argument, NULL, O_SELECTOR},
	    {"resolver", required_argument, NULL, O_RESOLVER}, {"json", no_argument, NULL, O_JSON},
	    {"yes", no_argument, NULL, O_YES}, {"force", no_argument, NULL, O_FORCE},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			a->conf_path = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return EX_OK;
		case O_DOMAIN:
			a->domain = optarg;
			break;
		case O_ALG:
			a->alg = optarg;
			break;
		case O_SLOT:
			a->slot = optarg;
			break;
		case O_SELECTOR:
			a->selector = optarg;
			break;
		case O_RESOLVER:
			a->resolver = optarg;
			break;
		case O_JSON:
			a->json = 1;
			break;
		case O_YES:
			a->yes = 1;
			break;
		case O_FORCE:
			a->force = 1;
			break;
		default:
			return cli_fail(DK_ERR_USAGE,
			    "key %s: bad option \"%s\"; see \"dkimkeep key %s --help\"", a->cmd,
			    argv[optind - 1], a->cmd);
		}
	}
	if (optind != argc)
		return cli_fail(DK_ERR_USAGE,
		    "key %s takes no argument \"%s\"; see \"dkimkeep key %s --help\"", a->cmd,
		    argv[optind], a->cmd);
	return -1;
}

/* Check the options each command takes; -1 to go on, or an exit code. */
static int
rot_check_args(const struct rot_args *a)
{
	int step = strcmp(a->cmd, "step") == 0, rotate = strcmp(a->cmd, "rotate") == 0;

	if (!step && a->domain == NULL)
		return cli_fail(DK_ERR_USAGE,
		    "key %s needs --domain D; see \"dkimkeep key %s --help\"", a->cmd, a->cmd);
	if (!step && !rotate && a->selector == NULL)
		return cli_fail(DK_ERR_USAGE,
		    "key %s needs --selector S; see \"dkimkeep key list --domain %s\"", a->cmd,
		    a->domain);
	if ((!rotate && (a->alg != NULL || a->slot != NULL)) || (!step && a->resolver != NULL) ||
	    ((step || rotate) && (a->yes || a->force)))
		return cli_fail(DK_ERR_USAGE,
		    "key %s: an option it does not take; see \"dkimkeep "
		    "key %s --help\"",
		    a->cmd, a->cmd);
	if (a->alg != NULL && strcmp(a->alg, "rsa-sha256") != 0 &&
	    strcmp(a->alg, "ed25519-sha256") != 0)
		return cli_fail(
		    DK_ERR_USAGE, "--alg must be rsa-sha256 or ed25519-sha256, not \"%s\"", a->alg);
	if (a->slot != NULL && strcmp(a->slot, "primary") != 0 && strcmp(a->slot, "backup") != 0)
		return cli_fail(
		    DK_ERR_USAGE, "--slot must be primary or backup, not \"%s\"", a->slot);
	return -1;
}

/* revoke and destroy: --yes, or the selector typed again on a terminal. */
static int
confirm(const struct rot_args *a)
{
	char line[CONFIRM_MAX];
	size_t n;

	if (a->yes || (strcmp(a->cmd, "revoke") != 0 && strcmp(a->cmd, "destroy") != 0))
		return 0;
	if (!isatty(STDIN_FILENO))
		return dk_err_set(DK_ERR_USAGE,
		    "key %s cannot be undone: add --yes to confirm (standard input is not a "
		    "terminal to ask on)",
		    a->cmd);
	fprintf(stderr,
	    "dkimkeep: %s %s._domainkey.%s: %s.  Type the selector to confirm: ", a->cmd,
	    a->selector, a->domain,
	    strcmp(a->cmd, "revoke") == 0
	        ? "its record becomes p= and mail it signed no longer verifies"
	        : "the key is destroyed in the token and its record deleted");
	if (fgets(line, sizeof(line), stdin) == NULL)
		return dk_err_set(DK_ERR_USAGE, "not confirmed; nothing done");
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (strcmp(line, a->selector) != 0)
		return dk_err_set(DK_ERR_USAGE, "not confirmed; nothing done");
	return 0;
}

static enum rot_action
action_of(const char *cmd)
{
	if (strcmp(cmd, "activate") == 0)
		return ROT_ACTIVATE;
	if (strcmp(cmd, "retire") == 0)
		return ROT_RETIRE;
	if (strcmp(cmd, "revoke") == 0)
		return ROT_REVOKE;
	return ROT_DESTROY;
}

static int
rot_run(const struct rot_args *a, struct rot_ctx *c, const char *domain)
{
	if (strcmp(a->cmd, "step") == 0)
		return rot_step(c, domain);
	if (strcmp(a->cmd, "rotate") == 0)
		return rot_start(
		    c, domain, a->alg, a->slot != NULL ? a->slot : "primary", a->selector);
	return rot_manual(c, action_of(a->cmd), domain, a->selector);
}

/* Exit code: a failed command by its error; a step by whether a ring stalled. */
static int
rot_exit(const struct rot_args *a, const struct rot_ctx *c, int r)
{
	if (r != 0)
		return cli_fail(r, "%s", dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
	if (strcmp(a->cmd, "step") == 0 && c->stalled > 0) {
		fprintf(stderr,
		    "dkimkeep: %u ring%s could not proceed (see above); the signing keys stay, "
		    "run \"dkimkeep key step\" again later\n",
		    c->stalled, c->stalled == 1 ? "" : "s");
		return EX_TEMPFAIL;
	}
	return EX_OK;
}

/* How long an operator's command waits for the rotation lease (a daemon hands it over at its next
 * step). */
static int64_t
lease_wait_s(const struct dk_conf *conf)
{
	int64_t w = 2 * (int64_t)conf->daemon.step_interval + LEASE_WAIT_EXTRA_S;

	return w < LEASE_WAIT_MAX_S ? w : LEASE_WAIT_MAX_S;
}

/* Does the command move the rings of toks[i]: every token for a step, the domain's for the others.
 */
static int
lease_wanted(const struct rot_args *a, const struct dk_conf *conf, const char *domain,
    const struct rot_tok *tok)
{
	const struct dk_conf_domain *ds;

	if (tok->s == NULL)
		return 0;
	if (domain == NULL)
		return 1;
	if ((ds = dk_conf_domain(conf, domain)) == NULL)
		return strcmp(a->cmd, "step") == 0;
	return strcmp(tok->name, ds->primary) == 0 ||
	       (ds->backup != NULL && strcmp(tok->name, ds->backup) == 0);
}

/*
 * Every ring move by the CLI takes the rotation lease of its tokens
 * (rotate/rot_lease.h) as an operator: another command's turn is waited
 * for, and a daemon that drives hands the lease over at its next step.
 * DK_ERR_BUSY (exit 75), naming the holder, when it does not come within
 * lease_wait_s; held[i] says which to release at the end.
 */
static int
take_leases(const struct rot_args *a, const struct dk_conf *conf, const char *domain,
    struct rot_lease *l, struct rot_tok *toks, size_t n, int *held)
{
	int64_t wait = lease_wait_s(conf), t0;
	char until[32];
	size_t i;
	int r, said;

	for (i = 0; i < n; i++) {
		held[i] = 0;
		if (!lease_wanted(a, conf, domain, &toks[i]))
			continue;
		t0 = (int64_t)time(NULL);
		said = 0;
		for (;;) {
			if ((r = rot_lease_take(l, toks[i].s, &held[i])) != 0)
				return cli_err_prefix(
				    r, "token \"%s\": the rotation lease", toks[i].name);
			if (held[i])
				break;
			if ((int64_t)time(NULL) - t0 >= wait) {
				dk_time_rfc3339((time_t)l->other_expiry, until, sizeof(until));
				return dk_err_set(DK_ERR_BUSY,
				    "token \"%s\": the rings are being moved by %s (its rotation "
				    "lease runs until %s) and it did not hand them over within "
				    "%lld "
				    "s; nothing was moved: try again later",
				    toks[i].name, l->other[0] ? l->other : "another process",
				    l->other_expiry ? until : "its decision", (long long)wait);
			}
			if (!said && l->other[0]) {
				fprintf(stderr,
				    "dkimkeep: token \"%s\": waiting for the rotation lease, held "
				    "by %s (at most %lld s)\n",
				    toks[i].name, l->other, (long long)wait);
				said = 1;
			}
			nanosleep(&(struct timespec){0, LEASE_POLL_NS}, NULL);
		}
		if (said)
			fprintf(stderr, "dkimkeep: token \"%s\": got the rotation lease\n",
			    toks[i].name);
	}
	return 0;
}

static void
release_leases(struct rot_lease *l, struct rot_tok *toks, size_t n, const int *held)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (held[i] && rot_lease_release(l, toks[i].s) != 0)
			fprintf(stderr, "dkimkeep: token \"%s\": %s; the lease ends by itself\n",
			    toks[i].name, dk_err_detail());
}

static int
rot_command(const struct rot_args *a)
{
	static struct rot_tok toks[DK_CONF_MAX_TOKENS];
	int held[DK_CONF_MAX_TOKENS] = {0};
	struct rot_lease lease;
	char domain[HSM_DOMAIN_MAX + 1];
	struct dk_conf *conf = NULL;
	struct cli_toks ts;
	struct rot_ctx c;
	struct rot_out o;
	int r;

	memset(&c, 0, sizeof(c));
	memset(&o, 0, sizeof(o));
	dk_buf_init(&o.buf, OUT_MAX);
	dk_json_init(&o.j, &o.buf);
	o.json = a->json;
	cli_toks_init(&ts, NULL);
	if (a->domain != NULL && (r = cli_domain_norm(a->domain, domain, sizeof(domain))) != 0)
		goto out;
	if ((r = confirm(a)) != 0 || (r = cli_conf_load(a->conf_path, &conf)) != 0)
		goto out;
	cli_toks_init(&ts, conf);
	if ((r = cli_rot_tokens(&ts, toks, &c.ntoks)) != 0)
		goto out;
	c.conf = conf;
	c.toks = toks;
	c.now = time(NULL);
	c.flags = a->force ? ROT_F_FORCE : 0;
	c.resolver = a->resolver;
	c.report = report_cb;
	c.arg = &o;
	o.conf = conf;
	if (o.json)
		dk_json_arr_open(&o.j, NULL);
	/*
	 * A command takes seconds: a lease left by a killed command blocks the
	 * daemons' steps for at most ttl + their allowed clock difference.
	 */
	if ((r = rot_lease_init(&lease, "dkimkeep", 20, 10)) != 0)
		goto out;
	lease.op = 1;
	r = take_leases(a, conf, a->domain != NULL ? domain : NULL, &lease, toks, c.ntoks, held);
	/* The moves decide with the time after the wait. */
	c.now = time(NULL);
	if (r == 0)
		r = rot_run(a, &c, a->domain != NULL ? domain : NULL);
	release_leases(&lease, toks, c.ntoks, held);
	if (o.json) {
		dk_json_arr_close(&o.j);
		if (dk_json_finish(&o.j) == 0)
			printf("%s\n", dk_buf_str(&o.buf));
	}
out:
	cli_audit_key_cmd(conf, a->cmd, r, a->domain != NULL ? domain : NULL, a->selector);
	cli_toks_close(&ts);
	dk_conf_free(conf);
	dk_buf_free(&o.buf);
	return rot_exit(a, &c, r);
}

int
cli_rotate_main(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct rot_args a;
	const char *usage;
	int code;

	memset(&a, 0, sizeof(a));
	a.cmd = argv[0];
	a.conf_path = ctx->conf_path;
	usage = strcmp(a.cmd, "rotate") == 0 ? rotate_usage
	        : strcmp(a.cmd, "step") == 0 ? step_usage
	                                     : move_usage;
	if ((code = rot_parse(argc, argv, usage, &a)) >= 0)
		return code;
	if ((code = rot_check_args(&a)) >= 0)
		return code;
	return rot_command(&a);
}
