package main

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadFlagsRefuseWhatCannotRun(t *testing.T) {
	for _, args := range [][]string{
		{"--active", "10"}, // no broker named
		{"--protocol", "carrier-pigeon", "--active", "1"},                   // unknown protocol
		{"--protocol", "inproc"},                                            // empty fleet
		{"--protocol", "inproc", "--active", "1", "--to", "x"},              // bad version
		{"--protocol", "inproc", "--active", "1", "stray"},                  // stray argument
		{"--protocol", "tls", "--spawn", "--active", "1", "--rtt", "20ms"},  // --rtt is QUIC's
		{"--protocol", "quic", "--spawn", "--active", "1", "--rtt", "-1ms"}, // negative delay
	} {
		if _, err := parseLoad("rollout", args, io.Discard); err == nil {
			t.Errorf("parseLoad(rollout %q) accepted it", args)
		}
	}
	if _, err := parseLoad("rollout", []string{"--protocol", "https", "--spawn", "--active", "1"}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "steady") {
		t.Errorf("https rollout: %v, want a refusal naming steady", err)
	}
	f, err := parseLoad("steady", []string{"--protocol", "https", "--spawn", "--active", "3", "--time-scale", "24"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.cfg.PassivePeriod.Hours() != 1 || f.cfg.Active != 3 || !f.spawn {
		t.Fatalf("parsed %+v", f.cfg)
	}
}

// TestRolloutInProcPrintsTheSummary runs the command end to end on the
// in-process broker and checks the JSON contract.
func TestRolloutInProcPrintsTheSummary(t *testing.T) {
	var out bytes.Buffer
	err := runLoad("rollout", []string{"--protocol", "inproc", "--active", "30", "--jumpoints", "2",
		"--max-concurrent", "4", "--upgrade-time", "20ms", "--json", "--quiet", "--seed", "3"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	if s["upgraded"] != float64(32) || s["violations"] != float64(0) || s["scenario"] != "rollout" {
		t.Fatalf("summary %s", out.String())
	}
	if !strings.Contains(out.String(), `"seed 3"`) {
		t.Fatalf("the seed is not in the summary's notes: %s", out.String())
	}
}

// TestHeapAfter: JUMPLOAD_HEAP_AFTER takes one duration or a list; what
// does not parse is skipped, and nothing usable gives the 10-minute default.
func TestHeapAfter(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []time.Duration
	}{
		{"", []time.Duration{10 * time.Minute}},
		{"45s", []time.Duration{45 * time.Second}},
		{"150s, 270s", []time.Duration{150 * time.Second, 270 * time.Second}},
		{"x,2m,-1s", []time.Duration{2 * time.Minute}},
		{"x", []time.Duration{10 * time.Minute}},
	} {
		if got := heapAfter(c.in); !slices.Equal(got, c.want) {
			t.Errorf("heapAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}
