/*
 * TUN packet I/O backend: one read() or write() per packet on a
 * non-blocking /dev/net/tun descriptor without packet information headers
 * (IFF_NO_PI), so every buffer starts with the IP header the engine expects.
 *
 * It attaches to the named device (a persistent one made with
 * `ip tuntap add mode tun`) or creates it, sets the MTU and brings the link
 * up. It never adds addresses or routes: that is the operator's job, as with
 * TAYGA (see cfrd(8)).
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

#define TUN_PATH "/dev/net/tun"

static const char *privilege_hint(int err)
{
	return err == EPERM || err == EACCES ? " (needs CAP_NET_ADMIN)" : "";
}

static const char *attach_hint(int err)
{
	switch (err) {
	case EINVAL: /* the name exists with other flags: tap, pi, multi_queue, or not a tun */
		return " (exists but is not a plain tun device?)";
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

static int tun_open(struct cfr_io *io, const char *ifname, unsigned mtu)
{
	struct ifreq ifr;
	int fd, ret;

	fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		log_error("cannot open %s: %s%s", TUN_PATH, strerror(-ret),
		          -ret == ENOENT ? " (is the tun module loaded?)" : privilege_hint(-ret));
		return ret;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		ret = -errno;
		log_error("cannot attach TUN device %s: %s%s", ifname, strerror(-ret),
		          attach_hint(-ret));
		goto fail;
	}
	ret = tun_configure_link(ifr.ifr_name, mtu);
	if (ret < 0)
		goto fail;
	io->fd = fd;
	io->read_errors = 0;
	io->write_errors = 0;
	log_info("attached to TUN device %s, MTU %u, ingress %u", ifr.ifr_name, mtu, io->ingress);
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
			continue;
		}
		if (len < 0 && errno != EAGAIN)
			io->read_errors++;
		break;
	}
	return i;
}

static unsigned tun_tx_burst(struct cfr_io *io, const struct cfr_pkt *pkts, unsigned n)
{
	unsigned sent = 0;

	for (unsigned i = 0; i < n; i++) {
		ssize_t len = write(io->fd, pkts[i].data, pkts[i].len);

		if (len == (ssize_t)pkts[i].len)
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
