// ember-classify: label texts with a model's classifier head; --eval scores a labelled file.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "../common/cli.h"
#include "ember/classify.h"
#include "ember/dataset.h"
#include "ember/model.h"
#include "ember/session.h"

using namespace ember_cli;

int main(int argc, char** argv) {
  Args args("ember-classify", "ember-classify -m MODEL (-f FILE.jsonl | --text TEXT) [--eval] [--split test] [--json]",
            "Runs the model's task classifier (GPT-1 style: start token, text, extract token; the head reads\n"
            "the extract token's final hidden state) and prints the label and its probability for each\n"
            "input. FILE.jsonl holds one {\"text\": ..., \"label\": ...} object per line (\"split\" and\n"
            "\"balanced\" fields are honoured by --split and --balanced). --eval compares with the labels and\n"
            "prints accuracy, and precision, recall and F1 of the positive class.");
  args.option("model", "m", "MODEL", "model file with a classifier head (.ember, float or int8)");
  args.option("file", "f", "FILE", "JSON Lines file of texts (labels needed for --eval)");
  args.option("text", "", "TEXT", "classify one text");
  args.option("split", "", "NAME", "rows of this split only (train, val, test, or all)", "all");
  args.option("balanced", "", "", "rows with \"balanced\": true only");
  args.option("eval", "", "", "print accuracy, precision, recall and F1 instead of one line per input");
  args.option("positive", "", "LABEL", "the positive class for precision / recall / F1", "the last label");
  args.option("threads", "t", "N|auto", "threads (auto: 1 for models under 10M parameters, else " +
              std::to_string(default_threads()) + ")", "auto");
  args.option("json", "", "", "JSON output");
  args.parse(argc, argv);
  const std::string P = args.prog();
  if (!args.positional().empty()) args.usage_error("unexpected argument '" + args.positional()[0] + "'");
  if (!args.has("model")) args.usage_error("no model given (-m MODEL)");
  if (args.has("file") == args.has("text")) args.usage_error("give exactly one of -f FILE.jsonl or --text TEXT");
  if (args.has("eval") && !args.has("file")) args.usage_error("--eval needs a labelled -f FILE.jsonl");
  if (args.str("threads") != "auto") args.integer("threads", 1, 1024);  // a usage error before loading anything
  const bool json = args.has("json");

  auto model = check(P, ember::Model::load(args.str("model")));
  const ember::ClassifierInfo info = check(P, ember::classifier_info(*model));
  std::vector<ember::LabelledText> rows;
  if (args.has("text")) {
    rows.push_back({args.str("text"), "", "", false, 0});
  } else {
    const std::string split = args.str("split");
    for (auto& r : check(P, ember::read_jsonl_dataset(args.str("file"))))
      if ((split == "all" || r.split == split) && (!args.has("balanced") || r.balanced)) rows.push_back(std::move(r));
    if (rows.empty()) fail(P, args.str("file") + ": no rows (split '" + split + "'" + (args.has("balanced") ? ", balanced" : "") + ")");
  }
  std::string positive = args.has("positive") ? args.str("positive") : info.labels.back();
  const auto pos_it = std::find(info.labels.begin(), info.labels.end(), positive);
  if (pos_it == info.labels.end()) fail(P, "--positive " + positive + " is not one of the model's labels");
  const size_t pos_class = static_cast<size_t>(pos_it - info.labels.begin());

  ember::SessionOptions so;
  so.n_threads = threads_for(args, *model);
  auto session = check(P, ember::Session::create(model, so));
  std::vector<float> probs(info.labels.size());
  size_t correct = 0, tp = 0, fp = 0, fn = 0, n = 0;
  const double t0 = now_seconds();
  const bool tty = isatty(fileno(stderr));
  for (const auto& r : rows) {
    const std::vector<int32_t> ids = check(P, ember::classifier_input(*model, info, r.text));
    session->reset();
    check(P, session->prefill(ids.data(), ids.size()));
    check(P, session->classify(probs.data()));
    const size_t k = static_cast<size_t>(std::max_element(probs.begin(), probs.end()) - probs.begin());
    ++n;
    if (args.has("eval")) {
      if (std::find(info.labels.begin(), info.labels.end(), r.label) == info.labels.end())
        fail(P, args.str("file") + " line " + std::to_string(r.line) + ": label '" + r.label + "' is not one of the model's labels");
      const bool truth = r.label == positive, said = k == pos_class;
      correct += r.label == info.labels[k];
      tp += truth && said;
      fp += !truth && said;
      fn += truth && !said;
      if (tty && n % 50 == 0) std::fprintf(stderr, "\r%s: %zu / %zu", P.c_str(), n, rows.size());
      continue;
    }
    if (json) {
      std::printf("{\"line\": %zu, \"label\": %s, \"prob\": %.6f}\n", r.line, json_escape(info.labels[k]).c_str(), probs[k]);
    } else {
      std::printf("%s\t%.4f%s%s\n", info.labels[k].c_str(), probs[k], r.line ? "\tline " : "",
                  r.line ? std::to_string(r.line).c_str() : "");
    }
  }
  if (args.has("eval")) {
    if (tty) std::fputs("\n", stderr);
    const double acc = static_cast<double>(correct) / n;
    const double prec = tp + fp ? static_cast<double>(tp) / (tp + fp) : 0.0;
    const double rec = tp + fn ? static_cast<double>(tp) / (tp + fn) : 0.0;
    const double f1 = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0.0;
    if (json) {
      std::printf("{\"n\": %zu, \"accuracy\": %.6f, \"precision\": %.6f, \"recall\": %.6f, \"f1\": %.6f, \"positive\": %s}\n", n,
                  acc, prec, rec, f1, json_escape(positive).c_str());
    } else {
      std::printf("examples:  %zu (split %s%s)\naccuracy:  %.2f%%\nprecision: %.2f%%  recall: %.2f%%  F1: %.2f%%  (positive: %s)\n", n,
                  args.str("split").c_str(), args.has("balanced") ? ", balanced" : "", 100 * acc, 100 * prec, 100 * rec, 100 * f1,
                  positive.c_str());
    }
  }
  std::fprintf(stderr, "%s: %zu inputs in %.2f s\n", P.c_str(), n, now_seconds() - t0);
  return 0;
}
