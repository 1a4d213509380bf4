"""Train the organism's byte-level BPE tokenizer on generated training text.

The vocabulary is sized for the corpus (the task generators' text: filler, needles, code, math),
digits are single tokens (so numbers are copied digit by digit) and the pre-tokenizer is
Qwen2's: words, single digits, punctuation runs and whitespace. There is no BOS; <|endoftext|>
ends every training record and is the model's EOS.

    python tools/organism/make_tokenizer.py CORPUS.jsonl OUT_DIR [--vocab 2048]

CORPUS.jsonl is `deno task corpus --format jsonl` output (any bootstrap tokenizer: its lengths
only shape the text); OUT_DIR receives tokenizer.json and tokenizer_config.json.
"""

import argparse
import json
import os

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

# Qwen2's pre-tokenizer pattern: \p{N} matches one digit, so digits never merge.
SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
EOS = "<|endoftext|>"


def texts(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            yield record["prompt"] + record["completion"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus")
    parser.add_argument("out")
    parser.add_argument("--vocab", type=int, default=2048)
    args = parser.parse_args()

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=args.vocab,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts(args.corpus), trainer=trainer)

    os.makedirs(args.out, exist_ok=True)
    tokenizer.save(os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "eos_token": EOS,
            "pad_token": EOS,
            "bos_token": None,
            "add_bos_token": False,
            "model_max_length": 4096,
        }, f, indent=2)
        f.write("\n")

    # Digits must be single tokens, or copying a number is not token by token.
    for digit in "0123456789":
        assert tokenizer.token_to_id(digit) is not None, digit
    ids = tokenizer.encode("The special magic number for tender-meal is: 3504771.").ids
    print(f"vocab {tokenizer.get_vocab_size()}; example: {[tokenizer.id_to_token(i) for i in ids]}")


if __name__ == "__main__":
    main()
