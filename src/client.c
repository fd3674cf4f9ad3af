/*
 * client.c: the handle userdata "smm.core.handle": core.new (its options read by options.c),
 * the curl easy handle pool and its configuration, the write/header/socket callbacks,
 * request/request_many argument handling (ropts), close/__gc/__close/__tostring. Transfers run
 * in multi.c, which builds their results with result.c.
 *
 * A request runs under lua_pcall with c->busy set (see guarded_call): Lua code that runs
 * inside it (a __gc finalizer) cannot use the handle, and an error that escapes it (out of
 * memory, a finalizer's error on 5.1/5.3/LuaJIT) still leaves the handle idle and usable.
 *
 * Rules kept here: the userdata (with its __gc metatable) exists before any curl handle is
 * made, so a Lua error at any point cannot leak; every argument is checked and every body is
 * encoded before a transfer starts; curl callbacks only append to C buffers owned by the
 * userdata and never touch Lua.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "decode.h"
#include "form.h"
#include "interrupt.h"
#include "multi.h"
#include "options.h"
#include "schema.h"

#define SMM_HANDLE_MT "smm.core.handle"

/* ------------------------------------------------------------------------------------------ */
/* curl callbacks: C only, no Lua.                                                             */

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
  smm_transfer *t = userdata;
  size_t n = size * nmemb;
  /* Counts decoded bytes (CURLOPT_ACCEPT_ENCODING), so a gzip bomb is capped too. */
  if (n > t->max_body || t->body.len > t->max_body - n) {
    t->too_large = 1;
    return 0; /* != n: curl aborts with CURLE_WRITE_ERROR */
  }
  if (smm_buffer_append(&t->body, ptr, n) != 0) return 0;
  return n;
}

static int header_is(const char *p, size_t n, const char *name, size_t *value_at) {
  size_t len = strlen(name), i;
  if (n <= len || p[len] != ':') return 0;
  for (i = 0; i < len; i++) {
    char ch = p[i];
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
    if (ch != name[i]) return 0;
  }
  *value_at = len + 1;
  return 1;
}

static void capture_value(smm_buffer *b, const char *p, size_t n, size_t at) {
  while (at < n && (p[at] == ' ' || p[at] == '\t')) at++;
  while (n > at && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' ' || p[n - 1] == '\t'))
    n--;
  smm_buffer_reset(b);
  (void)smm_buffer_append(b, p + at, n - at); /* out of memory: the header is just missing */
}

static size_t header_cb(char *ptr, size_t size, size_t nitems, void *userdata) {
  smm_transfer *t = userdata;
  size_t n = size * nitems, at;
  if (n == 0) return n;
  switch (ptr[0]) { /* most lines are neither: one test each */
    case 'H':
      if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) { /* a new response (e.g. after 1xx) */
        smm_buffer_reset(&t->location);
        smm_buffer_reset(&t->retry_after);
      }
      break;
    case 'L':
    case 'l':
      if (header_is(ptr, n, "location", &at)) capture_value(&t->location, ptr, n, at);
      break;
    case 'R':
    case 'r':
      if (header_is(ptr, n, "retry-after", &at)) capture_value(&t->retry_after, ptr, n, at);
      break;
    case 'C':
    case 'c':
      /* room for the whole body at once: a 2 MB service list would otherwise grow the buffer
       * eleven times. Only a hint (a compressed length is less than the body): a failure here
       * just leaves the growing to write_cb, which enforces max_body. */
      if (n > 15 && (ptr[8] | 0x20) == 'l' && header_is(ptr, n, "content-length", &at)) {
        size_t len = 0;
        while (at < n && (ptr[at] == ' ' || ptr[at] == '\t')) at++;
        while (at < n && ptr[at] >= '0' && ptr[at] <= '9' && len <= t->max_body)
          len = len * 10 + (size_t)(ptr[at++] - '0');
        if (len > 0 && len <= t->max_body) (void)smm_buffer_reserve(&t->body, len);
      }
      break;
    default:
      break;
  }
  return n;
}

/* libcurl opens and closes every socket of the handle through these two (C only, no Lua), so
 * that c->sockets always lists the open ones. Out of memory while listing: the socket is not
 * opened (libcurl reports a connect failure) rather than left unwatched. */
static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *addr) {
  smm_client *c = clientp;
  curl_socket_t fd;
  if (c->sockets_len == c->sockets_cap) {
    int cap = c->sockets_cap ? c->sockets_cap * 2 : 8;
    int *p = realloc(c->sockets, (size_t)cap * sizeof(*p));
    if (p == NULL) return CURL_SOCKET_BAD;
    c->sockets = p;
    c->sockets_cap = cap;
  }
  fd = socket(addr->family, addr->socktype, addr->protocol);
  if (fd != CURL_SOCKET_BAD) c->sockets[c->sockets_len++] = fd;
  return fd;
}

static int close_socket_cb(void *clientp, curl_socket_t fd) {
  smm_client *c = clientp;
  int i;
  for (i = 0; i < c->sockets_len; i++)
    if (c->sockets[i] == fd) {
      c->sockets[i] = c->sockets[--c->sockets_len];
      break;
    }
  return close(fd);
}

/* ------------------------------------------------------------------------------------------ */
/* The easy handle pool.                                                                       */

static CURLcode configure_easy(smm_client *c, smm_transfer *t) {
  CURL *e = t->easy;
  CURLcode r = CURLE_OK;
#define SET(opt, val) \
  if (r == CURLE_OK) r = curl_easy_setopt(e, opt, val)
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_ERRORBUFFER, t->errbuf);
  SET(CURLOPT_WRITEFUNCTION, write_cb);
  SET(CURLOPT_WRITEDATA, (void *)t);
  SET(CURLOPT_HEADERFUNCTION, header_cb);
  SET(CURLOPT_HEADERDATA, (void *)t);
  SET(CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
  SET(CURLOPT_OPENSOCKETDATA, (void *)c);
  SET(CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
  SET(CURLOPT_CLOSESOCKETDATA, (void *)c);
  SET(CURLOPT_TIMEOUT_MS, c->timeout_ms);
  SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
  /* No proxy option means no proxy: "" also stops libcurl from picking one up from the
   * environment (http_proxy...), which would silently route the API key elsewhere. */
  SET(CURLOPT_PROXY, c->proxy ? c->proxy : "");
  /* With no proxy, no_proxy/NO_PROXY mean nothing: "" spares libcurl looking them up in the
   * environment for every transfer. With a proxy, the environment's no_proxy still applies. */
  if (!c->proxy) SET(CURLOPT_NOPROXY, "");
  SET(CURLOPT_SSL_VERIFYPEER, c->ssl_verify ? 1L : 0L);
  SET(CURLOPT_SSL_VERIFYHOST, c->ssl_verify ? 2L : 0L);
  if (c->cainfo) SET(CURLOPT_CAINFO, c->cainfo);
  if (!c->ua_header) SET(CURLOPT_USERAGENT, c->user_agent);
  SET(CURLOPT_HTTPHEADER, c->header_lists[0]); /* t->headers = 0 */
  /* The header lines go to the panel only, never into a proxy's CONNECT request: one of them
   * may carry the API key (a dialect's X-Api-Key or Authorization line). */
  SET(CURLOPT_HEADEROPT, CURLHEADER_SEPARATE);
  /* "gzip", not "" (every encoding libcurl knows, "deflate, gzip, br, zstd"): panels
   * compress JSON with gzip if at all, the longer line costs every request, and libcurl still
   * decodes any encoding it supports (deflate, br...) when an answer comes with one anyway,
   * asked for or not. Whether the line is sent is up to the header lists (smm_client_new). */
  SET(CURLOPT_ACCEPT_ENCODING, "gzip");
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  /* Never follow redirects: the API key is in the body. The 3xx comes back with location. */
  SET(CURLOPT_FOLLOWLOCATION, 0L);
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  SET(CURLOPT_POST, 1L);
#undef SET
  return r;
}

/* Makes sure pool[0..n-1] exist. Raises on failure (nothing is in flight when called). */
static void ensure_pool(lua_State *L, smm_client *c, int n) {
  if (n > c->pool_cap) {
    smm_transfer **p = realloc(c->pool, (size_t)n * sizeof(*p));
    if (p == NULL) luaL_error(L, "smm.core: out of memory");
    c->pool = p;
    c->pool_cap = n;
  }
  while (c->pool_len < n) {
    smm_transfer *t = calloc(1, sizeof(*t));
    CURLcode r;
    if (t == NULL) luaL_error(L, "smm.core: out of memory");
    t->easy = curl_easy_init();
    if (t->easy == NULL) {
      free(t);
      luaL_error(L, "smm.core: curl_easy_init failed");
    }
    c->pool[c->pool_len++] = t; /* owned by the handle from here on */
    t->max_body = c->max_body;
    r = configure_easy(c, t);
    if (r != CURLE_OK) luaL_error(L, "smm.core: curl setup failed: %s", curl_easy_strerror(r));
  }
}

static void client_free(smm_client *c) {
  int i;
  smm_multi_abort_inflight(c);
  for (i = 0; i < c->pool_len; i++) {
    smm_transfer *t = c->pool[i];
    curl_easy_cleanup(t->easy);
    curl_url_cleanup(t->uh); /* after the easy handle that used it */
    free(t->url);
    smm_buffer_free(&t->body);
    smm_buffer_free(&t->location);
    smm_buffer_free(&t->retry_after);
    free(t);
  }
  free(c->pool);
  c->pool = NULL;
  c->pool_len = c->pool_cap = 0;
  if (c->multi) curl_multi_cleanup(c->multi);
  c->multi = NULL;
  for (i = 0; i < SMM_HEADER_LISTS; i++) { /* after the easy handles that used them */
    curl_slist_free_all(c->header_lists[i]);
    c->header_lists[i] = NULL;
  }
  free(c->sockets); /* after the multi handle, which closed the last of them */
  c->sockets = NULL;
  c->sockets_len = c->sockets_cap = 0;
  smm_buffer_free(&c->form);
  free(c->proxy);
  free(c->cainfo);
  free(c->user_agent);
  c->proxy = c->cainfo = c->user_agent = NULL;
  c->closed = 1;
}

/* ------------------------------------------------------------------------------------------ */
/* core.new                                                                                    */

/* Appends a copy of line to *list. -1 when out of memory (the list stays as it was). */
static int append_line(struct curl_slist **list, const char *line) {
  struct curl_slist *h = curl_slist_append(*list, line);
  if (h == NULL) return -1;
  *list = h;
  return 0;
}

static char *dup_string(lua_State *L, const char *s) {
  size_t n;
  char *p;
  if (s == NULL) return NULL;
  n = strlen(s) + 1;
  p = malloc(n);
  if (p == NULL) luaL_error(L, "smm.core: out of memory");
  memcpy(p, s, n);
  return p;
}

int smm_client_new(lua_State *L) {
  smm_options o;
  smm_client *c;
  char *ua_line = NULL;
  int i, failed = 0;
  smm_options_read(L, 1, &o); /* raises on bad options: nothing allocated yet */
  lua_settop(L, 1);

  /* The userdata and its __gc come first: from here on, whatever fails, close frees it. */
  c = (smm_client *)lua_newuserdata(L, sizeof(*c));
  memset(c, 0, sizeof(*c));
  c->closed = 1; /* until fully set up: a half-built handle must not be usable */
  luaL_setmetatable(L, SMM_HANDLE_MT);

  /* A private cjson instance; its decode function lives in the user value table, with the
   * schemas already checked (weak keys: see check_schema). */
  lua_createtable(L, 2, 0);
  smm_push_decoder(L);
  lua_rawseti(L, -2, 1); /* uv[1] = decode */
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawseti(L, -2, 2); /* uv[2] = { [schema] = true } */
  smm_setuservalue(L, 2);

  c->timeout_ms = o.timeout_ms;
  c->connect_timeout_ms = o.connect_timeout_ms;
  c->ssl_verify = o.ssl_verify;
  c->max_body = o.max_body;
  c->concurrency = o.concurrency;
  c->proxy = dup_string(L, o.proxy);
  c->cainfo = dup_string(L, o.cainfo);
  c->user_agent = dup_string(L, o.user_agent);

  /* Header lines instead of libcurl's own: each of its own it aprintf()s for every request
   * (~2k instructions apiece through its slow printf), a line of the list it copies as is.
   * The bytes sent are the same ("Name: value"), only later in the request. A request uses
   * one of four lists (SMM_HEADERS_*), each made here once:
   * - "User-Agent: x" instead of CURLOPT_USERAGENT. Not through a proxy: CURLOPT_USERAGENT
   *   also goes into the CONNECT request, header lines do not. Not for a value libcurl would
   *   treat as blank (it drops a line with nothing after the colon): only one that starts
   *   with a visible character.
   * - "Accept-Encoding: gzip" for a request whose answer can be large (the service list,
   *   statuses of many orders): what CURLOPT_ACCEPT_ENCODING "gzip" would print. For the
   *   others "Accept-Encoding:" (empty), which sends nothing and stops libcurl from sending
   *   its own: compressing a 40-byte balance makes it larger, and the line costs every request
   *   ~2.4k instructions. CURLOPT_ACCEPT_ENCODING stays set, so a compressed answer is decoded
   *   either way.
   * - "Expect:" (empty) for a large body: removes the 100-continue wait libcurl would add.
   * No Content-Type: libcurl sends application/x-www-form-urlencoded for CURLOPT_POSTFIELDS. */
  /* The extra lines of the option 'headers' (see below), fetched before ua_line is allocated:
   * pushing may raise (out of memory), and ua_line would leak. */
  if (o.headers > 0) {
    lua_pushliteral(L, "headers");
    lua_rawget(L, 1); /* the options table, checked by smm_options_read */
    if (!lua_istable(L, -1)) o.headers = 0; /* changed since by a finalizer: no lines */
  } else {
    lua_pushnil(L); /* none: nothing is read from it */
  }
  c->ua_header = c->proxy == NULL && c->user_agent[0] > ' ' && c->user_agent[0] < 127;
  if (c->ua_header) {
    size_t n = strlen(c->user_agent);
    ua_line = malloc(n + 13);
    if (ua_line == NULL) luaL_error(L, "smm.core: out of memory");
    memcpy(ua_line, "User-Agent: ", 12);
    memcpy(ua_line + 12, c->user_agent, n + 1);
  }
  /* The option 'headers' (checked by options.c: lines "Name: value"): the caller's extra lines
   * go into every list, after libcurl's. smm.new puts a panel dialect's key header there
   * (X-Api-Key, Authorization: Bearer): fixed for the handle's life, so made once here. The
   * lines are copied into the lists (freed with them); nothing below raises before the lists
   * are owned by c. */
  for (i = 0; i < SMM_HEADER_LISTS && !failed; i++) { /* each list stays owned by c */
    struct curl_slist **list = &c->header_lists[i];
    const char *encoding = i & SMM_HEADERS_GZIP ? "Accept-Encoding: gzip" : "Accept-Encoding:";
    int h;
    failed = (ua_line != NULL && append_line(list, ua_line) != 0) ||
             append_line(list, encoding) != 0 ||
             ((i & SMM_HEADERS_EXPECT_OFF) && append_line(list, "Expect:") != 0);
    for (h = 1; h <= o.headers && !failed; h++) {
      lua_rawgeti(L, -1, h); /* checked strings, unless a finalizer changed them since */
      failed = lua_type(L, -1) != LUA_TSTRING || append_line(list, lua_tostring(L, -1)) != 0;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  free(ua_line);
  if (failed) luaL_error(L, "smm.core: out of memory");

  c->multi = curl_multi_init();
  if (c->multi == NULL) luaL_error(L, "smm.core: curl_multi_init failed");
  ensure_pool(L, c, 1);
  c->closed = 0;
  return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Methods.                                                                                    */

static smm_client *check_open(lua_State *L) {
  smm_client *c = (smm_client *)luaL_checkudata(L, 1, SMM_HANDLE_MT);
  if (c->closed || c->close_pending) luaL_error(L, "smm.core: handle is closed");
  return c;
}

/* A request from Lua code that runs inside this handle's own request (a __gc finalizer) is
 * refused: it would reuse the transfers, buffers and multi handle the outer one is using. A
 * request after an interrupt is refused too: nothing new is sent (see interrupt.c). */
static smm_client *check_idle(lua_State *L) {
  smm_client *c = check_open(L);
  if (c->busy)
    luaL_error(L, "smm.core: handle is busy: it was used from inside its own request (a __gc "
                  "finalizer?); use another handle there");
  if (smm_interrupted()) luaL_error(L, "smm.core: interrupted (nothing was sent)");
  return c;
}

/* Runs body (pushed by the caller before c->busy was set: on 5.1 pushing a C function
 * allocates, and may run a finalizer) on the stack's arguments, under lua_pcall. Whatever
 * happens the handle leaves busy; transfers an error left in the multi handle are removed; a
 * close asked for meanwhile is done. Then the error, if any, goes on. */
static int guarded_call(lua_State *L, smm_client *c) {
  int status;
  c->busy = 1;
  lua_insert(L, 1);
  status = lua_pcall(L, lua_gettop(L) - 1, 1, 0);
  c->busy = 0;
  if (status != 0) {
    smm_multi_abort_inflight(c);
    smm_buffer_reset(&c->form);
  }
  if (c->close_pending) client_free(c);
  if (status != 0) return lua_error(L);
  return 1;
}

/* Whether the schema at idx is valid. Each schema table is checked the first time this handle
 * sees it, and remembered in uv[2]: schemas are constants (a changed one is not checked again),
 * and checking one costs more than the rest of reading a small answer. */
static int check_schema(lua_State *L, int idx) {
  int ok;
  idx = lua_absindex(L, idx);
  smm_getuservalue(L, 1);
  lua_rawgeti(L, -1, 2);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  ok = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!ok && smm_schema_valid(L, idx)) {
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    ok = 1;
  }
  lua_pop(L, 2);
  return ok;
}

/* ropts at idx: { idempotent = boolean, concurrency = n (request_many only), gzip = boolean,
 * idle = function (request_many only: see smm_multi_run),
 * schema = { field = "integer" | "money" | "boolean" | "text" } (see smm_decode_body),
 * schemas = { schema or false, ... } (request_many only: item i's answer gets schemas[i]) } */
static void read_ropts(lua_State *L, int idx, int many, smm_request_opts *o) {
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    if (name && strcmp(name, "idempotent") == 0) {
      if (lua_type(L, -1) != LUA_TBOOLEAN)
        luaL_error(L, "smm.core: request option 'idempotent' must be a boolean");
      o->idempotent = lua_toboolean(L, -1);
    } else if (name && many && strcmp(name, "concurrency") == 0) {
      lua_Number x = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
      if (!(x >= 1 && x <= SMM_MAX_CONCURRENCY) || (lua_Number)(int)x != x)
        luaL_error(L, "smm.core: request option 'concurrency' must be an integer from 1 to 256");
      o->concurrency = (int)x;
    } else if (name && strcmp(name, "schema") == 0) {
      if (!check_schema(L, -1))
        luaL_error(L, "smm.core: request option 'schema' must be a table of field names to "
                      "\"integer\", \"money\", \"boolean\" or \"text\"");
      o->schema = 1;
    } else if (name && many && strcmp(name, "schemas") == 0) {
      int ok = lua_type(L, -1) == LUA_TTABLE, list = lua_gettop(L);
      if (ok) {
        lua_pushnil(L);
        while (ok && lua_next(L, list) != 0) {
          ok = lua_type(L, -2) == LUA_TNUMBER &&
               (lua_type(L, -1) == LUA_TBOOLEAN ? !lua_toboolean(L, -1) : check_schema(L, -1));
          lua_pop(L, ok ? 1 : 2);
        }
      }
      if (!ok)
        luaL_error(L, "smm.core: request option 'schemas' must be a list of schemas or false");
      o->schemas = 1;
    } else if (name && many && strcmp(name, "idle") == 0) {
      if (lua_type(L, -1) != LUA_TFUNCTION)
        luaL_error(L, "smm.core: request option 'idle' must be a function");
    } else if (name && strcmp(name, "gzip") == 0) {
      if (lua_type(L, -1) != LUA_TBOOLEAN)
        luaL_error(L, "smm.core: request option 'gzip' must be a boolean");
      o->gzip = lua_toboolean(L, -1);
    } else {
      lua_pushvalue(L, -2);
      luaL_error(L, "smm.core: unknown request option '%s'",
                 name ? name : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
  }
}

/* Shared tail of request/request_many: stack = 1 handle, 2 url, 3 fields/list, 4 ropts,
 * 5 bodies (a table of strings; request: nil, the one body is in c->form), 6 results (a table;
 * request: a placeholder the result replaces). Pushes the decode function and runs. */
static void run(lua_State *L, smm_client *c, int n, smm_request_opts *o) {
  smm_getuservalue(L, 1);
  lua_rawgeti(L, -1, 1);
  lua_replace(L, -2); /* 7 = decode */
  if (o->concurrency > n) o->concurrency = n;
  smm_multi_abort_inflight(c);
  ensure_pool(L, c, o->concurrency);
  if (o->schemas || o->schema) {
    lua_getfield(L, 4, o->schemas ? "schemas" : "schema"); /* 8 */
  } else {
    lua_pushnil(L); /* 8: no schema */
  }
  if (lua_istable(L, 4)) {
    lua_getfield(L, 4, "idle"); /* 9: checked by read_ropts (request_many only) */
    if (lua_isfunction(L, -1)) o->idle_idx = lua_gettop(L);
  } else {
    lua_pushnil(L);
  }
  smm_multi_run(L, c, lua_tostring(L, 2), 5, n, o, 6, 7, o->schemas || o->schema ? 8 : 0);
  lua_pop(L, 3);
}

static int request_body(lua_State *L) {
  smm_client *c = (smm_client *)lua_touserdata(L, 1);
  smm_request_opts o = {1, 1, 0, 0, 0, 0};
  read_ropts(L, 4, 0, &o);
  lua_settop(L, 4);
  smm_form_encode(L, 3, &c->form, 0); /* the body: nothing else writes c->form until done */
  lua_pushnil(L); /* 5: no bodies table */
  lua_pushnil(L); /* 6: becomes the result */
  run(L, c, 1, &o);
  smm_buffer_reset(&c->form);
  lua_settop(L, 6);
  return 1;
}

static int request_many_body(lua_State *L) {
  smm_client *c = (smm_client *)lua_touserdata(L, 1);
  smm_request_opts o = {1, 0, 0, 0, 0, 0};
  int n, i;
  o.concurrency = c->concurrency;
  read_ropts(L, 4, 1, &o);
  lua_settop(L, 4);
  n = (int)lua_rawlen(L, 3);
  lua_createtable(L, n, 0); /* 5: bodies, all encoded before anything is sent */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, i);
    if (lua_type(L, -1) != LUA_TTABLE)
      luaL_error(L, "smm.core: request_many: item %d must be a table of fields, got %s", i,
                 luaL_typename(L, -1));
    smm_form_encode(L, lua_gettop(L), &c->form, i);
    lua_pushlstring(L, c->form.data ? c->form.data : "", c->form.len);
    lua_rawseti(L, 5, i);
    lua_pop(L, 1);
  }
  smm_buffer_reset(&c->form);
  lua_createtable(L, n, 0); /* 6: results */
  if (n > 0) run(L, c, n, &o);
  lua_pushvalue(L, 6);
  return 1;
}

/* handle:request(url, fields, ropts) and handle:request_many(url, items, ropts): the
 * arguments are checked here, with their positions in the messages, the rest runs guarded. */
static int start_request(lua_State *L, lua_CFunction body) {
  smm_client *c = check_idle(L);
  luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 4);
  lua_pushcfunction(L, body);
  return guarded_call(L, c);
}

static int client_request(lua_State *L) { return start_request(L, request_body); }

static int client_request_many(lua_State *L) { return start_request(L, request_many_body); }

static int client_close(lua_State *L) {
  smm_client *c = (smm_client *)luaL_checkudata(L, 1, SMM_HANDLE_MT);
  if (c->busy) { /* from inside its own request: freed when that request ends */
    c->close_pending = 1;
    return 0;
  }
  client_free(c); /* idempotent: everything freed is set to NULL */
  return 0;
}

static int client_tostring(lua_State *L) {
  smm_client *c = (smm_client *)luaL_checkudata(L, 1, SMM_HANDLE_MT);
  lua_pushfstring(L, "smm.core.handle: %p (%s)", (void *)c,
                  c->closed || c->close_pending ? "closed" : c->busy ? "busy" : "open");
  return 1;
}

void smm_client_open(lua_State *L, const luaL_Reg *extra) {
  /* request, request_many, close, and sleep and now from core.c (extra): a handle is
   * smm.transport.curl itself. */
  static const luaL_Reg methods[] = {{"request", client_request},
                                     {"request_many", client_request_many},
                                     {"close", client_close},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", client_close},
#if LUA_VERSION_NUM >= 504
                                  {"__close", client_close},
#endif
                                  {"__tostring", client_tostring},
                                  {NULL, NULL}};
  luaL_newmetatable(L, SMM_HANDLE_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  if (extra != NULL) luaL_setfuncs(L, extra, 0);
  lua_pushliteral(L, "curl");
  lua_setfield(L, -2, "name"); /* the transport's name, for tostring(client) */
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, SMM_HANDLE_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}
