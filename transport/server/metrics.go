package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"jumpfleet/transport/wire"
)

// Drop reasons (label values of jumpfleet_transport_drops_total).
const (
	dropAcceptRate    = "accept_rate"
	dropHandshakes    = "handshakes_in_flight"
	dropMaxConns      = "max_conns"
	dropPerIP         = "max_conns_per_ip"
	dropSlowReader    = "slow_reader"
	dropPushQueue     = "push_queue_full"
	dropPushOffline   = "push_no_session"
	dropPushClosed    = "push_session_closed"
	dropReplaced      = "replaced_by_new_connection"
	dropHandshakeFail = "handshake_failed"
	dropNonceWindow   = "nonce_window_full"
	dropNoLingerRoom  = "linger_refused" // a passive client sent away at once (mayLinger)
)

type metrics struct {
	conns       *prometheus.GaugeVec
	handshakes  *prometheus.CounterVec
	checkins    *prometheus.CounterVec
	errors      *prometheus.CounterVec
	drops       *prometheus.CounterVec
	pushes      *prometheus.CounterVec
	acceptErrs  *prometheus.CounterVec
	chunkBytes  prometheus.Counter
	fdLimit     prometheus.Gauge
	errByCode   [64]prometheus.Counter // pre-resolved for wire codes < 64
	checkinTLS  prometheus.Counter
	checkinQUIC prometheus.Counter
	checkinHTTP prometheus.Counter
	// Pre-resolved children of the per-connection path.
	hsTLSOK, hsTLSFail, hsQUICOK prometheus.Counter
	connsTLS, connsQUIC          prometheus.Gauge
	dropHSFail                   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns = "jumpfleet_transport"
	m := &metrics{
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "connections",
			Help: "Open connections by protocol (tls, quic, https)."}, []string{"proto"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "handshakes_total",
			Help: "TLS/QUIC handshakes by protocol and result."}, []string{"proto", "result"}),
		checkins: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "checkins_total",
			Help: "Check-ins answered, by protocol."}, []string{"proto"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "errors_total",
			Help: "Error frames/responses sent, by stable code."}, []string{"code"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "drops_total",
			Help: "Connections or pushes dropped, by reason."}, []string{"reason"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "pushes_total",
			Help: "Pushes written, by message type."}, []string{"type"}),
		acceptErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "accept_errors_total",
			Help: "Accept failures (emfile: out of file descriptors; backing off)."}, []string{"kind"}),
		chunkBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "package_bytes_total",
			Help: "Package bytes served."}),
		fdLimit: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "fd_limit",
			Help: "Open-files soft limit after raising it to the hard limit."}),
	}
	for _, c := range []prometheus.Collector{m.conns, m.handshakes, m.checkins, m.errors, m.drops, m.pushes, m.acceptErrs, m.chunkBytes, m.fdLimit} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for c := range m.errByCode {
		if wire.ErrCode(c).Known() {
			m.errByCode[c] = m.errors.WithLabelValues(wire.ErrCode(c).String())
		}
	}
	m.checkinTLS = m.checkins.WithLabelValues("tls")
	m.checkinQUIC = m.checkins.WithLabelValues("quic")
	m.checkinHTTP = m.checkins.WithLabelValues("https")
	m.hsTLSOK = m.handshakes.WithLabelValues("tls", "ok")
	m.hsTLSFail = m.handshakes.WithLabelValues("tls", "failed")
	m.hsQUICOK = m.handshakes.WithLabelValues("quic", "ok")
	m.connsTLS = m.conns.WithLabelValues("tls")
	m.connsQUIC = m.conns.WithLabelValues("quic")
	m.dropHSFail = m.drops.WithLabelValues(dropHandshakeFail)
	return m, nil
}

func (m *metrics) error(c wire.ErrCode) {
	if int(c) < len(m.errByCode) && m.errByCode[c] != nil {
		m.errByCode[c].Inc()
		return
	}
	m.errors.WithLabelValues(c.String()).Inc()
}

func (m *metrics) drop(reason string) { m.drops.WithLabelValues(reason).Inc() }
