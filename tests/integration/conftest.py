"""Fixtures for inferd's integration tests: start the real binary, talk HTTP
to it, read its /proc figures, and check how it ends.

Environment (set by `make integration`; defaults point into build/):
    INFERD_BIN        the daemon (tests that load a model use it)
    INFERD_ASAN_BIN   the same daemon built with ASan + UBSan; tests that do
                      not load a model run against it when it is set
    INFERD_MODELS     the fixture directory made by tests/fixtures/make_models.py

Every daemon started through the `inferd` factory fixture is stopped at
teardown with SIGTERM and must exit 0 (unless the test stopped it itself and
checked the code), and its stderr must hold no sanitizer report.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(FIXTURES))

INFERD_BIN = os.environ.get("INFERD_BIN") or str(ROOT / "build" / "inferd")
INFERD_ASAN_BIN = os.environ.get("INFERD_ASAN_BIN") or ""
# `make integration-asan` points both at the sanitizer build, so that the
# tests that load libtorch run under ASan + UBSan too. Figures of RSS mean
# nothing there (shadow memory, quarantine): those tests are marked.
UNDER_ASAN = bool(INFERD_ASAN_BIN) and INFERD_BIN == INFERD_ASAN_BIN
memory_figures = pytest.mark.skipif(
    UNDER_ASAN, reason="RSS figures are not meaningful under ASan")
MODELS = Path(os.environ.get("INFERD_MODELS") or (ROOT / "build" / "models"))

# Every setting the daemon reads: scrubbed from the inherited environment so
# that a developer's shell cannot change what a test sees.
SETTINGS = [
    "PORT", "HOST", "MODEL_PATH", "MODEL_NAME", "LAZY_LOADING", "ENVIRONMENT",
    "MEMORY_LIMIT_MB", "MEMORY_WARNING_PERCENT", "MEMORY_CRITICAL_PERCENT",
    "MAX_REQUEST_MB", "SHUTDOWN_TIMEOUT_SECONDS", "LOG_LEVEL", "LOG_FORMAT",
    "BACKEND_PATH", "TORCH_NUM_THREADS", "MODEL_MMAP", "MEMORY_GUARD",
    "RUNTIME_ANON_MB", "ACTIVATION_MB", "MODEL_IDLE_UNLOAD_SECONDS",
    "UNLOAD_ON_PRESSURE", "INFERENCE_WORKERS", "QUEUE_CAPACITY",
    "MAX_BATCH_SIZE", "BATCH_TIMEOUT_US", "CONNECTION_TIMEOUT_SECONDS",
    "MAX_CONNECTIONS", "ADMIN_TOKEN", "API_KEY", "JIT_PROFILING",
    "MODEL_WARMUP", "PRELOAD_RUNTIME",
]

# Admin routes (/model/load, /model/unload) are closed in production unless
# ADMIN_TOKEN is set; the factory sets this one by default and Daemon.post
# sends it to those routes.
ADMIN_TOKEN = "itest-admin-token-5f2c"
ADMIN_PREFIXES = ("/model/", "/v2/repository")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")

SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}

HEALTH_TIMEOUT = 10.0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update(SAN_ENV)
    if UNDER_ASAN:
        # ASan's shadow memory makes RSS hundreds of MB: the memory guard
        # would refuse loads under the default 512 MB. Tests of the guard
        # set their own limit.
        env["MEMORY_LIMIT_MB"] = "16384"
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def sanitizer_report(text):
    return [m for m in SANITIZER_MARKERS if m in text]


def read_status(pid):
    """/proc/PID/status as {field: value}; memory fields in kB as ints."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            val = val.strip()
            if val.endswith(" kB"):
                out[key] = int(val[:-3])
            else:
                out[key] = val
    return out


def read_maps(pid):
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def mapped_libs(pid):
    libs = set()
    for line in read_maps(pid).splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            libs.add(parts[5])
    return libs


def maps_mention_torch(pid):
    return [p for p in mapped_libs(pid) if "torch" in os.path.basename(p)]


class Daemon:
    """One running inferd process."""

    def __init__(self, binary, env, args, tmpdir, sanitized, preexec_fn=None):
        self.binary = binary
        self.sanitized = sanitized
        self.port = int(env["PORT"]) if str(env.get("PORT", "")).isdigit() else None
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = Path(tmpdir) / f"inferd-{self.port}-{time.time_ns()}.stderr"
        self._errf = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([binary] + list(args), env=env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=self._errf, preexec_fn=preexec_fn)
        self.pid = self.proc.pid
        self.stopped = False
        self.returncode = None
        self.session = requests.Session()
        self.admin_token = env.get("ADMIN_TOKEN") or None
        self.api_key = env.get("API_KEY") or None

    def auth_headers(self, path):
        """The Authorization header this daemon wants for path, if any."""
        if path.startswith(ADMIN_PREFIXES):
            tok = self.admin_token
        elif path.startswith("/predict") or path.endswith("/infer"):
            tok = self.api_key
        else:
            tok = None
        return {"Authorization": f"Bearer {tok}"} if tok else {}

    # -- process
    def wait_healthy(self, timeout=HEALTH_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self._close()
                raise AssertionError(
                    f"inferd exited with {rc} before answering /health:\n"
                    + self.stderr_text()[-3000:])
            try:
                r = requests.get(self.url + "/health", timeout=1)
                if r.status_code == 200:
                    return r
                last = r.status_code
            except requests.RequestException as e:
                last = e
            time.sleep(0.02)
        raise AssertionError(f"/health did not answer within {timeout}s "
                             f"(last: {last}):\n" + self.stderr_text()[-3000:])

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Send sig, wait for exit, return the exit code (killed: -9)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stopped = True
        self.returncode = self.proc.returncode
        self._close()
        return self.returncode

    def _close(self):
        if not self._errf.closed:
            self._errf.close()
        self.session.close()

    def stderr_text(self):
        try:
            self._errf.flush()
        except ValueError:
            pass
        return self.stderr_path.read_text(errors="replace")

    def status(self):
        return read_status(self.pid)

    def maps(self):
        return read_maps(self.pid)

    def torch_maps(self):
        return maps_mention_torch(self.pid)

    def rss_kb(self):
        return self.status()["VmRSS"]

    def anon_kb(self):
        return self.status()["RssAnon"]

    # -- HTTP
    def get(self, path, **kw):
        kw.setdefault("timeout", 30)
        return self.session.get(self.url + path, **kw)

    def post(self, path, json_body=None, data=None, auth=True, **kw):
        """POST; with auth, the admin token / API key this daemon was
        started with is sent where it is needed."""
        kw.setdefault("timeout", 60)
        headers = dict(self.auth_headers(path)) if auth else {}
        if json_body is not None:
            data = json.dumps(json_body)
            headers["Content-Type"] = "application/json"
        headers.update(kw.pop("headers", None) or {})
        return self.session.post(self.url + path, data=data, headers=headers,
                                 **kw)

    def health(self):
        r = self.get("/health", timeout=5)
        assert r.status_code == 200, r.text
        return r.json()

    def memory(self):
        r = self.get("/memory", timeout=5)
        assert r.status_code == 200, r.text
        return r.json()

    def predict(self, inputs, dtype=None, **kw):
        body = {"inputs": inputs}
        if dtype is not None:
            body["dtype"] = dtype
        return self.post("/predict", body, **kw)


def model(name):
    p = MODELS / name
    if not p.exists():
        pytest.fail(f"fixture {p} missing: run /usr/bin/python3 "
                    f"tests/fixtures/make_models.py {MODELS}")
    return str(p)


def manifest():
    with open(MODELS / "manifest.json") as f:
        return json.load(f)


@pytest.fixture
def inferd(tmp_path):
    """Factory: inferd(env={...}, args=[...], asan=False, wait=True,
    port=None, preexec_fn=None) -> Daemon.

    asan=True runs INFERD_ASAN_BIN when set (for tests that load no model).
    PORT defaults to a free port, HOST to 127.0.0.1 and ADMIN_TOKEN to
    conftest.ADMIN_TOKEN; a value of None in env removes the variable."""
    started = []

    def start(env=None, args=(), asan=False, wait=True, preexec_fn=None):
        binary = INFERD_ASAN_BIN if (asan and INFERD_ASAN_BIN) else INFERD_BIN
        full = {"PORT": free_port(), "HOST": "127.0.0.1",
                "ADMIN_TOKEN": ADMIN_TOKEN}
        full.update(env or {})
        d = Daemon(binary, base_env(full), args, tmp_path,
                   sanitized=binary == INFERD_ASAN_BIN and bool(INFERD_ASAN_BIN),
                   preexec_fn=preexec_fn)
        started.append(d)
        if wait:
            d.wait_healthy()
        return d

    yield start

    problems = []
    for d in started:
        was_stopped = d.stopped
        rc = d.stop()
        text = d.stderr_text()
        if not was_stopped and rc != 0:
            problems.append(f"pid {d.pid}: exit code {rc} after SIGTERM "
                            f"(expected 0); stderr tail:\n{text[-3000:]}")
        found = sanitizer_report(text)
        if found:
            problems.append(f"pid {d.pid}: sanitizer report {found}:\n"
                            f"{text[-6000:]}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def run_inferd(args=(), env=None, timeout=10, asan=True):
    """Run the binary to completion (config errors, --help, --version)."""
    binary = INFERD_ASAN_BIN if (asan and INFERD_ASAN_BIN) else INFERD_BIN
    full = {"HOST": "127.0.0.1"}
    full.update(env or {})
    p = subprocess.run([binary] + list(args), env=base_env(full),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    found = sanitizer_report(p.stderr)
    assert not found, f"sanitizer report {found}:\n{p.stderr}"
    return p


def assert_json_reply(r, status=None):
    """The reply is JSON with Content-Type application/json; an error reply
    is {"error": "<non-empty string>"}. Returns the parsed body."""
    if status is not None:
        assert r.status_code == status, (r.status_code, r.text)
    ctype = r.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() == "application/json", (ctype, r.text)
    body = r.json()
    if r.status_code >= 400:
        assert isinstance(body, dict) and isinstance(body.get("error"), str) \
            and body["error"], r.text
    return body


def raw_http(port, request_bytes, timeout=10.0, body_iter=None):
    """Send raw bytes (and then, ignoring a reset, the chunks of body_iter);
    return (status, headers dict lower-cased, body bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request_bytes)
        if body_iter is not None:
            try:
                for chunk in body_iter:
                    s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                hdrs = parse_headers(head)
                n = int(hdrs.get("content-length", "-1"))
                if n >= 0 and len(rest) >= n:
                    break
    finally:
        s.close()
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no HTTP reply (got {data[:200]!r})"
    status = int(head.split(b" ", 2)[1])
    return status, parse_headers(head), rest


def parse_headers(head):
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return hdrs
