"""`xpnet export`: a checkpoint to an ONNX file."""
from __future__ import annotations

from ._common import print_json


def add_parser(sub) -> None:
    sp = sub.add_parser("export", help="write a checkpoint's model as ONNX (raw input -> probabilities, label)")
    sp.add_argument("--checkpoint", required=True, metavar="PATH")
    sp.add_argument("--output", required=True, metavar="PATH", help="the .onnx file to write (atomically)")
    sp.add_argument("--opset", type=int, default=None, help="ONNX opset, 16 to 24 (default 21)")
    sp.add_argument("--batch", type=int, default=None, metavar="N", help="a fixed batch size (default: dynamic)")
    sp.add_argument("--no-preprocessing", action="store_true",
                    help="leave the checkpoint's input scaling out of the graph (the input is then scaled data)")
    sp.add_argument("--logits", action="store_true", help="also output the logits")
    sp.add_argument("--json", action="store_true", help="print one JSON object as the last line of output")
    sp.add_argument("--quiet", action="store_true")
    sp.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sp.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from ..export.onnx import export_checkpoint
    info = export_checkpoint(args.checkpoint, args.output, opset=args.opset, batch=args.batch,
                             preprocessing=not args.no_preprocessing, logits=args.logits)
    if args.json:
        print_json(info)
    elif not args.quiet:
        print(f"wrote {info['path']}: {info['bytes'] / 1e3:.1f} kB, ONNX opset {info['opset']}, outputs "
              f"{', '.join(info['outputs'])}, in {info['seconds']:.2f} s")
    return 0
