/*
 * The `stats` reply: engine counters, flow table occupancy and I/O errors as
 * one JSON object. Counts only, never an address: the control socket is
 * privacy-preserving by default like the logs.
 *
 * The engine lock is held for copies only (issue 13): the counters by
 * memcpy, the anonymity-set size of each alias in use into a buffer the
 * control thread keeps, the pool list. The JSON, the sort behind the
 * anonymity quantiles and every sum are done after the lock is released,
 * so a `cfrctl stats` or a scrape stalls the workers for the copy alone
 * (docs/performance.md, "Control plane stalls").
 *
 * Out of memory, json-c returns NULL and stores a NULL child as null; but
 * it asserts when adding to a NULL parent, so each container is checked.
 */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

#include "acct.h"
#include "log.h"
#include "reload.h"

#include "version.h"

static const char *const proto_names[CFR_PROTO__COUNT] = {
    [CFR_PROTO_TCP] = "tcp",
    [CFR_PROTO_UDP] = "udp",
    [CFR_PROTO_ICMP] = "icmp",
};

static const char *const family_names[CFR_FAMILY__COUNT] = {
    [CFR_FAMILY_V4] = "ipv4",
    [CFR_FAMILY_V6] = "ipv6",
};

static const char *const scrubber_names[CFR_SCRUB__COUNT] = {
    [CFR_SCRUB_TCP_TIMESTAMPS] = "tcp_timestamps",
    [CFR_SCRUB_IP_ID] = "ip_id",
    [CFR_SCRUB_TTL] = "ttl",
    [CFR_SCRUB_FLOW_LABEL] = "flow_label",
};

static void add_u64(struct json_object *obj, const char *key, uint64_t value)
{
	json_object_object_add(obj, key, json_object_new_uint64(value));
}

static struct json_object *by_dir(const uint64_t counts[2])
{
	struct json_object *obj = json_object_new_object();

	if (obj == NULL)
		return NULL;
	add_u64(obj, "out", counts[CFR_DIR_OUT]);
	add_u64(obj, "in", counts[CFR_DIR_IN]);
	return obj;
}

static struct json_object *packets_json(const struct cfr_stats *s)
{
	struct json_object *obj = json_object_new_object();

	if (obj == NULL)
		return NULL;
	json_object_object_add(obj, "rx", by_dir(s->rx));
	json_object_object_add(obj, "tx", by_dir(s->tx));
	return obj;
}

/* IP bytes, as read and as written back translated (a GSO packet's whole payload). */
static struct json_object *bytes_json(const struct cfr_stats *s)
{
	struct json_object *obj = json_object_new_object();

	if (obj == NULL)
		return NULL;
	json_object_object_add(obj, "rx", by_dir(s->rx_bytes));
	json_object_object_add(obj, "tx", by_dir(s->tx_bytes));
	return obj;
}

/* Every reason appears, zeros included, so scrapers see a fixed schema. */
static struct json_object *drops_json(const struct cfr_stats *s)
{
	struct json_object *obj = json_object_new_object();
	uint64_t total = 0;

	if (obj == NULL)
		return NULL;
	for (int r = CFR_DROP_NONE + 1; r < CFR_DROP__COUNT; r++)
		total += s->drops[r];
	add_u64(obj, "total", total);
	for (int r = CFR_DROP_NONE + 1; r < CFR_DROP__COUNT; r++)
		add_u64(obj, cfr_drop_name((enum cfr_drop)r), s->drops[r]);
	return obj;
}

static struct json_object *flows_json(const struct cfr_stats *s)
{
	struct json_object *obj = json_object_new_object();
	uint64_t active = 0;

	if (obj == NULL)
		return NULL;
	for (int f = 0; f < CFR_FAMILY__COUNT; f++) {
		for (int p = 0; p < CFR_PROTO__COUNT; p++)
			active += s->flows_active[f][p];
	}
	add_u64(obj, "active", active);
	add_u64(obj, "max", s->max_flows);
	add_u64(obj, "created", s->flows_created);
	add_u64(obj, "expired", s->flows_expired);
	add_u64(obj, "mappings_created", s->mappings_created);
	add_u64(obj, "hairpinned", s->hairpinned);
	for (int f = 0; f < CFR_FAMILY__COUNT; f++) {
		struct json_object *fam = json_object_new_object();

		if (fam == NULL)
			return obj;
		for (int p = 0; p < CFR_PROTO__COUNT; p++)
			add_u64(fam, proto_names[p], s->flows_active[f][p]);
		json_object_object_add(obj, family_names[f], fam);
	}
	return obj;
}

static struct json_object *privacy_json(const struct cfr_stats *s, uint64_t now_ms,
                                        uint32_t epoch_s)
{
	struct json_object *obj = json_object_new_object();
	struct json_object *scrubbed = json_object_new_object();

	if (obj == NULL || scrubbed == NULL) {
		json_object_put(obj);
		json_object_put(scrubbed);
		return NULL;
	}
	add_u64(obj, "epoch", s->epoch);
	add_u64(obj, "epochs_rotated", s->epochs_rotated);
	/* An epoch that does not end keeps its seeds: alert when the age passes the length. */
	add_u64(obj, "epoch_age_s",
	        now_ms > s->epoch_start_ms && s->epoch ? (now_ms - s->epoch_start_ms) / 1000 : 0);
	add_u64(obj, "epoch_length_s", epoch_s);
	add_u64(obj, "new_flows_below_k", s->new_flows_below_k);
	for (int i = 0; i < CFR_SCRUB__COUNT; i++)
		add_u64(scrubbed, scrubber_names[i], s->scrubbed[i]);
	json_object_object_add(obj, "scrubbed", scrubbed);
	return obj;
}

/*
 * Distinct subscribers per alias right now: the number that says how much
 * an alias hides. The set sizes were copied under the lock; the quantiles
 * sort that copy here, after it.
 */
static struct json_object *anonymity_json(struct cfrd_stats_snapshot *snap)
{
	struct json_object *obj = json_object_new_object();
	struct cfr_anon_stats a;

	if (obj == NULL)
		return NULL;
	cfr_anon_figures(&snap->anon, &a);
	for (int f = 0; f < CFR_FAMILY__COUNT; f++) {
		struct json_object *fam = json_object_new_object();
		struct json_object *hist = json_object_new_array_ext(CFR_ANON_BUCKETS);

		if (fam == NULL || hist == NULL) {
			json_object_put(fam);
			json_object_put(hist);
			return obj;
		}
		add_u64(fam, "aliases_in_use", a.aliases_in_use[f]);
		add_u64(fam, "min", a.min[f]);
		add_u64(fam, "p5", a.p5[f]);
		add_u64(fam, "median", a.median[f]);
		add_u64(fam, "max", a.max[f]);
		for (int b = 0; b < CFR_ANON_BUCKETS; b++)
			json_object_array_add(hist, json_object_new_uint64(a.histogram[f][b]));
		json_object_object_add(fam, "histogram", hist);
		/* Where new flows landed: bucket i counts sets of [2^i, 2^(i+1)) subscribers. */
		hist = json_object_new_array_ext(CFR_ANON_BUCKETS);
		for (int b = 0; hist != NULL && b < CFR_ANON_BUCKETS; b++)
			json_object_array_add(
			    hist, json_object_new_uint64(snap->engine.new_flow_anon_hist[f][b]));
		json_object_object_add(fam, "new_flows_histogram", hist);
		json_object_object_add(obj, family_names[f], fam);
	}
	return obj;
}

/*
 * How full the pools are, from the copied pool list: prefixes by state,
 * and for IPv4 the addresses and alias ports new flows can draw from
 * (ports per protocol; an IPv6 flow draws a fresh address and has no
 * port space to run out of). With aliases_in_use and the flow counts,
 * occupancy and port pressure; nothing names an alias.
 */
static struct json_object *pools_json(const struct cfrd_stats_snapshot *snap,
                                      const struct cfr_engine_config *cfg)
{
	struct json_object *obj = json_object_new_object();
	uint64_t active[CFR_FAMILY__COUNT] = {0}, draining[CFR_FAMILY__COUNT] = {0};
	uint64_t addresses = 0, ports_per_alias = 0;

	if (obj == NULL)
		return NULL;
	for (unsigned i = 0; i < snap->n_pools; i++) {
		const struct cfr_pool_info *p = &snap->pools[i];

		if (p->draining) {
			draining[p->prefix.family]++;
			continue;
		}
		active[p->prefix.family]++;
		if (p->prefix.family == CFR_FAMILY_V4)
			addresses += 1ull << (32 - p->prefix.len);
	}
	if (cfg != NULL && cfg->port_max >= cfg->port_min)
		ports_per_alias = (uint64_t)cfg->port_max - cfg->port_min + 1;
	for (int f = 0; f < CFR_FAMILY__COUNT; f++) {
		struct json_object *fam = json_object_new_object();

		if (fam == NULL)
			return obj;
		add_u64(fam, "prefixes", active[f]);
		add_u64(fam, "prefixes_draining", draining[f]);
		if (f == CFR_FAMILY_V4) {
			add_u64(fam, "addresses", addresses);
			add_u64(fam, "ports", addresses * ports_per_alias);
		}
		json_object_object_add(obj, family_names[f], fam);
	}
	return obj;
}

/* The AF_XDP fast path: how much of the traffic took it, and why the rest did not. */
static struct json_object *xdp_json(const struct cfrd_xdp *x)
{
	struct json_object *o = json_object_new_object();
	struct cfrd_xdp_stats st;

	cfrd_xdp_stats(x, &st);
	add_u64(o, "rx", st.rx);
	add_u64(o, "tx", st.tx);
	add_u64(o, "tx_bytes", st.tx_bytes);
	add_u64(o, "to_tun", st.to_tun);
	add_u64(o, "tx_full", st.tx_full);
	add_u64(o, "dropped", st.dropped);
	add_u64(o, "neigh_misses", st.neigh_misses);
	add_u64(o, "guard_drops", st.guard_drops);
	return o;
}

/* The TC fast path: what it carried, and what it left to cfrd and why. */
static struct json_object *fastpath_json(const struct cfrd_fastpath_stats *st)
{
	struct json_object *o = json_object_new_object();

	add_u64(o, "interfaces", st->interfaces);
	add_u64(o, "flows", st->flows);
	json_object_object_add(o, "packets", by_dir(st->packets));
	json_object_object_add(o, "bytes", by_dir(st->bytes));
	add_u64(o, "passed_tcp_flags", st->passed_tcp_flags);
	add_u64(o, "passed_ttl", st->passed_ttl);
	add_u64(o, "passed_options", st->passed_options);
	add_u64(o, "passed_line", st->passed_line);
	add_u64(o, "passed_route", st->passed_route);
	add_u64(o, "dropped", st->dropped);
	return o;
}

/* Packets the fast path carried count as translated, in both directions' totals. */
static void add_fastpath(struct cfr_stats *s, const struct cfrd_fastpath_stats *st)
{
	for (int dir = 0; dir < 2; dir++) {
		s->rx[dir] += st->packets[dir];
		s->tx[dir] += st->packets[dir];
		s->rx_bytes[dir] += st->bytes[dir];
		s->tx_bytes[dir] += st->bytes[dir];
	}
}

void cfrd_stats_snapshot(const struct cfrd *d, struct cfrd_stats_snapshot *snap)
{
	memcpy(&snap->engine, cfr_engine_stats(d->engine), sizeof(snap->engine));
	snap->memory = cfr_engine_memory(d->engine);
	cfr_engine_anon_copy(d->engine, &snap->anon);
	snap->n_pools = cfr_engine_pools(d->engine, snap->pools, CFRD_STATS_POOLS);
	if (snap->n_pools > CFRD_STATS_POOLS)
		snap->n_pools = CFRD_STATS_POOLS;
}

struct json_object *cfrd_stats_build(const struct cfrd *d, struct cfrd_stats_snapshot *snap,
                                     uint64_t now_ms)
{
	const struct cfr_stats *s = &snap->engine;
	const struct cfr_engine_config *cfg = d->reload ? &d->reload->cfg.engine : NULL;
	struct json_object *obj = json_object_new_object();
	struct json_object *io, *by_worker, *xdp_by_worker = NULL;
	uint64_t read_errors = 0, write_errors = 0, offload_drops = 0, csum_completed = 0;
	struct cfrd_fastpath_stats fast;

	if (obj == NULL)
		return NULL;
	if (d->fastpath) {
		cfrd_fastpath_stats(d->fastpath, &fast);
		add_fastpath(&snap->engine, &fast);
	}
	json_object_object_add(obj, "version", json_object_new_string(CFR_VERSION));
	add_u64(obj, "uptime_s", (now_ms - d->start_ms) / 1000);
	json_object_object_add(obj, "packets", packets_json(s));
	json_object_object_add(obj, "bytes", bytes_json(s));
	json_object_object_add(obj, "drops", drops_json(s));
	json_object_object_add(obj, "flows", flows_json(s));
	add_u64(obj, "fragments_tracked", s->frags_tracked);
	add_u64(obj, "subscribers_reclaimed", s->subscribers_reclaimed);
	add_u64(obj, "subscribers_sealed_early", s->subscribers_sealed_early);
	add_u64(obj, "memory_bytes", snap->memory);
	json_object_object_add(obj, "privacy", privacy_json(s, now_ms, cfg ? cfg->epoch_s : 0));
	json_object_object_add(obj, "accounting", cfrd_acct_json(d->acct, s, now_ms, d->start_ms));
	json_object_object_add(obj, "anonymity", anonymity_json(snap));
	json_object_object_add(obj, "pools", pools_json(snap, cfg));
	io = json_object_new_object();
	by_worker = json_object_new_array();
	if (io == NULL || by_worker == NULL) {
		json_object_put(io);
		json_object_put(by_worker);
		return obj;
	}
	if (d->xdp)
		xdp_by_worker = json_object_new_array();
	/*
	 * One total over every queue of the main tun and of every line device:
	 * the workers' own counters, atomics that need no engine lock.
	 */
	for (unsigned k = 0; k < d->n_workers; k++) {
		uint64_t packets = 0;

		for (unsigned i = 0; i < d->n_io; i++) {
			const struct cfr_io *q = &d->workers[k].io[i];

			packets += q->packets_read;
			read_errors += q->read_errors;
			write_errors += q->write_errors;
			offload_drops += q->offload_drops;
			csum_completed += q->checksums_completed;
		}
		json_object_array_add(by_worker, json_object_new_uint64(packets));
		/* What it took from the fast path, which no TUN queue sees. */
		if (xdp_by_worker && d->workers[k].xdp)
			json_object_array_add(
			    xdp_by_worker,
			    json_object_new_uint64(cfrd_xdp_worker_received(d->workers[k].xdp)));
	}
	add_u64(io, "read_errors", read_errors);
	add_u64(io, "write_errors", write_errors);
	if (d->n_workers > 0)
		json_object_object_add(io, "backend",
		                       json_object_new_string(d->workers[0].io[0].backend->name));
	add_u64(io, "workers", d->n_workers);
	/* How the kernel spread the load over the queues: packets read by each worker. */
	json_object_object_add(io, "packets_by_worker", by_worker);
	add_u64(io, "offload_drops", offload_drops);
	add_u64(io, "checksums_completed", csum_completed);
	if (d->xdp) {
		struct json_object *x = xdp_json(d->xdp);

		if (x != NULL)
			json_object_object_add(x, "rx_by_worker", xdp_by_worker);
		else
			json_object_put(xdp_by_worker);
		json_object_object_add(io, "xdp", x);
	}
	if (d->fastpath)
		json_object_object_add(io, "fastpath", fastpath_json(&fast));
	json_object_object_add(obj, "io", io);
	return obj;
}

/* Make room for <need> set sizes, off the lock; false if there is none to be had. */
static bool anon_room(struct cfr_anon_copy *c, uint32_t need)
{
	uint32_t cap = need + need / 4 + 64; /* headroom: the pool fills between two looks */
	uint32_t *sizes;

	if (need <= c->cap)
		return true;
	sizes = realloc(c->sizes, (size_t)cap * sizeof(*sizes));
	if (sizes == NULL)
		return false;
	c->sizes = sizes;
	c->cap = cap;
	return true;
}

struct json_object *cfrd_stats_json(struct cfrd *d, uint64_t now_ms)
{
	/* The control thread's, kept from one request to the next. */
	static struct cfrd_stats_snapshot snap;
	uint32_t need = 0;

	/*
	 * The buffer was sized after the last look; a pool grown by a reload
	 * since then makes it grow here, off the lock, and look again.
	 */
	for (int tries = 0;; tries++) {
		cfrd_engine_lock(d);
		need = cfr_engine_anon_capacity(d->engine);
		if (need <= snap.anon.cap || tries >= 2) {
			cfrd_stats_snapshot(d, &snap);
			cfrd_engine_unlock(d);
			break;
		}
		cfrd_engine_unlock(d);
		if (!anon_room(&snap.anon, need))
			tries = 2;
	}
	if (snap.anon.truncated)
		log_warn("stats: no memory to copy the %u aliases' set sizes: anonymity figures "
		         "of the first %u only",
		         need, snap.anon.cap);
	return cfrd_stats_build(d, &snap, now_ms);
}

#define ANON_WATCH_INTERVAL_MS 60000
#define ANON_WATCH_MIN_FLOWS   100 /* fewer new flows than this say little */

void cfrd_anon_watch(struct cfrd *d, uint64_t now_ms)
{
	struct cfrd_anon_watch *w = &d->anon_watch;
	const struct cfr_stats *s = cfr_engine_stats(d->engine);
	uint64_t created = s->flows_created - w->created, below = s->new_flows_below_k - w->below;

	if (w->percent == 0 || now_ms - w->at_ms < ANON_WATCH_INTERVAL_MS)
		return;
	if (created >= ANON_WATCH_MIN_FLOWS && below * 100 > created * w->percent)
		log_warn("pool too quiet to hide subscribers: %llu of the last minute's %llu new "
		         "flows (%llu%%) went to aliases shared by fewer than %u subscribers "
		         "(anonymity-k); a smaller pool or more subscribers per pool would help",
		         (unsigned long long)below, (unsigned long long)created,
		         (unsigned long long)(below * 100 / created), w->k);
	w->at_ms = now_ms;
	w->created = s->flows_created;
	w->below = s->new_flows_below_k;
}
