"""Read tahoe.cfg text into raw (section, key) -> (value, line) entries, pure.

How this works: the INI dialect Tahoe-LAFS 1.20 reads (Python's configparser with
strict=False, from UTF-8 with an optional byte order mark): `key = value` or `key: value`,
`#` and `;` comment lines, values that continue on indented lines, keys in any case
(entries are keyed by the lower-cased key; `Entry.name` keeps it as written), a repeated
key or section adds to the first (the last value wins). Problems that make a line
meaningless (a key before any section, a line with no `=` or `:`) are collected, not
raised, so the caller can report every problem at once.
"""

from __future__ import annotations

import re

import attrs

_SECTION = re.compile(r"\[\s*([^\]]+?)\s*\]\s*(?:[#;].*)?")
_ENTRY = re.compile(r"([^=:\s][^=:]*?)\s*[=:]\s*(.*)")


@attrs.frozen
class Entry:
    section: str
    key: str  # lower-cased, as Tahoe's configparser keys them
    value: str
    line: int
    name: str = ""  # the key as written


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
        entry = self.entries.get((section, key.lower()))
        return entry.value if entry is not None else None


def read_config(text: str) -> RawConfig:
    entries: dict[tuple[str, str], Entry] = {}
    sections: list[str] = []
    problems: list[ReadProblem] = []
    section: str | None = None
    last: Entry | None = None
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
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
            if section not in sections:
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
        name, value = match.group(1), match.group(2).strip()
        last = Entry(section, name.lower(), value, number, name)  # a repeat: the last wins
        entries[(section, last.key)] = last
    return RawConfig(entries, tuple(sections), tuple(problems))
