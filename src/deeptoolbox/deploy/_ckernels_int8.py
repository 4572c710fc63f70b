"""The int8 C kernels: int8 activations and weights, int32 sums, fixed-point requantization.

``rshift_round(v, s)`` is round(v / 2**s) with halves away from zero, on int64 (written
without shifting negative numbers, which C leaves to the compiler). Requantizing a sum
``acc`` of channel f is ``zy + rshift_round(acc * mult[f], shift[f])``, clamped to int8.
The Python reference (_reference_int8) does the same integer steps.
"""

from __future__ import annotations

from deeptoolbox.deploy._ckernels import KERNELS as FLOAT_KERNELS

KERNELS: dict[str, tuple[tuple[str, ...], str]] = {}


def _kernel(name: str, source: str, *deps: str) -> None:
    KERNELS[name] = (deps, source.strip("\n") + "\n")


_kernel(
    "rshift_round",
    r"""
static int64_t rshift_round(int64_t v, int s)
{
    const int64_t half = (int64_t)1 << (s - 1);
    return v >= 0 ? (v + half) >> s : -((half - v) >> s);
}

static int8_t clamp_i8(int64_t v, int lo)
{
    return (int8_t)(v < lo ? lo : (v > 127 ? 127 : v));
}
""",
)

_kernel(
    "quantize_i8",
    r"""
/* float -> int8: q = floor(x * a[c] + b[c]) (b holds zero point + 0.5), x as (outer, C, inner) */
static void quantize_i8(const float *restrict x, int8_t *restrict y, const float *restrict a,
                        const float *restrict b, int outer, int C, int inner)
{
    int o, c, j;
    for (o = 0; o < outer; ++o) {
        for (c = 0; c < C; ++c) {
            const int base = (o * C + c) * inner;
            for (j = 0; j < inner; ++j) {
                float v = x[base + j] * a[c];
                v = v + b[c];
                y[base + j] = !(v >= -128.0f) ? -128 : (v > 127.0f ? 127 : (int8_t)floorf(v));
            }
        }
    }
}
""",
)

_kernel(
    "dequantize_i8",
    r"""
static void dequantize_i8(const int8_t *restrict x, float *restrict y, int count, int zero,
                          float scale)
{
    int i;
    for (i = 0; i < count; ++i) y[i] = (float)(x[i] - zero) * scale;
}
""",
)

_kernel(
    "dense_i8",
    r"""
/* y (rows, out) from x (rows, in); w is (in, out); acc is scratch (out) */
static void dense_i8(const int8_t *restrict x, int8_t *restrict y, int32_t *restrict acc,
                     const int8_t *restrict w, const int32_t *restrict b,
                     const int32_t *restrict mult, const int8_t *restrict shift, int rows,
                     int in, int out, int zx, int zy, int lo)
{
    int r, i, o;
    for (r = 0; r < rows; ++r) {
        const int8_t *xr = x + r * in;
        for (o = 0; o < out; ++o) acc[o] = b[o];
        for (i = 0; i < in; ++i) {
            const int32_t xv = xr[i] - zx;
            const int8_t *wi = w + i * out;
            for (o = 0; o < out; ++o) acc[o] += xv * wi[o];
        }
        for (o = 0; o < out; ++o) {
            y[r * out + o] = clamp_i8(zy + rshift_round((int64_t)acc[o] * mult[o], shift[o]), lo);
        }
    }
}
""",
    "rshift_round",
)

_kernel(
    "conv2d_i8",
    r"""
/* int8 2-D convolution (see conv2d_f32); w is (G, C/G, KH, KW, F/G); acc is scratch (F) */
static void conv2d_i8(const int8_t *restrict x, int8_t *restrict y, int32_t *restrict acc,
                      const int8_t *restrict w, const int32_t *restrict b,
                      const int32_t *restrict mult, const int8_t *restrict shift, int n, int C,
                      int H, int W, int F, int OH, int OW, int KH, int KW, int SH, int SW,
                      int DH, int DW, int PT, int PL, int G, int zx, int zy, int lo)
{
    const int cg = C / G, fg = F / G, plane = OH * OW;
    int i, g, c, ky, kx, oy, ox, j;
    for (i = 0; i < n; ++i) {
        const int8_t *xi = x + i * C * H * W;
        int8_t *yi = y + i * F * plane;
        for (oy = 0; oy < OH; ++oy) {
            for (ox = 0; ox < OW; ++ox) {
                for (j = 0; j < F; ++j) acc[j] = b[j];
                for (g = 0; g < G; ++g) {
                    for (c = 0; c < cg; ++c) {
                        const int8_t *xc = xi + (g * cg + c) * H * W;
                        for (ky = 0; ky < KH; ++ky) {
                            const int iy = oy * SH + ky * DH - PT;
                            if (iy < 0 || iy >= H) continue;
                            for (kx = 0; kx < KW; ++kx) {
                                const int ix = ox * SW + kx * DW - PL;
                                const int8_t *wk = w + (((g * cg + c) * KH + ky) * KW + kx) * fg;
                                int32_t *ag = acc + g * fg;
                                int32_t v;
                                if (ix < 0 || ix >= W) continue;
                                v = xc[iy * W + ix] - zx;
                                for (j = 0; j < fg; ++j) ag[j] += v * wk[j];
                            }
                        }
                    }
                }
                for (j = 0; j < F; ++j) {
                    const int64_t scaled = (int64_t)acc[j] * mult[j];
                    const int64_t q = zy + rshift_round(scaled, shift[j]);
                    yi[j * plane + oy * OW + ox] = clamp_i8(q, lo);
                }
            }
        }
    }
}
""",
    "rshift_round",
)

_kernel(
    "conv1d_i8",
    r"""
/* int8 1-D convolution over time (see conv1d_f32); w is (G, K, C/G, F/G); acc scratch (F) */
static void conv1d_i8(const int8_t *restrict x, int8_t *restrict y, int32_t *restrict acc,
                      const int8_t *restrict w, const int32_t *restrict b,
                      const int32_t *restrict mult, const int8_t *restrict shift, int n, int T,
                      int C, int F, int OT, int K, int S, int D, int P, int G, int zx, int zy,
                      int lo)
{
    const int cg = C / G, fg = F / G;
    int i, t, k, g, c, j;
    for (i = 0; i < n; ++i) {
        for (t = 0; t < OT; ++t) {
            for (j = 0; j < F; ++j) acc[j] = b[j];
            for (k = 0; k < K; ++k) {
                const int it = t * S + k * D - P;
                const int8_t *xt;
                if (it < 0 || it >= T) continue;
                xt = x + (i * T + it) * C;
                for (g = 0; g < G; ++g) {
                    for (c = 0; c < cg; ++c) {
                        const int32_t xv = xt[g * cg + c] - zx;
                        const int8_t *wk = w + ((g * K + k) * cg + c) * fg;
                        int32_t *ag = acc + g * fg;
                        for (j = 0; j < fg; ++j) ag[j] += xv * wk[j];
                    }
                }
            }
            for (j = 0; j < F; ++j) {
                y[(i * OT + t) * F + j] =
                    clamp_i8(zy + rshift_round((int64_t)acc[j] * mult[j], shift[j]), lo);
            }
        }
    }
}
""",
    "rshift_round",
)

_kernel(
    "tconv2d_i8",
    r"""
/* int8 transposed 2-D convolution (see tconv2d_f32); acc is scratch (OH * OW) */
static void tconv2d_i8(const int8_t *restrict x, int8_t *restrict y, int32_t *restrict acc,
                       const int8_t *restrict w, const int32_t *restrict b,
                       const int32_t *restrict mult, const int8_t *restrict shift, int n, int C,
                       int H, int W, int F, int OH, int OW, int KH, int KW, int SH, int SW,
                       int PT, int PL, int zx, int zy, int lo)
{
    const int plane = OH * OW;
    int i, f, c, ky, kx, iy, ix;
    for (i = 0; i < n; ++i) {
        for (f = 0; f < F; ++f) {
            for (iy = 0; iy < plane; ++iy) acc[iy] = b[f];
            for (c = 0; c < C; ++c) {
                const int8_t *xc = x + (i * C + c) * H * W;
                for (ky = 0; ky < KH; ++ky) {
                    for (kx = 0; kx < KW; ++kx) {
                        const int32_t wv = w[((c * F + f) * KH + ky) * KW + kx];
                        const int sh = kx - PL;
                        const int lo_x = sh < 0 ? (SW - 1 - sh) / SW : 0;
                        const int top = OW - 1 - sh;
                        const int end = top < 0 ? 0 : top / SW + 1;
                        const int hi_x = end < W ? end : W;
                        for (iy = 0; iy < H; ++iy) {
                            const int oy = iy * SH + ky - PT;
                            int32_t *ar;
                            if (oy < 0 || oy >= OH) continue;
                            ar = acc + oy * OW;
                            for (ix = lo_x; ix < hi_x; ++ix) {
                                ar[ix * SW + sh] += wv * (xc[iy * W + ix] - zx);
                            }
                        }
                    }
                }
            }
            for (iy = 0; iy < plane; ++iy) {
                y[(i * F + f) * plane + iy] =
                    clamp_i8(zy + rshift_round((int64_t)acc[iy] * mult[f], shift[f]), lo);
            }
        }
    }
}
""",
    "rshift_round",
)

_kernel(
    "rdiv",
    r"""
/* a / b rounded, halves away from zero (b > 0) */
static int64_t rdiv(int64_t a, int64_t b)
{
    return a >= 0 ? (a + b / 2) / b : -((b / 2 - a) / b);
}
""",
)

_kernel(
    "pool2d_i8",
    r"""
/* int8 max or average pooling (see pool2d_f32); the output keeps the input's scale */
static void pool2d_i8(const int8_t *restrict x, int8_t *restrict y, int n, int C, int H, int W,
                      int OH, int OW, int KH, int KW, int SH, int SW, int PT, int PL,
                      int average, int zx)
{
    int i, oy, ox, ky, kx;
    for (i = 0; i < n * C; ++i) {
        const int8_t *xc = x + i * H * W;
        int8_t *yc = y + i * OH * OW;
        for (oy = 0; oy < OH; ++oy) {
            for (ox = 0; ox < OW; ++ox) {
                int32_t acc = average ? 0 : -128;
                for (ky = 0; ky < KH; ++ky) {
                    const int iy = oy * SH + ky - PT;
                    if (iy < 0 || iy >= H) continue;
                    for (kx = 0; kx < KW; ++kx) {
                        const int ix = ox * SW + kx - PL;
                        int32_t v;
                        if (ix < 0 || ix >= W) continue;
                        v = xc[iy * W + ix];
                        if (average) acc += v - zx;
                        else if (v > acc) acc = v;
                    }
                }
                yc[oy * OW + ox] = average ? clamp_i8(zx + rdiv(acc, KH * KW), -128) : (int8_t)acc;
            }
        }
    }
}
""",
    "rshift_round",
    "rdiv",
)

_kernel(
    "pool1d_i8",
    r"""
static void pool1d_i8(const int8_t *restrict x, int8_t *restrict y, int n, int T, int C, int OT,
                      int K, int S, int P, int average, int zx)
{
    int i, t, c, k;
    for (i = 0; i < n; ++i) {
        for (t = 0; t < OT; ++t) {
            for (c = 0; c < C; ++c) {
                int32_t acc = average ? 0 : -128;
                for (k = 0; k < K; ++k) {
                    const int it = t * S + k - P;
                    int32_t v;
                    if (it < 0 || it >= T) continue;
                    v = x[(i * T + it) * C + c];
                    if (average) acc += v - zx;
                    else if (v > acc) acc = v;
                }
                y[(i * OT + t) * C + c] = average ? clamp_i8(zx + rdiv(acc, K), -128) : (int8_t)acc;
            }
        }
    }
}
""",
    "rshift_round",
    "rdiv",
)

_kernel(
    "gpool_i8",
    r"""
static void gpool_i8(const int8_t *restrict x, int8_t *restrict y, int n, int P, int C,
                     int channels_last, int average, int zx)
{
    int i, c, p;
    for (i = 0; i < n; ++i) {
        const int8_t *xi = x + i * P * C;
        for (c = 0; c < C; ++c) {
            int32_t acc = average ? 0 : -128;
            for (p = 0; p < P; ++p) {
                const int32_t v = channels_last ? xi[p * C + c] : xi[c * P + p];
                if (average) acc += v - zx;
                else if (v > acc) acc = v;
            }
            y[i * C + c] = average ? clamp_i8(zx + rdiv(acc, P), -128) : (int8_t)acc;
        }
    }
}
""",
    "rshift_round",
    "rdiv",
)

_kernel(
    "affine_i8",
    r"""
/* int8 per-channel y = x * s[c] + t[c] (standalone BatchNorm) as an int8 weight per channel */
static void affine_i8(const int8_t *x, int8_t *y, const int8_t *w, const int32_t *b,
                      const int32_t *mult, const int8_t *shift, int outer, int C, int inner,
                      int zx, int zy)
{
    int o, c, j;
    for (o = 0; o < outer; ++o) {
        for (c = 0; c < C; ++c) {
            const int base = (o * C + c) * inner;
            for (j = 0; j < inner; ++j) {
                const int64_t acc = (int64_t)(x[base + j] - zx) * w[c] + b[c];
                y[base + j] = clamp_i8(zy + rshift_round(acc * mult[c], shift[c]), -128);
            }
        }
    }
}
""",
    "rshift_round",
)

_kernel(
    "lut_i8",
    r"""
/* an activation as a table of its 256 int8 outputs */
static void lut_i8(const int8_t *x, int8_t *y, const int8_t *table, int count)
{
    int i;
    for (i = 0; i < count; ++i) y[i] = table[x[i] + 128];
}
""",
)

_kernel(
    "softmax_i8",
    r"""
/* int8 softmax over C of (outer, C, inner); table[255 + d] = round(65536 exp(d * scale)),
   d = x - max in [-255, 0]; output scale 1/256, zero point -128 */
static void softmax_i8(const int8_t *x, int8_t *y, const int32_t *table, int outer, int C,
                       int inner)
{
    int o, j, c;
    for (o = 0; o < outer; ++o) {
        for (j = 0; j < inner; ++j) {
            const int base = o * C * inner + j;
            int top = x[base];
            int64_t sum = 0;
            for (c = 1; c < C; ++c) top = x[base + c * inner] > top ? x[base + c * inner] : top;
            for (c = 0; c < C; ++c) sum += table[x[base + c * inner] - top + 255];
            for (c = 0; c < C; ++c) {
                const int64_t e = table[x[base + c * inner] - top + 255];
                y[base + c * inner] = clamp_i8((e * 512 + sum) / (2 * sum) - 128, -128);
            }
        }
    }
}
""",
    "rshift_round",
)

_kernel(
    "add_i8",
    r"""
/* sum of k int8 inputs: zy + rshift_round(sum of (x - zero) * mult, shift) */
static void add_i8(const int8_t *const *xs, int8_t *y, const int32_t *zeros,
                   const int32_t *mults, int k, int count, int shift, int zy)
{
    int i, m;
    for (i = 0; i < count; ++i) {
        int64_t acc = 0;
        for (m = 0; m < k; ++m) acc += (int64_t)(xs[m][i] - zeros[m]) * mults[m];
        y[i] = clamp_i8(zy + rshift_round(acc, shift), -128);
    }
}
""",
    "rshift_round",
)

_kernel(
    "mul_i8",
    r"""
static void mul_i8(const int8_t *a, const int8_t *b, int8_t *y, int count, int za, int zb,
                   int32_t mult, int shift, int zy)
{
    int i;
    for (i = 0; i < count; ++i) {
        const int64_t product = (int64_t)(a[i] - za) * (b[i] - zb);
        y[i] = clamp_i8(zy + rshift_round(product * mult, shift), -128);
    }
}
""",
    "rshift_round",
)

_kernel(
    "concat_i8",
    r"""
/* requantize x (outer, inner) into columns [offset, offset + inner) of y (outer, total) */
static void concat_i8(const int8_t *restrict x, int8_t *restrict y, int outer, int inner,
                      int total, int offset, int zx, int32_t mult, int shift, int zy)
{
    int o, j;
    for (o = 0; o < outer; ++o) {
        for (j = 0; j < inner; ++j) {
            const int64_t v = (int64_t)(x[o * inner + j] - zx) * mult;
            y[o * total + offset + j] = clamp_i8(zy + rshift_round(v, shift), -128);
        }
    }
}
""",
    "rshift_round",
)

_kernel(
    "fill_i8",
    r"""
static void fill_i8(int8_t *y, int count, int value)
{
    int i;
    for (i = 0; i < count; ++i) y[i] = (int8_t)value;
}
""",
)

_kernel(
    "zero_i16",
    r"""
static void zero_i16(int16_t *y, int count)
{
    int i;
    for (i = 0; i < count; ++i) y[i] = 0;
}
""",
)

_kernel(
    "gate_i8",
    r"""
/* one gate pre-activation: the int8 input and state sums requantized (shared shift) */
static int32_t gate_sum(const int8_t *w, const int8_t *v, int count, int zero)
{
    int32_t acc = 0;
    int k;
    for (k = 0; k < count; ++k) acc += w[k] * (v[k] - zero);
    return acc;
}
""",
)

_kernel(
    "lstm_i8",
    r"""
/* one direction of an int8 LSTM (see lstm_f32). Gates: int8 pre-activations through
   256-entry tables (lut: sigmoid i, sigmoid f, tanh g, sigmoid o; lutc: tanh of the cell);
   cell state c int16; hidden state h int8 with the output's zero point zh. */
static void lstm_i8(const int8_t *restrict x, int8_t *restrict y, int8_t *restrict h,
                    int16_t *restrict c, int8_t *restrict hn, const int8_t *restrict wx,
                    const int8_t *restrict wh, const int32_t *restrict b,
                    const int32_t *restrict mx, const int32_t *restrict mh,
                    const int8_t *restrict ps, const int8_t *restrict lut,
                    const int8_t *restrict lutc, int n, int T, int C, int H, int reverse,
                    int sequence, int ystride, int yoff, int zx, int zh, int64_t bc, int32_t mt,
                    int st, int32_t mo, int so)
{
    int i, s, j, g;
    for (i = 0; i < n; ++i) {
        int8_t *hi = h + i * H;
        int16_t *ci = c + i * H;
        for (s = 0; s < T; ++s) {
            const int t = reverse ? T - 1 - s : s;
            const int8_t *xt = x + (i * T + t) * C;
            for (j = 0; j < H; ++j) {
                int32_t gate[4];
                int64_t cell;
                int qc;
                for (g = 0; g < 4; ++g) {
                    const int row = g * H + j;
                    const int64_t ax = (int64_t)b[row] + gate_sum(wx + row * C, xt, C, zx);
                    const int64_t ah = gate_sum(wh + row * H, hi, H, zh);
                    const int64_t sum = ax * mx[row] + ah * mh[row];
                    const int q = clamp_i8(rshift_round(sum, ps[row]), -128);
                    gate[g] = lut[g * 256 + q + 128];
                }
                cell = rshift_round((int64_t)(gate[1] + 128) * ci[j] * 65536 +
                                    (int64_t)(gate[0] + 128) * gate[2] * bc, 24);
                cell = cell < -32767 ? -32767 : (cell > 32767 ? 32767 : cell);
                ci[j] = (int16_t)cell;
                qc = clamp_i8(rshift_round(cell * mt, st), -128);
                cell = (int64_t)(gate[3] + 128) * lutc[qc + 128] * mo;
                hn[j] = clamp_i8(zh + rshift_round(cell, so), -128);
            }
            for (j = 0; j < H; ++j) hi[j] = hn[j];
            if (sequence == 1) {
                for (j = 0; j < H; ++j) y[(i * T + t) * ystride + yoff + j] = hi[j];
            } else if (sequence == 2 && t == T - 1) {
                for (j = 0; j < H; ++j) y[i * ystride + yoff + j] = hi[j];
            }
        }
        if (sequence == 0) {
            for (j = 0; j < H; ++j) y[i * ystride + yoff + j] = hi[j];
        }
    }
}
""",
    "rshift_round",
    "gate_i8",
)

_kernel(
    "gru_i8",
    r"""
/* one direction of an int8 GRU (see gru_f32): lut holds sigmoid r, sigmoid z, tanh n */
static void gru_i8(const int8_t *restrict x, int8_t *restrict y, int8_t *restrict h,
                   int8_t *restrict hn, const int8_t *restrict wx, const int8_t *restrict wh,
                   const int32_t *restrict bx, const int32_t *restrict bh,
                   const int32_t *restrict mx, const int32_t *restrict mh,
                   const int8_t *restrict ps, const int8_t *restrict lut, int n, int T, int C,
                   int H, int reverse, int sequence, int ystride, int yoff, int zx, int zh,
                   int64_t bn, int sg)
{
    int i, s, j;
    for (i = 0; i < n; ++i) {
        int8_t *hi = h + i * H;
        for (s = 0; s < T; ++s) {
            const int t = reverse ? T - 1 - s : s;
            const int8_t *xt = x + (i * T + t) * C;
            for (j = 0; j < H; ++j) {
                int64_t ax[3], ah[3], mixed;
                int g, q, ur, uz, qn;
                for (g = 0; g < 3; ++g) {
                    const int row = g * H + j;
                    ax[g] = (int64_t)bx[row] + gate_sum(wx + row * C, xt, C, zx);
                    ah[g] = gate_sum(wh + row * H, hi, H, zh);
                }
                ah[2] += bh[j];
                q = clamp_i8(rshift_round(ax[0] * mx[j] + ah[0] * mh[j], ps[j]), -128);
                ur = lut[q + 128] + 128;
                q = clamp_i8(rshift_round(ax[1] * mx[H + j] + ah[1] * mh[H + j], ps[H + j]), -128);
                uz = lut[256 + q + 128] + 128;
                q = clamp_i8(rshift_round(ax[2] * mx[2 * H + j] * 256 + ur * ah[2] * mh[2 * H + j],
                                          ps[2 * H + j] + 8), -128);
                qn = lut[512 + q + 128];
                mixed = (int64_t)(256 - uz) * qn * bn +
                        (int64_t)uz * (hi[j] - zh) * ((int64_t)1 << (sg - 8));
                hn[j] = clamp_i8(zh + rshift_round(mixed, sg), -128);
            }
            for (j = 0; j < H; ++j) hi[j] = hn[j];
            if (sequence == 1) {
                for (j = 0; j < H; ++j) y[(i * T + t) * ystride + yoff + j] = hi[j];
            } else if (sequence == 2 && t == T - 1) {
                for (j = 0; j < H; ++j) y[i * ystride + yoff + j] = hi[j];
            }
        }
        if (sequence == 0) {
            for (j = 0; j < H; ++j) y[i * ystride + yoff + j] = hi[j];
        }
    }
}
""",
    "rshift_round",
    "gate_i8",
)

_kernel("copy_f32", FLOAT_KERNELS["copy_f32"][1])
