/*
 * cfrd control socket. Everything here is non-blocking and bounded: a
 * client that connects and says nothing holds one of a few slots for at most
 * CLIENT_TIMEOUT_MS, or until a newer client needs the slot, and never
 * delays a packet. Commands come from one table,
 * so adding one (`epoch rotate`, ...) is one line plus its function.
 */
#include "control.h"

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acct.h"
#include "log.h"
#include "reload.h"
#include "stats.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Long enough for a human with socat, short enough that idle clients cannot pile up. */
#define CLIENT_TIMEOUT_MS 2000

/*
 * A command runs under the engine lock, between two bursts, so that its
 * reply is one consistent snapshot; one that reads files or does anything
 * slow (reload) takes the lock itself, for as short as it can. <arg> is
 * what follows the name and a space, for commands that take one.
 */
struct command {
	const char *name;
	struct json_object *(*run)(struct cfrd *d, const char *arg, uint64_t now_ms);
	bool takes_arg, locks_itself;
};

static struct json_object *error_reply(const char *msg)
{
	struct json_object *obj = json_object_new_object();

	if (obj == NULL)
		return NULL;
	json_object_object_add(obj, "error", json_object_new_string(msg));
	return obj;
}

static struct json_object *cmd_stats(struct cfrd *d, const char *arg, uint64_t now_ms)
{
	(void)arg;
	return cfrd_stats_json(d, now_ms);
}

/* For an operator who fears an epoch key leaked, or a test that needs a boundary now. */
static struct json_object *cmd_epoch_rotate(struct cfrd *d, const char *arg, uint64_t now_ms)
{
	struct json_object *obj = json_object_new_object();

	(void)arg;
	if (obj == NULL)
		return NULL;
	/* Two endings within a writer tick would lose the first one's records. */
	if (!cfrd_acct_lock_settled(d)) {
		json_object_put(obj);
		return error_reply(
		    "the last epoch's records still wait to be sealed (is accounting "
		    "degraded? see cfrctl stats); try again");
	}
	cfr_engine_epoch_rotate(d->engine, now_ms);
	json_object_object_add(obj, "epoch",
	                       json_object_new_uint64(cfr_engine_stats(d->engine)->epoch));
	cfrd_engine_unlock(d);
	log_info("privacy epoch rotated on request");
	return obj;
}

/* Read the configuration file again (cfrd(8), RELOADING). */
static struct json_object *cmd_reload(struct cfrd *d, const char *arg, uint64_t now_ms)
{
	(void)arg;
	return cfrd_reload_run(d, now_ms);
}

/* `cfrd --install-guard` installed a guard table: its digest. */
static struct json_object *cmd_guard(struct cfrd *d, const char *arg, uint64_t now_ms)
{
	(void)now_ms;
	return cfrd_reload_guard(d, arg);
}

/*
 * The pool prefixes in use: configured, or removed by a reload and
 * draining until their last flow ends. Pools are the operator's public
 * addresses: nothing here names a subscriber.
 */
static struct json_object *cmd_pools(struct cfrd *d, const char *arg, uint64_t now_ms)
{
	struct cfr_pool_info info[4 * CFR_MAX_POOL_PREFIXES];
	struct json_object *obj = json_object_new_object(), *list[CFR_FAMILY__COUNT];
	unsigned n = cfr_engine_pools(d->engine, info, ARRAY_SIZE(info));

	(void)arg;
	(void)now_ms;
	if (obj == NULL)
		return NULL;
	for (unsigned f = 0; f < CFR_FAMILY__COUNT; f++) {
		list[f] = json_object_new_array();
		json_object_object_add(obj, f == CFR_FAMILY_V4 ? "ipv4" : "ipv6", list[f]);
	}
	for (unsigned i = 0; i < n && i < ARRAY_SIZE(info); i++) {
		struct json_object *item = json_object_new_object();
		char addr[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN + 4];

		if (item == NULL || list[info[i].prefix.family] == NULL) {
			json_object_put(item);
			continue;
		}
		inet_ntop(info[i].prefix.family == CFR_FAMILY_V4 ? AF_INET : AF_INET6,
		          info[i].prefix.addr, addr, sizeof(addr));
		snprintf(text, sizeof(text), "%s/%u", addr, info[i].prefix.len);
		json_object_object_add(item, "prefix", json_object_new_string(text));
		json_object_object_add(
		    item, "state",
		    json_object_new_string(info[i].draining ? "draining" : "active"));
		json_object_object_add(item, "flows", json_object_new_uint64(info[i].flows));
		json_object_array_add(list[info[i].prefix.family], item);
	}
	return obj;
}

/* One command a line. */
// clang-format off
static const struct command commands[] = {
    /* Copies under the lock and builds its reply after (stats.c). */
    {"stats", cmd_stats, false, true},
    {"epoch rotate", cmd_epoch_rotate, false, true},
    {"pools", cmd_pools, false, false},
    {"reload", cmd_reload, false, true},
    {"guard", cmd_guard, true, false},
};
// clang-format on

static void sockaddr_for(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", path);
}

/*
 * A socket file left by a cfrd that crashed refuses connections and can be
 * removed; one that accepts them belongs to a live cfrd we must not steal
 * from. Nothing but a socket is ever removed: a control path that names a
 * regular file (a typo, or a link planted where the socket goes) must not
 * cost root that file. lstat() does not follow a link, so a link is not a
 * socket either.
 */
static int remove_stale_socket(const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	sockaddr_for(&sun, path);
	ret = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 ? -EADDRINUSE : -errno;
	close(fd);
	if (ret == -ECONNREFUSED)
		return unlink(path) < 0 ? -errno : 0;
	if (ret == -EADDRINUSE)
		return ret;
	return 0; /* gone meanwhile, or not ours to judge: bind() will say */
}

int cfrd_control_open(struct cfrd_control *ctl, const char *path)
{
	struct sockaddr_un sun;
	mode_t old_umask;
	int fd, ret;

	ctl->listen_fd = -1;
	for (unsigned i = 0; i < ARRAY_SIZE(ctl->clients); i++)
		ctl->clients[i].fd = -1;
	snprintf(ctl->path, sizeof(ctl->path), "%s", path);

	ret = remove_stale_socket(path);
	if (ret < 0) {
		log_error("cannot bind control socket %s: %s%s", path, strerror(-ret),
		          ret == -EADDRINUSE ? " (another cfrd is listening there)"
		          : ret == -EEXIST   ? " (not a socket: cfrd removes only a stale socket)"
		                             : "");
		return ret;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		log_error("cannot create control socket: %s", strerror(-ret));
		return ret;
	}
	sockaddr_for(&sun, path);
	/* The socket file is born 0600: stats are for the operator, not for every local user. */
	old_umask = umask(0177);
	ret = bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ? -errno : 0;
	umask(old_umask);
	if (ret < 0) {
		log_error("cannot bind control socket %s: %s", path, strerror(-ret));
		goto fail;
	}
	if (listen(fd, CFRD_CONTROL_MAX_CLIENTS) < 0) {
		ret = -errno;
		log_error("cannot listen on control socket %s: %s", path, strerror(-ret));
		unlink(path);
		goto fail;
	}
	ctl->listen_fd = fd;
	log_info("control socket %s", path);
	return 0;
fail:
	close(fd);
	return ret;
}

static void client_close(struct cfrd_control_client *c)
{
	close(c->fd);
	c->fd = -1;
	c->len = 0;
}

void cfrd_control_close(struct cfrd_control *ctl)
{
	for (unsigned i = 0; i < ARRAY_SIZE(ctl->clients); i++) {
		if (ctl->clients[i].fd >= 0)
			client_close(&ctl->clients[i]);
	}
	if (ctl->listen_fd < 0)
		return;
	close(ctl->listen_fd);
	ctl->listen_fd = -1;
	/*
	 * Under the sandbox this works only in a directory cfrd's user owns
	 * (sandbox.c); elsewhere the socket stays, refusing connections, until
	 * the next start removes it.
	 */
	unlink(ctl->path);
}

unsigned cfrd_control_poll_fill(const struct cfrd_control *ctl, struct pollfd *pfd)
{
	unsigned n = 0;

	pfd[n++] = (struct pollfd){.fd = ctl->listen_fd, .events = POLLIN};
	for (unsigned i = 0; i < ARRAY_SIZE(ctl->clients); i++) {
		if (ctl->clients[i].fd >= 0)
			pfd[n++] = (struct pollfd){.fd = ctl->clients[i].fd, .events = POLLIN};
	}
	return n;
}

static struct json_object *dispatch(const char *line, struct cfrd *d, uint64_t now_ms)
{
	char msg[32 + sizeof(((struct cfrd_control_client *)0)->buf)];

	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		const struct command *c = &commands[i];
		size_t len = strlen(c->name);
		const char *arg = line + len;
		struct json_object *reply;

		if (strncmp(c->name, line, len) != 0 ||
		    (c->takes_arg ? *arg != ' ' || arg[1] == '\0' : *arg != '\0'))
			continue;
		if (c->takes_arg)
			arg++;
		if (c->locks_itself)
			return c->run(d, arg, now_ms);
		cfrd_engine_lock(d);
		reply = c->run(d, arg, now_ms);
		cfrd_engine_unlock(d);
		return reply;
	}
	snprintf(msg, sizeof(msg), "unknown command: %s", line);
	return error_reply(msg);
}

/*
 * Reply and hang up. The reply is a few kilobytes and the socket buffer is
 * empty, so one non-blocking send normally takes all of it; a client that
 * made it fail gets a truncated reply rather than a stalled daemon.
 */
static void client_reply(struct cfrd_control_client *c, struct json_object *reply)
{
	const char *text;
	size_t len;
	ssize_t sent;

	if (reply == NULL) {
		log_warn("control: out of memory building a reply");
		goto out;
	}
	text = json_object_to_json_string_length(reply, JSON_C_TO_STRING_PLAIN, &len);
	sent = send(c->fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (sent == (ssize_t)len)
		sent = send(c->fd, "\n", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (sent < 0)
		log_debug("control: reply not sent: %s", strerror(errno));
	json_object_put(reply);
out:
	client_close(c);
}

enum cfrd_control_step cfrd_control_request(char *buf, size_t len, bool more, struct cfrd *d,
                                            uint64_t now_ms, struct json_object **reply)
{
	char *nl = memchr(buf, '\n', len);
	size_t line_len = nl != NULL ? (size_t)(nl - buf) : len;

	*reply = NULL;
	if (nl == NULL && more && len < CFRD_CONTROL_LINE_MAX)
		return CFRD_CONTROL_NEED_MORE;
	if (nl == NULL && more) {
		*reply = error_reply("command too long");
		return CFRD_CONTROL_REPLY;
	}
	if (len == 0)
		return CFRD_CONTROL_HANG_UP; /* hung up without a word */
	/* A NUL would hide the rest of the line from the command table. */
	if (memchr(buf, '\0', line_len) != NULL) {
		*reply = error_reply("NUL byte in command");
		return CFRD_CONTROL_REPLY;
	}
	buf[line_len] = '\0';
	if (line_len > 0 && buf[line_len - 1] == '\r')
		buf[line_len - 1] = '\0';
	*reply = dispatch(buf, d, now_ms);
	return CFRD_CONTROL_REPLY;
}

static void client_read(struct cfrd_control_client *c, struct cfrd *d, uint64_t now_ms)
{
	ssize_t got = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, MSG_DONTWAIT);
	struct json_object *reply;

	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (got < 0) {
		client_close(c);
		return;
	}
	c->len += (size_t)got;
	if (c->len == sizeof(CFRD_HANDOVER_REQUEST) &&
	    memcmp(c->buf, CFRD_HANDOVER_REQUEST "\n", c->len) == 0) {
		/* Not a reply: the engine itself goes (handover.c); the connection closes last. */
		d->handover = cfrd_handover_give(d, c->fd);
		if (d->handover == CFRD_HANDOVER_NONE) {
			client_close(c);
			return;
		}
		d->handover_fd = c->fd;
		c->fd = -1;
		c->len = 0;
		return;
	}
	switch (cfrd_control_request(c->buf, c->len, got > 0, d, now_ms, &reply)) {
	case CFRD_CONTROL_NEED_MORE:
		return;
	case CFRD_CONTROL_HANG_UP:
		client_close(c);
		return;
	case CFRD_CONTROL_REPLY:
		client_reply(c, reply);
		return;
	}
}

/*
 * With every slot taken, the client closest to its deadline makes room:
 * only the operator can connect (mode 0600), and a cfrctl run must always
 * get through even if forgotten connections hold the slots.
 */
static struct cfrd_control_client *free_slot(struct cfrd_control *ctl)
{
	struct cfrd_control_client *oldest = &ctl->clients[0];

	for (unsigned i = 0; i < ARRAY_SIZE(ctl->clients); i++) {
		if (ctl->clients[i].fd < 0)
			return &ctl->clients[i];
		if (ctl->clients[i].deadline_ms < oldest->deadline_ms)
			oldest = &ctl->clients[i];
	}
	log_debug("control: all %d client slots busy, hanging up on the oldest",
	          CFRD_CONTROL_MAX_CLIENTS);
	client_close(oldest);
	return oldest;
}

static void accept_clients(struct cfrd_control *ctl, uint64_t now_ms)
{
	for (;;) {
		struct cfrd_control_client *slot;
		int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		slot = free_slot(ctl);
		slot->fd = fd;
		slot->len = 0;
		slot->deadline_ms = now_ms + CLIENT_TIMEOUT_MS;
	}
}

void cfrd_control_poll_handle(struct cfrd_control *ctl, const struct pollfd *pfd, unsigned n,
                              struct cfrd *d, uint64_t now_ms)
{
	/* Clients first: accepting could reuse a slot whose pollfd is still in <pfd>. */
	for (unsigned i = 1; i < n; i++) {
		if (pfd[i].revents == 0)
			continue;
		for (unsigned k = 0; k < ARRAY_SIZE(ctl->clients); k++) {
			if (ctl->clients[k].fd == pfd[i].fd) {
				client_read(&ctl->clients[k], d, now_ms);
				break;
			}
		}
	}
	for (unsigned k = 0; k < ARRAY_SIZE(ctl->clients); k++) {
		struct cfrd_control_client *c = &ctl->clients[k];

		if (c->fd >= 0 && now_ms >= c->deadline_ms) {
			log_debug("control: client said nothing for %d ms, hanging up",
			          CLIENT_TIMEOUT_MS);
			client_close(c);
		}
	}
	if (n > 0 && (pfd[0].revents & POLLIN))
		accept_clients(ctl, now_ms);
}
