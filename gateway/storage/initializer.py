"""`gateway storage-initializer URI DEST`: what an init container runs, as KServe's storage initializer does.

The model is fetched through the cache (a `.cache` folder inside DEST, so a restarted init container
resumes cleanly) and its files are then moved to the top of DEST, where the model server reads them. A
marker records the URI fetched: a second run for the same URI does nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping

from .archives import remove
from .cache import fetch
from .errors import StorageError
from .secrets import read_secret_dir
from .uris import parse

MARKER = ".serving-gateway-model"
CACHE = ".cache"


def initialize(uri: str, dest: str, env: Mapping[str, str]) -> None:
    """Put the model `uri` names into `dest`; StorageError naming the URI when it cannot."""
    os.makedirs(dest, exist_ok=True)
    marker = os.path.join(dest, MARKER)
    if os.path.isfile(marker) and open(marker, encoding="utf-8").read() == uri:
        return
    parsed = parse(uri)
    cache = os.path.join(dest, CACHE)
    fetched = fetch(uri, cache, env)
    if not parsed.remote:
        _copy_local(fetched, dest)
    else:
        for name in os.listdir(fetched):
            target = os.path.join(dest, name)
            remove(target)
            os.rename(os.path.join(fetched, name), target)
        remove(cache)
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write(uri)


def _copy_local(source: str, dest: str) -> None:
    if os.path.isdir(source):
        shutil.copytree(source, dest, dirs_exist_ok=True, symlinks=True)
    else:
        shutil.copy2(source, dest)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uri", help="storage URI: s3://, gs://, http(s)://, file:// or a path")
    parser.add_argument("dest", help="folder to put the model in (/mnt/models in a pod)")
    parser.add_argument("--secret-dir", metavar="DIR", help="a mounted secret with AWS_* keys or an s3cmd .s3cfg")


def main_from_args(args: argparse.Namespace) -> int:
    """Fetch, printing one line naming the URI and the error on failure (exit status 1)."""
    try:
        env = dict(os.environ)
        if args.secret_dir:
            env.update(read_secret_dir(args.secret_dir))
        initialize(args.uri, args.dest, env)
    except StorageError as exc:
        message = str(exc)
        print(
            f"gateway storage-initializer: error: {message if args.uri in message else f'{args.uri}: {message}'}", file=sys.stderr
        )
        return 1
    print(f"gateway storage-initializer: {args.uri} is in {args.dest}", file=sys.stderr)
    return 0
