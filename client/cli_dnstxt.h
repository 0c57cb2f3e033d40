/*
 * cli_dnstxt.h - one DNS TXT lookup, for commands that check what DNS
 * publishes (the key drill).  A query over UDP with EDNS0 to a given
 * server (TCP when the answer is truncated), or through the system
 * resolver; the answer is read through bounded parsing only.
 */
#ifndef CLI_DNSTXT_H
#define CLI_DNSTXT_H

#include <stddef.h>
#include <stdint.h>

#include "common/dk_buf.h"

#define CLI_TXT_RECORDS_MAX 8    /* TXT records kept from one answer */
#define CLI_TXT_VALUE_MAX   4096 /* bytes of one record, its strings joined */
#define CLI_DNS_TIMEOUT_MS  2000 /* per try; three tries over UDP */

enum cli_txt_status {
	CLI_TXT_FOUND = 0,    /* one or more TXT records */
	CLI_TXT_NXDOMAIN = 1, /* the name does not exist */
	CLI_TXT_NODATA = 2,   /* the name exists but has no TXT record */
};

struct cli_txt {
	enum cli_txt_status status;
	size_t n;                             /* records in v */
	struct dk_buf v[CLI_TXT_RECORDS_MAX]; /* each record's strings joined (RFC 6376 §3.6.2.2) */
};

void cli_txt_init(struct cli_txt *t);
void cli_txt_free(struct cli_txt *t);

/*
 * The TXT records of name (a domain name, no trailing dot needed) from
 * server ("HOST:PORT" or "[V6]:PORT" as [dns] resolver= holds it; NULL:
 * the system resolver), following CNAMEs in the answer.  Errors, with the
 * server and name in the detail: DK_ERR_TIMEOUT (no answer),
 * DK_ERR_UNAVAILABLE (SERVFAIL, REFUSED, a server that cannot be reached),
 * DK_ERR_PARSE (a malformed answer), DK_ERR_TOO_LARGE (a record over
 * CLI_TXT_VALUE_MAX), DK_ERR_INVALID (a bad name or server).
 */
int cli_dns_txt(const char *server, const char *name, struct cli_txt *out);

/*
 * What cli_dns_txt does with the bytes a server sent: read an answer to the
 * TXT question for qname (lower case, no final dot) into out, its id not
 * checked; *truncated is set for a TC answer.  For the fuzz target.
 */
int cli_dns_txt_answer(
    const uint8_t *msg, size_t len, const char *qname, int *truncated, struct cli_txt *out);

#endif /* CLI_DNSTXT_H */
