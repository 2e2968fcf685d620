package workload

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Defaults for the zero values of Options.
const (
	DefaultEvents     = 1_000_000
	DefaultCustomers  = 100_000
	DefaultProducts   = 10_000
	DefaultCategories = 50
	DefaultSeed       = 1
	DefaultZipfS      = 1.1
	DefaultSpan       = 90 * 24 * time.Hour
)

// Options describes a workload. A zero field means its Default* value; Now's
// zero value means the current time in UTC, truncated to the hour, which
// makes the output depend on the clock: pass Now for reproducible bytes.
type Options struct {
	Events     int           // events to generate
	Customers  int           // customers "c-1".."c-<Customers>", drawn Zipf(ZipfS) by rank
	Products   int           // products "p-1".."p-<Products>", drawn Zipf(ZipfS) by rank
	Categories int           // product categories; each product has a fixed one
	Seed       uint64        // seed of the PCG generator
	ZipfS      float64       // Zipf exponent, > 1
	Now        time.Time     // event times lie in [Now-Span, Now)
	Span       time.Duration // at least a millisecond
}

func (o Options) withDefaults() Options {
	if o.Events == 0 {
		o.Events = DefaultEvents
	}
	if o.Customers == 0 {
		o.Customers = DefaultCustomers
	}
	if o.Products == 0 {
		o.Products = DefaultProducts
	}
	if o.Categories == 0 {
		o.Categories = DefaultCategories
	}
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	if o.ZipfS == 0 {
		o.ZipfS = DefaultZipfS
	}
	if o.Now.IsZero() {
		o.Now = time.Now().UTC().Truncate(time.Hour)
	}
	if o.Span == 0 {
		o.Span = DefaultSpan
	}
	return o
}

// validate checks options that have had their defaults applied.
func (o Options) validate() error {
	switch {
	case o.Events < 0:
		return fmt.Errorf("workload: Events = %d, want > 0", o.Events)
	case o.Customers < 0:
		return fmt.Errorf("workload: Customers = %d, want > 0", o.Customers)
	case o.Products < 0:
		return fmt.Errorf("workload: Products = %d, want > 0", o.Products)
	case o.Categories < 0:
		return fmt.Errorf("workload: Categories = %d, want > 0", o.Categories)
	case !(o.ZipfS > 1) || math.IsInf(o.ZipfS, 0):
		return fmt.Errorf("workload: ZipfS = %v, want a finite number > 1", o.ZipfS)
	case o.Span < time.Millisecond:
		return fmt.Errorf("workload: Span = %v, want at least 1ms", o.Span)
	}
	return nil
}

// Event types in the order of the generator's mix table.
const (
	tView = iota
	tCart
	tPurchase
	tSurvey
	tComplaint
	tReturn
	tProfile
)

// typeWeights is the event mix, in percent; it sums to 100.
var typeWeights = [...]int{tView: 60, tCart: 15, tPurchase: 12, tSurvey: 5, tComplaint: 4, tReturn: 2, tProfile: 2}

// linePrefix holds each type's `","type":"<type>","customer_id":"c-`.
var linePrefix = [...]string{
	tView:      `","type":"view","customer_id":"c-`,
	tCart:      `","type":"cart","customer_id":"c-`,
	tPurchase:  `","type":"purchase","customer_id":"c-`,
	tSurvey:    `","type":"survey","customer_id":"c-`,
	tComplaint: `","type":"complaint","customer_id":"c-`,
	tReturn:    `","type":"return","customer_id":"c-`,
	tProfile:   `","type":"profile","customer_id":"c-`,
}

var (
	channels       = [...]string{"web", "app", "store", "call_centre"}
	channelWeights = [...]int{45, 30, 18, 7}
	tiers          = [...]string{"bronze", "silver", "gold", "platinum"}
	tierWeights    = [...]int{50, 30, 15, 5}
	scoreWeights   = [...]int{8, 10, 20, 32, 30} // scores 1..5
	reasons        = [...]string{"late_delivery", "damaged_item", "wrong_item", "billing",
		"rude_staff", "refund_delay", "website_error", "out_of_stock"}
	countries  = [...]string{"US", "GB", "DE", "FR", "ES", "IT", "NL", "SE", "PL", "IE", "CA", "AU", "JP", "BR", "IN", "MX"}
	firstNames = [...]string{"Ada", "Alan", "Amara", "Ben", "Chloe", "Dev", "Elena", "Farah", "Grace", "Hugo",
		"Ines", "Jonas", "Kai", "Lena", "Marco", "Nia", "Omar", "Priya", "Quinn", "Rosa",
		"Sam", "Tariq", "Uma", "Victor", "Wen", "Xavier", "Yara", "Zoe", "Liam", "Maya", "Noah", "Sofia"}
	lastNames = [...]string{"Smith", "Jones", "Garcia", "Muller", "Rossi", "Dubois", "Kowalski", "Silva",
		"Tanaka", "Patel", "Kim", "Nguyen", "Okafor", "Larsen", "Novak", "Costa",
		"Murphy", "Schmidt", "Moreau", "Ivanova", "Haddad", "Cohen", "Lopez", "Berg",
		"Fischer", "Santos", "Walsh", "Yilmaz", "Sato", "Khan", "Reyes", "Lindqvist"}
	// categoryNames are the first 50 category names; further categories
	// repeat them with a "-2", "-3", ... suffix.
	categoryNames = [...]string{"shoes", "dresses", "shirts", "trousers", "jackets", "knitwear", "sportswear",
		"swimwear", "lingerie", "socks", "bags", "jewellery", "watches", "sunglasses", "hats",
		"beauty", "fragrance", "skincare", "haircare", "makeup", "phones", "laptops", "tablets",
		"audio", "cameras", "gaming", "tv", "smart-home", "kitchen", "cookware", "tableware",
		"bedding", "bath", "furniture", "lighting", "decor", "garden", "tools", "diy", "pets",
		"toys", "baby", "books", "music", "films", "stationery", "grocery", "wine", "health", "outdoor"}
)

// Log-normal amounts: median 40, clamped to [5, 500].
const (
	amountMu    = 3.6888794541139363 // ln(40)
	amountSigma = 0.8
	minCents    = 500
	maxCents    = 50_000
)

// Generator yields a workload's events one by one. It is not safe for
// concurrent use.
type Generator struct {
	opts   Options
	rng    *rand.Rand
	cust   *rand.Zipf
	prod   *rand.Zipf
	n      int    // events produced so far
	loMs   int64  // earliest event time, unix milliseconds
	spanMs uint64 // number of possible millisecond instants
	cats   []string
	types  [100]uint8
	chans  [100]uint8
	tiers  [100]uint8
	scores [100]uint8
	emails [len(firstNames)][len(lastNames)]string // "first.last." in lower case
}

// New returns a Generator for opts, with defaults applied. It panics if an
// option is invalid (a negative count, ZipfS <= 1, Span under 1ms); Write
// reports the same problems as errors.
func New(opts Options) *Generator {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x7477696e687562)) // "twinhub"
	g := &Generator{
		opts: opts,
		rng:  rng,
		cust: rand.NewZipf(rng, opts.ZipfS, 1, uint64(opts.Customers-1)),
		prod: rand.NewZipf(rng, opts.ZipfS, 1, uint64(opts.Products-1)),
		cats: make([]string, opts.Categories),
	}
	// Round both ends up to whole milliseconds so that every printed time,
	// which has millisecond precision, lies in [Now-Span, Now).
	lo := ceilDiv(opts.Now.Add(-opts.Span).UnixNano(), int64(time.Millisecond))
	hi := ceilDiv(opts.Now.UnixNano(), int64(time.Millisecond))
	g.loMs, g.spanMs = lo, uint64(hi-lo)
	for i := range g.cats {
		g.cats[i] = categoryNames[i%len(categoryNames)]
		if i >= len(categoryNames) {
			g.cats[i] += "-" + strconv.Itoa(i/len(categoryNames)+1)
		}
	}
	fillTable(g.types[:], typeWeights[:])
	fillTable(g.chans[:], channelWeights[:])
	fillTable(g.tiers[:], tierWeights[:])
	fillTable(g.scores[:], scoreWeights[:])
	for i, f := range firstNames {
		for j, l := range lastNames {
			g.emails[i][j] = toLower(f) + "." + toLower(l) + "."
		}
	}
	return g
}

// Options returns the generator's options with defaults applied, notably the
// Now it uses.
func (g *Generator) Options() Options { return g.opts }

// Next appends the next event, a JSON object and a trailing '\n', to dst and
// returns the extended slice. Once Options.Events events have been produced
// it returns dst unchanged and false. Next does not allocate unless dst must
// grow.
func (g *Generator) Next(dst []byte) ([]byte, bool) {
	if g.n >= g.opts.Events {
		return dst, false
	}
	g.n++
	r := g.rng
	typ := int(g.types[r.IntN(100)])
	cust := g.cust.Uint64() + 1
	ms := g.loMs + int64(r.Uint64N(g.spanMs))

	dst = append(dst, `{"id":"e-`...)
	dst = strconv.AppendInt(dst, int64(g.n), 10)
	dst = append(dst, linePrefix[typ]...)
	dst = strconv.AppendUint(dst, cust, 10)
	dst = append(dst, `","time":"`...)
	dst = appendTime(dst, ms)
	dst = append(dst, '"')

	switch typ {
	case tView:
		dst = g.appendProduct(dst, true)
		dst = g.appendChannel(dst)
	case tCart, tPurchase:
		dst = g.appendAmount(dst)
		dst = g.appendProduct(dst, true)
		dst = g.appendChannel(dst)
	case tReturn:
		dst = g.appendAmount(dst)
		dst = g.appendProduct(dst, false)
	case tSurvey:
		dst = append(dst, `,"score":`...)
		dst = append(dst, '1'+g.scores[r.IntN(100)])
	case tComplaint:
		dst = append(dst, `,"reason":"`...)
		dst = append(dst, reasons[r.IntN(len(reasons))]...)
		dst = append(dst, '"')
		dst = g.appendChannel(dst)
	case tProfile:
		// Name, email and country are fixed per customer; the tier moves.
		h := mix(cust)
		f, l := h%uint64(len(firstNames)), (h>>8)%uint64(len(lastNames))
		dst = append(dst, `,"name":"`...)
		dst = append(dst, firstNames[f]...)
		dst = append(dst, ' ')
		dst = append(dst, lastNames[l]...)
		dst = append(dst, `","email":"`...)
		dst = append(dst, g.emails[f][l]...)
		dst = strconv.AppendUint(dst, cust, 10)
		dst = append(dst, `@example.com","tier":"`...)
		dst = append(dst, tiers[g.tiers[r.IntN(100)]]...)
		dst = append(dst, `","country":"`...)
		dst = append(dst, countries[(h>>16)%uint64(len(countries))]...)
		dst = append(dst, '"')
	}
	return append(dst, "}\n"...), true
}

func (g *Generator) appendProduct(dst []byte, withCategory bool) []byte {
	p := g.prod.Uint64() + 1
	dst = append(dst, `,"product_id":"p-`...)
	dst = strconv.AppendUint(dst, p, 10)
	dst = append(dst, '"')
	if withCategory {
		dst = append(dst, `,"category":"`...)
		dst = append(dst, g.cats[mix(p)%uint64(len(g.cats))]...)
		dst = append(dst, '"')
	}
	return dst
}

func (g *Generator) appendChannel(dst []byte) []byte {
	dst = append(dst, `,"channel":"`...)
	dst = append(dst, channels[g.chans[g.rng.IntN(100)]]...)
	return append(dst, '"')
}

// appendAmount appends a positive amount with at most two decimals, in its
// shortest form (59.9, not 59.90).
func (g *Generator) appendAmount(dst []byte) []byte {
	x := math.Exp(amountMu + amountSigma*g.rng.NormFloat64())
	cents := min(max(int64(math.Round(x*100)), minCents), maxCents)
	dst = append(dst, `,"amount":`...)
	dst = strconv.AppendInt(dst, cents/100, 10)
	switch c := cents % 100; {
	case c == 0:
	case c%10 == 0:
		dst = append(dst, '.', byte('0'+c/10))
	default:
		dst = append(dst, '.', byte('0'+c/10), byte('0'+c%10))
	}
	return dst
}

// appendTime appends unix milliseconds ms as RFC 3339 in UTC with exactly
// three fractional digits, like time.Format("2006-01-02T15:04:05.000Z07:00").
func appendTime(dst []byte, ms int64) []byte {
	t := time.UnixMilli(ms).UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	}
	h, mi, s := t.Clock()
	frac := t.Nanosecond() / int(time.Millisecond)
	dst = append(dst,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-',
		byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':',
		byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.',
		byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10), 'Z')
	return dst
}

// Write writes the workload described by opts to w as NDJSON, buffered, and
// returns the number of bytes written.
func Write(w io.Writer, opts Options) (int64, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return 0, err
	}
	g := New(opts)
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 256<<10)
	buf := make([]byte, 0, 512)
	for {
		var ok bool
		buf, ok = g.Next(buf[:0])
		if !ok {
			break
		}
		if _, err := bw.Write(buf); err != nil {
			return cw.n, fmt.Errorf("workload: write event %d: %w", g.n, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("workload: flush: %w", err)
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// fillTable spreads indexes over a 100-entry lookup table by percent weights.
func fillTable(table []uint8, weights []int) {
	i := 0
	for v, w := range weights {
		for range w {
			table[i] = uint8(v)
			i++
		}
	}
	if i != len(table) {
		panic(errors.New("workload: weights do not sum to 100"))
	}
}

// mix is splitmix64's finalizer: a fixed, well-spread function of x, used for
// the per-product category and per-customer name and country.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

// floorDiv divides rounding towards negative infinity; b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
