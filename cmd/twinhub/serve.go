package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/twinhub/twinhub/engine"
)

func newServeCmd(e env) *cobra.Command {
	var (
		m          Main
		memory     = byteSize(engine.DefaultMemoryBudget)
		addrFile   string
		schemaFile string
		clock      string
	)
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the Twinhub server",
		Long: `Serve runs Twinhub with its embedded store in --data and the built-in retail
schema (or the schema version the store holds), and serves the REST API on
--listen, which is loopback only by default. SIGINT or SIGTERM stops it
gracefully: requests in flight finish and every twin is persisted.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			m.MemoryBudget = int64(memory)
			switch clock {
			case "wall":
			case "event":
				m.EventClock = true
			default:
				return problemf("--clock %q: use wall or event", clock)
			}
			if schemaFile != "" {
				src, err := os.ReadFile(schemaFile)
				if err != nil {
					return err
				}
				m.Schema = src
			}
			m.Logger = slog.New(slog.NewTextHandler(e.Stderr, nil))
			if err := m.Open(c.Context()); err != nil {
				return err
			}
			if addrFile != "" {
				if err := writeFileAtomic(addrFile, []byte(m.Addr.String()+"\n")); err != nil {
					return errors.Join(fmt.Errorf("addr file: %w", err), m.Close())
				}
			}
			select {
			case <-c.Context().Done():
				m.Logger.Info("shutting down")
			case <-m.Done(): // the server failed; Close reports why
			}
			if err := m.Close(); err != nil {
				return err
			}
			m.Logger.Info("stopped")
			return nil
		},
	}
	fs := c.Flags()
	fs.StringVar(&m.DataDir, "data", DefaultDataDir, "data directory of the embedded store")
	fs.StringVar(&m.Listen, "listen", DefaultListen, "address to listen on")
	fs.Var(&memory, "memory", "memory budget for hot twins, e.g. 2GiB or 512MiB")
	fs.IntVar(&m.Partitions, "partitions", engine.DefaultPartitions, "key partitions of a new store (fixed once created)")
	fs.Uint64Var(&m.ReplayLag, "replay-lag", engine.DefaultReplayLag, "most archived events per shard a restart replays; smaller persists twins more often")
	fs.StringVar(&addrFile, "addr-file", "", "write the actual listen address to this file once listening")
	fs.StringVar(&m.SourcesDir, "sources", "", "directory of source mappings (*.yaml) to load; their lookup files are relative to it")
	fs.StringVar(&schemaFile, "schema", "", "YAML schema a new store starts with (default: the built-in retail schema); an existing store keeps its own, change it with PUT /v1/schema")
	fs.StringVar(&clock, "clock", "wall", "what windows are relative to: wall (now) or event (the newest event time, for historical data)")
	bindEnv(c, e, "data", "TWINHUB_DATA")
	bindEnv(c, e, "listen", "TWINHUB_LISTEN")
	bindEnv(c, e, "memory", "TWINHUB_MEMORY")
	return c
}

// writeFileAtomic writes data to name through a temporary file and a rename,
// so that a reader polling for name never sees it half written.
func writeFileAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), name)
}
