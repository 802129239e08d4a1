"""`xpnet export`: a checkpoint to an ONNX file."""
from __future__ import annotations

from ._common import print_json


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
