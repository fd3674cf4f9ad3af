/*
 * handle.h: the data of a handle userdata ("smm.core.handle"): smm_client and the transfers
 * it pools. Made and freed by client.c, run by multi.c, read into result tables by result.c;
 * no functions here. Everything C-allocated hangs off smm_client, so close/__gc frees it
 * whatever happened.
 */
#ifndef SMM_HANDLE_H
#define SMM_HANDLE_H

#include <curl/curl.h>

#include "buffer.h"
#include "compat.h"

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

#endif
