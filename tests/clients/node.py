"""Running the Node client (clients/node) from the tests."""

import json
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(ROOT, "clients", "node")


def node() -> str:
    """The node executable; skips where there is none (make setup installs the client's packages with npm)."""
    exe = shutil.which("node")
    if exe is None:
        pytest.skip("node is not installed: the Node client cannot run here")
    if not os.path.isdir(os.path.join(CLIENT, "node_modules", "onnxruntime-node")):
        pytest.fail(f"the Node client's packages are missing: run make setup (npm ci in {CLIENT})")
    return exe


def conformance(export_dir) -> tuple[int, dict]:
    """(exit status, summary) of `node clients/node/conformance.js EXPORT_DIR`."""
    done = subprocess.run([node(), os.path.join(CLIENT, "conformance.js"), str(export_dir), "--max-failures", "50"],
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip(), done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout)


def evaluate(script: str, payload) -> object:
    """Runs `script` (JavaScript; `client` is clients/node/client.js, `input` the payload) and returns what it
    prints as JSON."""
    program = (f"const client = require({json.dumps(os.path.join(CLIENT, 'client.js'))});"
               "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
               f"{script}")
    done = subprocess.run([node(), "-e", program], input=json.dumps(payload), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)
