"""Vector math in SIMD lanes that returns exactly what the scalar libm call returns.

`pow` on `<W x double>` (`build_vpow`): every lane runs a table-driven pow in double-double
arithmetic that carries the result with its rounding error (`hi + lo`, within 3e-4 ulp of
the true value as measured by benchmarks/vmath.py). Where that proves which double is
nearest -- the true value lies farther than `margin` ulp from the midpoint between two
doubles -- glibc's pow returns that same double, so the lane keeps `hi`. Every other lane --
near a midpoint, x not a positive normal number, a result outside the normal range, NaN or
infinite operands -- calls the scalar `llvm.pow.f64` (libm's pow) itself. The lanes thus
equal the scalar code bit for bit; about 1 lane in 40 pays for a libm call.

The margin is glibc's own error analysis (sysdeps/ieee754/dbl-64/e_pow.c, since 2.28: the
0.54 ulp its manual documents is `ulperr_exp + 1024 ln2 relerr_log 2^53`): its result is the
rounding to nearest of a value within 0.011 ulp (exp's 0.511 ulp without FMA, less the 0.5
of that rounding) plus |y ln x| 1.5 2^-68 2^53 ulp (log's relative error, carried into the
exponent) of the true value, so it is the nearest double wherever the true value lies
farther than that from a midpoint. `margin` adds a bound on this code's own error.

The algorithm follows ARM's optimized-routines pow (the one glibc ships): log(x) =
k ln2 + log(c) + log1p(z/c - 1) with a 128-entry table of 1/c and log(c) over the mantissa,
the reduced argument formed exactly with an FMA, the intervals next to 1 using c = 1 (no
cancellation); exp(y log x) = 2^(m/128) exp(r) with a 128-entry table of 2^(j/128). The
tables are computed here with `decimal` at 40 digits, then split into double pairs.

Must not import llvmlite.binding; knows nothing of lldiff IR.
"""

import decimal
import functools
import struct

from llvmlite import ir as L

from .llvm import PTR, const_of, splat

__all__ = ["build_vpow", "LIBM_MARGIN", "OWN_MARGIN"]

# A lane keeps the fast result when its hi + lo lies farther than
#   margin = a + b |y ln x|,  (a, b) = LIBM_MARGIN + OWN_MARGIN termwise,
# ulp from a rounding midpoint. glibc's part (module docstring): exp's 0.011 (with 0.0005 to
# spare) and log's 1.5 2^-15 per unit of |y ln x|; measured, its results leave the nearest
# double only within 0.0064 ulp of a midpoint. This code's own part: over 4 times its largest
# error measured at each size of |y ln x|. benchmarks/vmath.py prints both ratios.
LIBM_MARGIN = (0.0115, 1.5 * 2.0 ** -15)
OWN_MARGIN = (0.001, 4e-6)
_MARGIN = LIBM_MARGIN[0] + OWN_MARGIN[0]
_MARGIN_PER_LOG = LIBM_MARGIN[1] + OWN_MARGIN[1]

_N = 128            # table sizes (log: intervals of the mantissa; exp: 2^(j/N))
_OFF = 0x3FE6955500000000  # the log intervals start at asdouble(_OFF) ~ 0.7057 (as ARM's)
_LOG_DEGREE = 10    # log1p(r) = r - r^2/2 + r^3 P(r), |r| < 2^-7.5: Taylor to r^10
_EXP_DEGREE = 6     # exp(r) - 1 - r = r^2 Q(r), |r| < ln2/256: Taylor to r^6


def _bits(x):
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _double(b):
    return struct.unpack("<d", struct.pack("<q", b))[0]


def _split(d):
    """(hi, lo) doubles with hi + lo = the Decimal `d` to about 2^-106 relative."""
    hi = float(d)
    return hi, float(d - decimal.Decimal(hi))


def _truncate(x, bits):
    """`x` with its significand cut to `bits` bits (so small integer multiples are exact)."""
    b = _bits(x)
    return _double(b & ~((1 << (52 - bits + 1)) - 1))


@functools.lru_cache(maxsize=None)
def _tables():
    ctx = decimal.Context(prec=40)
    D = decimal.Decimal
    ln2 = ctx.ln(D(2))
    inv, logc = [], []
    for i in range(_N):
        lo, hi = _double(_OFF + (i << 45)), _double(_OFF + ((i + 1) << 45))
        if lo - 2 ** -7.6 <= 1.0 <= hi + 2 ** -7.6:
            inv.append(1.0)  # at or next to 1: no cancellation of log(c) against log1p(r)
            logc.append((0.0, 0.0))
            continue
        invc = 1.0 / ((lo + hi) / 2)
        inv.append(invc)
        logc.append(_split(-ctx.ln(D(invc))))
    exp2 = [_split(ctx.power(D(2), ctx.divide(D(j), D(_N)))) for j in range(_N)]
    ln2hi = _truncate(float(ln2), 42)          # k ln2hi exact for |k| < 2^11
    ln2lo = float(ln2 - D(ln2hi))
    ln2n = ctx.divide(ln2, D(_N))
    ln2hin = float(ln2n)                       # (m ln2hiN: made exact by an FMA)
    ln2lon = float(ln2n - D(ln2hin))
    return dict(inv=inv, logc=logc, exp2=exp2, ln2hi=ln2hi, ln2lo=ln2lo,
                invln2n=float(ctx.divide(D(_N), ln2)), ln2hin=ln2hin, ln2lon=ln2lon)


def _table_global(lm, name, values):
    arr = L.ArrayType(L.DoubleType(), len(values))
    g = lm.globals.get(name)
    if g is None:
        g = L.GlobalVariable(lm, arr, name=name)
        g.initializer = L.Constant(arr, [float(v) for v in values])
        g.global_constant = True
        g.linkage = "internal"
    return g


def _declare(lm, name, ret, args):
    fn = lm.globals.get(name)
    return fn if fn is not None else L.Function(lm, L.FunctionType(ret, args), name=name)


class _V:
    """Arithmetic on `<W x double>` / `<W x i64>` values with an IRBuilder."""

    def __init__(self, bd, lanes):
        self.bd, self.w = bd, lanes
        self.f = L.VectorType(L.DoubleType(), lanes)
        self.i = L.VectorType(L.IntType(64), lanes)
        lm, f, suffix = bd.module, self.f, f"v{lanes}f64"
        self._fma = _declare(lm, f"llvm.fma.{suffix}", f, [f, f, f])
        self._rint = _declare(lm, f"llvm.rint.{suffix}", f, [f])
        self._fabs = _declare(lm, f"llvm.fabs.{suffix}", f, [f])

    def c(self, x):
        return const_of(self.f, float(x))

    def ci(self, x):
        return const_of(self.i, int(x))

    def fma(self, a, b, c):
        return self.bd.call(self._fma, [a, b, c])

    def two_sum(self, a, b):
        """(s, e) with s + e = a + b exactly (Knuth)."""
        bd = self.bd
        s = bd.fadd(a, b)
        bb = bd.fsub(s, a)
        e = bd.fadd(bd.fsub(a, bd.fsub(s, bb)), bd.fsub(b, bb))
        return s, e

    def fast_two_sum(self, a, b):
        """(s, e) with s + e = a + b exactly, for |a| >= |b| (or a = 0)."""
        s = self.bd.fadd(a, b)
        return s, self.bd.fsub(b, self.bd.fsub(s, a))

    def horner(self, x, coeffs):
        acc = self.c(coeffs[-1])
        for a in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, self.c(a))
        return acc

    def gather(self, table, index):
        """table[index] per lane (`table` a global array of doubles)."""
        bd, w = self.bd, self.w
        base = splat(bd, bd.ptrtoint(table, L.IntType(64)), w)
        ptrs = bd.inttoptr(bd.add(base, bd.shl(index, self.ci(3))), L.VectorType(PTR, w))
        mask = L.VectorType(L.IntType(1), w)
        fn = _declare(bd.module, f"llvm.masked.gather.v{w}f64.v{w}p0", self.f,
                      [L.VectorType(PTR, w), mask, self.f])
        return bd.call(fn, [ptrs, L.Constant(mask, [1] * w), L.Constant(self.f, L.Undefined)])

    def not_(self, m):
        return self.bd.xor(m, const_of(m.type, 1))


def build_vpow(lm, name, lanes):
    """`<W x double> name(<W x double> x, <W x double> y, <W x i1> active)`: pow in every
    lane, bit-equal to `llvm.pow.f64` (libm) lane by lane; inactive lanes are left undefined
    and never call libm."""
    fn = L.Function(lm, L.FunctionType(L.VectorType(L.DoubleType(), lanes),
                                       [L.VectorType(L.DoubleType(), lanes)] * 2 +
                                       [L.VectorType(L.IntType(1), lanes)]), name=name)
    fn.linkage = "internal"
    x, y, active = fn.args
    entry = fn.append_basic_block("entry")
    bd = L.IRBuilder(entry)
    fast, ok, _, _ = _pow_lanes(bd, lanes, x, y)

    # --- lanes left in doubt: the scalar libm call ---
    V = _V(bd, lanes)
    redo = bd.and_(active, V.not_(ok))
    iw = L.IntType(lanes)
    bits = bd.bitcast(redo, iw)
    slow = fn.append_basic_block("libm")
    loop = fn.append_basic_block("libm.lane")
    done = fn.append_basic_block("done")
    bd.cbranch(bd.icmp_unsigned("!=", bits, L.Constant(iw, 0)), slow, done)
    bd.position_at_end(slow)  # one libm call per lane in doubt, lowest lane first
    d = L.DoubleType()
    top = L.IRBuilder(entry)
    top.position_at_start(entry)  # (allocas in the entry block: static stack slots)
    xs, ys, rs = (top.alloca(d, size=lanes) for _ in range(3))
    for v, p in ((x, xs), (y, ys), (fast, rs)):
        bd.store(v, bd.bitcast(p, v.type.as_pointer()), align=8)
    bd.branch(loop)
    bd.position_at_end(loop)
    left = bd.phi(iw)
    left.add_incoming(bits, slow)
    lane = bd.call(_declare(lm, f"llvm.cttz.i{lanes}", iw, [iw, L.IntType(1)]),
                   [left, L.Constant(L.IntType(1), 1)])
    lane = bd.zext(lane, L.IntType(64)) if lanes < 64 else lane
    pow1 = _declare(lm, "llvm.pow.f64", d, [d, d])
    r = bd.call(pow1, [bd.load(bd.gep(xs, [lane])), bd.load(bd.gep(ys, [lane]))])
    bd.store(r, bd.gep(rs, [lane]))
    rest = bd.and_(left, bd.sub(left, L.Constant(iw, 1)))
    left.add_incoming(rest, loop)
    patched = fn.append_basic_block("libm.done")
    bd.cbranch(bd.icmp_unsigned("!=", rest, L.Constant(iw, 0)), loop, patched)
    bd.position_at_end(patched)
    out = bd.load(bd.bitcast(rs, fast.type.as_pointer()), align=8)
    bd.branch(done)
    bd.position_at_end(done)
    result = bd.phi(fast.type)
    result.add_incoming(fast, entry)
    result.add_incoming(out, patched)
    bd.ret(result)
    return fn


def _pow_lanes(bd, lanes, x, y):
    """(pow in every lane, <W x i1> where that is libm's pow for sure, hi, lo): hi + lo is
    the pow of the lane before scaling by 2^(m/N)'s power of two (for measurements)."""
    t = _tables()
    lm = bd.module
    V = _V(bd, lanes)
    inv_t = _table_global(lm, "lldiff.vpow.invc", t["inv"])
    logc_hi_t = _table_global(lm, "lldiff.vpow.logc_hi", [h for h, _ in t["logc"]])
    logc_lo_t = _table_global(lm, "lldiff.vpow.logc_lo", [l for _, l in t["logc"]])
    exp_hi_t = _table_global(lm, "lldiff.vpow.exp2_hi", [h for h, _ in t["exp2"]])
    exp_lo_t = _table_global(lm, "lldiff.vpow.exp2_lo", [l for _, l in t["exp2"]])

    # --- log(x) as hi + lo, for x a positive normal double (other lanes fall back) ---
    ix = bd.bitcast(x, V.i)
    special_x = bd.icmp_unsigned(">=", bd.sub(ix, V.ci(0x0010000000000000)),
                                 V.ci(0x7FF0000000000000 - 0x0010000000000000))
    tmp = bd.sub(ix, V.ci(_OFF))
    i = bd.and_(bd.lshr(tmp, V.ci(45)), V.ci(_N - 1))
    k = bd.ashr(tmp, V.ci(52))
    z = bd.bitcast(bd.sub(ix, bd.and_(tmp, V.ci(0xFFF << 52))), V.f)
    invc = V.gather(inv_t, i)
    kd = bd.sitofp(k, V.f)
    ph = bd.fmul(z, invc)
    pl = V.fma(z, invc, bd.fsub(V.c(0.0), ph))          # z invc = ph + pl exactly
    rhi, rlo = V.fast_two_sum(bd.fsub(ph, V.c(1.0)), pl)  # r = z/c - 1 = rhi + rlo
    half_r = bd.fmul(V.c(-0.5), rhi)
    dh = bd.fmul(half_r, rhi)                          # -rhi^2 / 2 = dh + dl exactly
    dl = V.fma(half_r, rhi, bd.fsub(V.c(0.0), dh))
    s1, e1 = V.two_sum(bd.fmul(kd, V.c(t["ln2hi"])), V.gather(logc_hi_t, i))
    s2, e2 = V.two_sum(s1, rhi)
    s3, e3 = V.two_sum(s2, dh)
    r3 = bd.fmul(bd.fmul(rhi, rhi), rhi)
    p = bd.fmul(r3, V.horner(rhi, [(-1) ** (n + 1) / n for n in range(3, _LOG_DEGREE + 1)]))
    small = bd.fadd(bd.fmul(kd, V.c(t["ln2lo"])), V.gather(logc_lo_t, i))
    small = bd.fadd(small, bd.fsub(rlo, bd.fmul(rhi, rlo)))  # r^2/2 has rhi rlo too
    small = bd.fadd(small, bd.fadd(dl, p))
    lo = bd.fadd(bd.fadd(e1, e2), bd.fadd(e3, small))
    lhi, llo = V.fast_two_sum(s3, lo)

    # --- y log(x) = ehi + elo ---
    ehi = bd.fmul(y, lhi)
    elo = bd.fadd(V.fma(y, lhi, bd.fsub(V.c(0.0), ehi)), bd.fmul(y, llo))
    abs_e = bd.call(V._fabs, [ehi])
    in_range = bd.fcmp_ordered("<", abs_e, V.c(707.0))  # (false on NaN)

    # --- exp(ehi + elo) = 2^(m/N) exp(r) ---
    md = bd.call(V._rint, [bd.fmul(ehi, V.c(t["invln2n"]))])
    md = bd.select(in_range, md, V.c(0.0))             # (no out-of-range conversions)
    m = bd.fptosi(md, V.i)
    ph = bd.fmul(md, V.c(-t["ln2hin"]))                # -m ln2hiN = ph + pe exactly
    pe = V.fma(md, V.c(-t["ln2hin"]), bd.fsub(V.c(0.0), ph))
    rh, re = V.two_sum(ehi, ph)                        # r = y log x - m ln2 / N = rh + rl
    rl = bd.fadd(bd.fadd(re, elo), V.fma(md, V.c(-t["ln2lon"]), pe))
    j = bd.and_(m, V.ci(_N - 1))
    th, tl = V.gather(exp_hi_t, j), V.gather(exp_lo_t, j)
    q = V.horner(rh, [1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720][:_EXP_DEGREE - 1])
    # exp(rh + rl) - 1 - rh = rh^2 q(rh) + rl exp(rh) + O(rl^2); rl reaches 2^-53 |y log x|
    # (up to 2^-43 rh), so its factor exp(rh) needs the rh^2 / 2 term too
    rest = V.fma(rl, V.horner(rh, [1.0, 1.0, 0.5]), bd.fmul(bd.fmul(rh, rh), q))
    p1h = bd.fmul(th, rh)
    p1l = V.fma(th, rh, bd.fsub(V.c(0.0), p1h))
    small = bd.fadd(p1l, bd.fadd(bd.fmul(th, rest), V.fma(tl, rh, tl)))
    s, e = V.fast_two_sum(th, p1h)
    res_hi, res_lo = V.fast_two_sum(s, bd.fadd(e, small))

    # --- is res_hi the nearest double to the true value, beyond doubt? ---
    rb = bd.bitcast(res_hi, V.i)
    ulp = bd.fmul(bd.bitcast(bd.and_(rb, V.ci(0x7FF0000000000000)), V.f), V.c(2.0 ** -52))
    pow2_below = bd.and_(bd.icmp_signed("==", bd.and_(rb, V.ci((1 << 52) - 1)), V.ci(0)),
                         bd.fcmp_ordered("<", res_lo, V.c(0.0)))
    ulp = bd.select(pow2_below, bd.fmul(ulp, V.c(0.5)), ulp)
    keep = V.fma(abs_e, V.c(-_MARGIN_PER_LOG), V.c(0.5 - _MARGIN))  # 0.5 - margin
    sure = bd.fcmp_ordered("<=", bd.call(V._fabs, [res_lo]), bd.fmul(ulp, keep))
    ok = bd.and_(bd.and_(sure, in_range), V.not_(special_x))
    scale = bd.bitcast(bd.shl(bd.add(bd.ashr(m, V.ci(7)), V.ci(1023)), V.ci(52)), V.f)
    fast = bd.fmul(res_hi, bd.select(ok, scale, V.c(1.0)))
    return fast, ok, res_hi, res_lo

