/*
 * ech_common.h - helpers shared by the ECH lab peers (ech-server, ech-client):
 * NSS start-up, base64 files, numeric socket addresses, and the tiny TLS
 * parsers used to observe what a passive on-path party sees.
 *
 * These are test peers for the lab, never part of cfrd: nothing here is on a
 * packet path and nothing here must ever handle subscriber traffic.
 */
#ifndef CFR_LAB_ECH_COMMON_H
#define CFR_LAB_ECH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <seccomon.h>

#define ECH_NAME_MAX 256

/* What the cleartext (outer) ClientHello reveals to anyone on the path. */
struct ech_hello {
	char sni[ECH_NAME_MAX]; /* server_name, "" if absent */
	int ech_type;           /* -1: no ECH extension, 0: outer, 1: inner */
};

/* Initialise NSS with the database <db> ("sql:DIR"), or without one if
 * <db> is NULL, and enable the domestic cipher policy. 0 or -1. */
int ech_nss_init(const char *db);

/* Name of the current NSPR/NSS error, for one-line diagnostics. */
const char *ech_err(void);

/* Write <len> bytes of <data> base64-encoded on one line to <path>. */
int ech_b64_write(const char *path, const uint8_t *data, size_t len);

/* Read a base64 file (whitespace ignored); NULL on error. Free with
 * SECITEM_FreeItem(item, PR_TRUE). */
SECItem *ech_b64_read(const char *path);

/* Parse a numeric address <host> and decimal <port> into <ss>. 0 or -1. */
int ech_addr_parse(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len);

/* Format <sa> as "ADDR" into <buf> and return its port. */
int ech_addr_format(const struct sockaddr *sa, char *buf, size_t size);

/* Parse a TLS record holding a ClientHello. 0, or -1 if malformed or
 * truncated (fields found before the damage are kept). */
int ech_hello_parse(const uint8_t *rec, size_t len, struct ech_hello *out);

/* Peek (MSG_PEEK, nothing consumed) at the first TLS record on <fd>, waiting
 * at most <timeout_ms>, and parse it with ech_hello_parse(). */
int ech_hello_peek(int fd, int timeout_ms, struct ech_hello *out);

/* Copy the public_name of the first ECHConfig in an ECHConfigList. 0 or -1. */
int ech_config_public_name(const uint8_t *list, size_t len, char *out, size_t size);

#endif
