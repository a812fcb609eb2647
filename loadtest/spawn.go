package loadtest

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"jumpfleet/adminapi"
	"jumpfleet/packages"
)

// SpawnConfig says how to start a jumpbroker child.
type SpawnConfig struct {
	// Binary is the jumpbroker executable; empty builds ./cmd/jumpbroker
	// of the module in the working directory into Dir.
	Binary string
	// Dir is the data directory (a new temporary one when empty, removed
	// by Close).
	Dir string
	// Args are extra `jumpbroker serve` flags (e.g. --accept-rate).
	Args []string
	// Log receives the broker's output (nil: discarded).
	Log io.Writer
	// ReadyTimeout bounds each start (default 60s).
	ReadyTimeout time.Duration
	// Graceful makes Restart a SIGTERM (the broker says Bye with a
	// retry-after to every client) instead of a SIGKILL (a crash: every
	// client finds its connection gone at once and reconnects on its own
	// backoff, the storm the issue describes).
	Graceful bool
}

// Spawned is a jumpbroker running in a child process on loopback ports. It
// implements Restarter; Close stops it (idempotent).
type Spawned struct {
	cfg      SpawnConfig
	ownDir   bool
	args     []string
	Addr     string // client listener (TLS and QUIC)
	Ctl      adminapi.CtlFile
	Key      ed25519.PrivateKey // release-signing key from the data dir
	Restarts int

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan error
	once sync.Once
}

// Spawn starts a broker and waits until it is ready.
func Spawn(ctx context.Context, cfg SpawnConfig) (*Spawned, error) {
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	s := &Spawned{cfg: cfg}
	if s.cfg.Dir == "" {
		d, err := os.MkdirTemp("", "jumpload-broker-")
		if err != nil {
			return nil, err
		}
		s.cfg.Dir, s.ownDir = d, true
	}
	fail := func(err error) (*Spawned, error) {
		s.Close()
		return nil, err
	}
	if s.cfg.Binary == "" {
		bin := filepath.Join(s.cfg.Dir, "jumpbroker")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/jumpbroker")
		if out, err := build.CombinedOutput(); err != nil {
			return fail(fmt.Errorf("build jumpbroker: %v\n%s", err, out))
		}
		s.cfg.Binary = bin
	}
	port, err := freePort()
	if err != nil {
		return fail(err)
	}
	admin, err := freePort()
	if err != nil {
		return fail(err)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.args = append([]string{"serve", "--data", filepath.Join(s.cfg.Dir, "data"),
		"--listen", s.Addr, "--admin", net.JoinHostPort("127.0.0.1", strconv.Itoa(admin)),
		"--nats-listen", "127.0.0.1:0", "--log-level", "warn"}, s.cfg.Args...)
	if err := s.start(ctx); err != nil {
		return fail(err)
	}
	data := filepath.Join(s.cfg.Dir, "data")
	if s.Key, err = readReleaseKey(filepath.Join(data, "release.key")); err != nil {
		return fail(err)
	}
	return s, nil
}

func readReleaseKey(path string) (ed25519.PrivateKey, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("release key: %w", err)
	}
	return packages.LoadOrCreateKey(path)
}

// freePort finds a loopback port free for both TCP and UDP (the broker
// serves TLS and QUIC on the same number).
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no loopback port free for both TCP and UDP")
}

// start runs the broker and waits for its jumpctl.json and /readyz.
func (s *Spawned) start(ctx context.Context) error {
	cmd := exec.Command(s.cfg.Binary, s.args...)
	if s.cfg.Log != nil {
		cmd.Stdout, cmd.Stderr = s.cfg.Log, s.cfg.Log
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	exit := make(chan error, 1)
	go func() { exit <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd, s.exit = cmd, exit
	s.mu.Unlock()
	ctlPath := filepath.Join(s.cfg.Dir, "data", "jumpctl.json")
	deadline := time.Now().Add(s.cfg.ReadyTimeout)
	for {
		select {
		case err := <-exit:
			exit <- err
			return fmt.Errorf("jumpbroker exited while starting: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("jumpbroker not ready after %v", s.cfg.ReadyTimeout)
		}
		ctl, err := adminapi.ReadCtlFile(ctlPath)
		if err != nil {
			continue
		}
		c := adminapi.NewClient(ctl.AdminURL, ctl.Token, ctl.CertSHA256)
		var raw json.RawMessage
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = c.Do(rctx, "GET", "/readyz", nil, &raw)
		cancel()
		if err == nil {
			s.Ctl = ctl
			return nil
		}
	}
}

// Pin is the broker certificate's SHA-256, for the client library.
func (s *Spawned) Pin() []byte {
	b, _ := hex.DecodeString(s.Ctl.CertSHA256)
	return b
}

// stop asks the broker to shut down gracefully (clients are told to come
// back later) and kills it if it takes longer than grace.
func (s *Spawned) stop(grace time.Duration) error {
	s.mu.Lock()
	cmd, exit := s.cmd, s.exit
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exit:
		return err
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exit
		return fmt.Errorf("jumpbroker did not stop within %v: killed", grace)
	}
}

// kill stops the broker at once, as a crash would.
func (s *Spawned) kill() error {
	s.mu.Lock()
	cmd, exit := s.cmd, s.exit
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Kill()
	return <-exit
}

// Restart implements Restarter: a crash (SIGKILL) or, with Graceful, a
// graceful stop; then a start on the same data directory and ports.
func (s *Spawned) Restart(ctx context.Context) error {
	var err error
	if s.cfg.Graceful {
		err = s.stop(60 * time.Second)
	} else {
		err = s.kill()
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return err
		}
	}
	s.Restarts++
	return s.start(ctx)
}

// Pid is the running broker's process id (0 while it is stopped); the
// storm scenario reads its CPU time from /proc.
func (s *Spawned) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on
// every Linux architecture Go runs on (the kernel fixes it for the ABI).
const clockTicks = 100

// procCPU reads a process's user + system CPU seconds from /proc.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU takes utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command name in %.40q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields", len(f)+2)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("proc stat: %w", err)
	}
	return float64(ut+st) / clockTicks, nil
}

// treeCPU reads the CPU seconds of root and of every descendant alive now
// (from /proc/<pid>/task/<tid>/children), by pid. Processes that vanish
// while it reads are skipped.
func treeCPU(root int) (map[int]float64, error) {
	out := map[int]float64{}
	todo := []int{root}
	for len(todo) > 0 {
		pid := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if _, seen := out[pid]; seen {
			continue
		}
		cpu, err := procCPU(pid)
		if err != nil {
			if pid == root {
				return nil, err
			}
			continue
		}
		out[pid] = cpu
		tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
		for _, t := range tasks {
			b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", t.Name(), "children"))
			if err != nil {
				continue
			}
			for _, c := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(c); err == nil {
					todo = append(todo, n)
				}
			}
		}
	}
	return out, nil
}

// cpuStat is what the cores have spent since boot, in CPU seconds.
type cpuStat struct {
	Busy    float64 // everything but idle and iowait
	SoftIRQ float64 // part of Busy: deferred kernel work (the network stack)
}

// machineBusy reads the first line of /proc/stat, to tell how much of a
// window other processes on the machine took. Softirq time is apart
// because /proc/<pid>/stat does not charge it to any process: much of a
// loopback run's own network processing lands there.
func machineBusy() (cpuStat, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return cpuStat{}, fmt.Errorf("proc stat: first line %.40q", line)
	}
	var busy, soft uint64
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cpuStat{}, fmt.Errorf("proc stat: %w", err)
		}
		// Fields: user nice system idle iowait irq softirq steal guest
		// guest_nice; guest time is already counted in user.
		if i != 3 && i != 4 && i < 8 {
			busy += n
		}
		if i == 6 {
			soft = n
		}
	}
	return cpuStat{Busy: float64(busy) / clockTicks, SoftIRQ: float64(soft) / clockTicks}, nil
}

// cpuSince is the CPU time processes spent between two treeCPU readings;
// a process born in between counts from zero, one that died is lost
// (neither happens to the broker and load processes inside a storm's
// window).
func cpuSince(before, after map[int]float64) float64 {
	var sum float64
	for pid, c := range after {
		sum += c - before[pid]
	}
	return sum
}

// Close stops the broker and removes a data directory Spawn made.
func (s *Spawned) Close() error {
	var err error
	s.once.Do(func() {
		err = s.stop(30 * time.Second)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = nil // a non-zero exit after SIGTERM is still a stop
		}
		if s.ownDir {
			err = errors.Join(err, os.RemoveAll(s.cfg.Dir))
		}
	})
	return err
}
