/* log.h - one-line logs to stderr with a process-wide level.
 *
 * The level is set once at start-up (before loops run) and only read after,
 * so it is safe from every thread. Each line is written with one write(2).
 */
#ifndef OMS_LOG_H
#define OMS_LOG_H

typedef enum oms_log_level {
    OMS_LOG_DEBUG = 0,
    OMS_LOG_INFO = 1,
    OMS_LOG_WARN = 2,
    OMS_LOG_ERROR = 3,
    OMS_LOG_OFF = 4,
} oms_log_level;

/* Parses "debug", "info", "warn", "error", "off". Returns 0 or -1. */
int oms_log_parse_level(const char *s, oms_log_level *out);
void oms_log_set_level(oms_log_level level);
int oms_log_enabled(oms_log_level level);

void oms_log(oms_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define OMS_DEBUG(...)                                                                             \
    (oms_log_enabled(OMS_LOG_DEBUG) ? oms_log(OMS_LOG_DEBUG, __VA_ARGS__) : (void)0)
#define OMS_INFO(...)  oms_log(OMS_LOG_INFO, __VA_ARGS__)
#define OMS_WARN(...)  oms_log(OMS_LOG_WARN, __VA_ARGS__)
#define OMS_ERROR(...) oms_log(OMS_LOG_ERROR, __VA_ARGS__)

#endif
