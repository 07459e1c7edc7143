/* An engine's state in a memfd, holes for its zero pages (state_file.c). */
#ifndef CFRD_STATE_FILE_H
#define CFRD_STATE_FILE_H

#include <stdint.h>

#include <cfr/cfr.h>

struct cfrd_state_size {
	uint64_t image; /* the file's length, holes included */
	uint64_t data;  /* bytes written: what the state holds */
};

/* Write <eng>'s state to the empty file <fd> and seal it against writes. Returns 0 or -errno. */
int cfrd_state_write(struct cfr_engine *eng, int fd, struct cfrd_state_size *size);

/* The engine in <fd> of <size> bytes, or NULL with <why>. */
struct cfr_engine *cfrd_state_read(int fd, uint64_t size, const char **why);

#endif
