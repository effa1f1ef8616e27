# inferd — build, test, run.  `make` leaves ./inferd in the repository root.
#
#   make            build ./inferd (baseline x86-64; NATIVE=1 for this CPU only)
#   make run        install missing Debian packages, build, serve models/ on 127.0.0.1:8080
#   make test       unit tests (Check) + integration tests against a live daemon
#   make asan       the same tests under AddressSanitizer + UBSan
#   make bench      throughput figures (prints, asserts nothing)
#   make fuzz       libFuzzer harnesses (clang, ASan+UBSan), FUZZ_SECONDS each (default 60)
#   make soak       10 minutes of mixed load against a live daemon (prints figures)
#   make models     retrain the default models (long)
#   make install    PREFIX=/usr/local DESTDIR=

CC      ?= cc
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
VERSION := 0.1.0
BUILD   ?= build
BIN     ?= inferd

PKGS    := libmicrohttpd jansson libuv libpng zlib libarchive nettle
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -I/usr/include/x86_64-linux-gnu/openblas-pthread
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lopenblas -ljpeg -lsentencepiece -lstdc++ -lpthread -lm

# Baseline x86-64, so the binary runs on any x86-64 CPU: the matmul kernels
# pick AVX2 / AVX-512 at run time (engine/core/cpu.h; INFERD_CPU lowers the
# choice). NATIVE=1 builds everything for this machine's CPU (-march=native)
# instead; OPT=... overrides both.
ifeq ($(NATIVE),1)
OPT     ?= -O2 -march=native -mtune=native
else
OPT     ?= -O2 -march=x86-64 -mtune=generic
endif
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN    += -Werror
endif
ifneq ($(SANITIZER),)
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=$(SANITIZER) -fno-sanitize-recover=all
LDSAN   := -fsanitize=$(SANITIZER)
endif
CFLAGS  += -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -I. $(PKG_CFLAGS) -DINFERD_VERSION=\"$(VERSION)\" -MMD -MP
# C++ only for engine/text/sentencepiece_shim.cc (the C shim over libsentencepiece)
CXX     ?= g++
CXXWARN := -Wall -Wextra -Wshadow -Wpointer-arith -Wno-unused-parameter
CXXFLAGS += -std=c++17 -g $(OPT) $(CXXWARN) -I. -MMD -MP
LDLIBS  += $(PKG_LIBS) $(LDSAN)

ENGINE_SRC := $(wildcard engine/*/*.c)
ENGINE_CXX := $(wildcard engine/*/*.cc)
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o) $(ENGINE_CXX:%.cc=$(BUILD)/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_ENGINE_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(shell grep -L -e '^\#include "server/' -e '^\#include "fuzz/' $(UNIT_SRC)))
UNIT_SERVER_BIN := $(filter-out $(UNIT_ENGINE_BIN),$(UNIT_BIN))
TOOL_SRC   := $(wildcard tests/tools/*.c)
TOOL_BIN   := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)

unexport BIN
.PHONY: all run test unit integration asan bench models install clean deps check fuzz soak
all: $(BIN)

$(BIN): $(BUILD)/server/main.o $(SERVER_OBJ) $(ENGINE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c -o $@ $<

# Unit suites link what they test: a suite that includes no server (or fuzz
# harness) header is an engine suite and links only engine objects (the
# engine stands alone); the others link the server's objects too.
$(UNIT_ENGINE_BIN): $(BUILD)/tests/%: tests/unit/%.c $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags check) -o $@ $(filter %.c %.o,$^) $(LDLIBS) $(shell pkg-config --libs check)

$(UNIT_SERVER_BIN): $(BUILD)/tests/%: tests/unit/%.c $(SERVER_OBJ) $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags check) -o $@ $(filter %.c %.o,$^) $(LDLIBS) $(shell pkg-config --libs check)

$(BUILD)/tools/%: tests/tools/%.c $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

deps:
	./scripts/install-deps.sh

run: deps
	$(MAKE) inferd
	./inferd serve --config conf/inferd.conf

unit: deps
	$(MAKE) $(UNIT_BIN)
	@python3 scripts/check-includes.py
	@./scripts/fetch-test-vocab.sh
	@failed=0; for t in $(UNIT_BIN); do echo "== $$t"; $$t || failed=$$((failed + 1)); done; \
	  if [ $$failed -ne 0 ]; then echo "unit: $$failed test binary(ies) failed"; exit 1; fi

integration: deps
	$(MAKE) $(BIN) $(TOOL_BIN)
	@INFERD=./$(BIN) TOOLS=$(BUILD)/tools ./tests/integration/run_all.sh

test: unit integration

check: test

# ASan + UBSan run the same tests 2-5x slower: Check's per-test timeouts
# are stretched to match (CK_TIMEOUT_MULTIPLIER), so a slow machine is not
# a failure.
asan:
	CK_TIMEOUT_MULTIPLIER=$${CK_TIMEOUT_MULTIPLIER:-4} $(MAKE) BUILD=build-asan BIN=build-asan/inferd SANITIZER=address,undefined test

# ---- fuzzing: every harness fuzz/fuzz_NAME.c (see fuzz/targets.h) built with
# clang, libFuzzer, ASan + UBSan, over engine+server objects compiled with
# coverage in their own directory; FUZZ_SECONDS each, one at a time.
FUZZ_BUILD   ?= $(BUILD)-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_NAMES   := $(patsubst fuzz/fuzz_%.c,%,$(filter-out fuzz/fuzz_common.c,$(wildcard fuzz/fuzz_*.c)))
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LIBOBJ  := $(ENGINE_SRC:%.c=$(FUZZ_BUILD)/%.o) $(ENGINE_CXX:%.cc=$(FUZZ_BUILD)/%.o) $(SERVER_SRC:%.c=$(FUZZ_BUILD)/%.o) $(FUZZ_BUILD)/fuzz/fuzz_common.o
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer $(WARN) -I. $(PKG_CFLAGS) \
                -DINFERD_VERSION=\"$(VERSION)\" -MMD -MP $(FUZZ_SAN) -fsanitize=fuzzer-no-link

fuzz:
	./scripts/install-deps.sh --fuzz
	$(MAKE) $(FUZZ_BINS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_NAMES)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

# the vptr and function checks need the C++ UBSan runtime, which the C link does not pull in
FUZZ_CXX     ?= clang++
$(FUZZ_BUILD)/%.o: %.cc
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) -std=c++17 -g -O1 -fno-omit-frame-pointer -I. -MMD -MP $(FUZZ_SAN) -fno-sanitize=vptr,function -fsanitize=fuzzer-no-link -c -o $@ $<

.SECONDARY: $(FUZZ_LIBOBJ)
$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_LIBOBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.c %.o,$^) $(PKG_LIBS)

# The regression suite replays fuzz/corpus and fuzz/regressions through the
# harnesses' own entry points, built without libFuzzer's main.
FUZZ_REPLAY_OBJ := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%.o,$(wildcard fuzz/fuzz_*.c))
$(BUILD)/fuzz/%.o: CFLAGS += -DFUZZ_NO_MAIN
$(BUILD)/tests/test_fuzz_regressions: $(FUZZ_REPLAY_OBJ)

bench: $(BIN) $(TOOL_BIN)
	./scripts/install-deps.sh --bench
	./tests/bench/run.sh

soak: deps
	$(MAKE) $(BIN) $(TOOL_BIN)
	@INFERD=./$(BIN) TOOLS=$(BUILD)/tools ./tests/soak/run.sh

models: $(BIN)
	./scripts/install-deps.sh --models
	./scripts/train-models.sh

install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PREFIX)/share/inferd/models $(DESTDIR)$(PREFIX)/share/inferd/conf
	install -m 0755 inferd $(DESTDIR)$(BINDIR)/inferd
	install -m 0644 conf/inferd.conf $(DESTDIR)$(PREFIX)/share/inferd/conf/inferd.conf
	cp -r models/. $(DESTDIR)$(PREFIX)/share/inferd/models/
	install -d $(DESTDIR)$(SYSCONFDIR)/inferd $(DESTDIR)$(UNITDIR)
	[ -e $(DESTDIR)$(SYSCONFDIR)/inferd/inferd.conf ] || install -m 0644 conf/inferd.conf $(DESTDIR)$(SYSCONFDIR)/inferd/inferd.conf
	sed 's#/usr/local#$(PREFIX)#g' systemd/inferd.service > $(DESTDIR)$(UNITDIR)/inferd.service && chmod 0644 $(DESTDIR)$(UNITDIR)/inferd.service

clean:
	rm -rf build build-asan build-fuzz inferd

-include $(shell find $(BUILD) $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
