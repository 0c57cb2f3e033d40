/*
 * hsm_int.h - what the files of hsm/ share among themselves.
 *
 * Private to hsm/: the module, token and session structures, the CK_RV
 * table and the attribute helpers.  Only the sources of hsm/ include the
 * PKCS#11 header (through this file or directly); nothing outside does.
 */
#ifndef HSM_INT_H
#define HSM_INT_H

#include <pthread.h>

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#include "hsm/hsm.h"

#define HSM_SLOTS_MAX     1024 /* slots we accept from C_GetSlotList */
#define HSM_OBJECTS_MAX   8192 /* objects one search may return */
#define HSM_META_MAX      2048 /* bytes of a metadata object's CKA_VALUE */
#define HSM_ATTR_MAX      4096 /* any other variable-length attribute we read */
#define HSM_RSA_MIN_BITS  1024 /* refused below */
#define HSM_RSA_WARN_BITS 2048 /* accepted with a warning below */
#define HSM_RSA_MAX_BITS  4096 /* HSM_SIG_MAX bytes of signature */
#define HSM_APPLICATION   "dkimkeep"
#define HSM_KEY_LABEL_MAX (HSM_SELECTOR_MAX + 12 + HSM_DOMAIN_MAX)

struct hsm_module {
	char *path; /* canonical path, the key of the module list */
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	int refs;     /* protected by the module list lock in hsm_module.c */
	int finalize; /* we initialized it, so we finalize it */
	/*
	 * own: opened by hsm_module_open_own() with a function list of its own,
	 * so that hsm_module_reinit() touches no other user.  epoch counts the
	 * re-initializations: a session of an older epoch is never used or
	 * closed (its handle may now name another thread's session).
	 */
	int own;
	_Atomic unsigned epoch;
	int store_fd; /* SoftHSM's token directory, locked around changes (hsm_store.c); or -1 */
	struct hsm_module *next;
};

struct hsm_token {
	struct hsm_module *m;
	CK_SLOT_ID slot;
	char label[HSM_LABEL_MAX + 1];
	char serial[17];
	char *uri; /* as given to hsm_token_open, to find the token again */
	/*
	 * Login state is per application and token, and it ends when the last
	 * session closes: login_session keeps one open while t is open.
	 * lock protects logged_in, pin_refused and login_session.
	 */
	pthread_mutex_t lock;
	int logged_in;
	int pin_refused; /* the token refused the PIN: never tried again (tokens lock) */
	CK_SESSION_HANDLE login_session;
	int have_login_session;
};

struct hsm_session {
	struct hsm_token *t;
	CK_SESSION_HANDLE h;
	unsigned epoch; /* of t->m when opened */
};

/* ---- hsm_err.c: the one CK_RV table ---- */

/* The dk_err code for rv (0 for CKR_OK). */
int hsm_rv_err(CK_RV rv);
/* "CKR_PIN_INCORRECT" and the like; "CKR_0x..." for unknown values (static buffer per thread). */
const char *hsm_rv_name(CK_RV rv);
/* Operator-facing text for rv: what it means and what to do. */
const char *hsm_rv_text(CK_RV rv);
/*
 * Set the error detail to "<what>: <CKR_NAME>: <text>" and return the
 * mapped dk_err code.  what is printf-style.
 */
int hsm_fail(CK_RV rv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- hsm_module.c ---- */

/* Take one more reference on m (tokens hold one). */
void hsm_module_ref(struct hsm_module *m);
/*
 * C_Finalize and C_Initialize an own module (its opener's, with one token
 * on it), and start a new epoch.  DK_ERR_INVALID for a module that is not own.
 */
int hsm_module_reinit(struct hsm_module *m);
/* Copy a blank-padded PKCS#11 string field into a NUL-terminated one, trimmed. */
void hsm_copy_padded(char *dst, size_t dstlen, const CK_UTF8CHAR *src, size_t srclen);
/* The slots with a token present; *slots malloc'd. */
int hsm_slot_list(struct hsm_module *m, CK_SLOT_ID **slots, CK_ULONG *n);

/* ---- hsm_obj.c: attributes and searches ---- */

/* Read a CK_BBOOL attribute. */
int hsm_attr_bool(struct hsm_session *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, int *v);
/* Read a CK_ULONG attribute. */
int hsm_attr_ulong(struct hsm_session *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, CK_ULONG *v);
/*
 * Append a variable-length attribute to out, refusing values longer than
 * max before allocating.  DK_ERR_NOT_FOUND when the object lacks it.
 */
int hsm_attr_bytes(struct hsm_session *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, size_t max,
    struct dk_buf *out);
/* All objects matching tmpl (at most HSM_OBJECTS_MAX); *objs malloc'd. */
int hsm_find(struct hsm_session *s, CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE **objs,
    CK_ULONG *count);
/* Destroy o; an object already gone counts as destroyed. */
int hsm_destroy(struct hsm_session *s, CK_OBJECT_HANDLE o, const char *what);
/* Lower-case hex of HSM_KEY_ID_LEN bytes into hex (2 * HSM_KEY_ID_LEN + 1 bytes). */
void hsm_id_hex(const uint8_t id[HSM_KEY_ID_LEN], char *hex);
/* Parse exactly 2 * HSM_KEY_ID_LEN hex digits. */
int hsm_id_parse(const char *hex, size_t len, uint8_t id[HSM_KEY_ID_LEN]);
/* Fresh random CKA_ID not used by any object of the token. */
int hsm_id_new(struct hsm_session *s, uint8_t id[HSM_KEY_ID_LEN]);
/* "SELECTOR._domainkey.DOMAIN" into buf (HSM_KEY_LABEL_MAX + 1). */
int hsm_key_label(const struct hsm_key_meta *meta, char *buf, size_t len);

/* ---- hsm_meta.c: the metadata object ---- */

/* Check a metadata record before it is written: known values, bounded strings. */
int hsm_meta_valid(const struct hsm_key_meta *meta);
/* Create the metadata object for id holding meta (revision rev). */
int hsm_meta_create(struct hsm_session *s, const uint8_t id[HSM_KEY_ID_LEN],
    const struct hsm_key_meta *meta, unsigned long rev, CK_OBJECT_HANDLE *out);
/*
 * Read and parse the metadata object o: its key id from CKA_LABEL, meta and
 * rev from CKA_VALUE.  DK_ERR_PARSE for an object that is not ours.
 */
int hsm_meta_read(struct hsm_session *s, CK_OBJECT_HANDLE o, uint8_t id[HSM_KEY_ID_LEN],
    struct hsm_key_meta *meta, unsigned long *rev);
/* Parse a metadata text (exposed for the tests of the format). */
int hsm_meta_parse(const uint8_t *p, size_t len, struct hsm_key_meta *meta, unsigned long *rev);
/* Format meta as the metadata text into out. */
int hsm_meta_format(const struct hsm_key_meta *meta, unsigned long rev, struct dk_buf *out);

/* ---- hsm_key.c / hsm_import.c: shared between generation and import ---- */

/*
 * After the key objects priv/pub with id exist: write the metadata and fill
 * out.  On failure, priv, pub and any metadata are destroyed.
 */
int hsm_key_finish(struct hsm_session *s, enum hsm_key_type type, unsigned bits,
    const uint8_t id[HSM_KEY_ID_LEN], CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub,
    const struct hsm_key_meta *meta, struct hsm_key *out);
/* The mechanism hsm_sign_digest uses for a key of type. */
CK_MECHANISM_TYPE hsm_key_sign_mech(enum hsm_key_type type);

/* A template under construction; values must outlive its use. */
#define HSM_TMPL_MAX 32
struct hsm_tmpl {
	CK_ATTRIBUTE a[HSM_TMPL_MAX];
	CK_ULONG n;
	int overflow;
};

void hsm_tmpl_add(struct hsm_tmpl *t, CK_ATTRIBUTE_TYPE type, const void *value, size_t len);
/*
 * The attributes every dkimkeep private key carries: token, private,
 * sensitive, not extractable, sign only, allowed mechanisms, not modifiable,
 * id and label (PKCS11-NOTES.md "Unsafe defaults").
 */
void hsm_tmpl_private(struct hsm_tmpl *t, enum hsm_key_type type, const uint8_t id[HSM_KEY_ID_LEN],
    const char *label);
/* And every public key: token, public, verify only, id and label. */
void hsm_tmpl_public(struct hsm_tmpl *t, enum hsm_key_type type, const uint8_t id[HSM_KEY_ID_LEN],
    const char *label);
/* ---- hsm_pub.c ---- */

/* The public key of k as an OpenSSL key (for verifying in hsm_key_check). */
int hsm_key_evp(struct hsm_session *s, const struct hsm_key *k, EVP_PKEY **out);

/* DER of the Ed25519 OID 1.3.101.112 (RFC 8410), the CKA_EC_PARAMS of our keys. */
extern const uint8_t hsm_ed25519_oid[5];

/* ---- hsm_store.c: every call that adds or removes token objects ---- */

/* After C_Initialize: m->store_fd, the lock of a SoftHSM module's token directory (or -1). */
void hsm_store_open(struct hsm_module *m);
void hsm_store_close(struct hsm_module *m);
/*
 * C_CreateObject, C_DestroyObject, C_GenerateKey and C_GenerateKeyPair on
 * s, each under the host's lock of a SoftHSM store after a search that
 * brings this process's view of the token up to date.
 */
CK_RV hsm_store_create(struct hsm_session *s, CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *o);
CK_RV hsm_store_destroy(struct hsm_session *s, CK_OBJECT_HANDLE o);
CK_RV hsm_store_generate(
    struct hsm_session *s, CK_MECHANISM *mech, CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *o);
CK_RV hsm_store_generate_pair(struct hsm_session *s, CK_MECHANISM *mech, struct hsm_tmpl *pub,
    struct hsm_tmpl *priv, CK_OBJECT_HANDLE *hpub, CK_OBJECT_HANDLE *hpriv);

#endif /* HSM_INT_H */
