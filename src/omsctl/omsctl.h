/* omsctl.h - private header of omsctl, the command-line client.
 *
 * omsctl.c parses the global flags, makes the channel and dispatches to one
 * command function; omsctl_out.c formats results (human columns or JSON
 * lines); omsctl_cmds.c holds the unary and list commands, omsctl_import.c the
 * client-streaming import and omsctl_watch.c the watch and track streams.
 */
#ifndef OMS_APP_OMSCTL_H
#define OMS_APP_OMSCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "oms/v1/customer.pb-c.h"
#include "oms/v1/inventory.pb-c.h"
#include "oms/v1/order.pb-c.h"
#include "rpc/rpc_client.h"

/* Exit codes, by failure kind (documented in --help). */
enum {
    OMSCTL_EXIT_OK = 0,
    OMSCTL_EXIT_USAGE = 1,
    OMSCTL_EXIT_UNAVAILABLE = 2, /* connection, UNAVAILABLE, DEADLINE_EXCEEDED */
    OMSCTL_EXIT_NOT_FOUND = 3,
    OMSCTL_EXIT_REJECTED = 4, /* INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS, ... */
    OMSCTL_EXIT_SERVER = 5,   /* any other status */
};

#define OMSCTL_DEFAULT_TARGET  "127.0.0.1:50051"
#define OMSCTL_DEFAULT_CA      "certs/ca.pem" /* relative to the cwd, then to the binary */
#define OMSCTL_DEFAULT_TIMEOUT 10.0           /* seconds, unary and list calls */

/* Global flags and the channel every command uses. */
typedef struct omsctl {
    const char *target;
    const char *ca_file;              /* NULL: the system's roots */
    const char *cert_file, *key_file; /* --cert/--key: client certificate, or NULL */
    const char *server_name;
    bool h2c;
    bool json;
    const char *token;      /* --token */
    const char *token_file; /* --token-file */
    double timeout_s;       /* --timeout; 0 with timeout_set: no deadline */
    bool timeout_set;       /* --timeout given (streams use it only then) */
    uv_loop_t loop;
    rpc_channel *chan; /* made by omsctl_connect() */
    bool fast_backoff; /* watch: reconnect quickly (set before omsctl_connect) */
    int stdout_errno;  /* errno of the first failed write to stdout */
    /* Rich error details (serialized google.rpc.Status) of the last failed
     * call, malloc'ed; NULL: none. Filled by blocking calls made with
     * omsctl_call_opts() and by omsctl_keep_details(); freed by main. */
    uint8_t *details;
    size_t details_len;
} omsctl;

/* A command: argv[0] is the command name; returns an exit code. */
typedef int (*omsctl_cmd_fn)(omsctl *ctl, int argc, char **argv);

/* --- omsctl.c ---------------------------------------------------------------- */

/* Creates ctl->chan on ctl->loop from the flags. Returns 0, or an exit code
 * after printing the reason. */
int omsctl_connect(omsctl *ctl);
/* Per-call options for unary and list calls (the --timeout deadline; a
 * blocking call leaves its error details in ctl->details). */
rpc_call_opts omsctl_call_opts(omsctl *ctl);
/* Whether writing to stdout has failed (a streaming command then stops);
 * the first failure's errno is kept for main. */
bool omsctl_stdout_failed(omsctl *ctl);
/* Runs ctl->loop until *flag is set or nothing is left to run. */
void omsctl_run_until(omsctl *ctl, const bool *flag);
/* --- omsctl_err.c ------------------------------------------------------------ */

/* Set once by main: whether failures print as one JSON object (--json)
 * instead of text, and the CA file in use (NULL: the system's roots), which a
 * TLS verification failure names with what to do about it. */
void omsctl_err_init(bool json, const char *ca_file);
/* Prints a failed status to stderr and returns the exit code for code:
 * "omsctl: CODE: message" then one indented line per rich error detail
 * (details: a serialized google.rpc.Status, NULL for none), or with --json
 * {"code":"CODE","message":"...","details":[...]}. */
int omsctl_fail_details(rpc_status code, const char *message, const uint8_t *details, size_t len);
/* The same without details: a local failure. */
int omsctl_fail(rpc_status code, const char *message);
/* Inside on_status: keeps the call's error details in ctl->details. */
void omsctl_keep_details(omsctl *ctl, rpc_client_call *c);
/* omsctl_fail_details() with ctl->details. */
int omsctl_fail_call(omsctl *ctl, rpc_status code, const char *message);
/* The exit code of a status (0 for OK). */
int omsctl_exit_code(rpc_status code);
/* Prints "omsctl: <msg>" and the command's usage to stderr; returns OMSCTL_EXIT_USAGE. */
int omsctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the usage of cmd (NULL: everything) to f. */
void omsctl_usage(FILE *f, const char *cmd);

/* Whether argv[i] is a global flag (the client's --key only before_command);
 * if so, applies it (consuming its value, advancing *i) and sets *rc to 0, or
 * to an exit code on a missing or bad value. */
bool omsctl_global_flag(omsctl *ctl, int argc, char **argv, int *i, bool before_command, int *rc);
/* Matches "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i past the
 * value. *missing is set when the value is absent. */
bool omsctl_opt(int argc, char **argv, int *i, const char *name, const char **val, bool *missing);
/* Prints "omsctl: unknown option ARG; did you mean --X?" (the nearest of
 * names[0..n) and the global flags) and one line pointing at --help (of cmd,
 * NULL: omsctl's); returns OMSCTL_EXIT_USAGE. */
int omsctl_unknown_option(const char *cmd, const char *arg, const char *const *names, size_t n);
/* Parses a command's arguments from argv[first]: options "--NAME VALUE" or
 * "--NAME=VALUE" for each of names (value stored in vals[k], the last one
 * wins), anything else positional ("--" ends the options). Positionals are
 * compacted in place to argv[first .. first + *npos). Returns 0 or an exit
 * code after a usage message. */
int omsctl_parse_args(const char *cmd, int argc, char **argv, int first, const char *const *names,
                      const char **vals, size_t nnames, int *npos);
/* Strict integer parsing: the whole string, in range. Returns 0 or -1. */
int omsctl_parse_i64(const char *s, int64_t *out);
/* Parses an order status name (pending|confirmed|...|ORDER_STATUS_X), case-insensitive.
 * Returns 0 or -1. */
int omsctl_parse_order_status(const char *s, Oms__V1__OrderStatus *out);

/* --- omsctl_out.c ------------------------------------------------------------ */

/* Writes s as a JSON string literal (quotes included). */
void omsctl_json_str(FILE *f, const char *s);
/* "12.34" for 1234 cents; buf of at least 32 bytes. */
const char *omsctl_money(int64_t cents, char *buf, size_t len);
/* "2026-01-02T03:04:05.678Z" for unix ms (0: "-"); buf of at least 32 bytes. */
const char *omsctl_time(int64_t ms, char *buf, size_t len);
const char *omsctl_order_status_name(Oms__V1__OrderStatus s);       /* "PENDING" */
const char *omsctl_customer_status_name(Oms__V1__CustomerStatus s); /* "ACTIVE" */

/* Single results: a block of "key: value" lines, or one JSON object line. */
void omsctl_print_customer(const omsctl *ctl, const Oms__V1__Customer *c);
void omsctl_print_product(const omsctl *ctl, const Oms__V1__Product *p);
void omsctl_print_order(const omsctl *ctl, const Oms__V1__Order *o);
/* List rows: a header line first (human only; header=true once), then rows. */
void omsctl_print_customer_row(const omsctl *ctl, const Oms__V1__Customer *c, bool header);
void omsctl_print_product_row(const omsctl *ctl, const Oms__V1__Product *p, bool header);
void omsctl_print_stock_row(const omsctl *ctl, const Oms__V1__Product *p, bool header);
void omsctl_print_order_row(const omsctl *ctl, const Oms__V1__Order *o, bool header);
/* One event per line, flushed. */
void omsctl_print_event(const omsctl *ctl, const Oms__V1__OrderEvent *e);
/* JSON bodies without the surrounding newline, for embedding. */
void omsctl_json_order(FILE *f, const Oms__V1__Order *o);

/* --- commands ------------------------------------------------------------------ */

int omsctl_cmd_customers(omsctl *ctl, int argc, char **argv);
int omsctl_cmd_products(omsctl *ctl, int argc, char **argv);
int omsctl_cmd_stock(omsctl *ctl, int argc, char **argv);
int omsctl_cmd_orders(omsctl *ctl, int argc, char **argv);
int omsctl_cmd_create(omsctl *ctl, int argc, char **argv);
int omsctl_cmd_cancel(omsctl *ctl, int argc, char **argv);
int omsctl_cmd_status(omsctl *ctl, int argc, char **argv);
int omsctl_cmd_health(omsctl *ctl, int argc, char **argv);
int omsctl_cmd_import(omsctl *ctl, int argc, char **argv);
int omsctl_cmd_watch(omsctl *ctl, int argc, char **argv);
int omsctl_cmd_track(omsctl *ctl, int argc, char **argv);
int omsctl_cmd_token(omsctl *ctl, int argc, char **argv); /* omsctl_token.c: no server */

#endif
