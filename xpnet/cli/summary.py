"""`xpnet summary`: a model's layers, output shapes, parameters and FLOPs (xpnet.models.summary), for a preset,
a model file or a checkpoint, without data or training."""
from __future__ import annotations


from ..errors import InputError
from ._common import common_flags, print_json, whole_number

#: values per sample of the built-in datasets (what a preset's MLP takes without --features)
#: (a text dataset's model takes token ids: its input is the preset's context, not a count of features)
DATASET_FEATURES = {"digits": 64, "mnist": 784, "fashion-mnist": 784, "tinyshakespeare": 0}


def add_parser(sub) -> None:
    from ..models.presets import PRESETS
    sp = sub.add_parser("summary", help="show a model's layers, output shapes, parameters and FLOPs per sample")
    common_flags(sp)
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--preset", default=None, help=f"one of {', '.join(PRESETS)} (default: the MLP `xpnet train` "
                   f"trains without one)")
    g.add_argument("--model", dest="model_file", default=None, metavar="FILE.json",
                   help="a model as a registry config (e.g. examples/lenet5.json)")
    g.add_argument("--checkpoint", default=None, metavar="PATH", help="a checkpoint written by xpnet")
    sp.add_argument("--features", type=whole_number(), default=None, metavar="N",
                    help="values per sample of a model taking flat rows (default: its dataset's, digits 64, "
                         "mnist 784)")
    sp.add_argument("--classes", type=whole_number(), default=10, metavar="N", help="outputs of a preset's model (default 10)")
    sp.set_defaults(func=cmd_summary)


def summary_model(args):
    """The model `xpnet summary` describes: the checkpoint's, the model file's or the preset's (built, not
    trained)."""
    from ..models.presets import DEFAULTS, model_spec, preset_for, preset_settings, read_model_file
    from ..registry import model_from_config
    if args.checkpoint:
        from ..saving.checkpoint import load
        return load(args.checkpoint, backend=args.backend, device=args.device)
    if args.model_file:
        spec = read_model_file(args.model_file)
        if args.features is not None:
            spec["config"].setdefault("input_shape", [args.features])
        try:
            return model_from_config(spec, args.backend, args.device)
        except InputError as exc:
            if spec["config"].get("input_shape") is not None:
                raise
            raise InputError(f"--model {args.model_file}: {exc}; or give the values per sample with "
                             f"--features N") from None
    cfg = preset_settings(args.preset) if args.preset else dict(DEFAULTS)
    shape = preset_for(cfg).input_shape
    if shape is not None and args.features is not None:
        raise InputError(f"--features {args.features}: the {args.preset} preset takes images of shape "
                         f"{tuple(shape)}, not rows of features; drop --features")
    features = args.features or (None if shape is not None else DATASET_FEATURES.get(cfg["dataset"]))
    if shape is None and features is None:
        raise InputError(f"the preset's dataset {cfg['dataset']!r} does not say how many values a sample has; "
                         f"give --features N")
    return model_from_config(model_spec(features or 0, args.classes, cfg), args.backend, args.device)


def cmd_summary(args) -> int:
    model = summary_model(args)
    result = model.summary(show=not args.json)
    if args.json:
        print_json(result.to_dict())
    return 0
