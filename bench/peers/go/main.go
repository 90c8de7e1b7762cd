// oms-bench-go: the grpc-go reference peer of the oms benchmark contract.
//
// It serves oms.bench.v1.OrderBench with exactly the logic fixed in the header
// comment of proto/oms/bench/v1/bench.proto, plus
// grpc.testing.TestService.StreamingInputCall (sum of the payload sizes) for
// the client-streaming benchmark. Everything else is plain grpc-go defaults.
//
//	oms-bench-go --listen HOST:PORT (--h2c | --tls-cert FILE --tls-key FILE) [--grace SECONDS]
//
// Prints "listening on HOST:PORT (tls|h2c)" once serving; SIGTERM or SIGINT
// drains with GracefulStop (at most --grace seconds, then Stop) and exits 0.
// Built by build.sh from Debian packages only; see README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "omsbenchgo/benchpb"
	testpb "omsbenchgo/grpctesting"
)

// maxOrders: when the map holds this many orders it is cleared before the insert.
const maxOrders = 1000000

type benchServer struct {
	pb.UnimplementedOrderBenchServer

	mu     sync.Mutex
	next   uint64 // the last id number handed out; ids start at o-1
	orders map[string]*pb.Order
}

func newBenchServer() *benchServer {
	return &benchServer{orders: make(map[string]*pb.Order)}
}

// orderTotal is sum(quantity * unit_price_cents). The contract leaves
// overflow open; like omsd, a total that does not fit int64 is the client's
// error (INVALID_ARGUMENT), never a wrapped value.
func orderTotal(items []*pb.LineItem) (int64, bool) {
	var sum int64
	for _, it := range items {
		q, p := int64(it.GetQuantity()), it.GetUnitPriceCents() // q > 0 here
		if p > math.MaxInt64/q || p < math.MinInt64/q {
			return 0, false
		}
		line := q * p
		if (line > 0 && sum > math.MaxInt64-line) || (line < 0 && sum < math.MinInt64-line) {
			return 0, false
		}
		sum += line
	}
	return sum, true
}

func (s *benchServer) CreateOrder(_ context.Context, req *pb.CreateOrderRequest) (*pb.Order, error) {
	if req.GetCustomerId() == "" {
		return nil, status.Error(codes.InvalidArgument, "customer_id must not be empty")
	}
	for _, it := range req.GetItems() {
		if it.GetQuantity() <= 0 {
			return nil, status.Error(codes.InvalidArgument, "item quantity must be > 0")
		}
	}
	total, ok := orderTotal(req.GetItems())
	if !ok {
		return nil, status.Error(codes.InvalidArgument, "total_cents overflows int64")
	}
	o := &pb.Order{
		CustomerId:      req.GetCustomerId(),
		Items:           req.GetItems(),
		TotalCents:      total,
		Status:          pb.OrderStatus_ORDER_STATUS_PENDING,
		CreatedAtUnixMs: time.Now().UnixMilli(),
	}
	s.mu.Lock()
	s.next++
	o.Id = "o-" + strconv.FormatUint(s.next, 10)
	if len(s.orders) >= maxOrders {
		s.orders = make(map[string]*pb.Order)
	}
	s.orders[o.Id] = o
	s.mu.Unlock()
	// The stored order is never modified again, so it can be returned (and
	// marshalled concurrently by GetOrder) as is.
	return o, nil
}

func (s *benchServer) GetOrder(_ context.Context, req *pb.GetOrderRequest) (*pb.Order, error) {
	s.mu.Lock()
	o := s.orders[req.GetId()]
	s.mu.Unlock()
	if o == nil {
		return nil, status.Error(codes.NotFound, "order not found")
	}
	return o, nil
}

func (s *benchServer) WatchOrders(req *pb.WatchRequest, stream pb.OrderBench_WatchOrdersServer) error {
	n := req.GetCount()
	if n < 0 {
		return status.Error(codes.InvalidArgument, "count must be >= 0")
	}
	for k := int64(1); k <= int64(n); k++ {
		ev := &pb.OrderEvent{
			OrderId: "watch",
			Status:  pb.OrderStatus(1 + (k-1)%5),
			Seq:     k,
		}
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	return nil
}

func (s *benchServer) Track(stream pb.OrderBench_TrackServer) error {
	var seq int64
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		st := pb.OrderStatus_ORDER_STATUS_UNSPECIFIED
		s.mu.Lock()
		if o := s.orders[req.GetOrderId()]; o != nil {
			st = o.Status
		}
		s.mu.Unlock()
		seq++
		if err := stream.Send(&pb.OrderEvent{OrderId: req.GetOrderId(), Status: st, Seq: seq}); err != nil {
			return err
		}
	}
}

// testServer: grpc.testing.TestService, StreamingInputCall only (the rest is
// UNIMPLEMENTED).
type testServer struct {
	testpb.UnimplementedTestServiceServer
}

func (testServer) StreamingInputCall(stream testpb.TestService_StreamingInputCallServer) error {
	var sum int64
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			if sum > math.MaxInt32 {
				return status.Error(codes.OutOfRange, "aggregated payload size overflows int32")
			}
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(sum)})
		}
		if err != nil {
			return err
		}
		sum += int64(len(req.GetPayload().GetBody()))
	}
}

func main() {
	fs := flag.NewFlagSet("oms-bench-go", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:50051", "HOST:PORT to listen on (port 0: a free port)")
	h2c := fs.Bool("h2c", false, "plaintext HTTP/2 (h2c) instead of TLS")
	certFile := fs.String("tls-cert", "", "server certificate chain (PEM) for TLS")
	keyFile := fs.String("tls-key", "", "server private key (PEM) for TLS")
	grace := fs.Float64("grace", 5, "seconds in-flight calls get to finish after SIGTERM")
	fs.Parse(os.Args[1:])
	if fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "oms-bench-go: unexpected argument %q\n", fs.Arg(0))
		os.Exit(2)
	}

	var opts []grpc.ServerOption
	mode := "h2c"
	if !*h2c {
		if *certFile == "" || *keyFile == "" {
			fmt.Fprintln(os.Stderr, "oms-bench-go: TLS needs --tls-cert and --tls-key (or pass --h2c)")
			os.Exit(2)
		}
		creds, err := credentials.NewServerTLSFromFile(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "oms-bench-go: %v\n", err)
			os.Exit(1)
		}
		opts = append(opts, grpc.Creds(creds))
		mode = "tls"
	}

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "oms-bench-go: listen %s: %v\n", *listen, err)
		os.Exit(1)
	}
	srv := grpc.NewServer(opts...)
	pb.RegisterOrderBenchServer(srv, newBenchServer())
	testpb.RegisterTestServiceServer(srv, testServer{})

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	stopped := make(chan struct{})
	go func() {
		<-sigs
		done := make(chan struct{})
		go func() { srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Duration(*grace * float64(time.Second))):
			srv.Stop()
			<-done
		}
		close(stopped)
	}()

	fmt.Printf("listening on %s (%s)\n", lis.Addr().String(), mode)
	if err := srv.Serve(lis); err != nil && err != grpc.ErrServerStopped {
		fmt.Fprintf(os.Stderr, "oms-bench-go: serve: %v\n", err)
		os.Exit(1)
	}
	<-stopped
	os.Exit(0)
}
