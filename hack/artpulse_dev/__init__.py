"""Development tooling for ArtPulse: real parts started as local processes.

Not part of the product. The test fixtures and the local cluster (`make cluster-up`,
`make demo`) use it to run a real kube-apiserver + etcd, a real MLflow server and a
real Prometheus on loopback, because no container runtime exists where we develop.
"""
