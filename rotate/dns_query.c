/*
 * dns_query.c - TXT lookups through ldns, read with bounds.
 *
 * ldns parses the message; what we take from it is still checked here:
 * each character-string against its own length byte, each record and the
 * number of records against the limits of dns_query.h, CNAME chains
 * against ROT_CNAME_MAX (a loop ends there).
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldns/ldns.h>

#include "common/dk_err.h"
#include "rotate/dns_query.h"

#define HOST_MAX 256

void
rot_txt_init(struct rot_txt *t)
{
	size_t i;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < ROT_TXT_RECORDS_MAX; i++)
		dk_buf_init(&t->v[i], ROT_REC_VALUE_MAX);
	t->status = ROT_DNS_NODATA;
}

void
rot_txt_free(struct rot_txt *t)
{
	size_t i;

	for (i = 0; i < ROT_TXT_RECORDS_MAX; i++)
		dk_buf_free(&t->v[i]);
	t->n = 0;
}

/* Split "HOST:PORT", "[V6]:PORT" or "HOST" into host and port. */
static int
split_server(const char *server, char *host, size_t hostlen, unsigned *port)
{
	const char *h = server, *end, *colon = strrchr(server, ':'), *p = NULL;
	char *e;
	long v;

	if (server[0] == '[') {
		h = server + 1;
		if ((end = strchr(h, ']')) == NULL)
			return DK_ERR_INVALID;
		if (end[1] == ':')
			p = end + 2;
		else if (end[1] != '\0')
			return DK_ERR_INVALID;
	} else if (colon != NULL && strchr(server, ':') == colon) {
		end = colon;
		p = colon + 1;
	} else {
		end = server + strlen(server);
	}
	if (end == h || (size_t)(end - h) >= hostlen)
		return DK_ERR_INVALID;
	memcpy(host, h, (size_t)(end - h));
	host[end - h] = '\0';
	*port = 53;
	if (p != NULL) {
		v = strtol(p, &e, 10);
		if (*p == '\0' || *e != '\0' || v < 1 || v > 65535)
			return DK_ERR_INVALID;
		*port = (unsigned)v;
	}
	return 0;
}

/* The address of host (a literal or a name) as an ldns A/AAAA rdf. */
static int
host_rdf(const char *host, ldns_rdf **out)
{
	struct addrinfo hints, *ai = NULL;
	char addr[INET6_ADDRSTRLEN];
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_DGRAM;
	if (getaddrinfo(host, NULL, &hints, &ai) != 0 || ai == NULL)
		return dk_err_set(DK_ERR_UNAVAILABLE,
		    "DNS server %s: the name cannot be resolved; give an address", host);
	if (ai->ai_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr, addr,
		    sizeof(addr));
		*out = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_A, addr);
	} else {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr, addr,
		    sizeof(addr));
		*out = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_AAAA, addr);
	}
	r = *out != NULL ? 0 : DK_ERR_NOMEM;
	freeaddrinfo(ai);
	return r;
}

int
rot_dns_resolver(const char *server, ldns_resolver **out)
{
	struct timeval tv = {ROT_DNS_TIMEOUT_S, 0};
	char host[HOST_MAX];
	ldns_resolver *res = NULL;
	ldns_rdf *ns = NULL;
	unsigned port;
	int r;

	*out = NULL;
	if (server == NULL) {
		if (ldns_resolver_new_frm_file(&res, NULL) != LDNS_STATUS_OK)
			return dk_err_set(DK_ERR_UNAVAILABLE,
			    "the system resolver cannot be set up from /etc/resolv.conf; set "
			    "resolver= in [dns]");
	} else {
		if (split_server(server, host, sizeof(host), &port) != 0)
			return dk_err_set(
			    DK_ERR_INVALID, "\"%s\" is not HOST:PORT or [V6]:PORT", server);
		if ((r = host_rdf(host, &ns)) != 0)
			return r;
		if ((res = ldns_resolver_new()) == NULL ||
		    ldns_resolver_push_nameserver(res, ns) != LDNS_STATUS_OK) {
			ldns_rdf_deep_free(ns);
			if (res != NULL)
				ldns_resolver_deep_free(res);
			return DK_ERR_NOMEM;
		}
		ldns_rdf_deep_free(ns);
		ldns_resolver_set_port(res, (uint16_t)port);
	}
	ldns_resolver_set_timeout(res, tv);
	ldns_resolver_set_retry(res, ROT_DNS_TRIES);
	ldns_resolver_set_recursive(res, true);
	ldns_resolver_set_fallback(res, true); /* TC: again over TCP */
	ldns_resolver_set_edns_udp_size(res, 4096);
	ldns_resolver_set_dnssec(res, false);
	*out = res;
	return 0;
}

/* Join the character-strings of one TXT record into out, each checked against its length. */
static int
txt_join(const ldns_rr *rr, struct dk_buf *out)
{
	const ldns_rdf *f;
	const uint8_t *d;
	size_t i, n;

	for (i = 0; i < ldns_rr_rd_count(rr); i++) {
		f = ldns_rr_rdf(rr, i);
		if (f == NULL || ldns_rdf_get_type(f) != LDNS_RDF_TYPE_STR)
			return DK_ERR_PARSE;
		d = ldns_rdf_data(f);
		n = ldns_rdf_size(f);
		if (n < 1 || d[0] != n - 1)
			return DK_ERR_PARSE;
		if (dk_buf_put(out, d + 1, n - 1) != 0)
			return DK_ERR_TOO_LARGE;
	}
	return 0;
}

/*
 * Collect the TXT records owned by cur in the answer section; when there
 * are none, set *next to the target of a CNAME owned by cur (or NULL).
 */
static int
answer_scan(const ldns_rr_list *an, const ldns_rdf *cur, struct rot_txt *out, ldns_rdf **next)
{
	const ldns_rr *rr, *cname = NULL;
	size_t i;
	int r;

	*next = NULL;
	for (i = 0; an != NULL && i < ldns_rr_list_rr_count(an); i++) {
		rr = ldns_rr_list_rr(an, i);
		if (ldns_dname_compare(ldns_rr_owner(rr), cur) != 0)
			continue;
		if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && ldns_rr_rd_count(rr) == 1)
			cname = rr;
		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_TXT)
			continue;
		if (out->n >= ROT_TXT_RECORDS_MAX)
			return DK_ERR_TOO_LARGE;
		if ((r = txt_join(rr, &out->v[out->n])) != 0)
			return r;
		out->n++;
	}
	if (out->n == 0 && cname != NULL && (*next = ldns_rdf_clone(ldns_rr_rdf(cname, 0))) == NULL)
		return DK_ERR_NOMEM;
	return 0;
}

static int
query_fail(int r, const char *server, const char *name, const char *why)
{
	return dk_err_set(r, "DNS lookup of %s TXT at %s: %s", name,
	    server != NULL ? server : "the system resolver", why);
}

/* Remember where the records were found, as text without the final dot. */
static void
set_target(struct rot_txt *out, const ldns_rdf *at)
{
	char *s = ldns_rdf2str(at);
	size_t n;

	out->target[0] = '\0';
	if (s == NULL)
		return;
	n = strlen(s);
	if (n > 0 && s[n - 1] == '.')
		s[--n] = '\0';
	if (n < sizeof(out->target))
		memcpy(out->target, s, n + 1);
	free(s);
}

/*
 * Follow the CNAME chain from cur as far as the answer carries it (RFC
 * 1034 §3.6.2).  *next: the name to ask for next when the chain leaves
 * the answer without records, else NULL.
 */
static int
answer_chain(const ldns_pkt *pkt, const ldns_rdf *cur, struct rot_txt *out, ldns_rdf **next)
{
	ldns_rdf *at = NULL, *nx = NULL;
	int r;

	*next = NULL;
	r = answer_scan(ldns_pkt_answer(pkt), cur, out, &nx);
	while (r == 0 && nx != NULL) {
		if (++out->cnames > ROT_CNAME_MAX) {
			r = DK_ERR_PARSE;
			break;
		}
		ldns_rdf_deep_free(at);
		at = nx;
		nx = NULL;
		r = answer_scan(ldns_pkt_answer(pkt), at, out, &nx);
	}
	ldns_rdf_deep_free(nx);
	if (r == 0 && out->n == 0 && at != NULL) {
		*next = at; /* ask for the target itself */
		return 0;
	}
	if (r == 0)
		set_target(out, at != NULL ? at : cur);
	ldns_rdf_deep_free(at);
	return r;
}

/* One query for cur: the records found, or the next name of a CNAME chain. */
static int
query_one(ldns_resolver *res, const char *server, const char *name, const ldns_rdf *cur,
    struct rot_txt *out, ldns_rdf **next)
{
	ldns_pkt *q = NULL, *pkt = NULL;
	ldns_rr_list *qs;
	int r;

	*next = NULL;
	if (ldns_resolver_prepare_query_pkt(
	        &q, res, cur, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, LDNS_RD) != LDNS_STATUS_OK ||
	    q == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	if (ldns_resolver_send_pkt(&pkt, res, q) != LDNS_STATUS_OK || pkt == NULL) {
		r = query_fail(DK_ERR_TIMEOUT, server, name, "no answer; is the server up?");
		goto out;
	}
	/* ldns takes any answer that arrives: one to another query is forged or stray. */
	qs = ldns_pkt_question(pkt);
	if (ldns_pkt_id(pkt) != ldns_pkt_id(q) || !ldns_pkt_qr(pkt) || qs == NULL ||
	    ldns_rr_list_rr_count(qs) != 1 ||
	    ldns_dname_compare(ldns_rr_owner(ldns_rr_list_rr(qs, 0)), cur) != 0 ||
	    ldns_rr_get_type(ldns_rr_list_rr(qs, 0)) != LDNS_RR_TYPE_TXT) {
		r = query_fail(DK_ERR_PARSE, server, name,
		    "the answer does not match the query (its ID or question differs)");
		goto out;
	}
	switch (ldns_pkt_get_rcode(pkt)) {
	case LDNS_RCODE_NOERROR:
		break;
	case LDNS_RCODE_NXDOMAIN:
		out->status = ROT_DNS_NXDOMAIN;
		set_target(out, cur);
		r = 0;
		goto out;
	default:
		r = query_fail(
		    DK_ERR_UNAVAILABLE, server, name, "the server answered SERVFAIL or REFUSED");
		goto out;
	}
	if ((r = answer_chain(pkt, cur, out, next)) != 0) {
		r = query_fail(r, server, name,
		    r == DK_ERR_TOO_LARGE ? "more or longer TXT records than dkimkeep reads"
		    : r == DK_ERR_PARSE   ? "a malformed TXT record, or a CNAME loop"
		                          : "out of memory");
		goto out;
	}
	out->status = out->n > 0 ? ROT_DNS_FOUND : ROT_DNS_NODATA;
	r = 0;
out:
	ldns_pkt_free(q);
	ldns_pkt_free(pkt);
	return r;
}

int
rot_dns_txt(const char *server, const char *name, struct rot_txt *out)
{
	ldns_resolver *res = NULL;
	ldns_rdf *cur = NULL, *next = NULL;
	int r, queries;

	out->n = 0;
	out->cnames = 0;
	out->status = ROT_DNS_NODATA;
	out->target[0] = '\0';
	if ((cur = ldns_dname_new_frm_str(name)) == NULL) {
		r = dk_err_set(DK_ERR_INVALID, "\"%s\" is not a DNS name", name);
		goto out;
	}
	if ((r = rot_dns_resolver(server, &res)) != 0)
		goto out;
	for (queries = 0;; queries++) {
		if ((r = query_one(res, server, name, cur, out, &next)) != 0)
			goto out;
		if (next == NULL)
			break;
		if (queries >= ROT_CNAME_MAX) {
			r = query_fail(DK_ERR_PARSE, server, name,
			    "more CNAMEs than dkimkeep follows, or a CNAME loop");
			goto out;
		}
		/* The chain leaves the answer: ask for its next name. */
		ldns_rdf_deep_free(cur);
		cur = next;
		next = NULL;
	}
	r = 0;
out:
	ldns_rdf_deep_free(cur);
	ldns_rdf_deep_free(next);
	if (res != NULL)
		ldns_resolver_deep_free(res);
	return r;
}
