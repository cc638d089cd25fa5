/* loops: a syscall-heavy loop timed from inside a container.
 *
 *   loops getppid N [CPU]   N getppid(2) calls
 *   loops open N [CPU]      N open(2)+close(2) of /etc/passwd
 *
 * Prints the loop's own nanoseconds per iteration, so start-up costs do not count.
 * The N iterations run in BATCHES batches and the fastest batch is reported: on a
 * shared host other work only ever adds time, so the fastest batch is the loop's own
 * cost. CPU pins the loop to one CPU, so that runs being compared do not land on CPUs
 * of different speed (a VM's vCPUs often are).
 *
 * The open loop holds one more file open before each batch. Each open charges its
 * struct file to the container's memory cgroup through a per-CPU byte stock; with a
 * leftover of fewer bytes than one struct file in that stock, every open charges a
 * page and every close uncharges it again (some 500 ns more per iteration on a VM). Whether
 * a run starts like that depends on what the cgroup allocated before (loading a
 * seccomp filter is enough to flip it), so without this two runs differing in one
 * allocation compare the allocator's state, not the syscalls. A held file moves the
 * leftover, so most batches run without the ping-pong.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCHES 20

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0) {
        perror("sched_setaffinity");
        exit(1);
    }
}

static void open_close(long n)
{
    for (long i = 0; i < n; i++) {
        int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            perror("open");
            exit(1);
        }
        close(fd);
    }
}

static void call_getppid(long n)
{
    for (long i = 0; i < n; i++)
        getppid();
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4 || (strcmp(argv[1], "open") && strcmp(argv[1], "getppid"))) {
        fprintf(stderr, "usage: loops getppid|open N [CPU]\n");
        return 2;
    }
    void (*loop)(long) = strcmp(argv[1], "open") == 0 ? open_close : call_getppid;
    long per_batch = atol(argv[2]) / BATCHES;
    if (per_batch < 1)
        per_batch = 1;
    if (argc == 4)
        pin(atoi(argv[3]));
    long long best = -1;
    for (int b = 0; b < BATCHES; b++) {
        if (loop == open_close && b > 0 && open("/etc/passwd", O_RDONLY | O_CLOEXEC) < 0) {
            perror("open");
            return 1;
        }
        long long start = now_ns();
        loop(per_batch);
        long long took = now_ns() - start;
        if (best < 0 || took < best)
            best = took;
    }
    printf("%.1f\n", (double)best / per_batch);
    return 0;
}
