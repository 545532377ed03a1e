/* fuzz_route.c -- libFuzzer target: the real route table against any
 * method and path. Input: "METHOD\0/path". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/app.h"
#include "inferd/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 2);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = text[size + 1] = '\0';
    const char *path = text + strlen(text) + 1;
    const route *found = NULL;
    route_params params;
    char allow[128];
    int rc = route_match(app_routes, app_nroutes, text, path, &found, &params,
                         allow, sizeof allow);
    if (rc == ROUTE_OK) (void)route_param(&params, "model");
    free(text);
    return 0;
}
