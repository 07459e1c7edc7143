/*
 * cfrd's sandbox, enforced: each case forks a child that enters the sandbox
 * exactly as cfrd does (capabilities dropped, seccomp filter in kill mode)
 * and then makes one call. What cfrd's loop needs (memory, a worker thread)
 * must work; an executable mapping, a new process or a socket must kill the
 * child with SIGSYS. Needs no privilege (no_new_privs and a filter are
 * allowed to anyone). Skipped under valgrind and ASan, whose runtimes make
 * calls of their own that the filter refuses (CFR_TEST_NO_SECCOMP=1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/cfrd/log.c"
#include "../../src/cfrd/sandbox.c"

static void skip_if_instrumented(void)
{
	if (getenv("CFR_TEST_NO_SECCOMP"))
		skip();
}

static void *worker(void *arg)
{
	return arg;
}

/* What cfrd does after the filter: allocate, start and join a worker. */
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

/* Run <call> in a sandboxed child; return its wait status. */
static int sandboxed(int (*call)(void))
{
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		cfrd_log_set_level(CFRD_LOG_ERROR);
		if (cfrd_sandbox_enter(CFRD_SECCOMP_KILL) < 0)
			_exit(100);
		_exit(call());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void expect_killed(int (*call)(void))
{
	int status;

	skip_if_instrumented();
	status = sandboxed(call);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void memory_and_threads_allowed(void **state)
{
	int status;

	(void)state;
	skip_if_instrumented();
	status = sandboxed(allowed_calls);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(memory_and_threads_allowed),
	    cmocka_unit_test(executable_mapping_kills),
	    cmocka_unit_test(executable_protection_kills),
	    cmocka_unit_test(new_process_kills),
	    cmocka_unit_test(socket_kills),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
