// Command pause is the pod sandbox ("infra") process of ArtPulse's local
// cluster: the first process of every pod, which holds the pod's namespaces
// open while the app containers come and go.
//
// It exists because this machine has no container registry to pull
// registry.k8s.io/pause from, so we build our own from the standard library.
// It does what Kubernetes' build/pause/linux/pause.c does: exit 0 on SIGINT or
// SIGTERM, reap zombie children on SIGCHLD (it is PID 1 of the pod when the
// PID namespace is shared), and otherwise sleep. `pause -v` prints its version.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped by hack/go-bins/build.sh with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Printf("pause.go %s\n", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}

	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		switch sig {
		case syscall.SIGCHLD:
			reap()
		default:
			fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", sig)
			os.Exit(0)
		}
	}
}

// reap collects every child that has exited; signals coalesce, so one SIGCHLD
// may stand for several.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
