//go:build tools

// Package coredns pins CoreDNS, the cluster DNS of ArtPulse's local cluster
// (built with its default plugin set, which includes kubernetes and forward).
// Nothing here is compiled into a program of ours: the blank import only keeps
// the module in go.mod so `go build github.com/coredns/coredns` can find it.
package coredns

import (
	_ "github.com/coredns/coredns"
)
