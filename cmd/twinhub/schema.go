package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/twinhub/twinhub/schema"
)

func newSchemaCmd(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "schema",
		Short: "Check and print twin schemas",
	}
	c.AddCommand(&cobra.Command{
		Use:   "validate FILE",
		Short: "Check a schema document",
		Long: `Validate parses, checks and compiles a schema document ('-' reads stdin) and
prints every problem as FILE:LINE:COLUMN: path: message, with a hint where
there is one. Exit status 1 if there are problems.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return validateSchema(e, args[0])
		},
	}, &cobra.Command{
		Use:   "default",
		Short: "Print the built-in retail-customer schema",
		Long:  `Default prints the schema Twinhub runs with when none is configured: a starting point for your own.`,
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			_, err := e.Stdout.Write(schema.DefaultYAML())
			return err
		},
	})
	return c
}

func validateSchema(e env, name string) error {
	var (
		src []byte
		err error
	)
	if name == "-" {
		src, err = io.ReadAll(e.Stdin)
	} else {
		src, err = os.ReadFile(name)
	}
	if err != nil {
		return err
	}
	sc, err := schema.Parse(src)
	var ve *schema.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			fmt.Fprintln(e.Stdout, formatProblem(displayName(name), p))
		}
		s := "s"
		if len(ve.Problems) == 1 {
			s = ""
		}
		return problemf("%s: %d problem%s", displayName(name), len(ve.Problems), s)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", displayName(name), err)
	}
	fmt.Fprintf(e.Stdout, "%s: valid (%d event types, %d aggregates)\n", displayName(name), len(sc.Events), len(sc.Aggregates))
	return nil
}

// formatProblem formats p as compilers do, so that editors can jump to it:
// FILE:LINE:COL: path: message (hint: ...).
func formatProblem(file string, p schema.Problem) string {
	where := file
	if p.Line > 0 {
		where = fmt.Sprintf("%s:%d:%d", file, p.Line, p.Column)
	}
	msg := p.Message
	if p.Path != "" {
		msg = p.Path + ": " + msg
	}
	if p.Hint != "" {
		msg += " (hint: " + p.Hint + ")"
	}
	return where + ": " + msg
}
