/*
 * cfrd logging. Writes whole lines to stderr with a single fprintf-like
 * call so lines from a backgrounded daemon never interleave mid-line.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const level_names[] = {
    [CFRD_LOG_ERROR] = "error",
    [CFRD_LOG_WARN] = "warn",
    [CFRD_LOG_INFO] = "info",
    [CFRD_LOG_DEBUG] = "debug",
};

static enum cfrd_log_level current_level = CFRD_LOG_INFO;

/* syslog(3) priorities: err, warning, info, debug. */
static const int journal_priority[] = {3, 4, 6, 7};

/*
 * Under systemd stderr is the journal's stream ($JOURNAL_STREAM names its
 * device and inode): a "<N>" prefix gives each line its priority there
 * (sd-daemon(3)). Anywhere else lines stay as they were.
 */
static int to_journal(void)
{
	static int known = -1;
	const char *env;
	unsigned long long dev, ino;
	struct stat st;

	if (known >= 0)
		return known;
	env = getenv("JOURNAL_STREAM");
	known = env != NULL && sscanf(env, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
	        (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
	return known;
}

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
	if (to_journal())
		n = snprintf(line, sizeof(line), "<%d>%s: ", journal_priority[level],
		             level_names[level]);
	else
		n = snprintf(line, sizeof(line), "cfrd: %s: ", level_names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}
