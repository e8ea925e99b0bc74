// A short excerpt of a JSON value for error messages (internal to libember_host).
//
// nlohmann's dump() recurses once per nesting level, so a hostile file with a value nested 100,000
// arrays deep overflows the stack in dump() even though parsing it (iterative) succeeded. This printer
// walks the value with an explicit stack and stops after `max` characters, whatever the value's depth
// or size.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ember {

inline std::string json_excerpt(const nlohmann::json& v, size_t max = 60) {
  using json = nlohmann::json;
  struct Frame {
    const json* container;
    json::const_iterator it;
    bool first;
  };
  std::string out;
  std::vector<Frame> stack;
  const json* next = &v;
  while (out.size() <= max) {
    if (next) {  // print the value `next` (a key, if any, is already printed)
      const json& j = *next;
      next = nullptr;
      if (j.is_array() || j.is_object()) {
        out += j.is_array() ? '[' : '{';
        stack.push_back(Frame{&j, j.cbegin(), true});
      } else if (j.is_string()) {
        const std::string& s = j.get_ref<const std::string&>();
        out += json(s.substr(0, max + 1)).dump(-1, ' ', false, json::error_handler_t::replace);
      } else {
        out += j.dump(-1, ' ', false, json::error_handler_t::replace);  // a number, bool or null: no recursion
      }
      continue;
    }
    if (stack.empty()) break;
    Frame& f = stack.back();
    if (f.it == f.container->cend()) {
      out += f.container->is_array() ? ']' : '}';
      stack.pop_back();
      continue;
    }
    if (!f.first) out += ',';
    f.first = false;
    if (f.container->is_object()) out += json(f.it.key().substr(0, max + 1)).dump(-1, ' ', false, json::error_handler_t::replace) + ':';
    next = &*f.it;
    ++f.it;
  }
  if (out.size() > max) out = out.substr(0, max - 3) + "...";
  return out;
}

}  // namespace ember
