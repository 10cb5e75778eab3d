#pragma once
// A process-wide switch for dirmoe's CUDA kernels of DirMoE's element-wise work: the routing chain's
// passes (routing_chain_cuda.cu) and the Dirichlet KL node (dirichlet_kl_cuda.cu). On by default, where
// the build has them (lib/CMakeLists.txt). Off, a CUDA run computes the same quantities as tensor
// operators, as it did before the kernels: `bench_suite --cuda-element-kernels false`, so that one GPU
// session times DirMoE with and without them (scripts/gpu_check.py's dirmoe_operators run). The CPU is
// not affected: its loops run the same per-token code either way. The router-noise kernels are not
// switched (their host fallback copies every draw across; bench/README.md, "The GPU figures").
#include <c10/core/Device.h>

namespace dirmoe {

/// Whether the CUDA element kernels are used where built (default true).
bool cuda_element_kernels_enabled();

/// Turns them on or off for the whole process, for the forwards that start after it; a backward runs
/// where its forward ran (the routing chain saves its choice, and the KL node exists only where its
/// kernels do).
void set_cuda_element_kernels_enabled(bool enabled);

/// Whether DirMoE's element-wise work (the routing chain's passes, the Dirichlet KL's rows) runs as
/// dirmoe's own per-row code on `device`: always on the CPU (its loops); on CUDA where the build has
/// the kernels and they are enabled; elsewhere not (tensor operators).
bool element_passes_on(const c10::Device& device);

}  // namespace dirmoe
