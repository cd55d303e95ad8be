/* Test-only LD_PRELOAD shim: once armed (walkill_arm(k)), the k-th write to a SQLite "-wal"
 * file writes half its bytes and the process SIGKILLs itself, half-way through a commit.
 * Built by tests/reliability/faultkit.py with the system C compiler; never shipped. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static volatile int countdown = 0;

void walkill_arm(int k) { countdown = k; }

static int is_wal(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 4) return 0;
    path[n] = 0;
    return strcmp(path + n - 4, "-wal") == 0;
}

typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);

static ssize_t intercept(const char *name, int fd, const void *buf, size_t count, off_t offset) {
    pwrite_fn real = (pwrite_fn)dlsym(RTLD_NEXT, name);
    if (countdown > 0 && is_wal(fd) && --countdown == 0) {
        real(fd, buf, count / 2, offset);
        raise(SIGKILL);
    }
    return real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    return intercept("pwrite64", fd, buf, count, offset);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    return intercept("pwrite", fd, buf, count, offset);
}
