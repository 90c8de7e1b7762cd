/* protoc-gen-omsrpc - protoc plugin that writes typed gRPC server tables and
 * client stubs for oms's rpc layer (src/rpc/rpc.h, rpc_client.h).
 *
 *   protoc --plugin=protoc-gen-omsrpc=PATH --omsrpc_out=DIR -I... X.proto
 *
 * For every X.proto named on the command line that declares a service, it
 * writes X.omsrpc.h, X.omsrpc.c (server) and X.omsrpc-client.c (client) into
 * DIR, next to protoc-c's X.pb-c.h, which they include; names follow
 * protoc-c's conventions (see emit.c). A file without services gets no
 * output at all. There are no options: --omsrpc_opt is an error.
 *
 * protoc talks to the plugin over stdin/stdout: a serialized
 * CodeGeneratorRequest in, a CodeGeneratorResponse out (plugin.proto).
 * Problems with the input (name clashes) go back in the response's error
 * field, which protoc prints, and the plugin exits 0; a broken pipe or an
 * undecodable request exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "plugin.pb-c.h"

typedef Google__Protobuf__Compiler__CodeGeneratorRequest gen_request;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse gen_response;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File gen_out_file;
typedef Google__Protobuf__FileDescriptorProto file_proto;

/* Field numbers on the SourceCodeInfo paths of services and methods. */
enum { FILE_SERVICE = 6, SERVICE_METHOD = 2 };

/* Whole stdin, malloc'ed. */
static uint8_t *read_all(FILE *in, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = gen_xmalloc(cap);
    for (;;) {
        n += fread(buf + n, 1, cap - n, in);
        if (n < cap)
            break;
        uint8_t *more = realloc(buf, cap *= 2);
        if (!more)
            gen_oom();
        buf = more;
    }
    if (ferror(in)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* The leading comment at path in f's SourceCodeInfo, or NULL. */
static const char *comment_at(const file_proto *f, const int32_t *path, size_t n)
{
    if (!f->source_code_info)
        return NULL;
    for (size_t i = 0; i < f->source_code_info->n_location; i++) {
        const Google__Protobuf__SourceCodeInfo__Location *l = f->source_code_info->location[i];
        if (l->n_path == n && memcmp(l->path, path, n * sizeof *path) == 0)
            return l->leading_comments && l->leading_comments[0] ? l->leading_comments : NULL;
    }
    return NULL;
}

/* A message type as a comment shows it: relative to the file's package when
 * inside it, else fully qualified. */
static const char *proto_type(gen_pool *p, const char *type, const char *package)
{
    const char *t = type[0] == '.' ? type + 1 : type;
    size_t n = strlen(package);
    if (n && strncmp(t, package, n) == 0 && t[n] == '.')
        return gen_strdup(p, t + n + 1);
    return gen_strdup(p, t);
}

static const char *strip_proto(gen_pool *p, const char *name)
{
    size_t n = strlen(name);
    if (n > 6 && strcmp(name + n - 6, ".proto") == 0)
        n -= 6;
    else if (n > 11 && strcmp(name + n - 11, ".protodevel") == 0)
        n -= 11;
    return gen_printf(p, "%.*s", (int)n, name);
}

/* Builds the model of f's services. Returns NULL, or an error message (pool)
 * for input we cannot generate valid C for. */
static const char *build(gen_pool *p, const file_proto *f, gen_file *out)
{
    const char *pkg = f->package ? f->package : "";
    out->proto = f->name;
    out->stem = strip_proto(p, f->name);
    out->package = pkg;
    out->n_services = f->n_service;
    out->services = gen_alloc(p, f->n_service * sizeof *out->services);
    for (size_t i = 0; i < f->n_service; i++) {
        const Google__Protobuf__ServiceDescriptorProto *sp = f->service[i];
        gen_service *s = &out->services[i];
        int32_t spath[] = {FILE_SERVICE, (int32_t)i};
        if (!sp->name)
            return gen_printf(p, "%s: a service without a name", f->name);
        s->name = sp->name;
        s->full = pkg[0] ? gen_printf(p, "%s.%s", pkg, sp->name) : sp->name;
        s->lc = name_full_to_lower(p, s->full);
        s->uc = name_full_to_upper(p, s->full);
        s->ctype = name_full_to_c(p, s->full);
        s->desc = gen_printf(p, "%s__descriptor", s->lc);
        s->comment = comment_at(f, spath, 2);
        s->n_methods = sp->n_method;
        s->methods = gen_alloc(p, sp->n_method * sizeof *s->methods);
        for (size_t j = 0; j < sp->n_method; j++) {
            const Google__Protobuf__MethodDescriptorProto *mp = sp->method[j];
            gen_method *m = &s->methods[j];
            int32_t mpath[] = {FILE_SERVICE, (int32_t)i, SERVICE_METHOD, (int32_t)j};
            if (!mp->name || !mp->input_type || !mp->output_type)
                return gen_printf(p, "%s: service %s has an incomplete method", f->name, s->full);
            m->name = mp->name;
            m->lc = name_camel_to_lower(p, mp->name);
            m->member = name_is_c_keyword(m->lc) ? gen_printf(p, "%s_", m->lc) : m->lc;
            m->camel = name_full_to_c(p, mp->name);
            m->path = gen_printf(p, "/%s/%s", s->full, mp->name);
            m->in_type = name_full_to_c(p, mp->input_type);
            m->out_type = name_full_to_c(p, mp->output_type);
            m->in_desc = gen_printf(p, "%s__descriptor", name_full_to_lower(p, mp->input_type));
            m->out_desc = gen_printf(p, "%s__descriptor", name_full_to_lower(p, mp->output_type));
            m->in_proto = proto_type(p, mp->input_type, pkg);
            m->out_proto = proto_type(p, mp->output_type, pkg);
            m->client_streaming = mp->has_client_streaming && mp->client_streaming;
            m->server_streaming = mp->has_server_streaming && mp->server_streaming;
            m->no_side_effects =
                mp->options && mp->options->has_idempotency_level &&
                mp->options->idempotency_level ==
                    GOOGLE__PROTOBUF__METHOD_OPTIONS__IDEMPOTENCY_LEVEL__NO_SIDE_EFFECTS;
            m->comment = comment_at(f, mpath, 4);
        }
        s->sp = gen_printf(p, "omsrpc_%s", name_camel_to_lower(p, s->name));
    }
    /* static helpers are named after the method alone unless another
     * service of the file has a method of that name */
    for (size_t i = 0; i < out->n_services; i++) {
        gen_service *s = &out->services[i];
        for (size_t j = 0; j < s->n_methods; j++) {
            gen_method *m = &s->methods[j];
            size_t same = 0;
            for (size_t k = 0; k < out->n_services; k++)
                for (size_t l = 0; l < out->services[k].n_methods; l++)
                    same += strcmp(out->services[k].methods[l].lc, m->lc) == 0;
            m->sp = same > 1 ? gen_printf(p, "%s__%s", s->sp, m->lc)
                             : gen_printf(p, "omsrpc_%s", m->lc);
        }
    }
    return NULL;
}

/* Names we add next to protoc-c's <service>__<method>() must not be one of
 * them, and two methods must not map to one C name. */
static const char *check_names(gen_pool *p, const gen_file *f)
{
    static const char *const ours[] = {"register_server", "server_impl"};
    for (size_t i = 0; i < f->n_services; i++) {
        const gen_service *s = &f->services[i];
        for (size_t j = 0; j < s->n_methods; j++) {
            const gen_method *m = &s->methods[j];
            for (size_t k = 0; k < sizeof ours / sizeof ours[0]; k++)
                if (strcmp(m->lc, ours[k]) == 0)
                    return gen_printf(p,
                                      "%s: method %s.%s maps to %s__%s, which protoc-gen-omsrpc "
                                      "generates for the service itself; rename the method",
                                      f->proto, s->full, m->name, s->lc, m->lc);
            for (size_t k = 0; k < j; k++)
                if (strcmp(s->methods[k].lc, m->lc) == 0 ||
                    strcmp(s->methods[k].camel, m->camel) == 0)
                    return gen_printf(p, "%s: methods %s and %s of %s map to the same C name",
                                      f->proto, s->methods[k].name, m->name, s->full);
        }
    }
    return NULL;
}

static const file_proto *find_file(const gen_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_proto_file; i++)
        if (req->proto_file[i]->name && strcmp(req->proto_file[i]->name, name) == 0)
            return req->proto_file[i];
    return NULL;
}

static void add_file(gen_response *resp, gen_out_file *files, const char *name, char *content)
{
    gen_out_file *o = &files[resp->n_file];
    google__protobuf__compiler__code_generator_response__file__init(o);
    o->name = (char *)name; /* protobuf-c strings are not const; packing only reads */
    o->content = content;
    resp->file[resp->n_file++] = o;
}

/* Fills resp for req. Returns an error message (pool) or NULL. */
static const char *generate(gen_pool *p, const gen_request *req, gen_response *resp,
                            gen_out_file *files)
{
    if (req->parameter && req->parameter[0])
        return gen_printf(p, "unknown parameter \"%s\" (protoc-gen-omsrpc takes none)",
                          req->parameter);
    for (size_t i = 0; i < req->n_file_to_generate; i++) {
        const file_proto *f = find_file(req, req->file_to_generate[i]);
        if (!f)
            return gen_printf(p, "%s: not in the request", req->file_to_generate[i]);
        if (f->n_service == 0)
            continue; /* nothing to generate, and no empty files either */
        gen_file model = {0};
        const char *err = build(p, f, &model);
        if (!err)
            err = check_names(p, &model);
        if (err)
            return err;
        add_file(resp, files, gen_printf(p, "%s.omsrpc.h", model.stem), emit_header(&model));
        add_file(resp, files, gen_printf(p, "%s.omsrpc.c", model.stem), emit_server(&model));
        add_file(resp, files, gen_printf(p, "%s.omsrpc-client.c", model.stem), emit_client(&model));
    }
    return NULL;
}

int main(void)
{
    size_t len;
    uint8_t *in = read_all(stdin, &len);
    if (!in) {
        fputs("protoc-gen-omsrpc: cannot read the request from stdin\n", stderr);
        return 1;
    }
    gen_request *req = google__protobuf__compiler__code_generator_request__unpack(NULL, len, in);
    free(in);
    if (!req) {
        fputs("protoc-gen-omsrpc: stdin is not a CodeGeneratorRequest "
              "(run me through protoc --plugin)\n",
              stderr);
        return 1;
    }

    gen_pool *p = gen_pool_new();
    gen_response resp = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
    resp.has_supported_features = 1;
    resp.supported_features =
        GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
    size_t max_files = 3 * req->n_file_to_generate;
    gen_out_file *files = gen_alloc(p, max_files * sizeof *files);
    resp.file = gen_alloc(p, max_files * sizeof *resp.file);

    const char *err = generate(p, req, &resp, files);
    if (err) {
        for (size_t i = 0; i < resp.n_file; i++)
            free(resp.file[i]->content);
        resp.n_file = 0;
        resp.error = (char *)err;
    }

    size_t n = google__protobuf__compiler__code_generator_response__get_packed_size(&resp);
    uint8_t *out = gen_xmalloc(n);
    google__protobuf__compiler__code_generator_response__pack(&resp, out);
    int rc = fwrite(out, 1, n, stdout) == n && fflush(stdout) == 0 ? 0 : 1;
    if (rc)
        fputs("protoc-gen-omsrpc: cannot write the response to stdout\n", stderr);

    free(out);
    for (size_t i = 0; i < resp.n_file; i++)
        free(resp.file[i]->content);
    gen_pool_free(p);
    google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
    return rc;
}
