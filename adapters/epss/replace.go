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

// MaxAhead is how far past the importer's clock a score_date may be: FIRST
// dates a file by its UTC day, which has begun in some time zones first.
const MaxAhead = 24 * time.Hour

// CheckReplace says whether next may replace current, the set in use (zero
// when none was imported): it is refused, as tollgate.EConflict, when its
// score_date is older than current's — a mistaken or replayed file would set
// the gate back to old scores — or when it has fewer than MinShare of
// current's CVEs, the sign of a file cut short. force imports it anyway,
// for an operator who means to. A set of the same day is accepted: importing
// a day again repairs it.
//
// A score_date more than MaxAhead after now is refused too, even as the first
// import: such a file is not a day FIRST published, it would pass for fresh
// scores for years, and every real file after it would be "older" and need
// force.
func CheckReplace(current tollgate.EPSSInfo, next *Set, force bool, now time.Time) error {
	if force {
		return nil
	}
	if next.ScoreDate.After(now.Add(MaxAhead)) {
		return tollgate.Errorf(tollgate.EConflict,
			"the EPSS file's score_date %s is in the future (now is %s): check the file and this machine's clock, or force to import it anyway",
			next.ScoreDate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if current.ScoreDate.IsZero() {
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
