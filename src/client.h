/*
 * client.h: the handle userdata ("smm.core.handle") shared by client.c (creation, options,
 * curl easy configuration, result tables), multi.c (running transfers), form.c and decode.c.
 * Everything C-allocated hangs off smm_client, so close/__gc frees it whatever happened.
 */
#ifndef SMM_CLIENT_H
#define SMM_CLIENT_H

#include <curl/curl.h>

#include "buffer.h"
#include "compat.h"
#include "decode.h"
#include "form.h"

#define SMM_VERSION "0.1.0"
#define SMM_HANDLE_MT "smm.core.handle"
#define SMM_MAX_CONCURRENCY 256
/* Bodies from this size on are sent with "Expect:" (no 100-continue wait). libcurl adds
 * "Expect: 100-continue" above 1 KiB (older) or 1 MiB (newer versions); smaller bodies are
 * sent without it, which costs less per request. */
#define SMM_EXPECT_MIN 1024

/* The header list a transfer needs, an index into smm_client.header_lists: a flag for a large
 * body ("Expect:", no 100-continue wait) and one for an answer worth compressing
 * ("Accept-Encoding: gzip"). See smm_client_new. */
#define SMM_HEADERS_EXPECT_OFF 1
#define SMM_HEADERS_GZIP 2
#define SMM_HEADER_LISTS 4

struct smm_client;

/* One reusable curl easy handle plus the C buffers its callbacks write into. */
typedef struct smm_transfer {
  CURL *easy;
  smm_buffer body;        /* (decoded) response body of the current/last answer */
  smm_buffer location;    /* Location header of the last response seen */
  smm_buffer retry_after; /* raw Retry-After header value of the last response seen */
  size_t max_body;
  int too_large;    /* set by the write callback when max_body was exceeded */
  int interrupted;  /* aborted by a signal (interrupt.c), or never started because of one */
  int in_multi;     /* currently added to the client's multi handle */
  int index;        /* 0-based slot of the result this transfer produces */
  int headers;      /* CURLOPT_HTTPHEADER is c->header_lists[headers] */
  char *url;        /* the URL last given to this easy handle (CURLOPT_URL), or NULL */
  CURLU *uh;        /* the same, parsed, as given to CURLOPT_CURLU (NULL: not parsed) */
  char errbuf[CURL_ERROR_SIZE];
} smm_transfer;

typedef struct smm_client {
  CURLM *multi;             /* owns the connection cache shared by every transfer */
  smm_transfer **pool;      /* easy handles, created on demand, pool[0] for single requests */
  int pool_len, pool_cap;
  struct curl_slist *header_lists[SMM_HEADER_LISTS]; /* by SMM_HEADERS_* (see smm_client_new) */
  int ua_header;            /* the user agent goes as a CURLOPT_HTTPHEADER line, not USERAGENT */
  smm_buffer form;          /* scratch space for form encoding */
  long timeout_ms, connect_timeout_ms;
  char *proxy, *cainfo, *user_agent;
  int ssl_verify;
  size_t max_body;
  int concurrency;
  int closed;
  /* Lua code can run in the middle of a request (a __gc finalizer, run by an allocation while
   * a result table is built or an answer decoded). busy refuses a request made from there (it
   * would take the transfers, buffers and multi handle from under the outer one); a close made
   * from there only sets close_pending, and the outer request frees the handle when it ends. */
  int busy;
  int close_pending;
  /* Every socket libcurl opened for this handle and has not closed (its open/close socket
   * callbacks): before a transfer starts, any of them with bytes waiting means an idle
   * connection holds an answer nobody asked for (see multi.c, unread_bytes). */
  int *sockets;
  int sockets_len, sockets_cap;
} smm_client;

/* client.c */
int smm_client_open(lua_State *L);   /* registers the metatable (called by luaopen) */
int smm_handle_sleep(lua_State *L);  /* handle:sleep(ms) (core.c) */
int smm_now(lua_State *L);           /* core.now() and handle:now() (core.c) */
int smm_client_new(lua_State *L);    /* core.new */
void smm_client_ensure_pool(lua_State *L, smm_client *c, int n);
void smm_client_abort_inflight(smm_client *c);
/* Pushes the result table of a finished transfer (started = 0: it could not be started). */
void smm_push_result(lua_State *L, smm_transfer *t, CURLcode code, int started,
                     int decode_idx, int schema_idx);

/* A request's options (the ropts table of request/request_many). */
typedef struct smm_request_opts {
  int idempotent;  /* safe on a reused connection (else CURLOPT_FRESH_CONNECT) */
  int concurrency; /* transfers in flight at most */
  int gzip;        /* ask for a compressed answer: only worth it for a large one */
  int schema;      /* a schema was given (see smm_decode_body) */
  int schemas;     /* request_many: a schema per item was given (ropts.schemas) */
} smm_request_opts;

/* multi.c: drops every cached connection (a new multi handle), nothing being in flight. */
void smm_client_reset_connections(smm_client *c);

/* interrupt.c (see its header comment): signals caught by core.catch_interrupts. */
void smm_interrupt_register(lua_State *L); /* sets catch_interrupts, interrupts on the table on top */
int smm_interrupted(void);                 /* signals caught so far (0 when not catching) */
int smm_interrupt_aborts(void);            /* 1 when transfers in flight are to be aborted */
int smm_catching_interrupts(void);         /* 1 once catch_interrupts was called */

/* multi.c: runs `n` transfers of the bodies in the table at bodies_idx (strings 1..n) to url,
 * o->concurrency at a time, storing result i at results_idx[i]. nil at bodies_idx: a single
 * request (n = 1) of the body in c->form, whose result then replaces the stack value at
 * results_idx. schema_idx: 0, a schema for every answer, or (o->schemas) a table of them by
 * item (false: none). Raises only for internal curl errors (out of memory), after removing every
 * transfer from the multi handle. */
void smm_multi_run(lua_State *L, smm_client *c, const char *url, int bodies_idx, int n,
                   const smm_request_opts *o, int results_idx, int decode_idx, int schema_idx);

/* form.c, decode.c: see internal.h. */

#endif
