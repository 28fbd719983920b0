"""Queries are scaled by 1/sqrt(query_pre_attn_scalar), which is not always 1/sqrt(head_dim)
(issue 13, item 7): a tiny 27B-shaped model (62 layers, n_embd / n_head = 16, head_dim 8)
against the float64 reference of tests/reference_f64.py."""
import numpy as np
import pytest

import edge_runtime as er

pytest.importorskip("gguf")
from reference_f64 import Reference  # noqa: E402
from test_decoder import _ids  # noqa: E402

SHAPE_27B = dict(n_layer=62, n_embd=32, n_head=2, n_head_kv=1, head_dim=8, n_ff=64, n_vocab=300,
                 context_length=64, sliding_window=4, weight_type="F32")


def test_27b_shaped_model_uses_n_embd_over_n_head(tiny_gguf_factory):
    path = tiny_gguf_factory(**SHAPE_27B)
    m = er.Model.load(path, threads=1, max_inference_len=32, kv_dtype="f32")
    assert m.config.query_pre_attn_scalar == 16 != m.config.head_dim_k
    ids = _ids(12, 300, seed=3)
    ref = Reference(path)
    want = ref.forward(ids)[-1]
    got = m.eval(ids)
    np.testing.assert_allclose(got, want, atol=2e-2)
    ref.q_scale = 8 ** -0.5   # what a decoder hard-wired to head_dim would compute
    assert np.abs(ref.forward(ids)[-1] - want).max() > 0.1   # so the check above can fail


def test_other_sizes_use_head_dim(tiny_gguf_factory):
    m = er.Model.load(tiny_gguf_factory(), threads=1, max_inference_len=16)
    assert m.config.query_pre_attn_scalar == m.config.head_dim_k


@pytest.mark.model
def test_270m_scalar_is_its_head_dim(default_model):
    from edge_runtime.config import from_gguf
    from edge_runtime.gguf import open_gguf
    cfg = from_gguf(open_gguf(default_model))
    assert cfg.n_layer == 18 and cfg.query_pre_attn_scalar == cfg.head_dim_k == 256
