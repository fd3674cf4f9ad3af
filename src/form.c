/*
 * form.c: a Lua table of fields -> an application/x-www-form-urlencoded body in a C buffer.
 * Names are sorted bytewise (memcmp, not strcoll) so the body is deterministic. Unreserved
 * bytes (A-Z a-z 0-9 - . _ ~) are kept, space becomes '+', every other byte becomes %XX.
 * Runs before any curl call, so raising a Lua error here is safe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

/* A field: its name and value, both anchored by the fields table while encoding runs (it is
 * not changed meanwhile). A number value is kept as a number and formatted when written. */
typedef struct field_name {
  const char *s;
  size_t len;
  const char *v; /* string value, or NULL for a number */
  size_t vlen;
  int isint;
  lua_Integer i;
  lua_Number x;
} field_name;

/* Fields up to this many are collected on the C stack instead of in a Lua userdata. */
#define SMM_FIELDS_ON_STACK 16

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

/* Room for any number format_number writes: "%.0f" of -DBL_MAX is 310 characters, a float
 * near the smallest subnormal without its exponent "-0." + 323 zeros + up to 17 digits. */
#define SMM_NUMBER_CHARS 352

/* snprintf's result as a length: what it wrote, never more than it could (it returns the
 * length it would have written). */
static size_t written(int n, size_t size) {
  if (n < 0) return 0;
  return (size_t)n < size ? (size_t)n : size - 1;
}

/* s[0..n): what "%.Ng" wrote with an exponent ("-1.25e-07"), rewritten in place as a plain
 * decimal ("-0.000000125"): panels are PHP, whose intval() read "1e-05" as 1 before 7.1,
 * and whose own checks of a decimal (a regex, ctype_digit around the point) refuse an
 * exponent. Returns the new length; s has room for size bytes. */
static size_t without_exponent(char *s, size_t n, size_t size) {
  char digits[24], *p = s, *end = s + n;
  size_t ndigits = 0, len = 0;
  int neg = 0, exp, point, i;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  for (; p < end && *p != 'e'; p++)
    if (*p != '.' && ndigits < sizeof digits) digits[ndigits++] = *p;
  if (p == end || ndigits == 0 || ndigits >= sizeof digits) return n; /* not %g's shape */
  exp = atoi(p + 1);
  point = 1 + exp; /* %g writes one digit before the point */
  if (point < -(int)(size - sizeof digits - 4) || point > (int)(size - 4 - ndigits))
    return n; /* not a double's exponent */
  if (neg) s[len++] = '-';
  if (point <= 0) {
    s[len++] = '0';
    s[len++] = '.';
    for (i = point; i < 0; i++) s[len++] = '0';
    memcpy(s + len, digits, ndigits);
    len += ndigits;
  } else if ((size_t)point >= ndigits) {
    memcpy(s + len, digits, ndigits);
    len += ndigits;
    for (i = (int)ndigits; i < point; i++) s[len++] = '0';
  } else {
    memcpy(s + len, digits, (size_t)point);
    len += (size_t)point;
    s[len++] = '.';
    memcpy(s + len, digits + point, ndigits - (size_t)point);
    len += ndigits - (size_t)point;
  }
  s[len] = '\0';
  return len;
}

/* Formats the number of f: integers (and floats with an exact integer value) as integers,
 * other floats with the fewest of 15..17 significant digits that read back the same, never
 * with an exponent. lua/smm/transport/form.lua is the same rule in Lua: change both.
 * out must have room for SMM_NUMBER_CHARS bytes. */
static size_t format_number(lua_State *L, const field_name *f, int item, char *out,
                            size_t size) {
  lua_Number x;
  int prec;
  size_t n;
  if (f->isint) {
    return written(snprintf(out, size, "%lld", (long long)f->i), size);
  }
  x = f->x;
  if (x != x || x - x != 0) { /* NaN or +-inf */
    if (item > 0)
      luaL_error(L, "smm.core: field '%s' must be a finite number (item %d)", f->s, item);
    luaL_error(L, "smm.core: field '%s' must be a finite number", f->s);
  }
  if (x >= 9007199254740992.0 || x <= -9007199254740992.0) /* all such doubles are integral */
    return written(snprintf(out, size, "%.0f", (double)x), size);
  if ((lua_Number)(long long)x == x)
    return written(snprintf(out, size, "%lld", (long long)x), size);
  for (prec = 15; prec < 17; prec++) {
    snprintf(out, size, "%.*g", prec, (double)x);
    if (strtod(out, NULL) == (double)x) break;
  }
  n = written(snprintf(out, size, "%.*g", prec, (double)x), size);
  return memchr(out, 'e', n) != NULL ? without_exponent(out, n, size) : n;
}

/* Records the key (a string) and value (a string or a number) at -2, -1 into f. */
static void collect(lua_State *L, field_name *f) {
  f->s = lua_tolstring(L, -2, &f->len);
  if (lua_type(L, -1) == LUA_TNUMBER) {
    f->v = NULL;
    f->vlen = 0;
    f->isint = lua_isinteger(L, -1);
    f->i = f->isint ? lua_tointeger(L, -1) : 0;
    f->x = f->isint ? 0 : lua_tonumber(L, -1);
  } else {
    f->v = lua_tolstring(L, -1, &f->vlen);
  }
}

/* Sorts a few names by insertion (no two are equal: they are keys of one table), many with
 * qsort: the same order either way. */
static void sort_names(field_name *names, size_t count) {
  size_t i, j;
  if (count > SMM_FIELDS_ON_STACK) {
    qsort(names, count, sizeof(field_name), compare_names);
    return;
  }
  for (i = 1; i < count; i++) {
    field_name f = names[i];
    for (j = i; j > 0 && compare_names(&names[j - 1], &f) > 0; j--) names[j] = names[j - 1];
    names[j] = f;
  }
}

void smm_form_encode(lua_State *L, int idx, smm_buffer *out, int item) {
  size_t count = 0, i;
  field_name local[SMM_FIELDS_ON_STACK];
  field_name *names;
  idx = lua_absindex(L, idx);
  smm_buffer_reset(out);
  if (smm_buffer_reserve(out, 0) != 0) oom(L);

  /* Pass 1: check every name and value, count the fields, and collect them (names and
   * values, see field_name) as long as they fit on the C stack. */
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
    if (count < SMM_FIELDS_ON_STACK) collect(L, &local[count]);
    count++;
    lua_pop(L, 1);
  }
  if (count == 0) return;

  /* Pass 2, for many fields only: collect them all into GC-owned memory (a Lua error later
   * on must not leak it). */
  if (count <= SMM_FIELDS_ON_STACK) {
    names = local;
  } else {
    names = (field_name *)lua_newuserdata(L, count * sizeof(field_name));
    i = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
      collect(L, &names[i++]);
      lua_pop(L, 1);
    }
  }
  sort_names(names, count);

  for (i = 0; i < count; i++) {
    const char *v;
    size_t vlen;
    char num[SMM_NUMBER_CHARS];
    if (i > 0 && smm_buffer_append(out, "&", 1) != 0) oom(L);
    append_escaped(L, out, names[i].s, names[i].len);
    if (smm_buffer_append(out, "=", 1) != 0) oom(L);
    if (names[i].v == NULL) {
      vlen = format_number(L, &names[i], item, num, sizeof num);
      v = num;
    } else {
      v = names[i].v;
      vlen = names[i].vlen;
    }
    append_escaped(L, out, v, vlen);
  }
  if (names != local) lua_pop(L, 1); /* names */
}
