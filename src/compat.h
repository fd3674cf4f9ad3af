/*
 * compat.h: the one place that knows which Lua C API we are compiled against (5.1, LuaJIT 2.1,
 * 5.3, 5.4) and papers over the differences, plus the export macro. The rest of src/ is written
 * against the 5.3/5.4 API and uses the smm_* wrappers below for user values.
 */
#ifndef SMM_COMPAT_H
#define SMM_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

/* LuaJIT 2.1's lauxlib.h carries some 5.2 additions (luaL_newlibtable...); its version macro
 * LUAJIT_VERSION lives in luajit.h, which plain 5.1 does not have. */
#if LUA_VERSION_NUM == 501 && defined(luaL_newlibtable)
#include <luajit.h>
#endif

/* Only luaopen_smm_core is exported; everything else is hidden by -fvisibility=hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define SMM_EXPORT __attribute__((visibility("default")))
#else
#define SMM_EXPORT
#endif

#if LUA_VERSION_NUM < 502 /* Lua 5.1 and LuaJIT */

#define lua_rawlen(L, i) lua_objlen(L, (i))
#define lua_absindex(L, i) \
  (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
/* 5.1 has no integer subtype: every number is a lua_Number. */
#define lua_isinteger(L, i) 0
/* User value = the function environment table of the userdata. */
#define smm_getuservalue(L, i) lua_getfenv(L, (i))
#define smm_setuservalue(L, i) lua_setfenv(L, (i))

#ifndef LUAJIT_VERSION /* plain 5.1 lacks what LuaJIT 2.1 already provides */
#define luaL_newlibtable(L, l) lua_createtable(L, 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
#define luaL_newlib(L, l) (luaL_newlibtable(L, l), luaL_setfuncs(L, l, 0))
#define luaL_setfuncs smm_setfuncs
#define luaL_testudata smm_testudata
#define luaL_setmetatable smm_setmetatable

static inline void smm_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}

static inline void *smm_testudata(lua_State *L, int ud, const char *tname) {
  void *p = lua_touserdata(L, ud);
  if (p != NULL && lua_getmetatable(L, ud)) {
    lua_getfield(L, LUA_REGISTRYINDEX, tname);
    if (!lua_rawequal(L, -1, -2)) p = NULL;
    lua_pop(L, 2);
    return p;
  }
  return NULL;
}

static inline void smm_setmetatable(lua_State *L, const char *tname) {
  luaL_getmetatable(L, tname);
  lua_setmetatable(L, -2);
}
#endif /* !LUAJIT_VERSION */

#else /* 5.2+ */

/* lua_getuservalue returns void in 5.2 and the type in 5.3+; we never need the type. In 5.4,
 * lua_newuserdata/lua_[gs]etuservalue are macros over the first of the "iuservalues". */
#define smm_getuservalue(L, i) ((void)lua_getuservalue(L, (i)))
#define smm_setuservalue(L, i) lua_setuservalue(L, (i))

#endif

#endif /* SMM_COMPAT_H */
