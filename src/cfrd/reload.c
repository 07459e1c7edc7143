/*
 * Reloading the configuration (SIGHUP, `cfrctl reload`) without dropping a
 * flow, and `cfrd --install-guard`, the root-side step that comes first.
 *
 * A reload is all or nothing. The file is read and parsed, compared with
 * the running configuration key by key, and handed to the engine to
 * validate and prepare (cfr_reconfig_new), all without the engine lock;
 * any refusal leaves everything as it was and says why in one log line
 * (FILE:LINE and the parser's reason, or the key that takes a restart).
 * Only then is the engine lock taken, once, for cfr_engine_reconfigure():
 * a copy and a walk over the pool prefixes, nothing that can fail.
 *
 * What takes a restart is what was set up with privileges or sizes memory:
 * devices, workers, the control socket, the user, the sandbox, table
 * sizes, the records writer, and the XDP program's prefix maps. cfrd runs
 * without privileges by then, so it cannot rewrite its nftables guard
 * table either: `cfrd --install-guard -c FILE`, as root, does that before
 * the signal (the systemd unit's ExecReload), keeping the pools the
 * running cfrd still drains, and tells cfrd which table it installed, so
 * that a reload whose prefixes the table does not match is warned about.
 *
 * Never logs an address but pool prefixes and configuration keys.
 */
#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "acct.h"
#include "clock.h"
#include "log.h"
#include "notify.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* --install-guard waits this long for cfrd's answer. */
#define ASK_TIMEOUT_S 5

void cfrd_reload_init(struct cfrd_reload *r, const char *path, const struct cfrd_config *cfg)
{
	r->path = path;
	r->cfg = *cfg;
	r->guard_known = cfrd_egress_guard_digest(cfg, r->guard) == 0;
}

void cfrd_reload_ready(const struct cfrd_reload *r)
{
	int fd = open(r->path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return;
	}
	log_warn("%s: %s as user %s: a reload could not read it (make it readable to that user, "
	         "e.g. root:%s mode 0640)",
	         r->path, strerror(errno), r->cfg.user, r->cfg.user);
}

/*
 * The first key of <b> that differs from <a> and takes a restart, with
 * why, or NULL. Not every key: the engine refuses what it cannot change
 * too, but in its own words; here the operator gets the key's name.
 */
static const char *restart_key(const struct cfrd_config *a, const struct cfrd_config *b,
                               const char **why, char *buf, size_t size)
{
	static const char device[] = "a device cfrd attached with privileges";
	static const char table[] = "it sizes a table";
	unsigned i;

	*why = device;
	if (strcmp(a->tun, b->tun) != 0)
		return "[cfrd] tun";
	if (a->mtu != b->mtu)
		return "[cfrd] mtu";
	if (a->offload != b->offload)
		return "[cfrd] offload";
	if (a->n_lines != b->n_lines)
		return "[line] sections";
	for (i = 0; i < a->n_lines; i++) {
		if (strcmp(a->lines[i].tun, b->lines[i].tun) != 0) {
			snprintf(buf, size, "[line %s] tun", b->lines[i].name);
			return buf;
		}
		if (a->lines[i].ident6 != b->lines[i].ident6) {
			*why = "it names the line's IPv6 subscribers";
			snprintf(buf, size, "[line %s] subscriber-prefix6", b->lines[i].name);
			return buf;
		}
	}
	if (a->n_xdp_ports != b->n_xdp_ports ||
	    memcmp(a->xdp_ports, b->xdp_ports, a->n_xdp_ports * sizeof(a->xdp_ports[0])) != 0)
		return "[xdp] ports";
	*why = "it was set up before cfrd gave up its privileges";
	if (a->workers != b->workers)
		return "[cfrd] workers";
	if (a->busy_poll_us != b->busy_poll_us)
		return "[cfrd] busy-poll";
	if (strcmp(a->control, b->control) != 0)
		return "[cfrd] control";
	if (strcmp(a->user, b->user) != 0)
		return "[cfrd] user";
	if (a->seccomp != b->seccomp)
		return "[cfrd] seccomp";
	*why = "the records writer opened it at start";
	if (strcmp(a->acct.records, b->acct.records) != 0)
		return "[accounting] records";
	if (strcmp(a->acct.public_key, b->acct.public_key) != 0)
		return "[accounting] public-key";
	if (a->acct.segment_s != b->acct.segment_s)
		return "[accounting] segment";
	if (a->acct.retention_s != b->acct.retention_s)
		return "[accounting] retention";
	if (a->acct.fsync_segment != b->acct.fsync_segment)
		return "[accounting] fsync";
	*why = table;
	if (a->engine.max_flows != b->engine.max_flows)
		return "[limits] max-flows";
	if (a->engine.max_frags != b->engine.max_frags)
		return "[limits] max-fragments";
	if (a->engine.max_subscribers != b->engine.max_subscribers)
		return "[limits] max-subscribers";
	*why = "it names IPv6 subscribers: their limits, seeds and records";
	if (a->engine.subscriber_prefix6 != b->engine.subscriber_prefix6)
		return "[privacy] subscriber-prefix6";
	return NULL;
}

static const struct {
	unsigned bit;
	const char *name;
} change_names[] = {
    {CFR_CHANGE_POOLS, "pools"},
    {CFR_CHANGE_PORTS, "ports"},
    {CFR_CHANGE_POLICY, "policies"},
    {CFR_CHANGE_EPOCH, "epoch"},
    {CFR_CHANGE_SUBSCRIBERS, "subscribers"},
    {CFR_CHANGE_LIMITS, "limits"},
    {CFR_CHANGE_TIMEOUTS, "timeouts"},
    {CFR_CHANGE_SCRUB, "scrub"},
    {CFR_CHANGE_ANONYMITY, "anonymity-k"},
};

/* What changed, as names: the engine's parts, then cfrd's own keys. */
static unsigned changed_names(unsigned changes, const struct cfrd_config *a,
                              const struct cfrd_config *b, const char **out, unsigned max)
{
	unsigned n = 0, i;

	for (i = 0; i < ARRAY_SIZE(change_names) && n < max; i++)
		if (changes & change_names[i].bit)
			out[n++] = change_names[i].name;
	if (a->log_level != b->log_level && n < max)
		out[n++] = "log-level";
	if (a->anon_warn_percent != b->anon_warn_percent && n < max)
		out[n++] = "anonymity-warn-percent";
	if ((a->egress_guard != b->egress_guard || a->source_check != b->source_check ||
	     a->error_mark != b->error_mark) &&
	    n < max)
		out[n++] = "guard";
	return n;
}

static struct json_object *error_reply(const char *msg)
{
	struct json_object *obj = json_object_new_object();

	if (obj != NULL)
		json_object_object_add(obj, "error", json_object_new_string(msg));
	return obj;
}

/* Refused: one log line, and the same words for cfrctl. */
__attribute__((format(printf, 1, 2))) static struct json_object *refused(const char *fmt, ...)
{
	char msg[512], line[576];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "reload refused: %s; the running configuration stays", msg);
	log_error("%s", line);
	return error_reply(line);
}

static void guard_check(struct cfrd_reload *r, const struct cfrd_config *cfg,
                        struct json_object *warnings)
{
	uint8_t digest[CFRD_GUARD_DIGEST_BYTES];
	char msg[320];

	if (!r->guard_known || cfrd_egress_guard_digest(cfg, digest) < 0 ||
	    sodium_memcmp(digest, r->guard, sizeof(digest)) == 0)
		return;
	snprintf(msg, sizeof(msg),
	         "the nftables guard table was made for other subscriber prefixes, pools or "
	         "devices than %s names: run cfrd --install-guard -c %s as root (before the "
	         "reload, as ExecReload does)",
	         r->path, r->path);
	log_warn("%s", msg);
	if (warnings != NULL)
		json_object_array_add(warnings, json_object_new_string(msg));
}

struct json_object *cfrd_reload_run(struct cfrd *d, uint64_t now_ms)
{
	struct cfrd_reload *r = d->reload;
	struct cfrd_config_error err;
	struct cfrd_config *cfg;
	struct cfr_reconfig *rc;
	struct json_object *reply = NULL, *changed, *warnings;
	const char *names[16], *key, *why;
	char keybuf[64], engine_why[160], list[256] = "";
	unsigned changes, n, i, draining;
	uint64_t epoch;
	bool ended, writer;
	int ret;

	if (r == NULL)
		return error_reply("reload is not available");
	writer = d->acct != NULL && d->acct->writer != NULL;
	/* sd_notify(3): a unit of Type=notify-reload waits for READY=1 again. */
	cfrd_notify("RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)cfrd_now_us());
	cfg = malloc(sizeof(*cfg));
	if (cfg == NULL) {
		reply = refused("%s: %s", r->path, strerror(ENOMEM));
		goto out;
	}
	ret = cfrd_config_load(r->path, cfg, &err);
	if (ret == -EACCES) {
		reply = refused("%s: %s (cfrd reads it as user %s: make it readable to that user, "
		                "e.g. root:%s mode 0640)",
		                r->path, err.msg, r->cfg.user, r->cfg.user);
		goto out;
	}
	if (ret < 0) {
		if (err.line > 0)
			reply = refused("%s:%d: %s", r->path, err.line, err.msg);
		else
			reply = refused("%s: %s", r->path, err.msg);
		goto out;
	}
	key = restart_key(&r->cfg, cfg, &why, keybuf, sizeof(keybuf));
	if (key != NULL) {
		reply = refused("%s: %s cannot change without a restart (%s)", r->path, key, why);
		goto out;
	}
	rc = cfr_reconfig_new(d->engine, &cfg->engine, engine_why, sizeof(engine_why));
	if (rc == NULL) {
		reply = refused("%s: %s", r->path, engine_why);
		goto out;
	}
	changes = cfr_reconfig_changes(rc);
	if (r->cfg.n_xdp_ports > 0 && (changes & (CFR_CHANGE_POOLS | CFR_CHANGE_SUBSCRIBERS))) {
		reply = refused("%s: pool and subscriber prefixes cannot change without a restart "
		                "while [xdp] ports are set (the fast path's prefix maps and egress "
		                "check are filled at start)",
		                r->path);
		cfr_reconfig_free(rc);
		goto out;
	}

	if (!(changes & CFR_CHANGES_ROTATE)) {
		cfrd_engine_lock(d);
	} else if (!cfrd_acct_lock_settled(d)) {
		reply = refused("%s: the records of the last epoch are still waiting to be sealed "
		                "(is accounting degraded? see cfrctl stats); try again",
		                r->path);
		cfr_reconfig_free(rc);
		goto out;
	}
	epoch = cfr_engine_stats(d->engine)->epoch;
	/*
	 * Each segment names the pools, ports, policies and epoch length its
	 * allocations derive from, as cfr-lookup regenerates them: records of
	 * the epoch this reload begins go to a segment naming the new ones.
	 */
	if ((changes & CFR_CHANGES_ROTATE) && writer &&
	    cfrd_acct_reconfigure(d->acct, &cfg->engine, epoch + 1) < 0) {
		cfrd_engine_unlock(d);
		reply = refused("%s: %d configuration changes still wait for their first record "
		                "to be sealed; try again after the next epoch",
		                r->path, CFR_RECW_CONFIGS);
		cfr_reconfig_free(rc);
		goto out;
	}
	cfr_engine_reconfigure(d->engine, rc, now_ms);
	if (d->fastpath)
		cfrd_fastpath_reconfigure(d->fastpath, &cfg->engine);
	d->anon_watch.percent = cfg->anon_warn_percent;
	d->anon_watch.k = cfg->engine.anon_k;
	ended = cfr_engine_stats(d->engine)->epoch != epoch;
	epoch = cfr_engine_stats(d->engine)->epoch;
	cfrd_engine_unlock(d);
	draining = cfr_reconfig_draining(rc);
	cfr_reconfig_free(rc);
	cfrd_log_set_level(cfg->log_level);

	reply = json_object_new_object();
	changed = json_object_new_array();
	warnings = json_object_new_array();
	if (reply == NULL || changed == NULL || warnings == NULL) {
		json_object_put(reply);
		json_object_put(changed);
		json_object_put(warnings);
		reply = changed = warnings = NULL;
	}
	n = changed_names(changes, &r->cfg, cfg, names, ARRAY_SIZE(names));
	for (i = 0; i < n; i++) {
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
		         names[i]);
		if (changed)
			json_object_array_add(changed, json_object_new_string(names[i]));
	}
	log_info("reloaded %s: %s%s; %u pool prefix%s draining", r->path,
	         n ? list : "nothing changed", ended ? "; privacy epoch ended" : "", draining,
	         draining == 1 ? "" : "es");
	if (reply != NULL) {
		guard_check(r, cfg, warnings);
		json_object_object_add(reply, "reloaded", json_object_new_string(r->path));
		json_object_object_add(reply, "changed", changed);
		json_object_object_add(reply, "epoch", json_object_new_uint64(epoch));
		json_object_object_add(reply, "epoch_ended", json_object_new_boolean(ended));
		json_object_object_add(reply, "pools_draining", json_object_new_uint64(draining));
		json_object_object_add(reply, "warnings", warnings);
	} else {
		guard_check(r, cfg, NULL);
	}
	r->cfg = *cfg;
out:
	cfrd_notify("READY=1");
	free(cfg);
	return reply;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

struct json_object *cfrd_reload_guard(struct cfrd *d, const char *hex)
{
	uint8_t digest[CFRD_GUARD_DIGEST_BYTES];
	struct json_object *obj;

	if (d->reload == NULL)
		return error_reply("reload is not available");
	if (strlen(hex) != 2 * sizeof(digest))
		return error_reply("guard: expected a digest of 32 hexadecimal digits");
	for (size_t i = 0; i < sizeof(digest); i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return error_reply("guard: expected a digest of 32 hexadecimal digits");
		digest[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(d->reload->guard, digest, sizeof(digest));
	d->reload->guard_known = true;
	log_info("guard table installed by cfrd --install-guard");
	obj = json_object_new_object();
	if (obj != NULL)
		json_object_object_add(obj, "guard", json_object_new_string(hex));
	return obj;
}

/* --install-guard ------------------------------------------------------------ */

/*
 * Ask the cfrd listening on <path> for <cmd>: its JSON reply, or NULL with
 * *<absent> set when nobody listens there (no cfrd running: not an error).
 */
static struct json_object *ask(const char *path, const char *cmd, bool *absent)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = ASK_TIMEOUT_S};
	static char buf[65536];
	size_t len = 0;
	int fd;

	*absent = false;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		*absent = errno == ENOENT || errno == ECONNREFUSED;
		if (!*absent)
			log_warn("cannot ask the cfrd on %s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) < 0 || send(fd, "\n", 1, MSG_NOSIGNAL) < 0) {
		log_warn("cannot ask the cfrd on %s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	for (;;) {
		ssize_t got = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (got <= 0)
			break;
		len += (size_t)got;
		if (len == sizeof(buf) - 1)
			break;
	}
	close(fd);
	buf[len] = '\0';
	return json_tokener_parse(buf);
}

/* The pool prefixes of a `pools` reply, appended to <out> (room for <max>). */
static unsigned live_pools(struct json_object *reply, struct cfr_prefix *out, unsigned max)
{
	static const char *const families[] = {"ipv4", "ipv6"};
	unsigned n = 0;

	for (size_t f = 0; f < ARRAY_SIZE(families); f++) {
		struct json_object *list, *prefix;

		if (!json_object_object_get_ex(reply, families[f], &list) ||
		    !json_object_is_type(list, json_type_array))
			continue;
		for (size_t i = 0; i < json_object_array_length(list) && n < max; i++) {
			struct json_object *item = json_object_array_get_idx(list, i);

			if (json_object_object_get_ex(item, "prefix", &prefix) &&
			    cfr_prefix_parse(json_object_get_string(prefix), &out[n]) == 0)
				n++;
		}
	}
	return n;
}

int cfrd_install_guard(const char *path, const struct cfrd_config *cfg)
{
	struct cfr_prefix live[2 * CFR_MAX_POOL_PREFIXES * 2];
	uint8_t digest[CFRD_GUARD_DIGEST_BYTES];
	char cmd[16 + 2 * CFRD_GUARD_DIGEST_BYTES];
	struct json_object *reply, *err;
	unsigned n_live = 0;
	bool absent;

	reply = ask(cfg->control, "pools", &absent);
	if (reply != NULL && json_object_is_type(reply, json_type_object) &&
	    !json_object_object_get_ex(reply, "error", &err))
		n_live = live_pools(reply, live, ARRAY_SIZE(live));
	else if (reply != NULL || !absent)
		log_warn("the cfrd on %s did not say which pools it uses: the table holds the "
		         "pools of %s only, and flows on any other drop",
		         cfg->control, path);
	json_object_put(reply);
	if (cfrd_egress_guard_install_more(cfg, live, n_live) < 0)
		return 1;
	log_info("guard table inet " CFRD_GUARD_TABLE " installed for %s%s", path,
	         n_live ? ", with the pools the running cfrd still uses" : "");
	if (absent)
		return 0;
	if (cfrd_egress_guard_digest(cfg, digest) < 0)
		return 1;
	memcpy(cmd, "guard ", 6);
	sodium_bin2hex(cmd + 6, sizeof(cmd) - 6, digest, sizeof(digest));
	reply = ask(cfg->control, cmd, &absent);
	if (reply == NULL || json_object_object_get_ex(reply, "error", &err))
		log_warn("the cfrd on %s was not told of the new table: its next reload may warn "
		         "about it",
		         cfg->control);
	json_object_put(reply);
	return 0;
}
