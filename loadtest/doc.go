// Package loadtest simulates a fleet of Jump clients, Jumpoints and access
// consoles against a broker and measures what the product promises: how
// fast check-ins are served and at what server cost, whether a rollout
// converges close to its bound without ever exceeding max_concurrent, how
// soon a jumped client gets its slot, and how quickly the fleet comes back
// after a broker restart.
//
// The fleet talks to a broker through two small interfaces: Dialer (what an
// agent or a console can do over a connection) and Control (what the admin
// can do: installers, settings, releases, status, process metrics). InProc
// implements both over a real engine.Node in this process, which is what the
// package's own tests and `jumpload --protocol inproc` run; the network
// implementations drive a jumpbroker over TLS, QUIC or HTTPS.
//
// A run is one Scenario (rollout, storm, jump, steady) over one Config and
// ends in one Summary, whose JSON keys are the contract that bench/run.sh
// and the figures read. Measurements are taken on the clients'
// side (Recorder); the server's CPU and memory come from its /metrics.
//
// One process may open 20,000 descriptors here, and a TLS connection or a
// quic-go client (one UDP socket each) costs one, so a large fleet is split
// into shards run by child processes (RunChild, `jumpload agents`), driven
// by JSON-line commands and merged from their snapshots; the fleet-wide
// max_in_flight is replayed from the children's timestamped in-flight
// changes rather than summed.
//
// How figures are taken, client side: an agent counts an upgrade in flight
// from the offer it receives until just before it sends the message that
// frees the broker's slot (Done, the completing check-in, or Fail), so the count
// never runs ahead of the broker's and every violation seen is real.
// Latency is the round trip of a check-in; handshakes include enrollment
// or authentication. Server CPU per check-in is the delta of the broker's
// process_cpu_seconds_total over the measured window divided by the
// check-ins answered in it (so it includes whatever else the broker did,
// handshakes in a storm for instance).
//
// Every agent is a goroutine owned by the run: Run returns only after all
// of them have stopped. The package's tests run whole scenarios on InProc
// in real time with short durations (Pebble's own goroutines and fsyncs do
// not fit a synctest bubble) and assert outcomes, never speed.
package loadtest
