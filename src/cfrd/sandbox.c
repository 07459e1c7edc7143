/*
 * cfrd's sandbox. Once the TUN devices are attached (and with [xdp], the
 * XDP program loaded and linked and the AF_XDP sockets bound; or the TC
 * fast path loaded and attached), the control
 * socket is bound and the records directory is open, cfrd needs no
 * privilege at all: reading and writing an attached TUN descriptor or an
 * AF_XDP ring takes no capability, and the daemon never reopens a device
 * (if one disappears it stops, and its supervisor restarts it with full
 * setup). So it becomes an unprivileged user, drops every capability,
 * confines its file access to the records directory (Landlock), and then
 * to the handful of system calls its loop makes (seccomp). A bug in the
 * packet path that an attacker turns into code execution then finds a
 * process that owns nothing outside its records, cannot open sockets,
 * exec, ptrace, load modules, reconfigure the network, or write to any
 * file but a new segment.
 *
 * The order matters: the bounding set goes while CAP_SETPCAP is still
 * there, the user change needs CAP_SETUID and CAP_SETGID and takes the
 * other capabilities with it, dumpable is cleared after the user change
 * (which resets it), and the filter comes last because it forbids every
 * call before it.
 *
 * Capabilities go through capset(2) and prctl(2) directly, Landlock through
 * its three system calls: neither justifies a library. The filter uses
 * libseccomp, which knows every architecture's syscall numbers and checks
 * the audit architecture.
 */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../records/records.h"
#include "log.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * LeakSanitizer reads /proc/self/task at exit and fails when Landlock
 * denies it, so sanitizer builds (test builds, run with seccomp = no) go
 * without Landlock. Nothing else changes with the build.
 */
#if defined(__SANITIZE_ADDRESS__)
#define CFRD_INSTRUMENTED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CFRD_INSTRUMENTED 1
#endif
#endif

/*
 * Landlock's ABI up to version 6 (Linux 6.12), which the installed headers
 * may predate: an older kernel takes the larger struct if what it does not
 * know is zero.
 */
struct landlock_attr {
	uint64_t handled_access_fs, handled_access_net, scoped;
};
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP    (1ULL << 0) /* ABI 4 */
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#define LANDLOCK_SCOPE_SIGNAL               (1ULL << 1)
#endif

/*
 * Every system call cfrd makes after setup, and why. Anything else is
 * either a bug or an attacker; with seccomp = log the kernel names it.
 * open and openat are not here: they are allowed with some flags only.
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
    /* TUN packets, the signalfd, log lines on stderr, sealed records */
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
    /* sealed records: directory sync, reading headers and deleting for retention */
    SCMP_SYS(fsync),
    SCMP_SYS(fdatasync),
    SCMP_SYS(lseek),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(statx),
    SCMP_SYS(getdents64),
    SCMP_SYS(unlink),
    SCMP_SYS(unlinkat),
    SCMP_SYS(fcntl),
    /* a restart's handover: the engine into a memfd, for a peer of our own user */
    SCMP_SYS(memfd_create),
    SCMP_SYS(pwrite64),
    SCMP_SYS(geteuid),
    /* the workers start after the filter: the engine lock, a thread's own setup */
    SCMP_SYS(futex),
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(sched_yield),
    /* signals and the way out (abort() included) */
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
};

/*
 * The two ways cfrd opens a file after setup: read-only (the records
 * directory and segment headers, for retention) and a new segment, which
 * O_EXCL makes a file that did not exist. Any other mix of flags is
 * refused, so no existing file (/proc/self/mem, a binary, a config) can be
 * opened for writing even where Landlock is missing.
 */
#define OPEN_FLAGS_CHECKED (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND)
#define OPEN_READ          O_RDONLY
#define OPEN_NEW_SEGMENT   (O_WRONLY | O_CREAT | O_EXCL | O_APPEND)

int cfrd_sandbox_init(struct cfrd_sandbox *sb, const struct cfrd_config *cfg)
{
	struct passwd *pw;

	memset(sb, 0, sizeof(*sb));
	snprintf(sb->user, sizeof(sb->user), "%s", cfg->user);
	sb->records = cfg->acct.records;
	sb->control = cfg->control;
	sb->seccomp = cfg->seccomp;
	errno = 0;
	pw = getpwnam(sb->user);
	if (pw == NULL) {
		/* getpwnam(3): these, or none, mean the name is not there. */
		bool missing = errno == 0 || errno == ENOENT || errno == ESRCH || errno == EBADF ||
		               errno == EPERM;
		int ret = missing ? -ENOENT : -errno;

		if (ret == -ENOENT)
			log_error("user %s does not exist: create it (a system user without login, "
			          "e.g. useradd --system %s), or name another in [cfrd] user",
			          sb->user, sb->user);
		else
			log_error("cannot look user %s up: %s", sb->user, strerror(-ret));
		return ret;
	}
	sb->uid = pw->pw_uid;
	sb->gid = pw->pw_gid;
	if (sb->uid == 0)
		log_warn("user = %s: cfrd keeps uid 0 after setup, and a bug exploited in it "
		         "owns every root file Landlock lets it reach; run it as a user of its own",
		         sb->user);
	return 0;
}

static bool is_segment(const char *name)
{
	size_t len = strlen(name), slen = strlen(CFR_SEG_SUFFIX);

	return len > slen && name[0] != '.' && strcmp(name + len - slen, CFR_SEG_SUFFIX) == 0;
}

/* A stream of <dfd>'s entries from the first; closedir() leaves <dfd> open. */
static DIR *list_dir(int dfd)
{
	int fd = dup(dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (d == NULL && fd >= 0)
		close(fd);
	if (d != NULL)
		rewinddir(d); /* the duplicate shares its offset with <dfd> */
	return d;
}

/*
 * A directory that holds nothing but segments is cfrd's own (cfr_recw_new
 * creates it, mode 0700). Anything else under a root-owned records
 * directory means the operator pointed records at a shared one, which
 * cfrd must not take over: its user could then replace other files there.
 */
static bool only_segments(int dfd, char *other, size_t size)
{
	DIR *d = list_dir(dfd);
	struct dirent *de;
	bool only = true;

	if (d == NULL) {
		snprintf(other, size, "(unreadable)");
		return false;
	}
	while (only && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (!is_segment(de->d_name)) {
			snprintf(other, size, "%s", de->d_name);
			only = false;
		}
	}
	closedir(d);
	return only;
}

/*
 * Give segments left by a cfrd that ran as root to the user, or retention
 * could never read (and so never delete) them. Opened without following
 * links and changed through the descriptor, so a name swapped for a link
 * cannot make root hand over another file; a file with a second hard link
 * is not one the writer made.
 */
static void give_segments(int dfd, uid_t uid, gid_t gid)
{
	DIR *d = list_dir(dfd);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		int sfd;

		if (!is_segment(de->d_name))
			continue;
		sfd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (sfd < 0)
			continue;
		if (fstat(sfd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
		    st.st_uid == 0 && fchown(sfd, uid, gid) < 0)
			log_warn("records: cannot give %s to user %ld: %s", de->d_name, (long)uid,
			         strerror(errno));
		close(sfd);
	}
	closedir(d);
}

/* As root, before the user change: the records directory becomes the user's. */
static int give_records(const struct cfrd_sandbox *sb)
{
	char other[NAME_MAX + 1];
	struct stat st;
	int dfd, ret = 0;

	if (sb->records[0] == '\0' || sb->uid == 0 || geteuid() != 0)
		return 0;
	dfd = open(sb->records, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &st) < 0) {
		ret = -errno;
		log_error("records directory %s: %s", sb->records, strerror(-ret));
		goto out;
	}
	if (st.st_uid == 0 && only_segments(dfd, other, sizeof(other))) {
		if (fchown(dfd, sb->uid, sb->gid) < 0) {
			ret = -errno;
			log_error("records directory %s: cannot give it to user %s: %s",
			          sb->records, sb->user, strerror(-ret));
			goto out;
		}
		st.st_uid = sb->uid;
	} else if (st.st_uid == 0) {
		/* Left as it is; check_records() says whether the user can still write there. */
		log_warn("records directory %s is root's and holds %s, not only segments: not "
		         "giving it to user %s",
		         sb->records, other, sb->user);
	}
	if (st.st_uid == sb->uid)
		give_segments(dfd, sb->uid, sb->gid);
out:
	if (dfd >= 0)
		close(dfd);
	return ret;
}

/* As the user: sealing and retention need to list, create and delete there. */
static int check_records(const struct cfrd_sandbox *sb)
{
	int ret;

	if (sb->records[0] == '\0' || access(sb->records, R_OK | W_OK | X_OK) == 0)
		return 0;
	ret = -errno;
	log_error("records directory %s: not writable as user %s (%s): give it to that user "
	          "(chown %s %s), or point records at a directory cfrd can create",
	          sb->records, sb->user, strerror(-ret), sb->user, sb->records);
	return ret;
}

/*
 * Keep the engine's epoch seeds and flow table and the packets in the
 * workers' buffers out of swap, as the records writer does for its segment
 * key (sodium_mlock): everything mapped now is locked as it is touched
 * (MCL_ONFAULT: no page becomes resident sooner than it would anyway).
 * Memory mapped later (json-c replies, worker stacks) is not: MCL_FUTURE
 * would charge it to the user's small RLIMIT_MEMLOCK once the capabilities
 * are gone, and allocations would start to fail.
 */
static void lock_memory(void)
{
	if (mlockall(MCL_CURRENT | MCL_ONFAULT) < 0)
		log_warn("cannot lock memory (%s): epoch seeds and flows may reach swap",
		         strerror(errno));
}

/*
 * A core file would hold every live seed and flow. Without dumpable the
 * kernel writes none (or, with fs.suid_dumpable = 2, one only root can
 * read); this filter also keeps anonymous and shared memory out of that
 * one, the engine's tables included: only the ELF headers remain (bit 4,
 * core(5)). Debug a live cfrd with a debugger as root instead.
 */
static void exclude_from_dumps(void)
{
	static const char filter[] = "0x10";
	int fd = open("/proc/self/coredump_filter", O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, filter, sizeof(filter) - 1) != (ssize_t)(sizeof(filter) - 1))
		log_warn("cannot set coredump_filter: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* While root: dropping from the bounding set takes CAP_SETPCAP, which the user change ends. */
static int drop_bounding_set(void)
{
	for (unsigned long cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EPERM)
			return -errno;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	return 0;
}

/* The user's group as the only group, and the user's uid: real, effective and saved. */
static int become_user(const struct cfrd_sandbox *sb)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;

	if (sb->uid == 0)
		return 0;
	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
		return -errno;
	/* Started as the user already (a supervisor's User=): nothing to change. */
	if (ruid == sb->uid && euid == sb->uid && suid == sb->uid && rgid == sb->gid &&
	    egid == sb->gid && sgid == sb->gid)
		return 0;
	if (setgroups(1, &sb->gid) < 0 || setresgid(sb->gid, sb->gid, sb->gid) < 0 ||
	    setresuid(sb->uid, sb->uid, sb->uid) < 0)
		return -errno;
	if (getresuid(&ruid, &euid, &suid) < 0 || ruid != sb->uid || euid != sb->uid ||
	    suid != sb->uid)
		return -EPERM;
	/* Check: a process that can take uid 0 back has not given it up. */
	if (setuid(0) == 0)
		return -EPERM;
	return 0;
}

static int drop_capabilities(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

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

/* The directory of <path> (the control socket, the configuration), into <dir>. */
static void parent_dir(const char *path, char *dir, size_t size)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(dir, size, ".");
	else if (slash == path)
		snprintf(dir, size, "/");
	else
		snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

static int landlock_allow(int ruleset, const char *path, uint64_t access)
{
	struct landlock_path_beneath_attr rule = {.allowed_access = access};
	int ret = 0;

	rule.parent_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rule.parent_fd < 0)
		return -errno;
	if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0)
		ret = -errno;
	close(rule.parent_fd);
	return ret;
}

/*
 * Landlock: every file access right the kernel knows is handled, so none
 * is granted by omission, and granted only beneath the records directory
 * (list, read, create and delete segments), if the user owns it, the
 * control socket's directory (remove the socket at exit; elsewhere, as in
 * /run, the kernel would refuse that anyway and the socket stays until
 * the next start removes it), and the configuration file's directory,
 * reading files only (a reload reads the file again). The directory, not
 * the file: a rule names an inode, and editors and configuration managers
 * replace a file by renaming a new one over it, which a rule on the old
 * inode would not cover. The user's own permissions still apply, so put
 * the file in a directory of its own (/etc/cfrd/) rather than /etc.
 * Where the kernel has them, TCP bind and connect, abstract UNIX sockets
 * and signals to other processes go too. Returns the ABI used, 0 where
 * Landlock is missing, or -errno.
 */
static int confine_files(const struct cfrd_sandbox *sb, const char **why, bool *control_too)
{
	const uint64_t records = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
	                         LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
	                         LANDLOCK_ACCESS_FS_MAKE_REG;
	struct landlock_attr attr = {
	    .handled_access_fs = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1, /* ABI 1 */
	};
	char control_dir[sizeof(((struct cfrd_config *)0)->control)];
	struct stat st;
	int abi, ruleset, ret = 0;

#ifdef CFRD_INSTRUMENTED
	*why = "built with AddressSanitizer, whose leak check reads /proc at exit";
	return 0;
#endif
	abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 0 && (errno == ENOSYS || errno == EOPNOTSUPP)) {
		*why = errno == ENOSYS ? "this kernel lacks it" : "disabled at boot";
		return 0;
	}
	if (abi < 0)
		return -errno;
	if (abi >= 2)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 4)
		attr.handled_access_net =
		    LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
	if (abi >= 5)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	if (abi >= 6)
		attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (ruleset < 0)
		return -errno;
	if (sb->records[0] != '\0')
		ret = landlock_allow(ruleset, sb->records, records);
	parent_dir(sb->control, control_dir, sizeof(control_dir));
	*control_too = stat(control_dir, &st) == 0 && st.st_uid == sb->uid;
	if (ret == 0 && *control_too)
		ret = landlock_allow(ruleset, control_dir, LANDLOCK_ACCESS_FS_REMOVE_FILE);
	if (ret == 0 && sb->config != NULL) {
		char config_dir[PATH_MAX];

		parent_dir(sb->config, config_dir, sizeof(config_dir));
		ret = landlock_allow(ruleset, config_dir, LANDLOCK_ACCESS_FS_READ_FILE);
	}
	if (ret == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
		ret = -errno;
	close(ruleset);
	return ret < 0 ? ret : abi;
}

static int add_open_rules(scmp_filter_ctx ctx, int nr, unsigned flags_arg)
{
	static const scmp_datum_t ways[] = {OPEN_READ, OPEN_NEW_SEGMENT};
	int ret = 0;

	/* A pseudo-number (negative) is a call this architecture lacks (open on arm64). */
	if (nr < 0)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(ways) && ret == 0; i++) {
		struct scmp_arg_cmp flags = {.arg = flags_arg,
		                             .op = SCMP_CMP_MASKED_EQ,
		                             .datum_a = OPEN_FLAGS_CHECKED,
		                             .datum_b = ways[i]};

		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, &flags);
	}
	return ret;
}

static int install_filter(enum cfrd_seccomp mode)
{
	uint32_t deny = mode == CFRD_SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
	scmp_filter_ctx ctx = seccomp_init(deny);
	int ret = 0;

	if (ctx == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < ARRAY_SIZE(allowed) && ret == 0; i++) {
		if (allowed[i] < 0)
			continue;
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	}
	if (ret == 0)
		ret = add_open_rules(ctx, SCMP_SYS(openat), 2);
	if (ret == 0)
		ret = add_open_rules(ctx, SCMP_SYS(open), 1);
	/* The fast path reads its ports' MTUs again (cfrd_xdp_refresh): that ioctl only. */
	if (ret == 0) {
		struct scmp_arg_cmp req = {
		    .arg = 1, .op = SCMP_CMP_EQ, .datum_a = SIOCGIFMTU, .datum_b = 0};

		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, &req);
	}
	/*
	 * The TC fast path's flow map (fastpath.c): reading, writing and
	 * deleting entries of maps cfrd holds, nothing that loads a program
	 * or makes a map.
	 */
	for (int cmd = BPF_MAP_LOOKUP_ELEM; ret == 0 && cmd <= BPF_MAP_DELETE_ELEM; cmd++) {
		struct scmp_arg_cmp op = {
		    .arg = 0, .op = SCMP_CMP_EQ, .datum_a = (scmp_datum_t)cmd, .datum_b = 0};

		ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(bpf), 1, &op);
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

/* Log why <what> failed and pass the error on. */
static int failed(const char *what, int ret)
{
	log_error("%s: %s", what, strerror(-ret));
	return ret;
}

int cfrd_sandbox_enter(const struct cfrd_sandbox *sb)
{
	const char *no_landlock = NULL;
	bool control_too = false;
	int ret, abi;

	/* Also keeps a later execve() from gaining privileges through setuid files. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return failed("cannot set no_new_privs", -errno);
	ret = give_records(sb);
	if (ret < 0)
		return ret;
	lock_memory();
	exclude_from_dumps();
	ret = drop_bounding_set();
	if (ret < 0)
		return failed("cannot drop the capability bounding set", ret);
	ret = become_user(sb);
	if (ret < 0) {
		log_error("cannot become user %s (uid %ld): %s", sb->user, (long)sb->uid,
		          strerror(-ret));
		return ret;
	}
	ret = drop_capabilities();
	if (ret < 0)
		return failed("cannot drop capabilities", ret);
	/* After the user change, which resets it: no core file, no ptrace but by root. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return failed("cannot clear dumpable", -errno);
	ret = check_records(sb);
	if (ret < 0)
		return ret;
	abi = confine_files(sb, &no_landlock, &control_too);
	if (abi < 0)
		return failed("cannot confine file access with Landlock", abi);
	if (abi == 0)
		log_warn("no Landlock (%s): only user %s's permissions limit the files cfrd "
		         "can open",
		         no_landlock, sb->user);
	if (sb->seccomp != CFRD_SECCOMP_OFF) {
		ret = install_filter(sb->seccomp);
		if (ret < 0) {
			log_error(
			    "cannot install the seccomp filter: %s (seccomp = no runs without "
			    "it)",
			    strerror(-ret));
			return ret;
		}
	}
	log_info("running as user %s (uid %ld), no capabilities, not dumpable; files: %s%s%s%s; "
	         "%s",
	         sb->user, (long)sb->uid,
	         abi == 0                 ? "unconfined"
	         : sb->records[0] != '\0' ? sb->records
	                                  : "none",
	         abi > 0 ? " only (Landlock)" : "",
	         abi > 0 && control_too ? ", and removing the control socket" : "",
	         abi > 0 && sb->config ? ", and reading the configuration's directory" : "",
	         sb->seccomp == CFRD_SECCOMP_KILL  ? "unlisted system calls kill cfrd"
	         : sb->seccomp == CFRD_SECCOMP_LOG ? "unlisted system calls are only logged"
	                                           : "no system call filter (seccomp = no)");
	return 0;
}
