"""What a newcomer reads first must be true: the two commands, CI, the documented settings."""

from __future__ import annotations

import importlib
import itertools
import re
import shlex
import tomllib
from pathlib import Path

from app.core.config import Settings, SettingsBase
from app.settings import MODULE_SETTINGS
from tests.cli_args import parse_app_cli
from tests.settings import SETTING_NAMES

ROOT = Path(__file__).resolve().parents[1]
_DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_opens_with_the_run_and_test_commands() -> None:
    head = (ROOT / "README.md").read_text().splitlines()[:6]
    assert "make run" in "\n".join(head)
    assert "make test" in "\n".join(head)


def test_ci_runs_the_readme_test_command() -> None:
    """CI may install system packages first, but what it tests with is the README's command,
    exactly as written, and nothing runs after it."""
    readme = (ROOT / "README.md").read_text().splitlines()[:6]
    test_command = next(line.split("#")[0].strip() for line in readme if "make test" in line)
    script = (ROOT / ".ci/run").read_text().splitlines()
    commands = [
        line.strip() for line in script if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[-1] == test_command
    assert commands.count(test_command) == 1


def test_env_example_documents_every_setting() -> None:
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    )
    settings = {name.upper() for name in SETTING_NAMES}
    assert settings - documented == set()


def test_makefile_targets_named_in_the_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "run-split", "test", "load", "stress", "bench"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target


def _checklist_items() -> list[str]:
    text = (ROOT / "PRODUCTION_CHECKLIST.md").read_text()
    return [line for line in text.splitlines() if line.startswith("- [")]


def test_checklist_has_all_74_items() -> None:
    assert len(_checklist_items()) == 74


def test_every_ticked_item_links_existing_code_and_a_test() -> None:
    for item in (line for line in _checklist_items() if line.startswith("- [✅]")):
        links = [link.split("#")[0] for link in re.findall(r"\]\(([^)]+)\)", item)]
        missing = [link for link in links if not (ROOT / link).exists()]
        assert missing == [], item
        assert any(link.startswith("tests") for link in links), f"no test linked: {item}"
        for name in re.findall(r"`(test_\w+)`", item):
            assert any(
                f"def {name}(" in path.read_text() for path in (ROOT / "tests").rglob("*.py")
            ), f"{name} does not exist"


def test_the_test_command_reports_coverage_of_app_and_the_processes_it_starts() -> None:
    pytest_line = next(line for line in _makefile_target("test") if "pytest" in line)
    assert "--cov" in pytest_line
    assert "--cov-report=html:reports/coverage" in pytest_line
    coverage = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]
    assert coverage["run"]["source"] == ["app", "devtools"]  # the dev runner, as before its move
    assert coverage["run"]["patch"] == ["subprocess"]
    assert coverage["report"]["fail_under"] >= 90
    assert "reports/" in (ROOT / ".gitignore").read_text().splitlines()


def _makefile_target(name: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:"))
    return list(itertools.takewhile(lambda line: line.startswith("\t"), lines[start + 1 :]))


def test_readme_stays_under_1500_words() -> None:
    """What a newcomer needs in the first ten minutes; the rest lives in docs/. Counted as
    `wc -w` does: runs of bytes between ASCII whitespace."""
    assert len((ROOT / "README.md").read_bytes().split()) < 1500


def _resolves(name: str) -> bool:
    """Imports the longest module prefix of a dotted name, then gets the rest as attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as error:
            if error.name is not None and name.startswith(error.name):
                continue  # not a module: try a shorter prefix
            raise
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_every_code_name_the_docs_quote_exists() -> None:
    """A dotted Python path under `app.` quoted in backticks (`app.core.jobs.queue_name`) in the
    README or docs/*.md is importable; quotes with a slash, a space or a colon are not paths."""
    quoted = {
        (path.name, name)
        for path in _DOC_PAGES
        for name in re.findall(r"`(app(?:\.\w+)+)(?:\(\))?`", path.read_text())
    }
    assert quoted
    assert sorted(f"{page}: {name}" for page, name in quoted if not _resolves(name)) == []


def test_readme_has_an_architecture_diagram() -> None:
    readme = (ROOT / "README.md").read_text()
    diagram = readme.split("```mermaid", 1)[1].split("```", 1)[0]
    for participant in ("orders", "catalog", "relay"):
        assert participant in diagram


def test_the_documented_commands_are_commands_of_the_cli() -> None:
    """The README and docs/ (docs/development.md lists them since the README was cut short)."""
    text = "\n".join(path.read_text() for path in _DOC_PAGES)
    commands = re.findall(r"^uv run python -m app\.cli ([^#>\n]+)", text, re.MULTILINE)
    assert len(commands) >= 8
    for command in commands:
        parse_app_cli(shlex.split(command))  # raises (fails the test) on an unknown command


def test_the_extraction_guide_names_only_real_settings_commands_and_files() -> None:
    """docs/extracting-a-module.md is a checklist an operator follows: every variable it names
    is a setting (or one of the gateway template's names), every `python -m app.cli` command
    exists, and every file it links is there."""
    guide = (ROOT / "docs/extracting-a-module.md").read_text()
    template = (ROOT / "deploy/gateway/nginx.conf.template").read_text()
    variables = set(re.findall(r"\b([A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9])\b", guide))
    settings = {name.upper() for name in SETTING_NAMES}
    assert {
        name for name in variables if name not in settings and f"${{{name}}}" not in template
    } == set()
    commands = [line.split() for line in re.findall(r"python -m app\.cli ([^`#\n]+)", guide)]
    assert commands
    for command in commands:
        parse_app_cli(command)  # raises (fails the test) on an unknown command or argument
    links = [link.split("#")[0] for link in re.findall(r"\]\(([^)]+)\)", guide)]
    assert [link for link in links if not (ROOT / "docs" / link).exists()] == []


def _reference_tables() -> dict[str, set[str]]:
    """docs/configuration.md: the variables of each table, by the class its heading names."""
    tables: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in (ROOT / "docs/configuration.md").read_text().splitlines():
        heading = re.fullmatch(r"#{2,3} .*?(?:`(\w+)`)?", line)
        if heading:
            current = tables.setdefault(heading[1], set()) if heading[1] else None
        elif current is not None and line.startswith("| `"):
            current.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return tables


def test_the_settings_reference_matches_the_classes() -> None:
    """Each table of docs/configuration.md lists exactly the settings its heading's class
    declares (APP_ENV, in every class, is in the text above them), and every class has one."""
    parts = [
        part
        for part in Settings.__mro__[1:]
        if issubclass(part, SettingsBase) and part is not SettingsBase
    ]
    expected = {
        one.__name__: {name.upper() for name in one.model_fields if name != "app_env"}
        for one in (*parts, *MODULE_SETTINGS.values())
    }
    assert _reference_tables() == expected
