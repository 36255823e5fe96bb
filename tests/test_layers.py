import torch

from bigr.layers import Attention, RMSNorm, apply_rope, rope_table_2d


def test_class_token_rotary_rows_are_zero_and_zero_its_query():
    table = rope_table_2d(grid_size=4, head_dim=16, prefix_tokens=1)
    assert table.shape == (17, 8, 2)
    assert torch.count_nonzero(table[0]) == 0
    x = torch.randn(2, 17, 3, 16)
    rotated = apply_rope(x, table)
    assert torch.count_nonzero(rotated[:, 0]) == 0


def test_rotary_preserves_norm_and_rotates_rows_then_columns():
    g, d = 4, 16
    table = rope_table_2d(g, d, prefix_tokens=1)
    x = torch.randn(1, 1 + g * g, 2, d)
    rotated = apply_rope(x, table)
    assert torch.allclose(rotated[:, 1:].norm(dim=-1), x[:, 1:].norm(dim=-1), atol=1e-5)
    angles = torch.atan2(table[1:, :, 1], table[1:, :, 0])  # (G², Dh/2)
    rows = torch.arange(g).repeat_interleave(g)
    cols = torch.arange(g).repeat(g)
    # the first quarter of pairs turns with the row (frequency 1 at pair 0), the rest with
    # the column
    assert torch.allclose(angles[:, 0], rows.float(), atol=1e-5)  # angles below pi: no wrap
    assert torch.allclose(angles[:, d // 4], cols.float(), atol=1e-5)


def test_attention_is_bidirectional():
    torch.manual_seed(0)
    attn = Attention(dim=32, heads=4, kv_heads=4).eval()
    table = rope_table_2d(3, 8, prefix_tokens=1)
    x = torch.randn(1, 10, 32)
    y = x.clone()
    y[:, -1] += 1.0  # change only the last token
    out_x, out_y = attn(x, table), attn(y, table)
    assert not torch.allclose(out_x[:, 1], out_y[:, 1])  # an earlier token sees the later one


def test_grouped_query_attention_matches_repeated_heads():
    # GQA with 2 key/value heads for 4 query heads is full attention whose key/value
    # projections repeat each shared head for the two query heads it serves.
    torch.manual_seed(0)
    dim, heads, kv_heads = 32, 4, 2
    gqa = Attention(dim=dim, heads=heads, kv_heads=kv_heads).eval()
    mha = Attention(dim=dim, heads=heads, kv_heads=heads).eval()
    hd = dim // heads
    wq, wk, wv = gqa.wqkv.weight.split([dim, kv_heads * hd, kv_heads * hd])

    def repeat(w):
        return w.view(kv_heads, hd, dim).repeat_interleave(heads // kv_heads, 0).reshape(-1, dim)

    with torch.no_grad():
        mha.wqkv.weight.copy_(torch.cat([wq, repeat(wk), repeat(wv)]))
        mha.wo.weight.copy_(gqa.wo.weight)
    table = rope_table_2d(2, 8, prefix_tokens=1)
    x = torch.randn(2, 5, dim)
    torch.testing.assert_close(gqa(x, table), mha(x, table))


def test_rmsnorm_normalises_in_float32():
    norm = RMSNorm(8).to(torch.bfloat16)
    x = torch.randn(3, 8, dtype=torch.bfloat16) * 100
    y = norm(x)
    assert y.dtype == torch.bfloat16
    assert torch.allclose(y.float().pow(2).mean(-1), torch.ones(3), atol=0.05)
