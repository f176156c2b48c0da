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


PASSWORD = "py-test-pw-42"


class Demo:
    """A running demo and the credentials it printed."""

    def __init__(self, uri: str, data: pathlib.Path, proc: subprocess.Popen, printed: str):
        self.uri = uri
        self.data = data
        self.proc = proc
        self.binary = ihdsi_binary()
        login = re.search(r"user: (\S+)\s+password: (\S+)", printed)
        token = re.search(r"service token \(demo-service\): ([0-9a-f]{64})", printed)
        assert login and token, "the demo must print its credentials:\n" + printed
        self.user, self.password = login.group(1), login.group(2)
        self.token = token.group(1)

    def db_kwargs(self):
        return {"username": self.user, "password": self.password}


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    binary = ihdsi_binary()
    assert binary.exists(), f"{binary} is missing: build the workspace first"
    data = tmp_path_factory.mktemp("demo-data")
    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "demo", "--data", str(data), "--persons", "3000", "--port", str(port),
         "--min-group-size", "10", "--site-min-group-size", "1", "--report-suppressed", "--no-examples",
         "--password", PASSWORD],
        stdout=subprocess.PIPE, stderr=open(data / "ihdsi-demo.log", "w"), stdin=subprocess.DEVNULL, text=True,
    )
    lines = []
    found = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if "service token" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + 180
    while not found.is_set() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    if not found.is_set():
        proc.kill()
        pytest.fail("ihdsi demo did not print its endpoint and credentials:\n" + "".join(lines))
    printed = "".join(lines)
    assert f"grpc://127.0.0.1:{port}" in printed, printed
    yield Demo(f"grpc://127.0.0.1:{port}", data, proc, printed)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
