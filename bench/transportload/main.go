// Command transportload measures the broker transport from outside: it
// re-executes itself as a child process that runs the server (or a bare
// Go TLS echo server for the baseline), drives it over loopback, and
// reads the child's CPU time and RSS from /proc. Figures are server CPU
// per operation and server RSS per idle connection; see docs/TRANSPORT.md.
//
//	go run ./bench/transportload -mode steady -proto tls,https,echo -conns 1000
//	go run ./bench/transportload -mode handshake -proto tls,echo
//	go run ./bench/transportload -mode idle -proto tls -conns 18000
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"jumpfleet/engine"
	"jumpfleet/identity"
	"jumpfleet/packages"
	"jumpfleet/store"
	"jumpfleet/transport/client"
	"jumpfleet/transport/server"
	"jumpfleet/transport/wire"
)

var (
	mode     = flag.String("mode", "steady", "steady | handshake | idle")
	protos   = flag.String("proto", "tls,https,echo", "comma list: tls, quic, https, echo (bare Go TLS)")
	conns    = flag.Int("conns", 1000, "connections (steady, idle)")
	conc     = flag.Int("concurrency", 16, "parallel dialers (handshake)")
	duration = flag.Duration("duration", 5*time.Second, "measurement window")
	warmup   = flag.Duration("warmup", 2*time.Second, "warm-up before measuring")
	child    = flag.String("child", "", "internal: run as the server child (broker | echo)")
	clients  = flag.Int("clients", 1000, "internal: credentials the child pre-enrolls")
	rounds   = flag.Int("rounds", 1, "steady, handshake: measure the protocol list this many times, interleaved, and print medians and their ratios")
	rateFlag = flag.Int("rate", 0, "handshake mode: offered new connections per second (0: as fast as the dialers go). Compare protocols at the same offered rate: a Go server's CPU per operation depends on how busy it is (idle spinning, wake-ups)")
	pipeline = flag.Bool("pipeline", true, "handshake mode: the client pipelines Hello, Auth and the first CheckIn in one write (client.DialAuth)")
	quicLoad = flag.Int("quic-procs", 1, "idle quic: load processes (each shares one quic.Transport / UDP socket over its connections)")
	loadOf   = flag.String("load-child", "", "internal: run as a quic load child against this ready JSON")
	noPoller = flag.Bool("no-poller", false, "server: keep a goroutine per idle TLS session (server.Config.NoPoller), for comparison")
	classic  = flag.Bool("classic-kex", false, "clients offer only X25519 (no ML-KEM hybrid share): smaller ClientHello, smaller retained TLS buffers")
)

func main() {
	flag.Parse()
	var err error
	if *child != "" {
		err = runChild()
	} else if *loadOf != "" {
		err = runLoadChild()
	} else {
		err = runParent()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "transportload:", err)
		os.Exit(1)
	}
}

// ready is what the child prints once it serves.
type ready struct {
	Addr  string      `json:"addr"`
	Pin   string      `json:"pin"`
	Creds [][2]string `json:"creds"`
}

func runChild() error {
	raiseLimit()
	if path := os.Getenv("TRANSPORTLOAD_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	dir, err := os.MkdirTemp("", "transportload-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cert, err := server.GenerateCert("127.0.0.1")
	if err != nil {
		return err
	}
	pin := sha256.Sum256(cert.Certificate[0])
	out := ready{Pin: hex.EncodeToString(pin[:])}
	// SIGUSR1: collect garbage and return memory, so RSS readings compare.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		for range sig {
			for range 4 { // each GC halves an oversized stack at most once
				runtime.GC()
			}
			debug.FreeOSMemory()
			if path := os.Getenv("TRANSPORTLOAD_HEAPPROFILE"); path != "" {
				if f, err := os.Create(path); err == nil {
					_ = pprof.WriteHeapProfile(f)
					_ = f.Close()
				}
				if f, err := os.Create(path + ".goroutines"); err == nil {
					_ = pprof.Lookup("goroutine").WriteTo(f, 1)
					_ = f.Close()
				}
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Fprintf(os.Stderr, "child: heap_inuse=%dKB stack_inuse=%dKB goroutines=%d\n", ms.HeapInuse>>10, ms.StackInuse>>10, runtime.NumGoroutine())
			fmt.Println("gc")
		}
	}()
	var stop func()
	switch *child {
	case "echo":
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
		if err != nil {
			return err
		}
		out.Addr = ln.Addr().String()
		go echoServe(ln)
		stop = func() { _ = ln.Close() }
	case "broker":
		db, err := store.Open(filepath.Join(dir, "db"), store.Options{})
		if err != nil {
			return err
		}
		st := engine.DefaultSettings()
		var srvp atomic.Pointer[server.Server]
		node, err := engine.Open(engine.NodeConfig{DB: db, Engine: engine.Config{Settings: st},
			OnCommit: func(turn uint64, o *engine.Output) {
				if s := srvp.Load(); s != nil {
					s.OnCommit(turn, o)
				}
			}})
		if err != nil {
			return err
		}
		pkgs, err := packages.OpenStore(filepath.Join(dir, "pkgs"))
		if err != nil {
			return err
		}
		priv, err := packages.LoadOrCreateKey(filepath.Join(dir, "key"))
		if err != nil {
			return err
		}
		ids := identity.New(db)
		srv, err := server.New(server.Config{Listen: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
			AcceptRate: 100_000, AcceptBurst: 20_000, MaxHandshakes: 1024, NoPoller: *noPoller}, node, ids, pkgs, priv.Public().(ed25519.PublicKey))
		if err != nil {
			return err
		}
		srvp.Store(srv)
		if err := srv.Start(); err != nil {
			return err
		}
		tcp, _ := srv.Addrs()
		out.Addr = tcp.String()
		tok, _, err := ids.CreateInstaller(time.Now(), "", engine.KindActive)
		if err != nil {
			return err
		}
		// Pre-enroll in parallel so the group commit shares fsyncs.
		out.Creds = make([][2]string, *clients)
		var wg sync.WaitGroup
		var next atomic.Int64
		var ferr atomic.Pointer[error]
		for range 64 {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= *clients {
						return
					}
					id, sec, err := ids.Enroll(time.Now(), tok, "")
					if err != nil {
						ferr.Store(&err)
						return
					}
					out.Creds[i] = [2]string{hex.EncodeToString(id[:]), hex.EncodeToString(sec[:])}
				}
			})
		}
		wg.Wait()
		if e := ferr.Load(); e != nil {
			return *e
		}
		stop = func() {
			_ = srv.Close()
			_ = node.Close()
			_ = db.Close()
		}
	default:
		return fmt.Errorf("unknown child %q", *child)
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	// Serve until the parent closes our stdin.
	_, _ = io.Copy(io.Discard, os.Stdin)
	stop()
	return nil
}

// Frame sizes of a check-in and its answer, so the echo baseline moves
// the same bytes as the real protocol.
var (
	reqLen = wire.HeaderLen + 13
	ansLen = wire.HeaderLen + 20
)

func echoServe(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var in [64]byte
			out := make([]byte, ansLen)
			for {
				if _, err := io.ReadFull(c, in[:reqLen]); err != nil {
					return
				}
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		}()
	}
}

type childProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	r     ready
}

func spawn(kind string, n int) (*childProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-child", kind, "-clients", strconv.Itoa(n), "-no-poller="+strconv.FormatBool(*noPoller))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &childProc{cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 1<<20)}
	line, err := p.out.ReadString('\n')
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("child: %w", err)
	}
	if err := json.Unmarshal([]byte(line), &p.r); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (p *childProc) stop() {
	_ = p.stdin.Close()
	_ = p.cmd.Wait()
}

// cpuSplit returns the child's user and system CPU time.
func (p *childProc) cpuSplit() (user, sys time.Duration) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut) * time.Second / 100, time.Duration(st) * time.Second / 100 // USER_HZ
}

// split formats the user/system share of a CPU delta per operation.
func split(u0, s0, u1, s1 time.Duration, n int64) string {
	return fmt.Sprintf("user_us=%.1f sys_us=%.1f", float64((u1-u0).Microseconds())/float64(n), float64((s1-s0).Microseconds())/float64(n))
}

// rss returns the child's resident set after a GC.
func (p *childProc) rss() int64 {
	_ = p.cmd.Process.Signal(syscall.SIGUSR1)
	_, _ = p.out.ReadString('\n')
	time.Sleep(500 * time.Millisecond)
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (p *childProc) creds() []client.Credentials {
	out := make([]client.Credentials, len(p.r.Creds))
	for i, c := range p.r.Creds {
		_, _ = hex.Decode(out[i].ID[:], []byte(c[0]))
		_, _ = hex.Decode(out[i].Secret[:], []byte(c[1]))
	}
	return out
}

func (p *childProc) cfg(proto string) client.Config {
	pin, _ := hex.DecodeString(p.r.Pin)
	cfg := client.Config{Addr: p.r.Addr, Protocol: proto, PinSHA256: pin, Role: wire.KindActive, DialTimeout: 30 * time.Second}
	if *classic {
		cfg.TLS = &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}}
	}
	return cfg
}

func raiseLimit() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

func runParent() error {
	raiseLimit()
	fmt.Printf("# transportload mode=%s conns=%d rounds=%d go=%s cpus=%d\n", *mode, *conns, *rounds, runtime.Version(), runtime.NumCPU())
	for range *rounds {
		if err := runRound(); err != nil {
			return err
		}
	}
	summarize()
	return nil
}

// runRound measures every protocol once, in turn. Several rounds
// interleave the protocols, so a change in the machine's load (it is
// shared) hits both sides of a ratio alike; the summary takes medians.
func runRound() error {
	for _, proto := range strings.Split(*protos, ",") {
		var err error
		switch *mode {
		case "steady":
			err = steady(proto)
		case "handshake":
			err = handshake(proto)
		case "idle":
			err = idle(proto)
		default:
			err = fmt.Errorf("unknown mode %q", *mode)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", *mode, proto, err)
		}
	}
	return nil
}

// perOp holds each protocol's server CPU per operation, one per round.
var perOp = map[string][]float64{}

func record(proto string, us float64) { perOp[proto] = append(perOp[proto], us) }

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// summarize prints medians over the rounds and the ratios the issue asks
// for: HTTPS÷TLS (steady) and TLS÷echo (handshake).
func summarize() {
	if *rounds < 2 {
		return
	}
	for _, proto := range strings.Split(*protos, ",") {
		if v := perOp[proto]; len(v) > 0 {
			fmt.Printf("median mode=%s proto=%-5s server_cpu_per_op_us=%.2f rounds=%v\n", *mode, proto, median(v), v)
		}
	}
	ratio := func(a, b string) {
		if len(perOp[a]) > 0 && len(perOp[b]) > 0 {
			var per []string
			for i := range min(len(perOp[a]), len(perOp[b])) {
				per = append(per, fmt.Sprintf("%.3f", perOp[a][i]/perOp[b][i]))
			}
			fmt.Printf("ratio %s/%s median=%.3f per_round=%v\n", a, b, median(perOp[a])/median(perOp[b]), per)
		}
	}
	switch *mode {
	case "steady":
		ratio("https", "tls")
	case "handshake":
		ratio("tls", "echo")
	}
}

func childKind(proto string) string {
	if proto == "echo" {
		return "echo"
	}
	return "broker"
}

var v1 = wire.Version{Major: 1, Minor: 0, Patch: 0, Revision: 1}
var ci = wire.CheckIn{Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: v1}

// worker is one connection's request loop: op runs one request.
type worker struct {
	op    func() error
	close func()
}

func openWorker(p *childProc, proto string, cred client.Credentials) (*worker, error) {
	ctx := context.Background()
	switch proto {
	case "tls", "quic":
		c, err := client.Dial(ctx, p.cfg(proto))
		if err != nil {
			return nil, err
		}
		if err := c.Auth(ctx, cred); err != nil {
			_ = c.Close()
			return nil, err
		}
		return &worker{op: func() error { _, err := c.CheckIn(ctx, ci); return err }, close: func() { _ = c.Close() }}, nil
	case "https":
		h, err := client.DialHTTP(ctx, p.cfg("tls"))
		if err != nil {
			return nil, err
		}
		return &worker{op: func() error { _, err := h.CheckIn(ctx, cred, ci); return err }, close: func() { _ = h.Close() }}, nil
	case "echo":
		pin, _ := hex.DecodeString(p.r.Pin)
		_ = pin
		tc := &tls.Config{InsecureSkipVerify: true}
		if *classic {
			tc.CurvePreferences = []tls.CurveID{tls.X25519}
		}
		c, err := tls.Dial("tcp", p.r.Addr, tc)
		if err != nil {
			return nil, err
		}
		req := make([]byte, reqLen)
		ans := make([]byte, ansLen)
		return &worker{op: func() error {
			if _, err := c.Write(req); err != nil {
				return err
			}
			_, err := io.ReadFull(c, ans)
			return err
		}, close: func() { _ = c.Close() }}, nil
	}
	return nil, fmt.Errorf("unknown proto %q", proto)
}

func openAll(p *childProc, proto string, n int) ([]*worker, error) {
	creds := p.creds()
	ws := make([]*worker, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				var cred client.Credentials
				if len(creds) > 0 {
					cred = creds[i%len(creds)]
				}
				w, err := openWorker(p, proto, cred)
				if err != nil {
					firstErr.Store(&err)
					return
				}
				ws[i] = w
			}
		})
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		for _, w := range ws {
			if w != nil {
				w.close()
			}
		}
		return nil, *e
	}
	return ws, nil
}

func steady(proto string) error {
	p, err := spawn(childKind(proto), *conns)
	if err != nil {
		return err
	}
	defer p.stop()
	ws, err := openAll(p, proto, *conns)
	if err != nil {
		return err
	}
	defer func() {
		for _, w := range ws {
			w.close()
		}
	}()
	var ops, errs atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			for !stop.Load() {
				if err := w.op(); err != nil {
					errs.Add(1)
					return
				}
				ops.Add(1)
			}
		})
	}
	time.Sleep(*warmup)
	u0, s0 := p.cpuSplit()
	c0, n0, t0 := u0+s0, ops.Load(), time.Now()
	time.Sleep(*duration)
	u1, s1 := p.cpuSplit()
	c1, n1, t1 := u1+s1, ops.Load(), time.Now()
	stop.Store(true)
	wg.Wait()
	n := n1 - n0
	if n == 0 {
		return errors.New("no operations completed")
	}
	perOp := float64((c1 - c0).Microseconds()) / float64(n)
	record(proto, perOp)
	fmt.Printf("steady proto=%-5s conns=%d ops/s=%.0f server_cpu_per_op_us=%.2f server_cores=%.2f %s errors=%d\n",
		proto, *conns, float64(n)/t1.Sub(t0).Seconds(), perOp,
		(c1-c0).Seconds()/t1.Sub(t0).Seconds(), split(u0, s0, u1, s1, n), errs.Load())
	return nil
}

// handshake measures a new connection with its first check-in (or, for
// echo, a bare TLS handshake and one echo). No session resumption.
func handshake(proto string) error {
	p, err := spawn(childKind(proto), 1000)
	if err != nil {
		return err
	}
	defer p.stop()
	var ops, errs atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	creds := p.creds()
	var tokens chan struct{}
	if *rateFlag > 0 {
		tokens = make(chan struct{}, *conc)
		wg.Go(func() { pace(tokens, *rateFlag, &stop) })
	}
	for g := range *conc {
		wg.Go(func() {
			i := g
			for !stop.Load() {
				if tokens != nil {
					if _, ok := <-tokens; !ok {
						return
					}
				}
				var cred client.Credentials
				if len(creds) > 0 {
					cred = creds[i%len(creds)]
				}
				i += *conc
				var err error
				if *pipeline && (proto == "tls" || proto == "quic") {
					var c *client.Conn
					c, _, err = client.DialAuth(context.Background(), p.cfg(proto), cred, &ci)
					if err == nil {
						_ = c.Close()
					}
				} else {
					var w *worker
					w, err = openWorker(p, proto, cred)
					if err == nil {
						err = w.op()
						w.close()
					}
				}
				if err != nil {
					errs.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ops.Add(1)
			}
		})
	}
	time.Sleep(*warmup)
	u0, s0 := p.cpuSplit()
	c0, n0, t0 := u0+s0, ops.Load(), time.Now()
	time.Sleep(*duration)
	u1, s1 := p.cpuSplit()
	c1, n1, t1 := u1+s1, ops.Load(), time.Now()
	stop.Store(true)
	wg.Wait()
	n := n1 - n0
	if n == 0 {
		return errors.New("no connections completed")
	}
	perConn := float64((c1 - c0).Microseconds()) / float64(n)
	record(proto, perConn)
	fmt.Printf("handshake proto=%-5s pipeline=%v rate=%d conns/s=%.0f server_cpu_per_conn_us=%.1f server_cores=%.2f %s errors=%d\n",
		proto, *pipeline, *rateFlag, float64(n)/t1.Sub(t0).Seconds(), perConn,
		(c1-c0).Seconds()/t1.Sub(t0).Seconds(), split(u0, s0, u1, s1, n), errs.Load())
	return nil
}

// pace feeds rate tokens per second until stop, then closes tokens.
func pace(tokens chan struct{}, rate int, stop *atomic.Bool) {
	defer close(tokens)
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	start, sent := time.Now(), 0
	for !stop.Load() {
		<-t.C
		due := int(time.Since(start).Seconds() * float64(rate))
		for ; sent < due && !stop.Load(); sent++ {
			select {
			case tokens <- struct{}{}:
			default:
				sent = due // the dialers are behind: drop, do not build a backlog
			}
		}
	}
}

// loadSpec is what a QUIC load child is told.
type loadSpec struct {
	Ready ready `json:"ready"`
	Lo    int   `json:"lo"`
	Hi    int   `json:"hi"`
}

// runLoadChild opens connections [lo,hi) over one shared quic.Transport
// (one UDP socket), checks each in once, prints "ok", and holds them
// until stdin closes.
func runLoadChild() error {
	raiseLimit()
	b, err := os.ReadFile(*loadOf)
	if err != nil {
		return err
	}
	var spec loadSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return err
	}
	p := &childProc{r: spec.Ready}
	creds := p.creds()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	_ = udp.SetReadBuffer(8 << 20)
	_ = udp.SetWriteBuffer(8 << 20)
	tr := &quic.Transport{Conn: udp}
	defer tr.Close()
	cfg := p.cfg("quic")
	cfg.QUICTransport = tr
	cfg.QUIC = &quic.Config{KeepAlivePeriod: 20 * time.Second, MaxIdleTimeout: 5 * time.Minute,
		InitialStreamReceiveWindow: 64 << 10, InitialConnectionReceiveWindow: 96 << 10}
	cs := make([]*client.Conn, spec.Hi-spec.Lo)
	var wg sync.WaitGroup
	var next atomic.Int64
	var failed atomic.Int64
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(cs) {
					return
				}
				var c *client.Conn
				var err error
				for try := 0; try < 5; try++ {
					if c, _, err = client.DialAuth(context.Background(), cfg, creds[spec.Lo+i], &ci); err == nil {
						break
					}
					time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
				}
				if err != nil {
					if failed.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "load child:", err)
					}
					continue
				}
				c.StartHeartbeats() // the session's idle timeout is 3 × heartbeat
				cs[i] = c
			}
		})
	}
	wg.Wait()
	fmt.Printf("ok %d %d\n", len(cs)-int(failed.Load()), failed.Load())
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range cs {
		if c != nil {
			_ = c.Close()
		}
	}
	return nil
}

// idleQUICProcs holds conns QUIC connections from *quicLoad load
// processes, each sharing one quic.Transport, and returns the number up.
func idleQUICProcs(p *childProc) (int, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, nil, err
	}
	var stops []func()
	stopAll := func() {
		for _, s := range stops {
			s()
		}
	}
	up := 0
	per := (*conns + *quicLoad - 1) / *quicLoad
	for k := 0; k < *quicLoad; k++ {
		lo, hi := k*per, min((k+1)*per, *conns)
		if lo >= hi {
			break
		}
		b, _ := json.Marshal(loadSpec{Ready: p.r, Lo: lo, Hi: hi})
		path := filepath.Join(os.TempDir(), fmt.Sprintf("transportload-spec-%d-%d.json", os.Getpid(), k))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			stopAll()
			return 0, nil, err
		}
		cmd := exec.Command(exe, "-load-child", path)
		cmd.Stderr = os.Stderr
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			stopAll()
			return 0, nil, err
		}
		stops = append(stops, func() { _ = stdin.Close(); _ = cmd.Wait(); _ = os.Remove(path) })
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			stopAll()
			return 0, nil, fmt.Errorf("load child: %w", err)
		}
		var ok, bad int
		_, _ = fmt.Sscanf(line, "ok %d %d", &ok, &bad)
		up += ok
		fmt.Printf("# load process %d: %d connections up, %d failed\n", k, ok, bad)
	}
	return up, stopAll, nil
}

// idle opens conns connections, each checks in once, then measures the
// server's RSS growth per connection.
func idle(proto string) error {
	p, err := spawn(childKind(proto), *conns)
	if err != nil {
		return err
	}
	defer p.stop()
	base := p.rss()
	if proto == "quic" {
		u0, s0 := p.cpuSplit()
		up, stop, err := idleQUICProcs(p)
		if err != nil {
			return err
		}
		defer stop()
		u1, s1 := p.cpuSplit()
		time.Sleep(*duration)
		after := p.rss()
		fmt.Printf("idle proto=quic  conns=%d up=%d load_procs=%d server_rss_base_mb=%.1f server_rss_mb=%.1f bytes_per_conn=%.0f connect_cpu_per_conn_us=%.0f\n",
			*conns, up, *quicLoad, float64(base)/(1<<20), float64(after)/(1<<20), float64(after-base)/float64(max(up, 1)),
			float64((u1+s1-u0-s0).Microseconds())/float64(max(up, 1)))
		return nil
	}
	ws, err := openAll(p, proto, *conns)
	if err != nil {
		return err
	}
	defer func() {
		for _, w := range ws {
			w.close()
		}
	}()
	for _, w := range ws {
		if err := w.op(); err != nil {
			return err
		}
	}
	time.Sleep(*duration)
	after := p.rss()
	fmt.Printf("idle proto=%-5s conns=%d server_rss_base_mb=%.1f server_rss_mb=%.1f bytes_per_conn=%.0f\n",
		proto, *conns, float64(base)/(1<<20), float64(after)/(1<<20), float64(after-base)/float64(*conns))
	return nil
}
