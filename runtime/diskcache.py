"""The disk cache of compiled code (`@lldiff.jit(cache=True)`): object files keyed by what
produced them, loaded by later processes instead of compiling.

An entry is one file, `<dir>/<name>-<64-bit hash of the key>.lldc`:

    b"LLDIFFC3" | u32 CRC-32 of the rest | u32 length of the header | header | object file

The header (`marshal`: no import, and the key pins the Python version) holds the full key text
(a hash collision or an entry for something else is a miss) and the caller's metadata; the
checksum covers header and object, so a truncated or corrupted entry is a miss, never
executed. (CRC-32 detects accidental damage, which is the failure to guard against: anyone
who can write the cache directory could as well write a valid digest of any kind. zlib is
loaded at interpreter start-up; hashlib would cost ~5 ms to import, BLAKE2 ~0.5 ms.)
Writers write a private temporary file in the same directory and `os.replace` it into place,
which is atomic: concurrent processes storing the same entry each install a complete file,
and readers see the old one or the new one.

The key is the caller's description of the function (source, dependencies, signature,
transformation, options) plus `environment()`: the compiler (lldiff's version and the size and
mtime of each of its source files, so an edited compiler never reuses old code), llvmlite's
version, the Python version, and the host (machine, OS, CPU model and feature flags, which
the code was optimized for, and the C library, whose pow the SIMD map's matches). Computing
it must stay cheap (a cache hit costs ~1-2 ms in all):
no llvmlite.binding, no hashlib, json or mmap, no hashing of large files. Must not know about
lldiff's IR.
"""

import marshal
import os
import struct
import sys
import zlib

__all__ = ["cache_dir", "environment", "load", "store", "stats"]

MAGIC = b"LLDIFFC3"
_env = None
stats = {"hits": 0, "misses": 0, "rejected": 0, "stored": 0}  # this process's counts


def cache_dir():
    """$LLDIFF_CACHE_DIR, else $XDG_CACHE_HOME/lldiff, else ~/.cache/lldiff."""
    d = os.environ.get("LLDIFF_CACHE_DIR")
    if d:
        return d
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lldiff")


def environment():
    """The part of every key that describes the compiler and the machine (computed once)."""
    global _env
    if _env is None:
        import llvmlite  # the package only: its version, not the binding
        here = os.path.dirname(os.path.abspath(__file__))
        pkg = os.path.dirname(os.path.abspath(sys.modules["lldiff"].__file__))
        files = []
        for d in sorted({here, pkg} | {os.path.join(pkg, s) for s in ("ir", "frontend",
                                                                      "codegen")}
                        | {os.path.join(os.path.dirname(here), "passes")}):
            if os.path.isdir(d):
                for f in sorted(os.listdir(d)):
                    if f.endswith(".py"):
                        st = os.stat(os.path.join(d, f))
                        files.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
        compiler = _digest("\n".join(files).encode())
        _env = "\n".join([
            f"lldiff {sys.modules['lldiff'].__version__} {compiler}",
            f"llvmlite {llvmlite.__version__}",
            f"python {sys.version}",
            f"host {sys.platform} {os.uname().machine if hasattr(os, 'uname') else ''} "
            f"{_cpu()}",
            f"libc {_libc()}",  # (the SIMD map's pow is glibc's, bit for bit, or libm's)
        ])
    return _env


def _cpu():
    """CPU model and feature flags without LLVM: /proc/cpuinfo on Linux, else LLVM's view."""
    try:
        with open("/proc/cpuinfo") as f:
            model = flags = ""
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Processor", "CPU part") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = value.strip()
                elif not line.strip() and (model or flags):
                    break  # the first processor is enough
            if model or flags:
                return f"{model} [{_digest(flags.encode())}]"
    except OSError:
        pass
    from . import get_engine
    e = get_engine()
    return f"{e.cpu} {e.features}"


def _libc():
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return "?"


def _digest(data):
    """64 bits of hash, as hex: CRC-32 and Adler-32 side by side."""
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def _path(name, key):
    digest = _digest(key.encode())
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:64]
    return os.path.join(cache_dir(), f"{safe}-{digest}.lldc")


def load(name, key):
    """(metadata, object bytes) of the entry for `key`, or None: missing, corrupted, or
    written for another key. A bad entry is counted in stats["rejected"] and left for the
    next `store` to replace."""
    try:
        with open(_path(name, key), "rb") as f:
            blob = f.read()
    except OSError:
        stats["misses"] += 1
        return None
    try:
        if blob[:8] != MAGIC:
            raise ValueError("bad magic")
        (crc, n) = struct.unpack_from("<II", blob, 8)
        if zlib.crc32(memoryview(blob)[12:]) != crc:
            raise ValueError("checksum")
        header = marshal.loads(blob[16:16 + n])
        obj = blob[16 + n:]
        if header["key"] != key:
            raise ValueError("another key")
    except (ValueError, KeyError, TypeError, EOFError, struct.error):
        stats["rejected"] += 1
        return None
    stats["hits"] += 1
    return header["meta"], obj


def store(name, key, meta, obj):
    """Write the entry atomically; a cache that cannot be written is not an error (the code
    still runs, and the next process compiles again)."""
    path = _path(name, key)
    import tempfile
    header = marshal.dumps({"key": key, "meta": meta})
    rest = struct.pack("<I", len(header)) + header + obj
    blob = MAGIC + struct.pack("<I", zlib.crc32(rest)) + rest
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError:
        return False
    stats["stored"] += 1
    return True
