"""Answer text for the simulated provider: deterministic, stage-shaped prose.

The simulated provider must return something that reads like a real answer to each agent's
prompt, without a model. We detect which stage is asking (research, write, edit, or anything
else) from the system prompt, pull the topic, audience and the previous stage's output out of
the rendered user prompt, and assemble Markdown from sentence templates and word banks.

Determinism: every choice goes through one ``random.Random(seed)``, so equal arguments give
byte-identical text. Length: sections are filled sentence by sentence towards cumulative
character goals derived from ``target_tokens`` (with the shared chars-per-token rule), so the
error does not pile up across sections. Text over ``max_tokens`` is cut at a word boundary,
and writing stops as soon as a cut is certain, so huge targets cost nothing extra.

Templates never make the topic the subject of a verb, since we cannot know whether it is
singular or plural. Topic, audience and quoted material are only ever *values* substituted into
templates, never part of a format string, so braces in them are inert.
"""

from __future__ import annotations

import random
import re
from contextlib import suppress

from .._tokens import CHARS_PER_TOKEN, estimate_tokens
from ._phrases import PHRASES as _T

_TOPIC_RE = re.compile(r"^[ \t]*Topic:[ \t]*(\S[^\n]*?)[ \t]*$", re.M)
_AUDIENCE_RE = re.compile(r"^[ \t]*Audience:[ \t]*(\S[^\n]*?)[ \t]*$", re.M)
# Where a quoted block opens; ``_block`` finds where it closes.
_RESEARCH_RE = re.compile(r"Research brief[^\n]*?:[ \t]*\n?[ \t]*<<<")
_DRAFT_RE = re.compile(r"Draft:[ \t]*\n?[ \t]*<<<")
_BULLET_RE = re.compile(r"^[ \t]*[-*+][ \t]+(.+?)[ \t]*$", re.M)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_MARKUP_RE = re.compile(r"\*\*|__|`")
_UNVERIFIED_RE = re.compile(r"\s*\(unverified\)", re.I)

# The earliest of these in the system prompt names the role ("You are a senior editor ..."); a
# fixed precedence would misfire, because the research prompt mentions "a writer" later on.
_KIND_WORDS = (("editor", "edit"), ("writer", "write"), ("research", "research"))
_ALIASES = ("the subject", "this topic", "the topic", "this subject")
_VAGUE_HEADINGS = frozenset({"introduction", "background", "overview", "summary", "discussion"})
_SMALL_WORDS = frozenset("a an and as at but by for in of on or the to vs via with".split())
_HEDGE = " That claim is not independently verified, so it deserves caution."
_ROOMY = 600 * CHARS_PER_TOKEN  # below this length, drafts drop optional structure


class _Full(Exception):
    """Raised once the output is sure to be cut at max_tokens: the rest would be wasted."""


class _Slots(dict[str, str]):
    """Template fields filled on demand, so a sentence draws only the words it uses."""

    def __init__(self, rng: random.Random, fixed: dict[str, str]) -> None:
        super().__init__(fixed)
        self.rng = rng
        self.taken: set[str] = set()

    def __missing__(self, key: str) -> str:
        bank = _T[key.rstrip("2").lower()]
        value = self.rng.choice(bank)
        while value in self.taken:  # avoid "critics and critics" within one sentence
            value = self.rng.choice(bank)
        self.taken.add(value)
        self[key] = value[0].upper() + value[1:] if key[0].isupper() else value
        return self[key]


class _Writer:
    """Accumulates output and tracks its length, so sections can aim at character goals."""

    def __init__(self, rng: random.Random, topic: str, audience: str, stop: int) -> None:
        self.rng, self.topic, self.audience, self.stop = rng, topic, audience, stop
        self.parts: list[str] = []
        self.size = 0
        self.fresh = True  # the next topic mention is the first in its section
        self.long = len(topic) > 40  # a long topic reads badly when repeated
        self.decks: dict[str, list[str]] = {}
        self.last = ""

    def emit(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > self.stop:
            raise _Full

    def heading(self, text: str) -> None:
        self.emit(text + "\n\n")
        self.fresh = True

    def say(self, name: str) -> str:
        # Deal templates like cards, so none repeats until the whole set has been used.
        deck = self.decks.get(name)
        if not deck:
            deck = self.decks[name] = list(_T[name])
            self.rng.shuffle(deck)
            if deck[-1] == self.last:  # nor straight after a reshuffle
                deck[0], deck[-1] = deck[-1], deck[0]
        template = self.last = deck.pop()
        fixed = {"a": self.audience, "f": "{f}"}  # {f}, quoted research, is the caller's job
        if "{t}" in template:
            full = self.fresh or (not self.long and self.rng.random() < 0.3)
            fixed["t"] = self.topic if full else self.rng.choice(_ALIASES)
            self.fresh = False
        return template.format_map(_Slots(self.rng, fixed))

    def prose(self, name: str, goal: int, lo: int, hi: int, inserts: list[str], at: int) -> None:
        """Paragraphs of lo..hi sentences up to ``goal`` chars; ``inserts`` go in from ``at``."""
        para: list[str] = []
        plen, wrote, limit = 0, False, self.rng.randint(lo, hi)
        while True:
            if inserts and len(para) >= at:
                sentence = inserts.pop(0)
                self.fresh = self.fresh and self.topic not in sentence
            else:
                sentence = self.say(name)
                # Stop where the next sentence would overshoot more than it undershoots, and
                # do not open a paragraph that would hold a single sentence.
                need = len(sentence) // 2 if para else len(sentence) * 3 // 2
                if (wrote or para) and not inserts and self.size + plen + need > goal:
                    break
            para.append(sentence)
            plen += len(sentence) + 1
            if len(para) >= limit:
                self.emit(" ".join(para) + "\n\n")
                para, plen, wrote, limit = [], 0, True, self.rng.randint(lo, hi)
        if para:
            self.emit(" ".join(para) + "\n\n")

    def bullets(self, name: str, goal: int, lo: int, hi: int, tag: float = 0.0) -> None:
        for count in range(hi):
            line = self.say(name)
            if count >= lo and self.size + len(line) // 2 > goal:
                break
            if tag and "(unverified)" not in line and self.rng.random() < tag:
                line += " (unverified)"
            self.emit("- " + line + "\n")
        self.emit("\n")


def _role_word(text: str) -> str | None:
    lowered = text.lower()
    hits = [(pos, kind) for word, kind in _KIND_WORDS if (pos := lowered.find(word)) >= 0]
    return min(hits)[1] if hits else None


def _kind(system: str, user: str) -> str:
    kind = _role_word(system)
    # No telling system prompt: the quoted blocks tell.
    if kind is None and _block(_DRAFT_RE, user) is not None:
        kind = "edit"
    elif kind is None and _block(_RESEARCH_RE, user) is not None:
        kind = "write"
    return kind or _role_word(user) or "generic"


def _block(opening: re.Pattern[str], text: str) -> str | None:
    """The text between the first ``opening`` (which ends in ``<<<``) and the next ``>>>``.

    The same as searching for ``opening + "(.*?)>>>"`` with ``re.S``, in a tenth of the time:
    ``re`` takes a lazy ``.*?`` one character at a time, a whole prompt long.
    """
    found = opening.search(text)
    if found is None:
        return None
    end = text.find(">>>", found.end())
    return text[found.end() : end] if end >= 0 else None


def _phrase(user: str) -> str:
    line = next((ln.strip() for ln in user.splitlines() if ln.strip()), "")
    if len(line) > 80:
        line = line[:80].rsplit(" ", 1)[0] if " " in line[:80] else line[:80]
    return line.rstrip("?.!:;, ") or line


def _title_case(topic: str) -> str:
    words = topic.split(" ")
    for i, word in enumerate(words):  # only all-lower-case words: keep "iPhone", "NASA"
        if word.islower() and (i == 0 or word not in _SMALL_WORDS):
            words[i] = word[0].upper() + word[1:]
    return " ".join(words)


def _facts(block: str) -> list[tuple[str, bool]]:
    """Key-fact bullets of a research brief as (sentence, marked unverified) pairs."""
    start = block.find("Key facts")
    if start >= 0:  # prefer the facts: other bullets are opinions, cases and questions
        end = block.find("\n#", start)
        block = block[start : end if end > 0 else len(block)]
    facts = []
    for raw in _BULLET_RE.findall(block):
        text = _MARKUP_RE.sub("", raw).strip()
        plain = _UNVERIFIED_RE.sub("", text).strip()
        if len(plain) >= 12 and not plain.endswith("?"):
            facts.append((plain + ("" if plain[-1] in ".!" else "."), plain != text))
    return facts


def _parse_draft(block: str) -> tuple[str, str, list[tuple[str, str]]]:
    """Return the draft's title, opening sentence and (heading, first sentence) pairs."""
    title, opening = "", ""
    sections: list[tuple[str, str]] = []
    for line in block.splitlines():
        line = line.strip()
        if line.startswith("## "):
            sections.append((line[3:].strip(), ""))
        elif line.startswith("# ") and not title:
            title = line[2:].strip()
        elif line and not line.startswith(("#", "-", "*", ">", "|")):
            first = _SENTENCE_END_RE.split(line, 1)[0]
            if sections and not sections[-1][1]:
                sections[-1] = (sections[-1][0], first)
            elif not sections and not opening:
                opening = first
    return title, opening, sections


def _research(w: _Writer, goal: int) -> None:
    w.heading(f"# Research brief: {w.topic}")
    scope = f" {w.say('scopes')}" if goal >= _ROOMY else ""
    w.emit(f"_Prepared for {w.audience}._{scope}\n\n")
    w.heading("## Key facts")
    w.bullets("facts", goal * 45 // 100, 3, 12, tag=0.25)
    w.heading("## Perspectives")
    w.bullets("perspectives", goal * 65 // 100, 1, 7)
    # Long briefs grow here: the bullet lists above run out of distinct templates.
    w.prose("body", goal * 65 // 100, 2, 4, [w.say("audience_notes")], at=0)
    w.heading("## Examples")
    for count, name in enumerate(w.rng.sample(_T["example_names"], 8)):
        line = f"- **{name}.** {w.say('example_openings')}"
        if count >= 1 and w.size + len(line) > goal * 85 // 100:
            break
        w.emit(f"{line} {w.say('example_lessons')}\n")
    w.heading("\n## Open questions")
    w.bullets("questions", goal, 2, 8)


def _article(w: _Writer, goal: int, edit: bool, user: str) -> None:
    draft = _block(_DRAFT_RE, user) if edit else None
    title, opening, sections = _parse_draft(draft) if draft is not None else ("", "", [])
    if not sections:  # no usable draft: plan our own structure, in a sensible reading order
        picks = sorted(
            w.rng.sample(range(len(_T["headings"])), w.rng.randint(3, 4 if goal >= _ROOMY else 3))
        )
        sections = [(_T["headings"][i], "") for i in picks]
        sections.append((w.rng.choice(_T["closing_headings"]), ""))
    title = title or w.rng.choice(_T["titles"]).replace("{T}", _title_case(w.topic))
    research = None if edit else _block(_RESEARCH_RE, user)
    facts = _facts(research) if research is not None else []
    facts = w.rng.sample(facts, min(len(facts), len(sections) - 1))
    prefix, lo, hi = ("edit_", 2, 3) if edit else ("", 3, 5)  # the editor's paragraphs are tighter
    # Shares of the length: the opening and each section count 1, the conclusion 0.6.
    total = len(sections) + 0.6
    w.heading(f"# {title}")
    # The editor keeps the draft's opening line; the writer addresses its reader early on.
    lead = ([opening] if opening else []) if edit else [w.say("reader_lines")]
    w.prose(prefix + "hooks", int(goal / total), 2, 3, lead, at=0 if edit else 1)
    for index, (heading, first) in enumerate(sections, 1):
        if edit and heading.lower() in _VAGUE_HEADINGS and not w.long:
            heading = f"{heading}: {w.topic}"
        w.heading(f"## {heading}")
        last = index == len(sections)
        inserts = [first] if first else []
        if facts and not last:
            fact, unverified = facts.pop()
            # str.replace, not format: the research text is data and may contain braces.
            inserts.append(w.say("weaves").replace("{f}", fact + (_HEDGE if unverified else "")))
        part = "conclusions" if last else "body"
        section_goal = goal if last else int(goal * (index + 1) / total)
        w.prose(prefix + part, section_goal, lo, hi, inserts, at=0 if first or goal < _ROOMY else 1)


def _generic(w: _Writer, goal: int) -> None:
    w.prose("generic_body", goal // 2, 2, 4, [w.say("generic_openings")], at=0)
    w.emit("A few practical points:\n\n")
    w.bullets("generic_points", goal * 4 // 5, 2, 5)
    w.emit(w.say("generic_closings") + "\n")


def generate(
    messages: list[dict[str, str]], *, seed: int, max_tokens: int, target_tokens: int
) -> tuple[str, str]:
    """Return (text, finish_reason). finish_reason is "stop", or "length" when the text was cut
    at max_tokens."""
    rng = random.Random(seed)
    system = "\n".join(m.get("content") or "" for m in messages if m.get("role") == "system")
    user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    kind = _kind(system, user)
    found = _TOPIC_RE.search(user)
    topic = found.group(1) if found else _phrase(user)
    if kind == "generic":
        topic = f"“{topic}”" if topic else "your question"
    found = _AUDIENCE_RE.search(user)
    audience = found.group(1) if found else "general readers"
    max_tokens = max(1, max_tokens)
    limit = max_tokens * CHARS_PER_TOKEN
    # Writing stops early once the text is sure to be cut (past the limit even without its
    # trailing blank line), so a cut text is a prefix of the uncut one at no extra cost.
    writer = _Writer(rng, topic or "the subject", audience, stop=limit + 2)
    goal = CHARS_PER_TOKEN * max(1, target_tokens)
    with suppress(_Full):
        if kind == "research":
            _research(writer, goal)
        elif kind == "generic":
            _generic(writer, goal)
        else:
            _article(writer, goal, kind == "edit", user)
    text = "".join(writer.parts).strip()
    if estimate_tokens(text) <= max_tokens:
        return text, "stop"
    cut = text[:limit]
    if not text[limit].isspace():  # cut at a word boundary when there is one
        space = max(cut.rfind(" "), cut.rfind("\n"))
        cut = cut[:space] if space > 0 else cut
    return cut.rstrip(" \n-#") or text[:limit], "length"  # no dangling "-" or "##"
