/*
 * The engine's front: configuration, creation, the batch loop, expiry and
 * counters. All memory is allocated at creation, once, each module
 * allocating its own tables (cfr_*_init()); the packet path allocates
 * nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "acct.h"
#include "anon.h"
#include "cfr/internal/compiler.h"
#include "engine-t.h"
#include "flow.h"
#include "frag.h"
#include "guard.h"
#include "mapping.h"
#include "parse.h"
#include "pool.h"
#include "prefix.h"
#include "translate.h"

static const char *const drop_names[CFR_DROP__COUNT] = {[CFR_DROP_NONE] = "none",
#define CFR_DROP_NAME_(id, name, text) [CFR_DROP_##id] = name,
                                                        CFR_DROP_REASONS(CFR_DROP_NAME_)
#undef CFR_DROP_NAME_
};

static const char *const drop_texts[CFR_DROP__COUNT] = {[CFR_DROP_NONE] = "not dropped",
#define CFR_DROP_TEXT_(id, name, text) [CFR_DROP_##id] = text,
                                                        CFR_DROP_REASONS(CFR_DROP_TEXT_)
#undef CFR_DROP_TEXT_
};

const char *cfr_drop_name(enum cfr_drop reason)
{
	return (unsigned)reason < CFR_DROP__COUNT ? drop_names[reason] : "unknown";
}

const char *cfr_drop_text(enum cfr_drop reason)
{
	return (unsigned)reason < CFR_DROP__COUNT ? drop_texts[reason] : "unknown";
}

/*
 * Defaults: RFC 5382 REQ-5 (established TCP at least 2 h 4 min; transitory
 * 4 min), RFC 4787 REQ-5 (UDP at least 2 min, 5 min recommended), RFC 5508
 * REQ-1 (ICMP query at least 60 s).
 */
void cfr_engine_config_defaults(struct cfr_engine_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->port_min = 1024;
	cfg->port_max = 65535;
	cfg->timeout[CFR_TIMEOUT_TCP_TRANSITORY] = 240;
	cfg->timeout[CFR_TIMEOUT_TCP_ESTABLISHED] = 7440;
	cfg->timeout[CFR_TIMEOUT_UDP] = 300;
	cfg->timeout[CFR_TIMEOUT_ICMP] = 60;
	/*
	 * RFC 5382 REQ-5's 4 minutes for partially open connections: Linux
	 * retransmits an unanswered SYN after 1, 3, 7, 15, 31 and 63 s, and a
	 * shorter timeout gives a slow handshake a new alias half-way. Half-open
	 * floods are held by the per-subscriber half-open limit instead.
	 */
	cfg->timeout[CFR_TIMEOUT_TCP_EMBRYONIC] = 240;
	cfg->limits.flows_per_subscriber[CFR_PROTO_TCP] = 8192;
	cfg->limits.flows_per_subscriber[CFR_PROTO_UDP] = 8192;
	cfg->limits.flows_per_subscriber[CFR_PROTO_ICMP] = 256;
	cfg->limits.half_open_per_subscriber = 512;
	/* 64 subscribers' worth of the default 4096: one cannot crowd out the rest. */
	cfg->limits.frags_per_subscriber = 64;
	cfg->limits.new_flows_per_s = 500;
	cfg->limits.new_flows_burst = 2000;
	cfg->max_flows = 1u << 20;
	cfg->max_frags = 4096;
	cfg->policy[CFR_FAMILY_V4] = CFR_POLICY_PER_FLOW;
	cfg->policy[CFR_FAMILY_V6] = CFR_POLICY_PER_FLOW;
	/*
	 * Issue 17: TLS, QUIC and so ECH (TCP, and UDP to 443) keep per-flow
	 * aliases; other UDP (STUN, games, peer-to-peer) gets one mapping per
	 * subscriber socket with address-dependent filtering (RFC 4787 REQ-1,
	 * REQ-8). TCP that no class names is per-flow.
	 */
	cfg->classes[0] = (struct cfr_class){.proto = CFR_PROTO_UDP,
	                                     .mapping = CFR_MAPPING_PER_FLOW,
	                                     .port_min = 443,
	                                     .port_max = 443};
	cfg->classes[1] = (struct cfr_class){.proto = CFR_PROTO_UDP,
	                                     .mapping = CFR_MAPPING_ENDPOINT_INDEPENDENT,
	                                     .filtering = CFR_FILTERING_ADDRESS_DEPENDENT,
	                                     .port_min = 0,
	                                     .port_max = 65535};
	cfg->n_classes = 2;
	cfg->epoch_s = 600;
	cfg->scrub.tcp_timestamps = true;
	cfg->scrub.tcp_timestamp_rate = true;
	cfg->scrub.ip_id = true;
	cfg->scrub.flow_label = true;
	/*
	 * One TTL for every subscriber: initial TTLs 64, 128 and 255 from up to
	 * three home-router hops behind the gateway reach cfrd at 60 or more
	 * (the gateway's own hop included), so a cap below that leaves them all
	 * alike. A cap of 64 let Linux and Windows apart (docs/privacy.md).
	 */
	cfg->scrub.ttl_cap = 56;
	/* RIPE-690 and common practice: a /56 per customer (a /48 for some). */
	cfg->subscriber_prefix6 = 56;
	/* A dual-stack line counts twice (its IPv4 address and its IPv6 prefix). */
	cfg->max_subscribers = 1u << 18;
	cfg->anon_k = 8;
}

uint8_t cfr_config_ident6_max(const struct cfr_engine_config *cfg)
{
	uint8_t max = cfg->subscriber_prefix6;
	unsigned i;

	for (i = 0; i < cfg->n_subscribers; i++)
		if (cfg->subscriber_ident6[i] > max)
			max = cfg->subscriber_ident6[i];
	return max;
}

/* Fail with <what> as the reason, for cfr_engine_config_check(). */
static int invalid(const char **why, const char *what)
{
	if (why)
		*why = what;
	return -EINVAL;
}

/* The most open filter each mapping can have: none lets in more than the mapping holds. */
static const uint8_t most_open[CFR_MAPPING__COUNT] = {
    [CFR_MAPPING_PER_FLOW] = CFR_FILTERING_ADDRESS_PORT_DEPENDENT,
    [CFR_MAPPING_ENDPOINT_INDEPENDENT] = CFR_FILTERING_ENDPOINT_INDEPENDENT,
    [CFR_MAPPING_ADDRESS_DEPENDENT] = CFR_FILTERING_ADDRESS_DEPENDENT,
};

int cfr_engine_config_check(const struct cfr_engine_config *cfg, const char **why)
{
	uint64_t pool4_size = 0;
	unsigned i;

	if (cfg->n_pool4 + cfg->n_pool6 == 0)
		return invalid(why, "no alias pool prefix");
	if (cfg->n_subscribers == 0)
		return invalid(why, "no subscriber prefix");
	if (!cfr_prefix_list_valid(cfg->pool4, cfg->n_pool4, CFR_MAX_POOL_PREFIXES,
	                           CFR_FAMILY_V4) ||
	    !cfr_prefix_list_valid(cfg->pool6, cfg->n_pool6, CFR_MAX_POOL_PREFIXES,
	                           CFR_FAMILY_V6) ||
	    !cfr_prefix_list_valid(cfg->subscribers, cfg->n_subscribers,
	                           CFR_MAX_SUBSCRIBER_PREFIXES, -1))
		return invalid(why, "too many prefixes, or a prefix of the wrong family or length");
	for (i = 0; i < cfg->n_pool6; i++)
		if (cfg->pool6[i].len > CFR_POOL6_MAX_LEN)
			return invalid(why, "an IPv6 pool prefix is too small to hide anyone in");
	for (i = 0; i < cfg->n_pool4; i++)
		pool4_size += 1ull << (32 - cfg->pool4[i].len);
	if (pool4_size > CFR_MAX_POOL4_ADDRESSES)
		return invalid(why, "the IPv4 pools hold too many addresses");
	for (i = 0; i < CFR_FAMILY__COUNT; i++)
		if (cfg->policy[i] >= CFR_POLICY__COUNT)
			return invalid(why, "unknown alias policy");
	if (cfg->n_classes > CFR_MAX_CLASSES)
		return invalid(why, "too many traffic classes");
	for (i = 0; i < cfg->n_classes; i++) {
		const struct cfr_class *c = &cfg->classes[i];

		if ((c->proto != CFR_PROTO_TCP && c->proto != CFR_PROTO_UDP) ||
		    c->mapping >= CFR_MAPPING__COUNT || c->filtering >= CFR_FILTERING__COUNT ||
		    c->port_min > c->port_max)
			return invalid(why, "a traffic class has an unknown protocol, mapping or "
			                    "filtering, or a reversed port range");
		/* A TCP mapping's remotes open their flows with SYNs of its own (mapping.c). */
		if (c->mapping != CFR_MAPPING_PER_FLOW && c->proto == CFR_PROTO_TCP &&
		    c->filtering != CFR_FILTERING_ADDRESS_PORT_DEPENDENT)
			return invalid(why,
			               "a TCP class with a mapping filters by address and port "
			               "only");
		if (c->filtering > most_open[c->mapping])
			return invalid(why, "a traffic class filters less than it maps");
	}
	for (i = 0; i < cfg->n_subscribers; i++)
		if (cfg->subscriber_ident6[i] > 128)
			return invalid(why,
			               "a subscriber prefix's IPv6 identity is longer than 128");
	if (cfg->epoch_s == 0)
		return invalid(why, "the epoch is 0 seconds long");
	if (cfg->subscriber_prefix6 > 128)
		return invalid(why, "the IPv6 subscriber prefix is longer than 128");
	if (cfg->max_subscribers == 0 || cfg->max_subscribers > CFR_MAX_SUBSCRIBERS)
		return invalid(why, "max subscribers is 0 or above the engine's limit");
	if (cfg->port_min == 0 || cfg->port_min > cfg->port_max)
		return invalid(why, "the alias port range is empty or starts at 0");
	for (i = 0; i < CFR_TIMEOUT__COUNT; i++)
		if (cfg->timeout[i] == 0)
			return invalid(why, "a timeout is 0");
	if (cfg->max_flows == 0 || cfg->max_flows > CFR_MAX_FLOWS)
		return invalid(why, "max flows is 0 or above the engine's limit");
	if (cfg->max_frags == 0 || cfg->max_frags > CFR_MAX_FRAGS)
		return invalid(why, "max fragments is 0 or above the engine's limit");
	if (why)
		*why = NULL;
	return 0;
}

struct cfr_engine *cfr_engine_new(const struct cfr_engine_config *cfg)
{
	struct cfr_engine *eng;

	if (cfr_engine_config_check(cfg, NULL) != 0) {
		errno = EINVAL;
		return NULL;
	}
	eng = calloc(1, sizeof(*eng));
	if (!eng)
		return NULL;
	eng->cfg = *cfg;
	cfr_classes_changed(eng);
	eng->memory = sizeof(*eng);
	/* Each module allocates its tables and adds them to eng->memory. */
	if (cfr_flow_init(eng) != 0 || cfr_frag_init(eng) != 0 || cfr_pools_init(eng) != 0 ||
	    cfr_anon_init(eng) != 0 || cfr_acct_init(eng) != 0 || cfr_guard_init(eng) != 0) {
		cfr_engine_free(eng);
		errno = ENOMEM;
		return NULL;
	}
	eng->rng.used = CFR_RNG_BUF;
	randombytes_buf(eng->hash_key, sizeof(eng->hash_key));
	eng->stats.max_flows = cfg->max_flows;
	return eng;
}

void cfr_engine_free(struct cfr_engine *eng)
{
	if (!eng)
		return;
	cfr_flow_free(eng);
	cfr_frag_free(eng);
	cfr_pools_free(eng);
	cfr_anon_free(eng);
	cfr_acct_free(eng);
	cfr_guard_free(eng);
	sodium_memzero(eng, sizeof(*eng));
	free(eng);
}

/*
 * Direction from the addresses alone, before full parsing, so that even a
 * malformed packet is counted on the side it came from. Packets to the pool
 * come from the internet, everything else from subscribers; a pool prefix
 * a reload removed still counts while its flows drain (reconfigure.c).
 */
static uint8_t classify(const struct cfr_engine *eng, const uint8_t *buf, uint32_t len)
{
	if (len >= 20 && buf[0] >> 4 == 4)
		return cfr_in_live_pool(eng, CFR_FAMILY_V4, buf + 16) ? CFR_DIR_IN : CFR_DIR_OUT;
	if (len >= 40 && buf[0] >> 4 == 6)
		return cfr_in_live_pool(eng, CFR_FAMILY_V6, buf + 24) ? CFR_DIR_IN : CFR_DIR_OUT;
	return CFR_DIR_OUT;
}

/*
 * An ICMP error to an alias about a packet that went to a subscriber: the
 * subscriber's own stack, or the gateway's, answering a hairpinned packet.
 * It is that subscriber's outbound error first (translate.c).
 */
static bool quotes_subscriber(const struct cfr_engine *eng, const struct cfr_pkt *pkt,
                              const struct cfr_parsed *p)
{
	uint32_t inner = p->l4_off + 8, dst = p->family == CFR_FAMILY_V4 ? 16 : 24;

	if (p->icmp_kind != CFR_ICMP_ERROR || inner + dst + p->addr_len > p->end)
		return false;
	return cfr_prefix_list_has(eng->cfg.subscribers, eng->cfg.n_subscribers, p->family,
	                           pkt->data + inner + dst);
}

static enum cfr_drop process_one(struct cfr_engine *eng, struct cfr_pkt *pkt, struct cfr_parsed *p,
                                 enum cfr_drop reason)
{
	bool from_subscriber;

	if (reason != CFR_DROP_NONE)
		return reason;
	if (pkt->csum_partial) {
		if (!p->has_l4 || (p->proto != CFR_IPPROTO_TCP && p->proto != CFR_IPPROTO_UDP))
			return CFR_DROP_PARTIAL_CHECKSUM;
		p->csum_partial = true;
	}
	from_subscriber = cfr_prefix_list_has(eng->cfg.subscribers, eng->cfg.n_subscribers,
	                                      p->family, pkt->data + p->src_off);
	/* To an alias from a subscriber, or an error about a packet to one: hairpinning. */
	if (pkt->dir == CFR_DIR_IN && (from_subscriber || quotes_subscriber(eng, pkt, p)))
		return cfr_translate_hairpin(eng, pkt, p);
	/* An error may come from a router or the gateway itself (translate.c). */
	if (pkt->dir == CFR_DIR_OUT && !from_subscriber && p->icmp_kind != CFR_ICMP_ERROR)
		return CFR_DROP_UNAUTHORISED_SOURCE;
	reason = cfr_guard_packet(eng, pkt, p);
	if (reason != CFR_DROP_NONE)
		return reason;
	return cfr_translate(eng, pkt, p);
}

/*
 * Callers in several threads read their clock before they get the engine,
 * so a call may bring a time older than the last one: keep the later. Expiry
 * deadlines and the LRU order both assume a clock that never goes back.
 */
static uint64_t monotonic(const struct cfr_engine *eng, uint64_t now_ms)
{
	return now_ms < eng->now_ms ? eng->now_ms : now_ms;
}

static void set_clock(struct cfr_engine *eng, uint64_t now_ms)
{
	now_ms = monotonic(eng, now_ms);
	eng->now_ms = now_ms;
	eng->now_s = (uint32_t)(now_ms / 1000);
	if (unlikely(eng->stats.epoch == 0))
		cfr_epoch_new(eng, now_ms); /* the first epoch starts with the first clock */
	else
		cfr_epoch_check(eng, now_ms);
}

void cfr_engine_epoch_rotate(struct cfr_engine *eng, uint64_t now_ms)
{
	/* Not set_clock(): an epoch due by time would end too, ending two at once. */
	now_ms = monotonic(eng, now_ms);
	eng->now_ms = now_ms;
	eng->now_s = (uint32_t)(now_ms / 1000);
	cfr_epoch_new(eng, now_ms);
	eng->stats.epochs_rotated++;
}

/* Packets parsed and prefetched ahead of their translation (VPP-style). */
#define PREFETCH_CHUNK 16

/*
 * Large tables make each lookup two cache misses (bucket, then record).
 * Parsing a chunk first and touching its buckets, then its records, lets
 * the memory system fetch them for all packets at once instead of one
 * packet at a time.
 */
static void prefetch_chunk(struct cfr_engine *eng, struct cfr_pkt *pkts, unsigned m,
                           struct cfr_parsed *parsed, enum cfr_drop *preason)
{
	uint32_t bucket[PREFETCH_CHUNK];
	uint32_t *table[PREFETCH_CHUNK];
	unsigned j;

	for (j = 0; j < m; j++) {
		struct cfr_pkt *pkt = &pkts[j];

		pkt->dir = classify(eng, pkt->data, pkt->len);
		preason[j] = cfr_parse(pkt->data, pkt->len, false, &parsed[j]);
		table[j] = NULL;
		if (preason[j] == CFR_DROP_NONE &&
		    cfr_flow_bucket_of(eng, pkt->data, &parsed[j], pkt->dir, &table[j], &bucket[j]))
			__builtin_prefetch(&table[j][bucket[j]]);
	}
	for (j = 0; j < m; j++) {
		uint32_t idx = table[j] ? table[j][bucket[j]] : 0;

		if (!idx)
			continue;
		/* A 60-byte record may straddle two lines: fetch both ends. */
		__builtin_prefetch(&eng->flow.flows[idx]);
		__builtin_prefetch((const uint8_t *)&eng->flow.flows[idx + 1] - 1);
		/* IPv6 addresses live in the parallel array: a second miss, unless fetched too. */
		if (parsed[j].family == CFR_FAMILY_V6) {
			__builtin_prefetch(&eng->flow.flows6[idx]);
			__builtin_prefetch((const uint8_t *)&eng->flow.flows6[idx + 1] - 1);
		}
	}
}

void cfr_engine_process(struct cfr_engine *eng, struct cfr_pkt *pkts, unsigned n, uint64_t now_ms)
{
	struct cfr_parsed parsed[PREFETCH_CHUNK];
	enum cfr_drop preason[PREFETCH_CHUNK];
	unsigned i;

	set_clock(eng, now_ms);
	for (i = 0; i < n; i++) {
		struct cfr_pkt *pkt = &pkts[i];
		uint32_t len = pkt->len; /* as read: a scrubber may change it */
		enum cfr_drop reason;

		pkt->flow = 0;
		if (i % PREFETCH_CHUNK == 0)
			prefetch_chunk(eng, pkt, n - i < PREFETCH_CHUNK ? n - i : PREFETCH_CHUNK,
			               parsed, preason);
		reason =
		    process_one(eng, pkt, &parsed[i % PREFETCH_CHUNK], preason[i % PREFETCH_CHUNK]);
		pkt->reason = (uint8_t)reason;
		eng->stats.rx[pkt->dir]++; /* after process_one, which may correct dir */
		eng->stats.rx_bytes[pkt->dir] += len;
		if (likely(reason == CFR_DROP_NONE)) {
			pkt->verdict = CFR_VERDICT_FORWARD;
			eng->stats.tx[pkt->dir]++;
			eng->stats.tx_bytes[pkt->dir] += pkt->len;
		} else {
			pkt->verdict = CFR_VERDICT_DROP;
			eng->stats.drops[reason]++;
		}
	}
}

void cfr_engine_expire(struct cfr_engine *eng, uint64_t now_ms)
{
	set_clock(eng, now_ms);
	cfr_flow_expire(eng);
	cfr_frag_sweep(eng);
}

const struct cfr_stats *cfr_engine_stats(const struct cfr_engine *eng)
{
	return &eng->stats;
}

size_t cfr_engine_memory(const struct cfr_engine *eng)
{
	return eng->memory;
}
