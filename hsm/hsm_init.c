/*
 * hsm_init.c - initializing a token: label, SO PIN, user PIN.
 *
 * C_InitToken erases everything on an initialized token, so a token that
 * already holds objects is only re-initialized when the security officer
 * says --wipe.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "common/dk_secret.h"
#include "hsm/hsm_int.h"

static int
label_valid(const char *label)
{
	size_t i, n = strlen(label);

	if (n == 0 || n > HSM_LABEL_MAX)
		return dk_err_set(DK_ERR_INVALID, "token label \"%s\" must have 1 to %d characters",
		    label, HSM_LABEL_MAX);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)label[i];

		if (c < 0x20 || c == 0x7f || c == ';' || c == '%' || c == '"')
			return dk_err_set(DK_ERR_INVALID,
			    "token label \"%s\" has a control character, ';', '%%' or '\"'; "
			    "use letters, digits, '-', '_' or '.'",
			    label);
	}
	if (label[0] == ' ' || label[n - 1] == ' ')
		return dk_err_set(
		    DK_ERR_INVALID, "token label \"%s\" must not start or end with a space", label);
	return 0;
}

/*
 * The slot to initialize: the initialized token labelled label, or else the
 * first slot with an uninitialized token.  *existing tells which.
 */
static int
init_slot(struct hsm_module *m, const char *label, CK_SLOT_ID *slot, int *existing, CK_FLAGS *flags)
{
	CK_SLOT_ID *slots = NULL;
	CK_TOKEN_INFO ti;
	CK_ULONG n = 0, i;
	char l[HSM_LABEL_MAX + 1];
	int r, found = 0, free_found = 0;

	*existing = 0;
	if ((r = hsm_slot_list(m, &slots, &n)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (m->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if ((ti.flags & CKF_TOKEN_INITIALIZED) == 0) {
			if (!free_found && !found) {
				*slot = slots[i];
				*flags = ti.flags;
			}
			free_found = 1;
			continue;
		}
		hsm_copy_padded(l, sizeof(l), ti.label, sizeof(ti.label));
		if (strcmp(l, label) != 0)
			continue;
		if (found++ > 0) {
			r = dk_err_set(DK_ERR_INVALID,
			    "several tokens of module %s are labelled \"%s\"; initialize one with "
			    "the token's own tools",
			    m->path, label);
			goto out;
		}
		*slot = slots[i];
		*flags = ti.flags;
		*existing = 1;
	}
	if (!found && !free_found) {
		r = dk_err_set(DK_ERR_TOKEN_NOT_FOUND,
		    "module %s has no uninitialized token and none labelled \"%s\" "
		    "(SoftHSM offers a new empty slot to each new process)",
		    m->path, label);
		goto out;
	}
	r = 0;
out:
	free(slots);
	return r;
}

/* How many objects one session sees (at least 1 stops the search). */
static int
any_object(struct hsm_module *m, CK_SESSION_HANDLE h, int *any)
{
	CK_OBJECT_HANDLE o;
	CK_ULONG got = 0;
	CK_RV rv;

	if ((rv = m->f->C_FindObjectsInit(h, NULL, 0)) != CKR_OK)
		return hsm_fail(rv, "C_FindObjectsInit");
	rv = m->f->C_FindObjects(h, &o, 1, &got);
	(void)m->f->C_FindObjectsFinal(h);
	if (rv != CKR_OK)
		return hsm_fail(rv, "C_FindObjects");
	*any = got > 0;
	return 0;
}

/*
 * Does the initialized token in slot hold objects?  Public ones are seen
 * without login; private ones only after a user login with the PIN given
 * for the new token (one attempt: a refusal means we cannot tell).
 */
static int
token_holds_objects(struct hsm_module *m, CK_SLOT_ID slot, CK_FLAGS flags, const char *label,
    const struct dk_secret *pin, const char *pin_file, int *holds)
{
	CK_SESSION_HANDLE h;
	CK_RV rv;
	int r, any = 0;

	*holds = 0;
	if ((rv = m->f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h)) != CKR_OK)
		return hsm_fail(rv, "token \"%s\": C_OpenSession", label);
	if ((r = any_object(m, h, &any)) != 0 || any)
		goto out;
	if ((flags & CKF_USER_PIN_INITIALIZED) == 0)
		goto out;
	rv = m->f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin->data, (CK_ULONG)pin->len);
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		r = dk_err_set(DK_ERR_EXISTS,
		    "token \"%s\" is already initialized and may hold keys: the PIN in %s was "
		    "refused (%s), so its private objects cannot be counted; to erase the token "
		    "and everything in it, add --wipe",
		    label, pin_file, hsm_rv_name(rv));
		goto out;
	}
	r = any_object(m, h, &any);
	(void)m->f->C_Logout(h);
out:
	(void)m->f->C_CloseSession(h);
	if (r == 0 && any)
		*holds = 1;
	return r;
}

/* After C_InitToken: log in as SO and set the user PIN. */
static int
init_user_pin(struct hsm_module *m, CK_SLOT_ID slot, const char *label, const struct dk_secret *so,
    const struct dk_secret *pin, const char *pin_file)
{
	CK_SESSION_HANDLE h;
	CK_RV rv;
	int r;

	rv = m->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
	if (rv != CKR_OK)
		return hsm_fail(rv, "token \"%s\": C_OpenSession after C_InitToken", label);
	rv = m->f->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR)so->data, (CK_ULONG)so->len);
	if (rv != CKR_OK) {
		r = hsm_fail(rv, "token \"%s\": security officer login after C_InitToken", label);
		goto out;
	}
	rv = m->f->C_InitPIN(h, (CK_UTF8CHAR_PTR)pin->data, (CK_ULONG)pin->len);
	(void)m->f->C_Logout(h);
	if (rv != CKR_OK) {
		r = hsm_fail(
		    rv, "token \"%s\": setting the user PIN from %s (C_InitPIN)", label, pin_file);
		goto out;
	}
	r = 0;
out:
	(void)m->f->C_CloseSession(h);
	return r;
}

int
hsm_token_init(struct hsm_module *m, const char *label, const char *so_pin_file,
    const char *pin_file, int wipe)
{
	struct dk_secret so = {NULL, 0}, pin = {NULL, 0};
	CK_UTF8CHAR padded[HSM_LABEL_MAX];
	CK_SLOT_ID slot = 0;
	CK_FLAGS flags = 0;
	CK_RV rv;
	int r, existing = 0, holds = 0;

	if ((r = label_valid(label)) != 0)
		goto out;
	if ((r = dk_secret_read_pin(so_pin_file, &so)) != 0 ||
	    (r = dk_secret_read_pin(pin_file, &pin)) != 0)
		goto out;
	if ((r = init_slot(m, label, &slot, &existing, &flags)) != 0)
		goto out;
	if (existing && !wipe) {
		r = token_holds_objects(m, slot, flags, label, &pin, pin_file, &holds);
		if (r != 0)
			goto out;
		if (holds) {
			r = dk_err_set(DK_ERR_EXISTS,
			    "token \"%s\" is already initialized and holds objects (keys); "
			    "to erase it and everything in it, add --wipe",
			    label);
			goto out;
		}
	}
	memset(padded, ' ', sizeof(padded));
	memcpy(padded, label, strlen(label));
	rv = m->f->C_InitToken(slot, (CK_UTF8CHAR_PTR)so.data, (CK_ULONG)so.len, padded);
	if (rv != CKR_OK) {
		r = hsm_fail(rv, "initializing token \"%s\" with the SO PIN in %s (C_InitToken)",
		    label, so_pin_file);
		goto out;
	}
	if (existing)
		dk_log_notice("token \"%s\" erased and initialized again", label);
	r = init_user_pin(m, slot, label, &so, &pin, pin_file);
out:
	dk_secret_wipe(&so);
	dk_secret_wipe(&pin);
	return r;
}
