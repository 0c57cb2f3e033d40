/*
 * cli_audit.h - what the files of "dkimkeep audit" share.
 */
#ifndef CLI_AUDIT_H
#define CLI_AUDIT_H

#include "client/cli.h"

/* "dkimkeep audit show" (cli_audit_show.c): argv starts at "show". */
int cli_audit_show(int argc, char **argv, const struct cli_ctx *ctx);

#endif /* CLI_AUDIT_H */
