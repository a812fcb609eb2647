// Package wire is the jumpfleet binary protocol, version 1: frame layout,
// message structs and their encoders and decoders. docs/PROTOCOL.md is the
// specification; this package follows it and nothing here does I/O policy
// (deadlines, phases, authentication decisions belong to the transport).
//
// Encoding appends to a caller's buffer (Msg.AppendTo, AppendFrame), so the
// hot messages (CheckIn, CheckInAnswer, Heartbeat) encode without
// allocating. Decoding is canonical: every accepted payload re-encodes to
// the same bytes, and every rejected one yields an *Error with a stable
// code that can be sent to the peer as is.
//
// Reader keeps only a 4-byte header array between frames; payload buffers
// come from size-classed pools and go back as soon as a frame is decoded,
// so an idle connection holds no payload buffer. Decoded messages never
// alias the pooled buffer.
package wire
