/*
 * milter_hosts.h - dkimkeep-milter: which SMTP clients count as local.
 *
 * [milter] internal_hosts is a list of CIDR blocks (already checked and
 * normalized by dk_config); this module turns it into a table and matches
 * a connecting client's address against it.
 */
#ifndef MILTER_HOSTS_H
#define MILTER_HOSTS_H

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

struct milter_net {
	int af; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned bits;
};

struct milter_nets {
	struct milter_net *v;
	size_t n;
};

/*
 * Parse n "ADDR/LEN" strings into *out (freed with milter_nets_free()).
 * Errors: DK_ERR_CONFIG (detail names the entry), DK_ERR_NOMEM.
 */
int milter_nets_parse(char *const *cidrs, size_t n, struct milter_nets *out);
void milter_nets_free(struct milter_nets *nets);

/*
 * 1 when sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as
 * IPv4) is in one of the blocks, else 0.  Other families never match.
 */
int milter_nets_match(const struct milter_nets *nets, const struct sockaddr *sa);

#endif /* MILTER_HOSTS_H */
