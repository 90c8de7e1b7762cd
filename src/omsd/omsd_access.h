/* omsd_access.h - the access log: one JSON line per finished call.
 *
 * An interceptor on every worker's rpc server formats, when a call ends, one
 * line:
 *   {"time":"2026-12-07T16:34:49.123Z","peer":"127.0.0.1:40312",
 *    "principal":"svc-orders","method":"/oms.v1.OrderService/CreateOrder",
 *    "type":"unary","status":"OK","code":0,"duration_us":1234,
 *    "msgs_received":1,"bytes_received":57,"msgs_sent":1,"bytes_sent":112,
 *    "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
 *    "parent_span_id":"b7ad6b7169203331"}
 * (principal: the authenticated subject or null, never a credential;
 * parent_span_id: the caller's span from its traceparent, or null; type:
 * unary, client_streaming, server_streaming, bidi_streaming or unknown).
 *
 * The worker loops never wait for the disk: a line is copied into a bounded
 * buffer under a mutex held only for that copy, and a writer thread writes
 * the buffer out. When the buffer is full (the disk is slower than the
 * calls) the line is dropped and counted; the writer logs a warning with the
 * count at most once a second. omsd_access_reopen (SIGHUP) makes the writer
 * reopen the file (after logrotate moved it).
 */
#ifndef OMS_APP_OMSD_ACCESS_H
#define OMS_APP_OMSD_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/rpc.h"

typedef struct omsd_access omsd_access;

/* Opens path for appending (created 0640), or standard output for "-", and
 * starts the writer thread; buffer_bytes bounds the lines waiting (0: 4 MiB).
 * Returns NULL with a reason in err. */
omsd_access *omsd_access_open(const char *path, size_t buffer_bytes, char *err, size_t errlen);

/* Registers the access-log interceptor on srv (first, so that it also sees
 * calls later interceptors reject). Returns 0 or RPC_ENOMEM. */
int omsd_access_attach(omsd_access *a, rpc_server *srv);

/* Asks the writer to reopen the file (SIGHUP); a no-op for "-". Any thread. */
void omsd_access_reopen(omsd_access *a);

/* Lines dropped so far because the buffer was full. */
uint64_t omsd_access_dropped(omsd_access *a);

/* Writes what is buffered, stops the writer and frees a (NULL: no-op). Call
 * once no server can log any more. */
void omsd_access_close(omsd_access *a);

/* Formats the access-log line of call c with stats st into buf (cap bytes),
 * time sec/nsec (CLOCK_REALTIME). Returns its length (newline included).
 * For tests. */
size_t omsd_access_format(rpc_call *c, const rpc_call_stats *st, int64_t sec, long nsec, char *buf,
                          size_t cap);

#endif
