/*
 * The egress guard's nftables script (src/cfrd/egress_guard.c), from a
 * parsed configuration: every subscriber prefix guarded as a source and in
 * both quoted addresses of ICMP errors, every TUN device let through, the
 * raw-payload values of odd prefix lengths right, and the error mark on the
 * gateway's own errors. Whether nftables accepts the script and what it
 * drops is the lab's part (tests/net/leak-failclosed.sh); here, with root,
 * `nft --check` parses it too.
 */
#include "../../src/cfrd/config.h"
#include "../../src/cfrd/egress_guard.h"
#include "../../src/cfrd/log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char script[16384];

static void script_of(const char *conf_text)
{
	struct cfrd_config cfg;
	struct cfrd_config_error err;

	assert_int_equal(cfrd_config_parse_buffer(conf_text, strlen(conf_text), &cfg, &err), 0);
	assert_true(cfrd_egress_guard_script(&cfg, script, sizeof(script)) > 0);
}

static void assert_has(const char *needle)
{
	if (!strstr(script, needle))
		fail_msg("script lacks \"%s\":\n%s", needle, script);
}

static unsigned count(const char *needle)
{
	unsigned n = 0;
	const char *p = script;

	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p++;
	}
	return n;
}

#define BASE "[pool]\nipv4 = 192.0.2.0/26\nipv6 = 2001:db8:a1::/64\n"

static void lab_prefixes_guarded(void **state)
{
	(void)state;
	script_of(BASE "[subscribers]\nprefix = 100.64.0.0/10\nprefix = 2001:db8:100::/48\n");
	assert_has("oifname { \"cfr0\" } accept");
	assert_has("set subscribers4 {\n\t\ttype ipv4_addr; flags interval;\n\t\telements = { "
	           "100.64.0.0/10 }");
	assert_has("set subscribers6 {\n\t\ttype ipv6_addr; flags interval;\n\t\telements = { "
	           "2001:db8:100::/48 }");
	assert_has("set pools4 {\n\t\ttype ipv4_addr; flags interval;\n\t\telements = { "
	           "192.0.2.0/26 }");
	assert_has("ip saddr @subscribers4 counter name subscriber_source drop");
	assert_has("ip6 saddr @subscribers6 counter name subscriber_source drop");
	/* Source check: a subscriber source only from its own interface, nothing else into cfrd. */
	assert_has("ip saddr @subscribers4 fib saddr . iif oif missing counter name "
	           "spoofed_source drop");
	assert_has("oifname { \"cfr0\" } ip6 saddr != @subscribers6 ip6 daddr != @pools6 counter "
	           "name spoofed_source drop");
	/* 100.64.0.0/10: the top ten bits are 0110 0100 01 = 0x191. */
	assert_has("@th,160,10 0x0191 counter name subscriber_quoted drop");
	assert_has("@th,192,10 0x0191 counter name subscriber_quoted drop");
	assert_has("@th,128,48 0x20010db80100 counter name subscriber_quoted drop");
	assert_has("@th,256,48 0x20010db80100 counter name subscriber_quoted drop");
	/* Only errors about packets to a subscriber are marked for cfrd. */
	assert_has("@th,192,10 0x0191 counter name errors_to_cfrd meta mark set 0xcf");
	assert_has("@th,256,48 0x20010db80100 counter name errors_to_cfrd meta mark set 0xcf");
	assert_int_equal(count("meta mark set"), 2);
	/* Destinations inside the subscriber space are let through before the drops. */
	assert_true(strstr(script, "ip daddr @subscribers4 accept") <
	            strstr(script, "ip saddr @subscribers4 counter"));
}

static void every_prefix_and_line(void **state)
{
	(void)state;
	script_of("[cfrd]\ntun = edge0\nerror-mark = 0x1234\n" BASE
	          "[subscribers]\nprefix = 10.0.0.0/8\nprefix = 172.16.0.0/12\n"
	          "prefix = 2001:db8:1230::/44\n"
	          "[line north]\ntun = north0\nprefix = 100.64.0.0/16\n");
	assert_has("oifname { \"edge0\", \"north0\" } accept");
	assert_has("iifname { \"edge0\", \"north0\" } accept");
	assert_has("elements = { 10.0.0.0/8, 172.16.0.0/12, 100.64.0.0/16 }");
	assert_has("@th,160,8 0x0a ");
	/* 172.16.0.0/12: 1010 1100 0001 = 0xac1, in two bytes. */
	assert_has("@th,160,12 0x0ac1 ");
	/* 2001:db8:1230::/44: the top 44 bits are 0x20010db8123. */
	assert_has("@th,128,44 0x020010db8123 ");
	assert_has("meta mark set 0x1234");
	assert_int_equal(count("counter name subscriber_quoted drop"), 2 * 3 + 2 * 1);
}

static void one_family_only(void **state)
{
	(void)state;
	script_of(BASE "[subscribers]\nprefix = 100.64.0.0/10\n");
	assert_null(strstr(script, "ip6 saddr"));
	assert_null(strstr(script, "icmpv6"));
	assert_null(strstr(script, "subscribers6"));
	assert_has("ip saddr @subscribers4 counter");
}

/* The operator's choices: a BNG binds sources, or no egress chain at all. */
static void chains_follow_config(void **state)
{
	(void)state;
	script_of("[cfrd]\nsource-check = external\negress-guard = no\n" BASE
	          "[subscribers]\nprefix = 100.64.0.0/10\n");
	assert_null(strstr(script, "chain source_check"));
	assert_null(strstr(script, "chain egress"));
	/* The kernel's errors still go through cfrd in alias form. */
	assert_has("chain errors_to_cfrd");
}

static void too_small_a_buffer(void **state)
{
	struct cfrd_config cfg;
	struct cfrd_config_error err;
	static const char text[] = BASE "[subscribers]\nprefix = 100.64.0.0/10\n";
	char small[64];

	(void)state;
	assert_int_equal(cfrd_config_parse_buffer(text, sizeof(text) - 1, &cfg, &err), 0);
	assert_int_equal(cfrd_egress_guard_script(&cfg, small, sizeof(small)), -ENOSPC);
}

/*
 * cfrd --install-guard before a reload keeps the pools the running cfrd
 * still drains (a removed one must still let its flows' replies in), once
 * each; the digest a reload compares is of the configuration alone.
 */
static void draining_pools_kept(void **state)
{
	struct cfrd_config cfg, other;
	struct cfrd_config_error err;
	struct cfr_prefix live[3];
	uint8_t d1[CFRD_GUARD_DIGEST_BYTES], d2[CFRD_GUARD_DIGEST_BYTES];
	static const char text[] = "[pool]\nipv4 = 192.0.2.64/26\nipv6 = 2001:db8:a2::/64\n"
	                           "[subscribers]\nprefix = 100.64.0.0/10\n";

	(void)state;
	assert_int_equal(cfrd_config_parse_buffer(text, sizeof(text) - 1, &cfg, &err), 0);
	assert_int_equal(cfr_prefix_parse("192.0.2.0/26", &live[0]), 0);
	assert_int_equal(cfr_prefix_parse("192.0.2.64/26", &live[1]), 0);
	assert_int_equal(cfr_prefix_parse("2001:db8:a1::/64", &live[2]), 0);
	assert_true(cfrd_egress_guard_script_more(&cfg, live, 3, script, sizeof(script)) > 0);
	assert_has("elements = { 192.0.2.64/26, 192.0.2.0/26 }");
	assert_has("elements = { 2001:db8:a2::/64, 2001:db8:a1::/64 }");
	assert_int_equal(count("192.0.2.64/26"), 1);

	assert_int_equal(cfrd_egress_guard_digest(&cfg, d1), 0);
	other = cfg;
	other.engine.timeout[CFR_TIMEOUT_UDP] = 10; /* not the guard's business */
	assert_int_equal(cfrd_egress_guard_digest(&other, d2), 0);
	assert_memory_equal(d1, d2, sizeof(d1));
	other.engine.n_pool4 = 0;
	assert_int_equal(cfrd_egress_guard_digest(&other, d2), 0);
	assert_memory_not_equal(d1, d2, sizeof(d1));
}

/* With root, nftables itself parses the script (--check changes nothing). */
static void nft_accepts(void **state)
{
	char path[] = "/tmp/cfr-guard-test.XXXXXX", cmd[128];
	FILE *f;
	int fd;

	(void)state;
	if (geteuid() != 0 || system("command -v nft >/dev/null 2>&1") != 0)
		skip();
	script_of(BASE "[subscribers]\nprefix = 100.64.0.0/10\nprefix = 2001:db8:1230::/44\n");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(script, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "nft --check -f %s", path);
	assert_int_equal(system(cmd), 0);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lab_prefixes_guarded), cmocka_unit_test(every_prefix_and_line),
	    cmocka_unit_test(one_family_only),      cmocka_unit_test(chains_follow_config),
	    cmocka_unit_test(too_small_a_buffer),   cmocka_unit_test(nft_accepts),
	    cmocka_unit_test(draining_pools_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
