// Headers, iequals and to_string(HttpVersion) from holdfast/http.h: the shared message types.
#include <algorithm>

#include "holdfast/http.h"

namespace holdfast {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  // RFC 9110 §5.1: field names are case-insensitive; ASCII folding only (names are tokens).
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]);
    auto y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') {
      x = static_cast<unsigned char>(x + ('a' - 'A'));
    }
    if (y >= 'A' && y <= 'Z') {
      y = static_cast<unsigned char>(y + ('a' - 'A'));
    }
    if (x != y) {
      return false;
    }
  }
  return true;
}

void Headers::add(std::string name, std::string value) {
  fields_.push_back(HeaderField{std::move(name), std::move(value)});
}

void Headers::set(std::string_view name, std::string value) {
  auto first = std::find_if(fields_.begin(), fields_.end(),
                            [&](const HeaderField& f) { return iequals(f.name, name); });
  if (first == fields_.end()) {
    fields_.push_back(HeaderField{std::string(name), std::move(value)});
    return;
  }
  // Keep the position (and spelling) of the first occurrence; drop the later ones.
  first->value = std::move(value);
  auto rest = std::remove_if(first + 1, fields_.end(),
                             [&](const HeaderField& f) { return iequals(f.name, name); });
  fields_.erase(rest, fields_.end());
}

std::size_t Headers::remove(std::string_view name) {
  auto rest = std::remove_if(fields_.begin(), fields_.end(),
                             [&](const HeaderField& f) { return iequals(f.name, name); });
  auto removed = static_cast<std::size_t>(fields_.end() - rest);
  fields_.erase(rest, fields_.end());
  return removed;
}

std::optional<std::string_view> Headers::get(std::string_view name) const {
  for (const auto& f : fields_) {
    if (iequals(f.name, name)) {
      return std::string_view(f.value);
    }
  }
  return std::nullopt;
}

std::vector<std::string_view> Headers::get_all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& f : fields_) {
    if (iequals(f.name, name)) {
      out.emplace_back(f.value);
    }
  }
  return out;
}

std::string_view to_string(HttpVersion v) noexcept {
  switch (v) {
    case HttpVersion::http1_0: return "HTTP/1.0";
    case HttpVersion::http1_1: return "HTTP/1.1";
    case HttpVersion::http2: return "HTTP/2";
  }
  return "HTTP/?";
}

}  // namespace holdfast
