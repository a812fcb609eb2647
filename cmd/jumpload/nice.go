package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// loadNice is the scheduling niceness of load-generator processes.
//
// Why: the agents stand for clients that would run on other machines; here
// they share the broker's two cores. Under saturation (100,000 QUIC
// clients) equal priority let four load processes take most of the CPU,
// the broker's UDP read loops fell behind, the kernel dropped datagrams and
// the clients' retransmissions made it worse. At nice 10 the broker gets
// the CPU first and the load processes use what is left. CPU time is
// counted the same either way, so the machine bound of a storm is
// unaffected.
//
// Only QUIC runs are reniced: UDP has no backpressure, so a starved read
// loop loses datagrams, while TCP makes a slow reader's peers wait. And
// at nice 10 the TLS rollout's 85,000 passive clients, whose check-ins
// keep their own schedule, fell behind it while the broker was busy:
// 4,928 upgraded later than one period after their turn, 7 (by at most
// 2 s) at equal priority (bench/RESULTS.md).
const loadNice = 10

// yieldCPU lowers the priority of every thread of this process for a
// QUIC run. Linux keeps niceness per thread and new threads inherit their
// creator's, so the threads that exist now are enough.
func yieldCPU(protocol string) {
	nice := 0
	if protocol == "quic" {
		nice = loadNice
	}
	// JUMPLOAD_NICE overrides it (0: equal priority with the broker).
	if v, err := strconv.Atoi(os.Getenv("JUMPLOAD_NICE")); err == nil && v >= 0 && v <= 19 {
		nice = v
	}
	if nice == 0 {
		return
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, 0, nice)
		return
	}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice)
		}
	}
}

// shareCores gives each of n load processes an equal share of the
// machine's cores as its GOMAXPROCS (at least 1), unless the GOMAXPROCS
// environment variable sets it. Left at the runtime's default, each would
// run one thread per core: n times the cores in all, beside the broker's.
// The kernel then preempts threads in the middle of their work, a GC
// assist (timed on the wall clock, so a preempted one looks long and
// holds its goroutine) or a write holding a UDP socket's lock. In the
// 100,000-client QUIC rollout, with four load processes at 1 P and the
// broker at 2 Ps, the broker's collections took about half the time they
// took with 2 and 4 (bench/RESULTS.md, ninth pass).
//
// The cores are the runtime's default GOMAXPROCS, not NumCPU: the default
// follows a container's CPU quota, as the broker's default Procs does, so
// the two agree on how many cores there are to share.
func shareCores(n int) {
	if n <= 1 || os.Getenv("GOMAXPROCS") != "" {
		return
	}
	runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)/n))
}

// gcPercent is load process i's of n GOGC: spread evenly from 75 to 125
// (100 on average, so the processes hold as much memory together as at the
// default); a single process keeps the default.
//
// Why: the load processes start together and carry equal shares of the
// fleet, so at one GOGC they allocate alike and collect in lockstep. In
// the 100,000-client QUIC rollout the four processes' collections (13–21 s
// each at 1 P, a quarter to a half of it in assists) fell within ~40 s of
// each other every two minutes (bench/RESULTS.md, twelfth pass), so every
// agent answered late at once: hosts that do not share a machine never
// do that. With cycles of different lengths they drift apart after a few.
func gcPercent(i, n int) int {
	if n <= 1 {
		return 100
	}
	return 75 + 50*i/(n-1)
}

// staggerGC sets load process i's GOGC to gcPercent(i, n), unless the
// GOGC environment variable is set. With JUMPLOAD_AGENT_MEMLIMIT set
// (bytes, or with a KiB, MiB or GiB suffix) the process instead runs
// without GC pacing under memory limit memLimit(i, n, limit); the broker
// is not affected.
//
// Why a limit: a load process's heap grows slowly in a rollout, so the
// runtime forces a collection every two minutes whatever GOGC says, and
// each marks the whole fleet shard's live heap (~0.9 GB at 25,000 agents,
// 13–17 s at 1 P and nice 10). GOGC=off turns the forced collections off
// too; the process then collects only when its heap reaches the limit.
func staggerGC(i, n int) error {
	if v := os.Getenv("JUMPLOAD_AGENT_MEMLIMIT"); v != "" {
		limit, err := parseBytes(v)
		if err != nil {
			return fmt.Errorf("JUMPLOAD_AGENT_MEMLIMIT: %w", err)
		}
		debug.SetGCPercent(-1)
		debug.SetMemoryLimit(memLimit(i, n, limit))
		return nil
	}
	if os.Getenv("GOGC") != "" {
		return nil
	}
	debug.SetGCPercent(gcPercent(i, n))
	return nil
}

// memLimit is load process i's of n memory limit: from 85 % to 115 % of
// limit, for the reason gcPercent spreads GOGC.
func memLimit(i, n int, limit int64) int64 {
	if n <= 1 {
		return limit
	}
	return limit * int64(85+30*i/(n-1)) / 100
}

// parseBytes reads a byte count with an optional KiB, MiB or GiB suffix.
func parseBytes(v string) (int64, error) {
	s, mult := v, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a positive byte count (e.g. 2560MiB)", v)
	}
	return n * mult, nil
}
