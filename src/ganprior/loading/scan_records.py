"""What the pre-scan checks inside records, beyond the pickle machine itself: NumPy dtypes, arrays and scalars
(plain numeric only, sizes bounded by the file), dill's records of NumPy functions, and the skipped record (a
top-level ``'D'`` that is not a persistent network: StyleGAN-XL's projected discriminator).

:class:`RecordChecks` is a mixin of :class:`~ganprior.loading.pickle_scan.PickleScan` (it uses its ``buf``,
``limits`` and ``_fail``); the walk itself stays in ``pickle_scan.py``.
"""

from __future__ import annotations

import itertools
import re

import numpy as np

from ganprior.loading.errors import CorruptCheckpointError, UnsafeCheckpointError

_NP_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_NP_RECONSTRUCT = {f"{m}._reconstruct" for m in _NP_MODULES}
_NP_SCALAR = {f"{m}.scalar" for m in _NP_MODULES}
_NP_ARRAY_CLASS = "numpy.ndarray"
_DILL_ARRAY = "dill._dill._create_array"
# dill 0.3.4 writes NumPy's builtin functions as ``_get_attr(_import_module(<module>), <name>)``.
_DILL_IMPORT, _DILL_GETATTR, _DILL_LOAD_TYPE = "dill._dill._import_module", "dill._dill._get_attr", "dill._dill._load_type"
NUMPY_BUILTIN_MODULES = ("numpy.core._multiarray_umath", "numpy._core._multiarray_umath", "numpy.core.multiarray",
                         "numpy._core.multiarray")
NUMPY_BUILTINS = {"scalar": "numpy._core.multiarray.scalar", "_reconstruct": "numpy._core.multiarray._reconstruct"}
_PERSISTENT = "torch_utils.persistence._reconstruct_persistent_obj"
COUNTED_CALLS = ("torch.storage._load_from_bytes", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
                 "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state")
SKIPPED_KEY = "D"  # the top-level entry of a snapshot that ganprior never uses unless it is a persistent network
# Modules and names a network checkpoint can only mention as an attack: refused anywhere, skipped records included.
DANGEROUS_MODULES = {
    "os", "posix", "nt", "subprocess", "sys", "builtins", "__builtin__", "shutil", "socket", "importlib",
    "runpy", "code", "codeop", "pty", "ctypes", "multiprocessing", "pickle", "_pickle", "marshal", "types",
    "webbrowser", "functools", "operator", "io", "pathlib", "tempfile", "urllib", "http", "requests",
}
DANGEROUS_NAMES = {"eval", "exec", "compile", "getattr", "setattr", "__import__", "open", "system", "apply"}
# Inside the skipped record every global is inert, but these still only ever mean an attack. (dill 0.4 writes
# closure cells as ``getattr(dill._dill, '_setattr', setattr)(cell, ...)``, hence builtins.getattr/setattr there.)
_SKIP_REFUSED_MODULES = DANGEROUS_MODULES - {"builtins", "__builtin__", "types", "functools", "operator"}
_SKIP_REFUSED_NAMES = DANGEROUS_NAMES - {"getattr", "setattr"}
# Plain numeric dtypes only (bool, ints, floats, complex): no object, string, void or structured dtypes.
_DTYPE_CODE = re.compile(r"[<>|=]?(?:[biufc][0-9]{1,2}|[?bBhHiIlLqQefdgFDG])\Z")


_SERIAL = itertools.count(1)


class Node:
    """A container or object on the modelled stack: its kind, nesting depth, (small tuples) items, and a serial
    number that orders creations (what was made inside a skipped record is recognised by it)."""

    __slots__ = ("count", "depth", "info", "items", "kind", "serial")

    def __init__(self, kind: str, depth: int, items: tuple | None = None, info: object = None) -> None:
        self.kind, self.depth, self.items, self.info, self.count = kind, depth, items, info, 0
        self.serial = next(_SERIAL)


class RecordChecks:
    """NumPy, dill and skipped-record rules of the pre-scan (mixed into ``PickleScan``)."""

    # ---- the skipped record: a top-level 'D' that is not a persistent network (XL's projected discriminator) ----
    def _watch_skip(self, stack: list, marks: list[int], opcode: str) -> None:
        """After a push at the top level of the top-level dict: opens the skipped region when the value of key
        'D' starts with anything but a persistent-network record, and closes it at the next top-level key.

        Only a top-level ``D`` is ever skipped, once; what is made inside it is inert at run time (its globals
        resolve to :class:`~ganprior.loading.safe_pickle.SkippedRecord`), may not change anything made outside it,
        and nothing outside it may use what it made (checked on every memo read)."""
        n = len(stack)
        if self.skip_base < 0:
            if n >= 3 and n % 2 == 1 and marks == [1] and stack[n - 2] == SKIPPED_KEY and not self.skip_done \
                    and type(stack[0]) is Node and stack[0].kind == "dict":
                head = stack[-1]  # decided on the first object in the slot (a class's module name comes first)
                if head is None or type(head) is str or (type(head) is Node and head.info == _PERSISTENT):
                    return
                self.skip_base = n - 1
                if opcode in ("STACK_GLOBAL", "GLOBAL"):
                    self.global_skipped[-1] = True  # the record's own first global
                    self._check_global(head.info)
                fresh = type(head) is Node and opcode not in ("BINGET", "LONG_BINGET", "DUP")
                self.skip_serials = (head.serial - 1 if fresh else next(_SERIAL), 1 << 62)
        elif n == self.skip_base + 2 and marks == [1] and type(stack[-1]) is str \
                and type(stack[-2]) is Node and stack[-2].kind not in ("global", "module"):
            self._leave_skip()  # the next top-level key, after a finished value (not a name or a callable)

    def _skip_target(self, stack: list) -> None:
        """Inside the skipped record, SETITEM(S)/APPEND(S)/ADDITEMS/BUILD may only change what it made itself."""
        if stack and type(stack[-1]) is Node and not self._made_in_skip(stack[-1]):
            self._fail(f"the skipped '{SKIPPED_KEY}' record changes an object made outside it", UnsafeCheckpointError)

    def _leave_skip(self) -> None:
        self.skip_serials = (self.skip_serials[0], next(_SERIAL))
        self.skip_base, self.skip_done = -1, True

    def _made_in_skip(self, value: object) -> bool:
        lo, hi = self.skip_serials
        return type(value) is Node and lo < value.serial < hi and value.kind not in ("bytes",)

    def _inert(self, value: object) -> bool:
        """Made inside the skipped region by something the unpickler resolves to an inert record."""
        return type(value) is Node and value.info == "inert" and self._made_in_skip(value)

    def _dill_helper(self, qual: str, args: Node) -> Node | None:
        """dill's ``_import_module``/``_get_attr``: NumPy's builtin modules and functions only (anywhere), or an
        inert record inside the skipped region; None when ``qual`` is not one of them."""
        if qual not in (_DILL_IMPORT, _DILL_GETATTR):
            return None
        items = args.items or ()
        if qual == _DILL_IMPORT and len(items) == 1 and items[0] in NUMPY_BUILTIN_MODULES:
            return Node("module", 0, info=items[0])
        if qual == _DILL_GETATTR and len(items) == 2 and type(items[0]) is Node and items[0].kind == "module" \
                and items[1] in NUMPY_BUILTINS:
            return Node("global", 0, info=NUMPY_BUILTINS[items[1]])
        if self.skip_base >= 0:
            return Node("obj", 0, info="inert")
        self._fail(f"dill {qual.rsplit('.', 1)[1]} of something other than NumPy's own functions", UnsafeCheckpointError)

    def _check_global(self, qual: str) -> None:
        """Globals inside the skipped record: inert, but never a module or name that only an attack needs."""
        if qual.split(".")[0] in _SKIP_REFUSED_MODULES or qual.rsplit(".", 1)[-1] in _SKIP_REFUSED_NAMES:
            self._fail(f"checkpoint references {qual[:120]}", UnsafeCheckpointError)

    # ---- NumPy records: plain numeric dtypes only, element counts bounded by the bytes the file holds ----
    def _dtype_code(self, value: object) -> tuple[str, int] | None:
        """``(code, itemsize)`` of a plain numeric dtype code given as a short str or bytes, else None."""
        if type(value) is Node and value.kind == "bytes" and value.info[1] <= 8:
            pos, n = value.info
            value = bytes(self.buf[pos:pos + n]).decode("latin-1")
        if type(value) is not str or not _DTYPE_CODE.match(value):
            return None
        try:
            dtype = np.dtype(value)
        except TypeError:
            return None
        return (value, dtype.itemsize) if dtype.kind in "biufc" else None

    def _numel(self, shape: object, itemsize: int) -> int:
        """Elements of a NumPy shape; their bytes may not exceed the bytes the whole file holds."""
        if type(shape) is not Node or shape.kind != "tuple" or shape.items is None \
                or not all(type(s) is int and s >= 0 for s in shape.items):
            self._fail("NumPy array shape is not a short tuple of non-negative integers", CorruptCheckpointError)
        numel = 1
        for s in shape.items:
            numel *= s
        if numel * itemsize > len(self.buf):
            self._fail(f"a NumPy array of {numel:,} elements needs more bytes than the file's {len(self.buf):,}")
        return numel

    def _np_dtype(self, args: Node) -> Node:
        code = self._dtype_code(args.items[0] if args.items else None)
        if code is None:
            self._fail("NumPy dtype that is not a plain numeric type (object dtypes hold arbitrary objects)",
                       UnsafeCheckpointError)
        return Node("obj", 1, code, info="numpy.dtype")

    def _is_dtype(self, value: object) -> bool:
        return type(value) is Node and value.info == "numpy.dtype" and value.items is not None

    def _check_dtype_state(self, state: object) -> None:
        """``dtype.__setstate__`` may not add fields, a subarray or a size (structured dtypes can hold objects)."""
        items = state.items if type(state) is Node and state.kind == "tuple" else None
        if not items or len(items) not in (8, 9) or items[0] not in (3, 4) or items[1] not in ("<", ">", "|", "=") \
                or items[2:5] != (None, None, None) or items[5:7] != (-1, -1):
            self._fail("NumPy dtype state that is not a plain numeric type", UnsafeCheckpointError)

    def _np_reconstruct_args(self, args: object) -> None:
        """``_reconstruct(ndarray, shape, code)``, NumPy's own first step of rebuilding an array."""
        items = args.items if type(args) is Node and args.kind == "tuple" else None
        if not items or len(items) != 3 or type(items[0]) is not Node or items[0].info != _NP_ARRAY_CLASS:
            self._fail("NumPy array record that is not numpy's own (_reconstruct of ndarray)", UnsafeCheckpointError)
        code = self._dtype_code(items[2])
        if code is None:
            self._fail("NumPy array of a dtype that is not plain numeric", UnsafeCheckpointError)
        self._numel(items[1], code[1])

    def _check_array_state(self, state: object) -> None:
        """``ndarray.__setstate__((version, shape, dtype, fortran, raw))``: raw bytes exactly fill the shape."""
        items = state.items if type(state) is Node and state.kind == "tuple" else None
        if not items or len(items) != 5 or not self._is_dtype(items[2]):
            self._fail("NumPy array state without a plain numeric dtype", UnsafeCheckpointError)
        raw = items[4]
        numel = self._numel(items[1], items[2].items[1])
        if type(raw) is not Node or raw.kind != "bytes" or raw.info[1] != numel * items[2].items[1]:
            self._fail("NumPy array data does not match its shape and dtype", CorruptCheckpointError)

    def _reduce_other(self, qual: str, args: Node) -> Node:
        """REDUCE of a named global that is neither a tensor nor a storage blob."""
        if qual == "numpy.dtype":
            return self._np_dtype(args)
        if qual in _NP_RECONSTRUCT:
            self._np_reconstruct_args(args)
        elif qual in _NP_SCALAR:
            items = args.items or ()
            if not items or len(items) > 2 or not self._is_dtype(items[0]) or (len(items) == 2 and not (
                    type(items[1]) is Node and items[1].kind == "bytes" and items[1].info[1] == items[0].items[1])):
                self._fail("NumPy scalar record that is not a plain numeric value", UnsafeCheckpointError)
        elif qual == _DILL_ARRAY:
            items = args.items or ()
            if len(items) not in (3, 4) or type(items[0]) is not Node or items[0].info not in _NP_RECONSTRUCT:
                self._fail("dill array record with a foreign constructor", UnsafeCheckpointError)
            self._np_reconstruct_args(items[1])
            self._check_array_state(items[2])
        elif qual == _NP_ARRAY_CLASS:
            self._fail("numpy.ndarray called directly (arrays are only rebuilt from numpy's own records)",
                       UnsafeCheckpointError)
        return Node("obj", args.depth, info=qual)
