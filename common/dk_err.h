/*
 * dk_err.h - the one error table of dkimkeep.
 *
 * Every function returns 0 or one of these negative codes; dk_strerror()
 * turns a code into text and dk_err_exit() into a sysexits(3) exit code.
 * A thread-local detail line (dk_err_detail) carries the specifics: what
 * failed, on what, and what to do.
 */
#ifndef DK_ERR_H
#define DK_ERR_H

enum dk_err {
	DK_OK = 0,
	DK_ERR_INTERNAL = -1,
	DK_ERR_NOMEM = -2,
	DK_ERR_INVALID = -3,   /* bad argument or value */
	DK_ERR_TOO_LARGE = -4, /* input over a stated limit */
	DK_ERR_IO = -5,        /* read/write/open failed */
	DK_ERR_PARSE = -6,     /* malformed input */
	DK_ERR_CONFIG = -7,    /* bad configuration */
	DK_ERR_NOT_FOUND = -8,
	DK_ERR_EXISTS = -9,
	DK_ERR_PERM = -10,  /* unsafe permissions or not allowed */
	DK_ERR_USAGE = -11, /* bad command line */

	/* messages (RFC 5322) */
	DK_ERR_MSG_EMPTY = -20,
	DK_ERR_MSG_NOT_MESSAGE = -21,
	DK_ERR_MSG_NO_FROM = -22,
	DK_ERR_MSG_MULTI_FROM = -23,
	DK_ERR_MSG_HEADER_TOO_LARGE = -24,
	DK_ERR_MSG_TOO_MANY_HEADERS = -25,
	DK_ERR_MSG_BAD_HEADER = -26,

	/* tokens (PKCS#11) */
	DK_ERR_MODULE = -40, /* module cannot be loaded/initialized */
	DK_ERR_TOKEN_NOT_FOUND = -41,
	DK_ERR_TOKEN_FAILING = -42, /* device error, removed, handle invalid */
	DK_ERR_TOKEN_NOT_INIT = -43,
	DK_ERR_TOKEN_READONLY = -44,
	DK_ERR_TOKEN_FULL = -45,
	DK_ERR_PIN_INCORRECT = -46,
	DK_ERR_PIN_LOCKED = -47,
	DK_ERR_PIN_EXPIRED = -48,
	DK_ERR_PIN_INVALID = -49,
	DK_ERR_NOT_LOGGED_IN = -50,
	DK_ERR_KEY_NOT_FOUND = -51,
	DK_ERR_KEY_HYGIENE = -52, /* key attributes unsafe; never used */
	DK_ERR_MECHANISM = -53,   /* mechanism not supported/allowed */
	DK_ERR_SENSITIVE = -54,   /* attribute is sensitive (good) */
	DK_ERR_PKCS11 = -55,      /* any other CK_RV */
	DK_ERR_TIMEOUT = -56,

	/* daemon and protocol */
	DK_ERR_PROTO = -70,
	DK_ERR_BUSY = -71,
	DK_ERR_RATE_LIMITED = -72,
	DK_ERR_NOT_AUTHORIZED = -73,
	DK_ERR_UNKNOWN_DOMAIN = -74,
	DK_ERR_NO_KEY = -75,
	DK_ERR_UNAVAILABLE = -76, /* daemon or token unavailable */
	DK_ERR_AUDIT = -77,       /* audit record cannot be written */
};

/* Short fixed text for a code; never NULL. */
const char *dk_strerror(int err);

/* sysexits(3) code for a code: 0, 64, 65, 69, 70, 74, 75, 77, 78. */
int dk_err_exit(int err);

/*
 * Thread-local detail of the last error: set by the function that found it,
 * read by whoever reports it.  dk_err_set() returns err so that callers can
 * write "r = dk_err_set(DK_ERR_X, ...); goto out;".  The arguments may include
 * dk_err_detail() itself (to prefix context to the detail).
 */
int dk_err_set(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *dk_err_detail(void);
void dk_err_clear(void);

#endif /* DK_ERR_H */
