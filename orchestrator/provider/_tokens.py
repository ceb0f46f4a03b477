"""Token estimates without a tokenizer download.

tiktoken fetches its encodings at run time, which a machine without internet cannot do, so
we use the common rule of thumb of about four characters per token for English text
(https://help.openai.com/en/articles/4936856). The simulated provider reports `usage` with
the same estimator, so its numbers are consistent with the text it returns.
"""

from __future__ import annotations

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4  # tokens each chat message adds around its content
REPLY_PRIMING = 3  # tokens that prime the assistant's reply


def estimate_tokens(text: str) -> int:
    """Return the estimated token count of ``text`` (at least 1 for non-empty text)."""
    if not text:
        return 0
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def estimate_message_tokens(messages: list[dict[str, str]]) -> int:
    """Estimate the prompt tokens of chat messages, with OpenAI's ~4 tokens per message overhead."""
    return (
        sum(estimate_tokens(m.get("content") or "") + MESSAGE_OVERHEAD for m in messages)
        + REPLY_PRIMING
    )
