// GPT-1 task fine-tuning (include/ember/finetune.h): the input transformation, the head surgery, the
// schedule and the epoch loop over a Trainer.
#include "ember/finetune.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>
#include <utility>

#include "train/train_util.h"

namespace ember {

using train::clone_tokenizer;
using train::mix64;
using train::now_seconds;

namespace {

// N(0, std) from a counter-based hash (Box-Muller), so the new rows depend on the seed alone.
float normal_at(uint64_t seed, uint64_t i, float std) {
  const uint64_t a = mix64(seed ^ mix64(2 * i + 0x51ed270b2a6f1d3bull)), b = mix64(seed ^ mix64(2 * i + 1 + 0x51ed270b2a6f1d3bull));
  const double u1 = (static_cast<double>(a >> 11) + 1.0) * 0x1.0p-53, u2 = static_cast<double>(b >> 11) * 0x1.0p-53;
  return static_cast<float>(std * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

std::vector<float> f32_values(const TensorData& t) {  // an f32 tensor's values
  std::vector<float> v(t.data.size() / 4);
  std::memcpy(v.data(), t.data.data(), v.size() * 4);
  return v;
}
void set_f32(TensorData& t, const std::vector<float>& v, std::vector<uint64_t> shape) {
  t.dtype = DType::kF32;
  t.scales.clear();
  t.shape = std::move(shape);
  t.data.resize(v.size() * 4);
  std::memcpy(t.data.data(), v.data(), v.size() * 4);
}

struct Example {
  std::vector<int32_t> seq;  // [start] + text + [extract]
  int32_t label;             // -1: a label the train rows lack
};

// Pads `idx` examples into (B, T) tokens (pad 0), LM targets (-1 for padding, the last text token and
// the extract token), labels and the extract positions. Returns T.
size_t make_batch(const std::vector<Example>& ex, const size_t* idx, size_t B, std::vector<int32_t>& x, std::vector<int32_t>& y,
                  std::vector<int32_t>& labels, std::vector<int32_t>& last) {
  size_t T = 0;
  for (size_t b = 0; b < B; ++b) T = std::max(T, ex[idx[b]].seq.size());
  for (size_t b = 0; b < B; ++b) {
    const auto& s = ex[idx[b]].seq;
    const size_t L = s.size();
    for (size_t t = 0; t < T; ++t) {
      x[b * T + t] = t < L ? s[t] : 0;
      y[b * T + t] = t + 1 <= L - 2 && L >= 2 ? s[t + 1] : -1;
    }
    labels[b] = ex[idx[b]].label;
    last[b] = static_cast<int32_t>(L - 1);
  }
  return T;
}

}  // namespace

Result<ModelSpec> finetune(ModelSpec spec, const std::vector<LabelledText>& rows, const FinetuneOptions& o,
                           const FinetuneCallbacks& cb) {
  const std::string& init = o.init_name;
  const std::string& data = o.data_name;
  if (o.batch == 0 || o.epochs == 0) return invalid_argument("finetune: batch and epochs must be at least 1");
  if (!(o.warmup_frac >= 0.0 && o.warmup_frac <= 1.0)) return invalid_argument("finetune: warmup_frac must be in [0, 1]");
  if (!(o.lm_weight >= 0.0f) || !std::isfinite(o.lm_weight)) return invalid_argument("finetune: lm_weight must be finite and >= 0");
  if (!(o.lr >= 0.0f) || !std::isfinite(o.lr)) return invalid_argument("finetune: lr must be finite and >= 0");
  if (spec.config.n_classes > 0)
    return invalid_argument(init + " already has a classifier head (n_classes " + std::to_string(spec.config.n_classes) + ")");
  if (spec.tokenizer.kind() == TokenizerKind::kNone) return invalid_argument(init + " has no tokenizer");
  if (spec.config.n_ctx < 3) return invalid_argument(init + ": n_ctx " + std::to_string(spec.config.n_ctx) + " leaves no room for text");
  bool all_f32 = true;
  for (const auto& t : spec.tensors) all_f32 = all_f32 && t.dtype == DType::kF32;
  if (!all_f32) {  // expand f16 / int8 through a minimal trainer
    TrainOptions o1;
    o1.seq_len = 1;
    EMBER_ASSIGN_OR_RETURN(auto tmp, Trainer::from_spec(spec, o1));
    ModelSpec f = tmp->to_spec();
    f.tokenizer = std::move(spec.tokenizer);
    f.metadata = std::move(spec.metadata);
    spec = std::move(f);
  }
  const Tokenizer& tok = spec.tokenizer;

  // The classes: the sorted distinct labels of the train rows.
  const bool eval_on = !o.eval_split.empty() && o.eval_split != "none";
  std::set<std::string> label_set;
  for (const auto& r : rows)
    if (r.split == "train" && (!o.balanced || r.balanced)) label_set.insert(r.label);
  if (label_set.empty()) return invalid_argument(data + ": no rows of split 'train'" + std::string(o.balanced ? " marked balanced" : ""));
  if (label_set.size() < 2) return invalid_argument(data + ": the train rows have only one label ('" + *label_set.begin() + "')");
  FinetunePlan plan;
  plan.labels.assign(label_set.begin(), label_set.end());
  const std::vector<std::string>& labels = plan.labels;
  for (const auto& r : rows) {  // a bad name is refused here, with its line, not by ember-classify later
    const Status st = check_class_label(r.label);
    if (!st.ok() && label_set.count(r.label)) return invalid_argument(data + " line " + std::to_string(r.line) + ": " + st.message());
  }
  EMBER_ASSIGN_OR_RETURN(const std::string labels_csv, join_class_labels(labels));

  // The input transformation: [start] text [extract], texts cut to n_ctx - 2 tokens.
  const uint32_t V0 = spec.config.n_vocab, C = spec.config.n_embd, K = static_cast<uint32_t>(labels.size());
  const int32_t start_id = static_cast<int32_t>(V0), extract_id = static_cast<int32_t>(V0 + 1);
  const size_t room = spec.config.n_ctx - 2;
  std::vector<Example> train, evals;
  for (const auto& r : rows) {
    const bool selected = !o.balanced || r.balanced;
    const bool is_train = r.split == "train" && selected;
    const bool is_eval = eval_on && r.split == o.eval_split && selected;
    if (!is_train && !is_eval) continue;
    auto enc = tok.encode(r.text);
    if (!enc.ok())
      return invalid_argument(data + " line " + std::to_string(r.line) + ": " + enc.status().message() +
                              (tok.kind() == TokenizerKind::kChars
                                   ? "; " + init + " is a character-level model: fine-tune one with a byte-level BPE vocabulary " +
                                         "instead, e.g. the English starter models/english.ember (models/README.md)"
                                   : ""));
    std::vector<int32_t> body = std::move(enc).value();
    plan.truncated += truncate_tokens(body, room, o.truncation);
    Example e;
    e.seq.push_back(start_id);
    e.seq.insert(e.seq.end(), body.begin(), body.end());
    e.seq.push_back(extract_id);
    const auto it = std::lower_bound(labels.begin(), labels.end(), r.label);
    e.label = it != labels.end() && *it == r.label ? static_cast<int32_t>(it - labels.begin()) : -1;
    if (is_eval && e.label < 0) ++plan.eval_unknown;
    if (is_eval) evals.push_back(e);
    if (is_train) train.push_back(std::move(e));
  }

  // The model: two new token rows (and LM head rows when untied), a new head.
  ModelConfig cfg = spec.config;
  cfg.n_vocab = V0 + 2;
  cfg.n_classes = K;
  uint64_t counter = 0;
  for (auto& t : spec.tensors) {
    if (t.name != "wte" && t.name != "lm_head.weight") continue;
    std::vector<float> v = f32_values(t);
    for (size_t i = 0; i < 2 * static_cast<size_t>(C); ++i) v.push_back(normal_at(o.seed, counter++, 0.02f));
    set_f32(t, v, {cfg.n_vocab, C});
  }
  {
    std::vector<float> w(static_cast<size_t>(K) * C);
    for (auto& f : w) f = normal_at(o.seed ^ 0xc1a55ull, counter++, 0.02f);
    TensorData cw, cb_;
    cw.name = "cls.weight";
    set_f32(cw, w, {K, C});
    cb_.name = "cls.bias";
    set_f32(cb_, std::vector<float>(K, 0.0f), {K});
    spec.tensors.push_back(std::move(cw));
    spec.tensors.push_back(std::move(cb_));
  }
  spec.config = cfg;
  TrainOptions topt;
  topt.batch = o.batch;
  topt.seq_len = cfg.n_ctx;
  topt.n_threads = o.n_threads;
  topt.dropout = o.dropout;
  topt.seed = o.seed;
  EMBER_ASSIGN_OR_RETURN(auto tr, Trainer::from_spec(spec, topt));

  const size_t B = o.batch;
  const uint64_t total = o.epochs * ((train.size() + B - 1) / B);
  const uint64_t warmup = static_cast<uint64_t>(std::llround(o.warmup_frac * static_cast<double>(total)));
  plan.config = cfg;
  plan.base_vocab = V0;
  plan.start_id = start_id, plan.extract_id = extract_id;
  plan.train_rows = train.size(), plan.eval_rows = evals.size();
  plan.max_tokens = room;
  plan.steps_per_epoch = (train.size() + B - 1) / B, plan.total_steps = total, plan.warmup_steps = warmup;
  plan.n_params = tr->n_params(), plan.memory_bytes = tr->memory_bytes(), plan.n_threads = tr->n_threads();
  if (cb.on_start) cb.on_start(plan);
  // GPT-1: linear warmup to the peak, then linear decay to 0 at the end of training.
  auto lr_at = [&](uint64_t it) -> float {
    if (it < warmup) return o.lr * static_cast<float>(it + 1) / static_cast<float>(warmup + 1);
    return o.lr * static_cast<float>(total - it) / static_cast<float>(total - warmup);
  };

  std::vector<int32_t> x(B * cfg.n_ctx), y(B * cfg.n_ctx), lab(B), last(B);
  auto evaluate = [&](double* loss, double* accuracy) -> Status {
    tr->set_training(false);
    size_t correct = 0;
    double sum = 0.0;
    std::vector<size_t> idx(evals.size());
    std::iota(idx.begin(), idx.end(), size_t{0});
    for (size_t i = 0; i < evals.size(); i += B) {
      const size_t nb = std::min(B, evals.size() - i);
      const size_t T = make_batch(evals, idx.data() + i, nb, x, y, lab, last);
      EMBER_ASSIGN_OR_RETURN(const float l, tr->forward_classify(x.data(), nullptr, lab.data(), last.data(), nb, T, 0.0f));
      sum += static_cast<double>(l) * static_cast<double>(nb);
      const float* z = tr->class_logits();
      for (size_t b = 0; b < nb; ++b) {
        const size_t k = static_cast<size_t>(std::max_element(z + b * K, z + (b + 1) * K) - (z + b * K));
        correct += static_cast<int32_t>(k) == lab[b];
      }
    }
    tr->set_training(true);
    *loss = sum / static_cast<double>(evals.size());
    *accuracy = static_cast<double>(correct) / static_cast<double>(evals.size());
    return Status();
  };

  double last_accuracy = -1.0;
  uint64_t it = 0;
  std::vector<size_t> order(train.size());
  for (uint64_t ep = 0; ep < o.epochs; ++ep) {
    std::iota(order.begin(), order.end(), size_t{0});
    for (size_t i = order.size(); i > 1; --i) {  // Fisher-Yates on (seed, epoch)
      const uint64_t r = mix64(o.seed ^ mix64(ep * 0x9e3779b97f4a7c15ull + i));
      std::swap(order[i - 1], order[static_cast<size_t>((static_cast<unsigned __int128>(r) * i) >> 64)]);
    }
    FinetuneEpoch epoch;
    epoch.epoch = ep + 1;
    for (size_t s = 0; s < plan.steps_per_epoch; ++s, ++it) {
      const double t0 = now_seconds();
      const size_t nb = std::min(B, train.size() - s * B);
      const size_t T = make_batch(train, order.data() + s * B, nb, x, y, lab, last);
      FinetuneStep st;
      for (size_t b = 0; b < nb; ++b) st.text_tokens += static_cast<uint64_t>(last[b]) + 1;  // text tokens, not padding
      st.lr = lr_at(it);
      tr->zero_grad();
      EMBER_ASSIGN_OR_RETURN(st.loss, tr->forward_classify(x.data(), o.lm_weight > 0 ? y.data() : nullptr, lab.data(), last.data(),
                                                           nb, T, o.lm_weight));
      if (!std::isfinite(st.loss))
        return invalid_argument("finetune: the loss is " + std::to_string(st.loss) + " at step " + std::to_string(it) +
                                "; try a lower learning rate");
      EMBER_RETURN_IF_ERROR(tr->backward(1.0f));
      st.grad_norm = tr->clip_grad_norm(o.grad_clip);
      tr->step(st.lr, o.adam);
      st.seconds = now_seconds() - t0;
      const Trainer::ClassifyLoss parts = tr->last_classify_loss();
      st.class_loss = parts.classification, st.lm_loss = parts.lm;
      st.step = it + 1, st.total = total, st.epoch = ep + 1;
      epoch.loss += st.loss;
      epoch.class_loss += parts.classification;
      if (o.lm_weight > 0) epoch.lm_loss += parts.lm;
      if (cb.on_step) EMBER_RETURN_IF_ERROR(cb.on_step(st));
    }
    const double n = static_cast<double>(plan.steps_per_epoch);
    epoch.loss /= n, epoch.class_loss /= n, epoch.lm_loss /= n;
    epoch.step = it;
    if (!evals.empty()) {
      const double e0 = now_seconds();
      EMBER_RETURN_IF_ERROR(evaluate(&epoch.eval_loss, &epoch.eval_accuracy));
      epoch.eval_seconds = now_seconds() - e0;
      epoch.evaluated = true;
      last_accuracy = epoch.eval_accuracy;
    }
    if (cb.on_epoch) EMBER_RETURN_IF_ERROR(cb.on_epoch(epoch));
  }

  ModelSpec res = tr->to_spec();
  EMBER_ASSIGN_OR_RETURN(res.tokenizer, clone_tokenizer(tok));
  for (const auto& kv : spec.metadata)
    if (!res.metadata.count(kv.first) && kv.first.rfind("classifier.", 0) != 0) res.metadata[kv.first] = kv.second;
  res.metadata["classifier.labels"] = labels_csv;
  res.metadata["classifier.start_id"] = std::to_string(start_id);
  res.metadata["classifier.extract_id"] = std::to_string(extract_id);
  res.metadata["classifier.truncate"] = truncation_name(o.truncation);
  res.metadata["finetune.init"] = init;
  res.metadata["finetune.data"] = data;
  res.metadata["finetune.epochs"] = std::to_string(o.epochs);
  res.metadata["finetune.lm_weight"] = std::to_string(o.lm_weight);
  if (last_accuracy >= 0) res.metadata["finetune." + o.eval_split + "_accuracy"] = std::to_string(last_accuracy);
  return res;
}

}  // namespace ember
