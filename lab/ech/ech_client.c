/*
 * ech_client.c - ech-client, a TLS 1.3 test client for the cfr lab that
 * connects with real ECH (NSS), GREASE ECH, or plain SNI, sends one HTTP/1.1
 * GET and reports the outcome on one line.
 *
 *   ech-client (--ech-config FILE | --grease | --plain) [--timeout S]
 *              [--path PATH] ADDR PORT NAME
 *
 * NAME is the name the client wants to reach (the inner SNI under ECH). The
 * ECHConfigList FILE holds base64, as an HTTPS RR "ech" value would deliver
 * it. Output (stdout, one line):
 *   ech=accepted|rejected|grease|none inner_sni=NAME|- outer_sni=NAME|-
 *       status=CODE|- result=ok|ERROR
 * Exit 0 only when the handshake completed and the server answered 200.
 * The source address is left to the OS: behind cfr it is the subscriber's.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nss.h>
#include <prio.h>
#include <private/pprio.h>
#include <secitem.h>
#include <ssl.h>
#include <sslexp.h>
#include <sslproto.h>

#include "ech_common.h"

enum mode { MODE_NONE, MODE_ECH, MODE_GREASE, MODE_PLAIN };

static void usage(FILE *f)
{
	fprintf(f, "usage: ech-client (--ech-config FILE | --grease | --plain) [--timeout S]\n"
	           "                  [--path PATH] ADDR PORT NAME\n");
}

/* This is a lab test peer talking to a self-signed test server: any
 * certificate is accepted. Certificate validation is not what the lab
 * measures, and the ECH outcome is read from the channel info instead. */
static SECStatus accept_any_cert(void *arg, PRFileDesc *fd, PRBool sig, PRBool server)
{
	(void)arg;
	(void)fd;
	(void)sig;
	(void)server;
	return SECSuccess;
}

static int connect_to(const char *host, const char *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	if (ech_addr_parse(host, port, &ss, &len) < 0) {
		fprintf(stderr, "ech-client: bad address %s port %s\n", host, port);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		fprintf(stderr, "ech-client: connect %s %s: %s\n", host, port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Send the GET and return the HTTP status code, or -1. */
static int http_get(PRFileDesc *ssl, const char *name, const char *path)
{
	char buf[8192];
	int n = 0, r, len, code = -1;

	len = snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
	               path, name);
	if (PR_Send(ssl, buf, len, 0, PR_INTERVAL_NO_TIMEOUT) != len)
		return -1;
	while (n < (int)sizeof(buf) - 1 &&
	       (r = PR_Recv(ssl, buf + n, (int)sizeof(buf) - 1 - n, 0, PR_INTERVAL_NO_TIMEOUT)) > 0)
		n += r;
	buf[n] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
		return -1;
	return code;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ech-config", required_argument, NULL, 'e'},
	    {"grease", no_argument, NULL, 'g'},
	    {"plain", no_argument, NULL, 'p'},
	    {"timeout", required_argument, NULL, 't'},
	    {"path", required_argument, NULL, 'P'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	SSLVersionRange tls13 = {SSL_LIBRARY_VERSION_TLS_1_3, SSL_LIBRARY_VERSION_TLS_1_3};
	enum mode mode = MODE_NONE;
	const char *config_path = NULL, *path = "/", *name;
	char outer[ECH_NAME_MAX] = "-", status[16] = "-";
	const char *state, *result = "ok";
	SECItem *config = NULL;
	SSLChannelInfo ci = {0};
	PRFileDesc *ssl = NULL;
	int c, fd, timeout_s = 10, code = -1, ret = 1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			config_path = optarg; /* fall through */
		case 'g':
		case 'p':
			if (mode != MODE_NONE) {
				usage(stderr);
				return 2;
			}
			mode = c == 'e' ? MODE_ECH : c == 'g' ? MODE_GREASE : MODE_PLAIN;
			break;
		case 't':
			timeout_s = atoi(optarg);
			break;
		case 'P':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 3 || mode == MODE_NONE || timeout_s <= 0) {
		usage(stderr);
		return 2;
	}
	name = argv[optind + 2];
	/* One bound for everything (connect, handshake, response): the
	 * default SIGALRM action ends a stuck test peer. */
	alarm((unsigned int)timeout_s);

	if (ech_nss_init(NULL) < 0) {
		fprintf(stderr, "ech-client: NSS init: %s\n", ech_err());
		return 1;
	}
	if (mode == MODE_ECH) {
		config = ech_b64_read(config_path);
		if (!config ||
		    ech_config_public_name(config->data, config->len, outer, sizeof(outer)) < 0) {
			fprintf(stderr, "ech-client: no usable ECHConfigList in %s\n", config_path);
			goto out;
		}
	} else {
		/* Without ECH the real name travels in clear. */
		snprintf(outer, sizeof(outer), "%s", name);
	}
	fd = connect_to(argv[optind], argv[optind + 1]);
	if (fd < 0)
		goto out;
	ssl = PR_ImportTCPSocket(fd);
	if (!ssl) {
		close(fd);
		goto out;
	}
	ssl = SSL_ImportFD(NULL, ssl);
	if (!ssl || SSL_OptionSet(ssl, SSL_SECURITY, PR_TRUE) != SECSuccess ||
	    SSL_OptionSet(ssl, SSL_HANDSHAKE_AS_CLIENT, PR_TRUE) != SECSuccess ||
	    SSL_OptionSet(ssl, SSL_NO_CACHE, PR_TRUE) != SECSuccess ||
	    SSL_VersionRangeSet(ssl, &tls13) != SECSuccess || SSL_SetURL(ssl, name) != SECSuccess ||
	    SSL_AuthCertificateHook(ssl, accept_any_cert, NULL) != SECSuccess ||
	    SSL_EnableTls13GreaseEch(ssl, mode == MODE_GREASE) != SECSuccess ||
	    (mode == MODE_ECH &&
	     SSL_SetClientEchConfigs(ssl, config->data, config->len) != SECSuccess)) {
		fprintf(stderr, "ech-client: TLS setup: %s\n", ech_err());
		goto out;
	}
	if (SSL_ResetHandshake(ssl, PR_FALSE) != SECSuccess ||
	    SSL_ForceHandshake(ssl) != SECSuccess) {
		result = ech_err();
	} else if (SSL_GetChannelInfo(ssl, &ci, sizeof(ci)) != SECSuccess) {
		result = ech_err();
	} else {
		code = http_get(ssl, name, path);
		if (code < 0)
			result = "bad_http_response";
		else
			snprintf(status, sizeof(status), "%d", code);
	}
	if (ci.echAccepted)
		state = "accepted";
	else if (mode == MODE_ECH)
		state = "rejected"; /* NSS fails with ECH_RETRY_WITH(OUT)_ECH */
	else
		state = mode == MODE_GREASE ? "grease" : "none";
	printf("ech=%s inner_sni=%s outer_sni=%s status=%s result=%s\n", state,
	       ci.echAccepted ? name : "-", outer, status, result);
	ret = (code == 200 && (mode != MODE_ECH || ci.echAccepted)) ? 0 : 1;
out:
	if (ssl)
		PR_Close(ssl);
	if (config)
		SECITEM_FreeItem(config, PR_TRUE);
	NSS_Shutdown();
	return ret;
}
