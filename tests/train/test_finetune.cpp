// ember-train finetune: GPT-1 fine-tuning end to end (pretrain a tiny model, fine-tune it on a synthetic
// two-class JSONL, classify with the runtime).
#include <doctest/doctest.h>

#include "tool_runner.h"
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "../support/test_paths.h"
#include "ember/classify.h"
#include "ember/convert.h"
#include "ember/finetune.h"
#include "ember/io.h"
#include "ember/model.h"
#include "ember/session.h"
#include "ember/train.h"

namespace {
struct Tool : ember_test::ToolRunner {
  Tool() : ToolRunner("ember-train", "ember_finetune") {}
};

// Texts of random letters c..m with "aaaa" (pos) or "bbbb" (neg) inserted somewhere.
struct Row {
  std::string text, label, split;
};
std::vector<Row> synthetic(uint32_t seed) {
  std::mt19937 rng(seed);
  const std::string alpha = "cdefghijklm ";
  std::vector<Row> rows;
  for (const auto& [split, n] : std::vector<std::pair<std::string, int>>{{"train", 160}, {"val", 40}, {"test", 80}}) {
    for (int i = 0; i < n; ++i) {
      const bool pos = rng() % 2;
      std::string s;
      const int len = 4 + static_cast<int>(rng() % 17);
      for (int k = 0; k < len; ++k) s += alpha[rng() % alpha.size()];
      s.insert(rng() % (s.size() + 1), pos ? "aaaa" : "bbbb");
      rows.push_back({s, pos ? "pos" : "neg", split});
    }
  }
  return rows;
}
}  // namespace

TEST_CASE("ember-train finetune: GPT-1 fine-tuning of a tiny pretrained model classifies in the runtime") {
  Tool tool;
  if (!ember_test::need_tool(tool)) return;
  const std::string D = tool.dir;
  {
    std::mt19937 rng(7);
    const std::string alpha = "abcdefghijklm ";
    std::ofstream f(D + "/pre.txt");
    for (int i = 0; i < 300; ++i) {
      for (int k = 0; k < 40; ++k) f << alpha[rng() % alpha.size()];
      f << "\n";
    }
  }
  const std::vector<Row> rows = synthetic(11);
  {
    std::ofstream f(D + "/data.jsonl");
    for (const auto& r : rows)
      f << "{\"text\": \"" << r.text << "\", \"label\": \"" << r.label << "\", \"split\": \"" << r.split << "\"}\n";
  }
  for (const std::string norm : {"pre", "post"}) {
    CAPTURE(norm);
    REQUIRE(tool.run("pretrain --data " + D + "/pre.txt --out " + D + "/pre.ember --n-layer 1 --n-head 2 --n-embd 32 --block 32 "
                     "--batch 8 --iters 30 --eval-every 0 --eval-iters 2 --threads 2 --norm " + norm) == 0);
    auto pre = ember::Model::load(D + "/pre.ember");
    REQUIRE(pre.ok());
    const uint32_t V = (*pre)->config().n_vocab;
    REQUIRE(tool.run("finetune --init " + D + "/pre.ember --data " + D + "/data.jsonl --out " + D + "/ft.ember --lr 3e-3 --epochs 4 "
                     "--threads 2") == 0);
    const std::string err = tool.err();
    CHECK(err.find("epoch 4:") != std::string::npos);
    CHECK(err.find("val accuracy") != std::string::npos);
    CHECK(err.find("160 train rows") != std::string::npos);
    CHECK(err.find(" tok/s | ETA ") != std::string::npos);  // the progress line has the speed and the time left
    CHECK(err.find("(classification ") != std::string::npos);  // the epoch line names both parts of the loss
    CHECK(err.find(" x LM ") != std::string::npos);
    CHECK(err.find("val classification loss") != std::string::npos);

    // The loss curve: a step row per step with loss = classification + 0.5 x LM (the default weight),
    // an evaluation row per epoch with the accuracy the epoch line printed; the SVG beside it.
    ember::LossCurveKind kind = ember::LossCurveKind::kPretrain;
    auto curve = ember::parse_loss_curve_csv(*ember::read_file(D + "/ft.ember.csv"), "ft.ember.csv", &kind);
    REQUIRE(curve.ok());
    CHECK(kind == ember::LossCurveKind::kFinetune);
    size_t steps = 0, evals = 0;
    for (const auto& r : *curve) {
      if (r.eval) {
        ++evals;
        char acc[32];
        std::snprintf(acc, sizeof acc, "val accuracy %.2f%%", 100.0 * r.val_accuracy);
        CHECK(err.find(acc) != std::string::npos);
        continue;
      }
      ++steps;
      CHECK(r.iter == steps);
      CHECK(r.loss == doctest::Approx(r.class_loss + 0.5 * r.lm_loss).epsilon(1e-5));
      CHECK(r.lm_loss > r.class_loss);  // an LM loss over a 14-letter vocabulary, a two-class loss
    }
    CHECK(steps == 4 * 20);  // 160 rows in batches of 8, 4 epochs
    CHECK(evals == 4);
    const std::string svg = ember::read_file(D + "/ft.ember.svg").value();
    CHECK(svg.find("id=\"step-class-loss\"") != std::string::npos);
    CHECK(svg.find("id=\"step-lm-loss\"") != std::string::npos);
    CHECK(svg.find("id=\"eval-val\"") != std::string::npos);

    auto model = ember::Model::load(D + "/ft.ember");
    REQUIRE(model.ok());
    const ember::Model& m = **model;
    CHECK(m.config().n_vocab == V + 2);
    CHECK(m.config().n_classes == 2);
    CHECK(m.metadata().at("classifier.labels") == "neg,pos");
    CHECK(m.metadata().at("classifier.start_id") == std::to_string(V));
    CHECK(m.metadata().at("classifier.extract_id") == std::to_string(V + 1));
    CHECK(m.metadata().at("classifier.truncate") == "head+tail");  // the default cut, recorded for ember-classify
    CHECK(m.tokenizer().n_vocab() == static_cast<int32_t>(V));  // the new tokens live beyond the tokenizer
    auto info = ember::classifier_info(m);
    REQUIRE(info.ok());
    REQUIRE(info->labels == std::vector<std::string>{"neg", "pos"});
    CHECK(info->start_id == static_cast<int32_t>(V));
    CHECK(info->extract_id == static_cast<int32_t>(V + 1));

    auto session = ember::Session::create(*model, {});
    REQUIRE(session.ok());
    size_t n = 0, correct = 0;
    std::vector<float> p(2);
    for (const auto& r : rows) {
      if (r.split != "test") continue;
      auto ids = ember::classifier_input(m, *info, r.text);
      REQUIRE(ids.ok());
      CHECK(ids->front() == info->start_id);
      CHECK(ids->back() == info->extract_id);
      (*session)->reset();
      REQUIRE((*session)->prefill(ids->data(), ids->size()).ok());
      REQUIRE((*session)->classify(p.data()).ok());
      correct += info->labels[p[1] > p[0] ? 1 : 0] == r.label;
      ++n;
    }
    const double acc = static_cast<double>(correct) / static_cast<double>(n);
    MESSAGE(norm << "-LN: test accuracy " << 100 * acc << "% of " << n);
    CHECK(acc >= 0.9);
  }

  // lm-weight 0 (classification only) also trains; bad command lines are refused.
  REQUIRE(tool.run("finetune --init " + D + "/pre.ember --data " + D + "/data.jsonl --out " + D + "/ft0.ember --lr 3e-3 --epochs 1 "
                   "--lm-weight 0 --eval-split none --truncate head") == 0);
  {
    auto ft0 = ember::Model::load(D + "/ft0.ember");
    REQUIRE(ft0.ok());
    CHECK((*ft0)->metadata().at("classifier.truncate") == "head");
  }
  CHECK(tool.run("finetune --init " + D + "/pre.ember --data " + D + "/data.jsonl --out " + D + "/x.ember --truncate tail") == 2);
  CHECK(tool.run("pretrain --data " + D + "/pre.txt --out " + D + "/x.ember --truncate head") == 2);
  CHECK(tool.run("finetune --data " + D + "/data.jsonl --out " + D + "/x.ember") == 2);
  CHECK(tool.err().find("--init") != std::string::npos);
  CHECK(tool.run("finetune --init " + D + "/pre.ember --data " + D + "/data.jsonl --out " + D + "/x.ember --iters 5") == 2);
  CHECK(tool.run("pretrain --data " + D + "/pre.txt --out " + D + "/x.ember --lm-weight 1") == 2);
  // Fine-tuning a model that already has a head is refused.
  CHECK(tool.run("finetune --init " + D + "/ft.ember --data " + D + "/data.jsonl --out " + D + "/x.ember") == 1);
  CHECK(tool.err().find("already has a classifier head") != std::string::npos);
  // No train rows.
  {
    std::ofstream f(D + "/nosplit.jsonl");
    f << "{\"text\": \"aaaa\", \"label\": \"pos\"}\n";
  }
  CHECK(tool.run("finetune --init " + D + "/pre.ember --data " + D + "/nosplit.jsonl --out " + D + "/x.ember") == 1);
  CHECK(tool.err().find("no rows of split 'train'") != std::string::npos);
  // A character the character-level model cannot encode: the row, the character, and what to do instead.
  {
    std::ofstream f(D + "/digits.jsonl");
    f << "{\"text\": \"aaaa\", \"label\": \"pos\", \"split\": \"train\"}\n"
      << "{\"text\": \"call 0800 now\", \"label\": \"neg\", \"split\": \"train\"}\n";
  }
  CHECK(tool.run("finetune --init " + D + "/pre.ember --data " + D + "/digits.jsonl --out " + D + "/x.ember") == 1);
  CHECK(tool.err().find("digits.jsonl line 2: encode: character '0' (U+0030)") != std::string::npos);
  CHECK(tool.err().find("pre.ember is a character-level model: fine-tune one with a byte-level BPE vocabulary instead, e.g. "
                        "the English starter models/english.ember") != std::string::npos);
}

TEST_CASE("ember::finetune, the library API: plan, steps and epochs through callbacks; the tool's model; errors") {
  // A tiny pretrained model (random weights: the task is learnable from the embeddings alone) with a
  // character tokenizer, made through the library too.
  const std::string alpha = "abcdefghijklm ";
  std::vector<std::string> symbols;
  for (char ch : alpha) symbols.emplace_back(1, ch);
  ember::ModelConfig c;
  c.n_vocab = static_cast<uint32_t>(symbols.size()), c.n_ctx = 32, c.n_embd = 32, c.n_head = 2, c.n_layer = 1, c.n_ff = 128;
  ember::TrainOptions to;
  to.seq_len = 1;
  auto pre = ember::Trainer::create(c, to);
  REQUIRE(pre.ok());
  auto make_spec = [&] {
    ember::ModelSpec spec = (*pre)->to_spec();
    spec.tokenizer = ember::Tokenizer::chars(symbols).value();
    return spec;
  };
  std::vector<ember::LabelledText> rows;
  size_t line = 0;
  for (const auto& r : synthetic(11)) rows.push_back({r.text, r.label, r.split, false, ++line});

  ember::FinetuneOptions o;
  o.init_name = "pre(memory)", o.data_name = "synthetic";
  o.epochs = 3, o.lr = 3e-3f, o.n_threads = 2, o.seed = 5;
  ember::FinetunePlan plan;
  std::vector<ember::FinetuneStep> steps;
  std::vector<ember::FinetuneEpoch> epochs;
  ember::FinetuneCallbacks cb;
  cb.on_start = [&](const ember::FinetunePlan& p) { plan = p; };
  cb.on_step = [&](const ember::FinetuneStep& st) {
    steps.push_back(st);
    return ember::Status();
  };
  cb.on_epoch = [&](const ember::FinetuneEpoch& e) {
    epochs.push_back(e);
    return ember::Status();
  };
  auto ft = ember::finetune(make_spec(), rows, o, cb);
  REQUIRE(ft.ok());
  CHECK(plan.labels == std::vector<std::string>{"neg", "pos"});
  CHECK(plan.base_vocab == c.n_vocab);
  CHECK(plan.start_id == static_cast<int32_t>(c.n_vocab));
  CHECK(plan.train_rows == 160);
  CHECK(plan.eval_rows == 40);
  CHECK(plan.steps_per_epoch == 20);
  CHECK(plan.total_steps == 60);
  REQUIRE(steps.size() == 60);
  for (size_t i = 0; i < steps.size(); ++i) {
    CHECK(steps[i].step == i + 1);
    CHECK(steps[i].epoch == i / 20 + 1);
    CHECK(steps[i].loss == doctest::Approx(steps[i].class_loss + 0.5 * steps[i].lm_loss).epsilon(1e-5));
  }
  CHECK(steps.back().lr < steps.front().lr);  // linear decay to 0 over the run
  REQUIRE(epochs.size() == 3);
  CHECK(epochs.back().evaluated);
  CHECK(epochs.back().eval_accuracy >= 0.9);  // "aaaa" vs "bbbb": measured 1.0
  CHECK(epochs.back().class_loss < epochs.front().class_loss);
  CHECK(ft->config.n_classes == 2);
  CHECK(ft->config.n_vocab == c.n_vocab + 2);
  CHECK(ft->metadata.at("classifier.labels") == "neg,pos");
  CHECK(ft->metadata.at("finetune.init") == "pre(memory)");
  CHECK(ft->metadata.count("finetune.val_accuracy") == 1);

  // The same options give the same model (the run is deterministic for a seed at any thread count).
  o.n_threads = 1;
  auto again = ember::finetune(make_spec(), rows, o);
  REQUIRE(again.ok());
  REQUIRE(again->tensors.size() == ft->tensors.size());
  for (size_t i = 0; i < ft->tensors.size(); ++i) CHECK(again->tensors[i].data == ft->tensors[i].data);

  // Errors: a callback's error stops the run and is returned; a model that already has a head; one label.
  ember::FinetuneCallbacks stop;
  size_t seen = 0;
  stop.on_step = [&](const ember::FinetuneStep& st) {
    ++seen;
    return st.step == 5 ? ember::Status(ember::StatusCode::kInvalidArgument, "stopped by the test") : ember::Status();
  };
  auto stopped = ember::finetune(make_spec(), rows, o, stop);
  REQUIRE_FALSE(stopped.ok());
  CHECK(stopped.status().message() == "stopped by the test");
  CHECK(seen == 5);
  auto twice = ember::finetune(std::move(*ft), rows, o);
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.status().message().find("pre(memory) already has a classifier head") != std::string::npos);
  std::vector<ember::LabelledText> one = rows;
  for (auto& r : one) r.label = "pos";
  auto single = ember::finetune(make_spec(), one, o);
  REQUIRE_FALSE(single.ok());
  CHECK(single.status().message() == "synthetic: the train rows have only one label ('pos')");
}
