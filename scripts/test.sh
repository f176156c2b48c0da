#!/usr/bin/env bash
# The whole test suite, from a fresh checkout:
#   1. formatting and lints (rustfmt, clippy -D warnings);
#   2. Rust unit tests and the end-to-end federation tests (real Flight
#      servers on loopback, differential against centralized DataFusion);
#   3. the Python client tests: ADBC Flight SQL and pyarrow.flight against a
#      real `ihdsi demo` process. The clients are installed from PyPI into
#      .venv here, so nothing needs to be set up by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "rustfmt"
cargo fmt --all -- --check

step "build"
cargo build --locked --workspace --all-targets

step "clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --locked --workspace

step "python clients"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
IHDSI_BIN="${CARGO_TARGET_DIR:-target}/debug/ihdsi" .venv/bin/python -m pytest -q tests/python
