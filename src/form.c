/*
 * form.c: a Lua table of fields -> an application/x-www-form-urlencoded body in a C buffer.
 * Names are sorted bytewise (memcmp, not strcoll) so the body is deterministic. Unreserved
 * bytes (A-Z a-z 0-9 - . _ ~) are kept, space becomes '+', every other byte becomes %XX.
 * Runs before any curl call, so raising a Lua error here is safe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct field_name {
  const char *s;
  size_t len;
} field_name;

static int compare_names(const void *a, const void *b) {
  const field_name *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int r = memcmp(x->s, y->s, n);
  if (r != 0) return r;
  return (x->len > y->len) - (x->len < y->len);
}

static void oom(lua_State *L) {
  luaL_error(L, "smm.core: out of memory encoding the request");
}

static void append_escaped(lua_State *L, smm_buffer *out, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  size_t i;
  char *p;
  if (n > ((size_t)-1 - 16) / 3 || smm_buffer_reserve(out, n * 3) != 0) oom(L);
  p = out->data + out->len;
  for (i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
        ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      *p++ = (char)ch;
    } else if (ch == ' ') {
      *p++ = '+';
    } else {
      *p++ = '%';
      *p++ = hex[ch >> 4];
      *p++ = hex[ch & 15];
    }
  }
  out->len = (size_t)(p - out->data);
  out->data[out->len] = '\0';
}

/* Room for any number format_number writes: "%.0f" of -DBL_MAX is 310 characters. */
#define SMM_NUMBER_CHARS 320

/* snprintf's result as a length: what it wrote, never more than it could (it returns the
 * length it would have written). */
static size_t written(int n, size_t size) {
  if (n < 0) return 0;
  return (size_t)n < size ? (size_t)n : size - 1;
}

/* Formats the number at vidx: integers (and floats with an exact integer value) as integers,
 * other floats with the fewest of 15..17 significant digits that read back the same.
 * out must have room for SMM_NUMBER_CHARS bytes. */
static size_t format_number(lua_State *L, int vidx, const char *name, int item, char *out,
                            size_t size) {
  lua_Number x;
  int prec;
  if (lua_isinteger(L, vidx)) {
    return written(snprintf(out, size, "%lld", (long long)lua_tointeger(L, vidx)), size);
  }
  x = lua_tonumber(L, vidx);
  if (x != x || x - x != 0) { /* NaN or +-inf */
    if (item > 0)
      luaL_error(L, "smm.core: field '%s' must be a finite number (item %d)", name, item);
    luaL_error(L, "smm.core: field '%s' must be a finite number", name);
  }
  if (x >= 9007199254740992.0 || x <= -9007199254740992.0) /* all such doubles are integral */
    return written(snprintf(out, size, "%.0f", (double)x), size);
  if ((lua_Number)(long long)x == x)
    return written(snprintf(out, size, "%lld", (long long)x), size);
  for (prec = 15; prec < 17; prec++) {
    snprintf(out, size, "%.*g", prec, (double)x);
    if (strtod(out, NULL) == (double)x) break;
  }
  return written(snprintf(out, size, "%.*g", prec, (double)x), size);
}

void smm_form_encode(lua_State *L, int idx, smm_buffer *out, int item) {
  size_t count = 0, i;
  field_name *names;
  idx = lua_absindex(L, idx);
  smm_buffer_reset(out);
  if (smm_buffer_reserve(out, 0) != 0) oom(L);

  /* Pass 1: check every name and value, count the fields. */
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    const char *name;
    int vt = lua_type(L, -1);
    if (lua_type(L, -2) != LUA_TSTRING) {
      if (item > 0)
        luaL_error(L, "smm.core: field names must be strings, got %s (item %d)",
                   luaL_typename(L, -2), item);
      luaL_error(L, "smm.core: field names must be strings, got %s", luaL_typename(L, -2));
    }
    name = lua_tostring(L, -2);
    if (vt != LUA_TSTRING && vt != LUA_TNUMBER) {
      if (item > 0)
        luaL_error(L, "smm.core: field '%s' has unsupported type %s (item %d)", name,
                   luaL_typename(L, -1), item);
      luaL_error(L, "smm.core: field '%s' has unsupported type %s", name, luaL_typename(L, -1));
    }
    count++;
    lua_pop(L, 1);
  }
  if (count == 0) return;

  /* Pass 2: collect the names (anchored by the table) into GC-owned memory and sort them. */
  names = (field_name *)lua_newuserdata(L, count * sizeof(field_name));
  i = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    names[i].s = lua_tolstring(L, -2, &names[i].len);
    i++;
    lua_pop(L, 1);
  }
  qsort(names, count, sizeof(field_name), compare_names);

  for (i = 0; i < count; i++) {
    const char *v;
    size_t vlen;
    char num[SMM_NUMBER_CHARS];
    if (i > 0 && smm_buffer_append(out, "&", 1) != 0) oom(L);
    append_escaped(L, out, names[i].s, names[i].len);
    if (smm_buffer_append(out, "=", 1) != 0) oom(L);
    lua_pushlstring(L, names[i].s, names[i].len);
    lua_rawget(L, idx);
    if (lua_type(L, -1) == LUA_TNUMBER) {
      vlen = format_number(L, lua_gettop(L), names[i].s, item, num, sizeof num);
      v = num;
    } else {
      v = lua_tolstring(L, -1, &vlen);
    }
    append_escaped(L, out, v, vlen);
    lua_pop(L, 1);
  }
  lua_pop(L, 1); /* names */
}
