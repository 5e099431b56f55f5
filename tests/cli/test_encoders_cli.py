import json

import pytest

from emf_bench.cli import main

SMALL = ["--queries", "60", "--pool-size", "400", "--device", "cpu"]


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_and_show(capsys, tmp_path):
    (tmp_path / "mine.yaml").write_text("name: mine\nbackend: bag-of-words\n")
    code, out, _ = run(capsys, "encoders", "list", "--encoders-dir", str(tmp_path))
    assert code == 0
    for name in ("blip3o-next", "clip-vit-l-14", "class-label", "minilm", "mine"):
        assert name in out
    code, out, _ = run(capsys, "encoders", "show", "blip3o-next")
    assert code == 0 and "BLIP3o/BLIP3o-NEXT-GRPO-Geneval-3B" in out
    assert "feature fingerprint" in out and "0.734" in out


def test_score_writes_results_and_a_rerun_reuses_them(capsys, tmp_path):
    args = ["encoders", "score", "-e", "bag-of-words", "-e", "constant", "--run-dir",
            str(tmp_path / "run"), *SMALL]
    code, out, _ = run(capsys, *args)
    assert code == 0 and "bag-of-words" in out and "constant" in out
    assert "not comparable to the paper" in out
    scores = json.loads((tmp_path / "run" / "encoders" / "constant" / "scores.json").read_text())
    assert scores["metrics"]["discriminability"]["params"]["n_queries"] == 60
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["invocations"][-1]["status"] == "finished"
    code, out, _ = run(capsys, *args)
    assert code == 0 and out.count("reused") == 2
    code, out, _ = run(capsys, *args, "--overwrite")
    assert code == 0 and "reused" not in out and "cached" in out  # features from the cache


def test_layer_overrides_score_under_their_own_name(capsys, tmp_path, tiny_models):
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "t5.yaml").write_text(
        f"name: tiny-t5\nbackend: transformers-t5\nmodel: {tiny_models['t5']}\n")
    (tmp_path / "cards" / "prompts").mkdir()
    (tmp_path / "cards" / "prompts" / "p1.txt").write_text("a red circle. a blue square.")
    (tmp_path / "cards" / "prompts" / "p2.txt").write_text("two squares, a triangle")
    code, _, _ = run(capsys, "encoders", "score", "-e", "tiny-t5", "--layer", "1",
                       "--encoders-dir", str(tmp_path / "cards"), "--run-dir",
                       str(tmp_path / "run"), "--metrics", "disentanglement", "--prompts",
                       str(tmp_path / "cards" / "prompts"), *SMALL)
    assert code == 0
    saved = json.loads((tmp_path / "run" / "encoders" / "tiny-t5.layer1" / "scores.json")
                       .read_text())
    assert saved["card"]["layer"] == 1
    assert saved["metrics"]["disentanglement"]["params"]["prompts"]["count"] == 2


@pytest.mark.parametrize("args, message", [
    (["encoders", "score", "-e", "blip3o-nxt"], "did you mean 'blip3o-next'"),
    (["encoders", "score"], "--encoder NAME"),
    (["encoders", "score", "-e", "constant", "--metrics", "speed"], "unknown metric 'speed'"),
    (["encoders", "score", "-e", "constant", "--dataset", "coco"], "--coco-captions"),
    (["encoders", "score", "-e", "constant", "--dataset", "coco", "--coco-captions", "x.json",
      "--coco-images", "."], "needs --image-features"),
    (["encoders", "show", "nope"], "unknown encoder 'nope'"),
    (["encoders", "score", "-e", "clip-vit-l-14"], "not in the local Hugging Face cache"),
    (["encoders", "score", "-e", "constant", "--batch-size", "0"], "--batch-size must be at least"),
    (["encoders", "score", "-e", "constant", "--pool-size", "0"], "--pool-size must be at least"),
    (["encoders", "score", "-e", "minilm", "--layer", "3"], "has no choice of layer"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    small = SMALL if args[1] == "score" else []  # before args: a case's own value wins
    code, _, err = run(capsys, *args[:2], *small, *args[2:])
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err


def test_a_malformed_user_card_names_the_file(capsys, tmp_path):
    (tmp_path / "broken.yaml").write_text("name: broken\nbackend: constant\ndimm: 3\n")
    code, _, err = run(capsys, "encoders", "list", "--encoders-dir", str(tmp_path))
    assert code == 2 and "broken.yaml" in err and "'dimm'" in err


def test_one_failing_encoder_keeps_the_others_results(capsys, tmp_path):
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "gone.yaml").write_text(
        f"name: gone\nbackend: transformers-t5\nmodel: {tmp_path / 'missing-model'}\n")
    code, out, err = run(capsys, "encoders", "score", "-e", "constant", "-e", "gone",
                         "--encoders-dir", str(tmp_path / "cards"), "--run-dir",
                         str(tmp_path / "run"), *SMALL)
    assert code == 2 and "1 of 2 encoders failed" in err
    assert "missing-model does not exist" in out
    assert (tmp_path / "run" / "encoders" / "constant" / "scores.json").exists()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["invocations"][-1]["failures"][0]["encoder"] == "gone"


def test_several_encoders_share_one_pool_one_image_model_and_its_features(
        capsys, tmp_path, monkeypatch):
    from emf_bench.analysis import scoring

    prepared, computed = [], []
    real_prepare, real_features = scoring._prepare, scoring._MemoImages.features

    def prepare(*args, **kwargs):
        prepared.append(1)
        return real_prepare(*args, **kwargs)

    def features(self, pool, indices):
        computed.extend(i for i in indices if int(i) not in self.rows)
        return real_features(self, pool, indices)

    monkeypatch.setattr(scoring, "_prepare", prepare)
    monkeypatch.setattr(scoring._MemoImages, "features", features)
    code, _, err = run(capsys, "encoders", "score", "-e", "bag-of-words", "-e", "class-label",
                       "-e", "constant", "--metrics", "discriminability", "--run-dir",
                       str(tmp_path / "run"), *SMALL)
    assert code == 0, err
    assert prepared == [1]  # one pool and one image model for the three encoders
    assert len(computed) == len(set(computed))  # no image's features computed twice
