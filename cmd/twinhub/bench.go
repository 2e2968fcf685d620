package main

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/twinhub/twinhub/bench/run"
	"github.com/twinhub/twinhub/bench/workload"
	"github.com/twinhub/twinhub/schema"
)

func newBenchCmd(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Generate the benchmark workload and load a Twinhub with it",
	}
	c.AddCommand(newBenchGenCmd(e), newBenchRunCmd(e), newBenchImportCmd(e), newBenchSweepCmd(e))
	return c
}

// workloadFlags are the flags that describe a generated workload.
type workloadFlags struct {
	events, customers int
	seed              uint64
	now               string
}

func (w *workloadFlags) add(c *cobra.Command, withNow bool) {
	fs := c.Flags()
	fs.IntVar(&w.events, "events", workload.DefaultEvents, "events to generate")
	fs.IntVar(&w.customers, "customers", workload.DefaultCustomers, "customers (twins) the events are about")
	fs.Uint64Var(&w.seed, "seed", workload.DefaultSeed, "random seed; the same flags give the same events")
	if withNow {
		fs.StringVar(&w.now, "now", "", "RFC 3339 time the events lead up to (default: the current hour)")
	}
}

func (w *workloadFlags) options() (workload.Options, error) {
	o := workload.Options{Events: w.events, Customers: w.customers, Seed: w.seed}
	if w.events < 1 {
		return o, fmt.Errorf("--events %d: must be at least 1", w.events)
	}
	if w.customers < 1 {
		return o, fmt.Errorf("--customers %d: must be at least 1", w.customers)
	}
	if w.now != "" {
		t, err := time.Parse(time.RFC3339, w.now)
		if err != nil {
			return o, fmt.Errorf("--now: %w", err)
		}
		o.Now = t.UTC()
	}
	return o, nil
}

func newBenchGenCmd(e env) *cobra.Command {
	var (
		wf  workloadFlags
		out string
	)
	c := &cobra.Command{
		Use:   "gen --out FILE",
		Short: "Write the benchmark workload as NDJSON",
		Long: `Gen writes the standard retail workload: --events events about --customers
customers, Zipf-distributed, over the 90 days before --now. The output is
gzipped if FILE ends in .gz; '-' writes to stdout.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			opts, err := wf.options()
			if err != nil {
				return err
			}
			t0 := time.Now()
			n, err := writeWorkload(e, out, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.Stderr, "wrote %s events (%s of NDJSON) to %s in %s\n",
				group(int64(opts.Events)), formatMB(n), displayName(out), time.Since(t0).Round(time.Millisecond))
			return nil
		},
	}
	wf.add(c, true)
	c.Flags().StringVar(&out, "out", "", "output file (.gz to compress; - for stdout)")
	c.MarkFlagRequired("out")
	return c
}

// writeWorkload writes the workload to the file name and returns the size
// of the NDJSON before compression.
func writeWorkload(e env, name string, opts workload.Options) (n int64, err error) {
	var w io.Writer = e.Stdout
	if name != "-" {
		f, err := os.Create(name)
		if err != nil {
			return 0, err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		w = f
	}
	if !strings.HasSuffix(name, ".gz") {
		return workload.Write(w, opts)
	}
	zw := gzip.NewWriter(w)
	if n, err = workload.Write(zw, opts); err != nil {
		return n, err
	}
	return n, zw.Close()
}

func newBenchRunCmd(e env) *cobra.Command {
	var (
		wf              workloadFlags
		file            string
		cpuProfile      string
		schemaFile      string
		rules, segments int
		repeat          int
		o               run.Options
	)
	c := &cobra.Command{
		Use:   "run",
		Short: "Load a Twinhub with the workload and report throughput and latency",
		Long: `Run generates the workload (or reads --file) into memory, then ingests it as
fast as it can (or at --rate events/s) over --connections concurrent
streams of --batch events, while --readers goroutines read random twins
already written. It reports events/s, the latency of acknowledging a batch
(durable: the archive's fsync is included) and of reading a twin.

--target inprocess drives a store and engine opened in --data directly;
--target http drives a server over its REST API: --server, or one started
in process when --server is not given.

--repeat N runs the load N times, each into a fresh engine or server, and
prints every run and then their median: on a shared machine single runs
spread widely.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if c.Flags().Changed("file") && (c.Flags().Changed("events") || c.Flags().Changed("customers") || c.Flags().Changed("seed")) {
				return errors.New("--file and --events/--customers/--seed exclude each other")
			}
			if o.Target != run.TargetInProcess && o.Target != run.TargetHTTP {
				return fmt.Errorf("--target %q: want %s or %s", o.Target, run.TargetInProcess, run.TargetHTTP)
			}
			if o.Stream && o.Target != run.TargetHTTP {
				return errors.New("--stream needs --target http")
			}
			if o.URL != "" {
				if o.Target != run.TargetHTTP {
					return errors.New("--server needs --target http")
				}
				o.URL = serverURL(o.URL)
			}
			if repeat < 1 {
				return fmt.Errorf("--repeat %d: must be at least 1", repeat)
			}
			if repeat > 1 && (o.URL != "" || o.DataDir != "") {
				return errors.New("--repeat needs a fresh engine each run: leave out --server and --data (the same events sent again would be duplicates)")
			}
			t0 := time.Now()
			var (
				size int64
				err  error
			)
			if file != "" {
				o.Lines, size, err = readLines(e, file)
			} else {
				var opts workload.Options
				if opts, err = wf.options(); err == nil {
					o.Lines, size = generateLines(opts)
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.Stderr, "loaded %s events (%s) in %s; running %s\n",
				group(int64(len(o.Lines))), formatMB(size), time.Since(t0).Round(time.Millisecond), describeRun(o))
			if o.Schema, err = benchSchema(schemaFile, rules, segments); err != nil {
				return err
			}
			o.Logger = slog.New(slog.NewTextHandler(e.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			var reps []run.Report
			for i := range repeat {
				rep, err := run.Run(c.Context(), o)
				if err != nil {
					return err
				}
				if repeat == 1 {
					_, err = fmt.Fprintln(e.Stdout, rep)
					return err
				}
				reps = append(reps, rep)
				fmt.Fprintf(e.Stdout, "run %d: %s\n", i+1, rep)
			}
			_, err = fmt.Fprintf(e.Stdout, "median of %d: %s\n", repeat, run.Median(reps))
			return err
		},
	}
	wf.add(c, false)
	fs := c.Flags()
	fs.StringVar(&file, "file", "", "NDJSON file (.gz too) to send instead of a generated workload")
	fs.StringVar(&o.Target, "target", run.TargetInProcess, "inprocess or http")
	fs.StringVar(&o.URL, "server", "", "server URL for --target http (default: start one in process)")
	fs.IntVar(&o.Connections, "connections", run.DefaultConnections, "concurrent ingesting streams")
	fs.IntVar(&o.Batch, "batch", run.DefaultBatch, "events per batch")
	fs.Float64Var(&o.Rate, "rate", 0, "events per second to send at most (0 = unlimited)")
	fs.IntVar(&o.Readers, "readers", 1, "goroutines reading random twins during the load")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run (go tool pprof) to this file")
	fs.StringVar(&o.MemProfile, "memprofile", "", "in process: write a heap profile after the load to this file")
	fs.StringVar(&o.DataDir, "data", "", "data directory of the engine or in-process server (default: a temporary one, removed after)")
	fs.StringVar(&schemaFile, "schema", "", "schema YAML of the in-process engine or server (default: the built-in retail schema)")
	fs.BoolVar(&o.Stream, "stream", false, "over HTTP: follow /v1/stream and report the latency of outputs after their event's acknowledgement")
	fs.IntVar(&rules, "rules", 0, "add this many generated rules to the schema")
	fs.IntVar(&segments, "segments", 0, "add this many generated segments to the schema")
	fs.IntVar(&repeat, "repeat", 1, "run the load this many times, each into a fresh engine or server, and print the median too")
	return c
}

// benchSchema returns the schema a run uses: the file's or the default,
// with generated rules and segments appended; nil for the plain default.
func benchSchema(file string, rules, segments int) (*schema.Schema, error) {
	if file == "" && rules == 0 && segments == 0 {
		return nil, nil
	}
	src := schema.DefaultYAML()
	if file != "" {
		var err error
		if src, err = os.ReadFile(file); err != nil {
			return nil, err
		}
	}
	src = workload.AddRules(src, rules, segments)
	sc, err := schema.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("bench schema: %w", err)
	}
	return sc, nil
}

func describeRun(o run.Options) string {
	target := o.Target
	if o.Target == run.TargetHTTP {
		target += " " + cmp.Or(o.URL, "(server in process)")
	}
	rate := "unlimited rate"
	if o.Rate > 0 {
		rate = fmt.Sprintf("at most %s events/s", group(int64(o.Rate)))
	}
	return fmt.Sprintf("%s, %d connections, batches of %d, %s, %d readers", target, o.Connections, o.Batch, rate, o.Readers)
}

// generateLines generates the workload into one buffer and returns its
// lines (with their newlines) and total size.
func generateLines(opts workload.Options) ([][]byte, int64) {
	g := workload.New(opts)
	buf := make([]byte, 0, opts.Events*200)
	ends := make([]int, 0, opts.Events)
	for {
		var ok bool
		if buf, ok = g.Next(buf); !ok {
			break
		}
		ends = append(ends, len(buf))
	}
	lines := make([][]byte, len(ends))
	start := 0
	for i, end := range ends {
		lines[i] = buf[start:end:end]
		start = end
	}
	return lines, int64(len(buf))
}

// readLines reads the file name (gzipped or not) into memory and returns
// its non-blank lines and its decompressed size.
func readLines(e env, name string) ([][]byte, int64, error) {
	in, err := openInput(name, e.Stdin)
	if err != nil {
		return nil, 0, err
	}
	defer in.Close()
	data, err := io.ReadAll(bufio.NewReaderSize(in, 1<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", displayName(name), err)
	}
	var lines [][]byte
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1:i+1], data[i+1:]
		} else {
			data = nil
		}
		if !isBlank(line) {
			lines = append(lines, line)
		}
	}
	if len(lines) == 0 {
		return nil, 0, fmt.Errorf("%s: no events", displayName(name))
	}
	size := int64(0)
	for _, l := range lines {
		size += int64(len(l))
	}
	return lines, size, nil
}

// formatMB formats a byte count in MB, for humans.
func formatMB(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

// startCPUProfile profiles the process's CPU into the file name until stop.
func startCPUProfile(name string) (stop func(), err error) {
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func newBenchSweepCmd(e env) *cobra.Command {
	var o run.SweepOptions
	c := &cobra.Command{
		Use:   "sweep",
		Short: "Measure ingestion while a time-driven segment sweep turns over many twins",
		Long: `Sweep gives --twins twins one purchase each, so that all enter a segment
that lasts 30 days, then moves the engine's clock 31 days on and runs the
sweep that takes them all out of it, without any event, while the standard
workload is ingested over --connections streams. It reports ingestion
before and during the sweep, and the sweep's duration. With --cold the
engine is reopened before the load, so the twins are cold (in the store,
not in memory) and the cold sweep reads them.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.Lines, _ = generateLines(workload.Options{Events: 1_000_000, Customers: workload.DefaultCustomers, Seed: workload.DefaultSeed})
			o.Logger = slog.New(slog.NewTextHandler(e.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			rep, err := run.RunSweep(c.Context(), o)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.Stdout, rep)
			return err
		},
	}
	fs := c.Flags()
	fs.IntVar(&o.Twins, "twins", 1_000_000, "twins the sweep turns over")
	fs.IntVar(&o.Connections, "connections", run.DefaultConnections, "concurrent ingesting streams")
	fs.StringVar(&o.DataDir, "data", "", "data directory (default: a temporary one, removed after)")
	fs.BoolVar(&o.Cold, "cold", false, "sweep cold twins: reopen the engine first, so that none is in memory")
	return c
}
