/*
 * options.c: the options of core.new: the defaults of a handle made without them, and the
 * checks of every value (an unknown option or a bad value raises, naming it, before anything
 * is allocated). smm.new always passes every option, from lua/smm/options.lua's DEFAULTS; these
 * defaults serve direct users of smm.core, and smm.core.DEFAULTS shows them so that a spec
 * (spec/63-shape_library_spec.lua) holds the two equal.
 */
#include <string.h>

#include "options.h"

#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_MAX_BODY ((size_t)64 * 1024 * 1024)
#define DEFAULT_CONCURRENCY 4
#define DEFAULT_SSL_VERIFY 1
#define DEFAULT_USER_AGENT "lua-smm/" SMM_VERSION

static const char *const option_names[] = {"timeout", "connect_timeout", "proxy", "ssl_verify",
                                           "cainfo", "user_agent", "max_body", "concurrency",
                                           "headers", NULL};

static int opt_field(lua_State *L, int idx, const char *name) {
  lua_pushstring(L, name);
  lua_rawget(L, idx);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

static lua_Number opt_number(lua_State *L, const char *name, lua_Number max, const char *what) {
  lua_Number x;
  if (lua_type(L, -1) != LUA_TNUMBER) goto bad;
  x = lua_tonumber(L, -1);
  if (!(x >= 0 && x <= max)) goto bad;
  lua_pop(L, 1);
  return x;
bad:
  luaL_error(L, "smm.core.new: option '%s' must be %s", name, what);
  return 0;
}

static const char *opt_string(lua_State *L, const char *name, const char *what) {
  const char *s;
  size_t len;
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "smm.core.new: option '%s' must be %s", name, what);
  s = lua_tolstring(L, -1, &len);
  if (strlen(s) != len) luaL_error(L, "smm.core.new: option '%s' must not contain NUL bytes", name);
  lua_pop(L, 1); /* still anchored by the options table */
  return s;
}

/* One extra header line "Name: value": a name of token characters (RFC 9110), a colon, a value
 * that starts with a visible character (libcurl drops a line with nothing after the colon, and
 * would then remove its own header of that name), no CR, LF or NUL (another header line, or the
 * body, would start). The message never shows the line: it may hold a key. */
static void check_header(lua_State *L, int i) {
  size_t len, n = 0;
  const char *s;
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "smm.core.new: option 'headers' item %d must be a string \"Name: value\"", i);
  s = lua_tolstring(L, -1, &len);
  while (n < len && (s[n] > 32 && s[n] < 127 && strchr("\"(),/:;<=>?@[\\]{}", s[n]) == NULL)) n++;
  if (n == 0 || n >= len || s[n] != ':')
    luaL_error(L, "smm.core.new: option 'headers' item %d must be \"Name: value\" with a token name",
               i);
  if (strlen(s) != len || strpbrk(s, "\r\n") != NULL)
    luaL_error(L, "smm.core.new: option 'headers' item %d must not contain CR, LF or NUL", i);
  n++;
  while (n < len && s[n] == ' ') n++;
  if (n >= len || (unsigned char)s[n] <= 32 || s[n] == 127)
    luaL_error(L, "smm.core.new: option 'headers' item %d has an empty value", i);
}

static int has_prefix(const char *s, const char *p) {
  return strncmp(s, p, strlen(p)) == 0;
}

void smm_options_read(lua_State *L, int idx, smm_options *o) {
  o->timeout_ms = DEFAULT_TIMEOUT_MS;
  o->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
  o->proxy = o->cainfo = NULL;
  o->user_agent = DEFAULT_USER_AGENT;
  o->ssl_verify = DEFAULT_SSL_VERIFY;
  o->max_body = DEFAULT_MAX_BODY;
  o->concurrency = DEFAULT_CONCURRENCY;
  o->headers = 0;
  if (lua_isnoneornil(L, idx)) return;
  if (lua_type(L, idx) != LUA_TTABLE)
    luaL_error(L, "smm.core.new: options must be a table, got %s", luaL_typename(L, idx));

  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int i;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "smm.core.new: option names must be strings, got %s", luaL_typename(L, -2));
    for (i = 0; option_names[i]; i++)
      if (strcmp(lua_tostring(L, -2), option_names[i]) == 0) break;
    if (option_names[i] == NULL)
      luaL_error(L, "smm.core.new: unknown option '%s'", lua_tostring(L, -2));
    lua_pop(L, 1);
  }

  if (opt_field(L, idx, "timeout"))
    o->timeout_ms = (long)opt_number(L, "timeout", 2147483647.0,
                                     "a non-negative number of milliseconds");
  if (opt_field(L, idx, "connect_timeout"))
    o->connect_timeout_ms = (long)opt_number(L, "connect_timeout", 2147483647.0,
                                             "a non-negative number of milliseconds");
  if (opt_field(L, idx, "proxy")) {
    const char *what = "a string starting with http://, https://, socks5:// or socks5h://";
    o->proxy = opt_string(L, "proxy", what);
    if (!has_prefix(o->proxy, "http://") && !has_prefix(o->proxy, "https://") &&
        !has_prefix(o->proxy, "socks5://") && !has_prefix(o->proxy, "socks5h://"))
      luaL_error(L, "smm.core.new: option 'proxy' must be %s", what);
  }
  if (opt_field(L, idx, "ssl_verify")) {
    if (lua_type(L, -1) != LUA_TBOOLEAN)
      luaL_error(L, "smm.core.new: option 'ssl_verify' must be a boolean");
    o->ssl_verify = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (opt_field(L, idx, "cainfo")) o->cainfo = opt_string(L, "cainfo", "a file path string");
  if (opt_field(L, idx, "user_agent")) {
    o->user_agent = opt_string(L, "user_agent", "a string");
    if (strpbrk(o->user_agent, "\r\n") != NULL) /* it would start another header line */
      luaL_error(L, "smm.core.new: option 'user_agent' must not contain CR or LF");
  }
  if (opt_field(L, idx, "headers")) {
    int n, i;
    if (lua_type(L, -1) != LUA_TTABLE)
      luaL_error(L, "smm.core.new: option 'headers' must be a list of \"Name: value\" strings");
    n = (int)lua_rawlen(L, -1);
    if (n > SMM_MAX_HEADERS)
      luaL_error(L, "smm.core.new: option 'headers' lists more than %d lines", SMM_MAX_HEADERS);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      check_header(L, i);
      lua_pop(L, 1);
    }
    o->headers = n;
    lua_pop(L, 1);
  }
  if (opt_field(L, idx, "max_body")) {
    lua_Number x = opt_number(L, "max_body", 4503599627370496.0, "a positive number of bytes");
    if (x < 1 || (double)(size_t)x != (double)x)
      luaL_error(L, "smm.core.new: option 'max_body' must be a positive number of bytes");
    o->max_body = (size_t)x;
  }
  if (opt_field(L, idx, "concurrency")) {
    lua_Number x = opt_number(L, "concurrency", SMM_MAX_CONCURRENCY,
                              "an integer from 1 to 256");
    if (x < 1 || (lua_Number)(int)x != x)
      luaL_error(L, "smm.core.new: option 'concurrency' must be an integer from 1 to 256");
    o->concurrency = (int)x;
  }
}

void smm_options_push_defaults(lua_State *L) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)DEFAULT_TIMEOUT_MS);
  lua_setfield(L, -2, "timeout");
  lua_pushinteger(L, (lua_Integer)DEFAULT_CONNECT_TIMEOUT_MS);
  lua_setfield(L, -2, "connect_timeout");
  lua_pushboolean(L, DEFAULT_SSL_VERIFY);
  lua_setfield(L, -2, "ssl_verify");
  lua_pushinteger(L, (lua_Integer)DEFAULT_MAX_BODY);
  lua_setfield(L, -2, "max_body");
  lua_pushinteger(L, (lua_Integer)DEFAULT_CONCURRENCY);
  lua_setfield(L, -2, "concurrency");
  lua_pushliteral(L, DEFAULT_USER_AGENT);
  lua_setfield(L, -2, "user_agent");
}
