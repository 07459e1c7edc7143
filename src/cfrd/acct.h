/*
 * cfrd's side of accountability: a writer thread that takes what the
 * engine has for the records (the ended epoch's records, and every second
 * the current epoch's journal) under the engine lock, a copy at a time,
 * and seals, writes and syncs it without the lock (src/records); and the
 * current epoch sealed too when cfrd stops.
 */
#ifndef CFRD_ACCT_H
#define CFRD_ACCT_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <cfr/cfr.h>

#include "../records/records.h"
#include "config.h"

struct cfrd;

struct cfrd_acct {
	struct cfr_recw *writer; /* NULL: no [accounting], records are wiped unread */
	const char *key_path;
	int key_fd; /* a public key refused for its mode, watched until it is fixed */
	uint64_t next_key_check_ms;
	pthread_t thread;
	bool thread_started, thread_failed;
	pthread_mutex_t lock; /* stop, wake and the published stats */
	pthread_cond_t wake;
	bool stop;
	struct cfr_recw_stats stats; /* the writer's, as of its last pass */
	/* Reloads' configurations waiting for the thread, oldest first. */
	unsigned n_reconfig;
	uint64_t reconfig_from[CFR_RECW_CONFIGS];
	struct cfr_engine_config reconfig[CFR_RECW_CONFIGS];
};

/* Read the public key, open the records directory, apply retention. Before the sandbox. */
int cfrd_acct_open(struct cfrd_acct *a, const struct cfrd_config *cfg);

/*
 * On every loop iteration of the control thread, without the engine lock:
 * the first call starts the writer thread (cfrd is sandboxed by then);
 * without [accounting], or if the thread cannot start, the work is done
 * here. True while more waits (the loop should not sleep).
 */
bool cfrd_acct_drain(struct cfrd_acct *a, struct cfrd *d, uint64_t now_ms);

/*
 * A reload changes what allocations derive from (pools, ports, policies,
 * epoch length): records of epochs from <from_epoch> on go to segments
 * that say <cfg>. Call it under the engine lock, before the reload ends
 * the epoch, so that no record of the new epoch is taken before. -ENOSPC
 * while CFR_RECW_CONFIGS changes wait already (the reload is refused).
 */
int cfrd_acct_reconfigure(struct cfrd_acct *a, const struct cfr_engine_config *cfg,
                          uint64_t from_epoch);

/* Stop the thread, end the current epoch, seal every record, close the segment. */
void cfrd_acct_close(struct cfrd_acct *a, struct cfr_engine *eng, uint64_t now_ms);

/*
 * Take the engine lock once the ended epoch's records are all out of the
 * engine, so that ending another epoch now (a reload, cfrctl epoch rotate)
 * loses none of them (records_lost): with [accounting] the writer thread
 * takes them within a tick, waited for a lock hold at a time, up to 3 s;
 * without, they are thrown away here. False, unlocked, if the writer did
 * not catch up (degraded).
 */
bool cfrd_acct_lock_settled(struct cfrd *d);

/*
 * A handover (handover.c), once no packet moves: stop the thread and write
 * the journal up to now. Then either cfrd_acct_release() (the new cfrd took
 * the engine: the epoch goes on there) or cfrd_acct_close() (it did not).
 */
void cfrd_acct_pause(struct cfrd_acct *a, struct cfrd *d);
void cfrd_acct_release(struct cfrd_acct *a);

/*
 * The "accounting" object of `cfrctl stats`. <s>: the engine's counters;
 * the write lag counts from <start_ms> until the first write.
 */
struct json_object *cfrd_acct_json(struct cfrd_acct *a, const struct cfr_stats *s, uint64_t now_ms,
                                   uint64_t start_ms);

#endif
