/*
 * cfr-audit: replaying the synthetic trace through one configuration of the
 * real engine, in process, on a simulated clock.
 *
 * Each flow is a short conversation: the host's first packet (a SYN with
 * the host's options, or a QUIC-like datagram), the remote's answer back
 * through the engine (so TCP flows become established and the reverse
 * mapping is exercised), and at the flow's end a FIN exchange (or a last
 * datagram). What the front door would record is read from the translated
 * first packet. The row "no translation" skips the engine: the front door
 * reads the host's own packet.
 *
 * A TCP flow with timestamps also leaves the rate of the host's clock
 * (skew.c), and the front door fits it from the TSvals the engine sends:
 * every segment the front door samples (about one a second, see
 * watch_flow()) goes through the engine, and its TSval is read from the
 * engine's output, whatever the engine does to it (an offset, a rate of the
 * flow's own). The segments between the first and the FIN go through at
 * the flow's end, in the order the host sent them, each with the TSval the
 * host's clock showed at its time: the engine's TSval map depends on the
 * flow, not on the time a packet passes. The audit checks what the engine
 * promises (TSvals that never go back, advancing exactly as the host's
 * clock without a rate and 1 to 2 times as fast with one, and the remote's
 * echo of the FIN mapped back exactly to the host's TSval); a flow that
 * breaks it counts as an engine error.
 *
 * Packets go through cfr_engine_process() one at a time because each
 * depends on the previous one's result (the answer needs the alias).
 *
 * With several gateways (docs/scale-out.md) every gateway is an engine of
 * its own on a disjoint slice of the pools, and a line's flows all go
 * through its home gateway's, as the lab's access router sends them. The
 * front door sees the slice in every alias: the IPv6 anonymity unit is
 * then the slice (the engine's pool prefix), not the /64, and beside the
 * set on a unit the driver counts the subscribers live on the gateway, the
 * crowd an alias's slice leaves.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

struct live {
	uint64_t unit;
	uint64_t t0_ms, flow_no;
	uint32_t sub, host, remote;
	uint32_t obs_idx; /* its record in the front door's view */
	uint32_t isn, risn, ts_off;
	uint32_t ts_seen; /* TSval of the first packet as the front door saw it */
	uint16_t sport, aport, rport;
	uint8_t family, proto;
	bool has_ts, ok;
	uint8_t gw; /* the line's home gateway: its engine */
	uint8_t alias[16];
};

struct ev {
	uint64_t end_ms;
	uint32_t slot;
};

struct driver {
	const struct drive_row *row;
	const struct drive_opts *o;
	const struct pool_list *pools;
	struct trace tr;
	struct prng rng; /* the hosts' per-packet choices: ISNs, offsets, jitter */
	struct cfr_engine *eng[AUDIT_MAX_GATEWAYS];
	uint32_t n_eng; /* 0: no translation */
	uint32_t slice6_len;
	struct anonset *anon;
	struct anonset *gw_set, *all_set; /* the unit is the gateway, or one for all of them */
	double slice_bits;
	struct obs_vec *ov;
	struct metrics *m;
	struct live *live;
	uint32_t *free_slots;
	uint32_t n_live, cap_live, n_free;
	struct ev *heap;
	uint32_t n_heap;
	uint64_t now_ms, last_expire_s, next_snapshot_s, snapshots;
	double median_sum;
	struct sample *samples; /* watch_flow(): drive_opts.skew_samples of them */
};

/* A segment the front door times: sent at t_ms into the flow, received jitter_ms later. */
struct sample {
	double t_ms, jitter_ms;
};

static void heap_push(struct driver *d, struct ev e)
{
	uint32_t i = d->n_heap++;

	while (i > 0 && d->heap[(i - 1) / 2].end_ms > e.end_ms) {
		d->heap[i] = d->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	d->heap[i] = e;
}

static struct ev heap_pop(struct driver *d)
{
	struct ev top = d->heap[0], last = d->heap[--d->n_heap];
	uint32_t i = 0;

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= d->n_heap)
			break;
		if (c + 1 < d->n_heap && d->heap[c + 1].end_ms < d->heap[c].end_ms)
			c++;
		if (d->heap[c].end_ms >= last.end_ms)
			break;
		d->heap[i] = d->heap[c];
		i = c;
	}
	if (d->n_heap)
		d->heap[i] = last;
	return top;
}

/* A slot for a live flow; the heap and the slot array grow together. */
static int slot_get(struct driver *d, uint32_t *slot)
{
	if (d->n_free) {
		*slot = d->free_slots[--d->n_free];
		return 0;
	}
	if (d->n_live == d->cap_live) {
		uint32_t cap = d->cap_live ? d->cap_live * 2 : 1 << 14;
		struct live *l = realloc(d->live, cap * sizeof(*l));
		uint32_t *f = l ? realloc(d->free_slots, cap * sizeof(*f)) : NULL;
		struct ev *h = f ? realloc(d->heap, cap * sizeof(*h)) : NULL;

		if (l)
			d->live = l;
		if (f)
			d->free_slots = f;
		if (!h)
			return -ENOMEM;
		d->heap = h;
		d->cap_live = cap;
	}
	*slot = d->n_live++;
	return 0;
}

/* Advance the simulated clock: expire once a second, snapshot the engine's own count. */
static void clock_to(struct driver *d, uint64_t t_ms)
{
	uint32_t g;

	d->now_ms = t_ms;
	if (!d->n_eng)
		return;
	if (t_ms / 1000 != d->last_expire_s) {
		d->last_expire_s = t_ms / 1000;
		for (g = 0; g < d->n_eng; g++)
			cfr_engine_expire(d->eng[g], t_ms);
	}
	if (t_ms / 1000 >= d->next_snapshot_s) {
		d->next_snapshot_s = t_ms / 1000 + d->o->snapshot_s;
		for (g = 0; g < d->n_eng; g++) {
			struct cfr_anon_stats a;

			cfr_engine_anonymity(d->eng[g], &a);
			if (a.aliases_in_use[CFR_FAMILY_V4]) {
				d->median_sum += a.median[CFR_FAMILY_V4];
				d->snapshots++;
			}
		}
	}
}

/* Run one packet through <l>'s gateway; false (and an error counted) if it was dropped. */
static bool engine_pass(struct driver *d, const struct live *l, uint8_t *buf, uint32_t len)
{
	struct cfr_pkt pkt = {.data = buf, .len = len};

	cfr_engine_process(d->eng[l->gw], &pkt, 1, d->now_ms);
	if (pkt.verdict != CFR_VERDICT_FORWARD) {
		d->m->engine_errors++;
		return false;
	}
	return true;
}

static void host_addr(const struct driver *d, const struct live *l, uint8_t out[16])
{
	memset(out, 0, 16);
	if (l->family == CFR_FAMILY_V4)
		sub_addr4(l->sub, out);
	else
		host_addr6(&d->tr, l->sub, l->host, out);
}

/* A 1 kHz TCP clock on the host's quartz (Linux since 4.13: TCP_TS_HZ). */
static uint32_t host_tsval(const struct driver *d, const struct live *l, double t_ms)
{
	const struct host *h = &d->tr.hosts[l->host];
	uint32_t base = h->os == OS_LEGACY_TS ? h->ts_base : l->ts_off;

	return base + (uint32_t)(uint64_t)(t_ms * (1.0 + (double)h->skew));
}

static int sample_cmp(const void *a, const void *b)
{
	double x = ((const struct sample *)a)->t_ms, y = ((const struct sample *)b)->t_ms;

	return (x > y) - (x < y);
}

/*
 * One segment of the host's, sent at <t_ms> into the flow, through the
 * engine (if the row has one); returns the TSval the front door reads in
 * *<seen>, false if the engine dropped it or sent no timestamp.
 */
static bool host_segment(struct driver *d, const struct live *l, double t_ms, uint8_t flags,
                         uint32_t *seen)
{
	uint8_t buf[PKT_MAX], host[16], remote[16];
	struct pkt_spec s;
	struct pkt_view v;
	uint32_t len;

	*seen = host_tsval(d, l, (double)l->t0_ms + t_ms);
	if (!d->n_eng)
		return true;
	host_addr(d, l, host);
	remote_addr(l->remote, l->family, remote);
	memset(&s, 0, sizeof(s));
	s.family = l->family;
	s.proto = l->proto;
	s.src = host;
	s.dst = remote;
	s.sport = l->sport;
	s.dport = l->rport;
	s.ttl = 64;
	s.tcp_flags = flags;
	s.seq = l->isn + 1;
	s.ack = l->risn + 1;
	s.has_ts = true;
	s.tsval = *seen;
	s.tsecr = (uint32_t)((double)l->t0_ms + t_ms); /* the remote's clock: a plain ms count */
	len = pkt_build(buf, &s);
	if (!engine_pass(d, l, buf, len))
		return false;
	if (!pkt_parse(buf, len, &v) || !v.has_ts) {
		d->m->engine_errors++;
		return false;
	}
	*seen = v.tsval;
	return true;
}

/*
 * The front door watches a TCP flow with timestamps from its first segment
 * (the SYN, already through the engine: l->ts_seen) to its last (the FIN,
 * sent here) and fits the clock rate of the TSvals it receives. In between
 * it samples about one segment per second, at most skew_samples in all,
 * each arriving after queueing jitter; the TSval tick is whole
 * milliseconds, so quantisation is in too. Every sample is a segment of the
 * host's through the engine, in time order. Returns false if the engine
 * dropped one (no estimate then), and *<fin_host>, *<fin_seen> are the
 * FIN's TSval as the host sent it and as the front door received it.
 */
static bool watch_flow(struct driver *d, struct live *l, uint32_t *fin_host, uint32_t *fin_seen)
{
	const struct cfr_scrub_config *sc = &d->row->cfg.scrub;
	bool rate = d->n_eng && sc->tcp_timestamps && sc->tcp_timestamp_rate;
	double jitter = d->tr.p.skew_jitter_ms, dur = (double)(d->now_ms - l->t0_ms);
	uint32_t ts0 = host_tsval(d, l, (double)l->t0_ms), last = 0, mid, n, i;
	struct skew_fit fit = {0};
	struct prng r;
	struct obs *o = &d->ov->v[l->obs_idx];
	bool ok = true;
	double est, se;

	/* Per flow, so that every row sees the same samples whatever the engine dropped. */
	prng_seed(&r, d->tr.p.seed * 0x9e3779b97f4a7c15ull ^ l->flow_no);
	/* Once the draw of a simulated rate: kept, so that the samples stay as they were. */
	(void)prng_unit(&r);
	mid = (uint32_t)(dur / 1000);
	if (mid + 2 > d->o->skew_samples)
		mid = d->o->skew_samples > 2 ? d->o->skew_samples - 2 : 0;
	n = mid + 2;
	for (i = 0; i < n; i++) {
		d->samples[i].t_ms = i == 0 ? 0 : i == 1 ? dur : dur * prng_unit(&r);
		d->samples[i].jitter_ms = prng_exp(&r, jitter);
	}
	/* The FIN last, the others in the order the host sends them. */
	d->samples[n] = d->samples[1];
	d->samples[1] = d->samples[0];
	qsort(d->samples + 2, n - 2, sizeof(*d->samples), sample_cmp);
	for (i = 1; i <= n; i++) {
		const struct sample *sm = &d->samples[i];
		uint32_t host, seen, h, ticks;

		if (i == 1) {
			host = ts0;
			seen = l->ts_seen;
		} else if (!host_segment(d, l, sm->t_ms, i == n ? TCPF_FIN | TCPF_ACK : TCPF_ACK,
		                         &seen)) {
			return false;
		} else {
			host = host_tsval(d, l, (double)l->t0_ms + sm->t_ms);
		}
		h = host - ts0;
		ticks = seen - l->ts_seen;
		/* What the engine promises: an offset, and a rate of 1 to 2 if it has one. */
		if (ok && (ticks < last || (rate ? ticks < h || ticks > 2 * h : ticks != h))) {
			d->m->engine_errors++;
			ok = false;
		}
		last = ticks;
		skew_fit_add(&fit, sm->t_ms + sm->jitter_ms, ticks);
		*fin_host = host;
		*fin_seen = seen;
	}
	if (ok && skew_fit_result(&fit, &est, &se)) {
		est *= 1000;
		o->flags |= OBS_SKEW;
		if (est > INT32_MAX)
			est = INT32_MAX;
		if (est < INT32_MIN)
			est = INT32_MIN;
		o->skew = (int32_t)llround(est);
		o->skew_se = (float)se;
	}
	return true;
}

/*
 * The remote answers the first packet, echoing the timestamp it received
 * (<tsecr>); it must reach the host with the host's own port and TSval.
 */
static void answer(struct driver *d, struct live *l, const uint8_t *host, uint32_t tsecr,
                   uint32_t host_tsval)
{
	uint8_t buf[PKT_MAX], remote[16];
	struct pkt_spec s = {
	    .family = l->family,
	    .proto = l->proto,
	    .src = remote,
	    .dst = l->alias,
	    .sport = l->rport,
	    .dport = l->aport,
	    .tcp_flags = TCPF_SYN | TCPF_ACK,
	    .seq = l->risn,
	    .ack = l->isn + 1,
	    .has_ts = l->has_ts,
	    .tsval = (uint32_t)d->now_ms,
	    .tsecr = tsecr,
	    .ttl = 57,
	    .payload_len = l->proto == 17 ? 24 : 0,
	};
	struct pkt_view v;
	uint32_t len;

	remote_addr(l->remote, l->family, remote);
	len = pkt_build(buf, &s);
	if (!engine_pass(d, l, buf, len))
		return;
	if (!pkt_parse(buf, len, &v) || memcmp(v.dst, host, 16) != 0 || v.dport != l->sport ||
	    (l->has_ts && v.tsecr != host_tsval)) {
		d->m->engine_errors++;
		return;
	}
	l->ok = true;
}

/* The IPv6 anonymity unit with several gateways: the slice <src> is in. */
static uint64_t slice_unit(const uint8_t *src, uint32_t len)
{
	uint8_t a[16] = {0};

	memcpy(a, src, len / 8);
	if (len % 8)
		a[len / 8] = (uint8_t)(src[len / 8] & (0xff00 >> (len % 8)));
	return hash_bytes(a, sizeof(a), len);
}

int pool_slice(const struct cfr_prefix *pool, uint32_t k, uint32_t n, struct cfr_prefix *out)
{
	uint32_t bits = 0, max = pool->family == CFR_FAMILY_V4 ? 32 : 128, i;

	while ((1u << bits) < n && bits < 31)
		bits++;
	if (n == 0 || k >= n || pool->len + bits > max)
		return -EINVAL;
	*out = *pool;
	out->len = (uint8_t)(pool->len + bits);
	for (i = 0; i < bits; i++) {
		uint32_t b = pool->len + i;

		if ((k >> (bits - 1 - i)) & 1)
			out->addr[b / 8] |= (uint8_t)(0x80 >> (b % 8));
	}
	return 0;
}

/* One engine per gateway, each on its slice of the pools and 1/N of the flow table. */
static int engines_new(struct driver *d, const struct drive_row *row, uint32_t n)
{
	uint32_t g;

	if (n == 0 || n > AUDIT_MAX_GATEWAYS ||
	    (n > 1 && (row->cfg.n_pool4 != 1 || row->cfg.n_pool6 != 1)))
		return -EINVAL;
	for (g = 0; g < n; g++) {
		struct cfr_engine_config c = row->cfg;

		if (n > 1) {
			if (pool_slice(&row->cfg.pool4[0], g, n, &c.pool4[0]) != 0 ||
			    pool_slice(&row->cfg.pool6[0], g, n, &c.pool6[0]) != 0)
				return -EINVAL;
			c.max_flows = c.max_flows / n > 1024 ? c.max_flows / n : 1024;
			d->slice6_len = c.pool6[0].len;
		}
		d->eng[g] = cfr_engine_new(&c);
		if (!d->eng[g])
			return -errno;
		d->n_eng = g + 1;
	}
	return 0;
}

static int flow_start(struct driver *d, const struct flow_spec *f)
{
	struct host *h = &d->tr.hosts[f->host];
	struct subscriber *sb = &d->tr.subs[f->sub];
	uint8_t buf[PKT_MAX], src[16], dst[16];
	struct pkt_spec s;
	struct pkt_view v;
	struct live *l;
	struct obs *o;
	uint32_t slot, len, jitter;

	if (slot_get(d, &slot) != 0)
		return -ENOMEM;
	l = &d->live[slot];
	memset(l, 0, sizeof(*l));
	l->sub = f->sub;
	l->host = f->host;
	l->remote = f->remote;
	l->family = f->family;
	l->proto = f->proto;
	l->rport = 443;
	if (f->p2p) {
		/*
		 * A peer-to-peer socket (STUN, a game, WebRTC) stays bound while
		 * the host lives: one port per host, also behind the home router
		 * (an endpoint-independent one, or the application would fail).
		 */
		l->rport = 3478;
		l->sport = (uint16_t)(20000 + (f->host - sb->first_host));
	} else if (f->family == CFR_FAMILY_V4) {
		l->sport = sb->next_port4;
		sb->next_port4 = sb->next_port4 >= 60999 ? 32768 : sb->next_port4 + 1;
	} else {
		l->sport = h->next_port;
		h->next_port = h->next_port >= 60999 ? 32768 : h->next_port + 1;
	}
	l->isn = (uint32_t)prng_u64(&d->rng);
	l->risn = (uint32_t)prng_u64(&d->rng);
	l->ts_off = (uint32_t)prng_u64(&d->rng);
	l->has_ts = f->proto == 6 && h->os != OS_WINDOWS;
	l->gw = (uint8_t)(f->sub % (d->n_eng ? d->n_eng : 1));
	l->t0_ms = f->t_ms;
	l->flow_no = d->tr.emitted;
	jitter = prng_below(&d->rng, 3);
	host_addr(d, l, src);
	remote_addr(f->remote, f->family, dst);

	memset(&s, 0, sizeof(s));
	s.family = f->family;
	s.proto = f->proto;
	s.src = src;
	s.dst = dst;
	s.sport = l->sport;
	s.dport = l->rport;
	s.tcp_flags = TCPF_SYN;
	s.seq = l->isn;
	s.has_ts = l->has_ts;
	s.tsval = host_tsval(d, l, (double)f->t_ms);
	/* Global counters (legacy stacks, Windows) step with every packet the host sends. */
	if (h->os == OS_MODERN) {
		s.ip_id = (uint16_t)prng_u64(&d->rng);
	} else {
		h->ip_id = (uint16_t)(h->ip_id + 1 + prng_below(&d->rng, 16));
		s.ip_id = h->ip_id;
	}
	/* The TTL reaches the engine after the home routers and the gateway's own hop. */
	s.ttl = (uint8_t)(h->ttl0 - sb->access_hops - 1);
	s.label = h->label_host ? h->label : 1 + prng_below(&d->rng, 0xfffff);
	s.payload_len = f->proto == 17 ? 32 : 0;
	s.payload_tag = d->tr.emitted;
	len = pkt_build(buf, &s);

	if (d->n_eng && !engine_pass(d, l, buf, len)) {
		d->free_slots[d->n_free++] = slot;
		return 0;
	}
	pkt_parse(buf, len, &v);
	o = obs_push(d->ov);
	if (!o)
		return -ENOMEM;
	l->obs_idx = (uint32_t)(d->ov->n - 1);
	obs_from_view(o, &v, d->pools);
	o->sub = f->sub;
	o->t_ms = (uint32_t)(f->t_ms + sb->delay_ms + jitter);
	o->ip_id = v.ip_id;
	o->ttl = v.ttl;
	if (f->proto == 17)
		o->flags |= OBS_UDP;
	if (f->p2p)
		o->flags |= OBS_P2P;
	if (v.has_ts) {
		o->flags |= OBS_TS;
		o->tsd = v.tsval - o->t_ms;
		l->ts_seen = v.tsval;
	}
	if (d->n_eng > 1 && (o->flags & OBS_POOLED))
		o->unit = slice_unit(v.src, d->slice6_len);
	l->unit = o->unit;
	anonset_start(d->anon, l->unit, l->sub);
	if (d->n_eng) {
		uint32_t gw = anonset_start(d->gw_set, l->gw + 1u, l->sub);
		uint32_t all = anonset_start(d->all_set, 0, l->sub);

		d->slice_bits += log2((double)all / gw);
		memcpy(l->alias, v.src, 16);
		l->aport = v.sport;
		answer(d, l, src, v.tsval, s.tsval);
	}
	heap_push(d, (struct ev){f->t_ms + f->dur_ms, slot});
	return 0;
}

/* The host closes (FIN, the remote's FIN, the last ACK), or sends its last datagram. */
static void flow_end(struct driver *d, uint32_t slot)
{
	struct live *l = &d->live[slot];
	uint8_t buf[PKT_MAX], host[16], remote[16];
	uint32_t fin_host = 0, fin_seen = 0, len;
	struct pkt_spec s;
	struct pkt_view v;

	anonset_end(d->anon, l->unit, l->sub);
	if (d->n_eng) {
		anonset_end(d->gw_set, l->gw + 1u, l->sub);
		anonset_end(d->all_set, 0, l->sub);
	}
	d->free_slots[d->n_free++] = slot;
	if (d->n_eng && !l->ok)
		return;
	/* The FIN goes through the engine with the samples before it. */
	if (l->has_ts && !watch_flow(d, l, &fin_host, &fin_seen))
		return;
	/* QUIC-like flows just stop: the mapping ends when the engine expires it. */
	if (!d->n_eng || l->proto == 17)
		return;
	host_addr(d, l, host);
	remote_addr(l->remote, l->family, remote);
	memset(&s, 0, sizeof(s));
	s.family = l->family;
	s.proto = l->proto;
	s.src = host;
	s.dst = remote;
	s.sport = l->sport;
	s.dport = l->rport;
	s.ttl = 64;
	s.tcp_flags = TCPF_FIN | TCPF_ACK;
	s.seq = l->isn + 1;
	s.ack = l->risn + 1;
	if (!l->has_ts) {
		len = pkt_build(buf, &s);
		if (!engine_pass(d, l, buf, len))
			return;
	}

	/* The remote's FIN echoes the host's: the host must get its own TSval back. */
	s.src = remote;
	s.dst = l->alias;
	s.sport = l->rport;
	s.dport = l->aport;
	s.seq = l->risn + 1;
	s.ack = l->isn + 2;
	s.has_ts = l->has_ts;
	s.tsval = (uint32_t)d->now_ms;
	s.tsecr = fin_seen;
	len = pkt_build(buf, &s);
	if (engine_pass(d, l, buf, len) && l->has_ts &&
	    (!pkt_parse(buf, len, &v) || !v.has_ts || v.tsecr != fin_host))
		d->m->engine_errors++;

	s.src = host;
	s.dst = remote;
	s.sport = l->sport;
	s.dport = l->rport;
	s.tcp_flags = TCPF_ACK;
	s.seq = l->isn + 2;
	s.ack = l->risn + 2;
	s.tsval = fin_host;
	s.tsecr = (uint32_t)d->now_ms;
	len = pkt_build(buf, &s);
	engine_pass(d, l, buf, len);
}

static void end_until(struct driver *d, uint64_t t_ms)
{
	while (d->n_heap && d->heap[0].end_ms <= t_ms) {
		struct ev e = heap_pop(d);

		clock_to(d, e.end_ms);
		flow_end(d, e.slot);
	}
}

int drive_row(const struct sim_params *p, const struct drive_row *row, const struct drive_opts *o,
              const struct pool_list *pools, struct obs_vec *ov, struct metrics *m)
{
	struct driver d;
	struct flow_spec f;
	int err = 0;

	memset(&d, 0, sizeof(d));
	d.row = row;
	d.o = o;
	d.pools = pools;
	d.ov = ov;
	d.m = m;
	prng_seed(&d.rng, p->seed ^ 0x686f737473ull);
	if (trace_init(&d.tr, p) != 0 || !(d.anon = anonset_new()) || !(d.gw_set = anonset_new()) ||
	    !(d.all_set = anonset_new()) ||
	    !(d.samples = calloc(o->skew_samples + 1, sizeof(*d.samples))))
		err = -ENOMEM;
	if (!err && row->translate)
		err = engines_new(&d, row, o->gateways ? o->gateways : 1);
	while (!err && trace_next(&d.tr, &f)) {
		end_until(&d, f.t_ms);
		clock_to(&d, f.t_ms);
		err = flow_start(&d, &f);
		if ((d.tr.emitted & 0xffff) == 0)
			progress(row->name, d.tr.emitted, p->flows);
	}
	end_until(&d, UINT64_MAX);
	progress_done();
	if (!err) {
		m->anon_median = anonset_quantile(d.anon, 0.5);
		m->anon_p5 = anonset_quantile(d.anon, 0.05);
		m->gateways = o->gateways ? o->gateways : 1;
		if (d.n_eng) {
			uint64_t drops[CFR_DROP__COUNT] = {0}, created = 0, below_k = 0;
			unsigned r, g;

			for (g = 0; g < d.n_eng; g++) {
				const struct cfr_stats *st = cfr_engine_stats(d.eng[g]);

				for (r = 1; r < CFR_DROP__COUNT; r++)
					drops[r] += st->drops[r];
				created += st->flows_created;
				below_k += st->new_flows_below_k;
			}
			for (r = 1; r < CFR_DROP__COUNT; r++)
				if (drops[r])
					fprintf(stderr, "  engine dropped %llu packets: %s\n",
					        (unsigned long long)drops[r], cfr_drop_text(r));

			m->has_engine = true;
			m->below_k_share = created ? (double)below_k / created : 0;
			m->engine_median = d.snapshots ? d.median_sum / d.snapshots : 0;
			m->gw_p5 = anonset_quantile(d.gw_set, 0.05);
			m->gw_median = anonset_quantile(d.gw_set, 0.5);
			m->all_median = anonset_quantile(d.all_set, 0.5);
			m->slice_bits = anonset_flows(d.gw_set)
			                    ? d.slice_bits / (double)anonset_flows(d.gw_set)
			                    : 0;
		}
	}
	while (d.n_eng)
		cfr_engine_free(d.eng[--d.n_eng]);
	anonset_free(d.anon);
	anonset_free(d.gw_set);
	anonset_free(d.all_set);
	trace_free(&d.tr);
	free(d.live);
	free(d.free_slots);
	free(d.heap);
	free(d.samples);
	return err;
}
