"""Peak memory of a full-size case without computing it: the real code under fake tensors.

``bench/full_size.py`` measures peak RSS by running a case; several cases do not fit (or take hours
on) a small CPU. Here the very same code (:func:`full_size.build`, :func:`full_size.run_step`,
:func:`full_size.run_method`, so ``restore_batch`` and every method) runs under torch's
``FakeTensorMode``: every op computes only its output's shape and dtype. A ``TorchDispatchMode``
above it counts the bytes of the storages alive at each moment: each storage once however many views
share it, released when its last reference dies (a weakref on the storage, which torch keeps as one
Python object while the storage lives). Its peak equals the peak of c10's CPU allocator for the same
case run for real (the profiler's allocation trace, to 0.2 MB).

Two numbers come out: ``tensor_peak_mb`` (what tensors need: device independent, a lower bound of
RSS) and ``malloc_peak_mb`` (the same allocations replayed on glibc's ``malloc`` as they happen,
never touched, see :class:`MallocReplay`: heap fragmentation included, which on this CPU adds 5 % to
StyleGAN2 and up to 2x to the alias-free networks' chunked layers).

What fake tensors cannot give is handled here, not in the code under test:

* **Values.** Small ops (up to :data:`SMALL_NUMEL` elements) whose inputs are all real run for real,
  so the observation's range and mask checks see real values. A value read from a fake tensor
  (``float(loss)``, ``bool(isfinite(g).all())``) is a placeholder chosen by the op that made it
  (``min`` -1, ``max`` 1, booleans True, integers 0, else 1.0) and ``torch.equal`` of fake tensors
  is False; ``.numpy()`` / ``.tolist()`` of a fake tensor give seeded normal values of its shape
  (CRI's k-means runs on them). ``placeholders`` counts them by op. Memory depends on shapes and on
  control flow; what the placeholders decide is checks passing and loops not stopping early.
* **``Module.to`` to the device a module is already on** (a real no-op) is skipped: torch cannot
  swap the parameters of a module built under fake tensors.
* **Convolution scratch** (oneDNN's blocked-layout buffers, which no op returns; measured here:
  forward ``max(input, output)``, backward ``input + grad_output``, a 1x1 forward none) is added at
  each convolution by :func:`conv_scratch_bytes` (``scratch_mb``) and replayed.

The process's own memory (python, torch's libraries, the code pages a run touches) is not a tensor:
``bench/full_size.py --estimate`` adds the measured RSS of the imports (and, with ``--calibrate``,
what the code path holds besides tensors, measured at toy size).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import weakref
from collections import Counter
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch._subclasses.fake_tensor import (DataDependentOutputException, DynamicOutputShapeException, FakeTensor,
                                          unset_fake_temporarily)
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakTensorKeyDictionary

aten = torch.ops.aten
_CONVOLUTIONS = {aten.convolution.default, aten.convolution_backward.default}
#: tensors up to this many elements made only from real ones are computed for real (observations, masks)
SMALL_NUMEL = 2**20
#: placeholder of a scalar read from a tensor, by the op that made it (default: 1 / 1.0 / True)
_PLACEHOLDERS = {"min": -1.0, "amin": -1.0, "aminmax": -1.0, "max": 1.0, "amax": 1.0}


def _nbytes(t: Any) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def conv_scratch_bytes(func: Any, args: tuple, out: Any) -> int:
    """oneDNN's layout buffers of one convolution op (see the module docstring for the rule)."""
    if func is aten.convolution.default:
        x, weight = args[0], args[1]
        if weight.shape[-2:].numel() == 1 and not args[6]:  # 1x1, not transposed: a GEMM on the plain layout
            return 0
        return max(_nbytes(x), _nbytes(out))
    if func is aten.convolution_backward.default:
        return _nbytes(args[0]) + _nbytes(args[1])  # grad_output, input
    return 0


class MallocReplay:
    """Replays the tracked allocations on this process's own ``malloc``, without touching the memory.

    c10's CPU allocator takes every tensor from ``posix_memalign(64, n)``; glibc serves large ones
    with their own mappings (returned on free) and carves the rest from a heap that shrinks only
    from its top, so freed holes below a live chunk stay resident: peak RSS exceeds the peak of live
    tensors by that fragmentation. Making the same calls in the same order (interleaved with the
    run's own small allocations: autograd nodes, Python objects) and reading the heap's break and
    the blocks glibc mapped on their own after each gives glibc's real footprint. The blocks are never written, so
    they cost address space, not memory. ``peak`` is relative to the footprint when it started;
    ``available`` is False off glibc."""

    def __init__(self) -> None:
        try:
            self._libc = ctypes.CDLL(None)
            self._libc.gnu_get_libc_version  # glibc only: the chunk header read below is glibc's
            self._libc.sbrk.restype, self._libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]
            self._libc.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
            self._libc.free.argtypes = [ctypes.c_void_p]
        except (OSError, AttributeError):
            self._libc = None
        self.available = self._libc is not None
        self.blocks: dict[Any, tuple[int, int]] = {}  # key -> (pointer, bytes mapped for it or 0)
        self.mapped = 0
        self.start = self.footprint() if self.available else 0
        self.peak = 0

    def footprint(self) -> int:
        """Heap extent (the main arena's break) + bytes in blocks glibc mapped on their own."""
        return self._libc.sbrk(0) + self.mapped

    def malloc(self, key: Any, nbytes: int) -> None:
        if not self.available or nbytes <= 0:
            return
        pointer = ctypes.c_void_p()
        if self._libc.posix_memalign(ctypes.byref(pointer), 64, nbytes) != 0:
            raise MemoryError(f"address space for the replayed {nbytes}-byte block")
        header = ctypes.c_size_t.from_address(pointer.value - ctypes.sizeof(ctypes.c_size_t)).value
        mapped = header & ~0x7 if header & 0x2 else 0  # IS_MMAPPED: a mapping of its own
        self.mapped += mapped
        self.blocks[key] = (pointer.value, mapped)
        self.peak = max(self.peak, self.footprint() - self.start)

    def free(self, key: Any) -> None:
        pointer, mapped = self.blocks.pop(key, (None, 0))
        if pointer is not None:
            self.mapped -= mapped
            self._libc.free(pointer)

    def close(self) -> None:
        """Free every replayed block still held."""
        for key in list(self.blocks):
            self.free(key)


class LiveStorageTracker(TorchDispatchMode):
    """Live storage bytes of every tensor an op returns while active, and their peak.

    ``peak`` is tensors only (device independent); ``peak_with_scratch`` adds
    :func:`conv_scratch_bytes` at each convolution. ``placeholders`` counts the values invented
    for scalar reads, by producing op."""

    def __init__(self, scratch: Callable[[Any, tuple, Any], int] | None = conv_scratch_bytes) -> None:
        super().__init__()
        self.scratch = scratch
        self.heap = MallocReplay()
        #: compute small all-real ops for real (off while a network is built: its weights stay fake)
        self.compute_small = True
        self.live = self.peak = self.peak_with_scratch = 0
        self.placeholders: Counter[str] = Counter()
        self._storages: dict[int, weakref.ref] = {}
        self._made_by = WeakTensorKeyDictionary()  # small fake tensor -> the op that made it

    def track(self, t: torch.Tensor) -> None:
        """Count ``t``'s storage if it is new (a view of a counted storage adds nothing)."""
        storage = t.untyped_storage()
        key = storage._cdata
        if key in self._storages:
            return
        n = storage.nbytes()
        self.live += n
        self.peak = max(self.peak, self.live)
        self.peak_with_scratch = max(self.peak_with_scratch, self.live)
        if isinstance(t, FakeTensor):  # a real one is in the footprint already
            self.heap.malloc(key, n)

        def released(_: weakref.ref, key: int = key, n: int = n) -> None:
            self.live -= n
            self._storages.pop(key, None)
            self.heap.free(key)

        self._storages[key] = weakref.ref(storage, released)

    def _placeholder(self, t: torch.Tensor) -> bool | int | float:
        op = self._made_by.get(t, "")
        self.placeholders[op or "?"] += 1
        if t.dtype == torch.bool:
            return True
        if not t.is_floating_point():
            return 0  # an index: the first one exists
        return _PLACEHOLDERS.get(op, 1.0)

    @staticmethod
    def _run(func: Any, args: tuple, kwargs: dict, real: bool) -> Any:
        """The op on fake tensors; for small real inputs, for real when its outputs are small too (or
        when it needs values: ``item``, ``nonzero``), so that checks on observations see their values."""
        try:
            out = func(*args, **kwargs)
        except (DataDependentOutputException, DynamicOutputShapeException):
            if not real:
                raise
            out = None
        if real and (out is None or all(t.numel() <= SMALL_NUMEL for t in tree_flatten(out)[0]
                                        if isinstance(t, torch.Tensor))):
            with unset_fake_temporarily():
                out = func(*args, **kwargs)
        return out

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        fake_inputs = any(isinstance(t, FakeTensor) for t in inputs)
        if func is aten._local_scalar_dense.default and fake_inputs:
            return self._placeholder(args[0])
        if func is aten.equal.default and fake_inputs:
            self.placeholders["equal"] += 1
            return False  # "changed": the branch that keeps more
        real = self.compute_small and not fake_inputs and all(t.numel() <= SMALL_NUMEL for t in inputs)
        out = self._run(func, args, kwargs, real)
        name = func.overloadpacket.__name__
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.track(t)
                if t.numel() <= 64 and isinstance(t, FakeTensor):
                    self._made_by[t] = name
        if self.scratch is not None and func in _CONVOLUTIONS:
            extra = self.scratch(func, args, out)
            self.peak_with_scratch = max(self.peak_with_scratch, self.live + extra)
            self.heap.malloc("scratch", extra)
            self.heap.free("scratch")
        return out


def _fake_values(t: torch.Tensor) -> np.ndarray:
    """Seeded stand-in values for a fake tensor read into numpy (shape and dtype kept)."""
    values = np.random.default_rng(t.numel()).standard_normal(tuple(t.shape))
    dtype = np.dtype(str(t.dtype).removeprefix("torch.")) if t.dtype != torch.bfloat16 else np.dtype(np.float32)
    return values.astype(dtype) if np.issubdtype(dtype, np.floating) else np.abs(values).astype(dtype)


@contextlib.contextmanager
def _patched_for_fake() -> Iterator[None]:
    """``Tensor.numpy`` / ``tolist`` of fake tensors and no-op ``Module.to``, for the block's duration."""
    numpy, tolist, module_to = torch.Tensor.numpy, torch.Tensor.tolist, torch.nn.Module.to

    def fake_numpy(self: torch.Tensor, *args: Any, **kwargs: Any) -> np.ndarray:
        return _fake_values(self) if isinstance(self, FakeTensor) else numpy(self, *args, **kwargs)

    def fake_tolist(self: torch.Tensor) -> Any:
        return _fake_values(self).tolist() if isinstance(self, FakeTensor) else tolist(self)

    def same_place_to(self: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.nn.Module:
        device, dtype, _, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        tensors = [*self.parameters(), *self.buffers()]
        if dtype is None and memory_format is None and all(device is None or t.device == device for t in tensors):
            return self
        return module_to(self, *args, **kwargs)

    torch.Tensor.numpy, torch.Tensor.tolist, torch.nn.Module.to = fake_numpy, fake_tolist, same_place_to
    try:
        yield
    finally:
        torch.Tensor.numpy, torch.Tensor.tolist, torch.nn.Module.to = numpy, tolist, module_to


@contextlib.contextmanager
def fake_tracking(scratch: Callable[[Any, tuple, Any], int] | None = conv_scratch_bytes) -> Iterator[LiveStorageTracker]:
    """Run the block on fake tensors (nothing allocated or computed) and track what it would hold."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    tracker = LiveStorageTracker(scratch)
    try:
        with _patched_for_fake(), FakeTensorMode(allow_non_fake_inputs=True), tracker:
            yield tracker
    finally:
        tracker.heap.close()


def _mb(n: int) -> float:
    return round(n / 2**20, 1)


def estimate_case(model: str, case: str, width: float = 1.0, resolution: int | None = None,
                  steps: int = 1, fake: bool = True) -> dict[str, Any]:
    """Tensor memory of one ``bench/full_size.py`` case (``step:N`` or ``method:NAME:N``), built and run
    through the same functions as the measured case. ``fake=False`` runs it for real under the same
    tracker (a check of the tracker, not of fake tensors)."""
    from ganprior.bench import full_size

    context = fake_tracking() if fake else _real_tracking()
    with context as tracker:
        tracker.compute_small = False
        prior = full_size.build(model, width, resolution)
        tracker.compute_small, weights = True, tracker.live
        kind, _, value = case.partition(":")
        if kind == "step":
            full_size.run_step(prior, int(value), rounds=1)
        else:
            method, _, batch = value.partition(":")
            full_size.run_method(prior, method, steps, batch=int(batch or 1))
        del prior
    return {"weights_mb": _mb(weights), "tensor_peak_mb": _mb(tracker.peak),
            "with_scratch_mb": _mb(tracker.peak_with_scratch),
            "scratch_mb": _mb(tracker.peak_with_scratch - tracker.peak),
            "malloc_peak_mb": _mb(tracker.heap.peak),
            "placeholders": dict(tracker.placeholders)}


@contextlib.contextmanager
def _real_tracking() -> Iterator[LiveStorageTracker]:
    tracker = LiveStorageTracker()
    with tracker:
        yield tracker


def per_extra_image(sizes: dict[int, float]) -> float | None:
    """Growth per image between the smallest and the largest batch of ``{batch: MB}``."""
    if len(sizes) < 2:
        return None
    (b0, m0), (b1, m1) = min(sizes.items()), max(sizes.items())
    return round((m1 - m0) / (b1 - b0), 1) if math.isfinite(m1 - m0) else None
