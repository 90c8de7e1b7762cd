/* omsd_flags.h - omsd's command line: the options, their defaults and the
 * option table (base/cli.h) that parses them and writes --help.
 */
#ifndef OMS_OMSD_FLAGS_H
#define OMS_OMSD_FLAGS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/log.h"
#include "omsd/omsd_auth.h"
#include "omsd/omsd_authz.h"
#include "orders/orders.h"

typedef struct omsd_options {
    char host[64];
    int port;
    bool h2c;
    const char *cert;
    const char *key;
    const char *client_ca;       /* --client-ca */
    const char *peer_token_file; /* --peer-token-file */
    int client_auth;             /* --client-auth: -1 unset, else http2_client_auth */
    int tls_min_version;         /* 12 or 13 */
    bool test_services;          /* --test-services on|off */
    uint64_t max_recv_msg;
    uint64_t max_streams;
    uint64_t max_header_list;
    double grace;
    double handshake_timeout;
    double conn_idle, conn_age, conn_age_grace, keepalive_time, keepalive_timeout; /* seconds */
    double keepalive_min_time; /* seconds; 0: no ping enforcement */
    bool ping_without_calls;
    uint64_t max_connections; /* 0: from the descriptor limit */
    uint64_t conn_send_budget;
    uint64_t send_budget; /* all connections together */
    bool http1;           /* --http1 on|off: HTTP/1.1 beside HTTP/2 on the port */
    uint64_t http1_max_head, http1_max_headers, http1_max_body;
    double http1_header_timeout, http1_idle_timeout; /* seconds */
    uint64_t workers;
    oms_log_level log_level;
    oms_log_format log_format;  /* --log-format */
    const char *access_log;     /* --access-log PATH|-; NULL: off */
    const char *cors_origin;    /* --cors-origin LIST; NULL: none */
    bool web;                   /* --web on|off: the live order page at / */
    const char *web_root;       /* --web-root DIR: its files from disk; NULL: embedded */
    uint64_t access_log_buffer; /* --access-log-buffer BYTES; 0: the default */
    bool bench_only;
    orders_config orders;
    omsd_authz authz; /* --authz-policy, --reflection-auth */
    omsd_auth_opts auth;
    char metrics_host[64]; /* --metrics-listen; "" = off */
    int metrics_port;
    /* as read, then applied to orders by omsd_parse_args (0/false: not given) */
    bool peer_h2c, no_demo_data;
    uint64_t event_ring, import_max_rows, event_poll_ms;
    uint64_t orphan_sweep_ms; /* the orders default until given; 0: off */
} omsd_options;

/* The defaults: TLS on 127.0.0.1:50051 with certs/server.{pem,key}, one
 * worker per core (up to 64), the order system over sqlite:./oms.db, peers
 * verified with certs/ca.pem when it is there. */
void omsd_options_init(omsd_options *o);

/* Parses argv into o (strings borrowed from argv). Returns 0; 1 after
 * --help or --version (printed: exit 0); -1 on a usage error (printed to
 * stderr: exit 2). On 0, o->orders.peer_token is a malloc'ed token read
 * from --peer-token-file (or NULL) that the caller frees. */
int omsd_parse_args(int argc, char **argv, omsd_options *o);

#endif
