"""Reads a Dockerfile into stages of instructions, so tests can check what an image copies,
sets and runs. Covers the syntax docker/ uses: line continuations, comments, flags, JSON forms.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_FLAG = re.compile(r"--([a-z-]+)(?:=(\S*))?\s+")


class DockerfileSyntaxError(ValueError):
    """A Dockerfile line this reader does not understand; names the file and line."""


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, COPY, RUN, ...
    flags: dict[str, str]  # --from=build -> {"from": "build"}
    args: str  # what follows the flags, continuation lines joined
    line: int  # 1-based line where the instruction starts

    def exec_form(self) -> list[str] | None:
        """The JSON array form (``CMD ["a", "b"]``) as a list, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            raise DockerfileSyntaxError(f"line {self.line}: {self.keyword} is not a string array")
        return value

    def copy_sources_and_destination(self) -> tuple[list[str], str]:
        """COPY/ADD: the sources and the destination."""
        parts = self.exec_form() or shlex.split(self.args)
        if len(parts) < 2:
            raise DockerfileSyntaxError(f"line {self.line}: {self.keyword} needs a destination")
        return parts[:-1], parts[-1]

    def env_pairs(self) -> dict[str, str]:
        """ENV/ARG: name -> value as written (quotes removed, ``$VAR`` not yet expanded)."""
        tokens = shlex.split(self.args, posix=True)
        if self.keyword == "ENV" and tokens and "=" not in tokens[0]:
            return {tokens[0]: " ".join(tokens[1:])}  # legacy ``ENV NAME value``
        pairs: dict[str, str] = {}
        for token in tokens:
            name, _, value = token.partition("=")
            pairs[name] = value
        return pairs


@dataclass
class Stage:
    base: str  # image or earlier stage name
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, keyword: str) -> list[Instruction]:
        return [ins for ins in self.instructions if ins.keyword == keyword]


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"{self.path}: no stage named {name!r}")

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def lineage(self, stage: Stage) -> list[Stage]:
        """``stage`` and the stages it is built FROM, base first."""
        chain = [stage]
        names = {s.name: s for s in self.stages if s.name}
        while chain[0].base in names:
            chain.insert(0, names[chain[0].base])
        return chain

    def environment(
        self,
        stage: Stage,
        outer: dict[str, str],
        rewrite: Callable[[str], str] = lambda value: value,
    ) -> dict[str, str]:
        """Variables set by ENV along ``stage``'s lineage, expanded over ``outer`` like Docker;
        ``rewrite`` edits each value as written, before expansion."""
        env = dict(outer)
        for part in self.lineage(stage):
            for ins in part.of("ENV"):
                for name, value in ins.env_pairs().items():
                    env[name] = string.Template(rewrite(value)).safe_substitute(env)
        return env

    def copied_files(
        self, stage: Stage, context: Path, ignored: Callable[[str], bool]
    ) -> list[tuple[Path, str]]:
        """(file in ``context``, absolute path in the image) for every file that COPY/ADD
        bring from the build context into ``stage`` and the stages below it."""
        out: list[tuple[Path, str]] = []
        workdir = "/"
        for part in self.lineage(stage):
            for ins in part.instructions:
                if ins.keyword == "WORKDIR":
                    workdir = posixpath.join(workdir, ins.args.strip())
                elif ins.keyword in {"COPY", "ADD"} and "from" not in ins.flags:
                    out += _expand_copy(ins, workdir, context, ignored)
        return out


def context_matches(source: str, context: Path) -> list[Path]:
    """The paths in ``context`` that one COPY source names (a path or a glob)."""
    source = source.rstrip("/") or "."
    if any(char in source for char in "*?["):
        return sorted(context.glob(source))
    path = context / source
    return [path] if path.exists() else []


def _expand_copy(
    ins: Instruction, workdir: str, context: Path, ignored: Callable[[str], bool]
) -> list[tuple[Path, str]]:
    sources, written_dest = ins.copy_sources_and_destination()
    dest = posixpath.join(workdir, written_dest)
    matches = [path for source in sources for path in context_matches(source, context)]
    into_folder = written_dest.endswith("/") or len(matches) > 1
    out: list[tuple[Path, str]] = []
    for match in matches:
        if match.is_dir():
            for file in sorted(p for p in match.rglob("*") if p.is_file()):
                relative = file.relative_to(context).as_posix()
                if not ignored(relative):
                    out.append((file, posixpath.join(dest, file.relative_to(match).as_posix())))
        elif not ignored(match.relative_to(context).as_posix()):
            out.append((match, posixpath.join(dest, match.name) if into_folder else dest))
    return out


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Instructions with continuations joined; comment lines dropped, as Docker does."""
    out: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if not current:
            start = number
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        out.append((start, " ".join(part for part in current if part)))
        current = []
    if current:
        raise DockerfileSyntaxError(f"line {start}: continuation runs past the end of the file")
    return out


def _split_flags(rest: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    rest = rest + " "
    while match := _FLAG.match(rest):
        flags[match.group(1)] = match.group(2) or ""
        rest = rest[match.end() :]
    return flags, rest.strip()


def parse_dockerfile(path: Path) -> Dockerfile:
    stages: list[Stage] = []
    for line, text in _logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        flags, args = _split_flags(rest)
        if "<<" in args and keyword in {"RUN", "COPY"}:
            raise DockerfileSyntaxError(f"{path}:{line}: heredocs are not supported here")
        instruction = Instruction(keyword, flags, args, line)
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
            continue
        if not stages:
            if keyword != "ARG":
                raise DockerfileSyntaxError(f"{path}:{line}: {keyword} before the first FROM")
            continue
        stages[-1].instructions.append(instruction)
    if not stages:
        raise DockerfileSyntaxError(f"{path}: no FROM")
    return Dockerfile(path, stages)


def healthcheck_command(stage: Stage) -> list[str] | None:
    """The exec-form command of the stage's HEALTHCHECK, or None when it has none."""
    for ins in stage.of("HEALTHCHECK"):
        keyword, _, rest = ins.args.partition(" ")
        if keyword.upper() == "CMD":
            return Instruction("CMD", {}, rest, ins.line).exec_form()
    return None
