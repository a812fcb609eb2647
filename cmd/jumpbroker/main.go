// Command jumpbroker runs the jumpfleet server: `jumpbroker serve` starts a
// broker with the configuration from flags, JUMPFLEET_* environment
// variables and an optional JSON file (docs/CONFIG.md).
//
// The first SIGINT or SIGTERM shuts down gracefully (clients are told to come
// back later, the engine commits, events drain); a second one cuts the
// graceful part short.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"jumpfleet/broker"
	"jumpfleet/web"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

const usage = `usage: jumpbroker COMMAND [flags]

commands:
  serve         run the broker (jumpbroker serve -h lists every flag)
  config-table  print the configuration table of docs/CONFIG.md
`

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:])
	case "config-table":
		fmt.Print(broker.ConfigTable())
		return 0
	case "-h", "--help", "help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "jumpbroker: unknown command %q\n%s", args[0], usage)
	return 2
}

func serve(args []string) int {
	cfg, err := broker.LoadConfig(args, os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "jumpbroker:", err)
		return 2
	}
	cfg.Web = web.Handler()       // the dashboard at / of the admin listener
	runtime.GOMAXPROCS(cfg.Procs) // process-wide, so the program applies it (broker.Config.Procs)
	sigs := make(chan os.Signal, 3)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	b, err := broker.Open(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "jumpbroker:", err)
		return 1
	}
	sig := <-sigs
	fmt.Fprintf(os.Stderr, "jumpbroker: %v: shutting down (again to force)\n", sig)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Shutdown(ctx) }()
	select {
	case err = <-done:
	case sig = <-sigs:
		fmt.Fprintf(os.Stderr, "jumpbroker: %v: forcing shutdown\n", sig)
		cancel()
		select {
		case err = <-done:
		case <-sigs:
			fmt.Fprintln(os.Stderr, "jumpbroker: exiting now")
			return 1
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "jumpbroker: shutdown:", err)
		return 1
	}
	return 0
}
