"""`lenslink label`: a chat model judges suggested pairs, `train` learns from the answers.

Against the local OpenAI-compatible server (tests/openai_server.py), whose chat reply
here is a deterministic judge: "Yes." when both notes of the question belong to the
same cluster of the synthetic vault of test_learn.py (their titles say which), else
"No, ...". The fake embedder ranks.
"""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from lenslink import learn
from lenslink.cli import main
from lenslink.errors import ConfigError
from lenslink.label import QUESTION, SYSTEM, Judge, current_labels, parse_answer
from lenslink.lenses import LabelSettings, parse_config
from lenslink.vault import Vault
from openai_server import PlannedResponse
from test_learn import TOPIC_ONLY, cluster_notes, write

MODEL = "gpt-4o-mini"
TITLES = re.compile(r"^Note [AB]: (\w+ \d+)$", re.M)


def judge_by_cluster(messages: list[dict]) -> str:
    a, b = TITLES.findall(messages[-1]["content"])
    return "Yes." if a.split()[0] == b.split()[0] else "No, they are about different things."


def label_config(server, retries: int = 0) -> str:
    return (TOPIC_ONLY + f'\n[label]\nmodel = "{MODEL}"\nbase_url = "{server.base_url}"\n'
            f"max_retries = {retries}\n")


pytestmark = pytest.mark.usefixtures("keyless_chat")


@pytest.fixture
def vault(tmp_path, openai_server, fake_embedder):
    """The 50-note cluster vault, indexed, with a [label] table; the server judges."""
    notes, _ = cluster_notes()
    root = write(tmp_path / "v", notes, label_config(openai_server))
    openai_server.chat_reply = judge_by_cluster
    assert run("index", root).exit_code == 0
    return root


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args] + ["--embedder", "fake"])


def chats(server) -> list:
    return server.requests_to("/chat/completions")


def stored(root) -> list[tuple]:
    with Vault(root, embedder="fake") as v:
        return v.store.labels("topic")


def asked(server) -> list[tuple[str, str]]:
    """(A, B) titles of every question the server was asked."""
    return [tuple(TITLES.findall(r.body["messages"][-1]["content"])) for r in chats(server)]


# -- labelling ---------------------------------------------------------------------------
def test_labels_are_stored_and_a_second_run_asks_about_new_pairs_only(vault, openai_server):
    result = run("label", vault, "--pairs", "12")
    assert result.exit_code == 0, result.output
    rows = stored(vault)
    yes = sum(r[5] for r in rows)
    assert result.output == f"topic: 12 pairs labelled by {MODEL}: {yes} yes, {12 - yes} no; " \
                            "0 skipped (no clear yes or no)\n"
    requests = chats(openai_server)
    assert len(requests) == 12 and len(rows) == 12
    first = requests[0].body
    assert (first["model"], first["temperature"], first["messages"][0]) == \
        (MODEL, 0, {"role": "system", "content": SYSTEM})
    text = first["messages"][1]["content"]
    assert text.startswith("Note A: ") and "\n\nNote B: " in text and text.endswith(QUESTION)
    with Vault(vault, embedder="fake") as v:
        hashes = v.store.text_hashes(v.store.note_paths())
        links = v.store.links()
        for src, dst, model, src_hash, dst_hash, label in rows:
            assert model == MODEL and (src_hash, dst_hash) == (hashes[src], hashes[dst])
            assert label == (src.split()[0] == dst.split()[0])  # what the judge said
            assert dst not in links.get(src, [])                # only unlinked pairs
            # among the source's top unlinked suggestions
            top = [r.path for r in v.related(src, "topic", 10) if not r.linked][:3]
            assert dst in top

    again = run("label", vault, "--pairs", "12")
    assert again.exit_code == 0, again.output
    pairs = asked(openai_server)
    assert len(pairs) == 24 and len(set(pairs)) == 24   # nothing asked twice
    assert len(stored(vault)) == 24


def test_when_every_suggestion_is_labelled_nothing_more_is_asked(vault, openai_server):
    result = run("label", vault, "--pairs", "1000")
    assert result.exit_code == 0, result.output
    n = len(chats(openai_server))
    assert 0 < n <= 50 * 3 and f"(only {n} left to ask about)" in result.output
    result = run("label", vault, "--pairs", "5")
    assert result.output == (f"topic: nothing to label (each note's top suggestions are linked "
                             f"or already labelled by {MODEL})\n")
    assert len(chats(openai_server)) == n


def test_without_a_label_table_it_is_a_clear_error_and_nothing_is_sent(tmp_path, openai_server,
                                                                         fake_embedder):
    notes, _ = cluster_notes()
    root = write(tmp_path / "v", notes)   # TOPIC_ONLY, no [label]
    assert run("index", root).exit_code == 0
    result = run("label", root)
    assert result.exit_code == 1
    assert result.output == (f"Error: labelling needs a chat model: add to {root / '.lenslink.toml'}"
                             f' a [label] table with model = "..." and base_url = '
                             f'"http://localhost:11434/v1" (any OpenAI-compatible endpoint); '
                             "nothing was sent\n")
    # a remote endpoint without its key: refused before anything is sent
    write(root, {}, TOPIC_ONLY + f'[label]\nmodel = "{MODEL}"\n')
    result = run("label", root)
    assert result.exit_code == 1
    assert result.output == ("Error: set the environment variable OPENAI_API_KEY to an API key for "
                             "https://api.openai.com/v1 (used to label note pairs)\n")
    assert openai_server.requests == []


def test_an_unclear_answer_or_a_rejected_request_is_skipped(vault, openai_server):
    answers = iter(["Maybe; it depends.", "Perhaps yes, perhaps no.", "<think>yes? no.</think> No."])
    openai_server.chat_reply = lambda messages: next(answers, None) or judge_by_cluster(messages)
    openai_server.fail_next(400)
    result = run("label", vault, "--pairs", "6")
    assert result.exit_code == 0, result.output
    assert result.output.endswith("; 3 skipped (no clear yes or no)\n")
    assert "topic: 3 pairs labelled" in result.output
    assert len(stored(vault)) == 3
    with Vault(vault, embedder="fake") as v:
        kept = v.store.db.execute("SELECT answer, label FROM labels").fetchall()
    assert ("<think>yes? no.</think> No.", 0) in kept
    # the skipped pairs are asked again next time
    skipped = set(asked(openai_server)[:3])
    run("label", vault, "--pairs", "3")
    assert set(asked(openai_server)[-3:]) == skipped


@pytest.mark.parametrize("reply, verdict", [
    ("Yes", True), ("yes.", True), ("**No**", False), ("No, they are unrelated.", False),
    ("Answer: yes", True), ("I would say no.", False), ("YES!", True),
    ("<think>Maybe yes... but no</think>\nYes", True),
    ("Maybe.", None), ("Perhaps yes, perhaps no.", None), ("", None), ("Not sure", None),
])
def test_answers_are_read_robustly(reply, verdict):
    assert parse_answer(reply) is verdict


def test_ctrl_c_and_a_failing_endpoint_keep_the_labels_so_far(vault, openai_server, monkeypatch):
    calls = []
    real = Judge.judge

    def interrupted(self, question):
        calls.append(question)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, question)

    monkeypatch.setattr(Judge, "judge", interrupted)
    result = run("label", vault, "--pairs", "10")
    assert result.exit_code == 130
    assert "topic: 2 pairs labelled" in result.output
    assert "interrupted; the labels so far are kept" in result.output
    assert len(stored(vault)) == 2
    monkeypatch.setattr(Judge, "judge", real)

    openai_server.plan(PlannedResponse(), PlannedResponse(), PlannedResponse(status=500))
    result = run("label", vault, "--pairs", "10")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"topic: 2 pairs labelled by {MODEL}: ")
    assert lines[1:] == [
        f"Error: label request to {openai_server.base_url} failed after 1 attempts: Error code: "
        "500 - The server had an error while processing your request.; the labels so far are kept"]
    assert len(stored(vault)) == 4


def test_label_table_mistakes_are_one_line_errors():
    where = "V/.lenslink.toml [label]"
    with pytest.raises(ConfigError, match=re.escape(
            f"{where}: unknown key 'prompt'; allowed: api_key_env, base_url, max_retries, "
            "model, timeout")):
        parse_config({"label": {"model": "m", "prompt": "x"}}, "V/.lenslink.toml")
    with pytest.raises(ConfigError, match=re.escape(
            f"{where} model: required, the chat model that answers whether you would link "
            "two notes")):
        parse_config({"label": {}}, "V/.lenslink.toml")
    config = parse_config({"label": {"model": "llama3", "base_url": "http://localhost:11434/v1/"}})
    assert config.label == LabelSettings(model="llama3", base_url="http://localhost:11434/v1")
    # labelling settings are not ranking settings: a running daemon still ranks as configured
    assert config.fingerprint == parse_config({}).fingerprint


# -- what training does with them -----------------------------------------------------------
def model_params(root) -> dict:
    with Vault(root, embedder="fake") as v:
        (_, params, blob, _), = v.store.models(v.store.get_meta("embedder")).values()
    return {**params, "blob": blob}


def test_an_edited_notes_labels_are_not_used_but_a_written_block_keeps_them(vault, openai_server):
    assert run("label", vault, "--pairs", "12").exit_code == 0
    rows = stored(vault)
    with Vault(vault, embedder="fake") as v:
        assert len(current_labels(v.store, "topic")) == 12
    # lenslink writes its block into every note: the notes' texts are unchanged
    assert run("write", vault, "--all").exit_code == 0
    assert run("index", vault).exit_code == 0
    with Vault(vault, embedder="fake") as v:
        assert len(current_labels(v.store, "topic")) == 12
    edited = rows[0][0]
    with open(vault / edited, "a", encoding="utf-8") as f:
        f.write("\nA new thought about something else entirely.\n")
    assert run("index", vault).exit_code == 0
    with Vault(vault, embedder="fake") as v:
        current = current_labels(v.store, "topic")
    assert sorted(current) == sorted((s, d, y) for s, d, _, _, _, y in rows
                                     if edited not in (s, d))
    assert len(current) < 12
    result = run("train", vault)
    assert result.exit_code == 0, result.output
    assert f"({len(current)} of them labelled by a model)" in result.output


def test_train_learns_from_labels_and_without_them_trains_exactly_as_before(vault, openai_server):
    assert run("train", vault).exit_code == 0
    before = model_params(vault)
    assert "labels" not in before["report"]

    assert run("label", vault, "--pairs", "40").exit_code == 0
    result = run("train", vault)
    assert result.exit_code == 0, result.output
    assert "(40 of them labelled by a model)" in result.output
    with_labels = model_params(vault)
    assert with_labels["report"]["labels"] == 40
    assert with_labels["report"]["pairs"] > before["report"]["pairs"]
    assert with_labels["weights"] != before["weights"]

    with Vault(vault, embedder="fake") as v:   # the labels gone: the very same model again
        with v.store.db.conn:
            v.store.db.execute("DELETE FROM labels")
    assert run("train", vault).exit_code == 0
    assert model_params(vault) == before


def test_label_rows_leave_out_pairs_linked_since_and_notes_outside_the_lens(vault):
    with Vault(vault, embedder="fake") as v:
        ranking = v.ranking()
        view = ranking.views["topic"]
        graph = learn.lens_graph(ranking, view)
        src = "notes/baking 3.md"
        linked = v.store.links()[src][0]
        x, y = learn.label_rows(ranking, view, graph, [
            (src, "notes/astronomy 4.md", False), (src, "notes/baking 5.md", True),
            (src, linked, False), (src, src, True), ("notes/gone.md", src, True)])
    assert x.shape == (2, len(learn.FEATURES)) and y.tolist() == [0.0, 1.0]
