package schema

import (
	"net/url"
	"os"
	"slices"

	"go.yaml.in/yaml/v3"
)

var webhookKeys = []string{"description", "url", "kinds", "rules", "secret", "secret_env"}

// webhooks parses the webhooks section. A secret_env is read from the
// environment here, so that a schema that names a missing secret fails
// validation rather than sending unsigned requests later.
func (p *parser) webhooks(s *Schema, top entry) {
	for _, e := range p.mapping(top.v, top.path, nil, "a mapping of webhook names to their declarations") {
		if !p.name(e.k, e.key, e.path, "webhook") {
			continue
		}
		w := &Webhook{Name: e.key}
		if e.v == nil || e.v.Kind != yaml.MappingNode {
			p.add(e.v, e.path, "write e.g. {url: https://example.com/hook}", "expected a mapping with url:, found %s", describe(e.v))
			continue
		}
		var secret, secretEnv *yaml.Node
		sawURL := false
		for _, we := range p.mapping(e.v, e.path, webhookKeys, "a mapping with url:") {
			switch we.key {
			case "description":
				w.Description, _ = p.str(we.v, we.path)
			case "url":
				sawURL = true
				if u, ok := p.str(we.v, we.path); ok && p.url(we.v, we.path, u) {
					w.URL = u
				}
			case "kinds":
				w.Kinds = p.nameList(we.v, we.path, "action kind", actionKinds)
			case "rules":
				w.Rules = p.nameList(we.v, we.path, "rule", s.ruleNames())
			case "secret":
				secret = we.v
				w.Secret, _ = p.str(we.v, we.path)
			case "secret_env":
				secretEnv = we.v
			}
		}
		if !sawURL {
			p.add(e.k, e.path, "add e.g. url: https://example.com/hook", "webhook %q has no url", w.Name)
		}
		switch envPath := e.path + ".secret_env"; {
		case secretEnv == nil:
		case secret != nil:
			p.add(secretEnv, envPath, "keep one of them", "secret and secret_env exclude each other")
		default:
			if name, ok := p.str(secretEnv, envPath); ok {
				if w.Secret = os.Getenv(name); w.Secret == "" {
					p.add(secretEnv, envPath, "set the variable before Twinhub starts, or remove secret_env",
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
			p.add(nodes[i], path, suggestOr(name, known), "unknown %s %q", what, name)
		case slices.Contains(out, name):
			p.add(nodes[i], path, "remove the duplicate", "%s %q is listed twice", what, name)
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
		p.add(n, path, "use an absolute http or https URL, e.g. https://example.com/hook", "%q is not an absolute http or https URL", u)
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
