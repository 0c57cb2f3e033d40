/*
 * milter_filter.h - dkimkeep-milter: the mail filter handed to libmilter.
 *
 * The callbacks sign each message they are to sign through dkimkeepd and
 * insert the DKIM-Signature fields at the top; see milter_filter.c.
 */
#ifndef MILTER_FILTER_H
#define MILTER_FILTER_H

#include <stdbool.h>

#include <libmilter/mfapi.h>

#include "client/milter_hosts.h"
#include "client/milter_pool.h"
#include "common/dk_config.h"

/* What the callbacks need; the nets and the pool stay the caller's. */
struct milter_policy {
	enum dk_milter_sign sign; /* [milter] sign */
	int on_error_accept;      /* [milter] on_error = accept */
	struct milter_nets nets;  /* [milter] internal_hosts */
	struct milter_pool *pool; /* connections to dkimkeepd */
};

/* Set the policy; call once before smfi_main(), it must outlive smfi_main(). */
void milter_filter_init(const struct milter_policy *p);
/* The filter description for smfi_register(); the name is "dkimkeep-milter". */
struct smfiDesc *milter_filter_desc(void);

#endif /* MILTER_FILTER_H */
