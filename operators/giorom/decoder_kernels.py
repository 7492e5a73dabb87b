"""Warp kernel of the decoder's inference path: one thread per query contracts its rows.

A decode (see `decoder.py`) is ``out[x] = Σ_j Σ_f A[x, j, f] P[j, f, :]`` over the query's
sparse neighbours j, with the plan's fixed per-edge rows ``A[x, j, :]`` (width
``1 + dim + features``) and per-sparse-point coefficients ``P[j]`` (``channels`` numerator
columns and one denominator column), followed by the division. torch does it as a CSR × dense
product (MKL), which on one CPU thread runs at about one multiply-add per cycle; this kernel
keeps one accumulator per (column, feature) so that the compiler can vectorise the inner loop
over the features, reads each edge's neighbour index once instead of once per stored value,
and writes the divided result in place.

The row width and the channel count are compile-time constants (the vectoriser needs them),
so one kernel is generated per (width, channels) pair and cached. float32 only: it is the
no-grad inference path; training and float64 use the torch product.
"""

import functools

import warp as wp

# The inner loop is written in C++ (`func_native`) because Warp's own vector types are not
# vectorised by its CPU compiler here (measured: scalar code, slower than torch's CSR product).
_SNIPPET = """
    constexpr int W = {width};
    constexpr int C = {channels};
    const int begin = rows.data[i];
    const int end = rows.data[i + 1];
    float s[C + 1];
#if defined(__clang__) && !defined(__CUDA_ARCH__)
    // CPU: explicit 16-wide vectors over the features (AVX-512 / two AVX2 registers), the
    // remainder W % 16 in scalars; the accumulators stay in registers.
    typedef float v16 __attribute__((ext_vector_type(16)));
    constexpr int NV = W / 16;
    constexpr int T = W % 16;
    v16 vacc[C + 1][NV > 0 ? NV : 1];
    float tacc[C + 1][T > 0 ? T : 1];
    for (int c = 0; c <= C; ++c) {{
        for (int v = 0; v < NV; ++v) vacc[c][v] = (v16)(0.0f);
        for (int t = 0; t < T; ++t) tacc[c][t] = 0.0f;
    }}
    for (int e = begin; e < end; ++e) {{
        const float* A = feats.data + (size_t)e * W;
        const float* P = coef.data + (size_t)cols.data[e] * (C + 1) * W;
        v16 a[NV > 0 ? NV : 1];
        for (int v = 0; v < NV; ++v) __builtin_memcpy(&a[v], A + 16 * v, sizeof(v16));
        for (int c = 0; c <= C; ++c) {{
            const float* Pc = P + c * W;
            for (int v = 0; v < NV; ++v) {{
                v16 p;
                __builtin_memcpy(&p, Pc + 16 * v, sizeof(v16));
                vacc[c][v] += a[v] * p;
            }}
            for (int t = 0; t < T; ++t) tacc[c][t] += A[16 * NV + t] * Pc[16 * NV + t];
        }}
    }}
    for (int c = 0; c <= C; ++c) {{
        float total = 0.0f;
        for (int v = 0; v < NV; ++v)
            for (int l = 0; l < 16; ++l) total += vacc[c][v][l];
        for (int t = 0; t < T; ++t) total += tacc[c][t];
        s[c] = total;
    }}
#else
    float acc[C + 1][W];
    for (int c = 0; c <= C; ++c)
        for (int f = 0; f < W; ++f) acc[c][f] = 0.0f;
    for (int e = begin; e < end; ++e) {{
        const float* A = feats.data + (size_t)e * W;
        const float* P = coef.data + (size_t)cols.data[e] * (C + 1) * W;
        for (int c = 0; c <= C; ++c) {{
            const float* Pc = P + c * W;
            for (int f = 0; f < W; ++f) acc[c][f] += A[f] * Pc[f];
        }}
    }}
    for (int c = 0; c <= C; ++c) {{
        float total = 0.0f;
        for (int f = 0; f < W; ++f) total += acc[c][f];
        s[c] = total;
    }}
#endif
    for (int c = 0; c < C; ++c) out.data[(size_t)order.data[i] * C + c] = s[c] / s[C];
"""

_OPTIONS = {"optimization_level": 3, "cpu_compiler_flags": "-march=native"}


@functools.cache
def contraction_kernel(width: int, channels: int):
    """The kernel for rows of `width` values and `channels` output channels.

    Launch with ``dim=queries`` and inputs ``rows`` (int32, queries + 1: edge offsets of each
    row), ``cols`` (int32, edges: sparse point of each edge), ``order`` (int32, queries: the query
    of each row, where its result is written), ``feats`` (float32, edges·width),
    ``coef`` (float32, points·(channels + 1)·width) and output ``out`` (float32, queries·channels).
    """

    @wp.func_native(_SNIPPET.format(width=int(width), channels=int(channels)))
    def contract(rows: wp.array(dtype=wp.int32), cols: wp.array(dtype=wp.int32), order: wp.array(dtype=wp.int32),
                 feats: wp.array(dtype=wp.float32), coef: wp.array(dtype=wp.float32), i: int,
                 out: wp.array(dtype=wp.float32)): ...

    def decode_rows(rows: wp.array(dtype=wp.int32), cols: wp.array(dtype=wp.int32), order: wp.array(dtype=wp.int32),
                    feats: wp.array(dtype=wp.float32), coef: wp.array(dtype=wp.float32),
                    out: wp.array(dtype=wp.float32)):
        contract(rows, cols, order, feats, coef, wp.tid(), out)

    return wp.kernel(decode_rows, name=f"giorom_decode_rows_w{width}_c{channels}", module="unique",
                     module_options=_OPTIONS, enable_backward=False)
