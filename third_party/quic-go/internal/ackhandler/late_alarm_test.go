package ackhandler

import (
	"testing"
	"time"

	"github.com/quic-go/quic-go/internal/monotime"
	"github.com/quic-go/quic-go/internal/protocol"
	"github.com/quic-go/quic-go/internal/utils"
	"github.com/quic-go/quic-go/internal/wire"
)

// These tests cover the jumpfleet patch in OnLossDetectionTimeout
// (onLateAlarm; third_party/quic-go/JUMPFLEET.md): an alarm that fires
// more than a probe timeout late waits once, as long as it was late, for
// the ACKs that queued up meanwhile.

// confirmedServer is a server-side handler past the handshake with one
// ack-eliciting 1-RTT packet, pn, in flight since t0 on a 1 ms path.
func confirmedServer(t *testing.T, t0 monotime.Time) (SentPacketHandler, protocol.PacketNumber) {
	t.Helper()
	rtt := utils.NewRTTStats()
	rtt.UpdateRTT(time.Millisecond, 0)
	h := NewSentPacketHandler(0, 1200, rtt, &utils.ConnectionStats{}, true, false, func(protocol.PacketNumber) {},
		protocol.PerspectiveServer, nil, utils.DefaultLogger)
	h.DropPackets(protocol.EncryptionInitial, t0)
	h.DropPackets(protocol.EncryptionHandshake, t0)
	pn := h.PopPacketNumber(protocol.PacketNumberSpaceAppData)
	h.SentPacket(t0, pn, protocol.InvalidPacketNumber, nil, []Frame{{Frame: &wire.PingFrame{}}},
		protocol.Encryption1RTT, protocol.ECNNon, 100, false, false)
	if h.GetLossDetectionTimeout().IsZero() {
		t.Fatal("no loss-detection timer armed for a packet in flight")
	}
	return h, pn
}

func timeout(t *testing.T, h SentPacketHandler, now monotime.Time) {
	t.Helper()
	if err := h.OnLossDetectionTimeout(now); err != nil {
		t.Fatal(err)
	}
}

// On time (or late by less than a probe timeout), the alarm probes at
// once, as upstream quic-go does.
func TestOnTimeAlarmProbes(t *testing.T) {
	t0 := monotime.Now()
	first, _ := confirmedServer(t, t0)
	at := first.GetLossDetectionTimeout()
	pto := at.Sub(t0)
	for _, fired := range []monotime.Time{at, at.Add(pto / 2)} { // a fresh handler each
		h, _ := confirmedServer(t, t0)
		timeout(t, h, fired)
		if m := h.SendMode(fired); m != SendPTOAppData {
			t.Fatalf("fired %v late: send mode %v, want %v", fired.Sub(at), m, SendPTOAppData)
		}
	}
}

// Late by more than a probe timeout, the alarm waits as long as it was
// late, sends nothing, and does not back off; the next alarm probes even
// if it is late too.
func TestLateAlarmWaitsOnce(t *testing.T) {
	t0 := monotime.Now()
	h, _ := confirmedServer(t, t0)
	at := h.GetLossDetectionTimeout()
	pto := at.Sub(t0)

	fired := at.Add(10 * pto)
	timeout(t, h, fired)
	if m := h.SendMode(fired); m == SendPTOAppData {
		t.Fatal("a late alarm sent probes at once")
	}
	if got, want := h.GetLossDetectionTimeout(), fired.Add(10*pto); got != want {
		t.Fatalf("alarm re-armed %v after it fired, want %v (as long as it was late)", got.Sub(fired), want.Sub(fired))
	}

	again := h.GetLossDetectionTimeout().Add(10 * pto) // late again
	timeout(t, h, again)
	if m := h.SendMode(again); m != SendPTOAppData {
		t.Fatalf("the alarm after the grace: send mode %v, want %v", m, SendPTOAppData)
	}
	// Backed off once (the probes), not twice: the grace was no PTO.
	if got, want := h.GetLossDetectionTimeout().Sub(t0), 2*pto; got != want {
		t.Fatalf("next probe timeout %v after the send, want %v", got, want)
	}
}

// The grace is bounded, however long the endpoint stalled.
func TestLateAlarmGraceBounded(t *testing.T) {
	t0 := monotime.Now()
	h, _ := confirmedServer(t, t0)
	fired := h.GetLossDetectionTimeout().Add(30 * time.Second)
	timeout(t, h, fired)
	if got := h.GetLossDetectionTimeout().Sub(fired); got != maxLateGrace {
		t.Fatalf("grace %v, want %v", got, maxLateGrace)
	}
}

// The ACK that was waiting in the socket, read during the grace, settles
// the packet: no probe, no alarm.
func TestLateAlarmAckDuringGrace(t *testing.T) {
	t0 := monotime.Now()
	h, pn := confirmedServer(t, t0)
	fired := h.GetLossDetectionTimeout().Add(time.Second)
	timeout(t, h, fired)
	ack := &wire.AckFrame{AckRanges: []wire.AckRange{{Smallest: pn, Largest: pn}}}
	if _, err := h.ReceivedAck(ack, protocol.Encryption1RTT, fired.Add(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if at := h.GetLossDetectionTimeout(); !at.IsZero() {
		t.Fatalf("alarm still armed %v after the ACK", at.Sub(fired))
	}
	if m := h.SendMode(fired); m == SendPTOAppData {
		t.Fatal("probes queued for an acknowledged packet")
	}
}
