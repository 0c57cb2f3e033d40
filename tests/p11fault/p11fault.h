/*
 * p11fault.h - what the two files of the fault-injecting PKCS#11 module
 * share: the function table, the real module, and the rule engine that
 * every wrapper asks first.  A test tool: never installed, never linked
 * into dkimkeep.  The control-file grammar is at the top of p11fault.c.
 */
#ifndef P11FAULT_H
#define P11FAULT_H

#include <p11-kit/pkcs11.h>

/* Every function of the PKCS#11 2.40 function list, in the list's order. */
#define P11F_FUNCTIONS(X)                                                                          \
	X(C_Initialize)                                                                            \
	X(C_Finalize)                                                                              \
	X(C_GetInfo)                                                                               \
	X(C_GetFunctionList)                                                                       \
	X(C_GetSlotList)                                                                           \
	X(C_GetSlotInfo)                                                                           \
	X(C_GetTokenInfo)                                                                          \
	X(C_GetMechanismList)                                                                      \
	X(C_GetMechanismInfo)                                                                      \
	X(C_InitToken)                                                                             \
	X(C_InitPIN)                                                                               \
	X(C_SetPIN)                                                                                \
	X(C_OpenSession)                                                                           \
	X(C_CloseSession)                                                                          \
	X(C_CloseAllSessions)                                                                      \
	X(C_GetSessionInfo)                                                                        \
	X(C_GetOperationState)                                                                     \
	X(C_SetOperationState)                                                                     \
	X(C_Login)                                                                                 \
	X(C_Logout)                                                                                \
	X(C_CreateObject)                                                                          \
	X(C_CopyObject)                                                                            \
	X(C_DestroyObject)                                                                         \
	X(C_GetObjectSize)                                                                         \
	X(C_GetAttributeValue)                                                                     \
	X(C_SetAttributeValue)                                                                     \
	X(C_FindObjectsInit)                                                                       \
	X(C_FindObjects)                                                                           \
	X(C_FindObjectsFinal)                                                                      \
	X(C_EncryptInit)                                                                           \
	X(C_Encrypt)                                                                               \
	X(C_EncryptUpdate)                                                                         \
	X(C_EncryptFinal)                                                                          \
	X(C_DecryptInit)                                                                           \
	X(C_Decrypt)                                                                               \
	X(C_DecryptUpdate)                                                                         \
	X(C_DecryptFinal)                                                                          \
	X(C_DigestInit)                                                                            \
	X(C_Digest)                                                                                \
	X(C_DigestUpdate)                                                                          \
	X(C_DigestKey)                                                                             \
	X(C_DigestFinal)                                                                           \
	X(C_SignInit)                                                                              \
	X(C_Sign)                                                                                  \
	X(C_SignUpdate)                                                                            \
	X(C_SignFinal)                                                                             \
	X(C_SignRecoverInit)                                                                       \
	X(C_SignRecover)                                                                           \
	X(C_VerifyInit)                                                                            \
	X(C_Verify)                                                                                \
	X(C_VerifyUpdate)                                                                          \
	X(C_VerifyFinal)                                                                           \
	X(C_VerifyRecoverInit)                                                                     \
	X(C_VerifyRecover)                                                                         \
	X(C_DigestEncryptUpdate)                                                                   \
	X(C_DecryptDigestUpdate)                                                                   \
	X(C_SignEncryptUpdate)                                                                     \
	X(C_DecryptVerifyUpdate)                                                                   \
	X(C_GenerateKey)                                                                           \
	X(C_GenerateKeyPair)                                                                       \
	X(C_WrapKey)                                                                               \
	X(C_UnwrapKey)                                                                             \
	X(C_DeriveKey)                                                                             \
	X(C_SeedRandom)                                                                            \
	X(C_GenerateRandom)                                                                        \
	X(C_GetFunctionStatus)                                                                     \
	X(C_CancelFunction)                                                                        \
	X(C_WaitForSlotEvent)

enum p11f_func {
#define P11F_ENUM(name) P11F_##name,
	P11F_FUNCTIONS(P11F_ENUM)
#undef P11F_ENUM
	    P11F_NFUNCS
};

/* What the first argument of a call names, to find the call's token. */
enum p11f_scope {
	P11F_NO_TOKEN, /* C_Initialize, C_GetSlotList, ...: token= rules never match */
	P11F_SLOT,     /* a slot id */
	P11F_SESSION,  /* a session handle */
};

/* The real module's function list; set before any wrapper can run. */
extern CK_FUNCTION_LIST *p11f_real;

/* "C_Sign" for P11F_C_Sign. */
const char *p11f_func_name(int fn);

/* Read P11FAULT_CONTROL and P11FAULT_STATS; once, before the first call. */
void p11f_rules_init(void);

/*
 * Asked first by every wrapper: counts the call, re-reads the control file
 * when it changed, sleeps for delay rules and blocks for hang rules.
 * Returns 1 with *rv set when the call must fail, 0 when it goes on to the
 * real module.  handle is the slot id or session handle of scope.
 */
int p11f_enter(int fn, enum p11f_scope scope, unsigned long handle, CK_RV *rv);

/* Forget the cached token label of every slot (all) or of one slot. */
void p11f_labels_forget(int all, CK_SLOT_ID slot);

/* Rewrite the statistics file now (force) or when the last write is old enough. */
void p11f_stats_write(int force);

#endif /* P11FAULT_H */
