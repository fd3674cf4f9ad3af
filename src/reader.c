/*
 * reader.c: the direct reader of flat answers. The shapes most answers have are read here
 * instead of by cjson: a flat object ({"balance":"100.84292","currency":"USD"}, {"order":23501},
 * {"error":"..."}), an array of flat objects and scalars (the service list, refill and cancel
 * answers) and, for a "by_id" schema, an object of them (the statuses of many orders).
 *
 * Why: for a small answer this skips cjson's call (a pcall, a scratch buffer, a table walk
 * after); for a service list it skips cjson's tables growing key by key, and the walk after,
 * since the schema is applied (schema.c's normalisers) and numbers made integers as each field
 * is read, with one key cache per read (type codes by the key's text in the body).
 *
 * The contract: what is read is exactly what cjson + schema.c's integerize and walks would
 * give: strings with any bytes >= 0x20 and the JSON escapes (\uXXXX and surrogate pairs made
 * UTF-8 as cjson does), numbers in strict JSON form (integers of up to 15 digits as such, others
 * through strtod as cjson reads them, then integral values within +-2^53 as integers), true,
 * false and null (cjson's null, a NULL light userdata). Anything else (nesting inside a record,
 * -0, a long integer, a lone surrogate, a syntax error, a locale whose decimal point is not
 * '.') returns 0 with the stack as it was, and cjson decides. decode_fuzzer compares the
 * outcome with a plain cjson decode, schema_fuzzer the schema with the Lua readers.
 *
 * Trade-off: a second JSON reader to keep equal to cjson, for the speed of the common answers;
 * `make SMM_DIRECT_READER=0` (-DSMM_NO_DIRECT_READER) builds without it, and CI runs the client
 * specs on that build (make test-cjson-path) so the cjson path stays covered.
 */
#ifndef SMM_NO_DIRECT_READER
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "reader.h"
#include "schema.h"

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
        code = smm_schema_code(L, schema_idx, -2);
        if (tc->n < SMM_KEY_CACHE && memchr(k, '\\', klen) == NULL) {
          tc->key[tc->n] = k, tc->len[tc->n] = klen, tc->code[tc->n++] = code;
        }
      }
      if (code != SMM_T_NONE && smm_schema_normalize(L, code)) lua_replace(L, -2);
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
      if (smm_norm_integer(L, -1)) lua_remove(L, -2);
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
 * objects of an array root (a list) or the object values of an object root ("by_id"). */
int smm_read_direct(lua_State *L, const char *p, size_t n, int schema_idx, int layout) {
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

#else
/* ISO C wants a declaration in every translation unit. */
typedef int smm_no_direct_reader;
#endif
