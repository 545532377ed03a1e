/* fuzz_config.c -- libFuzzer target: the configuration parser on any
 * command line. Input: NUL-separated arguments. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *argv[64] = {"inferd"};
    int argc = 1;
    for (size_t i = 0; i <= size && argc < 63;) {
        argv[argc++] = text + i;
        i += strlen(text + i) + 1;
    }
    static config c;
    char err[512];
    (void)config_load(&c, argc, argv, err, sizeof err);
    free(text);
    return 0;
}
