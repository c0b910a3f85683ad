"""Ask a chat model which suggested pairs the author would link (`lenslink label`), as
extra training data for `lenslink train`.

The pairs worth a judgement are a lens's top unlinked suggestions: where the ranking is
most sure of itself, and a wrong "yes" costs the most. A seeded sample of the lens's
source notes gives each up to PAIRS_PER_NOTE of them; a pair already judged by the same
model, with both notes as they are now, is never asked again. The model sees both titles
and the start of both texts and answers yes or no; anything else is skipped and counted.
Each answer is stored at once (an interrupted run keeps what it got), with the hashes of
both notes' texts: after an edit, the label is no longer used (`current_labels`).

The endpoint is the `[label]` table of `.lenslink.toml`, reached through the rewriter's
chat client; without that table nothing is sent anywhere.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, LabelError, LabelRejected
from .lenses import CONFIG_NAME, VaultConfig
from .rewrite import ChatModel
from .store import NoteRow, Store

SYSTEM = ("You help a person keep their notes linked. You are shown two of their notes. "
          "Answer with one word: yes or no.")
QUESTION = "Would the author of note A link to note B? Answer yes or no."
CLIP_CHARS = 1200      # of each note's text in the question
PAIRS_PER_NOTE = 3     # top unlinked suggestions judged per source note
ANSWER_CHARS = 200     # of the model's reply kept with the label
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)  # reasoning models' preamble
_WORD = re.compile(r"[a-z]+")


class Judge(ChatModel):
    """The `[label]` chat model: `judge(question)` -> (True / False / None, reply)."""
    purpose = "label"
    used_for = "used to label note pairs"
    answer = "answer"
    error = LabelError
    rejected = LabelRejected

    @classmethod
    def for_vault(cls, config: VaultConfig, root: Path) -> "Judge":
        """The vault's labelling model; a ConfigError (before anything is sent) without one."""
        if config.label is None:
            raise ConfigError(f"labelling needs a chat model: add to {Path(root) / CONFIG_NAME} "
                              f'a [label] table with model = "..." and base_url = '
                              f'"http://localhost:11434/v1" (any OpenAI-compatible endpoint); '
                              "nothing was sent")
        return cls.from_settings(config.label)

    def judge(self, question: str) -> tuple[bool | None, str]:
        reply = self.reply(SYSTEM, question)
        return parse_answer(reply), reply


def parse_answer(reply: str) -> bool | None:
    """True for yes, False for no, None when the reply says neither (or both): the first
    word if it is yes or no ("No, because..."), else the only one of the two it contains
    ("Answer: yes"); a reasoning model's <think> block is ignored."""
    words = _WORD.findall(_THINK.sub(" ", reply).lower())
    if words and words[0] in ("yes", "no"):
        return words[0] == "yes"
    found = {w for w in words if w in ("yes", "no")}
    return found.pop() == "yes" if len(found) == 1 else None


def question(a: NoteRow, a_text: str, b: NoteRow, b_text: str) -> str:
    """What the model is asked about the pair (a, b), texts as `store.lex_texts` has them."""
    return f"{_shown('A', a, a_text)}\n\n{_shown('B', b, b_text)}\n\n{QUESTION}"


def _shown(name: str, note: NoteRow, lex_text: str) -> str:
    names = "\n".join([note.title, *note.aliases, " ".join(note.tags)])
    text = lex_text[len(names) + 1:] if lex_text.startswith(names + "\n") else lex_text
    text = " ".join(text.split())
    if len(text) > CLIP_CHARS:
        text = text[:CLIP_CHARS].rsplit(" ", 1)[0] + " \u2026"
    tags = f"\nTags: {' '.join('#' + t for t in note.tags)}" if note.tags else ""
    return f"Note {name}: {note.title}{tags}\n{text}"


@dataclass
class LabelReport:
    """What a `label` run did."""
    lens: str
    model: str
    wanted: int
    pairs: int = 0        # candidate pairs found to ask about
    labelled: int = 0
    yes: int = 0
    no: int = 0
    skipped: int = 0      # no clear yes or no, or the request was rejected
    interrupted: bool = False
    error: str | None = None  # the endpoint failed; the labels before it are kept


def pick_pairs(store: Store, ranking, lens: str, model: str, count: int,
               seed: int = 0) -> list[tuple[str, str, str, str]]:
    """Up to `count` (source, candidate, source hash, candidate hash): for the lens's
    source notes in a seeded order, their top PAIRS_PER_NOTE unlinked suggestions in
    the current ranking that `model` has not judged with both notes as they are now."""
    sources = ranking.lens_notes(lens)
    random.Random(seed).shuffle(sources)
    out: list[tuple[str, str, str, str]] = []
    for start in range(0, len(sources), 64):
        batch = sources[start:start + 64]
        top = {s: [r.path for r in ranking.related(
                   s, lens, PAIRS_PER_NOTE + len(ranking.links.get(s, ())), min_score=0.0)
                   if not r.linked][:PAIRS_PER_NOTE] for s in batch}
        hashes = store.text_hashes({*batch, *(d for ds in top.values() for d in ds)})
        judged = {(s, d) for s, d, m, sh, dh, _ in store.labels(lens, batch)
                  if m == model and (sh, dh) == (hashes.get(s), hashes.get(d))}
        for s in batch:
            for d in top[s]:
                if (s, d) not in judged and s in hashes and d in hashes:
                    out.append((s, d, hashes[s], hashes[d]))
                    if len(out) == count:
                        return out
    return out


def label_pairs(store: Store, ranking, lens: str, judge: Judge, count: int, seed: int = 0,
                progress=None) -> LabelReport:
    """Ask `judge` about up to `count` pairs (`pick_pairs`) and store each answer as it
    comes. An endpoint failure or Ctrl-C ends the run; what was stored stays."""
    report = LabelReport(lens=lens, model=judge.model, wanted=count)
    pairs = pick_pairs(store, ranking, lens, judge.model, count, seed)
    report.pairs = len(pairs)
    texts = store.lex_texts({p for s, d, _, _ in pairs for p in (s, d)})
    notes = {p: ranking.notes[ranking.row[p]] for p in texts}
    try:
        for n, (src, dst, src_hash, dst_hash) in enumerate(pairs):
            if progress:
                progress("label", n, len(pairs))
            try:
                verdict, reply = judge.judge(question(notes[src], texts[src][0],
                                                      notes[dst], texts[dst][0]))
            except LabelRejected:
                verdict = None
            if verdict is None:
                report.skipped += 1
                continue
            store.put_label(lens, src, dst, judge.model, src_hash, dst_hash, verdict,
                            reply[:ANSWER_CHARS])
            report.labelled += 1
            report.yes, report.no = report.yes + verdict, report.no + (not verdict)
        if progress and pairs:
            progress("label", len(pairs), len(pairs))
    except LabelError as exc:
        report.error = str(exc)
    except KeyboardInterrupt:
        report.interrupted = True
    return report


def current_labels(store: Store, lens: str) -> list[tuple[str, str, bool]]:
    """(source, candidate, would link) of the lens's labels whose two notes are as they
    were when judged (what `train` learns from)."""
    rows = store.labels(lens)
    if not rows:
        return []
    hashes = store.text_hashes({p for r in rows for p in r[:2]})
    return [(s, d, label) for s, d, _, sh, dh, label in rows
            if hashes.get(s) == sh and hashes.get(d) == dh]
