// Command jumpctl is the command-line client of the jumpfleet admin API
// (docs/API.md). It finds the broker through DATA/jumpctl.json (--data,
// default ./data), written by the broker on start, or through --admin,
// --token and --fingerprint. The certificate fingerprint is pinned: jumpctl
// talks to that broker and nothing else.
//
// Every command takes --json for machine-readable output. Exit status: 0
// success, 1 the broker refused or could not be reached, 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"jumpfleet/adminapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what every command gets.
type env struct {
	ctx      context.Context
	out, err io.Writer
	json     bool
	client   *adminapi.Client
	data     string
}

// globals are the connection flags, accepted before or after the command.
type globals struct {
	data, admin, token, fingerprint string
	json                            bool
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.data, "data", "./data", "broker data directory holding jumpctl.json")
	fs.StringVar(&g.admin, "admin", "", "admin API URL (instead of jumpctl.json), e.g. https://127.0.0.1:8444")
	fs.StringVar(&g.token, "token", "", "admin token (with --admin)")
	fs.StringVar(&g.fingerprint, "fingerprint", "", "SHA-256 of the broker certificate to pin (with --admin)")
	fs.BoolVar(&g.json, "json", false, "print JSON")
}

// command is one jumpctl command: its usage line, extra flags and body.
type command struct {
	usage string
	flags func(fs *flag.FlagSet) func(e *env, args []string) error
}

// usageError marks a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

var commands = map[string]command{}

func usageText() string {
	var b strings.Builder
	b.WriteString("usage: jumpctl [--data DIR | --admin URL --token T --fingerprint FP] [--json] COMMAND\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %s\n", commands[n].usage)
	}
	return b.String()
}

// run is the whole program; tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var g globals
	top := flag.NewFlagSet("jumpctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	g.register(top)
	if err := top.Parse(args); err != nil {
		fmt.Fprintf(stderr, "jumpctl: %v\n%s", err, usageText())
		return 2
	}
	rest := top.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usageText())
		return 2
	}
	name := rest[0]
	rest = rest[1:]
	// Two-word commands: "settings get", "release publish", ...
	if _, ok := commands[name]; !ok && len(rest) > 0 {
		if _, ok := commands[name+" "+rest[0]]; ok {
			name, rest = name+" "+rest[0], rest[1:]
		}
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "jumpctl: unknown command %q\n%s", strings.Join(args, " "), usageText())
		return 2
	}
	fs := flag.NewFlagSet("jumpctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, "usage: jumpctl %s\n", cmd.usage); fs.PrintDefaults() }
	// Registering resets g to the defaults: keep the values given before
	// the command and apply them again.
	var given [][2]string
	top.Visit(func(f *flag.Flag) { given = append(given, [2]string{f.Name, f.Value.String()}) })
	g.register(fs)
	for _, kv := range given {
		_ = fs.Set(kv[0], kv[1])
	}
	body := cmd.flags(fs)
	pos, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	e := &env{ctx: ctx, out: stdout, err: stderr, json: g.json, data: g.data}
	if e.client, err = connect(&g); err != nil {
		fmt.Fprintln(stderr, "jumpctl:", err)
		return 1
	}
	if err := body(e, pos); err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "jumpctl: %v\nusage: jumpctl %s\n", err, cmd.usage)
			return 2
		}
		var ae *adminapi.APIError
		if errors.As(err, &ae) {
			fmt.Fprintf(stderr, "jumpctl: %s (%s, HTTP %d)\n", ae.Message, ae.Code, ae.Status)
		} else {
			fmt.Fprintln(stderr, "jumpctl:", err)
		}
		return 1
	}
	return 0
}

// parseInterspersed lets flags follow positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func connect(g *globals) (*adminapi.Client, error) {
	if g.admin != "" {
		if g.token == "" {
			return nil, errors.New("--admin needs --token")
		}
		return adminapi.NewClient(g.admin, g.token, g.fingerprint), nil
	}
	path := filepath.Join(g.data, "jumpctl.json")
	f, err := adminapi.ReadCtlFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s (is the broker started with --data %s? or pass --admin and --token): %v", path, g.data, err)
	}
	if g.token != "" {
		f.Token = g.token
	}
	return adminapi.NewClient(f.AdminURL, f.Token, f.CertSHA256), nil
}
