package notify

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/adapters/postgres"
	"github.com/tollgate/tollgate/adapters/storetest"
	"github.com/tollgate/tollgate/rego"
)

// Two replicas on one PostgreSQL, each with its worker, deliver every
// notification once between them: a delivery is attempted by one of them
// at a time (leases, FOR UPDATE SKIP LOCKED), and both take part.
func TestReplicasShareDeliveries(t *testing.T) {
	url := pgtest.Start(t).NewDatabase(t)
	var (
		mu   sync.Mutex
		got  = map[string]int{} // X-Tollgate-Delivery → POSTs
		byUA = map[string]int{} // worker → POSTs
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		got[req.Header.Get(HeaderDelivery)]++
		byUA[req.URL.Query().Get("w")]++
		mu.Unlock()
	}))
	defer srv.Close()

	const n = 40
	var workers []*Worker
	for _, name := range []string{"a", "b"} {
		store, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		cfg := &rego.Notifications{Sinks: []rego.Sink{{Name: "hook", Type: rego.SinkWebhook, URL: srv.URL + "?w=" + name,
			SecretEnv: "S", Events: []string{tollgate.EventDecisionRefused}}}}
		workers = append(workers, &Worker{Store: store, Config: func() *rego.Notifications { return cfg }, Batch: 3, Owner: name,
			LookupEnv: func(string) (string, bool) { return "secret", true }})
	}
	for range n {
		rec := storetest.Record(tollgate.Refused, time.Now())
		if _, err := workers[0].Store.(tollgate.DecisionStore).Decide(context.Background(), nil, storetest.Fixed(rec)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				w.Round(context.Background())
				pending, err := w.Store.PendingDeliveries(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				ds, _ := w.Store.Deliveries(context.Background(), tollgate.DeliveryFilter{Limit: 1})
				if len(pending) == 0 && len(ds) > 0 {
					return
				}
			}
			t.Error("not every delivery was made within 30s")
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for id, posts := range got {
		if posts != 1 {
			t.Errorf("delivery %s was sent %d times", id, posts)
		}
	}
	if len(got) != n || byUA["a"] == 0 || byUA["b"] == 0 {
		t.Fatalf("%d deliveries sent (want %d), by worker: %v (want both)", len(got), n, byUA)
	}
	t.Logf("by worker: %v", byUA)
}
