package storekit

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tollgate/tollgate"
)

// CheckEPSS validates set before a store imports it: every CVE named once,
// every score a number in [0,1]. It returns the scores with upper-case CVE
// ids; set itself is not modified.
func CheckEPSS(set tollgate.EPSSSet) ([]tollgate.EPSSScore, error) {
	if set.ScoreDate.IsZero() {
		return nil, tollgate.Errorf(tollgate.EInvalid, "EPSS import: the set has no score date")
	}
	out := make([]tollgate.EPSSScore, len(set.Scores))
	seen := make(map[string]struct{}, len(set.Scores))
	for i, sc := range set.Scores {
		sc.CVE = strings.ToUpper(sc.CVE)
		switch {
		case !strings.HasPrefix(sc.CVE, "CVE-"):
			return nil, tollgate.Errorf(tollgate.EInvalid, "EPSS import: score %d: %q is not a CVE id", i+1, sc.CVE)
		case !unit(sc.EPSS), !unit(sc.Percentile):
			return nil, tollgate.Errorf(tollgate.EInvalid, "EPSS import: %s: EPSS %v and percentile %v must be in [0,1]", sc.CVE, sc.EPSS, sc.Percentile)
		}
		if _, dup := seen[sc.CVE]; dup {
			return nil, tollgate.Errorf(tollgate.EInvalid, "EPSS import: %s is scored twice", sc.CVE)
		}
		seen[sc.CVE] = struct{}{}
		out[i] = sc
	}
	return out, nil
}

func unit(f float64) bool { return !math.IsNaN(f) && f >= 0 && f <= 1 }

// epssQuery is the distinct upper-case ids of cves to look up.
func epssQuery(cves []string) []string {
	out := make([]string, 0, len(cves))
	seen := make(map[string]struct{}, len(cves))
	for _, c := range cves {
		c = strings.ToUpper(c)
		if _, dup := seen[c]; dup || c == "" {
			continue
		}
		seen[c] = struct{}{}
		out = append(out, c)
	}
	return out
}

// EPSSImportInfo is the statement, with `?` placeholders, that records the
// import of set with n scores in epss_import, and its arguments.
func EPSSImportInfo(set tollgate.EPSSSet, n int) (string, []any) {
	return `INSERT INTO epss_import (id, model_version, score_date, count, imported_at)
	VALUES (1, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET model_version = excluded.model_version, score_date = excluded.score_date,
		count = excluded.count, imported_at = excluded.imported_at`,
		[]any{set.ModelVersion, UnixNano(set.ScoreDate), n, time.Now().UnixNano()}
}

// readEPSS reads the info and the scores in one statement, hence one
// snapshot: both are of the same import. No import yet: no row. The CVEs
// go as one JSON array, however many (SQLite caps the placeholders of a
// statement), which the dialect's EPSSList turns into rows.
const readEPSS = `SELECT i.model_version, i.score_date, i.count, e.cve, e.epss, e.percentile
	FROM epss_import i LEFT JOIN epss e ON e.cve IN (%s)
	WHERE i.id = 1`

// EPSS implements tollgate.EPSSStore.
func (c *Core) EPSS(ctx context.Context, cves []string) (map[string]tollgate.EPSSScore, tollgate.EPSSInfo, error) {
	ids, err := json.Marshal(epssQuery(cves))
	if err != nil {
		return nil, tollgate.EPSSInfo{}, err
	}
	var (
		info   tollgate.EPSSInfo
		scores = map[string]tollgate.EPSSScore{}
	)
	err = c.read(ctx, "read EPSS", func(ctx context.Context, q Querier) error {
		rows, err := q.Query(ctx, fmt.Sprintf(readEPSS, c.d.EPSSList), string(ids))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				scoreDate        int64
				cve              *string
				epss, percentile *float64
			)
			if err := rows.Scan(&info.ModelVersion, &scoreDate, &info.Count, &cve, &epss, &percentile); err != nil {
				return err
			}
			info.ScoreDate = time.Unix(0, scoreDate).UTC()
			if cve != nil && epss != nil && percentile != nil {
				scores[*cve] = tollgate.EPSSScore{CVE: *cve, EPSS: *epss, Percentile: *percentile}
			}
		}
		rows.Close()
		return rows.Err()
	})
	if err != nil {
		return nil, tollgate.EPSSInfo{}, err
	}
	return scores, info, nil
}
