/*
 * schema_fuzzer.c: differential. smm_decode_body with normalize.lua's SERVICE_SCHEMA (the C
 * core normalising the schema's fields as it reads or walks the answer, src/schema.c) against
 * smm_decode_body without a schema followed by lua/smm/normalize.lua's services(), the path the
 * ngx transport and every answer without a schema take; and likewise, by bits 3-5 of the first
 * byte, STATUS_SCHEMA (a "by_id" schema) read by normalize.orders both ways, and the "record"
 * schemas of single answers: ORDER_SCHEMA read by normalize.order, BALANCE_SCHEMA by
 * normalize.balance, ADD_SCHEMA by normalize.integer of the order id (as actions.lua reads
 * them). A record is often a small flat object, which the C core reads without cjson, applying
 * the schema as it goes (a by_id answer given as an array, which has no ids, without it). The
 * two must give deep-equal tables:
 * same keys, same values, same number subtypes (integer vs float), NaN where NaN. Also: the C
 * result is marked normalized = true exactly when it has a json table, the stack is balanced,
 * and Lua memory stays flat.
 *
 * The input's first byte picks the mode: the raw bytes as the body (1 in 8), or a JSON-ish
 * service list generated from the bytes: records with the schema's keys (and others) holding
 * tricky strings ("157.00", " 1e5 ", "YES", "-0", 2^53 +- 1...), random strings over digits,
 * signs, points, exponents and spaces, integers, any double, e-notation with exponents around
 * +-400, NaN/Infinity, true/false/null, nested objects and arrays; sometimes an object root or
 * a non-object record.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_lua.h"
#include "decode.h"

static const char checker[] =
    "local N = require('smm.normalize')\n"
    "local mtype = math.type\n"
    "local function fail(path, why) error(path .. ': ' .. why, 0) end\n"
    "local function same(a, b, path)\n"
    "  if type(a) ~= type(b) then fail(path, type(a) .. ' vs ' .. type(b) .. ' (' .. tostring(a) .. ' vs ' .. tostring(b) .. ')') end\n"
    "  if type(a) == 'number' then\n"
    "    if mtype(a) ~= mtype(b) then fail(path, mtype(a) .. ' vs ' .. mtype(b) .. ' ' .. tostring(a)) end\n"
    "    if a ~= b and (a == a or b == b) then fail(path, string.format('%.17g vs %.17g', a, b)) end\n"
    "  elseif type(a) ~= 'table' and a ~= b then\n"
    "    fail(path, string.format('%q vs %q', tostring(a), tostring(b)))\n"
    "  end\n"
    "end\n"
    "local function walk(a, b)\n"
    "  local todo = { a, b, '$' }\n"
    "  while #todo > 0 do\n"
    "    local path = table.remove(todo); local y = table.remove(todo); local x = table.remove(todo)\n"
    "    same(x, y, path)\n"
    "    if type(x) == 'table' then\n"
    "      for k, v in pairs(y) do\n"
    "        local w = rawget(x, k)\n"
    "        if w == nil then fail(path, 'key missing in C result: ' .. tostring(k)) end\n"
    "        todo[#todo + 1] = w; todo[#todo + 1] = v; todo[#todo + 1] = path .. '.' .. tostring(k)\n"
    "      end\n"
    "      for k in pairs(x) do\n"
    "        if rawget(y, k) == nil then fail(path, 'extra key in C result: ' .. tostring(k)) end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local SCHEMAS = { N.SERVICE_SCHEMA, N.STATUS_SCHEMA, N.ORDER_SCHEMA, N.BALANCE_SCHEMA, N.ADD_SCHEMA }\n"
    /* a by_id answer given as an array has no ids: decoded without the schema */
    "return SCHEMAS, function(c, l, mode, body)\n"
    "  local text = body:sub(1, 3) == '\\239\\187\\191' and body:sub(4) or body\n"
    "  local listed = mode == 2 and text:find('^[ \\t\\r\\n]*%[') ~= nil\n"
    "  if (c.normalized == true) ~= (type(c.json) == 'table' and not listed) then fail('result', 'normalized = ' .. tostring(c.normalized)) end\n"
    "  if l.normalized ~= nil then fail('result', 'normalized without a schema') end\n"
    "  if c.body ~= l.body or c.decode_error ~= l.decode_error then fail('result', 'body or decode_error differ') end\n"
    "  if mode == 2 then\n"
    "    walk(N.orders(c.json, c.normalized), N.orders(l.json))\n"
    "    return\n"
    "  end\n"
    "  if mode >= 3 then\n"
    "    if type(c.json) ~= 'table' then walk(c.json, l.json) return end\n"
    "    if mode == 3 then walk(N.order(c.json, true), N.order(l.json)) return end\n"
    "    if mode == 4 then walk(c.json, N.balance(l.json)) return end\n"
    "    l.json.order = N.integer(l.json.order)\n"
    "    walk(c.json, l.json)\n"
    "    return\n"
    "  end\n"
    "  if type(l.json) == 'table' then N.services(l.json) end\n"
    "  if type(c.json) == 'table' then N.services(c.json, c.normalized) end\n"
    "  walk(c.json, l.json)\n"
    "end\n";

/* ------------------------------------------------------------------------------------------ */
/* A JSON-ish generator driven by the input bytes. */

typedef struct {
  const uint8_t *p;
  size_t n;
  char *out;
  size_t len, cap;
} gen;

static unsigned take(gen *g) {
  if (g->n == 0) return 0;
  g->n--;
  return *g->p++;
}

static void put(gen *g, const char *s, size_t n) {
  if (g->len + n > g->cap) return; /* the body is capped; cjson may refuse the cut text */
  memcpy(g->out + g->len, s, n);
  g->len += n;
}

static void puts_(gen *g, const char *s) { put(g, s, strlen(s)); }

static const char *const keys[] = {"service", "rate", "min", "max", "refill", "cancel",
                                   "dripfeed", "name", "type", "category", "order", "x",
                                   "charge", "start_count", "remains", "currency", "runs",
                                   "posts", "status", "error", "orders", "balance", "id"};

/* The keys of a multi-status answer: ids as panels write them, and not quite ids. */
static const char *const ids[] = {"23501", "1", "0", " 12 ", "7.0", "7", "007", "", " ", "-3",
                                  "+4", "1e3", "abc", "9007199254740991", "9007199254740993",
                                  "12345678901234567890", "5.5", "x"};

static const char *const tokens[] = {
    "", " ", "157", " 157 ", "157.00", "157.", "+157", "-157", "-0", "+0", "0", "00", "0.90",
    " 0.90", "0.90 ", ".5", "5.", "+.5", "-.5", ".", "+", "-", "1e5", "1E5", "1.5e-3",
    "1.5E+03", ".5e1", "5.e2", "e5", "1e", "1e+", "1e400", "1e401", "-1e-400", "1e-401",
    "0e0", "-0e5", "00.000e3", "1.2.3", "1..2", "1e5.5", "true", "TRUE", " yes ", "Yes", "on",
    "ON", "1", "0", "false", "No", "off", " oFF\t", "nope", "9007199254740991",
    "9007199254740992", "-9007199254740991", "-9007199254740992", "9007199254740991.000",
    "0000000000000000000000001", "12345678901234567890", "123456789012345", "1234567890123456",
    "12345678901234567", "0x10", "\\t1\\n", "\\u000b7\\f", "abc", "1 2", "1,5", "nan", "inf",
    "-inf", "1e-5", "12.5e-1", "0.0000", "100.0e-2", "1.0e1"};

static const char alphabet[] = " 0123456789+-.eE\tax";

static void gen_value(gen *g, int depth);

static void gen_string(gen *g) {
  unsigned n = take(g) % 12, i;
  put(g, "\"", 1);
  for (i = 0; i < n; i++) {
    char c = alphabet[take(g) % (sizeof alphabet - 1)];
    if (c == '\t')
      puts_(g, "\\t");
    else
      put(g, &c, 1);
  }
  put(g, "\"", 1);
}

static void gen_value(gen *g, int depth) {
  char buf[96];
  unsigned kind = take(g) % 14;
  switch (kind) {
    case 0:
    case 1: {
      unsigned t = take(g) % (sizeof tokens / sizeof tokens[0]);
      put(g, "\"", 1);
      puts_(g, tokens[t]);
      put(g, "\"", 1);
      break;
    }
    case 2: gen_string(g); break;
    case 3: { /* an integer of 1..8 bytes */
      int64_t v = 0;
      unsigned nb = take(g) % 8 + 1, i;
      for (i = 0; i < nb; i++) v = (int64_t)((uint64_t)v << 8 | take(g));
      if (take(g) & 1) v = -v;
      snprintf(buf, sizeof buf, "%lld", (long long)v);
      puts_(g, buf);
      break;
    }
    case 4: { /* any double */
      uint64_t bits = 0;
      double d;
      unsigned i;
      for (i = 0; i < 8; i++) bits = bits << 8 | take(g);
      memcpy(&d, &bits, sizeof d);
      if (d != d)
        puts_(g, "NaN");
      else if (d > 1.7976931348623157e308)
        puts_(g, "Infinity");
      else if (d < -1.7976931348623157e308)
        puts_(g, "-Infinity");
      else {
        snprintf(buf, sizeof buf, "%.*g", (int)(take(g) % 18) + 1, d);
        puts_(g, buf);
      }
      break;
    }
    case 5: { /* a small decimal */
      snprintf(buf, sizeof buf, "%u.%0*u", take(g) % 100, (int)(take(g) % 4) + 1, take(g) * 7u);
      puts_(g, buf);
      break;
    }
    case 6: { /* e-notation near the limits */
      int e = (int)(take(g) % 64) - 32;
      if (take(g) & 1) e += (take(g) & 1) ? 390 : -390;
      snprintf(buf, sizeof buf, "%u.%ue%d", take(g) % 10, take(g), e);
      puts_(g, buf);
      break;
    }
    case 7: puts_(g, "true"); break;
    case 8: puts_(g, "false"); break;
    case 9: puts_(g, "null"); break;
    case 10: { /* numbers around 2^53 and 2^63 */
      static const char *const big[] = {"9007199254740991", "9007199254740992", "9007199254740993",
                                        "-9007199254740992", "9.007199254740993e15",
                                        "9223372036854775807", "9223372036854775808", "-9223372036854775808",
                                        "1e19", "1e300", "-0", "-0.0", "0.1", "1e-7", "123456.789",
                                        "1.7976931348623157e308", "5e-324", "0x1F", "-1.5"};
      puts_(g, big[take(g) % (sizeof big / sizeof big[0])]);
      break;
    }
    case 11:
    case 12:
      if (depth < 4) {
        unsigned n = take(g) % 4, i;
        int obj = kind == 11;
        put(g, obj ? "{" : "[", 1);
        for (i = 0; i < n; i++) {
          if (i) put(g, ",", 1);
          if (obj) {
            put(g, "\"", 1);
            puts_(g, keys[take(g) % (sizeof keys / sizeof keys[0])]);
            put(g, "\":", 2);
          }
          gen_value(g, depth + 1);
        }
        put(g, obj ? "}" : "]", 1);
        break;
      }
      /* fall through */
    default: {
      snprintf(buf, sizeof buf, "%u", take(g) * 13u);
      puts_(g, buf);
    }
  }
}

static void gen_record(gen *g) {
  unsigned n, i;
  if (take(g) % 10 == 0) { /* not an object */
    gen_value(g, 2);
    return;
  }
  n = take(g) % 10;
  put(g, "{", 1);
  for (i = 0; i < n; i++) {
    if (i) put(g, ",", 1);
    put(g, "\"", 1);
    puts_(g, keys[take(g) % (sizeof keys / sizeof keys[0])]);
    put(g, "\":", 2);
    gen_value(g, 2);
  }
  put(g, "}", 1);
}

/* by_id: mostly an object keyed by ids (the multi-status answer), sometimes an array.
 * record: one record (the answer to a single-id action). */
static size_t generate(const uint8_t *data, size_t size, char *out, size_t cap, int by_id,
                       int record) {
  gen g;
  unsigned n, i;
  int object_root;
  g.p = data, g.n = size, g.out = out, g.len = 0, g.cap = cap;
  if (record) {
    gen_record(&g);
    return g.len;
  }
  object_root = by_id ? take(&g) % 8 != 0 : take(&g) % 8 == 0;
  n = take(&g) % 6;
  put(&g, object_root ? "{" : "[", 1);
  for (i = 0; i < n; i++) {
    if (i) put(&g, ",", 1);
    if (object_root) {
      put(&g, "\"", 1);
      if (by_id)
        puts_(&g, ids[take(&g) % (sizeof ids / sizeof ids[0])]);
      else
        puts_(&g, keys[take(&g) % (sizeof keys / sizeof keys[0])]);
      put(&g, "\":", 2);
    }
    gen_record(&g);
  }
  put(&g, object_root ? "}" : "]", 1);
  return g.len;
}

/* ------------------------------------------------------------------------------------------ */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lua_State *L;
  static char body[1 << 16];
  const char *p;
  size_t n;
  int base, mode;

  if (L == NULL) {
    L = fuzz_new_state();
    smm_push_decoder(L); /* 1: the handle's decode */
    if (luaL_loadbuffer(L, checker, sizeof checker - 1, "schema_checker") != LUA_OK ||
        lua_pcall(L, 0, 2, 0) != LUA_OK)
      FUZZ_FAIL("loading the checker: %s", lua_tostring(L, -1));
    /* 2: { SERVICE_SCHEMA, STATUS_SCHEMA, ORDER_SCHEMA, BALANCE_SCHEMA, ADD_SCHEMA }, 3: the
     * checker; 4..8: the schemas */
    if (lua_gettop(L) != 3) FUZZ_FAIL("setup left %d values", lua_gettop(L));
    for (mode = 1; mode <= 5; mode++) {
      lua_rawgeti(L, 2, mode);
      if (!smm_schema_valid(L, -1)) FUZZ_FAIL("schema %d is not a valid schema", mode);
    }
  }
  if (size == 0) return 0;
  /* 1 services, 2 by_id (STATUS_SCHEMA), 3 order, 4 balance, 5 add */
  mode = 1 + (int)(((unsigned)data[0] >> 3) % 5);
  if (data[0] % 8 == 0) {
    p = (const char *)data + 1, n = size - 1;
  } else if (size > 1 && data[size - 1] == 0xEF) { /* a UTF-8 BOM before the generated JSON */
    memcpy(body, "\xEF\xBB\xBF", 3);
    n = 3 + generate(data + 1, size - 1, body + 3, sizeof body - 3, mode == 2, mode >= 3);
    p = body;
  } else {
    n = generate(data + 1, size - 1, body, sizeof body, mode == 2, mode >= 3);
    p = body;
  }
  base = lua_gettop(L);

  lua_pushvalue(L, 3);
  lua_createtable(L, 0, 8); /* with the schema */
  smm_decode_body(L, 1, 3 + mode, p, n);
  lua_createtable(L, 0, 8); /* without: decode, then normalize.lua */
  smm_decode_body(L, 1, 0, p, n);
  lua_pushinteger(L, mode);
  lua_pushlstring(L, p, n);
  if (lua_gettop(L) != base + 5)
    FUZZ_FAIL("smm_decode_body changed the stack by %d", lua_gettop(L) - (base + 5));
  if (lua_pcall(L, 4, 0, 0) != LUA_OK)
    FUZZ_FAIL("%s\nbody: %.*s", lua_tostring(L, -1), (int)(n > 2000 ? 2000 : n), p);
  lua_settop(L, base);

  fuzz_check_heap(L);
  return 0;
}
