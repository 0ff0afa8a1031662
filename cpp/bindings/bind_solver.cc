// caffeonspark._engine Solver: Caffe's training loop (cpp/solver/solver.h) with Python
// callbacks. step/solve/test release the GIL; every callback takes it back while it runs.
// With handle_sigint, SIGINT asks the solver to stop after the current iteration (Caffe's
// default sigint_effect "stop") instead of raising KeyboardInterrupt; the previous handler
// is restored when the call returns. Tests: tests/solver/.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <atomic>
#include <csignal>

#include "bindings/convert.h"
#include "bindings/gil_release.h"
#include "solver/lr_policy.h"
#include "solver/solver.h"

namespace caffeonspark::py_bind {

namespace {

std::atomic<Solver*> g_sigint_solver{nullptr};
std::atomic<bool> g_sigint_received{false};

void OnSigint(int) {
  g_sigint_received.store(true);
  Solver* solver = g_sigint_solver.load();
  if (solver != nullptr) solver->RequestStop();
}

// Routes SIGINT to solver->RequestStop() while alive (no-op when solver is null).
class SigintStop {
 public:
  explicit SigintStop(Solver* solver) {
    if (solver == nullptr) return;
    struct sigaction action {};
    action.sa_handler = &OnSigint;
    sigemptyset(&action.sa_mask);
    previous_solver_ = g_sigint_solver.exchange(solver);
    g_sigint_received.store(false);
    active_ = sigaction(SIGINT, &action, &previous_) == 0;
  }
  // True when SIGINT arrived while this scope was installed.
  bool received() const { return active_ && g_sigint_received.load(); }
  ~SigintStop() {
    if (!active_) return;
    sigaction(SIGINT, &previous_, nullptr);
    g_sigint_solver.store(previous_solver_);
  }
  SigintStop(const SigintStop&) = delete;
  SigintStop& operator=(const SigintStop&) = delete;

 private:
  bool active_ = false;
  struct sigaction previous_ {};
  Solver* previous_solver_ = nullptr;
};

// A Python callable as a std::function that takes the GIL for each call (and to die).
template <typename... Args>
std::function<void(Args...)> WithGil(const py::object& fn) {
  if (fn.is_none()) return {};
  std::shared_ptr<py::object> held(new py::object(fn), [](py::object* p) {
    py::gil_scoped_acquire gil;
    delete p;
  });
  return [held](Args... args) {
    py::gil_scoped_acquire gil;
    (*held)(args...);
  };
}

void SetCallback(Solver& solver, const std::string& name, const py::object& fn) {
  if (name == "start") {
    solver.on_start = WithGil<>(fn);
  } else if (name == "before_forward") {
    solver.on_before_forward = WithGil<int>(fn);
  } else if (name == "gradients_ready") {
    solver.on_gradients_ready = WithGil<>(fn);
  } else if (name == "display") {
    solver.on_display = WithGil<const DisplayInfo&>(fn);
  } else if (name == "test") {
    solver.on_test = WithGil<const TestResult&>(fn);
  } else if (name == "snapshot") {
    solver.on_snapshot = WithGil<>(fn);
  } else {
    throw ConfigError(Msg("unknown solver callback '", name, "'; known: start, before_forward, "
                          "gradients_ready, display, test, snapshot"));
  }
}

}  // namespace

void BindSolver(py::module_& m) {
  py::class_<OutputValues>(m, "OutputValues")
      .def_readonly("name", &OutputValues::name)
      .def_readonly("loss_weight", &OutputValues::loss_weight)
      .def_readonly("values", &OutputValues::values);

  py::class_<DisplayInfo>(m, "DisplayInfo")
      .def_readonly("iter", &DisplayInfo::iter)
      .def_readonly("final", &DisplayInfo::final)
      .def_readonly("seconds", &DisplayInfo::seconds)
      .def_readonly("iters_per_second", &DisplayInfo::iters_per_second)
      .def_readonly("loss", &DisplayInfo::loss)
      .def_readonly("smoothed_loss", &DisplayInfo::smoothed_loss)
      .def_readonly("rate", &DisplayInfo::rate)
      .def_readonly("outputs", &DisplayInfo::outputs);

  py::class_<TestResult>(m, "TestResult")
      .def_readonly("test_net", &TestResult::test_net)
      .def_readonly("iter", &TestResult::iter)
      .def_readonly("test_iter", &TestResult::test_iter)
      .def_readonly("interrupted", &TestResult::interrupted)
      .def_readonly("has_loss", &TestResult::has_loss)
      .def_readonly("loss", &TestResult::loss)
      .def_readonly("outputs", &TestResult::outputs);

  py::class_<LrPolicy>(m, "LrPolicy")
      .def(py::init([](const py::dict& params) { return LrPolicy(ToParams(params, "solver")); }),
           py::arg("solver_params"))
      .def_property_readonly("name", &LrPolicy::name)
      .def(
          "rate",
          [](const LrPolicy& policy, int iter, int current_step) {
            float rate = policy.Rate(iter, current_step);
            return py::make_tuple(rate, current_step);
          },
          py::arg("iter"), py::arg("current_step") = 0,
          "(rate, current_step after this call) for update number `iter`.");

  m.def("update_rule_types", &UpdateRule::Types, "The solver types the engine implements.");

  py::class_<Solver, std::shared_ptr<Solver>>(m, "Solver")
      .def(py::init([](const py::dict& params, std::shared_ptr<Net> net,
                       std::vector<std::shared_ptr<Net>> test_nets) {
             return std::make_shared<Solver>(ToParams(params, "solver"), std::move(net),
                                             std::move(test_nets));
           }),
           py::arg("solver_params"), py::arg("net"), py::arg("test_nets"))
      .def(
          "step",
          [](Solver& s, int iters, bool handle_sigint) {
            SigintStop sigint(handle_sigint ? &s : nullptr);
            {
              GilRelease release;
              s.Step(iters);
            }
            return sigint.received();
          },
          py::arg("iters"), py::arg("handle_sigint") = false,
          "Runs `iters` iterations; returns True when SIGINT stopped it (handle_sigint only).")
      .def(
          "solve",
          [](Solver& s, bool handle_sigint) {
            SigintStop sigint(handle_sigint ? &s : nullptr);
            {
              GilRelease release;
              s.Solve();
            }
            return sigint.received();
          },
          py::arg("handle_sigint") = false,
          "Trains to max_iter; returns True when SIGINT stopped it (handle_sigint only).")
      .def("test", &Solver::Test, py::arg("test_net_id"), py::call_guard<GilRelease>())
      .def("test_all", &Solver::TestAll, py::call_guard<GilRelease>())
      .def("apply_update", &Solver::ApplyUpdate, py::call_guard<GilRelease>())
      .def("set_callback", &SetCallback, py::arg("name"), py::arg("fn"),
           "Callbacks: start(), before_forward(net_index: -1 train, i test), "
           "gradients_ready(), display(DisplayInfo), test(TestResult), snapshot(). None clears.")
      .def("request_stop", &Solver::RequestStop)
      .def("request_snapshot", &Solver::RequestSnapshot)
      .def_property_readonly("stopped_early", &Solver::stopped_early)
      .def_property_readonly("net", &Solver::net)
      .def_property_readonly("test_nets", &Solver::test_nets)
      .def_property("iter", &Solver::iter, &Solver::set_iter)
      .def_property("current_step", &Solver::current_step, &Solver::set_current_step)
      .def_property_readonly("history", &Solver::history)
      .def_property_readonly("history_sets", [](const Solver& s) { return s.rule().history_sets(); })
      .def_property_readonly("type", [](const Solver& s) { return std::string(s.rule().type()); })
      .def_property_readonly("lr_policy", [](const Solver& s) { return s.lr_policy().name(); })
      .def_property_readonly("max_iter", &Solver::max_iter)
      .def_property_readonly("smoothed_loss", &Solver::smoothed_loss)
      .def_property_readonly("recent_losses", &Solver::recent_losses)
      .def_property_readonly("last_loss", &Solver::last_loss);
}

}  // namespace caffeonspark::py_bind
