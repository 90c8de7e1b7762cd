/* omsctl_err.c - how omsctl reports a failed call: "omsctl: CODE: message"
 * on stderr, with the server's rich error details (google.rpc.Status in
 * grpc-status-details-bin) as indented lines under it; with --json, one JSON
 * object instead:
 *
 *   {"code":"FAILED_PRECONDITION","message":"...","details":[
 *     {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":...}]}
 *
 * Detail objects follow the canonical protobuf JSON mapping of the google.rpc
 * messages (lowerCamelCase names, "@type" for the Any's type_url); a detail of
 * a type omsctl does not know is printed with its type alone.
 */
#include <stdlib.h>
#include <string.h>

#include "omsctl/omsctl.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

#define TYPE_PREFIX "type.googleapis.com/"

/* JSON errors or text: process-wide, set once by main before any command runs
 * (like the log level), so that every failure path prints the same way. */
static bool json_errors;
static const char *ca_used; /* the CA file TLS verification used; NULL: system roots */

void omsctl_err_init(bool json, const char *ca_file)
{
    json_errors = json;
    ca_used = ca_file;
}

/* Writes s with control bytes escaped (\xNN): a server's text never moves
 * the cursor or rings a terminal. */
static void put_text(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}

/* The detail's message name if its type_url is one of ours, else NULL. */
static const ProtobufCMessageDescriptor *known_type(const char *url)
{
    static const ProtobufCMessageDescriptor *const known[] = {
        &google__rpc__error_info__descriptor,
        &google__rpc__bad_request__descriptor,
        &google__rpc__precondition_failure__descriptor,
    };
    const char *slash = strrchr(url, '/');
    const char *name = slash ? slash + 1 : url;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i]->name) == 0)
            return known[i];
    return NULL;
}

static void text_detail(FILE *f, const Google__Protobuf__Any *any)
{
    const ProtobufCMessageDescriptor *d = known_type(any->type_url);
    ProtobufCMessage *m =
        d ? protobuf_c_message_unpack(d, NULL, any->value.len, any->value.data) : NULL;
    if (!m) {
        fprintf(f, "  detail ");
        put_text(f, any->type_url);
        fprintf(f, " (%zu bytes)\n", any->value.len);
        return;
    }
    if (d == &google__rpc__error_info__descriptor) {
        const Google__Rpc__ErrorInfo *e = (const Google__Rpc__ErrorInfo *)m;
        fprintf(f, "  reason ");
        put_text(f, e->reason);
        if (e->domain && *e->domain) {
            fprintf(f, " (");
            put_text(f, e->domain);
            fprintf(f, ")");
        }
        for (size_t i = 0; i < e->n_metadata; i++) {
            fputc(' ', f);
            put_text(f, e->metadata[i]->key);
            fputc('=', f);
            put_text(f, e->metadata[i]->value);
        }
        fputc('\n', f);
    } else if (d == &google__rpc__bad_request__descriptor) {
        const Google__Rpc__BadRequest *b = (const Google__Rpc__BadRequest *)m;
        for (size_t i = 0; i < b->n_field_violations; i++) {
            fprintf(f, "  field ");
            put_text(f, b->field_violations[i]->field);
            fprintf(f, ": ");
            put_text(f, b->field_violations[i]->description);
            fputc('\n', f);
        }
    } else {
        const Google__Rpc__PreconditionFailure *p = (const Google__Rpc__PreconditionFailure *)m;
        for (size_t i = 0; i < p->n_violations; i++) {
            fprintf(f, "  precondition ");
            put_text(f, p->violations[i]->type);
            fputc(' ', f);
            put_text(f, p->violations[i]->subject);
            fprintf(f, ": ");
            put_text(f, p->violations[i]->description);
            fputc('\n', f);
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
}

static void json_kv(FILE *f, const char *key, const char *v, bool comma)
{
    fprintf(f, "%s\"%s\":", comma ? "," : "", key);
    omsctl_json_str(f, v);
}

static void json_detail(FILE *f, const Google__Protobuf__Any *any)
{
    const ProtobufCMessageDescriptor *d = known_type(any->type_url);
    ProtobufCMessage *m =
        d ? protobuf_c_message_unpack(d, NULL, any->value.len, any->value.data) : NULL;
    fputc('{', f);
    json_kv(f, "@type", any->type_url, false);
    if (m && d == &google__rpc__error_info__descriptor) {
        const Google__Rpc__ErrorInfo *e = (const Google__Rpc__ErrorInfo *)m;
        json_kv(f, "reason", e->reason, true);
        json_kv(f, "domain", e->domain, true);
        fprintf(f, ",\"metadata\":{");
        for (size_t i = 0; i < e->n_metadata; i++)
            json_kv(f, e->metadata[i]->key, e->metadata[i]->value, i > 0);
        fputc('}', f);
    } else if (m && d == &google__rpc__bad_request__descriptor) {
        const Google__Rpc__BadRequest *b = (const Google__Rpc__BadRequest *)m;
        fprintf(f, ",\"fieldViolations\":[");
        for (size_t i = 0; i < b->n_field_violations; i++) {
            fprintf(f, "%s{", i ? "," : "");
            json_kv(f, "field", b->field_violations[i]->field, false);
            json_kv(f, "description", b->field_violations[i]->description, true);
            fputc('}', f);
        }
        fputc(']', f);
    } else if (m) {
        const Google__Rpc__PreconditionFailure *p = (const Google__Rpc__PreconditionFailure *)m;
        fprintf(f, ",\"violations\":[");
        for (size_t i = 0; i < p->n_violations; i++) {
            fprintf(f, "%s{", i ? "," : "");
            json_kv(f, "type", p->violations[i]->type, false);
            json_kv(f, "subject", p->violations[i]->subject, true);
            json_kv(f, "description", p->violations[i]->description, true);
            fputc('}', f);
        }
        fputc(']', f);
    }
    fputc('}', f);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
}

int omsctl_fail_details(rpc_status code, const char *message, const uint8_t *details, size_t len)
{
    /* The details repeat code and message; what the status line says wins. */
    Google__Rpc__Status *st = details ? google__rpc__status__unpack(NULL, len, details) : NULL;
    size_t n = st ? st->n_details : 0;
    /* A certificate the CA does not vouch for: say what to do about it. */
    char hinted[1024];
    if (message && strstr(message, "certificate verify failed")) {
        snprintf(hinted, sizeof hinted,
                 "%s: pass --ca FILE or set OMS_CA to the server's CA "
                 "certificate (this run used %s)",
                 message, ca_used ? ca_used : "the system's roots");
        message = hinted;
    }
    FILE *f = stderr;
    if (json_errors) {
        fprintf(f, "{\"code\":\"%s\",", rpc_status_name((int)code));
        json_kv(f, "message", message ? message : "", false);
        fprintf(f, ",\"details\":[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                fputc(',', f);
            json_detail(f, st->details[i]);
        }
        fprintf(f, "]}\n");
    } else {
        fprintf(f, "omsctl: %s: ", rpc_status_name((int)code));
        put_text(f, message && *message ? message : "(no message)");
        fputc('\n', f);
        for (size_t i = 0; i < n; i++)
            text_detail(f, st->details[i]);
    }
    if (st)
        google__rpc__status__free_unpacked(st, NULL);
    return omsctl_exit_code(code);
}

int omsctl_fail(rpc_status code, const char *message)
{
    return omsctl_fail_details(code, message, NULL, 0);
}

void omsctl_keep_details(omsctl *ctl, rpc_client_call *c)
{
    size_t len;
    const uint8_t *d = rpc_client_call_status_details(c, &len);
    free(ctl->details);
    ctl->details = NULL;
    ctl->details_len = 0;
    if (d && (ctl->details = malloc(len ? len : 1)) != NULL) {
        memcpy(ctl->details, d, len);
        ctl->details_len = len;
    }
}

int omsctl_fail_call(omsctl *ctl, rpc_status code, const char *message)
{
    return omsctl_fail_details(code, message, ctl->details, ctl->details_len);
}
