"""The README's study section and docs/study.md quote the committed results file exactly: their
numbers and claim sentences are what `tfgap.study.docs` renders from docs/study/results.json,
and the claims in that file are what the rules of `tfgap.study.claims` decide from its
per-seed numbers."""

import json
import pathlib
import shutil

import pytest

from tfgap.study import claims, docs
from tfgap.study.regimes import ABLATION_SEEDS, LONG_SEEDS, SEEDS

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results():
    return json.loads((ROOT / docs.RESULTS).read_text())


def test_readme_and_docs_are_rendered_from_the_committed_results(results):
    blocks = docs.render(results)
    for path, names in ((docs.README, docs.README_BLOCKS), (docs.DOCS, docs.DOCS_BLOCKS)):
        text = (ROOT / path).read_text()
        stale = docs.stale_blocks(text, {n: blocks[n] for n in names})
        assert stale == [], (f"{path}: blocks {stale} differ from {docs.RESULTS}; run "
                             "`python -m tfgap.study.docs`")


def test_the_committed_claims_are_what_the_rules_decide(results):
    assert claims.evaluate(results) == results["claims"]
    assert [c["key"] for c in results["claims"]] == [c.key for c in claims.CLAIMS]


def test_the_committed_run_is_the_default_command(results):
    settings = results["settings"]
    assert settings["command"] == "python -m tfgap.recipes.study"
    assert not settings["quick"]
    assert settings["seeds"] == list(range(SEEDS))
    assert settings["long_seeds"] == list(range(LONG_SEEDS))
    assert settings["ablation_seeds"] == list(range(ABLATION_SEEDS))
    for name in results["figures"]:  # the figures of that run are the docs' images
        assert (ROOT / docs.IMAGES / f"study_{name}").exists(), name


def test_a_changed_number_is_found_and_rendered_back(results, tmp_path):
    for path in (docs.RESULTS, docs.README, docs.DOCS):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / path, tmp_path / path)
    assert docs.main(["--check", "--root", str(tmp_path)]) == 0
    readme = tmp_path / docs.README
    text = readme.read_text()
    first = results["claims"][0]
    sentence = f"**{first['outcome']}**: {first['claim']}"
    assert sentence in text
    readme.write_text(text.replace(sentence, f"**held, surely**: {first['claim']}"))
    assert docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert docs.main(["--root", str(tmp_path)]) == 0  # renders the block again
    assert readme.read_text() == text
    with pytest.raises(ValueError, match="markers"):
        docs.replace_blocks("no markers here", {"readme": "x"})
