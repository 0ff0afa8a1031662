"""caffe.net_spec: build a NetParameter in Python, pycaffe's NetSpec / layers / params.

    from caffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data, n.label = L.Data(source=path, backend=P.Data.LMDB, batch_size=64, ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    str(n.to_proto())

`L.<Type>(*bottoms, **kwargs)` makes a layer of that type and returns its top (a tuple of
tops for ntop > 1, the layer itself for ntop=0). Keywords: `ntop`, `in_place` (the tops are
the bottoms), `name` (the layer's name; otherwise the name of its first top); a keyword
ending in `param` (param, transform_param, convolution_param ...) or naming no field of
the type's own `<type>_param` is a LayerParameter field; every other keyword is a field of
the type's own parameter message (L.Convolution(kernel_size=5) sets
convolution_param.kernel_size). Values are scalars, lists (repeated fields), dicts
(messages) or lists of dicts (repeated messages).

Tops take the name they are assigned to in the NetSpec; the others are named
`<Type><k>` (Convolution1, ...) in order of first use. `P.<Type>.<VALUE>` is an enum value
of `<Type>Parameter` (P.Pooling.MAX). This is not caffeonspark.netspec, which filters and
prepares nets for the engine.

Tests: tests/caffe/test_net_spec.py.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from caffeonspark import netspec
from caffeonspark.proto import caffe_pb2


def param_name_dict() -> dict[str, str]:
    """Layer type -> the prefix of its parameter field ("Convolution" -> "convolution"),
    read from LayerParameter: field `x_param` of message type `YParameter` maps Y -> x."""
    names = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if field.name.endswith("_param") and field.message_type is not None:
            type_name = field.message_type.name
            if type_name.endswith("Parameter"):
                names[type_name[: -len("Parameter")]] = field.name[: -len("_param")]
    return names


_PARAM_NAMES = param_name_dict()


def assign_proto(proto: Any, name: str, value: Any) -> None:
    """proto.name = value, where value may be a list (repeated) or a dict (a message)."""
    field = proto.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        raise AttributeError(f"{proto.DESCRIPTOR.name} has no field '{name}'")
    is_message = field.type == FieldDescriptor.TYPE_MESSAGE
    if netspec._is_repeated(field):
        values = value if isinstance(value, (list, tuple)) else [value]
        target = getattr(proto, name)
        for item in values:
            if is_message:
                _assign_message(target.add(), item)
            else:
                target.append(item)
    elif is_message:
        _assign_message(getattr(proto, name), value)
    else:
        setattr(proto, name, value)


def _assign_message(message: Any, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assign_proto(message, key, item)
    else:  # a ready message
        message.CopyFrom(value)


class Top:
    """One output of a layer (Function); pass it as a bottom to other layers."""

    def __init__(self, fn: Function, n: int) -> None:
        self.fn = fn
        self.n = n

    def to_proto(self) -> caffe_pb2.NetParameter:
        """The net of every layer this top depends on."""
        return to_proto(self)

    def _to_proto(self, layers: OrderedDict, names: dict, autonames: Counter) -> None:
        self.fn._to_proto(layers, names, autonames)


class Function:
    """One layer: its type, bottoms (Tops) and keyword parameters."""

    def __init__(self, type_name: str, inputs: tuple[Top, ...], params: dict[str, Any]) -> None:
        self.type_name = type_name
        for index, bottom in enumerate(inputs):
            if not isinstance(bottom, Top):
                raise TypeError(
                    f"{type_name} bottom {index} is a {type(bottom).__name__}, not a Top "
                    "(bottoms are the tops of other layers; parameters go in keywords)"
                )
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = int(self.params.pop("ntop", 1))
        self.in_place = bool(self.params.pop("in_place", False))
        self.name = self.params.pop("name", None)
        if self.in_place and self.ntop != len(inputs):
            raise ValueError(f"{type_name}: in_place needs as many tops as bottoms")
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _get_name(self, names: dict, autonames: Counter) -> str:
        if self not in names:
            if self.name is not None:
                names[self] = self.name
            elif self.ntop > 0:
                names[self] = self._get_top_name(self.tops[0], names, autonames)
            else:
                autonames[self.type_name] += 1
                names[self] = f"{self.type_name}{autonames[self.type_name]}"
        return names[self]

    def _get_top_name(self, top: Top, names: dict, autonames: Counter) -> str:
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = f"{top.fn.type_name}{autonames[top.fn.type_name]}"
        return names[top]

    def _to_proto(self, layers: OrderedDict, names: dict, autonames: Counter) -> None:
        if self in layers:
            return
        bottoms = []
        for bottom in self.inputs:
            bottom._to_proto(layers, names, autonames)
            bottoms.append(layers[bottom.fn].top[bottom.n])
        layer = caffe_pb2.LayerParameter(type=self.type_name)
        layer.bottom.extend(bottoms)
        if self.in_place:
            layer.top.extend(bottoms)
        else:
            layer.top.extend(self._get_top_name(t, names, autonames) for t in self.tops)
        layer.name = self._get_name(names, autonames)
        own = _PARAM_NAMES.get(self.type_name)
        for key, value in self.params.items():
            if key.endswith("param") or own is None:
                assign_proto(layer, key, value)
                continue
            message = getattr(layer, f"{own}_param")
            if key in message.DESCRIPTOR.fields_by_name:
                assign_proto(message, key, value)
            else:
                assign_proto(layer, key, value)
        layers[self] = layer


def to_proto(*tops: Top | Function) -> caffe_pb2.NetParameter:
    """The net of every layer the tops (or ntop=0 layers) depend on, in the order they are
    first needed."""
    layers: OrderedDict = OrderedDict()
    autonames: Counter = Counter()
    names: dict = {}
    for top in tops:
        top._to_proto(layers, names, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class NetSpec:
    """Tops assigned as attributes (or items) name the blobs; to_proto() writes the net."""

    def __init__(self) -> None:
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name: str, value: Any) -> None:
        self.tops[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setitem__(self, key: str, value: Any) -> None:
        self.__setattr__(key, value)

    def __getitem__(self, key: str) -> Any:
        return self.__getattr__(key)

    def __delitem__(self, key: str) -> None:
        del self.tops[key]

    def keys(self) -> list[str]:
        return list(self.tops.keys())

    def vals(self) -> list[Any]:
        return list(self.tops.values())

    def to_proto(self) -> caffe_pb2.NetParameter:
        names = {top: name for name, top in self.tops.items()}
        autonames: Counter = Counter()
        layers: OrderedDict = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """L.<Type>(*bottoms, **params): a layer of that type (see the module docstring)."""

    def __getattr__(self, type_name: str) -> Any:
        if type_name.startswith("__"):
            raise AttributeError(type_name)

        def layer_fn(*args: Top, **kwargs: Any) -> Any:
            fn = Function(type_name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops

        return layer_fn


class _EnumScope:
    def __init__(self, message: Any) -> None:
        self._message = message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._message, name)


class Parameters:
    """P.<Type>.<VALUE>: the enum value VALUE of <Type>Parameter (P.Pooling.MAX)."""

    def __getattr__(self, type_name: str) -> Any:
        if type_name.startswith("__"):
            raise AttributeError(type_name)
        return _EnumScope(getattr(caffe_pb2, type_name + "Parameter"))


layers = Layers()
params = Parameters()
