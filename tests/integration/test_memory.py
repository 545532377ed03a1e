"""Memory behaviour of inferd, measured on the real binary.

1. Under a real 512 MB cgroup (created here; v1 or v2), big300.pt with
   MODEL_MMAP on serves 200 correct predictions with no OOM kill; with
   MODEL_MMAP off the outcome (served / OOM-killed / 507) is recorded.
2. big560.pt (weights > the 512 MB limit) under the same cgroup serves 20
   correct predictions from the page cache, /memory says "paging": true,
   stderr warns; latency is recorded beside the same model without a cgroup.
3. The zero-copy load: RssAnon grows < 5% of the weights (+ activations),
   VmHWM during the load < 10% of the weights; outputs with mmap equal
   outputs without it for every fixture.
4. The memory guard: 507 with its figures, the server stays up, the
   estimate counts the weights only without mmap.
5. Idle unload is not kept alive (nor undone) by /health and /memory.
6. UNLOAD_ON_PRESSURE unloads an idle model and logs the threshold.

Needs the fixtures with --large --huge (tests/fixtures/make_models.py) and
root for the cgroup tests. Figures are printed as `[memory] {...}` lines:
run with `-s` (or `-rA`) to see them; `-rs` prints the reason of a skip.
Set INFERD_MEMORY_RECORD=FILE to also append them to FILE as JSON lines.
"""

import json
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import MODELS, assert_json_reply, manifest, model, read_status
from reference import reference

torch.set_num_threads(1)

T1 = {"TORCH_NUM_THREADS": "1"}
LIMIT_MB = 512
MiB = 1 << 20


# ------------------------------------------------------------ recording

def record(test, **figures):
    """Print one line of figures (and append it to INFERD_MEMORY_RECORD)."""
    line = json.dumps({"test": test, **figures}, sort_keys=True)
    print(f"[memory] {line}", flush=True)
    path = os.environ.get("INFERD_MEMORY_RECORD")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def skip(reason):
    print(f"[memory] SKIP: {reason}", flush=True)
    pytest.skip(reason)


def need(name):
    p = MODELS / name
    if not p.exists():
        skip(f"{p} missing: build it with /usr/bin/python3 "
             f"tests/fixtures/make_models.py {MODELS} --large --huge")
    return str(p)


# ------------------------------------------------------------ page cache

def drop_page_cache(path):
    """Evict the file's clean pages so that the daemon under test faults
    them in itself (and its cgroup is charged for them) instead of finding
    them in the cache, charged to whoever read the file before. Returns the
    bytes still resident afterwards (fincore), or None if unknown."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    try:
        out = subprocess.run(["fincore", "-b", "-n", "-o", "RES", path],
                             capture_output=True, text=True, timeout=10)
        return int(out.stdout.split()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


# ------------------------------------------------------------ cgroups

def _own_cgroup(controller):
    """This process's cgroup path for controller ("" = the v2 line)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller == "" and ctrls == "":
                return path
            if controller and controller in ctrls.split(","):
                return path
    return None


class Cgroup:
    """A memory cgroup of its own with a hard limit. v1: a child of this
    process's memory cgroup; v2: a child of this process's cgroup if the
    memory controller can be delegated to it, else of the root."""

    def __init__(self, limit_mb):
        self.limit_mb = limit_mb
        self.path = None
        name = f"inferd-memtest-{os.getpid()}-{time.monotonic_ns()}"
        if os.geteuid() != 0:
            skip("cgroup tests need root (to create a memory cgroup)")
        v2_root = Path("/sys/fs/cgroup")
        v1_root = Path("/sys/fs/cgroup/memory")
        ctl = v2_root / "cgroup.controllers"
        if ctl.exists() and "memory" in ctl.read_text().split():
            self.version = 2
            own = _own_cgroup("") or "/"
            errors = []
            for parent in [v2_root / own.lstrip("/"), v2_root]:
                try:
                    sub = parent / "cgroup.subtree_control"
                    if "memory" not in sub.read_text().split():
                        sub.write_text("+memory")
                    p = parent / name
                    p.mkdir()
                    (p / "memory.max").write_text(str(limit_mb * MiB))
                    (p / "memory.swap.max").write_text("0") \
                        if (p / "memory.swap.max").exists() else None
                    self.path = p
                    break
                except OSError as e:
                    errors.append(f"{parent}: {e}")
                    if (parent / name).exists():
                        try:
                            (parent / name).rmdir()
                        except OSError:
                            pass
            if not self.path:
                skip("cannot create a cgroup v2 memory cgroup: "
                     + "; ".join(errors))
        elif v1_root.is_dir():
            self.version = 1
            own = _own_cgroup("memory") or "/"
            parent = v1_root / own.lstrip("/")
            try:
                p = parent / name
                p.mkdir()
                (p / "memory.limit_in_bytes").write_text(str(limit_mb * MiB))
                self.path = p
            except OSError as e:
                skip(f"cannot create a cgroup v1 memory cgroup under "
                     f"{parent}: {e}")
        else:
            skip("no cgroup memory controller (neither v2 memory nor "
                 "/sys/fs/cgroup/memory)")

    def file(self, name):
        return self.path / name

    def oom_kills(self):
        if self.version == 2:
            text = self.file("memory.events").read_text()
        else:
            text = self.file("memory.oom_control").read_text()
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        # v1 kernels before 4.13 have no oom_kill counter
        return None

    def usage_mb(self):
        f = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        return int(self.file(f).read_text()) / MiB

    def peak_mb(self):
        f = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int(self.file(f).read_text()) / MiB
        except (OSError, ValueError):
            return None

    def stat(self):
        out = {}
        for line in self.file("memory.stat").read_text().splitlines():
            k, _, v = line.partition(" ")
            out[k] = int(v)
        return out

    def procs(self):
        return [int(x) for x in self.file("cgroup.procs").read_text().split()]

    def preexec(self):
        procs = str(self.file("cgroup.procs"))

        def enter():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        return enter

    def remove(self):
        if not self.path:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)
        print(f"[memory] could not remove {self.path} (procs "
              f"{self.procs()})", flush=True)


@pytest.fixture
def memcg():
    """Factory: memcg(limit_mb) -> Cgroup, removed at teardown. Request it
    before `inferd` in a test's arguments so that the daemons are stopped
    (inferd's teardown) before the cgroups are removed."""
    made = []

    def make(limit_mb=LIMIT_MB):
        cg = Cgroup(limit_mb)
        made.append(cg)
        return cg

    yield make
    for cg in made:
        cg.remove()


# ------------------------------------------------------------ references

def rand_rows(n, width, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, width, generator=g)


class References:
    """Reference outputs, one forward per row ([1, width] like the requests),
    with one thread, computed in a background thread while the daemon is
    being exercised. The model is read before the daemon starts; its page
    cache is then dropped (drop_page_cache)."""

    def __init__(self, path, rows):
        self.module = torch.jit.load(path, map_location="cpu").eval()
        self.rows = rows
        self.out = [None] * len(rows)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        with torch.no_grad():
            for i in range(len(self.rows)):
                self.out[i] = self.module(self.rows[i:i + 1])
        self.module = None

    def get(self):
        self.thread.join()
        return self.out


def close_to(got, want, rtol=1e-5, atol=1e-6):
    """(allclose at rtol, exactly equal) for a float32 reply vs a tensor."""
    g = torch.tensor(got, dtype=torch.float32)
    if g.shape != want.shape:
        return False, False
    return torch.allclose(g, want, rtol=rtol, atol=atol), torch.equal(g, want)


def proc_mb(d):
    """VmRSS/RssAnon/RssFile/VmHWM of the daemon in MB (None once dead)."""
    try:
        s = read_status(d.pid)
    except OSError:
        return None
    return {k: round(s[k] / 1024, 1) for k in
            ("VmRSS", "RssAnon", "RssFile", "VmHWM") if k in s}


# ------------------------------------------------------------ 1. big300 in 512 MB

def serve(d, rows, refs, n):
    """n predictions of rows[i % len]; returns a dict of what happened."""
    lat, bad, exact, status = [], [], 0, None
    for i in range(n):
        x = rows[i % len(rows)].unsqueeze(0)
        t0 = time.perf_counter()
        try:
            r = d.predict(x.tolist(), timeout=120)
        except Exception as e:  # connection reset when OOM-killed
            status = f"request {i}: {type(e).__name__}"
            break
        if r.status_code != 200:
            status = f"request {i}: HTTP {r.status_code} {r.text[:300]}"
            break
        lat.append(time.perf_counter() - t0)
        ok, eq = close_to(r.json()["outputs"], refs[i % len(refs)])
        exact += eq
        if not ok:
            bad.append(i)
    return {"served": len(lat),
            "wrong": bad, "exact": exact, "stopped_by": status,
            "lat_ms_median": round(statistics.median(lat) * 1000, 1)
            if lat else None,
            "lat_ms_first": round(lat[0] * 1000, 1) if lat else None}


def test_big300_under_512mb_cgroup(memcg, inferd):
    path = need("big300.pt")
    n = 200
    rows = rand_rows(n, 4096, seed=300)
    refs = References(path, rows)
    results = {}
    for mmap in ("true", "false"):
        cg = memcg(LIMIT_MB)
        resident = drop_page_cache(path)
        if mmap == "true":
            refs.start()
        d = inferd(env={"MODEL_PATH": path, "MODEL_MMAP": mmap, **T1},
                   preexec_fn=cg.preexec())
        assert d.pid in cg.procs(), "daemon is not in the test cgroup"
        mem0 = d.memory()["memory"]
        assert mem0["limit_mb"] == LIMIT_MB and \
            mem0["limit_source"] == "cgroup", mem0
        oom0 = cg.oom_kills()
        res = serve(d, rows, refs.get() if mmap == "false"
                                 else _LazyRefs(refs), n)
        alive = d.alive()
        oom1 = cg.oom_kills()
        figs = proc_mb(d) if alive else None
        mem = d.memory() if alive else None
        rc = d.stop()
        out = {
            "mmap": mmap == "true", "cgroup_version": cg.version,
            "limit_mb": LIMIT_MB, "page_cache_left_bytes": resident,
            "alive": alive, "exit_code": rc,
            "oom_kills": None if oom1 is None else oom1 - (oom0 or 0),
            "cgroup_peak_mb": cg.peak_mb(), "proc": figs,
            "memory": mem and {k: mem["memory"][k] for k in
                               ("rss_mb", "rss_anon_mb", "rss_file_mb",
                                "peak_rss_mb", "usage_mb", "level")},
            "model": mem and {k: mem["model"].get(k) for k in
                              ("weights_mapped_mb", "weights_copied_mb",
                               "load_peak_rss_mb", "load_time_ms")},
            **res,
        }
        if mmap == "false":
            text = d.stderr_text()
            out["guard_507"] = "507" in (res["stopped_by"] or "")
            out["stderr_tail"] = text[-400:] if not alive else None
        record("big300_under_512mb_cgroup", **out)
        results[mmap] = out

    on = results["true"]
    assert on["alive"], f"mmap on: daemon died under {LIMIT_MB} MB: {on}"
    assert on["oom_kills"] in (0, None), on
    assert on["stopped_by"] is None and on["served"] == n, on
    assert not on["wrong"], f"wrong outputs at requests {on['wrong'][:10]}"
    assert on["model"]["weights_mapped_mb"] > 300, on
    # mmap off: nothing asserted about survival; the outcome is recorded.
    off = results["false"]
    if off["served"]:
        assert not off["wrong"], f"mmap off: wrong outputs {off['wrong'][:10]}"


class _LazyRefs:
    """refs[i] that waits for the background reference thread to get to i."""

    def __init__(self, refs):
        self.refs = refs

    def __len__(self):
        return len(self.refs.rows)

    def __getitem__(self, i):
        while self.refs.out[i] is None and self.refs.thread.is_alive():
            time.sleep(0.01)
        if self.refs.out[i] is None:
            raise AssertionError("reference thread died")
        return self.refs.out[i]


# ------------------------------------------------------------ 2. beyond the limit

def test_big560_beyond_the_limit_pages(memcg, inferd):
    path = need("big560.pt")
    n = 20
    rows = rand_rows(n, 4096, seed=560)
    # references first: a forward running beside the daemon's would slow
    # it down and spoil the latency comparison
    refs = References(path, rows).start().get()
    cg = memcg(LIMIT_MB)
    resident = drop_page_cache(path)
    d = inferd(env={"MODEL_PATH": path, **T1}, preexec_fn=cg.preexec())
    oom0 = cg.oom_kills()
    res = serve(d, rows, refs, n)
    alive = d.alive()
    oom1 = cg.oom_kills()
    mem = d.memory() if alive else None
    figs = proc_mb(d) if alive else None
    st = cg.stat() if alive else {}
    major = st.get("total_pgmajfault", st.get("pgmajfault"))
    text = d.stderr_text()
    d.stop()

    # the same model in memory (no cgroup), for the latency
    drop_page_cache(path)
    free = inferd(env={"MODEL_PATH": path, **T1})
    free_res = serve(free, rows, refs, n)
    free_figs = proc_mb(free)
    free.stop()
    record("big560_beyond_512mb", limit_mb=LIMIT_MB, cgroup_version=cg.version,
           page_cache_left_bytes=resident, alive=alive,
           oom_kills=None if oom1 is None else oom1 - (oom0 or 0),
           paging=mem and mem["memory"]["paging"], proc=figs,
           cgroup_peak_mb=cg.peak_mb(), cgroup_major_faults=major,
           lat_ms_median_paging=res["lat_ms_median"],
           lat_ms_first_paging=res["lat_ms_first"],
           lat_ms_median_in_memory=free_res["lat_ms_median"],
           lat_ms_first_in_memory=free_res["lat_ms_first"],
           proc_in_memory=free_figs, exact=res["exact"],
           weights_mapped_mb=mem and mem["model"]["weights_mapped_mb"])

    assert alive, f"daemon died under {LIMIT_MB} MB: {res}\n{text[-2000:]}"
    assert oom1 in (None, oom0), f"OOM kills {oom0} -> {oom1}"
    assert res["stopped_by"] is None and res["served"] == n, res
    assert not res["wrong"], f"wrong outputs at requests {res['wrong']}"
    assert mem["model"]["weights_mapped_mb"] > LIMIT_MB, mem["model"]
    assert mem["memory"]["paging"] is True, mem["memory"]
    assert "weights exceed the memory limit" in text, text[-2000:]
    assert not free_res["wrong"] and free_res["served"] == n, free_res


# ------------------------------------------------------------ 3. zero-copy load

def _load_costs(inferd, name, mmap, x):
    """Start with PRELOAD_RUNTIME, wait until libtorch is mapped, then twice:
    load + one predict + unload. Per round: RSS before the load (kB), the
    daemon's load_peak_rss_mb (VmHWM since its reset at the load, kB),
    RssAnon before the load and after the predict (kB)."""
    d = inferd(env={"MODEL_PATH": model(name), "PRELOAD_RUNTIME": "true",
                    "MODEL_MMAP": mmap, **T1})
    deadline = time.monotonic() + 30
    while not d.memory()["runtime"]["loaded"]:
        assert time.monotonic() < deadline, "PRELOAD_RUNTIME did not map libtorch"
        time.sleep(0.05)
    time.sleep(0.2)
    rounds = []
    for k in range(2):
        before = read_status(d.pid)
        r = assert_json_reply(d.post("/model/load"), 200)
        assert r["status"] == "loaded", r
        m = d.memory()["model"]
        out = assert_json_reply(d.predict(x), 200)["outputs"] if x else None
        after = read_status(d.pid)
        rounds.append({
            "rss_before_kb": before["VmRSS"],
            "peak_kb": round(m["load_peak_rss_mb"] * 1024),
            "hwm_rise_kb": round(m["load_peak_rss_mb"] * 1024) - before["VmRSS"],
            "anon_before_kb": before["RssAnon"],
            "anon_after_kb": after["RssAnon"],
            "anon_growth_kb": after["RssAnon"] - before["RssAnon"],
            "file_growth_kb": after["RssFile"] - before["RssFile"],
            "mapped_mb": m["weights_mapped_mb"], "outputs": out})
        assert_json_reply(d.post("/model/unload"), 200)
    d.stop()
    return rounds


def test_mmap_load_costs_no_anon_memory(inferd):
    name = "big50.pt"
    wkb = manifest()[name]["weights_bytes"] / 1024
    x = rand_rows(1, 784, seed=50)
    ref = torch.tensor(reference(model(name), [x], num_threads=1))
    big = _load_costs(inferd, name, "true", x.tolist())
    tiny = _load_costs(inferd, "mlp.pt", "true", None)
    copy = _load_costs(inferd, name, "false", x.tolist())
    for r in big + copy:
        assert close_to(r["outputs"], ref)[0]
    # activations of one forward: every layer's output, float32
    act_kb = 4 * (784 + 3584 + 3584 + 10) / 1024
    first, second = big
    # The first load after PRELOAD_RUNTIME also faults in libtorch's loader
    # and compiler (code pages, interpreter tables): the same few MB for any
    # model, measured here with mlp.pt and subtracted.
    fixed_kb = tiny[0]["hwm_rise_kb"]
    drop = lambda rs: [{k: v for k, v in r.items() if k != "outputs"}
                       for r in rs]
    record("mmap_load_costs", weights_kb=round(wkb),
           anon_budget_kb=round(0.05 * wkb + act_kb),
           hwm_budget_kb=round(0.10 * wkb),
           big50_mmap=drop(big), mlp_mmap=drop(tiny), big50_copy=drop(copy),
           first_load_hwm_rise_pct=round(100 * first["hwm_rise_kb"] / wkb, 1),
           weight_attributable_hwm_rise_pct=round(
               100 * (first["hwm_rise_kb"] - fixed_kb) / wkb, 1),
           second_load_hwm_rise_pct=round(100 * second["hwm_rise_kb"] / wkb, 1))
    assert first["mapped_mb"] * 1024 >= 0.99 * wkb, first
    for r in big:
        assert r["anon_growth_kb"] < 0.05 * wkb + act_kb, \
            f"RssAnon grew {r['anon_growth_kb']} kB loading {name} with mmap " \
            f"(budget {0.05 * wkb + act_kb:.0f} kB): {drop(big)}"
    assert first["hwm_rise_kb"] - fixed_kb < 0.10 * wkb, (drop(big), drop(tiny))
    assert second["hwm_rise_kb"] < 0.10 * wkb, drop(big)
    # the check can tell: copying the weights costs them, in anon and peak
    assert copy[1]["anon_growth_kb"] > 0.9 * wkb, drop(copy)
    assert copy[1]["hwm_rise_kb"] > 0.9 * wkb, drop(copy)


MMAP_MODELS = ["mlp.pt", "two_arg.pt", "tuple_out.pt", "list_out.pt",
               "dict_out.pt", "scalar_out.pt", "embedding.pt", "cnn.pt",
               "big50.pt", "attrs.pt", "writes_buffer.pt"]


def _body(name, seed):
    specs = manifest()[name]["inputs"]
    vals, dtypes = [], []
    for i, s in enumerate(specs):
        g = torch.Generator().manual_seed(seed + i)
        if s["dtype"] == "int64":
            lo, hi = s.get("range", [0, 100])
            vals.append(torch.randint(lo, hi, s["shape"], generator=g).tolist())
        else:
            vals.append(torch.randn(s["shape"], generator=g).tolist())
        dtypes.append(s["dtype"])
    if len(specs) == 1:
        body = {"inputs": vals[0]}
        if dtypes[0] != "float32":
            body["dtype"] = dtypes[0]
    else:
        body = {"inputs": {s["name"]: v for s, v in zip(specs, vals)}}
    return body, vals, dtypes


def _same(got, want, rtol=1e-5, atol=1e-6):
    if isinstance(want, dict):
        return isinstance(got, dict) and set(got) == set(want) and \
            all(_same(got[k], want[k]) for k in want)
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        return isinstance(got, (int, float)) and \
            abs(got - want) <= atol + rtol * abs(want)
    try:
        g = torch.tensor(got, dtype=torch.float32)
        w = torch.tensor(want, dtype=torch.float32)
    except (ValueError, TypeError):
        # a list of outputs of different shapes: compare one by one
        return isinstance(got, list) and isinstance(want, list) and \
            len(got) == len(want) and all(_same(a, b) for a, b in zip(got, want))
    return g.shape == w.shape and torch.allclose(g, w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", MMAP_MODELS)
def test_mmap_outputs_equal_copy_outputs(inferd, name):
    path = model(name)
    body, vals, dtypes = _body(name, seed=77)
    ref = reference(path, vals, num_threads=1, dtypes=dtypes)
    on = inferd(env={"MODEL_PATH": path, "MODEL_MMAP": "true", **T1}, wait=False)
    off = inferd(env={"MODEL_PATH": path, "MODEL_MMAP": "false", **T1},
                 wait=False)
    on.wait_healthy()
    off.wait_healthy()
    results = {}

    def run(d, key):
        results[key] = d.post("/predict", body, timeout=60)
    ts = [threading.Thread(target=run, args=(d, k))
          for d, k in ((on, "on"), (off, "off"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    a = assert_json_reply(results["on"], 200)
    b = assert_json_reply(results["off"], 200)
    mon, moff = on.memory()["model"], off.memory()["model"]
    assert mon["mmap"] is True and moff["mmap"] is False
    assert moff["weights_mapped_mb"] == 0, moff
    # identical bytes from the same libtorch with one thread
    assert a["outputs"] == b["outputs"], (name, a["outputs"], b["outputs"])
    assert a["shape"] == b["shape"] and a["dtype"] == b["dtype"]
    assert _same(a["outputs"], ref), (name, a["outputs"], ref)


# ------------------------------------------------------------ 4. the guard

def test_guard_refuses_507_and_server_stays_up(inferd):
    name = "big50.pt"
    path = model(name)
    file_mib = os.path.getsize(path) / MiB
    bodies = {}
    for mmap in ("true", "false"):
        d = inferd(env={"MODEL_PATH": path, "MEMORY_LIMIT_MB": "50",
                        "MODEL_MMAP": mmap, **T1})
        r = d.post("/model/load")
        body = assert_json_reply(r, 507)
        assert set(body) >= {"error", "needed_mb", "free_mb", "limit_mb"}, body
        assert body["limit_mb"] == 50, body
        assert body["needed_mb"] > body["free_mb"], body
        assert 0 <= body["free_mb"] <= 50, body
        # lazy path: the first predict is refused the same way
        x = rand_rows(1, 784, seed=1).tolist()
        p = assert_json_reply(d.predict(x), 507)
        assert set(p) >= {"error", "needed_mb", "free_mb", "limit_mb"}, p
        assert p["needed_mb"] == body["needed_mb"], (p, body)
        h = d.health()
        assert h["status"] == "ok" and h["model_loaded"] is False, h
        m = d.memory()
        assert m["model"]["status"] in ("error", "not_loaded"), m["model"]
        assert m["model"]["load_failures"] == 2, m["model"]
        assert m["runtime"]["loaded"] is False, m["runtime"]
        assert not d.torch_maps(), "libtorch mapped although the guard refused"
        bodies[mmap] = body
        d.stop()
    grow = bodies["false"]["needed_mb"] - bodies["true"]["needed_mb"]
    record("guard_507", needed_mmap_on=bodies["true"]["needed_mb"],
           needed_mmap_off=bodies["false"]["needed_mb"],
           free_mb=bodies["true"]["free_mb"], file_mib=round(file_mib, 2),
           grow_mb=round(grow, 2))
    # runtime (60) + activations (32), weights only without mmap
    assert bodies["true"]["needed_mb"] == pytest.approx(60 + 32, abs=0.5)
    assert grow == pytest.approx(file_mib, abs=1.0), (grow, file_mib)

    # a limit between the two estimates: mmap on loads, mmap off is refused
    mid = int((bodies["true"]["needed_mb"] + bodies["false"]["needed_mb"]) / 2)
    off = inferd(env={"MODEL_PATH": path, "MEMORY_LIMIT_MB": str(mid),
                      "MODEL_MMAP": "false", **T1})
    assert_json_reply(off.post("/model/load"), 507)
    off.stop()
    # restarting with a higher limit lets the same model load and serve
    x = rand_rows(1, 784, seed=2)
    ref = torch.tensor(reference(path, [x], num_threads=1))
    for mmap, lim in (("true", mid), ("false", 512)):
        d = inferd(env={"MODEL_PATH": path, "MEMORY_LIMIT_MB": str(lim),
                        "MODEL_MMAP": mmap, **T1})
        r = assert_json_reply(d.post("/model/load"), 200)
        assert r["status"] == "loaded", r
        out = assert_json_reply(d.predict(x.tolist()), 200)
        assert close_to(out["outputs"], ref)[0], (mmap, lim)
        d.stop()


# ------------------------------------------------------------ 5. idle unload

def test_idle_unload_not_kept_alive_by_health_or_memory(inferd):
    path = model("mlp.pt")
    x = [[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 2.5, 0.0]]
    ref = torch.tensor(reference(path, [x], num_threads=1))
    d = inferd(env={"MODEL_PATH": path, "MODEL_IDLE_UNLOAD_SECONDS": "2", **T1})
    r = assert_json_reply(d.predict(x), 200)
    assert close_to(r["outputs"], ref)[1]
    t0 = time.monotonic()
    seen = []
    unloaded_at = None
    while time.monotonic() - t0 < 4.0:
        h = d.health()
        m = d.memory()["model"]
        seen.append((round(time.monotonic() - t0, 1), h["model_status"],
                     m["loads"], m["unloads"]))
        if unloaded_at is None and m["unloads"] == 1:
            unloaded_at = time.monotonic() - t0
        assert m["loads"] == 1, f"a health/memory poll reloaded the model: {seen}"
        time.sleep(0.2)
    m = d.memory()["model"]
    record("idle_unload", unloaded_after_s=unloaded_at and round(unloaded_at, 2),
           polls=len(seen))
    assert m["status"] == "not_loaded" and m["unloads"] == 1 and \
        m["loads"] == 1, (m, seen)
    assert d.health()["model_status"] == "not_loaded"
    # the next predict reloads and answers correctly
    r = assert_json_reply(d.predict(x), 200)
    assert close_to(r["outputs"], ref)[1]
    m = d.memory()["model"]
    assert m["loads"] == 2 and m["status"] == "loaded", m
    assert "model unloaded automatically" in d.stderr_text()


# ------------------------------------------------------------ 6. pressure

def test_unload_on_pressure(inferd):
    path = model("mlp.pt")
    # The guard lets the load in (needs 60 + 32 MB, ~144 MB free before
    # libtorch is mapped); once loaded, RSS (~165 MB) is above 95% of 150.
    d = inferd(env={"MODEL_PATH": path, "MEMORY_LIMIT_MB": "150",
                    "UNLOAD_ON_PRESSURE": "true", **T1})
    r = assert_json_reply(d.post("/model/load"), 200)
    assert r["status"] == "loaded", r
    t0 = time.monotonic()
    levels = []
    while time.monotonic() - t0 < 5 and d.health()["model_loaded"]:
        levels.append(d.memory()["memory"]["level"])
        time.sleep(0.1)
    took = time.monotonic() - t0
    m = d.memory()
    text = d.stderr_text()
    record("unload_on_pressure", unloaded_after_s=round(took, 2),
           rss_mb=m["memory"]["rss_mb"], level=m["memory"]["level"],
           levels_seen=sorted(set(levels)))
    assert m["model"]["status"] == "not_loaded", m["model"]
    assert m["model"]["unloads"] == 1 and m["model"]["loads"] == 1, m["model"]
    assert "memory threshold crossed" in text, text[-2000:]
    assert "reason=memory pressure" in text or '"memory pressure"' in text, \
        text[-2000:]
    # it stays unloaded (no load/unload loop while nothing asks for it)
    time.sleep(2)
    m2 = d.memory()["model"]
    assert m2["loads"] == 1 and m2["unloads"] == 1, m2
