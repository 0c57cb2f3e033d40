/*
 * dns_query.h - TXT lookups (through ldns) for rotation and "dns check":
 * to [dns] resolver= (or a server given on the command line) or through
 * the system resolver, following CNAMEs, every answer read with bounds.
 */
#ifndef DNS_QUERY_H
#define DNS_QUERY_H

#include <stddef.h>

#include "common/dk_buf.h"
#include "rotate/rot_record.h"

#define ROT_TXT_RECORDS_MAX 8 /* TXT records kept from one answer; more is DK_ERR_TOO_LARGE */
#define ROT_CNAME_MAX       8 /* CNAMEs followed from the name asked */
#define ROT_DNS_TIMEOUT_S   2 /* per try */
#define ROT_DNS_TRIES       2

enum rot_dns_status {
	ROT_DNS_FOUND = 0,    /* one or more TXT records */
	ROT_DNS_NXDOMAIN = 1, /* the name does not exist */
	ROT_DNS_NODATA = 2,   /* the name exists but has no TXT record */
};

struct rot_txt {
	enum rot_dns_status status;
	size_t n;                             /* records in v */
	struct dk_buf v[ROT_TXT_RECORDS_MAX]; /* each record's strings joined (RFC 6376 §3.6.2.2) */
	char target[ROT_REC_NAME_MAX + 2];    /* the name the records were found at */
	int cnames;                           /* CNAMEs followed to get there */
};

void rot_txt_init(struct rot_txt *t);
void rot_txt_free(struct rot_txt *t);

/*
 * The TXT records of name from server ("HOST:PORT", "[V6]:PORT"; NULL:
 * the system resolver), following up to ROT_CNAME_MAX CNAMEs.  Errors,
 * with server and name in the detail: DK_ERR_TIMEOUT (no answer),
 * DK_ERR_UNAVAILABLE (SERVFAIL, REFUSED, unreachable), DK_ERR_PARSE (a
 * malformed record, a CNAME loop), DK_ERR_TOO_LARGE (over the limits
 * above), DK_ERR_INVALID (a bad name or server).
 */
int rot_dns_txt(const char *server, const char *name, struct rot_txt *out);

struct ldns_struct_resolver;
/*
 * An ldns resolver for server (as above; NULL: /etc/resolv.conf), with
 * our timeouts.  Caller frees with ldns_resolver_deep_free().  Shared with
 * dns_update.c.
 */
int rot_dns_resolver(const char *server, struct ldns_struct_resolver **out);

#endif /* DNS_QUERY_H */
