/*
 * milter_hosts.c - dkimkeep-milter: matching client addresses to CIDR blocks.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "client/milter_hosts.h"
#include "common/dk_err.h"

#define NET_TEXT_MAX 64 /* "ffff:...:ffff/128" fits with room to spare */

static int
net_parse(const char *cidr, struct milter_net *net)
{
	char text[NET_TEXT_MAX], *slash, *end;
	unsigned long bits;
	size_t len = strlen(cidr);

	if (len >= sizeof(text))
		return DK_ERR_PARSE;
	memcpy(text, cidr, len + 1);
	memset(net, 0, sizeof(*net));
	net->af = strchr(text, ':') != NULL ? AF_INET6 : AF_INET;
	net->bits = net->af == AF_INET6 ? 128 : 32;
	if ((slash = strchr(text, '/')) != NULL) {
		*slash = '\0';
		bits = strtoul(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || bits > net->bits)
			return DK_ERR_PARSE;
		net->bits = (unsigned)bits;
	}
	return inet_pton(net->af, text, net->addr) == 1 ? 0 : DK_ERR_PARSE;
}

int
milter_nets_parse(char *const *cidrs, size_t n, struct milter_nets *out)
{
	struct milter_net *v = NULL;
	size_t i;
	int r;

	out->v = NULL;
	out->n = 0;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (net_parse(cidrs[i], &v[i]) != 0) {
			r = dk_err_set(DK_ERR_CONFIG,
			    "[milter] internal_hosts: \"%s\" is not a CIDR block like 10.0.0.0/8",
			    cidrs[i]);
			goto out;
		}
	}
	out->v = v;
	out->n = n;
	v = NULL;
	r = 0;
out:
	free(v);
	return r;
}

void
milter_nets_free(struct milter_nets *nets)
{
	free(nets->v);
	nets->v = NULL;
	nets->n = 0;
}

/* 1 when the first bits of a and b are equal. */
static int
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;
	uint8_t mask;

	if (memcmp(a, b, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

static int
nets_match_addr(const struct milter_nets *nets, int af, const uint8_t *addr)
{
	size_t i;

	for (i = 0; i < nets->n; i++) {
		if (nets->v[i].af == af && prefix_equal(nets->v[i].addr, addr, nets->v[i].bits))
			return 1;
	}
	return 0;
}

int
milter_nets_match(const struct milter_nets *nets, const struct sockaddr *sa)
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)sa;
		return nets_match_addr(nets, AF_INET, (const uint8_t *)&sin->sin_addr);
	}
	if (sa->sa_family != AF_INET6)
		return 0;
	sin6 = (const struct sockaddr_in6 *)(const void *)sa;
	/* ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket. */
	if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
	    nets_match_addr(nets, AF_INET, sin6->sin6_addr.s6_addr + 12))
		return 1;
	return nets_match_addr(nets, AF_INET6, sin6->sin6_addr.s6_addr);
}
