#include "layers/cos_data.h"

#include <algorithm>

namespace caffeonspark {

namespace {

const char* const kNumberTypes[] = {"STRING", "INT", "FLOAT"};
const char* const kArrayTypes[] = {"INT_ARRAY", "FLOAT_ARRAY"};
const char* const kImageTypes[] = {"RAW_IMAGE", "ENCODED_IMAGE", "ENCODED_IMAGE_WITH_DIM"};

template <size_t N>
bool OneOf(const std::string& value, const char* const (&names)[N]) {
  return std::find(std::begin(names), std::end(names), value) != std::end(names);
}

std::string ShapeText(const std::vector<int>& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + ")";
}

int Count(const std::vector<int>& shape, size_t from = 0) {
  int count = 1;
  for (size_t i = from; i < shape.size(); ++i) count *= shape[i];
  return count;
}

}  // namespace

std::string CoSDataLayer::Top::label() const {
  return Msg("top '", name, "' (", type, ")");
}

CoSDataLayer::Top CoSDataLayer::MakeTop(const Params& p, int index, int batch_size) const {
  static const Params kIdentity;
  Top top;
  top.name = p.size("name") ? p.str("name") : "";
  top.type = p.size("type") ? p.str("type") : "STRING";
  const std::string at = Msg("cos_data_param top ", index, " '", top.name, "' (", top.type, "): ");
  top.image = OneOf(top.type, kImageTypes);
  COS_LAYER_CHECK(top.image || OneOf(top.type, kNumberTypes) || OneOf(top.type, kArrayTypes),
                  ConfigError, at, "unknown data type; known: STRING, INT, FLOAT, INT_ARRAY, "
                  "FLOAT_ARRAY, RAW_IMAGE, ENCODED_IMAGE, ENCODED_IMAGE_WITH_DIM");
  COS_LAYER_CHECK(!top.name.empty(), ConfigError, at, "needs a name (the DataFrame column)");
  const int axes = static_cast<int>(p.number_or("sample_num_axes", 3));
  COS_LAYER_CHECK(axes >= 0 && axes <= 3, ConfigError, at,
                  "sample_num_axes must be in [0, 3], got ", axes);
  COS_LAYER_CHECK(!top.image || axes == 3, ConfigError, at,
                  "images need sample_num_axes 3 (channels, height, width), got ", axes);
  const char* const dims[] = {"channels", "height", "width"};
  const char* const out_dims[] = {"out_channels", "out_height", "out_width"};
  std::vector<int> out(3, 1);
  top.item.assign(3, 1);
  for (int a = 0; a < axes; ++a) {
    top.item[a] = static_cast<int>(p.number_or(dims[a], 0));
    COS_LAYER_CHECK(top.item[a] > 0, ConfigError, at, dims[a], " must be positive, got ",
                    top.item[a]);
    const int given = static_cast<int>(p.number_or(out_dims[a], 0));
    out[a] = given > 0 ? given : -1;  // -1: whatever the transform makes
  }
  COS_LAYER_CHECK(top.image || OneOf(top.type, kArrayTypes) || Count(top.item) == 1, ConfigError,
                  at, "holds one number per item, but channels x height x width over its ",
                  axes, " sample axes is ", Count(top.item));
  top.transformer = MakeTransformer(p.has("transform_param") ? p.child("transform_param")
                                                             : kIdentity);
  top.transform = top.image || !top.transformer->identity();
  const std::vector<int> made = top.transformer->OutputShape(top.item[0], top.item[1], top.item[2]);
  for (int a = 0; a < axes; ++a) {
    COS_LAYER_CHECK(out[a] < 0 || out[a] == made[a], ConfigError, at, out_dims[a], " is ",
                    out[a], " but its transform_param makes items ", ShapeText(made), " of ",
                    ShapeText(top.item));
  }
  top.transpose = p.size("transpose") && p.flag("transpose");
  if (top.transpose) {
    COS_LAYER_CHECK(axes == 1, ConfigError, at, "transpose needs sample_num_axes 1 (one vector "
                    "per item), got ", axes);
    top.shape = {made[0], batch_size};
  } else {
    top.shape = {batch_size};
    top.shape.insert(top.shape.end(), made.begin(), made.begin() + axes);
  }
  return top;
}

void CoSDataLayer::LayerSetUp(const Tensors&, const Tensors& top) {
  const Params& p = spec_.params.child("cos_data_param");
  batch_size_ = static_cast<int>(p.number_or("batch_size", 0));
  COS_LAYER_CHECK(batch_size_ > 0, ConfigError, "cos_data_param.batch_size must be positive, got ",
                  batch_size_);
  COS_LAYER_CHECK(p.size("top") == top.size(), ConfigError, "has ", top.size(),
                  " top blobs but cos_data_param describes ", p.size("top"),
                  " (one `top { ... }` per top blob, in order)");
  tops_.clear();
  for (size_t i = 0; i < top.size(); ++i) {
    tops_.push_back(MakeTop(p.child("top", i), static_cast<int>(i), batch_size_));
    top[i]->Reshape(tops_.back().shape);
  }
  StartPrefetch(kQueueCapacity, [this](Batch batch, Prefetcher&) { return Process(std::move(batch)); });
}

Batch CoSDataLayer::Process(Batch batch) {
  COS_LAYER_CHECK(batch.tops.size() == tops_.size(), ShapeError, "a fed batch holds ",
                  batch.tops.size(), " arrays; the layer has ", tops_.size(),
                  " tops (push one array per top, in order)");
  Batch out;
  out.shape = {batch_size_};
  for (size_t i = 0; i < tops_.size(); ++i) {
    out.tops.push_back(ProcessTop(tops_[i], std::move(batch.tops[i]), batch_size_));
  }
  return out;
}

Batch CoSDataLayer::ProcessTop(Top& top, Batch fed, int num) const {
  COS_LAYER_CHECK(fed.shape.size() == 4 && fed.shape[0] == num &&
                      std::vector<int>(fed.shape.begin() + 1, fed.shape.end()) == top.item,
                  ShapeError, top.label(), " was fed items ", ShapeText(fed.shape),
                  "; it takes (batch_size, C, H, W) = ", ShapeText({num, top.item[0],
                  top.item[1], top.item[2]}));
  const size_t held = fed.raw ? fed.pixels.size() : fed.values.size();
  COS_LAYER_CHECK(held == static_cast<size_t>(num) * Count(top.item), InternalError, top.label(),
                  " holds ", held, " values for its shape");
  Batch out;
  out.shape = top.shape;
  if (fed.raw || top.transform) {
    out.values.resize(static_cast<size_t>(Count(top.shape)));
    if (fed.raw) {
      top.transformer->Transform(fed.pixels.data(), num, top.item[0], top.item[1], top.item[2],
                                 out.values.data());
    } else {
      top.transformer->Transform(fed.values.data(), num, top.item[0], top.item[1], top.item[2],
                                 out.values.data());
    }
  } else {
    out.values = std::move(fed.values);
  }
  if (top.transpose) {  // (N, C) -> (C, N)
    const int channels = top.shape[0];
    std::vector<float> t(out.values.size());
    for (int n = 0; n < num; ++n) {
      for (int c = 0; c < channels; ++c) {
        t[static_cast<size_t>(c) * num + n] = out.values[static_cast<size_t>(n) * channels + c];
      }
    }
    out.values = std::move(t);
  }
  return out;
}

void CoSDataLayer::CheckBatch(const Batch& batch) const {
  COS_LAYER_CHECK(batch.tops.size() == tops_.size(), InternalError, "a processed batch holds ",
                  batch.tops.size(), " tops for ", tops_.size());
  for (size_t i = 0; i < tops_.size(); ++i) {
    COS_LAYER_CHECK(batch.tops[i].shape == tops_[i].shape &&
                        batch.tops[i].values.size() == static_cast<size_t>(Count(tops_[i].shape)),
                    InternalError, tops_[i].label(), " got a batch of shape ",
                    ShapeText(batch.tops[i].shape), " for ", ShapeText(tops_[i].shape));
  }
}

void CoSDataLayer::Forward_cpu(const Tensors&, const Tensors& top) {
  Batch batch = NextBatch();
  CheckBatch(batch);
  for (size_t i = 0; i < top.size(); ++i) {
    top[i]->Reshape(batch.tops[i].shape);
    std::copy(batch.tops[i].values.begin(), batch.tops[i].values.end(), top[i]->mutable_data());
  }
}

}  // namespace caffeonspark
