/* The statistical tests' seed from the environment (seed.h). */
#include "seed.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

uint64_t test_seed(void)
{
	const char *text = getenv("CFR_TEST_SEED");
	unsigned long long v;
	char *end;

	if (text == NULL || *text == '\0')
		return 0;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0') {
		fprintf(stderr, "CFR_TEST_SEED '%s' is not a decimal number\n", text);
		abort();
	}
	return v;
}

const char *test_seed_note(void)
{
	static char note[40];

	snprintf(note, sizeof(note), "CFR_TEST_SEED=%llu", (unsigned long long)test_seed());
	return note;
}
