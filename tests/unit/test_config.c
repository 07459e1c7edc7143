/*
 * cfrd's key table (src/cfrd/config.c): the defaults it prints are the
 * ones the parser really starts from, every integer key takes its range
 * and refuses one past it with FILE:LINE-ready errors naming the key, and
 * the odd messages an operator relies on stay as they are.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../src/cfrd/config.h"

/* The smallest configuration cfrd accepts: a pool and subscribers. */
static const char base_text[] = "[pool]\n"
                                "ipv4 = 192.0.2.0/24\n"
                                "[subscribers]\n"
                                "prefix = 100.64.0.0/10\n";
#define BASE_LINES 4

static struct cfrd_config base, cfg;

static int parse(const char *text, struct cfrd_config_error *err)
{
	return cfrd_config_parse_buffer(text, strlen(text), &cfg, err);
}

/* <base_text> and one more line, "[section]\nkey = value", which is line BASE_LINES + 2. */
static int parse_with(const struct cfrd_config_key *k, const char *value,
                      struct cfrd_config_error *err)
{
	char text[512];
	const char *section = strcmp(k->section, "line") == 0 ? "line a" : k->section;
	const char *more = "";

	/* A [line] needs its device and a prefix, [xdp] both sides, [accounting] both files. */
	if (strcmp(k->section, "line") == 0)
		more = strcmp(k->name, "tun") == 0      ? "prefix = 100.128.0.0/24\n"
		       : strcmp(k->name, "prefix") == 0 ? "tun = cfr9\n"
		                                        : "tun = cfr9\nprefix = 100.128.0.0/24\n";
	snprintf(text, sizeof(text), "%s[%s]\n%s = %s\n%s", base_text, section, k->name, value,
	         more);
	return parse(text, err);
}

static void setup_base(void)
{
	struct cfrd_config_error err;

	assert_int_equal(cfrd_config_parse_buffer(base_text, strlen(base_text), &base, &err), 0);
}

/* Setting a key to its documented default changes nothing. */
static void defaults_are_the_real_ones(void **state)
{
	(void)state;
	setup_base();
	for (size_t i = 0; i < cfrd_config_n_keys; i++) {
		const struct cfrd_config_key *k = &cfrd_config_keys[i];
		struct cfrd_config_error err;

		if (k->def == NULL)
			continue;
		if (parse_with(k, k->def, &err) != 0)
			fail_msg("[%s] %s = %s refused: %d: %s", k->section, k->name, k->def,
			         err.line, err.msg);
		/* Both were zeroed before parsing, padding included. */
		// NOLINTNEXTLINE(bugprone-suspicious-memory-comparison)
		if (memcmp(&cfg, &base, sizeof(cfg)) != 0)
			fail_msg("[%s] %s = %s is not the default", k->section, k->name, k->def);
	}
}

/* Each key's table entry is complete, and integer fields can hold their maximum. */
static void table_is_complete(void **state)
{
	(void)state;
	for (size_t i = 0; i < cfrd_config_n_keys; i++) {
		const struct cfrd_config_key *k = &cfrd_config_keys[i];

		if (k->section == NULL || k->name == NULL || k->unit == NULL || k->help == NULL ||
		    k->set == NULL)
			fail_msg("key %zu (%s) is missing a field", i, k->name);
		if (k->type == CFRD_KEY_UINT && k->size != 0 && k->size < 4 &&
		    k->max >= 1u << (8 * k->size))
			fail_msg("%s: max %u does not fit %zu bytes", k->name, k->max, k->size);
		for (size_t j = 0; j < i; j++)
			if (strcmp(k->section, cfrd_config_keys[j].section) == 0 &&
			    strcmp(k->name, cfrd_config_keys[j].name) == 0)
				fail_msg("[%s] %s is in the table twice", k->section, k->name);
	}
}

static void expect_error(const struct cfrd_config_key *k, const char *value)
{
	struct cfrd_config_error err;
	char want[64];

	if (parse_with(k, value, &err) == 0)
		fail_msg("[%s] %s = %s accepted", k->section, k->name, value);
	snprintf(want, sizeof(want), "invalid %s '%s'", k->name, value);
	if (err.line != BASE_LINES + 2 || strncmp(err.msg, want, strlen(want)) != 0)
		fail_msg("[%s] %s = %s: line %d '%s'", k->section, k->name, value, err.line,
		         err.msg);
}

/* Integer keys take min and max, and refuse one past either with an error naming them. */
static void ranges(void **state)
{
	(void)state;
	for (size_t i = 0; i < cfrd_config_n_keys; i++) {
		const struct cfrd_config_key *k = &cfrd_config_keys[i];
		struct cfrd_config_error err;
		char v[16];

		if (k->type != CFRD_KEY_UINT)
			continue;
		snprintf(v, sizeof(v), "%u", k->min);
		if (parse_with(k, v, &err) != 0)
			fail_msg("[%s] %s = %s refused: %s", k->section, k->name, v, err.msg);
		snprintf(v, sizeof(v), "%u", k->max);
		if (parse_with(k, v, &err) != 0)
			fail_msg("[%s] %s = %s refused: %s", k->section, k->name, v, err.msg);
		snprintf(v, sizeof(v), "%llu", (unsigned long long)k->max + 1);
		expect_error(k, v);
		if (k->min > 0) {
			snprintf(v, sizeof(v), "%u", k->min - 1);
			expect_error(k, v);
		}
		expect_error(k, "-1");
		expect_error(k, "12x");
	}
}

static void message(const char *text, int line, const char *msg)
{
	struct cfrd_config_error err;
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s%s", base_text, text);
	assert_int_not_equal(parse(buf, &err), 0);
	assert_string_equal(err.msg, msg);
	assert_int_equal(err.line, line);
}

/* What operators see, word for word. */
static void messages(void **state)
{
	(void)state;
	message("[cfrd]\nmtu = 70000\n", 6,
	        "invalid mtu '70000': expected bytes from 1280 to 65535");
	message("[cfrd]\nworkers = 0\n", 6, "invalid workers '0': expected auto or 1 to 64");
	message("[limits]\ntcp-per-subscriber = x\n", 6,
	        "invalid tcp-per-subscriber 'x': expected an integer from 0 (no limit) to "
	        "268435456");
	message("[cfrd]\nmtu = 1400\nmtu = 1400\n", 7,
	        "duplicate key 'mtu' (already set on line 6)");
	message("[cfrd]\nno-such-key = 1\n", 6, "unknown key 'no-such-key' in [cfrd]");
	message("[nope]\nx = 1\n", 6, "unknown section [nope]");
	message("[line]\ntun = x\n", 6, "unknown section [line]");
	message("[line a]\ntun = x\nfoo = 1\n", 7,
	        "unknown key 'foo' in [line a]: expected tun, prefix, inside or "
	        "subscriber-prefix6");
	message("[line a]\ntun = x\ntun = y\n", 7, "duplicate key 'tun' (already set on line 6)");
	message("[line a]\nsubscriber-prefix6 = 0\n", 6,
	        "invalid subscriber-prefix6 '0': expected a length from 1 to 128");
	message("[pool]\nports = 2000-1000\n", 6,
	        "port range 2000-1000 is reversed (did you mean 1000-2000?)");
	message("[pool]\nipv4 = 10.0.0.1/8\n", 6,
	        "prefix 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)");
	message("[scrub]\nip-id = maybe\n", 6, "invalid boolean 'maybe': expected yes or no");
	message("[cfrd]\nseccomp = maybe\n", 6, "invalid seccomp 'maybe': expected yes, no or log");
	message("[accounting]\nrecords = rel\n", 6,
	        "invalid records 'rel': expected an absolute path under 256 bytes");
	message("[xdp]\ninside = a/b\n", 6,
	        "invalid inside 'a/b': expected an interface name of 1 to 15 characters");
}

/* [privacy] class (issue 17): the first line replaces the built-in classes. */
static void classes(void **state)
{
	struct cfrd_config_error err;
	char buf[1024];

	(void)state;
	setup_base();
	assert_int_equal(base.engine.n_classes, 2);
	assert_int_equal(base.engine.classes[1].mapping, CFR_MAPPING_ENDPOINT_INDEPENDENT);
	assert_int_equal(base.engine.classes[1].filtering, CFR_FILTERING_ADDRESS_DEPENDENT);
	snprintf(buf, sizeof(buf),
	         "%s[privacy]\nclass = udp 3478-3479 endpoint-independent endpoint-independent\n"
	         "class = tcp 443 per-flow\nclass = udp 0 address-dependent\n",
	         base_text);
	assert_int_equal(parse(buf, &err), 0);
	assert_int_equal(cfg.engine.n_classes, 3);
	assert_int_equal(cfg.engine.classes[0].proto, CFR_PROTO_UDP);
	assert_int_equal(cfg.engine.classes[0].port_min, 3478);
	assert_int_equal(cfg.engine.classes[0].port_max, 3479);
	assert_int_equal(cfg.engine.classes[0].filtering, CFR_FILTERING_ENDPOINT_INDEPENDENT);
	assert_int_equal(cfg.engine.classes[1].proto, CFR_PROTO_TCP);
	assert_int_equal(cfg.engine.classes[1].mapping, CFR_MAPPING_PER_FLOW);
	assert_int_equal(cfg.engine.classes[1].filtering, CFR_FILTERING_ADDRESS_PORT_DEPENDENT);
	assert_int_equal(cfg.engine.classes[2].mapping, CFR_MAPPING_ADDRESS_DEPENDENT);
	assert_int_equal(cfg.engine.classes[2].filtering, CFR_FILTERING_ADDRESS_DEPENDENT);
	assert_int_equal(cfg.engine.classes[2].port_max, 0);
	message("[privacy]\nclass = tcp 80 endpoint-independent address-dependent\n", 6,
	        "invalid class 'tcp 80 endpoint-independent address-dependent': a TCP class with "
	        "a mapping filters by address and port only (address-and-port-dependent)");
	message("[privacy]\nclass = udp 1-9 address-dependent endpoint-independent\n", 6,
	        "invalid class 'udp 1-9 address-dependent endpoint-independent': the filtering "
	        "lets in more than the mapping holds");
	message("[privacy]\nclass = udp 9-1 per-flow\n", 6,
	        "invalid class 'udp 9-1 per-flow': ports are PORT or FIRST-LAST, from 0 to 65535");
	message("[privacy]\nclass = icmp 1 per-flow\n", 6,
	        "invalid class 'icmp 1 per-flow': the protocol is tcp or udp");
	message("[privacy]\nclass = udp 1 symmetric\n", 6,
	        "invalid class 'udp 1 symmetric': the mapping is per-flow, endpoint-independent or "
	        "address-dependent");
	message("[privacy]\nclass = udp\n", 6,
	        "invalid class 'udp': expected tcp|udp PORTS MAPPING [FILTERING]");
	message("[privacy]\nclass = udp 1 per-flow address-and-port-dependent x\n", 6,
	        "invalid class 'udp 1 per-flow address-and-port-dependent x': expected tcp|udp "
	        "PORTS MAPPING [FILTERING]");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(table_is_complete),
	    cmocka_unit_test(defaults_are_the_real_ones),
	    cmocka_unit_test(ranges),
	    cmocka_unit_test(messages),
	    cmocka_unit_test(classes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
