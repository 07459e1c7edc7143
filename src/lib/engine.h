/*
 * The engine's front (engine.c): configuration check, creation, the batch
 * loop. Only the public API (include/cfr/cfr.h) calls into it; the modules
 * it calls each have their own header.
 */
#ifndef CFR_ENGINE_H
#define CFR_ENGINE_H

#include <stdbool.h>

#include "engine-t.h"

bool cfr_config_valid(const struct cfr_engine_config *cfg);

#endif
