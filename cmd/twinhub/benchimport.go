package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/twinhub/twinhub/bench/workload"
)

func newBenchImportCmd(e env) *cobra.Command {
	var (
		wf          workloadFlags
		target      string
		single      int
		connections int
		dataDir     string
	)
	c := &cobra.Command{
		Use:   "import",
		Short: "Measure importing a CSV file through a source mapping",
		Long: `Import writes --events order lines as CSV (the shape of a shop's export, see
bench/workload.WriteOrders) and imports them through the shop_orders source
mapping into a fresh engine, reporting records/s end to end (read, map,
validate, archive durably, apply).

--target inprocess (default) imports with the engine in this process; http
starts a server in this process and uploads the file to
POST /v1/sources/shop_orders/records as one streaming request (the bulk
path). With --single N, it then also posts N further records one request
each over --connections connections and reports both rates and their ratio.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			opts, err := wf.options()
			if err != nil {
				return err
			}
			if dataDir == "" {
				if dataDir, err = os.MkdirTemp("", "twinhub-bench-import-"); err != nil {
					return err
				}
				defer os.RemoveAll(dataDir)
			}
			file := filepath.Join(dataDir, "orders.csv")
			f, err := os.Create(file)
			if err != nil {
				return err
			}
			size, err := workload.WriteOrders(f, opts, 1)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.Stdout, "workload: %s order lines over %s customers, %s of CSV\n", group(int64(opts.Events)), group(int64(opts.Customers)), humanSize(size))
			m := &Main{DataDir: filepath.Join(dataDir, "store"), Listen: "127.0.0.1:0"}
			if err := m.Open(c.Context()); err != nil {
				return err
			}
			defer m.Close()
			switch target {
			case "inprocess":
				return benchImportInProcess(c.Context(), e, m, file, opts.Events)
			case "http":
				return benchImportHTTP(c.Context(), e, m, file, opts, single, connections)
			default:
				return problemf("--target %q: use inprocess or http", target)
			}
		},
	}
	wf.add(c, false)
	fs := c.Flags()
	fs.StringVar(&target, "target", "inprocess", "inprocess or http")
	fs.IntVar(&single, "single", 0, "with --target http, also post this many records one request each")
	fs.IntVar(&connections, "connections", 8, "concurrent requests for --single")
	fs.StringVar(&dataDir, "dir", "", "directory for the CSV file and the store (default: a temporary one, removed afterwards)")
	return c
}

func benchImportInProcess(ctx context.Context, e env, m *Main, file string, records int) error {
	mp, err := m.sources.Put("shop_orders", []byte(workload.OrdersMapping))
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	t0 := time.Now()
	sum, err := m.importer.Import(ctx, mp, f, "orders.csv", nil)
	took := time.Since(t0)
	if err != nil {
		return err
	}
	if sum.Events != records || sum.Rejected != 0 {
		return fmt.Errorf("imported %+v, want %d events and no rejections", sum, records)
	}
	fmt.Fprintf(e.Stdout, "in-process CSV import: %s records in %s: %s records/s\n", group(int64(sum.Records)), took.Round(time.Millisecond), group(rate(int64(sum.Records), took)))
	return nil
}

func benchImportHTTP(ctx context.Context, e env, m *Main, file string, opts workload.Options, single, connections int) error {
	server := "http://" + m.Addr.String()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, server+"/v1/sources/shop_orders", strings.NewReader(workload.OrdersMapping))
	if err := doJSON(req, nil); err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	t0 := time.Now()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, server+"/v1/sources/shop_orders/records?file=orders.csv", f)
	var ans importAnswer
	if err := doJSON(req, &ans); err != nil {
		return err
	}
	took := time.Since(t0)
	if ans.Events != opts.Events || ans.Rejected != 0 {
		return fmt.Errorf("imported %+v, want %d events and no rejections", ans.Summary, opts.Events)
	}
	bulk := rate(int64(ans.Records), took)
	fmt.Fprintf(e.Stdout, "bulk upload over HTTP: %s records in %s: %s records/s\n", group(int64(ans.Records)), took.Round(time.Millisecond), group(bulk))
	if single <= 0 {
		return nil
	}

	// New records, numbered after the bulk ones so that none is a duplicate.
	var buf bytes.Buffer
	sopts := opts
	sopts.Events, sopts.Seed = single, opts.Seed+1
	if _, err := workload.WriteOrders(&buf, sopts, opts.Events+1); err != nil {
		return err
	}
	rows := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")[1:]
	var (
		next      atomic.Int64
		failed    atomic.Int64
		firstErr  error
		errOnce   sync.Once
		latencies = make([]time.Duration, len(rows))
		wg        sync.WaitGroup
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: connections}}
	t0 = time.Now()
	for range connections {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(rows) {
					return
				}
				body := workload.OrdersHeader + rows[i] + "\n"
				r0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, server+"/v1/sources/shop_orders/records", strings.NewReader(body))
				req.Header.Set("Content-Type", "text/csv")
				var a importAnswer
				if err := doJSONWith(client, req, &a); err != nil || a.Events != 1 {
					failed.Add(1)
					errOnce.Do(func() { firstErr = fmt.Errorf("record %d: %v %+v", i, err, a.Summary) })
				}
				latencies[i] = time.Since(r0)
			}
		})
	}
	wg.Wait()
	took = time.Since(t0)
	if firstErr != nil {
		return fmt.Errorf("%d single posts failed, first: %w", failed.Load(), firstErr)
	}
	one := rate(int64(len(rows)), took)
	slices.Sort(latencies)
	fmt.Fprintf(e.Stdout, "one record per request (%d connections): %s records in %s: %s records/s, p50 %s, p99 %s\n",
		connections, group(int64(len(rows))), took.Round(time.Millisecond), group(one),
		latencies[len(latencies)/2].Round(time.Microsecond), latencies[len(latencies)*99/100].Round(time.Microsecond))
	if one > 0 {
		fmt.Fprintf(e.Stdout, "bulk / single: %.1fx records/s\n", float64(bulk)/float64(one))
	}
	return nil
}

func doJSON(req *http.Request, out any) error { return doJSONWith(http.DefaultClient, req, out) }

func doJSONWith(client *http.Client, req *http.Request, out any) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return responseError(resp, data)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}
