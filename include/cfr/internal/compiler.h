/*
 * Compiler hints shared by the engine, cfrd and the tools. Branch hints
 * belong on validation only (STYLE.md): the unlikely path is the hostile or
 * broken packet, never a legitimate one.
 */
#ifndef CFR_COMPILER_H
#define CFR_COMPILER_H

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#endif
