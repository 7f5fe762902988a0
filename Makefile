# Two entry points for a fresh machine: `make run` (the demo on the embedded default store) and
# `make test` (the whole suite). Both install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := run

UNAME := $(shell uname -s)
# build-essential and python3: node-gyp compiles the native addon (native/entraclaw.c) with them.
# libglib2.0-bin: gdbus, with which test/shim/secret-tool.test.ts reads the real keyring's items.
# procps: pgrep, with which scripts/with-keyring.sh finds its own keyring daemon to stop (only pulled in
# by other packages otherwise).
DEB_PKGS := build-essential python3 dbus gnome-keyring libsecret-tools keyutils bubblewrap python3-keyring strace systemd \
	libglib2.0-bin procps
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test build deps system-deps lint typecheck bench clean install

system-deps:
ifeq ($(UNAME),Linux)
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then echo "make: please install:$$missing (no apt-get here)"; exit 1; fi; \
	  echo "make: installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null || \
	  { $(SUDO) apt-get update -q >/dev/null && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; }; \
	fi
endif

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# `npm ci` builds the addon itself (the package's install script): the stamp touched after it must not
# make it look stale, so node_modules comes first but is no reason to build again (order-only).
build/Release/entraclaw_native.node: native/entraclaw.c binding.gyp | node_modules/.stamp
	node scripts/build-native.mjs

# package.json's build script (tsc, then scripts/bundle.mjs): one definition for make and `npm run build`.
dist/.stamp: node_modules/.stamp $(shell find src -name '*.ts' 2>/dev/null) tsconfig.json scripts/bundle.mjs
	npm run -s build
	@touch $@

deps: system-deps node_modules/.stamp

build: deps build/Release/entraclaw_native.node dist/.stamp

lint: node_modules/.stamp
	npx biome check .

typecheck: node_modules/.stamp
	npx tsc -p tsconfig.test.json

test: build lint typecheck
	scripts/with-keyring.sh npx vitest run

run: build
	scripts/demo.sh

# `entraclaw` on your PATH: a link to this checkout's CLI (rebuilds show through it).
BINDIR ?= $(HOME)/.local/bin
install: build
	@mkdir -p "$(BINDIR)"
	@ln -sfn "$(CURDIR)/dist/cli/main.cjs" "$(BINDIR)/entraclaw"
	@echo "installed $(BINDIR)/entraclaw -> $(CURDIR)/dist/cli/main.cjs"
	@case ":$$PATH:" in *":$(BINDIR):"*) ;; *) echo "add it to PATH: export PATH=\"$(BINDIR):\$$PATH\"";; esac

bench: system-deps build
	scripts/with-keyring.sh sh -c 'node bench/stores.mjs && node bench/broker.mjs && node bench/shims.mjs'

clean:
	rm -rf dist build node_modules .demo
