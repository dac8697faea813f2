package main

import (
	"context"
	"time"

	"github.com/tollgate/tollgate"
)

// The outbox of a store still connecting: adapters/notify's worker, and
// GET /v1/notifications, answer unavailable until it is connected.

var _ tollgate.Outbox = (*lateStore)(nil)

func (l *lateStore) FanOut(ctx context.Context, at time.Time, route func(string) []string, n int) (int, error) {
	s, err := keeps[tollgate.Outbox](l, "notifications")
	if err != nil {
		return 0, err
	}
	return s.FanOut(ctx, at, route, n)
}

func (l *lateStore) NoticeExpiring(ctx context.Context, at time.Time, within time.Duration) (int, error) {
	s, err := keeps[tollgate.Outbox](l, "notifications")
	if err != nil {
		return 0, err
	}
	return s.NoticeExpiring(ctx, at, within)
}

func (l *lateStore) ClaimDeliveries(ctx context.Context, owner string, at time.Time, lease time.Duration, n int) ([]tollgate.Delivery, error) {
	s, err := keeps[tollgate.Outbox](l, "notifications")
	if err != nil {
		return nil, err
	}
	return s.ClaimDeliveries(ctx, owner, at, lease, n)
}

func (l *lateStore) FinishAttempt(ctx context.Context, id, owner string, a tollgate.Attempt) (tollgate.Delivery, error) {
	s, err := keeps[tollgate.Outbox](l, "notifications")
	if err != nil {
		return tollgate.Delivery{}, err
	}
	return s.FinishAttempt(ctx, id, owner, a)
}

func (l *lateStore) Deliveries(ctx context.Context, f tollgate.DeliveryFilter) ([]tollgate.Delivery, error) {
	s, err := keeps[tollgate.Outbox](l, "notifications")
	if err != nil {
		return nil, err
	}
	return s.Deliveries(ctx, f)
}

func (l *lateStore) PendingDeliveries(ctx context.Context) (map[string]int, error) {
	s, err := keeps[tollgate.Outbox](l, "notifications")
	if err != nil {
		return nil, err
	}
	return s.PendingDeliveries(ctx)
}

func (l *lateStore) PruneNotifications(ctx context.Context, before time.Time) (int64, error) {
	s, err := keeps[tollgate.Outbox](l, "notifications")
	if err != nil {
		return 0, err
	}
	return s.PruneNotifications(ctx, before)
}
