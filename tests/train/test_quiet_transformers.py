"""Library code does not write to the terminal: saving and loading checkpoints keeps
transformers' progress bars off, and puts the user's setting back."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")


def test_save_and_load_print_nothing_and_restore_the_setting(tmp_path, capfd):
    from transformers.utils import logging as hf_logging

    from treesearch.adapters.tiny import tiny_model
    from treesearch.adapters.toymath import build_tokenizer
    from treesearch.train.lm_common import load_causal_lm, save_pretrained_atomic

    tokenizer = build_tokenizer()
    model = tiny_model(tokenizer, hidden_size=16, num_layers=1, seed=0)
    capfd.readouterr()
    assert hf_logging.is_progress_bar_enabled()
    save_pretrained_atomic(tmp_path / "m", model, tokenizer)
    loaded = load_causal_lm(tmp_path / "m")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert hf_logging.is_progress_bar_enabled()  # the user's setting is back
    sd, ld = model.state_dict(), loaded.state_dict()
    assert all((sd[k] == ld[k]).all() for k in sd)
