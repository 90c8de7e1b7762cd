// oms-bench-cpp - the gRPC C++ reference peer for oms.bench.v1.OrderBench.
//
// Implements proto/oms/bench/v1/bench.proto with exactly the logic its header
// comment fixes, on libgrpc++ (Debian 12: 1.51) with the *async* API: one
// ServerCompletionQueue served by one thread (the main thread). Every call of
// every method is a small state machine driven from that thread, so the gRPC
// C++ stack runs on one core like omsd's single event loop. (The callback API
// is not used: in 1.51 its reactions run on gRPC's internal executor threads,
// i.e. not on one thread we control.)
//
// CLI mirrors omsd's: --listen HOST:PORT (port 0 = a free port), --h2c or TLS
// (--tls-cert/--tls-key), --grace SECONDS, --max-streams N, --max-recv-msg
// BYTES. Prints "listening on HOST:PORT (tls|h2c)" when ready; SIGINT/SIGTERM
// shut down with a deadline of --grace seconds and exit 0.

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <pthread.h>
#include <signal.h>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>

#include "oms/bench/v1/bench.grpc.pb.h"

using grpc::ServerAsyncReaderWriter;
using grpc::ServerAsyncResponseWriter;
using grpc::ServerAsyncWriter;
using grpc::ServerCompletionQueue;
using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;
namespace pb = oms::bench::v1;

namespace {

constexpr size_t kMaxOrders = 1000000;

// --- the order store: one mutex-protected hash map keyed by id -------------

class Store {
public:
    // ids are taken outside the mutex (as in omsd); two racing creates may
    // insert "o-6" before "o-5", which nothing observes.
    uint64_t NextId() { return next_.fetch_add(1, std::memory_order_relaxed) + 1; }

    void Put(const std::string &id, pb::Order order)
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (map_.size() >= kMaxOrders)
            map_.clear();
        map_.insert_or_assign(id, std::move(order));
    }

    bool Get(const std::string &id, pb::Order *out)
    {
        std::lock_guard<std::mutex> lk(mu_);
        auto it = map_.find(id);
        if (it == map_.end())
            return false;
        *out = it->second;
        return true;
    }

    pb::OrderStatus Status(const std::string &id)
    {
        std::lock_guard<std::mutex> lk(mu_);
        auto it = map_.find(id);
        return it == map_.end() ? pb::ORDER_STATUS_UNSPECIFIED : it->second.status();
    }

private:
    std::atomic<uint64_t> next_{0};
    std::mutex mu_;
    std::unordered_map<std::string, pb::Order> map_;
};

int64_t NowUnixMs()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// CreateOrder's logic; fills *order or returns the error status. A total
// that does not fit int64 is INVALID_ARGUMENT, as in omsd (the contract
// leaves overflow open).
Status CreateOrder(Store &store, const pb::CreateOrderRequest &req, pb::Order *order)
{
    if (req.customer_id().empty())
        return Status(StatusCode::INVALID_ARGUMENT, "customer_id must not be empty");
    int64_t sum = 0;
    for (const auto &it : req.items()) {
        if (it.quantity() <= 0)
            return Status(StatusCode::INVALID_ARGUMENT, "item quantity must be > 0");
        int64_t line;
        if (__builtin_mul_overflow((int64_t)it.quantity(), it.unit_price_cents(), &line) ||
            __builtin_add_overflow(sum, line, &sum))
            return Status(StatusCode::INVALID_ARGUMENT, "total_cents overflows int64");
    }
    std::string id = "o-" + std::to_string(store.NextId());
    order->set_id(id);
    order->set_customer_id(req.customer_id());
    *order->mutable_items() = req.items();
    order->set_total_cents(sum);
    order->set_status(pb::ORDER_STATUS_PENDING);
    order->set_created_at_unix_ms(NowUnixMs());
    store.Put(id, *order); // copy made outside the lock, moved in under it
    return Status::OK;
}

// --- async call machinery ---------------------------------------------------

struct Call;

// A completion-queue tag: which call, which operation.
struct Tag {
    Call *call;
    int op;
};

struct Env {
    pb::OrderBench::AsyncService *service;
    ServerCompletionQueue *cq;
    Store *store;
    // set before Server::Shutdown: matched calls no longer request new ones
    // (the queue may be shut down by the time they are seen)
    std::atomic<bool> stopping{false};
};

// Requests the next call of the same method unless the server is stopping.
template <class C> void Rearm(Env *env)
{
    if (!env->stopping.load(std::memory_order_relaxed))
        new C(env);
}

struct Call {
    explicit Call(Env *e) : env(e) {}
    virtual ~Call() = default;
    virtual void Proceed(int op, bool ok) = 0;
    Env *env;
    ServerContext ctx;
};

enum Op { OP_REQUEST, OP_READ, OP_WRITE, OP_FINISH };

// CreateOrder and GetOrder: request -> Finish -> delete.
class CreateCall final : public Call {
public:
    explicit CreateCall(Env *e) : Call(e), responder_(&ctx)
    {
        env->service->RequestCreateOrder(&ctx, &req_, &responder_, env->cq, env->cq, &request_);
    }
    void Proceed(int op, bool ok) override
    {
        if (op == OP_REQUEST) {
            if (!ok) { // server shutting down
                delete this;
                return;
            }
            Rearm<CreateCall>(env);
            pb::Order order;
            Status st = CreateOrder(*env->store, req_, &order);
            if (st.ok())
                responder_.Finish(order, Status::OK, &finish_);
            else
                responder_.FinishWithError(st, &finish_);
            return;
        }
        delete this; // OP_FINISH, sent or not
    }

private:
    pb::CreateOrderRequest req_;
    ServerAsyncResponseWriter<pb::Order> responder_;
    Tag request_{this, OP_REQUEST}, finish_{this, OP_FINISH};
};

class GetCall final : public Call {
public:
    explicit GetCall(Env *e) : Call(e), responder_(&ctx)
    {
        env->service->RequestGetOrder(&ctx, &req_, &responder_, env->cq, env->cq, &request_);
    }
    void Proceed(int op, bool ok) override
    {
        if (op == OP_REQUEST) {
            if (!ok) {
                delete this;
                return;
            }
            Rearm<GetCall>(env);
            pb::Order order;
            if (env->store->Get(req_.id(), &order))
                responder_.Finish(order, Status::OK, &finish_);
            else
                responder_.FinishWithError(Status(StatusCode::NOT_FOUND, "order not found"),
                                           &finish_);
            return;
        }
        delete this;
    }

private:
    pb::GetOrderRequest req_;
    ServerAsyncResponseWriter<pb::Order> responder_;
    Tag request_{this, OP_REQUEST}, finish_{this, OP_FINISH};
};

// WatchOrders: one Write in flight at a time (a write completes when the
// transport takes it, i.e. as fast as flow control allows); the last event
// goes out with WriteAndFinish. A failed write (cancelled call) ends it.
class WatchCall final : public Call {
public:
    explicit WatchCall(Env *e) : Call(e), writer_(&ctx)
    {
        env->service->RequestWatchOrders(&ctx, &req_, &writer_, env->cq, env->cq, &request_);
    }
    void Proceed(int op, bool ok) override
    {
        switch (op) {
        case OP_REQUEST:
            if (!ok) {
                delete this;
                return;
            }
            Rearm<WatchCall>(env);
            if (req_.count() < 0) {
                writer_.Finish(Status(StatusCode::INVALID_ARGUMENT, "count must be >= 0"),
                               &finish_);
                return;
            }
            count_ = req_.count();
            ev_.set_order_id("watch");
            Pump();
            return;
        case OP_WRITE:
            if (!ok) { // the call is gone; nothing else is in flight
                delete this;
                return;
            }
            Pump();
            return;
        default: // OP_FINISH
            delete this;
        }
    }

private:
    void Pump()
    {
        if (next_ > count_) { // count == 0
            writer_.Finish(Status::OK, &finish_);
            return;
        }
        int64_t k = next_++;
        ev_.set_status(static_cast<pb::OrderStatus>(1 + (k - 1) % 5));
        ev_.set_seq(k);
        if (k == count_)
            writer_.WriteAndFinish(ev_, grpc::WriteOptions(), Status::OK, &finish_);
        else
            writer_.Write(ev_, &write_);
    }

    pb::WatchRequest req_;
    pb::OrderEvent ev_;
    int64_t next_ = 1, count_ = 0;
    ServerAsyncWriter<pb::OrderEvent> writer_;
    Tag request_{this, OP_REQUEST}, write_{this, OP_WRITE}, finish_{this, OP_FINISH};
};

// Track: at most one Read and one Write in flight, plus at most one event
// waiting for the write (reading pauses while one waits), so events go out in
// request order and memory per stream is bounded. Finishes OK once the client
// half-closed and every event is written.
class TrackCall final : public Call {
public:
    explicit TrackCall(Env *e) : Call(e), stream_(&ctx)
    {
        env->service->RequestTrack(&ctx, &stream_, env->cq, env->cq, &request_);
    }
    void Proceed(int op, bool ok) override
    {
        switch (op) {
        case OP_REQUEST:
            if (!ok) {
                delete this;
                return;
            }
            Rearm<TrackCall>(env);
            StartRead();
            return;
        case OP_READ:
            reading_ = false;
            if (!ok || failed_) { // half-close (or cancellation)
                read_done_ = true;
                break;
            }
            MakeEvent(writing_ ? &pending_ : &out_);
            if (writing_) {
                have_pending_ = true; // resume reading once it is written
            } else {
                StartWrite();
                StartRead();
            }
            break;
        case OP_WRITE:
            writing_ = false;
            if (!ok) {
                failed_ = true;
                break;
            }
            if (have_pending_) {
                have_pending_ = false;
                out_.Swap(&pending_);
                StartWrite();
                if (!read_done_)
                    StartRead();
            }
            break;
        default: // OP_FINISH
            delete this;
            return;
        }
        if (reading_ || writing_)
            return;
        if (failed_) {
            delete this; // dropping the context cancels the call
            return;
        }
        if (read_done_ && !have_pending_)
            stream_.Finish(Status::OK, &finish_);
    }

private:
    void MakeEvent(pb::OrderEvent *ev)
    {
        ev->set_order_id(req_.order_id());
        ev->set_status(env->store->Status(req_.order_id()));
        ev->set_seq(++seq_);
    }
    void StartRead()
    {
        reading_ = true;
        stream_.Read(&req_, &read_);
    }
    void StartWrite()
    {
        writing_ = true;
        stream_.Write(out_, &write_);
    }

    pb::TrackRequest req_;
    pb::OrderEvent out_, pending_;
    int64_t seq_ = 0;
    bool reading_ = false, writing_ = false, have_pending_ = false;
    bool read_done_ = false, failed_ = false;
    ServerAsyncReaderWriter<pb::OrderEvent, pb::TrackRequest> stream_;
    Tag request_{this, OP_REQUEST}, read_{this, OP_READ}, write_{this, OP_WRITE},
        finish_{this, OP_FINISH};
};

// --- CLI --------------------------------------------------------------------

struct Options {
    std::string listen = "127.0.0.1:50051";
    bool h2c = false;
    std::string tls_cert = "certs/server.pem";
    std::string tls_key = "certs/server.key";
    int max_streams = 1000;
    int max_recv_msg = 4 * 1024 * 1024;
    double grace = 10;
    int prepost = 64;
};

void Usage(FILE *f)
{
    std::fprintf(f,
                 "usage: oms-bench-cpp [options]\n\n"
                 "gRPC C++ (libgrpc++, async API, one completion-queue thread) reference\n"
                 "peer for oms.bench.v1.OrderBench.\n\n"
                 "  --listen HOST:PORT     address to listen on (default 127.0.0.1:50051;\n"
                 "                         port 0 picks a free port)\n"
                 "  --h2c                  serve cleartext HTTP/2 instead of TLS\n"
                 "  --tls-cert FILE        certificate chain, PEM (default certs/server.pem)\n"
                 "  --tls-key FILE         private key, PEM (default certs/server.key)\n"
                 "  --max-streams N        max concurrent streams per connection (default 1000)\n"
                 "  --max-recv-msg BYTES   largest request message (default 4194304)\n"
                 "  --grace SECONDS        on SIGINT/SIGTERM, how long in-flight calls may run\n"
                 "                         (default 10)\n"
                 "  --prepost N            calls requested ahead per method (default 64)\n"
                 "  -h, --help             show this help\n\n"
                 "When ready, prints one line to stdout: listening on HOST:PORT (tls|h2c)\n");
}

bool ReadFile(const std::string &path, std::string *out)
{
    std::ifstream f(path, std::ios::binary);
    if (!f)
        return false;
    std::ostringstream ss;
    ss << f.rdbuf();
    *out = ss.str();
    return true;
}

bool ParseInt(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = std::strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int ParseArgs(int argc, char **argv, Options *o)
{
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto val = [&](const char **v) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "oms-bench-cpp: %s needs a value\n", a.c_str());
                return false;
            }
            *v = argv[++i];
            return true;
        };
        const char *v;
        long n;
        if (a == "-h" || a == "--help") {
            Usage(stdout);
            std::exit(0);
        } else if (a == "--h2c") {
            o->h2c = true;
        } else if (a == "--listen") {
            if (!val(&v))
                return 2;
            o->listen = v;
        } else if (a == "--tls-cert") {
            if (!val(&v))
                return 2;
            o->tls_cert = v;
        } else if (a == "--tls-key") {
            if (!val(&v))
                return 2;
            o->tls_key = v;
        } else if (a == "--max-streams" || a == "--max-recv-msg" || a == "--prepost") {
            if (!val(&v) || !ParseInt(v, 1, INT32_MAX, &n)) {
                std::fprintf(stderr, "oms-bench-cpp: bad %s\n", a.c_str());
                return 2;
            }
            (a == "--max-streams" ? o->max_streams
                                  : a == "--max-recv-msg" ? o->max_recv_msg : o->prepost) = (int)n;
        } else if (a == "--grace") {
            char *end;
            if (!val(&v) || (o->grace = std::strtod(v, &end), end == v || *end || o->grace < 0)) {
                std::fprintf(stderr, "oms-bench-cpp: bad --grace\n");
                return 2;
            }
        } else {
            std::fprintf(stderr, "oms-bench-cpp: unknown option %s (try --help)\n", a.c_str());
            return 2;
        }
    }
    return 0;
}

} // namespace

int main(int argc, char **argv)
{
    Options opt;
    if (int rc = ParseArgs(argc, argv, &opt))
        return rc;

    // The signals are taken by sigwait() in one thread; block them before any
    // gRPC thread exists so that every thread inherits the mask.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    signal(SIGPIPE, SIG_IGN);

    std::shared_ptr<grpc::ServerCredentials> creds;
    if (opt.h2c) {
        creds = grpc::InsecureServerCredentials();
    } else {
        grpc::SslServerCredentialsOptions::PemKeyCertPair kc;
        if (!ReadFile(opt.tls_key, &kc.private_key) || !ReadFile(opt.tls_cert, &kc.cert_chain)) {
            std::fprintf(stderr, "oms-bench-cpp: cannot read %s or %s\n", opt.tls_cert.c_str(),
                         opt.tls_key.c_str());
            return 1;
        }
        grpc::SslServerCredentialsOptions so;
        so.pem_key_cert_pairs.push_back(kc);
        creds = grpc::SslServerCredentials(so);
    }

    // HOST:PORT; the host is printed back as given
    size_t colon = opt.listen.rfind(':');
    if (colon == std::string::npos || colon == 0) {
        std::fprintf(stderr, "oms-bench-cpp: --listen wants HOST:PORT\n");
        return 2;
    }
    std::string host = opt.listen.substr(0, colon);

    Store store;
    pb::OrderBench::AsyncService service;
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(opt.listen, creds, &port);
    builder.RegisterService(&service);
    builder.SetMaxReceiveMessageSize(opt.max_recv_msg);
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, opt.max_streams);
    std::unique_ptr<ServerCompletionQueue> cq = builder.AddCompletionQueue();
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server || port == 0) {
        std::fprintf(stderr, "oms-bench-cpp: cannot listen on %s\n", opt.listen.c_str());
        return 1;
    }

    Env env;
    env.service = &service;
    env.cq = cq.get();
    env.store = &store;
    for (int i = 0; i < opt.prepost; i++) {
        new CreateCall(&env);
        new GetCall(&env);
        new WatchCall(&env);
        new TrackCall(&env);
    }

    std::printf("listening on %s:%d (%s)\n", host.c_str(), port, opt.h2c ? "h2c" : "tls");
    std::fflush(stdout);

    // Shutdown: stop accepting, let in-flight calls run for up to --grace
    // seconds (the CQ thread keeps serving them), then cancel the rest; the
    // completion queue is shut down after Server::Shutdown returns.
    std::thread stopper([&] {
        int sig;
        sigwait(&sigs, &sig);
        env.stopping.store(true);
        auto deadline = std::chrono::system_clock::now() +
                        std::chrono::milliseconds((int64_t)(opt.grace * 1000));
        server->Shutdown(deadline);
        cq->Shutdown();
    });

    // The one serving thread.
    void *tag;
    bool ok;
    while (cq->Next(&tag, &ok)) {
        Tag *t = static_cast<Tag *>(tag);
        t->call->Proceed(t->op, ok);
    }
    stopper.join();
    server.reset();
    return 0;
}
