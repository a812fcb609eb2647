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
// Every agent is a goroutine owned by the run: Run returns only after all
// of them have stopped. Nothing here sleeps in tests that synctest can run:
// the in-process broker works inside a synctest bubble.
package loadtest
