/*
 * cfrd configuration: the INI file (see cfrd.conf(5)) turned into a plain
 * struct. Parsing is pure (no I/O besides reading the file, no logging), so
 * a fuzz target can drive cfrd_config_parse_buffer() directly.
 */
#ifndef CFRD_CONFIG_H
#define CFRD_CONFIG_H

#include <net/if.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/un.h>

#include <cfr/cfr.h>

#include "log.h"

#define CFRD_DEFAULT_TUN     "cfr0"
#define CFRD_DEFAULT_MTU     1500
#define CFRD_DEFAULT_CONTROL "/run/cfrd.sock"
/* The unprivileged user cfrd becomes once set up (sandbox.h); "root" keeps uid 0. */
#define CFRD_DEFAULT_USER "cfrd"
#define CFRD_USER_MAX     32
/* The gateway's ICMP errors about subscribers carry this mark: route it into the TUN device. */
#define CFRD_DEFAULT_ERROR_MARK 0xcf

/* Sealed records: an hour per segment file, kept 180 days, unless configured. */
#define CFRD_DEFAULT_SEGMENT_S   3600
#define CFRD_DEFAULT_RETENTION_S 15552000
#define CFRD_PATH_MAX            256

/* [accounting]: sealed accountability records; off while <records> is empty. */
struct cfrd_accounting {
	char records[CFRD_PATH_MAX];    /* directory of segment files */
	char public_key[CFRD_PATH_MAX]; /* the operator's key, from cfr-keygen */
	uint32_t segment_s, retention_s;
	bool fsync_segment; /* fsync once per segment instead of once per epoch */
};

/*
 * Access lines with a TUN device of their own ([line NAME] sections). Line
 * i has ingress id i + 1; 0 is the main tun. Each line costs a descriptor in
 * the poll set, so keep it a handful: per-line devices are for gateways with
 * few, large access aggregates, not one per subscriber.
 */
#define CFRD_MAX_LINES 16
/* Worker threads; TUN allows 256 queues per device, and 64 cores is a large gateway. */
#define CFRD_MAX_WORKERS   64
#define CFRD_LINE_NAME_MAX 32

struct cfrd_line {
	char name[CFRD_LINE_NAME_MAX];
	char tun[IFNAMSIZ];
	unsigned n_prefixes;
	uint8_t ident6; /* subscriber-prefix6 of this line's customers, 0: the global one */
};

/*
 * [xdp]: interfaces the AF_XDP fast path attaches to (io_xdp.h), inside
 * (facing subscribers) or outside (facing the internet). An inside port
 * listed in a [line] section is that line's: its packets carry the line's
 * ingress id, as those of the line's TUN device do.
 */
#define CFRD_XDP_MAX_PORTS 16
/* Interfaces a [fastpath] section may name. */
#define CFRD_FASTPATH_MAX_IFS 64

struct cfrd_xdp_port_config {
	char name[IFNAMSIZ];
	bool inside;
	uint16_t ingress; /* inside ports: 0, or the [line] (i + 1) it was listed in */
};

/* What the seccomp filter does with a syscall cfrd does not use. */
enum cfrd_seccomp {
	CFRD_SECCOMP_OFF = 0,
	CFRD_SECCOMP_KILL, /* default: the process dies (SCMP_ACT_KILL_PROCESS) */
	CFRD_SECCOMP_LOG,  /* allowed but logged by the kernel: for finding a missing syscall */
};

struct cfrd_config {
	char tun[IFNAMSIZ];
	unsigned mtu;
	char control[sizeof(((struct sockaddr_un *)0)->sun_path)];
	enum cfrd_log_level log_level;
	enum cfrd_seccomp seccomp;
	char user[CFRD_USER_MAX]; /* a user name, checked against the passwd database at start */
	bool offload;             /* TUN with virtio headers, checksum and segmentation offloads */
	unsigned busy_poll_us;    /* keep polling this long after traffic before sleeping */
	unsigned workers; /* packet threads, one queue of each device each; 0 = one per CPU */
	unsigned anon_warn_percent; /* warn when more new flows than this land below anonymity-k */
	bool egress_guard;          /* the guard table's egress chain (egress_guard.h) */
	bool source_check;   /* its source check; off: an upstream device (a BNG) binds sources */
	uint32_t error_mark; /* fwmark of the gateway's own ICMP errors about subscribers */
	struct cfrd_line lines[CFRD_MAX_LINES];
	unsigned n_lines;
	struct cfrd_xdp_port_config xdp_ports[CFRD_XDP_MAX_PORTS];
	unsigned n_xdp_ports;
	bool xdp_ignore_forward_rules; /* start although forward rules would miss the fast path */
	bool fastpath;                 /* the TC fast path (fastpath.h), where the kernel has it */
	char fastpath_ifs[CFRD_FASTPATH_MAX_IFS][IFNAMSIZ]; /* none: every interface */
	unsigned n_fastpath_ifs;
	bool fastpath_ignore_forward_rules; /* run it although forward rules would miss it */
	struct cfrd_accounting acct;
	struct cfr_engine_config engine;
};

/* The first error found: the line it is on (0 if none applies) and why. */
struct cfrd_config_error {
	int line;
	char msg[160];
};

/*
 * The configuration keys, one table (config.c) that parses, validates,
 * prints `cfrd --help-config` and is checked against cfrd.conf(5) by
 * tests/net/config.sh. Most keys are a type, a field and a range; the odd
 * ones (prefixes, ports, choices) have a setter of their own.
 */
enum cfrd_key_type {
	CFRD_KEY_UINT,   /* a decimal integer from <min> to <max>, stored in <size> bytes */
	CFRD_KEY_BOOL,   /* yes or no (true/false, on/off) into a bool */
	CFRD_KEY_IFNAME, /* an interface name into a char[IFNAMSIZ] */
	CFRD_KEY_PATH,   /* an absolute path that fits the char array */
	CFRD_KEY_CUSTOM, /* <set> parses and stores */
};

struct cfrd_config_parse;
struct cfrd_config_key;
typedef int (*cfrd_config_setter)(struct cfrd_config_parse *st, const struct cfrd_config_key *k,
                                  const char *value);

struct cfrd_config_key {
	const char *section; /* "line" for the keys of [line NAME] sections */
	const char *name;
	enum cfrd_key_type type;
	bool repeatable;     /* may appear several times and add up */
	size_t offset, size; /* the field in struct cfrd_config (custom keys: if they have one) */
	uint32_t min, max;   /* CFRD_KEY_UINT */
	const char *unit;    /* CFRD_KEY_UINT: what is counted; others: the value's syntax */
	const char *zero;    /* CFRD_KEY_UINT: what 0 means, when it is special */
	const char *def;     /* the default as a value of the key; NULL: none */
	const char *help;    /* one line */
	cfrd_config_setter set;
};

extern const struct cfrd_config_key cfrd_config_keys[];
extern const size_t cfrd_config_n_keys;

/* Print every key, its values, default and help, by section (cfrd --help-config). */
void cfrd_config_help(FILE *out);

/*
 * Parse the INI text <buf> of <len> bytes into <cfg>, starting from the
 * defaults. Returns 0, or -EINVAL with <err> filled.
 */
int cfrd_config_parse_buffer(const char *buf, size_t len, struct cfrd_config *cfg,
                             struct cfrd_config_error *err);

/*
 * Read and parse the file <path>. Returns 0, -EINVAL with <err> filled, or
 * another -errno when the file cannot be read (<err> filled, line 0).
 */
int cfrd_config_load(const char *path, struct cfrd_config *cfg, struct cfrd_config_error *err);

#endif
