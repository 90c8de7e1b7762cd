#include "base/log.h"

#include "base/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Written once before any loop starts; read-only afterwards. */
static oms_log_level min_level = OMS_LOG_INFO;
static oms_log_format format = OMS_LOG_TEXT;

int oms_log_parse_format(const char *s, oms_log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = OMS_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = OMS_LOG_JSON;
    else
        return -1;
    return 0;
}

void oms_log_set_format(oms_log_format f)
{
    format = f;
}

size_t oms_log_component(const char *msg, char *comp, size_t cap)
{
    static const struct {
        const char *word, *comp;
    } layers[] = {{"conn ", "http2"}, {"call ", "rpc"}, {"channel ", "rpc"}};
    size_t n = 0;
    if (msg[0] >= 'a' && msg[0] <= 'z') {
        while (n < 16 && ((msg[n] >= 'a' && msg[n] <= 'z') || (msg[n] >= '0' && msg[n] <= '9') ||
                          msg[n] == '_' || msg[n] == '-'))
            n++;
        if (msg[n] == ':' && msg[n + 1] == ' ' && n < cap) {
            memcpy(comp, msg, n);
            comp[n] = '\0';
            return n + 2;
        }
    }
    const char *c = "main";
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        if (strncmp(msg, layers[i].word, strlen(layers[i].word)) == 0)
            c = layers[i].comp;
    snprintf(comp, cap, "%s", c);
    return 0;
}

int oms_log_parse_level(const char *s, oms_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (oms_log_level)i;
            return 0;
        }
    }
    return -1;
}

void oms_log_set_level(oms_log_level level)
{
    min_level = level;
}

int oms_log_enabled(oms_log_level level)
{
    return level >= min_level;
}

void oms_log(oms_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = {"debug", "info", "warn", "error"};
    if (level < min_level || level >= OMS_LOG_OFF)
        return;
    char msg[1024], line[2048], comp[24], when[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    oms_json_time(when, sizeof when, (int64_t)ts.tv_sec, ts.tv_nsec);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (m < 0)
        msg[0] = '\0';
    size_t skip = oms_log_component(msg, comp, sizeof comp);
    size_t len;
    if (format == OMS_LOG_JSON) {
        oms_json j;
        oms_json_begin(&j, line, sizeof line);
        oms_json_cstr(&j, "time", when);
        oms_json_cstr(&j, "level", tags[level]);
        oms_json_cstr(&j, "component", comp);
        oms_json_str_cut(&j, "msg", msg + skip, strlen(msg + skip));
        len = oms_json_end(&j);
    } else {
        int n = snprintf(line, sizeof line, "%s %s %s: %s", when, tags[level], comp, msg + skip);
        len = n < 0 ? 0 : (size_t)n;
        if (len > sizeof line - 2)
            len = sizeof line - 2;
        line[len++] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
