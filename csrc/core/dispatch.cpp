#include "core/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include "core/cpu_features.h"

namespace fastconv {
namespace {

const KernelTable* table_for(const std::string& name) {
  if (name == "generic") return &generic_kernel_table();
#if defined(FASTCONV_HAVE_X86_KERNELS)
  if (name == "avx2" && cpu_features().avx2_fma) return &avx2_kernel_table();
  if (name == "avx512" && cpu_features().avx512) return &avx512_kernel_table();
#endif
  return nullptr;
}

const KernelTable* best_table() {
  const std::vector<std::string> isas = available_isas();
  return table_for(isas.back());
}

std::atomic<const KernelTable*>& active() {
  static std::atomic<const KernelTable*> table{best_table()};
  return table;
}

}  // namespace

std::vector<std::string> available_isas() {
  std::vector<std::string> isas = {"generic"};
#if defined(FASTCONV_HAVE_X86_KERNELS)
  if (cpu_features().avx2_fma) isas.push_back("avx2");
  if (cpu_features().avx512) isas.push_back("avx512");
#endif
  return isas;
}

const KernelTable& active_kernels() { return *active().load(std::memory_order_acquire); }

void set_isa(const std::string& name) {
  if (name != "generic" && name != "avx2" && name != "avx512")
    throw std::invalid_argument("unknown ISA '" + name +
                                "': expected one of 'generic', 'avx2', 'avx512'");
  const KernelTable* table = table_for(name);
  if (!table) {
    std::string have;
    for (const std::string& isa : available_isas()) have += (have.empty() ? "" : ", ") + isa;
    throw std::runtime_error("this CPU (or this build) cannot run the '" + name +
                             "' kernels; available: " + have);
  }
  active().store(table, std::memory_order_release);
}

void init_isa_from_environment() {
  const char* forced = std::getenv("FASTCONV_ISA");
  if (!forced || !*forced) return;
  try {
    set_isa(forced);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("FASTCONV_ISA=") + forced + ": " + e.what());
  }
}

}  // namespace fastconv
