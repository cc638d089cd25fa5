/* loops: a syscall-heavy loop timed from inside a container.
 *
 *   loops getppid N   N getppid(2) calls
 *   loops open N      N open(2)+close(2) of /etc/passwd
 *
 * Prints the loop's own elapsed nanoseconds, so start-up costs do not count.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: loops getppid|open N\n");
        return 2;
    }
    long n = atol(argv[2]);
    int open_loop = strcmp(argv[1], "open") == 0;
    long long start = now_ns();
    for (long i = 0; i < n; i++) {
        if (open_loop) {
            int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                perror("open");
                return 1;
            }
            close(fd);
        } else {
            getppid();
        }
    }
    printf("%lld\n", now_ns() - start);
    return 0;
}
