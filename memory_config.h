/* memory_config.h -- compile-time defaults of every memory-related setting.
 *
 * Each value is only a default: the configuration table (src/config.c) lets
 * an environment variable or a flag override it at start-up. */
#ifndef INFERD_MEMORY_CONFIG_H
#define INFERD_MEMORY_CONFIG_H

/* Limit used when neither MEMORY_LIMIT_MB nor a cgroup gives one (MB).
 * 512 MB is the memory of Render's starter plan. */
#define MEMCFG_DEFAULT_LIMIT_MB 512

/* /memory reports "warning" and "critical" at these shares of the limit (%). */
#define MEMCFG_WARNING_PERCENT 80
#define MEMCFG_CRITICAL_PERCENT 95

/* Unload the model after this long without a prediction (s); 0 = never. */
#define MEMCFG_IDLE_UNLOAD_SECONDS 0

/* Largest request body accepted (MB); larger bodies get 413. */
#define MEMCFG_MAX_REQUEST_MB 16

/* Anonymous memory that mapping libtorch costs before any model exists (MB).
 * Measured here: 58 MB RssAnon for Debian's libtorch 1.13.1. The memory
 * guard counts it when the runtime is not loaded yet. */
#define MEMCFG_RUNTIME_ANON_MB 60

/* Working-set allowance for activations and the interpreter during a load
 * and the first forward (MB), counted by the memory guard. */
#define MEMCFG_ACTIVATION_MB 32

#endif
