# inferd -- build, test and run. `make help` lists the targets.
CC ?= cc
CXX ?= g++
PKGS := libmicrohttpd libcjson libproc2
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS ?= -O2 -g
WARN := -std=c11 -Wall -Wextra -Werror
ALL_CFLAGS = $(WARN) -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) $(CFLAGS)
LDLIBS := $(PKG_LIBS) -lpthread -ldl -lm

# The shim is built against Debian's libtorch-dev unless LIBTORCH names an
# unpacked official libtorch distribution (e.g. third_party/libtorch).
ifdef LIBTORCH
TORCH_CFLAGS := -I$(LIBTORCH)/include -I$(LIBTORCH)/include/torch/csrc/api/include -D_GLIBCXX_USE_CXX11_ABI=1
TORCH_LIBS := -L$(LIBTORCH)/lib -Wl,-rpath,$(abspath $(LIBTORCH))/lib -ltorch -ltorch_cpu -lc10
else
TORCH_CFLAGS := -I/usr/include/torch/csrc/api/include
TORCH_LIBS := -ltorch -ltorch_cpu -lc10
endif
CXXFLAGS ?= -O2 -g
ALL_CXXFLAGS = -std=c++17 -fPIC -Wall -Wextra -Werror -Iinclude $(TORCH_CFLAGS) $(CXXFLAGS)

SRCS := $(wildcard src/*.c)
OBJS := $(SRCS:src/%.c=build/obj/%.o)
LIB_OBJS := $(filter-out build/obj/main.o,$(OBJS))
ASAN_OBJS := $(SRCS:src/%.c=build/asan/%.o)
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)

.PHONY: all deps run test unit integration integration-asan asan clean help format models

all: build/inferd build/libinferd_torch.so

help:
	@echo "make          build build/inferd and build/libinferd_torch.so"
	@echo "make run      install missing packages, build, serve models/demo.pt"
	@echo "make test     install missing packages, build, run every test"
	@echo "make asan     build build/asan/inferd (+ shim) with ASan + UBSan"
	@echo "make unit | integration | integration-asan   parts of make test"
	@echo "make fuzz SECONDS=N   run each libFuzzer target N s"
	@echo "make soak     long reliability runs"
	@echo "make bench    benchmarks; writes docs/performance.md"
	@echo "make LIBTORCH=/path/to/libtorch   build the shim against it"

deps:
	@scripts/install-deps.sh

build/obj/%.o: src/%.c $(wildcard include/inferd/*.h) memory_config.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

build/inferd: $(OBJS)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)

build/libinferd_torch.so: src/backend_torch.cpp include/inferd/backend.h
	@mkdir -p build
	$(CXX) $(ALL_CXXFLAGS) -shared $< -o $@ $(TORCH_LIBS)

build/asan/%.o: src/%.c $(wildcard include/inferd/*.h) memory_config.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) -c $< -o $@

# libstdc++ is linked (not just dlopened with the shim) so that ASan's
# interceptors see the C++ runtime from the start: otherwise the first C++
# exception thrown inside the shim aborts in __cxa_throw.
build/asan/inferd: $(ASAN_OBJS)
	$(CC) $(ALL_CFLAGS) $(SAN) $^ -o $@ $(LDLIBS) -Wl,--no-as-needed -lstdc++

build/asan/libinferd_torch.so: src/backend_torch.cpp include/inferd/backend.h
	@mkdir -p build/asan
	$(CXX) $(ALL_CXXFLAGS) $(SAN) -shared $< -o $@ $(TORCH_LIBS)

asan: build/asan/inferd build/asan/libinferd_torch.so

build/tests/%: tests/unit/%.c $(LIB_OBJS:build/obj/%=build/asan/%) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) $(filter %.c %.o,$^) -o $@ $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

models:
	/usr/bin/python3 tests/fixtures/make_models.py build/models --large --huge

integration: all asan models
	INFERD_BIN=$(CURDIR)/build/inferd INFERD_ASAN_BIN=$(CURDIR)/build/asan/inferd \
	INFERD_MODELS=$(CURDIR)/build/models \
	/usr/bin/python3 -m pytest -q tests/integration

# The model tests again, with the daemon and the shim under ASan + UBSan
# (libtorch itself is not instrumented). Tests of RSS figures are skipped
# there; see conftest.memory_figures.
integration-asan: asan models
	INFERD_BIN=$(CURDIR)/build/asan/inferd INFERD_ASAN_BIN=$(CURDIR)/build/asan/inferd \
	INFERD_MODELS=$(CURDIR)/build/models \
	/usr/bin/python3 -m pytest -q tests/integration/test_model.py tests/integration/test_v2.py

# CI runs this: unit tests and the integration suite (ASan + UBSan where no
# model is loaded, plus the sanitizer pass of integration-asan), then each
# fuzz target for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
test: deps
	$(MAKE) all asan
	$(MAKE) unit
	$(MAKE) integration
	$(MAKE) integration-asan
	$(MAKE) fuzz SECONDS=$(FUZZ_SECONDS)

run: deps
	$(MAKE) all
	MODEL_PATH=$${MODEL_PATH:-models/demo.pt} ENVIRONMENT=$${ENVIRONMENT:-development} ./build/inferd

format:
	clang-format -i src/*.c include/inferd/*.h src/*.cpp tests/unit/*.c

clean:
	rm -rf build

# ---- fuzzing (clang + libFuzzer): make fuzz SECONDS=N runs each target N s
FUZZ_CC ?= clang
SECONDS ?= 60
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_OBJS := $(LIB_OBJS:build/obj/%=build/fuzz/obj/%)

build/fuzz/obj/%.o: src/%.c $(wildcard include/inferd/*.h) memory_config.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(WARN) -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) -O1 -g $(FUZZ_SAN) -c $< -o $@

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS)
	$(FUZZ_CC) $(WARN) -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) -O1 -g \
	    -fsanitize=fuzzer,address,undefined $^ -o $@ $(LDLIBS)

# The v2 target compiles handlers_v2.c itself to reach its static decoder.
build/fuzz/fuzz_v2: tests/fuzz/fuzz_v2.c $(filter-out build/fuzz/obj/handlers_v2.o,$(FUZZ_OBJS)) src/handlers_v2.c
	$(FUZZ_CC) $(WARN) -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) -O1 -g \
	    -fsanitize=fuzzer,address,undefined $(filter %.o,$^) tests/fuzz/fuzz_v2.c -o $@ $(LDLIBS)

# Each target: replay its kept crashers (regressions), then fuzz from its
# seed corpus (copied, so the run does not dirty the tree).
fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p build/fuzz/corpus/$$t; \
	    cp -n tests/fuzz/corpus/$$t/* build/fuzz/corpus/$$t/ 2>/dev/null || true; \
	    if [ -d tests/fuzz/crashers/$$t ]; then \
	        echo "== $$t: regressions"; build/fuzz/fuzz_$$t tests/fuzz/crashers/$$t/*; fi; \
	    echo "== $$t: $(SECONDS) s"; \
	    build/fuzz/fuzz_$$t -max_total_time=$(SECONDS) -max_len=65536 \
	        -print_final_stats=1 -artifact_prefix=build/fuzz/ \
	        build/fuzz/corpus/$$t 2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY|Done" || exit 1; \
	done
.PHONY: fuzz
.SECONDARY: $(FUZZ_OBJS)

# Benchmarks: bench/run.py drives wrk against the HTTP floor, inferd and the
# Python seed server, and writes its figures into docs/performance.md.
BENCH_BINS := build/bench/http_floor build/bench/decode_bench build/bench/forward_floor

.PHONY: bench

build/bench/http_floor: bench/http_floor.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(LDLIBS)

build/bench/decode_bench: bench/decode_bench.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS)

build/bench/forward_floor: bench/forward_floor.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(ALL_CXXFLAGS) $< -o $@ $(TORCH_LIBS)

bench: all $(BENCH_BINS)
	/usr/bin/python3 bench/run.py

# Long reliability runs: 50 000 predictions, 200 load/unload cycles, 30 s of
# races under ASan, valgrind, the bad-input matrix (tests/soak/soak.py).
.PHONY: soak
soak: all asan models
	INFERD_BIN=$(CURDIR)/build/inferd INFERD_ASAN_BIN=$(CURDIR)/build/asan/inferd \
	INFERD_MODELS=$(CURDIR)/build/models \
	/usr/bin/python3 tests/soak/soak.py
