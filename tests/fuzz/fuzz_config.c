/*
 * libFuzzer target: cfrd's configuration parser, through the same
 * in-memory entry point the daemon's file loader uses. Beyond "no crash",
 * it checks the contract callers rely on: an error always comes with a
 * message that is a terminated string, and a success always has a pool and
 * subscribers whose prefixes are well formed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cfrd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfrd_config cfg;
	struct cfrd_config_error err;
	/* An exact-size heap copy: a read past the end is an ASan report. */
	char *buf = malloc(size ? size : 1);
	int ret;

	if (buf == NULL)
		abort();
	memcpy(buf, data, size);
	ret = cfrd_config_parse_buffer(buf, size, &cfg, &err);
	if (ret != 0) {
		if (err.msg[0] == '\0' || memchr(err.msg, '\0', sizeof(err.msg)) == NULL)
			abort();
	} else {
		const struct cfr_engine_config *e = &cfg.engine;

		if (e->n_pool4 + e->n_pool6 == 0 || e->n_subscribers == 0 ||
		    e->n_subscribers > CFR_MAX_SUBSCRIBER_PREFIXES || cfg.n_lines > CFRD_MAX_LINES)
			abort();
		for (unsigned i = 0; i < e->n_subscribers; i++)
			if (e->subscriber_ingress[i] > cfg.n_lines)
				abort();
		if (e->port_min == 0 || e->port_min > e->port_max)
			abort();
	}
	free(buf);
	return 0;
}
