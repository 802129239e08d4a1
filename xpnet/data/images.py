"""Image folders as a map-style dataset (xpnet.training.sources' protocol): one subfolder per class, the
convention of torchvision's ImageFolder and Keras' image_dataset_from_directory. Needs Pillow (the `images`
extra: pip install "xpnet[images]").

    root/ankle boot/00017.png                 class folders, sorted by name: class i is the i-th
    root/bag/00001.png                        files under each (any depth), sorted by their path
    ds = ImageFolder("root", size=(28, 28), color="gray")
    ds.class_names                            ['ankle boot', 'bag', ...]: Sequential.fit names the outputs so
    x, y = ds.__getitems__([0, 5])            x uint8 (2, 1, 28, 28) (rgb: (2, 3, H, W)), y int64 class indices

Files are listed once, in a deterministic order (class folder, then path); each is checked when the dataset is
made (Pillow's `Image.open` and `verify`: the header and, for PNG, every chunk's checksum, without decoding the
pixels): an unreadable one is refused in one line naming it, or skipped and counted (skip_bad=True, `skipped`).
Pixels are decoded only when a batch asks for them: converted to gray ("L", ITU-R 601-2 luma) or RGB, and
resized to `size` with Lanczos filtering where the image has another size (as `xpnet predict` reads an image).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import InputError

#: the file suffixes read as images (lower case), here and by `xpnet predict`
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")

COLORS = ("gray", "rgb")


def pil():
    """PIL.Image, or one line saying how to install Pillow."""
    try:
        from PIL import Image
    except ImportError:
        raise InputError('reading images needs Pillow: pip install "xpnet[images]"') from None
    return Image


def image_files(folder: Path) -> list[Path]:
    """The image files under `folder` (any depth, hidden ones left out), sorted by their path."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def parse_size(text) -> tuple[int, int] | None:
    """--image-size: "28x28" (height x width) or "28" (square) -> (28, 28); None stays None."""
    if text is None or isinstance(text, tuple):
        return text
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise InputError(f"an image size is HEIGHTxWIDTH such as 28x28 (or one number for a square), got {text!r}")
    return size


class ImageFolder:
    """A map-style dataset of the images in `root`'s class subfolders (see the module's docstring).

    size: (height, width) every image is resized to (None: the first image's); color: "gray" (1 channel) or
    "rgb" (3); skip_bad: skip unreadable files (their paths in `skipped`) instead of refusing them. Rows are
    uint8 (channels, height, width); targets int64 class indices in the order of `class_names`."""

    def __init__(self, root, size=None, color: str = "gray", skip_bad: bool = False):
        Image = pil()
        self.root = Path(root).expanduser()
        if color not in COLORS:
            raise InputError(f"color must be gray or rgb, got {color!r}")
        if not self.root.is_dir():
            raise InputError(f"{self.root}: no such folder; an image dataset is a folder with one subfolder of "
                             f"images per class")
        self.class_names = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not self.class_names:
            raise InputError(f"{self.root}: no class subfolders; put each class's images in a subfolder named after "
                             f"it (root/cat/1.png, root/dog/2.png)")
        files, targets, bad, first = [], [], [], None
        for k, name in enumerate(self.class_names):
            found = image_files(self.root / name)
            if not found:
                raise InputError(f"{self.root / name}: a class folder without images ({', '.join(IMAGE_SUFFIXES)}); "
                                 f"add some or remove the folder")
            for p in found:
                try:
                    with Image.open(p) as im:
                        dims = im.size
                        im.verify()
                except Exception as exc:
                    bad.append((p, exc))
                    continue
                first = first or dims
                files.append(p)
                targets.append(k)
        if bad and not skip_bad:
            p, exc = bad[0]
            more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
            raise InputError(f"{p}{more}: not a readable image ({type(exc).__name__}: {exc}); remove "
                             f"{'it' if len(bad) == 1 else 'them'}, or skip unreadable files (--skip-bad-images, "
                             f"skip_bad=True)")
        if not files:
            raise InputError(f"{self.root}: none of its {len(bad)} image files is readable")
        self.skipped = [str(p) for p, _ in bad]
        self.files, self.targets = files, np.asarray(targets, dtype=np.int64)
        self.size = parse_size(size) or (first[1], first[0])  # PIL's (width, height) -> (height, width)
        self.color, self.name = color, str(self.root)
        self.sample_shape = (1 if color == "gray" else 3, *self.size)

    def __len__(self) -> int:
        return len(self.files)

    def decode(self, i: int) -> np.ndarray:
        """Image i's pixels, uint8 (channels, height, width): converted, resized where its size differs."""
        Image, path = pil(), self.files[i]
        h, w = self.size
        try:
            with Image.open(path) as im:
                im = im.convert("L" if self.color == "gray" else "RGB")
                if im.size != (w, h):
                    im = im.resize((w, h), Image.LANCZOS)
                a = np.asarray(im, dtype=np.uint8)
        except Exception as exc:
            raise InputError(f"{path}: not a readable image ({type(exc).__name__}: {exc}); remove it, or make "
                             f"the dataset again with --skip-bad-images (skip_bad=True)") from None
        return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)

    def __getitems__(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """(x uint8 (len(indices), channels, height, width), y int64 (len(indices),)): the images decoded now."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        x = np.empty((len(idx), *self.sample_shape), dtype=np.uint8)
        for j, i in enumerate(idx):
            x[j] = self.decode(int(i))
        return x, self.targets[idx]

    def labels(self) -> np.ndarray:
        """Every image's class index (len,) int64."""
        return self.targets.copy()

    def fingerprint(self) -> str:
        """A SHA-256 of the file list (paths under root, sizes in bytes), the classes, image size and color:
        what a resumed run checks it trains on the same data, without decoding it."""
        h = hashlib.sha256(f"{self.class_names}{self.size}{self.color}".encode())
        for p, t in zip(self.files, self.targets):
            h.update(f"{p.relative_to(self.root)}\0{p.stat().st_size}\0{t}\n".encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        return (f"ImageFolder({self.name!r}, {len(self.files)} images, {len(self.class_names)} classes, "
                f"{self.color} {self.size[0]}x{self.size[1]})")
