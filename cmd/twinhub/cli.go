package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK      = 0
	exitProblem = 1 // the input had problems: rejected events, an invalid schema, a missing twin
	exitError   = 2 // anything else: bad usage, unreachable server, I/O errors
)

// env is what commands may touch of the process, so that tests can run them
// in process.
type env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// exitErr ends a command with an exit code. An empty message means the
// command has already said what went wrong.
type exitErr struct {
	code int
	msg  string
}

func (e *exitErr) Error() string { return e.msg }

// problemf returns an exitErr with code exitProblem.
func problemf(format string, args ...any) error {
	return &exitErr{code: exitProblem, msg: fmt.Sprintf(format, args...)}
}

// execute executes the command line args and returns the process's exit code.
func execute(ctx context.Context, args []string, e env) int {
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(e.Stdin)
	root.SetOut(e.Stdout)
	root.SetErr(e.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitError
	var ee *exitErr
	if errors.As(err, &ee) {
		code = ee.code
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintf(e.Stderr, "twinhub: %s\n", msg)
	}
	return code
}

func newRoot(e env) *cobra.Command {
	root := &cobra.Command{
		Use:   "twinhub",
		Short: "Twinhub: a real-time digital twin of every customer",
		Long: `Twinhub turns streams of customer events into a live, queryable twin of every
customer. Start a server with 'twinhub serve', feed it with 'twinhub ingest',
read a twin with 'twinhub get'.`,
		SilenceErrors: true, // execute prints them, once
		SilenceUsage:  true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w\nRun '%s --help' for usage.", err, c.CommandPath())
	})
	root.AddCommand(
		newServeCmd(e),
		newIngestCmd(e),
		newGetCmd(e),
		newTailCmd(e),
		newSchemaCmd(e),
		newBenchCmd(e),
		newDeadLettersCmd(e),
		newMappingCmd(e),
		newDemoCmd(e),
		newVersionCmd(e),
	)
	return root
}

// bindEnv makes an unset flag take its value from the environment variable
// name, when that is set.
func bindEnv(c *cobra.Command, e env, flag, name string) {
	f := c.Flags().Lookup(flag)
	f.Usage += fmt.Sprintf(" (env %s)", name)
	prev := c.PreRunE
	c.PreRunE = func(c *cobra.Command, args []string) error {
		if v := e.Getenv(name); v != "" && !f.Changed {
			if err := f.Value.Set(v); err != nil {
				return fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
}

// serverURL normalises a --server value: a scheme is optional, a trailing
// slash is dropped.
func serverURL(s string) string {
	s = strings.TrimRight(strings.TrimSpace(s), "/")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return s
}

// isTerminal reports whether w is a terminal, where progress can be redrawn
// in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// addServerFlag adds --server with its default.
func addServerFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "server", "http://127.0.0.1:7070", "base URL of the Twinhub server")
}
