package server

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSetReceiveBuffer: a QUIC socket gets the receive buffer asked for,
// beyond net.core.rmem_max when the process may (root), else as much as
// rmem_max allows. The kernel reports twice the size asked for.
func TestSetReceiveBuffer(t *testing.T) {
	const want = 16 << 20
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	rc, err := uc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		setReceiveBuffer(int(fd), want)
		got, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	floor := want
	if os.Geteuid() != 0 {
		b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
		if err != nil {
			t.Skipf("rmem_max: %v", err)
		}
		max, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		floor = min(want, max)
	}
	if got < floor {
		t.Fatalf("receive buffer %d bytes, want at least %d (asked %d, euid %d)", got, floor, want, os.Geteuid())
	}
	t.Logf("asked %d, kernel reports %d", want, got)
}
