package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/mapping"
	"github.com/twinhub/twinhub/schema"
	"github.com/twinhub/twinhub/source"
)

func newMappingCmd(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "mapping",
		Short: "Check source mappings",
	}
	var (
		schemaFile string
		show       int
		errs       int
	)
	test := &cobra.Command{
		Use:   "test MAPPING FILE",
		Short: "Show the events a file would produce through a mapping, and its errors",
		Long: `Test reads FILE (or '-' for stdin) with the mapping MAPPING, as a server would,
without a server: it prints the first events the records produce, as
canonical JSON preceded by the record's line, then the first records that
would be rejected with their line, field and reason, then counts over the
whole file. Events are validated against --schema (default: the built-in
retail schema).

Exit status 1 when some record would be rejected.`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			sc := schema.Default()
			if schemaFile != "" {
				src, err := os.ReadFile(schemaFile)
				if err != nil {
					return err
				}
				if sc, err = schema.Parse(src); err != nil {
					return fmt.Errorf("%s:\n%w", schemaFile, err)
				}
			}
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			m, err := mapping.Parse(src, sc, mapping.Options{Dir: filepath.Dir(args[0])})
			if err != nil {
				var ve *schema.ValidationError
				if errors.As(err, &ve) {
					for _, p := range ve.Problems {
						fmt.Fprintf(e.Stderr, "%s:%s\n", args[0], p)
					}
					return &exitErr{code: exitProblem}
				}
				return err
			}
			var r io.Reader = e.Stdin
			file := ""
			if args[1] != "-" {
				f, err := os.Open(args[1])
				if err != nil {
					return err
				}
				defer f.Close()
				r, file = f, filepath.Base(args[1])
			}
			t := &mappingTest{env: e, m: m, sc: sc, show: show, errs: errs, name: displayName(args[1]), file: file}
			return t.run(r)
		},
	}
	test.Flags().StringVar(&schemaFile, "schema", "", "schema YAML to validate events against (default: the built-in retail schema)")
	test.Flags().IntVarP(&show, "events", "n", 10, "events to print")
	test.Flags().IntVar(&errs, "errors", 20, "rejected records to print")
	c.AddCommand(test)
	return c
}

type mappingTest struct {
	env        env
	m          *mapping.Mapping
	sc         *schema.Schema
	show, errs int
	name, file string
}

func (t *mappingTest) run(r io.Reader) error {
	var (
		shown      int
		rejections []string
	)
	sum, err := source.Preview(t.m, t.sc, r, t.file, func(rec *ingest.Record, events [][]byte, rej *source.Rejection) {
		if rej != nil {
			if len(rejections) < t.errs {
				where := fmt.Sprintf("%s:%d", t.name, rec.Line)
				if rej.Field != "" {
					where += ": " + rej.Field
				}
				rejections = append(rejections, where+": "+rej.Reason)
			}
			return
		}
		for _, ev := range events {
			if shown < t.show {
				shown++
				fmt.Fprintf(t.env.Stdout, "%s:%d\t%s\n", t.name, rec.Line, ev)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("%s: %w", t.name, err)
	}
	if len(rejections) > 0 {
		fmt.Fprintf(t.env.Stdout, "\nrejected records:\n")
		for _, r := range rejections {
			fmt.Fprintln(t.env.Stdout, r)
		}
	}
	fmt.Fprintf(t.env.Stdout, "\n%s records: %s events, %s records skipped (no event), %s rejected\n",
		group(int64(sum.Records)), group(int64(sum.Events)), group(int64(sum.Skipped)), group(int64(sum.Rejected)))
	if sum.Rejected > 0 {
		return &exitErr{code: exitProblem}
	}
	return nil
}
