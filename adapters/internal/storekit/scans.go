package storekit

import (
	"encoding/json"

	"github.com/tollgate/tollgate"
)

// BaselineOf is the drift baseline rec sets, as JSON, or nil when it sets
// none: only an accepted decision of a project, with a scan, does.
func BaselineOf(rec tollgate.Record) ([]byte, error) {
	d := rec.Decision
	if d.Status != tollgate.Accepted || d.Project == "" || rec.Context.Scan == nil {
		return nil, nil
	}
	data, err := json.Marshal(tollgate.Baseline{DecisionID: d.ID, Release: *rec.Context.Scan})
	if err != nil {
		return nil, tollgate.Errorf(tollgate.EInternal, "record decision %s: encode its baseline: %v", d.ID, err)
	}
	return data, nil
}

// DecodeBaseline decodes the stored baseline of project and environment.
func DecodeBaseline(project, environment string, data []byte) (*tollgate.Baseline, error) {
	var b tollgate.Baseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, tollgate.Errorf(tollgate.EInternal, "baseline of %s in %s: stored value is not valid JSON: %v", project, environment, err)
	}
	return &b, nil
}

// EncodeScan checks s and encodes it for the scans table.
func EncodeScan(s tollgate.StoredScan) ([]byte, error) {
	switch {
	case s.ID == "":
		return nil, tollgate.Errorf(tollgate.EInternal, "store scan: the scan has no ID")
	case s.Project == "" || s.Artifact == "":
		return nil, tollgate.Errorf(tollgate.EInternal, "store scan %s: project and artifact are required", s.ID)
	case s.ScannedAt.IsZero():
		return nil, tollgate.Errorf(tollgate.EInternal, "store scan %s: the scan time is missing", s.ID)
	}
	data, err := json.Marshal(s)
	if err != nil {
		return nil, tollgate.Errorf(tollgate.EInternal, "store scan %s: encode: %v", s.ID, err)
	}
	return data, nil
}

// DecodeScan decodes the stored scan id.
func DecodeScan(id string, data []byte) (tollgate.StoredScan, error) {
	var s tollgate.StoredScan
	if err := json.Unmarshal(data, &s); err != nil {
		return tollgate.StoredScan{}, tollgate.Errorf(tollgate.EInternal, "scan %s: stored value is not valid JSON: %v", id, err)
	}
	return s, nil
}

// ScanNotFound is the error of a scan ID that is not stored.
func ScanNotFound(id string) error {
	return tollgate.Errorf(tollgate.ENotFound, "no scan %q is stored: post the report to /v1/scans first and use the scan_id it returns", id)
}
