package source

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/mapping"
	"github.com/twinhub/twinhub/schema"
)

// Store keeps the mappings registered through the API across restarts.
// store/pebble implements it.
type Store interface {
	SaveSource(name string, yaml []byte) error
	Sources() (map[string][]byte, error)
	DeleteSource(name string) error
}

// Registry holds the sources a server knows: those registered through the
// API (kept in the Store) and those loaded from a directory at start (kept
// in their files). Each mapping is compiled against the active schema and
// compiled again when the schema changes. Safe for concurrent use.
type Registry struct {
	store  Store
	schema func() *schema.Schema
	dir    string // lookup files of API-registered mappings are relative to it

	mu      sync.Mutex
	sources map[string]*entry
}

type entry struct {
	src    []byte
	dir    string // lookups are relative to it
	file   string // the file it was loaded from; "" when registered through the API
	m      *mapping.Mapping
	schema *schema.Schema // the schema m was compiled against
	err    error          // why src does not compile against schema
}

// Info describes one source for listings.
type Info struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Format      string   `json:"format,omitempty"`
	Events      []string `json:"events,omitempty"` // event types its mapping produces
	File        string   `json:"file,omitempty"`   // where it was loaded from, when from a directory
	Error       string   `json:"error,omitempty"`  // set when it does not fit the active schema
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// ValidName reports whether name may name a source.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return twinhub.FieldErrorf("name", "%q is not a valid source name: use letters, digits, '_', '.', '-' (up to 128, starting with a letter or digit)", name)
	}
	if name == EventsSource {
		return twinhub.FieldErrorf("name", "%q is reserved for events posted to /v1/events", name)
	}
	return nil
}

// NewRegistry returns a registry of the sources in st. dir is where the
// lookup files of API-registered mappings are looked for ("" = the working
// directory). A stored mapping that no longer fits the schema stays
// registered with its error, so that it can be fixed with Put.
func NewRegistry(st Store, schemaOf func() *schema.Schema, dir string) (*Registry, error) {
	r := &Registry{store: st, schema: schemaOf, dir: dir, sources: map[string]*entry{}}
	stored, err := st.Sources()
	if err != nil {
		return nil, fmt.Errorf("load sources: %w", err)
	}
	for name, src := range stored {
		r.sources[name] = &entry{src: src, dir: dir}
	}
	return r, nil
}

// LoadDir registers every *.yaml and *.yml mapping in dir, named by its
// `source`; they are not stored, the files stay the truth. All problems
// of all files are returned together, each prefixed with its file.
func (r *Registry) LoadDir(dir string) error {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return err
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) == 0 {
		return fmt.Errorf("sources directory %s holds no *.yaml mapping", dir)
	}
	sc := r.schema()
	var errs []error
	loaded := map[string]*entry{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m, err := mapping.Parse(src, sc, mapping.Options{Dir: filepath.Dir(f)})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:\n%w", f, err))
			continue
		}
		if err := ValidName(m.Source); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		if prev, ok := loaded[m.Source]; ok {
			errs = append(errs, fmt.Errorf("%s: source %q is also defined in %s", f, m.Source, prev.file))
			continue
		}
		loaded[m.Source] = &entry{src: src, dir: filepath.Dir(f), file: f, m: m, schema: sc}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, e := range loaded {
		r.sources[name] = e
	}
	return nil
}

// Put validates src against the active schema and registers it as source
// name, replacing any earlier mapping of that name, and stores it. The
// mapping's `source` must be name.
func (r *Registry) Put(name string, src []byte) (*mapping.Mapping, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	sc := r.schema()
	m, err := mapping.Parse(src, sc, mapping.Options{Dir: r.dir})
	if err != nil {
		return nil, err
	}
	if m.Source != name {
		return nil, twinhub.FieldErrorf("source", "the mapping names source %q but is put as %q; make them the same", m.Source, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.sources[name]; ok && e.file != "" {
		return nil, twinhub.Errorf(twinhub.ECONFLICT, "source %q is defined by the file %s; change the file and restart", name, e.file)
	}
	if err := r.store.SaveSource(name, src); err != nil {
		return nil, fmt.Errorf("store source %s: %w", name, err)
	}
	r.sources[name] = &entry{src: src, dir: r.dir, m: m, schema: sc}
	return m, nil
}

// Delete forgets source name. Its dead letters stay.
func (r *Registry) Delete(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.sources[name]
	if !ok {
		return twinhub.Errorf(twinhub.ENOTFOUND, "no source %q", name)
	}
	if e.file != "" {
		return twinhub.Errorf(twinhub.ECONFLICT, "source %q is defined by the file %s; remove the file and restart", name, e.file)
	}
	if err := r.store.DeleteSource(name); err != nil {
		return fmt.Errorf("delete source %s: %w", name, err)
	}
	delete(r.sources, name)
	return nil
}

// Get returns source name's mapping compiled against the active schema.
// A mapping that does not fit the schema is an ECONFLICT error that says
// why.
func (r *Registry) Get(name string) (*mapping.Mapping, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.sources[name]
	if !ok {
		return nil, twinhub.Errorf(twinhub.ENOTFOUND, "no source %q (known: %s)", name, r.namesLocked())
	}
	r.compileLocked(e)
	if e.err != nil {
		return nil, twinhub.Errorf(twinhub.ECONFLICT, "source %q's mapping does not fit schema version %d: %s; put a fixed mapping to /v1/sources/%s", name, e.schema.Version, e.err, name)
	}
	return e.m, nil
}

// Source returns source name's mapping text.
func (r *Registry) Source(name string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.sources[name]
	if !ok {
		return nil, twinhub.Errorf(twinhub.ENOTFOUND, "no source %q (known: %s)", name, r.namesLocked())
	}
	return e.src, nil
}

// List describes every source, by name.
func (r *Registry) List() []Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Info, 0, len(r.sources))
	for name, e := range r.sources {
		r.compileLocked(e)
		in := Info{Name: name, File: e.file}
		if e.err != nil {
			in.Error = e.err.Error()
		} else {
			in.Description = e.m.Description
			in.Format = e.m.Format.Kind.String()
			in.Events = e.m.EventTypes()
		}
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// compileLocked compiles e against the active schema if it was compiled
// against another one.
func (r *Registry) compileLocked(e *entry) {
	sc := r.schema()
	if e.schema == sc {
		return
	}
	e.m, e.err = mapping.Parse(e.src, sc, mapping.Options{Dir: e.dir})
	e.schema = sc
}

func (r *Registry) namesLocked() string {
	if len(r.sources) == 0 {
		return "none registered"
	}
	names := make([]string, 0, len(r.sources))
	for n := range r.sources {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
