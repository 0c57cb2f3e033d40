/*
 * cli_dns.h - "dkimkeep dns check": what DNS serves against the keys in
 * the tokens.
 */
#ifndef CLI_DNS_H
#define CLI_DNS_H

#include "client/cli.h"

/* argv starts at "dns".  Exit 0 when DNS agrees with every key, 1 otherwise. */
int cli_dns_main(int argc, char **argv, const struct cli_ctx *ctx);

#endif /* CLI_DNS_H */
