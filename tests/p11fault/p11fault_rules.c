/*
 * p11fault_rules.c - the control file (grammar at the top of p11fault.c),
 * the decision for each call, token labels, and the statistics file.
 */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "p11fault.h"

#define CONTROL_MAX  (64 * 1024) /* bytes of the control file read */
#define LINE_MAX_LEN 512         /* bytes of one rule line */
#define WORDS_MAX    8           /* words of one rule line */
#define RULES_MAX    256
#define LABEL_MAX    32 /* CK_TOKEN_INFO.label */
#define LABELS_MAX   64 /* slots whose label is cached */
#define COUNT_MAX    1000000000UL
#define DELAY_MAX_MS 600000UL
#define CHECK_MS     10 /* the control file is stat()ed at most this often */
#define HANG_POLL_MS 50
#define STATS_MS     50 /* the statistics file is rewritten at most this often */

enum action {
	ACT_EVERY,
	ACT_NTH,
	ACT_AFTER,
	ACT_DELAY,
	ACT_HANG,
};

struct rule {
	char text[LINE_MAX_LEN];   /* its words joined by one space: identity across re-reads */
	unsigned long long serial; /* kept across re-reads while the line stays */
	uint64_t funcs[(P11F_NFUNCS + 63) / 64];
	char token[LABEL_MAX + 1]; /* "" for every token */
	enum action act;
	unsigned long n; /* N of nth/after, milliseconds of delay */
	CK_RV rv;
	int hangs;         /* nth/after: the call hangs (RV "hang") instead of failing */
	atomic_ulong seen; /* matching calls since the rule was first read */
};

struct ruleset {
	struct rule *v;
	size_t n;
};

/* Protects rules (the pointer, and the rules but for their atomic counters). */
static pthread_rwlock_t rules_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct ruleset *rules;

struct file_id {
	int exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/* Serializes re-reads of the control file; protects ctl_id and next_serial. */
static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct file_id ctl_id;
static unsigned long long next_serial = 1;
static atomic_llong ctl_checked_ms = -1;
static char *ctl_path, *stats_path;

/* Protects labels and nlabels: token labels by slot. */
static pthread_mutex_t label_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	CK_SLOT_ID slot;
	char label[LABEL_MAX + 1];
} labels[LABELS_MAX];
static size_t nlabels;

/* Serializes writes of the statistics file. */
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_llong stats_written_ms = -1;
static atomic_ulong calls[P11F_NFUNCS], injected[P11F_NFUNCS], delayed[P11F_NFUNCS];
static atomic_ulong control_errors;

static const struct {
	const char *name;
	CK_RV rv;
} rv_names[] = {
#define RVN(x)                                                                                     \
	{                                                                                          \
#x, x                                                                              \
	}
    RVN(CKR_OK),
    RVN(CKR_CANCEL),
    RVN(CKR_HOST_MEMORY),
    RVN(CKR_SLOT_ID_INVALID),
    RVN(CKR_GENERAL_ERROR),
    RVN(CKR_FUNCTION_FAILED),
    RVN(CKR_ARGUMENTS_BAD),
    RVN(CKR_ATTRIBUTE_SENSITIVE),
    RVN(CKR_ATTRIBUTE_TYPE_INVALID),
    RVN(CKR_DATA_INVALID),
    RVN(CKR_DATA_LEN_RANGE),
    RVN(CKR_DEVICE_ERROR),
    RVN(CKR_DEVICE_MEMORY),
    RVN(CKR_DEVICE_REMOVED),
    RVN(CKR_FUNCTION_CANCELED),
    RVN(CKR_FUNCTION_NOT_SUPPORTED),
    RVN(CKR_KEY_HANDLE_INVALID),
    RVN(CKR_KEY_FUNCTION_NOT_PERMITTED),
    RVN(CKR_MECHANISM_INVALID),
    RVN(CKR_OBJECT_HANDLE_INVALID),
    RVN(CKR_OPERATION_ACTIVE),
    RVN(CKR_OPERATION_NOT_INITIALIZED),
    RVN(CKR_PIN_INCORRECT),
    RVN(CKR_PIN_INVALID),
    RVN(CKR_PIN_EXPIRED),
    RVN(CKR_PIN_LOCKED),
    RVN(CKR_SESSION_CLOSED),
    RVN(CKR_SESSION_COUNT),
    RVN(CKR_SESSION_HANDLE_INVALID),
    RVN(CKR_SESSION_READ_ONLY),
    RVN(CKR_SIGNATURE_INVALID),
    RVN(CKR_TOKEN_NOT_PRESENT),
    RVN(CKR_TOKEN_NOT_RECOGNIZED),
    RVN(CKR_TOKEN_WRITE_PROTECTED),
    RVN(CKR_USER_NOT_LOGGED_IN),
    RVN(CKR_USER_ALREADY_LOGGED_IN),
    RVN(CKR_BUFFER_TOO_SMALL),
    RVN(CKR_CRYPTOKI_NOT_INITIALIZED),
    RVN(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    RVN(CKR_FUNCTION_REJECTED),
#undef RVN
};

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(unsigned long ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- parsing ---- */

static void bad_line(size_t lineno, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
bad_line(size_t lineno, const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add(&control_errors, 1);
	fprintf(stderr, "p11fault: %s:%zu: ", ctl_path, lineno);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("; the line is ignored\n", stderr);
}

static int
parse_count(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
parse_rv(const char *s, CK_RV *out)
{
	char *end;
	unsigned long v;
	size_t i;

	for (i = 0; i < sizeof(rv_names) / sizeof(rv_names[0]); i++) {
		if (strcmp(s, rv_names[i].name) == 0) {
			*out = rv_names[i].rv;
			return 0;
		}
	}
	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = (CK_RV)v;
	return 0;
}

/* "C_Sign", "C_SignInit,C_Sign" or "*" into the rule's function set. */
static int
parse_funcs(char *s, struct rule *ru, size_t lineno)
{
	char *name, *save = NULL;
	int fn;

	if (strcmp(s, "*") == 0) {
		for (fn = 0; fn < P11F_NFUNCS; fn++)
			ru->funcs[fn / 64] |= 1ULL << (fn % 64);
		return 0;
	}
	for (name = strtok_r(s, ",", &save); name != NULL; name = strtok_r(NULL, ",", &save)) {
		for (fn = 0; fn < P11F_NFUNCS; fn++) {
			if (strcmp(name, p11f_func_name(fn)) == 0)
				break;
		}
		if (fn == P11F_NFUNCS) {
			bad_line(lineno, "\"%s\" is not a PKCS#11 2.40 function", name);
			return -1;
		}
		ru->funcs[fn / 64] |= 1ULL << (fn % 64);
	}
	return 0;
}

/* The action words (after the function list, token= removed). */
static int
parse_action(char **w, size_t nw, struct rule *ru, size_t lineno)
{
	static const struct {
		const char *name;
		enum action act;
		size_t nargs;
	} acts[] = {{"every", ACT_EVERY, 1}, {"nth", ACT_NTH, 2}, {"after", ACT_AFTER, 2},
	    {"delay", ACT_DELAY, 1}, {"hang", ACT_HANG, 0}};
	size_t i;

	for (i = 0; i < sizeof(acts) / sizeof(acts[0]); i++) {
		if (strcmp(w[0], acts[i].name) == 0)
			break;
	}
	if (i == sizeof(acts) / sizeof(acts[0])) {
		bad_line(lineno, "unknown action \"%s\" (every, nth, after, delay, hang)", w[0]);
		return -1;
	}
	if (nw - 1 != acts[i].nargs) {
		bad_line(lineno, "\"%s\" takes %zu argument(s)", w[0], acts[i].nargs);
		return -1;
	}
	ru->act = acts[i].act;
	switch (ru->act) {
	case ACT_EVERY:
		if (parse_rv(w[1], &ru->rv) != 0) {
			bad_line(lineno, "\"%s\" is not a CKR_ name or a number", w[1]);
			return -1;
		}
		return 0;
	case ACT_NTH:
	case ACT_AFTER:
		if (parse_count(w[1], COUNT_MAX, &ru->n) != 0) {
			bad_line(lineno, "\"%s\" is not a count from 1 to %lu", w[1], COUNT_MAX);
			return -1;
		}
		if (strcmp(w[2], "hang") == 0) {
			ru->hangs = 1;
			return 0;
		}
		if (parse_rv(w[2], &ru->rv) != 0) {
			bad_line(lineno, "\"%s\" is not a CKR_ name, a number or \"hang\"", w[2]);
			return -1;
		}
		return 0;
	case ACT_DELAY:
		if (parse_count(w[1], DELAY_MAX_MS, &ru->n) != 0) {
			bad_line(
			    lineno, "\"%s\" is not a delay from 1 to %lu ms", w[1], DELAY_MAX_MS);
			return -1;
		}
		return 0;
	default:
		return 0;
	}
}

/* One line (NUL-terminated, no newline) into ru; 1 for a rule, 0 for nothing, -1 for an error. */
static int
parse_line(char *line, struct rule *ru, size_t lineno)
{
	char *w[WORDS_MAX + 1], *save = NULL, *p, *funcs;
	size_t nw = 0, i, k, len = 0;
	const char *token = NULL;

	if ((p = strchr(line, '#')) != NULL)
		*p = '\0';
	for (p = strtok_r(line, " \t\r", &save); p != NULL; p = strtok_r(NULL, " \t\r", &save)) {
		if (nw == WORDS_MAX) {
			bad_line(lineno, "more than %d words", WORDS_MAX);
			return -1;
		}
		w[nw++] = p;
	}
	if (nw == 0)
		return 0;
	memset(ru, 0, sizeof(*ru));
	for (i = 0; i < nw; i++) {
		len += (size_t)snprintf(
		    ru->text + len, sizeof(ru->text) - len, "%s%s", i > 0 ? " " : "", w[i]);
		if (len >= sizeof(ru->text))
			len = sizeof(ru->text) - 1;
	}
	for (i = 0, k = 0; i < nw; i++) {
		if (strncmp(w[i], "token=", 6) != 0) {
			w[k++] = w[i];
			continue;
		}
		if (token != NULL || i < 2 || w[i][6] == '\0' || strlen(w[i] + 6) > LABEL_MAX) {
			bad_line(lineno,
			    "token=LABEL must come once, after the action, with a label "
			    "of 1 to %d bytes",
			    LABEL_MAX);
			return -1;
		}
		token = w[i] + 6;
	}
	nw = k;
	if (nw < 2) {
		bad_line(lineno, "a rule is FUNCTIONS ACTION [ARGUMENTS] [token=LABEL]");
		return -1;
	}
	funcs = w[0];
	if (parse_funcs(funcs, ru, lineno) != 0 || parse_action(w + 1, nw - 1, ru, lineno) != 0)
		return -1;
	if (token != NULL)
		snprintf(ru->token, sizeof(ru->token), "%s", token);
	return 1;
}

/* Read and parse the control file; a missing file is an empty set. */
static struct ruleset *
control_read(void)
{
	struct ruleset *set;
	char *buf = NULL, *line, *nl;
	size_t len = 0, lineno = 0;
	ssize_t got;
	int fd, r;

	if ((set = calloc(1, sizeof(*set))) == NULL ||
	    (set->v = calloc(RULES_MAX, sizeof(*set->v))) == NULL) {
		free(set);
		return NULL;
	}
	if ((fd = open(ctl_path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno != ENOENT)
			fprintf(
			    stderr, "p11fault: cannot open %s: %s\n", ctl_path, strerror(errno));
		return set;
	}
	if ((buf = malloc(CONTROL_MAX + 1)) == NULL)
		goto out;
	while (len < CONTROL_MAX && (got = read(fd, buf + len, CONTROL_MAX - len)) > 0)
		len += (size_t)got;
	if (len == CONTROL_MAX)
		fprintf(stderr, "p11fault: %s: only the first %d bytes are read\n", ctl_path,
		    CONTROL_MAX);
	buf[len] = '\0';
	for (line = buf; line < buf + len; line = nl + 1) {
		lineno++;
		if ((nl = memchr(line, '\n', (size_t)(buf + len - line))) == NULL)
			nl = buf + len;
		*nl = '\0';
		if ((size_t)(nl - line) >= LINE_MAX_LEN) {
			bad_line(lineno, "longer than %d bytes", LINE_MAX_LEN - 1);
			continue;
		}
		if (set->n == RULES_MAX) {
			bad_line(lineno, "more than %d rules", RULES_MAX);
			break;
		}
		if ((r = parse_line(line, &set->v[set->n], lineno)) == 1)
			set->n++;
	}
out:
	free(buf);
	close(fd);
	return set;
}

static void
ruleset_free(struct ruleset *set)
{
	if (set == NULL)
		return;
	free(set->v);
	free(set);
}

/* Give the rules of fresh the serials and counts of unchanged lines in old. */
static void
carry_over(struct ruleset *fresh, const struct ruleset *old)
{
	unsigned char used[RULES_MAX];
	size_t i, j;

	memset(used, 0, sizeof(used));
	for (i = 0; i < fresh->n; i++) {
		for (j = 0; old != NULL && j < old->n; j++) {
			if (!used[j] && strcmp(fresh->v[i].text, old->v[j].text) == 0)
				break;
		}
		if (old != NULL && j < old->n) {
			used[j] = 1;
			fresh->v[i].serial = old->v[j].serial;
			atomic_store(&fresh->v[i].seen, atomic_load(&old->v[j].seen));
		} else {
			fresh->v[i].serial = next_serial++;
			atomic_store(&fresh->v[i].seen, 0);
		}
	}
}

static int
file_id_same(const struct file_id *a, const struct file_id *b)
{
	if (a->exists != b->exists)
		return 0;
	return !a->exists ||
	       (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec);
}

/* Re-read the control file if it changed (at most every CHECK_MS unless force). */
static void
control_check(int force)
{
	long long now = now_ms(), last = atomic_load(&ctl_checked_ms);
	struct ruleset *fresh, *old;
	struct file_id id;
	struct stat st;

	if (ctl_path == NULL || (!force && last >= 0 && now - last < CHECK_MS))
		return;
	if (pthread_mutex_trylock(&ctl_lock) != 0)
		return; /* another thread is reading it */
	atomic_store(&ctl_checked_ms, now);
	memset(&id, 0, sizeof(id));
	if (stat(ctl_path, &st) == 0) {
		id.exists = 1;
		id.dev = st.st_dev;
		id.ino = st.st_ino;
		id.size = st.st_size;
		id.mtime = st.st_mtim;
	}
	if (file_id_same(&id, &ctl_id) && last >= 0)
		goto out;
	if ((fresh = control_read()) == NULL)
		goto out;
	pthread_rwlock_wrlock(&rules_lock);
	carry_over(fresh, rules);
	old = rules;
	rules = fresh;
	pthread_rwlock_unlock(&rules_lock);
	ruleset_free(old);
	ctl_id = id;
out:
	pthread_mutex_unlock(&ctl_lock);
}

void
p11f_rules_init(void)
{
	const char *ctl = getenv("P11FAULT_CONTROL"), *st = getenv("P11FAULT_STATS"), *p;
	char pid[32];
	size_t need;

	if (ctl != NULL && ctl[0] != '\0')
		ctl_path = strdup(ctl);
	if (st == NULL || st[0] == '\0')
		return;
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	need = strlen(st) + sizeof(pid) + 1;
	if ((stats_path = malloc(need)) == NULL)
		return;
	if ((p = strstr(st, "%p")) != NULL)
		snprintf(stats_path, need, "%.*s%s%s", (int)(p - st), st, pid, p + 2);
	else
		snprintf(stats_path, need, "%s", st);
}

/* ---- token labels ---- */

void
p11f_labels_forget(int all, CK_SLOT_ID slot)
{
	size_t i;

	pthread_mutex_lock(&label_lock);
	for (i = 0; i < nlabels;) {
		if (all || labels[i].slot == slot)
			labels[i] = labels[--nlabels];
		else
			i++;
	}
	pthread_mutex_unlock(&label_lock);
}

/* The label of the token in slot, blanks trimmed, or "" when it cannot be read. */
static void
slot_label(CK_SLOT_ID slot, char out[LABEL_MAX + 1])
{
	CK_TOKEN_INFO ti;
	size_t i, n;

	pthread_mutex_lock(&label_lock);
	for (i = 0; i < nlabels; i++) {
		if (labels[i].slot == slot) {
			memcpy(out, labels[i].label, LABEL_MAX + 1);
			pthread_mutex_unlock(&label_lock);
			return;
		}
	}
	pthread_mutex_unlock(&label_lock);
	out[0] = '\0';
	if (p11f_real->C_GetTokenInfo(slot, &ti) != CKR_OK)
		return;
	for (n = sizeof(ti.label); n > 0 && ti.label[n - 1] == ' '; n--)
		;
	memcpy(out, ti.label, n);
	out[n] = '\0';
	pthread_mutex_lock(&label_lock);
	if (nlabels < LABELS_MAX) {
		labels[nlabels].slot = slot;
		memcpy(labels[nlabels].label, out, LABEL_MAX + 1);
		nlabels++;
	}
	pthread_mutex_unlock(&label_lock);
}

static void
call_label(enum p11f_scope scope, unsigned long handle, char out[LABEL_MAX + 1])
{
	CK_SESSION_INFO si;

	out[0] = '\0';
	if (scope == P11F_SLOT)
		slot_label((CK_SLOT_ID)handle, out);
	else if (scope == P11F_SESSION &&
	         p11f_real->C_GetSessionInfo((CK_SESSION_HANDLE)handle, &si) == CKR_OK)
		slot_label(si.slotID, out);
}

/* ---- the decision ---- */

static int
rule_present(unsigned long long serial)
{
	size_t i;
	int found = 0;

	pthread_rwlock_rdlock(&rules_lock);
	for (i = 0; rules != NULL && i < rules->n && !found; i++)
		found = rules->v[i].serial == serial;
	pthread_rwlock_unlock(&rules_lock);
	return found;
}

static int
stats_urgent(int fn)
{
	return fn == P11F_C_Initialize || fn == P11F_C_Finalize || fn == P11F_C_Login ||
	       fn == P11F_C_Logout || fn == P11F_C_InitToken || fn == P11F_C_InitPIN ||
	       fn == P11F_C_SetPIN;
}

int
p11f_enter(int fn, enum p11f_scope scope, unsigned long handle, CK_RV *rv)
{
	char label[LABEL_MAX + 1];
	unsigned long long hang = 0;
	unsigned long delay = 0, seen;
	struct rule *ru;
	size_t i;
	int have_label = 0, fail = 0;

	atomic_fetch_add(&calls[fn], 1);
	control_check(0);
	pthread_rwlock_rdlock(&rules_lock);
	for (i = 0; rules != NULL && i < rules->n && !fail && hang == 0; i++) {
		ru = &rules->v[i];
		if (!(ru->funcs[fn / 64] & (1ULL << (fn % 64))))
			continue;
		if (ru->token[0] != '\0') {
			if (!have_label) {
				call_label(scope, handle, label);
				have_label = 1;
			}
			if (strcmp(label, ru->token) != 0)
				continue;
		}
		seen = atomic_fetch_add(&ru->seen, 1) + 1;
		switch (ru->act) {
		case ACT_EVERY:
			fail = 1;
			break;
		case ACT_NTH:
		case ACT_AFTER:
			if (ru->act == ACT_NTH ? seen != ru->n : seen < ru->n)
				break;
			if (ru->hangs)
				hang = ru->serial;
			else
				fail = 1;
			break;
		case ACT_DELAY:
			delay = delay + ru->n > DELAY_MAX_MS ? DELAY_MAX_MS : delay + ru->n;
			break;
		case ACT_HANG:
			hang = ru->serial;
			break;
		}
		if (fail)
			*rv = ru->rv;
	}
	pthread_rwlock_unlock(&rules_lock);
	/* A test waits for this call to be counted: say so before sleeping or hanging. */
	if (delay > 0) {
		atomic_fetch_add(&delayed[fn], 1);
		p11f_stats_write(1);
		sleep_ms(delay);
	}
	if (hang != 0)
		p11f_stats_write(1);
	while (hang != 0) {
		sleep_ms(HANG_POLL_MS);
		control_check(1);
		if (!rule_present(hang))
			hang = 0;
	}
	if (fail)
		atomic_fetch_add(&injected[fn], 1);
	p11f_stats_write(stats_urgent(fn));
	return fail;
}

/* ---- statistics ---- */

void
p11f_stats_write(int force)
{
	char tmp[PATH_MAX];
	long long now = now_ms(), last = atomic_load(&stats_written_ms);
	unsigned long c;
	FILE *f;
	int fd, i;

	if (stats_path == NULL || (!force && last >= 0 && now - last < STATS_MS))
		return;
	if (force)
		pthread_mutex_lock(&stats_lock);
	else if (pthread_mutex_trylock(&stats_lock) != 0)
		return;
	atomic_store(&stats_written_ms, now);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", stats_path, (long)getpid()) >=
	    sizeof(tmp))
		goto out;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
		goto out;
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		goto out;
	}
	fprintf(f, "# p11fault: PKCS#11 calls of process %ld\n", (long)getpid());
	for (i = 0; i < P11F_NFUNCS; i++) {
		if ((c = atomic_load(&calls[i])) > 0)
			fprintf(f, "%s %lu\n", p11f_func_name(i), c);
		if ((c = atomic_load(&injected[i])) > 0)
			fprintf(f, "%s.injected %lu\n", p11f_func_name(i), c);
		if ((c = atomic_load(&delayed[i])) > 0)
			fprintf(f, "%s.delayed %lu\n", p11f_func_name(i), c);
	}
	if ((c = atomic_load(&control_errors)) > 0)
		fprintf(f, "control_errors %lu\n", c);
	if (fclose(f) == 0)
		(void)rename(tmp, stats_path);
	else
		(void)unlink(tmp);
out:
	pthread_mutex_unlock(&stats_lock);
}

__attribute__((destructor)) static void
stats_at_exit(void)
{
	p11f_stats_write(1);
}
