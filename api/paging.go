package api

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Paging of the realtime lists (docs/design.md, "History views"): ?limit=,
// ?offset=, ?sort= and ?q=, with the number of matching rows in "total".
// At 100,000 tunnels the whole list is tens of MB (docs/measurements.md,
// "Realtime list size"), so a list is paged by default; limit=all (or 0)
// asks for the whole list, for tools.
const (
	defaultPageLimit = 500
	maxPageLimit     = 10_000
	maxQueryBytes    = 256
)

// page is a parsed paging request.
type page struct {
	all    bool // the whole list, in the original form
	limit  int
	offset int
	sort   string // a key of the list's sort table
	desc   bool
	q      string // lower-cased search text; "" matches everything
}

// parsePage reads the paging parameters; keys are the list's sort keys,
// the first the default. Errors name the accepted values.
func parsePage(r *http.Request, keys []string) (page, error) {
	p := page{limit: defaultPageLimit, sort: keys[0]}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return p, fmt.Errorf("invalid query string: %w", err)
	}
	one := func(name string) (string, bool, error) {
		vals, ok := query[name]
		if !ok {
			return "", false, nil
		}
		if len(vals) != 1 {
			return "", true, fmt.Errorf("query parameter %q given more than once", name)
		}
		return vals[0], true, nil
	}
	if v, ok, err := one("limit"); err != nil {
		return p, err
	} else if ok {
		switch n, err := strconv.Atoi(v); {
		case v == "all" || (err == nil && n == 0):
			p.all = true
		case err != nil || n < 0 || n > maxPageLimit:
			return p, fmt.Errorf("invalid query parameter \"limit\": must be an integer from 1 to %d, or 0 or \"all\" for the whole list", maxPageLimit)
		default:
			p.limit = n
		}
	}
	if v, ok, err := one("offset"); err != nil {
		return p, err
	} else if ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, fmt.Errorf("invalid query parameter \"offset\": must be an integer from 0")
		}
		p.offset = n
	}
	if v, ok, err := one("sort"); err != nil {
		return p, err
	} else if ok {
		key, desc := strings.CutPrefix(v, "-")
		if !slices.Contains(keys, key) {
			return p, fmt.Errorf("invalid query parameter \"sort\": must be one of %s, each optionally prefixed with \"-\" for descending order", strings.Join(keys, ", "))
		}
		p.sort, p.desc = key, desc
	}
	if v, ok, err := one("q"); err != nil {
		return p, err
	} else if ok {
		if len(v) > maxQueryBytes || !utf8.ValidString(v) {
			return p, fmt.Errorf("invalid query parameter \"q\": must be valid UTF-8 of at most %d bytes", maxQueryBytes)
		}
		p.q = strings.ToLower(v)
	}
	return p, nil
}

// window returns the [from, to) indexes of the page in a list of n rows.
func (p page) window(n int) (int, int) {
	if p.all {
		return 0, n
	}
	from := min(p.offset, n)
	return from, min(from+p.limit, n)
}

// matches reports whether any of the fields holds the search text, ignoring
// case.
func (p page) matches(fields ...string) bool {
	if p.q == "" {
		return true
	}
	for _, f := range fields {
		if containsFold(f, p.q) {
			return true
		}
	}
	return false
}

// containsFold reports whether s holds lower (lower-cased), ignoring case,
// without allocating for ASCII text.
func containsFold(s, lower string) bool {
	if len(lower) > len(s) {
		return false
	}
	for i := 0; i+len(lower) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(lower)], lower) {
			return true
		}
	}
	// Case folding can change byte lengths outside ASCII.
	return utf8.ValidString(s) && !isASCII(s) && strings.Contains(strings.ToLower(s), lower)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// sortRow is what a list is sorted by: one text key and one number key,
// with the row's position in the natural order as the last tie-break.
type sortRow struct {
	text  string
	num   float64
	index int
}

// sortRows orders rows by text (when byText) or number, ascending or
// descending, ties in natural order.
func sortRows(rows []sortRow, byText, desc bool) {
	slices.SortFunc(rows, func(a, b sortRow) int {
		var c int
		if byText {
			c = strings.Compare(a.text, b.text)
		} else {
			c = cmp.Compare(a.num, b.num)
		}
		if desc {
			c = -c
		}
		if c == 0 {
			c = cmp.Compare(a.index, b.index)
		}
		return c
	})
}
