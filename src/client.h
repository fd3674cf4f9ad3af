/*
 * client.h: the handle type "smm.core.handle" (client.c): core.new, the methods request,
 * request_many, close, and the metatable. Used by core.c only.
 */
#ifndef SMM_CLIENT_H
#define SMM_CLIENT_H

#include "compat.h"

/* Registers the handle's metatable; `extra` (may be NULL) are more methods, those core.c owns
 * (sleep, now). Called once by luaopen_smm_core. */
void smm_client_open(lua_State *L, const luaL_Reg *extra);

/* core.new(options) -> handle; raises on bad options (see options.h). */
int smm_client_new(lua_State *L);

#endif
