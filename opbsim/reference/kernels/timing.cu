// Helpers of the timing harness (reference/timing.py), not ISA instructions: a spin that keeps
// the GPU busy while the host enqueues the measured launches (so the measurement never
// includes the host's launch latency), and a write over a buffer larger than L2 (so every
// measurement starts with a cold cache, as a layer's weights would).
#include "numerics.cuh"

// Busy-wait for `cycles` SM clock cycles (one thread).
extern "C" __global__ void opb_spin(long long cycles) {
    const long long start = clock64();
    while (clock64() - start < cycles) {
    }
}

// buf[i] = value for i < n, grid-stride.
extern "C" __global__ void opb_flush(unsigned int* buf, long long n, unsigned int value) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        buf[i] = value;
    }
}
