/*
 * cfrd's sandbox: what the daemon gives up once setup is done (uid 0,
 * every capability, every file outside its records directory, and every
 * system call it does not use). See cfrd(8) and docs/security.md.
 */
#ifndef CFRD_SANDBOX_H
#define CFRD_SANDBOX_H

#include <sys/types.h>

#include "config.h"

struct cfrd_sandbox {
	char user[CFRD_USER_MAX];
	uid_t uid; /* 0: user = root, cfrd keeps uid 0 (an opt-out, with a warning) */
	gid_t gid;
	const char *records; /* the records directory, the only files cfrd keeps; "" for none */
	const char *control; /* the control socket, removed at exit */
	const char *config;  /* the configuration file, read again on reload; NULL: none */
	enum cfrd_seccomp seccomp;
};

/*
 * Fill <sb> from <cfg>: look [cfrd] user up in the passwd database. Call it
 * first, before any setup, so a missing user stops cfrd before it touches
 * the network. Logs one line naming a user that does not exist; returns 0
 * or -errno (-ENOENT for that).
 */
int cfrd_sandbox_init(struct cfrd_sandbox *sb, const struct cfrd_config *cfg);

/*
 * Give up everything <sb> says: set no_new_privs, give the records
 * directory to the user, lock memory and keep it out of core dumps, drop
 * the bounding set, become the user (groups, gid, uid), drop every
 * capability, clear dumpable, confine file access with Landlock, then
 * install the seccomp filter. Call it once, after every device, socket
 * and directory is open, while the process has a single thread. Logs why
 * it failed; returns 0 or -errno.
 */
int cfrd_sandbox_enter(const struct cfrd_sandbox *sb);

#endif
