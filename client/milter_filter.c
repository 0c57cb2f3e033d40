/*
 * milter_filter.c - dkimkeep-milter: the libmilter callbacks.
 *
 * We decide at connect / MAIL FROM whether the message is ours to sign
 * ([milter] sign and internal_hosts), rebuild the header section as the
 * fields come, hash the body chunk by chunk (it is never kept), and at the
 * end of the message ask dkimkeepd for the signatures with the body hash
 * and insert them at the top.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/dkimkeep_client.h"
#include "client/milter_filter.h"
#include "client/milter_msg.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "common/dk_log.h"

#define ADDR_TEXT_MAX (256 + INET6_ADDRSTRLEN) /* "hostname[address]", hostname cut at 200 */

/* Set by milter_filter_init() before smfi_main(); read-only in the callbacks' threads. */
static struct milter_policy cfg;

/* Per SMTP connection (smfi_setpriv); one libmilter thread at a time uses it. */
struct mconn {
	int leadspc;  /* SMFIP_HDR_LEADSPC: header values keep the space after ':' */
	int internal; /* client in internal_hosts, or not a network client */
	int signing;  /* the current message is to be signed */
	char client[ADDR_TEXT_MAX];
	struct milter_msg msg;
};

/* libmilter takes char *, not const char *: names it is handed live here. */
static char filter_name[] = "dkimkeep-milter";
static char hdr_dkim[] = "DKIM-Signature";
static char sym_qid[] = "i";
static char sym_auth[] = "{auth_authen}";
static char reply_code[] = "451";
static char reply_xcode[] = "4.7.1";
static char reply_text[] = "DKIM signing is temporarily unavailable; try again later";

static struct mconn *
conn_get(SMFICTX *ctx)
{
	struct mconn *c = smfi_getpriv(ctx);

	if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL) {
		milter_msg_init(&c->msg);
		snprintf(c->client, sizeof(c->client), "unknown");
		if (smfi_setpriv(ctx, c) != MI_SUCCESS) {
			free(c);
			c = NULL;
		}
	}
	return c;
}

static const char *
qid(SMFICTX *ctx)
{
	const char *q = smfi_getsymval(ctx, sym_qid);

	return q != NULL && q[0] != '\0' ? q : "NOQUEUE";
}

/* What to answer when signing failed for a reason that may pass: [milter] on_error. */
static sfsistat
fail_action(SMFICTX *ctx, const char *why)
{
	if (cfg.on_error_accept) {
		dk_log_warn(
		    "%s: passing the message on unsigned (on_error = accept): %s", qid(ctx), why);
		return SMFIS_ACCEPT;
	}
	dk_log_err(
	    "%s: answering 451 so the client retries (on_error = tempfail): %s", qid(ctx), why);
	(void)smfi_setreply(ctx, reply_code, reply_xcode, reply_text);
	return SMFIS_TEMPFAIL;
}

/* The message cannot be signed and never will be: let it go unsigned. */
static sfsistat
pass_unsigned(SMFICTX *ctx, struct mconn *c, const char *why)
{
	dk_log_notice("%s: not signed, passed on unsigned: %s", qid(ctx), why);
	if (c != NULL) {
		c->signing = 0;
		milter_msg_reset(&c->msg);
	}
	return SMFIS_ACCEPT;
}

static sfsistat
mlfi_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2, unsigned long f3,
    unsigned long *pf0, unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	struct mconn *c;

	(void)f2;
	(void)f3;
	if ((f0 & SMFIF_ADDHDRS) == 0) {
		dk_log_err("the MTA does not let milters add header fields; nothing can be signed");
		return SMFIS_REJECT;
	}
	*pf0 = SMFIF_ADDHDRS;
	*pf2 = 0;
	*pf3 = 0;
	/*
	 * Ask for header values exactly as they are, with the space after the
	 * colon, so that the section we sign is the one that is sent.
	 */
	if ((f1 & SMFIP_HDR_LEADSPC) != 0 && (c = conn_get(ctx)) != NULL) {
		*pf1 |= SMFIP_HDR_LEADSPC;
		c->leadspc = 1;
	}
	return SMFIS_CONTINUE;
}

static void
addr_text(const struct sockaddr *sa, const char *hostname, char *out, size_t outlen)
{
	char a[INET6_ADDRSTRLEN];
	const void *p = NULL;

	if (sa != NULL && sa->sa_family == AF_INET)
		p = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa != NULL && sa->sa_family == AF_INET6)
		p = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (p == NULL || inet_ntop(sa->sa_family, p, a, sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "%s", sa == NULL ? "no address" : "local socket");
	snprintf(out, outlen, "%.200s[%s]", hostname != NULL ? hostname : "unknown", a);
}

static sfsistat
mlfi_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *hostaddr)
{
	struct mconn *c = conn_get(ctx);

	if (c == NULL)
		return fail_action(ctx, "out of memory");
	/* No address, or a unix socket: the mail did not come over the network. */
	c->internal = hostaddr == NULL || hostaddr->sa_family == AF_UNIX ||
	              milter_nets_match(&cfg.nets, hostaddr);
	addr_text(hostaddr, hostname, c->client, sizeof(c->client));
	if (cfg.sign == DK_MILTER_SIGN_LOCAL && !c->internal) {
		dk_log_debug(
		    "%s: not in internal_hosts; its mail is not signed (sign = local)", c->client);
		return SMFIS_ACCEPT;
	}
	return SMFIS_CONTINUE;
}

static int
sign_wanted(SMFICTX *ctx, const struct mconn *c)
{
	const char *auth;

	switch (cfg.sign) {
	case DK_MILTER_SIGN_ALL:
		return 1;
	case DK_MILTER_SIGN_AUTHENTICATED:
		if (c->internal)
			return 1;
		auth = smfi_getsymval(ctx, sym_auth);
		return auth != NULL && auth[0] != '\0';
	case DK_MILTER_SIGN_LOCAL:
	default:
		return c->internal;
	}
}

static sfsistat
mlfi_envfrom(SMFICTX *ctx, char **argv)
{
	struct mconn *c = conn_get(ctx);

	(void)argv;
	if (c == NULL)
		return fail_action(ctx, "out of memory");
	milter_msg_reset(&c->msg);
	c->signing = sign_wanted(ctx, c);
	if (!c->signing) {
		dk_log_debug("%s: mail from %s is not signed: not in internal_hosts and not "
		             "authenticated",
		    qid(ctx), c->client);
		return SMFIS_ACCEPT;
	}
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_header(SMFICTX *ctx, char *name, char *value)
{
	struct mconn *c = smfi_getpriv(ctx);
	int r;

	if (c == NULL || !c->signing)
		return SMFIS_CONTINUE;
	if ((r = milter_msg_header(&c->msg, name, value, c->leadspc)) == 0)
		return SMFIS_CONTINUE;
	if (r == DK_ERR_NOMEM)
		return fail_action(ctx, "out of memory");
	if (r == DK_ERR_MSG_HEADER_TOO_LARGE)
		return pass_unsigned(ctx, c, "the header section is over 1 MiB");
	return pass_unsigned(
	    ctx, c, "a header field name is empty, too long or not printable ASCII");
}

static sfsistat
mlfi_eoh(SMFICTX *ctx)
{
	struct mconn *c = smfi_getpriv(ctx);
	int r;

	if (c == NULL || !c->signing)
		return SMFIS_CONTINUE;
	if ((r = milter_msg_eoh(&c->msg)) == 0)
		return SMFIS_CONTINUE;
	if (r == DK_ERR_MSG_NO_FROM)
		return pass_unsigned(ctx, c, "it has no From field (RFC 6376 §5.4 needs one)");
	if (r == DK_ERR_MSG_MULTI_FROM)
		return pass_unsigned(ctx, c, "it has more than one From field");
	return fail_action(ctx, dk_strerror(r));
}

static sfsistat
mlfi_body(SMFICTX *ctx, unsigned char *data, size_t len)
{
	struct mconn *c = smfi_getpriv(ctx);
	int r;

	if (c == NULL || !c->signing)
		return SMFIS_CONTINUE;
	if ((r = milter_msg_body(&c->msg, data, len)) != 0)
		return fail_action(ctx, dk_strerror(r));
	return SMFIS_CONTINUE;
}

/*
 * The field value to hand to smfi_insheader: what follows "DKIM-Signature:".
 * Folds become LF + TAB: the MTA stores lines with its own line ends and
 * writes CRLF on the wire itself (a CR kept here would be sent as "\r\r\n").
 * Without SMFIP_HDR_LEADSPC the MTA adds the space after the colon itself.
 */
static int
sig_value(const char *header, int leadspc, struct dk_buf *out)
{
	const char *p = strchr(header, ':');
	int r = 0;

	if (p == NULL)
		return DK_ERR_PROTO;
	p++;
	if (!leadspc)
		p += strspn(p, " \t");
	for (; *p != '\0' && r == 0; p++) {
		if (p[0] == '\r' && p[1] == '\n')
			continue;
		r = dk_buf_putc(out, (uint8_t)*p);
	}
	return r;
}

static int
insert_sigs(SMFICTX *ctx, const struct mconn *c, const struct dkc_result *res)
{
	struct dk_buf v;
	size_t i;
	int r = 0;

	dk_buf_init(&v, 64 * 1024);
	/* Insert the last first, each at the top: they end up in the daemon's order. */
	for (i = res->nsigs; i-- > 0 && r == 0;) {
		dk_buf_reset(&v);
		if ((r = sig_value(res->sigs[i].header, c->leadspc, &v)) != 0)
			break;
		if (smfi_insheader(ctx, 0, hdr_dkim, (char *)v.data) != MI_SUCCESS)
			r = dk_err_set(DK_ERR_INTERNAL, "the MTA refused to insert DKIM-Signature");
	}
	dk_buf_free(&v);
	return r;
}

static void
log_signed(SMFICTX *ctx, const struct dkc_result *res)
{
	char sels[256];
	size_t i, n = 0;
	int w;

	sels[0] = '\0';
	for (i = 0; i < res->nsigs && n < sizeof(sels); i++) {
		w = snprintf(sels + n, sizeof(sels) - n, "%s%s (%s)", i ? ", " : "",
		    res->sigs[i].selector, res->sigs[i].slot);
		if (w < 0)
			break;
		n += (size_t)w;
	}
	dk_log_info("%s: signed for %s with %s", qid(ctx), res->domain, sels);
}

/* A daemon answer other than OK: pass unsigned, or the on_error action. */
static sfsistat
answer_not_ok(SMFICTX *ctx, struct mconn *c, const struct dkc_result *res)
{
	char why[1024];

	snprintf(why, sizeof(why), "dkimkeepd answered %s: %s", dkc_status_name(res->status),
	    res->error);
	switch (res->status) {
	case DKC_BAD_MESSAGE:
	case DKC_BAD_REQUEST:
	case DKC_NOT_AUTHORIZED:
	case DKC_UNKNOWN_DOMAIN:
		return pass_unsigned(ctx, c, why);
	default: /* NO_KEY, BUSY, RATE_LIMITED, TOKEN_/AUDIT_UNAVAILABLE, INTERNAL */
		return fail_action(ctx, why);
	}
}

static sfsistat
mlfi_eom(SMFICTX *ctx)
{
	struct mconn *c = smfi_getpriv(ctx);
	struct dkc_sign_req req;
	struct dkc_result res;
	uint8_t bh[DKC_HASH_LEN];
	sfsistat st;
	int r;

	memset(&res, 0, sizeof(res));
	if (c == NULL || !c->signing)
		return SMFIS_CONTINUE;
	if ((r = milter_msg_final(&c->msg, bh)) != 0) {
		st = fail_action(ctx, dk_strerror(r));
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.header_section = c->msg.hdr.data;
	req.header_len = c->msg.hdr.len;
	req.body_hash = bh;
	r = milter_pool_sign(cfg.pool, &req, &res);
	if (r == DK_ERR_TOO_LARGE) {
		st = pass_unsigned(ctx, c, "the header section does not fit in a request");
		goto out;
	}
	if (r != 0) {
		st = fail_action(ctx, dkc_strerror(r));
		goto out;
	}
	if (res.status != DKC_OK) {
		st = answer_not_ok(ctx, c, &res);
		goto out;
	}
	if ((r = insert_sigs(ctx, c, &res)) != 0) {
		st = fail_action(ctx, dkc_strerror(r));
		goto out;
	}
	log_signed(ctx, &res);
	st = SMFIS_CONTINUE;
out:
	dkc_result_free(&res);
	c->signing = 0;
	milter_msg_reset(&c->msg);
	return st;
}

static sfsistat
mlfi_abort(SMFICTX *ctx)
{
	struct mconn *c = smfi_getpriv(ctx);

	if (c != NULL) {
		c->signing = 0;
		milter_msg_reset(&c->msg);
	}
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_close(SMFICTX *ctx)
{
	struct mconn *c = smfi_getpriv(ctx);

	if (c != NULL) {
		milter_msg_reset(&c->msg);
		free(c);
		smfi_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

static struct smfiDesc filter_desc = {
    .xxfi_name = filter_name,
    .xxfi_version = SMFI_VERSION,
    .xxfi_flags = SMFIF_ADDHDRS,
    .xxfi_connect = mlfi_connect,
    .xxfi_envfrom = mlfi_envfrom,
    .xxfi_header = mlfi_header,
    .xxfi_eoh = mlfi_eoh,
    .xxfi_body = mlfi_body,
    .xxfi_eom = mlfi_eom,
    .xxfi_abort = mlfi_abort,
    .xxfi_close = mlfi_close,
    .xxfi_negotiate = mlfi_negotiate,
};

void
milter_filter_init(const struct milter_policy *p)
{
	cfg = *p;
}

struct smfiDesc *
milter_filter_desc(void)
{
	return &filter_desc;
}
