"""``ganprior restore IMAGE [IMAGE...]``: restore degraded photos with a GAN prior.

Each image gets its own run directory ``OUT/<image stem>/`` (see ``ganprior.results``), written
atomically. A run directory is reused only when its fingerprint matches the run asked for (same pixels,
task, mask, method, options, model, seed, steps; ``ganprior.resume``), otherwise it is recomputed; a lock
per image keeps two processes on one folder from restoring the same image.

Inputs, the mask and ``--out`` are checked before torch and the model load (``restore_checks.py``), so
keep this module's top-level imports free of torch.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import click
from tqdm.auto import tqdm

from ganprior.cli.restore_checks import (_registry, check_device, check_images, check_mask, check_model, check_out,
                                        check_task)
from ganprior.cli.threads import threads_option
from ganprior.image_files import DEFAULT_MAX_PIXELS, HOLE_VALUES, is_mask_file
from ganprior.mask_conventions import MASK_CONVENTION_HELP, MASK_CONVENTIONS, hole_value_for
from ganprior.resume import recorded_request, request_digest, run_folder
from ganprior.names import DGP_SCHEDULES as SCHEDULES
from ganprior.names import METHODS, PRESETS
from ganprior.samples import MAX_SAMPLES

def _per_image_errors() -> tuple[type[Exception], ...]:
    """Errors that concern one image only (the rest of the batch still runs)."""
    from ganprior.faces.pipeline import NoFaceError
    from ganprior.images import ImageLoadError, MaskSizeError

    return ImageLoadError, MaskSizeError, NoFaceError


def _class_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check ``--class`` before any model is loaded (the API parses the same grammar)."""
    if value is not None:
        from ganprior.classify.choice import ClassOptionError, parse_class_option  # imports torch: only when given

        placeholders: dict[str, int] = {}  # class names are checked once the model is loaded
        try:
            parse_class_option(value, resolve_token=lambda name: -1 - placeholders.setdefault(
                name.casefold(), len(placeholders)))
        except ClassOptionError as exc:
            raise click.BadParameter(str(exc).removeprefix(f"--class {value!r}: "), ctx, param) from None
    return value


@click.command("restore")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--task", required=True,
              help="Degradation of the input: colorize, inpaint, sr, denoise, deblur, jpeg, or a '+'-joined mix "
                   "such as sr4+colorize+inpaint.")
@click.option("--mask", default=None, help="Inpainting mask: a file (with --mask-hole-value) or a spec (center, box:x0,y0,x1,y1).")
@click.option("--mask-hole-value", type=click.Choice(HOLE_VALUES), default=None,
              help="Which pixels of a --mask file are holes (required for files: both conventions are common).")
@click.option("--mask-convention", type=click.Choice(tuple(MASK_CONVENTIONS)), default=None,
              help=MASK_CONVENTION_HELP)
@click.option("--scale", type=int, default=None, help="Super-resolution factor (or write it in the task: sr4).")
@click.option("--method", type=click.Choice(METHODS), default="cri", show_default=True)
@click.option("--model", default=None, help="Model name or checkpoint path (default: the embedded model).")
@click.option("--weights", default=None, type=click.Path(dir_okay=False), help="Explicit local checkpoint for --model.")
@click.option("--class", "class_index", default=None, callback=_class_option,
              help="auto (DeiT's top-1; the default for ImageNet models), topk:K (DeiT's K best, weighted), a class "
                   "index or name (e.g. 'golden retriever', 'Animals & Nature'), or I,J,... (centroid search among "
                   "them). Default for other models: estimated.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("restored"),
              show_default=True, help="Output folder: one run directory per image.")
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Cap every stage at this many iterations (quick runs).")
@click.option("--preset", type=click.Choice(PRESETS), default="official", show_default=True)
@click.option("--perceptual", default=None,
              help="Perceptual distance (auto, nvidia-vgg16, lpips-vgg, lpips-alex, discriminator, feature-net, mse); "
                   "default auto: the model's own feature net, else nvidia-vgg16, else (offline) its discriminator.")
@click.option("--fit", type=click.Choice(["letterbox", "crop"]), default="letterbox", show_default=True,
              help="How a non-square photo goes onto the generator canvas.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--video", is_flag=True, help="Also save the optimisation as a GIF.")
@click.option("--faces", is_flag=True,
              help="Face models (FFHQ): find each face (dlib), align it the FFHQ way, restore it and paste it back; "
                   "pixels outside the faces stay as observed. Needs ganprior[faces].")
@click.option("--overwrite", is_flag=True, help="Redo images even when their run folder matches this run.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Refuse input and mask files with more pixels than this (decompression-bomb guard).")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=None,
              help="DGP only: fine-tuning schedule (default: the task's; e.g. sr-mse for the PSNR-biased SR table).")
@click.option("--early-stop-mse", type=click.FloatRange(min=0, min_open=True), default=None,
              help="DGP only: stop once the MSE to the observation ([-1, 1] scale) is below this; with "
                   "--task reconstruct this is the adversarial-defence mode (paper Table 10).")
@click.option("--compile", "compile_networks", is_flag=True,
              help="torch.compile the synthesis network and the discriminator features (slow first step, "
                   "faster afterwards; results equal eager to 1e-4).")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Optimise up to this many images together (w, wplus, pulse, pti, cri, and DGP's candidate "
                   "selection; results equal one-at-a-time runs). DGP's fine-tuning stages and --faces run one "
                   "image at a time; on a CPU, 4-8 is fastest for pti/cri.")
@click.option("--option", "method_options", multiple=True, metavar="KEY=VALUE",
              help="Set any option of --method (repeatable; values as JSON, e.g. --option l2_weight=10 "
                   "--option stage_instance_norm='[false,false]'). The keys are the method's defaults.")
@click.option("--samples", type=click.IntRange(1, MAX_SAMPLES), default=1, show_default=True,
              help="Make K restorations per image, each consistent with it, from K starts of the method (run as one "
                   "batch); adds samples/NNN.png, mean.png, uncertainty.png, hallucination.png and samples_sheet.png.")
@threads_option
def command(images, task, mask, mask_hole_value, mask_convention, scale, method, model, weights, class_index, seed,
            out_dir, steps,
            preset, perceptual, fit, device, video, overwrite, max_pixels, schedule, early_stop_mse,
            method_options, faces, compile_networks, batch_size, samples, threads) -> None:
    """Restore degraded IMAGES (the observations) by inverting a GAN prior."""
    mask_hole_value = hole_value_for(mask_convention, mask_hole_value, cli=True)
    given = dict(locals())
    check_task(task)  # every argument before anything imports torch or reads the model
    check_model(model, weights)
    check_device(device)
    sizes, bad = check_images(list(images), max_pixels)
    for path, message in bad.items():
        click.echo(f"error: {message}", err=True)
    mask_warning, mask_bad = check_mask(mask, mask_hole_value, task, scale, sizes, max_pixels)
    for path, message in mask_bad.items():
        click.echo(f"error: {path}: {message}", err=True)
    if not set(sizes) - set(mask_bad):
        raise click.ClickException(f"none of the {len(images)} image(s) can be used")
    if mask_warning:
        click.echo(f"warning: {mask_warning}", err=True)
    stems = [path.stem for path in images]
    if len(set(stems)) != len(stems):
        raise click.UsageError("several images share a file name stem; their run directories would collide")
    check_out(out_dir)
    options = {k: v for k, v in (("schedule", schedule), ("early_stop_mse", early_stop_mse)) if v is not None}
    if options and method != "dgp":
        raise click.UsageError("--schedule and --early-stop-mse only apply to --method dgp")
    if samples > 1 and faces:
        raise click.UsageError("--samples does not combine with --faces (each face is restored on its own)")
    failures = len(bad) + len(mask_bad)
    usable = [path for path in images if path in sizes and path not in mask_bad]
    request = dict(task=task, mask=_mask_identity(mask), mask_hole_value=mask_hole_value, scale=scale, method=method,
                   model=_model_identity(model, weights), class_index=class_index, seed=seed, steps=steps,
                   preset=preset, perceptual=perceptual, fit=fit, options=[*method_options, *sorted(options.items())],
                   faces=faces, version=_version(), **({"samples": samples} if samples > 1 else {}))
    requests = {path: request_digest(path, request) for path in usable}
    if not overwrite and all(recorded_request(run_folder(out_dir, p.stem, method)) == requests[p] for p in usable):
        for path in usable:  # nothing to do: the model is not even loaded
            click.echo(f"skip {path}: {run_folder(out_dir, path.stem, method)} is already complete for this run")
        if failures:
            raise click.ClickException(f"{failures} of {len(images)} image(s) failed or stopped early")
        return
    created = not out_dir.exists()
    try:
        failures = _load_and_restore(usable, requests, options, given, failures)
    finally:  # a run refused after the checks leaves no empty --out behind
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
    if failures:
        raise click.ClickException(f"{failures} of {len(images)} image(s) failed or stopped early")


def _load_and_restore(usable: list[Path], requests: dict[Path, str], options: dict, given: dict,
                      failed_checks: int) -> int:
    """Load the model and restore the usable images (``given``: the command's arguments); the number that
    failed or stopped early, with the ``failed_checks`` (counted once, by the main rank under torchrun)."""
    method, device, out_dir, faces = given["method"], given["device"], given["out_dir"], given["faces"]
    from ganprior.cli.threads import apply_threads
    from ganprior.methods.options import MethodOptionError, parse_method_options

    try:
        options.update(parse_method_options(given["method_options"], method))
    except MethodOptionError as exc:
        raise click.UsageError(str(exc)) from None
    from ganprior.api import load_prior
    from ganprior.loading import LOAD_ERRORS

    from ganprior import distributed

    launch = distributed.launched()  # under torchrun: every rank restores its share of the images
    _check_device(device)
    apply_threads(given["threads"])
    if launch is not None:
        device = distributed.start(launch, device)
    try:
        prior = load_prior(given["model"], weights=given["weights"], device=device)
    except LOAD_ERRORS as exc:
        raise click.ClickException(str(exc)) from exc
    if given["compile_networks"]:
        from ganprior.models.compiled import compile_prior

        compile_prior(prior)
    arguments = {k: given[k] for k in ("task", "method", "mask", "mask_hole_value", "scale", "class_index", "seed",
                                       "steps", "preset", "perceptual", "fit", "max_pixels")}
    arguments.update(model=prior, options=options)
    failures = failed_checks
    if launch is not None:
        usable, failures = usable[launch.rank::launch.world_size], failed_checks if launch.is_main else 0
    batch_size = 1 if given["samples"] > 1 else _effective_batch_size(given["batch_size"], method, faces)
    with tqdm(total=len(usable), desc="images", disable=len(usable) < 2) as bar:
        for first in range(0, len(usable), batch_size):
            chunk = usable[first:first + batch_size]
            failures += _restore_chunk(chunk, arguments, given["overwrite"], given["video"], out_dir, faces, requests,
                                       given["samples"])
            bar.update(len(chunk))
    if launch is not None:
        distributed.barrier()
        distributed.stop()
    return failures


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ganprior")
    except PackageNotFoundError:
        return "unknown"


def _file_identity(path: Path) -> list:
    """Size and modification time of a file (the bytes of a model are too many to hash on every run)."""
    stat = path.stat() if path.is_file() else None
    return [str(path), stat.st_size, stat.st_mtime_ns] if stat else [str(path), None, None]


def _model_identity(model: str | None, weights: str | None) -> list:
    """What names the weights a run will load, without loading them (for skipping a finished re-run)."""
    registry = _registry()
    if weights is not None:
        return [model, _file_identity(Path(weights).expanduser())]
    name = model or registry.DEFAULT_MODEL
    if registry._looks_like_path(name):
        return [name, _file_identity(Path(name).expanduser())]
    return [name, [_file_identity(p) for p in registry.local_files(registry.get_spec(name))]]


def _mask_identity(mask: str | None) -> str | None:
    """A mask file by its bytes, a spec by its text."""
    if mask is not None and is_mask_file(mask) and Path(mask).is_file():
        import hashlib

        return "file:" + hashlib.sha256(Path(mask).read_bytes()).hexdigest()
    return mask


def _check_device(device: str) -> None:
    """A device torch can parse and that exists here, before the model is moved onto it."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise click.BadParameter(f"{device!r} is not a device (cpu, cuda, cuda:1, mps)", param_hint="'--device'") from None
    available = {"cpu": lambda: True, "cuda": lambda: torch.cuda.device_count() > (parsed.index or 0),
                 "mps": lambda: torch.backends.mps.is_available()}.get(parsed.type, lambda: False)
    if not available():
        raise click.BadParameter(f"no {device} device here; use --device cpu", param_hint="'--device'")


def _effective_batch_size(batch_size: int, method: str, faces: bool) -> int:
    """``--batch-size``, or 1 with a one-line note where the method (or --faces) has no batched version; a
    note also names what of a partly batched method (DGP) still runs one image at a time."""
    from ganprior.methods.batched import BATCHED_METHODS, PER_IMAGE_STAGES

    if batch_size > 1 and (faces or method not in BATCHED_METHODS):
        what = "--faces" if faces else f"--method {method}"
        click.echo(f"note: {what} has no batched version: --batch-size {batch_size} runs its images one at a time",
                   err=True)
        return 1
    if batch_size > 1 and method in PER_IMAGE_STAGES:
        click.echo(f"note: --method {method} batches all but its {PER_IMAGE_STAGES[method]}, which runs one image "
                   "at a time", err=True)
    return batch_size


def _restore_chunk(paths: list[Path], arguments: dict, overwrite: bool, video: bool, out_dir: Path,
                   faces: bool = False, requests: dict[Path, str] | None = None, samples: int = 1) -> int:
    """Restore ``paths`` together, each into its own run folder under its own lock; the number that failed
    or stopped early. Images already complete for this run are skipped, as one at a time. With ``samples``
    K > 1 each image gets K restorations, run as one batch (``ganprior.samples``)."""
    from contextlib import ExitStack

    from ganprior.api import prepare_restore, restore_fingerprint, run_prepared
    from ganprior.resume import ClaimedError, claim, remove_stale_partials, reusable

    failures, todo, done = 0, [], []
    with ExitStack() as locks:
        for path in paths:
            target = run_folder(out_dir, path.stem, arguments["method"])
            try:
                locks.enter_context(claim(target))
            except ClaimedError as exc:
                click.echo(f"skip {path}: {exc}", err=True)
                continue
            for partial in remove_stale_partials(target):
                click.echo(f"removed {partial}, left by an interrupted save", err=True)
            try:
                wanted = restore_fingerprint(path, **arguments)
                if faces:
                    from ganprior.faces.pipeline import faces_fingerprint

                    wanted = faces_fingerprint(wanted)
                if samples > 1:
                    from ganprior.samples.restore import samples_fingerprint

                    wanted = samples_fingerprint(wanted, samples)
                same, why = reusable(target, wanted)
                if same and not overwrite:
                    click.echo(f"skip {path}: {target} is already complete for this run")
                    continue
                if target.exists() and not same:
                    click.echo(f"redo {path}: {target} does not match: {why}", err=True)
                with _echoed_warnings([path], arguments["mask"]):
                    if faces:
                        from ganprior.faces.pipeline import restore_faces

                        done.append((path, target, restore_faces(path, progress=True, video=video, **arguments)))
                    else:
                        todo.append((path, target, prepare_restore(path, progress=True, video=video, **arguments)))
            except _per_image_errors() as exc:
                click.echo(f"error: {path}: {exc}", err=True)
                failures += 1
            except (ValueError, RuntimeError) as exc:  # configuration errors: the same for every image
                raise click.ClickException(f"{path}: {exc}") from exc
        if todo:
            names = [path for path, _, _ in todo]
            try:
                with _echoed_warnings(names, arguments["mask"]):
                    if samples > 1:
                        from ganprior.samples.restore import run_samples

                        results = [run_samples([prepared] * samples, prepared.prepared_in) for _, _, prepared in todo]
                    else:
                        results = run_prepared([prepared for _, _, prepared in todo], len(todo))
            except (ValueError, RuntimeError) as exc:
                raise click.ClickException(f"{', '.join(map(str, names))}: {exc}") from exc
            done += [(path, target, result) for (path, target, _), result in zip(todo, results)]
        for path, target, result in done:
            if requests and isinstance(getattr(result, "config", None), dict):
                result.config["request"] = requests.get(path)  # lets a re-run skip it before loading the model
            failures += not _save(path, target, result, video, out_dir)
    return failures


@contextlib.contextmanager
def _echoed_warnings(paths: list[Path], mask: str | None = None) -> Iterator[None]:
    """Show the warnings of the block as one line each, for every image they concern; a --mask file's
    no-hole warning was printed once already, before the model loaded."""
    from ganprior.api import NoHoleWarning

    said = NoHoleWarning if mask is not None and is_mask_file(mask) else ()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    messages = list(dict.fromkeys(str(w.message) for w in caught if not (said and isinstance(w.message, said))))
    for path in paths:
        for message in messages:
            click.echo(f"warning: {path}: {message}", err=True)


def _save(path: Path, target: Path, result, video: bool, out_dir: Path) -> bool:
    """Write one result's run folder and say so; False when the run stopped early."""
    try:
        result.save(target, video=video)
    except OSError as exc:
        raise click.ClickException(f"--out {out_dir}: cannot write {target}: {exc.strerror or exc}") from exc
    info = f"class {result.class_index}" if result.class_index is not None else ""
    click.echo(f"{path} -> {target} {info} ({result.timings.get('total', 0):.1f} s)")
    if result.stopped:
        click.echo(f"warning: {path}: {result.stopped}; saved the best result so far", err=True)
    return not result.stopped
