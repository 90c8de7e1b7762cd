/* log.h - one-line logs to stderr with a process-wide level and format.
 *
 * The level and format are set once at start-up (before loops run) and only
 * read after, so they are safe from every thread. Each line is written with
 * one write(2).
 *
 * Every line has a time, a level and a component. The component is the
 * message's own prefix, by convention: a lowercase word and ": " at its start
 * ("orders: release of ...", "store: ...", "tls: ..."); messages of the
 * transport and call layers that start "conn ADDR: " or "call PATH: " /
 * "channel TARGET: " are "http2" and "rpc"; any other message is "main".
 *  - text: 2026-12-07T16:34:49.123Z info orders: release of o-1 ...
 *    (the component is added in front when the message does not start
 *    with it: "... debug http2: conn 127.0.0.1:4242: closed")
 *  - json: {"time":"...","level":"info","component":"orders","msg":"release
 *    of o-1 ..."} (the prefix is not repeated in msg; strings escaped as in
 *    base/json.h)
 */
#ifndef OMS_LOG_H
#define OMS_LOG_H

#include <stddef.h>
#include "base/export.h"

typedef enum oms_log_level {
    OMS_LOG_DEBUG = 0,
    OMS_LOG_INFO = 1,
    OMS_LOG_WARN = 2,
    OMS_LOG_ERROR = 3,
    OMS_LOG_OFF = 4,
} oms_log_level;

typedef enum oms_log_format {
    OMS_LOG_TEXT = 0,
    OMS_LOG_JSON = 1,
} oms_log_format;

/* Parses "text" or "json". Returns 0 or -1. */
OMS_EXTERN int oms_log_parse_format(const char *s, oms_log_format *out);
OMS_EXTERN void oms_log_set_format(oms_log_format f);

/* The component of message msg (the convention above) into comp (cap bytes);
 * returns how many bytes of msg the prefix takes ("orders: " -> 8), 0 when the
 * component was not written in msg. */
OMS_EXTERN size_t oms_log_component(const char *msg, char *comp, size_t cap);

/* Parses "debug", "info", "warn", "error", "off". Returns 0 or -1. */
OMS_EXTERN int oms_log_parse_level(const char *s, oms_log_level *out);
OMS_EXTERN void oms_log_set_level(oms_log_level level);
OMS_EXTERN int oms_log_enabled(oms_log_level level);

OMS_EXTERN void oms_log(oms_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define OMS_DEBUG(...)                                                                             \
    (oms_log_enabled(OMS_LOG_DEBUG) ? oms_log(OMS_LOG_DEBUG, __VA_ARGS__) : (void)0)
#define OMS_INFO(...)  oms_log(OMS_LOG_INFO, __VA_ARGS__)
#define OMS_WARN(...)  oms_log(OMS_LOG_WARN, __VA_ARGS__)
#define OMS_ERROR(...) oms_log(OMS_LOG_ERROR, __VA_ARGS__)

#endif
