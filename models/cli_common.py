"""What both command lines (`momke` and `momke-live`) do the same way: --version, usage errors
in one line, output that survives a closed pipe, and path checks that name the real problem.

Standard library only: `--help`, `--version` and usage errors must answer before torch loads.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class UsageProblem(ValueError):
    """A problem the user fixes by changing the command line (exit code 2)."""


def version() -> str:
    """The installed distribution's version, else the source checkout's pyproject.toml, else
    "unknown" (a build run from its folder has neither)."""
    from importlib import metadata

    try:
        return metadata.version("momke-live")
    except metadata.PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
        except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
            return "unknown"


class VersionAction(argparse.Action):
    """--version: prints "PROG VERSION", looked up only when asked for (metadata costs start-up time)."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        say(f"{parser.prog.split()[0]} {version()}")
        parser.exit()


class OneLineErrorParser(argparse.ArgumentParser):
    """A usage error is one line on stderr (exit 2), not the whole usage block above it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def discard_stdout() -> None:
    """The reader closed stdout: send what is left (and Python's flush at exit) to /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # no real stdout (embedded, tests)
        pass


def say(text: str) -> None:
    """Print a result line. If the reader has gone (`| head -1`), the work goes on regardless:
    a checkpoint or report still gets written."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        discard_stdout()


def _named(flag: str, path: Path) -> str:
    return f"{flag}: {path}" if flag else str(path)


def check_file(flag: str, path: Path, what: str) -> None:
    """An input file: not a directory, and there."""
    if path.is_dir():
        raise UsageProblem(f"{_named(flag, path)} is a directory; give {what}")
    if not path.is_file():
        raise UsageProblem(f"{_named(flag, path)} does not exist")


def check_folder(flag: str, path: Path, what: str) -> None:
    """An input folder: not a file, and there."""
    if path.exists() and not path.is_dir():
        raise UsageProblem(f"{_named(flag, path)} is a file; give {what}")
    if not path.is_dir():
        raise UsageProblem(f"{_named(flag, path)} does not exist")


def _check_parents(flag: str, path: Path) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageProblem(f"{_named(flag, parent)} is a file, not a folder")
            return


def check_output_file(flag: str, path: Path, example: str, overwrite: bool | None = None) -> None:
    """A file to write: refuse a directory (or a file in place of a folder above it) now, before
    minutes of work. overwrite=False also refuses an existing file (None: appending is fine)."""
    if path.is_dir():
        raise UsageProblem(f"{_named(flag, path)} is a directory; give a file name, e.g. {path / example}")
    _check_parents(flag, path)
    if overwrite is False and path.exists():
        raise UsageProblem(f"{_named(flag, path)} already exists; add --overwrite to replace it")


def check_output_folder(flag: str, path: Path, overwrite: bool) -> None:
    """A folder to write: not a file, and (unless --overwrite, or a command that resumes what is
    there) new or empty, so nothing is replaced."""
    if path.exists() and not path.is_dir():
        raise UsageProblem(f"{_named(flag, path)} is a file, not a folder")
    _check_parents(flag, path)
    if not overwrite and path.is_dir() and any(path.iterdir()):
        raise UsageProblem(f"{_named(flag, path)} already exists and is not empty; give a new folder, "
                           "or add --overwrite to replace what it holds")
