#pragma once
// The CUDA kernels of DirMoE's routing chain (routing_chain_cuda.cu): the element-wise passes of
// router/routing_chain_element.h, one thread per token, declared without any CUDA or LibTorch header
// so that dirmoe_routing_chain.cpp, compiled by the host compiler, can call them. Built only where
// LibTorch has CUDA and nvcc is found (lib/CMakeLists.txt defines DIRMOE_CUDA_KERNELS then); each
// runs on CUDA device `device`'s current stream, every pointer on that device.
#include "dirmoe/router/routing_chain_element.h"

namespace dirmoe::cuda_chain {

void launch(const chain_element::ChainBeforeDraw<float>& pass, int device);
void launch(const chain_element::ChainBeforeDraw<double>& pass, int device);
void launch(const chain_element::ChainAfterDraw<float>& pass, int device);
void launch(const chain_element::ChainAfterDraw<double>& pass, int device);
void launch(const chain_element::ChainBackwardPair<float>& pass, int device);
void launch(const chain_element::ChainBackwardPair<double>& pass, int device);

}  // namespace dirmoe::cuda_chain
