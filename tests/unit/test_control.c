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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../src/cfrd/control.c"
#include "../../src/cfrd/log.c"

/* control.c's commands call these; no test here runs one. */
struct json_object *cfrd_stats_json(const struct cfrd *d, uint64_t now_ms)
{
	(void)d;
	(void)now_ms;
	return NULL;
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(regular_file_is_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(link_is_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(stale_socket_is_replaced, setup, teardown),
	    cmocka_unit_test_setup_teardown(live_socket_is_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(nothing_there, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
