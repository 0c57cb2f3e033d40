/*
 * cli_audit_show.c - "dkimkeep audit show": what a reviewer wants to read
 * from the audit log.  Per day, client and domain: signatures, refusals by
 * reason, signatures made on a backup key, failovers, rotations and admin
 * acts; then the lists of admin acts (with who did them) and of daemon
 * events.  It reads; "audit verify" judges.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "audit/dka_read.h"
#include "audit/dka_rec.h"
#include "client/cli_audit.h"
#include "client/cli_audit_log.h"
#include "client/cli_tokens.h"
#include "common/dk_buf.h"
#include "common/dk_err.h"
#include "common/dk_json.h"
#include "common/dk_time.h"

#define GROUPS_MAX (1024 * 1024) /* day x client x domain rows */
#define LIST_MAX   100000        /* admin acts, daemon events, matches kept in full */
#define OUT_MAX    (256 * 1024 * 1024)
#define NAME_MAX_  256

static const char show_usage[] =
    "usage: dkimkeep [-c FILE] audit show FILE... [--since T] [--domain D] [--client C]\n"
    "                                     [--message-id ID] [--json]\n"
    "\n"
    "Summarizes audit log files for a reviewer: per day, client and domain the\n"
    "signatures made (and how many on a backup key), refusals by reason, failovers,\n"
    "key rotations and administrative acts; then every administrative act with who did\n"
    "it, and the daemon's own events (start, stop, reload, failover, recovery, lost\n"
    "records).  It does not check the chain: run \"dkimkeep audit verify\" first.\n"
    "\n"
    "Options:\n"
    "  --since T         only records from T on: 2026-11-24, 2026-11-24T10:00:00Z, a UNIX\n"
    "                    time, or a duration back from now (7d, 12h)\n"
    "  --domain D        only records for domain D\n"
    "  --client C        only records of [client C] (or admin acts by user C)\n"
    "  --message-id ID   the records of the message with this Message-ID: its keyed\n"
    "                    hash is computed in the audit token (needs the config and PIN)\n"
    "  --json            one JSON document: groups, admin_acts, daemon_events, matches\n"
    "\n"
    "Exit codes: 0 shown; 64 usage; 69 the token is needed and cannot be used;\n"
    "74 a file cannot be read.\n";

/* Refusal reasons as the protocol names them; the last is everything else. */
static const char *const reasons[] = {"BAD_REQUEST", "BAD_MESSAGE", "NOT_AUTHORIZED",
    "UNKNOWN_DOMAIN", "NO_KEY", "BUSY", "RATE_LIMITED", "TOKEN_UNAVAILABLE", "AUDIT_UNAVAILABLE",
    "INTERNAL", "OTHER"};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

/* Moves of a key through its states (rotate/), made by the daemon's step or a command. */
static const char *const rotation_events[] = {
    "key.started", "key.activated", "key.retired", "key.revoked", "key.destroyed"};

struct group {
	char day[11];
	char *client, *domain;
	uint64_t signed_, sigs, backup, refused, failovers, recoveries, rotations, admin;
	uint64_t reasons[NREASONS];
};

/* Records kept whole for a list (admin acts, daemon events, matches), as written. */
struct list {
	char **v;
	size_t n, cap;
};

struct show {
	/* filters */
	int64_t since_us;
	const char *domain, *client;
	/* --message-id: what is hashed, the token, and the hash in the hour last seen */
	int have_mid;
	struct dk_conf *conf;
	struct cli_audit_tok at;
	struct dk_buf mid_in;
	char mid_hour[DKA_HOUR_LEN + 1];
	char mid[2 * DKA_MAC_LEN + 1];
	/* totals */
	uint64_t records, shown, unreadable, checkpoints, lost;
	char first[DKA_TIME_LEN + 1], last[DKA_TIME_LEN + 1];
	/* rows, with an open-addressing index of 2 * GROUPS_MAX slots */
	struct group *g;
	size_t ng, gcap;
	size_t *index, index_cap;
	struct list admin, events, matches;
	uint64_t more; /* list entries over LIST_MAX, counted only */
	struct dka_jdoc *doc;
};

/* ---- collecting ---- */

static uint64_t
group_hash(const char *day, const char *client, const char *domain)
{
	uint64_t h = 1469598103934665603ULL;
	const char *parts[3] = {day, client, domain};
	const char *p;
	size_t i;

	for (i = 0; i < 3; i++) {
		for (p = parts[i]; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	return h;
}

static int
index_grow(struct show *s)
{
	size_t cap = s->index_cap ? 2 * s->index_cap : 1024, i, slot;
	size_t *ix = malloc(cap * sizeof(*ix));

	if (ix == NULL)
		return DK_ERR_NOMEM;
	for (i = 0; i < cap; i++)
		ix[i] = (size_t)-1;
	for (i = 0; i < s->ng; i++) {
		slot = group_hash(s->g[i].day, s->g[i].client, s->g[i].domain) & (cap - 1);
		while (ix[slot] != (size_t)-1)
			slot = (slot + 1) & (cap - 1);
		ix[slot] = i;
	}
	free(s->index);
	s->index = ix;
	s->index_cap = cap;
	return 0;
}

static int
group_get(
    struct show *s, const char *day, const char *client, const char *domain, struct group **out)
{
	struct group *g, *ng;
	size_t slot;
	int r;

	if (2 * (s->ng + 1) > s->index_cap && (r = index_grow(s)) != 0)
		return r;
	slot = group_hash(day, client, domain) & (s->index_cap - 1);
	for (; s->index[slot] != (size_t)-1; slot = (slot + 1) & (s->index_cap - 1)) {
		g = &s->g[s->index[slot]];
		if (strcmp(g->day, day) == 0 && strcmp(g->client, client) == 0 &&
		    strcmp(g->domain, domain) == 0) {
			*out = g;
			return 0;
		}
	}
	if (s->ng >= GROUPS_MAX)
		return dk_err_set(DK_ERR_TOO_LARGE,
		    "more than %d day/client/domain rows; narrow "
		    "it down with --since, --domain or --client",
		    GROUPS_MAX);
	if (s->ng == s->gcap) {
		if ((ng = reallocarray(s->g, s->gcap ? 2 * s->gcap : 64, sizeof(*ng))) == NULL)
			return DK_ERR_NOMEM;
		s->g = ng;
		s->gcap = s->gcap ? 2 * s->gcap : 64;
	}
	g = &s->g[s->ng];
	memset(g, 0, sizeof(*g));
	snprintf(g->day, sizeof(g->day), "%s", day);
	if ((g->client = strdup(client)) == NULL || (g->domain = strdup(domain)) == NULL) {
		free(g->client);
		return DK_ERR_NOMEM;
	}
	s->index[slot] = s->ng++;
	*out = g;
	return 0;
}

static int
keep(struct show *s, struct list *l, const uint8_t *line, size_t len)
{
	char **nv;

	if (l->n >= LIST_MAX) {
		s->more++;
		return 0;
	}
	if (l->n == l->cap) {
		if ((nv = reallocarray(l->v, l->cap ? 2 * l->cap : 16, sizeof(*nv))) == NULL)
			return DK_ERR_NOMEM;
		l->v = nv;
		l->cap = l->cap ? 2 * l->cap : 16;
	}
	if ((l->v[l->n] = strndup((const char *)line, len)) == NULL)
		return DK_ERR_NOMEM;
	l->n++;
	return 0;
}

static const char *
str_or(const struct dka_jdoc *d, const char *key, const char *dflt)
{
	const char *v = dka_json_str(d, 0, key, NULL);

	return v != NULL && v[0] ? v : dflt;
}

static int
is_rotation(const char *event)
{
	size_t i;

	for (i = 0; i < sizeof(rotation_events) / sizeof(rotation_events[0]); i++) {
		if (strcmp(event, rotation_events[i]) == 0)
			return 1;
	}
	return 0;
}

/*
 * The keyed hash the --message-id has in the hour of us: the hour's key
 * comes from the token (as the daemon derives it), the HMAC is made here.
 */
static int
mid_for_hour(struct show *s, int64_t us)
{
	uint8_t key[DKA_MAC_LEN], mac[DKA_MAC_LEN];
	char hour[DKA_HOUR_LEN + 1];
	struct dk_buf in;
	int r;

	dka_mac_hour(us, hour);
	if (strcmp(hour, s->mid_hour) == 0)
		return 0;
	dk_buf_init(&in, 128);
	if ((r = dka_hour_key_input(hour, &in)) != 0 ||
	    (r = hsm_audit_hmac(s->at.s, &s->at.keys, in.data, in.len, key)) != 0 ||
	    (r = dka_hmac(key, sizeof(key), s->mid_in.data, s->mid_in.len, mac)) != 0)
		goto out;
	dka_hex(mac, sizeof(mac), s->mid);
	memcpy(s->mid_hour, hour, sizeof(hour));
out:
	explicit_bzero(key, sizeof(key));
	explicit_bzero(mac, sizeof(mac));
	dk_buf_free(&in);
	return r;
}

/* Does the record pass --since, --domain, --client, --message-id?  1, 0, or an error. */
static int
wanted(struct show *s, const struct dka_jdoc *d, int64_t us)
{
	const char *v;
	int r;

	if (us < s->since_us)
		return 0;
	if (s->domain != NULL &&
	    ((v = dka_json_str(d, 0, "domain", NULL)) == NULL || strcasecmp(v, s->domain) != 0))
		return 0;
	if (s->client != NULL && ((v = str_or(d, "client", str_or(d, "user", NULL))) == NULL ||
	                             strcmp(v, s->client) != 0))
		return 0;
	if (!s->have_mid)
		return 1;
	if ((v = dka_json_str(d, 0, "mid", NULL)) == NULL)
		return 0;
	if ((r = mid_for_hour(s, us)) != 0)
		return r;
	return strcmp(v, s->mid) == 0;
}

static void
count_sign(struct group *g, const struct dka_jdoc *d, const char *outcome)
{
	const char *reason, *slot;
	size_t i;
	int sigs, k;

	if (strcmp(outcome, "ok") == 0) {
		g->signed_++;
		sigs = dka_json_get(d, 0, "sigs");
		for (k = sigs >= 0 ? d->n[sigs].first : -1; k >= 0; k = d->n[k].next) {
			g->sigs++;
			slot = dka_json_str(d, k, "slot", NULL);
			if (slot != NULL && strcmp(slot, "backup") == 0) {
				g->backup++;
				break;
			}
		}
		return;
	}
	g->refused++;
	reason = str_or(d, "reason", "OTHER");
	for (i = 0; i + 1 < NREASONS && strcmp(reasons[i], reason) != 0; i++)
		;
	g->reasons[i]++;
}

/*
 * Who a row is about: the [client], or the user of an admin act, or for a
 * caller no [client] matched its uid; the daemon for its own events.
 */
static void
who_of(const struct dka_jdoc *d, const char *event, const char *user, char *who, size_t len)
{
	const char *client = dka_json_str(d, 0, "client", NULL);
	uint64_t uid;

	if (client != NULL && client[0])
		snprintf(who, len, "%s", client);
	else if (user != NULL && user[0])
		snprintf(who, len, "%s", user);
	else if ((strcmp(event, "sign") == 0 || strcmp(event, "request") == 0) &&
	         dka_json_u64(d, 0, "uid", &uid) == 0)
		snprintf(who, len, "uid %llu", (unsigned long long)uid);
	else
		snprintf(who, len, "dkimkeepd");
}

/* Count one parsed record into its row and lists. */
static int
collect(struct show *s, const uint8_t *line, size_t len, const char *time, int64_t us)
{
	const struct dka_jdoc *d = s->doc;
	const char *event = str_or(d, "event", ""), *user = dka_json_str(d, 0, "user", NULL);
	char day[11], who[NAME_MAX_];
	struct group *g = NULL;
	uint64_t lost;
	int r = 0;

	if (strcmp(event, "checkpoint") == 0) {
		s->checkpoints++;
		return 0;
	}
	if (strcmp(event, "audit.gap") == 0) {
		if (dka_json_u64(d, 0, "lost", &lost) == 0 ||
		    dka_json_u64(d, 0, "dropped", &lost) == 0)
			s->lost += lost;
		return keep(s, &s->events, line, len);
	}
	if (strncmp(event, "log.", 4) == 0 || (r = wanted(s, d, us)) <= 0)
		return r;
	s->shown++;
	/* The daemon's start, stop and reload are listed, not counted in a row. */
	if (user == NULL && strncmp(event, "daemon.", 7) == 0)
		return keep(s, &s->events, line, len);
	memcpy(day, time, 10);
	day[10] = '\0';
	who_of(d, event, user, who, sizeof(who));
	if ((r = group_get(s, day, who, str_or(d, "domain", "-"), &g)) != 0)
		return r;
	if (strcmp(event, "sign") == 0 || strcmp(event, "request") == 0) {
		count_sign(g, d, str_or(d, "outcome", "refused"));
		return s->have_mid ? keep(s, &s->matches, line, len) : 0;
	}
	if (is_rotation(event))
		g->rotations++;
	if (user != NULL) {
		g->admin++;
		return keep(s, &s->admin, line, len);
	}
	if (strcmp(event, "token.down") == 0)
		g->failovers++;
	else if (strcmp(event, "token.up") == 0)
		g->recoveries++;
	return keep(s, &s->events, line, len);
}

static int
show_file(struct show *s, const char *path)
{
	struct dka_lines it;
	const uint8_t *line;
	const char *time;
	size_t len, tl = 0;
	int64_t us;
	int complete, r;

	if ((r = dka_lines_open(path, &it)) != 0)
		return r;
	while ((r = dka_lines_next(&it, &line, &len, &complete)) != 0) {
		if (r < 0 && r != DK_ERR_TOO_LARGE)
			break;
		s->records++;
		if (r < 0 || !complete || dka_json_parse((const char *)line, len, s->doc) != 0 ||
		    (time = dka_json_str(s->doc, 0, "time", &tl)) == NULL ||
		    dka_time_parse(time, tl, &us) != 0 || tl != DKA_TIME_LEN) {
			s->unreadable++;
			continue;
		}
		if (s->first[0] == '\0')
			memcpy(s->first, time, tl + 1);
		memcpy(s->last, time, tl + 1);
		if ((r = collect(s, line, len, time, us)) != 0)
			break;
	}
	if (r == DK_ERR_IO)
		r = dk_err_set(DK_ERR_IO, "%s: %s", path, dk_err_detail());
	dka_lines_close(&it);
	return r;
}

/* ---- printing ---- */

static int
group_cmp(const void *a, const void *b)
{
	const struct group *x = a, *y = b;
	int c;

	if ((c = strcmp(x->day, y->day)) != 0 || (c = strcmp(x->client, y->client)) != 0)
		return c;
	return strcmp(x->domain, y->domain);
}

static void
text_groups(const struct show *s, struct dk_buf *out)
{
	const struct group *g;
	size_t i, k;
	int first;

	(void)dk_buf_printf(out, "%-10s  %-16s  %-24s %8s %8s %7s %8s %9s %9s %6s\n", "day",
	    "client", "domain", "signed", "sigs", "backup", "refused", "failovers", "rotations",
	    "admin");
	for (i = 0; i < s->ng; i++) {
		g = &s->g[i];
		(void)dk_buf_printf(out,
		    "%-10s  %-16s  %-24s %8llu %8llu %7llu %8llu %9llu %9llu %6llu\n", g->day,
		    g->client, g->domain, (unsigned long long)g->signed_,
		    (unsigned long long)g->sigs, (unsigned long long)g->backup,
		    (unsigned long long)g->refused, (unsigned long long)g->failovers,
		    (unsigned long long)g->rotations, (unsigned long long)g->admin);
	}
	for (i = 0, first = 1; i < s->ng; i++) {
		g = &s->g[i];
		if (g->refused == 0)
			continue;
		if (first)
			(void)dk_buf_puts(out, "\nrefusals by reason:\n");
		first = 0;
		(void)dk_buf_printf(out, "%-10s  %-16s  %-24s", g->day, g->client, g->domain);
		for (k = 0; k < NREASONS; k++) {
			if (g->reasons[k] > 0)
				(void)dk_buf_printf(
				    out, " %s %llu", reasons[k], (unsigned long long)g->reasons[k]);
		}
		(void)dk_buf_putc(out, '\n');
	}
}

/* One listed record as a line of text: time, event, outcome, then its other fields. */
static void
text_item(struct show *s, const char *line, struct dk_buf *out)
{
	static const char *const skip[] = {"v", "seq", "time", "event", "outcome", "prev", NULL};
	const struct dka_jdoc *d = s->doc;
	size_t i;
	int k;

	if (dka_json_parse(line, strlen(line), s->doc) != 0)
		return;
	(void)dk_buf_printf(out, "%s  %-14s %-7s", str_or(d, "time", "?"), str_or(d, "event", "?"),
	    str_or(d, "outcome", ""));
	for (k = d->n[0].first; k >= 0; k = d->n[k].next) {
		for (i = 0; skip[i] != NULL; i++) {
			if (d->n[k].key_len == strlen(skip[i]) &&
			    memcmp(d->n[k].key, skip[i], d->n[k].key_len) == 0)
				break;
		}
		if (skip[i] != NULL)
			continue;
		if (d->n[k].type == DKA_J_STR)
			(void)dk_buf_printf(
			    out, " %.*s=%s", (int)d->n[k].key_len, d->n[k].key, d->n[k].str);
		else if (d->n[k].type == DKA_J_INT)
			(void)dk_buf_printf(out, " %.*s=%lld", (int)d->n[k].key_len, d->n[k].key,
			    (long long)d->n[k].num);
		else if (d->n[k].type == DKA_J_ARR)
			(void)dk_buf_printf(out, " %.*s=[...]", (int)d->n[k].key_len, d->n[k].key);
	}
	(void)dk_buf_putc(out, '\n');
}

static void
text_list(struct show *s, const char *title, const struct list *l, struct dk_buf *out)
{
	size_t i;

	if (l->n == 0)
		return;
	(void)dk_buf_printf(out, "\n%s:\n", title);
	for (i = 0; i < l->n; i++)
		text_item(s, l->v[i], out);
}

static void
show_text(struct show *s, size_t nfiles, struct dk_buf *out)
{
	(void)dk_buf_printf(out,
	    "%llu records in %zu file%s, %s to %s; %llu checkpoints; %llu shown (chain not "
	    "checked here: run \"dkimkeep audit verify\")\n",
	    (unsigned long long)s->records, nfiles, nfiles == 1 ? "" : "s",
	    s->first[0] ? s->first : "-", s->last[0] ? s->last : "-",
	    (unsigned long long)s->checkpoints, (unsigned long long)s->shown);
	if (s->unreadable > 0)
		(void)dk_buf_printf(out, "WARNING: %llu lines are not readable records\n",
		    (unsigned long long)s->unreadable);
	if (s->lost > 0)
		(void)dk_buf_printf(out,
		    "WARNING: the log says %llu records were lost (audit.gap)\n",
		    (unsigned long long)s->lost);
	(void)dk_buf_putc(out, '\n');
	text_groups(s, out);
	text_list(s, "records of this Message-ID", &s->matches, out);
	text_list(s, "admin acts", &s->admin, out);
	text_list(s, "daemon events", &s->events, out);
	if (s->more > 0)
		(void)dk_buf_printf(
		    out, "(%llu more list entries not shown)\n", (unsigned long long)s->more);
}

/* A parsed value again as JSON (the records' own format: no floats). */
static void
json_node(struct dk_json *j, const char *key, const struct dka_jdoc *d, int i)
{
	char name[64];
	int k;

	switch (d->n[i].type) {
	case DKA_J_NULL:
		dk_json_null(j, key);
		break;
	case DKA_J_BOOL:
		dk_json_bool(j, key, (int)d->n[i].num);
		break;
	case DKA_J_INT:
		dk_json_int(j, key, d->n[i].num);
		break;
	case DKA_J_STR:
		dk_json_strn(j, key, d->n[i].str, d->n[i].str_len);
		break;
	case DKA_J_OBJ:
	case DKA_J_ARR:
		if (d->n[i].type == DKA_J_OBJ)
			dk_json_obj_open(j, key);
		else
			dk_json_arr_open(j, key);
		for (k = d->n[i].first; k >= 0; k = d->n[k].next) {
			snprintf(name, sizeof(name), "%.*s", (int)d->n[k].key_len,
			    d->n[k].key != NULL ? d->n[k].key : "");
			json_node(j, d->n[k].key != NULL ? name : NULL, d, k);
		}
		if (d->n[i].type == DKA_J_OBJ)
			dk_json_obj_close(j);
		else
			dk_json_arr_close(j);
		break;
	}
}

/* The records of a list, each as the object it is in the log. */
static void
json_list(struct dk_json *j, const char *key, const struct list *l, struct dka_jdoc *d)
{
	size_t i;

	dk_json_arr_open(j, key);
	for (i = 0; i < l->n; i++) {
		if (dka_json_parse(l->v[i], strlen(l->v[i]), d) == 0)
			json_node(j, NULL, d, 0);
	}
	dk_json_arr_close(j);
}

static void
show_json(struct show *s, const char *const *files, size_t nfiles, struct dk_buf *out)
{
	const struct group *g;
	struct dk_json j;
	size_t i, k;

	dk_json_init(&j, out);
	dk_json_obj_open(&j, NULL);
	dk_json_arr_open(&j, "files");
	for (i = 0; i < nfiles; i++)
		dk_json_str(&j, NULL, files[i]);
	dk_json_arr_close(&j);
	dk_json_uint(&j, "records", s->records);
	dk_json_uint(&j, "shown", s->shown);
	dk_json_uint(&j, "unreadable", s->unreadable);
	dk_json_uint(&j, "checkpoints", s->checkpoints);
	dk_json_uint(&j, "lost", s->lost);
	dk_json_str(&j, "first", s->first);
	dk_json_str(&j, "last", s->last);
	dk_json_arr_open(&j, "groups");
	for (i = 0; i < s->ng; i++) {
		g = &s->g[i];
		dk_json_obj_open(&j, NULL);
		dk_json_str(&j, "day", g->day);
		dk_json_str(&j, "client", g->client);
		dk_json_str(&j, "domain", g->domain);
		dk_json_uint(&j, "signed", g->signed_);
		dk_json_uint(&j, "signatures", g->sigs);
		dk_json_uint(&j, "backup", g->backup);
		dk_json_uint(&j, "refused", g->refused);
		dk_json_obj_open(&j, "refusals");
		for (k = 0; k < NREASONS; k++) {
			if (g->reasons[k] > 0)
				dk_json_uint(&j, reasons[k], g->reasons[k]);
		}
		dk_json_obj_close(&j);
		dk_json_uint(&j, "failovers", g->failovers);
		dk_json_uint(&j, "recoveries", g->recoveries);
		dk_json_uint(&j, "rotations", g->rotations);
		dk_json_uint(&j, "admin_acts", g->admin);
		dk_json_obj_close(&j);
	}
	dk_json_arr_close(&j);
	json_list(&j, "admin_acts", &s->admin, s->doc);
	json_list(&j, "daemon_events", &s->events, s->doc);
	json_list(&j, "matches", &s->matches, s->doc);
	dk_json_obj_close(&j);
	if (dk_json_finish(&j) == 0)
		(void)dk_buf_putc(out, '\n');
}

/* ---- options ---- */

/* --since: a date, a record time, a UNIX time, or a duration back from now. */
static int
parse_since(const char *v, int64_t *us)
{
	int64_t secs;
	time_t t;

	if (dka_time_parse(v, strlen(v), us) == 0)
		return 0;
	if (v[0] != '\0' && strchr("smhd", v[strlen(v) - 1]) != NULL &&
	    dk_duration_parse(v, &secs) == 0) {
		*us = dka_now_us() - secs * 1000000;
		return 0;
	}
	if (dk_time_parse(v, &t) == 0) {
		*us = (int64_t)t * 1000000;
		return 0;
	}
	return dk_err_set(DK_ERR_USAGE,
	    "--since \"%s\": give a date (2026-11-24), a time (2026-11-24T10:00:00Z), a UNIX "
	    "time or a duration (7d)",
	    v);
}

/* --message-id: the audit token (its key makes the hashes) and what is hashed. */
static int
mid_setup(struct show *s, const char *conf_path, const char *mid)
{
	int r;

	if (strlen(mid) > DKA_MID_MAX)
		return dk_err_set(
		    DK_ERR_USAGE, "--message-id is longer than %d bytes", DKA_MID_MAX);
	if ((r = cli_conf_load(conf_path, &s->conf)) != 0 ||
	    (r = cli_audit_tok_open(s->conf, 0, &s->at)) != 0 ||
	    (r = dka_mac_input(DKA_MAC_MID, mid, strlen(mid), &s->mid_in)) != 0)
		return r;
	s->have_mid = 1;
	return 0;
}

static int
show_parse(int argc, char **argv, const struct cli_ctx *ctx, struct show *s, int *json)
{
	static const struct option longopts[] = {{"since", required_argument, NULL, 's'},
	    {"domain", required_argument, NULL, 'd'}, {"client", required_argument, NULL, 'C'},
	    {"message-id", required_argument, NULL, 'm'}, {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *conf_path = ctx->conf_path, *mid = NULL;
	int opt, r;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			conf_path = optarg;
			break;
		case 's':
			if ((r = parse_since(optarg, &s->since_us)) != 0)
				return cli_fail(r, "audit show: %s", dk_err_detail());
			break;
		case 'd':
			s->domain = optarg;
			break;
		case 'C':
			s->client = optarg;
			break;
		case 'm':
			mid = optarg;
			break;
		case 'j':
			*json = 1;
			break;
		case 'h':
			fputs(show_usage, stdout);
			return EX_OK;
		default:
			return cli_fail(DK_ERR_USAGE,
			    "audit show: bad option \"%s\"; see \"dkimkeep audit show --help\"",
			    argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return cli_fail(DK_ERR_USAGE, "audit show needs the log files, oldest first; see "
		                              "\"dkimkeep audit show --help\"");
	if (mid != NULL && (r = mid_setup(s, conf_path, mid)) != 0)
		return cli_fail(r, "audit show --message-id: %s", dk_err_detail());
	return -1;
}

static void
list_free(struct list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static void
show_free(struct show *s)
{
	size_t i;

	for (i = 0; i < s->ng; i++) {
		free(s->g[i].client);
		free(s->g[i].domain);
	}
	list_free(&s->admin);
	list_free(&s->events);
	list_free(&s->matches);
	free(s->g);
	free(s->index);
	cli_audit_tok_close(&s->at);
	dk_conf_free(s->conf);
	dk_buf_free(&s->mid_in);
	if (s->doc != NULL)
		dka_json_free(s->doc);
	free(s->doc);
}

int
cli_audit_show(int argc, char **argv, const struct cli_ctx *ctx)
{
	struct show s;
	struct dk_buf out;
	const char *const *files;
	size_t nfiles, i;
	int json = 0, code, r = 0;

	memset(&s, 0, sizeof(s));
	dk_buf_init(&s.mid_in, DKA_MID_MAX + 64);
	dk_buf_init(&out, OUT_MAX);
	if ((code = show_parse(argc, argv, ctx, &s, &json)) >= 0)
		goto out;
	files = (const char *const *)(argv + optind);
	nfiles = (size_t)(argc - optind);
	if ((s.doc = calloc(1, sizeof(*s.doc))) == NULL) {
		code = cli_fail(DK_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < nfiles && r == 0; i++)
		r = show_file(&s, files[i]);
	if (r != 0) {
		code = cli_fail(r, "audit show: %s", dk_err_detail());
		goto out;
	}
	if (s.ng > 1)
		qsort(s.g, s.ng, sizeof(s.g[0]), group_cmp);
	if (json)
		show_json(&s, files, nfiles, &out);
	else
		show_text(&s, nfiles, &out);
	fputs(dk_buf_str(&out), stdout);
	code = EX_OK;
out:
	show_free(&s);
	dk_buf_free(&out);
	return code;
}
