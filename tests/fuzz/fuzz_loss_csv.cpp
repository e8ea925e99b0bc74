// Fuzz target "loss_csv": the loss-curve CSV reader (parse_loss_curve_csv, what `ember-train plot` and
// --resume read) and the SVG drawn from what it accepts (loss_curve_svg, whose axes once looped forever
// on a degenerate range). An accepted CSV's rows, written back with loss_curve_csv_row, parse to the
// same rows; the SVG of any accepted CSV is finite and bounded.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "check.h"
#include "ember/train.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  ember::LossCurveKind kind = ember::LossCurveKind::kPretrain;
  auto rows = ember::parse_loss_curve_csv(in, "fuzz.csv", &kind);
  if (!rows.ok()) {
    check(rows.status().message().rfind("fuzz.csv", 0) == 0, "an error that does not name the file");
    return 0;
  }
  const std::string svg = ember::loss_curve_svg(*rows, "fuzz", kind);
  check(svg.size() < 100000 + 200 * rows->size(), "an SVG out of proportion to its rows");
  check(svg.find("nan") == std::string::npos && svg.find("inf") == std::string::npos, "a non-finite coordinate");
  // Written back (rows hold what the CSV said, printed at the writer's precision): the same row kinds
  // and steps, and the same kind of curve.
  const std::string csv = ember::loss_curve_csv(*rows, kind);
  ember::LossCurveKind kind_again = ember::LossCurveKind::kPretrain;
  auto again = ember::parse_loss_curve_csv(csv, "again", &kind_again);
  check(again.ok() && again->size() == rows->size() && kind_again == kind, "written rows do not parse back");
  for (size_t i = 0; i < rows->size(); ++i)
    check((*again)[i].eval == (*rows)[i].eval && (*again)[i].iter == (*rows)[i].iter, "a row changed kind or step");
  return 0;
}
