/*
 * decode.c: a response body -> Lua values. Decoding goes through a private lua-cjson instance
 * (require("cjson.safe").new(), made at core.new and kept in the handle's user value), called
 * with lua_pcall. Then, on Lua 5.3+, every float with an exact integer value and |x| <= 2^53 is
 * replaced by a Lua integer, because cjson decodes all numbers as floats and ids such as
 * {"order": 23501} must come back as integers (23501, not 23501.0). The shapes most answers
 * have (a flat object; an array or an object of flat objects) are read directly instead, to
 * the same values (fast_decode below); cjson reads everything else and is what the fuzzers
 * hold that to.
 */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* cjson.safe refuses nesting deeper than 1000 by default; never walk deeper than that. */
#define SMM_DECODE_MAX_DEPTH 1000
#define SMM_2POW53 9007199254740992.0

#if LUA_VERSION_NUM >= 503
#define SMM_2POW63 9223372036854775808.0

static int integral_float(lua_State *L, int idx, lua_Integer *out) {
  lua_Number x;
  if (lua_type(L, idx) != LUA_TNUMBER || lua_isinteger(L, idx)) return 0;
  x = lua_tonumber(L, idx);
  if (!(x >= -SMM_2POW53 && x <= SMM_2POW53)) return 0; /* also rejects NaN */
  *out = (lua_Integer)x;
  return (lua_Number)*out == x;
}

/* Keys need no work: Lua 5.3+ already normalises a float key with an integral value to an
 * integer key when it is stored (and cjson only makes string keys and array indices). Changing
 * the value of an existing key during lua_next is allowed. */
static void integerize(lua_State *L, int idx, int depth) {
  if (depth > SMM_DECODE_MAX_DEPTH) return;
  luaL_checkstack(L, 4, "smm.core: decoded JSON too deep");
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_Integer i;
    if (integral_float(L, -1, &i)) {
      lua_pushvalue(L, -2);
      lua_pushinteger(L, i);
      lua_rawset(L, idx);
    } else if (lua_type(L, -1) == LUA_TTABLE) {
      integerize(L, lua_gettop(L), depth + 1);
    }
    lua_pop(L, 1);
  }
}
#define INTEGERIZE(L, idx, depth) integerize(L, idx, depth)
#else
#define INTEGERIZE(L, idx, depth) ((void)0)
#endif

/* ------------------------------------------------------------------------------------------ */
/* The schema: lua/smm/normalize.lua's integer(), money(), boolean() and text(), in C, applied
 * to the fields a request's schema names. Each must give exactly what the Lua function gives
 * (on the Lua version compiled against); fuzz/schema_fuzzer.c compares the two. */

enum { SMM_T_NONE, SMM_T_INTEGER, SMM_T_MONEY, SMM_T_BOOLEAN, SMM_T_TEXT };

static int type_code(const char *s, size_t n) {
  if (n == 7 && memcmp(s, "integer", 7) == 0) return SMM_T_INTEGER;
  if (n == 5 && memcmp(s, "money", 5) == 0) return SMM_T_MONEY;
  if (n == 7 && memcmp(s, "boolean", 7) == 0) return SMM_T_BOOLEAN;
  if (n == 4 && memcmp(s, "text", 4) == 0) return SMM_T_TEXT;
  return SMM_T_NONE;
}

/* Where a schema's records are, by its layout marker schema[1]: none, the elements of a
 * top-level array (the service list); "by_id", the values of a top-level object keyed by ids
 * (statuses of many orders); "record", the top-level object itself (a balance, one order). */
enum { SMM_LAYOUT_NONE, SMM_LAYOUT_LIST, SMM_LAYOUT_BY_ID, SMM_LAYOUT_RECORD };

static int layout_code(lua_State *L, int idx) {
  size_t n;
  const char *s;
  if (lua_type(L, idx) == LUA_TNIL) return SMM_LAYOUT_LIST;
  if (lua_type(L, idx) != LUA_TSTRING) return SMM_LAYOUT_NONE;
  s = lua_tolstring(L, idx, &n);
  if (n == 5 && memcmp(s, "by_id", 5) == 0) return SMM_LAYOUT_BY_ID;
  if (n == 6 && memcmp(s, "record", 6) == 0) return SMM_LAYOUT_RECORD;
  return SMM_LAYOUT_NONE;
}

int smm_schema_valid(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    size_t n;
    const char *s;
    int ok;
    if (lua_type(L, -2) == LUA_TNUMBER)
      ok = lua_tonumber(L, -2) == 1 && layout_code(L, -1) > SMM_LAYOUT_LIST;
    else if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      ok = 0;
    else {
      s = lua_tolstring(L, -1, &n);
      ok = type_code(s, n) != SMM_T_NONE;
    }
    if (!ok) {
      lua_pop(L, 2);
      return 0;
    }
    lua_pop(L, 1);
  }
  return 1;
}

/* Lua's %s and %d (C locale). */
static int l_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
static int l_digit(char c) { return c >= '0' && c <= '9'; }

static void trim(const char **p, size_t *n) {
  const char *s = *p;
  size_t len = *n;
  while (len > 0 && l_space(s[0])) s++, len--;
  while (len > 0 && l_space(s[len - 1])) len--;
  *p = s;
  *n = len;
}

/* JSON null (cjson's light userdata) and nil. */
static int is_null(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  return t == LUA_TNIL || t == LUA_TLIGHTUSERDATA || t == LUA_TUSERDATA;
}

/* math.tointeger (5.3+) or normalize.lua's fallback (5.1/LuaJIT: integral and within 2^53). */
static int whole_number(lua_Number x) {
#if LUA_VERSION_NUM >= 503
  /* the range first: the cast is defined only within it (and NaN fails it) */
  return x >= -SMM_2POW63 && x < SMM_2POW63 && (lua_Number)(long long)x == x;
#else
  return x > -SMM_2POW53 && x < SMM_2POW53 && (lua_Number)(long long)x == x;
#endif
}

/* normalize.lua plain_decimal: e-notation -> a plain decimal. Pushes it and returns 1, or
 * returns 0 (not such a decimal, or an exponent beyond +-400). */
#define SMM_MAX_EXPONENT 400

static int plain_decimal(lua_State *L, const char *s, size_t n) {
  size_t i = 0, int_at, int_len, frac_at, frac_len, digits, len, z, start, end;
  long exp = 0, point;
  int neg = 0, eneg = 0;
  char *out, *o;
  if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  int_at = i;
  while (i < n && l_digit(s[i])) i++;
  int_len = i - int_at;
  if (i < n && s[i] == '.') i++;
  frac_at = i;
  while (i < n && l_digit(s[i])) i++;
  frac_len = i - frac_at;
  if (i >= n || (s[i] != 'e' && s[i] != 'E')) return 0;
  i++;
  if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
  if (i >= n || !l_digit(s[i])) return 0;
  for (; i < n && l_digit(s[i]); i++)
    if (exp <= SMM_MAX_EXPONENT) exp = exp * 10 + (s[i] - '0');
  if (i != n) return 0;
  if (int_len == 0 && frac_len == 0) return 0;
  if (exp > SMM_MAX_EXPONENT) return 0;
  if (eneg) exp = -exp;
  digits = int_len + frac_len;
  point = (long)int_len + exp;
  /* '-' + "0." + zeros + digits, or digits + zeros, or digits with a point */
  len = 3 + digits + (size_t)(point < 0 ? -point : point);
  out = (char *)lua_newuserdata(L, len);
  o = out + 1; /* out[0]: room for the sign */
  if (point <= 0) {
    *o++ = '0';
    *o++ = '.';
    memset(o, '0', (size_t)-point), o += -point;
    memcpy(o, s + int_at, int_len), o += int_len;
    memcpy(o, s + frac_at, frac_len), o += frac_len;
  } else if ((size_t)point >= digits) {
    memcpy(o, s + int_at, int_len), o += int_len;
    memcpy(o, s + frac_at, frac_len), o += frac_len;
    memset(o, '0', (size_t)point - digits), o += (size_t)point - digits;
  } else {
    size_t k;
    for (k = 0; k < (size_t)point; k++) *o++ = k < int_len ? s[int_at + k] : s[frac_at + k - int_len];
    *o++ = '.';
    for (; k < digits; k++) *o++ = k < int_len ? s[int_at + k] : s[frac_at + k - int_len];
  }
  start = 1;
  end = (size_t)(o - out);
  /* gsub("^0+(%d)", "%1"): the leading zeros go, but one stays when no digit follows them */
  for (z = 0; start + z < end && out[start + z] == '0'; z++) {
  }
  if (z > 0) start += (start + z < end && l_digit(out[start + z])) ? z : z - 1;
  if (memchr(out + start, '.', end - start) != NULL) {
    while (end > start && out[end - 1] == '0') end--;
    if (end > start && out[end - 1] == '.') end--;
  }
  if (neg) out[--start] = '-';
  lua_pushlstring(L, out + start, end - start);
  lua_remove(L, -2); /* the scratch userdata */
  return 1;
}

/* normalize.lua number_to_decimal: the shortest decimal that reads back as the same double. */
static void push_decimal(lua_State *L, int idx) {
  char buf[64];
  lua_Number x;
  int p;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) {
    snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    lua_pushstring(L, buf);
    return;
  }
#endif
  x = lua_tonumber(L, idx);
  if (whole_number(x)) {
    snprintf(buf, sizeof buf, "%lld", (long long)x);
    lua_pushstring(L, buf);
    return;
  }
  if (x != x || x == HUGE_VAL || x == -HUGE_VAL) { /* tostring(x) */
    lua_pushvalue(L, idx);
    lua_tolstring(L, -1, NULL);
    return;
  }
  for (p = 15; p <= 17; p++) {
    snprintf(buf, sizeof buf, "%.*g", p, (double)x);
    if (strtod(buf, NULL) == x) break;
  }
  if (!plain_decimal(L, buf, strlen(buf))) lua_pushstring(L, buf);
}

/* Each norm_* looks at the value at idx and returns 0 (keep it) or 1 (it pushed the new value,
 * nil meaning remove the field). */

static int norm_integer(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING) {
    size_t n, i = 0, first, end, k;
    const char *s = lua_tolstring(L, idx, &n);
    int neg = 0;
    unsigned long long v = 0;
    trim(&s, &n);
    if (n == 0) {
      lua_pushnil(L);
      return 1;
    }
    /* "^([+-]?%d+)$" or "^([+-]?%d+)%.0*$", then within +-2^53 (exclusive) */
    if (s[0] == '+' || s[0] == '-') neg = s[i++] == '-';
    first = i;
    while (i < n && l_digit(s[i])) i++;
    if (i == first) return 0;
    end = i;
    if (i < n) {
      if (s[i] != '.') return 0;
      for (i++; i < n; i++)
        if (s[i] != '0') return 0;
    }
    for (k = first; k < end && s[k] == '0'; k++) {
    }
    if (end - k > 16) return 0; /* at least 10^16 > 2^53 */
    for (; k < end; k++) v = v * 10 + (unsigned long long)(s[k] - '0');
    if (v >= 9007199254740992ULL) return 0;
#if LUA_VERSION_NUM >= 503
    lua_pushinteger(L, neg ? -(lua_Integer)v : (lua_Integer)v);
#else
    lua_pushnumber(L, neg ? -(lua_Number)v : (lua_Number)v);
#endif
    return 1;
  }
  if (t == LUA_TNUMBER) {
#if LUA_VERSION_NUM >= 503
    lua_Number x;
    if (lua_isinteger(L, idx)) return 0;
    x = lua_tonumber(L, idx);
    if (!whole_number(x)) return 0; /* NaN, infinities, fractions, beyond 64 bits */
    lua_pushinteger(L, (lua_Integer)x);
    return 1;
#else
    return 0; /* tointeger(v) or v: v either way */
#endif
  }
  if (is_null(L, idx)) {
    lua_pushnil(L);
    return 1;
  }
  return 0;
}

/* sign? then digits with at most one point, at least one digit */
static int is_plain(const char *s, size_t n) {
  size_t i = 0;
  int digit = 0, point = 0;
  if (n > 0 && (s[0] == '+' || s[0] == '-')) i++;
  for (; i < n; i++) {
    if (l_digit(s[i]))
      digit = 1;
    else if (s[i] == '.' && !point)
      point = 1;
    else
      return 0;
  }
  return digit;
}

static int norm_money(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING) {
    size_t n, n0;
    const char *s0 = lua_tolstring(L, idx, &n0), *s = s0;
    n = n0;
    trim(&s, &n);
    if (n == 0) {
      lua_pushnil(L);
      return 1;
    }
    if (is_plain(s, n)) {
      if (n == n0) return 0;
      lua_pushlstring(L, s, n);
      return 1;
    }
    return plain_decimal(L, s, n);
  }
  if (t == LUA_TNUMBER) {
    push_decimal(L, idx);
    return 1;
  }
  if (is_null(L, idx)) {
    lua_pushnil(L);
    return 1;
  }
  return 0;
}

static int word_is(const char *s, size_t n, const char *w) {
  size_t i;
  if (strlen(w) != n) return 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != w[i]) return 0;
  }
  return 1;
}

static int norm_boolean(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TBOOLEAN) return 0;
  if (t == LUA_TNUMBER) {
    lua_pushboolean(L, lua_tonumber(L, idx) != 0);
    return 1;
  }
  if (t == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    trim(&s, &n);
    if (word_is(s, n, "1") || word_is(s, n, "true") || word_is(s, n, "yes") || word_is(s, n, "on")) {
      lua_pushboolean(L, 1);
      return 1;
    }
    if (n == 0 || word_is(s, n, "0") || word_is(s, n, "false") || word_is(s, n, "no") ||
        word_is(s, n, "off")) {
      lua_pushboolean(L, 0);
      return 1;
    }
    return 0;
  }
  if (is_null(L, idx)) {
    lua_pushnil(L);
    return 1;
  }
  return 0;
}

static int norm_text(lua_State *L, int idx) {
  if (is_null(L, idx)) {
    lua_pushnil(L);
    return 1;
  }
  if (lua_type(L, idx) == LUA_TNUMBER) {
    push_decimal(L, idx);
    return 1;
  }
  return 0;
}

/* The type codes of the keys seen in this walk, by the address of the key's text: short
 * strings are interned, so every record's "rate" is the same string. Every key met in the walk
 * was made by the decode, before the walk started, and each is alive at least until the walk
 * reaches it, so two different keys met in the walk never share an address (a long, not
 * interned key only misses the cache; past SMM_KEY_CACHE keys, the schema is asked). */
#define SMM_KEY_CACHE 32
typedef struct key_cache {
  const char *key[SMM_KEY_CACHE];
  int code[SMM_KEY_CACHE];
  int len;
} key_cache;

/* The type code the schema at schema_idx gives the key at stack index key (< 0). */
static int schema_code(lua_State *L, int schema_idx, int key) {
  int code = SMM_T_NONE;
  lua_pushvalue(L, key);
  lua_rawget(L, schema_idx);
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    code = type_code(s, n);
  }
  lua_pop(L, 1);
  return code;
}

/* The type code of the key at -2 (under its value), through the cache. */
static int key_code(lua_State *L, int schema_idx, key_cache *kc) {
  const char *k = lua_tostring(L, -2);
  int i, code;
  for (i = 0; i < kc->len; i++)
    if (kc->key[i] == k) return kc->code[i];
  code = schema_code(L, schema_idx, -2);
  if (kc->len < SMM_KEY_CACHE) {
    kc->key[kc->len] = k;
    kc->code[kc->len++] = code;
  }
  return code;
}

/* The value at the top normalised as type `code` says: 0 (keep it) or 1 (it pushed the new
 * value, nil meaning remove the field). The usual shapes (text as a string, a flag as a
 * boolean) need no call. */
static int normalize_value(lua_State *L, int code) {
  int vt = lua_type(L, -1);
  switch (code) {
    case SMM_T_INTEGER: return norm_integer(L, -1);
    case SMM_T_MONEY: return norm_money(L, -1);
    case SMM_T_BOOLEAN: return vt != LUA_TBOOLEAN && norm_boolean(L, -1);
    case SMM_T_TEXT: return vt != LUA_TSTRING && norm_text(L, -1);
    default: return 0;
  }
}

/* One record (an element of the top-level array): the schema's fields normalised, everything
 * else integerized as usual. */
static void walk_record(lua_State *L, int idx, int schema_idx, key_cache *kc) {
  luaL_checkstack(L, 8, "smm.core: decoded JSON too deep");
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int code = SMM_T_NONE, changed = 0, vt = lua_type(L, -1);
    if (vt == LUA_TTABLE) {
      INTEGERIZE(L, lua_gettop(L), 3);
      lua_pop(L, 1);
      continue;
    }
    if (lua_type(L, -2) == LUA_TSTRING) code = key_code(L, schema_idx, kc);
    if (code != SMM_T_NONE) {
      changed = normalize_value(L, code);
    } else {
#if LUA_VERSION_NUM >= 503
      lua_Integer i;
      if (vt == LUA_TNUMBER && integral_float(L, -1, &i)) {
        lua_pushinteger(L, i);
        changed = 1;
      }
#endif
    }
    if (changed) { /* key, value, new */
      lua_pushvalue(L, -3);
      lua_pushvalue(L, -2);
      lua_rawset(L, idx); /* an existing key: allowed during lua_next, nil included */
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
}

/* The root with a schema: the elements of a top-level array are records. */
static void walk_root(lua_State *L, int idx, int schema_idx) {
  key_cache kc;
  kc.len = 0;
  luaL_checkstack(L, 4, "smm.core: decoded JSON too deep");
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      if (lua_type(L, -2) == LUA_TNUMBER)
        walk_record(L, lua_gettop(L), schema_idx, &kc);
      else
        INTEGERIZE(L, lua_gettop(L), 2);
    } else {
#if LUA_VERSION_NUM >= 503
      lua_Integer i;
      if (integral_float(L, -1, &i)) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, i);
        lua_rawset(L, idx);
      }
#endif
    }
    lua_pop(L, 1);
  }
}

/* The root of a "by_id" schema: an object keyed by ids ({"23501": {...}, "23502": {...}}, the
 * multi-id status answer). Every table value is a record, and the root is replaced by a table
 * where a record's key is an integer wherever normalize.lua's integer() reads one ("157",
 * " 157 ", "157.0") and records keyed by nothing ("") are dropped: what normalize.orders does
 * in Lua. Other values keep their keys, so only records ever land on an integer key. */
static void walk_by_id(lua_State *L, int idx, int schema_idx) {
  key_cache kc;
  int out;
  kc.len = 0;
  luaL_checkstack(L, 8, "smm.core: decoded JSON too deep");
  lua_newtable(L);
  out = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) { /* key, value */
    if (lua_type(L, -1) == LUA_TTABLE) {
      walk_record(L, lua_gettop(L), schema_idx, &kc);
    } else {
#if LUA_VERSION_NUM >= 503
      lua_Integer i;
      if (integral_float(L, -1, &i)) {
        lua_pop(L, 1);
        lua_pushinteger(L, i);
      }
#endif
    }
    lua_pushvalue(L, -2); /* key, value, key */
    if (lua_type(L, -2) == LUA_TTABLE && lua_type(L, -1) == LUA_TSTRING && norm_integer(L, -1))
      lua_remove(L, -2);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 2);
      continue;
    }
    lua_insert(L, -2); /* key, new key, value */
    lua_rawset(L, out);
  }
  lua_replace(L, idx);
}

static int looks_like_json(const char *p, size_t n) {
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
  return i < n && (p[i] == '{' || p[i] == '[');
}

void smm_push_decoder(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushstring(L, "cjson.safe");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  if (lua_type(L, -1) != LUA_TFUNCTION) luaL_error(L, "smm.core: cjson.safe.new not found");
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "decode");
  if (lua_type(L, -1) != LUA_TFUNCTION) luaL_error(L, "smm.core: cjson decode not found");
  lua_replace(L, -3); /* over the module */
  lua_pop(L, 1);      /* the instance */
}

/* The shapes most answers have, read here directly instead of by cjson: a flat object
 * ({"balance":"100.84292","currency":"USD"}, {"order":23501}, {"error":"..."}), an array of
 * flat objects and scalars (the service list, refill and cancel answers) and, for a "by_id"
 * schema, an object of them (the statuses of many orders). For a small answer
 * this skips cjson's call (a pcall, a scratch buffer, a table walk after); for a service list it
 * skips cjson's tables growing key by key, and the walk after, since the schema is applied and
 * numbers made integers as each field is read. What is read is exactly what cjson + integerize
 * would give: strings with any bytes >= 0x20 and the JSON escapes (\uXXXX and surrogate pairs
 * made UTF-8 as cjson does), numbers in strict JSON form (integers of up to 15 digits as such,
 * others through strtod as cjson reads them, then integral values within +-2^53 as integers),
 * true, false and null (cjson's null, a NULL light userdata). Anything else (nesting inside a
 * record, -0, a long integer, a lone surrogate, a syntax error, a locale whose decimal point
 * is not '.') returns 0 with the stack as it was, and cjson decides. decode_fuzzer compares
 * the outcome with a plain cjson decode, schema_fuzzer the schema with the Lua readers. */

static const char *skip_ws(const char *s, const char *end) {
  while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
  return s;
}

static int hex4(const char *s, const char *end) {
  int i, v = 0;
  if (end - s < 4) return -1;
  for (i = 0; i < 4; i++) {
    char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

/* The escaped string from s (after its opening quote) into b; returns the position of its
 * closing quote, or NULL. */
static const char *unescape(luaL_Buffer *b, const char *s, const char *end) {
  while (s < end) {
    unsigned char c = (unsigned char)*s;
    if (c == '"') return s;
    if (c < 0x20) return NULL;
    if (c != '\\') {
      luaL_addchar(b, (char)c);
      s++;
      continue;
    }
    if (end - s < 2) return NULL;
    switch (s[1]) {
      case '"': luaL_addchar(b, '"'); break;
      case '\\': luaL_addchar(b, '\\'); break;
      case '/': luaL_addchar(b, '/'); break;
      case 'b': luaL_addchar(b, '\b'); break;
      case 'f': luaL_addchar(b, '\f'); break;
      case 'n': luaL_addchar(b, '\n'); break;
      case 'r': luaL_addchar(b, '\r'); break;
      case 't': luaL_addchar(b, '\t'); break;
      case 'u': {
        long cp = hex4(s + 2, end);
        char utf8[4];
        int len;
        if (cp < 0) return NULL;
        if ((cp & 0xF800) == 0xD800) { /* a surrogate: a high one, then "\u" and a low one */
          long low;
          if ((cp & 0x400) || end - s < 12 || s[6] != '\\' || s[7] != 'u') return NULL;
          low = hex4(s + 8, end);
          if (low < 0 || (low & 0xFC00) != 0xDC00) return NULL;
          cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
          s += 6;
        }
        if (cp < 0x80) {
          utf8[0] = (char)cp, len = 1;
        } else if (cp < 0x800) {
          utf8[0] = (char)(0xC0 | (cp >> 6)), utf8[1] = (char)(0x80 | (cp & 0x3F)), len = 2;
        } else if (cp < 0x10000) {
          utf8[0] = (char)(0xE0 | (cp >> 12)), utf8[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
          utf8[2] = (char)(0x80 | (cp & 0x3F)), len = 3;
        } else {
          utf8[0] = (char)(0xF0 | (cp >> 18)), utf8[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
          utf8[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), utf8[3] = (char)(0x80 | (cp & 0x3F));
          len = 4;
        }
        luaL_addlstring(b, utf8, (size_t)len);
        s += 4;
        break;
      }
      default:
        return NULL;
    }
    s += 2;
  }
  return NULL;
}

/* The string at s (after its opening quote), pushed; returns the position after its closing
 * quote, or NULL (nothing pushed). */
static const char *read_string(lua_State *L, const char *s, const char *end) {
  const char *q;
  luaL_Buffer b;
  for (q = s; q < end; q++) {
    unsigned char c = (unsigned char)*q;
    if (c == '"') {
      lua_pushlstring(L, s, (size_t)(q - s));
      return q + 1;
    }
    if (c == '\\' || c < 0x20) break;
  }
  if (q == end || *q != '\\') return NULL;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, s, (size_t)(q - s));
  q = unescape(&b, q, end);
  if (q == NULL) { /* the buffer may hold a box on the stack: the caller resets the stack */
    return NULL;
  }
  luaL_pushresult(&b);
  return q + 1;
}

/* The number at s, pushed as cjson + integerize would leave it; the position after it, or
 * NULL (nothing pushed). */
static const char *read_number(lua_State *L, const char *s, const char *end) {
  const char *d = s + (*s == '-'), *q, *point;
  char buf[64];
  double x;
  int digits = 0, plain;
  lua_Integer v = 0;
  if (d == end || *d < '0' || *d > '9') return NULL;
  if (*d == '0' && d + 1 < end && d[1] >= '0' && d[1] <= '9') return NULL; /* cjson refuses */
  for (q = d; q < end && *q >= '0' && *q <= '9'; q++) {
    if (++digits <= 15) v = v * 10 + (*q - '0');
  }
  plain = q == end || (*q != '.' && *q != 'e' && *q != 'E');
  if (plain && digits <= 15) {
    if (*s == '-') {
      if (v == 0) return NULL; /* -0: cjson's -0.0 */
      v = -v;
    }
#if LUA_VERSION_NUM >= 503
    lua_pushinteger(L, v);
#else
    lua_pushnumber(L, (lua_Number)v);
#endif
    return q;
  }
  if (!plain) {
    if (*q == '.') {
      const char *f = ++q;
      while (q < end && *q >= '0' && *q <= '9') q++;
      if (q == f) return NULL;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
      const char *f;
      q++;
      if (q < end && (*q == '+' || *q == '-')) q++;
      f = q;
      while (q < end && *q >= '0' && *q <= '9') q++;
      if (q == f) return NULL;
    }
  }
  point = localeconv()->decimal_point; /* strtod's, and cjson's reading of '.' */
  if ((size_t)(q - s) >= sizeof buf || point[0] != '.' || point[1] != '\0') return NULL;
  memcpy(buf, s, (size_t)(q - s));
  buf[q - s] = '\0';
  x = strtod(buf, NULL);
#if LUA_VERSION_NUM >= 503
  if (x >= -SMM_2POW53 && x <= SMM_2POW53 && x == (double)(long long)x) {
    if (x == 0 && *s == '-') return NULL; /* -0.0 */
    lua_pushinteger(L, (lua_Integer)x);
    return q;
  }
#endif
  lua_pushnumber(L, (lua_Number)x);
  return q;
}

/* A scalar at s, pushed; the position after it, or NULL (nothing pushed, or a string buffer
 * box the caller's reset removes). */
static const char *read_scalar(lua_State *L, const char *s, const char *end) {
  if (*s == '"') return read_string(L, s + 1, end);
  if (*s == '-' || (*s >= '0' && *s <= '9')) return read_number(L, s, end);
  if ((size_t)(end - s) >= 4 && memcmp(s, "true", 4) == 0) {
    lua_pushboolean(L, 1);
    return s + 4;
  }
  if ((size_t)(end - s) >= 5 && memcmp(s, "false", 5) == 0) {
    lua_pushboolean(L, 0);
    return s + 5;
  }
  if ((size_t)(end - s) >= 4 && memcmp(s, "null", 4) == 0) {
    lua_pushlightuserdata(L, NULL); /* cjson.null */
    return s + 4;
  }
  return NULL;
}

/* After a member of an object or array: 1 with *sp past a ',' (more to come), 0 with *sp past
 * the closing `close`, or -1. */
static int next_member(const char **sp, const char *end, char close) {
  const char *s = skip_ws(*sp, end);
  if (s < end && *s == ',') {
    *sp = skip_ws(s + 1, end);
    return 1;
  }
  if (s < end && *s == close) {
    *sp = s + 1;
    return 0;
  }
  return -1;
}

/* The type codes of a schema by key text, for one read: the key as it is in the body. */
typedef struct text_cache {
  const char *key[SMM_KEY_CACHE];
  size_t len[SMM_KEY_CACHE];
  int code[SMM_KEY_CACHE];
  int n;
} text_cache;

/* The flat object at s ('{'), pushed, its fields normalised by the schema at schema_idx (0:
 * none); *hint: the number of fields to make room for, updated to this object's. The position
 * after it, or NULL (the caller resets the stack). */
static const char *read_object(lua_State *L, const char *s, const char *end, int schema_idx,
                               text_cache *tc, int *hint) {
  int fields = 0, more;
  lua_createtable(L, 0, *hint);
  s = skip_ws(s + 1, end);
  if (s < end && *s == '}') {
    *hint = 0;
    return s + 1;
  }
  for (;;) {
    const char *k = s + 1, *kend;
    int code = SMM_T_NONE;
    if (s == end || *s != '"') return NULL;
    if ((s = read_string(L, k, end)) == NULL) return NULL;
    kend = s - 1;
    s = skip_ws(s, end);
    if (s == end || *s != ':') return NULL;
    s = skip_ws(s + 1, end);
    if (s == end || (s = read_scalar(L, s, end)) == NULL) return NULL;
    if (schema_idx != 0) {
      size_t klen = (size_t)(kend - k);
      int i;
      for (i = 0; i < tc->n; i++)
        if (tc->len[i] == klen && memcmp(tc->key[i], k, klen) == 0) break;
      if (i < tc->n) {
        code = tc->code[i];
      } else {
        code = schema_code(L, schema_idx, -2);
        if (tc->n < SMM_KEY_CACHE && memchr(k, '\\', klen) == NULL) {
          tc->key[tc->n] = k, tc->len[tc->n] = klen, tc->code[tc->n++] = code;
        }
      }
      if (code != SMM_T_NONE && normalize_value(L, code)) lua_replace(L, -2);
    }
    lua_rawset(L, -3); /* a nil value (normalised away) sets nothing */
    fields++;
    more = next_member(&s, end, '}');
    if (more < 0) return NULL;
    if (!more) break;
  }
  *hint = fields;
  return s;
}

/* The root of a "by_id" answer at s ('{'): an object whose object values are records, keyed
 * as walk_by_id keys them (by integer id where integer() reads one, dropped when keyed "").
 * NULL (the caller resets the stack) also when a key comes twice, or two keys would land on
 * one slot: which one wins is then cjson's (last in the text, then iteration order), so cjson
 * decides. */
static const char *read_by_id(lua_State *L, const char *s, const char *end, int schema_idx,
                              text_cache *tc) {
  int hint = 0, seen = lua_gettop(L) + 1, root = seen + 1, more;
  lua_newtable(L); /* the keys as written, seen so far */
  lua_newtable(L);
  s = skip_ws(s + 1, end);
  if (s < end && *s == '}') {
    lua_remove(L, seen);
    return s + 1;
  }
  for (;;) {
    if (s == end || *s != '"') return NULL;
    if ((s = read_string(L, s + 1, end)) == NULL) return NULL; /* the key */
    lua_pushvalue(L, -1);
    lua_rawget(L, seen);
    if (!lua_isnil(L, -1)) return NULL;
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushboolean(L, 1);
    lua_rawset(L, seen);
    s = skip_ws(s, end);
    if (s == end || *s != ':') return NULL;
    s = skip_ws(s + 1, end);
    if (s == end) return NULL;
    if (*s == '{') {
      if ((s = read_object(L, s, end, schema_idx, tc, &hint)) == NULL) return NULL;
      lua_pushvalue(L, -2); /* key, record, key */
      if (norm_integer(L, -1)) lua_remove(L, -2);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 3);
        goto next;
      }
      lua_replace(L, -3); /* id, record */
    } else if ((s = read_scalar(L, s, end)) == NULL) {
      return NULL;
    }
    lua_pushvalue(L, -2);
    lua_rawget(L, root);
    if (!lua_isnil(L, -1)) return NULL;
    lua_pop(L, 1);
    lua_rawset(L, root);
  next:
    more = next_member(&s, end, '}');
    if (more < 0) return NULL;
    if (!more) break;
  }
  lua_remove(L, seen);
  return s;
}

/* schema_idx (0: none) and its layout: the records are a flat object root ("record"), the
 * objects of an array root (a list) or the object values of an object root ("by_id"). Returns
 * 1 with the value pushed, or 0 with the stack as it was. */
static int fast_decode(lua_State *L, const char *p, size_t n, int schema_idx, int layout) {
  const char *s = p, *end = p + n;
  int top = lua_gettop(L), hint = 0;
  text_cache tc;
  tc.n = 0;
  /* at most ~12 slots: a by_id root, a record, a field being unescaped, the schema lookup */
  luaL_checkstack(L, 16, "smm.core: decoding");
  s = skip_ws(s, end);
  if (s == end) return 0;
  if (*s == '{' && layout == SMM_LAYOUT_BY_ID) {
    s = read_by_id(L, s, end, schema_idx, &tc);
  } else if (*s == '{') {
    for (; s < end && hint < 64; s++) hint += *s == ':';
    s = skip_ws(p, end);
    s = read_object(L, s, end, layout == SMM_LAYOUT_RECORD ? schema_idx : 0, &tc, &hint);
  } else if (*s == '[' && layout != SMM_LAYOUT_BY_ID) {
    lua_Integer i = 0;
    int more;
    int records = layout == SMM_LAYOUT_LIST ? schema_idx : 0;
    lua_newtable(L);
    s = skip_ws(s + 1, end);
    if (s < end && *s == ']') {
      s++;
    } else {
      for (;;) {
        if (s == end) goto slow;
        s = *s == '{' ? read_object(L, s, end, records, &tc, &hint) : read_scalar(L, s, end);
        if (s == NULL) goto slow;
        lua_rawseti(L, -2, ++i);
        more = next_member(&s, end, ']');
        if (more < 0) goto slow;
        if (!more) break;
      }
    }
  } else {
    return 0;
  }
  if (s == NULL || skip_ws(s, end) != end) goto slow;
  return 1;
slow:
  lua_settop(L, top);
  return 0;
}

/* The records of the decoded value at the top normalised by the schema at schema_idx, in place
 * (walk_by_id replaces the value). */
static void apply_schema(lua_State *L, int schema_idx, int layout) {
  int idx = lua_gettop(L);
  key_cache kc;
  switch (layout) {
    case SMM_LAYOUT_BY_ID:
      walk_by_id(L, idx, schema_idx);
      break;
    case SMM_LAYOUT_RECORD:
      kc.len = 0;
      walk_record(L, idx, schema_idx, &kc);
      break;
    default:
      walk_root(L, idx, schema_idx);
      break;
  }
}

/* A UTF-8 byte order mark: some panels (files saved by Windows editors, PHP includes) write one
 * before the JSON. It is no part of the JSON (cjson refuses it): decoding starts after it. */
#define SMM_BOM "\xEF\xBB\xBF"

int smm_decode_body(lua_State *L, int decode_idx, int schema_idx, const char *p, size_t n) {
  int result = lua_gettop(L), layout = SMM_LAYOUT_NONE, walked = 0;
  const char *text;
  size_t len;
  if (p == NULL) p = "";
  text = p, len = n; /* the JSON; the body stays whole for a not_json result */
  if (len >= 3 && memcmp(text, SMM_BOM, 3) == 0) text += 3, len -= 3;
  if (schema_idx != 0) {
    const char *first = skip_ws(text, text + len);
    lua_rawgeti(L, schema_idx, 1);
    layout = layout_code(L, -1);
    lua_pop(L, 1);
    /* A "by_id" answer given as an array has no ids, only positions: it is decoded without the
     * schema, and normalize.orders reads it only where each element names its own id. */
    if (layout == SMM_LAYOUT_BY_ID && first < text + len && *first == '[') {
      schema_idx = 0;
      layout = SMM_LAYOUT_NONE;
    }
  }
  if (fast_decode(L, text, len, schema_idx, layout)) {
    /* Its numbers are integers already, and its records were normalised (and keyed by id) as
     * they were read (a flat object root holds no records of a list). */
    walked = 1;
  } else if (!looks_like_json(text, len)) {
    goto not_json;
  } else {
    lua_pushvalue(L, decode_idx);
    lua_pushlstring(L, text, len);
    if (lua_pcall(L, 1, 2, 0) != 0) {
      /* cjson.safe does not raise on bad JSON; this is e.g. a memory error. */
      lua_pushstring(L, lua_isstring(L, -1) ? lua_tostring(L, -1) : "decode failed");
      lua_setfield(L, result, "decode_error");
      lua_pop(L, 1);
      goto not_json;
    }
    if (lua_isnil(L, -2)) {
      lua_pushstring(L, lua_isstring(L, -1) ? lua_tostring(L, -1) : "invalid JSON");
      lua_setfield(L, result, "decode_error");
      lua_pop(L, 2);
      goto not_json;
    }
    lua_pop(L, 1); /* the nil error */
    if (schema_idx == 0 && lua_type(L, -1) == LUA_TTABLE) INTEGERIZE(L, lua_gettop(L), 1);
  }
  if (schema_idx != 0 && lua_type(L, -1) == LUA_TTABLE) {
    if (!walked) apply_schema(L, schema_idx, layout);
    lua_pushboolean(L, 1);
    lua_setfield(L, result, "normalized");
  }
  lua_setfield(L, result, "json");
  return 1;
not_json:
  lua_pushlstring(L, p, n);
  lua_setfield(L, result, "body");
  return 0;
}
