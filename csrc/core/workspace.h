#pragma once
// Per-thread scratch buffers, reused between calls so the hot path does not allocate every step.
// Each OS thread owns its buffers, so concurrent callers (several Python threads releasing the
// GIL, each with its own OpenMP team) never share scratch memory.
#include <cstddef>
#include <cstdlib>
#include <new>

namespace fastconv {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }

  float* get(std::size_t floats) {
    if (floats > capacity_) {
      std::free(data_);
      data_ = nullptr;
      capacity_ = 0;
      const std::size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data_) throw std::bad_alloc();
      capacity_ = floats;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  std::size_t capacity_ = 0;
};

// Slot names keep unrelated uses of scratch memory in one thread from overwriting each other.
enum class Scratch { kPackA, kPackB, kPartial, kZeros, kColumns, kWindow, kPanels, kCount };

inline float* thread_scratch(Scratch slot, std::size_t floats) {
  thread_local AlignedBuffer buffers[static_cast<int>(Scratch::kCount)];
  return buffers[static_cast<int>(slot)].get(floats);
}

}  // namespace fastconv
