// Command jumpload measures jumpfleet: `sim` rolls a release out over a
// simulated fleet in process (virtual time, no sockets); the other scenarios
// drive a real broker over TLS, QUIC or HTTPS (see loadtest/).
package main

import (
	"fmt"
	"os"
	"sort"
)

// scenarios maps a subcommand to its entry point. Each file of this
// command registers its own in init.
var scenarios = map[string]func(args []string) error{}

func main() {
	if len(os.Args) < 2 || scenarios[os.Args[1]] == nil {
		names := make([]string, 0, len(scenarios))
		for n := range scenarios {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: jumpload SCENARIO [flags]\nscenarios: %v\n", names)
		os.Exit(2)
	}
	if err := scenarios[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "jumpload:", err)
		os.Exit(1)
	}
}
