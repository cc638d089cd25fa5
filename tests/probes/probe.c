/*
 * iron-probe — threat probes run inside test containers.
 *
 *   iron-probe NAME [ARGS...]   run one probe
 *   iron-probe list             print the probe names, one a line
 *   iron-probe help             print the names with their arguments
 *
 * Every probe prints exactly one JSON line on stdout and exits 0:
 *
 *   {"probe":"NAME","outcome":"blocked"|"allowed"|"error","errno":"EPERM"|null,"detail":"..."}
 *
 *   blocked  the kernel refused with an errno a security layer gives (see each probe)
 *   allowed  the call reached the kernel's real implementation: it succeeded, or it
 *            failed in an argument check that comes after the permission check
 *   error    the probe could not tell (bad arguments, setup failed, odd result)
 *
 * A probe killed by a signal prints nothing; the harness sees the signal.
 *
 * Probes are safe when allowed: the arguments are chosen so that a call that passes
 * its permission check fails right after it (bad magic, missing path, invalid flag
 * combination), and anything created is removed again.  x86_64 only: syscalls go
 * through syscall(2) with the numbers below.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <linux/if_alg.h>
#include <linux/if_ether.h>
#include <linux/io_uring.h>
#include <linux/kcmp.h>
#include <linux/keyctl.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/vm_sockets.h>

#if !defined(__x86_64__)
#error "iron-probe uses x86_64 syscall numbers"
#endif

/* ---- syscall numbers (x86_64) that older headers may lack ---------------------- */

#ifndef SYS_kcmp
#define SYS_kcmp 312
#endif
#ifndef SYS_finit_module
#define SYS_finit_module 313
#endif
#ifndef SYS_userfaultfd
#define SYS_userfaultfd 323
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* clone3's argument, as the kernel defines it (version 0 size: 64 bytes). */
struct probe_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

#define MISSING_PATH "/nonexistent-iron-probe"

/* ---- errno sets ----------------------------------------------------------------- */

/* Kernel capability and seccomp refusals.  ENOSYS counts: seccomp profiles often
 * answer denied syscalls with it, and a syscall the kernel lacks cannot be abused. */
static const int PRIV_BLOCKED[] = {EPERM, EACCES, ENOSYS, 0};
/* socket(): only a permission refusal is a block (EAFNOSUPPORT is the kernel's own answer). */
static const int SOCK_BLOCKED[] = {EPERM, EACCES, 0};
/* Landlock, DAC, read-only mounts, Landlock's REFER right. */
static const int FS_BLOCKED[] = {EACCES, EPERM, EROFS, EXDEV, 0};
/* nftables drops (EPERM on local output), Landlock TCP (EACCES), no route. */
static const int NET_BLOCKED[] = {EPERM, EACCES, ENETUNREACH, EHOSTUNREACH, 0};
static const int KILL_BLOCKED[] = {ESRCH, EPERM, 0};

static bool errno_in(int err, const int *set)
{
    for (; *set; set++)
        if (*set == err)
            return true;
    return false;
}

static const char *errname(int err)
{
    static char unknown[16];
    const char *name = strerrorname_np(err);
    if (name)
        return name;
    snprintf(unknown, sizeof unknown, "E%d", err);
    return unknown;
}

/* ---- reporting: one JSON line ------------------------------------------------------ */

static const char *g_probe = "?";
static bool g_reported;

/* A growing detail string; silently truncated at its size. */
struct text {
    char s[2048];
    size_t n;
};

static void textf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void textf(struct text *t, const char *fmt, ...)
{
    if (t->n >= sizeof t->s - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(t->s + t->n, sizeof t->s - t->n, fmt, ap);
    va_end(ap);
    if (w > 0)
        t->n = (size_t)w < sizeof t->s - t->n ? t->n + (size_t)w : sizeof t->s - 1;
}

/* Bytes that are not printable ASCII become \u00XX, so the line is always valid JSON. */
static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

/* err == 0 prints "errno":null.  Only the first report of a run is printed. */
static int report(const char *outcome, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int report(const char *outcome, int err, const char *fmt, ...)
{
    if (g_reported)
        return 0;
    g_reported = true;
    char detail[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    fputs("{\"probe\":", stdout);
    json_string(stdout, g_probe);
    printf(",\"outcome\":\"%s\",\"errno\":", outcome);
    if (err)
        json_string(stdout, errname(err));
    else
        fputs("null", stdout);
    fputs(",\"detail\":", stdout);
    json_string(stdout, detail);
    fputs("}\n", stdout);
    fflush(stdout);
    return 0;
}

#define ALLOWED(err, ...) report("allowed", (err), __VA_ARGS__)
#define BLOCKED(err, ...) report("blocked", (err), __VA_ARGS__)
#define ERROR(err, ...) report("error", (err), __VA_ARGS__)

/* ---- attempts: one kernel call and what came of it ------------------------------ */

struct attempt {
    const char *what;
    long rc;       /* the call's result; < 0 means it failed with err */
    int err;
    int sig;       /* a call made in a child: the signal that killed the child */
    int setup_err; /* the probe could not make the call (pipe, fork, ...) */
};

enum result { R_ALLOWED, R_BLOCKED, R_ERROR };

static struct attempt attempt_of(const char *what, long rc)
{
    struct attempt a = {.what = what, .rc = rc, .err = rc < 0 ? errno : 0};
    return a;
}

/* TRY("name", call) runs the call with errno cleared and records rc and errno. */
#define TRY(what, expr) attempt_of((what), (errno = 0, (long)(expr)))

/* For calls that return a file descriptor: close it when the call succeeded. */
static struct attempt closing(struct attempt a)
{
    if (a.rc >= 0)
        close((int)a.rc);
    return a;
}

static enum result classify(const struct attempt *a, const int *blocked)
{
    if (a->setup_err || (a->sig && a->sig != SIGSYS))
        return R_ERROR;
    if (a->sig == SIGSYS)
        return R_BLOCKED; /* seccomp's kill action */
    if (a->rc >= 0)
        return R_ALLOWED;
    return errno_in(a->err, blocked) ? R_BLOCKED : R_ALLOWED;
}

static void describe(struct text *t, const struct attempt *a, const int *blocked)
{
    textf(t, "%s%s: ", t->n ? "; " : "", a->what);
    if (a->setup_err)
        textf(t, "setup failed: %s", errname(a->setup_err));
    else if (a->sig)
        textf(t, "child killed by %s", sigabbrev_np(a->sig) ? sigabbrev_np(a->sig) : "signal");
    else if (a->rc >= 0)
        textf(t, "succeeded (%ld)", a->rc);
    else if (a->err == ENOSYS && errno_in(ENOSYS, blocked))
        textf(t, "refused with ENOSYS (seccomp, or this kernel lacks the call)");
    else if (errno_in(a->err, blocked))
        textf(t, "refused with %s", errname(a->err));
    else
        textf(t, "%s, past the permission check", errname(a->err));
}

/*
 * The verdict over a probe's attempts: error if any attempt could not be judged,
 * allowed if any one got through, blocked only when every one was refused.
 * The errno reported is that of the first attempt with the deciding result.
 */
static int verdict(const struct attempt *as, int n, const int *blocked, const char *note)
{
    static const char *names[] = {"allowed", "blocked", "error"};
    enum result worst = R_BLOCKED;
    struct text t = {0};
    for (int i = 0; i < n; i++) {
        enum result r = classify(&as[i], blocked);
        if (r == R_ERROR || (r == R_ALLOWED && worst == R_BLOCKED))
            worst = r;
        describe(&t, &as[i], blocked);
    }
    int err = 0;
    for (int i = 0; i < n; i++)
        if (classify(&as[i], blocked) == worst) {
            err = as[i].setup_err ? as[i].setup_err : as[i].sig ? 0 : as[i].rc < 0 ? as[i].err : 0;
            break;
        }
    if (note)
        textf(&t, " (%s)", note);
    return report(names[worst], err, "%s", t.s);
}

static int verdict1(struct attempt a, const int *blocked, const char *note)
{
    return verdict(&a, 1, blocked, note);
}

/* ---- children --------------------------------------------------------------------- */

/* A child that waits to be killed, and dies with its parent if the probe is killed. */
static pid_t spawn_sleeper(void)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        for (;;)
            pause();
    }
    return pid;
}

static void reap(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

struct child_result {
    long rc;
    int err;
};

/* Runs fn in a forked child (so namespaces and privilege levels it changes die with
 * the child) and brings back its result through a pipe. */
static struct attempt attempt_in_child(const char *what, long (*fn)(void *), void *arg)
{
    struct attempt a = {.what = what, .rc = -1};
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        a.setup_err = errno;
        return a;
    }
    pid_t pid = fork();
    if (pid < 0) {
        a.setup_err = errno;
        close(p[0]);
        close(p[1]);
        return a;
    }
    if (pid == 0) {
        close(p[0]);
        errno = 0;
        struct child_result r = {.rc = fn(arg)};
        r.err = r.rc < 0 ? errno : 0;
        if (write(p[1], &r, sizeof r) != sizeof r)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    struct child_result r;
    ssize_t got = read(p[0], &r, sizeof r);
    close(p[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got == (ssize_t)sizeof r) {
        a.rc = r.rc;
        a.err = r.err;
    } else if (WIFSIGNALED(status)) {
        a.sig = WTERMSIG(status);
    } else {
        a.setup_err = EPIPE;
    }
    return a;
}

/* ---- arguments -------------------------------------------------------------------- */

struct args {
    int n;
    char **v;
};

static const char *arg_str(const struct args *a, int i, const char *def)
{
    return i < a->n ? a->v[i] : def;
}

/* An integer argument in [min, max]; reports an error and returns false when bad. */
static bool arg_long(const struct args *a, int i, long def, long min, long max, long *out)
{
    if (i >= a->n) {
        *out = def;
        return true;
    }
    char *end;
    errno = 0;
    long v = strtol(a->v[i], &end, 10);
    if (errno || end == a->v[i] || *end || v < min || v > max) {
        ERROR(0, "argument %d: expected an integer from %ld to %ld, got \"%s\"", i + 1, min, max, a->v[i]);
        return false;
    }
    *out = v;
    return true;
}

static bool arg_required(const struct args *a, int count, const char *usage)
{
    if (a->n >= count)
        return true;
    ERROR(0, "usage: %s %s", g_probe, usage);
    return false;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ======================================================================================
 * Layer 1: resources
 * ==================================================================================== */

static int probe_forkbomb(const struct args *a)
{
    long limit;
    if (!arg_long(a, 0, 100000, 1, 10000000, &limit))
        return 0;
    pid_t *kids = calloc((size_t)limit, sizeof *kids);
    if (!kids) {
        ERROR(ENOMEM, "cannot allocate the child table");
        return 0;
    }
    long made = 0;
    int err = 0;
    while (made < limit) {
        pid_t pid = spawn_sleeper();
        if (pid < 0) {
            err = errno;
            break;
        }
        kids[made++] = pid;
    }
    for (long i = 0; i < made; i++)
        kill(kids[i], SIGKILL);
    for (long i = 0; i < made; i++)
        while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
            ;
    free(kids);
    if (made == limit)
        return ALLOWED(0, "%ld forks succeeded", made);
    else if (err == EAGAIN)
        return BLOCKED(err, "pids limit after %ld forks", made);
    else
        return ERROR(err, "fork failed after %ld forks", made);
}

static int probe_memhog(const struct args *a)
{
    long mib;
    if (!arg_long(a, 0, 4096, 1, 1L << 24, &mib))
        return 0;
    const size_t chunk = 16UL << 20;
    long held = 0;
    while (held < mib) {
        char *p = malloc(chunk);
        if (!p) {
            BLOCKED(ENOMEM, "allocation failed after %ld MiB", held);
            return 0;
        }
        memset(p, 0xa5, chunk); /* touch every page; never freed */
        held += 16;
    }
    return ALLOWED(0, "touched %ld MiB", held);
}

static atomic_bool g_spin_stop;

static void *spin(void *unused)
{
    (void)unused;
    volatile unsigned long x = 0;
    while (!atomic_load_explicit(&g_spin_stop, memory_order_relaxed))
        x++;
    return NULL;
}

static int probe_cpuhog(const struct args *a)
{
    long seconds, threads;
    if (!arg_long(a, 0, 3, 1, 3600, &seconds) || !arg_long(a, 1, 2, 1, 1024, &threads))
        return 0;
    pthread_t tid[1024];
    long started = 0;
    double t0 = now_seconds();
    for (; started < threads; started++) {
        int rc = pthread_create(&tid[started], NULL, spin, NULL);
        if (rc) {
            atomic_store(&g_spin_stop, true);
            for (long i = 0; i < started; i++)
                pthread_join(tid[i], NULL);
            ERROR(rc, "pthread_create failed after %ld threads", started);
            return 0;
        }
    }
    struct timespec ts = {.tv_sec = seconds};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    atomic_store(&g_spin_stop, true);
    for (long i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    double wall = now_seconds() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return ALLOWED(0, "cpu_seconds=%.3f wall_seconds=%.3f threads=%ld", cpu, wall, threads);
}

/* ======================================================================================
 * Layers 1+2: privileged syscalls
 * ==================================================================================== */

static long traceme(void *unused)
{
    (void)unused;
    return syscall(SYS_ptrace, PTRACE_TRACEME, 0, NULL, NULL);
}

static int probe_ptrace(const struct args *a)
{
    (void)a;
    pid_t child = spawn_sleeper();
    if (child < 0) {
        ERROR(errno, "fork failed");
        return 0;
    }
    struct attempt as[2];
    as[0] = TRY("PTRACE_ATTACH to a child", syscall(SYS_ptrace, PTRACE_ATTACH, child, NULL, NULL));
    if (as[0].rc >= 0) {
        waitpid(child, NULL, __WALL);
        syscall(SYS_ptrace, PTRACE_DETACH, child, NULL, NULL);
    }
    reap(child);
    as[1] = attempt_in_child("PTRACE_TRACEME", traceme, NULL);
    return verdict(as, 2, PRIV_BLOCKED, NULL);
}

/* A fresh empty directory to mount on: /tmp, then /dev/shm, then an existing /mnt. */
static bool mount_target(char *dir, size_t cap, bool *made)
{
    static const char *bases[] = {"/tmp", "/dev/shm"};
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) {
        snprintf(dir, cap, "%s/iron-probe-mnt-XXXXXX", bases[i]);
        if (mkdtemp(dir)) {
            *made = true;
            return true;
        }
    }
    struct stat st;
    if (stat("/mnt", &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(dir, cap, "/mnt");
        *made = false;
        return true;
    }
    return false;
}

static int probe_mount(const struct args *a)
{
    (void)a;
    char dir[64];
    bool made;
    if (!mount_target(dir, sizeof dir, &made)) {
        ERROR(errno, "no directory to mount on (/tmp, /dev/shm, /mnt)");
        return 0;
    }
    struct attempt at = TRY("mount tmpfs", syscall(SYS_mount, "none", dir, "tmpfs", 0UL, NULL));
    if (at.rc >= 0)
        syscall(SYS_umount2, dir, MNT_DETACH);
    if (made)
        rmdir(dir);
    return verdict1(at, PRIV_BLOCKED, dir);
}

static int probe_umount(const struct args *a)
{
    (void)a;
    /* MNT_EXPIRE with MNT_DETACH is rejected with EINVAL after the permission check. */
    return verdict1(TRY("umount2(\"/\", MNT_EXPIRE|MNT_DETACH)",
                        syscall(SYS_umount2, "/", MNT_EXPIRE | MNT_DETACH)),
             PRIV_BLOCKED, "invalid flag pair: nothing is unmounted");
}

static int probe_reboot(const struct args *a)
{
    (void)a;
    /* The magic numbers are checked right after CAP_SYS_BOOT; a bad magic2 stops there. */
    return verdict1(TRY("reboot", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, 0, LINUX_REBOOT_CMD_CAD_OFF,
                                          NULL)),
             PRIV_BLOCKED, "bad magic2: nothing happens");
}

static int probe_kexec_load(const struct args *a)
{
    (void)a;
    /* 0xdeadbeef names no architecture: EINVAL after the CAP_SYS_BOOT check. */
    return verdict1(TRY("kexec_load", syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0xdeadbeefUL)), PRIV_BLOCKED,
             "invalid flags: nothing is loaded");
}

static int probe_init_module(const struct args *a)
{
    (void)a;
    struct attempt as[2] = {
        TRY("init_module(NULL, 0)", syscall(SYS_init_module, NULL, 0UL, "")),
        TRY("finit_module(-1)", syscall(SYS_finit_module, -1, "", 0)),
    };
    return verdict(as, 2, PRIV_BLOCKED, "empty image and bad fd: nothing is loaded");
}

static long do_unshare(void *flags)
{
    return syscall(SYS_unshare, (long)(intptr_t)flags);
}

static int unshare_probe(const char *what, long flags)
{
    return verdict1(attempt_in_child(what, do_unshare, (void *)(intptr_t)flags), PRIV_BLOCKED, "in a child");
}

#define UNSHARE_PROBE(fn, flag) \
    static int fn(const struct args *a) { (void)a; return unshare_probe("unshare(" #flag ")", flag); }
UNSHARE_PROBE(probe_unshare_user, CLONE_NEWUSER)
UNSHARE_PROBE(probe_unshare_net, CLONE_NEWNET)
UNSHARE_PROBE(probe_unshare_mnt, CLONE_NEWNS)

static const struct {
    const char *name;
    long flag;
} NS_FLAGS[] = {
    {"user", CLONE_NEWUSER}, {"ns", CLONE_NEWNS},   {"mnt", CLONE_NEWNS},   {"net", CLONE_NEWNET},
    {"pid", CLONE_NEWPID},   {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"cgroup", CLONE_NEWCGROUP},
};

static int probe_clone_newns(const struct args *a)
{
    const char *kind = arg_str(a, 0, "user");
    long flag = 0;
    for (size_t i = 0; i < sizeof NS_FLAGS / sizeof *NS_FLAGS; i++)
        if (strcmp(kind, NS_FLAGS[i].name) == 0)
            flag = NS_FLAGS[i].flag;
    if (!flag) {
        ERROR(0, "unknown namespace \"%s\": user, ns, net, pid, ipc, uts or cgroup", kind);
        return 0;
    }
    char what[48];
    snprintf(what, sizeof what, "clone(CLONE_NEW%s)", kind);
    for (char *p = what + 15; *p && *p != ')'; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    /* Raw clone without CLONE_VM: the child runs on a copy of this stack, like fork. */
    struct attempt at = TRY(what, syscall(SYS_clone, flag | SIGCHLD, 0UL, NULL, NULL, 0UL));
    if (at.rc == 0)
        syscall(SYS_exit_group, 0);
    if (at.rc > 0)
        waitpid((pid_t)at.rc, NULL, 0);
    return verdict1(at, PRIV_BLOCKED, NULL);
}

static int probe_setns(const struct args *a)
{
    (void)a;
    int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ERROR(errno, "open /proc/self/ns/net failed");
        return 0;
    }
    struct attempt at = TRY("setns(own netns, CLONE_NEWNET)", syscall(SYS_setns, fd, CLONE_NEWNET));
    close(fd);
    return verdict1(at, PRIV_BLOCKED, NULL);
}

static int probe_keyctl(const struct args *a)
{
    (void)a;
    struct attempt as[2] = {
        TRY("keyctl(KEYCTL_GET_KEYRING_ID)",
            syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)),
        TRY("add_key(process keyring)",
            syscall(SYS_add_key, "user", "iron-probe", "x", 1UL, KEY_SPEC_PROCESS_KEYRING)),
    };
    return verdict(as, 2, PRIV_BLOCKED, "the process keyring dies with the probe");
}

static int probe_bpf(const struct args *a)
{
    (void)a;
    /* A valid one-entry array map: a zeroed attr fails its type check (EINVAL) before
     * the privilege check, so it could not tell a block from an allow. */
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    return verdict1(closing(TRY("bpf(BPF_MAP_CREATE)", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr))),
             PRIV_BLOCKED, NULL);
}

static int probe_perf_event_open(const struct args *a)
{
    (void)a;
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.size = sizeof attr;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.disabled = 1;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    return verdict1(closing(TRY("perf_event_open(SW_CPU_CLOCK, self)",
                         syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC))),
             PRIV_BLOCKED, NULL);
}

static int probe_io_uring(const struct args *a)
{
    (void)a;
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    return verdict1(closing(TRY("io_uring_setup(1)", syscall(SYS_io_uring_setup, 1, &params))), PRIV_BLOCKED,
                    NULL);
}

static int probe_userfaultfd(const struct args *a)
{
    (void)a;
    return verdict1(closing(TRY("userfaultfd(O_CLOEXEC)", syscall(SYS_userfaultfd, O_CLOEXEC))), PRIV_BLOCKED,
                    NULL);
}

static int probe_open_by_handle_at(const struct args *a)
{
    (void)a;
    struct {
        unsigned int handle_bytes;
        int handle_type;
        unsigned char f_handle[8];
    } handle = {.handle_bytes = 8, .handle_type = 1, .f_handle = {0xde, 0xad, 0xbe, 0xef}};
    return verdict1(closing(TRY("open_by_handle_at(bogus handle)",
                         syscall(SYS_open_by_handle_at, AT_FDCWD, &handle, O_RDONLY | O_CLOEXEC))),
             PRIV_BLOCKED, NULL);
}

static int wait_ok(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

static int probe_clone3(const struct args *a)
{
    (void)a;
    struct probe_clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.exit_signal = SIGCHLD;
    /* No CLONE_VM and no stack: the child runs on a copy of this stack, like fork. */
    struct attempt at = TRY("clone3", syscall(SYS_clone3, &ca, sizeof ca));
    if (at.rc == 0)
        syscall(SYS_exit_group, 0);
    if (at.rc > 0)
        wait_ok((pid_t)at.rc);
    pthread_t tid;
    int perr = pthread_create(&tid, NULL, spin, NULL);
    if (!perr) {
        atomic_store(&g_spin_stop, true);
        pthread_join(tid, NULL);
    }
    const char *clone3_said = at.rc >= 0 ? "clone3 succeeded" : errname(at.err);
    if (perr)
        return ERROR(perr, "clone3: %s; pthread_create failed: %s", clone3_said, errname(perr));
    else if (at.rc < 0 && at.err == ENOSYS)
        return BLOCKED(ENOSYS, "clone3: ENOSYS; fallback ok");
    else
        return ALLOWED(at.rc < 0 ? at.err : 0, "clone3: %s; pthread_create ok", clone3_said);
}

static int probe_personality(const struct args *a)
{
    (void)a;
    long old = syscall(SYS_personality, 0xffffffffUL);
    struct attempt at = TRY("personality(ADDR_NO_RANDOMIZE)",
                            syscall(SYS_personality, (unsigned long)(old < 0 ? 0 : old) | ADDR_NO_RANDOMIZE));
    if (at.rc >= 0 && old >= 0)
        syscall(SYS_personality, (unsigned long)old);
    return verdict1(at, PRIV_BLOCKED, NULL);
}

static int probe_vmsplice(const struct args *a)
{
    (void)a;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        ERROR(errno, "pipe failed");
        return 0;
    }
    static char page[1] = {'x'};
    struct iovec iov = {.iov_base = page, .iov_len = sizeof page};
    struct attempt at = TRY("vmsplice into a pipe", syscall(SYS_vmsplice, p[1], &iov, 1UL, 0U));
    close(p[0]);
    close(p[1]);
    return verdict1(at, PRIV_BLOCKED, NULL);
}

static volatile long g_marker = 0x1e0c0de;

/* Probes that act on a sleeping child: process_vm_readv, kcmp, pidfd_getfd. */
static int probe_process_vm_readv(const struct args *a)
{
    (void)a;
    pid_t child = spawn_sleeper();
    if (child < 0) {
        ERROR(errno, "fork failed");
        return 0;
    }
    long value = 0;
    struct iovec local = {.iov_base = &value, .iov_len = sizeof value};
    struct iovec remote = {.iov_base = (void *)&g_marker, .iov_len = sizeof value};
    struct attempt at = TRY("process_vm_readv(child)",
                            syscall(SYS_process_vm_readv, child, &local, 1UL, &remote, 1UL, 0UL));
    reap(child);
    return verdict1(at, PRIV_BLOCKED, NULL);
}

static int probe_kcmp(const struct args *a)
{
    (void)a;
    pid_t child = spawn_sleeper();
    if (child < 0) {
        ERROR(errno, "fork failed");
        return 0;
    }
    struct attempt at = TRY("kcmp(self, child, KCMP_FILE)",
                            syscall(SYS_kcmp, getpid(), child, KCMP_FILE, 0UL, 0UL));
    reap(child);
    return verdict1(at, PRIV_BLOCKED, NULL);
}

static int probe_pidfd_getfd(const struct args *a)
{
    (void)a;
    pid_t child = spawn_sleeper();
    if (child < 0) {
        ERROR(errno, "fork failed");
        return 0;
    }
    struct attempt as[2];
    int n = 1;
    as[0] = TRY("pidfd_open(child)", syscall(SYS_pidfd_open, child, 0U));
    if (as[0].rc >= 0) {
        as[1] = closing(TRY("pidfd_getfd(child, 0)", syscall(SYS_pidfd_getfd, (int)as[0].rc, 0, 0U)));
        close((int)as[0].rc);
        n = 2;
    }
    reap(child);
    /* pidfd_open on one's own child is unprivileged: judge by pidfd_getfd when it ran. */
    if (n == 2)
        return verdict(&as[1], 1, PRIV_BLOCKED, "pidfd_open succeeded");
    else
        return verdict(as, 1, PRIV_BLOCKED, NULL);
}

static int probe_pivot_root(const struct args *a)
{
    (void)a;
    /* may_mount() is checked before the paths are looked up; a missing new_root stops it. */
    return verdict1(TRY("pivot_root(" MISSING_PATH ", /)", syscall(SYS_pivot_root, MISSING_PATH, "/")),
             PRIV_BLOCKED, "missing new_root: nothing moves");
}

static int probe_swapon(const struct args *a)
{
    (void)a;
    return verdict1(TRY("swapon(" MISSING_PATH ")", syscall(SYS_swapon, MISSING_PATH, 0)), PRIV_BLOCKED,
             "missing file: nothing is swapped on");
}

static long do_chroot(void *unused)
{
    (void)unused;
    return syscall(SYS_chroot, "/");
}

static int probe_chroot(const struct args *a)
{
    (void)a;
    return verdict1(attempt_in_child("chroot(\"/\")", do_chroot, NULL), PRIV_BLOCKED, "in a child");
}

static long do_iopl(void *unused)
{
    (void)unused;
    return syscall(SYS_iopl, 3);
}

static int probe_iopl(const struct args *a)
{
    (void)a;
    return verdict1(attempt_in_child("iopl(3)", do_iopl, NULL), PRIV_BLOCKED, "in a child");
}

static int probe_syslog(const struct args *a)
{
    (void)a;
    return verdict1(TRY("syslog(SYSLOG_ACTION_SIZE_BUFFER)", syscall(SYS_syslog, 10, NULL, 0)), PRIV_BLOCKED,
                    NULL);
}

static int probe_signal(const struct args *a)
{
    long pid;
    if (!arg_required(a, 1, "PID") || !arg_long(a, 0, 0, INT_MIN, INT_MAX, &pid))
        return 0;
    return verdict1(TRY("kill(PID, 0)", syscall(SYS_kill, (pid_t)pid, 0)), KILL_BLOCKED, NULL);
}

/* ---- socket families ------------------------------------------------------------- */

static int socket_probe(const char *what, int domain, int type, int protocol)
{
    return verdict1(closing(TRY(what, socket(domain, type | SOCK_CLOEXEC, protocol))), SOCK_BLOCKED, NULL);
}

#define SOCKET_PROBE(fn, domain, type, proto) \
    static int fn(const struct args *a) \
    { \
        (void)a; \
        return socket_probe("socket(" #domain ", " #type ", " #proto ")", domain, type, proto); \
    }
SOCKET_PROBE(probe_raw_socket, AF_INET, SOCK_RAW, IPPROTO_ICMP)
SOCKET_PROBE(probe_packet_socket, AF_PACKET, SOCK_RAW, 0)
SOCKET_PROBE(probe_alg_socket, AF_ALG, SOCK_SEQPACKET, 0)
SOCKET_PROBE(probe_vsock_socket, AF_VSOCK, SOCK_STREAM, 0)
SOCKET_PROBE(probe_netlink_route, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)
SOCKET_PROBE(probe_netlink_audit, AF_NETLINK, SOCK_RAW, NETLINK_AUDIT)

/* ======================================================================================
 * Layer 3: filesystem
 * ==================================================================================== */

/* err == 0: allowed; a refusal errno: blocked; anything else: the probe could not tell. */
static int fs_verdict(int err, const char *what, const char *path, const char *ok_detail)
{
    if (!err)
        return ALLOWED(0, "%s", ok_detail);
    else if (errno_in(err, FS_BLOCKED))
        return BLOCKED(err, "%s %s: refused with %s", what, path, errname(err));
    else
        return ERROR(err, "%s %s: %s", what, path, errname(err));
}

static void join_path(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s.%d", dir, name, (int)getpid());
}

static int probe_write_file(const struct args *a)
{
    const char *path = arg_str(a, 0, "/usr/iron-probe");
    struct stat st;
    if (lstat(path, &st) < 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            return fs_verdict(errno, "create", path, NULL);
        int err = write(fd, "x", 1) == 1 ? 0 : errno;
        close(fd);
        unlink(path);
        return fs_verdict(err, "write", path, "created and wrote 1 byte (removed again)");
    }
    /* An existing file: write back its own first byte, so its contents do not change. */
    char first;
    int rfd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    bool have = rfd >= 0 && S_ISREG(st.st_mode) && pread(rfd, &first, 1, 0) == 1;
    if (rfd >= 0)
        close(rfd);
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return fs_verdict(errno, "open O_WRONLY", path, NULL);
    int err = have && pwrite(fd, &first, 1, 0) != 1 ? errno : 0;
    close(fd);
    return fs_verdict(err, "write", path,
               have ? "opened an existing file for writing and rewrote its first byte unchanged"
                    : "opened an existing file for writing (nothing written)");
}

static int probe_read_file(const struct args *a)
{
    const char *path = arg_str(a, 0, "/root/secret");
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return fs_verdict(errno, "open O_RDONLY", path, NULL);
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    int err = n < 0 ? errno : 0;
    close(fd);
    char ok[96];
    snprintf(ok, sizeof ok, "read %zd bytes", n);
    return fs_verdict(err, "read", path, ok);
}

static int probe_truncate_file(const struct args *a)
{
    const char *path = arg_str(a, 0, "/etc/hostname");
    enum { MAX_BACKUP = 1 << 20 };
    struct stat st;
    if (stat(path, &st) < 0)
        return ERROR(errno, "stat %s failed", path);
    if (!S_ISREG(st.st_mode) || st.st_size > MAX_BACKUP)
        return ERROR(0, "%s: only regular files up to 1 MiB are probed (they are restored)", path);
    /* Back the contents up first: a truncation that gets through is undone. */
    char *backup = malloc((size_t)st.st_size + 1);
    int rfd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t saved = rfd >= 0 && backup ? read(rfd, backup, (size_t)st.st_size + 1) : -1;
    int rerr = errno;
    if (rfd >= 0)
        close(rfd);
    if (saved < 0 || saved > st.st_size) {
        free(backup);
        return ERROR(rerr, "cannot back up %s, so it is not truncated", path);
    }
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) {
        free(backup);
        return fs_verdict(errno, "open O_TRUNC", path, NULL);
    }
    bool restored = write(fd, backup, (size_t)saved) == saved;
    close(fd);
    free(backup);
    return fs_verdict(0, "truncate", path,
               restored ? "truncated, then restored" : "truncated; WARNING: restoring the contents failed");
}

static int probe_create_in(const struct args *a)
{
    const char *dir = arg_str(a, 0, "/usr");
    char path[PATH_MAX];
    join_path(path, sizeof path, dir, "iron-probe-new");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return fs_verdict(errno, "create", path, NULL);
    close(fd);
    unlink(path);
    return fs_verdict(0, "create", path, "created a file (removed again)");
}

static int probe_mkdir_in(const struct args *a)
{
    const char *dir = arg_str(a, 0, "/usr");
    char path[PATH_MAX];
    join_path(path, sizeof path, dir, "iron-probe-dir");
    if (mkdir(path, 0755) < 0)
        return fs_verdict(errno, "mkdir", path, NULL);
    rmdir(path);
    return fs_verdict(0, "mkdir", path, "created a directory (removed again)");
}

/* Creates SRC_DIR/NAME.pid for rename and link; reports an error and returns false on failure. */
static bool make_source(const char *src_dir, const char *name, char *path, size_t cap)
{
    join_path(path, cap, src_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        ERROR(errno, "setup: cannot create %s", path);
        return false;
    }
    close(fd);
    return true;
}

/* EXDEV across two filesystems is the kernel's rule, not a policy: report it as such. */
static int move_verdict(int err, const char *what, const char *src_dir, const char *dst_dir, const char *dst,
                         const char *ok_detail)
{
    struct stat s, d;
    if (err == EXDEV && stat(src_dir, &s) == 0 && stat(dst_dir, &d) == 0 && s.st_dev != d.st_dev)
        return ERROR(err, "%s: %s and %s are different filesystems; pick two on one", what, src_dir, dst_dir);
    return fs_verdict(err, what, dst, ok_detail);
}

static int probe_rename(const struct args *a)
{
    const char *src_dir = arg_str(a, 0, "/tmp"), *dst_dir = arg_str(a, 1, "/usr");
    char src[PATH_MAX], dst[PATH_MAX];
    if (!make_source(src_dir, "iron-probe-rename", src, sizeof src))
        return 0;
    join_path(dst, sizeof dst, dst_dir, "iron-probe-rename");
    int err = rename(src, dst) < 0 ? errno : 0;
    unlink(err ? src : dst);
    return move_verdict(err, "rename into", src_dir, dst_dir, dst,
                        "renamed a file into DST_DIR (removed again)");
}

static int probe_link(const struct args *a)
{
    const char *src_dir = arg_str(a, 0, "/tmp"), *dst_dir = arg_str(a, 1, "/usr");
    char src[PATH_MAX], dst[PATH_MAX];
    if (!make_source(src_dir, "iron-probe-link", src, sizeof src))
        return 0;
    join_path(dst, sizeof dst, dst_dir, "iron-probe-link");
    int err = link(src, dst) < 0 ? errno : 0;
    if (!err)
        unlink(dst);
    unlink(src);
    return move_verdict(err, "hard link into", src_dir, dst_dir, dst,
                        "hard-linked a file into DST_DIR (removed again)");
}

static int probe_symlink_write(const struct args *a)
{
    const char *dir = arg_str(a, 0, "/tmp"), *target = arg_str(a, 1, "/etc/hostname");
    char lnk[PATH_MAX];
    join_path(lnk, sizeof lnk, dir, "iron-probe-symlink");
    if (symlink(target, lnk) < 0)
        return fs_verdict(errno, "symlink", lnk, NULL);
    int fd = open(lnk, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    unlink(lnk);
    return fs_verdict(err, "open O_WRONLY through symlink to", target,
               "opened the target for writing through a symlink (nothing written; link removed)");
}

static int copy_file(const char *src, const char *dst, mode_t mode)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return errno;
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (out < 0) {
        int err = errno;
        close(in);
        return err;
    }
    char buf[65536];
    ssize_t n;
    int err = 0;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) {
            err = errno ? errno : EIO;
            break;
        }
    if (n < 0)
        err = errno;
    if (!err && fchmod(out, mode) < 0)
        err = errno;
    close(in);
    close(out);
    return err;
}

/* fork + execve PATH list with stdout discarded; returns execve's errno (0: it ran). */
static int exec_errno(const char *path, int *status)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        close(p[0]);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDOUT_FILENO);
        char *argv[] = {(char *)path, "list", NULL};
        char *envp[] = {NULL};
        execve(path, argv, envp);
        int err = errno;
        if (write(p[1], &err, sizeof err) != sizeof err)
            _exit(126);
        _exit(127);
    }
    close(p[1]);
    int err = 0;
    if (read(p[0], &err, sizeof err) != sizeof err)
        err = 0; /* the pipe closed on exec: the copy ran */
    close(p[0]);
    *status = wait_ok(pid);
    return err;
}

static int probe_exec_copy(const struct args *a)
{
    const char *dir = arg_str(a, 0, "/tmp");
    char copy[PATH_MAX];
    join_path(copy, sizeof copy, dir, "iron-probe-copy");
    int err = copy_file("/proc/self/exe", copy, 0755);
    if (err) {
        unlink(copy);
        return fs_verdict(err, "copy the probe to", copy, NULL);
    }
    int status = 0;
    err = exec_errno(copy, &status);
    unlink(copy);
    if (err < 0)
        return ERROR(-err, "setup: pipe or fork failed");
    if (err)
        return fs_verdict(err, "execve", copy, NULL);
    return ALLOWED(0, "wrote and executed %s (exit status %d; removed again)", copy,
            WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* ======================================================================================
 * Layer 4: network
 * ==================================================================================== */

/* An IPv4 or IPv6 literal (IPv6 optionally in brackets) and a port. */
static bool parse_addr(const char *text, long port, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 2];
    snprintf(host, sizeof host, "%s", text);
    size_t n = strlen(host);
    char *h = host;
    if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
        host[n - 1] = 0;
        h++;
    }
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, h, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
        return true;
    }
    if (inet_pton(AF_INET6, h, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
        return true;
    }
    ERROR(0, "not an IPv4 or IPv6 address: \"%s\"", text);
    return false;
}

/* Waits up to ms for fd to become ready for events; 0 on timeout, < 0 on error. */
static int wait_fd(int fd, short events, int ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    int rc;
    while ((rc = poll(&p, 1, ms)) < 0 && errno == EINTR)
        ;
    return rc;
}

/* A refusal on the way out: blocked.  Any other errno: the probe could not tell. */
static int net_failure(int err, const char *what)
{
    if (errno_in(err, NET_BLOCKED))
        return BLOCKED(err, "%s refused with %s", what, errname(err));
    else
        return ERROR(err, "%s failed: %s", what, errname(err));
}

static void printable(char *out, size_t cap, const char *in, ssize_t n)
{
    size_t j = 0;
    for (ssize_t i = 0; i < n && j + 1 < cap; i++)
        out[j++] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '.';
    out[j] = 0;
}

static int probe_tcp_connect(const struct args *a)
{
    long port, timeout;
    struct sockaddr_storage ss;
    socklen_t len;
    if (!arg_required(a, 2, "ADDR PORT [TIMEOUT_MS]") || !arg_long(a, 1, 0, 1, 65535, &port) ||
        !arg_long(a, 2, 1500, 1, 600000, &timeout) || !parse_addr(a->v[0], port, &ss, &len))
        return 0;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return net_failure(errno, "socket");
    int err = 0;
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        err = errno;
        if (err == EINPROGRESS) {
            int ready = wait_fd(fd, POLLOUT, (int)timeout);
            socklen_t el = sizeof err;
            if (ready == 0) {
                close(fd);
                return BLOCKED(ETIMEDOUT, "timeout: no answer within %ld ms", timeout);
            }
            if (ready < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                err = errno;
        }
    }
    if (err == ECONNREFUSED) {
        close(fd);
        return ALLOWED(err, "connection refused: a RST came back from the host (or a reject rule)");
    }
    if (err == ETIMEDOUT) {
        close(fd);
        return BLOCKED(err, "timeout: the kernel gave up connecting");
    }
    if (err) {
        close(fd);
        return net_failure(err, "connect");
    }
    char reply[128], shown[129];
    ssize_t n = -1;
    if (send(fd, "ping\n", 5, MSG_NOSIGNAL) == 5 && wait_fd(fd, POLLIN, 1000) > 0)
        n = recv(fd, reply, sizeof reply, 0);
    close(fd);
    if (n <= 0)
        return ALLOWED(0, "connected; no reply");
    printable(shown, sizeof shown, reply, n);
    return ALLOWED(0, "connected; reply: %s", shown);
}

/* Sends msg to ADDR:PORT from a connected UDP socket and waits for a reply that
 * accept() likes.  Returns the reply length, 0 for no reply, or -errno. */
static ssize_t udp_exchange(const struct sockaddr_storage *ss, socklen_t len, const void *msg, size_t msg_len,
                            int timeout_ms, char *reply, size_t cap, const char **stage,
                            bool (*accept)(const char *, ssize_t, const void *), const void *ctx)
{
    *stage = "socket";
    int fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t result = 0;
    *stage = "connect";
    if (connect(fd, (const struct sockaddr *)ss, len) < 0) {
        result = -errno;
        goto out;
    }
    *stage = "send";
    if (send(fd, msg, msg_len, 0) < 0) {
        result = -errno;
        goto out;
    }
    *stage = "receive";
    double deadline = now_seconds() + timeout_ms / 1000.0;
    for (;;) {
        int left = (int)((deadline - now_seconds()) * 1000);
        if (left <= 0 || wait_fd(fd, POLLIN, left) <= 0)
            break;
        ssize_t n = recv(fd, reply, cap, 0);
        if (n < 0) {
            result = -errno;
            break;
        }
        if (!accept || accept(reply, n, ctx)) {
            result = n;
            break;
        }
    }
out:
    close(fd);
    return result;
}

static int probe_udp_send(const struct args *a)
{
    long port;
    struct sockaddr_storage ss;
    socklen_t len;
    if (!arg_required(a, 2, "ADDR PORT") || !arg_long(a, 1, 0, 1, 65535, &port) ||
        !parse_addr(a->v[0], port, &ss, &len))
        return 0;
    char reply[512], shown[129];
    const char *stage;
    ssize_t n = udp_exchange(&ss, len, "ping\n", 5, 1000, reply, sizeof reply, &stage, NULL, NULL);
    if (n == -ECONNREFUSED)
        return ALLOWED(ECONNREFUSED, "port unreachable came back: the datagram reached the host");
    if (n < 0)
        return net_failure((int)-n, stage);
    if (n == 0)
        return BLOCKED(0, "no reply within 1 s");
    printable(shown, sizeof shown, reply, n);
    return ALLOWED(0, "reply: %s", shown);
}

static bool dns_reply_matches(const char *r, ssize_t n, const void *query)
{
    const unsigned char *q = query, *b = (const unsigned char *)r;
    return n >= 12 && b[0] == q[0] && b[1] == q[1] && (b[2] & 0x80);
}

static int probe_dns(const struct args *a)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (!arg_required(a, 1, "ADDR") || !parse_addr(a->v[0], 53, &ss, &len))
        return 0;
    /* Header (id, RD, one question), then example.invalid, type A, class IN. */
    uint16_t id = (uint16_t)(getpid() ^ (int)time(NULL));
    unsigned char q[] = {(unsigned char)(id >> 8), (unsigned char)id, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                         7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 7, 'i', 'n', 'v', 'a', 'l', 'i', 'd', 0,
                         0, 1, 0, 1};
    char reply[512];
    const char *stage;
    ssize_t n = udp_exchange(&ss, len, q, sizeof q, 2000, reply, sizeof reply, &stage, dns_reply_matches, q);
    if (n == -ECONNREFUSED)
        return ALLOWED(ECONNREFUSED, "port unreachable came back: the query reached the host");
    if (n < 0)
        return net_failure((int)-n, stage);
    if (n == 0)
        return BLOCKED(0, "no reply within 2 s");
    return ALLOWED(0, "reply of %zd bytes, rcode %d", n, reply[3] & 0x0f);
}

static uint16_t inet_checksum(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

/* An echo socket: an unprivileged ping socket first, then a raw one. */
static int echo_socket(int family, bool *raw, struct text *why)
{
    int proto = family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, proto);
    if (fd >= 0) {
        *raw = false;
        return fd;
    }
    textf(why, "ping socket: %s", errname(errno));
    int first = errno;
    fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, proto);
    if (fd >= 0) {
        *raw = true;
        return fd;
    }
    textf(why, "; raw socket: %s", errname(errno));
    return errno_in(first, SOCK_BLOCKED) && errno_in(errno, SOCK_BLOCKED) ? -EPERM : -errno;
}

/* Is this datagram an echo reply (to our id, on a raw socket)? */
static bool is_echo_reply(const unsigned char *buf, ssize_t n, int family, bool raw, uint16_t id)
{
    if (family == AF_INET && raw) {
        if (n < 20)
            return false;
        size_t ihl = (size_t)(buf[0] & 0x0f) * 4;
        buf += ihl;
        n -= (ssize_t)ihl;
    }
    if (n < 8)
        return false;
    int reply_type = family == AF_INET ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY;
    return buf[0] == reply_type && (!raw || (buf[4] << 8 | buf[5]) == id);
}

static int probe_icmp_echo(const struct args *a)
{
    long timeout;
    struct sockaddr_storage ss;
    socklen_t len;
    if (!arg_required(a, 1, "ADDR [TIMEOUT_MS]") || !arg_long(a, 1, 1000, 1, 600000, &timeout) ||
        !parse_addr(a->v[0], 0, &ss, &len))
        return 0;
    bool raw;
    struct text why = {0};
    int fd = echo_socket(ss.ss_family, &raw, &why);
    if (fd == -EPERM)
        return BLOCKED(EPERM, "no ICMP socket: %s", why.s);
    if (fd < 0)
        return ERROR(-fd, "no ICMP socket: %s", why.s);
    uint16_t id = (uint16_t)getpid();
    unsigned char pkt[16] = {ss.ss_family == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST, 0, 0, 0,
                             (unsigned char)(id >> 8), (unsigned char)id, 0, 1, 'i', 'r', 'o', 'n'};
    if (ss.ss_family == AF_INET) {
        uint16_t sum = inet_checksum(pkt, sizeof pkt);
        memcpy(pkt + 2, &sum, sizeof sum); /* ICMPv6 checksums are the kernel's job */
    }
    if (sendto(fd, pkt, sizeof pkt, 0, (struct sockaddr *)&ss, len) < 0) {
        int err = errno;
        close(fd);
        return net_failure(err, "send echo request");
    }
    double deadline = now_seconds() + timeout / 1000.0;
    unsigned char buf[1500];
    for (;;) {
        int left = (int)((deadline - now_seconds()) * 1000);
        if (left <= 0 || wait_fd(fd, POLLIN, left) <= 0)
            break;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0)
            break;
        if (is_echo_reply(buf, n, ss.ss_family, raw, id)) {
            close(fd);
            return ALLOWED(0, "echo reply (%s socket)", raw ? "raw" : "ping");
        }
    }
    close(fd);
    return BLOCKED(0, "no reply within %ld ms (%s socket)", timeout, raw ? "raw" : "ping");
}

static int probe_tcp_listen(const struct args *a)
{
    long port;
    if (!arg_required(a, 1, "PORT") || !arg_long(a, 0, 0, 0, 65535, &port))
        return 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return net_failure(errno, "socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    const char *stage = "bind 0.0.0.0";
    int err = bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ? errno : 0;
    if (!err) {
        stage = "listen";
        err = listen(fd, 1) < 0 ? errno : 0;
    }
    close(fd);
    if (!err)
        return ALLOWED(0, "listening on 0.0.0.0:%ld", port);
    if (errno_in(err, SOCK_BLOCKED))
        return BLOCKED(err, "%s port %ld refused with %s", stage, port, errname(err));
    return ERROR(err, "%s port %ld failed: %s", stage, port, errname(err));
}

/* ======================================================================================
 * Benign workload and benchmarks
 * ==================================================================================== */

/* Each step returns 0 or an errno, and names what failed in *why. */
typedef int (*step_fn)(const char **why);

static int step_fork(const char **why)
{
    *why = "fork";
    pid_t pid = fork();
    if (pid < 0)
        return errno;
    if (pid == 0)
        _exit(7);
    *why = "wait";
    int status = wait_ok(pid);
    if (status < 0)
        return errno;
    *why = "child exit status";
    return WIFEXITED(status) && WEXITSTATUS(status) == 7 ? 0 : EIO;
}

static void *thread_answer(void *unused)
{
    (void)unused;
    return (void *)42;
}

static int step_pthread(const char **why)
{
    pthread_t tid;
    void *ret;
    *why = "pthread_create";
    int err = pthread_create(&tid, NULL, thread_answer, NULL);
    if (err)
        return err;
    *why = "pthread_join";
    err = pthread_join(tid, &ret);
    return err ? err : ret == (void *)42 ? 0 : EIO;
}

static int step_pipe(const char **why)
{
    int p[2];
    char buf[4];
    *why = "pipe";
    if (pipe2(p, O_CLOEXEC) < 0)
        return errno;
    *why = "pipe write/read";
    bool ok = write(p[1], "abc", 3) == 3 && read(p[0], buf, sizeof buf) == 3 && !memcmp(buf, "abc", 3);
    int err = ok ? 0 : EIO;
    close(p[0]);
    close(p[1]);
    return err;
}

static int try_file_in(const char *dir)
{
    char path[PATH_MAX], buf[8];
    join_path(path, sizeof path, dir, "iron-probe-benign");
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    int err = pwrite(fd, "hello", 5, 0) == 5 && pread(fd, buf, sizeof buf, 0) == 5 && !memcmp(buf, "hello", 5)
                  ? 0 : errno ? errno : EIO;
    close(fd);
    if (unlink(path) < 0 && !err)
        err = errno;
    return err;
}

static int step_file(const char **why)
{
    static const char *dirs[] = {"/tmp", "/dev/shm", "."};
    int err = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
        if (!(err = try_file_in(dirs[i])))
            return 0;
    *why = "write+read+unlink a file in /tmp, /dev/shm or .";
    return err;
}

static int step_getppid(const char **why)
{
    *why = "getppid";
    return syscall(SYS_getppid) < 0 ? errno : 0;
}

static int step_clock(const char **why)
{
    struct timespec ts;
    *why = "clock_gettime";
    return clock_gettime(CLOCK_MONOTONIC, &ts) < 0 || clock_gettime(CLOCK_REALTIME, &ts) < 0 ? errno : 0;
}

static int step_mmap(const char **why)
{
    const size_t size = 1 << 20;
    *why = "mmap";
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return errno;
    memset(p, 1, size);
    *why = "munmap";
    return munmap(p, size) < 0 ? errno : 0;
}

static int step_socketpair(const char **why)
{
    int sv[2];
    char buf[4];
    *why = "socketpair(AF_UNIX)";
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return errno;
    *why = "socketpair send/recv";
    int err = send(sv[0], "abc", 3, MSG_NOSIGNAL) == 3 && recv(sv[1], buf, sizeof buf, 0) == 3 ? 0 : EIO;
    close(sv[0]);
    close(sv[1]);
    return err;
}

static int probe_benign(const struct args *a)
{
    (void)a;
    static const struct {
        const char *name;
        step_fn run;
    } steps[] = {
        {"fork", step_fork},       {"pthread", step_pthread}, {"pipe", step_pipe}, {"file", step_file},
        {"getppid", step_getppid}, {"clock", step_clock},     {"mmap", step_mmap},
        {"socketpair", step_socketpair},
    };
    struct text done = {0};
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        const char *why = steps[i].name;
        int err = steps[i].run(&why);
        if (err)
            return ERROR(err, "step %s: %s failed: %s", steps[i].name, why, errname(err));
        textf(&done, "%s%s", i ? "," : "", steps[i].name);
    }
    return ALLOWED(0, "%s ok", done.s);
}

static int probe_getppid_loop(const struct args *a)
{
    long n;
    if (!arg_long(a, 0, 1000000, 1, LONG_MAX, &n))
        return 0;
    double t0 = now_seconds();
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    return ALLOWED(0, "ns_per_op=%.1f", (now_seconds() - t0) * 1e9 / (double)n);
}

static int probe_open_close_loop(const struct args *a)
{
    const char *path = arg_str(a, 0, "/etc/hostname");
    long n;
    if (!arg_long(a, 1, 100000, 1, LONG_MAX, &n))
        return 0;
    double t0 = now_seconds();
    for (long i = 0; i < n; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return ERROR(errno, "open %s failed after %ld iterations", path, i);
        close(fd);
    }
    return ALLOWED(0, "ns_per_op=%.1f", (now_seconds() - t0) * 1e9 / (double)n);
}

/* ======================================================================================
 * The table
 * ==================================================================================== */

struct probe {
    const char *name;
    int (*run)(const struct args *);
    const char *usage;
};

static const struct probe PROBES[] = {
    /* layer 1: resources */
    {"forkbomb", probe_forkbomb, "[N=100000]  fork until refused (EAGAIN: blocked)"},
    {"memhog", probe_memhog, "[MiB=4096]  allocate and touch memory 16 MiB at a time"},
    {"cpuhog", probe_cpuhog, "[SECONDS=3] [THREADS=2]  spin, report cpu_seconds"},
    /* layers 1+2: privileged syscalls */
    {"ptrace", probe_ptrace, "PTRACE_ATTACH to a child, PTRACE_TRACEME"},
    {"mount", probe_mount, "mount a tmpfs on a fresh directory"},
    {"umount", probe_umount, "umount2(\"/\", MNT_EXPIRE|MNT_DETACH): EINVAL when permitted"},
    {"reboot", probe_reboot, "reboot with a bad magic2: EINVAL when permitted"},
    {"kexec_load", probe_kexec_load, "kexec_load with invalid flags"},
    {"init_module", probe_init_module, "init_module(NULL, 0) and finit_module(-1)"},
    {"unshare_user", probe_unshare_user, "unshare(CLONE_NEWUSER) in a child"},
    {"unshare_net", probe_unshare_net, "unshare(CLONE_NEWNET) in a child"},
    {"unshare_mnt", probe_unshare_mnt, "unshare(CLONE_NEWNS) in a child"},
    {"clone_newns", probe_clone_newns, "[user|ns|net|pid|ipc|uts|cgroup=user]  raw clone with CLONE_NEW*"},
    {"setns", probe_setns, "setns into its own network namespace"},
    {"keyctl", probe_keyctl, "keyctl(KEYCTL_GET_KEYRING_ID) and add_key"},
    {"bpf", probe_bpf, "bpf(BPF_MAP_CREATE) of a one-entry array"},
    {"perf_event_open", probe_perf_event_open, "software CPU clock counter on itself"},
    {"io_uring", probe_io_uring, "io_uring_setup(1)"},
    {"userfaultfd", probe_userfaultfd, "userfaultfd(O_CLOEXEC)"},
    {"open_by_handle_at", probe_open_by_handle_at, "open_by_handle_at with a bogus handle"},
    {"clone3", probe_clone3, "clone3 (ENOSYS: blocked) and a pthread_create fallback"},
    {"personality", probe_personality, "personality(ADDR_NO_RANDOMIZE)"},
    {"vmsplice", probe_vmsplice, "vmsplice one byte into a pipe"},
    {"process_vm_readv", probe_process_vm_readv, "read a child's memory"},
    {"kcmp", probe_kcmp, "kcmp(self, child, KCMP_FILE)"},
    {"pidfd_getfd", probe_pidfd_getfd, "take a child's fd 0 through its pidfd"},
    {"pivot_root", probe_pivot_root, "pivot_root to a missing directory: ENOENT when permitted"},
    {"swapon", probe_swapon, "swapon a missing file: ENOENT when permitted"},
    {"chroot", probe_chroot, "chroot(\"/\") in a child"},
    {"iopl", probe_iopl, "iopl(3) in a child"},
    {"syslog", probe_syslog, "syslog(SYSLOG_ACTION_SIZE_BUFFER)"},
    {"signal", probe_signal, "PID  kill(PID, 0) (ESRCH, EPERM: blocked)"},
    {"raw_socket", probe_raw_socket, "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)"},
    {"packet_socket", probe_packet_socket, "socket(AF_PACKET, SOCK_RAW)"},
    {"alg_socket", probe_alg_socket, "socket(AF_ALG, SOCK_SEQPACKET)"},
    {"vsock_socket", probe_vsock_socket, "socket(AF_VSOCK, SOCK_STREAM)"},
    {"netlink_route", probe_netlink_route, "socket(AF_NETLINK, NETLINK_ROUTE)"},
    {"netlink_audit", probe_netlink_audit, "socket(AF_NETLINK, NETLINK_AUDIT)"},
    /* layer 3: filesystem */
    {"write_file", probe_write_file, "[PATH=/usr/iron-probe]  create or open for writing"},
    {"read_file", probe_read_file, "[PATH=/root/secret]  open and read"},
    {"truncate_file", probe_truncate_file, "[PATH=/etc/hostname]  open O_TRUNC (contents restored)"},
    {"create_in", probe_create_in, "[DIR=/usr]  create DIR/iron-probe-new.PID"},
    {"mkdir_in", probe_mkdir_in, "[DIR=/usr]  mkdir DIR/iron-probe-dir.PID"},
    {"rename", probe_rename, "[SRC_DIR=/tmp] [DST_DIR=/usr]  create in SRC_DIR, rename into DST_DIR"},
    {"link", probe_link, "[SRC_DIR=/tmp] [DST_DIR=/usr]  create in SRC_DIR, hard-link into DST_DIR"},
    {"symlink_write", probe_symlink_write, "[DIR=/tmp] [TARGET=/etc/hostname]  open TARGET O_WRONLY by a symlink"},
    {"exec_copy", probe_exec_copy, "[DIR=/tmp]  copy itself into DIR and execve the copy"},
    /* layer 4: network */
    {"tcp_connect", probe_tcp_connect, "ADDR PORT [TIMEOUT_MS=1500]  connect, send ping, read a reply"},
    {"udp_send", probe_udp_send, "ADDR PORT  send a datagram, wait 1 s for a reply"},
    {"icmp_echo", probe_icmp_echo, "ADDR [TIMEOUT_MS=1000]  ping once"},
    {"dns", probe_dns, "ADDR  query example.invalid A on ADDR:53"},
    {"tcp_listen", probe_tcp_listen, "PORT  bind and listen on 0.0.0.0:PORT"},
    /* workloads that must keep working, and benchmarks */
    {"benign", probe_benign, "fork, pthreads, pipe, file, getppid, clock, mmap, socketpair"},
    {"getppid_loop", probe_getppid_loop, "[N=1000000]  ns_per_op of getppid"},
    {"open_close_loop", probe_open_close_loop, "[PATH=/etc/hostname] [N=100000]  ns_per_op of open+close"},
};

#define NPROBES (sizeof PROBES / sizeof *PROBES)

static int usage(FILE *out)
{
    fprintf(out, "usage: iron-probe NAME [ARGS...] | list | help\n\n");
    for (size_t i = 0; i < NPROBES; i++)
        fprintf(out, "  %-18s %s\n", PROBES[i].name, PROBES[i].usage);
    return out == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (strcmp(argv[1], "list") == 0) {
        for (size_t i = 0; i < NPROBES; i++)
            puts(PROBES[i].name);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0)
        return usage(stdout);
    signal(SIGPIPE, SIG_IGN);
    g_probe = argv[1];
    for (size_t i = 0; i < NPROBES; i++) {
        if (strcmp(argv[1], PROBES[i].name) == 0) {
            struct args a = {.n = argc - 2, .v = argv + 2};
            PROBES[i].run(&a);
            if (!g_reported)
                ERROR(0, "probe finished without a verdict (a bug in iron-probe)");
            return 0;
        }
    }
    ERROR(0, "unknown probe; `iron-probe list` prints the names");
    return 2;
}
