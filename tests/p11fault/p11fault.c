/*
 * p11fault.c - a PKCS#11 module that forwards every call to a real module
 * (SoftHSM in dkimkeep's tests) and injects the faults a control file asks
 * for: a failing call, a slow call, a call that never returns.  A test
 * tool; never installed.
 *
 * Environment (read once, at the first C_GetFunctionList):
 *
 *   P11FAULT_MODULE   the real module (default: SoftHSM's, P11FAULT_DEFAULT_MODULE)
 *   P11FAULT_CONTROL  the control file (absolute path); none: nothing is injected
 *   P11FAULT_STATS    where to write call counts (absolute path; "%p" becomes the
 *                     pid); none: no statistics
 *
 * Control file: one rule per line; '#' starts a comment; blank lines are
 * ignored.  A line that cannot be parsed is reported on stderr ("p11fault:
 * FILE:LINE: ...") and ignored.
 *
 *   FUNCTIONS ACTION [ARGUMENTS] [token=LABEL]
 *
 *   FUNCTIONS   C_Sign | C_SignInit,C_Sign | *          (names as in PKCS#11 2.40)
 *   ACTION:
 *     every RV      every matching call fails with RV
 *     nth N RV      the Nth matching call fails with RV, once (N counts from 1)
 *     after N RV    the Nth matching call and every one after it fail with RV
 *                   (for both, RV "hang": the call hangs as with hang below)
 *     delay MS      every matching call waits MS milliseconds (at most 600000),
 *                   then goes on
 *     hang          every matching call blocks until its rule is no longer in
 *                   the file (checked every 50 ms), then goes on
 *   RV          a CKR_ name (CKR_DEVICE_ERROR, CKR_SESSION_HANDLE_INVALID, ...)
 *               or a number (0x30)
 *   token=LABEL only calls on the token with this label match (a word: no
 *               spaces); calls that name no token (C_Initialize, C_GetSlotList,
 *               ...) never match such a rule
 *
 *   Examples:
 *     C_Sign every CKR_DEVICE_ERROR token=dk-primary
 *     C_Sign nth 5 CKR_DEVICE_ERROR
 *     C_Login every CKR_PIN_INCORRECT
 *     C_FindObjects delay 200
 *     C_Sign hang token=dk-primary
 *     C_Sign after 3 hang token=dk-primary
 *
 * Counting: a rule counts the calls that match it from the moment it is
 * first read.  When the file changes, a rule whose line is unchanged (words
 * compared, duplicates in order) keeps its count and its hang; any other
 * line starts from zero.  Rules are tried in file order: delays add up; the
 * first failing or hanging rule that fires ends the evaluation, so later
 * rules do not count that call.
 *
 * Re-reading: the file is stat()ed at most every 10 ms and read again when
 * its device, inode, size or modification time changed.  Replace it with a
 * rename (write a new file, then rename over the old one): an edit in place
 * can be read half-written, and two edits in one clock tick with the same
 * size can go unseen.  A missing file means no rules.
 *
 * Faithful failure: a failed call does not reach the real module, except a
 * call that ends a cryptographic operation (C_Sign, C_SignUpdate, C_Encrypt,
 * C_DigestFinal, ...): PKCS#11 2.40 §5.2 says an error ends the operation,
 * so p11fault ends it in the real module too (it finishes it there into a
 * scratch buffer) and returns the injected value.  The next C_SignInit on
 * the session then works, as it would after a real failure.
 *
 * Tokens: a session is mapped to its slot with the real C_GetSessionInfo,
 * a slot to its token label with the real C_GetTokenInfo (cached per slot
 * until C_Initialize, C_Finalize or C_InitToken of that slot), and only
 * when a rule with token= could match the call.
 *
 * Statistics: "NAME COUNT" per function called, "NAME.injected COUNT" for
 * failures injected, "control_errors COUNT" for refused lines; rewritten by
 * rename at most every 50 ms while calls come, at once on C_Initialize,
 * C_Finalize, C_Login, C_Logout, C_InitToken, C_InitPIN and C_SetPIN, and
 * at exit.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11fault.h"

#ifndef P11FAULT_DEFAULT_MODULE
#define P11FAULT_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

#define EXPORT __attribute__((visibility("default")))

CK_FUNCTION_LIST *p11f_real;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static CK_RV load_rv = CKR_GENERAL_ERROR;

static const char *const func_names[P11F_NFUNCS] = {
#define P11F_NAME(name) #name,
    P11F_FUNCTIONS(P11F_NAME)
#undef P11F_NAME
};

const char *
p11f_func_name(int fn)
{
	return fn >= 0 && fn < P11F_NFUNCS ? func_names[fn] : "?";
}

/* ---- wrappers ---- */

/* The common case: ask the rules, then forward or fail. */
#define WRAP(fn, scope, handle, params, args)                                                      \
	static CK_RV w_##fn params                                                                 \
	{                                                                                          \
		CK_RV rv_;                                                                         \
		if (p11f_enter(P11F_##fn, scope, (unsigned long)(handle), &rv_))                   \
			return rv_;                                                                \
		return p11f_real->fn args;                                                         \
	}

typedef CK_RV (*io_fn)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR);
typedef CK_RV (*final_fn)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR);

/* Finish a single-part operation in the real module into a scratch buffer. */
static void
end_io(io_fn f, CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inlen)
{
	CK_BYTE_PTR buf;
	CK_ULONG n = 0;

	/* A length query leaves the operation active; an error has ended it. */
	if (f(s, in, inlen, NULL, &n) != CKR_OK)
		return;
	if ((buf = malloc(n > 0 ? n : 1)) == NULL)
		return;
	(void)f(s, in, inlen, buf, &n);
	explicit_bzero(buf, n);
	free(buf);
}

/* Finish a multi-part operation in the real module (C_*Final) into a scratch buffer. */
static void
end_final(final_fn f, CK_SESSION_HANDLE s)
{
	CK_BYTE_PTR buf;
	CK_ULONG n = 0;

	if (f(s, NULL, &n) != CKR_OK)
		return;
	if ((buf = malloc(n > 0 ? n : 1)) == NULL)
		return;
	(void)f(s, buf, &n);
	explicit_bzero(buf, n);
	free(buf);
}

/* A verification ends on any answer, a wrong signature too. */
static void
end_verify(CK_SESSION_HANDLE s)
{
	CK_BYTE zero[1] = {0};

	(void)p11f_real->C_VerifyFinal(s, zero, sizeof(zero));
}

/* Single-part operations: on an injected failure, end the real operation too. */
#define WRAP_IO(fn)                                                                                \
	static CK_RV w_##fn(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inlen, CK_BYTE_PTR out,  \
	    CK_ULONG_PTR outlen)                                                                   \
	{                                                                                          \
		CK_RV rv_;                                                                         \
		if (!p11f_enter(P11F_##fn, P11F_SESSION, s, &rv_))                                 \
			return p11f_real->fn(s, in, inlen, out, outlen);                           \
		end_io(p11f_real->fn, s, in, inlen);                                               \
		return rv_;                                                                        \
	}

#define WRAP_FINAL(fn)                                                                             \
	static CK_RV w_##fn(CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG_PTR outlen)             \
	{                                                                                          \
		CK_RV rv_;                                                                         \
		if (!p11f_enter(P11F_##fn, P11F_SESSION, s, &rv_))                                 \
			return p11f_real->fn(s, out, outlen);                                      \
		end_final(p11f_real->fn, s);                                                       \
		return rv_;                                                                        \
	}

/* Multi-part steps: on an injected failure, end the operation(s) they belong to. */
#define WRAP_PART(fn, params, args, end)                                                           \
	static CK_RV w_##fn params                                                                 \
	{                                                                                          \
		CK_RV rv_;                                                                         \
		if (!p11f_enter(P11F_##fn, P11F_SESSION, s, &rv_))                                 \
			return p11f_real->fn args;                                                 \
		end;                                                                               \
		return rv_;                                                                        \
	}

#define END_ENCRYPT end_final(p11f_real->C_EncryptFinal, s)
#define END_DECRYPT end_final(p11f_real->C_DecryptFinal, s)
#define END_DIGEST  end_final(p11f_real->C_DigestFinal, s)
#define END_SIGN    end_final(p11f_real->C_SignFinal, s)
#define END_VERIFY  end_verify(s)

static CK_RV
w_C_Initialize(void *args)
{
	CK_RV rv;

	if (p11f_enter(P11F_C_Initialize, P11F_NO_TOKEN, 0, &rv))
		return rv;
	rv = p11f_real->C_Initialize(args);
	p11f_labels_forget(1, 0);
	return rv;
}

static CK_RV
w_C_Finalize(void *reserved)
{
	CK_RV rv;

	if (p11f_enter(P11F_C_Finalize, P11F_NO_TOKEN, 0, &rv))
		return rv;
	rv = p11f_real->C_Finalize(reserved);
	p11f_labels_forget(1, 0);
	p11f_stats_write(1);
	return rv;
}

static CK_RV
w_C_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG len, CK_UTF8CHAR_PTR label)
{
	CK_RV rv;

	if (p11f_enter(P11F_C_InitToken, P11F_SLOT, slot, &rv))
		return rv;
	rv = p11f_real->C_InitToken(slot, pin, len, label);
	p11f_labels_forget(0, slot);
	return rv;
}

static CK_RV w_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

/* clang-format off */
WRAP(C_GetInfo, P11F_NO_TOKEN, 0, (CK_INFO_PTR info), (info))
WRAP(C_GetSlotList, P11F_NO_TOKEN, 0, (CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR n),
    (present, list, n))
WRAP(C_GetSlotInfo, P11F_SLOT, slot, (CK_SLOT_ID slot, CK_SLOT_INFO_PTR info), (slot, info))
WRAP(C_GetTokenInfo, P11F_SLOT, slot, (CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info), (slot, info))
WRAP(C_GetMechanismList, P11F_SLOT, slot,
    (CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR n), (slot, list, n))
WRAP(C_GetMechanismInfo, P11F_SLOT, slot,
    (CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info), (slot, type, info))
WRAP(C_InitPIN, P11F_SESSION, s, (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR pin, CK_ULONG len),
    (s, pin, len))
WRAP(C_SetPIN, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR old, CK_ULONG oldlen, CK_UTF8CHAR_PTR pin,
        CK_ULONG len),
    (s, old, oldlen, pin, len))
WRAP(C_OpenSession, P11F_SLOT, slot,
    (CK_SLOT_ID slot, CK_FLAGS flags, void *app, CK_NOTIFY notify, CK_SESSION_HANDLE_PTR s),
    (slot, flags, app, notify, s))
WRAP(C_CloseSession, P11F_SESSION, s, (CK_SESSION_HANDLE s), (s))
WRAP(C_CloseAllSessions, P11F_SLOT, slot, (CK_SLOT_ID slot), (slot))
WRAP(C_GetSessionInfo, P11F_SESSION, s, (CK_SESSION_HANDLE s, CK_SESSION_INFO_PTR info),
    (s, info))
WRAP(C_GetOperationState, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_BYTE_PTR state, CK_ULONG_PTR len), (s, state, len))
WRAP(C_SetOperationState, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_BYTE_PTR state, CK_ULONG len, CK_OBJECT_HANDLE enc,
        CK_OBJECT_HANDLE auth),
    (s, state, len, enc, auth))
WRAP(C_Login, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len),
    (s, user, pin, len))
WRAP(C_Logout, P11F_SESSION, s, (CK_SESSION_HANDLE s), (s))
WRAP(C_CreateObject, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR o),
    (s, t, n, o))
WRAP(C_CopyObject, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n,
        CK_OBJECT_HANDLE_PTR copy),
    (s, o, t, n, copy))
WRAP(C_DestroyObject, P11F_SESSION, s, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o), (s, o))
WRAP(C_GetObjectSize, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ULONG_PTR size), (s, o, size))
WRAP(C_GetAttributeValue, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n), (s, o, t, n))
WRAP(C_SetAttributeValue, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n), (s, o, t, n))
WRAP(C_FindObjectsInit, P11F_SESSION, s, (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n),
    (s, t, n))
WRAP(C_FindObjects, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE_PTR o, CK_ULONG max, CK_ULONG_PTR n), (s, o, max, n))
WRAP(C_FindObjectsFinal, P11F_SESSION, s, (CK_SESSION_HANDLE s), (s))
WRAP(C_EncryptInit, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), (s, m, k))
WRAP_IO(C_Encrypt)
WRAP_PART(C_EncryptUpdate,
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inlen, CK_BYTE_PTR out, CK_ULONG_PTR outlen),
    (s, in, inlen, out, outlen), END_ENCRYPT)
WRAP_FINAL(C_EncryptFinal)
WRAP(C_DecryptInit, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), (s, m, k))
WRAP_IO(C_Decrypt)
WRAP_PART(C_DecryptUpdate,
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inlen, CK_BYTE_PTR out, CK_ULONG_PTR outlen),
    (s, in, inlen, out, outlen), END_DECRYPT)
WRAP_FINAL(C_DecryptFinal)
WRAP(C_DigestInit, P11F_SESSION, s, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m), (s, m))
WRAP_IO(C_Digest)
WRAP_PART(C_DigestUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inlen), (s, in, inlen),
    END_DIGEST)
WRAP_PART(C_DigestKey, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k), (s, k), END_DIGEST)
WRAP_FINAL(C_DigestFinal)
WRAP(C_SignInit, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), (s, m, k))
WRAP_IO(C_Sign)
WRAP_PART(C_SignUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inlen), (s, in, inlen),
    END_SIGN)
WRAP_FINAL(C_SignFinal)
WRAP(C_SignRecoverInit, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), (s, m, k))
WRAP_IO(C_SignRecover)
WRAP(C_VerifyInit, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), (s, m, k))
WRAP_PART(C_Verify,
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inlen, CK_BYTE_PTR sig, CK_ULONG siglen),
    (s, in, inlen, sig, siglen), (void)p11f_real->C_Verify(s, in, inlen, sig, siglen))
WRAP_PART(C_VerifyUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inlen), (s, in, inlen),
    END_VERIFY)
WRAP_PART(C_VerifyFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG siglen), (s, sig, siglen),
    (void)p11f_real->C_VerifyFinal(s, sig, siglen))
WRAP(C_VerifyRecoverInit, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), (s, m, k))
WRAP_IO(C_VerifyRecover)
WRAP_PART(C_DigestEncryptUpdate,
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inlen, CK_BYTE_PTR out, CK_ULONG_PTR outlen),
    (s, in, inlen, out, outlen), END_DIGEST; END_ENCRYPT)
WRAP_PART(C_DecryptDigestUpdate,
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inlen, CK_BYTE_PTR out, CK_ULONG_PTR outlen),
    (s, in, inlen, out, outlen), END_DECRYPT; END_DIGEST)
WRAP_PART(C_SignEncryptUpdate,
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inlen, CK_BYTE_PTR out, CK_ULONG_PTR outlen),
    (s, in, inlen, out, outlen), END_SIGN; END_ENCRYPT)
WRAP_PART(C_DecryptVerifyUpdate,
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG inlen, CK_BYTE_PTR out, CK_ULONG_PTR outlen),
    (s, in, inlen, out, outlen), END_DECRYPT; END_VERIFY)
WRAP(C_GenerateKey, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n,
        CK_OBJECT_HANDLE_PTR k),
    (s, m, t, n, k))
WRAP(C_GenerateKeyPair, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pubt, CK_ULONG pubn,
        CK_ATTRIBUTE_PTR privt, CK_ULONG privn, CK_OBJECT_HANDLE_PTR pub,
        CK_OBJECT_HANDLE_PTR priv),
    (s, m, pubt, pubn, privt, privn, pub, priv))
WRAP(C_WrapKey, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE k,
        CK_BYTE_PTR out, CK_ULONG_PTR outlen),
    (s, m, wrapping, k, out, outlen))
WRAP(C_UnwrapKey, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR in,
        CK_ULONG inlen, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR k),
    (s, m, unwrapping, in, inlen, t, n, k))
WRAP(C_DeriveKey, P11F_SESSION, s,
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE base, CK_ATTRIBUTE_PTR t,
        CK_ULONG n, CK_OBJECT_HANDLE_PTR k),
    (s, m, base, t, n, k))
WRAP(C_SeedRandom, P11F_SESSION, s, (CK_SESSION_HANDLE s, CK_BYTE_PTR seed, CK_ULONG len),
    (s, seed, len))
WRAP(C_GenerateRandom, P11F_SESSION, s, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG len),
    (s, out, len))
WRAP(C_GetFunctionStatus, P11F_SESSION, s, (CK_SESSION_HANDLE s), (s))
WRAP(C_CancelFunction, P11F_SESSION, s, (CK_SESSION_HANDLE s), (s))
WRAP(C_WaitForSlotEvent, P11F_NO_TOKEN, 0, (CK_FLAGS flags, CK_SLOT_ID_PTR slot, void *reserved),
    (flags, slot, reserved))
/* clang-format on */

static CK_FUNCTION_LIST wrapped = {
#define P11F_MEMBER(name) .name = w_##name,
    P11F_FUNCTIONS(P11F_MEMBER)
#undef P11F_MEMBER
};

/* ---- loading the real module ---- */

static void
load_real(void)
{
	const char *path = getenv("P11FAULT_MODULE");
	CK_C_GetFunctionList get;
	CK_FUNCTION_LIST *list = NULL;
	void *dl;
	CK_RV rv;

	if (path == NULL || path[0] == '\0')
		path = P11FAULT_DEFAULT_MODULE;
	if ((dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr,
		    "p11fault: cannot load the real module %s: %s; set P11FAULT_MODULE\n", path,
		    dlerror());
		return;
	}
	*(void **)&get = dlsym(dl, "C_GetFunctionList");
	if (get == NULL) {
		fprintf(stderr, "p11fault: %s has no C_GetFunctionList\n", path);
		dlclose(dl);
		return;
	}
	if ((rv = get(&list)) != CKR_OK || list == NULL) {
		fprintf(stderr, "p11fault: C_GetFunctionList of %s failed (0x%lx)\n", path,
		    (unsigned long)rv);
		dlclose(dl);
		return;
	}
	/* The module stays loaded for the life of the process: wrappers may run until exit. */
	p11f_real = list;
	wrapped.version = list->version;
	p11f_rules_init();
	load_rv = CKR_OK;
}

static CK_RV
w_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	CK_RV rv;

	if (list == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_once(&load_once, load_real);
	if (load_rv != CKR_OK)
		return load_rv;
	if (p11f_enter(P11F_C_GetFunctionList, P11F_NO_TOKEN, 0, &rv))
		return rv;
	*list = &wrapped;
	return CKR_OK;
}

EXPORT CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	return w_C_GetFunctionList(list);
}
