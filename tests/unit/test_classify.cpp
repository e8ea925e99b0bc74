// The classifier head on the runtime (GPT-1 input transformation, softmax over the head) and the
// JSON Lines dataset reader.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "ember/classify.h"
#include "ember/convert.h"
#include "ember/dataset.h"
#include "ember/model.h"
#include "ember/quantize.h"
#include "ember/session.h"
#include "skip.h"
#include "test_paths.h"

namespace {
std::shared_ptr<const ember::Model> model_with_head(bool int8, const char* truncate = nullptr) {
  auto spec = ember::import_model(ember_test::data_dir() + "/golden/nanogpt");
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  spec->config.n_classes = 2;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0, 0.3f);
  for (const char* name : {"cls.weight", "cls.bias"}) {
    ember::TensorData t;
    t.name = name;
    t.shape = name[4] == 'w' ? std::vector<uint64_t>{2, spec->config.n_embd} : std::vector<uint64_t>{2};
    std::vector<float> v(t.shape.size() == 2 ? 2 * spec->config.n_embd : 2);
    for (float& x : v) x = nd(rng);
    t.data.resize(v.size() * 4);
    std::memcpy(t.data.data(), v.data(), t.data.size());
    spec->tensors.push_back(std::move(t));
  }
  spec->metadata["classifier.labels"] = "ham,spam";
  spec->metadata["classifier.start_id"] = "0";
  spec->metadata["classifier.extract_id"] = "1";
  if (truncate) spec->metadata["classifier.truncate"] = truncate;
  if (int8) REQUIRE(ember::quantize_model(*spec, {}).ok());
  const std::string p = ember_test::temp_dir() + "/ember_cls.ember";
  ember::Status st = ember::write_model_file(*spec, p);
  REQUIRE_MESSAGE(st.ok(), st.message());
  auto m = ember::Model::load(p);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  std::remove(p.c_str());
  return *m;
}
}  // namespace

TEST_CASE("classify: [start] text [extract], then softmax(W h + b) of the last hidden state") {
  for (bool int8 : {false, true}) {
    CAPTURE(int8);
    auto m = model_with_head(int8);
    auto info = ember::classifier_info(*m);
    REQUIRE_MESSAGE(info.ok(), info.status().message());
    CHECK(info->labels == std::vector<std::string>{"ham", "spam"});
    auto ids = ember::classifier_input(*m, *info, "abc");
    REQUIRE(ids.ok());
    const auto body = m->tokenizer().encode("abc").value();
    CHECK(*ids == std::vector<int32_t>{0, body[0], body[1], body[2], 1});
    // A long text keeps its first n_ctx - 2 tokens.
    auto long_ids = ember::classifier_input(*m, *info, std::string(100, 'a'));
    REQUIRE(long_ids.ok());
    CHECK(long_ids->size() == m->config().n_ctx);
    CHECK(long_ids->back() == 1);

    auto s = ember::Session::create(m, {});
    REQUIRE(s.ok());
    std::vector<float> probs(2);
    CHECK_FALSE((*s)->classify(probs.data()).ok());  // nothing run yet
    REQUIRE((*s)->prefill(ids->data(), ids->size()).ok());
    REQUIRE((*s)->classify(probs.data()).ok());
    CHECK(probs[0] + probs[1] == doctest::Approx(1.0).epsilon(1e-6));
  }
}

TEST_CASE("classify: a long text keeps its head, or its head and tail halves, as the model's metadata says") {
  std::vector<int32_t> v(10);
  for (int i = 0; i < 10; ++i) v[i] = i;
  auto cut = [&](size_t room, ember::Truncation t) {
    std::vector<int32_t> w = v;
    const bool was_cut = ember::truncate_tokens(w, room, t);
    CHECK(was_cut == (room < v.size()));
    return w;
  };
  using T = ember::Truncation;
  CHECK(cut(4, T::kHead) == std::vector<int32_t>{0, 1, 2, 3});
  CHECK(cut(4, T::kHeadTail) == std::vector<int32_t>{0, 1, 8, 9});
  CHECK(cut(5, T::kHeadTail) == std::vector<int32_t>{0, 1, 7, 8, 9});  // odd room: the tail gets the extra token
  CHECK(cut(1, T::kHeadTail) == std::vector<int32_t>{9});
  CHECK(cut(0, T::kHeadTail).empty());
  CHECK(cut(10, T::kHeadTail) == v);
  CHECK(cut(12, T::kHead) == v);
  CHECK(std::string(ember::truncation_name(T::kHeadTail)) == "head+tail");

  auto head = model_with_head(false), both = model_with_head(false, "head+tail"), explicit_head = model_with_head(false, "head");
  const std::string text = std::string(50, 'a') + std::string(50, 'b');  // n_ctx is far below 100
  const auto body = head->tokenizer().encode(text).value();
  const size_t room = head->config().n_ctx - 2;
  REQUIRE(body.size() > room);
  for (const auto& m : {head, both, explicit_head}) {
    auto info = ember::classifier_info(*m);
    REQUIRE_MESSAGE(info.ok(), info.status().message());
    auto ids = ember::classifier_input(*m, *info, text);
    REQUIRE(ids.ok());
    REQUIRE(ids->size() == room + 2);
    std::vector<int32_t> want(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(room));
    if (m == both) {
      CHECK(info->truncation == T::kHeadTail);
      want.assign(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(room / 2));
      want.insert(want.end(), body.end() - static_cast<std::ptrdiff_t>(room - room / 2), body.end());
    }
    CHECK(std::vector<int32_t>(ids->begin() + 1, ids->end() - 1) == want);
  }
  auto bad = model_with_head(false, "tail");
  auto info = ember::classifier_info(*bad);
  REQUIRE_FALSE(info.ok());
  CHECK(info.status().message().find("classifier.truncate = 'tail'") != std::string::npos);
}

TEST_CASE("classify: probabilities equal softmax of the head applied to hidden()") {
  auto m = model_with_head(false);
  auto s = ember::Session::create(m, {});
  REQUIRE(s.ok());
  const int32_t ids[] = {0, 5, 9, 1};
  REQUIRE((*s)->prefill(ids, 4).ok());
  std::vector<float> probs(2);
  REQUIRE((*s)->classify(probs.data()).ok());
  // Rebuild the head exactly as model_with_head drew it.
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0, 0.3f);
  const size_t C = m->config().n_embd;
  std::vector<float> w(2 * C), b(2);
  for (float& x : w) x = nd(rng);
  for (float& x : b) x = nd(rng);
  double z[2];
  for (int k = 0; k < 2; ++k) {
    z[k] = b[k];
    for (size_t i = 0; i < C; ++i) z[k] += static_cast<double>(w[k * C + i]) * (*s)->hidden()[i];
  }
  const double p1 = 1.0 / (1.0 + std::exp(z[0] - z[1]));
  CHECK(probs[1] == doctest::Approx(p1).epsilon(1e-5));
}

TEST_CASE("classify: a model without a head is refused with a clear message") {
  auto spec = ember::import_model(ember_test::data_dir() + "/golden/nanogpt");
  REQUIRE(spec.ok());
  const std::string p = ember_test::temp_dir() + "/ember_nohead.ember";
  REQUIRE(ember::write_model_file(*spec, p).ok());
  auto m = ember::Model::load(p);
  REQUIRE(m.ok());
  std::remove(p.c_str());
  auto info = ember::classifier_info(**m);
  REQUIRE_FALSE(info.ok());
  CHECK(info.status().message().find("no classifier head") != std::string::npos);
}

TEST_CASE("jsonl dataset: fields, optional fields, and errors that name the line") {
  auto ok = ember::parse_jsonl_dataset(
      "{\"text\": \"hi \\u00e9\", \"label\": \"ham\", \"split\": \"test\", \"balanced\": true}\n\n"
      "{\"label\": \"spam\", \"text\": \"win\", \"extra\": [1, 2]}\n",
      "d.jsonl");
  REQUIRE_MESSAGE(ok.ok(), ok.status().message());
  REQUIRE(ok->size() == 2);
  CHECK((*ok)[0].text == "hi \xc3\xa9");
  CHECK((*ok)[0].split == "test");
  CHECK((*ok)[0].balanced);
  CHECK((*ok)[1].line == 3);
  CHECK((*ok)[1].split.empty());
  struct Bad {
    const char* bytes;
    const char* want;
  } bad[] = {{"{\"text\": \"a\"}\n", "d.jsonl line 1: \"label\""},
             {"{\"text\": \"a\", \"label\": \"b\"}\n{\"text\": 1, \"label\": \"b\"}\n", "line 2: \"text\""},
             {"{\"text\": \"a\", \"label\": \"b\"\n", "line 1: not valid JSON"},
             {"[1, 2]\n", "expected a JSON object"},
             {"{\"text\": \"a\", \"label\": \"b\", \"balanced\": 1}\n", "\"balanced\""}};
  for (const auto& b : bad) {
    auto r = ember::parse_jsonl_dataset(b.bytes, "d.jsonl");
    REQUIRE_FALSE(r.ok());
    CHECK_MESSAGE(r.status().message().find(b.want) != std::string::npos, r.status().message());
  }
}

TEST_CASE("jsonl dataset: the shared SMS spam file has the documented splits") {
  const std::string path = ember_test::shared_data_dir() + "/classification/sms_spam.jsonl";
  if (!ember_test::need_file(path, "the SMS spam dataset")) return;
  auto rows = ember::read_jsonl_dataset(path);
  REQUIRE_MESSAGE(rows.ok(), rows.status().message());
  CHECK(rows->size() == 5574);
  size_t balanced = 0, bal_test_ham = 0, bal_test_spam = 0;
  for (const auto& r : *rows) {
    balanced += r.balanced;
    if (r.balanced && r.split == "test") (r.label == "spam" ? bal_test_spam : bal_test_ham)++;
  }
  CHECK(balanced == 1494);
  CHECK(bal_test_ham == 141);
  CHECK(bal_test_spam == 158);
}
