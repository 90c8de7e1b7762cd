/* The Prometheus text format writer and the empty registry's output. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "metrics/metrics.h"

Test(metrics_text, family_and_samples)
{
    oms_mtext t = {0};
    oms_mtext_family(&t, "x_total", "counter", "Help with \\ and\nnewline.");
    const char *labels[] = {"a", "plain", "b", "q\"uote\\back\nnl", NULL};
    oms_mtext_sample(&t, "x_total", labels, 3);
    oms_mtext_sample(&t, "x_total", NULL, 0.25);
    oms_mtext_sample_extra(&t, "h_bucket", labels, "le", "+Inf", 7);
    oms_mtext_sample(&t, "g", NULL, INFINITY);
    oms_mtext_sample(&t, "g", NULL, 1e20);
    cr_assert(!t.failed);
    cr_assert_str_eq(t.buf, "# HELP x_total Help with \\\\ and\\nnewline.\n"
                            "# TYPE x_total counter\n"
                            "x_total{a=\"plain\",b=\"q\\\"uote\\\\back\\nnl\"} 3\n"
                            "x_total 0.25\n"
                            "h_bucket{a=\"plain\",b=\"q\\\"uote\\\\back\\nnl\",le=\"+Inf\"} 7\n"
                            "g +Inf\n"
                            "g 1e+20\n");
    oms_mtext_dispose(&t);
}

Test(metrics_text, registry_without_calls)
{
    oms_metrics *m = oms_metrics_new(2);
    cr_assert_eq(oms_metrics_add_server_method(m, "/a.B/C", RPC_CALL_UNKNOWN), 0);
    cr_assert_eq(oms_metrics_add_server_method(m, "/a.B/C", RPC_CALL_UNARY),
                 0);                                                 /* duplicate: ignored */
    cr_assert_eq(oms_metrics_add_server_method(m, "/a.B/X", 99), 0); /* bad type: unknown */
    cr_assert_eq(oms_metrics_add_server_method(m, "nope", RPC_CALL_UNARY), -1);
    cr_assert_eq(oms_metrics_add_server_method(m, "/a.B/C/D", RPC_CALL_UNARY), -1);
    cr_assert_eq(oms_metrics_start(m), 0);
    cr_assert_eq(oms_metrics_add_server_method(m, "/a.B/D", RPC_CALL_UNARY), -1); /* too late */
    oms_mtext t = {0};
    oms_metrics_render(m, &t);
    cr_assert(!t.failed);
    /* families, no samples: a method shows once called */
    cr_assert(strstr(t.buf, "# TYPE grpc_server_started_total counter\n"));
    cr_assert(strstr(t.buf, "# TYPE grpc_server_handling_seconds histogram\n"));
    cr_assert_null(strstr(t.buf, "grpc_server_started_total{"));
    cr_assert_null(strstr(t.buf, "grpc_client_"), "no client family without client methods");
    oms_mtext_dispose(&t);
    oms_metrics_free(m);
}

Test(metrics_text, typed_methods_start_at_zero)
{
    oms_metrics *m = oms_metrics_new(3);
    cr_assert_eq(oms_metrics_add_server_method(m, "/a.B/U", RPC_CALL_UNARY), 0);
    cr_assert_eq(oms_metrics_add_server_method(m, "/a.B/S", RPC_CALL_SERVER_STREAMING), 0);
    cr_assert_eq(oms_metrics_add_server_method(m, "/a.B/N", RPC_CALL_UNKNOWN), 0);
    cr_assert_eq(oms_metrics_start(m), 0);
    oms_mtext t = {0};
    oms_metrics_render(m, &t);
    cr_assert(!t.failed);
    const char *want[] = {
        "grpc_server_started_total{grpc_method=\"U\",grpc_service=\"a.B\",grpc_type=\"unary\"} "
        "0\n",
        "grpc_server_started_total{grpc_method=\"S\",grpc_service=\"a.B\",grpc_type=\"server_"
        "stream\"} 0\n",
        "grpc_server_handled_total{grpc_method=\"U\",grpc_service=\"a.B\",grpc_type=\"unary\","
        "grpc_code=\"OK\"} 0\n",
        "grpc_server_msg_received_total{grpc_method=\"S\",grpc_service=\"a.B\",grpc_type="
        "\"server_stream\"} 0\n",
        "grpc_server_msg_sent_total{grpc_method=\"U\",grpc_service=\"a.B\",grpc_type=\"unary\"} "
        "0\n",
        "grpc_server_handling_seconds_count{grpc_method=\"U\",grpc_service=\"a.B\",grpc_type="
        "\"unary\"} 0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(t.buf, want[i]), "missing %s in\n%s", want[i], t.buf);
    cr_assert_null(strstr(t.buf, "grpc_method=\"N\""), "untyped method: once called");
    cr_assert_null(strstr(t.buf, "grpc_method=\"unknown\""), "unknown row: once called");
    oms_mtext_dispose(&t);
    oms_metrics_free(m);
}

Test(metrics_text, process_families)
{
    oms_mtext t = {0};
    oms_metrics_render_process(&t, 1700000000.5, "1.2.3", "abc\"def");
    cr_assert(strstr(t.buf, "process_resident_memory_bytes "));
    cr_assert(strstr(t.buf, "process_cpu_seconds_total "));
    cr_assert(strstr(t.buf, "process_open_fds "));
    cr_assert(strstr(t.buf, "process_start_time_seconds 1700000000.5\n"));
    cr_assert(strstr(t.buf, "oms_build_info{commit=\"abc\\\"def\",version=\"1.2.3\"} 1\n"));
    oms_mtext_dispose(&t);
}
