"""Fine-tune a trained model on prompt -> response pairs with plain `model.fit` (and LoRA).

    python examples/finetune_pairs.py [BASE_RUN_DIR] [pairs.jsonl] [STEPS]

Without arguments: the quickstart's model (`keras-lm train` first), 300
steps and the built-in pairs (a function's signature and docstring -> its body, from the
Python standard library). The loss counts the response tokens only: each
batch carries sample weights that are 0 on the prompt and the padding.
"""

import sys

import keras

import keras_lm
from keras_lm import data
from keras_lm.adaptation import enable_lora
from keras_lm.metrics import TokenAccuracy
from keras_lm.prompt_template import PromptTemplate
from keras_lm.scoring import evaluate_pairs

base = sys.argv[1] if len(sys.argv) > 1 else "saved_models/quickstart"
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 300
model = keras_lm.load(base)  # the base's tokenizer comes with it
tokenizer, context = model.tokenizer, model.sequence_length

if len(sys.argv) > 2:
    pairs = data.read_pairs(sys.argv[2], prompt_key="prompt", response_key="response")
else:
    pairs = data.docstring_pairs(max_bytes=context - 16)
train, val = data.split_pairs(pairs)  # a deterministic 10% by a hash of the row

# <bos> + template(prompt) + response + <eos>; weights 1 on the response only.
template = PromptTemplate("{prompt}\n")
train_examples = data.encode_pairs(train, tokenizer, template, context)
val_examples = data.encode_pairs(val, tokenizer, template, context)
width = data.padded_length(train_examples, context)
train_ds = data.pairs_dataset(train_examples, 16, width, tokenizer.pad_id, shuffle=True,
                              repeat=True, seed=0)
val_ds = data.pairs_dataset(val_examples, 16, data.padded_length(val_examples, context),
                            tokenizer.pad_id)
print("before:", evaluate_pairs(model, val_examples, pad_id=tokenizer.pad_id))

keras.utils.set_random_seed(0)
lora = enable_lora(model, rank=8)  # leave this line out to train every weight
print(f"LoRA: {lora['trainable_parameters']:,} trainable of {lora['parameters']:,} parameters")
model.compile(
    "adamw", learning_rate=2e-3, total_steps=steps,
    # The mean over the response tokens of each batch (the weights' sum).
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                   reduction="mean_with_sample_weight"),
    metrics=[TokenAccuracy()],
)
interval = min(100, steps)  # a validation every `interval` steps
model.fit(train_ds, steps_per_epoch=interval, epochs=steps // interval, validation_data=val_ds,
          shuffle=False)  # the dataset shuffles
print("after:", evaluate_pairs(model, val_examples, pad_id=tokenizer.pad_id))

prompt = template.apply(val[0].prompt)
room = max(1, min(80, context - 1 - len(tokenizer.encode(prompt))))  # <bos> + prompt + answer
print(prompt + model.generate(prompt, room, apply_template=False, truncate="left"))
model.save("finetuned_pairs.keras")  # Keras merges the LoRA updates into the kernels
