# lua-smm: build the C core, run the tests, run the demo.
#   make            build smm.core for LUA_VERSION (default 5.4)
#   make test       install missing Debian packages, build, luacheck, busted
#   make demo       start the sandbox panel and run examples/quickstart.lua against it
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
BUILD       := build/lua$(LUA_VERSION)
CORE        := $(BUILD)/smm/core.so
SRC         := $(wildcard src/*.c)
HDR         := $(wildcard src/*.h)

export LUA_PATH  := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;;

.PHONY: all deps test demo lint clean check-valgrind

all: $(CORE)

$(CORE): $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -std=c99 -fPIC -fvisibility=hidden -shared \
	  -I$(LUA_INCDIR) $(CURL_CFLAGS) -o $@ $(SRC) $(CURL_LIBS)

deps:
	@sh scripts/install-deps

lint: deps
	luacheck -q lua spec examples bin

test: deps
	sh scripts/run-tests

demo: deps
	$(MAKE) all
	LUA=$(LUA) sh scripts/demo

# The specs under valgrind, on lua5.4 (only the Lua process running busted is traced: the
# sandbox and echo servers it starts are not). Third-party noise is in spec/valgrind.supp.
#   make check-valgrind                       the core spec
#   make check-valgrind VALGRIND_SPECS=spec   the whole suite
VALGRIND_SPECS ?= spec/01-core_spec.lua
VALGRIND       ?= valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
                  --suppressions=$(CURDIR)/spec/valgrind.supp --num-callers=40 --quiet
check-valgrind:
	$(MAKE) all LUA_VERSION=5.4
	SMM_VALGRIND=1 $(VALGRIND) lua5.4 /usr/bin/busted --cpath='$(CURDIR)/build/lua5.4/?.so' \
	  $(VALGRIND_SPECS)

clean:
	rm -rf build
