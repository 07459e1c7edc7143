/*
 * cfrd logging: one line per event on stderr, prefixed with the level.
 *
 * Privacy rule for every caller: never log a subscriber address together
 * with a destination. Log counts, prefixes of the pool, and reasons.
 */
#ifndef CFRD_LOG_H
#define CFRD_LOG_H

enum cfrd_log_level {
	CFRD_LOG_ERROR = 0,
	CFRD_LOG_WARN,
	CFRD_LOG_INFO,
	CFRD_LOG_DEBUG,
};

/* Parse "error", "warn", "info" or "debug". Returns 0 or -EINVAL. */
int cfrd_log_level_parse(const char *text, enum cfrd_log_level *out);
void cfrd_log_set_level(enum cfrd_log_level level);

__attribute__((format(printf, 2, 3))) void cfrd_log(enum cfrd_log_level level, const char *fmt,
                                                    ...);

#define log_error(...) cfrd_log(CFRD_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  cfrd_log(CFRD_LOG_WARN, __VA_ARGS__)
#define log_info(...)  cfrd_log(CFRD_LOG_INFO, __VA_ARGS__)
#define log_debug(...) cfrd_log(CFRD_LOG_DEBUG, __VA_ARGS__)

#endif
