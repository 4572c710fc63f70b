"""The float32 C kernels. Generated code includes only the kernels its network uses.

Every kernel is a ``static`` C99 function over flat arrays in the toolbox's layout (features
(C), sequences (T, C), images (C, H, W), batch first), using only <math.h>. Dense weights are
stored transposed ((in, out)), Conv1d weights as (groups, K, C/groups, F/groups) and Conv2d
weights as (groups, C/groups, KH, KW, F/groups), so the innermost loops run over contiguous
memory (output channels).
"""

from __future__ import annotations

KERNELS: dict[str, tuple[tuple[str, ...], str]] = {}
"""name -> (kernels it calls, C source)."""


def _kernel(name: str, source: str, *deps: str) -> None:
    KERNELS[name] = (deps, source.strip("\n") + "\n")


_kernel(
    "sigmoid_scalar",
    r"""
static float sigmoid_scalar(float v)
{
    return 1.0f / (1.0f + expf(-v));
}
""",
)

_kernel(
    "dense_f32",
    r"""
/* y (rows, out) = x (rows, in) . w (in, out) + b, optionally followed by ReLU */
static void dense_f32(const float *restrict x, float *restrict y, const float *restrict w,
                      const float *restrict b, int rows, int in, int out, int relu)
{
    int r, i, o;
    for (r = 0; r < rows; ++r) {
        const float *xr = x + r * in;
        float *yr = y + r * out;
        for (o = 0; o < out; ++o) yr[o] = b[o];
        for (i = 0; i < in; ++i) {
            const float xv = xr[i];
            const float *wi = w + i * out;
            for (o = 0; o < out; ++o) yr[o] += xv * wi[o];
        }
        if (relu) {
            for (o = 0; o < out; ++o) yr[o] = yr[o] < 0.0f ? 0.0f : yr[o];
        }
    }
}
""",
)

_kernel(
    "conv2d_f32",
    r"""
/* 2-D convolution, (C, H, W) -> (F, OH, OW), top/left padding PT/PL. One output pixel at a
   time: acc (scratch, F) gathers every filter, so the innermost loop runs over output
   channels; w is (G, C/G, KH, KW, F/G) for that. */
static void conv2d_f32(const float *restrict x, float *restrict y, float *restrict acc,
                       const float *restrict w, const float *restrict b, int n, int C, int H,
                       int W, int F, int OH, int OW, int KH, int KW, int SH, int SW, int DH,
                       int DW, int PT, int PL, int G, int relu)
{
    const int cg = C / G, fg = F / G, plane = OH * OW;
    int i, g, c, ky, kx, oy, ox, j;
    for (i = 0; i < n; ++i) {
        const float *xi = x + i * C * H * W;
        float *yi = y + i * F * plane;
        for (oy = 0; oy < OH; ++oy) {
            for (ox = 0; ox < OW; ++ox) {
                for (j = 0; j < F; ++j) acc[j] = b[j];
                for (g = 0; g < G; ++g) {
                    for (c = 0; c < cg; ++c) {
                        const float *xc = xi + (g * cg + c) * H * W;
                        for (ky = 0; ky < KH; ++ky) {
                            const int iy = oy * SH + ky * DH - PT;
                            if (iy < 0 || iy >= H) continue;
                            for (kx = 0; kx < KW; ++kx) {
                                const int ix = ox * SW + kx * DW - PL;
                                const float *wk = w + (((g * cg + c) * KH + ky) * KW + kx) * fg;
                                float *ag = acc + g * fg;
                                float v;
                                if (ix < 0 || ix >= W) continue;
                                v = xc[iy * W + ix];
                                for (j = 0; j < fg; ++j) ag[j] += v * wk[j];
                            }
                        }
                    }
                }
                for (j = 0; j < F; ++j) {
                    yi[j * plane + oy * OW + ox] = relu && acc[j] < 0.0f ? 0.0f : acc[j];
                }
            }
        }
    }
}
""",
)

_kernel(
    "conv1d_f32",
    r"""
/* 1-D convolution over time, (T, C) -> (OT, F); w is (G, K, C/G, F/G) */
static void conv1d_f32(const float *restrict x, float *restrict y, const float *restrict w,
                       const float *restrict b, int n, int T, int C, int F, int OT, int K,
                       int S, int D, int P, int G, int relu)
{
    const int cg = C / G, fg = F / G;
    int i, t, k, g, c, j;
    for (i = 0; i < n; ++i) {
        for (t = 0; t < OT; ++t) {
            float *yt = y + (i * OT + t) * F;
            for (j = 0; j < F; ++j) yt[j] = b[j];
            for (k = 0; k < K; ++k) {
                const int it = t * S + k * D - P;
                const float *xt;
                if (it < 0 || it >= T) continue;
                xt = x + (i * T + it) * C;
                for (g = 0; g < G; ++g) {
                    for (c = 0; c < cg; ++c) {
                        const float xv = xt[g * cg + c];
                        const float *wk = w + ((g * K + k) * cg + c) * fg;
                        float *yg = yt + g * fg;
                        for (j = 0; j < fg; ++j) yg[j] += xv * wk[j];
                    }
                }
            }
            if (relu) {
                for (j = 0; j < F; ++j) yt[j] = yt[j] < 0.0f ? 0.0f : yt[j];
            }
        }
    }
}
""",
)

_kernel(
    "tconv2d_f32",
    r"""
/* transposed 2-D convolution, (C, H, W) -> (F, OH, OW); w is (C, F, KH, KW); output pixel
   (iy * SH + ky - PT, ix * SW + kx - PL) gathers input pixel (iy, ix) */
static void tconv2d_f32(const float *restrict x, float *restrict y, const float *restrict w,
                        const float *restrict b, int n, int C, int H, int W, int F, int OH,
                        int OW, int KH, int KW, int SH, int SW, int PT, int PL, int relu)
{
    const int plane = OH * OW;
    int i, f, c, ky, kx, iy, ix;
    for (i = 0; i < n; ++i) {
        for (f = 0; f < F; ++f) {
            float *yf = y + (i * F + f) * plane;
            for (iy = 0; iy < plane; ++iy) yf[iy] = b[f];
            for (c = 0; c < C; ++c) {
                const float *xc = x + (i * C + c) * H * W;
                for (ky = 0; ky < KH; ++ky) {
                    for (kx = 0; kx < KW; ++kx) {
                        const float wv = w[((c * F + f) * KH + ky) * KW + kx];
                        const int shift = kx - PL;
                        const int lo = shift < 0 ? (SW - 1 - shift) / SW : 0;
                        const int top = OW - 1 - shift;
                        const int end = top < 0 ? 0 : top / SW + 1;
                        const int hi = end < W ? end : W;
                        for (iy = 0; iy < H; ++iy) {
                            const int oy = iy * SH + ky - PT;
                            float *yr;
                            if (oy < 0 || oy >= OH) continue;
                            yr = yf + oy * OW;
                            for (ix = lo; ix < hi; ++ix) {
                                yr[ix * SW + shift] += wv * xc[iy * W + ix];
                            }
                        }
                    }
                }
            }
            if (relu) {
                for (iy = 0; iy < plane; ++iy) yf[iy] = yf[iy] < 0.0f ? 0.0f : yf[iy];
            }
        }
    }
}
""",
)

_kernel(
    "pool2d_f32",
    r"""
/* max or average pooling, (C, H, W) -> (C, OH, OW); padding is skipped by max and counts
   as zeros for average (the divisor is always KH * KW) */
static void pool2d_f32(const float *restrict x, float *restrict y, int n, int C, int H, int W,
                       int OH, int OW, int KH, int KW, int SH, int SW, int PT, int PL,
                       int average)
{
    int i, oy, ox, ky, kx;
    for (i = 0; i < n * C; ++i) {
        const float *xc = x + i * H * W;
        float *yc = y + i * OH * OW;
        for (oy = 0; oy < OH; ++oy) {
            for (ox = 0; ox < OW; ++ox) {
                float acc = average ? 0.0f : -INFINITY;
                for (ky = 0; ky < KH; ++ky) {
                    const int iy = oy * SH + ky - PT;
                    if (iy < 0 || iy >= H) continue;
                    for (kx = 0; kx < KW; ++kx) {
                        const int ix = ox * SW + kx - PL;
                        float v;
                        if (ix < 0 || ix >= W) continue;
                        v = xc[iy * W + ix];
                        if (average) acc += v;
                        else if (v > acc) acc = v;
                    }
                }
                yc[oy * OW + ox] = average ? acc / (float)(KH * KW) : acc;
            }
        }
    }
}
""",
)

_kernel(
    "pool1d_f32",
    r"""
/* max or average pooling over time, (T, C) -> (OT, C); padding as in pool2d_f32 */
static void pool1d_f32(const float *restrict x, float *restrict y, int n, int T, int C, int OT,
                       int K, int S, int P, int average)
{
    int i, t, c, k;
    for (i = 0; i < n; ++i) {
        for (t = 0; t < OT; ++t) {
            for (c = 0; c < C; ++c) {
                float acc = average ? 0.0f : -INFINITY;
                for (k = 0; k < K; ++k) {
                    const int it = t * S + k - P;
                    float v;
                    if (it < 0 || it >= T) continue;
                    v = x[(i * T + it) * C + c];
                    if (average) acc += v;
                    else if (v > acc) acc = v;
                }
                y[(i * OT + t) * C + c] = average ? acc / (float)K : acc;
            }
        }
    }
}
""",
)

_kernel(
    "gpool_f32",
    r"""
/* global max or average over P positions: (C, P) or, channels last, (P, C) -> (C) */
static void gpool_f32(const float *restrict x, float *restrict y, int n, int P, int C,
                      int channels_last, int average)
{
    int i, c, p;
    for (i = 0; i < n; ++i) {
        const float *xi = x + i * P * C;
        for (c = 0; c < C; ++c) {
            float acc = average ? 0.0f : -INFINITY;
            for (p = 0; p < P; ++p) {
                const float v = channels_last ? xi[p * C + c] : xi[c * P + p];
                if (average) acc += v;
                else if (v > acc) acc = v;
            }
            y[i * C + c] = average ? acc / (float)P : acc;
        }
    }
}
""",
)

_kernel(
    "affine_f32",
    r"""
/* y = x * s[c] + t[c] with x viewed as (outer, C, inner): BatchNorm, input normalization */
static void affine_f32(const float *x, float *y, const float *s, const float *t, int outer,
                       int C, int inner)
{
    int o, c, j;
    for (o = 0; o < outer; ++o) {
        for (c = 0; c < C; ++c) {
            const int base = (o * C + c) * inner;
            for (j = 0; j < inner; ++j) y[base + j] = x[base + j] * s[c] + t[c];
        }
    }
}
""",
)

_kernel(
    "softmax_f32",
    r"""
/* softmax over C of x viewed as (outer, C, inner); may run in place */
static void softmax_f32(const float *x, float *y, int outer, int C, int inner)
{
    int o, j, c;
    for (o = 0; o < outer; ++o) {
        for (j = 0; j < inner; ++j) {
            const int base = o * C * inner + j;
            float top = x[base], sum = 0.0f;
            for (c = 1; c < C; ++c) top = x[base + c * inner] > top ? x[base + c * inner] : top;
            for (c = 0; c < C; ++c) {
                const float e = expf(x[base + c * inner] - top);
                y[base + c * inner] = e;
                sum += e;
            }
            for (c = 0; c < C; ++c) y[base + c * inner] /= sum;
        }
    }
}
""",
)

_ACTIVATIONS = {
    "relu": "x[i] < 0.0f ? 0.0f : x[i]",
    "leaky_relu": "x[i] < 0.0f ? alpha * x[i] : x[i]",
    "elu": "x[i] > 0.0f ? x[i] : alpha * expm1f(x[i])",
    "gelu": "0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f))",
    "gelu_tanh": (
        "0.5f * x[i] * (1.0f + tanhf(0.79788456080286536f * (x[i] + 0.044715f * x[i] * x[i] "
        "* x[i])))"
    ),
    "sigmoid": "1.0f / (1.0f + expf(-x[i]))",
    "tanh": "tanhf(x[i])",
    "swish": "x[i] / (1.0f + expf(-x[i]))",
}
WITH_ALPHA = ("leaky_relu", "elu")

for _fn, _expression in _ACTIVATIONS.items():
    _alpha = ", float alpha" if _fn in WITH_ALPHA else ""
    _kernel(
        f"{_fn}_f32",
        f"""
static void {_fn}_f32(const float *x, float *y, int count{_alpha})
{{
    int i;
    for (i = 0; i < count; ++i) y[i] = {_expression};
}}
""",
    )

_kernel(
    "add_f32",
    r"""
static void add_f32(const float *a, const float *b, float *y, int count)
{
    int i;
    for (i = 0; i < count; ++i) y[i] = a[i] + b[i];
}
""",
)

_kernel(
    "mul_f32",
    r"""
static void mul_f32(const float *a, const float *b, float *y, int count)
{
    int i;
    for (i = 0; i < count; ++i) y[i] = a[i] * b[i];
}
""",
)

_kernel(
    "concat_f32",
    r"""
/* copy x (outer, inner) into columns [offset, offset + inner) of y (outer, total) */
static void concat_f32(const float *restrict x, float *restrict y, int outer, int inner,
                       int total, int offset)
{
    int o, j;
    for (o = 0; o < outer; ++o) {
        for (j = 0; j < inner; ++j) y[o * total + offset + j] = x[o * inner + j];
    }
}
""",
)

_kernel(
    "copy_f32",
    r"""
static void copy_f32(const float *restrict x, float *restrict y, int count)
{
    int i;
    for (i = 0; i < count; ++i) y[i] = x[i];
}
""",
)

_kernel(
    "zero_f32",
    r"""
static void zero_f32(float *y, int count)
{
    int i;
    for (i = 0; i < count; ++i) y[i] = 0.0f;
}
""",
)

_kernel(
    "lstm_f32",
    r"""
/* one direction of an LSTM layer over x (n, T, C); gates in PyTorch's order i, f, g, o;
   wx (4H, C), wh (4H, H), b = b_ih + b_hh (4H). h, c (n, H) hold the state (read and
   updated), hn (H) is scratch. Writes h to y (rows of ystride values starting at column
   yoff): after the last step processed (sequence 0), at every step (1), or at step T - 1
   only (2: the last step of the output sequence, which a reverse direction computes first). */
static void lstm_f32(const float *restrict x, float *restrict y, float *restrict h,
                     float *restrict c, float *restrict hn, const float *restrict wx,
                     const float *restrict wh, const float *restrict b, int n, int T, int C,
                     int H, int reverse, int sequence, int ystride, int yoff)
{
    int i, s, j, g, k;
    for (i = 0; i < n; ++i) {
        float *hi = h + i * H, *ci = c + i * H;
        for (s = 0; s < T; ++s) {
            const int t = reverse ? T - 1 - s : s;
            const float *xt = x + (i * T + t) * C;
            for (j = 0; j < H; ++j) {
                float z[4];
                for (g = 0; g < 4; ++g) {
                    const int row = g * H + j;
                    const float *wr = wx + row * C, *ur = wh + row * H;
                    float acc = b[row];
                    for (k = 0; k < C; ++k) acc += wr[k] * xt[k];
                    for (k = 0; k < H; ++k) acc += ur[k] * hi[k];
                    z[g] = acc;
                }
                ci[j] = sigmoid_scalar(z[1]) * ci[j] + sigmoid_scalar(z[0]) * tanhf(z[2]);
                hn[j] = sigmoid_scalar(z[3]) * tanhf(ci[j]);
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
    "sigmoid_scalar",
)

_kernel(
    "gru_f32",
    r"""
/* one direction of a GRU layer (PyTorch's: gates r, z, n; the reset gate applied after the
   recurrent product); wx (3H, C), wh (3H, H), bx and bh (3H); state h (n, H), scratch hn (H) */
static void gru_f32(const float *restrict x, float *restrict y, float *restrict h,
                    float *restrict hn, const float *restrict wx, const float *restrict wh,
                    const float *restrict bx, const float *restrict bh, int n, int T, int C,
                    int H, int reverse, int sequence, int ystride, int yoff)
{
    int i, s, j, g, k;
    for (i = 0; i < n; ++i) {
        float *hi = h + i * H;
        for (s = 0; s < T; ++s) {
            const int t = reverse ? T - 1 - s : s;
            const float *xt = x + (i * T + t) * C;
            for (j = 0; j < H; ++j) {
                float ax[3], ah[3], r, z, cand;
                for (g = 0; g < 3; ++g) {
                    const int row = g * H + j;
                    const float *wr = wx + row * C, *ur = wh + row * H;
                    ax[g] = bx[row];
                    ah[g] = bh[row];
                    for (k = 0; k < C; ++k) ax[g] += wr[k] * xt[k];
                    for (k = 0; k < H; ++k) ah[g] += ur[k] * hi[k];
                }
                r = sigmoid_scalar(ax[0] + ah[0]);
                z = sigmoid_scalar(ax[1] + ah[1]);
                cand = tanhf(ax[2] + r * ah[2]);
                hn[j] = (1.0f - z) * cand + z * hi[j];
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
    "sigmoid_scalar",
)


def kernel_sources(names: set[str], table: dict | None = None) -> str:
    """C source of the kernels ``names`` and what they call, each once, callees first."""
    table = KERNELS if table is None else table
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        deps, _ = table[name]
        for dep in deps:
            visit(dep)
        ordered.append(name)

    for name in sorted(names):
        visit(name)
    return "\n".join(table[name][1] for name in ordered)
