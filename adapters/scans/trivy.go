package scans

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tollgate/tollgate"
)

// Trivy's JSON report, schema 2 (trivy image|fs|repo --format json, since
// v0.20): github.com/aquasecurity/trivy pkg/types Report, and trivy-db's
// Vulnerability and CVSS for the embedded fields.
type trivyReport struct {
	SchemaVersion *int `json:"SchemaVersion"`
	Trivy         struct {
		Version string `json:"Version"`
	} `json:"Trivy"` // since v0.56
	Results []trivyResult `json:"Results"` // absent when nothing was found
}

type trivyResult struct {
	Target           string                 `json:"Target"`
	Packages         []trivyPackage         `json:"Packages"` // with --list-all-pkgs
	Vulnerabilities  []trivyVulnerability   `json:"Vulnerabilities"`
	ModifiedFindings []trivyModifiedFinding `json:"ExperimentalModifiedFindings"` // with --show-suppressed
}

type trivyPackage struct {
	Name       string `json:"Name"`
	Version    string `json:"Version"`
	FilePath   string `json:"FilePath"`
	Identifier struct {
		PURL string `json:"PURL"`
	} `json:"Identifier"`
}

type trivyVulnerability struct {
	VulnerabilityID string   `json:"VulnerabilityID"`
	VendorIDs       []string `json:"VendorIDs"`
	PkgName         string   `json:"PkgName"`
	PkgPath         string   `json:"PkgPath"`
	PkgIdentifier   struct {
		PURL string `json:"PURL"`
	} `json:"PkgIdentifier"`
	InstalledVersion string               `json:"InstalledVersion"`
	FixedVersion     string               `json:"FixedVersion"`
	Severity         string               `json:"Severity"`
	CVSS             map[string]trivyCVSS `json:"CVSS"` // by source: nvd, ghsa, redhat…
}

// trivyCVSS also has V2Vector and V2Score, which tollgate does not use.
type trivyCVSS struct {
	V3Vector  string   `json:"V3Vector"`
	V40Vector string   `json:"V40Vector"`
	V3Score   *float64 `json:"V3Score"`
	V40Score  *float64 `json:"V40Score"`
}

// A finding a .trivyignore or a VEX document set aside; Finding's shape
// depends on Type.
type trivyModifiedFinding struct {
	Type    string          `json:"Type"`
	Status  string          `json:"Status"`
	Finding json.RawMessage `json:"Finding"`
}

// parseTrivy reads Results[].Vulnerabilities. Misconfigurations, secrets and
// licences are not vulnerabilities and are skipped. With --show-suppressed,
// Trivy lists the vulnerabilities a VEX statement set aside under
// ExperimentalModifiedFindings: they are kept, with the statement's status,
// so that the gates see them discounted rather than not at all; those a
// .trivyignore set aside (status "ignored") are skipped, as they are
// without the flag.
//
// FixedVersion is kept as Trivy writes it: for language packages it lists
// one fixed version per maintained branch ("2.15.0, 2.12.2").
//
// Unidentified: packages without a version, among those a vulnerability
// names and those --list-all-pkgs lists (the latter also need no package
// URL), told apart by name and path.
func parseTrivy(report []byte) (tollgate.Scan, error) {
	const format = tollgate.FormatTrivy
	var doc trivyReport
	if err := decode(format, report, &doc); err != nil {
		return tollgate.Scan{}, err
	}
	if doc.SchemaVersion == nil {
		return tollgate.Scan{}, notFormat(format, report, "SchemaVersion is missing")
	}
	if *doc.SchemaVersion != 2 {
		return tollgate.Scan{}, invalid(format, "", "SchemaVersion is %d: tollgate reads schema 2, which trivy --format json writes since v0.20", *doc.SchemaVersion)
	}

	b := newBuilder(format, scannerName("trivy", doc.Trivy.Version))
	for i, result := range doc.Results {
		for _, p := range result.Packages {
			if strings.TrimSpace(p.Version) == "" && strings.TrimSpace(p.Identifier.PURL) == "" {
				b.addUnidentified(p.Name + "\x00" + p.FilePath)
			}
		}
		for j, v := range result.Vulnerabilities {
			where := fmt.Sprintf("Results[%d].Vulnerabilities[%d]", i, j)
			f, err := trivyFinding(v, where)
			if err != nil {
				return tollgate.Scan{}, err
			}
			b.add(f)
			if f.Version == "" {
				b.addUnidentified(v.PkgName + "\x00" + v.PkgPath)
			}
		}
		for j, m := range result.ModifiedFindings {
			where := fmt.Sprintf("Results[%d].ExperimentalModifiedFindings[%d]", i, j)
			if m.Type != "vulnerability" {
				continue
			}
			status, ok := vexStatus[m.Status]
			if !ok {
				continue // "ignored" by .trivyignore, as without --show-suppressed
			}
			if len(m.Finding) == 0 || string(m.Finding) == "null" {
				return tollgate.Scan{}, invalid(format, where, "Finding is missing")
			}
			var v trivyVulnerability
			if err := json.Unmarshal(m.Finding, &v); err != nil {
				return tollgate.Scan{}, invalid(format, where+".Finding", "not a Trivy vulnerability: %v", err)
			}
			f, err := trivyFinding(v, where+".Finding")
			if err != nil {
				return tollgate.Scan{}, err
			}
			f.VEXStatus = status
			b.add(f)
		}
	}
	return b.result()
}

func trivyFinding(v trivyVulnerability, where string) (tollgate.Finding, error) {
	const format = tollgate.FormatTrivy
	f := tollgate.Finding{
		ID:           strings.TrimSpace(v.VulnerabilityID),
		Aliases:      v.VendorIDs,
		Package:      strings.TrimSpace(v.PkgName),
		Version:      strings.TrimSpace(v.InstalledVersion),
		FixedVersion: strings.TrimSpace(v.FixedVersion),
	}
	if f.ID == "" {
		return f, invalid(format, where, "VulnerabilityID is missing")
	}
	if f.Package == "" {
		f.Package = strings.TrimSpace(v.PkgIdentifier.PURL)
	}
	if f.Package == "" {
		return f, invalid(format, where, "PkgName is missing (%s)", f.ID)
	}
	sev, ok := severity(v.Severity)
	if !ok {
		return f, invalid(format, where, "Severity %q is not a Trivy severity: want CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN", v.Severity)
	}
	f.Severity = sev

	sources := make([]string, 0, len(v.CVSS))
	for s := range v.CVSS {
		sources = append(sources, s)
	}
	slices.Sort(sources) // a map: sort for a stable order
	for _, s := range sources {
		c := v.CVSS[s]
		for _, vector := range []string{c.V40Vector, c.V3Vector} {
			if vec, ok := cvssVector(vector, ""); ok {
				f.CVSS = append(f.CVSS, tollgate.CVSSVector{Vector: vec, Source: source(s)})
			}
		}
	}
	if scorable(f.CVSS) {
		return f, nil
	}
	// No vector to score: the highest v3/v4 score Trivy states, if any.
	for _, s := range sources {
		c := v.CVSS[s]
		for _, sc := range []*float64{c.V40Score, c.V3Score} {
			if sc != nil && validScore(*sc) && (f.Reported == nil || *sc > f.Reported.Score) {
				f.Reported = &tollgate.ReportedScore{Score: *sc, Source: "trivy " + source(s) + " score"}
			}
		}
	}
	return f, nil
}
