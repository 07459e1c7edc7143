/*
 * cfr-exporter's rendering (src/tools/exporter/text.c): the JSON cfrctl
 * gets becomes Prometheus text with fixed names; a field without a metric
 * is counted, never silently lost; strings from the JSON cannot smuggle a
 * label or a line in; with no JSON (cfrd silent) only cfr_up 0 remains.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <cfr/cfr.h>

#include "../../src/tools/exporter/exporter.h"

static char *render(const char *json, unsigned *unmapped)
{
	static struct cfrx_buf out;
	struct cfrx_self self = {.control_requests = 3, .control_failures = 1};
	struct json_object *o = json ? json_tokener_parse(json) : NULL;

	cfrx_buf_free(&out);
	if (json)
		assert_non_null(o);
	*unmapped = cfrx_render(o, &self, &out);
	json_object_put(o);
	assert_false(out.oom);
	return out.s;
}

static void test_down(void **state)
{
	unsigned unmapped;
	char *t = render(NULL, &unmapped);

	(void)state;
	assert_non_null(strstr(t, "\ncfr_up 0\n"));
	assert_non_null(strstr(t, "cfr_exporter_control_failures_total 1\n"));
	assert_null(strstr(t, "cfr_packets"));
	assert_int_equal(unmapped, 0);
}

/* Every reason of the X-macro list that the JSON carries is a label, and "total" is not. */
static void test_drop_reasons(void **state)
{
	char json[8192] = "{\"drops\":{\"total\":0";
	char want[128];
	unsigned unmapped;
	char *t;

	(void)state;
#define REASON_(id, name, text) strcat(json, ",\"" name "\":1");
	CFR_DROP_REASONS(REASON_)
#undef REASON_
	strcat(json, "}}");
	t = render(json, &unmapped);
#define REASON_(id, name, text)                                                                    \
	snprintf(want, sizeof(want), "cfr_dropped_packets_total{reason=\"%s\"} 1\n", name);        \
	assert_non_null(strstr(t, want));
	CFR_DROP_REASONS(REASON_)
#undef REASON_
	assert_null(strstr(t, "reason=\"total\""));
	assert_int_equal(unmapped, 0);
}

static void test_unmapped_and_hostile_strings(void **state)
{
	unsigned unmapped;
	char *t =
	    render("{\"version\":\"1.0\\\"} evil{x=\\\"\\n\",\"newfield\":7,"
	           "\"drops\":{\"total\":1,\"Bad key\":1,\"no_flow\":2},"
	           "\"io\":{\"backend\":\"tun\\n1\",\"workers\":2,\"packets_by_worker\":[5,6]},"
	           "\"accounting\":{\"enabled\":true,\"records_sealed\":4}}",
	           &unmapped);

	(void)state;
	/* newfield and the badly named reason: counted, not shown. */
	assert_int_equal(unmapped, 2);
	assert_non_null(strstr(t, "cfr_exporter_unmapped_fields 2\n"));
	assert_null(strstr(t, "Bad key"));
	assert_non_null(strstr(t, "cfr_dropped_packets_total{reason=\"no_flow\"} 2\n"));
	assert_non_null(strstr(t, "cfr_build_info{version=\"1.0evilx\"} 1\n"));
	assert_null(strstr(t, "cfr_io_info"));
	assert_non_null(
	    strstr(t, "cfr_worker_packets_received_total{worker=\"1\",path=\"tun\"} 6\n"));
	assert_non_null(strstr(t, "cfr_accounting_enabled 1\n"));
	assert_non_null(strstr(t, "cfr_records_sealed_total 4\n"));
	assert_non_null(strstr(t, "\ncfr_up 1\n"));
}

/* Bucket i holds sets of [2^i, 2^(i+1)) subscribers: le is 2^(i+1)-1, cumulative. */
static void test_histogram(void **state)
{
	unsigned unmapped;
	char *t = render("{\"anonymity\":{\"ipv4\":{\"aliases_in_use\":3,\"min\":1,\"p5\":1,"
	                 "\"median\":2,\"max\":9,\"histogram\":[1,1,0,1],"
	                 "\"new_flows_histogram\":[4,0,2,1]}}}",
	                 &unmapped);

	(void)state;
	assert_int_equal(unmapped, 0);
	assert_non_null(
	    strstr(t, "cfr_new_flow_anonymity_set_bucket{family=\"ipv4\",le=\"1\"} 4\n"));
	assert_non_null(
	    strstr(t, "cfr_new_flow_anonymity_set_bucket{family=\"ipv4\",le=\"3\"} 4\n"));
	assert_non_null(
	    strstr(t, "cfr_new_flow_anonymity_set_bucket{family=\"ipv4\",le=\"7\"} 6\n"));
	assert_non_null(
	    strstr(t, "cfr_new_flow_anonymity_set_bucket{family=\"ipv4\",le=\"+Inf\"} 7\n"));
	assert_non_null(strstr(t, "cfr_new_flow_anonymity_set_count{family=\"ipv4\"} 7\n"));
	assert_non_null(strstr(t, "cfr_anonymity_set_size{family=\"ipv4\",quantile=\"0.5\"} 2\n"));
	assert_non_null(strstr(t, "cfr_anonymity_set_size_count{family=\"ipv4\"} 3\n"));
	assert_non_null(
	    strstr(t, "cfr_aliases_by_anonymity_set{family=\"ipv4\",set_size=\"8+\"} 1\n"));
}

/* Issue 15's gauges and byte counters: each field has its metric, none is left over. */
static void test_load_and_pools(void **state)
{
	unsigned unmapped;
	char *t = render(
	    "{\"bytes\":{\"rx\":{\"out\":1500,\"in\":9000},\"tx\":{\"out\":1400,\"in\":9000}},"
	    "\"privacy\":{\"epoch_age_s\":42,\"epoch_length_s\":3600},"
	    "\"accounting\":{\"write_lag_s\":1},"
	    "\"pools\":{\"ipv4\":{\"prefixes\":1,\"prefixes_draining\":0,\"addresses\":64,"
	    "\"ports\":4194304},\"ipv6\":{\"prefixes\":2,\"prefixes_draining\":1}},"
	    "\"io\":{\"xdp\":{\"tx_bytes\":700,\"rx_by_worker\":[3,4]}}}",
	    &unmapped);

	(void)state;
	assert_int_equal(unmapped, 0);
	assert_non_null(strstr(t, "cfr_received_bytes_total{direction=\"inbound\"} 9000\n"));
	assert_non_null(strstr(t, "cfr_sent_bytes_total{direction=\"outbound\"} 1400\n"));
	assert_non_null(strstr(t, "# TYPE cfr_sent_bytes_total counter\n"));
	assert_non_null(strstr(t, "cfr_epoch_age_seconds 42\n"));
	assert_non_null(strstr(t, "cfr_epoch_length_seconds 3600\n"));
	assert_non_null(strstr(t, "cfr_records_write_lag_seconds 1\n"));
	assert_non_null(strstr(t, "cfr_pool_prefixes{family=\"ipv6\",state=\"draining\"} 1\n"));
	assert_non_null(strstr(t, "cfr_pool_addresses{family=\"ipv4\"} 64\n"));
	assert_non_null(strstr(t, "cfr_pool_ports{family=\"ipv4\"} 4194304\n"));
	assert_non_null(strstr(t, "cfr_xdp_sent_bytes_total 700\n"));
	assert_non_null(
	    strstr(t, "cfr_worker_packets_received_total{worker=\"1\",path=\"xdp\"} 4\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_down),
	    cmocka_unit_test(test_drop_reasons),
	    cmocka_unit_test(test_unmapped_and_hostile_strings),
	    cmocka_unit_test(test_histogram),
	    cmocka_unit_test(test_load_and_pools),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
