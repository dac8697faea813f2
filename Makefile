# tollgate: `make run` to see a decision, `make test` before every commit.
# The opa CLI is `go tool opa`, pinned by go.mod: nothing to install.

GO      ?= go
OPA     := $(GO) tool opa
BIN     := bin/tollgate
BUNDLE  := bundles/tollgate
# The embedded store: the CLI's default --data-dir, so that `bin/tollgate
# token create`, `replay`, `ledger verify`… without --data-dir read the
# store `make run` writes (test/readme_test.go checks that they agree).
DATA    := .data/tollgate

# The development licence: a key pair of its own and a licence valid one
# year, made once and kept in .data/ (git-ignored). Delete .data/dev for new ones.
DEV         := .data/dev
DEV_PRIVATE := $(DEV)/license-private.pem
DEV_PUBLIC  := $(DEV)/license-public.pem
DEV_LICENCE := $(DEV)/licence.jwt

.DELETE_ON_ERROR:
.PHONY: build dev-licence run eval prereqs test test-deploy lint bench bench-go bench-scale wrk fuzz clean image dist

# go build decides what is stale, so this always runs it.
build:
	$(GO) build -o $(BIN) ./cmd/tollgate

dev-licence: $(DEV_LICENCE)

# keygen writes both keys at once. The binary is an order-only prerequisite:
# rebuilding it must not replace the keys. The second rule only runs when the
# public key alone is missing (or, harmlessly, a second time under make -j).
$(DEV_PRIVATE): | build
	$(BIN) license keygen --force --out $(DEV)

$(DEV_PUBLIC): | $(DEV_PRIVATE)
	$(BIN) license keygen --force --out $(DEV)

# A new key pair needs a new licence, hence the normal prerequisites.
$(DEV_LICENCE): $(DEV_PRIVATE) $(DEV_PUBLIC)
	$(BIN) license issue --key $(DEV_PRIVATE) --subject "tollgate development" --valid-for 8760h > $@

# The server on the embedded store ($(DATA)) with the default bundle and
# the development licence, on 127.0.0.1:8181 (TOLLGATE_ADDR to change it),
# WITHOUT AUTHENTICATION (--dev): for development only.
# Edits to bundles/tollgate are picked up while it runs. Ctrl-C stops it.
run: build $(DEV_LICENCE)
	$(BIN) serve --dev --bundle $(BUNDLE) --data-dir $(DATA) \
		--license $(DEV_LICENCE) --license-key $(DEV_PUBLIC)

# One decision now, without a server: exit 1 (refused) is a normal outcome.
eval: build $(DEV_LICENCE)
	$(BIN) eval --bundle $(BUNDLE) --license $(DEV_LICENCE) --license-key $(DEV_PUBLIC) \
		--input examples/request.json || test $$? -eq 1

# What make test needs beyond Go (PostgreSQL, Chromium…), checked first:
# it names what is missing and the command that installs it.
prereqs:
	@.ci/prereqs

test: prereqs build
	@files="$$(gofmt -l .)"; if [ -n "$$files" ]; then echo "gofmt needed (run gofmt -w on them):"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -timeout 30m ./...
	$(OPA) test $(BUNDLE)
	$(OPA) check --strict $(BUNDLE)
	@files="$$($(OPA) fmt --list $(BUNDLE))"; if [ -n "$$files" ]; then echo "opa fmt needed (run go tool opa fmt -w on them):"; echo "$$files"; exit 1; fi
	$(BIN) test --coverage-min 90 $(BUNDLE)
	$(MAKE) test-deploy

# The deployment tools module (deploy/go.mod, apart so that the server's
# go.mod stays lean): the Helm chart linted, rendered and decoded strictly
# into the Kubernetes API types; the container image, the release archives
# and the systemd unit. The first run downloads and builds Helm, the
# Kubernetes API modules and go-containerregistry (minutes); later runs take
# seconds. Without -race: release tools, one goroutine each, whose tests
# build the image and an archive twice; -race would only slow their gzip.
test-deploy:
	cd deploy && $(GO) vet ./... && $(GO) test -timeout 30m ./...

lint:
	@files="$$(gofmt -l .)"; if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	cd deploy && $(GO) vet ./...
	@files="$$($(OPA) fmt --list $(BUNDLE))"; if [ -n "$$files" ]; then echo "opa fmt needed:"; echo "$$files"; exit 1; fi
	$(OPA) check --strict $(BUNDLE)

# The load harness (test/bench, its README says more): tollgate on the
# embedded store and on a throwaway PostgreSQL, stock `opa run --server` on
# the same Rego and a bare net/http handler, each loaded by wrk with the same
# requests; one table, saved as JSON in test/bench/results/. It needs wrk
# (Debian's package, installed if missing) and PostgreSQL (as make test).
# BENCH_FLAGS="-duration 30s" for longer runs.
bench: wrk
	$(GO) run ./test/bench -mode compare $(BENCH_FLAGS)

# Scale: 10 vs 10,000 projects and an empty history vs a million decisions,
# RSS under load, reloads every second under load; then the engine's
# evaluation at 10 and 10,000 projects as a Go benchmark.
bench-scale: wrk
	$(GO) test -run '^$$' -bench 'EvaluateProjects' -benchmem -count 3 ./rego/
	$(GO) run ./test/bench -mode scale $(BENCH_FLAGS)

# The engine's benchmarks, then stock `opa bench` on the same bundle, data
# and input in the same run: compare them as a ratio on a noisy machine.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./rego/
	$(OPA) bench --count 3 -d $(BUNDLE) -i rego/testdata/opa-bench/input.json data.tollgate.decision

# Every Go fuzz target for FUZZTIME each (go test -fuzz takes one target
# per run). Seeds: the f.Add calls (from the realistic test files) and the
# committed corpora in each package's testdata/fuzz/<FuzzName>/, which plain
# `go test` also runs. A failure writes the input there: commit it with the
# fix. Minimisation is off: the seeds are kilobytes, and minimising every
# new input that size would take the fuzzer most of its time.
FUZZTIME ?= 10s
fuzz:
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for target in $$(grep -h '^func Fuzz' $$dir/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "== $$dir $$target ($(FUZZTIME))"; \
			$(GO) test $$dir -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 0s; \
		done; \
	done

# wrk, the load generator, from Debian's packages (only the benchmarks need it).
wrk:
	@command -v wrk >/dev/null || { \
		sudo=; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		echo "installing wrk (Debian package)"; \
		$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk; }

# Release artefacts, reproducible: the same commit and Go toolchain give the
# same bytes (every date is the commit's, paths trimmed, entries sorted).
# VERSION names the release (default devel). The tools live in the deploy/
# module (deploy/go.mod), so the server's go.mod stays lean.
VERSION   ?= devel
PLATFORMS ?= linux/amd64

# The container image without Docker or a registry: an OCI image layout in
# dist/image (skopeo copy oci:dist/image docker://…, crane push --index …) and
# dist/tollgate-image.tar for docker load. PLATFORMS=linux/amd64,linux/arm64
# for both.
image:
	cd deploy && $(GO) run ./image -repo .. -version $(VERSION) -platforms $(PLATFORMS) \
		-out ../dist/image -tarball ../dist/tollgate-image.tar -tag tollgate:$(VERSION)

# dist/tollgate_$(VERSION)_{linux,darwin}_{amd64,arm64}.tar.gz (binary,
# LICENSE, README.md), a CycloneDX SBOM of each binary (.cdx.json, made by
# cyclonedx-gomod, pinned in deploy/go.mod) and dist/SHA256SUMS.
DIST_PLATFORMS ?= linux/amd64,linux/arm64,darwin/amd64,darwin/arm64
dist:
	cd deploy && $(GO) run ./dist -repo .. -version $(VERSION) -platforms $(DIST_PLATFORMS) -out ../dist

clean:
	rm -rf bin dist .data/dev $(DATA)
