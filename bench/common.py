"""common.py -- what bench/run.py and bench/coldstart.py share: paths,
server processes, HTTP helpers, the machine description, medians, and the
marked blocks of docs/performance.md. Standard library only."""
import datetime
import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.join(ROOT, "build")
BENCH_BUILD = os.path.join(BUILD, "bench")
MODELS = os.environ.get("INFERD_MODELS", os.path.join(BUILD, "models"))
INFERD = os.path.join(BUILD, "inferd")
SHIM = os.path.join(BUILD, "libinferd_torch.so")
DOC = os.environ.get("BENCH_DOC", os.path.join(ROOT, "docs", "performance.md"))
SEED_DIR = os.path.abspath(os.path.join(ROOT, "..", "shared", "baseline"))
SYS_PYTHON = "/usr/bin/python3"  # has torch; the python3 on PATH may not
LOGS = os.path.join(BENCH_BUILD, "logs")


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def die(msg):
    print("bench: " + msg, file=sys.stderr)
    sys.exit(1)


def need_files(paths, hint):
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        die("missing %s; %s" % (", ".join(os.path.relpath(p, ROOT) for p in missing), hint))


# ------------------------------------------------------------ machine


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        if dirty:
            commit += " (+ uncommitted changes)"
    except OSError:
        commit = "unknown"
    try:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
    except (OSError, AttributeError):
        mem_kb = 0
    try:
        load = open("/proc/loadavg").read().split()[:3]
    except OSError:
        load = ["?"] * 3
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "os": distro(),
        "mem_gb": round(mem_kb / 1048576, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "load": " ".join(load),
    }


def distro():
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def machine_line(m):
    return ("%s, %d cores (%d usable), %s GB RAM, %s, kernel %s; %s; commit %s; "
            "load average at start %s" % (m["cpu"], m["cores"], m["usable"], m["mem_gb"], m["os"],
                                          m["kernel"], m["date"], m["commit"], m["load"]))


# ------------------------------------------------------------ bodies


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def random_array(shape, rnd):
    if len(shape) == 1:
        return [f32(rnd.gauss(0, 1)) for _ in range(shape[0])]
    return [random_array(shape[1:], rnd) for _ in range(shape[0])]


def write_body(name, shape=None, inputs=None):
    """A /predict body as a Python client writes it: json.dumps of
    tensor.tolist() (float32 values as their shortest double text)."""
    os.makedirs(os.path.join(BENCH_BUILD, "bodies"), exist_ok=True)
    path = os.path.join(BENCH_BUILD, "bodies", name + ".json")
    if inputs is None:
        inputs = random_array(shape, random.Random(0))
    with open(path, "w") as f:
        f.write(json.dumps({"inputs": inputs}))
    return path


# ------------------------------------------------------------ processes


def free_port(start=18100):
    for port in range(start, start + 400):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    die("no free TCP port from %d" % start)


_next_port = [18100]


def next_port():
    p = free_port(_next_port[0])
    _next_port[0] = p + 1
    return p


class Server:
    """A server process on 127.0.0.1:port; stderr goes to a log file."""

    def __init__(self, name, argv, env, port, cwd=ROOT):
        os.makedirs(LOGS, exist_ok=True)
        self.name, self.port = name, port
        self.log_path = os.path.join(LOGS, name + ".log")
        self.log = open(self.log_path, "w")
        full = dict(os.environ)
        full.update(env)
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(argv, env=full, cwd=cwd, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def wait_listening(self, timeout=60.0):
        """Seconds from start until the port accepts a connection."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s; see %s" % (self.name, self.proc.returncode,
                                                                  self.log_path))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return time.monotonic() - self.t_start
            except OSError:
                time.sleep(0.002)
        raise RuntimeError("%s did not listen on %d within %.0f s" % (self.name, self.port, timeout))

    def rss_kb(self):
        out = {}
        try:
            for line in open("/proc/%d/status" % self.proc.pid):
                k = line.split(":")[0]
                if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                    out[k] = int(line.split()[1])
        except OSError:
            pass
        return out

    def log_text(self):
        self.log.flush()
        try:
            return open(self.log_path).read()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def inferd_server(name, model, extra_env=None, port=None):
    port = port or next_port()
    env = {"MODEL_PATH": model, "ENVIRONMENT": "development", "PORT": str(port),
           "HOST": "127.0.0.1", "LOG_LEVEL": "warn"}
    env.update(extra_env or {})
    return Server(name, [INFERD], env, port)


def seed_available():
    """None if the seed server can run here, else the reason it cannot."""
    if not os.path.exists(os.path.join(SEED_DIR, "seed_server.py")):
        return "%s/seed_server.py is absent" % os.path.relpath(SEED_DIR, ROOT)
    if not os.path.exists(SYS_PYTHON):
        return "%s is absent" % SYS_PYTHON
    r = subprocess.run([SYS_PYTHON, "-c", "import fastapi, uvicorn, psutil, torch"],
                       capture_output=True, text=True)
    if r.returncode:
        last = (r.stderr.strip().splitlines() or ["import failed"])[-1]
        return ("its packages are missing (%s): apt-get install python3-fastapi "
                "python3-uvicorn python3-psutil python3-torch" % last)
    return None


def seed_server(name, model, extra_env=None, port=None):
    port = port or next_port()
    env = {"MODEL_PATH": model, "ENVIRONMENT": "development"}
    env.update(extra_env or {})
    argv = [SYS_PYTHON, "-m", "uvicorn", "seed_server:app", "--app-dir", SEED_DIR,
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return Server(name, argv, env, port)


# ------------------------------------------------------------ HTTP


def http(method, url, body=None, timeout=120):
    """(status, parsed JSON or text, seconds)."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    dt = time.monotonic() - t0
    try:
        return status, json.loads(raw), dt
    except ValueError:
        return status, raw.decode(errors="replace"), dt


def predict(server, body, path="/predict"):
    status, reply, dt = http("POST", server.base + path, body)
    if status != 200:
        raise RuntimeError("%s %s answered %s: %s" % (server.name, path, status, str(reply)[:300]))
    return reply, dt


# ------------------------------------------------------------ the doc

MEMORY_HEADING = "## Memory"
MEMORY_PLACEHOLDER = "(filled by the memory benchmarks)"

DOC_TEMPLATE = """# inferd performance

How fast inferd is, against what it could be at best on the same machine,
and against the Python server it replaces. Every figure below was produced
by a command in this repository; the tables between `<!-- ...:start -->`
and `<!-- ...:end -->` markers are rewritten by those commands, the text
around them is not.

## Throughput and latency (`make bench`)

<!-- bench:start -->
(not run yet: `make all && make models && make bench`)
<!-- bench:end -->

## Cold start and first calls (`/usr/bin/python3 bench/coldstart.py`)

<!-- coldstart:start -->
(not run yet: `/usr/bin/python3 bench/coldstart.py`)
<!-- coldstart:end -->

## JSON codec profile

<!-- profile:start -->
(not run yet)
<!-- profile:end -->

## Memory

(filled by the memory benchmarks)
"""


def write_block(tag, text):
    """Replace the text between <!-- tag:start --> and <!-- tag:end --> in
    docs/performance.md (creating the file from the template if needed)."""
    if os.path.exists(DOC):
        doc = open(DOC).read()
    else:
        os.makedirs(os.path.dirname(DOC), exist_ok=True)
        doc = DOC_TEMPLATE
    start, end = "<!-- %s:start -->" % tag, "<!-- %s:end -->" % tag
    block = "%s\n%s\n%s" % (start, text.rstrip("\n"), end)
    if start in doc and end in doc:
        i, j = doc.index(start), doc.index(end) + len(end)
        doc = doc[:i] + block + doc[j:]
    else:
        # Before the memory section, which belongs to another benchmark.
        k = doc.find("\n" + MEMORY_HEADING + "\n")
        k = len(doc) if k < 0 else k + 1
        doc = doc[:k] + block + "\n\n" + doc[k:]
    if MEMORY_HEADING + "\n" not in doc:
        doc = doc.rstrip("\n") + "\n\n%s\n\n%s\n" % (MEMORY_HEADING, MEMORY_PLACEHOLDER)
    tmp = DOC + ".tmp"
    with open(tmp, "w") as f:
        f.write(doc)
    os.replace(tmp, DOC)


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def fmt(x, nd=0, unit=""):
    if x is None:
        return "n/a"
    if nd == 0:
        return "{:,.0f}{}".format(x, unit)
    return "{:,.{}f}{}".format(x, nd, unit)
