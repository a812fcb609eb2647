package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"jumpfleet/engine"
)

// A run spread over several processes: the parent drives the broker
// (settings, releases, restarts) and the scenario; each child runs a shard
// of the agents (RunChild). They talk in JSON lines: commands on the
// child's stdin, snapshots on its stdout every snapshotEvery.

const snapshotEvery = 100 * time.Millisecond

// histogramEvery: every so many of a child's snapshot lines carry its
// histograms (once a second), as does its last. A window's latency
// figures are then from histograms up to a second older than its
// counters, at both ends alike.
const histogramEvery = 10

// childCmd is one command from the parent.
type childCmd struct {
	Cmd        string            `json:"cmd"` // start, epoch, consoles, stop
	Installers map[string]string `json:"installers,omitempty"`
	Tokens     []string          `json:"tokens,omitempty"`
	Duration   time.Duration     `json:"duration,omitempty"`
}

// RunChild is a load-generator child: it runs shard of shards of the fleet
// described by cfg through d, obeying commands read from in and writing a
// Snapshot line to out every 100 ms, until it is told to stop, in ends or
// ctx ends.
func RunChild(ctx context.Context, cfg Config, d Dialer, shard, shards int, in io.Reader, out io.Writer) error {
	cfg.Procs, cfg.Progress = 0, nil
	if err := cfg.Validate(); err != nil {
		return err
	}
	if shard < 0 || shard >= shards {
		return fmt.Errorf("loadtest: shard %d of %d", shard, shards)
	}
	rec := NewRecorder(cfg.MaxConcurrent)
	rec.trackFlight()
	f := newFleet(&cfg, d, rec, shard, shards)
	f.steady = cfg.Scenario == ScenarioSteady
	defer f.stop()
	cmds := make(chan childCmd)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var c childCmd
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				readErr <- fmt.Errorf("loadtest child: bad command: %v", err)
				return
			}
			select {
			case cmds <- c:
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err() // nil: the parent closed our stdin
	}()
	enc := json.NewEncoder(out)
	t := time.NewTicker(snapshotEvery)
	defer t.Stop()
	for lines := 0; ; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			return err
		case <-t.C:
			s := f.snap(lines%histogramEvery == 0)
			lines++
			s.Flight, s.Turns = rec.takeFlight(), rec.takeTurns()
			if err := enc.Encode(s); err != nil {
				return err
			}
		case c := <-cmds:
			var err error
			switch c.Cmd {
			case "start":
				inst := map[engine.Kind]string{}
				for k, tok := range c.Installers {
					kind, perr := engine.ParseKind(k)
					if perr != nil {
						return perr
					}
					inst[kind] = tok
				}
				err = f.start(ctx, inst)
			case "epoch":
				err = f.newEpoch()
			case "consoles":
				err = f.consoles(c.Tokens, c.Duration)
			case "stop":
				f.stop()
				s := f.snapshot()
				s.Flight, s.Turns = rec.takeFlight(), rec.takeTurns()
				return enc.Encode(s)
			default:
				err = fmt.Errorf("loadtest child: unknown command %q", c.Cmd)
			}
			if err != nil {
				return err
			}
		}
	}
}

// remoteFleet is the parent's view of its children.
type remoteFleet struct {
	kids  []*kid
	once  sync.Once
	limit int64

	mu     sync.Mutex
	events []int64 // every child's in-flight changes (see Recorder.takeFlight)
	trns   []Turn  // every child's first starts not yet taken (see Recorder.Turn)
}

type kid struct {
	shard int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	enc   *json.Encoder
	exit  chan error
	done  chan struct{} // closed when the process has exited
	werr  error         // its exit status; read after done

	mu   sync.Mutex
	last Snapshot
	err  error // why its output stopped early
}

func startRemote(ctx context.Context, cfg *Config) (*remoteFleet, error) {
	rf := &remoteFleet{limit: int64(cfg.MaxConcurrent)}
	for i := range cfg.Procs {
		cmd := cfg.Child(cfg, i, cfg.Procs)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			rf.stop()
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			rf.stop()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			rf.stop()
			return nil, fmt.Errorf("start load process %d: %w", i, err)
		}
		k := &kid{shard: i, cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), exit: make(chan error, 1), done: make(chan struct{})}
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<20), 64<<20)
			for sc.Scan() {
				var s Snapshot
				if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
					k.mu.Lock()
					k.err = fmt.Errorf("load process %d: bad snapshot: %v", i, err)
					k.mu.Unlock()
					continue
				}
				if len(s.Flight) > 0 {
					rf.mu.Lock()
					rf.events = append(rf.events, s.Flight...)
					rf.mu.Unlock()
					s.Flight = nil
				}
				if len(s.Turns) > 0 {
					rf.mu.Lock()
					rf.trns = append(rf.trns, s.Turns...)
					rf.mu.Unlock()
					s.Turns = nil
				}
				k.mu.Lock()
				keepHistograms(&s, &k.last)
				k.last = s
				k.mu.Unlock()
			}
		}()
		go func() {
			<-readDone
			k.werr = cmd.Wait()
			close(k.done)
			k.exit <- k.werr
		}()
		rf.kids = append(rf.kids, k)
	}
	return rf, nil
}

func (rf *remoteFleet) send(c childCmd) error {
	var errs []error
	for _, k := range rf.kids {
		if err := k.enc.Encode(c); err != nil {
			errs = append(errs, fmt.Errorf("load process %d: %w", k.shard, err))
		}
	}
	return errors.Join(errs...)
}

func (rf *remoteFleet) start(_ context.Context, installers map[engine.Kind]string) error {
	m := map[string]string{}
	for k, tok := range installers {
		m[k.String()] = tok
	}
	return rf.send(childCmd{Cmd: "start", Installers: m})
}

func (rf *remoteFleet) newEpoch() error { return rf.send(childCmd{Cmd: "epoch"}) }

func (rf *remoteFleet) consoles(tokens []string, d time.Duration) error {
	return rf.send(childCmd{Cmd: "consoles", Tokens: tokens, Duration: d})
}

// failed reports a child that exited before it was told to stop.
func (rf *remoteFleet) failed() error {
	for _, k := range rf.kids {
		select {
		case <-k.done:
			return fmt.Errorf("load process %d exited: %v", k.shard, k.werr)
		default:
		}
	}
	return nil
}

// snapshot merges the children's latest snapshots (each at most 100 ms old).
func (rf *remoteFleet) snapshot() Snapshot {
	snaps := make([]Snapshot, 0, len(rf.kids))
	for _, k := range rf.kids {
		k.mu.Lock()
		snaps = append(snaps, k.last)
		k.mu.Unlock()
	}
	return Merge(snaps...)
}

// flight replays every child's in-flight changes in time order: the
// fleet-wide maximum in flight, exact up to the clock (one machine).
func (rf *remoteFleet) flight() (int64, int64, bool) {
	rf.mu.Lock()
	ev := append([]int64(nil), rf.events...)
	rf.mu.Unlock()
	m, v := flightMax(ev, rf.limit)
	return m, v, true
}

func (rf *remoteFleet) turns() []Turn {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	t := rf.trns
	rf.trns = nil
	return t
}

// stop tells every child to stop, waits for their last snapshots and
// exits, and kills any that take longer than a minute.
func (rf *remoteFleet) stop() {
	rf.once.Do(func() {
		_ = rf.send(childCmd{Cmd: "stop"})
		for _, k := range rf.kids {
			k.stdin.Close()
		}
		for _, k := range rf.kids {
			select {
			case <-k.exit:
			case <-time.After(time.Minute):
				_ = k.cmd.Process.Kill()
				<-k.exit
			}
		}
	})
}

// keepHistograms gives s, a child's snapshot line without histograms
// (Latency nil), the ones of its previous line.
func keepHistograms(s, prev *Snapshot) {
	if s.Latency == nil {
		s.histograms = prev.histograms
	}
}
