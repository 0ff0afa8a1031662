// caffeonspark._engine Net: built from layer spec dicts; forward/backward release the GIL.
#include <pybind11/stl.h>

#include "bindings/convert.h"
#include "bindings/gil_release.h"
#include "net/net.h"

namespace caffeonspark::py_bind {

void BindNet(py::module_& m) {
  py::class_<Net, std::shared_ptr<Net>>(m, "Net")
      .def(py::init([](const std::string& name, const py::list& specs, bool force_backward) {
             std::vector<LayerSpec> layer_specs;
             for (const py::handle& s : specs) layer_specs.push_back(ToLayerSpec(s.cast<py::dict>()));
             GilRelease release;
             return std::make_shared<Net>(name, std::move(layer_specs), force_backward);
           }),
           py::arg("name"), py::arg("layer_specs"), py::arg("force_backward") = false)
      .def_property_readonly("name", &Net::name)
      .def("forward", &Net::Forward, py::call_guard<GilRelease>())
      .def("forward_from_to", &Net::ForwardFromTo, py::call_guard<GilRelease>())
      .def("backward", &Net::Backward, py::call_guard<GilRelease>())
      .def("backward_from_to", &Net::BackwardFromTo, py::call_guard<GilRelease>())
      .def("reshape", &Net::Reshape, py::call_guard<GilRelease>())
      .def("clear_param_diffs", &Net::ClearParamDiffs)
      .def("update", &Net::Update, py::call_guard<GilRelease>())
      .def("share_trained_layers_with", &Net::ShareTrainedLayersWith)
      .def_property_readonly("layer_names", &Net::layer_names)
      .def_property_readonly("blob_names", &Net::blob_names)
      .def("layer_type", [](Net& n, int i) { return std::string(n.layer(i).type()); })
      .def("layer_blobs", [](Net& n, int i) { return n.layer(i).blobs(); })
      .def("blob", &Net::blob)
      .def("has_blob", &Net::has_blob)
      .def_property_readonly("input_blob_indices", &Net::input_blob_indices)
      .def_property_readonly("output_blob_indices", &Net::output_blob_indices)
      .def_property_readonly("blob_loss_weights", &Net::blob_loss_weights)
      .def("layer_need_backward", &Net::layer_need_backward)
      .def("bottom_need_backward", &Net::bottom_need_backward)
      .def("bottom_ids", &Net::bottom_ids)
      .def("top_ids", &Net::top_ids)
      .def("layer_loss", [](Net& n, int i, int t) { return n.layer(i).loss(t); })
      .def("param_propagate_down", [](Net& n, int i, int p) { return n.layer(i).param_propagate_down(p); })
      .def_property_readonly("learnable_params", &Net::learnable_param_tensors)
      .def_property_readonly("params_lr", &Net::params_lr)
      .def_property_readonly("params_weight_decay", &Net::params_weight_decay)
      .def("learnable_param_id", &Net::learnable_param_id);
}

}  // namespace caffeonspark::py_bind
