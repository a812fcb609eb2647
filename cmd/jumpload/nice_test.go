package main

import (
	"os"
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
