// flux-health-check: what Flux's kustomize-controller makes of an object through a
// Kustomization's healthCheckExprs (github.com/fluxcd/pkg/runtime/cel, the evaluator
// kustomize-controller v1.9.6 uses). The expressions come as a JSON file
// {"current": ..., "failed": ..., "inProgress": ...} (first argument); each object on stdin,
// one JSON per line, gives one line {"status": "Current|InProgress|Failed"}.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

type verdict struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: flux-health-check EXPRESSIONS.json < objects")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var exprs kustomize.HealthCheckExpressions
	if err := json.Unmarshal(raw, &exprs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	evaluator, err := cel.NewStatusEvaluator(&exprs)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for scanner.Scan() {
		if len(scanner.Bytes()) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(scanner.Bytes()); err != nil {
			_ = out.Encode(verdict{Error: err.Error()})
			continue
		}
		res, err := evaluator.Evaluate(context.Background(), obj)
		if err != nil {
			_ = out.Encode(verdict{Error: err.Error()})
			continue
		}
		_ = out.Encode(verdict{Status: res.Status.String()})
	}
}
