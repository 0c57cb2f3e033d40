/*
 * cli_dns.c - "dkimkeep dns check": every key's record as DNS serves it,
 * compared with the key in the token.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "client/cli_dns.h"
#include "client/cli_tokens.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "common/dk_json.h"
#include "rotate/dns_query.h"
#include "rotate/rot_record.h"

#define OUT_MAX    (4 * 1024 * 1024)
#define ISSUES_MAX 8
#define RSA_GOOD   2048 /* RFC 8301 §3.2: signers should use at least this */

static const char dns_usage[] =
    "usage: dkimkeep dns check [--domain D] [--server ADDR[:PORT]] [--json]\n";

static const char check_usage[] =
    "usage: dkimkeep [-c FILE] dns check [--domain D] [--server ADDR[:PORT]] [--json]\n"
    "\n"
    "Looks up the DKIM record of every key in the tokens (of one domain with --domain)\n"
    "and compares it with the key.  CNAMEs are followed (a selector delegated to a\n"
    "provider's name is checked where it points).  Each problem found is named:\n"
    "\n"
    "  signing-unpublished   an active or standby key has no record: its signatures\n"
    "                        fail (or would, after a failover)\n"
    "  missing               a pending or retiring key has no record\n"
    "  wrong-key             the record holds another public key\n"
    "  wrong-k               the record's k= is not the key's algorithm\n"
    "  testing               the record has t=y: verifiers may ignore failures\n"
    "  revoked-record        the record is p= but the key is still in use\n"
    "  revoked-still-published  a revoked key's record still holds its public key\n"
    "  destroyed-still-published  a record is left for a key destroyed in the token\n"
    "  multiple-records      more than one TXT record at the name\n"
    "  bad-record            a TXT record that is not a DKIM key record\n"
    "  weak-key              an RSA key under 2048 bits: rotate it to a larger key\n"
    "                        (rsa_bits=, then \"dkimkeep key rotate\")\n"
    "  lookup-failed         DNS did not answer\n"
    "\n"
    "Options:\n"
    "  --domain D            only this domain's keys\n"
    "  --server ADDR[:PORT]  ask this server (e.g. the authoritative one) instead of\n"
    "                        [dns] resolver= or the system resolver\n"
    "  --json                one JSON list of objects with domain, selector, alg, slot,\n"
    "                        state, name, target (after CNAMEs), ok and issues (a list\n"
    "                        of {code, text})\n"
    "  -c FILE               configuration file\n"
    "  -h, --help            this text\n"
    "\n"
    "Exit codes: 0 DNS agrees with every key; 1 a problem was found; 64 usage; 69\n"
    "token unavailable; 77 PIN refused; 78 bad config.\n";

struct issue {
	const char *code;
	char text[256];
};

/* The result of one name. */
struct check {
	const char *domain, *selector, *alg, *slot, *state;
	char name[ROT_REC_NAME_MAX + 1];
	char target[ROT_REC_NAME_MAX + 2];
	int cnames;
	struct issue v[ISSUES_MAX];
	size_t n;
};

static void issue(struct check *ck, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
issue(struct check *ck, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (ck->n >= ISSUES_MAX)
		return;
	ck->v[ck->n].code = code;
	va_start(ap, fmt);
	vsnprintf(ck->v[ck->n].text, sizeof(ck->v[ck->n].text), fmt, ap);
	va_end(ap);
	ck->n++;
}

static int
live(const char *state)
{
	return strcmp(state, "revoked") != 0;
}

static int
signing(const char *state)
{
	return strcmp(state, "active") == 0 || strcmp(state, "standby") == 0;
}

/* Judge the records served for a key that should publish want (NULL: destroyed). */
static void
judge(struct check *ck, const struct rot_txt *txt, const struct rot_rec *want)
{
	struct rot_rec got;
	size_t i;

	rot_rec_init(&got);
	if (txt->n == 0 && want != NULL && live(ck->state))
		issue(ck, signing(ck->state) ? "signing-unpublished" : "missing",
		    "no TXT record at %s", ck->name);
	if (txt->n > 1)
		issue(ck, "multiple-records", "%s has more than one TXT record", ck->name);
	for (i = 0; i < txt->n; i++) {
		if (rot_rec_parse(dk_buf_str(&txt->v[i]), txt->v[i].len, &got) != 0) {
			issue(ck, "bad-record", "a TXT record at %s is not a DKIM key record",
			    ck->name);
			continue;
		}
		if (want == NULL) {
			issue(ck, "destroyed-still-published",
			    "%s is still published for a key destroyed in the token; delete it",
			    ck->name);
			continue;
		}
		if (got.testing)
			issue(ck, "testing", "%s has t=y: verifiers may treat failures as unsigned",
			    ck->name);
		switch (rot_rec_compare(want, &got)) {
		case ROT_MATCH:
			if (!live(ck->state))
				issue(ck, "revoked-still-published",
				    "%s still publishes the public key of a revoked key", ck->name);
			break;
		case ROT_WRONG_KEY:
			issue(ck, live(ck->state) ? "wrong-key" : "revoked-still-published",
			    "%s holds another public key than the token's", ck->name);
			break;
		case ROT_WRONG_K:
			issue(
			    ck, "wrong-k", "%s has the wrong k= for the key's algorithm", ck->name);
			break;
		case ROT_REVOKED:
			if (live(ck->state))
				issue(ck, "revoked-record", "%s is p= (revoked) but the key is %s",
				    ck->name, ck->state);
			break;
		}
	}
	rot_rec_free(&got);
}

/* Look name up and judge it; a lookup that fails is an issue too. */
static void
check_name(const char *server, struct check *ck, const struct rot_rec *want)
{
	struct rot_txt txt;

	rot_txt_init(&txt);
	if (rot_dns_txt(server, ck->name, &txt) != 0)
		issue(ck, "lookup-failed", "%s", dk_err_detail());
	else {
		snprintf(ck->target, sizeof(ck->target), "%s", txt.target);
		ck->cnames = txt.cnames;
		judge(ck, &txt, want);
	}
	rot_txt_free(&txt);
}

static int
check_key(const char *server, const struct cli_key *k, struct check *ck)
{
	struct dk_buf value;
	struct rot_rec want;
	int r;

	memset(ck, 0, sizeof(*ck));
	ck->domain = k->k.meta.domain;
	ck->selector = k->k.meta.selector;
	ck->alg = k->k.meta.alg;
	ck->slot = k->k.meta.slot;
	ck->state = k->k.meta.state;
	snprintf(ck->name, sizeof(ck->name), "%s._domainkey.%s", ck->selector, ck->domain);
	dk_buf_init(&value, ROT_REC_VALUE_MAX);
	rot_rec_init(&want);
	if ((r = rot_rec_value(k->tok->s, &k->k, 0, &value)) != 0 ||
	    (r = rot_rec_parse(dk_buf_str(&value), value.len, &want)) != 0)
		goto out;
	check_name(server, ck, &want);
	if (k->k.type == HSM_KEY_RSA && k->k.bits < RSA_GOOD && live(ck->state))
		issue(ck, "weak-key",
		    "RSA key under 2048 bits (RFC 8301 §3.2): rotate %s to a larger key",
		    ck->selector);
out:
	dk_buf_free(&value);
	rot_rec_free(&want);
	return r;
}

static int
have_selector(const struct cli_keys *ks, const char *domain, const char *selector)
{
	size_t i;

	for (i = 0; i < ks->n; i++) {
		if (strcasecmp(ks->v[i].k.meta.domain, domain) == 0 &&
		    strcasecmp(ks->v[i].k.meta.selector, selector) == 0)
			return 1;
	}
	return 0;
}

/* The name of a destroyed key (selector, with m's domain, alg and slot): no record wanted. */
static void
check_destroyed(
    const char *server, const struct hsm_key_meta *m, const char *selector, struct check *ck)
{
	memset(ck, 0, sizeof(*ck));
	ck->domain = m->domain;
	ck->selector = selector;
	ck->alg = m->alg;
	ck->slot = m->slot;
	ck->state = "destroyed";
	snprintf(ck->name, sizeof(ck->name), "%s._domainkey.%s", selector, m->domain);
	check_name(server, ck, NULL);
}

/* A tombstone (hsm_key_list_all), or a record left without its private key. */
static int
key_gone(const struct cli_key *k)
{
	return strcmp(k->k.meta.state, "destroyed") == 0 || k->k.priv == 0;
}

/* Does a key that is not gone answer at m's name? */
static int
live_selector(const struct cli_keys *ks, const struct hsm_key_meta *m)
{
	size_t i;

	for (i = 0; i < ks->n; i++) {
		if (!key_gone(&ks->v[i]) && strcasecmp(ks->v[i].k.meta.domain, m->domain) == 0 &&
		    strcasecmp(ks->v[i].k.meta.selector, m->selector) == 0)
			return 1;
	}
	return 0;
}

/* A selector a live key replaced, whose key is gone from the token: destroyed. */
static int
check_replaced(const char *server, const struct cli_keys *ks, size_t i, struct check *ck)
{
	const struct hsm_key_meta *m = &ks->v[i].k.meta;
	size_t j;

	if (m->replaces[0] == '\0' || have_selector(ks, m->domain, m->replaces))
		return 0;
	for (j = 0; j < i; j++) { /* once per replaced selector */
		if (strcasecmp(ks->v[j].k.meta.domain, m->domain) == 0 &&
		    strcasecmp(ks->v[j].k.meta.replaces, m->replaces) == 0)
			return 0;
	}
	check_destroyed(server, m, m->replaces, ck);
	return 1;
}

static void
write_check(const struct check *ck, int json, struct dk_json *j, struct dk_buf *out)
{
	size_t i;

	if (json) {
		dk_json_obj_open(j, NULL);
		dk_json_str(j, "domain", ck->domain);
		dk_json_str(j, "selector", ck->selector);
		dk_json_str(j, "alg", ck->alg);
		dk_json_str(j, "slot", ck->slot);
		dk_json_str(j, "state", ck->state);
		dk_json_str(j, "name", ck->name);
		dk_json_str(j, "target", ck->target);
		dk_json_int(j, "cnames", ck->cnames);
		dk_json_bool(j, "ok", ck->n == 0);
		dk_json_arr_open(j, "issues");
		for (i = 0; i < ck->n; i++) {
			dk_json_obj_open(j, NULL);
			dk_json_str(j, "code", ck->v[i].code);
			dk_json_str(j, "text", ck->v[i].text);
			dk_json_obj_close(j);
		}
		dk_json_arr_close(j);
		dk_json_obj_close(j);
		return;
	}
	(void)dk_buf_printf(out, "%-7s %s (%s %s, %s)%s%s\n", ck->n == 0 ? "ok" : "PROBLEM",
	    ck->name, ck->alg, ck->slot, ck->state, ck->cnames > 0 ? " via CNAME to " : "",
	    ck->cnames > 0 ? ck->target : "");
	for (i = 0; i < ck->n; i++)
		(void)dk_buf_printf(out, "        %s: %s\n", ck->v[i].code, ck->v[i].text);
}

struct dns_args {
	const char *conf_path, *domain, *server;
	int json;
};

static int
dns_parse(int argc, char **argv, struct dns_args *a)
{
	static const struct option longopts[] = {{"domain", required_argument, NULL, 'D'},
	    {"server", required_argument, NULL, 'S'}, {"json", no_argument, NULL, 'J'},
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
			fputs(check_usage, stdout);
			return EX_OK;
		case 'D':
			a->domain = optarg;
			break;
		case 'S':
			a->server = optarg;
			break;
		case 'J':
			a->json = 1;
			break;
		default:
			return cli_fail(DK_ERR_USAGE,
			    "dns check: bad option \"%s\"; see \"dkimkeep dns check --help\"",
			    argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cli_fail(DK_ERR_USAGE,
		    "dns check takes no argument \"%s\"; see \"dkimkeep dns check --help\"",
		    argv[optind]);
	return -1;
}

/* Check every key of ks and write the results; *problems counts the names with issues. */
static int
check_all(
    const char *server, const struct cli_keys *ks, int json, struct dk_buf *out, unsigned *problems)
{
	struct check ck;
	struct dk_json j;
	size_t i;
	int r;

	dk_json_init(&j, out);
	if (json)
		dk_json_arr_open(&j, NULL);
	for (i = 0; i < ks->n; i++) {
		if (key_gone(&ks->v[i]) && live_selector(ks, &ks->v[i].k.meta))
			continue; /* the name is a live key's: checked with that key */
		if (key_gone(&ks->v[i])) {
			/* A tombstone: the key is destroyed, its record must be gone too. */
			check_destroyed(server, &ks->v[i].k.meta, ks->v[i].k.meta.selector, &ck);
			*problems += ck.n > 0;
			write_check(&ck, json, &j, out);
			continue;
		}
		if ((r = check_key(server, &ks->v[i], &ck)) != 0)
			return r;
		*problems += ck.n > 0;
		write_check(&ck, json, &j, out);
		if (check_replaced(server, ks, i, &ck)) {
			*problems += ck.n > 0;
			write_check(&ck, json, &j, out);
		}
	}
	if (json) {
		dk_json_arr_close(&j);
		if ((r = dk_json_finish(&j)) != 0 || (r = dk_buf_putc(out, '\n')) != 0)
			return r;
	}
	return 0;
}

static int
dns_check(const struct dns_args *a)
{
	char domain[HSM_DOMAIN_MAX + 1];
	struct dk_conf *conf = NULL;
	struct cli_toks ts;
	struct cli_keys ks = {NULL, 0};
	struct dk_buf out;
	unsigned problems = 0;
	int r;

	dk_buf_init(&out, OUT_MAX);
	cli_toks_init(&ts, NULL);
	if (a->domain != NULL && (r = cli_domain_norm(a->domain, domain, sizeof(domain))) != 0)
		goto out;
	if ((r = cli_conf_load(a->conf_path, &conf)) != 0)
		goto out;
	cli_toks_init(&ts, conf);
	/* Destroyed keys' records are kept until DNS drops them: checked too. */
	if ((r = cli_keys_gather_all(&ts, a->domain != NULL ? domain : NULL, &ks)) != 0)
		goto out;
	cli_keys_sort(&ks);
	r = check_all(
	    a->server != NULL ? a->server : conf->dns.resolver, &ks, a->json, &out, &problems);
	if (r == 0)
		fputs(dk_buf_str(&out), stdout);
out:
	dk_buf_free(&out);
	cli_keys_free(&ks);
	cli_toks_close(&ts);
	dk_conf_free(conf);
	if (r != 0)
		return cli_fail(r, "%s", dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
	if (problems > 0 && !a->json)
		fprintf(stderr, "dkimkeep: %u record%s disagree%s with the tokens (see above)\n",
		    problems, problems == 1 ? "" : "s", problems == 1 ? "s" : "");
	return problems > 0 ? 1 : EX_OK;
}

int
cli_dns_main(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct dns_args a;
	int code;

	if (argc < 2) {
		fputs(dns_usage, stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fputs(check_usage, stdout);
		return EX_OK;
	}
	if (strcmp(argv[1], "check") != 0)
		return cli_fail(DK_ERR_USAGE,
		    "unknown command \"dns %s\"; see \"dkimkeep dns check --help\"", argv[1]);
	memset(&a, 0, sizeof(a));
	a.conf_path = ctx->conf_path;
	if ((code = dns_parse(argc - 1, argv + 1, &a)) >= 0)
		return code;
	return dns_check(&a);
}
