/*
 * cfrd configuration: the INI file (see cfrd.conf(5)) turned into a plain
 * struct. Parsing is pure (no I/O besides reading the file, no logging), so
 * a fuzz target can drive cfrd_config_parse_buffer() directly.
 */
#ifndef CFRD_CONFIG_H
#define CFRD_CONFIG_H

#include <net/if.h>
#include <stddef.h>
#include <sys/un.h>

#include <cfr/cfr.h>

#include "log.h"

#define CFRD_DEFAULT_TUN     "cfr0"
#define CFRD_DEFAULT_MTU     1500
#define CFRD_DEFAULT_CONTROL "/run/cfrd.sock"

struct cfrd_config {
	char tun[IFNAMSIZ];
	unsigned mtu;
	char control[sizeof(((struct sockaddr_un *)0)->sun_path)];
	enum cfrd_log_level log_level;
	struct cfr_engine_config engine;
};

/* The first error found: the line it is on (0 if none applies) and why. */
struct cfrd_config_error {
	int line;
	char msg[160];
};

/*
 * Parse the INI text <buf> of <len> bytes into <cfg>, starting from the
 * defaults. Returns 0, or -EINVAL with <err> filled.
 */
int cfrd_config_parse_buffer(const char *buf, size_t len, struct cfrd_config *cfg,
                             struct cfrd_config_error *err);

/*
 * Read and parse the file <path>. Returns 0, -EINVAL with <err> filled, or
 * another -errno when the file cannot be read (<err> filled, line 0).
 */
int cfrd_config_load(const char *path, struct cfrd_config *cfg, struct cfrd_config_error *err);

#endif
