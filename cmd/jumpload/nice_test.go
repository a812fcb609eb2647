package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestYieldCPU: every thread of a QUIC run's load process runs at loadNice (Linux
// keeps niceness per thread; renicing only the main thread would leave the
// Go runtime's other threads at full priority).
func TestYieldCPU(t *testing.T) {
	yieldCPU("quic")
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err != nil {
			continue // the thread ended
		}
		// Fields after the command (which may hold spaces): state is the
		// 3rd field overall, nice the 19th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) < 17 || f[16] != "10" {
			t.Fatalf("thread %s runs at nice %v, want 10", task.Name(), f[16])
		}
	}
}

// TestShareCores: n load processes get cores/n Ps each (at least 1); a
// lone one keeps the runtime's default.
func TestShareCores(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS is set: it wins, by design")
	}
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	shareCores(1)
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Fatalf("one process: GOMAXPROCS %d, want it left at %d", got, before)
	}
	shareCores(2)
	if got, want := runtime.GOMAXPROCS(0), max(1, before/2); got != want {
		t.Fatalf("two processes: GOMAXPROCS %d, want %d", got, want)
	}
	runtime.GOMAXPROCS(before)
	shareCores(2 * before)
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("2 × cores processes: GOMAXPROCS %d, want 1", got)
	}
}

// TestGCPercent: load processes get GOGC values spread evenly from 75 to
// 125 (100 on average: the same memory together as at the default), and a
// single process keeps the default; staggerGC applies it unless GOGC is
// set in the environment.
func TestGCPercent(t *testing.T) {
	if got := gcPercent(0, 1); got != 100 {
		t.Errorf("one process: GOGC %d, want 100", got)
	}
	want := []int{75, 91, 108, 125}
	sum := 0
	for i := range 4 {
		got := gcPercent(i, 4)
		if got != want[i] {
			t.Errorf("process %d of 4: GOGC %d, want %d", i, got, want[i])
		}
		sum += got
	}
	if mean := sum / 4; mean < 99 || mean > 100 {
		t.Errorf("mean GOGC of 4 processes %d, want ~100", mean)
	}

	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	t.Setenv("GOGC", "")
	t.Setenv("JUMPLOAD_AGENT_MEMLIMIT", "")
	if err := staggerGC(3, 4); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 125 {
		t.Errorf("after staggerGC(3, 4): GOGC %d, want 125", got)
	}
	t.Setenv("GOGC", "300")
	if err := staggerGC(0, 4); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("staggerGC with GOGC set: GOGC changed to %d", got)
	}
}

// TestAgentMemLimit: JUMPLOAD_AGENT_MEMLIMIT turns pacing off and sets
// limits spread from 85 % to 115 % over the processes; a bad value is an
// error and changes nothing.
func TestAgentMemLimit(t *testing.T) {
	want := []int64{850, 950, 1050, 1150}
	for i := range 4 {
		if got := memLimit(i, 4, 1000); got != want[i] {
			t.Errorf("process %d of 4: limit %d, want %d", i, got, want[i])
		}
	}
	if got := memLimit(0, 1, 1000); got != 1000 {
		t.Errorf("one process: limit %d, want 1000", got)
	}
	for in, want := range map[string]int64{"2560MiB": 2560 << 20, "3GiB": 3 << 30, "4096": 4096, "8KiB": 8 << 10} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1GiB", "0", "2.5GiB", "lots", "9999999999999GiB"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q): no error", in)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("parseBytes(%q): error %q does not name the value", in, err)
		}
	}

	prevPct := debug.SetGCPercent(100)
	prevLim := debug.SetMemoryLimit(-1)
	defer func() {
		debug.SetGCPercent(prevPct)
		debug.SetMemoryLimit(prevLim)
	}()
	t.Setenv("JUMPLOAD_AGENT_MEMLIMIT", "nonsense")
	if err := staggerGC(1, 4); err == nil {
		t.Error("bad JUMPLOAD_AGENT_MEMLIMIT accepted")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("bad limit changed GOGC to %d", got)
	}
	t.Setenv("JUMPLOAD_AGENT_MEMLIMIT", "1000MiB")
	if err := staggerGC(3, 4); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(100); got != -1 {
		t.Errorf("with a limit: GOGC %d, want off (-1)", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1150<<20 {
		t.Errorf("process 3 of 4: memory limit %d, want %d", got, int64(1150<<20))
	}
}
