"""Rewrites of a converted `.tflite` graph that the TFLite converter does not make itself.

Both work on the file's flatbuffer (ai-edge-litert's object API) and keep
its signatures, metadata and results; a file whose weights lie past its
flatbuffer (over 2 GB) is returned unchanged:

- `fold_slices_of_packs`: `STRIDED_SLICE(PACK(a, b, ...))` that takes one
  whole entry back becomes that entry. keras-hub's GPT-2, Llama and Qwen 3
  layers take a layer's cache as `stack((key, value), axis=1)` and slice it
  apart again; TensorFlow's grappler folds that pair
  (`RemoveStackSliceSameAxis`), but the TFLite converter does not, and
  TFLite's 5-D `STRIDED_SLICE` is slow: at GPT-2 small's shape (12 layers,
  context 256) the stacking and slicing cost 46 ms a token on one core,
  against 1.5 ms for the cache updates themselves.
- `token_lookups_as_embedding_lookups`: the token table's `GATHER` becomes
  `EMBEDDING_LOOKUP`. ai-edge-quantizer quantizes an `EMBEDDING_LOOKUP`'s
  table (its hybrid kernel dequantizes the rows it reads) but not a
  `GATHER`'s. With a tied head the same table is also the logits'
  `FULLY_CONNECTED` weight: quantizing only the logits made the quantizer
  keep the float table for the lookups and add an int4 copy for the logits,
  in every signature (GPT-2 small: 575 MB against float32's 498 MB);
  keeping both float made every token read 154 MB of float32 logits
  weights. After the rewrite the lookups and the logits read one quantized table.

Example (the float32 file of a model of vocabulary 259):

    data = open("model_float32.tflite", "rb").read()
    data, folded = fold_slices_of_packs(data)
    data, lookups = token_lookups_as_embedding_lookups(data, vocabulary_size=259)
"""

import numpy as np


def fold_slices_of_packs(data):
    """`(bytes, count)`: `data` with each `STRIDED_SLICE` that takes entry `i` of a `PACK` replaced by
    the pack's input `i`, and the packs left unread removed.

    Only the exact pattern is folded: strides 1, one shrunk axis (the pack's
    axis, from `i` to `i + 1`), every other axis whole (masked), and the
    same type and quantization on both sides. `count`: slices folded (0:
    `data` is returned unchanged).
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = _model_object(data)
    if model is None:
        return data, 0
    count = 0
    for index, graph in enumerate(model.subgraphs):
        producers = {out: op for op in graph.operators for out in op.outputs}
        replaced = {}
        for op in graph.operators:
            if _builtin(model, op) != schema.BuiltinOperator.STRIDED_SLICE:
                continue
            pack = producers.get(op.inputs[0])
            if pack is not None and _builtin(model, pack) == schema.BuiltinOperator.PACK:
                entry = _packed_entry(model, graph, op, pack)
                # An output must stay a tensor of its own (not an input, not another output).
                if entry is not None and not (op.outputs[0] in graph.outputs and pack.inputs[
                        entry] in (*graph.inputs, *graph.outputs)):
                    replaced[op.outputs[0]] = pack.inputs[entry]
        if not replaced:
            continue
        count += len(replaced)
        for op in graph.operators:
            op.inputs = [replaced.get(t, t) for t in op.inputs]
        graph.outputs = [replaced.get(t, t) for t in graph.outputs]
        for signature in model.signatureDefs:
            if signature.subgraphIndex == index:
                for output in signature.outputs:
                    output.tensorIndex = replaced.get(output.tensorIndex, output.tensorIndex)
        graph.operators = _without_unread(model, graph, schema)
    if not count:
        return data, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), count


def _model_object(data):
    """The file's flatbuffer as objects, or None when its weights lie past the flatbuffer.

    A file over 2 GB keeps its buffers after the flatbuffer, by offset; the
    object API does not carry them, so such a file is left as it is.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    return None if any(buffer.offset for buffer in model.buffers) else model


def _packed_entry(model, graph, op, pack):
    """The entry `i` of `pack` that the `STRIDED_SLICE` `op` takes whole, or None."""
    options, axis = op.builtinOptions, pack.builtinOptions.axis
    rank = len(graph.tensors[op.inputs[0]].shape)
    axis %= rank
    begin, end, strides = (_constant(model, graph, t) for t in op.inputs[1:4])
    if begin is None or end is None or strides is None or len(begin) != rank:
        return None
    others = ((1 << rank) - 1) & ~(1 << axis)
    if (options.ellipsisMask or options.newAxisMask or options.shrinkAxisMask != 1 << axis
            or options.beginMask != others or options.endMask != others or options.offset
            or not np.all(strides == 1)):
        return None
    entry = int(begin[axis]) % len(pack.inputs)
    source, sliced = graph.tensors[pack.inputs[entry]], graph.tensors[op.outputs[0]]
    same = (source.type == sliced.type and list(source.shape) == list(sliced.shape)
            and not _quantized(source) and not _quantized(sliced))
    return entry if same and int(end[axis]) == int(begin[axis]) + 1 else None


def _quantized(tensor):
    quantization = tensor.quantization
    return quantization is not None and quantization.scale is not None and len(quantization.scale)


def _without_unread(model, graph, schema):
    """`graph`'s operators less the `PACK`s and `STRIDED_SLICE`s whose outputs nothing reads."""
    operators = list(graph.operators)
    removable = (schema.BuiltinOperator.PACK, schema.BuiltinOperator.STRIDED_SLICE)
    while True:
        read = {t for op in operators for t in op.inputs} | set(graph.outputs)
        kept = [op for op in operators if _builtin(model, op) not in removable
                or any(t in read for t in op.outputs)]
        if len(kept) == len(operators):
            return kept
        operators = kept


def token_lookups_as_embedding_lookups(data, vocabulary_size):
    """`(bytes, count)`: `data` (a `.tflite` file's bytes) with its token-table `GATHER`s rewritten.

    A `GATHER` is rewritten when its table is a constant float32 matrix of
    `vocabulary_size` rows (a token embedding: tied or not, the token table,
    value embeddings; not the positions), it gathers rows (axis 0, no batch
    dimensions) and its int32 ids have a static shape. `EMBEDDING_LOOKUP`
    takes 1-D ids, so each becomes `RESHAPE` (ids to 1-D),
    `EMBEDDING_LOOKUP`, `RESHAPE` (rows back to the gather's output shape);
    our step signatures have batch 1 and fixed lengths. `count`: how many
    were rewritten (0: `data` is returned unchanged).
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = _model_object(data)
    if model is None:
        return data, 0
    count = 0
    for graph in model.subgraphs:
        operators = []
        for op in graph.operators:
            if not _is_token_gather(model, graph, op, vocabulary_size, schema):
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
                _reshape(model, graph, ids, flat_ids, [length], schema),
                _operator(model, schema.BuiltinOperator.EMBEDDING_LOOKUP, [flat_ids, table],
                          [flat_rows]),
                _reshape(model, graph, flat_rows, op.outputs[0], list(rows.shape), schema),
            ]
            count += 1
        graph.operators = operators
    if not count:
        return data, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), count


def _is_token_gather(model, graph, op, vocabulary_size, schema):
    if _builtin(model, op) != schema.BuiltinOperator.GATHER:
        return False
    options = op.builtinOptions
    if getattr(options, "axis", 0) != 0 or getattr(options, "batchDims", 0) != 0:
        return False
    table, ids = (graph.tensors[i] for i in op.inputs)
    static = ids.shapeSignature is None or all(d >= 0 for d in ids.shapeSignature)
    constant = table.buffer and model.buffers[table.buffer].data is not None
    return (constant and table.type == schema.TensorType.FLOAT32 and len(table.shape) == 2 and table.shape[0] == vocabulary_size
            and ids.type == schema.TensorType.INT32 and static)


def _builtin(model, op):
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _constant(model, graph, tensor_index):
    """The values of a constant int32 tensor, or None."""
    from ai_edge_litert import schema_py_generated as schema

    tensor = graph.tensors[tensor_index]
    buffer = model.buffers[tensor.buffer] if tensor.buffer else None
    if tensor.type != schema.TensorType.INT32 or buffer is None or buffer.data is None:
        return None
    return np.frombuffer(bytes(buffer.data), np.int32)


def _add_tensor(graph, name, shape, dtype, buffer=0):
    from ai_edge_litert import schema_py_generated as schema

    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type = name, np.array(shape, np.int32), dtype
    tensor.buffer = buffer
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _reshape(model, graph, source, target, shape, schema):
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.array(shape, np.int32).tobytes(), np.uint8)
    model.buffers.append(buffer)
    shape_tensor = _add_tensor(graph, graph.tensors[target].name + b"/shape", [len(shape)],
                               schema.TensorType.INT32, len(model.buffers) - 1)
    op = _operator(model, schema.BuiltinOperator.RESHAPE, [source, shape_tensor], [target])
    op.builtinOptionsType = schema.BuiltinOptions.ReshapeOptions
    op.builtinOptions = schema.ReshapeOptionsT()
    op.builtinOptions.newShape = list(shape)
    return op


def _operator(model, builtin, inputs, outputs):
    """A new operator of `builtin`, its operator code added to `model` if missing."""
    from ai_edge_litert import schema_py_generated as schema

    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    if builtin not in codes:
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
        model.operatorCodes.append(code)
        codes.append(builtin)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = codes.index(builtin), list(inputs), list(outputs)
    return op
