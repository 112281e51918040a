"""Loads an x86-64 ELF relocatable object -- what LLVM emits for a disk-cache entry -- into
executable memory of this process, without LLVM.

Loading through llvmlite costs ~45 ms before the first byte (llvmlite.binding's shared
library), which would dwarf a cache hit; this loader does the linker's work in Python in about
a millisecond: lay out the allocated sections (code, then constants, then writable data, each
group on its own pages), resolve undefined symbols (the caller's table first, then the
process's own symbols: libpython, libm, libc), apply the relocations LLVM uses for position-
independent code with the small code model, and seal code pages read+execute and constant
pages read-only (never writable and executable at once).

Supported: ELF64 little-endian ET_REL for EM_X86_64 on Linux, relocations NONE, 64, PC32,
PLT32 (calls to other libraries go through 16-byte jump stubs next to the code, so any
distance works), PC64, GOTPCREL[X] and REX_GOTPCRELX (a GOT built after the constants).
Anything else -- other machines, TLS, common symbols, other relocations -- raises
`UnsupportedObject`, and the caller loads the object through LLVM instead. Unwind tables
(.eh_frame) are not loaded: nothing unwinds through lldiff's code. Must not import
llvmlite.binding or know what the code does.
"""

import ctypes
import os
import struct
import sys

__all__ = ["Image", "UnsupportedObject", "load_object", "supported"]


class UnsupportedObject(Exception):
    """The object uses something this loader does not implement (load it through LLVM)."""


class Image:
    """Code and data of one loaded object; `addresses` maps exported names to addresses.
    The memory lives as long as this object (entry points keep it alive)."""

    __slots__ = ("addresses", "base", "size", "__weakref__")

    def __init__(self, addresses, base, size):
        self.addresses = addresses
        self.base = base
        self.size = size

    def __del__(self):
        if _libc is not None and self.base:
            _libc.munmap(ctypes.c_void_p(self.base), ctypes.c_size_t(self.size))


_SHT_NOBITS, _SHT_RELA, _SHT_X86_64_UNWIND = 8, 4, 0x70000001
_SHF_WRITE, _SHF_ALLOC, _SHF_EXEC, _SHF_TLS = 0x1, 0x2, 0x4, 0x400
_SHN_UNDEF, _SHN_LORESERVE, _SHN_ABS, _SHN_COMMON = 0, 0xff00, 0xfff1, 0xfff2
_R_NONE, _R_64, _R_PC32, _R_PLT32, _R_GOTPCREL, _R_PC64 = 0, 1, 2, 4, 9, 24
_R_GOTPCRELX, _R_REX_GOTPCRELX = 41, 42
_STUB = 16  # jmp *0(%rip); .quad target; 2 bytes of padding
# Linux's mmap/mprotect flags (the mmap module would cost an import on the cache-hit path)
_PROT_READ, _PROT_WRITE, _PROT_EXEC = 1, 2, 4
_MAP_PRIVATE, _MAP_ANONYMOUS = 0x02, 0x20
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_libc = None
_process = None
_found = {}


def supported():
    """Whether this process can use the loader (x86-64 Linux with a usable libc)."""
    return sys.platform.startswith("linux") and os.uname().machine == "x86_64" and _init()


def _init():
    global _libc, _process
    if _libc is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_long]
            libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        except (OSError, AttributeError):
            return False
        _process = libc
        _libc = libc
    return True


def _process_symbol(name):
    got = _found.get(name)
    if got is None:
        try:
            got = _dlsym(_process._handle, name)
        except (AttributeError, OSError):
            raise UnsupportedObject(f"undefined symbol {name!r} is not in this process") \
                from None
        _found[name] = got
    return got


try:  # dlsym itself: an address, without making a ctypes function object per symbol
    from _ctypes import dlsym as _dlsym
except ImportError:  # pragma: no cover
    def _dlsym(handle, name):
        return ctypes.cast(_process[name], ctypes.c_void_p).value


def _align(n, a):
    return (n + a - 1) // a * a if a > 1 else n


def load_object(data, exports, resolve=None):
    """Load ELF object bytes `data`; return an Image with the addresses of `exports`.
    `resolve(name)` gives the address of an undefined symbol or None (then the process's
    symbols are searched)."""
    if not _init():
        raise UnsupportedObject("no libc to map memory with")
    data = memoryview(data).cast("B")
    if len(data) < 64 or bytes(data[:4]) != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise UnsupportedObject("not a 64-bit little-endian ELF object")
    (e_type, e_machine, _, _, _, e_shoff, _, _, _, _, e_shentsize, e_shnum,
     e_shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    if e_type != 1 or e_machine != 62:
        raise UnsupportedObject(f"not an x86-64 relocatable object (type {e_type}, machine "
                                f"{e_machine})")
    shdrs = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize)
             for i in range(e_shnum)]
    strtab_off = shdrs[e_shstrndx][4]

    raw = bytes(data)

    def cstr(off):
        end = raw.find(b"\0", off)
        if end < 0:
            raise UnsupportedObject("unterminated name")
        return raw[off:end].decode()

    # layout: [code][stubs] | [constants][GOT] | [writable data], each group page-aligned
    groups = ([], [], [])
    for i, (name_off, sh_type, flags, _, _, size, _, _, align, _) in enumerate(shdrs):
        if not flags & _SHF_ALLOC or sh_type == _SHT_X86_64_UNWIND or \
                cstr(strtab_off + name_off) == ".eh_frame":
            continue
        if flags & _SHF_TLS:
            raise UnsupportedObject("thread-local sections")
        groups[0 if flags & _SHF_EXEC else 2 if flags & _SHF_WRITE else 1].append(i)

    symtab = next((s for s in shdrs if s[1] == 2), None)  # SHT_SYMTAB
    if symtab is None:
        raise UnsupportedObject("no symbol table")
    sym_strtab = shdrs[symtab[6]][4]
    syms = [struct.unpack_from("<IBBHQQ", data, symtab[4] + k * 24)
            for k in range(symtab[5] // 24)]
    relas = [(s[7], s) for s in shdrs if s[1] == _SHT_RELA]
    loaded = set(groups[0]) | set(groups[1]) | set(groups[2])
    stub_syms, got_syms = {}, {}
    for target, s in relas:
        if target not in loaded:
            continue
        for k in range(s[5] // 24):
            _, info, _ = struct.unpack_from("<QQq", data, s[4] + k * 24)
            sym, typ = info >> 32, info & 0xffffffff
            if typ in (_R_GOTPCREL, _R_GOTPCRELX, _R_REX_GOTPCRELX):
                got_syms.setdefault(sym, len(got_syms))
            elif typ == _R_PLT32 and syms[sym][3] == _SHN_UNDEF:
                stub_syms.setdefault(sym, len(stub_syms))

    offsets, pos = {}, 0
    for g, sections in enumerate(groups):
        pos = _align(pos, _PAGE)
        starts = pos
        for i in sections:
            pos = _align(pos, max(1, shdrs[i][8]))
            offsets[i] = pos
            pos += shdrs[i][5]
        if g == 0:
            pos = _align(pos, _STUB)
            stubs_at = pos
            pos += _STUB * len(stub_syms)
        elif g == 1:
            pos = _align(pos, 8)
            got_at = pos
            pos += 8 * len(got_syms)
        ends = pos
        if g == 0:
            code_span = (starts, ends)
        elif g == 1:
            const_span = (starts, ends)
    size = max(_align(pos, _PAGE), _PAGE)

    base = _libc.mmap(None, size, _PROT_READ | _PROT_WRITE, _MAP_PRIVATE | _MAP_ANONYMOUS, -1,
                      0)
    if base in (None, ctypes.c_void_p(-1).value):
        raise MemoryError("lldiff: cannot map memory for cached code")
    image = Image({}, base, size)  # unmaps on failure below
    buf = bytearray(size)
    for i, off in offsets.items():
        sh = shdrs[i]
        if sh[1] != _SHT_NOBITS:
            buf[off:off + sh[5]] = data[sh[4]:sh[4] + sh[5]]

    def address(k):
        name_off, info, _, shndx, value, _ = syms[k]
        if shndx == _SHN_UNDEF:
            name = cstr(sym_strtab + name_off)
            got = resolve(name) if resolve is not None else None
            return _process_symbol(name) if got is None else got
        if shndx == _SHN_ABS:
            return value
        if shndx >= _SHN_LORESERVE or shndx not in offsets:
            raise UnsupportedObject(f"symbol in section {shndx:#x}")
        return base + offsets[shndx] + value

    for sym, k in stub_syms.items():
        at = stubs_at + _STUB * k
        buf[at:at + 6] = b"\xff\x25\x00\x00\x00\x00"
        struct.pack_into("<Q", buf, at + 6, address(sym))
    for sym, k in got_syms.items():
        struct.pack_into("<Q", buf, got_at + 8 * k, address(sym))

    for target, s in relas:
        if target not in loaded:
            continue
        tbase = offsets[target]
        for k in range(s[5] // 24):
            r_off, info, addend = struct.unpack_from("<QQq", data, s[4] + k * 24)
            sym, typ = info >> 32, info & 0xffffffff
            at = tbase + r_off
            p = base + at
            if typ == _R_NONE:
                continue
            if typ == _R_64:
                struct.pack_into("<Q", buf, at, (address(sym) + addend) & (2**64 - 1))
                continue
            if typ == _R_PC64:
                struct.pack_into("<q", buf, at, address(sym) + addend - p)
                continue
            if typ in (_R_GOTPCREL, _R_GOTPCRELX, _R_REX_GOTPCRELX):
                s_addr = base + got_at + 8 * got_syms[sym]
            elif typ == _R_PLT32 and sym in stub_syms:
                s_addr = base + stubs_at + _STUB * stub_syms[sym]
            elif typ in (_R_PC32, _R_PLT32):
                s_addr = address(sym)
            else:
                raise UnsupportedObject(f"relocation type {typ}")
            v = s_addr + addend - p
            if not -2**31 <= v < 2**31:
                raise UnsupportedObject(f"relocation {typ} out of 32-bit range")
            struct.pack_into("<i", buf, at, v)

    ctypes.memmove(base, bytes(buf), size)
    for (lo, hi), prot in ((code_span, _PROT_READ | _PROT_EXEC), (const_span, _PROT_READ)):
        lo, hi = _align(lo, _PAGE), _align(hi, _PAGE)
        if hi > lo and _libc.mprotect(base + lo, hi - lo, prot) != 0:
            raise OSError(ctypes.get_errno(), "lldiff: mprotect failed for cached code")

    names = set(exports)
    for name_off, info, _, shndx, value, _ in syms:
        if info >> 4 != 0 and shndx != _SHN_UNDEF:  # not STB_LOCAL
            name = cstr(sym_strtab + name_off)
            if name in names:
                image.addresses[name] = base + offsets[shndx] + value
    missing = names - set(image.addresses)
    if missing:
        raise UnsupportedObject(f"exports not defined: {sorted(missing)}")
    return image
