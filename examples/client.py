#!/usr/bin/env python3
"""A client for inferd using only `requests`.

    python3 examples/client.py [BASE_URL]

Classifies two iris flowers with the bundled demo model, once through
/predict and once through the Open Inference Protocol (/v2/.../infer).
Set API_KEY in the environment when the server requires it.
"""
import os
import sys

import requests

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://localhost:8000"
CLASSES = ["setosa", "versicolor", "virginica"]
HEADERS = {"Authorization": "Bearer " + os.environ["API_KEY"]} if os.environ.get("API_KEY") else {}


def predict(rows):
    r = requests.post(f"{BASE}/predict", json={"inputs": rows}, headers=HEADERS, timeout=30)
    if r.status_code != 200:
        raise RuntimeError(f"{r.status_code}: {r.json()['error']}")
    return r.json()["outputs"]


def infer_v2(model, rows):
    body = {"id": "example", "inputs": [{"name": "x", "shape": [len(rows), 4],
                                         "datatype": "FP32", "data": rows}]}
    r = requests.post(f"{BASE}/v2/models/{model}/infer", json=body, headers=HEADERS, timeout=30)
    if r.status_code != 200:
        raise RuntimeError(f"{r.status_code}: {r.json()['error']}")
    out = r.json()["outputs"][0]
    n, k = out["shape"]
    return [out["data"][i * k:(i + 1) * k] for i in range(n)]


if __name__ == "__main__":
    flowers = [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]
    print("health:", requests.get(f"{BASE}/health", timeout=5).json())
    for row, probs in zip(flowers, predict(flowers)):
        best = max(range(3), key=lambda i: probs[i])
        print(f"/predict {row} -> {CLASSES[best]} ({probs[best]:.3f})")
    for row, probs in zip(flowers, infer_v2("demo", flowers)):
        best = max(range(3), key=lambda i: probs[i])
        print(f"/v2      {row} -> {CLASSES[best]} ({probs[best]:.3f})")
    mem = requests.get(f"{BASE}/memory", timeout=5).json()["memory"]
    print(f"server RSS {mem['rss_mb']} MB of {mem['limit_mb']} MB ({mem['level']})")
