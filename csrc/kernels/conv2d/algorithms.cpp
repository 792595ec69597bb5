// The algorithm list of each convolution pass, in one place, and the choice among them.
//
// Error bounds against the float64 reference (tests/kernels/test_conv_algorithms.py, every ISA,
// max |error| / max |reference|): the direct algorithms (igemm, few_channel, col2im, rowgemm,
// patches) sum the same products in other orders, and stay under 1e-6 on the tests' shapes;
// Winograd F(2x2, 3x3) adds its transforms' rounding and stays under 2e-6: both within the 1e-5
// the tests hold every algorithm to.
#include "kernels/conv2d/algorithms.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <tuple>

#include "core/dispatch.h"
#include "core/parallel.h"
#include "kernels/conv2d/few_channel.h"
#include "kernels/conv2d/passes.h"
#include "kernels/conv2d/winograd.h"

namespace fastconv {
namespace {

using namespace conv2d_detail;

// "" when the algorithm can take the problem, else why not.
using CannotTake = std::string (*)(const KernelTable&, const Conv2dShape&);
// Runs it; false only when Winograd met a value that is not finite (see winograd.h).
using Run = bool (*)(const KernelTable&, const Conv2dShape&, const ConvOperands&);

struct Algorithm {
  const char* name;
  bool winograd;
  CannotTake cannot_take;
  Run run;
};

std::string takes_any(const KernelTable&, const Conv2dShape&) { return ""; }

std::string winograd_cannot_take(const KernelTable&, const Conv2dShape& s) {
  if (s.kernel_h != 3 || s.kernel_w != 3) return "Winograd F(2x2, 3x3) needs a 3x3 kernel";
  if (s.stride_h != 1 || s.stride_w != 1) return "Winograd needs stride 1";
  if (s.dilation_h != 1 || s.dilation_w != 1) return "Winograd needs dilation 1";
  if (s.pad_top > 2 || s.pad_left > 2) return "Winograd's input gradient needs padding <= 2";
  return "";
}

std::string few_channel_cannot_take(const KernelTable&, const Conv2dShape& s) {
  if (s.in_c > kSmallDepthChannels) return "the few-channel path takes 1 to 4 input channels";
  return "";
}

std::string few_channel_dx_cannot_take(const KernelTable& kt, const Conv2dShape& s) {
  if (s.stride_h != 1 || s.stride_w != 1) return "the few-channel input gradient needs stride 1";
  return few_channel_cannot_take(kt, s);
}

// The GEMM tiles of the weight gradient run a row per input channel: an image's 1 to 4 channels
// would fill a few rows of each tile (the packed one pads them with zeros), and the patch sums
// read them in place at 2-4x their speed (A.conv1, B.conv1: python bench/conv_algorithms.py).
std::string gemm_weight_cannot_take(const KernelTable&, const Conv2dShape& s) {
  if (s.in_c <= kSmallDepthChannels)
    return "1 to 4 input channels (an image's) go to the patch sums";
  return "";
}

// The weight gradient's row GEMM with the table's tile number Tile (see kRowGemmTiles).
template <int Tile>
bool run_rowgemm(const KernelTable& kt, const Conv2dShape& s, const ConvOperands& o) {
  backward_weight_rowgemm(kt, kt.rowgemm[Tile], s, o.x, o.dy, o.out, o.dbias);
  return true;
}

// The lists, in order of preference: where the choice is not measured (a forced algorithm's
// fallback after a non-finite Winograd result), the first direct one that can take it runs.
const Algorithm kForward[] = {
    {"few_channel", false, few_channel_cannot_take,
     [](const KernelTable& kt, const Conv2dShape& s, const ConvOperands& o) {
       forward_few_channel(kt, s, o.x, o.kernel, o.bias, o.out, o.relu);
       return true;
     }},
    {"winograd", true, winograd_cannot_take,
     [](const KernelTable& kt, const Conv2dShape& s, const ConvOperands& o) {
       return winograd_conv2d_forward(kt, s, o.x, o.kernel, o.bias, o.out, o.relu);
     }},
    {"igemm", false, takes_any,
     [](const KernelTable& kt, const Conv2dShape& s, const ConvOperands& o) {
       forward_igemm(kt, s, o.x, o.kernel, o.bias, o.out, o.relu);
       return true;
     }},
};

const Algorithm kInputGradient[] = {
    {"few_channel", false, few_channel_dx_cannot_take,
     [](const KernelTable& kt, const Conv2dShape& s, const ConvOperands& o) {
       backward_input_few_channel(kt, s, o.dy, o.kernel, o.out);
       return true;
     }},
    {"winograd", true, winograd_cannot_take,
     [](const KernelTable& kt, const Conv2dShape& s, const ConvOperands& o) {
       return winograd_conv2d_backward_input(kt, s, o.dy, o.kernel, o.out);
     }},
    {"col2im", false, takes_any,
     [](const KernelTable& kt, const Conv2dShape& s, const ConvOperands& o) {
       backward_input_col2im(kt, s, o.dy, o.kernel, o.out);
       return true;
     }},
    {"igemm", false, takes_any,
     [](const KernelTable& kt, const Conv2dShape& s, const ConvOperands& o) {
       backward_input_igemm(kt, s, o.dy, o.kernel, o.out);
       return true;
     }},
};

const Algorithm kWeightGradient[] = {
    {"rowgemm", false, gemm_weight_cannot_take, run_rowgemm<0>},
    {"rowgemm_tall", false, gemm_weight_cannot_take, run_rowgemm<1>},
    {"packed", false, gemm_weight_cannot_take,
     [](const KernelTable& kt, const Conv2dShape& s, const ConvOperands& o) {
       backward_weight_packed(kt, s, o.x, o.dy, o.out, o.dbias);
       return true;
     }},
    {"winograd", true, winograd_cannot_take,
     [](const KernelTable& kt, const Conv2dShape& s, const ConvOperands& o) {
       return backward_weight_winograd(kt, s, o.x, o.dy, o.out, o.dbias);
     }},
    {"patches", false, takes_any,
     [](const KernelTable& kt, const Conv2dShape& s, const ConvOperands& o) {
       backward_weight_patches(kt, s, o.x, o.dy, o.out, o.dbias);
       return true;
     }},
};

struct List {
  const Algorithm* begin;
  const Algorithm* end;
};

List algorithms(ConvPass pass) {
  switch (pass) {
    case ConvPass::kForward:
      return {std::begin(kForward), std::end(kForward)};
    case ConvPass::kInputGradient:
      return {std::begin(kInputGradient), std::end(kInputGradient)};
    default:
      return {std::begin(kWeightGradient), std::end(kWeightGradient)};
  }
}

// The setting: an index into settings(): 0 "auto", 1 "direct", 2 "deterministic", then the
// algorithm names (kFirstForced on).
constexpr int kFirstForced = 3;
std::atomic<int>& setting() {
  static std::atomic<int> index{0};
  return index;
}

const std::vector<std::string>& settings() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v{"auto", "direct", "deterministic"};
    for (ConvPass pass :
         {ConvPass::kForward, ConvPass::kInputGradient, ConvPass::kWeightGradient}) {
      const List list = algorithms(pass);
      for (const Algorithm* a = list.begin; a != list.end; ++a)
        if (std::find(v.begin(), v.end(), a->name) == v.end()) v.push_back(a->name);
    }
    return v;
  }();
  return names;
}

std::string shape_text(const Conv2dShape& s) {
  auto x = [](int64_t a, int64_t b) { return std::to_string(a) + "x" + std::to_string(b); };
  return std::to_string(s.batch) + "x" + x(s.in_h, s.in_w) + "x" + std::to_string(s.in_c) + " k" +
         x(s.kernel_h, s.kernel_w) + " ->" + x(s.out_h, s.out_w) + "x" + std::to_string(s.out_c) +
         " s" + x(s.stride_h, s.stride_w) + " d" + x(s.dilation_h, s.dilation_w) + " p" +
         x(s.pad_top, s.pad_left);
}

using Key = std::tuple<int, std::string, int, std::string, bool>;  // pass, shape, threads, isa,
                                                                   // Winograd excluded
// Keyed without the batch size: a model's smaller last batch (or predict's batches) takes the
// same algorithm as its full batches, so a sample's result does not depend on its batch.
Key choice_key(ConvPass pass, const std::string& shape, int threads, const KernelTable& kt,
               bool winograd_excluded) {
  return {static_cast<int>(pass), shape.substr(shape.find('x') + 1), threads, kt.isa,
          winograd_excluded};
}

struct State {
  std::mutex mutex;
  std::map<Key, ConvChoice> choices;
  std::deque<ConvRun> runs;
};

State& state() {
  static State* s = new State;  // never destroyed: kernels may run while the process exits
  return *s;
}

// The algorithm auto chose for key, or "" before it has measured.
std::string chosen_before(const Key& key) {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  const auto it = st.choices.find(key);
  return it == st.choices.end() ? std::string() : it->second.algorithm;
}

void record(ConvPass pass, const std::string& shape, const char* algorithm, const char* how) {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  st.runs.push_back({conv_pass_name(pass), shape, algorithm, how});
  if (st.runs.size() > 256) st.runs.pop_front();
}

double run_timed(const Algorithm& a, const KernelTable& kt, const Conv2dShape& s,
                 const ConvOperands& ops, bool& finite) {
  const auto t0 = std::chrono::steady_clock::now();
  finite = a.run(kt, s, ops);
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

// Times each candidate on the real call: every one once, then again (fastest last) those within
// 2x of the best, more rounds while calls are short (3 rounds under 10 ms, 5 under 2 ms, else
// 2); each one's best time counts, and the list order breaks ties. Two rounds of a 3-4 ms call
// let a shared machine's noise pick the slower of A.conv2's forward algorithms (1.36x) in one
// run of `fastconv profile mnist` out of a few. The output ends as the winner wrote it.
// Returns the winner, or -1 when Winograd met a non-finite value (nothing is learnt then).
int measure(const std::vector<const Algorithm*>& cand, const KernelTable& kt, const Conv2dShape& s,
            const ConvOperands& ops, std::map<std::string, double>& ms) {
  const size_t n = cand.size();
  std::vector<double> best(n, 1e300);
  size_t last = n;
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  for (int round = 0; round < 5; ++round) {
    for (size_t i : order) {
      bool finite = true;
      best[i] = std::min(best[i], run_timed(*cand[i], kt, s, ops, finite));
      if (!finite) return -1;
      last = i;
    }
    const double fastest = *std::min_element(best.begin(), best.end());
    if ((round >= 1 && fastest >= 10.0) || (round >= 2 && fastest >= 2.0)) break;
    order.clear();
    for (size_t i = 0; i < n; ++i)
      if (best[i] <= 2.0 * fastest) order.push_back(i);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return best[a] > best[b]; });
    if (order.size() < 2) break;
  }
  size_t winner = 0;
  for (size_t i = 1; i < n; ++i)
    if (best[i] < best[winner]) winner = i;
  for (size_t i = 0; i < n; ++i) ms[cand[i]->name] = best[i];
  if (winner != last) cand[winner]->run(kt, s, ops);
  return static_cast<int>(winner);
}

}  // namespace

const char* conv_pass_name(ConvPass pass) {
  switch (pass) {
    case ConvPass::kForward:
      return "forward";
    case ConvPass::kInputGradient:
      return "input_gradient";
    default:
      return "weight_gradient";
  }
}

std::vector<std::string> conv_algorithm_names(ConvPass pass) {
  std::vector<std::string> names;
  const List list = algorithms(pass);
  for (const Algorithm* a = list.begin; a != list.end; ++a) names.push_back(a->name);
  return names;
}

std::vector<std::pair<std::string, std::string>> conv_algorithm_reasons(ConvPass pass,
                                                                        const Conv2dShape& s) {
  const KernelTable& kt = active_kernels();
  std::vector<std::pair<std::string, std::string>> out;
  const List list = algorithms(pass);
  for (const Algorithm* a = list.begin; a != list.end; ++a)
    out.emplace_back(a->name, a->cannot_take(kt, s));
  return out;
}

void set_conv_algorithm(const std::string& name) {
  const std::vector<std::string>& names = settings();
  const auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) {
    std::string choices;
    for (const std::string& n : names) choices += (choices.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown convolution algorithm '" + name + "'; choose one of " +
                                choices);
  }
  setting().store(static_cast<int>(it - names.begin()));
}

std::string conv_algorithm() { return settings()[setting().load()]; }

std::vector<std::string> conv_algorithm_settings() { return settings(); }

namespace {

// Runs the pass by setting `index` of settings() (see run_conv_pass).
void run_with(int index, ConvPass pass, const KernelTable& kt, const Conv2dShape& s,
              const ConvOperands& ops) {
  const std::string& wanted = settings()[index];
  // "deterministic": the first direct algorithm of the list that takes the problem, never
  // measured, so every process makes the same choice (auto's timing may differ between runs).
  const bool first_direct = wanted == "deterministic";
  const bool no_winograd = wanted == "direct" || first_direct;
  std::vector<const Algorithm*> cand;
  const Algorithm* forced = nullptr;
  const List list = algorithms(pass);
  bool excluded = false;  // Winograd could take it but the setting is "direct"
  for (const Algorithm* a = list.begin; a != list.end; ++a) {
    if (!a->cannot_take(kt, s).empty()) continue;
    if (no_winograd && a->winograd) {
      excluded = true;
      continue;
    }
    cand.push_back(a);
    if (wanted == a->name) forced = a;
  }
  const std::string shape = shape_text(s);
  const Algorithm* chosen = forced;
  // A forced algorithm that cannot take the problem leaves it to auto's choice.
  const bool forcing = index >= kFirstForced && !forced;
  const char* how = "forced";
  std::map<std::string, double> ms;
  if (!chosen && first_direct && !cand.empty()) {
    chosen = cand[0];
    how = "first that takes it (deterministic)";
  }
  if (!chosen && cand.size() == 1) {
    chosen = cand[0];
    how = forcing ? "only one takes it (forced one cannot)" : "only one takes it";
  }
  if (!chosen) {
    const int threads = num_threads();  // read once: the key and the stored choice agree
    const Key key = choice_key(pass, shape, threads, kt, excluded);
    State& st = state();
    const std::string before = chosen_before(key);
    if (!before.empty()) {
      for (const Algorithm* a : cand)
        if (before == a->name) chosen = a;
      how = forcing ? "chosen before (forced one cannot)" : "chosen before";
    }
    if (!chosen) {
      const int winner = measure(cand, kt, s, ops, ms);
      if (winner >= 0) {
        {
          std::lock_guard<std::mutex> lock(st.mutex);
          st.choices[key] = {conv_pass_name(pass), shape, kt.isa, cand[winner]->name, threads, ms};
        }
        record(pass, shape, cand[winner]->name,
               forcing ? "measured (forced one cannot)" : "measured");
        return;
      }
      chosen = nullptr;  // Winograd met a non-finite value while measuring: redo directly below
    }
  }
  if (chosen && chosen->run(kt, s, ops)) {
    record(pass, shape, chosen->name, how);
    return;
  }
  // Winograd's result held a value that is not finite: the direct choice redoes the call, so
  // that infinities and NaNs come out as the direct sum gives them.
  record(pass, shape, "winograd", "non-finite result: redone by the direct choice");
  run_with(1, pass, kt, s, ops);
}

}  // namespace

void run_conv_pass(ConvPass pass, const Conv2dShape& s, const ConvOperands& ops) {
  run_with(setting().load(), pass, active_kernels(), s, ops);
}

bool run_conv_forward_max_pool(const Conv2dShape& s, const Pool2dShape& p, const ConvOperands& ops,
                               float* pooled, uint8_t* argmax) {
  const KernelTable& kt = active_kernels();
  const bool pool2x2 = p.pool_h == 2 && p.pool_w == 2 && p.stride_h == 2 && p.stride_w == 2 &&
                       p.pad_top == 0 && p.pad_left == 0;
  if (!pool2x2 || !winograd_cannot_take(kt, s).empty()) return false;
  const std::string& wanted = settings()[setting().load()];
  const std::string shape = shape_text(s);
  bool winograd = wanted == "winograd";
  if (wanted == "auto")
    winograd = chosen_before(choice_key(ConvPass::kForward, shape, num_threads(), kt, false)) ==
               "winograd";
  if (!winograd) return false;
  if (!winograd_conv2d_forward_max_pool(kt, s, p, ops.x, ops.kernel, ops.bias, pooled, ops.relu,
                                        argmax)) {
    record(ConvPass::kForward, shape, "winograd", "non-finite result: redone in two passes");
    return false;
  }
  record(ConvPass::kForward, shape, "winograd", "pooled in its output transform");
  return true;
}

std::vector<ConvChoice> conv_algorithm_choices() {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  std::vector<ConvChoice> out;
  for (const auto& entry : st.choices) out.push_back(entry.second);
  return out;
}

void clear_conv_algorithm_choices() {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  st.choices.clear();
}

std::vector<ConvRun> last_conv_algorithms(bool clear) {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mutex);
  std::vector<ConvRun> out(st.runs.begin(), st.runs.end());
  if (clear) st.runs.clear();
  return out;
}

}  // namespace fastconv
