/*
 * buffer.c: the growable C byte buffer (see buffer.h). No Lua in here: the curl callbacks use
 * it while a transfer runs, where no Lua error may be raised.
 */
#include <stdlib.h>
#include <string.h>

#include "buffer.h"

#define SMM_BUFFER_KEEP (256u * 1024u) /* capacity kept across resets */

int smm_buffer_reserve(smm_buffer *b, size_t extra) {
  size_t need, cap;
  char *p;
  if (extra > (size_t)-1 - b->len - 1) return -1;
  need = b->len + extra + 1; /* +1: room for a terminating NUL */
  if (need <= b->cap) return 0;
  cap = b->cap ? b->cap : 1024;
  while (cap < need) {
    if (cap > (size_t)-1 / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  p = realloc(b->data, cap);
  if (p == NULL) return -1;
  p[b->len] = '\0'; /* data, once allocated, is always NUL-terminated at len */
  b->data = p;
  b->cap = cap;
  return 0;
}

int smm_buffer_append(smm_buffer *b, const void *p, size_t n) {
  if (smm_buffer_reserve(b, n) != 0) return -1;
  if (n > 0) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

void smm_buffer_reset(smm_buffer *b) {
  if (b->cap > SMM_BUFFER_KEEP) {
    smm_buffer_free(b);
    return;
  }
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

void smm_buffer_free(smm_buffer *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
