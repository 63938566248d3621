// EPIC's CUDA kernels, compiled at start-up by NVRTC for the device's own architecture.
//
// The arithmetic contract is the CPU kernels': weights are widened to fp32 in registers (bf16 by a
// shift, e4m3 codes times their block scale, rounded once) and products are accumulated in fp32. The
// fp8 row kernels apply the scale to each eight codes' partial sum instead (the same up to fp32
// rounding, within the products' 1e-5 tolerance).
// Matrices are row-major W[rows x cols] (a linear's out x in); activations x[batch x cols] and
// out[batch x rows] are row-major fp32.

#define KIND_F32 0
#define KIND_BF16 1
#define KIND_FP8 2

// Threads per block of the row kernels: they share one weight row.
#define THREADS 128
// Eight-weight loads each thread keeps in flight.
#define UNROLL 4
// Weight rows per block (see Rows) where measurement chose them: fp8's matvec and down kernels in
// every tiling, its gate+up kernels, and bf16 and f32 single-token products. Each can be overridden
// (#define before the source: scripts/device/kernel-variants.sh times such variants side by side).
#ifndef FP8_MATVEC_ROWS
#define FP8_MATVEC_ROWS 4
#endif
#ifndef FP8_GATE_UP_ROWS
#define FP8_GATE_UP_ROWS 1
#endif
#ifndef DECODE_MATVEC_ROWS
#define DECODE_MATVEC_ROWS 1
#endif

__device__ __forceinline__ float bf16_lo(unsigned int v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float bf16_hi(unsigned int v) { return __uint_as_float(v & 0xffff0000u); }

// float8_e4m3fn: bias 7, no infinities, S.1111.111 is NaN. Its exponent and mantissa bits, placed
// where a float keeps them (bit 20 up), read as a float 2^120 too small, subnormals included (fp32
// denormals are kept: no fast math); multiplying by 2^120 is exact. No branch, a handful of ops.
__device__ __forceinline__ float e4m3(unsigned int c) {
    unsigned int mag = c & 0x7fu;
    float v = __uint_as_float(mag << 20) * __uint_as_float(0x7b800000u);
    v = mag == 0x7fu ? __uint_as_float(0x7fc00000u) : v;
    return __uint_as_float(__float_as_uint(v) | ((c & 0x80u) << 24));
}

// Two e4m3 codes (low byte first) widened at once: Ada and Hopper convert a pair to two halves in one
// instruction (exact: every e4m3 value is a half), then each half to float (exact).
__device__ __forceinline__ void e4m3x2(unsigned int pair, float* lo, float* hi) {
#if __CUDA_ARCH__ >= 890
    unsigned int h2;
    unsigned short l;
    unsigned short h;
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(h2) : "h"((unsigned short) pair));
    asm("mov.b32 {%0, %1}, %2;" : "=h"(l), "=h"(h) : "r"(h2));
    asm("cvt.f32.f16 %0, %1;" : "=f"(*lo) : "h"(l));
    asm("cvt.f32.f16 %0, %1;" : "=f"(*hi) : "h"(h));
#else
    *lo = e4m3(pair & 255u);
    *hi = e4m3((pair >> 8) & 255u);
#endif
}

struct Weights {
    const void* w;
    const float* scales;  // fp8: one per [blockRows x blockCols] block
    int scaleCols;
    int blockRows;
    int blockCols;
};

// The fp8 block scale of W[r, c]. Blocks are 128 x 128 in DeepSeek's checkpoints: a power of two
// divides by a shift (a division by a runtime value costs a couple of dozen instructions per load).
__device__ __forceinline__ int block_of(int i, int width) {
    return (width & (width - 1)) == 0 ? i >> (__ffs(width) - 1) : i / width;
}

__device__ __forceinline__ float scale(const Weights& W, int r, int c) {
    return W.scales[block_of(r, W.blockRows) * W.scaleCols + block_of(c, W.blockCols)];
}

// One weight W[r, c], widened.
template <int KIND>
__device__ __forceinline__ float load1(const Weights& W, int cols, int r, int c) {
    long i = (long) r * cols + c;
    if (KIND == KIND_F32) {
        return ((const float*) W.w)[i];
    } else if (KIND == KIND_BF16) {
        return __uint_as_float(((unsigned int) ((const unsigned short*) W.w)[i]) << 16);
    } else {
        return e4m3(((const unsigned char*) W.w)[i]) * scale(W, r, c);
    }
}

// Eight weights W[r, c .. c+8), widened; c is a multiple of 8 and cols too (aligned vector loads).
template <int KIND>
__device__ __forceinline__ void load8(const Weights& W, int cols, int r, int c, float* o) {
    long i = (long) r * cols + c;
    if (KIND == KIND_F32) {
        float4 a = *reinterpret_cast<const float4*>((const float*) W.w + i);
        float4 b = *reinterpret_cast<const float4*>((const float*) W.w + i + 4);
        o[0] = a.x; o[1] = a.y; o[2] = a.z; o[3] = a.w;
        o[4] = b.x; o[5] = b.y; o[6] = b.z; o[7] = b.w;
    } else if (KIND == KIND_BF16) {
        uint4 v = *reinterpret_cast<const uint4*>((const unsigned short*) W.w + i);
        o[0] = bf16_lo(v.x); o[1] = bf16_hi(v.x); o[2] = bf16_lo(v.y); o[3] = bf16_hi(v.y);
        o[4] = bf16_lo(v.z); o[5] = bf16_hi(v.z); o[6] = bf16_lo(v.w); o[7] = bf16_hi(v.w);
    } else {
        uint2 v = *reinterpret_cast<const uint2*>((const unsigned char*) W.w + i);
        // blocks are a multiple of 8 columns wide when this path runs: one scale covers all eight
        float s = scale(W, r, c);
        e4m3x2(v.x, o, o + 1);
        e4m3x2(v.x >> 16, o + 2, o + 3);
        e4m3x2(v.y, o + 4, o + 5);
        e4m3x2(v.y >> 16, o + 6, o + 7);
        #pragma unroll
        for (int k = 0; k < 8; k++) {
            o[k] *= s;
        }
    }
}

// Whether rows can be read eight weights at a time (one fp8 scale per eight).
template <int KIND>
__device__ __forceinline__ bool vectorised(const Weights& W, int cols) {
    return (cols & 7) == 0 && (KIND != KIND_FP8 || (W.blockCols & 7) == 0);
}

__device__ __forceinline__ float warp_sum(float v) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

// x[b, c .. c+8) as two 16-byte loads (c is a multiple of 8).
__device__ __forceinline__ void load_x8(const float* xb, int cols, int b, int c, float4& p, float4& q) {
    const float* xr = xb + (long) b * cols + c;
    p = *reinterpret_cast<const float4*>(xr);
    q = *reinterpret_cast<const float4*>(xr + 4);
}

// acc[q * T + b] += w[q][0..8) . x[b, c .. c+8) for the R weight rows q and the tile's batch rows
// b < nb: each x load feeds R rows' products.
template <int T, int R>
__device__ __forceinline__ void fma8(const float (*w)[8], const float* xb, int cols, int c, int nb, float* acc) {
    #pragma unroll
    for (int b = 0; b < T; b++) {
        if (b < nb) {
            float4 p, q;
            load_x8(xb, cols, b, c, p, q);
            #pragma unroll
            for (int k = 0; k < R; k++) {
                float s = acc[k * T + b];
                s = fmaf(w[k][0], p.x, s); s = fmaf(w[k][1], p.y, s); s = fmaf(w[k][2], p.z, s); s = fmaf(w[k][3], p.w, s);
                s = fmaf(w[k][4], q.x, s); s = fmaf(w[k][5], q.y, s); s = fmaf(w[k][6], q.z, s); s = fmaf(w[k][7], q.w, s);
                acc[k * T + b] = s;
            }
        }
    }
}

// acc[k * T + b] += s * (e4m3(raw[k]) . x[b, c .. c+8)) for R weight rows' eight codes each (low
// byte first) and the tile's batch rows b < nb. Each row's codes are widened just before their
// products, and the block scale applied once to the partial sum (s * sum(w x) rather than
// sum((w s) x): the same up to fp32 rounding).
template <int T, int R>
__device__ __forceinline__ void fma8_fp8(const uint2* raw, float s, const float* xb, int cols, int c, int nb,
                                         float* acc) {
    #pragma unroll
    for (int k = 0; k < R; k++) {
        float w[8];
        e4m3x2(raw[k].x, w, w + 1);
        e4m3x2(raw[k].x >> 16, w + 2, w + 3);
        e4m3x2(raw[k].y, w + 4, w + 5);
        e4m3x2(raw[k].y >> 16, w + 6, w + 7);
        #pragma unroll
        for (int b = 0; b < T; b++) {
            if (b < nb) {
                float4 p, q;
                load_x8(xb, cols, b, c, p, q);
                float d = w[0] * p.x;
                d = fmaf(w[1], p.y, d); d = fmaf(w[2], p.z, d); d = fmaf(w[3], p.w, d);
                d = fmaf(w[4], q.x, d); d = fmaf(w[5], q.y, d); d = fmaf(w[6], q.z, d); d = fmaf(w[7], q.w, d);
                acc[k * T + b] = fmaf(s, d, acc[k * T + b]);
            }
        }
    }
}

// This thread's share of W[r0 + k] . x[b] for R fp8 weight rows (nr in the matrix, all in one block
// of scales) and the tile's batch rows b < nb, into acc[k * T + b]. What stays in flight is the raw
// codes and their scales (two registers per eight codes, one per scale), not widened floats. With
// one row a block that took fp8 from 69 registers to 40-48, bf16's 38-40, and so to its occupancy
// (device run 16: 0.35 -> 0.46 of copy at batch 1). The last round's loads past the row are
// predicated off, not left to a serial tail.
template <int T, int R>
__device__ __forceinline__ void dot_rows_fp8(const Weights& W, const float* xb, int cols, int r0, int nr, int nb,
                                             float* acc) {
    constexpr int U = UNROLL / R > 0 ? UNROLL / R : 1;
    const unsigned char* rows = (const unsigned char*) W.w + (long) r0 * cols;
    const float* srow = W.scales + (long) block_of(r0, W.blockRows) * W.scaleCols;
    const int step = THREADS * 8;
    for (int c = threadIdx.x * 8; c < cols; c += step * U) {
        uint2 raw[U][R];
        float s[U];
        #pragma unroll
        for (int u = 0; u < U; u++) {
            int cu = c + step * u;
            if (cu < cols) {
                #pragma unroll
                for (int k = 0; k < R; k++) {
                    raw[u][k] = R == 1 || k < nr ? *reinterpret_cast<const uint2*>(rows + (long) k * cols + cu)
                                                 : make_uint2(0u, 0u);
                }
                s[u] = srow[block_of(cu, W.blockCols)];
            }
        }
        #pragma unroll
        for (int u = 0; u < U; u++) {
            int cu = c + step * u;
            if (cu < cols) {
                fma8_fp8<T, R>(raw[u], s[u], xb, cols, cu, nb, acc);
            }
        }
    }
}

// Eight weights of row r from column c, or zeros for a row past the matrix (nothing is read). A block
// of one row always has it (R == 1 above), which keeps decode's kernels lean.
template <int KIND>
__device__ __forceinline__ void load8_or_zero(const Weights& W, int cols, int r, bool valid, int c, float* o) {
    if (valid) {
        load8<KIND>(W, cols, r, c, o);
    } else {
        #pragma unroll
        for (int k = 0; k < 8; k++) {
            o[k] = 0.0f;
        }
    }
}

// This thread's share of W[r0 + q] . x[b] for R consecutive weight rows (nr of them in the matrix)
// and the tile's batch rows b < nb, into acc[q * T + b]. The block's threads split the columns
// (eight at a time, THREADS * 8 apart), so a row keeps a whole block's loads in flight: R rows times
// UNROLL / R column steps of 16-byte loads per thread.
template <int KIND, int T, int R>
__device__ __forceinline__ void dot_rows(const Weights& W, const float* xb, int cols, int r0, int nr, int nb,
                                         float* acc) {
    constexpr int U = UNROLL / R > 0 ? UNROLL / R : 1;
    if constexpr (KIND == KIND_FP8) {
        // one scale per eight codes, and the R rows in one block of scales (r0 is a multiple of R)
        if (vectorised<KIND>(W, cols) && W.blockRows % R == 0) {
            dot_rows_fp8<T, R>(W, xb, cols, r0, nr, nb, acc);
            return;
        }
    }
    if (vectorised<KIND>(W, cols)) {
        const int step = THREADS * 8;
        int c = threadIdx.x * 8;
        for (; c + step * (U - 1) < cols; c += step * U) {
            float w[U][R][8];
            #pragma unroll
            for (int u = 0; u < U; u++) {
                #pragma unroll
                for (int k = 0; k < R; k++) {
                    load8_or_zero<KIND>(W, cols, r0 + k, R == 1 || k < nr, c + step * u, w[u][k]);
                }
            }
            #pragma unroll
            for (int u = 0; u < U; u++) {
                fma8<T, R>(w[u], xb, cols, c + step * u, nb, acc);
            }
        }
        for (; c < cols; c += step) {
            float w[R][8];
            #pragma unroll
            for (int k = 0; k < R; k++) {
                load8_or_zero<KIND>(W, cols, r0 + k, R == 1 || k < nr, c, w[k]);
            }
            fma8<T, R>(w, xb, cols, c, nb, acc);
        }
    } else {
        for (int c = threadIdx.x; c < cols; c += THREADS) {
            float w[R];
            #pragma unroll
            for (int k = 0; k < R; k++) {
                w[k] = R == 1 || k < nr ? load1<KIND>(W, cols, r0 + k, c) : 0.0f;
            }
            #pragma unroll
            for (int b = 0; b < T; b++) {
                if (b < nb) {
                    float xv = xb[(long) b * cols + c];
                    #pragma unroll
                    for (int k = 0; k < R; k++) {
                        acc[k * T + b] = fmaf(w[k], xv, acc[k * T + b]);
                    }
                }
            }
        }
    }
}

// acc[i] summed over the block: within each warp, then the warps' partials in order. Thread 0 ends
// with the totals; every thread must call it (it synchronises the block).
template <int T>
__device__ __forceinline__ void block_sum(float* acc, float (*part)[THREADS / 32]) {
    int warp = threadIdx.x >> 5;
    #pragma unroll
    for (int b = 0; b < T; b++) {
        float s = warp_sum(acc[b]);
        if ((threadIdx.x & 31) == 0) {
            part[b][warp] = s;
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        #pragma unroll
        for (int b = 0; b < T; b++) {
            float s = 0.0f;
            for (int w = 0; w < THREADS / 32; w++) {
                s += part[b][w];
            }
            acc[b] = s;
        }
    }
    __syncthreads(); // part is free again
}

__device__ __forceinline__ float silu_times(float g, float u) {
    return g / (1.0f + expf(-g)) * u;
}

// Weight rows per block: one for single token rows of bf16 and f32 (decode: the most blocks,
// memory-bound; two measured no faster), several for tiles of tokens, so that each x load feeds
// several rows (the tiles are bound by those loads). fp8 takes four in its matvec and down kernels
// at every tiling: a down row is only 2 KB, and four rows a block put four loads in flight per thread
// with one x load each (device run 17: batch 1 0.47 -> 0.56 of copy, 2 0.51 -> 0.61); its gate+up
// kernels keep one (two: no faster, and slower at 32 tokens). The host reads each kernel's count
// (its int NAME_rows below) to size the grid.
template <int KIND, int T> struct Rows {
    static constexpr int MATVEC = KIND == KIND_FP8 ? FP8_MATVEC_ROWS : T == 1 ? DECODE_MATVEC_ROWS : 4;
    static constexpr int GATE_UP = KIND == KIND_FP8 ? FP8_GATE_UP_ROWS : T == 1 ? 1 : 2;
};

// out[b * stride + r0 + q] = W[r0 + q] . xb[b] for R rows (nr in the matrix) and the tile's rows
// b < nb, summed over the block.
template <int KIND, int T, int R>
__device__ __forceinline__ void row_tile(const Weights& W, const float* xb, int cols, int r0, int nr, int nb,
                                         float (*part)[THREADS / 32], float* out, long stride) {
    float acc[R * T];
    #pragma unroll
    for (int i = 0; i < R * T; i++) {
        acc[i] = 0.0f;
    }
    dot_rows<KIND, T, R>(W, xb, cols, r0, nr, nb, acc);
    block_sum<R * T>(acc, part);
    if (threadIdx.x == 0) {
        for (int k = 0; k < nr; k++) {
            for (int b = 0; b < nb; b++) {
                out[b * stride + r0 + k] = acc[k * T + b];
            }
        }
    }
}

// A SwiGLU block's first half for R rows and the tile's token rows in one pass over both matrices:
// h[b * stride + r] = silu(G[r] . xb[b]) * (U[r] . xb[b]), silu(g) = g / (1 + exp(-g)) as
// VectorOps.swiglu writes it. part holds 2 R T rows.
template <int KIND, int T, int R>
__device__ __forceinline__ void gate_up_tile(const Weights& G, const Weights& U, const float* xb, int cols, int r0,
                                             int nr, int nb, float (*part)[THREADS / 32], float* h, long stride) {
    float g[R * T];
    float u[R * T];
    #pragma unroll
    for (int i = 0; i < R * T; i++) {
        g[i] = 0.0f;
        u[i] = 0.0f;
    }
    dot_rows<KIND, T, R>(G, xb, cols, r0, nr, nb, g);
    dot_rows<KIND, T, R>(U, xb, cols, r0, nr, nb, u);
    block_sum<R * T>(g, part);
    block_sum<R * T>(u, part + R * T);
    if (threadIdx.x == 0) {
        for (int k = 0; k < nr; k++) {
            for (int b = 0; b < nb; b++) {
                h[b * stride + r0 + k] = silu_times(g[k * T + b], u[k * T + b]);
            }
        }
    }
}

// One matrix: block (r, tile of T batch rows) of out[batch x rows] = x[batch x cols] W^T.
template <int KIND, int T>
__device__ void matvec(Weights W, const float* x, float* out, int rows, int cols, int batch) {
    constexpr int R = Rows<KIND, T>::MATVEC;
    __shared__ float part[R * T][THREADS / 32];
    int b0 = blockIdx.y * T;
    int r0 = blockIdx.x * R;
    row_tile<KIND, T, R>(W, x + (long) b0 * cols, cols, r0, min(R, rows - r0), min(T, batch - b0), part,
                         out + (long) b0 * rows, rows);
}

// The experts kernels' passes over their weights: the host picks the fewest tiling rows that cover
// the busiest expert, so below the largest tiling one pass covers every expert. Saying so at
// compile time takes fp8's single-token kernels from 64 to 48 registers (gate+up) and 78 to 72
// (down, four rows a block; scripts/device/registers.sh): a loop the compiler cannot see run once
// keeps each row's addresses and scales live across passes. bf16 is left as measured.
template <int KIND, int T>
__device__ __forceinline__ int passes(int n) {
    return KIND == KIND_FP8 && T < 8 ? 1 : n;
}

// All experts of one message in one launch (MoE decode is otherwise a launch per expert): block
// (r, i) computes row r for every token of expert i, T tokens at a time. table holds six addresses
// per expert (gate, gate scales, up, up scales, down, down scales); expert i's tokens are rows
// [starts[i], starts[i+1]) of xs / h / ys. Experts with more than maxRows tokens are left to cuBLAS.
template <int KIND, int T>
__device__ void experts_gate_up(const unsigned long long* table, const int* starts, int scaleCols, int blockRows,
                                int blockCols, const float* xs, float* h, int inter, int hidden, int maxRows) {
    constexpr int R = Rows<KIND, T>::GATE_UP;
    __shared__ float part[2 * R * T][THREADS / 32];
    int i = blockIdx.y;
    int s0 = starts[i];
    int n = starts[i + 1] - s0;
    if (n == 0 || n > maxRows) {
        return;
    }
    const unsigned long long* e = table + 6 * i;
    Weights G{(const void*) e[0], (const float*) e[1], scaleCols, blockRows, blockCols};
    Weights U{(const void*) e[2], (const float*) e[3], scaleCols, blockRows, blockCols};
    int r0 = blockIdx.x * R;
    for (int b0 = 0; b0 < passes<KIND, T>(n); b0 += T) {
        gate_up_tile<KIND, T, R>(G, U, xs + (long) (s0 + b0) * hidden, hidden, r0, min(R, inter - r0), min(T, n - b0),
                                 part, h + (long) (s0 + b0) * inter, inter);
    }
}

template <int KIND, int T>
__device__ void experts_down(const unsigned long long* table, const int* starts, int scaleCols, int blockRows,
                             int blockCols, const float* h, float* ys, int hidden, int inter, int maxRows) {
    constexpr int R = Rows<KIND, T>::MATVEC;
    __shared__ float part[R * T][THREADS / 32];
    int i = blockIdx.y;
    int s0 = starts[i];
    int n = starts[i + 1] - s0;
    if (n == 0 || n > maxRows) {
        return;
    }
    const unsigned long long* e = table + 6 * i;
    Weights D{(const void*) e[4], (const float*) e[5], scaleCols, blockRows, blockCols};
    int r0 = blockIdx.x * R;
    for (int b0 = 0; b0 < passes<KIND, T>(n); b0 += T) {
        row_tile<KIND, T, R>(D, h + (long) (s0 + b0) * inter, inter, r0, min(R, hidden - r0), min(T, n - b0), part,
                             ys + (long) (s0 + b0) * hidden, hidden);
    }
}

// store(r, c, o) for every eight weights W[r, c .. c+8), widened into o, split over the grid's threads
// (one load and one scale per eight, where rows can be read eight at a time: see vectorised).
template <int KIND, typename Store>
__device__ __forceinline__ void for_each_eight(const Weights& W, int rows, int cols, Store store) {
    int per = cols / 8;
    long n = (long) rows * per;
    for (long j = (long) blockIdx.x * blockDim.x + threadIdx.x; j < n; j += (long) gridDim.x * blockDim.x) {
        int r = (int) (j / per);
        int c = (int) (j - (long) r * per) * 8;
        float o[8];
        load8<KIND>(W, cols, r, c, o);
        store(r, c, o);
    }
}

// dst[i] = W[i] widened, i in [0, rows*cols): the fp32 operand of a cuBLAS product for large batches.
template <int KIND>
__device__ void widen(Weights W, float* dst, int rows, int cols) {
    if (vectorised<KIND>(W, cols)) {
        for_each_eight<KIND>(W, rows, cols, [=](int r, int c, const float* o) {
            float4* d = reinterpret_cast<float4*>(dst + (long) r * cols + c);
            d[0] = make_float4(o[0], o[1], o[2], o[3]);
            d[1] = make_float4(o[4], o[5], o[6], o[7]);
        });
        return;
    }
    long n = (long) rows * cols;
    for (long i = (long) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long) gridDim.x * blockDim.x) {
        dst[i] = load1<KIND>(W, cols, (int) (i / cols), (int) (i % cols));
    }
}

#define TILED(NAME, KIND, T, SUFFIX)                                                                      \
    extern "C" __device__ int matvec##SUFFIX##_##NAME##_rows = Rows<KIND, T>::MATVEC;                           \
    extern "C" __device__ int experts_gate_up##SUFFIX##_##NAME##_rows = Rows<KIND, T>::GATE_UP;                 \
    extern "C" __device__ int experts_down##SUFFIX##_##NAME##_rows = Rows<KIND, T>::MATVEC;                     \
    extern "C" __global__ void matvec##SUFFIX##_##NAME(const void* w, const float* scales, int scaleCols,       \
            int blockRows, int blockCols, const float* x, float* out, int rows, int cols, int batch) {          \
        matvec<KIND, T>(Weights{w, scales, scaleCols, blockRows, blockCols}, x, out, rows, cols, batch);        \
    }                                                                                                           \
    extern "C" __global__ void experts_gate_up##SUFFIX##_##NAME(const unsigned long long* table, const int* starts, \
            int scaleCols, int blockRows, int blockCols, const float* xs, float* h, int inter, int hidden,        \
            int maxRows) {                                                                                      \
        experts_gate_up<KIND, T>(table, starts, scaleCols, blockRows, blockCols, xs, h, inter, hidden, maxRows); \
    }                                                                                                           \
    extern "C" __global__ void experts_down##SUFFIX##_##NAME(const unsigned long long* table, const int* starts, \
            int scaleCols, int blockRows, int blockCols, const float* h, float* ys, int hidden, int inter,        \
            int maxRows) {                                                                                      \
        experts_down<KIND, T>(table, starts, scaleCols, blockRows, blockCols, h, ys, hidden, inter, maxRows);   \
    }

// Every kernel in four tilings, 1, 2, 4 and 8 batch rows per pass over the weights: the fewest that
// cover an expert's rows in one pass keep registers low and blocks resident (decode is mostly 1).
#define ENTRY_POINTS(NAME, KIND)                                                                          \
    TILED(NAME, KIND, 1, 1)                                                                               \
    TILED(NAME, KIND, 2, 2)                                                                               \
    TILED(NAME, KIND, 4, 4)                                                                               \
    TILED(NAME, KIND, 8, 8)                                                                               \
    extern "C" __global__ void widen_##NAME(const void* w, const float* scales, int scaleCols, int blockRows, \
            int blockCols, float* dst, int rows, int cols) {                                              \
        widen<KIND>(Weights{w, scales, scaleCols, blockRows, blockCols}, dst, rows, cols);                 \
    }

ENTRY_POINTS(f32, KIND_F32)
ENTRY_POINTS(bf16, KIND_BF16)
ENTRY_POINTS(fp8, KIND_FP8)

// h[i] = silu(g[i]) * u[i] (after cuBLAS products of the gate and up halves).
extern "C" __global__ void swiglu(const float* g, const float* u, float* h, long n) {
    for (long i = (long) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long) gridDim.x * blockDim.x) {
        float v = g[i];
        h[i] = v / (1.0f + expf(-v)) * u[i];
    }
}

// Deterministic pseudo-random weights for benchmarks at full model size, made on the device (no
// host copy of tens of gigabytes): bf16 values in about [-scale, scale), e4m3 codes likewise.
__device__ __forceinline__ unsigned int mix(unsigned long long i, unsigned int seed) {
    unsigned long long z = i * 0x9E3779B97F4A7C15ull + seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (unsigned int) (z ^ (z >> 31));
}

extern "C" __global__ void fill_bf16(unsigned short* dst, long n, unsigned int seed, float scale) {
    for (long i = (long) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long) gridDim.x * blockDim.x) {
        float v = ((mix(i, seed) >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * scale;
        dst[i] = (unsigned short) (__float_as_uint(v) >> 16);
    }
}

extern "C" __global__ void fill_fp8(unsigned char* dst, long n, unsigned int seed) {
    for (long i = (long) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long) gridDim.x * blockDim.x) {
        unsigned int c = mix(i, seed) & 0xffu;
        // keep away from NaN codes and the largest magnitudes
        dst[i] = (unsigned char) ((c & 0x80u) | min(c & 0x7fu, 0x5fu));
    }
}

extern "C" __global__ void fill_f32(float* dst, long n, float value) {
    for (long i = (long) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long) gridDim.x * blockDim.x) {
        dst[i] = value;
    }
}

// An expert worker's message on the device. xs[p] = x[rowOf[p]]: each (row, expert) pair's input,
// pairs in expert order.
extern "C" __global__ void gather_rows(const float* x, const int* rowOf, float* xs, int pairs, int hidden) {
    long n = (long) pairs * hidden;
    for (long i = (long) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long) gridDim.x * blockDim.x) {
        int p = (int) (i / hidden);
        xs[i] = x[(long) rowOf[p] * hidden + (i % hidden)];
    }
}

// out[r] = sum over row r's pairs, in expert order, of (double) (w[p] * ys[p]): each term rounded to
// float and summed in double, exactly as the CPU executor combines (the same bits for the same ys).
// Row r's pairs are pairOf[first[r] .. first[r+1]).
extern "C" __global__ void combine_rows(const float* ys, const int* first, const int* pairOf, const float* w,
                                        double* out, int rows, int hidden) {
    long n = (long) rows * hidden;
    for (long i = (long) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long) gridDim.x * blockDim.x) {
        int r = (int) (i / hidden);
        int c = (int) (i % hidden);
        double s = 0.0;
        for (int j = first[r]; j < first[r + 1]; j++) {
            int p = pairOf[j];
            s += (double) (w[p] * ys[(long) p * hidden + c]);
        }
        out[i] = s;
    }
}

// The bf16-activation path (tensor cores through cuBLAS; a faster path with its own tolerance):
// fp32 -> bf16, rounding to nearest even (NaN kept a NaN).
__device__ __forceinline__ unsigned short to_bf16(float v) {
    unsigned int b = __float_as_uint(v);
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return (unsigned short) ((b >> 16) | 0x40u);
    }
    return (unsigned short) ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

extern "C" __global__ void narrow_activations(const float* x, unsigned short* out, long n) {
    for (long i = (long) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long) gridDim.x * blockDim.x) {
        out[i] = to_bf16(x[i]);
    }
}

// Weights stored as f32 or fp8 rounded to bf16 for the tensor cores (bf16 weights are used as stored).
template <int KIND>
__device__ void narrow_weights(Weights W, unsigned short* dst, int rows, int cols) {
    if (vectorised<KIND>(W, cols)) {
        for_each_eight<KIND>(W, rows, cols, [=](int r, int c, const float* o) {
            *reinterpret_cast<uint4*>(dst + (long) r * cols + c) = make_uint4(
                    to_bf16(o[0]) | (unsigned int) to_bf16(o[1]) << 16, to_bf16(o[2]) | (unsigned int) to_bf16(o[3]) << 16,
                    to_bf16(o[4]) | (unsigned int) to_bf16(o[5]) << 16, to_bf16(o[6]) | (unsigned int) to_bf16(o[7]) << 16);
        });
        return;
    }
    long n = (long) rows * cols;
    for (long i = (long) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long) gridDim.x * blockDim.x) {
        dst[i] = to_bf16(load1<KIND>(W, cols, (int) (i / cols), (int) (i % cols)));
    }
}

extern "C" __global__ void narrow_f32(const void* w, const float* scales, int scaleCols, int blockRows, int blockCols,
                                      unsigned short* dst, int rows, int cols) {
    narrow_weights<KIND_F32>(Weights{w, scales, scaleCols, blockRows, blockCols}, dst, rows, cols);
}

extern "C" __global__ void narrow_fp8(const void* w, const float* scales, int scaleCols, int blockRows, int blockCols,
                                      unsigned short* dst, int rows, int cols) {
    narrow_weights<KIND_FP8>(Weights{w, scales, scaleCols, blockRows, blockCols}, dst, rows, cols);
}
