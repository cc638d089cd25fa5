/*
 * iron-landlock: restrict this process with Landlock, then exec the entrypoint.
 *
 *   iron-landlock POLICY -- CMD [ARGS...]
 *
 * POLICY is one argument of `key=value` fields joined by `;` (written by
 * oci/landlock_policy.py):
 *
 *   abi=N            minimum Landlock ABI the host must offer (1..7), required
 *   r=P1:P2:...      READ_FILE | READ_DIR
 *   x=...            EXECUTE
 *   w=...            WRITE_FILE | TRUNCATE | REMOVE_* | MAKE_{DIR,REG,SYM,FIFO,SOCK} | REFER
 *   d=...            READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV | READ_DIR (devices)
 *   tcp.connect=P,.. handle TCP connect (ABI >= 4), allow the listed ports
 *   tcp.bind=P,..    handle TCP bind (ABI >= 4), allow the listed ports
 *   scope=1          scope abstract UNIX sockets and signals (ABI >= 6)
 *   debug=1          report what was enforced on stderr
 *
 * A path's rights are the union over the lists naming it. A `!` prefix makes a
 * path required; other paths that do not exist are skipped.
 *
 * The process keeps its pid, argv, environment, cwd and file descriptors: it
 * restricts itself and execs, it never forks. Every failure prints one line and
 * exits 126 before the command runs (fail closed); a failing exec exits 127 for
 * ENOENT and 126 otherwise, as a shell does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ------------------------------------------------------------------ Landlock ABI
 * Defined here rather than taken from <linux/landlock.h>: the build host's
 * headers may predate the kernel the helper runs on. */

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#endif
#ifndef __NR_landlock_add_rule
#define __NR_landlock_add_rule 445
#endif
#ifndef __NR_landlock_restrict_self
#define __NR_landlock_restrict_self 446
#endif

#ifndef LANDLOCK_CREATE_RULESET_VERSION
#define LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#endif
#ifndef LANDLOCK_RULE_PATH_BENEATH
#define LANDLOCK_RULE_PATH_BENEATH 1
#endif
#ifndef LANDLOCK_RULE_NET_PORT
#define LANDLOCK_RULE_NET_PORT 2
#endif

#ifndef LANDLOCK_ACCESS_FS_EXECUTE
#define LANDLOCK_ACCESS_FS_EXECUTE (1ULL << 0)
#endif
#ifndef LANDLOCK_ACCESS_FS_WRITE_FILE
#define LANDLOCK_ACCESS_FS_WRITE_FILE (1ULL << 1)
#endif
#ifndef LANDLOCK_ACCESS_FS_READ_FILE
#define LANDLOCK_ACCESS_FS_READ_FILE (1ULL << 2)
#endif
#ifndef LANDLOCK_ACCESS_FS_READ_DIR
#define LANDLOCK_ACCESS_FS_READ_DIR (1ULL << 3)
#endif
#ifndef LANDLOCK_ACCESS_FS_REMOVE_DIR
#define LANDLOCK_ACCESS_FS_REMOVE_DIR (1ULL << 4)
#endif
#ifndef LANDLOCK_ACCESS_FS_REMOVE_FILE
#define LANDLOCK_ACCESS_FS_REMOVE_FILE (1ULL << 5)
#endif
#ifndef LANDLOCK_ACCESS_FS_MAKE_CHAR
#define LANDLOCK_ACCESS_FS_MAKE_CHAR (1ULL << 6)
#endif
#ifndef LANDLOCK_ACCESS_FS_MAKE_DIR
#define LANDLOCK_ACCESS_FS_MAKE_DIR (1ULL << 7)
#endif
#ifndef LANDLOCK_ACCESS_FS_MAKE_REG
#define LANDLOCK_ACCESS_FS_MAKE_REG (1ULL << 8)
#endif
#ifndef LANDLOCK_ACCESS_FS_MAKE_SOCK
#define LANDLOCK_ACCESS_FS_MAKE_SOCK (1ULL << 9)
#endif
#ifndef LANDLOCK_ACCESS_FS_MAKE_FIFO
#define LANDLOCK_ACCESS_FS_MAKE_FIFO (1ULL << 10)
#endif
#ifndef LANDLOCK_ACCESS_FS_MAKE_BLOCK
#define LANDLOCK_ACCESS_FS_MAKE_BLOCK (1ULL << 11)
#endif
#ifndef LANDLOCK_ACCESS_FS_MAKE_SYM
#define LANDLOCK_ACCESS_FS_MAKE_SYM (1ULL << 12)
#endif
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif

#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#endif
#ifndef LANDLOCK_ACCESS_NET_CONNECT_TCP
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif

#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#endif
#ifndef LANDLOCK_SCOPE_SIGNAL
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif

/* Own names, so that an old <linux/landlock.h> pulled in indirectly cannot clash. */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;             /* ABI 6 */
};

struct ll_path_beneath_attr {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

struct ll_net_port_attr {
	uint64_t allowed_access;
	uint64_t port;
};

/* The newest ABI this helper knows and was tested against; a newer kernel is
 * used as this one, so an upgrade never changes what a policy means. */
#define ABI_CEILING 7

#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_EXEC LANDLOCK_ACCESS_FS_EXECUTE
/* No MAKE_CHAR / MAKE_BLOCK / IOCTL_DEV: a writable dir must not become a device node factory. */
#define FS_WRITE                                                                                  \
	(LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_REMOVE_DIR | \
	 LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |  \
	 LANDLOCK_ACCESS_FS_MAKE_SYM | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_SOCK |   \
	 LANDLOCK_ACCESS_FS_REFER)
#define FS_DEVICE                                                                                 \
	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | \
	 LANDLOCK_ACCESS_FS_IOCTL_DEV | LANDLOCK_ACCESS_FS_READ_DIR)
/* The only rights the kernel accepts on a rule whose inode is not a directory. */
#define FS_FILE_ONLY                                                                              \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | \
	 LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)
/* Every right of ABI 1..7: EXECUTE (bit 0) through IOCTL_DEV (bit 15). */
#define FS_ALL ((LANDLOCK_ACCESS_FS_IOCTL_DEV << 1) - 1)

/* ------------------------------------------------------------------ errors */

#define EXIT_REFUSED 126   /* as a shell: found but cannot run */
#define EXIT_NOT_FOUND 127 /* as a shell: command not found */

static const char *errno_name(int err)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
	const char *name = strerrorname_np(err);
	return name ? name : "?";
#else
	(void)err;
	return "?";
#endif
}

/* One line on stderr, then exit: nothing has been run yet. */
static void __attribute__((noreturn, format(printf, 2, 3))) die(int status, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "iron-landlock: %s\n", line);
	exit(status);
}

/* die() for a failed call; `err` is the saved errno. */
#define die_errno(err, fmt, ...)                                                        \
	die(EXIT_REFUSED, fmt ": %s (%s)", ##__VA_ARGS__, strerror(err), errno_name(err))

/* ------------------------------------------------------------------ the policy */

#define MAX_PATHS 512
#define MAX_PORTS 1024

struct path_rule {
	const char *path;
	uint64_t access;   /* wanted; masked by the ABI and the file type when added */
	int required;
};

struct port_list {
	int present;       /* the key was given: handle the right, even with no ports */
	int count;
	uint16_t ports[MAX_PORTS];
};

struct policy {
	int min_abi;       /* 0 until `abi=` is seen */
	int scope;
	int debug;
	int npaths;
	struct path_rule paths[MAX_PATHS];
	struct port_list connect, bind;
};

static struct policy policy; /* static: too big for the stack of a tiny helper */

static void bad_field(const char *key, const char *what, const char *got)
{
	die(EXIT_REFUSED, "policy field \"%s\": %s, got \"%s\"", key, what, got);
}

/* A whole decimal number in [lo, hi], or -1. */
static long parse_number(const char *s, long lo, long hi)
{
	char *end;
	long n;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (errno || *end || n < lo || n > hi)
		return -1;
	return n;
}

static int parse_flag(const char *key, const char *value)
{
	if (strcmp(value, "0") && strcmp(value, "1"))
		bad_field(key, "expected 0 or 1", value);
	return value[0] == '1';
}

/* Merge `path` into the table: a path named in several lists gets the union. */
static void add_path(const char *key, char *item, uint64_t access)
{
	int required = item[0] == '!';
	const char *path = item + required;
	int i;

	if (path[0] != '/')
		bad_field(key, "expected absolute paths", item);
	for (i = 0; i < policy.npaths; i++) {
		if (!strcmp(policy.paths[i].path, path)) {
			policy.paths[i].access |= access;
			policy.paths[i].required |= required;
			return;
		}
	}
	if (policy.npaths == MAX_PATHS)
		bad_field(key, "too many paths", item);
	policy.paths[policy.npaths++] = (struct path_rule){path, access, required};
}

/* `P1:P2:...`; empty items are ignored, as the policy writer does. */
static void parse_paths(const char *key, char *value, uint64_t access)
{
	char *item;

	while ((item = strsep(&value, ":")))
		if (*item)
			add_path(key, item, access);
}

/* `80,443`; an empty list still handles the right, so that every port is denied. */
static void parse_ports(const char *key, char *value, struct port_list *list)
{
	char *item;
	long port;

	list->present = 1;
	while ((item = strsep(&value, ","))) {
		if (!*item)
			continue;
		port = parse_number(item, 0, 65535);
		if (port < 0)
			bad_field(key, "expected TCP ports 0..65535", item);
		if (list->count == MAX_PORTS)
			bad_field(key, "too many ports", item);
		list->ports[list->count++] = (uint16_t)port;
	}
}

static void parse_field(char *field)
{
	char *value = strchr(field, '=');
	const char *key = field;

	if (!value)
		bad_field(field, "expected key=value", field);
	*value++ = '\0';

	if (!strcmp(key, "abi")) {
		long abi = parse_number(value, 1, ABI_CEILING);
		if (abi < 0)
			bad_field(key, "expected a Landlock ABI 1..7", value);
		policy.min_abi = (int)abi;
	} else if (!strcmp(key, "r")) {
		parse_paths(key, value, FS_READ);
	} else if (!strcmp(key, "x")) {
		parse_paths(key, value, FS_EXEC);
	} else if (!strcmp(key, "w")) {
		parse_paths(key, value, FS_WRITE);
	} else if (!strcmp(key, "d")) {
		parse_paths(key, value, FS_DEVICE);
	} else if (!strcmp(key, "tcp.connect")) {
		parse_ports(key, value, &policy.connect);
	} else if (!strcmp(key, "tcp.bind")) {
		parse_ports(key, value, &policy.bind);
	} else if (!strcmp(key, "scope")) {
		policy.scope = parse_flag(key, value);
	} else if (!strcmp(key, "debug")) {
		policy.debug = parse_flag(key, value);
	} else {
		bad_field(key, "unknown key (expected abi, r, x, w, d, tcp.connect, tcp.bind, scope "
			       "or debug)", value);
	}
}

/* Fields point into `text`, which must outlive the policy. */
static void parse_policy(char *text)
{
	char *field;

	while ((field = strsep(&text, ";")))
		if (*field)
			parse_field(field);
	if (!policy.min_abi)
		die(EXIT_REFUSED, "policy field \"abi\": missing (expected abi=1..7)");
}

/* ------------------------------------------------------------------ the kernel */

/* The host's Landlock ABI, capped at ABI_CEILING; never returns when Landlock is off. */
static int query_abi(void)
{
	long abi;
	int err;

#ifdef IRON_FAKE_NO_LANDLOCK
	/* Test build: behave as a kernel without Landlock, to prove the helper fails closed. */
	abi = -1;
	errno = ENOSYS;
#else
	abi = syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
#endif
	if (abi >= 0)
		return abi > ABI_CEILING ? ABI_CEILING : (int)abi;
	err = errno;
	/* EPERM: a seccomp profile older than Landlock denies the syscalls. */
	if (err == ENOSYS || err == EOPNOTSUPP || err == EPERM)
		die_errno(err, "Landlock is unavailable on this host (abi=%d required)",
			  policy.min_abi);
	die_errno(err, "cannot query the Landlock ABI");
}

/* All filesystem rights `abi` knows: rights a kernel does not know are rejected with EINVAL. */
static uint64_t fs_rights(int abi)
{
	uint64_t rights = FS_ALL;

	if (abi < 5)
		rights &= ~LANDLOCK_ACCESS_FS_IOCTL_DEV;
	if (abi < 3)
		rights &= ~LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi < 2)
		rights &= ~LANDLOCK_ACCESS_FS_REFER;
	return rights;
}

static uint64_t net_rights(int abi)
{
	uint64_t rights = 0;

	if (abi < 4)
		return 0;
	if (policy.connect.present)
		rights |= LANDLOCK_ACCESS_NET_CONNECT_TCP;
	if (policy.bind.present)
		rights |= LANDLOCK_ACCESS_NET_BIND_TCP;
	return rights;
}

static uint64_t scopes(int abi)
{
	if (abi < 6 || !policy.scope)
		return 0;
	return LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
}

/* The attr size the ABI knows: 8 bytes (fs), 16 (+net, ABI 4), 24 (+scoped, ABI 6).
 * The unused tail is zero either way, which every kernel accepts. */
static size_t attr_size(int abi)
{
	if (abi >= 6)
		return sizeof(struct ll_ruleset_attr);
	if (abi >= 4)
		return offsetof(struct ll_ruleset_attr, scoped);
	return offsetof(struct ll_ruleset_attr, handled_access_net);
}

static int create_ruleset(const struct ll_ruleset_attr *attr, int abi)
{
	long fd = syscall(__NR_landlock_create_ruleset, attr, attr_size(abi), 0U);

	if (fd < 0)
		die_errno(errno, "landlock_create_ruleset (fs=0x%llx net=0x%llx scoped=0x%llx)",
			  (unsigned long long)attr->handled_access_fs,
			  (unsigned long long)attr->handled_access_net,
			  (unsigned long long)attr->scoped);
	return (int)fd;
}

/* Opens `rule->path`; -1 when it is missing and not required (it is skipped). */
static int open_rule_path(const struct path_rule *rule)
{
	int fd = open(rule->path, O_PATH | O_CLOEXEC);
	int err = errno;

	if (fd >= 0)
		return fd;
	if (err == ENOENT && !rule->required)
		return -1;
	die_errno(err, "open %s%s", rule->required ? "required path " : "", rule->path);
}

/* The rights `rule` may carry on `fd`: only those handled, and only file rights on a non-directory. */
static uint64_t rule_rights(const struct path_rule *rule, int fd, uint64_t handled)
{
	struct stat st;
	uint64_t access = rule->access & handled;

	if (fstat(fd, &st) < 0)
		die_errno(errno, "fstat %s", rule->path);
	if (!S_ISDIR(st.st_mode))
		access &= FS_FILE_ONLY;
	return access;
}

static void add_path_rule(int ruleset, const struct path_rule *rule, uint64_t handled)
{
	struct ll_path_beneath_attr attr;
	int fd = open_rule_path(rule);

	if (fd < 0)
		return;
	attr.allowed_access = rule_rights(rule, fd, handled);
	attr.parent_fd = fd;
	/* No right left to grant (e.g. only directory rights on a file): nothing to add. */
	if (attr.allowed_access &&
	    syscall(__NR_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &attr, 0U) < 0)
		die_errno(errno, "landlock_add_rule %s (access=0x%llx)", rule->path,
			  (unsigned long long)attr.allowed_access);
	close(fd);
}

static void add_port_rules(int ruleset, const struct port_list *list, uint64_t right,
			   const char *key)
{
	struct ll_net_port_attr attr;
	int i;

	for (i = 0; i < list->count; i++) {
		attr.allowed_access = right;
		attr.port = list->ports[i];
		if (syscall(__NR_landlock_add_rule, ruleset, LANDLOCK_RULE_NET_PORT, &attr, 0U) < 0)
			die_errno(errno, "landlock_add_rule %s port %u", key, list->ports[i]);
	}
}

static void add_rules(int ruleset, const struct ll_ruleset_attr *attr)
{
	int i;

	for (i = 0; i < policy.npaths; i++)
		add_path_rule(ruleset, &policy.paths[i], attr->handled_access_fs);
	if (attr->handled_access_net & LANDLOCK_ACCESS_NET_CONNECT_TCP)
		add_port_rules(ruleset, &policy.connect, LANDLOCK_ACCESS_NET_CONNECT_TCP, "tcp.connect");
	if (attr->handled_access_net & LANDLOCK_ACCESS_NET_BIND_TCP)
		add_port_rules(ruleset, &policy.bind, LANDLOCK_ACCESS_NET_BIND_TCP, "tcp.bind");
}

/* With debug=1: which requested restrictions this kernel cannot give (iron decides what that means). */
static void report_missing(int abi)
{
	if (abi < 4 && policy.connect.present)
		fprintf(stderr, "iron-landlock: tcp.connect not enforced: needs Landlock ABI 4, host has %d\n",
			abi);
	if (abi < 4 && policy.bind.present)
		fprintf(stderr, "iron-landlock: tcp.bind not enforced: needs Landlock ABI 4, host has %d\n",
			abi);
	if (abi < 6 && policy.scope)
		fprintf(stderr, "iron-landlock: scope not enforced: needs Landlock ABI 6, host has %d\n",
			abi);
}

static void restrict_self(void)
{
	struct ll_ruleset_attr attr = {0};
	int abi, ruleset;

	/* Lets an unprivileged process restrict itself, and no setuid binary can undo it. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die_errno(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
	abi = query_abi();
	if (abi < policy.min_abi)
		die(EXIT_REFUSED, "Landlock ABI %d < required abi=%d", abi, policy.min_abi);

	/* A policy without paths is the network layer's alone: handling fs rights
	 * with no rule would deny even the exec of CMD. */
	attr.handled_access_fs = policy.npaths ? fs_rights(abi) : 0;
	attr.handled_access_net = net_rights(abi);
	attr.scoped = scopes(abi);
	ruleset = create_ruleset(&attr, abi);
	add_rules(ruleset, &attr);
	if (syscall(__NR_landlock_restrict_self, ruleset, 0U) < 0)
		die_errno(errno, "landlock_restrict_self");
	close(ruleset);

	if (policy.debug) {
		report_missing(abi);
		fprintf(stderr, "iron-landlock: enforced abi=%d fs=0x%llx net=0x%llx scoped=0x%llx\n", abi,
			(unsigned long long)attr.handled_access_fs,
			(unsigned long long)attr.handled_access_net, (unsigned long long)attr.scoped);
	}
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
	int err;

	if (argc < 4 || strcmp(argv[2], "--"))
		die(EXIT_REFUSED, "usage: iron-landlock POLICY -- CMD [ARGS...]");
	parse_policy(argv[1]);
	restrict_self();

	execvp(argv[3], argv + 3);
	err = errno;
	fprintf(stderr, "iron-landlock: exec %s: %s (%s)\n", argv[3], strerror(err), errno_name(err));
	return err == ENOENT ? EXIT_NOT_FOUND : EXIT_REFUSED;
}
