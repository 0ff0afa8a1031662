// Params: a layer's (or solver's) parameters as a tree of named fields, handed over by
// Python with every proto default already filled in (python/caffeonspark/netspec.py
// fill_defaults). The engine never parses protobuf. Each field holds a list of values
// (one for a scalar field); enums arrive as their names. Accessors raise ConfigError
// naming the missing field. Tests: exercised by every layer test.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace caffeonspark {

class Params {
 public:
  using Value = std::variant<double, bool, std::string, std::shared_ptr<Params>>;

  void add(const std::string& key, Value value) { fields_[key].push_back(std::move(value)); }
  void declare(const std::string& key) { fields_[key]; }

  bool has(const std::string& key) const;
  size_t size(const std::string& key) const;

  double number(const std::string& key, size_t i = 0) const;
  int integer(const std::string& key, size_t i = 0) const;
  float real(const std::string& key, size_t i = 0) const { return static_cast<float>(number(key, i)); }
  bool flag(const std::string& key, size_t i = 0) const;
  const std::string& str(const std::string& key, size_t i = 0) const;
  const Params& child(const std::string& key, size_t i = 0) const;
  std::vector<int> integers(const std::string& key) const;
  std::vector<float> reals(const std::string& key) const;
  std::vector<std::string> strs(const std::string& key) const;

  // A scalar with a fallback when the field is absent (fields that have no proto default).
  double number_or(const std::string& key, double fallback) const {
    return size(key) ? number(key) : fallback;
  }

  // Context for error messages, e.g. "layer 'conv1' convolution_param".
  void set_context(std::string context) { context_ = std::move(context); }

 private:
  const Value& at(const std::string& key, size_t i) const;

  std::unordered_map<std::string, std::vector<Value>> fields_;
  std::string context_;
};

}  // namespace caffeonspark
