/*
 * cli_rotate.h - "dkimkeep key rotate|step|activate|retire|revoke|destroy":
 * the rotation state machine of rotate/ driven from the command line, and
 * the token setup it shares with "dkimkeep dns check".
 */
#ifndef CLI_ROTATE_H
#define CLI_ROTATE_H

#include "client/cli.h"
#include "client/cli_tokens.h"
#include "rotate/rotate.h"

/* 1 when word is one of the key commands of this file. */
int cli_rotate_is(const char *word);

/* argv starts at the command word ("rotate", "step", ...); returns a sysexits code. */
int cli_rotate_main(int argc, char **argv, const struct cli_ctx *ctx);

/*
 * Open every token of the config into toks (one rot_tok per [token]).  A
 * token that cannot be reached gets no session and a warning (its rings
 * are reported as stalled); a refused PIN or a bad PIN file is an error.
 */
int cli_rot_tokens(struct cli_toks *ts, struct rot_tok *toks, size_t *ntoks);

#endif /* CLI_ROTATE_H */
