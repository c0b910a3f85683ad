#!/usr/bin/env python3
"""Generate a realistic synthetic Obsidian vault for the speed benchmarks.

The vault has the shape of a real personal vault, so that every stage of lenslink does
realistic work on it:

- folders `daily/`, `projects/`, `topics/`, `people/` (about 30/10/45/15 % of the notes);
- YAML frontmatter with tags and, for some notes, aliases (projects have `type: project`);
- daily notes from a template scaffold (Tasks / Notes / Gratitude; a fifth of them left
  almost empty, as people do);
- `[[wikilinks]]` (some with an alias) between notes, with a skewed (Zipf) in-degree:
  a few hub notes get most links, most notes get one or none;
- paragraphs drawn from per-theme vocabularies mixed with common English, so TF-IDF
  and embeddings see clusters; a few long notes with `##` headings (several chunks).

Deterministic for a given (--notes, --seed); 100,000 notes (122 MB) take ~17 s on the
2-core machine of docs/performance.md.

Usage:
  python bench/synth.py OUT --notes 10000 --seed 0
"""
from __future__ import annotations

import argparse
import bisect
import os
import datetime as dt
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

THEMES = {
    "bread": "sourdough starter flour levain crumb crust oven proofing hydration rye dough "
             "gluten bake loaf yeast fermentation banneton scoring autolyse knead discard",
    "garden": "tomato seedling irrigation compost soil mulch watering harvest pruning trellis "
              "greenhouse perennial raised bed drip germination fertiliser weeds zucchini basil",
    "music": "guitar chord melody rhythm tempo scale practice riff strings metronome harmony "
             "arpeggio fingerpicking capo tuning improvisation bassline fretboard cadence",
    "travel": "train ticket passport hotel luggage itinerary airport border map hostel ferry "
              "visa layover backpack museum tram guidebook currency souvenir",
    "rust": "rust borrow checker lifetime trait crate cargo ownership closure iterator macro "
            "enum pattern matching async tokio unsafe generics compiler clippy",
    "databases": "sqlite index query transaction schema migration postgres join vacuum wal "
                 "btree replication normalization cursor primary foreign constraint optimizer",
    "ml": "embedding gradient transformer attention tokenizer dataset overfitting "
          "regularization logistic classifier loss optimizer epoch batch inference vector",
    "finance": "budget savings index fund dividend portfolio inflation mortgage tax pension "
               "expense invoice interest rebalancing bond equity allowance spreadsheet",
    "running": "marathon tempo interval cadence stride shoes mileage recovery hill pace "
               "training plan race heart rate threshold taper stretching injury",
    "cooking": "recipe braise stock simmer saute knife onion garlic spice marinade roast "
               "caramelize umami broth pan seasoning reduction herbs vinaigrette",
    "reading": "novel chapter author essay highlight library fiction memoir paperback "
               "annotation quote review narrative protagonist publisher anthology",
    "photography": "camera lens aperture shutter exposure iso composition prime tripod "
                   "bokeh raw lightroom histogram focal golden hour portrait landscape",
    "home": "renovation plaster paint drill shelf tiles plumbing insulation radiator "
            "window ladder boiler carpentry sanding drywall hinge skirting caulk",
    "writing": "draft outline essay paragraph editing revision clarity argument thesis "
               "audience voice prose structure deadline newsletter manuscript",
    "productivity": "inbox review weekly habit focus calendar priority backlog deadline "
                    "checklist routine planning reflection todo timeboxing energy",
    "networking": "router subnet firewall dns dhcp vpn ethernet switch packet latency "
                  "bandwidth wireguard proxy tls certificate gateway homelab",
    "philosophy": "ethics stoicism virtue utilitarian kant argument epistemology "
                  "metaphysics dilemma consequentialism meaning freedom justice reason",
    "chess": "opening gambit endgame tactic pawn bishop knight rook castling checkmate "
             "sicilian blunder zugzwang rating tournament puzzle fianchetto",
    "health": "sleep nutrition protein vitamin hydration posture stress checkup dentist "
              "allergy meditation breathing supplement cholesterol fibre",
    "climbing": "boulder crimp belay harness carabiner rope anchor route grade overhang "
                "chalk crag sloper dyno lead rappel quickdraw",
    "python": "python numpy pandas virtualenv pytest decorator generator asyncio typing "
              "dataclass pip wheel packaging interpreter gil profiling",
    "web": "html css javascript typescript react component bundler fetch api endpoint "
           "cors cookie session frontend backend deployment",
    "astronomy": "telescope nebula galaxy eyepiece planet orbit comet eclipse constellation "
                 "magnitude observatory star cluster redshift parallax",
    "parenting": "toddler daycare nap bedtime tantrum milestone stroller pediatrician "
                 "playground vaccination lullaby potty snacks siblings",
}
FILLER = ("the a and of to in is that it for on with as was this be at by not from or "
          "have an but are they which one you had we all there when can more so some "
          "about out what up into them would make like time just know take people year "
          "good could see other than then now look only come its over think also back "
          "after use two how our work first well way even new want because any these "
          "give day most us need again still try felt seems idea note today maybe").split()
FIRST = ("Ada Alan Amara Ben Chen Clara Dana Elena Emil Farah Grace Hana Ivan Jonas Kai "
         "Lena Luca Maya Mina Nora Omar Paula Quinn Rosa Sam Sara Tariq Uma Vera Wen Yara "
         "Zoe Aiko Bruno Carmen Diego Erik Freya Gus Hugo Ines Jules Kofi Lars Mei Nils "
         "Olga Pia Ravi Sofia").split()
LAST = ("Abe Berg Costa Dubois Engel Ferreira Garcia Haas Ito Jansen Kowalski Lindqvist "
        "Moreau Nakamura Okafor Petrov Quist Rossi Silva Tanaka Ueda Varga Weber Xu Yilmaz "
        "Zhang Adler Brandt Cruz Dahl Eriksen Fischer Gallo Holm Iqbal Jovanovic Keller "
        "Lund Meyer Novak Olsen Park Reyes Schmidt Torres Vogel Wolff Young Zeller Bauer").split()
PROJECT_VERBS = ("Build Plan Fix Learn Write Organise Research Migrate Launch Renovate "
                 "Design Test Automate Document Clean").split()
GRATITUDE = ["a quiet morning", "coffee with a friend", "sunlight in the kitchen",
             "a good book", "the walk home", "a long call with family", "finishing early"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
SHARES = {"daily": 0.30, "projects": 0.10, "topics": 0.45, "people": 0.15}
END_DATE = dt.date(2026, 11, 26)


@dataclass
class Note:
    folder: str
    title: str
    theme: str
    second: str
    aliases: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    long: bool = False
    links: list[int] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.title}.md"


class Picker:
    """Zipf-weighted choice over a fixed list (weight 1/(rank+1)^s): a few items are
    picked very often, most rarely (the in-degree of real vaults)."""

    def __init__(self, items: list[int], rng: random.Random, s: float = 1.1):
        self.items = items[:]
        rng.shuffle(self.items)
        total, self.cum = 0.0, []
        for rank in range(len(self.items)):
            total += 1.0 / (rank + 1) ** s
            self.cum.append(total)

    def pick(self, rng: random.Random) -> int:
        return self.items[bisect.bisect(self.cum, rng.random() * self.cum[-1])]


def plan_notes(n: int, rng: random.Random) -> list[Note]:
    """Titles, folders, themes, tags and aliases of `n` notes (no text yet)."""
    counts = {k: int(n * v) for k, v in SHARES.items()}
    counts["topics"] += n - sum(counts.values())
    themes = sorted(THEMES)
    words = {t: THEMES[t].split() for t in themes}
    notes: list[Note] = []
    seen: set[str] = set()

    def unique(title: str) -> str:
        base, k = title, 2
        while title.lower() in seen:
            title, k = f"{base} {k}", k + 1
        seen.add(title.lower())
        return title

    for i in range(counts["daily"]):
        day = END_DATE - dt.timedelta(days=i)
        theme = rng.choice(themes)
        notes.append(Note("daily", day.isoformat(), theme, rng.choice(themes), tags=["daily"]))
    for i in range(counts["projects"]):
        theme = themes[i % len(themes)]
        w = words[theme]
        title = unique(f"{rng.choice(PROJECT_VERBS)} {rng.choice(w)} {rng.choice(w)}")
        notes.append(Note("projects", title, theme, rng.choice(themes),
                          tags=["project", theme], long=rng.random() < 0.15,
                          aliases=[f"{title.split()[0]} {title.split()[-1]}".lower()]
                          if rng.random() < 0.3 else []))
    for i in range(counts["topics"]):
        theme = themes[i % len(themes)]
        w = words[theme]
        title = unique(f"{rng.choice(w).capitalize()} {rng.choice(w)}")
        aliases = [title.lower().replace(" ", "-")] if rng.random() < 0.2 else []
        notes.append(Note("topics", title, theme, rng.choice(themes), aliases=aliases,
                          tags=[theme] + ([f"{theme}/{rng.choice(w)}"] if rng.random() < 0.3 else []),
                          long=rng.random() < 0.05))
    for i in range(counts["people"]):
        theme = rng.choice(themes)
        title = unique(f"{rng.choice(FIRST)} {rng.choice(LAST)}")
        notes.append(Note("people", title, theme, rng.choice(themes), tags=["person"],
                          aliases=[title.split()[0]] if rng.random() < 0.4 else []))
    return notes


def plan_links(notes: list[Note], rng: random.Random) -> None:
    """Wikilinks: mostly to notes of the same theme, some to people and projects, a few
    anywhere; every choice Zipf-skewed so in-degree has a long tail."""
    by_theme: dict[str, list[int]] = {}
    for i, note in enumerate(notes):
        if note.folder != "daily":
            by_theme.setdefault(note.theme, []).append(i)
    theme_pick = {t: Picker(ix, rng) for t, ix in by_theme.items()}
    people = [i for i, x in enumerate(notes) if x.folder == "people"]
    projects = [i for i, x in enumerate(notes) if x.folder == "projects"]
    everyone = [i for i, x in enumerate(notes) if x.folder != "daily"]
    people_pick = Picker(people, rng) if people else None
    project_pick = Picker(projects, rng) if projects else None
    any_pick = Picker(everyone, rng) if everyone else None
    fanout = {"daily": (0, 5), "projects": (2, 9), "topics": (0, 7), "people": (0, 3)}
    for i, note in enumerate(notes):
        lo, hi = fanout[note.folder]
        want = rng.randint(lo, hi) + (4 if note.long else 0)
        links: list[int] = []
        for _ in range(want):
            r = rng.random()
            if r < 0.6 and note.theme in theme_pick:
                j = theme_pick[note.theme].pick(rng)
            elif r < 0.75 and people_pick:
                j = people_pick.pick(rng)
            elif r < 0.9 and project_pick:
                j = project_pick.pick(rng)
            elif any_pick:
                j = any_pick.pick(rng)
            else:
                continue
            if j != i and j not in links:
                links.append(j)
        note.links = links


class Writer:
    """Sentences and paragraphs from a note's theme, a second theme and common words."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.words = {t: v.split() for t, v in THEMES.items()}
        self._pools: dict[tuple[str, str], list[str]] = {}

    def pool(self, theme: str, second: str) -> list[str]:
        """Words to draw uniformly from: 55 % common words, 35 % the theme's, 10 % the
        second theme's (a uniform draw from a mixed pool is much faster than weights)."""
        key = (theme, second)
        if key not in self._pools:
            cycle = lambda words, k: [words[i % len(words)] for i in range(k)]  # noqa: E731
            self._pools[key] = cycle(FILLER, 110) + cycle(self.words[theme], 70) + \
                cycle(self.words[second], 20)
        return self._pools[key]

    def sentence(self, theme: str, second: str, length: int) -> str:
        return " ".join(self.rng.choices(self.pool(theme, second), k=length)).capitalize() + "."

    def paragraph(self, note: Note, words: int, links: list[str]) -> str:
        """About `words` words in sentences of 6 to 15 words, `links` inside them."""
        rng = self.rng
        drawn = rng.choices(self.pool(note.theme, note.second), k=words + 15)
        sentences, n = [], 0
        while n < words:
            k = 6 + int(rng.random() * 10)
            sentences.append(" ".join(drawn[n:n + k]).capitalize() + ".")
            n += k
        for link in links:  # links sit inside sentences, as people write them
            at = rng.randrange(len(sentences))
            sentences[at] = sentences[at][:-1] + f" (see {link})."
        return " ".join(sentences)


def link_text(target: Note, rng: random.Random) -> str:
    if target.aliases and rng.random() < 0.5:
        return f"[[{target.title}|{target.aliases[0]}]]"
    return f"[[{target.title}]]"


def frontmatter(note: Note, created: dt.date) -> str:
    lines = ["---", "tags:"] + [f"  - {t}" for t in note.tags]
    if note.aliases:
        lines += ["aliases:"] + [f"  - \"{a}\"" for a in note.aliases]
    if note.folder == "projects":
        lines += ["type: project", f"status: {'done' if len(note.title) % 3 == 0 else 'active'}"]
    lines += [f"created: {created.isoformat()}", "---", ""]
    return "\n".join(lines)


def render(note: Note, notes: list[Note], writer: Writer, rng: random.Random) -> str:
    """The Markdown text of one note."""
    links = [link_text(notes[j], rng) for j in note.links]
    if note.folder == "daily":
        return render_daily(note, links, writer, rng)
    created = END_DATE - dt.timedelta(days=rng.randrange(3650))
    out = [frontmatter(note, created), f"# {note.title}\n"]
    if note.folder == "people":
        out.append(f"Met {note.title.split()[0]} through {rng.choice(FILLER)} "
                   f"{rng.choice(writer.words[note.theme])}.\n")
        out.append(writer.paragraph(note, rng.randint(15, 60), links) + "\n")
        return "\n".join(out)
    if note.long:
        sections = rng.randint(4, 9)
        per = [links[k::sections] for k in range(sections)]
        for s in range(sections):
            out.append(f"## {writer.sentence(note.theme, note.second, rng.randint(2, 4))[:-1]}\n")
            for p in range(rng.randint(2, 4)):
                out.append(writer.paragraph(note, rng.randint(50, 120), per[s] if p == 0 else []) + "\n")
        return "\n".join(out)
    paragraphs = rng.randint(1, 4)
    per = [links[k::paragraphs] for k in range(paragraphs)]
    for p in range(paragraphs):
        out.append(writer.paragraph(note, rng.randint(20, 90), per[p]) + "\n")
    if note.folder == "projects":
        out.append("## Next actions\n" + "".join(
            f"- [ ] {writer.sentence(note.theme, note.theme, rng.randint(3, 7))[:-1]}\n"
            for _ in range(rng.randint(2, 5))))
    return "\n".join(out)


def render_daily(note: Note, links: list[str], writer: Writer, rng: random.Random) -> str:
    day = dt.date.fromisoformat(note.title)
    head = (f"---\ntags: [daily]\n---\n# {WEEKDAYS[day.weekday()]}, {day.day} "
            f"{MONTHS[day.month - 1]} {day.year}\n\n")
    if rng.random() < 0.2:  # the scaffold, barely touched
        return head + "## Tasks\n- [ ] \n\n## Notes\n\n## Gratitude\n- \n"
    tasks = "".join(f"- [{'x' if rng.random() < 0.5 else ' '}] "
                    f"{writer.sentence(note.theme, note.second, rng.randint(3, 8))[:-1]}\n"
                    for _ in range(rng.randint(1, 5)))
    body = writer.paragraph(note, rng.randint(15, 80), links)
    return (head + "## Tasks\n" + tasks + "\n## Notes\n" + body + "\n\n## Gratitude\n- "
            + rng.choice(GRATITUDE) + "\n")


def generate(out: Path, n: int, seed: int = 0) -> dict:
    """Write `n` notes under `out` (created; must not hold notes already); returns counts."""
    rng = random.Random(seed)
    notes = plan_notes(n, rng)
    plan_links(notes, rng)
    writer = Writer(rng)
    out.mkdir(parents=True, exist_ok=True)
    for folder in SHARES:
        (out / folder).mkdir(exist_ok=True)
    (out / ".obsidian").mkdir(exist_ok=True)
    (out / ".obsidian" / "app.json").write_text('{"useMarkdownLinks": false}\n', encoding="utf-8")
    size, top = 0, os.fspath(out)
    for note in notes:
        text = render(note, notes, writer, rng)
        size += len(text)
        data = text.encode("utf-8")
        fd = os.open(f"{top}/{note.path}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    indegree: dict[int, int] = {}
    for note in notes:
        for j in note.links:
            indegree[j] = indegree.get(j, 0) + 1
    top = sorted(indegree.values(), reverse=True)
    return {"notes": len(notes), "links": sum(len(x.links) for x in notes),
            "long_notes": sum(x.long for x in notes), "bytes": size,
            "max_indegree": top[0] if top else 0,
            "notes_without_backlinks": len(notes) - len(indegree),
            "folders": {f: sum(x.folder == f for x in notes) for f in SHARES}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to create the vault in")
    parser.add_argument("--notes", type=int, default=1000, help="how many notes (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.glob("*/*.md")):
        parser.error(f"{args.out} already holds notes; give an empty or new folder")
    start = time.perf_counter()
    info = generate(args.out, args.notes, args.seed)
    info["seconds"] = round(time.perf_counter() - start, 2)
    print(f"{info['notes']} notes ({info['folders']}), {info['links']} links, "
          f"{info['long_notes']} long notes, {info['bytes'] / 1e6:.1f} MB, max in-degree "
          f"{info['max_indegree']}, {info['notes_without_backlinks']} notes without backlinks; "
          f"written to {args.out} in {info['seconds']} s")
    return info


if __name__ == "__main__":
    main(sys.argv[1:])
