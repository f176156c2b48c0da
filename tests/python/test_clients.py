"""Real clients against a real `ihdsi demo`: ADBC Flight SQL (DBAPI) and
pyarrow.flight. The expected numbers are computed independently, with
pyarrow, from the same Parquet files the sites read."""

import collections

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest


def persons(data):
    tables = [pq.read_table(p) for p in sorted(data.glob("*/person.parquet"))]
    assert len(tables) == 3
    return pa.concat_tables(tables)


def test_adbc_query_matches_the_files(demo):
    expected = collections.Counter(persons(demo.data).column("gender_concept_id").to_pylist())
    with flightsql.connect(demo.uri, db_kwargs=demo.db_kwargs(), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT gender_concept_id, count(*) AS n FROM person GROUP BY gender_concept_id ORDER BY gender_concept_id")
        table = cur.fetch_arrow_table()
    got = dict(zip(table.column("gender_concept_id").to_pylist(), table.column("n").to_pylist()))
    assert got == dict(expected)
    assert sum(got.values()) == 3000


def test_adbc_default_dbapi_connection_answers_and_warns_only_about_autocommit(demo):
    # The coordinator is read-only and advertises no transactions, so the
    # DB-API layer cannot switch autocommit off: it warns and carries on.
    # The examples pass autocommit=True to say so up front.
    with pytest.warns(Warning, match="Cannot disable autocommit"):
        conn = flightsql.connect(demo.uri, db_kwargs=demo.db_kwargs())
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM person")
        assert cur.fetchone() == (3000,)


def test_adbc_reports_suppressed_groups_in_schema_metadata(demo):
    p = persons(demo.data)
    cells = collections.Counter(zip(p.column("year_of_birth").to_pylist(), p.column("race_concept_id").to_pylist()))
    small = sum(1 for n in cells.values() if n < 10)
    large = {k: n for k, n in cells.items() if n >= 10}
    assert small > 0 and large, "the cohort must have both rare and common cells for this test to mean anything"
    with flightsql.connect(demo.uri, db_kwargs=demo.db_kwargs(), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT year_of_birth, race_concept_id, count(*) AS n FROM person GROUP BY year_of_birth, race_concept_id")
        table = cur.fetch_arrow_table()
    got = {(y, r): n for y, r, n in zip(*(table.column(c).to_pylist() for c in ("year_of_birth", "race_concept_id", "n")))}
    assert got == large
    assert table.schema.metadata[b"ihdsi.suppressed_groups"] == str(small).encode()


def test_adbc_row_level_query_is_refused_with_the_cause(demo):
    with flightsql.connect(demo.uri, db_kwargs=demo.db_kwargs(), autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(Exception, match="row-level output"):
            cur.execute("SELECT person_id, year_of_birth FROM person")
        cur.execute("SELECT count(*) AS n FROM person")
        assert cur.fetchone() == (3000,)


def _command_statement_query(sql: str) -> bytes:
    """Flight SQL's CommandStatementQuery wrapped in google.protobuf.Any,
    encoded by hand (pyarrow.flight speaks Flight, not Flight SQL)."""

    def field(number: int, payload: bytes) -> bytes:
        key = (number << 3) | 2
        length, out = len(payload), bytearray()
        while True:
            byte = length & 0x7F
            length >>= 7
            out.append(byte | (0x80 if length else 0))
            if not length:
                break
        return bytes([key]) + bytes(out) + payload

    command = field(1, sql.encode())
    type_url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return field(1, type_url) + field(2, command)


def test_pyarrow_flight_handshake_and_ticket_flow(demo):
    client = flight.connect(demo.uri)
    sql = "SELECT site, count(DISTINCT person_id) AS patients FROM person GROUP BY site ORDER BY site"
    descriptor = flight.FlightDescriptor.for_command(_command_statement_query(sql))
    with pytest.raises(flight.FlightUnauthenticatedError, match="no credentials"):
        client.get_flight_info(descriptor)
    with pytest.raises(flight.FlightUnauthenticatedError, match="invalid user name or password"):
        client.authenticate_basic_token(demo.user, demo.password + "x")
    header, value = client.authenticate_basic_token(demo.user, demo.password)
    assert header == b"authorization" and value.startswith(b"Bearer ")
    options = flight.FlightCallOptions(headers=[(header, value)])
    info = client.get_flight_info(descriptor, options)
    assert all(not ep.locations for ep in info.endpoints), "endpoints must reuse this connection"
    table = pa.concat_tables([client.do_get(ep.ticket, options).read_all() for ep in info.endpoints])
    assert table.schema == info.schema
    counts = {s: pq.read_table(demo.data / s / "person.parquet").num_rows for s in ("kr", "lu", "us")}
    assert dict(zip(table.column("site").to_pylist(), table.column("patients").to_pylist())) == counts
    assert pc.sum(table.column("patients")).as_py() == 3000


def test_adbc_get_objects_at_every_depth(demo):
    with flightsql.connect(demo.uri, db_kwargs=demo.db_kwargs(), autocommit=True) as conn:
        catalogs = conn.adbc_get_objects(depth="catalogs").read_all().to_pylist()
        assert [c["catalog_name"] for c in catalogs] == ["ihdsi"]
        assert not catalogs[0]["catalog_db_schemas"]
        schemas = conn.adbc_get_objects(depth="db_schemas").read_all().to_pylist()
        assert [s["db_schema_name"] for s in schemas[0]["catalog_db_schemas"]] == ["omop"]
        assert not schemas[0]["catalog_db_schemas"][0]["db_schema_tables"]
        tables = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        listed = tables[0]["catalog_db_schemas"][0]["db_schema_tables"]
        assert len(listed) == 12 and all(not t["table_columns"] for t in listed)
        filtered = conn.adbc_get_objects(depth="columns", table_name_filter="person", column_name_filter="site")
        person = filtered.read_all().to_pylist()[0]["catalog_db_schemas"][0]["db_schema_tables"]
        assert [t["table_name"] for t in person] == ["person"]
        assert [c["column_name"] for c in person[0]["table_columns"]] == ["site"]


def test_adbc_browses_the_virtual_schema(demo):
    with flightsql.connect(demo.uri, db_kwargs=demo.db_kwargs(), autocommit=True) as conn:
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        assert [c["catalog_name"] for c in objects] == ["ihdsi"]
        schemas = objects[0]["catalog_db_schemas"]
        assert [s["db_schema_name"] for s in schemas] == ["omop"]
        tables = {t["table_name"]: t for t in schemas[0]["db_schema_tables"]}
        assert len(tables) == 12 and "variant_occurrence" in tables
        columns = [c["column_name"] for c in tables["person"]["table_columns"]]
        assert columns[0] == "person_id" and columns[-1] == "site"
        schema = conn.adbc_get_table_schema("person")
        assert schema.field("site").type == pa.string()
        info = conn.adbc_get_info()
        assert info["vendor_name"] == "ihdsi"


def older_than(data, year):
    """Persons per gender born before `year`, in groups of at least 10,
    from the files."""
    p = persons(data)
    old = pc.less(p.column("year_of_birth"), year)
    counts = collections.Counter(pc.filter(p.column("gender_concept_id"), old).to_pylist())
    return {g: n for g, n in counts.items() if n >= 10}


@pytest.mark.parametrize("placeholder", ["?", "$1"])
def test_adbc_binds_parameters_in_both_paramstyles(demo, placeholder):
    """The DBAPI's own paramstyle (qmark, `?`) and DataFusion's `$1`."""
    assert flightsql.paramstyle == "qmark"
    sql = f"SELECT gender_concept_id, count(*) AS n FROM person WHERE year_of_birth < {placeholder} GROUP BY gender_concept_id"
    with flightsql.connect(demo.uri, db_kwargs=demo.db_kwargs(), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql, parameters=(1960,))
        assert dict(cur.fetchall()) == older_than(demo.data, 1960)
        cur.execute(sql, parameters=(1900,))
        assert cur.fetchall() == []


def test_adbc_parameter_mistakes_are_told_by_position(demo):
    """A value that does not fit, or one too many, is the analyst's
    mistake, named at the coordinator, not a site's refusal."""
    sql = "SELECT count(*) AS n FROM person WHERE year_of_birth < ? AND gender_concept_id = ?"
    with flightsql.connect(demo.uri, db_kwargs=demo.db_kwargs(), autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(Exception, match=r"parameter \$1: the value abc"):
            cur.execute(sql, parameters=("abc", 8507))
        with pytest.raises(Exception, match=r"3 parameter values were bound, but the statement has 2"):
            cur.execute(sql, parameters=(1960, 8507, 1))
        with pytest.raises(Exception, match=r"mixes \? and \$n"):
            cur.execute("SELECT count(*) AS n FROM person WHERE year_of_birth < ? AND gender_concept_id = $2",
                        parameters=(1960, 8507))


def test_pandas_and_polars_read_with_parameters(demo):
    """pandas and polars over the ADBC connection, with bound values.
    (`pd.read_sql(..., params=...)` is not implemented for ADBC drivers by
    pandas itself; the ADBC cursor hands pandas its frame instead.)"""
    import polars as pl
    sql = "SELECT gender_concept_id, count(*) AS n FROM person WHERE year_of_birth < ? GROUP BY gender_concept_id"
    expected = older_than(demo.data, 1960)
    with flightsql.connect(demo.uri, db_kwargs=demo.db_kwargs(), autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute(sql, parameters=(1960,))
            df = cur.fetch_df()
        assert dict(zip(df["gender_concept_id"], df["n"])) == expected
        frame = pl.read_database(sql, connection=conn, execute_options={"parameters": (1960,)})
        assert dict(zip(frame["gender_concept_id"].to_list(), frame["n"].to_list())) == expected


def test_adbc_refuses_wrong_password_and_accepts_a_service_token(demo):
    with pytest.raises(Exception, match="invalid user name or password"):
        with flightsql.connect(demo.uri, db_kwargs={"username": demo.user, "password": "wrong"}, autocommit=True) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM person")
    with pytest.raises(Exception, match="no credentials"):
        with flightsql.connect(demo.uri, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM person")
    forged = {"adbc.flight.sql.authorization_header": "Bearer " + "0" * 64}
    with pytest.raises(Exception, match="unknown bearer token"):
        with flightsql.connect(demo.uri, db_kwargs=forged, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM person")
    service = {"adbc.flight.sql.authorization_header": "Bearer " + demo.token}
    with flightsql.connect(demo.uri, db_kwargs=service, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM person")
        assert cur.fetchone() == (3000,)


def test_adbc_selects_a_data_permit_with_a_call_header(demo):
    """The demo's sites require a permit; the analyst's one permit is used
    by default, or selected by id with the x-ihdsi-permit call header. An id
    the analyst does not hold is refused by the coordinator, naming it."""
    header = "adbc.flight.sql.rpc.call_header.x-ihdsi-permit"
    sql = "SELECT count(*) AS n FROM person"
    with flightsql.connect(demo.uri, db_kwargs={**demo.db_kwargs(), header: "DEMO-analyst"}, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql)
        assert cur.fetchone() == (3000,)
    with flightsql.connect(demo.uri, db_kwargs={**demo.db_kwargs(), header: "LU-NOT-MINE"}, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(Exception, match="no data permit 'LU-NOT-MINE' is held by analyst"):
            cur.execute(sql)


def test_the_demo_writes_verifiable_audit_trails(demo):
    """Every query above went on the coordinator's and each site's
    hash-chained trail; `ihdsi audit verify` accepts them."""
    import subprocess
    trails = sorted(demo.data.glob("run/audit/*.jsonl"))
    assert {t.name for t in trails} >= {"coordinator.jsonl", "site-lu.jsonl", "site-us.jsonl", "site-kr.jsonl"}
    for trail in trails:
        out = subprocess.run([str(demo.binary), "audit", "verify", str(trail)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "chain intact" in out.stdout
    assert '"analyst":"analyst"' in (trails[0].parent / "coordinator.jsonl").read_text()


def test_a_date_parameter_follows_the_rules_of_the_same_literal(demo):
    """A month-aligned date bound to `?` is answered as the same literal
    is; a date that is not is refused as the literal would be."""
    import datetime
    written = "SELECT count(*) AS n FROM condition_occurrence WHERE condition_start_date >= DATE '2015-01-01'"
    bound = "SELECT count(*) AS n FROM condition_occurrence WHERE condition_start_date >= ?"
    with flightsql.connect(demo.uri, db_kwargs=demo.db_kwargs(), autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute(written)
            expected = cur.fetchall()
        with conn.cursor() as cur:
            cur.execute(bound, parameters=(datetime.date(2015, 1, 1),))
            assert cur.fetchall() == expected
        with conn.cursor() as cur, pytest.raises(Exception, match="an exact date or time can single a patient out"):
            cur.execute(bound, parameters=(datetime.date(2015, 1, 15),))
