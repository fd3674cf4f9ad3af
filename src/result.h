/*
 * result.h: the result table of a finished transfer (result.c). Used by multi.c.
 */
#ifndef SMM_RESULT_H
#define SMM_RESULT_H

#include "handle.h"

/* Pushes the result table of a finished transfer (started = 0: it could not be started), its
 * answer decoded with the function at decode_idx and the schema at schema_idx (0: none). */
void smm_push_result(lua_State *L, smm_transfer *t, CURLcode code, int started,
                     int decode_idx, int schema_idx);

#endif
