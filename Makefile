# engram — one GNU Makefile for the library, the host, the tests and the benchmarks.
#
#   make                 build libengram.a, libengram.so (and engram-run once it exists)
#   make test            install missing packages, build, run C tests and busted specs
#   make bench           build and run the benchmarks (prints ratio tables, never asserts)
#   make demo            run the default consolidation pipeline on generated data
#   make install PREFIX=/usr/local
#   MODE=debug|release|asan|ubsan|tsan   (objects of each mode live in build/MODE)
#   V=1                  show full command lines
#
# Sources are discovered by directory, so a new file in runtime/, kernels/, spec/c/,
# bench/ or examples/ is built without touching this file:
#   runtime/*.c          library (runtime/main.c is engram-run, not part of the library)
#   kernels/*_avx2.c     built with AVX2+FMA target flags, *_avx512.c with AVX-512 flags;
#                        the rest of the library stays baseline x86-64 (dispatch is at run time)
#   spec/c/test_*.c      one C test program each
#   bench/bench_*.c      one benchmark program each
#   examples/*.c         embedding examples, built and run by `make test`

# ---- configuration ----------------------------------------------------------------------

MODE    ?= release
PREFIX  ?= /usr/local
CC      ?= cc
BUILD   := build/$(MODE)

# Curated warnings: everything here must stay clean.
WARN    := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wundef -Wvla -Wcast-align -Wno-unused-parameter

# initial-exec TLS keeps the thread-arena lookup a single %fs load even in the shared object
# (global-dynamic would add a __tls_get_addr call to every lookup).
BASE    := -std=gnu11 -D_GNU_SOURCE -fPIC -pthread -fvisibility=hidden -ftls-model=initial-exec \
           -fno-strict-aliasing -Iruntime -Ikernels

ifeq ($(MODE),release)
  OPT   := -O2 -g -DNDEBUG
else ifeq ($(MODE),debug)
  OPT   := -O0 -g3 -DENGRAM_DEBUG=1 -DENGRAM_VALGRIND=1
else ifeq ($(MODE),asan)
  OPT   := -O1 -g -DENGRAM_DEBUG=1 -fsanitize=address -fno-omit-frame-pointer
  SAN   := -fsanitize=address
else ifeq ($(MODE),ubsan)
  OPT   := -O1 -g -DENGRAM_DEBUG=1 -fsanitize=undefined -fno-sanitize-recover=undefined \
           -fno-omit-frame-pointer
  SAN   := -fsanitize=undefined
else ifeq ($(MODE),tsan)
  OPT   := -O1 -g -DENGRAM_DEBUG=1 -fsanitize=thread -fno-omit-frame-pointer
  SAN   := -fsanitize=thread
else
  $(error MODE must be one of debug, release, asan, ubsan, tsan (got '$(MODE)'))
endif

LUAJIT_CFLAGS := $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
LUAJIT_LIBS   := $(shell pkg-config --libs luajit 2>/dev/null || echo -lluajit-5.1)

CFLAGS_ALL := $(BASE) $(OPT) $(WARN) $(LUAJIT_CFLAGS) $(CFLAGS)
LDLIBS_ALL := $(SAN) -pthread -lm -ldl $(LDLIBS)

# Programs link the whole static library: Lua code reaches much of it only through the FFI
# (kernels, store), which the linker cannot see, and -rdynamic exports it to ffi.C.
WHOLE_LIB = -Wl,--whole-archive $(LIB_A) -Wl,--no-whole-archive

# Per-file ISA flags for kernel variants: only these files may use wider instructions.
ISA_avx2   := -mavx2 -mfma
ISA_avx512 := -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma -mavx2

ifeq ($(V),1)
  Q :=
  say :=
else
  Q := @
  say = @printf '  %-6s %s\n' $(1) $(2);
endif

# ---- sources ----------------------------------------------------------------------------

LIB_SRC   := $(filter-out runtime/main.c,$(wildcard runtime/*.c)) $(wildcard kernels/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB_A     := $(BUILD)/libengram.a
LIB_SO    := $(BUILD)/libengram.so
HAVE_MAIN := $(wildcard runtime/main.c)
RUN_BIN   := $(if $(HAVE_MAIN),$(BUILD)/engram-run)

TEST_SRC  := $(wildcard spec/c/test_*.c)
TEST_BIN  := $(TEST_SRC:spec/c/%.c=$(BUILD)/spec/%)
TEST_LIB  := $(filter-out spec/c/test_%.c,$(wildcard spec/c/*.c))
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
BENCH_LIB := $(filter-out bench/bench_%.c,$(wildcard bench/*.c))
EX_SRC    := $(wildcard examples/*.c)
EX_BIN    := $(EX_SRC:examples/%.c=$(BUILD)/examples/%)

DEPS := $(LIB_OBJ:.o=.d) $(TEST_BIN:=.d) $(BENCH_BIN:=.d) $(EX_BIN:=.d) $(BUILD)/runtime/main.d

# ---- targets ----------------------------------------------------------------------------

.PHONY: all lib tests benches examples test bench demo deps install clean
all: lib $(RUN_BIN)
lib: $(LIB_A) $(LIB_SO)
tests: $(TEST_BIN) $(EX_BIN)
benches: $(BENCH_BIN)
examples: $(EX_BIN)

# Rebuild everything when the flags change (MODE is already separated by directory).
$(BUILD)/.flags: FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(CFLAGS_ALL) $(LDLIBS_ALL)' | cmp -s - $@ || echo '$(CC) $(CFLAGS_ALL) $(LDLIBS_ALL)' > $@
FORCE:

$(BUILD)/%.o: %.c $(BUILD)/.flags
	@mkdir -p $(@D)
	$(call say,CC,$@)$(CC) $(CFLAGS_ALL) $(ISA_$(lastword $(subst _, ,$(basename $(notdir $<))))) -MMD -MP -c $< -o $@

$(LIB_A): $(LIB_OBJ)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(LIB_OBJ)
	$(call say,LD,$@)$(CC) -shared -Wl,-soname,libengram.so.0 -o $@ $^ $(LUAJIT_LIBS) -lsqlite3 $(LDLIBS_ALL)

$(BUILD)/engram-run: $(BUILD)/runtime/main.o $(LIB_A)
	$(call say,LD,$@)$(CC) -o $@ $< $(WHOLE_LIB) $(LUAJIT_LIBS) -lsqlite3 $(LDLIBS_ALL) -rdynamic

# Tests link the static library so they see exactly this build; -rdynamic lets a LuaJIT state
# inside a test resolve the library's exported symbols through ffi.C.
$(BUILD)/spec/%: spec/c/%.c $(TEST_LIB) $(LIB_A) $(BUILD)/.flags
	@mkdir -p $(@D)
	$(call say,CC,$@)$(CC) $(CFLAGS_ALL) -Ispec/c -MMD -MP -MF $@.d -o $@ $< $(TEST_LIB) $(WHOLE_LIB) $(LUAJIT_LIBS) -lsqlite3 $(LDLIBS_ALL) -rdynamic

$(BUILD)/bench/%: bench/%.c $(BENCH_LIB) $(LIB_A) $(BUILD)/.flags
	@mkdir -p $(@D)
	$(call say,CC,$@)$(CC) $(CFLAGS_ALL) -O3 -march=native -Ibench -MMD -MP -MF $@.d -o $@ $< $(BENCH_LIB) $(WHOLE_LIB) $(LUAJIT_LIBS) -lsqlite3 $(BENCH_LIBS_$*) $(LDLIBS_ALL) -rdynamic

$(BUILD)/examples/%: examples/%.c $(LIB_A) $(BUILD)/.flags
	@mkdir -p $(@D)
	$(call say,CC,$@)$(CC) $(CFLAGS_ALL) -MMD -MP -MF $@.d -o $@ $< $(WHOLE_LIB) $(LUAJIT_LIBS) -lsqlite3 $(LDLIBS_ALL) -rdynamic

# Benchmarks that link a peer library name it here (bench_kernels needs OpenBLAS, ...).
BENCH_LIBS_bench_kernels := -lopenblas -fopenmp

# ---- workflows --------------------------------------------------------------------------

deps:
	@scripts/install-deps.sh

test: deps
	@$(MAKE) --no-print-directory all tests
	@MODE=$(MODE) BUILD=$(BUILD) scripts/run-tests.sh

bench: deps
	@$(MAKE) --no-print-directory MODE=release lib benches
	@BUILD=build/release scripts/run-bench.sh

demo: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/engram-run demo --db build/demo.db

install: lib $(RUN_BIN)
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	           $(DESTDIR)$(PREFIX)/share/lua/5.1/engram
	install -m 644 runtime/engram.h $(DESTDIR)$(PREFIX)/include/engram.h
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/libengram.a
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/libengram.so.0
	ln -sf libengram.so.0 $(DESTDIR)$(PREFIX)/lib/libengram.so
	install -m 644 lua/engram/*.lua $(DESTDIR)$(PREFIX)/share/lua/5.1/engram/
	install -d $(DESTDIR)$(PREFIX)/share/engram/scripts
	install -m 644 scripts/consolidate.lua $(DESTDIR)$(PREFIX)/share/engram/scripts/
	$(if $(RUN_BIN),install -m 755 $(RUN_BIN) $(DESTDIR)$(PREFIX)/bin/engram-run)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e "s|@VERSION@|$$(scripts/version.sh)|g" engram.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/engram.pc

clean:
	rm -rf build

-include $(wildcard $(DEPS))
