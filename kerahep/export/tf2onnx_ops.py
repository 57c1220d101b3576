"""tf2onnx handlers for the TensorFlow ops kerahep models use that tf2onnx 1.17 leaves
unconverted (it then writes a graph ONNX Runtime refuses to load), and the patching and
quieting of tf2onnx around a conversion (:func:`patch_tf2onnx`, :class:`quiet_tf2onnx`).

* ``Log1p`` (``keras.ops.log1p``: kerahep's Log1p, ChannelLog1p, ChannelScale and
  PairInvariantMass layers) becomes ``log(1 + x)`` with the correction that keeps the
  digits of a tiny ``x`` (:func:`log1p`);
* ``Erfc`` (the exact GELU, ``0.5 x erfc(-x / sqrt 2)``, of Keras' ``gelu`` activation)
  becomes ``1 - Erf(x)``;
* ``Bitcast`` float32 to int32 is accepted only where Keras' TensorFlow backend uses it
  to read the sign bit (``keras.ops.signbit``, inside ``keras.ops.argmin``/``argmax`` on
  floats): every consumer masks the result with ``0x80000000``. It becomes an int32 that
  carries exactly that bit (``x < 0``, or ``x == 0`` and ``1 / x < 0`` for ``-0.0``), so the
  masked value, and so the graph's result, is the same. Any other bitcast is refused.

Rounding differs from TensorFlow's kernels by a few float32 ulp; the exporter checks every
export against Keras.
"""

from __future__ import annotations

import logging

import numpy as np

#: the float32 sign bit as an int32
SIGN_BIT = np.int32(-(2 ** 31))


def _const(ctx, value, like=None):
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(like)) if like is not None else None
    return ctx.make_const(utils.make_name("kerahep_const"), np.array(value, dtype=dtype)).output[0]


def log1p(ctx, node, name, args):
    """``Log1p(x)`` as ``log(u) * x / (u - 1)`` with ``u = 1 + x`` (``x`` where ``u == 1``).

    The plain ``log(1 + x)`` loses all digits of a tiny ``x`` (it is 0 below 6e-8); the
    correction ``x / (u - 1)`` restores them (Goldberg, "What every computer scientist
    should know about floating-point arithmetic", theorem 4), so the result is within a
    few ulp of ``log1p``. ``u`` infinite gives ``log(u)``.
    """
    x = node.input[0]
    one = _const(ctx, 1, like=x)
    scope = node.name
    u = ctx.make_node("Add", [x, one], op_name_scope=scope).output[0]
    d = ctx.make_node("Sub", [u, one], op_name_scope=scope).output[0]
    log_u = ctx.make_node("Log", [u], op_name_scope=scope).output[0]
    corrected = ctx.make_node("Mul", [log_u, ctx.make_node("Div", [x, d], op_name_scope=scope).output[0]],
                              op_name_scope=scope).output[0]
    exact = ctx.make_node("Or", [ctx.make_node("Equal", [d, _const(ctx, 0, like=x)], op_name_scope=scope).output[0],
                                 ctx.make_node("IsInf", [u], op_name_scope=scope).output[0]],
                          op_name_scope=scope).output[0]
    # where u == 1 the answer is x; where u is infinite it is log(u); elsewhere the corrected log
    fallback = ctx.make_node("Where", [ctx.make_node("IsInf", [u], op_name_scope=scope).output[0], log_u, x],
                             op_name_scope=scope).output[0]
    node.type = "Where"
    for attr in list(node.attr):
        del node.attr[attr]
    ctx.replace_inputs(node, [exact, fallback, corrected])


def erfc(ctx, node, name, args):
    """``Erfc(x)`` as ``Add(Neg(Erf(x)), 1)``."""
    from tf2onnx import utils

    one = _const(ctx, 1, like=node.input[0])
    node.type = "Erf"
    neg = ctx.insert_new_node_on_output("Neg", node.output[0], name=utils.make_name(node.name + "_neg"))
    ctx.insert_new_node_on_output("Add", neg.output[0], name=utils.make_name(node.name + "_one_minus"),
                                  inputs=[neg.output[0], one])


def _is_sign_mask(ctx, consumer) -> bool:
    if consumer.type != "BitwiseAnd":
        return False
    for inp in consumer.input:
        src = ctx.get_node_by_output(inp)
        if src is not None and src.is_const():
            value = src.get_tensor_value(as_list=False)
            if value.size and np.all(value == SIGN_BIT):
                return True
    return False


def sign_bitcast(ctx, node, name, args):
    """``Bitcast`` float32 to int32 whose only use is the sign-bit mask."""
    from onnx import TensorProto

    x = node.input[0]
    consumers = ctx.find_output_consumers(node.output[0])
    if not (ctx.get_dtype(x) == TensorProto.FLOAT and node.get_attr_value("type") == TensorProto.INT32
            and consumers and all(_is_sign_mask(ctx, c) for c in consumers)):
        raise ValueError(f"{node.name}: only the float32 sign-bit test of keras.ops.signbit can be converted "
                         "(a Bitcast with other uses has no ONNX equivalent at opset 18)")
    zero = _const(ctx, 0.0, like=x)
    negative = ctx.make_node("Less", [x, zero], op_name_scope=node.name).output[0]
    is_zero = ctx.make_node("Equal", [x, zero], op_name_scope=node.name).output[0]
    inverse = ctx.make_node("Reciprocal", [x], op_name_scope=node.name).output[0]
    negative_zero = ctx.make_node("And", [is_zero, ctx.make_node("Less", [inverse, zero],
                                                                 op_name_scope=node.name).output[0]],
                                  op_name_scope=node.name).output[0]
    sign = ctx.make_node("Or", [negative, negative_zero], op_name_scope=node.name).output[0]
    node.type = "Where"
    for attr in list(node.attr):
        del node.attr[attr]
    ctx.replace_inputs(node, [sign, ctx.make_const(f"{node.name}_sign_bit", np.array(SIGN_BIT)).output[0],
                              ctx.make_const(f"{node.name}_no_bit", np.array(0, np.int32)).output[0]])


def handlers() -> dict:
    """The ``custom_op_handlers`` of ``tf2onnx.convert`` (a fresh dict: tf2onnx may add to it)."""
    return {"Log1p": (log1p, []), "Erfc": (erfc, []), "Bitcast": (sign_bitcast, [])}


def patch_tf2onnx() -> None:
    """Keras' numpy-2 fixes of tf2onnx (it applies them on every ONNX export), when available."""
    try:
        from keras.src.export.tf2onnx_lib import patch_tf2onnx as patch
    except ImportError:  # pragma: no cover - a Keras without them
        return
    patch()


class quiet_tf2onnx:
    """Silence the converters' logs while converting (the exporter reports problems itself)."""

    NAMES = ("tf2onnx", "tensorflow")  # tf2onnx's log, TensorFlow's deprecation warnings of tf2onnx's calls

    def __enter__(self):
        self.levels = {name: logging.getLogger(name).level for name in self.NAMES}
        for name in self.NAMES:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        return self

    def __exit__(self, *exc):
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)
