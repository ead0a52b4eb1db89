//go:build tools

// Package kubebins pins the control-plane and node programs that ArtPulse's tests and
// local cluster run. Nothing here is compiled into a program of ours: the
// blank imports only keep the modules in go.mod so `go build` can find them.
package kubebins

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "sigs.k8s.io/gateway-api/apis/v1"
)
