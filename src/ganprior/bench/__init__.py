"""``ganprior bench``: methods × tasks × images, scored like the papers, seeded and resumable.

    >>> from ganprior.bench import BenchConfig, TaskSpec, run_benchmark
    >>> config = BenchConfig(methods=("cri", "pti"), tasks=(TaskSpec.from_string("sr4"),),
    ...                      images="emoji-test", limit=8, steps=50, out="out/bench")
    >>> results = run_benchmark(config)        # also writes results.json, table.md, sheets, ...

Paper protocols (with the papers' numbers): :data:`PROTOCOLS`, ``BenchConfig.from_protocol(name)``.
"""

from ganprior.bench.paired import Paired, paired, render_paired
from ganprior.bench.protocols import (PROTOCOLS, PaperTable, Protocol, ProtocolError, TaskSpec, Variant, get_protocol,
                                      list_protocols)
from ganprior.bench.runner import BenchConfig, BenchError, Cell, run_benchmark
from ganprior.bench.scoring import MEASURES, Measure, MeasureError
from ganprior.bench.sources import EMOJI_TEST, ImageSourceError, load_images
from ganprior.bench.table import best_columns, render_paper_tables, render_report, render_table

__all__ = [
    "EMOJI_TEST", "MEASURES", "PROTOCOLS", "BenchConfig", "BenchError", "Cell", "ImageSourceError", "Measure",
    "MeasureError", "Paired", "PaperTable", "Protocol", "ProtocolError", "TaskSpec", "Variant", "best_columns",
    "get_protocol", "list_protocols", "load_images", "paired", "render_paired", "render_paper_tables", "render_report",
    "render_table", "run_benchmark",
]
