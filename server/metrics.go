package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/rego"
)

// Metrics are the service's Prometheus metrics, registered on a registry
// the caller owns (no global registry).
type Metrics struct {
	decisions      *prometheus.CounterVec
	reasons        *prometheus.CounterVec
	evaluation     *prometheus.HistogramVec
	requests       *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	rejected       *prometheus.CounterVec
	reloadOK       prometheus.Gauge
	reloadTime     prometheus.Gauge
	activeRevision *prometheus.GaugeVec
	store          *prometheus.HistogramVec
	storeErrors    *prometheus.CounterVec
	jobChecks      *prometheus.CounterVec
	jobLag         prometheus.Histogram
	jobsOpen       *prometheus.GaugeVec
	jobOldest      prometheus.Gauge
}

// NewMetrics creates the metrics and registers them, with the Go and process
// collectors, on reg.
func NewMetrics(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_decisions_total", Help: "Decisions by endpoint (evaluate, simulate) and status.",
		}, []string{"endpoint", "status"}),
		reasons: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_decision_reasons_total", Help: "Reasons and warnings of decisions by endpoint, kind (reason, warning) and code.",
		}, []string{"endpoint", "kind", "code"}),
		evaluation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tollgate_evaluation_duration_seconds", Help: "Time to decide a request, recording included, by endpoint.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"endpoint"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_bundle_reloads_total", Help: "Bundle reload attempts by result (ok, failed).",
		}, []string{"result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_bundle_reload_rejected_total",
			Help: "Candidate bundles rejected by reason (invalid, config, tests_failed, no_tests, coverage, no_decision_rule, decision_shape, policy_errors, replay_timeout, history_unreadable, project_probes).",
		}, []string{"reason"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_bundle_last_reload_successful", Help: "1 if the last bundle reload succeeded, 0 if the active bundle is older than the directory.",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_bundle_last_reload_timestamp_seconds", Help: "When the last bundle reload was attempted.",
		}),
		activeRevision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_bundle_active_revision", Help: "1 for the revision of the active bundle.",
		}, []string{"revision"}),
		store: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tollgate_store_duration_seconds", Help: "Store operation latency by operation.",
			Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
		}, []string{"operation"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_store_errors_total", Help: "Store operation errors by operation.",
		}, []string{"operation"}),
		jobChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_job_checks_total", Help: "Checks of gate jobs by this process's worker, by the state they left the job in (accepted, waiting, refused, expired; failed: not decided, tried again).",
		}, []string{"state"}),
		jobLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tollgate_job_check_lag_seconds", Help: "How late a job's check ran after it was due (the queue's lag).",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300},
		}),
		jobsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_jobs_open", Help: "Open gate jobs in the store (every replica's), by state: queued, waiting. Counted by the worker every stats interval.",
		}, []string{"state"}),
		jobOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_job_oldest_open_seconds", Help: "Age of the oldest open gate job in the store, 0 without any. Counted with tollgate_jobs_open.",
		}),
	}
	reg.MustRegister(m.decisions, m.reasons, m.evaluation, m.requests, m.reloads, m.rejected, m.reloadOK,
		m.reloadTime, m.activeRevision, m.store, m.storeErrors, m.jobChecks, m.jobLag, m.jobsOpen, m.jobOldest,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observeDecision(endpoint string, d tollgate.Decision, took time.Duration) {
	m.evaluation.WithLabelValues(endpoint).Observe(took.Seconds())
	m.decisions.WithLabelValues(endpoint, string(d.Status)).Inc()
	for _, r := range d.Reasons {
		m.reasons.WithLabelValues(endpoint, "reason", r.Code).Inc()
	}
	for _, r := range d.Warnings {
		m.reasons.WithLabelValues(endpoint, "warning", r.Code).Inc()
	}
}

func (m *Metrics) observeStore(operation string, took time.Duration, err error) {
	m.store.WithLabelValues(operation).Observe(took.Seconds())
	if err != nil {
		m.storeErrors.WithLabelValues(operation).Inc()
	}
}

// ObserveReload records a bundle reload attempt; pass it to the engine's
// OnReload hook.
func (m *Metrics) ObserveReload(status rego.BundleStatus, err error) {
	m.reloadTime.Set(float64(status.LastAttemptAt.Unix()))
	if err != nil {
		m.reloads.WithLabelValues("failed").Inc()
		m.rejected.WithLabelValues(rego.RejectReason(err)).Inc()
		m.reloadOK.Set(0)
		return
	}
	m.reloads.WithLabelValues("ok").Inc()
	m.Activated(status)
}

// Activated marks status.Revision as the active bundle's and the last load
// as successful: at start, and after each successful reload.
func (m *Metrics) Activated(status rego.BundleStatus) {
	m.reloadOK.Set(1)
	m.activeRevision.Reset()
	m.activeRevision.WithLabelValues(status.Revision).Set(1)
}
