"""Hostile twins of what issue 29 accepts: dill 0.3.4's NumPy records and the skipped projected discriminator.

Each acceptance (``_get_attr(_import_module(<numpy module>), 'scalar'|'_reconstruct')`` anywhere; inert records
inside a top-level ``'D'`` that is not a persistent network) has files here that use the same record shapes for
something else; every one must still be refused. ``hostile_corpus.py`` adds them to the corpus.
"""

from __future__ import annotations

import collections
import pickle

import torch

P4 = b"\x80\x04"
NP_UMATH = "numpy._core._multiarray_umath"


def u(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def g(module: str, name: str) -> bytes:
    """STACK_GLOBAL module.name."""
    return u(module) + u(name) + b"\x93"


def dill_attr(module: str, name: str) -> bytes:
    """dill 0.3.4's record of a builtin function: ``_get_attr(_import_module(module), name)``."""
    return g("dill._dill", "_get_attr") + g("dill._dill", "_import_module") + u(module) + b"\x85R" + u(name) + b"\x86R"


def top(*pairs: tuple[str, bytes]) -> bytes:
    """A top-level dict written as the official loop's ``dill.dump`` writes it: MARK, key/value pairs, SETITEMS."""
    return P4 + b"}(" + b"".join(u(k) + v for k, v in pairs) + b"u."


# What the projected discriminator's records look like (NEWOBJ of a class, BUILD with a bound method made by
# calling dill's _load_type result): fine under 'D', refused anywhere else.
PD_RECORD = (g("pg_modules.discriminator", "ProjectedDiscriminator") + b")\x81" + b"}" + u("forward_flex")
             + g("dill._dill", "_load_type") + u("MethodType") + b"\x85R" + g("feature_networks.vit", "forward_flex")
             + b"N\x86R" + b"sb")


def accepted_skip_record() -> bytes:
    return top(("D", PD_RECORD), ("G_ema", b"N"))


def accepted_dill_scalar() -> bytes:
    """``{'w_gain': scalar(dtype('f4'), b'...')}`` exactly as dill 0.3.4 writes it."""
    dtype = g("numpy", "dtype") + u("f4") + b"\x89\x88\x87R" + b"(K\x03" + u("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    return top(("w_gain", dill_attr(NP_UMATH, "scalar") + dtype + b"C\x04\x00\x00\xc0?\x86R"))


def twins(marker_cmd: str) -> list[tuple[str, str, bytes, str]]:
    """``(file name, expected error, bytes, what)`` for each hostile twin."""
    object_dtype = g("numpy", "dtype") + u("O8") + b"\x89\x88\x87R"
    leak = (g("pg_modules.discriminator", "ProjectedDiscriminator") + b")\x81\x94" + b"}" + u("m")
            + g("dill._dill", "_load_type") + u("MethodType") + b"\x85R" + g("x", "f") + b"N\x86Rsb")
    return [
        ("dill_import_os.pkl", "UnsafeCheckpointError",
         top(("G_ema", dill_attr("os", "system") + u(marker_cmd) + b"\x85R")),
         "dill 0.3.4's _get_attr(_import_module(...)) record naming os.system instead of numpy's scalar"),
        ("dill_numpy_other_function.pkl", "UnsafeCheckpointError",
         top(("G_ema", dill_attr(NP_UMATH, "frompyfunc") + b")R")),
         "the same record naming a NumPy function other than scalar/_reconstruct"),
        ("dill_scalar_object_dtype.pkl", "UnsafeCheckpointError",
         top(("G_ema", dill_attr(NP_UMATH, "scalar") + object_dtype + b"C\x08" + bytes(8) + b"\x86R")),
         "dill 0.3.4's scalar record with an object dtype (a pointer read from the file)"),
        ("skip_record_not_under_D.pkl", "UnsafeCheckpointError", top(("G_ema", PD_RECORD)),
         "the discriminator's records (a call of dill's _load_type result) under G_ema instead of D"),
        ("skip_record_payload.pkl", "UnsafeCheckpointError",
         top(("D", g("os", "system") + u(marker_cmd) + b"\x85R"), ("G_ema", b"N")),
         "os.system inside the skipped D (inert there, but refused: no real D names it)"),
        ("skip_record_leaks_to_G_ema.pkl", "UnsafeCheckpointError", top(("D", leak), ("G_ema", b"h\x00")),
         "G_ema is an object made inside the skipped D (a memo reference)"),
        ("skip_record_edits_G.pkl", "UnsafeCheckpointError",
         top(("G", b"}\x94"), ("D", g("x", "P") + b")\x81" + b"h\x00" + u("k") + g("x", "f") + b"s0"),
             ("G_ema", b"N")),
         "the skipped D adds an inert object to G's dict (SETITEM through the memo)"),
        ("persistent_D_stays_strict.pkl", "UnsafeCheckpointError",
         top(("D", g("torch_utils.persistence", "_reconstruct_persistent_obj") + b"}" + u("m")
                   + g("dill._dill", "_load_type") + u("MethodType") + b"\x85R" + g("x", "f") + b"N\x86R"
                   + b"s\x85R"), ("G_ema", b"N")),
         "a D that is a persistent network (SG2/SG3, used) keeps the strict rules"),
        ("skip_record_rewrites_tensor.pkl", "UnsafeCheckpointError", _tensor_build_in_D(),
         "BUILD on a real tensor inside D (its rebuild function comes from outside D through the memo)"),
    ]


class _Reduce:
    def __init__(self, func, args, state=None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _tensor_build_in_D() -> bytes:
    rebuild = torch._utils._rebuild_tensor_v2
    storage = torch.ones(4).storage()
    tensor = _Reduce(rebuild, (storage, 0, (4,), (1,), False, collections.OrderedDict()),
                     (torch.ones(1).storage(), 0, (10 ** 6,), (1,)))
    return pickle.dumps({"G": [rebuild, torch.storage._load_from_bytes], "D": [tensor], "G_ema": None}, protocol=4)

