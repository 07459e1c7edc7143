/*
 * fuzz_wire.c - libFuzzer target for the ClientHello and ECHConfigList
 * parsers in ech_wire.c, which read bytes straight off the network.
 * Build and run: make -C lab/ech fuzz && build/ech/fuzz-wire -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ech_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ech_hello hello;
	char name[ECH_NAME_MAX];

	ech_hello_parse(data, size, &hello);
	/* Both outputs must always be terminated strings. */
	if (strlen(hello.sni) >= sizeof(hello.sni))
		__builtin_trap();
	if (ech_config_public_name(data, size, name, sizeof(name)) == 0 &&
	    strlen(name) >= sizeof(name))
		__builtin_trap();
	return 0;
}
