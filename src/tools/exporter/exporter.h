/*
 * cfr-exporter: cfrd's counters (the JSON `cfrctl --json stats` prints, from
 * the same control socket) as Prometheus metrics over HTTP. The pieces:
 * text.c renders the JSON, control.c asks cfrd for it, main.c serves it.
 */
#ifndef CFRX_EXPORTER_H
#define CFRX_EXPORTER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growing text buffer; <oom> is set once an append failed (the text is then cut). */
struct cfrx_buf {
	char *s;
	size_t len, cap;
	bool oom;
};

void cfrx_buf_free(struct cfrx_buf *b);

/* What the exporter itself counts, shown beside cfrd's metrics. */
struct cfrx_self {
	uint64_t control_requests, control_failures;
};

/*
 * Append the Prometheus text exposition (format 0.0.4) of <stats>, cfrd's
 * `stats` reply, to <out>; with <stats> NULL (cfrd did not answer) only
 * cfr_up 0 and the exporter's own counters. Every metric is a count,
 * never an address: the JSON holds none, and the only strings taken from
 * it (the version, drop reason and scrubber names) are checked to be
 * names. Returns the number of numeric fields in <stats> that no metric
 * took (a JSON field added to cfrd without its metric), also exported as
 * cfr_exporter_unmapped_fields.
 */
unsigned cfrx_render(struct json_object *stats, const struct cfrx_self *self, struct cfrx_buf *out);

/*
 * Send `stats` to the control socket at <path> and parse the reply, waiting
 * at most <timeout_ms> in all. Returns a new object, or NULL with errno set.
 */
struct json_object *cfrx_control_stats(const char *path, unsigned timeout_ms);

#endif
