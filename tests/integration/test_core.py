"""inferd without a model: configuration, HTTP errors, /health, /memory,
the cgroup limit, the idle footprint and signals.

These tests load no model, so they run against the sanitizer build
(INFERD_ASAN_BIN) when it is set -- except the footprint tests, which
measure the production binary (ASan's shadow memory would dominate RSS).
"""

import json
import os
import re
import signal
import socket
import time

import pytest
import requests

from conftest import (INFERD_ASAN_BIN, INFERD_BIN, assert_json_reply,
                      free_port, model, raw_http, run_inferd)

ALL_ENV = [
    "PORT", "HOST", "MODEL_PATH", "MODEL_NAME", "LAZY_LOADING", "ENVIRONMENT",
    "MEMORY_LIMIT_MB", "MEMORY_WARNING_PERCENT", "MEMORY_CRITICAL_PERCENT",
    "MAX_REQUEST_MB", "SHUTDOWN_TIMEOUT_SECONDS", "LOG_LEVEL", "LOG_FORMAT",
    "BACKEND_PATH", "TORCH_NUM_THREADS", "MODEL_MMAP", "MEMORY_GUARD",
    "MODEL_IDLE_UNLOAD_SECONDS", "UNLOAD_ON_PRESSURE", "INFERENCE_WORKERS",
    "QUEUE_CAPACITY",
]

MEMORY_KEYS = ["rss_mb", "vms_mb", "model_loaded", "gpu_allocated_mb",
               "gpu_cached_mb", "rss_anon_mb", "rss_file_mb", "peak_rss_mb",
               "limit_mb", "limit_source", "usage_mb", "usage_source",
               "usage_percent", "level", "paging"]
MODEL_KEYS = ["status", "total_parameters", "name", "path", "mmap", "loads",
              "unloads", "load_failures", "last_error"]


# ------------------------------------------------------------ configuration

def test_version():
    p = run_inferd(["--version"])
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(r"inferd \d+\.\d+\.\d+\S*\n", p.stdout), p.stdout


def test_help_lists_every_setting():
    p = run_inferd(["--help"])
    assert p.returncode == 0, p.stderr
    for env in ALL_ENV:
        flag = "--" + env.lower().replace("_", "-")
        assert re.search(rf"^{env}\s+{flag}\s", p.stdout, re.M), \
            f"{env} / {flag} missing from --help:\n{p.stdout}"


@pytest.mark.parametrize("env,args,setting", [
    ({"PORT": "abc"}, [], "PORT"),
    ({"PORT": "70000"}, [], "PORT"),
    ({"PORT": "-1"}, [], "PORT"),
    ({"LAZY_LOADING": "maybe"}, [], "LAZY_LOADING"),
    ({"MAX_REQUEST_MB": "-1"}, [], "MAX_REQUEST_MB"),
    ({"ENVIRONMENT": "staging"}, [], "ENVIRONMENT"),
    ({"LOG_FORMAT": "xml"}, [], "LOG_FORMAT"),
    ({"MEMORY_LIMIT_MB": "lots"}, [], "MEMORY_LIMIT_MB"),
    ({"QUEUE_CAPACITY": "0"}, [], "QUEUE_CAPACITY"),
    ({}, ["--port", "abc"], "PORT"),
    ({}, ["--port=70000"], "PORT"),
    ({}, ["--lazy-loading", "maybe"], "LAZY_LOADING"),
    ({}, ["--bogus"], "--bogus"),
    ({}, ["--bogus=1"], "--bogus"),
], ids=lambda v: str(v))
def test_invalid_setting_exits_2_naming_it(env, args, setting):
    p = run_inferd(args, env={"PORT": str(free_port()), **env})
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one stderr line, got:\n{p.stderr}"
    assert setting in lines[0], lines[0]


def test_flag_overrides_env(inferd):
    port = free_port()
    d = inferd(env={"PORT": "1"}, args=["--port", str(port)], asan=True,
               wait=False)
    d.port, d.url = port, f"http://127.0.0.1:{port}"
    d.wait_healthy()
    assert d.health()["status"] == "ok"


def test_flag_equals_form(inferd):
    port = free_port()
    d = inferd(env={"PORT": None}, args=[f"--port={port}",
                                          "--model-name=fromflag"],
               asan=True, wait=False)
    d.port, d.url = port, f"http://127.0.0.1:{port}"
    d.wait_healthy()
    assert d.health()["model"] == "fromflag"


def test_default_port_8000(inferd):
    try:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 8000))
    except OSError:
        pytest.skip("port 8000 is in use on this machine")
    d = inferd(env={"PORT": None}, asan=True, wait=False)
    d.port, d.url = 8000, "http://127.0.0.1:8000"
    d.wait_healthy()
    assert "PORT=8000" in d.stderr_text()


def test_model_name_defaults_to_basename(inferd):
    d = inferd(env={"MODEL_PATH": "/nonexistent/dir/my.model.pt"}, asan=True)
    h = d.health()
    assert h["model"] == "my.model"
    assert d.memory()["model"]["path"] == "/nonexistent/dir/my.model.pt"
    d2 = inferd(env={"MODEL_PATH": "/x/my.model.pt", "MODEL_NAME": "custom"},
                asan=True)
    assert d2.health()["model"] == "custom"
    assert d2.memory()["model"]["name"] == "custom"


def test_log_format_json(inferd):
    d = inferd(env={"LOG_FORMAT": "json"}, asan=True)
    d.health()
    d.get("/nope")
    assert d.stop() == 0
    lines = [l for l in d.stderr_text().splitlines() if l.strip()]
    assert len(lines) >= 3
    for l in lines:
        obj = json.loads(l)  # every line is one JSON object
        assert isinstance(obj, dict)


def test_log_level_error_is_quiet(inferd):
    d = inferd(env={"LOG_LEVEL": "error"}, asan=True)
    d.health()
    assert d.stop() == 0
    assert d.stderr_text().strip() == "", d.stderr_text()


# ------------------------------------------------------------ HTTP errors

def test_unknown_path_404(inferd):
    d = inferd(asan=True)
    for method, path in [("GET", "/"), ("GET", "/nope"), ("POST", "/predictx"),
                         ("GET", "/health/extra"), ("DELETE", "/x")]:
        r = d.session.request(method, d.url + path, timeout=5)
        assert_json_reply(r, 404)
    assert d.health()["status"] == "ok"


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/predict", "POST"),
    ("PUT", "/predict", "POST"),
    ("POST", "/health", "GET"),
    ("DELETE", "/memory", "GET"),
    ("GET", "/model/load", "POST"),
    ("GET", "/model/unload", "POST"),
])
def test_wrong_method_405_with_allow(inferd, method, path, allow):
    d = inferd(asan=True)
    r = d.session.request(method, d.url + path, timeout=5)
    assert_json_reply(r, 405)
    assert "Allow" in r.headers, r.headers
    assert allow in [m.strip() for m in r.headers["Allow"].split(",")]
    assert d.health()["status"] == "ok"


def test_body_over_content_length_cap_413(inferd):
    d = inferd(env={"MAX_REQUEST_MB": "1"}, asan=True)
    body = b'{"inputs": [' + b"1," * (1 << 20) + b"1]}"  # ~2 MB
    assert len(body) > 2 * (1 << 20)
    head = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
            f"application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode()
    status, hdrs, rest = raw_http(d.port, head, body_iter=[body])
    assert status == 413, rest[:300]
    assert hdrs.get("content-type", "").startswith("application/json")
    assert "error" in json.loads(rest)
    # requests as an ordinary client also sees 413
    try:
        r = d.post("/predict", data=body,
                   headers={"Content-Type": "application/json"}, timeout=10)
        assert_json_reply(r, 413)
    except requests.ConnectionError:
        pass  # the server may close before the client has sent it all
    assert d.health()["status"] == "ok"


def test_chunked_body_past_cap_413(inferd):
    d = inferd(env={"MAX_REQUEST_MB": "1"}, asan=True)
    head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/json\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n")
    piece = b"1," * 32768  # 64 KiB

    def chunks():
        yield b"%x\r\n%s\r\n" % (len(b'{"inputs": ['), b'{"inputs": [')
        for _ in range(32):  # 2 MiB
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
        yield b"3\r\n1]}\r\n0\r\n\r\n"

    status, hdrs, rest = raw_http(d.port, head, body_iter=chunks())
    assert status == 413, rest[:300]
    assert "error" in json.loads(rest)
    assert d.health()["status"] == "ok"


def test_body_under_cap_is_not_413(inferd):
    # ~0.5 MB with MAX_REQUEST_MB=1 passes the cap (no model: 503 or 4xx,
    # but never 413 or 5xx other than 503)
    d = inferd(env={"MAX_REQUEST_MB": "1", "BACKEND_PATH": "/nonexistent.so"},
               asan=True)
    body = '{"inputs": [' + "1," * 250000 + "1]}"
    r = d.post("/predict", data=body,
               headers={"Content-Type": "application/json"})
    assert r.status_code != 413, r.text
    assert_json_reply(r)
    assert r.status_code == 503, r.text  # no MODEL_PATH


# ------------------------------------------------------------ /health

def test_health_fields(inferd):
    d = inferd(env={"MODEL_PATH": "/nonexistent/m.pt"}, asan=True)
    r = d.get("/health")
    h = assert_json_reply(r, 200)
    assert h["status"] == "ok"
    assert h["model_loaded"] is False
    assert h["model_status"] == "not_loaded"
    # /health never loads the model, even repeatedly
    for _ in range(5):
        assert d.health()["model_status"] == "not_loaded"
    assert d.memory()["model"]["loads"] == 0
    assert d.memory()["model"]["load_failures"] == 0


def test_health_version_matches_binary(inferd):
    ver = run_inferd(["--version"]).stdout.split()[1]
    d = inferd(asan=True)
    assert d.health().get("version") == ver


# ------------------------------------------------------------ /memory

def test_memory_fields_idle(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt")}, asan=True)
    r = d.get("/memory")
    body = assert_json_reply(r, 200)
    mem, mdl, rt = body["memory"], body["model"], body["runtime"]
    for k in MEMORY_KEYS:
        assert k in mem, f"memory.{k} missing: {mem}"
    for k in MODEL_KEYS:
        assert k in mdl, f"model.{k} missing: {mdl}"
    assert rt == {"loaded": False}
    assert mem["model_loaded"] is False
    assert mem["gpu_allocated_mb"] == 0 and mem["gpu_cached_mb"] == 0
    assert mem["paging"] is False
    assert 0 < mem["rss_mb"] <= mem["vms_mb"]
    assert mem["rss_anon_mb"] + mem["rss_file_mb"] <= mem["rss_mb"] + 1
    assert mem["peak_rss_mb"] >= mem["rss_mb"] - 0.5
    assert mem["level"] in ("ok", "warning", "critical")
    assert mdl["status"] == "not_loaded"
    assert mdl["total_parameters"] is None
    assert mdl["name"] == "mlp"
    assert mdl["path"] == model("mlp.pt")
    assert mdl["mmap"] is True
    assert (mdl["loads"], mdl["unloads"], mdl["load_failures"]) == (0, 0, 0)
    assert mdl["last_error"] is None
    # the process's own view agrees with /proc (within a few MB)
    st = d.status()
    assert abs(mem["rss_mb"] - st["VmRSS"] / 1024) < 5


def test_memory_limit_env(inferd):
    d = inferd(env={"MEMORY_LIMIT_MB": "300"}, asan=True)
    mem = d.memory()["memory"]
    assert mem["limit_mb"] == 300
    assert mem["limit_source"] == "env"
    assert mem["usage_source"] == "rss"
    assert abs(mem["usage_percent"] - mem["usage_mb"] * 100 / 300) < 0.1


def test_memory_model_mmap_flag(inferd):
    d = inferd(env={"MODEL_MMAP": "false"}, asan=True)
    assert d.memory()["model"]["mmap"] is False


@pytest.mark.parametrize("env,level", [
    ({"MEMORY_LIMIT_MB": "100000"}, "ok"),
    # usage between 1% and 100% of 200 MB whatever the build's idle RSS
    ({"MEMORY_LIMIT_MB": "200", "MEMORY_WARNING_PERCENT": "1",
      "MEMORY_CRITICAL_PERCENT": "100"}, "warning"),
    ({"MEMORY_LIMIT_MB": "1"}, "critical"),
    ({"MEMORY_LIMIT_MB": "6", "MEMORY_WARNING_PERCENT": "1",
      "MEMORY_CRITICAL_PERCENT": "5"}, "critical"),
])
def test_memory_level(inferd, env, level):
    d = inferd(env=env, asan=True)
    mem = d.memory()["memory"]
    assert mem["level"] == level, mem
    w = int(env.get("MEMORY_WARNING_PERCENT", 80))
    c = int(env.get("MEMORY_CRITICAL_PERCENT", 95))
    p = mem["usage_percent"]
    expect = "critical" if p >= c else "warning" if p >= w else "ok"
    assert mem["level"] == expect, mem


def test_memory_warning_above_critical_rejected():
    p = run_inferd(env={"PORT": str(free_port()),
                        "MEMORY_WARNING_PERCENT": "90",
                        "MEMORY_CRITICAL_PERCENT": "50"})
    assert p.returncode == 2, p.stderr
    assert "MEMORY_WARNING_PERCENT" in p.stderr


# ------------------------------------------------------------ cgroup limit

def _cgroup_setup():
    """Create a memory cgroup limited to 512 MiB; return (dir, procs file,
    parent procs file, version) or raise pytest.skip."""
    if os.geteuid() != 0:
        pytest.skip("cgroup test needs root")
    name = f"inferd-test-{os.getpid()}"
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        ctrls = open("/sys/fs/cgroup/cgroup.controllers").read().split()
        if "memory" not in ctrls:
            pytest.skip("cgroup v2 without the memory controller")
        path = f"/sys/fs/cgroup/{name}"
        limit_file, ver = "memory.max", 2
        parent = "/sys/fs/cgroup/cgroup.procs"
    elif os.path.isdir("/sys/fs/cgroup/memory"):
        path = f"/sys/fs/cgroup/memory/{name}"
        limit_file, ver = "memory.limit_in_bytes", 1
        parent = "/sys/fs/cgroup/memory/cgroup.procs"
    else:
        pytest.skip("no memory cgroup hierarchy mounted")
    try:
        os.mkdir(path)
    except OSError as e:
        print(f"cannot create {path}: {e}")
        pytest.skip(f"cannot create {path}: {e}")
    try:
        with open(os.path.join(path, limit_file), "w") as f:
            f.write(str(512 << 20))
    except OSError as e:
        os.rmdir(path)
        print(f"cannot set {limit_file}: {e}")
        pytest.skip(f"cannot set {limit_file}: {e}")
    return path, os.path.join(path, "cgroup.procs"), parent, ver


def test_memory_limit_from_cgroup(inferd):
    path, procs, parent, ver = _cgroup_setup()
    d = None
    try:
        def enter():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        d = inferd(asan=True, preexec_fn=enter)
        mine = open(f"/proc/{d.pid}/cgroup").read()
        assert os.path.basename(path) in mine, mine
        mem = d.memory()["memory"]
        assert mem["limit_mb"] == 512, mem
        assert mem["limit_source"] == "cgroup", mem
        assert mem["usage_source"] == "cgroup", mem
        assert 0 < mem["usage_mb"] < 512
        # an explicit MEMORY_LIMIT_MB wins over the cgroup
        d2 = inferd(env={"MEMORY_LIMIT_MB": "300"}, asan=True,
                    preexec_fn=enter)
        mem2 = d2.memory()["memory"]
        assert (mem2["limit_mb"], mem2["limit_source"]) == (300, "env")
        assert d2.stop() == 0
        assert d.stop() == 0
    finally:
        for dd in (d,):
            if dd is not None and dd.alive():
                try:
                    with open(parent, "w") as f:
                        f.write(str(dd.pid))
                except OSError:
                    pass
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.1)


# ------------------------------------------------------------ idle footprint

def _assert_idle_small(d, when):
    st = d.status()
    torch = d.torch_maps()
    assert not torch, f"{when}: libtorch mapped while idle: {torch}"
    assert st["VmRSS"] <= 8 * 1024, f"{when}: VmRSS {st['VmRSS']} kB > 8 MB"
    assert st["RssAnon"] <= 2 * 1024, \
        f"{when}: RssAnon {st['RssAnon']} kB > 2 MB"


def test_idle_footprint(inferd):
    # production binary: ASan's shadow memory would dominate these figures
    d = inferd(env={"MODEL_PATH": model("mlp.pt")}, asan=False)
    _assert_idle_small(d, "after start")
    for _ in range(20):
        d.health()
        d.memory()
    _assert_idle_small(d, "after /health and /memory")
    r = d.post("/predict", data="{bad")
    assert r.status_code == 400
    _assert_idle_small(d, "after a rejected /predict")
    assert d.memory()["runtime"] == {"loaded": False}


# ------------------------------------------------------------ signals

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_0_promptly(inferd, sig):
    d = inferd(asan=True)
    d.health()
    t0 = time.monotonic()
    rc = d.stop(sig, timeout=10)
    dt = time.monotonic() - t0
    assert rc == 0, d.stderr_text()[-2000:]
    assert dt < 3.0, f"took {dt:.2f}s to exit"


def test_sigterm_exits_0_with_open_idle_connection(inferd):
    d = inferd(asan=True)
    s = socket.create_connection(("127.0.0.1", d.port))
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(4096)  # keep-alive connection stays open
        t0 = time.monotonic()
        rc = d.stop(timeout=10)
        dt = time.monotonic() - t0
    finally:
        s.close()
    assert rc == 0
    assert dt < 3.0, f"took {dt:.2f}s to exit"


def test_port_in_use_fails_cleanly(inferd):
    d = inferd(asan=True)
    p = run_inferd(env={"PORT": str(d.port)})
    assert p.returncode != 0
    assert str(d.port) in p.stderr or "port" in p.stderr.lower()
    assert d.health()["status"] == "ok"


# ------------------------------------------------------------ auth

def test_admin_closed_in_production_without_token(inferd):
    d = inferd(env={"ADMIN_TOKEN": None, "BACKEND_PATH": "/nonexistent.so"},
               asan=True)
    for path in ("/model/load", "/model/unload"):
        r = d.post(path, auth=False)
        body = assert_json_reply(r, 403)
        assert "ADMIN_TOKEN" in body["error"], body
    # open endpoints stay open
    assert d.health()["status"] == "ok"
    assert d.get("/memory").status_code == 200


def test_admin_open_in_development_without_token(inferd):
    d = inferd(env={"ADMIN_TOKEN": None, "ENVIRONMENT": "development",
                    "BACKEND_PATH": "/nonexistent.so"}, asan=True)
    assert_json_reply(d.post("/model/load", auth=False), 503)  # no MODEL_PATH
    body = assert_json_reply(d.post("/model/unload", auth=False), 200)
    assert body == {"status": "not_loaded"}


def test_admin_token_required(inferd):
    tok = "s3cret-admin-value-xyz"
    d = inferd(env={"ADMIN_TOKEN": tok, "BACKEND_PATH": "/nonexistent.so"},
               asan=True)
    r = d.post("/model/unload", auth=False)
    assert_json_reply(r, 401)
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    r = d.post("/model/unload", auth=False,
               headers={"Authorization": "Bearer wrong"})
    assert_json_reply(r, 403)
    r = d.post("/model/unload", auth=False,
               headers={"Authorization": "Basic " + tok})
    assert_json_reply(r, 401)
    r = d.post("/model/unload", auth=False,
               headers={"Authorization": "Bearer " + tok})
    assert assert_json_reply(r, 200) == {"status": "not_loaded"}
    assert_json_reply(d.post("/model/load"), 503)  # auth passed, no MODEL_PATH
    for r in (d.get("/health"), d.get("/memory")):
        assert r.status_code == 200
        assert tok not in r.text
    assert d.stop() == 0
    assert tok not in d.stderr_text(), "a secret leaked into the log"


def test_api_key_guards_predict(inferd):
    key = "k3y-for-predict-abc"
    d = inferd(env={"API_KEY": key, "BACKEND_PATH": "/nonexistent.so"},
               asan=True)
    body = {"inputs": [[1.0, 2.0, 3.0, 4.0]]}
    assert_json_reply(d.post("/predict", body, auth=False), 401)
    assert_json_reply(d.post("/predict", body, auth=False,
                             headers={"Authorization": "Bearer nope"}), 403)
    assert_json_reply(d.post("/predict", body), 503)  # passes: no MODEL_PATH
    assert d.get("/health").status_code == 200
    assert d.get("/memory").status_code == 200
    assert d.stop() == 0
    assert key not in d.stderr_text(), "a secret leaked into the log"
