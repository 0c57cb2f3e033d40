/*
 * cli_dnstxt.c - a DNS TXT lookup (RFC 1035, EDNS0 of RFC 6891) whose
 * answer is read through a bounded reader only: every length, count and
 * compression pointer is checked against what is left of the message.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <resolv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "client/cli_dnstxt.h"
#include "common/dk_err.h"

#define DNS_MSG_MAX   65535 /* a DNS message over TCP (RFC 1035 §4.2.2) */
#define DNS_UDP_SIZE  4096  /* the EDNS0 payload size we offer (RFC 6891 §6.2.5) */
#define DNS_NAME_MAX  255   /* octets of a name on the wire (RFC 1035 §2.3.4) */
#define DNS_LABEL_MAX 63
#define DNS_HEADER    12
#define DNS_TRIES     3
#define DNS_PTR_HOPS  32                     /* compression pointers followed in one name */
#define DNS_CNAME_MAX 8                      /* CNAMEs followed from the name asked */
#define NAME_TEXT_MAX (4 * DNS_NAME_MAX + 1) /* a name with every byte escaped */
#define HOST_MAX      256

void
cli_txt_init(struct cli_txt *t)
{
	size_t i;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < CLI_TXT_RECORDS_MAX; i++)
		dk_buf_init(&t->v[i], CLI_TXT_VALUE_MAX);
}

void
cli_txt_free(struct cli_txt *t)
{
	size_t i;

	for (i = 0; i < CLI_TXT_RECORDS_MAX; i++)
		dk_buf_free(&t->v[i]);
	t->n = 0;
	t->status = CLI_TXT_NODATA;
}

/* ---- the bounded reader ---- */

struct rd {
	const uint8_t *msg;
	size_t len, off;
};

static int
rd_u16(struct rd *r, unsigned *v)
{
	if (r->len - r->off < 2)
		return DK_ERR_PARSE;
	*v = (unsigned)r->msg[r->off] << 8 | r->msg[r->off + 1];
	r->off += 2;
	return 0;
}

static int
rd_skip(struct rd *r, size_t n)
{
	if (r->len - r->off < n)
		return DK_ERR_PARSE;
	r->off += n;
	return 0;
}

/* Append one label byte as text: lower case, or \DDD for anything but [a-z0-9_-]. */
static int
name_byte(uint8_t c, char *out, size_t outlen, size_t *o)
{
	if (c >= 'A' && c <= 'Z')
		c = (uint8_t)(c - 'A' + 'a');
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
		if (*o + 1 >= outlen)
			return DK_ERR_PARSE;
		out[(*o)++] = (char)c;
		return 0;
	}
	if (*o + 4 >= outlen)
		return DK_ERR_PARSE;
	snprintf(out + *o, 5, "\\%03u", c);
	*o += 4;
	return 0;
}

/*
 * The name at r->off (RFC 1035 §4.1.4: labels, possibly ending in a
 * compression pointer) as text, labels joined by '.'; r->off moves past
 * where the name starts.  Pointers must point backwards, so they cannot
 * loop.
 */
static int
rd_name(struct rd *r, char *out, size_t outlen)
{
	size_t pos = r->off, after = 0, wire = 0, o = 0, i, ptr;
	int hops = 0;
	unsigned len;

	for (;;) {
		if (pos >= r->len)
			return DK_ERR_PARSE;
		len = r->msg[pos];
		if ((len & 0xc0) == 0xc0) {
			if (pos + 1 >= r->len || ++hops > DNS_PTR_HOPS)
				return DK_ERR_PARSE;
			ptr = (size_t)(len & 0x3f) << 8 | r->msg[pos + 1];
			if (after == 0)
				after = pos + 2;
			if (ptr >= pos)
				return DK_ERR_PARSE;
			pos = ptr;
			continue;
		}
		if ((len & 0xc0) != 0)
			return DK_ERR_PARSE; /* RFC 6891 §5: extended label types are gone */
		pos++;
		if ((wire += len + 1) > DNS_NAME_MAX)
			return DK_ERR_PARSE;
		if (len == 0)
			break;
		if (len > r->len - pos)
			return DK_ERR_PARSE;
		if (o > 0) {
			if (o + 1 >= outlen)
				return DK_ERR_PARSE;
			out[o++] = '.';
		}
		for (i = 0; i < len; i++) {
			if (name_byte(r->msg[pos + i], out, outlen, &o) != 0)
				return DK_ERR_PARSE;
		}
		pos += len;
	}
	out[o] = '\0';
	r->off = after != 0 ? after : pos;
	return 0;
}

/* ---- the query ---- */

/* name as the wire labels of a question, and as the text rd_name gives back. */
static int
qname_build(const char *name, uint8_t *q, size_t qmax, size_t *qlen, char *text, size_t textlen)
{
	const char *p = name, *dot;
	size_t len, o = 0, i;
	int r;

	while (*p != '\0') {
		dot = strchr(p, '.');
		len = dot != NULL ? (size_t)(dot - p) : strlen(p);
		if (len == 0 || len > DNS_LABEL_MAX || *qlen + 1 + len + 1 > qmax ||
		    *qlen + 1 + len + 1 > DNS_HEADER + DNS_NAME_MAX)
			return dk_err_set(DK_ERR_INVALID, "\"%s\" is not a valid DNS name", name);
		q[(*qlen)++] = (uint8_t)len;
		memcpy(q + *qlen, p, len);
		*qlen += len;
		if (o > 0)
			text[o++] = '.';
		for (i = 0; i < len; i++) {
			if ((r = name_byte((uint8_t)p[i], text, textlen, &o)) != 0)
				return dk_err_set(DK_ERR_INVALID, "\"%s\" is too long", name);
		}
		if (dot == NULL || dot[1] == '\0')
			break;
		p = dot + 1;
	}
	if (*qlen + 1 > qmax)
		return DK_ERR_INVALID;
	q[(*qlen)++] = 0;
	text[o] = '\0';
	return 0;
}

/* A query for the TXT records of name, recursion desired, with an EDNS0 OPT record. */
static int
query_build(
    const char *name, unsigned id, uint8_t *q, size_t qmax, size_t *qlen, char *text, size_t tlen)
{
	static const uint8_t tail[] = {
	    0, ns_t_txt, 0, ns_c_in,                /* QTYPE TXT, QCLASS IN */
	    0, 0, ns_t_opt,                         /* OPT: root name, type 41 */
	    DNS_UDP_SIZE >> 8, DNS_UDP_SIZE & 0xff, /* its class: the payload size */
	    0, 0, 0, 0, 0, 0,                       /* TTL (extended rcode, flags), RDLENGTH */
	};
	int r;

	if (qmax < DNS_HEADER)
		return DK_ERR_INVALID;
	memset(q, 0, DNS_HEADER);
	q[0] = (uint8_t)(id >> 8);
	q[1] = (uint8_t)id;
	q[2] = 0x01; /* RD */
	q[5] = 1;    /* QDCOUNT */
	q[11] = 1;   /* ARCOUNT: the OPT record */
	*qlen = DNS_HEADER;
	if ((r = qname_build(name, q, qmax, qlen, text, tlen)) != 0)
		return r;
	if (*qlen + sizeof(tail) > qmax)
		return DK_ERR_INVALID;
	memcpy(q + *qlen, tail, sizeof(tail));
	*qlen += sizeof(tail);
	return 0;
}

/* ---- the answer ---- */

/* The strings of one TXT RDATA joined into out (RFC 6376 §3.6.2.2). */
static int
txt_join(const uint8_t *rdata, size_t rdlen, struct dk_buf *out)
{
	size_t p = 0, n;
	int r;

	while (p < rdlen) {
		n = rdata[p++];
		if (n > rdlen - p)
			return DK_ERR_PARSE;
		if ((r = dk_buf_put(out, rdata + p, n)) != 0)
			return r;
		p += n;
	}
	return 0;
}

/*
 * One pass over the answer section: the TXT records owned by cur go to
 * out; *next is the target of a CNAME owned by cur ("" when none).
 */
static int
answer_pass(struct rd *r, unsigned ancount, const char *cur, char *next, struct cli_txt *out)
{
	char owner[NAME_TEXT_MAX];
	unsigned type, cls, rdlen, i;
	size_t rdoff;
	int e;

	next[0] = '\0';
	for (i = 0; i < ancount; i++) {
		if ((e = rd_name(r, owner, sizeof(owner))) != 0 || (e = rd_u16(r, &type)) != 0 ||
		    (e = rd_u16(r, &cls)) != 0 || (e = rd_skip(r, 4)) != 0 ||
		    (e = rd_u16(r, &rdlen)) != 0)
			return e;
		rdoff = r->off;
		if ((e = rd_skip(r, rdlen)) != 0)
			return e;
		if (cls != ns_c_in || strcmp(owner, cur) != 0)
			continue;
		if (type == ns_t_cname) {
			r->off = rdoff;
			if ((e = rd_name(r, next, NAME_TEXT_MAX)) != 0)
				return e;
			r->off = rdoff + rdlen;
		} else if (type == ns_t_txt && out->n < CLI_TXT_RECORDS_MAX) {
			if ((e = txt_join(r->msg + rdoff, rdlen, &out->v[out->n])) != 0)
				return e;
			out->n++;
		}
	}
	return 0;
}

/* The header and question of an answer; *rcode, *tc and *ancount from the header. */
static int
answer_head(struct rd *r, int check_id, unsigned id, const char *qname, unsigned *rcode, int *tc,
    unsigned *ancount)
{
	char name[NAME_TEXT_MAX];
	unsigned rid, flags, qd, type, cls;
	int e;

	if ((e = rd_u16(r, &rid)) != 0 || (e = rd_u16(r, &flags)) != 0 ||
	    (e = rd_u16(r, &qd)) != 0 || (e = rd_u16(r, ancount)) != 0 || (e = rd_skip(r, 4)) != 0)
		return e;
	if ((check_id && rid != id) || !(flags & 0x8000) || ((flags >> 11) & 0xf) != 0)
		return DK_ERR_PARSE; /* not an answer to a standard query of ours */
	*tc = (flags & 0x0200) != 0;
	*rcode = flags & 0xf;
	if (qd == 0 && *rcode != 0)
		return 0; /* some servers drop the question from an error */
	if (qd != 1)
		return DK_ERR_PARSE;
	if ((e = rd_name(r, name, sizeof(name))) != 0 || (e = rd_u16(r, &type)) != 0 ||
	    (e = rd_u16(r, &cls)) != 0)
		return e;
	if (strcmp(name, qname) != 0 || type != ns_t_txt || cls != ns_c_in)
		return DK_ERR_PARSE;
	return 0;
}

static const char *
rcode_name(unsigned rcode)
{
	switch (rcode) {
	case ns_r_formerr:
		return "FORMERR";
	case ns_r_servfail:
		return "SERVFAIL";
	case ns_r_notimpl:
		return "NOTIMP";
	case ns_r_refused:
		return "REFUSED";
	default:
		return "an error";
	}
}

/* Read an answer into out; *tc says it was truncated (ask again over TCP). */
static int
answer_parse(const uint8_t *msg, size_t len, int check_id, unsigned id, const char *qname,
    const char *shown, int *tc, struct cli_txt *out)
{
	char cur[NAME_TEXT_MAX], next[NAME_TEXT_MAX];
	struct rd r = {msg, len, 0};
	unsigned rcode = 0, ancount = 0, hops;
	size_t answers;
	int e;

	if ((e = answer_head(&r, check_id, id, qname, &rcode, tc, &ancount)) != 0)
		return dk_err_set(
		    DK_ERR_PARSE, "DNS server %s sent a malformed answer for %s", shown, qname);
	if (*tc)
		return 0;
	if (rcode == ns_r_nxdomain) {
		out->status = CLI_TXT_NXDOMAIN;
		return 0;
	}
	if (rcode != ns_r_noerror)
		return dk_err_set(DK_ERR_UNAVAILABLE, "DNS server %s answered %s (rcode %u) for %s",
		    shown, rcode_name(rcode), rcode, qname);
	answers = r.off;
	snprintf(cur, sizeof(cur), "%s", qname);
	for (hops = 0; hops <= DNS_CNAME_MAX; hops++) {
		r.off = answers;
		if ((e = answer_pass(&r, ancount, cur, next, out)) != 0)
			return dk_err_set(e == DK_ERR_TOO_LARGE ? e : DK_ERR_PARSE,
			    "DNS server %s sent a malformed answer for %s%s", shown, qname,
			    e == DK_ERR_TOO_LARGE ? " (a TXT record over 4096 bytes)" : "");
		if (out->n > 0 || next[0] == '\0')
			break;
		memcpy(cur, next, sizeof(cur));
	}
	out->status = out->n > 0 ? CLI_TXT_FOUND : CLI_TXT_NODATA;
	return 0;
}

/* ---- transports ---- */

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for ev or the deadline passes: 1 ready, 0 timeout, <0 error. */
static int
wait_fd(int fd, short ev, long long deadline)
{
	struct pollfd pfd = {fd, ev, 0};
	long long left;
	int n;

	for (;;) {
		if ((left = deadline - now_ms()) <= 0)
			return 0;
		n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/* "HOST:PORT" or "[V6]:PORT" into an address for socktype. */
static int
server_addr(const char *server, int socktype, struct addrinfo **ai)
{
	struct addrinfo hints;
	char host[HOST_MAX];
	const char *h = server, *port = "53", *end;
	int e;

	if (server[0] == '[') {
		h = server + 1;
		if ((end = strchr(h, ']')) == NULL)
			goto bad;
		if (end[1] == ':')
			port = end + 2;
	} else if ((end = strrchr(server, ':')) != NULL) {
		port = end + 1;
	} else {
		end = server + strlen(server);
	}
	if ((size_t)(end - h) == 0 || (size_t)(end - h) >= sizeof(host))
		goto bad;
	memcpy(host, h, (size_t)(end - h));
	host[end - h] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = socktype;
	hints.ai_flags = AI_NUMERICSERV;
	if ((e = getaddrinfo(host, port, &hints, ai)) != 0)
		return dk_err_set(DK_ERR_UNAVAILABLE,
		    "cannot find the address of DNS server %s: %s", server, gai_strerror(e));
	return 0;
bad:
	return dk_err_set(DK_ERR_INVALID, "DNS server \"%s\" is not HOST:PORT", server);
}

/* One exchange over UDP: the query, tried DNS_TRIES times; answers with other ids are dropped. */
static int
udp_exchange(const char *server, const char *qname, const uint8_t *q, size_t qlen, unsigned id,
    uint8_t *ans, size_t *anslen)
{
	struct addrinfo *ai = NULL;
	long long deadline;
	ssize_t n;
	int fd = -1, r, w, try;

	if ((r = server_addr(server, SOCK_DGRAM, &ai)) != 0)
		return r;
	if ((fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		r = dk_err_set(
		    DK_ERR_UNAVAILABLE, "cannot reach DNS server %s: %s", server, strerror(errno));
		goto out;
	}
	for (try = 0; try < DNS_TRIES; try++) {
		if (send(fd, q, qlen, 0) != (ssize_t)qlen)
			continue;
		deadline = now_ms() + CLI_DNS_TIMEOUT_MS;
		while ((w = wait_fd(fd, POLLIN, deadline)) > 0) {
			if ((n = recv(fd, ans, DNS_MSG_MAX, 0)) < 0) {
				if (errno == EINTR)
					continue;
				r = dk_err_set(DK_ERR_UNAVAILABLE, "DNS server %s: %s", server,
				    strerror(errno));
				goto out;
			}
			/* A late answer to an earlier try is as good; someone else's is not. */
			if (n >= DNS_HEADER && ((unsigned)ans[0] << 8 | ans[1]) == id) {
				*anslen = (size_t)n;
				r = 0;
				goto out;
			}
		}
		if (w < 0)
			break;
	}
	r = dk_err_set(DK_ERR_TIMEOUT, "no answer from DNS server %s for %s TXT after %d tries",
	    server, qname, DNS_TRIES);
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return r;
}

static int
tcp_io(int fd, uint8_t *buf, size_t len, int out, long long deadline)
{
	size_t done = 0;
	ssize_t n;
	int w;

	while (done < len) {
		if ((w = wait_fd(fd, out ? POLLOUT : POLLIN, deadline)) <= 0)
			return w == 0 ? DK_ERR_TIMEOUT : DK_ERR_IO;
		n = out ? send(fd, buf + done, len - done, MSG_NOSIGNAL)
		        : recv(fd, buf + done, len - done, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return DK_ERR_IO;
		done += (size_t)n;
	}
	return 0;
}

/* One exchange over TCP (RFC 1035 §4.2.2: each message after a two-byte length). */
static int
tcp_exchange(const char *server, const char *qname, const uint8_t *q, size_t qlen, uint8_t *ans,
    size_t *anslen)
{
	struct addrinfo *ai = NULL;
	long long deadline = now_ms() + DNS_TRIES * CLI_DNS_TIMEOUT_MS;
	uint8_t len[2] = {(uint8_t)(qlen >> 8), (uint8_t)qlen};
	socklen_t sl = sizeof(int);
	int fd = -1, r, soerr = 0;

	if ((r = server_addr(server, SOCK_STREAM, &ai)) != 0)
		return r;
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) ||
	    wait_fd(fd, POLLOUT, deadline) <= 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
		r = dk_err_set(DK_ERR_UNAVAILABLE,
		    "the answer for %s TXT was truncated and DNS server %s cannot be reached "
		    "over TCP: %s",
		    qname, server,
		    strerror(soerr != 0   ? soerr
		             : errno != 0 ? errno
		                          : ETIMEDOUT));
		goto out;
	}
	if ((r = tcp_io(fd, len, 2, 1, deadline)) != 0 ||
	    (r = tcp_io(fd, (uint8_t *)(uintptr_t)q, qlen, 1, deadline)) != 0 ||
	    (r = tcp_io(fd, len, 2, 0, deadline)) != 0 ||
	    (*anslen = (size_t)len[0] << 8 | len[1]) < DNS_HEADER ||
	    (r = tcp_io(fd, ans, *anslen, 0, deadline)) != 0) {
		r = dk_err_set(r == DK_ERR_TIMEOUT ? r : DK_ERR_UNAVAILABLE,
		    "DNS server %s did not answer %s TXT over TCP", server, qname);
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return r;
}

/* Through the system resolver (/etc/resolv.conf); NXDOMAIN and NODATA come back as status. */
static int
system_exchange(const char *qname, uint8_t *ans, size_t *anslen, struct cli_txt *out)
{
	struct __res_state rs;
	int n, herr, r = 0;

	memset(&rs, 0, sizeof(rs));
	if (res_ninit(&rs) != 0)
		return dk_err_set(DK_ERR_UNAVAILABLE,
		    "cannot read the system resolver's configuration (/etc/resolv.conf); set "
		    "resolver= in [dns]");
	rs.options |= RES_USE_EDNS0;
	n = res_nquery(&rs, qname, ns_c_in, ns_t_txt, ans, DNS_MSG_MAX);
	herr = rs.res_h_errno;
	res_nclose(&rs);
	if (n >= DNS_HEADER) {
		*anslen = (size_t)n;
		return 0;
	}
	*anslen = 0;
	if (herr == HOST_NOT_FOUND)
		out->status = CLI_TXT_NXDOMAIN;
	else if (herr == NO_DATA)
		out->status = CLI_TXT_NODATA;
	else
		r = dk_err_set(DK_ERR_UNAVAILABLE,
		    "the system resolver found no answer for %s TXT (%s); try again, or set "
		    "resolver= in [dns]",
		    qname, herr == TRY_AGAIN ? "server failure or timeout" : "no recovery");
	return r;
}

int
cli_dns_txt_answer(
    const uint8_t *msg, size_t len, const char *qname, int *truncated, struct cli_txt *out)
{
	cli_txt_free(out);
	*truncated = 0;
	return answer_parse(msg, len, 0, 0, qname, "(given)", truncated, out);
}

int
cli_dns_txt(const char *server, const char *name, struct cli_txt *out)
{
	uint8_t q[DNS_HEADER + DNS_NAME_MAX + 32], *ans = NULL;
	char qname[NAME_TEXT_MAX];
	const char *shown = server != NULL ? server : "(system resolver)";
	unsigned id = 0;
	size_t qlen = 0, anslen = 0;
	int r, tc = 0;

	cli_txt_free(out);
	if ((ans = malloc(DNS_MSG_MAX)) == NULL)
		return DK_ERR_NOMEM;
	if (RAND_bytes((unsigned char *)&id, sizeof(id)) != 1) {
		r = dk_err_set(DK_ERR_INTERNAL, "OpenSSL RAND_bytes failed");
		goto out;
	}
	id &= 0xffff;
	if ((r = query_build(name, id, q, sizeof(q), &qlen, qname, sizeof(qname))) != 0)
		goto out;
	if (server == NULL) {
		if ((r = system_exchange(qname, ans, &anslen, out)) != 0 || anslen == 0)
			goto out;
		r = answer_parse(ans, anslen, 0, 0, qname, shown, &tc, out);
		goto out;
	}
	if ((r = udp_exchange(server, qname, q, qlen, id, ans, &anslen)) != 0 ||
	    (r = answer_parse(ans, anslen, 1, id, qname, shown, &tc, out)) != 0 || !tc)
		goto out;
	if ((r = tcp_exchange(server, qname, q, qlen, ans, &anslen)) != 0 ||
	    (r = answer_parse(ans, anslen, 1, id, qname, shown, &tc, out)) != 0)
		goto out;
	if (tc)
		r = dk_err_set(
		    DK_ERR_PARSE, "DNS server %s sent a truncated answer over TCP", shown);
out:
	free(ans);
	return r;
}
