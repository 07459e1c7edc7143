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
 * Packets go through cfr_engine_process() one at a time because each
 * depends on the previous one's result (the answer needs the alias).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

struct live {
	uint64_t unit;
	uint32_t sub, host, remote;
	uint32_t isn, risn, ts_off;
	uint16_t sport, aport, rport;
	uint8_t family, proto;
	bool has_ts, ok;
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
	struct cfr_engine *eng;
	struct anonset *anon;
	struct obs_vec *ov;
	struct metrics *m;
	struct live *live;
	uint32_t *free_slots;
	uint32_t n_live, cap_live, n_free;
	struct ev *heap;
	uint32_t n_heap;
	uint64_t now_ms, last_expire_s, next_snapshot_s, snapshots;
	double median_sum;
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
	d->now_ms = t_ms;
	if (!d->eng)
		return;
	if (t_ms / 1000 != d->last_expire_s) {
		d->last_expire_s = t_ms / 1000;
		cfr_engine_expire(d->eng, t_ms);
	}
	if (t_ms / 1000 >= d->next_snapshot_s) {
		struct cfr_anon_stats a;

		d->next_snapshot_s = t_ms / 1000 + d->o->snapshot_s;
		cfr_engine_anonymity(d->eng, &a);
		if (a.aliases_in_use[CFR_FAMILY_V4]) {
			d->median_sum += a.median[CFR_FAMILY_V4];
			d->snapshots++;
		}
	}
}

/* Run one packet through the engine; false (and an error counted) if it was dropped. */
static bool engine_pass(struct driver *d, uint8_t *buf, uint32_t len)
{
	struct cfr_pkt pkt = {.data = buf, .len = len};

	cfr_engine_process(d->eng, &pkt, 1, d->now_ms);
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

static uint32_t host_tsval(const struct driver *d, const struct live *l, uint64_t t_ms)
{
	const struct host *h = &d->tr.hosts[l->host];

	if (h->os == OS_LEGACY_TS)
		return h->ts_base + (uint32_t)(uint64_t)((double)t_ms * (1.0 + h->skew));
	return l->ts_off + (uint32_t)t_ms;
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
	if (!engine_pass(d, buf, len))
		return;
	if (!pkt_parse(buf, len, &v) || memcmp(v.dst, host, 16) != 0 || v.dport != l->sport ||
	    (l->has_ts && v.tsecr != host_tsval)) {
		d->m->engine_errors++;
		return;
	}
	l->ok = true;
}

static int flow_start(struct driver *d, const struct flow_spec *f)
{
	struct host *h = &d->tr.hosts[f->host];
	const struct subscriber *sb = &d->tr.subs[f->sub];
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
	l->sport = h->next_port;
	h->next_port = h->next_port >= 60999 ? 32768 : h->next_port + 1;
	l->isn = (uint32_t)prng_u64(&d->rng);
	l->risn = (uint32_t)prng_u64(&d->rng);
	l->ts_off = (uint32_t)prng_u64(&d->rng);
	l->has_ts = f->proto == 6 && h->os != OS_WINDOWS;
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
	s.tsval = host_tsval(d, l, f->t_ms);
	/* Global counters (legacy stacks, Windows) step with every packet the host sends. */
	if (h->os == OS_MODERN) {
		s.ip_id = (uint16_t)prng_u64(&d->rng);
	} else {
		h->ip_id = (uint16_t)(h->ip_id + 1 + prng_below(&d->rng, 16));
		s.ip_id = h->ip_id;
	}
	s.ttl = (uint8_t)((h->os == OS_WINDOWS ? 128 : 64) - sb->access_hops);
	s.label = h->label_host ? h->label : 1 + prng_below(&d->rng, 0xfffff);
	s.payload_len = f->proto == 17 ? 32 : 0;
	s.payload_tag = d->tr.emitted;
	len = pkt_build(buf, &s);

	if (d->eng && !engine_pass(d, buf, len)) {
		d->free_slots[d->n_free++] = slot;
		return 0;
	}
	pkt_parse(buf, len, &v);
	o = obs_push(d->ov);
	if (!o)
		return -ENOMEM;
	obs_from_view(o, &v, d->pools);
	o->sub = f->sub;
	o->t_ms = (uint32_t)(f->t_ms + sb->delay_ms + jitter);
	o->ip_id = v.ip_id;
	o->ttl = v.ttl;
	if (f->proto == 17)
		o->flags |= OBS_UDP;
	if (v.has_ts) {
		o->flags |= OBS_TS;
		o->tsd = v.tsval - o->t_ms;
	}
	l->unit = o->unit;
	anonset_start(d->anon, l->unit, l->sub);
	if (d->eng) {
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
	struct pkt_spec s;
	uint32_t len;

	anonset_end(d->anon, l->unit, l->sub);
	d->free_slots[d->n_free++] = slot;
	if (!d->eng || !l->ok)
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
	s.has_ts = l->has_ts;
	s.tsval = host_tsval(d, l, d->now_ms);
	/* QUIC-like flows just stop: the mapping ends when the engine expires it. */
	if (l->proto == 17)
		return;
	s.tcp_flags = TCPF_FIN | TCPF_ACK;
	s.seq = l->isn + 1;
	s.ack = l->risn + 1;
	len = pkt_build(buf, &s);
	engine_pass(d, buf, len);

	s.src = remote;
	s.dst = l->alias;
	s.sport = l->rport;
	s.dport = l->aport;
	s.seq = l->risn + 1;
	s.ack = l->isn + 2;
	len = pkt_build(buf, &s);
	engine_pass(d, buf, len);

	s.src = host;
	s.dst = remote;
	s.sport = l->sport;
	s.dport = l->rport;
	s.tcp_flags = TCPF_ACK;
	s.seq = l->isn + 2;
	s.ack = l->risn + 2;
	len = pkt_build(buf, &s);
	engine_pass(d, buf, len);
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
	if (trace_init(&d.tr, p) != 0 || !(d.anon = anonset_new()))
		err = -ENOMEM;
	if (!err && row->translate && !(d.eng = cfr_engine_new(&row->cfg)))
		err = -errno;
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
		if (d.eng) {
			const struct cfr_stats *st = cfr_engine_stats(d.eng);
			unsigned r;

			for (r = 1; r < CFR_DROP__COUNT; r++)
				if (st->drops[r])
					fprintf(stderr, "  engine dropped %llu packets: %s\n",
					        (unsigned long long)st->drops[r], cfr_drop_text(r));

			m->has_engine = true;
			m->below_k_share = st->flows_created
			                       ? (double)st->new_flows_below_k / st->flows_created
			                       : 0;
			m->engine_median = d.snapshots ? d.median_sum / d.snapshots : 0;
		}
	}
	cfr_engine_free(d.eng);
	anonset_free(d.anon);
	trace_free(&d.tr);
	free(d.live);
	free(d.free_slots);
	free(d.heap);
	return err;
}
