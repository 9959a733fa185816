"""``stephanie serve``: both applications on the embedded defaults (the ``serve`` config section), the newest
model versions, the URLs printed; Ctrl-C (or SIGTERM) shuts Serve down.

:func:`start_serve` is the library side (tests and the benchmark call it on a Ray they started):
nothing to serve (no trained critic, no entity index) or a port already taken is one clear error *before*
Serve starts.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
from typing import Any

from ..config import StephanieConfig
from ..errors import UserError
VERIFIER_APP, ENTITIES_APP = "verifier", "entities"  # = deployments.VERIFIER_APP / ENTITIES_APP (not imported
APPS = (VERIFIER_APP, ENTITIES_APP)                   # here: building the CLI parser must not import Ray)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _serve_running() -> bool:
    """Whether a Serve controller runs on this Ray cluster already (its HTTP options then stay as they are)."""
    try:
        from ray.serve.context import _get_global_client

        return _get_global_client(raise_if_no_controller_running=False) is not None
    except Exception:  # a private API: when it moves, assume none (serve.start then just connects)
        return False


def urls(cfg: StephanieConfig, apps: list[str] | tuple[str, ...] = APPS) -> dict[str, dict[str, str]]:
    s = cfg.serve
    host = "127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host
    base = f"http://{'[' + host + ']' if ':' in host else host}:{s.port}"
    ent = base + s.entities_route_prefix.rstrip("/")
    out: dict[str, dict[str, str]] = {}
    if VERIFIER_APP in apps:
        out[VERIFIER_APP] = {"verify": f"{base}/verify", "healthz": f"{base}/healthz", "docs": f"{base}/docs"}
    if ENTITIES_APP in apps:
        out[ENTITIES_APP] = {"search": f"{ent}/search", "graph": f"{ent}/{{name}}/graph",
                             "healthz": f"{ent}/healthz", "docs": f"{ent}/docs"}
    return out


def start_serve(cfg: StephanieConfig, apps: list[str] | tuple[str, ...] = APPS) -> dict[str, Any]:
    """Start Serve (HTTP on ``serve.host:serve.port``) and deploy ``apps``; return what runs where."""
    from ray import serve

    from ..ray_utils import ensure_ray
    from .deployments import build_entities, build_verifier, check_ready, token_sha256

    bad = [a for a in apps if a not in APPS]
    if bad or not apps:
        raise UserError(f"unknown application {bad[0] if bad else ''!r} (applications: {', '.join(APPS)})")
    serving = check_ready(cfg, list(apps))
    ensure_ray(cfg.ray)
    if not _serve_running():
        if not _port_free(cfg.serve.host, cfg.serve.port):
            raise UserError(f"port {cfg.serve.port} on {cfg.serve.host} is in use (choose another with "
                            "--set serve.port=N)")
        serve.start(http_options={"host": cfg.serve.host, "port": cfg.serve.port,
                                  "request_timeout_s": cfg.serve.request_timeout_s},
                    proxy_location="HeadOnly")
    if VERIFIER_APP in apps:
        serve.run(build_verifier(cfg=cfg), name=VERIFIER_APP, route_prefix="/")
    if ENTITIES_APP in apps:
        serve.run(build_entities(cfg=cfg), name=ENTITIES_APP, route_prefix=cfg.serve.entities_route_prefix)
    return {"urls": urls(cfg, apps), "serving": serving, "host": cfg.serve.host, "port": cfg.serve.port,
            "token_required": bool(token_sha256(cfg)), "token_env": cfg.serve.token_env}


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def cmd_serve(args: argparse.Namespace) -> int:
    from ..cli import config_from_args

    cfg = config_from_args(args)
    if args.host:
        cfg.serve.host = args.host
    if args.port:
        cfg.serve.port = args.port
    if args.model:
        cfg.serve.verifier_model = args.model
    apps = [a.strip() for a in (args.apps or ",".join(APPS)).split(",") if a.strip()]
    info = start_serve(cfg, apps)
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(info) + "\n")
    else:
        for app, what in info["serving"].items():
            print(f"{app}: serving {what}")
        for app, u in info["urls"].items():
            for name, url in u.items():
                print(f"  {app:<9} {name:<8} {url}")
        if info["token_required"]:
            print(f"every route requires 'Authorization: Bearer $" + info["token_env"] + "'")
        elif cfg.serve.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: bound to {cfg.serve.host} without a token (set ${cfg.serve.token_env})", file=sys.stderr)
    sys.stdout.flush()
    if args.detach:
        return 0
    print("Ctrl-C stops serving", file=sys.stderr)
    try:
        _wait_for_signal()
    finally:
        from ray import serve

        serve.shutdown()
    return 0


def add_serve_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``serve`` subcommand on ``sub`` (the top-level subparsers of ``stephanie``)."""
    help_ = ("serve the trained critic (POST /verify) and the NER retriever (POST /entities/search, "
             "GET /entities/{name}/graph) over HTTP with Ray Serve")
    p = sub.add_parser("serve", help=help_, description=help_, parents=[common])
    p.set_defaults(func=cmd_serve)
    p.add_argument("--apps", metavar="A,B", help=f"which applications (default: {','.join(APPS)})")
    p.add_argument("--host", help="bind address (config serve.host, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (config serve.port, default 8000)")
    p.add_argument("--model", help="critic model version to serve (config serve.verifier_model; default: the newest)")
    p.add_argument("--detach", action="store_true",
                   help="return once deployed (with a Ray cluster: --set ray.address=auto; a local Ray started "
                        "by this command stops with it)")
    return p
