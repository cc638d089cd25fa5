/*
 * iron-nethook: the OCI createRuntime hook that filters a container's network namespace.
 *
 *   iron-nethook --ruleset SCRIPT      (the OCI state JSON on stdin, as crun passes it)
 *
 * crun runs it after the container's namespaces exist and before the user process starts.
 * SCRIPT is the nft script iron rendered and checked at create (hooks/nft_ruleset.py); the
 * hook only puts it in place:
 *
 *   1. reads the container's pid from the state on stdin;
 *   2. opens /proc/PID/ns/net and refuses the host's namespace (pid 1's or its own: crun
 *      runs hooks in the runtime's namespaces), so iron never adds rules there;
 *   3. enters that namespace with setns(2);
 *   4. brings `lo` up (two ioctls; the engine's links and routes are never touched);
 *   5. loads SCRIPT with libnftables, the library behind `nft -f`, in one transaction.
 *
 * Any failure prints one line starting "iron network hook: " and exits non-zero, so crun
 * fails the container's creation. Written in C because it runs on every start of a
 * maximum container: a Python hook spent ~15 ms starting the interpreter and ~10 ms more
 * on imports and ctypes before doing ~4 ms of work. libnftables is opened with dlopen, so
 * building needs no nftables headers; its soname is part of the nftables package.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PREFIX "iron network hook: "
#define USAGE "usage: iron-nethook --ruleset SCRIPT  (OCI state JSON on stdin)"
#define LIBNFTABLES "libnftables.so.1"
#define MAX_STATE (1 << 20)
#define MAX_DEPTH 64

static void fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs(PREFIX, stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	_exit(code);
}

/* --- the pid from the OCI state: a small JSON reader that only skips what it does not need --- */

static const char *skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *skip_string(const char *p)
{
	for (p++; *p != '"'; p++) {
		if (*p == '\0' || (unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\' && *++p == '\0')
			return NULL;
	}
	return p + 1;
}

static const char *skip_value(const char *p, int depth);

/* An object or array after its opening bracket; returns past the closing one. */
static const char *skip_container(const char *p, char close, int depth)
{
	if (depth > MAX_DEPTH)
		return NULL;
	p = skip_space(p);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (close == '}') {
			if (*(p = skip_space(p)) != '"' || !(p = skip_string(p)) || *(p = skip_space(p)) != ':')
				return NULL;
			p++;
		}
		if (!(p = skip_value(p, depth + 1)))
			return NULL;
		p = skip_space(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *skip_value(const char *p, int depth)
{
	const char *start;

	p = skip_space(p);
	if (*p == '"')
		return skip_string(p);
	if (*p == '{' || *p == '[')
		return skip_container(p + 1, *p == '{' ? '}' : ']', depth);
	for (start = p; *p && strchr("0123456789+-.eEtrufalsn", *p); p++)
		;
	return p == start ? NULL : p;
}

/* The top-level "pid": a positive integer, given once. */
static long container_pid(const char *state)
{
	const char *p = skip_space(state), *key, *value = NULL, *end = NULL;
	long pid;
	char *stop;

	if (*p++ != '{')
		fail(1, "stdin is not the OCI state JSON (expected an object)");
	p = skip_space(p);
	while (*p != '}') {
		key = p;
		if (*p != '"' || !(p = skip_string(p)) || *(p = skip_space(p)) != ':')
			fail(1, "stdin is not the OCI state JSON");
		if (p - key >= 5 && strncmp(key, "\"pid\"", 5) == 0 && skip_space(key + 5) == p) {
			if (value)
				fail(1, "the OCI state on stdin names the container pid twice");
			value = skip_space(p + 1);
		}
		if (!(p = skip_value(p + 1, 1)))
			fail(1, "stdin is not the OCI state JSON");
		if (value && !end)
			end = p;
		p = skip_space(p);
		if (*p == ',')
			p = skip_space(p + 1);
		else if (*p != '}')
			fail(1, "stdin is not the OCI state JSON");
	}
	if (*skip_space(p + 1) != '\0')
		fail(1, "stdin is not the OCI state JSON (text after the object)");
	if (!value)
		fail(1, "the OCI state on stdin has no container pid");
	errno = 0;
	pid = strtol(value, &stop, 10);
	if (*value < '1' || *value > '9' || errno || stop != end || pid > INT_MAX)
		fail(1, "the OCI state on stdin has no container pid (got `%.*s`)", (int)(end - value > 40 ? 40 : end - value),
		     value);
	return pid;
}

static char *read_stdin(void)
{
	char *buf = malloc(MAX_STATE + 1);
	size_t len = 0;
	ssize_t n;

	if (!buf)
		fail(1, "out of memory");
	while ((n = read(0, buf + len, MAX_STATE + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail(1, "cannot read the OCI state from stdin: %s", strerror(errno));
		len += (size_t)n;
		if (len > MAX_STATE)
			fail(1, "the OCI state on stdin is larger than 1 MiB");
	}
	buf[len] = '\0';
	if (strlen(buf) != len)
		fail(1, "stdin is not the OCI state JSON (it holds a NUL byte)");
	return buf;
}

/* --- the namespace --- */

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static void enter_netns(long pid)
{
	char path[64];
	struct stat ns, host;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/ns/net", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail(1, "cannot open %s: %s (has the container process exited?)", path, strerror(errno));
	if (fstat(fd, &ns) != 0)
		fail(1, "cannot stat %s: %s", path, strerror(errno));
	if (stat("/proc/self/ns/net", &host) != 0)
		fail(1, "cannot stat /proc/self/ns/net: %s", strerror(errno));
	if (same_file(&ns, &host) || (stat("/proc/1/ns/net", &host) == 0 && same_file(&ns, &host)))
		fail(1, "container pid %ld is in the host network namespace (net:[%lu]); "
		     "iron never adds rules to the host namespace", pid, (unsigned long)ns.st_ino);
	if (setns(fd, CLONE_NEWNET) != 0)
		fail(1, "setns(CLONE_NEWNET) failed: %s", strerror(errno));
	close(fd);
}

static void loopback_up(void)
{
	struct ifreq ifr;
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (sock < 0)
		fail(1, "cannot bring lo up: socket(): %s", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0)
		fail(1, "cannot bring lo up in the container's network namespace: %s", strerror(errno));
	if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0)
			fail(1, "cannot bring lo up in the container's network namespace: %s", strerror(errno));
	}
	close(sock);
}

/* --- the ruleset --- */

struct nft_ctx;

struct libnftables {
	struct nft_ctx *(*ctx_new)(uint32_t flags);
	int (*buffer_output)(struct nft_ctx *ctx);
	int (*buffer_error)(struct nft_ctx *ctx);
	const char *(*get_error_buffer)(struct nft_ctx *ctx);
	int (*run_cmd_from_buffer)(struct nft_ctx *ctx, const char *buf);
};

static void *symbol(void *lib, const char *name)
{
	void *sym = dlsym(lib, name);

	if (!sym)
		fail(1, "cannot use " LIBNFTABLES " (no %s); install nftables (apt-get install nftables)", name);
	return sym;
}

/*
 * Closing an nftables netlink socket after a commit waits for the kernel to free the
 * transaction, an RCU grace period (5-30 ms on a small VM), and crun waits for the hook to
 * exit. The rules are in force once the commit is acknowledged, so that wait need not be
 * the container's: a child holding a copy of the socket, its stdio on /dev/null, waits for
 * this process to exit (EOF on a pipe only this process can write) and only then drops it.
 * If fork fails, this process closes the socket itself and only time is lost.
 */
static void release_after_exit(void)
{
	int pipefd[2], null;
	char byte;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return;
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return;
	}
	if (pid > 0) {
		close(pipefd[0]);        /* the write end stays open until this process exits */
		return;
	}
	close(pipefd[1]);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
	}
	while (read(pipefd[0], &byte, 1) < 0 && errno == EINTR)
		;
	_exit(0);
}

static void load_ruleset(const char *script)
{
	void *lib = dlopen(LIBNFTABLES, RTLD_NOW | RTLD_LOCAL);
	struct libnftables nft;
	struct nft_ctx *ctx;
	const char *err;
	size_t len;

	if (!lib)
		fail(1, "cannot use " LIBNFTABLES " (%s); install nftables (apt-get install nftables)", dlerror());
	nft.ctx_new = symbol(lib, "nft_ctx_new");
	nft.buffer_output = symbol(lib, "nft_ctx_buffer_output");
	nft.buffer_error = symbol(lib, "nft_ctx_buffer_error");
	nft.get_error_buffer = symbol(lib, "nft_ctx_get_error_buffer");
	nft.run_cmd_from_buffer = symbol(lib, "nft_run_cmd_from_buffer");
	/* after setns: the netlink socket stays in the namespace it was opened in */
	ctx = nft.ctx_new(0);
	if (!ctx)
		fail(1, LIBNFTABLES ": nft_ctx_new failed");
	if (nft.buffer_output(ctx) != 0 || nft.buffer_error(ctx) != 0)   /* nothing reaches crun's stdio */
		fail(1, LIBNFTABLES ": cannot buffer its output");
	if (nft.run_cmd_from_buffer(ctx, script) != 0) {
		err = nft.get_error_buffer(ctx);
		err = err ? err : "";
		while (*err == '\n' || *err == ' ')
			err++;
		len = strcspn(err, "\n");
		fail(1, LIBNFTABLES " refused the ruleset: %.*s", (int)len, len ? err : "no message");
	}
	release_after_exit();
}

int main(int argc, char **argv)
{
	const char *script = NULL;
	char *state;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ruleset") == 0 && i + 1 < argc)
			script = argv[++i];
		else if (strncmp(argv[i], "--ruleset=", 10) == 0)
			script = argv[i] + 10;
		else if (strcmp(argv[i], "--ruleset") == 0)
			fail(2, "--ruleset needs a value; " USAGE);
		else
			fail(2, "unknown argument `%.*s`; " USAGE, (int)strcspn(argv[i], "\n"), argv[i]);
	}
	if (!script)
		fail(2, "--ruleset is required; " USAGE);
	if (!*script)
		fail(2, "--ruleset is empty (it would load nothing); " USAGE);
	state = read_stdin();
	enter_netns(container_pid(state));
	loopback_up();
	load_ruleset(script);
	_exit(0);       /* no exit handlers: libnftables' socket is the child's to close */
}
