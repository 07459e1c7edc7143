/*
 * The AF_XDP fast path's decisions around the engine (src/cfrd/xdp_route.c,
 * which io_xdp.c asks), with no socket and no privilege: which port a
 * translated frame leaves by; the subscriber MACs it learns (only the
 * neighbour table's, from the program's metadata, only from accepted
 * packets whose frame agreed, and only for a few seconds), so that a
 * spoofed frame on an inside port that several subscribers share cannot
 * redirect another's replies; replies with no fresh MAC, too big for the
 * port or for a port without this worker's socket going through TUN
 * instead; the guard's egress promise kept without netfilter (no
 * subscriber address out of an outside port); the forward rules that stop
 * cfrd from starting (src/cfrd/forward_rules.c); and the second TTL hop
 * with its IPv4 header checksum. Both objects are linked and reached
 * through their headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cfrd/forward_rules.h"
#include "../../src/cfrd/xdp_route.h"
#include "pkt.h"

#define SUB4    "100.64.1.2"
#define SUB6    "2001:db8:100:1::2"
#define ALIAS4  "192.0.2.9"
#define ALIAS6  "2001:db8:a1::9"
#define REMOTE4 "203.0.113.10"
#define REMOTE6 "2001:db8:f::10"

static const uint8_t MAC_IN[ETH_ALEN] = {2, 0, 0, 0, 0, 1};    /* the gateway's inside port */
static const uint8_t MAC_OUT[ETH_ALEN] = {2, 0, 0, 0, 0, 2};   /* its outside port */
static const uint8_t MAC_SUB[ETH_ALEN] = {2, 0, 0, 0, 1, 1};   /* the subscriber (the victim) */
static const uint8_t MAC_HOP[ETH_ALEN] = {2, 0, 0, 0, 2, 2};   /* the upstream next hop */
static const uint8_t MAC_SPOOF[ETH_ALEN] = {2, 0, 0, 0, 6, 6}; /* another host on the bridge */

#define META sizeof(struct cfr_xdp_meta)

/* The most packets a burst here holds. */
#define SLOTS 2

/* Two ports (0 inside, 1 outside), one worker with a socket on each. */
struct rig {
	struct cfrd_xdp_route route;
	uint32_t sendable; /* a bit per port this worker has a socket on */
	/* Per burst slot: what its frame taught, its packet, and where it goes. */
	struct cfrd_xdp_sender senders[SLOTS];
	struct cfr_pkt pkts[SLOTS];
	int egress[SLOTS]; /* a port, CFRD_XDP_VIA_TUN or CFRD_XDP_VIA_DROP */
	uint64_t now_ms;
	/* The program's metadata, then the frame: as in a UMEM frame. */
	uint8_t frames[SLOTS][META + ETH_HLEN + PKT_MAX];
};

static void prefix(struct cfr_prefix *p, const char *text)
{
	assert_int_equal(cfr_prefix_parse(text, p), 0);
}

static int rig_setup(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));
	struct cfr_engine_config *e = calloc(1, sizeof(*e));

	assert_non_null(r);
	assert_non_null(e);
	/* The pools and subscriber prefixes as cfrd hands them over: the engine's. */
	prefix(&e->pool4[0], "192.0.2.0/26");
	e->n_pool4 = 1;
	prefix(&e->pool6[0], "2001:db8:a1::/64");
	e->n_pool6 = 1;
	prefix(&e->subscribers[0], "100.64.0.0/10");
	prefix(&e->subscribers[1], "2001:db8:100::/48");
	e->n_subscribers = 2;
	e->max_subscribers = 256;
	assert_int_equal(cfrd_xdp_route_init(&r->route, e), 0);
	free(e);
	assert_non_null(r->route.neigh);
	assert_int_equal(r->route.neigh_mask, 255);
	assert_int_equal(r->route.n_pools, 2);
	assert_int_equal(r->route.n_subscribers, 2);
	r->route.n_ports = 2;
	r->route.ports[0] = (struct cfrd_xdp_port_view){.inside = true, .mtu = 1500};
	r->route.ports[1] = (struct cfrd_xdp_port_view){.inside = false, .mtu = 1500};
	memcpy(r->route.ports[0].mac, MAC_IN, ETH_ALEN);
	memcpy(r->route.ports[1].mac, MAC_OUT, ETH_ALEN);
	r->sendable = 1u << 0 | 1u << 1;
	r->now_ms = 1000000;
	*state = r;
	return 0;
}

static int rig_teardown(void **state)
{
	struct rig *r = *state;

	cfrd_xdp_route_fini(&r->route);
	assert_null(r->route.neigh);
	free(r);
	return 0;
}

/* The first <n> slots of a burst received on port <from>, routed as the engine left them. */
static void route(struct rig *r, unsigned from, unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		r->egress[k] = cfrd_xdp_route_pick(&r->route, from, &r->senders[k], &r->pkts[k],
		                                   r->sendable, r->now_ms);
}

static uint8_t *eth_of(struct rig *r, unsigned k)
{
	return r->frames[k] + META;
}

/* Burst slot <k>: a UDP packet <src> -> <dst> behind a zeroed Ethernet header. */
static void slot(struct rig *r, unsigned k, int family, const char *src, const char *dst,
                 enum cfr_dir dir, enum cfr_verdict verdict, size_t payload_len)
{
	static const uint8_t payload[2000];
	struct pkt_spec s = {.family = family, .proto = IPPROTO_UDP, .sport = 40000, .dport = 443};
	struct pkt p;
	uint8_t *eth = eth_of(r, k);

	pkt_addr(family, src, s.src);
	pkt_addr(family, dst, s.dst);
	s.payload = payload;
	s.payload_len = payload_len;
	s.ttl = 64;
	pkt_build(&p, &s);
	memset(eth, 0, ETH_HLEN);
	memcpy(eth + ETH_HLEN, p.data, p.len);
	r->pkts[k] = (struct cfr_pkt){
	    .data = eth + ETH_HLEN, .len = p.len, .dir = (uint8_t)dir, .verdict = (uint8_t)verdict};
}

/*
 * What the program hands over from an inside port: <frame_mac> is the
 * frame's source, <neigh_mac> the neighbour table's entry for the packet's
 * source (NULL: no metadata, as from a program that did not vouch for it).
 */
static void received(struct rig *r, unsigned k, const uint8_t *frame_mac, const uint8_t *neigh_mac)
{
	struct cfr_xdp_meta *meta = (struct cfr_xdp_meta *)eth_of(r, k) - 1;

	memset(meta, 0, sizeof(*meta));
	if (neigh_mac) {
		memcpy(meta->frame_mac, frame_mac, ETH_ALEN);
		memcpy(meta->neigh_mac, neigh_mac, ETH_ALEN);
		meta->magic = CFR_XDP_META_MAGIC;
	}
	cfrd_xdp_sender_take(&r->senders[k], &r->pkts[k], meta, true);
	assert_int_equal(meta->magic, 0); /* never read twice */
}

/*
 * An outbound packet from the subscriber at <sub>, as the program hands it
 * over, then as the engine leaves it (<verdict>, source translated), ready
 * for the outside port.
 */
static void outbound(struct rig *r, unsigned k, int family, const char *sub,
                     const uint8_t *frame_mac, const uint8_t *neigh_mac, enum cfr_verdict verdict)
{
	const char *remote = family == 4 ? REMOTE4 : REMOTE6;
	uint8_t *eth = eth_of(r, k);

	slot(r, k, family, sub, remote, CFR_DIR_OUT, verdict, 100);
	received(r, k, frame_mac, neigh_mac);
	slot(r, k, family, family == 4 ? ALIAS4 : ALIAS6, remote, CFR_DIR_OUT, verdict, 100);
	memcpy(eth, MAC_HOP, ETH_ALEN);
	memcpy(eth + ETH_ALEN, MAC_OUT, ETH_ALEN);
}

/* A reply translated back to <sub>. */
static void inbound(struct rig *r, unsigned k, int family, const char *sub, size_t payload_len)
{
	slot(r, k, family, family == 4 ? REMOTE4 : REMOTE6, sub, CFR_DIR_IN, CFR_VERDICT_FORWARD,
	     payload_len);
	r->senders[k].learnable = false;
}

/* Where a reply to <sub> goes now: the port (or TUN), and the MAC it is addressed to. */
static int reply_to(struct rig *r, int family, const char *sub)
{
	inbound(r, 0, family, sub, 100);
	route(r, 1, 1);
	return r->egress[0];
}

static void learned_subscriber_gets_its_replies(void **state)
{
	struct rig *r = *state;
	const int families[] = {4, 6};

	for (unsigned f = 0; f < 2; f++) {
		int fam = families[f];
		const char *sub = fam == 4 ? SUB4 : SUB6;

		outbound(r, 0, fam, sub, MAC_SUB, MAC_SUB, CFR_VERDICT_FORWARD);
		route(r, 0, 1);
		/* Out of the port whose MAC the program wrote. */
		assert_int_equal(r->egress[0], 1);

		assert_int_equal(reply_to(r, fam, sub), 0);
		assert_memory_equal(eth_of(r, 0), MAC_SUB, ETH_ALEN);
		assert_memory_equal(eth_of(r, 0) + ETH_ALEN, MAC_IN, ETH_ALEN);
	}
	assert_int_equal(r->route.neigh_misses, 0);
}

static void only_accepted_vouched_packets_teach(void **state)
{
	struct rig *r = *state;

	/* Dropped by the engine: nothing learned, the reply has no way but TUN. */
	outbound(r, 0, 4, SUB4, MAC_SUB, MAC_SUB, CFR_VERDICT_DROP);
	route(r, 0, 1);
	assert_int_equal(r->egress[0], CFRD_XDP_VIA_TUN);
	assert_int_equal(reply_to(r, 4, SUB4), CFRD_XDP_VIA_TUN);
	assert_int_equal(r->route.neigh_misses, 1);

	/* Forwarded but without the program's metadata: nothing learned either. */
	outbound(r, 0, 4, SUB4, MAC_SUB, NULL, CFR_VERDICT_FORWARD);
	assert_false(r->senders[0].learnable);
	route(r, 0, 1);
	assert_int_equal(reply_to(r, 4, SUB4), CFRD_XDP_VIA_TUN);
	assert_int_equal(r->route.neigh_misses, 2);

	/* From an outside port, metadata or not: nothing to learn. */
	slot(r, 0, 4, SUB4, REMOTE4, CFR_DIR_OUT, CFR_VERDICT_FORWARD, 100);
	memset(r->frames[0], 0, META);
	((struct cfr_xdp_meta *)eth_of(r, 0) - 1)->magic = CFR_XDP_META_MAGIC;
	cfrd_xdp_sender_take(&r->senders[0], &r->pkts[0], (struct cfr_xdp_meta *)eth_of(r, 0) - 1,
	                     false);
	assert_false(r->senders[0].learnable);
}

/*
 * Issue 12: subscribers behind one bridge share the inside port, so the
 * reverse-path check (by interface) passes a neighbour's frame with the
 * victim's source address, and the engine accepts it as the victim's. The
 * frame's own MAC must not become where the victim's replies go: the MAC
 * comes from the neighbour table, which still says the victim's.
 */
static void spoofed_frame_on_shared_port_keeps_victims_replies(void **state)
{
	struct rig *r = *state;
	const int families[] = {4, 6};

	for (unsigned f = 0; f < 2; f++) {
		int fam = families[f];
		const char *sub = fam == 4 ? SUB4 : SUB6;

		/* Before the victim ever sent: the spoofer's frame teaches nothing. */
		outbound(r, 0, fam, sub, MAC_SPOOF, MAC_SUB, CFR_VERDICT_FORWARD);
		route(r, 0, 1);
		assert_int_equal(reply_to(r, fam, sub), CFRD_XDP_VIA_TUN);

		/* The victim, then the spoofer in the same burst, then the spoofer alone. */
		outbound(r, 0, fam, sub, MAC_SUB, MAC_SUB, CFR_VERDICT_FORWARD);
		outbound(r, 1, fam, sub, MAC_SPOOF, MAC_SUB, CFR_VERDICT_FORWARD);
		route(r, 0, 2);
		assert_int_equal(r->egress[1], 1); /* the packet itself still goes out */
		r->now_ms += CFRD_XDP_NEIGH_REFRESH_MS;
		outbound(r, 0, fam, sub, MAC_SPOOF, MAC_SUB, CFR_VERDICT_FORWARD);
		route(r, 0, 1);

		assert_int_equal(reply_to(r, fam, sub), 0);
		assert_memory_equal(eth_of(r, 0), MAC_SUB, ETH_ALEN);
	}
}

/* A host that moved (a new router): once the neighbour table says so, its frames teach it. */
static void a_moved_host_is_learned_from_the_neighbour_table(void **state)
{
	struct rig *r = *state;
	static const uint8_t moved[ETH_ALEN] = {2, 0, 0, 0, 7, 7};

	outbound(r, 0, 6, SUB6, MAC_SUB, MAC_SUB, CFR_VERDICT_FORWARD);
	outbound(r, 1, 6, SUB6, moved, moved, CFR_VERDICT_FORWARD);
	route(r, 0, 2);
	assert_int_equal(reply_to(r, 6, SUB6), 0);
	assert_memory_equal(eth_of(r, 0), moved, ETH_ALEN);
}

/*
 * An entry is used for CFRD_XDP_NEIGH_FRESH_MS after a frame last
 * confirmed it: a neighbour table that changed without a frame saying so
 * (frames from the old MAC now disagree with it) reaches the fast path
 * that soon.
 */
static void learned_macs_age_out(void **state)
{
	struct rig *r = *state;
	static const uint8_t rebound[ETH_ALEN] = {2, 0, 0, 0, 8, 8};
	uint64_t t0 = r->now_ms;

	outbound(r, 0, 4, SUB4, MAC_SUB, MAC_SUB, CFR_VERDICT_FORWARD);
	route(r, 0, 1);
	/* Confirmed within the refresh interval: not rewritten, the first time stands. */
	r->now_ms = t0 + CFRD_XDP_NEIGH_REFRESH_MS - 1;
	outbound(r, 0, 4, SUB4, MAC_SUB, MAC_SUB, CFR_VERDICT_FORWARD);
	route(r, 0, 1);
	r->now_ms = t0 + CFRD_XDP_NEIGH_FRESH_MS - 1;
	assert_int_equal(reply_to(r, 4, SUB4), 0);
	r->now_ms = t0 + CFRD_XDP_NEIGH_FRESH_MS;
	assert_int_equal(reply_to(r, 4, SUB4), CFRD_XDP_VIA_TUN);

	/* Confirmed again: fresh again. */
	outbound(r, 0, 4, SUB4, MAC_SUB, MAC_SUB, CFR_VERDICT_FORWARD);
	route(r, 0, 1);
	t0 = r->now_ms;
	assert_int_equal(reply_to(r, 4, SUB4), 0);

	/* The operator rebinds the address: the old MAC's frames no longer confirm it. */
	r->now_ms = t0 + CFRD_XDP_NEIGH_FRESH_MS / 2;
	outbound(r, 0, 4, SUB4, MAC_SUB, rebound, CFR_VERDICT_FORWARD);
	route(r, 0, 1);
	r->now_ms = t0 + CFRD_XDP_NEIGH_FRESH_MS;
	assert_int_equal(reply_to(r, 4, SUB4), CFRD_XDP_VIA_TUN);

	/* Another worker's clock a little behind this one's: still fresh, not aged. */
	outbound(r, 0, 4, SUB4, rebound, rebound, CFR_VERDICT_FORWARD);
	route(r, 0, 1);
	r->now_ms -= 3;
	assert_int_equal(reply_to(r, 4, SUB4), 0);
	assert_memory_equal(eth_of(r, 0), rebound, ETH_ALEN);
}

static void a_reply_larger_than_the_port_goes_through_tun(void **state)
{
	struct rig *r = *state;

	r->route.ports[0].mtu = 1280;
	outbound(r, 0, 4, SUB4, MAC_SUB, MAC_SUB, CFR_VERDICT_FORWARD);
	route(r, 0, 1);
	inbound(r, 0, 4, SUB4, 1280 - 28);
	route(r, 1, 1);
	assert_int_equal(r->egress[0], 0); /* exactly the MTU: fits */
	inbound(r, 0, 4, SUB4, 1280 - 28 + 1);
	route(r, 1, 1);
	assert_int_equal(r->egress[0], CFRD_XDP_VIA_TUN); /* the kernel sends Packet Too Big */
}

static void a_reply_to_a_port_without_socket_goes_through_tun(void **state)
{
	struct rig *r = *state;

	outbound(r, 0, 4, SUB4, MAC_SUB, MAC_SUB, CFR_VERDICT_FORWARD);
	route(r, 0, 1);
	r->sendable &= ~(1u << 0); /* this worker's queue does not exist on the inside port */
	assert_int_equal(reply_to(r, 4, SUB4), CFRD_XDP_VIA_TUN);
}

/* A translated outbound packet with source <src>, ready for the outside port. */
static int leaving(struct rig *r, int family, const char *src)
{
	uint8_t *eth = eth_of(r, 0);

	slot(r, 0, family, src, family == 4 ? REMOTE4 : REMOTE6, CFR_DIR_OUT, CFR_VERDICT_FORWARD,
	     100);
	r->senders[0].learnable = false;
	memcpy(eth, MAC_HOP, ETH_ALEN);
	memcpy(eth + ETH_ALEN, MAC_OUT, ETH_ALEN);
	route(r, 0, 1);
	return r->egress[0];
}

/* An ICMP error from <src> to the remote, quoting a UDP packet <qsrc> -> <qdst>. */
static int error_leaving(struct rig *r, int family, const char *src, const char *qsrc,
                         const char *qdst)
{
	struct pkt_spec q = {.family = family, .proto = IPPROTO_UDP, .sport = 443, .dport = 40000};
	uint8_t s[16] = {0}, d[16] = {0};
	struct pkt quoted, err;
	uint8_t *eth = eth_of(r, 0);

	pkt_addr(family, qsrc, q.src);
	pkt_addr(family, qdst, q.dst);
	pkt_build(&quoted, &q);
	pkt_addr(family, src, s);
	pkt_addr(family, family == 4 ? REMOTE4 : REMOTE6, d);
	pkt_build_icmp_error(&err, family, s, d, family == 4 ? 3 : 1, 3, 0, quoted.data,
	                     quoted.len);
	memcpy(eth, MAC_HOP, ETH_ALEN);
	memcpy(eth + ETH_ALEN, MAC_OUT, ETH_ALEN);
	memcpy(eth + ETH_HLEN, err.data, err.len);
	r->pkts[0] = (struct cfr_pkt){.data = eth + ETH_HLEN,
	                              .len = err.len,
	                              .dir = CFR_DIR_OUT,
	                              .verdict = CFR_VERDICT_FORWARD};
	r->senders[0].learnable = false;
	route(r, 0, 1);
	return r->egress[0];
}

/*
 * The guard's egress chain never sees fast-path packets: out of an outside
 * port goes an alias source only, and no ICMP error quoting a subscriber.
 */
static void no_subscriber_address_leaves_by_an_outside_port(void **state)
{
	struct rig *r = *state;
	struct pkt_spec s = {.family = 6, .proto = IPPROTO_UDP, .sport = 1, .dport = 2};
	struct pkt p;

	assert_int_equal(leaving(r, 4, ALIAS4), 1);
	assert_int_equal(leaving(r, 6, ALIAS6), 1);
	/* Untranslated (a bug in the engine would have to let it through): dropped, counted. */
	assert_int_equal(leaving(r, 4, SUB4), CFRD_XDP_VIA_DROP);
	assert_int_equal(leaving(r, 6, SUB6), CFRD_XDP_VIA_DROP);
	/* Neither alias nor subscriber: nothing the engine translates outbound. */
	assert_int_equal(leaving(r, 4, "198.51.100.1"), CFRD_XDP_VIA_DROP);

	assert_int_equal(error_leaving(r, 4, ALIAS4, REMOTE4, ALIAS4), 1);
	assert_int_equal(error_leaving(r, 6, ALIAS6, REMOTE6, ALIAS6), 1);
	assert_int_equal(error_leaving(r, 4, ALIAS4, REMOTE4, SUB4), CFRD_XDP_VIA_DROP);
	assert_int_equal(error_leaving(r, 6, ALIAS6, REMOTE6, SUB6), CFRD_XDP_VIA_DROP);
	assert_int_equal(error_leaving(r, 4, ALIAS4, SUB4, REMOTE4), CFRD_XDP_VIA_DROP);
	assert_int_equal(error_leaving(r, 6, ALIAS6, SUB6, REMOTE6), CFRD_XDP_VIA_DROP);

	/* Extension headers the fast path does not walk: the kernel's guard decides. */
	pkt_addr(6, ALIAS6, s.src);
	pkt_addr(6, REMOTE6, s.dst);
	s.ext[0] = PKT_EXT_HOPOPTS;
	s.n_ext = 1;
	pkt_build(&p, &s);
	memcpy(eth_of(r, 0) + ETH_HLEN, p.data, p.len);
	r->pkts[0].len = p.len;
	route(r, 0, 1);
	assert_int_equal(r->egress[0], CFRD_XDP_VIA_TUN);

	/* Outbound with the inside port's MAC as source: never out of an inside port. */
	leaving(r, 4, ALIAS4);
	memcpy(eth_of(r, 0) + ETH_ALEN, MAC_IN, ETH_ALEN);
	route(r, 0, 1);
	assert_int_equal(r->egress[0], CFRD_XDP_VIA_TUN);
}

/* `nft -j -t list ruleset` of a namespace with cfrd's guard and rules of every kind. */
static const char RULESET[] =
    "{\"nftables\": [{\"metainfo\": {\"version\": \"1.0.6\", \"json_schema_version\": 1}},"
    "{\"table\": {\"family\": \"inet\", \"name\": \"cfr_guard\", \"handle\": 1}},"
    "{\"chain\": {\"family\": \"inet\", \"table\": \"cfr_guard\", \"name\": \"source_check\", "
    "\"handle\": 1, \"type\": \"filter\", \"hook\": \"forward\", \"prio\": -10, \"policy\": "
    "\"accept\"}},"
    "{\"chain\": {\"family\": \"inet\", \"table\": \"cfr_guard\", \"name\": \"egress\", "
    "\"handle\": 2, \"type\": \"filter\", \"hook\": \"postrouting\", \"prio\": 250, \"policy\": "
    "\"accept\"}},"
    "{\"rule\": {\"family\": \"inet\", \"table\": \"cfr_guard\", \"chain\": \"source_check\", "
    "\"handle\": 3, \"expr\": [{\"accept\": null}]}},"
    "{\"table\": {\"family\": \"ip\", \"name\": \"filter\", \"handle\": 2}},"
    "{\"chain\": {\"family\": \"ip\", \"table\": \"filter\", \"name\": \"FORWARD\", \"handle\": "
    "1, \"type\": \"filter\", \"hook\": \"forward\", \"prio\": 0, \"policy\": \"accept\"}},"
    "{\"chain\": {\"family\": \"ip\", \"table\": \"filter\", \"name\": \"INPUT\", \"handle\": 2, "
    "\"type\": \"filter\", \"hook\": \"input\", \"prio\": 0, \"policy\": \"drop\"}},"
    "{\"rule\": {\"family\": \"ip\", \"table\": \"filter\", \"chain\": \"INPUT\", \"handle\": 3, "
    "\"expr\": [{\"accept\": null}]}},"
    "{\"table\": {\"family\": \"ip\", \"name\": \"nat\", \"handle\": 3}},"
    "{\"chain\": {\"family\": \"ip\", \"table\": \"nat\", \"name\": \"POSTROUTING\", \"handle\": "
    "1, \"type\": \"nat\", \"hook\": \"postrouting\", \"prio\": 100, \"policy\": \"accept\"}},"
    "{\"rule\": {\"family\": \"ip\", \"table\": \"nat\", \"chain\": \"POSTROUTING\", \"handle\": "
    "2, \"expr\": [{\"masquerade\": null}]}},"
    "{\"table\": {\"family\": \"netdev\", \"name\": \"n\", \"handle\": 6}},"
    "{\"chain\": {\"family\": \"netdev\", \"table\": \"n\", \"name\": \"forward\", \"handle\": 1, "
    "\"type\": \"filter\", \"hook\": \"ingress\", \"prio\": 0, \"policy\": \"drop\"}}%s]}";

/* The same with <more> appended to the listing. */
static int skipped_with(const char *more, char *what, size_t size)
{
	static char json[sizeof(RULESET) + 2048];

	snprintf(json, sizeof(json), RULESET, more);
	return cfrd_forward_rules_in(json, what, size);
}

static void forward_rules_other_than_the_guard_stop_cfrd(void **state)
{
	char what[160];

	(void)state;
	/* cfrd's own table, rules at other hooks, NAT, an empty accepting forward chain: fine. */
	assert_int_equal(skipped_with("", what, sizeof(what)), 0);
	assert_string_equal(what, "");

	/* A rule in the operator's forward chain. */
	assert_int_equal(skipped_with(",{\"rule\": {\"family\": \"ip\", \"table\": \"filter\", "
	                              "\"chain\": \"FORWARD\", \"handle\": 4, \"expr\": []}}",
	                              what, sizeof(what)),
	                 1);
	assert_string_equal(what, "table ip filter chain FORWARD");

	/* A forward chain that drops by policy, with no rule at all. */
	assert_int_equal(skipped_with(",{\"chain\": {\"family\": \"ip6\", \"table\": \"f6\", "
	                              "\"name\": \"fw\", \"type\": \"filter\", \"hook\": "
	                              "\"forward\", \"prio\": 0, \"policy\": \"drop\"}}",
	                              what, sizeof(what)),
	                 1);
	assert_string_equal(what, "table ip6 f6 chain fw, policy drop");

	/*
	 * A prerouting filter (an operator's reverse-path rule) and a jump out of
	 * a forward chain count; the chain jumped to does not add its own.
	 */
	assert_int_equal(
	    skipped_with(",{\"chain\": {\"family\": \"inet\", \"table\": \"x\", \"name\": \"pre\", "
	                 "\"type\": \"filter\", \"hook\": \"prerouting\", \"prio\": 0, \"policy\": "
	                 "\"accept\"}},"
	                 "{\"chain\": {\"family\": \"inet\", \"table\": \"x\", \"name\": \"fwd\", "
	                 "\"type\": \"filter\", \"hook\": \"forward\", \"prio\": 0, \"policy\": "
	                 "\"accept\"}},"
	                 "{\"chain\": {\"family\": \"inet\", \"table\": \"x\", \"name\": \"sub\"}},"
	                 "{\"rule\": {\"family\": \"inet\", \"table\": \"x\", \"chain\": \"pre\"}},"
	                 "{\"rule\": {\"family\": \"inet\", \"table\": \"x\", \"chain\": \"fwd\"}},"
	                 "{\"rule\": {\"family\": \"inet\", \"table\": \"x\", \"chain\": \"sub\"}},"
	                 "{\"rule\": {\"family\": \"inet\", \"table\": \"x\", \"chain\": \"sub\"}}",
	                 what, sizeof(what)),
	    2);
	assert_string_equal(what, "table inet x chain pre");

	/* Only cfrd's own inet table is cfrd's: the name alone in another family is not. */
	assert_int_equal(
	    skipped_with(",{\"chain\": {\"family\": \"ip\", \"table\": \"cfr_guard\", \"name\": "
	                 "\"source_check\", \"type\": \"filter\", \"hook\": \"forward\", "
	                 "\"policy\": \"accept\"}},"
	                 "{\"rule\": {\"family\": \"ip\", \"table\": \"cfr_guard\", \"chain\": "
	                 "\"source_check\"}}",
	                 what, sizeof(what)),
	    1);

	/* Not a listing: cfrd cannot tell, and says so. */
	assert_int_equal(cfrd_forward_rules_in("", what, sizeof(what)), -EINVAL);
	assert_int_equal(cfrd_forward_rules_in("{\"nft\": []}", what, sizeof(what)), -EINVAL);
	assert_int_equal(cfrd_forward_rules_in("{\"nftables\": {}}", what, sizeof(what)), -EINVAL);
}

static uint16_t ip4_header_sum(const uint8_t *ip)
{
	uint32_t sum = 0;

	for (unsigned i = 0; i < (ip[0] & 0xfu) * 4u; i += 2)
		sum += (uint32_t)ip[i] << 8 | ip[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* Every TTL and many IDs: the updated header still sums to 0xffff, as a receiver checks. */
static void hop_decrement_keeps_the_header_checksum(void **state)
{
	struct pkt_spec s = {.family = 4, .proto = IPPROTO_UDP, .sport = 1, .dport = 2};
	struct pkt p;

	(void)state;
	pkt_addr(4, SUB4, s.src);
	pkt_addr(4, REMOTE4, s.dst);
	for (unsigned ttl = 3; ttl < 256; ttl++) {
		for (unsigned id = 0; id < 65536; id += 251) {
			s.ttl = (uint8_t)ttl;
			s.ip_id = (uint16_t)id;
			pkt_build(&p, &s);
			assert_int_equal(ip4_header_sum(p.data), 0xffff);
			cfrd_xdp_hop_decrement(p.data);
			assert_int_equal(p.data[8], ttl - 1);
			assert_int_equal(ip4_header_sum(p.data), 0xffff);
		}
	}
	s.family = 6;
	pkt_addr(6, SUB6, s.src);
	pkt_addr(6, REMOTE6, s.dst);
	s.ttl = 64;
	pkt_build(&p, &s);
	cfrd_xdp_hop_decrement(p.data);
	assert_int_equal(p.data[7], 63);
}

#define RIG_TEST(f) cmocka_unit_test_setup_teardown(f, rig_setup, rig_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    RIG_TEST(learned_subscriber_gets_its_replies),
	    RIG_TEST(only_accepted_vouched_packets_teach),
	    RIG_TEST(spoofed_frame_on_shared_port_keeps_victims_replies),
	    RIG_TEST(a_moved_host_is_learned_from_the_neighbour_table),
	    RIG_TEST(learned_macs_age_out),
	    RIG_TEST(a_reply_larger_than_the_port_goes_through_tun),
	    RIG_TEST(a_reply_to_a_port_without_socket_goes_through_tun),
	    RIG_TEST(no_subscriber_address_leaves_by_an_outside_port),
	    cmocka_unit_test(forward_rules_other_than_the_guard_stop_cfrd),
	    cmocka_unit_test(hop_decrement_keeps_the_header_checksum),
	};

	if (sodium_init() < 0) /* the neighbour cache's key */
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
