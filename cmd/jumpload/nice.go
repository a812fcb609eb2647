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
const loadNice = 10

// yieldCPU lowers the priority of every thread of this process. Linux
// keeps niceness per thread and new threads inherit their creator's, so
// the threads that exist now are enough.
func yieldCPU() {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, 0, loadNice)
		return
	}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, loadNice)
		}
	}
}
