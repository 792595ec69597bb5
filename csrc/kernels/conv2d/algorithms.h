#pragma once
// The convolution algorithms of each pass as an ordered list (in the manner of oneDNN's
// implementation list): each has a name and says whether it can take a problem, and why not.
// The setting "auto" (the default) times every algorithm that can take a problem the first time
// a (pass, shape without the batch size, thread count, ISA) is met, on the real call, and keeps the
// fastest for the process; a forced name runs that algorithm where it can take the problem and
// auto's choice elsewhere; "direct" is auto without Winograd.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/kernel_table.h"
#include "kernels/pool2d.h"

namespace fastconv {

enum class ConvPass { kForward, kInputGradient, kWeightGradient };

// One call's operands; which are read depends on the pass (forward: x, kernel, bias, out = y,
// relu; input gradient: dy, kernel, out = dx; weight gradient: x, dy, out = dkernel, dbias).
struct ConvOperands {
  const float* x = nullptr;
  const float* kernel = nullptr;
  const float* bias = nullptr;
  const float* dy = nullptr;
  float* out = nullptr;
  float* dbias = nullptr;
  bool relu = false;
};

// Runs the pass with the algorithm the setting picks (the entry points of forward.cpp,
// backward_input.cpp and backward_weight.cpp call this).
void run_conv_pass(ConvPass pass, const Conv2dShape& s, const ConvOperands& ops);

// The forward pass followed by a max pooling whose output alone is wanted (inference): where
// the pooling is 2x2 with stride 2 and Winograd is the algorithm the setting would run (forced,
// or auto's choice for this shape, once measured), Winograd pools in its output transform and
// this returns true; otherwise false, and the caller runs the two passes.
bool run_conv_forward_max_pool(const Conv2dShape& s, const Pool2dShape& p, const ConvOperands& ops,
                               float* pooled, uint8_t* argmax);

const char* conv_pass_name(ConvPass pass);
// The algorithms of a pass, in list order.
std::vector<std::string> conv_algorithm_names(ConvPass pass);
// For each algorithm of the pass, in list order: "" when it can take the problem with the active
// kernel table, else why not.
std::vector<std::pair<std::string, std::string>> conv_algorithm_reasons(ConvPass pass,
                                                                        const Conv2dShape& s);

// "auto", "direct" or an algorithm's name; throws std::invalid_argument naming the choices.
void set_conv_algorithm(const std::string& name);
std::string conv_algorithm();
std::vector<std::string> conv_algorithm_settings();

// What auto chose so far (the process's cache), and the recent calls (up to 256, oldest first).
struct ConvChoice {
  std::string pass, shape, isa, algorithm;
  int threads;
  std::map<std::string, double> milliseconds;  // each candidate's best time when measured
};
struct ConvRun {
  std::string pass, shape, algorithm, how;
};
std::vector<ConvChoice> conv_algorithm_choices();
void clear_conv_algorithm_choices();
std::vector<ConvRun> last_conv_algorithms(bool clear);

}  // namespace fastconv
