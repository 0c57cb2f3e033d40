/*
 * dns_update.c - RFC 2136 dynamic updates with TSIG (RFC 8945), through
 * ldns.  One UPDATE per record: delete the name's TXT RRset, then (add,
 * revoke) add the new record, so that it is idempotent and a repeated
 * step changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldns/ldns.h>

#include "common/dk_err.h"
#include "common/dk_secret.h"
#include "rotate/dns_query.h"
#include "rotate/publish.h"
#include "rotate/rot_record.h"

#define TSIG_NAME_MAX 255
#define TSIG_ALG_MAX  32

/* TSIG algorithms accepted: the HMAC-SHA2 ones of RFC 8945 §6. */
static const char *const tsig_algs[] = {"hmac-sha256", "hmac-sha384", "hmac-sha512", NULL};

/*
 * Read "name algorithm base64secret" from the key file into res.  The
 * file is read into locked memory and wiped; ldns keeps its own copy of
 * the secret, which update_free wipes.
 */
static int
tsig_load(const char *path, ldns_resolver *res)
{
	char name[TSIG_NAME_MAX + 2], alg[TSIG_ALG_MAX + 2];
	struct dk_secret sec = {NULL, 0};
	const char *p, *secret = NULL;
	size_t i;
	int r, n;

	if ((r = dk_secret_read_pin(path, &sec)) != 0) {
		r = dk_err_set(r == DK_ERR_PIN_INVALID ? DK_ERR_CONFIG : r,
		    "the TSIG key file %s cannot be read (it must be mode 0600 or 0400, one line "
		    "\"name algorithm base64secret\"): %s",
		    path, dk_strerror(r));
		goto out;
	}
	n = 0;
	if (sscanf(sec.data, "%256s %33s%n", name, alg, &n) != 2 || strlen(name) > TSIG_NAME_MAX)
		goto bad;
	for (p = sec.data + n; *p == ' ' || *p == '\t'; p++)
		;
	secret = p;
	if (*secret == '\0' || strpbrk(secret, " \t\r\n") != NULL)
		goto bad;
	for (i = 0; tsig_algs[i] != NULL; i++) {
		if (strcasecmp(alg, tsig_algs[i]) == 0 ||
		    (strncasecmp(alg, tsig_algs[i], strlen(tsig_algs[i])) == 0 &&
		        strcmp(alg + strlen(tsig_algs[i]), ".") == 0))
			break;
	}
	if (tsig_algs[i] == NULL) {
		r = dk_err_set(DK_ERR_CONFIG,
		    "TSIG key file %s: algorithm \"%s\" is not hmac-sha256, hmac-sha384 or "
		    "hmac-sha512",
		    path, alg);
		goto out;
	}
	snprintf(alg, sizeof(alg), "%s.", tsig_algs[i]);
	ldns_resolver_set_tsig_keyname(res, name);
	ldns_resolver_set_tsig_algorithm(res, alg);
	ldns_resolver_set_tsig_keydata(res, secret);
	r = 0;
	goto out;
bad:
	r = dk_err_set(DK_ERR_CONFIG,
	    "TSIG key file %s: not one line \"name algorithm base64secret\" (e.g. \"dkimkeep. "
	    "hmac-sha256 c2VjcmV0...\")",
	    path);
out:
	dk_secret_wipe(&sec);
	return r;
}

static void
update_free(ldns_resolver *res)
{
	const char *k;

	if (res == NULL)
		return;
	if ((k = ldns_resolver_tsig_keydata(res)) != NULL)
		explicit_bzero((char *)(uintptr_t)k, strlen(k));
	ldns_resolver_deep_free(res);
}

/* The zone that holds name: the owner of the SOA the server answers with (RFC 2136 §4.1). */
static int
zone_of(ldns_resolver *res, const char *server, const ldns_rdf *name, ldns_rdf **zone)
{
	ldns_rr_list *secs[2];
	ldns_pkt *pkt = NULL;
	ldns_rr *rr;
	size_t i, j;
	int r;

	*zone = NULL;
	if (ldns_resolver_send(&pkt, res, name, LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN, 0) !=
	        LDNS_STATUS_OK ||
	    pkt == NULL) {
		r = dk_err_set(DK_ERR_UNAVAILABLE,
		    "DNS server %s does not answer (finding the zone for an update); check [dns] "
		    "server=",
		    server);
		goto out;
	}
	secs[0] = ldns_pkt_answer(pkt);
	secs[1] = ldns_pkt_authority(pkt);
	for (j = 0; j < 2 && *zone == NULL; j++) {
		for (i = 0; secs[j] != NULL && i < ldns_rr_list_rr_count(secs[j]); i++) {
			rr = ldns_rr_list_rr(secs[j], i);
			if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA &&
			    (ldns_dname_compare(name, ldns_rr_owner(rr)) == 0 ||
			        ldns_dname_is_subdomain(name, ldns_rr_owner(rr)))) {
				*zone = ldns_rdf_clone(ldns_rr_owner(rr));
				break;
			}
		}
	}
	if (*zone == NULL) {
		r = dk_err_set(DK_ERR_UNAVAILABLE,
		    "DNS server %s is not authoritative for a zone holding the record (no SOA in "
		    "its answer); check [dns] server=",
		    server);
		goto out;
	}
	r = 0;
out:
	ldns_pkt_free(pkt);
	return r;
}

/* A TXT RR for name with value split into 255-byte character-strings (RFC 1035 §3.3.14). */
static int
txt_rr(const ldns_rdf *name, const char *value, unsigned ttl, ldns_rr **out)
{
	uint8_t chunk[ROT_DNS_CHUNK + 1];
	size_t len = strlen(value), off = 0, n;
	ldns_rdf *f;
	ldns_rr *rr;

	if ((rr = ldns_rr_new()) == NULL)
		return DK_ERR_NOMEM;
	ldns_rr_set_owner(rr, ldns_rdf_clone(name));
	ldns_rr_set_ttl(rr, ttl);
	ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
	ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
	do {
		n = len - off > ROT_DNS_CHUNK ? ROT_DNS_CHUNK : len - off;
		chunk[0] = (uint8_t)n;
		memcpy(chunk + 1, value + off, n);
		if ((f = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, n + 1, chunk)) == NULL ||
		    !ldns_rr_push_rdf(rr, f)) {
			ldns_rdf_deep_free(f);
			ldns_rr_free(rr);
			return DK_ERR_NOMEM;
		}
		off += n;
	} while (off < len);
	*out = rr;
	return 0;
}

/* The update section: delete the TXT RRset of name (RFC 2136 §2.5.2), then add value. */
static int
update_rrs(
    const ldns_rdf *name, const char *value, enum rot_pub act, unsigned ttl, ldns_rr_list **out)
{
	ldns_rr_list *l;
	ldns_rr *del, *add = NULL;
	int r;

	if ((l = ldns_rr_list_new()) == NULL || (del = ldns_rr_new()) == NULL) {
		ldns_rr_list_free(l);
		return DK_ERR_NOMEM;
	}
	ldns_rr_set_owner(del, ldns_rdf_clone(name));
	ldns_rr_set_ttl(del, 0);
	ldns_rr_set_class(del, LDNS_RR_CLASS_ANY);
	ldns_rr_set_type(del, LDNS_RR_TYPE_TXT);
	ldns_rr_list_push_rr(l, del);
	if (act != ROT_PUB_DELETE) {
		if ((r = txt_rr(name, value, ttl, &add)) != 0) {
			ldns_rr_list_deep_free(l);
			return r;
		}
		ldns_rr_list_push_rr(l, add);
	}
	*out = l;
	return 0;
}

/* Send the update and read the server's verdict. */
static int
update_send(ldns_resolver *res, const char *server, const char *name, ldns_pkt *pkt)
{
	ldns_pkt *ans = NULL;
	ldns_status st;
	int r;

	if (ldns_resolver_tsig_keyname(res) != NULL &&
	    ldns_update_pkt_tsig_add(pkt, res) != LDNS_STATUS_OK)
		return dk_err_set(DK_ERR_CONFIG,
		    "the update of %s cannot be signed with the TSIG "
		    "key; check tsig_key_file= in [dns]",
		    name);
	st = ldns_resolver_send_pkt(&ans, res, pkt);
	if (st == LDNS_STATUS_CRYPTO_TSIG_BOGUS || st == LDNS_STATUS_CRYPTO_TSIG_ERR)
		r = dk_err_set(DK_ERR_PERM,
		    "DNS server %s: the TSIG of its answer to the update of %s does not verify; "
		    "check the key in tsig_key_file=",
		    server, name);
	else if (st != LDNS_STATUS_OK || ans == NULL)
		r = dk_err_set(DK_ERR_UNAVAILABLE,
		    "DNS server %s does not answer the update of %s (%s); check [dns] server=",
		    server, name, ldns_get_errorstr_by_id(st));
	else if (ldns_pkt_get_rcode(ans) == LDNS_RCODE_NOERROR)
		r = 0;
	else if (ldns_pkt_get_rcode(ans) == LDNS_RCODE_REFUSED ||
	         ldns_pkt_get_rcode(ans) == LDNS_RCODE_NOTAUTH)
		r = dk_err_set(DK_ERR_PERM,
		    "DNS server %s refused the update of %s (rcode %d): allow updates of the zone "
		    "with the TSIG key of tsig_key_file=",
		    server, name, (int)ldns_pkt_get_rcode(ans));
	else
		r = dk_err_set(DK_ERR_UNAVAILABLE,
		    "DNS server %s failed the update of %s (rcode %d); see its log", server, name,
		    (int)ldns_pkt_get_rcode(ans));
	ldns_pkt_free(ans);
	return r;
}

int
rot_dns_update(const struct dk_conf_dns *dns, const char *name, const char *value, enum rot_pub act,
    unsigned ttl)
{
	ldns_resolver *res = NULL;
	ldns_rdf *dname = NULL, *zone = NULL;
	ldns_rr_list *up = NULL;
	ldns_pkt *pkt = NULL;
	int r;

	if (dns->server == NULL)
		return dk_err_set(DK_ERR_CONFIG, "dns_publish = rfc2136 needs server= in [dns] "
		                                 "(the primary that takes updates)");
	if ((dname = ldns_dname_new_frm_str(name)) == NULL) {
		r = dk_err_set(DK_ERR_INVALID, "\"%s\" is not a DNS name", name);
		goto out;
	}
	if ((r = rot_dns_resolver(dns->server, &res)) != 0)
		goto out;
	ldns_resolver_set_recursive(res, false);
	if (dns->tsig_key_file != NULL && (r = tsig_load(dns->tsig_key_file, res)) != 0)
		goto out;
	if ((r = zone_of(res, dns->server, dname, &zone)) != 0 ||
	    (r = update_rrs(dname, value, act, ttl, &up)) != 0)
		goto out;
	if ((pkt = ldns_update_pkt_new(zone, LDNS_RR_CLASS_IN, NULL, up, NULL)) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	zone = NULL;                 /* the packet owns it now */
	ldns_pkt_set_rd(pkt, false); /* the Z bits of an UPDATE are zero (RFC 2136 §2.2) */
	r = update_send(res, dns->server, name, pkt);
out:
	ldns_pkt_free(pkt);
	ldns_rr_list_deep_free(up);
	ldns_rdf_deep_free(zone);
	ldns_rdf_deep_free(dname);
	update_free(res);
	return r;
}
