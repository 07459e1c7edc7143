/*
 * cfrd's packet workers. Each worker owns queue <index> of every TUN device
 * (IFF_MULTI_QUEUE) and runs its own poll() loop: a burst in from a queue,
 * through the engine under the engine lock, back out of the same queue. The
 * kernel spreads flows over the queues by their hash and then keeps each
 * flow on the queue that last wrote its packets (TUN's automq), so one
 * worker usually sees both directions of a flow; when it does not, nothing
 * breaks: the engine is shared, so any worker can translate any packet.
 *
 * The lock is taken once per burst, not per packet. What runs outside it,
 * the read() and write() of every packet with the copies and the kernel's
 * forwarding inside them, is ~97% of a worker's time; that is what the
 * second core gets.
 */
#include "worker.h"

#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

/* A packet slot: the backend's headroom (a virtio header), then the largest packet. */
#define PKT_SLOT_SIZE (CFRD_PKT_HEADROOM + CFRD_PKT_BUF_SIZE)
/* Bursts handled before polling again, so a busy queue cannot starve the worker's others. */
#define MAX_BURSTS_PER_WAKEUP 16

/*
 * A TUN packet goes back out of the device it came in on: the kernel routes
 * it from there, and a line device only ever sees its own line's traffic.
 * An AF_XDP frame leaves by the port its backend routes it to.
 */
static unsigned forward_bursts(struct cfrd_worker *w, struct cfr_io *io)
{
	const struct cfr_io_backend *be = io->backend;
	struct cfr_pkt *pkts = be->own_buffers ? w->frames : w->pkts;
	unsigned total = 0;

	for (int b = 0; b < MAX_BURSTS_PER_WAKEUP; b++) {
		unsigned n = be->rx_burst(io, pkts, CFRD_BURST);
		uint64_t now_ms;

		total += n;
		if (n == 0)
			return total;
		cfrd_engine_lock(w->d);
		now_ms = cfrd_now_ms();
		cfr_engine_process(w->d->engine, pkts, n, now_ms);
		if (w->d->fastpath)
			cfrd_fastpath_learn(w->d->fastpath, w->d->engine, pkts, n);
		if (be->route)
			be->route(io, pkts, n, now_ms);
		cfrd_engine_unlock(w->d);
		be->tx_burst(io, pkts, n);
		if (n < CFRD_BURST)
			return total;
	}
	return total;
}

/* Whether some queue's device left packets in a transmit ring (only AF_XDP's do). */
static bool flush_all(struct cfrd_worker *w)
{
	bool left = false;

	for (unsigned i = 0; i < w->n_io; i++)
		if (w->io[i].backend->flush)
			left |= w->io[i].backend->flush(&w->io[i]);
	return left;
}

static void *worker_main(void *arg)
{
	struct cfrd_worker *w = arg;
	struct cfrd *d = w->d;
	struct pollfd pfd[1 + CFRD_MAX_IO];
	uint64_t spin_until_us = 0;

	pfd[0] = (struct pollfd){.fd = d->stop_fd, .events = POLLIN};
	for (unsigned i = 0; i < w->n_io; i++)
		pfd[1 + i] = (struct pollfd){.fd = w->io[i].fd, .events = POLLIN};
	for (;;) {
		/*
		 * Busy-poll for a moment after traffic: waking from a sleeping
		 * poll() costs tens of microseconds on each packet of a
		 * request/response exchange, more than the whole translation.
		 */
		int timeout = spin_until_us && cfrd_now_us() < spin_until_us ? 0 : -1;

		/* Frames a busy device left in a transmit ring: try again in a millisecond. */
		if (timeout < 0 && flush_all(w))
			timeout = 1;

		if (poll(pfd, 1 + w->n_io, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_error("worker %u: poll: %s", w->index, strerror(errno));
			break;
		}
		if (pfd[0].revents & POLLIN)
			return NULL;
		for (unsigned i = 0; i < w->n_io; i++) {
			if (pfd[1 + i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
				log_error("%s device %s failed (deleted?), stopping",
				          w->io[i].backend->name, w->io[i].name);
				goto failed;
			}
			if ((pfd[1 + i].revents & POLLIN) && forward_bursts(w, &w->io[i]) &&
			    d->busy_poll_us)
				spin_until_us = cfrd_now_us() + d->busy_poll_us;
		}
	}
failed:
	atomic_store(&d->failed, true);
	cfrd_workers_signal_stop(d);
	return NULL;
}

static unsigned workers_wanted(const struct cfrd_config *cfg)
{
	long cpus;

	if (cfg->workers)
		return cfg->workers;
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus < 1)
		return 1;
	return cpus > CFRD_MAX_WORKERS ? CFRD_MAX_WORKERS : (unsigned)cpus;
}

static int worker_alloc(struct cfrd *d, struct cfrd_worker *w, unsigned index)
{
	*w = (struct cfrd_worker){.d = d, .index = index};
	for (unsigned i = 0; i < CFRD_MAX_IO; i++)
		w->io[i].fd = -1;
	w->bufs = aligned_alloc(64, (size_t)CFRD_BURST * PKT_SLOT_SIZE);
	if (w->bufs == NULL) {
		log_error("cannot allocate packet buffers: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for (unsigned i = 0; i < CFRD_BURST; i++)
		w->pkts[i] = (struct cfr_pkt){.data = w->bufs + (size_t)i * PKT_SLOT_SIZE +
		                                      CFRD_PKT_HEADROOM};
	return 0;
}

/* Queue <w->index> of the main tun as ingress 0 and of each [line]'s device as i + 1. */
static int worker_attach(struct cfrd_worker *w, const struct cfrd_config *cfg, bool multi_queue)
{
	for (unsigned i = 0; i <= cfg->n_lines; i++) {
		struct cfr_io *io = &w->io[i];
		const char *name = i == 0 ? cfg->tun : cfg->lines[i - 1].tun;
		int ret;

		*io = (struct cfr_io){.backend = cfg->offload ? &cfrd_io_tun_offload : &cfrd_io_tun,
		                      .fd = -1,
		                      .ingress = (uint16_t)i,
		                      .multi_queue = multi_queue,
		                      .queue = w->index};
		snprintf(io->name, sizeof(io->name), "%s", name);
		ret = io->backend->open(io, name, cfg->mtu);
		if (ret < 0)
			return ret;
		w->n_io = i + 1;
	}
	return 0;
}

static void workers_release(struct cfrd *d)
{
	for (unsigned k = 0; k < d->n_workers; k++) {
		struct cfrd_worker *w = &d->workers[k];

		for (unsigned i = 0; i < CFRD_MAX_IO; i++)
			if (w->io[i].fd >= 0)
				w->io[i].backend->close(&w->io[i]);
		cfrd_xdp_worker_close(w->xdp);
		free(w->bufs);
	}
	cfrd_xdp_close(d->xdp);
	d->xdp = NULL;
	if (d->fastpath) {
		cfr_engine_set_offload(d->engine, NULL);
		cfrd_fastpath_close(d->fastpath);
		d->fastpath = NULL;
	}
	free(d->workers);
	d->workers = NULL;
	d->n_workers = 0;
}

static int workers_try(struct cfrd *d, const struct cfrd_config *cfg, unsigned n)
{
	d->workers = calloc(n, sizeof(*d->workers));
	if (d->workers == NULL) {
		log_error("cannot allocate %u workers: %s", n, strerror(ENOMEM));
		return -ENOMEM;
	}
	d->n_io = cfg->n_lines + 1;
	for (unsigned k = 0; k < n; k++) {
		int ret = worker_alloc(d, &d->workers[k], k);

		d->n_workers = k + 1;
		if (ret == 0)
			ret = worker_attach(&d->workers[k], cfg, n > 1);
		if (ret < 0) {
			workers_release(d);
			return ret;
		}
	}
	return 0;
}

/*
 * The AF_XDP fast path, once the worker count is settled: a socket per
 * worker on each port, polled after the worker's TUN queues. What no port
 * of the worker's can send goes through its queue of the main tun (io[0]).
 */
static int xdp_attach(struct cfrd *d, const struct cfrd_config *cfg)
{
	int ret = cfrd_xdp_open(&d->xdp, cfg);

	for (unsigned k = 0; ret == 0 && k < d->n_workers; k++) {
		struct cfrd_worker *w = &d->workers[k];
		unsigned n;

		ret = cfrd_xdp_worker_open(d->xdp, k, &w->io[0], &w->io[w->n_io], &n, &w->xdp);
		w->n_io += n;
	}
	if (ret < 0)
		workers_release(d);
	return ret;
}

/* The TC fast path, routing each flow as the kernel routes what cfrd writes to its device. */
static int fastpath_attach(struct cfrd *d, const struct cfrd_config *cfg)
{
	unsigned via[CFRD_MAX_IO];
	struct cfr_offload o;
	int ret;

	for (unsigned i = 0; i < d->n_io; i++)
		via[i] = if_nametoindex(i == 0 ? cfg->tun : cfg->lines[i - 1].tun);
	ret = cfrd_fastpath_open(&d->fastpath, cfg, via, d->n_io, &d->fastpath_inherit, d->engine);
	if (ret < 0) {
		workers_release(d);
		return ret;
	}
	if (d->fastpath) {
		o = cfrd_fastpath_offload(d->fastpath);
		cfr_engine_set_offload(d->engine, &o);
	}
	return 0;
}

int cfrd_workers_open(struct cfrd *d, const struct cfrd_config *cfg)
{
	unsigned n = workers_wanted(cfg);
	int ret;

	d->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->stop_fd < 0) {
		ret = -errno;
		log_error("cannot create an eventfd: %s", strerror(-ret));
		return ret;
	}
	ret = workers_try(d, cfg, n);
	/*
	 * A persistent device made without multi_queue takes one queue only.
	 * With workers = auto that is the operator's layout, not a mistake.
	 */
	if (ret == -EINVAL && n > 1 && cfg->workers == 0) {
		log_warn("running 1 worker instead of %u: recreate the devices with "
		         "`ip tuntap add mode tun multi_queue` for one per CPU",
		         n);
		ret = workers_try(d, cfg, 1);
	}
	if (ret == 0 && cfg->n_xdp_ports > 0)
		ret = xdp_attach(d, cfg);
	if (ret == 0)
		ret = fastpath_attach(d, cfg);
	if (ret < 0) {
		close(d->stop_fd);
		d->stop_fd = -1;
	}
	return ret;
}

int cfrd_workers_start(struct cfrd *d)
{
	for (unsigned k = 0; k < d->n_workers; k++) {
		struct cfrd_worker *w = &d->workers[k];
		int ret = pthread_create(&w->thread, NULL, worker_main, w);

		if (ret != 0) {
			log_error("cannot start worker %u: %s", k, strerror(ret));
			cfrd_workers_signal_stop(d);
			for (unsigned j = 0; j < k; j++) {
				pthread_join(d->workers[j].thread, NULL);
				d->workers[j].running = false;
			}
			return -ret;
		}
		w->running = true;
	}
	return 0;
}

void cfrd_workers_signal_stop(struct cfrd *d)
{
	uint64_t one = 1;

	/* The counter only grows, so the fd stays readable for every worker. */
	if (write(d->stop_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("cannot stop the workers: %s", strerror(errno));
}

void cfrd_workers_close(struct cfrd *d)
{
	if (d->workers == NULL)
		return;
	cfrd_workers_signal_stop(d);
	for (unsigned k = 0; k < d->n_workers; k++)
		if (d->workers[k].running)
			pthread_join(d->workers[k].thread, NULL);
	workers_release(d);
	close(d->stop_fd);
	d->stop_fd = -1;
}
