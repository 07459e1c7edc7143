/*
 * libFuzzer target: the engine, both directions, with live flows.
 *
 * A fuzzer that only feeds random bytes to an empty engine spends its time
 * in the parser: every packet is dropped before any flow code runs. So each
 * input gets a fresh engine with tiny tables, a one-address pool of eight
 * ports, short timeouts and low per-subscriber limits, primed with a few
 * real flows (TCP, UDP, ICMP echo, IPv4 and IPv6). The input is then played
 * three ways: as it is; from an authorised subscriber (source patched, IPv4
 * header checksum fixed) replayed with rising source ports until limits and
 * pool exhaustion are hit; and towards a primed flow's alias and port, as
 * if the internet answered. A clock jump past the timeouts in between makes
 * expiry and recovery run on the same state. An offload is attached that
 * claims to carry every odd flow id (cfrd's fast path, from the engine's
 * side), so expiry also keeps flows, peers and their mappings for it; a
 * last jump with the offload silent must leave no flow alive.
 *
 * Input layout: byte 0 selects ingress, strict mode and the clock jump; the
 * rest is the packet. The packet buffer is a heap copy of exactly the input
 * length, so AddressSanitizer sees any read past its end.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cfr/cfr.h>

#include "../unit/pkt.h"

#define PRIMED 6

struct primed {
	int family;
	uint8_t proto;
	uint8_t alias[16];
	uint16_t alias_port; /* ICMP echo: identifier */
	uint8_t remote[16];
	uint16_t remote_port;
};

static struct cfr_engine_config base;

/* When the fake offload last carried its flows (engine seconds); 0: it carries nothing. */
static uint32_t offload_seen_s;

static uint32_t offload_last_seen(void *ctx, uint32_t id, const struct cfr_flow_view *v)
{
	(void)ctx;
	(void)v;
	return id % 2 ? offload_seen_s : 0;
}

static void offload_removed(void *ctx, uint32_t id, const struct cfr_flow_view *v)
{
	(void)ctx;
	(void)id;
	(void)v;
}

static const struct cfr_offload offload = {
    .last_seen = offload_last_seen,
    .removed = offload_removed,
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	cfr_engine_config_defaults(&base);
	if (cfr_prefix_parse("192.0.2.1/32", &base.pool4[0]) < 0 ||
	    cfr_prefix_parse("2001:db8:a1::/120", &base.pool6[0]) < 0 ||
	    cfr_prefix_parse("100.64.0.0/10", &base.subscribers[0]) < 0 ||
	    cfr_prefix_parse("2001:db8:100::/48", &base.subscribers[1]) < 0 ||
	    cfr_prefix_parse("10.0.0.0/8", &base.subscribers[2]) < 0)
		abort();
	base.n_pool4 = 1;
	base.n_pool6 = 1;
	base.n_subscribers = 3;
	base.subscriber_ingress[2] = 1; /* a line with its own device */
	base.port_min = 1024;
	base.port_max = 1031;
	for (unsigned i = 0; i < CFR_TIMEOUT__COUNT; i++)
		base.timeout[i] = 1 + i % 3;
	base.max_flows = 24;
	base.max_frags = 4;
	base.max_subscribers = 4;
	base.epoch_s = 5;
	base.limits.flows_per_subscriber[CFR_PROTO_TCP] = 6;
	base.limits.flows_per_subscriber[CFR_PROTO_UDP] = 6;
	base.limits.flows_per_subscriber[CFR_PROTO_ICMP] = 3;
	base.limits.half_open_per_subscriber = 4;
	base.limits.new_flows_per_s = 20;
	base.limits.new_flows_burst = 10;
	return 0;
}

/* Process one copy of <len> bytes of <src> on a heap buffer of exactly that size. */
static struct cfr_pkt run_one(struct cfr_engine *eng, const uint8_t *src, size_t len,
                              uint16_t ingress, uint64_t now_ms)
{
	uint8_t *buf = malloc(len ? len : 1);
	struct cfr_pkt p = {.data = buf, .len = (uint32_t)len, .ingress = ingress};

	if (buf == NULL)
		abort();
	memcpy(buf, src, len);
	cfr_engine_process(eng, &p, 1, now_ms);
	/* A forwarded packet keeps its length and must still parse as what it claims. */
	if (p.verdict == CFR_VERDICT_FORWARD && p.len != len)
		abort();
	free(buf);
	return p;
}

/* Open a flow from a subscriber and remember its translated (outside) tuple. */
static void prime(struct cfr_engine *eng, struct primed *out, unsigned *n, int family,
                  uint8_t proto, uint16_t sport, uint64_t now_ms)
{
	struct pkt_spec s;
	struct pkt p;
	struct pkt_info pi;
	static const uint8_t payload[16] = "cfr fuzz primer";

	memset(&s, 0, sizeof(s));
	s.family = family;
	pkt_addr(family, family == 4 ? "100.64.1.2" : "2001:db8:100:1::2", s.src);
	pkt_addr(family, family == 4 ? "203.0.113.10" : "2001:db8:f::10", s.dst);
	s.proto = proto;
	s.sport = sport;
	s.dport = proto == 6 ? 443 : 7;
	s.tcp_flags = PKT_TCP_SYN;
	s.tcp_ts = true;
	s.tsval = 1000;
	s.icmp_type = family == 4 ? 8 : 128;
	s.payload = payload;
	s.payload_len = sizeof(payload);
	pkt_build(&p, &s);
	{
		struct cfr_pkt r = {.data = p.data, .len = p.len};

		cfr_engine_process(eng, &r, 1, now_ms);
		if (r.verdict != CFR_VERDICT_FORWARD)
			return;
	}
	if (pkt_parse(p.data, p.len, false, &pi) < 0)
		return;
	out[*n].family = family;
	out[*n].proto = pi.proto;
	memcpy(out[*n].alias, pi.src, 16);
	out[*n].alias_port = pi.sport;
	memcpy(out[*n].remote, pi.dst, 16);
	out[*n].remote_port = pi.dport;
	(*n)++;
}

/* Offsets of the IP addresses and the first transport bytes, if the header allows. */
static bool l4_offset(const uint8_t *d, size_t len, size_t *l4)
{
	if (len >= 20 && d[0] >> 4 == 4) {
		*l4 = (size_t)(d[0] & 15) * 4;
		return *l4 >= 20 && *l4 <= len;
	}
	if (len >= 40 && d[0] >> 4 == 6) {
		*l4 = 40; /* extension headers are the fuzzer's business */
		return true;
	}
	return false;
}

static void fix_ip4(uint8_t *d, size_t len)
{
	if (len >= 20 && d[0] >> 4 == 4 && (size_t)(d[0] & 15) * 4 <= len && (d[0] & 15) >= 5)
		pkt_fix_ip4_csum(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfr_engine_config cfg = base;
	struct primed flows[PRIMED];
	struct cfr_engine *eng;
	const uint8_t *pkt;
	uint8_t *work;
	uint64_t now = 1000;
	unsigned n = 0;
	uint16_t ingress;
	size_t len, l4;
	uint8_t ctl;

	if (size < 1 || size > 65535 + 1)
		return 0;
	ctl = data[0];
	pkt = data + 1;
	len = size - 1;
	cfg.strict_ingress = ctl & 1;
	ingress = (ctl >> 1) & 1;
	eng = cfr_engine_new(&cfg);
	if (eng == NULL)
		abort();
	cfr_engine_set_offload(eng, &offload);
	offload_seen_s = 0;

	prime(eng, flows, &n, 4, 6, 40000, now);
	prime(eng, flows, &n, 4, 17, 40001, now);
	prime(eng, flows, &n, 4, 1, 40002, now);
	prime(eng, flows, &n, 6, 6, 40003, now);
	prime(eng, flows, &n, 6, 17, 40004, now);
	prime(eng, flows, &n, 6, 58, 40005, now);

	/* 1. As it came. */
	run_one(eng, pkt, len, ingress, now);

	work = malloc(len ? len : 1);
	if (work == NULL)
		abort();

	/* 2. From an authorised subscriber, many source ports: limits and exhaustion. */
	memcpy(work, pkt, len);
	if (l4_offset(work, len, &l4)) {
		bool v4 = work[0] >> 4 == 4;
		uint8_t sub[16];

		pkt_addr(v4 ? 4 : 6, v4 ? "100.64.1.2" : "2001:db8:100:1::2", sub);
		memcpy(work + (v4 ? 12 : 8), sub, v4 ? 4 : 16);
		fix_ip4(work, len);
		for (unsigned i = 0; i < 40; i++) {
			if (l4 + 2 <= len)
				pkt_put16(work + l4, (uint16_t)(20000 + i));
			run_one(eng, work, len, (uint16_t)(ctl & 4 ? ingress : 0),
			        now + (ctl & 8 ? i * 50u : 0));
		}
	}

	/* 3. Towards a primed flow's alias, as the remote would answer. */
	if (n > 0 && l4_offset(pkt, len, &l4)) {
		const struct primed *f = &flows[(ctl >> 4) % n];
		bool v4 = pkt[0] >> 4 == 4;

		memcpy(work, pkt, len);
		if ((f->family == 4) == v4) {
			memcpy(work + (v4 ? 12 : 8), f->remote, v4 ? 4 : 16);
			memcpy(work + (v4 ? 16 : 24), f->alias, v4 ? 4 : 16);
			if (l4 + 4 <= len) {
				if (f->proto == 6 || f->proto == 17) {
					pkt_put16(work + l4, f->remote_port);
					pkt_put16(work + l4 + 2, f->alias_port);
				} else if (l4 + 6 <= len) {
					pkt_put16(work + l4 + 4,
					          f->alias_port); /* echo identifier */
				}
			}
			fix_ip4(work, len);
		}
		run_one(eng, work, len, ingress, now);
		run_one(eng, work, len, 0, now);
	}

	/* 4. Past every timeout: expiry (the offload saw its flows a second ago), then the same
	 * packets. */
	now += (ctl & 0x80 ? 4000 : 1000);
	offload_seen_s = (uint32_t)(now / 1000) - 1;
	cfr_engine_expire(eng, now);
	for (uint32_t id = 0; id <= cfg.max_flows + 1; id++) {
		struct cfr_flow_view v;

		cfr_engine_flow_view(eng, id, &v);
	}
	run_one(eng, pkt, len, ingress, now);
	if (ctl & 0x40)
		cfr_engine_epoch_rotate(eng, now);
	run_one(eng, work, len, 0, now + 1);

	/* 5. The offload silent, every timeout long past: nothing may stay alive. */
	offload_seen_s = 0;
	for (unsigned i = 1; i <= 3; i++)
		cfr_engine_expire(eng, now + i * 60000);
	for (unsigned f = 0; f < CFR_FAMILY__COUNT; f++)
		for (unsigned p = 0; p < CFR_PROTO__COUNT; p++)
			if (cfr_engine_stats(eng)->flows_active[f][p] != 0)
				abort();

	free(work);
	cfr_engine_free(eng);
	return 0;
}
