"""Token-embedding lookups of a `.tflite` file as `EMBEDDING_LOOKUP`, so int4 can share one table.

The TFLite converter writes `tf.gather(table, ids)` as `GATHER`. ai-edge-
quantizer quantizes an `EMBEDDING_LOOKUP`'s table (its hybrid kernel
dequantizes the rows it reads) but not a `GATHER`'s. With a tied head the
same table is also the logits' `FULLY_CONNECTED` weight: quantizing only
the logits made the quantizer keep the float table for the lookups and add
an int4 copy for the logits, in every signature (GPT-2 small: 575 MB against
float32's 498 MB); keeping both float made every token read 154 MB of
float32 logits weights.
After `token_lookups_as_embedding_lookups`, the lookups and the logits are
quantized alike and read one int4 table.

`EMBEDDING_LOOKUP` takes 1-D ids, so each rewritten `GATHER` becomes
`RESHAPE` (ids to 1-D), `EMBEDDING_LOOKUP`, `RESHAPE` (rows back to the
gather's output shape). The shapes must be static: our step signatures have
batch 1 and fixed lengths (`keras_lm.export.tflite`).

Example (the float32 file of a model of vocabulary 259):

    data = open("model_float32.tflite", "rb").read()
    data, count = token_lookups_as_embedding_lookups(data, vocabulary_size=259)
"""

import numpy as np


def token_lookups_as_embedding_lookups(data, vocabulary_size):
    """`(bytes, count)`: `data` (a `.tflite` file's bytes) with its token-table `GATHER`s rewritten.

    A `GATHER` is rewritten when its table is a constant float32 matrix of
    `vocabulary_size` rows (a token embedding: tied or not, the token table,
    value embeddings; not the positions), it gathers rows (axis 0, no batch
    dimensions) and its int32 ids have a static shape. `count`: how many
    were rewritten (0: `data` is returned unchanged).
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    opcode = _OpcodeIndex(model, schema)
    count = 0
    for graph in model.subgraphs:
        operators = []
        for op in graph.operators:
            if not _is_token_gather(model, graph, op, opcode, vocabulary_size, schema):
                operators.append(op)
                continue
            table, ids = op.inputs
            rows = graph.tensors[op.outputs[0]]
            length = int(np.prod(graph.tensors[ids].shape))
            width = int(graph.tensors[table].shape[1])
            flat_ids = _add_tensor(graph, rows.name + b"/ids_1d", [length], schema.TensorType.INT32)
            flat_rows = _add_tensor(graph, rows.name + b"/rows_2d", [length, width],
                                    schema.TensorType.FLOAT32)
            operators += [
                _reshape(model, graph, opcode, ids, flat_ids, [length], schema),
                _operator(opcode(schema.BuiltinOperator.EMBEDDING_LOOKUP), [flat_ids, table],
                          [flat_rows], schema),
                _reshape(model, graph, opcode, flat_rows, op.outputs[0], list(rows.shape), schema),
            ]
            count += 1
        graph.operators = operators
    if not count:
        return data, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), count


class _OpcodeIndex:
    """`opcode(builtin)`: the index of `builtin`'s operator code in `model`, added if missing."""

    def __init__(self, model, schema):
        self.model, self.schema = model, schema

    def __call__(self, builtin):
        for index, code in enumerate(self.model.operatorCodes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
                return index
        code = self.schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1


def _is_token_gather(model, graph, op, opcode, vocabulary_size, schema):
    code = model.operatorCodes[op.opcodeIndex]
    if max(code.builtinCode, code.deprecatedBuiltinCode) != schema.BuiltinOperator.GATHER:
        return False
    options = op.builtinOptions
    if getattr(options, "axis", 0) != 0 or getattr(options, "batchDims", 0) != 0:
        return False
    table, ids = (graph.tensors[i] for i in op.inputs)
    buffer = model.buffers[table.buffer] if table.buffer else None
    constant = buffer is not None and (buffer.data is not None or buffer.size)
    static = ids.shapeSignature is None or all(d >= 0 for d in ids.shapeSignature)
    return (constant and table.type == schema.TensorType.FLOAT32 and len(table.shape) == 2
            and table.shape[0] == vocabulary_size and ids.type == schema.TensorType.INT32 and static)


def _add_tensor(graph, name, shape, dtype, buffer=0):
    from ai_edge_litert import schema_py_generated as schema

    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type, tensor.buffer = name, np.array(shape, np.int32), dtype, buffer
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _reshape(model, graph, opcode, source, target, shape, schema):
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.array(shape, np.int32).tobytes(), np.uint8)
    model.buffers.append(buffer)
    name = graph.tensors[target].name + b"/shape"
    shape_tensor = _add_tensor(graph, name, [len(shape)], schema.TensorType.INT32,
                               len(model.buffers) - 1)
    op = _operator(opcode(schema.BuiltinOperator.RESHAPE), [source, shape_tensor], [target], schema)
    op.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
    op.builtinOptions = schema.ReshapeOptionsT()
    op.builtinOptions.newShape = list(shape)
    return op


def _operator(opcode_index, inputs, outputs, schema):
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode_index, list(inputs), list(outputs)
    return op
