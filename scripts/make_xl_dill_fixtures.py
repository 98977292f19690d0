"""Build StyleGAN-XL snapshots the way the official training loop writes them, with and without D.

Needs the official code (github.com/autonomousvision/stylegan_xl) as the working directory and on ``sys.path``,
``dill`` (0.3.4 as XL's environment.yml pins, or 0.4.x) and ``timm==0.4.12``; nothing of that is shipped here.
Run it once per dill version, e.g.::

    cd /tmp/stylegan_xl && PYTHONPATH=/tmp/dill034:. python /path/to/ganprior/scripts/make_xl_dill_fixtures.py \\
        --out tests/fixtures/xl_dill/dill034

What it writes (``module_src`` blanked in every committed pickle, as in the shared fixtures):

* ``G.pkl``: ``dict(G, D=None, G_ema, augment_pipe=None, training_set_kwargs, progress)`` via ``dill.dump``.
  Small width (``channel_max`` 16, ``w_dim`` 128, 10 classes); the mapping's class table, which XL always loads
  with all 1000 ImageNet rows, is cut to the ``c_dim`` rows a label can reach, to keep the file small;
* ``GD.pkl``: the same with ``D = ProjectedDiscriminator`` built from train.py's ImageNet kwargs (DeiT-B distilled +
  tf_efficientnet_lite0 through timm, forward-hook closures, ``types.MethodType`` attributes). The backbones are
  built with ``pretrained=False`` (no internet). With ``--d-tensors tiny`` (the default) every tensor of D is
  replaced by a one-element tensor after construction, so the file stays small: D is never used by ganprior and
  its object graph (classes, hooks, bound methods, dill records) is unchanged; ``--d-tensors full`` keeps them;
* ``reference.npz``: z, c, w and images from ``G_ema`` as loaded by the official ``legacy.load_network_pkl`` from
  the same snapshot written with its sources (the file without D; also tried with D, see ``info.json``).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch


def build_generator(res: int, seed: int, w_dim: int, c_dim: int):
    import dnnlib

    np.random.seed(seed)
    torch.manual_seed(seed)
    G_kwargs = dict(class_name="training.networks_stylegan3_resetting.Generator", z_dim=64, w_dim=w_dim,
                    mapping_kwargs=dict(rand_embedding=True, num_layers=2), channel_base=512, channel_max=16,
                    magnitude_ema_beta=0.5 ** (64 / (20 * 1e3)), conv_kernel=3, use_radial_filters=False,
                    num_layers=14)
    common = dict(c_dim=c_dim, img_resolution=res, img_channels=3)
    G = dnnlib.util.construct_class_by_name(**G_kwargs, **common).train().requires_grad_(False)
    embed = G.mapping.embed  # always the shipped 1000-class table; keep the rows c_dim can reach (file size)
    embed.weight = torch.nn.Parameter(embed.weight[:c_dim].clone(), requires_grad=False)
    embed.num_embeddings = c_dim
    with torch.no_grad():  # emulate a trained state: no parameter stays at its constant init
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        G.mapping.w_avg.copy_(torch.randn_like(G.mapping.w_avg))
        for name, b in G.named_buffers():
            if name.endswith("magnitude_ema"):
                b.fill_(float(np.random.uniform(0.5, 2.0)))
    G_ema = copy.deepcopy(G).eval()
    with torch.no_grad():
        for p in G_ema.parameters():
            p.add_(torch.randn_like(p) * 0.02 * p.abs().mean())
    return G, G_ema, common


def build_discriminator(common: dict, tiny: bool):
    import dnnlib
    import timm

    create = timm.create_model
    timm.create_model = lambda name, pretrained=False, **kw: create(name, pretrained=False, **kw)
    try:
        D_kwargs = dnnlib.EasyDict(class_name="pg_modules.discriminator.ProjectedDiscriminator",
                                   backbones=["deit_base_distilled_patch16_224", "tf_efficientnet_lite0"],
                                   diffaug=True, interp224=common["img_resolution"] < 224,
                                   backbone_kwargs=dnnlib.EasyDict(cout=64, expand=True, proj_type=2, num_discs=4,
                                                                   cond=True))
        D = dnnlib.util.construct_class_by_name(**D_kwargs, **common).train().requires_grad_(False)
    finally:
        timm.create_model = create
    if tiny:  # every tensor of D (parameters, buffers, spectral-norm weights and hook activations kept as
        # attributes) -> 1 element
        with torch.no_grad():
            for module in D.modules():
                groups = [module._parameters, module._buffers, module.__dict__]
                groups += [v for v in module.__dict__.values() if isinstance(v, dict) and not v is module._modules]
                for group in groups:
                    for key, t in list(group.items()):
                        if isinstance(t, torch.Tensor):
                            small = t.reshape(-1)[:1].clone()
                            group[key] = torch.nn.Parameter(small, t.requires_grad) \
                                if isinstance(t, torch.nn.Parameter) else small
    return D


def snapshot(G, D, G_ema, res: int) -> dict:
    """What training_loop.py dumps (its restart checkpoint): modules as they are, then ``progress``."""
    data = dict(G=G, D=D, G_ema=G_ema, augment_pipe=None,
                training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path="./data/x.zip",
                                         use_labels=True, max_size=1000, xflip=False, resolution=res,
                                         random_seed=0))
    data["progress"] = {"cur_nimg": torch.LongTensor([1000]), "cur_tick": torch.LongTensor([1]),
                        "batch_idx": torch.LongTensor([7]), "best_fid": 9999}
    return data


def dump(data: dict, blank_sources: bool) -> bytes:
    import dill

    saved = {}
    if blank_sources:
        for obj in (data["G"], data["G_ema"], data["D"]):  # D's heads use persistent layers too
            if obj is None:
                continue
            for m in obj.modules():
                cls = type(m)
                if hasattr(cls, "_orig_module_src") and cls not in saved:
                    saved[cls] = cls._orig_module_src
                    cls._orig_module_src = ""
    try:
        buf = io.BytesIO()
        dill.dump(data, buf)
        return buf.getvalue()
    finally:
        for cls, src in saved.items():
            cls._orig_module_src = src


def reference(raw: bytes, c_dim: int, seed: int) -> dict:
    import legacy

    G = legacy.load_network_pkl(io.BytesIO(raw))["G_ema"].eval()
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(4, G.z_dim, generator=gen)
    c = torch.nn.functional.one_hot(torch.tensor([0, 3, 5, 9]) % c_dim, c_dim).float()
    with torch.no_grad():
        w = G.mapping(z, c, truncation_psi=1.0)
        w7 = G.mapping(z, c, truncation_psi=0.7)
        img = G.synthesis(w, noise_mode="const", force_fp32=True)
    return {"z": z.numpy(), "c": c.numpy(), "w": w.numpy(), "w_psi07": w7.numpy(), "img": img.numpy()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--res", type=int, default=16)
    parser.add_argument("--w-dim", type=int, default=128)
    parser.add_argument("--c-dim", type=int, default=10)
    parser.add_argument("--seed", type=int, default=29)
    parser.add_argument("--d-tensors", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args(argv)
    import dill

    args.out.mkdir(parents=True, exist_ok=True)
    G, G_ema, common = build_generator(args.res, args.seed, args.w_dim, args.c_dim)
    D = build_discriminator(common, tiny=args.d_tensors == "tiny")
    info = {"dill": dill.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0], "res": args.res, "w_dim": args.w_dim, "c_dim": args.c_dim,
            "seed": args.seed, "d_tensors": args.d_tensors}
    for name, d in (("G.pkl", None), ("GD.pkl", D)):
        raw = dump(snapshot(G, d, G_ema, args.res), blank_sources=True)
        (args.out / name).write_bytes(raw)
        info[f"{name}_bytes"] = len(raw)
    if not args.skip_reference:
        ref = reference(dump(snapshot(G, None, G_ema, args.res), blank_sources=False), args.c_dim, args.seed)
        np.savez_compressed(args.out / "reference.npz", **ref)
        try:
            with_d = reference(dump(snapshot(G, D, G_ema, args.res), blank_sources=False), args.c_dim, args.seed)
            info["official_loads_GD"] = bool(np.array_equal(with_d["img"], ref["img"]))
        except Exception as exc:  # noqa: BLE001 - recorded, e.g. dill 0.3.4 code objects on Python 3.11
            info["official_loads_GD"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    (args.out / "info.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
