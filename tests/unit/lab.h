/*
 * Engine fixtures for the unit tests: the lab's configuration (pool4
 * 192.0.2.0/26, pool6 2001:db8:a1::/64, subscribers 100.64.0.0/10 and
 * 2001:db8:100::/48, alias ports 1024-65535), its well-known addresses, and
 * cmocka assertions that print drop reasons by name.
 */
#ifndef CFR_TEST_LAB_H
#define CFR_TEST_LAB_H

#include <cfr/cfr.h>

#include "pkt.h"

#define LAB_PORT_MIN 1024
#define LAB_PORT_MAX 65535

/* Fill <cfg> with the lab's configuration on top of the engine's defaults. */
void lab_config(struct cfr_engine_config *cfg);

/* An engine for <cfg> (the lab's when NULL); fails the test if it cannot be made. */
struct cfr_engine *lab_engine(const struct cfr_engine_config *cfg);

/* cmocka fixtures: *state is a lab engine for the test, freed afterwards. */
int lab_setup(void **state);
int lab_teardown(void **state);

/*
 * A case of a parameterised test: *state is a struct lab_case, its engine
 * made by lab_case_setup() and freed by lab_case_teardown(), its params the
 * test's own (a family, a protocol...). LAB_CASE(name, test, type, ...) is
 * the CMUnitTest for case <name>: <test> with a <type> of parameters
 * initialised from the rest, so a table of cases shows at a glance which
 * family and protocol each test covers.
 */
struct lab_case {
	struct cfr_engine *eng;
	const void *params;
};
int lab_case_setup(void **state);
int lab_case_teardown(void **state);
/* clang-format would take the initialisers' braces for blocks. */
/* clang-format off */
#define LAB_CASE(name, test, type, ...)                                                            \
	{#name, (test), lab_case_setup, lab_case_teardown,                                         \
	 &(struct lab_case){.params = &(const type){__VA_ARGS__}}}
/* clang-format on */

/* Addresses by family (4 or 6): a subscriber, a second one, a remote server, a router. */
const uint8_t *lab_sub(int family);
const uint8_t *lab_sub2(int family);
const uint8_t *lab_remote(int family);
const uint8_t *lab_router(int family);

/* Does <addr> fall inside the lab's pool of <family>? */
bool lab_in_pool(int family, const uint8_t *addr);

/* The payload lab_spec() puts in every packet. */
extern const uint8_t lab_payload[24];

/*
 * A subscriber-to-remote packet: TCP SYN, UDP, or ICMP/ICMPv6 echo request
 * (<proto> IPPROTO_ICMP means the family's ICMP), carrying lab_payload.
 */
void lab_spec(struct pkt_spec *s, int family, uint8_t proto, uint16_t sport, uint16_t dport);

/*
 * The answer to <translated> (as it left the engine): addresses and ports
 * swapped, SYN-ACK for TCP, echo reply for ICMP, carrying lab_payload.
 */
void lab_reply_spec(struct pkt_spec *s, const struct pkt *translated);

/*
 * Run <p> through the engine from a heap buffer of exactly its length, so
 * that AddressSanitizer catches any read past the end, then copy it back.
 */
struct cfr_pkt lab_process(struct cfr_engine *eng, struct pkt *p, uint64_t now_ms);
struct cfr_pkt lab_process_raw(struct cfr_engine *eng, uint8_t *data, size_t len, uint64_t now_ms);

/* Build <s>, process it, and return the verdict. */
struct cfr_pkt lab_send(struct cfr_engine *eng, const struct pkt_spec *s, struct pkt *out,
                        uint64_t now_ms);

/* Assertions naming the reason on failure. */
void lab_expect_forward_at(const struct cfr_pkt *r, enum cfr_dir dir, const char *file, int line);
void lab_expect_drop_at(const struct cfr_pkt *r, enum cfr_drop reason, const char *file, int line);
void lab_expect_checksums_at(const struct pkt *p, const char *file, int line);
#define lab_expect_forward(r, dir) lab_expect_forward_at((r), (dir), __FILE__, __LINE__)
#define lab_expect_drop(r, reason) lab_expect_drop_at((r), (reason), __FILE__, __LINE__)
#define lab_expect_checksums(p)    lab_expect_checksums_at((p), __FILE__, __LINE__)

/*
 * The remote's answer to <out> (as it left the engine) must reach the
 * subscriber that sent it, on port <sport>, checksums complete.
 */
void lab_expect_reply_at(struct cfr_engine *eng, const struct pkt *out, uint16_t sport,
                         uint64_t now_ms, const char *file, int line);
#define lab_expect_reply(eng, out, sport, now_ms)                                                  \
	lab_expect_reply_at((eng), (out), (sport), (now_ms), __FILE__, __LINE__)

/* Family index of the engine's counters for 4 or 6. */
int lab_fam(int family);

/*
 * Translate a fresh flow from a subscriber (<sport> to <dport>, TCP SYN /
 * UDP / echo) and return the packet as it left the engine in <out>, failing
 * the test unless it was forwarded.
 */
void lab_open_flow(struct cfr_engine *eng, int family, uint8_t proto, uint16_t sport,
                   uint16_t dport, struct pkt *out, uint64_t now_ms);

#endif
