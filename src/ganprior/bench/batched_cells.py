"""``bench --batch-size``: the cells of one (task, method) column restored several images at a time.

Only the columns whose method has a batched version (``ganprior.methods.batched``: W, W+, PULSE, CRI's
offset stage, DGP's candidate selection) are gathered; each chunk of images goes through
:func:`ganprior.api.run_prepared`, and every cell is then scored, fingerprinted and stored exactly as the
one-at-a-time loop stores it, so the main loop of :func:`~ganprior.bench.runner.run_benchmark` finds these
cells done and runs only the rest.
A cell's ``seconds`` is its share of its batch's wall time.
"""

from __future__ import annotations

import time
from typing import Callable

from ganprior.bench.runner import (BenchConfig, Cell, CellStore, _class_index, _measures, _method_and_options,
                                   _save_once, cell_error, image_seed, make_degraded, restore_arguments,
                                   restored_and_info, scored_record)
from ganprior.bench.scoring import ImageScorer


def compute_batched_cells(plan: list, config: BenchConfig, prior, store: CellStore, fingerprints: dict,
                          batch_size: int, saved: Callable[[Cell], None]) -> None:
    """Compute the missing cells of the batched columns of ``plan`` ([(task spec, image, columns)])."""
    from ganprior.api import prepare_restore, run_prepared
    from ganprior.methods.batched import BATCHED_METHODS

    out = store.root
    groups: dict[tuple[str, str], list] = {}
    for spec, image, columns in plan:
        for column in columns:
            if column not in config.methods or _method_and_options(column, config, spec.name)[0] not in BATCHED_METHODS:
                continue
            cell = Cell(spec.name, column, image.id)
            fingerprint = fingerprints[(spec.name, image.id, column)]
            if store.load(cell, fingerprint) is None:
                groups.setdefault((spec.name, column), []).append((spec, image, cell, fingerprint))
    for members in groups.values():
        scorer = ImageScorer(_measures(members[0][0]), config.lpips_net, prior)
        for first in range(0, len(members), batch_size):
            chunk, prepared, inputs = members[first:first + batch_size], [], []
            started = time.perf_counter()
            for spec, image, cell, _ in chunk:
                seed = image_seed(config.seed, image.id)
                degraded = make_degraded(spec, image.clean, seed)
                _save_once(out / "clean" / f"{image.id}.png", image.clean)
                _save_once(out / "inputs" / spec.name / f"{image.id}.png", degraded.observation)
                inputs.append(degraded)
                try:
                    prepared.append(prepare_restore(**restore_arguments(
                        cell, spec, degraded, prior, config, _class_index(prior, image, config), seed)))
                except (ValueError, RuntimeError) as err:
                    raise cell_error(cell, err) from err
            try:
                results = run_prepared(prepared, batch_size)
            except (ValueError, RuntimeError) as err:
                raise cell_error(chunk[0][2], err) from err
            share = (time.perf_counter() - started) / len(chunk)
            for (spec, image, cell, fingerprint), degraded, result in zip(chunk, inputs, results):
                restored, info = restored_and_info(result, spec)
                record = scored_record(cell, image, degraded, scorer, restored, info, share)
                record["fingerprint"] = fingerprint
                store.save(cell, restored, record)
                saved(cell)
