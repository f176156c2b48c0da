"""Start a real `ihdsi demo` process for the Python client tests."""

import os
import pathlib
import re
import socket
import subprocess
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def ihdsi_binary() -> pathlib.Path:
    explicit = os.environ.get("IHDSI_BIN")
    if explicit:
        return pathlib.Path(explicit)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "ihdsi"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    def __init__(self, uri: str, data: pathlib.Path, proc: subprocess.Popen):
        self.uri = uri
        self.data = data
        self.proc = proc


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    binary = ihdsi_binary()
    assert binary.exists(), f"{binary} is missing: build the workspace first"
    data = tmp_path_factory.mktemp("demo-data")
    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "demo", "--data", str(data), "--persons", "3000", "--port", str(port),
         "--min-group-size", "10", "--site-min-group-size", "1", "--no-examples"],
        stdout=subprocess.PIPE, stderr=open(data / "ihdsi-demo.log", "w"), stdin=subprocess.DEVNULL, text=True,
    )
    lines = []
    found = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if re.search(rf"grpc://127\.0\.0\.1:{port}\b", line):
                found.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + 180
    while not found.is_set() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    if not found.is_set():
        proc.kill()
        pytest.fail("ihdsi demo did not print its grpc:// line:\n" + "".join(lines))
    yield Demo(f"grpc://127.0.0.1:{port}", data, proc)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
