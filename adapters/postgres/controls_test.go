package postgres

import (
	"testing"

	"github.com/tollgate/tollgate/adapters/pgtest"
	"github.com/tollgate/tollgate/adapters/storetest"
)

// Two replicas (two Stores, two pools) on one database race the expiry
// worker's ExpireDue and approvals of one exception: each control expires
// once, each exception is approved once, whichever replica acts.
func TestTwoReplicasControls(t *testing.T) {
	t.Parallel()
	url := pgtest.Shared(t).NewDatabase(t)
	storetest.RaceReplicas(t, openClosing(t, url), openClosing(t, url))
}
