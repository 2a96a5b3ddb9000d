// kstatus-check: the kstatus verdict (sigs.k8s.io/cli-utils/pkg/kstatus/status, the library
// Flux's kustomize-controller and `kubectl wait`-style tools use) for each object given as JSON
// on stdin, one per line; prints one JSON line per object:
// {"status": "Current|InProgress|Failed|Terminating|NotFound|Unknown", "message": "..."}.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
}

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for scanner.Scan() {
		line := scanner.Bytes()
		if len(line) == 0 {
			continue
		}
		// UnmarshalJSON keeps integers as int64, as the API machinery reads them.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(line); err != nil {
			_ = out.Encode(verdict{Error: fmt.Sprintf("not a Kubernetes object: %v", err)})
			continue
		}
		res, err := status.Compute(obj)
		if err != nil {
			_ = out.Encode(verdict{Error: err.Error()})
			continue
		}
		_ = out.Encode(verdict{Status: res.Status.String(), Message: res.Message})
	}
	if err := scanner.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
