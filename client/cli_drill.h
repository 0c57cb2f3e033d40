/*
 * cli_drill.h - "dkimkeep key drill": prove that every standby key of a
 * domain can take over from the primary (its usage text is in cli_drill.c).
 */
#ifndef CLI_DRILL_H
#define CLI_DRILL_H

#include "client/cli.h"

/*
 * argv starts at "drill".  Exit 0 when every standby key signed and its
 * signature verified with the record DNS serves for it (or, --offline,
 * with the record "key dns" prints); 1 when one failed or the domain has
 * none; the usual sysexits when the drill could not run (64, 69, 77, 78).
 */
int cli_drill_main(int argc, char **argv, const struct cli_ctx *ctx);

#endif /* CLI_DRILL_H */
