/*
 * hsm_token.c - finding a token by RFC 7512 URI, logging in, sessions.
 *
 * Tokens are found by label/serial through p11-kit's URI parser, never by
 * slot id: slot ids change when tokens are added (PKCS11-NOTES.md).
 */
#include <stdlib.h>
#include <string.h>

#include <p11-kit/uri.h>

#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "common/dk_log.h"
#include "common/dk_secret.h"
#include "hsm/hsm_int.h"

#define SEEN_MAX 512 /* bytes of "it sees ..." in a not-found message */

static int
uri_parse(const char *uri, P11KitUri **out)
{
	P11KitUri *u;
	int pr;

	*out = NULL;
	if ((u = p11_kit_uri_new()) == NULL)
		return DK_ERR_NOMEM;
	pr = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_TOKEN, u);
	if (pr != P11_KIT_URI_OK) {
		p11_kit_uri_free(u);
		return dk_err_set(DK_ERR_INVALID,
		    "token URI \"%s\" is not a valid RFC 7512 PKCS#11 URI (%s); "
		    "write it like pkcs11:token=LABEL",
		    uri, p11_kit_uri_message(pr));
	}
	if (p11_kit_uri_get_pin_value(u) != NULL || p11_kit_uri_get_pin_source(u) != NULL) {
		p11_kit_uri_free(u);
		return dk_err_set(DK_ERR_INVALID,
		    "token URI \"%s\" holds a PIN; PINs belong only in pin_file", uri);
	}
	if (p11_kit_uri_any_unrecognized(u)) {
		p11_kit_uri_free(u);
		return dk_err_set(DK_ERR_INVALID,
		    "token URI \"%s\" has attributes that do not describe a token; "
		    "use token=, serial=, manufacturer= or model=",
		    uri);
	}
	*out = u;
	return 0;
}

/* Append ", "label"" for each initialized token of the module to seen. */
static void
seen_add(struct dk_buf *seen, const CK_TOKEN_INFO *ti)
{
	char label[HSM_LABEL_MAX + 1];

	hsm_copy_padded(label, sizeof(label), ti->label, sizeof(ti->label));
	(void)dk_buf_printf(seen, "%s\"%s\"", seen->len > 0 ? ", " : "", label);
}

static int
token_find(struct hsm_module *m, const char *uri, CK_SLOT_ID *slot, CK_TOKEN_INFO *info)
{
	P11KitUri *u = NULL;
	CK_SLOT_ID *slots = NULL;
	CK_TOKEN_INFO ti;
	CK_ULONG n = 0, i;
	struct dk_buf seen;
	int r, matches = 0;

	dk_buf_init(&seen, SEEN_MAX);
	if ((r = uri_parse(uri, &u)) != 0)
		goto out;
	if ((r = hsm_slot_list(m, &slots, &n)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (m->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		/* Uninitialized tokens have no label: "pkcs11:" must not pick one. */
		if ((ti.flags & CKF_TOKEN_INITIALIZED) == 0)
			continue;
		seen_add(&seen, &ti);
		if (!p11_kit_uri_match_token_info(u, &ti))
			continue;
		if (matches++ == 0) {
			*slot = slots[i];
			*info = ti;
		}
	}
	if (matches == 0) {
		r = dk_err_set(DK_ERR_TOKEN_NOT_FOUND,
		    "no initialized token matches \"%s\" in module %s (it sees: %s)", uri, m->path,
		    seen.len > 0 ? dk_buf_str(&seen) : "no initialized token");
		goto out;
	}
	if (matches > 1) {
		r = dk_err_set(DK_ERR_INVALID,
		    "%d tokens match \"%s\" in module %s; add serial= to the URI to choose one",
		    matches, uri, m->path);
		goto out;
	}
	r = 0;
out:
	dk_buf_free(&seen);
	free(slots);
	p11_kit_uri_free(u);
	return r;
}

int
hsm_token_open(struct hsm_module *m, const char *uri, struct hsm_token **out)
{
	struct hsm_token *t = NULL;
	CK_TOKEN_INFO ti;
	CK_SLOT_ID slot = 0;
	int r;

	*out = NULL;
	if ((r = token_find(m, uri, &slot, &ti)) != 0)
		goto out;
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	if (pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t);
		t = NULL;
		r = DK_ERR_NOMEM;
		goto out;
	}
	if ((t->uri = strdup(uri)) == NULL) {
		pthread_mutex_destroy(&t->lock);
		r = DK_ERR_NOMEM;
		goto out;
	}
	t->slot = slot;
	hsm_copy_padded(t->label, sizeof(t->label), ti.label, sizeof(ti.label));
	hsm_copy_padded(t->serial, sizeof(t->serial), ti.serialNumber, sizeof(ti.serialNumber));
	hsm_module_ref(m);
	t->m = m;
	*out = t;
	t = NULL;
	r = 0;
out:
	free(t);
	return r;
}

void
hsm_token_close(struct hsm_token *t)
{
	if (t == NULL)
		return;
	/* Closing our last session ends the login; other tokens on the slot keep theirs. */
	if (t->have_login_session)
		(void)t->m->f->C_CloseSession(t->login_session);
	pthread_mutex_destroy(&t->lock);
	free(t->uri);
	hsm_module_close(t->m);
	free(t);
}

const char *
hsm_token_label(const struct hsm_token *t)
{
	return t->label;
}

const char *
hsm_token_serial(const struct hsm_token *t)
{
	return t->serial;
}

/* Refuse before trying when the token already says the PIN is locked. */
static int
login_precheck(struct hsm_token *t)
{
	CK_TOKEN_INFO ti;
	CK_RV rv;

	if ((rv = t->m->f->C_GetTokenInfo(t->slot, &ti)) != CKR_OK)
		return hsm_fail(rv, "token \"%s\": C_GetTokenInfo", t->label);
	if (ti.flags & CKF_USER_PIN_LOCKED)
		return hsm_fail(
		    CKR_PIN_LOCKED, "token \"%s\": login refused before trying", t->label);
	if ((ti.flags & CKF_USER_PIN_INITIALIZED) == 0)
		return hsm_fail(CKR_USER_PIN_NOT_INITIALIZED, "token \"%s\"", t->label);
	if (ti.flags & CKF_USER_PIN_FINAL_TRY)
		dk_log_warn("token \"%s\": one more wrong PIN locks the user PIN", t->label);
	return 0;
}

int
hsm_token_login(struct hsm_token *t, const char *pin_file)
{
	struct dk_secret pin = {NULL, 0};
	CK_RV rv;
	int r;

	pthread_mutex_lock(&t->lock);
	if (t->logged_in) {
		r = 0;
		goto out;
	}
	if (t->pin_refused) {
		r = dk_err_set(DK_ERR_PIN_INCORRECT,
		    "token \"%s\" refused the PIN in %s before; it is not tried again (the token "
		    "would lock): correct the PIN file and restart dkimkeepd",
		    t->label, pin_file);
		goto out;
	}
	if ((r = login_precheck(t)) != 0)
		goto out;
	if (!t->have_login_session) {
		rv = t->m->f->C_OpenSession(
		    t->slot, CKF_SERIAL_SESSION, NULL, NULL, &t->login_session);
		if (rv != CKR_OK) {
			r = hsm_fail(rv, "token \"%s\": C_OpenSession", t->label);
			goto out;
		}
		t->have_login_session = 1;
	}
	if ((r = dk_secret_read_pin(pin_file, &pin)) != 0)
		goto out;
	/* Exactly one attempt: real tokens lock the PIN after a few wrong ones. */
	rv = t->m->f->C_Login(
	    t->login_session, CKU_USER, (CK_UTF8CHAR_PTR)pin.data, (CK_ULONG)pin.len);
	dk_secret_wipe(&pin);
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		r = hsm_fail(rv, "login to token \"%s\" with the PIN in %s", t->label, pin_file);
		t->pin_refused = rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID ||
		                 rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_EXPIRED ||
		                 rv == CKR_PIN_LOCKED;
		goto out;
	}
	t->logged_in = 1;
	r = 0;
out:
	dk_secret_wipe(&pin);
	pthread_mutex_unlock(&t->lock);
	return r;
}

int
hsm_session_open(struct hsm_token *t, struct hsm_session **out)
{
	struct hsm_session *s;
	CK_RV rv;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return DK_ERR_NOMEM;
	rv =
	    t->m->f->C_OpenSession(t->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s->h);
	if (rv != CKR_OK) {
		free(s);
		return hsm_fail(rv, "token \"%s\": C_OpenSession", t->label);
	}
	s->t = t;
	s->epoch = t->m->epoch;
	*out = s;
	return 0;
}

void
hsm_session_close(struct hsm_session *s)
{
	if (s == NULL)
		return;
	/* After a re-initialization the handle may be another thread's session now. */
	if (s->epoch == s->t->m->epoch)
		(void)s->t->m->f->C_CloseSession(s->h);
	free(s);
}

int
hsm_session_ping(struct hsm_session *s)
{
	CK_SESSION_INFO si;
	CK_RV rv;

	if ((rv = s->t->m->f->C_GetSessionInfo(s->h, &si)) != CKR_OK)
		return hsm_fail(rv, "token \"%s\": C_GetSessionInfo", s->t->label);
	/* SoftHSM keeps the session of a removed token; its token info fails instead. */
	if ((rv = s->t->m->f->C_GetTokenInfo(s->t->slot, &(CK_TOKEN_INFO){0})) != CKR_OK)
		return hsm_fail(rv, "token \"%s\": C_GetTokenInfo", s->t->label);
	return 0;
}

int
hsm_token_reconnect(struct hsm_token *t, const char *pin_file)
{
	CK_TOKEN_INFO ti;
	CK_SLOT_ID slot = 0;
	int r;

	pthread_mutex_lock(&t->lock);
	if ((r = hsm_module_reinit(t->m)) != 0)
		goto out;
	/* The login and its session ended with the old initialization. */
	t->have_login_session = 0;
	t->logged_in = 0;
	if ((r = token_find(t->m, t->uri, &slot, &ti)) != 0)
		goto out;
	t->slot = slot;
	r = 0;
out:
	pthread_mutex_unlock(&t->lock);
	return r != 0 ? r : hsm_token_login(t, pin_file);
}
