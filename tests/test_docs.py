"""What a newcomer reads first must be true: the two commands, CI, the documented settings."""

from __future__ import annotations

import re
from pathlib import Path

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_the_run_and_test_commands() -> None:
    head = (ROOT / "README.md").read_text().splitlines()[:6]
    assert "make run" in "\n".join(head)
    assert "make test" in "\n".join(head)


def test_ci_runs_the_readme_test_command() -> None:
    script = (ROOT / ".ci/run").read_text().splitlines()
    commands = [line for line in script if line.strip() and not re.match(r"\s*(#|set |cd )", line)]
    assert commands == ["make test"]


def test_env_example_documents_every_setting() -> None:
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    )
    settings = {name.upper() for name in Settings.model_fields}
    assert settings - documented == set()


def test_makefile_targets_named_in_the_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test", "load"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target
