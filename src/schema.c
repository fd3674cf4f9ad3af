/*
 * schema.c: integer and money fidelity, the C twin of lua/smm/normalize.lua. The rules are
 * normalize.lua's: integer(), money(), boolean() and text() here must give exactly what the
 * Lua functions give (on the Lua version compiled against), and the walks must put records
 * where normalize.orders and normalize.services put them; change one, change the other.
 * fuzz/schema_fuzzer.c compares the two on arbitrary answers.
 *
 * Owned here: what a schema may be (smm_schema_valid), the normalisers, the walks that apply
 * a schema to an answer cjson decoded (smm_schema_apply), and the integerize pass that turns
 * cjson's integral floats back into integers on Lua 5.3+ (ids such as {"order": 23501} must
 * come back as 23501, not 23501.0). reader.c uses the same normalisers while it reads.
 *
 * Trade-off: the walks go over cjson's tables after the decode, with a small cache of type
 * codes by key address (interned short strings), instead of hooking into cjson; reader.c
 * avoids the walk for the shapes most answers have.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

#define SMM_DECODE_MAX_DEPTH 1000

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
void smm_integerize(lua_State *L, int idx, int depth) {
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
      smm_integerize(L, lua_gettop(L), depth + 1);
    }
    lua_pop(L, 1);
  }
}
#endif
/* ------------------------------------------------------------------------------------------ */
/* The schema: lua/smm/normalize.lua's integer(), money(), boolean() and text(), in C, applied
 * to the fields a request's schema names. Each must give exactly what the Lua function gives
 * (on the Lua version compiled against); fuzz/schema_fuzzer.c compares the two. */

static int type_code(const char *s, size_t n) {
  if (n == 7 && memcmp(s, "integer", 7) == 0) return SMM_T_INTEGER;
  if (n == 5 && memcmp(s, "money", 5) == 0) return SMM_T_MONEY;
  if (n == 7 && memcmp(s, "boolean", 7) == 0) return SMM_T_BOOLEAN;
  if (n == 4 && memcmp(s, "text", 4) == 0) return SMM_T_TEXT;
  return SMM_T_NONE;
}

int smm_schema_layout(lua_State *L, int idx) {
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
      ok = lua_tonumber(L, -2) == 1 && smm_schema_layout(L, -1) > SMM_LAYOUT_LIST;
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

int smm_norm_integer(lua_State *L, int idx) {
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
typedef struct key_cache {
  const char *key[SMM_KEY_CACHE];
  int code[SMM_KEY_CACHE];
  int len;
} key_cache;

int smm_schema_code(lua_State *L, int schema_idx, int key) {
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
  code = smm_schema_code(L, schema_idx, -2);
  if (kc->len < SMM_KEY_CACHE) {
    kc->key[kc->len] = k;
    kc->code[kc->len++] = code;
  }
  return code;
}

/* The usual shapes (text as a string, a flag as a boolean) need no call. */
int smm_schema_normalize(lua_State *L, int code) {
  int vt = lua_type(L, -1);
  switch (code) {
    case SMM_T_INTEGER: return smm_norm_integer(L, -1);
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
      smm_integerize(L, lua_gettop(L), 3);
      lua_pop(L, 1);
      continue;
    }
    if (lua_type(L, -2) == LUA_TSTRING) code = key_code(L, schema_idx, kc);
    if (code != SMM_T_NONE) {
      changed = smm_schema_normalize(L, code);
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
        smm_integerize(L, lua_gettop(L), 2);
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
    if (lua_type(L, -2) == LUA_TTABLE && lua_type(L, -1) == LUA_TSTRING && smm_norm_integer(L, -1))
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
void smm_schema_apply(lua_State *L, int schema_idx, int layout) {
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

