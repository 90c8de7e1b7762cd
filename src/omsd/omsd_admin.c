/* omsd's admin endpoints on src/http1 (see omsd_admin.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "omsd/omsd_admin.h"
#include "base/alloc.h"
#include "base/cli.h"
#include "http1/http1.h"

struct omsd_admin {
    http1_server *srv;
    omsd_admin_config cfg;
    double start_time;
};

#define TEXT "text/plain; charset=utf-8"

static void free_text(void *p)
{
    oms_free(p);
}

static void on_request(const http1_request *req, http1_response *resp, void *data)
{
    omsd_admin *a = data;
    const char *p = req->path;
    bool known = !strcmp(p, "/metrics") || !strcmp(p, "/healthz") || !strcmp(p, "/readyz");
    resp->content_type = TEXT;
    if (!known) {
        resp->status = 404;
        resp->body = "not found\n";
        resp->body_len = strlen(resp->body);
        return;
    }
    if (strcmp(req->method, "GET") != 0) {
        resp->status = 405;
        resp->allow = "GET";
        resp->body = "method not allowed\n";
        resp->body_len = strlen(resp->body);
        return;
    }
    if (!strcmp(p, "/healthz")) {
        resp->status = 200;
        resp->body = "ok\n";
        resp->body_len = 3;
        return;
    }
    if (!strcmp(p, "/readyz")) {
        static char why[128];
        if (a->cfg.ready && !a->cfg.ready(a->cfg.arg, why, sizeof why - 1)) {
            strcat(why, "\n");
            resp->status = 503;
            resp->body = why;
            resp->body_len = strlen(why);
        } else {
            resp->status = 200;
            resp->body = "ready\n";
            resp->body_len = 6;
        }
        return;
    }
    oms_mtext t = {0};
    if (a->cfg.metrics)
        oms_metrics_render(a->cfg.metrics, &t);
    if (a->cfg.collect)
        a->cfg.collect(a->cfg.arg, &t);
    oms_metrics_render_process(&t, a->start_time, oms_version(), oms_commit());
    if (t.failed) {
        oms_mtext_dispose(&t);
        resp->status = 500;
        resp->body = "out of memory\n";
        resp->body_len = strlen(resp->body);
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = t.buf;
    resp->body_len = t.len;
    resp->free_body = free_text;
}

int omsd_admin_open(uv_loop_t *loop, const omsd_admin_config *cfg, omsd_admin **out, char *err,
                    size_t errlen)
{
    omsd_admin *a = oms_calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->cfg = *cfg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    a->start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    http1_server_config hc;
    http1_server_config_init(&hc);
    hc.host = cfg->host;
    hc.port = cfg->port;
    hc.handler = on_request;
    hc.data = a;
    if (http1_server_new(loop, &hc, &a->srv, err, errlen) != 0) {
        oms_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

int omsd_admin_port(const omsd_admin *a)
{
    return http1_server_port(a->srv);
}

static void on_closed(void *arg)
{
    oms_free(arg);
}

void omsd_admin_close(omsd_admin *a)
{
    if (a)
        http1_server_close(a->srv, on_closed, a);
}
