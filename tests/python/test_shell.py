"""`ihdsi shell` under a real pseudo-terminal (pexpect), and piped."""

import os
import subprocess

import pexpect


def spawn_shell(demo, tmp_path):
    env = dict(os.environ, TERM="xterm", IHDSI_HISTORY=str(tmp_path / "history"), IHDSI_PASSWORD=demo.password)
    args = ["shell", "--uri", demo.uri, "--user", demo.user]
    return pexpect.spawn(str(demo.binary), args, env=env, encoding="utf-8", timeout=60, dimensions=(50, 200))


def test_shell_query_multiline_and_table_listing_under_a_pty(demo, tmp_path):
    shell = spawn_shell(demo, tmp_path)
    shell.expect_exact("ihdsi> ")

    shell.sendline("SELECT site, count(DISTINCT person_id) AS patients FROM person GROUP BY site ORDER BY site;")
    # Live progress: one line per site with its final state and time.
    for site in ("kr", "lu", "us"):
        shell.expect(rf"site {site}\s+answered\s+\d+\.\d\d s")
    shell.expect(r"\| site \| patients \|")
    shell.expect(r"3 rows released; 0 groups suppressed")
    shell.expect_exact("ihdsi> ")

    shell.sendline("SELECT year_of_birth, race_concept_id,")
    shell.expect_exact("..> ")
    shell.sendline("  count(*) AS n FROM person")
    shell.expect_exact("..> ")
    shell.sendline("GROUP BY year_of_birth, race_concept_id;")
    shell.expect(r"(\d+) rows? released; (\d+) groups? suppressed")
    assert int(shell.match.group(2)) > 0, "rare birth-year/race cells must be suppressed"
    shell.expect_exact("ihdsi> ")

    shell.sendline("\\d")
    shell.expect(r"\| variant_occurrence\s+\| TABLE\s+\|")
    shell.expect_exact("ihdsi> ")
    shell.sendline("\\d person")
    shell.expect(r"\| site\s+\| Utf8")
    shell.expect_exact("ihdsi> ")

    shell.sendline("SELECT person_id FROM person;")
    shell.expect("error: .*row-level output")
    shell.expect_exact("ihdsi> ")
    shell.sendline("\\q")
    shell.expect(pexpect.EOF)
    shell.close()
    assert shell.exitstatus == 0
    history = (tmp_path / "history").read_text()
    assert "GROUP BY year_of_birth, race_concept_id;" in history


def test_ctrl_c_cancels_the_running_statement_and_the_shell_goes_on(demo, tmp_path):
    shell = spawn_shell(demo, tmp_path)
    shell.expect_exact("ihdsi> ")
    # A cross join that keeps every site busy for seconds.
    shell.sendline(
        "SELECT count(*) AS n FROM measurement m CROSS JOIN concept c CROSS JOIN concept d"
        " CROSS JOIN concept e WHERE e.concept_id < 8600;"
    )
    shell.expect(r"site \w+\s+running")
    shell.sendintr()
    shell.expect_exact("cancelled: the statement was dropped")
    shell.expect_exact("ihdsi> ")
    # The shell, its login and the federation still work.
    shell.sendline("SELECT count(DISTINCT person_id) AS patients FROM person;")
    shell.expect(r"1 row released")
    shell.expect_exact("ihdsi> ")
    shell.sendline("\\q")
    shell.expect(pexpect.EOF)
    shell.close()
    assert shell.exitstatus == 0


def test_shell_piped_prints_results_without_progress(demo):
    sql = "SELECT site, count(DISTINCT person_id) AS patients\nFROM person GROUP BY site ORDER BY site;\n\\d\n"
    out = subprocess.run(
        [str(demo.binary), "shell", "--uri", demo.uri, "--user", demo.user, "--password", demo.password],
        input=sql, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "3 rows released" in out.stdout and "variant_occurrence" in out.stdout
    assert "answered" not in out.stderr and "answered" not in out.stdout


def test_shell_logs_in_again_when_its_token_expires(demo, tmp_path):
    """A second demo over the same data whose tokens live 2 seconds."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(demo.binary), "demo", "--data", str(demo.data), "--port", str(port), "--no-examples",
         "--password", demo.password, "--token-ttl-secs", "2", "--run-dir", str(tmp_path / "run")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    try:
        uri = f"grpc://127.0.0.1:{port}"
        env = dict(os.environ, TERM="xterm", IHDSI_HISTORY=str(tmp_path / "history"), IHDSI_PASSWORD=demo.password)
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "the second demo did not start"
                time.sleep(0.2)
        shell = pexpect.spawn(str(demo.binary), ["shell", "--uri", uri, "--user", demo.user],
                              env=env, encoding="utf-8", timeout=60, dimensions=(50, 200))
        shell.expect_exact("ihdsi> ")
        shell.sendline("SELECT count(DISTINCT person_id) AS n FROM person;")
        shell.expect(r"1 row released")
        shell.expect_exact("ihdsi> ")
        time.sleep(3)
        shell.sendline("SELECT count(DISTINCT person_id) AS n FROM person;")
        index = shell.expect([r"1 row released", r"error: .*"])
        assert index == 0, "the shell must log in again: " + shell.after
        shell.sendline("\\q")
        shell.expect(pexpect.EOF)
    finally:
        server.terminate()
        server.wait(timeout=10)
