package storekit

import "testing"

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT scan FROM scans WHERE id = ?`, `SELECT scan FROM scans WHERE id = $1`},
		{`UPDATE t SET a = ? WHERE b = ? AND c <= ?`, `UPDATE t SET a = $1 WHERE b = $2 AND c <= $3`},
		{`INSERT INTO t (a, b) VALUES (?,?)`, `INSERT INTO t (a, b) VALUES ($1,$2)`},
		{`SELECT '?' || ? FROM t`, `SELECT '?' || $1 FROM t`},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{`SELECT "odd?name" FROM t WHERE a = ?`, `SELECT "odd?name" FROM t WHERE a = $1`},
		{`SELECT data ?? 'key' FROM t WHERE id = ?`, `SELECT data ? 'key' FROM t WHERE id = $1`},
		{"SELECT a -- why?\nFROM t WHERE b = ?", "SELECT a -- why?\nFROM t WHERE b = $1"},
		{`SELECT a - ? FROM t`, `SELECT a - $1 FROM t`},
		{`SELECT 'unterminated ?`, `SELECT 'unterminated ?`},
		{`SELECT 1 -- trailing ?`, `SELECT 1 -- trailing ?`},
		{`? ? ? ? ? ? ? ? ? ? ?`, `$1 $2 $3 $4 $5 $6 $7 $8 $9 $10 $11`},
	} {
		if got := Rebind(tc.in); got != tc.want {
			t.Errorf("Rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
