/* authz.h - per-method authorization: which scopes a call needs, and which
 * scopes a verified client certificate holds.
 *
 * A policy maps method paths to the scopes that allow them (any one of them
 * is enough), marks some methods public (no principal needed), names mTLS
 * principals with the exact scopes they get, and lets a scope imply others.
 * The default policy is issue 12's (docs/AUTHZ-POLICY.md); --authz-policy FILE
 * replaces it with a file in this format, one directive a line (shown after
 * this comment: its service wildcard would end a block comment).
 *
 * An exact method rule wins over its service's wildcard. A method that no
 * rule covers is denied (deny by default). grpc.health.v1.Health is always
 * public; grpc.reflection.v1 and v1alpha are public unless the policy is
 * loaded with reflection_auth (then its rules decide; the default policy asks
 * for the scope "reflection").
 *
 * Thread-safety: a policy is read-only once built; any number of loops may
 * check calls against it at once.
 */
// # comment (from '#' to the end of the line)
// method    /oms.v1.OrderService/GetOrder  orders:read [more scopes...]
// method    /oms.v1.OrderService/*         orders:read    (service wildcard)
// public    /grpc.health.v1.Health/*
// principal spiffe://oms.local/service/orders inventory:write customers:read
// imply     orders:admin orders:read orders:write
#ifndef OMS_AUTHZ_H
#define OMS_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc/rpc.h"

/* Bounds of a policy file: a bigger file, a longer line, more directives,
 * more distinct scopes or more imply lines are start-up errors. */
#define AUTHZ_MAX_FILE       (1u << 20) /* bytes */
#define AUTHZ_MAX_LINE       1024       /* bytes, without the newline */
#define AUTHZ_MAX_RULES      4096       /* directives */
#define AUTHZ_MAX_SCOPES     1024       /* distinct scope names */
#define AUTHZ_MAX_IMPLY      256        /* imply directives */
#define AUTHZ_MAX_LINE_WORDS 32         /* scopes on one line */
#define AUTHZ_MAX_SCOPE_LEN  128        /* bytes of a scope */
#define AUTHZ_MAX_NAME_LEN   255        /* bytes of a pattern or principal name */

typedef struct authz_policy authz_policy;

/* The default policy (the table; docs/AUTHZ-POLICY.md). Returns NULL
 * with a reason in err on ENOMEM. */
authz_policy *authz_policy_default(bool reflection_auth, char *err, size_t errlen);

/* Parses a policy from text[0..len) (need not be NUL-terminated; borrowed).
 * name (e.g. the file's path) prefixes error messages: "policy.txt:12:
 * unknown directive "allow"". Parsing is strict: an unknown directive, a bad
 * pattern, scope or principal name, a duplicate rule (the same pattern twice,
 * the same principal or imply scope twice, a scope twice on a line), a line
 * over AUTHZ_MAX_LINE bytes, a NUL, invalid UTF-8 (anywhere, comments
 * included) or any of the AUTHZ_MAX_* bounds exceeded is an error. Returns the
 * policy (free with authz_policy_free) or NULL with the first error in err. */
authz_policy *authz_policy_parse(const char *name, const char *text, size_t len,
                                 bool reflection_auth, char *err, size_t errlen);

/* authz_policy_parse over the file at path (at most AUTHZ_MAX_FILE bytes);
 * errors name the path. */
authz_policy *authz_policy_load(const char *path, bool reflection_auth, char *err, size_t errlen);

/* NULL is fine. */
void authz_policy_free(authz_policy *p);

/* Number of directives parsed (not counting the built-in public methods). */
size_t authz_policy_rule_count(const authz_policy *p);

/* The scopes of a verified client certificate whose identity (URI or DNS SAN,
 * else subject CN) is identity: fills *out as an RPC_PRINCIPAL_CERT principal
 * with subject = identity (borrowed) and, if the policy has a `principal`
 * line for identity, exactly its scopes (borrowed from the policy: valid while
 * it lives), else all_scopes (the CA is the trust decision). customer_id is
 * NULL. For the authentication side; the interceptor below applies the same
 * narrowing to any CERT principal it sees, so either place is enough. */
void authz_cert_principal(const authz_policy *p, const char *identity, rpc_principal *out);

/* Outcome of authz_check(). */
typedef enum authz_decision {
    AUTHZ_PUBLIC = 0,      /* the method is public: no principal needed */
    AUTHZ_ALLOWED = 1,     /* the principal holds a scope the method accepts */
    AUTHZ_UNAUTHENTICATED, /* the method needs a principal and there is none */
    AUTHZ_DENIED,          /* it lacks every accepted scope, or no rule covers the method */
} authz_decision;

/* Checks a call of path ("/package.Service/Method") by principal pr (NULL:
 * none). A CERT principal is narrowed first (authz_cert_principal on its
 * subject). why (n bytes, may be NULL) gets the status message for the two
 * refusals: "authentication required", "missing scope orders:write" (the
 * method's scopes as written, " or "-separated; implied ones are accepted but
 * not listed), "method not covered by the authorization policy". It never
 * contains a credential. */
authz_decision authz_check(const authz_policy *p, const char *path, const rpc_principal *pr,
                           char *why, size_t n);

/* Calls cb(path, arg) for each method registered on srv that the policy
 * covers with no rule (so every call of it is denied while auth is on), and
 * returns how many there were. omsd logs them at start. */
size_t authz_policy_uncovered(const authz_policy *p, const rpc_server *srv,
                              void (*cb)(const char *path, void *arg), void *arg);

/* Adds the authorization interceptor for policy p (borrowed: it must outlive
 * srv; read-only, so one policy serves every worker's server) to srv's chain.
 * Register it after the authentication interceptor, whose principal it
 * reads; register neither while auth is off (then every call is allowed, as
 * before). Per call:
 *  - a public method goes on, with nothing attached;
 *  - no principal: rejected UNAUTHENTICATED "authentication required";
 *  - a principal without any scope the method accepts, or a method no rule
 *    covers (unknown paths included): rejected PERMISSION_DENIED "missing
 *    scope orders:write" / "method not covered by the authorization policy";
 *  - allowed: goes on. A CERT principal is replaced by its narrowed form
 *    (authz_cert_principal; its customer_id kept), so handlers see the
 *    scopes the policy gives it. (The rejection is a Trailers-Only answer;
 *    the handler never sees the call.)
 * Returns rpc_server_add_interceptor()'s result: 0 or RPC_ENOMEM. */
int authz_server_add(rpc_server *srv, const authz_policy *p);

#endif
