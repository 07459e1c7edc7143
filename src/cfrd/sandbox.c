/*
 * cfrd's sandbox. Once the TUN devices are attached (and with [xdp], the
 * XDP program loaded and linked and the AF_XDP sockets bound) and the
 * control socket is bound, cfrd needs no privilege at all: reading and
 * writing an attached TUN descriptor or an AF_XDP ring takes no capability,
 * and the daemon never reopens a device
 * (if one disappears it stops, and its supervisor restarts it with full
 * setup). So it drops every capability, including the bounding set, and
 * then confines itself to the handful of system calls its loop makes. A
 * bug in the packet path that an attacker turns into code execution then
 * finds a process that cannot open sockets, exec, ptrace, load modules or
 * reconfigure the network.
 *
 * Capabilities go through capset(2) and prctl(2) directly: four calls do
 * not justify a library. The filter uses libseccomp, which knows every
 * architecture's syscall numbers and checks the audit architecture.
 */
#include "sandbox.h"

#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Every system call cfrd makes after setup, and why. Anything else is
 * either a bug or an attacker; with seccomp = log the kernel names it.
 */
static const int allowed[] = {
    /* the event loop */
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(gettimeofday),
    /* the kernel resumes a poll() interrupted by a stop or a tracer with it */
    SCMP_SYS(restart_syscall),
    /* TUN packets, the signalfd, log lines on stderr */
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    /* control socket clients (recv/send are recvfrom/sendto on most architectures) */
    SCMP_SYS(accept4),
    SCMP_SYS(accept),
    SCMP_SYS(recvfrom),
    SCMP_SYS(sendto),
    SCMP_SYS(recvmsg),
    SCMP_SYS(sendmsg),
    SCMP_SYS(shutdown),
    SCMP_SYS(close),
    /* AF_XDP: sendto and recvfrom wake the rings; closing a socket reads its ring offsets */
    SCMP_SYS(getsockopt),
    /* json-c replies and the records writer allocate with malloc */
    SCMP_SYS(brk),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(madvise),
    /* libsodium: epoch keys, record seeds, segment keys */
    SCMP_SYS(getrandom),
    /* sealed records: segment files, directory sync, retention */
    SCMP_SYS(openat),
    SCMP_SYS(open),
    SCMP_SYS(fsync),
    SCMP_SYS(fdatasync),
    SCMP_SYS(lseek),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(statx),
    SCMP_SYS(getdents64),
    SCMP_SYS(unlink),
    SCMP_SYS(unlinkat),
    SCMP_SYS(rename),
    SCMP_SYS(renameat),
    SCMP_SYS(renameat2),
    SCMP_SYS(mkdir),
    SCMP_SYS(mkdirat),
    SCMP_SYS(fcntl),
    /* the workers start after the filter: the engine lock, a thread's own setup */
    SCMP_SYS(futex),
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(sched_yield),
    /* signals and the way out (abort() included, so a failed assert still dumps) */
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
};

static int drop_capabilities(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	/* The bounding set first: dropping it needs CAP_SETPCAP, which goes next. */
	for (unsigned long cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EPERM)
			return -errno;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	/* Check: a silent failure here would leave a privileged daemon that claims otherwise. */
	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	for (unsigned i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		if (data[i].effective || data[i].permitted || data[i].inheritable)
			return -EPERM;
	return 0;
}

static int install_filter(enum cfrd_seccomp mode)
{
	uint32_t deny = mode == CFRD_SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
	scmp_filter_ctx ctx = seccomp_init(deny);
	int ret = 0;

	if (ctx == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < ARRAY_SIZE(allowed) && ret == 0; i++) {
		/* A pseudo-number (negative) is a call this architecture lacks: skip it. */
		if (allowed[i] < 0)
			continue;
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	}
	/* abort() signals itself; no other target for a signal is allowed. */
	if (ret == 0) {
		struct scmp_arg_cmp self = {
		    .arg = 0, .op = SCMP_CMP_EQ, .datum_a = (scmp_datum_t)getpid(), .datum_b = 0};

		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, &self);
	}
	/*
	 * Threads, not processes: clone() only with CLONE_THREAD. clone3()
	 * passes its flags in memory a filter cannot read, so it fails with
	 * ENOSYS and glibc falls back to clone().
	 */
	if (ret == 0) {
		struct scmp_arg_cmp thread = {.arg = 0,
		                              .op = SCMP_CMP_MASKED_EQ,
		                              .datum_a = CLONE_THREAD,
		                              .datum_b = CLONE_THREAD};

		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1, &thread);
	}
	if (ret == 0)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/*
	 * Memory for malloc and thread stacks, never executable: code run
	 * through a memory bug cannot map or make pages it could jump into.
	 */
	if (ret == 0) {
		struct scmp_arg_cmp no_exec = {
		    .arg = 2, .op = SCMP_CMP_MASKED_EQ, .datum_a = PROT_EXEC, .datum_b = 0};

		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, &no_exec);
		if (ret == 0)
			ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
			                             &no_exec);
	}
	if (ret == 0)
		ret = seccomp_load(ctx); /* sets no_new_privs first */
	seccomp_release(ctx);
	return ret;
}

int cfrd_sandbox_enter(enum cfrd_seccomp mode)
{
	int ret;

	/* Also keeps a later execve() from gaining privileges through setuid files. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		ret = -errno;
		log_error("cannot set no_new_privs: %s", strerror(-ret));
		return ret;
	}
	ret = drop_capabilities();
	if (ret < 0) {
		log_error("cannot drop capabilities: %s", strerror(-ret));
		return ret;
	}
	if (mode == CFRD_SECCOMP_OFF) {
		log_warn("capabilities dropped; seccomp = no, so no system call filter");
		return 0;
	}
	ret = install_filter(mode);
	if (ret < 0) {
		log_error("cannot install the seccomp filter: %s (seccomp = no runs without it)",
		          strerror(-ret));
		return ret;
	}
	log_info("capabilities dropped; seccomp filter installed (%s)",
	         mode == CFRD_SECCOMP_LOG ? "log: unlisted system calls are only logged"
	                                  : "unlisted system calls kill cfrd");
	return 0;
}
