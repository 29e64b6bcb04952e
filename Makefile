# entrasync: one Makefile for every module of the go.work workspace.
#
#   make run     the whole fleet in one process, with a demo tenant
#   make test    every test of every module (starts its own NATS and Postgres)
#   make bench   benchmarks, printed as a table
#   make proto   regenerate Go code from proto/ (tools come from the Go module proxy)
#   make build   binaries of every service into bin/

SHELL := /bin/bash
GO ?= go
MODULES := $(shell sed -n 's|^\t\./||p' go.work)
PKGS := $(addsuffix /...,$(addprefix ./,$(MODULES)))
SERVICES := api scheduler fetcher reconciler graphsim fleet
BUF_VERSION := v1.50.0
PROTOC_GEN_GO_VERSION := $(shell sed -n 's/^require google.golang.org\/protobuf //p' proto/go.mod)

.PHONY: run test bench proto build vet tidy deps clean-run

# Built, then run (not `go run`, which reports Ctrl-C as a failure).
run: deps
	@mkdir -p bin
	$(GO) build -o bin/fleet ./services/fleet/cmd/fleet
	exec bin/fleet

test: deps
	scripts/test.sh $(PKGS)

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

tidy:
	@for m in $(MODULES); do (cd $$m && $(GO) mod tidy) || exit 1; done

deps:
	@scripts/deps.sh

clean-run:
	rm -rf .run
