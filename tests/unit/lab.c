/*
 * Engine fixtures shared by the unit tests (see lab.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lab.h"

const uint8_t lab_payload[24] = "cfr unit test payload..";

static void parse_or_fail(const char *text, struct cfr_prefix *p)
{
	if (cfr_prefix_parse(text, p) != 0)
		fail_msg("cfr_prefix_parse(\"%s\") failed", text);
}

void lab_config(struct cfr_engine_config *cfg)
{
	cfr_engine_config_defaults(cfg);
	parse_or_fail("192.0.2.0/26", &cfg->pool4[0]);
	cfg->n_pool4 = 1;
	parse_or_fail("2001:db8:a1::/64", &cfg->pool6[0]);
	cfg->n_pool6 = 1;
	parse_or_fail("100.64.0.0/10", &cfg->subscribers[0]);
	parse_or_fail("2001:db8:100::/48", &cfg->subscribers[1]);
	cfg->n_subscribers = 2;
	/* The lab delegates a /64 to each line (2001:db8:100:I::/64). */
	cfg->subscriber_prefix6 = 64;
	cfg->port_min = LAB_PORT_MIN;
	cfg->port_max = LAB_PORT_MAX;
}

struct cfr_engine *lab_engine(const struct cfr_engine_config *cfg)
{
	struct cfr_engine_config lab;
	struct cfr_engine *eng;

	if (sodium_init() < 0)
		fail_msg("sodium_init failed");
	if (!cfg) {
		lab_config(&lab);
		cfg = &lab;
	}
	eng = cfr_engine_new(cfg);
	if (!eng)
		fail_msg("cfr_engine_new failed: %s", strerror(errno));
	return eng;
}

int lab_setup(void **state)
{
	*state = lab_engine(NULL);
	return 0;
}

int lab_teardown(void **state)
{
	cfr_engine_free(*state);
	return 0;
}

int lab_case_setup(void **state)
{
	struct lab_case *c = *state;

	c->eng = lab_engine(NULL);
	return 0;
}

int lab_case_teardown(void **state)
{
	struct lab_case *c = *state;

	cfr_engine_free(c->eng);
	c->eng = NULL;
	return 0;
}

static const uint8_t *addr(int family, const char *v4, const char *v6, uint8_t buf[2][16])
{
	pkt_addr(family, family == 4 ? v4 : v6, buf[family == 6]);
	return buf[family == 6];
}

const uint8_t *lab_sub(int family)
{
	static uint8_t buf[2][16];

	return addr(family, "100.64.1.2", "2001:db8:100:1::2", buf);
}

const uint8_t *lab_sub2(int family)
{
	static uint8_t buf[2][16];

	return addr(family, "100.127.250.9", "2001:db8:100:ff::9", buf);
}

const uint8_t *lab_remote(int family)
{
	static uint8_t buf[2][16];

	return addr(family, "198.51.100.7", "2001:db8:ffff::80", buf);
}

const uint8_t *lab_router(int family)
{
	static uint8_t buf[2][16];

	return addr(family, "203.0.113.1", "2001:db8:eeee::1", buf);
}

bool lab_in_pool(int family, const uint8_t *a)
{
	uint8_t net[16];

	if (family == 4) {
		pkt_addr(4, "192.0.2.0", net);
		return memcmp(a, net, 3) == 0 && a[3] < 64;
	}
	pkt_addr(6, "2001:db8:a1::", net);
	return memcmp(a, net, 8) == 0;
}

int lab_fam(int family)
{
	return family == 4 ? CFR_FAMILY_V4 : CFR_FAMILY_V6;
}

void lab_spec(struct pkt_spec *s, int family, uint8_t proto, uint16_t sport, uint16_t dport)
{
	memset(s, 0, sizeof *s);
	s->family = family;
	memcpy(s->src, lab_sub(family), 16);
	memcpy(s->dst, lab_remote(family), 16);
	s->sport = sport;
	s->dport = dport;
	s->payload = lab_payload;
	s->payload_len = sizeof lab_payload;
	s->ip_id = 0x1234;
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		s->proto = family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
		s->icmp_type = family == 4 ? 8 : 128;
		s->icmp_seq = 1;
		s->dport = 0;
	} else {
		s->proto = proto;
		s->tcp_flags = PKT_TCP_SYN;
		s->seq = 1000;
	}
}

void lab_reply_spec(struct pkt_spec *s, const struct pkt *translated)
{
	struct pkt_info pi;

	if (pkt_parse(translated->data, translated->len, false, &pi))
		fail_msg("lab_reply_spec: translated packet does not parse");
	memset(s, 0, sizeof *s);
	s->family = pi.family;
	s->proto = pi.proto;
	memcpy(s->src, pi.dst, 16);
	memcpy(s->dst, pi.src, 16);
	s->sport = pi.dport;
	s->dport = pi.sport;
	s->payload = lab_payload;
	s->payload_len = sizeof lab_payload;
	s->ip_id = 0x4321;
	if (pi.proto == IPPROTO_TCP) {
		s->tcp_flags = PKT_TCP_SYN | PKT_TCP_ACK;
		s->seq = 5000;
		s->ack = 1001;
	} else if (pi.proto != IPPROTO_UDP) {
		s->icmp_type = pi.family == 4 ? 0 : 129;
		s->sport = pi.sport;
		s->icmp_seq = 1;
	}
}

static void fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprint_error(fmt, ap);
	va_end(ap);
	print_error("\n");
	_fail(file, line);
}

struct cfr_pkt lab_process_raw(struct cfr_engine *eng, uint8_t *data, size_t len, uint64_t now_ms)
{
	/* For len 0, glibc's malloc(0) gives a pointer with no readable byte: as wanted. */
	uint8_t *copy = malloc(len);
	struct cfr_pkt cp = {.len = (uint32_t)len, .reason = 0xff, .verdict = 0xff};

	if (len) {
		assert_non_null(copy);
		memcpy(copy, data, len);
	}
	cp.data = copy;
	cfr_engine_process(eng, &cp, 1, now_ms);
	/* Only an outbound ICMP error shrinks: its quote is cut (translate.c). */
	if (cp.len > len)
		fail_msg("engine grew the packet from %zu to %u bytes", len, cp.len);
	if (cp.len)
		memcpy(data, copy, cp.len);
	free(copy);
	cp.data = data;
	return cp;
}

struct cfr_pkt lab_process(struct cfr_engine *eng, struct pkt *p, uint64_t now_ms)
{
	struct cfr_pkt r = lab_process_raw(eng, p->data, p->len, now_ms);

	p->len = r.len;
	return r;
}

struct cfr_pkt lab_send(struct cfr_engine *eng, const struct pkt_spec *s, struct pkt *out,
                        uint64_t now_ms)
{
	pkt_build(out, s);
	return lab_process(eng, out, now_ms);
}

void lab_expect_forward_at(const struct cfr_pkt *r, enum cfr_dir dir, const char *file, int line)
{
	if (r->verdict != CFR_VERDICT_FORWARD)
		fail_at(file, line, "expected FORWARD, got verdict %u reason %s", r->verdict,
		        r->reason < CFR_DROP__COUNT ? cfr_drop_name(r->reason) : "(invalid)");
	if (r->dir != dir)
		fail_at(file, line, "expected direction %s, got %u",
		        dir == CFR_DIR_OUT ? "OUT" : "IN", r->dir);
}

void lab_expect_drop_at(const struct cfr_pkt *r, enum cfr_drop reason, const char *file, int line)
{
	if (r->verdict != CFR_VERDICT_DROP || r->reason != reason)
		fail_at(file, line, "expected DROP %s, got verdict %s reason %s",
		        cfr_drop_name(reason),
		        r->verdict == CFR_VERDICT_FORWARD ? "FORWARD" : "DROP",
		        r->reason < CFR_DROP__COUNT ? cfr_drop_name(r->reason) : "(invalid)");
}

void lab_expect_checksums_at(const struct pkt *p, const char *file, int line)
{
	char why[160];

	if (pkt_verify_checksums(p->data, p->len, why, sizeof why) != 0)
		fail_at(file, line, "checksum: %s", why);
}

void lab_expect_reply_at(struct cfr_engine *eng, const struct pkt *out, uint16_t sport,
                         uint64_t now_ms, const char *file, int line)
{
	struct pkt_spec s;
	struct pkt in;
	struct pkt_info pi;
	struct cfr_pkt r;
	int family = (out->data[0] >> 4) == 4 ? 4 : 6;

	lab_reply_spec(&s, out);
	r = lab_send(eng, &s, &in, now_ms);
	lab_expect_forward_at(&r, CFR_DIR_IN, file, line);
	lab_expect_checksums_at(&in, file, line);
	assert_int_equal(pkt_parse(in.data, in.len, false, &pi), 0);
	assert_memory_equal(pi.dst, lab_sub(family), family == 4 ? 4 : 16);
	assert_int_equal(pi.dport, sport);
}

void lab_open_flow(struct cfr_engine *eng, int family, uint8_t proto, uint16_t sport,
                   uint16_t dport, struct pkt *out, uint64_t now_ms)
{
	struct pkt_spec s;
	struct cfr_pkt r;

	lab_spec(&s, family, proto, sport, dport);
	r = lab_send(eng, &s, out, now_ms);
	lab_expect_forward(&r, CFR_DIR_OUT);
}
