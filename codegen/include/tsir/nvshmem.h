// tsir: NVSHMEM's device API (nvshmem.h, nvshmemx.h) under NVRTC. See tsir/runtime/nvshmem.py for
// the options that go with it (-D__NVSHMEM_NUMBA_SUPPORT__ -default-device and the include paths).
#pragma once

// NVSHMEM's build options first, so the undefine below sticks (the header is `#pragma once`).
// NVSHMEM 3.4 then includes the IBGDA transport's device code, which needs rdma-core's
// infiniband/mlx5dv.h (NVRTC cannot parse it); tsir kernels reach peers over NVLink / PCIe P2P or
// NVSHMEM's proxy, and the device-state layout does not depend on this macro. 3.8 guards it itself.
#include "non_abi/nvshmem_build_options.h"
#undef NVSHMEM_IBGDA_SUPPORT
#undef NVSHMEM_IBGDA_SUPPORT_GPUMEM_ONLY

#if defined(__CUDACC_RTC__)
// NVSHMEM 3.4's reduce templates name three std:: traits; NVRTC has no standard library, CCCL does.
#include <cuda/std/type_traits>
namespace std {
using cuda::std::is_integral;
using cuda::std::is_signed;
using cuda::std::is_unsigned;
}  // namespace std
#endif

#include <nvshmem.h>
#include <nvshmemx.h>
