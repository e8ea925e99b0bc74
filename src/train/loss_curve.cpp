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

constexpr const char* kHeader = "iter,lr,loss,grad_norm,ms,train_loss,val_loss";

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

std::string loss_curve_csv_row(const LossRow& r) {
  std::string s = std::to_string(r.iter);
  if (r.eval) {
    s += ",,,,," + fmt("%.6f", r.train_loss) + "," + fmt("%.6f", r.val_loss);
  } else {
    s += "," + fmt("%.6g", r.lr) + "," + fmt("%.6f", r.loss) + "," + fmt("%.5f", r.grad_norm) + "," + fmt("%.3f", r.ms) + ",,";
  }
  return s + "\n";
}

std::string loss_curve_csv(const std::vector<LossRow>& rows) {
  std::string s = std::string(kHeader) + "\n";
  for (const LossRow& r : rows) s += loss_curve_csv_row(r);
  return s;
}

Result<std::vector<LossRow>> parse_loss_curve_csv(std::string_view text, const std::string& name) {
  std::vector<LossRow> rows;
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
      if (line != kHeader) return invalid_file(where + ": expected the header '" + std::string(kHeader) + "'");
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
    if (f.size() != 7) return invalid_file(where + ": expected 7 fields, got " + std::to_string(f.size()));
    LossRow r;
    if (!parse_u64(f[0], &r.iter)) return invalid_file(where + ": iter '" + f[0] + "' is not a non-negative integer");
    r.eval = !f[5].empty() || !f[6].empty();
    static const char* kNames[] = {"iter", "lr", "loss", "grad_norm", "ms", "train_loss", "val_loss"};
    double* dst[] = {nullptr, &r.lr, &r.loss, &r.grad_norm, &r.ms, &r.train_loss, &r.val_loss};
    for (int i = 1; i < 7; ++i) {
      const bool want = r.eval ? i >= 5 : i <= 4;
      if (!want) {
        if (!f[i].empty()) return invalid_file(where + ": a " + std::string(r.eval ? "evaluation" : "step") + " row has a " + kNames[i]);
        continue;
      }
      if (!parse_double(f[i], dst[i])) return invalid_file(where + ": " + kNames[i] + " '" + f[i] + "' is not a number");
    }
    rows.push_back(r);
  }
  if (line_no == 0) return invalid_file(name + ": empty (expected the header '" + std::string(kHeader) + "')");
  return rows;
}

std::string loss_curve_svg(const std::vector<LossRow>& rows, const std::string& title) {
  constexpr double W = 800, H = 500, L = 72, R = 24, T = 48, B = 64;  // size and margins
  const double pw = W - L - R, ph = H - T - B;

  // The series. Steps beyond 2000 are averaged in equal buckets so the file stays small.
  struct Pt {
    double x, y;
  };
  std::vector<Pt> steps, ev_train, ev_val;
  for (const LossRow& r : rows) {
    if (!r.eval && std::isfinite(r.loss)) steps.push_back({static_cast<double>(r.iter), r.loss});
    if (r.eval && std::isfinite(r.train_loss)) ev_train.push_back({static_cast<double>(r.iter), r.train_loss});
    if (r.eval && std::isfinite(r.val_loss)) ev_val.push_back({static_cast<double>(r.iter), r.val_loss});
  }
  constexpr size_t kMaxStepPoints = 2000;
  if (steps.size() > kMaxStepPoints) {
    std::vector<Pt> avg;
    for (size_t k = 0; k < kMaxStepPoints; ++k) {
      const size_t a = steps.size() * k / kMaxStepPoints, b = steps.size() * (k + 1) / kMaxStepPoints;
      double sx = 0, sy = 0;
      for (size_t i = a; i < b; ++i) sx += steps[i].x, sy += steps[i].y;
      avg.push_back({sx / static_cast<double>(b - a), sy / static_cast<double>(b - a)});
    }
    steps.swap(avg);
  }

  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto* s : {&steps, &ev_train, &ev_val})
    for (const Pt& p : *s) x0 = std::min(x0, p.x), x1 = std::max(x1, p.x), y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
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
  auto markers = [&](const char* cls, const char* what, const std::vector<Pt>& pts, const char* color) {
    s += std::string("<g class=\"") + cls + "-markers\" fill=\"" + color + "\">\n";
    for (const Pt& p : pts) {
      s += std::string("<circle class=\"") + cls + "\" cx=\"" + num(X(p.x)) + "\" cy=\"" + num(Y(p.y)) + "\" r=\"3\"><title>step " +
           fmt("%.0f", p.x) + ": " + what + " " + fmt("%.4f", p.y) + "</title></circle>\n";
    }
    s += "</g>\n";
  };
  const char *c_step = "#9ecae1", *c_train = "#1f77b4", *c_val = "#d62728";
  polyline("step-loss", steps, c_step, 1.0, 0.9);
  polyline("eval-train", ev_train, c_train, 2.0, 1.0);
  polyline("eval-val", ev_val, c_val, 2.0, 1.0);
  markers("eval-train", "train loss", ev_train, c_train);
  markers("eval-val", "val loss", ev_val, c_val);

  // Legend, top right inside the plot.
  const double lx = L + pw - 150, ly = T + 10;
  s += "<g id=\"legend\">\n<rect x=\"" + num(lx) + "\" y=\"" + num(ly) +
       "\" width=\"140\" height=\"62\" fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#aaaaaa\"/>\n";
  const char* names[] = {"loss per step", "train loss (eval)", "val loss (eval)"};
  const char* colors[] = {c_step, c_train, c_val};
  for (int i = 0; i < 3; ++i) {
    const double y = ly + 14 + 17 * i;
    s += "<line x1=\"" + num(lx + 8) + "\" y1=\"" + num(y) + "\" x2=\"" + num(lx + 30) + "\" y2=\"" + num(y) + "\" stroke=\"" + colors[i] +
         "\" stroke-width=\"" + (i ? "2" : "1.5") + "\"/>\n";
    s += "<text x=\"" + num(lx + 36) + "\" y=\"" + num(y + 4) + "\">" + names[i] + "</text>\n";
  }
  s += "</g>\n</svg>\n";
  return s;
}

}  // namespace ember
