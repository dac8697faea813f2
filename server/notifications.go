package server

import (
	"net/http"

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
			if f.State, err = oneOf("state", v, tollgate.DeliveryStates); err != nil {
				return err
			}
		case "event":
			if f.Event, err = oneOf("event", v, tollgate.NotificationEvents); err != nil {
				return err
			}
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
