"""Every Python block of the README, run as written against a real demo:
the README's examples are the first thing a new analyst copies, so none
may be out of step with the engine."""

import contextlib
import io
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_examples():
    assert len(python_blocks()) >= 4


def test_every_python_block_of_the_readme_runs_against_the_demo(demo, tmp_path, monkeypatch):
    """The blocks run in order in one namespace (later ones use the first
    one's LOGIN), with the demo's address and password in place of the
    README's defaults, in a scratch folder (the survival example writes a
    PNG)."""
    monkeypatch.chdir(tmp_path)
    namespace = {}
    printed = io.StringIO()
    for i, block in enumerate(python_blocks()):
        code = block.replace("grpc://127.0.0.1:50051", demo.uri).replace('"ihdsi-demo"', repr(demo.password))
        with contextlib.redirect_stdout(printed):
            try:
                exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"README python block {i + 1} fails:\n{block}\n{e}") from e
    assert "patients" in printed.getvalue()
    assert (tmp_path / "km.png").stat().st_size > 1000, "the survival example plots its curve"
