"""One errors module (xpnet/errors.py) holds every public exception type, under their old names too, and an error
about one keyword names it in fields that the command line maps to its flag without reading the message."""
import ast
import builtins
import importlib
import pickle
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet import errors
from xpnet.cli.app import as_flags, build_parser
from xpnet.checks import POSITIVE_INT, check

PKG = Path(xpnet.__file__).parent
OLD_HOMES = {  # where each type was defined before it moved to xpnet.errors; all still give it
    "BackendError": ["xpnet.backend", "xpnet.backend._base", "xpnet"],
    "DataError": ["xpnet.data.datasets"],
    "CheckpointError": ["xpnet.saving.checkpoint", "xpnet"],
    "TrainingDiverged": ["xpnet.training", "xpnet.training.loop", "xpnet"],
    "OutOfMemory": ["xpnet.training", "xpnet.training.loop", "xpnet"],
    "TrainingInterrupted": ["xpnet.training", "xpnet.training.loop", "xpnet"],
    "DistributedError": ["xpnet.distributed", "xpnet.distributed.communicator"],
    "InputError": ["xpnet", "xpnet.data.validation"],
    "PrefetchError": ["xpnet.training", "xpnet.training.prefetch"],  # new with prefetch: given where it is raised
}


def test_every_public_exception_type_is_defined_in_errors_only():
    classes = [(node, path.relative_to(PKG).as_posix()) for path in PKG.rglob("*.py")
               for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)]
    exceptions = {n for n in dir(builtins) if isinstance(getattr(builtins, n), type)
                  and issubclass(getattr(builtins, n), BaseException)}
    while True:  # a class whose base is an exception type (builtin or xpnet's) is one, to a fixed point
        more = {node.name for node, _ in classes if any(_name(b) in exceptions for b in node.bases)} - exceptions
        if not more:
            break
        exceptions |= more
    defined = {}
    for node, where in classes:
        if node.name in exceptions and not node.name.startswith("_"):
            defined.setdefault(node.name, []).append(where)
    assert defined == {name: ["errors.py"] for name in OLD_HOMES}


def test_old_import_locations_give_the_same_class_objects():
    for name, homes in OLD_HOMES.items():
        for home in homes:
            assert getattr(importlib.import_module(home), name) is getattr(errors, name), (home, name)
    assert errors.DataError.__mro__[1] is errors.InputError and errors.CheckpointError.__mro__[1] is errors.InputError


def test_errors_module_imports_nothing():
    tree = ast.parse((PKG / "errors.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_a_keyword_error_names_its_keyword_in_fields():
    with pytest.raises(xpnet.InputError) as info:
        check("batch_size", 0, POSITIVE_INT)
    e = info.value
    assert (str(e), e.argument, e.detail) == ("batch_size=0: must be a positive integer", "batch_size",
                                              "0: must be a positive integer")
    with pytest.raises(xpnet.InputError) as info:  # a keyword of a class: not a keyword the CLI can map
        check("patience", 0, POSITIVE_INT, owner="EarlyStopping")
    assert info.value.argument is None and str(info.value).startswith("EarlyStopping(patience=0)")
    model = xpnet.Sequential(xpnet.mlp_layers([2, 3, 2], "tanh"), seed=0)
    with pytest.raises(xpnet.InputError) as info:  # raised by fit itself, not by check
        model.fit(np.zeros((2, 2)), np.array([0, 1]), epochs=1, validation_split=0.2)
    assert (info.value.argument, info.value.detail) == ("validation_split", "0.2 of 2 samples leaves an empty "
                                                                            "training or validation set")
    e = errors.DataError.for_argument("test_fraction", "0.99 leaves ...")
    assert type(e) is errors.DataError and str(e) == "test_fraction=0.99 leaves ..." and e.argument == "test_fraction"
    again = pickle.loads(pickle.dumps(e))
    assert (type(again), str(again), again.argument, again.detail) == (type(e), str(e), e.argument, e.detail)
    plain = xpnet.InputError("batch_size=0: written by hand")
    assert plain.argument is None and plain.detail is None


def test_the_command_line_maps_the_field_not_the_message():
    args = build_parser().parse_args(["train"])
    # the field decides: a message that starts with 'batch_size=' but is about epochs names --epochs
    e = xpnet.InputError("batch_size=0: must be a positive integer", argument="epochs",
                         detail="0: must be a positive integer")
    assert as_flags(e, args) == "--epochs 0: must be a positive integer"
    # no field: the message as written, even when it looks like a keyword's
    assert as_flags(xpnet.InputError("batch_size=0: must be a positive integer"), args) == \
        "batch_size=0: must be a positive integer"
    with pytest.raises(xpnet.InputError) as info:
        check("validation_split", 1.0, POSITIVE_INT)
    assert as_flags(info.value, args) == "--validation-split 1.0: must be a positive integer"
    # a keyword that is none of this command's options keeps the library's name
    assert as_flags(errors.DataError.for_argument("test_fraction", "0.5: ..."), args) == "test_fraction=0.5: ..."
    export = build_parser().parse_args(["export", "--checkpoint", "c", "--output", "o"])
    assert as_flags(xpnet.InputError.for_argument("opset", "12: ..."), export) == "--opset 12: ..."
    assert as_flags(xpnet.TrainingDiverged("loss is nan"), args) == "loss is nan"


def _name(base: ast.expr) -> str:
    return base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
