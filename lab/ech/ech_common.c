/*
 * ech_common.c - NSS start-up, base64 files and numeric socket addresses for
 * the ECH lab peers. Addresses are numeric only (no resolver): the lab must
 * never depend on DNS, and a peer binds exactly the address it is given.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <base64.h>
#include <nss.h>
#include <prerror.h>
#include <secitem.h>
#include <ssl.h>

#include "ech_common.h"

int ech_nss_init(const char *db)
{
	SECStatus rv = db ? NSS_Init(db) : NSS_NoDB_Init(NULL);

	if (rv != SECSuccess || NSS_SetDomesticPolicy() != SECSuccess)
		return -1;
	return 0;
}

const char *ech_err(void)
{
	const char *name = PR_ErrorToName(PR_GetError());

	return name ? name : "UNKNOWN_ERROR";
}

int ech_b64_write(const char *path, const uint8_t *data, size_t len)
{
	char *b64 = BTOA_DataToAscii(data, (unsigned int)len);
	FILE *f;
	int ret = -1;

	if (!b64)
		return -1;
	f = fopen(path, "w");
	if (f) {
		/* BTOA wraps lines; an HTTPS RR "ech=" value is one token. */
		for (const char *c = b64; *c; c++)
			if (*c != '\r' && *c != '\n')
				fputc(*c, f);
		fputc('\n', f);
		ret = fclose(f) == 0 ? 0 : -1;
	}
	PORT_Free(b64);
	return ret;
}

SECItem *ech_b64_read(const char *path)
{
	char text[8192];
	size_t n = 0;
	unsigned int len = 0;
	unsigned char *raw;
	SECItem *item;
	FILE *f = fopen(path, "r");
	int c;

	if (!f)
		return NULL;
	while ((c = fgetc(f)) != EOF && n < sizeof(text) - 1)
		if (c > ' ')
			text[n++] = (char)c;
	fclose(f);
	text[n] = '\0';
	if (n == 0)
		return NULL;
	raw = ATOB_AsciiToData(text, &len);
	if (!raw)
		return NULL;
	item = SECITEM_AllocItem(NULL, NULL, len);
	if (item)
		memcpy(item->data, raw, len);
	PORT_Free(raw);
	return item;
}

int ech_addr_parse(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	                         .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai;
	char *end;
	long p = strtol(port, &end, 10);

	/* getaddrinfo() silently wraps ports above 65535. */
	if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
		return -1;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

int ech_addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)size);
		return ntohs(s6->sin6_port);
	}
	const struct sockaddr_in *s4 = (const void *)sa;

	inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)size);
	return ntohs(s4->sin_port);
}
