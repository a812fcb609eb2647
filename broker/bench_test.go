package broker_test

import (
	"context"
	"sync"
	"testing"

	"jumpfleet/adminapi"
	"jumpfleet/engine"
)

// benchBroker starts a broker with n clients checked in.
func benchBroker(b *testing.B, n int) *adminapi.Client {
	br, c := openBroker(b, testConfig(b, b.TempDir()))
	ctx := context.Background()
	var wg sync.WaitGroup
	const workers = 64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				var id engine.ClientID
				id[0], id[1], id[2] = byte(i>>16), byte(i>>8), byte(i)
				if _, err := br.Node().CheckIn(ctx, engine.CheckIn{ID: id, Kind: engine.KindPassive, Platform: engine.PlatformWindowsX64, Version: v1}); err != nil {
					panic(err)
				}
			}
		}()
	}
	wg.Wait()
	return c
}

// BenchmarkAdminStatus is one GET /v1/status over HTTPS keep-alive: TLS,
// auth, an engine turn and JSON.
func BenchmarkAdminStatus(b *testing.B) {
	c := benchBroker(b, 1000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		var s adminapi.StatusBody
		if err := c.Do(ctx, "GET", "/v1/status", nil, &s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/request")
}

// BenchmarkAdminClientsPage is one page of 100 clients filtered by state
// from a 20,000-client fleet (the filter matches all: the page is full).
func BenchmarkAdminClientsPage(b *testing.B) {
	c := benchBroker(b, 20000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		var p adminapi.ClientsBody
		if err := c.Do(ctx, "GET", "/v1/clients?state=current&limit=100&cursor=10000", nil, &p); err != nil || len(p.Clients) != 100 {
			b.Fatal(err, len(p.Clients))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/page")
}
