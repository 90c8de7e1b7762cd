/* bench/reccount.c - an LD_PRELOAD shim for bench/tls_records.py.
 *
 * Counts the TLS records in the bytes a process writes to its sockets (it
 * follows the 5-byte record headers through each socket's byte stream, as
 * write/writev return them) and the process's SSL_write/SSL_write_ex calls,
 * and writes the counts as JSON to $RECCOUNT_OUT at exit. One loop thread
 * only (omsd --workers 1): the per-socket state is not locked. A measurement
 * aid, never linked into anything. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAXFD 65536
static struct {
    unsigned char known, sock, hlen;
    unsigned char hdr[5];
    size_t need;
} st[MAXFD];
static atomic_ulong rec[256], ssl_writes, bytes;

static int is_sock(int fd)
{
    if (fd < 0 || fd >= MAXFD)
        return 0;
    if (!st[fd].known) {
        struct stat sb;
        st[fd].sock = fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode);
        st[fd].known = 1;
    }
    return st[fd].sock;
}
static void parse(int fd, const unsigned char *p, size_t n)
{
    bytes += n;
    while (n > 0) {
        if (st[fd].need) {
            size_t k = n < st[fd].need ? n : st[fd].need;
            st[fd].need -= k;
            p += k;
            n -= k;
            continue;
        }
        st[fd].hdr[st[fd].hlen++] = *p++;
        n--;
        if (st[fd].hlen == 5) {
            rec[st[fd].hdr[0]]++;
            st[fd].need = (size_t)st[fd].hdr[3] << 8 | st[fd].hdr[4];
            st[fd].hlen = 0;
        }
    }
}
static void reset(int fd)
{
    if (fd >= 0 && fd < MAXFD)
        memset(&st[fd], 0, sizeof st[fd]);
}

ssize_t write(int fd, const void *b, size_t n)
{
    static ssize_t (*f)(int, const void *, size_t);
    if (!f)
        f = dlsym(RTLD_NEXT, "write");
    ssize_t r = f(fd, b, n);
    if (r > 0 && is_sock(fd))
        parse(fd, b, (size_t)r);
    return r;
}
ssize_t writev(int fd, const struct iovec *v, int cnt)
{
    static ssize_t (*f)(int, const struct iovec *, int);
    if (!f)
        f = dlsym(RTLD_NEXT, "writev");
    ssize_t r = f(fd, v, cnt);
    if (r > 0 && is_sock(fd)) {
        size_t left = (size_t)r;
        for (int i = 0; i < cnt && left; i++) {
            size_t k = v[i].iov_len < left ? v[i].iov_len : left;
            parse(fd, v[i].iov_base, k);
            left -= k;
        }
    }
    return r;
}
int close(int fd)
{
    static int (*f)(int);
    if (!f)
        f = dlsym(RTLD_NEXT, "close");
    reset(fd);
    return f(fd);
}
int accept4(int fd, struct sockaddr *a, socklen_t *l, int fl)
{
    static int (*f)(int, struct sockaddr *, socklen_t *, int);
    if (!f)
        f = dlsym(RTLD_NEXT, "accept4");
    int r = f(fd, a, l, fl);
    reset(r);
    return r;
}
int SSL_write(void *s, const void *b, int n)
{
    static int (*f)(void *, const void *, int);
    if (!f)
        f = dlsym(RTLD_NEXT, "SSL_write");
    ssl_writes++;
    return f(s, b, n);
}
int SSL_write_ex(void *s, const void *b, size_t n, size_t *w)
{
    static int (*f)(void *, const void *, size_t, size_t *);
    if (!f)
        f = dlsym(RTLD_NEXT, "SSL_write_ex");
    ssl_writes++;
    return f(s, b, n, w);
}
__attribute__((destructor)) static void done(void)
{
    const char *o = getenv("RECCOUNT_OUT");
    if (!o)
        return;
    FILE *fp = fopen(o, "w");
    if (!fp)
        return;
    fprintf(fp,
            "{\"app_records\": %lu, \"handshake_records\": %lu, \"ccs\": %lu, \"alerts\": %lu, "
            "\"ssl_write_calls\": %lu, \"bytes\": %lu}\n",
            rec[23], rec[22], rec[20], rec[21], ssl_writes, bytes);
    fclose(fp);
}
