"""The papers' evaluation protocols as presets, with the numbers the papers report.

A :class:`Protocol` fixes what a paper fixed: the model, the image resolution and preprocessing,
the tasks (masks, SR factors and kernels), the methods, their iteration budgets and the measures
per task. Its :class:`PaperTable` entries hold the published numbers, transcribed from the paper
text in ``/work/shared/papers/`` (table number in ``ref``), so a run can print "paper vs ours".

Paper values are stored exactly as printed; ``scale`` converts them to our units (the DGP paper
prints SSIM × 100). Columns of methods this toolkit does not implement (DIP, SinGAN, ...) are kept
for reference; they are simply never matched by a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ganprior.tasks import has_kind


class ProtocolError(ValueError):
    """An unknown protocol name."""


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark task: a ``parse_task`` string plus how its degraded inputs are made.

    ``measures`` lists what is reported for it (empty = the runner's defaults for the task).
    ``score`` picks the image that is scored: ``"fused"`` (observed pixels / lightness put back,
    what ``restore`` returns) or ``"raw"`` (the generator's output, as the papers' code saves it).
    """

    name: str
    task: str
    mask: str | None = None
    sr_kernel: str = "bicubic"
    measures: tuple[str, ...] = ()
    score: str = "fused"
    #: how a mask *file* marks holes (black, white, transparent), as ``restore --mask-hole-value``
    mask_hole_value: str | None = None

    @classmethod
    def from_string(cls, task: str, mask: str = "center", mask_hole_value: str | None = None) -> "TaskSpec":
        """A command-line task (``"sr4"``, ``"colorize+inpaint"``); inpainting gets ``mask``."""
        task = task.strip()
        has_inpaint = has_kind(task, "inpaint")
        # Reconstruction observes everything: its fused image would be the input itself.
        score = "raw" if task.lower() in ("reconstruct", "identity", "none") else "fused"
        return cls(name=task, task=task, mask=mask if has_inpaint else None, score=score,
                   mask_hole_value=mask_hole_value if has_inpaint else None)


@dataclass(frozen=True)
class Variant:
    """A method with fixed option overrides, shown as its own column (e.g. DGP's MSE-biased SR).

    ``tasks`` limits it to those task names (empty = every task).
    """

    method: str
    options: dict[str, Any] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()


@dataclass(frozen=True)
class PaperTable:
    """Published numbers: ``values[task][measure][method] = value as printed``."""

    ref: str
    caption: str
    values: dict[str, dict[str, dict[str, float]]]
    #: our method key -> the paper's column name
    columns: dict[str, str]
    #: measure -> factor turning the printed value into our unit
    scale: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def value(self, task: str, measure: str, method: str) -> float | None:
        """The paper's value in our units, or None when the paper has no such cell."""
        raw = self.values.get(task, {}).get(measure, {}).get(method)
        return None if raw is None else raw * self.scale.get(measure, 1.0)


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    paper: str
    model: str
    resolution: int
    test_set: str
    n_images: int
    tasks: tuple[TaskSpec, ...]
    methods: tuple[str, ...]
    preset: str = "official"
    #: per-method option overrides (on top of the method's ``paper`` preset)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: extra columns: name -> a method with options (usable in ``methods`` or with ``--methods``)
    variants: dict[str, Variant] = field(default_factory=dict)
    #: how a photo becomes a square clean image: centre crop of the short side, then this resize kernel
    resize_kernel: str = "bicubic"
    lpips_net: str = "alex"
    fid_reference: str = "the clean images of the test set"
    tables: tuple[PaperTable, ...] = ()
    notes: tuple[str, ...] = ()


# ----- CRI (Wang et al., AAAI 2023) --------------------------------------------------------------
_CRI = "Wang et al., Clustering & Regularize Inversion (CRI), AAAI 2023 (cri-aaai2023.txt)"
_CRI_TASKS_XL = (
    TaskSpec("inpaint", "inpaint", mask="center", measures=("lpips", "fid"), score="raw"),
    TaskSpec("colorize", "colorize", measures=("lpips", "fid"), score="raw"),
    TaskSpec("sr4", "sr4", sr_kernel="bicubic", measures=("lpips", "niqe"), score="raw"),
)
_CRI_STEPS_XL = {"cri": {"offset_steps": 1000, "tuning_steps": 350}}

CRI_IMAGENET_XL512 = Protocol(
    name="cri-imagenet-xl512",
    title="CRI on ImageNet with StyleGAN-XL 512: inpainting, colorization, SR x4 (Tables 1-2)",
    paper=_CRI,
    model="stylegan_xl-imagenet512",
    resolution=512,
    test_set="1000 ImageNet validation images, each from a different class (list file 'path label')",
    n_images=1000,
    tasks=_CRI_TASKS_XL,
    methods=("dgp", "pti", "cri"),
    method_options=_CRI_STEPS_XL,
    tables=(
        PaperTable(
            ref="CRI Table 1",
            caption="Against DGP and PTI, StyleGAN-XL pre-trained on ImageNet, ImageNet val",
            values={
                "inpaint": {"lpips": {"dgp": 0.2612, "pti": 0.1219, "cri": 0.1164},
                            "fid": {"dgp": 166.24, "pti": 54.62, "cri": 44.73}},
                "colorize": {"lpips": {"dgp": 0.3105, "pti": 0.1994, "cri": 0.1914},
                             "fid": {"dgp": 78.32, "pti": 47.51, "cri": 45.90}},
                "sr4": {"lpips": {"dgp": 0.2726, "pti": 0.2429, "cri": 0.2390},
                        "niqe": {"dgp": 8.4044, "pti": 5.5659, "cri": 5.3065}},
            },
            columns={"dgp": "DGP", "pti": "PTI", "cri": "Ours"},
        ),
        PaperTable(
            ref="CRI Table 2",
            caption="DGP with BigGAN (ImageNet, 256 px output resized to 512) vs CRI with StyleGAN-XL; "
                    "for SR both inputs are 128 px",
            values={
                "inpaint": {"lpips": {"dgp-biggan": 0.1316, "cri": 0.1211},
                            "fid": {"dgp-biggan": 116.12, "cri": 80.20}},
                "colorize": {"lpips": {"dgp-biggan": 0.2256, "cri": 0.1842},
                             "fid": {"dgp-biggan": 189.42, "cri": 92.48}},
                "sr4": {"lpips": {"dgp-biggan": 0.2226, "cri": 0.2224},
                        "niqe": {"dgp-biggan": 9.2102, "cri": 5.5686}},
            },
            columns={"dgp-biggan": "DGP (BigGAN)", "cri": "Ours"},
            note="a different evaluation from Table 1 (CRI's own numbers differ); DGP ran with BigGAN, not XL",
        ),
    ),
    notes=(
        "Inputs are centre-cropped and resized to 512 (official scripts); hole = centred square of side "
        "min(h, w)//3; grey = 0.2989 R + 0.5870 G + 0.1140 B; SR x4 by bicubic downsampling (official script).",
        "Iterations (paper, Implementation details): 1000 offset + 350 fine-tuning steps for StyleGAN-XL.",
        "Measures (paper): LPIPS and FID for inpainting and colorization, LPIPS and NIQE for SR. The paper "
        "does not name the LPIPS backbone; we use the lpips package default (AlexNet).",
        "The paper inverts PTI to W for colorization and everything else to W+.",
        "FID reference set: not stated for ImageNet; by default the clean test images.",
        "Scored image: the raw generator output (the official scripts save G's synthesis as proj.png).",
    ),
)

CRI_CELEBAHQ_SG2_1024_SR16 = Protocol(
    name="cri-celebahq-sg2-1024-sr16",
    title="CRI on CelebA-HQ faces with StyleGAN2 FFHQ 1024: inpainting, colorization, SR x16 (Tables 3-4)",
    paper=_CRI,
    model="stylegan2-ffhq-1024x1024",
    resolution=1024,
    test_set="500 CelebA-HQ images (folder or list file)",
    n_images=500,
    tasks=(
        TaskSpec("inpaint", "inpaint", mask="center", measures=("lpips", "fid", "id_sim"), score="raw"),
        TaskSpec("colorize", "colorize", measures=("lpips", "fid", "id_sim"), score="raw"),
        TaskSpec("sr16", "sr16", sr_kernel="bicubic", measures=("lpips", "fid", "id_sim"), score="raw"),
    ),
    methods=("dgp", "pulse", "pti", "cri"),
    method_options={"cri": {"offset_steps": 500, "tuning_steps": 20}},
    variants={"cri-noreg": Variant("cri", {"offset_steps": 500, "tuning_steps": 20, "offset_weight": 0.0},
                                   ("colorize",))},
    fid_reference="the full CelebA-HQ dataset (30000 images): pass --fid-reference DIR",
    tables=(
        PaperTable(
            ref="CRI Table 3",
            caption="Against PULSE, DGP and PTI, StyleGAN2 pre-trained on FFHQ, CelebA-HQ (500 images)",
            values={
                "inpaint": {"lpips": {"dgp": 0.1311, "pulse": 0.1387, "pti": 0.1293, "cri": 0.1279},
                            "fid": {"dgp": 68.32, "pulse": 59.20, "pti": 53.48, "cri": 48.00}},
                "colorize": {"lpips": {"dgp": 0.1621, "pulse": 0.1924, "pti": 0.1990, "cri": 0.1505},
                             "fid": {"dgp": 74.24, "pulse": 116.06, "pti": 56.01, "cri": 46.54}},
                "sr16": {"lpips": {"dgp": 0.1481, "pulse": 0.1385, "pti": 0.1317, "cri": 0.1297},
                         "fid": {"dgp": 68.56, "pulse": 60.01, "pti": 60.76, "cri": 58.88}},
            },
            columns={"dgp": "DGP", "pulse": "PULSE", "pti": "PTI", "cri": "Ours"},
            note="FID between the 500 restored images and all 30000 CelebA-HQ images",
        ),
        PaperTable(
            ref="CRI Table 4",
            caption="Ablation of the offset regulariser, face colorization with StyleGAN2, 60 CelebA-HQ images",
            values={"colorize": {"lpips": {"cri-noreg": 0.1996, "cri-l1": 0.1694, "cri": 0.1560},
                                 "id_similarity": {"cri-noreg": 0.7251, "cri-l1": 0.1955, "cri": 0.5756}}},
            columns={"cri-noreg": "w/o Reg", "cri-l1": "L1", "cri": "Ours"},
            note="a 60-image subset (run it with --methods cri,cri-noreg --tasks colorize --limit 60); "
                 "'w/o Reg' = cri with offset_weight 0; L1 is not implemented; the paper's ID similarity network "
                 "is not named; ours (id_sim) is the cosine of dlib's ResNet face embedding, so its values are "
                 "not comparable with these (only the ordering of methods is)",
        ),
    ),
    notes=(
        "Resolution 1024, SR factor 16 (64 px inputs); 500 offset + 20 fine-tuning iterations for StyleGAN2.",
        "The paper does not say which FFHQ StyleGAN2 checkpoint; this preset uses NVIDIA's config-f "
        "stylegan2-ffhq-1024x1024.",
        "Italic (second-best) marks in the paper's Table 3 are not kept.",
        "Scored image: the raw generator output, as for the ImageNet protocol.",
    ),
)

# ----- DGP (Pan et al., ECCV 2020 / TPAMI) --------------------------------------------------------
_DGP = "Pan et al., Exploiting Deep Generative Prior (DGP), ECCV 2020 / TPAMI (dgp-eccv2020-tpami.txt)"

DGP_IMAGENET_BIGGAN128 = Protocol(
    name="dgp-imagenet-biggan128",
    title="DGP on the ImageNet val 1k list with BigGAN 128: reconstruction, colorization, inpainting, SR x4 "
          "(Tables 1-4)",
    paper=_DGP,
    model="biggan-dgp-128",
    resolution=128,
    test_set="DGP's scripts/imagenet_val_1k.txt: the first val image of each class, 'ILSVRC2012_val_X.JPEG label' "
             "(pass the list file with --images and the val folder with --images-root)",
    n_images=1000,
    tasks=(
        TaskSpec("reconstruct", "reconstruct", measures=("psnr", "ssim", "mse"), score="raw"),
        TaskSpec("colorize", "colorize", measures=("psnr", "ssim"), score="fused"),
        TaskSpec("inpaint", "inpaint", mask="center", measures=("psnr_hole", "ssim_hole"), score="raw"),
        TaskSpec("sr4", "sr4", sr_kernel="dgp-lanczos2", measures=("niqe", "psnr", "rmse"), score="raw"),
    ),
    methods=("dgp", "dgp-mse"),
    variants={"dgp-mse": Variant("dgp", {"schedule": "sr-mse"}, ("sr4",))},
    resize_kernel="bilinear",
    tables=(
        PaperTable(
            ref="DGP Table 1",
            caption="Image reconstruction against other GAN-inversion methods, ImageNet val 1k",
            values={"reconstruct": {
                "psnr": {"(a)": 15.97, "(b)": 11.39, "(c)": 16.46, "(d)": 22.49, "dgp": 32.89},
                "ssim": {"(a)": 46.84, "(b)": 32.08, "(c)": 47.78, "(d)": 73.17, "dgp": 95.95},
                "mse": {"(a)": 29.61, "(b)": 85.04, "(c)": 28.32, "(d)": 6.91, "dgp": 1.26},
            }},
            columns={"(a)": "(a) latent optimisation", "(b)": "(b) encoder", "(c)": "(c) encoder + optimisation",
                     "(d)": "(d) Bau et al. [5]", "dgp": "Ours"},
            scale={"ssim": 0.01, "mse": 1e-3},
            note="SSIM printed x100, MSE printed x1e-3 (on the [0, 1] scale)",
        ),
        PaperTable(
            ref="DGP Table 2",
            caption="Inpainting: PSNR and SSIM of the inpainted area, ImageNet val 1k",
            values={"inpaint": {
                "psnr_hole": {"DIP": 14.58, "Zhu et al.": 13.70, "Bau et al. [5]": 15.01, "Bau et al. [4]": 14.33,
                              "dgp": 16.97},
                "ssim_hole": {"DIP": 29.37, "Zhu et al.": 33.09, "Bau et al. [5]": 33.95, "Bau et al. [4]": 30.60,
                              "dgp": 45.89},
            }},
            columns={"dgp": "Ours"},
            scale={"ssim_hole": 0.01},
            note="SSIM printed x100",
        ),
        PaperTable(
            ref="DGP Table 3",
            caption="Super-resolution x4: NIQE, PSNR and RMSE, ImageNet val 1k; (MSE) and (D) = which loss DGP "
                    "is biased to",
            values={"sr4": {
                "niqe": {"DIP": 6.03, "SinGAN": 6.28, "Bau et al. [4]": 5.05, "dgp-mse": 5.30, "dgp": 4.90},
                "psnr": {"DIP": 23.02, "SinGAN": 20.80, "Bau et al. [4]": 19.89, "dgp-mse": 23.30, "dgp": 22.00},
                "rmse": {"DIP": 17.84, "SinGAN": 19.78, "Bau et al. [4]": 25.42, "dgp-mse": 17.40, "dgp": 20.09},
            }},
            columns={"dgp-mse": "Ours (MSE)", "dgp": "Ours (D)"},
            note="RMSE on the 0..255 scale; 'dgp' is the discriminator-biased setting (Table 9)",
        ),
        PaperTable(
            ref="DGP Table 4",
            caption="Ablation of loss type and fine-tuning strategy",
            values={
                "colorize": {"resnet50_top1": {"MSE": 49.1, "Perceptual": 53.9, "Discriminator": 56.8, "dgp": 62.8}},
                "sr4": {"niqe": {"MSE": 6.54, "Perceptual": 6.27, "Discriminator": 6.06, "dgp": 4.90},
                        "psnr": {"MSE": 21.24, "Perceptual": 20.30, "Discriminator": 21.58, "dgp": 22.00}},
            },
            columns={"dgp": "Discriminator + Progressive"},
            note="colorization is scored by the top-1 accuracy of an ImageNet ResNet-50 (not measured here: no "
                 "registry ships its weights); the text gives 51.5 / 56.2 / 56.0 / 62.8 % for Autocolorize / "
                 "Bau et al. [5] / Bau et al. [4] / DGP",
        ),
        PaperTable(
            ref="DGP Table 5",
            caption="Adversarial defence, ResNet-50 accuracy (%), 256 px model",
            values={"defence": {
                "top1": {"clean image": 74.9, "adversarial": 1.4, "DefenceGAN": 0.2, "DIP": 37.5, "dgp": 41.3},
                "top5": {"clean image": 92.7, "adversarial": 12.0, "DefenceGAN": 1.4, "DIP": 61.2, "dgp": 65.9},
            }},
            columns={"dgp": "Ours"},
            note="kept for reference: needs the ATN attacker and an ImageNet ResNet-50, not part of this benchmark",
        ),
    ),
    notes=(
        "Targets: centre crop of the long edge, resize to 128 (bilinear), as DGP's dataset code.",
        "Hole: centred square of side h//3 (128 px: rows/cols 43..84); the hole is filled with 0 (mid-grey).",
        "SR x4: observations by PIL Lanczos on truncated uint8 (DGP's target path), model degradation "
        "DIP's Lanczos-2 (kernel 'dgp-lanczos2'); scored on the full 128 px output, RGB, no border crop.",
        "Fine-tuning schedules: the official 128 px scripts (experiments/imagenet1k_128/*/train.sh), the dgp "
        "method's 'official' preset ('dgp' = SR/D_biased, column 'dgp-mse' = SR/MSE_biased); --preset paper "
        "uses the appendix Tables 6-9 instead.",
        "Reconstruction (Table 1) has no official script; the dgp 'reconstruct' schedule is used.",
        "DGP computed SSIM with skimage's old defaults (7x7 uniform window, data range 2, per channel); we "
        "report SSIM with the Wang et al. settings on MATLAB-grey, so small offsets are expected.",
        "NIQE needs at least two 96x96 blocks: at 128 px it is reported as unavailable.",
        "Colorization is scored in the paper by ResNet-50 accuracy (Table 4 / text); we report PSNR/SSIM "
        "as DGP's code logs them.",
        "Class labels are given (the list file's second column), as in the paper.",
        "Scored image: the raw generator output, except colorization, whose a*b* is kept with the lightness "
        "that gives the observed grey ('lab-luma' fusion; DGP's code takes L* from the ground truth, "
        "dgp_spec.md 3.1: both leave a perfect restoration unchanged).",
    ),
)

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (CRI_IMAGENET_XL512, CRI_CELEBAHQ_SG2_1024_SR16,
                                                     DGP_IMAGENET_BIGGAN128)}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def list_protocols() -> list[Protocol]:
    return list(PROTOCOLS.values())
