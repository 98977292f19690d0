"""Read official StyleGAN network pickles without executing anything they contain.

Official pickles (StyleGAN2-ADA, StyleGAN3, StyleGAN-XL) store every network as
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` where ``meta['module_src']`` is
Python source that the official loader ``exec``s. Here ``find_class`` is an allow-list: the
persistence hook returns an inert :class:`PersistentNode`, tensors are rebuilt from their raw
storages via ``torch.load(weights_only=True)``, a few pure-data constructors (OrderedDict, NumPy
arrays and scalars, ``dill``'s array wrapper and dill 0.3.4's ``_get_attr(_import_module(numpy ...))``
records) are honoured, and any other global becomes an inert :class:`OpaqueObject` that records what it was
given. A top-level ``'D'`` that is not a persistent network (StyleGAN-XL's projected discriminator) is parsed
as :class:`SkippedRecord` objects, as the pre-scan decided global by global, and dropped. Nothing from the file
is ever called, imported or compiled.
"""

from __future__ import annotations

import collections
import hashlib
import io
import mmap
import pickle
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganprior.loading.errors import (
    CheckpointError,
    CheckpointLimitError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
)
from ganprior.loading.guards import open_regular
from ganprior.loading.pickle_scan import (
    DANGEROUS_MODULES,
    DANGEROUS_NAMES,
    NUMPY_BUILTIN_MODULES,
    SKIPPED_KEY,
    ScanLimits,
    current_limits,
    over_limit,
    scan_official_pickle,
)
from ganprior.loading.tensor_records import (
    STORAGE_DTYPES,
    rebuild_parameter,
    rebuild_tensor,
    storage_from_bytes,
)
from ganprior.loading.torch_files import blob_layout


@dataclass
class PersistentNode:
    """One ``@persistent_class`` object of the official code, as inert data."""

    class_name: str
    state: dict
    module_src_sha256: str
    module_src_length: int

    # ---- torch.nn.Module-like views of the stored ``__dict__`` ----
    @property
    def parameters(self) -> collections.OrderedDict[str, Any]:
        return self.state.get("_parameters") or collections.OrderedDict()

    @property
    def buffers(self) -> collections.OrderedDict[str, Any]:
        return self.state.get("_buffers") or collections.OrderedDict()

    @property
    def children(self) -> collections.OrderedDict[str, Any]:
        return self.state.get("_modules") or collections.OrderedDict()

    def attr(self, name: str, default: Any = None) -> Any:
        value = self.state.get(name, default)
        return value.item() if isinstance(value, np.generic) else value

    def child(self, name: str) -> PersistentNode | OpaqueObject:
        return self.children[name]

    def __repr__(self) -> str:
        return f"PersistentNode({self.class_name}, children={list(self.children)})"


class OpaqueObject:
    """Stand-in for any class the allow-list does not know (e.g. ``torch.nn.Embedding``, timm modules).

    It accepts whatever pickle throws at it and only records it; it has no behaviour.
    """

    _qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_args"] = args
        self.__dict__["_items"] = []
        self.__dict__["state"] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> OpaqueObject:
        return _opaque_class("<call>", self._qualname)(*args)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict_state, slot_state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.__dict__["state"] = state if isinstance(state, dict) else {"_state": state}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _opaque_class("<attr>", f"{self._qualname}.{name}")()

    def append(self, item: Any) -> None:
        self._items.append(item)

    def extend(self, items: Any) -> None:
        self._items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._items.append((key, value))

    # Module-like views, so an opaque torch.nn.Embedding can be flattened like a persistent node.
    @property
    def parameters(self) -> dict:
        return self.state.get("_parameters") or {}

    @property
    def buffers(self) -> dict:
        return self.state.get("_buffers") or {}

    @property
    def children(self) -> dict:
        return self.state.get("_modules") or {}

    @property
    def class_name(self) -> str:
        return self._qualname

    def __repr__(self) -> str:
        return f"OpaqueObject({self._qualname})"


class SkippedRecord:
    """What every global inside a skipped part of a snapshot (XL's projected discriminator under ``'D'``)
    resolves to: one inert record that accepts whatever pickle hands it, keeps none of it, and is dropped after
    parsing. Nothing it is given is called; the pre-scan has already refused anything made there that the
    used networks would reach."""

    _instance: SkippedRecord | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> SkippedRecord:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> SkippedRecord:
        return self

    def __setstate__(self, state: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def add(self, item: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __repr__(self) -> str:
        return "SkippedRecord()"


_OPAQUE_CLASSES: dict[tuple[str, str], type] = {}


def _opaque_class(module: str, name: str) -> type:
    key = (module, name)
    if key not in _OPAQUE_CLASSES:
        _OPAQUE_CLASSES[key] = type(name.rsplit(".", 1)[-1], (OpaqueObject,), {"_qualname": f"{module}.{name}"})
    return _OPAQUE_CLASSES[key]


class EasyDict(dict):
    """Inert replacement for ``dnnlib.util.EasyDict``."""


# ----------------------------------------------------------------------------------------------
# Tensor reconstruction
# ----------------------------------------------------------------------------------------------


def _load_storage_bytes(b: bytes) -> torch.UntypedStorage | torch.TypedStorage:
    """Inner ``torch.save`` blob of one storage. The common layout (checked byte for byte by the pre-scan)
    is copied straight into a storage; anything else goes through ``torch.load(weights_only=True)``."""
    layout = blob_layout(b) if isinstance(b, bytes) and sys.byteorder == "little" else None
    if layout is not None and layout[0] in STORAGE_DTYPES:
        name, numel, itemsize, start = layout
        return storage_from_bytes(b[start:start + numel * itemsize], name)
    try:
        obj = torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UnsafeCheckpointError(f"refused a tensor storage blob ({type(exc).__name__}: {first[:120]})") from exc
    if not isinstance(obj, (torch.UntypedStorage, torch.TypedStorage)):
        raise UnsafeCheckpointError(f"storage blob decoded to {type(obj).__name__}, not a storage")
    return obj


class _NDArrayName:
    """What ``numpy.ndarray`` names in a pickle: only the first argument of ``_reconstruct``, never called."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpointError("numpy.ndarray called directly (arrays are only rebuilt from numpy's records)")


def _np_reconstruct(subtype: Any, shape: Any, code: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct``: an empty plain numeric array (the data comes with BUILD)."""
    code = code.decode("latin-1") if isinstance(code, bytes) else code
    dtype = np.dtype(code) if isinstance(code, str) and len(code) <= 4 else np.dtype("O")
    if subtype is not _NDArrayName or dtype.kind not in "biufc" or shape != (0,):
        raise UnsafeCheckpointError("NumPy array record that is not numpy's own (_reconstruct of an empty ndarray)")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


class _NumpyModule:
    """dill 0.3.4's ``_import_module('numpy._core._multiarray_umath')``: only its NumPy functions are reachable."""

    def __init__(self, name: str) -> None:
        self.name = name


def _dill_import_module(name: Any, safe: bool = False) -> Any:
    """``dill._dill._import_module``: NumPy's builtin modules as a name only; anything else (which the scan allows
    only inside a skipped record) stays inert. Nothing is imported."""
    return _NumpyModule(name) if name in NUMPY_BUILTIN_MODULES else SkippedRecord()


def _dill_get_attr(obj: Any, name: Any) -> Any:
    """``dill._dill._get_attr``: NumPy's ``scalar`` and ``_reconstruct`` (as the checked versions here)."""
    if isinstance(obj, _NumpyModule) and name in _NUMPY_FUNCTIONS:
        return _NUMPY_FUNCTIONS[name]
    return SkippedRecord()


def _load_type(name: str) -> Any:
    """``dill._dill._load_type``: builtin container types by name; anything else stays opaque."""
    known = {"set": set, "frozenset": frozenset, "list": list, "dict": dict, "tuple": tuple, "NoneType": type(None)}
    return known.get(name, _opaque_class("dill._dill._load_type", name))


def _scalar(dtype: np.dtype, data: bytes | None = None) -> np.generic:
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc":
        raise UnsafeCheckpointError("NumPy scalar of a non-numeric dtype")
    return np.frombuffer(data or b"", dtype=dtype, count=1)[0] if data else dtype.type(0)


def _dtype(name: Any, align: bool = False, copy: bool = False) -> np.dtype:
    dt = np.dtype(name) if isinstance(name, str) else None
    if dt is None or dt.kind not in "biufc":
        raise UnsafeCheckpointError("NumPy dtype that is not a plain numeric type")
    return dt


# ----------------------------------------------------------------------------------------------
# The unpickler
# ----------------------------------------------------------------------------------------------

_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")

# Globals that are inert data constructors. Anything not listed here and not in _DANGEROUS becomes opaque.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib.easydict", "EasyDict"): EasyDict,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("numpy", "ndarray"): _NDArrayName,
    ("numpy", "dtype"): _dtype,
    ("dill._dill", "_create_array"): None,  # filled below (needs _np_reconstruct identity)
    ("dill._dill", "_load_type"): _load_type,
}
for _m in _NUMPY_MODULES:
    _ALLOWED[(_m, "_reconstruct")] = _np_reconstruct
    _ALLOWED[(_m, "scalar")] = _scalar
_NUMPY_FUNCTIONS = {"_reconstruct": _np_reconstruct, "scalar": _scalar}
_ALLOWED[("dill._dill", "_import_module")] = _dill_import_module
_ALLOWED[("dill._dill", "_get_attr")] = _dill_get_attr


def _create_array_checked(f: Any, args: tuple, state: Any, npdict: Any = None) -> np.ndarray:
    if f is not _np_reconstruct:
        raise UnsafeCheckpointError("dill array wrapper with a foreign constructor")
    arr = f(*args)
    if arr.dtype.hasobject:
        raise UnsafeCheckpointError("NumPy object arrays are not allowed")
    arr.__setstate__(state)
    if arr.dtype.hasobject:
        raise UnsafeCheckpointError("NumPy object arrays are not allowed")
    return arr


_ALLOWED[("dill._dill", "_create_array")] = _create_array_checked

# Modules whose names in a network checkpoint can only mean an attack: refused outright, loudly.
_DANGEROUS_MODULES, _DANGEROUS_NAMES = DANGEROUS_MODULES, DANGEROUS_NAMES


class SafeUnpickler(pickle.Unpickler):
    """Allow-list unpickler for official network pickles (plain ``pickle`` or ``dill``)."""

    def __init__(self, file: io.BufferedIOBase, skipped_globals: list[bool] | None = None,
                 calls_skipped: dict[str, list[bool]] | None = None) -> None:
        super().__init__(file)
        self.nodes: list[PersistentNode] = []
        self.opaque: set[str] = set()
        self.skipped_globals = skipped_globals  # per global in file order, from the pre-scan (None: none skipped)
        self.n_globals = 0
        self.counted = {qual: self._counted(qual, flags) for qual, flags in (calls_skipped or {}).items()
                        if any(flags)}

    def _counted(self, qual: str, flags: list[bool]) -> Any:
        """The allowed function ``qual``, except that the calls the pre-scan placed inside the skipped record
        return an inert record (the discriminator's storages and tensors are never built)."""
        module, name = qual.rsplit(".", 1)
        real, calls = _ALLOWED[(module, name)], iter(flags)

        def call(*args: Any) -> Any:
            skip = next(calls, None)
            if skip is None:
                raise UnsafeCheckpointError(f"the pickle calls {name} more often than its pre-scan saw")
            return SkippedRecord() if skip else real(*args)
        return call

    def find_class(self, module: str, name: str) -> Any:
        if self.skipped_globals is not None:
            index, self.n_globals = self.n_globals, self.n_globals + 1
            if index >= len(self.skipped_globals):
                raise UnsafeCheckpointError("the pickle names more globals than its pre-scan saw")
            if self.skipped_globals[index]:
                return SkippedRecord
        if module == "torch_utils.persistence" and name == "_reconstruct_persistent_obj":
            return self._reconstruct_persistent_obj
        if f"{module}.{name}" in self.counted:
            return self.counted[f"{module}.{name}"]
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        root = module.split(".")[0]
        if root in _DANGEROUS_MODULES or name in _DANGEROUS_NAMES or name.startswith("__"):
            raise UnsafeCheckpointError(f"checkpoint references {module}.{name}; refusing to load it")
        if root == "torch" and name.endswith("Storage"):
            raise UnsafeCheckpointError(f"bare {module}.{name} outside a storage blob")
        self.opaque.add(f"{module}.{name}")
        return _opaque_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError("official network pickles carry no persistent ids")

    def _reconstruct_persistent_obj(self, meta: Any) -> PersistentNode:
        if not isinstance(meta, dict) or meta.get("type") != "class" or meta.get("version") != 6:
            raise UnsafeCheckpointError("unexpected torch_utils.persistence record (type/version)")
        src = meta.get("module_src") or ""
        if not isinstance(src, str):
            raise UnsafeCheckpointError("module_src is not text")
        state = meta.get("state")
        if not isinstance(state, dict):
            raise UnsafeCheckpointError("persistent object state is not a dict")
        node = PersistentNode(
            class_name=str(meta.get("class_name")),
            state=dict(state),
            module_src_sha256=hashlib.sha256(src.encode()).hexdigest(),
            module_src_length=len(src),
        )
        self.nodes.append(node)
        return node


def load_official_pickle(path: str | Path) -> dict:
    """Parse an official network pickle into plain data: ``{'G_ema': PersistentNode, ...}``.

    Raises :class:`UnsafeCheckpointError` for anything that is not network data and
    :class:`CorruptCheckpointError` for truncated or non-pickle files.
    """
    path = Path(path)
    with open_regular(path) as fh:
        head = fh.read(2)
        fh.seek(0)
        if head[:1] != b"\x80":
            if head == b"PK":
                raise CorruptCheckpointError(f"{path} is a torch.save zip archive, not a network pickle; "
                                             "use a state-dict loader (torch.load(weights_only=True)) for it")
            raise CorruptCheckpointError(f"{path} is not a pickle file (bad header {head!r})")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            scan = scan_official_pickle(buf, str(path))  # before any object is built: depth, memo, sizes, opcodes
        # The mapping is closed before unpickling: its resident pages and the unpickler's memo of every blob
        # would otherwise both count at the peak (twice the file; 0.6 GB more for XL's discriminator).
        fh.seek(0)
        unpickler = SafeUnpickler(fh, scan.global_skipped, scan.calls_skipped)
        try:
            data = unpickler.load()
        except CheckpointError as exc:
            raise type(exc)(f"{path}: {exc}") from exc
        except (EOFError, pickle.UnpicklingError, ValueError, IndexError, KeyError, TypeError, AttributeError,
                MemoryError, RuntimeError, RecursionError, OverflowError, ZeroDivisionError) as exc:
            raise CorruptCheckpointError(f"{path} is truncated or corrupt: {type(exc).__name__}: "
                                         f"{str(exc)[:160]}") from exc
    if isinstance(data, tuple) and len(data) == 3:
        raise CorruptCheckpointError(f"{path} is a TensorFlow-era (G, D, Gs) pickle; these are not supported, "
                                     "use the PyTorch re-release of the checkpoint")
    if not isinstance(data, dict) or not any(isinstance(data.get(k), PersistentNode) for k in ("G_ema", "G")):
        raise CorruptCheckpointError(f"{path} holds no StyleGAN generator (keys: "
                                     f"{list(data)[:8] if isinstance(data, dict) else type(data).__name__})")
    if isinstance(data.get(SKIPPED_KEY), SkippedRecord):
        data[SKIPPED_KEY] = None  # parsed as inert records (XL's projected discriminator); ganprior never uses it
    for key in ("G_ema", "G", "D"):
        if isinstance(data.get(key), PersistentNode):
            check_module_tree(data[key], f"{path} ({key})")
    return data


_MODULE_DICTS = (("_parameters", torch.Tensor), ("_buffers", torch.Tensor), ("_modules", None))


def check_module_tree(root: Any, label: str, limits: ScanLimits | None = None) -> None:
    """The module graph under ``root`` is a tree the loaders can walk: ``_parameters``/``_buffers`` map names to
    tensors, ``_modules`` names to modules (or None), no module is its own ancestor, depth and size bounded.

    A pickle can make any of these something else (a list, a cycle through a shared ``_modules`` dict); the
    walk here is iterative, so it fails with one clear error instead of ``RecursionError``/``AttributeError``.
    """
    limits = limits or current_limits()
    visits = 0
    stack: list[tuple[Any, str, tuple[int, ...]]] = [(root, "", ())]
    while stack:
        node, where, path = stack.pop()
        visits += 1
        if visits > limits.max_modules:
            raise CheckpointLimitError(f"{label}: " + over_limit("a network tree of more module visits than any "
                                                                 "checkpoint needs", "max_modules", limits.max_modules))
        if len(path) > limits.max_depth:
            raise CheckpointLimitError(f"{label}: modules nest deeper than {limits.max_depth} levels")
        state = node.state if isinstance(node, (PersistentNode, OpaqueObject)) else None
        here = where[:-1] or "the network"
        if not isinstance(state, dict):
            raise CorruptCheckpointError(f"{label}: {here} is not a module")
        for field_name, value_type in _MODULE_DICTS:
            entries = state.get(field_name)
            if entries is None:
                continue
            if not isinstance(entries, dict):
                raise CorruptCheckpointError(f"{label}: {here}.{field_name} is a {type(entries).__name__}, "
                                             "not a dict")
            for key, value in entries.items():
                if not isinstance(key, str):
                    raise CorruptCheckpointError(f"{label}: {here}.{field_name} has a non-string key")
                if value is None:
                    continue
                if value_type is not None:
                    if not isinstance(value, value_type):
                        raise CorruptCheckpointError(f"{label}: {where}{key} is a {type(value).__name__}, "
                                                     "not a tensor")
                    continue
                if id(value) in path or value is node:
                    raise CorruptCheckpointError(f"{label}: the module graph has a cycle ({where}{key} "
                                                 "contains one of its ancestors)")
                stack.append((value, f"{where}{key}.", path + (id(node),)))


def iter_state(node: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Flatten a node tree into ``state_dict`` order (params, persistent buffers, then children)."""
    for name, p in node.parameters.items():
        if p is not None:
            yield prefix + name, p
    skip = node.state.get("_non_persistent_buffers_set") or set()
    for name, b in node.buffers.items():
        if b is not None and name not in skip:
            yield prefix + name, b
    for name, child in node.children.items():
        if child is not None:
            yield from iter_state(child, prefix + name + ".")


def state_dict_of(node: Any) -> collections.OrderedDict[str, torch.Tensor]:
    return collections.OrderedDict((k, v.detach().float() if v.is_floating_point() else v.detach())
                                   for k, v in iter_state(node))


def generator_node(data: dict) -> PersistentNode:
    """``G_ema`` if present (what every official script generates with), else ``G``."""
    node = data.get("G_ema") or data.get("G")
    assert isinstance(node, PersistentNode)
    return node
