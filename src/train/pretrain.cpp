// Pretraining (include/ember/pretrain.h): text splits, encoding, the loop, the checkpoint protocol.
#include "ember/pretrain.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "ember/convert.h"

#include "train/train_util.h"

namespace ember {

using train::clone_tokenizer;
using train::mix64;
using train::now_seconds;

namespace {

bool file_exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

// nanoGPT's get_batch: B windows starting uniformly in [0, len - T), targets shifted by one. The
// windows are a function of (seed, stream, index) only, so a resumed run sees the same batches.
void get_batch(const std::vector<int32_t>& data, size_t B, size_t T, uint64_t seed, uint64_t stream, uint64_t index,
               std::vector<int32_t>& x, std::vector<int32_t>& y) {
  const uint64_t range = data.size() - T;
  uint64_t state = mix64(seed ^ mix64(stream * 0x9e3779b97f4a7c15ull + index));
  for (size_t b = 0; b < B; ++b) {
    state = mix64(state + b);
    const uint64_t i = static_cast<uint64_t>((static_cast<unsigned __int128>(state) * range) >> 64);
    for (size_t t = 0; t < T; ++t) {
      x[b * T + t] = data[i + t];
      y[b * T + t] = data[i + t + 1];
    }
  }
}

}  // namespace

const char* text_split_name(TextSplit s) { return s == TextSplit::kChars ? "chars" : "lines"; }

size_t text_split_point(std::string_view text, TextSplit rule) {
  if (rule == TextSplit::kLines) {
    const size_t nl = text.find('\n', text.size() * 9 / 10);
    return nl == std::string_view::npos ? text.size() : nl + 1;
  }
  size_t chars = 0;
  for (unsigned char c : text) chars += (c & 0xC0) != 0x80;
  const size_t want = chars * 9 / 10;
  size_t seen = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
    if (seen == want) return i;
    ++seen;
  }
  return text.size();
}

// Byte order of UTF-8 strings is code point order, so no decoding is needed.
std::vector<std::string> sorted_characters(std::string_view text) {
  std::set<std::string> seen;
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    seen.insert(std::string(text.substr(i, len)));
    i += len;
  }
  return {seen.begin(), seen.end()};
}

Result<TokenStreams> encode_text_parts(const Tokenizer& tok, const std::vector<TextPart>& parts) {
  TokenStreams out;
  for (size_t i = 0; i < parts.size(); ++i) {
    for (int s = 0; s < 2; ++s) {
      auto enc = tok.encode(s == 0 ? parts[i].train : parts[i].val);
      if (!enc.ok()) return Status(enc.status().code(), parts[i].name + ": " + enc.status().message());
      std::vector<int32_t>& dst = s == 0 ? out.train : out.val;
      if (i > 0 && tok.eot_id() >= 0) dst.push_back(tok.eot_id());
      dst.insert(dst.end(), enc->begin(), enc->end());
    }
  }
  return out;
}

Status load_checkpoint_state(Trainer& tr, const ModelSpec& model, const std::string& out) {
  const std::string state_path = out + ".state", prev_state_path = out + ".state.prev";
  auto it = model.metadata.find("train.steps");
  const std::string want = it == model.metadata.end() ? "?" : it->second;
  std::string found, why;
  for (const std::string& cand : {state_path, prev_state_path}) {
    if (!file_exists(cand)) continue;
    const Status st = tr.load_state(cand);
    if (st.ok() && std::to_string(tr.steps()) == want) {
      found = cand;
      break;
    }
    why += (why.empty() ? "" : "; ") + (st.ok() ? cand + " is at step " + std::to_string(tr.steps()) : st.message());
  }
  if (found.empty())
    return invalid_file("no optimizer state for " + out + " (step " + want + ")" +
                        (why.empty() ? ": " + state_path + " is missing" : ": " + why));
  if (found == prev_state_path && std::rename(prev_state_path.c_str(), state_path.c_str()) != 0)
    return io_error(prev_state_path + ": cannot rename to " + state_path + ": " + std::strerror(errno));
  return Status();
}

Status pretrain(Trainer& tr, const Tokenizer& tok, const TokenStreams& data, const PretrainOptions& o,
                const PretrainCallbacks& cb) {
  const size_t B = tr.options().batch, T = tr.options().seq_len;
  const uint64_t seed = tr.options().seed;
  const uint64_t iters = o.iters, first = o.resume ? tr.steps() : 0;
  if (o.accum == 0 || o.eval_iters == 0) return invalid_argument("pretrain: accum and eval_iters must be at least 1");
  if (data.train.size() < T + 2 || data.val.size() < T + 2)
    return invalid_argument("pretrain: the data is too short for seq_len " + std::to_string(T) + " (" +
                            std::to_string(data.train.size()) + " train and " + std::to_string(data.val.size()) +
                            " val tokens; each stream needs more than seq_len + 1)");
  const uint32_t V = tr.config().n_vocab;
  for (const std::vector<int32_t>* d : {&data.train, &data.val})
    for (size_t i = 0; i < d->size(); ++i)
      if ((*d)[i] < 0 || static_cast<uint32_t>((*d)[i]) >= V)
        return invalid_argument("pretrain: token " + std::to_string((*d)[i]) + " at index " + std::to_string(i) + " of the " +
                                (d == &data.train ? "train" : "val") + " stream is outside the vocabulary (n_vocab " +
                                std::to_string(V) + ")");
  if (first > iters)
    return invalid_argument(o.out + " already has " + std::to_string(first) + " steps (iters " + std::to_string(iters) + ")");
  LrSchedule sched = o.schedule;
  if (sched.decay_iters == 0) sched.decay_iters = iters;
  const std::string state_path = o.out + ".state", prev_state_path = o.out + ".state.prev";
  auto pause = [&] {
    if (cb.after_checkpoint_file) cb.after_checkpoint_file();
  };

  std::vector<int32_t> x(B * T), y(B * T);
  auto evaluate = [&](uint64_t it, PretrainEval* e) -> Status {
    const double e0 = now_seconds();
    tr.set_training(false);
    for (int s = 0; s < 2; ++s) {
      const std::vector<int32_t>& d = s == 0 ? data.train : data.val;
      double sum = 0.0;
      for (uint64_t k = 0; k < o.eval_iters; ++k) {
        get_batch(d, B, T, seed, 2 + static_cast<uint64_t>(s), it * o.eval_iters + k, x, y);
        EMBER_ASSIGN_OR_RETURN(const float l, tr.forward(x.data(), y.data()));
        sum += l;
      }
      (s == 0 ? e->train_loss : e->val_loss) = sum / static_cast<double>(o.eval_iters);
    }
    tr.set_training(true);
    e->step = it;
    e->seconds = now_seconds() - e0;
    return cb.on_eval ? cb.on_eval(*e) : Status();
  };
  auto checkpoint = [&](const PretrainEval& e) -> Status {
    if (o.out.empty()) return Status();
    ModelSpec spec = tr.to_spec();
    EMBER_ASSIGN_OR_RETURN(spec.tokenizer, clone_tokenizer(tok));
    for (const auto& kv : o.metadata) spec.metadata[kv.first] = kv.second;
    spec.metadata["train.train_loss"] = std::to_string(e.train_loss);
    spec.metadata["train.val_loss"] = std::to_string(e.val_loss);
    if (cb.on_checkpoint) EMBER_RETURN_IF_ERROR(cb.on_checkpoint(e));
    if (file_exists(state_path) && std::rename(state_path.c_str(), prev_state_path.c_str()) != 0)
      return io_error(state_path + ": cannot rename to " + prev_state_path + ": " + std::strerror(errno));
    pause();
    EMBER_RETURN_IF_ERROR(tr.save_state(state_path));
    pause();
    EMBER_RETURN_IF_ERROR(write_model_file(spec, o.out));
    pause();
    std::remove(prev_state_path.c_str());
    return Status();
  };

  for (uint64_t it = first; it < iters; ++it) {
    if (o.eval_every > 0 && it % o.eval_every == 0 && (it != first || it == 0)) {
      PretrainEval e;
      EMBER_RETURN_IF_ERROR(evaluate(it, &e));
      if (it != first) EMBER_RETURN_IF_ERROR(checkpoint(e));
    }
    PretrainStep st;
    const double t0 = now_seconds();
    st.lr = learning_rate(sched, it);
    tr.zero_grad();
    for (uint64_t a = 0; a < o.accum; ++a) {
      get_batch(data.train, B, T, seed, 1, it * o.accum + a, x, y);
      EMBER_ASSIGN_OR_RETURN(const float l, tr.forward(x.data(), y.data()));
      st.loss += l;
      EMBER_RETURN_IF_ERROR(tr.backward(1.0f / static_cast<float>(o.accum)));
    }
    st.loss /= static_cast<double>(o.accum);
    st.grad_norm = tr.clip_grad_norm(o.grad_clip);
    tr.step(st.lr, o.adam);
    st.seconds = now_seconds() - t0;
    if (!std::isfinite(st.loss))
      return invalid_argument("pretrain: the loss is " + std::to_string(st.loss) + " at iteration " + std::to_string(it) +
                              "; try a lower learning rate");
    st.step = it + 1, st.iters = iters;
    if (cb.on_step) EMBER_RETURN_IF_ERROR(cb.on_step(st));
  }
  PretrainEval e;
  EMBER_RETURN_IF_ERROR(evaluate(iters, &e));
  return checkpoint(e);
}

}  // namespace ember
