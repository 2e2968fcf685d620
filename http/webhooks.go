package http

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	nethttp "net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/schema"
)

// Defaults for DispatcherOptions' zero values.
const (
	DefaultWebhookTimeout     = 10 * time.Second
	DefaultWebhookBackoff     = time.Second
	DefaultWebhookFactor      = 2.0
	DefaultWebhookMaxBackoff  = 5 * time.Minute
	DefaultWebhookAttempts    = 10
	DefaultWebhookConcurrency = 8
	// DefaultDeliveryRetention is how long delivered deliveries stay in
	// the delivery log, as long as the output log keeps outputs.
	DefaultDeliveryRetention = 7 * 24 * time.Hour
)

// ActionTarget is the webhook name of deliveries to the URL of a webhook
// action itself, rather than to a webhook of the schema. They are not
// signed: no secret belongs to them. The schema reserves the name.
const ActionTarget = schema.ActionTarget

const (
	// followPage is how many outputs the dispatcher reads at a time.
	followPage = 256
	// maxAttemptLog bounds a delivery's attempt log; older attempts are
	// dropped, Attempts still counts them.
	maxAttemptLog = 50
	// maxErrorBody is how much of a failed answer's body an attempt keeps.
	maxErrorBody = 256
)

// DeliveryStore keeps the webhook delivery log. *pebble.DB implements it.
type DeliveryStore interface {
	// DeliveryCursor returns the output id up to which deliveries were
	// derived, 0 when none were.
	DeliveryCursor() (uint64, error)
	// AddDeliveries gives ds their IDs and writes them with the cursor in
	// one batch.
	AddDeliveries(cursor uint64, ds []twinhub.Delivery) error
	// UpdateDelivery replaces the delivery with d.ID.
	UpdateDelivery(d twinhub.Delivery) error
	// Delivery returns the delivery with id.
	Delivery(id uint64) (twinhub.Delivery, bool, error)
	// Deliveries calls fn for deliveries with ID > after in ID order, only
	// those in status when it is not empty, until fn returns false.
	Deliveries(status twinhub.DeliveryStatus, after uint64, fn func(twinhub.Delivery) bool) error
	// DeliveryCounts counts deliveries by webhook and status.
	DeliveryCounts() (map[string]map[twinhub.DeliveryStatus]int64, error)
	// PruneDeliveries deletes the deliveries delivered before before;
	// pending and dead ones stay.
	PruneDeliveries(before time.Time) (int, error)
}

// DispatcherOptions configure a Dispatcher. Zero values mean the
// documented defaults.
type DispatcherOptions struct {
	Engine *engine.Engine // required
	Store  DeliveryStore  // required
	// Logger receives failed deliveries; default slog.Default().
	Logger *slog.Logger
	// Metrics counts deliveries and actions; nil means a private registry.
	Metrics *Metrics
	// Client sends the requests; default a client that does not follow
	// redirects (a 3xx answer is a failed attempt).
	Client *nethttp.Client
	// Timeout bounds one attempt; default DefaultWebhookTimeout.
	Timeout time.Duration
	// BackoffBase is the wait after the first failed attempt, multiplied by
	// BackoffFactor after each further one, up to BackoffMax; each wait is
	// jittered down by up to half. Defaults DefaultWebhookBackoff,
	// DefaultWebhookFactor and DefaultWebhookMaxBackoff.
	BackoffBase   time.Duration
	BackoffFactor float64
	BackoffMax    time.Duration
	// MaxAttempts is how many attempts a delivery gets before it is dead;
	// default DefaultWebhookAttempts.
	MaxAttempts int
	// Concurrency bounds the attempts in flight; default
	// DefaultWebhookConcurrency.
	Concurrency int
	// Now is the clock of delivery records and signatures; default
	// time.Now.
	Now func() time.Time
	// Retention is how long a delivered delivery stays in the log; the
	// dispatcher prunes older ones every hour. Default
	// DefaultDeliveryRetention; dead and pending deliveries stay.
	Retention time.Duration
}

// Dispatcher sends actions to webhooks. It follows the engine's output log
// from a cursor kept in its store: for every action that is fired, or
// approved after waiting, it records one delivery per matching target (the
// schema's webhooks whose kinds and rules match, and the URL of a webhook
// action) in the same write that moves the cursor, then POSTs the action to
// each, retrying with backoff until a 2xx answer or MaxAttempts. Pending,
// rejected and expired actions are not sent.
//
// Delivery is at least once: an attempt whose answer was lost is made
// again. Every attempt carries the action's key as Idempotency-Key, so a
// receiver that deduplicates on it sees each action once.
//
// A Dispatcher is safe for concurrent use. Start starts it; Close stops it
// and must come before the engine and the store close.
type Dispatcher struct {
	opts    DispatcherOptions
	e       *engine.Engine
	store   DeliveryStore
	log     *slog.Logger
	metrics *Metrics

	mu     sync.Mutex
	queue  deliveryQueue // pending deliveries not in flight, soonest first
	wake   chan struct{}
	sem    chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	state  int // 0 new, 1 started, 2 closed
}

// NewDispatcher returns a Dispatcher; Start starts it. It panics without
// an engine or a store.
func NewDispatcher(opts DispatcherOptions) *Dispatcher {
	if opts.Engine == nil || opts.Store == nil {
		panic("http: NewDispatcher without an engine or a store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Client == nil {
		opts.Client = &nethttp.Client{CheckRedirect: func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse }}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultWebhookTimeout
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = DefaultWebhookBackoff
	}
	if opts.BackoffFactor < 1 {
		opts.BackoffFactor = DefaultWebhookFactor
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultWebhookMaxBackoff
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultWebhookAttempts
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultWebhookConcurrency
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultDeliveryRetention
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Dispatcher{opts: opts, e: opts.Engine, store: opts.Store, log: opts.Logger, metrics: opts.Metrics,
		wake: make(chan struct{}, 1), sem: make(chan struct{}, opts.Concurrency), ctx: ctx, cancel: cancel}
}

// Start resumes the pending deliveries of the store and starts following
// the output log from the stored cursor. It returns once both run.
func (d *Dispatcher) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != 0 {
		return errors.New("webhook dispatcher started twice")
	}
	cursor, err := d.store.DeliveryCursor()
	if err != nil {
		return fmt.Errorf("read webhook cursor: %w", err)
	}
	err = d.store.Deliveries(twinhub.DeliveryPending, 0, func(del twinhub.Delivery) bool {
		heap.Push(&d.queue, queued{id: del.ID, next: del.NextAttempt})
		return true
	})
	if err != nil {
		return fmt.Errorf("resume pending deliveries: %w", err)
	}
	d.state = 1
	d.wg.Add(3)
	go d.follow(cursor)
	go d.schedule()
	go d.prune()
	return nil
}

// prune deletes delivered deliveries older than the retention, at start
// and every hour, until Close.
func (d *Dispatcher) prune() {
	defer d.wg.Done()
	for {
		if n, err := d.store.PruneDeliveries(d.opts.Now().Add(-d.opts.Retention)); err != nil {
			d.log.Error("webhooks: prune delivered deliveries", slog.Any("err", err))
		} else if n > 0 {
			d.log.Info("webhooks: pruned delivered deliveries", slog.Int("deliveries", n))
		}
		select {
		case <-time.After(time.Hour):
		case <-d.ctx.Done():
			return
		}
	}
}

// Close stops following, cancels the attempts in flight (they stay
// pending, to be made again after a restart) and waits for its goroutines
// to exit.
func (d *Dispatcher) Close() error {
	d.mu.Lock()
	d.state = 2
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	return nil
}

// follow derives deliveries from the output log after cursor, until Close.
func (d *Dispatcher) follow(cursor uint64) {
	defer d.wg.Done()
	retry := d.opts.BackoffBase
	for d.ctx.Err() == nil {
		notify := d.e.OutputNotify()
		outs, err := d.e.ReadOutputs(cursor, followPage)
		if err == nil && len(outs) > 0 {
			next := outs[len(outs)-1].ID
			ds := d.deliveriesFor(outs)
			if err = d.store.AddDeliveries(next, ds); err == nil {
				cursor = next
				retry = d.opts.BackoffBase
				d.count(outs)
				d.mu.Lock()
				for _, del := range ds {
					heap.Push(&d.queue, queued{id: del.ID, next: del.NextAttempt})
				}
				d.mu.Unlock()
				d.poke()
				continue
			}
		}
		if err != nil {
			d.log.Error("webhooks: follow the output log", slog.Uint64("after", cursor), slog.Any("err", err))
			select {
			case <-time.After(retry):
			case <-d.ctx.Done():
			}
			retry = min(2*retry, d.opts.BackoffMax)
			continue
		}
		select {
		case <-notify:
		case <-d.ctx.Done():
		}
	}
}

// count counts the actions of outs in twinhub_actions_total.
func (d *Dispatcher) count(outs []twinhub.Output) {
	for i := range outs {
		if a := outs[i].Action; a != nil {
			d.metrics.actions.WithLabelValues(a.Kind, string(a.Status)).Inc()
		}
	}
}

// deliveriesFor returns the deliveries outs ask for, to the targets of the
// active schema.
func (d *Dispatcher) deliveriesFor(outs []twinhub.Output) []twinhub.Delivery {
	sc := d.e.Schema()
	now := d.opts.Now().UTC()
	var ds []twinhub.Delivery
	for i := range outs {
		o := &outs[i]
		a := o.Action
		if a == nil {
			continue
		}
		fired := o.Kind == twinhub.ActionFired && a.Status.Deliverable()
		approved := o.Kind == twinhub.ActionUpdated && a.Status == twinhub.ActionApproved
		if !fired && !approved {
			continue
		}
		add := func(name, url string) {
			ds = append(ds, twinhub.Delivery{ActionID: a.ID, ActionKey: a.Key, Webhook: name, URL: url,
				Status: twinhub.DeliveryPending, NextAttempt: now, Created: now, Log: []twinhub.Attempt{}})
		}
		for _, w := range sc.Webhooks {
			if (len(w.Kinds) == 0 || slices.Contains(w.Kinds, a.Kind)) && (len(w.Rules) == 0 || slices.Contains(w.Rules, a.Rule)) {
				add(w.Name, w.URL)
			}
		}
		if a.Kind == schema.ActionWebhook && a.URL != "" {
			add(ActionTarget, a.URL)
		}
	}
	return ds
}

// poke wakes the scheduler.
func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// schedule starts attempts as they fall due, at most Concurrency at once,
// until Close.
func (d *Dispatcher) schedule() {
	defer d.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		now := d.opts.Now()
		var due []uint64
		for len(d.queue) > 0 && !d.queue[0].next.After(now) {
			due = append(due, heap.Pop(&d.queue).(queued).id)
		}
		wait := time.Duration(-1)
		if len(d.queue) > 0 {
			wait = d.queue[0].next.Sub(now)
		}
		d.mu.Unlock()
		for _, id := range due {
			select {
			case d.sem <- struct{}{}:
			case <-d.ctx.Done():
				return // the rest stay pending in the store
			}
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				defer func() { <-d.sem }()
				d.attempt(id)
			}()
		}
		if len(due) > 0 {
			continue
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-d.wake:
		case <-tc:
		case <-d.ctx.Done():
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// attempt makes one attempt at delivery id and records it.
func (d *Dispatcher) attempt(id uint64) {
	del, ok, err := d.store.Delivery(id)
	if err != nil {
		d.log.Error("webhooks: read delivery", slog.Uint64("delivery", id), slog.Any("err", err))
		return
	}
	if !ok || del.Status != twinhub.DeliveryPending {
		return
	}
	start := d.opts.Now().UTC()
	status, failure := d.post(&del, start)
	if failure != "" && d.ctx.Err() != nil {
		return // cut short by Close: not an attempt; it stays pending
	}
	at := twinhub.Attempt{At: start, Status: status, Error: failure, Duration: d.opts.Now().Sub(start)}
	del.Log = append(del.Log, at)
	if len(del.Log) > maxAttemptLog {
		del.Log = slices.Delete(del.Log, 0, len(del.Log)-maxAttemptLog)
	}
	del.Attempts++
	del.LastStatus, del.LastError = status, failure
	outcome := "delivered"
	switch {
	case failure == "":
		del.Status, del.Delivered, del.NextAttempt = twinhub.DeliveryDelivered, start.Add(at.Duration), time.Time{}
	case del.Attempts >= d.opts.MaxAttempts:
		del.Status, del.NextAttempt, outcome = twinhub.DeliveryDead, time.Time{}, "dead"
		d.log.Warn("webhooks: delivery is dead", slog.Uint64("delivery", del.ID), slog.String("webhook", del.Webhook),
			slog.Uint64("action", del.ActionID), slog.Int("attempts", del.Attempts), slog.String("error", failure))
	default:
		del.NextAttempt, outcome = start.Add(at.Duration+d.backoff(del.Attempts)), "failed"
	}
	d.metrics.deliveries.WithLabelValues(del.Webhook, outcome).Inc()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.store.UpdateDelivery(del); err != nil {
		// It stays pending as stored: the attempt is made again.
		d.log.Error("webhooks: record attempt", slog.Uint64("delivery", del.ID), slog.Any("err", err))
		del.NextAttempt = d.opts.Now().Add(d.backoff(del.Attempts))
		del.Status = twinhub.DeliveryPending
	}
	if del.Status == twinhub.DeliveryPending && d.state == 1 {
		heap.Push(&d.queue, queued{id: del.ID, next: del.NextAttempt})
		d.poke()
	}
}

// backoff returns the wait after the n-th failed attempt.
func (d *Dispatcher) backoff(n int) time.Duration {
	f := float64(d.opts.BackoffBase) * math.Pow(d.opts.BackoffFactor, float64(n-1))
	wait := time.Duration(min(f, float64(d.opts.BackoffMax)))
	return wait/2 + rand.N(wait/2+1)
}

// post sends the action of del, signed when its webhook has a secret. It
// returns the answer's status (0 without one) and why the attempt failed,
// "" when it succeeded.
func (d *Dispatcher) post(del *twinhub.Delivery, now time.Time) (int, string) {
	a, err := d.e.Action(del.ActionID)
	if err != nil {
		return 0, fmt.Sprintf("read action %d: %v", del.ActionID, twinhub.ErrorMessage(err))
	}
	secret := ""
	if del.Webhook != ActionTarget {
		sc := d.e.Schema()
		i := slices.IndexFunc(sc.Webhooks, func(w *schema.Webhook) bool { return w.Name == del.Webhook })
		if i < 0 {
			return 0, fmt.Sprintf("webhook %q is not in schema version %d", del.Webhook, sc.Version)
		}
		secret = sc.Webhooks[i].Secret
	}
	body, err := json.Marshal(a)
	if err != nil {
		return 0, fmt.Sprintf("encode action %d: %v", del.ActionID, err)
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.opts.Timeout)
	defer cancel()
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodPost, del.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Sprintf("request: %v", err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "twinhub-webhooks")
	h.Set("Idempotency-Key", a.Key)
	h.Set("Twinhub-Delivery", strconv.FormatUint(del.ID, 10))
	h.Set("Twinhub-Timestamp", ts)
	if secret != "" {
		h.Set("Twinhub-Signature", Signature(secret, ts, body))
	}
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Sprintf("no answer within %s", d.opts.Timeout)
		}
		return 0, err.Error()
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, ""
	}
	msg := resp.Status
	if s := bytes.TrimSpace(bytes.ToValidUTF8(snippet, []byte("\uFFFD"))); len(s) > 0 {
		msg += ": " + string(s)
	}
	return resp.StatusCode, msg
}

// Signature returns the Twinhub-Signature header of body sent at unix time
// timestamp (as the Twinhub-Timestamp header has it) to a webhook with
// secret: "sha256=" and the hex HMAC-SHA256 of timestamp + "." + body.
func Signature(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Retry sends dead delivery id again: it goes back to pending with its
// attempts reset, and is attempted at once. Retrying a delivery that is not
// dead is a conflict.
func (d *Dispatcher) Retry(id uint64) (twinhub.Delivery, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	del, err := d.Delivery(id)
	if err != nil {
		return del, err
	}
	if del.Status != twinhub.DeliveryDead {
		return del, twinhub.Errorf(twinhub.ECONFLICT, "delivery %d is %s; only dead deliveries are retried by hand", id, del.Status)
	}
	if d.state != 1 {
		return del, twinhub.Errorf(twinhub.EUNAVAILABLE, "the webhook dispatcher is not running")
	}
	del.Status, del.Attempts, del.NextAttempt = twinhub.DeliveryPending, 0, d.opts.Now().UTC()
	if err := d.store.UpdateDelivery(del); err != nil {
		return del, err
	}
	heap.Push(&d.queue, queued{id: del.ID, next: del.NextAttempt})
	d.poke()
	return del, nil
}

// Delivery returns the delivery with id.
func (d *Dispatcher) Delivery(id uint64) (twinhub.Delivery, error) {
	del, ok, err := d.store.Delivery(id)
	if err != nil {
		return del, err
	}
	if !ok {
		return del, twinhub.Errorf(twinhub.ENOTFOUND, "no delivery with id %d", id)
	}
	return del, nil
}

// queued is a pending delivery waiting for its next attempt.
type queued struct {
	id   uint64
	next time.Time
}

// deliveryQueue is a min-heap of queued deliveries by next attempt.
type deliveryQueue []queued

func (q deliveryQueue) Len() int { return len(q) }
func (q deliveryQueue) Less(i, j int) bool {
	if q[i].next.Equal(q[j].next) {
		return q[i].id < q[j].id
	}
	return q[i].next.Before(q[j].next)
}
func (q deliveryQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *deliveryQueue) Push(x any)   { *q = append(*q, x.(queued)) }
func (q *deliveryQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
