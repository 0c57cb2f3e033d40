/*
 * dkimkeep_client.h - libdkimkeep: the client side of the dkimkeep socket.
 *
 * This is the only header an MTA integrator needs.  Connect to dkimkeepd's
 * Unix socket, send sign requests (many at once if you like: answers carry
 * the request id and may come in any order), read the answers.  The body
 * never has to be sent: hash it here in chunks and send the 32-byte hash.
 *
 * Functions return 0 or a negative error code (dkc_strerror() explains it);
 * a daemon answer that is not OK is not an error of the call: see
 * dkc_result.status.  A connection is for one thread at a time.
 */
#ifndef DKIMKEEP_CLIENT_H
#define DKIMKEEP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DKC_ALG_RSA_SHA256     1
#define DKC_ALG_ED25519_SHA256 2
#define DKC_HASH_LEN           32

/* Answer statuses, as in proto/dkimkeep.proto's Status. */
enum dkc_status {
	DKC_OK = 1,
	DKC_BAD_REQUEST = 2,
	DKC_BAD_MESSAGE = 3,
	DKC_NOT_AUTHORIZED = 4,
	DKC_UNKNOWN_DOMAIN = 5,
	DKC_NO_KEY = 6,
	DKC_BUSY = 7,
	DKC_RATE_LIMITED = 8,
	DKC_TOKEN_UNAVAILABLE = 9,
	DKC_AUDIT_UNAVAILABLE = 10,
	DKC_INTERNAL = 11,
};

struct dkc_conn;

/* Connect to the daemon's socket; timeout_ms bounds every later call too. */
int dkc_connect(const char *socket_path, int timeout_ms, struct dkc_conn **out);
void dkc_close(struct dkc_conn *c);

struct dkc_sign_req {
	const char *domain;   /* d=; NULL: the From domain (or its configured parent) */
	const char *selector; /* NULL: the active key of each algorithm */
	const int *algs;      /* DKC_ALG_*; NULL/0: every algorithm of the domain */
	size_t nalgs;
	const char *identity;       /* i=, or NULL */
	int64_t timestamp;          /* t=; 0: now */
	int64_t expire;             /* x = t + expire when > 0 */
	const char *const *headers; /* names to sign; NULL: the domain's list */
	size_t nheaders;
	const uint8_t *header_section; /* the raw header section of the message */
	size_t header_len;
	const uint8_t *body_hash; /* DKC_HASH_LEN bytes from dkc_body_final, or NULL */
	const uint8_t *body;      /* else the body itself (small messages only) */
	size_t body_len;
	int simple_headers; /* 1: c=simple/... (default relaxed) */
	int simple_body;    /* 1: c=.../simple; must match how body_hash was made */
};

struct dkc_sig {
	char *header; /* "DKIM-Signature: ..." with CRLF folds, no final CRLF */
	int alg;      /* DKC_ALG_* */
	char *selector;
	char *slot; /* "primary" | "backup" */
	char *key_id;
	char *token;
};

struct dkc_result {
	uint64_t id;
	int status;  /* enum dkc_status */
	char *error; /* what went wrong and what to do ("" when OK) */
	char *domain;
	struct dkc_sig sigs[2];
	size_t nsigs;
};

/*
 * Send a sign request (and any queued before it) without waiting for the
 * answer; *id is the id its answer will carry.
 */
int dkc_sign_send(struct dkc_conn *c, const struct dkc_sign_req *req, uint64_t *id);
/*
 * Queue a sign request without sending it; dkc_flush() (or the next
 * dkc_sign_send) sends every queued request in one write.  A pipelining
 * caller with several requests to send queues them and flushes once: one
 * system call, and the daemon reads them together.  At most DKC_QUEUE_MAX
 * bytes wait (DK_ERR_TOO_LARGE beyond: flush first).
 */
#define DKC_QUEUE_MAX (2 * 1024 * 1024)
int dkc_sign_queue(struct dkc_conn *c, const struct dkc_sign_req *req, uint64_t *id);
int dkc_flush(struct dkc_conn *c);
/* Read the next answer (of any request sent).  Free it with dkc_result_free(). */
int dkc_result_recv(struct dkc_conn *c, struct dkc_result *res);
/* 1 when a whole answer is already read in: dkc_result_recv returns it without waiting. */
int dkc_result_ready(const struct dkc_conn *c);
void dkc_result_free(struct dkc_result *res);
/* Send one request and wait for its answer. */
int dkc_sign(struct dkc_conn *c, const struct dkc_sign_req *req, struct dkc_result *res);

struct dkc_token_status {
	char *name, *label;
	int up;
	int64_t since;
	char *last_error;
	uint64_t errors;
};

struct dkc_ring_status {
	char *domain;
	int alg;
	char *slot; /* signing now: primary | backup | none */
	char *selector, *key_id;
};

struct dkc_counter {
	char *name;
	uint64_t value;
};

struct dkc_status_info {
	char *version;
	int64_t started;
	unsigned workers, queue_depth, queue_max, connections;
	struct dkc_token_status *tokens;
	size_t ntokens;
	struct dkc_ring_status *rings;
	size_t nrings;
	struct dkc_counter *counters;
	size_t ncounters;
};

/* Ask the daemon for its status (tokens, rings, queue, counters). */
int dkc_status(struct dkc_conn *c, struct dkc_status_info **out);
void dkc_status_free(struct dkc_status_info *st);

/* Streaming canonical body hash (RFC 6376 §3.4.3-§3.4.5, SHA-256). */
struct dkc_body;
int dkc_body_new(int simple, struct dkc_body **out);
int dkc_body_update(struct dkc_body *b, const void *data, size_t len);
/* Write the hash and free b. */
int dkc_body_final(struct dkc_body *b, uint8_t hash[DKC_HASH_LEN]);
void dkc_body_free(struct dkc_body *b);

/*
 * Where the header section of a message ends: *hdr_len bytes of header
 * section (with its last line end), the body at *body_off.  Returns 1 when
 * found, 0 when more data is needed, a negative error when the data is not
 * a message.
 */
int dkc_header_end(const uint8_t *msg, size_t len, size_t *hdr_len, size_t *body_off);

/* Text of a negative error code. */
const char *dkc_strerror(int err);
/* Name of a status ("OK", "BUSY", ...). */
const char *dkc_status_name(int status);
/* sysexits(3) code for an answer status, as dkimkeep sign exits. */
int dkc_status_exit(int status);

#ifdef __cplusplus
}
#endif

#endif /* DKIMKEEP_CLIENT_H */
