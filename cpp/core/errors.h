// The engine's exception taxonomy. Every failure inside the engine (cpp/) is one of these;
// the binding (cpp/bindings/bind_core.cc) maps each onto caffeonspark.errors.<Same name>.
// Tests: tests/test_errors.py.
// Nothing in the engine exits, aborts or logs fatally: inside a Spark executor that would
// kill the JVM without a message.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace caffeonspark {

// The taxonomy, listed once: X(Name, Base) for each type. The classes below, the binding's
// translation (cpp/bindings/bind_core.cc), the feeder errors rebuilt by name
// (cpp/bindings/bind_data.cc) and _engine.error_types() all expand this list; caffeonspark/
// errors.py is pinned to it by tests/test_errors.py.
#define COS_ERROR_TYPES(X)  \
  X(ConfigError, Error)     \
  X(ShapeError, Error)      \
  X(FormatError, Error)     \
  X(IoError, Error)         \
  X(CommError, Error)       \
  X(PeerTimeout, CommError) \
  X(CudaError, Error)       \
  X(InternalError, Error)

// The base: only its listed subclasses are thrown (kind() is pure, so a bare Error cannot be).
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
  // The taxonomy name, which is also the Python class name in caffeonspark.errors.
  virtual const char* kind() const noexcept = 0;
};

#define COS_DEFINE_ERROR_TYPE(Name, Base)                        \
  struct Name : Base {                                           \
    using Base::Base;                                            \
    const char* kind() const noexcept override { return #Name; } \
  };
COS_ERROR_TYPES(COS_DEFINE_ERROR_TYPE)
#undef COS_DEFINE_ERROR_TYPE

// Builds a message from any streamable pieces: Msg("layer ", name, " wants ", n, " bottoms").
template <typename... Parts>
std::string Msg(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

}  // namespace caffeonspark

// Validates a condition at run time (never compiled out, unlike assert).
#define COS_CHECK(cond, ErrorType, ...)                 \
  do {                                                  \
    if (!(cond)) throw ::caffeonspark::ErrorType(::caffeonspark::Msg(__VA_ARGS__)); \
  } while (0)
