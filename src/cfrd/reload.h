/*
 * Reloading cfrd's configuration without dropping a flow (SIGHUP and
 * `cfrctl reload`), and the root-side step before it, `cfrd
 * --install-guard`: see cfrd(8), RELOADING.
 */
#ifndef CFRD_RELOAD_H
#define CFRD_RELOAD_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "daemon.h"
#include "egress_guard.h"

struct cfrd_reload {
	const char *path;       /* the configuration file, as given to cfrd */
	struct cfrd_config cfg; /* the configuration running now */
	/* The guard table last installed, as far as cfrd knows (at start, or --install-guard). */
	uint8_t guard[CFRD_GUARD_DIGEST_BYTES];
	bool guard_known;
};

/* Remember <cfg>, read from <path>, as the running configuration; its guard table is installed. */
void cfrd_reload_init(struct cfrd_reload *r, const char *path, const struct cfrd_config *cfg);

/* Once sandboxed: warn now if the file cannot be read again (permissions, Landlock). */
void cfrd_reload_ready(const struct cfrd_reload *r);

/*
 * Read the configuration file again and apply what changed, or refuse it
 * whole (one log line: FILE:LINE or the key, and why). Takes the engine
 * lock itself, once, for the swap only. Returns the control reply:
 * {"reloaded": FILE, "changed": [...], ...} or {"error": ...}.
 */
struct json_object *cfrd_reload_run(struct cfrd *d, uint64_t now_ms);

/*
 * `guard HEX`: `cfrd --install-guard` installed the table whose digest is
 * <hex> (cfrd_egress_guard_digest()).
 */
struct json_object *cfrd_reload_guard(struct cfrd *d, const char *hex);

/*
 * cfrd --install-guard -c <path>: as root, install the guard table for
 * <cfg>, keeping the pool prefixes a cfrd running on its control socket
 * still uses (they drain after the reload), and tell that cfrd. Returns
 * the exit status.
 */
int cfrd_install_guard(const char *path, const struct cfrd_config *cfg);

#endif
