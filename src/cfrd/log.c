/*
 * cfrd logging. Writes whole lines to stderr with a single fprintf-like
 * call so lines from a backgrounded daemon never interleave mid-line.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const level_names[] = {
    [CFRD_LOG_ERROR] = "error",
    [CFRD_LOG_WARN] = "warn",
    [CFRD_LOG_INFO] = "info",
    [CFRD_LOG_DEBUG] = "debug",
};

static enum cfrd_log_level current_level = CFRD_LOG_INFO;

int cfrd_log_level_parse(const char *text, enum cfrd_log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(text, level_names[i]) == 0) {
			*out = (enum cfrd_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void cfrd_log_set_level(enum cfrd_log_level level)
{
	current_level = level;
}

void cfrd_log(enum cfrd_log_level level, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	if (level > current_level)
		return;
	n = snprintf(line, sizeof(line), "cfrd: %s: ", level_names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}
