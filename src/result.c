/*
 * result.c: the result table of a finished transfer: time, status, json (decode.c) or body,
 * retry_after, location, content_type for an answer; failure, message, code and sent for a
 * transfer that failed. multi.c calls it once a transfer is out of the multi handle.
 *
 * sent is the fact the library's promise of one outcome per add stands on: it is false only
 * when libcurl provably sent nothing (provably_unsent, never_sent); every unknown case says
 * sent, so that a failed add is ambiguous rather than placed twice.
 */
#include <stdio.h>

#include "decode.h"
#include "result.h"

static int is_tls_failure(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
      return 1;
    default:
      return 0;
  }
}

/* sent = false only when the request provably never left this machine: curl failed before
 * or while connecting (resolve, connect, TLS handshake, a timeout in those phases, a URL it
 * refused), AND it reports zero request bytes issued AND it never reached the pre-transfer
 * point. Anything else, including every unknown case, is sent = true: for a non-idempotent
 * "add" a false "not sent" would invite a second order. */
static int provably_unsent(CURL *e, CURLcode code) {
  long request_size = 1;
  curl_off_t pretransfer = 1;
  switch (code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
      break;
    default:
      if (!is_tls_failure(code)) return 0;
  }
  if (curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &request_size) != CURLE_OK) return 0;
  if (curl_easy_getinfo(e, CURLINFO_PRETRANSFER_TIME_T, &pretransfer) != CURLE_OK) return 0;
  return request_size == 0 && pretransfer == 0;
}

/* An aborted transfer left nothing on the wire: libcurl had not reached the point of sending
 * (pretransfer, zeroed when a transfer starts) nor counted a request byte. Values left from
 * the handle's previous transfer only ever say "sent". */
static int never_sent(CURL *e) {
  long request_size = 1;
  curl_off_t pretransfer = 1;
  if (curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &request_size) != CURLE_OK) return 0;
  if (curl_easy_getinfo(e, CURLINFO_PRETRANSFER_TIME_T, &pretransfer) != CURLE_OK) return 0;
  return request_size == 0 && pretransfer == 0;
}

static const char *failure_kind(smm_transfer *t, CURLcode code) {
  if (t->interrupted) return "interrupted";
  if (code == CURLE_OPERATION_TIMEDOUT) return "timeout";
  if (t->too_large) return "too_large";
  if (is_tls_failure(code)) return "tls";
  return "network";
}

static int parse_seconds(const smm_buffer *b, lua_Integer *out) {
  size_t i;
  lua_Integer v = 0;
  if (b->len == 0 || b->len > 12) return 0;
  for (i = 0; i < b->len; i++) {
    if (b->data[i] < '0' || b->data[i] > '9') return 0;
    v = v * 10 + (b->data[i] - '0');
  }
  *out = v;
  return 1;
}

void smm_push_result(lua_State *L, smm_transfer *t, CURLcode code, int started,
                     int decode_idx, int schema_idx) {
  CURL *e = t->easy;
  curl_off_t total = 0;
  int res;
  lua_createtable(L, 0, 4); /* time, status, json and maybe one more: the usual answer */
  res = lua_gettop(L);
  if (!started) total = 0; /* the handle's info still describes its previous transfer */
  if (!started || curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total) == CURLE_OK) {
    lua_pushnumber(L, (lua_Number)total / 1000.0);
    lua_setfield(L, res, "time");
  }
  if (code == CURLE_OK) {
    long status = 0;
    char *ctype = NULL;
    curl_off_t retry = -1;
    lua_Integer seconds;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    lua_pushinteger(L, (lua_Integer)status);
    lua_setfield(L, res, "status");
    if (t->retry_after.len > 0) {
      /* libcurl turns both forms (seconds, HTTP date) into seconds, but reports 0 for "none"
       * and for an unparsable value; a literal "0" is taken from the header itself. */
      if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &retry) == CURLE_OK && retry > 0) {
        lua_pushinteger(L, (lua_Integer)retry);
        lua_setfield(L, res, "retry_after");
      } else if (parse_seconds(&t->retry_after, &seconds)) {
        lua_pushinteger(L, seconds);
        lua_setfield(L, res, "retry_after");
      }
    }
    if (t->location.len > 0) {
      lua_pushlstring(L, t->location.data, t->location.len);
      lua_setfield(L, res, "location");
    }
    /* The content type only tells what an answer that is not JSON is (an HTML page...). */
    if (!smm_decode_body(L, decode_idx, schema_idx, t->body.data, t->body.len) &&
        curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK && ctype != NULL) {
      lua_pushstring(L, ctype);
      lua_setfield(L, res, "content_type");
    }
  } else {
    const char *msg = curl_easy_strerror(code);
    lua_pushstring(L, failure_kind(t, code));
    lua_setfield(L, res, "failure");
    if (t->interrupted) {
      lua_pushliteral(L, "interrupted: a signal stopped the request (core.catch_interrupts)");
    } else if (t->too_large) {
      char limit[64];
      snprintf(limit, sizeof limit, "%.0f", (double)t->max_body);
      lua_pushfstring(L, "%s: answer larger than max_body (%s bytes)", msg, limit);
    } else if (t->errbuf[0] != '\0')
      lua_pushfstring(L, "%s: %s", msg, t->errbuf);
    else
      lua_pushstring(L, msg);
    lua_setfield(L, res, "message");
    lua_pushboolean(L, started ? (t->interrupted ? !never_sent(e) : !provably_unsent(e, code)) : 0);
    lua_setfield(L, res, "sent");
    lua_pushinteger(L, (lua_Integer)code);
    lua_setfield(L, res, "code");
  }
  smm_buffer_reset(&t->body);
}
