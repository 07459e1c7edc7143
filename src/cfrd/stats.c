/*
 * The `stats` reply: engine counters, flow table occupancy and I/O errors as
 * one JSON object. Counts only, never an address: the control socket is
 * privacy-preserving by default like the logs.
 *
 * Out of memory, json-c returns NULL and stores a NULL child as null; but
 * it asserts when adding to a NULL parent, so each container is checked.
 */
#include "stats.h"

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

struct json_object *cfrd_stats_json(const struct cfrd *d, uint64_t now_ms)
{
	const struct cfr_stats *s = cfr_engine_stats(d->engine);
	struct json_object *obj = json_object_new_object();
	struct json_object *io;

	if (obj == NULL)
		return NULL;
	json_object_object_add(obj, "version", json_object_new_string(CFR_VERSION));
	add_u64(obj, "uptime_s", (now_ms - d->start_ms) / 1000);
	json_object_object_add(obj, "packets", packets_json(s));
	json_object_object_add(obj, "drops", drops_json(s));
	json_object_object_add(obj, "flows", flows_json(s));
	add_u64(obj, "fragments_tracked", s->frags_tracked);
	add_u64(obj, "memory_bytes", cfr_engine_memory(d->engine));
	io = json_object_new_object();
	if (io == NULL)
		return obj;
	add_u64(io, "read_errors", d->io.read_errors);
	add_u64(io, "write_errors", d->io.write_errors);
	json_object_object_add(obj, "io", io);
	return obj;
}
