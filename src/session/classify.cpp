#include "ember/classify.h"

#include <cstdio>
#include <cstdlib>

namespace ember {

namespace {
Result<int32_t> id_from(const Model& m, const char* key) {
  auto it = m.metadata().find(key);
  if (it == m.metadata().end()) return -1;
  char* end = nullptr;
  const long v = std::strtol(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0' || v < -1 || v >= static_cast<long>(m.config().n_vocab))
    return invalid_file(m.path() + ": metadata " + key + " = '" + it->second + "' is not a token id of this model");
  return static_cast<int32_t>(v);
}
}  // namespace

const char* truncation_name(Truncation t) { return t == Truncation::kHeadTail ? "head+tail" : "head"; }

bool truncate_tokens(std::vector<int32_t>& ids, size_t room, Truncation t) {
  if (ids.size() <= room) return false;
  if (t == Truncation::kHeadTail) {
    const size_t head = room / 2;
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(head), ids.end() - static_cast<std::ptrdiff_t>(room - head));
  } else {
    ids.resize(room);
  }
  return true;
}

Status check_class_label(std::string_view label) {
  std::string shown;  // printable: control bytes as \xNN, at most 40 bytes
  for (size_t i = 0; i < label.size() && i < 40; ++i) {
    const unsigned char c = static_cast<unsigned char>(label[i]);
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      shown += buf;
    } else {
      shown += static_cast<char>(c);
    }
  }
  if (label.size() > 40) shown += "...";
  const std::string q = "class label '" + shown + "'";
  if (label.empty()) return invalid_argument("a class label is empty");
  if (label.find(',') != std::string_view::npos) return invalid_argument(q + " contains a comma (classifier.labels is comma-separated)");
  for (unsigned char c : label)
    if (c < 0x20 || c == 0x7f) return invalid_argument(q + " contains a control character");
  size_t bad = 0;
  if (!is_valid_utf8(label, &bad)) return invalid_argument(q + " is not valid UTF-8 (byte offset " + std::to_string(bad) + ")");
  return Status::Ok();
}

Result<std::string> join_class_labels(const std::vector<std::string>& labels) {
  std::string out;
  for (size_t i = 0; i < labels.size(); ++i) {
    EMBER_RETURN_IF_ERROR(check_class_label(labels[i]));
    for (size_t j = 0; j < i; ++j)
      if (labels[j] == labels[i]) return invalid_argument("class label '" + labels[i] + "' appears twice");
    out += (i ? "," : "") + labels[i];
  }
  return out;
}

Result<ClassifierInfo> classifier_info(const Model& m) {
  const uint32_t n = m.config().n_classes;
  if (n == 0) return invalid_argument(m.path() + " has no classifier head (n_classes is 0)");
  ClassifierInfo info;
  auto it = m.metadata().find("classifier.labels");
  if (it != m.metadata().end()) {
    size_t a = 0;
    const std::string& s = it->second;
    while (a <= s.size()) {
      size_t b = s.find(',', a);
      if (b == std::string::npos) b = s.size();
      info.labels.push_back(s.substr(a, b - a));
      a = b + 1;
    }
    if (info.labels.size() != n)
      return invalid_file(m.path() + ": metadata classifier.labels names " + std::to_string(info.labels.size()) +
                          " labels, the head has " + std::to_string(n) + " classes");
    for (const std::string& l : info.labels) {
      const Status st = check_class_label(l);
      if (!st.ok()) return invalid_file(m.path() + ": metadata classifier.labels: " + st.message());
    }
  } else {
    for (uint32_t i = 0; i < n; ++i) info.labels.push_back(std::to_string(i));
  }
  EMBER_ASSIGN_OR_RETURN(info.start_id, id_from(m, "classifier.start_id"));
  EMBER_ASSIGN_OR_RETURN(info.extract_id, id_from(m, "classifier.extract_id"));
  it = m.metadata().find("classifier.truncate");
  if (it != m.metadata().end()) {
    if (it->second == "head+tail") info.truncation = Truncation::kHeadTail;
    else if (it->second != "head")
      return invalid_file(m.path() + ": metadata classifier.truncate = '" + it->second + "' (expected head or head+tail)");
  }
  return info;
}

Result<std::vector<int32_t>> classifier_input(const Model& m, const ClassifierInfo& info, std::string_view text) {
  if (m.tokenizer().kind() == TokenizerKind::kNone) return invalid_argument(m.path() + " has no tokenizer");
  EMBER_ASSIGN_OR_RETURN(std::vector<int32_t> body, m.tokenizer().encode(text));
  const size_t extra = (info.start_id >= 0) + (info.extract_id >= 0);
  const size_t room = m.config().n_ctx - extra;
  truncate_tokens(body, room, info.truncation);
  std::vector<int32_t> ids;
  ids.reserve(body.size() + extra);
  if (info.start_id >= 0) ids.push_back(info.start_id);
  ids.insert(ids.end(), body.begin(), body.end());
  if (info.extract_id >= 0) ids.push_back(info.extract_id);
  if (ids.empty()) return invalid_argument("classify: the text is empty and the model has no start or extract token");
  return ids;
}

}  // namespace ember
