/*
 * The fail-closed egress guard (egress_guard.h). cfrd writes it as an
 * nftables script from its own configuration and hands it to libnftables,
 * so the guard always names the subscriber prefixes and TUN devices cfrd
 * really serves. cfrd never removes it: after a crash, a stop or a deleted
 * TUN device, subscriber traffic falls back to whatever the routing table
 * says, and the guard drops it on the way out instead of letting it leave
 * untranslated.
 *
 * Two chains:
 *  - errors_to_cfrd (output, route type): the gateway's own ICMP errors
 *    about a packet to a subscriber (TTL expired on the hop after cfrd,
 *    Fragmentation Needed for the access line's MTU, unreachable when the
 *    line is down, a reject rule) get the error mark, which the deployment
 *    routes into the TUN device: cfrd turns them into alias form, so PMTUD
 *    and traceroute keep working without naming anyone.
 *  - egress (postrouting): whatever is not going into cfrd or towards a
 *    subscriber must not carry a subscriber address as its source or inside
 *    an ICMP quote. Drops are counted in named counters.
 */
#include "egress_guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nftables/libnftables.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* Offsets in bits from the ICMP header to the quoted packet's addresses. */
#define Q4_SRC_BITS ((8 + 12) * 8)
#define Q4_DST_BITS ((8 + 16) * 8)
#define Q6_SRC_BITS ((8 + 8) * 8)
#define Q6_DST_BITS ((8 + 24) * 8)

#define ERRORS4 "{ destination-unreachable, time-exceeded, parameter-problem }"
#define ERRORS6 "{ destination-unreachable, packet-too-big, time-exceeded, parameter-problem }"
/* Every ICMPv4 message that quotes a packet, redirects and source quench included. */
#define QUOTING4                                                                                   \
	"{ destination-unreachable, source-quench, redirect, time-exceeded, parameter-problem }"

struct script {
	char *out;
	size_t size, len;
	bool overflow;
};

__attribute__((format(printf, 2, 3))) static void put(struct script *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s->out + s->len, s->len < s->size ? s->size - s->len : 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= s->size - s->len) {
		s->overflow = true;
		s->len = s->size;
		return;
	}
	s->len += (size_t)n;
}

/*
 * A raw-payload match on the quoted address at <bits>: the prefix's top
 * <len> bits as one hexadecimal value (nft masks the field to <len> bits).
 */
static void put_quote_match(struct script *s, unsigned bits, const struct cfr_prefix *p)
{
	unsigned nbytes = (p->len + 7) / 8, shift = nbytes * 8 - p->len, i;
	uint8_t v[16];

	/* The value of the first <len> bits: the first <nbytes> bytes shifted right. */
	memcpy(v, p->addr, nbytes);
	for (i = nbytes; shift && i-- > 0;)
		v[i] = (uint8_t)((v[i] >> shift) | (i ? v[i - 1] << (8 - shift) : 0));
	put(s, "@th,%u,%u 0x", bits, p->len);
	for (i = 0; i < nbytes; i++)
		put(s, "%02x", v[i]);
}

/*
 * "set NAME { ... }" of the prefixes of <family> in <list> and <more>
 * (<n_more> of them, skipping any already in <list>), or nothing if none.
 */
static bool put_set(struct script *s, const char *name, const struct cfr_prefix *list, unsigned n,
                    const struct cfr_prefix *more, unsigned n_more, int family)
{
	bool any = false;
	char addr[64];
	unsigned i, j;

	for (i = 0; i < n + n_more; i++) {
		const struct cfr_prefix *p = i < n ? &list[i] : &more[i - n];

		if (p->family != family)
			continue;
		for (j = 0; i >= n && j < n; j++)
			if (list[j].family == p->family && list[j].len == p->len &&
			    memcmp(list[j].addr, p->addr, sizeof(p->addr)) == 0)
				break;
		if (i >= n && j < n)
			continue;
		if (!any)
			put(s, "\tset %s {\n\t\ttype %s; flags interval;\n\t\telements = { ", name,
			    family == CFR_FAMILY_V4 ? "ipv4_addr" : "ipv6_addr");
		inet_ntop(family == CFR_FAMILY_V4 ? AF_INET : AF_INET6, p->addr, addr,
		          sizeof(addr));
		put(s, "%s%s/%u", any ? ", " : "", addr, p->len);
		any = true;
	}
	if (any)
		put(s, " }\n\t}\n");
	return any;
}

/* One rule per subscriber prefix of <family>: "<head> <quote match> <tail>". */
static void put_quote_rules(struct script *s, const struct cfr_engine_config *e, int family,
                            const char *head, unsigned bits, const char *tail)
{
	unsigned i;

	for (i = 0; i < e->n_subscribers; i++) {
		if (e->subscribers[i].family != family || e->subscribers[i].len == 0)
			continue;
		put(s, "\t\t%s ", head);
		put_quote_match(s, bits, &e->subscribers[i]);
		put(s, " %s\n", tail);
	}
}

/* "oifname { ... }" or "iifname { ... }": every TUN device cfrd reads. */
static void put_devices(struct script *s, const char *which, const struct cfrd_config *cfg)
{
	unsigned i;

	put(s, "%s { \"%s\"", which, cfg->tun);
	for (i = 0; i < cfg->n_lines; i++)
		put(s, ", \"%s\"", cfg->lines[i].tun);
	put(s, " }");
}

/*
 * A subscriber source must arrive on the interface its address is routed
 * through (strict reverse path, checked against the main table: the policy
 * route into the TUN device matches on the arrival interface, which a
 * reverse lookup does not have). And a packet forwarded into cfrd that is
 * neither from a subscriber nor to a pool is spoofed: the only
 * non-subscriber sources cfrd translates outbound are the gateway's own
 * ICMP errors, which are never forwarded.
 */
static void put_source_check(struct script *s, const struct cfrd_config *cfg, const bool sub[2],
                             const bool pool[2])
{
	static const char *const ip[2] = {"ip", "ip6"}, *const v[2] = {"4", "6"};
	unsigned f;

	put(s, "\tchain source_check {\n\t\ttype filter hook forward priority -10; policy "
	       "accept;\n\t\t");
	put_devices(s, "iifname", cfg);
	put(s, " accept\n");
	for (f = 0; f < 2; f++) {
		if (!sub[f])
			continue;
		put(s,
		    "\t\t%s saddr @subscribers%s fib saddr . iif oif missing counter name "
		    "spoofed_source drop\n",
		    ip[f], v[f]);
		put(s, "\t\t");
		put_devices(s, "oifname", cfg);
		put(s, " %s saddr != @subscribers%s", ip[f], v[f]);
		if (pool[f])
			put(s, " %s daddr != @pools%s", ip[f], v[f]);
		put(s, " counter name spoofed_source drop\n");
	}
	put(s, "\t}\n");
}

/* Drop on the way out whatever carries a subscriber address and is not for cfrd. */
static void put_egress(struct script *s, const struct cfrd_config *cfg, const bool sub[2])
{
	const struct cfr_engine_config *e = &cfg->engine;

	put(s, "\tchain egress {\n\t\ttype filter hook postrouting priority 250; policy "
	       "accept;\n\t\t");
	put_devices(s, "oifname", cfg);
	put(s, " accept\n");
	if (sub[0])
		put(s, "\t\tip daddr @subscribers4 accept\n\t\tip saddr @subscribers4 counter "
		       "name subscriber_source drop\n");
	if (sub[1])
		put(s, "\t\tip6 daddr @subscribers6 accept\n\t\tip6 saddr @subscribers6 "
		       "counter name subscriber_source drop\n");
	put_quote_rules(s, e, CFR_FAMILY_V4, "icmp type " QUOTING4, Q4_SRC_BITS,
	                "counter name subscriber_quoted drop");
	put_quote_rules(s, e, CFR_FAMILY_V4, "icmp type " QUOTING4, Q4_DST_BITS,
	                "counter name subscriber_quoted drop");
	put_quote_rules(s, e, CFR_FAMILY_V6, "icmpv6 type " ERRORS6, Q6_SRC_BITS,
	                "counter name subscriber_quoted drop");
	put_quote_rules(s, e, CFR_FAMILY_V6, "icmpv6 type " ERRORS6, Q6_DST_BITS,
	                "counter name subscriber_quoted drop");
	put(s, "\t}\n");
}

int cfrd_egress_guard_script(const struct cfrd_config *cfg, char *out, size_t size)
{
	return cfrd_egress_guard_script_more(cfg, NULL, 0, out, size);
}

int cfrd_egress_guard_script_more(const struct cfrd_config *cfg, const struct cfr_prefix *pools,
                                  unsigned n_pools, char *out, size_t size)
{
	const struct cfr_engine_config *e = &cfg->engine;
	struct script s = {.out = out, .size = size};
	bool sub[2], pool[2];
	char mark[64];

	snprintf(mark, sizeof(mark), "counter name errors_to_cfrd meta mark set 0x%x",
	         cfg->error_mark);
	/* Create-then-delete makes the replacement atomic whether or not it existed. */
	put(&s, "table inet " CFRD_GUARD_TABLE " {}\ndelete table inet " CFRD_GUARD_TABLE "\n");
	put(&s, "table inet " CFRD_GUARD_TABLE " {\n");
	sub[0] =
	    put_set(&s, "subscribers4", e->subscribers, e->n_subscribers, NULL, 0, CFR_FAMILY_V4);
	sub[1] =
	    put_set(&s, "subscribers6", e->subscribers, e->n_subscribers, NULL, 0, CFR_FAMILY_V6);
	pool[0] = put_set(&s, "pools4", e->pool4, e->n_pool4, pools, n_pools, CFR_FAMILY_V4);
	pool[1] = put_set(&s, "pools6", e->pool6, e->n_pool6, pools, n_pools, CFR_FAMILY_V6);
	put(&s, "\tcounter subscriber_source {}\n\tcounter subscriber_quoted {}\n"
	        "\tcounter errors_to_cfrd {}\n\tcounter spoofed_source {}\n");
	put(&s, "\tchain errors_to_cfrd {\n\t\ttype route hook output priority mangle; policy "
	        "accept;\n");
	put_quote_rules(&s, e, CFR_FAMILY_V4, "icmp type " ERRORS4, Q4_DST_BITS, mark);
	put_quote_rules(&s, e, CFR_FAMILY_V6, "icmpv6 type " ERRORS6, Q6_DST_BITS, mark);
	put(&s, "\t}\n");
	if (cfg->source_check)
		put_source_check(&s, cfg, sub, pool);
	if (cfg->egress_guard)
		put_egress(&s, cfg, sub);
	put(&s, "}\n");
	return s.overflow ? -ENOSPC : (int)s.len;
}

int cfrd_egress_guard_install(const struct cfrd_config *cfg)
{
	return cfrd_egress_guard_install_more(cfg, NULL, 0);
}

int cfrd_egress_guard_digest(const struct cfrd_config *cfg, uint8_t digest[CFRD_GUARD_DIGEST_BYTES])
{
	static char script[CFRD_GUARD_SCRIPT_MAX];
	int len = cfrd_egress_guard_script(cfg, script, sizeof(script));

	if (len < 0)
		return len;
	crypto_generichash(digest, CFRD_GUARD_DIGEST_BYTES, (const unsigned char *)script,
	                   (size_t)len, NULL, 0);
	return 0;
}

int cfrd_egress_guard_install_more(const struct cfrd_config *cfg, const struct cfr_prefix *pools,
                                   unsigned n_pools)
{
	static char script[CFRD_GUARD_SCRIPT_MAX];
	struct nft_ctx *nft;
	const char *err;
	int ret;

	if (cfrd_egress_guard_script_more(cfg, pools, n_pools, script, sizeof(script)) < 0) {
		log_error("egress guard: too many subscriber prefixes for the nftables script");
		return -ENOSPC;
	}
	nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!nft) {
		log_error("egress guard: cannot create an nftables context");
		return -ENOMEM;
	}
	nft_ctx_buffer_output(nft);
	nft_ctx_buffer_error(nft);
	ret = nft_run_cmd_from_buffer(nft, script);
	if (ret != 0) {
		err = nft_ctx_get_error_buffer(nft);
		/* nft's message is several lines (the rule, a caret): the first says why. */
		log_error("egress guard: nftables refused table inet " CFRD_GUARD_TABLE ": %.*s",
		          (int)strcspn(err ? err : "", "\n"), err ? err : "");
		ret = -EPERM;
	}
	nft_ctx_free(nft);
	return ret;
}
