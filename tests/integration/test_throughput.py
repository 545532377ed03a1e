"""Dynamic batching and the binary /predict path, on the real binary.

Batching must be invisible to clients: each gets exactly what it would have
got alone, requests whose shapes differ beyond dim 0 (or whose dtypes
differ) are never stacked together, and a batch that cannot be split falls
back to one forward per request. The binary path (application/octet-stream
with X-Shape / X-Dtype) must give the same numbers as JSON.
"""
import struct
import threading

import requests
import torch

from conftest import assert_json_reply, model
from reference import reference

T1 = {"TORCH_NUM_THREADS": "1"}
# A long timeout so that concurrent requests really do meet in one batch.
BATCHING = {"MAX_BATCH_SIZE": "8", "BATCH_TIMEOUT_US": "300000", **T1}


def bits(x):
    return torch.tensor(x, dtype=torch.float32).view(torch.int32).tolist()


def fire(d, bodies):
    """Post every body at once; return the replies in order."""
    out = [None] * len(bodies)
    barrier = threading.Barrier(len(bodies))

    def one(i):
        barrier.wait()
        out[i] = d.post("/predict", bodies[i], timeout=60)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def test_batched_answers_equal_unbatched(inferd):
    g = torch.Generator().manual_seed(7)
    # Rows 1..3 of [N,4] share a batch key; [4] and [1,2,4] have other ranks
    # and must be run apart (the MLP accepts all three).
    inputs = [torch.randn([1 + i % 3, 4], generator=g).tolist()
              for i in range(12)]
    inputs += [torch.randn([4], generator=g).tolist() for _ in range(2)]
    inputs += [torch.randn([1, 2, 4], generator=g).tolist() for _ in range(2)]
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), **BATCHING})
    d.post("/model/load", {})
    replies = fire(d, [{"inputs": x} for x in inputs])
    batched = 0
    for x, r in zip(inputs, replies):
        body = assert_json_reply(r, 200)
        want = reference(model("mlp.pt"), [x], num_threads=1,
                         dtypes=["float32"])
        assert body["shape"] == list(torch.tensor(want).shape)
        assert bits(body["outputs"]) == bits(want), (x, body)
        batched += body.get("batch_size", 1) > 1
    assert batched >= 2, "no request was batched: the test proves nothing"
    m = requests.get(d.url + "/metrics", timeout=5).text
    assert "inferd_batch_size_count" in m


def test_mixed_dtypes_never_batched_together(inferd):
    # float64 rows are refused by the float32 model; stacked with float32
    # rows they would poison the batch. Each must get its own answer.
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), **BATCHING})
    d.post("/model/load", {})
    x = [[0.5, -1.0, 2.0, 0.25]]
    bodies = [{"inputs": x}, {"inputs": x, "dtype": "float64"}] * 3
    replies = fire(d, bodies)
    want = reference(model("mlp.pt"), [x], num_threads=1, dtypes=["float32"])
    for b, r in zip(bodies, replies):
        if b.get("dtype") == "float64":
            msg = assert_json_reply(r, 400)["error"]
            assert "rejected" in msg, msg
        else:
            assert bits(assert_json_reply(r, 200)["outputs"]) == bits(want)


def test_unsplittable_outputs_fall_back_to_single_forwards(inferd):
    # scalar_out returns one float for the whole input: a batch cannot be
    # split by rows, so each request must be answered from its own forward.
    d = inferd(env={"MODEL_PATH": model("scalar_out.pt"), **BATCHING})
    d.post("/model/load", {})
    g = torch.Generator().manual_seed(3)
    inputs = [torch.randn([1, 4], generator=g).tolist() for _ in range(6)]
    replies = fire(d, [{"inputs": x} for x in inputs])
    for x, r in zip(inputs, replies):
        want = reference(model("scalar_out.pt"), [x], num_threads=1,
                         dtypes=["float32"])
        got = assert_json_reply(r, 200)["outputs"]
        assert isinstance(got, float)
        assert struct.pack("<d", got) == struct.pack("<d", want) or \
            abs(got - want) <= 1e-6 * max(1.0, abs(want)), (got, want)


def test_binary_path_round_trip(inferd):
    d = inferd(env={"MODEL_PATH": model("mlp.pt"), **T1})
    x = torch.randn([3, 4], generator=torch.Generator().manual_seed(11))
    want = reference(model("mlp.pt"), [x.tolist()], num_threads=1,
                     dtypes=["float32"])
    raw = x.numpy().astype("<f4").tobytes()
    hdr = {"Content-Type": "application/octet-stream", "X-Shape": "3,4",
           "X-Dtype": "float32"}
    # Raw in, JSON out.
    r = requests.post(d.url + "/predict", data=raw, headers=hdr, timeout=30)
    assert bits(assert_json_reply(r, 200)["outputs"]) == bits(want)
    # Raw in, raw out: shape and dtype in the reply's headers.
    r = requests.post(d.url + "/predict", data=raw, timeout=30,
                      headers={**hdr, "Accept": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["X-Shape"] == "3,3"
    assert r.headers["X-Dtype"] == "float32"
    got = torch.frombuffer(bytearray(r.content), dtype=torch.float32)
    assert bits(got.view(3, 3).tolist()) == bits(want)
    # A body whose size does not match shape x dtype: 400 naming both.
    r = requests.post(d.url + "/predict", data=raw[:-1], headers=hdr,
                      timeout=30)
    msg = assert_json_reply(r, 400)["error"]
    assert "47 bytes" in msg and "48" in msg, msg


def test_binary_int64_input(inferd):
    d = inferd(env={"MODEL_PATH": model("embedding.pt"), **T1})
    ids = [[1, 5, 99], [0, 42, 7]]
    raw = struct.pack("<6q", *[i for row in ids for i in row])
    r = requests.post(d.url + "/predict", data=raw, timeout=30, headers={
        "Content-Type": "application/octet-stream", "X-Shape": "2,3",
        "X-Dtype": "int64"})
    want = reference(model("embedding.pt"), [ids], num_threads=1,
                     dtypes=["int64"])
    assert bits(assert_json_reply(r, 200)["outputs"]) == bits(want)
