/*
 * Retention: delete every segment whose end is older than the retention.
 *
 * A segment's end is bounded by its clear header: every epoch in it ended
 * before start + period (the writer opens a new segment once the period is
 * over), so records live at least <retention_s> and at most one segment
 * period longer. No key is needed, and nothing but "*.seg" files with a
 * valid header is ever touched: an unknown file is the operator's, not ours.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "records.h"

static bool is_segment_name(const char *name)
{
	size_t len = strlen(name), slen = strlen(CFR_SEG_SUFFIX);

	return len > slen && name[0] != '.' && strcmp(name + len - slen, CFR_SEG_SUFFIX) == 0;
}

int cfr_records_expire(const char *dir, uint64_t now_wall_ms, uint32_t retention_s,
                       unsigned *deleted, struct cfr_rec_error *err)
{
	struct dirent *de;
	DIR *d;
	int ret = 0;

	*deleted = 0;
	d = opendir(dir);
	if (!d) {
		ret = -errno;
		cfr_rec_fail(err, "%s: cannot open the records directory: %s", dir,
		             strerror(errno));
		return ret;
	}
	while ((de = readdir(d)) != NULL) {
		struct cfr_rec_error rerr;
		struct cfr_segr *r;
		uint64_t end_ms;
		char path[4096];

		if (!is_segment_name(de->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		r = cfr_segr_open(path, &rerr);
		if (!r) {
			/* Keep going: one unreadable file must not stop the others from expiring.
			 */
			ret = cfr_rec_fail(err, "%s (left in place)", rerr.msg);
			continue;
		}
		end_ms =
		    cfr_segr_header(r)->start_ms + (uint64_t)cfr_segr_header(r)->period_s * 1000;
		cfr_segr_close(r);
		if (end_ms + (uint64_t)retention_s * 1000 > now_wall_ms)
			continue;
		if (unlink(path) < 0) {
			ret = -errno;
			cfr_rec_fail(err, "%s: cannot delete expired segment: %s", path,
			             strerror(errno));
			continue;
		}
		(*deleted)++;
	}
	closedir(d);
	return ret;
}
