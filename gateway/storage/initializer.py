"""`gateway storage-initializer URI DEST [-- COMMAND...]`: what an init container runs, as KServe's storage
initializer does, and what the local backend runs before a SimpleMLService's own command.

With a DEST folder, the model is fetched through the cache (a `.serving-gateway-cache` folder inside DEST, removed
when the fetch is done or has failed) and its files are then moved to the top of DEST, where the model server
reads them; a marker records the URI fetched, so a second run for the same URI does nothing. Both names start
with `.serving-gateway-`, which a model's own top-level files may not (refused, naming the file). With DEST
`-`, the model stays in the cache ($SERVING_GATEWAY_STATE_DIR/models, as for `gateway modelserver`).
A COMMAND after `--` is then run in this process's place, with MODEL_PATH naming the model (its folder
when downloaded; a local path as it is), in its environment and for `$(MODEL_PATH)` in its arguments.
Credentials: the environment, overlaid by a mounted secret (`--secret-dir`) or by Secret `--secret NAME`
of the secrets file $SERVING_GATEWAY_SECRETS_FILE names (GatewayConfig spec.secretsFile).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping

from .archives import remove
from .cache import default_cache_dir, fetch
from .errors import StorageError
from .limits import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, MAX_BYTES_ENV, TIMEOUT_ENV
from .secrets import read_secret_dir, secret_credentials
from .uris import parse, redact

RESERVED = ".serving-gateway-"  # the initializer's own names in DEST start with it; a model's may not
MARKER = f"{RESERVED}model"
CACHE = f"{RESERVED}cache"
IN_CACHE = "-"
SECRETS_FILE_ENV = "SERVING_GATEWAY_SECRETS_FILE"
MODEL_PATH_ENV = "MODEL_PATH"


def initialize(uri: str, dest: str, env: Mapping[str, str], max_bytes: int | None = None, timeout: float | None = None) -> None:
    """Put the model `uri` names into `dest`; StorageError naming the URI when it cannot."""
    os.makedirs(dest, exist_ok=True)
    marker = os.path.join(dest, MARKER)
    if os.path.isfile(marker) and open(marker, encoding="utf-8").read() == uri:
        return
    parsed = parse(uri)
    cache = os.path.join(dest, CACHE)
    try:
        fetched = fetch(uri, cache, env, max_bytes=max_bytes, timeout=timeout)
        _check_names(redact(uri), fetched)
    except StorageError:
        remove(cache)  # nothing of a failed fetch or a refused model is left in DEST
        raise
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


def _check_names(uri: str, fetched: str) -> None:
    names = os.listdir(fetched) if os.path.isdir(fetched) else [os.path.basename(fetched)]
    taken = sorted(name for name in names if name.startswith(RESERVED))
    if taken:
        raise StorageError(
            f"{uri}: the model has a top-level file {taken[0]!r}: names starting with {RESERVED!r} are the storage "
            "initializer's own in DEST"
        )


def _copy_local(source: str, dest: str) -> None:
    if os.path.isdir(source):
        shutil.copytree(source, dest, dirs_exist_ok=True, symlinks=True)
    else:
        shutil.copy2(source, dest)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uri", help="storage URI: s3://, gs://, http(s)://, file:// or a path")
    parser.add_argument("dest", help="folder to put the model in (/mnt/models in a pod); - keeps it in the cache")
    parser.add_argument(
        "then",  # not `command`: the gateway's own parser keeps the subcommand's name there
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND",
        help="a command to run once the model is there, with MODEL_PATH naming its folder",
    )
    parser.add_argument("--secret-dir", metavar="DIR", help="a mounted secret with AWS_* keys or an s3cmd .s3cfg")
    parser.add_argument("--secret", metavar="NAME", help=f"a Secret in the secrets file ${SECRETS_FILE_ENV} names")
    parser.add_argument(
        "--max-bytes",
        type=_byte_count,
        metavar="N",
        help=f"most bytes a model may take, downloaded or unpacked (default ${MAX_BYTES_ENV}, else {DEFAULT_MAX_BYTES})",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help=f"deadline for the whole download (default ${TIMEOUT_ENV}, else {DEFAULT_TIMEOUT:g})",
    )


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return seconds


def _byte_count(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a number of bytes >= 1, got {text!r}")
    return int(text)


def _environment(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    if args.secret_dir:
        env.update(read_secret_dir(args.secret_dir))
    if args.secret:
        path = env.get(SECRETS_FILE_ENV)
        if not path:
            raise StorageError(
                f"secret {args.secret!r} named but ${SECRETS_FILE_ENV} is not set (GatewayConfig spec.secretsFile)"
            )
        env.update(secret_credentials(path, args.secret))
    return env


def _fail(uri: str, message: str) -> int:
    shown = redact(uri)
    print(f"gateway storage-initializer: error: {message if shown in message else f'{shown}: {message}'}", file=sys.stderr)
    return 1


def _odd_arguments(uri: str, dest: str) -> str | None:
    """What makes URI DEST unusable before anything is fetched or copied: a URI that is none, a DEST that is
    a file, a local source that DEST is, or holds (it would be copied into itself)."""
    try:
        parsed = parse(uri)
    except (StorageError, ValueError) as exc:
        return f"{uri!r} is not a storage URI: {exc}" if uri not in str(exc) else str(exc)
    if dest == IN_CACHE:
        return None
    if os.path.exists(dest) and not os.path.isdir(dest):
        return f"DEST {dest} exists and is not a folder"
    if not parsed.remote and parsed.path:
        source, target = os.path.realpath(parsed.path), os.path.realpath(dest)
        if target == source:
            return f"DEST {dest} is the source {uri} itself"
        if os.path.isdir(source) and os.path.commonpath([source, target]) == source:
            return f"DEST {dest} is inside the source {uri}: it would be copied into itself"
    return None


def main_from_args(args: argparse.Namespace) -> int:
    """Fetch, printing one line naming the URI and the error on failure (exit status 1); then run the
    command, if one is given, in this process's place."""
    command = list(args.then)
    if command and command[0] == "--":  # argparse keeps it in some forms, drops it in others
        command.pop(0)
    elif command and command[0].startswith("-"):
        print(f"gateway storage-initializer: error: options go before URI, got {command[0]} after DEST", file=sys.stderr)
        return 2
    problem = _odd_arguments(args.uri, args.dest)
    if problem is not None:
        print(f"gateway storage-initializer: error: {problem}", file=sys.stderr)
        return 2
    try:
        env = _environment(args)
        if args.dest == IN_CACHE:
            where = fetch(args.uri, default_cache_dir(env), env, max_bytes=args.max_bytes, timeout=args.timeout)
        else:
            initialize(args.uri, args.dest, env, args.max_bytes, args.timeout)
            where = os.path.abspath(args.dest)
    except StorageError as exc:
        return _fail(args.uri, str(exc))
    print(f"gateway storage-initializer: {redact(args.uri)} is in {where}", file=sys.stderr)
    if not command:
        return 0
    os.environ[MODEL_PATH_ENV] = where
    command = [arg.replace(f"$({MODEL_PATH_ENV})", where) for arg in command]  # as the kubelet would, had it known
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"gateway storage-initializer: error: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
