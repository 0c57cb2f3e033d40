/*
 * hsm_module.c - loading PKCS#11 modules and listing their tokens.
 *
 * A module is loaded and C_Initialize'd once per process per (canonical)
 * path: a second C_Initialize would fail with
 * CKR_CRYPTOKI_ALREADY_INITIALIZED, and a C_Finalize by one user would end
 * every other user's sessions.  So opens are counted and the last close
 * finalizes.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/uri.h>

#include "common/dk_err.h"
#include "common/dk_log.h"
#include "hsm/hsm_int.h"

/* modules_lock protects the list modules and every module's refs. */
static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hsm_module *modules;

static int module_init(const char *path, struct hsm_module *m);

/* dlopen and C_GetFunctionList, not yet initialized. */
static int
module_dl(const char *path, struct hsm_module *m)
{
	CK_C_GetFunctionList get;
	CK_RV rv;

	/*
	 * RTLD_NODELETE: dlclose() after C_Finalize leaves the code mapped.  A
	 * module may leave threads or atexit handlers behind (OpenSSL's, in
	 * SoftHSM), and leak reports at exit can then name the module.
	 */
	m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (m->dl == NULL)
		return dk_err_set(DK_ERR_MODULE,
		    "PKCS#11 module %s cannot be loaded: %s; check module= in the config", path,
		    dlerror());
	*(void **)&get = dlsym(m->dl, "C_GetFunctionList");
	if (get == NULL)
		return dk_err_set(DK_ERR_MODULE,
		    "%s is not a PKCS#11 module (no C_GetFunctionList); check module= in the "
		    "config",
		    path);
	rv = get(&m->f);
	if (rv != CKR_OK || m->f == NULL)
		return hsm_fail(
		    rv != CKR_OK ? rv : CKR_GENERAL_ERROR, "C_GetFunctionList of module %s", path);
	if (m->f->version.major != 2)
		return dk_err_set(DK_ERR_MODULE,
		    "module %s speaks PKCS#11 %u.%u; dkimkeep needs version 2.x", path,
		    m->f->version.major, m->f->version.minor);
	return 0;
}

static int
module_load(const char *path, struct hsm_module *m)
{
	int r;

	if ((r = module_dl(path, m)) != 0)
		return r;
	return module_init(path, m);
}

static int
module_init(const char *path, struct hsm_module *m)
{
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv;

	memset(&args, 0, sizeof(args));
	/* Our threads call in concurrently (one session each): let the module lock. */
	args.flags = CKF_OS_LOCKING_OK;
	rv = m->f->C_Initialize(&args);
	if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		/* Someone else in the process (an engine) owns it: never finalize it. */
		dk_log_warn(
		    "module %s was already initialized by other code in this process", path);
		m->finalize = 0;
	} else if (rv != CKR_OK) {
		return hsm_fail(rv, "C_Initialize of module %s", path);
	} else {
		m->finalize = 1;
	}
	if (m->store_fd < 0)
		hsm_store_open(m);
	return 0;
}

static void
module_free(struct hsm_module *m)
{
	if (m == NULL)
		return;
	if (m->finalize && m->f != NULL)
		(void)m->f->C_Finalize(NULL);
	if (m->dl != NULL)
		dlclose(m->dl);
	hsm_store_close(m);
	free(m->path);
	free(m);
}

int
hsm_module_open(const char *path, struct hsm_module **out)
{
	char canon[PATH_MAX];
	struct hsm_module *m = NULL;
	int r;

	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return dk_err_set(DK_ERR_MODULE, "no PKCS#11 module path given");
	if (realpath(path, canon) == NULL)
		return dk_err_set(DK_ERR_MODULE,
		    "PKCS#11 module %s does not exist; check module= in the config", path);
	pthread_mutex_lock(&modules_lock);
	for (m = modules; m != NULL; m = m->next) {
		if (!m->own && strcmp(m->path, canon) == 0) {
			m->refs++;
			*out = m;
			m = NULL;
			r = 0;
			goto out;
		}
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	m->store_fd = -1;
	if ((m->path = strdup(canon)) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	if ((r = module_load(canon, m)) != 0)
		goto out;
	m->refs = 1;
	m->next = modules;
	modules = m;
	*out = m;
	m = NULL;
	r = 0;
out:
	pthread_mutex_unlock(&modules_lock);
	module_free(m);
	return r;
}

/*
 * Some modules hand out a new function list, with state of its own, on each
 * C_GetFunctionList (p11-kit-client.so does: measured, each list is
 * initialized and finalized alone); others hand out one list for the
 * process (SoftHSM).  An own module takes a fresh list when it differs from
 * every list in use, and otherwise shares the module that has it.
 */
int
hsm_module_open_own(const char *path, struct hsm_module **out)
{
	char canon[PATH_MAX];
	struct hsm_module *m = NULL, *old;
	CK_C_GetFunctionList get;
	CK_FUNCTION_LIST_PTR f2 = NULL;
	int r;

	*out = NULL;
	if (path == NULL || path[0] == '\0' || realpath(path, canon) == NULL)
		return hsm_module_open(path, out); /* the same errors */
	pthread_mutex_lock(&modules_lock);
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	m->store_fd = -1;
	if ((m->path = strdup(canon)) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	if ((r = module_dl(canon, m)) != 0)
		goto out;
	for (old = modules; old != NULL; old = old->next) {
		if (old->f == m->f) {
			/* One list for the process: share it; m was never initialized. */
			old->refs++;
			*out = old;
			r = 0;
			goto out;
		}
	}
	/*
	 * A second list that differs shows state per list.  A module with one
	 * list (SoftHSM; tests/p11fault, which forwards to a SoftHSM that other
	 * tokens share) is never own: re-initializing it could end other
	 * tokens' sessions.  The second list is not used; p11-kit keeps it.
	 */
	*(void **)&get = dlsym(m->dl, "C_GetFunctionList");
	m->own = get != NULL && get(&f2) == CKR_OK && f2 != NULL && f2 != m->f;
	if ((r = module_init(canon, m)) != 0)
		goto out;
	m->refs = 1;
	m->next = modules;
	modules = m;
	*out = m;
	m = NULL;
	r = 0;
out:
	pthread_mutex_unlock(&modules_lock);
	module_free(m);
	return r;
}

int
hsm_module_reinit(struct hsm_module *m)
{
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv;
	int r;

	pthread_mutex_lock(&modules_lock);
	/* An own module is its opener's and the one token opened on it (hsm.h). */
	if (!m->own || !m->finalize) {
		r = dk_err_set(DK_ERR_INVALID,
		    "module %s is shared with other tokens (or initialized by other code in "
		    "this process): it is not re-initialized",
		    m->path);
		goto out;
	}
	/* Every session of the old epoch is dead from here on, used or not. */
	m->epoch++;
	(void)m->f->C_Finalize(NULL);
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = m->f->C_Initialize(&args);
	r = rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED
	        ? 0
	        : hsm_fail(rv, "C_Initialize of module %s (again)", m->path);
out:
	pthread_mutex_unlock(&modules_lock);
	return r;
}

void
hsm_module_ref(struct hsm_module *m)
{
	pthread_mutex_lock(&modules_lock);
	m->refs++;
	pthread_mutex_unlock(&modules_lock);
}

void
hsm_module_close(struct hsm_module *m)
{
	struct hsm_module **pp;
	int last = 0;

	if (m == NULL)
		return;
	pthread_mutex_lock(&modules_lock);
	if (--m->refs == 0) {
		for (pp = &modules; *pp != NULL; pp = &(*pp)->next) {
			if (*pp == m) {
				*pp = m->next;
				break;
			}
		}
		last = 1;
	}
	pthread_mutex_unlock(&modules_lock);
	if (last)
		module_free(m);
}

void
hsm_copy_padded(char *dst, size_t dstlen, const CK_UTF8CHAR *src, size_t srclen)
{
	size_t n = srclen;

	while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == '\0'))
		n--;
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

int
hsm_slot_list(struct hsm_module *m, CK_SLOT_ID **slots, CK_ULONG *n)
{
	CK_SLOT_ID *list = NULL;
	CK_ULONG count = 0;
	CK_RV rv;
	int r, tries;

	*slots = NULL;
	*n = 0;
	/* The count can grow between the two calls (a token inserted): retry a little. */
	for (tries = 0; tries < 3; tries++) {
		if ((rv = m->f->C_GetSlotList(CK_TRUE, NULL, &count)) != CKR_OK) {
			r = hsm_fail(rv, "C_GetSlotList of module %s", m->path);
			goto out;
		}
		if (count > HSM_SLOTS_MAX) {
			r = dk_err_set(DK_ERR_TOO_LARGE, "module %s reports %lu slots (limit %d)",
			    m->path, (unsigned long)count, HSM_SLOTS_MAX);
			goto out;
		}
		free(list);
		if ((list = calloc(count + 1, sizeof(*list))) == NULL) {
			r = DK_ERR_NOMEM;
			goto out;
		}
		rv = m->f->C_GetSlotList(CK_TRUE, list, &count);
		if (rv == CKR_BUFFER_TOO_SMALL)
			continue;
		if (rv != CKR_OK) {
			r = hsm_fail(rv, "C_GetSlotList of module %s", m->path);
			goto out;
		}
		*slots = list;
		*n = count;
		list = NULL;
		r = 0;
		goto out;
	}
	r = dk_err_set(DK_ERR_PKCS11, "module %s: the slot list keeps changing", m->path);
out:
	free(list);
	return r;
}

static int
token_uri(const CK_TOKEN_INFO *ti, char *buf, size_t len)
{
	P11KitUri *uri = NULL;
	char *s = NULL;
	int r;

	if ((uri = p11_kit_uri_new()) == NULL)
		return DK_ERR_NOMEM;
	memcpy(p11_kit_uri_get_token_info(uri), ti, sizeof(*ti));
	if (p11_kit_uri_format(uri, P11_KIT_URI_FOR_TOKEN, &s) != P11_KIT_URI_OK) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	if (strlen(s) >= len) {
		r = DK_ERR_TOO_LARGE;
		goto out;
	}
	memcpy(buf, s, strlen(s) + 1);
	r = 0;
out:
	free(s);
	p11_kit_uri_free(uri);
	return r;
}

static int
token_info_fill(struct hsm_module *m, CK_SLOT_ID slot, struct hsm_token_info *out)
{
	CK_TOKEN_INFO ti;
	CK_RV rv;

	memset(out, 0, sizeof(*out));
	if ((rv = m->f->C_GetTokenInfo(slot, &ti)) != CKR_OK)
		return hsm_fail(
		    rv, "C_GetTokenInfo of slot %lu of module %s", (unsigned long)slot, m->path);
	out->slot_id = slot;
	hsm_copy_padded(out->label, sizeof(out->label), ti.label, sizeof(ti.label));
	hsm_copy_padded(out->manufacturer, sizeof(out->manufacturer), ti.manufacturerID,
	    sizeof(ti.manufacturerID));
	hsm_copy_padded(out->model, sizeof(out->model), ti.model, sizeof(ti.model));
	hsm_copy_padded(out->serial, sizeof(out->serial), ti.serialNumber, sizeof(ti.serialNumber));
	out->initialized = (ti.flags & CKF_TOKEN_INITIALIZED) != 0;
	out->user_pin_initialized = (ti.flags & CKF_USER_PIN_INITIALIZED) != 0;
	out->login_required = (ti.flags & CKF_LOGIN_REQUIRED) != 0;
	if (token_uri(&ti, out->uri, sizeof(out->uri)) != 0)
		out->uri[0] = '\0';
	return 0;
}

int
hsm_module_tokens(struct hsm_module *m, struct hsm_token_info **list, size_t *n)
{
	struct hsm_token_info *infos = NULL;
	CK_SLOT_ID *slots = NULL;
	CK_ULONG count = 0, i;
	size_t got = 0;
	int r;

	*list = NULL;
	*n = 0;
	if ((r = hsm_slot_list(m, &slots, &count)) != 0)
		goto out;
	if ((infos = calloc(count + 1, sizeof(*infos))) == NULL) {
		r = DK_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < count; i++) {
		/* A token removed between the two calls is skipped, not an error. */
		if (token_info_fill(m, slots[i], &infos[got]) != 0) {
			dk_log_warn("%s", dk_err_detail());
			continue;
		}
		got++;
	}
	*list = infos;
	*n = got;
	infos = NULL;
	r = 0;
out:
	free(infos);
	free(slots);
	return r;
}
