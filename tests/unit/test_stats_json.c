/*
 * `cfrctl stats` as cfrd builds it (src/cfrd/stats.c): copies taken under
 * the engine lock, the reply built after it (issue 13), must say what the
 * engine says: packets, bytes, the anonymity figures of
 * cfr_engine_anonymity(), the pools, the epoch. Needs no privilege: a lab
 * engine and a struct cfrd around it, no device, no records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include <json-c/json.h>

#include "../../src/cfrd/acct.h"
#include "../../src/cfrd/daemon.h"
#include "../../src/cfrd/io_xdp.h"
#include "../../src/cfrd/reload.h"
#include "../../src/cfrd/stats.h"
#include "lab.h"

#define T0 5000

/* stats.c's neighbours: no records writer and no fast path here. */
struct json_object *cfrd_acct_json(struct cfrd_acct *a, const struct cfr_stats *s, uint64_t now_ms,
                                   uint64_t start_ms)
{
	(void)a;
	(void)s;
	(void)now_ms;
	(void)start_ms;
	return json_object_new_object();
}

void cfrd_xdp_stats(const struct cfrd_xdp *x, struct cfrd_xdp_stats *st)
{
	(void)x;
	memset(st, 0, sizeof(*st));
}

uint64_t cfrd_xdp_worker_received(const struct cfrd_xdp_worker *xw)
{
	(void)xw;
	return 0;
}

static uint64_t num(struct json_object *o, const char *path)
{
	char key[64];

	while (*path) {
		size_t len = strcspn(path, ".");

		assert_true(len < sizeof(key));
		memcpy(key, path, len);
		key[len] = '\0';
		if (!json_object_object_get_ex(o, key, &o))
			fail_msg("stats reply has no %s", key);
		path += len + (path[len] == '.');
	}
	return json_object_get_uint64(o);
}

static void reply_agrees_with_engine(void **state)
{
	static struct cfrd_reload reload;
	struct cfrd d = {.reload = &reload, .start_ms = T0};
	const struct cfr_stats *st;
	struct cfr_anon_stats a;
	struct json_object *j, *hist;
	struct pkt_spec s;
	struct pkt p;
	struct cfr_pkt r;
	static const char *const q[] = {"min", "p5", "median", "max"};

	(void)state;
	lab_config(&reload.cfg.engine);
	reload.cfg.engine.epoch_s = 600;
	d.engine = lab_engine(&reload.cfg.engine);
	assert_int_equal(pthread_mutex_init(&d.engine_lock, NULL), 0);
	st = cfr_engine_stats(d.engine);
	/* 40 subscribers, 3 UDP flows each, on the lab's 64 IPv4 aliases; 2 over IPv6. */
	for (unsigned sub = 0; sub < 40; sub++) {
		for (unsigned f = 0; f < 3; f++) {
			lab_spec(&s, 4, IPPROTO_UDP, (uint16_t)(20000 + f), 53);
			s.src[2] = (uint8_t)(sub + 1);
			r = lab_send(d.engine, &s, &p, T0 + 1000 + sub);
			lab_expect_forward(&r, CFR_DIR_OUT);
		}
	}
	for (unsigned f = 0; f < 2; f++) {
		lab_spec(&s, 6, IPPROTO_UDP, (uint16_t)(20000 + f), 53);
		r = lab_send(d.engine, &s, &p, T0 + 2000);
		lab_expect_forward(&r, CFR_DIR_OUT);
	}

	j = cfrd_stats_json(&d, T0 + 63000);
	assert_non_null(j);
	assert_int_equal(num(j, "uptime_s"), 63);
	assert_int_equal(num(j, "packets.tx.out"), st->tx[CFR_DIR_OUT]);
	assert_int_equal(num(j, "packets.rx.out"), 122);
	assert_int_equal(num(j, "bytes.rx.out"), st->rx_bytes[CFR_DIR_OUT]);
	assert_int_equal(num(j, "bytes.tx.out"), st->tx_bytes[CFR_DIR_OUT]);
	assert_true(num(j, "bytes.tx.out") >= 122 * 28);
	assert_int_equal(num(j, "flows.created"), 122);
	/* The figures built after the lock are those of the one-call function. */
	cfr_engine_anonymity(d.engine, &a);
	assert_true(a.aliases_in_use[CFR_FAMILY_V4] > 1);
	assert_int_equal(num(j, "anonymity.ipv4.aliases_in_use"), a.aliases_in_use[CFR_FAMILY_V4]);
	assert_int_equal(num(j, "anonymity.ipv6.aliases_in_use"), a.aliases_in_use[CFR_FAMILY_V6]);
	for (unsigned i = 0; i < 4; i++) {
		char path[48];
		const uint32_t *want[] = {a.min, a.p5, a.median, a.max};

		snprintf(path, sizeof(path), "anonymity.ipv4.%s", q[i]);
		assert_int_equal(num(j, path), want[i][CFR_FAMILY_V4]);
	}
	assert_true(json_object_object_get_ex(
	    json_object_object_get(json_object_object_get(j, "anonymity"), "ipv4"), "histogram",
	    &hist));
	for (unsigned b = 0; b < CFR_ANON_BUCKETS; b++)
		assert_int_equal(json_object_get_uint64(json_object_array_get_idx(hist, b)),
		                 a.histogram[CFR_FAMILY_V4][b]);
	/* The lab's pools: a /26 and a /64; ports 1024-65535 on each address. */
	assert_int_equal(num(j, "pools.ipv4.prefixes"), 1);
	assert_int_equal(num(j, "pools.ipv4.prefixes_draining"), 0);
	assert_int_equal(num(j, "pools.ipv4.addresses"), 64);
	assert_int_equal(num(j, "pools.ipv4.ports"), 64ull * (LAB_PORT_MAX - LAB_PORT_MIN + 1));
	assert_int_equal(num(j, "pools.ipv6.prefixes"), 1);
	/* The first packet began the first epoch. */
	assert_int_equal(num(j, "privacy.epoch"), 1);
	assert_int_equal(num(j, "privacy.epoch_length_s"), 600);
	assert_int_equal(num(j, "privacy.epoch_age_s"), 62);
	json_object_put(j);

	/* The epoch ends: its age starts again, nothing else moves. */
	cfr_engine_epoch_rotate(d.engine, T0 + 70000);
	j = cfrd_stats_json(&d, T0 + 72500);
	assert_int_equal(num(j, "privacy.epoch"), 2);
	assert_int_equal(num(j, "privacy.epoch_age_s"), 2);
	assert_int_equal(num(j, "anonymity.ipv4.aliases_in_use"), a.aliases_in_use[CFR_FAMILY_V4]);
	json_object_put(j);
	pthread_mutex_destroy(&d.engine_lock);
	cfr_engine_free(d.engine);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(reply_agrees_with_engine),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
