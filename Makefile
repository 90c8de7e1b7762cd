# Front door: `make run` and `make test` (see README.md).
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
OMSD_FLAGS ?=

FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 8

.PHONY: all deps build run cluster test test-sanitize bench-store fuzz fuzz-run certs format clean

all: build

deps:
	@OMS_NPM_PREFIX=$(abspath $(BUILD))/npm bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

certs:
	@bash scripts/certs.sh certs

# Installs what is missing, builds, makes dev certificates, starts omsd (TLS),
# with its metrics and health endpoints on http://127.0.0.1:9464.
run: build certs
	./$(BUILD)/omsd --metrics-listen 127.0.0.1:9464 $(OMSD_FLAGS)

# PostgreSQL (throwaway, scripts/pgtmp.py) and three omsd instances on it, TLS on
# 127.0.0.1:50071..50073 with the demo data, until Ctrl-C (scripts/cluster.sh;
# CLUSTER_FLAGS e.g. --ports 0,0,0 for free ports, -- --workers 1 for omsd).
CLUSTER_FLAGS ?=
cluster: build certs
	bash scripts/cluster.sh --build $(BUILD) $(CLUSTER_FLAGS)

# Builds and runs every test (unit + integration); benchmarks are not tests
# (label bench-store: `make bench-store`).
test: build
	cd $(BUILD) && ctest --output-on-failure -j 2 -LE bench-store

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-sanitize: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DOMS_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j 2 -LE bench-store

# The store's write-path benchmark (tests/store/bench_store.c): orders/s and
# commit figures per mode, printed to stderr; run alone.
bench-store: build
	cd $(BUILD) && ctest -L bench-store --output-on-failure -V

# libFuzzer targets (clang, ASan+UBSan) in their own build dir; see fuzz/README.md.
fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DOMS_FUZZ=ON -DOMS_TESTS=OFF \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(FUZZ_BUILD) --target fuzzers -j $(JOBS)

# Runs each target FUZZ_SECONDS on its corpus (CI runs this through ctest).
fuzz-run: fuzz
	bash fuzz/run.sh -t $(FUZZ_SECONDS) -b $(CURDIR)/$(FUZZ_BUILD)

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
