"""``ganprior bench``: run methods × tasks × images and write results.json, table.md, per_image.csv
and contact sheets into ``--out``. Re-running the same command resumes: finished cells are kept.
"""

from __future__ import annotations

from pathlib import Path

import click

from ganprior.image_files import HOLE_VALUES
from ganprior.mask_conventions import MASK_CONVENTION_HELP, MASK_CONVENTIONS, hole_value_for
from ganprior.methods import PRESETS


def _split(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise click.BadParameter("give at least one comma-separated name")
    return items


def _shard(text: str) -> tuple[int, int]:
    from ganprior.bench.runner import BenchError, parse_shard

    try:
        return parse_shard(text)
    except BenchError as err:
        raise click.BadParameter(str(err)) from None


def _compiled_prior(config):
    """The benchmark's model, loaded here so that ``--compile`` can wrap its networks."""
    from ganprior.bench import BenchError
    from ganprior.loading import LOAD_ERRORS, load_model
    from ganprior.models.compiled import compile_prior

    try:
        return compile_prior(load_model(config.model, device=config.device))
    except LOAD_ERRORS as err:
        raise BenchError(str(err)) from err


def _run(config, shard: tuple[int, int], compile_networks: bool, batch_size: int = 1) -> dict:
    """One process, or one rank of a ``torchrun`` launch: the ranks split the (task, image) pairs,
    meet at a barrier, and rank 0 then assembles the complete reports (computing nothing new)."""
    import dataclasses

    from ganprior import distributed
    from ganprior.bench import run_benchmark

    launch = distributed.launched()
    if launch is None:
        return run_benchmark(config, shard=shard, prior=_compiled_prior(config) if compile_networks else None,
                             batch_size=batch_size)
    config = dataclasses.replace(config, device=distributed.start(launch, config.device))
    try:
        prior = _compiled_prior(config) if compile_networks else None
        results = run_benchmark(config, shard=distributed.rank_shard(shard, launch), prior=prior,
                                progress=launch.is_main, batch_size=batch_size)
        distributed.barrier()
        if launch.is_main:
            results = run_benchmark(config, shard=shard, prior=prior, progress=False)
        distributed.barrier()
        return results
    finally:
        distributed.stop()


def _print_protocols() -> None:
    from ganprior.bench import list_protocols, render_paper_tables

    for p in list_protocols():
        click.echo(f"{p.name}\n  {p.title}\n  paper: {p.paper}\n  model: {p.model} at {p.resolution} px; "
                   f"test set: {p.test_set}\n  tasks: {', '.join(t.name for t in p.tasks)}; "
                   f"methods: {', '.join(p.methods)}; preset: {p.preset}")
        for note in p.notes:
            click.echo(f"  - {note}")
        click.echo("")
        click.echo(render_paper_tables(p))


def _with_method_options(config, pairs: tuple[str, ...]):
    """``config`` with ``--option METHOD.KEY=VALUE`` merged into its per-method options (checked per method)."""
    from dataclasses import replace

    from ganprior.methods.options import MethodOptionError, parse_method_options

    merged = {k: dict(v) for k, v in config.method_options.items()}
    for pair in pairs:
        method, dot, rest = pair.partition(".")
        if not dot or "=" in method:
            raise click.UsageError(f"--option {pair!r}: write METHOD.KEY=VALUE, e.g. --option cri.l2_weight=10")
        if method not in config.methods:
            raise click.UsageError(f"--option {pair!r}: {method!r} is not benchmarked here "
                                   f"(--methods: {', '.join(config.methods)})")
        try:
            merged.setdefault(method, {}).update(parse_method_options([rest], method))
        except MethodOptionError as exc:
            raise click.UsageError(str(exc)) from None
    return replace(config, method_options=merged) if pairs else config


@click.command("bench")
@click.option("--methods", default=None, help="Comma-separated methods (cri,pti,wplus,w,pulse,dgp); default: the "
                                              "protocol's, else cri.")
@click.option("--tasks", default=None, help="Comma-separated tasks (colorize,inpaint,sr4, or '+' mixes such as "
                                            "sr2+colorize); default: the protocol's, else colorize,inpaint,sr4. "
                                            "A protocol's task names keep its masks, kernels and measures.")
@click.option("--images", default=None, help="Folder of images, list file ('path [label]' per line) or emoji-test "
                                             "(default).")
@click.option("--images-root", default=None, type=click.Path(file_okay=False),
              help="Folder that relative paths of a list file start from (default: the list file's folder).")
@click.option("--model", default=None,
              help="Model name or checkpoint (default: the protocol's, else the embedded model).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the degraded inputs and every method.")
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Cap every optimisation stage (quick runs).")
@click.option("--preset", type=click.Choice(PRESETS), default=None,
              help="Method presets (default: the protocol's 'official', else 'fast').")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-out"),
              show_default=True, help="Output folder; re-running with the same folder resumes.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use only K images: spread over the classes (seeded) when the source has labels, else the first K.")
@click.option("--protocol", default=None, help="A paper protocol preset (see --list-protocols).")
@click.option("--list-protocols", is_flag=True, help="List the paper protocols with the papers' numbers and exit.")
@click.option("--mask", default="center", show_default=True, help="Hole of inpainting tasks given with --tasks "
                                                                  "(center, box:x0,y0,x1,y1, strokes, ...).")
@click.option("--mask-hole-value", type=click.Choice(HOLE_VALUES), default=None,
              help="Which pixels of a --mask file are holes (as in ganprior restore; required for files).")
@click.option("--mask-convention", type=click.Choice(tuple(MASK_CONVENTIONS)), default=None,
              help=MASK_CONVENTION_HELP)
@click.option("--perceptual", default=None, help="Perceptual distance the methods use (default: each method's).")
@click.option("--no-baselines", is_flag=True, help="Skip the classical baselines (input, bicubic, Telea).")
@click.option("--no-labels", is_flag=True, help="Ignore the images' class labels (methods then estimate the class).")
@click.option("--fid-min", type=click.IntRange(min=2), default=50, show_default=True,
              help="Compute FID/KID only for sets of at least this many images.")
@click.option("--fid-reference", default=None, type=click.Path(exists=True, file_okay=False),
              help="Folder of reference images for FID/KID (default: the clean test images).")
@click.option("--lpips-net", type=click.Choice(["alex", "vgg", "squeeze"]), default=None,
              help="LPIPS backbone (default: alex).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--shard", default="0/1", show_default=True, callback=lambda ctx, param, value: _shard(value),
              help="K/N: compute only every N-th (task, image) pair from K, so N processes can share one --out; "
                   "re-run without it afterwards for the complete table.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: torch's); 1 per process when shards share a CPU.")
@click.option("--compile", "compile_networks", is_flag=True,
              help="torch.compile the synthesis network and the discriminator features (cells are unchanged: "
                   "results equal eager to 1e-4).")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Restore the images of one task and method this many at a time (w, wplus, pulse, pti, cri, "
                   "DGP's candidate selection; the rest runs one at a time). Cells are the same: not part of "
                   "their fingerprint.")
@click.option("--option", "method_options", multiple=True, metavar="METHOD.KEY=VALUE",
              help="Set an option of one benchmarked method (repeatable; values as JSON), e.g. "
                   "--option cri.l2_weight=10. Changed options make new cells (part of each cell's fingerprint).")
def command(methods, tasks, images, images_root, model, seed, steps, preset, out_dir, limit, protocol, list_protocols,
            mask, mask_hole_value, mask_convention, perceptual, no_baselines, no_labels, fid_min, fid_reference, lpips_net,
            device, shard,
            threads, method_options, compile_networks, batch_size) -> None:
    """Benchmark restoration methods on degraded images, like the CRI and DGP papers."""
    mask_hole_value = hole_value_for(mask_convention, mask_hole_value, cli=True)
    if list_protocols:
        _print_protocols()
        return
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from ganprior.bench import (BenchConfig, BenchError, ImageSourceError, MeasureError, ProtocolError, TaskSpec,
                                get_protocol, run_benchmark)

    try:
        known = {t.name: t for t in get_protocol(protocol).tasks} if protocol else {}
    except ProtocolError as err:
        raise click.ClickException(str(err)) from err
    task_specs = (tuple(known.get(t) or TaskSpec.from_string(t, mask, mask_hole_value) for t in _split(tasks))
                  if tasks else None)
    overrides = dict(
        methods=_split(methods), images=images, images_root=images_root, model=model, seed=seed, steps=steps,
        preset=preset, out=str(out_dir), limit=limit, perceptual=perceptual, baselines=not no_baselines,
        use_labels=not no_labels, fid_min_images=fid_min, fid_reference=fid_reference, lpips_net=lpips_net,
        device=device, tasks=task_specs)
    try:
        if protocol:
            if images is None:
                raise click.UsageError(f"--protocol {protocol} needs --images: {get_protocol(protocol).test_set}")
            config = BenchConfig.from_protocol(protocol, **overrides)
        else:
            defaults = dict(methods=("cri",), tasks=tuple(TaskSpec.from_string(t, mask, mask_hole_value)
                                                         for t in ("colorize", "inpaint", "sr4")),
                            images="emoji-test", preset="fast")
            config = BenchConfig(**{**defaults, **{k: v for k, v in overrides.items() if v is not None}})
        config = _with_method_options(config, method_options)
        results = _run(config, shard, compile_networks, batch_size)
    except (BenchError, ImageSourceError, MeasureError, ProtocolError) as err:
        raise click.ClickException(str(err)) from err
    click.echo((out_dir / "table.md").read_text())  # includes "paper vs ours" for a protocol
    costs = ", ".join(f"{c} {s:.2f} s" for c, s in results["seconds_per_cell"].items() if s is not None)
    click.echo(f"mean seconds per cell: {costs}")
    click.echo(f"wrote {out_dir}/results.json, table.md, per_image.csv, sheets/")
