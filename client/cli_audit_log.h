/*
 * cli_audit_log.h - the command line's side of the audit log: records of
 * administrative acts (token init, key generate, import, state changes,
 * rotation), each sealed at once by a checkpoint, and the audit token as
 * the audit commands use it (docs/audit.md).
 */
#ifndef CLI_AUDIT_LOG_H
#define CLI_AUDIT_LOG_H

#include "common/dk_config.h"
#include "hsm/hsm.h"
#include "rotate/rotate.h"

/* What an act was done to; every field may be NULL. */
struct cli_audit_what {
	const char *token; /* [token NAME] */
	const char *label; /* token label */
	const char *domain, *selector, *alg, *slot, *key_id, *state;
	const char *detail; /* what happened, in a line (no secrets, no addresses) */
};

/*
 * Append the record of one act (event "token.init", "key.generate", ...)
 * with who did it (user, uid, gid, pid, sudo_user) and its outcome (status
 * 0: ok; else failed, with dk_err_detail() as the error), and a checkpoint
 * when the audit token can be opened; all under the log's lock.  Nothing
 * when conf is NULL or has no audit_log.  A record that cannot be written
 * is a warning on stderr (the act is done either way); returns its code.
 */
int cli_audit_act(
    const struct dk_conf *conf, const char *event, int status, const struct cli_audit_what *what);

/* The same for an act on a key (key generate, import, activate, retire, ...). */
int cli_audit_key(const struct dk_conf *conf, const char *event, int status, const char *token,
    const struct hsm_key_meta *meta, const char *key_id);

/* The record of one "dkimkeep key CMD" (rotate, step, activate, ...): event "key.CMD". */
int cli_audit_key_cmd(const struct dk_conf *conf, const char *cmd, int status, const char *domain,
    const char *selector);

/*
 * A move made by a rotation command ("key.activated", "key.retired", ...;
 * outcome failed for a step that could not proceed), as an act of the
 * user who ran it.  Waits (ROT_INFO) are not recorded.
 */
int cli_audit_rot(const struct dk_conf *conf, const struct rot_event *ev);

/* The audit token, opened and logged in for the audit commands. */
struct cli_audit_tok {
	const char *name; /* [token NAME] */
	struct hsm_module *m;
	struct hsm_token *t;
	struct hsm_session *s;
	struct hsm_audit_keys keys;
	int have_keys;
};

/*
 * Open conf's audit token ([daemon] audit_token, else the first [token]),
 * log in, and find its audit keys (making them with create).  Errors with
 * detail naming the token; DK_ERR_NOT_FOUND when the config has no token.
 */
int cli_audit_tok_open(const struct dk_conf *conf, int create, struct cli_audit_tok *at);
void cli_audit_tok_close(struct cli_audit_tok *at);

#endif /* CLI_AUDIT_LOG_H */
