/*
 * options.h: the options of core.new (options.c): their defaults, their checks, and the
 * DEFAULTS table core.c puts on the module. Used by core.c and client.c.
 */
#ifndef SMM_OPTIONS_H
#define SMM_OPTIONS_H

#include <stddef.h>

#include "compat.h"

#define SMM_VERSION "0.1.0"
#define SMM_MAX_CONCURRENCY 256

/* core.new's options, read and checked; the strings are anchored by the options table. */
typedef struct smm_options {
  long timeout_ms, connect_timeout_ms;
  const char *proxy, *cainfo, *user_agent;
  int ssl_verify;
  size_t max_body;
  int concurrency;
  int headers; /* how many extra header lines the option 'headers' lists (checked) */
} smm_options;

/* At most this many extra header lines (option 'headers'). */
#define SMM_MAX_HEADERS 16

/* Reads the options table at idx (none or nil: every default) into o. Raises on an unknown
 * option or a bad value, naming it; nothing is allocated. */
void smm_options_read(lua_State *L, int idx, smm_options *o);

/* Pushes a new table of the defaults, by option name (timeout, connect_timeout, ssl_verify,
 * max_body, concurrency, user_agent): smm.core.DEFAULTS, which a spec holds equal to
 * lua/smm/options.lua's DEFAULTS. */
void smm_options_push_defaults(lua_State *L);

#endif
