package scans

import (
	"fmt"
	"strings"

	"github.com/tollgate/tollgate"
)

// Grype's JSON report (grype -o json): github.com/anchore/grype
// grype/presenter/models Document, Match, Vulnerability, Package, Cvss.
type grypeDocument struct {
	Matches        *[]grypeMatch       `json:"matches"` // [] when nothing matched, never absent
	IgnoredMatches []grypeIgnoredMatch `json:"ignoredMatches"`
	Descriptor     struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"descriptor"`
}

type grypeMatch struct {
	Vulnerability struct {
		grypeVulnerability
		Fix struct {
			Versions []string `json:"versions"`
			State    string   `json:"state"`
		} `json:"fix"`
	} `json:"vulnerability"`
	RelatedVulnerabilities []grypeVulnerability `json:"relatedVulnerabilities"`
	Artifact               struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Version string `json:"version"`
		PURL    string `json:"purl"`
	} `json:"artifact"`
}

// grypeVulnerability is Grype's VulnerabilityMetadata: a vulnerability
// record of one namespace (nvd:cpe, github:language:java, debian:distro:…).
type grypeVulnerability struct {
	ID        string      `json:"id"`
	Namespace string      `json:"namespace"`
	Severity  string      `json:"severity"`
	CVSS      []grypeCVSS `json:"cvss"`
}

type grypeCVSS struct {
	Source  string `json:"source"` // since v0.80: nvd@nist.gov, security-advisories@github.com…
	Version string `json:"version"`
	Vector  string `json:"vector"`
	Metrics struct {
		BaseScore *float64 `json:"baseScore"`
	} `json:"metrics"`
}

type grypeIgnoredMatch struct {
	grypeMatch
	AppliedIgnoreRules []struct {
		VEXStatus string `json:"vex-status"`
	} `json:"appliedIgnoreRules"`
}

// parseGrype reads matches[]: one finding per match, its id the matched
// vulnerability's (a GHSA for a language package, a CVE for most others),
// with the ids of relatedVulnerabilities as aliases and the CVSS vectors of
// both. A vector without a source is given its record's namespace: "nvd"
// for nvd:cpe, "ghsa" for github:*, else the namespace's first part
// ("debian"). FixedVersion lists fix.versions, comma-separated.
//
// Grype moves the matches a VEX document (--vex) sets aside to
// ignoredMatches, with the statement's vex-status in the applied rule: they
// are kept, with that status, so that the gates see them discounted rather
// than not at all. Matches ignored by a configuration rule are skipped, as
// the user asked.
//
// Unidentified: matched artifacts without a version, told apart by id.
func parseGrype(report []byte) (tollgate.Scan, error) {
	const format = tollgate.FormatGrype
	var doc grypeDocument
	if err := decode(format, report, &doc); err != nil {
		return tollgate.Scan{}, err
	}
	if doc.Matches == nil {
		return tollgate.Scan{}, notFormat(format, report, "matches is missing")
	}
	name := doc.Descriptor.Name
	if name == "" {
		name = "grype"
	}
	b := newBuilder(format, scannerName(name, doc.Descriptor.Version))
	for i, m := range *doc.Matches {
		f, err := grypeFinding(m, fmt.Sprintf("matches[%d]", i), b)
		if err != nil {
			return tollgate.Scan{}, err
		}
		b.add(f)
	}
	for i, m := range doc.IgnoredMatches {
		where := fmt.Sprintf("ignoredMatches[%d]", i)
		var status tollgate.VEXStatus
		for j, rule := range m.AppliedIgnoreRules {
			if rule.VEXStatus == "" {
				continue
			}
			s, ok := vexStatus[rule.VEXStatus]
			if !ok {
				return tollgate.Scan{}, invalid(format, fmt.Sprintf("%s.appliedIgnoreRules[%d]", where, j),
					"vex-status %q is not a VEX status: want not_affected, affected, fixed or under_investigation", rule.VEXStatus)
			}
			status = s
			break
		}
		if status == "" {
			continue // ignored by a configuration rule
		}
		f, err := grypeFinding(m.grypeMatch, where, b)
		if err != nil {
			return tollgate.Scan{}, err
		}
		f.VEXStatus = status
		b.add(f)
	}
	return b.result()
}

func grypeFinding(m grypeMatch, where string, b *builder) (tollgate.Finding, error) {
	const format = tollgate.FormatGrype
	v := m.Vulnerability
	f := tollgate.Finding{
		ID:      strings.TrimSpace(v.ID),
		Package: strings.TrimSpace(m.Artifact.Name),
		Version: strings.TrimSpace(m.Artifact.Version),
	}
	if f.ID == "" {
		return f, invalid(format, where, "vulnerability.id is missing")
	}
	if f.Package == "" {
		f.Package = strings.TrimSpace(m.Artifact.PURL)
	}
	if f.Package == "" {
		return f, invalid(format, where, "artifact.name is missing (%s)", f.ID)
	}
	sev, ok := severity(v.Severity)
	if !ok {
		return f, invalid(format, where, "vulnerability.severity %q is not a Grype severity: want Critical, High, Medium, Low, Negligible or Unknown", v.Severity)
	}
	f.Severity = sev
	f.CVSS = grypeVectors(v.grypeVulnerability, nil)
	for j, r := range m.RelatedVulnerabilities {
		id := strings.TrimSpace(r.ID)
		if id == "" {
			return f, invalid(format, fmt.Sprintf("%s.relatedVulnerabilities[%d]", where, j), "id is missing")
		}
		f.Aliases = append(f.Aliases, id)
		f.CVSS = grypeVectors(r, f.CVSS)
	}
	if !scorable(f.CVSS) {
		f.Reported = grypeReported(append([]grypeVulnerability{v.grypeVulnerability}, m.RelatedVulnerabilities...))
	}
	var fixed []string
	for _, version := range v.Fix.Versions {
		if version = strings.TrimSpace(version); version != "" {
			fixed = append(fixed, version)
		}
	}
	f.FixedVersion = strings.Join(fixed, ", ")
	if f.Version == "" {
		b.addUnidentified(m.Artifact.ID + "\x00" + f.Package)
	}
	return f, nil
}

// grypeVectors appends a record's v3/v4 vectors to list.
func grypeVectors(v grypeVulnerability, list []tollgate.CVSSVector) []tollgate.CVSSVector {
	for _, c := range v.CVSS {
		vec, ok := cvssVector(c.Vector, strings.TrimSpace(c.Version))
		if !ok {
			continue
		}
		src := source(c.Source)
		if src == "" {
			src = namespaceSource(v.Namespace)
		}
		list = append(list, tollgate.CVSSVector{Vector: vec, Source: src})
	}
	return list
}

func namespaceSource(namespace string) string {
	first, _, _ := strings.Cut(strings.ToLower(namespace), ":")
	switch first {
	case "github":
		return "ghsa"
	}
	return first // nvd, debian, ubuntu, alpine, redhat…
}

// grypeReported is the highest v3/v4 baseScore of records, or nil.
func grypeReported(records []grypeVulnerability) *tollgate.ReportedScore {
	var best *tollgate.ReportedScore
	for _, r := range records {
		for _, c := range r.CVSS {
			version := strings.TrimSpace(c.Version)
			score := c.Metrics.BaseScore
			if !strings.HasPrefix(version, "3") && !strings.HasPrefix(version, "4") || score == nil || !validScore(*score) {
				continue
			}
			if best == nil || *score > best.Score {
				best = &tollgate.ReportedScore{Score: *score, Source: "grype cvss " + version + " baseScore"}
			}
		}
	}
	return best
}
