/*
 * milter_msg.h - dkimkeep-milter: one message on its way through the milter.
 *
 * The header fields that libmilter hands over one by one are rebuilt into a
 * bounded header section ("Name: value" with CRLF line ends, folds kept);
 * the body is never kept: each chunk goes into the running canonical body
 * hash, and only the 32-byte hash is sent to dkimkeepd.
 */
#ifndef MILTER_MSG_H
#define MILTER_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "client/dkimkeep_client.h"
#include "common/dk_buf.h"

/* The largest header section sent to the daemon (its limit, RFC 5322 CRLF lines). */
#define MILTER_HEADER_MAX (1024 * 1024)
/* The longest header field name we pass on (the daemon's limit for signed names). */
#define MILTER_NAME_MAX 128

struct milter_msg {
	struct dk_buf hdr;     /* the rebuilt header section */
	struct dkc_body *body; /* running body hash, from milter_msg_eoh() on */
	size_t nfrom;          /* From fields seen */
};

void milter_msg_init(struct milter_msg *m);
/* Forget the message and free what it held; m can be used again. */
void milter_msg_reset(struct milter_msg *m);

/*
 * Append one field.  leadspc: value is everything after the colon, as
 * SMFIP_HDR_LEADSPC gives it; else libmilter stripped the space after the
 * colon and one is put back.  Bare LF in folds becomes CRLF.  Errors:
 * DK_ERR_MSG_BAD_HEADER (empty or unusable name), DK_ERR_MSG_HEADER_TOO_LARGE
 * (over MILTER_HEADER_MAX), DK_ERR_NOMEM.
 */
int milter_msg_header(struct milter_msg *m, const char *name, const char *value, int leadspc);

/*
 * The header section is complete: start the body hash (relaxed).  Errors:
 * DK_ERR_MSG_NO_FROM (nothing to sign for), DK_ERR_MSG_MULTI_FROM, DK_ERR_NOMEM.
 */
int milter_msg_eoh(struct milter_msg *m);

/* Feed one body chunk to the hash. */
int milter_msg_body(struct milter_msg *m, const void *data, size_t len);

/* Finish the body hash into bh (the hash state is freed). */
int milter_msg_final(struct milter_msg *m, uint8_t bh[DKC_HASH_LEN]);

#endif /* MILTER_MSG_H */
