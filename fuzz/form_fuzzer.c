/*
 * form_fuzzer.c: arbitrary bytes -> a table of fields -> smm_form_encode (src/form.c, the code
 * request/request_many run) -> checks on the body:
 *   - a field table the encoder must refuse (a non-string name, a value that is neither a
 *     string nor a number, NaN/inf) raises a "smm.core: ..." error, and only those do;
 *   - every byte of the body is unreserved (A-Z a-z 0-9 - . _ ~), '+', '=', '&' or "%XX" with
 *     two upper-case hex digits, and the body is NUL-terminated in its buffer;
 *   - decoding the body gives back exactly the fields: names sorted bytewise, string values
 *     byte for byte, integers as "%lld", floats as a plain decimal (never an exponent) that
 *     reads back as the same double, an integral one as plain digits;
 *   - lua/smm/transport/form.lua (the ngx transport's encoder) refuses the same tables and
 *     writes the same bytes (one form encoding for every transport);
 *   - the Lua stack is as it was.
 *
 * Input layout (each read past the end gives 0): [item] then fields:
 *   [name kind] [name length] name bytes  [value kind] value bytes...
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_lua.h"
#include "form.h"

typedef struct reader {
  const uint8_t *p;
  size_t n;
} reader;

static uint8_t byte(reader *r) {
  if (r->n == 0) return 0;
  r->n--;
  return *r->p++;
}

static void take(reader *r, void *out, size_t n) {
  size_t k = n < r->n ? n : r->n;
  memset(out, 0, n);
  memcpy(out, r->p, k);
  r->p += k;
  r->n -= k;
}

/* A string of up to `max` bytes taken from the input. */
static void push_bytes(lua_State *L, reader *r, size_t len) {
  if (len > r->n) len = r->n;
  lua_pushlstring(L, (const char *)r->p, len);
  r->p += len;
  r->n -= len;
}

static const double interesting[] = {0.0, -0.0, 0.1, 0.35, 1e300, -1e300, 1.7976931348623157e308,
                                     -1.7976931348623157e308, 9007199254740992.0,
                                     9007199254740993.0, -9007199254740992.0, 9.2233720368547758e18,
                                     -9.2233720368547758e18, 1.8446744073709552e19, 5e-324,
                                     2.2250738585072014e-308, 123456789.125, 1e22, 1e23, 1e64,
                                     HUGE_VAL, -HUGE_VAL, NAN};

static void push_value(lua_State *L, reader *r) {
  uint8_t kind = byte(r) % 10;
  switch (kind) {
    case 0: case 1: case 2: /* a short string */
      push_bytes(L, r, byte(r) % 48);
      break;
    case 3: { /* an integer */
      int64_t i;
      take(r, &i, sizeof i);
      lua_pushinteger(L, (lua_Integer)i);
      break;
    }
    case 4: { /* any double, NaN and inf included */
      double d;
      take(r, &d, sizeof d);
      lua_pushnumber(L, d);
      break;
    }
    case 5: /* an edge-case double */
      lua_pushnumber(L, interesting[byte(r) % (sizeof interesting / sizeof interesting[0])]);
      break;
    case 6: { /* a long value: a short chunk repeated (up to ~600 KiB, past the buffer's
               * kept capacity, now and then) */
      size_t len = byte(r) % 8 + 1, times = (size_t)byte(r);
      times = times % 16 == 0 ? times * 300 + 1 : times + 1; /* the long ones now and then */
      luaL_Buffer b;
      const char *chunk;
      size_t clen;
      push_bytes(L, r, len);
      chunk = lua_tolstring(L, -1, &clen);
      luaL_buffinit(L, &b);
      while (times-- > 0) luaL_addlstring(&b, chunk, clen);
      luaL_pushresult(&b);
      lua_remove(L, -2);
      break;
    }
    case 7: { /* a small float from two bytes (fractions, halves, negatives) */
      int16_t s;
      take(r, &s, sizeof s);
      lua_pushnumber(L, (double)s / (double)(byte(r) % 16 + 1));
      break;
    }
    case 8: /* an unsupported type */
      switch (byte(r) % 3) {
        case 0: lua_pushboolean(L, 1); break;
        case 1: lua_newtable(L); break;
        default: lua_pushlightuserdata(L, NULL); break;
      }
      break;
    default: /* a numeric-looking string stays a string */
      lua_pushfstring(L, "%d", (int)byte(r) - 128);
      break;
  }
}

static int encode_cf(lua_State *L) {
  smm_buffer *out = lua_touserdata(L, lua_upvalueindex(1));
  int item = (int)lua_tointeger(L, 2);
  int top = lua_gettop(L);
  smm_form_encode(L, 1, out, item);
  if (lua_gettop(L) != top) FUZZ_FAIL("smm_form_encode left %d values", lua_gettop(L) - top);
  return 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

/* Decodes s[0..n) (a name or a value) into dst; returns its length. */
static size_t unescape(const char *s, size_t n, char *dst) {
  size_t i, k = 0;
  for (i = 0; i < n; i++) {
    if (s[i] == '+') {
      dst[k++] = ' ';
    } else if (s[i] == '%') {
      dst[k++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2])); /* checked before */
      i += 2;
    } else {
      dst[k++] = s[i];
    }
  }
  return k;
}

typedef struct field {
  const char *name;
  size_t len;
} field;

static int compare(const void *a, const void *b) {
  const field *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int r = memcmp(x->name, y->name, n);
  if (r != 0) return r;
  return (x->len > y->len) - (x->len < y->len);
}

/* The checks on a body the encoder accepted, against the fields table at idx. */
static void check_body(lua_State *L, int idx, const smm_buffer *out) {
  const char *body = out->data ? out->data : "";
  size_t len = out->len, i, nfields = 0, at, k;
  field *fields;
  char *scratch;

  if (out->data != NULL && out->data[len] != '\0') FUZZ_FAIL("body not NUL-terminated");
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)body[i];
    if (c == '%') {
      if (i + 2 >= len) FUZZ_FAIL("truncated escape at %zu", i);
      if (hexval(body[i + 1]) < 0 || hexval(body[i + 2]) < 0)
        FUZZ_FAIL("bad escape %%%c%c at %zu", body[i + 1], body[i + 2], i);
      i += 2;
    } else if (!unreserved(c) && c != '+' && c != '=' && c != '&') {
      FUZZ_FAIL("byte 0x%02x left unescaped at %zu", c, i);
    }
  }

  /* The table's names, sorted as the encoder must have written them. */
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    nfields++;
    lua_pop(L, 1);
  }
  if (nfields == 0) {
    if (len != 0) FUZZ_FAIL("empty table gave a %zu-byte body", len);
    return;
  }
  fields = lua_newuserdatauv(L, nfields * sizeof(field), 0);
  k = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    fields[k].name = lua_tolstring(L, -2, &fields[k].len);
    k++;
    lua_pop(L, 1);
  }
  qsort(fields, nfields, sizeof(field), compare);
  scratch = lua_newuserdatauv(L, len + 1, 0);

  at = 0;
  for (k = 0; k < nfields; k++) {
    size_t end = at, eq, dlen;
    int vt;
    while (end < len && body[end] != '&') end++;
    eq = at;
    while (eq < end && body[eq] != '=') eq++;
    if (eq == end) FUZZ_FAIL("field %zu has no '='", k);
    dlen = unescape(body + at, eq - at, scratch);
    if (dlen != fields[k].len || memcmp(scratch, fields[k].name, dlen) != 0)
      FUZZ_FAIL("field %zu: name does not decode back (order or escaping)", k);
    dlen = unescape(body + eq + 1, end - eq - 1, scratch);
    scratch[dlen] = '\0';
    lua_pushlstring(L, fields[k].name, fields[k].len);
    vt = lua_rawget(L, idx);
    if (vt == LUA_TSTRING) {
      size_t vlen;
      const char *v = lua_tolstring(L, -1, &vlen);
      if (vlen != dlen || memcmp(v, scratch, vlen) != 0)
        FUZZ_FAIL("field %zu: string value does not decode back", k);
    } else if (lua_isinteger(L, -1)) {
      char want[32];
      snprintf(want, sizeof want, "%lld", (long long)lua_tointeger(L, -1));
      if (strcmp(want, scratch) != 0)
        FUZZ_FAIL("field %zu: integer %s encoded as '%s'", k, want, scratch);
    } else {
      double x = (double)lua_tonumber(L, -1);
      char *endp;
      double y = strtod(scratch, &endp);
      if (dlen == 0 || *endp != '\0' || y != x)
        FUZZ_FAIL("field %zu: float %.17g encoded as '%s'", k, x, scratch);
      if (strspn(scratch + (scratch[0] == '-'), "0123456789.") != dlen - (scratch[0] == '-'))
        FUZZ_FAIL("field %zu: float %.17g encoded as '%s', not a plain decimal", k, x, scratch);
      if (floor(x) == x && strspn(scratch + (scratch[0] == '-'), "0123456789") !=
                               dlen - (scratch[0] == '-'))
        FUZZ_FAIL("field %zu: integral float %.17g encoded as '%s'", k, x, scratch);
    }
    lua_pop(L, 1);
    at = end + 1;
  }
  if (at != len + 1) FUZZ_FAIL("body has %zu bytes after the last field", len - (at - 1));
  lua_pop(L, 2); /* scratch, fields */
}

/* 1 when the encoder must refuse the table at idx. */
static int must_refuse(lua_State *L, int idx) {
  int refuse = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int vt = lua_type(L, -1);
    if (lua_type(L, -2) != LUA_TSTRING) refuse = 1;
    if (vt != LUA_TSTRING && vt != LUA_TNUMBER) refuse = 1;
    if (vt == LUA_TNUMBER && !isfinite((double)lua_tonumber(L, -1))) refuse = 1;
    lua_pop(L, 1);
  }
  return refuse;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lua_State *L;
  static smm_buffer *out; /* kept across inputs, as the handle keeps c->form */
  reader r = {data, size};
  int base, item, refuse, nfields, i;

  if (L == NULL) {
    L = fuzz_new_state();
    out = lua_newuserdatauv(L, sizeof(smm_buffer), 0);
    memset(out, 0, sizeof *out);
    lua_pushcclosure(L, encode_cf, 1); /* index 1: anchors the buffer's userdata */
    fuzz_load(L, "form.lua", "return require('smm.transport.form').encode"); /* index 2 */
  }
  base = lua_gettop(L);
  item = byte(&r) % 4 == 0 ? (int)byte(&r) + 1 : 0;
  lua_newtable(L); /* base + 1: the fields */
  nfields = byte(&r) % 24;
  for (i = 0; i < nfields && r.n > 0; i++) {
    uint8_t nk = byte(&r);
    if (nk % 32 == 0)
      lua_pushinteger(L, (lua_Integer)byte(&r)); /* a non-string name */
    else if (nk % 32 == 1)
      lua_pushnumber(L, 0.5);
    else
      push_bytes(L, &r, nk % 2 ? byte(&r) % 24 : byte(&r) % 4);
    push_value(L, &r);
    lua_rawset(L, base + 1);
  }
  refuse = must_refuse(L, base + 1);

  lua_pushvalue(L, 1);
  lua_pushvalue(L, base + 1);
  lua_pushinteger(L, item);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (!refuse) FUZZ_FAIL("encoder refused a valid table: %s", msg ? msg : "?");
    if (msg == NULL || strncmp(msg, "smm.core: ", 10) != 0)
      FUZZ_FAIL("unexpected error message: %s", msg ? msg : "(not a string)");
    if (item > 0) {
      char tag[32];
      snprintf(tag, sizeof tag, "(item %d)", item);
      if (strstr(msg, tag) == NULL) FUZZ_FAIL("error does not name %s: %s", tag, msg);
    }
  } else {
    if (refuse) FUZZ_FAIL("encoder accepted a table it must refuse");
    check_body(L, base + 1, out);
  }
  lua_pushvalue(L, 2);
  lua_pushvalue(L, base + 1);
  lua_pushinteger(L, item);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    if (!refuse) FUZZ_FAIL("form.lua refused a valid table: %s", lua_tostring(L, -1));
  } else {
    size_t llen;
    const char *lbody = lua_tolstring(L, -1, &llen);
    if (refuse) FUZZ_FAIL("form.lua accepted a table the C core refuses");
    if (llen != out->len || (llen > 0 && memcmp(lbody, out->data, llen) != 0))
      FUZZ_FAIL("form.lua wrote '%.200s', the C core '%.200s'", lbody, out->data ? out->data : "");
  }
  lua_pop(L, 1);
  if (byte(&r) % 2) smm_buffer_reset(out); /* as request() does after copying the body */
  lua_settop(L, base);
  if (size % 64 == 0) lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
