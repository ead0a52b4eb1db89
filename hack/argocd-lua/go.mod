module github.com/artpulse/artpulse/hack/argocd-lua

go 1.25.0

// The Lua VM and the Lua-to-JSON encoder at the versions Argo CD embeds (argo-cd v3.6 go.mod:
// gopher-lua v1.1.2, gopher-json 97fed8db8427); sigs.k8s.io/yaml reads the test files as
// Argo CD's tests do.
require (
	github.com/yuin/gopher-lua v1.1.2
	layeh.com/gopher-json v0.0.0-20190114024228-97fed8db8427
	sigs.k8s.io/yaml v1.6.0
)

require go.yaml.in/yaml/v2 v2.4.2 // indirect
