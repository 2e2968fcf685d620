package workload

import (
	"bufio"
	"io"
	"math/rand/v2"
	"strconv"
	"time"
)

// OrdersMapping is the source mapping of the CSV files WriteOrders writes,
// for the default retail schema: the shape of a shop's order-line export.
const OrdersMapping = `source: shop_orders
description: Order lines exported from a shop as CSV (the bench workload).
format: csv
events:
  - type: purchase
    id: "shop-{order_line}"
    key: customer
    time: {from: when, format: "2006-01-02 15:04:05"}
    fields:
      amount: amount
      product_id: product
      category: category
      channel: channel
`

// OrdersHeader is the header line of WriteOrders' files.
const OrdersHeader = "order_line,customer,when,amount,product,category,channel\n"

// WriteOrders writes opts.Events order lines as CSV with a header, numbered
// from first: customers drawn Zipf(ZipfS), products Zipf over Products, each
// with a fixed category, times spread over the Span before Now. The output
// is deterministic for the same options. It returns the bytes written.
func WriteOrders(w io.Writer, opts Options, first int) (int64, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewPCG(opts.Seed, uint64(first)))
	customers := rand.NewZipf(rng, opts.ZipfS, 1, uint64(opts.Customers-1))
	products := rand.NewZipf(rng, opts.ZipfS, 1, uint64(opts.Products-1))
	channels := [...]string{"web", "app", "store", "call_centre"}
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 256<<10)
	bw.WriteString(OrdersHeader)
	start := opts.Now.Add(-opts.Span)
	var line []byte
	for i := range opts.Events {
		p := products.Uint64() + 1
		line = strconv.AppendInt(line[:0], int64(first+i), 10)
		line = append(line, ",c-"...)
		line = strconv.AppendUint(line, customers.Uint64()+1, 10)
		line = append(line, ',')
		t := start.Add(time.Duration(rng.Int64N(int64(opts.Span))))
		line = t.AppendFormat(line, "2006-01-02 15:04:05")
		line = append(line, ',')
		line = strconv.AppendFloat(line, float64(100+rng.IntN(49900))/100, 'f', 2, 64)
		line = append(line, ",p-"...)
		line = strconv.AppendUint(line, p, 10)
		line = append(line, ",cat-"...)
		line = strconv.AppendUint(line, mix(p)%uint64(opts.Categories)+1, 10)
		line = append(line, ',')
		line = append(line, channels[rng.IntN(len(channels))]...)
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return cw.n, err
		}
	}
	err := bw.Flush()
	return cw.n, err
}
