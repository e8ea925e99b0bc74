// ember/generate.h - text generation: prompt in, streamed text out (the loop of ember-generate).
//
//   auto sampler = ember::Sampler::create(params, model->config().n_vocab);    // see sampler.h
//   ember::GenerateOptions go;
//   go.max_tokens = 100;
//   go.stop = {"\n\n"};
//   auto r = ember::generate(*session, *sampler, "ROMEO:", go, [](int32_t token, std::string_view text) {
//     std::fwrite(text.data(), 1, text.size(), stdout);
//     return true;                                     // false: stop here
//   });
//   // r->stop_reason, r->n_generated; r.status() on an error
//
// Or pulled one step at a time (an iterator in another language, a UI event loop):
//   auto g = ember::Generator::create(*session, *sampler, go);
//   ember::Status st = (*g)->start("ROMEO:");
//   ember::GenerateStep step;
//   while ((*g)->next(&step).value()) fwrite(step.text.data(), 1, step.text.size(), stdout);
//
// What a generation does: prefills the prompt after what the session already holds (a fresh session, or
// one restored from a saved state: then the prompt may be empty), then per token: samples from the
// logits with the repetition history (the session's tokens, the prompt and every generated token), stops
// at the end-of-text token (unless ignore_eot), delivers the token's text, stops after max_tokens, and
// runs the token through the model. When the context is full it stops (StopReason::kContextFull) or,
// with keep_going, shifts the window: ember's positions are learned and absolute, so the cache cannot
// slide; it is reset and the last max(1, n_ctx / 2) tokens of the history are prefilled again (n_ctx 1
// works: the last token alone).
// Text: token bytes joined by a Utf8Stream, so every piece of text delivered is valid UTF-8 and never
// ends inside a character; an id that stands for no text (a special token, an id beyond the tokenizer,
// a model without a tokenizer) gives Tokenizer::piece's "<|token N|>" placeholder. Stop strings are
// matched in that text: text that may be the start of a stop string is held back until it is known not
// to be; the stop string and anything after it are never delivered.
// Abort: the session's abort callback (SessionOptions::abort) is asked before each prefill micro-batch
// and each decode, so between any two tokens: the generation then ends with StopReason::kAborted.
// Allocation: create() and start() allocate; next() does not while the history fits what start()
// reserved (prompt + max_tokens, up to 64Ki tokens beyond the context with keep_going) and each token's
// text fits 256 bytes (longer pieces grow the buffers once).
// Thread safety: a Generator uses its Session and Sampler exclusively while it lives: one thread at a
// time, and not concurrently with direct calls on them. They must outlive it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/export.h"
#include "ember/sampler.h"
#include "ember/session.h"
#include "ember/status.h"

namespace ember {

enum class StopReason {
  kNone = 0,     // not ended yet
  kMaxTokens,    // max_tokens generated
  kEndOfText,    // the model sampled its end-of-text token (not delivered, not counted)
  kStopString,   // a stop string appeared in the text
  kContextFull,  // the context is full and keep_going is off
  kCallback,     // the token callback returned false
  kAborted,      // the session's abort callback returned true
};
EMBER_API const char* stop_reason_name(StopReason r);  // "max tokens", "end of text", ...

struct GenerateOptions {
  int64_t max_tokens = 128;  // tokens to generate, >= 0 (0: only the prompt is run)
  bool ignore_eot = false;   // sample on past the end-of-text token (it prints as its text or placeholder)
  bool keep_going = false;   // when the context is full, shift the window (see above) instead of stopping
  bool echo_prompt = false;  // deliver the prompt's text first (one step with token -1)
  std::vector<std::string> stop;  // stop strings (non-empty); any one ends the generation
};

struct GenerateStep {
  int32_t token = -1;     // the sampled token; -1 for text of no new token (echoed prompt, final flush)
  std::string_view text;  // valid UTF-8 that is ready (may be empty); valid until the next call
};

class EMBER_API Generator {
 public:
  // Fails with kInvalidArgument for max_tokens < 0 or an empty stop string.
  static Result<std::unique_ptr<Generator>> create(Session& session, Sampler& sampler, const GenerateOptions& opts);
  ~Generator();

  // Prefills `prompt` after the session's n_past() tokens and gets ready to sample. n == 0 continues
  // from the session as it is (it must have logits: after a prefill, decode or restore_state). Errors:
  // the session's (kContextFull when the prompt does not fit, kInvalidArgument for an id outside the
  // vocabulary, ...), kAborted from its abort callback (the generator has then ended with kAborted).
  // Calling start() again begins a new generation on the same session and sampler.
  Status start(const int32_t* prompt, size_t n);
  Status start(std::string_view prompt);  // encoded with the model's tokenizer; "" is n == 0
  // One step: true with *step filled, false when the generation has ended (stop_reason() tells why), or
  // the error that ended it (a failed decode). Once false, it stays false until start().
  Result<bool> next(GenerateStep* step);

  StopReason stop_reason() const;  // kNone while running
  size_t n_prompt() const;         // tokens prefilled by start()
  size_t n_generated() const;      // tokens sampled and delivered (the end-of-text token is not counted)
  size_t n_shifts() const;         // context shifts (keep_going)
  const std::vector<int32_t>& generated() const;  // the generated ids

 private:
  Generator();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Called with each step of a generation: a token (text may be empty while held back or incomplete), or
// token -1 with the echoed prompt or the final text (only when non-empty). Return false to stop.
using TokenCallback = std::function<bool(int32_t token, std::string_view text)>;

struct GenerateResult {
  StopReason stop_reason = StopReason::kNone;
  size_t n_prompt = 0, n_generated = 0, n_shifts = 0;
};

// A whole generation through a Generator. An abort (also during the prompt) is not an error: it ends
// with stop_reason kAborted. Errors as Generator::create / start / next.
EMBER_API Result<GenerateResult> generate(Session& session, Sampler& sampler, const int32_t* prompt, size_t n,
                                          const GenerateOptions& opts, const TokenCallback& on_token);
EMBER_API Result<GenerateResult> generate(Session& session, Sampler& sampler, std::string_view prompt,
                                          const GenerateOptions& opts, const TokenCallback& on_token);

}  // namespace ember
