/*
 * cli_audit.c - "dkimkeep audit verify|show|pubkey": checking the audit log
 * and exporting the key that verifies its checkpoints (docs/audit.md).
 * "audit show" is in cli_audit_show.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit/dka_file.h"
#include "audit/dka_verify.h"
#include "client/cli.h"
#include "client/cli_audit.h"
#include "client/cli_audit_log.h"
#include "client/cli_tokens.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "common/dk_json.h"

#define PUBKEY_FILE_MAX (64 * 1024)
#define FILES_MAX       4096
#define OUT_MAX         (1024 * 1024)

static const char audit_usage[] =
    "usage: dkimkeep audit verify FILE... [--pubkey F]... [--no-token] [--json]\n"
    "       dkimkeep audit show FILE... [--since T] [--domain D] [--client C]\n"
    "                           [--message-id ID] [--json]\n"
    "       dkimkeep audit pubkey [--json]\n"
    "\n"
    "The audit log: one JSON line per signature request and per administrative act,\n"
    "chained by hashes and sealed by checkpoints that a key in the token signs.\n"
    "\"dkimkeep audit COMMAND --help\" explains one command; docs/audit.md has it all.\n";

static const char verify_usage[] =
    "usage: dkimkeep [-c FILE] audit verify FILE... [--pubkey F]... [--no-token] [--json]\n"
    "\n"
    "Checks audit log files, given oldest first (e.g. audit.jsonl.2 audit.jsonl.1\n"
    "audit.jsonl): every line is a record, sequence numbers follow each other, each line\n"
    "carries the SHA-256 of the line before it (across files too), and every checkpoint's\n"
    "Ed25519 signature verifies over its place in the chain.  With the config's audit\n"
    "token at hand it also reads the newest checkpoint the token remembers: a log cut\n"
    "back past it is caught.  The first bad line is named with what is wrong with it:\n"
    "a record edited, deleted, inserted or moved; a file cut short; a forged or\n"
    "replayed checkpoint.\n"
    "\n"
    "Options:\n"
    "  --pubkey F   the audit public key(s), PEM, from \"dkimkeep audit pubkey\"; may be\n"
    "               given more than once (a re-initialized token has a new key)\n"
    "  --no-token   do not open the audit token (only --pubkey keys; no truncation check)\n"
    "  --json       one JSON document: intact, problem {kind, file, line, seq, what},\n"
    "               counts, anchor, notes\n"
    "  -c FILE      configuration file (its audit token gives the keys and the anchor)\n"
    "\n"
    "Exit codes: 0 intact; 65 not intact (the first problem on stderr); 64 usage;\n"
    "69 no public key to check checkpoints with; 74 a file cannot be read.\n";

static const char pubkey_usage[] =
    "usage: dkimkeep [-c FILE] audit pubkey [--json]\n"
    "\n"
    "Prints the public keys (PEM) that verify the audit log's checkpoints, from the audit\n"
    "token ([daemon] audit_token, else the first [token]); the key pair is made there\n"
    "if it does not exist yet.  Keep the output beside the logs: a reviewer who has the\n"
    "files but not the token checks them with \"dkimkeep audit verify --pubkey F\".\n"
    "\n"
    "Exit codes: 0 printed; 64 usage; 69 the token cannot be used; 77 PIN refused;\n"
    "78 bad config.\n";

/* ---- public keys ---- */

/* Every Ed25519 public key (PEM SubjectPublicKeyInfo) in path, appended to keys. */
static int
read_pubkeys(const char *path, uint8_t (*keys)[DKA_PUB_LEN], size_t max, size_t *n)
{
	BIO *bio = NULL;
	EVP_PKEY *pk;
	size_t len, before = *n;
	int r = 0;

	if ((bio = BIO_new_file(path, "r")) == NULL)
		return dk_err_set(DK_ERR_IO, "cannot read the public key file %s", path);
	while ((pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)) != NULL) {
		len = DKA_PUB_LEN;
		if (EVP_PKEY_get_id(pk) != EVP_PKEY_ED25519 || *n >= max ||
		    EVP_PKEY_get_raw_public_key(pk, keys[*n], &len) != 1 || len != DKA_PUB_LEN) {
			r = dk_err_set(DK_ERR_PARSE,
			    "%s holds a key that is not an Ed25519 audit key (or more than %zu); "
			    "export them with \"dkimkeep audit pubkey\"",
			    path, max);
			EVP_PKEY_free(pk);
			goto out;
		}
		(*n)++;
		EVP_PKEY_free(pk);
		if (BIO_tell(bio) > PUBKEY_FILE_MAX)
			break;
	}
	if (*n == before)
		r = dk_err_set(DK_ERR_PARSE, "%s holds no PEM public key", path);
out:
	BIO_free(bio);
	return r;
}

static int
pem_of(const uint8_t pub[DKA_PUB_LEN], struct dk_buf *out)
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, DKA_PUB_LEN);
	BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int r = DK_ERR_INTERNAL;

	if (pk != NULL && bio != NULL && PEM_write_bio_PUBKEY(bio, pk) == 1 &&
	    (len = BIO_get_mem_data(bio, &data)) > 0)
		r = dk_buf_put(out, data, (size_t)len);
	BIO_free(bio);
	EVP_PKEY_free(pk);
	return r;
}

/* ---- verify ---- */

struct verify_args {
	const char *conf_path;
	const char *pubkeys[DKA_VERIFY_KEYS];
	size_t npubkeys;
	int json, no_token;
	const char *const *files;
	size_t nfiles;
};

static int
verify_parse(int argc, char **argv, struct verify_args *a)
{
	static const struct option longopts[] = {{"pubkey", required_argument, NULL, 'p'},
	    {"no-token", no_argument, NULL, 'n'}, {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			a->conf_path = optarg;
			break;
		case 'p':
			if (a->npubkeys >= DKA_VERIFY_KEYS)
				return cli_fail(DK_ERR_USAGE, "audit verify: at most %d --pubkey",
				    DKA_VERIFY_KEYS);
			a->pubkeys[a->npubkeys++] = optarg;
			break;
		case 'n':
			a->no_token = 1;
			break;
		case 'j':
			a->json = 1;
			break;
		case 'h':
			fputs(verify_usage, stdout);
			return EX_OK;
		default:
			return cli_fail(DK_ERR_USAGE,
			    "audit verify: bad option \"%s\"; see \"dkimkeep audit verify --help\"",
			    argv[optind - 1]);
		}
	}
	if (optind >= argc || argc - optind > FILES_MAX)
		return cli_fail(DK_ERR_USAGE, "audit verify needs the log files, oldest first; see "
		                              "\"dkimkeep audit verify --help\"");
	a->files = (const char *const *)(argv + optind);
	a->nfiles = (size_t)(argc - optind);
	return -1;
}

/* Keys and anchor from the audit token; why says what went wrong when it cannot be used. */
static int
verify_token(const char *conf_path, uint8_t (*keys)[DKA_PUB_LEN], size_t *nkeys,
    struct dka_verify_opts *o, char *why, size_t whylen)
{
	uint8_t(*tk)[HSM_AUDIT_PUB_LEN] = NULL;
	struct hsm_audit_anchor an;
	struct cli_audit_tok at;
	struct dk_conf *c = NULL;
	size_t n = 0, i;
	int r;

	memset(&at, 0, sizeof(at));
	if ((r = cli_conf_load(conf_path, &c)) != 0 || (r = cli_audit_tok_open(c, 0, &at)) != 0 ||
	    (r = hsm_audit_pubkeys(at.s, &tk, &n)) != 0)
		goto out;
	for (i = 0; i < n && *nkeys < DKA_VERIFY_KEYS; i++)
		memcpy(keys[(*nkeys)++], tk[i], DKA_PUB_LEN);
	if ((r = hsm_audit_anchor_get(at.s, &an)) == 0) {
		o->have_anchor = 1;
		o->anchor.seq = an.seq;
		memcpy(o->anchor.hash, an.hash, sizeof(an.hash));
		o->anchor_time = an.time;
	} else if (r == DK_ERR_NOT_FOUND) {
		r = 0;
		snprintf(why, whylen, "the audit token holds no anchor yet");
	}
out:
	if (r != 0)
		snprintf(why, whylen, "%s", dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
	free(tk);
	cli_audit_tok_close(&at);
	dk_conf_free(c);
	return r;
}

static void
verify_json(const struct verify_args *a, const struct dka_verify_report *rep,
    const struct dka_verify_opts *o, const char *token_note, struct dk_buf *out)
{
	char fp[2 * DKA_FP_LEN + 1];
	struct dk_json j;
	size_t i;

	dk_json_init(&j, out);
	dk_json_obj_open(&j, NULL);
	dk_json_bool(&j, "intact", rep->intact);
	dk_json_arr_open(&j, "files");
	for (i = 0; i < a->nfiles; i++)
		dk_json_str(&j, NULL, a->files[i]);
	dk_json_arr_close(&j);
	if (rep->intact) {
		dk_json_null(&j, "problem");
	} else {
		dk_json_obj_open(&j, "problem");
		dk_json_str(&j, "kind", dka_problem_name(rep->problem));
		dk_json_str(&j, "file", rep->file);
		dk_json_uint(&j, "line", rep->line);
		dk_json_uint(&j, "seq", rep->seq);
		dk_json_str(&j, "what", rep->what);
		dk_json_obj_close(&j);
	}
	dk_json_uint(&j, "lines", rep->lines);
	dk_json_uint(&j, "first_seq", rep->first_seq);
	dk_json_uint(&j, "last_seq", rep->last_seq);
	dk_json_uint(&j, "checkpoints", rep->checkpoints);
	dk_json_uint(&j, "last_checkpoint_seq", rep->last_cp_seq);
	dk_json_uint(&j, "unsealed", rep->unsealed);
	dk_json_obj_open(&j, "anchor");
	dk_json_bool(&j, "read", o->have_anchor);
	if (o->have_anchor)
		dk_json_uint(&j, "seq", o->anchor.seq);
	dk_json_bool(&j, "checked", rep->anchor_checked);
	if (token_note[0])
		dk_json_str(&j, "note", token_note);
	dk_json_obj_close(&j);
	dk_json_arr_open(&j, "keys");
	for (i = 0; i < o->nkeys; i++) {
		dka_key_fp(o->keys[i], fp);
		dk_json_str(&j, NULL, fp);
	}
	dk_json_arr_close(&j);
	dk_json_arr_open(&j, "notes");
	for (i = 0; i < rep->nnotes; i++)
		dk_json_str(&j, NULL, rep->notes[i]);
	dk_json_arr_close(&j);
	dk_json_obj_close(&j);
	if (dk_json_finish(&j) == 0)
		(void)dk_buf_putc(out, '\n');
}

static void
verify_text(const struct dka_verify_report *rep, const struct dka_verify_opts *o,
    const char *token_note, struct dk_buf *out)
{
	size_t i;

	(void)dk_buf_printf(out,
	    "intact: %zu file%s, %llu records, seq %llu to %llu, %llu checkpoint%s verified",
	    rep->files, rep->files == 1 ? "" : "s", (unsigned long long)rep->lines,
	    (unsigned long long)rep->first_seq, (unsigned long long)rep->last_seq,
	    (unsigned long long)rep->checkpoints, rep->checkpoints == 1 ? "" : "s");
	if (rep->last_cp_seq > 0)
		(void)dk_buf_printf(
		    out, " (the last at seq %llu)", (unsigned long long)rep->last_cp_seq);
	(void)dk_buf_puts(out, "\n");
	if (rep->anchor_checked)
		(void)dk_buf_printf(out,
		    "the token's newest checkpoint (seq %llu) is in the log: it was not cut back\n",
		    (unsigned long long)o->anchor.seq);
	if (token_note[0])
		(void)dk_buf_printf(out, "note: audit token not used: %s\n", token_note);
	for (i = 0; i < rep->nnotes; i++)
		(void)dk_buf_printf(out, "note: %s\n", rep->notes[i]);
}

static int
audit_verify(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct verify_args a = {.conf_path = ctx->conf_path};
	uint8_t keys[DKA_VERIFY_KEYS][DKA_PUB_LEN];
	struct dka_verify_report *rep = NULL;
	struct dka_verify_opts o;
	char token_note[600] = "";
	struct dk_buf out;
	size_t nkeys = 0, i;
	int r, code;

	if ((code = verify_parse(argc, argv, &a)) >= 0)
		return code;
	memset(&o, 0, sizeof(o));
	dk_buf_init(&out, OUT_MAX);
	for (i = 0; i < a.npubkeys; i++) {
		if ((r = read_pubkeys(a.pubkeys[i], keys, DKA_VERIFY_KEYS, &nkeys)) != 0) {
			code = cli_fail(
			    r == DK_ERR_IO ? DK_ERR_IO : DK_ERR_USAGE, "%s", dk_err_detail());
			goto out;
		}
	}
	if (a.no_token)
		snprintf(token_note, sizeof(token_note), "--no-token");
	else if ((r = verify_token(
	              a.conf_path, keys, &nkeys, &o, token_note, sizeof(token_note))) != 0 &&
	         a.npubkeys == 0) {
		code = cli_fail(
		    r, "audit verify: %s; or give the public key with --pubkey F", token_note);
		goto out;
	}
	if (nkeys == 0) {
		code = cli_fail(DK_ERR_UNAVAILABLE,
		    "audit verify: no public key to check checkpoints with; give --pubkey F (from "
		    "\"dkimkeep audit pubkey\")");
		goto out;
	}
	o.keys = (const uint8_t(*)[DKA_PUB_LEN])keys;
	o.nkeys = nkeys;
	if ((rep = calloc(1, sizeof(*rep))) == NULL) {
		code = cli_fail(DK_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = dka_verify(a.files, a.nfiles, &o, rep)) != 0) {
		code = cli_fail(r, "audit verify: %s", dk_err_detail());
		goto out;
	}
	if (a.json)
		verify_json(&a, rep, &o, token_note, &out);
	else if (rep->intact)
		verify_text(rep, &o, token_note, &out);
	fputs(dk_buf_str(&out), stdout);
	code = EX_OK;
	if (!rep->intact)
		code =
		    cli_fail(DK_ERR_PARSE, "audit log NOT intact: %s line %llu (seq %llu): %s: %s",
		        rep->file, (unsigned long long)rep->line, (unsigned long long)rep->seq,
		        dka_problem_name(rep->problem), rep->what);
out:
	free(rep);
	dk_buf_free(&out);
	return code;
}

/* ---- pubkey ---- */

static int
pubkey_print(struct cli_audit_tok *at, int json)
{
	uint8_t(*keys)[HSM_AUDIT_PUB_LEN] = NULL;
	char fp[2 * DKA_FP_LEN + 1];
	struct dk_buf out, pem;
	struct dk_json j;
	size_t n = 0, i;
	int r;

	dk_buf_init(&out, OUT_MAX);
	dk_buf_init(&pem, 4096);
	dk_json_init(&j, &out);
	if ((r = hsm_audit_pubkeys(at->s, &keys, &n)) != 0)
		goto out;
	if (json)
		dk_json_arr_open(&j, NULL);
	for (i = 0; i < n; i++) {
		dka_key_fp(keys[i], fp);
		dk_buf_reset(&pem);
		if ((r = pem_of(keys[i], &pem)) != 0)
			goto out;
		if (json) {
			dk_json_obj_open(&j, NULL);
			dk_json_str(&j, "key", fp);
			dk_json_str(&j, "token", hsm_token_label(at->t));
			dk_json_bool(
			    &j, "current", memcmp(keys[i], at->keys.pubkey, DKA_PUB_LEN) == 0);
			dk_json_str(&j, "pem", dk_buf_str(&pem));
			dk_json_obj_close(&j);
		} else {
			(void)dk_buf_printf(&out,
			    "# dkimkeep audit checkpoint key %s%s, token \"%s\" ([token %s])\n%s",
			    fp,
			    memcmp(keys[i], at->keys.pubkey, DKA_PUB_LEN) == 0 ? " (in use)" : "",
			    hsm_token_label(at->t), at->name, dk_buf_str(&pem));
		}
	}
	if (json) {
		dk_json_arr_close(&j);
		if ((r = dk_json_finish(&j)) != 0 || (r = dk_buf_putc(&out, '\n')) != 0)
			goto out;
	}
	fputs(dk_buf_str(&out), stdout);
	r = 0;
out:
	free(keys);
	dk_buf_free(&out);
	dk_buf_free(&pem);
	return r;
}

static int
audit_pubkey(int argc, char **argv, const struct cli_ctx *ctx)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *conf_path = ctx->conf_path;
	struct dka_file f = {.fd = -1};
	struct cli_audit_tok at;
	struct dk_conf *c = NULL;
	int opt, json = 0, r;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		if (opt == 'c') {
			conf_path = optarg;
		} else if (opt == 'j') {
			json = 1;
		} else if (opt == 'h') {
			fputs(pubkey_usage, stdout);
			return EX_OK;
		} else {
			return cli_fail(DK_ERR_USAGE,
			    "audit pubkey: bad option \"%s\"; see \"dkimkeep audit pubkey --help\"",
			    argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cli_fail(
		    DK_ERR_USAGE, "audit pubkey takes no argument \"%s\"", argv[optind]);
	memset(&at, 0, sizeof(at));
	if ((r = cli_conf_load(conf_path, &c)) != 0)
		goto out;
	/*
	 * Making the key pair happens under the log's lock, as the daemon does it;
	 * a reviewer who may not write the log still gets the keys that exist.
	 */
	if (c->daemon.audit_log != NULL && dka_file_open(c->daemon.audit_log, &f) == 0)
		(void)dka_file_lock(&f, 10000);
	if ((r = cli_audit_tok_open(c, f.locked || c->daemon.audit_log == NULL, &at)) != 0)
		goto out;
	dka_file_unlock(&f);
	r = pubkey_print(&at, json);
out:
	cli_audit_tok_close(&at);
	dka_file_free(&f);
	dk_conf_free(c);
	return r == 0 ? EX_OK
	              : cli_fail(r, "audit pubkey: %s",
	                    dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
}

int
cli_audit_main(int argc, char **argv, const struct cli_ctx *ctx)
{
	if (argc < 2) {
		fputs(audit_usage, stderr);
		return EX_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fputs(audit_usage, stdout);
		return EX_OK;
	}
	if (strcmp(argv[1], "verify") == 0)
		return audit_verify(argc - 1, argv + 1, ctx);
	if (strcmp(argv[1], "show") == 0)
		return cli_audit_show(argc - 1, argv + 1, ctx);
	if (strcmp(argv[1], "pubkey") == 0)
		return audit_pubkey(argc - 1, argv + 1, ctx);
	return cli_fail(
	    DK_ERR_USAGE, "unknown command \"audit %s\"; see \"dkimkeep audit --help\"", argv[1]);
}
