"""python -m bench {run,status,report,check,evaluate,evaluate-model,speed,datasets,campaign}: argument
parsing and one-line errors.

Exit codes: 0 success; 1 a run failed (its folder says why) or a check failed; 2 bad input, an
unusable path or a refused checkpoint (nothing written), or a write the disk refused (the previous
file is kept); 128 + the signal number when SIGINT/SIGTERM stopped a run after a checkpoint.
Heavy imports (torch) happen inside the commands that need them.
"""
from __future__ import annotations

import errno
import importlib.metadata
import re
import sys

from bench.cli import (campaign, check, datasets, evaluate, evaluate_model, report, run, speed,
                       status)
from bench.cli.arguments import Parser
from bench.errors import InputError, RunFailed
from bench.terminal import printable

# The oldest torch bench runs on (requirements.txt says the same): checkpoints are loaded with
# weights_only=True, which older releases let a crafted file bypass (before 2.6) or corrupt memory
# with (before 2.10), and a results folder may come from someone else.
MINIMUM_TORCH = (2, 10)


def torch_refusal(version: str | None) -> str | None:
    """The one line refusing ``version`` of torch (None: not installed), or None when it is new
    enough."""
    if version is None:
        return "torch is not installed: pip install -r requirements.txt -c constraints.txt"
    numbers = re.match(r"(\d+)\.(\d+)", version)
    if numbers is None or tuple(map(int, numbers.groups())) < MINIMUM_TORCH:
        return (f"torch {version} is older than {'.'.join(map(str, MINIMUM_TORCH))}, whose safe "
                "loading of checkpoints bench relies on: pip install -r requirements.txt "
                "-c constraints.txt")
    return None


def installed_torch() -> str | None:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def open_file_limit() -> int:
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def parser() -> Parser:
    root = Parser(prog="bench", description="Weakly supervised disentanglement benchmark.")
    commands = root.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in (run, datasets, status, report, check, evaluate, evaluate_model, speed,
                    campaign):
        command.add(commands)
    return root


# Writes the file system refused (the atomic writes in bench/store/results.py keep the previous file).
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    refusal = torch_refusal(installed_torch())
    if refusal is not None:
        print(f"bench: error: {refusal}", file=sys.stderr)
        return 2
    try:
        return args.handler(args)
    except InputError as error:  # messages may quote a results folder's files: shown escaped
        print(printable(f"bench: error: {error}"), file=sys.stderr)
        return 2
    except RunFailed as error:
        print(printable(f"bench: error: {error}"), file=sys.stderr)
        return 1
    except OSError as error:
        if error.errno in (errno.EMFILE, errno.ENFILE):
            print(f"bench: error: {error.strerror}: this process may open "
                  f"{open_file_limit()} files; raise the limit (ulimit -n) or give fewer runs "
                  "(files already written are unchanged)", file=sys.stderr)
            return 2
        if error.errno not in DISK_ERRORS:
            raise
        print(printable(f"bench: error: {error} (files already written are unchanged)"),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
