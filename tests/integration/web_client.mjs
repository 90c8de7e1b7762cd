// An independent client of omsd's web protocols: the npm @connectrpc/connect-node
// client with its Connect or gRPC-Web transport over HTTP/2 or HTTP/1.1, on
// descriptors loaded at run time (no generated code). Driven by run_web.py:
//
//   node web_client.mjs --modules DIR --schema oms.binpb --base-url URL
//        --transport connect|grpcweb [--http-version 2|1.1] [--ca ca.pem]
//
// Prints one line per step ("ok <step>") and exits 0, or prints "FAIL <step>:
// <why>" and exits 1.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const args = {};
for (let i = 2; i < process.argv.length; i += 2)
  args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];

// The packages live in the build tree (scripts/deps.sh), not next to this file.
const require = createRequire(path.join(path.resolve(args.modules), "index.js"));
const { createClient, ConnectError, Code } = require("@connectrpc/connect");
const { createConnectTransport, createGrpcWebTransport } = require("@connectrpc/connect-node");
const { createFileRegistry, fromBinary } = require("@bufbuild/protobuf");
const { FileDescriptorSetSchema } = require("@bufbuild/protobuf/wkt");

const registry = createFileRegistry(
  fromBinary(FileDescriptorSetSchema, readFileSync(args.schema)));
const opts = {
  baseUrl: args["base-url"],
  httpVersion: args["http-version"] || "2",
  nodeOptions: args.ca ? { ca: readFileSync(args.ca) } : {},
};
const transport =
  args.transport === "grpcweb" ? createGrpcWebTransport(opts) : createConnectTransport(opts);
const client = (name) => createClient(registry.getService(name), transport);
const customers = client("oms.v1.CustomerService");
const inventory = client("oms.v1.InventoryService");
const orders = client("oms.v1.OrderService");

function check(cond, what) {
  if (!cond) throw new Error(what);
}

const steps = [
  ["unary", async () => {
    const c = await customers.getCustomer({ id: "c-1" });
    check(c.name === "Ada Lovelace", `name ${c.name}`);
  }],
  ["error_code", async () => {
    try {
      await orders.getOrder({ id: "o-404" });
    } catch (e) {
      const err = ConnectError.from(e);
      check(err.code === Code.NotFound, `code ${err.code}: ${err.message}`);
      check(err.rawMessage.includes("o-404"), `message ${err.rawMessage}`);
      return;
    }
    throw new Error("GetOrder o-404 succeeded");
  }],
  ["error_details", async () => {
    try {
      await orders.createOrder({ customerId: "c-1", lines: [{ sku: "SKU-001", quantity: 0n }] });
    } catch (e) {
      const err = ConnectError.from(e);
      check(err.code === Code.InvalidArgument, `code ${err.code}`);
      check(err.details.length === 1 && err.details[0].type === "google.rpc.BadRequest",
            `details ${JSON.stringify(err.details.map((d) => d.type))}`);
      return;
    }
    throw new Error("CreateOrder with quantity 0 succeeded");
  }],
  ["server_stream", async () => {
    const skus = [];
    for await (const p of inventory.listProducts({})) skus.push(p.sku);
    check(skus.length >= 6 && skus[0] === "SKU-001", `skus ${skus}`);
  }],
  ["watch", async () => {
    const o = await orders.createOrder({
      customerId: "c-2", lines: [{ sku: "SKU-002", quantity: 1n }] });
    await orders.updateOrderStatus({ id: o.id, status: 2 /* CONFIRMED */ });
    const ac = new AbortController();
    const seen = [];
    try {
      for await (const ev of orders.watchOrders({ orderIds: [o.id], sinceSeq: 1n },
                                                { signal: ac.signal })) {
        seen.push(ev.status);
        if (seen.length === 2) ac.abort();
      }
    } catch (e) {
      if (ConnectError.from(e).code !== Code.Canceled) throw e;
    }
    check(seen.join() === "1,2", `events ${seen}`);
  }],
];

// Bidi streaming needs both directions at once: Connect over HTTP/2 only
// (gRPC-Web has none). TrackOrders: subscribe to an order made before, get
// its events, then a half-close ends the call once they were sent.
if (args.transport === "connect" && opts.httpVersion === "2") {
  steps.push(["bidi", async () => {
    const o = await orders.createOrder({
      customerId: "c-3", lines: [{ sku: "SKU-003", quantity: 1n }] });
    await orders.cancelOrder({ id: o.id, reason: "bidi test" });
    let release;
    const gate = new Promise((r) => { release = r; });
    async function* requests() {
      yield { action: { case: "subscribe", value: { orderIds: [o.id], sinceSeq: 1n } } };
      await gate; // the half-close waits until both events came back
    }
    const seen = [];
    for await (const ev of orders.trackOrders(requests())) {
      seen.push(ev.status);
      if (seen.length === 2) release();
    }
    check(seen.join() === "1,5", `events ${seen}`);
  }]);
}

for (const [name, fn] of steps) {
  try {
    await fn();
    console.log(`ok ${name}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  }
}
process.exit(0);
