package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/twinhub/twinhub/datasets"
	"github.com/twinhub/twinhub/mapping"
	"github.com/twinhub/twinhub/source"
)

func newDemoCmd(e env) *cobra.Command {
	var (
		m      Main
		from   string
		fresh  bool
		noWait bool
	)
	c := &cobra.Command{
		Use:   "demo DATASET",
		Short: "Start a server on a public dataset, loaded from nothing",
		Long: `Demo starts a server in a new data directory with the dataset's schema, registers
its sources (mappings), imports its files through them and keeps serving, so
that the README tour has real customers to look at. Windows are relative to
the newest event (--clock event), since the data is historical.

Datasets: ` + fmt.Sprint(datasets.Names()) + `. The files are read from --from,
by default ../shared/data/DATASET; see ../shared/data/README.md for where
they come from and their licences.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ds, err := datasets.Get(args[0])
			if err != nil {
				return problemf("%v", err)
			}
			if from == "" {
				from = filepath.Join("..", "shared", "data", ds.Name)
			}
			for _, s := range ds.Sources {
				if _, err := os.Stat(filepath.Join(from, s.File)); err != nil {
					return problemf("dataset %s: %v; point --from at the directory that holds %s", ds.Name, err, s.File)
				}
			}
			if m.DataDir == "" {
				m.DataDir = "twinhub-demo-" + ds.Name
			}
			if entries, err := os.ReadDir(m.DataDir); err == nil && len(entries) > 0 {
				if !fresh {
					return problemf("%s already holds data: run 'twinhub serve --data %s --clock event' to serve it again, or add --fresh to start over", m.DataDir, m.DataDir)
				}
				if err := os.RemoveAll(m.DataDir); err != nil {
					return err
				}
			}
			m.Schema, m.EventClock, m.LookupDir = ds.Schema, true, from
			if err := m.Open(c.Context()); err != nil {
				return err
			}
			err = loadDataset(c, e, &m, ds, from)
			if err == nil && !noWait {
				fmt.Fprintf(e.Stdout, "\nserving %s on http://%s (Ctrl-C stops it). Try:\n", ds.Name, m.Addr)
				if keys, kerr := m.engine.Keys("", 1); kerr == nil && len(keys) > 0 {
					fmt.Fprintf(e.Stdout, "  curl -s http://%s/v1/twins/%s\n", m.Addr, url.PathEscape(keys[0]))
				}
				fmt.Fprintf(e.Stdout, "  curl -s 'http://%s/v1/twins?limit=5'\n  curl -s http://%s/v1/sources\n  curl -s http://%s/v1/deadletters\n", m.Addr, m.Addr, m.Addr)
				select {
				case <-c.Context().Done():
				case <-m.Done():
				}
			}
			return errors.Join(err, m.Close())
		},
	}
	fs := c.Flags()
	fs.StringVar(&from, "from", "", "directory holding the dataset's files (default ../shared/data/DATASET)")
	fs.StringVar(&m.DataDir, "data", "", "data directory to create (default ./twinhub-demo-DATASET)")
	fs.StringVar(&m.Listen, "listen", DefaultListen, "address to listen on")
	fs.BoolVar(&fresh, "fresh", false, "delete the data directory first if it holds data")
	fs.BoolVar(&noWait, "load-only", false, "load the dataset and stop instead of serving")
	return c
}

// loadDataset registers each of ds's sources and imports its file through
// the same importer the API uses, in-process.
func loadDataset(c *cobra.Command, e env, m *Main, ds datasets.Dataset, from string) error {
	fmt.Fprintf(e.Stdout, "%s\n(%s)\n\n", ds.Title, ds.Attribution)
	start := time.Now()
	var total source.Summary
	for _, s := range ds.Sources {
		parsed, err := mapping.Parse(s.Mapping, m.engine.Schema(), mapping.Options{Dir: from})
		if err != nil {
			return fmt.Errorf("dataset %s, mapping of %s: %w", ds.Name, s.File, err)
		}
		mp, err := m.sources.Put(parsed.Source, s.Mapping)
		if err != nil {
			return err
		}
		f, err := os.Open(filepath.Join(from, s.File))
		if err != nil {
			return err
		}
		t0 := time.Now()
		sum, err := m.importer.Import(c.Context(), mp, f, s.File, nil)
		f.Close()
		if err != nil {
			return fmt.Errorf("import %s: %w", s.File, err)
		}
		fmt.Fprintf(e.Stdout, "%-36s source %-16s %8s records  %8s events  %6s skipped  %6s rejected  %s\n",
			s.File, parsed.Source, group(int64(sum.Records)), group(int64(sum.Events+sum.Duplicates)),
			group(int64(sum.Skipped)), group(int64(sum.Rejected)), time.Since(t0).Round(time.Millisecond))
		for _, r := range sum.Rejections[:min(3, len(sum.Rejections))] {
			fmt.Fprintf(e.Stdout, "    %s:%d: %s: %s\n", s.File, r.Line, r.Field, r.Reason)
		}
		total.Records += sum.Records
		total.Rejected += sum.Rejected
	}
	st := m.engine.Stats()
	fmt.Fprintf(e.Stdout, "\nloaded %s records into %s twins in %s; %s rejected records are in the dead letters\n",
		group(int64(total.Records)), group(st.Twins), time.Since(start).Round(time.Millisecond), group(int64(total.Rejected)))
	return nil
}
