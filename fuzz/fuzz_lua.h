/*
 * fuzz_lua.h: what the harnesses share: a Lua 5.4 state that finds the repository's Lua
 * modules (SMM_ROOT/lua) and Debian's lua-cjson, and a way to fail loudly.
 * SMM_ROOT and SMM_CJSON_DIR are set by the Makefile (make fuzz).
 */
#ifndef SMM_FUZZ_LUA_H
#define SMM_FUZZ_LUA_H

#include <stdio.h>
#include <stdlib.h>

#include <lua.h>
#include <lualib.h>
#include <lauxlib.h>

#ifndef SMM_ROOT
#define SMM_ROOT "."
#endif
#ifndef SMM_CJSON_DIR
#define SMM_CJSON_DIR "/usr/lib/x86_64-linux-gnu/lua/5.4"
#endif

/* A finding: print why and abort, so libFuzzer saves the input as a crash-* file. */
#define FUZZ_FAIL(...)                                   \
  do {                                                   \
    fprintf(stderr, "FUZZ FINDING (%s:%d): ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__);                        \
    fputc('\n', stderr);                                 \
    abort();                                             \
  } while (0)

static inline lua_State *fuzz_new_state(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL) FUZZ_FAIL("luaL_newstate failed");
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushstring(L, SMM_ROOT "/lua/?.lua;" SMM_ROOT "/lua/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_pushstring(L, SMM_CJSON_DIR "/?.so");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  return L;
}

/* Loads a Lua chunk (the harness' checker) and runs it; leaves its one result on the stack. */
static inline void fuzz_load(lua_State *L, const char *name, const char *code) {
  if (luaL_loadbuffer(L, code, __builtin_strlen(code), name) != LUA_OK ||
      lua_pcall(L, 0, 1, 0) != LUA_OK)
    FUZZ_FAIL("loading %s: %s", name, lua_tostring(L, -1));
}

/* Coverage of Lua code for libFuzzer: a line hook feeds (previous line, line) pairs into
 * libFuzzer's extra counters, so inputs that reach new paths in lua/smm/ are kept (the
 * interpreter itself is not instrumented). */
#define FUZZ_LUA_COUNTERS 8192
__attribute__((section("__libfuzzer_extra_counters"), used)) static unsigned char
    fuzz_lua_counters[FUZZ_LUA_COUNTERS];
static int fuzz_lua_prev;

static void fuzz_lua_line_hook(lua_State *L, lua_Debug *ar) {
  unsigned h = (unsigned)fuzz_lua_prev * 2654435761u ^ (unsigned)ar->currentline;
  (void)L;
  fuzz_lua_counters[h % FUZZ_LUA_COUNTERS]++;
  fuzz_lua_prev = ar->currentline;
}

static inline void fuzz_lua_coverage(lua_State *L) {
  lua_sethook(L, fuzz_lua_line_hook, LUA_MASKLINE, 0);
}

/* Call once per input: every 2048 inputs, a full collection, and the Lua heap compared with
 * its first reading. Anything the code under test keeps alive by mistake (registry entries,
 * upvalues) shows up as growth. One harness per program, so the counters can be static. */
static inline void fuzz_check_heap(lua_State *L) {
  static unsigned long runs;
  static int baseline_kb;
  if (++runs % 2048 == 0) {
    int kb;
    lua_gc(L, LUA_GCCOLLECT, 0);
    kb = lua_gc(L, LUA_GCCOUNT, 0);
    if (baseline_kb == 0) baseline_kb = kb;
    else if (kb > baseline_kb + 1024)
      FUZZ_FAIL("Lua memory grew from %d KiB to %d KiB", baseline_kb, kb);
  }
}

#endif
