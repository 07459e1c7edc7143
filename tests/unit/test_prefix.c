/*
 * cfr_prefix_parse() and cfr_prefix_contains(): the parser behind every
 * pool and subscriber prefix in the configuration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cfr/cfr.h>
#include <errno.h>
#include <string.h>

#include "pkt.h"

static void parses(const char *text, int family, unsigned len, const char *addr)
{
	struct cfr_prefix p;
	uint8_t want[16];

	memset(&p, 0xee, sizeof p);
	assert_int_equal(cfr_prefix_parse(text, &p), 0);
	assert_int_equal(p.family, family);
	assert_int_equal(p.len, len);
	pkt_addr(family == CFR_FAMILY_V4 ? 4 : 6, addr, want);
	assert_memory_equal(p.addr, want, family == CFR_FAMILY_V4 ? 4 : 16);
}

static void rejects(const char *text)
{
	struct cfr_prefix p;

	if (cfr_prefix_parse(text, &p) != -EINVAL)
		fail_msg("\"%s\" was accepted", text);
}

static void valid_v4(void **state)
{
	(void)state;
	parses("192.0.2.0/26", CFR_FAMILY_V4, 26, "192.0.2.0");
	parses("100.64.0.0/10", CFR_FAMILY_V4, 10, "100.64.0.0");
	parses("192.0.2.1/32", CFR_FAMILY_V4, 32, "192.0.2.1");
	parses("0.0.0.0/0", CFR_FAMILY_V4, 0, "0.0.0.0");
}

static void valid_v6(void **state)
{
	(void)state;
	parses("2001:db8:a1::/64", CFR_FAMILY_V6, 64, "2001:db8:a1::");
	parses("2001:db8:100::/48", CFR_FAMILY_V6, 48, "2001:db8:100::");
	parses("2001:db8::1/128", CFR_FAMILY_V6, 128, "2001:db8::1");
	parses("::/0", CFR_FAMILY_V6, 0, "::");
	parses("2001:db8:0:2::/63", CFR_FAMILY_V6, 63, "2001:db8:0:2::");
}

static void host_bits_set(void **state)
{
	(void)state;
	rejects("192.0.2.1/26");
	rejects("100.64.0.0/9");
	rejects("2001:db8:a1::1/64");
	rejects("2001:db8:0:1::/62");
}

static void bad_length(void **state)
{
	(void)state;
	rejects("192.0.2.0/33");
	rejects("192.0.2.0/-1");
	rejects("192.0.2.0/");
	rejects("192.0.2.0/2x");
	rejects("192.0.2.0/ 26");
	rejects("2001:db8::/129");
	rejects("2001:db8::/1000");
	rejects("2001:db8::/4294967360");
}

static void garbage(void **state)
{
	(void)state;
	rejects("");
	rejects("/24");
	rejects("garbage");
	rejects("192.0.2/24");
	rejects("192.0.2.256/32");
	rejects("2001:db8:::/48");
	rejects("192.0.2.0/26 ");
	rejects("192.0.2.0//26");
}

static void contains(void **state)
{
	struct cfr_prefix p4, p6, all;
	uint8_t a[16];

	(void)state;
	assert_int_equal(cfr_prefix_parse("100.64.0.0/10", &p4), 0);
	assert_int_equal(cfr_prefix_parse("2001:db8:100::/48", &p6), 0);
	assert_int_equal(cfr_prefix_parse("0.0.0.0/0", &all), 0);

	pkt_addr(4, "100.64.0.0", a);
	assert_true(cfr_prefix_contains(&p4, CFR_FAMILY_V4, a));
	pkt_addr(4, "100.127.255.255", a);
	assert_true(cfr_prefix_contains(&p4, CFR_FAMILY_V4, a));
	assert_true(cfr_prefix_contains(&all, CFR_FAMILY_V4, a));
	pkt_addr(4, "100.128.0.0", a);
	assert_false(cfr_prefix_contains(&p4, CFR_FAMILY_V4, a));
	pkt_addr(4, "100.63.255.255", a);
	assert_false(cfr_prefix_contains(&p4, CFR_FAMILY_V4, a));

	pkt_addr(6, "2001:db8:100:ffff:ffff:ffff:ffff:ffff", a);
	assert_true(cfr_prefix_contains(&p6, CFR_FAMILY_V6, a));
	pkt_addr(6, "2001:db8:101::", a);
	assert_false(cfr_prefix_contains(&p6, CFR_FAMILY_V6, a));
	/* A family mismatch never matches, even on equal leading bytes. */
	assert_false(cfr_prefix_contains(&all, CFR_FAMILY_V6, a));
	pkt_addr(6, "6440::", a);
	assert_false(cfr_prefix_contains(&p4, CFR_FAMILY_V6, a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(valid_v4),      cmocka_unit_test(valid_v6),
	    cmocka_unit_test(host_bits_set), cmocka_unit_test(bad_length),
	    cmocka_unit_test(garbage),       cmocka_unit_test(contains),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
