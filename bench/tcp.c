/*
 * tcp: the two ends of bench.py's throughput section, built static there.
 *
 *   tcp sink PORT            accept connections one at a time on 0.0.0.0:PORT; read each to
 *                            EOF, then close it. Prints "ready" once listening.
 *   tcp send ADDR PORT MIB   connect to ADDR:PORT, write MIB MiB, shut down writing and wait
 *                            until the sink closes (it has read everything); print the
 *                            nanoseconds from before connect to that close.
 *
 * IPv4 only: bench.py runs both ends in network namespaces of its own.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (128 * 1024)

static char buf[CHUNK];

static _Noreturn void die(const char *what, const char *detail)
{
	fprintf(stderr, "tcp: %s %s: %s\n", what, detail, strerror(errno));
	exit(1);
}

static struct sockaddr_in address(const char *addr, const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(port)) };

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "tcp: `%s` is not an IPv4 address\n", addr);
		exit(2);
	}
	return sa;
}

static void drain(int fd)
{
	ssize_t n;

	while ((n = read(fd, buf, sizeof buf)) != 0)
		if (n < 0 && errno != EINTR)
			die("read", "from the peer");
}

static int sink(const char *port)
{
	struct sockaddr_in sa = address("0.0.0.0", port);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		die("socket", "for the sink");
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4) < 0)
		die("bind/listen on port", port);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

		if (conn < 0) {
			if (errno == EINTR)
				continue;
			die("accept on port", port);
		}
		drain(conn);
		close(conn);
	}
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int send_stream(const char *addr, const char *port, const char *mib)
{
	struct sockaddr_in sa = address(addr, port);
	long long left = atoll(mib) << 20;
	long long start = now_ns();
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect to", addr);
	memset(buf, 'i', sizeof buf);
	while (left > 0) {
		ssize_t n = write(fd, buf, left < CHUNK ? (size_t)left : CHUNK);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("write to", addr);
		}
		left -= n;
	}
	if (shutdown(fd, SHUT_WR) < 0)
		die("shutdown to", addr);
	drain(fd);
	printf("%lld\n", now_ns() - start);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "sink") == 0)
		return sink(argv[2]);
	if (argc == 5 && strcmp(argv[1], "send") == 0)
		return send_stream(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: tcp sink PORT | tcp send ADDR PORT MIB\n");
	return 2;
}
