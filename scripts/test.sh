#!/usr/bin/env bash
# The whole test suite, from a fresh checkout:
#   1. formatting, structure and lints (rustfmt; no import circles and no
#      function over 80 lines, scripts/*.py; clippy -D warnings);
#   2. Rust unit tests and the end-to-end federation tests (real Flight
#      servers on loopback, differential against centralized DataFusion; a
#      private PostgreSQL server, installed from Debian's packages if
#      missing);
#   3. the Python client tests: ADBC Flight SQL and pyarrow.flight against a
#      real `ihdsi demo` process. The clients are installed from PyPI into
#      .venv here, so nothing needs to be set up by hand;
#   4. a smoke run of the benchmark harness (ihdsi-bench) on a tiny cohort,
#      and a 30-second soak of 32 analysts against the federation.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "rustfmt"
cargo fmt --all -- --check

step "structure (no import circles between modules; no function over 80 lines)"
python3 scripts/import_cycles.py catalog synthetic statistics planner engine flight-server cli benchmarks tests
python3 scripts/long_functions.py

step "build"
cargo build --locked --workspace --all-targets

step "clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
# The engine as an embedder takes it: Parquet sites only, no PostgreSQL or
# Ballista backend compiled in (the rest of the suite runs with both).
cargo clippy --locked -p ihdsi-engine --no-default-features --all-targets -- -D warnings

step "PostgreSQL server binaries (the tests start their own server)"
# The PostgreSQL-backed site tests run initdb in a temporary folder and start
# a private server on a free port; they never use one already running. On a
# fresh machine the binaries come from Debian's postgresql package.
if ! ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql > /dev/null
fi

step "reference libraries (lifelines, statsmodels) for the statistics tests"
# statistics/tests/reference.rs checks the survival statistics against
# lifelines and statsmodels on pooled rows; they live in a virtualenv of
# their own (lifelines needs pandas < 3, the client tests run pandas 3).
if [ ! -x .venv-reference/bin/python ]; then
    python3 -m venv .venv-reference
fi
.venv-reference/bin/python -m pip install --quiet --disable-pip-version-check \
    -r statistics/tests/requirements.txt

step "cargo test"
cargo test --locked --workspace

step "python clients"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
IHDSI_BIN="${CARGO_TARGET_DIR:-target}/debug/ihdsi" .venv/bin/python -m pytest -q tests/python

step "benchmark harness (smoke: 2,000 persons, debug build; figures are not checked)"
# Runs every configuration and sweep of ihdsi-bench end to end (site and
# coordinator processes, centralized DataFusion, DuckDB from
# benchmarks/requirements.txt), which also checks that centralized and
# DuckDB agree on every workload query's row count and that the federation
# never returns more rows. Real figures come from the release build:
# see benchmarks/RESULTS.md.
smoke="$(mktemp -d)"
"${CARGO_TARGET_DIR:-target}/debug/ihdsi-bench" --quick --persons 2000 \
    --data "$smoke/data" --out "$smoke/out" > "$smoke/bench.log" 2>&1 \
    || { cat "$smoke/bench.log"; exit 1; }
test -s "$smoke/out/RESULTS.md" && test -s "$smoke/out/plots/persons.svg"

step "soak (32 analysts for 30 s; fails on any failed query)"
# Staying up, not speed: the secured federation of processes over a
# 20,000-person cohort, 32 analysts with accounts of their own running the
# workload in a loop; reports errors, throughput, p50/p99 and each
# process's peak memory (docs/operations.md).
"${CARGO_TARGET_DIR:-target}/debug/ihdsi-bench" --soak 30 --persons 20000 \
    --data "$smoke/data" --out "$smoke/out" > "$smoke/soak.log" 2>&1 \
    || { tail -n 40 "$smoke/soak.log"; exit 1; }
grep -A 6 "^soak:" "$smoke/soak.log"
rm -rf "$smoke"
