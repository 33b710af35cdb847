"""Every ``otelpower ...`` command the docs show parses with the real command line, so a
renamed flag or a syntax argparse refuses (``--start -1h``) cannot go stale in the docs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from otelpower import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    "README.md",
    "k8s/README.md",
    "dashboards/README.md",
    "bench/README.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
]
SHELL_FENCES = {"", "sh", "bash", "console"}
_INLINE = re.compile(r"`((?:\.venv/bin/)?otelpower [^`]+)`")
_COMMAND = re.compile(r"^(?:[A-Z_]+=\S+\s+)*(?:\.venv/bin/)?otelpower\s+(.*)$")


def _shell_lines(text: str) -> list[str]:
    """The lines of the shell code blocks (fences paired in order, by their language)."""
    out, fence = [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = stripped[3:].strip() if fence is None else None
        elif fence in SHELL_FENCES:
            out.append(line)
    return out


def _commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        inline = set(_INLINE.findall(text)) - set(_shell_lines(text))
        lines = _shell_lines(text) + sorted(inline)
        for line in lines:
            m = _COMMAND.match(line.strip())
            if m is None:
                continue
            command = m.group(1).split(" #", 1)[0].strip()
            if "[" in command or "|" in command or "..." in command:
                continue  # a synopsis line, not a command
            if " " not in command and line in inline:
                continue  # `otelpower compare` in prose names the command, it runs nothing
            found.append((doc, command))
    return found


COMMANDS = _commands()


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) >= 10, COMMANDS


@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[c for _, c in COMMANDS])
def test_a_documented_command_parses(doc: str, command: str) -> None:
    parser, _ = cli._parser()
    argv = cli.cliargs.join_relative_times(shlex.split(command), {"--start", "--end"})
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{doc}: `otelpower {command}` does not parse (exit {exc.code})")
