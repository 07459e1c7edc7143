/*
 * cfrd's sandbox, enforced: each case forks a child that enters the sandbox
 * exactly as cfrd does (cfrd_sandbox_init() and cfrd_sandbox_enter() with
 * a records directory, a control socket path and a user) and then makes
 * calls, or waits while the parent reads its /proc entry. What cfrd's loop
 * needs (memory, a worker thread, segments in the records directory) must
 * work; an executable mapping, a new process, a socket, or opening a file
 * for writing other than as a new segment must kill the child with SIGSYS;
 * Landlock must refuse files outside the records directory, /proc/self/mem
 * included; the child must not run as uid 0 or keep a capability.
 *
 * As root the child becomes `nobody` and the records directory starts out
 * root's, as cfrd finds it; without root it stays the user running the
 * test and the cases about uid 0 skip. Landlock and seccomp need no
 * privilege. Under valgrind and ASan (CFR_TEST_NO_SECCOMP=1), whose
 * runtimes make calls the filter refuses and read /proc, only the cases
 * that need neither run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/cfrd/log.h"
#include "../../src/cfrd/sandbox.h"

/* The child's exit status when cfrd_sandbox_enter() itself failed. */
#define ENTER_FAILED 100

static char base[40], records[64], outside[64], run[64], control[80];
static char user[CFRD_USER_MAX];

static void skip_if_instrumented(void)
{
	if (getenv("CFR_TEST_NO_SECCOMP"))
		skip();
}

static void skip_unless_root(void)
{
	if (geteuid() != 0) {
		print_message("skipped: needs root, to start as uid 0 and become nobody\n");
		skip();
	}
}

static void make_dir(const char *path, mode_t mode)
{
	assert_int_equal(mkdir(path, mode), 0);
	assert_int_equal(chmod(path, mode), 0); /* whatever the umask */
}

/*
 * base/ (0755: nobody can pass), base/records/ (0700, as the records
 * writer creates it), base/outside/ (0777: only Landlock keeps nobody from
 * writing there), and the control socket base/run/cfrd.sock in a directory
 * of the user's own, as systemd's RuntimeDirectory= makes it.
 */
static int setup(void **state)
{
	const struct passwd *pw = geteuid() == 0 ? getpwnam("nobody") : getpwuid(geteuid());

	(void)state;
	if (pw == NULL)
		return -1;
	snprintf(user, sizeof(user), "%s", pw->pw_name);
	snprintf(base, sizeof(base), "/tmp/cfr-sandbox.XXXXXX");
	if (mkdtemp(base) == NULL || chmod(base, 0755) < 0)
		return -1;
	snprintf(records, sizeof(records), "%s/records", base);
	snprintf(outside, sizeof(outside), "%s/outside", base);
	snprintf(run, sizeof(run), "%s/run", base);
	snprintf(control, sizeof(control), "%s/cfrd.sock", run);
	make_dir(records, 0700);
	make_dir(outside, 0777);
	make_dir(run, 0755);
	return chown(run, pw->pw_uid, pw->pw_gid);
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int teardown(void **state)
{
	(void)state;
	return nftw(base, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* What cfrd passes: its config, with this test's directories and user. */
static void enter(enum cfrd_seccomp mode)
{
	struct cfrd_config cfg;
	struct cfrd_sandbox sb;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.user, sizeof(cfg.user), "%s", user);
	snprintf(cfg.acct.records, sizeof(cfg.acct.records), "%s", records);
	snprintf(cfg.control, sizeof(cfg.control), "%s", control);
	cfg.seccomp = mode;
	cfrd_log_set_level(CFRD_LOG_ERROR);
	if (cfrd_sandbox_init(&sb, &cfg) < 0 || cfrd_sandbox_enter(&sb) < 0)
		_exit(ENTER_FAILED);
}

/*
 * A sandboxed child, paused after it entered the sandbox so the parent can
 * look at it; child_finish() lets it run <call> and returns its wait status.
 */
struct child {
	pid_t pid;
	int ready, go;
	bool entered; /* false: the child died entering the sandbox */
};

static void child_start(struct child *c, enum cfrd_seccomp mode, int (*call)(void))
{
	int ready[2], go[2];
	char byte = 0;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	fflush(NULL);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		close(ready[0]);
		close(go[1]);
		enter(mode);
		/* read and write: allowed by the filter, as for a TUN descriptor. */
		if (write(ready[1], "r", 1) != 1 || read(go[0], &byte, 1) < 0)
			_exit(101);
		_exit(call != NULL ? call() : 0);
	}
	close(ready[1]);
	close(go[0]);
	c->ready = ready[0];
	c->go = go[1];
	c->entered = read(c->ready, &byte, 1) == 1;
}

static int child_finish(struct child *c)
{
	int status = 0;

	/* A child that died entering reads nothing: EPIPE (SIGPIPE is ignored). */
	if (c->entered && write(c->go, "g", 1) != 1)
		fail_msg("cannot wake the child: %s", strerror(errno));
	close(c->go);
	close(c->ready);
	assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
	return status;
}

/* Run <call> in a sandboxed child; return its wait status. */
static int sandboxed(enum cfrd_seccomp mode, int (*call)(void))
{
	struct child c;

	child_start(&c, mode, call);
	return child_finish(&c);
}

static void expect_exit(enum cfrd_seccomp mode, int (*call)(void), int code)
{
	int status = sandboxed(mode, call);

	if (!WIFEXITED(status))
		fail_msg("child killed by signal %d, expected exit %d", WTERMSIG(status), code);
	assert_int_equal(WEXITSTATUS(status), code);
}

static void expect_killed(int (*call)(void))
{
	int status;

	skip_if_instrumented();
	status = sandboxed(CFRD_SECCOMP_KILL, call);
	if (WIFEXITED(status))
		fail_msg("child exited with %d, expected SIGSYS", WEXITSTATUS(status));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

/* --- what cfrd does after the filter ------------------------------------ */

static void *worker(void *arg)
{
	return arg;
}

/* Allocate, start and join a worker. */
static int allowed_calls(void)
{
	size_t len = 1 << 20;
	uint8_t *big = malloc(len);
	pthread_t t;
	void *ret = NULL;

	if (big == NULL)
		return 1;
	big[len - 1] = 1;
	if (pthread_create(&t, NULL, worker, big) != 0 || pthread_join(t, &ret) != 0)
		return 2;
	free(big);
	return ret == big ? 0 : 3;
}

/* The records writer and retention: create, write, list, read and delete a segment. */
static int segment_calls(void)
{
	char path[160];
	char byte = 0;
	int dfd, fd;
	DIR *d;

	dfd = open(records, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 1;
	fd = openat(dfd, "1.seg", O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, "s", 1) != 1 || fdatasync(fd) < 0 || fsync(dfd) < 0)
		return 2;
	close(fd);
	d = opendir(records);
	if (d == NULL || readdir(d) == NULL)
		return 3;
	closedir(d);
	snprintf(path, sizeof(path), "%s/1.seg", records);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, &byte, 1) != 1 || byte != 's')
		return 4;
	close(fd);
	return unlink(path) == 0 ? 0 : 5;
}

static void memory_and_threads_allowed(void **state)
{
	(void)state;
	skip_if_instrumented();
	expect_exit(CFRD_SECCOMP_KILL, allowed_calls, 0);
}

static void records_allowed(void **state)
{
	(void)state;
	skip_if_instrumented();
	expect_exit(CFRD_SECCOMP_KILL, segment_calls, 0);
}

/* --- what the filter kills ---------------------------------------------- */

static int exec_mapping(void)
{
	return mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) ==
	       MAP_FAILED;
}

static int exec_protect(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return 4; /* a plain mapping must work */
	return mprotect(p, 4096, PROT_READ | PROT_EXEC);
}

static int new_process(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	return pid > 0 ? 0 : 5;
}

static int open_socket(void)
{
	return socket(AF_INET, SOCK_DGRAM, 0);
}

/* An existing file opened for writing: what rewrote cfrd's code before. */
static int open_proc_mem_rw(void)
{
	return open("/proc/self/mem", O_RDWR | O_CLOEXEC) >= 0 ? 0 : 6;
}

static int open_segment_rw(void)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/2.seg", records);
	return open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) >= 0 ? 0 : 7;
}

static int open_truncating(void)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/3.seg", records);
	return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) >= 0 ? 0 : 8;
}

static int make_directory(void)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/dir", records);
	return mkdir(path, 0700);
}

static void executable_mapping_kills(void **state)
{
	(void)state;
	expect_killed(exec_mapping);
}

static void executable_protection_kills(void **state)
{
	(void)state;
	expect_killed(exec_protect);
}

static void new_process_kills(void **state)
{
	(void)state;
	expect_killed(new_process);
}

static void socket_kills(void **state)
{
	(void)state;
	expect_killed(open_socket);
}

static void open_for_writing_kills(void **state)
{
	(void)state;
	expect_killed(open_proc_mem_rw);
	expect_killed(open_segment_rw);
	expect_killed(open_truncating);
	expect_killed(make_directory);
}

/* --- what Landlock refuses ---------------------------------------------- */

/* 0 when every attempt failed with EACCES (Landlock's answer), else which one got through. */
static int outside_calls(void)
{
	char path[160];
	int fd;

	/* The way a new segment is opened, so the filter lets it through to Landlock. */
	snprintf(path, sizeof(path), "%s/planted", outside);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0 || errno != EACCES)
		return 1;
	fd = open("/proc/self/mem", O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EACCES && errno != EEXIST))
		return 2;
	/* Reading, too: nothing outside the records directory. */
	fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	if (fd >= 0 || errno != EACCES)
		return 3;
	snprintf(path, sizeof(path), "%s/kept", outside);
	if (unlink(path) == 0 || errno != EACCES)
		return 4;
	return 0;
}

/* Without the filter, Landlock (and the user) alone. */
static int unfiltered_calls(void)
{
	char path[160];

	if (open("/proc/self/mem", O_RDWR | O_CLOEXEC) >= 0 || errno != EACCES)
		return 10;
	snprintf(path, sizeof(path), "%s/dir", outside);
	if (mkdir(path, 0700) == 0 || errno != EACCES)
		return 11;
	return outside_calls();
}

static void put_file(const char *dir, const char *name)
{
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
}

static void assert_absent(const char *dir, const char *name)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (access(path, F_OK) == 0)
		fail_msg("the sandboxed child made %s", path);
}

static void nothing_written_outside(void **state)
{
	(void)state;
	skip_if_instrumented();
	put_file(outside, "kept");
	assert_int_equal(chmod(outside, 0777), 0);
	expect_exit(CFRD_SECCOMP_KILL, outside_calls, 0);
	assert_absent(outside, "planted");
	expect_exit(CFRD_SECCOMP_OFF, unfiltered_calls, 0);
	assert_absent(outside, "planted");
	assert_absent(outside, "dir");
}

/* What cfrd_control_close() does at exit. */
static int remove_control_socket(void)
{
	return unlink(control) == 0 ? 0 : 1;
}

static void control_socket_removed(void **state)
{
	(void)state;
	skip_if_instrumented();
	put_file(run, "cfrd.sock");
	expect_exit(CFRD_SECCOMP_KILL, remove_control_socket, 0);
	assert_absent(run, "cfrd.sock");
}

/* --- who the child is ----------------------------------------------------- */

/* The value of <key> (e.g. "Uid:") in /proc/<pid>/status, after the key. */
static void status_field(pid_t pid, const char *key, char *out, size_t size)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "re");
	assert_non_null(f);
	out[0] = '\0';
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, key, strlen(key)) == 0) {
			const char *v = line + strlen(key);
			size_t len;

			snprintf(out, size, "%s", v + strspn(v, "\t "));
			len = strlen(out);
			while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' '))
				out[--len] = '\0';
			break;
		}
	}
	fclose(f);
	if (out[0] == '\0' && strcmp(key, "Groups:") != 0)
		fail_msg("no %s in %s", key, path);
}

static void assert_field(pid_t pid, const char *key, const char *want)
{
	char got[128];

	status_field(pid, key, got, sizeof(got));
	if (strcmp(got, want) != 0)
		fail_msg("%s is '%s', expected '%s'", key, got, want);
}

static void inspect(pid_t pid, enum cfrd_seccomp mode)
{
	const struct passwd *pw = getpwnam(user);
	char ids[64], gid[16], path[64], filter[32] = {0};
	struct stat st;
	FILE *f;

	assert_non_null(pw);
	snprintf(ids, sizeof(ids), "%ld\t%ld\t%ld\t%ld", (long)pw->pw_uid, (long)pw->pw_uid,
	         (long)pw->pw_uid, (long)pw->pw_uid);
	assert_field(pid, "Uid:", ids);
	snprintf(ids, sizeof(ids), "%ld\t%ld\t%ld\t%ld", (long)pw->pw_gid, (long)pw->pw_gid,
	         (long)pw->pw_gid, (long)pw->pw_gid);
	assert_field(pid, "Gid:", ids);
	if (geteuid() == 0) {
		snprintf(gid, sizeof(gid), "%ld", (long)pw->pw_gid);
		assert_field(pid, "Groups:", gid);
		assert_field(pid, "CapBnd:", "0000000000000000");
	}
	assert_field(pid, "CapInh:", "0000000000000000");
	assert_field(pid, "CapPrm:", "0000000000000000");
	assert_field(pid, "CapEff:", "0000000000000000");
	assert_field(pid, "CapAmb:", "0000000000000000");
	assert_field(pid, "NoNewPrivs:", "1");
	assert_field(pid, "Seccomp:", mode == CFRD_SECCOMP_OFF ? "0" : "2");
	/* Not dumpable: the kernel gives the /proc files of the user's process to root. */
	snprintf(path, sizeof(path), "/proc/%ld/mem", (long)pid);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 0);
	/* Only the ELF headers would go into a core file. */
	snprintf(path, sizeof(path), "/proc/%ld/coredump_filter", (long)pid);
	f = fopen(path, "re");
	assert_non_null(f);
	assert_non_null(fgets(filter, sizeof(filter), f));
	fclose(f);
	assert_string_equal(filter, "00000010\n");
}

static void runs_without_uid_0(void **state)
{
	struct child c;
	int status;

	(void)state;
	skip_unless_root();
	/* The filter is optional here: the user change does not depend on it. */
	child_start(&c, getenv("CFR_TEST_NO_SECCOMP") ? CFRD_SECCOMP_OFF : CFRD_SECCOMP_KILL, NULL);
	if (!c.entered)
		fail_msg("the child could not enter the sandbox");
	inspect(c.pid, getenv("CFR_TEST_NO_SECCOMP") ? CFRD_SECCOMP_OFF : CFRD_SECCOMP_KILL);
	status = child_finish(&c);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void unprivileged_without_capabilities(void **state)
{
	struct child c;

	(void)state;
	skip_if_instrumented();
	if (geteuid() == 0)
		skip(); /* runs_without_uid_0 covers it, as nobody */
	child_start(&c, CFRD_SECCOMP_KILL, NULL);
	if (!c.entered)
		fail_msg("the child could not enter the sandbox");
	inspect(c.pid, CFRD_SECCOMP_KILL);
	assert_int_equal(WEXITSTATUS(child_finish(&c)), 0);
}

static int take_root_back(void)
{
	return setuid(0) == 0 || seteuid(0) == 0 ? 1 : 0;
}

static void root_cannot_be_regained(void **state)
{
	(void)state;
	skip_unless_root();
	expect_exit(CFRD_SECCOMP_OFF, take_root_back, 0);
}

static int dumpable(void)
{
	return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
}

/*
 * user = root, the opt-out: uid 0 stays, but without a capability, and not
 * dumpable (a change of user clears dumpable on its own; this changes
 * none, so cfrd must clear it itself).
 */
static void root_opt_out_keeps_nothing_else(void **state)
{
	struct child c;
	int status;

	(void)state;
	skip_unless_root();
	snprintf(user, sizeof(user), "root");
	child_start(&c, CFRD_SECCOMP_OFF, dumpable);
	if (!c.entered)
		fail_msg("the child could not enter the sandbox");
	assert_field(c.pid, "Uid:", "0\t0\t0\t0");
	assert_field(c.pid, "CapEff:", "0000000000000000");
	assert_field(c.pid, "CapPrm:", "0000000000000000");
	assert_field(c.pid, "CapBnd:", "0000000000000000");
	status = child_finish(&c);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Locked memory: what the engine allocated before the sandbox stays out of swap. */
static void memory_is_locked(void **state)
{
	char locked[64];
	struct child c;
	uint8_t *tables;

	(void)state;
	skip_unless_root();
	skip_if_instrumented(); /* ASan's terabytes of shadow cannot be locked */
	tables = malloc(4 << 20);
	assert_non_null(tables);
	child_start(&c, CFRD_SECCOMP_OFF, NULL);
	if (!c.entered)
		fail_msg("the child could not enter the sandbox");
	status_field(c.pid, "VmLck:", locked, sizeof(locked));
	assert_int_equal(WEXITSTATUS(child_finish(&c)), 0);
	free(tables);
	if (strtoul(locked, NULL, 10) < 4096)
		fail_msg("VmLck is %s, expected the 4 MiB table and more", locked);
}

/* --- the records directory -------------------------------------------- */

static void owner_of(const char *dir, const char *name, uid_t *uid)
{
	char path[160];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(lstat(path, &st), 0);
	*uid = st.st_uid;
}

/* A directory of segments left by cfrd as root becomes the user's, segments and all. */
static void records_given_to_user(void **state)
{
	const struct passwd *pw = getpwnam(user);
	uid_t dir_uid, seg_uid;

	(void)state;
	skip_unless_root();
	assert_non_null(pw);
	put_file(records, "0.seg");
	expect_exit(CFRD_SECCOMP_OFF, NULL, 0);
	owner_of(base, "records", &dir_uid);
	owner_of(records, "0.seg", &seg_uid);
	assert_int_equal(dir_uid, pw->pw_uid);
	assert_int_equal(seg_uid, pw->pw_uid);
}

/* A root directory that holds anything else is not taken over: cfrd stops instead. */
static void shared_directory_not_taken(void **state)
{
	uid_t dir_uid, file_uid;

	(void)state;
	skip_unless_root();
	put_file(records, "0.seg");
	put_file(records, "passwd");
	expect_exit(CFRD_SECCOMP_OFF, NULL, ENTER_FAILED);
	owner_of(base, "records", &dir_uid);
	owner_of(records, "0.seg", &file_uid);
	assert_int_equal(dir_uid, 0);
	assert_int_equal(file_uid, 0);
}

/* --- the user ------------------------------------------------------------ */

static void missing_user_stops(void **state)
{
	struct cfrd_config cfg;
	struct cfrd_sandbox sb;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.user, sizeof(cfg.user), "cfr-no-such-user");
	cfrd_log_set_level(CFRD_LOG_ERROR);
	assert_int_equal(cfrd_sandbox_init(&sb, &cfg), -ENOENT);
	snprintf(cfg.user, sizeof(cfg.user), "root");
	assert_int_equal(cfrd_sandbox_init(&sb, &cfg), 0);
	assert_int_equal(sb.uid, 0);
}

int main(void)
{
	/* A child that died entering the sandbox leaves a pipe without a reader. */
	signal(SIGPIPE, SIG_IGN);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(memory_and_threads_allowed),
	    T(records_allowed),
	    T(executable_mapping_kills),
	    T(executable_protection_kills),
	    T(new_process_kills),
	    T(socket_kills),
	    T(open_for_writing_kills),
	    T(nothing_written_outside),
	    T(control_socket_removed),
	    T(runs_without_uid_0),
	    T(unprivileged_without_capabilities),
	    T(root_cannot_be_regained),
	    T(root_opt_out_keeps_nothing_else),
	    T(memory_is_locked),
	    T(records_given_to_user),
	    T(shared_directory_not_taken),
	    cmocka_unit_test(missing_user_stops),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
