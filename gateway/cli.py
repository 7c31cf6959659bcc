"""The `gateway` command: serve, validate, status, modelserver, storage-initializer, simulate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.config import ConfigError, load, routing_table

log = logging.getLogger("gateway")


def _paths_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--file",
        dest="files",
        action="append",
        required=True,
        metavar="PATH",
        help="YAML file (multi-document) or folder of them; repeatable",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        metavar="NAME",
        help="namespace of the documents that give none (default: default), as `kubectl apply -n`; "
        "a document giving another one is an error",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Serving Gateway: Host routing, canary split, scale from zero.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    _paths_arg(serve)
    serve.add_argument("--listen", metavar="HOST:PORT", help="data plane address (default from config, 0.0.0.0:8080)")
    serve.add_argument("--admin-listen", metavar="HOST:PORT", help="admin address (default from config, 127.0.0.1:9090)")
    serve.add_argument(
        "--state-dir",
        metavar="DIR",
        help="replica logs, pid records and a lock (default ~/.local/state/serving-gateway/HOST-PORT of --listen)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--workers",
        default="1",
        metavar="N|auto",
        help="data-plane processes sharing the listen port (auto: one per CPU; default 1, a single process)",
    )

    validate = sub.add_parser("validate", help="check config files and print the routing table")
    _paths_arg(validate)

    status = sub.add_parser("status", help="print every revision's traffic, replicas and load")
    status.add_argument(
        "--admin", default="127.0.0.1:9090", metavar="HOST:PORT", help="the gateway's admin address (default %(default)s)"
    )

    from gateway.modelserver.server import add_arguments

    model = sub.add_parser("modelserver", help="serve an ONNX, scikit-learn or XGBoost model over KServe's V1 and V2 protocols")
    add_arguments(model)

    from gateway.storage.initializer import add_arguments as add_initializer_arguments

    initializer = sub.add_parser(
        "storage-initializer",
        help="download a model into a folder (what a revision's init container runs under kubernetes)",
    )
    add_initializer_arguments(initializer)

    from gateway.simulate.cli import add_arguments as simulate_arguments

    simulate = sub.add_parser("simulate", help="replay a traffic trace through the autoscaler on a simulated clock")
    simulate_arguments(simulate)
    return parser


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `gateway validate ... | head`: the reader left; that is not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["worker"]:  # started by `serve --workers N`, not by users: left out of the help
        from gateway.workers.worker import main as worker_main

        return worker_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        from gateway.workers.supervisor import parse_workers

        try:
            args.workers = parse_workers(args.workers)
        except ValueError as exc:
            parser.error(str(exc))
    if args.command == "validate":
        return validate(args.files, args.namespace)
    if args.command == "serve":
        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return serve(args)
    if args.command == "status":
        from gateway.status import print_status

        return print_status(args.admin)
    if args.command == "storage-initializer":
        from gateway.storage.initializer import main_from_args as initialize

        return initialize(args)
    if args.command == "simulate":
        from gateway.simulate.cli import main_from_args as simulate

        return simulate(args)
    from gateway.modelserver.server import main_from_args

    return main_from_args(args)


def validate(files: list[str], namespace: str | None = None) -> int:
    try:
        config = load(files, namespace=namespace)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        for warning in exc.warnings:  # a typo's "did you mean" may be what explains the error
            print(f"warning: {warning}", file=sys.stderr)
        return 1
    print(routing_table(config))
    return 0


def serve(args: argparse.Namespace) -> int:
    try:
        config = load(args.files, namespace=args.namespace)
    except ConfigError as exc:
        first, *rest = exc.problems or [str(exc)]
        print(f"gateway: cannot start: {first}", file=sys.stderr)
        for problem in rest:
            print(f"  {problem}", file=sys.stderr)
        for warning in exc.warnings:
            print(f"  warning: {warning}", file=sys.stderr)
        return 1
    for warning in config.warnings:
        log.warning("%s", warning)
    from gateway.resources import raise_fd_limit

    raise_fd_limit()  # before the listener derives spec.proxy.maxConnections from it
    try:
        import uvloop

        return uvloop.run(_serve(config, args))
    except KeyboardInterrupt:
        return 0


async def _serve(config: object, args: argparse.Namespace) -> int:
    from gateway.admin import admin_server
    from gateway.app import Gateway, default_state_dir
    from gateway.config.addresses import split_hostport
    from gateway.errors import GatewayError

    assert hasattr(config, "gateway")
    listen = args.listen or config.gateway.listen
    try:
        # Both addresses are checked before anything is bound or started.
        split_hostport(listen, "listen")
        admin_host, admin_port = split_hostport(args.admin_listen or config.gateway.admin_listen, "admin listen")
    except ValueError as exc:
        print(f"gateway: cannot start: {exc}", file=sys.stderr)
        return 1
    state_dir = args.state_dir or config.gateway.state_dir or default_state_dir(listen)
    if args.workers > 1:
        from gateway.workers.supervisor import Supervisor

        gw: Gateway = Supervisor(config, args.files, state_dir=state_dir, workers=args.workers, log_level=args.log_level)  # type: ignore[arg-type]
    else:
        gw = Gateway(config, args.files, state_dir=state_dir)  # type: ignore[arg-type]
    try:
        admin_sock = bind_socket(admin_host, admin_port)
        await gw.start(listen=listen)
    except (OSError, ValueError, GatewayError) as exc:
        print(f"gateway: cannot start: {exc}", file=sys.stderr)
        await gw.stop(drain_timeout=0)
        return 1
    admin = admin_server(gw, admin_host, admin_port)
    admin_task = asyncio.create_task(admin.serve(sockets=[admin_sock]))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    reloads: set[asyncio.Task[object]] = set()

    def reload() -> None:
        task: asyncio.Task[object] = loop.create_task(gw.reloader.request("SIGHUP"))  # logs its outcome
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    listen = ", ".join(f"{h}:{p}" for h, p in gw.proxy.sockets)
    log.info(
        "serving %d services on %s (admin %s:%d), at most %d client connections%s",
        len(gw.config.services),
        listen,
        admin_host,
        admin_port,
        gw.proxy.max_connections,
        f" per worker, {args.workers} workers" if args.workers > 1 else "",
    )
    stop_wait = asyncio.create_task(stop.wait())
    await asyncio.wait([stop_wait, admin_task], return_when=asyncio.FIRST_COMPLETED)
    if admin_task.done() and not stop.is_set():
        print(f"gateway: admin listener on {admin_host}:{admin_port} stopped unexpectedly", file=sys.stderr)
        stop_wait.cancel()
        await gw.stop(drain_timeout=0)
        return 1
    log.info("draining")
    await gw.stop()
    admin.should_exit = True
    await admin_task
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
