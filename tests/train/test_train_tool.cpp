// ember-train's loss curve (CSV both ways, the SVG drawing, `ember-train plot`) and its crash safety:
// kill -9 at random moments, many of them inside checkpoint writes, always leaves a loadable checkpoint,
// and --resume then finishes with the weights, optimizer state and loss curve of a straight run.
#include <doctest/doctest.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ember/convert.h"
#include "ember/io.h"
#include "ember/model.h"
#include "ember/train.h"
#include "tool_runner.h"
#include "../support/test_paths.h"

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A small XML 1.0 well-formedness checker (prolog, elements, attributes, text, character and the five
// predefined entity references), enough to hold the SVG to the standard without a library. Fills
// `elements` with (name, attributes) in document order; returns "" or the first problem.
struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attrs;
  std::string text;  // direct text content, entities decoded
};
std::string check_xml(const std::string& s, std::vector<XmlElement>* elements) {
  size_t i = 0;
  auto err = [&](const std::string& what) { return what + " at byte " + std::to_string(i); };
  auto is_name_start = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; };
  auto is_name = [&](char c) { return is_name_start(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.'; };
  auto name = [&]() {
    const size_t b = i;
    if (i >= s.size() || !is_name_start(s[i])) return std::string();
    while (i < s.size() && is_name(s[i])) ++i;
    return s.substr(b, i - b);
  };
  auto ws = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) ++i;
  };
  // Decodes character data up to `stop`; false on a bare '&' or '<'.
  auto chars = [&](char stop, std::string* out) {
    while (i < s.size() && s[i] != stop) {
      if (s[i] == '<') return stop == '<';
      if (s[i] == '&') {
        const size_t semi = s.find(';', i);
        if (semi == std::string::npos) return false;
        const std::string ent = s.substr(i + 1, semi - i - 1);
        static const std::map<std::string, char> named = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
        if (named.count(ent)) *out += named.at(ent);
        else if (ent.size() > 1 && ent[0] == '#') *out += '?';
        else return false;
        i = semi + 1;
        continue;
      }
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
      *out += s[i++];
    }
    return true;
  };
  if (s.compare(0, 5, "<?xml") == 0) {
    i = s.find("?>");
    if (i == std::string::npos) return "unterminated XML declaration";
    i += 2;
  }
  std::vector<size_t> open;  // indices into elements
  bool root_done = false;
  for (;;) {
    std::string text;
    if (!chars('<', &text)) return err("bad character data");
    if (!open.empty()) (*elements)[open.back()].text += text;
    else if (text.find_first_not_of(" \n\t\r") != std::string::npos) return err("text outside the root element");
    if (i >= s.size()) break;
    ++i;  // '<'
    if (s.compare(i, 3, "!--") == 0) {
      const size_t e = s.find("-->", i);
      if (e == std::string::npos) return err("unterminated comment");
      i = e + 3;
      continue;
    }
    if (s[i] == '/') {
      ++i;
      const std::string n = name();
      ws();
      if (open.empty() || (*elements)[open.back()].name != n || i >= s.size() || s[i] != '>')
        return err("mismatched end tag </" + n + ">");
      ++i;
      open.pop_back();
      if (open.empty()) root_done = true;
      continue;
    }
    if (root_done) return err("a second root element");
    XmlElement el;
    el.name = name();
    if (el.name.empty()) return err("bad element name");
    for (;;) {
      const size_t before = i;
      ws();
      if (i >= s.size()) return err("unterminated start tag");
      if (s[i] == '>' || s.compare(i, 2, "/>") == 0) break;
      if (i == before) return err("attributes need white space between them");
      const std::string an = name();
      if (an.empty()) return err("bad attribute name");
      ws();
      if (i >= s.size() || s[i] != '=') return err("attribute " + an + " without '='");
      ++i;
      ws();
      if (i >= s.size() || (s[i] != '"' && s[i] != '\'')) return err("unquoted attribute " + an);
      const char q = s[i++];
      std::string v;
      if (!chars(q, &v) || i >= s.size()) return err("bad value of attribute " + an);
      ++i;
      if (!el.attrs.emplace(an, v).second) return err("duplicate attribute " + an);
    }
    const bool empty = s[i] == '/';
    i += empty ? 2 : 1;
    elements->push_back(el);
    if (!empty) open.push_back(elements->size() - 1);
    else if (open.empty()) root_done = true;
  }
  if (!open.empty()) return "unclosed element <" + (*elements)[open.back()].name + ">";
  if (!root_done) return "no root element";
  return "";
}

std::vector<std::pair<double, double>> points(const std::string& attr) {
  std::vector<std::pair<double, double>> p;
  std::istringstream in(attr);
  std::string xy;
  while (in >> xy) {
    const size_t c = xy.find(',');
    p.emplace_back(std::stod(xy.substr(0, c)), std::stod(xy.substr(c + 1)));
  }
  return p;
}

// The SVG holds one point per row, in row order, x increasing with the step and y decreasing with the
// loss (screen coordinates), with equal losses at equal heights.
void check_svg_matches(const std::string& svg, const std::vector<ember::LossRow>& rows,
                       ember::LossCurveKind kind = ember::LossCurveKind::kPretrain) {
  std::vector<XmlElement> els;
  const std::string problem = check_xml(svg, &els);
  REQUIRE_MESSAGE(problem.empty(), "SVG is not well-formed XML: " << problem);
  REQUIRE(!els.empty());
  CHECK(els[0].name == "svg");
  CHECK(els[0].attrs["xmlns"] == "http://www.w3.org/2000/svg");
  std::map<std::string, std::vector<std::pair<double, double>>> lines;
  std::map<std::string, size_t> circles;
  size_t texts = 0;
  for (const auto& e : els) {
    if (e.name == "polyline") lines[e.attrs.at("id")] = points(e.attrs.at("points"));
    if (e.name == "circle") ++circles[e.attrs.at("class")];
    texts += e.name == "text";
  }
  CHECK(texts >= 6);  // title, axis labels, tick labels
  using Series = std::vector<std::pair<uint64_t, double>>;
  std::vector<std::pair<std::string, Series>> want_lines;
  const bool ft = kind == ember::LossCurveKind::kFinetune;
  for (const char* id : ft ? std::vector<const char*>{"step-class-loss", "step-lm-loss", "eval-val"}
                           : std::vector<const char*>{"step-loss", "eval-train", "eval-val"})
    want_lines.push_back({id, {}});
  for (const auto& r : rows) {
    if (ft) {
      if (r.eval) want_lines[2].second.push_back({r.iter, r.val_loss});
      else want_lines[0].second.push_back({r.iter, r.class_loss});
      if (!r.eval && std::isfinite(r.lm_loss)) want_lines[1].second.push_back({r.iter, r.lm_loss});
    } else {
      if (r.eval) want_lines[1].second.push_back({r.iter, r.train_loss}), want_lines[2].second.push_back({r.iter, r.val_loss});
      else want_lines[0].second.push_back({r.iter, r.loss});
    }
  }
  CHECK(circles["eval-train"] == (ft ? 0 : want_lines[1].second.size()));
  CHECK(circles["eval-val"] == want_lines[2].second.size());
  for (const auto& line : want_lines) {
    const std::string& id = line.first;
    const Series& want = line.second;
    CAPTURE(id);
    if (want.empty() && id == "step-lm-loss") {  // fine-tuning without an LM loss: no such line
      CHECK(!lines.count(id));
      continue;
    }
    REQUIRE(lines.count(id));
    const auto& got = lines[id];
    REQUIRE(got.size() == want.size());
    for (size_t a = 0; a < got.size(); ++a) {
      for (size_t b = a + 1; b < got.size() && b < a + 50; ++b) {
        CHECK((want[a].first < want[b].first) == (got[a].first < got[b].first));
        if (want[a].second != want[b].second) CHECK((want[a].second < want[b].second) == (got[a].second > got[b].second));
        else CHECK(got[a].second == got[b].second);
      }
    }
  }
}

struct Train : ember_test::ToolRunner {
  Train() : ToolRunner("ember-train", "ember_train_tool") {}
};

std::vector<ember::LossRow> parse_csv_file(const std::string& path) {
  auto rows = ember::parse_loss_curve_csv(slurp(path), path);
  REQUIRE_MESSAGE(rows.ok(), rows.status().message());
  return *rows;
}

// The CSV without its timing column (ms), which is the only field that differs between two runs.
std::string without_ms(const std::string& csv) {
  std::istringstream in(csv);
  std::string line, out;
  while (std::getline(in, line)) {
    size_t c = 0;
    for (int k = 0; k < 4 && c != std::string::npos; ++k) c = line.find(',', c + (k ? 1 : 0));
    const size_t e = c == std::string::npos ? c : line.find(',', c + 1);
    out += (c == std::string::npos || e == std::string::npos ? line : line.substr(0, c) + line.substr(e)) + "\n";
  }
  return out;
}

}  // namespace

TEST_CASE("loss curve CSV: format, exact round trip, errors naming file and line") {
  std::vector<ember::LossRow> rows;
  ember::LossRow e;
  e.eval = true, e.iter = 0, e.train_loss = 4.174387, e.val_loss = 4.175912;
  rows.push_back(e);
  for (uint64_t i = 0; i < 5; ++i) {
    ember::LossRow r;
    r.iter = i, r.lr = 1e-3 * (i + 1) / 101.0, r.loss = 4.2 - 0.1 * i, r.grad_norm = 1.5 / (i + 1), r.ms = 31.25 + i;
    rows.push_back(r);
  }
  e.iter = 5, e.train_loss = 3.5, e.val_loss = 3.75;
  rows.push_back(e);
  const std::string csv = ember::loss_curve_csv(rows);
  CHECK(csv.rfind("iter,lr,loss,grad_norm,ms,train_loss,val_loss\n0,,,,,4.174387,4.175912\n0,9.90099e-06,4.200000,1.50000,31.250,,\n", 0) == 0);
  auto back = ember::parse_loss_curve_csv(csv, "x.csv");
  REQUIRE(back.ok());
  REQUIRE(back->size() == rows.size());
  CHECK(ember::loss_curve_csv(*back) == csv);
  CHECK((*back)[6].eval);
  CHECK((*back)[6].val_loss == 3.75);

  auto bad = [](const std::string& text) {
    auto r = ember::parse_loss_curve_csv(text, "bad.csv");
    REQUIRE(!r.ok());
    return r.status().message();
  };
  CHECK(bad("").find("bad.csv: empty") != std::string::npos);
  CHECK(bad("iter,loss\n").find("bad.csv line 1: expected the header") != std::string::npos);
  CHECK(bad("iter,lr,loss,grad_norm,ms,train_loss,val_loss\n1,2,3\n").find("line 2: expected 7 fields, got 3") != std::string::npos);
  CHECK(bad("iter,lr,loss,grad_norm,ms,train_loss,val_loss\n1,0.1,x,1,1,,\n").find("line 2: loss 'x' is not a number") != std::string::npos);
  CHECK(bad("iter,lr,loss,grad_norm,ms,train_loss,val_loss\n-1,,,,,1,2\n").find("iter '-1'") != std::string::npos);
  CHECK(bad("iter,lr,loss,grad_norm,ms,train_loss,val_loss\n1,0.1,2,1,1,3,\n").find("a evaluation row has a lr") != std::string::npos);
}

TEST_CASE("fine-tuning loss curve: its own header, the loss parts, NaN LM loss as an empty field, round trip, SVG series") {
  using K = ember::LossCurveKind;
  std::vector<ember::LossRow> rows;
  std::mt19937 rng(3);
  for (uint64_t i = 1; i <= 60; ++i) {
    ember::LossRow r;
    r.iter = i, r.lr = 3e-4, r.class_loss = 0.7 / (1 + 0.05 * i) + (rng() % 100) * 1e-4, r.grad_norm = 2.5, r.ms = 95.125;
    r.lm_loss = 4.5 - 0.01 * i;
    r.loss = r.class_loss + 0.5 * r.lm_loss;
    rows.push_back(r);
    if (i % 20 == 0) {
      ember::LossRow e;
      e.eval = true, e.iter = i, e.val_loss = r.class_loss * 1.2, e.val_accuracy = 0.8 + 0.05 * static_cast<double>(i / 20);
      rows.push_back(e);
    }
  }
  const std::string csv = ember::loss_curve_csv(rows, K::kFinetune);
  CHECK(csv.rfind("iter,lr,loss,class_loss,lm_loss,grad_norm,ms,val_loss,val_accuracy\n1,0.0003,", 0) == 0);
  K kind = K::kPretrain;
  auto back = ember::parse_loss_curve_csv(csv, "ft.csv", &kind);
  REQUIRE(back.ok());
  CHECK(kind == K::kFinetune);
  REQUIRE(back->size() == rows.size());
  CHECK(ember::loss_curve_csv(*back, K::kFinetune) == csv);
  CHECK((*back)[20].eval);
  CHECK((*back)[20].val_accuracy == doctest::Approx(0.85));
  CHECK((*back)[0].lm_loss == doctest::Approx(4.49));
  check_svg_matches(ember::loss_curve_svg(rows, "ft", K::kFinetune), rows, K::kFinetune);
  const std::string svg = ember::loss_curve_svg(rows, "ft", K::kFinetune);
  CHECK(svg.find("accuracy 85.00%") != std::string::npos);  // an evaluation marker's title
  CHECK(svg.find(">classification loss<") != std::string::npos);
  CHECK(svg.find(">LM loss<") != std::string::npos);

  // --lm-weight 0: no LM loss; written as empty fields, read back as NaN; no LM line, nor its legend.
  for (auto& r : rows)
    if (!r.eval) r.lm_loss = std::numeric_limits<double>::quiet_NaN(), r.loss = r.class_loss;
  const std::string csv0 = ember::loss_curve_csv(rows, K::kFinetune);
  CHECK(csv0.find("\n1,0.0003,") != std::string::npos);
  CHECK(csv0.find(",,2.50000,95.125,,\n") != std::string::npos);
  auto back0 = ember::parse_loss_curve_csv(csv0, "ft0.csv", &kind);
  REQUIRE(back0.ok());
  CHECK(std::isnan((*back0)[0].lm_loss));
  CHECK(ember::loss_curve_csv(*back0, K::kFinetune) == csv0);
  const std::string svg0 = ember::loss_curve_svg(*back0, "ft0", K::kFinetune);
  check_svg_matches(svg0, *back0, K::kFinetune);
  CHECK(svg0.find(">LM loss<") == std::string::npos);

  // A pretraining CSV still reads as one; a fine-tuning row needs 9 fields.
  auto pre = ember::parse_loss_curve_csv("iter,lr,loss,grad_norm,ms,train_loss,val_loss\n1,0.1,2,1,1,,\n", "p.csv", &kind);
  REQUIRE(pre.ok());
  CHECK(kind == K::kPretrain);
  auto short_row = ember::parse_loss_curve_csv("iter,lr,loss,class_loss,lm_loss,grad_norm,ms,val_loss,val_accuracy\n1,0.1,2,1,1,,\n", "s.csv");
  REQUIRE(!short_row.ok());
  CHECK(short_row.status().message().find("s.csv line 2: expected 9 fields, got 7") != std::string::npos);

  // An accuracy that parses to infinity (1e310895000) once reached a marker's title as "inf%" (found by
  // the loss_csv fuzz target; the input: tests/data/fuzz/loss_csv_finetune_inf_accuracy.csv): the title
  // then leaves the accuracy out, and the SVG stays finite.
  auto found = ember::read_file(ember_test::data_dir() + "/fuzz/loss_csv_finetune_inf_accuracy.csv");
  REQUIRE(found.ok());
  auto inf_rows = ember::parse_loss_curve_csv(*found, "inf.csv", &kind);
  REQUIRE(inf_rows.ok());
  CHECK(kind == K::kFinetune);
  REQUIRE(!inf_rows->empty());
  CHECK(std::isinf(inf_rows->back().val_accuracy));
  const std::string inf_svg = ember::loss_curve_svg(*inf_rows, "found", K::kFinetune);
  CHECK(inf_svg.find("inf") == std::string::npos);
  CHECK(inf_svg.find("nan") == std::string::npos);
  CHECK(inf_svg.find("val classification loss 0.1000</title>") != std::string::npos);
  check_svg_matches(inf_svg, *inf_rows, K::kFinetune);
}

TEST_CASE("loss curve SVG: well-formed XML, a point per CSV row in order, escaped title, any size") {
  std::vector<ember::LossRow> rows;
  std::mt19937 rng(5);
  for (uint64_t i = 0; i < 300; ++i) {
    if (i % 50 == 0) {
      ember::LossRow e;
      e.eval = true, e.iter = i, e.train_loss = 4.0 / (1 + i * 0.01), e.val_loss = 4.1 / (1 + i * 0.009);
      rows.push_back(e);
    }
    ember::LossRow r;
    r.iter = i, r.loss = 4.2 / (1 + i * 0.01) + (rng() % 100) * 1e-3, r.lr = 1e-3, r.ms = 30;
    rows.push_back(r);
  }
  const std::string svg = ember::loss_curve_svg(rows, "run <a & b> \"q\" 'x' caf\xC3\xA9 \x01");
  check_svg_matches(svg, rows);
  CHECK(svg.find("run &lt;a &amp; b&gt; &quot;q&quot; &apos;x&apos; caf\xC3\xA9 ?") != std::string::npos);

  // Edge cases stay well-formed: no rows, one row, a flat curve, non-finite losses, invalid UTF-8 title.
  std::vector<XmlElement> els;
  CHECK(check_xml(ember::loss_curve_svg({}, "empty"), &els) == "");
  ember::LossRow one;
  one.iter = 7, one.loss = 2.0;
  std::vector<ember::LossRow> flat(3, one);
  flat[1].iter = 8, flat[2].iter = 9;
  for (const auto& v : {std::vector<ember::LossRow>{one}, flat}) {
    els.clear();
    CHECK(check_xml(ember::loss_curve_svg(v, "bad \xff title"), &els) == "");
  }
  flat[1].loss = std::numeric_limits<double>::quiet_NaN();
  flat[2].loss = std::numeric_limits<double>::infinity();
  els.clear();
  CHECK(check_xml(ember::loss_curve_svg(flat, "nan"), &els) == "");
  // Long runs are averaged into at most 2000 points.
  std::vector<ember::LossRow> many(10000, one);
  for (size_t i = 0; i < many.size(); ++i) many[i].iter = i, many[i].loss = 1.0 + 1.0 / (1.0 + static_cast<double>(i));
  const std::string big = ember::loss_curve_svg(many, "long");
  els.clear();
  REQUIRE(check_xml(big, &els) == "");
  for (const auto& e : els)
    if (e.name == "polyline" && e.attrs.at("id") == "step-loss") CHECK(points(e.attrs.at("points")).size() == 2000);
}

TEST_CASE("loss curve SVG: degenerate and extreme ranges end, with a few finite ticks and finite coordinates") {
  // Equal huge losses once made the tick loop stand still (1e30 + 0.5 == 1e30) and fill memory.
  const double big = std::numeric_limits<double>::max();
  // {1e308, 1e308}, {-big, -big}: found by the loss_csv fuzz target (a range clamped on one side only
  // turned upside down, and its tick step into NaN; the input: tests/data/fuzz/loss_csv_one_row_1e308.csv).
  const std::vector<std::pair<double, double>> cases = {{1e30, 1e30}, {1e300, 1e300}, {-1e308, 1e308}, {big, big},
                                                        {-big, big},  {5, 5},         {1e-300, 1e-300}, {0, 1e-12},
                                                        {-7, -7},     {2.5, 2.5 + 1e-15}, {1e308, 1e308}, {-big, -big}};
  for (const auto& c : cases) {
    const double a = c.first, b = c.second;  // not a structured binding: clang's lambdas (CAPTURE) cannot see those
    for (uint64_t iter0 : {uint64_t{0}, uint64_t{1} << 60, ~uint64_t{0} - 1}) {
      CAPTURE(a);
      CAPTURE(b);
      CAPTURE(iter0);
      std::vector<ember::LossRow> rows(2);
      rows[0].iter = iter0, rows[0].loss = a;
      rows[1].iter = iter0 + 1, rows[1].loss = b;
      const std::string svg = ember::loss_curve_svg(rows, "extreme");
      CHECK(svg.size() < 20000);
      CHECK(svg.find("nan") == std::string::npos);
      CHECK(svg.find("inf") == std::string::npos);
      std::vector<XmlElement> els;
      REQUIRE(check_xml(svg, &els) == "");
      for (const char* axis : {"<g id=\"y-axis\"", "<g id=\"x-axis\""}) {  // 2 to 20 labelled ticks each
        CAPTURE(axis);
        const size_t a = svg.find(axis), b = svg.find("</g>", a);
        REQUIRE(a != std::string::npos);
        std::vector<double> values;  // tick labels in drawing order: increasing ("12k" is 12000)
        for (size_t p = svg.find("<text", a); p < b; p = svg.find("<text", p + 1)) {
          const size_t q = svg.find('>', p) + 1;
          char* end = nullptr;
          const double v = std::strtod(svg.c_str() + q, &end);
          values.push_back(*end == 'k' ? v * 1000 : v);
        }
        CHECK(values.size() >= 2);
        CHECK(values.size() <= 20);
        for (size_t i = 1; i < values.size(); ++i) CHECK(values[i] > values[i - 1]);
      }
    }
  }
}

TEST_CASE("ember-train writes the SVG next to the CSV; plot draws one from a CSV; python's XML parser reads it") {
  Train tool;
  if (!ember_test::need_tool(tool)) return;
  const std::string D = tool.dir;
  {
    std::ofstream f(D + "/data.txt");
    for (int i = 0; i < 150; ++i) f << "The quick brown fox jumps over the lazy dog; " << i % 7 << " times.\n";
  }
  REQUIRE(tool.run("pretrain --data " + D + "/data.txt --n-layer 1 --n-head 2 --n-embd 16 --block 16 --batch 4 --iters 12 "
                   "--eval-every 4 --eval-iters 2 --threads 1 --out " + D + "/m.ember") == 0);
  const auto rows = parse_csv_file(D + "/m.ember.csv");
  CHECK(rows.size() == 12 + 4);
  const std::string svg = slurp(D + "/m.ember.svg");
  check_svg_matches(svg, rows);
  CHECK(svg.find("ember-train m.ember: n_layer 1") != std::string::npos);

  REQUIRE(tool.run("plot " + D + "/m.ember.csv -o " + D + "/p.svg --title 'my run'") == 0);
  const std::string p = slurp(D + "/p.svg");
  check_svg_matches(p, rows);
  CHECK(p.find("<title>my run</title>") != std::string::npos);
  REQUIRE(tool.run("plot " + D + "/m.ember.csv") == 0);  // default: m.ember.svg beside it
  CHECK(ember_test::exists(D + "/m.ember.svg"));
  CHECK(tool.run("plot") == 2);
  CHECK(tool.run("plot " + D + "/nope.csv") == 1);
  CHECK(tool.err().find("nope.csv") != std::string::npos);
  std::ofstream(D + "/bad.csv") << "iter,lr,loss,grad_norm,ms,train_loss,val_loss\n3,0.1,oops,1,1,,\n";
  CHECK(tool.run("plot " + D + "/bad.csv") == 1);
  CHECK(tool.err().find("bad.csv line 2") != std::string::npos);
  CHECK(!ember_test::exists(D + "/bad.svg"));

  // An independent XML parser, where there is one.
  if (ember_test::need_file("/usr/bin/python3", "python3: the SVG was checked by the test's own XML parser only")) {
    const std::string py = "/usr/bin/python3 -c \"import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); "
                           "ns = '{http://www.w3.org/2000/svg}'; "
                           "print(sum(len(p.get('points').split()) for p in r.iter(ns + 'polyline') if p.get('id') == 'step-loss'), "
                           "len(list(r.iter(ns + 'circle'))))\" " + D + "/p.svg > " + D + "/py.txt 2>&1";
    CHECK(std::system(py.c_str()) == 0);
    CHECK(slurp(D + "/py.txt") == "12 8\n");
  }
}

TEST_CASE("kill -9 at random moments, also inside checkpoint writes: the checkpoint always loads, --resume ends like a straight run") {
  Train tool;
  if (!ember_test::need_tool(tool)) return;
  const std::string D = tool.dir;
  {
    std::ofstream f(D + "/data.txt");
    for (int i = 0; i < 150; ++i) f << "Now is the winter of our discontent, made glorious summer " << i % 11 << ".\n";
  }
  constexpr uint64_t kIters = 24;
  auto args_for = [&](const std::string& out, bool resume) {
    std::vector<std::string> a = {"pretrain", "--data", D + "/data.txt", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
                                  "--block", "16", "--batch", "4", "--eval-every", "2", "--eval-iters", "1", "--threads", "1",
                                  "--dropout", "0.1", "--warmup", "3", "--lr", "3e-3", "--iters", std::to_string(kIters),
                                  "--log-every", "4", "--out", out};
    if (resume) a.push_back("--resume");
    return a;
  };
  // fork + exec (through the cross build's exe wrapper), with the checkpoint pause hook: each of the
  // checkpoint's files is followed by a 1 ms sleep, so most of the run is spent inside checkpoints.
  auto spawn = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv;
    std::istringstream wrapper(ember_test::env_or("EMBER_EXE_WRAPPER", ""));
    for (std::string w; wrapper >> w;) argv.push_back(w);
    argv.push_back(tool.exe);
    argv.insert(argv.end(), args.begin(), args.end());
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      const int fd = open((D + "/log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      setenv("EMBER_TRAIN_CHECKPOINT_PAUSE_MS", "1", 1);
      std::vector<char*> p;
      for (auto& s : argv) p.push_back(s.data());
      p.push_back(nullptr);
      execvp(p[0], p.data());
      _exit(127);
    }
    return pid;
  };
  auto wall_ms = [] {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };

  // The straight run (one thread), timed to spread the kills over a run's length.
  const double t0 = wall_ms();
  int status = 0;
  waitpid(spawn(args_for(D + "/ref.ember", false)), &status, 0);
  REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  const double run_ms = wall_ms() - t0;

  // The killed run: start, kill -9 after a random delay, check what is on disk, resume; repeat.
  std::mt19937 rng(20240607);
  int kills = 0, rounds = 0, loaded = 0, from_prev = 0, temporaries = 0;
  bool finished = false;
  const std::string K = D + "/k.ember";
  while (!finished && rounds < 60) {
    ++rounds;
    const pid_t pid = spawn(args_for(K, ember_test::exists(K)));
    if (kills < 16) {
      std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(std::uniform_real_distribution<double>(0.02, 0.2)(rng) * run_ms * 1e3)));
      kill(pid, SIGKILL);
    }
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
      ++kills;
    } else {
      REQUIRE_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), "ember-train failed after a kill:\n" << slurp(D + "/log"));
      finished = true;
    }
    // Whatever moment the kill hit: the model loads, and it has an optimizer state of its own step.
    DIR* d = opendir(D.c_str());
    REQUIRE(d != nullptr);
    while (const dirent* e = readdir(d)) temporaries += std::string(e->d_name).find(".tmp.") != std::string::npos;
    closedir(d);
    if (!ember_test::exists(K)) continue;
    auto model = ember::Model::load(K);
    REQUIRE_MESSAGE(model.ok(), model.status().message());
    auto spec = ember::read_model_file(K);
    REQUIRE(spec.ok());
    ++loaded;
    const std::string steps = spec->metadata.at("train.steps");
    ember::TrainOptions o;
    o.batch = 4;
    auto tr = ember::Trainer::from_spec(*spec, o);
    REQUIRE(tr.ok());
    bool consistent = false;
    for (const std::string& st : {K + ".state", K + ".state.prev"}) {
      if (ember_test::exists(st) && (*tr)->load_state(st).ok() && std::to_string((*tr)->steps()) == steps) {
        consistent = true;
        from_prev += st != K + ".state";
        break;
      }
    }
    CHECK_MESSAGE(consistent, "no optimizer state of step " << steps << " after kill " << kills);
    CHECK(!parse_csv_file(K + ".csv").empty());
  }
  // A final resume when the last kill came after the final checkpoint but before the exit.
  if (!finished) {
    auto spec = ember::read_model_file(K);
    REQUIRE(spec.ok());
    CHECK(spec->metadata.at("train.steps") == std::to_string(kIters));
  }
  MESSAGE(kills << " kills in " << rounds << " runs (a run takes " << run_ms << " ms); the checkpoint loaded " << loaded
                << " times, " << from_prev << " times through .state.prev (a kill between state and model); "
                << temporaries << " temporaries seen after kills");
  CHECK(kills >= 1);

  // Same weights, optimizer state and loss curve as the straight run (timings aside).
  auto a = ember::read_model_file(D + "/ref.ember"), b = ember::read_model_file(K);
  REQUIRE((a.ok() && b.ok()));
  REQUIRE(a->tensors.size() == b->tensors.size());
  for (size_t i = 0; i < a->tensors.size(); ++i) CHECK_MESSAGE(a->tensors[i].data == b->tensors[i].data, a->tensors[i].name);
  CHECK(a->metadata == b->metadata);
  CHECK(slurp(D + "/ref.ember.state") == slurp(K + ".state"));
  const std::string ref_csv = slurp(D + "/ref.ember.csv");
  CHECK(without_ms(ref_csv) == without_ms(slurp(K + ".csv")));
  CHECK(parse_csv_file(K + ".csv").size() == kIters + kIters / 2 + 1);
  check_svg_matches(slurp(K + ".svg"), parse_csv_file(K + ".csv"));
  if (finished) {
    // The finishing run removed the temporaries of the killed ones, and the previous state.
    DIR* d = opendir(D.c_str());
    std::vector<std::string> left;
    while (const dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n.find(".tmp.") != std::string::npos || n.find(".prev") != std::string::npos) left.push_back(n);
    }
    closedir(d);
    CHECK_MESSAGE(left.empty(), "left behind: " << (left.empty() ? "" : left[0]));
  }
}

TEST_CASE("nanoGPT token files (uint16 train.bin / val.bin): the same run as on the text they came from; bad files named") {
  Train tool;
  if (!ember_test::need_tool(tool)) return;
  // tests/train/make_token_files.py wrote the .bin files the way nanoGPT's prepare.py scripts do, from
  // corpus.txt split at 90% of its characters (= --split chars): char ids and GPT-2 BPE ids.
  const std::string D = tool.dir, T = ember_test::data_dir() + "/train", text = T + "/bpe/corpus.txt";
  const std::string opts = " --n-layer 1 --n-head 2 --n-embd 16 --block 16 --batch 4 --iters 6 --eval-every 3 --eval-iters 2 --threads 1";
  auto same_run = [&](const std::string& a, const std::string& b) {
    CHECK(without_ms(slurp(D + "/" + a + ".csv")) == without_ms(slurp(D + "/" + b + ".csv")));
    auto ma = ember::read_model_file(D + "/" + a), mb = ember::read_model_file(D + "/" + b);
    REQUIRE((ma.ok() && mb.ok()));
    CHECK(mb->metadata.at("train.split") == "token files");
    REQUIRE(ma->tensors.size() == mb->tensors.size());
    for (size_t i = 0; i < ma->tensors.size(); ++i) CHECK_MESSAGE(ma->tensors[i].data == mb->tensors[i].data, ma->tensors[i].name);
  };
  SUBCASE("char ids index the sorted characters of --vocab-from; val.bin is found beside train.bin") {
    REQUIRE(tool.run("pretrain --data " + text + opts + " --out " + D + "/text.ember") == 0);
    REQUIRE(tool.run("pretrain --data " + T + "/tokens/char/train.bin --vocab-from " + text + opts + " --out " + D + "/bin.ember") == 0);
    same_run("text.ember", "bin.ember");
  }
  SUBCASE("GPT-2 ids with --vocab gpt2, --val-data named") {
    const std::string gpt2 = " --vocab gpt2 --tokenizer-dir " + ember_test::data_dir() + "/gpt2";
    REQUIRE(tool.run("pretrain --data " + text + gpt2 + opts + " --out " + D + "/text.ember") == 0);
    REQUIRE(tool.run("pretrain --data " + T + "/tokens/gpt2/train.bin --val-data " + T + "/tokens/gpt2/val.bin" + gpt2 + opts +
                     " --out " + D + "/bin.ember") == 0);
    same_run("text.ember", "bin.ember");
  }
  SUBCASE("errors") {
    const std::string from = " --vocab-from " + text;
    // GPT-2 ids are not in the 194-character vocabulary: the file, the id and its index are named.
    CHECK(tool.run("pretrain --data " + T + "/tokens/gpt2/train.bin" + from + opts + " --out " + D + "/m.ember") == 1);
    CHECK(tool.err().find("tokens/gpt2/train.bin: token 464 at index 0 is outside the vocabulary (n_vocab 194)") != std::string::npos);
    std::ofstream(D + "/odd.bin", std::ios::binary) << std::string("\x01\x00\x02", 3);
    CHECK(tool.run("pretrain --data " + D + "/odd.bin --val-data " + D + "/odd.bin" + from + opts + " --out " + D + "/m.ember") == 1);
    CHECK(tool.err().find("odd.bin: 3 bytes is not a whole number of uint16 token ids") != std::string::npos);
    CHECK(tool.run("pretrain --data " + D + "/odd.bin" + from + opts + " --out " + D + "/m.ember") == 2);  // no val file
    CHECK(tool.err().find("--val-data") != std::string::npos);
    CHECK(tool.run("pretrain --data " + T + "/tokens/char/train.bin" + opts + " --out " + D + "/m.ember") == 2);  // no vocabulary
    CHECK(tool.run("pretrain --data " + T + "/tokens/char/train.bin --vocab bpe" + opts + " --out " + D + "/m.ember") == 2);
    CHECK(tool.run("pretrain --data " + T + "/tokens/char/train.bin --data " + text + from + opts + " --out " + D + "/m.ember") == 2);
    CHECK(tool.run("pretrain --data " + T + "/tokens/char/train.bin --split lines" + from + opts + " --out " + D + "/m.ember") == 2);
    CHECK(tool.run("pretrain --data " + text + from + opts + " --out " + D + "/m.ember") == 2);  // --vocab-from needs a token file
    CHECK(!ember_test::exists(D + "/m.ember"));
  }
}
