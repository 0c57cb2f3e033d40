/*
 * hsm_lease.c - the rotation lease objects (rotate/rot_lease.c decides with
 * them): private CKO_DATA objects, CKA_APPLICATION HSM_LEASE_APPLICATION,
 * created and destroyed whole, never edited.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "hsm/hsm_int.h"

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static const CK_OBJECT_CLASS class_data = CKO_DATA;

int
hsm_lease_list(struct hsm_session *s, const char *label, struct hsm_lease **out, size_t *n)
{
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, (void *)(uintptr_t)&class_data, sizeof(class_data)},
	    {CKA_APPLICATION, (void *)(uintptr_t)HSM_LEASE_APPLICATION,
	        strlen(HSM_LEASE_APPLICATION)},
	    {CKA_LABEL, (void *)(uintptr_t)label, strlen(label)},
	};
	CK_OBJECT_HANDLE *objs = NULL;
	struct hsm_lease *v = NULL;
	CK_ULONG count = 0, i;
	size_t got = 0;
	int r;

	*out = NULL;
	*n = 0;
	if ((r = hsm_find(s, tmpl, 3, &objs, &count)) != 0)
		goto out;
	if (count > HSM_LEASES_MAX) {
		r = dk_err_set(DK_ERR_TOO_LARGE,
		    "token \"%s\" holds %lu rotation lease objects (limit %d); remove them with "
		    "pkcs11-tool (application %s)",
		    s->t->label, (unsigned long)count, HSM_LEASES_MAX, HSM_LEASE_APPLICATION);
		goto out;
	}
	if ((v = calloc(count + 1, sizeof(*v))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < count; i++) {
		CK_ATTRIBUTE a = {CKA_VALUE, v[got].value, HSM_LEASE_VALUE_MAX};
		CK_RV rv = s->t->m->f->C_GetAttributeValue(s->h, objs[i], &a, 1);

		/* Destroyed by another process between the search and the read: gone. */
		if (rv == CKR_OBJECT_HANDLE_INVALID)
			continue;
		if (rv != CKR_OK || a.ulValueLen > HSM_LEASE_VALUE_MAX) {
			r = hsm_fail(rv != CKR_OK ? rv : CKR_BUFFER_TOO_SMALL,
			    "token \"%s\": reading a rotation lease", s->t->label);
			goto out;
		}
		v[got].obj = objs[i];
		v[got].value[a.ulValueLen] = '\0';
		got++;
	}
	*out = v;
	*n = got;
	v = NULL;
	r = 0;
out:
	free(v);
	free(objs);
	return r;
}

int
hsm_lease_create(struct hsm_session *s, const char *label, const char *value, unsigned long *obj)
{
	struct hsm_tmpl t = {.n = 0};
	CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
	CK_RV rv;

	if (strlen(value) > HSM_LEASE_VALUE_MAX)
		return dk_err_set(DK_ERR_TOO_LARGE, "rotation lease value too long");
	hsm_tmpl_add(&t, CKA_CLASS, &class_data, sizeof(class_data));
	hsm_tmpl_add(&t, CKA_TOKEN, &yes, sizeof(yes));
	/* Private: only the PIN holder can take, see or break the lease. */
	hsm_tmpl_add(&t, CKA_PRIVATE, &yes, sizeof(yes));
	hsm_tmpl_add(&t, CKA_MODIFIABLE, &no, sizeof(no));
	hsm_tmpl_add(&t, CKA_APPLICATION, HSM_LEASE_APPLICATION, strlen(HSM_LEASE_APPLICATION));
	hsm_tmpl_add(&t, CKA_LABEL, label, strlen(label));
	hsm_tmpl_add(&t, CKA_VALUE, value, strlen(value));
	if (t.overflow)
		return DK_ERR_INTERNAL;
	rv = hsm_store_create(s, t.a, t.n, &o);
	if (rv != CKR_OK)
		return hsm_fail(
		    rv, "token \"%s\": writing the rotation lease (C_CreateObject)", s->t->label);
	*obj = o;
	return 0;
}

int
hsm_lease_destroy(struct hsm_session *s, unsigned long obj)
{
	/* An object another process removed first (an expired lease) counts as removed. */
	return hsm_destroy(s, obj, "a rotation lease (C_DestroyObject)");
}
