/*
 * cfrd's `stats` JSON as Prometheus text. The JSON is the one source: cfrctl
 * prints it, this renders it, so the two never disagree. Names follow the
 * Prometheus conventions: the cfr_ prefix, base units, _total on counters,
 * _info for facts.
 *
 * Drop reasons and scrubbers are read from the JSON's keys, which stats.c
 * writes from the engine's X-macro lists: a reason added to
 * CFR_DROP_REASONS is a new reason label here with no change. Every other
 * field is named below; a numeric field that none of them takes is counted
 * in cfr_exporter_unmapped_fields, which the lab test requires to be 0, so
 * a counter added to stats.c without its metric fails CI instead of being
 * silently missing.
 *
 * Never a label or value that names a subscriber, an alias or a remote: the
 * JSON holds counts only, and the strings taken from it are checked to be
 * lowercase names before they become label values.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exporter.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* More numeric leaves than the stats reply has (about 150 today). */
#define MAX_TAKEN 1024

struct ctx {
	struct cfrx_buf *out;
	struct json_object *root;
	const struct json_object *taken[MAX_TAKEN];
	unsigned n_taken;
};

void cfrx_buf_free(struct cfrx_buf *b)
{
	free(b->s);
	*b = (struct cfrx_buf){0};
}

static void put(struct cfrx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct cfrx_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 16384;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (s == NULL) {
			b->oom = true;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
}

static void take(struct ctx *c, const struct json_object *o)
{
	if (o != NULL && c->n_taken < MAX_TAKEN)
		c->taken[c->n_taken++] = o;
}

/* The member at the dotted <path> ("flows.ipv4.tcp") of <o>, or NULL. */
static struct json_object *get(struct json_object *o, const char *path)
{
	char key[64];

	while (o != NULL && *path != '\0') {
		size_t len = strcspn(path, ".");

		if (len >= sizeof(key) || !json_object_is_type(o, json_type_object))
			return NULL;
		memcpy(key, path, len);
		key[len] = '\0';
		if (!json_object_object_get_ex(o, key, &o))
			return NULL;
		path += len + (path[len] == '.');
	}
	return o;
}

/* Counts, and flags as 0 or 1. */
static bool is_number(const struct json_object *o)
{
	return json_object_is_type(o, json_type_int) || json_object_is_type(o, json_type_double) ||
	       json_object_is_type(o, json_type_boolean);
}

/* A label value taken from the JSON: a lowercase name, nothing else (no address fits). */
static bool is_name(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
			return false;
	return n > 0 && n < 64;
}

static void family(struct ctx *c, const char *name, const char *type, const char *help)
{
	put(c->out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample of the number at <path> under <base>; nothing if it is absent. */
static void sample(struct ctx *c, struct json_object *base, const char *path, const char *name,
                   const char *labels)
{
	struct json_object *o = get(base, path);

	if (o == NULL || !is_number(o))
		return;
	take(c, o);
	put(c->out, "%s%s%s%s %" PRIu64 "\n", name, labels ? "{" : "", labels ? labels : "",
	    labels ? "}" : "", json_object_get_uint64(o));
}

/* A metric without labels: HELP, TYPE and its sample, only if the JSON has the field. */
struct plain {
	const char *path, *name, *type, *help;
};

static const struct plain plain_metrics[] = {
    {"uptime_s", "cfr_uptime_seconds", "gauge", "Seconds since cfrd started forwarding."},
    {"flows.max", "cfr_flows_max", "gauge", "Size of the flow table ([limits] max-flows)."},
    {"flows.created", "cfr_flows_created_total", "counter", "Flows created."},
    {"flows.expired", "cfr_flows_expired_total", "counter", "Flows expired or closed."},
    {"flows.mappings_created", "cfr_mappings_created_total", "counter",
     "Endpoint-independent and address-dependent mappings created (traffic classes)."},
    {"flows.hairpinned", "cfr_hairpinned_packets_total", "counter",
     "Packets from a subscriber to another's alias, translated both ways in the gateway."},
    {"fragments_tracked", "cfr_fragments_tracked", "gauge", "Fragmented datagrams being tracked."},
    {"subscribers_reclaimed", "cfr_subscribers_reclaimed_total", "counter",
     "Idle subscriber entries reused for new subscribers."},
    {"subscribers_sealed_early", "cfr_subscribers_sealed_early_total", "counter",
     "Idle subscribers whose epoch record was sealed early to make room."},
    {"memory_bytes", "cfr_engine_memory_bytes", "gauge",
     "Memory the engine holds (allocated at start)."},
    {"privacy.epoch", "cfr_epoch", "gauge", "Number of the current privacy epoch."},
    {"privacy.epochs_rotated", "cfr_epoch_rotations_total", "counter",
     "Privacy epochs ended (sticky-policy keys wiped, records sealed)."},
    {"privacy.epoch_age_s", "cfr_epoch_age_seconds", "gauge",
     "Seconds since the current privacy epoch began."},
    {"privacy.epoch_length_s", "cfr_epoch_length_seconds", "gauge",
     "Configured length of a privacy epoch ([privacy] epoch)."},
    {"privacy.new_flows_below_k", "cfr_new_flows_below_k_total", "counter",
     "New flows placed on an alias shared by fewer than anonymity-k subscribers."},
    {"io.read_errors", "cfr_io_read_errors_total", "counter", "Failed reads from a device."},
    {"io.write_errors", "cfr_io_write_errors_total", "counter", "Failed writes to a device."},
    {"io.workers", "cfr_workers", "gauge", "Packet worker threads."},
    {"io.offload_drops", "cfr_io_offload_dropped_packets_total", "counter",
     "Packets dropped because their offload metadata was unusable."},
    {"io.checksums_completed", "cfr_io_checksums_completed_total", "counter",
     "Partial checksums cfrd completed before sending."},
    /* Sealed accountability records (docs/accountability.md). */
    {"accounting.enabled", "cfr_accounting_enabled", "gauge",
     "1 if cfrd seals accountability records ([accounting])."},
    {"accounting.degraded", "cfr_accounting_degraded", "gauge",
     "1 while nothing can be sealed (cfrd's log says why)."},
    {"accounting.faults", "cfr_accounting_faults_total", "counter",
     "Times the records writer became degraded."},
    {"accounting.degraded_s", "cfr_accounting_degraded_seconds_total", "counter",
     "Time the records writer spent degraded, the current spell included."},
    {"accounting.records_sealed", "cfr_records_sealed_total", "counter",
     "Epoch records sealed and written."},
    {"accounting.records_lost", "cfr_records_lost_total", "counter",
     "Epoch records wiped or dropped unwritten."},
    {"accounting.epochs_sealed", "cfr_records_epochs_sealed_total", "counter",
     "Epochs whose records were all sealed."},
    {"accounting.journal_items", "cfr_records_journal_items_total", "counter",
     "Write-ahead journal items written."},
    {"accounting.checkpoints", "cfr_records_checkpoints_total", "counter",
     "Journal checkpoints written."},
    {"accounting.bytes_written", "cfr_records_written_bytes_total", "counter",
     "Bytes written to record segments."},
    {"accounting.write_errors", "cfr_records_write_errors_total", "counter",
     "Failed writes or syncs of record segments."},
    {"accounting.segments_opened", "cfr_records_segments_opened_total", "counter",
     "Record segments started."},
    {"accounting.segments_deleted", "cfr_records_segments_deleted_total", "counter",
     "Record segments deleted by retention."},
    {"accounting.write_lag_s", "cfr_records_write_lag_seconds", "gauge",
     "Seconds since a write to the records last succeeded (0 without [accounting])."},
    /* The TC fast path, present while it runs ([fastpath]). */
    {"io.fastpath.interfaces", "cfr_fastpath_interfaces", "gauge",
     "Interfaces the in-kernel fast path is attached to."},
    {"io.fastpath.flows", "cfr_fastpath_flows", "gauge", "Flows the in-kernel fast path carries."},
    {"io.fastpath.passed_tcp_flags", "cfr_fastpath_passed_tcp_flags_total", "counter",
     "Fast-path packets left to cfrd: TCP SYN, FIN or RST."},
    {"io.fastpath.passed_ttl", "cfr_fastpath_passed_ttl_total", "counter",
     "Fast-path packets left to cfrd: TTL or hop limit would expire at the gateway."},
    {"io.fastpath.passed_options", "cfr_fastpath_passed_options_total", "counter",
     "Fast-path packets left to cfrd: IP options, fragments, unusual TCP options."},
    {"io.fastpath.passed_line", "cfr_fastpath_passed_line_total", "counter",
     "Fast-path packets left to cfrd: not on their subscriber's line."},
    {"io.fastpath.passed_route", "cfr_fastpath_passed_route_total", "counter",
     "Fast-path packets left to cfrd: no route, unresolved neighbour or too big."},
    {"io.fastpath.dropped", "cfr_fastpath_dropped_packets_total", "counter",
     "Fast-path packets dropped: a rewrite the kernel refused half way."},
    /* The AF_XDP fast path, present only with [xdp] ports. */
    {"io.xdp.rx", "cfr_xdp_received_packets_total", "counter", "Packets the fast path received."},
    {"io.xdp.tx", "cfr_xdp_sent_packets_total", "counter",
     "Packets the fast path sent straight out of another port."},
    {"io.xdp.tx_bytes", "cfr_xdp_sent_bytes_total", "counter",
     "IP bytes the fast path sent straight out of another port."},
    {"io.xdp.to_tun", "cfr_xdp_to_tun_packets_total", "counter",
     "Packets the fast path handed to the TUN path."},
    {"io.xdp.neigh_misses", "cfr_xdp_neighbour_misses_total", "counter",
     "Fast-path packets sent through TUN for want of a learned neighbour."},
    {"io.xdp.tx_full", "cfr_xdp_tx_ring_full_total", "counter",
     "Times a fast-path transmit ring was full."},
    {"io.xdp.dropped", "cfr_xdp_dropped_packets_total", "counter",
     "Packets the fast path dropped."},
    {"io.xdp.guard_drops", "cfr_xdp_guard_dropped_packets_total", "counter",
     "Packets the fast path's source guard dropped."},
};

static const char *const directions[][2] = {{"out", "outbound"}, {"in", "inbound"}};
static const char *const families[] = {"ipv4", "ipv6"};

static void packets(struct ctx *c)
{
	char path[32], labels[64];
	static const char *const what[][3] = {
	    {"packets.rx", "cfr_packets_received_total", "Packets cfrd read, by direction."},
	    {"packets.tx", "cfr_packets_sent_total",
	     "Packets cfrd wrote back translated, by direction."},
	    {"bytes.rx", "cfr_received_bytes_total",
	     "IP bytes cfrd read, by direction (TUN and fast path)."},
	    {"bytes.tx", "cfr_sent_bytes_total",
	     "IP bytes cfrd wrote back translated, by direction (TUN and fast path)."},
	    /* The TC fast path's share of the above, present while it runs. */
	    {"io.fastpath.packets", "cfr_fastpath_packets_total",
	     "Packets the in-kernel fast path translated, by direction."},
	    {"io.fastpath.bytes", "cfr_fastpath_bytes_total",
	     "IP bytes the in-kernel fast path translated, by direction."},
	};

	for (size_t w = 0; w < ARRAY_SIZE(what); w++) {
		if (get(c->root, what[w][0]) == NULL)
			continue;
		family(c, what[w][1], "counter", what[w][2]);
		for (size_t d = 0; d < ARRAY_SIZE(directions); d++) {
			snprintf(path, sizeof(path), "%s.%s", what[w][0], directions[d][0]);
			snprintf(labels, sizeof(labels), "direction=\"%s\"", directions[d][1]);
			sample(c, c->root, path, what[w][1], labels);
		}
	}
}

/* Every key of <obj> but "total" as one label value of <name>. */
static void by_key(struct ctx *c, const char *obj_path, const char *name, const char *label,
                   const char *help)
{
	struct json_object *obj = get(c->root, obj_path);
	char labels[128];

	if (obj == NULL || !json_object_is_type(obj, json_type_object))
		return;
	family(c, name, "counter", help);
	json_object_object_foreach(obj, key, val)
	{
		if (strcmp(key, "total") == 0) {
			take(c, val); /* the sum of the others: sum() in PromQL */
			continue;
		}
		if (!is_name(key) || !is_number(val))
			continue;
		snprintf(labels, sizeof(labels), "%s=\"%s\"", label, key);
		take(c, val);
		put(c->out, "%s{%s} %" PRIu64 "\n", name, labels, json_object_get_uint64(val));
	}
}

static void flows(struct ctx *c)
{
	static const char *const protos[] = {"tcp", "udp", "icmp"};
	char path[32], labels[64];

	if (get(c->root, "flows") == NULL)
		return;
	take(c, get(c->root, "flows.active")); /* the sum of the series below */
	family(c, "cfr_flows", "gauge", "Active flows by family and protocol.");
	for (size_t f = 0; f < ARRAY_SIZE(families); f++)
		for (size_t p = 0; p < ARRAY_SIZE(protos); p++) {
			snprintf(path, sizeof(path), "flows.%s.%s", families[f], protos[p]);
			snprintf(labels, sizeof(labels), "family=\"%s\",protocol=\"%s\"",
			         families[f], protos[p]);
			sample(c, c->root, path, "cfr_flows", labels);
		}
}

/* Bucket b of the engine's anonymity histograms holds sets of [2^b, 2^(b+1)) subscribers. */
static void anonymity(struct ctx *c)
{
	static const struct {
		const char *key, *q;
	} quantiles[] = {{"min", "0"}, {"p5", "0.05"}, {"median", "0.5"}, {"max", "1"}};
	char labels[96];

	if (get(c->root, "anonymity") == NULL)
		return;
	family(c, "cfr_aliases_in_use", "gauge", "Aliases with live flows, by family.");
	for (size_t f = 0; f < ARRAY_SIZE(families); f++) {
		snprintf(labels, sizeof(labels), "family=\"%s\"", families[f]);
		sample(c, get(get(c->root, "anonymity"), families[f]), "aliases_in_use",
		       "cfr_aliases_in_use", labels);
	}
	family(c, "cfr_anonymity_set_size", "summary",
	       "Distinct subscribers behind each alias in use, as quantiles over the aliases "
	       "(count: aliases in use).");
	for (size_t f = 0; f < ARRAY_SIZE(families); f++) {
		struct json_object *fam = get(get(c->root, "anonymity"), families[f]);

		for (size_t q = 0; q < ARRAY_SIZE(quantiles); q++) {
			snprintf(labels, sizeof(labels), "family=\"%s\",quantile=\"%s\"",
			         families[f], quantiles[q].q);
			sample(c, fam, quantiles[q].key, "cfr_anonymity_set_size", labels);
		}
		snprintf(labels, sizeof(labels), "family=\"%s\"", families[f]);
		/* Not take()n twice: the count is aliases_in_use, already read above. */
		if (get(fam, "aliases_in_use") != NULL)
			put(c->out, "cfr_anonymity_set_size_count{%s} %" PRIu64 "\n", labels,
			    json_object_get_uint64(get(fam, "aliases_in_use")));
	}
	family(c, "cfr_aliases_by_anonymity_set", "gauge",
	       "Aliases in use by how many distinct subscribers share each (set_size: a "
	       "power-of-two range).");
	for (size_t f = 0; f < ARRAY_SIZE(families); f++) {
		struct json_object *h =
		    get(get(get(c->root, "anonymity"), families[f]), "histogram");
		size_t n =
		    h && json_object_is_type(h, json_type_array) ? json_object_array_length(h) : 0;

		for (size_t b = 0; b < n && b < 32; b++) {
			struct json_object *v = json_object_array_get_idx(h, b);
			unsigned long lo = 1ul << b, hi = (1ul << (b + 1)) - 1;

			if (!is_number(v))
				continue;
			take(c, v);
			if (b + 1 == n)
				snprintf(labels, sizeof(labels), "family=\"%s\",set_size=\"%lu+\"",
				         families[f], lo);
			else if (lo == hi)
				snprintf(labels, sizeof(labels), "family=\"%s\",set_size=\"%lu\"",
				         families[f], lo);
			else
				snprintf(labels, sizeof(labels),
				         "family=\"%s\",set_size=\"%lu-%lu\"", families[f], lo, hi);
			put(c->out, "cfr_aliases_by_anonymity_set{%s} %" PRIu64 "\n", labels,
			    json_object_get_uint64(v));
		}
	}
	/* New flows, each an observation of its alias's set size: a real histogram. */
	family(c, "cfr_new_flow_anonymity_set", "histogram",
	       "New flows by the number of distinct subscribers sharing the alias they were "
	       "placed on.");
	for (size_t f = 0; f < ARRAY_SIZE(families); f++) {
		struct json_object *h =
		    get(get(get(c->root, "anonymity"), families[f]), "new_flows_histogram");
		size_t n =
		    h && json_object_is_type(h, json_type_array) ? json_object_array_length(h) : 0;
		uint64_t cum = 0;

		for (size_t b = 0; b < n && b < 32; b++) {
			struct json_object *v = json_object_array_get_idx(h, b);

			if (!is_number(v))
				continue;
			take(c, v);
			cum += json_object_get_uint64(v);
			if (b + 1 < n)
				put(c->out,
				    "cfr_new_flow_anonymity_set_bucket{family=\"%s\",le=\"%lu\"} "
				    "%" PRIu64 "\n",
				    families[f], (1ul << (b + 1)) - 1, cum);
		}
		if (n == 0)
			continue;
		put(c->out,
		    "cfr_new_flow_anonymity_set_bucket{family=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
		    families[f], cum);
		put(c->out, "cfr_new_flow_anonymity_set_count{family=\"%s\"} %" PRIu64 "\n",
		    families[f], cum);
	}
}

/*
 * Pool occupancy and port space, for an operator's ratios: aliases in use
 * over addresses, flows over ports. Counts per family, never a prefix.
 */
static void pools(struct ctx *c)
{
	static const char *const states[][2] = {{"prefixes", "active"},
	                                        {"prefixes_draining", "draining"}};
	char path[48], labels[64];

	if (get(c->root, "pools") == NULL)
		return;
	family(c, "cfr_pool_prefixes", "gauge",
	       "Pool prefixes by family and state (draining: removed by a reload, in use until "
	       "their last flow ends).");
	for (size_t f = 0; f < ARRAY_SIZE(families); f++)
		for (size_t k = 0; k < ARRAY_SIZE(states); k++) {
			snprintf(path, sizeof(path), "pools.%s.%s", families[f], states[k][0]);
			snprintf(labels, sizeof(labels), "family=\"%s\",state=\"%s\"", families[f],
			         states[k][1]);
			sample(c, c->root, path, "cfr_pool_prefixes", labels);
		}
	if (get(c->root, "pools.ipv4.addresses") != NULL) {
		family(c, "cfr_pool_addresses", "gauge",
		       "Alias addresses new flows draw from (IPv4; compare cfr_aliases_in_use).");
		sample(c, c->root, "pools.ipv4.addresses", "cfr_pool_addresses", "family=\"ipv4\"");
	}
	if (get(c->root, "pools.ipv4.ports") != NULL) {
		family(c, "cfr_pool_ports", "gauge",
		       "Alias source ports per protocol: addresses times the port range (IPv4; "
		       "compare cfr_flows).");
		sample(c, c->root, "pools.ipv4.ports", "cfr_pool_ports", "family=\"ipv4\"");
	}
}

/* Each worker's load by path: its TUN reads, and with [xdp] its fast-path frames. */
static void workers(struct ctx *c)
{
	static const char *const paths[][2] = {{"io.packets_by_worker", "tun"},
	                                       {"io.xdp.rx_by_worker", "xdp"}};
	bool named = false;

	for (size_t p = 0; p < ARRAY_SIZE(paths); p++) {
		struct json_object *a = get(c->root, paths[p][0]);
		size_t n =
		    a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;

		if (n > 0 && !named) {
			family(
			    c, "cfr_worker_packets_received_total", "counter",
			    "Packets each worker read, by path (how the kernel spread the load).");
			named = true;
		}
		for (size_t i = 0; i < n; i++) {
			struct json_object *v = json_object_array_get_idx(a, i);

			if (!is_number(v))
				continue;
			take(c, v);
			put(c->out,
			    "cfr_worker_packets_received_total{worker=\"%zu\",path=\"%s\"} %" PRIu64
			    "\n",
			    i, paths[p][1], json_object_get_uint64(v));
		}
	}
}

/* Facts as _info gauges of value 1; the strings are checked before they become labels. */
static void infos(struct ctx *c)
{
	struct json_object *v = get(c->root, "version"), *b = get(c->root, "io.backend");
	const char *version =
	    v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
	char clean[64];
	size_t k = 0;

	/* A version is digits, letters, dots, dashes, plus and tilde: nothing to escape. */
	for (size_t i = 0; version[i] != '\0' && k + 1 < sizeof(clean); i++) {
		char ch = version[i];

		if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= 'A' && ch <= 'Z') || ch == '.' || ch == '-' || ch == '+' || ch == '~' ||
		    ch == '_')
			clean[k++] = ch;
	}
	clean[k] = '\0';
	family(c, "cfr_build_info", "gauge", "cfrd's version, as a label; always 1.");
	put(c->out, "cfr_build_info{version=\"%s\"} 1\n", clean);
	if (b != NULL && json_object_is_type(b, json_type_string) &&
	    is_name(json_object_get_string(b))) {
		family(c, "cfr_io_info", "gauge",
		       "The packet I/O backend in use, as a label; always 1.");
		put(c->out, "cfr_io_info{backend=\"%s\"} 1\n", json_object_get_string(b));
	}
}

static bool was_taken(const struct ctx *c, const struct json_object *o)
{
	for (unsigned i = 0; i < c->n_taken; i++)
		if (c->taken[i] == o)
			return true;
	return false;
}

static unsigned count_unmapped(const struct ctx *c, struct json_object *o)
{
	unsigned n = 0;

	if (is_number(o))
		return was_taken(c, o) ? 0 : 1;
	if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			n += count_unmapped(c, json_object_array_get_idx(o, i));
	} else if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, key, val)
		{
			(void)key;
			n += count_unmapped(c, val);
		}
	}
	return n;
}

unsigned cfrx_render(struct json_object *stats, const struct cfrx_self *self, struct cfrx_buf *out)
{
	struct ctx *c = calloc(1, sizeof(*c));
	unsigned unmapped = 0;

	if (c == NULL) {
		out->oom = true;
		return 0;
	}
	c->out = out;
	c->root = stats && json_object_is_type(stats, json_type_object) ? stats : NULL;
	family(c, "cfr_up", "gauge", "1 if cfrd answered on its control socket at this scrape.");
	put(out, "cfr_up %d\n", c->root != NULL);
	if (c->root != NULL) {
		infos(c);
		for (size_t i = 0; i < ARRAY_SIZE(plain_metrics); i++) {
			const struct plain *m = &plain_metrics[i];

			if (get(c->root, m->path) == NULL)
				continue;
			family(c, m->name, m->type, m->help);
			sample(c, c->root, m->path, m->name, NULL);
		}
		packets(c);
		by_key(c, "drops", "cfr_dropped_packets_total", "reason",
		       "Packets dropped, by reason (cfr.h CFR_DROP_REASONS).");
		by_key(c, "privacy.scrubbed", "cfr_scrubbed_packets_total", "scrubber",
		       "Packets a scrubber changed.");
		flows(c);
		anonymity(c);
		pools(c);
		workers(c);
		unmapped = count_unmapped(c, c->root);
		family(c, "cfr_exporter_unmapped_fields", "gauge",
		       "Numeric fields of cfrd's stats that no metric shows (should be 0).");
		put(out, "cfr_exporter_unmapped_fields %u\n", unmapped);
	}
	family(c, "cfr_exporter_control_requests_total", "counter",
	       "Stats requests the exporter sent to cfrd's control socket.");
	put(out, "cfr_exporter_control_requests_total %" PRIu64 "\n", self->control_requests);
	family(c, "cfr_exporter_control_failures_total", "counter",
	       "Stats requests cfrd did not answer with valid JSON.");
	put(out, "cfr_exporter_control_failures_total %" PRIu64 "\n", self->control_failures);
	free(c);
	return unmapped;
}
