/*
 * cli_tokens.h - what the token and key commands share: the config, the
 * tokens it names (opened and logged in), the dkimkeep keys in them, and
 * the DNS records of those keys.
 *
 * Functions return 0 or a dk_err code with a complete operator message in
 * dk_err_detail() (what failed, where in the config, what to do); callers
 * print it with cli_fail(r, "%s", dk_err_detail()).
 */
#ifndef CLI_TOKENS_H
#define CLI_TOKENS_H

#include <stddef.h>
#include <time.h>

#include "common/dk_buf.h"
#include "common/dk_config.h"
#include "hsm/hsm.h"

#define CLI_SELECTOR_TEMPLATE "s{date:%Y%m}-{alg}" /* when the config gives none */

/* Load the config at path.  Every failure is DK_ERR_CONFIG (exit 78) but NOMEM. */
int cli_conf_load(const char *path, struct dk_conf **out);

/* One configured token, opened for the security officer. */
struct cli_tok {
	const struct dk_conf_token *conf; /* its [token NAME] section */
	struct hsm_module *m;
	struct hsm_token *t;
	struct hsm_session *s;
};

/* The tokens one command has opened, each once. */
struct cli_toks {
	const struct dk_conf *conf;
	struct cli_tok v[DK_CONF_MAX_TOKENS];
	size_t n;
};

void cli_toks_init(struct cli_toks *ts, const struct dk_conf *conf);
/*
 * The token of the [token name] section: opened, logged in with its
 * pin_file (once, never retried) and with a session, or the one already
 * opened.  A PIN file that cannot be read or is readable by others is a
 * config error (exit 78); a refused PIN exit 77.
 */
int cli_toks_get(struct cli_toks *ts, const char *name, struct cli_tok **out);
void cli_toks_close(struct cli_toks *ts);

/* A key and the token it lives in. */
struct cli_key {
	struct hsm_key k;
	struct cli_tok *tok;
};

struct cli_keys {
	struct cli_key *v;
	size_t n;
};

/*
 * Append the dkimkeep keys of tok to ks; a key already there (the same
 * token reached under two names) is not added twice.
 */
int cli_keys_load(struct cli_keys *ks, struct cli_tok *tok);
/*
 * Is k gone from tok's token (destroyed by a daemon or another command
 * since it was listed)?  1 when a fresh listing does not hold its id, 0
 * when it is still there or the token cannot be listed.
 */
int cli_key_vanished(struct cli_tok *tok, const struct hsm_key *k);
/* Sort by domain, algorithm, slot, creation. */
void cli_keys_sort(struct cli_keys *ks);
void cli_keys_free(struct cli_keys *ks);

/*
 * Open the tokens that hold keys of domain (its primary and backup), or of
 * every [token] section when domain is NULL, and load their keys; with a
 * domain, only that domain's keys are kept.
 */
int cli_keys_gather(struct cli_toks *ts, const char *domain, struct cli_keys *ks);
/*
 * The same with the records of destroyed keys that are kept until DNS no
 * longer serves them (hsm_key_list_all), for "dns check".
 */
int cli_keys_gather_all(struct cli_toks *ts, const char *domain, struct cli_keys *ks);

/*
 * The TXT value of key k (rot_rec_value; the name is rot_rec_name): "v=DKIM1; k=rsa; p=<base64
 * SPKI>" (RFC 6376 §3.6.1) or "k=ed25519; p=<base64 of 32 bytes>" (RFC 8463 §4); a revoked key has
 * an empty p= (RFC 6376 §3.6.1).
 */
int cli_dns_value(struct cli_tok *tok, const struct hsm_key *k, struct dk_buf *out);
/* value as one zone-file TXT rdata: quoted strings of at most 255 bytes. */
int cli_dns_quoted(const char *value, struct dk_buf *out);
/* The whole record line of key dns (without a newline). */
int cli_dns_line(struct cli_tok *tok, const struct hsm_key *k, struct dk_buf *out);

/* Lower-case and check a domain name given on the command line. */
int cli_domain_norm(const char *in, char *out, size_t outlen);

struct dk_json;
/*
 * A key as a JSON object: domain, alg, selector, slot, state, token,
 * token_label, created, changed, bits (RSA), key_id, uri; with checked,
 * also usable, weak and (when not usable) problem = why.
 */
void cli_key_json(struct dk_json *j, const char *key, const struct cli_key *ck, int checked,
    int usable, int weak, const char *why);
/* The DNS record of a key as a JSON object: name, type, value, state, domain, selector, alg. */
int cli_dns_json(struct dk_json *j, const char *key, const struct cli_key *ck);

/* Set the detail to "<prefix>: <the current detail>" and return r. */
int cli_err_prefix(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print "dkimkeep: warning: ..." on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* CLI_TOKENS_H */
