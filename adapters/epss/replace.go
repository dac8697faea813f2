package epss

import (
	"time"

	"github.com/tollgate/tollgate"
)

// MinShare is the smallest share of the set in use, in CVEs, that a new set
// may have without --force: FIRST scores every published CVE, so a day's
// file has about as many rows as the day before, and more as CVEs are
// published. A plain CSV cut exactly at the end of a line passes every
// check of Parse; it shows as a file with fewer rows.
const MinShare = 0.95

// CheckReplace says whether next may replace current, the set in use (zero
// when none was imported): it is refused, as tollgate.EConflict, when its
// score_date is older than current's — a mistaken or replayed file would set
// the gate back to old scores — or when it has fewer than MinShare of
// current's CVEs, the sign of a file cut short. force imports it anyway,
// for an operator who means to. A set of the same day is accepted: importing
// a day again repairs it.
func CheckReplace(current tollgate.EPSSInfo, next *Set, force bool) error {
	if force || current.ScoreDate.IsZero() {
		return nil
	}
	if next.ScoreDate.Before(current.ScoreDate) {
		return tollgate.Errorf(tollgate.EConflict,
			"the EPSS file's scores are of %s, older than those in use (%s): import the newer file, or force to go back to older scores",
			next.ScoreDate.UTC().Format(time.RFC3339), current.ScoreDate.UTC().Format(time.RFC3339))
	}
	if float64(len(next.Scores)) < MinShare*float64(current.Count) {
		return tollgate.Errorf(tollgate.EConflict,
			"the EPSS file has %d scores, fewer than %.0f%% of the %d in use: it may have been cut short; download it again, or force to import it anyway",
			len(next.Scores), MinShare*100, current.Count)
	}
	return nil
}
