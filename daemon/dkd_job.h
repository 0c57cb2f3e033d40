/*
 * dkd_job.h - one signing request on its way from the event loop to a
 * worker and back.  The loop fills the "in" part and owns the job again
 * once the worker has filled the "out" part.
 */
#ifndef DKD_JOB_H
#define DKD_JOB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/dkd_keyset.h"
#include "dkim/dkim.h"
#include "hsm/hsm.h"

#define DKD_MAX_ALGS       2
#define DKD_ERROR_MAX      512
#define DKD_IDENTITY_MAX   255
#define DKD_MESSAGE_ID_MAX 998 /* RFC 5322 §2.1.1 line limit */

struct dkd_sig_out {
	char *header; /* "DKIM-Signature: ..." without final CRLF, malloc'd */
	enum dkim_alg alg;
	char selector[HSM_SELECTOR_MAX + 1];
	char slot[8];
	char key_id[2 * HSM_KEY_ID_LEN + 1];
	char token[HSM_LABEL_MAX + 1];
};

struct dkd_job {
	/* in: set by the loop */
	uint64_t req_id;
	void *conn;                          /* the loop's connection; opaque here */
	struct dkd_keyset *ks;               /* reference held by the job */
	const struct dk_conf_client *client; /* authorized caller (in ks->conf) */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	char domain[DKIM_DOMAIN_MAX + 1];    /* requested; empty: From's domain */
	char selector[HSM_SELECTOR_MAX + 1]; /* optional */
	enum dkim_alg algs[DKD_MAX_ALGS];    /* requested; nalgs 0: domain's list */
	size_t nalgs;
	char identity[DKD_IDENTITY_MAX + 1];
	int64_t timestamp; /* 0: now */
	int64_t expire;
	char *headers; /* colon list, or NULL: the domain's list */
	uint8_t *header_section;
	size_t header_len;
	uint8_t *body; /* or NULL when have_bh */
	size_t body_len;
	uint8_t bh[DKIM_DIGEST_LEN];
	int have_bh;
	enum dkim_canon hcanon, bcanon;
	int hcanon_default; /* take the domain's canonicalization= */
	int bcanon_default; /* (only when the body itself is sent) */
	/* SignRequest.message_id: audited as an HMAC only, never in clear */
	char message_id[DKD_MESSAGE_ID_MAX + 1];
	uint64_t queued_us;

	/* out: set by the worker */
	int result; /* 0 or a dk_err code */
	char error[DKD_ERROR_MAX];
	char signed_domain[DKIM_DOMAIN_MAX + 1];
	struct dkd_sig_out sigs[DKD_MAX_ALGS];
	size_t nsigs;

	int abandoned;        /* the watchdog gave a copy to another worker (pool lock) */
	struct dkd_job *next; /* queue link */
};

/* Free a job and everything it owns (releases the keyset reference). */
void dkd_job_free(struct dkd_job *job);
/* A fresh job with the same "in" part (a new keyset reference); DK_ERR_NOMEM. */
int dkd_job_clone(const struct dkd_job *job, struct dkd_job **out);

#endif /* DKD_JOB_H */
