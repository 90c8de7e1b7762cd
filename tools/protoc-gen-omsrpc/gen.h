/* gen.h - protoc-gen-omsrpc internals: the model of one .proto's services,
 * C names in protoc-c's conventions, a text buffer, and the three emitters.
 *
 * The plugin is a short-lived process: every string of the model comes from
 * one pool freed at exit, and running out of memory ends the process with a
 * message (gen_oom()).
 */
#ifndef OMSRPC_GEN_H
#define OMSRPC_GEN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* --- memory ------------------------------------------------------------- */

/* Prints "out of memory" and exits(1). */
void gen_oom(void) __attribute__((noreturn));
void *gen_xmalloc(size_t n);

/* A pool of strings (and other small objects) freed together. */
typedef struct gen_pool gen_pool;
gen_pool *gen_pool_new(void);
void gen_pool_free(gen_pool *p);
/* Zeroed memory from the pool. */
void *gen_alloc(gen_pool *p, size_t n);
char *gen_strdup(gen_pool *p, const char *s);
char *gen_printf(gen_pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- text --------------------------------------------------------------- */

/* A growable NUL-terminated string. Embedded; init/dispose. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

void sb_init(sbuf *b);
void sb_dispose(sbuf *b);
/* Hands the string over (the caller frees it); b is disposed. */
char *sb_take(sbuf *b);
void sb_puts(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vprintf(sbuf *b, const char *fmt, va_list ap);

/* Writes a declaration "<indent><head><p0>, <p1>...<tail>\n" where head ends
 * with '(' and tail starts with ')', wrapped at 100 columns the way
 * clang-format (LLVM, 4 spaces) would: parameters aligned after '(', or, when
 * that leaves too little room, on their own lines indented 4 more. */
void sb_decl(sbuf *b, int indent, const char *head, const char *const *params, size_t n,
             const char *tail);

/* Writes text as a block comment at indent: one " * " line per line of
 * text, long lines wrapped at spaces to 100 columns (continuations keep the
 * line's own indent); a line's first space is dropped, as protoc leaves the
 * one after "//". Comment delimiters inside are defused. Leading and trailing
 * empty lines are dropped; empty text writes nothing. */
void sb_comment(sbuf *b, int indent, const char *text);

/* --- names (protoc-c's conventions) ------------------------------------- */

/* "CreateOrder" -> "create_order" (protoc-c's CamelToLower). */
char *name_camel_to_lower(gen_pool *p, const char *s);
/* "oms.bench.v1.OrderBench" -> "oms__bench__v1__order_bench" (FullNameToLower);
 * a leading '.' is ignored. */
char *name_full_to_lower(gen_pool *p, const char *full);
/* -> "OMS__BENCH__V1__ORDER_BENCH" (FullNameToUpper). */
char *name_full_to_upper(gen_pool *p, const char *full);
/* -> "Oms__Bench__V1__OrderBench" (FullNameToC), the C type of a message. */
char *name_full_to_c(gen_pool *p, const char *full);
/* Whether s is a C keyword (or a <stdbool.h> macro), so it cannot name a
 * struct member. */
bool name_is_c_keyword(const char *s);
/* "oms/bench/v1/bench.proto" -> "oms_2fbench_2fv1_2fbench_2eproto" (for
 * include guards). */
char *name_file_ident(gen_pool *p, const char *file);

/* Writes "<indent><lhs> = <rhs>;\n", breaking after '=' when too long. */
void sb_assign(sbuf *b, int indent, const char *lhs, const char *rhs);

/* --- model --------------------------------------------------------------- */

typedef struct gen_method {
    const char *name;     /* "CreateOrder" */
    const char *lc;       /* "create_order": in function names */
    const char *member;   /* lc, with '_' appended if a C keyword */
    const char *camel;    /* "CreateOrder" as in C type names */
    const char *path;     /* "/oms.bench.v1.OrderBench/CreateOrder" */
    const char *in_type;  /* "Oms__Bench__V1__CreateOrderRequest" */
    const char *out_type; /* "Oms__Bench__V1__Order" */
    const char *in_desc;  /* "oms__bench__v1__create_order_request__descriptor" */
    const char *out_desc;
    const char *in_proto;  /* ".proto" spelling for comments: "CreateOrderRequest" */
    const char *out_proto; /* or a fully qualified name outside the package */
    bool client_streaming, server_streaming;
    bool no_side_effects; /* option idempotency_level = NO_SIDE_EFFECTS */
    const char *comment;  /* leading comment in the .proto, or NULL */
    const char *sp;       /* prefix of its static helpers: "omsrpc_create_order", or
                             "omsrpc_<service>__<method>" if the name recurs in the file */
} gen_method;

typedef struct gen_service {
    const char *name;  /* "OrderBench" */
    const char *full;  /* "oms.bench.v1.OrderBench" */
    const char *lc;    /* "oms__bench__v1__order_bench": function prefix */
    const char *uc;    /* "OMS__BENCH__V1__ORDER_BENCH": macro prefix */
    const char *ctype; /* "Oms__Bench__V1__OrderBench": type prefix */
    const char *desc;  /* "oms__bench__v1__order_bench__descriptor" (protoc-c's) */
    const char *sp;    /* prefix of its static tables: "omsrpc_order_bench" */
    gen_method *methods;
    size_t n_methods;
    const char *comment;
} gen_service;

typedef struct gen_file {
    const char *proto;   /* "oms/bench/v1/bench.proto" */
    const char *stem;    /* "oms/bench/v1/bench" */
    const char *package; /* "oms.bench.v1" or "" */
    gen_service *services;
    size_t n_services;
} gen_file;

/* Kinds of call, from the method's streaming flags. */
static inline const char *gen_kind(const gen_method *m)
{
    if (m->client_streaming && m->server_streaming)
        return "bidi streaming";
    if (m->client_streaming)
        return "client streaming";
    if (m->server_streaming)
        return "server streaming";
    return "unary";
}

/* --- emitters (emit.c) --------------------------------------------------- */

/* Each returns the whole file as a malloc'ed string. */
char *emit_header(const gen_file *f);
char *emit_server(const gen_file *f);
char *emit_client(const gen_file *f);

#endif
