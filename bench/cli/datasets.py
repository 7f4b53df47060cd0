"""`bench datasets`: the datasets, where their data is and how to get it."""
from __future__ import annotations

from pathlib import Path

from bench.cli.arguments import DATA_DIR_ENV, UsageError, data_dir


def command_datasets(args) -> int:
    """One block per dataset: what it is, whether its data is present and where, how to get it;
    with --download, fetch, check and unpack a dataset's published files instead."""
    from datasets import DATASETS, DataError
    root = data_dir(args.data_dir)
    if args.download is not None:
        from datasets.download import download
        try:
            download(args.download, root)
        except DataError as error:
            raise UsageError(str(error)) from None
        return 0
    for name, source in DATASETS.items():
        found = source.locate(root)
        print(f"{name}: {source.summary}")
        print(f"  data: {'present, ' + str(found) if found is not None else 'absent'}")
        if found is None:
            print(f"  get it: {source.how_to_get}")
    return 0


def add(commands) -> None:
    """The `datasets` command's arguments."""
    listing = commands.add_parser("datasets", help="list the datasets, where their data is, "
                                                   "and how to get what is missing")
    listing.add_argument("--data-dir", type=Path,
                         help=f"data root to look in (default: ${DATA_DIR_ENV}, else each "
                              "dataset's default place)")
    listing.add_argument("--download", metavar="NAME|all",
                         help="fetch NAME's published files (or every dataset's), check them and "
                              "unpack them where the loader looks (docs/datasets.md)")
    listing.set_defaults(handler=command_datasets)
