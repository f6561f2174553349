"""Bounded mixture tables: every entry the correctly rounded CDF difference (checked against decimal
arithmetic), and the shared-table coder writes the words of the per-row coder."""

from __future__ import annotations

import decimal

import numpy as np

from nlc.coding.bounded import ONE, _decimal_cdf, mixture_counts
from nlc.coding.coders import CompiledRangeQueue


def test_tables_are_the_correctly_rounded_cdf():
    rng = np.random.default_rng(0)
    logits, means = rng.normal(0, 2, (3, 4)), rng.normal(5, 20, (3, 4))
    log_scales = rng.normal(1, 1, (3, 4))
    t = mixture_counts(logits, means, log_scales, lo=-40, count=90)
    assert t.shape == (3, 90) and (t >= 0).all() and (t.sum(1) == ONE).all()
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        for d in range(3):
            cdf = [int((_decimal_cdf(logits[d], means[d], log_scales[d], -40 + i - 0.5) * ONE)
                       .to_integral_value(rounding=decimal.ROUND_HALF_EVEN)) for i in range(1, 90)]
            assert np.diff([0, *cdf, ONE]).tolist() == t[d].tolist()


def test_a_shared_table_codes_the_words_of_repeated_rows():
    rng = np.random.default_rng(1)
    table = rng.random(300) ** 4
    symbols = rng.integers(0, 300, 2000)
    shared, rows = CompiledRangeQueue(), CompiledRangeQueue()
    shared.encode_shared(symbols, table)
    rows.encode(symbols, np.broadcast_to(table, (2000, 300)))
    assert shared.to_bytes() == rows.to_bytes()
    back = CompiledRangeQueue(shared.to_bytes())
    assert back.decode_shared(table, 2000).tolist() == symbols.tolist()
