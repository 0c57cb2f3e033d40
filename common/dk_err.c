/*
 * dk_err.c - error text, exit codes and the thread-local error detail.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "common/dk_err.h"

static _Thread_local char err_detail[1024];

struct err_entry {
	int code;
	int exit;
	const char *text;
};

static const struct err_entry err_table[] = {
    {DK_OK, EX_OK, "success"},
    {DK_ERR_INTERNAL, EX_SOFTWARE, "internal error"},
    {DK_ERR_NOMEM, EX_OSERR, "out of memory"},
    {DK_ERR_INVALID, EX_DATAERR, "invalid value"},
    {DK_ERR_TOO_LARGE, EX_DATAERR, "input too large"},
    {DK_ERR_IO, EX_IOERR, "input/output error"},
    {DK_ERR_PARSE, EX_DATAERR, "malformed input"},
    {DK_ERR_CONFIG, EX_CONFIG, "bad configuration"},
    {DK_ERR_NOT_FOUND, EX_DATAERR, "not found"},
    {DK_ERR_EXISTS, EX_DATAERR, "already exists"},
    {DK_ERR_PERM, EX_NOPERM, "permission denied"},
    {DK_ERR_USAGE, EX_USAGE, "usage error"},

    {DK_ERR_MSG_EMPTY, EX_DATAERR, "empty message"},
    {DK_ERR_MSG_NOT_MESSAGE, EX_DATAERR, "not an RFC 5322 message"},
    {DK_ERR_MSG_NO_FROM, EX_DATAERR, "message has no From header"},
    {DK_ERR_MSG_MULTI_FROM, EX_DATAERR, "message has more than one From header"},
    {DK_ERR_MSG_HEADER_TOO_LARGE, EX_DATAERR, "header section too large"},
    {DK_ERR_MSG_TOO_MANY_HEADERS, EX_DATAERR, "too many header fields"},
    {DK_ERR_MSG_BAD_HEADER, EX_DATAERR, "malformed header field"},

    {DK_ERR_MODULE, EX_UNAVAILABLE, "PKCS#11 module cannot be loaded"},
    {DK_ERR_TOKEN_NOT_FOUND, EX_UNAVAILABLE, "token not found"},
    {DK_ERR_TOKEN_FAILING, EX_UNAVAILABLE, "token is failing"},
    {DK_ERR_TOKEN_NOT_INIT, EX_UNAVAILABLE, "token not initialized"},
    {DK_ERR_TOKEN_READONLY, EX_UNAVAILABLE, "token is write-protected"},
    {DK_ERR_TOKEN_FULL, EX_UNAVAILABLE, "token has no room left"},
    {DK_ERR_PIN_INCORRECT, EX_NOPERM, "PIN incorrect"},
    {DK_ERR_PIN_LOCKED, EX_NOPERM, "PIN locked"},
    {DK_ERR_PIN_EXPIRED, EX_NOPERM, "PIN expired"},
    {DK_ERR_PIN_INVALID, EX_DATAERR, "PIN has invalid length or characters"},
    {DK_ERR_NOT_LOGGED_IN, EX_NOPERM, "not logged in to the token"},
    {DK_ERR_KEY_NOT_FOUND, EX_DATAERR, "key not found"},
    {DK_ERR_KEY_HYGIENE, EX_DATAERR, "key fails the hygiene check"},
    {DK_ERR_MECHANISM, EX_UNAVAILABLE, "mechanism not supported by the token"},
    {DK_ERR_SENSITIVE, EX_NOPERM, "attribute is sensitive"},
    {DK_ERR_PKCS11, EX_UNAVAILABLE, "PKCS#11 error"},
    {DK_ERR_TIMEOUT, EX_TEMPFAIL, "timed out"},

    {DK_ERR_PROTO, EX_PROTOCOL, "protocol error"},
    {DK_ERR_BUSY, EX_TEMPFAIL, "daemon busy"},
    {DK_ERR_RATE_LIMITED, EX_TEMPFAIL, "rate limited"},
    {DK_ERR_NOT_AUTHORIZED, EX_NOPERM, "not authorized"},
    {DK_ERR_UNKNOWN_DOMAIN, EX_NOPERM, "unknown domain"},
    {DK_ERR_NO_KEY, EX_UNAVAILABLE, "no usable key"},
    {DK_ERR_UNAVAILABLE, EX_UNAVAILABLE, "service unavailable"},
    {DK_ERR_AUDIT, EX_UNAVAILABLE, "audit record cannot be written"},
};

static const struct err_entry *
err_lookup(int err)
{
	size_t i;

	for (i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++) {
		if (err_table[i].code == err)
			return &err_table[i];
	}
	return NULL;
}

const char *
dk_strerror(int err)
{
	const struct err_entry *e = err_lookup(err);

	return e != NULL ? e->text : "unknown error";
}

int
dk_err_exit(int err)
{
	const struct err_entry *e = err_lookup(err);

	return e != NULL ? e->exit : EX_SOFTWARE;
}

int
dk_err_set(int err, const char *fmt, ...)
{
	char tmp[sizeof(err_detail)];
	va_list ap;

	/* Format aside first: the arguments may include dk_err_detail() itself. */
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	memcpy(err_detail, tmp, sizeof(err_detail));
	return err;
}

const char *
dk_err_detail(void)
{
	return err_detail;
}

void
dk_err_clear(void)
{
	err_detail[0] = '\0';
}
