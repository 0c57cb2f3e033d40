/*
 * hsm_meta.c - the metadata object kept beside each key pair.
 *
 * One private CKO_DATA object per key pair: CKA_APPLICATION "dkimkeep",
 * CKA_LABEL the key id in hex, CKA_VALUE a small text of "name=value"
 * lines, first "v=1".  Unknown names are ignored (a newer dkimkeep may add
 * some); a different v= is refused.  SoftHSM refuses C_SetAttributeValue
 * on CKA_VALUE of a data object (CKR_ATTRIBUTE_READ_ONLY), so a change
 * writes a new object with a higher rev= and then destroys the old one
 * (docs/architecture.md, "Keys in the token").
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/dk_err.h"
#include "common/dk_time.h"
#include "hsm/hsm_int.h"

#define META_VERSION  "1"
#define META_NAME_MAX 32
#define META_TIME_MAX 253402300799LL /* 9999-12-31T23:59:59Z, the last RFC 3339 time */

static const char *const meta_algs[] = {"rsa-sha256", "ed25519-sha256", NULL};
static const char *const meta_slots[] = {"primary", "backup", NULL};
static const char *const meta_states[] = {
    "pending", "active", "retiring", "revoked", "standby", "destroyed", NULL};

static int
in_list(const char *s, const char *const *list)
{
	for (; *list != NULL; list++) {
		if (strcmp(s, *list) == 0)
			return 1;
	}
	return 0;
}

/* A DNS name of labels of letters, digits, '-' and '_' (RFC 6376 §3.1, §3.5 d=). */
static int
dns_name_valid(const char *s, size_t max)
{
	size_t n = strlen(s), i, label = 0;

	if (n == 0 || n > max || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		        c == '-' || c == '_'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

int
hsm_meta_valid(const struct hsm_key_meta *meta)
{
	if (!dns_name_valid(meta->domain, HSM_DOMAIN_MAX))
		return dk_err_set(
		    DK_ERR_INVALID, "domain \"%s\" is not a valid domain name", meta->domain);
	if (!dns_name_valid(meta->selector, HSM_SELECTOR_MAX))
		return dk_err_set(DK_ERR_INVALID,
		    "selector \"%s\" is not valid: use at most %d letters, digits, '-' and '.'",
		    meta->selector, HSM_SELECTOR_MAX);
	if (!in_list(meta->alg, meta_algs))
		return dk_err_set(DK_ERR_INVALID,
		    "algorithm \"%s\" is not rsa-sha256 or ed25519-sha256", meta->alg);
	if (!in_list(meta->slot, meta_slots))
		return dk_err_set(
		    DK_ERR_INVALID, "slot \"%s\" is not primary or backup", meta->slot);
	if (!in_list(meta->state, meta_states))
		return dk_err_set(DK_ERR_INVALID, "key state \"%s\" is not known", meta->state);
	if (meta->created < 0 || meta->changed < 0 || meta->pushed < 0 || meta->seen < 0)
		return dk_err_set(DK_ERR_INVALID, "key times must not be negative");
	if (meta->replaces[0] != '\0' && !dns_name_valid(meta->replaces, HSM_SELECTOR_MAX))
		return dk_err_set(
		    DK_ERR_INVALID, "replaced selector \"%s\" is not valid", meta->replaces);
	return 0;
}

/* The optional rotation fields, each only when set, so older records stay as they were. */
static int
meta_format_rotation(const struct hsm_key_meta *meta, struct dk_buf *out)
{
	char t[32];
	int r = 0;

	if (meta->pushed > 0) {
		dk_time_rfc3339((time_t)meta->pushed, t, sizeof(t));
		r = dk_buf_printf(out, "pushed=%s\n", t);
	}
	if (r == 0 && meta->seen > 0) {
		dk_time_rfc3339((time_t)meta->seen, t, sizeof(t));
		r = dk_buf_printf(out, "seen=%s\n", t);
	}
	if (r == 0 && meta->replaces[0] != '\0')
		r = dk_buf_printf(out, "replaces=%s\n", meta->replaces);
	return r;
}

int
hsm_meta_format(const struct hsm_key_meta *meta, unsigned long rev, struct dk_buf *out)
{
	char created[32], changed[32];
	int r;

	if ((r = hsm_meta_valid(meta)) != 0)
		return r;
	dk_time_rfc3339((time_t)meta->created, created, sizeof(created));
	dk_time_rfc3339((time_t)meta->changed, changed, sizeof(changed));
	r = dk_buf_printf(out,
	    "v=" META_VERSION "\ndomain=%s\nselector=%s\nalg=%s\nslot=%s\nstate=%s\n"
	    "created=%s\nchanged=%s\nrev=%lu\n",
	    meta->domain, meta->selector, meta->alg, meta->slot, meta->state, created, changed,
	    rev);
	return r != 0 ? r : meta_format_rotation(meta, out);
}

/* Copy value into a fixed field, refusing what does not fit. */
static int
meta_copy(char *dst, size_t dstlen, const char *v, size_t vlen)
{
	if (vlen >= dstlen)
		return DK_ERR_PARSE;
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
	return 0;
}

static int
meta_time(int64_t *dst, const char *v, size_t vlen)
{
	char tmp[32];
	time_t t;

	if (vlen >= sizeof(tmp))
		return DK_ERR_PARSE;
	memcpy(tmp, v, vlen);
	tmp[vlen] = '\0';
	/* Only times hsm_meta_format() can write back: a record must survive its next rewrite. */
	if (dk_time_parse(tmp, &t) != 0 || t < 0 || t > META_TIME_MAX)
		return DK_ERR_PARSE;
	*dst = (int64_t)t;
	return 0;
}

static int
meta_ulong(unsigned long *dst, const char *v, size_t vlen)
{
	unsigned long x = 0;
	size_t i;

	if (vlen == 0 || vlen > 9)
		return DK_ERR_PARSE;
	for (i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9')
			return DK_ERR_PARSE;
		x = x * 10 + (unsigned long)(v[i] - '0');
	}
	*dst = x;
	return 0;
}

enum {
	SEEN_DOMAIN = 1 << 0,
	SEEN_SELECTOR = 1 << 1,
	SEEN_ALG = 1 << 2,
	SEEN_SLOT = 1 << 3,
	SEEN_STATE = 1 << 4,
	SEEN_CREATED = 1 << 5,
	SEEN_CHANGED = 1 << 6,
	SEEN_REV = 1 << 7,
	SEEN_REQUIRED = (1 << 7) - 1,
	SEEN_PUSHED = 1 << 8, /* the optional rotation fields */
	SEEN_SEEN = 1 << 9,
	SEEN_REPLACES = 1 << 10,
};

/* One "name=value" line; *seen collects the names met, each once. */
static int
meta_field(const char *name, size_t nlen, const char *v, size_t vlen, struct hsm_key_meta *m,
    unsigned long *rev, unsigned *seen)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {{"domain", SEEN_DOMAIN}, {"selector", SEEN_SELECTOR}, {"alg", SEEN_ALG},
	    {"slot", SEEN_SLOT}, {"state", SEEN_STATE}, {"created", SEEN_CREATED},
	    {"changed", SEEN_CHANGED}, {"rev", SEEN_REV}, {"pushed", SEEN_PUSHED},
	    {"seen", SEEN_SEEN}, {"replaces", SEEN_REPLACES}};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == nlen && memcmp(names[i].name, name, nlen) == 0)
			break;
	}
	if (i == sizeof(names) / sizeof(names[0]))
		return 0; /* a newer dkimkeep's field: ignored */
	if (*seen & names[i].bit)
		return DK_ERR_PARSE;
	*seen |= names[i].bit;
	switch (names[i].bit) {
	case SEEN_DOMAIN:
		return meta_copy(m->domain, sizeof(m->domain), v, vlen);
	case SEEN_SELECTOR:
		return meta_copy(m->selector, sizeof(m->selector), v, vlen);
	case SEEN_ALG:
		return meta_copy(m->alg, sizeof(m->alg), v, vlen);
	case SEEN_SLOT:
		return meta_copy(m->slot, sizeof(m->slot), v, vlen);
	case SEEN_STATE:
		return meta_copy(m->state, sizeof(m->state), v, vlen);
	case SEEN_CREATED:
		return meta_time(&m->created, v, vlen);
	case SEEN_CHANGED:
		return meta_time(&m->changed, v, vlen);
	case SEEN_PUSHED:
		return meta_time(&m->pushed, v, vlen);
	case SEEN_SEEN:
		return meta_time(&m->seen, v, vlen);
	case SEEN_REPLACES:
		return meta_copy(m->replaces, sizeof(m->replaces), v, vlen);
	default:
		return meta_ulong(rev, v, vlen);
	}
}

/* Split one line at p (up to end) into name and value; *next after its '\n'. */
static int
meta_line(const char *p, const char *end, const char **name, size_t *nlen, const char **v,
    size_t *vlen, const char **next)
{
	const char *nl, *eq, *q;

	if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
		return DK_ERR_PARSE; /* every line ends with '\n', the last one too */
	if ((eq = memchr(p, '=', (size_t)(nl - p))) == NULL || eq == p ||
	    (size_t)(eq - p) > META_NAME_MAX)
		return DK_ERR_PARSE;
	for (q = p; q < eq; q++) {
		if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_'))
			return DK_ERR_PARSE;
	}
	for (q = eq + 1; q < nl; q++) {
		if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e)
			return DK_ERR_PARSE;
	}
	*name = p;
	*nlen = (size_t)(eq - p);
	*v = eq + 1;
	*vlen = (size_t)(nl - eq - 1);
	*next = nl + 1;
	return 0;
}

int
hsm_meta_parse(const uint8_t *data, size_t len, struct hsm_key_meta *meta, unsigned long *rev)
{
	const char *p = (const char *)data, *end = p + len, *name, *v, *next;
	size_t nlen, vlen;
	unsigned seen = 0;
	int r;

	memset(meta, 0, sizeof(*meta));
	*rev = 0;
	if (len > HSM_META_MAX || len < 4 || memcmp(p, "v=" META_VERSION "\n", 4) != 0)
		return DK_ERR_PARSE;
	p += 4;
	while (p < end) {
		if ((r = meta_line(p, end, &name, &nlen, &v, &vlen, &next)) != 0)
			return r;
		if ((r = meta_field(name, nlen, v, vlen, meta, rev, &seen)) != 0)
			return r;
		p = next;
	}
	if ((seen & SEEN_REQUIRED) != SEEN_REQUIRED)
		return DK_ERR_PARSE;
	if (hsm_meta_valid(meta) != 0)
		return DK_ERR_PARSE;
	return 0;
}

int
hsm_meta_create(struct hsm_session *s, const uint8_t id[HSM_KEY_ID_LEN],
    const struct hsm_key_meta *meta, unsigned long rev, CK_OBJECT_HANDLE *out)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE;
	struct hsm_tmpl t = {.n = 0};
	char hex[2 * HSM_KEY_ID_LEN + 1];
	struct dk_buf text;
	CK_RV rv;
	int r;

	dk_buf_init(&text, HSM_META_MAX);
	if ((r = hsm_meta_format(meta, rev, &text)) != 0)
		goto out;
	hsm_id_hex(id, hex);
	hsm_tmpl_add(&t, CKA_CLASS, &cls, sizeof(cls));
	hsm_tmpl_add(&t, CKA_TOKEN, &yes, sizeof(yes));
	hsm_tmpl_add(&t, CKA_PRIVATE, &yes, sizeof(yes));
	hsm_tmpl_add(&t, CKA_MODIFIABLE, &yes, sizeof(yes));
	hsm_tmpl_add(&t, CKA_APPLICATION, HSM_APPLICATION, strlen(HSM_APPLICATION));
	hsm_tmpl_add(&t, CKA_LABEL, hex, strlen(hex));
	hsm_tmpl_add(&t, CKA_VALUE, text.data, text.len);
	rv = hsm_store_create(s, t.a, t.n, out);
	if (rv != CKR_OK) {
		r = hsm_fail(rv, "token \"%s\": writing the metadata of key %s (C_CreateObject)",
		    s->t->label, hex);
		goto out;
	}
	r = 0;
out:
	dk_buf_free(&text);
	return r;
}

int
hsm_meta_read(struct hsm_session *s, CK_OBJECT_HANDLE o, uint8_t id[HSM_KEY_ID_LEN],
    struct hsm_key_meta *meta, unsigned long *rev)
{
	struct dk_buf label, value;
	int r;

	dk_buf_init(&label, 64);
	dk_buf_init(&value, HSM_META_MAX);
	if ((r = hsm_attr_bytes(s, o, CKA_LABEL, 64, &label)) != 0)
		goto out;
	if (hsm_id_parse(dk_buf_str(&label), label.len, id) != 0) {
		r = dk_err_set(DK_ERR_PARSE,
		    "token \"%s\": dkimkeep data object %lu has label \"%s\", not a key id",
		    s->t->label, (unsigned long)o, dk_buf_str(&label));
		goto out;
	}
	if ((r = hsm_attr_bytes(s, o, CKA_VALUE, HSM_META_MAX, &value)) != 0)
		goto out;
	if (hsm_meta_parse(value.data, value.len, meta, rev) != 0) {
		r = dk_err_set(DK_ERR_PARSE,
		    "token \"%s\": the metadata of key %s cannot be parsed (not v=1, a missing "
		    "or bad field, or over %d bytes)",
		    s->t->label, dk_buf_str(&label), HSM_META_MAX);
		goto out;
	}
	r = 0;
out:
	dk_buf_free(&label);
	dk_buf_free(&value);
	return r;
}
