package http

import (
	nethttp "net/http"
	"net/url"
	"strconv"

	"github.com/twinhub/twinhub"
)

func (s *Server) webhookRoutes() {
	if s.opts.Webhooks == nil {
		return
	}
	s.route("GET /v1/webhooks", s.handleListWebhooks)
	s.route("GET /v1/deliveries", s.handleListDeliveries)
	s.route("GET /v1/deliveries/{id}", s.handleGetDelivery)
	s.route("POST /v1/deliveries/{id}/retry", s.handleRetryDelivery)
}

// webhookInfo is a webhook as the API shows it: without its secret.
type webhookInfo struct {
	Name       string                           `json:"name"`
	URL        string                           `json:"url,omitempty"`
	Kinds      []string                         `json:"kinds"`
	Rules      []string                         `json:"rules"`
	Signed     bool                             `json:"signed"`
	Deliveries map[twinhub.DeliveryStatus]int64 `json:"deliveries"`
}

// handleListWebhooks serves GET /v1/webhooks: the active schema's webhooks
// and how many deliveries each has per status; the target "action", the
// URLs of webhook actions, is listed when it has deliveries.
func (s *Server) handleListWebhooks(w nethttp.ResponseWriter, r *nethttp.Request) error {
	counts, err := s.opts.Webhooks.store.DeliveryCounts()
	if err != nil {
		return err
	}
	tally := func(name string) map[twinhub.DeliveryStatus]int64 {
		m := map[twinhub.DeliveryStatus]int64{}
		for _, st := range twinhub.DeliveryStatuses {
			m[st] = counts[name][st]
		}
		return m
	}
	sc := s.e.Schema()
	out := struct {
		SchemaVersion int           `json:"schema_version"`
		Webhooks      []webhookInfo `json:"webhooks"`
	}{SchemaVersion: sc.Version, Webhooks: []webhookInfo{}}
	for _, wh := range sc.Webhooks {
		out.Webhooks = append(out.Webhooks, webhookInfo{Name: wh.Name, URL: redactURL(wh.URL), Kinds: orEmpty(wh.Kinds), Rules: orEmpty(wh.Rules),
			Signed: wh.Secret != "", Deliveries: tally(wh.Name)})
	}
	if counts[ActionTarget] != nil {
		out.Webhooks = append(out.Webhooks, webhookInfo{Name: ActionTarget, Kinds: []string{"webhook"}, Rules: []string{}, Deliveries: tally(ActionTarget)})
	}
	return s.writeJSON(w, r, nethttp.StatusOK, out)
}

func orEmpty(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

// redactURL hides the password of a URL's user information.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}

func deliveryOut(d twinhub.Delivery) twinhub.Delivery {
	d.URL = redactURL(d.URL)
	return d
}

// handleListDeliveries serves GET /v1/deliveries: the delivery log, oldest
// first, filtered by status, webhook and action, a page at a time.
// status=dead is the dead-letter list of webhooks.
func (s *Server) handleListDeliveries(w nethttp.ResponseWriter, r *nethttp.Request) error {
	q := r.URL.Query()
	status := twinhub.DeliveryStatus(q.Get("status"))
	if status != "" && !oneOf(status, twinhub.DeliveryStatuses) {
		return errInvalidParam("status", "%q is not a delivery status; use one of %s", status, joinNames(twinhub.DeliveryStatuses))
	}
	webhook := q.Get("webhook")
	var action uint64
	if v := q.Get("action"); v != "" {
		var err error
		if action, err = strconv.ParseUint(v, 10, 64); err != nil {
			return errInvalidParam("action", "%q is not an action id (a positive integer)", v)
		}
	}
	after, err := cursorParam(q.Get("cursor"))
	if err != nil {
		return err
	}
	limit, err := limitParam(q.Get("limit"))
	if err != nil {
		return err
	}
	out := struct {
		Deliveries []twinhub.Delivery `json:"deliveries"`
		NextCursor string             `json:"next_cursor,omitempty"`
	}{Deliveries: []twinhub.Delivery{}}
	err = s.opts.Webhooks.store.Deliveries(status, after, func(d twinhub.Delivery) bool {
		if (webhook != "" && d.Webhook != webhook) || (action != 0 && d.ActionID != action) {
			return true
		}
		if len(out.Deliveries) == limit {
			out.NextCursor = strconv.FormatUint(out.Deliveries[limit-1].ID, 10)
			return false
		}
		out.Deliveries = append(out.Deliveries, deliveryOut(d))
		return true
	})
	if err != nil {
		return err
	}
	return s.writeJSON(w, r, nethttp.StatusOK, out)
}

// handleGetDelivery serves GET /v1/deliveries/{id}: one delivery with its
// attempt log.
func (s *Server) handleGetDelivery(w nethttp.ResponseWriter, r *nethttp.Request) error {
	id, err := idParam(r, "a delivery")
	if err != nil {
		return err
	}
	d, err := s.opts.Webhooks.Delivery(id)
	if err != nil {
		return err
	}
	return s.writeJSON(w, r, nethttp.StatusOK, deliveryOut(d))
}

// handleRetryDelivery serves POST /v1/deliveries/{id}/retry: a dead
// delivery is attempted again at once, with MaxAttempts attempts.
func (s *Server) handleRetryDelivery(w nethttp.ResponseWriter, r *nethttp.Request) error {
	id, err := idParam(r, "a delivery")
	if err != nil {
		return err
	}
	d, err := s.opts.Webhooks.Retry(id)
	if err != nil {
		return err
	}
	return s.writeJSON(w, r, nethttp.StatusAccepted, deliveryOut(d))
}
