/* omsd_web.c - the rpc server's HTTP handler for the live order page. */
#include "omsd/omsd_web.h"

#include "base/alloc.h"
#include "web/web.h"

/* One answer, alive until rpc queued it. */
typedef struct page_answer {
    web_reply reply;
    rpc_http_header headers[WEB_MAX_HEADERS];
} page_answer;

static void release(void *arg)
{
    page_answer *a = arg;
    web_reply_release(&a->reply);
    oms_free(a);
}

static void on_http(void *data, const rpc_http_request *req, rpc_http_response *resp)
{
    const char *root = data;
    page_answer *a = oms_malloc(sizeof *a);
    if (!a) {
        resp->status = 503;
        return;
    }
    web_answer(root, req->method, req->path, req->path_len, req->if_none_match, &a->reply);
    for (size_t i = 0; i < a->reply.nheaders; i++)
        a->headers[i] = (rpc_http_header){a->reply.headers[i].name, a->reply.headers[i].value};
    resp->status = a->reply.status;
    resp->headers = a->headers;
    resp->nheaders = a->reply.nheaders;
    resp->body = a->reply.body;
    resp->len = a->reply.body ? a->reply.len : 0;
    resp->release = release;
    resp->release_arg = a;
}

void omsd_web_attach(rpc_server *srv, const char *root)
{
    rpc_server_set_http_handler(srv, on_http, (void *)root);
}
