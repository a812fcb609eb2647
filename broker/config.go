package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"jumpfleet/engine"
	"jumpfleet/events"
)

// Config is the one configuration of a broker. Every field has a flag
// (--name), an environment variable (JUMPFLEET_NAME, dashes as
// underscores, upper case) and a key in the optional JSON config file
// (--config FILE; the json tag below). Precedence: flag over environment
// over file over default. Validate fills the defaults and checks every
// field; nothing else in the broker interprets configuration. docs/CONFIG.md
// is the table of all of them.
type Config struct {
	// Data is the data directory: the Pebble store, TLS certificate, release
	// key, package files and jumpctl.json.
	Data string `json:"data"`
	// Listen is the client listener: TLS over TCP and QUIC over UDP.
	Listen string `json:"listen"`
	// DisableQUIC serves clients over TLS/TCP only.
	DisableQUIC bool `json:"disable_quic"`
	// QUICSockets is how many UDP sockets share the QUIC port
	// (SO_REUSEPORT), each with its own read loop and receive buffer.
	QUICSockets int `json:"quic_sockets"`
	// Admin is the admin API listener (HTTPS). Keep it on loopback or a
	// management network.
	Admin string `json:"admin"`
	// NATSURL points at an external NATS (cluster); empty runs an embedded
	// server on NATSListen.
	NATSURL string `json:"nats_url"`
	// NATSListen is the embedded NATS server's address (port 0: any free).
	NATSListen string `json:"nats_listen"`
	// NATSSubjectPrefix prefixes event subjects: PREFIX.<type>.
	NATSSubjectPrefix string `json:"nats_subject_prefix"`
	// EventQueue bounds events waiting for NATS; beyond it they are dropped
	// and counted.
	EventQueue int `json:"event_queue"`
	// EventRing is how many recent events the admin API keeps for its event
	// stream and client history.
	EventRing int `json:"event_ring"`
	// ReleaseBodyLimit caps POST /v1/releases (it may carry package bytes).
	ReleaseBodyLimit int64 `json:"release_body_limit"`
	// AcceptRate and AcceptBurst pace new client connections (token bucket);
	// MaxConns caps open client connections. The default rate is
	// DefaultAcceptRatePerCore per core: about what the cores can
	// handshake, so that after a restart the bucket does not hold back
	// reconnections the CPU could serve (at 2,000/s it paced 15,000 TLS
	// clients to 7.5 s on 2 cores that needed ~5 s). Overload is stopped
	// by the handshake cap (transport/server MaxHandshakes: beyond it a
	// connection is closed before TLS), the handshake deadline and the
	// connection caps, not by this bucket.
	AcceptRate  float64 `json:"accept_rate"`
	AcceptBurst int     `json:"accept_burst"`
	MaxConns    int     `json:"max_conns"`
	// Procs is how many threads run the broker's Go code at once
	// (GOMAXPROCS; the program serving the broker applies it). The
	// default, DefaultProcs, is the runtime's own: one per core. It was
	// twice the cores while quic-go's timers made Go walk whole timer
	// heaps (our quic-go patch in third_party removed that). More Ps
	// than cores cost more than they gave: on 2 cores shared with the
	// load processes, a collection's assists and background marking
	// (timed on the wall clock, so a preempted thread counts long) took
	// 2–11 s and 5–8 s at 4 Ps, 0–4.7 s and 2–3.6 s with the broker
	// at 2 Ps and each load process at 1 (bench/RESULTS.md, ninth pass).
	Procs int `json:"procs"`
	// Heartbeat is the interval the broker asks of persistent clients
	// (HelloAck); it closes a session silent for three of them. Each
	// heartbeat is a round trip through a session and the engine, so the
	// fleet's heartbeats cost clients ÷ Heartbeat of them a second: 3,333/s
	// for 100,000 clients at the default 30 s.
	Heartbeat events.Duration `json:"heartbeat"`
	// ShutdownTimeout bounds a graceful shutdown; a second signal cuts it
	// short.
	ShutdownTimeout events.Duration `json:"shutdown_timeout"`
	// LogLevel is debug, info, warn or error; LogFormat is console or json.
	LogLevel  string `json:"log_level"`
	LogFormat string `json:"log_format"`
	// ResetAdminToken makes a new admin token at start (the old one stops
	// working), printed once and written to jumpctl.json.
	ResetAdminToken bool `json:"reset_admin_token"`
	// Settings are the rollout settings of a new installation. Once an admin
	// has changed settings through the API, the stored ones win.
	Settings events.Settings `json:"settings"`

	// The fields below are set by programs embedding the broker, not by
	// flags or files.

	// Logger replaces the logger built from LogLevel and LogFormat.
	Logger *zap.Logger `json:"-"`
	// Web is mounted at / of the admin listener (the dashboard), if set.
	Web http.Handler `json:"-"`
	// Out receives the first-start notice (admin token, fingerprint);
	// default os.Stdout.
	Out io.Writer `json:"-"`
}

// DefaultAcceptRatePerCore is the default accept rate per core: one core
// does ~3,000 TLS 1.3 handshakes with authentication and a check-in per
// second (302–325 µs of broker CPU each in the storm runs of
// bench/RESULTS.md on the 2-core machine).
const DefaultAcceptRatePerCore = 3000

// DefaultProcs is the default Procs: the runtime's GOMAXPROCS, one per
// core this process may use unless the GOMAXPROCS environment variable
// says otherwise (an explicit --procs wins over both).
func DefaultProcs() int { return runtime.GOMAXPROCS(0) }

// DefaultConfig returns the defaults (what Validate fills in).
func DefaultConfig() Config {
	return Config{
		Data:              "./data",
		Listen:            ":8443",
		Admin:             "127.0.0.1:8444",
		NATSListen:        "127.0.0.1:4222",
		NATSSubjectPrefix: events.DefaultPrefix,
		EventQueue:        65536,
		EventRing:         65536,
		ReleaseBodyLimit:  64 << 20,
		QUICSockets:       4,
		AcceptRate:        DefaultAcceptRatePerCore * float64(runtime.NumCPU()),
		AcceptBurst:       500,
		MaxConns:          1_000_000,
		Procs:             DefaultProcs(),
		Heartbeat:         events.Duration(30 * time.Second),
		ShutdownTimeout:   events.Duration(30 * time.Second),
		LogLevel:          "info",
		LogFormat:         "console",
		Settings:          events.SettingsFrom(engine.DefaultSettings()),
	}
}

// Validate checks every field, filling zero values with defaults. It
// reports all problems at once.
func (c *Config) Validate() error {
	d := DefaultConfig()
	str := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	str(&c.Data, d.Data)
	str(&c.Listen, d.Listen)
	str(&c.Admin, d.Admin)
	str(&c.NATSListen, d.NATSListen)
	str(&c.NATSSubjectPrefix, d.NATSSubjectPrefix)
	str(&c.LogLevel, d.LogLevel)
	str(&c.LogFormat, d.LogFormat)
	if c.EventQueue == 0 {
		c.EventQueue = d.EventQueue
	}
	if c.EventRing == 0 {
		c.EventRing = d.EventRing
	}
	if c.ReleaseBodyLimit == 0 {
		c.ReleaseBodyLimit = d.ReleaseBodyLimit
	}
	if c.QUICSockets == 0 {
		c.QUICSockets = d.QUICSockets
	}
	if c.AcceptRate == 0 {
		c.AcceptRate = d.AcceptRate
	}
	if c.AcceptBurst == 0 {
		c.AcceptBurst = d.AcceptBurst
	}
	if c.MaxConns == 0 {
		c.MaxConns = d.MaxConns
	}
	if c.Procs == 0 {
		c.Procs = d.Procs
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	if c.Settings == (events.Settings{}) {
		c.Settings = d.Settings
	}
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf("config: "+f, a...)) }
	for name, addr := range map[string]string{"listen": c.Listen, "admin": c.Admin, "nats-listen": c.NATSListen} {
		if _, port, err := net.SplitHostPort(addr); err != nil {
			bad("%s %q: want HOST:PORT (%v)", name, addr, err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			bad("%s %q: port must be 0..65535", name, addr)
		}
	}
	if c.NATSURL != "" && !strings.Contains(c.NATSURL, "://") {
		bad("nats-url %q: want nats://HOST:PORT", c.NATSURL)
	}
	if strings.ContainsAny(c.NATSSubjectPrefix, " *>\t") || strings.HasPrefix(c.NATSSubjectPrefix, ".") || strings.HasSuffix(c.NATSSubjectPrefix, ".") {
		bad("nats-subject-prefix %q: want dot-separated tokens without wildcards", c.NATSSubjectPrefix)
	}
	if c.EventQueue < 1 || c.EventQueue > 1<<24 {
		bad("event-queue %d: want 1..%d", c.EventQueue, 1<<24)
	}
	if c.EventRing < 1 || c.EventRing > 1<<22 {
		bad("event-ring %d: want 1..%d", c.EventRing, 1<<22)
	}
	if c.ReleaseBodyLimit < 1<<10 || c.ReleaseBodyLimit > 4<<30 {
		bad("release-body-limit %d: want 1 KiB..4 GiB", c.ReleaseBodyLimit)
	}
	if c.QUICSockets < 1 || c.QUICSockets > 64 {
		bad("quic-sockets %d: want 1..64", c.QUICSockets)
	}
	if !(c.AcceptRate > 0) || c.AcceptBurst < 1 || c.MaxConns < 1 {
		bad("accept-rate, accept-burst and max-conns must be positive")
	}
	if c.Procs < 1 || c.Procs > 1024 {
		bad("procs %d: want 1..1024", c.Procs)
	}
	if c.Heartbeat < events.Duration(time.Second) || c.Heartbeat > events.Duration(time.Hour) {
		bad("heartbeat %v: want 1s..1h", time.Duration(c.Heartbeat))
	}
	if c.ShutdownTimeout < events.Duration(time.Second) {
		bad("shutdown-timeout %v: want at least 1s", time.Duration(c.ShutdownTimeout))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "console" && c.LogFormat != "json" {
		bad("log-format %q: want console or json", c.LogFormat)
	}
	s := c.Settings.Engine()
	if err := s.Validate(); err != nil {
		bad("settings: %v", err)
	}
	return errors.Join(errs...)
}

// option is one configuration knob as a flag and an environment variable.
type option struct {
	name   string // flag name; env is JUMPFLEET_ + upper(name with _)
	help   string
	set    func(c *Config, v string) error
	get    func(c *Config) string
	isBool bool
}

func strOpt(name, help string, f func(*Config) *string) option {
	return option{name, help, func(c *Config, v string) error { *f(c) = v; return nil }, func(c *Config) string { return *f(c) }, false}
}

func intOpt(name, help string, f func(*Config) *int) option {
	return option{name, help, func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		*f(c) = n
		return err
	}, func(c *Config) string { return strconv.Itoa(*f(c)) }, false}
}

func int64Opt(name, help string, f func(*Config) *int64) option {
	return option{name, help, func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		*f(c) = n
		return err
	}, func(c *Config) string { return strconv.FormatInt(*f(c), 10) }, false}
}

func floatOpt(name, help string, f func(*Config) *float64) option {
	return option{name, help, func(c *Config, v string) error {
		n, err := strconv.ParseFloat(v, 64)
		*f(c) = n
		return err
	}, func(c *Config) string { return strconv.FormatFloat(*f(c), 'g', -1, 64) }, false}
}

func boolOpt(name, help string, f func(*Config) *bool) option {
	return option{name, help, func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		*f(c) = b
		return err
	}, func(c *Config) string { return strconv.FormatBool(*f(c)) }, true}
}

func durOpt(name, help string, f func(*Config) *events.Duration) option {
	return option{name, help, func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		*f(c) = events.Duration(d)
		return err
	}, func(c *Config) string { return time.Duration(*f(c)).String() }, false}
}

// options lists every knob, in the order of docs/CONFIG.md.
var options = []option{
	strOpt("data", "data directory (store, certificate, keys, packages, jumpctl.json)", func(c *Config) *string { return &c.Data }),
	strOpt("listen", "client listener, TLS over TCP and QUIC over UDP", func(c *Config) *string { return &c.Listen }),
	boolOpt("disable-quic", "serve clients over TLS/TCP only", func(c *Config) *bool { return &c.DisableQUIC }),
	intOpt("quic-sockets", "UDP sockets sharing the QUIC port (SO_REUSEPORT), each with its own read loop", func(c *Config) *int { return &c.QUICSockets }),
	strOpt("admin", "admin API listener (HTTPS)", func(c *Config) *string { return &c.Admin }),
	strOpt("nats-url", "external NATS URL; empty runs an embedded NATS server", func(c *Config) *string { return &c.NATSURL }),
	strOpt("nats-listen", "embedded NATS listener (port 0: any free port)", func(c *Config) *string { return &c.NATSListen }),
	strOpt("nats-subject-prefix", "events are published on PREFIX.<type>", func(c *Config) *string { return &c.NATSSubjectPrefix }),
	intOpt("event-queue", "events waiting for NATS before drops", func(c *Config) *int { return &c.EventQueue }),
	intOpt("event-ring", "recent events kept for the admin event stream and client history", func(c *Config) *int { return &c.EventRing }),
	int64Opt("release-body-limit", "max bytes of POST /v1/releases (package bytes included)", func(c *Config) *int64 { return &c.ReleaseBodyLimit }),
	floatOpt("accept-rate", "new client connections per second (token bucket)", func(c *Config) *float64 { return &c.AcceptRate }),
	intOpt("accept-burst", "burst of the connection token bucket", func(c *Config) *int { return &c.AcceptBurst }),
	intOpt("max-conns", "open client connections at most", func(c *Config) *int { return &c.MaxConns }),
	intOpt("procs", "threads running Go code at once (GOMAXPROCS; default one per core)", func(c *Config) *int { return &c.Procs }),
	durOpt("heartbeat", "interval persistent clients are asked to heartbeat at (1s–1h); a session silent for 3 of them is closed", func(c *Config) *events.Duration { return &c.Heartbeat }),
	durOpt("shutdown-timeout", "graceful shutdown limit (a second signal cuts it short)", func(c *Config) *events.Duration { return &c.ShutdownTimeout }),
	strOpt("log-level", "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
	strOpt("log-format", "console or json", func(c *Config) *string { return &c.LogFormat }),
	boolOpt("reset-admin-token", "make a new admin token (the old one stops working)", func(c *Config) *bool { return &c.ResetAdminToken }),
	intOpt("max-concurrent", "initial max concurrent upgrades (stored settings win)", func(c *Config) *int { return &c.Settings.MaxConcurrent }),
	floatOpt("starts-per-sec", "initial upgrade starts per second", func(c *Config) *float64 { return &c.Settings.StartsPerSec }),
	intOpt("start-burst", "initial burst of upgrade starts", func(c *Config) *int { return &c.Settings.StartBurst }),
	int64Opt("bytes-per-sec", "initial package bytes per second, shared", func(c *Config) *int64 { return &c.Settings.BytesPerSec }),
	durOpt("lease-time", "initial upgrade lease without progress", func(c *Config) *events.Duration { return &c.Settings.LeaseTime }),
	intOpt("retry-limit", "initial attempts before an upgrade is failed", func(c *Config) *int { return &c.Settings.RetryLimit }),
	durOpt("retry-base", "initial retry backoff base", func(c *Config) *events.Duration { return &c.Settings.RetryBase }),
	durOpt("retry-max", "initial retry backoff cap", func(c *Config) *events.Duration { return &c.Settings.RetryMax }),
}

// flagValue parses a flag's value at once (for a clear error) and records
// it to apply after the file and the environment.
type flagValue struct {
	o      *option
	record func(string)
	last   string
}

func (f *flagValue) String() string { return f.last }

func (f *flagValue) Set(v string) error {
	var probe Config
	if err := f.o.set(&probe, v); err != nil {
		return fmt.Errorf("bad value %q", v)
	}
	f.last = v
	f.record(v)
	return nil
}

// IsBoolFlag lets boolean options be given without a value.
func (f *flagValue) IsBoolFlag() bool { return f.o.isBool }

// EnvName is the environment variable of a flag name.
func EnvName(flagName string) string {
	return "JUMPFLEET_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// LoadConfig builds the configuration from command-line args (without the
// program and subcommand names), the environment (getenv, usually
// os.Getenv) and the config file named by --config or JUMPFLEET_CONFIG,
// then validates it. Usage and errors go to out.
func LoadConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("jumpbroker serve", flag.ContinueOnError)
	fs.SetOutput(out)
	type kv struct {
		o *option
		v string
	}
	var given []kv
	configFile := fs.String("config", getenv("JUMPFLEET_CONFIG"), "JSON config file (keys as in docs/CONFIG.md)")
	def := DefaultConfig()
	for i := range options {
		o := &options[i]
		fs.Var(&flagValue{o: o, record: func(v string) { given = append(given, kv{o, v}) }}, o.name,
			fmt.Sprintf("%s (env %s, default %q)", o.help, EnvName(o.name), o.get(&def)))
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	cfg := def
	if *configFile != "" {
		data, err := os.ReadFile(*configFile)
		if err != nil {
			return Config{}, fmt.Errorf("config file: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", *configFile, err)
		}
	}
	for i := range options {
		o := &options[i]
		if v := getenv(EnvName(o.name)); v != "" {
			if err := o.set(&cfg, v); err != nil {
				return Config{}, fmt.Errorf("environment %s=%q: %v", EnvName(o.name), v, err)
			}
		}
	}
	for _, g := range given {
		_ = g.o.set(&cfg, g.v)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// ConfigTable renders the options as the Markdown table of docs/CONFIG.md.
func ConfigTable() string {
	var b strings.Builder
	def := DefaultConfig()
	b.WriteString("| flag | environment | JSON key | default | meaning |\n|---|---|---|---|---|\n")
	keys := jsonKeys()
	for _, o := range options {
		fmt.Fprintf(&b, "| `--%s` | `%s` | `%s` | `%s` | %s |\n", o.name, EnvName(o.name), keys[o.name], o.get(&def), o.help)
	}
	return b.String()
}

// jsonKeys maps flag names to config-file keys.
func jsonKeys() map[string]string {
	m := map[string]string{}
	for _, o := range options {
		k := strings.ReplaceAll(o.name, "-", "_")
		switch o.name {
		case "max-concurrent", "starts-per-sec", "start-burst", "bytes-per-sec", "lease-time", "retry-limit", "retry-base", "retry-max":
			k = "settings." + k
		}
		m[o.name] = k
	}
	return m
}
