/* config.h -- every setting of the daemon, read from the environment and
 * the command line through one table.
 *
 * Each setting has an environment variable, a CLI flag (which overrides the
 * variable), a default and a help line. config_load() fills a config from
 * them; a bad value fails with one line naming the setting and what it
 * accepts. Not thread-safe; call once at start-up. */
#ifndef INFERD_CONFIG_H
#define INFERD_CONFIG_H

#include <stddef.h>

#define INFERD_VERSION "0.1.0"

enum { ENV_PRODUCTION = 0, ENV_DEVELOPMENT = 1 };
enum { LOGFMT_TEXT = 0, LOGFMT_JSON = 1 };

typedef struct {
    int port;
    const char *host;
    const char *model_path;
    const char *model_name; /* derived from model_path when not given */
    int lazy_loading;
    int environment;
    int memory_limit_mb; /* 0 = detect */
    int memory_warning_percent;
    int memory_critical_percent;
    int max_request_mb;
    int shutdown_timeout_seconds;
    int log_level;
    int log_format;
    const char *backend_path; /* "" = libinferd_torch.so beside the binary */
    int torch_num_threads;    /* 0 = CPUs available to the process */
    int model_mmap;
    int memory_guard;
    int runtime_anon_mb;
    int activation_mb;
    int model_idle_unload_seconds;
    int unload_on_pressure;
    int inference_workers;
    int queue_capacity;
    int max_batch_size;
    int batch_timeout_us;
    int connection_timeout_seconds;
    int max_connections;
    int jit_profiling;
    const char *model_warmup; /* "" = off, else input shapes "1,4;1,4" */
    int preload_runtime;
    const char *admin_token;
    const char *api_key;

    /* Derived at load time, not settings of their own. */
    int lazy_forced; /* production overrode LAZY_LOADING=false */
    char model_name_buf[256];
} config;

/* config_load() results besides 0 (run) and ERR_* codes (exit 2). */
#define CONFIG_EXIT_HELP 1
#define CONFIG_EXIT_VERSION 2

/* Fill c from defaults, then the environment, then argv. Returns 0,
 * CONFIG_EXIT_HELP / CONFIG_EXIT_VERSION when asked for those, or a negative
 * ERR_* code with the reason in err. */
int config_load(config *c, int argc, char **argv, char *err, size_t errlen);

/* Print the settings table (for --help) to stdout. */
void config_print_help(const char *prog);

/* Log the effective configuration, secrets masked. */
void config_log(const config *c);

#endif
