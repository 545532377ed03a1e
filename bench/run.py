#!/usr/bin/python3
"""run.py -- `make bench`: inferd's /predict against its floors, on loopback.

For each case it measures, interleaved in one run (so that the ratios are
taken on the same machine at the same time):
  1. the HTTP floor (build/bench/http_floor: libmicrohttpd with inferd's
     flags, collects a body of the same size, answers a fixed small JSON),
  2. the forward alone, in-process (build/bench/forward_floor),
  3. inferd's /predict (wrk + bench/predict.lua posting the JSON body),
and the Python seed server (../shared/baseline) on the tiny MLP at c=16.
JSON decode speed comes from build/bench/decode_bench (the daemon's codec).
Prints a Markdown report and writes it into docs/performance.md between
<!-- bench:start --> and <!-- bench:end -->.

Settings (environment): BENCH_SECONDS (10) per wrk run, BENCH_REPS (3),
BENCH_WARMUP (1) seconds of wrk before each measured run,
BENCH_TORCH_THREADS (1) for inferd, the seed server and the forward floor,
BENCH_BATCH_SIZES ("8,16") for the CNN with batching on,
BENCH_NO_DOC=1 to print only.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (BENCH_BUILD, DOC, INFERD, MODELS, ROOT, SHIM, Server, die, env_int, fmt,  # noqa: E402
                    http, inferd_server, machine, machine_line, md_table, median, need_files,
                    next_port, predict, seed_available, seed_server, write_block, write_body)

SECONDS = env_int("BENCH_SECONDS", 10)
REPS = max(1, env_int("BENCH_REPS", 3))
WARMUP = env_int("BENCH_WARMUP", 1)
THREADS = env_int("BENCH_TORCH_THREADS", 1)
BATCHES = [int(b) for b in os.environ.get("BENCH_BATCH_SIZES", "8,16").split(",") if b.strip()]
LUA = os.path.join(ROOT, "bench", "predict.lua")
HTTP_FLOOR = os.path.join(BENCH_BUILD, "http_floor")
FORWARD_FLOOR = os.path.join(BENCH_BUILD, "forward_floor")
DECODE = os.path.join(BENCH_BUILD, "decode_bench")

TARGET_FLOOR_SHARE = 0.60   # tiny MLP c=16: inferd req/s >= 60% of the floor's
TARGET_P50_OVER_US = 150    # tiny MLP c=1: p50 <= forward + 150 us
TARGET_BATCH_GAIN = 1.5     # CNN c=16: batching on >= 1.5x batching off
TARGET_DECODE_MB_S = 150    # JSON decode of 1x3x224x224 float32


def log(msg):
    print(msg, flush=True)


# ------------------------------------------------------------ measurements


def wrk(url, body, conc, seconds):
    env = dict(os.environ, BENCH_BODY=body)
    argv = ["wrk", "-t1", "-c%d" % conc, "-d%ds" % seconds, "--timeout", "10s", "-s", LUA, url]
    r = subprocess.run(argv, env=env, capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode or not lines:
        raise RuntimeError("wrk failed (%s): %s %s" % (r.returncode, r.stdout[-400:], r.stderr[-400:]))
    return json.loads(lines[-1])


def run_json(argv, repeat):
    out = []
    for _ in range(repeat):
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("%s failed: %s" % (" ".join(argv), r.stderr.strip()[-400:]))
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
    keys = [k for k, v in out[0].items() if isinstance(v, (int, float))]
    res = dict(out[0])
    for k in keys:
        res[k] = median([o[k] for o in out])
    res["runs"] = len(out)
    return res


def batch_metrics(server):
    """(sum, count) of inferd_batch_size from /metrics."""
    status, text, _ = http("GET", server.base + "/metrics")
    s = c = 0.0
    if status == 200 and isinstance(text, str):
        for line in text.splitlines():
            if line.startswith("inferd_batch_size_sum"):
                s = float(line.split()[-1])
            elif line.startswith("inferd_batch_size_count"):
                c = float(line.split()[-1])
    return s, c


# ------------------------------------------------------------ main


def main():
    if not shutil.which("wrk"):
        die("wrk is not installed: apt-get install -y wrk")
    mlp, mlp80, cnn = (os.path.join(MODELS, n) for n in ("mlp.pt", "mlp80.pt", "cnn.pt"))
    need_files([INFERD, SHIM], "run `make all` first")
    need_files([mlp, mlp80, cnn], "build the fixtures: /usr/bin/python3 tests/fixtures/make_models.py build/models")
    need_files([HTTP_FLOOR, FORWARD_FLOOR, DECODE], "run `make bench`, which builds them")

    m = machine()
    t_begin = time.monotonic()
    log("== inferd benchmarks: %s" % machine_line(m))
    log("   BENCH_SECONDS=%d BENCH_REPS=%d BENCH_WARMUP=%d BENCH_TORCH_THREADS=%d BENCH_BATCH_SIZES=%s"
        % (SECONDS, REPS, WARMUP, THREADS, ",".join(map(str, BATCHES))))

    bodies = {
        "mlp": write_body("mlp", inputs=[[5.1, 3.5, 1.4, 0.2]]),
        "mlp80": write_body("mlp80", shape=[1, 784]),
        "cnn": write_body("cnn", shape=[1, 3, 64, 64]),
    }
    sizes = {k: os.path.getsize(v) for k, v in bodies.items()}

    # -- the forward alone, in-process
    log("== forward floor (in-process, %d intra-op thread%s, median of 3 processes)"
        % (THREADS, "" if THREADS == 1 else "s"))
    fwd = {}
    auto_threads = len(os.sched_getaffinity(0))
    fwd_cases = [("mlp", mlp, "1,4", THREADS), ("mlp80", mlp80, "1,784", THREADS),
                 ("cnn", cnn, "1,3,64,64", THREADS)]
    fwd_cases += [("cnn_b%d" % b, cnn, "%d,3,64,64" % b, THREADS) for b in BATCHES]
    if auto_threads != THREADS:
        fwd_cases.append(("cnn_auto", cnn, "1,3,64,64", auto_threads))
    for key, model, shape, threads in fwd_cases:
        fwd[key] = run_json([FORWARD_FLOOR, model, "--shape", shape, "--threads", str(threads),
                             "--seconds", "2"], 3)
        log("   %-9s %-12s threads=%d median %8.1f us  p99 %8.1f us"
            % (key, shape, threads, fwd[key]["median_us"], fwd[key]["p99_us"]))

    # -- JSON decode with the daemon's codec
    log("== JSON decode (build/bench/decode_bench, median of 3 processes x 15 iterations)")
    dec = {}
    for key, shape, form in [("224_repr", "1,3,224,224", "repr"), ("224_short", "1,3,224,224", "short"),
                             ("cnn_repr", "1,3,64,64", "repr")]:
        dec[key] = run_json([DECODE, "--shape", shape, "--format", form], 3)
        d = dec[key]
        log("   %-10s %9d bytes: fast path %s; cJSON path: parse %.1f MB/s, tensor_from_json %.1f MB/s, "
            "total %.1f MB/s (%.2f ms); encode %.1f MB/s"
            % (key, d["json_bytes"], "declined" if d["fast_declined"] else "%.1f MB/s (%.2f ms)"
               % (d["fast_mb_s"], d["fast_ms"]), d["parse_mb_s"], d["tensor_from_json_mb_s"],
               d["decode_total_mb_s"], d["decode_total_ms"], d["encode_mb_s"]))

    # -- servers: all started once, idle while another case runs
    th = {"TORCH_NUM_THREADS": str(THREADS)}
    servers = {}
    seed_reason = seed_available()
    try:
        port = next_port()
        servers["floor"] = Server("http_floor", [HTTP_FLOOR, str(port)], {}, port)
        servers["mlp"] = inferd_server("inferd_mlp", mlp, th)
        servers["mlp80"] = inferd_server("inferd_mlp80", mlp80, th)
        servers["cnn_off"] = inferd_server("inferd_cnn_off", cnn, th)
        for b in BATCHES:
            servers["cnn_b%d" % b] = inferd_server("inferd_cnn_b%d" % b, cnn,
                                                   dict(th, MAX_BATCH_SIZE=str(b)))
        if seed_reason is None:
            servers["seed"] = seed_server("seed_mlp", mlp, th)
        else:
            log("== seed server skipped: %s" % seed_reason)
        for s in servers.values():
            s.wait_listening()
        # First predictions: the lazy loads happen here, outside the runs.
        for key, body in [("mlp", "mlp"), ("mlp80", "mlp80"), ("cnn_off", "cnn"), ("seed", "mlp")] + \
                [("cnn_b%d" % b, "cnn") for b in BATCHES]:
            if key in servers:
                reply, _ = predict(servers[key], open(bodies[body]).read())
                if "outputs" not in reply:
                    raise RuntimeError("%s: no outputs in %s" % (key, str(reply)[:200]))
        predict(servers["floor"], open(bodies["cnn"]).read())
        status, health, _ = http("GET", servers["mlp"].base + "/memory")
        rt_threads = (health.get("runtime") or {}).get("threads") if isinstance(health, dict) else None

        cases = [
            # key, server, body, concurrency, floor case it is compared with
            ("floor_mlp_c1", "floor", "mlp", 1, None),
            ("inferd_mlp_c1", "mlp", "mlp", 1, "floor_mlp_c1"),
            ("floor_mlp_c16", "floor", "mlp", 16, None),
            ("inferd_mlp_c16", "mlp", "mlp", 16, "floor_mlp_c16"),
            ("seed_mlp_c16", "seed", "mlp", 16, "floor_mlp_c16"),
            ("floor_mlp80_c1", "floor", "mlp80", 1, None),
            ("inferd_mlp80_c1", "mlp80", "mlp80", 1, "floor_mlp80_c1"),
            ("floor_cnn_c16", "floor", "cnn", 16, None),
            ("inferd_cnn_off_c16", "cnn_off", "cnn", 16, "floor_cnn_c16"),
        ] + [("inferd_cnn_b%d_c16" % b, "cnn_b%d" % b, "cnn", 16, "floor_cnn_c16") for b in BATCHES]
        cases = [c for c in cases if c[1] in servers]
        est = len(cases) * REPS * (SECONDS + WARMUP)
        log("== HTTP: %d cases x %d reps x (%d s + %d s warm-up), interleaved: ~%d s"
            % (len(cases), REPS, SECONDS, WARMUP, est))
        raw = {c[0]: [] for c in cases}
        batch = {c[0]: [] for c in cases}
        for rep in range(REPS):
            for key, skey, body, conc, _ in cases:
                srv = servers[skey]
                url = srv.base + "/predict"
                if WARMUP:
                    wrk(url, bodies[body], conc, WARMUP)
                b0 = batch_metrics(srv) if skey.startswith("cnn_b") else None
                r = wrk(url, bodies[body], conc, SECONDS)
                if b0:
                    b1 = batch_metrics(srv)
                    if b1[1] > b0[1]:
                        batch[key].append((b1[0] - b0[0]) / (b1[1] - b0[1]))
                raw[key].append(r)
                errs = sum(r["errors"].values())
                log("   rep %d %-20s c=%-2d %9.1f req/s  p50 %7d us  p99 %7d us%s"
                    % (rep + 1, key, conc, r["rps"], r["p50_us"], r["p99_us"],
                       "  ERRORS %s" % r["errors"] if errs else ""))
                if srv.proc.poll() is not None:
                    raise RuntimeError("%s died; see %s" % (srv.name, srv.log_path))
    finally:
        for s in servers.values():
            s.stop()

    res = {}
    for key, skey, body, conc, floor in cases:
        rs = raw[key]
        res[key] = {
            "rps": median([r["rps"] for r in rs]),
            "p50": median([r["p50_us"] for r in rs]),
            "p99": median([r["p99_us"] for r in rs]),
            "errors": sum(sum(r["errors"].values()) for r in rs),
            "reps": [round(r["rps"], 1) for r in rs],
            "batch": median(batch[key]),
            "conc": conc, "body": body, "floor": floor, "server": skey,
        }

    with open(os.path.join(BENCH_BUILD, "results.json"), "w") as f:
        json.dump({"machine": m, "forward": fwd, "decode": dec, "http": res, "raw": raw}, f, indent=1)

    md = report(m, res, fwd, dec, sizes, seed_reason, rt_threads, time.monotonic() - t_begin)
    print()
    print(md)
    if os.environ.get("BENCH_NO_DOC") != "1":
        write_block("bench", md)
        print("\n(written to %s between <!-- bench:start --> and <!-- bench:end -->)"
              % os.path.relpath(DOC, ROOT))


# ------------------------------------------------------------ report

CASE_TEXT = {
    "floor_mlp_c1": ("HTTP floor", "tiny MLP body"),
    "inferd_mlp_c1": ("inferd", "tiny MLP [1,4]"),
    "floor_mlp_c16": ("HTTP floor", "tiny MLP body"),
    "inferd_mlp_c16": ("inferd", "tiny MLP [1,4]"),
    "seed_mlp_c16": ("seed server (Python)", "tiny MLP [1,4]"),
    "floor_mlp80_c1": ("HTTP floor", "mlp80 body"),
    "inferd_mlp80_c1": ("inferd", "mlp80 [1,784]"),
    "floor_cnn_c16": ("HTTP floor", "CNN body"),
    "inferd_cnn_off_c16": ("inferd, batching off", "CNN [1,3,64,64]"),
}


def batch_of(key):
    """"inferd_cnn_b8_c16" -> "8"."""
    return key.split("_b")[1].split("_")[0]


def ratio(a, b):
    return a / b if a is not None and b else None


def report(m, res, fwd, dec, sizes, seed_reason, rt_threads, elapsed):
    L = []
    L.append("Machine: %s." % machine_line(m))
    L.append("")
    L.append("Run: `make bench` (BENCH_SECONDS=%d, BENCH_REPS=%d, BENCH_WARMUP=%d s before each run, "
             "cases interleaved; wrk -t1 on the same host, loopback; TORCH_NUM_THREADS=%d for inferd "
             "(its /memory reported %s), the seed server and the forward floor; INFERENCE_WORKERS=1). "
             "Figures are medians of the %d runs; ratios are taken between figures of this run. "
             "Took %.0f s."
             % (SECONDS, REPS, WARMUP, THREADS, rt_threads, REPS, elapsed))
    L.append("")
    L.append("Bodies (what a Python client sends: `json.dumps({\"inputs\": t.tolist()})` of random "
             "float32): tiny MLP %d B, mlp80 %s B, CNN %s B."
             % (sizes["mlp"], fmt(sizes["mlp80"]), fmt(sizes["cnn"])))
    L.append("")
    rows = []
    for key, r in res.items():
        if key in CASE_TEXT:
            who, what = CASE_TEXT[key]
        else:
            who, what = "inferd, MAX_BATCH_SIZE=%s" % batch_of(key), "CNN [1,3,64,64]"
        if r["batch"]:
            who += " (mean batch %.1f)" % r["batch"]
        fl = res.get(r["floor"]) if r["floor"] else None
        vs = "%.0f%%" % (100 * ratio(r["rps"], fl["rps"])) if fl else "(floor)"
        rows.append([who, what, r["conc"], fmt(r["rps"]), fmt(r["p50"]), fmt(r["p99"]), vs,
                     " / ".join(fmt(x) for x in r["reps"]) + (" **%d errors**" % r["errors"] if r["errors"] else "")])
    L.append(md_table(["server", "case", "c", "req/s", "p50 µs", "p99 µs", "req/s vs floor",
                       "req/s of each run"], rows))
    if seed_reason:
        L.append("")
        L.append("Seed server: skipped, %s." % seed_reason)
    L.append("")
    L.append("Forward alone, in-process (`build/bench/forward_floor MODEL --shape S --threads N`: "
             "torch::jit::load, eval, InferenceMode, the daemon's executor settings; median of 3 "
             "processes, each ~2 s of forwards):")
    L.append("")
    rows = []
    for key, f in fwd.items():
        rows.append([os.path.basename(f["model"]), f["shape"], f["threads"], fmt(f["median_us"], 1),
                     fmt(f["p99_us"], 1), fmt(f["first_us"][0], 0)])
    L.append(md_table(["model", "input", "threads", "median µs", "p99 µs", "first call µs"], rows))
    L.append("")
    L.append("JSON decode with the daemon's codec (`build/bench/decode_bench`, linked with build/obj). "
             "*Fast path*: what /predict tries first, the scan for the end of \"inputs\" (a copy of "
             "handlers_predict.c's skip_array) + fastjson_array; *cJSON path*: the fallback, "
             "cJSON_ParseWithLengthOpts + tensor_from_json + cJSON_Delete. MB/s of JSON text, "
             "1 MB = 10^6 B; `repr` = numbers as json.dumps writes a float32 tensor's tolist() "
             "(~17 digits), `short` = shortest float32 text (~9 digits, as inferd writes); *encode* = "
             "tensor_to_json_text + cJSON_PrintUnformatted of the same tensor as a reply:")
    L.append("")
    rows = []
    for key, d in dec.items():
        rows.append([d["shape"], d["format"], fmt(d["json_bytes"]),
                     "declined" if d["fast_declined"] else fmt(d["fast_mb_s"], 1),
                     "—" if d["fast_declined"] else fmt(d["fast_ms"], 2),
                     fmt(d["parse_mb_s"], 1), fmt(d["tensor_from_json_mb_s"], 1),
                     fmt(d["decode_total_mb_s"], 1), fmt(d["decode_total_ms"], 2), fmt(d["encode_mb_s"], 1)])
    L.append(md_table(["input", "numbers", "JSON bytes", "fast path MB/s", "fast path ms",
                       "cJSON parse MB/s", "tensor_from_json MB/s", "cJSON path MB/s", "cJSON path ms",
                       "encode MB/s"], rows))
    L.append("")

    # Targets
    t = []
    a, b = res.get("inferd_mlp_c16"), res.get("floor_mlp_c16")
    if a and b:
        r = ratio(a["rps"], b["rps"])
        t.append(["tiny MLP, c=16: inferd ≥ 60% of the HTTP floor's req/s",
                  "%s / %s req/s = %.0f%%" % (fmt(a["rps"]), fmt(b["rps"]), 100 * r),
                  "**met**" if r >= TARGET_FLOOR_SHARE else "**missed**"])
    a = res.get("inferd_mlp_c1")
    if a:
        lim = fwd["mlp"]["median_us"] + TARGET_P50_OVER_US
        fl = res.get("floor_mlp_c1")
        t.append(["tiny MLP, c=1: p50 ≤ in-process forward + 150 µs",
                  "p50 %s µs vs %s + 150 = %s µs (HTTP floor p50 %s µs)"
                  % (fmt(a["p50"]), fmt(fwd["mlp"]["median_us"], 1), fmt(lim, 1),
                     fmt(fl["p50"]) if fl else "n/a"),
                  "**met**" if a["p50"] <= lim else "**missed**"])
    off = res.get("inferd_cnn_off_c16")
    ons = [(k, r) for k, r in res.items() if k.startswith("inferd_cnn_b")]
    if off and ons:
        k, best = max(ons, key=lambda kv: kv[1]["rps"])
        g = ratio(best["rps"], off["rps"])
        t.append(["CNN, c=16: batching on ≥ 1.5× batching off",
                  "MAX_BATCH_SIZE=%s (best of %s): %s vs %s req/s = %.2f×"
                  % (batch_of(k), ", ".join(batch_of(x) for x, _ in ons),
                     fmt(best["rps"]), fmt(off["rps"]), g),
                  "**met**" if g >= TARGET_BATCH_GAIN else "**missed**"])
    for key in ("224_repr", "224_short"):
        d = dec[key]
        if d["fast_declined"]:
            got, how = d["decode_total_mb_s"], "fast path declined; cJSON path"
        else:
            got, how = d["fast_mb_s"], "fast path; the cJSON fallback: %.1f" % d["decode_total_mb_s"]
        t.append(["JSON decode of 1×3×224×224 float32 ≥ 150 MB/s (%s numbers)" % d["format"],
                  "%.1f MB/s (%s; %s B)" % (got, how, fmt(d["json_bytes"])),
                  "**met**" if got >= TARGET_DECODE_MB_S else "**missed**"])
    L.append("Targets:")
    L.append("")
    L.append(md_table(["target", "this run", ""], t))
    s, i = res.get("seed_mlp_c16"), res.get("inferd_mlp_c16")
    if s and i:
        L.append("")
        L.append("Headline: on the tiny MLP at 16 connections inferd serves %s req/s, the Python seed "
                 "server %s req/s: %.1f× the throughput, p50 %s µs vs %s µs, p99 %s µs vs %s µs."
                 % (fmt(i["rps"]), fmt(s["rps"]), ratio(i["rps"], s["rps"]), fmt(i["p50"]), fmt(s["p50"]),
                    fmt(i["p99"]), fmt(s["p99"])))
    if "cnn_auto" in fwd:
        L.append("")
        L.append("Thread count: the CNN forward alone takes %s µs (p99 %s) at %d intra-op threads, "
                 "the daemon's automatic TORCH_NUM_THREADS here (CPUs / workers), against %s µs (p99 %s) "
                 "at %d."
                 % (fmt(fwd["cnn_auto"]["median_us"]), fmt(fwd["cnn_auto"]["p99_us"]),
                    fwd["cnn_auto"]["threads"], fmt(fwd["cnn"]["median_us"]), fmt(fwd["cnn"]["p99_us"]),
                    fwd["cnn"]["threads"]))
    return "\n".join(L)


if __name__ == "__main__":
    main()
