package scans

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	packageurl "github.com/package-url/packageurl-go"

	"github.com/tollgate/tollgate"
)

// ParseVEX reads a VEX document sent beside a scan, to be applied to it
// with tollgate.Scan.WithVEX. format is tollgate.FormatCycloneDX: a
// CycloneDX BOM (1.4 or later) whose vulnerabilities carry an analysis,
// as CycloneDX's VEX examples and vexctl write them.
//
// Every statement must be one tollgate can apply, or the document is
// refused: a vulnerability without an id, without analysis.state, or
// affecting nothing; an affects ref that names no package — neither a
// component of the document with a name, nor a package URL, nor a BOM-Link
// whose fragment is one; a not_affected, false_positive or resolved
// statement whose affects entry limits it to some versions (versions) of
// a package or product named without a version. A ref to the document's own subject
// (metadata.component) is a statement about the whole product: it applies
// to the vulnerability in every package of the scan. When that subject
// gives its digest (an OCI package URL, pkg:oci/name@sha256:…, or a
// SHA-256 hash), each statement carries it as Artifact.
func ParseVEX(format string, doc []byte) ([]tollgate.VEXStatement, error) {
	if format != tollgate.FormatCycloneDX {
		return nil, tollgate.Errorf(tollgate.EInvalid,
			"vex format %q is not one tollgate reads: want %s (a CycloneDX VEX document)", format, tollgate.FormatCycloneDX)
	}
	const what = "cyclonedx vex"
	var bom cdxBOM
	if err := decode(format, doc, &bom); err != nil {
		return nil, err
	}
	if bom.BOMFormat == nil || *bom.BOMFormat != "CycloneDX" {
		return nil, notFormat(format, doc, `bomFormat is not "CycloneDX"`)
	}
	if err := checkSpecVersion(bom.SpecVersion); err != nil {
		return nil, err
	}
	if len(bom.Vulnerabilities) == 0 {
		return nil, invalid(what, "", "vulnerabilities is empty: a VEX document states the analysis of at least one vulnerability")
	}
	components := map[string]*cdxComponent{}
	indexComponents(components, bom.Components, nil)
	product, digest := "", ""
	if c := bom.Metadata.Component; c != nil {
		product, digest = strings.TrimSpace(c.BOMRef), artifactDigest(*c)
	}

	var out []tollgate.VEXStatement
	for i, v := range bom.Vulnerabilities {
		where := fmt.Sprintf("vulnerabilities[%d]", i)
		f, err := cdxFinding(v, where)
		if err != nil {
			return nil, err
		}
		if f.VEXStatus == "" {
			return nil, invalid(what, where, "analysis.state is missing (%s): a VEX statement says not_affected, false_positive, resolved, resolved_with_pedigree, exploitable or in_triage", f.ID)
		}
		if len(v.Affects) == 0 {
			return nil, invalid(what, where, "affects is empty (%s): say which component the statement is about", f.ID)
		}
		for j, a := range v.Affects {
			at := fmt.Sprintf("%s.affects[%d]", where, j)
			ref := strings.TrimSpace(a.Ref)
			var st *tollgate.VEXStatement
			switch pkg, version := affected(components, ref); {
			case ref == "":
				return nil, invalid(what, at, "ref is missing (%s)", f.ID)
			case ref == product:
				st = statement(bom, v, f, ref, "", "")
			case pkg == ref && version == "" && components[ref] == nil:
				return nil, invalid(what, at, "ref %q names no package (%s): use a package URL, a BOM-Link whose fragment is one, or the bom-ref of a component of this document", ref, f.ID)
			default:
				st = statement(bom, v, f, ref, pkg, version)
			}
			// A statement scoped to some versions (affects[].versions, as
			// "vers:semver/<=1.5.0") of a package or product named without
			// one would, read without its range, clear every version:
			// tollgate does not match ranges, so it refuses such a statement
			// when it would take findings out of the gates.
			if hasVersions(a.Versions) && st.Version == "" && (st.Status == tollgate.VEXNotAffected || st.Status == tollgate.VEXFixed) {
				return nil, invalid(what, at, "versions limits the %s statement on %s to some versions, and tollgate does not match version ranges: name each version in the ref (a package URL with its version, or a component with a version)", v.Analysis.State, f.ID)
			}
			st.Artifact = digest
			if err := wellFormedStatement(what, *st); err != nil {
				return nil, err
			}
			out = append(out, *st)
		}
	}
	return out, nil
}

// hasVersions reports whether an affects entry's versions says anything.
func hasVersions(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s != "" && s != "null" && s != "[]" && s != "{}"
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// artifactDigest is the sha256 digest a VEX document's subject gives, or "".
func artifactDigest(c cdxComponent) string {
	if p, err := packageurl.FromString(strings.TrimSpace(c.PURL)); err == nil && p.Type == "oci" {
		if d := strings.ToLower(p.Version); strings.HasPrefix(d, "sha256:") && sha256Hex.MatchString(d[len("sha256:"):]) {
			return d
		}
	}
	for _, h := range c.Hashes {
		if d := strings.ToLower(strings.TrimSpace(h.Content)); strings.EqualFold(h.Alg, "SHA-256") && sha256Hex.MatchString(d) {
			return "sha256:" + d
		}
	}
	return ""
}
