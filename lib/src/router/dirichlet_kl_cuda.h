#pragma once
// The CUDA kernels of the Dirichlet KL node (dirichlet_kl_cuda.cu): the rows of
// router/dirichlet_kl_element.h, one thread per row, declared without any CUDA or LibTorch header so
// that dirichlet_kl.cpp, compiled by the host compiler, can call them. Built only where LibTorch has
// CUDA and nvcc is found (lib/CMakeLists.txt defines DIRMOE_CUDA_KERNELS then); each runs on CUDA device
// `device`'s current stream, every pointer on that device.
#include "dirmoe/router/dirichlet_kl_element.h"

namespace dirmoe::cuda_kl {

void launch(const kl_element::DirichletKlForward<float>& pass, int device);
void launch(const kl_element::DirichletKlForward<double>& pass, int device);
void launch(const kl_element::DirichletKlBackward<float>& pass, int device);
void launch(const kl_element::DirichletKlBackward<double>& pass, int device);

}  // namespace dirmoe::cuda_kl
