"""`inr view RUN`: the web viewer (package `viewer`, on viser) on a run directory."""
from __future__ import annotations


def add_view_parser(commands) -> None:
    p = commands.add_parser("view", help="open a run in the web viewer (images, SDFs, radiance fields, "
                                         "text-to-NeRF generators; live while a fit writes checkpoints)")
    p.add_argument("run", metavar="RUN", help="run directory")
    p.add_argument("--port", type=int, default=8080, help="port to serve on (the next free one if it is busy)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--collection", metavar="DIR", default=None,
                   help="few-view generator runs: the scene collection to pick scenes from (default: the one it "
                        "was trained on)")
    p.set_defaults(handler=view_command)


def add_view_flag(p) -> None:
    """`--view` (and its --view-port) on a fit command."""
    p.add_argument("--view", action="store_true",
                   help="serve the web viewer during training (step, loss, PSNR curve, pause/resume); "
                        "it stays open after training until Ctrl-C")
    p.add_argument("--view-port", dest="view_port", type=int, default=8080, help="port of --view")


def view_command(args) -> int:
    try:
        from viewer.server import (
            serve,  # imported here: viser is only needed by the viewer
        )

        options = {"collection": args.collection} if args.collection else {}
        serve(args.run, args.host, args.port, **options)
    except KeyboardInterrupt:  # Ctrl-C while starting up: nothing to keep
        return 130
    return 0
