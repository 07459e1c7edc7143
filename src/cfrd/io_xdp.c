/*
 * The AF_XDP backend (see io_xdp.h): load and attach the XDP program, one
 * UMEM per worker shared by its sockets (one per port), and the backend
 * calls the worker loop drives for each socket: frames in, the routing
 * decisions of xdp_route.c under the engine lock, frames out of the port
 * that reaches their destination, or into the worker's TUN queue (the
 * queue's spill) when no port of this worker's does.
 */
#include "io_xdp.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include "../xdp/cfr_xdp.h"
#include "daemon.h"
#include "forward_rules.h"
#include "log.h"
#include "xdp_route.h"

_Static_assert(CFR_XDP_MAX_PORTS == CFRD_XDP_MAX_PORTS, "one limit on ports");
_Static_assert(CFR_XDP_MAX_QUEUES == CFRD_MAX_WORKERS, "a socket per worker per port");
_Static_assert(CFR_XDP_MAX_POOL_PREFIXES == CFR_MAX_POOL_PREFIXES, "room for every pool prefix");
_Static_assert(CFR_XDP_MAX_SUBSCRIBER_PREFIXES == CFR_MAX_SUBSCRIBER_PREFIXES,
               "room for every subscriber prefix");
_Static_assert(sizeof(struct cfr_xdp_meta) % 4 == 0, "the IP header keeps its alignment behind it");

/* The compiled program, linked in by xdp_object.S. */
extern const unsigned char cfr_xdp_object[];
extern const uint64_t cfr_xdp_object_size;

/* Ring sizes per socket; a worker's UMEM has room for all its rings at once, plus a burst. */
#define RING_SIZE  512u
#define FRAME_SIZE 4096u

struct port {
	char name[IFNAMSIZ];
	unsigned ifindex;
	unsigned n_queues;
	uint16_t ingress; /* stamped on the packets of an inside port (its [line], or 0) */
	struct bpf_link *link;
};

struct cfrd_xdp {
	struct bpf_object *obj;
	int xsks_fd;
	struct port ports[CFRD_XDP_MAX_PORTS];
	unsigned n_ports;
	struct cfrd_xdp_route route; /* the ports' MACs, MTUs and roles, and the neighbours */
	struct cfrd_xdp_worker *workers[CFRD_MAX_WORKERS];
	unsigned n_workers;
	int mtu_fd; /* a datagram socket for SIOCGIFMTU, kept for cfrd_xdp_refresh() */
};

struct sock {
	struct cfrd_xdp_worker *xw;
	struct xsk_socket *xsk;
	struct xsk_ring_cons rx, comp;
	struct xsk_ring_prod tx, fill;
	unsigned port;
	unsigned tx_pending; /* reserved and filled, not yet submitted */
	_Atomic uint64_t rx_frames, tx_frames, tx_bytes, to_tun, tx_full, dropped, guard_drops;
};

struct cfrd_xdp_worker {
	struct cfrd_xdp *x;
	unsigned queue;
	uint8_t *area;
	size_t area_size;
	struct xsk_umem *umem;
	struct sock socks[CFRD_XDP_MAX_PORTS];
	unsigned n_socks;
	int sock_of_port[CFRD_XDP_MAX_PORTS]; /* -1: no socket on this worker's queue of the port */
	uint32_t sendable;                    /* a bit per port with a socket here */
	uint64_t *free_frames;
	unsigned n_free;
	/* The burst in hand (one socket's at a time): each packet's frame, sender and way out. */
	uint64_t frame[CFRD_BURST];
	struct cfrd_xdp_sender sender[CFRD_BURST];
	int via[CFRD_BURST]; /* a port, CFRD_XDP_VIA_TUN or CFRD_XDP_VIA_DROP */
};

/* --- frames ----------------------------------------------------------------- */

static inline void frame_free(struct cfrd_xdp_worker *xw, uint64_t addr)
{
	xw->free_frames[xw->n_free++] = addr & ~(uint64_t)(FRAME_SIZE - 1);
}

static void reclaim_completions(struct cfrd_xdp_worker *xw, struct sock *s)
{
	uint32_t idx;
	unsigned n = xsk_ring_cons__peek(&s->comp, RING_SIZE, &idx);

	for (unsigned i = 0; i < n; i++)
		frame_free(xw, *xsk_ring_cons__comp_addr(&s->comp, idx + i));
	xsk_ring_cons__release(&s->comp, n);
}

static void refill(struct cfrd_xdp_worker *xw, struct sock *s)
{
	uint32_t idx;
	unsigned want = xsk_prod_nb_free(&s->fill, xw->n_free);

	if (want > xw->n_free)
		want = xw->n_free;
	if (want == 0 || xsk_ring_prod__reserve(&s->fill, want, &idx) != want)
		return;
	for (unsigned i = 0; i < want; i++)
		*xsk_ring_prod__fill_addr(&s->fill, idx + i) = xw->free_frames[--xw->n_free];
	xsk_ring_prod__submit(&s->fill, want);
}

/* Frames in the transmit ring that the kernel has not taken yet. */
static unsigned tx_queued(struct sock *s)
{
	return RING_SIZE - xsk_prod_nb_free(&s->tx, RING_SIZE);
}

/*
 * Submit what the burst queued and have the kernel send it. A copy-mode
 * socket sends at most 32 frames per call and leaves the rest (all of them
 * while the device is busy) in the ring until the next call, so call again
 * while the ring empties: no frame may wait for later traffic to push it.
 */
static void kick(struct sock *s)
{
	unsigned queued;

	if (s->tx_pending) {
		xsk_ring_prod__submit(&s->tx, s->tx_pending);
		atomic_fetch_add_explicit(&s->tx_frames, s->tx_pending, memory_order_relaxed);
		s->tx_pending = 0;
	}
	while ((queued = tx_queued(s)) > 0) {
		if (sendto(xsk_socket__fd(s->xsk), NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 &&
		    errno != EAGAIN && errno != EBUSY && errno != ENOBUFS)
			return;
		if (tx_queued(s) == queued)
			return; /* the device is busy: xdp_flush() comes back */
	}
}

static bool tx_one(struct cfrd_xdp_worker *xw, struct sock *s, uint64_t addr, uint32_t len)
{
	uint32_t idx;

	if (xsk_ring_prod__reserve(&s->tx, 1, &idx) != 1) {
		kick(s);
		reclaim_completions(xw, s);
		if (xsk_ring_prod__reserve(&s->tx, 1, &idx) != 1)
			return false;
	}
	*xsk_ring_prod__tx_desc(&s->tx, idx) = (struct xdp_desc){.addr = addr, .len = len};
	s->tx_pending++;
	return true;
}

/* --- the backend ------------------------------------------------------------ */

/*
 * Up to <n> frames from the socket, in place in the UMEM: every frame taken
 * from the ring is either in pkts[] or freed. Completed and dropped frames
 * go back to every socket's fill ring first, so the kernel never runs dry.
 */
static unsigned xdp_rx_burst(struct cfr_io *io, struct cfr_pkt *pkts, unsigned n)
{
	struct sock *s = io->priv;
	struct cfrd_xdp_worker *xw = s->xw;
	const struct port *port = &xw->x->ports[s->port];
	bool inside = xw->x->route.ports[s->port].inside;
	unsigned got, k = 0;
	uint32_t idx;

	for (unsigned i = 0; i < xw->n_socks; i++) {
		reclaim_completions(xw, &xw->socks[i]);
		refill(xw, &xw->socks[i]);
	}
	if (xsk_ring_prod__needs_wakeup(&s->fill))
		recvfrom(io->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
	got = xsk_ring_cons__peek(&s->rx, n < CFRD_BURST ? n : CFRD_BURST, &idx);
	for (unsigned i = 0; i < got; i++) {
		const struct xdp_desc *desc = xsk_ring_cons__rx_desc(&s->rx, idx + i);
		/* The program pushed its header in front of every frame from an inside port. */
		uint32_t skip = inside ? sizeof(struct cfr_xdp_meta) : 0;
		uint8_t *eth = (uint8_t *)xsk_umem__get_data(xw->area, desc->addr) + skip;

		/* Not even an IP version: nothing the engine could name. */
		if (desc->len <= skip + ETH_HLEN) {
			frame_free(xw, desc->addr);
			atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
			continue;
		}
		/* Sent from the Ethernet header on: an offset into its chunk is fine. */
		xw->frame[k] = desc->addr + skip;
		pkts[k] = (struct cfr_pkt){.data = eth + ETH_HLEN,
		                           .len = desc->len - skip - ETH_HLEN,
		                           .ingress = port->ingress};
		xw->sender[k].learnable = false;
		if (inside)
			cfrd_xdp_sender_take(&xw->sender[k], &pkts[k],
			                     (struct cfr_xdp_meta *)eth - 1, true);
		k++;
	}
	xsk_ring_cons__release(&s->rx, got);
	atomic_fetch_add_explicit(&s->rx_frames, got, memory_order_relaxed);
	io->packets_read += got;
	return k;
}

/* Under the engine lock, right after the engine: learn, and pick every packet's way out. */
static void xdp_route(struct cfr_io *io, struct cfr_pkt *pkts, unsigned n, uint64_t now_ms)
{
	struct sock *s = io->priv;
	struct cfrd_xdp_worker *xw = s->xw;

	for (unsigned k = 0; k < n; k++)
		xw->via[k] = cfrd_xdp_route_pick(&xw->x->route, s->port, &xw->sender[k], &pkts[k],
		                                 xw->sendable, now_ms);
}

/* A packet no port of this worker's can send: into the TUN device, for the kernel to route. */
static void spill(struct cfr_io *io, const struct cfr_pkt *pkt)
{
	const struct cfr_io_backend *be = io->spill->backend;
	struct cfr_pkt plain = *pkt;

	/* No offloads to describe: a zeroed backend header (virtio), where the MACs were. */
	memset(pkt->data - be->tx_hdr_len, 0, be->tx_hdr_len);
	plain.csum_partial = 0;
	be->tx_burst(io->spill, &plain, 1);
}

/* Every frame of the burst leaves here: sent, written to TUN, or freed as dropped. */
static unsigned xdp_tx_burst(struct cfr_io *io, const struct cfr_pkt *pkts, unsigned n)
{
	struct sock *from = io->priv;
	struct cfrd_xdp_worker *xw = from->xw;
	unsigned sent = 0;

	for (unsigned k = 0; k < n; k++) {
		const struct cfr_pkt *pkt = &pkts[k];

		if (pkt->verdict != CFR_VERDICT_FORWARD) {
			atomic_fetch_add_explicit(&from->dropped, 1, memory_order_relaxed);
		} else if (xw->via[k] == CFRD_XDP_VIA_DROP) {
			atomic_fetch_add_explicit(&from->guard_drops, 1, memory_order_relaxed);
		} else if (xw->via[k] >= 0) {
			struct sock *s = &xw->socks[xw->sock_of_port[xw->via[k]]];

			cfrd_xdp_hop_decrement(pkt->data);
			if (tx_one(xw, s, xw->frame[k], pkt->len + ETH_HLEN)) {
				/* This worker's own socket: the add is never contended. */
				atomic_fetch_add_explicit(&s->tx_bytes, pkt->len,
				                          memory_order_relaxed);
				sent++;
				continue;
			}
			atomic_fetch_add_explicit(&s->tx_full, 1, memory_order_relaxed);
		} else {
			spill(io, pkt);
			atomic_fetch_add_explicit(&from->to_tun, 1, memory_order_relaxed);
			sent++;
		}
		frame_free(xw, xw->frame[k]);
	}
	for (unsigned i = 0; i < xw->n_socks; i++)
		kick(&xw->socks[i]);
	return sent;
}

/* Frames a busy device left in the transmit ring: true if some are still there. */
static bool xdp_flush(struct cfr_io *io)
{
	struct sock *s = io->priv;

	kick(s);
	return tx_queued(s) > 0;
}

/* The worker's UMEM outlives its sockets: cfrd_xdp_worker_close() frees it afterwards. */
static void xdp_close(struct cfr_io *io)
{
	struct sock *s = io->priv;

	xsk_socket__delete(s->xsk);
	s->xsk = NULL;
	io->fd = -1;
}

const struct cfr_io_backend cfrd_io_xdp = {
    .name = "af_xdp",
    .own_buffers = true,
    .rx_burst = xdp_rx_burst,
    .route = xdp_route,
    .tx_burst = xdp_tx_burst,
    .flush = xdp_flush,
    .close = xdp_close,
};

/* --- forward rules ---------------------------------------------------------- */

/*
 * The fast path's packets skip netfilter: an operator's forward rules
 * would silently stop applying to most subscriber traffic. So cfrd does
 * not start past them unless told to (ignore-forward-rules); its own guard
 * table is the exception, because the fast path keeps its promises itself.
 */
static int check_forward_rules(const struct cfrd_config *cfg)
{
	char what[160];
	int ret = cfrd_forward_rules_count(what, sizeof(what));
	if (ret < 0)
		log_error("[xdp]: cannot read the nftables ruleset");
	if (ret > 0 && cfg->xdp_ignore_forward_rules) {
		log_warn("[xdp]: %d forwarding rule%s (first in %s) will not see fast-path packets "
		         "(ignore-forward-rules = yes)",
		         ret, ret == 1 ? "" : "s", what);
		return 0;
	}
	if (ret > 0) {
		log_error("[xdp]: %d forwarding rule%s (first in %s) would not see fast-path "
		          "packets: remove them, run without [xdp], or set [xdp] "
		          "ignore-forward-rules = yes (cfrd(8), AF_XDP)",
		          ret, ret == 1 ? "" : "s", what);
		return -EPERM;
	}
	if (ret < 0 && cfg->xdp_ignore_forward_rules)
		return 0;
	if (ret < 0)
		log_error(
		    "[xdp]: cannot tell whether forwarding rules exist that fast-path "
		    "packets would skip; set [xdp] ignore-forward-rules = yes to start anyway");
	return ret;
}

/* --- setup ------------------------------------------------------------------ */

/* libbpf explains its failures on stderr; cfrd says what failed in its own line instead. */
static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

static int port_info(struct port *p, struct cfrd_xdp_port_view *v)
{
	char path[64 + IFNAMSIZ];
	struct ifreq ifr = {0};
	struct dirent *de;
	unsigned mtu = 1500;
	DIR *dir;
	int fd, ret = 0;

	p->ifindex = if_nametoindex(p->name);
	if (p->ifindex == 0) {
		ret = -errno;
		log_error("[xdp] port %s: %s", p->name, strerror(errno));
		return ret;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", p->name);
	if (fd >= 0 && ioctl(fd, SIOCGIFMTU, &ifr) == 0)
		mtu = (unsigned)ifr.ifr_mtu;
	if (fd < 0 || ioctl(fd, SIOCGIFHWADDR, &ifr) < 0 || ifr.ifr_hwaddr.sa_family != 1) {
		ret = fd < 0 || errno == 0 ? -EINVAL : -errno;
		log_error("[xdp] port %s: not an Ethernet interface", p->name);
	}
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		return ret;
	memcpy(v->mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	v->mtu = mtu;
	snprintf(path, sizeof(path), "/sys/class/net/%s/queues", p->name);
	dir = opendir(path);
	p->n_queues = 0;
	while (dir && (de = readdir(dir)) != NULL)
		p->n_queues += strncmp(de->d_name, "rx-", 3) == 0;
	if (dir)
		closedir(dir);
	if (p->n_queues == 0)
		p->n_queues = 1;
	return 0;
}

static int map_fd(struct cfrd_xdp *x, const char *name)
{
	return bpf_object__find_map_fd_by_name(x->obj, name);
}

/* The prefixes of <family> in <list> into the LPM maps <fd4> / <fd6>. */
static int fill_lpm(int fd4, int fd6, const struct cfr_prefix *list, unsigned n)
{
	uint8_t one = 1;

	for (unsigned i = 0; i < n; i++) {
		struct cfr_xdp_lpm4 k4 = {.prefixlen = list[i].len};
		struct cfr_xdp_lpm6 k6 = {.prefixlen = list[i].len};
		int ret;

		memcpy(k4.addr, list[i].addr, 4);
		memcpy(k6.addr, list[i].addr, 16);
		ret = list[i].family == CFR_FAMILY_V4
		          ? bpf_map_update_elem(fd4, &k4, &one, BPF_ANY)
		          : bpf_map_update_elem(fd6, &k6, &one, BPF_ANY);
		if (ret < 0)
			return -errno;
	}
	return 0;
}

/* The pools (packets to them come in by outside ports) and the subscribers (theirs by inside). */
static int fill_prefixes(struct cfrd_xdp *x, const struct cfr_engine_config *e)
{
	int ret = fill_lpm(map_fd(x, "pools4"), map_fd(x, "pools6"), e->pool4, e->n_pool4);

	if (ret == 0)
		ret = fill_lpm(map_fd(x, "pools4"), map_fd(x, "pools6"), e->pool6, e->n_pool6);
	if (ret == 0)
		ret = fill_lpm(map_fd(x, "subs4"), map_fd(x, "subs6"), e->subscribers,
		               e->n_subscribers);
	return ret;
}

/*
 * Attach the program to <ifindex>. A port stays busy while the cfrd before
 * this one is still dying (a SIGKILL is not instant, and its link goes with
 * its last descriptor), so a busy port is tried again for up to 2 s before
 * it counts as held by another program.
 */
static struct bpf_link *attach_xdp(struct bpf_program *prog, unsigned ifindex)
{
	const struct timespec step = {.tv_nsec = 100 * 1000 * 1000};
	struct bpf_link *link = NULL;

	for (int tries = 0; tries < 20; tries++) {
		link = bpf_program__attach_xdp(prog, (int)ifindex);
		if (link != NULL || errno != EBUSY)
			break;
		nanosleep(&step, NULL);
	}
	return link;
}

static int attach_ports(struct cfrd_xdp *x, const struct cfrd_config *cfg)
{
	struct bpf_program *prog = bpf_object__find_program_by_name(x->obj, "cfr_xdp");
	int ports_fd = map_fd(x, "ports");

	for (unsigned i = 0; i < cfg->n_xdp_ports; i++) {
		struct port *p = &x->ports[i];
		struct cfr_xdp_port v = {
		    .role = cfg->xdp_ports[i].inside ? CFR_XDP_INSIDE : CFR_XDP_OUTSIDE, .slot = i};
		int ret;

		snprintf(p->name, sizeof(p->name), "%s", cfg->xdp_ports[i].name);
		x->route.ports[i].inside = cfg->xdp_ports[i].inside;
		p->ingress = cfg->xdp_ports[i].ingress;
		ret = port_info(p, &x->route.ports[i]);
		if (ret < 0)
			return ret;
		x->n_ports = x->route.n_ports = i + 1;
		if (bpf_map_update_elem(ports_fd, &p->ifindex, &v, BPF_ANY) < 0) {
			ret = -errno;
			log_error("[xdp] port %s: cannot configure the program: %s", p->name,
			          strerror(-ret));
			return ret;
		}
		p->link = attach_xdp(prog, p->ifindex);
		if (p->link == NULL) {
			ret = -errno;
			log_error("[xdp] port %s: cannot attach the XDP program: %s", p->name,
			          strerror(-ret));
			return ret;
		}
	}
	return 0;
}

int cfrd_xdp_open(struct cfrd_xdp **xp, const struct cfrd_config *cfg)
{
	struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
	struct cfrd_xdp *x;
	int ret;

	ret = check_forward_rules(cfg);
	if (ret < 0)
		return ret;
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return -ENOMEM;
	x->mtu_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (cfrd_xdp_route_init(&x->route, &cfg->engine) < 0) {
		cfrd_xdp_close(x);
		log_error("[xdp]: cannot allocate the neighbour table: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	/* UMEMs are locked memory; root without this limit fails on larger ones. */
	setrlimit(RLIMIT_MEMLOCK, &unlimited);
	libbpf_set_print(libbpf_quiet);
	x->obj = bpf_object__open_mem(cfr_xdp_object, (size_t)cfr_xdp_object_size, NULL);
	if (x->obj == NULL || bpf_object__load(x->obj) < 0) {
		ret = -errno;
		log_error("[xdp]: cannot load the XDP program: %s", strerror(-ret));
		cfrd_xdp_close(x);
		return ret;
	}
	x->xsks_fd = map_fd(x, "xsks");
	ret = fill_prefixes(x, &cfg->engine);
	if (ret < 0)
		log_error("[xdp]: cannot configure the pool and subscriber prefixes: %s",
		          strerror(-ret));
	else
		ret = attach_ports(x, cfg);
	if (ret < 0) {
		cfrd_xdp_close(x);
		return ret;
	}
	*xp = x;
	return 0;
}

void cfrd_xdp_close(struct cfrd_xdp *x)
{
	if (x == NULL)
		return;
	for (unsigned i = 0; i < x->n_ports; i++)
		bpf_link__destroy(x->ports[i].link);
	bpf_object__close(x->obj);
	cfrd_xdp_route_fini(&x->route);
	if (x->mtu_fd >= 0)
		close(x->mtu_fd);
	free(x);
}

/*
 * An access line's MTU may change while cfrd runs (a PPPoE session comes
 * back with another): read every port's again, so that a reply too big for
 * its line goes through TUN, where the kernel sends the remote a Packet Too
 * Big in alias form, instead of being sent into a line that drops it.
 */
void cfrd_xdp_refresh(struct cfrd_xdp *x)
{
	for (unsigned i = 0; i < x->n_ports && x->mtu_fd >= 0; i++) {
		struct ifreq ifr = {0};

		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", x->ports[i].name);
		if (ioctl(x->mtu_fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0)
			__atomic_store_n(&x->route.ports[i].mtu, (unsigned)ifr.ifr_mtu,
			                 __ATOMIC_RELAXED);
	}
}

static int sock_open(struct cfrd_xdp_worker *xw, unsigned port)
{
	const struct xsk_socket_config sc = {
	    .rx_size = RING_SIZE,
	    .tx_size = RING_SIZE,
	    .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
	    .bind_flags = XDP_USE_NEED_WAKEUP,
	};
	struct cfrd_xdp *x = xw->x;
	struct sock *s = &xw->socks[xw->n_socks];
	uint32_t key = port * CFR_XDP_MAX_QUEUES + xw->queue;
	int ret, fd;

	s->xw = xw;
	s->port = port;
	/* The first socket takes the fill and completion rings made with the UMEM. */
	if (xw->n_socks == 0)
		ret = xsk_socket__create(&s->xsk, x->ports[port].name, xw->queue, xw->umem, &s->rx,
		                         &s->tx, &sc);
	else
		ret = xsk_socket__create_shared(&s->xsk, x->ports[port].name, xw->queue, xw->umem,
		                                &s->rx, &s->tx, &s->fill, &s->comp, &sc);
	if (ret < 0) {
		log_error("[xdp] port %s queue %u: cannot open an AF_XDP socket: %s",
		          x->ports[port].name, xw->queue, strerror(-ret));
		return ret;
	}
	fd = xsk_socket__fd(s->xsk);
	if (bpf_map_update_elem(x->xsks_fd, &key, &fd, BPF_ANY) < 0) {
		ret = -errno;
		log_error("[xdp] port %s queue %u: cannot register the socket: %s",
		          x->ports[port].name, xw->queue, strerror(-ret));
		xsk_socket__delete(s->xsk);
		return ret;
	}
	xw->sock_of_port[port] = (int)xw->n_socks++;
	xw->sendable |= 1u << port;
	return 0;
}

/* Each socket as a queue of the AF_XDP backend, for the worker loop to poll and drive. */
static void fill_ios(struct cfrd_xdp_worker *xw, struct cfr_io *spill, struct cfr_io *ios)
{
	for (unsigned i = 0; i < xw->n_socks; i++) {
		struct sock *s = &xw->socks[i];
		const struct port *port = &xw->x->ports[s->port];

		ios[i] = (struct cfr_io){.backend = &cfrd_io_xdp,
		                         .fd = xsk_socket__fd(s->xsk),
		                         .ingress = port->ingress,
		                         .queue = xw->queue,
		                         .priv = s,
		                         .spill = spill};
		snprintf(ios[i].name, sizeof(ios[i].name), "%s", port->name);
	}
}

int cfrd_xdp_worker_open(struct cfrd_xdp *x, unsigned queue, struct cfr_io *spill,
                         struct cfr_io *ios, unsigned *n_ios, struct cfrd_xdp_worker **xwp)
{
	const struct xsk_umem_config uc = {
	    .fill_size = RING_SIZE,
	    .comp_size = RING_SIZE,
	    .frame_size = FRAME_SIZE,
	};
	struct cfrd_xdp_worker *xw;
	unsigned n_ports = 0, n_frames;
	int ret;

	*n_ios = 0;
	for (unsigned p = 0; p < x->n_ports; p++)
		n_ports += queue < x->ports[p].n_queues;
	xw = calloc(1, sizeof(*xw));
	if (xw == NULL)
		return -ENOMEM;
	xw->x = x;
	xw->queue = queue;
	for (unsigned p = 0; p < CFRD_XDP_MAX_PORTS; p++)
		xw->sock_of_port[p] = -1;
	*xwp = xw;
	x->workers[x->n_workers++] = xw;
	if (n_ports == 0)
		return 0;
	/* Fill, receive, transmit and completion rings all full at once, and a burst in hand. */
	n_frames = n_ports * 4 * RING_SIZE + CFRD_BURST;
	xw->area_size = (size_t)n_frames * FRAME_SIZE;
	xw->area =
	    mmap(NULL, xw->area_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	xw->free_frames = calloc(n_frames, sizeof(*xw->free_frames));
	if (xw->area == MAP_FAILED || xw->free_frames == NULL) {
		xw->area = xw->area == MAP_FAILED ? NULL : xw->area;
		log_error("[xdp]: cannot allocate %zu bytes of frames: %s", xw->area_size,
		          strerror(ENOMEM));
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n_frames; i++)
		frame_free(xw, (uint64_t)i * FRAME_SIZE);
	ret = xsk_umem__create(&xw->umem, xw->area, xw->area_size, &xw->socks[0].fill,
	                       &xw->socks[0].comp, &uc);
	if (ret < 0) {
		log_error("[xdp]: cannot register %zu bytes of frames: %s", xw->area_size,
		          strerror(-ret));
		return ret;
	}
	for (unsigned p = 0; p < x->n_ports; p++) {
		if (queue >= x->ports[p].n_queues)
			continue;
		ret = sock_open(xw, p);
		if (ret < 0)
			return ret;
		refill(xw, &xw->socks[xw->n_socks - 1]);
	}
	fill_ios(xw, spill, ios);
	*n_ios = xw->n_socks;
	return 0;
}

void cfrd_xdp_worker_close(struct cfrd_xdp_worker *xw)
{
	if (xw == NULL)
		return;
	/* The sockets the worker loop did not close (a failed start). */
	for (unsigned i = 0; i < xw->n_socks; i++)
		if (xw->socks[i].xsk)
			xsk_socket__delete(xw->socks[i].xsk);
	if (xw->umem)
		xsk_umem__delete(xw->umem);
	if (xw->area)
		munmap(xw->area, xw->area_size);
	free(xw->free_frames);
	free(xw);
}

uint64_t cfrd_xdp_worker_received(const struct cfrd_xdp_worker *xw)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < xw->n_socks; i++)
		n += atomic_load_explicit(&xw->socks[i].rx_frames, memory_order_relaxed);
	return n;
}

void cfrd_xdp_stats(const struct cfrd_xdp *x, struct cfrd_xdp_stats *st)
{
	*st = (struct cfrd_xdp_stats){
	    .neigh_misses = atomic_load_explicit(&x->route.neigh_misses, memory_order_relaxed)};
	for (unsigned w = 0; w < x->n_workers; w++) {
		const struct cfrd_xdp_worker *xw = x->workers[w];

		for (unsigned i = 0; i < xw->n_socks; i++) {
			const struct sock *s = &xw->socks[i];

			st->rx += atomic_load_explicit(&s->rx_frames, memory_order_relaxed);
			st->tx += atomic_load_explicit(&s->tx_frames, memory_order_relaxed);
			st->tx_bytes += atomic_load_explicit(&s->tx_bytes, memory_order_relaxed);
			st->to_tun += atomic_load_explicit(&s->to_tun, memory_order_relaxed);
			st->tx_full += atomic_load_explicit(&s->tx_full, memory_order_relaxed);
			st->dropped += atomic_load_explicit(&s->dropped, memory_order_relaxed);
			st->guard_drops +=
			    atomic_load_explicit(&s->guard_drops, memory_order_relaxed);
		}
	}
}
