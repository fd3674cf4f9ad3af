/*
 * reader.h: the direct reader of flat answers (reader.c). Used by decode.c only; compiled out
 * with -DSMM_NO_DIRECT_READER (make SMM_DIRECT_READER=0), when cjson reads every answer.
 */
#ifndef SMM_READER_H
#define SMM_READER_H

#include <stddef.h>

#include "compat.h"

/* The JSON text p[0..n) read directly, its records normalised by the schema at schema_idx (0:
 * none) laid out as `layout` (SMM_LAYOUT_*) says. 1 with the value pushed, exactly what cjson
 * + the schema walk would give; 0 with the stack as it was (a shape it does not read: cjson
 * decides). */
int smm_read_direct(lua_State *L, const char *p, size_t n, int schema_idx, int layout);

#endif
