/*
 * multi.c: runs transfers. Every transfer, single or parallel, goes through the handle's one
 * CURLM multi handle, so all easy handles share its connection cache: keep-alive works across
 * request calls and across request_many batches. At most `conc` transfers are in flight; a
 * finished one frees its easy handle for the next body in the list.
 *
 * No Lua is called while curl runs except to build the result table of a transfer that has
 * already finished and been removed from the multi handle, and the caller's idle function
 * (ropts.idle, under lua_pcall: nothing it raises can cross this loop). If building a result
 * raises (out of memory), the transfers still added are removed at the start of the next run
 * or by close/__gc.
 *
 * A connection with unread bytes is never reused. A panel or proxy can leave a second answer
 * nobody asked for on a keep-alive connection; when it arrives after libcurl has read the
 * first answer to its end, libcurl 7.88 keeps the connection and hands those bytes to the next
 * request as its answer (another order's status). So before a transfer starts with nothing
 * in flight (every single request, the first of a request_many, each one at concurrency 1),
 * the handle's sockets are polled (unread_bytes), and bytes waiting on any of them drop the
 * whole connection cache. Limits: a stray answer that arrives after the next request was sent
 * cannot be told from its answer; within one request_many at concurrency > 1 the sockets of
 * transfers in flight are readable for good reasons, so there the check waits for the next
 * run.
 *
 * Interrupts (interrupt.c): after a signal nothing new starts (those items fail, unsent); at
 * abort_at, transfers in flight are removed and fail as "interrupted". While signals are
 * caught the loop waits in slices of SLICE_MS, so that an abort is seen even when the signal
 * went to another thread and did not interrupt the poll.
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "interrupt.h"
#include "multi.h"
#include "result.h"

/* Points the easy handle at url, doing nothing when it is the URL it already has. A URL
 * string makes libcurl parse it and rebuild it (curl_url_get, through its slow printf) for
 * every transfer: ~10k instructions a request. So the URL is parsed here once, with the flags
 * libcurl itself uses (CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME; this code sets neither
 * CURLOPT_DISALLOW_USERNAME_IN_URL nor CURLOPT_PATH_AS_IS), and handed over as CURLOPT_CURLU,
 * which libcurl only duplicates per transfer. CURLOPT_URL is set to the same string too. A URL
 * this parse refuses goes without CURLU: libcurl then parses the string itself and fails as it
 * always did. */
static CURLcode set_url(smm_transfer *t, const char *url) {
  size_t n;
  char *copy;
  CURLU *uh;
  CURLcode r;
  if (t->url != NULL && strcmp(t->url, url) == 0) return CURLE_OK;
  n = strlen(url) + 1;
  copy = malloc(n);
  if (copy == NULL) return CURLE_OUT_OF_MEMORY;
  memcpy(copy, url, n);
  uh = curl_url();
  if (uh != NULL &&
      curl_url_set(uh, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) !=
          CURLUE_OK) {
    curl_url_cleanup(uh);
    uh = NULL;
  }
  /* Until both options are set the handle's URL is unknown: t->url = NULL redoes it all. */
  free(t->url);
  t->url = NULL;
  r = curl_easy_setopt(t->easy, CURLOPT_CURLU, uh);
  if (r != CURLE_OK) { /* libcurl still has the previous t->uh */
    curl_url_cleanup(uh);
    free(copy);
    return r;
  }
  curl_url_cleanup(t->uh); /* libcurl no longer refers to it */
  t->uh = uh;
  r = curl_easy_setopt(t->easy, CURLOPT_URL, url);
  if (r != CURLE_OK) {
    free(copy);
    return r;
  }
  t->url = copy;
  return CURLE_OK;
}

/* idempotent = false forces a new connection for this transfer (CURLOPT_FRESH_CONNECT). When
 * a reused keep-alive connection turns out to be dead (the panel closed it while idle), libcurl
 * silently re-sends the request on a new connection. That is right for a status query but can
 * place an order (action=add) twice: the first copy may have reached the panel before the
 * connection died. On a fresh connection libcurl never retries. The flag is set again for
 * every transfer, so it is back to 0 for the next idempotent one. */
static CURLcode start(smm_client *c, smm_transfer *t, const char *url, const char *body,
                      size_t len, const smm_request_opts *o, int index, int fresh) {
  CURL *e = t->easy;
  CURLcode r;
  int headers =
      (len >= SMM_EXPECT_MIN ? SMM_HEADERS_EXPECT_OFF : 0) | (o->gzip ? SMM_HEADERS_GZIP : 0);
  CURLMcode mc;
  smm_buffer_reset(&t->body);
  smm_buffer_reset(&t->location);
  smm_buffer_reset(&t->retry_after);
  t->too_large = 0;
  t->interrupted = 0;
  t->errbuf[0] = '\0';
  t->index = index;
  t->max_body = c->max_body;
  r = set_url(t, url);
  if (r == CURLE_OK) r = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  /* Not copied: the body is a Lua string anchored on the stack, or c->form, for the whole run. */
  if (r == CURLE_OK) r = curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
  if (r == CURLE_OK) r = curl_easy_setopt(e, CURLOPT_FRESH_CONNECT,
                                             o->idempotent && !fresh ? 0L : 1L);
  if (r == CURLE_OK && t->headers != headers) {
    r = curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->header_lists[headers]);
    if (r == CURLE_OK) t->headers = headers;
  }
  if (r != CURLE_OK) return r;
  mc = curl_multi_add_handle(c->multi, e);
  if (mc != CURLM_OK) return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
  t->in_multi = 1;
  return CURLE_OK;
}

/* Takes every transfer out of the multi handle. A transfer can be left in it only when a Lua
 * error (out of memory while building a result) escaped smm_multi_run. */
void smm_multi_abort_inflight(smm_client *c) {
  int i;
  for (i = 0; i < c->pool_len; i++) {
    smm_transfer *t = c->pool[i];
    if (t->in_multi) {
      curl_multi_remove_handle(c->multi, t->easy);
      t->in_multi = 0;
    }
  }
}

#define SLICE_MS 100

/* 1 when bytes (or an end of stream) wait unread on one of the handle's sockets. */
static int unread_bytes(smm_client *c) {
  struct pollfd fds[16];
  int i = 0;
  while (i < c->sockets_len) {
    int n = 0, k;
    for (; i < c->sockets_len && n < 16; i++, n++) {
      fds[n].fd = c->sockets[i];
      fds[n].events = POLLIN;
      fds[n].revents = 0;
    }
    if (poll(fds, (nfds_t)n, 0) > 0)
      for (k = 0; k < n; k++)
        if (fds[k].revents != 0) return 1;
  }
  return 0;
}

/* Drops every cached connection (a new multi handle), nothing being in flight. */
static void reset_connections(smm_client *c) {
  CURLM *m = curl_multi_init();
  if (m == NULL) return; /* out of memory: kept, every transfer of this run is fresh anyway */
  curl_multi_cleanup(c->multi); /* closes its connections */
  c->multi = m;
}

/* With nothing in flight, every socket of the handle is an idle connection: bytes waiting on
 * one drop the connection cache. Returns 1 when the next transfer must take a fresh
 * connection (the reset failed). With transfers in flight the sockets cannot be told apart
 * (an answer arriving makes its socket readable): no check, see the header comment. */
static int avoid_reuse(smm_client *c, int active) {
  if (active > 0 || c->sockets_len == 0 || !unread_bytes(c)) return 0;
  reset_connections(c);
  return c->sockets_len > 0;
}

/* The result of a transfer a signal stopped (started = 0: never started). */
static void interrupted_result(smm_transfer *t, int index) {
  t->interrupted = 1;
  t->index = index;
}

/* 1 when every transfer in flight has sent its request (libcurl records the pretransfer time
 * once the request is out: the DO phase done, which sends the head and a small body). Until
 * then the idle function waits: on a new connection the request leaves only at a later
 * curl_multi_perform, after the connect, and an idle step run first (a book's commit, a few
 * ms) would hold every request of the round back by that much. */
static int all_sent(smm_client *c, int conc) {
  int i;
  for (i = 0; i < conc; i++) {
    curl_off_t pre = 0;
    smm_transfer *t = c->pool[i];
    if (t->in_multi &&
        (curl_easy_getinfo(t->easy, CURLINFO_PRETRANSFER_TIME_T, &pre) != CURLE_OK || pre <= 0))
      return 0;
  }
  return 1;
}

static smm_transfer *idle_transfer(smm_client *c, int conc) {
  int i;
  for (i = 0; i < conc; i++)
    if (!c->pool[i]->in_multi) return c->pool[i];
  return NULL;
}

/* Pushes the result of transfer t, its answer read with its schema (see smm_multi_run). */
static void push_result(lua_State *L, smm_transfer *t, CURLcode r, int started, int decode_idx,
                        int schema_idx, const smm_request_opts *o) {
  if (schema_idx != 0 && o->schemas) {
    lua_rawgeti(L, schema_idx, t->index + 1);
    smm_push_result(L, t, r, started, decode_idx, lua_istable(L, -1) ? lua_gettop(L) : 0);
    lua_remove(L, -2); /* the schema */
  } else {
    smm_push_result(L, t, r, started, decode_idx, schema_idx);
  }
}

/* Pops the result at the top of the stack into its place. */
static void store_result(lua_State *L, int results_idx, int index, int single) {
  if (single)
    lua_replace(L, results_idx);
  else
    lua_rawseti(L, results_idx, index + 1);
}

void smm_multi_run(lua_State *L, smm_client *c, const char *url, int bodies_idx, int n,
                   const smm_request_opts *o, int results_idx, int decode_idx, int schema_idx) {
  int next = 0, active = 0, conc = o->concurrency;
  /* nil at bodies_idx: a single request, whose body is c->form and whose result replaces the
   * value at results_idx (no strings or tables to allocate for every request). */
  int single = lua_isnil(L, bodies_idx);
  int idle = o->idle_idx; /* 0 once the idle function is done (or failed) */
  CURLMcode mc = CURLM_OK;
  while (next < n || active > 0) {
    CURLMsg *msg;
    int running = 0, left = 0, finished = 0;
    smm_transfer *t;

    /* After a signal nothing new is sent: the items left fail, unsent. */
    while (next < n && smm_interrupted() && (t = idle_transfer(c, conc)) != NULL) {
      interrupted_result(t, next++);
      push_result(L, t, CURLE_ABORTED_BY_CALLBACK, 0, decode_idx, schema_idx, o);
      store_result(L, results_idx, t->index, single);
    }
    while (active < conc && next < n && (t = idle_transfer(c, conc)) != NULL) {
      const char *body;
      size_t len;
      CURLcode r;
      int fresh = avoid_reuse(c, active);
      if (single) {
        body = c->form.data ? c->form.data : "";
        len = c->form.len;
      } else {
        lua_rawgeti(L, bodies_idx, next + 1);
        body = lua_tolstring(L, -1, &len);
        lua_pop(L, 1); /* still referenced by the bodies table */
      }
      r = start(c, t, url, body, len, o, next, fresh);
      next++;
      if (r == CURLE_OK) {
        active++;
      } else { /* could not even start: nothing was sent */
        push_result(L, t, r, 0, decode_idx, schema_idx, o);
        store_result(L, results_idx, t->index, single);
      }
    }
    if (active == 0) continue;

    if (smm_interrupt_aborts()) { /* every transfer in flight fails as interrupted */
      int i;
      for (i = 0; i < conc; i++) {
        t = c->pool[i];
        if (!t->in_multi) continue;
        curl_multi_remove_handle(c->multi, t->easy);
        t->in_multi = 0;
        active--;
        interrupted_result(t, t->index);
        push_result(L, t, CURLE_ABORTED_BY_CALLBACK, 1, decode_idx, schema_idx, o);
        store_result(L, results_idx, t->index, single);
      }
      continue;
    }

    mc = curl_multi_perform(c->multi, &running);
    if (mc != CURLM_OK) goto fatal;

    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
      CURL *e = msg->easy_handle;
      CURLcode r = msg->data.result; /* read before remove_handle invalidates msg */
      int i;
      if (msg->msg != CURLMSG_DONE) continue;
      for (i = 0, t = NULL; i < c->pool_len; i++) /* the transfer of e: a few pointers */
        if (c->pool[i]->easy == e) {
          t = c->pool[i];
          break;
        }
      if (t == NULL) continue; /* not ours: cannot happen */
      curl_multi_remove_handle(c->multi, e);
      t->in_multi = 0;
      active--;
      finished = 1;
      push_result(L, t, r, 1, decode_idx, schema_idx, o);
      store_result(L, results_idx, t->index, single);
    }

    /* A slot just freed is refilled at once: polling first would leave it idle until some
     * other transfer makes network progress. */
    if (active > 0 && running > 0 && !(finished && next < n)) {
      int wait_ms = smm_catching_interrupts() ? SLICE_MS : 1000;
      if (idle && all_sent(c, conc)) {
        lua_pushvalue(L, idle);
        if (lua_pcall(L, 0, 1, 0) != 0 || !lua_toboolean(L, -1))
          idle = 0; /* done, or failed: its error is dropped (see multi.h) */
        else
          wait_ms = 0; /* more to do: only look at the network */
        lua_pop(L, 1);
      }
      mc = curl_multi_poll(c->multi, NULL, 0, wait_ms, NULL);
      if (mc != CURLM_OK) goto fatal;
    }
  }
  return;

fatal:
  smm_multi_abort_inflight(c);
  luaL_error(L, "smm.core: curl multi error: %s", curl_multi_strerror(mc));
}
