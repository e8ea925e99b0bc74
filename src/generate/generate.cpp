// The generate loop (include/ember/generate.h). One Generator::next() is: run the previous token through
// the model (or shift the window), sample, deliver the token's text. Running the token at the start of
// the next step rather than the end of its own lets a caller show a token before the forward pass of the
// next one, and makes the last token of max_tokens cost no forward pass (as ember-generate always did).
#include "ember/generate.h"

#include <algorithm>
#include <cstdio>

#include "core/visibility.h"
#include "ember/tokenizer.h"

namespace ember {

namespace {
constexpr size_t kTextReserve = 256;               // bytes of one step's text without allocating
constexpr size_t kKeepGoingHistory = size_t{1} << 16;  // history reserved beyond n_ctx with keep_going
}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kNone: return "none";
    case StopReason::kMaxTokens: return "max tokens";
    case StopReason::kEndOfText: return "end of text";
    case StopReason::kStopString: return "stop string";
    case StopReason::kContextFull: return "context full";
    case StopReason::kCallback: return "callback";
    case StopReason::kAborted: return "aborted";
  }
  return "unknown";
}

struct EMBER_HIDDEN Generator::Impl {
  Session* session = nullptr;
  Sampler* sampler = nullptr;
  GenerateOptions opts;
  const Tokenizer* tok = nullptr;
  int32_t eot = -1;       // the end-of-text id generation stops at, -1: none (or ignore_eot)
  size_t max_stop = 0;    // longest stop string
  std::vector<int32_t> history, generated;
  Utf8Stream utf8;
  // A step's text is a view of a whole std::string, so it is NUL-terminated (the C API relies on it).
  std::string held;  // text not delivered yet: it may be the start of a stop string
  std::string out;   // the current step's text
  std::string echo;  // the prompt's text, delivered by the first step when echo_prompt
  char placeholder[32] = {};
  bool started = false, ended = false, final_done = false, echo_pending = false;
  int32_t pending = -1;  // delivered, not yet run through the model
  StopReason stop = StopReason::kNone;
  size_t n_prompt = 0, n_shifts = 0;

  std::string_view piece(int32_t id) {
    if (id >= 0 && id < tok->n_vocab()) return tok->token_bytes(id);
    std::snprintf(placeholder, sizeof placeholder, "<|token %d|>", static_cast<int>(id));  // as Tokenizer::piece
    return placeholder;
  }
  // Appends the token's text to `out`, holding back what may start a stop string; true when one appeared.
  bool emit(int32_t id) {
    if (opts.stop.empty()) {
      utf8.push(piece(id), &out);
      return false;
    }
    utf8.push(piece(id), &held);
    size_t first = std::string::npos;
    for (const std::string& s : opts.stop) first = std::min(first, held.find(s));
    if (first != std::string::npos) {
      out.append(held, 0, first);
      held.clear();
      return true;
    }
    size_t keep = 0;  // the longest end of `held` that begins a stop string
    for (const std::string& s : opts.stop)
      for (size_t l = std::min(s.size() - 1, held.size()); l > keep; --l)
        if (held.compare(held.size() - l, l, s, 0, l) == 0) {
          keep = l;
          break;
        }
    out.append(held, 0, held.size() - keep);
    held.erase(0, held.size() - keep);
    return false;
  }
  // Ends the generation; delivers what text is left (none after a stop string) as a token -1 step.
  bool finish(StopReason r, GenerateStep* step) {
    stop = r;
    ended = true;
    final_done = true;
    if (r != StopReason::kStopString) {
      out.append(held);
      held.clear();
      utf8.flush(&out);
    }
    *step = GenerateStep{-1, out};
    return !out.empty();
  }
};

Generator::Generator() : impl_(new Impl()) {}
Generator::~Generator() = default;

Result<std::unique_ptr<Generator>> Generator::create(Session& session, Sampler& sampler, const GenerateOptions& opts) {
  if (opts.max_tokens < 0)
    return invalid_argument("generate: max_tokens must be at least 0 (got " + std::to_string(opts.max_tokens) + ")");
  for (size_t i = 0; i < opts.stop.size(); ++i)
    if (opts.stop[i].empty()) return invalid_argument("generate: stop string " + std::to_string(i) + " is empty");
  std::unique_ptr<Generator> g(new Generator());
  Impl& I = *g->impl_;
  I.session = &session;
  I.sampler = &sampler;
  I.opts = opts;
  I.tok = &session.model().tokenizer();
  I.eot = opts.ignore_eot || I.tok->kind() == TokenizerKind::kNone ? -1 : I.tok->eot_id();
  for (const std::string& s : opts.stop) I.max_stop = std::max(I.max_stop, s.size());
  I.out.reserve(kTextReserve + I.max_stop);
  I.held.reserve(kTextReserve + 2 * I.max_stop);
  I.utf8.reserve(kTextReserve);
  return g;
}

Status Generator::start(std::string_view prompt) {
  const Tokenizer& tok = *impl_->tok;
  if (prompt.empty()) return start(nullptr, 0);
  if (tok.kind() == TokenizerKind::kNone) {
    impl_->started = impl_->ended = impl_->final_done = true;
    return invalid_argument("generate: " + impl_->session->model().path() +
                            " has no tokenizer; give the prompt as token ids");
  }
  Result<std::vector<int32_t>> ids = tok.encode(prompt);
  if (!ids.ok()) {
    impl_->started = impl_->ended = impl_->final_done = true;
    return ids.status().with_context("generate: the prompt");
  }
  return start(ids->data(), ids->size());
}

Status Generator::start(const int32_t* prompt, size_t n) {
  Impl& I = *impl_;
  Session& s = *I.session;
  I.started = I.ended = I.final_done = true;  // until the prompt is in: next() returns false
  I.echo_pending = false;
  I.stop = StopReason::kNone;
  I.pending = -1;
  I.n_prompt = n;
  I.n_shifts = 0;
  I.generated.clear();
  I.held.clear();
  I.out.clear();
  I.echo.clear();
  I.utf8 = Utf8Stream();
  I.utf8.reserve(kTextReserve);
  if (!prompt && n) return invalid_argument("generate: null prompt of " + std::to_string(n) + " tokens");
  if (n == 0 && !s.logits())
    return invalid_argument("generate: no prompt, and the session has no logits to continue from (prefill a prompt, or "
                            "restore a saved state, first)");
  // Room for the whole generation: the repetition history and the ids (see the header's Allocation).
  const size_t T = s.n_ctx(), max = static_cast<size_t>(I.opts.max_tokens);
  const size_t more = std::min(max, I.opts.keep_going ? T + kKeepGoingHistory : T + 1);
  I.history.clear();
  I.history.reserve(s.n_past() + n + more);
  I.history.insert(I.history.end(), s.tokens(), s.tokens() + s.n_past());
  I.generated.reserve(more);
  // The abort callback is asked before each micro-batch of the prompt, then by each decode: once between
  // any two tokens. Without a prompt nothing runs before the first token: ask here.
  Status st = n > 0 ? s.prefill(prompt, n)
                    : s.abort_callback() && s.abort_callback()() ? aborted("generate: aborted by the abort callback")
                                                                 : Status::Ok();
  if (st.code() == StatusCode::kAborted) I.stop = StopReason::kAborted;
  if (!st.ok()) return st;
  I.history.insert(I.history.end(), prompt, prompt + n);
  if (I.opts.echo_prompt) {
    for (size_t i = 0; i < n; ++i) I.utf8.push(I.piece(prompt[i]), &I.echo);
    I.echo_pending = !I.echo.empty();
  }
  I.ended = I.final_done = false;
  return Status::Ok();
}

Result<bool> Generator::next(GenerateStep* step) {
  Impl& I = *impl_;
  if (!step) return invalid_argument("generate: next() needs a step to fill");
  if (!I.started) return invalid_argument("generate: call start() first");
  *step = GenerateStep{};
  I.out.clear();
  if (I.echo_pending) {
    I.echo_pending = false;
    *step = GenerateStep{-1, I.echo};
    return true;
  }
  if (I.ended) {
    if (I.final_done) return false;
    return I.finish(I.stop, step);
  }
  Session& s = *I.session;
  if (I.generated.size() == static_cast<size_t>(I.opts.max_tokens)) return I.finish(StopReason::kMaxTokens, step);
  if (I.pending >= 0) {
    Status st;
    if (s.n_past() == s.n_ctx()) {
      if (!I.opts.keep_going) return I.finish(StopReason::kContextFull, step);
      // Learned absolute positions cannot slide: re-encode the most recent half window (at least the last
      // token, for a model of n_ctx 1). It ends with the pending token, so that is run too.
      const size_t keep = s.n_ctx() / 2 > 0 ? s.n_ctx() / 2 : 1;
      s.reset();
      st = s.prefill(I.history.data() + I.history.size() - keep, keep);
      ++I.n_shifts;
    } else {
      st = s.decode(I.pending);
    }
    I.pending = -1;
    if (st.code() == StatusCode::kAborted) return I.finish(StopReason::kAborted, step);
    if (!st.ok()) {
      I.ended = I.final_done = true;
      return st;
    }
  }
  const int32_t id = I.sampler->sample(s.logits(), I.history.data(), I.history.size());
  if (id == I.eot) return I.finish(StopReason::kEndOfText, step);
  I.history.push_back(id);
  I.generated.push_back(id);
  I.pending = id;
  if (I.emit(id)) {
    I.stop = StopReason::kStopString;
    I.ended = I.final_done = true;
  }
  *step = GenerateStep{id, I.out};
  return true;
}

StopReason Generator::stop_reason() const { return impl_->stop; }
size_t Generator::n_prompt() const { return impl_->n_prompt; }
size_t Generator::n_generated() const { return impl_->generated.size(); }
size_t Generator::n_shifts() const { return impl_->n_shifts; }
const std::vector<int32_t>& Generator::generated() const { return impl_->generated; }

namespace {

Result<GenerateResult> run(Generator& g, Status started, const TokenCallback& on_token) {
  GenerateResult r;
  if (!started.ok() && started.code() != StatusCode::kAborted) return started;
  GenerateStep step;
  for (;;) {
    Result<bool> more = g.next(&step);
    if (!more.ok()) return more.status();
    if (!*more) break;
    if (step.token < 0 && step.text.empty()) continue;
    if (on_token && !on_token(step.token, step.text)) {
      r.stop_reason = StopReason::kCallback;
      break;
    }
  }
  if (r.stop_reason == StopReason::kNone) r.stop_reason = g.stop_reason();
  r.n_prompt = g.n_prompt();
  r.n_generated = g.n_generated();
  r.n_shifts = g.n_shifts();
  return r;
}

}  // namespace

Result<GenerateResult> generate(Session& session, Sampler& sampler, const int32_t* prompt, size_t n,
                                const GenerateOptions& opts, const TokenCallback& on_token) {
  EMBER_ASSIGN_OR_RETURN(std::unique_ptr<Generator> g, Generator::create(session, sampler, opts));
  const Status st = g->start(prompt, n);
  return run(*g, st, on_token);
}

Result<GenerateResult> generate(Session& session, Sampler& sampler, std::string_view prompt,
                                const GenerateOptions& opts, const TokenCallback& on_token) {
  EMBER_ASSIGN_OR_RETURN(std::unique_ptr<Generator> g, Generator::create(session, sampler, opts));
  const Status st = g->start(prompt);
  return run(*g, st, on_token);
}

}  // namespace ember
