/*
 * cli_audit_log.c - records of the security officer's acts in the audit
 * log, written by the command line beside the daemon (flock serializes the
 * two), each sealed at once by a checkpoint.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/dka_file.h"
#include "audit/dka_rec.h"
#include "client/cli_audit_log.h"
#include "common/dk_err.h"

#define LOCK_TIMEOUT_MS 10000 /* the daemon holds the lock for one batch at a time */

int
cli_audit_tok_open(const struct dk_conf *conf, int create, struct cli_audit_tok *at)
{
	const struct dk_conf_token *ct = NULL;
	int r;

	memset(at, 0, sizeof(*at));
	if (conf->daemon.audit_token != NULL)
		ct = dk_conf_token(conf, conf->daemon.audit_token);
	else if (conf->ntokens > 0)
		ct = &conf->tokens[0];
	if (ct == NULL)
		return dk_err_set(DK_ERR_NOT_FOUND,
		    "%s has no [token] section to keep the audit keys in", conf->path);
	at->name = ct->name;
	if ((r = dk_conf_token_setenv(ct)) != 0 || (r = hsm_module_open(ct->module, &at->m)) != 0 ||
	    (r = hsm_token_open(at->m, ct->uri, &at->t)) != 0 ||
	    (r = hsm_token_login(at->t, ct->pin_file)) != 0 ||
	    (r = hsm_session_open(at->t, &at->s)) != 0 ||
	    (r = hsm_audit_keys(at->s, create, &at->keys)) != 0) {
		r = dk_err_set(r, "audit token [token %s]: %s", ct->name,
		    dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
		cli_audit_tok_close(at);
		return r;
	}
	at->name = ct->name;
	at->have_keys = 1;
	return 0;
}

void
cli_audit_tok_close(struct cli_audit_tok *at)
{
	hsm_session_close(at->s);
	if (at->t != NULL)
		hsm_token_close(at->t); /* drops the token's reference on the module */
	if (at->m != NULL)
		hsm_module_close(at->m); /* and ours */
	memset(at, 0, sizeof(*at));
}

static int
act_sign(
    void *arg, const uint8_t *msg, size_t len, uint8_t sig[DKA_SIG_LEN], uint8_t pub[DKA_PUB_LEN])
{
	struct cli_audit_tok *at = arg;
	int r;

	if ((r = hsm_audit_sign(at->s, &at->keys, msg, len, sig)) != 0)
		return r;
	memcpy(pub, at->keys.pubkey, DKA_PUB_LEN);
	return 0;
}

static void
opt_str(struct dk_json *j, const char *key, const char *v)
{
	if (v != NULL && v[0])
		dk_json_str(j, key, v);
}

/* Who did it: the real user (not a name from the environment), and sudo's word for whom. */
static void
act_who(struct dk_json *j)
{
	struct passwd pw, *pwp = NULL;
	char buf[1024];
	const char *sudo = getenv("SUDO_USER");

	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &pwp) == 0 && pwp != NULL)
		dk_json_str(j, "user", pw.pw_name);
	dk_json_uint(j, "uid", (uint64_t)getuid());
	dk_json_uint(j, "gid", (uint64_t)getgid());
	dk_json_int(j, "pid", (int64_t)getpid());
	if (sudo != NULL && sudo[0] && strlen(sudo) <= 64)
		dk_json_str(j, "sudo_user", sudo);
}

static int
act_record(struct dka_batch *b, const char *event, int status, const char *why,
    const struct cli_audit_what *w)
{
	struct dk_json *j;

	j = dka_rec_begin(b, event, dka_now_us());
	dk_json_str(j, "outcome", status == 0 ? "ok" : "failed");
	act_who(j);
	opt_str(j, "token", w->token);
	opt_str(j, "label", w->label);
	opt_str(j, "domain", w->domain);
	opt_str(j, "selector", w->selector);
	opt_str(j, "alg", w->alg);
	opt_str(j, "slot", w->slot);
	opt_str(j, "key_id", w->key_id);
	opt_str(j, "state", w->state);
	if (status != 0)
		opt_str(j, "error", why);
	else
		opt_str(j, "detail", w->detail);
	return dka_rec_end(b);
}

/* Record and checkpoint, with the log locked; the token is optional. */
static int
act_write(struct dka_file *f, struct cli_audit_tok *at, const char *event, int status,
    const char *why, const struct cli_audit_what *w)
{
	struct hsm_audit_anchor an;
	struct dka_head anchor, *ap = NULL;
	struct dka_batch b;
	int r;

	memset(&b, 0, sizeof(b));
	if ((r = dka_file_lock(f, LOCK_TIMEOUT_MS)) != 0)
		goto out;
	if (f->empty && !f->head_known && at->have_keys && hsm_audit_anchor_get(at->s, &an) == 0) {
		anchor.seq = an.seq;
		memcpy(anchor.hash, an.hash, sizeof(anchor.hash));
		ap = &anchor;
	}
	if ((r = dka_file_batch(f, &b, ap, "admin", "dkimkeep")) != 0 ||
	    (r = act_record(&b, event, status, why, w)) != 0)
		goto out;
	if (at->have_keys && dka_batch_checkpoint(&b, "admin", dka_now_us(), act_sign, at) != 0)
		fprintf(stderr, "dkimkeep: warning: the audit record is not sealed: %s\n",
		    dk_err_detail());
	if ((r = dka_file_commit(f, &b)) != 0)
		goto out;
	if (b.has_cp) {
		an.seq = b.cp.seq;
		memcpy(an.hash, b.cp.hash, sizeof(an.hash));
		an.time = b.cp_us / 1000000;
		if (hsm_audit_anchor_set(at->s, &an) != 0)
			fprintf(stderr,
			    "dkimkeep: warning: the audit token's anchor stays behind: %s\n",
			    dk_err_detail());
	}
out:
	dka_file_unlock(f);
	dka_batch_free(&b);
	return r;
}

int
cli_audit_act(
    const struct dk_conf *conf, const char *event, int status, const struct cli_audit_what *what)
{
	struct dka_file f = {.fd = -1};
	struct cli_audit_tok at;
	char why[512];
	int r;

	if (conf == NULL || conf->daemon.audit_log == NULL)
		return 0;
	snprintf(why, sizeof(why), "%s", dk_err_detail());
	memset(&at, 0, sizeof(at));
	if ((r = dka_file_open(conf->daemon.audit_log, &f)) != 0)
		goto out;
	/* Without the token the record is still written; the daemon's next checkpoint seals it. */
	if (cli_audit_tok_open(conf, 1, &at) != 0)
		fprintf(
		    stderr, "dkimkeep: warning: no checkpoint for this act: %s\n", dk_err_detail());
	r = act_write(&f, &at, event, status, why, what);
out:
	if (r != 0)
		fprintf(stderr,
		    "dkimkeep: warning: the audit record of this %s could not be written: %s; fix "
		    "the audit log (%s) and note the act by hand\n",
		    event, dk_err_detail(), conf->daemon.audit_log);
	cli_audit_tok_close(&at);
	dka_file_free(&f);
	/* The caller reports its own error, if any, from the detail it had. */
	if (status != 0)
		dk_err_set(status < 0 ? status : DK_ERR_INTERNAL, "%s", why);
	return r;
}

int
cli_audit_key_cmd(const struct dk_conf *conf, const char *cmd, int status, const char *domain,
    const char *selector)
{
	struct cli_audit_what w;
	char event[48];

	memset(&w, 0, sizeof(w));
	w.domain = domain;
	w.selector = selector;
	snprintf(event, sizeof(event), "key.%s", cmd);
	return cli_audit_act(conf, event, status, &w);
}

int
cli_audit_rot(const struct dk_conf *conf, const struct rot_event *ev)
{
	struct cli_audit_what w;
	char event[48];
	int failed = ev->level >= ROT_WARN;

	if (ev->level == ROT_INFO || conf == NULL || conf->daemon.audit_log == NULL)
		return 0;
	memset(&w, 0, sizeof(w));
	w.token = ev->token;
	w.domain = ev->domain;
	w.selector = ev->selector;
	w.alg = ev->alg;
	w.slot = ev->slot;
	w.state = ev->state;
	w.detail = ev->text;
	snprintf(event, sizeof(event), "key.%s", ev->event);
	if (failed)
		dk_err_set(DK_ERR_UNAVAILABLE, "%s", ev->text != NULL ? ev->text : "");
	return cli_audit_act(conf, event, failed ? DK_ERR_UNAVAILABLE : 0, &w);
}

int
cli_audit_key(const struct dk_conf *conf, const char *event, int status, const char *token,
    const struct hsm_key_meta *meta, const char *key_id)
{
	struct cli_audit_what w;

	memset(&w, 0, sizeof(w));
	w.token = token;
	if (meta != NULL) {
		w.domain = meta->domain;
		w.selector = meta->selector;
		w.alg = meta->alg;
		w.slot = meta->slot;
		w.state = meta->state;
	}
	w.key_id = key_id;
	return cli_audit_act(conf, event, status, &w);
}
