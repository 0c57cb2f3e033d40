/*
 * publish.h - putting a key's record into DNS, as [domain] dns_publish=
 * says: an RFC 2136 UPDATE signed with TSIG (dns_update.c), the operator's
 * publish_command, or nothing at all (manual: the caller tells the
 * operator what to publish).
 */
#ifndef PUBLISH_H
#define PUBLISH_H

#include "common/dk_config.h"

#define ROT_COMMAND_TIMEOUT_S 60 /* a publish_command running longer is killed */

enum rot_pub {
	ROT_PUB_ADD = 0,    /* the record with the public key */
	ROT_PUB_REVOKE = 1, /* the record with an empty p= */
	ROT_PUB_DELETE = 2, /* no record at all */
};

/* "add", "revoke", "delete": the ACTION argument of publish_command. */
const char *rot_pub_name(enum rot_pub act);

/*
 * Publish value under name (replacing whatever TXT is there), or delete
 * the name's TXT records.  For dns_publish = manual nothing is done
 * (returns 0; the caller reports what to publish).  Errors with detail:
 * DK_ERR_UNAVAILABLE (server unreachable, command failed), DK_ERR_PERM
 * (update refused, TSIG not accepted), DK_ERR_TIMEOUT.
 */
int rot_publish(const struct dk_conf *conf, const struct dk_conf_domain *ds, const char *name,
    const char *value, enum rot_pub act);

/* RFC 2136 §2.5 UPDATE to [dns] server=, TSIG from tsig_key_file= (dns_update.c). */
int rot_dns_update(const struct dk_conf_dns *dns, const char *name, const char *value,
    enum rot_pub act, unsigned ttl);

#endif /* PUBLISH_H */
