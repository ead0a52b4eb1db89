# ArtPulse: progressive delivery of ML models on Kubernetes.
# `make help` lists every command; README.md shows the same ones.

SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
PYTEST_ARGS ?=
# e.g. LOADTEST_ARGS='--duration 10 --namespace ml --name art-classifier'; REPORT_ARGS the same for the one-pager.
LOADTEST_ARGS ?=
REPORT_ARGS ?=
# Argo CD resource customizations (Argo CD's layout) and the argocd-cm actions value made from them.
ARGOCD_LUA_ROOT := manifests/argocd/resource_customizations
ARGOCD_LUA_MODEL := $(ARGOCD_LUA_ROOT)/artpulse.io/ArtPulseModel
ARGOCD_ACTIONS := manifests/argocd/artpulsemodel-actions.yaml
# The Helm chart, and the helm that lints and renders it (hack/go-bins, built once).
CHART := charts/artpulse
HELM = $$(bash hack/go-bins/build.sh helm)

.PHONY: help install kube-bins release plugin-dist argocd-lua argocd-lua-test argocd-lua-bundle helm chart-files lint fmt test test-unit test-integration test-e2e \
        cluster-up cluster-down cluster-status images peers demo loadtest loadtest-report business-impact-report bench bench-judge bench-mlflow-webhook bench-inference bench-images lock oip-proto kind-up kind-down monitoring-up monitoring-down clean

help: ## List every command
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Create .venv and install everything (Python deps, containerd, runc, CNI, buildah, chromium); idempotent
	@bash hack/install.sh

kube-bins: install ## Build Kubernetes (apiserver, etcd, controller-manager, scheduler, kubelet, kube-proxy, kubectl) from Go modules into ~/.cache/artpulse (once)
	@$(PY) -m artpulse_dev.controlplane build

plugin-dist: ## The kubectl plugin as one file: dist/kubectl-artpulse (a Python zipapp), its release tarball and dist/krew-artpulse.yaml with the tarball's sha256
	@python3 plugin/build_dist.py --out dist

images: install ## Build the images (operator, inference, pause, coredns, traefik, prometheus) with buildah into ~/.cache/artpulse/images (cached)
	@bash hack/images.sh build

argocd-lua: ## Build hack/argocd-lua (Argo CD's Lua tests in gopher-lua) into ~/.cache/artpulse/bin (once per source change)
	@bash hack/argocd-lua/build.sh >/dev/null

argocd-lua-test: argocd-lua ## Argo CD health and action tests of manifests/argocd/resource_customizations in gopher-lua; the bundled actions are current
	@bin=$$(bash hack/argocd-lua/build.sh) && "$$bin" test $(ARGOCD_LUA_ROOT) \
	  && "$$bin" bundle -check $(ARGOCD_LUA_MODEL) $(ARGOCD_ACTIONS)

argocd-lua-bundle: argocd-lua ## Rewrite manifests/argocd/artpulsemodel-actions.yaml (the argocd-cm actions value) from actions/*.lua
	@bin=$$(bash hack/argocd-lua/build.sh) && "$$bin" bundle $(ARGOCD_LUA_MODEL) $(ARGOCD_ACTIONS)

helm: ## Build helm (Helm 4, from its Go module pinned in hack/go-bins/helm) into ~/.cache/artpulse/bin (once)
	@bash hack/go-bins/build.sh helm >/dev/null

chart-files: ## Copy into charts/artpulse what it ships from elsewhere: the CRDs, Prometheus rules, Grafana dashboards, Argo CD scripts, LICENSE
	cp crds/artpulsemodel.yaml crds/artpulsemetrictemplate.yaml manifests/crds/kopf-peering-crds.yaml $(CHART)/crds/
	rm -f $(CHART)/files/prometheus-rules/* $(CHART)/files/grafana-dashboards/*
	cp observability/prometheus/rules/*.yml $(CHART)/files/prometheus-rules/
	cp observability/grafana/dashboards/*.json $(CHART)/files/grafana-dashboards/
	cp $(ARGOCD_LUA_MODEL)/health.lua $(ARGOCD_ACTIONS) $(CHART)/files/argocd/
	cp LICENSE $(CHART)/LICENSE

lint: install argocd-lua-test helm ## ruff (lint + format check), mypy, import-linter, hadolint, promtool, the Argo CD Lua tests, helm lint and template of the chart
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint Dockerfile.operator Dockerfile.inference images/*/Dockerfile
	promtool check rules observability/prometheus/rules/*.yml
	promtool test rules observability/prometheus/tests/*.yml
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --set rbac.scope=namespace
	$(HELM) template artpulse $(CHART) -n artpulse-system --include-crds >/dev/null
	$(HELM) template artpulse $(CHART) -n artpulse-system --set rbac.scope=namespace >/dev/null
	$(HELM) template artpulse $(CHART) -n artpulse-system --set monitoring.podMonitor.enabled=true \
	  --set monitoring.prometheusRule.enabled=true --set grafana.dashboards.enabled=true --set argocd.enabled=true >/dev/null

fmt: install ## Format and autofix with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: install kube-bins images peers lint ## Install, lint, then every test (unit, integration, e2e) in one session
	@$(PYTEST) tests $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; fi; exit $$rc

test-unit: install ## Unit tests only (no I/O)
	$(PYTEST) tests/unit $(PYTEST_ARGS)

test-integration: install kube-bins peers ## Integration tests (real API server, the real node, MLflow, Prometheus, MLServer/KServe peers)
	$(PYTEST) tests/integration $(PYTEST_ARGS)

test-e2e: install kube-bins ## The end-to-end story on the local cluster
	$(PYTEST) tests/e2e $(PYTEST_ARGS)

cluster-up: install kube-bins ## Start the local one-node cluster with ArtPulse as pods (operator, MLflow, Prometheus, Traefik)
	@$(PY) -m artpulse_dev.localcluster up

cluster-down: install ## Stop the local cluster; leaves no process, container, mount or iptables rule
	@$(PY) -m artpulse_dev.localcluster down

cluster-status: install ## The local cluster's pods and where its parts are
	@$(PY) -m artpulse_dev.localcluster status

release: install ## Render the install bundles into dist/: install.yaml (cluster-wide), namespace-install.yaml (Roles, one namespace), crds.yaml, quickstart.yaml
	@$(PY) -m artpulse_dev.release

peers: ## The servers we are compared with (MLServer + mlserver-sklearn, KServe), each in its own venv under ~/.cache/artpulse/peers (cached)
	@bash hack/peers.sh

demo: install kube-bins ## The whole story on the local cluster: train, roll out, promote, roll back a bad model (a few minutes)
	@$(PY) hack/demo.py

loadtest: install ## k6 (else wrk) through the local cluster's Gateway at a served model (one is set up if none); raw results in artifacts/loadtest/
	@$(PY) loadtest/cluster_reports.py loadtest $(LOADTEST_ARGS)

loadtest-report: install ## artifacts/loadtest_report.md from artifacts/loadtest/*.json and the machine
	@$(PY) loadtest/cluster_reports.py loadtest-report

business-impact-report: install ## artifacts/business_impact_onepager.md: p95 (Prometheus), accuracy/F1 (MLflow), lead and rollback times (status), each with its source
	@$(PY) loadtest/cluster_reports.py business-impact $(REPORT_ARGS)

bench: install kube-bins peers ## Run the benchmarks in loadtest/ and write docs/benchmarks.md
	$(PY) loadtest/bench_features.py
	$(PY) loadtest/bench_inference.py
	$(PY) loadtest/bench_operator.py
	$(PY) loadtest/bench_hostile_images.py
	$(PY) loadtest/bench_judge.py --rollouts 1000
	$(MAKE) bench-mlflow-webhook

bench-judge: install ## The sequential judge vs today's threshold gates, 1,000 simulated rollouts per cell (docs/benchmarks.md)
	$(PY) loadtest/bench_judge.py --rollouts 1000

bench-mlflow-webhook: install kube-bins ## Challenger moved -> rollout started, MLflow webhook vs polling, real operator and API server (docs/benchmarks.md)
	ARTPULSE_WRITE_BENCHMARKS=1 $(PY) -m pytest -q -s tests/integration/operator/test_operator_mlflow_webhook_rollout.py

bench-inference: install peers ## Ours (/predict, OIP /infer) vs MLServer, KServe (ModelServer + scikit-learn), mlflow serve and a bare endpoint (docs/benchmarks.md)
	$(PY) loadtest/bench_inference.py

bench-images: install ## Peak RSS of the inference server under concurrent hostile image uploads (docs/benchmarks.md)
	$(PY) loadtest/bench_hostile_images.py

lock: ## Re-pin constraints.txt from the current .venv (after changing dependencies)
	$(VENV)/bin/pip freeze --exclude-editable | grep -v '^artpulse' > constraints.txt

oip-proto: install ## Regenerate the committed gRPC code of the Open Inference Protocol from its .proto (grpcio-tools)
	cd inference && ../$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \
	  artpulse_inference/server/oip_proto/grpc_predict_v2.proto
	@# A descriptor pool of its own: MLServer's, KServe's and Triton's clients define the same messages.
	sed -i 's/_descriptor_pool.Default().AddSerializedFile(/_descriptor_pool.DescriptorPool().AddSerializedFile(/' \
	  inference/artpulse_inference/server/oip_proto/grpc_predict_v2_pb2.py

kind-up: ## (needs Docker and kind; not runnable here: no kind node image) kind cluster with the same images and overlay
	@bash hack/kind.sh up

kind-down: ## (needs Docker and kind) delete the kind cluster
	@bash hack/kind.sh down

monitoring-up: ## (needs Docker) Prometheus + Grafana with the ArtPulse rules and dashboards
	docker compose -f observability/compose.yaml up -d

monitoring-down: ## (needs Docker) stop the monitoring stack and drop its data
	docker compose -f observability/compose.yaml down -v

clean: ## Remove local state (.artpulse/, artifacts/); keeps .venv and the binary cache
	rm -rf .artpulse artifacts .pytest_cache .mypy_cache .ruff_cache
