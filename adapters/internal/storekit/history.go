package storekit

import (
	"context"
	"errors"
	"strings"

	"github.com/tollgate/tollgate"
)

// Decision implements tollgate.DecisionStore's Decision: one record by
// decision ID, served only if its row is the record's (ServedRecord).
func (c *Core) Decision(ctx context.Context, id string) (tollgate.Record, error) {
	var data []byte
	err := c.read(ctx, "read decision "+id, func(ctx context.Context, q Querier) error {
		err := q.QueryRow(ctx, `SELECT record FROM decisions WHERE id = ?`, id).Scan(&data)
		if errors.Is(err, ErrNoRows) {
			return tollgate.Errorf(tollgate.ENotFound, "decision %q not found", id)
		}
		return err
	})
	if err != nil {
		return tollgate.Record{}, err
	}
	return ServedRecord(id, data, tollgate.DecisionFilter{})
}

// Decisions implements tollgate.DecisionStore's Decisions. Pages are cut by
// decision ID (keyset pagination): a page is the same whether or not
// decisions were recorded since the previous one, and costs the same
// however deep it is.
func (c *Core) Decisions(ctx context.Context, f tollgate.DecisionFilter) (tollgate.DecisionPage, error) {
	limit := PageSize(f.Limit)
	query, args, err := ListQuery(f, limit)
	if err != nil {
		return tollgate.DecisionPage{}, err
	}
	page := tollgate.DecisionPage{Records: make([]tollgate.Record, 0, min(limit, 64))}
	err = c.read(ctx, "list decisions", func(ctx context.Context, q Querier) error {
		rows, err := q.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		var lastID string
		for rows.Next() {
			var (
				id   string
				data []byte
			)
			if err := rows.Scan(&id, &data); err != nil {
				return err
			}
			if len(page.Records) == limit {
				page.NextCursor = EncodeCursor(lastID)
				break
			}
			rec, err := ServedRecord(id, data, f)
			if err != nil {
				return err
			}
			page.Records = append(page.Records, rec)
			lastID = id
		}
		rows.Close()
		return rows.Err()
	})
	if err != nil {
		return tollgate.DecisionPage{}, err
	}
	return page, nil
}

// ListQuery is the SQL of one page of f, with `?` placeholders: limit+1
// rows, the extra one telling whether there is a next page. The indexes
// that serve it are described in migrations/sqlite/00001_decisions.sql;
// each store's TestQueriesUseIndexes checks its plans.
func ListQuery(f tollgate.DecisionFilter, limit int) (string, []any, error) {
	var (
		where []string
		args  []any
	)
	for _, c := range []struct {
		column, value string
	}{
		{"project", f.Project},
		{"pipeline", f.Pipeline},
		{"branch", f.Branch},
		{"status", string(f.Status)},
	} {
		if c.value != "" {
			where = append(where, c.column+" = ?")
			args = append(args, c.value)
		}
	}
	if !f.Since.IsZero() {
		where = append(where, "evaluated_at >= ?")
		args = append(args, UnixNano(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "evaluated_at < ?")
		args = append(args, UnixNano(f.Until))
	}
	if f.Cursor != "" {
		after, err := DecodeCursor(f.Cursor)
		if err != nil {
			return "", nil, err
		}
		where = append(where, "id < ?")
		args = append(args, after)
	}
	query := "SELECT id, record FROM decisions"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit+1)
	return query, args, nil
}
