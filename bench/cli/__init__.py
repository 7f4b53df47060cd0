"""python -m bench {run,status,report,check,evaluate,speed,datasets}: argument parsing and
one-line errors.

Exit codes: 0 success; 1 a run failed (its folder says why) or a check failed; 2 bad input, an
unusable path or a refused checkpoint (nothing written), or a write the disk refused (the previous
file is kept); 128 + the signal number when SIGINT/SIGTERM stopped a run after a checkpoint.
Heavy imports (torch) happen inside the commands that need them.
"""
from __future__ import annotations

import errno
import sys

from bench.cli import check, datasets, evaluate, report, run, speed, status
from bench.cli.arguments import Parser
from bench.errors import InputError, RunFailed


def parser() -> Parser:
    root = Parser(prog="bench", description="Weakly supervised disentanglement benchmark.")
    commands = root.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in (run, datasets, status, report, check, evaluate, speed):
        command.add(commands)
    return root


# Writes the file system refused (the atomic writes in bench/store/results.py keep the previous file).
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    except RunFailed as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        if error.errno not in DISK_ERRORS:
            raise
        print(f"bench: error: {error} (files already written are unchanged)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
