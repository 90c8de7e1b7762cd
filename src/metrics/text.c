/* The Prometheus text exposition format, version 0.0.4. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "metrics/metrics.h"

static void put(oms_mtext *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *b = oms_realloc(t->buf, cap);
        if (!b) {
            t->failed = 1;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void puts_(oms_mtext *t, const char *s)
{
    put(t, s, strlen(s));
}

/* A label value: backslash, double quote and line feed escaped. */
static void put_escaped(oms_mtext *t, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(t, "\\\\", 2);
        else if (*s == '"')
            put(t, "\\\"", 2);
        else if (*s == '\n')
            put(t, "\\n", 2);
        else
            put(t, s, 1);
    }
}

/* HELP text: backslash and line feed escaped. */
static void put_help(oms_mtext *t, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(t, "\\\\", 2);
        else if (*s == '\n')
            put(t, "\\n", 2);
        else
            put(t, s, 1);
    }
}

void oms_mtext_family(oms_mtext *t, const char *name, const char *type, const char *help)
{
    puts_(t, "# HELP ");
    puts_(t, name);
    puts_(t, " ");
    put_help(t, help);
    puts_(t, "\n# TYPE ");
    puts_(t, name);
    puts_(t, " ");
    puts_(t, type);
    puts_(t, "\n");
}

static void put_value(oms_mtext *t, double v)
{
    char num[64];
    if (isnan(v))
        snprintf(num, sizeof num, "NaN");
    else if (isinf(v))
        snprintf(num, sizeof num, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(num, sizeof num, "%.0f", v);
    else
        snprintf(num, sizeof num, "%.17g", v);
    puts_(t, num);
}

void oms_mtext_sample_extra(oms_mtext *t, const char *name, const char *const *labels,
                            const char *key, const char *val, double value)
{
    puts_(t, name);
    int n = 0;
    for (size_t i = 0; labels && labels[i]; i += 2) {
        puts_(t, n++ ? "," : "{");
        puts_(t, labels[i]);
        puts_(t, "=\"");
        put_escaped(t, labels[i + 1]);
        puts_(t, "\"");
    }
    if (key) {
        puts_(t, n++ ? "," : "{");
        puts_(t, key);
        puts_(t, "=\"");
        put_escaped(t, val);
        puts_(t, "\"");
    }
    puts_(t, n ? "} " : " ");
    put_value(t, value);
    puts_(t, "\n");
}

void oms_mtext_sample(oms_mtext *t, const char *name, const char *const *labels, double value)
{
    oms_mtext_sample_extra(t, name, labels, NULL, NULL, value);
}

void oms_mtext_dispose(oms_mtext *t)
{
    oms_free(t->buf);
    memset(t, 0, sizeof *t);
}
