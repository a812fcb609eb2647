package broker

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "jf.json")
	if err := os.WriteFile(file, []byte(`{"admin": "127.0.0.1:9001", "listen": "127.0.0.1:9000", "event_ring": 10,
		"settings": {"max_concurrent": 7, "lease_time": "2m"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"JUMPFLEET_CONFIG": file, "JUMPFLEET_LISTEN": "127.0.0.1:9100", "JUMPFLEET_MAX_CONCURRENT": "8",
		"JUMPFLEET_DISABLE_QUIC": "true"}
	cfg, err := LoadConfig([]string{"--max-concurrent", "9", "--reset-admin-token", "--lease-time=90s"},
		func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case cfg.Admin != "127.0.0.1:9001": // file
		t.Errorf("admin %q", cfg.Admin)
	case cfg.Listen != "127.0.0.1:9100": // env over file
		t.Errorf("listen %q", cfg.Listen)
	case cfg.Settings.MaxConcurrent != 9: // flag over env over file
		t.Errorf("max_concurrent %d", cfg.Settings.MaxConcurrent)
	case time.Duration(cfg.Settings.LeaseTime) != 90*time.Second:
		t.Errorf("lease_time %v", cfg.Settings.LeaseTime)
	case cfg.Settings.RetryLimit != 5: // default kept inside a partial settings object
		t.Errorf("retry_limit %d", cfg.Settings.RetryLimit)
	case !cfg.DisableQUIC || !cfg.ResetAdminToken || cfg.EventRing != 10:
		t.Errorf("bools or ring: %+v", cfg)
	case cfg.Data != "./data" || cfg.NATSListen != "127.0.0.1:4222":
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	none := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--listen", "nocolon"}, nil, "listen"},
		{[]string{"--admin", "127.0.0.1:99999"}, nil, "admin"},
		{[]string{"--max-concurrent", "0"}, nil, "max_concurrent"},
		{[]string{"--max-concurrent", "x"}, nil, "bad value"},
		{[]string{"--lease-time", "1ms"}, nil, "lease_time"},
		{[]string{"--log-level", "loud"}, nil, "log-level"},
		{[]string{"--nats-url", "localhost"}, nil, "nats-url"},
		{[]string{"--nats-subject-prefix", "a.>"}, nil, "nats-subject-prefix"},
		{[]string{"--event-queue", "-1"}, nil, "event-queue"},
		{[]string{"stray"}, nil, "unexpected arguments"},
		{[]string{"--nope"}, nil, "not defined"},
		{nil, map[string]string{"JUMPFLEET_EVENT_RING": "many"}, "JUMPFLEET_EVENT_RING"},
		{[]string{"--config", "/nonexistent/jf.json"}, nil, "config file"},
	} {
		getenv := none
		if tc.env != nil {
			getenv = func(k string) string { return tc.env[k] }
		}
		_, err := LoadConfig(tc.args, getenv, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %v: err %v, want it to mention %q", tc.args, tc.env, err, tc.want)
		}
	}
	// Several problems are reported together.
	c := Config{Listen: "x", Admin: "y"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "listen") || !strings.Contains(err.Error(), "admin") {
		t.Errorf("Validate: %v", err)
	}
	// Procs: the runtime's GOMAXPROCS by default (one per core), and validated.
	if d := DefaultConfig(); d.Procs != runtime.GOMAXPROCS(0) {
		t.Errorf("default procs %d: want GOMAXPROCS %d", d.Procs, runtime.GOMAXPROCS(0))
	}
	if _, err := LoadConfig([]string{"--procs", "0"}, none, io.Discard); err != nil {
		t.Errorf("--procs 0 (default): %v", err)
	}
	if c, err := LoadConfig([]string{"--procs", "3"}, none, io.Discard); err != nil || c.Procs != 3 {
		t.Errorf("--procs 3: %d, %v", c.Procs, err)
	}
	if _, err := LoadConfig([]string{"--procs", "-1"}, none, io.Discard); err == nil || !strings.Contains(err.Error(), "procs") {
		t.Errorf("--procs -1: %v, want a procs error", err)
	}
	// Heartbeat: 30 s by default, 1s..1h.
	if d := DefaultConfig(); time.Duration(d.Heartbeat) != 30*time.Second {
		t.Errorf("default heartbeat %v: want 30s", time.Duration(d.Heartbeat))
	}
	if c, err := LoadConfig([]string{"--heartbeat", "2m"}, none, io.Discard); err != nil || time.Duration(c.Heartbeat) != 2*time.Minute {
		t.Errorf("--heartbeat 2m: %v, %v", time.Duration(c.Heartbeat), err)
	}
	for _, v := range []string{"500ms", "2h"} {
		if _, err := LoadConfig([]string{"--heartbeat", v}, none, io.Discard); err == nil || !strings.Contains(err.Error(), "heartbeat") {
			t.Errorf("--heartbeat %s: %v, want a heartbeat error", v, err)
		}
	}
	if tbl := ConfigTable(); !strings.Contains(tbl, "`JUMPFLEET_MAX_CONCURRENT` | `settings.max_concurrent` | `100`") {
		t.Errorf("config table:\n%s", tbl)
	}
}
