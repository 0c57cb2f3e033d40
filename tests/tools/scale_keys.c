/*
 * scale_keys.c - give every [domain] of a config an active key, in one
 * process (tests/integration/test_scale_capacity.py, docs/scaling.md
 * "Capacity planning").
 *
 *   scale_keys CONFIG TOKEN ALG
 *
 * For every [domain] whose primary= is [token TOKEN] and that has no key
 * of ALG (rsa-sha256 | ed25519-sha256) in that token yet, generate one in
 * the token with hsm_key_generate(), exactly as "dkimkeep key generate
 * --domain D --alg ALG --activate" makes it (slot primary, state active,
 * the same attributes and metadata object), with selector "s1-ed" or
 * "s1-rsa".  One "dkimkeep key generate" per domain re-reads every object
 * of a SoftHSM token at its C_Initialize, which made 1,000 domains take
 * 15-30 minutes; here the token is opened once.  The token's [token] env=
 * is applied as dkimkeep does.  Prints "generated N keys, M already there".
 * Exit codes: 0 done, 64 usage, others from dk_err_exit().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>

#include "common/dk_config.h"
#include "common/dk_err.h"
#include "common/dk_log.h"
#include "hsm/hsm.h"

static int
has_key(const struct hsm_key *keys, size_t n, const char *domain, const char *alg)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(keys[i].meta.domain, domain) == 0 &&
		    strcmp(keys[i].meta.alg, alg) == 0 && strcmp(keys[i].meta.slot, "primary") == 0)
			return 1;
	return 0;
}

static int
generate_all(
    const struct dk_conf *c, const struct dk_conf_token *ct, const char *alg, struct hsm_session *s)
{
	enum hsm_key_type type = strcmp(alg, "rsa-sha256") == 0 ? HSM_KEY_RSA : HSM_KEY_ED25519;
	struct hsm_key *keys = NULL, k;
	struct hsm_key_meta meta;
	size_t n = 0, i, made = 0, there = 0;
	int r;

	if ((r = hsm_key_list(s, &keys, &n)) != 0)
		goto out;
	for (i = 0; i < c->ndomains; i++) {
		const struct dk_conf_domain *d = &c->domains[i];

		if (strcmp(d->primary, ct->name) != 0)
			continue;
		if (has_key(keys, n, d->name, alg)) {
			there++;
			continue;
		}
		memset(&meta, 0, sizeof(meta));
		snprintf(meta.domain, sizeof(meta.domain), "%s", d->name);
		snprintf(meta.selector, sizeof(meta.selector), "%s",
		    type == HSM_KEY_RSA ? "s1-rsa" : "s1-ed");
		snprintf(meta.alg, sizeof(meta.alg), "%s", alg);
		snprintf(meta.slot, sizeof(meta.slot), "primary");
		snprintf(meta.state, sizeof(meta.state), "active");
		meta.created = meta.changed = (int64_t)time(NULL);
		if ((r = hsm_key_generate(s, type, (unsigned)d->rsa_bits, &meta, &k)) != 0)
			goto out;
		made++;
	}
	printf("generated %zu keys, %zu already there\n", made, there);
out:
	free(keys);
	return r;
}

int
main(int argc, char **argv)
{
	const struct dk_conf_token *ct;
	struct dk_conf *c = NULL;
	struct hsm_module *m = NULL;
	struct hsm_token *t = NULL;
	struct hsm_session *s = NULL;
	int r;

	dk_log_init("scale_keys", 0, 0);
	if (argc != 4 ||
	    (strcmp(argv[3], "rsa-sha256") != 0 && strcmp(argv[3], "ed25519-sha256") != 0)) {
		fprintf(stderr, "usage: scale_keys CONFIG TOKEN rsa-sha256|ed25519-sha256\n");
		return EX_USAGE;
	}
	if ((r = dk_conf_load(argv[1], &c)) != 0)
		goto out;
	if ((ct = dk_conf_token(c, argv[2])) == NULL) {
		r = dk_err_set(DK_ERR_CONFIG, "no [token %s] in %s", argv[2], argv[1]);
		goto out;
	}
	if ((r = dk_conf_token_setenv(ct)) != 0 || (r = hsm_module_open(ct->module, &m)) != 0 ||
	    (r = hsm_token_open(m, ct->uri, &t)) != 0 ||
	    (r = hsm_token_login(t, ct->pin_file)) != 0 || (r = hsm_session_open(t, &s)) != 0)
		goto out;
	r = generate_all(c, ct, argv[3], s);
out:
	if (r != 0)
		fprintf(stderr, "scale_keys: %s\n",
		    dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
	hsm_session_close(s);
	if (t != NULL)
		hsm_token_close(t);
	if (m != NULL)
		hsm_module_close(m);
	dk_conf_free(c);
	return r == 0 ? 0 : dk_err_exit(r);
}
