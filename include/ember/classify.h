// ember/classify.h - GPT-1 style task classification on the runtime.
//
//   auto info = ember::classifier_info(*model);                 // labels and special tokens
//   auto ids = ember::classifier_input(*model, *info, "Free entry in a wkly comp...");
//   session->reset(); session->prefill(ids->data(), ids->size());
//   std::vector<float> p(info->labels.size()); session->classify(p.data());
//
// The GPT-1 input transformation: [start] + text tokens + [extract]; the classifier reads the final
// hidden state of the extract token. A model with a classifier head (config n_classes > 0) records
// in its metadata:
//   classifier.labels      label names in class order, comma-separated ("ham,spam")
//   classifier.start_id    token id of the start token (absent or -1: none)
//   classifier.extract_id  token id of the extract token (absent or -1: none; the last text token is read)
//   classifier.truncate    how a text too long for n_ctx is cut: "head" (absent: the default) keeps its
//                          first tokens, "head+tail" its first and last halves (see truncate_tokens)
// Thread safety: pure functions of the model.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ember/export.h"
#include "ember/model.h"
#include "ember/status.h"

namespace ember {

// How a text longer than the room in the context is cut. kHeadTail keeps the first room / 2 tokens and
// the last room - room / 2: a long email's subject and opening and also its closing lines (signature,
// unsubscribe footer); Sun et al. 2019 ("How to Fine-Tune BERT for Text Classification?") found head +
// tail the best cut for long documents.
enum class Truncation { kHead, kHeadTail };
EMBER_API const char* truncation_name(Truncation t);  // "head", "head+tail"
// Cuts `ids` to at most `room` tokens; true when it was longer.
EMBER_API bool truncate_tokens(std::vector<int32_t>& ids, size_t room, Truncation t);

struct ClassifierInfo {
  std::vector<std::string> labels;  // n_classes names
  int32_t start_id = -1;
  int32_t extract_id = -1;
  Truncation truncation = Truncation::kHead;
};

// A class name as classifier.labels stores it: non-empty valid UTF-8 without commas or control characters
// (names are printed as they are). Fails with the reason, quoting the name printably.
EMBER_API Status check_class_label(std::string_view label);
// The classifier.labels value: the names (each checked as above, no name twice) joined by commas.
EMBER_API Result<std::string> join_class_labels(const std::vector<std::string>& labels);

// Fails when the model has no classifier head or its metadata is inconsistent (names the key).
EMBER_API Result<ClassifierInfo> classifier_info(const Model& model);
// Token ids for one text (never empty, at most n_ctx).
EMBER_API Result<std::vector<int32_t>> classifier_input(const Model& model, const ClassifierInfo& info, std::string_view text);

}  // namespace ember
