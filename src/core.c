/*
 * core.c: the module "smm.core". luaopen_smm_core opens the other parts (the handle type in
 * client.c) and owns the small module-level functions: _VERSION, sleep, now (also the
 * handle's sleep and now methods), and registers catch_interrupts/interrupts (interrupt.c) and
 * DEFAULTS (core.new's defaults, options.c).
 * The module keeps no C globals but the signal count of interrupt.c (signals are per process):
 * every other piece of state lives in a handle userdata.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <time.h>

#include <curl/curl.h>

#include "client.h"
#include "interrupt.h"
#include "options.h"

/* The milliseconds at idx: nanosleep, resumed after EINTR with the remaining time; no busy
 * wait. Once core.catch_interrupts has counted a signal it returns at once: a signal ends the
 * nanosleep (no SA_RESTART) and is not slept through. */
static int sleep_ms(lua_State *L, int idx) {
  lua_Number ms;
  struct timespec req, rem;
  if (lua_type(L, idx) != LUA_TNUMBER)
    return luaL_error(L, "smm.core.sleep: milliseconds must be a non-negative number");
  ms = lua_tonumber(L, idx);
  if (!(ms >= 0 && ms <= 1e12)) /* also rejects NaN */
    return luaL_error(L, "smm.core.sleep: milliseconds must be a non-negative number");
  if (ms == 0 || smm_interrupted()) return 0;
  req.tv_sec = (time_t)(ms / 1000);
  req.tv_nsec = (long)((ms - (lua_Number)req.tv_sec * 1000) * 1e6);
  if (req.tv_nsec > 999999999L) req.tv_nsec = 999999999L;
  if (req.tv_nsec < 0) req.tv_nsec = 0;
  while (nanosleep(&req, &rem) != 0 && errno == EINTR && !smm_interrupted()) req = rem;
  return 0;
}

/* core.sleep(ms) */
static int core_sleep(lua_State *L) { return sleep_ms(L, 1); }

/* handle:sleep(ms) */
static int handle_sleep(lua_State *L) { return sleep_ms(L, 2); }

/* core.now() and handle:now(): a monotonic clock in milliseconds (a number with
 * sub-millisecond precision), for rate limiting and backoff; only differences between two
 * calls mean anything. */
static int now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec * 1000.0 + (lua_Number)ts.tv_nsec / 1e6);
  return 1;
}

SMM_EXPORT int luaopen_smm_core(lua_State *L);

int luaopen_smm_core(lua_State *L) {
  static const luaL_Reg funcs[] = {{"new", smm_client_new},
                                   {"sleep", core_sleep},
                                   {"now", now},
                                   {NULL, NULL}};
  static const luaL_Reg handle_methods[] = {{"sleep", handle_sleep}, {"now", now}, {NULL, NULL}};
  /* curl_global_init is not thread-safe before 7.84 but is reference counted: calling it on
   * every load is fine (the matching cleanup would only be needed to unload libcurl, which a
   * Lua C module cannot know is safe, so we never call it). Since 7.84 it is thread-safe. */
  CURLcode r = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (r != CURLE_OK) return luaL_error(L, "smm.core: curl_global_init failed: %s",
                                       curl_easy_strerror(r));
  smm_client_open(L, handle_methods);
  luaL_newlib(L, funcs);
  lua_pushliteral(L, SMM_VERSION);
  lua_setfield(L, -2, "_VERSION");
  smm_options_push_defaults(L);
  lua_setfield(L, -2, "DEFAULTS");
  smm_interrupt_register(L);
  return 1;
}
