/*
 * The TC fast path's loader and cfrd's half of it: loads cfr_tc.bpf.c,
 * attaches it at ingress of the gateway's interfaces, and keeps its flow
 * map a copy of the engine's established flows: a flow goes in (both
 * directions) once the engine has translated a packet that leaves it
 * offloadable, and out when it ends or stops being offloadable (a FIN or
 * RST). Every change happens under the engine lock, so the map never holds
 * a flow the engine has forgotten, whose alias another flow could get.
 *
 * The program routes and sends what it rewrites itself, so its packets
 * skip netfilter's forward hook: with forwarding rules in place (other
 * than cfrd's own guard, whose promises the program keeps) the fast path
 * stays off unless the operator says those rules may be skipped.
 */
#include "fastpath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tc/cfr_tc.h"
#include "forward_rules.h"
#include "log.h"

extern const unsigned char cfr_tc_object[];
extern const uint64_t cfr_tc_object_size;

/*
 * tcx (Linux 6.6): the program hangs off a BPF link, not a tc filter, so it
 * is detached when its last descriptor closes: when cfrd stops, even by
 * SIGKILL, its packets fall back to the TUN path (and, with cfrd gone, to
 * the egress guard), and detaching needs no privilege the sandbox took
 * away. Debian 12's headers predate it, hence the number.
 */
#define CFR_BPF_TCX_INGRESS 46

struct cfrd_fastpath {
	struct bpf_object *obj;
	int flows_fd, config_fd, stats_fd;
	unsigned via[CFRD_MAX_LINES + 1]; /* TUN ifindex by ingress */
	unsigned n_via;
	int *links; /* tcx link descriptors, one per interface */
	unsigned n_ifs;
	uint8_t *installed;  /* a bit per engine flow id */
	uint8_t *seen;       /* per flow id: packets of a carriable flow the engine translated */
	uint16_t *peer_port; /* per flow id: the remote port a port-0 peer was carried with */
	uint32_t max_flows;
	uint64_t flows, epoch;
	int cpus;       /* possible CPUs, read before the sandbox hides /sys */
	bool inherited; /* the maps came from the cfrd this one took over from */
	struct cfr_tc_config config;
};

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

/* --- the flow map --------------------------------------------------------------- */

static void key_of(struct cfr_tc_key *k, const struct cfr_flow_view *v, bool out)
{
	size_t alen = v->family == CFR_FAMILY_V4 ? 4 : 16;

	*k = (struct cfr_tc_key){.family = v->family == CFR_FAMILY_V4 ? 4 : 6, .proto = v->proto};
	if (out) {
		memcpy(k->saddr, v->sub, alen);
		memcpy(k->daddr, v->remote, alen);
		k->sport = htons(v->sub_port);
		k->dport = htons(v->remote_port);
	} else {
		memcpy(k->saddr, v->remote, alen);
		memcpy(k->daddr, v->alias, alen);
		k->sport = htons(v->remote_port);
		k->dport = htons(v->alias_port);
	}
}

/*
 * A UDP peer whose filter admits every port of its remote has remote port
 * 0 in the engine (cfr_engine_flow_view()): its entries are made with the
 * port of the packet that brought it in, kept to find them again.
 */
static void with_peer_port(const struct cfrd_fastpath *fp, uint32_t id, struct cfr_flow_view *v)
{
	if (v->proto == IPPROTO_UDP && v->remote_port == 0)
		v->remote_port = fp->peer_port[id];
}

/* The remote's port in translated UDP packet <pkt>, or 0 (a later fragment, another protocol). */
static uint16_t remote_port_of(const struct cfr_pkt *pkt)
{
	const uint8_t *ip = pkt->data;
	uint32_t l4;

	if (pkt->len >= 20 && (ip[0] >> 4) == 4) {
		if (ip[9] != IPPROTO_UDP || ((ip[6] & 0x1f) | ip[7]) != 0)
			return 0;
		l4 = (ip[0] & 0xfu) * 4u;
	} else if (pkt->len >= 40 && (ip[0] >> 4) == 6 && ip[6] == IPPROTO_UDP) {
		l4 = 40;
	} else {
		return 0;
	}
	if (pkt->len < l4 + 4)
		return 0;
	ip += l4 + (pkt->dir == CFR_DIR_OUT ? 2 : 0);
	return (uint16_t)(ip[0] << 8 | ip[1]);
}

static bool bit(const struct cfrd_fastpath *fp, uint32_t id)
{
	return fp->installed[id / 8] & (1u << (id % 8));
}

static void set_bit(struct cfrd_fastpath *fp, uint32_t id, bool on)
{
	if (on)
		fp->installed[id / 8] |= (uint8_t)(1u << (id % 8));
	else
		fp->installed[id / 8] &= (uint8_t) ~(1u << (id % 8));
}

void cfrd_fastpath_entries(const struct cfr_flow_view *v, uint32_t id, unsigned via,
                           struct cfrd_fastpath_entry e[2])
{
	size_t alen = v->family == CFR_FAMILY_V4 ? 4 : 16;
	struct cfr_tc_flow out = {
	    .dir = CFR_TC_OUT,
	    .port = htons(v->alias_port),
	    .flags = (uint8_t)((v->ts_scrub ? CFR_TC_TS : 0) | (v->label_scrub ? CFR_TC_LABEL : 0)),
	    .ts_offset = v->ts_offset,
	    .ts_base = v->ts_base,
	    .ts_rate = v->ts_rate,
	    .flow_label = v->flow_label,
	    .via_ifindex = via,
	    .flow_id = id,
	};

	e[0].value = out;
	memcpy(e[0].value.addr, v->alias, alen);
	key_of(&e[0].key, v, true);
	e[1].value = out;
	e[1].value.dir = CFR_TC_IN;
	e[1].value.port = htons(v->sub_port);
	memcpy(e[1].value.addr, v->sub, alen);
	key_of(&e[1].key, v, false);
}

static void install(struct cfrd_fastpath *fp, uint32_t id, const struct cfr_flow_view *v,
                    unsigned via)
{
	struct cfrd_fastpath_entry e[2];

	cfrd_fastpath_entries(v, id, via, e);
	/* The inbound entry first: an outbound packet taking the fast path expects its reply to. */
	if (bpf_map_update_elem(fp->flows_fd, &e[1].key, &e[1].value, BPF_ANY) < 0)
		return; /* the map is full: this flow stays on the TUN path */
	if (bpf_map_update_elem(fp->flows_fd, &e[0].key, &e[0].value, BPF_ANY) < 0) {
		bpf_map_delete_elem(fp->flows_fd, &e[1].key);
		return;
	}
	if (!bit(fp, id))
		fp->flows++;
	set_bit(fp, id, true);
}

static void uninstall(struct cfrd_fastpath *fp, uint32_t id, const struct cfr_flow_view *view)
{
	struct cfr_flow_view v = *view;
	struct cfr_tc_key k;

	with_peer_port(fp, id, &v);
	key_of(&k, &v, true);
	bpf_map_delete_elem(fp->flows_fd, &k);
	key_of(&k, &v, false);
	bpf_map_delete_elem(fp->flows_fd, &k);
	set_bit(fp, id, false);
	fp->flows--;
}

/*
 * A flow goes into the kernel once the engine has translated this many of
 * its packets since it could: installing and removing it costs four map
 * updates under the engine lock, more than the TUN path costs a short
 * exchange (a DNS query, a small HTTP request) whole. Bulk and long flows
 * lose a handful of packets to TUN.
 */
#define CARRY_AFTER 8

void cfrd_fastpath_learn(struct cfrd_fastpath *fp, const struct cfr_engine *eng,
                         const struct cfr_pkt *pkts, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		const struct cfr_pkt *pkt = &pkts[i];
		struct cfr_flow_view v;
		uint32_t id = pkt->flow;
		bool carry;

		if (pkt->verdict != CFR_VERDICT_FORWARD || id == 0 || id > fp->max_flows)
			continue;
		carry = cfr_engine_flow_view(eng, id, &v);
		if (carry && v.proto == IPPROTO_UDP && v.remote_port == 0) {
			if (!bit(fp, id))
				fp->peer_port[id] = remote_port_of(pkt);
			with_peer_port(fp, id, &v);
			if (v.remote_port == 0)
				continue; /* no port to key on: this packet stays with the engine */
		}
		/*
		 * A TCP segment of a carried flow reached the engine: a SYN
		 * that restarted its timestamp clock, or a FIN or RST that
		 * ends what may be carried. UDP has nothing to update.
		 */
		if (carry && !bit(fp, id) && fp->seen[id] < CARRY_AFTER - 1)
			fp->seen[id]++;
		else if (carry && (!bit(fp, id) || v.proto == IPPROTO_TCP))
			install(fp, id, &v, fp->via[pkt->ingress < fp->n_via ? pkt->ingress : 0]);
		else if (!carry && bit(fp, id))
			uninstall(fp, id, &v);
	}
}

/* --- the engine's hooks ------------------------------------------------------- */

static uint32_t hook_last_seen(void *ctx, uint32_t id, const struct cfr_flow_view *view)
{
	struct cfrd_fastpath *fp = ctx;
	struct cfr_flow_view v = *view;
	uint64_t seen = 0;

	if (id > fp->max_flows || !bit(fp, id))
		return 0;
	with_peer_port(fp, id, &v);
	for (int out = 0; out < 2; out++) {
		struct cfr_tc_flow f;
		struct cfr_tc_key k;

		key_of(&k, &v, out);
		if (bpf_map_lookup_elem(fp->flows_fd, &k, &f) == 0 && f.last_seen_ns > seen)
			seen = f.last_seen_ns;
	}
	return (uint32_t)(seen / 1000000000u);
}

static void hook_removed(void *ctx, uint32_t id, const struct cfr_flow_view *v)
{
	struct cfrd_fastpath *fp = ctx;

	if (id > fp->max_flows)
		return;
	fp->seen[id] = 0; /* the id's next flow counts from nothing */
	if (bit(fp, id))
		uninstall(fp, id, v);
}

struct cfr_offload cfrd_fastpath_offload(struct cfrd_fastpath *fp)
{
	return (struct cfr_offload){
	    .ctx = fp, .last_seen = hook_last_seen, .removed = hook_removed};
}

/* --- settings and counters --------------------------------------------------- */

/* A fresh identification key into the program's settings; cfrd keeps no copy. */
static int rekey(struct cfrd_fastpath *fp)
{
	uint32_t zero = 0;
	int ret = 0;

	randombytes_buf(fp->config.id_key, sizeof(fp->config.id_key));
	if (bpf_map_update_elem(fp->config_fd, &zero, &fp->config, BPF_ANY) < 0)
		ret = -errno;
	sodium_memzero(fp->config.id_key, sizeof(fp->config.id_key));
	return ret;
}

void cfrd_fastpath_reconfigure(struct cfrd_fastpath *fp, const struct cfr_engine_config *cfg)
{
	int ret;

	fp->config.ttl_cap = cfg->scrub.ttl_cap;
	fp->config.ip_id = cfg->scrub.ip_id;
	ret = rekey(fp); /* cfrd keeps no copy of the key: a new one goes with the settings */
	if (ret < 0)
		log_error("fast path: cannot apply the new scrubber settings: %s", strerror(-ret));
}

/* The old key is gone with its epoch: the map holds the new one only. */
void cfrd_fastpath_epoch(struct cfrd_fastpath *fp, uint64_t epoch)
{
	int ret;

	if (fp->epoch == epoch)
		return;
	fp->epoch = epoch;
	ret = rekey(fp);
	if (ret < 0)
		log_error("fast path: cannot set the new epoch's identification key: %s",
		          strerror(-ret));
}

void cfrd_fastpath_stats(const struct cfrd_fastpath *fp, struct cfrd_fastpath_stats *st)
{
	int cpus = fp->cpus;
	uint64_t sum[CFR_TC_STAT__COUNT] = {0};

	*st = (struct cfrd_fastpath_stats){.interfaces = fp->n_ifs, .flows = fp->flows};
	if (cpus <= 0)
		return;
	{
		uint64_t vals[cpus];

		for (uint32_t k = 0; k < CFR_TC_STAT__COUNT; k++) {
			if (bpf_map_lookup_elem(fp->stats_fd, &k, vals) < 0)
				continue;
			for (int c = 0; c < cpus; c++)
				sum[k] += vals[c];
		}
	}
	st->packets[CFR_DIR_OUT] = sum[CFR_TC_FWD_OUT];
	st->packets[CFR_DIR_IN] = sum[CFR_TC_FWD_IN];
	st->bytes[CFR_DIR_OUT] = sum[CFR_TC_BYTES_OUT];
	st->bytes[CFR_DIR_IN] = sum[CFR_TC_BYTES_IN];
	st->passed_tcp_flags = sum[CFR_TC_PASS_TCP_FLAGS];
	st->passed_ttl = sum[CFR_TC_PASS_TTL];
	st->passed_options = sum[CFR_TC_PASS_OPTIONS];
	st->passed_line = sum[CFR_TC_PASS_LINE];
	st->passed_route = sum[CFR_TC_PASS_ROUTE];
	st->dropped = sum[CFR_TC_DROPPED];
}

/* --- setup -------------------------------------------------------------------- */

static bool is_tun(const char *name)
{
	char path[64 + IFNAMSIZ];
	struct stat sb;

	snprintf(path, sizeof(path), "/sys/class/net/%s/tun_flags", name);
	return stat(path, &sb) == 0;
}

static int attach_one(struct cfrd_fastpath *fp, const char *name, int prog_fd)
{
	unsigned ifindex = if_nametoindex(name);
	int fd;

	if (ifindex == 0) {
		log_error("[fastpath]: no interface %s", name);
		return -ENODEV;
	}
	fd =
	    bpf_link_create(prog_fd, (int)ifindex, (enum bpf_attach_type)CFR_BPF_TCX_INGRESS, NULL);
	if (fd < 0) {
		fd = -errno;
		log_error("[fastpath]: cannot attach to %s: %s", name, strerror(-fd));
		return fd;
	}
	fp->links[fp->n_ifs++] = fd;
	return 0;
}

/* The named interfaces, or every one but loopback and TUN devices (cfrd's own). */
static int attach_all(struct cfrd_fastpath *fp, const struct cfrd_config *cfg, int prog_fd)
{
	struct if_nameindex *all = if_nameindex(), *i;
	unsigned n = 0;
	int ret = 0;

	if (all == NULL)
		return -errno;
	for (i = all; i->if_index; i++)
		n++;
	fp->links = calloc(n + cfg->n_fastpath_ifs + 1, sizeof(*fp->links));
	if (fp->links == NULL) {
		if_freenameindex(all);
		return -ENOMEM;
	}
	for (unsigned k = 0; ret == 0 && k < cfg->n_fastpath_ifs; k++)
		ret = attach_one(fp, cfg->fastpath_ifs[k], prog_fd);
	for (i = all; ret == 0 && cfg->n_fastpath_ifs == 0 && i->if_index; i++)
		if (strcmp(i->if_name, "lo") != 0 && !is_tun(i->if_name))
			ret = attach_one(fp, i->if_name, prog_fd);
	if_freenameindex(all);
	return ret;
}

/* Forwarding rules the program's packets would skip keep it off, unless told otherwise. */
static bool rules_allow(const struct cfrd_config *cfg)
{
	char what[160];
	int n = cfrd_forward_rules_count(what, sizeof(what));

	if (n == 0 || cfg->fastpath_ignore_forward_rules)
		return true;
	if (n < 0)
		log_warn(
		    "fast path off: cannot tell whether forwarding rules exist that its packets "
		    "would skip ([fastpath] ignore-forward-rules = yes to run it anyway)");
	else
		log_warn("fast path off: %d forwarding rule%s (first in %s) would not see its "
		         "packets ([fastpath] ignore-forward-rules = yes to run it anyway)",
		         n, n == 1 ? "" : "s", what);
	return false;
}

/* The running cfrd's maps, if their layout is ours (its config entry says). */
static bool inheritable(const struct cfrd_fastpath_handover *h)
{
	struct cfr_tc_config c;
	uint32_t zero = 0;

	return h && h->n > 3 && bpf_map_lookup_elem(h->fds[1], &zero, &c) == 0 &&
	       c.layout == CFR_TC_LAYOUT;
}

static int load(struct cfrd_fastpath *fp, const struct cfrd_config *cfg,
                const struct cfrd_fastpath_handover *inherit)
{
	static const char *const maps[3] = {"flows", "config", "stats"};
	struct bpf_map *flows;

	libbpf_set_print(libbpf_quiet);
	fp->cpus = libbpf_num_possible_cpus();
	fp->obj = bpf_object__open_mem(cfr_tc_object, (size_t)cfr_tc_object_size, NULL);
	if (fp->obj == NULL)
		return -errno;
	flows = bpf_object__find_map_by_name(fp->obj, "flows");
	/* Two entries a flow, one per direction. */
	if (flows == NULL || bpf_map__set_max_entries(flows, 2 * cfg->engine.max_flows) < 0)
		return -EINVAL;
	for (unsigned i = 0; fp->inherited && i < 3; i++)
		if (bpf_map__reuse_fd(bpf_object__find_map_by_name(fp->obj, maps[i]),
		                      inherit->fds[i]) < 0)
			return -EINVAL;
	if (bpf_object__load(fp->obj) < 0)
		return errno ? -errno : -EINVAL;
	fp->flows_fd = bpf_map__fd(flows);
	fp->config_fd = bpf_object__find_map_fd_by_name(fp->obj, "config");
	fp->stats_fd = bpf_object__find_map_fd_by_name(fp->obj, "stats");
	fp->config = (struct cfr_tc_config){
	    .ttl_cap = cfg->engine.scrub.ttl_cap,
	    .ip_id = cfg->engine.scrub.ip_id,
	    .layout = CFR_TC_LAYOUT,
	};
	return rekey(fp);
}

/*
 * The inherited table, against the engine that came with it: which flows it
 * holds (installed bits), and nothing the engine does not know. Read in
 * batches: a million flows are two million entries.
 */
static void adopt_table(struct cfrd_fastpath *fp, const struct cfr_engine *eng)
{
	enum { BATCH = 4096 };
	static struct cfr_tc_key keys[BATCH];
	static struct cfr_tc_flow vals[BATCH];
	struct cfr_tc_key stale[64];
	unsigned n_stale = 0, n_entries = 0;
	uint64_t in_batch;
	bool first = true;
	__u32 count;
	int ret;

	do {
		static struct cfr_tc_key next; /* the batch cursor: a key-sized blob */

		count = BATCH;
		ret = bpf_map_lookup_batch(fp->flows_fd, first ? NULL : &next, &next, keys, vals,
		                           &count, NULL);
		first = false;
		for (in_batch = 0; in_batch < count; in_batch++) {
			struct cfrd_fastpath_entry e[2];
			struct cfr_flow_view v;
			uint32_t id = vals[in_batch].flow_id;
			int which = vals[in_batch].dir == CFR_TC_OUT ? 0 : 1;

			n_entries++;
			if (id != 0 && id <= fp->max_flows && cfr_engine_flow_view(eng, id, &v)) {
				/* A port-0 peer's port is the entry's own. */
				if (v.proto == IPPROTO_UDP && v.remote_port == 0)
					fp->peer_port[id] = v.remote_port =
					    ntohs(which == 0 ? keys[in_batch].dport
					                     : keys[in_batch].sport);
				cfrd_fastpath_entries(&v, id, vals[in_batch].via_ifindex, e);
				if (memcmp(&e[which].key, &keys[in_batch], sizeof(keys[0])) == 0) {
					if (!bit(fp, id))
						fp->flows++;
					set_bit(fp, id, true);
					continue;
				}
			}
			if (n_stale < 64)
				stale[n_stale++] = keys[in_batch];
		}
	} while (ret == 0);
	for (unsigned i = 0; i < n_stale; i++)
		bpf_map_delete_elem(fp->flows_fd, &stale[i]);
	log_info("fast path: took over the running table: %llu flows in %u entries%s",
	         (unsigned long long)fp->flows, n_entries,
	         n_stale ? ", some the engine does not know removed" : "");
}

unsigned cfrd_fastpath_export(const struct cfrd_fastpath *fp, struct cfrd_fastpath_handover *h)
{
	h->n = 0;
	if (fp->n_ifs + 3 > CFRD_FASTPATH_HANDOVER_FDS)
		return 0;
	h->fds[h->n++] = fp->flows_fd;
	h->fds[h->n++] = fp->config_fd;
	h->fds[h->n++] = fp->stats_fd;
	for (unsigned i = 0; i < fp->n_ifs; i++)
		h->fds[h->n++] = fp->links[i];
	return h->n;
}

void cfrd_fastpath_handover_close(struct cfrd_fastpath_handover *h)
{
	for (unsigned i = 0; h && i < h->n; i++)
		close(h->fds[i]);
	if (h)
		h->n = 0;
}

int cfrd_fastpath_open(struct cfrd_fastpath **fpp, const struct cfrd_config *cfg,
                       const unsigned *tun_ifindex, unsigned n_tun,
                       struct cfrd_fastpath_handover *inherit, const struct cfr_engine *eng)
{
	struct cfrd_fastpath *fp;
	struct bpf_program *prog;
	int ret;

	*fpp = NULL;
	if (!cfg->fastpath || cfg->n_xdp_ports > 0 || !rules_allow(cfg)) {
		if (cfg->fastpath && cfg->n_xdp_ports > 0)
			log_info("fast path off: the AF_XDP path ([xdp]) takes the packets first");
		cfrd_fastpath_handover_close(inherit); /* the old program goes with its links */
		return 0;
	}
	fp = calloc(1, sizeof(*fp));
	if (fp == NULL) {
		cfrd_fastpath_handover_close(inherit);
		return -ENOMEM;
	}
	fp->max_flows = cfg->engine.max_flows;
	fp->installed = calloc(fp->max_flows / 8 + 1, 1);
	fp->seen = calloc(fp->max_flows + 1, 1);
	fp->peer_port = calloc(fp->max_flows + 1, sizeof(*fp->peer_port));
	fp->n_via = n_tun;
	memcpy(fp->via, tun_ifindex, n_tun * sizeof(*tun_ifindex));
	fp->inherited = inheritable(inherit);
	ret = fp->installed && fp->seen && fp->peer_port ? load(fp, cfg, inherit) : -ENOMEM;
	if (ret < 0 && fp->inherited) {
		log_warn("fast path: cannot take over the running table (%s); starting empty",
		         strerror(-ret));
		bpf_object__close(fp->obj);
		fp->obj = NULL;
		fp->inherited = false;
		ret = load(fp, cfg, NULL);
	}
	if (ret < 0) {
		/* The TUN path is whole without it: a kernel without TC BPF runs cfrd slower. */
		log_warn("fast path off: cannot load its program: %s", strerror(-ret));
		cfrd_fastpath_handover_close(inherit);
		cfrd_fastpath_close(fp);
		return 0;
	}
	if (fp->inherited)
		adopt_table(fp, eng);
	prog = bpf_object__find_program_by_name(fp->obj, "cfr_tc_ingress");
	ret = attach_all(fp, cfg, bpf_program__fd(prog));
	/* Ours are attached (after the old ones in each chain): the old program may go now. */
	cfrd_fastpath_handover_close(inherit);
	if (ret < 0) {
		cfrd_fastpath_close(fp);
		return ret;
	}
	log_info("fast path on: TC (tcx) program at ingress of %u interface%s", fp->n_ifs,
	         fp->n_ifs == 1 ? "" : "s");
	*fpp = fp;
	return 0;
}

void cfrd_fastpath_close(struct cfrd_fastpath *fp)
{
	if (fp == NULL)
		return;
	for (unsigned i = 0; i < fp->n_ifs; i++)
		close(fp->links[i]);
	free(fp->links);
	bpf_object__close(fp->obj);
	free(fp->installed);
	free(fp->seen);
	free(fp->peer_port);
	free(fp);
}
