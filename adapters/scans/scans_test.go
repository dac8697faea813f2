package scans_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tollgate/tollgate"
	"github.com/tollgate/tollgate/adapters/scans"
)

// Vectors the fixtures carry, by what they score (adapters/cvss).
const (
	v31Critical98  = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" // 9.8
	v31High81      = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H" // 8.1
	v31Critical10  = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H" // 10.0
	v31Critical91  = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:H" // 9.1
	v31Medium53    = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L" // 5.3
	v31Medium43    = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:L" // 4.3
	v30Critical91  = "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:H" // 9.1
	v30High75      = "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N" // 7.5
	v40Critical92  = "CVSS:4.0/AV:N/AC:H/AT:P/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
	v40High87      = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N"
	v40Medium69    = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:L/SC:N/SI:N/SA:N"
	v40Critical100 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H"
)

func vec(vector, source string) tollgate.CVSSVector {
	return tollgate.CVSSVector{Vector: vector, Source: source}
}

// sev is a SARIF security-severity kept as a finding's reported score.
func sev(score float64) *tollgate.ReportedScore {
	return &tollgate.ReportedScore{Score: score, Source: "sarif security-severity"}
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseFixtures(t *testing.T) {
	for _, tt := range []struct {
		format, file string
		want         tollgate.Scan
	}{
		{tollgate.FormatTrivy, "trivy-image.json", tollgate.Scan{
			Format:  "trivy",
			Scanner: "trivy 0.62.1",
			Findings: []tollgate.Finding{
				{ID: "CVE-2024-2961", Aliases: []string{"DSA-5678-1"}, Package: "libc6", Version: "2.36-9+deb12u4",
					FixedVersion: "2.36-9+deb12u7", Severity: tollgate.SeverityHigh,
					CVSS: []tollgate.CVSSVector{vec(v31High81, "nvd"), vec(v31High81, "redhat")}}, // only v3.1
				{ID: "CVE-2023-45853", Package: "zlib1g", Version: "1:1.2.13.dfsg-1", Severity: tollgate.SeverityCritical,
					CVSS: []tollgate.CVSSVector{vec(v31Critical98, "nvd")}}, // its v2 vector dropped
				{ID: "TEMP-0290435-0B57B5", Package: "tar", Version: "1.34+dfsg-1.2+deb12u1", Severity: tollgate.SeverityLow}, // no CVSS
				{ID: "CVE-2025-8058", Package: "libc6", Version: "2.36-9+deb12u4", Severity: tollgate.SeverityUnknown},
				// v4.0 and v3.1; the second copy, in another jar, merged.
				{ID: "CVE-2025-24813", Package: "org.apache.tomcat.embed:tomcat-embed-core", Version: "10.1.30",
					FixedVersion: "11.0.3, 10.1.35, 9.0.99", Severity: tollgate.SeverityCritical,
					CVSS: []tollgate.CVSSVector{vec(v40Critical92, "ghsa"), vec(v31High81, "ghsa"), vec(v31Critical98, "nvd")}},
				{ID: "GHSA-72hv-8253-57qq", Package: "com.fasterxml.jackson.core:jackson-core", Version: "2.17.2",
					FixedVersion: "2.18.6", Severity: tollgate.SeverityHigh, CVSS: []tollgate.CVSSVector{vec(v40High87, "ghsa")}},
				// Set aside by a VEX statement (--show-suppressed); the .trivyignore'd one is not here.
				{ID: "CVE-2024-47554", Package: "commons-io:commons-io", Version: "2.11.0", FixedVersion: "2.14.0",
					Severity: tollgate.SeverityMedium, VEXStatus: tollgate.VEXNotAffected,
					CVSS: []tollgate.CVSSVector{vec(v40Medium69, "ghsa"), vec(v31Medium53, "ghsa")}},
			},
			Unidentified: 1, // com.example:legacy-utils, listed without a version
		}},
		{tollgate.FormatTrivy, "trivy-empty.json", tollgate.Scan{
			Format: "trivy", Scanner: "trivy 0.62.1", Findings: []tollgate.Finding{},
		}},
		{tollgate.FormatGrype, "grype-image.json", tollgate.Scan{
			Format:  "grype",
			Scanner: "grype 0.92.2",
			Findings: []tollgate.Finding{
				{ID: "GHSA-jfh8-c2jp-5v3q", Aliases: []string{"CVE-2021-44228"}, Package: "log4j-core", Version: "2.14.1",
					FixedVersion: "2.15.0", Severity: tollgate.SeverityCritical,
					CVSS: []tollgate.CVSSVector{vec(v31Critical10, "ghsa"), vec(v40Critical100, "ghsa"), vec(v31Critical10, "nvd")}},
				{ID: "GHSA-jf85-cpcp-j695", Aliases: []string{"CVE-2019-10744"}, Package: "lodash", Version: "4.17.11",
					FixedVersion: "4.17.12", Severity: tollgate.SeverityCritical,
					CVSS: []tollgate.CVSSVector{vec(v31Critical91, "ghsa"), vec(v30Critical91, "nvd")}},
				// Debian's rating, not NVD's; the related record is the same CVE, no alias.
				{ID: "CVE-2023-45853", Package: "zlib1g", Version: "1:1.2.13.dfsg-1", Severity: tollgate.SeverityNegligible,
					CVSS: []tollgate.CVSSVector{vec(v31Critical98, "nvd")}},
				{ID: "CVE-2025-0938", Package: "python", Severity: tollgate.SeverityUnknown}, // no version, no CVSS
				{ID: "GHSA-78wr-2p64-hpwj", Aliases: []string{"CVE-2024-47554"}, Package: "commons-io", Version: "2.11.0",
					FixedVersion: "2.14.0", Severity: tollgate.SeverityMedium, VEXStatus: tollgate.VEXNotAffected,
					CVSS: []tollgate.CVSSVector{vec(v40Medium69, "ghsa"), vec(v31Medium43, "nvd")}},
			},
			Unidentified: 1,
		}},
		{tollgate.FormatGrype, "grype-empty.json", tollgate.Scan{
			Format: "grype", Scanner: "grype 0.92.2", Findings: []tollgate.Finding{},
		}},
		{tollgate.FormatSARIF, "sarif-trivy.json", tollgate.Scan{
			Format:  "sarif",
			Scanner: "Trivy 0.62.1",
			Findings: []tollgate.Finding{
				{ID: "CVE-2023-45853", Package: "zlib1g", Version: "1:1.2.13.dfsg-1", Severity: tollgate.SeverityCritical,
					CVSS: []tollgate.CVSSVector{vec(v31Critical98, "")}},
				// Trivy's own rating (CRITICAL) although its security-severity is 8.1.
				{ID: "CVE-2025-24813", Package: "org.apache.tomcat.embed:tomcat-embed-core", Version: "10.1.30",
					FixedVersion: "11.0.3, 10.1.35, 9.0.99", Severity: tollgate.SeverityCritical,
					CVSS: []tollgate.CVSSVector{vec(v40Critical92, ""), vec(v31High81, "")}},
				{ID: "CVE-2025-8058", Package: "libc6", Version: "2.36-9+deb12u4", Severity: tollgate.SeverityUnknown},
				// A misconfiguration is a security finding in SARIF; the licence result is skipped.
				{ID: "DS002", Package: "Dockerfile", Severity: tollgate.SeverityHigh, Reported: sev(8)},
			},
		}},
		{tollgate.FormatSARIF, "sarif-grype.json", tollgate.Scan{
			Format:  "sarif",
			Scanner: "grype 0.92.2",
			Findings: []tollgate.Finding{
				{ID: "CVE-2021-44228", Package: "log4j-core", Version: "2.14.1", FixedVersion: "2.15.0", Severity: tollgate.SeverityCritical, Reported: sev(10)},
				{ID: "GHSA-jf85-cpcp-j695", Package: "lodash", Version: "4.17.11", FixedVersion: "4.17.12", Severity: tollgate.SeverityCritical, Reported: sev(9.1)},
				// Grype's rating (negligible), not the band of its security-severity,
				// which is its score as no vector is given.
				{ID: "CVE-2023-45853", Package: "zlib1g", Version: "1:1.2.13.dfsg-1", Severity: tollgate.SeverityNegligible, Reported: sev(9.8)},
			},
		}},
		{tollgate.FormatSARIF, "sarif-codeql.json", tollgate.Scan{
			Format:  "sarif",
			Scanner: "CodeQL 2.21.3",
			Findings: []tollgate.Finding{
				{ID: "js/sql-injection", Package: "src/routes/orders.js", Severity: tollgate.SeverityHigh, Reported: sev(8.8)},
				{ID: "js/reflected-xss", Package: "src/routes/search.js", Severity: tollgate.SeverityMedium, Reported: sev(6.1)},
				{ID: "js/sql-injection", Package: "src/routes/users.js", Severity: tollgate.SeverityHigh, Reported: sev(8.8)},
				// js/unused-local-variable is no security result; src/legacy/report.js is absent.
			},
		}},
		{tollgate.FormatSARIF, "sarif-empty.json", tollgate.Scan{
			Format: "sarif", Scanner: "Trivy 0.62.1", Findings: []tollgate.Finding{},
		}},
		{tollgate.FormatCycloneDX, "cyclonedx-1.6.json", tollgate.Scan{
			Format:  "cyclonedx",
			Scanner: "trivy 0.62.1",
			Findings: []tollgate.Finding{
				{ID: "CVE-2025-24813", Aliases: []string{"GHSA-83qj-6fr2-vhqg"}, Package: "org.apache.tomcat.embed/tomcat-embed-core",
					Version: "10.1.30", Severity: tollgate.SeverityCritical, VEXStatus: tollgate.VEXAffected,
					CVSS: []tollgate.CVSSVector{vec(v40Critical92, "ghsa"), vec(v31High81, "ghsa"), vec(v31Critical98, "nvd")}},
				{ID: "CVE-2024-47554", Aliases: []string{"GHSA-78wr-2p64-hpwj"}, Package: "commons-io/commons-io", Version: "2.11.0",
					Severity: tollgate.SeverityMedium, VEXStatus: tollgate.VEXNotAffected,
					CVSS: []tollgate.CVSSVector{vec(v40Medium69, "ghsa"), vec(v31Medium43, "nvd")}},
				// The worst rating (NVD's critical) beats Debian's low; the CVSSv2 rating is dropped.
				{ID: "CVE-2023-45853", Package: "zlib1g", Version: "1:1.2.13.dfsg-1", Severity: tollgate.SeverityCritical,
					VEXStatus: tollgate.VEXUnderInvestigation, CVSS: []tollgate.CVSSVector{vec(v31Critical98, "nvd")}},
				// Two affected refs: one a component, one only a package URL.
				{ID: "CVE-2025-8058", Package: "libc6", Version: "2.36-9+deb12u4", Severity: tollgate.SeverityUnknown},
				{ID: "CVE-2025-8058", Package: "debian/libc-bin", Version: "2.36-9+deb12u4", Severity: tollgate.SeverityUnknown},
				// A vector without its prefix; no severity, so the score's band.
				{ID: "CVE-2024-2961", Package: "libc6", Version: "2.36-9+deb12u4", Severity: tollgate.SeverityHigh,
					VEXStatus: tollgate.VEXFixed, CVSS: []tollgate.CVSSVector{vec(v31High81, "nvd")}},
				// The component without a version.
				{ID: "GHSA-9w38-p64v-xpmv", Package: "com.example/legacy-utils", Severity: tollgate.SeverityHigh,
					CVSS: []tollgate.CVSSVector{vec(v30High75, "ghsa")}},
			},
			Unidentified: 1,
		}},
		{tollgate.FormatCycloneDX, "cyclonedx-vex-1.5.json", tollgate.Scan{
			Format:  "cyclonedx",
			Scanner: "vexctl-cdx 1.2.0",
			Findings: []tollgate.Finding{
				// A BOM-Link whose fragment is a package URL.
				{ID: "CVE-2024-47554", Package: "commons-io/commons-io", Version: "2.11.0", Severity: tollgate.SeverityUnknown,
					VEXStatus: tollgate.VEXNotAffected},
				// A BOM-Link to a bom-ref of another BOM: nothing more to know.
				{ID: "CVE-2025-24813", Package: "urn:cdx:6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5/1#tomcat-embed-core",
					Severity: tollgate.SeverityCritical, VEXStatus: tollgate.VEXFixed, CVSS: []tollgate.CVSSVector{vec(v31Critical98, "nvd")}},
				// The BOM's own subject, a CVSS score without a vector or a severity.
				{ID: "CVE-2025-31650", Package: "shop-api", Version: "1.4.2", Severity: tollgate.SeverityHigh,
					VEXStatus: tollgate.VEXUnderInvestigation,
					Reported:  &tollgate.ReportedScore{Score: 7.5, Source: "cyclonedx CVSSv31 rating"}},
			},
		}},
		{tollgate.FormatCycloneDX, "cyclonedx-empty.json", tollgate.Scan{
			Format: "cyclonedx", Scanner: "grype 0.92.2", Findings: []tollgate.Finding{},
		}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			got, err := scans.Parse(tt.format, fixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			for i := range got.Findings { // the statements: TestCycloneDXStatements
				got.Findings[i].VEX = nil
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%s):\n%s\nwant:\n%s", tt.file, dump(got), dump(tt.want))
			}
		})
	}
}

func dump(s tollgate.Scan) string {
	out, _ := json.MarshalIndent(s, "", "  ")
	return string(out)
}

// An empty scan encodes its findings as [], not null.
func TestEmptyScanEncodesAnEmptyList(t *testing.T) {
	got, err := scans.Parse(tollgate.FormatGrype, []byte(`{"matches":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(got)
	if !strings.Contains(string(out), `"findings":[]`) {
		t.Errorf("%s", out)
	}
}

func TestParseRefuses(t *testing.T) {
	trivyVuln := func(fields string) string {
		return `{"SchemaVersion":2,"Results":[{"Target":"t"},{"Target":"t","Vulnerabilities":[{"VulnerabilityID":"CVE-2024-1","PkgName":"p","InstalledVersion":"1"},` + fields + `]}]}`
	}
	for _, tt := range []struct {
		name, format, report string
		want                 []string // all in the message
	}{
		{"unknown format", "snyk", `{}`, []string{`scan format "snyk"`, "trivy, grype, sarif or cyclonedx"}},
		{"empty", "trivy", ``, []string{"trivy report: the report is empty"}},
		{"blank", "grype", " \n\t", []string{"grype report: the report is empty"}},
		{"not an object", "sarif", `[{"version":"2.1.0"}]`, []string{"sarif report: the report is not a JSON object"}},
		{"null", "cyclonedx", `null`, []string{"not a JSON object"}},
		{"bad JSON", "trivy", "{\"SchemaVersion\": 2,\n \"Results\": [}", []string{"trivy report: not valid JSON at line 2, column"}},
		{"trailing garbage", "grype", `{"matches":[]} {}`, []string{"grype report: not valid JSON"}},
		{"wrong type", "trivy", `{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":7}]}]}`,
			[]string{"trivy report: Results.Vulnerabilities.VulnerabilityID is a number, want a string (line 1, column"}},

		// Another format than announced.
		{"grype as trivy", "trivy", string(fixture(t, "grype-image.json")),
			[]string{"trivy report: SchemaVersion is missing: this is not a Trivy JSON report", `it looks like a Grype JSON report: send it as format "grype"`}},
		{"trivy as grype", "grype", string(fixture(t, "trivy-image.json")),
			[]string{"grype report: matches is missing: this is not a Grype JSON report", `send it as format "trivy"`}},
		{"cyclonedx as sarif", "sarif", string(fixture(t, "cyclonedx-1.6.json")),
			[]string{"sarif report:", "this is not a SARIF 2.1.0 log", `send it as format "cyclonedx"`}},
		{"sarif as cyclonedx", "cyclonedx", string(fixture(t, "sarif-trivy.json")),
			[]string{"cyclonedx report: bomFormat is missing", `send it as format "sarif"`}},
		{"spdx as cyclonedx", "cyclonedx", `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT"}`,
			[]string{"bomFormat is missing", "it looks like an SPDX document, which tollgate does not read"}},
		{"openvex as grype", "grype", `{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}`,
			[]string{"matches is missing", "an OpenVEX document, which tollgate does not read"}},
		{"some object as trivy", "trivy", `{"hello":"world"}`, []string{"trivy report: SchemaVersion is missing: this is not a Trivy JSON report"}},

		// Trivy.
		{"trivy schema 1", "trivy", `{"SchemaVersion":1,"Results":[]}`, []string{"SchemaVersion is 1", "schema 2"}},
		{"trivy no id", "trivy", trivyVuln(`{"PkgName":"openssl","Severity":"HIGH"}`),
			[]string{"trivy report: Results[1].Vulnerabilities[1]: VulnerabilityID is missing"}},
		{"trivy no package", "trivy", trivyVuln(`{"VulnerabilityID":"CVE-2024-2","Severity":"HIGH"}`),
			[]string{"Results[1].Vulnerabilities[1]: PkgName is missing (CVE-2024-2)"}},
		{"trivy bad severity", "trivy", trivyVuln(`{"VulnerabilityID":"CVE-2024-2","PkgName":"p","Severity":"SEVERE"}`),
			[]string{`Results[1].Vulnerabilities[1]: Severity "SEVERE" is not a Trivy severity`}},
		{"trivy suppressed without finding", "trivy",
			`{"SchemaVersion":2,"Results":[{"ExperimentalModifiedFindings":[{"Type":"vulnerability","Status":"not_affected"}]}]}`,
			[]string{"Results[0].ExperimentalModifiedFindings[0]: Finding is missing"}},
		{"trivy suppressed bad finding", "trivy",
			`{"SchemaVersion":2,"Results":[{"ExperimentalModifiedFindings":[{"Type":"vulnerability","Status":"not_affected","Finding":{"PkgName":"p"}}]}]}`,
			[]string{"Results[0].ExperimentalModifiedFindings[0].Finding: VulnerabilityID is missing"}},

		// Grype.
		{"grype matches null", "grype", `{"matches":null,"descriptor":{"name":"grype"}}`, []string{"matches is missing"}},
		{"grype no id", "grype", `{"matches":[{"vulnerability":{"severity":"High"},"artifact":{"name":"p","version":"1"}}]}`,
			[]string{"grype report: matches[0]: vulnerability.id is missing"}},
		{"grype no artifact", "grype", `{"matches":[{"vulnerability":{"id":"CVE-2024-1","severity":"High"}}]}`,
			[]string{"matches[0]: artifact.name is missing (CVE-2024-1)"}},
		{"grype bad severity", "grype", `{"matches":[{"vulnerability":{"id":"CVE-2024-1","severity":"Urgent"},"artifact":{"name":"p"}}]}`,
			[]string{`matches[0]: vulnerability.severity "Urgent" is not a Grype severity`}},
		{"grype related without id", "grype", `{"matches":[{"vulnerability":{"id":"GHSA-1","severity":"High"},"relatedVulnerabilities":[{"namespace":"nvd:cpe"}],"artifact":{"name":"p"}}]}`,
			[]string{"matches[0].relatedVulnerabilities[0]: id is missing"}},
		{"grype bad vex status", "grype", `{"matches":[],"ignoredMatches":[{"vulnerability":{"id":"CVE-2024-1"},"artifact":{"name":"p"},"appliedIgnoreRules":[{"vex-status":"maybe"}]}]}`,
			[]string{`ignoredMatches[0].appliedIgnoreRules[0]: vex-status "maybe" is not a VEX status`}},

		// SARIF.
		{"sarif 2.0", "sarif", `{"version":"2.0.0","runs":[]}`, []string{`version is "2.0.0": tollgate reads SARIF 2.1.0`}},
		{"sarif no runs", "sarif", `{"version":"2.1.0"}`, []string{"runs is missing"}},
		{"sarif no driver", "sarif", `{"version":"2.1.0","runs":[{"tool":{},"results":[]}]}`, []string{"sarif report: runs[0]: tool.driver.name is missing"}},
		{"sarif no rule id", "sarif", `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"message":{"text":"m"}}]}]}`,
			[]string{"runs[0].results[0]: ruleId is missing"}},
		{"sarif bad security-severity", "sarif",
			`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x","rules":[{"id":"r","properties":{"security-severity":"high"}}]}},"results":[{"ruleId":"r"}]}]}`,
			[]string{`runs[0].results[0]: the rule r: properties.security-severity "high" is not a score from 0 to 10`}},
		{"sarif security-severity out of range", "sarif",
			`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"ruleId":"r","properties":{"security-severity":11}}]}]}`,
			[]string{"runs[0].results[0]: properties.security-severity 11 is not a score from 0 to 10"}},

		// CycloneDX.
		{"cyclonedx wrong bomFormat", "cyclonedx", `{"bomFormat":"SPDX","specVersion":"1.6"}`, []string{`bomFormat is "SPDX", want "CycloneDX"`}},
		{"cyclonedx 1.3", "cyclonedx", `{"bomFormat":"CycloneDX","specVersion":"1.3"}`, []string{`specVersion is "1.3", which has no vulnerabilities`}},
		{"cyclonedx no version", "cyclonedx", `{"bomFormat":"CycloneDX"}`, []string{`specVersion is ""`}},
		{"cyclonedx 2.0", "cyclonedx", `{"bomFormat":"CycloneDX","specVersion":"2.0"}`, []string{`specVersion is "2.0"`}},
		{"cyclonedx no id", "cyclonedx", `{"bomFormat":"CycloneDX","specVersion":"1.6","vulnerabilities":[{"id":"CVE-2024-1"},{"ratings":[]}]}`,
			[]string{"cyclonedx report: vulnerabilities[1]: id is missing"}},
		{"cyclonedx bad severity", "cyclonedx", `{"bomFormat":"CycloneDX","specVersion":"1.6","vulnerabilities":[{"id":"CVE-2024-1","ratings":[{"severity":"severe"}]}]}`,
			[]string{`vulnerabilities[0].ratings[0]: severity "severe" is not a CycloneDX severity`}},
		{"cyclonedx bad score", "cyclonedx", `{"bomFormat":"CycloneDX","specVersion":"1.6","vulnerabilities":[{"id":"CVE-2024-1","ratings":[{"score":98,"method":"CVSSv31"}]}]}`,
			[]string{"vulnerabilities[0].ratings[0]: score 98 is not a CVSS score"}},
		{"cyclonedx bad state", "cyclonedx", `{"bomFormat":"CycloneDX","specVersion":"1.5","vulnerabilities":[{"id":"CVE-2024-1","analysis":{"state":"wontfix"}}]}`,
			[]string{`vulnerabilities[0].analysis: state "wontfix" is not a CycloneDX analysis state`}},
		{"cyclonedx empty ref", "cyclonedx", `{"bomFormat":"CycloneDX","specVersion":"1.5","vulnerabilities":[{"id":"CVE-2024-1","affects":[{"ref":""}]}]}`,
			[]string{"vulnerabilities[0].affects[0]: ref is missing (CVE-2024-1)"}},
		{"cyclonedx bad tools", "cyclonedx", `{"bomFormat":"CycloneDX","specVersion":"1.5","metadata":{"tools":"trivy"}}`,
			[]string{"metadata.tools: not an object of components and services"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scans.Parse(tt.format, []byte(tt.report))
			if err == nil {
				t.Fatalf("accepted, want an error:\n%s", dump(got))
			}
			if code := tollgate.ErrorCode(err); code != tollgate.EInvalid {
				t.Errorf("code %s, want %s: %v", code, tollgate.EInvalid, err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	for _, tt := range []struct {
		name, format, report string
		want                 tollgate.Scan
	}{
		{"trivy without Results", "trivy", `{"SchemaVersion":2,"ArtifactName":"x"}`,
			tollgate.Scan{Format: "trivy", Scanner: "trivy", Findings: []tollgate.Finding{}}},
		{"a byte order mark", "grype", "\xef\xbb\xbf" + `{"matches":[]}`,
			tollgate.Scan{Format: "grype", Scanner: "grype", Findings: []tollgate.Finding{}}},
		{"trivy package URL as the package", "trivy",
			`{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":"CVE-2024-1","PkgIdentifier":{"PURL":"pkg:npm/x@1"},"InstalledVersion":"1","Severity":"low"}]}]}`,
			tollgate.Scan{Format: "trivy", Scanner: "trivy", Findings: []tollgate.Finding{
				{ID: "CVE-2024-1", Package: "pkg:npm/x@1", Version: "1", Severity: tollgate.SeverityLow}}}},
		{"a VEX statement on one copy does not clear the other", "trivy",
			`{"SchemaVersion":2,"Results":[
			  {"ExperimentalModifiedFindings":[{"Type":"vulnerability","Status":"not_affected","Finding":{"VulnerabilityID":"CVE-2024-1","PkgName":"p","InstalledVersion":"1","Severity":"HIGH"}}]},
			  {"Vulnerabilities":[{"VulnerabilityID":"CVE-2024-1","PkgName":"p","InstalledVersion":"1","Severity":"HIGH","PkgPath":"b.jar"}]}]}`,
			tollgate.Scan{Format: "trivy", Scanner: "trivy", Findings: []tollgate.Finding{
				{ID: "CVE-2024-1", Package: "p", Version: "1", Severity: tollgate.SeverityHigh}}}},
		{"grype package URL, vectors without a prefix or a source", "grype",
			`{"matches":[{"vulnerability":{"id":"CVE-2024-1","namespace":"ubuntu:distro:ubuntu:24.04","severity":"medium",
			  "cvss":[{"version":"3.1","vector":"AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},{"version":"2.0","vector":"AV:N/AC:L/Au:N/C:P/I:P/A:P"},{"version":"3.1","vector":"nonsense"}],
			  "fix":{"versions":["1.2","1.3"],"state":"fixed"}},"artifact":{"purl":"pkg:deb/ubuntu/p@1.1"}}]}`,
			tollgate.Scan{Format: "grype", Scanner: "grype", Findings: []tollgate.Finding{
				{ID: "CVE-2024-1", Package: "pkg:deb/ubuntu/p@1.1", FixedVersion: "1.2, 1.3", Severity: tollgate.SeverityMedium,
					CVSS: []tollgate.CVSSVector{vec(v31Critical98, "ubuntu")}}},
				Unidentified: 1}},
		{"sarif without tool version, rule by id when the index points elsewhere", "sarif",
			`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"scanner","rules":[{"id":"a"},{"id":"b","properties":{"security-severity":"4.2"}}]}},
			  "results":[{"ruleId":"b","ruleIndex":0,"kind":"fail"},{"ruleId":"b","kind":"pass"},{"ruleId":"a"},
			             {"ruleId":"b","message":{"text":"Package: p\nInstalled Version: \nSeverity: bogus"}},
			             {"rule":{"id":"c"},"properties":{"security-severity":0,"tags":["Security"]}}]}]}`,
			tollgate.Scan{Format: "sarif", Scanner: "scanner", Findings: []tollgate.Finding{
				{ID: "b", Severity: tollgate.SeverityMedium, Reported: sev(4.2)},
				{ID: "b", Package: "p", Severity: tollgate.SeverityMedium, Reported: sev(4.2)},
				{ID: "c", Severity: tollgate.SeverityNegligible, Reported: sev(0)}},
				Unidentified: 1}},
		{"cyclonedx 1.4, tools as an array, nested components, no affects", "cyclonedx",
			`{"bomFormat":"CycloneDX","specVersion":"1.4","metadata":{"tools":[{"vendor":"v","name":"scanner","version":"3"}]},
			  "components":[{"type":"library","name":"a","components":[{"type":"framework","name":"b"},{"type":"file","name":"c"}]}],
			  "vulnerabilities":[{"id":"CVE-2024-1","ratings":[{"severity":"info"}]}]}`,
			tollgate.Scan{Format: "cyclonedx", Scanner: "scanner 3", Findings: []tollgate.Finding{
				{ID: "CVE-2024-1", Severity: tollgate.SeverityNegligible}},
				Unidentified: 2}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scans.Parse(tt.format, []byte(tt.report))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got:\n%s\nwant:\n%s", dump(got), dump(tt.want))
			}
		})
	}
}

// fuzzParse is the property every parser keeps whatever its input: it
// does not panic, refuses with EInvalid, and any scan it accepts is of its
// format, with findings that have an id, a valid severity and VEX status,
// and v3/v4 vectors only.
//
// The seeds are the fixtures, kilobytes each: minimizing every new
// interesting input that size takes the fuzzer most of its time (it then
// reports almost no executions), so run them without minimization:
//
//	go test ./adapters/scans -run '^$' -fuzz '^FuzzTrivy$' -fuzztime 20s -fuzzminimizetime 0s
func fuzzParse(f *testing.F, format string, seeds ...string) {
	for _, name := range seeds {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(``))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, report []byte) {
		scan, err := scans.Parse(format, report)
		if err != nil {
			if tollgate.ErrorCode(err) != tollgate.EInvalid {
				t.Fatalf("error code %s: %v", tollgate.ErrorCode(err), err)
			}
			return
		}
		if scan.Format != format || scan.Findings == nil || scan.Unidentified < 0 {
			t.Fatalf("accepted scan: %+v", scan)
		}
		for i, finding := range scan.Findings {
			if finding.ID == "" {
				t.Fatalf("finding %d has no id: %+v", i, finding)
			}
			switch finding.Severity {
			case tollgate.SeverityCritical, tollgate.SeverityHigh, tollgate.SeverityMedium,
				tollgate.SeverityLow, tollgate.SeverityNegligible, tollgate.SeverityUnknown:
			default:
				t.Fatalf("finding %d has severity %q", i, finding.Severity)
			}
			switch finding.VEXStatus {
			case "", tollgate.VEXAffected, tollgate.VEXNotAffected, tollgate.VEXFixed, tollgate.VEXUnderInvestigation:
			default:
				t.Fatalf("finding %d has VEX status %q", i, finding.VEXStatus)
			}
			for _, v := range finding.CVSS {
				if !strings.HasPrefix(v.Vector, "CVSS:3.0/") && !strings.HasPrefix(v.Vector, "CVSS:3.1/") && !strings.HasPrefix(v.Vector, "CVSS:4.0/") {
					t.Fatalf("finding %d has vector %q", i, v.Vector)
				}
			}
		}
	})
}

func FuzzTrivy(f *testing.F) {
	fuzzParse(f, tollgate.FormatTrivy, "trivy-image.json", "trivy-empty.json", "grype-image.json")
}

func FuzzGrype(f *testing.F) {
	fuzzParse(f, tollgate.FormatGrype, "grype-image.json", "grype-empty.json", "trivy-image.json")
}

func FuzzSARIF(f *testing.F) {
	fuzzParse(f, tollgate.FormatSARIF, "sarif-trivy.json", "sarif-grype.json", "sarif-codeql.json", "sarif-empty.json")
}

func FuzzCycloneDX(f *testing.F) {
	fuzzParse(f, tollgate.FormatCycloneDX, "cyclonedx-1.6.json", "cyclonedx-vex-1.5.json", "cyclonedx-empty.json")
}
