// GilRelease: releases the GIL around a blocking engine call, as py::gil_scoped_release
// does, with one difference at interpreter exit. A daemon thread still inside such a call
// (a feeder blocked in a full queue's push, say) that returns while Python is finalizing is
// ended by Python with pthread_exit when it asks for the GIL back; that unwinding through a
// noexcept destructor calls std::terminate and the process aborts on its way out. Such a
// thread parks instead: the process is exiting, nothing waits for it. The main thread, which
// runs the finalization itself (and objects' __del__ during it), always takes the GIL back.
// Tests: tests/hostile/test_exit_with_blocked_threads.py.
#pragma once

#include <Python.h>
#include <cxxabi.h>
#include <unistd.h>

namespace caffeonspark::py_bind {

// threading.main_thread()'s ident, recorded when the module is initialised (module.cc).
inline unsigned long& MainThreadIdent() {
  static unsigned long ident = 0;
  return ident;
}

inline bool InterpreterFinalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

class GilRelease {
 public:
  GilRelease() : state_(PyEval_SaveThread()) {}
  ~GilRelease() {
    if (PyThread_get_thread_ident() != MainThreadIdent()) {
      while (InterpreterFinalizing()) pause();  // parks for good: see the header comment
    }
    try {
      PyEval_RestoreThread(state_);
    } catch (abi::__forced_unwind&) {
      // Finalization began while this (non-main) thread waited for the GIL, and Python ended
      // it with pthread_exit. Unwinding further would reach a noexcept frame and abort the
      // process; the thread does not hold the GIL (Python dropped it first), so it parks.
      for (;;) pause();
    }
  }
  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;

 private:
  PyThreadState* state_;
};

}  // namespace caffeonspark::py_bind
