package promapi

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// checkQueryText bounds a query before the parser sees it, in one linear
// scan: its length, the nesting of ( and [ and the number of operators
// outside label matchers. Prometheus' parser takes time quadratic in the
// nesting and in the length of operator chains, and cannot be stopped: a
// long query of parentheses keeps a core busy for minutes
// (docs/measurements.md, "Query limits"). The scan skips string literals
// and comments, so text inside them costs nothing.
func (a *API) checkQueryText(q string) error {
	if q == "" {
		return errors.New("query must not be empty")
	}
	if len(q) > a.opts.MaxQueryBytes {
		return fmt.Errorf("query is %d bytes, more than the limit of %d", len(q), a.opts.MaxQueryBytes)
	}
	depth, maxDepth, braces, operators := 0, 0, 0, 0
	for i := 0; i < len(q); i++ {
		switch c := q[i]; c {
		case '"', '\'', '`':
			i = skipString(q, i)
		case '#':
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case '(', '[':
			depth++
			maxDepth = max(maxDepth, depth)
		case ')', ']':
			depth--
		case '{':
			braces++
		case '}':
			braces--
		case '+', '-', '*', '/', '%', '^', '=', '!', '<', '>':
			if braces <= 0 {
				operators++
			}
		default:
			if isWordStart(c) {
				j := i
				for j < len(q) && isWordByte(q[j]) {
					j++
				}
				if braces <= 0 && isWordOperator(q[i:j]) {
					operators++
				}
				i = j - 1
			}
		}
		if maxDepth > a.opts.MaxQueryDepth {
			return fmt.Errorf("query nests parentheses or brackets deeper than the limit of %d", a.opts.MaxQueryDepth)
		}
		if operators > a.opts.MaxQueryOperators {
			return fmt.Errorf("query has more than the limit of %d operators", a.opts.MaxQueryOperators)
		}
	}
	return nil
}

// skipString returns the index of the quote closing the string literal
// opened at q[i] (the end of q when it is not closed: the parser then
// reports it). Backslash escapes apply in "" and ” but not in “.
func skipString(q string, i int) int {
	quote := q[i]
	for i++; i < len(q); i++ {
		switch q[i] {
		case '\\':
			if quote != '`' {
				i++
			}
		case quote:
			return i
		}
	}
	return len(q)
}

func isWordStart(c byte) bool {
	return c == '_' || c == ':' || (c|0x20) >= 'a' && (c|0x20) <= 'z'
}

func isWordByte(c byte) bool { return isWordStart(c) || c >= '0' && c <= '9' }

// isWordOperator reports the binary operators spelled as words.
func isWordOperator(w string) bool {
	if len(w) > 6 {
		return false
	}
	var b [6]byte
	for i := range len(w) {
		b[i] = w[i] | 0x20
	}
	switch string(b[:len(w)]) {
	case "and", "or", "unless", "atan2":
		return true
	}
	return false
}

// checkSteps refuses, before evaluation, a query that would be evaluated
// at more than MaxSubquerySteps steps anywhere. The engine evaluates a
// subquery once across the whole span around it (the query's end - start,
// plus the ranges of the subqueries it sits in) at the subquery's step,
// and allocates that many points per series up front, before any sample
// limit applies: count_over_time(vector(1)[30d:1ms]) asked for 2.6e9 steps
// and tens of GB. span is zero for an instant query.
func (a *API) checkSteps(expr parser.Expr, span time.Duration) error {
	limit := float64(a.opts.MaxSubquerySteps)
	var err error
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		sq, ok := node.(*parser.SubqueryExpr)
		if !ok {
			return nil
		}
		outer := float64(span)
		for _, p := range path {
			if o, ok := p.(*parser.SubqueryExpr); ok && o != sq {
				outer += float64(o.Range)
			}
		}
		step := sq.Step
		if step <= 0 {
			step = noStepSubqueryInterval
		}
		if steps := (outer + float64(sq.Range)) / float64(step); steps > limit {
			err = fmt.Errorf("subquery [%s:%s] would be evaluated at %.4g steps, more than the limit of %d; use a coarser subquery step",
				model.Duration(sq.Range), model.Duration(step), steps, a.opts.MaxSubquerySteps)
			return err
		}
		return nil
	})
	return err
}
