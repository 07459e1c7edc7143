/*
 * cfrd's sandbox: what the daemon gives up once setup is done (every
 * capability, and every system call it does not use). See cfrd(8) and
 * docs/security.md.
 */
#ifndef CFRD_SANDBOX_H
#define CFRD_SANDBOX_H

#include "config.h"

/*
 * Drop every capability (effective, permitted, inheritable, ambient and
 * the bounding set), forbid regaining any (no_new_privs), then install the
 * seccomp filter <mode> asks for. Call it once, after every device, socket
 * and directory is open. Logs why it failed; returns 0 or -errno.
 */
int cfrd_sandbox_enter(enum cfrd_seccomp mode);

#endif
