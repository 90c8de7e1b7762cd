/* reflection.c - grpc.reflection.v1 and v1alpha ServerReflection.
 *
 * The index is three sorted arrays searched with bsearch(): files by name
 * (each keeps its re-packed FileDescriptorProto and its direct dependencies
 * as file indices), symbols (full name -> file) and extensions ((extendee,
 * number) -> file). Every name lives in a string pool of chunks that never
 * move, owned by the index. Nothing changes after rpc_reflection_new(), so
 * loops share the object without locks.
 *
 * The handler is written once, against the v1 generated types. The v1alpha
 * messages are wire-identical, so a v1alpha request is transcoded (packed and
 * unpacked) into a v1 one, and the v1 response back into a v1alpha one.
 * Reflection is no hot path: requests are tiny, responses a few KiB.
 */
#include "base/alloc.h"
#include "rpc/reflection.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.omsrpc.h"
#include "grpc/reflection/v1alpha/reflection.omsrpc.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_request;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_response;
typedef Google__Protobuf__FileDescriptorProto file_proto;
typedef Google__Protobuf__DescriptorProto message_proto;
typedef Google__Protobuf__EnumDescriptorProto enum_proto;
typedef Google__Protobuf__FieldDescriptorProto field_proto;

typedef enum sym_kind {
    SYM_MESSAGE,
    SYM_ENUM,
    SYM_ENUM_VALUE,
    SYM_FIELD,
    SYM_ONEOF,
    SYM_SERVICE,
    SYM_METHOD,
    SYM_EXTENSION,
} sym_kind;

typedef struct refl_file {
    const char *name; /* in the pool */
    uint8_t *bytes;   /* serialized FileDescriptorProto (malloc) */
    size_t len;
    size_t *deps; /* direct dependencies found in the set, as file indices */
    size_t n_deps;
    const Google__Protobuf__FileDescriptorProto *src; /* while building only */
} refl_file;

typedef struct refl_name {
    const char *name; /* a file's name (pool) */
    size_t file;
} refl_name;

typedef struct refl_symbol {
    const char *name; /* fully qualified, no leading '.' (pool) */
    size_t file;
    sym_kind kind;
} refl_symbol;

typedef struct refl_ext {
    const char *extendee; /* fully qualified, no leading '.' (pool) */
    int32_t number;
    size_t file;
} refl_ext;

/* A chunk of the string pool; strings are never moved or freed alone. */
typedef struct pool_chunk {
    struct pool_chunk *next;
    size_t used, cap; /* bytes of data[] */
    char data[];
} pool_chunk;

#define POOL_CHUNK 8192

struct rpc_reflection {
    refl_file *files; /* in set order, duplicates dropped */
    size_t n_files;
    refl_name *by_name; /* files sorted by name */
    refl_symbol *syms;
    size_t n_syms, cap_syms;
    refl_ext *exts;
    size_t n_exts, cap_exts;
    pool_chunk *pool;
    rpc_server *srv; /* the one server registered with, for list_services */
};

/* --- building the index --------------------------------------------------- */

/* Copies "scope.name" (or just name when scope is NULL or empty) into the
 * pool. Returns the copy or NULL on ENOMEM. */
static const char *pool_join(rpc_reflection *r, const char *scope, const char *name)
{
    size_t ls = scope ? strlen(scope) : 0;
    size_t ln = strlen(name);
    size_t need = ls + (ls ? 1 : 0) + ln + 1;
    pool_chunk *ch = r->pool;
    if (!ch || ch->cap - ch->used < need) {
        size_t cap = need > POOL_CHUNK ? need : POOL_CHUNK;
        ch = oms_malloc(sizeof(*ch) + cap);
        if (!ch)
            return NULL;
        ch->next = r->pool;
        ch->used = 0;
        ch->cap = cap;
        r->pool = ch;
    }
    char *s = ch->data + ch->used;
    char *p = s;
    if (ls) {
        memcpy(p, scope, ls);
        p[ls] = '.';
        p += ls + 1;
    }
    memcpy(p, name, ln + 1);
    ch->used += need;
    return s;
}

static const char *skip_dot(const char *s)
{
    return s[0] == '.' ? s + 1 : s;
}

/* Adds scope.name as a symbol of file. A NULL name (malformed proto2 input)
 * is skipped; *full gets the pooled name, NULL when skipped. */
static int add_symbol(rpc_reflection *r, size_t file, sym_kind kind, const char *scope,
                      const char *name, const char **full)
{
    if (full)
        *full = NULL;
    if (!name)
        return 0;
    if (r->n_syms == r->cap_syms) {
        size_t cap = r->cap_syms ? r->cap_syms * 2 : 256;
        refl_symbol *s = oms_realloc(r->syms, cap * sizeof(*s));
        if (!s)
            return -1;
        r->syms = s;
        r->cap_syms = cap;
    }
    const char *s = pool_join(r, scope, name);
    if (!s)
        return -1;
    r->syms[r->n_syms++] = (refl_symbol){.name = s, .file = file, .kind = kind};
    if (full)
        *full = s;
    return 0;
}

/* Indexes an extension field declared in scope: as a symbol and by
 * (extendee, number). protoc writes extendee fully qualified. */
static int add_extension(rpc_reflection *r, size_t file, const char *scope, const field_proto *f)
{
    if (add_symbol(r, file, SYM_EXTENSION, scope, f->name, NULL) != 0)
        return -1;
    if (!f->extendee || !f->has_number)
        return 0;
    if (r->n_exts == r->cap_exts) {
        size_t cap = r->cap_exts ? r->cap_exts * 2 : 16;
        refl_ext *e = oms_realloc(r->exts, cap * sizeof(*e));
        if (!e)
            return -1;
        r->exts = e;
        r->cap_exts = cap;
    }
    const char *ext = pool_join(r, NULL, skip_dot(f->extendee));
    if (!ext)
        return -1;
    r->exts[r->n_exts++] = (refl_ext){.extendee = ext, .number = f->number, .file = file};
    return 0;
}

/* An enum and its values; values are scoped as siblings of the enum. */
static int index_enum(rpc_reflection *r, size_t file, const char *scope, const enum_proto *e)
{
    if (add_symbol(r, file, SYM_ENUM, scope, e->name, NULL) != 0)
        return -1;
    for (size_t i = 0; i < e->n_value; i++)
        if (add_symbol(r, file, SYM_ENUM_VALUE, scope, e->value[i]->name, NULL) != 0)
            return -1;
    return 0;
}

/* A message with its fields, oneofs, extensions, nested messages and enums. */
static int index_message(rpc_reflection *r, size_t file, const char *scope, const message_proto *m)
{
    const char *full;
    if (add_symbol(r, file, SYM_MESSAGE, scope, m->name, &full) != 0)
        return -1;
    if (!full)
        return 0;
    for (size_t i = 0; i < m->n_field; i++)
        if (add_symbol(r, file, SYM_FIELD, full, m->field[i]->name, NULL) != 0)
            return -1;
    for (size_t i = 0; i < m->n_oneof_decl; i++)
        if (add_symbol(r, file, SYM_ONEOF, full, m->oneof_decl[i]->name, NULL) != 0)
            return -1;
    for (size_t i = 0; i < m->n_extension; i++)
        if (add_extension(r, file, full, m->extension[i]) != 0)
            return -1;
    for (size_t i = 0; i < m->n_nested_type; i++)
        if (index_message(r, file, full, m->nested_type[i]) != 0)
            return -1;
    for (size_t i = 0; i < m->n_enum_type; i++)
        if (index_enum(r, file, full, m->enum_type[i]) != 0)
            return -1;
    return 0;
}

static int index_file(rpc_reflection *r, size_t file, const file_proto *f)
{
    const char *pkg = f->package;
    for (size_t i = 0; i < f->n_message_type; i++)
        if (index_message(r, file, pkg, f->message_type[i]) != 0)
            return -1;
    for (size_t i = 0; i < f->n_enum_type; i++)
        if (index_enum(r, file, pkg, f->enum_type[i]) != 0)
            return -1;
    for (size_t i = 0; i < f->n_extension; i++)
        if (add_extension(r, file, pkg, f->extension[i]) != 0)
            return -1;
    for (size_t i = 0; i < f->n_service; i++) {
        const Google__Protobuf__ServiceDescriptorProto *s = f->service[i];
        const char *full;
        if (add_symbol(r, file, SYM_SERVICE, pkg, s->name, &full) != 0)
            return -1;
        for (size_t j = 0; full && j < s->n_method; j++)
            if (add_symbol(r, file, SYM_METHOD, full, s->method[j]->name, NULL) != 0)
                return -1;
    }
    return 0;
}

/* qsort()/bsearch() that accept an empty (NULL) array. */
static void sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n)
        qsort(base, n, size, cmp);
}

static void *search(const void *key, const void *base, size_t n, size_t size,
                    int (*cmp)(const void *, const void *))
{
    return n ? bsearch(key, base, n, size, cmp) : NULL;
}

static int cmp_symbol(const void *a, const void *b)
{
    return strcmp(((const refl_symbol *)a)->name, ((const refl_symbol *)b)->name);
}

static int cmp_ext(const void *a, const void *b)
{
    const refl_ext *x = a, *y = b;
    int c = strcmp(x->extendee, y->extendee);
    if (c)
        return c;
    return (x->number > y->number) - (x->number < y->number);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const refl_name *)a)->name, ((const refl_name *)b)->name);
}

static bool file_seen(const rpc_reflection *r, const char *name)
{
    /* O(n^2) over the set, once at start-up; sets hold tens of files. */
    for (size_t i = 0; i < r->n_files; i++)
        if (strcmp(r->files[i].name, name) == 0)
            return true;
    return false;
}

/* Copies file f into the index as file r->n_files (unless a file of that
 * name is already in): name, re-packed bytes, symbols. The slot counts in
 * n_files as soon as it is claimed, so rpc_reflection_free() cleans up a
 * half-built one. */
static int add_file(rpc_reflection *r, const file_proto *f)
{
    if (!f->name)
        return -1;
    if (file_seen(r, f->name))
        return 0;
    size_t fi = r->n_files++;
    refl_file *rf = &r->files[fi];
    rf->src = f;
    if (!(rf->name = pool_join(r, NULL, f->name)))
        return -1;
    rf->len = google__protobuf__file_descriptor_proto__get_packed_size(f);
    if (!(rf->bytes = oms_malloc(rf->len ? rf->len : 1)))
        return -1;
    google__protobuf__file_descriptor_proto__pack(f, rf->bytes);
    if (f->n_dependency && !(rf->deps = oms_malloc(f->n_dependency * sizeof(*rf->deps))))
        return -1;
    return index_file(r, fi, f);
}

/* Turns dependency names into file indices; needs by_name sorted. Imports
 * missing from the set are skipped: clients then ask for them by name and
 * get NOT_FOUND, which names the gap. */
static void resolve_deps(rpc_reflection *r)
{
    for (size_t i = 0; i < r->n_files; i++) {
        refl_file *rf = &r->files[i];
        for (size_t j = 0; j < rf->src->n_dependency; j++) {
            const char *dep = rf->src->dependency[j];
            long d = dep ? rpc_reflection_find_file(r, dep) : -1;
            if (d >= 0 && (size_t)d != i)
                rf->deps[rf->n_deps++] = (size_t)d;
        }
        rf->src = NULL; /* the unpacked set is about to go */
    }
}

rpc_reflection *rpc_reflection_new(const uint8_t *fds, size_t len)
{
    Google__Protobuf__FileDescriptorSet *set =
        google__protobuf__file_descriptor_set__unpack(rpc_system_allocator(), len, fds);
    if (!set)
        return NULL;
    rpc_reflection *r = oms_calloc(1, sizeof(*r));
    if (!r)
        goto fail_set;
    if (set->n_file && (!(r->files = oms_calloc(set->n_file, sizeof(*r->files))) ||
                        !(r->by_name = oms_malloc(set->n_file * sizeof(*r->by_name)))))
        goto fail_index;
    for (size_t i = 0; i < set->n_file; i++)
        if (add_file(r, set->file[i]) != 0)
            goto fail_index;

    for (size_t i = 0; i < r->n_files; i++)
        r->by_name[i] = (refl_name){.name = r->files[i].name, .file = i};
    sort(r->by_name, r->n_files, sizeof(*r->by_name), cmp_name);
    sort(r->syms, r->n_syms, sizeof(*r->syms), cmp_symbol);
    sort(r->exts, r->n_exts, sizeof(*r->exts), cmp_ext);
    resolve_deps(r);
    google__protobuf__file_descriptor_set__free_unpacked(set, rpc_system_allocator());
    return r;

fail_index:
    rpc_reflection_free(r);
fail_set:
    google__protobuf__file_descriptor_set__free_unpacked(set, rpc_system_allocator());
    return NULL;
}

void rpc_reflection_free(rpc_reflection *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_files; i++) {
        oms_free(r->files[i].bytes);
        oms_free(r->files[i].deps);
    }
    oms_free(r->files);
    oms_free(r->by_name);
    oms_free(r->syms);
    oms_free(r->exts);
    while (r->pool) {
        pool_chunk *next = r->pool->next;
        oms_free(r->pool);
        r->pool = next;
    }
    oms_free(r);
}

/* --- queries --------------------------------------------------------------- */

size_t rpc_reflection_file_count(const rpc_reflection *r)
{
    return r->n_files;
}

const char *rpc_reflection_file_name(const rpc_reflection *r, size_t i)
{
    return i < r->n_files ? r->files[i].name : NULL;
}

const uint8_t *rpc_reflection_file_bytes(const rpc_reflection *r, size_t i, size_t *len)
{
    if (i >= r->n_files)
        return NULL;
    *len = r->files[i].len;
    return r->files[i].bytes;
}

long rpc_reflection_find_file(const rpc_reflection *r, const char *name)
{
    refl_name key = {.name = name};
    const refl_name *n = search(&key, r->by_name, r->n_files, sizeof(*r->by_name), cmp_name);
    return n ? (long)n->file : -1;
}

static const refl_symbol *find_symbol(const rpc_reflection *r, const char *symbol)
{
    refl_symbol key = {.name = skip_dot(symbol)};
    return search(&key, r->syms, r->n_syms, sizeof(*r->syms), cmp_symbol);
}

long rpc_reflection_find_symbol(const rpc_reflection *r, const char *symbol)
{
    const refl_symbol *s = find_symbol(r, symbol);
    return s ? (long)s->file : -1;
}

long rpc_reflection_find_extension(const rpc_reflection *r, const char *extendee, int32_t number)
{
    refl_ext key = {.extendee = skip_dot(extendee), .number = number};
    const refl_ext *e = search(&key, r->exts, r->n_exts, sizeof(*r->exts), cmp_ext);
    return e ? (long)e->file : -1;
}

long rpc_reflection_extension_numbers(const rpc_reflection *r, const char *type, int32_t *out,
                                      size_t cap)
{
    const refl_symbol *s = find_symbol(r, type);
    if (!s || s->kind != SYM_MESSAGE)
        return -1;
    /* exts is sorted by (extendee, number): find the first of the run. */
    const char *name = skip_dot(type);
    size_t lo = 0, hi = r->n_exts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(r->exts[mid].extendee, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t n = 0;
    for (size_t i = lo; i < r->n_exts && strcmp(r->exts[i].extendee, name) == 0; i++, n++)
        if (n < cap)
            out[n] = r->exts[i].number;
    return (long)n;
}

/* Depth-first, pre-order: a file before its imports, each file once. */
static size_t closure_visit(const rpc_reflection *r, size_t i, bool *seen, size_t *out, size_t n,
                            size_t cap)
{
    if (seen[i] || n >= cap)
        return n;
    seen[i] = true;
    out[n++] = i;
    for (size_t d = 0; d < r->files[i].n_deps; d++)
        n = closure_visit(r, r->files[i].deps[d], seen, out, n, cap);
    return n;
}

size_t rpc_reflection_file_closure(const rpc_reflection *r, size_t i, size_t *out, size_t cap)
{
    if (i >= r->n_files)
        return 0;
    bool *seen = oms_calloc(r->n_files, sizeof(*seen));
    if (!seen)
        return 0;
    size_t n = closure_visit(r, i, seen, out, 0, cap);
    oms_free(seen);
    return n;
}

/* --- the ServerReflectionInfo handler -------------------------------------- */

/* One response and the parts it points to. Everything is released by
 * answer_dispose() once the response was serialized by rpc_call_send(). */
typedef struct refl_answer {
    refl_response resp;
    Grpc__Reflection__V1__FileDescriptorResponse files;
    Grpc__Reflection__V1__ListServiceResponse list;
    Grpc__Reflection__V1__ExtensionNumberResponse numbers;
    Grpc__Reflection__V1__ErrorResponse error;
    char error_message[320];
    void *heap[2];
} refl_answer;

static void answer_dispose(refl_answer *a)
{
    oms_free(a->heap[0]);
    oms_free(a->heap[1]);
}

static void answer_error(refl_answer *a, rpc_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void answer_error(refl_answer *a, rpc_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->error_message, sizeof(a->error_message), fmt, ap);
    va_end(ap);
    grpc__reflection__v1__error_response__init(&a->error);
    a->error.error_code = (int32_t)code;
    a->error.error_message = a->error_message;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    a->resp.error_response = &a->error;
}

/* file_descriptor_response: file and all its transitive imports. Sending
 * every import each time is what the protocol allows at the simplest ("may
 * skip files already sent"); clients dedupe by name. The bytes are borrowed
 * from the index. Returns 0 or -1 (ENOMEM). */
static int answer_files(refl_answer *a, const rpc_reflection *r, size_t file)
{
    size_t *idx = oms_malloc(r->n_files * sizeof(*idx));
    ProtobufCBinaryData *blobs = oms_malloc(r->n_files * sizeof(*blobs));
    if (!idx || !blobs) {
        oms_free(idx);
        oms_free(blobs);
        return -1;
    }
    size_t n = rpc_reflection_file_closure(r, file, idx, r->n_files);
    for (size_t i = 0; i < n; i++) {
        /* protobuf-c's ProtobufCBinaryData is not const; packing only reads. */
        blobs[i].data = r->files[idx[i]].bytes;
        blobs[i].len = r->files[idx[i]].len;
    }
    oms_free(idx);
    if (n == 0) {
        oms_free(blobs);
        return -1;
    }
    a->heap[0] = blobs;
    grpc__reflection__v1__file_descriptor_response__init(&a->files);
    a->files.n_file_descriptor_proto = n;
    a->files.file_descriptor_proto = blobs;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    a->resp.file_descriptor_response = &a->files;
    return 0;
}

/* list_services_response: the services registered on the server now. */
static int answer_list(refl_answer *a, const rpc_reflection *r)
{
    size_t n = r->srv ? rpc_server_service_count(r->srv) : 0;
    Grpc__Reflection__V1__ServiceResponse *svc = oms_calloc(n ? n : 1, sizeof(*svc));
    Grpc__Reflection__V1__ServiceResponse **ptr = oms_calloc(n ? n : 1, sizeof(*ptr));
    if (!svc || !ptr) {
        oms_free(svc);
        oms_free(ptr);
        return -1;
    }
    a->heap[0] = svc;
    a->heap[1] = ptr;
    for (size_t i = 0; i < n; i++) {
        grpc__reflection__v1__service_response__init(&svc[i]);
        /* Not const in protobuf-c; packing only reads it. */
        svc[i].name = (char *)rpc_server_service_name(r->srv, i);
        ptr[i] = &svc[i];
    }
    grpc__reflection__v1__list_service_response__init(&a->list);
    a->list.n_service = n;
    a->list.service = ptr;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    a->resp.list_services_response = &a->list;
    return 0;
}

/* all_extension_numbers_response, or NOT_FOUND for an unknown type. */
static int answer_numbers(refl_answer *a, const rpc_reflection *r, char *type)
{
    long n = rpc_reflection_extension_numbers(r, type, NULL, 0);
    if (n < 0) {
        answer_error(a, RPC_NOT_FOUND, "type not found: %s", RPC_QUOTE(type, strlen(type)));
        return 0;
    }
    int32_t *nums = oms_malloc((size_t)(n ? n : 1) * sizeof(*nums));
    if (!nums)
        return -1;
    a->heap[0] = nums;
    rpc_reflection_extension_numbers(r, type, nums, (size_t)n);
    grpc__reflection__v1__extension_number_response__init(&a->numbers);
    a->numbers.base_type_name = type;
    a->numbers.n_extension_number = (size_t)n;
    a->numbers.extension_number = nums;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
    a->resp.all_extension_numbers_response = &a->numbers;
    return 0;
}

/* protobuf-c leaves a string NULL only on malformed input paths; be safe. */
static char *str_or_empty(char *s)
{
    return s ? s : (char *)"";
}

/* A request string quoted for an error message (rpc_quote), "" for NULL. */
#define quote_str(s) RPC_QUOTE(str_or_empty(s), strlen(str_or_empty(s)))

/* Fills a's response for req. Errors about the request become an
 * error_response (the stream goes on); returns -1 only on ENOMEM. */
static int answer(refl_answer *a, const rpc_reflection *r, const refl_request *req)
{
    long f;
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        if ((f = rpc_reflection_find_file(r, str_or_empty(req->file_by_filename))) < 0)
            break;
        return answer_files(a, r, (size_t)f);
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        if ((f = rpc_reflection_find_symbol(r, str_or_empty(req->file_containing_symbol))) < 0)
            break;
        return answer_files(a, r, (size_t)f);
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
        const Grpc__Reflection__V1__ExtensionRequest *e = req->file_containing_extension;
        if (!e || !e->containing_type)
            break;
        if ((f = rpc_reflection_find_extension(r, e->containing_type, e->extension_number)) < 0)
            break;
        return answer_files(a, r, (size_t)f);
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        return answer_numbers(a, r, str_or_empty(req->all_extension_numbers_of_type));
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        return answer_list(a, r);
    default:
        answer_error(a, RPC_INVALID_ARGUMENT, "empty reflection request");
        return 0;
    }

    /* Not found: name what was asked for. */
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        answer_error(a, RPC_NOT_FOUND, "file not found: %s", quote_str(req->file_by_filename));
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        answer_error(a, RPC_NOT_FOUND, "symbol not found: %s",
                     quote_str(req->file_containing_symbol));
        break;
    default: {
        const Grpc__Reflection__V1__ExtensionRequest *e = req->file_containing_extension;
        answer_error(a, RPC_NOT_FOUND, "extension not found: %s(%d)",
                     quote_str(e ? e->containing_type : NULL), e ? (int)e->extension_number : 0);
        break;
    }
    }
    return 0;
}

/* Re-encodes m as a message of the wire-identical type `to`. The result comes
 * from the system allocator: free it with protobuf_c_message_free_unpacked(x,
 * NULL). NULL on ENOMEM. */
static ProtobufCMessage *transcode(const ProtobufCMessage *m, const ProtobufCMessageDescriptor *to)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = oms_malloc(n ? n : 1);
    if (!buf)
        return NULL;
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *out = protobuf_c_message_unpack(to, rpc_system_allocator(), n, buf);
    oms_free(buf);
    return out;
}

/* Answers one request (v1 types) on c. A v1alpha call (alpha) gets the
 * wire-identical v1alpha twin of the response. One response per request,
 * echoing host and request: rpc_call_send() queues even when it returns
 * RPC_AGAIN, and rpc delivers no further request while the queue is full, so
 * this echo-style handler never waits on on_ready. */
static void reply(rpc_call *c, const refl_request *req, bool alpha)
{
    const rpc_reflection *r = rpc_call_service_data(c);
    ProtobufCMessage *twin = NULL;
    refl_answer a = {0};
    int rv;

    grpc__reflection__v1__server_reflection_response__init(&a.resp);
    /* protobuf-c fields are not const; packing only reads them. */
    a.resp.valid_host = req->host;
    a.resp.original_request = (refl_request *)req;
    if (answer(&a, r, req) != 0)
        goto fail_nomem;
    if (!alpha) {
        rv = grpc__reflection__v1__server_reflection__server_reflection_info__send(c, &a.resp);
    } else {
        twin = transcode(&a.resp.base,
                         &grpc__reflection__v1alpha__server_reflection_response__descriptor);
        if (!twin)
            goto fail_nomem;
        rv = grpc__reflection__v1alpha__server_reflection__server_reflection_info__send(
            c, (const Grpc__Reflection__V1alpha__ServerReflectionResponse *)twin);
    }
    if (rv < 0 && rv != RPC_ECANCELLED)
        rpc_call_finish(c, rv == RPC_ETOOBIG ? RPC_RESOURCE_EXHAUSTED : RPC_INTERNAL,
                        "reflection response could not be sent");
    goto done;

fail_nomem:
    rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "reflection: out of memory");
done:
    if (twin)
        protobuf_c_message_free_unpacked(twin, rpc_system_allocator());
    answer_dispose(&a);
}

static void on_refl_message_v1(rpc_call *c, const refl_request *req)
{
    reply(c, req, false);
}

/* The handler is written against v1: a v1alpha request is transcoded first. */
static void on_refl_message_v1alpha(rpc_call *c,
                                    const Grpc__Reflection__V1alpha__ServerReflectionRequest *req)
{
    ProtobufCMessage *v1 =
        transcode(&req->base, &grpc__reflection__v1__server_reflection_request__descriptor);
    if (!v1) {
        rpc_call_finish(c, RPC_RESOURCE_EXHAUSTED, "reflection: out of memory");
        return;
    }
    reply(c, (const refl_request *)v1, true);
    protobuf_c_message_free_unpacked(v1, rpc_system_allocator());
}

static void on_refl_half_close(rpc_call *c)
{
    rpc_call_finish(c, RPC_OK, NULL);
}

/* ServerReflection has one method, ServerReflectionInfo, in both versions. */
static const Grpc__Reflection__V1__ServerReflection_Server refl_v1 = {
    .server_reflection_info = {.on_request = on_refl_message_v1,
                               .on_half_close = on_refl_half_close},
};

static const Grpc__Reflection__V1alpha__ServerReflection_Server refl_v1alpha = {
    .server_reflection_info = {.on_request = on_refl_message_v1alpha,
                               .on_half_close = on_refl_half_close},
};

int rpc_reflection_register(rpc_server *srv, rpc_reflection *r)
{
    if (!srv || !r || (r->srv && r->srv != srv))
        return RPC_EINVAL;
    r->srv = srv;
    int rv = grpc__reflection__v1__server_reflection__register_server(srv, &refl_v1, r);
    if (rv != 0)
        return rv;
    return grpc__reflection__v1alpha__server_reflection__register_server(srv, &refl_v1alpha, r);
}
