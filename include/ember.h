/* ember.h - the C API of libember (C99; also C++). Opaque handles, status codes, no exceptions.
 *
 *   ember_model* model = NULL;
 *   ember_session* session = NULL;
 *   ember_sampler* sampler = NULL;
 *   if (ember_model_load("models/shakespeare-char.ember", &model) != EMBER_OK) {
 *     fprintf(stderr, "%s\n", ember_last_error());                    // names the file and the problem
 *     return 1;
 *   }
 *   ember_session_create(model, NULL, &session);                       // NULL: ember_session_default_params()
 *   ember_sampler_params sp = ember_sampler_default_params();
 *   sp.seed = 1;
 *   ember_sampler_create(&sp, ember_session_n_vocab(session), &sampler);
 *   ember_generate_params gp = ember_generate_default_params();
 *   gp.max_tokens = 100;
 *   ember_generate(session, sampler, "ROMEO:", &gp, print_token, NULL, NULL);   // streams valid UTF-8
 *   ember_sampler_free(sampler); ember_session_free(session); ember_model_free(model);
 *
 * Complete programs: examples/c/minimal.c, examples/c/prompt_cache.c. docs/library.md has the details;
 * the C++ headers (ember/model.h, session.h, sampler.h, generate.h, tokenizer.h, classify.h) define what
 * each call does, this API forwards to them.
 *
 * Errors. Every function that can fail returns an ember_status (EMBER_OK = 0). The message of the last
 * call on the calling thread that returned a status is ember_last_error(): "" after EMBER_OK, otherwise
 * what went wrong, naming the file, field or argument ("models/x.ember: tensor 'wte' is missing").
 * Every pointer argument is checked: NULL where an object is required is EMBER_INVALID_ARGUMENT with a
 * message naming the argument, never a crash; a handle's _free(NULL) does nothing; getters of a NULL
 * handle return 0 or NULL. Out-parameters for new handles are set to NULL first, so they are NULL after
 * a failure. No C++ exception crosses this API (out of memory is EMBER_INTERNAL).
 * Ownership. A handle is owned by the caller and freed with its _free function. Strings and arrays the
 * library returns are owned by the object they come from and stay valid as documented per function
 * (usually: until the next call on that object, or while it lives); strings are NUL-terminated.
 * Thread safety. A model is immutable after loading: every call taking a `const ember_model*` may run
 * on any number of threads at once, and sessions of one model may run on different threads. A session,
 * sampler, generator or UTF-8 stream is used by one thread at a time. ember_last_error() is per thread.
 * Lifetime. A session keeps its model alive: ember_model_free() may come before ember_session_free().
 * A generator uses its session and sampler, which must outlive it.
 */
#ifndef EMBER_H_
#define EMBER_H_

#include <stddef.h>
#include <stdint.h>

#include "ember/export.h"
#include "ember/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status, version ------------------------------------------------------------------------------ */

typedef enum ember_status {
  EMBER_OK = 0,
  EMBER_INVALID_ARGUMENT = 1, /* a NULL, a size or value out of range, a state of another model */
  EMBER_NOT_FOUND = 2,        /* a file does not exist */
  EMBER_IO_ERROR = 3,         /* reading or writing a file failed */
  EMBER_INVALID_FILE = 4,     /* a model or state whose bytes are malformed, truncated or corrupted */
  EMBER_UNSUPPORTED = 5,      /* well-formed but not supported (another format version) */
  EMBER_CONTEXT_FULL = 6,     /* the session holds n_ctx tokens */
  EMBER_INTERNAL = 7,         /* out of memory, or a dependency failed */
  EMBER_ABORTED = 8           /* the abort callback asked to stop */
} ember_status;

/* "ok", "invalid argument", ... ("unknown" for other values). A static string. */
EMBER_API const char* ember_status_name(ember_status status);
/* The message of the last call on this thread that returned an ember_status ("" after EMBER_OK). Valid
 * until the next such call on this thread. Never NULL. */
EMBER_API const char* ember_last_error(void);
/* The library's version, "MAJOR.MINOR.PATCH" (EMBER_VERSION_STRING is the headers'). A static string. */
EMBER_API const char* ember_version(void);
/* The kernel table this process runs: "ref" (plain C++), "avx2", "avxvnni", "avx512", "neon" or
 * "neondot", chosen once by CPU features (the EMBER_KERNELS environment variable may pick a supported
 * one, or "ref"). The tables compute the same values to within stated tolerances; the SIMD tables give
 * bit-identical logits, the reference differs from them in the last bits (libm's exp, erf, tanh). A
 * static string. */
EMBER_API const char* ember_kernel_table(void);

/* ---- models --------------------------------------------------------------------------------------- */

typedef struct ember_model ember_model;

/* Loads and verifies an .ember file (mapped read-only). *out: the model, NULL on failure. Errors:
 * EMBER_NOT_FOUND, EMBER_INVALID_ARGUMENT (a directory, a FIFO), EMBER_INVALID_FILE (with what is wrong),
 * EMBER_UNSUPPORTED. Safe on any bytes (fuzzed). */
EMBER_API ember_status ember_model_load(const char* path, ember_model** out);
/* The same from the bytes of a model file in memory, copied: `data` may be freed after the call. `name`
 * (may be NULL: "<memory>") stands for the path in messages. size 0 or too small: EMBER_INVALID_FILE. */
EMBER_API ember_status ember_model_load_from_buffer(const void* data, size_t size, const char* name, ember_model** out);
/* The same without copying, for bytes that stay alive and unchanged while the model or any of its
 * sessions lives (a model in flash, executed in place). `data` must be 64-byte aligned, otherwise
 * EMBER_INVALID_ARGUMENT. */
EMBER_API ember_status ember_model_load_from_memory(const void* data, size_t size, const char* name, ember_model** out);
/* Releases the caller's reference; sessions keep the model alive. NULL: nothing. */
EMBER_API void ember_model_free(ember_model* model);

typedef enum ember_tokenizer_kind { EMBER_TOKENIZER_NONE = 0, EMBER_TOKENIZER_GPT2_BPE = 1, EMBER_TOKENIZER_CHARS = 2 } ember_tokenizer_kind;

typedef struct ember_model_config {
  uint32_t n_vocab;   /* ids the model scores (may exceed the tokenizer's: padding, special tokens) */
  uint32_t n_ctx;     /* context length in tokens */
  uint32_t n_embd, n_head, n_layer, n_ff;
  uint32_t n_classes; /* > 0: a classifier head (ember_model_labels, ember_classify) */
  ember_tokenizer_kind tokenizer;
  uint32_t n_tokens;  /* tokens of the tokenizer, those with text (0 without one) */
  int32_t eot_id;     /* the end-of-text token, -1 if none */
} ember_model_config;

EMBER_API ember_status ember_model_get_config(const ember_model* model, ember_model_config* out);
/* The path given to ember_model_load, or the name given with the bytes. Valid while the model lives. */
EMBER_API const char* ember_model_name(const ember_model* model);
/* A metadata value of the file ("license", "recipe", ...), or NULL when absent. Valid while the model lives. */
EMBER_API const char* ember_model_metadata(const ember_model* model, const char* key);
/* XXH64 of the model's bytes (the same for a file and a copy in memory); session states carry it. The
 * first call reads the whole model. 0 for NULL. */
EMBER_API uint64_t ember_model_fingerprint(const ember_model* model);
/* The class names of a model with a classifier head, in class order: *labels points to *n strings owned
 * by the model (valid while it lives). EMBER_INVALID_ARGUMENT when the model has no classifier head,
 * EMBER_INVALID_FILE when its classifier metadata is inconsistent. */
EMBER_API ember_status ember_model_labels(const ember_model* model, const char* const** labels, size_t* n);

/* ---- tokenizer ------------------------------------------------------------------------------------ */

/* Text (`len` bytes, valid UTF-8; no NUL needed) to token ids. *n_ids is set to the number of ids of the
 * text. ids == NULL with capacity 0 asks only for that number (EMBER_OK); a capacity too small for them
 * is EMBER_INVALID_ARGUMENT (call again with *n_ids). Errors: EMBER_INVALID_ARGUMENT for invalid UTF-8
 * (naming the byte offset), a character a character vocabulary lacks, or a model without a tokenizer. */
EMBER_API ember_status ember_tokenize(const ember_model* model, const char* text, size_t len, int32_t* ids,
                                      size_t capacity, size_t* n_ids);
/* Token ids to text: each id's bytes, and "<|token N|>" for ids without text (outside the tokenizer),
 * joined as valid UTF-8 (bytes that never form a character become U+FFFD). *len is set to the text's
 * length in bytes, without the NUL; `text` receives it plus a NUL when capacity > *len. text == NULL
 * with capacity 0 asks for the length (EMBER_OK); a capacity <= *len otherwise is EMBER_INVALID_ARGUMENT. */
EMBER_API ember_status ember_detokenize(const ember_model* model, const int32_t* ids, size_t n_ids, char* text,
                                        size_t capacity, size_t* len);
/* One token's raw bytes (possibly part of a UTF-8 character; may contain NUL), or the "<|token N|>"
 * placeholder for an id without text; buffer and length as ember_detokenize. Stream pieces through an
 * ember_utf8_stream to print them. */
EMBER_API ember_status ember_token_piece(const ember_model* model, int32_t id, char* bytes, size_t capacity, size_t* len);
/* 1 for ids that stand for no text (the end-of-text token, ids outside the tokenizer), else 0. */
EMBER_API int ember_token_is_special(const ember_model* model, int32_t id);

/* Joins token bytes into text that never ends inside a UTF-8 character (ember::Utf8Stream). */
typedef struct ember_utf8_stream ember_utf8_stream;
EMBER_API ember_status ember_utf8_stream_create(ember_utf8_stream** out);
EMBER_API void ember_utf8_stream_free(ember_utf8_stream* stream);
/* Adds `len` bytes; *text / *len: the complete valid UTF-8 that is ready (may be empty), owned by the
 * stream until its next call, NUL-terminated. */
EMBER_API ember_status ember_utf8_stream_push(ember_utf8_stream* stream, const char* bytes, size_t len,
                                              const char** text, size_t* text_len);
/* What is left at the end (U+FFFD for an incomplete character); the stream is then empty. */
EMBER_API ember_status ember_utf8_stream_flush(ember_utf8_stream* stream, const char** text, size_t* text_len);

/* ---- sessions ------------------------------------------------------------------------------------- */

typedef struct ember_session ember_session;

typedef enum ember_kv_type { EMBER_KV_F32 = 0, EMBER_KV_INT8 = 1 } ember_kv_type;

typedef struct ember_session_params {
  uint32_t n_threads;    /* >= 1; capped at the CPUs this process may use */
  uint32_t n_batch;      /* >= 1: tokens per prefill micro-batch (the abort callback's granularity) */
  ember_kv_type kv_type; /* EMBER_KV_F32 (exact) or EMBER_KV_INT8 (a quarter of the memory) */
} ember_session_params;

/* 1 thread, n_batch 64, EMBER_KV_F32. */
EMBER_API ember_session_params ember_session_default_params(void);
/* A session (KV cache and scratch sized for n_ctx now; prefill and decode never allocate). params NULL:
 * the defaults. */
EMBER_API ember_status ember_session_create(const ember_model* model, const ember_session_params* params,
                                            ember_session** out);
EMBER_API void ember_session_free(ember_session* session);

/* Runs n tokens at positions n_past..n_past+n-1. EMBER_CONTEXT_FULL when they do not fit,
 * EMBER_INVALID_ARGUMENT for n 0 or an id outside [0, n_vocab) (nothing changes then). EMBER_ABORTED
 * when the abort callback stopped it: the micro-batches before stay (n_past grew by a multiple of
 * n_batch), logits are NULL; prefill the remaining ids to continue exactly. */
EMBER_API ember_status ember_session_prefill(ember_session* session, const int32_t* ids, size_t n);
EMBER_API ember_status ember_session_decode(ember_session* session, int32_t id);
/* The n_vocab logits of the last token run, or NULL (none yet, after reset, trim or an abort). Owned by
 * the session, valid until its next call. */
EMBER_API const float* ember_session_logits(const ember_session* session);
/* The n_past ids in the cache. Owned by the session, valid until its next call. */
EMBER_API const int32_t* ember_session_tokens(const ember_session* session);
EMBER_API size_t ember_session_n_past(const ember_session* session);
EMBER_API size_t ember_session_n_ctx(const ember_session* session);
EMBER_API size_t ember_session_n_vocab(const ember_session* session);
EMBER_API uint32_t ember_session_n_threads(const ember_session* session); /* threads used */
/* Empties the cache. */
EMBER_API ember_status ember_session_reset(ember_session* session);
/* Cuts the cache back to its first n tokens (n <= n_past, else EMBER_INVALID_ARGUMENT): the next call
 * computes what a fresh session given those n tokens would. Logits are NULL until then (unless n == n_past). */
EMBER_API ember_status ember_session_trim(ember_session* session, size_t n);

/* Asked before each prefill micro-batch and each decode, on the calling thread: nonzero stops the call
 * with EMBER_ABORTED. It may read a flag other threads set; it must not call into the session. */
typedef int (*ember_abort_callback)(void* user_data);
/* Sets (or with callback NULL removes) the session's abort callback. */
EMBER_API ember_status ember_session_set_abort_callback(ember_session* session, ember_abort_callback callback,
                                                        void* user_data);

/* Session state, a prompt cache (format: docs/library.md): the cached tokens, keys and values, the last
 * logits, bound to the model (its fingerprint) and the KV type. */
/* The bytes ember_session_save_state writes now (grows with n_past). */
EMBER_API ember_status ember_session_state_size(const ember_session* session, size_t* size);
/* Writes the state into buf (capacity bytes); *written: the bytes written, or needed when the capacity
 * is too small (EMBER_INVALID_ARGUMENT). Does not allocate. */
EMBER_API ember_status ember_session_save_state(const ember_session* session, void* buf, size_t capacity,
                                                size_t* written);
/* Restores a state saved from a session of the same model and KV type (n_threads, n_batch may differ).
 * Every byte is checked first (sizes, version, checksums, dimensions, ids, values); any failure leaves the
 * session as it was: EMBER_INVALID_FILE (not a state, truncated, corrupted), EMBER_UNSUPPORTED (another
 * version), EMBER_INVALID_ARGUMENT (another model: the message names both; another KV type). The next
 * logits then equal, bit for bit, those the saved session computes. */
EMBER_API ember_status ember_session_restore_state(ember_session* session, const void* data, size_t size);
/* The same through a file (written to PATH.tmp.<pid>, then renamed over PATH). */
EMBER_API ember_status ember_session_save_state_file(const ember_session* session, const char* path);
EMBER_API ember_status ember_session_restore_state_file(ember_session* session, const char* path);

/* Classification (models with a classifier head, ember_model_config.n_classes > 0). */
/* The classifier on the last token run: n_classes softmax probabilities into probs (capacity >= n_classes). */
EMBER_API ember_status ember_session_classify(ember_session* session, float* probs, size_t capacity);
/* A whole text: resets the session, runs the model's input ([start] text [extract], cut to n_ctx as
 * its metadata says) and classifies it. */
EMBER_API ember_status ember_classify(ember_session* session, const char* text, size_t len, float* probs, size_t capacity);

/* ---- sampling ------------------------------------------------------------------------------------- */

typedef struct ember_sampler ember_sampler;

typedef struct ember_sampler_params {
  float temperature;    /* <= 0: greedy */
  int32_t top_k;        /* <= 0: no limit */
  float top_p;          /* in (0, 1]; 1: no limit */
  float repeat_penalty; /* 1: off */
  int32_t repeat_last_n; /* the penalty's window over the history; < 0: all of it */
  uint64_t seed;        /* a seed repeats a run on every platform */
} ember_sampler_params;

/* temperature 0.8, top-k 40, top-p 0.95, repeat penalty 1 (off) over 64 tokens, seed 0. */
EMBER_API ember_sampler_params ember_sampler_default_params(void);
/* params NULL: the defaults. EMBER_INVALID_ARGUMENT naming a parameter out of range, or n_vocab 0. */
EMBER_API ember_status ember_sampler_create(const ember_sampler_params* params, size_t n_vocab, ember_sampler** out);
EMBER_API void ember_sampler_free(ember_sampler* sampler);
/* The next token from n_vocab logits and the history (for the repetition penalty; may be NULL with
 * n_history 0). Does not allocate. */
EMBER_API ember_status ember_sampler_sample(ember_sampler* sampler, const float* logits, const int32_t* history,
                                            size_t n_history, int32_t* token);

/* ---- generation ----------------------------------------------------------------------------------- */

typedef enum ember_stop_reason {
  EMBER_STOP_NONE = 0,         /* not ended */
  EMBER_STOP_MAX_TOKENS = 1,   /* max_tokens generated */
  EMBER_STOP_END_OF_TEXT = 2,  /* the end-of-text token (not delivered) */
  EMBER_STOP_STOP_STRING = 3,  /* a stop string appeared (not delivered) */
  EMBER_STOP_CONTEXT_FULL = 4, /* the context is full and keep_going is off */
  EMBER_STOP_CALLBACK = 5,     /* the token callback returned nonzero */
  EMBER_STOP_ABORTED = 6       /* the session's abort callback returned nonzero */
} ember_stop_reason;
/* "max tokens", "end of text", ... A static string. */
EMBER_API const char* ember_stop_reason_name(ember_stop_reason reason);

typedef struct ember_generate_params {
  int64_t max_tokens;      /* >= 0 */
  int ignore_eot;          /* nonzero: sample on past the end-of-text token */
  int keep_going;          /* nonzero: when the context is full, re-prefill the last max(1, n_ctx/2) tokens */
  int echo_prompt;         /* nonzero: deliver the prompt's text first (token -1) */
  const char* const* stop; /* n_stop stop strings (non-empty, NUL-terminated; copied), or NULL */
  size_t n_stop;
} ember_generate_params;

/* max_tokens 128, nothing else. */
EMBER_API ember_generate_params ember_generate_default_params(void);

typedef struct ember_generate_result {
  ember_stop_reason stop_reason;
  size_t n_prompt;    /* tokens prefilled */
  size_t n_generated; /* tokens sampled and delivered */
  size_t n_shifts;    /* context shifts (keep_going) */
} ember_generate_result;

/* Called with each generated token and its text (valid UTF-8, len bytes, NUL-terminated; may be empty
 * while held back or incomplete), and with token -1 for the echoed prompt and the text left at the end
 * (only when non-empty). `text` is valid during the call. Return 0 to go on, nonzero to stop. */
typedef int (*ember_token_callback)(int32_t token, const char* text, size_t len, void* user_data);

/* Generates after what the session holds: prefills `prompt` (NUL-terminated text; NULL or "" continues
 * from the session's logits, e.g. after ember_session_restore_state), then samples with `sampler` until
 * max_tokens, the end-of-text token, a stop string, a full context (or shifts, with keep_going), the
 * callback (may be NULL) returns nonzero, or the session's abort callback stops it. An abort is not an
 * error: EMBER_OK with stop_reason EMBER_STOP_ABORTED. `params` NULL: the defaults. `result` may be NULL.
 * The loop allocates nothing per token (ember/generate.h). */
EMBER_API ember_status ember_generate(ember_session* session, ember_sampler* sampler, const char* prompt,
                                      const ember_generate_params* params, ember_token_callback callback,
                                      void* user_data, ember_generate_result* result);
/* The same with the prompt as n ids (n 0: continue). */
EMBER_API ember_status ember_generate_ids(ember_session* session, ember_sampler* sampler, const int32_t* prompt,
                                          size_t n, const ember_generate_params* params, ember_token_callback callback,
                                          void* user_data, ember_generate_result* result);

/* The same one step at a time (an iterator): create, start, then next until step.done. */
typedef struct ember_generator ember_generator;
typedef struct ember_step {
  int32_t token;    /* the token, or -1 (echoed prompt, final text, or done) */
  const char* text; /* valid UTF-8, NUL-terminated, len bytes; owned by the generator until its next call */
  size_t len;
  int done;         /* nonzero: the generation has ended (ember_generator_result tells why); no text */
} ember_step;
/* session and sampler must outlive the generator. */
EMBER_API ember_status ember_generator_create(ember_session* session, ember_sampler* sampler,
                                              const ember_generate_params* params, ember_generator** out);
EMBER_API void ember_generator_free(ember_generator* generator);
/* Prefills the prompt (text, or n ids; NULL / "" / 0 continues from the session). EMBER_ABORTED when the
 * abort callback stopped the prompt (the generation has then ended). */
EMBER_API ember_status ember_generator_start(ember_generator* generator, const char* prompt);
EMBER_API ember_status ember_generator_start_ids(ember_generator* generator, const int32_t* prompt, size_t n);
/* The next step into *step. After the end, step->done stays nonzero. An error (a failed decode) ends it. */
EMBER_API ember_status ember_generator_next(ember_generator* generator, ember_step* step);
/* Why and where it stopped so far. */
EMBER_API ember_status ember_generator_result(const ember_generator* generator, ember_generate_result* result);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* EMBER_H_ */
