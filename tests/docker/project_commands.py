"""Checks that a container command names things this project has: the ``masksem`` console
script and its sub-commands, Python modules and copied scripts, ROS 2 packages, launch files
and launch arguments. Each check returns problems as sentences; an empty list means it resolves.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import typer

from tests.docker.deployment_files import REPO_ROOT

ROS_SOURCES = REPO_ROOT / "ros2_ws" / "src"
PYTHONS = frozenset({"python", "python3"})


def _console_scripts() -> dict[str, str]:
    """The console scripts of the installed masksem distribution (from pyproject.toml)."""
    try:
        entry_points = distribution("masksem").entry_points
    except PackageNotFoundError:
        return {}
    return {ep.name: ep.value for ep in entry_points if ep.group == "console_scripts"}


def _module_file(module: str) -> Path | None:
    base = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__main__.py"):
        if candidate.is_file():
            return candidate
    return None


def _masksem_subcommands() -> set[str]:
    from masksem.cli import app

    group = typer.main.get_command(app)
    return set(getattr(group, "commands", {}))


def _masksem_args(args: list[str], where: str) -> list[str]:
    """``args`` after ``masksem``: the first that is not an option must be a sub-command."""
    words = [arg for arg in args if not arg.startswith("-")]
    if not words:
        return []
    known = _masksem_subcommands()
    if words[0] in known:
        return []
    return [f"{where}: `masksem {words[0]}` is no sub-command of masksem.cli (has {sorted(known)})"]


def _python_module(module: str, args: list[str], where: str) -> list[str]:
    if _module_file(module) is None:
        return [f"{where}: module {module} is not in the repository"]
    if module in {"masksem", "masksem.cli"}:
        return _masksem_args(args, where)
    return []


def _copied_script(path: str, image_files: Mapping[str, Path], where: str) -> list[str]:
    source = image_files.get(path)
    if source is None:
        return [f"{where}: {path} is not a file the image copies from the repository"]
    if not source.is_file():
        return [f"{where}: {path} is copied from {source}, which does not exist"]
    return []


def _torchrun(args: list[str], where: str) -> list[str]:
    as_module = False
    for index, arg in enumerate(args):
        if arg in {"-m", "--module"}:
            as_module = True
        elif arg.startswith("-"):
            continue  # torchrun options, written --name=value
        else:
            rest = args[index + 1 :]
            if as_module:
                return _python_module(arg, rest, where)
            return [f"{where}: torchrun runs a script path {arg}; use -m with a module"]
    return [f"{where}: torchrun names no module to run"]


def _launch_arguments(launch_file: Path) -> set[str]:
    text = launch_file.read_text(encoding="utf-8")
    return set(re.findall(r"DeclareLaunchArgument\(\s*[\"']([^\"']+)[\"']", text))


def _console_entry_points(package_dir: Path) -> set[str]:
    text = (package_dir / "setup.py").read_text(encoding="utf-8")
    return set(re.findall(r"[\"']\s*([\w-]+)\s*=\s*[\w.]+:\w+\s*[\"']", text))


def _ros2(args: list[str], where: str) -> list[str]:
    if len(args) < 3 or args[0] not in {"launch", "run"}:
        return [f"{where}: expected `ros2 launch|run <package> <file|executable>`, got {args}"]
    verb, package, target, *rest = args
    package_dir = ROS_SOURCES / package
    if not (package_dir / "package.xml").is_file():
        return [f"{where}: ROS 2 package {package} is not in {ROS_SOURCES}"]
    if verb == "run":
        if target not in _console_entry_points(package_dir):
            return [f"{where}: {package}/setup.py installs no executable {target}"]
        return []
    launch_file = package_dir / "launch" / target
    if not launch_file.is_file():
        return [f"{where}: launch file {launch_file} does not exist"]
    declared = _launch_arguments(launch_file)
    problems = []
    for arg in rest:
        name, sep, _ = arg.partition(":=")
        if sep and name not in declared:
            problems.append(f"{where}: {target} declares no launch argument {name!r}")
    return problems


def command_problems(argv: list[str], image_files: Mapping[str, Path], where: str) -> list[str]:
    """Why ``argv`` (ENTRYPOINT + CMD, exec form) would not find its program in the project."""
    if not argv:
        return [f"{where}: empty command"]
    program, args = argv[0], argv[1:]
    if program.startswith("/"):
        problems = _copied_script(program, image_files, where)
        source = image_files.get(program)
        if problems or source is None:
            return problems
        if not os.access(source, os.X_OK):
            return [f"{where}: {source} is not executable (chmod +x, and commit the mode)"]
        if 'exec "$@"' in source.read_text(encoding="utf-8"):
            return command_problems(args, image_files, where) if args else []
        return []
    if program in PYTHONS:
        if args[:1] == ["-m"] and len(args) > 1:
            return _python_module(args[1], args[2:], where)
        if args and args[0].startswith("/"):
            return _copied_script(args[0], image_files, where)
        return [f"{where}: {program} runs neither -m <module> nor a copied script: {args}"]
    if program == "masksem":
        target = _console_scripts().get("masksem")
        if target is None:
            return [f"{where}: the installed masksem distribution has no `masksem` script"]
        module = target.partition(":")[0]
        if _module_file(module) is None:
            return [f"{where}: masksem points at {target}, whose module is not in the repository"]
        return _masksem_args(args, where)
    if program == "torchrun":
        return _torchrun(args, where)
    if program == "ros2":
        return _ros2(args, where)
    return [f"{where}: unknown program {program!r}; teach tests/docker/project_commands.py"]
