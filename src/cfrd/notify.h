/*
 * Telling the service manager how cfrd is doing (sd_notify(3)'s datagram
 * protocol): READY once packets flow, STATUS with the flow count, WATCHDOG
 * pings while the packet path is healthy, STOPPING on the way out. Does
 * nothing when cfrd was not started by systemd (no $NOTIFY_SOCKET).
 */
#ifndef CFRD_NOTIFY_H
#define CFRD_NOTIFY_H

#include <stdint.h>

#include "daemon.h"

/*
 * Connect to $NOTIFY_SOCKET and read $WATCHDOG_USEC. Before the sandbox:
 * afterwards cfrd can no longer create sockets, only send on this one.
 * Returns 0 (also without a notify socket) or -errno.
 */
int cfrd_notify_open(void);

/* Send one message ("READY=1\nSTATUS=..."), printf-style. Never blocks. */
void cfrd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * From the control thread's housekeeping, with the engine lock held: a
 * WATCHDOG ping when half the interval has passed (holding the lock proves
 * no worker is stuck inside a burst, and being called proves the control
 * loop runs), and a STATUS line when the flow count changed.
 */
void cfrd_notify_tick(const struct cfrd *d, uint64_t now_ms);

#endif
