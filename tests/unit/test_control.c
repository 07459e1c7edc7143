/*
 * The control socket's stale-socket cleanup (src/cfrd/control.c): cfrd runs
 * as root when it binds, so whatever sits at the control path must come
 * through untouched unless it is a socket nobody listens on. Needs no
 * privilege: everything happens in a fresh directory under /tmp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../src/cfrd/control.h"
#include "../../src/cfrd/log.h"

/* control.c's commands call these; no test here runs one. */
struct json_object *cfrd_stats_json(struct cfrd *d, uint64_t now_ms)
{
	(void)d;
	(void)now_ms;
	return NULL;
}

struct json_object *cfrd_reload_run(struct cfrd *d, uint64_t now_ms)
{
	(void)d;
	(void)now_ms;
	return NULL;
}

struct json_object *cfrd_reload_guard(struct cfrd *d, const char *hex)
{
	(void)d;
	(void)hex;
	return NULL;
}

bool cfrd_acct_lock_settled(struct cfrd *d)
{
	(void)d;
	return false;
}

/* The handover module's entry (handover.c): what the control socket handed it. */
static enum cfrd_handover handover_answer;
static int handover_calls, handover_fd_seen = -1;

enum cfrd_handover cfrd_handover_give(struct cfrd *d, int fd)
{
	(void)d;
	handover_calls++;
	handover_fd_seen = fd;
	return handover_answer;
}

static char dir[64], sock_path[96];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/cfr-control.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/cfrd.sock", dir);
	cfrd_log_set_level(CFRD_LOG_ERROR);
	return 0;
}

static int teardown(void **state)
{
	char path[128];

	(void)state;
	unlink(sock_path);
	snprintf(path, sizeof(path), "%s/target", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void assert_file_holds(const char *path, const char *text)
{
	char buf[64] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), (ssize_t)strlen(text));
	close(fd);
	assert_string_equal(buf, text);
}

static void sockaddr_for(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", path);
}

/* A listening socket at <path>; returns its descriptor. */
static int listen_at(const char *path)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sockaddr_for(&sun, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 1), 0);
	return fd;
}

static void regular_file_is_kept(void **state)
{
	struct cfrd_control ctl;

	(void)state;
	write_file(sock_path, "operator's file\n");
	assert_int_equal(cfrd_control_open(&ctl, sock_path), -EEXIST);
	assert_file_holds(sock_path, "operator's file\n");
}

static void link_is_kept(void **state)
{
	struct cfrd_control ctl;
	char target[128];
	struct stat st;

	(void)state;
	snprintf(target, sizeof(target), "%s/target", dir);
	write_file(target, "root's file\n");
	assert_int_equal(symlink(target, sock_path), 0);
	assert_int_equal(cfrd_control_open(&ctl, sock_path), -EEXIST);
	assert_int_equal(lstat(sock_path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_file_holds(target, "root's file\n");
}

/* What a crashed cfrd leaves: the file of a socket nobody listens on. */
static void stale_socket_is_replaced(void **state)
{
	struct cfrd_control ctl;
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	(void)state;
	close(listen_at(sock_path));
	assert_int_equal(cfrd_control_open(&ctl, sock_path), 0);
	assert_int_equal(stat(sock_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The new socket, not the stale one: it takes a connection. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sockaddr_for(&sun, sock_path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	cfrd_control_close(&ctl);
	assert_int_equal(access(sock_path, F_OK), -1);
}

static void live_socket_is_kept(void **state)
{
	struct cfrd_control ctl;
	int live;

	(void)state;
	live = listen_at(sock_path);
	assert_int_equal(cfrd_control_open(&ctl, sock_path), -EADDRINUSE);
	assert_int_equal(access(sock_path, F_OK), 0);
	close(live);
}

static void nothing_there(void **state)
{
	struct cfrd_control ctl;

	(void)state;
	assert_int_equal(cfrd_control_open(&ctl, sock_path), 0);
	cfrd_control_close(&ctl);
}

/* A command line as a client sends it; the reply (NULL: a stub's). */
static struct json_object *request(struct cfrd *d, const char *line)
{
	char buf[CFRD_CONTROL_LINE_MAX + 1];
	struct json_object *reply;

	snprintf(buf, sizeof(buf), "%s\n", line);
	assert_int_equal(cfrd_control_request(buf, strlen(buf), true, d, 1000, &reply),
	                 CFRD_CONTROL_REPLY);
	return reply;
}

static const char *error_of(struct json_object *reply)
{
	struct json_object *e;

	return json_object_object_get_ex(reply, "error", &e) ? json_object_get_string(e) : NULL;
}

/*
 * `pools` lists the engine's pool prefixes (the operator's own addresses,
 * nothing of a subscriber); a command taking an argument needs it, and
 * one taking none takes none.
 */
static void pools_and_arguments(void **state)
{
	struct cfr_engine_config cfg;
	struct cfrd d = {0};
	struct json_object *reply, *list, *item, *v;

	(void)state;
	assert_int_equal(sodium_init() >= 0, 1);
	cfr_engine_config_defaults(&cfg);
	assert_int_equal(cfr_prefix_parse("192.0.2.0/26", &cfg.pool4[cfg.n_pool4++]), 0);
	assert_int_equal(cfr_prefix_parse("2001:db8:a1::/64", &cfg.pool6[cfg.n_pool6++]), 0);
	assert_int_equal(cfr_prefix_parse("100.64.0.0/10", &cfg.subscribers[cfg.n_subscribers++]),
	                 0);
	cfg.max_flows = 64;
	cfg.max_subscribers = 8;
	d.engine = cfr_engine_new(&cfg);
	assert_non_null(d.engine);
	pthread_mutex_init(&d.engine_lock, NULL);

	reply = request(&d, "pools");
	assert_true(json_object_object_get_ex(reply, "ipv4", &list));
	assert_int_equal(json_object_array_length(list), 1);
	item = json_object_array_get_idx(list, 0);
	assert_true(json_object_object_get_ex(item, "prefix", &v));
	assert_string_equal(json_object_get_string(v), "192.0.2.0/26");
	assert_true(json_object_object_get_ex(item, "state", &v));
	assert_string_equal(json_object_get_string(v), "active");
	assert_true(json_object_object_get_ex(reply, "ipv6", &list));
	item = json_object_array_get_idx(list, 0);
	assert_true(json_object_object_get_ex(item, "prefix", &v));
	assert_string_equal(json_object_get_string(v), "2001:db8:a1::/64");
	json_object_put(reply);

	for (const char *const *bad = (const char *const[]){"pools x", "reload now", "guard",
	                                                    "guard ", "guardx", "reloadx", NULL};
	     *bad; bad++) {
		reply = request(&d, *bad);
		assert_non_null(error_of(reply));
		assert_non_null(strstr(error_of(reply), "unknown command"));
		json_object_put(reply);
	}
	assert_null(request(&d, "reload"));   /* the stub above: reached */
	assert_null(request(&d, "guard 00")); /* likewise, with its argument */
	pthread_mutex_destroy(&d.engine_lock);
	cfr_engine_free(d.engine);
}

/*
 * "handover" is not a command with a reply: the connection goes to the
 * handover module, and stays open (it closes last, when cfrd exits) once
 * the engine went; a refused one is hung up on.
 */
static void handover_takes_the_connection(void **state)
{
	struct cfrd d = {.handover_fd = -1};
	struct cfrd_control ctl;
	struct pollfd pfd[CFRD_CONTROL_MAX_POLLFDS];
	enum cfrd_handover answers[] = {CFRD_HANDOVER_NONE, CFRD_HANDOVER_GIVEN};
	char c;

	(void)state;
	assert_int_equal(cfrd_control_open(&ctl, sock_path), 0);
	for (unsigned i = 0; i < 2; i++) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		unsigned n;

		handover_answer = answers[i];
		handover_calls = 0;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
		assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
		for (unsigned round = 0; round < 2; round++) {
			n = cfrd_control_poll_fill(&ctl, pfd);
			assert_true(poll(pfd, n, 1000) > 0);
			cfrd_control_poll_handle(&ctl, pfd, n, &d, 0);
			if (round == 0)
				assert_int_equal(send(fd, CFRD_HANDOVER_REQUEST "\n",
				                      sizeof(CFRD_HANDOVER_REQUEST), 0),
				                 (ssize_t)sizeof(CFRD_HANDOVER_REQUEST));
		}
		assert_int_equal(handover_calls, 1);
		assert_int_equal(d.handover, answers[i]);
		if (answers[i] == CFRD_HANDOVER_NONE) {
			assert_int_equal(d.handover_fd, -1);
			assert_int_equal(recv(fd, &c, 1, 0), 0); /* hung up, no reply */
		} else {
			assert_int_equal(d.handover_fd, handover_fd_seen);
			assert_int_equal(recv(fd, &c, 1, MSG_DONTWAIT), -1); /* open, silent */
			assert_int_equal(errno, EAGAIN);
			close(d.handover_fd);
		}
		close(fd);
	}
	cfrd_control_close(&ctl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(regular_file_is_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(link_is_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(stale_socket_is_replaced, setup, teardown),
	    cmocka_unit_test_setup_teardown(live_socket_is_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(nothing_there, setup, teardown),
	    cmocka_unit_test(pools_and_arguments),
	    cmocka_unit_test_setup_teardown(handover_takes_the_connection, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
