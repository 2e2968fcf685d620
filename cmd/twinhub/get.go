package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

func newGetCmd(e env) *cobra.Command {
	var server string
	c := &cobra.Command{
		Use:   "get KEY",
		Short: "Print one twin as JSON",
		Long: `Get prints the twin with key KEY, as the server holds it now, as indented JSON.
Exit status 1 if there is no such twin.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			key := args[0]
			req, err := http.NewRequestWithContext(c.Context(), http.MethodGet, serverURL(server)+"/v1/twins/"+url.PathEscape(key), nil)
			if err != nil {
				return err
			}
			client := &http.Client{Timeout: 30 * time.Second}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return fmt.Errorf("read the twin: %w", err)
			}
			switch resp.StatusCode {
			case http.StatusOK:
			case http.StatusNotFound:
				return problemf("no twin with key %q", key)
			default:
				return responseError(resp, body)
			}
			var out bytes.Buffer
			if err := json.Indent(&out, body, "", "  "); err != nil {
				return fmt.Errorf("the server's answer is not JSON: %w", err)
			}
			out.WriteByte('\n')
			_, err = out.WriteTo(e.Stdout)
			return err
		},
	}
	addServerFlag(c.Flags(), &server)
	return c
}
