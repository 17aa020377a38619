"""languages.py: one table, either code style, near-match suggestions, direction groups."""

from __future__ import annotations

import pytest

from aligninstruct_cli.languages import (LANGUAGES, PAPER_UNSEEN_3, PAPER_UNSEEN_24, PAPER_ZERO_SHOT_SEEN,
                                         UnknownLanguage, direction_groups, find_language, get_language,
                                         is_seen, language_name)

# BLOOM's pre-training languages (model card; Chinese counted once here, simplified and traditional there).
BLOOM_46 = ("ak ar as bm bn ca en es eu fon fr gu hi id ig ki kn lg ln ml mr ne nso ny or pa pt rn rw sn st sw "
            "ta te tn ts tum tw ur vi wo xh yo zh zu").split()


def test_either_code_style_and_names():
    kk = get_language("kk")
    assert (kk.flores, kk.name, kk.seen) == ("kaz_Cyrl", "Kazakh", False)
    for spelling in ("kk", "KK", "kaz_Cyrl", "kaz", "Kazakh", " kazakh ", "kaz-Cyrl"):
        assert get_language(spelling) is kk, spelling
    assert get_language("zho_Hant") is get_language("zh")
    assert language_name("nb") == "Norwegian Bokmål" and str(kk) == "kk"


def test_coverage_of_bloom_and_the_paper():
    assert len(BLOOM_46) == 45
    for code in BLOOM_46:
        assert is_seen(code), code
    assert len(PAPER_UNSEEN_24) == 24
    for code in (*PAPER_UNSEEN_24, *PAPER_UNSEEN_3):
        assert not is_seen(code), code
    assert all(is_seen(c) for c in PAPER_ZERO_SHOT_SEEN)
    for key in ("code", "flores", "name"):
        values = [getattr(lang, key) for lang in LANGUAGES]
        assert len(values) == len(set(values)), f"duplicate {key}"


def test_unknown_code_suggests_near_matches():
    assert find_language("klingon") is None
    with pytest.raises(UnknownLanguage) as err:
        get_language("kazak")
    assert "unknown language 'kazak'" in str(err.value) and "kk (kaz_Cyrl, Kazakh)" in err.value.hint
    with pytest.raises(UnknownLanguage) as err:
        get_language("zzzzzz")
    assert "ait languages" in err.value.hint


def test_direction_groups():
    assert direction_groups("en", "kk") == ["en→xx", "en→unseen"]
    assert direction_groups("fr", "en") == ["xx→en", "seen→en"]
    assert direction_groups("de", "ar") == ["unseen→seen"]
    assert direction_groups("nl", "ru") == ["unseen→unseen"]
