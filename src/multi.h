/*
 * multi.h: running transfers (multi.c): one request or a list of them through the handle's
 * curl multi handle. Used by client.c.
 */
#ifndef SMM_MULTI_H
#define SMM_MULTI_H

#include "handle.h"

/* A request's options (the ropts table of request/request_many, read by client.c). */
typedef struct smm_request_opts {
  int idempotent;  /* safe on a reused connection (else CURLOPT_FRESH_CONNECT) */
  int concurrency; /* transfers in flight at most */
  int gzip;        /* ask for a compressed answer: only worth it for a large one */
  int schema;      /* a schema was given (see smm_decode_body) */
  int schemas;     /* request_many: a schema per item was given (ropts.schemas) */
  int idle_idx;    /* request_many: stack index of ropts.idle (0: none), see smm_multi_run */
} smm_request_opts;

/* Runs `n` transfers of the bodies in the table at bodies_idx (strings 1..n) to url,
 * o->concurrency at a time, storing result i at results_idx[i]. nil at bodies_idx: a single
 * request (n = 1) of the body in c->form, whose result then replaces the stack value at
 * results_idx. schema_idx: 0, a schema for every answer, or (o->schemas) a table of them by
 * item (false: none). Raises only for internal curl errors (out of memory), after removing every
 * transfer from the multi handle.
 * o->idle_idx: a Lua function called, under lua_pcall and between curl calls, whenever the run
 * would wait for the network with every request in flight sent; it returns true while it has more to do (the run then only looks
 * at the network without waiting, and calls it again), false or nothing when done. A caller
 * does its own work there while the answers are on their way (smm.book's sync writes one page
 * while the next one's statuses travel). An error it raises ends its calls for this run and is
 * dropped: callers catch their own. */
void smm_multi_run(lua_State *L, smm_client *c, const char *url, int bodies_idx, int n,
                   const smm_request_opts *o, int results_idx, int decode_idx, int schema_idx);

/* Takes every transfer out of the multi handle. A transfer can be left in it only when a Lua
 * error (out of memory while building a result) escaped smm_multi_run. */
void smm_multi_abort_inflight(smm_client *c);

#endif
