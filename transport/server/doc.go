// Package server is the connection broker's transport: one TCP port for
// TLS 1.3 and the same port number on UDP for QUIC, both feeding one session
// implementation of protocol v1 (docs/PROTOCOL.md), plus a plain HTTPS+JSON
// endpoint on the TLS listener chosen by ALPN.
//
// Shape. A goroutine per connection runs the session: it reads one frame at
// a time (the wire.Reader keeps only a 4-byte header between frames) and
// answers requests in order by calling the engine node, whose loop batches
// requests from every session into one durable turn. Pushes (UpgradeOffer,
// JumpReady) arrive from the engine's OnCommit, which must not block: they
// go into a small bounded queue per session and a few push workers write
// them. Writes to a connection are serialised by the session's write mutex
// and bounded by a write deadline, so a client that never reads is
// disconnected (and counted), never waited on forever.
//
// Overload is shed early and answered quickly: a token bucket on accepted
// connections and a cap on handshakes in flight close surplus connections
// before any TLS work; over the connection caps, a connection that can
// still be handshaken gets Error{overloaded, retry_after with jitter} (or
// HTTP 503 + Retry-After) and is closed. Every phase has a deadline.
//
// Lock order: Server.mu → shard.mu → session.wmu. The push-queue lock
// (session.pmu) and the worker list lock (Server.pushMu) are leaves.
package server
