"""Fixtures for the language-model training tests (SFT, PRM, Math-Shepherd): one torch thread,
the toy tokenizer and tiny Llama models. Nothing heavy is imported unless a fixture is used."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_torch_thread():
    # On a shared 2-core machine extra intra-op threads make tiny forwards far slower; one
    # thread also makes float results independent of the thread count.
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def toy_tokenizer():
    pytest.importorskip("transformers")
    from treesearch.adapters.toymath import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="session")
def tiny_llama():
    """``tiny_llama(tokenizer, hidden=32, layers=2, seed=0)``: a randomly initialised tiny
    Llama in eval mode, drawn under a forked, seeded torch RNG."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    def make(tokenizer, *, hidden: int = 32, layers: int = 2, seed: int = 0):
        config = transformers.LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=False,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = transformers.LlamaForCausalLM(config)
        return model.eval()

    return make
