/*
 * The engine's side of an offload (cfr.h, struct cfr_offload): a fast path
 * outside the engine that carries established flows. It gets a copy of a
 * flow (cfr_engine_flow_view), is asked before an idle-looking flow
 * expires, and is told when a flow ends. Nothing here runs per packet.
 */
#include <string.h>

#include "flow.h"
#include "offload.h"
#include "parse.h"

#define TCP_DONE (CFR_TCP_FIN_OUT | CFR_TCP_FIN_IN | CFR_TCP_RST)

void cfr_engine_set_offload(struct cfr_engine *eng, const struct cfr_offload *o)
{
	eng->offload = o ? *o : (struct cfr_offload){0};
}

static void view_of(const struct cfr_engine *eng, const struct cfr_flow *f, struct cfr_flow_view *v)
{
	size_t alen = f->family == CFR_FAMILY_V4 ? 4 : 16;

	*v = (struct cfr_flow_view){
	    .family = f->family,
	    .proto = f->proto,
	    .sub_port = f->sub_port,
	    .alias_port = f->alias_port,
	    .remote_port = f->remote_port,
	    .ts_scrub = f->ts_offset != 0,
	    .ts_offset = f->ts_offset,
	    .ts_base = f->ts_base,
	    .ts_rate = f->ts_rate,
	};
	memcpy(v->sub, cfr_flow_caddr(eng, f, CFR_FLOW_SUB), alen);
	memcpy(v->alias, cfr_flow_caddr(eng, f, CFR_FLOW_ALIAS), alen);
	memcpy(v->remote, cfr_flow_caddr(eng, f, CFR_FLOW_REMOTE), alen);
	if (f->family == CFR_FAMILY_V6 && eng->cfg.scrub.flow_label) {
		v->label_scrub = 1;
		v->flow_label = cfr_flow_label_of(eng, f);
	}
}

bool cfr_engine_flow_view(const struct cfr_engine *eng, uint32_t id, struct cfr_flow_view *v)
{
	const struct cfr_flow *f;

	if (id == 0 || id > eng->cfg.max_flows || !eng->flow.flows[id].in_use)
		return false;
	f = &eng->flow.flows[id];
	view_of(eng, f, v);
	if (!cfr_flow_offloadable(f))
		return false;
	/* An echo flow: requests out, replies in, both plain rewrites of the identifier. */
	if (f->proto == CFR_IPPROTO_UDP || f->proto == CFR_IPPROTO_ICMP ||
	    f->proto == CFR_IPPROTO_ICMPV6)
		return true;
	/* A timestamp scrub needs the clock's origin, which the SYN sets. */
	return f->proto == CFR_IPPROTO_TCP && (f->tcp_state & CFR_TCP_SYNACK_IN) &&
	       !(f->tcp_state & TCP_DONE) && (!f->ts_offset || (f->tcp_state & CFR_TCP_TS_BASE));
}

uint32_t cfr_offload_last_seen(struct cfr_engine *eng, uint32_t idx)
{
	struct cfr_flow_view v;

	if (!eng->offload.last_seen)
		return 0;
	view_of(eng, &eng->flow.flows[idx], &v);
	return eng->offload.last_seen(eng->offload.ctx, idx, &v);
}

void cfr_offload_removed(struct cfr_engine *eng, uint32_t idx)
{
	struct cfr_flow_view v;

	if (!eng->offload.removed)
		return;
	view_of(eng, &eng->flow.flows[idx], &v);
	eng->offload.removed(eng->offload.ctx, idx, &v);
}
