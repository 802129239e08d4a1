"""Presets as data, the convolutional models as registry configs, and image inputs.

A preset is one row of `PRESETS` (a `Preset`): the run settings it sets over `DEFAULTS` (those of a run
that names none: data, rate, epochs, ...; any flag given beside the preset overrides them), the function
that turns the resolved settings into a registry config (`build`), and how it trains (the settings it
passes to `fit`, fixed `fit` keywords, its input images' shape, the settings it refuses). `xpnet train`
reads these rows and nothing else about a preset, so a new preset is one entry. Its `model` setting names
the row in a checkpoint's saved settings (`preset_for`), so it is unique.

Image inputs: flat rows, (N, H, W) or (N, C, H, W) arrays brought to the (N, C, H, W) a convolutional
model takes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from ..registry import get, load_config
from .mlp import mlp_specs

#: layer classes whose input is (C, H, W) images: a model starting with one takes NCHW input
IMAGE_LAYERS = ("Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "RandomCrop", "RandomFlip")


def _layer(name: str, **config) -> dict:
    return {"class": name, "config": config}


def lenet5_layers(n_classes: int = 10, channels: int = 1) -> list[dict]:
    """LeNet-5 with ReLU and max-pooling: conv 6@5x5 padding 2, max-pool 2, conv 16@5x5, max-pool 2,
    dense 120, 84, n_classes (on 28x28 inputs: 16·5·5 = 400 features into the first dense layer)."""
    return [_layer("Conv2D", in_channels=channels, out_channels=6, kernel_size=5, padding=2), _layer("relu"),
            _layer("MaxPool2D", kernel_size=2), _layer("Conv2D", in_channels=6, out_channels=16, kernel_size=5),
            _layer("relu"), _layer("MaxPool2D", kernel_size=2), _layer("Flatten"),
            _layer("Dense", in_features=400, out_features=120, init="he_uniform"), _layer("relu"),
            _layer("Dense", in_features=120, out_features=84, init="he_uniform"), _layer("relu"),
            _layer("Dense", in_features=84, out_features=n_classes)]


def fashion_cnn_layers(n_classes: int = 10, channels: int = 1) -> list[dict]:
    """conv 32@3x3, ReLU, conv 64@3x3, ReLU, max-pool 2, dropout 0.25, dense 128, ReLU, dropout 0.5,
    dense n_classes (on 28x28 inputs: 64·12·12 = 9216 features into the first dense layer)."""
    return [_layer("Conv2D", in_channels=channels, out_channels=32, kernel_size=3), _layer("relu"),
            _layer("Conv2D", in_channels=32, out_channels=64, kernel_size=3), _layer("relu"),
            _layer("MaxPool2D", kernel_size=2), _layer("Dropout", p=0.25), _layer("Flatten"),
            _layer("Dense", in_features=9216, out_features=128, init="he_uniform"), _layer("relu"),
            _layer("Dropout", p=0.5), _layer("Dense", in_features=128, out_features=n_classes)]


def _conv_bn(c_in: int, c_out: int, stride: int = 1, kernel: int = 3) -> list[dict]:
    """A convolution without bias (BatchNorm's shift takes its place) and BatchNorm."""
    return [_layer("Conv2D", in_channels=c_in, out_channels=c_out, kernel_size=kernel, stride=stride,
                   padding=kernel // 2, bias=False, init="he_normal"), _layer("BatchNorm")]


def basic_block(c_in: int, c_out: int, stride: int = 1) -> dict:
    """ResNet's basic block as a Residual: conv 3x3 (stride), BN, ReLU, conv 3x3, BN, added to the input, or
    to a 1x1 strided conv + BN of it where the block changes channels or size (then ReLU, outside the block)."""
    block = {"class": "Chain", "config": {"layers": [*_conv_bn(c_in, c_out, stride), _layer("relu"),
                                                     *_conv_bn(c_out, c_out)]}}
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = {"class": "Chain", "config": {"layers": _conv_bn(c_in, c_out, stride, kernel=1)}}
    return _layer("Residual", block=block, shortcut=shortcut)


def resnet_fashion_layers(n_classes: int = 10, channels: int = 1, stem: int = 16,
                          stages=((32, 2), (32, 1), (64, 2), (64, 1))) -> list[dict]:
    """A small ResNet: a 3x3 stem of `stem` channels with BN and ReLU at full size, then one basic block per
    (width, stride) in `stages` (a stride-2 block halves the size, with a 1x1 shortcut: 28 -> 14 -> 7 on 28x28
    inputs), each followed by ReLU, global average pooling and dense n_classes."""
    layers = [*_conv_bn(channels, stem), _layer("relu")]
    c_in = stem
    for width, stride in stages:
        layers += [basic_block(c_in, width, stride), _layer("relu")]
        c_in = width
    return layers + [_layer("GlobalAvgPool2D"), _layer("Dense", in_features=c_in, out_features=n_classes)]


CNN_MODELS = {"lenet5": lenet5_layers, "fashion-cnn": fashion_cnn_layers, "resnet-fashion": resnet_fashion_layers}


def cnn_spec(name: str, n_classes: int, cfg: dict) -> dict:
    """The Sequential config of a convolutional preset (`cfg`: the resolved command-line configuration):
    Adam at cfg's rate with a cosine decay to 0 over cfg's epochs, 28x28 one-channel input."""
    return {"class": "Sequential", "config": {
        "layers": CNN_MODELS[name](n_classes), "loss": {"class": cfg["loss"], "config": {}},
        "optimizer": {"class": cfg["optimizer"], "config": {"lr": cfg["lr"]}},
        "schedule": {"class": "cosine", "config": {"epochs": cfg["epochs"]}},
        "penalty": {"class": "Penalty", "config": {"l1": cfg["l1"], "l2": cfg["l2"]}},
        "dtype": cfg["dtype"], "seed": cfg["seed"], "input_shape": [1, 28, 28]}}


# The settings of a run that names no preset; a preset's settings and the flags given override them.
DEFAULTS = dict(dataset="digits", hidden=[100], activation="relu", loss="softmax_cross_entropy", optimizer="sgd",
                lr=None, momentum=0.9, l1=0.0, l2=0.0, epochs=30, batch_size=None, minibatches=None, seed=1,
                dtype="float32", scale="unit", validation_split=0.0, early_stopping=None, accumulate=1, classes=None,
                model_file=None, clip_norm=None, clip_value=None, weight_decay=None, param_groups=None,
                warmup_steps=None, decay_steps=None, min_lr=None, lr_decay=None, augment=None,
                layers=None, heads=None, dim=None, block=None, dropout=None)

#: the settings of training regimes (`with_regimes`): clipping, weight decay and its groups go into the
#: optimizer's config, a per-step warmup and decay replaces the model's schedule
OPTIMIZER_REGIMES = ("clip_norm", "clip_value", "weight_decay", "param_groups")
SCHEDULE_REGIMES = ("warmup_steps", "decay_steps", "min_lr", "lr_decay")

#: the settings most presets hand to `fit` as its keywords of the same names
FIT_SETTINGS = ("epochs", "batch_size", "minibatches", "validation_split", "early_stopping")


def default_lr(optimizer: str) -> float:
    """The learning rate a run without --lr uses."""
    return 0.001 if optimizer in ("adam", "adamw", "book") else 0.1


def learning_rate(cfg: dict) -> float:
    """The rate the resolved settings train at: theirs, else the optimizer's default."""
    return default_lr(cfg["optimizer"]) if cfg.get("lr") is None else cfg["lr"]


def flags_mlp_spec(n_features: int, n_classes: int, cfg: dict) -> dict:
    """The MLP of a run without a preset: --hidden, --activation, --loss, --optimizer (sgd, momentum and
    nesterov: SGD with --momentum; book: the book's update with it as alpha), --lr, --l1, --l2."""
    activation, optimizer = cfg["activation"], cfg["optimizer"]
    get("layer", activation)  # unknown names fail here, listing the valid ones
    get("optimizer", optimizer)
    lr = learning_rate(cfg)
    if optimizer in ("sgd", "momentum", "nesterov"):
        opt = {"class": "sgd", "config": {"lr": lr, "momentum": cfg["momentum"], "nesterov": optimizer == "nesterov"}}
    elif optimizer == "book":
        opt = {"class": "book", "config": {"lr": lr, "alpha": cfg["momentum"]}}
    else:
        opt = {"class": optimizer, "config": {"lr": lr}}
    return {"class": "Sequential", "config": {
        "layers": mlp_specs([n_features, *cfg["hidden"], n_classes], activation),
        "loss": {"class": cfg["loss"], "config": {}}, "optimizer": opt,
        "penalty": {"class": "Penalty", "config": {"l1": cfg["l1"], "l2": cfg["l2"]}},
        "dtype": cfg["dtype"], "seed": cfg["seed"]}}


def book2015_spec(n_features: int, n_classes: int, cfg: dict) -> dict:
    """The 2015 book's NeuralNetMLP (one sigmoid hidden layer of hidden[0]); its config carries the book's
    epochs, minibatches (a count), momentum (alpha) and decrease_const, as the book's constructor does."""
    return {"class": "NeuralNetMLP", "config": {
        "n_output": n_classes, "n_features": n_features, "n_hidden": cfg["hidden"][0], "l1": cfg["l1"],
        "l2": cfg["l2"], "epochs": cfg["epochs"], "eta": cfg["lr"], "alpha": cfg["momentum"],
        "decrease_const": cfg["decrease_const"], "minibatches": cfg["minibatches"], "random_state": cfg["seed"],
        "dtype": cfg["dtype"]}}


def book2017_spec(n_features: int, n_classes: int, cfg: dict) -> dict:
    """The later editions' MLP: sigmoid hidden layers, normal(0, 0.1) weights, a summed logistic cost, plain
    SGD and an L2 cost of l2/2·|w|² (the RandomState stream of the book's code)."""
    return {"class": "Sequential", "config": {
        "layers": mlp_specs([n_features, *cfg["hidden"], n_classes], "sigmoid", init="normal_in_out",
                             output_init="normal_in_out"),
        "loss": {"class": "logistic", "config": {"reduction": "sum"}},
        "optimizer": {"class": "sgd", "config": {"lr": cfg["lr"]}},
        "penalty": {"class": "Penalty", "config": {"l1": cfg["l1"], "l2": cfg["l2"], "l2_cost_factor": 1.0}},
        "dtype": cfg["dtype"], "seed": cfg["seed"], "rng": "RandomState"}}


def _cnn(name: str) -> Callable[[int, int, dict], dict]:
    """The `build` of a convolutional preset: cnn_spec(name, ...) at the settings' rate."""
    def build(n_features: int, n_classes: int, cfg: dict) -> dict:
        return cnn_spec(name, n_classes, dict(cfg, lr=learning_rate(cfg)))
    return build


def gpt_build(n_features: int, n_classes: int, cfg: dict) -> dict:
    """The `build` of a GPT preset: xpnet.models.gpt.gpt_spec of the settings' shape (layers, heads, dim,
    block, dropout; host_rng) and recipe (AdamW at the settings' rate and weight decay, betas 0.9/0.99, the
    warmup and cosine decay, clipping), one output per character of the vocabulary (n_classes)."""
    from .gpt import gpt_spec
    return gpt_spec(n_classes, cfg["block"], cfg["layers"], cfg["heads"], cfg["dim"], dropout=cfg["dropout"] or 0.0,
                    bias=False, host_rng=cfg.get("host_rng", True), lr=learning_rate(cfg), betas=(0.9, 0.99),
                    weight_decay=cfg["weight_decay"], clip_norm=cfg["clip_norm"], warmup_steps=cfg["warmup_steps"],
                    decay_steps=cfg["decay_steps"], min_lr=cfg["min_lr"], dtype=cfg["dtype"], seed=cfg["seed"])


#: nanoGPT's AdamW recipe for Tiny Shakespeare (config/train_shakespeare_char.py): what both GPT presets share
_NANOGPT_RECIPE = dict(dataset="tinyshakespeare", optimizer="adamw", lr=1e-3, weight_decay=0.1, param_groups="nanogpt",
                       clip_norm=1.0, warmup_steps=100, min_lr=1e-4, seed=1, dtype="float32")


@dataclass(frozen=True)
class Preset:
    """One preset, as data.

    about: what it is, a few words (`xpnet train --help` lists them).
    settings: the run settings it sets over DEFAULTS; `model` among them names the preset in a checkpoint's
        saved settings (unique among PRESETS).
    build: (n_features, n_classes, resolved settings) -> the model's registry config.
    fit_settings: the resolved settings passed to `fit` as its keywords (with accumulate); only epochs (a
        run option) where the model's config carries the rest, as NeuralNetMLP's does.
    fit: fixed keywords of `fit` (how it trains: drop_last, compose_shuffles).
    input_shape: the (C, H, W) of the images the model takes; None for flat rows.
    refuses: {setting: the one line a run that sets it is refused with}."""
    about: str
    settings: dict
    build: Callable[[int, int, dict], dict]
    fit_settings: tuple = FIT_SETTINGS
    fit: dict = field(default_factory=lambda: {"compose_shuffles": False, "drop_last": False})
    input_shape: tuple | None = None
    refuses: dict = field(default_factory=dict)


# The book's runs (../shared/seed/neuralnetmlp.md) and the convolutional ones: Adam with a cosine decay of the
# rate to 0 over the run's epochs.
PRESETS = {
    "book2015": Preset(
        "the 2015 book's MNIST run",
        dict(model="NeuralNetMLP", dataset="mnist", hidden=[50], l1=0.0, l2=0.1, epochs=1000, lr=0.001,
             momentum=0.001, decrease_const=0.00001, minibatches=50, seed=1, scale="raw", dtype="float64"),
        book2015_spec, fit_settings=("epochs",), fit={},
        refuses={"batch_size": "the book2015 preset trains by --minibatches (a count), not --batch-size",
                 **{k: f"the book2015 preset is the book's NeuralNetMLP, its update and decay fixed: it takes no "
                       f"--{k.replace('_', '-')}" for k in OPTIMIZER_REGIMES + SCHEDULE_REGIMES}}),
    "book2017": Preset(
        "the later editions'",
        dict(model="book2017", dataset="mnist", hidden=[100], l2=0.01, epochs=200, lr=0.0005, batch_size=100,
             seed=1, scale="symmetric", dtype="float64", validation_split=5000 / 60000),
        book2017_spec, fit={"compose_shuffles": False, "drop_last": True}),
    "lenet5": Preset(
        "LeNet-5 on MNIST",
        dict(model="lenet5", dataset="mnist", optimizer="adam", lr=0.002, epochs=15, batch_size=128, seed=1,
             scale="unit"),
        _cnn("lenet5"), input_shape=(1, 28, 28)),
    "fashion-cnn": Preset(
        "a small CNN on Fashion-MNIST",
        dict(model="fashion-cnn", dataset="fashion-mnist", optimizer="adam", lr=0.001, epochs=15, batch_size=128,
             seed=1, scale="unit"),
        _cnn("fashion-cnn"), input_shape=(1, 28, 28)),
    "resnet-fashion": Preset(
        "a small ResNet on Fashion-MNIST",
        # ResNet's own recipe (SGD with Nesterov momentum 0.9 at 0.1, weight decay 5e-4, cosine decay) with a
        # 2-pixel random crop and a horizontal flip: 93.52 % over three seeds on torch, 93.32 % on NumPy (docs/blocks.md)
        dict(model="resnet-fashion", dataset="fashion-mnist", optimizer="nesterov", lr=0.1, weight_decay=5e-4,
             augment="crop=2,flip=0.5", epochs=15, batch_size=128, seed=1, scale="unit"),
        _cnn("resnet-fashion"), input_shape=(1, 28, 28)),
    "gpt-shakespeare-cpu": Preset(
        "nanoGPT's character-level GPT on Tiny Shakespeare, its CPU recipe",
        dict(_NANOGPT_RECIPE, model="gpt-shakespeare-cpu", layers=4, heads=4, dim=128, block=64, dropout=0.0,
             batch_size=12, steps=2000, decay_steps=2000, eval_every=250, eval_batches=20),
        gpt_build, fit_settings=(), fit={}),
    "gpt-shakespeare": Preset(
        "nanoGPT's character-level GPT on Tiny Shakespeare, its GPU recipe",
        dict(_NANOGPT_RECIPE, model="gpt-shakespeare", layers=6, heads=6, dim=384, block=256, dropout=0.2,
             host_rng=False, batch_size=64, steps=5000, decay_steps=5000, eval_every=250, eval_batches=200),
        gpt_build, fit_settings=(), fit={}),
}

#: the row of a run that names no preset: the MLP its flags describe
FLAGS_MLP = Preset("an MLP from --hidden, --activation, --loss and --optimizer", {}, flags_mlp_spec)


def preset_for(cfg: dict) -> Preset:
    """The row of resolved (or a checkpoint's saved) settings: the preset whose `model` they name, FLAGS_MLP
    where they name none."""
    model = cfg.get("model")
    if model is None:
        return FLAGS_MLP
    for preset in PRESETS.values():
        if preset.settings.get("model") == model:
            return preset
    raise InputError(f"the settings name the model {model!r}, which no preset builds; choose a preset of: "
                     f"{', '.join(PRESETS)}")


def preset_settings(name: str) -> dict:
    """DEFAULTS with the named preset's settings over them."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return dict(DEFAULTS, **PRESETS[name].settings)


def with_overrides(cfg: dict, given: dict) -> dict:
    """cfg (DEFAULTS, a preset's settings over them) with the settings `given` over it, those given as None left
    alone. A preset's rate goes with its optimizer: naming another optimizer without a rate trains at that
    optimizer's default rate (resnet-fashion's SGD 0.1 would make Adam diverge)."""
    optimizer = cfg.get("optimizer")
    cfg.update({k: v for k, v in given.items() if v is not None})
    if cfg.get("optimizer") != optimizer and given.get("lr") is None:
        cfg["lr"] = None
    return cfg


def model_spec(n_features: int, n_classes: int, cfg: dict) -> dict:
    """The model the resolved settings describe, as a registry config (JSON data): what
    `xpnet.model_from_config` builds. A --model file's config as it is (the settings' seed and dtype where
    it names none), else the preset's `build` (FLAGS_MLP's without one)."""
    if cfg.get("model_file"):
        spec = read_model_file(cfg["model_file"])
        spec["config"].setdefault("seed", cfg["seed"])
        spec["config"].setdefault("dtype", cfg["dtype"])
        return with_augmentation(with_regimes(spec, cfg), cfg)
    return with_augmentation(with_regimes(preset_for(cfg).build(n_features, n_classes, cfg), cfg), cfg)


#: the augmentations `--augment` names: name -> (layer class, its argument, the argument's default)
AUGMENTATIONS = {"crop": ("RandomCrop", "padding", 4), "flip": ("RandomFlip", "p", 0.5)}
AUGMENT_HELP = ("a comma-separated list of crop[=PADDING] and flip[=P], e.g. crop,flip or crop=2,flip=0.5, or none "
                "(a preset's augmentation off)")


def augment_layers(text: str) -> list[dict]:
    """`--augment crop,flip` (`crop=2`: the crop's padding, default 4; `flip=0.3`: the flip's probability, default
    0.5) -> the registry configs of the layers (RandomCrop, RandomFlip), in the order given; "none" -> [] (no
    augmentation, where a preset has some). Refused in one line otherwise."""
    from ..layers.augmentation import RandomCrop, RandomFlip
    if str(text).strip().lower() == "none":
        return []
    specs, seen = [], set()
    for item in [part.strip() for part in str(text).split(",")]:
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if name not in AUGMENTATIONS or name in seen:
            raise InputError(f"--augment {text}: {'twice' if name in seen else 'unknown'} augmentation {name!r}; "
                             f"give {AUGMENT_HELP}")
        seen.add(name)
        cls, arg, default = AUGMENTATIONS[name]
        try:
            number = default if not value.strip() else int(value) if arg == "padding" else float(value)
        except ValueError:
            raise InputError(f"--augment {text}: {item} needs a {'whole ' if arg == 'padding' else ''}number after "
                             f"'='; give {AUGMENT_HELP}") from None
        try:  # the layer's own checks (padding >= 1, p in [0, 1])
            {"RandomCrop": RandomCrop, "RandomFlip": RandomFlip}[cls](**{arg: number})
        except InputError as exc:
            raise InputError(f"--augment {text}: {exc}") from None
        specs.append({"class": cls, "config": {arg: number}})
    return specs


def canonical_augment(text: str) -> str:
    """--augment's value as the run records it, every argument written out: "crop,flip" -> "crop=4,flip=0.5"."""
    names = {cls: name for name, (cls, _, _) in AUGMENTATIONS.items()}
    layers = augment_layers(text)
    if not layers:
        return "none"
    return ",".join(f"{names[s['class']]}={next(iter(s['config'].values()))}" for s in layers)


def with_augmentation(spec: dict, cfg: dict) -> dict:
    """`spec` with the layers --augment names (cfg["augment"]) first, where the model takes images; as it is
    without --augment. They act while training only, so evaluate and predict see the model without them."""
    if not cfg.get("augment") or not augment_layers(cfg["augment"]):
        return spec
    if not takes_images(spec):
        images = ", ".join(name for name, p in PRESETS.items() if p.input_shape is not None)
        raise InputError(f"--augment {cfg['augment']}: augments images (samples, channels, height, width), and this "
                         f"model takes flat rows; use it with an image model (--preset {images}, or a --model file "
                         f"with a 3-D input_shape)")
    spec["config"]["layers"] = augment_layers(cfg["augment"]) + list(spec["config"]["layers"])
    return spec


def with_regimes(spec: dict, cfg: dict) -> dict:
    """`spec` with the training regimes the settings give (--clip-norm, --clip-value, --weight-decay,
    --param-groups into its optimizer's config; --warmup-steps, --decay-steps, --min-lr, --lr-decay as its
    schedule, WarmupCosine or WarmupLinear, in place of any other); as it is when they give none."""
    opt_given = {k: cfg[k] for k in OPTIMIZER_REGIMES if cfg.get(k) is not None}
    sched_given = {k: cfg[k] for k in SCHEDULE_REGIMES if cfg.get(k) is not None}
    if not opt_given and not sched_given:
        return spec
    config = spec["config"]
    if opt_given:
        opt = config.get("optimizer", "sgd")
        opt = {"class": opt, "config": {}} if isinstance(opt, str) else {"class": opt["class"],
                                                                         "config": dict(opt.get("config") or {})}
        import inspect
        takes = inspect.signature(get("optimizer", opt["class"])).parameters
        for k, v in opt_given.items():
            if k not in takes:
                raise InputError.for_argument(k, f"{v}: the optimizer {opt['class']!r} takes no {k}; choose one "
                                                 f"that does (--optimizer adamw, adam or sgd)")
            opt["config"][k] = v
        config["optimizer"] = opt
    if sched_given:
        if cfg.get("warmup_steps") is None and cfg.get("decay_steps") is None:
            first = next(iter(sched_given))
            raise InputError.for_argument(first, f"{sched_given[first]}: shapes a per-step schedule, which needs "
                                                 f"warmup_steps or decay_steps; give --warmup-steps or --decay-steps")
        name = "warmup_linear" if cfg.get("lr_decay") == "linear" else "warmup_cosine"
        config["schedule"] = {"class": name, "config": {"warmup_steps": cfg.get("warmup_steps") or 0,
                                                        "decay_steps": cfg.get("decay_steps"),
                                                        "min_lr": cfg.get("min_lr") or 0.0}}
    return spec


def fit_options(cfg: dict) -> dict:
    """The keyword arguments of `fit` the resolved settings give: accumulate, the preset's fit_settings
    and its fixed fit keywords."""
    preset = preset_for(cfg)
    return dict({"accumulate": cfg.get("accumulate", 1)}, **{k: cfg[k] for k in preset.fit_settings}, **preset.fit)


def read_model_file(path) -> dict:
    """A model config from a JSON file ({"class": "Sequential", "config": {"layers": [...], ...}}, the registry's
    format: what `json.dumps(xpnet.serialize(model))` writes)."""
    try:
        spec = load_config(Path(path).expanduser())
    except InputError as exc:
        raise InputError(f"--model {path}: {exc} (examples/lenet5.json is one)") from None
    if not isinstance(spec, dict) or "class" not in spec or not isinstance(spec.get("config"), dict) \
            or not isinstance(spec["config"].get("layers"), list):
        raise InputError(f"--model {path}: expected {{\"class\": \"Sequential\", \"config\": {{\"layers\": [...]}}}} "
                         f"(examples/lenet5.json is one)")
    return spec


def takes_images(spec: dict) -> bool:
    """Whether a model config takes (C, H, W) images: a 3-D input_shape, or a first layer that does."""
    config = spec.get("config", {})
    shape = config.get("input_shape")
    if shape is not None:
        return len(shape) == 3
    layers = config.get("layers") or [{}]
    first = str(layers[0].get("class", "")).split(".v")[0].lower()
    return first in {n.lower() for n in IMAGE_LAYERS}


def as_images(X, input_shape=None, source: str = "the dataset", name: str = "X") -> np.ndarray:
    """Host data -> (N, C, H, W) for a model taking images of `input_shape` (C, H, W) (None: as X says).

    Accepts (N, C, H, W); (N, H, W) (one channel); and flat rows (N, C·H·W) when input_shape is known.
    A channels-last (N, H, W, C) array is refused with the transpose that fixes it."""
    X = np.asarray(X)
    want = None if input_shape is None else tuple(int(v) for v in input_shape)
    if X.ndim == 2:
        if want is not None and X.shape[1] == math.prod(want):
            return X.reshape(len(X), *want)
        side = math.isqrt(X.shape[1])
        hint = (f"; square one-channel images? reshape with {name}.reshape(len({name}), 1, {side}, {side})"
                if side * side == X.shape[1] else "")
        raise InputError(f"{source}: {name} is (samples, features) {X.shape} but the model takes images "
                         f"(samples, channels, height, width){'' if want is None else f' of {want}'}{hint}")
    if X.ndim == 3:
        X = X[:, None, :, :]
    if X.ndim != 4:
        raise InputError(f"{source}: {name} has shape {X.shape}; a convolutional model takes images (samples, height, "
                         f"width) or (samples, channels, height, width)")
    if want is not None and tuple(X.shape[1:]) != want:
        hint = ""
        if tuple(X.shape[1:]) == (want[1], want[2], want[0]):
            hint = f"; it looks channels-last (NHWC): transpose it with {name}.transpose(0, 3, 1, 2)"
        raise InputError(f"{source}: {name} holds images of shape {tuple(X.shape[1:])} but the model takes "
                         f"(channels, height, width) = {want}{hint}")
    if want is None and X.shape[3] in (1, 3, 4) and X.shape[1] not in (1, 3, 4):
        raise InputError(f"{source}: {name} has shape {X.shape}, which looks channels-last (NHWC); the model "
                         f"takes channels first (NCHW): transpose it with {name}.transpose(0, 3, 1, 2)")
    return X
