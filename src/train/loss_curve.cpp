// loss_curve.cpp - ember-train's loss curve: CSV text both ways, and a hand-written SVG line chart.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "ember/tokenizer.h"
#include "ember/train.h"

namespace ember {
namespace {

// The columns after "iter" of each kind: the row type that fills a column (a step or an evaluation), its
// printf format, and whether a NaN is written as (and an empty field read as) NaN.
struct Column {
  const char* name;
  double LossRow::*field;
  bool eval;
  const char* format;
  bool empty_is_nan;
};
constexpr Column kPretrainColumns[] = {
    {"lr", &LossRow::lr, false, "%.6g", false},           {"loss", &LossRow::loss, false, "%.6f", false},
    {"grad_norm", &LossRow::grad_norm, false, "%.5f", false}, {"ms", &LossRow::ms, false, "%.3f", false},
    {"train_loss", &LossRow::train_loss, true, "%.6f", false}, {"val_loss", &LossRow::val_loss, true, "%.6f", false},
};
constexpr Column kFinetuneColumns[] = {
    {"lr", &LossRow::lr, false, "%.6g", false},
    {"loss", &LossRow::loss, false, "%.6f", false},
    {"class_loss", &LossRow::class_loss, false, "%.6f", false},
    {"lm_loss", &LossRow::lm_loss, false, "%.6f", true},
    {"grad_norm", &LossRow::grad_norm, false, "%.5f", false},
    {"ms", &LossRow::ms, false, "%.3f", false},
    {"val_loss", &LossRow::val_loss, true, "%.6f", false},
    {"val_accuracy", &LossRow::val_accuracy, true, "%.6f", false},
};

struct Columns {
  const Column* begin_;
  const Column* end_;
  const Column* begin() const { return begin_; }
  const Column* end() const { return end_; }
  size_t size() const { return static_cast<size_t>(end_ - begin_); }
};
Columns columns(LossCurveKind kind) {
  if (kind == LossCurveKind::kFinetune) return {std::begin(kFinetuneColumns), std::end(kFinetuneColumns)};
  return {std::begin(kPretrainColumns), std::end(kPretrainColumns)};
}

std::string header(LossCurveKind kind) {
  std::string h = "iter";
  for (const Column& c : columns(kind)) h += std::string(",") + c.name;
  return h;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

bool parse_double(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

bool parse_u64(const std::string& s, uint64_t* out) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno == ERANGE || end != s.c_str() + s.size()) return false;
  *out = v;
  return true;
}

// XML 1.0 text: escaped markup characters; control characters and bytes of invalid UTF-8 become '?'.
std::string xml_escape(const std::string& s) {
  const bool utf8 = is_valid_utf8(s);
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if ((c < 0x20 && c != '\t') || c == 0x7F || (c >= 0x80 && !utf8)) out += '?';
        else out += static_cast<char>(c);
    }
  }
  return out;
}

// One axis: the range drawn and its ticks. Any finite data range gives a finite, non-empty range and at
// most kMaxTicks ticks: equal values (of any size), huge values (1e300) and spans that overflow a double
// (-1e308 .. 1e308) included.
struct Axis {
  double lo = 0, hi = 1;     // the range drawn, lo < hi
  double first = 0, step = 1;  // ticks at first + k * step, k = 0 .. ticks - 1
  int ticks = 0;
  double frac(double v) const { return (v / 2 - lo / 2) / (hi / 2 - lo / 2); }  // halves: no overflow
};

Axis make_axis(double lo, double hi, int want, double min_width, bool round_ends) {
  constexpr int kMaxTicks = 20;
  constexpr double kBig = std::numeric_limits<double>::max() / 4;
  Axis a;
  if (!(lo <= hi)) return a;  // no data: [0, 1]
  lo = std::min(std::max(lo, -kBig), kBig), hi = std::min(std::max(hi, -kBig), kBig);
  // Too narrow to draw (equal values, or a width lost to rounding at this magnitude): widen around them.
  const double mag = std::max(std::fabs(lo), std::fabs(hi));
  if (!(hi - lo >= std::max(min_width, mag * 1e-9))) {
    const double pad = std::max(min_width / 2, mag * 0.05);
    lo -= pad, hi += pad;
  }
  a.lo = lo, a.hi = hi;
  // About `want` round steps (1, 2 or 5 x 10^k).
  const double raw = (hi / want - lo / want);
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  const double m = raw / p;
  a.step = (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  if (min_width >= 1) a.step = std::max(a.step, 1.0);
  if (!std::isfinite(a.step) || !(a.step > 0)) {  // cannot happen for finite lo < hi; stay drawable anyway
    a.first = lo, a.step = hi - lo, a.ticks = 2;
    return a;
  }
  if (round_ends) {
    const double rlo = std::floor(lo / a.step) * a.step, rhi = std::ceil(hi / a.step) * a.step;
    if (std::isfinite(rlo) && std::isfinite(rhi) && rlo < rhi) a.lo = rlo, a.hi = rhi;
  }
  a.first = std::ceil(a.lo / a.step) * a.step;
  const double n = std::floor(a.hi / a.step - a.first / a.step + 1e-6) + 1;
  a.ticks = n >= 1 ? static_cast<int>(std::min<double>(n, kMaxTicks)) : 0;
  return a;
}

std::string tick_label(double v, double step) {
  const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  char buf[64];
  if (std::fabs(v) < step * 1e-6) v = 0.0;
  if (std::fabs(v) >= 1e7 || decimals > 6) {  // a diverged run's 1e30, or a range of 1e-9: 1e+30, 1.5e-09
    std::snprintf(buf, sizeof buf, "%.3g", v);
  } else if (step >= 1 && std::fabs(v) >= 1e4) {  // 12000 -> 12k
    if (std::fmod(v, 1000.0) == 0.0) std::snprintf(buf, sizeof buf, "%.0fk", v / 1000.0);
    else std::snprintf(buf, sizeof buf, "%.1fk", v / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  return buf;
}

}  // namespace

std::string loss_curve_csv_row(const LossRow& r, LossCurveKind kind) {
  std::string s = std::to_string(r.iter);
  for (const Column& c : columns(kind)) {
    s += ',';
    const double v = r.*c.field;
    if (c.eval == r.eval && !(c.empty_is_nan && std::isnan(v))) s += fmt(c.format, v);
  }
  return s + "\n";
}

std::string loss_curve_csv(const std::vector<LossRow>& rows, LossCurveKind kind) {
  std::string s = header(kind) + "\n";
  for (const LossRow& r : rows) s += loss_curve_csv_row(r, kind);
  return s;
}

Result<std::vector<LossRow>> parse_loss_curve_csv(std::string_view text, const std::string& name, LossCurveKind* kind_out) {
  const std::string headers =
      "the header '" + header(LossCurveKind::kPretrain) + "' (pretraining) or '" + header(LossCurveKind::kFinetune) + "' (fine-tuning)";
  std::vector<LossRow> rows;
  LossCurveKind kind = LossCurveKind::kPretrain;
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string line(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = name + " line " + std::to_string(line_no);
    if (line_no == 1) {
      if (line == header(LossCurveKind::kFinetune)) kind = LossCurveKind::kFinetune;
      else if (line != header(LossCurveKind::kPretrain)) return invalid_file(where + ": expected " + headers);
      continue;
    }
    if (line.empty()) continue;
    std::vector<std::string> f;
    for (size_t a = 0;;) {
      const size_t b = line.find(',', a);
      f.push_back(line.substr(a, b == std::string::npos ? std::string::npos : b - a));
      if (b == std::string::npos) break;
      a = b + 1;
    }
    const Columns cols = columns(kind);
    if (f.size() != cols.size() + 1)
      return invalid_file(where + ": expected " + std::to_string(cols.size() + 1) + " fields, got " + std::to_string(f.size()));
    LossRow r;
    if (!parse_u64(f[0], &r.iter)) return invalid_file(where + ": iter '" + f[0] + "' is not a non-negative integer");
    for (size_t i = 0; i < cols.size(); ++i) r.eval = r.eval || (cols.begin()[i].eval && !f[i + 1].empty());
    for (size_t i = 0; i < cols.size(); ++i) {
      const Column& c = cols.begin()[i];
      const std::string& v = f[i + 1];
      if (c.eval != r.eval) {
        if (!v.empty()) return invalid_file(where + ": a " + std::string(r.eval ? "evaluation" : "step") + " row has a " + c.name);
        continue;
      }
      if (v.empty() && c.empty_is_nan) {
        r.*c.field = std::numeric_limits<double>::quiet_NaN();
        continue;
      }
      if (!parse_double(v, &(r.*c.field))) return invalid_file(where + ": " + c.name + " '" + v + "' is not a number");
    }
    rows.push_back(r);
  }
  if (line_no == 0) return invalid_file(name + ": empty (expected " + headers + ")");
  if (kind_out) *kind_out = kind;
  return rows;
}

std::string loss_curve_svg(const std::vector<LossRow>& rows, const std::string& title, LossCurveKind kind) {
  constexpr double W = 800, H = 500, L = 72, R = 24, T = 48, B = 64;  // size and margins
  const double pw = W - L - R, ph = H - T - B;

  // The series: per-step losses (thin; beyond 2000 steps averaged in equal buckets so the file stays
  // small) and evaluation losses (thick, a marker per evaluation).
  struct Pt {
    double x, y;
    double acc;  // fine-tuning evaluations: the accuracy, shown in the marker's title
  };
  struct Series {
    const char* id;
    const char* label;  // in the legend
    const char* what;   // in a marker's title
    const char* color;
    bool eval;
    double LossRow::*field;
    std::vector<Pt> pts;
  };
  std::vector<Series> series;
  if (kind == LossCurveKind::kFinetune) {
    series = {{"step-class-loss", "classification loss", "", "#9ecae1", false, &LossRow::class_loss, {}},
              {"step-lm-loss", "LM loss", "", "#fdae6b", false, &LossRow::lm_loss, {}},
              {"eval-val", "val classification loss", "val classification loss", "#d62728", true, &LossRow::val_loss, {}}};
  } else {
    series = {{"step-loss", "loss per step", "", "#9ecae1", false, &LossRow::loss, {}},
              {"eval-train", "train loss (eval)", "train loss", "#1f77b4", true, &LossRow::train_loss, {}},
              {"eval-val", "val loss (eval)", "val loss", "#d62728", true, &LossRow::val_loss, {}}};
  }
  for (Series& se : series)
    for (const LossRow& r : rows)
      if (r.eval == se.eval && std::isfinite(r.*se.field)) se.pts.push_back({static_cast<double>(r.iter), r.*se.field, r.val_accuracy});
  // Fine-tuning without an LM loss (--lm-weight 0): no LM series, nor its legend entry.
  series.erase(std::remove_if(series.begin(), series.end(),
                              [&](const Series& se) { return se.pts.empty() && std::string(se.id) == "step-lm-loss"; }),
               series.end());
  constexpr size_t kMaxStepPoints = 2000;
  for (Series& se : series) {
    std::vector<Pt>& steps = se.pts;
    if (se.eval || steps.size() <= kMaxStepPoints) continue;
    std::vector<Pt> avg;
    for (size_t k = 0; k < kMaxStepPoints; ++k) {
      const size_t a = steps.size() * k / kMaxStepPoints, b = steps.size() * (k + 1) / kMaxStepPoints;
      double sx = 0, sy = 0;
      for (size_t i = a; i < b; ++i) sx += steps[i].x, sy += steps[i].y;
      avg.push_back({sx / static_cast<double>(b - a), sy / static_cast<double>(b - a), 0.0});
    }
    steps.swap(avg);
  }

  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Series& se : series)
    for (const Pt& p : se.pts) x0 = std::min(x0, p.x), x1 = std::max(x1, p.x), y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
  const bool empty = !(x0 <= x1);
  const Axis ax = make_axis(x0, x1, 8, 1.0, false), ay = make_axis(y0, y1, 6, 1e-9, true);
  auto X = [&](double v) { return L + ax.frac(v) * pw; };
  auto Y = [&](double v) { return T + (1 - ay.frac(v)) * ph; };
  auto num = [](double v) { return fmt("%.2f", v); };

  std::string s;
  s += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + num(W) + "\" height=\"" + num(H) +
       "\" viewBox=\"0 0 " + num(W) + " " + num(H) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<title>" + xml_escape(title) + "</title>\n";
  s += "<rect x=\"0\" y=\"0\" width=\"" + num(W) + "\" height=\"" + num(H) + "\" fill=\"#ffffff\"/>\n";
  s += "<text x=\"" + num(W / 2) + "\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">" + xml_escape(title) + "</text>\n";

  // Grid, ticks and tick labels.
  s += "<g id=\"y-axis\" stroke=\"#dddddd\" stroke-width=\"1\">\n";
  for (int k = 0; k < ay.ticks; ++k) {
    const double v = ay.first + k * ay.step, y = Y(v);
    s += "<line x1=\"" + num(L) + "\" y1=\"" + num(y) + "\" x2=\"" + num(L + pw) + "\" y2=\"" + num(y) + "\"/>\n";
    s += "<line x1=\"" + num(L - 5) + "\" y1=\"" + num(y) + "\" x2=\"" + num(L) + "\" y2=\"" + num(y) + "\" stroke=\"#000000\"/>\n";
    s += "<text x=\"" + num(L - 8) + "\" y=\"" + num(y + 4) + "\" text-anchor=\"end\" stroke=\"none\" fill=\"#000000\">" +
         tick_label(v, ay.step) + "</text>\n";
  }
  s += "</g>\n<g id=\"x-axis\" stroke=\"#dddddd\" stroke-width=\"1\">\n";
  for (int k = 0; k < ax.ticks; ++k) {
    const double v = ax.first + k * ax.step, x = X(v);
    s += "<line x1=\"" + num(x) + "\" y1=\"" + num(T) + "\" x2=\"" + num(x) + "\" y2=\"" + num(T + ph) + "\"/>\n";
    s += "<line x1=\"" + num(x) + "\" y1=\"" + num(T + ph) + "\" x2=\"" + num(x) + "\" y2=\"" + num(T + ph + 5) + "\" stroke=\"#000000\"/>\n";
    s += "<text x=\"" + num(x) + "\" y=\"" + num(T + ph + 19) + "\" text-anchor=\"middle\" stroke=\"none\" fill=\"#000000\">" +
         tick_label(v, ax.step) + "</text>\n";
  }
  s += "</g>\n";
  s += "<rect x=\"" + num(L) + "\" y=\"" + num(T) + "\" width=\"" + num(pw) + "\" height=\"" + num(ph) +
       "\" fill=\"none\" stroke=\"#000000\" stroke-width=\"1\"/>\n";
  s += "<text x=\"" + num(L + pw / 2) + "\" y=\"" + num(H - 16) + "\" text-anchor=\"middle\">step</text>\n";
  s += "<text x=\"18\" y=\"" + num(T + ph / 2) + "\" text-anchor=\"middle\" transform=\"rotate(-90 18 " + num(T + ph / 2) +
       ")\">loss</text>\n";
  if (empty) s += "<text x=\"" + num(L + pw / 2) + "\" y=\"" + num(T + ph / 2) + "\" text-anchor=\"middle\">no data</text>\n";

  auto polyline = [&](const char* id, const std::vector<Pt>& pts, const char* color, double width, double opacity) {
    s += std::string("<polyline id=\"") + id + "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"" + fmt("%.1f", width) +
         "\" stroke-opacity=\"" + fmt("%.2f", opacity) + "\" points=\"";
    for (size_t i = 0; i < pts.size(); ++i) s += (i ? " " : "") + num(X(pts[i].x)) + "," + num(Y(pts[i].y));
    s += "\"/>\n";
  };
  auto markers = [&](const Series& se) {
    s += std::string("<g class=\"") + se.id + "-markers\" fill=\"" + se.color + "\">\n";
    for (const Pt& p : se.pts) {
      std::string t = "step " + fmt("%.0f", p.x) + ": " + se.what + " " + fmt("%.4f", p.y);
      if (kind == LossCurveKind::kFinetune && std::isfinite(p.acc)) t += ", accuracy " + fmt("%.2f", 100.0 * p.acc) + "%";
      s += std::string("<circle class=\"") + se.id + "\" cx=\"" + num(X(p.x)) + "\" cy=\"" + num(Y(p.y)) + "\" r=\"3\"><title>" + t +
           "</title></circle>\n";
    }
    s += "</g>\n";
  };
  for (const Series& se : series) polyline(se.id, se.pts, se.color, se.eval ? 2.0 : 1.0, se.eval ? 1.0 : 0.9);
  for (const Series& se : series)
    if (se.eval) markers(se);

  // Legend, top right inside the plot.
  const double lx = L + pw - 170, ly = T + 10;
  s += "<g id=\"legend\">\n<rect x=\"" + num(lx) + "\" y=\"" + num(ly) + "\" width=\"160\" height=\"" +
       num(11 + 17 * static_cast<double>(series.size())) + "\" fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#aaaaaa\"/>\n";
  for (size_t i = 0; i < series.size(); ++i) {
    const double y = ly + 14 + 17 * static_cast<double>(i);
    s += "<line x1=\"" + num(lx + 8) + "\" y1=\"" + num(y) + "\" x2=\"" + num(lx + 30) + "\" y2=\"" + num(y) + "\" stroke=\"" +
         series[i].color + "\" stroke-width=\"" + (series[i].eval ? "2" : "1.5") + "\"/>\n";
    s += "<text x=\"" + num(lx + 36) + "\" y=\"" + num(y + 4) + "\">" + series[i].label + "</text>\n";
  }
  s += "</g>\n</svg>\n";
  return s;
}

}  // namespace ember
