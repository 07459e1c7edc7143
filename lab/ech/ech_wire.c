/*
 * ech_wire.c - read-only parsers for the two TLS structures the lab needs to
 * look at from outside NSS: the cleartext ClientHello (what the front door and
 * any on-path observer see: outer SNI, ECH extension type) and the
 * ECHConfigList (its public_name).
 *
 * NSS does not expose the outer SNI once it has accepted ECH, so the server
 * peeks at the first record itself. Every length is checked against the bytes
 * actually present; these functions must never read past <len>.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "ech_common.h"

#define TLS_CT_HANDSHAKE    22
#define TLS_HS_CLIENT_HELLO 1
#define TLS_EXT_SNI         0x0000
#define TLS_EXT_ECH         0xfe0d /* draft-13..RFC 9849 code point */
#define ECH_CONFIG_VERSION  0xfe0d
#define TLS_RECORD_HDR      5
#define TLS_RECORD_MAX      (TLS_RECORD_HDR + 16384 + 256)

struct rd {
	const uint8_t *p;
	size_t n;
};

static int rd_skip(struct rd *r, size_t k)
{
	if (r->n < k)
		return -1;
	r->p += k;
	r->n -= k;
	return 0;
}

static int rd_uint(struct rd *r, size_t width, uint32_t *v)
{
	*v = 0;
	if (r->n < width)
		return -1;
	for (size_t i = 0; i < width; i++)
		*v = (*v << 8) | r->p[i];
	return rd_skip(r, width);
}

/* A vector with a <width>-byte length prefix, returned as a sub-reader. */
static int rd_vec(struct rd *r, size_t width, struct rd *sub)
{
	uint32_t l;

	if (rd_uint(r, width, &l) < 0 || r->n < l)
		return -1;
	sub->p = r->p;
	sub->n = l;
	return rd_skip(r, l);
}

static void copy_name(char *out, size_t size, const struct rd *name)
{
	size_t k = name->n < size - 1 ? name->n : size - 1;

	/* Names land in key=value log lines: keep them printable, no spaces. */
	for (size_t i = 0; i < k; i++)
		out[i] = (name->p[i] > 0x20 && name->p[i] < 0x7f) ? (char)name->p[i] : '?';
	out[k] = '\0';
}

static int parse_sni(struct rd ext, struct ech_hello *out)
{
	struct rd list, name;
	uint32_t type;

	if (rd_vec(&ext, 2, &list) < 0)
		return -1;
	while (list.n) {
		if (rd_uint(&list, 1, &type) < 0 || rd_vec(&list, 2, &name) < 0)
			return -1;
		if (type == 0) { /* host_name */
			copy_name(out->sni, sizeof(out->sni), &name);
			return 0;
		}
	}
	return 0;
}

int ech_hello_parse(const uint8_t *rec, size_t len, struct ech_hello *out)
{
	struct rd r = {rec, len}, body, exts, ext;
	uint32_t v, hs_len, type;

	out->sni[0] = '\0';
	out->ech_type = -1;
	if (rd_uint(&r, 1, &v) < 0 || v != TLS_CT_HANDSHAKE || rd_skip(&r, 2) < 0 ||
	    rd_vec(&r, 2, &body) < 0)
		return -1;
	/* The ClientHello may in theory span records; the lab's never do. */
	if (rd_uint(&body, 1, &v) < 0 || v != TLS_HS_CLIENT_HELLO || rd_uint(&body, 3, &hs_len) < 0)
		return -1;
	if (body.n > hs_len)
		body.n = hs_len;
	if (rd_skip(&body, 2 + 32) < 0 || rd_vec(&body, 1, &ext) < 0 || /* session_id */
	    rd_vec(&body, 2, &ext) < 0 ||                               /* cipher_suites */
	    rd_vec(&body, 1, &ext) < 0 ||                               /* compression */
	    rd_vec(&body, 2, &exts) < 0)
		return -1;
	while (exts.n) {
		if (rd_uint(&exts, 2, &type) < 0 || rd_vec(&exts, 2, &ext) < 0)
			return -1;
		if (type == TLS_EXT_SNI && parse_sni(ext, out) < 0)
			return -1;
		if (type == TLS_EXT_ECH) {
			if (rd_uint(&ext, 1, &v) < 0)
				return -1;
			out->ech_type = (int)v;
		}
	}
	return 0;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int ech_hello_peek(int fd, int timeout_ms, struct ech_hello *out)
{
	static uint8_t buf[TLS_RECORD_MAX];
	const struct timespec pause = {0, 2 * 1000 * 1000};
	long deadline = now_ms() + timeout_ms, left;
	size_t want = TLS_RECORD_HDR;
	ssize_t got;

	out->sni[0] = '\0';
	out->ech_type = -1;
	/* MSG_PEEK leaves the bytes for NSS. poll() stays readable while any
	 * byte is queued, so a partial record is waited for by sleeping. */
	while ((left = deadline - now_ms()) > 0) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};

		if (poll(&pfd, 1, (int)left) <= 0)
			return -1;
		got = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
			return -1;
		if (got >= TLS_RECORD_HDR)
			want = TLS_RECORD_HDR + ((size_t)buf[3] << 8 | buf[4]);
		if (got > 0 && (size_t)got >= want)
			return ech_hello_parse(buf, (size_t)got, out);
		nanosleep(&pause, NULL);
	}
	return -1;
}

int ech_config_public_name(const uint8_t *list, size_t len, char *out, size_t size)
{
	struct rd r = {list, len}, configs, cfg, skip, name;
	uint32_t version, v;

	if (rd_vec(&r, 2, &configs) < 0)
		return -1;
	while (configs.n) {
		if (rd_uint(&configs, 2, &version) < 0 || rd_vec(&configs, 2, &cfg) < 0)
			return -1;
		if (version != ECH_CONFIG_VERSION)
			continue;
		/* config_id, kem_id, public_key, cipher_suites, maximum_name_length */
		if (rd_skip(&cfg, 1 + 2) < 0 || rd_vec(&cfg, 2, &skip) < 0 ||
		    rd_vec(&cfg, 2, &skip) < 0 || rd_uint(&cfg, 1, &v) < 0 ||
		    rd_vec(&cfg, 1, &name) < 0)
			return -1;
		copy_name(out, size, &name);
		return 0;
	}
	return -1;
}
