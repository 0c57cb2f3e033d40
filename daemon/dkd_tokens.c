/*
 * dkd_tokens.c - opening the configured tokens and tracking their health.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "daemon/dkd_audit.h"
#include "daemon/dkd_notify.h"
#include "daemon/dkd_tokens.h"

static int
token_open_one(const struct dk_conf_token *ct, struct dkd_token *tok)
{
	struct hsm_token *ht = NULL;
	int r;

	if ((r = dk_conf_token_setenv(ct)) != 0 ||
	    (r = hsm_module_open_own(ct->module, &tok->module)) != 0)
		goto out;
	if ((r = hsm_token_open(tok->module, ct->uri, &ht)) != 0)
		goto out;
	tok->token = ht;
	free(tok->label);
	if ((tok->label = strdup(hsm_token_label(ht))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	r = hsm_token_login(ht, ct->pin_file);
out:
	return r;
}

int
dkd_token_err_needs_operator(int err)
{
	return err == DK_ERR_PIN_INCORRECT || err == DK_ERR_PIN_LOCKED ||
	       err == DK_ERR_PIN_EXPIRED || err == DK_ERR_PIN_INVALID || err == DK_ERR_IO ||
	       err == DK_ERR_PERM || err == DK_ERR_MODULE;
}

int
dkd_token_reopen(struct dkd_token *tok, const struct dk_conf_token *ct)
{
	struct hsm_token *ht = tok->token;
	int r;

	if (ht == NULL) {
		if (tok->module == NULL)
			return dk_err_set(DK_ERR_MODULE, "[token %s]: no module loaded", tok->name);
		/* The label stays the configured URI: other threads may be logging it. */
		if ((r = hsm_token_open(tok->module, ct->uri, &ht)) != 0)
			return r;
		tok->token = ht;
		dk_log_info("token \"%s\" (%s) found", tok->name, hsm_token_label(ht));
	}
	return hsm_token_login(ht, ct->pin_file);
}

int
dkd_tokens_open(const struct dk_conf *conf, int allow_down, struct dkd_tokens *out)
{
	struct dkd_token *tok;
	size_t i;
	int r = 0;

	out->n = 0;
	if ((out->v = calloc(conf->ntokens ? conf->ntokens : 1, sizeof(*out->v))) == NULL)
		return DK_ERR_NOMEM;
	for (i = 0; i < conf->ntokens; i++) {
		tok = &out->v[i];
		pthread_mutex_init(&tok->lock, NULL);
		tok->index = i;
		out->n++;
		if ((tok->name = strdup(conf->tokens[i].name)) == NULL ||
		    (tok->label = strdup(conf->tokens[i].uri)) == NULL) {
			r = DK_ERR_NOMEM;
			goto out;
		}
		atomic_store(&tok->since, (long long)time(NULL));
		r = token_open_one(&conf->tokens[i], tok);
		if (r == 0) {
			atomic_store(&tok->up, 1);
			dk_log_info(
			    "token \"%s\" (%s) opened and logged in", tok->name, tok->label);
			continue;
		}
		/* A PIN problem never becomes "down, retry later": tokens lock. */
		if (!allow_down || dkd_token_err_needs_operator(r)) {
			dk_err_set(r, "[token %s]: %s", tok->name,
			    dk_err_detail()[0] ? dk_err_detail() : dk_strerror(r));
			goto out;
		}
		dkd_token_down(tok, r, dk_err_detail());
		/* It was never up, so dkd_token_down() said nothing: say why here. */
		dk_log_err(
		    "token \"%s\" (%s) is not available at start: %s; the daemon starts "
		    "without it (rings with a key on another token sign with that) and tries "
		    "it again at every health check",
		    tok->name, tok->label, tok->last_error);
		r = 0;
	}
out:
	if (r != 0)
		dkd_tokens_close(out);
	return r;
}

void
dkd_tokens_close(struct dkd_tokens *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		if (t->v[i].token != NULL)
			hsm_token_close(t->v[i].token);
		if (t->v[i].module != NULL)
			hsm_module_close(t->v[i].module);
		free(t->v[i].name);
		free(t->v[i].label);
		pthread_mutex_destroy(&t->v[i].lock);
	}
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

struct dkd_token *
dkd_tokens_find(struct dkd_tokens *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		if (strcmp(t->v[i].name, name) == 0)
			return &t->v[i];
	}
	return NULL;
}

void
dkd_token_note(struct dkd_token *tok, int err, const char *detail)
{
	pthread_mutex_lock(&tok->lock);
	snprintf(tok->last_error, sizeof(tok->last_error), "%s%s%s", dk_strerror(err),
	    detail != NULL && detail[0] ? ": " : "", detail != NULL ? detail : "");
	pthread_mutex_unlock(&tok->lock);
}

void
dkd_token_down(struct dkd_token *tok, int err, const char *detail)
{
	int was_up;

	dkd_token_note(tok, err, detail);
	atomic_fetch_add(&tok->errors, 1);
	atomic_fetch_add(&tok->generation, 1);
	was_up = atomic_exchange(&tok->up, 0);
	if (was_up) {
		atomic_store(&tok->since, (long long)time(NULL));
		dk_log_err("token \"%s\" (%s) is down: %s; signing moves to the backup keys; "
		           "check the HSM and its connection, the daemon retries by itself",
		    tok->name, tok->label, tok->last_error);
		dkd_notify("failover", tok->name, tok->last_error);
		dkd_audit_event("token.down", NULL, tok->name, tok->last_error);
	}
}

void
dkd_token_up(struct dkd_token *tok)
{
	if (atomic_exchange(&tok->up, 1) == 0) {
		atomic_store(&tok->since, (long long)time(NULL));
		dk_log_notice("token \"%s\" (%s) is back up; signing moves back to it", tok->name,
		    tok->label);
		dkd_notify("recovery", tok->name, "token is back up");
		dkd_audit_event("token.up", NULL, tok->name, NULL);
	}
}

void
dkd_token_last_error(struct dkd_token *tok, char *buf, size_t len)
{
	pthread_mutex_lock(&tok->lock);
	snprintf(buf, len, "%s", tok->last_error);
	pthread_mutex_unlock(&tok->lock);
}
