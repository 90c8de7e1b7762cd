/* omsctl_csv.c - fuzz target: omsctl's CSV import parser
 * (src/omsctl/omsctl_import.c: pump/take_line/emit_row), fed a file's bytes.
 *
 * The parser is static in omsctl_import.c and sends each row through the
 * generated ImportOrders stub, so this file includes omsctl_import.c itself
 * with the three rpc client calls it makes renamed to stubs here: the source
 * is fuzzed unchanged. The stub checks what a row sent to the server looks
 * like (a row_id, 1..1000 lines, non-empty SKUs, a customer) and answers
 * RPC_AGAIN every other row, so the on_ready path that resumes reading runs
 * too. Byte 0 of the input picks JSON or human output; the rest is the file.
 */
#define rpc_client_call_send       fz_call_send
#define rpc_client_call_cancel     fz_call_cancel
#define rpc_client_call_close_send fz_call_close_send

#include "../src/omsctl/omsctl_import.c"

#include <stdio.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int nsend;

int fz_call_send(rpc_client_call *c, const ProtobufCMessage *m)
{
    (void)c;
    if (m->descriptor != &oms__v1__import_order_row__descriptor)
        abort();
    const Oms__V1__ImportOrderRow *row = (const Oms__V1__ImportOrderRow *)m;
    const Oms__V1__CreateOrderRequest *o = row->order;
    if (!row->row_id || !*row->row_id || !o || !o->customer_id || !*o->customer_id ||
        o->n_lines < 1 || o->n_lines > MAX_ROW_LINES) {
        fprintf(stderr, "fuzz: a malformed row was sent\n");
        abort();
    }
    for (size_t i = 0; i < o->n_lines; i++)
        if (!o->lines[i]->sku || !*o->lines[i]->sku)
            abort();
    /* The real stub packs the message: so do we. */
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf || protobuf_c_message_pack(m, buf) != len)
        abort();
    free(buf);
    return nsend++ % 2 ? RPC_AGAIN : 0;
}

void fz_call_cancel(rpc_client_call *c)
{
    (void)c;
}

int fz_call_close_send(rpc_client_call *c)
{
    (void)c;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Row results are printed: keep them off the fuzzer's output. */
    if (!getenv("FUZZ_LOG") && !freopen("/dev/null", "w", stdout))
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    omsctl ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.json = data[0] & 1;
    /* fmemopen() needs a writable buffer of at least one byte. */
    size_t n = size - 1;
    char *copy = malloc(n ? n : 1);
    if (!copy)
        return 0;
    memcpy(copy, data + 1, n);
    import_state st;
    memset(&st, 0, sizeof st);
    st.ctl = &ctl;
    st.path = "fuzz";
    st.code = RPC_UNKNOWN;
    st.call = (rpc_client_call *)&st; /* never dereferenced by the stubs */
    st.in = fmemopen(copy, n ? n : 1, "r");
    if (!st.in) {
        free(copy);
        return 0;
    }
    if (n == 0)
        fgetc(st.in); /* an empty file: skip the placeholder byte */
    nsend = 0;
    pump(&st);
    while (st.blocked && !st.finished)
        on_import_ready(st.call, &st);
    fflush(stdout);
    row_reset(&st.row);
    free(st.buf);
    fclose(st.in);
    free(copy);
    return 0;
}
