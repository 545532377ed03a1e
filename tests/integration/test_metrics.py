"""GET /metrics (src/metrics.c, src/handlers_metrics.c): the Prometheus text
exposition is valid for promtool, python's prometheus_client parser and a
real Prometheus server; histograms are consistent; names follow the
conventions; and the counters, gauges and histograms move as requests are
made.

One daemon serving mlp.pt (MEMORY_LIMIT_MB=300) is shared by the module;
counter checks work on deltas so that test order does not matter. Tests that
need a different configuration start their own daemon with the conftest
factory.
"""

import math
import os
import re
import subprocess
import threading
import time
from collections import defaultdict

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import (ADMIN_TOKEN, Daemon, INFERD_BIN, assert_json_reply,
                      base_env, free_port, model)

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
LIMIT_MB = 300
PRED_ROUTE = "/predict"
V2_INFER_ROUTE = "/v2/models/{model}/infer"
X = [[5.1, 3.5, 1.4, 0.2]]

# Every metric the README lists, with its type.
DOCUMENTED = {
    "inferd_requests_total": "counter",
    "inferd_request_duration_seconds": "histogram",
    "inferd_queue_wait_seconds": "histogram",
    "inferd_inference_duration_seconds": "histogram",
    "inferd_batch_size": "histogram",
    "inferd_queue_depth": "gauge",
    "inferd_model_loaded": "gauge",
    "inferd_runtime_loaded": "gauge",
    "inferd_model_loads_total": "counter",
    "inferd_model_unloads_total": "counter",
    "inferd_model_load_failures_total": "counter",
    "inferd_model_load_duration_seconds": "gauge",
    "inferd_process_resident_memory_bytes": "gauge",
    "inferd_process_anonymous_memory_bytes": "gauge",
    "inferd_process_file_memory_bytes": "gauge",
    "inferd_memory_limit_bytes": "gauge",
}


# ------------------------------------------------------------ helpers

def scrape_text(d):
    r = d.get("/metrics", timeout=10)
    assert r.status_code == 200, r.text
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("text/plain"), ctype
    assert "version=0.0.4" in ctype, ctype
    return r.text


def parse(text):
    """{(sample name, frozenset(labels.items())): value}, and the families."""
    fams = list(text_string_to_metric_families(text))
    samples = {}
    for f in fams:
        for s in f.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return samples, fams


class Scrape:
    def __init__(self, d):
        self.text = scrape_text(d)
        self.samples, self.families = parse(self.text)

    def get(self, name, default=0.0, **labels):
        return self.samples.get((name, frozenset(labels.items())), default)

    def has(self, name, **labels):
        return (name, frozenset(labels.items())) in self.samples

    def requests(self, route, status):
        return self.get("inferd_requests_total", route=route,
                        status=str(status))


def wait_for(pred, timeout=2.0):
    """The request counter is bumped when the reply has been sent, so a
    scrape right after a reply may in principle race it: poll briefly."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.02)


def start_daemon(tmp, **extra):
    env = {"PORT": free_port(), "HOST": "127.0.0.1",
           "ADMIN_TOKEN": ADMIN_TOKEN, "MODEL_PATH": model("mlp.pt"),
           "TORCH_NUM_THREADS": "1"}
    env.update(extra)
    d = Daemon(INFERD_BIN, base_env(env), [], tmp, sanitized=False)
    d.wait_healthy()
    return d


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """mlp.pt, MEMORY_LIMIT_MB=300, with a little traffic of every kind
    (load, predictions, a 404, a v2 inference) so that every family has
    samples."""
    d = start_daemon(tmp_path_factory.mktemp("metrics"),
                     MEMORY_LIMIT_MB=str(LIMIT_MB))
    try:
        assert d.post("/model/load").status_code == 200
        for _ in range(3):
            assert d.predict(X).status_code == 200
        assert d.get("/no/such/path").status_code == 404
        r = d.post("/v2/models/mlp/infer",
                   {"inputs": [{"name": "x", "shape": [1, 4],
                                "datatype": "FP32", "data": X[0]}]})
        assert r.status_code == 200, r.text
        assert d.post("/predict", {"inputs": [[1, 2, 3]]}).status_code == 400
        yield d
    finally:
        rc = d.stop()
        assert rc == 0, d.stderr_text()[-3000:]


# ------------------------------------------------------------ format

def test_promtool_check_metrics_reports_nothing(daemon):
    if not os.path.exists(PROMTOOL):
        pytest.skip(f"{PROMTOOL} is not installed")
    text = scrape_text(daemon)
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and not p.stdout.strip() \
        and not p.stderr.strip(), \
        f"promtool rc={p.returncode}\n{p.stdout}\n{p.stderr}"


def test_promtool_on_a_fresh_daemon(inferd):
    """Before any traffic (families without samples, zero histograms)."""
    if not os.path.exists(PROMTOOL):
        pytest.skip(f"{PROMTOOL} is not installed")
    d = inferd(env={"MODEL_PATH": model("mlp.pt")}, asan=True)
    text = scrape_text(d)
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and not p.stdout.strip() \
        and not p.stderr.strip(), \
        f"promtool rc={p.returncode}\n{p.stdout}\n{p.stderr}"
    parse(text)


def test_python_parser_reads_every_documented_family(daemon):
    s = Scrape(daemon)
    types = {}
    for f in s.families:
        types[f.name] = f.type
    for name, typ in DOCUMENTED.items():
        # prometheus_client names a counter family without "_total".
        fam = name[:-len("_total")] if typ == "counter" else name
        assert types.get(fam) == typ, (name, typ, types.get(fam))
    # Every sample line of the text was read as a sample (nothing dropped).
    lines = [l for l in s.text.splitlines() if l and not l.startswith("#")]
    assert len(lines) == len(s.samples), (len(lines), len(s.samples))
    for v in s.samples.values():
        assert not math.isnan(v)


def test_type_and_help_precede_samples(daemon):
    text = scrape_text(daemon)
    declared = {}
    helped = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            assert name not in declared, f"TYPE twice for {name}"
            declared[name] = typ
        elif line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            helped.add(name)
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            base = name
            for suf in ("_bucket", "_sum", "_count"):
                if name.endswith(suf) and name[:-len(suf)] in declared \
                        and declared[name[:-len(suf)]] == "histogram":
                    base = name[:-len(suf)]
            assert base in declared, f"sample {name} before its TYPE line"
    assert set(declared) == helped, set(declared) ^ helped
    assert text.endswith("\n")


def test_histograms_are_cumulative_and_end_with_inf_equal_to_count(daemon):
    s = Scrape(daemon)
    hists = [f for f in s.families if f.type == "histogram"]
    assert {f.name for f in hists} >= {
        "inferd_request_duration_seconds", "inferd_queue_wait_seconds",
        "inferd_inference_duration_seconds", "inferd_batch_size"}
    checked = 0
    for f in hists:
        series = defaultdict(lambda: {"buckets": [], "sum": None,
                                      "count": None})
        for smp in f.samples:
            labels = {k: v for k, v in smp.labels.items() if k != "le"}
            key = tuple(sorted(labels.items()))
            if smp.name == f.name + "_bucket":
                series[key]["buckets"].append((smp.labels["le"], smp.value))
            elif smp.name == f.name + "_sum":
                series[key]["sum"] = smp.value
            elif smp.name == f.name + "_count":
                series[key]["count"] = smp.value
            elif smp.name == f.name + "_created":
                pass
            else:
                pytest.fail(f"unexpected sample {smp.name} in {f.name}")
        assert series, f"{f.name} has no series after traffic"
        for key, ser in series.items():
            what = f"{f.name}{dict(key)}"
            b = ser["buckets"]
            assert b, what
            bounds = [float(le) for le, _ in b]
            assert bounds == sorted(bounds) and len(set(bounds)) == len(b), \
                (what, bounds)
            assert b[-1][0] == "+Inf", (what, b[-1])
            counts = [v for _, v in b]
            assert all(x <= y for x, y in zip(counts, counts[1:])), \
                (what, counts)
            assert ser["count"] is not None and ser["sum"] is not None, what
            assert counts[-1] == ser["count"], (what, counts[-1], ser["count"])
            assert ser["sum"] >= 0, what
            if ser["count"] == 0:
                assert ser["sum"] == 0, what
            checked += 1
    assert checked >= 4


def test_names_follow_conventions(daemon):
    text = scrape_text(daemon)
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert types
    for name, typ in types.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        assert name.startswith("inferd_"), name
        assert "__" not in name, name
        if typ == "counter":
            assert name.endswith("_total"), name
        else:
            assert not name.endswith("_total"), name
        # base units only, in the name's last word
        for bad in ("_ms", "_milliseconds", "_us", "_mb", "_kb", "_mib",
                    "_kib", "_megabytes", "_kilobytes", "_percent"):
            assert bad + "_" not in name + "_", (name, bad)
        stem = name[:-len("_total")] if name.endswith("_total") else name
        words = stem.split("_")
        if {"duration", "wait", "latency", "time"} & set(words):
            assert stem.endswith("_seconds"), name
        if "memory" in words:
            assert stem.endswith("_bytes"), name
        if "seconds" in stem:
            assert stem.endswith("_seconds"), name
        if "bytes" in stem:
            assert stem.endswith("_bytes"), name
    # Labels: route patterns, never raw URLs; status is a code or "other".
    for route in re.findall(r'route="([^"]*)"', text):
        assert route == "unmatched" or route.startswith("/"), route
        assert "no/such" not in route and "/v2/models/mlp" not in route, route
    for status in re.findall(r'status="([^"]*)"', text):
        assert status == "other" or re.fullmatch(r"[1-5][0-9][0-9]", status)


# ------------------------------------------------------------ counters

def test_predict_counter_grows_by_exactly_the_predictions(daemon):
    n = 7
    before = Scrape(daemon)
    for i in range(n):
        r = daemon.predict([[float(i), 1.0, 2.0, 3.0]])
        assert r.status_code == 200, r.text
    want = before.requests(PRED_ROUTE, 200) + n
    holder = {}

    def reached():
        holder["s"] = Scrape(daemon)
        return holder["s"].requests(PRED_ROUTE, 200) >= want

    wait_for(reached)
    after = holder["s"]
    assert after.requests(PRED_ROUTE, 200) == want, \
        (before.requests(PRED_ROUTE, 200), after.requests(PRED_ROUTE, 200))
    # Nothing else moved under /predict.
    for st in (400, 404, 500, 503):
        assert after.requests(PRED_ROUTE, st) == before.requests(PRED_ROUTE,
                                                                 st), st
    # The route's duration histogram counted them too.
    key = "inferd_request_duration_seconds_count"
    assert after.get(key, route=PRED_ROUTE) == before.get(
        key, route=PRED_ROUTE) + n


def test_errors_are_counted_by_status(daemon):
    before = Scrape(daemon)
    r = daemon.post("/predict", {"inputs": [[1, 2, 3]]})
    assert r.status_code == 400
    r = daemon.post("/predict", data="not json",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    time.sleep(0.05)
    after = Scrape(daemon)
    assert after.requests(PRED_ROUTE, 400) == before.requests(PRED_ROUTE,
                                                              400) + 2
    assert after.requests(PRED_ROUTE, 200) == before.requests(PRED_ROUTE, 200)


def test_unknown_path_counted_as_unmatched(daemon):
    before = Scrape(daemon)
    for p in ("/nope", "/v3/models/x", "/predict/extra"):
        assert daemon.get(p).status_code == 404
    time.sleep(0.05)
    after = Scrape(daemon)
    assert after.requests("unmatched", 404) == before.requests(
        "unmatched", 404) + 3
    assert "/nope" not in after.text and "/v3/models" not in after.text


def test_v2_inference_labelled_by_pattern(daemon):
    before = Scrape(daemon)
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                        "data": X[0]}]}
    for _ in range(2):
        assert daemon.post("/v2/models/mlp/infer", body).status_code == 200
    time.sleep(0.05)
    after = Scrape(daemon)
    assert after.requests(V2_INFER_ROUTE, 200) == before.requests(
        V2_INFER_ROUTE, 200) + 2
    assert 'route="/v2/models/mlp/infer"' not in after.text


def test_inference_and_queue_histograms_grow(daemon):
    n = 5
    before = Scrape(daemon)
    for _ in range(n):
        assert daemon.predict(X).status_code == 200
    time.sleep(0.05)
    after = Scrape(daemon)
    for h in ("inferd_inference_duration_seconds",
              "inferd_queue_wait_seconds"):
        assert after.get(h + "_count") == before.get(h + "_count") + n, h
        assert after.get(h + "_sum") > before.get(h + "_sum"), h
    # Batching is off (MAX_BATCH_SIZE=1): each prediction is a batch of 1.
    assert after.get("inferd_batch_size_count") == \
        before.get("inferd_batch_size_count") + n
    assert after.get("inferd_batch_size_sum") == \
        before.get("inferd_batch_size_sum") + n
    assert after.get("inferd_batch_size_bucket", le="1") == \
        before.get("inferd_batch_size_bucket", le="1") + n
    assert after.get("inferd_queue_depth") == 0


def test_load_and_unload_counters(daemon):
    before = Scrape(daemon)
    r = daemon.post("/model/unload")
    assert assert_json_reply(r, 200)["status"] == "unloaded"
    mid = Scrape(daemon)
    assert mid.get("inferd_model_loaded") == 0
    assert mid.get("inferd_model_unloads_total") == \
        before.get("inferd_model_unloads_total") + 1
    assert mid.get("inferd_runtime_loaded") == 1  # libtorch stays mapped
    r = daemon.post("/model/load")
    assert assert_json_reply(r, 200)["status"] == "loaded"
    after = Scrape(daemon)
    assert after.get("inferd_model_loaded") == 1
    assert after.get("inferd_model_loads_total") == \
        before.get("inferd_model_loads_total") + 1
    assert after.get("inferd_model_load_duration_seconds") > 0
    assert after.get("inferd_model_load_failures_total") == \
        before.get("inferd_model_load_failures_total")
    # An already-loaded load is not a load.
    r = daemon.post("/model/load")
    assert assert_json_reply(r, 200)["status"] == "already_loaded"
    assert Scrape(daemon).get("inferd_model_loads_total") == \
        after.get("inferd_model_loads_total")


def test_v2_repository_load_and_unload_counted(daemon):
    """The repository extension's unload and (re)load move the same
    counters; a reload of a loaded model is an unload plus a load."""
    before = Scrape(daemon)
    was_loaded = before.get("inferd_model_loaded") == 1
    r = daemon.post("/v2/repository/models/mlp/unload", {})
    assert r.status_code == 200, r.text
    mid = Scrape(daemon)
    assert mid.get("inferd_model_loaded") == 0
    assert mid.get("inferd_model_unloads_total") == \
        before.get("inferd_model_unloads_total") + (1 if was_loaded else 0)
    for _ in range(2):
        r = daemon.post("/v2/repository/models/mlp/load", {})
        assert r.status_code == 200, r.text
    after = Scrape(daemon)
    assert after.get("inferd_model_loaded") == 1
    assert after.get("inferd_model_loads_total") == \
        mid.get("inferd_model_loads_total") + 2
    assert after.get("inferd_model_unloads_total") == \
        mid.get("inferd_model_unloads_total") + 1
    assert after.requests("/v2/repository/models/{model}/load", 200) == \
        before.requests("/v2/repository/models/{model}/load", 200) + 2


def test_idle_unload_counted(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), "TORCH_NUM_THREADS": "1",
                    "MODEL_IDLE_UNLOAD_SECONDS": "1"})
    assert d.predict(X).status_code == 200
    s = Scrape(d)
    assert s.get("inferd_model_loaded") == 1
    assert s.get("inferd_model_unloads_total") == 0
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        s = Scrape(d)
        if s.get("inferd_model_loaded") == 0:
            break
        time.sleep(0.2)
    assert s.get("inferd_model_loaded") == 0, "not unloaded when idle"
    assert s.get("inferd_model_unloads_total") == 1
    assert s.get("inferd_model_loads_total") == 1
    assert s.get("inferd_runtime_loaded") == 1


def test_first_load_from_nothing(inferd):
    """A fresh daemon: every model gauge and counter 0, then a load (through
    the first prediction) makes model_loaded and runtime_loaded 1 and
    loads_total 1."""
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), "TORCH_NUM_THREADS": "1"})
    s = Scrape(d)
    for name in ("inferd_model_loaded", "inferd_runtime_loaded",
                 "inferd_model_loads_total", "inferd_model_unloads_total",
                 "inferd_model_load_failures_total",
                 "inferd_model_load_duration_seconds", "inferd_queue_depth"):
        assert s.has(name), name
        assert s.get(name) == 0, (name, s.get(name))
    for h in ("inferd_queue_wait_seconds", "inferd_inference_duration_seconds",
              "inferd_batch_size"):
        assert s.get(h + "_count") == 0, h
    assert s.requests(PRED_ROUTE, 200) == 0
    assert d.predict(X).status_code == 200
    s = Scrape(d)
    assert s.get("inferd_model_loaded") == 1
    assert s.get("inferd_runtime_loaded") == 1
    assert s.get("inferd_model_loads_total") == 1
    assert s.requests(PRED_ROUTE, 200) == 1


def test_load_failures_with_a_missing_file(inferd, tmp_path):
    d = inferd(env={"MODEL_PATH": str(tmp_path / "missing.pt"),
                    "BACKEND_PATH": "/nonexistent/libinferd_torch.so"},
               asan=True)
    before = Scrape(d)
    assert before.get("inferd_model_load_failures_total") == 0
    r = d.post("/model/load")
    assert_json_reply(r, 404)
    r = d.predict(X)
    assert_json_reply(r, 404)
    time.sleep(0.05)
    after = Scrape(d)
    assert after.get("inferd_model_load_failures_total") == 2, \
        after.get("inferd_model_load_failures_total")
    assert after.get("inferd_model_loaded") == 0
    assert after.get("inferd_model_loads_total") == 0
    assert after.requests("/model/load", 404) == 1
    assert after.requests(PRED_ROUTE, 404) == 1


def test_batch_size_histogram_with_batching(inferd):
    """MAX_BATCH_SIZE=8 with a long batch timeout and 6 concurrent
    predictions: the batch histogram's sum grows by exactly the number of
    predictions stacked, its count by the number of forwards (fewer)."""
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), "TORCH_NUM_THREADS": "1",
                    "MAX_BATCH_SIZE": "8", "BATCH_TIMEOUT_US": "300000"})
    assert d.post("/model/load").status_code == 200
    before = Scrape(d)
    n = 6
    results = []
    barrier = threading.Barrier(n)

    def one():
        barrier.wait()
        results.append(requests.post(d.url + "/predict", json={"inputs": X},
                                     timeout=30).status_code)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * n
    time.sleep(0.05)
    after = Scrape(d)
    dsum = after.get("inferd_batch_size_sum") - before.get(
        "inferd_batch_size_sum")
    dcount = after.get("inferd_batch_size_count") - before.get(
        "inferd_batch_size_count")
    assert dsum == n, (dsum, dcount)
    assert 1 <= dcount < n, (dsum, dcount)
    assert after.get("inferd_batch_size_bucket", le="1") - before.get(
        "inferd_batch_size_bucket", le="1") < dcount
    assert after.get("inferd_inference_duration_seconds_count") - before.get(
        "inferd_inference_duration_seconds_count") == n
    assert after.requests(PRED_ROUTE, 200) - before.requests(PRED_ROUTE,
                                                             200) == n


# ------------------------------------------------------------ gauges

def test_memory_gauges(daemon):
    s = Scrape(daemon)
    for name in ("inferd_process_resident_memory_bytes",
                 "inferd_process_anonymous_memory_bytes",
                 "inferd_process_file_memory_bytes"):
        assert s.get(name, default=-1) > 0, name
    rss = s.get("inferd_process_resident_memory_bytes")
    assert s.get("inferd_process_anonymous_memory_bytes") <= rss * 1.05
    # Same order as /proc/PID/status VmRSS (the process is live and mapped
    # libtorch: a few MB of drift at most).
    vmrss = daemon.status()["VmRSS"] * 1024
    assert abs(rss - vmrss) < 32 << 20, (rss, vmrss)
    assert s.get("inferd_memory_limit_bytes") == LIMIT_MB * 2 ** 20
    mem = daemon.memory()["memory"]
    assert mem["limit_mb"] == LIMIT_MB and mem["limit_source"] == "env", mem


def test_memory_limit_without_setting_matches_memory_endpoint(inferd):
    """Unset, the limit is detected (cgroup, else 512 MB); /metrics and
    /memory agree on it."""
    d = inferd(env={"MODEL_PATH": model("mlp.pt")}, asan=True)
    s = Scrape(d)
    mem = d.memory()["memory"]
    limit = s.get("inferd_memory_limit_bytes")
    assert limit > 0
    assert abs(limit / 2 ** 20 - mem["limit_mb"]) < 0.01, (limit, mem)
    if mem["limit_source"] == "default":
        assert limit == 512 * 2 ** 20


# ------------------------------------------------------------ Prometheus

def test_prometheus_server_scrapes_it(daemon, tmp_path):
    if not os.path.exists(PROMETHEUS):
        print(f"SKIP: {PROMETHEUS} is not installed")
        pytest.skip(f"{PROMETHEUS} is not installed")
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: inferd\n"
        "    metrics_path: /metrics\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{daemon.port}']\n")
    data = tmp_path / "tsdb"
    data.mkdir()
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={data}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        result, last = None, None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                r = requests.get(api + "/query",
                                 params={"query": "inferd_model_loaded"},
                                 timeout=2)
                last = r.text
                if r.status_code == 200:
                    body = r.json()
                    if body["status"] == "success" and body["data"]["result"]:
                        result = body["data"]["result"]
                        break
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.25)
        assert result, f"no inferd_model_loaded within 20 s; last: {last}\n" \
            + (tmp_path / "prometheus.log").read_text()[-3000:]
        assert result[0]["metric"]["__name__"] == "inferd_model_loaded"
        assert result[0]["metric"]["job"] == "inferd"
        assert result[0]["value"][1] in ("0", "1")
        # The target is up with no scrape error (a half-parsed page would
        # still give some series but set lastError).
        t = requests.get(api + "/targets", timeout=5).json()
        targets = t["data"]["activeTargets"]
        assert len(targets) == 1, targets
        assert targets[0]["health"] == "up", targets[0]
        assert targets[0]["lastError"] == "", targets[0]
        # Histograms made it in whole: the +Inf bucket of predictions.
        r = requests.get(api + "/query", params={
            "query": 'inferd_request_duration_seconds_bucket'
                     '{route="/predict",le="+Inf"}'}, timeout=5).json()
        assert r["data"]["result"], r
        assert float(r["data"]["result"][0]["value"][1]) >= 3
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
