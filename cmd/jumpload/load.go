package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"crypto/ed25519"

	"jumpfleet/adminapi"
	"jumpfleet/engine"
	"jumpfleet/loadtest"
	"jumpfleet/packages"
)

// The fleet scenarios of loadtest, each a subcommand with the same flags.
func init() {
	scenarios["agents"] = runAgents
	for _, name := range []string{loadtest.ScenarioRollout, loadtest.ScenarioStorm, loadtest.ScenarioJump, loadtest.ScenarioSteady} {
		scenarios[name] = func(args []string) error { return runLoad(name, args, os.Stdout, os.Stderr) }
	}
}

// loadFlags are the command line of a fleet scenario.
type loadFlags struct {
	cfg         loadtest.Config
	broker      string
	admin       string
	adminToken  string
	pin         string
	data        string
	releaseKey  string
	spawn       bool
	jumpbroker  string
	brokerArgs  multiFlag
	brokerLog   string
	graceful    bool
	procs       int
	sourceAddrs int
	quicSockets int
	resume      bool
	jsonOut     bool
	quiet       bool
	from, to    string
	platform    string
	dialTimeout time.Duration
	// QUIC client timers (0: the library's defaults), see NetDialer.
	quicKeepAlive, quicIdle, addedRTT time.Duration
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func parseLoad(name string, args []string, stderr io.Writer) (*loadFlags, error) {
	f := &loadFlags{}
	c := &f.cfg
	c.Scenario = name
	fs := flag.NewFlagSet("jumpload "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.broker, "broker", "", "client listener of a running broker, HOST:PORT")
	fs.StringVar(&c.Protocol, "protocol", "tls", "tls, quic, https (steady only) or inproc (the engine in this process, no network)")
	fs.StringVar(&f.admin, "admin", "", "admin API URL of a running broker (default: from --data DIR/jumpctl.json)")
	fs.StringVar(&f.adminToken, "admin-token", "", "admin API bearer token")
	fs.StringVar(&f.pin, "pin", "", "SHA-256 of the broker's certificate (hex; default from jumpctl.json)")
	fs.StringVar(&f.data, "data", "", "a running broker's data directory: jumpctl.json and release.key are read from it")
	fs.StringVar(&f.releaseKey, "release-key", "", "release-signing key (default DATA/release.key)")
	fs.BoolVar(&f.spawn, "spawn", false, "start a jumpbroker child on a temporary data directory and loopback ports")
	fs.StringVar(&f.jumpbroker, "jumpbroker", "", "jumpbroker binary for --spawn (default: build ./cmd/jumpbroker)")
	fs.Var(&f.brokerArgs, "broker-arg", "extra `jumpbroker serve` flag for --spawn (repeatable), e.g. --broker-arg=--accept-rate=20000")
	fs.BoolVar(&f.graceful, "graceful-restart", false, "storm with --spawn: restart the broker with SIGTERM (it says Bye with a retry-after) instead of SIGKILL (a crash)")
	fs.IntVar(&f.procs, "procs", 0, "load-generator processes (0: one per 9,000 connections; a process has 20,000 descriptors); each runs on cores ÷ processes Ps unless GOMAXPROCS is set, at a GOGC of its own from 75 to 125 unless GOGC or JUMPLOAD_AGENT_MEMLIMIT is set (so that they do not collect in lockstep), and at nice 10 for QUIC (JUMPLOAD_NICE overrides)")
	fs.IntVar(&f.sourceAddrs, "source-addrs", -1, "TLS connections leave round-robin from that many 127.1.0.x sources (-1: 32 towards a loopback broker, else 0; 0: the kernel's choice)")
	fs.IntVar(&f.quicSockets, "quic-sockets", 64, "UDP sockets per load process carrying its QUIC connections")
	fs.BoolVar(&f.resume, "resume", false, "agents resume TLS sessions (one ticket cache per load process), as real agents keep their ticket across an upgrade's restart")
	fs.DurationVar(&f.quicKeepAlive, "quic-keepalive", 0, "QUIC clients' keep-alive (0: 15s): after a broker crash, when its clients hear of it (the restarted broker answers the PING with a stateless reset)")
	fs.DurationVar(&f.quicIdle, "quic-idle-timeout", 0, "QUIC clients' idle timeout (0: 30s): when a client whose stateless reset was lost gives up on a crashed broker")
	fs.DurationVar(&f.addedRTT, "rtt", 0, "round-trip time added to QUIC agents' traffic (each load process holds its datagrams back that long): loopback has none, and a sub-millisecond RTT makes QUIC's loss recovery take any scheduling delay for a loss")
	fs.StringVar(&f.brokerLog, "broker-log", "", "file for the spawned broker's output (default: discarded)")
	fs.IntVar(&c.Active, "active", 0, "active Jump clients (persistent connections)")
	fs.IntVar(&c.Passive, "passive", 0, "passive Jump clients (check in on a schedule)")
	fs.IntVar(&c.Jumpoints, "jumpoints", 0, "Jumpoints (persistent connections)")
	fs.IntVar(&c.Consoles, "consoles", 0, "access consoles issuing jumps (jump scenario)")
	fs.IntVar(&c.MaxConcurrent, "max-concurrent", 100, "the broker's max_concurrent for the run")
	fs.Float64Var(&c.StartsPerSec, "start-rate", 0, "the broker's starts_per_sec for the run, its burst one second of it (0: unthrottled; 2·max-concurrent/upgrade-time paces a release's first wave over half an upgrade time)")
	fs.DurationVar(&c.UpgradeTime, "upgrade-time", 2*time.Second, "mean time an agent takes to install a package")
	fs.Float64Var(&c.UpgradeJitter, "upgrade-jitter", 0, "each install takes upgrade-time·(1±jitter), uniformly")
	fs.Float64Var(&c.FailRate, "fail-rate", 0, "probability that an install fails (the broker retries with backoff)")
	fs.IntVar(&c.PackageSize, "package-size", 64<<10, "bytes of the published package (every agent downloads and verifies it)")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "measuring time of steady and jump")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Minute, "how long rollout and storm may take to converge")
	fs.DurationVar(&c.Interval, "interval", 100*time.Millisecond, "steady: pause between one client's check-ins")
	fs.DurationVar(&c.PassivePeriod, "passive-period", 0, "passive clients' periodic check-in (default 24h / time-scale)")
	timeScale := fs.Float64("time-scale", 1440, "divides the passive clients' 24-hour period (1440: one minute)")
	fs.Float64Var(&c.ExtraCheckIns, "extra-checkins", 0.5, "passive check-ins per period from console contacts and tray requests")
	fs.DurationVar(&c.PassiveLinger, "passive-linger", 2*time.Second, "how long a passive client answered upgrading waits for its offer (overdue: 8x, within half a period)")
	fs.StringVar(&c.TurnsFile, "turns", "", "rollout: write every client's first upgrade start (queued, answered, started) as JSON lines to this file")
	// The broker's own default: it asks clients for a heartbeat every 30 s
	// and closes a session silent for three of them, so a fleet without
	// heartbeats churns through reconnects once a run outlasts 90 s.
	fs.DurationVar(&c.HeartbeatEvery, "heartbeat", 30*time.Second,
		"persistent clients' heartbeat interval outside steady, as the broker's --heartbeat asks (0: none; the broker closes a client silent for 3 of its intervals)")
	fs.DurationVar(&c.JumpEvery, "jump-every", 200*time.Millisecond, "pause between one console's jumps")
	fs.IntVar(&c.ConnectConcurrency, "connect-concurrency", 256, "enrollments and dials in flight at most")
	fs.DurationVar(&c.ReconnectMax, "reconnect-max", 5*time.Second, "cap of an agent's reconnect backoff (exponential from 100ms, full jitter)")
	fs.DurationVar(&c.GiveUpAfter, "give-up", 5*time.Minute, "how long an agent keeps reconnecting before it gives up")
	fs.DurationVar(&f.dialTimeout, "dial-timeout", 20*time.Second, "connect + handshake + hello timeout")
	fs.StringVar(&f.platform, "platform", "windows-x64", "the fleet's platform")
	fs.StringVar(&f.from, "from", "24.2.0-r1", "the version the fleet runs before the release")
	fs.StringVar(&f.to, "to", "24.3.1-r7", "the version the release sets")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of every random choice (printed in the summary's notes)")
	fs.BoolVar(&f.jsonOut, "json", false, "print one JSON summary object on stdout")
	fs.BoolVar(&f.quiet, "quiet", false, "no live progress on stderr")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if c.Platform, err = engine.ParsePlatform(f.platform); err != nil {
		return nil, err
	}
	if c.FromVersion, err = engine.ParseVersion(f.from); err != nil {
		return nil, err
	}
	if c.ToVersion, err = engine.ParseVersion(f.to); err != nil {
		return nil, err
	}
	if c.PassivePeriod == 0 {
		if *timeScale <= 0 {
			return nil, fmt.Errorf("--time-scale must be positive")
		}
		c.PassivePeriod = time.Duration(float64(24*time.Hour) / *timeScale)
	}
	switch c.Protocol {
	case "tls", "quic", "inproc":
	case "https":
		if name != loadtest.ScenarioSteady {
			return nil, fmt.Errorf("--protocol https serves check-ins only: use it with steady")
		}
	default:
		return nil, fmt.Errorf("--protocol %q: want tls, quic, https or inproc", c.Protocol)
	}
	if f.addedRTT < 0 || (f.addedRTT > 0 && c.Protocol != "quic") {
		return nil, fmt.Errorf("--rtt %v: a positive delay, with --protocol quic only (it holds back QUIC datagrams)", f.addedRTT)
	}
	if c.Protocol != "inproc" && !f.spawn && f.broker == "" {
		return nil, fmt.Errorf("name a broker (--broker HOST:PORT with --data or --admin/--admin-token), or use --spawn")
	}
	if !f.quiet {
		c.Progress = stderr
	}
	return f, c.Validate()
}

// runLoad runs one scenario and prints its summary.
func runLoad(name string, args []string, stdout, stderr io.Writer) error {
	f, err := parseLoad(name, args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b, closeBroker, err := f.connect(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeBroker()
	if nd, ok := b.Dialer.(*loadtest.NetDialer); ok {
		defer nd.Close()
		nd.SourceAddrs = f.sourceAddrs
		if nd.SourceAddrs < 0 {
			nd.SourceAddrs = 0
			if host, _, err := net.SplitHostPort(nd.Addr); err == nil {
				if ip := net.ParseIP(host); ip != nil && ip.To4() != nil && ip.IsLoopback() {
					nd.SourceAddrs = 32
				}
			}
		}
		nd.QUICSockets = f.quicSockets
		nd.QUICKeepAlive, nd.QUICIdleTimeout = f.quicKeepAlive, f.quicIdle
		nd.AddedRTT = f.addedRTT
		nd.Resume = f.resume
		f.cfg.Procs = f.procs
		if f.cfg.Procs == 0 {
			// A TLS connection holds a descriptor (passive clients only
			// while checked in); QUIC connections share a process's
			// --quic-sockets, so there the process's CPU and memory set
			// the size.
			conns := f.cfg.Active + f.cfg.Jumpoints + f.cfg.Passive/20
			per := maxConnsPerProc
			if f.cfg.Protocol == "quic" {
				per = maxQUICConnsPerProc
			}
			f.cfg.Procs = (conns + per - 1) / per
		}
		if f.cfg.Procs > 1 {
			f.cfg.ConnectConcurrency = max(1, f.cfg.ConnectConcurrency/f.cfg.Procs)
			f.cfg.Child = childCommand(nd)
			fmt.Fprintf(stderr, "jumpload: %d load processes\n", f.cfg.Procs)
		}
	}
	sum, runErr := loadtest.Run(ctx, f.cfg, b)
	sum.Notes = append(sum.Notes, fmt.Sprintf("seed %d", f.cfg.Seed))
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		printSummary(stdout, sum)
	}
	return runErr
}

// connect builds the broker the run drives, and what closes it.
func (f *loadFlags) connect(ctx context.Context, stderr io.Writer) (loadtest.Broker, func(), error) {
	if f.cfg.Protocol == "inproc" {
		dir, err := os.MkdirTemp("", "jumpload-inproc-")
		if err != nil {
			return loadtest.Broker{}, nil, err
		}
		ip, err := loadtest.NewInProc(dir)
		if err != nil {
			os.RemoveAll(dir)
			return loadtest.Broker{}, nil, err
		}
		return loadtest.Broker{Dialer: ip, Control: ip, Restarter: ip}, func() { ip.Close(); os.RemoveAll(dir) }, nil
	}
	if f.spawn {
		sc := loadtest.SpawnConfig{Binary: f.jumpbroker, Args: f.brokerArgs, Graceful: f.graceful}
		var logf *os.File
		if f.brokerLog != "" {
			var err error
			if logf, err = os.Create(f.brokerLog); err != nil {
				return loadtest.Broker{}, nil, err
			}
			sc.Log = logf
		}
		if sc.Binary == "" {
			sc.Binary = siblingBroker()
		}
		fmt.Fprintln(stderr, "jumpload: starting jumpbroker")
		s, err := loadtest.Spawn(ctx, sc)
		if err != nil {
			if logf != nil {
				logf.Close()
			}
			return loadtest.Broker{}, nil, err
		}
		fmt.Fprintf(stderr, "jumpload: jumpbroker on %s, admin %s\n", s.Addr, s.Ctl.AdminURL)
		d := &loadtest.NetDialer{Addr: s.Addr, Protocol: f.cfg.Protocol, Pin: s.Pin(),
			ReleaseKey: s.Key.Public().(ed25519.PublicKey), DialTimeout: f.dialTimeout}
		closer := func() {
			s.Close()
			if logf != nil {
				logf.Close()
			}
		}
		return loadtest.Broker{Dialer: d, Control: loadtest.NewAdmin(s.Ctl, s.Key), Restarter: s}, closer, nil
	}
	ctl := adminapi.CtlFile{AdminURL: f.admin, Token: f.adminToken, CertSHA256: f.pin}
	keyPath := f.releaseKey
	if f.data != "" {
		file, err := adminapi.ReadCtlFile(filepath.Join(f.data, "jumpctl.json"))
		if err != nil {
			return loadtest.Broker{}, nil, err
		}
		if ctl.AdminURL == "" {
			ctl.AdminURL = file.AdminURL
		}
		if ctl.Token == "" {
			ctl.Token = file.Token
		}
		if ctl.CertSHA256 == "" {
			ctl.CertSHA256 = file.CertSHA256
		}
		if keyPath == "" {
			keyPath = filepath.Join(f.data, "release.key")
		}
	}
	if ctl.AdminURL == "" || ctl.Token == "" || keyPath == "" {
		return loadtest.Broker{}, nil, fmt.Errorf("a running broker needs --data DIR, or --admin, --admin-token and --release-key")
	}
	if _, err := os.Stat(keyPath); err != nil {
		return loadtest.Broker{}, nil, fmt.Errorf("release key: %w", err)
	}
	key, err := packages.LoadOrCreateKey(keyPath)
	if err != nil {
		return loadtest.Broker{}, nil, err
	}
	pin, err := hex.DecodeString(strings.ReplaceAll(ctl.CertSHA256, ":", ""))
	if err != nil {
		return loadtest.Broker{}, nil, fmt.Errorf("--pin: %w", err)
	}
	d := &loadtest.NetDialer{Addr: f.broker, Protocol: f.cfg.Protocol, Pin: pin,
		ReleaseKey: key.Public().(ed25519.PublicKey), DialTimeout: f.dialTimeout}
	// A broker jumpload did not start cannot be restarted by it (storm).
	return loadtest.Broker{Dialer: d, Control: loadtest.NewAdmin(ctl, key)}, func() {}, nil
}

// siblingBroker is bin/jumpbroker next to this binary (make build puts
// both there), or "" to build one.
func siblingBroker() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), "jumpbroker")
	if st, err := os.Stat(p); err == nil && !st.IsDir() && !strings.Contains(exe, "go-build") {
		return p
	}
	return ""
}

// printSummary is the human form of the summary.
func printSummary(w io.Writer, s loadtest.Summary) {
	f := func(p *float64, unit string) string {
		if p == nil {
			return "n/a"
		}
		return fmt.Sprintf("%.3g%s", *p, unit)
	}
	fmt.Fprintf(w, "%s over %s: %d clients (%d active, %d passive, %d jumpoints), %d consoles\n",
		s.Scenario, s.Protocol, s.Clients, s.Active, s.Passive, s.Jumpoints, s.Consoles)
	fmt.Fprintf(w, "  check-ins    %d in %.1fs (%.0f/s); latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms\n",
		s.Checkins, s.DurationS, s.CheckinsPerS, s.LatencyP50ms, s.LatencyP99ms, s.LatencyP999ms)
	fmt.Fprintf(w, "  handshakes   %d (%.0f/s)\n", s.Handshakes, s.HandshakesPerS)
	fmt.Fprintf(w, "  upgrades     %d upgraded, %d failed attempts; makespan %s vs bound %s (ratio %s)\n",
		s.Upgraded, s.Failed, f(s.MakespanS, "s"), f(s.BoundS, "s"), f(s.MakespanRatio, ""))
	if s.FloorS != nil {
		fmt.Fprintf(w, "               an ideal broker's floor for this rollout %s (ratio %s)\n", f(s.FloorS, "s"), f(s.FloorRatio, ""))
	}
	fmt.Fprintf(w, "  slots        max_concurrent %d, max in flight seen %d, violations %d\n", s.MaxConcurrent, s.MaxInFlight, s.Violations)
	if s.BrokerMaxInFlight != nil && s.BrokerOverLimitSamples != nil {
		fmt.Fprintf(w, "  broker       max in flight %d, samples over the limit %d\n", *s.BrokerMaxInFlight, *s.BrokerOverLimitSamples)
	}
	if s.SlotFetchMeanS != nil || s.SlotRestartMeanS != nil {
		fmt.Fprintf(w, "  slot phases  fetch mean %s p99 %s; restart mean %s p99 %s\n",
			f(s.SlotFetchMeanS, "s"), f(s.SlotFetchP99S, "s"), f(s.SlotRestartMeanS, "s"), f(s.SlotRestartP99S, "s"))
	}
	if s.PassiveLateMaxS != nil && s.PassiveLateBeyondPeriod != nil {
		fmt.Fprintf(w, "  passive      latest %s after its turn, %d later than one period (%s)\n",
			f(s.PassiveLateMaxS, "s"), *s.PassiveLateBeyondPeriod, f(s.PassivePeriodS, "s"))
	}
	fmt.Fprintf(w, "  jumps        %d; jump-to-start p50 %s, p99 %s (slot turnover %s)\n", s.Jumps,
		f(s.JumpToStartP50s, "s"), f(s.JumpToStartP99s, "s"), f(s.SlotTurnoverS, "s"))
	fmt.Fprintf(w, "  storm        reconnect %s, gave up %d\n", f(s.ReconnectS, "s"), s.GaveUp)
	fmt.Fprintf(w, "  server       CPU %s per check-in, RSS %s\n", f(s.ServerCPUusPerCheckin, " µs"), f(s.ServerRSSBytes, " B"))
	fmt.Fprintf(w, "  errors       %v\n", s.Errors)
	for _, code := range slices.Sorted(maps.Keys(s.ErrorSamples)) {
		fmt.Fprintf(w, "    %s e.g. %s\n", code, s.ErrorSamples[code])
	}
	for _, n := range s.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// maxConnsPerProc keeps a load process well inside the 20,000 descriptors
// it may open.
const maxConnsPerProc = 9000

// maxQUICConnsPerProc is the default share of one load process of a QUIC
// fleet (connections share UDP sockets, so descriptors do not bind).
const maxQUICConnsPerProc = 25000

// childCommand runs `jumpload agents` (this binary) for one shard.
func childCommand(d *loadtest.NetDialer) func(cfg *loadtest.Config, shard, n int) *exec.Cmd {
	return func(cfg *loadtest.Config, shard, n int) *exec.Cmd {
		exe, err := os.Executable()
		if err != nil {
			exe = os.Args[0]
		}
		cj, _ := json.Marshal(cfg)
		dj, _ := json.Marshal(d)
		return exec.Command(exe, "agents", "--config", string(cj), "--dialer", string(dj),
			"--shard", fmt.Sprintf("%d/%d", shard, n))
	}
}

// runAgents is a load-generator child (see loadtest.RunChild): started by
// a jumpload parent, not by hand.
func runAgents(args []string) error {
	fs := flag.NewFlagSet("jumpload agents", flag.ContinueOnError)
	cj := fs.String("config", "", "the run's loadtest.Config as JSON")
	dj := fs.String("dialer", "", "the loadtest.NetDialer as JSON")
	shard := fs.String("shard", "0/1", "which shard of how many: I/N")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var cfg loadtest.Config
	var d loadtest.NetDialer
	if err := json.Unmarshal([]byte(*cj), &cfg); err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	if err := json.Unmarshal([]byte(*dj), &d); err != nil {
		return fmt.Errorf("--dialer: %w", err)
	}
	yieldCPU(cfg.Protocol) // QUIC: the broker under test gets the cores first (nice.go)
	var i, n int
	if _, err := fmt.Sscanf(*shard, "%d/%d", &i, &n); err != nil {
		return fmt.Errorf("--shard %q: want I/N", *shard)
	}
	shareCores(n)                           // n load processes share the cores (nice.go)
	if err := staggerGC(i, n); err != nil { // n load processes do not collect in lockstep (nice.go)
		return err
	}
	// JUMPLOAD_PROFILE=PREFIX writes each load process's CPU profile of
	// the whole run to PREFIX.cpu.I and its heap profile after
	// JUMPLOAD_HEAP_AFTER (default 10m; a comma-separated list takes one
	// profile at each) to PREFIX.heap.I: where a full-size run's
	// client-side CPU and memory go.
	if prefix := os.Getenv("JUMPLOAD_PROFILE"); prefix != "" {
		stopProfiles, err := profileChild(prefix, i)
		if err != nil {
			return err
		}
		defer stopProfiles()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	defer d.Close()
	err := loadtest.RunChild(ctx, cfg, &d, i, n, os.Stdin, os.Stdout)
	if dropped := d.DelayDropped(); dropped > 0 {
		fmt.Fprintf(os.Stderr, "jumpload agents %d: %d datagrams dropped by the --rtt queues\n", i, dropped)
	}
	return err
}

// profileChild starts the CPU profile and schedules the heap profile of
// load process i (JUMPLOAD_PROFILE); the returned func stops both.
func profileChild(prefix string, i int) (func(), error) {
	f, err := os.Create(fmt.Sprintf("%s.cpu.%d", prefix, i))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	afters := heapAfter(os.Getenv("JUMPLOAD_HEAP_AFTER"))
	heaps := make([]*time.Timer, len(afters))
	for k, after := range afters {
		name := fmt.Sprintf("%s.heap.%d", prefix, i)
		if k > 0 {
			name += fmt.Sprintf(".%d", k+1)
		}
		heaps[k] = time.AfterFunc(after, func() {
			if hf, err := os.Create(name); err == nil {
				_ = pprof.WriteHeapProfile(hf)
				_ = hf.Close()
			}
		})
	}
	return func() {
		for _, h := range heaps {
			h.Stop()
		}
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// heapAfter parses JUMPLOAD_HEAP_AFTER: one duration, or several separated
// by commas (the second profile goes to PREFIX.heap.I.2 and so on, so that
// two profiles of one run can be compared with pprof -base: what the run
// allocated between them). Unset or unparsable entries give the default,
// 10 minutes.
func heapAfter(v string) []time.Duration {
	var out []time.Duration
	for _, s := range strings.Split(v, ",") {
		if d, err := time.ParseDuration(strings.TrimSpace(s)); err == nil && d > 0 {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		out = []time.Duration{10 * time.Minute}
	}
	return out
}
