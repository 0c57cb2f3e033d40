/*
 * dkd_privs.h - dkimkeepd gives up root: after the socket is bound and the
 * tokens are open and logged in, it becomes [daemon] user for good.
 */
#ifndef DKD_PRIVS_H
#define DKD_PRIVS_H

#include "daemon/dkd_tokens.h"

/*
 * Started as root with user (a name or a number with a passwd entry):
 * initgroups, setresgid, setresuid to that user, each checked, then checked
 * that root cannot be regained, and that the user still sees every key of
 * the open tokens (a software token's files may be root's).  Started as root without user: a loud
 * warning, and root is kept.  Not root: nothing to switch (a warning if
 * user names someone else).  In every case PR_SET_NO_NEW_PRIVS and
 * PR_SET_DUMPABLE 0 are set (a set-id change resets the dumpable flag).
 * Errors: DK_ERR_CONFIG (no such user), DK_ERR_PERM (a step failed; the
 * daemon must not go on), DK_ERR_NOMEM.  The conf_path names the file in
 * messages.
 */
int dkd_privs_drop(const char *user, const char *conf_path, const struct dkd_tokens *tokens);

#endif /* DKD_PRIVS_H */
