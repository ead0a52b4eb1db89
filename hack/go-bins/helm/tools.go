//go:build tools

// Package helm pins Helm, which lints and renders charts/artpulse (make lint,
// tests/unit/ship/test_ship_helm_chart.py) and installs it (tests/e2e/test_e2e_helm.py).
// Nothing here is compiled into a program of ours: the blank import only keeps
// the module in go.mod so `go build` can find the command.
package helm

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
