/* cfrd's one clock: CLOCK_MONOTONIC, as the engine's timestamps and timeouts expect. */
#ifndef CFRD_CLOCK_H
#define CFRD_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t cfrd_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static inline uint64_t cfrd_now_ms(void)
{
	return cfrd_now_us() / 1000;
}

#endif
