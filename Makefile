# spanguard: `make demo` shows it working, `make test` runs every test.
# Everything a target needs (cbindgen, a Python virtualenv, npm and Go
# modules) is installed by the target itself.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

CARGO      ?= cargo
PYTHON3    ?= python3
CC         ?= gcc
CBINDGEN_VERSION := 0.29.4
CARGO_FUZZ_VERSION := 0.13.2
TOOLS      := $(CURDIR)/build/tools
CBINDGEN   := $(TOOLS)/bin/cbindgen
CARGO_FUZZ := $(TOOLS)/bin/cargo-fuzz
VENV       := $(CURDIR)/.venv
VENV_PY    := $(VENV)/bin/python
LIBDIR     := $(CURDIR)/build/lib
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
SOMAJOR    := $(firstword $(subst ., ,$(VERSION)))
CFLAGS_TEST := -std=c11 -Wall -Wextra -Wpedantic -Werror -g -Iinclude
PREFIX     ?= /usr/local
# README's `make install PREFIX=$PREFIX`, pasted in a shell where PREFIX was
# never exported, passes an empty PREFIX: the files went to /bin, /lib and
# /include (as root, without a word). Refused unless DESTDIR says where.
ifneq ($(filter install,$(MAKECMDGOALS)),)
ifeq ($(strip $(PREFIX))$(strip $(DESTDIR)),)
$(error PREFIX is empty (was it exported? `export PREFIX=$$HOME/.local` first): make install would put its files in /bin, /lib and /include; give PREFIX=DIR, or leave PREFIX out for /usr/local)
endif
endif
# What the static library needs besides itself (cargo --print native-static-libs).
STATIC_DEPS := -lssl -lcrypto -lz -lutil -lrt -lpthread -lm -ldl
# ... and built with the `vendored` feature (make go-static): glibc's alone.
VENDORED_STATIC_DEPS := -lutil -lrt -lpthread -lm -ldl

.PHONY: fuzz fuzz-quick fuzz-build build header check-header lint test test-clock-start test-prepare test-lane-a test-lane-b test-lane-c test-rust check-fresh-build test-c test-c-asan test-python \
        test-install test-python-binding test-python-versions test-cpp test-go go-static bench-go dev-install node-addon test-node test-propagation \
        test-readme dist dist-node npm-present dist-python dist-arm64 dist-python-arm64 node-addon-arm64 arm64-lib test-arm64 test-cli chromium interop cli stress check-memory bench bench-quick bench-compare bench-threads bench-host-state soak demo venv install clean

# --- build ------------------------------------------------------------------

build:
	$(CARGO) build --release --lib --bin spanguard
	mkdir -p $(LIBDIR)
	# Copied then renamed: cp writes into the installed file in place, and a
	# process running with it mapped (a test, make stress) dies of SIGBUS; a
	# test program being linked against the archive meanwhile reads it cut
	# short. Each copy under a name of its own (the shell's pid): the lanes
	# of make test run this at once (every make install does), and two mv's
	# of one temporary name fail the second.
	cp target/release/libspanguard.so $(LIBDIR)/.libspanguard.so.$(VERSION).$$$$.tmp; \
	mv -f $(LIBDIR)/.libspanguard.so.$(VERSION).$$$$.tmp $(LIBDIR)/libspanguard.so.$(VERSION)
	ln -sf libspanguard.so.$(VERSION) $(LIBDIR)/libspanguard.so.$(SOMAJOR)
	ln -sf libspanguard.so.$(SOMAJOR) $(LIBDIR)/libspanguard.so
	cp target/release/libspanguard.a $(LIBDIR)/.libspanguard.a.$$$$.tmp; \
	mv -f $(LIBDIR)/.libspanguard.a.$$$$.tmp $(LIBDIR)/libspanguard.a

$(CBINDGEN):
	$(CARGO) install --locked --quiet --root $(TOOLS) cbindgen --version $(CBINDGEN_VERSION)

# Regenerates the checked-in header from the Rust doc comments.
header: $(CBINDGEN)
	$(CBINDGEN) --quiet --output include/spanguard.h

# Fails when include/spanguard.h is not what the code generates, or when the
# header exports a name without our prefix.
check-header: $(CBINDGEN)
	tmp=$$(mktemp); $(CBINDGEN) --quiet --output $$tmp; \
	if ! diff -u include/spanguard.h $$tmp; then rm -f $$tmp; \
	  echo "include/spanguard.h is stale: run 'make header' and commit it"; exit 1; fi; rm -f $$tmp
	! grep -nE '^(#define|typedef|struct|enum) ' include/spanguard.h \
	  | grep -vE '^[0-9]+:(#define (SPANGUARD_|spanguard_)|typedef (struct |enum )?spanguard_|typedef [a-z0-9_ ]+ \(?\*?spanguard_|typedef [a-z0-9_ ]+ spanguard_|(struct|enum) spanguard_)' \
	  || { echo "header exports a name without the spanguard_ prefix"; exit 1; }
	@echo "header: up to date, every name prefixed"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	# The benchmark crate: formatting only, which needs no build (its
	# peers' SDKs would add minutes to make test to compile for clippy).
	cd bench/rust && $(CARGO) fmt -- --check
	# The fuzz crate: formatting here; make test's fuzz-build compiles it.
	cd tests/fuzz && $(CARGO) fmt -- --check
	cd bindings/python && $(CARGO) fmt -- --check && PYO3_PYTHON=$(PYTHON3) CARGO_TARGET_DIR=$(CURDIR)/build/python-target \
	  $(CARGO) clippy --locked --all-targets -- -D warnings

# The spanguard command (show, tail, spool, replay); `make build` builds it too.
cli:
	$(CARGO) build --release --bin spanguard

# --- tests ------------------------------------------------------------------

venv: $(VENV)/.installed
$(VENV)/.installed: tests/python/requirements.txt
	$(PYTHON3) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

# The suites run in three lanes side by side. The machines have two cores
# and a suite alone keeps about one busy (make test took 22 minutes in one
# line); in two lanes it took 21 minutes again by session 49, lane B (the
# Python, Go and Node suites) 1170 s of it and lane A 880 s. Most of lane
# B's time is waiting, not computing: its suites wait on servers that hang,
# signals, retry timers and child processes (the Go binding's race run: 24 s
# of CPU, user and sys, in 45 s of wall time), so a third lane C runs
# waiting suites beside the compiling ones.
# First the steps the lanes share (the release build, the test virtualenv,
# the scratch install, the C test programs, the Python wheel), so that no
# two processes build or pip-install the same thing at once: the wheel is
# tested in lane B (test-python-binding, test-readme) and lane C
# (test-python-versions). The suites that install again what others use
# stay in one lane, B: the Node addon in bindings/node/prebuilds (test-node,
# test-propagation, test-readme), the scratch installs build/dev-prefix
# (test-go, test-propagation) and build/install-test (test-install,
# test-readme); a file rewritten while another lane's process loads or
# links it is read cut short. Then lane A on the
# terminal and lanes B and C into build/test-lane-b.log and
# build/test-lane-c.log, printed when all are done.
# A lane goes through its suites in order, each followed by a clock mark
# that writes how long it took (from the mark before it in its lane) to
# build/test-times.txt; make test prints the table at the end, so that
# whoever finds it slow sees where the time went (after a failure the file
# holds the suites done so far). A suite's time includes the prerequisites
# it is the first in its lane to need (cbindgen in check-header,
# cargo-fuzz in fuzz-quick) and whatever the other lanes ran meanwhile.
# Timings only: nothing passes or fails on them.
TEST_PREPARE := build venv dev-install build/tests/emit_spans build/tests/kill_child build/examples/agent_demo dist-python
TEST_LANE_A := check-header lint test-rust check-fresh-build test-c-asan test-cpp fuzz-quick
TEST_LANE_B := test-install test-python-binding test-go test-node test-propagation test-readme
TEST_LANE_C := test-python test-c test-python-versions test-cli
test: test-clock-start
	$(MAKE) --no-print-directory test-prepare
	@echo "make test: lane A ($(TEST_LANE_A)) here; lane B ($(TEST_LANE_B)) into build/test-lane-b.log and lane C ($(TEST_LANE_C)) into build/test-lane-c.log, side by side"
	@$(MAKE) --no-print-directory test-lane-b > build/test-lane-b.log 2>&1 & b=$$!; \
	$(MAKE) --no-print-directory test-lane-c > build/test-lane-c.log 2>&1 & c=$$!; \
	a=0; $(MAKE) --no-print-directory test-lane-a || a=$$?; \
	rb=0; wait $$b || rb=$$?; rc=0; wait $$c || rc=$$?; \
	for l in b c; do L=$$(tr a-z A-Z <<<$$l); \
	  echo "---- lane $$L's output (build/test-lane-$$l.log):"; cat build/test-lane-$$l.log; echo "---- end of lane $$L's output"; done; \
	printf '%-20s %5d s\n' total $$(( $$(date +%s) - $$(cat build/test-times.start) )) >> build/test-times.txt; \
	echo "make test: seconds each suite took (wall time, beside the other lanes; build/test-times.txt):"; \
	cat build/test-times.txt; \
	test $$a = 0 || echo "make test: lane A failed (its output above)"; \
	test $$rb = 0 || echo "make test: lane B failed (its output above, between the ---- lines)"; \
	test $$rc = 0 || echo "make test: lane C failed (its output above, between the ---- lines)"; \
	test $$a = 0 && test $$rb = 0 && test $$rc = 0 && echo "make test: all suites passed"

test-clock-start:
	@mkdir -p build; : > build/test-times.txt; date +%s > build/test-times.start
test-prepare: $(TEST_PREPARE)
	@now=$$(date +%s); printf '%-20s %5d s\n' "prepare" $$(( now - $$(cat build/test-times.start) )) >> build/test-times.txt
test-lane-a: test-clock-a-begin $(foreach s,$(TEST_LANE_A),$(s) test-clock-a-$(s))
test-lane-b: test-clock-b-begin $(foreach s,$(TEST_LANE_B),$(s) test-clock-b-$(s))
test-lane-c: test-clock-c-begin $(foreach s,$(TEST_LANE_C),$(s) test-clock-c-$(s))
test-clock-a-begin test-clock-b-begin test-clock-c-begin:
	@date +%s > build/test-times.last-$(word 3,$(subst -, ,$@))
# One pattern rule per lane: a rule of two patterns would be one recipe
# that makes both targets.
define test_clock_mark
	@now=$$(date +%s); printf '%-20s %5d s\n' "$(1): $*" $$(( now - $$(cat build/test-times.last-$(1)) )) >> build/test-times.txt; \
	echo $$now > build/test-times.last-$(1)
endef
test-clock-a-%:
	$(call test_clock_mark,a)
test-clock-b-%:
	$(call test_clock_mark,b)
test-clock-c-%:
	$(call test_clock_mark,c)

test-rust:
	$(CARGO) test --quiet

# cargo compiles spanguard again only when what it is built from changes: a
# file in the checkout that is none of it (a log of make test written
# there, `make test > LOG`) leaves the build fresh. Without build.rs's
# rerun-if-changed, each cargo build make test runs compiled the crate anew.
check-fresh-build: build
	probe=$(CURDIR)/fresh-build-probe.tmp; trap 'rm -f $$probe' EXIT; echo probe > $$probe; \
	out=$$($(CARGO) build --release --lib --bin spanguard --message-format=json 2>/dev/null); \
	stale=$$(grep '"reason":"compiler-artifact"' <<<"$$out" | grep '"fresh":false' \
	  | grep -o '"target":{[^}]*"name":"[^"]*"' | grep -o '"name":"[^"]*"' | sort -u || true); \
	if [ -n "$$stale" ]; then echo "a file that is no source made cargo build again: $$stale"; exit 1; fi
	@echo "check-fresh-build: a new file in the checkout left the release build fresh"

build/tests/kill_child: tests/kill/kill_child.c include/spanguard.h build build/tests/malloc_guard.so
	mkdir -p build/tests
	$(CC) $(CFLAGS_TEST) -O2 $< -L$(LIBDIR) -lspanguard -lpthread -ldl -Wl,-rpath,$(LIBDIR) -o $@

build/tests/malloc_guard.so: tests/kill/malloc_guard.c
	mkdir -p build/tests
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -shared -fPIC $< -o $@

# The tests' shared headers are prerequisites: an edit to one rebuilds them.
C_TEST_HEADERS := $(wildcard tests/c/*.h)

build/tests/%: tests/c/%.c $(C_TEST_HEADERS) include/spanguard.h build
	mkdir -p build/tests
	$(CC) $(CFLAGS_TEST) $< -L$(LIBDIR) -lspanguard -lpthread -Wl,-rpath,$(LIBDIR) -o $@

# Two copies of the library in one process, and dlclose: the library comes
# from the test's dlopens of two copies of the built one, not from linking.
build/tests/test_two_copies: tests/c/test_two_copies.c $(C_TEST_HEADERS) include/spanguard.h build
	mkdir -p build/tests
	$(CC) $(CFLAGS_TEST) $< -lpthread -ldl -o $@
	! readelf -d $@ | grep -q libspanguard

C_PROCESS_TESTS := test_fork test_context test_fork_recovery test_workers test_stale_handles test_callback_reentry test_config_errors test_distro_marker test_full_disk test_recovered_resource test_kill_set_again test_fork_no_tracer test_fork_resource test_fork_stderr_held test_fork_flight_kill test_fork_exec_lazy test_fork_shut_down test_shutdown_stuck_exporter test_stuck_exporter_no_dump test_fork_host_handler test_signal_mask_threads test_crash_after_stuck test_exit_many_stuck test_fork_during_first_use test_fork_during_install test_host_handler_thread test_host_handler_reraise test_host_handler_handoff test_host_handler_stop_after_thaw test_fork_error_callback test_exit_in_callback test_fork_ids test_host_handler_receiver_exits test_host_handler_exit test_host_handler_longjmp test_host_handler_fork test_host_handler_thread_exit test_host_handler_two_signals test_fork_during_hooks test_fork_during_passthrough test_host_handler_fork_in_lock test_termination_handlers_only test_host_handler_fork_handoff test_signals_off_library_threads test_host_handler_slow_backend test_main_thread_exit test_sigterm_nothing_open test_host_handler_spawn_then_die test_sigterm_during_shutdown test_fork_during_export test_pid1 test_fork_child_signals test_two_copies test_crash_handler_returns test_reclaim_signal_from_default test_reclaim_over_host_handler test_raw_fork_recovery test_pidns_recovery test_crash_fault_repaired test_host_handler_receiver_holds test_crash_quit_relay test_after_last_shutdown
test-c: build/tests/test_api $(addprefix build/tests/,$(C_PROCESS_TESTS)) build/tests/test_fork_static
	rm -rf build/c-test-spans build/c-test-spans-llm
	build/tests/test_api build/c-test-spans
	for t in $(C_PROCESS_TESTS); do rm -rf build/$$t-spans build/$$t-spans-spool; \
	  build/tests/$$t build/$$t-spans; done
	rm -rf build/test_fork_static-spans build/test_fork_static-spans-spool
	build/tests/test_fork_static build/test_fork_static-spans

# test_fork again with libspanguard.a linked in, as a Go program built with
# -tags spanguard_static links it: the library's fork handlers must work
# there too (Go's own os/exec never runs them: it forks without libc).
build/tests/test_fork_static: tests/c/test_fork.c $(C_TEST_HEADERS) include/spanguard.h build
	mkdir -p build/tests
	$(CC) $(CFLAGS_TEST) $< $(LIBDIR)/libspanguard.a $(STATIC_DEPS) -o $@
	! readelf -d $@ | grep -q libspanguard

# The same C test once more with AddressSanitizer over the test program and a
# static link of the library, checked with nm that ASan really is in.
build/tests/test_api_asan: tests/c/test_api.c include/spanguard.h build
	mkdir -p build/tests
	$(CC) $(CFLAGS_TEST) -fsanitize=address -fno-omit-frame-pointer $< \
	  $(LIBDIR)/libspanguard.a $(STATIC_DEPS) -o $@
	nm $@ | grep -c __asan_init >/dev/null

test-c-asan: build/tests/test_api_asan
	rm -rf build/c-asan-spans build/c-asan-spans-llm
	ASAN_OPTIONS=detect_leaks=1 build/tests/test_api_asan build/c-asan-spans

# Three at a time (pytest-xdist): the suites mostly wait (on servers that
# hang, signals, retry timers), so this took 171 s one at a time and 62 s so.
test-python: venv build build/tests/emit_spans build/tests/kill_child build/examples/agent_demo cli
	SPANGUARD_FIXTURE_DIR=$(CURDIR)/build/otlp-fixtures $(CARGO) test --quiet --test otlp_fixtures
	SPANGUARD_LIB=$(LIBDIR)/libspanguard.so SPANGUARD_EMIT_SPANS=$(CURDIR)/build/tests/emit_spans \
	  SPANGUARD_DEMO=$(CURDIR)/build/examples/agent_demo SPANGUARD_FIXTURE_DIR=$(CURDIR)/build/otlp-fixtures \
	  $(VENV_PY) -m pytest -q -n 3 tests/python tests/receiver tests/w3c tests/readme

# The spanguard command as a person sees it: the HTML page rendered by headless
# Chromium (the distribution's package, installed here when missing) and its
# DOM checked, a screenshot kept in build/cli/; tail, spool, hostile files.
# (The terminal view's golden output is tests/cli_show.rs, in test-rust.)
CHROMIUM ?= chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v $(CHROMIUM) >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

test-cli: venv build chromium build/examples/agent_demo build/tests/emit_spans build/tests/kill_child
	SPANGUARD_CLI=$(CURDIR)/target/release/spanguard SPANGUARD_DEMO=$(CURDIR)/build/examples/agent_demo \
	  SPANGUARD_CHROMIUM=$$(command -v $(CHROMIUM)) $(VENV_PY) -m pytest -q tests/cli

# The header-only C++17 wrapper: its test and sample agent, warnings as errors.
CXXFLAGS_TEST := -std=c++17 -Wall -Wextra -Wpedantic -Werror -g -Iinclude
test-cpp: build
	mkdir -p build/tests build/examples
	$(CXX) $(CXXFLAGS_TEST) tests/cpp/test_spanguard.cpp -L$(LIBDIR) -lspanguard -Wl,-rpath,$(LIBDIR) -o build/tests/test_cpp
	$(CXX) $(CXXFLAGS_TEST) examples/cpp/agent.cpp -L$(LIBDIR) -lspanguard -Wl,-rpath,$(LIBDIR) -o build/examples/cpp_agent
	rm -rf build/cpp-test-spans build/cpp-demo
	build/tests/test_cpp build/cpp-test-spans
	SPANGUARD_SINK_DIR=build/cpp-demo SPANGUARD_SPOOL_DIR=build/cpp-demo-spool build/examples/cpp_agent

# The Go binding (cgo) finds the library through pkg-config, as a user's
# program does: the in-tree tests use a scratch install under build/.
GO ?= go
DEV_PREFIX := $(CURDIR)/build/dev-prefix
GO_ENV := PKG_CONFIG_PATH=$(DEV_PREFIX)/lib/pkgconfig
dev-install:
	$(MAKE) --no-print-directory install PREFIX=$(DEV_PREFIX)

# vet, tests with the race detector (the binding, then its OpenTelemetry
# bridge, a module of its own, whose tests send to the loopback receiver,
# with the oldest OpenTelemetry Go it builds with (its go.mod) and again with
# the newest (go.newest-otel.mod: go.mod's requirements are its users'),
# then the bridge's tests that need otelhttp or a newer OpenTelemetry Go
# than the bridge requires, a module of its own again so that none of that
# is a requirement a user of the bridge inherits),
# the sample agent. The binding's tests run twice: as users build it (hot
# calls on the thread's C stack, bindings/go/hotcall.c) and with plain cgo
# calls (-tags spanguard_cgocall, what other architectures get), and a
# third time with libspanguard.a linked in (-tags spanguard_static, the
# one binary a user ships): the library's signal, exit and thread-local
# state must work the same there.
# Its test processes keep out of the user's ~/.local/state/spanguard (a
# tracer a test makes without naming a spool took it: the user's waiting
# crash dumps went to the test's sink; suite_isolation_test.go).
test-go: export XDG_STATE_HOME := $(CURDIR)/build/go-test-state
test-go: dev-install venv $(if $(wildcard $(GO_STATIC_PREFIX)/lib/libspanguard.a),go-static)
	cd bindings/go && $(GO_ENV) $(GO) vet ./... && $(GO_ENV) $(GO) vet -tags spanguard_cgocall ./... && \
	  $(GO_ENV) $(GO) vet -tags spanguard_static ./... && \
	  $(GO_ENV) $(GO) test -race -count=1 ./... && $(GO_ENV) $(GO) test -tags spanguard_cgocall -count=1 ./... && \
	  $(GO_ENV) SPANGUARD_GO_STATIC_PREFIX=$(GO_STATIC_PREFIX) SPANGUARD_TEST_PYTHON=$(VENV_PY) \
	  $(GO) test -tags spanguard_static -count=1 ./...
	cd bindings/go/otelbridge && $(GO_ENV) $(GO) vet ./... && \
	  $(GO_ENV) SPANGUARD_TEST_PYTHON=$(VENV_PY) $(GO) test -race -count=1 ./...
	cd bindings/go/otelbridge && $(GO_ENV) $(GO) vet -modfile=go.newest-otel.mod ./... && \
	  $(GO_ENV) SPANGUARD_TEST_PYTHON=$(VENV_PY) $(GO) test -modfile=go.newest-otel.mod -race -count=1 ./...
	cd bindings/go/otelbridge/internal/newertest && $(GO_ENV) $(GO) vet ./... && \
	  $(GO_ENV) $(GO) test -race -count=1 ./...
	rm -rf build/go-demo
	cd bindings/go && $(GO_ENV) SPANGUARD_SINK_DIR=$(CURDIR)/build/go-demo SPANGUARD_SPOOL_DIR=$(CURDIR)/build/go-demo-spool \
	  $(GO) run ./examples/agent

# A libspanguard.a with libcurl, OpenSSL and zlib built from source inside
# it (the crate's `vendored` feature), with the header and a
# spanguard-static.pc that names only glibc's libraries beside it, in
# GO_STATIC_PREFIX: a Go program built against it with -tags
# spanguard_static needs glibc alone where it runs, and nothing with
# -ldflags='-linkmode=external -extldflags=-static' (a FROM scratch image).
# Neither make build nor a clean clone's make test builds it: openssl-src
# compiles OpenSSL, minutes on two cores. Its own target directory keeps the
# default build's cache; make test-go brings it up to date and runs its test
# (scratch_test.go) once it exists.
GO_STATIC_PREFIX ?= $(CURDIR)/build/go-static
go-static:
	CARGO_TARGET_DIR=$(CURDIR)/build/static-target $(CARGO) rustc --release --lib --features vendored --crate-type staticlib
	install -d $(GO_STATIC_PREFIX)/lib/pkgconfig $(GO_STATIC_PREFIX)/include
	install -m 0644 build/static-target/release/libspanguard.a $(GO_STATIC_PREFIX)/lib/
	install -m 0644 include/spanguard.h $(GO_STATIC_PREFIX)/include/
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@STATIC_DEPS@|$(VENDORED_STATIC_DEPS)|' spanguard-static.pc.in \
	  > $(GO_STATIC_PREFIX)/lib/pkgconfig/spanguard-static.pc
	# OpenSSL, zlib and libcurl are in the archive, not left to the system.
	syms=$$(nm --defined-only $(GO_STATIC_PREFIX)/lib/libspanguard.a 2>/dev/null); \
	for s in SSL_new EVP_DigestInit_ex deflate curl_easy_perform; do \
	  grep -q " T $$s$$" <<<"$$syms" || { echo "$$s is not in the vendored libspanguard.a"; exit 1; }; done

bench-go: dev-install
	cd bindings/go && $(GO_ENV) $(GO) test -run '^$$' -bench . -benchmem ./...

# The Node addon (N-API, in C) and libspanguard beside it, in the directory
# the package loads them from: the addon finds the library through its
# rpath ($ORIGIN). Built against the headers that come with node, else
# those of the npm package node-api-headers (N-API is the same in both).
NODE_PREBUILD := bindings/node/prebuilds/linux-x64
NODE_HEADERS := $(shell d=$$(dirname "$$(readlink -f "$$(command -v node)")")/../include/node; \
                  test -f "$$d/node_api.h" && cd "$$d" && pwd)
NODE_API_HEADERS_VERSION := 1.9.0
NODE_API_INCLUDE := $(or $(NODE_HEADERS),build/node-api-headers/node_modules/node-api-headers/include)
define fetch_node_api_headers
@if [ -z "$(NODE_HEADERS)" ] && [ ! -f build/node-api-headers/node_modules/node-api-headers/include/node_api.h ]; then \
  npm install --no-audit --no-fund --prefix build/node-api-headers node-api-headers@$(NODE_API_HEADERS_VERSION); fi
endef
CFLAGS_NODE := -std=c11 -Wall -Wextra -Wpedantic -Werror -O2 -shared -fPIC -fvisibility=hidden
# npm packs the package (and fetches the N-API headers where node brings
# none). Without it, README's setup (make dist-python dist-node) built for
# minutes, then stopped at `npm: not found` (Debian's nodejs comes without
# npm): said first now, with what to do and what a C, C++ or Go user skips.
npm-present:
	@command -v npm >/dev/null 2>&1 || { \
	  echo "npm is not installed: the Node.js package is made with npm (Node.js 18 or later with npm;"; \
	  echo "on Debian and Ubuntu the npm package beside nodejs). For C, C++ and Go make install is all"; \
	  echo "that is needed: leave out dist-node (and its .tgz); make dist-python builds the Python wheel."; \
	  exit 1; } >&2
node-addon: $(if $(NODE_HEADERS),,npm-present) build
	$(fetch_node_api_headers)
	mkdir -p $(NODE_PREBUILD)
	strip --strip-unneeded -o $(NODE_PREBUILD)/libspanguard.so.$(SOMAJOR) $(LIBDIR)/libspanguard.so.$(VERSION)
	$(CC) $(CFLAGS_NODE) -I$(NODE_API_INCLUDE) -Iinclude \
	  bindings/node/src/spanguard_node.c -L$(NODE_PREBUILD) -l:libspanguard.so.$(SOMAJOR) -Wl,-rpath,'$$ORIGIN' \
	  -o $(NODE_PREBUILD)/spanguard.node
	# The spanguard command, for the package's bin (bin/spanguard.js).
	strip --strip-unneeded -o $(NODE_PREBUILD)/spanguard target/release/spanguard

# The Node binding and its OpenTelemetry bridge: node --test, the sample agent.
bindings/node/node_modules/.installed: bindings/node/package-lock.json
	cd bindings/node && npm ci --no-audit --no-fund
	touch $@

# The OpenTelemetry bridge's tests send to the loopback receiver, which runs
# in the test virtualenv. --test-timeout bounds a hang, not a speed: it
# holds for a whole test file too, and on a loaded machine values.test.js
# (walks of a million values, on purpose) ran past 120 s.
test-node: node-addon bindings/node/node_modules/.installed venv
	cd bindings/node && node_modules/.bin/tsc -p test/types
	cd bindings/node && SPANGUARD_TEST_PYTHON=$(VENV_PY) SPANGUARD_CLI=$(CURDIR)/target/release/spanguard \
	  node --test --test-timeout=120000 --require ./test-support/own_state.js test/
	rm -rf build/node-demo
	cd bindings/node && SPANGUARD_SINK_DIR=$(CURDIR)/build/node-demo \
	  SPANGUARD_SPOOL_DIR=$(CURDIR)/build/node-demo-spool node examples/agent.js

# Cross-process propagation: a Node agent calls a Go tool with a traceparent.
test-propagation: dev-install node-addon
	mkdir -p build/tests
	cd bindings/go && $(GO_ENV) $(GO) build -o $(CURDIR)/build/tests/go_tool ./examples/tool
	SPANGUARD_GO_TOOL=$(CURDIR)/build/tests/go_tool node --test tests/propagation/

# The Python package (the wheel of make dist, installed into the test venv):
# its tests, and the sample agents (native API; bridge under OpenTelemetry). The tests run from build/, so that
# `import spanguard` finds the installed wheel, not the source tree.
# The wheel's spanguard command is judged against the binary (cli).
test-python-binding: venv dist-python cli
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps $(PY_WHEEL_DIR)/spanguard-*.whl
	cd build && SPANGUARD_CLI=$(CURDIR)/target/release/spanguard \
	  $(VENV_PY) -m pytest -q -p no:cacheprovider -n 2 $(CURDIR)/bindings/python/tests
	rm -rf build/py-demo
	cd build && SPANGUARD_SINK_DIR=$(CURDIR)/build/py-demo SPANGUARD_SPOOL_DIR=$(CURDIR)/build/py-demo-spool \
	  $(VENV_PY) $(CURDIR)/examples/python/agent.py
	cd build && SPANGUARD_SINK_DIR=$(CURDIR)/build/py-demo SPANGUARD_SPOOL_DIR=$(CURDIR)/build/py-demo-spool \
	  $(VENV_PY) $(CURDIR)/examples/python/otel_agent.py

# The same wheel on the other CPythons pyproject.toml's classifiers name
# (3.10, 3.12, 3.13; the default python3's is the suite above), each in a
# virtualenv of its own with the test requirements: the tests of what
# changed between those versions (exit, fork, signals, threads, the
# OpenTelemetry bridge) and of the install (the command, the workers).
# Interpreters on PATH or under pyenv's versions; one missing fails, named.
# Then the README's versions and its quote of pip refusing the wheel for a
# free-threaded build (tests/python_versions/run_versions.py).
PYENV_ROOT ?= $(HOME)/.pyenv
PY_VERSIONS_TESTS := test_spanguard.py test_context.py test_ctrl_c.py test_exporter_signal.py test_workers.py \
                     test_bridge_kill.py test_otel_bridge.py test_servers.py test_command.py
test-python-versions: venv dist-python cli
	cd build && SPANGUARD_CLI=$(CURDIR)/target/release/spanguard $(VENV_PY) $(CURDIR)/tests/python_versions/run_versions.py \
	  --pyproject $(CURDIR)/bindings/python/pyproject.toml --readme $(CURDIR)/README.md \
	  --wheel $(PY_WHEEL_DIR)/spanguard-*-manylinux_*.whl --requirements $(CURDIR)/tests/python/requirements.txt \
	  --venvs $(CURDIR)/build/python-versions --default-python $(VENV_PY) --search $(PYENV_ROOT)/versions \
	  $(addprefix $(CURDIR)/bindings/python/tests/,$(PY_VERSIONS_TESTS))

# Installs into a scratch prefix and moves it (spanguard.pc is
# relocatable), then builds the demo agent with pkg-config against the moved
# copy and runs it with no LD_LIBRARY_PATH (the .pc's rpath finds the
# library).
INSTALL_TEST := $(CURDIR)/build/install-test
INSTALLED := lib/libspanguard.so lib/libspanguard.so.$(SOMAJOR) lib/libspanguard.so.$(VERSION) lib/libspanguard.a \
             include/spanguard.h include/spanguard.hpp lib/pkgconfig/spanguard.pc \
             lib/pkgconfig/spanguard-static.pc bin/spanguard
test-install:
	rm -rf $(INSTALL_TEST) $(INSTALL_TEST)-first
	$(MAKE) --no-print-directory install PREFIX=$(INSTALL_TEST)-first
	mv $(INSTALL_TEST)-first $(INSTALL_TEST)
	for f in $(INSTALLED); do test -e $(INSTALL_TEST)/$$f || { echo "make install did not install $$f"; exit 1; }; done
	test -x $(INSTALL_TEST)/bin/spanguard
	export PKG_CONFIG_PATH=$(INSTALL_TEST)/lib/pkgconfig; \
	$(CC) -std=c11 -Wall -Wextra -Werror examples/c/agent_demo.c $$(pkg-config --cflags --libs spanguard) \
	  -o $(INSTALL_TEST)/agent_demo
	env -u LD_LIBRARY_PATH SPANGUARD_SINK_DIR=$(INSTALL_TEST)/spans $(INSTALL_TEST)/agent_demo
	test "$$(cat $(INSTALL_TEST)/spans/*.jsonl | grep -o '"spanId"' | wc -l)" -gt 0
	@echo "install: every file installed; the demo builds against the moved prefix and runs without LD_LIBRARY_PATH"

# README's TypeScript example is type-checked with this tsc and --strict, and
# must tell its user to install these versions: the binding's typescript
# (package.json, one pin) and the types of Node.js 20, which the tests run on.
TYPESCRIPT_VERSION := $(shell sed -n 's/^ *"typescript": "\(.*\)",*$$/\1/p' bindings/node/package.json)
TYPES_NODE_VERSION := 20.19.43
README_TS := build/readme-typescript
$(README_TS)/.installed-$(TYPESCRIPT_VERSION)-$(TYPES_NODE_VERSION):
	npm install --no-audit --no-fund --prefix $(README_TS) typescript@$(TYPESCRIPT_VERSION) @types/node@$(TYPES_NODE_VERSION)
	touch $@

# Every program in README.md, the npm package's README, the Python
# package's (bindings/python/README.md, its long description: what `pip
# show` and a package index show) and the Go module's
# (bindings/go/README.md, what pkg.go.dev shows), built and run as
# the README says from a scratch directory (tests/readme/run_examples.py),
# against the scratch install above and the npm tarball and Python wheel of
# make dist (the Python programs pip-install the wheel into a fresh venv).
test-readme: test-install venv dist-node dist-python $(README_TS)/.installed-$(TYPESCRIPT_VERSION)-$(TYPES_NODE_VERSION)
	$(VENV_PY) tests/readme/run_examples.py --prefix $(INSTALL_TEST) --dist build/dist \
	  --typescript $(README_TS)/node_modules README.md bindings/node/README.md bindings/python/README.md bindings/go/README.md

# A real OpenTelemetry Collector (built once with the Collector Builder; slow
# the first time) receives spans over every protocol and compression and its
# file output must hold exactly what was emitted. Not part of `make test`.
interop: build build/tests/emit_spans
	tests/interop/build-collector.sh
	tests/interop/run-interop.sh

# The kill test, ten times longer and faster, and the shutdown race test with
# ten times its rounds (not part of make test).
stress: venv build build/tests/emit_spans build/tests/kill_child
	SPANGUARD_KILL_TRIALS=50 SPANGUARD_KILL_PAUSE_US=50 $(VENV_PY) -m pytest -q -s tests/python/test_kill.py
	SPANGUARD_SHUTDOWN_ROUNDS=600 $(CARGO) test --release --quiet --test begin_during_shutdown

# Fuzzing every decoder of outside input (tests/fuzz: traceparent, tracestate,
# the OTEL_* variables, Retry-After, partial-success bodies, the escaping
# rule every message and the CLI use (printable), encoded requests
# split on a 413, spool files, crash dumps and flight files, request bodies
# as `spanguard show` reads them from spool and sink files), the
# encoders' round trip through the independent decoder, complex attribute
# values (any_value: the checker, the limits' cut and both encoders against
# a reference reader), and the C ABI itself (c_abi_calls: random call
# sequences with bad input, checked against the result codes and the
# counters' identity), and any sequence of raw server answers driven
# through the transport's reading of them into the delivery (server_answers:
# every span delivered, rejected, lost or spooled), and what `spanguard
# show` draws of a body's chats and GenAI log events (show_chat), and
# `spanguard why` reading a records' directory others can fill
# (outcome_file: the record parser, links, FIFOs, huge and foreign files), with
# cargo-fuzz
# (libFuzzer) in its `--sanitizer none` mode, which runs on stable Rust.
# `make test` runs each target for FUZZ_QUICK_SECONDS; `make fuzz` for
# FUZZ_SECONDS (default 10 minutes) each. New inputs go to build/fuzz-corpus,
# crashes to build/fuzz-artifacts; tests/fuzz/corpus holds the seeds.
FUZZ_TARGETS := traceparent tracestate otel_env retry_after partial_success printable split_request spool_file dump_file encode_roundtrip c_abi_calls otlp_decode any_value server_answers show_chat outcome_file terminal_fit proc_stat
# Targets run by `make fuzz` alone: fuzz-quick keeps its time.
# answer_body: a 2xx answer's Content-Encoding lines, compression and
# partial success among other members, read as the server wrote it.
FUZZ_LONG_TARGETS := answer_body
FUZZ_QUICK_SECONDS ?= 8
FUZZ_SECONDS ?= 600

$(CARGO_FUZZ):
	$(CARGO) install --locked --quiet --root $(TOOLS) cargo-fuzz --version $(CARGO_FUZZ_VERSION)

fuzz-build: $(CARGO_FUZZ)
	$(CARGO_FUZZ) build -s none --fuzz-dir tests/fuzz --target-dir $(CURDIR)/build/fuzz-target

define run_fuzz_targets
	for t in $(2); do \
	  mkdir -p build/fuzz-corpus/$$t build/fuzz-artifacts/$$t; \
	  $(CARGO_FUZZ) run -s none --fuzz-dir tests/fuzz --target-dir $(CURDIR)/build/fuzz-target $$t \
	    build/fuzz-corpus/$$t tests/fuzz/corpus/$$t -- -max_total_time=$(1) \
	    -artifact_prefix=build/fuzz-artifacts/$$t/ -print_final_stats=0 2>&1 | grep -E '^(Done|==|thread)' ; \
	  test $${PIPESTATUS[0]} = 0 || { echo "fuzz target $$t failed: see build/fuzz-artifacts/$$t"; exit 1; }; \
	done
endef

fuzz-quick: fuzz-build
	$(call run_fuzz_targets,$(FUZZ_QUICK_SECONDS),$(FUZZ_TARGETS))

fuzz: fuzz-build
	$(call run_fuzz_targets,$(FUZZ_SECONDS),$(FUZZ_TARGETS) $(FUZZ_LONG_TARGETS))

# The C API test under valgrind's memcheck: any invalid access or leak
# definitely lost fails it.
check-memory: build/tests/test_api
	rm -rf build/c-valgrind-spans build/c-valgrind-spans-llm
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	  --suppressions=tests/c/valgrind.supp build/tests/test_api build/c-valgrind-spans

# Benchmarks against each language's OpenTelemetry SDK, one Markdown report
# (build/bench.md). Never part of make test: timings are not pass/fail.
BENCH_VENV := $(CURDIR)/build/bench-venv
$(BENCH_VENV)/.installed: bench/python/requirements.txt
	$(PYTHON3) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/python/requirements.txt
	touch $@

build/bench/hot_path: bench/c/hot_path.c bench/c/common.h include/spanguard.h build
	mkdir -p build/bench
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -Iinclude $< -L$(LIBDIR) -lspanguard -Wl,-rpath,$(LIBDIR) -o $@

build/bench/idle_rss: bench/c/idle_rss.c include/spanguard.h build
	mkdir -p build/bench
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -Iinclude $< -L$(LIBDIR) -lspanguard -Wl,-rpath,$(LIBDIR) -o $@

build/bench/threads: bench/c/threads.c bench/c/common.h include/spanguard.h build
	mkdir -p build/bench
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -Iinclude $< -L$(LIBDIR) -lspanguard -lpthread -Wl,-rpath,$(LIBDIR) -o $@

# One recording thread against two, in both regimes (BENCHMARKS.md says
# where two threads' time goes); SPANS=N spans a thread a sample.
bench-threads: build/bench/threads
	build/bench/threads $(SPANS)

build/bench/host_state: bench/c/host_state.c bench/c/common.h include/spanguard.h build
	mkdir -p build/bench
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -Iinclude $< -L$(LIBDIR) -lspanguard -Wl,-rpath,$(LIBDIR) -o $@

# The recording path's speed beside the core's state, sample by sample
# (BENCHMARKS.md, "What the host's slow state is").
bench-host-state: build/bench/host_state
	build/bench/host_state

build/bench/startup: bench/c/startup.c include/spanguard.h build
	mkdir -p build/bench
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -Iinclude $< -L$(LIBDIR) -lspanguard -Wl,-rpath,$(LIBDIR) -o $@

build/bench/early_spans: bench/c/early_spans.c bench/c/common.h include/spanguard.h build
	mkdir -p build/bench
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -Iinclude $< -L$(LIBDIR) -lspanguard -Wl,-rpath,$(LIBDIR) -o $@

bench: build dev-install node-addon $(BENCH_VENV)/.installed build/bench/hot_path build/bench/idle_rss build/bench/startup build/bench/early_spans dist-python
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps $(PY_WHEEL_DIR)/spanguard-*.whl
	cd bench/rust && $(CARGO) build --release
	cd bench/node && npm ci --no-audit --no-fund
	cd bench/go && $(GO) mod download
	$(GO_ENV) python3 bench/run.py $(BENCH_ARGS) | tee build/bench.md

# The same report from fewer, shorter samples: checks the whole bench runs
# end to end (figures too noisy to quote).
bench-quick:
	$(MAKE) bench BENCH_ARGS=--quick

# The small-span rows against another commit's library, same run, pairs
# alternating: make bench-compare BASE=<commit> [PAIRS=5] [HEAD_COMMIT=<commit>];
# COMPARE_ARGS=--instructions counts instructions a span with callgrind
# (needs valgrind) instead of timing; COMPARE_ARGS=--interleaved times both
# libraries in one process, sample by sample (PAIRS=100 or more: its pairs
# take milliseconds); COMPARE_ARGS=--llm times LLM-sized spans
# (bench/c/llm_spans.c) instead.
bench-compare: build
	COMPARE_HEAD=$(HEAD_COMMIT) bench/compare.sh $(BASE) $(or $(PAIRS),5) $(COMPARE_ARGS)

# A long run at a steady rate, reporting RSS at start and end and its slope.
soak: build
	cd bench/rust && $(CARGO) build --release
	bench/rust/target/release/spanguard-bench --soak $(or $(SOAK_SECONDS),600)

# --- the demo ---------------------------------------------------------------

build/examples/agent_demo: examples/c/agent_demo.c include/spanguard.h build
	mkdir -p build/examples
	$(CC) -std=c11 -Wall -Wextra -O2 -Iinclude $< -L$(LIBDIR) -lspanguard -lpthread -Wl,-rpath,$(LIBDIR) -o $@

# Ends saying what was drawn, where the files and the command are, and what
# to run next: a newcomer typed README's `spanguard show` and got "command not
# found" (the command is not on PATH in a checkout), then, with it on PATH,
# "no spans found" (the demo writes to build/demo-spans, not the default sink).
# Without the endpoint variables: with one exported (a collector set up for
# other work) the demo's spans went there, or into the user's own spool to be
# sent later, and build/demo-spans stayed empty ("no spans found").
demo: build/examples/agent_demo
	rm -rf build/demo-spans
	env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
	  SPANGUARD_SINK_DIR=build/demo-spans build/examples/agent_demo
	target/release/spanguard show build/demo-spans
	target/release/spanguard show --html build/demo-spans.html build/demo-spans
	@echo
	@echo "Above: one trace, one run of the sample agent (examples/c/agent_demo.c). Each line is a span:"
	@echo "one timed step of it (an LLM call, a tool call), under the step that started it."
	@echo "  the spans     build/demo-spans/*.jsonl (OTLP/JSON, one export request a line)"
	@echo "  the page      build/demo-spans.html (open it in a browser; click a span for its prompt)"
	@echo "  the command   target/release/spanguard, not on PATH: export PATH=$(CURDIR)/target/release:\$$PATH"
	@echo "Then: spanguard show --full build/demo-spans (every attribute whole). Your own program's spans"
	@echo "go to the local sink, which spanguard show reads with no DIR: SPANGUARD_SINK_DIR, by default"
	@echo "\$$XDG_STATE_HOME/spanguard/spans (~/.local/state/spanguard/spans when XDG_STATE_HOME is unset);"
	@echo "unless an endpoint is set. spanguard check says where they go in this environment."

# --- shipping ---------------------------------------------------------------

# build/dist: what users install (the npm package and the Python wheel), for
# linux-x64 and linux-arm64 (dist-arm64, below: the arm64 wheel is in
# build/dist/linux-arm64/). The npm package is one for both: packed once
# both addons are built, and checked to carry both.
dist: dist-python dist-arm64
	$(MAKE) --no-print-directory dist-node
	@# Not grep -q: it would stop reading, and tar, killed by SIGPIPE, fail the pipe.
	for p in $(NODE_PLATFORMS); do tar -tzf build/dist/spanguard-$(VERSION).tgz \
	  | grep -x "package/prebuilds/$$p/spanguard.node" >/dev/null || { echo "the npm package lacks its $$p addon"; exit 1; }; done

# The npm package with the addons built so far: make dist-node alone builds
# this machine's (linux-x64); one built for linux-arm64 by an earlier
# dist-arm64 goes in too. Where a platform's addon is missing, the package
# says so to whoever loads it there (index.js).
NODE_PLATFORMS := linux-x64 linux-arm64
dist-node: npm-present node-addon
	mkdir -p build/dist
	rm -f build/dist/spanguard-*.tgz
	# The full README goes in as docs/README.md, which the package's own
	# names: a link to ../../README.md was dead on the registry's page.
	mkdir -p bindings/node/docs && cp README.md bindings/node/docs/README.md
	cd bindings/node && npm pack --silent --pack-destination $(CURDIR)/build/dist
	tar -tzf build/dist/spanguard-$(VERSION).tgz | grep -x package/docs/README.md >/dev/null \
	  || { echo "the npm package lacks docs/README.md"; exit 1; }
	@for p in $(NODE_PLATFORMS); do test -f bindings/node/prebuilds/$$p/spanguard.node \
	  || echo "note: build/dist/spanguard-$(VERSION).tgz carries no $$p addon (make dist builds every platform's)"; done

# The Python wheel: maturin builds the extension (bindings/python, PyO3 over
# the C ABI, the library linked in statically) and repairs the wheel the
# way auditwheel does, bundling the OpenSSL it links, so the wheel needs
# nothing on the target but a glibc as new as the build machine's (its
# manylinux tag says which). Rebuilt only when a source changed.
PY_TOOLS     := $(CURDIR)/build/py-build
PY_WHEEL_DIR := $(CURDIR)/build/dist
PY_SOURCES   := $(shell find src bindings/python/src bindings/python/python -type f \
                  \( -name '*.rs' -o -name '*.py' -o -name '*.pyi' -o -name py.typed \)) \
                Cargo.toml Cargo.lock build.rs bindings/python/Cargo.toml bindings/python/Cargo.lock \
                bindings/python/pyproject.toml bindings/python/README.md README.md
$(PY_TOOLS)/.installed: bindings/python/build-requirements.txt
	$(PYTHON3) -m venv $(PY_TOOLS)
	$(PY_TOOLS)/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

dist-python: $(PY_WHEEL_DIR)/.python-wheel
$(PY_WHEEL_DIR)/.python-wheel: $(PY_TOOLS)/.installed $(PY_SOURCES)
	mkdir -p $(PY_WHEEL_DIR)
	rm -f $(PY_WHEEL_DIR)/spanguard-*.whl
	# maturin repairs the extension where cargo left it (renaming the
	# OpenSSL it links to the copies it bundles): when only Python sources
	# changed, cargo would not link it again and maturin would find the
	# bundled names it wrote last time. Removed, cargo links it anew: both
	# names, as cargo's copy in release/deps is the same file (a hard
	# link), repaired along with it, and cargo would link that one back.
	rm -f $(CURDIR)/build/python-target/maturin/lib_native.so $(CURDIR)/build/python-target/release/deps/lib_native.so
	# The full README goes in as spanguard/README.md, which the package's
	# own (the wheel's description) names: a link to ../../README.md was
	# dead on a package index's page.
	cp README.md bindings/python/python/spanguard/README.md
	cd bindings/python && PATH=$(PY_TOOLS)/bin:$$PATH CARGO_TARGET_DIR=$(CURDIR)/build/python-target \
	  maturin build --release --strip --locked --quiet --out $(PY_WHEEL_DIR)
	ls $(PY_WHEEL_DIR)/spanguard-*-manylinux_*.whl
	touch $@

# --- linux-arm64: cross-built on this x86-64 machine, tested under qemu ---
#
# make dist-arm64: the linux-arm64 builds (AWS Graviton, Docker on
# Apple-silicon Macs): prebuilds/linux-arm64/ for the npm package (make dist
# packs them beside linux-x64's in the one tarball) and a manylinux aarch64
# wheel in build/dist/linux-arm64/ (a directory of its own, so that
# `pip install build/dist/spanguard-*.whl` keeps meaning this machine's).
# make test-arm64 runs them under qemu-aarch64. Neither is part of make
# test: they need the cross toolchain below and emulation, and take minutes
# (README, "linux-arm64").
#
# The toolchain, from Debian's archive: the cross compiler, qemu, and
# (multiarch, beside the host's) the arm64 OpenSSL and zlib the library
# links. Installed when missing, as root, the way CI's clean machine runs.
# No libcurl among them on purpose: with no libcurl.pc for the target,
# curl-sys compiles the libcurl it bundles into the library, as it does on
# x86-64, so neither package needs a libcurl on the user's machine (the
# check in arm64-lib holds that).
ARM64_TARGET   := aarch64-unknown-linux-gnu
ARM64_CC       := aarch64-linux-gnu-gcc
ARM64_DEBS     := gcc-aarch64-linux-gnu libssl-dev:arm64 zlib1g-dev:arm64 qemu-user
ARM64_TOOLS    := $(CURDIR)/build/arm64-tools
ARM64_RELEASE  := target/$(ARM64_TARGET)/release
ARM64_LIBDIR   := $(CURDIR)/build/arm64/lib
ARM64_WHEEL_DIR := $(PY_WHEEL_DIR)/linux-arm64
PY_TARGET_ARM64 := $(CURDIR)/build/python-target-arm64
NODE_PREBUILD_ARM64 := bindings/node/prebuilds/linux-arm64
# Cargo's and the cc crate's settings for the target only (the build
# scripts in the same run still build for x86-64), and pkg-config pointed
# at the arm64 .pc files alone.
ARM64_ENV := CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=$(ARM64_CC) \
             CC_aarch64_unknown_linux_gnu=$(ARM64_CC) AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
             PKG_CONFIG_ALLOW_CROSS_aarch64_unknown_linux_gnu=1 \
             PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
             PKG_CONFIG_PATH_aarch64_unknown_linux_gnu=

$(ARM64_TOOLS)/.installed:
	@if ! dpkg --print-foreign-architectures | grep -qx arm64; then dpkg --add-architecture arm64; fi
	@missing=; for p in $(ARM64_DEBS); do \
	  dpkg-query -W -f '$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
	rustup target list --installed | grep -qx $(ARM64_TARGET) || rustup target add $(ARM64_TARGET)
	mkdir -p $(@D)
	touch $@

# libspanguard and the spanguard command for arm64, in build/arm64/lib as
# make build lays out build/lib.
arm64-lib: $(ARM64_TOOLS)/.installed
	mkdir -p build/arm64
	$(ARM64_ENV) $(CARGO) build --release --lib --bin spanguard --target $(ARM64_TARGET) 2>&1 | tee build/arm64/cargo.log
	@# make lint holds the x86-64 build to no warning; code behind a
	@# cfg(target_arch) shows its warnings in this build only (cargo
	@# replays them when nothing was rebuilt).
	@if grep -E '^(warning|error)' build/arm64/cargo.log; then echo "the arm64 build has warnings"; exit 1; fi
	@if aarch64-linux-gnu-readelf -d $(ARM64_RELEASE)/libspanguard.so | grep 'NEEDED.*libcurl' >/dev/null; then \
	  echo "the arm64 library links a system libcurl (a libcurl.pc for arm64 is installed?): users would need one"; \
	  exit 1; fi
	mkdir -p $(ARM64_LIBDIR)
	cp $(ARM64_RELEASE)/libspanguard.so $(ARM64_LIBDIR)/.libspanguard.so.$(VERSION).tmp
	mv -f $(ARM64_LIBDIR)/.libspanguard.so.$(VERSION).tmp $(ARM64_LIBDIR)/libspanguard.so.$(VERSION)
	ln -sf libspanguard.so.$(VERSION) $(ARM64_LIBDIR)/libspanguard.so.$(SOMAJOR)
	ln -sf libspanguard.so.$(SOMAJOR) $(ARM64_LIBDIR)/libspanguard.so

# The addon as node-addon builds it, with the cross compiler (N-API's
# headers are the same for every architecture).
node-addon-arm64: arm64-lib
	$(fetch_node_api_headers)
	mkdir -p $(NODE_PREBUILD_ARM64)
	aarch64-linux-gnu-strip --strip-unneeded -o $(NODE_PREBUILD_ARM64)/libspanguard.so.$(SOMAJOR) \
	  $(ARM64_LIBDIR)/libspanguard.so.$(VERSION)
	$(ARM64_CC) $(CFLAGS_NODE) -I$(NODE_API_INCLUDE) -Iinclude \
	  bindings/node/src/spanguard_node.c -L$(NODE_PREBUILD_ARM64) -l:libspanguard.so.$(SOMAJOR) -Wl,-rpath,'$$ORIGIN' \
	  -o $(NODE_PREBUILD_ARM64)/spanguard.node
	aarch64-linux-gnu-strip --strip-unneeded -o $(NODE_PREBUILD_ARM64)/spanguard $(ARM64_RELEASE)/spanguard

# The wheel as dist-python builds it, cross-compiled: maturin's repair
# bundles the arm64 OpenSSL from /usr/lib/aarch64-linux-gnu, and the tag's
# glibc floor is that of Debian's arm64 libc the extension was linked
# against (what auditwheel finds; test-arm64 checks it). Its own cargo
# directory: maturin repairs the extension where cargo left it (see
# dist-python), and the x86-64 one must not be taken for it.
dist-python-arm64: $(ARM64_WHEEL_DIR)/.python-wheel
$(ARM64_WHEEL_DIR)/.python-wheel: $(PY_TOOLS)/.installed $(ARM64_TOOLS)/.installed $(PY_SOURCES)
	mkdir -p $(ARM64_WHEEL_DIR)
	rm -f $(ARM64_WHEEL_DIR)/spanguard-*.whl
	rm -f $(PY_TARGET_ARM64)/maturin/lib_native.so $(PY_TARGET_ARM64)/$(ARM64_TARGET)/release/deps/lib_native.so
	cp README.md bindings/python/python/spanguard/README.md
	cd bindings/python && PATH=$(PY_TOOLS)/bin:$$PATH CARGO_TARGET_DIR=$(PY_TARGET_ARM64) $(ARM64_ENV) \
	  maturin build --release --strip --locked --quiet --target $(ARM64_TARGET) --out $(ARM64_WHEEL_DIR)
	ls $(ARM64_WHEEL_DIR)/spanguard-*-manylinux_*_aarch64.whl
	touch $@

dist-arm64: node-addon-arm64 dist-python-arm64

# What test-arm64 runs the packages with: Debian's arm64 python3.11 and
# node, downloaded and unpacked here (not installed: neither can sit beside
# the host's own), with the arm64 libraries they need.
ARM64_ROOT     := $(ARM64_TOOLS)/root
ARM64_RUN_DEBS := python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libexpat1 libffi8 \
                  nodejs libnode108 libuv1 libbrotli1 libc-ares2 libicu72 libnghttp2-14 libstdc++6
# Debian's node loads these (JavaScript) from /usr/share/nodejs as it starts.
ARM64_RUN_DEBS_ALL := node-acorn node-cjs-module-lexer node-undici
AUDITWHEEL_VERSION := 6.8.2
$(ARM64_TOOLS)/.runtimes: $(ARM64_TOOLS)/.installed
	rm -rf $(ARM64_TOOLS)/debs $(ARM64_ROOT)
	mkdir -p $(ARM64_TOOLS)/debs $(ARM64_ROOT)
	cd $(ARM64_TOOLS)/debs && apt-get download -qq $(addsuffix :arm64,$(ARM64_RUN_DEBS)) $(ARM64_RUN_DEBS_ALL)
	for d in $(ARM64_TOOLS)/debs/*.deb; do dpkg-deb -x $$d $(ARM64_ROOT); done
	$(PYTHON3) -m venv $(ARM64_TOOLS)/venv
	$(ARM64_TOOLS)/venv/bin/pip install --quiet --disable-pip-version-check auditwheel==$(AUDITWHEEL_VERSION)
	touch $@

# qemu-aarch64 (no binfmt_misc needed: it is called by name) finds the
# arm64 loader and libc where multiarch put them (/lib/ld-linux-aarch64.so.1),
# the unpacked libraries through the guest's LD_LIBRARY_PATH, and, with -L,
# a file the programs open by absolute path (node's /usr/share/nodejs) in
# the unpacked tree first. Python finds its standard library beside itself.
ARM64_QEMU   := qemu-aarch64 -L $(ARM64_ROOT) \
                -E LD_LIBRARY_PATH=$(ARM64_ROOT)/lib/aarch64-linux-gnu:$(ARM64_ROOT)/usr/lib/aarch64-linux-gnu
ARM64_PYTHON := $(ARM64_QEMU) $(ARM64_ROOT)/usr/bin/python3.11
ARM64_NODE   := $(ARM64_QEMU) $(ARM64_ROOT)/usr/bin/node
ARM64_TEST   := $(CURDIR)/build/arm64-test

build/arm64/tests/%: tests/c/%.c $(C_TEST_HEADERS) include/spanguard.h arm64-lib
	mkdir -p build/arm64/tests
	$(ARM64_CC) $(CFLAGS_TEST) $< -L$(ARM64_LIBDIR) -lspanguard -lpthread -Wl,-rpath,$(ARM64_LIBDIR) -o $@

build/arm64/examples/agent_demo: examples/c/agent_demo.c include/spanguard.h arm64-lib
	mkdir -p build/arm64/examples
	$(ARM64_CC) -std=c11 -Wall -Wextra -Werror -O2 -Iinclude $< -L$(ARM64_LIBDIR) -lspanguard -Wl,-rpath,$(ARM64_LIBDIR) -o $@

# (1) C: the API test and the process tests as test-c runs them, then the
# sink test (the demo agent's sink file, read on the host) and the HTTP
# test (every span at a loopback receiver, field by field) with their
# programs run under qemu. Not the process tests that fork while the
# exporter thread runs (test_fork, test_workers, test_kill_set_again, ...)
# nor those that exec: qemu-user 7.2 itself aborts in a child forked from
# a threaded guest ("cpu_exec: assertion failed: (cpu == current_cpu)"),
# and, without binfmt_misc, the kernel cannot exec an arm64 program. Nor
# test_recovered_resource: under qemu's timing it once found the first
# child's flight-recorder spans twice in the sink (the second child's
# tracer recovered them, wrote them, and crashed on purpose before the
# flight file was done with; the parent recovered them again), a race of
# recovery against a crash, not of arm64, left to be looked at.
ARM64_C_TESTS := test_context test_stale_handles test_callback_reentry test_config_errors test_full_disk \
                 test_fork_shut_down test_shutdown_stuck_exporter test_signal_mask_threads
# (2) The wheel: auditwheel says its tag is the one it carries; the arm64
# pip installs it; the sample agent run with the arm64 python writes the
# same spans as with this machine's (same_spans.py). (3) The npm package of
# make dist, unpacked: the sample agent run with the arm64 node loads the
# linux-arm64 addon and writes the same spans as with this machine's.
test-arm64: dist build/arm64/tests/test_api build/arm64/tests/emit_spans build/arm64/examples/agent_demo \
            $(addprefix build/arm64/tests/,$(ARM64_C_TESTS)) $(ARM64_TOOLS)/.runtimes venv
	rm -rf $(ARM64_TEST) && mkdir -p $(ARM64_TEST)/bin
	$(ARM64_QEMU) build/arm64/tests/test_api $(ARM64_TEST)/c-test-spans
	for t in $(ARM64_C_TESTS); do $(ARM64_QEMU) build/arm64/tests/$$t $(ARM64_TEST)/$$t-spans; done
	for p in emit_spans:tests/emit_spans agent_demo:examples/agent_demo; do \
	  printf '#!/bin/sh\nexec %s %s "$$@"\n' "$(ARM64_QEMU)" "$(CURDIR)/build/arm64/$${p#*:}" > $(ARM64_TEST)/bin/$${p%%:*}; \
	  chmod +x $(ARM64_TEST)/bin/$${p%%:*}; done
	SPANGUARD_EMIT_SPANS=$(ARM64_TEST)/bin/emit_spans SPANGUARD_DEMO=$(ARM64_TEST)/bin/agent_demo \
	  $(VENV_PY) -m pytest -q -p no:cacheprovider tests/python/test_file_sink.py tests/python/test_http_export.py
	# (2) the wheel
	wheel=$$(ls $(ARM64_WHEEL_DIR)/spanguard-*-manylinux_*_aarch64.whl); tag=$$(basename $$wheel .whl); tag=$${tag##*-}; \
	$(ARM64_TOOLS)/venv/bin/auditwheel show $$wheel | tr '\n' ' ' | grep "consistent with the following platform tag: \"$$tag\"" >/dev/null \
	  || { echo "auditwheel does not find $$wheel consistent with its tag $$tag"; exit 1; }
	$(ARM64_PYTHON) -c 'import platform, sys; assert platform.machine() == "aarch64", platform.machine()'
	PYTHONPATH=/usr/lib/python3/dist-packages $(ARM64_PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
	  --no-deps --no-index --target $(ARM64_TEST)/py-arm64 $(ARM64_WHEEL_DIR)/spanguard-*.whl
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-index \
	  --target $(ARM64_TEST)/py-x86-64 $(PY_WHEEL_DIR)/spanguard-*.whl
	cd $(ARM64_TEST) && PYTHONPATH=$(ARM64_TEST)/py-x86-64 SPANGUARD_SINK_DIR=$(ARM64_TEST)/py-sink-x86-64 \
	  SPANGUARD_SPOOL_DIR=$(ARM64_TEST)/py-spool-x86-64 $(VENV_PY) $(CURDIR)/examples/python/agent.py
	cd $(ARM64_TEST) && PYTHONPATH=$(ARM64_TEST)/py-arm64 SPANGUARD_SINK_DIR=$(ARM64_TEST)/py-sink-arm64 \
	  SPANGUARD_SPOOL_DIR=$(ARM64_TEST)/py-spool-arm64 $(ARM64_PYTHON) $(CURDIR)/examples/python/agent.py
	$(VENV_PY) tests/arm64/same_spans.py --ignore exception.stacktrace $(ARM64_TEST)/py-sink-x86-64 $(ARM64_TEST)/py-sink-arm64
	# (3) the npm package
	mkdir -p $(ARM64_TEST)/npm && tar -xzf $(PY_WHEEL_DIR)/spanguard-$(VERSION).tgz -C $(ARM64_TEST)/npm
	mkdir -p $(ARM64_TEST)/npm/package/examples && cp bindings/node/examples/agent.js $(ARM64_TEST)/npm/package/examples/
	cd $(ARM64_TEST) && SPANGUARD_SINK_DIR=$(ARM64_TEST)/node-sink-x86-64 SPANGUARD_SPOOL_DIR=$(ARM64_TEST)/node-spool-x86-64 \
	  node npm/package/examples/agent.js
	cd $(ARM64_TEST) && SPANGUARD_SINK_DIR=$(ARM64_TEST)/node-sink-arm64 SPANGUARD_SPOOL_DIR=$(ARM64_TEST)/node-spool-arm64 \
	  $(ARM64_NODE) -e 'if (process.arch !== "arm64") throw new Error(process.arch); require("./npm/package/examples/agent.js")'
	$(VENV_PY) tests/arm64/same_spans.py --ignore exception.stacktrace $(ARM64_TEST)/node-sink-x86-64 $(ARM64_TEST)/node-sink-arm64
	@echo "test-arm64: the C library, the wheel and the npm package work on linux-arm64 (under qemu)"

# PREFIX/lib: the shared library (SONAME libspanguard.so.0) and the static
# one; PREFIX/include: spanguard.h and the C++ wrapper spanguard.hpp;
# PREFIX/lib/pkgconfig/spanguard.pc (relocatable, with an rpath so that
# programs run without LD_LIBRARY_PATH) and spanguard-static.pc (links
# libspanguard.a into the program: the Go binding's spanguard_static tag);
# PREFIX/bin/spanguard, the command.
install: build cli
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(LIBDIR)/libspanguard.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libspanguard.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libspanguard.so.$(SOMAJOR)
	ln -sf libspanguard.so.$(SOMAJOR) $(DESTDIR)$(PREFIX)/lib/libspanguard.so
	install -m 0644 $(LIBDIR)/libspanguard.a $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 include/spanguard.h include/spanguard.hpp $(DESTDIR)$(PREFIX)/include/
	install -m 0755 target/release/spanguard $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@VERSION@|$(VERSION)|' spanguard.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/spanguard.pc
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@STATIC_DEPS@|$(STATIC_DEPS)|' spanguard-static.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/spanguard-static.pc

clean:
	$(CARGO) clean
	rm -rf build
