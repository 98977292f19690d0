"""Walk a pickle's opcodes before anything is unpickled, and refuse what could crash, hang or exhaust memory.

Allow-list unpicklers (ours, ``torch.load(weights_only=True)``) stop code execution, but not a file that
makes the unpickler itself misbehave: a 10**6-deep tuple used as a dict key overflows the C stack when
hashed, a huge memo index makes CPython allocate gigabytes, colliding integer keys make dict building
quadratic, and sizes taken from the file (storages, tensor views) allocate whatever the file claims.

:func:`scan_pickle` models the unpickler's stack without building any object (opcodes come from
``pickletools``' own table; ``test_hostile_files`` checks the walk against ``pickletools.genops``) and
enforces :class:`ScanLimits`. It also follows what only network checkpoints contain: storage blobs
(``torch.storage._load_from_bytes``, themselves legacy or zip ``torch.save`` files, scanned recursively),
storages named by persistent ids (``.pth`` files), and tensor views over them, which must fit inside
their storage. ``loading/torch_files.py`` applies it to whole ``torch.save`` files (zip or legacy).
"""

from __future__ import annotations

import os
import pickletools
import struct
from dataclasses import dataclass, fields, replace

from ganprior.loading.errors import (
    CheckpointLimitError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
)
from ganprior.loading.scan_records import (  # noqa: F401 - NUMPY_BUILTIN_MODULES etc. re-exported
    _DILL_LOAD_TYPE,
    _NP_ARRAY_CLASS,
    _NP_RECONSTRUCT,
    COUNTED_CALLS,
    DANGEROUS_MODULES,
    DANGEROUS_NAMES,
    NUMPY_BUILTIN_MODULES,
    SKIPPED_KEY,
    Node,
    RecordChecks,
)


@dataclass(frozen=True)
class ScanLimits:
    """Far above any real checkpoint (official pickles nest ~40 deep and hold ~30k memo entries)."""

    max_depth: int = 200
    max_memo: int = 1_000_000
    max_items: int = 1_000_000  # per container, and on the stack
    max_opcodes: int = 4_000_000
    max_string: int = 64 << 20
    max_int_bytes: int = 64
    max_zip_ratio: float = 10.0  # uncompressed / compressed, per zip entry
    max_alias: float = 1.25  # total tensor bytes may exceed total storage bytes by this factor (+1 MiB)
    max_tensors: int = 50_000  # per file, pickle or safetensors (an XL-1024 snapshot with D holds ~4,000)
    max_header_bytes: int = 8 << 20  # safetensors JSON header (parsing costs many times its size in memory)
    max_modules: int = 100_000  # module visits when walking a network tree (shared children count each time)

    @classmethod
    def from_env(cls) -> ScanLimits:
        """Defaults, with any field overridden by ``GANPRIOR_SCAN_LIMITS="max_tensors=200000,..."``."""
        raw = os.environ.get(LIMITS_ENV, "").strip()
        if not raw:
            return cls()
        known = {f.name: f.type for f in fields(cls)}
        changes = {}
        for part in raw.split(","):
            key, _, value = part.partition("=")
            key = key.strip()
            if key not in known:
                raise ValueError(f"{LIMITS_ENV}: unknown limit {key!r} (known: {', '.join(known)})")
            changes[key] = float(value) if known[key] in (float, "float") else int(value)
        return replace(cls(), **changes)


LIMITS_ENV = "GANPRIOR_SCAN_LIMITS"
LIMITS = ScanLimits()


def current_limits() -> ScanLimits:
    """The limits in force now (defaults, or ``GANPRIOR_SCAN_LIMITS`` when set)."""
    return ScanLimits.from_env() if os.environ.get(LIMITS_ENV) else LIMITS


def over_limit(what: str, field: str, value: int) -> str:
    """The tail of a limit error: which limit, and how to raise it for a file one trusts."""
    return f"{what} (limit {field}={value:,}; raise it with {LIMITS_ENV}={field}=<n> only for a file you trust)"

# Opcodes no checkpoint format uses: protocol-0 text forms (except GLOBAL), class instantiation by
# INST/OBJ, the extension registry, and protocol-5 out-of-band buffers.
_REFUSED = {"INT", "LONG", "FLOAT", "STRING", "UNICODE", "GET", "PUT", "PERSID", "INST", "OBJ", "EXT1", "EXT2",
            "EXT4", "NEXT_BUFFER", "READONLY_BUFFER", "BYTEARRAY8"}

STORAGE_ITEMSIZE = {"Double": 8, "Float": 4, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1,
             "Byte": 1, "Bool": 1, "ComplexFloat": 8, "ComplexDouble": 16, "Untyped": 1}

# BUILD (``__setstate__``) is legitimate only on objects made by NEWOBJ and on NumPy arrays/dtypes; on
# anything else (a persistent node, a tensor) it would rewrite state after the allow-list checked it.
_BUILD_OK = {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.dtype",
             "collections.OrderedDict"}
_TENSOR_REBUILDERS = {"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor"}
_LOAD_FROM_BYTES = "torch.storage._load_from_bytes"
_SMALL_INT = 1 << 31


class _Str(str):
    """Marker for a string too long to keep (only its kind matters)."""


_LONG_STR = _Str("<long string>")
_FLOAT = Node("float", 0)


def _depth(value: object) -> int:
    return value.depth if type(value) is Node else 0


def _opcode_table() -> dict[int, tuple[str, str, int]]:
    """code -> (name, how the argument is read, its size or length-prefix size), from ``pickletools``."""
    table = {}
    for op in pickletools.opcodes:
        arg = op.arg
        if arg is None:
            how, size = "none", 0
        elif arg.n == pickletools.UP_TO_NEWLINE:
            how, size = "line", 0
        elif arg.n == pickletools.TAKEN_FROM_ARGUMENT1:
            how, size = "len", 1
        elif arg.n in (pickletools.TAKEN_FROM_ARGUMENT4, pickletools.TAKEN_FROM_ARGUMENT4U):
            how, size = "len", 4
        elif arg.n == pickletools.TAKEN_FROM_ARGUMENT8U:
            how, size = "len", 8
        else:
            how, size = "fixed", arg.n
        table[op.code.encode("latin-1")[0]] = (op.name, how, size)
    return table


_OPCODES = _opcode_table()
_FIXED = {"BININT1": "<B", "BININT2": "<H", "BININT": "<i", "BINGET": "<B", "LONG_BINGET": "<I", "BINPUT": "<B",
          "LONG_BINPUT": "<I", "PROTO": "<B", "FRAME": "<Q", "BINFLOAT": ">d"}


def _decode(buf: bytes | memoryview, pos: int, end: int, label: str) -> tuple[str, object, int]:
    """One opcode at ``pos``: ``(name, argument, next position)``. Every length is checked against the bytes
    present before anything is read (``pickletools.genops`` would first allocate whatever a length claims);
    length-prefixed data is returned as its ``(position, length)``, not copied."""
    if pos >= end:
        raise CorruptCheckpointError(f"{label} is truncated or corrupt (no STOP opcode)")
    code = buf[pos]
    entry = _OPCODES.get(code)
    if entry is None:
        raise CorruptCheckpointError(f"{label}: byte {pos} is not a pickle opcode ({code:#04x})")
    name, how, size = entry
    start = pos
    pos += 1
    if how == "none":
        return name, None, pos
    if how == "fixed":
        if pos + size > end:
            raise CorruptCheckpointError(f"{label} is truncated or corrupt inside {name} at byte {start}")
        arg = struct.unpack_from(_FIXED[name], buf, pos)[0] if name in _FIXED else bytes(buf[pos:pos + size])
        return name, arg, pos + size
    if how == "len":
        if pos + size > end:
            raise CorruptCheckpointError(f"{label} is truncated or corrupt inside {name} at byte {start}")
        n = int.from_bytes(buf[pos:pos + size], "little", signed=(name == "BINSTRING"))
        pos += size
        if n < 0 or pos + n > end:
            raise CheckpointLimitError(f"{label} is truncated or corrupt: {name} at byte {start} declares {n:,} bytes, "
                                       f"only {max(0, end - pos):,} remain in the file")
        return name, (pos, n), pos + n
    parts = []  # text line(s): only GLOBAL is accepted later
    for _ in range(2 if name in ("GLOBAL", "INST") else 1):
        nl = bytes(buf[pos:min(end, pos + 512)]).find(b"\n")
        if nl < 0:
            raise CorruptCheckpointError(f"{label}: unterminated {name} argument at byte {start}")
        parts.append(bytes(buf[pos:pos + nl]).decode("utf-8", "replace"))
        pos += nl + 1
    return name, parts, pos


def iter_opcodes(buf: bytes | memoryview, pos: int = 0, label: str = "pickle"):
    """``(name, argument, position)`` of each opcode up to STOP, like ``pickletools.genops``."""
    end = len(buf)
    while True:
        name, arg, after = _decode(buf, pos, end, label)
        yield name, arg, pos
        if name == "STOP":
            return
        pos = after


class PickleScan(RecordChecks):
    """Model one pickle's stack; ``storages`` maps persistent-id storage keys to ``(numel, itemsize)``."""

    def __init__(self, buf: bytes | memoryview, label: str, *, persistent_ids: bool = False,
                 keep_lists: bool = False, limits: ScanLimits | None = None) -> None:
        self.buf, self.label, self.limits = buf, label, limits or current_limits()
        self.persistent_ids, self.keep_lists = persistent_ids, keep_lists
        self.storages: dict[str, tuple[int, int]] = {}
        self.storage_bytes = 0
        self.tensor_bytes = 0
        self.tensor_numel = 0
        self.n_tensors = 0
        # The skipped record (see _enter_skip): stack index of its value, serials made inside it, and for every
        # GLOBAL/STACK_GLOBAL in file order whether it lies inside (the unpickler then resolves it to an inert record).
        self.skip_base = -1
        self.skip_serials = (0, 0)
        self.skip_done = False
        self.global_skipped: list[bool] = []
        # Per counted function (storage blobs, tensor and parameter rebuilds), in call order: whether the call lies
        # inside the skipped record; the unpickler then returns an inert record instead of building the tensor.
        self.calls_skipped: dict[str, list[bool]] = {qual: [] for qual in COUNTED_CALLS}

    # ---- helpers ----
    def _fail(self, message: str, kind: type = CheckpointLimitError) -> None:
        raise kind(f"{self.label}: {message}")

    def _text(self, name: str, span: tuple[int, int]) -> str:
        pos, n = span
        if n > self.limits.max_string:
            self._fail(f"a {n:,}-byte string exceeds the {self.limits.max_string:,}-byte limit")
        if n > 256:
            return _LONG_STR
        raw = bytes(self.buf[pos:pos + n])
        return raw.decode("latin-1") if "STRING" in name else raw.decode("utf-8", "surrogatepass")

    def _check_key(self, key: object) -> None:
        """Dict/set keys: strings, bytes, None, bools, small ints, or tuples of those. Big ints and floats
        hash predictably (``hash(n) == n % (2**61 - 1)``), which lets a file make dict building quadratic."""
        t = type(key)
        if t is str or t is _Str or key is None or t is bool:
            return
        if t is int:
            if -_SMALL_INT < key < _SMALL_INT:
                return
        elif t is Node:
            if key.kind == "bytes":
                return
            if key.kind == "tuple" and key.items is not None:
                for item in key.items:
                    self._check_key(item)
                return
        self._fail("a dict or set key is a large integer, a float or an object (hash-collision risk)",
                   UnsafeCheckpointError)

    def _to_mark(self, stack: list, marks: list[int], name: str) -> list:
        """Pop everything above the last MARK (and the mark)."""
        if not marks:
            self._fail(f"{name} without MARK", CorruptCheckpointError)
        m = marks.pop()
        items = stack[m:]
        del stack[m:]
        return items

    def _keys(self, name: str, items: list, pairs: bool) -> None:
        if pairs and len(items) % 2:
            self._fail(f"{name} with an odd number of items", CorruptCheckpointError)
        for key in items[::2] if pairs else items:
            self._check_key(key)

    def _container(self, kind: str, items: list, info: object = None) -> Node:
        if len(items) > self.limits.max_items:
            self._fail(f"a container of {len(items):,} items exceeds the {self.limits.max_items:,} limit")
        depth = 1 + max(map(_depth, items), default=0)
        if depth > self.limits.max_depth:
            self._fail(f"objects nest deeper than {self.limits.max_depth} levels")
        keep = kind == "tuple" and len(items) <= 32
        return Node(kind, depth, tuple(items) if keep else None, info)

    def _grow(self, target: object, items: list) -> None:
        if type(target) is not Node or target.kind not in ("list", "dict", "set", "obj"):
            self._fail("items added to something that is not a container", CorruptCheckpointError)
        target.count += len(items)
        if target.count > self.limits.max_items:
            self._fail(f"a container of over {self.limits.max_items:,} items")
        depth = 1 + max(map(_depth, items), default=0)
        if depth > target.depth:
            if depth > self.limits.max_depth:
                self._fail(f"objects nest deeper than {self.limits.max_depth} levels")
            target.depth = depth
        if self.keep_lists and target.kind == "list":
            target.items = (target.items or ()) + tuple(items)

    # ---- storages and tensors ----
    def _storage_from_pid(self, pid: object) -> Node:
        items = pid.items if type(pid) is Node and pid.kind == "tuple" else None
        if not items or items[0] != "storage" or len(items) not in (5, 6):
            self._fail("a persistent id that is not a tensor storage record", UnsafeCheckpointError)
        _, stype, key, location, numel = items[:5]
        name = stype.info if type(stype) is Node and stype.kind == "global" else ""
        short = name[len("torch."):-len("Storage")] if name.startswith("torch.") and name.endswith("Storage") else ""
        if name == "torch.storage.UntypedStorage":
            short = "Untyped"
        if short not in STORAGE_ITEMSIZE or type(key) is not str or type(location) is not str or type(numel) is not int:
            self._fail("malformed storage record (type, key, location or size)", CorruptCheckpointError)
        if len(items) == 6 and items[5] is not None:
            self._fail("storage views (legacy view_metadata) are not supported", CorruptCheckpointError)
        if numel < 0:
            self._fail(f"storage {key!r} has a negative size", CorruptCheckpointError)
        itemsize = STORAGE_ITEMSIZE[short]
        if key in self.storages and self.storages[key] != (numel, itemsize):
            self._fail(f"storage {key!r} is declared twice with different sizes", CorruptCheckpointError)
        if key not in self.storages:
            self.storages[key] = (numel, itemsize)
            self.storage_bytes += numel * itemsize
        return Node("storage", 0, info=(numel, itemsize))

    def _blob_storage(self, args: Node) -> Node:
        blob = args.items[0] if args.items else None
        if type(blob) is not Node or blob.kind != "bytes":
            self._fail("torch.storage._load_from_bytes without a bytes argument", UnsafeCheckpointError)
        pos, n = blob.info
        from ganprior.loading.torch_files import (
            scan_storage_blob,  # the blob is itself a torch.save file
        )

        numel, itemsize = scan_storage_blob(self.buf[pos:pos + n], f"{self.label} (blob at byte {pos})", self.limits)
        self.storage_bytes += numel * itemsize
        return Node("storage", 0, info=(numel, itemsize))

    def _tensor(self, args: Node) -> Node:
        items = args.items
        if not items or len(items) < 4:
            self._fail("tensor record with too few fields", CorruptCheckpointError)
        storage, offset, size, stride = items[:4]
        if type(storage) is not Node or storage.kind != "storage":
            self._fail("tensor rebuilt from something that is not a storage", UnsafeCheckpointError)
        if not all(type(x) is Node and x.kind == "tuple" and x.items is not None for x in (size, stride)) \
                or type(offset) is not int:
            self._fail("tensor size/stride/offset are not plain integers", CorruptCheckpointError)
        numel_s, itemsize = storage.info
        numel = check_view(numel_s, offset, size.items, stride.items, self.label)
        self.n_tensors += 1
        if self.n_tensors > self.limits.max_tensors:
            self._fail(over_limit("more tensors than any network checkpoint holds", "max_tensors",
                                  self.limits.max_tensors))
        self.tensor_bytes += numel * itemsize
        self.tensor_numel += numel
        return Node("obj", 1, info="tensor")

    # ---- the walk ----
    def run(self, pos: int = 0) -> tuple[object, int]:
        """Scan one pickle starting at ``pos``; returns (the modelled result, the position after STOP)."""
        limits, label, fail = self.limits, self.label, self._fail
        stack: list = []
        marks: list[int] = []
        memo: list = []
        n_ops = 0
        buf = self.buf
        end = len(buf)
        unpack_from = struct.unpack_from
        watch = False  # slow path for memo reads: near the top level (the skipped record's edges) or after it
        while True:
            watch = self.skip_done or (len(stack) < 16 and len(marks) < 2)
            n_ops += 1
            if not n_ops & 0xFFF:
                if n_ops > limits.max_opcodes:
                    fail(f"more than {limits.max_opcodes:,} opcodes")
                if len(stack) > limits.max_items:
                    fail(f"more than {limits.max_items:,} objects on the stack")
            code = buf[pos] if pos < end else -1
            # Fast paths for the opcodes that make up most of a network pickle; same rules as below.
            if code == 0x68 and pos + 1 < end and not watch:  # BINGET
                idx = buf[pos + 1]
                if idx >= len(memo):
                    fail(f"memo entry {idx} is read before it is written", CorruptCheckpointError)
                stack.append(memo[idx])
                pos += 2
                continue
            if code == 0x94 and stack:  # MEMOIZE
                memo.append(stack[-1])
                if len(memo) > limits.max_memo:
                    fail(f"more than {limits.max_memo:,} memo entries")
                pos += 1
                continue
            if code == 0x4B and pos + 1 < end:  # BININT1
                stack.append(buf[pos + 1])
                pos += 2
                continue
            if code == 0x29:  # EMPTY_TUPLE
                stack.append(Node("tuple", 1, ()))
                pos += 1
                continue
            if code == 0x28:  # MARK
                marks.append(len(stack))
                pos += 1
                continue
            if code == 0x6A and pos + 4 < end and not watch:  # LONG_BINGET
                idx = unpack_from("<I", buf, pos + 1)[0]
                if idx >= len(memo):
                    fail(f"memo entry {idx} is read before it is written", CorruptCheckpointError)
                stack.append(memo[idx])
                pos += 5
                continue
            at = pos
            name, arg, pos = _decode(buf, pos, end, label)
            skipping = self.skip_base >= 0
            if name == "BINGET" or name == "LONG_BINGET":
                if arg >= len(memo):
                    fail(f"memo entry {arg} is read before it is written", CorruptCheckpointError)
                if not skipping and self.skip_done and self._made_in_skip(memo[arg]):
                    fail(f"an object of the skipped '{SKIPPED_KEY}' record is used outside it", UnsafeCheckpointError)
                stack.append(memo[arg])
            elif name == "MEMOIZE":
                if not stack:
                    fail("MEMOIZE on an empty stack", CorruptCheckpointError)
                memo.append(stack[-1])
                if len(memo) > limits.max_memo:
                    fail(f"more than {limits.max_memo:,} memo entries")
            elif name == "BINPUT" or name == "LONG_BINPUT":
                if not stack:
                    fail("PUT on an empty stack", CorruptCheckpointError)
                if arg > len(memo):  # the C unpickler would size its memo table to this index
                    fail(f"memo index {arg:,} skips ahead of the {len(memo):,} entries written (memo bomb)")
                if arg == len(memo):
                    memo.append(stack[-1])
                    if len(memo) > limits.max_memo:
                        fail(f"more than {limits.max_memo:,} memo entries")
                else:
                    memo[arg] = stack[-1]
            elif name == "MARK":
                marks.append(len(stack))
            elif name in ("BININT1", "BININT2", "BININT"):
                stack.append(arg)
            elif name == "EMPTY_TUPLE":
                stack.append(Node("tuple", 1, ()))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                k = int(name[-1])
                if len(stack) - (marks[-1] if marks else 0) < k:
                    fail(f"{name} on too short a stack", CorruptCheckpointError)
                items = stack[-k:]
                del stack[-k:]
                stack.append(self._container("tuple", items))
            elif name in ("TUPLE", "LIST", "DICT", "FROZENSET"):
                items = self._to_mark(stack, marks, name)
                if name in ("DICT", "FROZENSET"):
                    self._keys(name, items, pairs=name == "DICT")
                kind = {"TUPLE": "tuple", "LIST": "list", "DICT": "dict", "FROZENSET": "set"}[name]
                stack.append(self._container(kind, items))
            elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
                stack.append(Node(name[6:].lower(), 1))
            elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
                stack.append(None if name == "NONE" else name == "NEWTRUE")
            elif name in ("SETITEMS", "APPENDS", "ADDITEMS"):
                items = self._to_mark(stack, marks, name)
                if not stack:
                    fail(f"{name} with nothing to add to", CorruptCheckpointError)
                if skipping:
                    self._skip_target(stack)
                if name != "APPENDS":
                    self._keys(name, items, pairs=name == "SETITEMS")
                self._grow(stack[-1], items)
            elif name == "SETITEM" or name == "APPEND":
                k = 2 if name == "SETITEM" else 1
                if len(stack) - (marks[-1] if marks else 0) < k + 1:
                    fail(f"{name} on too short a stack", CorruptCheckpointError)
                items = stack[-k:]
                del stack[-k:]
                if name == "SETITEM":
                    self._check_key(items[0])
                if skipping:
                    self._skip_target(stack)
                self._grow(stack[-1], items)
            elif name == "REDUCE":
                if len(stack) - (marks[-1] if marks else 0) < 2:
                    fail("REDUCE on too short a stack", CorruptCheckpointError)
                args = stack.pop()
                func = stack.pop()
                if type(args) is not Node or args.kind != "tuple":
                    fail("REDUCE arguments are not a tuple", CorruptCheckpointError)
                if skipping and (self._inert(func) or (type(func) is Node and func.kind == "global"
                                                       and self._made_in_skip(func))):
                    stack.append(Node("obj", args.depth, info="inert"))
                    continue
                if type(func) is not Node or func.kind != "global":
                    fail("REDUCE calls something that is not a named global", UnsafeCheckpointError)
                qual = func.info
                if qual in self.calls_skipped:
                    self.calls_skipped[qual].append(skipping)
                helper = self._dill_helper(qual, args)
                if helper is not None:
                    stack.append(helper)
                elif skipping and qual == _DILL_LOAD_TYPE:
                    stack.append(Node("obj", args.depth, info="inert"))
                elif qual == _LOAD_FROM_BYTES:
                    stack.append(self._blob_storage(args))
                elif qual in _TENSOR_REBUILDERS:
                    stack.append(self._tensor(args))
                else:
                    stack.append(self._reduce_other(qual, args))
            elif name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING"):
                stack.append(self._text(name, arg))
            elif name in ("SHORT_BINBYTES", "BINBYTES", "BINBYTES8"):
                stack.append(Node("bytes", 0, info=arg))
            elif name == "BINFLOAT":
                stack.append(_FLOAT)
            elif name == "LONG1" or name == "LONG4":
                p, n = arg
                if n > limits.max_int_bytes:
                    fail(f"a {n:,}-byte integer")
                stack.append(int.from_bytes(self.buf[p:p + n], "little", signed=True))
            elif name == "STACK_GLOBAL" or name == "GLOBAL":
                if name == "GLOBAL":
                    module, qualname = arg
                else:
                    if len(stack) < 2:
                        fail("STACK_GLOBAL on too short a stack", CorruptCheckpointError)
                    qualname = stack.pop()
                    module = stack.pop()
                    if type(module) is not str or type(qualname) is not str:
                        fail("STACK_GLOBAL names are not short strings", UnsafeCheckpointError)
                if skipping:
                    self._check_global(f"{module}.{qualname}")
                self.global_skipped.append(skipping)
                stack.append(Node("global", 0, info=f"{module}.{qualname}"))
            elif name == "NEWOBJ" or name == "NEWOBJ_EX":
                k = 3 if name == "NEWOBJ_EX" else 2
                if len(stack) - (marks[-1] if marks else 0) < k:
                    fail(f"{name} on too short a stack", CorruptCheckpointError)
                parts = stack[-k:]
                del stack[-k:]
                if skipping and (self._inert(parts[0]) or self._made_in_skip(parts[0])):
                    stack.append(Node("obj", 1 + max(map(_depth, parts[1:])), info="inert"))
                    continue
                if type(parts[0]) is not Node or parts[0].kind != "global":
                    fail(f"{name} of something that is not a named class", UnsafeCheckpointError)
                if parts[0].info == _NP_ARRAY_CLASS:
                    fail(f"{name} of numpy.ndarray (arrays are only rebuilt from numpy's own records)",
                         UnsafeCheckpointError)
                stack.append(Node("obj", 1 + max(map(_depth, parts[1:])), info="newobj"))
            elif name == "BUILD":
                if len(stack) - (marks[-1] if marks else 0) < 2:
                    fail("BUILD on too short a stack", CorruptCheckpointError)
                state = stack.pop()
                target = stack[-1]
                if skipping:
                    self._skip_target(stack)
                    if self._inert(target):
                        self._grow(target, [state])
                        continue
                if type(target) is not Node or target.kind != "obj" or \
                        (target.info != "newobj" and target.info not in _BUILD_OK):
                    what = target.info if type(target) is Node else type(target).__name__
                    fail(f"BUILD would rewrite the state of {what} after it was checked", UnsafeCheckpointError)
                if target.info == "numpy.dtype":
                    self._check_dtype_state(state)
                elif target.info in _NP_RECONSTRUCT:
                    self._check_array_state(state)
                self._grow(target, [state])
            elif name == "BINPERSID":
                if not self.persistent_ids:
                    fail("persistent ids have no place in this kind of pickle", UnsafeCheckpointError)
                if not stack:
                    fail("BINPERSID on an empty stack", CorruptCheckpointError)
                stack.append(self._storage_from_pid(stack.pop()))
            elif name == "POP":
                if marks and marks[-1] == len(stack):
                    marks.pop()
                elif stack:
                    stack.pop()
                else:
                    fail("POP on an empty stack", CorruptCheckpointError)
            elif name == "POP_MARK":
                if not marks:
                    fail("POP_MARK without MARK", CorruptCheckpointError)
                del stack[marks.pop():]
            elif name == "DUP":
                if not stack:
                    fail("DUP on an empty stack", CorruptCheckpointError)
                stack.append(stack[-1])
            elif name == "STOP":
                if self.skip_base >= 0:
                    self._leave_skip()
                if len(stack) != 1 or marks:
                    fail("the pickle does not end with exactly one object", CorruptCheckpointError)
                return stack[0], pos
            elif name in ("PROTO", "FRAME"):
                pass
            elif name in _REFUSED:
                fail(f"opcode {name} (at byte {at}) is never used by network checkpoints", UnsafeCheckpointError)
            else:
                fail(f"unexpected opcode {name} at byte {at}", UnsafeCheckpointError)
            if watch and not self.skip_done:
                if self.skip_base >= 0 and len(stack) <= self.skip_base:
                    self._leave_skip()  # the record's slot was consumed (e.g. by the top-level SETITEMS)
                else:
                    self._watch_skip(stack, marks, name)

    def check_aliasing(self) -> None:
        """Views may share storage, but all tensors together must not claim much more than is stored."""
        allowed = self.storage_bytes * self.limits.max_alias + (1 << 20)
        if self.tensor_bytes > allowed:
            self._fail(f"its tensors claim {self.tensor_bytes:,} bytes over {self.storage_bytes:,} stored bytes "
                       "(shared or overlapping views)")


def check_view(storage_numel: int, offset: int, size: tuple, stride: tuple, label: str) -> int:
    """Numel of a tensor view, after checking it lies inside its storage without zero strides or overlap."""
    if len(size) != len(stride) or len(size) > 8 or not all(type(v) is int for v in (*size, *stride)):
        raise CorruptCheckpointError(f"{label}: tensor size {size} / stride {stride} are malformed")
    if offset < 0 or any(s < 0 for s in size) or any(st < 0 for st in stride):
        raise CorruptCheckpointError(f"{label}: negative tensor size, stride or offset")
    numel = 1
    for s in size:
        numel *= s
    if numel == 0:
        return 0
    last = offset + sum((s - 1) * st for s, st in zip(size, stride))
    if last >= storage_numel or numel > storage_numel:
        raise CheckpointLimitError(f"{label}: a tensor of {numel:,} elements (shape {list(size)}) is larger than "
                                   f"its storage of {storage_numel:,}")
    extent = 1
    for s, st in sorted((p for p in zip(size, stride) if p[0] > 1), key=lambda p: p[1]):
        if st < extent:
            raise CheckpointLimitError(f"{label}: tensor view with zero or overlapping strides {list(stride)} "
                                       f"for shape {list(size)}")
        extent = st * s
    return numel


def scan_official_pickle(buf: bytes | memoryview, label: str, limits: ScanLimits | None = None) -> PickleScan:
    """Scan an official network pickle (no persistent ids; storages come from nested blobs)."""
    scan = PickleScan(buf, label, limits=limits)
    scan.result, end = scan.run()
    scan.check_aliasing()
    return scan
