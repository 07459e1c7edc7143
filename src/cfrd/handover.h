/*
 * Restart without dropping a flow: the running cfrd hands its engine (every
 * flow, alias, limit and the epoch's secrets) to a new cfrd started with
 * --takeover, over the control socket, in a memfd that never touches a
 * disk. See cfrd(8), "RESTART".
 */
#ifndef CFRD_HANDOVER_H
#define CFRD_HANDOVER_H

#include <stdbool.h>

#include <cfr/cfr.h>

#include "config.h"
#include "fastpath.h"

struct cfrd;

/* The control socket line a new cfrd sends to ask for the engine. */
#define CFRD_HANDOVER_REQUEST "handover"

/* What became of a handover the running cfrd was asked for. */
enum cfrd_handover {
	CFRD_HANDOVER_NONE = 0,
	CFRD_HANDOVER_GIVEN,  /* the new cfrd has the engine: stop without ending the epoch */
	CFRD_HANDOVER_FAILED, /* it does not: stop as usual, sealing the epoch's records */
};

/*
 * The running side, on the control thread, for the client on <fd> that
 * sent CFRD_HANDOVER_REQUEST: stop the workers (the new cfrd attaches the
 * devices next), write the journal up to now, send the engine, and wait
 * for the new cfrd's verdict. Either way this cfrd stops afterwards: its
 * devices are gone. <fd> stays open until the caller closes it, last, so
 * the new cfrd starts only once this one has let go of everything.
 */
enum cfrd_handover cfrd_handover_give(struct cfrd *d, int fd);

/*
 * The new side, before it opens anything: ask the cfrd on cfg->control for
 * its engine. Returns the engine, or NULL after saying why in one line (no
 * cfrd running, another layout, ...): the caller then starts clean, which
 * it can do at once, since the old cfrd has stopped by the time this returns.
 * With the engine come the running fast path's maps and links in
 * <fastpath> (none if it had none), for cfrd_fastpath_open().
 */
struct cfr_engine *cfrd_handover_take(const struct cfrd_config *cfg,
                                      struct cfrd_fastpath_handover *fastpath);

#endif
