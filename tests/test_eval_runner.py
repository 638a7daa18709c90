import math

from flamesync.eval.runner import ClipScore, format_table, summarize, target_report


def score(clip, system, *, closure, n_b, rest, n_s, lag, jitter, closed_vowels, n_v, ov=10.0, corr=0.7):
    return ClipScore(clip=clip, system=system, closure=closure, n_bilabial=n_b, open_vowel_mm=ov, rest=rest,
                     n_silence=n_s, lag_ms=lag, corr=corr, jitter=jitter, closed_vowels=closed_vowels, n_vowel=n_v)


def test_summary_pools_counts_and_report_compares_with_the_baseline():
    scores = [
        score("a", "model", closure=1.0, n_b=10, rest=1.0, n_s=1, lag=-5, jitter=2.0, closed_vowels=0.0, n_v=30),
        score("b", "model", closure=0.8, n_b=30, rest=1.0, n_s=3, lag=20, jitter=2.2, closed_vowels=0.1, n_v=10),
        score("a", "phones", closure=0.5, n_b=10, rest=1.0, n_s=1, lag=10, jitter=1.0, closed_vowels=0.0, n_v=30),
        score("b", "phones", closure=0.5, n_b=30, rest=0.0, n_s=3, lag=10, jitter=1.0, closed_vowels=0.0, n_v=10),
    ]
    summary = summarize(scores)
    model = summary["model"]
    assert math.isclose(model["closure"], (10 + 24) / 40)  # pooled over /p b m/, not averaged per clip
    assert math.isclose(model["closed_vowels"], 1 / 40) and model["n_vowel"] == 40
    assert model["abs_lag_ms"] == 12.5 and model["rest"] == 1.0
    report = {what: ok for what, _, ok in target_report(summary)}
    assert report["lips close on >= 90% of /p b m/"] is False  # 85%
    assert report["|lag| <= 33 ms (median over clips)"] is True
    assert report["better than the phone-recognition baseline: closure"] is True
    assert report["better than the phone-recognition baseline: jitter"] is False
    assert report["better than the phone-recognition baseline: closed_vowels (fewer)"] is False
    table = format_table(scores, summary)
    assert "vowels shut" in table and "2.5% ( 40)" in table
