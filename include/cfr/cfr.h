/*
 * libcfr: the Customer-Facing Relay engine.
 *
 * A pure packet translator. It takes batches of raw IPv4/IPv6 packets, a
 * clock value, and rewrites each packet in place (subscriber address and port
 * replaced by a short-lived alias on the way out, restored on the way back),
 * or marks it dropped with a reason. It never touches a file descriptor,
 * allocates nothing after cfr_engine_new() but to reconfigure (off the
 * packet path), and keeps no global state: the daemon, the tools and the
 * tests all drive the same code.
 */
#ifndef CFR_CFR_H
#define CFR_CFR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * What libcfr exports. The library is built with hidden visibility, so a
 * function is visible outside it only when declared here with CFR_API:
 * this header is the whole API (`make exports` checks a shared build).
 */
#define CFR_API __attribute__((visibility("default")))

/*
 * Every way a packet can leave the engine without being forwarded.  One list
 * generates the enum, the short names used as JSON keys, and the
 * descriptions shown to people.
 */
/* clang-format off */
#define CFR_DROP_REASONS(_) \
	_(TRUNCATED, "truncated", "packet shorter than its headers") \
	_(BAD_VERSION, "bad_version", "IP version is neither 4 nor 6") \
	_(BAD_IP_HEADER, "bad_ip_header", "IP header length or total length invalid") \
	_(BAD_IP_CHECKSUM, "bad_ip_checksum", "IPv4 header checksum invalid") \
	_(EXT_HDR_LIMIT, "ext_hdr_limit", "IPv6 extension header chain too long") \
	_(ROUTING_HDR, "routing_hdr", "IPv6 routing header (carries addresses)") \
	_(IP_OPTIONS, "ip_options", "IPv4 options (route and timestamp options carry addresses)") \
	_(HOME_ADDRESS, "home_address", "IPv6 Home Address option (carries an address)") \
	_(BAD_L4_HEADER, "bad_l4_header", "TCP/UDP/ICMP header malformed") \
	_(UNSUPPORTED_PROTO, "unsupported_proto", "transport protocol not translated") \
	_(UNSUPPORTED_ICMP, "unsupported_icmp", "ICMP type not translated") \
	_(UDP6_ZERO_CHECKSUM, "udp6_zero_checksum", "IPv6 UDP without checksum") \
	_(UNAUTHORISED_SOURCE, "unauthorised_source", "source is not an authorised subscriber") \
	_(HAIRPIN, "hairpin", "subscriber sending to an alias and port nobody holds") \
	_(TCP_NOT_SYN, "tcp_not_syn", "TCP segment without SYN opens no flow") \
	_(NO_FLOW, "no_flow", "inbound packet matches no flow") \
	_(POOL_EXHAUSTED, "pool_exhausted", "no free alias address and port") \
	_(TABLE_FULL, "table_full", "flow table full") \
	_(FRAG_NO_FLOW, "frag_no_flow", "non-first fragment of an unknown datagram") \
	_(FRAG_TABLE_FULL, "frag_table_full", "fragment tracking table full") \
	_(SUBSCRIBER_FRAG_LIMIT, "subscriber_frag_limit", "subscriber at its share of the fragment table") \
	_(FRAG_ICMP_ERROR, "frag_icmp_error", "fragmented ICMP error") \
	_(ICMP_BAD_CHECKSUM, "icmp_bad_checksum", "ICMP error checksum invalid") \
	_(ICMP_BAD_INNER, "icmp_bad_inner", "ICMP error quotes a malformed packet") \
	_(ICMP_NO_FLOW, "icmp_no_flow", "ICMP error quotes a packet of no flow") \
	_(SUBSCRIBER_TABLE_FULL, "subscriber_table_full", "too many subscribers active at once") \
	_(INGRESS_MISMATCH, "ingress_mismatch", "packet arrived on the wrong access line") \
	_(MARTIAN_SOURCE, "martian_source", "source is unspecified, loopback, multicast, link-local or reserved") \
	_(MARTIAN_DESTINATION, "martian_destination", "destination is unspecified, loopback, multicast, link-local or reserved") \
	_(SPOOFED_SOURCE, "spoofed_source", "packet from outside claims a pool or subscriber source") \
	_(SUBSCRIBER_FLOW_LIMIT, "subscriber_flow_limit", "subscriber at its concurrent flow limit") \
	_(SUBSCRIBER_RATE_LIMIT, "subscriber_rate_limit", "subscriber over its new-flow rate") \
	_(SUBSCRIBER_HALF_OPEN_LIMIT, "subscriber_half_open_limit", "subscriber at its half-open TCP limit") \
	_(PARTIAL_CHECKSUM, "partial_checksum", "partial checksum on a protocol other than TCP or UDP") \
	_(FILTERED, "filtered", "inbound packet refused by its mapping's filtering (RFC 4787 REQ-8)")
/* clang-format on */

enum cfr_drop {
	CFR_DROP_NONE = 0,
#define CFR_DROP_ENUM_(id, name, text) CFR_DROP_##id,
	CFR_DROP_REASONS(CFR_DROP_ENUM_)
#undef CFR_DROP_ENUM_
	    CFR_DROP__COUNT
};

/* Short stable name of a drop reason (a JSON key), and its description. */
CFR_API const char *cfr_drop_name(enum cfr_drop reason);
CFR_API const char *cfr_drop_text(enum cfr_drop reason);

enum cfr_verdict {
	CFR_VERDICT_FORWARD = 0, /* rewritten in place, send it on */
	CFR_VERDICT_DROP = 1,    /* see cfr_pkt.reason */
};

enum cfr_dir {
	CFR_DIR_OUT = 0, /* subscriber towards the internet */
	CFR_DIR_IN = 1,  /* internet towards an alias */
};

/* Families and protocol classes, as indexes into the flow counters. */
enum cfr_family { CFR_FAMILY_V4 = 0, CFR_FAMILY_V6 = 1, CFR_FAMILY__COUNT };
enum cfr_proto { CFR_PROTO_TCP = 0, CFR_PROTO_UDP = 1, CFR_PROTO_ICMP = 2, CFR_PROTO__COUNT };

/* Timeout classes: every flow of one class shares one idle timeout. */
enum cfr_timeout {
	CFR_TIMEOUT_TCP_TRANSITORY = 0, /* FIN or RST seen */
	CFR_TIMEOUT_TCP_ESTABLISHED,
	CFR_TIMEOUT_UDP,
	CFR_TIMEOUT_ICMP,
	CFR_TIMEOUT_TCP_EMBRYONIC, /* SYN sent, no answer yet: short, against half-open floods */
	CFR_TIMEOUT__COUNT
};

/* One packet of a batch. The engine rewrites data[0..len) in place. */
struct cfr_pkt {
	uint8_t *data;
	uint32_t len;
	uint16_t ingress; /* in: access line it arrived on (0: the shared device) */
	/*
	 * in: the TCP/UDP checksum field holds only the pseudo-header sum, the
	 * rest to be summed later by the kernel or the NIC (virtio NEEDS_CSUM,
	 * as for GSO packets from a TUN device with offloads); the engine keeps
	 * it so. Any other protocol must arrive with complete checksums.
	 */
	uint8_t csum_partial;
	uint8_t dir;     /* out: enum cfr_dir, set by the engine */
	uint8_t verdict; /* out: enum cfr_verdict */
	uint8_t reason;  /* out: enum cfr_drop when dropped */
	uint32_t flow;   /* out: the flow a translated TCP/UDP/echo packet belongs to, or 0 */
};

struct cfr_prefix {
	uint8_t family;   /* CFR_FAMILY_V4 or CFR_FAMILY_V6 */
	uint8_t len;      /* prefix length in bits */
	uint8_t addr[16]; /* IPv4 in the first 4 bytes; host bits are zero */
};

/*
 * How a new flow's alias address is chosen (the port is always random).
 * Documented with its trade-offs in cfrd.conf(5) and docs/privacy.md.
 */
enum cfr_policy {
	CFR_POLICY_PER_FLOW = 0,        /* fresh random alias for every flow */
	CFR_POLICY_PER_DESTINATION = 1, /* one alias per (subscriber, remote) per epoch */
	CFR_POLICY_PER_SUBSCRIBER = 2,  /* one alias per subscriber per epoch: classic CGN */
	CFR_POLICY__COUNT
};

CFR_API const char *cfr_policy_name(enum cfr_policy policy);

/*
 * Traffic classes (issue 17): by protocol and destination port, each class
 * has its own mapping and filtering behaviour (RFC 4787 terms). Per-flow
 * is cfr's own: a fresh alias and port for every flow, drawn under the
 * alias policy above, and only the flow's remote may answer. The other
 * mappings keep one alias:port per subscriber source address and port:
 * for every destination (endpoint-independent, RFC 4787 REQ-1) or for
 * every destination port of one remote address (address-dependent), so
 * that STUN, games and peer-to-peer work; filtering says who may send to
 * it. cfrd.conf(5) and docs/privacy.md say what each costs in privacy.
 */
enum cfr_mapping {
	CFR_MAPPING_PER_FLOW = 0,
	CFR_MAPPING_ENDPOINT_INDEPENDENT = 1,
	CFR_MAPPING_ADDRESS_DEPENDENT = 2,
	CFR_MAPPING__COUNT
};

enum cfr_filtering {
	CFR_FILTERING_ADDRESS_PORT_DEPENDENT = 0, /* only a remote address and port it sent to */
	CFR_FILTERING_ADDRESS_DEPENDENT = 1,      /* any port of a remote address it sent to */
	CFR_FILTERING_ENDPOINT_INDEPENDENT = 2,   /* anyone */
	CFR_FILTERING__COUNT
};

CFR_API const char *cfr_mapping_name(enum cfr_mapping mapping);
CFR_API const char *cfr_filtering_name(enum cfr_filtering filtering);

#define CFR_MAX_CLASSES 8

/*
 * One class: TCP or UDP packets to destination ports [port_min, port_max].
 * The first class that holds a packet decides; TCP and UDP that no class
 * holds, and ICMP queries, are per-flow. Filtering is never more open
 * than the mapping (per-flow: address and port dependent; address-
 * dependent: not endpoint-independent), and a TCP class with a mapping
 * filters by address and port (RFC 5382 REQ-3 allows it): every TCP flow
 * of a mapping opens with its subscriber's SYN, simultaneous open included.
 */
struct cfr_class {
	uint8_t proto;     /* enum cfr_proto: CFR_PROTO_TCP or CFR_PROTO_UDP */
	uint8_t mapping;   /* enum cfr_mapping */
	uint8_t filtering; /* enum cfr_filtering */
	uint8_t pad_;
	uint16_t port_min, port_max; /* destination ports, inclusive */
};

enum cfr_scrubber {
	CFR_SCRUB_TCP_TIMESTAMPS = 0,
	CFR_SCRUB_IP_ID,
	CFR_SCRUB_TTL,
	CFR_SCRUB_FLOW_LABEL,
	CFR_SCRUB__COUNT
};

/* Scrubbers of auxiliary signals that re-link flows (outbound unless noted). */
struct cfr_scrub_config {
	bool tcp_timestamps;     /* per-flow random TSval offset, removed from TSecr inbound */
	bool tcp_timestamp_rate; /* ... and a per-flow clock rate (hides the host's clock skew) */
	bool ip_id;              /* IPv4 identification from the CSPRNG, shared by fragments */
	bool flow_label;         /* IPv6 flow label from a keyed hash of the translated tuple */
	uint8_t ttl_cap;         /* lower TTL / hop limit to this (0: off); never raises */
};

/* Per-subscriber limits; 0 means no limit. */
struct cfr_limits {
	uint32_t flows_per_subscriber[CFR_PROTO__COUNT]; /* concurrent, per family */
	uint32_t half_open_per_subscriber;               /* TCP flows awaiting a SYN-ACK */
	uint32_t frags_per_subscriber;                   /* fragmented datagrams tracked at once */
	uint32_t new_flows_per_s;                        /* token bucket rate ... */
	uint32_t new_flows_burst;                        /* ... and depth */
};

#define CFR_MAX_POOL_PREFIXES       16
#define CFR_MAX_SUBSCRIBER_PREFIXES 256
#define CFR_MAX_POOL4_ADDRESSES     (1u << 24)
/*
 * The engine's own limits: its indexes are 32-bit with room for flags,
 * and every table is allocated in full at cfr_engine_new().
 */
#define CFR_MAX_FLOWS       (1u << 28)
#define CFR_MAX_FRAGS       (1u << 24)
#define CFR_MAX_SUBSCRIBERS (1u << 26)
/* An IPv6 pool prefix longer than this is too small to hide anyone in. */
#define CFR_POOL6_MAX_LEN 120

struct cfr_engine_config {
	struct cfr_prefix pool4[CFR_MAX_POOL_PREFIXES];
	unsigned n_pool4;
	struct cfr_prefix pool6[CFR_MAX_POOL_PREFIXES];
	unsigned n_pool6;
	struct cfr_prefix subscribers[CFR_MAX_SUBSCRIBER_PREFIXES];
	unsigned n_subscribers;
	/* Access line each subscriber prefix must arrive on (0: any). */
	uint16_t subscriber_ingress[CFR_MAX_SUBSCRIBER_PREFIXES];
	bool strict_ingress; /* every packet must come from its prefix's line */
	struct cfr_limits limits;
	uint16_t port_min, port_max;          /* alias source ports, inclusive */
	uint32_t timeout[CFR_TIMEOUT__COUNT]; /* seconds */
	uint32_t max_flows;
	uint32_t max_frags;                        /* fragmented datagrams tracked at once */
	uint8_t policy[CFR_FAMILY__COUNT];         /* enum cfr_policy, per family's pool */
	struct cfr_class classes[CFR_MAX_CLASSES]; /* first match decides (issue 17) */
	unsigned n_classes;
	uint32_t epoch_s; /* privacy epoch length */
	struct cfr_scrub_config scrub;
	/*
	 * An IPv6 subscriber is its /N: the prefix delegated to one customer
	 * (default 56), or per subscriber prefix (0: this default).
	 */
	uint8_t subscriber_prefix6;
	uint8_t subscriber_ident6[CFR_MAX_SUBSCRIBER_PREFIXES];
	uint32_t max_subscribers; /* subscribers active in one epoch */
	uint32_t anon_k;          /* new flows on aliases with fewer subscribers are counted */
};

/* Fill <cfg> with the documented defaults (empty pools and subscribers). */
CFR_API void cfr_engine_config_defaults(struct cfr_engine_config *cfg);

/*
 * Would cfr_engine_new() accept <cfg>? Returns 0, or -EINVAL with <*why>
 * (when <why> is not NULL) naming the first rule broken, for callers that
 * want to say more than "Invalid argument".
 */
CFR_API int cfr_engine_config_check(const struct cfr_engine_config *cfg, const char **why);

/* The longest IPv6 subscriber identity <cfg> uses: what a record must hold. */
CFR_API uint8_t cfr_config_ident6_max(const struct cfr_engine_config *cfg);

/*
 * Parse "192.0.2.0/26" or "2001:db8::/32" into <out>. Host bits must be
 * zero. Returns 0, or -EINVAL.
 */
CFR_API int cfr_prefix_parse(const char *text, struct cfr_prefix *out);
CFR_API bool cfr_prefix_contains(const struct cfr_prefix *p, int family, const uint8_t *addr);

#define CFR_ANON_BUCKETS 24

struct cfr_stats {
	uint64_t rx[2]; /* by enum cfr_dir */
	uint64_t tx[2];
	uint64_t rx_bytes[2]; /* IP bytes, a GSO packet's whole payload included */
	uint64_t tx_bytes[2];
	uint64_t drops[CFR_DROP__COUNT];
	uint64_t flows_created;
	uint64_t flows_expired;
	uint32_t flows_active[CFR_FAMILY__COUNT][CFR_PROTO__COUNT];
	uint32_t frags_tracked;
	uint32_t max_flows;
	uint64_t epoch;          /* number of the current privacy epoch */
	uint64_t epoch_start_ms; /* engine clock when it began */
	uint64_t epochs_rotated;
	uint64_t records_sealed;           /* handed to the drain callback */
	uint64_t records_lost;             /* wiped undrained when the next epoch ended */
	uint32_t subscribers_active;       /* in the current epoch */
	uint64_t subscribers_reclaimed;    /* idle limit entries reused for new subscribers */
	uint64_t subscribers_sealed_early; /* idle subscribers sealed to make room in an epoch */
	uint32_t longest_chain;            /* longest hash chain a lookup walked */
	uint64_t new_flows_below_k; /* placed on an alias then shared by < anon_k subscribers */
	/* New flows by the anonymity set of the alias they were placed on (log2 buckets). */
	uint64_t new_flow_anon_hist[CFR_FAMILY__COUNT][CFR_ANON_BUCKETS];
	uint64_t scrubbed[CFR_SCRUB__COUNT]; /* packets changed, by scrubber */
	uint64_t mappings_created;           /* endpoint-independent / address-dependent */
	uint64_t hairpinned;                 /* subscriber to subscriber, through both aliases */
};

/*
 * Anonymity set of each alias: how many distinct subscribers have live
 * flows on it right now. An IPv4 alias is one pool address. An IPv6 alias
 * is a pool prefix under the per-flow policy, since the addresses inside it
 * are fresh random per flow and carry nothing; under a sticky policy each
 * IPv6 address belongs to one subscriber, and is counted as a set of one. Histogram bucket i counts
 * aliases with a set size in [2^i, 2^(i+1)).
 */
struct cfr_anon_stats {
	uint32_t aliases_in_use[CFR_FAMILY__COUNT];
	uint32_t min[CFR_FAMILY__COUNT], p5[CFR_FAMILY__COUNT], median[CFR_FAMILY__COUNT];
	uint32_t max[CFR_FAMILY__COUNT];
	uint32_t histogram[CFR_FAMILY__COUNT][CFR_ANON_BUCKETS];
};

/*
 * Accountability without profiling. Each subscriber active in an epoch gets
 * a secret random seed; every alias and port it is given in that epoch is a
 * keyed pseudo-random function of the seed and an allocation counter (and,
 * for the per-destination policy, of the remote). When the epoch ends the
 * engine hands out one record per active subscriber (seed, counter, and a
 * compact timeline of when the counter moved) for the daemon to seal, then
 * wipes the seed. No remote address or port is ever part of a record.
 */
#define CFR_SEED_BYTES     32
#define CFR_TIMELINE_BYTES 96

struct cfr_epoch_record {
	uint64_t epoch;
	uint64_t start_ms, end_ms; /* engine clock (the caller's monotonic ms) */
	uint8_t family;            /* of the subscriber identity */
	uint8_t subscriber[16];    /* IPv4 address, or IPv6 /subscriber_prefix6 */
	uint8_t seed[CFR_SEED_BYTES];
	uint32_t counter; /* allocations drawn: counter values 0 .. counter-1 */
	uint16_t timeline_len;
	uint8_t timeline[CFR_TIMELINE_BYTES]; /* see cfr_timeline_next() */
	/* the subscriber's number in the epoch (1, 2, ...): names it in the journal */
	uint32_t slot;
};

/*
 * One step of a record's timeline: counter values [*first, *first + *count)
 * were drawn at seconds in [*t_from, *t_to] after the epoch start. Start with
 * *off = 0 and all outputs 0; returns 1 while an entry was read, 0 at the
 * end, -EINVAL on a malformed timeline.
 */
CFR_API int cfr_timeline_next(const struct cfr_epoch_record *rec, size_t *off, uint32_t *t_from,
                              uint32_t *t_to, uint32_t *first, uint32_t *count);

/*
 * The alias and port the engine derives from <seed> for allocation
 * <counter> of a flow of <family> under the pool, ports and policy of
 * <cfg>; <remote> (the flow's remote address) is used by the
 * per-destination policy only. The protocol is not an input: one sequence
 * serves TCP, UDP and ICMP alike. cfr-lookup regenerates allocations with
 * it. Returns 0, or -EINVAL (alias and port zeroed) when <cfg> has no pool
 * of <family> or the per-destination policy gets no <remote>.
 */
CFR_API int cfr_derive_alias(const struct cfr_engine_config *cfg,
                             const uint8_t seed[CFR_SEED_BYTES], uint8_t family, uint32_t counter,
                             const uint8_t *remote, uint8_t alias[16], uint16_t *port);

typedef void (*cfr_record_fn)(void *ctx, const struct cfr_epoch_record *rec);

struct cfr_engine;

/*
 * Hand at most <max> records of the ended epoch to <fn> (which must seal or
 * discard them before returning; the seed is wiped right after), then those
 * of subscribers the current epoch sealed early to make room: epoch numbers
 * never go back. Returns how many are still waiting. Call it soon after
 * every rotation: a record still waiting when the next epoch ends is lost
 * (counted in records_lost).
 */
CFR_API unsigned cfr_engine_drain_records(struct cfr_engine *eng, cfr_record_fn fn, void *ctx,
                                          unsigned max);

/*
 * The write-ahead journal of the current epoch: what is new since the last
 * call, so that the daemon can seal it within seconds instead of at the
 * epoch's end. A subscriber's first item in a journal generation is a
 * SNAPSHOT (its record so far: identity, seed, counter, timeline; end_ms
 * 0); later ones are DELTAs: counter values [counter_from, counter_from +
 * count) were drawn in seconds [t_from, t_to] of the epoch. The epoch's
 * final records (cfr_engine_drain_records) supersede the journal.
 */
enum cfr_journal_kind { CFR_JOURNAL_SNAPSHOT = 1, CFR_JOURNAL_DELTA = 2 };

struct cfr_journal_item {
	uint8_t kind;
	uint32_t counter_from, count, t_from, t_to; /* DELTA */
	struct cfr_epoch_record rec;                /* both: epoch, start_ms, slot; SNAPSHOT: all */
};

typedef void (*cfr_journal_fn)(void *ctx, const struct cfr_journal_item *it);

/*
 * Hand at most <max> journal items to <fn> (which copies what it keeps;
 * a snapshot's seed is wiped right after). Returns how many subscribers
 * still have something to hand out: 0 means every allocation drawn so far
 * is in what <fn> got. Hands out nothing while records of the ended epoch
 * wait in cfr_engine_drain_records(): they go first, so the daemon seals
 * the epochs in order.
 */
CFR_API unsigned cfr_engine_drain_journal(struct cfr_engine *eng, cfr_journal_fn fn, void *ctx,
                                          unsigned max);

/*
 * Start the journal over: the next item of every subscriber of the current
 * epoch is a snapshot (a new segment file, or writes that were lost).
 */
CFR_API void cfr_engine_journal_restart(struct cfr_engine *eng);

/* Compute the anonymity-set distribution (a scan of the alias table). */
CFR_API void cfr_engine_anonymity(const struct cfr_engine *eng, struct cfr_anon_stats *out);

/*
 * The same in two steps, so that a daemon holds its engine lock for a copy
 * only: cfr_engine_anon_copy() copies the set size of every alias in use
 * into the caller's <sizes> (IPv4 first, then IPv6); cfr_anon_figures()
 * computes the distribution from that copy, without the engine, sorting
 * <sizes> in place.
 */
struct cfr_anon_copy {
	uint32_t *sizes; /* the caller's buffer of <cap> entries */
	uint32_t cap;
	uint32_t n[CFR_FAMILY__COUNT]; /* entries of each family in <sizes> */
	uint32_t v6_subscribers;       /* sticky IPv6 policy: one set of 1 each */
	bool v6_per_address;
	bool truncated; /* <cap> was too small: the figures are those of a part */
};

/* Entries cfr_engine_anon_copy() may need: never more than aliases or flows. */
CFR_API uint32_t cfr_engine_anon_capacity(const struct cfr_engine *eng);
CFR_API void cfr_engine_anon_copy(const struct cfr_engine *eng, struct cfr_anon_copy *copy);
CFR_API void cfr_anon_figures(struct cfr_anon_copy *copy, struct cfr_anon_stats *out);

/*
 * Validate <cfg> and allocate every table the engine will ever use. Returns
 * NULL with errno set (EINVAL for a bad config, ENOMEM). Keys come from
 * libsodium's CSPRNG; sodium_init() must have succeeded.
 */
CFR_API struct cfr_engine *cfr_engine_new(const struct cfr_engine_config *cfg);
CFR_API void cfr_engine_free(struct cfr_engine *eng);

/*
 * Handing the engine to another process, flows, aliases and epoch secrets
 * included (a restart or an upgrade). The state is a header of
 * cfr_engine_state_header_size() bytes, then the regions, in order:
 *   giving:  cfr_engine_state_header(eng, hdr); n = cfr_engine_state_regions(eng, r);
 *            copy hdr and r[0..n) out, nothing running on <eng> meanwhile;
 *   taking:  eng = cfr_engine_from_state(hdr, &why); n = cfr_engine_state_regions(eng, r);
 *            fill r[0..n) in; cfr_engine_state_check(eng, &why).
 * The state holds every secret of the epoch: keep it in memory (a memfd),
 * never on a disk. A binary whose record layout differs refuses it (NULL,
 * errno EINVAL, <why> says so): start clean then.
 */
#define CFR_STATE_REGIONS_MAX 96

struct cfr_state_region {
	void *data;
	size_t len;
};

CFR_API size_t cfr_engine_state_header_size(void);
CFR_API void cfr_engine_state_header(struct cfr_engine *eng, void *out);
CFR_API unsigned cfr_engine_state_regions(struct cfr_engine *eng, struct cfr_state_region *out);
CFR_API struct cfr_engine *cfr_engine_from_state(const void *header, const char **why);
CFR_API int cfr_engine_state_check(struct cfr_engine *eng, const char **why);

/*
 * Translate <n> packets in place. <now_ms> is a monotonic clock in
 * milliseconds; a time older than the engine has seen (threads that read
 * the clock before taking the engine) counts as the newest it has seen.
 * Each packet gets a direction and a verdict; a packet that is forwarded
 * keeps its length.
 */
CFR_API void cfr_engine_process(struct cfr_engine *eng, struct cfr_pkt *pkts, unsigned n,
                                uint64_t now_ms);

/*
 * End the current privacy epoch now: its key is wiped, new flows use a new
 * one; established flows keep their aliases. Epochs also end by themselves
 * every epoch_s seconds.
 */
CFR_API void cfr_engine_epoch_rotate(struct cfr_engine *eng, uint64_t now_ms);

/* Expire idle flows. Cheap enough to call every few hundred milliseconds. */
CFR_API void cfr_engine_expire(struct cfr_engine *eng, uint64_t now_ms);

/*
 * An offload: a fast path outside the engine (cfrd's TC program) that
 * rewrites the packets of established flows exactly as the engine would,
 * from a copy of what cfr_engine_flow_view() returns. The engine stays the
 * only place a flow is born or changes state; it asks the offload before
 * expiring a flow and tells it when one ends.
 */
struct cfr_flow_view {
	uint8_t family, proto;
	uint8_t sub[16], alias[16], remote[16]; /* IPv4 in the first 4 bytes */
	uint16_t sub_port, alias_port, remote_port;
	uint8_t ts_scrub;    /* TCP timestamps follow the flow's offset and rate (scrub.c) */
	uint8_t label_scrub; /* IPv6: it leaves with flow_label */
	uint32_t ts_offset, ts_base, ts_rate;
	uint32_t flow_label;
};

struct cfr_offload {
	void *ctx;
	/*
	 * When the offload last carried a packet of flow <id>, in the engine's
	 * seconds (the <now_ms> clock / 1000), or 0: asked when the flow looks
	 * idle, under whatever lock serialises the engine.
	 */
	uint32_t (*last_seen)(void *ctx, uint32_t id, const struct cfr_flow_view *v);
	/* Flow <id> ended (expired): the offload must stop carrying it. */
	void (*removed)(void *ctx, uint32_t id, const struct cfr_flow_view *v);
};

/* Attach <o> (copied), or detach with NULL. */
CFR_API void cfr_engine_set_offload(struct cfr_engine *eng, const struct cfr_offload *o);

/*
 * Flow <id> as an offload copies it. Returns true if its packets may be
 * offloaded: a UDP or ICMP echo flow (its ports are the echo identifier and
 * 0), or a TCP connection the remote answered that has
 * seen no FIN or RST (the engine tracks those itself), and false otherwise
 * or if <id> is no flow. A UDP flow may be one remote's share of a mapping
 * (a peer, cfr.h's traffic classes) whose filter admits every port of that
 * remote: its remote_port is 0, and the offload takes the port from the
 * packet it carries (any one of them; the engine admits the others).
 */
CFR_API bool cfr_engine_flow_view(const struct cfr_engine *eng, uint32_t id,
                                  struct cfr_flow_view *v);

/*
 * Reconfiguring a running engine (a reload) without dropping a flow:
 *   rc = cfr_reconfig_new(eng, &cfg, why, sizeof(why));   off the lock
 *   cfr_engine_reconfigure(eng, rc, now_ms);              under the lock
 *   cfr_reconfig_free(rc);                                off the lock
 * Limits, timeouts, policies, scrubbers, the epoch length, anon_k, ports,
 * subscriber prefixes and their lines change in place; table sizes
 * (max_flows, max_frags, max_subscribers) and the IPv6 subscriber identity
 * cannot. Scrubbers that rewrite a flow (TCP timestamps) keep what the flow
 * started with. A pool prefix that is removed takes no new flow and drains:
 * its flows live out their lifetime, inbound packets to its aliases are
 * still translated, and it is forgotten with its last flow. A change of
 * pools, ports, policies or epoch length also ends the privacy epoch, so
 * that each epoch's records derive from one configuration: a records
 * writer must use the new one from the new epoch on.
 */
enum cfr_change {
	CFR_CHANGE_POOLS = 1 << 0,
	CFR_CHANGE_PORTS = 1 << 1,
	CFR_CHANGE_POLICY = 1 << 2,
	CFR_CHANGE_EPOCH = 1 << 3, /* epoch_s */
	CFR_CHANGE_SUBSCRIBERS = 1 << 4,
	CFR_CHANGE_LIMITS = 1 << 5,
	CFR_CHANGE_TIMEOUTS = 1 << 6,
	CFR_CHANGE_SCRUB = 1 << 7,
	CFR_CHANGE_ANONYMITY = 1 << 8, /* anon_k */
};
#define CFR_CHANGES_ROTATE                                                                         \
	(CFR_CHANGE_POOLS | CFR_CHANGE_PORTS | CFR_CHANGE_POLICY | CFR_CHANGE_EPOCH)

struct cfr_reconfig;

/*
 * Validate <cfg> as a change of <eng>'s configuration and allocate what it
 * needs. Returns NULL with errno set (EINVAL: <why>, <why_size> bytes, says
 * what cannot change or is wrong; ENOMEM). Reads <eng>'s configuration and
 * pool table: between this call and cfr_engine_reconfigure(), nothing but
 * cfr_engine_process() may run on <eng> (no expiry, no other reload).
 */
CFR_API struct cfr_reconfig *cfr_reconfig_new(const struct cfr_engine *eng,
                                              const struct cfr_engine_config *cfg, char *why,
                                              size_t why_size);

/* What differs from the running configuration (enum cfr_change bits); 0: nothing. */
CFR_API unsigned cfr_reconfig_changes(const struct cfr_reconfig *rc);

/*
 * Install <rc> in <eng>: a copy and O(pool prefixes) of work, no allocation,
 * cannot fail. Ends the epoch at <now_ms> when CFR_CHANGES_ROTATE says so.
 * <rc> then holds what the engine gave up: free it with cfr_reconfig_free().
 */
CFR_API void cfr_engine_reconfigure(struct cfr_engine *eng, struct cfr_reconfig *rc,
                                    uint64_t now_ms);

/* After cfr_engine_reconfigure(): pool prefixes now draining, from this reload or earlier. */
CFR_API unsigned cfr_reconfig_draining(const struct cfr_reconfig *rc);

CFR_API void cfr_reconfig_free(struct cfr_reconfig *rc);

/* A pool prefix in use: configured, or removed and still draining. */
struct cfr_pool_info {
	struct cfr_prefix prefix;
	bool draining;  /* takes no new flow; forgotten with its last */
	uint32_t flows; /* live flows with an alias in it */
};

/*
 * The pool prefixes in use, the configured ones first; fills at most <max>
 * entries of <out> and returns how many there are.
 */
CFR_API unsigned cfr_engine_pools(const struct cfr_engine *eng, struct cfr_pool_info *out,
                                  unsigned max);

CFR_API const struct cfr_stats *cfr_engine_stats(const struct cfr_engine *eng);

/* Bytes of memory the engine holds, all allocated at creation. */
CFR_API size_t cfr_engine_memory(const struct cfr_engine *eng);

#ifdef __cplusplus
}
#endif

#endif
