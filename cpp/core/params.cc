#include "core/params.h"

#include "core/errors.h"

namespace caffeonspark {

bool Params::has(const std::string& key) const { return fields_.count(key) > 0; }

size_t Params::size(const std::string& key) const {
  auto it = fields_.find(key);
  return it == fields_.end() ? 0 : it->second.size();
}

const Params::Value& Params::at(const std::string& key, size_t i) const {
  auto it = fields_.find(key);
  COS_CHECK(it != fields_.end() && i < it->second.size(), ConfigError, context_,
            context_.empty() ? "" : ": ", "missing parameter '", key, "'",
            i ? Msg(" (entry ", i, ")") : "");
  return it->second[i];
}

double Params::number(const std::string& key, size_t i) const {
  const Value& v = at(key, i);
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* b = std::get_if<bool>(&v)) return *b ? 1.0 : 0.0;
  throw ConfigError(Msg(context_, ": parameter '", key, "' is not a number"));
}

int Params::integer(const std::string& key, size_t i) const {
  return static_cast<int>(number(key, i));
}

bool Params::flag(const std::string& key, size_t i) const {
  const Value& v = at(key, i);
  if (auto* b = std::get_if<bool>(&v)) return *b;
  if (auto* d = std::get_if<double>(&v)) return *d != 0;
  throw ConfigError(Msg(context_, ": parameter '", key, "' is not a bool"));
}

const std::string& Params::str(const std::string& key, size_t i) const {
  const Value& v = at(key, i);
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  throw ConfigError(Msg(context_, ": parameter '", key, "' is not a string"));
}

const Params& Params::child(const std::string& key, size_t i) const {
  const Value& v = at(key, i);
  if (auto* p = std::get_if<std::shared_ptr<Params>>(&v)) return **p;
  throw ConfigError(Msg(context_, ": parameter '", key, "' is not a message"));
}

std::vector<int> Params::integers(const std::string& key) const {
  std::vector<int> out;
  for (size_t i = 0; i < size(key); ++i) out.push_back(integer(key, i));
  return out;
}

std::vector<float> Params::reals(const std::string& key) const {
  std::vector<float> out;
  for (size_t i = 0; i < size(key); ++i) out.push_back(real(key, i));
  return out;
}

std::vector<std::string> Params::strs(const std::string& key) const {
  std::vector<std::string> out;
  for (size_t i = 0; i < size(key); ++i) out.push_back(str(key, i));
  return out;
}

}  // namespace caffeonspark
