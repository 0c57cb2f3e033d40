/*
 * cli_key.c - "dkimkeep key generate|import|list|dns": keys in the token.
 */
#include <sys/stat.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/cli_audit_log.h"
#include "client/cli_drill.h"
#include "client/cli_rotate.h"
#include "client/cli_tokens.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "common/dk_json.h"
#include "common/dk_time.h"
#include "rotate/rot_record.h"

#define PEM_FILE_MAX (64 * 1024)
#define OUT_MAX      (16 * 1024 * 1024)
#define WHY_MAX      768

static const char key_usage[] =
    "usage: dkimkeep key generate --domain D --alg rsa-sha256|ed25519-sha256 [--bits N]\n"
    "                             [--selector S] [--slot primary|backup] [--activate]\n"
    "       dkimkeep key import --domain D --selector S --pem FILE [--slot primary|backup]\n"
    "                           [--activate]\n"
    "       dkimkeep key list [--domain D] [--json]\n"
    "       dkimkeep key dns [--domain D] [--json]\n"
    "       dkimkeep key drill --domain D [--offline] [--json]\n"
    "       dkimkeep key rotate --domain D [--alg A] [--slot primary|backup] [--selector S]\n"
    "       dkimkeep key step [--domain D] [--json]\n"
    "       dkimkeep key activate|retire|revoke|destroy --domain D --selector S\n"
    "\n"
    "DKIM keys kept in the token.  These commands talk to the tokens directly (no\n"
    "daemon needed); \"dkimkeep key COMMAND --help\" explains one command.\n";

static const char generate_usage[] =
    "usage: dkimkeep [-c FILE] key generate --domain D --alg rsa-sha256|ed25519-sha256\n"
    "                [--bits 2048|3072|4096] [--selector S] [--slot primary|backup]\n"
    "                [--activate] [--json]\n"
    "\n"
    "Generates a DKIM key pair inside the token and prints the DNS TXT record to\n"
    "publish.  The private key never leaves the token: it is a token object, private,\n"
    "sensitive, never extractable, allowed to sign only (CKA_ALLOWED_MECHANISMS set)\n"
    "and not modifiable.  The key's domain, selector, algorithm, slot and state are\n"
    "kept in the token beside it, so every dkimkeepd on the token sees the same keys.\n"
    "\n"
    "The token is primary= of the domain's [domain] section, or backup= with\n"
    "--slot backup.  The new key is \"pending\" (published, not yet signing), \"active\"\n"
    "with --activate, or \"standby\" with --slot backup.  --activate is refused when\n"
    "the domain already has an active key for the algorithm: rotate instead.\n"
    "\n"
    "Options:\n"
    "  --domain D        the signing domain (d=); it needs a [domain] section\n"
    "  --alg A           rsa-sha256 or ed25519-sha256\n"
    "  --bits N          RSA modulus size: 2048, 3072 or 4096 (default: rsa_bits= of\n"
    "                    the domain, 2048)\n"
    "  --selector S      the selector (s=); by default one is made from\n"
    "                    selector_template= of the domain (default\n"
    "                    " CLI_SELECTOR_TEMPLATE ", e.g. s202611-rsa), with a letter\n"
    "                    added after the date (s202611b-rsa) when it is taken\n"
    "  --slot SLOT       primary (default) or backup\n"
    "  --activate        make the key sign at once (no other active key allowed)\n"
    "  --json            print the key and its DNS record as one JSON object\n"
    "  -c FILE           configuration file\n"
    "  -h, --help        this text\n"
    "\n"
    "Exit codes: 0 generated; 64 usage; 65 selector taken or an active key exists;\n"
    "69 token unavailable; 77 PIN refused; 78 bad config.\n";

static const char import_usage[] =
    "usage: dkimkeep [-c FILE] key import --domain D --selector S --pem FILE\n"
    "                [--slot primary|backup] [--activate] [--json]\n"
    "\n"
    "Imports an existing DKIM private key from an unencrypted PEM file (RSA in PKCS#1\n"
    "\"BEGIN RSA PRIVATE KEY\" or PKCS#8 \"BEGIN PRIVATE KEY\", Ed25519 in PKCS#8) into\n"
    "the token, with the same attributes as generated keys, and prints the DNS TXT\n"
    "record.  The algorithm follows from the key.  RSA keys below 1024 bits are\n"
    "refused; below 2048 bits they are imported with a warning (RFC 8301).  The key is\n"
    "wiped from dkimkeep's memory after the import.\n"
    "\n"
    "After a successful import the key is in the token: destroy the PEM file and every\n"
    "copy of it (e.g. \"shred -u FILE\"); a key that existed outside the token is only\n"
    "as safe as those copies were.\n"
    "\n"
    "Options:\n"
    "  --domain D      the signing domain (d=); it needs a [domain] section\n"
    "  --selector S    the selector (s=) already published for this key\n"
    "  --pem FILE      the PEM private key\n"
    "  --slot SLOT     primary (default) or backup\n"
    "  --activate      make the key sign at once (no other active key allowed)\n"
    "  --json          print the key and its DNS record as one JSON object\n"
    "  -c FILE         configuration file\n"
    "  -h, --help      this text\n"
    "\n"
    "Exit codes: 0 imported; 64 usage; 65 bad or encrypted PEM, key already in the\n"
    "token, selector taken; 69 token unavailable; 74 the PEM file cannot be read;\n"
    "77 PIN refused; 78 bad config.\n";

static const char list_usage[] =
    "usage: dkimkeep [-c FILE] key list [--domain D] [--json]\n"
    "\n"
    "Lists the DKIM keys in the tokens of the config (of one domain's primary and\n"
    "backup tokens with --domain): domain, selector, algorithm, bits, slot, state,\n"
    "token, creation time and key id, and the result of the hygiene check that\n"
    "dkimkeepd makes before signing (ok, weak: RSA below 2048 bits, or REFUSED with\n"
    "the reason on stderr).\n"
    "\n"
    "Options:\n"
    "  --domain D   only this domain's keys\n"
    "  --json       one JSON list of objects with domain, alg, selector, slot, state,\n"
    "               token, token_label, created and changed (RFC 3339), bits (RSA),\n"
    "               key_id, uri, usable, weak and problem (when refused)\n"
    "  -c FILE      configuration file\n"
    "  -h, --help   this text\n"
    "\n"
    "Exit codes: 0 listed; 64 usage; 69 token unavailable; 77 PIN refused; 78 bad\n"
    "config.\n";

static const char dns_usage[] =
    "usage: dkimkeep [-c FILE] key dns [--domain D] [--json]\n"
    "\n"
    "Prints the DNS TXT record of every key in the tokens (of one domain with\n"
    "--domain), one per line in zone-file form:\n"
    "\n"
    "  SELECTOR._domainkey.DOMAIN IN TXT \"v=DKIM1; k=rsa; p=...\"\n"
    "\n"
    "Values longer than 255 bytes are split into several quoted strings, as DNS\n"
    "requires.  Pending, active, retiring and standby keys are published with their\n"
    "public key; revoked keys with an empty \"p=\" (RFC 6376 §3.6.1).\n"
    "\n"
    "Options:\n"
    "  --domain D   only this domain's records\n"
    "  --json       one JSON list of objects with name, type (TXT), value (unsplit),\n"
    "               state, domain, selector and alg\n"
    "  -c FILE      configuration file\n"
    "  -h, --help   this text\n"
    "\n"
    "Exit codes: 0 printed; 64 usage; 69 token unavailable; 77 PIN refused; 78 bad\n"
    "config.\n";

/* ---- shared output ---- */

static const char *
alg_word(const char *alg)
{
	return strcmp(alg, "rsa-sha256") == 0 ? "rsa" : "ed25519";
}

/* ---- option parsing ---- */

struct key_args {
	const char *conf_path, *domain, *alg, *selector, *slot, *pem;
	unsigned bits;
	int activate, json;
};

enum { O_DOMAIN = 1000, O_ALG, O_BITS, O_SELECTOR, O_SLOT, O_ACTIVATE, O_PEM, O_JSON };

/*
 * Parse the options of "key CMD"; allowed is the set of O_ options the
 * command takes.  Returns -1 to go on, or an exit code.
 */
static int
key_parse(
    int argc, char **argv, const char *cmd, const char *usage, unsigned allowed, struct key_args *a)
{
	static const struct option longopts[] = {{"domain", required_argument, NULL, O_DOMAIN},
	    {"alg", required_argument, NULL, O_ALG}, {"bits", required_argument, NULL, O_BITS},
	    {"selector", required_argument, NULL, O_SELECTOR},
	    {"slot", required_argument, NULL, O_SLOT}, {"activate", no_argument, NULL, O_ACTIVATE},
	    {"pem", required_argument, NULL, O_PEM}, {"json", no_argument, NULL, O_JSON},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	char *end;
	long v;
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		if (opt >= O_DOMAIN && (allowed & (1u << (opt - O_DOMAIN))) == 0)
			opt = '?';
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
		case O_BITS:
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || (v != 2048 && v != 3072 && v != 4096))
				return cli_fail(DK_ERR_USAGE,
				    "--bits must be 2048, 3072 or 4096, not "
				    "\"%s\"",
				    optarg);
			a->bits = (unsigned)v;
			break;
		case O_SELECTOR:
			a->selector = optarg;
			break;
		case O_SLOT:
			a->slot = optarg;
			break;
		case O_ACTIVATE:
			a->activate = 1;
			break;
		case O_PEM:
			a->pem = optarg;
			break;
		case O_JSON:
			a->json = 1;
			break;
		default:
			return cli_fail(DK_ERR_USAGE,
			    "key %s: bad option \"%s\"; see \"dkimkeep key %s "
			    "--help\"",
			    cmd, argv[optind - 1], cmd);
		}
	}
	if (optind != argc)
		return cli_fail(DK_ERR_USAGE,
		    "key %s takes no argument \"%s\"; see \"dkimkeep key "
		    "%s --help\"",
		    cmd, argv[optind], cmd);
	return -1;
}

#define OPT(o) (1u << ((o)-O_DOMAIN))

/* ---- generate and import ---- */

/* What a new key will be, worked out before the token is touched. */
struct key_new {
	char domain[HSM_DOMAIN_MAX + 1];
	const struct dk_conf_domain *ds;
	const char *token; /* [token NAME] that receives it */
	enum hsm_key_type type;
	unsigned bits;
	struct hsm_key_meta meta;
};

static int
new_domain(const struct dk_conf *c, const struct key_args *a, struct key_new *kn)
{
	int r;

	if (a->domain == NULL)
		return dk_err_set(DK_ERR_USAGE, "--domain is required");
	if ((r = cli_domain_norm(a->domain, kn->domain, sizeof(kn->domain))) != 0)
		return r;
	if ((kn->ds = dk_conf_domain(c, kn->domain)) == NULL)
		return dk_err_set(DK_ERR_CONFIG,
		    "domain %s is not configured in %s: add a [domain %s] section with primary=",
		    kn->domain, c->path, kn->domain);
	return 0;
}

static int
new_slot(const struct dk_conf *c, const struct key_args *a, struct key_new *kn)
{
	const char *slot = a->slot != NULL ? a->slot : "primary";

	if (strcmp(slot, "primary") != 0 && strcmp(slot, "backup") != 0)
		return dk_err_set(
		    DK_ERR_USAGE, "--slot must be primary or backup, not \"%s\"", slot);
	if (strcmp(slot, "backup") == 0 && a->activate)
		return dk_err_set(DK_ERR_USAGE,
		    "--activate is for primary keys; a backup key is standby until a failover");
	kn->token = strcmp(slot, "primary") == 0 ? kn->ds->primary : kn->ds->backup;
	if (kn->token == NULL)
		return dk_err_set(DK_ERR_CONFIG,
		    "%s:%d: [domain %s] has no %s= token; add one to use --slot %s", c->path,
		    kn->ds->line, kn->ds->name, slot, slot);
	snprintf(kn->meta.slot, sizeof(kn->meta.slot), "%s", slot);
	snprintf(kn->meta.state, sizeof(kn->meta.state), "%s",
	    a->activate                   ? "active"
	    : strcmp(slot, "backup") == 0 ? "standby"
	                                  : "pending");
	return 0;
}

static int
new_alg(const struct key_args *a, struct key_new *kn)
{
	if (a->alg == NULL)
		return dk_err_set(
		    DK_ERR_USAGE, "--alg rsa-sha256 or --alg ed25519-sha256 is required");
	if (strcmp(a->alg, "rsa-sha256") == 0) {
		kn->type = HSM_KEY_RSA;
		kn->bits = a->bits != 0           ? a->bits
		           : kn->ds->rsa_bits > 0 ? (unsigned)kn->ds->rsa_bits
		                                  : 2048;
	} else if (strcmp(a->alg, "ed25519-sha256") == 0) {
		if (a->bits != 0)
			return dk_err_set(DK_ERR_USAGE, "--bits is for rsa-sha256 keys only");
		kn->type = HSM_KEY_ED25519;
		kn->bits = 255;
	} else {
		return dk_err_set(DK_ERR_USAGE,
		    "--alg must be rsa-sha256 or ed25519-sha256, not \"%s\" (rsa-sha1 is "
		    "forbidden by RFC 8301)",
		    a->alg);
	}
	return 0;
}

/* The domain signs with the algorithms in algorithms=; say so when this is not one. */
static void
new_alg_warn(const struct key_new *kn)
{
	unsigned bit =
	    kn->type == HSM_KEY_RSA ? DK_CONF_ALG_RSA_SHA256 : DK_CONF_ALG_ED25519_SHA256;

	if (kn->ds->algs != 0 && (kn->ds->algs & bit) == 0)
		cli_warn("%s is not in algorithms= of [domain %s]: dkimkeepd will not sign with "
		         "this key until it is added",
		    kn->meta.alg, kn->ds->name);
}

/* Read the PEM file (at most PEM_FILE_MAX bytes) into out, which the caller wipes. */
static int
read_pem(const char *path, struct dk_buf *out)
{
	struct stat st;
	ssize_t n;
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return dk_err_set(
		    DK_ERR_IO, "cannot open the PEM file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > PEM_FILE_MAX) {
		r = dk_err_set(DK_ERR_INVALID, "%s is not a regular file of at most %d bytes", path,
		    PEM_FILE_MAX);
		goto out;
	}
	if ((r = dk_buf_reserve(out, PEM_FILE_MAX)) != 0)
		goto out;
	for (;;) {
		n = read(fd, out->data + out->len, PEM_FILE_MAX - out->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = dk_err_set(
			    DK_ERR_IO, "cannot read the PEM file %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0 || out->len + (size_t)n >= PEM_FILE_MAX) {
			out->len += (size_t)n;
			break;
		}
		out->len += (size_t)n;
	}
	out->data[out->len] = '\0';
	r = 0;
out:
	close(fd);
	return r;
}

/* An active key for the same domain, algorithm and primary slot blocks --activate. */
static int
new_conflict(const struct key_new *kn, const struct cli_keys *ks)
{
	size_t i;

	if (strcmp(kn->meta.state, "active") != 0)
		return 0;
	for (i = 0; i < ks->n; i++) {
		const struct hsm_key_meta *m = &ks->v[i].k.meta;

		if (strcasecmp(m->domain, kn->domain) == 0 && strcmp(m->alg, kn->meta.alg) == 0 &&
		    strcmp(m->slot, "primary") == 0 && strcmp(m->state, "active") == 0)
			return dk_err_set(DK_ERR_EXISTS,
			    "%s already has an active %s key (selector %s, id %s); leave out "
			    "--activate and rotate to the new key (\"dkimkeep key rotate --domain "
			    "%s --alg %s\")",
			    kn->domain, m->alg, m->selector, ks->v[i].k.id_hex, kn->domain, m->alg);
	}
	return 0;
}

static int
selector_taken(const struct cli_keys *ks, const char *domain, const char *selector)
{
	size_t i;

	for (i = 0; i < ks->n; i++) {
		if (strcasecmp(ks->v[i].k.meta.domain, domain) == 0 &&
		    strcasecmp(ks->v[i].k.meta.selector, selector) == 0)
			return 1;
	}
	return 0;
}

/* The selector given, or a fresh one from selector_template=. */
static int
new_selector(const struct key_args *a, struct key_new *kn, const struct cli_keys *ks, time_t now)
{
	const char *tmpl =
	    kn->ds->selector_template != NULL ? kn->ds->selector_template : CLI_SELECTOR_TEMPLATE;
	char suffix[2] = {0, 0};
	int r;

	if (a->selector != NULL) {
		if (strlen(a->selector) >= sizeof(kn->meta.selector))
			return dk_err_set(DK_ERR_USAGE, "selector \"%s\" is over %d characters",
			    a->selector, HSM_SELECTOR_MAX);
		if (selector_taken(ks, kn->domain, a->selector))
			return dk_err_set(DK_ERR_EXISTS,
			    "selector %s of %s is taken by another key; choose another (see "
			    "\"dkimkeep key list --domain %s\")",
			    a->selector, kn->domain, kn->domain);
		snprintf(kn->meta.selector, sizeof(kn->meta.selector), "%s", a->selector);
		return 0;
	}
	for (;;) {
		r = rot_selector_expand(tmpl, alg_word(kn->meta.alg), now, suffix,
		    kn->meta.selector, sizeof(kn->meta.selector));
		if (r != 0)
			return r;
		if (!selector_taken(ks, kn->domain, kn->meta.selector))
			return 0;
		suffix[0] = suffix[0] == 0 ? 'b' : (char)(suffix[0] + 1);
		if (suffix[0] > 'z')
			return dk_err_set(DK_ERR_EXISTS,
			    "every selector from \"%s\" is taken this period; give --selector",
			    tmpl);
	}
}

/* Print what was made and the record to publish (or the JSON object). */
static int
new_report(const struct cli_key *ck, int json, const char *pem_path)
{
	struct dk_buf out, line;
	struct dk_json j;
	int r;

	dk_buf_init(&out, OUT_MAX);
	dk_buf_init(&line, 8192);
	if (json) {
		dk_json_init(&j, &out);
		dk_json_obj_open(&j, NULL);
		cli_key_json(&j, "key", ck, 0, 0, 0, NULL);
		if ((r = cli_dns_json(&j, "dns", ck)) != 0)
			goto out;
		if (pem_path != NULL)
			dk_json_str(&j, "destroy_pem", pem_path);
		dk_json_obj_close(&j);
		if ((r = dk_json_finish(&j)) != 0 || (r = dk_buf_putc(&out, '\n')) != 0)
			goto out;
	} else {
		if ((r = cli_dns_line(ck->tok, &ck->k, &line)) != 0)
			goto out;
		r = dk_buf_printf(&out,
		    "%s %s key %s._domainkey.%s: %u bits, slot %s, state %s, token %s (\"%s\"), "
		    "key id %s\n",
		    pem_path != NULL ? "imported" : "generated", ck->k.meta.alg,
		    ck->k.meta.selector, ck->k.meta.domain, ck->k.bits, ck->k.meta.slot,
		    ck->k.meta.state, ck->tok->conf->name, hsm_token_label(ck->tok->t),
		    ck->k.id_hex);
		if (r == 0)
			r = dk_buf_printf(&out,
			    "publish this DNS record (\"dkimkeep key dns\" shows "
			    "it again):\n%s\n",
			    dk_buf_str(&line));
		if (r == 0 && pem_path != NULL)
			r = dk_buf_printf(&out,
			    "the private key is now in the token: destroy %s and every copy of it "
			    "now, e.g. \"shred -u %s\"\n",
			    pem_path, pem_path);
		if (r != 0)
			goto out;
	}
	fputs(dk_buf_str(&out), stdout);
	r = 0;
out:
	dk_buf_free(&out);
	dk_buf_free(&line);
	return r;
}

/* Make the key in the token and check it as dkimkeepd will; undo on failure. */
static int
new_make(struct cli_tok *tok, struct key_new *kn, const struct dk_buf *pem, struct hsm_key *k)
{
	char why[WHY_MAX];
	int r, weak = 0;

	if (pem != NULL)
		r = hsm_key_import(tok->s, pem->data, pem->len, &kn->meta, k);
	else
		r = hsm_key_generate(tok->s, kn->type, kn->bits, &kn->meta, k);
	if (r != 0)
		return r;
	r = hsm_key_check(tok->s, k, &weak, why, sizeof(why));
	if (r != 0 && r != DK_ERR_NOMEM) /* a stale view of a token others write? look again */
		r = hsm_key_recheck(tok->s, k, &weak, why, sizeof(why));
	if (r != 0) {
		char detail[WHY_MAX];

		snprintf(detail, sizeof(detail), "%s", dk_err_detail());
		if (hsm_key_destroy(tok->s, k, 0) != 0)
			cli_warn("the refused key could not be destroyed: %s", dk_err_detail());
		return dk_err_set(r, "the new key fails the check and was destroyed: %s", detail);
	}
	/* A weak (imported) key was already warned about by hsm_key_import. */
	(void)weak;
	return 0;
}

static int
key_create(const struct key_args *a, int import)
{
	struct key_new kn;
	struct dk_conf *c = NULL;
	struct cli_toks ts;
	struct cli_keys ks = {NULL, 0};
	struct cli_key ck;
	struct cli_tok *tok;
	struct dk_buf pem;
	time_t now = time(NULL);
	int r;

	memset(&kn, 0, sizeof(kn));
	dk_buf_init(&pem, PEM_FILE_MAX);
	cli_toks_init(&ts, NULL);
	if ((r = cli_conf_load(a->conf_path, &c)) != 0)
		goto out;
	cli_toks_init(&ts, c);
	if ((r = new_domain(c, a, &kn)) != 0 || (r = new_slot(c, a, &kn)) != 0)
		goto out;
	if (import) {
		if ((r = read_pem(a->pem, &pem)) != 0)
			goto out;
		if ((r = hsm_pem_key_type(pem.data, pem.len, &kn.type, &kn.bits)) != 0) {
			r = cli_err_prefix(r, "%s", a->pem);
			goto out;
		}
	} else if ((r = new_alg(a, &kn)) != 0) {
		goto out;
	}
	snprintf(kn.meta.domain, sizeof(kn.meta.domain), "%s", kn.domain);
	snprintf(kn.meta.alg, sizeof(kn.meta.alg), "%s",
	    kn.type == HSM_KEY_RSA ? "rsa-sha256" : "ed25519-sha256");
	kn.meta.created = kn.meta.changed = (int64_t)now;
	if ((r = cli_toks_get(&ts, kn.token, &tok)) != 0 ||
	    (r = cli_keys_gather(&ts, kn.domain, &ks)) != 0)
		goto out;
	if ((r = new_conflict(&kn, &ks)) != 0 || (r = new_selector(a, &kn, &ks, now)) != 0)
		goto out;
	new_alg_warn(&kn);
	if ((r = new_make(tok, &kn, import ? &pem : NULL, &ck.k)) != 0)
		goto out;
	ck.tok = tok;
	r = new_report(&ck, a->json, import ? a->pem : NULL);
out:
	cli_audit_key(c, import ? "key.import" : "key.generate", r, kn.token, &kn.meta,
	    r == 0 ? ck.k.id_hex : NULL);
	dk_buf_free(&pem);
	cli_keys_free(&ks);
	cli_toks_close(&ts);
	dk_conf_free(c);
	return r == 0 ? EX_OK
	              : cli_fail(r, "%s", dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
}

static int
key_generate(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct key_args a = {.conf_path = ctx->conf_path};
	int code;

	code = key_parse(argc, argv, "generate", generate_usage,
	    OPT(O_DOMAIN) | OPT(O_ALG) | OPT(O_BITS) | OPT(O_SELECTOR) | OPT(O_SLOT) |
	        OPT(O_ACTIVATE) | OPT(O_JSON),
	    &a);
	if (code >= 0)
		return code;
	return key_create(&a, 0);
}

static int
key_import(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct key_args a = {.conf_path = ctx->conf_path};
	int code;

	code = key_parse(argc, argv, "import", import_usage,
	    OPT(O_DOMAIN) | OPT(O_SELECTOR) | OPT(O_SLOT) | OPT(O_ACTIVATE) | OPT(O_PEM) |
	        OPT(O_JSON),
	    &a);
	if (code >= 0)
		return code;
	if (a.selector == NULL || a.pem == NULL || a.domain == NULL)
		return cli_fail(DK_ERR_USAGE, "key import needs --domain D, --selector S and --pem "
		                              "FILE; see \"dkimkeep key import --help\"");
	return key_create(&a, 1);
}

/* ---- list and dns ---- */

static int
gather(const struct key_args *a, struct dk_conf **c, struct cli_toks *ts, struct cli_keys *ks)
{
	char domain[HSM_DOMAIN_MAX + 1];
	int r;

	if ((r = cli_conf_load(a->conf_path, c)) != 0)
		return r;
	cli_toks_init(ts, *c);
	if (a->domain != NULL && (r = cli_domain_norm(a->domain, domain, sizeof(domain))) != 0)
		return r;
	if ((r = cli_keys_gather(ts, a->domain != NULL ? domain : NULL, ks)) != 0)
		return r;
	cli_keys_sort(ks);
	return 0;
}

/* Width of the widest value of a column. */
static int
width(const struct cli_keys *ks, size_t off, int min)
{
	size_t i, n;
	int w = min;

	for (i = 0; i < ks->n; i++) {
		n = strlen((const char *)&ks->v[i].k.meta + off);
		if ((int)n > w)
			w = (int)n;
	}
	return w;
}

static int
list_row(struct dk_buf *out, const struct cli_key *ck, int wd, int ws, const char *check)
{
	const struct hsm_key_meta *m = &ck->k.meta;
	char created[32], bits[16];

	dk_time_rfc3339((time_t)m->created, created, sizeof(created));
	if (ck->k.type == HSM_KEY_RSA)
		snprintf(bits, sizeof(bits), "%u", ck->k.bits);
	else
		snprintf(bits, sizeof(bits), "-");
	return dk_buf_printf(out, "%-*s  %-*s  %-14s  %4s  %-7s  %-8s  %-12s  %-20s  %-16s  %s\n",
	    wd, m->domain, ws, m->selector, m->alg, bits, m->slot, m->state, ck->tok->conf->name,
	    created, ck->k.id_hex, check);
}

/*
 * A key that a daemon (or another command) destroyed between our listing
 * and the reads of its objects is not an error: it is simply not listed.
 */
static int
skip_vanished(const struct cli_key *ck)
{
	if (!cli_key_vanished(ck->tok, &ck->k))
		return 0;
	cli_warn("key %s (%s._domainkey.%s) was destroyed while it was being listed; skipped",
	    ck->k.id_hex, ck->k.meta.selector, ck->k.meta.domain);
	return 1;
}

/* Check every key as dkimkeepd does and write the list as text or JSON. */
static int
list_write(const struct cli_keys *ks, int json, struct dk_buf *out)
{
	int wd = width(ks, offsetof(struct hsm_key_meta, domain), 6);
	int ws = width(ks, offsetof(struct hsm_key_meta, selector), 8);
	char why[WHY_MAX];
	struct dk_json j;
	size_t i;
	int r, weak, usable;

	dk_json_init(&j, out);
	if (json)
		dk_json_arr_open(&j, NULL);
	else if (ks->n > 0 && (r = dk_buf_printf(out,
	                           "%-*s  %-*s  %-14s  %4s  %-7s  %-8s  %-12s  %-20s  %-16s  %s\n",
	                           wd, "DOMAIN", ws, "SELECTOR", "ALG", "BITS", "SLOT", "STATE",
	                           "TOKEN", "CREATED", "KEY_ID", "CHECK")) != 0)
		return r;
	for (i = 0; i < ks->n; i++) {
		weak = 0;
		r = hsm_key_check(ks->v[i].tok->s, &ks->v[i].k, &weak, why, sizeof(why));
		if (r != 0 && r != DK_ERR_KEY_HYGIENE && skip_vanished(&ks->v[i]))
			continue;
		if (r != 0 && r != DK_ERR_KEY_HYGIENE)
			return r;
		usable = r == 0;
		if (!usable && !json)
			cli_warn("%s", why);
		if (json)
			cli_key_json(&j, NULL, &ks->v[i], 1, usable, weak, why);
		else if ((r = list_row(out, &ks->v[i], wd, ws,
		              !usable ? "REFUSED"
		              : weak  ? "weak"
		                      : "ok")) != 0)
			return r;
	}
	if (json) {
		dk_json_arr_close(&j);
		if ((r = dk_json_finish(&j)) != 0 || (r = dk_buf_putc(out, '\n')) != 0)
			return r;
	}
	return 0;
}

static int
dns_write(const struct cli_keys *ks, int json, struct dk_buf *out)
{
	struct dk_json j;
	size_t i;
	int r;

	dk_json_init(&j, out);
	if (json)
		dk_json_arr_open(&j, NULL);
	for (i = 0; i < ks->n; i++) {
		if (json)
			r = cli_dns_json(&j, NULL, &ks->v[i]);
		else if ((r = cli_dns_line(ks->v[i].tok, &ks->v[i].k, out)) == 0)
			r = dk_buf_putc(out, '\n');
		if (r != 0 && r != DK_ERR_NOMEM && r != DK_ERR_TOO_LARGE &&
		    skip_vanished(&ks->v[i]))
			continue; /* the value is read before anything is written */
		if (r != 0)
			return r;
	}
	if (json) {
		dk_json_arr_close(&j);
		if ((r = dk_json_finish(&j)) != 0 || (r = dk_buf_putc(out, '\n')) != 0)
			return r;
	}
	return 0;
}

static int
key_show(int argc, char **argv, const struct cli_ctx *ctx, int dns)
{
	struct key_args a = {.conf_path = ctx->conf_path};
	struct dk_conf *c = NULL;
	struct cli_toks ts;
	struct cli_keys ks = {NULL, 0};
	struct dk_buf out;
	int code, r;

	code = key_parse(argc, argv, dns ? "dns" : "list", dns ? dns_usage : list_usage,
	    OPT(O_DOMAIN) | OPT(O_JSON), &a);
	if (code >= 0)
		return code;
	dk_buf_init(&out, OUT_MAX);
	cli_toks_init(&ts, NULL);
	if ((r = gather(&a, &c, &ts, &ks)) == 0)
		r = dns ? dns_write(&ks, a.json, &out) : list_write(&ks, a.json, &out);
	if (r == 0)
		fputs(dk_buf_str(&out), stdout);
	dk_buf_free(&out);
	cli_keys_free(&ks);
	cli_toks_close(&ts);
	dk_conf_free(c);
	return r == 0 ? EX_OK
	              : cli_fail(r, "%s", dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
}

int
cli_key_main(int argc, char **argv, const struct cli_ctx *ctx)
{
	if (argc < 2) {
		fputs(key_usage, stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fputs(key_usage, stdout);
		return EX_OK;
	}
	if (strcmp(argv[1], "generate") == 0)
		return key_generate(argc - 1, argv + 1, ctx);
	if (strcmp(argv[1], "import") == 0)
		return key_import(argc - 1, argv + 1, ctx);
	if (strcmp(argv[1], "list") == 0)
		return key_show(argc - 1, argv + 1, ctx, 0);
	if (strcmp(argv[1], "dns") == 0)
		return key_show(argc - 1, argv + 1, ctx, 1);
	if (strcmp(argv[1], "drill") == 0)
		return cli_drill_main(argc - 1, argv + 1, ctx);
	if (cli_rotate_is(argv[1]))
		return cli_rotate_main(argc - 1, argv + 1, ctx);
	return cli_fail(
	    DK_ERR_USAGE, "unknown command \"key %s\"; see \"dkimkeep key --help\"", argv[1]);
}
