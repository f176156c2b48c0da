"""DuckDB over the same Parquet files as the federation: ihdsi-bench's peer.

ihdsi-bench starts this once per cohort and talks JSON lines over
stdin/stdout, so Python's start-up and DuckDB's view creation are paid once
and each timing covers exactly one query: planning, execution and the
result materialised as Arrow (what an analyst's client would receive).

    python duckdb_runner.py DATA_DIR THREADS
    -> {"sql": "...", "runs": 5}
    <- {"times_ms": [...], "rows": N}   or   {"error": "..."}

The virtual cohort schema is rebuilt as views: each patient table is the
UNION ALL of the sites' files with a `site` column, as in the federation.
"""

import json
import os
import sys
import time

import duckdb


def site_folders(data):
    sites = []
    for name in sorted(os.listdir(data)):
        path = os.path.join(data, name)
        if os.path.isdir(path) and os.path.exists(os.path.join(path, "person.parquet")):
            sites.append((name, path))
    return sites


def create_views(con, data):
    sites = site_folders(data)
    tables = sorted(
        {f[: -len(".parquet")] for _, p in sites for f in os.listdir(p) if f.endswith(".parquet")}
    )
    for table in tables:
        parts = [
            f"SELECT '{site}' AS site, * FROM read_parquet('{os.path.join(path, table)}.parquet')"
            for site, path in sites
            if os.path.exists(os.path.join(path, f"{table}.parquet"))
        ]
        con.execute(f"CREATE VIEW {table} AS " + " UNION ALL ".join(parts))
    concept = os.path.join(data, "concept.parquet")
    con.execute(f"CREATE VIEW concept AS SELECT * FROM read_parquet('{concept}')")


def main():
    data, threads = sys.argv[1], int(sys.argv[2])
    con = duckdb.connect()
    con.execute(f"SET threads TO {threads}")
    create_views(con, data)
    print(json.dumps({"ready": duckdb.__version__}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            times, rows = [], 0
            for _ in range(request["runs"]):
                start = time.perf_counter()
                rows = con.sql(request["sql"]).to_arrow_table().num_rows
                times.append((time.perf_counter() - start) * 1000.0)
            print(json.dumps({"times_ms": times, "rows": rows}), flush=True)
        except Exception as e:  # reported to ihdsi-bench, which fails the run
            print(json.dumps({"error": str(e)}), flush=True)


if __name__ == "__main__":
    main()
