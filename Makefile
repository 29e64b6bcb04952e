# entrasync: one Makefile for every module of the go.work workspace.
#
#   make run     the whole fleet in one process, with a demo tenant
#   make test    every test of every module (starts its own NATS and Postgres)
#   make bench   benchmarks, printed as a table and kept in bench/RESULTS.md
#   make proto   regenerate Go code from proto/ (tools come from the Go module proxy)
#   make sqlc    regenerate libs/store's query code from its SQL (libs/store/sqlc.yaml)
#   make build   binaries of every service into bin/

SHELL := /bin/bash
GO ?= go
MODULES := $(shell sed -n 's|^\t\./||p' go.work)
PKGS := $(addsuffix /...,$(addprefix ./,$(MODULES)))
SERVICES := api scheduler fetcher reconciler notifier graphsim fleet
BUF_VERSION := v1.50.0
PROTOC_GEN_GO_VERSION := $(shell sed -n 's/^require google.golang.org\/protobuf //p' proto/go.mod)
SQLC_VERSION := v1.31.1

.PHONY: run test fuzz bench proto sqlc build vet tidy deps clean-run

# Built, then run (not `go run`, which reports Ctrl-C as a failure).
run: deps
	@mkdir -p bin
	$(GO) build -o bin/fleet ./services/fleet/cmd/fleet
	exec bin/fleet

test: deps
	scripts/test.sh $(PKGS)

# Each fuzz target for FUZZTIME (default 10000x: inputs, not seconds); CI runs it after make test.
fuzz: deps
	scripts/fuzz.sh

bench: deps
	scripts/bench.sh

vet:
	$(GO) vet $(PKGS)

build:
	@mkdir -p bin
	@for s in $(SERVICES); do echo "build $$s"; $(GO) build -o bin/$$s ./services/$$s/cmd/$$s || exit 1; done

proto:
	GOBIN=$(CURDIR)/bin $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	cd proto && ../bin/buf lint && ../bin/buf generate

# sqlc at SQLC_VERSION: the one on PATH or in GOPATH/bin when it is that
# version, else bin/sqlc from the Go module proxy (it compiles libpg_query
# with cgo: minutes the first time). The generated code is committed;
# building and testing never need sqlc.
sqlc:
	@s=$$(command -v sqlc || echo "$$($(GO) env GOPATH)/bin/sqlc"); \
	if ! "$$s" version 2>/dev/null | grep -qx '$(SQLC_VERSION)'; then \
		s=$(CURDIR)/bin/sqlc; \
		"$$s" version 2>/dev/null | grep -qx '$(SQLC_VERSION)' || \
			GOBIN=$(CURDIR)/bin $(GO) install github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION) || exit 1; \
	fi; \
	echo "$$s generate (libs/store)"; cd libs/store && "$$s" generate

tidy:
	@for m in $(MODULES); do (cd $$m && $(GO) mod tidy) || exit 1; done

deps:
	@scripts/deps.sh

clean-run:
	rm -rf .run
