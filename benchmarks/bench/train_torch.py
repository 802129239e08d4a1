"""The torch row: the case as native PyTorch (torch.nn.Linear, or Conv2d/MaxPool2d for case F, a ResNet of
basic blocks for case G), xpnet's initial weights."""
from __future__ import annotations

import os
import time

from .cases import onehot


def prepare() -> None:
    """torch's threads as BLAS gets them (OMP_NUM_THREADS, else every CPU); imported before the RSS after load."""
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count()))


def run_torch(case, dtype, X, y, epochs, device):
    """The case in native torch; dtype a mixed policy: float32 modules under torch.autocast in bfloat16/float16 (and
    torch.amp.GradScaler for float16), as a PyTorch user writes mixed precision."""
    import contextlib
    import torch
    from .cases import MIXED
    dev = torch.device(device)
    mixed = dtype if dtype in MIXED else None
    if mixed:
        dtype = "float32"
    autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16 if mixed == "bf16-mixed" else torch.float16)) \
        if mixed else contextlib.nullcontext
    scaler = torch.amp.GradScaler(dev.type) if mixed == "fp16-mixed" else None
    # full-precision float32 matrix products, as CuPy's default (CUPY_TF32 unset): no TF32 on either side
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    mods = []
    rng = case.host_rng()
    params = case.initial_params(rng)  # the same initial values as xpnet (and, for F and G, its shuffles from rng)
    if case.resnet:
        mods, params = [resnet(params)], []
    elif case.conv:  # native LeNet-5: torch.nn.Conv2d and MaxPool2d (oneDNN/ATen kernels)
        nn = torch.nn
        convs = [nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)]
        for m, (w, b) in zip(convs, params[:2]):
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(w))
                m.bias.copy_(torch.from_numpy(b))
        mods = [convs[0], nn.ReLU(), nn.MaxPool2d(2), convs[1], nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
        params = params[2:]
    for i, (w, b) in enumerate(params):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        mods += [lin] + ([torch.nn.Sigmoid() if case.hidden == "sigmoid" else torch.nn.ReLU()]
                         if i < len(case.layers) - 1 else [])
    net = torch.nn.Sequential(*mods).to(device=dev, dtype=getattr(torch, dtype))
    Xt = torch.from_numpy(X).to(dev)
    if case.loss == "logistic":
        T, loss_fn = torch.from_numpy(onehot(y, case.sizes[-1], dtype)).to(dev), torch.nn.BCEWithLogitsLoss(
            reduction=case.reduction)
    else:
        T, loss_fn = torch.from_numpy(y.astype("int64")).to(dev), torch.nn.CrossEntropyLoss(reduction=case.reduction)
    opt = torch.optim.SGD(net.parameters(), lr=case.lr, momentum=case.momentum)
    gen = torch.Generator().manual_seed(0)

    def epoch(order, bounds):
        for s, e in bounds:
            idx = order[s:e]
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_fn(net(Xt.index_select(0, idx)), T.index_select(0, idx))
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    warm = case.warm_bounds(X.shape[0])
    epoch(torch.arange(warm[-1][1], device=dev), warm)
    bounds, seconds = case.bounds(X.shape[0]), []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = torch.from_numpy(rng.permutation(X.shape[0])) if case.conv else \
            torch.randperm(X.shape[0], generator=gen)
        epoch(order.to(dev), bounds)
        seconds.append(time.perf_counter() - t0)
    return seconds, f"torch {torch.__version__}, {torch.get_num_threads()} threads, {dev}" + \
        (f", torch.autocast {mixed}" if mixed else "")


def resnet(params: dict, dtype=None):
    """Case G as a PyTorch user writes it (torchvision's BasicBlock, sized as xpnet's resnet_fashion_layers): a 3x3
    stem of 16 channels with BatchNorm and ReLU, basic blocks (32, stride 2), 32, (64, stride 2), 64 with 1x1
    shortcuts where the shape changes, global average pooling, Linear(64, 10); weights copied from xpnet's
    parameters, which come in the same order as the module's (dtype: the modules' torch dtype before the copy, so
    float64 weights stay exact; default float32, as torch.nn makes them)."""
    import torch
    nn = torch.nn

    def conv_bn(c_in, c_out, stride=1, kernel=3):
        return [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out)]

    class BasicBlock(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.body = nn.Sequential(*conv_bn(c_in, c_out, stride), nn.ReLU(), *conv_bn(c_out, c_out))
            self.shortcut = nn.Sequential(*conv_bn(c_in, c_out, stride, 1)) if stride != 1 or c_in != c_out else None

        def forward(self, x):
            return torch.relu(self.body(x) + (x if self.shortcut is None else self.shortcut(x)))

    net = nn.Sequential(*conv_bn(1, 16), nn.ReLU(), BasicBlock(16, 32, 2), BasicBlock(32, 32, 1),
                        BasicBlock(32, 64, 2), BasicBlock(64, 64, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(64, 10))
    if dtype is not None:
        net = net.to(dtype=dtype)
    mine = list(net.parameters())
    if [tuple(p.shape) for p in mine] != [tuple(v.shape) for v in params.values()]:
        raise RuntimeError("case G: the torch ResNet's parameters do not line up with xpnet's resnet_fashion_layers")
    with torch.no_grad():
        for p, v in zip(mine, params.values()):
            p.copy_(torch.from_numpy(v))
    return net
