/*
 * interrupt.h: signals caught by core.catch_interrupts (interrupt.c, see its header comment).
 * Used by core.c (registration), client.c and multi.c (nothing new sent, transfers aborted).
 */
#ifndef SMM_INTERRUPT_H
#define SMM_INTERRUPT_H

#include "compat.h"

/* Sets catch_interrupts and interrupts on the table at the top (the module). */
void smm_interrupt_register(lua_State *L);
int smm_interrupted(void);                 /* signals caught so far (0 when not catching) */
int smm_interrupt_aborts(void);            /* 1 when transfers in flight are to be aborted */
int smm_catching_interrupts(void);         /* 1 once catch_interrupts was called */

#endif
