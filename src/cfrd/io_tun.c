/*
 * TUN packet I/O backends on a non-blocking /dev/net/tun descriptor without
 * packet information headers (IFF_NO_PI), one read() or write() per packet
 * (TUN has no recvmmsg/sendmmsg):
 *
 *  - "tun": plain packets. The device advertises no offloads, so the kernel
 *    segments every GSO packet and completes every checksum before cfrd
 *    reads it: ~44 packets per 64 KB of TCP.
 *  - "tun+offload": IFF_VNET_HDR with TUNSETOFFLOAD. Each read starts with a
 *    struct virtio_net_hdr and may hold a 64 KB GSO super-packet with a
 *    partial checksum; it is written back whole with the same header, and
 *    the kernel segments (or the receiver takes it as is) after cfrd. See
 *    vnet.c for the header semantics.
 *
 * Both attach to the named device (a persistent one made with
 * `ip tuntap add mode tun`: IFF_VNET_HDR is taken from each TUNSETIFF, so
 * the device need not be created with vnet_hdr) or create it, set the MTU
 * and bring the link up. They never add addresses or routes: that is the
 * operator's job, as with TAYGA (see cfrd(8)).
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "vnet.h"

#define TUN_PATH "/dev/net/tun"

/* UDP segmentation offload (kernel 6.2); older uapi headers lack it. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

_Static_assert(CFRD_VNET_HDR_LEN <= CFRD_PKT_HEADROOM, "the virtio header lives in the headroom");

/* A burst of bad virtio headers must not keep rx_burst reading forever. */
#define MAX_REJECTS_PER_BURST 16

static const char *privilege_hint(int err)
{
	return err == EPERM || err == EACCES ? " (needs CAP_NET_ADMIN)" : "";
}

static const char *attach_hint(int err)
{
	switch (err) {
	case EINVAL: /* the name exists with other flags: tap, pi, multi_queue, or not a tun */
		return " (exists with other flags: not a tun device, or not multi_queue for "
		       "several workers?)";
	case EBUSY:
		return " (another process has it open)";
	default:
		return privilege_hint(err);
	}
}

/* Link settings go through an ordinary socket: the TUN fd does not take them. */
static int tun_configure_link(const char *name, unsigned mtu)
{
	struct ifreq ifr;
	int sock, ret = 0;

	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		ret = -errno;
		log_error("cannot open a socket to configure %s: %s", name, strerror(-ret));
		return ret;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_mtu = (int)mtu;
	if (ioctl(sock, SIOCSIFMTU, &ifr) < 0) {
		ret = -errno;
		log_error("cannot set MTU %u on %s: %s%s", mtu, name, strerror(-ret),
		          privilege_hint(-ret));
		goto out;
	}
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) {
		ret = -errno;
		log_error("cannot read the flags of %s: %s", name, strerror(-ret));
		goto out;
	}
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) {
		ret = -errno;
		log_error("cannot bring %s up: %s%s", name, strerror(-ret), privilege_hint(-ret));
		goto out;
	}
out:
	close(sock);
	return ret;
}

/*
 * Attach <fd> to <ifname> with <flags>, then set the link; returns 0 or
 * -errno. One queue of a device made multi_queue is still a working device,
 * so a single-queue attach that the kernel refuses for want of
 * IFF_MULTI_QUEUE is retried with it.
 */
static int tun_attach(const struct cfr_io *io, int fd, const char *ifname, unsigned mtu,
                      short flags)
{
	struct ifreq ifr;
	int ret;

	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = (short)(flags | (io->multi_queue ? IFF_MULTI_QUEUE : 0));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ret = ioctl(fd, TUNSETIFF, &ifr);
	if (ret < 0 && errno == EINVAL && !io->multi_queue) {
		ifr.ifr_flags = (short)(flags | IFF_MULTI_QUEUE);
		ret = ioctl(fd, TUNSETIFF, &ifr);
	}
	if (ret < 0) {
		ret = -errno;
		log_error("cannot attach TUN device %s: %s%s", ifname, strerror(-ret),
		          attach_hint(-ret));
		return ret;
	}
	return tun_configure_link(ifr.ifr_name, mtu);
}

static int tun_open_fd(void)
{
	int fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		int ret = -errno;

		log_error("cannot open %s: %s%s", TUN_PATH, strerror(-ret),
		          -ret == ENOENT ? " (is the tun module loaded?)" : privilege_hint(-ret));
		return ret;
	}
	return fd;
}

static void tun_opened(struct cfr_io *io, int fd, unsigned mtu, const char *offloads)
{
	io->fd = fd;
	io->packets_read = 0;
	io->read_errors = 0;
	io->write_errors = 0;
	io->offload_drops = 0;
	io->checksums_completed = 0;
	/* Every queue of a device gets the same settings: say them once. */
	cfrd_log(io->queue == 0 ? CFRD_LOG_INFO : CFRD_LOG_DEBUG,
	         "attached to TUN device %s (queue %u), MTU %u, ingress %u, offloads: %s", io->name,
	         io->queue, mtu, io->ingress, offloads);
}

static int tun_open(struct cfr_io *io, const char *ifname, unsigned mtu)
{
	int fd, ret;

	fd = tun_open_fd();
	if (fd < 0)
		return fd;
	ret = tun_attach(io, fd, ifname, mtu, IFF_TUN | IFF_NO_PI);
	if (ret < 0)
		goto fail;
	/*
	 * Offloads set by an earlier cfrd with offload = yes stay on a
	 * persistent device (they are device features, not per descriptor):
	 * without a virtio header to say so, the kernel would then hand us GSO
	 * packets with partial checksums as if they were plain ones.
	 */
	if (ioctl(fd, TUNSETOFFLOAD, 0UL) < 0) {
		ret = -errno;
		log_error("cannot turn the offloads of %s off: %s", ifname, strerror(-ret));
		goto fail;
	}
	tun_opened(io, fd, mtu, "off");
	return 0;
fail:
	close(fd);
	return ret;
}

/*
 * TUNSETOFFLOAD says what cfrd accepts from the kernel (the device's
 * tx-checksumming and TSO features); in the other direction the kernel
 * takes any GSO type on write. Unknown bits are EINVAL (set_offload() in
 * drivers/net/tun.c keeps that as the way to probe), so try the richest set
 * first. TSO_ECN: CWR-marked super-packets pass whole too (the
 * VIRTIO_NET_HDR_GSO_ECN bit goes back unchanged).
 */
static int tun_set_offloads(int fd, const char *ifname, const char **what)
{
	static const struct {
		unsigned long flags;
		const char *what;
	} sets[] = {
	    {TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_USO4 | TUN_F_USO6,
	     "checksum, TSO4, TSO6, TSO-ECN, USO4, USO6"},
	    {TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
	     "checksum, TSO4, TSO6, TSO-ECN (no USO before kernel 6.2)"},
	    {TUN_F_CSUM, "checksum only"},
	};
	int ret = -EINVAL;

	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		if (ioctl(fd, TUNSETOFFLOAD, sets[i].flags) == 0) {
			*what = sets[i].what;
			return 0;
		}
		ret = -errno;
		if (ret != -EINVAL)
			break;
	}
	log_error("cannot set the offloads of %s: %s (offload = no works without them)", ifname,
	          strerror(-ret));
	return ret;
}

static int tun_offload_open(struct cfr_io *io, const char *ifname, unsigned mtu)
{
	int hdr_len = (int)CFRD_VNET_HDR_LEN;
	const char *what = "";
	int fd, ret;

	fd = tun_open_fd();
	if (fd < 0)
		return fd;
	ret = tun_attach(io, fd, ifname, mtu, IFF_TUN | IFF_NO_PI | IFF_VNET_HDR);
	if (ret < 0)
		goto fail;
	/*
	 * The legacy 10-byte header, in native byte order: TUN's default. The
	 * 12-byte virtio 1.0 one only adds num_buffers, which means nothing here.
	 * Set anyway: the size is a device setting a previous user may have changed.
	 */
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
		ret = -errno;
		log_error("cannot set the virtio header size of %s: %s", ifname, strerror(-ret));
		goto fail;
	}
	ret = tun_set_offloads(fd, ifname, &what);
	if (ret < 0)
		goto fail;
	tun_opened(io, fd, mtu, what);
	return 0;
fail:
	close(fd);
	return ret;
}

static unsigned tun_rx_burst(struct cfr_io *io, struct cfr_pkt *pkts, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		ssize_t len = read(io->fd, pkts[i].data, CFRD_PKT_BUF_SIZE);

		if (len > 0) {
			pkts[i].len = (uint32_t)len;
			pkts[i].ingress = io->ingress;
			pkts[i].csum_partial = 0;
			continue;
		}
		if (len < 0 && errno != EAGAIN)
			io->read_errors++;
		break;
	}
	atomic_fetch_add_explicit(&io->packets_read, i, memory_order_relaxed);
	return i;
}

static unsigned tun_tx_burst(struct cfr_io *io, const struct cfr_pkt *pkts, unsigned n)
{
	unsigned sent = 0;

	for (unsigned i = 0; i < n; i++) {
		ssize_t len;

		if (pkts[i].verdict != CFR_VERDICT_FORWARD)
			continue;
		len = write(io->fd, pkts[i].data, pkts[i].len);
		if (len == (ssize_t)pkts[i].len)
			sent++;
		else
			io->write_errors++;
	}
	return sent;
}

static unsigned tun_offload_rx_burst(struct cfr_io *io, struct cfr_pkt *pkts, unsigned n)
{
	unsigned i = 0, rejects = 0;
	uint64_t completed = 0;

	while (i < n) {
		uint8_t *buf = pkts[i].data - CFRD_VNET_HDR_LEN;
		ssize_t len = read(io->fd, buf, CFRD_VNET_HDR_LEN + CFRD_PKT_BUF_SIZE);
		struct virtio_net_hdr *h = (struct virtio_net_hdr *)(void *)buf;

		if (__builtin_expect(len <= (ssize_t)CFRD_VNET_HDR_LEN, 0)) {
			if (len < 0 && errno == EAGAIN)
				break;
			io->read_errors++;
			if (len < 0 || ++rejects > MAX_REJECTS_PER_BURST)
				break;
			continue;
		}
		pkts[i].len = (uint32_t)len - CFRD_VNET_HDR_LEN;
		pkts[i].ingress = io->ingress;
		if (__builtin_expect(cfrd_vnet_rx(h, &pkts[i], &completed) < 0, 0)) {
			io->offload_drops++; /* the buffer is reused for the next read */
			if (++rejects > MAX_REJECTS_PER_BURST)
				break;
			continue;
		}
		i++;
	}
	atomic_fetch_add_explicit(&io->packets_read, i, memory_order_relaxed);
	if (completed)
		atomic_fetch_add_explicit(&io->checksums_completed, completed,
		                          memory_order_relaxed);
	return i;
}

/* The header read with each packet goes back as it came: same gso and checksum offsets. */
static unsigned tun_offload_tx_burst(struct cfr_io *io, const struct cfr_pkt *pkts, unsigned n)
{
	unsigned sent = 0;

	for (unsigned i = 0; i < n; i++) {
		size_t len = CFRD_VNET_HDR_LEN + pkts[i].len;

		if (pkts[i].verdict != CFR_VERDICT_FORWARD)
			continue;
		if (write(io->fd, pkts[i].data - CFRD_VNET_HDR_LEN, len) == (ssize_t)len)
			sent++;
		else
			io->write_errors++;
	}
	return sent;
}

static void tun_close(struct cfr_io *io)
{
	/* A device we created disappears with its last descriptor; a persistent one stays. */
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
}

const struct cfr_io_backend cfrd_io_tun = {
    .name = "tun",
    .open = tun_open,
    .rx_burst = tun_rx_burst,
    .tx_burst = tun_tx_burst,
    .close = tun_close,
};

const struct cfr_io_backend cfrd_io_tun_offload = {
    .name = "tun+offload",
    .tx_hdr_len = CFRD_VNET_HDR_LEN,
    .open = tun_offload_open,
    .rx_burst = tun_offload_rx_burst,
    .tx_burst = tun_offload_tx_burst,
    .close = tun_close,
};
