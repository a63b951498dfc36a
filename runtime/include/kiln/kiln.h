/* kiln runtime C API.
 *
 * Load a verified plan, create contexts, and run the plan's programs: score prompts
 * (logits for every position), prefill/decode step by step, or generate.
 *
 * Errors: every fallible function returns a kiln_status and, when `err` is non-null, fills
 * it with the same code and a one-line message. No function aborts or throws.
 * Thread safety: a kiln_plan is immutable and may be shared by any number of threads and
 * contexts. A kiln_context must be used by one thread at a time.
 * Ownership: handles are created by the _open and _create calls and released by _close and _destroy;
 * a context holds a reference to its plan, so the plan may be closed first.
 */
#ifndef KILN_KILN_H_
#define KILN_KILN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2: kiln_decoder_finish.
 * 3: kiln_decoder_push/finish return KILN_ERR_LIMIT and consume nothing when the text does not fit
 *    (they cut it before); kiln_detokenize and kiln_decoder_push refuse ids outside the plan (they
 *    skipped them); kiln_generate fails with KILN_ERR_LIMIT after its tokens when the last logits are
 *    not finite. */
#define KILN_API_VERSION 3

/* Only the C API is exported from libkiln_runtime.so; everything else is hidden. */
#if defined(__GNUC__)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

typedef enum kiln_status {
  KILN_OK = 0,
  KILN_ERR_INVALID_ARGUMENT = 1,
  KILN_ERR_IO = 2,
  KILN_ERR_CORRUPT_PLAN = 3,
  KILN_ERR_UNSUPPORTED = 4,
  KILN_ERR_LIMIT = 5,
  KILN_ERR_OUT_OF_MEMORY = 6,
  KILN_ERR_INTERNAL = 7
} kiln_status;

typedef struct kiln_error {
  kiln_status code;
  char message[512];
} kiln_error;

typedef struct kiln_plan kiln_plan;
typedef struct kiln_context kiln_context;

typedef struct kiln_plan_info {
  int64_t vocab_size;
  int64_t max_seq; /* tokens per sequence (prompt + generated) */
  int64_t batch;   /* sequences per context */
  int64_t chunk;   /* prompt tokens per prefill replay */
} kiln_plan_info;

/* A zero-initialized kiln_sampling is greedy decoding. */
typedef struct kiln_sampling {
  float temperature; /* <= 0: greedy (kiln_generate refuses a negative one); NaN is refused */
  int32_t top_k;     /* <= 0: off */
  float top_p;       /* 0 or >= 1: off */
  uint64_t seed;
} kiln_sampling;

/* Returns KILN_API_VERSION of the library actually linked. */
KILN_API int kiln_api_version(void);
KILN_API const char* kiln_status_string(kiln_status s);

/* --- plans */
/* The file is mapped, not copied: it must not change while a plan from it is open. Replace a plan by writing a new file
 * and renaming it over the old one, as kiln compile does; truncating or rewriting it in place makes later reads of the
 * mapping fail with SIGBUS, as with any mapped file. */
KILN_API kiln_status kiln_plan_open(const char* path, kiln_plan** out, kiln_error* err);
/* data is not copied and must outlive the plan and everything made from it (contexts, diffusion
 * sessions and decoders keep reading it after kiln_plan_close); it must be 8-byte aligned (else
 * KILN_ERR_INVALID_ARGUMENT), as malloc's and a mapped file's are. */
KILN_API kiln_status kiln_plan_open_memory(const void* data, size_t size, kiln_plan** out, kiln_error* err);
KILN_API void kiln_plan_close(kiln_plan* plan);
KILN_API kiln_status kiln_plan_get_info(const kiln_plan* plan, kiln_plan_info* info, kiln_error* err);

/* --- contexts. n_threads <= 0 uses every core (at most 1024: more is KILN_ERR_INVALID_ARGUMENT); the
 * device is the CPU. */
KILN_API kiln_status kiln_context_create(kiln_plan* plan, int n_threads, kiln_context** out, kiln_error* err);

/* Start from kiln_context_options_default() and set the fields you need. Fields may be added at
 * the end in later versions (a new KILN_API_VERSION), whose defaults keep a host's behaviour
 * unchanged. The structs are passed by value, so a host must run with the library of the header it
 * was compiled with: check kiln_api_version() == KILN_API_VERSION at start (the same holds for the
 * info structs). */
typedef struct kiln_context_options {
  int n_threads;      /* CPU threads; <= 0: every core; at most 1024 */
  const char* device; /* "cpu", "cuda" or "auto" (cuda when a GPU and a CUDA target exist); NULL = "auto" */
  int use_graphs;     /* CUDA: nonzero replays captured graphs; 0 = stream mode, for debugging */
  /* CUDA, for hosts that own their resources (each NULL: kiln makes its own). Not owned; they
   * must outlive the context. device_memory must hold kiln_plan_device_bytes() bytes, 256-byte
   * aligned; kiln then allocates no device memory at all. */
  void* cuda_stream; /* a cudaStream_t */
  void* cuda_device_memory;
  size_t cuda_device_memory_bytes;
  /* CUDA: nonzero (the default) runs prefill-sized bf16/f16 GEMMs on cuBLASLt when the library
   * can be loaded (dlopen; the environment variable KILN_CUBLASLT=off also refuses it, or names
   * the file); 0 = kiln's own kernels for every GEMM. */
  int use_cublaslt;
  /* CUDA: called while the weights upload to the device, with bytes done and the total (the last
   * call has done == total); NULL: no reports. */
  void (*upload_progress)(uint64_t done, uint64_t total, void* user);
  void* upload_progress_user;
  /* kiln_generate's decode steps in flight, in [0, 16]: each step takes its input token from the
   * one before on the device, and the host reads the tokens as they land. 0 (the default): the
   * backend's choice (CPU 1, CUDA 3); 1: one step at a time. A step ahead keeps the GPU busy
   * while the host handles a token; stopping early (eos, callback) wastes up to depth - 1 steps,
   * plus one more decode step that recomputes the last token's logits for kiln_logits. */
  int generate_depth;
  /* CPU: nonzero reads the weights from one copy in transparent huge pages, made when the plan's
   * first such context is created and shared by the rest until the plan and its contexts are gone
   * (decode streams every weight per token; 4 KiB page-cache pages cost it TLB misses: a
   * Llama-3.2-1B-shape bf16 decode went 102 -> 88 ms on a 2-core Xeon VM). The copy costs the
   * weights' size in memory, and the kernel's page compaction at creation (4-7 s there). Not used
   * on CUDA, nor for plans opened from memory (kiln_context_describe says where the weights are
   * read from). 0 (the default): read the mapped plan in place. */
  int cpu_huge_pages;
} kiln_context_options;

/* Device bytes a CUDA context of this plan needs (weights, arena, KV cache, step state, the
 * scratch some launches borrow: cuBLASLt's for prefill-sized bf16/f16 GEMMs, split-K decode
 * attention's partials, and 256 bytes of generate's token feedback state); 0 for a plan without a
 * CUDA target (compiled with --target cpu). */
KILN_API uint64_t kiln_plan_device_bytes(const kiln_plan* plan);

/* Defaults: all cores, device "auto", graphs on, cuBLASLt when present, no progress reports,
 * generate_depth 0 (the backend's). */
KILN_API kiln_context_options kiln_context_options_default(void);
KILN_API kiln_status kiln_context_create_with(kiln_plan* plan, const kiln_context_options* opts, kiln_context** out,
                                              kiln_error* err);
/* "cpu" or "cuda": the backend the context runs on. */
KILN_API const char* kiln_context_backend(const kiln_context* ctx);
/* One line on how the context runs programs, valid while it lives: on CUDA the device, the graphs
 * captured at creation (or stream mode) and the GEMM path; on the CPU the threads. */
KILN_API const char* kiln_context_describe(const kiln_context* ctx);
KILN_API void kiln_context_destroy(kiln_context* ctx);
/* Forgets every sequence. */
KILN_API void kiln_context_reset(kiln_context* ctx);

/* Logits for every position of `rows` prompts of `n_tokens` ids each, every prompt starting
 * at position 0: logits_out receives rows*n_tokens*vocab floats. Any number of rows.
 * Nothing is written to logits_out on failure. Resets the context's sequences. */
KILN_API kiln_status kiln_score(kiln_context* ctx, const int32_t* ids, int64_t rows, int64_t n_tokens,
                                float* logits_out, kiln_error* err);

/* Appends n ids to sequence `row`; then kiln_logits(row) holds the last token's logits. */
KILN_API kiln_status kiln_prefill(kiln_context* ctx, int64_t row, const int32_t* ids, int64_t n, kiln_error* err);
/* One token per row (batch entries); a negative token leaves that row idle. */
KILN_API kiln_status kiln_decode(kiln_context* ctx, const int32_t* tokens, kiln_error* err);
/* vocab_size floats, valid until the next call on ctx; NULL if row is out of range or has no logits:
 * none prefilled or decoded since the context was created or reset (kiln_score resets), or its last
 * prefill, decode or generate failed once it ran (one refused for its arguments or the plan's limits
 * changes nothing). */
KILN_API const float* kiln_logits(const kiln_context* ctx, int64_t row);
/* Samples from kiln_logits(row); `step` feeds the counter-based RNG. Returns -1 where kiln_logits(row)
 * is NULL or holds a NaN (an f16 plan past its range), and for a NaN temperature or a top_p that is
 * NaN or negative. */
KILN_API int32_t kiln_sample(kiln_context* ctx, int64_t row, const kiln_sampling* sampling, uint64_t step);

/* Called for each generated token; return 0 to stop. */
typedef int (*kiln_token_callback)(void* user, int32_t token);

/* Generates up to max_new tokens after the prompt on row 0 (reset first). Stops at eos_id
 * (if >= 0; one outside the vocabulary is an invalid argument) or when the callback returns 0. out_tokens receives the
 * new tokens and *n_out their count. sampling may be NULL for greedy. KILN_ERR_LIMIT (after the tokens were
 * emitted) when the last step's logits are NaN or infinite: the plan's arithmetic overflowed (an f16 plan
 * past ±65504) and the tokens are not the model's. The callback must not call kiln with this context
 * (steps may still be running, see generate_depth): prefill, decode, score and generate fail with
 * KILN_ERR_INVALID_ARGUMENT, kiln_logits gives NULL and kiln_sample -1; kiln_context_destroy and
 * kiln_context_reset end the generation after that callback and take effect as kiln_generate
 * returns (after a destroy the context is gone). The last token
 * emitted is not yet in row 0's sequence: a host that goes on with kiln_decode feeds it first. */
KILN_API kiln_status kiln_generate(kiln_context* ctx, const int32_t* prompt, int64_t n_prompt, int64_t max_new,
                                   const kiln_sampling* sampling, int32_t eos_id, int32_t* out_tokens, int64_t* n_out,
                                   kiln_token_callback callback, void* user, kiln_error* err);

/* --- text (plans compiled with a tokenizer; KILN_ERR_UNSUPPORTED otherwise) */
typedef struct kiln_decoder kiln_decoder;

/* Token ids of `text` (len bytes, any bytes). add_special prepends BOS when the tokenizer
 * does. Writes at most cap ids; *n_out gets the full count (call again with a bigger buffer
 * if it exceeds cap). */
KILN_API kiln_status kiln_tokenize(const kiln_plan* plan, const char* text, size_t len, int add_special, int32_t* ids,
                                   int64_t cap, int64_t* n_out, kiln_error* err);
/* Text of ids, NUL-terminated in buf (cap bytes, cut to fit); *len_out gets the full byte length. Ids
 * are the model's or the tokenizer's (others are KILN_ERR_INVALID_ARGUMENT); one with no text (a
 * padding row of the embedding) gives none, as transformers' decode does. */
KILN_API kiln_status kiln_detokenize(const kiln_plan* plan, const int32_t* ids, int64_t n, int skip_special, char* buf,
                                     size_t cap, size_t* len_out, kiln_error* err);
/* 1 if generation should stop at this token (EOS, <|eot_id|>, ...), else 0. */
KILN_API int kiln_token_is_stop(const kiln_plan* plan, int32_t id);
/* The prompt text for a conversation of n (role, content) messages, rendered by the plan's chat
 * template as transformers' apply_chat_template(messages, add_generation_prompt=True) renders
 * it, so it ends where the assistant's reply begins. KILN_ERR_UNSUPPORTED if the plan has no
 * chat template; KILN_ERR_INVALID_ARGUMENT if the conversation is empty (as transformers refuses
 * it) or the template rejects it (its raise_exception message is in err). Text as kiln_detokenize
 * writes it. */
KILN_API kiln_status kiln_chat_prompt(const kiln_plan* plan, const char* const* roles, const char* const* contents,
                                      int64_t n, char* buf, size_t cap, size_t* len_out, kiln_error* err);
/* The chat template rendered for a conversation given as JSON text: an array of message objects
 * ({"role": ..., "content": ..., plus whatever else the template reads, e.g. tool_calls}), or an
 * object {"messages": [...], ...} whose other keys are template variables (tools, documents,
 * enable_thinking, ...), exactly as apply_chat_template(messages, tokenize=False,
 * add_generation_prompt=..., **variables) renders it. Errors as kiln_chat_prompt, and
 * KILN_ERR_INVALID_ARGUMENT for malformed JSON. */
KILN_API kiln_status kiln_chat_render(const kiln_plan* plan, const char* json, int add_generation_prompt, char* buf,
                                      size_t cap, size_t* len_out, kiln_error* err);
/* Streaming detokenizer: push() writes the newly complete text (incomplete UTF-8 waits, and so does a
 * SentencePiece run of <0xNN> byte tokens until it ends, since a later byte that is not UTF-8 makes
 * the whole run U+FFFD), NUL-terminated, and its length to *len_out. The pieces joined are the
 * whole decode of the ids. When the text and its NUL do not fit in cap bytes, push and finish
 * return KILN_ERR_LIMIT with the length in *len_out and consume nothing: call again (push with the same
 * id) with a bigger buffer. No new text (*len_out 0) fits any buffer: with cap 0 (buf may then be
 * NULL) nothing is written. An id outside the plan's token ids is KILN_ERR_INVALID_ARGUMENT. */
KILN_API kiln_status kiln_decoder_create(const kiln_plan* plan, int skip_special, kiln_decoder** out, kiln_error* err);
KILN_API kiln_status kiln_decoder_push(kiln_decoder* dec, int32_t id, char* buf, size_t cap, size_t* len_out,
                                       kiln_error* err);
/* At the end of a stream: the bytes still waiting (an incomplete UTF-8 character) as U+FFFD, as a
 * whole decode of the ids ends; the decoder then starts afresh. */
KILN_API kiln_status kiln_decoder_finish(kiln_decoder* dec, char* buf, size_t cap, size_t* len_out, kiln_error* err);
KILN_API void kiln_decoder_destroy(kiln_decoder* dec);

/* --- text-to-image (plans compiled from a diffusers pipeline folder).
 * A kiln_diffusion session owns one backend's memory for the plan, like a context; one per
 * thread. Images are height x width x 3, row-major RGB; latents and noise are channels-last
 * (latent_height x latent_width x latent_channels floats). */
typedef struct kiln_diffusion kiln_diffusion;

typedef struct kiln_diffusion_info {
  int64_t height, width; /* pixels */
  int64_t latent_height, latent_width, latent_channels;
  int64_t steps;    /* sampler steps compiled in */
  int64_t text_len; /* token ids per prompt */
  int guided;       /* classifier-free guidance: takes a negative prompt */
  int stochastic;   /* the sampler draws fresh noise each step */
  int has_control;  /* a ControlNet: every image needs a control image */
} kiln_diffusion_info;

/* opts may be NULL (the defaults). Fails with KILN_ERR_UNSUPPORTED on a plan that is not text-to-image. */
KILN_API kiln_status kiln_diffusion_create(kiln_plan* plan, const kiln_context_options* opts, kiln_diffusion** out,
                                           kiln_error* err);
/* From inside a step callback: the call running it stops after that step (failing "stopped") and
 * destroys the session as it returns. */
KILN_API void kiln_diffusion_destroy(kiln_diffusion* d);
KILN_API kiln_status kiln_diffusion_get_info(const kiln_diffusion* d, kiln_diffusion_info* info, kiln_error* err);
KILN_API const char* kiln_diffusion_backend(const kiln_diffusion* d);
/* As kiln_context_describe. */
KILN_API const char* kiln_diffusion_describe(const kiln_diffusion* d);
/* An image takes, in this order: a prompt (set_prompt or set_prompt_ids; it stays for later
 * images, and a new one between steps conditions the steps after it), start, its steps (each once,
 * in order: kiln_diffusion_step, or denoise for all of them, or denoise_steps for the rest), then
 * decode (also allowed between steps, as a preview). A call out of that order, or from a step
 * callback into its own session, fails with KILN_ERR_INVALID_ARGUMENT naming what is missing; a
 * start or step that failed leaves no image until the next start. */
/* Tokenizes the prompt (and the negative prompt, "" when NULL; ignored without guidance) with the
 * plan's CLIP tokenizer and runs the text encoder. */
KILN_API kiln_status kiln_diffusion_set_prompt(kiln_diffusion* d, const char* prompt, const char* negative,
                                               kiln_error* err);
/* The same from text_len ids each (negative: NULL without guidance). */
KILN_API kiln_status kiln_diffusion_set_prompt_ids(kiln_diffusion* d, const int32_t* ids, const int32_t* negative_ids,
                                                   kiln_error* err);
/* Starts an image. noise: NULL draws it from seed (Philox, identical on every backend), else the
 * caller's latents-sized noise. control: height x width x 3 floats in [0, 1], required with a
 * ControlNet and NULL otherwise. seed also feeds stochastic samplers. */
KILN_API kiln_status kiln_diffusion_start(kiln_diffusion* d, uint64_t seed, const float* noise, const float* control,
                                          kiln_error* err);
/* Runs sampler step `step` (0 .. steps-1, in order). */
KILN_API kiln_status kiln_diffusion_step(kiln_diffusion* d, int64_t step, kiln_error* err);
/* Runs every step as one replay of the loop program (on CUDA, one graph for the whole loop); only
 * right after start. */
KILN_API kiln_status kiln_diffusion_denoise(kiln_diffusion* d, kiln_error* err);
/* Called after each step; return 0 to stop (the call then fails with KILN_ERR_INVALID_ARGUMENT "stopped"). */
typedef int (*kiln_step_callback)(void* user, int64_t step, int64_t steps);
/* Runs the image's remaining steps one replay at a time (all of them after start; after a
 * callback's stop, the rest), calling on_step (which may be NULL) after each. */
KILN_API kiln_status kiln_diffusion_denoise_steps(kiln_diffusion* d, kiln_step_callback on_step, void* user,
                                                  kiln_error* err);
/* The current latents (valid until the next call on d). */
KILN_API const float* kiln_diffusion_latents(const kiln_diffusion* d);
/* Decodes the latents: image_out (floats, about [-1, 1]) and/or rgb_out (bytes, diffusers'
 * postprocess); either may be NULL. */
KILN_API kiln_status kiln_diffusion_decode(kiln_diffusion* d, float* image_out, uint8_t* rgb_out, kiln_error* err);

/* A control image for kiln_diffusion_start from 8-bit RGB of any size (w x h x 3 bytes): resized
 * to out_w x out_h as diffusers does (PIL Lanczos), then scaled to [0, 1]; out holds out_w*out_h*3 floats. */
KILN_API kiln_status kiln_control_image_from_rgb8(const uint8_t* rgb, int64_t w, int64_t h, int64_t out_w,
                                                  int64_t out_h, float* out, kiln_error* err);

/* set_prompt + start + every step (kiln_diffusion_denoise, or kiln_diffusion_denoise_steps with on_step) +
 * decode to RGB bytes (height*width*3). */
KILN_API kiln_status kiln_txt2img(kiln_diffusion* d, const char* prompt, const char* negative, uint64_t seed,
                                  const float* control, uint8_t* rgb_out, kiln_step_callback on_step, void* user,
                                  kiln_error* err);

#ifdef __cplusplus
}
#endif

#endif /* KILN_KILN_H_ */
