"""`lenslink plot`: PCA maps of lens vectors (plot.py) and the command.

The drawing needs matplotlib (the `plot` extra; the `test` extra installs it too); the
PCA, colour groups and labels are plain numpy and always tested.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from click.testing import CliRunner

from lenslink import plot
from lenslink.cli import main
from lenslink.vault import Vault

CITIES = ["Bangkok", "Bologna", "Chiang Mai", "Lyon", "Mexico City", "Naples", "Oslo",
          "Reykjavik", "Singapore", "Tokyo"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def indexed(sample_vault, fake_embedder):
    assert run("index", sample_vault, "--embedder", "fake").exit_code == 0
    return sample_vault


def assert_one_line_error(result, message: str):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert message in result.stderr


# -- the command ------------------------------------------------------------------------
def test_plot_cities_under_two_lenses_writes_a_png(indexed, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "maps" / "cities.png"
    out.parent.mkdir()
    result = run("plot", indexed, "--embedder", "fake", "--lens", "cuisine", "--lens", "climate",
                 "--color", "tag", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {out}: cuisine (10 notes), climate (10 notes)\n"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 1.5 * height > 500            # two panels side by side


def test_plot_default_lens_and_svg(indexed, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "topic.svg"
    result = run("plot", indexed, "--embedder", "fake", "--out", out, "--label", "3")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {out}: topic (52 notes)\n"
    assert out.read_text(encoding="utf-8").lstrip().startswith("<?xml")


def test_plot_unknown_lens_and_unwritable_format(indexed, tmp_path):
    pytest.importorskip("matplotlib")
    assert_one_line_error(run("plot", indexed, "--lens", "weather", "--out", tmp_path / "a.png"),
                          "unknown lens 'weather'")
    for name in ("a.xyz", "map.txt"):  # refused before any work
        result = run("plot", indexed, "--lens", "size", "--out", tmp_path / name)
        assert_one_line_error(result, f"cannot write {tmp_path / name}: give a file name ending "
                                      "in one of .")
        assert ".png, " in result.stderr and ".svg, " in result.stderr
    assert not (tmp_path / "a.png").exists()


def test_plot_into_a_missing_folder_is_refused_and_creates_none(indexed, tmp_path):
    out = tmp_path / "no" / "such" / "x.png"
    assert_one_line_error(run("plot", indexed, "--out", out),
                          f"cannot write {out}: the folder {out.parent} does not exist")
    assert not (tmp_path / "no").exists()


def test_plot_without_matplotlib_says_how_to_install_it(sample_vault, monkeypatch, tmp_path):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends",
                 "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)   # `import` of it now fails
    result = run("plot", sample_vault, "--lens", "cuisine", "--out", tmp_path / "a.png")
    assert_one_line_error(result, "matplotlib is needed: pip install 'lenslink[plot]'")
    assert not (tmp_path / "a.png").exists()


# -- the map ----------------------------------------------------------------------------
def test_lens_map_of_the_cities_names_every_city_and_colours_by_country(indexed):
    with Vault(indexed, embedder="fake") as v:
        ranking = v.ranking()
        by_tag = plot.lens_map(ranking, "cuisine", color="tag", label=3)
        by_folder = plot.lens_map(ranking, "climate")
        topic = plot.lens_map(ranking, None, label=5)
    assert by_tag.lens == "cuisine" and list(by_tag.titles) == CITIES
    assert sorted(by_tag.labelled) == list(range(10))           # <= 15 notes: all named
    groups = dict(zip(by_tag.titles, by_tag.groups))
    assert groups["Naples"] == groups["Bologna"] == "italy"
    assert groups["Oslo"] == groups["Reykjavik"] == "nordic"
    assert groups["Singapore"] == plot.NONE                     # tagged only #city
    assert set(by_folder.groups) == {"cities"}
    assert by_tag.xy.shape == (10, 2) and by_tag.sources.all()
    assert not np.allclose(by_tag.xy, by_folder.xy)             # the lenses see differently
    assert topic.lens == "topic" and len(topic.labelled) == 5 and len(set(topic.labelled)) == 5


def test_pca_2d_matches_the_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)) * np.array([5.0, 2.0, 0.5, 0.1, 0.1, 0.1]) + 3.0
    xy, explained = plot.pca_2d(x)
    centred = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred)
    top = vectors[:, ::-1][:, :2]
    expected = centred @ top
    for axis in range(2):            # equal up to the sign of each axis
        sign = np.sign(expected[:, axis] @ xy[:, axis])
        np.testing.assert_allclose(xy[:, axis], sign * expected[:, axis], atol=1e-9)
        far = np.argmax(np.abs(xy[:, axis]))
        assert xy[far, axis] > 0     # the sign convention
    assert explained == pytest.approx(tuple(values[::-1][:2] / values.sum()))
    assert explained[0] > 0.8
    np.testing.assert_array_equal(plot.pca_2d(x)[0], xy)        # deterministic


def test_pca_2d_of_degenerate_inputs():
    assert plot.pca_2d(np.zeros((0, 4)))[0].shape == (0, 2)
    xy, explained = plot.pca_2d(np.ones((1, 4)))
    assert xy.tolist() == [[0.0, 0.0]] and explained == (0.0, 0.0)
    line = np.outer(np.arange(5.0), np.ones(3))                 # rank 1: PC2 is flat
    xy, explained = plot.pca_2d(line)
    assert explained[0] == pytest.approx(1.0) and explained[1] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(xy[:, 1], 0, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.diff(xy[:, 0])), np.sqrt(3))


def test_colour_groups():
    folders = ["projects", "topics/python", "", "topics"]
    assert plot.colour_groups(folders, [()] * 4, "folder") == ["projects", "topics", "(root)", "topics"]
    tags = [("city", "italy"), ("city",), ("city", "japan", "food")]
    assert plot.colour_groups(folders[:3], tags, "tag") == ["italy", plot.NONE, "japan"]
    assert plot.colour_groups(["a", "b"], [("x",), ()], "tag") == ["x", plot.NONE]


def test_pick_labels_small_lens_all_large_lens_centre_and_extremes():
    assert plot.pick_labels(np.zeros((12, 2)), 3) == list(range(12))
    assert plot.pick_labels(np.zeros((12, 2)), 0) == []
    rng = np.random.default_rng(1)
    xy = rng.normal(size=(200, 2))
    picked = plot.pick_labels(xy, 5)
    assert len(picked) == len(set(picked)) == 5
    centre = (xy.min(0) + xy.max(0)) / 2
    assert picked[0] == int(np.argmin(np.linalg.norm(xy - centre, axis=1)))
    right = np.linalg.norm(xy - (xy[:, 0].max(), centre[1]), axis=1)   # the next anchor
    right[picked[0]] = np.inf
    assert picked[1] == int(np.argmin(right))
    assert xy[picked[1], 0] > np.quantile(xy[:, 0], 0.95) > np.quantile(xy[:, 0], 0.05) > xy[picked[2], 0]
    assert len(set(plot.pick_labels(xy, 30))) == 30             # more than the anchors


def test_palette_shares_grey_beyond_nine_groups():
    m = plot.LensMap("x", (), (), np.zeros((0, 2)), (0, 0),
                     tuple(f"g{i:02d}" for i in range(12) for _ in range(12 - i)), (), np.zeros(0, bool))
    colours = plot.palette([m])
    assert len(set(colours.values())) == 9
    assert colours["g00"] != plot.GREY and colours["g11"] == colours["g08"] == plot.GREY
