// Package datasets ships the schemas and source mappings that import the
// public customer datasets Twinhub is tested and demonstrated on (see
// ../shared/data/README.md for what each is and its licence). The data
// itself is not shipped; `twinhub demo` reads it from a directory.
package datasets

import (
	"embed"
	"fmt"
	"path"
	"sort"
	"strings"
)

//go:embed */*.yaml
var files embed.FS

// Dataset is one importable dataset.
type Dataset struct {
	Name        string
	Title       string
	Attribution string
	Schema      []byte
	// Sources are imported in this order: profiles and orders before the
	// rows that refer to them, so the tour reads naturally.
	Sources []Source
}

// Source is one file of a dataset and the mapping that reads it.
type Source struct {
	File    string // file name in the dataset's directory
	Mapping []byte
}

type spec struct {
	title, attribution string
	sources            [][2]string // mapping file, data file
}

var specs = map[string]spec{
	"cdnow": {
		title:       "CDNOW purchase log: 69,659 purchases of 23,544 customers, 1997-1998",
		attribution: "Fader & Hardie, CDNOW master data set (research and teaching use)",
		sources:     [][2]string{{"purchases.yaml", "cdnow_master_restored.csv"}},
	},
	"olist": {
		title:       "Olist Brazilian e-commerce: 8,135 orders of 8,016 people with items, payments and reviews",
		attribution: "Olist, Brazilian E-Commerce Public Dataset (CC BY-NC-SA 4.0)",
		sources: [][2]string{
			{"orders.yaml", "olist_orders_dataset.csv"},
			{"customers.yaml", "olist_customers_dataset.csv"},
			{"items.yaml", "olist_order_items_dataset.csv"},
			{"payments.yaml", "olist_order_payments_dataset.csv"},
			{"reviews.yaml", "olist_order_reviews_dataset.csv"},
		},
	},
	"telco": {
		title:       "IBM Telco customer churn: 7,043 customers with services, charges and churn",
		attribution: "IBM, telco-customer-churn-on-icp4d sample data (Apache-2.0 repository)",
		sources:     [][2]string{{"customers.yaml", "Telco-Customer-Churn.csv"}},
	},
	"ciaodvd": {
		title:       "CiaoDVD: 72,665 movie ratings by 17,615 members",
		attribution: "Guo, Zhang, Thalmann, Yorke-Smith: ETAF, ASONAM 2014 (research use)",
		sources:     [][2]string{{"ratings.yaml", "ciao_ratings.txt"}},
	},
}

// Names lists the datasets, sorted.
func Names() []string {
	names := make([]string, 0, len(specs))
	for n := range specs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Get returns the dataset called name.
func Get(name string) (Dataset, error) {
	sp, ok := specs[name]
	if !ok {
		return Dataset{}, fmt.Errorf("no dataset %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	d := Dataset{Name: name, Title: sp.title, Attribution: sp.attribution}
	var err error
	if d.Schema, err = files.ReadFile(path.Join(name, "schema.yaml")); err != nil {
		return Dataset{}, err
	}
	for _, s := range sp.sources {
		m, err := files.ReadFile(path.Join(name, s[0]))
		if err != nil {
			return Dataset{}, err
		}
		d.Sources = append(d.Sources, Source{File: s[1], Mapping: m})
	}
	return d, nil
}
