package server

import (
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/tollgate/tollgate"
)

// listNotifications is GET /v1/notifications: the deliveries of the
// outbox, newest first, each with its attempts and last outcome. They are
// the server's record of what it sent, outside the ledger (as a job's
// state is): they say nothing of what was decided.
func (s *Server) listNotifications(c echo.Context) error {
	if s.cfg.Notifications == nil {
		return newError(http.StatusNotFound, tollgate.ENotFound, "notifications are not enabled on this server")
	}
	var (
		f   tollgate.DeliveryFilter
		err error
	)
	for name := range c.QueryParams() {
		switch v := c.QueryParam(name); name {
		case "state":
			if !slices.Contains(tollgate.DeliveryStates, tollgate.DeliveryState(v)) {
				return tollgate.Errorf(tollgate.EInvalid, "state must be one of %v", tollgate.DeliveryStates)
			}
			f.State = tollgate.DeliveryState(v)
		case "event":
			if !slices.Contains(tollgate.NotificationEvents, v) {
				return tollgate.Errorf(tollgate.EInvalid, "event must be one of %v", tollgate.NotificationEvents)
			}
			f.Event = v
		case "sink":
			if err := tollgate.CheckIdentifier("sink", v); err != nil {
				return err
			}
			f.Sink = v
		case "limit":
			if f.Limit, err = parseLimit(v); err != nil {
				return err
			}
		default:
			return tollgate.Errorf(tollgate.EInvalid, "unknown query parameter %q: filters are state, sink, event and limit", name)
		}
	}
	list, err := s.cfg.Notifications.Deliveries(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"notifications": list})
}
