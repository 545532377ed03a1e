#!/bin/sh
# Every inferd endpoint once, with curl. Usage:
#   examples/curl.sh [BASE_URL]        (default http://localhost:8000)
# Set ADMIN_TOKEN / API_KEY in the environment when the server uses them.
set -u
BASE=${1:-http://localhost:8000}
AUTH_ADMIN=${ADMIN_TOKEN:+-H "Authorization: Bearer $ADMIN_TOKEN"}
AUTH_API=${API_KEY:+-H "Authorization: Bearer $API_KEY"}
show() { echo "\$ $*"; "$@"; echo; echo; }

show curl -s "$BASE/health"
show curl -s "$BASE/memory"
# shellcheck disable=SC2086
show curl -s -X POST $AUTH_ADMIN "$BASE/model/load"
# shellcheck disable=SC2086
show curl -s $AUTH_API -H 'Content-Type: application/json' \
    -d '{"inputs": [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]}' "$BASE/predict"
# The binary path: 4 little-endian float32 in, raw float32 out.
printf '\315\314\244@\000\000`@33\263?\315\314L>' > /tmp/inferd-iris.bin
# shellcheck disable=SC2086
show curl -s $AUTH_API -H 'Content-Type: application/octet-stream' \
    -H 'X-Shape: 1,4' -H 'X-Dtype: float32' \
    --data-binary @/tmp/inferd-iris.bin "$BASE/predict"
show curl -s "$BASE/v2"
show curl -s -o /dev/null -w '%{http_code}\n' "$BASE/v2/health/live"
show curl -s -o /dev/null -w '%{http_code}\n' "$BASE/v2/health/ready"
show curl -s "$BASE/v2/models/demo"
show curl -s "$BASE/v2/models/demo/ready"
# shellcheck disable=SC2086
show curl -s $AUTH_API -H 'Content-Type: application/json' -d '{"id": "1",
    "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                "data": [5.1, 3.5, 1.4, 0.2]}]}' "$BASE/v2/models/demo/infer"
# shellcheck disable=SC2086
show curl -s -X POST $AUTH_ADMIN "$BASE/v2/repository/index"
show curl -s "$BASE/metrics"
# shellcheck disable=SC2086
show curl -s -X POST $AUTH_ADMIN "$BASE/model/unload"
