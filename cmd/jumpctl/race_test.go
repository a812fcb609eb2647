//go:build race

package main

// raceEnabled makes the restart test build the broker with -race too, so
// that the build reuses the dependencies the race-enabled test binary just
// compiled instead of compiling them all again without it.
const raceEnabled = true
