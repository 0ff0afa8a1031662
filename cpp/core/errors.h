// The engine's exception taxonomy. Every failure inside cpp/ and cuda/ is one of these;
// the binding (cpp/bindings/bind_core.cc) maps each onto caffeonspark.errors.<Same name>.
// Nothing in the engine exits, aborts or logs fatally: inside a Spark executor that would
// kill the JVM without a message.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace caffeonspark {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ConfigError : Error { using Error::Error; };
struct ShapeError : Error { using Error::Error; };
struct FormatError : Error { using Error::Error; };
struct IoError : Error { using Error::Error; };
struct CommError : Error { using Error::Error; };
struct PeerTimeout : CommError { using CommError::CommError; };
struct CudaError : Error { using Error::Error; };
struct InternalError : Error { using Error::Error; };

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
