/*
 * buffer.h: a growable byte buffer in C memory (malloc/realloc). Used for response bodies,
 * captured headers and the form-encoding scratch space; all of them are owned by the handle
 * userdata, so a Lua error can never leak one.
 */
#ifndef SMM_BUFFER_H
#define SMM_BUFFER_H

#include <stddef.h>

typedef struct smm_buffer {
  char *data;
  size_t len;
  size_t cap;
} smm_buffer;

/* Make room for `extra` more bytes. 0 on success, -1 when out of memory or on overflow. */
int smm_buffer_reserve(smm_buffer *b, size_t extra);
/* Append n bytes. 0 on success, -1 when out of memory. */
int smm_buffer_append(smm_buffer *b, const void *p, size_t n);
/* Forget the content; give the memory back when it grew big (one huge answer must not pin
 * 64 MiB for the life of the handle). */
void smm_buffer_reset(smm_buffer *b);
void smm_buffer_free(smm_buffer *b);

#endif
