/* oms_requests.c - fuzz target: every oms.v1 request type's decode and the
 * services' validation that runs before the store is touched.
 *
 * Input: byte 0 picks a method of CustomerService, InventoryService or
 * OrderService (in that order, modulo their count); the rest is the request
 * message as a call would deframe it. It is unpacked with protobuf-c the way
 * rpc does (through an allocator), checked, re-packed and unpacked again (the
 * second decode must give the same bytes), then handed to the validators of
 * src/orders (order_rules.c and the name rules) that need no store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "oms/v1/customer.pb-c.h"
#include "oms/v1/inventory.pb-c.h"
#include "oms/v1/order.pb-c.h"
#include "orders_int.h"

static const ProtobufCServiceDescriptor *const services[] = {
    &oms__v1__customer_service__descriptor,
    &oms__v1__inventory_service__descriptor,
    &oms__v1__order_service__descriptor,
};

static const ProtobufCMethodDescriptor *pick(unsigned k)
{
    unsigned total = 0;
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
        total += services[i]->n_methods;
    k %= total;
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) {
        if (k < services[i]->n_methods)
            return &services[i]->methods[k];
        k -= services[i]->n_methods;
    }
    return NULL;
}

static void validate_create(const Oms__V1__CreateOrderRequest *req)
{
    char why[256];
    rpc_status st = orders__validate_create(req, why, sizeof why);
    if (st != RPC_OK)
        return;
    /* What validation let through must fit the store's limits. */
    CHECK(req->n_lines >= 1 && req->n_lines <= STORE_MAX_LINES);
    CHECK(strlen(req->customer_id) <= STORE_ID_MAX);
    CHECK(strlen(req->idempotency_key) <= STORE_KEY_MAX);
    for (size_t i = 0; i < req->n_lines; i++) {
        CHECK(strlen(req->lines[i]->sku) <= STORE_SKU_MAX);
        CHECK(req->lines[i]->quantity > 0);
        int64_t t;
        (void)orders__line_total(req->lines[i]->quantity, INT64_MAX / 3, &t);
    }
}

static void validate(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == &oms__v1__create_order_request__descriptor) {
        validate_create((const Oms__V1__CreateOrderRequest *)m);
    } else if (d == &oms__v1__import_order_row__descriptor) {
        const Oms__V1__ImportOrderRow *r = (const Oms__V1__ImportOrderRow *)m;
        if (r->order)
            validate_create(r->order);
    } else if (d == &oms__v1__update_order_status_request__descriptor) {
        const Oms__V1__UpdateOrderStatusRequest *r = (const Oms__V1__UpdateOrderStatusRequest *)m;
        for (int from = 0; from < 8; from++)
            (void)orders__transition_ok(from, (int)r->status);
        (void)orders__allowed_from((int)r->status);
        CHECK(orders__status_name((int)r->status) != NULL);
    }
    /* Every string field goes through the generic name rule too. */
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
            continue;
        const char *s = *(const char *const *)((const char *)m + f->offset);
        if (s) {
            (void)orders__name_ok(s, STORE_NAME_MAX);
            (void)orders__sku_ok(s);
        }
    }
}

/* Whether m or any message inside it kept unknown fields. */
static bool has_unknown(const ProtobufCMessage *m)
{
    if (m->n_unknown_fields > 0)
        return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const ProtobufCMessage *const *v =
                *(const ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (has_unknown(v[k]))
                    return true;
        } else {
            /* a oneof's members share one union: follow the set one only */
            if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                *(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);
            if (sub && has_unknown(sub))
                return true;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ProtobufCMethodDescriptor *md = pick(data[0]);
    const ProtobufCMessageDescriptor *in = md->input;
    /* An exact-size copy, so ASan sees any over-read. */
    size_t n = size - 1;
    uint8_t *buf = malloc(n ? n : 1);
    CHECK(buf != NULL);
    memcpy(buf, data + 1, n);
    ProtobufCMessage *m = protobuf_c_message_unpack(in, NULL, n, buf);
    if (m) {
        CHECK(protobuf_c_message_check(m));
        size_t len = protobuf_c_message_get_packed_size(m);
        uint8_t *out = malloc(len ? len : 1);
        CHECK(out != NULL);
        CHECK(protobuf_c_message_pack(m, out) == len);
        ProtobufCMessage *m2 = protobuf_c_message_unpack(in, NULL, len, out);
        /* protobuf-c 1.4 keeps a field numbered 0 as an unknown field (at
         * any depth) and packs it back as a tag it then refuses to unpack:
         * not ours to check. Without unknown fields a round trip must work. */
        if (!m2 && has_unknown(m)) {
            validate(m);
            free(out);
            protobuf_c_message_free_unpacked(m, NULL);
            free(buf);
            return 0;
        }
        CHECK(m2 != NULL);
        size_t len2 = protobuf_c_message_get_packed_size(m2);
        uint8_t *out2 = malloc(len2 ? len2 : 1);
        CHECK(out2 != NULL);
        CHECK(protobuf_c_message_pack(m2, out2) == len2);
        CHECK(len2 == len && memcmp(out, out2, len) == 0);
        validate(m);
        free(out2);
        protobuf_c_message_free_unpacked(m2, NULL);
        free(out);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    free(buf);
    return 0;
}
