"""Lens texts rewritten by a chat model before embedding, against the local test server.

The server answers every chat request with "REWRITE: {the user message}", so what the
fake embedder received shows exactly whether the rewrite, and only it, was embedded.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from lenslink import index as index_mod
from lenslink.cli import main
from lenslink.errors import ConfigError, RewriteError, RewriteRejected
from lenslink.lenses import (DEFAULT_REWRITE_PROMPT, Lens, RewriteSettings, load_config,
                             parse_config)
from lenslink.rewrite import Rewriter, prompt_hash
from lenslink.vault import Vault

SAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "sample_vault" / ".lenslink.toml"
MODEL = "gpt-4o-mini"
ESSAY_PROMPT = ("Rewrite the following text in standard English using Markdown. "
                "Focus on content, ignore style. Limit to 200 words.")
NOTES = {
    "topics/Sourdough.md": "Rye flour and water, fed daily. See [[Bread]].\n",
    "projects/Bread.md": "Bake a loaf every week with the [[Sourdough]] starter.\n",
    "topics/Crumb.md": "An open crumb needs a strong starter and long proofing.\n",
}
TOPIC_TEXTS = {  # what the default template makes of each note (links reduced to text)
    "projects/Bread.md": "Bread\nBake a loaf every week with the Sourdough starter.",
    "topics/Crumb.md": "Crumb\nAn open crumb needs a strong starter and long proofing.",
    "topics/Sourdough.md": "Sourdough\nRye flour and water, fed daily. See Bread.",
}
PLAIN_TEXTS = {path: "Plain: " + text for path, text in TOPIC_TEXTS.items()}


def config(server, prompt: str | None = None, retries: int = 0) -> str:
    """A rewriting `topic` lens and a `plain` lens without rewrite."""
    return (f'[lenses.topic]\n[lenses.topic.rewrite]\nmodel = "{MODEL}"\n'
            f'base_url = "{server.base_url}"\nmax_retries = {retries}\n'
            + (f'prompt = "{prompt}"\n' if prompt else "")
            + '\n[lenses.plain]\nprefix = "Plain: "\n')


pytestmark = pytest.mark.usefixtures("keyless_chat")


@pytest.fixture
def db(tmp_path):
    return tmp_path / "index.db"


@pytest.fixture
def vault(tiny_vault, openai_server):
    return tiny_vault(NOTES, config=config(openai_server))


def run_index(root: Path, db: Path, **kwargs):
    with Vault(root, db=db, embedder="fake") as v:
        return v.index(**kwargs)


def chats(server) -> list:
    return server.requests_to("/chat/completions")


def query(db: Path, sql: str, *args) -> list[tuple]:
    conn = sqlite3.connect(str(db))
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


# ---------------------------------------------------------------- configuration

W = "V/.lenslink.toml [lenses.a] rewrite"


@pytest.mark.parametrize("rewrite, message", [
    ("gpt-4o-mini", f'{W}: must be a table such as {{ model = "gpt-4o-mini" }}'),
    ({}, f'{W} model: required, the chat model that rewrites, e.g. model = "gpt-4o-mini"'),
    ({"model": " "}, f"{W} model: required"),
    ({"model": "m", "promt": "x"},
     f"{W}: unknown key 'promt'; allowed: api_key_env, base_url, max_retries, model, prompt, timeout"),
    ({"model": "m", "prompt": ""}, f"{W} prompt: must be a non-empty string"),
    ({"model": "m", "prompt": 3}, f"{W} prompt: must be a non-empty string"),
    ({"model": "m", "base_url": "localhost:11434/v1"},
     f'{W} base_url: must be an http(s) URL such as "http://localhost:11434/v1"'),
    ({"model": "m", "api_key_env": "sk-abc123"},
     f"{W} api_key_env: must be the name of an environment variable (never the key itself)"),
    ({"model": "m", "timeout": 0}, f"{W} timeout: must be a number of seconds above 0"),
    ({"model": "m", "timeout": "30"}, f"{W} timeout: must be a number of seconds above 0"),
    ({"model": "m", "max_retries": -1}, f"{W} max_retries: must be an integer from 0 to 20"),
    ({"model": "m", "max_retries": True}, f"{W} max_retries: must be an integer from 0 to 20"),
    ({"model": "m", "max_retries": 2.5}, f"{W} max_retries: must be an integer from 0 to 20"),
])
def test_rewrite_table_mistakes_are_one_line_errors(rewrite, message):
    with pytest.raises(ConfigError) as err:
        parse_config({"lenses": {"a": {"rewrite": rewrite}}}, "V/.lenslink.toml")
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_rewrite_table_defaults_to_the_essays_prompt(tmp_path):
    (tmp_path / ".lenslink.toml").write_text(
        '[lenses.topic]\n[lenses.topic.rewrite]\nmodel = "llama3"\n'
        'base_url = "http://localhost:11434/v1/"\ntimeout = 30\n')
    lens = load_config(tmp_path).lens("topic")
    assert DEFAULT_REWRITE_PROMPT == ESSAY_PROMPT
    assert lens.rewrite == RewriteSettings(model="llama3", prompt=ESSAY_PROMPT,
                                           base_url="http://localhost:11434/v1",
                                           api_key_env="OPENAI_API_KEY", timeout=30.0,
                                           max_retries=5)


def test_signature_follows_the_prompt_and_model_only():
    base = Lens("topic", rewrite=RewriteSettings(model="m"))
    assert Lens("topic").signature != base.signature
    assert Lens("topic", rewrite=RewriteSettings(model="m2")).signature != base.signature
    assert Lens("topic", rewrite=RewriteSettings(model="m", prompt="Summarise.")).signature \
        != base.signature
    # how to reach the model does not change the texts
    same = RewriteSettings(model="m", base_url="http://localhost:1/v1", timeout=5, max_retries=0)
    assert Lens("topic", rewrite=same).signature == base.signature


def test_sample_vault_documents_rewrite_but_stays_offline():
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    assert "# [lenses.topic.rewrite]" in text
    assert all(lens.rewrite is None for lens in load_config(SAMPLE_CONFIG.parent).lenses)


# ---------------------------------------------------------------- what is embedded

def test_the_rewrite_is_what_gets_embedded(vault, db, fake_embedder, openai_server):
    report = run_index(vault, db)
    assert report.problems == [] and report.rewritten == 3
    rewritten = {p: "REWRITE: " + t for p, t in TOPIC_TEXTS.items()}
    assert sorted(fake_embedder.texts) == sorted([*rewritten.values(), *PLAIN_TEXTS.values()])
    requests = chats(openai_server)
    assert [r.body for r in requests] == [
        {"model": MODEL, "temperature": 0,
         "messages": [{"role": "system", "content": ESSAY_PROMPT},
                      {"role": "user", "content": TOPIC_TEXTS[p]}]}
        for p in sorted(TOPIC_TEXTS)]
    assert {r.auth for r in requests} == {"Bearer unused"}  # localhost: a dummy key
    assert openai_server.requests_to("/embeddings") == []
    # the chunk keeps the lens text; its hash is that of the rewrite, which was embedded
    rows = query(db, "SELECT path, text, text_hash, original FROM chunks WHERE lens='topic'"
                     " ORDER BY path")
    assert rows == [(p, rewritten[p], index_mod.text_hash(rewritten[p]), TOPIC_TEXTS[p])
                    for p in sorted(TOPIC_TEXTS)]
    assert query(db, "SELECT DISTINCT original FROM chunks WHERE lens='plain'") == [(None,)]
    assert sorted(query(db, "SELECT model, prompt_hash, text_hash, rewritten FROM rewrites")) == \
        sorted((MODEL, prompt_hash(ESSAY_PROMPT), index_mod.text_hash(t), "REWRITE: " + t)
               for t in TOPIC_TEXTS.values())


def test_rewrites_are_cached_across_runs_rebuilds_and_edits(vault, db, fake_embedder,
                                                            openai_server):
    run_index(vault, db)
    fake_embedder.reset_counts()
    assert run_index(vault, db).rewritten == 0
    assert run_index(vault, db, rebuild=True).rewritten == 0
    assert len(chats(openai_server)) == 3 and fake_embedder.texts == []
    (vault / "topics/Crumb.md").write_text("A tight crumb comes from a young starter.\n")
    report = run_index(vault, db)
    new = "Crumb\nA tight crumb comes from a young starter."
    assert report.rewritten == 1
    assert chats(openai_server)[-1].body["messages"][1]["content"] == new
    assert sorted(fake_embedder.texts) == sorted(["REWRITE: " + new, "Plain: " + new])
    # the old text's rewrite is no longer embedded anywhere: it leaves the cache
    assert query(db, "SELECT count(*) FROM rewrites") == [(3,)]


def test_changing_the_prompt_rewrites_again_and_leaves_other_lenses_alone(
        vault, db, fake_embedder, openai_server):
    run_index(vault, db)
    fake_embedder.reset_counts()
    (vault / ".lenslink.toml").write_text(config(openai_server, prompt="Summarise the note."))
    report = run_index(vault, db)
    assert report.rewritten == 3
    later = chats(openai_server)[3:]
    assert {r.body["messages"][0]["content"] for r in later} == {"Summarise the note."}
    # the server's echo ignores the prompt: same rewrites, so nothing new to embed
    assert fake_embedder.texts == []


def test_a_prompt_tried_and_changed_back_asks_the_chat_model_nothing(
        vault, db, fake_embedder, openai_server):
    """The first prompt's rewrites are kept with their vectors (retired by the config
    change, see test_index): going back neither asks the chat model nor embeds."""
    def reply(messages):  # a rewrite that depends on the prompt
        return f"{messages[0]['content'].split()[0].upper()}: {messages[-1]['content']}"
    openai_server.chat_reply = reply
    (vault / ".lenslink.toml").write_text(config(openai_server, prompt="Summarise the note."))
    run_index(vault, db)
    (vault / ".lenslink.toml").write_text(config(openai_server, prompt="Shorten the note."))
    assert run_index(vault, db).rewritten == 3
    asked, fake_embedder.texts = len(chats(openai_server)), []
    (vault / ".lenslink.toml").write_text(config(openai_server, prompt="Summarise the note."))
    report = run_index(vault, db)
    assert report.rewritten == 0 and len(chats(openai_server)) == asked
    assert fake_embedder.texts == []
    embedded = {t for (t,) in query(db, "SELECT text FROM chunks WHERE original IS NOT NULL")}
    assert embedded == {"SUMMARISE: " + text for text in TOPIC_TEXTS.values()}
    # an edit drops the note's kept rewrites with its other texts
    (vault / "topics/Crumb.md").write_text("A tight crumb comes from a young starter.\n")
    run_index(vault, db)
    assert not query(db, "SELECT count(*) FROM rewrites WHERE rewritten LIKE '%open crumb%'")[0][0]


def test_a_lens_without_rewrite_sends_nothing_even_with_the_openai_embedder(
        tiny_vault, db, openai_server):
    embedder = (f'embedder = "openai"\n[embedder_options]\nmodel = "text-embedding-3-small"\n'
                f'base_url = "{openai_server.base_url}"\n')
    for name, lenses in [("defaults", ""), ("plain", '[lenses.plain]\nprefix = "Plain: "\n')]:
        root = tiny_vault(NOTES, config=embedder + lenses, name=name)
        with Vault(root, db=db.with_name(f"{name}.db")) as v:
            assert v.index().rewritten == 0
    assert openai_server.embedded_inputs > 0
    assert chats(openai_server) == []


# ---------------------------------------------------------------- failures

def test_failing_endpoint_leaves_other_lenses_indexed_and_retries_next_time(
        tiny_vault, db, fake_embedder, openai_server):
    root = tiny_vault(NOTES, config=config(openai_server, retries=2))
    openai_server.fail_next(500, times=3)
    report = run_index(root, db)
    assert report.rewritten == 0
    assert report.problems == [("", f"lens topic: rewrite request to {openai_server.base_url} "
                                    "failed after 3 attempts: Error code: 500 - The server had an "
                                    "error while processing your request.; 3 text(s) not "
                                    "rewritten, retried on the next index")]
    assert len(chats(openai_server)) == 3  # gave up on the lens after the first text
    assert sorted(fake_embedder.texts) == sorted(PLAIN_TEXTS.values())
    assert query(db, "SELECT count(*) FROM rewrites") == [(0,)]  # nothing wrong cached
    with Vault(root, db=db, embedder="fake") as v:
        assert [r.path for r in v.related("topics/Sourdough.md", "plain")] == \
            ["projects/Bread.md", "topics/Crumb.md"]
        assert v.related("topics/Sourdough.md", "topic") == []
        status = v.status()
        assert status["problems"] == {p: ["lens topic: not rewritten yet (the rewrite endpoint "
                                          "failed or the index was interrupted); retried on the "
                                          "next index"] for p in sorted(NOTES)}
        assert (status["texts"], status["embedded_texts"]) == (6, 3)

    fake_embedder.reset_counts()
    report = run_index(root, db)  # the server has recovered; the notes did not change
    assert report.problems == [] and report.rewritten == 3 and report.unchanged == 3
    assert sorted(fake_embedder.texts) == sorted("REWRITE: " + t for t in TOPIC_TEXTS.values())
    with Vault(root, db=db, embedder="fake") as v:
        assert v.status()["problems"] == {}
        assert len(v.related("topics/Sourdough.md", "topic")) == 2


def test_a_note_whose_rewrite_failed_keeps_its_block(tiny_vault, db, fake_embedder,
                                                    openai_server):
    """Its topic list would be empty until the rewrite works again: writing must not take
    the block it has out of the note (the daemon's auto write goes the same way)."""
    root = tiny_vault(NOTES, config=config(openai_server))
    run_index(root, db)
    with Vault(root, db=db, embedder="fake") as v:
        assert {o.status for o in v.write()} == {"written"}
    crumb = root / "topics/Crumb.md"
    before = crumb.read_bytes()
    assert b"[[Sourdough]]" in before.split(b"lenslink:start")[1]
    (root / "topics/Crumb.md").write_bytes(before.replace(b"long proofing", b"a cold proof"))
    edited = crumb.read_bytes()
    openai_server.fail_next(500, times=10)
    run_index(root, db)
    with Vault(root, db=db, embedder="fake") as v:
        outcomes = {o.path: o for o in v.write()}
    assert outcomes["topics/Crumb.md"].status == "skipped"
    assert outcomes["topics/Crumb.md"].detail.startswith("not embedded yet under lens topic")
    assert crumb.read_bytes() == edited  # block and all
    assert outcomes["topics/Sourdough.md"].status in ("written", "unchanged")


def test_a_remote_endpoint_without_its_key_is_reported_and_sends_nothing(
        tiny_vault, db, fake_embedder, openai_server):
    remote = config(openai_server).replace(f'base_url = "{openai_server.base_url}"\n', "")
    root = tiny_vault(NOTES, config=remote)
    report = run_index(root, db)
    assert report.problems == [("", "lens topic: set the environment variable OPENAI_API_KEY to "
                                    "an API key for https://api.openai.com/v1 (used to rewrite "
                                    "lens texts); 3 text(s) not rewritten, retried on the next "
                                    "index")]
    assert sorted(fake_embedder.texts) == sorted(PLAIN_TEXTS.values())
    result = CliRunner().invoke(main, ["related", str(root), "topics/Sourdough.md", "--lens",
                                       "topic", "--explain", "--db", str(db), "--embedder", "fake"])
    assert result.stdout.splitlines() == [
        "no related notes for topics/Sourdough.md under lens 'topic': its text is not embedded "
        f"yet (an index was interrupted, or a rewrite or the embedder failed: `lenslink index {root}` "
        "embeds it, `lenslink status` says more)",
        f"rewritten by {MODEL}: (not rewritten yet; run `lenslink index`)"]
    assert openai_server.requests == []


def test_a_rejected_text_is_reported_and_the_others_go_on(vault, db, fake_embedder,
                                                          openai_server):
    openai_server.fail_next(400)
    report = run_index(vault, db)
    assert report.rewritten == 2
    assert [(p, m.split(":")[0]) for p, m in report.problems] == [("projects/Bread.md", "lens topic")]
    assert f"{MODEL} at {openai_server.base_url} rejected a text" in report.problems[0][1]
    assert run_index(vault, db).rewritten == 1  # only the rejected one is asked again
    assert len(chats(openai_server)) == 4


def test_interrupted_rewriting_is_completed_without_asking_twice(vault, db, fake_embedder,
                                                                 openai_server):
    class Interrupted(Rewriter):
        def rewrite_text(self, text):
            if len(chats(openai_server)) == 1:
                raise KeyboardInterrupt
            return super().rewrite_text(text)

    with Vault(vault, db=db, embedder="fake") as v:
        with pytest.raises(KeyboardInterrupt):
            index_mod.sync(v.root, v.config, v.store, v.embedder,
                           make_rewriter=Interrupted.from_settings)
    assert run_index(vault, db).rewritten == 2
    assert [r.body["messages"][1]["content"] for r in chats(openai_server)] == \
        [TOPIC_TEXTS[p] for p in sorted(TOPIC_TEXTS)]


# ---------------------------------------------------------------- the Rewriter itself

def test_rewriter_retries_then_rewrites_each_text(openai_server):
    rewriter = Rewriter(model=MODEL, base_url=openai_server.base_url, max_retries=2)
    openai_server.fail_next(429)
    openai_server.fail_next(503)
    assert rewriter.rewrite(["alpha", "  ", "beta"]) == ["REWRITE: alpha", "  ", "REWRITE: beta"]
    assert len(chats(openai_server)) == 4  # two failures, then one request per non-blank text


def test_rewriter_errors_are_one_actionable_line(openai_server, monkeypatch):
    with pytest.raises(RewriteError, match=f"unknown rewrite model nope at {openai_server.base_url}"):
        Rewriter(model="nope", base_url=openai_server.base_url).rewrite_text("x")
    openai_server.chat_reply = lambda messages: " "
    with pytest.raises(RewriteRejected, match="returned an empty rewrite \\(stop\\)"):
        Rewriter(model=MODEL, base_url=openai_server.base_url).rewrite_text("x")
    with pytest.raises(RewriteError, match="set the environment variable MY_KEY to an API key "
                                           "for https://api.openai.com/v1"):
        Rewriter(model=MODEL, api_key_env="MY_KEY")
    monkeypatch.setenv("MY_KEY", "sk-test")
    openai_server.api_key = "sk-other"
    with pytest.raises(RewriteError, match="refused the API key"):
        Rewriter(model=MODEL, base_url=openai_server.base_url, api_key_env="MY_KEY").rewrite_text("x")


# ---------------------------------------------------------------- --explain

def test_explain_shows_the_rewrites(vault, db, fake_embedder, openai_server):
    def run(*args):
        result = CliRunner().invoke(main, [str(a) for a in args] + ["--db", str(db),
                                                                     "--embedder", "fake"])
        assert result.exit_code == 0, result.output
        return result.stdout

    run("index", vault)
    asked = len(chats(openai_server))
    out = run("related", vault, "topics/Sourdough.md", "--lens", "topic", "--explain")
    lines = out.splitlines()
    assert lines[0] == f"rewritten by {MODEL}: REWRITE: Sourdough Rye flour and water, fed daily. See Bread."
    passages = [line.strip() for line in lines if "passage:" in line]
    assert passages == [
        "rewritten passage: REWRITE: Bread Bake a loaf every week with the Sourdough starter.",
        "rewritten passage: REWRITE: Crumb An open crumb needs a strong starter and long proofing."]
    plain = run("related", vault, "topics/Sourdough.md", "--lens", "plain", "--explain")
    assert "rewritten" not in plain
    assert "        passage: Plain: Bread Bake a loaf every week with the Sourdough starter." in plain
    assert len(chats(openai_server)) == asked  # ranking and explaining send nothing
