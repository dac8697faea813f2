package server

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/rego"
)

// counter reads a counter or a gauge of reg by name and one label (none
// when label is "").
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
			if label == "" {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// A rejected candidate counts under its reason, so that an alert can tell
// a candidate that would have refused recorded traffic from a typo.
func TestRejectedReloadsCountByReason(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	status := rego.BundleStatus{Revision: "sha256:0123456789abcdef"}
	m.ObserveReload(status, &rego.CandidateError{Reason: rego.RejectPolicyErrors, Detail: "it turns 2 of the 4 decisions …"})
	m.ObserveReload(status, &rego.CandidateError{Reason: rego.RejectPolicyErrors, Detail: "again"})
	m.ObserveReload(status, &rego.CandidateError{Reason: rego.RejectNoTests, Detail: "no test passed"})
	m.ObserveReload(status, errors.New("compile bundle: 1 error occurred"))
	m.ObserveReload(status, nil)
	for reason, want := range map[string]float64{
		rego.RejectPolicyErrors: 2, rego.RejectNoTests: 1, rego.RejectInvalid: 1, rego.RejectNoDecisionRule: 0,
	} {
		if got := counter(t, reg, "tollgate_bundle_reload_rejected_total", "reason", reason); got != want {
			t.Errorf("tollgate_bundle_reload_rejected_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if got := counter(t, reg, "tollgate_bundle_reloads_total", "result", "failed"); got != 4 {
		t.Errorf("tollgate_bundle_reloads_total{result=\"failed\"} = %v, want 4", got)
	}
}
