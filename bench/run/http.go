package run

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twinhub/twinhub/engine"
	twinhttp "github.com/twinhub/twinhub/http"
	"github.com/twinhub/twinhub/store/pebble"
)

// runHTTP drives a server over HTTP: the one at o.URL, or one started here.
func runHTTP(ctx context.Context, o Options, batches []batch) (rep Report, err error) {
	base := strings.TrimRight(o.URL, "/")
	if base == "" {
		srv, err := startServer(o)
		if err != nil {
			return Report{}, err
		}
		defer func() { err = errors.Join(err, srv.close()) }()
		base = srv.url
	}
	// One idle connection per goroutine, so that none is ever redialled.
	conns := o.Connections + o.Readers
	client := &http.Client{Transport: &http.Transport{
		Proxy:               nil, // the target is named explicitly; a proxy would be measured too
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
	defer client.CloseIdleConnections()
	if !o.Stream {
		return drive(ctx, o, batches, httpTarget{client: client, base: base}, nil)
	}
	w := newStreamWatch(batches)
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	if err := w.follow(streamCtx, &http.Client{}, base); err != nil {
		return Report{}, err
	}
	rep, err = drive(ctx, o, batches, httpTarget{client: client, base: base}, w.ack)
	if err != nil {
		return rep, err
	}
	// Let the outputs of the last batches arrive.
	time.Sleep(500 * time.Millisecond)
	stopStream()
	<-w.done
	return rep, w.report(&rep)
}

// httpTarget drives a server through its REST API.
type httpTarget struct {
	client *http.Client
	base   string
}

// ingestResponse is the part of POST /v1/events' answer the driver needs.
type ingestResponse struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
}

func (t httpTarget) ingester() func(context.Context, *batch) (counts, error) {
	return func(ctx context.Context, b *batch) (counts, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.base+"/v1/events", bytes.NewReader(b.body))
		if err != nil {
			return counts{}, err
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := t.client.Do(req)
		if err != nil {
			return counts{}, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return counts{}, fmt.Errorf("POST /v1/events: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return counts{}, fmt.Errorf("POST /v1/events: %s: %s", resp.Status, bytes.TrimSpace(body))
		}
		var r ingestResponse
		if err := json.Unmarshal(body, &r); err != nil {
			return counts{}, fmt.Errorf("POST /v1/events: decode answer: %w", err)
		}
		return counts{r.Accepted, r.Duplicates, r.Rejected}, nil
	}
}

func (t httpTarget) reader() func(context.Context, string) (bool, error) {
	return func(ctx context.Context, key string) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/v1/twins/"+url.PathEscape(key), nil)
		if err != nil {
			return false, err
		}
		resp, err := t.client.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		// Reading the whole twin is part of the read.
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return false, err
		}
		switch resp.StatusCode {
		case http.StatusOK:
			return true, nil
		case http.StatusNotFound:
			return false, nil
		}
		return false, fmt.Errorf("GET /v1/twins/%s: %s", key, resp.Status)
	}
}

// server is a Twinhub server started in process for a run.
type server struct {
	url   string
	close func() error
}

// startServer starts store, engine and HTTP server on a loopback port, wired
// as `twinhub serve` wires them, with its data in o.DataDir.
func startServer(o Options) (*server, error) {
	dir, cleanup, err := dataDir(o.DataDir)
	if err != nil {
		return nil, err
	}
	db, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		cleanup()
		return nil, err
	}
	metrics := twinhttp.NewMetrics(prometheus.NewRegistry())
	e, err := engine.Open(engine.Options{Store: db, Schema: o.Schema, Logger: o.Logger, OnApply: metrics.ObserveApply, OnSync: metrics.ObserveSync})
	if err != nil {
		err = errors.Join(err, db.Close())
		cleanup()
		return nil, err
	}
	metrics.Watch(e)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		err = errors.Join(err, e.Close(), db.Close())
		cleanup()
		return nil, err
	}
	srv := twinhttp.NewServer(twinhttp.Options{Engine: e, Logger: o.Logger, Metrics: metrics, Source: "bench"})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return &server{
		url: "http://" + ln.Addr().String(),
		close: func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := srv.Shutdown(ctx)
			if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
				err = errors.Join(err, serr)
			}
			err = errors.Join(err, e.Close(), db.Close())
			cleanup()
			return err
		},
	}, nil
}
