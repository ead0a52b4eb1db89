//go:build tools

// Package prometheus pins the Prometheus server that scrapes ArtPulse's
// inference metrics. Nothing here is compiled into a program of ours: the
// blank imports only keep the module in go.mod so `go build` can find the
// command; the kubernetes import names the service discovery we rely on.
package prometheus

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/discovery/kubernetes"
)
