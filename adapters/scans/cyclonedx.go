package scans

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	packageurl "github.com/package-url/packageurl-go"

	"github.com/tollgate/tollgate"
)

// CycloneDX JSON, 1.4 and later (vulnerabilities arrived in 1.4; CVSSv4
// ratings in 1.5): a BOM with vulnerabilities (trivy --format cyclonedx
// --scanners vuln, grype -o cyclonedx-json, Dependency-Track), or a VEX
// document whose affects refs point into another BOM.
type cdxBOM struct {
	BOMFormat    *string         `json:"bomFormat"`
	SpecVersion  string          `json:"specVersion"`
	SerialNumber string          `json:"serialNumber"`
	Version      json.RawMessage `json:"version"` // an integer; read only to name the BOM
	Metadata     struct {
		Tools     json.RawMessage `json:"tools"`
		Component *cdxComponent   `json:"component"`
	} `json:"metadata"`
	Components      []cdxComponent     `json:"components"`
	Vulnerabilities []cdxVulnerability `json:"vulnerabilities"`
}

type cdxComponent struct {
	BOMRef  string `json:"bom-ref"`
	Type    string `json:"type"`
	Group   string `json:"group"`
	Name    string `json:"name"`
	Version string `json:"version"`
	PURL    string `json:"purl"`
	Hashes  []struct {
		Alg     string `json:"alg"`
		Content string `json:"content"`
	} `json:"hashes"`
	Components []cdxComponent `json:"components"`
}

type cdxSource struct {
	Name string `json:"name"`
}

type cdxVulnerability struct {
	BOMRef     string     `json:"bom-ref"`
	ID         string     `json:"id"`
	Source     *cdxSource `json:"source"`
	References []struct {
		ID string `json:"id"`
	} `json:"references"`
	Ratings  []cdxRating `json:"ratings"`
	Analysis *struct {
		State         string `json:"state"`
		Justification string `json:"justification"`
		Detail        string `json:"detail"`
	} `json:"analysis"`
	Affects []struct {
		Ref string `json:"ref"`
		// Versions is read only to refuse it where it matters (ParseVEX):
		// tollgate does not match version ranges.
		Versions json.RawMessage `json:"versions"`
	} `json:"affects"`
}

type cdxRating struct {
	Source   *cdxSource `json:"source"`
	Score    *float64   `json:"score"`
	Severity string     `json:"severity"`
	Method   string     `json:"method"`
	Vector   string     `json:"vector"`
}

// cdxState maps CycloneDX's impact analysis states to VEX statuses.
var cdxState = map[string]tollgate.VEXStatus{
	"resolved":               tollgate.VEXFixed,
	"resolved_with_pedigree": tollgate.VEXFixed,
	"exploitable":            tollgate.VEXAffected,
	"in_triage":              tollgate.VEXUnderInvestigation,
	"false_positive":         tollgate.VEXNotAffected,
	"not_affected":           tollgate.VEXNotAffected,
}

// cdxMethodVersion is the CVSS version of a rating method; CVSSv2, OWASP,
// SSVC and other ratings carry no vector tollgate scores.
var cdxMethodVersion = map[string]string{
	"CVSSv4":  "4.0",
	"CVSSv31": "3.1",
	"CVSSv3":  "3.0",
}

// parseCycloneDX reads vulnerabilities[]: one finding per affected
// component (affects[].ref), the package and version being those of the
// component with that bom-ref, anywhere in the BOM. A ref that is no
// component of this BOM gives the package and version of the package URL it
// is (or, for a VEX document's BOM-Link into another BOM, of the package
// URL its fragment is), else the ref itself with no version. A vulnerability that affects nothing listed is one finding with
// no package.
//
//   - severity: the worst severity among the ratings ("info" is none); if no
//     rating has one, the CVSS band of the highest score; else unknown.
//   - CVSS: the vectors of CVSSv4, CVSSv31 and CVSSv3 ratings (with the
//     version prefix added when the tool left it out), each with its
//     rating's source, or the vulnerability's. When none can be read, the
//     highest score of those ratings is the reported score.
//   - aliases: references[].id. VEX: analysis.state, mapped as resolved →
//     fixed, exploitable → affected, in_triage → under_investigation,
//     not_affected and false_positive → not_affected.
//   - CycloneDX has no fixed-version field: FixedVersion stays empty.
//
// Unidentified: components of type library or framework — the packages
// scanners match — with neither a package URL nor a version. Other types
// (application, file, operating-system…) often lack both for good reason:
// Trivy lists each lock file as an application without a version.
func parseCycloneDX(report []byte) (tollgate.Scan, error) {
	const format = tollgate.FormatCycloneDX
	var bom cdxBOM
	if err := decode(format, report, &bom); err != nil {
		return tollgate.Scan{}, err
	}
	if bom.BOMFormat == nil {
		return tollgate.Scan{}, notFormat(format, report, "bomFormat is missing")
	}
	if *bom.BOMFormat != "CycloneDX" {
		return tollgate.Scan{}, invalid(format, "", `bomFormat is %q, want "CycloneDX"`, *bom.BOMFormat)
	}
	if err := checkSpecVersion(bom.SpecVersion); err != nil {
		return tollgate.Scan{}, err
	}
	scanner, err := cdxTools(bom.Metadata.Tools)
	if err != nil {
		return tollgate.Scan{}, err
	}

	b := newBuilder(format, scanner)
	components := map[string]*cdxComponent{}
	if bom.Metadata.Component != nil {
		indexComponents(components, []cdxComponent{*bom.Metadata.Component}, nil)
	}
	indexComponents(components, bom.Components, b)

	for i, v := range bom.Vulnerabilities {
		where := fmt.Sprintf("vulnerabilities[%d]", i)
		f, err := cdxFinding(v, where)
		if err != nil {
			return tollgate.Scan{}, err
		}
		if len(v.Affects) == 0 {
			if f.VEXStatus != "" {
				f.VEX = statement(bom, v, f, "", "", "")
			}
			b.add(f)
			continue
		}
		for j, a := range v.Affects {
			ref := strings.TrimSpace(a.Ref)
			if ref == "" {
				return tollgate.Scan{}, invalid(format, fmt.Sprintf("%s.affects[%d]", where, j), "ref is missing (%s)", f.ID)
			}
			g := f
			g.Package, g.Version = affected(components, ref)
			if g.VEXStatus != "" {
				g.VEX = statement(bom, v, g, ref, g.Package, g.Version)
			}
			b.add(g)
		}
	}
	return b.result()
}

func checkSpecVersion(spec string) error {
	major, minor, ok := strings.Cut(spec, ".")
	n, err := strconv.Atoi(minor)
	if !ok || major != "1" || err != nil {
		return invalid(tollgate.FormatCycloneDX, "", "specVersion is %q: tollgate reads CycloneDX 1.4 and later", spec)
	}
	if n < 4 {
		return invalid(tollgate.FormatCycloneDX, "", "specVersion is %q, which has no vulnerabilities: tollgate reads CycloneDX 1.4 and later", spec)
	}
	return nil
}

// cdxTools names the tools of metadata.tools: an object of components and
// services since 1.5, an array of tools before (still allowed).
func cdxTools(raw json.RawMessage) (string, error) {
	type tool struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	var tools []tool
	switch trimmed := strings.TrimSpace(string(raw)); {
	case trimmed == "" || trimmed == "null":
	case strings.HasPrefix(trimmed, "["):
		if err := json.Unmarshal(raw, &tools); err != nil {
			return "", invalid(tollgate.FormatCycloneDX, "metadata.tools", "not an array of tools: %v", err)
		}
	default:
		var object struct {
			Components []tool `json:"components"`
			Services   []tool `json:"services"`
		}
		if err := json.Unmarshal(raw, &object); err != nil {
			return "", invalid(tollgate.FormatCycloneDX, "metadata.tools", "not an object of components and services: %v", err)
		}
		tools = append(object.Components, object.Services...)
	}
	var names []string
	for _, t := range tools {
		if s := scannerName(t.Name, t.Version); s != "" {
			names = append(names, s)
		}
	}
	return strings.Join(names, ", "), nil
}

// indexComponents records every component by bom-ref, nested ones too, and
// counts the unidentified ones when b is not nil.
func indexComponents(index map[string]*cdxComponent, list []cdxComponent, b *builder) {
	for i := range list {
		c := &list[i]
		if ref := strings.TrimSpace(c.BOMRef); ref != "" {
			if _, dup := index[ref]; !dup {
				index[ref] = c
			}
		}
		if b != nil && (c.Type == "library" || c.Type == "framework") &&
			strings.TrimSpace(c.PURL) == "" && strings.TrimSpace(c.Version) == "" {
			key := strings.TrimSpace(c.BOMRef)
			if key == "" {
				key = c.Group + "/" + c.Name
			}
			b.addUnidentified(key)
		}
		indexComponents(index, c.Components, b)
	}
}

// affected names the package and version an affects ref points to.
func affected(components map[string]*cdxComponent, ref string) (pkg, version string) {
	if c, ok := components[ref]; ok {
		pkg = strings.TrimSpace(c.Name)
		if group := strings.TrimSpace(c.Group); group != "" {
			pkg = group + "/" + pkg
		}
		if pkg == "" {
			pkg = strings.TrimSpace(c.PURL)
		}
		if pkg == "" {
			pkg = ref
		}
		return pkg, strings.TrimSpace(c.Version)
	}
	purl := ref
	if strings.HasPrefix(ref, "urn:cdx:") { // a BOM-Link: urn:cdx:serial/version#bom-ref
		if _, fragment, ok := strings.Cut(ref, "#"); ok {
			if unescaped, err := url.PathUnescape(fragment); err == nil {
				purl = unescaped
			}
		}
	}
	if p, err := packageurl.FromString(purl); err == nil && p.Name != "" {
		pkg = p.Name
		if p.Namespace != "" {
			pkg = p.Namespace + "/" + pkg
		}
		return pkg, p.Version
	}
	return ref, ""
}

func cdxFinding(v cdxVulnerability, where string) (tollgate.Finding, error) {
	const format = tollgate.FormatCycloneDX
	f := tollgate.Finding{ID: strings.TrimSpace(v.ID), Severity: tollgate.SeverityUnknown}
	if f.ID == "" {
		return f, invalid(format, where, "id is missing")
	}
	for _, r := range v.References {
		f.Aliases = append(f.Aliases, r.ID)
	}
	vulnSource := ""
	if v.Source != nil {
		vulnSource = v.Source.Name
	}

	best, maxScore, scored := tollgate.SeverityUnknown, 0.0, false
	var reported *tollgate.ReportedScore
	for j, r := range v.Ratings {
		at := fmt.Sprintf("%s.ratings[%d]", where, j)
		sev, ok := severity(r.Severity)
		if !ok {
			return f, invalid(format, at, "severity %q is not a CycloneDX severity: want critical, high, medium, low, info, none or unknown", r.Severity)
		}
		if severityRank[sev] > severityRank[best] {
			best = sev
		}
		if r.Score != nil && strings.HasPrefix(r.Method, "CVSS") {
			if !validScore(*r.Score) {
				return f, invalid(format, at, "score %v is not a CVSS score from 0 to 10", *r.Score)
			}
			if *r.Score >= maxScore {
				maxScore, scored = *r.Score, true
			}
		}
		version, known := cdxMethodVersion[r.Method]
		if !known && r.Method != "" {
			continue // CVSSv2, OWASP, SSVC, other
		}
		if known && r.Score != nil && (reported == nil || *r.Score > reported.Score) {
			reported = &tollgate.ReportedScore{Score: *r.Score, Source: "cyclonedx " + r.Method + " rating"}
		}
		if vec, ok := cvssVector(r.Vector, version); ok {
			src := vulnSource
			if r.Source != nil && r.Source.Name != "" {
				src = r.Source.Name
			}
			f.CVSS = append(f.CVSS, tollgate.CVSSVector{Vector: vec, Source: source(src)})
		}
	}
	if !scorable(f.CVSS) {
		f.Reported = reported
	}
	f.Severity = best
	if best == tollgate.SeverityUnknown && scored {
		f.Severity = band(maxScore)
	}

	if v.Analysis != nil && v.Analysis.State != "" {
		status, ok := cdxState[v.Analysis.State]
		if !ok {
			return f, invalid(format, where+".analysis", "state %q is not a CycloneDX analysis state: want resolved, resolved_with_pedigree, exploitable, in_triage, false_positive or not_affected", v.Analysis.State)
		}
		f.VEXStatus = status
	}
	return f, nil
}

// statement is the VEX statement of v's analysis about one affected
// component, for the findings it sets the status of.
func statement(bom cdxBOM, v cdxVulnerability, f tollgate.Finding, ref, pkg, version string) *tollgate.VEXStatement {
	return &tollgate.VEXStatement{
		Document: document(bom), Ref: strings.TrimSpace(v.BOMRef), ID: f.ID, Aliases: f.Aliases,
		Affects: ref, Package: pkg, Version: version,
		State: v.Analysis.State, Status: f.VEXStatus,
		Justification: strings.TrimSpace(v.Analysis.Justification), Detail: strings.TrimSpace(v.Analysis.Detail),
	}
}

// document names a BOM as a BOM-Link does: serialNumber/version, or
// nothing when it has no serial number.
func document(bom cdxBOM) string {
	serial := strings.TrimSpace(bom.SerialNumber)
	if serial == "" {
		return ""
	}
	serial = strings.TrimPrefix(serial, "urn:uuid:")
	var version int
	if json.Unmarshal(bom.Version, &version) == nil {
		return fmt.Sprintf("urn:cdx:%s/%d", serial, version)
	}
	return "urn:cdx:" + serial
}
