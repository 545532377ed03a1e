"""Deployment files: render.yaml, deploy/kubernetes/*.yaml, the Dockerfile and
the examples. Every YAML is parsed (multi-document) and checked for what
matters to a deploy: plan and memory limit, health paths and ports, and that
each environment variable it sets is a setting inferd knows (the first column
of `inferd --help`, which prints the configuration table). The examples are
checked for syntax and examples/client.py is run against a live daemon.
"""

import os
import py_compile
import re
import shutil
import subprocess
import json
from pathlib import Path

import pytest
import yaml

from conftest import INFERD_BIN, ROOT, run_inferd

RENDER = ROOT / "render.yaml"
K8S_DIR = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
DEMO_MODEL = ROOT / "models" / "demo.pt"
PYTHON = "/usr/bin/python3"  # has requests


# ------------------------------------------------------------ helpers

@pytest.fixture(scope="module")
def settings():
    """The env var names of the configuration table, from --help."""
    p = run_inferd(["--help"], asan=False)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    start = [i for i, l in enumerate(lines) if l.split()[:2] == ["ENV", "FLAG"]]
    assert start, p.stdout
    names = set()
    for line in lines[start[0] + 1:]:
        if not line.strip():
            continue
        name = line.split()[0]
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name), line
        names.add(name)
    # sanity: the table is the one the README documents
    assert {"PORT", "HOST", "MODEL_PATH", "ENVIRONMENT", "LAZY_LOADING",
            "ADMIN_TOKEN", "API_KEY", "MEMORY_LIMIT_MB"} <= names, names
    return names


def load_all(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    assert docs, f"{path} holds no YAML document"
    return docs


def k8s_docs():
    docs = []
    for p in sorted(K8S_DIR.glob("*.yaml")) + sorted(K8S_DIR.glob("*.yml")):
        for d in load_all(p):
            assert isinstance(d, dict) and "kind" in d and "apiVersion" in d, \
                (p, d)
            docs.append((p.name, d))
    return docs


def one(docs, kind):
    found = [d for _, d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} documents"
    return found[0]


def env_map(container):
    out = {}
    for e in container.get("env", []):
        assert "name" in e, e
        assert e["name"] not in out, f"env {e['name']} set twice"
        out[e["name"]] = e
    return out


def mem_bytes(q):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|K|M|G)?", str(q))
    assert m, q
    mult = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30,
            "K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9}[m.group(2)]
    return int(m.group(1)) * mult


def probe_port(container, port_ref):
    """A probe's port (number or name) as the container port number."""
    if isinstance(port_ref, int):
        return port_ref
    for p in container.get("ports", []):
        if p.get("name") == port_ref:
            return p["containerPort"]
    pytest.fail(f"probe port {port_ref!r} names no container port")


def dpkg_owners(basenames):
    """{file base name: {packages owning a file of that name}}, one dpkg
    call for all of them."""
    p = subprocess.run(["dpkg", "-S"] + [f"*/{b}" for b in basenames],
                       capture_output=True, text=True)
    out = {b: set() for b in basenames}
    for line in p.stdout.splitlines():
        pkgs, sep, path = line.rpartition(": ")
        if not sep:
            continue
        base = os.path.basename(path.strip())
        if base in out:
            out[base].update(x.strip().split(":")[0] for x in pkgs.split(","))
    return out


def dockerfile_instructions():
    """[(INSTRUCTION, args)] with continuation lines joined, comments out."""
    out, cur = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        cur += (" " if cur else "") + s
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        instr, _, args = cur.partition(" ")
        out.append((instr.upper(), args.strip()))
        cur = ""
    assert not cur, "Dockerfile ends inside a continued line"
    return out


# ------------------------------------------------------------ every YAML

def all_yaml_files():
    files = [RENDER] + sorted(K8S_DIR.glob("*.y*ml"))
    return [str(p.relative_to(ROOT)) for p in files]


@pytest.mark.parametrize("rel", all_yaml_files())
def test_yaml_parses(rel):
    docs = load_all(ROOT / rel)
    for d in docs:
        assert isinstance(d, dict), (rel, d)


# ------------------------------------------------------------ Render

def test_render_web_service(settings):
    doc = load_all(RENDER)
    assert len(doc) == 1
    services = doc[0]["services"]
    web = [s for s in services if s.get("type") == "web"]
    assert len(web) == 1, services
    s = web[0]
    assert s["runtime"] == "docker", s
    assert s["plan"] == "starter", s
    assert s["healthCheckPath"] == "/health", s
    if "dockerfilePath" in s:
        assert (ROOT / s["dockerfilePath"]).resolve() == DOCKERFILE.resolve()
    env = {}
    for e in s["envVars"]:
        assert e["key"] not in env, f"envVar {e['key']} twice"
        env[e["key"]] = e
    assert str(env["ENVIRONMENT"].get("value")) == "production", env
    assert str(env["LAZY_LOADING"].get("value")).lower() == "true", env
    assert env["ADMIN_TOKEN"].get("generateValue") is True, env
    assert "value" not in env["ADMIN_TOKEN"], "a secret committed in the file"
    assert "API_KEY" not in env or "value" not in env["API_KEY"]
    unknown = set(env) - settings
    assert not unknown, f"render.yaml sets unknown settings {unknown}"
    # every value is a string (Render rejects numbers/bools for value)
    for k, e in env.items():
        if "value" in e:
            assert isinstance(e["value"], str), (k, e["value"])
    if "MEMORY_LIMIT_MB" in env:
        assert int(env["MEMORY_LIMIT_MB"]["value"]) <= 512
    if "MODEL_PATH" in env:
        assert env["MODEL_PATH"]["value"] == docker_model_path()


def test_render_values_are_accepted_by_inferd(inferd):
    """The Blueprint's env, as a container would get it (model path moved
    to the repository's demo model), starts inferd and /health answers."""
    s = load_all(RENDER)[0]["services"][0]
    env = {e["key"]: e["value"] for e in s["envVars"] if "value" in e}
    env["MODEL_PATH"] = str(DEMO_MODEL)
    env["ADMIN_TOKEN"] = "render-generated-token-1"
    d = inferd(env=env)
    h = d.health()
    assert h["model_loaded"] is False  # lazy
    assert h["model"] == "demo"


# ------------------------------------------------------------ Kubernetes

def test_kubernetes_deployment(settings):
    docs = k8s_docs()
    dep = one(docs, "Deployment")
    assert dep["apiVersion"] == "apps/v1"
    tmpl = dep["spec"]["template"]
    sel = dep["spec"]["selector"]["matchLabels"]
    assert sel.items() <= tmpl["metadata"]["labels"].items()
    containers = tmpl["spec"]["containers"]
    assert len(containers) == 1
    c = containers[0]
    assert mem_bytes(c["resources"]["limits"]["memory"]) == 512 << 20, \
        c["resources"]
    assert c["resources"]["limits"]["memory"] == "512Mi"
    req = c["resources"].get("requests", {}).get("memory")
    if req:
        assert mem_bytes(req) <= 512 << 20
    ports = c["ports"]
    assert len(ports) == 1
    cport = ports[0]["containerPort"]
    env = env_map(c)
    assert int(env["PORT"]["value"]) == cport, (env["PORT"], cport)
    unknown = set(env) - settings
    assert not unknown, f"Deployment sets unknown settings {unknown}"
    for name, e in env.items():
        if "value" in e:
            assert isinstance(e["value"], str), (name, e)
    assert env["ENVIRONMENT"]["value"] == "production"
    # A secret comes from a Secret, never a literal.
    for secret in ("ADMIN_TOKEN", "API_KEY"):
        if secret in env:
            assert "value" not in env[secret], secret
            assert "secretKeyRef" in env[secret].get("valueFrom", {}), secret
    if "MODEL_PATH" in env:
        assert env["MODEL_PATH"]["value"] == docker_model_path()
    live, ready = c["livenessProbe"], c["readinessProbe"]
    assert live["httpGet"]["path"] == "/v2/health/live", live
    assert ready["httpGet"]["path"] == "/v2/health/ready", ready
    assert probe_port(c, live["httpGet"]["port"]) == cport
    assert probe_port(c, ready["httpGet"]["port"]) == cport
    # SIGTERM drain fits in the grace period.
    grace = tmpl["spec"].get("terminationGracePeriodSeconds", 30)
    drain = int(env.get("SHUTDOWN_TIMEOUT_SECONDS", {}).get("value", 25))
    assert drain < grace, (drain, grace)


def test_kubernetes_service_and_hpa():
    docs = k8s_docs()
    dep = one(docs, "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    cport = c["ports"][0]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    svc = one(docs, "Service")
    assert svc["spec"]["selector"].items() <= labels.items(), \
        (svc["spec"]["selector"], labels)
    targets = [p.get("targetPort", p["port"]) for p in svc["spec"]["ports"]]
    assert targets, svc
    for t in targets:
        assert t in (cport["containerPort"], cport.get("name")), \
            (t, cport)
    hpa = one(docs, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    assert ref["kind"] == "Deployment" and ref["name"] == \
        dep["metadata"]["name"], ref
    assert ref.get("apiVersion", "apps/v1") == "apps/v1"
    assert 1 <= hpa["spec"].get("minReplicas", 1) <= hpa["spec"]["maxReplicas"]


def test_kserve_serving_runtime_and_inference_service(settings):
    docs = k8s_docs()
    rt = one(docs, "ServingRuntime")
    isvc = one(docs, "InferenceService")
    assert rt["apiVersion"].startswith("serving.kserve.io/")
    assert isvc["apiVersion"].startswith("serving.kserve.io/")
    formats = [f["name"] for f in rt["spec"]["supportedModelFormats"]]
    assert "pytorch_torchscript" in formats, formats
    assert "v2" in rt["spec"]["protocolVersions"], rt["spec"]
    cs = rt["spec"]["containers"]
    assert len(cs) == 1
    c = cs[0]
    assert c["resources"]["limits"]["memory"] == "512Mi", c["resources"]
    env = env_map(c)
    unknown = set(env) - settings
    assert not unknown, f"ServingRuntime sets unknown settings {unknown}"
    cport = c["ports"][0]["containerPort"]
    assert int(env["PORT"]["value"]) == cport
    for probe, path in (("livenessProbe", "/v2/health/live"),
                        ("readinessProbe", "/v2/health/ready")):
        assert c[probe]["httpGet"]["path"] == path, c[probe]
        assert probe_port(c, c[probe]["httpGet"]["port"]) == cport
    pred = isvc["spec"]["predictor"]
    m = pred["model"]
    assert m["modelFormat"]["name"] == "pytorch_torchscript"
    assert m["runtime"] == rt["metadata"]["name"]
    assert m.get("protocolVersion", "v2") == "v2"
    assert mem_bytes(m["resources"]["limits"]["memory"]) == 512 << 20
    assert m["resources"]["limits"]["memory"] == "512Mi"


# ------------------------------------------------------------ Dockerfile

def docker_model_path():
    """Where the Dockerfile copies models/demo.pt."""
    for instr, args in dockerfile_instructions():
        if instr == "COPY" and "models/demo.pt" in args.split():
            return args.split()[-1]
    pytest.fail("the Dockerfile does not COPY models/demo.pt")


def test_dockerfile_stages_user_port_entrypoint(settings):
    ins = dockerfile_instructions()
    froms = [a for i, a in ins if i == "FROM"]
    assert len(froms) == 2, froms
    for f in froms:
        image = f.split()[0]
        assert re.fullmatch(r"debian:12(-slim)?(@sha256:[0-9a-f]+)?", image), f
    assert " AS " in froms[0].upper(), "the build stage is not named"
    stage = froms[0].split()[-1]
    # Everything after the last FROM is the runtime stage.
    last = max(k for k, (i, _) in enumerate(ins) if i == "FROM")
    runtime = ins[last:]
    users = [a for i, a in runtime if i == "USER"]
    assert users, "no USER in the runtime stage"
    u = users[-1].split(":")[0]
    assert u not in ("root", "0"), users
    # the user is created in the runtime stage
    runs = " ".join(a for i, a in runtime if i == "RUN")
    assert re.search(rf"(useradd|adduser)\b[^&;]*\b{re.escape(u)}\b", runs), \
        runs
    assert any(i == "EXPOSE" and "8000" in a.split() for i, a in runtime)
    copies = [a for i, a in runtime if i == "COPY"]
    assert any(a.split()[0] == "models/demo.pt" for a in copies), copies
    assert any(a.startswith(f"--from={stage}") and "inferd" in a
               for a in copies), copies
    entry = [a for i, a in runtime if i == "ENTRYPOINT"]
    assert len(entry) == 1
    argv = json.loads(entry[0])  # exec form, so SIGTERM reaches inferd
    binary = argv[0]
    # the binary is copied to that path by a COPY --from=build
    dest = [a.split()[-1] for a in copies if a.startswith("--from=")]
    assert any(binary == d or (d.endswith("/") and binary.startswith(d)
                               and "/" not in binary[len(d):])
               for d in dest), (binary, dest)
    assert binary.endswith("/inferd"), binary
    # ENV keys are settings
    for a in (a for i, a in ins if i == "ENV"):
        for key in re.findall(r"(?:^|\s)([A-Z_][A-Z0-9_]*)=", a):
            assert key in settings, f"Dockerfile ENV {key} is not a setting"
    assert demo_path_in_image(ins) == docker_model_path()


def demo_path_in_image(ins):
    for i, a in ins:
        if i == "ENV":
            m = re.search(r"MODEL_PATH=(\S+)", a)
            if m:
                return m.group(1)
    return None


def test_dockerfile_copy_sources_exist():
    for instr, args in dockerfile_instructions():
        if instr not in ("COPY", "ADD"):
            continue
        parts = [p for p in args.split() if not p.startswith("--")]
        if any(p.startswith("--from") for p in args.split()):
            continue
        assert len(parts) >= 2, args
        for src in parts[:-1]:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    assert DEMO_MODEL.is_file() and DEMO_MODEL.stat().st_size > 0


def test_dockerfile_build_stage_has_what_make_all_needs():
    """The build stage copies every input of `make all` (the Makefile's
    sources) and installs the -dev packages that provide pkg-config's
    modules and libtorch's headers."""
    ins = dockerfile_instructions()
    last = max(k for k, (i, _) in enumerate(ins) if i == "FROM")
    build = ins[:last]
    copied = set()
    for i, a in build:
        if i == "COPY":
            parts = a.split()
            copied.update(parts[:-1] if len(parts) > 2 else parts[:1])
    for need in ("Makefile", "memory_config.h", "include", "src"):
        assert need in copied, (need, copied)
    runs = " ".join(a for i, a in build if i == "RUN")
    assert "make all" in runs or re.search(r"\bmake\b", runs), runs
    mk = (ROOT / "Makefile").read_text()
    pkgs = re.search(r"^PKGS\s*:?=\s*(.+)$", mk, re.M).group(1).split()
    if not shutil.which("dpkg"):
        pytest.skip("dpkg not available to map pkg-config modules to packages")
    found = dpkg_owners([f"{m}.pc" for m in pkgs])
    for mod in pkgs:
        owners = found[f"{mod}.pc"]
        assert owners and owners & set(runs.split()), \
            f"pkg-config module {mod} (from {owners}) not installed in build"
    assert "libtorch-dev" in runs.split()


def test_dockerfile_runtime_has_the_shared_libraries():
    """Every library build/inferd and the shim need directly is installed in
    the runtime stage (or is part of debian:12-slim)."""
    if not shutil.which("dpkg") or not shutil.which("readelf"):
        pytest.skip("dpkg/readelf not available")
    ins = dockerfile_instructions()
    last = max(k for k, (i, _) in enumerate(ins) if i == "FROM")
    runs = " ".join(a for i, a in ins[last:] if i == "RUN").split()
    base = {"libc6", "libstdc++6", "libgcc-s1"}
    shim = Path(INFERD_BIN).parent / "libinferd_torch.so"
    for binary in (Path(INFERD_BIN), shim):
        assert binary.exists(), binary
        out = subprocess.run(["readelf", "-d", str(binary)],
                             capture_output=True, text=True).stdout
        libs = re.findall(r"\(NEEDED\).*\[(.+)\]", out)
        assert libs, out
        found = dpkg_owners(libs)
        for lib in libs:
            owners = found[lib]
            if not owners:
                continue  # not from a package here (e.g. a custom libtorch)
            assert owners & (base | set(runs)), \
                f"{binary.name} needs {lib} ({owners}), not installed"


# ------------------------------------------------------------ examples

def test_curl_example_is_valid_sh():
    p = subprocess.run(["sh", "-n", str(ROOT / "examples" / "curl.sh")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_client_example_compiles(tmp_path):
    py_compile.compile(str(ROOT / "examples" / "client.py"),
                       cfile=str(tmp_path / "client.pyc"), doraise=True)


def test_client_example_runs_against_the_demo_model(inferd):
    d = inferd(env={"MODEL_PATH": str(DEMO_MODEL),
                    "ENVIRONMENT": "development", "TORCH_NUM_THREADS": "1"})
    env = {k: v for k, v in os.environ.items() if k != "API_KEY"}
    p = subprocess.run([PYTHON, str(ROOT / "examples" / "client.py"), d.url],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, f"rc={p.returncode}\n{p.stdout}\n{p.stderr}"
    out = p.stdout
    assert "/predict [5.1, 3.5, 1.4, 0.2] -> setosa" in out, out
    assert "/v2      [5.1, 3.5, 1.4, 0.2] -> setosa" in out, out
    assert "virginica" in out, out
    assert "server RSS" in out, out


def test_client_example_with_api_key(inferd):
    """The client honours API_KEY (the README says to set it)."""
    key = "client-example-key-7"
    d = inferd(env={"MODEL_PATH": str(DEMO_MODEL), "API_KEY": key,
                    "TORCH_NUM_THREADS": "1"})
    env = dict(os.environ, API_KEY=key)
    p = subprocess.run([PYTHON, str(ROOT / "examples" / "client.py"), d.url],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, f"rc={p.returncode}\n{p.stdout}\n{p.stderr}"
    env.pop("API_KEY")
    p = subprocess.run([PYTHON, str(ROOT / "examples" / "client.py"), d.url],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode != 0 and "401" in p.stderr, (p.stdout, p.stderr)
