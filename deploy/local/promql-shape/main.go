// promql-shape prints the parse tree of PromQL expressions as JSON, using Prometheus' own
// parser, so rollwise's tests can prove that a rendered gate query has its template's shape.
//
// Input: one JSON string per line on stdin (a query). Output: one JSON object per line:
// {"ok": true, "tree": {...}} or {"ok": false, "error": "..."}.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

type node map[string]any

func dur(d time.Duration) int64 { return d.Milliseconds() }

func matchers(e *parser.VectorSelector) []node {
	out := []node{}
	for _, m := range e.LabelMatchers {
		out = append(out, node{"name": m.Name, "type": m.Type.String(), "value": m.Value})
	}
	return out
}

func num(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	return v
}

func tree(e parser.Node) any {
	switch e := e.(type) {
	case nil:
		return nil
	case *parser.AggregateExpr:
		return node{"node": "Aggregate", "op": e.Op.String(), "grouping": e.Grouping, "without": e.Without,
			"expr": tree(e.Expr), "param": tree(e.Param)}
	case *parser.BinaryExpr:
		n := node{"node": "Binary", "op": e.Op.String(), "lhs": tree(e.LHS), "rhs": tree(e.RHS),
			"bool": e.ReturnBool}
		if e.VectorMatching != nil {
			n["matching"] = node{"card": e.VectorMatching.Card.String(), "on": e.VectorMatching.On,
				"labels": e.VectorMatching.MatchingLabels, "include": e.VectorMatching.Include}
		}
		return n
	case *parser.Call:
		args := []any{}
		for _, a := range e.Args {
			args = append(args, tree(a))
		}
		return node{"node": "Call", "func": e.Func.Name, "args": args}
	case *parser.MatrixSelector:
		return node{"node": "Matrix", "vector": tree(e.VectorSelector), "range": dur(e.Range)}
	case *parser.SubqueryExpr:
		return node{"node": "Subquery", "expr": tree(e.Expr), "range": dur(e.Range),
			"step": dur(e.Step), "offset": dur(e.OriginalOffset)}
	case *parser.NumberLiteral:
		return node{"node": "Number", "value": num(e.Val)}
	case *parser.ParenExpr:
		return node{"node": "Paren", "expr": tree(e.Expr)}
	case *parser.StringLiteral:
		return node{"node": "String", "value": e.Val}
	case *parser.UnaryExpr:
		return node{"node": "Unary", "op": e.Op.String(), "expr": tree(e.Expr)}
	case *parser.StepInvariantExpr:
		return tree(e.Expr)
	case *parser.VectorSelector:
		return node{"node": "Vector", "name": e.Name, "matchers": matchers(e),
			"offset": dur(e.OriginalOffset)}
	default:
		return node{"node": fmt.Sprintf("%T", e)}
	}
}

var promql = parser.NewParser(parser.Options{})

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var q string
		if err := json.Unmarshal(in.Bytes(), &q); err != nil {
			_ = out.Encode(node{"ok": false, "error": "input is not a JSON string: " + err.Error()})
			continue
		}
		expr, err := promql.ParseExpr(q)
		if err != nil {
			_ = out.Encode(node{"ok": false, "error": err.Error()})
			continue
		}
		_ = out.Encode(node{"ok": true, "tree": tree(expr)})
	}
}
