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

static void put_prefix_set(struct script *s, const struct cfr_engine_config *e, int family)
{
	const char *sep = "{ ";
	char addr[64];
	unsigned i;

	for (i = 0; i < e->n_subscribers; i++) {
		const struct cfr_prefix *p = &e->subscribers[i];

		if (p->family != family)
			continue;
		inet_ntop(family == CFR_FAMILY_V4 ? AF_INET : AF_INET6, p->addr, addr,
		          sizeof(addr));
		put(s, "%s%s/%u", sep, addr, p->len);
		sep = ", ";
	}
	put(s, " }");
}

static bool has_family(const struct cfr_engine_config *e, int family)
{
	unsigned i;

	for (i = 0; i < e->n_subscribers; i++)
		if (e->subscribers[i].family == family)
			return true;
	return false;
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

int cfrd_egress_guard_script(const struct cfrd_config *cfg, char *out, size_t size)
{
	const struct cfr_engine_config *e = &cfg->engine;
	struct script s = {.out = out, .size = size};
	char mark[64];
	unsigned i;

	snprintf(mark, sizeof(mark), "counter name errors_to_cfrd meta mark set 0x%x",
	         cfg->error_mark);
	/* Create-then-delete makes the replacement atomic whether or not it existed. */
	put(&s, "table inet " CFRD_GUARD_TABLE " {}\ndelete table inet " CFRD_GUARD_TABLE "\n");
	put(&s, "table inet " CFRD_GUARD_TABLE " {\n");
	put(&s, "\tcounter subscriber_source {}\n\tcounter subscriber_quoted {}\n"
	        "\tcounter errors_to_cfrd {}\n");
	put(&s, "\tchain errors_to_cfrd {\n\t\ttype route hook output priority mangle; policy "
	        "accept;\n");
	put_quote_rules(&s, e, CFR_FAMILY_V4, "icmp type " ERRORS4, Q4_DST_BITS, mark);
	put_quote_rules(&s, e, CFR_FAMILY_V6, "icmpv6 type " ERRORS6, Q6_DST_BITS, mark);
	put(&s, "\t}\n");
	put(&s,
	    "\tchain egress {\n\t\ttype filter hook postrouting priority 250; policy accept;\n");
	put(&s, "\t\toifname { \"%s\"", cfg->tun);
	for (i = 0; i < cfg->n_lines; i++)
		put(&s, ", \"%s\"", cfg->lines[i].tun);
	put(&s, " } accept\n");
	if (has_family(e, CFR_FAMILY_V4)) {
		put(&s, "\t\tip daddr ");
		put_prefix_set(&s, e, CFR_FAMILY_V4);
		put(&s, " accept\n\t\tip saddr ");
		put_prefix_set(&s, e, CFR_FAMILY_V4);
		put(&s, " counter name subscriber_source drop\n");
	}
	if (has_family(e, CFR_FAMILY_V6)) {
		put(&s, "\t\tip6 daddr ");
		put_prefix_set(&s, e, CFR_FAMILY_V6);
		put(&s, " accept\n\t\tip6 saddr ");
		put_prefix_set(&s, e, CFR_FAMILY_V6);
		put(&s, " counter name subscriber_source drop\n");
	}
	put_quote_rules(&s, e, CFR_FAMILY_V4, "icmp type " QUOTING4, Q4_SRC_BITS,
	                "counter name subscriber_quoted drop");
	put_quote_rules(&s, e, CFR_FAMILY_V4, "icmp type " QUOTING4, Q4_DST_BITS,
	                "counter name subscriber_quoted drop");
	put_quote_rules(&s, e, CFR_FAMILY_V6, "icmpv6 type " ERRORS6, Q6_SRC_BITS,
	                "counter name subscriber_quoted drop");
	put_quote_rules(&s, e, CFR_FAMILY_V6, "icmpv6 type " ERRORS6, Q6_DST_BITS,
	                "counter name subscriber_quoted drop");
	put(&s, "\t}\n}\n");
	return s.overflow ? -ENOSPC : (int)s.len;
}

int cfrd_egress_guard_install(const struct cfrd_config *cfg)
{
	static char script[16384];
	struct nft_ctx *nft;
	const char *err;
	int ret;

	if (cfrd_egress_guard_script(cfg, script, sizeof(script)) < 0) {
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
