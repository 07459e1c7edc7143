/*
 * The exporter's side of cfrd's control socket: one `stats` line, one JSON
 * object back, the same request `cfrctl stats` makes. Bounded in time and
 * size, so a wedged cfrd costs a scrape at most <timeout_ms>.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "exporter.h"

/* The reply is a few kilobytes; anything past this is not cfrd talking. */
#define MAX_REPLY (256u * 1024)

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until <fd> is ready for <events> or <deadline> passed: 0, or -ETIMEDOUT / -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = events};
		int64_t left = deadline - now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (int)left);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

struct json_object *cfrx_control_stats(const char *path, unsigned timeout_ms)
{
	static const char cmd[] = "stats\n";
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int64_t deadline = now_ms() + timeout_ms;
	struct json_object *obj = NULL;
	char *buf = NULL;
	size_t len = 0;
	int fd, ret = 0;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	/* A UNIX stream connect completes at once or fails (EAGAIN: backlog full). */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		ret = -errno;
		goto out;
	}
	if (send(fd, cmd, sizeof(cmd) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(cmd) - 1)) {
		ret = -EIO;
		goto out;
	}
	buf = malloc(MAX_REPLY + 1);
	if (buf == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t got = recv(fd, buf + len, MAX_REPLY - len, 0);

		if (got == 0)
			break;
		if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
			ret = wait_fd(fd, POLLIN, deadline);
			if (ret < 0)
				goto out;
			continue;
		}
		if (got < 0) {
			ret = -errno;
			goto out;
		}
		len += (size_t)got;
		if (len == MAX_REPLY) {
			ret = -EMSGSIZE;
			goto out;
		}
	}
	buf[len] = '\0';
	obj = json_tokener_parse(buf);
	if (obj == NULL || !json_object_is_type(obj, json_type_object) ||
	    json_object_object_get_ex(obj, "error", NULL)) {
		json_object_put(obj);
		obj = NULL;
		ret = -EBADMSG;
	}
out:
	free(buf);
	close(fd);
	if (ret < 0)
		errno = -ret;
	return obj;
}
