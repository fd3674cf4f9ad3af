/*
 * interrupt.c: Ctrl-C (SIGINT) and SIGTERM for programs that want a request or a sleep to end
 * promptly when they arrive. The library never installs a signal handler by itself (it runs
 * inside nginx and inside other people's programs, whose signals are theirs); a program asks:
 *
 *   core.catch_interrupts{ abort_at = 1 | 2 }   installs handlers for SIGINT and SIGTERM
 *                                                (sigaction, no SA_RESTART) that only count
 *   core.interrupts() -> n                       how many arrived so far (0 before any)
 *
 * From the first signal on (count >= 1):
 *   - sleep (core.sleep, handle:sleep) returns at once, and a sleep in progress ends;
 *   - nothing new is sent: request/request_many raise "smm.core: interrupted" before sending,
 *     and request_many items not yet started come back as failures (sent = false);
 * from the abort_at-th signal on, transfers in flight are aborted within a fraction of a
 * second: each is a failure result { failure = "interrupted", message = "interrupted ...",
 * sent = <what libcurl knows> } - an add in flight is then ambiguous, never sent again.
 * abort_at = 2 lets a program finish and record the request in flight on the first Ctrl-C and
 * stop at once on the second. Signals past abort_at + 1 get the default action back, so a
 * program stuck elsewhere can still be stopped. Calling catch_interrupts again only changes
 * abort_at. The state is per process (signals are), not per handle.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>

#include "interrupt.h"

static volatile sig_atomic_t interrupt_count = 0;
static volatile sig_atomic_t interrupt_abort_at = 0; /* 0: not catching */

static void on_signal(int sig) {
  if (interrupt_count < 1000) interrupt_count = interrupt_count + 1;
  if (interrupt_count > interrupt_abort_at + 1) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
    raise(sig);
  }
}

int smm_interrupted(void) { return (int)interrupt_count; }

int smm_catching_interrupts(void) { return interrupt_abort_at > 0; }

int smm_interrupt_aborts(void) {
  return interrupt_abort_at > 0 && interrupt_count >= interrupt_abort_at;
}

/* core.catch_interrupts{ abort_at = 1 | 2 } */
static int catch_interrupts(lua_State *L) {
  lua_Integer abort_at = 1;
  struct sigaction sa;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "abort_at");
    if (!lua_isnil(L, -1)) {
      lua_Number x = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
      if (x != 1 && x != 2)
        return luaL_error(L, "smm.core.catch_interrupts: abort_at must be 1 or 2");
      abort_at = (lua_Integer)x;
    }
    lua_pop(L, 1);
  }
  interrupt_abort_at = (sig_atomic_t)abort_at;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a sleep or poll in progress returns EINTR */
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
    return luaL_error(L, "smm.core.catch_interrupts: sigaction failed");
  return 0;
}

/* core.interrupts() */
static int interrupts(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)interrupt_count);
  return 1;
}

void smm_interrupt_register(lua_State *L) {
  lua_pushcfunction(L, catch_interrupts);
  lua_setfield(L, -2, "catch_interrupts");
  lua_pushcfunction(L, interrupts);
  lua_setfield(L, -2, "interrupts");
}
