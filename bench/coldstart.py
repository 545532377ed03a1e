#!/usr/bin/python3
"""coldstart.py -- start-up costs of inferd, in fresh processes:

  1. cold start: process start -> first /predict answer on the tiny MLP,
     split into listening, runtime dlopen (+ thread set-up), model load and
     first forward, with PRELOAD_RUNTIME off and on (median of N),
  2. first-call and new-batch-size forward latency with JIT_PROFILING
     false / true, with and without MODEL_WARMUP, on the tiny MLP and the
     CNN (median of N fresh processes each),
  3. idle RSS of inferd and of the Python seed server, both fresh and idle.

Prints a Markdown report and writes it into docs/performance.md between
<!-- coldstart:start --> and <!-- coldstart:end -->.

  /usr/bin/python3 bench/coldstart.py        (after make all + fixtures)

Settings (environment): COLD_RUNS (5), BENCH_TORCH_THREADS (1),
BENCH_NO_DOC=1 to print only. The page cache is warm (libtorch and the
model files were read before); a first start after boot is slower.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (INFERD, MODELS, SHIM, env_int, fmt, http, inferd_server, machine,  # noqa: E402
                    machine_line, md_table, median, need_files, predict, seed_available,
                    seed_server, write_block)

RUNS = max(1, env_int("COLD_RUNS", 5))
THREADS = env_int("BENCH_TORCH_THREADS", 1)


def log(msg):
    print(msg, flush=True)


def log_ms(text, pattern):
    m = re.search(pattern + r".*? ms=([\d.]+)", text)
    return float(m.group(1)) if m else None


def wait_log(server, pattern, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, server.log_text()):
            return time.monotonic() - server.t_start
        time.sleep(0.005)
    raise RuntimeError("%s: no %r in its log" % (server.name, pattern))


# ------------------------------------------------------------ cold start

def cold_start(preload, wait_preload):
    mlp = os.path.join(MODELS, "mlp.pt")
    env = {"LOG_LEVEL": "info", "TORCH_NUM_THREADS": str(THREADS),
           "PRELOAD_RUNTIME": "true" if preload else "false"}
    s = inferd_server("cold", mlp, env)
    try:
        listen = s.wait_listening()
        if wait_preload:
            wait_log(s, "runtime preloaded")
        t_send = time.monotonic()
        reply, dt = predict(s, '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}')
        total = time.monotonic() - s.t_start
        time.sleep(0.05)
        text = s.log_text()
        return {
            "listen_ms": listen * 1000,
            "sent_ms": (t_send - s.t_start) * 1000,
            "preload_ms": log_ms(text, "runtime preloaded"),
            "load_ms": log_ms(text, "model loaded"),
            "forward_ms": reply.get("inference_ms"),
            "request_ms": dt * 1000,
            "total_ms": total * 1000,
        }
    finally:
        s.stop()


# ------------------------------------------------------------ JIT

def body(shape):
    n = 1
    for d in shape[1:]:
        n *= d

    def nest(sh):
        if len(sh) == 1:
            return "[" + ", ".join(["0.5"] * sh[0]) + "]"
        return "[" + ", ".join(nest(sh[1:]) for _ in range(sh[0])) + "]"
    return '{"inputs": %s}' % nest(shape)


def first_calls(model, shape1, shape4, profiling, warmup):
    env = {"LOG_LEVEL": "info", "TORCH_NUM_THREADS": str(THREADS),
           "JIT_PROFILING": "true" if profiling else "false"}
    if warmup:
        env["MODEL_WARMUP"] = ",".join(map(str, shape1))
    s = inferd_server("jit", os.path.join(MODELS, model), env)
    b1, b4 = body(shape1), body(shape4)
    try:
        s.wait_listening()
        out = {}
        r, dt = predict(s, b1)
        out["req1_ms"] = dt * 1000
        f = [r["inference_ms"]]
        for _ in range(2):
            f.append(predict(s, b1)[0]["inference_ms"])
        g = [predict(s, b4)[0]["inference_ms"] for _ in range(3)]
        steady = [predict(s, b1)[0]["inference_ms"] for _ in range(20)]
        text = s.log_text()
        out.update({"f1": f[0], "f2": f[1], "f3": f[2], "g1": g[0], "g2": g[1], "g3": g[2],
                    "steady": median(steady), "load_ms": log_ms(text, "model loaded"),
                    "warm_ms": log_ms(text, "model warmed up")})
        return out
    finally:
        s.stop()


# ------------------------------------------------------------ idle RSS

def idle_rss(seed_reason):
    mlp = os.path.join(MODELS, "mlp.pt")
    rows = {}
    for key, make in [("inferd", lambda: inferd_server("idle_inferd", mlp, {"LOG_LEVEL": "warn"})),
                      ("inferd_preload", lambda: inferd_server("idle_inferd_pre", mlp,
                                                               {"LOG_LEVEL": "info", "PRELOAD_RUNTIME": "true"})),
                      ("seed", None if seed_reason else (lambda: seed_server("idle_seed", mlp)))]:
        if make is None:
            continue
        got = []
        for _ in range(3):
            s = make()
            try:
                s.wait_listening()
                if key == "inferd_preload":
                    wait_log(s, "runtime preloaded")
                if key == "seed":
                    http("GET", s.base + "/health")
                time.sleep(1.0)
                got.append(s.rss_kb())
            finally:
                s.stop()
        rows[key] = {k: median([g.get(k) for g in got]) for k in ("VmRSS", "RssAnon", "RssFile")}
    return rows


# ------------------------------------------------------------ main

def main():
    need_files([INFERD, SHIM], "run `make all` first")
    need_files([os.path.join(MODELS, n) for n in ("mlp.pt", "cnn.pt")],
               "build the fixtures: /usr/bin/python3 tests/fixtures/make_models.py build/models")
    m = machine()
    t0 = time.monotonic()
    log("== inferd start-up: %s" % machine_line(m))

    cold = {}
    variants = [("off", False, False), ("on", True, False), ("on_waited", True, True)]
    for key, pre, wait in variants:
        runs = [cold_start(pre, wait) for _ in range(RUNS)]
        cold[key] = {k: median([r[k] for r in runs]) for k in runs[0]}
        log("   PRELOAD_RUNTIME=%s%s: %s" % ("true" if pre else "false",
                                             " (request after the preload)" if wait else "",
                                             {k: round(v, 1) if v is not None else None
                                              for k, v in cold[key].items()}))

    jit = {}
    configs = [("false", False, False), ("false+warmup", False, True),
               ("true", True, False), ("true+warmup", True, True)]
    for model, s1, s4 in [("mlp.pt", [1, 4], [4, 4]), ("cnn.pt", [1, 3, 64, 64], [4, 3, 64, 64])]:
        for name, prof, warm in configs:
            runs = [first_calls(model, s1, s4, prof, warm) for _ in range(RUNS)]
            jit[(model, name)] = {k: median([r[k] for r in runs]) for k in runs[0]}
            log("   %s JIT_PROFILING=%s: %s" % (model, name, {k: round(v, 2) if v is not None else None
                                                            for k, v in jit[(model, name)].items()}))

    seed_reason = seed_available()
    rss = idle_rss(seed_reason)
    for k, v in rss.items():
        log("   idle %s: %s" % (k, v))

    md = report(m, cold, jit, rss, seed_reason, time.monotonic() - t0)
    print()
    print(md)
    if os.environ.get("BENCH_NO_DOC") != "1":
        write_block("coldstart", md)
        print("\n(written to docs/performance.md between <!-- coldstart:start --> and <!-- coldstart:end -->)")


def report(m, cold, jit, rss, seed_reason, elapsed):
    L = ["Machine: %s." % machine_line(m), ""]
    L.append("Run: `/usr/bin/python3 bench/coldstart.py` (COLD_RUNS=%d fresh processes per row, medians; "
             "TORCH_NUM_THREADS=%d; tiny MLP, lazy loading, warm page cache). Took %.0f s." % (RUNS, THREADS, elapsed))
    L.append("")
    L.append("Cold start: process start → first `/predict` answer. *listening*: until the port accepts "
             "(measured by the client); *runtime dlopen*: the `runtime preloaded ms=` log line (dlopen of "
             "the shim, which maps libtorch, and thread set-up); *model load*: `model loaded ms=` (includes "
             "the dlopen when the runtime was not preloaded); *first forward*: the reply's `inference_ms`; "
             "*first request*: send → answer at the client.")
    L.append("")
    rows = []
    names = {"off": "PRELOAD_RUNTIME=false (default), request at once",
             "on": "PRELOAD_RUNTIME=true, request at once",
             "on_waited": "PRELOAD_RUNTIME=true, request after the preload"}
    for key, c in cold.items():
        rows.append([names[key], fmt(c["listen_ms"], 1), fmt(c["preload_ms"], 0) if c["preload_ms"] else "—",
                     fmt(c["load_ms"], 0), fmt(c["forward_ms"], 2), fmt(c["request_ms"], 0),
                     fmt(c["total_ms"], 0)])
    L.append(md_table(["variant", "listening ms", "runtime dlopen ms", "model load ms", "first forward ms",
                       "first request ms", "start → answer ms"], rows))
    off, on = cold.get("off"), cold.get("on_waited")
    if off and on and off["load_ms"] and on["load_ms"]:
        L.append("")
        L.append("Without the preload the first request pays the dlopen inside `model load`: %s ms, of "
                 "which ~%s ms is the runtime (that load minus the load once the runtime is mapped, %s ms)."
                 % (fmt(off["load_ms"]), fmt(off["load_ms"] - on["load_ms"]), fmt(on["load_ms"])))
    L.append("")
    L.append("First calls: forward time (`inference_ms`) of the 1st, 2nd and 3rd request at batch 1, then "
             "of the 1st, 2nd and 3rd at batch 4 (a new batch size), and the median of 20 later batch-1 "
             "requests; *first request* is the client's send → answer of request 1 (it includes the lazy "
             "load, and the warm-up when MODEL_WARMUP is set: tiny MLP `1,4`, CNN `1,3,64,64`).")
    L.append("")
    rows = []
    for (model, name), j in jit.items():
        rows.append([model, "JIT_PROFILING=" + name.replace("+warmup", " + MODEL_WARMUP"),
                     fmt(j["f1"], 2), fmt(j["f2"], 2), fmt(j["f3"], 2), fmt(j["g1"], 2), fmt(j["g2"], 2),
                     fmt(j["g3"], 2), fmt(j["steady"], 2), fmt(j["req1_ms"], 0)])
    L.append(md_table(["model", "settings", "1st ms", "2nd ms", "3rd ms", "batch 4: 1st ms", "2nd ms",
                       "3rd ms", "steady ms", "first request ms"], rows))
    L.append("")
    L.append(jit_verdict(jit))
    L.append("")
    L.append("Idle RSS (fresh processes, nothing served yet but `/health` for the seed server; median of 3; "
             "from /proc/PID/status):")
    L.append("")
    rows = []
    names = {"inferd": "inferd (lazy, default)", "inferd_preload": "inferd, PRELOAD_RUNTIME=true (after the preload)",
             "seed": "seed server (Python, FastAPI + uvicorn, torch imported)"}
    for key, r in rss.items():
        rows.append([names[key], fmt(r["VmRSS"] / 1024, 1), fmt(r["RssAnon"] / 1024, 1),
                     fmt(r["RssFile"] / 1024, 1)])
    L.append(md_table(["process", "RSS MB", "anon MB", "file MB"], rows))
    if seed_reason:
        L.append("")
        L.append("Seed server: skipped, %s." % seed_reason)
    elif "seed" in rss and "inferd" in rss:
        L.append("")
        L.append("Idle, inferd is %.0f× smaller than the seed server (%s vs %s MB RSS)."
                 % (rss["seed"]["VmRSS"] / rss["inferd"]["VmRSS"], fmt(rss["inferd"]["VmRSS"] / 1024, 1),
                    fmt(rss["seed"]["VmRSS"] / 1024, 1)))
    return "\n".join(L)


def jit_verdict(jit):
    out = []
    for model in ("mlp.pt", "cnn.pt"):
        f, t = jit.get((model, "false")), jit.get((model, "true"))
        tw = jit.get((model, "true+warmup"))
        if not f or not t:
            continue
        worst_f = max(f["f1"], f["f2"], f["f3"], f["g1"], f["g2"], f["g3"])
        worst_t = max(t["f1"], t["f2"], t["f3"], t["g1"], t["g2"], t["g3"])
        out.append("%s: the slowest of the first calls is %s ms with the profiling executor off and %s ms "
                   "with it on (%s ms on with MODEL_WARMUP); steady state %s vs %s ms."
                   % (model, fmt(worst_f, 2), fmt(worst_t, 2),
                      fmt(max(tw["f1"], tw["f2"], tw["f3"], tw["g1"], tw["g2"], tw["g3"]), 2) if tw else "n/a",
                      fmt(f["steady"], 3), fmt(t["steady"], 3)))
    return " ".join(out)


if __name__ == "__main__":
    main()
