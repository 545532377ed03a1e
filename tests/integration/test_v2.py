"""The Open Inference Protocol (KServe v2) REST API: server and model
metadata, health, inference with JSON and binary tensors, and the model
repository extension.

Every v2 response body is validated against its schema in
open_inference_rest.yaml (tests/integration/specs/, a copy of the public
Apache-2.0 spec; ../shared/specs/ beside the repository is used when the copy
is missing). Outputs must equal python3-torch's, computed by
tests/fixtures/reference.py with one thread: float32 exact.
"""

import array
import copy
import json
import signal
import struct
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import (INFERD_ASAN_BIN, INFERD_BIN, ROOT, Daemon,
                      assert_json_reply, base_env, free_port, model,
                      sanitizer_report)
from reference import reference

HERE = Path(__file__).resolve().parent
SPEC_PATHS = [HERE / "specs" / "open_inference_rest.yaml",
              ROOT.parent / "shared" / "specs" / "open_inference_rest.yaml"]
HDR = "Inference-Header-Content-Length"
X = [[1.0, 2.0, 3.0, 4.0], [-0.5, 0.25, 8.0, -3.0]]


# --------------------------------------------------------------- schemas

def _load_spec():
    for p in SPEC_PATHS:
        if p.exists():
            with open(p) as f:
                return yaml.safe_load(f)
    return None


SPEC = _load_spec()


def validate(body, name, binary=False):
    """body must match components/schemas/<name>. binary: outputs sent as
    binary data carry parameters.binary_data_size instead of "data", as the
    binary tensor data extension says; only that requirement is dropped."""
    if SPEC is None:
        print("skipping schema check: open_inference_rest.yaml not found in "
              + ", ".join(map(str, SPEC_PATHS)))
        pytest.skip("open_inference_rest.yaml not found")
    doc = copy.deepcopy(SPEC)
    if binary:
        req = doc["components"]["schemas"]["response_output"]["required"]
        req.remove("data")
    schema = {"$ref": f"#/components/schemas/{name}",
              "components": doc["components"]}
    jsonschema.validate(body, schema)
    return body


def ok(r, name, status=200):
    return validate(assert_json_reply(r, status), name)


def err(r, status, name="inference_error_response", contains=None):
    body = validate(assert_json_reply(r, status), name)
    assert body["error"], body
    if contains:
        assert contains in body["error"], body["error"]
    return body


# --------------------------------------------------------------- daemons

@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Daemons shared by this module's tests, one per (model, asan), started
    on first use: starting libtorch per test would dominate the run time."""
    tmp = tmp_path_factory.mktemp("v2")
    started = {}

    def get(name, asan=False):
        key = (name, asan)
        if key not in started:
            binary = INFERD_ASAN_BIN if asan and INFERD_ASAN_BIN else INFERD_BIN
            env = base_env({"PORT": free_port(), "HOST": "127.0.0.1",
                            "MODEL_PATH": model(name),
                            "ENVIRONMENT": "development",
                            "TORCH_NUM_THREADS": "1"})
            d = Daemon(binary, env, [], tmp, sanitized=binary == INFERD_ASAN_BIN)
            started[key] = d
            d.wait_healthy()
        return started[key]

    yield get
    problems = []
    for d in started.values():
        rc = d.stop(signal.SIGTERM)
        text = d.stderr_text()
        if rc != 0:
            problems.append(f"pid {d.pid} exited {rc}:\n{text[-3000:]}")
        if sanitizer_report(text):
            problems.append(f"pid {d.pid} sanitizer report:\n{text[-6000:]}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def ref(name, inputs, dtypes=None):
    return reference(model(name), inputs, num_threads=1, dtypes=dtypes)


def flat(v):
    if isinstance(v, list):
        return [x for e in v for x in flat(e)]
    return [v]


def f32_bits(values):
    """float32 bytes of values: the JSON text of a float32 is its shortest
    decimal, which reads back as a double that differs from torch's
    float32-as-double; compared as float32 they must be bit-identical."""
    return array.array("f", flat(values)).tobytes()


def assert_f32(got, want):
    assert f32_bits(got) == f32_bits(want), (got, flat(want))


def shape_of(v):
    return [len(v)] + shape_of(v[0]) if isinstance(v, list) else []


def infer(d, body, name=None, path=None, **kw):
    return d.post(path or f"/v2/models/{name}/infer", body, **kw)


def tensor(name, data, datatype="FP32", shape=None, flatten=True):
    return {"name": name, "datatype": datatype,
            "shape": shape if shape is not None else shape_of(data),
            "data": flat(data) if flatten else data}


def binary_request(json_body, blobs):
    head = json.dumps(json_body).encode()
    return head + b"".join(blobs), {"Content-Type": "application/octet-stream",
                                   HDR: str(len(head))}


def split_binary(r):
    """(JSON header, bytes after it) of a binary-extension reply."""
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/octet-stream"
    n = int(r.headers[HDR])
    return json.loads(r.content[:n]), r.content[n:]


# --------------------------------------------------- server and health

def test_server_metadata(servers):
    d = servers("mlp.pt", asan=True)
    body = ok(d.get("/v2"), "metadata_server_response")
    assert body["name"] == "inferd"
    assert body["version"] == d.health()["version"]
    assert set(body["extensions"]) == {"model_repository", "binary_tensor_data"}


def test_health_live_and_ready(servers):
    d = servers("mlp.pt", asan=True)
    assert assert_json_reply(d.get("/v2/health/live"), 200) == {"live": True}
    # A lazy model that is not loaded yet is ready: it loads on first use.
    assert d.health()["model_loaded"] is False
    assert assert_json_reply(d.get("/v2/health/ready"), 200) == {"ready": True}
    for p in ("/v2/models/mlp/ready", "/v2/models/mlp/versions/1/ready"):
        assert assert_json_reply(d.get(p), 200) == {"name": "mlp", "ready": True}


def test_not_ready_when_model_file_missing(inferd, tmp_path):
    d = inferd(env={"MODEL_PATH": str(tmp_path / "gone.pt"),
                    "ENVIRONMENT": "development"}, asan=True)
    assert assert_json_reply(d.get("/v2/health/live"), 200) == {"live": True}
    body = assert_json_reply(d.get("/v2/health/ready"), 503)
    assert body["ready"] is False and "gone.pt" in body["error"]
    body = assert_json_reply(d.get("/v2/models/gone/ready"), 503)
    assert (body["name"], body["ready"]) == ("gone", False)
    assert "gone.pt" in body["error"]
    idx = assert_json_reply(d.post("/v2/repository/index", {}), 200)
    assert idx[0]["state"] == "UNAVAILABLE" and "gone.pt" in idx[0]["reason"]


def test_not_ready_without_model(inferd):
    d = inferd(env={"MODEL_PATH": "", "ENVIRONMENT": "development"}, asan=True)
    body = assert_json_reply(d.get("/v2/health/ready"), 503)
    assert body["ready"] is False and "MODEL_PATH" in body["error"]
    err(d.get("/v2/models/model"), 404, "metadata_model_error_response")
    assert assert_json_reply(d.post("/v2/repository/index", {}), 200) == []


def test_not_ready_after_failed_load(inferd):
    d = inferd(env={"MODEL_PATH": model("state_dict.pt"),
                    "ENVIRONMENT": "development"})
    r = d.post("/v2/repository/models/state_dict/load", {})
    assert r.status_code == 422, r.text
    assert_json_reply(d.get("/v2/models/state_dict/ready"), 503)
    assert_json_reply(d.get("/v2/health/ready"), 503)
    idx = assert_json_reply(d.post("/v2/repository/index", {}), 200)
    assert idx[0]["state"] == "UNAVAILABLE" and idx[0]["reason"]


# ------------------------------------------------------------ metadata

def test_model_metadata(servers):
    d = servers("mlp.pt")
    for p in ("/v2/models/mlp", "/v2/models/mlp/versions/1"):
        body = ok(d.get(p), "metadata_model_response")
        assert body == {
            "name": "mlp", "versions": ["1"], "platform": "pytorch_torchscript",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}],
            "outputs": [{"name": "output0", "datatype": "FP32", "shape": [-1]}]}


@pytest.mark.parametrize("name,inputs,outputs", [
    ("two_arg.pt", ["a", "b"], ["output0"]),
    ("tuple_out.pt", ["x"], ["output0", "output1"]),
    ("dict_out.pt", ["x"], []),   # keys are known only after a forward
    ("list_out.pt", ["x"], []),   # so is the length of a list
])
def test_model_metadata_names(servers, name, inputs, outputs):
    d = servers(name)
    body = ok(d.get(f"/v2/models/{Path(name).stem}"), "metadata_model_response")
    assert [t["name"] for t in body["inputs"]] == inputs
    assert [t["name"] for t in body["outputs"]] == outputs


def test_model_metadata_scalar_output(servers):
    d = servers("scalar_out.pt")
    body = ok(d.get("/v2/models/scalar_out"), "metadata_model_response")
    assert body["outputs"] == [{"name": "output0", "datatype": "FP64",
                                "shape": [1]}]


def test_unknown_model_and_version(servers):
    d = servers("mlp.pt", asan=True)
    for p in ("/v2/models/nope", "/v2/models/mlp/versions/2",
              "/v2/models/nope/ready", "/v2/models/mlp/versions/2/ready"):
        err(d.get(p), 404, "metadata_model_error_response")
    for p in ("/v2/models/nope/infer", "/v2/models/mlp/versions/2/infer"):
        err(d.post(p, {"inputs": [tensor("x", X)]}), 404)


# ------------------------------------------------------------ inference

@pytest.mark.parametrize("flatten", [True, False], ids=["flat", "nested"])
def test_infer_matches_reference(servers, flatten):
    d = servers("mlp.pt")
    r = infer(d, {"inputs": [tensor("x", X, flatten=flatten)]}, "mlp")
    body = ok(r, "inference_response")
    want = ref("mlp.pt", [X])
    assert body["model_name"] == "mlp" and body["model_version"] == "1"
    assert "id" not in body
    (out,) = body["outputs"]
    assert out["name"] == "output0" and out["datatype"] == "FP32"
    assert out["shape"] == [2, 3]
    assert_f32(out["data"], flat(want))


def test_infer_versioned_path_and_id_echo(servers):
    d = servers("mlp.pt")
    r = infer(d, {"id": "req-42", "inputs": [tensor("x", X)]},
              path="/v2/models/mlp/versions/1/infer")
    body = ok(r, "inference_response")
    assert body["id"] == "req-42"
    assert_f32(body["outputs"][0]["data"], flat(ref("mlp.pt", [X])))


def test_two_inputs_by_name_and_by_position(servers):
    d = servers("two_arg.pt")
    a = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
    b = [[0.5, 0.5, 0.5, 0.5], [-1.0, 2.0, -3.0, 4.0]]
    want = flat(ref("two_arg.pt", [a, b]))
    # By name: the request's order does not matter.
    r = infer(d, {"inputs": [tensor("b", b), tensor("a", a)]}, "two_arg")
    assert_f32(ok(r, "inference_response")["outputs"][0]["data"], want)
    # Names that are not forward's: by position.
    r = infer(d, {"inputs": [tensor("INPUT0", a), tensor("INPUT1", b)]},
              "two_arg")
    assert_f32(ok(r, "inference_response")["outputs"][0]["data"], want)
    r = infer(d, {"inputs": [tensor("a", a)]}, "two_arg")
    err(r, 400, contains="takes 2 inputs")


def test_outputs_selection(servers):
    d = servers("tuple_out.pt")
    want = ref("tuple_out.pt", [X])
    body = ok(infer(d, {"inputs": [tensor("x", X)]}, "tuple_out"),
              "inference_response")
    assert [o["name"] for o in body["outputs"]] == ["output0", "output1"]
    assert [o["shape"] for o in body["outputs"]] == [[2, 3], [2]]
    assert_f32([o["data"] for o in body["outputs"]], [flat(w) for w in want])
    body = ok(infer(d, {"inputs": [tensor("x", X)],
                        "outputs": [{"name": "output1"}]}, "tuple_out"),
              "inference_response")
    assert [o["name"] for o in body["outputs"]] == ["output1"]
    assert_f32(body["outputs"][0]["data"], want[1])
    r = infer(d, {"inputs": [tensor("x", X)], "outputs": [{"name": "nope"}]},
              "tuple_out")
    err(r, 400, contains='unknown output "nope"')


def test_dict_outputs_by_key(servers):
    d = servers("dict_out.pt")
    want = ref("dict_out.pt", [X])
    body = ok(infer(d, {"inputs": [tensor("x", X)],
                        "outputs": [{"name": "probs"}, {"name": "logits"}]},
                    "dict_out"), "inference_response")
    assert [o["name"] for o in body["outputs"]] == ["probs", "logits"]
    assert_f32(body["outputs"][0]["data"], flat(want["probs"]))
    assert_f32(body["outputs"][1]["data"], flat(want["logits"]))


def test_scalar_output(servers):
    d = servers("scalar_out.pt")
    body = ok(infer(d, {"inputs": [tensor("x", X)]}, "scalar_out"),
              "inference_response")
    assert body["outputs"] == [{"name": "output0", "datatype": "FP64",
                                "shape": [1],
                                "data": [ref("scalar_out.pt", [X])]}]


def test_int64_input(servers):
    d = servers("embedding.pt")
    ids = [[1, 5, 99, 0, 7], [3, 3, 3, 3, 3]]
    body = ok(infer(d, {"inputs": [tensor("ids", ids, "INT64")]}, "embedding"),
              "inference_response")
    out = body["outputs"][0]
    assert out["shape"] == [2, 5, 8] and out["datatype"] == "FP32"
    assert_f32(out["data"], flat(ref("embedding.pt", [ids], dtypes=["int64"])))


@pytest.mark.parametrize("inp,contains", [
    (tensor("x", X, shape=[2, 3]), "has 8 elements but shape [2,3] needs 6"),
    (tensor("x", X, shape=[4, 2], flatten=False), "nested as [2,4]"),
    (tensor("x", X, shape=[2, 4, 1], flatten=False), "nested as [2,4]"),
    (tensor("x", [[1, 2.5, 3, 4]], "INT32"), "not an integer"),
    (tensor("x", [[1, 300, 3, 4]], "UINT8"), "not in range"),
    (tensor("x", [[True, "x", 1, 0]], "BOOL"), "is a string"),
    (tensor("x", X, "UINT32"), "UINT32\" is not supported"),
    (tensor("x", X, "BYTES"), "not supported"),
    (tensor("x", X, "FLOAT32"), "not supported"),
    (tensor("x", X, shape=[-1, 4]), "not a size"),
    ({"name": "x", "datatype": "FP32", "shape": [2, 4]}, "has no data"),
    ({"name": "x", "shape": [2, 4], "data": flat(X)}, "datatype"),
    ({"datatype": "FP32", "shape": [2, 4], "data": flat(X)}, "name"),
])
def test_bad_input_is_400(servers, inp, contains):
    d = servers("mlp.pt", asan=True)
    err(infer(d, {"inputs": [inp]}, "mlp"), 400, contains=contains)


@pytest.mark.parametrize("body,contains", [
    ({}, "inputs"),
    ({"inputs": []}, "inputs"),
    ({"inputs": {"x": [1]}}, "inputs"),
    ({"id": 42, "inputs": [tensor("x", X)]}, '"id" must be a string'),
    ({"inputs": [tensor("x", X), tensor("x", X)]}, "both named"),
    ({"inputs": [tensor("x", X)], "outputs": [{"name": "a"}, {"name": "a"}]},
     "twice"),
    ({"inputs": [tensor("x", X)], "parameters": {"binary_data_output": 1}},
     "true or false"),
    ([1, 2], "JSON object"),
])
def test_bad_request_is_400(servers, body, contains):
    d = servers("mlp.pt", asan=True)
    err(infer(d, body, "mlp"), 400, contains=contains)


def test_malformed_json_and_content_type(servers):
    d = servers("mlp.pt", asan=True)
    h = {"Content-Type": "application/json"}
    err(d.post("/v2/models/mlp/infer", data='{"inputs": [', headers=h), 400,
        contains="malformed JSON")
    err(d.post("/v2/models/mlp/infer", data="{} x", headers=h), 400,
        contains="malformed JSON")
    r = d.post("/v2/models/mlp/infer", data="{}",
               headers={"Content-Type": "image/png"})
    assert_json_reply(r, 415)


def test_model_rejects_input_is_400(servers):
    d = servers("mlp.pt")
    bad = [[1.0, 2.0, 3.0]]
    err(infer(d, {"inputs": [tensor("x", bad)]}, "mlp"), 400,
        contains="the model rejected the input")


# ------------------------------------------------------ binary tensors

def f32(values):
    return array.array("f", values).tobytes()


def test_binary_in_binary_out(servers):
    d = servers("mlp.pt")
    blob = f32(flat(X))
    body, headers = binary_request({
        "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                    "parameters": {"binary_data_size": len(blob)}}],
        "outputs": [{"name": "output0", "parameters": {"binary_data": True}}],
    }, [blob])
    r = d.post("/v2/models/mlp/infer", data=body, headers=headers)
    head, rest = split_binary(r)
    validate(head, "inference_response", binary=True)
    (out,) = head["outputs"]
    assert out["shape"] == [2, 3] and out["datatype"] == "FP32"
    assert "data" not in out
    assert out["parameters"]["binary_data_size"] == len(rest) == 24
    assert array.array("f", rest).tolist() == flat(ref("mlp.pt", [X]))


def test_binary_in_json_out_and_binary_data_output(servers):
    d = servers("two_arg.pt")
    a = [[1.0, 2.0, 3.0, 4.0]]
    b = [[4.0, 3.0, 2.0, 1.0]]
    want = flat(ref("two_arg.pt", [a, b]))
    # a as binary, b as JSON: binary tensors are taken in input order.
    req = {"inputs": [{"name": "a", "shape": [1, 4], "datatype": "FP32",
                       "parameters": {"binary_data_size": 16}},
                      tensor("b", b)]}
    body, headers = binary_request(req, [f32(flat(a))])
    r = d.post("/v2/models/two_arg/infer", data=body, headers=headers)
    assert_f32(ok(r, "inference_response")["outputs"][0]["data"], want)
    req["parameters"] = {"binary_data_output": True}
    body, headers = binary_request(req, [f32(flat(a))])
    head, rest = split_binary(d.post("/v2/models/two_arg/infer", data=body,
                                     headers=headers))
    validate(head, "inference_response", binary=True)
    assert array.array("f", rest).tolist() == want
    # binary_data: false on an output overrides binary_data_output.
    req["outputs"] = [{"name": "output0", "parameters": {"binary_data": False}}]
    body, headers = binary_request(req, [f32(flat(a))])
    r = d.post("/v2/models/two_arg/infer", data=body, headers=headers)
    assert_f32(ok(r, "inference_response")["outputs"][0]["data"], want)


def test_binary_int64_and_bool_sizes(servers):
    d = servers("embedding.pt")
    ids = [2, 4, 6, 8, 10]
    blob = struct.pack("<5q", *ids)
    body, headers = binary_request({
        "inputs": [{"name": "ids", "shape": [1, 5], "datatype": "INT64",
                    "parameters": {"binary_data_size": 40}}]}, [blob])
    r = d.post("/v2/models/embedding/infer", data=body, headers=headers)
    out = ok(r, "inference_response")["outputs"][0]
    assert_f32(out["data"], flat(ref("embedding.pt", [[ids]], dtypes=["int64"])))


@pytest.mark.parametrize("sent,declared,contains", [
    (28, 28, "has 28 bytes but shape [2,4] of float32 needs 32"),
    (36, 32, "36 bytes follow the JSON header, but the inputs' "
             "binary_data_size add up to 32"),
    (32, 64, "only 32 bytes of binary data are left"),
])
def test_binary_size_errors(servers, sent, declared, contains):
    d = servers("mlp.pt", asan=True)
    blob = (f32(flat(X)) + b"\0" * 8)[:sent]
    body, headers = binary_request({
        "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                    "parameters": {"binary_data_size": declared}}]}, [blob])
    r = d.post("/v2/models/mlp/infer", data=body, headers=headers)
    err(r, 400, contains=contains)


def test_binary_header_errors(servers):
    d = servers("mlp.pt", asan=True)
    body = json.dumps({"inputs": [tensor("x", X)]}).encode()
    octet = {"Content-Type": "application/octet-stream"}
    err(d.post("/v2/models/mlp/infer", data=body, headers=octet), 400,
        contains=HDR)
    err(d.post("/v2/models/mlp/infer", data=body,
               headers={**octet, HDR: str(len(body) + 1)}), 400, contains=HDR)
    err(d.post("/v2/models/mlp/infer", data=body,
               headers={**octet, HDR: "12abc"}), 400, contains=HDR)
    err(d.post("/v2/models/mlp/infer", data=f32(flat(X)),
               headers={**octet, HDR: "0"}), 400, contains="raw binary")
    # The header is also honoured with a JSON content type.
    r = d.post("/v2/models/mlp/infer", data=body + b"  ",
               headers={"Content-Type": "application/json",
                        HDR: str(len(body))})
    err(r, 400, contains="2 bytes follow")


# ----------------------------------------------------------- repository

def index(d, body=None):
    r = d.post("/v2/repository/index", body if body is not None else {})
    entries = assert_json_reply(r, 200)
    assert isinstance(entries, list)
    for e in entries:
        assert set(e) == {"name", "version", "state", "reason"}, e
        assert all(isinstance(v, str) for v in e.values()), e
    return entries


def test_repository_index_load_unload(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), "ENVIRONMENT": "development",
                    "TORCH_NUM_THREADS": "1"})
    (e,) = index(d)
    assert (e["name"], e["version"], e["state"]) == ("mlp", "1", "UNAVAILABLE")
    assert index(d, {"ready": True}) == []
    err(d.post("/v2/repository/index", {"ready": "yes"}), 400)

    r = d.post("/v2/repository/models/mlp/load", {})
    assert assert_json_reply(r, 200) == {}
    assert d.health()["model_loaded"] is True
    (e,) = index(d, {"ready": True})
    assert (e["state"], e["reason"]) == ("READY", "")
    # Loading again reloads, per the text; the model stays ready.
    loads = d.memory()["model"]["loads"]
    assert assert_json_reply(d.post("/v2/repository/models/mlp/load"), 200) == {}
    assert d.memory()["model"]["loads"] == loads + 1
    assert index(d)[0]["state"] == "READY"
    body = ok(infer(d, {"inputs": [tensor("x", X)]}, "mlp"),
              "inference_response")
    assert_f32(body["outputs"][0]["data"], flat(ref("mlp.pt", [X])))

    r = d.post("/v2/repository/models/mlp/unload", {})
    assert assert_json_reply(r, 200) == {}
    assert d.health()["model_loaded"] is False
    assert index(d)[0]["state"] == "UNAVAILABLE"
    # Shared with /model/load and /model/unload.
    assert d.post("/model/load").status_code == 200
    assert index(d)[0]["state"] == "READY"
    assert d.post("/v2/repository/models/mlp/unload").status_code == 200
    assert d.post("/model/unload").json()["status"] == "not_loaded"

    for p in ("load", "unload"):
        err(d.post(f"/v2/repository/models/nope/{p}", {}), 404)
    err(d.post("/v2/repository/models/mlp/load",
               {"parameters": {"config": "{}"}}), 400, contains="config")
    err(d.post("/v2/repository/models/mlp/load", data="{",
               headers={"Content-Type": "application/json"}), 400)


def test_metadata_loads_lazily(inferd):
    d = inferd(env={"MODEL_PATH": model("two_arg.pt"),
                    "ENVIRONMENT": "development"})
    assert d.health()["model_loaded"] is False
    body = ok(d.get("/v2/models/two_arg"), "metadata_model_response")
    assert [t["name"] for t in body["inputs"]] == ["a", "b"]
    assert d.health()["model_loaded"] is True


def test_metadata_of_missing_file_is_an_error(inferd, tmp_path):
    d = inferd(env={"MODEL_PATH": str(tmp_path / "gone.pt"),
                    "ENVIRONMENT": "development"}, asan=True)
    err(d.get("/v2/models/gone"), 404, "metadata_model_error_response",
        contains="gone.pt")
    err(infer(d, {"inputs": [tensor("x", X)]}, "gone"), 404, contains="gone.pt")
