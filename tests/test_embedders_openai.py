"""The OpenAI-compatible embedder, against the local test server."""

import time

import numpy as np
import pytest
from openai_server import PlannedResponse, error_body, fake_vector

from lenslink import embedders
from lenslink.embedders.openai_embedder import OpenAIEmbedder
from lenslink.errors import EmbedderError

MODEL = "text-embedding-3-small"


@pytest.fixture
def make(openai_server, monkeypatch):
    """Build an embedder against the test server, with fast retries."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")

    def build(**options):
        options = {"model": MODEL, "base_url": openai_server.base_url, "retry_base_delay": 0.01, **options}
        return embedders.get_embedder("openai", **options)

    return build


def unit(vector):
    vector = np.asarray(vector, np.float32)
    return vector / np.linalg.norm(vector)


def test_vectors_are_unit_length_and_in_input_order(make, openai_server):
    openai_server.reverse_order = True  # the embedder must sort by `index`
    vectors = make().embed_batch(["alpha", "beta", ""])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 16)
    np.testing.assert_allclose(vectors[0], unit(fake_vector("alpha", 16)), atol=1e-6)
    np.testing.assert_allclose(vectors[1], unit(fake_vector("beta", 16)), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert openai_server.requests[0].inputs == ["alpha", "beta", " "]  # the API rejects ""


def test_batches_follow_batch_size(make, openai_server):
    texts = [f"text {i}" for i in range(150)]
    done = []
    vectors = embedders.embed_all(make(), texts, done.append)
    assert [len(r.inputs) for r in openai_server.requests] == [64, 64, 22]
    assert done == [64, 128, 150]
    np.testing.assert_allclose(vectors[149], unit(fake_vector("text 149", 16)), atol=1e-6)


def test_embed_batch_splits_long_lists(make, openai_server):
    make(batch_size=4).embed_batch([str(i) for i in range(10)])
    assert [len(r.inputs) for r in openai_server.requests] == [4, 4, 2]
    assert openai_server.embedded_inputs == 10


def test_auth_header_carries_the_key_from_the_env_variable(make, openai_server, monkeypatch):
    monkeypatch.setenv("MY_EMBED_KEY", "sk-from-custom-env")
    make(api_key_env="MY_EMBED_KEY").embed_batch(["x"])
    make().embed_batch(["y"])
    assert [r.auth for r in openai_server.requests] == ["Bearer sk-from-custom-env", "Bearer sk-test-key"]


def test_localhost_without_a_key_uses_a_dummy(make, openai_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    make().embed_batch(["x"])
    assert openai_server.requests[0].auth == "Bearer unused"


def test_missing_key_for_the_real_endpoint_names_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(EmbedderError, match="set the environment variable OPENAI_API_KEY"):
        embedders.get_embedder("openai", model=MODEL)


def test_model_option_is_required():
    with pytest.raises(EmbedderError, match=r"needs a model: in .lenslink.toml, under \[embedder_options\]"):
        embedders.get_embedder("openai")


def test_id_names_model_endpoint_and_dimensions(make, openai_server, monkeypatch):
    assert make().id == f"openai:{MODEL}:{openai_server.base_url}"
    assert make(dimensions=8).id == f"openai:{MODEL}:{openai_server.base_url}:8"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert OpenAIEmbedder(model=MODEL).id == f"openai:{MODEL}:api.openai.com"


def test_retries_rate_limit_then_server_error_then_succeeds(make, openai_server):
    openai_server.fail_next(429)
    openai_server.fail_next(500)
    vectors = make(max_retries=2).embed_batch(["persist"])
    assert [r.path for r in openai_server.requests] == ["/v1/embeddings"] * 3
    np.testing.assert_allclose(vectors[0], unit(fake_vector("persist", 16)), atol=1e-6)


def test_exhausted_retries_give_a_clear_error(make, openai_server):
    openai_server.fail_next(503, times=3)
    with pytest.raises(EmbedderError, match=r"failed after 3 attempts: Error code: 503"):
        make(max_retries=2).embed_batch(["x"])
    assert len(openai_server.requests) == 3


def test_exhausted_quota_is_not_retried(make, openai_server):
    openai_server.plan(PlannedResponse(429, body=error_body(429, code="insufficient_quota")))
    with pytest.raises(EmbedderError, match="quota exceeded"):
        make().embed_batch(["x"])
    assert len(openai_server.requests) == 1


def test_timeout_is_retried(make, openai_server):
    openai_server.delay_next(1.0)
    start = time.monotonic()
    vectors = make(timeout=0.5, max_retries=1).embed_batch(["slow"])
    assert vectors.shape == (1, 16)
    assert len(openai_server.requests) == 2
    assert time.monotonic() - start < 5


def test_persistent_timeout_is_a_clear_error(make, openai_server):
    openai_server.delay_next(1.0, times=2)
    with pytest.raises(EmbedderError, match="failed after 2 attempts: Request timed out"):
        make(timeout=0.5, max_retries=1).embed_batch(["slow"])


def test_connection_refused_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    embedder = OpenAIEmbedder(model=MODEL, base_url="http://127.0.0.1:9/v1", max_retries=1, retry_base_delay=0.01)
    with pytest.raises(EmbedderError, match="failed after 2 attempts: Connection error"):
        embedder.embed_batch(["x"])


def test_unknown_model_is_named(make, openai_server):
    with pytest.raises(EmbedderError, match=f"unknown model no-such-model at {openai_server.base_url}$"):
        make(model="no-such-model").embed_batch(["x"])
    assert len(openai_server.requests) == 1  # a 404 is not retried


def test_wrong_key_is_not_retried(make, openai_server):
    openai_server.api_key = "sk-right"
    with pytest.raises(EmbedderError, match="refused the API key"):
        make().embed_batch(["x"])
    assert len(openai_server.requests) == 1


def test_dimension_is_learnt_then_enforced(make, openai_server):
    embedder = make()
    assert embedder.embed_batch([]).shape == (0, 0)  # no request for nothing
    assert embedder.dimension == 16  # a probe request learns it
    openai_server.set_dimension(32)
    with pytest.raises(EmbedderError, match="returned 32-dimensional vectors, expected 16"):
        embedder.embed_batch(["changed"])


def test_dimensions_option_is_sent_and_known_upfront(make, openai_server):
    embedder = make(dimensions=8)
    assert embedder.dimension == 8 and openai_server.requests == []
    assert embedder.embed_batch(["x"]).shape == (1, 8)
    assert openai_server.requests[0].body["dimensions"] == 8


def test_server_answers_chat_and_models_for_later_features(openai_server):
    import openai

    client = openai.OpenAI(api_key="sk-x", base_url=openai_server.base_url, max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "REWRITE: hi"
    assert "text-embedding-3-small" in [m.id for m in client.models.list()]
    assert [r.path for r in openai_server.requests] == ["/v1/chat/completions", "/v1/models"]
