//! Block quantization formats in GGUF's byte layout, with CPU (de)quantization used as the
//! reference for the GPU kernels.
