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


def test_shell_piped_prints_results_without_progress(demo):
    sql = "SELECT site, count(DISTINCT person_id) AS patients\nFROM person GROUP BY site ORDER BY site;\n\\d\n"
    out = subprocess.run(
        [str(demo.binary), "shell", "--uri", demo.uri, "--user", demo.user, "--password", demo.password],
        input=sql, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "3 rows released" in out.stdout and "variant_occurrence" in out.stdout
    assert "answered" not in out.stderr and "answered" not in out.stdout
