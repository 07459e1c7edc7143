/*
 * bench/flowgen: the packet sources of bench/run that iperf3 cannot be.
 *
 * `flowgen flows` opens many distinct UDP flows fast, for the memory test
 * (1 million concurrent flows through cfrd or kernel NAT). It sends exactly <flows> datagrams of 16
 * bytes from <src> to <dst>, each on its own 5-tuple: source ports SPORT_BASE, SPORT_BASE + 1, ...
 * (one bound socket each) times destination ports DPORT_LO..DPORT_HI. The tuples are the same on
 * every run, so a second pass only refreshes the flows a first one opened and fills in those whose
 * packet was lost. Paced at <pps> packets per second with sendmmsg() batches; bounded by <flows>,
 * it never sends more and never loops. The receiver is expected to drop the datagrams silently
 * (bench/run installs an nftables drop on the front door).
 *
 * `flowgen blast` is the small-packet forwarding load: one UDP flow, <len>
 * byte payloads, as fast as sendmmsg() goes, for <seconds> (and never more
 * than BLAST_MAX packets). A sender that batches leaves the CPU to the
 * forwarding path being measured, which iperf3's write() per datagram does
 * not; the receiver counts at the front door (an nftables counter).
 *
 * Usage: flowgen flows SRC DST FLOWS PPS
 *        flowgen blast SRC DST PORT LEN SECONDS
 * (SRC and DST both IPv4 or both IPv6)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SPORT_BASE 20000u
#define DPORT_LO   10000u
#define DPORT_HI   59999u
#define NDPORTS    (DPORT_HI - DPORT_LO + 1u)
#define BATCH      256u
#define MAX_FLOWS  (NDPORTS * 40u) /* 40 source ports: 2 million flows */
#define BLAST_MAX  100000000ul     /* packets: 100 s at 1 Mpps */
#define MAX_LEN    1472u           /* one IPv4 datagram in a 1500 byte MTU */

union addr {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
};

static int parse_addr(const char *s, uint16_t port, union addr *a, socklen_t *len)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, &a->v4.sin_addr) == 1) {
		a->v4.sin_family = AF_INET;
		a->v4.sin_port = htons(port);
		*len = sizeof(a->v4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, s, &a->v6.sin6_addr) == 1) {
		a->v6.sin6_family = AF_INET6;
		a->v6.sin6_port = htons(port);
		*len = sizeof(a->v6);
		return AF_INET6;
	}
	return -1;
}

static void set_port(union addr *a, uint16_t port)
{
	if (a->sa.sa_family == AF_INET)
		a->v4.sin_port = htons(port);
	else
		a->v6.sin6_port = htons(port);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleep until <deadline> (CLOCK_MONOTONIC ns): the pacing of one batch. */
static void sleep_until(uint64_t deadline)
{
	struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ull),
	                      .tv_nsec = (long)(deadline % 1000000000ull)};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* Send datagrams to dst ports [first, first + n) from <fd>; returns how many went out. */
static unsigned send_batch(int fd, const union addr *dst, socklen_t dlen, unsigned first,
                           unsigned n)
{
	static union addr names[BATCH];
	static struct mmsghdr msgs[BATCH];
	static struct iovec iov[BATCH];
	static char payload[16] = "cfr-bench-flow";
	unsigned sent = 0;

	for (unsigned i = 0; i < n; i++) {
		names[i] = *dst;
		set_port(&names[i], (uint16_t)(DPORT_LO + first + i));
		iov[i] = (struct iovec){.iov_base = payload, .iov_len = sizeof(payload)};
		msgs[i].msg_hdr = (struct msghdr){.msg_name = &names[i],
		                                  .msg_namelen = dlen,
		                                  .msg_iov = &iov[i],
		                                  .msg_iovlen = 1};
	}
	while (sent < n) {
		int r = sendmmsg(fd, msgs + sent, n - sent, 0);

		if (r < 0) {
			if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN)
				continue;
			perror("flowgen: sendmmsg");
			break;
		}
		sent += (unsigned)r;
	}
	return sent;
}

static int usage(void)
{
	fprintf(stderr, "usage: flowgen flows SRC DST FLOWS PPS\n"
	                "       flowgen blast SRC DST PORT LEN SECONDS\n");
	return 2;
}

static int flows_main(int argc, char **argv)
{
	union addr src, dst;
	socklen_t slen, dlen;
	unsigned long flows, pps;
	unsigned long total = 0;
	uint64_t start, ns_per_batch;
	int fam;

	if (argc != 5)
		return usage();
	fam = parse_addr(argv[1], 0, &src, &slen);
	if (fam < 0 || parse_addr(argv[2], DPORT_LO, &dst, &dlen) != fam) {
		fprintf(stderr, "flowgen: SRC and DST must be addresses of one family\n");
		return 2;
	}
	flows = strtoul(argv[3], NULL, 10);
	pps = strtoul(argv[4], NULL, 10);
	if (flows == 0 || flows > MAX_FLOWS || pps == 0) {
		fprintf(stderr, "flowgen: FLOWS must be 1..%u, PPS > 0\n", MAX_FLOWS);
		return 2;
	}
	ns_per_batch = 1000000000ull * BATCH / pps;
	start = now_ns();
	for (unsigned s = 0; total < flows; s++) {
		int fd = socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		int one = 1;

		if (fd < 0) {
			perror("flowgen: socket");
			return 1;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		set_port(&src, (uint16_t)(SPORT_BASE + s));
		if (bind(fd, &src.sa, slen) < 0) {
			perror("flowgen: bind");
			close(fd);
			return 1;
		}
		for (unsigned first = 0; first < NDPORTS && total < flows; first += BATCH) {
			unsigned n = BATCH;

			if (n > NDPORTS - first)
				n = NDPORTS - first;
			if (n > flows - total)
				n = (unsigned)(flows - total);
			total += send_batch(fd, &dst, dlen, first, n);
			sleep_until(start + (total / BATCH) * ns_per_batch);
		}
		close(fd);
	}
	printf("flowgen: sent %lu datagrams in %.2f s\n", total, (double)(now_ns() - start) / 1e9);
	return 0;
}

static int blast_main(int argc, char **argv)
{
	static char payload[MAX_LEN];
	struct mmsghdr msgs[BATCH];
	struct iovec iov;
	union addr src, dst;
	socklen_t slen, dlen;
	unsigned long port, len, secs, total = 0;
	uint64_t start, end;
	int fam, fd;

	if (argc != 6)
		return usage();
	port = strtoul(argv[3], NULL, 10);
	len = strtoul(argv[4], NULL, 10);
	secs = strtoul(argv[5], NULL, 10);
	fam = parse_addr(argv[1], 0, &src, &slen);
	if (fam < 0 || parse_addr(argv[2], (uint16_t)port, &dst, &dlen) != fam || port == 0 ||
	    port > 65535 || len == 0 || len > MAX_LEN || secs == 0 || secs > 60)
		return usage();
	fd = socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, &src.sa, slen) < 0 || connect(fd, &dst.sa, dlen) < 0) {
		perror("flowgen: socket");
		return 1;
	}
	memset(payload, 'x', sizeof(payload));
	iov = (struct iovec){.iov_base = payload, .iov_len = len};
	for (unsigned i = 0; i < BATCH; i++)
		msgs[i].msg_hdr = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1};
	start = now_ns();
	end = start + secs * 1000000000ull;
	while (total < BLAST_MAX && now_ns() < end) {
		int r = sendmmsg(fd, msgs, BATCH, 0);

		if (r > 0)
			total += (unsigned)r;
		else if (r < 0 && errno != EINTR && errno != ENOBUFS && errno != EAGAIN &&
		         errno != ECONNREFUSED) {
			perror("flowgen: sendmmsg");
			break;
		}
	}
	printf("flowgen: sent %lu datagrams in %.2f s\n", total, (double)(now_ns() - start) / 1e9);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "flows") == 0)
		return flows_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "blast") == 0)
		return blast_main(argc - 1, argv + 1);
	return usage();
}
