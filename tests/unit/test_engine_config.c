/*
 * cfr_engine_config_check(): the rules cfr_engine_new() applies, with the
 * engine's limits as cfr.h exports them, so that cfrd's configuration can
 * name a reason instead of "Invalid argument".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cfr/cfr.h>
#include <errno.h>
#include <string.h>

static void minimal(struct cfr_engine_config *cfg)
{
	cfr_engine_config_defaults(cfg);
	assert_int_equal(cfr_prefix_parse("192.0.2.0/24", &cfg->pool4[0]), 0);
	cfg->n_pool4 = 1;
	assert_int_equal(cfr_prefix_parse("100.64.0.0/10", &cfg->subscribers[0]), 0);
	cfg->n_subscribers = 1;
}

/* <cfg> is refused by the check and by cfr_engine_new() alike. */
static void refused(const struct cfr_engine_config *cfg)
{
	const char *why = NULL;

	assert_int_equal(cfr_engine_config_check(cfg, &why), -EINVAL);
	assert_non_null(why);
	assert_int_equal(cfr_engine_config_check(cfg, NULL), -EINVAL);
	assert_null(cfr_engine_new(cfg));
	assert_int_equal(errno, EINVAL);
}

static void accepts_minimal(void **state)
{
	struct cfr_engine_config cfg;
	const char *why = "untouched";

	(void)state;
	minimal(&cfg);
	assert_int_equal(cfr_engine_config_check(&cfg, &why), 0);
	assert_null(why);
}

static void limits(void **state)
{
	struct cfr_engine_config cfg;

	(void)state;
	minimal(&cfg);
	cfg.max_flows = CFR_MAX_FLOWS + 1;
	refused(&cfg);
	minimal(&cfg);
	cfg.max_frags = CFR_MAX_FRAGS + 1;
	refused(&cfg);
	minimal(&cfg);
	cfg.max_subscribers = CFR_MAX_SUBSCRIBERS + 1;
	refused(&cfg);
	minimal(&cfg);
	cfg.max_flows = 0;
	refused(&cfg);
}

static void pools(void **state)
{
	struct cfr_engine_config cfg;

	(void)state;
	minimal(&cfg);
	cfg.n_pool4 = 0;
	refused(&cfg);
	minimal(&cfg);
	assert_int_equal(cfr_prefix_parse("2001:db8::/121", &cfg.pool6[0]), 0);
	assert_true(cfg.pool6[0].len > CFR_POOL6_MAX_LEN);
	cfg.n_pool6 = 1;
	refused(&cfg);
	minimal(&cfg);
	cfg.n_subscribers = 0;
	refused(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(accepts_minimal),
	    cmocka_unit_test(limits),
	    cmocka_unit_test(pools),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
