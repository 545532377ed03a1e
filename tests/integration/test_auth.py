"""Bearer-token protection (src/auth.c, the access levels of src/app.c).

Four daemons, one per configuration, cover ENVIRONMENT (production,
development) x ADMIN_TOKEN (set, not set), with API_KEY set on one daemon of
each environment:

    prod-admin-api   production   ADMIN_TOKEN set   API_KEY set
    prod-none        production   -                 -
    dev-admin        development  ADMIN_TOKEN set   -
    dev-none-api     development  -                 API_KEY set

Each is started once per module (the first load maps libtorch, ~1.5 s) and
serves mlp.pt. Every admin route, prediction route and open route is asked
with each kind of Authorization header; the expected status follows the
README's Security section:

    ADMIN_TOKEN set      missing / malformed -> 401 + WWW-Authenticate: Bearer
                         wrong (also a prefix, a longer token, the API key) -> 403
                         right -> 200
    ADMIN_TOKEN not set  production -> 403 naming ADMIN_TOKEN; development -> 200
    API_KEY set          the same 401/403/200 on /predict and .../infer
    API_KEY not set      /predict and .../infer open whatever is sent
    /health, /v2/health/*, /memory, /metrics: open whatever is set or sent.

The secrets are distinctive strings that are grepped for in stderr, every
reply body and header, /memory, /metrics and the v2 metadata. Two of the
daemons log at debug level (one as JSON) so that more of what they do is
grepped.
"""

import json
import re
import time

import pytest

from conftest import (Daemon, INFERD_BIN, assert_json_reply, base_env,
                      free_port, model, raw_http)

ADMIN = "adm1n-S3CRET-q8Zk7wPv"
API = "ap1-K3Y-x9Lm3RtN"
SECRETS = (ADMIN, API)

CONFIGS = {
    "prod-admin-api": {"ENVIRONMENT": "production", "ADMIN_TOKEN": ADMIN,
                       "API_KEY": API},
    "prod-none": {"ENVIRONMENT": "production"},
    "dev-admin": {"ENVIRONMENT": "development", "ADMIN_TOKEN": ADMIN,
                  "LOG_LEVEL": "debug"},
    "dev-none-api": {"ENVIRONMENT": "development", "API_KEY": API,
                     "LOG_LEVEL": "debug", "LOG_FORMAT": "json"},
}

# kind -> Authorization header (None: not sent), given the secret that the
# route would want (or, when the daemon has none, the one it would have had).
HEADER_KINDS = {
    "missing": lambda s: None,
    "basic": lambda s: "Basic x",
    "bearer-no-token": lambda s: "Bearer",
    "bearer-empty-token": lambda s: "Bearer ",
    "wrong": lambda s: "Bearer not-the-right-token",
    "prefix": lambda s: "Bearer " + s[:-1],
    "longer": lambda s: "Bearer " + s + "0",
    "other-secret": lambda s: "Bearer " + (API if s == ADMIN else ADMIN),
    "right": lambda s: "Bearer " + s,
    "right-lowercase-scheme": lambda s: "bearer " + s,
}
MISSING_OR_MALFORMED = {"missing", "basic", "bearer-no-token",
                        "bearer-empty-token"}
RIGHT = {"right", "right-lowercase-scheme"}

MLP_NAME = "mlp"
ADMIN_ROUTES = [
    "/model/load",
    "/model/unload",
    "/v2/repository/index",
    f"/v2/repository/models/{MLP_NAME}/load",
    f"/v2/repository/models/{MLP_NAME}/unload",
]
PREDICT_BODY = {"inputs": [[5.1, 3.5, 1.4, 0.2]]}
INFER_BODY = {"id": "1", "inputs": [{"name": "x", "shape": [1, 4],
                                     "datatype": "FP32",
                                     "data": [5.1, 3.5, 1.4, 0.2]}]}
API_ROUTES = {
    "/predict": PREDICT_BODY,
    f"/v2/models/{MLP_NAME}/infer": INFER_BODY,
    f"/v2/models/{MLP_NAME}/versions/1/infer": INFER_BODY,
}
OPEN_ROUTES = ["/health", "/v2/health/live", "/v2/health/ready", "/memory",
               "/metrics", "/v2", f"/v2/models/{MLP_NAME}",
               f"/v2/models/{MLP_NAME}/ready"]
OPEN_HEADER_KINDS = ["missing", "basic", "bearer-empty-token", "wrong",
                     "right"]


# ------------------------------------------------------------ daemons

@pytest.fixture(scope="module")
def daemons(tmp_path_factory):
    """Config name -> running Daemon, started on first use, stopped (and
    checked for exit 0) at the end of the module."""
    tmp = tmp_path_factory.mktemp("auth")
    started = {}

    def get(name):
        if name not in started:
            env = {"PORT": free_port(), "HOST": "127.0.0.1",
                   "MODEL_PATH": model("mlp.pt"), "TORCH_NUM_THREADS": "1",
                   "ADMIN_TOKEN": None, "API_KEY": None}
            env.update(CONFIGS[name])
            d = Daemon(INFERD_BIN, base_env(env), [], tmp, sanitized=False)
            started[name] = d
            d.wait_healthy()
        return started[name]

    yield get

    problems = []
    for name, d in started.items():
        rc = d.stop()
        if rc != 0:
            problems.append(f"{name}: exit code {rc} after SIGTERM; stderr:\n"
                            + d.stderr_text()[-3000:])
    assert not problems, "\n".join(problems)


def send(d, path, kind, secret, body=None):
    hdr = HEADER_KINDS[kind](secret)
    headers = {"Content-Type": "application/json"}
    if hdr is not None:
        headers["Authorization"] = hdr
    data = json.dumps(body) if body is not None else None
    return d.session.post(d.url + path, data=data, headers=headers, timeout=60)


def assert_no_secret(r, what):
    blob = r.text + "\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items())
    for s in SECRETS:
        assert s not in blob, f"{what}: secret {s!r} in the reply:\n{blob}"


def check_protected(r, kind, what):
    """A route protected by a secret the daemon has."""
    if kind in MISSING_OR_MALFORMED:
        body = assert_json_reply(r, 401)
        www = r.headers.get("WWW-Authenticate", "")
        assert www.split()[:1] == ["Bearer"], (what, dict(r.headers))
        assert "Bearer" in body["error"], body
    elif kind in RIGHT:
        assert_json_reply(r, 200)
    else:
        body = assert_json_reply(r, 403)
        assert "wrong" in body["error"], (what, body)


# ------------------------------------------------------------ admin routes

@pytest.mark.parametrize("kind", list(HEADER_KINDS))
@pytest.mark.parametrize("path", ADMIN_ROUTES)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_admin_route(daemons, config, path, kind):
    d = daemons(config)
    cfg = CONFIGS[config]
    r = send(d, path, kind, ADMIN)
    what = f"{config} POST {path} with {kind} header"
    assert_no_secret(r, what)
    if cfg.get("ADMIN_TOKEN"):
        check_protected(r, kind, what)
    elif cfg["ENVIRONMENT"] == "production":
        body = assert_json_reply(r, 403)
        assert "ADMIN_TOKEN" in body["error"], (what, body)
        # It says how to enable them: set the token (or run development).
        assert "set" in body["error"].lower(), (what, body)
    else:
        assert_json_reply(r, 200)


@pytest.mark.parametrize("config", ["prod-admin-api", "dev-admin"])
def test_admin_right_token_really_acts(daemons, config):
    """With the right token the handler runs: unload then load changes the
    model's state as /health reports it."""
    d = daemons(config)
    assert send(d, "/model/unload", "right", ADMIN).status_code == 200
    assert d.health()["model_loaded"] is False
    r = send(d, "/model/load", "right", ADMIN)
    assert assert_json_reply(r, 200)["status"] == "loaded"
    assert d.health()["model_loaded"] is True


@pytest.mark.parametrize("config", ["prod-admin-api", "dev-admin", "prod-none"])
def test_admin_refusal_changes_nothing(daemons, config):
    """A refused unload leaves the model loaded."""
    d = daemons(config)
    cfg = CONFIGS[config]
    if cfg.get("ADMIN_TOKEN"):
        assert send(d, "/model/load", "right", ADMIN).status_code == 200
    else:
        # prod-none cannot load through the admin route: a prediction loads.
        assert d.post("/predict", PREDICT_BODY, auth=False).status_code == 200
    assert d.health()["model_loaded"] is True
    for kind in ("missing", "wrong", "prefix", "longer"):
        r = send(d, "/model/unload", kind, ADMIN)
        assert r.status_code in (401, 403), (kind, r.status_code, r.text)
        assert d.health()["model_loaded"] is True, kind


# ------------------------------------------------------------ prediction routes

@pytest.mark.parametrize("kind", list(HEADER_KINDS))
@pytest.mark.parametrize("path", list(API_ROUTES))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_prediction_route(daemons, config, path, kind):
    d = daemons(config)
    cfg = CONFIGS[config]
    r = send(d, path, kind, API, API_ROUTES[path])
    what = f"{config} POST {path} with {kind} header"
    assert_no_secret(r, what)
    if cfg.get("API_KEY"):
        check_protected(r, kind, what)
    else:
        assert_json_reply(r, 200)
    if r.status_code == 200:
        body = r.json()
        assert "outputs" in body, body


# ------------------------------------------------------------ open routes

@pytest.mark.parametrize("kind", OPEN_HEADER_KINDS)
@pytest.mark.parametrize("path", OPEN_ROUTES)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_open_route(daemons, config, path, kind):
    d = daemons(config)
    for secret in SECRETS:
        hdr = HEADER_KINDS[kind](secret)
        headers = {"Authorization": hdr} if hdr is not None else {}
        r = d.session.get(d.url + path, headers=headers, timeout=10)
        what = f"{config} GET {path} with {kind} header"
        # /v2/health/ready and .../ready answer 200 once the model can be
        # served (mlp.pt exists, so always here).
        assert r.status_code == 200, (what, r.status_code, r.text)
        assert "WWW-Authenticate" not in r.headers, what
        assert_no_secret(r, what)


# ------------------------------------------------------------ secrets

@pytest.mark.parametrize("config", list(CONFIGS))
def test_secrets_never_leak(daemons, config):
    """After traffic with right and wrong tokens: no secret in stderr, in
    /memory, /metrics, /health or the v2 metadata; the start-up dump says
    (set)/(unset)."""
    d = daemons(config)
    cfg = CONFIGS[config]
    for kind in ("right", "wrong", "prefix", "longer", "missing"):
        for path in ADMIN_ROUTES[:2]:
            assert_no_secret(send(d, path, kind, ADMIN), path)
        assert_no_secret(send(d, "/predict", kind, API, PREDICT_BODY),
                         "/predict")
    for path in OPEN_ROUTES:
        r = d.get(path, timeout=10)
        assert r.status_code == 200, (path, r.text)
        assert_no_secret(r, path)
    time.sleep(0.2)  # let the last request lines reach stderr
    text = d.stderr_text()
    for s in SECRETS:
        assert s not in text, f"secret {s!r} in stderr:\n{text[-3000:]}"
        # not even a long piece of it (a log that truncated or masked badly)
        assert s[:10] not in text, f"start of secret {s!r} in stderr"
    for var in ("ADMIN_TOKEN", "API_KEY"):
        want = "(set)" if cfg.get(var) else "(unset)"
        assert f"{var}={want}" in text, (var, want, text[:2000])


# ------------------------------------------------------------ details

@pytest.mark.parametrize("config", list(CONFIGS))
def test_unknown_model_is_not_revealed_before_auth(daemons, config):
    """Auth comes before the handler: an unauthenticated repository load of
    a model that does not exist is refused, not answered 404."""
    d = daemons(config)
    cfg = CONFIGS[config]
    r = send(d, "/v2/repository/models/nosuch/load", "missing", ADMIN)
    if cfg.get("ADMIN_TOKEN"):
        assert_json_reply(r, 401)
    elif cfg["ENVIRONMENT"] == "production":
        assert_json_reply(r, 403)
    else:
        assert_json_reply(r, 404)
    r = send(d, "/v2/models/nosuch/infer", "wrong", API, INFER_BODY)
    assert_json_reply(r, 403 if cfg.get("API_KEY") else 404)


def test_refusals_are_counted_in_metrics(daemons):
    d = daemons("prod-admin-api")

    def count(text, route, status):
        m = re.search(r'^inferd_requests_total\{route="%s",status="%s"\} (\S+)$'
                      % (re.escape(route), status), text, re.M)
        return float(m.group(1)) if m else 0.0

    before = d.get("/metrics").text
    send(d, "/model/load", "missing", ADMIN)
    send(d, "/model/load", "wrong", ADMIN)
    send(d, "/predict", "wrong", API, PREDICT_BODY)
    time.sleep(0.05)
    after = d.get("/metrics").text
    assert count(after, "/model/load", 401) == count(before, "/model/load",
                                                     401) + 1
    assert count(after, "/model/load", 403) == count(before, "/model/load",
                                                     403) + 1
    assert count(after, "/predict", 403) == count(before, "/predict", 403) + 1


# RFC 6750 section 2.1: credentials = "Bearer" 1*SP b64token -- one or more
# spaces; RFC 7230 section 3.2.4: trailing whitespace is not part of a field
# value. Sent raw so that no client library normalises them.
@pytest.mark.parametrize("header", [
    "Bearer  {tok}",     # two spaces
    "Bearer {tok} ",     # trailing space
    "Bearer {tok}\t",    # trailing tab
], ids=["two-spaces", "trailing-space", "trailing-tab"])
def test_bearer_whitespace_per_rfc(daemons, header):
    d = daemons("dev-admin")
    value = header.format(tok=ADMIN)
    req = (f"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\n"
           f"Authorization: {value}\r\nContent-Length: 0\r\n"
           f"Connection: close\r\n\r\n").encode()
    status, _, body = raw_http(d.port, req)
    assert ADMIN.encode() not in body
    assert status == 200, (repr(value), status, body)
