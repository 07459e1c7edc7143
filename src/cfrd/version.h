/* The version cfrd and cfrctl print and report over the control socket. */
#ifndef CFRD_VERSION_H
#define CFRD_VERSION_H

#define CFR_VERSION "0.1.0"

#endif
