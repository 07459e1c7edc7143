/*
 * Restart without dropping a flow: the engine goes from the running cfrd to
 * a new one started with --takeover.
 *
 * The new cfrd connects to the control socket and asks; the running one
 * stops its workers (so that no packet changes the engine after the copy,
 * and the devices are free for the new one), writes the journal up to this
 * moment, copies the engine into a memfd and passes the descriptor with
 * SCM_RIGHTS (state_file.c). The state holds the epoch's secrets, so it
 * lives in memory only: a memfd, sealed against writes, gone when both
 * sides close it.
 *
 * The new cfrd answers 'A' (adopted) or 'R' (refused: another layout, a
 * damaged state), then waits until the old one has exited: it closed its
 * records segment, and only then may the new one open the devices and the
 * control socket. Refused, the old one seals the epoch's records as on any
 * stop and the new one starts clean.
 */
#include "handover.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "acct.h"
#include "clock.h"
#include "daemon.h"
#include "log.h"
#include "state_file.h"
#include "worker.h"

#define HANDOVER_MAGIC "cfrhand1"
/* How long either side waits for the other: a large engine takes seconds to copy. */
#define WAIT_MS 30000

enum { VERDICT_ADOPTED = 'A', VERDICT_REFUSED = 'R' };

/* What goes with the memfd; size 0 and no descriptor: the old cfrd could not make one. */
struct handover_msg {
	char magic[8];
	uint64_t size;
};

static int wait_for(int fd, short events)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int ret = poll(&pfd, 1, WAIT_MS);

	if (ret < 0)
		return -errno;
	return ret == 0 ? -ETIMEDOUT : 0;
}

/* Descriptors in one message: the memfd, then the fast path's (fastpath.h). */
#define HANDOVER_FDS (1 + CFRD_FASTPATH_HANDOVER_FDS)

static int send_state(int conn, const int *fds, unsigned n_fds, uint64_t size)
{
	struct handover_msg msg = {.size = size};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * HANDOVER_FDS)];
	} control;
	struct iovec iov = {.iov_base = &msg, .iov_len = sizeof(msg)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	memcpy(msg.magic, HANDOVER_MAGIC, sizeof(msg.magic));
	if (n_fds > 0) {
		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
	}
	if (wait_for(conn, POLLOUT) < 0 || sendmsg(conn, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(msg))
		return -EIO;
	return 0;
}

/* Only root (a new cfrd before it drops privileges) or cfrd's own user may take the engine. */
static bool peer_may_take(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

enum cfrd_handover cfrd_handover_give(struct cfrd *d, int fd)
{
	struct cfrd_state_size size = {0};
	struct cfrd_fastpath_handover fph = {.n = 0};
	struct cfrd_fastpath *fp;
	int fds[HANDOVER_FDS];
	uint64_t start = cfrd_now_ms();
	char verdict = 0;
	int memfd, ret;

	if (!peer_may_take(fd)) {
		log_warn("handover: refused to a client that is neither root nor cfrd's user");
		return CFRD_HANDOVER_NONE;
	}
	log_info("handover: a new cfrd asks for the engine; stopping the workers");
	/*
	 * The fast path stays: its program goes on carrying established flows
	 * while neither cfrd reads a device, and its maps and links go to the
	 * new cfrd with the engine.
	 */
	cfrd_engine_lock(d); /* the workers still run: they read d->fastpath under the lock */
	fp = d->fastpath;
	d->fastpath = NULL;
	cfr_engine_set_offload(d->engine, NULL);
	cfrd_engine_unlock(d);
	/* The control thread is alone with the engine from here: no lock needed. */
	cfrd_workers_close(d);
	cfrd_acct_pause(d->acct, d);
	memfd = memfd_create("cfr-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	ret = memfd < 0 ? -errno : cfrd_state_write(d->engine, memfd, &size);
	if (ret < 0) {
		log_error("handover: cannot copy the engine: %s; the new cfrd starts clean",
		          strerror(-ret));
		if (memfd >= 0)
			close(memfd);
		memfd = -1;
		size.image = 0;
	}
	fds[0] = memfd;
	if (memfd >= 0 && fp && cfrd_fastpath_export(fp, &fph) > 0)
		memcpy(fds + 1, fph.fds, sizeof(int) * fph.n);
	ret = send_state(fd, fds, memfd >= 0 ? 1 + fph.n : 0, size.image);
	if (memfd >= 0)
		close(memfd);
	/* Our copies: with the new cfrd's, the program and its table live on. */
	cfrd_fastpath_close(fp);
	if (ret == 0 && size.image > 0 && wait_for(fd, POLLIN) == 0 &&
	    recv(fd, &verdict, 1, 0) != 1)
		verdict = 0;
	if (verdict != VERDICT_ADOPTED) {
		log_warn("handover: the new cfrd did not take the engine; stopping as usual");
		return CFRD_HANDOVER_FAILED;
	}
	log_info("handover: the new cfrd has the engine (%llu bytes of state, %llu ms of "
	         "forwarding stopped so far); this cfrd stops",
	         (unsigned long long)size.data, (unsigned long long)(cfrd_now_ms() - start));
	return CFRD_HANDOVER_GIVEN;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/*
 * The message and the memfd; the fast path's descriptors, if any, into
 * <fastpath>. -errno, or -ENODATA when the old cfrd had no engine to give.
 */
static int recv_state(int conn, uint64_t *size, struct cfrd_fastpath_handover *fastpath)
{
	struct handover_msg msg;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * HANDOVER_FDS)];
	} control;
	struct iovec iov = {.iov_base = &msg, .iov_len = sizeof(msg)};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = control.buf,
	                    .msg_controllen = sizeof(control.buf)};
	struct cmsghdr *c;
	int fds[HANDOVER_FDS], ret = wait_for(conn, POLLIN);
	unsigned n_fds = 0;
	ssize_t n;

	fastpath->n = 0;
	if (ret < 0)
		return ret;
	n = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && n_fds == 0) {
			n_fds = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(fds, CMSG_DATA(c), sizeof(int) * n_fds);
		}
	if (n_fds > 1) {
		fastpath->n = n_fds - 1;
		memcpy(fastpath->fds, fds + 1, sizeof(int) * fastpath->n);
	}
	if (n != (ssize_t)sizeof(msg) ||
	    memcmp(msg.magic, HANDOVER_MAGIC, sizeof(msg.magic)) != 0 ||
	    (mh.msg_flags & MSG_CTRUNC)) {
		if (n_fds > 0)
			close(fds[0]);
		cfrd_fastpath_handover_close(fastpath);
		return n == 0 ? -ECONNRESET : -EPROTO;
	}
	if (n_fds == 0)
		return -ENODATA;
	*size = msg.size;
	return fds[0];
}

/*
 * The configuration file may have changed since the running cfrd read it:
 * the engine takes the new one as a reload would, with a reload's limits.
 */
static int adopt_config(struct cfr_engine *eng, const struct cfrd_config *cfg, const char **why)
{
	static char refusal[200];
	struct cfr_reconfig *rc = cfr_reconfig_new(eng, &cfg->engine, refusal, sizeof(refusal));
	unsigned changes;

	if (!rc) {
		*why = refusal;
		return -EINVAL;
	}
	changes = cfr_reconfig_changes(rc);
	/* As for a reload (reload.c): the epoch's records must derive from one configuration. */
	if ((changes & CFR_CHANGES_ROTATE) && cfg->acct.records[0]) {
		cfr_reconfig_free(rc);
		*why = "the configuration changes pools, ports, policies or the epoch length, "
		       "which with [accounting] records kept needs a clean start";
		return -EINVAL;
	}
	if (changes) {
		cfr_engine_reconfigure(eng, rc, cfrd_now_ms());
		log_info("takeover: the configuration changed since the running cfrd read it; "
		         "applied as a reload would");
	}
	cfr_reconfig_free(rc);
	return 0;
}

/* Until the old cfrd has exited: its end of the connection closes last. */
static void wait_gone(int conn)
{
	char c;

	while (wait_for(conn, POLLIN) == 0 && recv(conn, &c, 1, 0) > 0)
		;
}

/*
 * Ask the running cfrd to read its configuration file again first: a
 * change of pools, ports, policies or epoch length then goes through its
 * reload, which seals the ended epoch's records under the configuration
 * they were drawn with. What its reload refuses (keys that take a restart,
 * such as devices or workers) this cfrd applies by starting with them.
 */
static void ask_reload(const char *control)
{
	static const char request[] = "reload\n";
	char reply[1024];
	size_t len = 0;
	ssize_t n = 0;
	int conn = connect_to(control);

	if (conn < 0)
		return;
	if (send(conn, request, sizeof(request) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(request) - 1)
		while (len < sizeof(reply) - 1 && wait_for(conn, POLLIN) == 0 &&
		       (n = recv(conn, reply + len, sizeof(reply) - 1 - len, 0)) > 0)
			len += (size_t)n;
	close(conn);
	reply[len] = '\0';
	reply[strcspn(reply, "\n")] = '\0';
	log_info("takeover: the running cfrd reread its configuration first: %s",
	         len ? reply : "no answer");
}

struct cfr_engine *cfrd_handover_take(const struct cfrd_config *cfg,
                                      struct cfrd_fastpath_handover *fastpath)
{
	static const char request[] = CFRD_HANDOVER_REQUEST "\n";
	uint64_t start = cfrd_now_ms(), size = 0;
	struct cfr_engine *eng = NULL;
	const char *why = NULL;
	char verdict;
	int conn, memfd;

	ask_reload(cfg->control);
	conn = connect_to(cfg->control);
	if (conn < 0) {
		log_info("takeover: no running cfrd at %s (%s); starting clean", cfg->control,
		         strerror(-conn));
		return NULL;
	}
	if (send(conn, request, sizeof(request) - 1, MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(request) - 1) {
		log_warn("takeover: cannot ask the running cfrd: %s; starting clean",
		         strerror(errno));
		close(conn);
		return NULL;
	}
	memfd = recv_state(conn, &size, fastpath);
	if (memfd >= 0) {
		eng = cfrd_state_read(memfd, size, &why);
		close(memfd);
		if (eng && adopt_config(eng, cfg, &why) < 0) {
			cfr_engine_free(eng);
			eng = NULL;
		}
	} else {
		why = memfd == -ENODATA ? "the running cfrd could not copy its engine"
		                        : strerror(-memfd);
	}
	verdict = eng ? VERDICT_ADOPTED : VERDICT_REFUSED;
	if (memfd != -ENODATA && send(conn, &verdict, 1, MSG_NOSIGNAL) != 1 && eng) {
		/* The old cfrd may not know we have it: it seals the epoch, and so do we, later. */
		log_warn("takeover: cannot confirm to the running cfrd: %s", strerror(errno));
	}
	wait_gone(conn);
	close(conn);
	if (!eng) {
		cfrd_fastpath_handover_close(fastpath); /* its flows are not ours: let it go */
		log_warn("takeover: %s; starting clean (every flow starts over)", why);
		return NULL;
	}
	log_info("takeover: took the engine from the running cfrd (a %llu-byte image) in %llu ms",
	         (unsigned long long)size, (unsigned long long)(cfrd_now_ms() - start));
	return eng;
}
