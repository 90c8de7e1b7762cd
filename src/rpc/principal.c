/* principal.c - the caller's identity attached to a call by authentication. */
#include <string.h>

#include "rpc/rpc.h"
#include "rpc/rpc_int.h"

static const char *arena_str(rpc_arena *a, const char *s)
{
    return s ? rpc__arena_strndup(a, s, strlen(s)) : NULL;
}

int rpc_call_set_principal(rpc_call *c, const rpc_principal *p)
{
    if (!p || !p->subject || (p->n_scopes && !p->scopes))
        return RPC_EINVAL;
    rpc_principal *copy = rpc__arena_alloc(&c->arena, sizeof *copy);
    const char **scopes =
        p->n_scopes ? rpc__arena_alloc(&c->arena, p->n_scopes * sizeof *scopes) : NULL;
    if (!copy || (p->n_scopes && !scopes))
        return RPC_ENOMEM;
    *copy = *p;
    copy->subject = arena_str(&c->arena, p->subject);
    copy->customer_id = arena_str(&c->arena, p->customer_id);
    if (!copy->subject || (p->customer_id && !copy->customer_id))
        return RPC_ENOMEM;
    for (size_t i = 0; i < p->n_scopes; i++)
        if (!(scopes[i] = arena_str(&c->arena, p->scopes[i])))
            return RPC_ENOMEM;
    copy->scopes = scopes;
    c->principal = copy;
    return 0;
}

const rpc_principal *rpc_call_principal(const rpc_call *c)
{
    return c->principal;
}

bool rpc_principal_has_scope(const rpc_principal *p, const char *scope)
{
    if (p->all_scopes)
        return true;
    for (size_t i = 0; i < p->n_scopes; i++)
        if (strcmp(p->scopes[i], scope) == 0)
            return true;
    return false;
}

const char *rpc_call_tls_identity(const rpc_call *c)
{
    return c->tls_identity;
}
