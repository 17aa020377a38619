"""Every prompt string of the paper, one named constant each, byte-exact (PAPER.md; docs/templates.md).

Whitespace choices, stated once for all templates:
- The paper writes each prompt on several lines; lines are joined with a single "\\n", no indentation,
  no trailing spaces, no trailing newline.
- Language placeholders take English names ("Kazakh"), from `languages.py`.
- A training example is `input + OUTPUT_SEPARATOR + output + EOS`; the separator and the output are the
  part the loss is computed on. At inference the prompt is the input alone, and the generated text is
  stripped of the separator and cut at the first newline (see generation.py).
Placeholders: {src_name} {tgt_name} (English names), {src} {tgt} (sentences), {src_span} {tgt_span},
{hints} (pre-rendered HINT_LINE lines), {wrong} {right}, {prefix}.
"""

from __future__ import annotations

OUTPUT_SEPARATOR = " "

# MTInstruct: also the default inference prompt.
MT_INPUT = "Translate from {src_name} to {tgt_name}.\n{src_name}: {src}\n{tgt_name}:"

# AlignInstruct: the output is ALIGN_TRUE or ALIGN_FALSE.
ALIGN_INPUT = (
    "Given the following parallel sentence between {src_name} and {tgt_name}, judge whether the "
    "assertion is True or False.\n"
    "{src_name}: {src}\n"
    "{tgt_name}: {tgt}\n"
    'Assertion: "{src_span}" can be aligned with "{tgt_span}" statistically.'
)
ALIGN_TRUE = "True"
ALIGN_FALSE = "False"

# HintInstruct: {hints} is HINT_LINE rendered once per pair (at most MAX_HINTS), joined by "\n".
# The paper lists the target-language span first: "Alignments between {X} and {Y}: – (x, y),".
HINT_INPUT = (
    "Use the following alignment hints and translate from {src_name} to {tgt_name}.\n"
    "Alignments between {tgt_name} and {src_name}:\n"
    "{hints}\n"
    "{src_name}: {src}\n"
    "{tgt_name}:"
)
HINT_LINE = "\u2013 ({tgt_span}, {src_span}),"  # an en dash, as in the paper
MAX_HINTS = 5  # the paper's S

# ReviseInstruct: {tgt} is the target with one word group replaced.
REVISE_INPUT = (
    "Given the following translation of {tgt_name} from {src_name}, output the incorrectly translated "
    "word and correct it.\n"
    "{src_name}: {src}\n"
    "{tgt_name}: {tgt}"
)
REVISE_OUTPUT = 'The incorrectly translated word is "{wrong}". It should be "{right}".'

# MonoInstruct: mono-half gives the first half of the words as {prefix}; mono-full gives no context.
MONO_HALF_INPUT = "Given the context, complete the following sentence: {prefix}"
MONO_FULL_INPUT = "Given the context, complete the following sentence:"

# Inference prompts of the robustness check (paper, Table 8). "default" is MT_INPUT.
PROMPTS = {
    "default": MT_INPUT,
    "1": "{src_name}: {src}\n{tgt_name}:",
    "2": "{src}\n{tgt_name}:",
    "3": "Translate to {tgt_name}.\n{src_name}: {src}\n{tgt_name}:",
    "4": "Translate from {src_name} to {tgt_name}.\n{src}\n{tgt_name}:",
    "5": "Translate to {tgt_name}.\n{src}\n{tgt_name}:",
}
# A custom inference template may use exactly these placeholders.
PROMPT_PLACEHOLDERS = ("src_name", "tgt_name", "src")
