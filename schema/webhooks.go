package schema

import (
	"net/url"
	"os"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/twinhub/twinhub/internal/yamlread"
)

var webhookKeys = []string{"description", "url", "kinds", "rules", "secret", "secret_env"}

// ActionTarget is the name that deliveries to the URL of a webhook action
// itself go under. They are not signed, since no secret belongs to them,
// so no webhook of a schema may take the name: its deliveries would go
// out unsigned.
const ActionTarget = "action"

// webhooks parses the webhooks section. A secret_env is read from the
// environment here, so that a schema that names a missing secret fails
// validation rather than sending unsigned requests later.
func (p *parser) webhooks(s *Schema, top entry) {
	for _, e := range p.Mapping(top.V, top.Path, nil, "a mapping of webhook names to their declarations") {
		if !p.name(e.K, e.Key, e.Path, "webhook") {
			continue
		}
		if e.Key == ActionTarget {
			p.Add(e.K, e.Path, "choose another name", "the webhook name %q is reserved for the deliveries of webhook actions to their own URLs", e.Key)
			continue
		}
		w := &Webhook{Name: e.Key}
		if e.V == nil || e.V.Kind != yaml.MappingNode {
			p.Add(e.V, e.Path, "write e.g. {url: https://example.com/hook}", "expected a mapping with url:, found %s", yamlread.Describe(e.V))
			continue
		}
		var secret, secretEnv *yaml.Node
		sawURL := false
		for _, we := range p.Mapping(e.V, e.Path, webhookKeys, "a mapping with url:") {
			switch we.Key {
			case "description":
				w.Description, _ = p.Str(we.V, we.Path)
			case "url":
				sawURL = true
				if u, ok := p.Str(we.V, we.Path); ok && p.url(we.V, we.Path, u) {
					w.URL = u
				}
			case "kinds":
				w.Kinds = p.nameList(we.V, we.Path, "action kind", actionKinds)
			case "rules":
				w.Rules = p.nameList(we.V, we.Path, "rule", s.ruleNames())
			case "secret":
				secret = we.V
				w.Secret, _ = p.Str(we.V, we.Path)
			case "secret_env":
				secretEnv = we.V
			}
		}
		if !sawURL {
			p.Add(e.K, e.Path, "add e.g. url: https://example.com/hook", "webhook %q has no url", w.Name)
		}
		switch envPath := e.Path + ".secret_env"; {
		case secretEnv == nil:
		case secret != nil:
			p.Add(secretEnv, envPath, "keep one of them", "secret and secret_env exclude each other")
		default:
			if name, ok := p.Str(secretEnv, envPath); ok {
				if w.Secret = os.Getenv(name); w.Secret == "" {
					p.Add(secretEnv, envPath, "set the variable before Twinhub starts, or remove secret_env",
						"environment variable %s is empty or not set", name)
				}
			}
		}
		s.Webhooks = append(s.Webhooks, w)
	}
}

// nameList reads a list of names that must each be one of known.
func (p *parser) nameList(n *yaml.Node, path, what string, known []string) []string {
	names, nodes, _ := p.strList(n, path)
	var out []string
	for i, name := range names {
		switch {
		case !slices.Contains(known, name):
			p.Add(nodes[i], path, yamlread.SuggestOr(name, known), "unknown %s %q", what, name)
		case slices.Contains(out, name):
			p.Add(nodes[i], path, "remove the duplicate", "%s %q is listed twice", what, name)
		default:
			out = append(out, name)
		}
	}
	return out
}

// url checks that u, the value of n, is an absolute http or https URL.
func (p *parser) url(n *yaml.Node, path, u string) bool {
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		p.Add(n, path, "use an absolute http or https URL, e.g. https://example.com/hook", "%q is not an absolute http or https URL", u)
		return false
	}
	return true
}

func (s *Schema) ruleNames() []string {
	names := make([]string, len(s.Rules))
	for i, r := range s.Rules {
		names[i] = r.Name
	}
	return names
}
