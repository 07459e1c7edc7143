/*
 * cfr-audit: capture mode.
 *
 * Flows at the front door: every TCP SYN (without ACK) and the first UDP
 * datagram of a 5-tuple (after 300 s of silence a 5-tuple counts as a new
 * flow, the UDP mapping lifetime of RFC 4787), not addressed to an alias
 * pool. A flow lives until the last packet of its 5-tuple, either way.
 *
 * Ground truth joins them to subscribers without trusting cfr: the fields a
 * translator leaves alone identify a flow exactly on both sides. For TCP
 * that is (remote, remote port, initial sequence number); for UDP (remote,
 * remote port, FNV-1a of the first datagram's first 64 payload bytes,
 * random in QUIC's Initial). The truth is either a subscriber-side capture (the subscriber
 * is the source address, an IPv6 source counts by its /64) or a TSV with one
 * flow per line:
 *
 *     tcp|udp <TAB> remote <TAB> remote-port <TAB> key <TAB> subscriber
 *
 * where key is the ISN or the payload hash (decimal or 0x-hex) and
 * subscriber any label without whitespace.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"

#define UDP_IDLE_MS   300000u
#define UDP_KEY_BYTES 64u

struct truth {
	uint64_t key;
	uint64_t sub_hash;
	struct obs seen; /* the subscriber-side first packet, for the no-translation row */
};

struct truth_vec {
	struct truth *v;
	size_t n, cap;
	bool has_packets; /* from a capture: the subscriber-side row can be built */
};

struct flow_track {
	uint64_t tuple;
	uint32_t obs, last_ms;
};

struct cap {
	const struct pool_list *pools;
	struct truth_vec truth;
	struct obs_vec fd, sub; /* matched flows, front door and subscriber side */
	uint32_t *fd_last;      /* last packet of each matched front-door flow */
	size_t fd_last_cap;
	struct flow_track *flows; /* open-addressed by 5-tuple hash */
	size_t flows_mask, flows_used;
	uint64_t unmatched, t0_us;
	bool have_t0;
	bool per_file;       /* each truth capture is one subscriber */
	unsigned truth_file; /* index of the truth capture being read */
};

static uint32_t fnv1a(const uint8_t *p, uint32_t n)
{
	uint32_t h = 2166136261u, i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static uint64_t flow_key(uint8_t proto, const uint8_t *remote, uint16_t rport, uint32_t id)
{
	uint8_t k[24];

	memset(k, 0, sizeof(k));
	memcpy(k, remote, 16);
	k[16] = proto;
	k[17] = (uint8_t)(rport >> 8);
	k[18] = (uint8_t)rport;
	memcpy(k + 20, &id, 4);
	return hash_bytes(k, sizeof(k), 0x6b6579);
}

/*
 * The flow identifier a translator leaves alone: the ISN, or a hash of the
 * first payload's first UDP_KEY_BYTES (so captures with different snap
 * lengths and link headers still agree).
 */
static uint32_t flow_id(const struct pkt_view *v)
{
	if (v->proto == 6)
		return v->seq;
	return fnv1a(v->payload, v->payload_len < UDP_KEY_BYTES ? v->payload_len : UDP_KEY_BYTES);
}

static bool opens_flow(const struct pkt_view *v)
{
	return v->proto == 17 || (v->tcp_flags & (TCPF_SYN | TCPF_ACK | TCPF_RST)) == TCPF_SYN;
}

static bool in_pools(const struct pool_list *pools, const struct pkt_view *v, const uint8_t *a)
{
	unsigned i;

	for (i = 0; i < pools->n; i++)
		if (cfr_prefix_contains(&pools->p[i], v->family, a))
			return true;
	return false;
}

/* The IP packet inside a frame of link type <dlt>, or NULL. */
static const uint8_t *ip_payload(int dlt, const uint8_t *f, uint32_t caplen, uint32_t *len)
{
	uint32_t off;
	uint16_t type;

	switch (dlt) {
	case DLT_EN10MB:
		if (caplen < 14)
			return NULL;
		type = (uint16_t)(f[12] << 8 | f[13]);
		off = 14;
		while ((type == 0x8100 || type == 0x88a8) && caplen >= off + 4) {
			type = (uint16_t)(f[off + 2] << 8 | f[off + 3]);
			off += 4;
		}
		if (type != 0x0800 && type != 0x86dd)
			return NULL;
		break;
	case DLT_LINUX_SLL:
		if (caplen < 16)
			return NULL;
		off = 16;
		break;
	case DLT_LINUX_SLL2:
		if (caplen < 20)
			return NULL;
		off = 20;
		break;
	case DLT_NULL:
		off = 4;
		break;
	case DLT_RAW:
	case DLT_IPV4:
	case DLT_IPV6:
		off = 0;
		break;
	default:
		return NULL;
	}
	if (caplen < off)
		return NULL;
	*len = caplen - off;
	return f + off;
}

typedef void (*packet_fn)(struct cap *c, const struct pkt_view *v, uint32_t t_ms);

static int read_pcap(struct cap *c, const char *path, packet_fn fn)
{
	char err[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline(path, err);
	struct pcap_pkthdr *h;
	const u_char *data;
	int dlt, rc;

	if (!p) {
		fprintf(stderr, "cfr-audit: %s: %s\n", path, err);
		return -EINVAL;
	}
	dlt = pcap_datalink(p);
	while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
		uint64_t us = (uint64_t)h->ts.tv_sec * 1000000u + (uint64_t)h->ts.tv_usec;
		struct pkt_view v;
		const uint8_t *ip;
		uint32_t len;

		/*
		 * One time origin for all captures of a side, with a margin:
		 * captures started a little apart stay on one clock.
		 */
		if (!c->have_t0) {
			c->t0_us = us > 60000000u ? us - 60000000u : 0;
			c->have_t0 = true;
		}
		ip = ip_payload(dlt, data, h->caplen, &len);
		if (ip && pkt_parse(ip, len, &v))
			fn(c, &v, us > c->t0_us ? (uint32_t)((us - c->t0_us) / 1000) : 0);
	}
	pcap_close(p);
	return rc == -2 ? 0 : -EIO;
}

static void fill_obs(struct obs *o, const struct pkt_view *v, const struct pool_list *pools,
                     uint32_t t_ms)
{
	obs_from_view(o, v, pools);
	o->t_ms = t_ms;
	o->ip_id = v->ip_id;
	o->ttl = v->ttl;
	if (v->proto == 17)
		o->flags |= OBS_UDP;
	if (v->has_ts) {
		o->flags |= OBS_TS;
		o->tsd = v->tsval - t_ms;
	}
}

static void truth_packet(struct cap *c, const struct pkt_view *v, uint32_t t_ms)
{
	struct truth_vec *tv = &c->truth;
	struct truth *t;

	/* A translated packet is the front door's business, not the subscriber side's. */
	if (!opens_flow(v) || in_pools(c->pools, v, v->src) || in_pools(c->pools, v, v->dst))
		return;
	if (tv->n == tv->cap) {
		size_t cap = tv->cap ? tv->cap * 2 : 4096;
		struct truth *n = realloc(tv->v, cap * sizeof(*n));

		if (!n)
			return;
		tv->v = n;
		tv->cap = cap;
	}
	t = &tv->v[tv->n++];
	memset(t, 0, sizeof(*t));
	t->key = flow_key(v->proto, v->dst, v->dport, flow_id(v));
	t->sub_hash = c->per_file
	                  ? mix64(c->truth_file + 1)
	                  : hash_bytes(v->src, v->family == CFR_FAMILY_V4 ? 4 : 8, 0x737562);
	fill_obs(&t->seen, v, c->pools, t_ms);
}

/* A flow key of the TSV: decimal, or hex with 0x (an ISN, a payload hash). */
static int parse_key(const char *text, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(text, &end, 0);
	return errno || end == text || *end != '\0' ? -1 : 0;
}

static int read_tsv(struct cap *c, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512];
	unsigned lineno = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char proto[8], remote[64], key[32], sub[128];
		uint8_t addr[16] = {0};
		unsigned rport;
		unsigned long long id;
		struct truth *t;

		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%7s %63s %u %31s %127s", proto, remote, &rport, key, sub) != 5 ||
		    (strcmp(proto, "tcp") && strcmp(proto, "udp")) || rport > 65535 ||
		    (inet_pton(AF_INET, remote, addr) != 1 &&
		     inet_pton(AF_INET6, remote, addr) != 1) ||
		    parse_key(key, &id) != 0) {
			fprintf(stderr, "cfr-audit: %s:%u: not a truth line\n", path, lineno);
			fclose(f);
			return -EINVAL;
		}
		if (c->truth.n == c->truth.cap) {
			size_t cap = c->truth.cap ? c->truth.cap * 2 : 4096;
			struct truth *n = realloc(c->truth.v, cap * sizeof(*n));

			if (!n) {
				fclose(f);
				return -ENOMEM;
			}
			c->truth.v = n;
			c->truth.cap = cap;
		}
		t = &c->truth.v[c->truth.n++];
		memset(t, 0, sizeof(*t));
		t->key = flow_key(proto[0] == 't' ? 6 : 17, addr, (uint16_t)rport, (uint32_t)id);
		t->sub_hash = hash_bytes(sub, strlen(sub), 0x737562);
	}
	fclose(f);
	return 0;
}

static int cmp_truth(const void *a, const void *b)
{
	uint64_t x = ((const struct truth *)a)->key, y = ((const struct truth *)b)->key;

	return (x > y) - (x < y);
}

static const struct truth *truth_find(const struct truth_vec *tv, uint64_t key)
{
	size_t lo = 0, hi = tv->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (tv->v[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < tv->n && tv->v[lo].key == key ? &tv->v[lo] : NULL;
}

/* Both directions of a 5-tuple hash alike, so replies extend the flow's life. */
static uint64_t tuple_hash(const struct pkt_view *v)
{
	uint64_t a = hash_bytes(v->src, 16, v->sport), b = hash_bytes(v->dst, 16, v->dport);

	return mix64((a ^ b) + v->proto);
}

static struct flow_track *track(struct cap *c, uint64_t tuple)
{
	size_t i;

	if (c->flows_used * 2 >= c->flows_mask) {
		size_t size = c->flows_mask ? (c->flows_mask + 1) * 2 : 1 << 16, j;
		struct flow_track *n = calloc(size, sizeof(*n));

		if (!n)
			return NULL;
		for (j = 0; c->flows && j <= c->flows_mask; j++) {
			if (!c->flows[j].tuple)
				continue;
			for (i = mix64(c->flows[j].tuple) & (size - 1); n[i].tuple;
			     i = (i + 1) & (size - 1))
				;
			n[i] = c->flows[j];
		}
		free(c->flows);
		c->flows = n;
		c->flows_mask = size - 1;
	}
	tuple |= 1;
	for (i = mix64(tuple) & c->flows_mask; c->flows[i].tuple && c->flows[i].tuple != tuple;
	     i = (i + 1) & c->flows_mask)
		;
	if (!c->flows[i].tuple) {
		c->flows[i].tuple = tuple;
		c->flows[i].obs = UINT32_MAX;
		c->flows_used++;
	}
	return &c->flows[i];
}

static void frontdoor_packet(struct cap *c, const struct pkt_view *v, uint32_t t_ms)
{
	struct flow_track *ft = track(c, tuple_hash(v));
	const struct truth *t;
	struct obs *o;
	bool idle;

	if (!ft)
		return;
	idle = ft->obs == UINT32_MAX || t_ms - ft->last_ms > UDP_IDLE_MS;
	if (ft->obs != UINT32_MAX)
		c->fd_last[ft->obs] = t_ms;
	ft->last_ms = t_ms;
	if (!opens_flow(v) || in_pools(c->pools, v, v->dst) || (v->proto == 17 && !idle) ||
	    (v->proto == 6 && ft->obs != UINT32_MAX && c->fd.v[ft->obs].t_ms + 3000 > t_ms))
		return; /* not a new flow, or a retransmitted SYN */
	t = truth_find(&c->truth, flow_key(v->proto, v->dst, v->dport, flow_id(v)));
	if (!t) {
		c->unmatched++;
		return;
	}
	if (c->fd.n == c->fd_last_cap) {
		size_t cap = c->fd_last_cap ? c->fd_last_cap * 2 : 4096;
		uint32_t *n = realloc(c->fd_last, cap * sizeof(*n));

		if (!n)
			return;
		c->fd_last = n;
		c->fd_last_cap = cap;
	}
	if (!(o = obs_push(&c->fd)))
		return;
	fill_obs(o, v, c->pools, t_ms);
	o->sub = (uint32_t)t->sub_hash; /* made dense below */
	c->fd_last[c->fd.n - 1] = t_ms;
	ft->obs = (uint32_t)(c->fd.n - 1);
	if (c->truth.has_packets && (o = obs_push(&c->sub))) {
		*o = t->seen;
		o->sub = (uint32_t)t->sub_hash;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Subscriber labels to dense indexes 0..n-1, as metrics_compute() expects. */
static int densify(struct obs_vec *ov, struct obs_vec *other)
{
	uint32_t *ids = malloc((ov->n + 1) * sizeof(*ids));
	size_t i, n = 0;

	if (!ids)
		return -ENOMEM;
	for (i = 0; i < ov->n; i++)
		ids[i] = ov->v[i].sub;
	qsort(ids, ov->n, sizeof(*ids), cmp_u32);
	for (i = 0; i < ov->n; i++)
		if (n == 0 || ids[i] != ids[n - 1])
			ids[n++] = ids[i];
	for (i = 0; i < ov->n; i++) {
		uint32_t *p = bsearch(&ov->v[i].sub, ids, n, sizeof(*ids), cmp_u32);

		ov->v[i].sub = (uint32_t)(p - ids);
		if (other && i < other->n)
			other->v[i].sub = ov->v[i].sub;
	}
	free(ids);
	return 0;
}

struct end_ev {
	uint32_t t, idx;
};

static int cmp_end(const void *a, const void *b)
{
	const struct end_ev *x = a, *y = b;

	return (x->t > y->t) - (x->t < y->t);
}

/* Anonymity sets: replay starts (capture order) and ends (sorted) of the flows. */
static int anon_sets(const struct obs_vec *ov, const uint32_t *last, struct metrics *m)
{
	struct anonset *a = anonset_new();
	struct end_ev *ends = malloc((ov->n + 1) * sizeof(*ends));
	size_t i, e = 0;

	if (!a || !ends) {
		anonset_free(a);
		free(ends);
		return -ENOMEM;
	}
	for (i = 0; i < ov->n; i++)
		ends[i] = (struct end_ev){last[i], (uint32_t)i};
	qsort(ends, ov->n, sizeof(*ends), cmp_end);
	for (i = 0; i < ov->n; i++) {
		while (e < ov->n && ends[e].t < ov->v[i].t_ms && ends[e].idx < i) {
			anonset_end(a, ov->v[ends[e].idx].unit, ov->v[ends[e].idx].sub);
			e++;
		}
		anonset_start(a, ov->v[i].unit, ov->v[i].sub);
	}
	m->anon_median = anonset_quantile(a, 0.5);
	m->anon_p5 = anonset_quantile(a, 0.05);
	anonset_free(a);
	free(ends);
	return 0;
}

int capture_run(const char *fd_pcap, const char *const *truth, unsigned n_truth, bool per_file,
                const struct pool_list *pools, const struct link_params *lp, uint64_t seed,
                struct row *rows, unsigned *n)
{
	struct cap c;
	int err = 0;
	char err_buf[PCAP_ERRBUF_SIZE];

	memset(&c, 0, sizeof(c));
	c.pools = pools;
	c.per_file = per_file;
	*n = 0;
	/* A TSV says nothing of the packets: the subscriber-side row needs captures only. */
	c.truth.has_packets = true;
	for (c.truth_file = 0; !err && c.truth_file < n_truth; c.truth_file++) {
		const char *path = truth[c.truth_file];
		pcap_t *probe = pcap_open_offline(path, err_buf);

		if (probe) {
			pcap_close(probe);
			err = read_pcap(&c, path, truth_packet);
		} else {
			c.truth.has_packets = false;
			err = read_tsv(&c, path);
		}
	}
	if (!err) {
		qsort(c.truth.v, c.truth.n, sizeof(*c.truth.v), cmp_truth);
		c.have_t0 = false;
		err = read_pcap(&c, fd_pcap, frontdoor_packet);
	}
	fprintf(stderr,
	        "cfr-audit: %zu truth flows, %zu front-door flows matched, %llu unmatched\n",
	        c.truth.n, c.fd.n, (unsigned long long)c.unmatched);
	if (!err && c.fd.n == 0)
		err = -ENODATA;
	if (!err)
		err = densify(&c.fd, c.truth.has_packets ? &c.sub : NULL);
	if (!err && c.truth.has_packets) {
		uint32_t *last = malloc((c.sub.n + 1) * sizeof(*last));
		size_t i;

		/* Same lifetimes as at the front door, shifted to the subscriber side's clock. */
		for (i = 0; last && i < c.sub.n; i++)
			last[i] = c.sub.v[i].t_ms + (c.fd_last[i] - c.fd.v[i].t_ms);
		memset(&rows[*n], 0, sizeof(rows[0]));
		snprintf(rows[*n].name, sizeof(rows[0].name), "subscriber side (no translation)");
		err = last ? anon_sets(&c.sub, last, &rows[*n].m) : -ENOMEM;
		if (!err)
			err = metrics_compute(&c.sub, lp, seed, &rows[*n].m);
		free(last);
		if (!err)
			(*n)++;
	}
	if (!err) {
		memset(&rows[*n], 0, sizeof(rows[0]));
		snprintf(rows[*n].name, sizeof(rows[0].name), "front door (captured)");
		err = anon_sets(&c.fd, c.fd_last, &rows[*n].m);
		if (!err)
			err = metrics_compute(&c.fd, lp, seed, &rows[*n].m);
		if (!err)
			(*n)++;
	}
	if (err)
		fprintf(stderr, "cfr-audit: capture mode: %s\n", strerror(-err));
	free(c.truth.v);
	free(c.fd_last);
	free(c.flows);
	obs_free(&c.fd);
	obs_free(&c.sub);
	return err;
}
