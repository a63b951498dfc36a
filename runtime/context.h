// Context: one plan on one backend (an Executor, which owns the arena, KV cache, step state
// and bound launches) plus the LLM-level operations built on the plan's `prefill` and
// `decode` programs. Everything is allocated in create(); nothing is allocated afterwards.
// A Context is not thread-safe: use one per thread. The Plan is shared and immutable.
//
// LLM plan contract (checked in create): programs `prefill` and `decode`, and optionally
// `score`, each with state inputs `tokens` (batch, chunk) i32, `start_pos` (batch,) i32,
// `n_valid` (batch,) i32 and the output `logits` f32: (batch·chunk, vocab), a row per position,
// or for `prefill` (batch, vocab), each row's last valid position only; decode has chunk 1.
// score() runs `score`, or `prefill` in plans without one (made before it, with every row).
// Optionally `ingest`: prefill's inputs and chunk, no outputs (the layers without the LM head);
// prefill() runs it for every chunk of a prompt but the last, when the plan has it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/executor.h"
#include "runtime/plan.h"
#include "runtime/sampling.h"

namespace kiln {

struct ContextOptions {
  int n_threads = 0;           // CPU: <= 0 uses all cores
  std::string device = "cpu";  // "cpu", "cuda" or "auto" (cuda when a device is usable)
  bool use_graphs = true;      // CUDA: replay captured graphs; false = stream mode (debugging)
  bool use_cublaslt = true;    // CUDA: prefill GEMMs on cuBLASLt when it loads (CudaExecutorOptions)
  bool use_pdl = false;        // CUDA: decode GEMVs with programmatic dependent launch (CudaExecutorOptions)
  std::function<void(uint64_t, uint64_t)> upload_progress;  // CUDA: weight upload (done, total)
  void* cuda_stream = nullptr;                              // CUDA: a host-owned stream (see CudaExecutorOptions)
  void* cuda_device_memory = nullptr;  // CUDA: host-owned device memory, cuda_device_bytes(plan) bytes
  size_t cuda_device_memory_bytes = 0;
  // generate()'s decode steps in flight when the plan's `sample` launch picks the tokens: each step
  // takes its input token from the step before on the backend, and the host reads the tokens as
  // they land. 0: the backend's default (CPU 1, CUDA 3); 1: one step at a time. More steps keep
  // the GPU busy while the host handles a token, and cost up to depth − 1 wasted steps (plus one
  // replay for the logits) when generation stops early. At most kFeedbackRing.
  int generate_depth = 0;
  // CPU: read the weights from a copy in transparent huge pages, shared by the plan's contexts
  // (Plan::huge_page_weights_base): faster decode, at the cost of the copy's memory and time.
  bool cpu_huge_pages = false;
};

// The executor `opts` asks for ("auto": CUDA when a device and a CUDA target exist).
Result<std::unique_ptr<Executor>> make_executor(std::shared_ptr<const Plan> plan, const ContextOptions& opts);

class Context {
 public:
  static Result<std::unique_ptr<Context>> create(std::shared_ptr<const Plan> plan, const ContextOptions& opts);
  ~Context();

  const Plan& plan() const { return *plan_; }
  int64_t batch() const { return plan_->model().batch; }
  int64_t vocab() const { return plan_->model().vocab_size; }
  int64_t max_seq() const { return plan_->model().max_seq; }
  int64_t prefill_chunk() const { return prefill_.chunk; }

  // --- sequences, one per batch row
  void reset();  // forgets every row's tokens (not from generate's on_token)
  bool in_callback() const { return in_callback_; }  // generate's on_token is running
  int64_t position(int64_t row) const { return pos_[size_t(row)]; }
  // Appends ids to `row`'s sequence; logits(row) then holds the last token's logits.
  Status prefill(int64_t row, const int32_t* ids, int64_t n);
  // One token per row; a negative token leaves that row idle. At least one row must be active.
  Status decode(const int32_t* tokens);
  // Logits (vocab floats) after the last prefill/decode step of `row`.
  const float* logits(int64_t row) const { return last_logits_.data() + row * vocab(); }
  // Whether logits(row) are its sequence's: false after a reset (and score), and from the start of a
  // prefill, decode or generate on the row until it succeeds (a failed one leaves none).
  bool has_logits(int64_t row) const { return has_logits_[size_t(row)] != 0; }

  // Scores `rows` independent prompts of n_tokens each (each from position 0), writing
  // logits (rows, n_tokens, vocab) to out. Any number of rows; resets every sequence.
  Status score(const int32_t* ids, int64_t rows, int64_t n_tokens, float* out);

  // Generates up to max_new tokens after `prompt` on row 0 (which is reset first). Stops early
  // at eos (if >= 0) or when on_token returns false. out receives the new tokens. on_token must
  // not call into this context: prefill, decode, score and generate then fail, reset does nothing. Afterwards
  // position(0) counts the prompt and every token but the last, and logits(0) are the ones the last token was chosen
  // from, however many decode steps ran ahead (ContextOptions::generate_depth).
  Status generate(const int32_t* prompt, int64_t n_prompt, int64_t max_new, const SamplingParams& sp, int32_t eos,
                  int32_t* out, int64_t* n_out, const std::function<bool(int32_t)>& on_token);

  // ContextOptions::generate_depth for later generate calls (0: the backend's default).
  Status set_generate_depth(int depth);
  int generate_depth() const { return depth_; }

  // Samples from logits(row); exposed for hosts that drive decode themselves.
  int32_t sample(int64_t row, const SamplingParams& sp, uint64_t step);

  // While set (non-null), each prefill/decode step is replayed through Executor::profile and
  // its per-launch times land here (the last step's). For benchmarks.
  void set_profile(std::vector<double>* launch_ms) { profile_ms_ = launch_ms; }
  int program_index(bool decode) const { return decode ? decode_.index : prefill_.index; }

  // "cpu" or "cuda", and a line on how programs are replayed.
  const char* backend() const { return exec_->backend(); }
  std::string describe() const { return exec_->describe(); }

 private:
  struct ProgramState {
    int index = -1;
    int32_t* tokens = nullptr;  // in the executor's host state
    int32_t* start_pos = nullptr;
    int32_t* n_valid = nullptr;
    uint32_t logits_tensor = kNoTensor;  // none: `ingest`
    uint32_t next_tensor = kNoTensor;  // "next_token" (batch,) i32, when the plan has it
    SampleParams* sampling = nullptr;  // "sampling" (batch, 8) in the host state, likewise
    const float* logits = nullptr;     // host view, valid after run()
    const int32_t* next = nullptr;     // host view of next_token, valid after run()
    int64_t chunk = 0;
    int64_t logit_rows = 0;  // logits rows per batch row: chunk, or 1 (the last valid position's)
  };
  Context() = default;
  Status init(const ContextOptions& opts);
  // last_rows: the program may keep only each batch row's last logits row.
  Status bind_llm_program(const char* name, ProgramState* ps, bool last_rows);
  // Its tokens, start_pos and n_valid inputs only (what every LLM program takes).
  Status bind_llm_inputs(const char* name, ProgramState* ps);
  Status run(ProgramState& ps);
  // Whether generate() can take its tokens from the plan's `sample` launch for these parameters
  // (the CUDA kernel samples with at most kSampleMaxTopK candidates).
  bool samples_on_backend(const SamplingParams& sp) const;
  // generate's last check: kLimitExceeded when the last logits hold a NaN or an infinity.
  Status check_last_logits_finite(int64_t emitted);
  // Writes row 0's sampling parameters into both programs' state (the others stay greedy).
  void set_sampling(const SampleParams& p);
  // generate's decode steps after the prompt, one token each (context.cpp).
  class GenerateSteps {
   public:
    // feedback: the tokens come from the plan's sample launch through it, `depth` steps in flight;
    // null: one decode per token, sampled on the host with sp.
    GenerateSteps(Context& c, TokenFeedback* feedback, int depth, const SamplingParams& sp, const int32_t* out,
                  int64_t max_new);
    ~GenerateSteps();
    // The next token, after `emitted` tokens of which `last` is the latest.
    Result<int32_t> next(int32_t last, int64_t emitted);
    // After the last token kept: position(0) and logits(0) as one step at a time leaves them.
    Status finish(int64_t emitted);

   private:
    Context& c_;
    TokenFeedback* feedback_;
    int64_t depth_;
    SamplingParams sp_;
    const int32_t* out_;
    int64_t steps_, queued_ = 0, done_ = 0;
    bool started_ = false;  // steps were (or may have been) enqueued and are not yet finished
  };
  // (first: the index the message gives ids[0], for a row of a larger array)
  Status check_ids(const int32_t* ids, int64_t n, int64_t first = 0) const;
  Status check_not_in_callback() const;

  std::shared_ptr<const Plan> plan_;
  std::unique_ptr<Executor> exec_;
  // Token feedback for generate (declared after exec_, so destroyed before it): the backend's own
  // (null on the CPU), and steps run one at a time through run() (also while profiling).
  std::unique_ptr<TokenFeedback> native_feedback_, host_feedback_;
  ProgramState prefill_, decode_;
  ProgramState score_;   // index -1: the plan has no score program (prefill keeps every row)
  ProgramState ingest_;  // index -1: none (plans made before it); prefill runs every chunk
  std::vector<int64_t> pos_;
  std::vector<float> last_logits_;
  std::vector<char> has_logits_;      // per row (has_logits)
  std::vector<int32_t> step_tokens_;  // generate()'s decode input
  SamplerScratch sampler_;
  int depth_ = 1;             // generate's steps in flight
  bool in_callback_ = false;  // generate's on_token is running (Context calls are refused)
  std::vector<double>* profile_ms_ = nullptr;
};

}  // namespace kiln
