#!/bin/sh
# alloc_bench.sh -- glibc malloc (inferd calls malloc_trim(0) after every
# unload) against jemalloc (LD_PRELOAD of Debian's libjemalloc2):
#   - CYCLES load/unload cycles of big50.pt, MODEL_MMAP=false (the weights
#     are heap copies: stresses the allocator) and MODEL_MMAP=true
#   - PREDICTS predictions of mlp.pt over one keep-alive connection
# RSS and RssAnon (MiB, /proc/PID/status) at start (after the first cycle /
# first prediction, so that libtorch is mapped), right after the run, and
# SETTLE seconds later (jemalloc hands pages back on a decay timer), growth.
#
#   bench/alloc_bench.sh > alloc.md        (from the repository root)
#
# Environment: MODELS (build/models), CYCLES (200), PREDICTS (10000),
# SETTLE (12), JEMALLOC (/usr/lib/x86_64-linux-gnu/libjemalloc.so.2;
# apt-get install -y libjemalloc2 if missing), PORT (18700).
set -eu
cd "$(dirname "$0")/.."
MODELS=${MODELS:-build/models}
JEMALLOC=${JEMALLOC:-/usr/lib/x86_64-linux-gnu/libjemalloc.so.2}
[ -x build/inferd ] && [ -f build/libinferd_torch.so ] || make all >&2
[ -f "$MODELS/big50.pt" ] || /usr/bin/python3 tests/fixtures/make_models.py "$MODELS" >&2
if [ ! -f "$JEMALLOC" ]; then
    echo "installing libjemalloc2" >&2
    apt-get install -y libjemalloc2 >&2 || true
fi
export MODELS JEMALLOC
exec /usr/bin/python3 - <<'PYEOF'
import datetime, os, platform, signal, statistics, subprocess, sys, time
import requests

MODELS = os.environ["MODELS"]
JEMALLOC = os.environ["JEMALLOC"]
CYCLES = int(os.environ.get("CYCLES", "200"))
PREDICTS = int(os.environ.get("PREDICTS", "10000"))
SETTLE = float(os.environ.get("SETTLE", "12"))
PORT = [int(os.environ.get("PORT", "18700"))]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def mem(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon"):
            out[k] = int(v.split()[0]) / 1024
    return out


def start(model, mmap, alloc):
    PORT[0] += 1
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MODEL_", "MEMORY_", "LD_PRELOAD", "MALLOC_"))}
    env.update({"MODEL_PATH": f"{MODELS}/{model}", "MODEL_MMAP": mmap,
                "PORT": str(PORT[0]), "HOST": "127.0.0.1",
                "ENVIRONMENT": "development", "TORCH_NUM_THREADS": "1"})
    if alloc == "jemalloc":
        env["LD_PRELOAD"] = JEMALLOC
    p = subprocess.Popen(["build/inferd"], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{PORT[0]}"
    for _ in range(500):
        try:
            if requests.get(url + "/health", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.02)
    maps = open(f"/proc/{p.pid}/maps").read()
    assert (alloc == "jemalloc") == ("jemalloc" in maps), f"{alloc} not in use"
    return p, url


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(30)


ROWS = []


def add(alloc, work, mmap, p, s0, t_run, extra=""):
    s1 = mem(p.pid)
    time.sleep(SETTLE)
    s2 = mem(p.pid)
    ROWS.append((alloc, work, mmap, s0["VmRSS"], s0["RssAnon"], s1["VmRSS"],
                 s1["RssAnon"], s2["VmRSS"], s2["RssAnon"],
                 s2["RssAnon"] - s0["RssAnon"], t_run, extra))


def cycles(alloc, mmap):
    log(f"{alloc}: {CYCLES} load/unload cycles of big50.pt, MODEL_MMAP={mmap}")
    p, url = start("big50.pt", mmap, alloc)
    s = requests.Session()
    try:
        peaks = []
        for i in range(CYCLES + 1):
            assert s.post(url + "/model/load", timeout=120).json()["status"] == "loaded"
            if i == 0 or i == CYCLES:
                peaks.append(mem(p.pid)["RssAnon"])
            assert s.post(url + "/model/unload", timeout=120).json()["status"] == "unloaded"
            if i == 0:
                s0 = mem(p.pid)
                t0 = time.perf_counter()
        t = time.perf_counter() - t0
        add(alloc, f"{CYCLES} load/unload big50", mmap, p, s0, t,
            f"loaded RssAnon first {peaks[0]:.1f}, last {peaks[1]:.1f}")
    finally:
        stop(p)


def predicts(alloc):
    log(f"{alloc}: {PREDICTS} predictions of mlp.pt")
    p, url = start("mlp.pt", "true", alloc)
    s = requests.Session()
    body = '{"inputs": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}'
    h = {"Content-Type": "application/json"}
    try:
        assert s.post(url + "/predict", data=body, headers=h).ok
        s0 = mem(p.pid)
        lat = []
        t0 = time.perf_counter()
        for _ in range(PREDICTS):
            a = time.perf_counter()
            r = s.post(url + "/predict", data=body, headers=h, timeout=30)
            lat.append(time.perf_counter() - a)
            assert r.status_code == 200, r.text
        t = time.perf_counter() - t0
        add(alloc, f"{PREDICTS} predictions mlp", "true", p, s0, t,
            f"median {statistics.median(lat) * 1000:.2f} ms/request (client incl.)")
    finally:
        stop(p)


t_all = time.time()
for alloc in ("glibc", "jemalloc"):
    if alloc == "jemalloc" and not os.path.exists(JEMALLOC):
        log(f"skipping jemalloc: {JEMALLOC} missing")
        continue
    cycles(alloc, "false")
    cycles(alloc, "true")
    predicts(alloc)

print("## Allocator (bench/alloc_bench.sh)\n")
print(f"{datetime.date.today().isoformat()}, {platform.node()}: kernel "
      f"{platform.release()}, {os.cpu_count()} CPUs; glibc "
      f"{platform.libc_ver()[1]}; jemalloc = LD_PRELOAD={JEMALLOC}; "
      f"TORCH_NUM_THREADS=1. MiB from /proc/PID/status. start = after the "
      f"first cycle (model unloaded) or the first prediction; after = right "
      f"after the run; settled = {SETTLE:.0f} s later; growth = RssAnon "
      f"settled - start. Run time {time.time() - t_all:.0f} s.\n")
print("| allocator | work | MODEL_MMAP | RSS start | RssAnon start | RSS after "
      "| RssAnon after | RSS settled | RssAnon settled | RssAnon growth | run s | notes |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for r in ROWS:
    cells = list(r[:3]) + [f"{v:.1f}" for v in r[3:11]] + [r[11]]
    print("| " + " | ".join(cells) + " |")
print()
PYEOF
