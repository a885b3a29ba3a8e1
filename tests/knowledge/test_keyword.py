"""BM25 keyword index: ranking, live updates and persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knowledge.keyword import KeywordIndex


def _index() -> KeywordIndex:
    index = KeywordIndex()
    index.set(1, ["信用卡", "挂失", "补卡"])
    index.set(2, ["借记卡", "挂失", "网点"])
    index.set(3, ["房贷", "利率", "lpr"])
    index.rebuild()
    return index


def test_rare_terms_outweigh_common_ones() -> None:
    slots, scores = _index().top(["信用卡", "挂失"], 5)
    assert list(slots[:2]) == [1, 2]
    assert scores[0] > scores[1] > 0


def test_unknown_terms_score_nothing() -> None:
    slots, _ = _index().top(["天气"], 5)
    assert len(slots) == 0


def test_live_set_and_remove_without_rebuild() -> None:
    index = _index()
    index.set(4, ["车贷", "利率"])
    slots, _ = index.top(["车贷"], 5)
    assert list(slots) == [4]
    index.set(3, ["存款"])  # replace: the old terms must be gone
    assert 3 not in index.top(["房贷"], 5)[0]
    index.remove(4)
    assert len(index.top(["车贷"], 5)[0]) == 0
    assert len(index) == 3


def test_pending_rows_score_like_rebuilt_rows() -> None:
    index = _index()
    # Same length as the others, so the average length (refreshed only on rebuild) is unchanged
    # and pending and rebuilt scores must agree exactly.
    index.set(5, ["信用卡", "年费", "积分"])
    before = dict(zip(*index.top(["信用卡", "年费"], 5), strict=True))
    index.rebuild()
    after = dict(zip(*index.top(["信用卡", "年费"], 5), strict=True))
    assert before.keys() == after.keys()
    np.testing.assert_allclose([before[k] for k in after], list(after.values()), rtol=1e-5)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    index = _index()
    path = tmp_path / "kw.npz"
    index.save(path)
    loaded = KeywordIndex.load(path)
    for query in (["挂失"], ["房贷", "lpr"]):
        a, b = index.top(query, 5), loaded.top(query, 5)
        assert list(a[0]) == list(b[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
    assert loaded.document_frequency("挂失") == 2
