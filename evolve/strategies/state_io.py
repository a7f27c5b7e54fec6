"""A whitelisted, pickle-free object-graph codec for strategy state.

A strategy's state is a pair ``(meta, arrays)``: JSON-serialisable metadata and named numpy
arrays, stored with :func:`sensoryneuron.files.save_npz`.

:func:`encode_graph` / :func:`decode_graph` turn an object graph (here: a pycma
``CMAEvolutionStrategy``) into such a pair and back. They rebuild instances only of classes
from whitelisted packages and resolve callables by name, so loading a file never runs code
named by the file outside that whitelist. Shared references, cycles, numpy scalars, tuples,
ranges, dicts with non-str keys and aliased or strided arrays (views of one another, Fortran
order) come back exactly as they were.
"""

from __future__ import annotations

import importlib
import math
import types
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from sensoryneuron.errors import CheckpointError

# Tags of the encoded tree. Every JSON object in an encoded tree carries exactly one of them.
_TAGS = (
    "$f",
    "$np",
    "$tuple",
    "$range",
    "$ref",
    "$array",
    "$list",
    "$dict",
    "$global",
    "$method",
    "$obj",
)


# ---------------------------------------------------------------------------------------------
# Object-graph codec
# ---------------------------------------------------------------------------------------------


def _in_packages(module: str, packages: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _resolve(module: str, qualname: str) -> Any:
    """Import ``module`` and follow the dotted ``qualname``; ``None`` if that fails."""
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError):
        return None
    return obj


def _byte_range(a: np.ndarray) -> tuple[int, int]:
    """Half-open range of addresses that the elements of ``a`` touch."""
    lo = hi = a.__array_interface__["data"][0]
    for n, s in zip(a.shape, a.strides, strict=True):
        if s < 0:
            lo += (n - 1) * s
        else:
            hi += (n - 1) * s
    return lo, hi + a.itemsize


def _owner(a: np.ndarray) -> np.ndarray:
    """The last ndarray in ``a``'s chain of bases (the one over the allocation)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _name_module(obj: Any) -> str | None:
    """``obj.__module__`` when it is a string, else ``None``."""
    module = getattr(obj, "__module__", None)
    return module if isinstance(module, str) else None


class _Encoder:
    def __init__(self, packages: tuple[str, ...], extra_globals: frozenset[str], prefix: str):
        self.packages = packages
        self.extra_globals = extra_globals
        self.prefix = prefix
        self.memo: dict[int, int] = {}
        self.keepalive: list[Any] = []  # ids stay unique only while the objects live
        self.arrays: list[np.ndarray] = []
        self.path: list[str] = []

    def fail(self, what: str) -> CheckpointError:
        where = "".join(self.path) or "<root>"
        return CheckpointError(f"cannot serialise {what} at {where}")

    def register(self, o: Any) -> int:
        nid = len(self.keepalive)
        self.memo[id(o)] = nid
        self.keepalive.append(o)
        return nid

    def child(self, label: str, value: Any) -> Any:
        self.path.append(label)
        try:
            return self.enc(value)
        finally:
            self.path.pop()

    def enc(self, o: Any) -> Any:
        t = type(o)
        if o is None or t is bool or t is int or t is str:
            return o
        if t is float:
            return o if math.isfinite(o) else {"$f": repr(o)}
        if isinstance(o, np.generic):
            return self.scalar(o)
        if t is tuple:
            return {"$tuple": [self.child(f"[{i}]", v) for i, v in enumerate(o)]}
        if t is range:  # pycma keeps one for its selective mirrors (popsize < 6)
            return {"$range": [o.start, o.stop, o.step]}
        nid = self.memo.get(id(o))
        if nid is not None:
            return {"$ref": nid}
        if t is np.ndarray:
            if o.dtype.hasobject or o.dtype.fields is not None:
                raise self.fail(f"array of dtype {o.dtype}")
            nid = self.register(o)
            self.arrays.append(o)
            return {"$array": len(self.arrays) - 1, "$id": nid}
        if t is list:
            nid = self.register(o)
            return {"$list": [self.child(f"[{i}]", v) for i, v in enumerate(o)], "$id": nid}
        if t is dict:
            nid = self.register(o)
            return {"$dict": self.items(o.items()), "$id": nid}
        name = self.global_name(o)
        if name is not None:
            return {"$global": name}
        if t is types.MethodType:
            return {"$method": o.__func__.__name__, "self": self.child(".__self__", o.__self__)}
        if isinstance(t, type) and _in_packages(t.__module__, self.packages):
            return self.instance(o)
        raise self.fail(f"object of type {t.__module__}.{t.__qualname__}")

    def scalar(self, o: np.generic) -> dict:
        dt = o.dtype
        if dt.kind not in "biuf" or (dt.kind == "f" and dt.itemsize > 8):
            raise self.fail(f"numpy scalar of dtype {dt}")
        return {"$np": dt.str, "v": self.enc(o.item())}

    def items(self, pairs: Iterable[tuple[Any, Any]]) -> list[list[Any]]:
        out = []
        for k, v in pairs:
            out.append([self.child("<key>", k), self.child(f"[{k!r}]", v)])
        return out

    def global_name(self, o: Any) -> str | None:
        """``"module:qualname"`` if ``o`` is an allowed callable or class reachable by name.

        Functions, classes and methods bound to a module-level object (``np.random.randn``)
        qualify; a method bound to an object of the graph does not (see ``$method``).
        """
        module = _name_module(o)
        if module is None or not callable(o):
            return None
        for qualname in (getattr(o, "__qualname__", None), getattr(o, "__name__", None)):
            if not isinstance(qualname, str):
                continue
            name = f"{module}:{qualname}"
            allowed = name in self.extra_globals or _in_packages(module, self.packages)
            if allowed and _resolve(module, qualname) is o:
                return name
        return None

    def instance(self, o: Any) -> dict:
        cls = type(o)
        name = f"{cls.__module__}:{cls.__qualname__}"
        if _resolve(cls.__module__, cls.__qualname__) is not cls:
            raise self.fail(f"instance of {name} (class not importable by name)")
        for klass in cls.__mro__:
            slots = klass.__dict__.get("__slots__", ())
            slots = (slots,) if isinstance(slots, str) else slots
            if any(s not in ("__dict__", "__weakref__") for s in slots):
                raise self.fail(f"instance of {name} (__slots__ are not supported)")
        nid = self.register(o)
        attrs = getattr(o, "__dict__", {})
        node: dict[str, Any] = {"$obj": name, "$id": nid}
        node["attrs"] = [[k, self.child(f".{k}", v)] for k, v in attrs.items()]
        if isinstance(o, dict):
            node["items"] = self.items(dict.items(o))
        elif isinstance(o, list):
            node["list"] = [self.child(f"[{i}]", v) for i, v in enumerate(list.__iter__(o))]
        elif isinstance(o, (tuple, set, frozenset, str, bytes, int, float, np.ndarray)):
            raise self.fail(f"instance of {name} (subclass of a builtin that is not dict or list)")
        return node

    def array_specs(self) -> tuple[list[dict], dict[str, np.ndarray]]:
        """Store arrays so that aliasing (overlapping views) and memory layout survive.

        An array that overlaps no other and is C- or F-contiguous is stored as itself (``.npy``
        keeps Fortran order). Arrays whose memory overlaps, or that are strided views, are
        stored as one raw byte buffer per group plus (offset, shape, strides, dtype) each.
        """
        specs: list[dict] = [{} for _ in self.arrays]
        out: dict[str, np.ndarray] = {}
        ranges = []
        for i, a in enumerate(self.arrays):
            if a.size == 0:
                specs[i] = {"key": f"{self.prefix}{i}", "readonly": not a.flags.writeable}
                out[f"{self.prefix}{i}"] = a
            else:
                ranges.append((*_byte_range(a), i))
        ranges.sort()
        groups: list[tuple[int, int, list[int]]] = []
        for lo, hi, i in ranges:
            if groups and lo < groups[-1][1]:
                glo, ghi, members = groups[-1]
                groups[-1] = (glo, max(ghi, hi), [*members, i])
            else:
                groups.append((lo, hi, [i]))
        for glo, ghi, members in groups:
            first = self.arrays[members[0]]
            if len(members) == 1 and (first.flags.c_contiguous or first.flags.f_contiguous):
                key = f"{self.prefix}{members[0]}"
                specs[members[0]] = {"key": key, "readonly": not first.flags.writeable}
                out[key] = first
                continue
            owner = _owner(first)
            if not (owner.flags.c_contiguous or owner.flags.f_contiguous):
                raise CheckpointError("cannot serialise overlapping arrays over a strided owner")
            olo, ohi = _byte_range(owner)
            if not (olo <= glo and ghi <= ohi):
                raise CheckpointError("cannot serialise overlapping arrays from several owners")
            flat = (owner if owner.flags.c_contiguous else owner.T).reshape(-1).view(np.uint8)
            key = f"{self.prefix}buf{members[0]}"
            out[key] = flat[glo - olo : ghi - olo].copy()
            for i in members:
                a = self.arrays[i]
                specs[i] = {
                    "buf": key,
                    "offset": a.__array_interface__["data"][0] - glo,
                    "shape": list(a.shape),
                    "strides": list(a.strides),
                    "dtype": a.dtype.str,
                    "readonly": not a.flags.writeable,
                }
        return specs, out


def encode_graph(
    root: Any,
    *,
    packages: tuple[str, ...],
    extra_globals: Iterable[str] = (),
    prefix: str = "g",
) -> tuple[dict, dict[str, np.ndarray]]:
    """Encode an object graph as JSON-serialisable metadata plus numpy arrays.

    Args:
        root: The object to encode.
        packages: Top-level packages whose classes may be stored as instances (by
            ``__dict__`` and, for dict/list subclasses, their items) and whose module-level
            functions and classes may be stored by name.
        extra_globals: Further callables stored by name, as ``"module:qualname"``.
        prefix: Prefix of the array names.

    Returns:
        ``(tree, arrays)``; ``tree`` is strict JSON.

    Raises:
        CheckpointError: The graph holds something outside the whitelist (the message gives
            its attribute path).
    """
    encoder = _Encoder(tuple(packages), frozenset(extra_globals), prefix)
    body = encoder.enc(root)
    specs, arrays = encoder.array_specs()
    return {"root": body, "arrays": specs}, arrays


class _Decoder:
    def __init__(
        self,
        tree: dict,
        arrays: dict[str, np.ndarray],
        packages: tuple[str, ...],
        extra_globals: frozenset[str],
    ):
        self.specs = tree["arrays"]
        self.arrays = arrays
        self.packages = packages
        self.extra_globals = extra_globals
        self.memo: dict[int, Any] = {}
        self.instances: list[Any] = []

    def put(self, node: dict, obj: Any) -> Any:
        nid = node["$id"]
        if type(nid) is not int or nid in self.memo:
            raise CheckpointError(f"bad or repeated object id {nid!r}")
        self.memo[nid] = obj
        return obj

    def dec(self, n: Any) -> Any:
        if n is None or isinstance(n, (bool, int, str, float)):
            return n
        if not isinstance(n, dict):
            raise CheckpointError(f"unexpected {type(n).__name__} in encoded state")
        tags = [t for t in _TAGS if t in n]
        if len(tags) != 1:
            raise CheckpointError(f"encoded node must carry exactly one tag, got keys {sorted(n)}")
        return getattr(self, "dec_" + tags[0][1:])(n)

    def dec_f(self, n: dict) -> float:
        if n["$f"] not in ("nan", "inf", "-inf"):
            raise CheckpointError(f"bad non-finite float {n['$f']!r}")
        return float(n["$f"])

    def dec_np(self, n: dict) -> np.generic:
        dt = np.dtype(n["$np"])
        if dt.kind not in "biuf":
            raise CheckpointError(f"numpy scalar dtype {dt} is not allowed")
        return dt.type(self.dec(n["v"]))

    def dec_tuple(self, n: dict) -> tuple:
        return tuple(self.dec(v) for v in n["$tuple"])

    def dec_range(self, n: dict) -> range:
        bounds = n["$range"]
        if (
            not isinstance(bounds, list)
            or len(bounds) != 3
            or any(type(b) is not int for b in bounds)
            or bounds[2] == 0
        ):
            raise CheckpointError(f"bad range {bounds!r}")
        return range(*bounds)

    def dec_ref(self, n: dict) -> Any:
        try:
            return self.memo[n["$ref"]]
        except (KeyError, TypeError):
            raise CheckpointError(f"reference to unknown object {n['$ref']!r}") from None

    def dec_array(self, n: dict) -> np.ndarray:
        spec = self.specs[n["$array"]]
        if "key" in spec:
            a = self.arrays[spec["key"]]
        else:
            buf = self.arrays[spec["buf"]]
            if buf.dtype != np.uint8 or buf.ndim != 1:
                raise CheckpointError(f"array buffer {spec['buf']!r} must be 1-D uint8")
            dtype = np.dtype(spec["dtype"])
            if dtype.hasobject:
                raise CheckpointError("object arrays are not allowed")
            a = np.ndarray(
                tuple(spec["shape"]),
                dtype,
                buffer=buf,
                offset=spec["offset"],
                strides=tuple(spec["strides"]),
            )
        if not isinstance(a, np.ndarray) or a.dtype.hasobject:
            raise CheckpointError("object arrays are not allowed")
        if spec.get("readonly"):
            a = a.view()
            a.flags.writeable = False
        return self.put(n, a)

    def dec_list(self, n: dict) -> list:
        out: list = self.put(n, [])
        out.extend(self.dec(v) for v in n["$list"])
        return out

    def dec_dict(self, n: dict) -> dict:
        out: dict = self.put(n, {})
        for k, v in n["$dict"]:
            key = self.dec(k)
            out[key] = self.dec(v)
        return out

    def resolve_global(self, name: str) -> Any:
        module, _, qualname = name.partition(":")
        if not (name in self.extra_globals or _in_packages(module, self.packages)):
            raise CheckpointError(f"callable {name!r} is not allowed")
        obj = _resolve(module, qualname)
        if obj is None or not callable(obj):
            raise CheckpointError(f"cannot resolve callable {name!r}")
        return obj

    def dec_global(self, n: dict) -> Any:
        name = n["$global"]
        obj = self.resolve_global(name)
        module = _name_module(obj)
        if name not in self.extra_globals and not (module and _in_packages(module, self.packages)):
            raise CheckpointError(f"callable {name!r} is defined outside the whitelist")
        return obj

    def dec_method(self, n: dict) -> Any:
        owner = self.dec(n["self"])
        if type(owner).__module__ is None or not _in_packages(
            type(owner).__module__, self.packages
        ):
            raise CheckpointError(f"method owner of type {type(owner).__qualname__} is not allowed")
        method = getattr(owner, n["$method"], None)
        if not isinstance(method, types.MethodType):
            raise CheckpointError(f"cannot resolve method {n['$method']!r}")
        return method

    def dec_obj(self, n: dict) -> Any:
        name = n["$obj"]
        module, _, qualname = name.partition(":")
        if not _in_packages(module, self.packages):
            raise CheckpointError(
                f"class {name!r} is not allowed; only classes from {', '.join(self.packages)}"
            )
        cls = _resolve(module, qualname)
        if not isinstance(cls, type) or not _in_packages(cls.__module__, self.packages):
            raise CheckpointError(f"cannot resolve class {name!r}")
        obj = self.put(n, cls.__new__(cls))
        self.instances.append(obj)
        for k, v in n["attrs"]:
            if type(k) is not str:
                raise CheckpointError(f"attribute name must be a string, got {k!r}")
            obj.__dict__[k] = self.dec(v)
        if "items" in n:
            if not isinstance(obj, dict):
                raise CheckpointError(f"{name} is not a dict subclass")
            for k, v in n["items"]:
                key = self.dec(k)
                dict.__setitem__(obj, key, self.dec(v))
        if "list" in n:
            if not isinstance(obj, list):
                raise CheckpointError(f"{name} is not a list subclass")
            list.extend(obj, [self.dec(v) for v in n["list"]])
        return obj


def decode_graph(
    tree: dict,
    arrays: dict[str, np.ndarray],
    *,
    packages: tuple[str, ...],
    extra_globals: Iterable[str] = (),
    after_restore: Callable[[Any], None] | None = None,
) -> Any:
    """Rebuild the object graph that :func:`encode_graph` encoded.

    Args:
        tree: The metadata from :func:`encode_graph`.
        arrays: The arrays from :func:`encode_graph`.
        packages: Whitelist of packages whose classes and functions may be rebuilt.
        extra_globals: Further callables that may be resolved by name.
        after_restore: Called on every rebuilt instance once the whole graph is complete.

    Raises:
        CheckpointError: The tree is malformed or names a class or callable outside the
            whitelist.
    """
    try:
        decoder = _Decoder(tree, arrays, tuple(packages), frozenset(extra_globals))
        root = decoder.dec(tree["root"])
        if after_restore is not None:
            for obj in decoder.instances:
                after_restore(obj)
    except CheckpointError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"malformed encoded state: {type(e).__name__}: {e}") from e
    return root
