/* http1 server: real requests over loopback against a server on its own
 * thread; the limits of http1.h (400/404-style answers are the handler's). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "http1/http1.h"

typedef struct fixture {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop;
    http1_server *srv;
    int port;
} fixture;

static fixture fx;

/* Answers "path=P query=Q headers=N body=B" (X-Echo: its value instead). */
static void on_request(const http1_request *req, http1_response *resp, void *data)
{
    (void)data;
    static char buf[512];
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, "x-echo") == 0) {
            snprintf(buf, sizeof buf, "%s", req->headers[i].value);
            goto done;
        }
    snprintf(buf, sizeof buf, "%s path=%s query=%s headers=%zu body=%zu", req->method, req->path,
             req->query ? req->query : "-", req->n_headers, req->body_len);
done:
    if (strcmp(req->path, "/big") == 0) { /* 64 KiB */
        static char big[65536];
        memset(big, 'b', sizeof big);
        resp->status = 200;
        resp->body = big;
        resp->body_len = sizeof big;
        return;
    }
    resp->status = strcmp(req->path, "/missing") == 0 ? 404 : 200;
    resp->content_type = "text/plain";
    resp->body = buf;
    resp->body_len = strlen(buf);
}

static void on_stop(uv_async_t *a)
{
    http1_server_close(fx.srv, NULL, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

static void run(void *arg)
{
    (void)arg;
    uv_run(&fx.loop, UV_RUN_DEFAULT);
}

static void start(void (*tune)(http1_server_config *))
{
    memset(&fx, 0, sizeof fx);
    cr_assert_eq(uv_loop_init(&fx.loop), 0);
    http1_server_config cfg;
    http1_server_config_init(&cfg);
    cfg.port = 0;
    cfg.handler = on_request;
    if (tune)
        tune(&cfg);
    char err[256];
    cr_assert_eq(http1_server_new(&fx.loop, &cfg, &fx.srv, err, sizeof err), 0, "%s", err);
    fx.port = http1_server_port(fx.srv);
    uv_async_init(&fx.loop, &fx.stop, on_stop);
    cr_assert_eq(uv_thread_create(&fx.thread, run, NULL), 0);
}

static void stop(void)
{
    uv_async_send(&fx.stop);
    uv_thread_join(&fx.thread);
    cr_assert_eq(uv_loop_close(&fx.loop), 0, "handles left open");
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server may have closed: the answer tells */
        s += w;
        n -= (size_t)w;
    }
}

/* Reads until EOF (or timeout): everything the server sent. */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

/* Reads one response (head + Content-Length body) into buf. */
static void read_response(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    char *end = NULL;
    while (!(end = strstr(buf, "\r\n\r\n"))) {
        ssize_t r = recv(fd, buf + n, 1, 0);
        cr_assert_gt(r, 0, "connection ended inside a response head: %s", buf);
        n++;
        buf[n] = '\0';
        cr_assert_lt(n + 1, cap);
    }
    const char *cl = strstr(buf, "Content-Length: ");
    cr_assert_not_null(cl);
    size_t len = strtoul(cl + 16, NULL, 10);
    for (size_t got = 0; got < len; got++) {
        ssize_t r = recv(fd, buf + n, 1, 0);
        cr_assert_gt(r, 0);
        n++;
    }
    buf[n] = '\0';
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(http1, good_request)
{
    start(NULL);
    int fd = dial();
    const char req[] = "GET /metrics?a=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    char buf[4096] = "";
    read_response(fd, buf, sizeof buf);
    cr_assert(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    cr_assert(strstr(buf, "Content-Type: text/plain\r\n"));
    cr_assert(strstr(buf, "\r\n\r\nGET path=/metrics query=a=1 headers=2 body=0"), "%s", buf);
    cr_assert_null(strstr(buf, "Connection: close"));
    close(fd);
    stop();
}

Test(http1, pipelined_keep_alive_in_order)
{
    start(NULL);
    int fd = dial();
    const char req[] = "GET /a HTTP/1.1\r\nX-Echo: one\r\n\r\n"
                       "GET /b HTTP/1.1\r\nX-Echo: two\r\n\r\n"
                       "GET /missing HTTP/1.1\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    char buf[4096] = "";
    read_response(fd, buf, sizeof buf);
    cr_assert(strstr(buf, "\r\n\r\none"), "%s", buf);
    buf[0] = '\0';
    read_response(fd, buf, sizeof buf);
    cr_assert(strstr(buf, "\r\n\r\ntwo"), "%s", buf);
    buf[0] = '\0';
    read_response(fd, buf, sizeof buf);
    cr_assert(strncmp(buf, "HTTP/1.1 404 Not Found\r\n", 24) == 0, "%s", buf);
    /* and again later on the same connection */
    const char again[] = "GET /c HTTP/1.1\r\nX-Echo: three\r\n\r\n";
    send_all(fd, again, sizeof again - 1);
    buf[0] = '\0';
    read_response(fd, buf, sizeof buf);
    cr_assert(strstr(buf, "\r\n\r\nthree"), "%s", buf);
    close(fd);
    stop();
}

static void expect_status_then_close(const char *req, size_t len, const char *status)
{
    int fd = dial();
    send_all(fd, req, len);
    static char buf[1 << 16];
    read_all(fd, buf, sizeof buf);
    cr_assert(strncmp(buf, status, strlen(status)) == 0, "want %s, got: %.200s", status, buf);
    cr_assert(strstr(buf, "Connection: close\r\n"), "%s", buf);
    close(fd);
}

Test(http1, garbage_is_400)
{
    start(NULL);
    const char g[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n";
    expect_status_then_close(g, sizeof g - 1, "HTTP/1.1 400 ");
    const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    expect_status_then_close(preface, sizeof preface - 1, "HTTP/1.1 400 ");
    stop();
}

Test(http1, invalid_bytes_are_400)
{
    start(NULL);
    const char ctl[] = "GET / HTTP/1.1\r\nX-A\x01: b\r\n\r\n";
    expect_status_then_close(ctl, sizeof ctl - 1, "HTTP/1.1 400 ");
    const char nul[] = "GET /\0x HTTP/1.1\r\n\r\n";
    expect_status_then_close(nul, sizeof nul - 1, "HTTP/1.1 400 ");
    const char space[] = "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n";
    expect_status_then_close(space, sizeof space - 1, "HTTP/1.1 400 ");
    const char ver[] = "GET / HTTP/9.x\r\n\r\n";
    expect_status_then_close(ver, sizeof ver - 1, "HTTP/1.1 400 ");
    const char cl[] = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
    expect_status_then_close(cl, sizeof cl - 1, "HTTP/1.1 400 ");
    stop();
}

static void small_headers(http1_server_config *c)
{
    c->max_header_bytes = 1024;
}

Test(http1, header_limit_is_431)
{
    start(small_headers);
    char req[4096];
    int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Big: %0*d\r\n\r\n", 2000, 0);
    expect_status_then_close(req, (size_t)n, "HTTP/1.1 431 ");
    /* just under the limit passes */
    n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nX-Echo: %0*d\r\n\r\n", 900, 0);
    int fd = dial();
    send_all(fd, req, (size_t)n);
    char buf[4096] = "";
    read_response(fd, buf, sizeof buf);
    cr_assert(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s", buf);
    close(fd);
    stop();
}

Test(http1, huge_and_many_headers_are_431)
{
    start(NULL);
    /* 200 KB of headers: past our limit long before the parser's own */
    size_t cap = 200 * 1024;
    char *req = malloc(cap + 64);
    size_t n = (size_t)sprintf(req, "GET / HTTP/1.1\r\n");
    while (n < cap)
        n += (size_t)sprintf(req + n, "X-H%zu: %s\r\n", n, "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv");
    n += (size_t)sprintf(req + n, "\r\n");
    expect_status_then_close(req, n, "HTTP/1.1 431 ");
    /* a long URL */
    n = (size_t)sprintf(req, "GET /");
    memset(req + n, 'a', 20000);
    n += 20000;
    n += (size_t)sprintf(req + n, " HTTP/1.1\r\n\r\n");
    expect_status_then_close(req, n, "HTTP/1.1 431 ");
    /* 65 small headers: over the count */
    n = (size_t)sprintf(req, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 65; i++)
        n += (size_t)sprintf(req + n, "H%d: v\r\n", i);
    n += (size_t)sprintf(req + n, "\r\n");
    expect_status_then_close(req, n, "HTTP/1.1 431 ");
    free(req);
    stop();
}

static void short_timeouts(http1_server_config *c)
{
    c->request_timeout_ms = 300;
    c->idle_timeout_ms = 300;
}

Test(http1, slowloris_gets_408)
{
    start(short_timeouts);
    int fd = dial();
    double t0 = now_s();
    send_all(fd, "GET / HTTP/1.1\r\nX-Slow: ", 24);
    /* keep dribbling: a byte every 100 ms must not keep it open */
    char buf[1024];
    size_t n = 0;
    for (int i = 0; i < 30; i++) {
        struct timeval tv = {.tv_usec = 100000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (r == 0)
            break;
        if (r > 0) {
            n += (size_t)r;
            continue;
        }
        send_all(fd, "a", 1);
    }
    buf[n] = '\0';
    double dt = now_s() - t0;
    cr_assert(strncmp(buf, "HTTP/1.1 408 ", 13) == 0, "got: %s", buf);
    cr_assert_lt(dt, 2.0, "cut off after %.2fs", dt);
    close(fd);
    stop();
}

Test(http1, idle_keep_alive_closes)
{
    start(short_timeouts);
    int fd = dial();
    double t0 = now_s();
    char buf[64];
    cr_assert_eq(recv(fd, buf, sizeof buf, 0), 0, "an idle connection must be closed");
    cr_assert_lt(now_s() - t0, 2.0);
    close(fd);
    /* and after a request too */
    fd = dial();
    const char req[] = "GET / HTTP/1.1\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    char resp[1024] = "";
    read_response(fd, resp, sizeof resp);
    cr_assert_eq(recv(fd, buf, sizeof buf, 0), 0);
    close(fd);
    stop();
}

static void two_requests(http1_server_config *c)
{
    c->max_requests = 2;
}

Test(http1, max_requests_per_connection)
{
    start(two_requests);
    int fd = dial();
    const char req[] = "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    static char buf[8192];
    read_all(fd, buf, sizeof buf);
    cr_assert(strstr(buf, "path=/1"));
    cr_assert(strstr(buf, "path=/2"));
    cr_assert_null(strstr(buf, "path=/3"), "a third request was answered: %s", buf);
    cr_assert(strstr(strstr(buf, "path=/1"), "Connection: close\r\n"), "%s", buf);
    close(fd);
    stop();
}

Test(http1, http10_closes)
{
    start(NULL);
    int fd = dial();
    const char req[] = "GET /old HTTP/1.0\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    static char buf[4096];
    read_all(fd, buf, sizeof buf);
    cr_assert(strstr(buf, "path=/old"));
    cr_assert(strstr(buf, "Connection: close\r\n"));
    close(fd);
    stop();
}

static void small_body(http1_server_config *c)
{
    c->max_body_bytes = 16;
}

Test(http1, bodies_and_413)
{
    start(small_body);
    int fd = dial();
    const char req[] =
        "POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"
        "POST /q HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    char buf[4096] = "";
    read_response(fd, buf, sizeof buf);
    cr_assert(strstr(buf, "POST path=/p query=- headers=1 body=10"), "%s", buf);
    buf[0] = '\0';
    read_response(fd, buf, sizeof buf);
    cr_assert(strstr(buf, "body=3"), "%s", buf);
    close(fd);
    const char big[] = "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n";
    expect_status_then_close(big, sizeof big - 1, "HTTP/1.1 413 ");
    const char chunked[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n";
    expect_status_then_close(chunked, sizeof chunked - 1, "HTTP/1.1 413 ");
    stop();
}

static void one_conn(http1_server_config *c)
{
    c->max_connections = 1;
}

Test(http1, connection_cap)
{
    start(one_conn);
    int a = dial();
    const char req[] = "GET / HTTP/1.1\r\n\r\n";
    send_all(a, req, sizeof req - 1);
    char buf[1024] = "";
    read_response(a, buf, sizeof buf); /* a is in */
    int b = dial();
    char x[16];
    cr_assert_leq(recv(b, x, sizeof x, 0), 0, "a connection over the cap must be closed");
    close(b);
    send_all(a, req, sizeof req - 1); /* a still served */
    buf[0] = '\0';
    read_response(a, buf, sizeof buf);
    cr_assert(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    close(a);
    stop();
}

Test(http1, upgrade_refused)
{
    start(NULL);
    const char req[] = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    int fd = dial();
    send_all(fd, req, sizeof req - 1);
    static char buf[4096];
    read_all(fd, buf, sizeof buf);
    cr_assert(strstr(buf, "Connection: close\r\n"), "%s", buf);
    close(fd);
    stop();
}

Test(http1, control_bytes_in_values_are_400)
{
    start(NULL);
    const char v[] = "GET / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n";
    expect_status_then_close(v, sizeof v - 1, "HTTP/1.1 400 ");
    const char del[] = "GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n";
    expect_status_then_close(del, sizeof del - 1, "HTTP/1.1 400 ");
    stop();
}

static void small_pending(http1_server_config *c)
{
    c->max_pending_write = 4096;
    c->max_requests = 1000;
}

/* A client that pipelines many requests and reads nothing for a while: the
 * server stops reading once answers pile up, and resumes when they drain. */
Test(http1, slow_reader_backpressure)
{
    start(small_pending);
    int fd = dial();
    const char one[] = "GET /big HTTP/1.1\r\n\r\n";
    enum { N = 300 }; /* 300 x 64 KiB: far past the socket buffers */
    char *req = malloc(N * (sizeof one - 1));
    for (int i = 0; i < N; i++)
        memcpy(req + (size_t)i * (sizeof one - 1), one, sizeof one - 1);
    send_all(fd, req, N * (sizeof one - 1));
    free(req);
    size_t want = 0, got = 0;
    char head[256];
    int n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n");
    want = (size_t)N * ((size_t)n + 65536);
    static char buf[1 << 16];
    while (got < want) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        cr_assert_gt(r, 0, "stopped after %zu of %zu bytes", got, want);
        got += (size_t)r;
    }
    cr_assert_eq(got, want);
    close(fd);
    stop();
}
