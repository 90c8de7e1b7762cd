/* util.c - memory pool, text buffer and protoc-c naming for the plugin. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"

#define COLUMNS 100

/* --- memory ------------------------------------------------------------- */

void gen_oom(void)
{
    fputs("protoc-gen-omsrpc: out of memory\n", stderr);
    exit(1);
}

void *gen_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        gen_oom();
    return p;
}

/* Every allocation is its own block on a list: the plugin makes a few
 * hundred, so nothing smarter is needed. */
typedef struct pool_block {
    struct pool_block *next;
    max_align_t data[];
} pool_block;

struct gen_pool {
    pool_block *blocks;
};

gen_pool *gen_pool_new(void)
{
    gen_pool *p = gen_xmalloc(sizeof *p);
    p->blocks = NULL;
    return p;
}

void gen_pool_free(gen_pool *p)
{
    if (!p)
        return;
    while (p->blocks) {
        pool_block *next = p->blocks->next;
        free(p->blocks);
        p->blocks = next;
    }
    free(p);
}

void *gen_alloc(gen_pool *p, size_t n)
{
    pool_block *b = calloc(1, sizeof *b + (n ? n : 1));
    if (!b)
        gen_oom();
    b->next = p->blocks;
    p->blocks = b;
    return b->data;
}

char *gen_strdup(gen_pool *p, const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(gen_alloc(p, n), s, n);
}

char *gen_printf(gen_pool *p, const char *fmt, ...)
{
    sbuf b;
    va_list ap;
    sb_init(&b);
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    char *s = gen_strdup(p, b.s);
    sb_dispose(&b);
    return s;
}

/* --- text --------------------------------------------------------------- */

void sb_init(sbuf *b)
{
    b->cap = 256;
    b->s = gen_xmalloc(b->cap);
    b->s[0] = '\0';
    b->len = 0;
}

void sb_dispose(sbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

char *sb_take(sbuf *b)
{
    char *s = b->s;
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

static void reserve(sbuf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s)
        gen_oom();
    b->s = s;
    b->cap = cap;
}

void sb_puts(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    reserve(b, n);
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

void sb_vprintf(sbuf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    if (n < 0)
        gen_oom(); /* glibc fails only on ENOMEM or a bad format */
    if ((size_t)n >= b->cap - b->len) {
        reserve(b, (size_t)n);
        vsnprintf(b->s + b->len, b->cap - b->len, fmt, again);
    }
    va_end(again);
    b->len += (size_t)n;
}

void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

static void spaces(sbuf *b, size_t n)
{
    reserve(b, n);
    memset(b->s + b->len, ' ', n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* Packs params into lines starting at column col (the first line continues
 * the current one, already at col); a parameter is followed by ", " or, if
 * last, by tail. */
static void pack_params(sbuf *b, size_t col, const char *const *params, size_t n, const char *tail)
{
    size_t at = col;
    for (size_t i = 0; i < n; i++) {
        size_t w = strlen(params[i]) + (i + 1 < n ? 1 : strlen(tail));
        if (at > col && at + 1 + w > COLUMNS) {
            sb_puts(b, "\n");
            spaces(b, col);
            at = col;
        } else if (at > col) {
            sb_puts(b, " ");
            at++;
        }
        sb_puts(b, params[i]);
        sb_puts(b, i + 1 < n ? "," : tail);
        at += w;
    }
}

void sb_decl(sbuf *b, int indent, const char *head, const char *const *params, size_t n,
             const char *tail)
{
    size_t one = (size_t)indent + strlen(head) + strlen(tail);
    size_t widest = 0;
    for (size_t i = 0; i < n; i++) {
        one += strlen(params[i]) + (i ? 2 : 0);
        if (strlen(params[i]) > widest)
            widest = strlen(params[i]);
    }
    spaces(b, (size_t)indent);
    sb_puts(b, head);
    if (one <= COLUMNS || n == 0) {
        for (size_t i = 0; i < n; i++) {
            if (i)
                sb_puts(b, ", ");
            sb_puts(b, params[i]);
        }
        sb_puts(b, tail);
    } else {
        size_t col = (size_t)indent + strlen(head);
        if (col + widest + strlen(tail) > COLUMNS) {
            /* no room after '(': continuation lines, 4 spaces in */
            col = (size_t)indent + 4;
            sb_puts(b, "\n");
            spaces(b, col);
        }
        pack_params(b, col, params, n, tail);
    }
    sb_puts(b, "\n");
}

void sb_assign(sbuf *b, int indent, const char *lhs, const char *rhs)
{
    spaces(b, (size_t)indent);
    if ((size_t)indent + strlen(lhs) + strlen(rhs) + 4 <= COLUMNS) {
        sb_printf(b, "%s = %s;\n", lhs, rhs);
        return;
    }
    sb_printf(b, "%s =\n", lhs);
    spaces(b, (size_t)indent + 4);
    sb_printf(b, "%s;\n", rhs);
}

/* Appends line[0..n) with comment delimiters defused ("* /", "/ *"). */
static void put_defused(sbuf *b, const char *line, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n &&
            ((line[i] == '*' && line[i + 1] == '/') || (line[i] == '/' && line[i + 1] == '*'))) {
            sb_printf(b, "%c %c", line[i], line[i + 1]);
            i++;
            continue;
        }
        sb_printf(b, "%c", line[i]);
    }
}

void sb_comment(sbuf *b, int indent, const char *text)
{
    const char *start = text ? text : "";
    const char *end = start + strlen(start);
    while (*start == '\n')
        start++;
    while (end > start && (end[-1] == '\n' || end[-1] == ' '))
        end--;
    if (start == end)
        return;
    size_t room = COLUMNS - (size_t)indent - 3; /* after the opening or " * " */
    bool first = true;
    for (const char *p = start; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        if (p < stop && *p == ' ')
            p++; /* protoc keeps the space after "//" */
        size_t lead = 0;
        while (p + lead < stop && p[lead] == ' ')
            lead++;
        /* the last line also holds the closing " * /" */
        size_t limit = nl ? room : room - 3;
        /* one source line, wrapped at spaces; continuations keep its indent */
        const char *q = p;
        do {
            size_t n = (size_t)(stop - q);
            size_t pad = q == p ? 0 : lead;
            if (pad + n > limit) {
                const char *cut = NULL;
                for (const char *r = q + (q == p ? lead : 0) + 1; r <= q + limit - pad && r < stop;
                     r++)
                    if (*r == ' ')
                        cut = r;
                if (cut)
                    n = (size_t)(cut - q);
            }
            if (!first)
                sb_puts(b, "\n");
            spaces(b, (size_t)indent);
            sb_puts(b, first ? "/*" : " *");
            first = false;
            if (n) {
                sb_puts(b, " ");
                spaces(b, pad);
                put_defused(b, q, n);
            }
            q += n;
            while (q < stop && *q == ' ' && q != p)
                q++;
        } while (q < stop);
        p = nl ? nl + 1 : end;
    }
    sb_puts(b, " */\n");
}

/* --- names -------------------------------------------------------------- */

char *name_camel_to_lower(gen_pool *p, const char *s)
{
    sbuf b;
    sb_init(&b);
    bool was_upper = true; /* no '_' in front of a leading capital */
    for (; *s; s++) {
        bool is_upper = isupper((unsigned char)*s);
        if (is_upper && !was_upper)
            sb_puts(&b, "_");
        sb_printf(&b, "%c", is_upper ? (char)tolower((unsigned char)*s) : *s);
        was_upper = is_upper;
    }
    char *r = gen_strdup(p, b.s);
    sb_dispose(&b);
    return r;
}

static char *camel_to_upper(gen_pool *p, const char *s)
{
    char *r = name_camel_to_lower(p, s);
    for (char *q = r; *q; q++)
        *q = (char)toupper((unsigned char)*q);
    return r;
}

/* protoc-c's ToCamel: "line_item" -> "LineItem". */
static char *to_camel(gen_pool *p, const char *s)
{
    char *r = gen_alloc(p, strlen(s) + 1), *o = r;
    bool next_upper = true;
    for (; *s; s++) {
        if (*s == '_')
            next_upper = true;
        else if (next_upper) {
            *o++ = (char)toupper((unsigned char)*s);
            next_upper = false;
        } else
            *o++ = *s;
    }
    *o = '\0';
    return r;
}

/* Splits full at '.', maps each non-empty piece and joins them with "__". */
static char *map_full(gen_pool *p, const char *full, char *(*piece)(gen_pool *, const char *))
{
    sbuf b, part;
    sb_init(&b);
    sb_init(&part);
    for (const char *s = full;;) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (n) {
            part.len = 0;
            part.s[0] = '\0';
            sb_printf(&part, "%.*s", (int)n, s);
            if (b.len)
                sb_puts(&b, "__");
            sb_puts(&b, piece(p, part.s));
        }
        if (!dot)
            break;
        s = dot + 1;
    }
    char *r = gen_strdup(p, b.s);
    sb_dispose(&part);
    sb_dispose(&b);
    return r;
}

char *name_full_to_lower(gen_pool *p, const char *full)
{
    return map_full(p, full, name_camel_to_lower);
}

char *name_full_to_upper(gen_pool *p, const char *full)
{
    return map_full(p, full, camel_to_upper);
}

char *name_full_to_c(gen_pool *p, const char *full)
{
    return map_full(p, full, to_camel);
}

bool name_is_c_keyword(const char *s)
{
    static const char *const kw[] = {
        "auto",     "break",     "case",     "char",     "const",    "continue", "default",
        "do",       "double",    "else",     "enum",     "extern",   "float",    "for",
        "goto",     "if",        "inline",   "int",      "long",     "register", "restrict",
        "return",   "short",     "signed",   "sizeof",   "static",   "struct",   "switch",
        "typedef",  "union",     "unsigned", "void",     "volatile", "while",    "bool",
        "true",     "false",     "_Alignas", "_Alignof", "_Atomic",  "_Bool",    "_Complex",
        "_Generic", "_Noreturn",
    };
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (strcmp(s, kw[i]) == 0)
            return true;
    return false;
}

char *name_file_ident(gen_pool *p, const char *file)
{
    sbuf b;
    sb_init(&b);
    for (const char *s = file; *s; s++) {
        if (isalnum((unsigned char)*s))
            sb_printf(&b, "%c", *s);
        else
            sb_printf(&b, "_%x", (unsigned char)*s);
    }
    char *r = gen_strdup(p, b.s);
    sb_dispose(&b);
    return r;
}
