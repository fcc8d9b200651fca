// T.print from device code (TileLang's format): every line names the block and the thread.
// Values arrive widened (signed integers as long long, unsigned as unsigned long long, floats as
// double) with the name of their dtype. NVRTC-clean: device printf only.
#pragma once

namespace tsir {

#define TSIR_PRINT_IDS blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z

__device__ __forceinline__ void print_msg(const char* msg) {
  printf("msg='%s' BlockIdx=(%d, %d, %d), ThreadIdx=(%d, %d, %d)\n", msg, TSIR_PRINT_IDS);
}

__device__ __forceinline__ void print_value(const char* msg, const char* dtype, long long v) {
  printf("msg='%s' BlockIdx=(%d, %d, %d), ThreadIdx=(%d, %d, %d): dtype=%s value=%lld\n", msg,
         TSIR_PRINT_IDS, dtype, v);
}
__device__ __forceinline__ void print_value(const char* msg, const char* dtype, unsigned long long v) {
  printf("msg='%s' BlockIdx=(%d, %d, %d), ThreadIdx=(%d, %d, %d): dtype=%s value=%llu\n", msg,
         TSIR_PRINT_IDS, dtype, v);
}
__device__ __forceinline__ void print_value(const char* msg, const char* dtype, double v) {
  printf("msg='%s' BlockIdx=(%d, %d, %d), ThreadIdx=(%d, %d, %d): dtype=%s value=%f\n", msg,
         TSIR_PRINT_IDS, dtype, v);
}

__device__ __forceinline__ void print_buffer_value(const char* msg, const char* buffer, int index,
                                                   const char* dtype, long long v) {
  printf("msg='%s' BlockIdx=(%d, %d, %d), ThreadIdx=(%d, %d, %d): buffer=%s, index=%d, dtype=%s "
         "value=%lld\n", msg, TSIR_PRINT_IDS, buffer, index, dtype, v);
}
__device__ __forceinline__ void print_buffer_value(const char* msg, const char* buffer, int index,
                                                   const char* dtype, unsigned long long v) {
  printf("msg='%s' BlockIdx=(%d, %d, %d), ThreadIdx=(%d, %d, %d): buffer=%s, index=%d, dtype=%s "
         "value=%llu\n", msg, TSIR_PRINT_IDS, buffer, index, dtype, v);
}
__device__ __forceinline__ void print_buffer_value(const char* msg, const char* buffer, int index,
                                                   const char* dtype, double v) {
  printf("msg='%s' BlockIdx=(%d, %d, %d), ThreadIdx=(%d, %d, %d): buffer=%s, index=%d, dtype=%s "
         "value=%f\n", msg, TSIR_PRINT_IDS, buffer, index, dtype, v);
}

#undef TSIR_PRINT_IDS

}  // namespace tsir
