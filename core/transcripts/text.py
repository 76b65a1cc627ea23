"""The one text form of a call transcript: `[mm:ss] Speaker: what they said`, one speaker turn per line.

Connectors turn their source's payload (Gong monologues, Fireflies sentences) into `Line`s and call `render`;
the cache stores the rendered text and the search reads it back with `parse`. One format for every source keeps
excerpts, the CLI and the prompts the same whatever recorded the call. Pure functions: no I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

_LINE = re.compile(r"^\[(?:(\d+):)?(\d{1,2}):(\d{2})\] (.+?): (.*)$")


@dataclass(frozen=True)
class Line:
    start: float | None     # seconds from the start of the call (None: the source gave no time)
    speaker: str
    text: str


def clock(seconds: float | None) -> str:
    """`[mm:ss]`, or `[h:mm:ss]` past the first hour; `[--:--]` when the time is unknown."""
    if seconds is None or seconds < 0:
        return "[--:--]"
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"[{hours}:{minutes:02d}:{secs:02d}]" if hours else f"[{minutes:02d}:{secs:02d}]"


def merge_turns(lines: Iterable[Line]) -> list[Line]:
    """Consecutive lines of one speaker as one turn (Fireflies sends sentences, Gong splits turns by topic)."""
    out: list[Line] = []
    for line in lines:
        text = " ".join(line.text.split())
        if not text:
            continue
        if out and out[-1].speaker == line.speaker:
            prev = out[-1]
            out[-1] = Line(prev.start if prev.start is not None else line.start, prev.speaker, f"{prev.text} {text}")
        else:
            out.append(Line(line.start, line.speaker, text))
    return out


def render(lines: Iterable[Line]) -> str:
    """The stored transcript text ("" when nothing was said)."""
    return "\n".join(f"{clock(l.start)} {l.speaker}: {l.text}" for l in merge_turns(lines))


def parse(line: str) -> Line | None:
    """One rendered line back into its parts (None for a line not in the format)."""
    m = _LINE.match(line)
    if m is None:
        return None
    hours, minutes, secs = int(m.group(1) or 0), int(m.group(2)), int(m.group(3))
    return Line(float(hours * 3600 + minutes * 60 + secs), m.group(4), m.group(5))


def speaker_label(name: str | None, key: object, unnamed: dict[str, str]) -> str:
    """A speaker's name, or a stable "Speaker N" (in order of first appearance) when the source names nobody."""
    if name and str(name).strip():
        return str(name).strip()
    return unnamed.setdefault(str(key), f"Speaker {len(unnamed) + 1}")
