#!/bin/sh
# memory_bench.sh -- inferd's memory, measured: idle; loaded with MODEL_MMAP
# on and off; after unload; for big50.pt, big300.pt and big560.pt, under a
# 512 MB memory cgroup where the host allows one (root, cgroup v1 or v2).
# Beside it: the floor (build/floor: a bare libtorch process doing
# torch::jit::load) and the Python seed server (/work/shared/baseline),
# idle and loaded, under the same cgroup (is it OOM-killed?).
#
#   bench/memory_bench.sh > memory.md        (from the repository root)
#
# Environment: MODELS (default build/models), LIMIT_MB (512), ITERS
# (predictions per loaded row for the latency column, default 10),
# SEED_DIR (/work/shared/baseline), PORT (first port, default 18500),
# NO_CGROUP=1 to measure without a cgroup.
# Builds what is missing: build/inferd (make all), build/floor (g++), the
# fixtures (tests/fixtures/make_models.py --large --huge).
# Writes markdown to stdout, progress to stderr.
set -eu
cd "$(dirname "$0")/.."
MODELS=${MODELS:-build/models}
PY=/usr/bin/python3

[ -x build/inferd ] && [ -f build/libinferd_torch.so ] || make all >&2
if [ ! -x build/floor ]; then
    echo "building build/floor" >&2
    g++ -std=c++17 -O2 bench/floor.cpp -o build/floor \
        -I/usr/include/torch/csrc/api/include -ltorch -ltorch_cpu -lc10 >&2
fi
for m in big50.pt big300.pt big560.pt; do
    if [ ! -f "$MODELS/$m" ]; then
        $PY tests/fixtures/make_models.py "$MODELS" --large --huge >&2
        break
    fi
done

export MODELS
exec $PY - "$@" <<'PYEOF'
import datetime, json, os, platform, signal, socket, statistics, subprocess
import sys, time
from pathlib import Path

import requests

MODELS = Path(os.environ["MODELS"])
LIMIT_MB = int(os.environ.get("LIMIT_MB", "512"))
ITERS = int(os.environ.get("ITERS", "10"))
SEED_DIR = Path(os.environ.get("SEED_DIR", "/work/shared/baseline"))
NO_CGROUP = os.environ.get("NO_CGROUP") == "1"
PORT = [int(os.environ.get("PORT", "18500"))]
MiB = 1 << 20
SETTINGS_PREFIXES = ("MODEL_", "MEMORY_", "PORT", "HOST", "LAZY_", "TORCH_",
                     "ENVIRONMENT", "ADMIN_TOKEN", "API_KEY", "PRELOAD_",
                     "UNLOAD_", "RUNTIME_", "ACTIVATION_", "LD_PRELOAD")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def port():
    PORT[0] += 1
    return PORT[0]


def status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                v = v.strip()
                if v.endswith(" kB"):
                    out[k] = int(v[:-3]) / 1024
    except OSError:
        return None
    return {k: out.get(k) for k in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


# ---------------------------------------------------------------- cgroup

def own_cgroup(ctrl):
    for line in open("/proc/self/cgroup"):
        _, c, p = line.rstrip("\n").split(":", 2)
        if (ctrl == "" and c == "") or (ctrl and ctrl in c.split(",")):
            return p
    return "/"


class Cgroup:
    def __init__(self, limit_mb):
        name = f"inferd-membench-{os.getpid()}-{time.monotonic_ns()}"
        root2 = Path("/sys/fs/cgroup")
        ctl = root2 / "cgroup.controllers"
        self.path = None
        if ctl.exists() and "memory" in ctl.read_text().split():
            self.version = 2
            for parent in (root2 / own_cgroup("").lstrip("/"), root2):
                try:
                    sub = parent / "cgroup.subtree_control"
                    if "memory" not in sub.read_text().split():
                        sub.write_text("+memory")
                    (parent / name).mkdir()
                    (parent / name / "memory.max").write_text(str(limit_mb * MiB))
                    self.path = parent / name
                    break
                except OSError:
                    continue
        else:
            self.version = 1
            p = Path("/sys/fs/cgroup/memory") / own_cgroup("memory").lstrip("/") / name
            p.mkdir()
            (p / "memory.limit_in_bytes").write_text(str(limit_mb * MiB))
            self.path = p
        if not self.path:
            raise OSError("no writable memory cgroup")

    def oom_kills(self):
        f = "memory.events" if self.version == 2 else "memory.oom_control"
        for line in (self.path / f).read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return None

    def peak_mb(self):
        f = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.path / f).read_text()) / MiB
        except (OSError, ValueError):
            return None

    def enter(self):
        procs = str(self.path / "cgroup.procs")

        def fn():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        return fn

    def remove(self):
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def cgroup_or_none():
    if NO_CGROUP:
        return None
    try:
        return Cgroup(LIMIT_MB)
    except OSError as e:
        log(f"no cgroup ({e}); measuring without one")
        return None


# ---------------------------------------------------------------- processes

def clean_env(extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(SETTINGS_PREFIXES)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Proc:
    def __init__(self, argv, env, cg, url, cwd=None):
        self.cg = cg
        self.url = url
        self.err = open(f"/tmp/membench-{os.getpid()}-{time.monotonic_ns()}.log", "w+b")
        self.p = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self.err,
                                  stderr=self.err, stdin=subprocess.DEVNULL,
                                  preexec_fn=cg.enter() if cg else None)
        self.oom0 = cg.oom_kills() if cg else None

    def wait_up(self, timeout=60):
        t = time.monotonic() + timeout
        while time.monotonic() < t:
            if self.p.poll() is not None:
                raise RuntimeError(f"exited {self.p.returncode}: {self.tail()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("did not come up")

    def alive(self):
        return self.p.poll() is None

    def mem(self):
        return status(self.p.pid)

    def oom(self):
        if not self.cg:
            return None
        n = self.cg.oom_kills()
        return None if n is None else n - (self.oom0 or 0)

    def tail(self):
        self.err.flush()
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-600:]

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.err.close()
        os.unlink(self.err.name)
        return self.p.returncode


def inferd(path, mmap, cg, extra=None):
    pt = port()
    env = clean_env({"MODEL_PATH": path, "MODEL_MMAP": mmap, "PORT": pt,
                     "HOST": "127.0.0.1", "ENVIRONMENT": "development",
                     "TORCH_NUM_THREADS": "1", **(extra or {})})
    p = Proc(["build/inferd"], env, cg, f"http://127.0.0.1:{pt}")
    p.wait_up()
    return p


def body_for(name):
    width = 784 if name == "big50.pt" else 4096
    import random
    rnd = random.Random(7)
    return {"inputs": [[rnd.gauss(0, 1) for _ in range(width)]]}


def fmt(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


ROWS = []


def row(model, who, state, mem, note="", lat=None, peak=None):
    m = mem or {}
    ROWS.append((model, who, state, m.get("VmRSS"), m.get("RssAnon"),
                 m.get("RssFile"), peak if peak is not None else m.get("VmHWM"),
                 lat, note))


def predict_n(p, body, n):
    """n predictions; (client ms, daemon inference_ms) lists, error."""
    data = json.dumps(body)
    lat, fwd = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        r = requests.post(p.url + "/predict", data=data, timeout=300,
                          headers={"Content-Type": "application/json"})
        if r.status_code != 200:
            return lat, fwd, f"HTTP {r.status_code}: {r.text[:200]}"
        lat.append((time.perf_counter() - t0) * 1000)
        fwd.append(r.json().get("inference_ms"))
    return lat, fwd, None


def bench_inferd(name):
    path = str(MODELS / name)
    size_mb = os.path.getsize(path) / MiB
    body = body_for(name)
    for mmap in ("true", "false"):
        fits = not (mmap == "false" and size_mb > LIMIT_MB * 0.8)
        cg = cgroup_or_none() if fits else None
        where = f"cgroup {LIMIT_MB} MB" if cg else "no cgroup"
        if not fits:
            where += (f" (weights {size_mb:.0f} MB do not fit in {LIMIT_MB} MB;"
                  f" MEMORY_LIMIT_MB=4096)")
        drop_cache(path)
        log(f"inferd {name} mmap={mmap} ({where})")
        # no cgroup: the limit would default to 512 MB and the guard refuse
        p = inferd(path, mmap, cg,
                   None if cg else {"MEMORY_LIMIT_MB": "4096"})
        try:
            time.sleep(0.3)
            label = f"inferd mmap {'on' if mmap == 'true' else 'off'}"
            if mmap == "true":
                row(name, "inferd", "idle", p.mem(), where)
            r = requests.post(p.url + "/model/load", timeout=300)
            if r.status_code != 200:
                row(name, label, f"load refused {r.status_code}", p.mem(),
                    where + "; " + r.text[:120])
                continue
            lat, fwd, err = predict_n(p, body, ITERS + 1)
            if not p.alive():
                row(name, label, "loaded", None,
                    f"{where}; exited {p.p.returncode}, OOM kills {p.oom()}")
                continue
            info = requests.get(p.url + "/memory", timeout=10).json()
            mem = p.mem()
            note = (f"{where}; load peak {info['model']['load_peak_rss_mb']:.0f}"
                    f" MB; paging {str(info['memory']['paging']).lower()}")
            if cg:
                note += f"; cgroup peak {cg.peak_mb():.0f} MB, OOM kills {p.oom()}"
            if err:
                note += "; " + err
            if len(lat) > 1:
                note += (f"; request {statistics.median(lat[1:]):.1f} ms "
                         f"(client, JSON)")
            row(name, label, "loaded + predict", mem, note,
                statistics.median(fwd[1:]) if len(fwd) > 1 else None)
            requests.post(p.url + "/model/unload", timeout=120)
            time.sleep(0.2)
            row(name, label, "after unload", p.mem(), where)
        finally:
            p.stop()
            if cg:
                cg.remove()


def bench_floor(name):
    path = str(MODELS / name)
    size_mb = os.path.getsize(path) / MiB
    fits = size_mb <= LIMIT_MB * 0.8
    cg = cgroup_or_none() if fits else None
    where = f"cgroup {LIMIT_MB} MB" if cg else "no cgroup"
    if not fits:
        where += f" (does not fit in {LIMIT_MB} MB)"
    shape = "1,784" if name == "big50.pt" else "1,4096"
    log(f"floor {name} ({where})")
    drop_cache(path)
    env = clean_env({"OMP_NUM_THREADS": "1"})
    out = subprocess.run(["build/floor", path, "--iters", str(ITERS),
                          "--shape", shape], env=env, capture_output=True,
                         text=True, preexec_fn=cg.enter() if cg else None)
    oom = cg.oom_kills() if cg else None
    if cg:
        cg.remove()
    if out.returncode != 0:
        row(name, "floor", "load", None,
            f"{where}; exit {out.returncode}, OOM kills {oom}: {out.stderr[-200:]}")
        return
    j = json.loads(out.stdout)
    conv = lambda d: {k[:-3]: v / 1024 for k, v in d.items()}
    row(name, "floor", "start", conv(j["start"]), where)
    row(name, "floor", "after load", conv(j["after_load"]), where)
    row(name, "floor", "after forward", conv(j["after_forward"]), where,
        j["median_forward_us"] / 1000)


SEED = []


def bench_seed(name):
    if not (SEED_DIR / "seed_server.py").exists():
        SEED.append((name, "skipped: no seed_server.py in " + str(SEED_DIR)))
        return
    path = str(MODELS / name)
    cg = cgroup_or_none()
    where = f"cgroup {LIMIT_MB} MB" if cg else "no cgroup"
    pt = port()
    log(f"seed server {name} ({where})")
    drop_cache(path)
    env = clean_env({"MODEL_PATH": os.path.abspath(path), "TORCH_NUM_THREADS": "1"})
    p = Proc(["/usr/bin/python3", "-m", "uvicorn", "seed_server:app",
              "--app-dir", str(SEED_DIR), "--host", "127.0.0.1", "--port",
              str(pt), "--workers", "1", "--log-level", "warning"],
             env, cg, f"http://127.0.0.1:{pt}")
    try:
        p.wait_up()
        time.sleep(0.5)
        row(name, "seed server", "idle", p.mem(), where)
        t0 = time.perf_counter()
        try:
            r = requests.post(p.url + "/predict", json=body_for(name), timeout=300)
            res = f"HTTP {r.status_code}"
        except requests.RequestException as e:
            res = f"connection failed ({type(e).__name__})"
        dt = (time.perf_counter() - t0) * 1000
        time.sleep(0.5)
        alive = p.alive()
        oom = p.oom()
        mem = p.mem() if alive else None
        peak = cg.peak_mb() if cg else None
        outcome = ("OOM-killed" if (oom or 0) > 0 else
                   "exited" if not alive else "served")
        note = f"{where}; first predict: {res} after {dt:.0f} ms; {outcome}"
        if cg:
            note += f" (OOM kills {oom}, cgroup peak {fmt(peak, 0)} MB)"
        if not alive:
            note += f", exit code {p.p.returncode}"
        row(name, "seed server", "first predict (lazy load)", mem, note)
        SEED.append((name, outcome))
    finally:
        p.stop()
        if cg:
            cg.remove()


def main():
    started = time.time()
    for name in ("big50.pt", "big300.pt", "big560.pt"):
        bench_inferd(name)
        bench_floor(name)
    for name in ("big300.pt", "big560.pt"):
        bench_seed(name)
    kernel = platform.release()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    memtotal = next(int(l.split()[1]) for l in open("/proc/meminfo")
                    if l.startswith("MemTotal")) // 1024
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    print(f"## Memory (bench/memory_bench.sh)\n")
    print(f"{datetime.date.today().isoformat()}, {platform.node()}: Debian "
          f"{open('/etc/debian_version').read().strip()}, kernel {kernel}, "
          f"{os.cpu_count()} CPUs ({cpu}), {memtotal} MB RAM, no swap; "
          f"THP `{thp}`; TORCH_NUM_THREADS=1; page cache of the model file "
          f"dropped before each run; forward ms = median of {ITERS} "
          f"predictions (one row) after the first: the daemon's inference_ms "
          f"for inferd, median_forward_us for the floor; the notes give the "
          f"client-side request time (JSON encode + HTTP + decode). Figures in MiB from "
          f"/proc/PID/status; \"peak\" is VmHWM (for inferd loaded rows: "
          f"since the daemon reset it at the load, i.e. the peak of the load "
          f"and the predictions). Run time {time.time() - started:.0f} s.\n")
    print("| model | process | state | RSS | RssAnon | RssFile | peak | "
          "forward ms | notes |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for r in ROWS:
        print("| " + " | ".join([r[0], r[1], r[2]] + [fmt(v) for v in r[3:8]]
                                + [r[8]]) + " |")
    print()
    for name, outcome in SEED:
        print(f"- seed server with {name} under {LIMIT_MB} MB: **{outcome}**")
    print()


main()
PYEOF
