/*
 * libFuzzer target: the control protocol, without a socket. The input is
 * cut into the reads a client could produce (each 0xff byte ends a read),
 * fed to cfrd_control_request() exactly as the daemon's client loop does
 * (same buffer size, same "more" flag, hang-up at the end), and every reply
 * is rendered to JSON. The engine behind it has live flows, so `stats`
 * walks real counters and the anonymity scan.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cfrd/control.h"
#include "../../src/cfrd/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cfrd daemon_state;
static struct cfrd_worker worker = {.d = &daemon_state};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct cfr_engine_config cfg;
	/* A UDP packet from a subscriber: one flow for the counters to show. */
	static const uint8_t udp[28] = {0x45, 0,    0,   28, 0, 1, 0,   0, 64,  17,
	                                0,    0,    100, 64, 1, 2, 203, 0, 113, 10,
	                                0x9c, 0x40, 0,   7,  0, 8, 0,   0};
	uint8_t buf[sizeof(udp)];
	struct cfr_pkt p = {.data = buf, .len = sizeof(buf)};

	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	cfrd_log_set_level(CFRD_LOG_ERROR); /* `epoch rotate` logs at info */
	cfr_engine_config_defaults(&cfg);
	if (cfr_prefix_parse("192.0.2.0/30", &cfg.pool4[0]) < 0 ||
	    cfr_prefix_parse("100.64.0.0/10", &cfg.subscribers[0]) < 0)
		abort();
	cfg.n_pool4 = 1;
	cfg.n_subscribers = 1;
	cfg.max_flows = 64;
	cfg.max_subscribers = 8;
	daemon_state.engine = cfr_engine_new(&cfg);
	if (daemon_state.engine == NULL)
		abort();
	/* As after cfrd_workers_open(): `stats` names the main device's backend. */
	pthread_mutex_init(&daemon_state.engine_lock, NULL);
	daemon_state.n_io = 1;
	daemon_state.n_workers = 1;
	daemon_state.workers = &worker;
	worker.io[0].fd = -1;
	worker.io[0].backend = &cfrd_io_tun;
	memcpy(buf, udp, sizeof(udp));
	cfr_engine_process(daemon_state.engine, &p, 1, 1000);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfrd_control_client c = {.fd = -1};
	uint64_t now = 2000;
	size_t pos = 0;

	for (;;) {
		struct json_object *reply = NULL;
		size_t room = sizeof(c.buf) - 1 - c.len, got = 0;
		enum cfrd_control_step step;

		/* One read(): up to the next 0xff, never more than the room left. */
		while (pos < size && got < room && data[pos] != 0xff)
			c.buf[c.len + got++] = (char)data[pos++];
		if (pos < size && data[pos] == 0xff && got < room)
			pos++;
		c.len += got;
		step = cfrd_control_request(c.buf, c.len, got > 0, &daemon_state, now++, &reply);
		if (step == CFRD_CONTROL_REPLY) {
			if (reply != NULL) {
				size_t len;

				json_object_to_json_string_length(reply, JSON_C_TO_STRING_PLAIN,
				                                  &len);
				json_object_put(reply);
			}
			c.len = 0; /* the daemon hangs up; the next bytes are a new client */
		} else if (step == CFRD_CONTROL_HANG_UP) {
			c.len = 0;
		}
		if (pos >= size && (got == 0 || step != CFRD_CONTROL_NEED_MORE))
			break;
	}
	return 0;
}
