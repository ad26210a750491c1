"""The README and docs/ hold together: every relative link and #anchor resolves, every
`cutloop` command a code block shows exists with its options, and the README stays a
landing page."""

from __future__ import annotations

import shlex

import pytest
import typer.main

from api.cli import app
from tests.docs.markdown import ROOT, anchors, code_blocks, links, pages, slug

README_MAX_LINES = 250
SHELL = {"bash", "sh", "shell", "console", ""}


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in links(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved.relative_to(ROOT)}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_slugs_are_githubs():
    assert slug("Evaluation: AlpacaEval") == "evaluation-alpacaeval"
    assert slug("`judge` of kind `openai`") == "judge-of-kind-openai"
    assert slug("The demo, 2026-11-26 to 2026-11-29") == "the-demo-2026-11-26-to-2026-11-29"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def _commands(text: str) -> list[list[str]]:
    """Every `cutloop …` command line in the page's shell blocks, continuations joined."""
    found = []
    for language, body in code_blocks(text):
        if language not in SHELL:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if line.startswith("cutloop "):  # output lines may hold unbalanced quotes
                found.append(shlex.split(line, comments=True))
    return found


def _check(argv: list[str]) -> str | None:
    """Why the command line would fail to parse, or None."""
    command = typer.main.get_command(app)
    words = argv[1:]
    while hasattr(command, "commands") and words and not words[0].startswith("-"):
        if words[0] not in command.commands:
            return f"no command {words[0]!r}"
        command, words = command.commands[words[0]], words[1:]
    options = {opt for param in command.params for opt in param.opts} | {"--help"}
    unknown = [w for w in words if w.startswith("--") and w.split("=")[0] not in options]
    return f"no option {unknown[0]}" if unknown else None


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_every_command_shown_exists(page):
    problems = [f"{' '.join(argv)}: {why}" for argv in _commands(page.read_text())
                if (why := _check(argv))]  # fmt: skip
    assert not problems, f"{page.name}: " + "; ".join(problems)


def test_the_command_check_refuses_what_the_cli_lacks():
    assert _check(["cutloop", "config", "reference", "-o", "x.md"]) is None
    assert _check(["cutloop", "serve", "--port", "8001"]) is None
    assert _check(["cutloop", "config", "nothing"]) == "no command 'nothing'"
    assert _check(["cutloop", "run", "x.yaml", "--fast"]) == "no option --fast"


def test_the_readme_is_a_landing_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    assert _commands("\n".join(lines)), "the README shows no cutloop command"
