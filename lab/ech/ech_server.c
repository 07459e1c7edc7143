/*
 * ech_server.c - ech-server, a TLS 1.3 test "front door" (client-facing
 * server) for the cfr lab, built on NSS's ECH support.
 *
 * It generates an X25519 key pair in process, publishes the ECHConfigList as
 * base64 in a file (standing in for the HTTPS RR "ech" value), accepts TLS
 * 1.3 on exactly the address it is given, answers one tiny HTTP/1.1 response
 * per connection, and logs one key=value line per connection saying what a
 * client-facing server learns: the peer address as accept() saw it, the
 * cleartext (outer) SNI, the decrypted (inner) SNI, and the ECH outcome.
 * Printing the peer next to names is the point of this program: it shows
 * what the front door knows, so that the lab can check that behind cfr the
 * peer is an alias and never the subscriber. It must not be run outside the
 * lab, and it must never be pointed at real subscriber traffic.
 *
 *   ech-server --db DIR --cert NICK (--ech-out FILE | --no-ech)
 *              [--public-name NAME] [--log FILE] [--max-conns N]
 *              [--timeout S] [--io-timeout S] ADDR PORT
 *
 * Log line (one per connection):
 *   peer=ADDR port=N outer_sni=NAME|- inner_sni=NAME|- ech=STATE result=ok|ERROR
 * STATE: accepted  ECH decrypted and used (inner_sni is the protected name)
 *        rejected  ECH offered but not usable with our keys (GREASE, or a
 *                  stale config); NSS answered with retry_configs
 *        ignored   an ECH extension was offered but this server has no ECH
 *        none      no ECH extension in the ClientHello
 *
 * Connections are served one at a time, each bounded by --io-timeout: a test
 * peer needs determinism, not throughput.
 *
 * NSS 3.87 (Debian 12) notes, measured here:
 * - NSS does not tell a server the outer SNI once ECH is accepted, so the
 *   first record is peeked (MSG_PEEK) and parsed before NSS reads it.
 * - SSL_GetNegotiatedHostInfo() gave no name on this server; the SNI hook is
 *   called once per handshake, with the inner name when ECH is accepted.
 * - `selfserv -X publicname:NAME` fails because it passes the whole string,
 *   colon included, as public_name; SSL_SetServerEchConfigs() rejects that
 *   with SSL_ERROR_RX_MALFORMED_ESNI_KEYS (reproduce: --public-name a:b).
 * - A server holding ECH keys answers GREASE like a stale config (it sends
 *   retry_configs); a GREASE client ignores them and the handshake completes.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cert.h>
#include <keyhi.h>
#include <nss.h>
#include <pk11hpke.h>
#include <pk11pub.h>
#include <prio.h>
#include <private/pprio.h>
#include <secoid.h>
#include <ssl.h>
#include <sslexp.h>
#include <sslproto.h>

#include "ech_common.h"

#define ECH_MAX_NAME_LEN 64 /* padding target for inner names (RFC 9849 6.1.3) */

struct server {
	const char *db, *nick, *ech_out, *public_name, *log_path;
	int no_ech;
	long max_conns;
	int timeout_s, io_timeout_s;
	FILE *log;
	PRFileDesc *model;
	int lfd;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: ech-server --db DIR --cert NICK (--ech-out FILE | --no-ech)\n"
	           "                  [--public-name NAME] [--log FILE] [--max-conns N]\n"
	           "                  [--timeout S] [--io-timeout S] ADDR PORT\n");
}

/* Generate the ECH key pair and ECHConfigList, install them on <model>, and
 * write the list as base64 to <s->ech_out>. */
static int setup_ech(struct server *s)
{
	static const HpkeSymmetricSuite suites[] = {
	    {HpkeKdfHkdfSha256, HpkeAeadAes128Gcm},
	    {HpkeKdfHkdfSha256, HpkeAeadChaCha20Poly1305},
	};
	SECOidData *oid = SECOID_FindOIDByTag(SEC_OID_CURVE25519);
	uint8_t params_buf[64], config[1024], config_id;
	SECItem params = {siBuffer, params_buf, 0};
	SECKEYPublicKey *pub = NULL;
	SECKEYPrivateKey *priv = NULL;
	PK11SlotInfo *slot = PK11_GetInternalSlot();
	unsigned int len = 0;
	char tmp[4096];
	int ret = -1;

	if (!oid || !slot || oid->oid.len + 2 > sizeof(params_buf))
		goto out;
	/* EC parameters are the DER-encoded curve OID. */
	params_buf[0] = 0x06; /* ASN.1 OBJECT IDENTIFIER */
	params_buf[1] = (uint8_t)oid->oid.len;
	memcpy(params_buf + 2, oid->oid.data, oid->oid.len);
	params.len = oid->oid.len + 2;
	/* Session key (not a token object), never written to the database. */
	priv = PK11_GenerateKeyPair(slot, CKM_EC_KEY_PAIR_GEN, &params, &pub, PR_FALSE, PR_FALSE,
	                            NULL);
	if (!priv || !pub) {
		fprintf(stderr, "ech-server: X25519 key generation: %s\n", ech_err());
		goto out;
	}
	if (PK11_GenerateRandom(&config_id, 1) != SECSuccess ||
	    SSL_EncodeEchConfigId(
	        config_id, s->public_name, ECH_MAX_NAME_LEN, HpkeDhKemX25519Sha256, pub, suites,
	        sizeof(suites) / sizeof(suites[0]), config, &len, sizeof(config)) != SECSuccess) {
		fprintf(stderr, "ech-server: SSL_EncodeEchConfigId: %s\n", ech_err());
		goto out;
	}
	if (SSL_SetServerEchConfigs(s->model, pub, priv, config, len) != SECSuccess) {
		fprintf(stderr, "ech-server: SSL_SetServerEchConfigs: %s\n", ech_err());
		goto out;
	}
	/* Write then rename: a client polling for the file never reads half. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->ech_out);
	if (ech_b64_write(tmp, config, len) < 0 || rename(tmp, s->ech_out) < 0) {
		fprintf(stderr, "ech-server: cannot write %s: %s\n", s->ech_out, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (priv)
		SECKEY_DestroyPrivateKey(priv);
	if (pub)
		SECKEY_DestroyPublicKey(pub);
	if (slot)
		PK11_FreeSlot(slot);
	return ret;
}

/* Name from the ClientHello NSS actually negotiates with: with ECH accepted
 * that is the inner one. Connections are served one at a time, so one slot
 * suffices; it is cleared before each handshake. */
static char hook_sni[ECH_NAME_MAX];

static PRInt32 sni_hook(PRFileDesc *fd, const SECItem *names, PRUint32 count, void *arg)
{
	(void)fd;
	(void)arg;
	if (count && names[0].len) {
		snprintf(hook_sni, sizeof(hook_sni), "%.*s", (int)names[0].len,
		         (const char *)names[0].data);
		/* Names land in key=value lines: no spaces, printable only. */
		for (char *c = hook_sni; *c; c++)
			if (*c <= ' ' || *c >= 0x7f)
				*c = '?';
	}
	return SSL_SNI_CURRENT_CONFIG_IS_USED;
}

static int setup_model(struct server *s)
{
	SSLVersionRange tls13 = {SSL_LIBRARY_VERSION_TLS_1_3, SSL_LIBRARY_VERSION_TLS_1_3};
	CERTCertificate *cert;
	SECKEYPrivateKey *key;
	int ret = -1;

	cert = PK11_FindCertFromNickname(s->nick, NULL);
	if (!cert) {
		fprintf(stderr, "ech-server: no certificate '%s' in %s\n", s->nick, s->db);
		return -1;
	}
	key = PK11_FindKeyByAnyCert(cert, NULL);
	s->model = SSL_ImportFD(NULL, PR_NewTCPSocket());
	if (!key || !s->model)
		goto out;
	/* ECH exists only in TLS 1.3; refusing older versions keeps the
	 * observations unambiguous. */
	if (SSL_OptionSet(s->model, SSL_SECURITY, PR_TRUE) != SECSuccess ||
	    SSL_OptionSet(s->model, SSL_HANDSHAKE_AS_SERVER, PR_TRUE) != SECSuccess ||
	    SSL_OptionSet(s->model, SSL_NO_CACHE, PR_TRUE) != SECSuccess ||
	    SSL_VersionRangeSet(s->model, &tls13) != SECSuccess ||
	    SSL_ConfigServerCert(s->model, cert, key, NULL, 0) != SECSuccess ||
	    SSL_SNISocketConfigHook(s->model, sni_hook, NULL) != SECSuccess)
		goto out;
	ret = 0;
out:
	if (ret < 0)
		fprintf(stderr, "ech-server: TLS setup: %s\n", ech_err());
	if (key)
		SECKEY_DestroyPrivateKey(key);
	CERT_DestroyCertificate(cert);
	return ret;
}

static int listen_on(const char *host, const char *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, fd;

	if (ech_addr_parse(host, port, &ss, &len) < 0) {
		fprintf(stderr, "ech-server: bad address %s port %s\n", host, port);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 16) < 0) {
		fprintf(stderr, "ech-server: bind/listen %s %s: %s\n", host, port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static const char *ech_state(const struct server *s, const SSLChannelInfo *ci,
                             const struct ech_hello *hello)
{
	if (ci && ci->echAccepted)
		return "accepted";
	if (hello->ech_type < 0)
		return "none";
	return s->no_ech ? "ignored" : "rejected";
}

/* Read the request head (up to the blank line) and answer it. */
static int serve_http(PRFileDesc *ssl, const char *name, PRIntervalTime io)
{
	char req[4096], resp[512], body[300];
	int n = 0, r, blen, rlen;

	while (n < (int)sizeof(req) - 1) {
		r = PR_Recv(ssl, req + n, (int)sizeof(req) - 1 - n, 0, io);
		if (r <= 0)
			return -1;
		n += r;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	blen = snprintf(body, sizeof(body), "cfr ech lab: served %s\n", name);
	rlen = snprintf(resp, sizeof(resp),
	                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	                "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
	                blen, body);
	return PR_Send(ssl, resp, rlen, 0, io) == rlen ? 0 : -1;
}

static void serve_one(struct server *s, int cfd, const struct sockaddr *peer)
{
	PRIntervalTime io = PR_SecondsToInterval((PRUint32)s->io_timeout_s);
	struct ech_hello hello;
	SSLChannelInfo ci = {0};
	char addr[64], inner[ECH_NAME_MAX] = "-";
	const char *result = "ok";
	PRFileDesc *pr = NULL, *ssl = NULL;
	int port = ech_addr_format(peer, addr, sizeof(addr));
	int have_ci = 0;

	/* What the wire shows before any decryption. */
	if (ech_hello_peek(cfd, s->io_timeout_s * 1000, &hello) < 0) {
		result = "bad_client_hello";
		goto log;
	}
	pr = PR_ImportTCPSocket(cfd);
	if (!pr) {
		result = ech_err();
		goto log;
	}
	cfd = -1; /* now owned by <pr> */
	ssl = SSL_ImportFD(s->model, pr);
	if (!ssl) {
		result = ech_err();
		goto log;
	}
	pr = NULL; /* now owned by <ssl> */
	hook_sni[0] = '\0';
	if (SSL_ResetHandshake(ssl, PR_TRUE) != SECSuccess ||
	    SSL_ForceHandshakeWithTimeout(ssl, io) != SECSuccess) {
		result = ech_err();
		goto log;
	}
	if (SSL_GetChannelInfo(ssl, &ci, sizeof(ci)) == SECSuccess)
		have_ci = 1;
	if (have_ci && ci.echAccepted && hook_sni[0])
		snprintf(inner, sizeof(inner), "%s", hook_sni);
	if (serve_http(ssl, strcmp(inner, "-") ? inner : (hello.sni[0] ? hello.sni : "-"), io) < 0)
		result = ech_err();
log:
	fprintf(s->log, "peer=%s port=%d outer_sni=%s inner_sni=%s ech=%s result=%s\n", addr, port,
	        hello.sni[0] ? hello.sni : "-", inner, ech_state(s, have_ci ? &ci : NULL, &hello),
	        result);
	fflush(s->log);
	if (ssl)
		PR_Close(ssl);
	if (pr)
		PR_Close(pr);
	if (cfd >= 0)
		close(cfd);
}

static long now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static int serve(struct server *s)
{
	long deadline = s->timeout_s ? now_s() + s->timeout_s : 0;

	for (long n = 0; !s->max_conns || n < s->max_conns; n++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		struct pollfd pfd = {.fd = s->lfd, .events = POLLIN};
		int wait_ms = -1, cfd;

		if (deadline) {
			long left = deadline - now_s();

			if (left <= 0)
				return 0;
			wait_ms = (int)left * 1000;
		}
		if (poll(&pfd, 1, wait_ms) == 0)
			return 0; /* lifetime over */
		cfd = accept4(s->lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED) {
				n--;
				continue;
			}
			return -1;
		}
		serve_one(s, cfd, (struct sockaddr *)&peer);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"cert", required_argument, NULL, 'n'},
	    {"ech-out", required_argument, NULL, 'e'},
	    {"no-ech", no_argument, NULL, 'N'},
	    {"public-name", required_argument, NULL, 'p'},
	    {"log", required_argument, NULL, 'l'},
	    {"max-conns", required_argument, NULL, 'm'},
	    {"timeout", required_argument, NULL, 't'},
	    {"io-timeout", required_argument, NULL, 'i'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct server s = {.public_name = "public.example", .io_timeout_s = 5, .lfd = -1};
	char dbspec[4096];
	int c, ret = 1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			s.db = optarg;
			break;
		case 'n':
			s.nick = optarg;
			break;
		case 'e':
			s.ech_out = optarg;
			break;
		case 'N':
			s.no_ech = 1;
			break;
		case 'p':
			s.public_name = optarg;
			break;
		case 'l':
			s.log_path = optarg;
			break;
		case 'm':
			s.max_conns = strtol(optarg, NULL, 10);
			break;
		case 't':
			s.timeout_s = atoi(optarg);
			break;
		case 'i':
			s.io_timeout_s = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2 || !s.db || !s.nick || s.no_ech == !!s.ech_out ||
	    s.io_timeout_s <= 0 || s.timeout_s < 0 || s.max_conns < 0) {
		usage(stderr);
		return 2;
	}
	/* A client closing early must not kill the server on write. */
	signal(SIGPIPE, SIG_IGN);
	s.log = s.log_path ? fopen(s.log_path, "a") : stdout;
	if (!s.log) {
		fprintf(stderr, "ech-server: %s: %s\n", s.log_path, strerror(errno));
		return 1;
	}
	snprintf(dbspec, sizeof(dbspec), "sql:%s", s.db);
	if (ech_nss_init(dbspec) < 0) {
		fprintf(stderr, "ech-server: NSS init (%s): %s\n", dbspec, ech_err());
		return 1;
	}
	if (SSL_ConfigServerSessionIDCache(0, 0, 0, NULL) != SECSuccess)
		goto out;
	if (setup_model(&s) < 0)
		goto out;
	s.lfd = listen_on(argv[optind], argv[optind + 1]);
	if (s.lfd < 0)
		goto out;
	/* The config file appears only once we listen: it doubles as the
	 * readiness signal for scripts. */
	if (!s.no_ech && setup_ech(&s) < 0)
		goto out;
	ret = serve(&s) < 0 ? 1 : 0;
out:
	if (s.lfd >= 0)
		close(s.lfd);
	if (s.model)
		PR_Close(s.model);
	SSL_ShutdownServerSessionIDCache();
	NSS_Shutdown();
	if (s.log && s.log != stdout)
		fclose(s.log);
	return ret;
}
