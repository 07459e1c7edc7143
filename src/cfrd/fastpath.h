/*
 * The TC fast path (fastpath.c, src/tc/cfr_tc.bpf.c): established flows
 * rewritten in the kernel from copies of the engine's flows, which cfrd
 * installs when it has translated a flow's packet and removes when the
 * flow ends. The TUN path stays whole underneath: whatever the program
 * does not take reaches cfrd as before.
 */
#ifndef CFRD_FASTPATH_H
#define CFRD_FASTPATH_H

#include <stdint.h>

#include <cfr/cfr.h>

#include "../tc/cfr_tc.h"
#include "config.h"

struct cfrd_fastpath;

struct cfrd_fastpath_stats {
	uint64_t packets[2], bytes[2]; /* by enum cfr_dir */
	uint64_t passed_tcp_flags, passed_ttl, passed_options, passed_line, passed_route;
	uint64_t dropped;    /* rewrites the kernel refused half way */
	unsigned interfaces; /* it is attached to */
	uint64_t flows;      /* installed, counted by cfrd */
};

/*
 * What a running cfrd hands a new one at a takeover: its maps (flows,
 * config, stats) and its links, so the program and its table never stop.
 */
#define CFRD_FASTPATH_HANDOVER_FDS (3 + CFRD_FASTPATH_MAX_IFS)
struct cfrd_fastpath_handover {
	int fds[CFRD_FASTPATH_HANDOVER_FDS];
	unsigned n;
};

/* The descriptors to hand over (our own, still ours to close); 0 if they do not fit. */
unsigned cfrd_fastpath_export(const struct cfrd_fastpath *fp, struct cfrd_fastpath_handover *h);

/* Close what a handover brought and nobody took. */
void cfrd_fastpath_handover_close(struct cfrd_fastpath_handover *h);

/*
 * Load the program and attach it to the configured interfaces (all but
 * loopback and TUN devices when none are named). <tun_ifindex>[i] is the
 * device of ingress i (cfr_pkt.ingress): the program routes a flow's
 * packets as the kernel routes what cfrd writes there. With <inherit> from
 * a takeover, the program takes over the running one's table (if its
 * layout is this build's) and replaces its links without a moment between;
 * <eng>'s flows tell which entries are whose. <inherit> is consumed either
 * way. Returns 0 with *fp set, 0 with *fp NULL when the fast path stays off
 * (said why in the log), or -errno when it cannot attach.
 */
int cfrd_fastpath_open(struct cfrd_fastpath **fp, const struct cfrd_config *cfg,
                       const unsigned *tun_ifindex, unsigned n_tun,
                       struct cfrd_fastpath_handover *inherit, const struct cfr_engine *eng);

/* One entry of the program's flow table. */
struct cfrd_fastpath_entry {
	struct cfr_tc_key key;
	struct cfr_tc_flow value;
};

/*
 * The two entries of flow <id> (outbound, inbound) as cfrd installs them,
 * routed as packets written to the TUN device <via>.
 */
void cfrd_fastpath_entries(const struct cfr_flow_view *v, uint32_t id, unsigned via,
                           struct cfrd_fastpath_entry e[2]);

/* Detach from every interface and free. */
void cfrd_fastpath_close(struct cfrd_fastpath *fp);

/* The engine's offload hooks for this fast path (cfr_engine_set_offload). */
struct cfr_offload cfrd_fastpath_offload(struct cfrd_fastpath *fp);

/*
 * After the engine translated <pkts>, under the engine lock: install the
 * flows that may now be carried, remove those that may no longer be.
 */
void cfrd_fastpath_learn(struct cfrd_fastpath *fp, const struct cfr_engine *eng,
                         const struct cfr_pkt *pkts, unsigned n);

/* A reload: the program follows the new TTL cap and identification scrubber. */
void cfrd_fastpath_reconfigure(struct cfrd_fastpath *fp, const struct cfr_engine_config *cfg);

/* A new privacy epoch: a new key for the IPv4 identifications. */
void cfrd_fastpath_epoch(struct cfrd_fastpath *fp, uint64_t epoch);

void cfrd_fastpath_stats(const struct cfrd_fastpath *fp, struct cfrd_fastpath_stats *st);

#endif
