# Keel: `make up` starts a single-node cluster; `make test` runs every test. Both install what is missing.
SHELL := /bin/bash
CARGO ?= cargo
DATA_DIR ?= /var/lib/keel
LISTEN ?= 127.0.0.1:6443
# Debian packages the build and the tests need: etcd (etcd store tests), protoc (etcd-client protos),
# libprotobuf-dev (google/protobuf/*.proto includes), clang/llvm (eBPF objects), iproute2/nftables (node tests,
# keel-cni masquerade), curl (make up readiness), containernetworking-plugins (reference bridge/host-local/bandwidth
# plugins for keel-cni tests and bench), util-linux (nsenter).
APT_PKGS := etcd-server etcd-client protobuf-compiler libprotobuf-dev clang llvm iproute2 nftables curl ca-certificates \
	pkg-config containernetworking-plugins util-linux

.PHONY: deps build up down test lint bench-api bench-cni

deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@command -v kubectl >/dev/null || { echo "kubectl is missing: install stock kubectl (v1.32) at /usr/bin/kubectl"; exit 1; }
	@command -v cargo-nextest >/dev/null || $(CARGO) install --locked cargo-nextest

build: deps
	$(CARGO) build --release -p keel -p keel-cni

up: build
	@mkdir -p $(DATA_DIR)
	@if [ -f $(DATA_DIR)/server.pid ] && kill -0 $$(cat $(DATA_DIR)/server.pid) 2>/dev/null; then \
		echo "keel server already running (pid $$(cat $(DATA_DIR)/server.pid))"; \
	else \
		nohup target/release/keel server --data-dir $(DATA_DIR) --listen $(LISTEN) >$(DATA_DIR)/server.log 2>&1 & \
		echo $$! > $(DATA_DIR)/server.pid; \
	fi
	@for i in $$(seq 1 100); do \
		curl -fsk https://$(LISTEN)/readyz >/dev/null 2>&1 && break; \
		kill -0 $$(cat $(DATA_DIR)/server.pid) 2>/dev/null || { echo "keel server exited:"; tail -20 $(DATA_DIR)/server.log; exit 1; }; \
		sleep 0.1; \
	done
	@kubectl --kubeconfig $(DATA_DIR)/kubeconfig.yaml get namespaces
	@echo
	@echo "Keel is up (log: $(DATA_DIR)/server.log). Use it with stock kubectl:"
	@echo "  export KUBECONFIG=$(DATA_DIR)/kubeconfig.yaml"
	@echo "  kubectl apply -f examples/demo.yaml && kubectl get deploy,pods,svc"
	@echo "Stop it with: make down"

down:
	@if [ -f $(DATA_DIR)/server.pid ]; then kill $$(cat $(DATA_DIR)/server.pid) 2>/dev/null || true; rm -f $(DATA_DIR)/server.pid; fi

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: deps lint
	$(CARGO) build -p keel -p keel-cni
	$(CARGO) nextest run --workspace --no-fail-fast

bench-api: build
	target/release/keel bench api

bench-cni: build
	target/release/keel bench cni --plugin target/release/keel-cni
