"""The plotting examples of docs/statistics.md, run as written against a
real demo, headless: the `ihdsi query` example writes its CSV, the Python
blocks (in order, in one namespace) plot it and the ADBC and polars
answers, and each leaves a non-empty PNG."""

import contextlib
import io
import pathlib
import re
import subprocess

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "statistics.md"


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def for_demo(code, demo):
    return code.replace("grpc://127.0.0.1:50051", demo.uri).replace("ihdsi-demo", demo.password)


def test_the_plotting_examples_write_curves(demo, tmp_path, monkeypatch):
    (shell,) = [b for b in blocks("sh") if "ihdsi query" in b]
    shell = for_demo(shell, demo).replace("ihdsi query", f"'{demo.binary}' query", 1)
    monkeypatch.chdir(tmp_path)
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    csv_rows = (tmp_path / "km.csv").read_text().strip().splitlines()
    assert len(csv_rows) >= 2, f"the curve has points: {csv_rows}"
    namespace = {}
    python = blocks("python")
    assert len(python) == 3
    for i, block in enumerate(python):
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(compile(for_demo(block, demo), f"docs/statistics.md python block {i + 1}", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"docs/statistics.md python block {i + 1} fails:\n{block}\n{e}") from e
    assert namespace["table"].num_rows > 0, "the ADBC example read a curve"
    assert namespace["curves"].height > 0, "the polars example read a curve"
    for png in ["km_cli.png", "km_adbc.png", "km_polars.png"]:
        path = tmp_path / png
        assert path.exists() and path.stat().st_size > 1000, f"{png} is written"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is a PNG"
