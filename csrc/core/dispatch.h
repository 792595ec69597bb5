#pragma once
// Run-time choice of the kernel table: best ISA the CPU supports (avx512 > avx2 > generic),
// unless FASTCONV_ISA or set_isa() forces one.
#include <string>
#include <vector>

#include "kernels/kernel_table.h"

namespace fastconv {

const KernelTable& active_kernels();
std::vector<std::string> available_isas();
// Throws std::invalid_argument for an unknown name, std::runtime_error if the CPU lacks it.
void set_isa(const std::string& name);
// Reads FASTCONV_ISA (if set) once, at import.
void init_isa_from_environment();

}  // namespace fastconv
