"""The README's reliability table: every test it names exists (here), and ran and passed (the plugin
tests/support/readme_proofs.py fails `make test` otherwise; its judgement is tested below, in
unit and in a real pytest session). ``LAXAI_README`` checks another copy of the README."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.readme_proofs import FAILED, PASSED, SKIPPED, REPO_ROOT, Outcomes, Proof, problems, proofs, \
    reliability_rows


def test_every_row_names_at_least_one_test_and_each_exists():
    rows = reliability_rows()
    assert len(rows) >= 20
    for row in rows:
        assert re.findall(r"`([^`]+)`", row.rsplit("|", 2)[-2]), f"row without a test: {row[:80]}"
    for proof in proofs():
        assert proof.path and proof.path.startswith("tests/"), proof
        source = (REPO_ROOT / proof.path).read_text()
        if proof.name:
            assert re.search(rf"^\s*def {re.escape(proof.name)}\(", source, flags=re.M), f"{proof} not found"


# -- the plugin's judgement ------------------------------------------------------------------------


def test_a_named_test_must_pass_in_every_parametrization():
    proof = Proof("store error", "tests/a.py", "test_x")
    assert problems([proof], {"tests/a.py::test_x[local]": PASSED, "tests/a.py::test_x[gcp]": PASSED}) == []
    assert problems([proof], {"tests/a.py::test_x[local]": PASSED, "tests/a.py::test_x[gcp]": SKIPPED}) == [
        'README reliability row "store error": tests/a.py::test_x was skipped (tests/a.py::test_x[gcp])']
    failed = problems([proof], {"tests/a.py::Suite::test_x": FAILED})
    assert failed == ['README reliability row "store error": tests/a.py::test_x failed (tests/a.py::Suite::test_x)']


def test_a_named_test_that_did_not_run_is_named_with_its_row():
    named = [Proof("kill -9", "tests/a.py", "test_x"), Proof("whole file", "tests/b.py", None)]
    ran = {"tests/a.py::test_x_longer": PASSED, "tests/c.py::test_x": PASSED, "tests/b.py::test_y": PASSED}
    assert problems(named, ran) == ['README reliability row "kill -9": tests/a.py::test_x was not collected '
                                    '(renamed or removed?)']


def test_a_failed_setup_or_teardown_is_not_undone_by_a_passing_call():
    outcomes = Outcomes()
    for outcome in (PASSED, FAILED, PASSED):
        outcomes.record("tests/a.py::test_x", outcome)
    outcomes.record("tests/a.py::test_y", SKIPPED)
    outcomes.record("tests/a.py::test_y", PASSED)
    assert outcomes.seen == {"tests/a.py::test_x": FAILED, "tests/a.py::test_y": SKIPPED}


def test_the_ellipsis_and_tf_aliases_resolve(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("## Reliability\n\n| fault | what | proved by |\n|---|---|---|\n"
                      "| a | b | `tf::test_one`, `...::test_two`, `tests/x.py` |\n\n## Next\n")
    assert proofs(readme) == [Proof("a", "tests/faults/test_local_faults.py", "test_one"),
                              Proof("a", "tests/faults/test_local_faults.py", "test_two"),
                              Proof("a", "tests/x.py", None)]


# -- the plugin in a real pytest session -----------------------------------------------------------

CHECKS = '''
import pytest

def test_ok():
    pass

def test_fails():
    assert 1 == 2

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass
'''


def table(*refs: str) -> str:
    rows = "".join(f"| fault {i} | what happens | `{ref}` |\n" for i, ref in enumerate(refs))
    return f"# X\n\n## Reliability\n\n| fault | what happens | proved by |\n|---|---|---|\n{rows}\n## Development\n"


def session(project: Path, readme: str, *args: str) -> subprocess.CompletedProcess[str]:
    (project / "README.md").write_text(readme)
    env = {**os.environ, "LAXAI_README": str(project / "README.md"), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)


def make_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "checks").mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\ntestpaths = checks\n")
    (project / "conftest.py").write_text(textwrap.dedent("""
        from tests.support import readme_proofs

        def pytest_configure(config):
            readme_proofs.register(config)
    """))
    (project / "checks" / "test_things.py").write_text(CHECKS)
    return project


def test_a_whole_session_fails_naming_each_row_whose_test_did_not_pass(tmp_path):
    project = make_project(tmp_path)
    bad = table("checks/test_things.py::test_ok", "checks/test_things.py::test_skipped",
                "checks/test_things.py::test_gone", "checks/test_things.py::test_fails")
    result = session(project, bad, "--deselect", "checks/test_things.py::test_fails")
    assert result.returncode == 0, result.stdout  # deselection makes it a partial run: nothing judged
    assert "README reliability" not in result.stdout

    (project / "checks" / "test_things.py").write_text(CHECKS.replace("1 == 2", "1 == 1"))
    result = session(project, bad)
    assert result.returncode == 1, result.stdout  # every test passed or was skipped; the table fails the run
    assert 'row "fault 1": checks/test_things.py::test_skipped was skipped' in result.stdout
    assert 'row "fault 2": checks/test_things.py::test_gone was not collected' in result.stdout
    assert "fault 0" not in result.stdout and "fault 3" not in result.stdout

    good = table("checks/test_things.py::test_ok", "checks/test_things.py::test_fails")
    result = session(project, good)
    assert result.returncode == 0 and "README reliability" not in result.stdout, result.stdout


def test_a_partial_session_says_nothing(tmp_path):
    project = make_project(tmp_path)
    bad = table("checks/test_things.py::test_gone")
    for args in (("-k", "test_ok"), ("checks/test_things.py::test_ok",), ("-m", "not slow", "-k", "ok"),
                 ("--collect-only",)):
        result = session(project, bad, *args)
        assert result.returncode == 0 and "README reliability" not in result.stdout, (args, result.stdout)
    result = session(project, bad, "checks")  # the whole suite named explicitly is a whole session
    assert result.returncode == 1 and "test_gone was not collected" in result.stdout, result.stdout
