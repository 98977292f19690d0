"""Attribute classifier of the cartoon faces: scores samples and restorations by what the face really was.

Why a classifier of our own: FID's Inception features (and a projected discriminator's backbone)
can be gamed by what is optimised against them; a small CNN trained on the *train* split only to
read off the render parameters (eyes, mouth, skin/hair/clothes colour, ...) gives two scores that
neither uses:

* :func:`attribute_accuracy`: did a restoration restore the right attributes (vs the held-out labels)?
* :func:`histogram_distance`: total-variation distance between the predicted attribute histograms
  of generated samples and of real images (mode coverage per attribute).

One trunk, one head per attribute column of ``attrs`` (see :mod:`ganprior.data.cartoon_faces`), plus
a style head. A column is trained and scored only on images of its style.

    python -m ganprior.data.cartoon_faces_attributes --data data/cache/faces_32.npz \\
        --out src/ganprior/assets/faces32/attributes.safetensors
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ganprior.atomic import atomic_path
from ganprior.data.cartoon_faces import STYLES, load_faces_test, vocab_from_arrays

#: attributes drawn for every image but visible only with some value of another: (other, values shown with)
_SHOWN_WITH = {
    "avataaars.hatColor": ("avataaars.top", {"hat", "hijab", "turban", "winterHat1", "winterHat02", "winterHat03",
                                             "winterHat04"}),
    "avataaars.clothingGraphic": ("avataaars.clothing", {"graphicShirt"}),
    "avataaars.accessoriesColor": ("avataaars.accessories", None),  # None: any value but "none"
    "avataaars.facialHairColor": ("avataaars.facialHair", None),
}


def visible_attrs(attrs: np.ndarray, names: tuple[str, ...], vocab: dict[str, dict[str, list[str]]]) -> np.ndarray:
    """``attrs`` with -1 where the attribute is not drawn in the image (a hat colour without a hat, ...):
    such labels are neither learnt nor scored."""
    out = attrs.copy()
    for name, (other, shown) in _SHOWN_WITH.items():
        if name not in names:
            continue
        style, attr = other.split(".", 1)
        values = vocab[style][attr]
        keep = [i for i, v in enumerate(values) if (v != "none" if shown is None else v in shown)]
        col = out[:, names.index(other)]
        out[~np.isin(col, keep), names.index(name)] = -1
    return out


class AttributeNet(nn.Module):
    """A 4-stage CNN for ``[N, 3, R, R]`` images in ``[-1, 1]`` -> style logits and per-attribute logits."""

    def __init__(self, head_sizes: list[int], width: int = 16) -> None:
        super().__init__()
        layers, c_in = [], 3
        for c_out in (width, width * 2, width * 4, width * 4):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c_in = c_out
        self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head_sizes, self.width = list(head_sizes), width
        self.head = nn.Linear(c_in * 4, len(STYLES) + sum(head_sizes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        logits = self.head(self.trunk(x))
        style, rest = logits[:, :len(STYLES)], logits[:, len(STYLES):]
        return style, list(torch.split(rest, self.head_sizes, dim=1))


def _to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NHWC (numpy or tensor) -> float NCHW in [-1, 1]; float NCHW tensors in [-1, 1] pass through."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if images.dtype == torch.uint8:
        return images.permute(0, 3, 1, 2).float().div(127.5).sub(1)
    return images.float()


@torch.no_grad()
def predict(net: AttributeNet, images: np.ndarray | torch.Tensor, styles: np.ndarray | None = None,
            batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(style, attrs): predicted style per image and ``[N, A]`` attribute indices, -1 on the columns of
    the other style (``styles`` given: the known style; else the predicted one)."""
    net.eval()
    style_out, attr_out = [], []
    for start in range(0, len(images), batch):
        style, heads = net(_to_input(images[start:start + batch]))
        style_out.append(style.argmax(1))
        attr_out.append(torch.stack([h.argmax(1) for h in heads], 1))
    style = torch.cat(style_out).numpy()
    attrs = torch.cat(attr_out).numpy().astype(np.int16)
    used = style if styles is None else np.asarray(styles)
    attrs[used[:, None] != np.asarray(net.column_styles)[None, :]] = -1
    return style, attrs


def attribute_accuracy(pred: np.ndarray, true: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """Per attribute column, the fraction of images of its style whose attribute is predicted right."""
    out = {}
    for j, name in enumerate(names):
        own = true[:, j] >= 0
        if own.any():
            out[name] = float((pred[own, j] == true[own, j]).mean())
    return out


def histogram_distance(pred_a: np.ndarray, pred_b: np.ndarray, names: tuple[str, ...],
                       sizes: list[int]) -> dict[str, float]:
    """Per attribute, total variation between the value histograms of two sets (0 same, 1 disjoint)."""
    out = {}
    for j, (name, size) in enumerate(zip(names, sizes)):
        a, b = pred_a[pred_a[:, j] >= 0, j], pred_b[pred_b[:, j] >= 0, j]
        if len(a) and len(b):
            ha, hb = np.bincount(a, minlength=size) / len(a), np.bincount(b, minlength=size) / len(b)
            out[name] = float(0.5 * np.abs(ha - hb).sum())
    return out


def _column_meta(arrays: dict[str, np.ndarray]) -> tuple[tuple[str, ...], list[int], list[int]]:
    names = tuple(str(n) for n in arrays["attr_names"])
    vocab = vocab_from_arrays(arrays)
    sizes = [len(vocab[n.split(".", 1)[0]][n.split(".", 1)[1]]) for n in names]
    return names, sizes, [STYLES.index(n.split(".", 1)[0]) for n in names]


def train_attribute_net(data_path: str | Path, epochs: int = 3, batch: int = 128, seed: int = 0, width: int = 16,
                        log=print) -> AttributeNet:
    """Train on the ``train`` split of a built ``faces_{res}.npz`` (cross-entropy per own-style column)."""
    with np.load(data_path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k != "params"}
    names, sizes, column_styles = _column_meta(arrays)
    train = arrays["split"] == 0
    attrs = visible_attrs(arrays["attrs"][train], names, vocab_from_arrays(arrays)).astype(np.int64)
    images, styles = arrays["images"][train], arrays["labels"][train]
    torch.manual_seed(seed)
    net = AttributeNet(sizes, width)
    net.column_styles, net.attr_names = column_styles, names
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    steps = epochs * (len(images) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    ce = nn.CrossEntropyLoss(ignore_index=-1)
    gen = np.random.default_rng(seed)
    started, step = time.perf_counter(), 0
    for epoch in range(epochs):
        net.train()
        order = gen.permutation(len(images))
        for start in range(0, len(order) - batch + 1, batch):
            idx = np.sort(order[start:start + batch])
            style_logits, heads = net(_to_input(images[idx]))
            target = torch.from_numpy(attrs[idx])
            loss = ce(style_logits, torch.from_numpy(styles[idx])) + sum(
                ce(h, target[:, j]) for j, h in enumerate(heads) if (target[:, j] >= 0).any())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0:
                log(f"epoch {epoch} step {step}/{steps} loss {loss.item():.3f} ({time.perf_counter() - started:.0f} s)")
    return net.eval()


def save_attribute_net(net: AttributeNet, path: str | Path, metadata: dict | None = None) -> None:
    meta = {"head_sizes": json.dumps(net.head_sizes), "width": json.dumps(net.width),
            "attr_names": json.dumps(list(net.attr_names)), "column_styles": json.dumps(list(net.column_styles)),
            **{k: json.dumps(v) for k, v in (metadata or {}).items()}}
    with atomic_path(Path(path)) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp), metadata=meta)


def load_attribute_net(path: str | Path) -> AttributeNet:
    """The classifier saved by :func:`save_attribute_net` (CPU, eval mode)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    net = AttributeNet(json.loads(meta["head_sizes"]), json.loads(meta.get("width", "16")))
    net.load_state_dict(load_file(str(path)))
    net.column_styles, net.attr_names = json.loads(meta["column_styles"]), tuple(json.loads(meta["attr_names"]))
    return net.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the cartoon-faces attribute classifier (train split only).")
    parser.add_argument("--data", type=Path, default=Path("data/cache/faces_32.npz"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=int, default=16, help="channels of the first stage (x2, x4, x4 after)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    net = train_attribute_net(args.data, args.epochs, width=args.width)
    test = load_faces_test(int(np.load(args.data, allow_pickle=False)["images"].shape[1]))
    style, attrs = predict(net, test.images, test.labels)
    acc = attribute_accuracy(attrs, visible_attrs(test.attrs, test.attr_names, test.vocab), test.attr_names)
    result = {"style_accuracy": float((style == test.labels).mean()), "held_out_accuracy": acc,
              "mean_accuracy": float(np.mean(list(acc.values()))), "epochs": args.epochs, "width": args.width}
    save_attribute_net(net, args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
