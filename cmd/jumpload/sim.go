package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"jumpfleet/engine/sim"
)

func init() { scenarios["sim"] = runSim }

// runSim rolls a release out over a simulated fleet in process, on virtual
// time, and prints a summary (one JSON object with --json).
func runSim(args []string) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	var c sim.Config
	fs.IntVar(&c.Clients, "clients", 100000, "fleet size")
	fs.Float64Var(&c.PassiveFrac, "passive", 0, "share of passive Jump clients (0..1)")
	fs.Float64Var(&c.JumpointFrac, "jumpoints", 0, "share of Jumpoints (0..1)")
	fs.IntVar(&c.MaxConcurrent, "max-concurrent", 500, "maximum concurrent upgrades")
	fs.Float64Var(&c.StartsPerSec, "start-rate", 0, "upgrade starts per second (0: enough never to bind)")
	fs.IntVar(&c.StartBurst, "start-burst", 0, "start token bucket burst (0: max-concurrent)")
	fs.DurationVar(&c.UpgradeTime, "upgrade-time", 60*time.Second, "time one upgrade takes")
	fs.Float64Var(&c.UpgradeJitter, "upgrade-jitter", 0, "each upgrade takes upgrade-time·(1±jitter)")
	fs.Float64Var(&c.FailRate, "fail-rate", 0, "share of attempts that fail")
	fs.Float64Var(&c.JumpRate, "jump-rate", 0, "console jumps per (virtual) second onto pending clients")
	fs.DurationVar(&c.Spread, "spread", time.Minute, "active clients reconnect uniformly over this window")
	fs.DurationVar(&c.PassivePeriod, "passive-period", 24*time.Hour, "longest a passive client stays away")
	fs.DurationVar(&c.PassiveLinger, "passive-linger", 20*time.Second, "how long a passive check-in waits for a slot")
	fs.DurationVar(&c.MaxRetryAfter, "max-retry-after", 0, "cap on the retry-after told to a pending passive client (0: the engine's 1h)")
	fs.DurationVar(&c.PassiveBurst, "passive-burst", 0, "passive clients first check in within this window (0: at a random phase of their period)")
	fs.Uint64Var(&c.Seed, "seed", 1, "random seed")
	fs.BoolVar(&c.Durable, "durable", false, "commit every turn to Pebble (in-memory FS, synced)")
	fs.DurationVar(&c.RestartAt, "restart-at", 0, "with --durable: crash the server at this virtual time and recover it from the store")
	fs.IntVar(&c.CheckEvery, "check-every", 0, "full invariant check every N turns (0: every turn up to 20k clients, else every 100k)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := sim.Run(c)
	if err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		return enc.Encode(res)
	}
	fmt.Printf("clients %d (active %d, passive %d, jumpoints %d), seed %d\n", res.Clients, res.Active, res.Passive, res.Jumpoints, res.Seed)
	fmt.Printf("upgraded %d, failed %d, attempts %d\n", res.Upgraded, res.Failed, res.Attempts)
	fmt.Printf("max in flight %d of %d, violations %d %s\n", res.MaxInFlight, res.MaxConcurrent, res.Violations, res.FirstViolation)
	fmt.Printf("makespan %.0fs, bound %.0fs, ratio %.4f\n", res.MakespanS, res.BoundS, res.MakespanRatio)
	if res.Jumps > 0 {
		fmt.Printf("jumps %d, jump→start p50 %.2fs p99 %.2fs\n", res.Jumps, res.JumpWaitP50S, res.JumpWaitP99S)
	}
	if res.Passive > 0 {
		fmt.Printf("passive: worst lateness after turn %.0fs, beyond one period: %d\n", res.PassiveLateMaxS, res.PassiveLate)
	}
	fmt.Printf("turns %d, wall %.2fs\n", res.Turns, res.WallS)
	return nil
}
