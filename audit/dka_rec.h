/*
 * dka_rec.h - audit records: one JSON object per line, each carrying the
 * SHA-256 of the line before it, sealed now and then by a checkpoint that
 * a key in the token signs (docs/audit.md has every field).
 *
 * Records are built into a batch that a writer (dka_file.h) appends with
 * one write and one fdatasync.  Nothing here touches a token: checkpoint
 * signatures come from a callback.
 */
#ifndef DKA_REC_H
#define DKA_REC_H

#include <stddef.h>
#include <stdint.h>

#include "common/dk_buf.h"
#include "common/dk_json.h"

#define DKA_VERSION        1
#define DKA_LINE_MAX       (64 * 1024)        /* bytes of one line, its newline included */
#define DKA_BATCH_MAX      (64 * 1024 * 1024) /* bytes of one batch */
#define DKA_HASH_LEN       32
#define DKA_HASH_HEX       64
#define DKA_PUB_LEN        32 /* Ed25519 public key */
#define DKA_SIG_LEN        64 /* Ed25519 signature */
#define DKA_FP_LEN         16 /* bytes of SHA-256(public key) that name a checkpoint key */
#define DKA_TIME_LEN       27 /* "2026-11-24T23:29:04.123456Z" */
#define DKA_CHECKPOINT_TAG "dkimkeep-audit-checkpoint-v1"

/* Where a chain stands: the last line's sequence number and hash. */
struct dka_head {
	uint64_t seq; /* 0: no line yet (the next one is 1) */
	uint8_t hash[DKA_HASH_LEN];
};

/* Wall clock in microseconds since the epoch (records are stamped in UTC). */
int64_t dka_now_us(void);
/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" into out (DKA_TIME_LEN + 1 bytes). */
void dka_time_format(int64_t us, char *out);
/*
 * Parse a record time (as written above), or the shorter forms
 * "YYYY-MM-DDTHH:MM:SSZ" and "YYYY-MM-DD" (midnight UTC).  DK_ERR_PARSE.
 */
int dka_time_parse(const char *s, size_t len, int64_t *us);

/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void dka_hex(const uint8_t *p, size_t n, char *out);
/* Exactly 2n lower-case hex digits into n bytes; DK_ERR_PARSE otherwise. */
int dka_unhex(const char *s, size_t slen, uint8_t *out, size_t n);
/* SHA-256 of a line's bytes, its newline not included. */
void dka_line_hash(const uint8_t *line, size_t len, uint8_t out[DKA_HASH_LEN]);
/* The name of a checkpoint key: hex of the first DKA_FP_LEN bytes of SHA-256(pub). */
void dka_key_fp(const uint8_t pub[DKA_PUB_LEN], char out[2 * DKA_FP_LEN + 1]);

/*
 * The bytes a checkpoint's signature covers: the tag, its seq, its time
 * text and the hash of the line before it ("head"), one per line.
 */
int dka_checkpoint_msg(uint64_t seq, const char *time, const char *head_hex, struct dk_buf *out);

/*
 * Message-IDs and identities are audited only as an HMAC computed in the
 * token; these build what is hashed, with a label per kind so that the
 * same text never gives the same hash in two fields.
 */
#define DKA_MID_MAX      998 /* a Message-ID is one header line at most (RFC 5322 §2.1.1) */
#define DKA_MAC_MID      "dkimkeep-audit-message-id-v1"
#define DKA_MAC_IDENTITY "dkimkeep-audit-identity-v1"
#define DKA_MAC_HOUR     "dkimkeep-audit-hour-key-v1"
#define DKA_MAC_LEN      32
#define DKA_HOUR_LEN     13 /* "2026-11-24T23" */

/*
 * The hashes are made with a key per hour: the token computes
 * K_hour = HMAC-SHA256(audit key, DKA_MAC_HOUR NUL "YYYY-MM-DDTHH") once an
 * hour, and each record's hash is HMAC-SHA256(K_hour, what dka_mac_input
 * gives) for the hour of the record's time.  One token call per hour
 * instead of one per message (docs/audit.md "Privacy").
 */
/* "YYYY-MM-DDTHH" (UTC) of a record time into out (DKA_HOUR_LEN + 1 bytes). */
void dka_mac_hour(int64_t us, char *out);
/* What the token hashes to make the key of hour. */
int dka_hour_key_input(const char *hour, struct dk_buf *out);
/* An HMAC-SHA256 key set up once for many messages (the key of an hour). */
struct dka_mac {
	struct evp_mac_ctx_st *ctx; /* EVP_MAC_CTX */
};
int dka_mac_key(struct dka_mac *m, const uint8_t *key, size_t keylen);
int dka_mac(struct dka_mac *m, const uint8_t *data, size_t len, uint8_t out[DKA_MAC_LEN]);
/* Free the context and the copy of the key it holds. */
void dka_mac_free(struct dka_mac *m);
/* HMAC-SHA256 in software (OpenSSL), with a key the token derived. */
int dka_hmac(
    const uint8_t *key, size_t keylen, const uint8_t *data, size_t len, uint8_t out[DKA_MAC_LEN]);

/*
 * The value of the first Message-ID field of a header section, unfolded,
 * into out (DKA_MID_MAX + 1 bytes).  0, or DK_ERR_NOT_FOUND when there is
 * none, DK_ERR_TOO_LARGE when it is longer than DKA_MID_MAX.
 */
int dka_header_message_id(const uint8_t *hs, size_t len, char *out, size_t outlen);
/*
 * What the token hashes for value: label, a NUL, then value without
 * surrounding white space and (for Message-IDs) one pair of angle brackets,
 * so that "<a@b>" given by a reviewer matches a@b seen by the daemon.
 */
int dka_mac_input(const char *label, const char *value, size_t len, struct dk_buf *out);

/* Sign msg with the checkpoint key; give its public key too.  0 or a dk_err code. */
typedef int (*dka_sign_fn)(
    void *arg, const uint8_t *msg, size_t len, uint8_t sig[DKA_SIG_LEN], uint8_t pub[DKA_PUB_LEN]);

/* Lines on their way to the file. */
struct dka_batch {
	struct dk_buf buf;    /* complete lines, each ending in "\n" */
	struct dka_head head; /* after the last line in buf */
	uint64_t since_cp;    /* records since the last checkpoint, after buf */
	size_t nlines;
	size_t start;       /* offset of the record being built */
	int open;           /* a record is being built */
	struct dk_json j;   /* its writer */
	int has_cp;         /* buf holds a checkpoint; the newest: */
	struct dka_head cp; /* its seq and the hash of its line */
	int64_t cp_us;
};

/* An empty batch that continues the chain at head. */
void dka_batch_init(struct dka_batch *b, const struct dka_head *head, uint64_t since_cp);
void dka_batch_free(struct dka_batch *b);

/*
 * Start a record: writes {"v":1,"seq":N,"time":T,"event":E and returns the
 * JSON writer to add fields to (always with a key).  dka_rec_end closes it.
 */
struct dk_json *dka_rec_begin(struct dka_batch *b, const char *event, int64_t us);
/*
 * Close the record with "prev" and a newline and move the head on.  On
 * error (too long, out of memory) the record is dropped from the batch.
 */
int dka_rec_end(struct dka_batch *b);

/*
 * Append a checkpoint (reason: count | minute | exit | reopen | admin)
 * signed over the current head.  On error nothing is appended.
 */
int dka_batch_checkpoint(
    struct dka_batch *b, const char *reason, int64_t us, dka_sign_fn sign, void *arg);

#endif /* DKA_REC_H */
