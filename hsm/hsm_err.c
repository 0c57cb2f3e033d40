/*
 * hsm_err.c - the one table from CK_RV to dk_err codes and operator text.
 *
 * The "token is failing" set comes from what SoftHSM and real tokens show
 * when a token goes away (PKCS11-NOTES.md): SoftHSM answers a removed token
 * directory with CKR_OBJECT_HANDLE_INVALID and CKR_GENERAL_ERROR rather than
 * CKR_DEVICE_REMOVED, so those count as failing too.  Callers may fail over
 * on DK_ERR_TOKEN_FAILING.
 */
#include <stdarg.h>
#include <stdio.h>

#include "common/dk_err.h"
#include "hsm/hsm_int.h"

struct rv_entry {
	CK_RV rv;
	const char *name;
	int err;
	const char *text;
};

#define RV(rv, err, text)                                                                          \
	{                                                                                          \
		rv, #rv, err, text                                                                 \
	}

static const struct rv_entry rv_table[] = {
    RV(CKR_OK, DK_OK, "success"),
    RV(CKR_CANCEL, DK_ERR_PKCS11, "the operation was cancelled"),
    RV(CKR_HOST_MEMORY, DK_ERR_NOMEM, "the PKCS#11 module ran out of memory"),
    RV(CKR_SLOT_ID_INVALID, DK_ERR_TOKEN_FAILING,
        "the token's slot is gone; check that the token is present"),
    RV(CKR_GENERAL_ERROR, DK_ERR_TOKEN_FAILING,
        "the token reports a general error (SoftHSM: its token directory may be gone); "
        "check the token and its storage"),
    RV(CKR_FUNCTION_FAILED, DK_ERR_PKCS11, "the token could not perform the function"),
    RV(CKR_ARGUMENTS_BAD, DK_ERR_INTERNAL, "bad arguments to the module (a dkimkeep bug)"),
    RV(CKR_NEED_TO_CREATE_THREADS, DK_ERR_MODULE,
        "the module needs to create threads, which dkimkeep does not allow"),
    RV(CKR_CANT_LOCK, DK_ERR_MODULE,
        "the module cannot use operating-system locking; it is not thread-safe"),
    RV(CKR_ATTRIBUTE_READ_ONLY, DK_ERR_PERM, "the attribute cannot be changed"),
    RV(CKR_ATTRIBUTE_SENSITIVE, DK_ERR_SENSITIVE,
        "the attribute is sensitive and cannot be read (as a private key should be)"),
    RV(CKR_ATTRIBUTE_TYPE_INVALID, DK_ERR_PKCS11, "the object has no such attribute"),
    RV(CKR_ATTRIBUTE_VALUE_INVALID, DK_ERR_INVALID, "the token does not accept an attribute value"),
    RV(CKR_ACTION_PROHIBITED, DK_ERR_PERM, "the token prohibits this action on the object"),
    RV(CKR_DATA_INVALID, DK_ERR_INVALID, "the token refused the data"),
    RV(CKR_DATA_LEN_RANGE, DK_ERR_INVALID, "the data has a length the token refuses"),
    RV(CKR_DEVICE_ERROR, DK_ERR_TOKEN_FAILING, "the token reports a device error"),
    RV(CKR_DEVICE_MEMORY, DK_ERR_TOKEN_FULL, "the token has no memory left; destroy unused keys"),
    RV(CKR_DEVICE_REMOVED, DK_ERR_TOKEN_FAILING, "the token was removed"),
    RV(CKR_FUNCTION_CANCELED, DK_ERR_PKCS11, "the function was cancelled"),
    RV(CKR_FUNCTION_NOT_SUPPORTED, DK_ERR_MECHANISM, "the module does not implement this function"),
    RV(CKR_KEY_HANDLE_INVALID, DK_ERR_TOKEN_FAILING,
        "the key is gone from the token (stale handle); reload the keys"),
    RV(CKR_KEY_SIZE_RANGE, DK_ERR_INVALID, "the token does not support this key size"),
    RV(CKR_KEY_TYPE_INCONSISTENT, DK_ERR_MECHANISM, "the key type does not fit the mechanism"),
    RV(CKR_KEY_FUNCTION_NOT_PERMITTED, DK_ERR_MECHANISM,
        "the key's attributes do not permit this operation"),
    RV(CKR_KEY_UNEXTRACTABLE, DK_ERR_SENSITIVE, "the key cannot be extracted"),
    RV(CKR_MECHANISM_INVALID, DK_ERR_MECHANISM,
        "the token does not support the mechanism, or the key does not allow it"),
    RV(CKR_MECHANISM_PARAM_INVALID, DK_ERR_MECHANISM,
        "the token refuses the mechanism's parameters"),
    RV(CKR_OBJECT_HANDLE_INVALID, DK_ERR_TOKEN_FAILING,
        "the object is gone from the token (SoftHSM: its token directory may be gone); "
        "reload the keys"),
    RV(CKR_OPERATION_ACTIVE, DK_ERR_PKCS11,
        "another operation is active on the session; reopen the session"),
    RV(CKR_OPERATION_NOT_INITIALIZED, DK_ERR_INTERNAL, "operation not initialized (a bug)"),
    RV(CKR_PIN_INCORRECT, DK_ERR_PIN_INCORRECT,
        "the token refused the PIN; correct the PIN file (dkimkeep never retries a login: "
        "tokens lock the PIN after a few failures)"),
    RV(CKR_PIN_INVALID, DK_ERR_PIN_INVALID,
        "the PIN has characters the token does not accept; correct the PIN file"),
    RV(CKR_PIN_LEN_RANGE, DK_ERR_PIN_INVALID,
        "the PIN is too short or too long for the token; correct the PIN file"),
    RV(CKR_PIN_EXPIRED, DK_ERR_PIN_EXPIRED,
        "the PIN has expired; set a new PIN with the token's tools, then update the PIN file"),
    RV(CKR_PIN_LOCKED, DK_ERR_PIN_LOCKED,
        "the PIN is locked after too many wrong tries; the security officer must unblock it "
        "(or re-initialize the token)"),
    RV(CKR_PIN_TOO_WEAK, DK_ERR_PIN_INVALID, "the token considers the PIN too weak"),
    RV(CKR_SESSION_CLOSED, DK_ERR_TOKEN_FAILING, "the session was closed by the token"),
    RV(CKR_SESSION_COUNT, DK_ERR_PKCS11,
        "the token has too many sessions open; close other programs using it"),
    RV(CKR_SESSION_HANDLE_INVALID, DK_ERR_TOKEN_FAILING, "the session is no longer valid"),
    RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED, DK_ERR_INTERNAL,
        "parallel sessions not supported (a bug)"),
    RV(CKR_SESSION_READ_ONLY, DK_ERR_TOKEN_READONLY, "the session is read-only"),
    RV(CKR_SESSION_EXISTS, DK_ERR_PKCS11,
        "sessions are open on the token; stop other programs using it (dkimkeepd) first"),
    RV(CKR_SESSION_READ_ONLY_EXISTS, DK_ERR_PKCS11,
        "a read-only session exists, so the security officer cannot log in"),
    RV(CKR_SESSION_READ_WRITE_SO_EXISTS, DK_ERR_PKCS11,
        "the security officer is logged in to the token; log out first"),
    RV(CKR_SIGNATURE_INVALID, DK_ERR_PKCS11, "the signature is invalid"),
    RV(CKR_SIGNATURE_LEN_RANGE, DK_ERR_PKCS11, "the signature has a bad length"),
    RV(CKR_TEMPLATE_INCOMPLETE, DK_ERR_INVALID, "the token needs an attribute that was not given"),
    RV(CKR_TEMPLATE_INCONSISTENT, DK_ERR_INVALID, "the token refuses this set of attributes"),
    RV(CKR_TOKEN_NOT_PRESENT, DK_ERR_TOKEN_FAILING, "the token is not present"),
    RV(CKR_TOKEN_NOT_RECOGNIZED, DK_ERR_TOKEN_FAILING, "the module does not recognize the token"),
    RV(CKR_TOKEN_WRITE_PROTECTED, DK_ERR_TOKEN_READONLY, "the token is write-protected"),
    RV(CKR_USER_ALREADY_LOGGED_IN, DK_OK, "already logged in (not an error)"),
    RV(CKR_USER_NOT_LOGGED_IN, DK_ERR_NOT_LOGGED_IN, "not logged in to the token"),
    RV(CKR_USER_PIN_NOT_INITIALIZED, DK_ERR_TOKEN_NOT_INIT,
        "the token has no user PIN yet; run \"dkimkeep token init\""),
    RV(CKR_USER_TYPE_INVALID, DK_ERR_INTERNAL, "invalid user type (a bug)"),
    RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN, DK_ERR_PKCS11,
        "another user (the security officer) is logged in to the token; log out first"),
    RV(CKR_USER_TOO_MANY_TYPES, DK_ERR_PKCS11, "too many users logged in to the token"),
    RV(CKR_RANDOM_NO_RNG, DK_ERR_MECHANISM, "the token has no random number generator"),
    RV(CKR_DOMAIN_PARAMS_INVALID, DK_ERR_MECHANISM,
        "the token does not support the key parameters (curve)"),
    RV(CKR_CURVE_NOT_SUPPORTED, DK_ERR_MECHANISM, "the token does not support the curve"),
    RV(CKR_BUFFER_TOO_SMALL, DK_ERR_TOO_LARGE, "the result is larger than expected"),
    RV(CKR_INFORMATION_SENSITIVE, DK_ERR_SENSITIVE, "the information is sensitive"),
    RV(CKR_CRYPTOKI_NOT_INITIALIZED, DK_ERR_MODULE, "the module is not initialized (a bug)"),
    RV(CKR_CRYPTOKI_ALREADY_INITIALIZED, DK_ERR_MODULE,
        "the module was already initialized by other code in this process"),
    RV(CKR_MUTEX_BAD, DK_ERR_MODULE, "the module's locking failed"),
    RV(CKR_MUTEX_NOT_LOCKED, DK_ERR_MODULE, "the module's locking failed"),
    RV(CKR_FIPS_SELF_TEST_FAILED, DK_ERR_TOKEN_FAILING, "the token failed its self test"),
    RV(CKR_LIBRARY_LOAD_FAILED, DK_ERR_MODULE, "the module could not load a library it needs"),
    RV(CKR_PUBLIC_KEY_INVALID, DK_ERR_INVALID, "the token refuses the public key"),
    RV(CKR_FUNCTION_REJECTED, DK_ERR_PERM, "the token rejected the function"),
};

static const struct rv_entry *
rv_lookup(CK_RV rv)
{
	size_t i;

	for (i = 0; i < sizeof(rv_table) / sizeof(rv_table[0]); i++) {
		if (rv_table[i].rv == rv)
			return &rv_table[i];
	}
	return NULL;
}

int
hsm_rv_err(CK_RV rv)
{
	const struct rv_entry *e = rv_lookup(rv);

	return e != NULL ? e->err : DK_ERR_PKCS11;
}

const char *
hsm_rv_name(CK_RV rv)
{
	static _Thread_local char unknown[48];
	const struct rv_entry *e = rv_lookup(rv);

	if (e != NULL)
		return e->name;
	if (rv >= CKR_VENDOR_DEFINED)
		snprintf(unknown, sizeof(unknown), "CKR_VENDOR_DEFINED+0x%lx",
		    (unsigned long)(rv - CKR_VENDOR_DEFINED));
	else
		snprintf(unknown, sizeof(unknown), "CKR_0x%lx", (unsigned long)rv);
	return unknown;
}

const char *
hsm_rv_text(CK_RV rv)
{
	const struct rv_entry *e = rv_lookup(rv);

	return e != NULL ? e->text
	                 : "unexpected error from the token; see the module's documentation";
}

int
hsm_fail(CK_RV rv, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return dk_err_set(hsm_rv_err(rv), "%s: %s: %s", what, hsm_rv_name(rv), hsm_rv_text(rv));
}
