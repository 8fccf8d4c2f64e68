"""Prompt sets: the built-in harm-eliciting prompts and loaders for user files."""

from harmeval_client.prompts.loaders import (
    BUILTIN_SPEC,
    DEFAULT_CATEGORY,
    HARM_CATEGORIES,
    PromptFileError,
    PromptRecord,
    load_builtin_prompts,
    load_csv_prompts,
    load_jsonl_prompts,
    load_prompt_file,
    load_prompt_set,
)

__all__ = [
    "BUILTIN_SPEC",
    "DEFAULT_CATEGORY",
    "HARM_CATEGORIES",
    "PromptFileError",
    "PromptRecord",
    "load_builtin_prompts",
    "load_csv_prompts",
    "load_jsonl_prompts",
    "load_prompt_file",
    "load_prompt_set",
]
