//go:build tools

// Package traefik pins Traefik, the Gateway API implementation of ArtPulse's
// local cluster. Nothing here is compiled into a program of ours: the blank
// import only keeps the module in go.mod so `go build` can find the command.
package traefik

import (
	_ "github.com/traefik/traefik/v3/cmd/traefik"
)
