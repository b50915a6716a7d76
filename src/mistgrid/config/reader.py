"""Read tahoe.cfg text into raw (section, key) -> (value, line) entries, pure.

How this works: an INI dialect like Tahoe-LAFS's (`key = value`, `#` and `;` comments,
values may continue on indented lines, keys are case-sensitive and keep their dots and
dashes). Problems that make a line meaningless (a key before any section, a line that is
not `key = value`, a repeated key or section) are collected, not raised, so the caller can
report every problem at once.
"""

from __future__ import annotations

import re

import attrs

_SECTION = re.compile(r"\[\s*([^\]]+?)\s*\]\s*(?:[#;].*)?")
_ENTRY = re.compile(r"([^=:\s][^=]*?)\s*=\s?(.*)")


@attrs.frozen
class Entry:
    section: str
    key: str
    value: str
    line: int


@attrs.frozen
class ReadProblem:
    line: int
    text: str
    problem: str


@attrs.frozen
class RawConfig:
    entries: dict[tuple[str, str], Entry]
    sections: tuple[str, ...]
    problems: tuple[ReadProblem, ...]

    def get(self, section: str, key: str) -> str | None:
        entry = self.entries.get((section, key))
        return entry.value if entry is not None else None


def read_config(text: str) -> RawConfig:
    entries: dict[tuple[str, str], Entry] = {}
    sections: list[str] = []
    problems: list[ReadProblem] = []
    section: str | None = None
    last: Entry | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if line[0].isspace() and last is not None:  # continuation of the previous value
            last = attrs.evolve(last, value=(last.value + "\n" + stripped).strip())
            entries[(last.section, last.key)] = last
            continue
        match = _SECTION.fullmatch(stripped)
        if match is not None:
            section = match.group(1)
            if section in sections:
                problems.append(ReadProblem(number, stripped, f"section [{section}] repeated"))
            else:
                sections.append(section)
            last = None
            continue
        match = _ENTRY.fullmatch(stripped)
        if match is None:
            problems.append(ReadProblem(number, stripped, "not a 'key = value' line"))
            last = None
            continue
        if section is None:
            problems.append(ReadProblem(number, stripped, "a key before any [section]"))
            continue
        key, value = match.group(1), match.group(2).strip()
        if (section, key) in entries:
            problems.append(ReadProblem(number, stripped,
                                        f"[{section}] {key} is set twice"))
            continue
        last = Entry(section, key, value, number)
        entries[(section, key)] = last
    return RawConfig(entries, tuple(sections), tuple(problems))
