# lua-smm: build the C core, run the tests, run the demo.
#   make            build smm.core for LUA_VERSION (default 5.4)
#   make test       install the missing Debian packages of the test set, build, luacheck, busted
#   make test-cjson-path   the client specs against a build without the direct JSON reader
#   make demo       install the demo's few packages, start the sandbox panel and run
#                   examples/quickstart.lua against it
# Neither leaves a service running (see scripts/install-deps).
LUA_VERSION ?= 5.4
LUA         ?= lua$(LUA_VERSION)
ifeq ($(LUA_VERSION),jit)
LUA         := luajit
LUA_INCDIR  ?= /usr/include/luajit-2.1
else
LUA_INCDIR  ?= /usr/include/lua$(LUA_VERSION)
endif
CC          ?= cc
CFLAGS      ?= -O2 -g
WARN        := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CURL_CFLAGS ?= $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS   ?= $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
# SMM_DIRECT_READER=0: smm.core without its direct reader of flat answers (src/reader.c,
# -DSMM_NO_DIRECT_READER), every answer then read by lua-cjson and schema.c's walks; built apart,
# in build/lua$(LUA_VERSION)-cjson, so it never stands in for the usual build.
SMM_DIRECT_READER ?= 1
ifeq ($(SMM_DIRECT_READER),0)
BUILD       := build/lua$(LUA_VERSION)-cjson
DEFS        := -DSMM_NO_DIRECT_READER
else
BUILD       := build/lua$(LUA_VERSION)
DEFS        :=
endif
CORE        := $(BUILD)/smm/core.so
SRC         := $(wildcard src/*.c)
HDR         := $(wildcard src/*.h)

export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;

.PHONY: all deps deps-demo test test-cjson-path demo lint clean check-valgrind check-asan check-memory fuzz fuzz-build bench

all: $(CORE)

$(CORE): $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) $(DEFS) -std=c99 -fPIC -fvisibility=hidden -shared \
	  -I$(LUA_INCDIR) $(CURL_CFLAGS) -o $@ $(SRC) $(CURL_LIBS)

deps:
	@sh scripts/install-deps test

deps-demo:
	@sh scripts/install-deps demo

lint: deps
	luacheck -q lua spec examples bench bin/smm bin/smm-sandbox

test: deps
	sh scripts/run-tests

# The client specs on lua5.4 against smm.core built without the direct reader, so that the
# lua-cjson path (decode.c -> cjson -> schema.c's walks) stays covered: CI runs it as a step.
# The nm check makes sure the reader really is out of that build.
CJSON_PATH_SPECS ?= spec/01-core_spec.lua spec/02-actions_spec.lua spec/03-add_spec.lua \
                    spec/04-errors_spec.lua spec/05-retry_spec.lua spec/06-batch_spec.lua \
                    spec/07-wait_spec.lua spec/08-services_spec.lua spec/09-ratelimit_spec.lua \
                    spec/50-trust_answers_spec.lua spec/52-trust_core_spec.lua
test-cjson-path: deps
	$(MAKE) all LUA_VERSION=5.4 SMM_DIRECT_READER=0
	@if nm build/lua5.4-cjson/smm/core.so | grep -q smm_read_direct; then \
	  echo 'test-cjson-path: build/lua5.4-cjson still has the direct reader' >&2; exit 1; fi
	LUA_CPATH='$(CURDIR)/build/lua5.4-cjson/?.so;;' SMM_CLI_LUA=lua5.4 \
	  busted --lua=lua5.4 --cpath='$(CURDIR)/build/lua5.4-cjson/?.so' $(CJSON_PATH_SPECS)

demo: deps-demo
	$(MAKE) all
	LUA=$(LUA) sh scripts/demo

# The specs under valgrind, on lua5.4 (only the Lua process running busted is traced: the
# sandbox and echo servers it starts are not). Third-party noise is in spec/valgrind.supp.
#   make check-valgrind                       the core spec
#   make check-valgrind VALGRIND_SPECS=spec   the whole suite
VALGRIND_SPECS ?= spec/01-core_spec.lua
VALGRIND       ?= valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
                  --suppressions=$(CURDIR)/spec/valgrind.supp --num-callers=40 --quiet
# PGGSSENCMODE=disable (check-valgrind and check-asan): libpq first tries GSSAPI encryption, and
# initialising Kerberos for it leaves 48 bytes behind in libkrb5 for the process's life, which
# the leak checkers report from every process that opened a PostgreSQL book (third-party, freed
# by nothing; the specs' loopback servers have no Kerberos anyway).
check-valgrind:
	$(MAKE) all LUA_VERSION=5.4
	PGGSSENCMODE=disable SMM_VALGRIND=1 $(VALGRIND) lua5.4 /usr/bin/busted --cpath='$(CURDIR)/build/lua5.4/?.so' \
	  $(VALGRIND_SPECS)

# The whole suite on lua5.4 against smm.core built with AddressSanitizer + UBSan (build/asan),
# the runtime LD_PRELOADed into lua5.4. Every process busted starts inherits the preload and
# these options: sandbox servers and CLI runs (lua5.4, which may load smm.core) get
# LeakSanitizer through build/asan/options-lua5.4 (include_if_exists, %b = program name);
# other programs (sh, sed, gcc and ld under luarocks, nginx) run with detect_leaks=0, as they
# never run our code and free nothing at exit. fuzz/lsan.supp: third-party frames only.
SAN_CC      ?= clang
SAN_FLAGS   := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -fno-omit-frame-pointer
ASAN_RT      = $(shell $(SAN_CC) -print-file-name=libclang_rt.asan-x86_64.so)
ASAN_CORE   := build/asan/smm/core.so
ASAN_ENV     = PGGSSENCMODE=disable LD_PRELOAD=$(ASAN_RT) \
               ASAN_OPTIONS=detect_leaks=0:include_if_exists=$(CURDIR)/build/asan/options-%b:exitcode=86 \
               LSAN_OPTIONS=suppressions=$(CURDIR)/fuzz/lsan.supp:print_suppressions=0:exitcode=23:use_tls=0 \
               UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ASAN_SPECS  ?= spec
# use_tls=0: clang 14's LeakSanitizer, reading the thread-local storage of glibc 2.36 as leak
# roots, crashes its own tracer at exit in some lua5.4 runs ("Tracer caught signal 11", then
# exit 23 with no report: a CLI batch run hit it every time). Without those roots it can only
# report more, never hide a leak; the one extra report, the loader's copy of a dlopen'ed
# library's name, is suppressed in fuzz/lsan.supp.
# #load (100k calls, RSS must stay flat) measures the allocator, not our code: not under ASan.
# #book (the order book's own specs: 24, 25, 80-88) is left out of both memory checks: LuaDBI 0.7
# never closes a connection that failed to open (sqlite3_open_v2's handle, libpq's PGconn after a
# refused login), those specs fail opens on purpose, and the leaked frames, in a library that
# lua_close has unloaded by then, cannot be named in a suppression. They run in make test.
ASAN_BUSTED_ARGS ?= --exclude-tags=load,nginxsuite,book

$(ASAN_CORE): $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(SAN_CC) $(SAN_FLAGS) $(WARN) -std=c99 -fPIC -fvisibility=hidden -shared -shared-libsan \
	  -I/usr/include/lua5.4 $(CURL_CFLAGS) -o $@ $(SRC) $(CURL_LIBS)

check-asan: deps $(ASAN_CORE)
	@test -f '$(ASAN_RT)' || { echo 'check-asan: no ASan runtime (apt-get install clang libclang-rt-14-dev)' >&2; exit 1; }
	@printf 'detect_leaks=1\ndetect_stack_use_after_return=1\n' >build/asan/options-lua5.4
	@log=build/asan/busted.log; start=$$(date +%s); \
	LUA_CPATH='$(CURDIR)/build/asan/?.so;;' $(ASAN_ENV) \
	  lua5.4 /usr/bin/busted --cpath='$(CURDIR)/build/asan/?.so' $(ASAN_BUSTED_ARGS) $(ASAN_SPECS) >$$log 2>&1; \
	rc=$$?; cat $$log; \
	echo "check-asan: busted exited $$rc after $$(( $$(date +%s) - start ))s"; \
	if grep -qE '^(==[0-9]+==ERROR|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer)|runtime error:' $$log; then \
	  echo 'check-asan: sanitizer reports above' >&2; exit 1; fi; \
	exit $$rc

# check-asan, then the whole suite under valgrind (#load left out there too: 100k calls).
VALGRIND_ALL_SPECS ?= --exclude-tags=load,nginxsuite,book spec
check-memory:
	$(MAKE) check-asan
	@start=$$(date +%s); $(MAKE) check-valgrind VALGRIND_SPECS='$(VALGRIND_ALL_SPECS)'; rc=$$?; \
	echo "check-valgrind: exited $$rc after $$(( $$(date +%s) - start ))s"; exit $$rc

# libFuzzer harnesses (fuzz/*_fuzzer.c) over the C core's form encoding and answer decoding and
# the Lua normalisation; built into build/fuzz, each run for FUZZ_SECONDS with its seeds in
# fuzz/corpus/NAME and what it finds kept in build/fuzz/corpus-NAME. A crash, leak or failed
# check leaves build/fuzz/NAME-crash-* and fails the target.
FUZZERS      := form decode normalize schema
FUZZ_SECONDS ?= 60
FUZZ_ARGS    ?=
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_BINS    := $(FUZZERS:%=build/fuzz/%_fuzzer)
FUZZ_SRC     := src/form.c src/decode.c src/reader.c src/schema.c src/buffer.c

build/fuzz/%_fuzzer: fuzz/%_fuzzer.c fuzz/fuzz_lua.h $(FUZZ_SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(SAN_CC) $(FUZZ_FLAGS) $(WARN) -I/usr/include/lua5.4 -Isrc -DSMM_ROOT='"$(CURDIR)"' \
	  -DSMM_CJSON_DIR='"/usr/lib/x86_64-linux-gnu/lua/5.4"' -o $@ $< $(FUZZ_SRC) -llua5.4 -lm

fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@status=0; for f in $(FUZZERS); do \
	  mkdir -p build/fuzz/corpus-$$f; \
	  echo "== fuzz $$f for $(FUZZ_SECONDS)s"; \
	  if build/fuzz/$${f}_fuzzer -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	       -print_final_stats=1 -artifact_prefix=build/fuzz/$$f- $(FUZZ_ARGS) \
	       build/fuzz/corpus-$$f fuzz/corpus/$$f >build/fuzz/$$f.log 2>&1; then \
	    grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' build/fuzz/$$f.log; \
	    grep -E '^#[0-9]+.*DONE' build/fuzz/$$f.log | tail -1; \
	  else \
	    status=1; tail -60 build/fuzz/$$f.log; echo "fuzz $$f: FAILED (log build/fuzz/$$f.log)"; \
	  fi; \
	done; exit $$status

# Performance against bare libcurl + cjson on a loopback nginx (see docs/benchmarks.md): prints
# ratios (medians of SMM_BENCH_REPS runs, default 5), never fails on a missed target.
bench:
	@SMM_EXTRA_PACKAGES="lua-curl wrk" sh scripts/install-deps test
	$(MAKE) all LUA_VERSION=5.4
	@mkdir -p build/bench
	$(CC) -O2 -Wall -Wextra $(CURL_CFLAGS) -o build/bench/curl_loop bench/curl_loop.c $(CURL_LIBS)
	lua5.4 bench/run.lua

clean:
	rm -rf build
