package main

import (
	"os"
	"strconv"
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
