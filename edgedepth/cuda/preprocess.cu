// Fused preprocessing: uint8 BGR HWC frame -> resized, letterboxed, normalised NCHW model input.
//
// One thread per output pixel does all of it: OpenCV INTER_LINEAR bilinear sampling (half-pixel centres,
// borders replicated), BGR->RGB by channel choice, (x / 255 - mean) / std as one multiply-add, zeros in the
// padding, and the NCHW store in fp32 or fp16, straight into the engine's input buffer.
//
// The arithmetic lives in preprocess_pixel(), compiled for the GPU by nvcc/pycuda and for the host by the
// tests (through a thin shim that defines the CUDA qualifiers away), so the same source is what is checked
// against edgedepth.preprocess, the CPU reference.

#ifndef __CUDACC__
#define __host__
#define __device__
#define __forceinline__ inline
#include <math.h>
#include <stdint.h>
#else
#include <cuda_fp16.h>
#include <stdint.h>
#endif

struct PreprocessParams {
    int src_h, src_w, src_stride;   // source frame, stride in bytes (>= 3 * src_w)
    int out_h, out_w;               // model input
    int scaled_h, scaled_w;         // the resized image inside it
    int pad_top, pad_left;          // where it sits (letterbox) -- 0, 0 for stretch
    float scale_y, scale_x;         // src_h / scaled_h, src_w / scaled_w (OpenCV's inverse scale)
    float mul[3], add[3];           // per output channel: value = pixel * mul + add
    int src_channel[3];             // which BGR channel feeds output channel c (2, 1, 0 for RGB models)
};

// OpenCV INTER_LINEAR source coordinate: f = (d + 0.5) * scale - 0.5; index floor(f), weight f - floor(f);
// a sample left of the first or right of the last pixel takes that edge pixel.
__host__ __device__ __forceinline__ void linear_tap(int d, float scale, int size, int* i0, int* i1, float* w1) {
    float f = ((float)d + 0.5f) * scale - 0.5f;
    int i = (int)floorf(f);
    float w = f - (float)i;
    if (i < 0) { i = 0; w = 0.0f; }
    if (i >= size - 1) { i = size - 1; w = 0.0f; }
    *i0 = i;
    *i1 = i + 1 < size ? i + 1 : size - 1;
    *w1 = w;
}

// The value of output channel c at model pixel (x, y).
__host__ __device__ __forceinline__ float preprocess_pixel(const uint8_t* src, const PreprocessParams* p, int x, int y, int c) {
    int sy = y - p->pad_top, sx = x - p->pad_left;
    if (sy < 0 || sx < 0 || sy >= p->scaled_h || sx >= p->scaled_w) {
        return 0.0f;  // padding: the normalised mean
    }
    int y0, y1, x0, x1;
    float wy, wx;
    linear_tap(sy, p->scale_y, p->src_h, &y0, &y1, &wy);
    linear_tap(sx, p->scale_x, p->src_w, &x0, &x1, &wx);
    int ch = p->src_channel[c];
    const uint8_t* r0 = src + (long)y0 * p->src_stride;
    const uint8_t* r1 = src + (long)y1 * p->src_stride;
    // Horizontal first, then vertical, as OpenCV's separable resize does.
    float top = (float)r0[x0 * 3 + ch] * (1.0f - wx) + (float)r0[x1 * 3 + ch] * wx;
    float bottom = (float)r1[x0 * 3 + ch] * (1.0f - wx) + (float)r1[x1 * 3 + ch] * wx;
    float value = top * (1.0f - wy) + bottom * wy;
    return value * p->mul[c] + p->add[c];
}

#ifdef __CUDACC__
template <typename T> __device__ __forceinline__ T to_output(float v);
template <> __device__ __forceinline__ float to_output<float>(float v) { return v; }
template <> __device__ __forceinline__ __half to_output<__half>(float v) { return __float2half(v); }

// One thread per output pixel; the two entry points differ only in the output type.
template <typename T>
__device__ __forceinline__ void preprocess_to_nchw(const uint8_t* src, T* dst, const PreprocessParams& p) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= p.out_w || y >= p.out_h) return;
    long plane = (long)p.out_h * p.out_w;
    for (int c = 0; c < 3; ++c) {
        dst[c * plane + (long)y * p.out_w + x] = to_output<T>(preprocess_pixel(src, &p, x, y, c));
    }
}

extern "C" __global__ void preprocess_bgr_to_nchw_f32(const uint8_t* src, float* dst, PreprocessParams p) {
    preprocess_to_nchw(src, dst, p);
}

extern "C" __global__ void preprocess_bgr_to_nchw_f16(const uint8_t* src, __half* dst, PreprocessParams p) {
    preprocess_to_nchw(src, dst, p);
}
#else
// Host entry point for the tests: the same per-pixel function, looped over the grid.
extern "C" void preprocess_bgr_to_nchw_f32_host(const uint8_t* src, float* dst, const PreprocessParams* p) {
    long plane = (long)p->out_h * p->out_w;
    for (int y = 0; y < p->out_h; ++y)
        for (int x = 0; x < p->out_w; ++x)
            for (int c = 0; c < 3; ++c)
                dst[c * plane + (long)y * p->out_w + x] = preprocess_pixel(src, p, x, y, c);
}
#endif
