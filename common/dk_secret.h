/*
 * dk_secret.h - PINs read from files into locked memory, wiped after use.
 */
#ifndef DK_SECRET_H
#define DK_SECRET_H

#include <stddef.h>

/* Longest PIN accepted from a file. */
#define DK_PIN_MAX 256

struct dk_secret {
	char *data; /* NUL-terminated, mlock()ed, len bytes of PIN */
	size_t len;
};

/*
 * Read a PIN from path: the file must be a regular file not readable or
 * writable by group or others (mode 0400/0600), owned by the caller or
 * root.  A relative path is looked up in $CREDENTIALS_DIRECTORY first when
 * it is set (systemd LoadCredential=).  One trailing newline is dropped.
 * Errors: DK_ERR_IO (missing, unreadable), DK_ERR_PERM (mode/owner),
 * DK_ERR_PIN_INVALID (empty, too long, NUL inside), DK_ERR_NOMEM.
 * The caller owns *out and wipes it with dk_secret_wipe().
 */
int dk_secret_read_pin(const char *path, struct dk_secret *out);
/* Wipe and free a secret; safe on an empty one. */
void dk_secret_wipe(struct dk_secret *s);

#endif /* DK_SECRET_H */
