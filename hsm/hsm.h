/*
 * hsm.h - the only door to PKCS#11 in dkimkeep.
 *
 * Loads modules (dlopen + C_GetFunctionList), finds tokens by RFC 7512 URI,
 * logs in from PIN files, generates and imports keys with strict
 * attributes, keeps DKIM key metadata in the token, and signs digests.
 * Nothing outside hsm/ includes a PKCS#11 header.  Every CK_RV is mapped to
 * a dk_err code (with operator text in dk_err_detail()) by one table in
 * hsm_err.c.
 *
 * Threads: modules are initialized with CKF_OS_LOCKING_OK.  A session
 * belongs to one thread at a time; never share one between threads.
 */
#ifndef HSM_H
#define HSM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/dk_buf.h"

#define HSM_LABEL_MAX    32  /* token label, as in CK_TOKEN_INFO */
#define HSM_SIG_MAX      512 /* RSA-4096 */
#define HSM_KEY_ID_LEN   8   /* CKA_ID of a dkimkeep key pair, random */
#define HSM_DOMAIN_MAX   253
#define HSM_SELECTOR_MAX 63

struct hsm_module;
struct hsm_token;
struct hsm_session;

/* ---- modules ------------------------------------------------------------ */

/*
 * Load the module at path and C_Initialize it (once per path per process;
 * later opens share it, counted).  DK_ERR_MODULE with detail on failure.
 */
int hsm_module_open(const char *path, struct hsm_module **out);
/* Drop one reference; C_Finalize and dlclose with the last. */
void hsm_module_close(struct hsm_module *m);
/*
 * Like hsm_module_open, but for one token alone where the module allows
 * it: a module that gives a new function list on each C_GetFunctionList
 * (p11-kit-client.so) gets an initialization of its own, which
 * hsm_token_reconnect() may renew without touching other tokens.  A module
 * with one list per process (SoftHSM) is shared as with hsm_module_open.
 * Open one token on it: a re-initialization ends every session on it.
 */
int hsm_module_open_own(const char *path, struct hsm_module **out);

struct hsm_token_info {
	unsigned long slot_id; /* for display only: slot ids change */
	char label[HSM_LABEL_MAX + 1];
	char manufacturer[33];
	char model[17];
	char serial[17];
	int initialized;          /* CKF_TOKEN_INITIALIZED */
	int user_pin_initialized; /* CKF_USER_PIN_INITIALIZED */
	int login_required;
	char uri[256]; /* pkcs11:model=...;manufacturer=...;serial=...;token=... */
};

/* Every slot with a token present.  *list is malloc'd; caller frees. */
int hsm_module_tokens(struct hsm_module *m, struct hsm_token_info **list, size_t *n);

/* ---- tokens ------------------------------------------------------------- */

/*
 * Find the one token that matches uri (RFC 7512, parsed by p11-kit).
 * DK_ERR_TOKEN_NOT_FOUND when none matches, DK_ERR_INVALID for a bad URI or
 * more than one match.  The token holds a reference on m.
 */
int hsm_token_open(struct hsm_module *m, const char *uri, struct hsm_token **out);
void hsm_token_close(struct hsm_token *t);
/*
 * Connect again to a token whose module must be re-initialized to see it
 * (p11-kit-client.so connects to its server only in C_Initialize):
 * C_Finalize + C_Initialize of t's module, find the token by its URI again
 * and log in with pin_file.  Only for a module that t alone uses
 * (hsm_module_open_own); DK_ERR_INVALID otherwise.  Every session opened
 * before is dead afterwards: hsm_session_close() frees it without calling
 * the module, and it must not be used.
 */
int hsm_token_reconnect(struct hsm_token *t, const char *pin_file);
/* The token's label and serial (NUL-terminated, owned by t). */
const char *hsm_token_label(const struct hsm_token *t);
const char *hsm_token_serial(const struct hsm_token *t);

/*
 * Log in as the user with the PIN in pin_file (see dk_secret_read_pin).
 * Once per token per process; already logged in is success.  A wrong PIN
 * is never retried: DK_ERR_PIN_INCORRECT / _LOCKED / _EXPIRED / _INVALID
 * with detail, and every later call on t fails the same way without
 * trying.  The PIN is wiped before return.
 */
int hsm_token_login(struct hsm_token *t, const char *pin_file);

/*
 * Initialize a token with label, SO PIN and user PIN from files.  The slot
 * used is the token already labelled label (only with wipe) or else the
 * first slot whose token is not initialized.  A token that is initialized
 * and holds objects is refused (DK_ERR_EXISTS) unless wipe.
 */
int hsm_token_init(struct hsm_module *m, const char *label, const char *so_pin_file,
    const char *pin_file, int wipe);

/* ---- sessions ----------------------------------------------------------- */

/* Open a read-write session on t; one per thread. */
int hsm_session_open(struct hsm_token *t, struct hsm_session **out);
void hsm_session_close(struct hsm_session *s);
/* Cheap liveness probe (C_GetSessionInfo); DK_ERR_TOKEN_FAILING when the token is gone. */
int hsm_session_ping(struct hsm_session *s);

/* ---- keys --------------------------------------------------------------- */

enum hsm_key_type {
	HSM_KEY_RSA = 1,
	HSM_KEY_ED25519 = 2,
};

/*
 * DKIM metadata kept in the token beside each key pair, in a private
 * CKO_DATA object (CKA_APPLICATION "dkimkeep", CKA_LABEL = key id in hex).
 * Strings are NUL-terminated; unknown values are kept empty.
 */
struct hsm_key_meta {
	char domain[HSM_DOMAIN_MAX + 1];
	char selector[HSM_SELECTOR_MAX + 1];
	char alg[24];    /* "rsa-sha256" | "ed25519-sha256" */
	char slot[8];    /* "primary" | "backup" */
	char state[12];  /* pending | active | retiring | revoked | standby | destroyed */
	int64_t created; /* UNIX time */
	int64_t changed; /* UNIX time of the last state change */
	/* Rotation bookkeeping (rotate/); optional in the record, 0 or "" when absent. */
	int64_t pushed; /* UNIX time this state's DNS record was last sent for publishing */
	int64_t seen;   /* UNIX time DNS was first seen serving that record */
	char replaces[HSM_SELECTOR_MAX + 1]; /* selector of the key this one rotated out */
};

struct hsm_key {
	uint8_t id[HSM_KEY_ID_LEN];
	char id_hex[2 * HSM_KEY_ID_LEN + 1];
	enum hsm_key_type type;
	unsigned bits;                 /* RSA modulus bits; 255 for Ed25519 */
	unsigned long priv, pub, data; /* object handles, cached */
	struct hsm_key_meta meta;
};

/*
 * Generate a key pair inside the token: RSA (bits 2048, 3072 or 4096) or
 * Ed25519 (bits ignored).  Private key: token, private, sensitive, never
 * extractable, sign only, CKA_ALLOWED_MECHANISMS set.  Writes the metadata
 * object.  On failure nothing is left behind in the token.
 */
int hsm_key_generate(struct hsm_session *s, enum hsm_key_type type, unsigned bits,
    const struct hsm_key_meta *meta, struct hsm_key *out);

/*
 * Import a PEM private key (RSA in PKCS#1 or PKCS#8, Ed25519 in PKCS#8)
 * into the token with the same attributes as generated keys.  pem is the
 * file's content; the caller wipes it.  RSA below 1024 bits is refused.
 */
int hsm_key_import(struct hsm_session *s, const uint8_t *pem, size_t pem_len,
    const struct hsm_key_meta *meta, struct hsm_key *out);

/*
 * The type and size of the private key in a PEM, decoded as hsm_key_import
 * decodes it, so that a caller can choose meta->alg before importing.
 * Nothing is kept; the decoded key is wiped.  DK_ERR_PARSE / DK_ERR_INVALID
 * with detail for a file that hsm_key_import would refuse.
 */
int hsm_pem_key_type(const uint8_t *pem, size_t pem_len, enum hsm_key_type *type, unsigned *bits);

/*
 * Every dkimkeep key in the token (key pairs that have a metadata object).
 * *keys is malloc'd, caller frees.  Keys whose metadata cannot be parsed
 * are skipped with a warning in the log, and so are tombstones (below).
 */
int hsm_key_list(struct hsm_session *s, struct hsm_key **keys, size_t *n);

/*
 * Like hsm_key_list, and also every metadata record whose key pair is gone
 * or going: tombstones (state "destroyed", kept after a destruction until
 * DNS no longer serves the key's record, for "dns check") and records a
 * destruction interrupted by a crash left behind.  In those, priv and pub
 * are 0 when the object is gone (a leftover object keeps its handle), and
 * bits is 0 without a public key.  For rotate/ and "dns check" only.
 */
int hsm_key_list_all(struct hsm_session *s, struct hsm_key **keys, size_t *n);

/* Rewrite the metadata object of k from meta (k->meta updated on success). */
int hsm_key_set_meta(struct hsm_session *s, struct hsm_key *k, const struct hsm_key_meta *meta);

/*
 * Destroy k, in an order a crash cannot turn into a half key: first its
 * metadata becomes a tombstone (state "destroyed"; k->meta and k->data
 * follow), then the private key goes, then the public key, and last, unless
 * keep_record, the metadata itself.  A crash in between leaves a tombstone
 * with leftover objects, which hsm_key_list_all shows and calling this
 * again finishes.  Objects already gone count as destroyed.
 */
int hsm_key_destroy(struct hsm_session *s, struct hsm_key *k, int keep_record);

/*
 * Append the public key to out: DER SubjectPublicKeyInfo for RSA (the p= of
 * RFC 6376), the raw 32 bytes for Ed25519 (the p= of RFC 8463).
 */
int hsm_key_public(struct hsm_session *s, const struct hsm_key *k, struct dk_buf *out);

/*
 * Load-time hygiene: read the private key's attributes and refuse (
 * DK_ERR_KEY_HYGIENE, reason in why) a key that is extractable, not
 * sensitive, allowed to decrypt/unwrap/derive, RSA below 1024 bits, or
 * whose signature does not verify with its public key.  *weak is set for
 * RSA below 2048 bits (use it, but warn).
 */
int hsm_key_check(
    struct hsm_session *s, const struct hsm_key *k, int *weak, char *why, size_t whylen);

/*
 * hsm_key_check again after a refusal, on a fresh listing of the token: k
 * is found again by its id (new handles, k updated) and checked once more.
 * SoftHSM's file store, written by several processes at once, can show a
 * process even its own new key half-read (seen: a key generated with
 * CKA_SENSITIVE true reading back false; an RSA public key with an empty
 * modulus, both with daemons writing the same token): a look after the
 * token was listed again reads it whole.  Up to three fresh looks; a key
 * that fails them all is refused as by hsm_key_check; DK_ERR_NOT_FOUND when
 * k is gone.
 */
int hsm_key_recheck(struct hsm_session *s, struct hsm_key *k, int *weak, char *why, size_t whylen);

/*
 * Sign a SHA-256 digest: RSA with CKM_RSA_PKCS over the DigestInfo
 * (RSASSA-PKCS1-v1_5, RFC 8017 §9.2), Ed25519 with CKM_EDDSA over the 32
 * bytes (RFC 8463 §3).  *sig_len: capacity in, length out.
 * DK_ERR_TOKEN_FAILING when the token is failing (device error, removed,
 * handle or session invalid): the caller may fail over.
 */
int hsm_sign_digest(struct hsm_session *s, const struct hsm_key *k, const uint8_t digest[32],
    uint8_t *sig, size_t *sig_len);

/* PKCS#11 URI of a key's private object, for other tools (pkcs11-tool, engines). */
int hsm_key_uri(const struct hsm_token *t, const struct hsm_key *k, struct dk_buf *out);

/* ---- audit (hsm_audit.c): the audit log's keys, kept in the token ------- */

/*
 * The audit log (docs/audit.md) uses three objects of one token, none of
 * them a DKIM key (no metadata object, so key listings skip them):
 *  - a generic secret key labelled HSM_AUDIT_HMAC_LABEL (sensitive, never
 *    extractable, CKM_SHA256_HMAC only) that turns Message-IDs into
 *    keyed hashes;
 *  - an Ed25519 key pair labelled HSM_AUDIT_SIGN_LABEL that signs the
 *    checkpoints;
 *  - a private data object (CKA_APPLICATION HSM_AUDIT_APPLICATION) holding
 *    the newest checkpoint, the anchor that shows truncation.
 */
#define HSM_AUDIT_HMAC_LABEL   "dkimkeep-audit-hmac"
#define HSM_AUDIT_SIGN_LABEL   "dkimkeep-audit"
#define HSM_AUDIT_APPLICATION  "dkimkeep-audit"
#define HSM_AUDIT_ANCHOR_LABEL "dkimkeep-audit-anchor"
#define HSM_AUDIT_MAC_LEN      32 /* HMAC-SHA256 */
#define HSM_AUDIT_PUB_LEN      32 /* raw Ed25519 public key */
#define HSM_AUDIT_SIG_LEN      64 /* Ed25519 signature */
#define HSM_AUDIT_KEYS_MAX     16 /* audit key pairs one token may hold */

struct hsm_audit_keys {
	unsigned long hmac, priv, pub; /* object handles, cached */
	uint8_t pubkey[HSM_AUDIT_PUB_LEN];
};

/*
 * Find the audit keys of the token; with create, make the ones missing.
 * When several exist (two processes raced to create them), every caller
 * picks the one with the lowest CKA_ID.  DK_ERR_NOT_FOUND without create
 * when one is missing; DK_ERR_KEY_HYGIENE for a key that is extractable or
 * not sensitive.  Call under the audit log's lock when creating.
 */
int hsm_audit_keys(struct hsm_session *s, int create, struct hsm_audit_keys *out);

/* HMAC-SHA256 of data with the audit secret key, in the token (CKM_SHA256_HMAC). */
int hsm_audit_hmac(struct hsm_session *s, const struct hsm_audit_keys *k, const void *data,
    size_t len, uint8_t mac[HSM_AUDIT_MAC_LEN]);

/* Ed25519 signature of msg with the audit key (CKM_EDDSA, pure). */
int hsm_audit_sign(struct hsm_session *s, const struct hsm_audit_keys *k, const void *msg,
    size_t len, uint8_t sig[HSM_AUDIT_SIG_LEN]);

/*
 * Every audit public key in the token (a re-initialized token has a new
 * one; old logs need the old).  *keys is malloc'd, caller frees.
 */
int hsm_audit_pubkeys(struct hsm_session *s, uint8_t (**keys)[HSM_AUDIT_PUB_LEN], size_t *n);

/* The newest checkpoint of the audit log as the token remembers it. */
struct hsm_audit_anchor {
	uint64_t seq;     /* of the checkpoint line */
	uint8_t hash[32]; /* SHA-256 of that line */
	int64_t time;     /* UNIX seconds it was written */
};

/* Read the anchor; DK_ERR_NOT_FOUND when the token has none. */
int hsm_audit_anchor_get(struct hsm_session *s, struct hsm_audit_anchor *out);
/* Replace the anchor (the new object is written before the old is removed). */
int hsm_audit_anchor_set(struct hsm_session *s, const struct hsm_audit_anchor *a);

/* ---- rotation lease (hsm_lease.c): objects for rotate/rot_lease.c ------- */

/*
 * A lease object is a private CKO_DATA object, CKA_APPLICATION
 * HSM_LEASE_APPLICATION, CKA_LABEL naming what it covers, CKA_VALUE a short
 * text that rotate/ writes and reads.  It is created and destroyed whole,
 * never edited (PKCS#11 has no compare-and-swap; SoftHSM refuses to change
 * CKA_VALUE of a data object).
 */
#define HSM_LEASE_APPLICATION "dkimkeep-lease"
#define HSM_LEASE_VALUE_MAX   256
#define HSM_LEASES_MAX        64

struct hsm_lease {
	unsigned long obj; /* object handle */
	char value[HSM_LEASE_VALUE_MAX + 1];
};

/* Every lease object with CKA_LABEL label; *out malloc'd, caller frees. */
int hsm_lease_list(struct hsm_session *s, const char *label, struct hsm_lease **out, size_t *n);
/* Create one lease object (one C_CreateObject); its handle in *obj. */
int hsm_lease_create(
    struct hsm_session *s, const char *label, const char *value, unsigned long *obj);
/* Destroy a lease object; one already gone counts as destroyed. */
int hsm_lease_destroy(struct hsm_session *s, unsigned long obj);

#endif /* HSM_H */
