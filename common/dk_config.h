/*
 * dk_config.h - the INI configuration file (INTERFACE.md "Config file").
 *
 * dk_conf_load() parses and checks the whole file; any problem is
 * DK_ERR_CONFIG with a detail naming the file, the line, the section and
 * the key, and what to do.  Paths are resolved against the directory of
 * the config file.  PINs are never in the config: only pin_file paths,
 * whose existence and mode are checked at load.
 */
#ifndef DK_CONFIG_H
#define DK_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DK_CONF_DEFAULT_PATH "/etc/dkimkeep/dkimkeep.conf"

/* Bits of dk_conf_domain.algs: 1 << DKIM_ALG_RSA_SHA256, 1 << DKIM_ALG_ED25519_SHA256. */
#define DK_CONF_ALG_RSA_SHA256     (1u << 1)
#define DK_CONF_ALG_ED25519_SHA256 (1u << 2)

/* Limits of one config file; more is DK_ERR_CONFIG. */
#define DK_CONF_MAX_TOKENS  64
#define DK_CONF_MAX_DOMAINS 10000
#define DK_CONF_MAX_CLIENTS 1000
#define DK_CONF_MAX_LIST    10000 /* entries in one domains= or internal_hosts= list */

/* Defaults of [domain] headers= and oversign= (lower case, colon lists). */
#define DK_CONF_DEFAULT_HEADERS                                                                    \
	"from:to:cc:subject:date:message-id:reply-to:in-reply-to:references:mime-version:"         \
	"content-type"
#define DK_CONF_DEFAULT_OVERSIGN "from:subject:date:to:cc:reply-to"

enum dk_publish {
	DK_PUBLISH_MANUAL = 0,
	DK_PUBLISH_RFC2136 = 1,
	DK_PUBLISH_COMMAND = 2,
};

enum dk_milter_sign {
	DK_MILTER_SIGN_LOCAL = 0,         /* connections from internal_hosts */
	DK_MILTER_SIGN_AUTHENTICATED = 1, /* SMTP AUTH'd senders (and local) */
	DK_MILTER_SIGN_ALL = 2,
};

/*
 * [daemon] keys are named as the fields; sign_timeout_ms is a number of
 * milliseconds, health_interval and step_interval durations, user a name or
 * number (NULL: do not drop privileges).  docs/configuration.md has them all.
 */
struct dk_conf_daemon {
	char *socket;          /* default /run/dkimkeep/sign.sock */
	mode_t socket_mode;    /* default 0660 */
	char *socket_group;    /* NULL: unchanged */
	int workers;           /* default 2, 1..64 */
	int queue;             /* default 256, 1..65536 */
	int max_connections;   /* default 1024, 1..100000 */
	char *audit_log;       /* NULL: no audit log */
	int audit_fail_closed; /* default 1 ("closed"); 0 for "open" */
	int audit_checkpoint;  /* default 1000 */
	char *audit_token;     /* [token] holding the audit keys; NULL: the first [token] */
	int audit_token_line;
	int64_t sign_timeout_ms; /* default 2000: a C_Sign slower than this fails over */
	int64_t health_interval; /* seconds between checks of a down token, default 5 */
	int64_t step_interval;   /* seconds between rotation steps, default 60 */
	char *user;              /* drop privileges to this user when started as root */
	int line;
};

struct dk_conf_token {
	char *name;     /* the word after "token" in the section name */
	char *module;   /* absolute path of the PKCS#11 module */
	char *uri;      /* RFC 7512 token URI */
	char *pin_file; /* absolute path */
	char **env;     /* "VAR=value" entries of env=, for the module; see dk_conf_token_setenv */
	size_t nenv;
	int line;
};

struct dk_conf_domain {
	char *name;                  /* lower case */
	unsigned algs;               /* bit set of (1 << enum dkim_alg values) */
	char *primary;               /* token name */
	char *backup;                /* token name, or NULL */
	char *selector_template;     /* default "s{date:%Y%m}-{alg}" */
	int64_t rotate_every;        /* seconds, default 90d */
	int64_t publish_wait;        /* default 1h */
	int64_t retire_after;        /* default 7d */
	int64_t destroy_after;       /* default 30d */
	enum dk_publish dns_publish; /* default manual */
	char *headers;               /* colon list */
	char *oversign;              /* colon list */
	int rsa_bits;                /* default 2048 */
	int canon_header;            /* canonicalization=, enum dkim_canon: default 1 (relaxed) */
	int canon_body;              /* default 1 (relaxed) */
	int line;
};

struct dk_conf_client {
	char *name;
	int has_uid;
	uid_t uid;
	int has_gid;
	gid_t gid;
	char **domains; /* lower case; "*.example.com" matches subdomains only */
	size_t ndomains;
	double rate; /* requests per second, 0: unlimited */
	int line;
};

struct dk_conf_dns {
	char *server; /* host:port */
	char *tsig_key_file;
	char *resolver; /* host:port, NULL: system resolver */
	char *publish_command;
	char *notify_command;
	int64_t ttl; /* seconds: TTL of the records rfc2136 publishes (default 300) */
	int line;    /* of [dns], 0 when absent */
};

struct dk_conf_milter {
	char *socket; /* libmilter form, default unix:/run/dkimkeep-milter/milter.sock */
	enum dk_milter_sign sign;
	char **internal_hosts; /* CIDRs, default 127.0.0.0/8 and ::1/128 */
	size_t ninternal_hosts;
	int on_error_accept; /* 0: tempfail (default) */
	char *client_socket; /* the daemon's socket, default [daemon] socket */
	int line;            /* of [milter], 0 when absent */
};

struct dk_conf {
	char *path; /* as given */
	char *dir;  /* its directory, for relative paths */
	struct dk_conf_daemon daemon;
	struct dk_conf_token *tokens;
	size_t ntokens;
	struct dk_conf_domain *domains; /* sorted by name */
	size_t ndomains;
	struct dk_conf_client *clients;
	size_t nclients;
	struct dk_conf_dns dns;
	struct dk_conf_milter milter;
};

/* $DKIMKEEP_CONF, else DK_CONF_DEFAULT_PATH. */
const char *dk_conf_default_path(void);

/*
 * Load and check path.  Errors: DK_ERR_CONFIG (detail: "FILE:LINE: [section]
 * key: problem; what to do"), DK_ERR_IO (cannot open), DK_ERR_NOMEM.
 * Caller frees *out with dk_conf_free().
 */
int dk_conf_load(const char *path, struct dk_conf **out);
/*
 * Flags of dk_conf_load_flags().  DK_CONF_NO_SECRET_CHECK: secret files
 * (pin_file, tsig_key_file) are only resolved to absolute paths, not
 * examined, for a program that never opens them and may not be allowed to
 * (dkimkeep-milter, running as its own user, loading the daemon's config).
 */
#define DK_CONF_NO_SECRET_CHECK 0x1u
/* dk_conf_load() with flags; dk_conf_load(p, o) is dk_conf_load_flags(p, 0, o). */
int dk_conf_load_flags(const char *path, unsigned flags, struct dk_conf **out);
/* Free everything dk_conf_load() allocated; safe on NULL. */
void dk_conf_free(struct dk_conf *c);

/* The [token NAME] section, or NULL. */
const struct dk_conf_token *dk_conf_token(const struct dk_conf *c, const char *name);
/*
 * Put the env = entries of [token] t into the process environment
 * (setenv, only where the value differs), for the module to read when it is
 * loaded: call before hsm_module_open(t->module).  The environment is
 * process-wide; dk_conf_load() refused configs where two tokens need
 * different values.  DK_ERR_NOMEM / DK_ERR_INVALID with detail.
 */
int dk_conf_token_setenv(const struct dk_conf_token *t);
/* The [domain] section for domain itself or else its nearest configured parent, or NULL. */
const struct dk_conf_domain *dk_conf_domain(const struct dk_conf *c, const char *domain);
/* The first [client] whose uid (and gid when given) match, or NULL. */
const struct dk_conf_client *dk_conf_client_for(const struct dk_conf *c, uid_t uid, gid_t gid);
/* 1 when client may sign for domain ("example.com" exact, "*.example.com" subdomains). */
/* "*" allows every domain; comparisons ignore case. */
int dk_conf_client_allows(const struct dk_conf_client *cl, const char *domain);

#endif /* DK_CONFIG_H */
