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
TOOLS      := $(CURDIR)/build/tools
CBINDGEN   := $(TOOLS)/bin/cbindgen
VENV       := $(CURDIR)/.venv
VENV_PY    := $(VENV)/bin/python
LIBDIR     := $(CURDIR)/build/lib
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
SOMAJOR    := $(firstword $(subst ., ,$(VERSION)))
CFLAGS_TEST := -std=c11 -Wall -Wextra -Wpedantic -Werror -g -Iinclude
PREFIX     ?= /usr/local
# What the static library needs besides itself (cargo --print native-static-libs).
STATIC_DEPS := -lssl -lcrypto -lz -lutil -lrt -lpthread -lm -ldl

.PHONY: build header check-header lint test test-rust test-c test-c-asan test-python \
        test-install test-python-binding test-cpp test-go bench-go test-node test-propagation interop cli stress check-memory bench soak demo venv install clean

# --- build ------------------------------------------------------------------

build:
	$(CARGO) build --release --lib
	mkdir -p $(LIBDIR)
	cp target/release/libspanguard.so $(LIBDIR)/libspanguard.so.$(VERSION)
	ln -sf libspanguard.so.$(VERSION) $(LIBDIR)/libspanguard.so.$(SOMAJOR)
	ln -sf libspanguard.so.$(SOMAJOR) $(LIBDIR)/libspanguard.so
	cp target/release/libspanguard.a $(LIBDIR)/libspanguard.a

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

# The command-line tool (spanguard replay).
cli:
	$(CARGO) build --release --bin spanguard

# --- tests ------------------------------------------------------------------

venv: $(VENV)/.installed
$(VENV)/.installed: tests/python/requirements.txt
	$(PYTHON3) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	touch $@

test: check-header lint test-rust test-c test-c-asan test-python test-install test-python-binding test-cpp test-go test-node test-propagation
	@echo "make test: all suites passed"

test-rust:
	$(CARGO) test --quiet

build/tests/kill_child: tests/kill/kill_child.c include/spanguard.h build build/tests/malloc_guard.so
	mkdir -p build/tests
	$(CC) $(CFLAGS_TEST) -O2 $< -L$(LIBDIR) -lspanguard -lpthread -ldl -Wl,-rpath,$(LIBDIR) -o $@

build/tests/malloc_guard.so: tests/kill/malloc_guard.c
	mkdir -p build/tests
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -shared -fPIC $< -o $@

build/tests/%: tests/c/%.c include/spanguard.h build
	mkdir -p build/tests
	$(CC) $(CFLAGS_TEST) $< -L$(LIBDIR) -lspanguard -lpthread -Wl,-rpath,$(LIBDIR) -o $@

C_PROCESS_TESTS := test_fork test_context test_fork_recovery test_workers test_stale_handles test_callback_reentry
test-c: build/tests/test_api $(addprefix build/tests/,$(C_PROCESS_TESTS))
	rm -rf build/c-test-spans
	build/tests/test_api build/c-test-spans
	for t in $(C_PROCESS_TESTS); do rm -rf build/$$t-spans build/$$t-spans-spool; \
	  build/tests/$$t build/$$t-spans; done

# The same C test once more with AddressSanitizer over the test program and a
# static link of the library, checked with nm that ASan really is in.
build/tests/test_api_asan: tests/c/test_api.c include/spanguard.h build
	mkdir -p build/tests
	$(CC) $(CFLAGS_TEST) -fsanitize=address -fno-omit-frame-pointer $< \
	  $(LIBDIR)/libspanguard.a $(STATIC_DEPS) -o $@
	nm $@ | grep -c __asan_init >/dev/null

test-c-asan: build/tests/test_api_asan
	rm -rf build/c-asan-spans
	ASAN_OPTIONS=detect_leaks=1 build/tests/test_api_asan build/c-asan-spans

test-python: venv build build/tests/emit_spans build/tests/kill_child build/examples/agent_demo cli
	SPANGUARD_FIXTURE_DIR=$(CURDIR)/build/otlp-fixtures $(CARGO) test --quiet --test otlp_fixtures
	SPANGUARD_LIB=$(LIBDIR)/libspanguard.so SPANGUARD_EMIT_SPANS=$(CURDIR)/build/tests/emit_spans \
	  SPANGUARD_DEMO=$(CURDIR)/build/examples/agent_demo SPANGUARD_FIXTURE_DIR=$(CURDIR)/build/otlp-fixtures \
	  $(VENV_PY) -m pytest -q tests/python tests/receiver tests/w3c

# The header-only C++17 wrapper: its test and sample agent, warnings as errors.
CXXFLAGS_TEST := -std=c++17 -Wall -Wextra -Wpedantic -Werror -g -Iinclude
test-cpp: build
	mkdir -p build/tests build/examples
	$(CXX) $(CXXFLAGS_TEST) tests/cpp/test_spanguard.cpp -L$(LIBDIR) -lspanguard -Wl,-rpath,$(LIBDIR) -o build/tests/test_cpp
	$(CXX) $(CXXFLAGS_TEST) examples/cpp/agent.cpp -L$(LIBDIR) -lspanguard -Wl,-rpath,$(LIBDIR) -o build/examples/cpp_agent
	rm -rf build/cpp-test-spans build/cpp-demo
	build/tests/test_cpp build/cpp-test-spans
	SPANGUARD_SINK_DIR=build/cpp-demo SPANGUARD_SPOOL_DIR=build/cpp-demo-spool build/examples/cpp_agent

# The Go binding (cgo): vet, tests with the race detector, the sample agent.
GO ?= go
test-go: build
	cd bindings/go && $(GO) vet ./... && $(GO) test -race -count=1 ./...
	rm -rf build/go-demo
	cd bindings/go && SPANGUARD_SINK_DIR=$(CURDIR)/build/go-demo SPANGUARD_SPOOL_DIR=$(CURDIR)/build/go-demo-spool \
	  $(GO) run ./examples/agent

bench-go: build
	cd bindings/go && $(GO) test -run '^$$' -bench . -benchmem ./...

# The Node binding (koffi): npm ci from the lockfile, node --test, the sample agent.
bindings/node/node_modules/.installed: bindings/node/package-lock.json
	cd bindings/node && npm ci --no-audit --no-fund
	touch $@

test-node: build bindings/node/node_modules/.installed
	cd bindings/node && SPANGUARD_LIB=$(LIBDIR)/libspanguard.so node --test test/
	rm -rf build/node-demo
	cd bindings/node && SPANGUARD_LIB=$(LIBDIR)/libspanguard.so SPANGUARD_SINK_DIR=$(CURDIR)/build/node-demo \
	  SPANGUARD_SPOOL_DIR=$(CURDIR)/build/node-demo-spool node examples/agent.js

# Cross-process propagation: a Node agent calls a Go tool with a traceparent.
test-propagation: build bindings/node/node_modules/.installed
	mkdir -p build/tests
	cd bindings/go && $(GO) build -o $(CURDIR)/build/tests/go_tool ./examples/tool
	SPANGUARD_LIB=$(LIBDIR)/libspanguard.so SPANGUARD_GO_TOOL=$(CURDIR)/build/tests/go_tool node --test tests/propagation/

# The Python binding (ctypes) and its sample agent.
test-python-binding: venv build
	SPANGUARD_LIB=$(LIBDIR)/libspanguard.so $(VENV_PY) -m pytest -q bindings/python/tests
	rm -rf build/py-demo
	PYTHONPATH=bindings/python SPANGUARD_LIB=$(LIBDIR)/libspanguard.so SPANGUARD_SINK_DIR=build/py-demo \
	  SPANGUARD_SPOOL_DIR=build/py-demo-spool $(VENV_PY) examples/python/agent.py

# Installs into a scratch prefix, then builds the README's C example and the
# demo agent with pkg-config against it, and runs the README example.
test-install:
	rm -rf build/install-test
	$(MAKE) --no-print-directory install PREFIX=$(CURDIR)/build/install-test
	$(PYTHON3) -c 'import re,sys; t=open("README.md").read(); sys.stdout.write(re.search(r"```c\n(.*?)```", t, re.S).group(1))' \
	  > build/install-test/readme_example.c
	export PKG_CONFIG_PATH=$(CURDIR)/build/install-test/lib/pkgconfig; \
	$(CC) -std=c11 -Wall -Wextra -Werror build/install-test/readme_example.c $$(pkg-config --cflags --libs spanguard) \
	  -Wl,-rpath,$(CURDIR)/build/install-test/lib -o build/install-test/readme_example; \
	$(CC) -std=c11 -Wall -Wextra -Werror examples/c/agent_demo.c $$(pkg-config --cflags --libs spanguard) \
	  -Wl,-rpath,$(CURDIR)/build/install-test/lib -o build/install-test/agent_demo
	SPANGUARD_SINK_DIR=$(CURDIR)/build/install-test/spans build/install-test/readme_example
	test "$$(cat build/install-test/spans/*.jsonl | grep -o '"spanId"' | wc -l)" = 2
	@echo "install: README example and demo build against the installed library; 2 spans arrived"

# A real OpenTelemetry Collector (built once with the Collector Builder; slow
# the first time) receives spans over every protocol and compression and its
# file output must hold exactly what was emitted. Not part of `make test`.
interop: build build/tests/emit_spans
	tests/interop/build-collector.sh
	tests/interop/run-interop.sh

# The kill test, ten times longer and faster (not part of make test).
stress: venv build build/tests/emit_spans build/tests/kill_child
	SPANGUARD_KILL_TRIALS=50 SPANGUARD_KILL_PAUSE_US=50 $(VENV_PY) -m pytest -q -s tests/python/test_kill.py

# The C API test under valgrind's memcheck: any invalid access or leak
# definitely lost fails it.
check-memory: build/tests/test_api
	rm -rf build/c-valgrind-spans
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	  --suppressions=tests/c/valgrind.supp build/tests/test_api build/c-valgrind-spans

# Benchmarks against each language's OpenTelemetry SDK, one Markdown report
# (build/bench.md). Never part of make test: timings are not pass/fail.
BENCH_VENV := $(CURDIR)/build/bench-venv
$(BENCH_VENV)/.installed: bench/python/requirements.txt
	$(PYTHON3) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/python/requirements.txt
	touch $@

build/bench/hot_path: bench/c/hot_path.c include/spanguard.h build
	mkdir -p build/bench
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -Iinclude $< -L$(LIBDIR) -lspanguard -Wl,-rpath,$(LIBDIR) -o $@

bench: build $(BENCH_VENV)/.installed build/bench/hot_path
	cd bench/rust && $(CARGO) build --release
	cd bench/node && npm ci --no-audit --no-fund
	cd bench/go && $(GO) mod download
	python3 bench/run.py $(BENCH_ARGS) | tee build/bench.md

# A long run at a steady rate, reporting RSS at start and end and its slope.
soak: build
	cd bench/rust && $(CARGO) build --release
	bench/rust/target/release/spanguard-bench --soak $(or $(SOAK_SECONDS),600)

# --- the demo ---------------------------------------------------------------

build/examples/agent_demo: examples/c/agent_demo.c include/spanguard.h build
	mkdir -p build/examples
	$(CC) -std=c11 -Wall -Wextra -O2 -Iinclude $< -L$(LIBDIR) -lspanguard -lpthread -Wl,-rpath,$(LIBDIR) -o $@

demo: build/examples/agent_demo
	rm -rf build/demo-spans
	SPANGUARD_SINK_DIR=build/demo-spans build/examples/agent_demo
	$(PYTHON3) examples/show_spans.py build/demo-spans

# --- shipping ---------------------------------------------------------------

install: build
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(LIBDIR)/libspanguard.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libspanguard.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libspanguard.so.$(SOMAJOR)
	ln -sf libspanguard.so.$(SOMAJOR) $(DESTDIR)$(PREFIX)/lib/libspanguard.so
	install -m 0644 $(LIBDIR)/libspanguard.a $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 include/spanguard.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@VERSION@|$(VERSION)|' spanguard.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/spanguard.pc

clean:
	$(CARGO) clean
	rm -rf build
