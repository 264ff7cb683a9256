"""The units of a probe set: an item (a question or text with its ground truth) and its probes
(the item under each framing: the exact messages sent)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# A chat message as every provider receives it: role is "user", "assistant" or "system".
# A trailing assistant message is a prefill that the model continues.
Message = dict[str, str]


@dataclass(frozen=True)
class Item:
    item_id: str  # unique across sets: "<set id>#<key within the set>"
    set_id: str
    task: str
    text: str  # the question or text, as a person reads it
    truth: dict[str, Any]  # ground truth: correct/incorrect answers, aliases, letter, ...
    source: dict[str, Any] = field(default_factory=dict)  # the row's original fields


@dataclass(frozen=True)
class Probe:
    item_id: str
    framing_id: str
    messages: tuple[Message, ...]

    @property
    def probe_id(self) -> str:
        return f"{self.item_id}|{self.framing_id}"

    @property
    def prefill(self) -> str | None:
        last = self.messages[-1]
        return last["content"] if last["role"] == "assistant" else None


def item_id(set_id: str, key: str | int) -> str:
    return f"{set_id}#{key}"


def messages_json(messages: tuple[Message, ...] | list[Message]) -> str:
    """The canonical text of a conversation: the same messages always give the same string."""
    return json.dumps(list(messages), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def user(content: str) -> Message:
    return {"role": "user", "content": content}


def assistant(content: str) -> Message:
    return {"role": "assistant", "content": content}
