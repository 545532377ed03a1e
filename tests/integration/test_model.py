"""inferd with models: load/unload, /predict against python3-torch's answers,
input errors, lazy loading, memory after unload, stress, the queue limit and
shutdown with requests in flight.

Tests that load a model run the production binary (INFERD_BIN); tests whose
requests are all refused before any load (input decoding, missing files,
the memory guard) run the sanitizer build, with BACKEND_PATH pointing
nowhere so that an unexpected load fails fast instead of mapping libtorch
under ASan.
"""

import json
import threading
import time

import pytest
import requests
import torch

from conftest import assert_json_reply, manifest, memory_figures, model
from reference import reference

torch.set_num_threads(1)

NO_BACKEND = "/nonexistent/libinferd_torch.so"
T1 = {"TORCH_NUM_THREADS": "1"}
MEMORY_KEYS = ["rss_mb", "vms_mb", "model_loaded", "gpu_allocated_mb",
               "gpu_cached_mb", "rss_anon_mb", "rss_file_mb", "peak_rss_mb",
               "limit_mb", "limit_source", "usage_mb", "usage_source",
               "usage_percent", "level", "paging"]


# ------------------------------------------------------------ helpers

def f32(x):
    return torch.tensor(x, dtype=torch.float32)


def assert_f32_equal(got, want, what="outputs"):
    g, w = f32(got), f32(want)
    assert list(g.shape) == list(w.shape), (what, list(g.shape), list(w.shape))
    if not torch.equal(g, w):
        diff = (g - w).abs().max().item()
        raise AssertionError(f"{what}: max abs diff {diff} (float32 not exact)")


def shape_of(x):
    return list(torch.tensor(x).shape)


def make_input(spec, seed, n=None):
    g = torch.Generator().manual_seed(seed)
    shape = list(spec["shape"])
    if n is not None:
        shape[0] = n
    if spec["dtype"] == "int64":
        lo, hi = spec.get("range", [0, 100])
        return torch.randint(lo, hi, shape, generator=g).tolist()
    return torch.randn(shape, generator=g).tolist()


def one_line_error(r, status=400):
    body = assert_json_reply(r, status)
    msg = body["error"]
    assert "\n" not in msg, f"multi-line error: {msg!r}"
    assert "Traceback" not in msg, msg
    assert len(msg) < 1000, f"{len(msg)}-char error"
    return msg


def post_predict(d, body, timeout=60):
    return d.post("/predict", body, timeout=timeout)


MODEL_KIND = {
    "mlp.pt": "tensor", "two_arg.pt": "tensor", "tuple_out.pt": "seq",
    "list_out.pt": "seq", "dict_out.pt": "dict", "scalar_out.pt": "scalar",
    "embedding.pt": "tensor", "cnn.pt": "tensor", "big50.pt": "tensor",
    "mlp80.pt": "tensor", "attrs.pt": "tensor", "writes_buffer.pt": "tensor",
    "slow.pt": "tensor",
}


def request_and_reference(name, seed=1):
    """(request body, reference output) for fixture `name`."""
    specs = manifest()[name]["inputs"]
    vals = [make_input(s, seed + i) for i, s in enumerate(specs)]
    dtypes = [s["dtype"] for s in specs]
    ref = reference(model(name), vals, num_threads=1, dtypes=dtypes)
    if len(specs) == 1:
        body = {"inputs": vals[0]}
        if dtypes[0] != "float32":
            body["dtype"] = dtypes[0]
    else:
        body = {"inputs": {s["name"]: v for s, v in zip(specs, vals)}}
    return body, ref


def check_outputs(name, out, ref):
    kind = MODEL_KIND[name]
    assert out["model"] == name[:-3]
    assert isinstance(out["inference_ms"], (int, float)) and out["inference_ms"] >= 0
    if kind == "tensor":
        assert_f32_equal(out["outputs"], ref)
        assert out["shape"] == shape_of(ref)
        assert out["dtype"] == "float32"
    elif kind == "seq":
        assert isinstance(out["outputs"], list) and len(out["outputs"]) == len(ref)
        assert isinstance(out["shape"], list) and len(out["shape"]) == len(ref)
        assert out["dtype"] == ["float32"] * len(ref)
        for i, (g, w) in enumerate(zip(out["outputs"], ref)):
            assert_f32_equal(g, w, f"outputs[{i}]")
            assert out["shape"][i] == shape_of(w), (i, out["shape"])
    elif kind == "dict":
        assert isinstance(out["outputs"], dict), out
        assert set(out["outputs"]) == set(ref)
        assert set(out["shape"]) == set(ref) and set(out["dtype"]) == set(ref)
        for k in ref:
            assert_f32_equal(out["outputs"][k], ref[k], f"outputs.{k}")
            assert out["shape"][k] == shape_of(ref[k])
            assert out["dtype"][k] == "float32"
    elif kind == "scalar":
        assert isinstance(out["outputs"], (int, float)) \
            and not isinstance(out["outputs"], bool), out
        assert out["outputs"] == pytest.approx(ref, rel=1e-6, abs=1e-6)
    else:
        raise AssertionError(kind)


# ------------------------------------------------------------ correctness

CORRECTNESS = ["mlp.pt", "two_arg.pt", "tuple_out.pt", "list_out.pt",
               "dict_out.pt", "scalar_out.pt", "embedding.pt", "cnn.pt",
               "big50.pt", "mlp80.pt", "attrs.pt", "slow.pt"]


@pytest.mark.parametrize("name", CORRECTNESS)
def test_predict_matches_reference(inferd, name):
    d = inferd(env={"MODEL_PATH": model(name), **T1})
    body, ref = request_and_reference(name)
    r = post_predict(d, body)
    out = assert_json_reply(r, 200)
    check_outputs(name, out, ref)
    # a second call (model now loaded) gives the same answer
    r2 = post_predict(d, body)
    check_outputs(name, assert_json_reply(r2, 200), ref)
    assert d.memory()["model"]["loads"] == 1


def test_predict_batch_sizes(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), **T1})
    spec = manifest()["mlp.pt"]["inputs"][0]
    for n in (1, 3, 17):
        x = make_input(spec, 100 + n, n=n)
        ref = reference(model("mlp.pt"), [x], num_threads=1)
        out = assert_json_reply(d.predict(x), 200)
        assert out["shape"] == [n, 3]
        assert_f32_equal(out["outputs"], ref)


def test_embedding_int64(inferd):
    d = inferd(env={"MODEL_PATH": model("embedding.pt"), **T1})
    ids = [[0, 1, 99, 42, 7], [5, 5, 5, 5, 5]]
    ref = reference(model("embedding.pt"), [ids], num_threads=1,
                    dtypes=["int64"])
    out = assert_json_reply(d.predict(ids, dtype="int64"), 200)
    assert out["shape"] == [2, 5, 8]
    assert_f32_equal(out["outputs"], ref)


def test_writes_buffer_counts_from_fresh_load(inferd):
    d = inferd(env={"MODEL_PATH": model("writes_buffer.pt"), **T1})
    x = [[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 8.0]]
    ref = reference(model("writes_buffer.pt"), [x], num_threads=1)
    out1 = assert_json_reply(d.predict(x), 200)
    assert_f32_equal(out1["outputs"], ref)           # x + 1
    out2 = assert_json_reply(d.predict(x), 200)
    assert_f32_equal(out2["outputs"], [[v + 2 for v in row] for row in x])
    # a reload starts from the saved state again
    assert d.post("/model/unload").json()["status"] == "unloaded"
    out3 = assert_json_reply(d.predict(x), 200)
    assert_f32_equal(out3["outputs"], ref)


@pytest.mark.parametrize("mmap", ["true", "false"])
def test_writes_buffer_and_attrs_with_mmap_setting(inferd, mmap):
    for name in ("writes_buffer.pt", "attrs.pt", "big50.pt"):
        d = inferd(env={"MODEL_PATH": model(name), "MODEL_MMAP": mmap, **T1})
        body, ref = request_and_reference(name, seed=7)
        check_outputs(name, assert_json_reply(post_predict(d, body), 200), ref)
        assert d.stop() == 0


def test_two_arg_named_inputs_and_dtypes(inferd):
    d = inferd(env={"MODEL_PATH": model("two_arg.pt"), **T1})
    a = [[1.0, 2.0, 3.0, 4.0], [0.5, -0.5, 1.5, -1.5]]
    b = [[10.0, 20.0, 30.0, 40.0], [1.0, 1.0, 1.0, 1.0]]
    ref = reference(model("two_arg.pt"), [a, b], num_threads=1)
    for body in ({"inputs": {"a": a, "b": b}},
                 {"inputs": {"b": b, "a": a}},  # order of keys is irrelevant
                 {"inputs": {"a": a, "b": b}, "dtype": "float32"},
                 {"inputs": {"a": a, "b": b},
                  "dtype": {"a": "float32", "b": "float32"}}):
        out = assert_json_reply(post_predict(d, body), 200)
        assert_f32_equal(out["outputs"], ref)
        assert out["shape"] == [2, 4]


@pytest.mark.parametrize("body,needle", [
    ({"inputs": {"a": [[1.0, 2, 3, 4]]}}, "b"),                    # missing
    ({"inputs": {"a": [[1.0, 2, 3, 4]], "b": [[1.0, 2, 3, 4]],
                 "c": [[1.0, 2, 3, 4]]}}, None),                   # unknown
    ({"inputs": {"x": [[1.0, 2, 3, 4]]}}, None),                   # unknown
    ({"inputs": [[1.0, 2, 3, 4]]}, None),                          # positional
], ids=["missing_b", "unknown_c", "unknown_x", "positional"])
def test_two_arg_bad_names_400(inferd, body, needle):
    d = inferd(env={"MODEL_PATH": model("two_arg.pt"), **T1})
    msg = one_line_error(post_predict(d, body), 400)
    assert "a" in msg and "b" in msg, msg
    assert '"a"' in msg or "a, b" in msg or "(a" in msg, \
        f"message should name the expected arguments a and b: {msg}"
    if needle:
        assert needle in msg
    assert d.health()["status"] == "ok"
    # the server still answers a correct request
    ok = post_predict(d, {"inputs": {"a": [[1.0, 2, 3, 4]],
                                     "b": [[0.0, 0, 0, 0]]}})
    assert ok.status_code == 200, ok.text


# ------------------------------------------------------------ load / unload

@memory_figures
def test_load_unload_cycle_replies(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), **T1})
    r = d.post("/model/load")
    body = assert_json_reply(r, 200)
    assert body["status"] == "loaded"
    assert isinstance(body["load_time_ms"], (int, float)) and body["load_time_ms"] > 0
    for k in MEMORY_KEYS:
        assert k in body["memory"], k
    assert body["memory"]["model_loaded"] is True
    assert d.torch_maps(), "libtorch should be mapped after a load"

    again = assert_json_reply(d.post("/model/load"), 200)
    assert again["status"] == "already_loaded"

    h = d.health()
    assert h["model_loaded"] is True and h["model_status"] == "loaded"

    m = d.memory()
    assert m["model"]["status"] == "loaded"
    assert m["model"]["total_parameters"] == 4 * 8 + 8 + 8 * 3 + 3
    for k in ("weights_mb", "weights_mapped_mb", "weights_copied_mb",
              "load_peak_rss_mb", "load_time_ms"):
        assert isinstance(m["model"].get(k), (int, float)), (k, m["model"])
    assert m["model"]["loads"] == 1
    rt = m["runtime"]
    assert rt["loaded"] is True and rt["name"] == "libtorch"
    assert str(rt["version"]).startswith("1.13"), rt
    assert rt["threads"] == 1

    u = assert_json_reply(d.post("/model/unload"), 200)
    assert u["status"] == "unloaded"
    assert isinstance(u["freed_mb"], (int, float))
    u2 = assert_json_reply(d.post("/model/unload"), 200)
    assert u2 == {"status": "not_loaded"}
    m = d.memory()
    assert m["model"]["status"] == "not_loaded"
    assert m["model"]["total_parameters"] is None
    assert (m["model"]["loads"], m["model"]["unloads"]) == (1, 1)
    assert m["memory"]["model_loaded"] is False
    assert d.health()["model_loaded"] is False


def test_runtime_threads_default_is_cpu_count(inferd):
    import os
    d = inferd(env={"MODEL_PATH": model("mlp.pt")})
    assert d.post("/model/load").status_code == 200
    ncpu = len(os.sched_getaffinity(d.pid))
    assert d.memory()["runtime"]["threads"] == ncpu


def test_load_without_model_path_503(inferd):
    d = inferd(env={"BACKEND_PATH": NO_BACKEND}, asan=True)
    assert_json_reply(d.post("/model/load"), 503)
    assert_json_reply(d.predict([[1.0, 2.0, 3.0, 4.0]]), 503)
    assert d.health()["status"] == "ok"
    assert d.memory()["runtime"] == {"loaded": False}


def test_load_missing_file_404(inferd, tmp_path):
    d = inferd(env={"MODEL_PATH": str(tmp_path / "absent.pt"),
                    "BACKEND_PATH": NO_BACKEND}, asan=True)
    body = assert_json_reply(d.post("/model/load"), 404)
    assert "absent.pt" in body["error"]
    assert_json_reply(d.predict([[1.0, 2.0, 3.0, 4.0]]), 404)
    h = d.health()
    assert h["status"] == "ok" and h["model_loaded"] is False
    m = d.memory()["model"]
    assert m["load_failures"] >= 1 and m["last_error"]


def test_load_state_dict_422(inferd):
    d = inferd(env={"MODEL_PATH": model("state_dict.pt")})
    msg = one_line_error(d.post("/model/load"), 422)
    assert "torch.save" in msg, msg
    one_line_error(d.predict([[1.0, 2.0, 3.0, 4.0]]), 422)
    assert d.health()["status"] == "ok"
    assert d.memory()["model"]["load_failures"] >= 1


@pytest.mark.parametrize("content", [b"", b"\x00" * 10, b"PK\x03\x04garbage",
                                     None], ids=["empty", "zeros", "badzip",
                                                 "random"])
def test_load_garbage_file_422(inferd, tmp_path, content):
    import os
    p = tmp_path / "garbage.pt"
    p.write_bytes(os.urandom(4096) if content is None else content)
    d = inferd(env={"MODEL_PATH": str(p)})
    one_line_error(d.post("/model/load"), 422)
    assert d.health()["status"] == "ok"


def test_load_directory_422(inferd, tmp_path):
    d = inferd(env={"MODEL_PATH": str(tmp_path)})
    one_line_error(d.post("/model/load"), 422)
    assert d.health()["status"] == "ok"


def test_memory_guard_refuses_507(inferd):
    d = inferd(env={"MODEL_PATH": model("big50.pt"), "MEMORY_LIMIT_MB": "50",
                    "MODEL_MMAP": "false", "BACKEND_PATH": NO_BACKEND},
               asan=True)
    r = d.post("/model/load")
    body = assert_json_reply(r, 507)
    for k in ("needed_mb", "free_mb", "limit_mb"):
        assert isinstance(body.get(k), (int, float)), body
    assert body["limit_mb"] == 50
    assert d.health()["model_loaded"] is False


# ------------------------------------------------------------ bad input

BAD_INPUTS = [
    ("empty", "", None),
    ("not_object", "[[1, 2, 3, 4]]", None),
    ("not_object_number", "42", None),
    ("missing_inputs", '{"x": [[1, 2, 3, 4]]}', "inputs"),
    ("ragged", '{"inputs": [[1, 2, 3, 4], [1, 2, 3]]}',
     "inputs[1] has 3 elements, expected 4"),
    ("string_elem", '{"inputs": [[1, 2, "x", 4]]}', "inputs[0][2]"),
    ("null_elem", '{"inputs": [[1, 2, null, 4]]}', "inputs[0][2]"),
    ("object_elem", '{"inputs": [[1, 2, {}, 4]]}', "inputs[0][2]"),
    ("nan", '{"inputs": [[1, NaN, 3, 4]]}', None),
    ("infinity", '{"inputs": [[1, Infinity, 3, 4]]}', None),
    ("truncated", '{"inputs": [[1, 2, 3, 4]', None),
    ("trailing_garbage", '{"inputs": [[1, 2, 3, 4]]} xyz', None),
    ("uint8_range", '{"inputs": [[1, 300, 3, 4]], "dtype": "uint8"}',
     "inputs[0][1]"),
    ("int8_range", '{"inputs": [[1, 2, -129, 4]], "dtype": "int8"}',
     "inputs[0][2]"),
    ("int_not_integer", '{"inputs": [[1, 2.5, 3, 4]], "dtype": "int64"}',
     "inputs[0][1]"),
    ("float32_range", '{"inputs": [[1, 1e39, 3, 4]]}', "inputs[0][1]"),
    ("too_many_dims", '{"inputs": ' + "[" * 33 + "1" + "]" * 33 + "}", "32"),
    ("unknown_dtype", '{"inputs": [[1, 2, 3, 4]], "dtype": "float128"}',
     "float128"),
    ("dtype_not_string", '{"inputs": [[1, 2, 3, 4]], "dtype": 7}', "dtype"),
    ("inputs_string", '{"inputs": "abc"}', None),
    ("ragged_depth", '{"inputs": [[1, 2, 3, 4], [[1], 2, 3, 4]]}',
     "inputs[1][0]"),
    ("ragged_shallow", '{"inputs": [[1, 2, 3, 4], 5]}', "inputs[1]"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_400(inferd, case):
    _, body, needle = case
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), "BACKEND_PATH": NO_BACKEND},
               asan=True)
    r = d.post("/predict", data=body,
               headers={"Content-Type": "application/json"})
    msg = one_line_error(r, 400)
    if needle:
        assert needle in msg, msg
    assert d.health()["status"] == "ok"
    m = d.memory()
    assert m["model"]["loads"] == 0 and m["model"]["load_failures"] == 0, \
        "a rejected request must not try to load the model"


def test_bad_input_over_one_connection(inferd):
    """Many bad requests on one keep-alive connection, then a good one."""
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), **T1})
    for _, body, _ in BAD_INPUTS:
        r = d.post("/predict", data=body,
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (body[:80], r.status_code, r.text)
    x = [[1.0, 2.0, 3.0, 4.0]]
    out = assert_json_reply(d.predict(x), 200)
    assert_f32_equal(out["outputs"], reference(model("mlp.pt"), [x], 1))


@pytest.mark.parametrize("body", [
    {"inputs": [[1.0, 2.0, 3.0]]},                  # wrong width
    {"inputs": [[1.0, 2.0, 3.0, 4.0, 5.0]]},        # wrong width
    {"inputs": [[]]},                               # empty row
    {"inputs": []},                                 # empty
    {"inputs": [[1, 2, 3, 4]], "dtype": "int64"},   # wrong dtype for Linear
    {"inputs": [[True, False, True, False]], "dtype": "bool"},
    {"inputs": 3.0},                                # 0-d
], ids=["width3", "width5", "empty_row", "empty", "int64", "bool", "scalar"])
def test_model_rejects_input_400_one_line(inferd, body):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), **T1})
    r = post_predict(d, body)
    msg = one_line_error(r, 400)
    assert msg
    assert d.health()["model_loaded"] is True
    ok = d.predict([[1.0, 2.0, 3.0, 4.0]])
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("body,ctype", [
    ('{"inputs": [[1, 2, 3, 4]]}', "text/html"),
    ('{"inputs": [[1, 2, 3, 4]]}', "image/png"),
    (b'{"inputs": [[1, 2, 3, 4]], "\xff\xfe": 1}', "application/json"),
    ('{"inputs": ' + "[" * 5000 + "]" * 5000 + "}", "application/json"),
    ('{"inputs": [[1e400, 2, 3, 4]]}', "application/json"),
    ('{"inputs": [[1, 2, 3, 4]], "dtype": {"x": 7}}', "application/json"),
    ('{"inputs": {}}', "application/json"),
    ('{"inputs": [[1, 2, 3, 4]], "dtype": null}', "application/json"),
    ("\x00\x01\x02", "application/json"),
], ids=["html", "png", "bad_utf8", "deep_nesting", "1e400", "dtype_obj_bad",
        "inputs_empty_obj", "dtype_null", "binary"])
def test_odd_bodies_never_5xx(inferd, body, ctype):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), **T1})
    r = d.post("/predict", data=body, headers={"Content-Type": ctype})
    assert r.status_code < 500, (r.status_code, r.text[:300])
    assert_json_reply(r)
    if r.status_code >= 400:
        one_line_error(r, r.status_code)
    assert d.health()["status"] == "ok"


# ------------------------------------------------------------ lazy loading

def test_lazy_first_predict_loads(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), **T1})
    assert d.torch_maps() == []
    assert d.health()["model_status"] == "not_loaded"
    assert d.memory()["runtime"] == {"loaded": False}
    x = [[0.25, -1.0, 2.0, 3.5]]
    out = assert_json_reply(d.predict(x), 200)
    assert_f32_equal(out["outputs"], reference(model("mlp.pt"), [x], 1))
    assert d.torch_maps(), "libtorch should be mapped after the first predict"
    h = d.health()
    assert h["model_loaded"] is True and h["model_status"] == "loaded"
    assert d.memory()["model"]["loads"] == 1


def test_lazy_concurrent_first_predicts_load_once(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), **T1})
    spec = manifest()["mlp.pt"]["inputs"][0]
    xs = [make_input(spec, 500 + i) for i in range(16)]
    refs = [reference(model("mlp.pt"), [x], 1) for x in xs]
    results = [None] * 16
    barrier = threading.Barrier(16)

    def worker(i):
        with requests.Session() as s:
            barrier.wait()
            results[i] = s.post(d.url + "/predict", json={"inputs": xs[i]},
                                timeout=60)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for i, r in enumerate(results):
        out = assert_json_reply(r, 200)
        assert_f32_equal(out["outputs"], refs[i], f"request {i}")
    m = d.memory()["model"]
    assert m["loads"] == 1, m
    assert m["load_failures"] == 0


def test_development_eager_load(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp80.pt"), "ENVIRONMENT":
                    "development", "LAZY_LOADING": "false",
                    "MODEL_MMAP": "false", **T1})
    deadline = time.monotonic() + 30
    loaded = False
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        h = d.health()
        dt = time.monotonic() - t0
        assert dt < 0.5, f"/health took {dt:.3f}s during the start-up load"
        if h["model_loaded"]:
            loaded = True
            break
        time.sleep(0.05)
    assert loaded, "model not loaded within 30 s of start-up"
    assert d.memory()["model"]["loads"] == 1
    body, ref = request_and_reference("mlp80.pt")
    check_outputs("mlp80.pt", assert_json_reply(post_predict(d, body), 200), ref)


def test_production_ignores_lazy_false(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), "ENVIRONMENT": "production",
                    "LAZY_LOADING": "false"})
    time.sleep(1.5)
    h = d.health()
    assert h["model_status"] == "not_loaded", h
    assert d.torch_maps() == []
    err = d.stderr_text()
    assert "LAZY_LOADING" in err and "ignored" in err, err
    # default ENVIRONMENT is production
    d2 = inferd(env={"MODEL_PATH": model("mlp.pt"), "LAZY_LOADING": "false"})
    time.sleep(0.5)
    assert d2.health()["model_status"] == "not_loaded"
    assert "ignored" in d2.stderr_text()


def test_development_lazy_true_stays_lazy(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), "ENVIRONMENT":
                    "development"})
    time.sleep(1.0)
    assert d.health()["model_status"] == "not_loaded"
    assert d.torch_maps() == []
    assert "ignored" not in d.stderr_text()


def _load_in_thread(d):
    result = {}

    def load():
        result["r"] = requests.post(d.url + "/model/load", timeout=60,
                                    headers=d.auth_headers("/model/load"))

    t = threading.Thread(target=load)
    t.start()
    return t, result


def test_health_answers_quickly_during_load(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp80.pt"), "MODEL_MMAP": "false",
                    **T1})
    t, result = _load_in_thread(d)
    statuses = []
    with requests.Session() as s:
        while t.is_alive():
            t0 = time.monotonic()
            r = s.get(d.url + "/health", timeout=5)
            dt = time.monotonic() - t0
            assert r.status_code == 200
            assert dt < 0.5, f"GET /health took {dt:.3f}s during a load"
            statuses.append(r.json()["model_status"])
            time.sleep(0.01)
    t.join()
    body = assert_json_reply(result["r"], 200)
    assert body["status"] == "loaded"
    assert "loading" in statuses, f"never saw model_status loading: {set(statuses)}"
    assert d.health()["model_status"] == "loaded"
    assert d.memory()["model"]["loads"] == 1


def test_memory_answers_quickly_during_first_load(inferd):
    """/memory (and /health sent meanwhile) must not wait for the load,
    including the runtime's dlopen (an idle /memory takes ~1 ms)."""
    d = inferd(env={"MODEL_PATH": model("mlp80.pt"), "MODEL_MMAP": "false",
                    **T1})
    t, result = _load_in_thread(d)
    slow = []
    with requests.Session() as s1, requests.Session() as s2:
        while t.is_alive():
            res = {}

            def mem():
                t0 = time.monotonic()
                s2.get(d.url + "/memory", timeout=10)
                res["memory"] = time.monotonic() - t0

            tm = threading.Thread(target=mem)
            tm.start()
            time.sleep(0.02)
            t0 = time.monotonic()
            s1.get(d.url + "/health", timeout=10)
            res["health"] = time.monotonic() - t0
            tm.join()
            slow += [(k, round(v, 3)) for k, v in res.items() if v > 0.25]
    t.join()
    assert result["r"].status_code == 200, result["r"].text
    assert not slow, f"requests stalled during the load: {slow}"


# ------------------------------------------------------------ unload memory

def _weights_kb(name):
    return manifest()[name]["weights_bytes"] / 1024


@memory_figures
def test_unload_frees_weights_no_mmap(inferd):
    name = "big50.pt"
    d = inferd(env={"MODEL_PATH": model(name), "MODEL_MMAP": "false", **T1})
    body, ref = request_and_reference(name, seed=3)
    assert d.post("/model/load").status_code == 200
    check_outputs(name, assert_json_reply(post_predict(d, body), 200), ref)
    m = d.memory()["model"]
    assert m["weights_mb"] == pytest.approx(
        manifest()[name]["weights_bytes"] / 2**20, rel=0.02)
    rss_loaded = d.rss_kb()
    u = assert_json_reply(d.post("/model/unload"), 200)
    assert u["status"] == "unloaded"
    rss_unloaded = d.rss_kb()
    freed = rss_loaded - rss_unloaded
    assert freed >= 0.8 * _weights_kb(name), \
        f"RSS fell by {freed:.0f} kB, weights are {_weights_kb(name):.0f} kB"
    assert u["freed_mb"] * 1024 >= 0.7 * _weights_kb(name), u

    # predicting after the unload reloads and gives the same answer
    check_outputs(name, assert_json_reply(post_predict(d, body), 200), ref)
    assert d.post("/model/unload").json()["status"] == "unloaded"

    # 20 more cycles do not grow RSS
    base = d.rss_kb()
    for i in range(20):
        assert d.post("/model/load").json()["status"] == "loaded", i
        assert d.post("/model/unload").json()["status"] == "unloaded", i
    growth = d.rss_kb() - base
    assert growth < 10 * 1024, f"RSS grew {growth} kB over 20 load/unload cycles"
    m = d.memory()["model"]
    assert m["loads"] == 22 and m["unloads"] == 22


@memory_figures
def test_mmap_weights_are_file_backed(inferd):
    name = "big50.pt"
    d = inferd(env={"MODEL_PATH": model(name), **T1})   # MODEL_MMAP default
    body, ref = request_and_reference(name, seed=4)
    assert d.post("/model/load").status_code == 200
    check_outputs(name, assert_json_reply(post_predict(d, body), 200), ref)
    m = d.memory()["model"]
    assert m["mmap"] is True
    wmb = manifest()[name]["weights_bytes"] / 2**20
    assert m["weights_mapped_mb"] >= 0.9 * wmb, m
    assert m["weights_copied_mb"] <= 0.1 * wmb, m
    st_loaded = d.status()
    assert d.post("/model/unload").json()["status"] == "unloaded"
    st_unloaded = d.status()
    anon_delta = st_loaded["RssAnon"] - st_unloaded["RssAnon"]
    assert anon_delta < 0.2 * _weights_kb(name), \
        f"model costs {anon_delta} kB of anonymous memory with MODEL_MMAP on"
    file_delta = st_loaded["RssFile"] - st_unloaded["RssFile"]
    assert file_delta >= 0.8 * _weights_kb(name), \
        f"RssFile fell by only {file_delta} kB on unload"
    check_outputs(name, assert_json_reply(post_predict(d, body), 200), ref)


def test_idle_unload(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"),
                    "MODEL_IDLE_UNLOAD_SECONDS": "1", **T1})
    assert d.predict([[1.0, 2.0, 3.0, 4.0]]).status_code == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and d.health()["model_loaded"]:
        time.sleep(0.1)
    m = d.memory()["model"]
    assert m["status"] == "not_loaded" and m["unloads"] == 1, m
    assert d.predict([[1.0, 2.0, 3.0, 4.0]]).status_code == 200


@memory_figures
def test_unload_on_pressure(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), "MEMORY_LIMIT_MB": "100",
                    "MEMORY_GUARD": "false", "UNLOAD_ON_PRESSURE": "true",
                    **T1})
    assert d.post("/model/load").json()["status"] == "loaded"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and d.health()["model_loaded"]:
        time.sleep(0.1)
    m = d.memory()
    assert m["model"]["status"] == "not_loaded", m
    assert m["model"]["unloads"] >= 1


# ------------------------------------------------------------ stress

def test_stress_predict_while_load_unload(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), **T1})
    spec = manifest()["mlp.pt"]["inputs"][0]
    xs = [make_input(spec, 900 + i) for i in range(4)]
    refs = [f32(reference(model("mlp.pt"), [x], 1)) for x in xs]
    stop = time.monotonic() + 10
    errors, counts = [], {"ok": 0, "other": 0, "cycles": 0}
    lock = threading.Lock()

    def client(i):
        with requests.Session() as s:
            while time.monotonic() < stop and not errors:
                try:
                    r = s.post(d.url + "/predict", json={"inputs": xs[i]},
                               timeout=30)
                except requests.RequestException as e:
                    errors.append(f"client {i}: {e!r}")
                    return
                if r.status_code >= 500:
                    errors.append(f"client {i}: {r.status_code} {r.text}")
                    return
                if r.status_code == 200:
                    if not torch.equal(f32(r.json()["outputs"]), refs[i]):
                        errors.append(f"client {i}: wrong outputs {r.text}")
                        return
                    with lock:
                        counts["ok"] += 1
                else:
                    with lock:
                        counts["other"] += 1
                    errors.append(f"client {i}: {r.status_code} {r.text}")

    def cycler():
        with requests.Session() as s:
            while time.monotonic() < stop and not errors:
                for path in ("/model/load", "/model/unload"):
                    r = s.post(d.url + path, headers=d.auth_headers(path),
                               timeout=60)
                    if r.status_code != 200:
                        errors.append(f"{path}: {r.status_code} {r.text}")
                        return
                counts["cycles"] += 1

    ts = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    ts.append(threading.Thread(target=cycler))
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:5]
    assert d.alive(), d.stderr_text()[-2000:]
    assert counts["ok"] >= 40, counts
    assert counts["cycles"] >= 3, counts
    assert d.health()["status"] == "ok"


# ------------------------------------------------------------ queue limit

def test_queue_full_503_retry_after(inferd):
    d = inferd(env={"MODEL_PATH": model("slow.pt"), "QUEUE_CAPACITY": "1",
                    "INFERENCE_WORKERS": "1", **T1})
    assert d.post("/model/load").status_code == 200
    x = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
    n = 6
    results = [None] * n
    barrier = threading.Barrier(n)

    def worker(i):
        with requests.Session() as s:
            barrier.wait()
            results[i] = s.post(d.url + "/predict", json={"inputs": x},
                                timeout=60)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    codes = sorted(r.status_code for r in results)
    busy = [r for r in results if r.status_code == 503]
    ok = [r for r in results if r.status_code == 200]
    assert busy, f"no 503 with QUEUE_CAPACITY=1: {codes}"
    assert len(busy) + len(ok) == n, codes
    assert len(ok) >= 1, codes
    for r in busy:
        assert_json_reply(r, 503)
        assert r.headers.get("Retry-After"), r.headers
        assert int(r.headers["Retry-After"]) >= 1
    for r in ok:
        assert_f32_equal(r.json()["outputs"], x)
    assert d.health()["status"] == "ok"


# ------------------------------------------------------------ shutdown

def test_sigterm_with_request_in_flight(inferd):
    d = inferd(env={"MODEL_PATH": model("slow.pt"), **T1})
    assert d.post("/model/load").status_code == 200
    x = [[1.0, 2.0, 3.0, 4.0]]
    result = {}

    def call():
        try:
            result["r"] = requests.post(d.url + "/predict", json={"inputs": x},
                                        timeout=30)
        except requests.RequestException as e:
            result["e"] = e

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.5)  # the forward (~1.7 s) is under way
    t0 = time.monotonic()
    rc = d.stop(timeout=30)
    dt = time.monotonic() - t0
    t.join()
    assert "e" not in result, f"in-flight request failed: {result.get('e')!r}"
    out = assert_json_reply(result["r"], 200)
    assert_f32_equal(out["outputs"], x)
    assert rc == 0, d.stderr_text()[-3000:]
    assert dt < 10, f"exit took {dt:.1f}s"


def test_sigterm_after_model_use_exits_0(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), **T1})
    assert d.predict([[1.0, 2.0, 3.0, 4.0]]).status_code == 200
    t0 = time.monotonic()
    rc = d.stop(timeout=15)
    assert rc == 0, d.stderr_text()[-3000:]
    assert time.monotonic() - t0 < 3


def test_shutdown_timeout_abandons_long_forward(inferd):
    d = inferd(env={"MODEL_PATH": model("slow.pt"),
                    "SHUTDOWN_TIMEOUT_SECONDS": "0", **T1})
    assert d.post("/model/load").status_code == 200
    def call():
        try:
            requests.post(d.url + "/predict",
                          json={"inputs": [[1.0, 2, 3, 4]]}, timeout=30)
        except requests.RequestException:
            pass  # abandoned: the process exits under it

    t = threading.Thread(target=call)
    t.daemon = True
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    rc = d.stop(timeout=15)
    dt = time.monotonic() - t0
    assert rc == 0, d.stderr_text()[-3000:]
    assert dt < 1.5, f"SHUTDOWN_TIMEOUT_SECONDS=0 but exit took {dt:.2f}s"
