package queue

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// redisServer is a redis-server child process on a loopback port, owned by
// one test and stopped by its cleanup.
type redisServer struct {
	Addr string
	cmd  *exec.Cmd
	exit chan error
}

// redisDurability names how the Redis under asynq persists writes.
type redisDurability string

const (
	// redisFsyncAlways: append-only file, fsync before every reply (what
	// jumpfleet gives: an acknowledged change survives a crash).
	redisFsyncAlways redisDurability = "aof-always"
	// redisVolatile: no persistence at all (what most asynq deployments run
	// with for speed; a crash loses the queue).
	redisVolatile redisDurability = "volatile"
)

func (d redisDurability) args() []string {
	if d == redisFsyncAlways {
		return []string{"--save", "", "--appendonly", "yes", "--appendfsync", "always"}
	}
	return []string{"--save", "", "--appendonly", "no"}
}

// startRedis starts redis-server, or skips the test saying why it cannot.
func startRedis(tb testing.TB, d redisDurability) *redisServer {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Skip("redis-server is not installed, so asynq cannot be compared: run `bash .ci/deps.sh` (apt-get install redis-server)")
	}
	dir := tb.TempDir()
	var lastErr error
	// The free port is found by binding and releasing it; another process
	// may take it in between, so try a few.
	for range 3 {
		s, err := tryStartRedis(path, dir, d)
		if err == nil {
			tb.Cleanup(s.stop)
			return s
		}
		lastErr = err
	}
	tb.Fatalf("redis-server would not start: %v (log: %s)", lastErr, tail(filepath.Join(dir, "redis.log")))
	return nil
}

func tryStartRedis(path, dir string, d redisDurability) (*redisServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log")}, d.args()...)
	s := &redisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		cmd: exec.Command(path, args...), exit: make(chan error, 1)}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.exit <- s.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := redisPing(s.Addr); err == nil {
			return s, nil
		} else if time.Now().After(deadline) {
			s.stop()
			return nil, err
		}
		select {
		case err := <-s.exit:
			s.exit <- err
			return nil, fmt.Errorf("redis-server exited: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis answered %q to PING", line)
	}
	return nil
}

// stop terminates the server and waits for it.
func (s *redisServer) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exit:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exit
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
